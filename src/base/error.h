// Errors as values across module boundaries.
//
// A fallible function returns Result<T> (or Status for no value). The Error carries a
// machine-readable code from the torii category and a message for the operator. Messages
// never contain secrets: they go to logs and terminals.
#pragma once

#include <string>
#include <system_error>
#include <utility>

#include <tl/expected.hpp>

namespace torii {

enum class Errc {
  ok = 0,
  invalid_argument,  // input from outside failed validation
  not_found,
  already_exists,
  permission_denied,  // includes insecure file permissions
  io_error,
  crypto_error,           // a primitive failed (not: a seal failed to open)
  authentication_failed,  // a sealed value, signature or MAC did not verify
  corrupt,                // stored data does not have the expected shape
  expired,
  unavailable,
  conflict,
  limit_exceeded,
};

const std::error_category& torii_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

struct Error {
  std::error_code code;
  std::string message;

  [[nodiscard]] bool is(Errc e) const noexcept { return code == make_error_code(e); }
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

[[nodiscard]] inline tl::unexpected<Error> fail(Errc code, std::string message) {
  return tl::unexpected<Error>(Error{make_error_code(code), std::move(message)});
}

inline Status ok() { return {}; }

// The text of an errno value ("No such file or directory"); thread-safe, unlike strerror.
[[nodiscard]] inline std::string errno_text(int err) { return std::generic_category().message(err); }

}  // namespace torii

template <>
struct std::is_error_code_enum<torii::Errc> : std::true_type {};

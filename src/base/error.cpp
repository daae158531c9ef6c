#include "base/error.h"

namespace torii {
namespace {

class ToriiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "torii"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::ok: return "ok";
      case Errc::invalid_argument: return "invalid argument";
      case Errc::not_found: return "not found";
      case Errc::already_exists: return "already exists";
      case Errc::permission_denied: return "permission denied";
      case Errc::io_error: return "input/output error";
      case Errc::crypto_error: return "cryptographic operation failed";
      case Errc::authentication_failed: return "authentication failed";
      case Errc::corrupt: return "corrupt data";
      case Errc::expired: return "expired";
      case Errc::unavailable: return "unavailable";
      case Errc::conflict: return "conflict";
      case Errc::limit_exceeded: return "limit exceeded";
    }
    return "unknown error";
  }
};

}  // namespace

const std::error_category& torii_category() noexcept {
  static const ToriiCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), torii_category()}; }

}  // namespace torii

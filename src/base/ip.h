// IP addresses and CIDR blocks (IPv4 and IPv6), for allow/deny lists. Pure values.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace torii {

struct IpAddress {
  // IPv4 is held as an IPv4-mapped IPv6 address (::ffff:a.b.c.d) so one type covers both.
  std::array<std::uint8_t, 16> bytes{};
  bool v4 = false;

  [[nodiscard]] static Result<IpAddress> parse(std::string_view text);
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  // clang-tidy 14 reports the literal 0 that the compiler synthesizes in a defaulted <=> (llvm#53961).
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;  // NOLINT(modernize-use-nullptr)
};

struct CidrBlock {
  IpAddress network;
  unsigned prefix_length = 0;  // in the address's own family: 0..32 for IPv4, 0..128 for IPv6

  // "10.0.0.0/8", "2001:db8::/32"; a bare address means a single host. Host bits must be
  // zero ("10.0.0.1/8" is refused: it usually hides a typo).
  [[nodiscard]] static Result<CidrBlock> parse(std::string_view text);
  [[nodiscard]] bool contains(const IpAddress& address) const;
  [[nodiscard]] std::string to_string() const;
};

}  // namespace torii

#include "base/ip.h"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace torii {

Result<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton reads a C string: an embedded NUL would hide whatever follows it.
  if (text.find('\0') != std::string_view::npos) {
    return fail(Errc::invalid_argument, "an IP address must not contain a NUL character");
  }
  const std::string s(text);
  IpAddress out;
  in_addr v4{};
  if (::inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out.v4 = true;
    out.bytes[10] = 0xff;
    out.bytes[11] = 0xff;
    std::memcpy(out.bytes.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.bytes.data(), &v6, 16);
    return out;
  }
  return fail(Errc::invalid_argument, fmt::format("'{}' is not an IPv4 or IPv6 address", text));
}

std::string IpAddress::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (v4) {
    ::inet_ntop(AF_INET, bytes.data() + 12, buffer, sizeof buffer);
  } else {
    ::inet_ntop(AF_INET6, bytes.data(), buffer, sizeof buffer);
  }
  return buffer;
}

Result<CidrBlock> CidrBlock::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return tl::unexpected(address.error());
  CidrBlock block{*address, address->v4 ? 32u : 128u};
  if (slash != std::string_view::npos) {
    const std::string_view length = text.substr(slash + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), value);
    if (ec != std::errc() || end != length.data() + length.size() || length.empty() || value > block.prefix_length) {
      return fail(Errc::invalid_argument, fmt::format("'{}' has an invalid prefix length", text));
    }
    block.prefix_length = value;
  }
  const unsigned offset = block.network.v4 ? 96 : 0;
  for (unsigned bit = offset + block.prefix_length; bit < 128; ++bit) {
    if ((block.network.bytes[bit / 8] >> (7 - bit % 8)) & 1) {
      return fail(Errc::invalid_argument, fmt::format(
                                              "'{}' has host bits set (did you mean {}/{}?)", text,
                                              [&] {
                                                CidrBlock masked = block;
                                                for (unsigned b = offset + block.prefix_length; b < 128; ++b) {
                                                  masked.network.bytes[b / 8] &=
                                                      static_cast<std::uint8_t>(~(1u << (7 - b % 8)));
                                                }
                                                return masked.network.to_string();
                                              }(),
                                              block.prefix_length));
    }
  }
  return block;
}

bool CidrBlock::contains(const IpAddress& address) const {
  if (address.v4 != network.v4) return false;
  const unsigned bits = (network.v4 ? 96 : 0) + prefix_length;
  const unsigned whole = bits / 8;
  if (std::memcmp(address.bytes.data(), network.bytes.data(), whole) != 0) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (address.bytes[whole] & mask) == (network.bytes[whole] & mask);
}

std::string CidrBlock::to_string() const { return fmt::format("{}/{}", network.to_string(), prefix_length); }

}  // namespace torii

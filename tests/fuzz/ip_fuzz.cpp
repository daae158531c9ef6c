// Fuzzes IpAddress::parse and CidrBlock::parse: firewall allow/deny lists, listen addresses
// and certificate names all come through them, from config files and from peers.
//
// Properties beyond "does not crash":
//   - round trip: an accepted address or block prints to text that parses again to the same
//     value (the firewall logs and the config checker show to_string(); if it did not parse
//     back, what the operator reads would not be what is enforced);
//   - a block contains its own network address, and the prefix fits the family;
//   - the address parser accepts the same text whether it is reached directly or through
//     the CIDR parser (a bare address is a single-host block).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/ip.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const auto address = IpAddress::parse(text);
  if (address) {
    check(text.find('\0') == std::string_view::npos);  // nothing may hide behind a NUL
    const auto again = IpAddress::parse(address->to_string());
    check(again.has_value() && *again == *address);
  }

  const auto block = CidrBlock::parse(text);
  if (block) {
    check(text.find('\0') == std::string_view::npos);
    check(block->prefix_length <= (block->network.v4 ? 32u : 128u));
    check(block->contains(block->network));
    const auto again = CidrBlock::parse(block->to_string());
    check(again.has_value() && again->network == block->network && again->prefix_length == block->prefix_length);
  }
  if (text.find('/') == std::string_view::npos) {
    check(address.has_value() == block.has_value());
    if (address) check(block->network == *address && block->prefix_length == (address->v4 ? 32u : 128u));
  }
  return 0;
}

// Fuzzes parse_config(): the configuration file is edited by hand, copied between hosts and
// may be written by provisioning tools, so the parser must survive any bytes (TOML syntax
// errors, wrong types, huge numbers, invalid UTF-8) and report problems instead of
// throwing or crashing.
//
// Properties beyond "does not crash":
//   - a problem always has a message (an empty one would leave the operator guessing);
//   - an accepted config only holds values the server can use as they are: every listen
//     address round-trips through its text form and every firewall entry is a CIDR block.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/ip.h"
#include "config/config.h"
#include "fuzz_check.h"

namespace torii::fuzz {
namespace {

void check_listeners(const config::ListenerConfig& listener) {
  check(!listener.listen.empty());
  for (const auto& address : listener.listen) {
    const auto again = config::parse_listen_address(address.to_string());
    check(again.has_value() && *again == address);
  }
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const config::ParseResult result = config::parse_config(text);
  for (const auto& problem : result.problems) check(!problem.message.empty());
  if (!result.problems.empty()) {
    check(!config::format_problems(result.problems).empty());
  } else {
    fuzz::check_listeners(result.config.gateway);
    fuzz::check_listeners(result.config.console);
    for (const auto* list : {&result.config.firewall.allow, &result.config.firewall.deny}) {
      for (const auto& entry : *list) check(CidrBlock::parse(entry).has_value());
    }
  }

  // The "host:port" syntax is parsed on its own too (CLI flags use it): whole input, no TOML.
  if (auto address = config::parse_listen_address(text)) {
    const auto again = config::parse_listen_address(address->to_string());
    check(again.has_value() && *again == *address);
  }
  return 0;
}

// Fuzzes what the agent reads from outside: its configuration file (parse_agent_config),
// the console and gateway addresses in it, a command sensor's output (first_number), and the
// host files its posture report parses (/proc/net tables, Wi-Fi configurations, inittab,
// shadow, /proc/mounts, the kernel command line, /proc/sys/kernel/sysrq).
//
// Properties beyond "does not crash":
//   - a configuration either parses with no problem or reports problems that say what is
//     wrong; parsing is deterministic;
//   - what parses is within the documented bounds: sensor metrics valid and unique,
//     intervals 0.1 s..1 day, heartbeat and outbox limits in range, the server URL usable;
//   - an accepted server URL or gateway address has a host and a port 1-65535;
//   - a number taken from command output is finite;
//   - a debugfs mount point is a field of the text and a kgdb setting one of those named;
//   - the posture report made of whatever those parsers find is valid JSON.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "agent/agent_config.h"
#include "agent/posture.h"
#include "agent/sensors.h"
#include "fuzz_check.h"

#include <nlohmann/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const auto parsed = agent::parse_agent_config(text);
  const auto again = agent::parse_agent_config(text);
  check(parsed.ok() == again.ok() && parsed.problems.size() == again.problems.size());
  if (parsed.ok()) {
    check(parsed.config == again.config);
    const auto& c = parsed.config;
    check(c.heartbeat_seconds >= 1 && c.heartbeat_seconds <= 86400);
    check(c.outbox_max_messages >= 1 && c.outbox_max_messages <= 10'000'000);
    check(agent::parse_server_url(c.server).has_value());
    std::set<std::string> metrics;
    for (const auto& s : c.sensors) {
      check(!s.metric.empty() && s.metric.size() <= 64 && metrics.insert(s.metric).second);
      check(s.interval >= std::chrono::milliseconds(100) && s.interval <= std::chrono::hours(24));
    }
  } else {
    for (const auto& p : parsed.problems) check(!p.message.empty());
  }

  if (const auto url = agent::parse_server_url(text)) check(!url->host.empty() && url->port > 0);
  if (const auto gateway = agent::parse_gateway_address(text)) check(!gateway->host.empty() && gateway->port > 0);
  if (const auto number = agent::first_number(text)) check(std::isfinite(*number));

  agent::PostureReport report;
  report.listening = agent::parse_proc_net(text, "tcp");
  for (auto& s : agent::parse_proc_net(text, "udp")) report.listening.push_back(std::move(s));
  for (auto* parse : {&agent::parse_wpa_supplicant, &agent::parse_hostapd, &agent::parse_networkmanager}) {
    for (auto& n : parse(text, "fuzz")) report.wifi.push_back(std::move(n));
  }
  report.serial_consoles = agent::parse_inittab(text);
  report.passwordless_accounts = agent::parse_shadow_without_password(text);
  for (auto& at : agent::parse_debugfs_mounts(text)) {
    check(!at.empty() && text.find(at) != std::string_view::npos);
    report.debug_interfaces.push_back({"debugfs", std::move(at)});
  }
  for (auto& setting : agent::parse_kgdb_cmdline(text)) {
    check(setting == "kgdbwait" || setting.starts_with("kgdboc=") || setting.starts_with("ekgdboc="));
    report.debug_interfaces.push_back({"kgdb", std::move(setting)});
  }
  if (const auto sysrq = agent::parse_sysrq(text)) report.debug_interfaces.push_back({"sysrq", std::to_string(*sysrq)});
  (void)agent::adbd_unit(text);
  for (const auto& s : report.listening) check(!s.address.empty());
  check(!nlohmann::json::parse(agent::posture_message(report, 0, "fuzz-1"), nullptr, false).is_discarded());
  return 0;
}

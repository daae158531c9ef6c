// Device profiles: which metrics a device reports and which commands it accepts
// (JPCERT II-5, IIIT J8/I5). Pure: text in, values out; no I/O.
//
// A profile is defined in JSON (docs: the comment on parse_profile below). Once parsed it is
// immutable, so one Profile may be shared by every connection thread without locking.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace torii::policy {

// Metric, command and parameter names: 1..64 characters of [a-z0-9_].
inline constexpr std::size_t kMaxNameLength = 64;
[[nodiscard]] bool valid_name(std::string_view name);

inline constexpr std::size_t kMaxMetrics = 256;
inline constexpr std::size_t kMaxCommands = 64;
inline constexpr std::size_t kMaxParams = 32;
inline constexpr std::size_t kMaxUnitBytes = 32;
inline constexpr std::uint32_t kDefaultMaxStringBytes = 256;
inline constexpr std::uint32_t kMaxStringBytes = 65535;
inline constexpr std::uint32_t kDefaultMaxMessageBytes = 4096;
inline constexpr std::uint32_t kMinMessageBytes = 64;
inline constexpr std::uint32_t kMaxMessageBytes = 1024 * 1024;
inline constexpr std::uint32_t kDefaultHeartbeatSeconds = 60;
inline constexpr std::uint32_t kMaxHeartbeatSeconds = 86400;
// A profile definition larger than this is refused before parsing.
inline constexpr std::size_t kMaxDefinitionBytes = std::size_t{1024} * 1024;
// Bounds of integer metrics and parameters: whole numbers exactly representable as double.
inline constexpr double kMaxIntegerBound = 9007199254740992.0;  // 2^53

enum class ValueType { number, integer, boolean, string };
[[nodiscard]] std::string_view to_string(ValueType type);

// One metric of a profile, or one parameter of a command.
struct FieldSpec {
  std::string name;
  ValueType type = ValueType::number;
  std::string unit;                                   // for display only; may be empty
  std::optional<double> min;                          // number and integer only; inclusive
  std::optional<double> max;                          // number and integer only; inclusive
  std::uint32_t max_length = kDefaultMaxStringBytes;  // string only: bytes of UTF-8, not characters
  bool required = false;                              // command parameters only
  friend bool operator==(const FieldSpec&, const FieldSpec&) = default;
};

struct CommandSpec {
  std::string name;
  std::vector<FieldSpec> params;
  friend bool operator==(const CommandSpec&, const CommandSpec&) = default;
};

// One problem of a definition a person wrote, with where it is.
struct Problem {
  std::string path;  // "metrics[1].type", "commands[0].params[0].min", "params.seconds"; empty: the whole text
  std::string message;
  friend bool operator==(const Problem&, const Problem&) = default;
};

// "  path: message\n" per problem, for terminals and the console.
[[nodiscard]] std::string format_problems(const std::vector<Problem>& problems);

// What a device's host may show in its posture report (JPCERT IV-1…IV-4, V-1, V-2; the
// agent's report: docs/agent.md). The defaults are the strict ones: no remote-access service,
// no UPnP responder, Wi-Fi at least WPA2 and without WPS, no login console on a serial line,
// no account without a password, no debug interface. Telnet is never allowed. Listening
// ports are judged only when allowed_ports is given; sockets bound to loopback never count.
struct PosturePolicy {
  std::optional<std::vector<std::string>> allowed_ports;  // "tcp/8883", "udp/123"
  bool remote_access = false;
  bool upnp = false;
  std::string min_wifi_security = "wpa2-psk";  // open, wep, wpa-psk, wpa2-psk, wpa3-sae
  bool wps = false;
  bool serial_consoles = false;
  bool passwordless_accounts = false;
  bool debug_interfaces = false;  // debugfs, adb, kgdb, magic SysRq (JPCERT IV-1)
  friend bool operator==(const PosturePolicy&, const PosturePolicy&) = default;
};

class Profile;
using ProfileResult = tl::expected<Profile, std::vector<Problem>>;

class Profile {
 public:
  // Metrics in definition order. Empty for the generic profile, which accepts any name.
  [[nodiscard]] const std::vector<FieldSpec>& metrics() const { return metrics_; }
  [[nodiscard]] const std::vector<CommandSpec>& commands() const { return commands_; }

  // The index in metrics() of the metric with this name; O(log n), no allocation.
  [[nodiscard]] std::optional<std::size_t> metric_index(std::string_view name) const;
  [[nodiscard]] const FieldSpec* find_metric(std::string_view name) const;
  [[nodiscard]] const CommandSpec* find_command(std::string_view name) const;

  // True for the generic profile: any valid metric name, value types number, boolean and
  // string (strings up to max_string_bytes()), at most max_metrics_per_message() metrics.
  [[nodiscard]] bool accepts_any_metric() const { return accepts_any_metric_; }
  [[nodiscard]] std::uint32_t max_string_bytes() const { return kDefaultMaxStringBytes; }
  // A defined profile allows each of its metrics once per message.
  [[nodiscard]] std::size_t max_metrics_per_message() const {
    return accepts_any_metric_ ? kGenericMaxMetrics : metrics_.size();
  }

  [[nodiscard]] std::chrono::seconds heartbeat() const { return heartbeat_; }
  [[nodiscard]] std::uint32_t max_message_bytes() const { return max_message_bytes_; }
  [[nodiscard]] const PosturePolicy& posture() const { return posture_; }

  static constexpr std::size_t kGenericMaxMetrics = 64;

 private:
  friend ProfileResult parse_profile(std::string_view json_text);
  friend const Profile& generic_profile();
  Profile() = default;
  void build_index();

  std::vector<FieldSpec> metrics_;
  std::vector<CommandSpec> commands_;
  std::vector<std::uint16_t> metrics_by_name_;  // indices into metrics_, sorted by name
  bool accepts_any_metric_ = false;
  std::chrono::seconds heartbeat_{kDefaultHeartbeatSeconds};
  std::uint32_t max_message_bytes_ = kDefaultMaxMessageBytes;
  PosturePolicy posture_;
};

// Parses a profile definition, or returns every problem found (at most 100, the last then
// saying that more were left out). The definition is a JSON object:
//
//   metrics            required array (<= 256) of {name, type, unit?, min?, max?, max_length?}
//   commands           optional array (<= 64) of {name, params?: array (<= 32) of
//                      {name, type, unit?, min?, max?, max_length?, required?}}
//   heartbeat_seconds  optional integer 1..86400, default 60
//   max_message_bytes  optional integer 64..1048576, default 4096: the largest telemetry payload
//   posture            optional object (PosturePolicy): allowed_ports (array of at most 256
//                      "tcp/N" or "udp/N"), remote_access, upnp, wps, serial_consoles,
//                      passwordless_accounts, debug_interfaces (booleans),
//                      min_wifi_security (open, wep, wpa-psk, wpa2-psk or wpa3-sae)
//
// name: valid_name(), unique among its siblings; metrics may not be called "ts" or "id" (the
// payload's own keys). type: number, integer, boolean or string. min/max: number and integer
// only, min <= max; for integer, whole numbers within +-2^53. max_length: string only,
// 1..65535 bytes, default 256. Unknown and duplicate keys are problems.
[[nodiscard]] ProfileResult parse_profile(std::string_view json_text);

// The built-in profile "generic", for devices without one (see accepts_any_metric()). It has
// no commands; max_message_bytes 4096, heartbeat 60 s.
[[nodiscard]] const Profile& generic_profile();

// The JSON definition of the sample "environment" profile the demos use: temperature,
// humidity, power, door_open, tamper; commands set_interval, set_actuator, report_posture.
[[nodiscard]] std::string_view sample_environment_profile_json();

}  // namespace torii::policy

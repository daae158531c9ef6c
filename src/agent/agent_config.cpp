#include "agent/agent_config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "agent/renewal.h"
#include "base/bytes.h"
#include "base/file.h"
#include "base/ip.h"
#include "base/privileges.h"

namespace torii::agent {
namespace {

using config::Problem;

// Keys of each table, in the order the reference lists them.
constexpr std::string_view kAgentKeys[] = {
    "state_dir",       "user",         "gateway", "server", "heartbeat_seconds", "outbox_max_messages",
    "posture_seconds", "posture_root", "renew_at"};
constexpr std::string_view kSensorKeys[] = {
    "metric", "source",  "interval_seconds", "min", "max", "tamper", "signal", "fault", "fault_after_seconds", "path",
    "scale",  "command", "timeout_seconds"};

// Reads the keys of one table. Each read marks the key as known, converts the value and
// records a problem with the key's path instead of stopping at the first one.
class TableReader {
 public:
  TableReader(const toml::table* table, std::string prefix, std::vector<Problem>& problems)
      : table_(table), prefix_(std::move(prefix)), problems_(problems) {}

  [[nodiscard]] std::string key(std::string_view name) const { return fmt::format("{}.{}", prefix_, name); }
  [[nodiscard]] bool has(std::string_view name) const { return table_ != nullptr && table_->contains(name); }

  void problem(std::string_view name, std::string message) { problems_.push_back({key(name), std::move(message)}); }

  // Returns true when the key was present and read.
  bool text(std::string_view name, std::string& out) {
    const toml::node* node = table_ != nullptr ? table_->get(name) : nullptr;
    if (node == nullptr) return false;
    if (const auto* v = node->as_string()) {
      out = v->get();
      return true;
    }
    problem(name, "must be a string");
    return false;
  }

  void boolean(std::string_view name, bool& out) {
    const toml::node* node = table_ != nullptr ? table_->get(name) : nullptr;
    if (node == nullptr) return;
    if (const auto* v = node->as_boolean()) {
      out = v->get();
      return;
    }
    problem(name, "must be true or false");
  }

  void whole_number(std::string_view name, std::uint32_t& out, std::uint32_t min, std::uint32_t max) {
    const toml::node* node = table_ != nullptr ? table_->get(name) : nullptr;
    if (node == nullptr) return;
    const auto* v = node->as_integer();
    if (v == nullptr) {
      problem(name, "must be an integer");
      return;
    }
    if (v->get() < min || v->get() > max) {
      problem(name, fmt::format("must be between {} and {} (got {})", min, max, v->get()));
      return;
    }
    out = static_cast<std::uint32_t>(v->get());
  }

  // An integer or a float; returns true when the key was present and a finite number.
  bool real(std::string_view name, double& out) {
    const toml::node* node = table_ != nullptr ? table_->get(name) : nullptr;
    if (node == nullptr) return false;
    if (const auto* i = node->as_integer()) {
      out = static_cast<double>(i->get());
      return true;
    }
    if (const auto* f = node->as_floating_point(); f != nullptr && std::isfinite(f->get())) {
      out = f->get();
      return true;
    }
    problem(name, "must be a number");
    return false;
  }

  // Seconds, fractions allowed, kept as milliseconds.
  void seconds(std::string_view name, std::chrono::milliseconds& out, double min, double max) {
    double value = 0;
    if (!real(name, value)) return;
    if (value < min || value > max) {
      problem(name, fmt::format("must be between {} and {} seconds (got {})", min, max, value));
      return;
    }
    out = std::chrono::milliseconds(std::llround(value * 1000));
  }

  void text_list(std::string_view name, std::vector<std::string>& out) {
    const toml::node* node = table_ != nullptr ? table_->get(name) : nullptr;
    if (node == nullptr) return;
    const auto* array = node->as_array();
    if (array == nullptr) {
      problem(name, "must be an array of strings");
      return;
    }
    std::vector<std::string> values;
    for (std::size_t i = 0; i < array->size(); ++i) {
      if (const auto* s = (*array)[i].as_string()) {
        values.push_back(s->get());
      } else {
        problems_.push_back({fmt::format("{}[{}]", key(name), i), "must be a string"});
      }
    }
    out = std::move(values);
  }

  // Keys in the table that are not in `known`: typos must not pass silently.
  template <std::size_t N>
  void report_unknown(const std::string_view (&known)[N]) {
    if (table_ == nullptr) return;
    for (const auto& [name, node] : *table_) {
      if (std::find(std::begin(known), std::end(known), name.str()) == std::end(known)) {
        problem(name.str(), "unknown key");
      }
    }
  }

 private:
  const toml::table* table_;
  std::string prefix_;
  std::vector<Problem>& problems_;
};

// Reads `name` as one of `choices` (their to_string()).
template <class Enum, std::size_t N>
void choice(TableReader& r, std::string_view name, Enum& out, const Enum (&choices)[N]) {
  std::string text(to_string(out));
  if (!r.text(name, text)) return;
  for (const Enum c : choices) {
    if (to_string(c) == text) {
      out = c;
      return;
    }
  }
  std::string allowed;
  for (const Enum c : choices) allowed += fmt::format("{}{}", allowed.empty() ? "" : ", ", to_string(c));
  r.problem(name, fmt::format("must be one of {} (got \"{}\")", allowed, text));
}

bool valid_metric(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void read_agent(const toml::table* table, AgentConfig& c, std::vector<Problem>& problems) {
  TableReader r(table, "agent", problems);
  std::string state_dir = c.state_dir.string();
  if (r.text("state_dir", state_dir)) {
    if (state_dir.empty() || state_dir.front() != '/') r.problem("state_dir", "must be an absolute path");
    c.state_dir = state_dir;
  }
  if (r.text("user", c.user)) {
    if (c.user == "root") {
      r.problem("user", "must not be root: started as root, the agent switches to this account (JPCERT I-5)");
    } else if (!valid_account_name(c.user)) {
      r.problem("user", "must be a system user name ([a-z_][a-z0-9_-]*)");
    }
  }
  std::string gateway;
  if (r.text("gateway", gateway)) {
    if (auto address = parse_gateway_address(gateway)) {
      c.gateway = *address;
    } else {
      r.problem("gateway", address.error().message);
    }
  }
  if (r.text("server", c.server)) {
    if (auto url = parse_server_url(c.server); !url) r.problem("server", url.error().message);
  }
  r.whole_number("heartbeat_seconds", c.heartbeat_seconds, 1, 86'400);
  r.whole_number("outbox_max_messages", c.outbox_max_messages, 1, 10'000'000);
  r.whole_number("posture_seconds", c.posture_seconds, 0, 86'400);
  if (c.posture_seconds > 0 && c.posture_seconds < 60) {
    r.problem("posture_seconds",
              fmt::format("must be 0 (no report) or between 60 and 86400 (got {})", c.posture_seconds));
  }
  std::string posture_root = c.posture_root.string();
  if (r.text("posture_root", posture_root)) {
    if (posture_root.empty() || posture_root.front() != '/') r.problem("posture_root", "must be an absolute path");
    c.posture_root = posture_root;
  }
  if (r.real("renew_at", c.renew_at) && (c.renew_at < 0.0 || c.renew_at > kMaxRenewAt)) {
    r.problem("renew_at", fmt::format("must be between 0.0 and {} (got {})", kMaxRenewAt, c.renew_at));
  }
  r.report_unknown(kAgentKeys);
}

// Keys that mean nothing for the sensor's source: present, they are a mistake.
void refuse_keys(TableReader& r, std::initializer_list<std::string_view> names, std::string_view what) {
  for (const auto name : names) {
    if (r.has(name)) r.problem(name, fmt::format("applies only to {}", what));
  }
}

SensorConfig read_sensor(const toml::table& table, std::size_t index, std::vector<Problem>& problems) {
  SensorConfig s;
  TableReader r(&table, fmt::format("sensor[{}]", index), problems);
  if (!r.text("metric", s.metric)) {
    if (!r.has("metric")) r.problem("metric", "is required");
  } else if (!valid_metric(s.metric)) {
    r.problem("metric", "must be 1-64 of a-z, 0-9 and _");
  } else if (s.metric == "id" || s.metric == "ts") {
    r.problem("metric", "\"id\" and \"ts\" are reserved in telemetry messages");
  }
  choice(r, "source", s.source,
         {SensorSource::simulated, SensorSource::hwmon, SensorSource::thermal, SensorSource::command});
  r.seconds("interval_seconds", s.interval, 0.1, 86'400);
  double bound = 0;
  if (r.real("min", bound)) s.min = bound;
  if (r.real("max", bound)) s.max = bound;
  if (s.min && s.max && !(*s.min < *s.max)) r.problem("max", "must be greater than min");

  choice(r, "signal", s.signal, {Signal::temperature, Signal::humidity, Signal::power, Signal::door, Signal::tamper});
  s.tamper = s.source == SensorSource::simulated && s.signal == Signal::tamper;
  r.boolean("tamper", s.tamper);
  choice(r, "fault", s.fault, {Fault::none, Fault::stuck, Fault::drift, Fault::out_of_range, Fault::read_failure});
  r.seconds("fault_after_seconds", s.fault_after, 0, 365.0 * 86'400);

  std::string path;
  if (r.text("path", path)) {
    if (path.empty() || path.front() != '/') r.problem("path", "must be an absolute path");
    s.path = path;
  }
  if (r.real("scale", s.scale) && !(s.scale != 0)) r.problem("scale", "must not be 0");

  r.text_list("command", s.command);
  r.seconds("timeout_seconds", s.timeout, 0.1, 300);
  r.report_unknown(kSensorKeys);

  switch (s.source) {
    case SensorSource::simulated:
      refuse_keys(r, {"path", "scale"}, "hwmon and thermal sensors");
      refuse_keys(r, {"command", "timeout_seconds"}, "command sensors");
      if (s.signal == Signal::door || s.signal == Signal::tamper) {
        refuse_keys(r, {"min", "max"},
                    fmt::format("numeric sensors (signal \"{}\" is a boolean)", to_string(s.signal)));
        if (s.fault == Fault::drift || s.fault == Fault::out_of_range) {
          r.problem("fault", fmt::format("a {} (a boolean) can only be \"none\", \"stuck\" or \"read_failure\"",
                                         to_string(s.signal)));
        }
      } else if (s.fault == Fault::out_of_range && !s.min && !s.max) {
        r.problem("fault", "\"out_of_range\" needs min or max, which it goes beyond");
      }
      break;
    case SensorSource::hwmon:
    case SensorSource::thermal:
      refuse_keys(r, {"signal", "fault", "fault_after_seconds"}, "simulated sensors");
      refuse_keys(r, {"command", "timeout_seconds"}, "command sensors");
      if (!r.has("path")) r.problem("path", "is required for hwmon and thermal sensors");
      break;
    case SensorSource::command:
      refuse_keys(r, {"signal", "fault", "fault_after_seconds"}, "simulated sensors");
      refuse_keys(r, {"path", "scale"}, "hwmon and thermal sensors");
      if (!r.has("command")) {
        r.problem("command", "is required for command sensors");
      } else if (s.command.empty() || s.command.front().empty() || s.command.front().front() != '/') {
        r.problem("command", "must be an argv whose first element is an absolute path (no shell, no PATH search)");
      }
      break;
  }
  return s;
}

}  // namespace

std::string_view to_string(SensorSource source) {
  switch (source) {
    case SensorSource::simulated: return "simulated";
    case SensorSource::hwmon: return "hwmon";
    case SensorSource::thermal: return "thermal";
    case SensorSource::command: return "command";
  }
  return "?";
}

std::string_view to_string(Signal signal) {
  switch (signal) {
    case Signal::temperature: return "temperature";
    case Signal::humidity: return "humidity";
    case Signal::power: return "power";
    case Signal::door: return "door";
    case Signal::tamper: return "tamper";
  }
  return "?";
}

std::string_view to_string(Fault fault) {
  switch (fault) {
    case Fault::none: return "none";
    case Fault::stuck: return "stuck";
    case Fault::drift: return "drift";
    case Fault::out_of_range: return "out_of_range";
    case Fault::read_failure: return "read_failure";
  }
  return "?";
}

std::string GatewayAddress::to_string() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

Result<GatewayAddress> parse_gateway_address(std::string_view text) {
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) {
      return fail(Errc::invalid_argument, fmt::format("'{}' must look like [::1]:8883", text));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    bracketed = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return fail(Errc::invalid_argument,
                  fmt::format("'{}' must look like gateway.example:8883, 192.0.2.1:8883 or [2001:db8::1]:8883", text));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (bracketed ? !IpAddress::parse(host) : !config::valid_hostname(host)) {
    return fail(Errc::invalid_argument, fmt::format("'{}': '{}' is neither a DNS name nor an IP address", text, host));
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return fail(Errc::invalid_argument, fmt::format("'{}': port must be 1-65535", text));
  }
  return GatewayAddress{std::string(host), static_cast<std::uint16_t>(value)};
}

AgentParseResult parse_agent_config(std::string_view toml_text) {
  AgentParseResult result;
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    result.problems.push_back(
        {"", fmt::format("line {}, column {}: {}", where.line, where.column, std::string(e.description()))});
    return result;
  }
  for (const auto& [name, node] : root) {
    if (name.str() == "agent") {
      if (!node.is_table()) result.problems.push_back({"agent", "must be a table ([agent])"});
    } else if (name.str() == "sensor") {
      if (!node.is_array_of_tables()) result.problems.push_back({"sensor", "must be an array of tables ([[sensor]])"});
    } else {
      result.problems.push_back({std::string(name.str()), "unknown section"});
    }
  }
  read_agent(root.get_as<toml::table>("agent"), result.config, result.problems);
  if (const auto* sensors = root.get_as<toml::array>("sensor"); sensors != nullptr && sensors->is_array_of_tables()) {
    std::set<std::string> metrics;
    for (std::size_t i = 0; i < sensors->size(); ++i) {
      SensorConfig s = read_sensor(*(*sensors)[i].as_table(), i, result.problems);
      if (!s.metric.empty() && !metrics.insert(s.metric).second) {
        result.problems.push_back(
            {fmt::format("sensor[{}].metric", i), fmt::format("\"{}\" is already used", s.metric)});
      }
      result.config.sensors.push_back(std::move(s));
    }
  }
  return result;
}

AgentParseResult load_agent_config_file(const std::filesystem::path& path) {
  auto text = read_file(path, 1 << 20);
  if (!text) {
    AgentParseResult result;
    result.problems.push_back({"", text.error().message});
    return result;
  }
  return parse_agent_config(torii::to_string(*text));
}

AgentConfig default_agent_config(std::size_t simulated_sensors) {
  struct Template {
    std::string_view metric;
    Signal signal;
    std::chrono::milliseconds interval;
    std::optional<double> min;
    std::optional<double> max;
  };
  static constexpr Template kTemplates[] = {
      {"temperature", Signal::temperature, std::chrono::seconds(5), -20.0, 60.0},
      {"humidity", Signal::humidity, std::chrono::seconds(10), 0.0, 100.0},
      {"power", Signal::power, std::chrono::seconds(5), 0.0, 3000.0},
      {"door_open", Signal::door, std::chrono::seconds(1), std::nullopt, std::nullopt},
  };
  constexpr std::size_t kCount = std::size(kTemplates);
  AgentConfig c;
  for (std::size_t i = 0; i < simulated_sensors; ++i) {
    const Template& t = kTemplates[i % kCount];
    SensorConfig s;
    s.metric = i < kCount ? std::string(t.metric) : fmt::format("{}_{}", t.metric, i / kCount + 1);
    s.source = SensorSource::simulated;
    s.signal = t.signal;
    s.interval = t.interval;
    s.min = t.min;
    s.max = t.max;
    c.sensors.push_back(std::move(s));
  }
  return c;
}

const std::vector<std::string>& known_agent_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const auto k : kAgentKeys) out.push_back(fmt::format("agent.{}", k));
    for (const auto k : kSensorKeys) out.push_back(fmt::format("sensor.{}", k));
    return out;
  }();
  return keys;
}

std::string default_agent_config_text() {
  return R"(# torii agent configuration. Reference: docs/agent.md

[agent]
# The device key, certificate, CA bundle and outbox live here.
state_dir = "/var/lib/torii-agent"
# Started as root, the agent makes state_dir (0700) for this account if it is missing and
# runs as it, without root, before it opens its key, outbox or network. Create it with
# `useradd --system --no-create-home --shell /usr/sbin/nologin torii-agent`. Never root.
user = "torii-agent"
# host:port of torii's MQTT/TLS gateway: a DNS name or an address ([::1]:8883 for IPv6).
gateway = "127.0.0.1:8883"
# The console's URL, for enrolment (https only).
server = "https://127.0.0.1:8443"
# Seconds between heartbeats (1-86400).
heartbeat_seconds = 60
# Messages kept on disk while the gateway cannot be reached (1-10000000); when full, the
# oldest is dropped and counted.
outbox_max_messages = 100000
# Seconds between reports of the host's security posture: listening ports, remote access,
# UPnP, Wi-Fi security and WPS, serial consoles, accounts without a password (60-86400;
# 0: none). The first is sent at start.
posture_seconds = 3600
# Where the host's files are read from for that report (/proc/net, /etc): "/" on a device.
posture_root = "/"
# When the device certificate is renewed, as the fraction of its lifetime passed (0.0-0.95;
# the default, two thirds). Renewal needs no token: the gateway answers over mutual TLS.
# renew_at = 0.667

# One [[sensor]] table per metric. Common keys: metric ([a-z0-9_], 1-64, unique; not "id"
# or "ts"), source (simulated, hwmon, thermal, command), interval_seconds (0.1-86400,
# fractions allowed), and the optional expected range min and max (a reading outside it is
# reported as sensor_out_of_range).

[[sensor]]
metric = "temperature"
source = "simulated"
interval_seconds = 5
min = -20
max = 60
# What it imitates: temperature, humidity, power, door or tamper (a tamper switch).
# tamper = true makes any sensor a tamper input: a reading of true or of a number other
# than 0 is sent as a "tamper" event, its return to false or 0 as "tamper_cleared".
signal = "temperature"
# A fault to inject: none, stuck, drift, out_of_range or read_failure, starting
# fault_after_seconds after the agent starts.
fault = "none"
fault_after_seconds = 0

[[sensor]]
metric = "humidity"
source = "simulated"
interval_seconds = 10
min = 0
max = 100
signal = "humidity"

[[sensor]]
metric = "power"
source = "simulated"
interval_seconds = 5
min = 0
max = 3000
signal = "power"

[[sensor]]
metric = "door_open"
source = "simulated"
interval_seconds = 1
signal = "door"

# A hardware monitor or thermal zone: a file holding one number, multiplied by scale
# (millidegrees by default).
# [[sensor]]
# metric = "cpu_temperature"
# source = "thermal"
# interval_seconds = 30
# path = "/sys/class/thermal/thermal_zone0/temp"
# scale = 0.001

# A command: argv without a shell (the first element an absolute path), run with an empty
# environment but PATH=/usr/bin:/bin; the first number in its output is the reading.
# [[sensor]]
# metric = "soc_temperature"
# source = "command"
# interval_seconds = 60
# command = ["/usr/bin/vcgencmd", "measure_temp"]
# timeout_seconds = 5
)";
}

Result<ServerUrl> parse_server_url(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  const auto bad = [&](std::string_view why) {
    return fail(Errc::invalid_argument, fmt::format("server URL '{}': {}", url, why));
  };
  if (!url.starts_with(kScheme)) return bad("must start with https://");
  auto rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@ ") != std::string_view::npos) return bad("must name only a host and a port");
  ServerUrl out;
  std::string_view host = rest;
  std::string_view port;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    host = rest.substr(1, close - 1);
    const auto after = rest.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return bad("unexpected text after ']'");
      port = after.substr(1);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return bad("names no host");
  const bool bracketed = rest.starts_with('[');
  if (bracketed ? !IpAddress::parse(host) : !config::valid_hostname(host)) return bad("the host is not valid");
  out.host = std::string(host);
  if (!port.empty() || rest.ends_with(':')) {
    unsigned value = 0;
    if (port.empty() || port.size() > 5) return bad("the port must be 1..65535");
    for (const char c : port) {
      if (c < '0' || c > '9') return bad("the port must be 1..65535");
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return bad("the port must be 1..65535");
    out.port = static_cast<std::uint16_t>(value);
  }
  return out;
}

}  // namespace torii::agent

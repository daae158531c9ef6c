#include "policy/profile.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/posture.h"

namespace torii::policy {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxProblems = 100;
// Deeper than any valid definition (root, commands, command, params, param: 5 levels).
constexpr int kMaxDepth = 16;

const char* const kNameRule = "must be 1 to 64 characters of a-z, 0-9 and _";
const char* const kTypeRule = "must be one of number, integer, boolean, string";

// Collects problems; a definition with thousands of errors yields the first kMaxProblems.
class Problems {
 public:
  void add(std::string path, std::string message) {
    if (list_.size() < kMaxProblems) {
      list_.push_back({std::move(path), std::move(message)});
    } else {
      truncated_ = true;
    }
  }
  [[nodiscard]] bool empty() const { return list_.empty(); }
  [[nodiscard]] std::vector<Problem> take() {
    if (truncated_)
      list_.push_back({"", fmt::format("more problems were found; only the first {} are listed", kMaxProblems)});
    return std::move(list_);
  }

 private:
  std::vector<Problem> list_;
  bool truncated_ = false;
};

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}
std::string element(const std::string& path, std::size_t index) { return fmt::format("{}[{}]", path, index); }

struct ProfileTooDeep {};

// nlohmann keeps the last of duplicate keys silently; a definition where "max" appears twice
// is ambiguous, so the parser callback records each duplicate with its path. Also stops
// parsing of absurdly deep input (thrown, caught in parse_profile).
class KeyTracker {
 public:
  explicit KeyTracker(Problems& problems) : problems_(problems) {}

  bool on_event(int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxDepth) throw ProfileTooDeep{};
        frames_.push_back({event == json::parse_event_t::object_start, {}, 0, {}});
        break;
      case json::parse_event_t::key: {
        if (frames_.empty()) break;
        Frame& top = frames_.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second) problems_.add(path(), "duplicate key");
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        completed();
        break;
      case json::parse_event_t::value: completed(); break;
    }
    return true;
  }

 private:
  struct Frame {
    bool object = false;
    std::string key;      // objects: the key whose value is being parsed
    std::size_t index{};  // arrays: the index of the element being parsed
    std::set<std::string> keys;
  };

  void completed() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
  }

  [[nodiscard]] std::string path() const {
    std::string out;
    for (const Frame& f : frames_) out = f.object ? child(out, f.key) : element(out, f.index);
    return out;
  }

  Problems& problems_;
  std::vector<Frame> frames_;
};

std::optional<ValueType> parse_type(std::string_view text) {
  for (const ValueType t : {ValueType::number, ValueType::integer, ValueType::boolean, ValueType::string}) {
    if (text == to_string(t)) return t;
  }
  return std::nullopt;
}

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

constexpr std::size_t kMaxAllowedPorts = 256;

// "tcp/8883", "udp/123": no leading zeros, 1-65535.
bool valid_port_rule(std::string_view rule) {
  if (!rule.starts_with("tcp/") && !rule.starts_with("udp/")) return false;
  const auto digits = rule.substr(4);
  if (digits.empty() || digits.size() > 5 || digits.front() == '0') return false;
  unsigned value = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value >= 1 && value <= 65535;
}

// Walks a parsed definition, recording every problem with its path.
class Reader {
 public:
  explicit Reader(Problems& problems) : problems_(problems) {}

  void unknown_keys(const json& object, const std::string& path, std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, value] : object.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        problems_.add(child(path, key), "unknown key");
    }
  }

  PosturePolicy posture(const json& j, const std::string& path) {
    PosturePolicy policy;
    if (!j.is_object()) {
      problems_.add(path, "must be an object");
      return policy;
    }
    unknown_keys(j, path,
                 {"allowed_ports", "remote_access", "upnp", "min_wifi_security", "wps", "serial_consoles",
                  "passwordless_accounts", "debug_interfaces"});
    for (const auto& [key, out] : {std::pair<std::string_view, bool*>{"remote_access", &policy.remote_access},
                                   {"upnp", &policy.upnp},
                                   {"wps", &policy.wps},
                                   {"serial_consoles", &policy.serial_consoles},
                                   {"passwordless_accounts", &policy.passwordless_accounts},
                                   {"debug_interfaces", &policy.debug_interfaces}}) {
      if (const auto it = j.find(key); it != j.end()) {
        if (it->is_boolean()) {
          *out = it->get<bool>();
        } else {
          problems_.add(child(path, key), "must be true or false");
        }
      }
    }
    if (const auto it = j.find("min_wifi_security"); it != j.end()) {
      if (it->is_string() && wifi_security_rank(it->get_ref<const std::string&>()) >= 0 &&
          it->get_ref<const std::string&>() != "wpa-eap") {
        policy.min_wifi_security = it->get<std::string>();
      } else {
        problems_.add(child(path, "min_wifi_security"), "must be open, wep, wpa-psk, wpa2-psk or wpa3-sae");
      }
    }
    if (const auto it = j.find("allowed_ports"); it != j.end()) {
      const std::string at = child(path, "allowed_ports");
      if (!it->is_array() || it->size() > kMaxAllowedPorts) {
        problems_.add(at, fmt::format("must be an array of at most {} \"tcp/N\" or \"udp/N\"", kMaxAllowedPorts));
      } else {
        std::vector<std::string> ports;
        for (std::size_t i = 0; i < it->size(); ++i) {
          const auto& p = (*it)[i];
          if (!p.is_string() || !valid_port_rule(p.get_ref<const std::string&>())) {
            problems_.add(element(at, i), "must be \"tcp/N\" or \"udp/N\" with N 1-65535");
          } else {
            ports.push_back(p.get<std::string>());
          }
        }
        policy.allowed_ports = std::move(ports);
      }
    }
    return policy;
  }

  // An integer in [min, max]; `out` keeps its default when absent or wrong.
  void bounded_integer(const json& object, std::string_view key, const std::string& path, std::uint32_t min,
                       std::uint32_t max, std::uint32_t& out) {
    const auto it = object.find(key);
    if (it == object.end()) return;
    const std::string at = child(path, key);
    bool in_range = false;
    if (it->is_number_unsigned()) {
      const auto v = it->get<std::uint64_t>();
      in_range = v >= min && v <= max;
    } else if (it->is_number_integer()) {
      const auto v = it->get<std::int64_t>();
      in_range = v >= static_cast<std::int64_t>(min) && v <= static_cast<std::int64_t>(max);
    }
    if (!in_range) {
      problems_.add(at, fmt::format("must be an integer between {} and {}", min, max));
      return;
    }
    out = it->get<std::uint32_t>();
  }

  FieldSpec field(const json& j, const std::string& path, bool is_param) {
    FieldSpec spec;
    if (!j.is_object()) {
      problems_.add(path, "must be an object");
      return spec;
    }
    if (is_param) {
      unknown_keys(j, path, {"name", "type", "unit", "min", "max", "max_length", "required"});
    } else {
      unknown_keys(j, path, {"name", "type", "unit", "min", "max", "max_length"});
    }

    spec.name = name(j, path);
    if (!is_param && (spec.name == "ts" || spec.name == "id")) {
      problems_.add(child(path, "name"), fmt::format("'{}' is reserved (the payload's {})", spec.name,
                                                     spec.name == "ts" ? "timestamp" : "message id"));
    }

    std::optional<ValueType> type;
    if (const auto t = j.find("type"); t == j.end()) {
      problems_.add(child(path, "type"), "is required");
    } else if (t->is_string()) {
      type = parse_type(t->get_ref<const std::string&>());
    }
    if (j.contains("type") && !type) problems_.add(child(path, "type"), kTypeRule);
    if (type) spec.type = *type;

    if (const auto unit = j.find("unit"); unit != j.end()) {
      if (!unit->is_string() || unit->get_ref<const std::string&>().size() > kMaxUnitBytes ||
          has_control(unit->get_ref<const std::string&>())) {
        problems_.add(child(path, "unit"),
                      fmt::format("must be a string of at most {} bytes without control characters", kMaxUnitBytes));
      } else {
        spec.unit = unit->get<std::string>();
      }
    }

    const bool numeric = type == ValueType::number || type == ValueType::integer;
    spec.min = bound(j, "min", path, type, numeric);
    spec.max = bound(j, "max", path, type, numeric);
    if (spec.min && spec.max && *spec.min > *spec.max) {
      problems_.add(child(path, "max"), fmt::format("must not be less than min ({})", *spec.min));
    }

    if (j.contains("max_length")) {
      if (type && type != ValueType::string) {
        problems_.add(child(path, "max_length"), "only for string values");
      } else {
        bounded_integer(j, "max_length", path, 1, kMaxStringBytes, spec.max_length);
      }
    }

    if (const auto required = j.find("required"); is_param && required != j.end()) {
      if (required->is_boolean()) {
        spec.required = required->get<bool>();
      } else {
        problems_.add(child(path, "required"), "must be true or false");
      }
    }
    return spec;
  }

  // Metrics or the parameters of one command.
  std::vector<FieldSpec> fields(const json& array, const std::string& path, std::size_t limit, bool is_param) {
    return list<FieldSpec>(array, path, limit,
                           [&](const json& j, const std::string& at) { return field(j, at, is_param); });
  }

  std::vector<CommandSpec> commands(const json& array, const std::string& path) {
    return list<CommandSpec>(array, path, kMaxCommands, [&](const json& j, const std::string& at) {
      CommandSpec command;
      if (!j.is_object()) {
        problems_.add(at, "must be an object");
        return command;
      }
      unknown_keys(j, at, {"name", "params"});
      command.name = name(j, at);
      if (const auto params = j.find("params"); params != j.end()) {
        command.params = fields(*params, child(at, "params"), kMaxParams, /*is_param=*/true);
      }
      return command;
    });
  }

 private:
  // The "name" of an object; empty (and a problem recorded) when missing or invalid.
  std::string name(const json& j, const std::string& path) {
    const auto it = j.find("name");
    if (it == j.end()) {
      problems_.add(child(path, "name"), "is required");
    } else if (!it->is_string() || !valid_name(it->get_ref<const std::string&>())) {
      problems_.add(child(path, "name"), kNameRule);
    } else {
      return it->get<std::string>();
    }
    return {};
  }

  // An array of at most `limit` named entries, each read by `read(element, path)`; names
  // must be unique among the entries.
  template <class T, class Read>
  std::vector<T> list(const json& array, const std::string& path, std::size_t limit, Read read) {
    std::vector<T> out;
    if (!array.is_array()) {
      problems_.add(path, "must be an array");
      return out;
    }
    if (array.size() > limit) problems_.add(path, fmt::format("at most {} entries (got {})", limit, array.size()));
    std::map<std::string, std::size_t, std::less<>> seen;
    for (std::size_t i = 0; i < array.size(); ++i) {
      const std::string at = element(path, i);
      T entry = read(array[i], at);
      if (!entry.name.empty()) {
        const auto [it, inserted] = seen.emplace(entry.name, i);
        if (!inserted) {
          problems_.add(child(at, "name"),
                        fmt::format("duplicate name '{}' (also {})", entry.name, element(path, it->second)));
        }
      }
      out.push_back(std::move(entry));
    }
    return out;
  }

  std::optional<double> bound(const json& j, std::string_view key, const std::string& path,
                              std::optional<ValueType> type, bool numeric) {
    const auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    const std::string at = child(path, key);
    if (type && !numeric) {
      problems_.add(at, "only for number and integer values");
      return std::nullopt;
    }
    if (!it->is_number()) {
      problems_.add(at, "must be a number");
      return std::nullopt;
    }
    const auto value = it->get<double>();
    if (type == ValueType::integer && (std::floor(value) != value || std::fabs(value) > kMaxIntegerBound)) {
      problems_.add(at, "must be a whole number between -2^53 and 2^53");
      return std::nullopt;
    }
    return value;
  }

  Problems& problems_;
};

}  // namespace

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::string_view to_string(ValueType type) {
  switch (type) {
    case ValueType::number: return "number";
    case ValueType::integer: return "integer";
    case ValueType::boolean: return "boolean";
    case ValueType::string: return "string";
  }
  return "unknown";
}

std::string format_problems(const std::vector<Problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += p.path.empty() ? fmt::format("  {}\n", p.message) : fmt::format("  {}: {}\n", p.path, p.message);
  }
  return out;
}

void Profile::build_index() {
  metrics_by_name_.resize(metrics_.size());
  for (std::size_t i = 0; i < metrics_.size(); ++i) metrics_by_name_[i] = static_cast<std::uint16_t>(i);
  std::sort(metrics_by_name_.begin(), metrics_by_name_.end(),
            [this](std::uint16_t a, std::uint16_t b) { return metrics_[a].name < metrics_[b].name; });
}

std::optional<std::size_t> Profile::metric_index(std::string_view name) const {
  const auto it =
      std::lower_bound(metrics_by_name_.begin(), metrics_by_name_.end(), name,
                       [this](std::uint16_t index, std::string_view key) { return metrics_[index].name < key; });
  if (it == metrics_by_name_.end() || metrics_[*it].name != name) return std::nullopt;
  return *it;
}

const FieldSpec* Profile::find_metric(std::string_view name) const {
  const auto index = metric_index(name);
  return index ? &metrics_[*index] : nullptr;
}

const CommandSpec* Profile::find_command(std::string_view name) const {
  const auto it =
      std::find_if(commands_.begin(), commands_.end(), [&](const CommandSpec& c) { return c.name == name; });
  return it == commands_.end() ? nullptr : &*it;
}

ProfileResult parse_profile(std::string_view json_text) {
  if (json_text.size() > kMaxDefinitionBytes) {
    return tl::unexpected(std::vector<Problem>{{"", fmt::format("larger than {} bytes", kMaxDefinitionBytes)}});
  }
  Problems problems;
  KeyTracker tracker(problems);
  json root;
  try {
    root = json::parse(
        json_text.begin(), json_text.end(),
        [&tracker](int depth, json::parse_event_t event, json& parsed) {
          return tracker.on_event(depth, event, parsed);
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const ProfileTooDeep&) {
    return tl::unexpected(std::vector<Problem>{{"", fmt::format("nested deeper than {} levels", kMaxDepth)}});
  } catch (const json::parse_error& e) {
    return tl::unexpected(std::vector<Problem>{{"", fmt::format("not valid JSON (at byte {})", e.byte)}});
  } catch (const json::exception&) {
    // out_of_range: a number too large for a double.
    return tl::unexpected(std::vector<Problem>{{"", "not valid JSON (a number is out of range)"}});
  }

  if (!root.is_object()) {
    problems.add("", "must be a JSON object");
    return tl::unexpected(problems.take());
  }
  Reader r(problems);
  r.unknown_keys(root, "", {"metrics", "commands", "heartbeat_seconds", "max_message_bytes", "posture"});

  Profile profile;
  if (const auto metrics = root.find("metrics"); metrics == root.end()) {
    problems.add("metrics", "is required (an empty array for a device without telemetry)");
  } else {
    profile.metrics_ = r.fields(*metrics, "metrics", kMaxMetrics, /*is_param=*/false);
  }
  if (const auto commands = root.find("commands"); commands != root.end()) {
    profile.commands_ = r.commands(*commands, "commands");
  }
  std::uint32_t heartbeat = kDefaultHeartbeatSeconds;
  r.bounded_integer(root, "heartbeat_seconds", "", 1, kMaxHeartbeatSeconds, heartbeat);
  profile.heartbeat_ = std::chrono::seconds(heartbeat);
  r.bounded_integer(root, "max_message_bytes", "", kMinMessageBytes, kMaxMessageBytes, profile.max_message_bytes_);
  if (const auto posture = root.find("posture"); posture != root.end()) {
    profile.posture_ = r.posture(*posture, "posture");
  }

  if (!problems.empty()) return tl::unexpected(problems.take());
  profile.build_index();
  return profile;
}

const Profile& generic_profile() {
  static const Profile generic = [] {
    Profile p;
    p.accepts_any_metric_ = true;
    return p;
  }();
  return generic;
}

std::string_view sample_environment_profile_json() {
  return R"({
  "metrics": [
    {"name": "temperature", "type": "number", "unit": "°C", "min": -40, "max": 125},
    {"name": "humidity", "type": "number", "unit": "%", "min": 0, "max": 100},
    {"name": "power", "type": "number", "unit": "W", "min": 0, "max": 10000},
    {"name": "door_open", "type": "boolean"},
    {"name": "tamper", "type": "boolean"}
  ],
  "commands": [
    {"name": "set_interval", "params": [{"name": "seconds", "type": "integer", "min": 1, "max": 86400, "required": true}]},
    {"name": "set_actuator", "params": [{"name": "on", "type": "boolean", "required": true}]},
    {"name": "report_posture", "params": []}
  ],
  "heartbeat_seconds": 60,
  "max_message_bytes": 4096
}
)";
}

}  // namespace torii::policy

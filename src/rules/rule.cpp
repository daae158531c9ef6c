#include "rules/rule.h"

#include <algorithm>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "policy/acl.h"
#include "policy/profile.h"
#include "policy/telemetry.h"

namespace torii::rules {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxSelectorValueBytes = 128;

// Characters, not bytes: UTF-8 continuation bytes do not count. nlohmann has already checked
// that the text is UTF-8.
std::size_t characters(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool printable_ascii_word(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

class Reader {
 public:
  std::vector<std::string> problems;

  void add(const std::string& path, std::string_view message) {
    problems.push_back(fmt::format("{}: {}", path, message));
  }

  // Refuses keys outside `known`.
  void only(const json& object, const std::string& path, std::initializer_list<std::string_view> known) {
    for (const auto& [key, value] : object.items()) {
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      // The key is input: named only when it looks like a field name.
      const bool nameable = key.size() <= 32 && policy::valid_name(key);
      if (nameable) {
        add(path.empty() ? key : fmt::format("{}.{}", path, key), "unknown field");
      } else {
        add(path.empty() ? "(root)" : path, "unknown field");
      }
    }
  }

  std::optional<std::string> string(const json& object, const char* key, const std::string& path, bool required) {
    const auto it = object.find(key);
    if (it == object.end()) {
      if (required) add(path, "required");
      return std::nullopt;
    }
    if (!it->is_string()) {
      add(path, "must be a string");
      return std::nullopt;
    }
    return it->get<std::string>();
  }

  std::chrono::milliseconds hold(const json& object, const char* key) {
    const auto text = string(object, key, key, false);
    if (!text) return std::chrono::milliseconds{0};
    const auto d = parse_duration(*text);
    if (!d) {
      add(key, "must be a duration such as 30s, 5m or 2h");
    } else if (*d > kMaxHold) {
      add(key, "must be at most 24h");
    } else {
      return *d;
    }
    return std::chrono::milliseconds{0};
  }

  std::vector<std::string> list(const json& object, const char* key, const std::string& path, std::size_t limit,
                                bool (*valid)(std::string_view), std::string_view rule) {
    std::vector<std::string> out;
    const auto it = object.find(key);
    if (it == object.end()) return out;
    if (!it->is_array()) {
      add(path, "must be an array of strings");
      return out;
    }
    if (it->size() > limit) {
      add(path, fmt::format("at most {} entries", limit));
      return out;
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& entry = (*it)[i];
      const std::string entry_path = fmt::format("{}[{}]", path, i);
      if (!entry.is_string() || !valid(entry.get_ref<const std::string&>())) {
        add(entry_path, rule);
      } else {
        out.push_back(entry.get<std::string>());
      }
    }
    return out;
  }

  Selector selector(const json& root) {
    Selector s;
    const auto it = root.find("selector");
    if (it == root.end()) return s;
    if (!it->is_object()) {
      add("selector", "must be an object");
      return s;
    }
    only(*it, "selector", {"devices", "profiles", "segments", "tags"});
    s.device_ids = list(*it, "devices", "selector.devices", kMaxSelectorEntries, policy::valid_device_id,
                        "must be a device id (a-z, 0-9 and -, at most 63)");
    s.profiles = list(
        *it, "profiles", "selector.profiles", kMaxSelectorEntries,
        [](std::string_view v) { return !v.empty() && v.size() <= kMaxSelectorValueBytes && printable_ascii_word(v); },
        "must be a profile id (1..128 printable characters, no spaces)");
    s.segments = list(*it, "segments", "selector.segments", kMaxSelectorEntries, policy::valid_segment_name,
                      "must be a segment name (a-z, 0-9 and -, at most 63)");
    s.tags = list(*it, "tags", "selector.tags", kMaxSelectorEntries, policy::valid_tag,
                  "must be a tag (a-z, 0-9 and -, at most 63)");
    return s;
  }

  std::optional<Expression> expression(const json& object, const char* key, const std::string& path, ValueKind wanted) {
    const auto text = string(object, key, path, true);
    if (!text) return std::nullopt;
    auto parsed = Expression::parse(*text);
    if (!parsed) {
      add(path, describe(parsed.error()));
      return std::nullopt;
    }
    if (parsed->kind() != ValueKind::any && parsed->kind() != wanted) {
      add(path, wanted == ValueKind::boolean ? "0: must be true or false (a comparison), not a number"
                                             : "0: must be a number, not true or false");
      return std::nullopt;
    }
    return std::move(*parsed);
  }

  std::optional<Action> action(const json& a, const std::string& path) {
    if (!a.is_object()) {
      add(path, "must be an object");
      return std::nullopt;
    }
    const auto type = string(a, "type", path + ".type", true);
    if (!type) return std::nullopt;
    if (*type == "alert") {
      only(a, path, {"type"});
      return AlertAction{};
    }
    if (*type == "command") {
      only(a, path, {"type", "device", "command", "params", "on"});
      CommandAction c;
      bool ok = true;
      if (const auto device = string(a, "device", path + ".device", true)) {
        if (!policy::valid_device_id(*device)) {
          add(path + ".device", "must be a device id (a-z, 0-9 and -, at most 63)");
          ok = false;
        }
        c.device_id = *device;
      } else {
        ok = false;
      }
      if (const auto command = string(a, "command", path + ".command", true)) {
        if (!policy::valid_name(*command)) {
          add(path + ".command", "must be a command name (1..64 of a-z, 0-9 and _)");
          ok = false;
        }
        c.command = *command;
      } else {
        ok = false;
      }
      if (const auto params = a.find("params"); params != a.end()) {
        if (!params->is_object()) {
          add(path + ".params", "must be an object");
          ok = false;
        } else if (params->dump().size() > kMaxCommandParamsBytes) {
          add(path + ".params", fmt::format("larger than {} bytes", kMaxCommandParamsBytes));
          ok = false;
        } else {
          c.params = *params;
        }
      }
      if (const auto on = string(a, "on", path + ".on", false)) {
        if (*on == "clear") {
          c.on_clear = true;
        } else if (*on != "fire") {
          add(path + ".on", "must be \"fire\" or \"clear\"");
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      return c;
    }
    if (*type == "metric") {
      only(a, path, {"type", "name", "value"});
      MetricAction m;
      bool ok = true;
      if (const auto name = string(a, "name", path + ".name", true)) {
        if (!policy::valid_name(*name) || *name == "ts" || *name == "id") {
          add(path + ".name", "must be a metric name (1..64 of a-z, 0-9 and _; not ts or id)");
          ok = false;
        }
        m.name = *name;
      } else {
        ok = false;
      }
      auto value = expression(a, "value", path + ".value", ValueKind::number);
      if (!value || !ok) return std::nullopt;
      m.value = std::move(*value);
      return m;
    }
    if (*type == "notify") {
      only(a, path, {"type", "channels"});
      if (!a.contains("channels")) {
        add(path + ".channels", "required");
        return std::nullopt;
      }
      const std::size_t before = problems.size();
      NotifyAction n;
      n.channels = list(a, "channels", path + ".channels", kMaxChannels, policy::valid_message_id,
                        "must be a channel id (1..64 of A-Z, a-z, 0-9 and _.:-)");
      if (problems.size() != before) return std::nullopt;
      if (n.channels.empty()) {
        add(path + ".channels", "at least one channel");
        return std::nullopt;
      }
      return n;
    }
    add(path + ".type", "must be alert, command, metric or notify");
    return std::nullopt;
  }

  std::vector<Action> actions(const json& root) {
    std::vector<Action> out;
    const auto it = root.find("actions");
    if (it == root.end()) {
      add("actions", "required");
      return out;
    }
    if (!it->is_array()) {
      add("actions", "must be an array");
      return out;
    }
    if (it->empty() || it->size() > kMaxActions) {
      add("actions", fmt::format("between 1 and {} actions", kMaxActions));
      return out;
    }
    std::set<std::string> metric_names;
    bool alert = false;
    for (std::size_t i = 0; i < it->size(); ++i) {
      const std::string path = fmt::format("actions[{}]", i);
      auto a = action((*it)[i], path);
      if (!a) continue;
      if (std::holds_alternative<AlertAction>(*a)) {
        if (alert) add(path, "only one alert action");
        alert = true;
      }
      if (const auto* m = std::get_if<MetricAction>(&*a); m != nullptr && !metric_names.insert(m->name).second) {
        add(path + ".name", "another metric action has this name");
      }
      out.push_back(std::move(*a));
    }
    return out;
  }
};

std::string_view severity_name(Severity s) { return to_string(s); }

}  // namespace

bool matches(const Selector& selector, const DeviceFacts& device) {
  const auto in = [](const std::vector<std::string>& list, std::string_view value) {
    return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
  };
  const auto tagged = [&] {
    return selector.tags.empty() || std::any_of(selector.tags.begin(), selector.tags.end(), [&](const std::string& t) {
             return std::binary_search(device.tags.begin(), device.tags.end(), t);
           });
  };
  return in(selector.device_ids, device.id) && in(selector.profiles, device.profile_id) &&
         in(selector.segments, device.segment) && tagged();
}

std::string_view to_string(Severity severity) {
  switch (severity) {
    case Severity::info: return "info";
    case Severity::warning: return "warning";
    case Severity::critical: return "critical";
  }
  return "warning";
}

tl::expected<RuleDefinition, std::vector<std::string>> parse_rule(std::string_view json_text) {
  if (json_text.size() > kMaxRuleBytes) {
    return tl::unexpected(std::vector<std::string>{fmt::format("(root): larger than {} bytes", kMaxRuleBytes)});
  }
  const json root = json::parse(json_text, nullptr, false);
  if (root.is_discarded()) return tl::unexpected(std::vector<std::string>{"(root): not valid JSON"});
  if (!root.is_object()) return tl::unexpected(std::vector<std::string>{"(root): must be an object"});

  Reader r;
  r.only(root, "", {"name", "selector", "condition", "for", "clear_for", "severity", "actions"});
  RuleDefinition rule;
  if (const auto name = r.string(root, "name", "name", true)) {
    const std::size_t n = characters(*name);
    if (n == 0 || n > kMaxRuleNameChars || has_control(*name)) {
      r.add("name", fmt::format("1..{} characters, no control characters", kMaxRuleNameChars));
    }
    rule.name = *name;
  }
  rule.selector = r.selector(root);
  if (auto condition = r.expression(root, "condition", "condition", ValueKind::boolean)) {
    rule.condition = std::move(*condition);
  }
  rule.hold = r.hold(root, "for");
  rule.clear_hold = r.hold(root, "clear_for");
  if (const auto severity = r.string(root, "severity", "severity", false)) {
    if (*severity == "info") {
      rule.severity = Severity::info;
    } else if (*severity == "warning") {
      rule.severity = Severity::warning;
    } else if (*severity == "critical") {
      rule.severity = Severity::critical;
    } else {
      r.add("severity", "must be info, warning or critical");
    }
  }
  rule.actions = r.actions(root);

  std::set<std::string> metrics;
  const auto read = [&metrics](const Expression& e) {
    for (auto& m : e.metrics()) metrics.insert(std::move(m));
  };
  read(rule.condition);
  for (const Action& a : rule.actions) {
    if (const auto* m = std::get_if<MetricAction>(&a)) read(m->value);
  }
  if (metrics.size() > kMaxRuleMetrics) {
    r.add("(root)", fmt::format("the condition and metric actions read more than {} metrics", kMaxRuleMetrics));
  }
  if (!r.problems.empty()) return tl::unexpected(std::move(r.problems));
  return rule;
}

nlohmann::json to_json(const RuleDefinition& rule) {
  json out = json::object();
  out["name"] = rule.name;
  json selector = json::object();
  if (!rule.selector.device_ids.empty()) selector["devices"] = rule.selector.device_ids;
  if (!rule.selector.profiles.empty()) selector["profiles"] = rule.selector.profiles;
  if (!rule.selector.segments.empty()) selector["segments"] = rule.selector.segments;
  if (!rule.selector.tags.empty()) selector["tags"] = rule.selector.tags;
  out["selector"] = std::move(selector);
  out["condition"] = rule.condition.text();
  if (rule.hold.count() != 0) out["for"] = format_duration(rule.hold);
  if (rule.clear_hold.count() != 0) out["clear_for"] = format_duration(rule.clear_hold);
  out["severity"] = std::string(severity_name(rule.severity));
  json actions = json::array();
  for (const Action& a : rule.actions) {
    json j = json::object();
    if (std::holds_alternative<AlertAction>(a)) {
      j["type"] = "alert";
    } else if (const auto* c = std::get_if<CommandAction>(&a)) {
      j["type"] = "command";
      j["device"] = c->device_id;
      j["command"] = c->command;
      j["params"] = c->params;
      j["on"] = c->on_clear ? "clear" : "fire";
    } else if (const auto* m = std::get_if<MetricAction>(&a)) {
      j["type"] = "metric";
      j["name"] = m->name;
      j["value"] = m->value.text();
    } else if (const auto* n = std::get_if<NotifyAction>(&a)) {
      j["type"] = "notify";
      j["channels"] = n->channels;
    }
    actions.push_back(std::move(j));
  }
  out["actions"] = std::move(actions);
  return out;
}

}  // namespace torii::rules

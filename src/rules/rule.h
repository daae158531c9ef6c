// Rule definitions (the Decision Trigger): which devices a rule watches, the condition
// that makes it fire, its hysteresis and what it does. Pure: JSON text in, values out.
//
// The JSON people write (API body, CLI file); docs/rules.md has the full reference:
//
//   {"name": "hot", "selector": {"profiles": ["thermo"], "tags": ["cold-room"]},
//    "condition": "avg(temperature, 5m) > 30 and humidity < 80",
//    "for": "30s", "clear_for": "1m", "severity": "critical",
//    "actions": [{"type": "alert"},
//                {"type": "command", "device": "fan-1", "command": "set_actuator", "params": {"state": true}},
//                {"type": "command", "device": "fan-1", "command": "set_actuator", "params": {"state": false},
//                 "on": "clear"},
//                {"type": "metric", "name": "temp_avg", "value": "avg(temperature, 5m)"},
//                {"type": "notify", "channels": ["ops"]}]}
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "rules/expression.h"

namespace torii::rules {

inline constexpr std::size_t kMaxRuleBytes = std::size_t{64} * 1024;
inline constexpr std::size_t kMaxRuleNameChars = 100;
inline constexpr std::size_t kMaxSelectorEntries = 100;
inline constexpr std::size_t kMaxActions = 16;
inline constexpr std::size_t kMaxChannels = 16;
inline constexpr std::size_t kMaxCommandParamsBytes = 4096;
// Distinct metrics a rule (condition and metric actions together) reads; bounds its state.
inline constexpr std::size_t kMaxRuleMetrics = 64;
inline constexpr std::chrono::milliseconds kMaxHold = std::chrono::hours(24);

// Every non-empty list must match (AND); within a list any entry (OR): a device matches
// `tags` when it has at least one of them. All empty: every device of the organisation.
struct Selector {
  std::vector<std::string> device_ids, profiles, segments, tags;
  friend bool operator==(const Selector&, const Selector&) = default;
};

// A device as selectors see it; views into the caller's strings.
struct DeviceFacts {
  std::string_view id, profile_id, segment;
  std::span<const std::string> tags;  // sorted (store::DeviceRecord::tags)
};

[[nodiscard]] bool matches(const Selector& selector, const DeviceFacts& device);

enum class Severity { info, warning, critical };
[[nodiscard]] std::string_view to_string(Severity severity);

// Raise an alert when the rule fires, resolve it when it clears.
struct AlertAction {
  friend bool operator==(const AlertAction&, const AlertAction&) = default;
};
// Send a command to a device when the rule fires (or, with on_clear, when it clears).
struct CommandAction {
  std::string device_id;
  std::string command;
  nlohmann::json params = nlohmann::json::object();
  bool on_clear = false;
  friend bool operator==(const CommandAction&, const CommandAction&) = default;
};
// A derived metric, computed and published on every evaluation of a matching message.
struct MetricAction {
  std::string name;
  Expression value;
  friend bool operator==(const MetricAction&, const MetricAction&) = default;
};
// Notify these channels (ids) when the rule fires and when it clears.
struct NotifyAction {
  std::vector<std::string> channels;
  friend bool operator==(const NotifyAction&, const NotifyAction&) = default;
};
using Action = std::variant<AlertAction, CommandAction, MetricAction, NotifyAction>;

struct RuleDefinition {
  std::string name;  // 1..100 characters, no control characters
  Selector selector;
  Expression condition;
  std::chrono::milliseconds hold{0};        // "for": true this long before the rule fires
  std::chrono::milliseconds clear_hold{0};  // "clear_for": not true this long before it clears
  Severity severity = Severity::warning;
  std::vector<Action> actions;  // at least one
  friend bool operator==(const RuleDefinition&, const RuleDefinition&) = default;
};

// Parses and checks a definition. Reports every problem, each as "path: message"
// ("actions[2].device: required", "condition: 14: unknown function 'mean'").
[[nodiscard]] tl::expected<RuleDefinition, std::vector<std::string>> parse_rule(std::string_view json_text);
// The JSON of a definition; parse_rule reads it back to an equal definition.
[[nodiscard]] nlohmann::json to_json(const RuleDefinition& rule);

}  // namespace torii::rules

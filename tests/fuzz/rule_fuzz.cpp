// Fuzzes the rules engine's parsers: the condition language (Expression::parse),
// rule definitions (parse_rule), saved device states (restore) and states saved with their
// windows in a table (SavedWindows::read, then restore). The first byte picks which (% 4 = 0
// expression, 1 rule, 2 state, 3 {"windows":[...],"state":{...}}); the rest is the text.
//
// Properties beyond "does not crash":
//   - a parse error points inside the text (position <= size) and its message is short
//     printable ASCII; a refused rule lists at least one problem, each short printable ASCII;
//   - a parsed expression keeps its text, reads valid metric names, stays within the window
//     limits and parses again to the same; evaluating it never yields NaN or infinity;
//   - a parsed rule reads back unchanged through to_json and parse_rule, and evaluating it
//     over a few messages and ticks gives derived values that are finite and summaries that
//     are short;
//   - a restored state serialises to text that restores to the same state, and a tick on it
//     does not fail;
//   - a state restored with a table serialises with a table of its own to text and a table
//     that read back and restore to the same state.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "policy/profile.h"
#include "rules/evaluator.h"
#include "rules/expression.h"
#include "rules/rule.h"

namespace torii::fuzz {
namespace {

using namespace torii::rules;

constexpr UnixMillis kT0 = 1'780'000'000'000;

bool printable_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// Fixed inputs: each metric's value derived from its name, so evaluation is repeatable.
class FixedInputs final : public Inputs {
 public:
  [[nodiscard]] std::optional<std::variant<double, bool>> latest(std::string_view metric) const override {
    if (metric.size() % 3 == 0) return std::nullopt;
    if (metric.size() % 3 == 1) return static_cast<double>(metric.size()) - 2.5;
    return metric.size() % 2 == 0;
  }
  [[nodiscard]] std::optional<double> window(WindowFunction f, std::string_view metric,
                                             std::chrono::milliseconds d) const override {
    if (metric.size() % 4 == 0) return std::nullopt;
    return static_cast<double>(d.count()) / 1000.0 - static_cast<double>(static_cast<int>(f)) * 1e300;
  }
  [[nodiscard]] std::optional<std::chrono::milliseconds> silence() const override { return std::chrono::minutes(5); }
};

void check_value(const Value& v) {
  if (const auto* d = std::get_if<double>(&v)) check(std::isfinite(*d));
}

std::vector<policy::Metric> message(const std::vector<std::string>& names, int step) {
  std::vector<policy::Metric> out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    switch ((i + static_cast<std::size_t>(step)) % 4) {
      case 0: out.push_back({names[i], static_cast<double>(step) * 7.5 - 20}); break;
      case 1: out.push_back({names[i], std::int64_t{step} * 3}); break;
      case 2: out.push_back({names[i], step % 2 == 0}); break;
      default: out.push_back({names[i], std::string("text")}); break;
    }
  }
  return out;
}

void check_evaluation(const Evaluation& e) {
  for (const auto& [name, value] : e.derived) check(std::isfinite(value) && policy::valid_name(name));
  check(e.summary.size() <= 300);
  check(e.transition == Transition::none ? e.summary.empty() : !e.summary.empty());
}

void run(const RuleDefinition& rule) {
  const Evaluator evaluator(std::make_shared<const RuleDefinition>(rule));
  std::vector<std::string> names = rule.condition.metrics();
  for (const Action& a : rule.actions) {
    if (const auto* m = std::get_if<MetricAction>(&a)) {
      for (auto& n : m->value.metrics()) names.push_back(std::move(n));
    }
  }
  DeviceState state;
  for (int step = 0; step < 6; ++step) {
    const UnixMillis at = kT0 + step * 20'000;
    check_evaluation(evaluator.observe(state, message(names, step), at));
    check_evaluation(evaluator.tick(state, at + 10'000));
    if (const auto next = evaluator.next_deadline(state)) check(*next > at + 10'000);
  }
  const auto restored = restore(serialize(state));
  check(restored.has_value() && *restored == state);
}

void check_expression(std::string_view text) {
  const auto parsed = Expression::parse(text);
  if (!parsed) {
    check(parsed.error().position <= text.size());
    check(!parsed.error().message.empty() && parsed.error().message.size() <= 120);
    check(printable_ascii(parsed.error().message));
    return;
  }
  const Expression& e = *parsed;
  check(e.text() == text);
  for (const auto& m : e.metrics()) check(policy::valid_name(m));
  check(e.horizon() <= kMaxWindow);
  check(e.windows().size() + e.absences().size() <= kMaxWindowCalls);
  const auto again = Expression::parse(e.text());
  check(again.has_value() && again->kind() == e.kind() && again->metrics() == e.metrics());
  const FixedInputs inputs;
  check_value(e.evaluate(inputs));
  (void)e.explain(inputs);

  RuleDefinition rule;
  rule.name = "fuzz";
  rule.actions.emplace_back(AlertAction{});
  if (e.kind() != ValueKind::number) rule.condition = e;
  if (e.kind() != ValueKind::boolean) rule.actions.emplace_back(MetricAction{"derived", e});
  rule.hold = std::chrono::seconds(15);
  rule.clear_hold = std::chrono::seconds(30);
  run(rule);
}

void check_rule(std::string_view text) {
  const auto parsed = parse_rule(text);
  if (!parsed) {
    check(!parsed.error().empty());
    for (const auto& p : parsed.error()) check(!p.empty() && p.size() <= 300 && printable_ascii(p));
    return;
  }
  const auto again = parse_rule(to_json(*parsed).dump());
  check(again.has_value() && *again == *parsed);
  run(*parsed);
}

void check_state(std::string_view text) {
  const auto restored = restore(text);
  if (!restored) {
    check(!restored.error().empty() && printable_ascii(restored.error()));
    return;
  }
  const auto again = restore(serialize(*restored));
  check(again.has_value() && *again == *restored);
  static const auto rule = std::make_shared<const RuleDefinition>(
      parse_rule(R"j({"name":"s","condition":"avg(t, 1m) > 1 or absent(5m)","for":"10s",
                   "actions":[{"type":"alert"},{"type":"metric","name":"r","value":"rate(u, 1h)"}]})j")
          .value());
  const Evaluator evaluator(rule);
  DeviceState state = *restored;
  const UnixMillis now = state.now().value_or(kT0);
  check_evaluation(evaluator.tick(state, now + 1000));
  check_evaluation(evaluator.observe(state, {{"t", 2.0}, {"u", 3.0}}, now + 2000));
  // What the evaluator made of it (format-1 samples put into windows, buckets dropped) is
  // itself a state restore() accepts.
  const auto stepped = restore(serialize(state));
  check(stepped.has_value() && *stepped == state);
}

void check_shared(std::string_view text) {
  const auto root = nlohmann::json::parse(text, nullptr, false);
  if (!root.is_object() || !root.contains("windows") || !root.contains("state")) return;
  auto saved = SavedWindows::read(root["windows"]);
  if (!saved) {
    check(!saved.error().empty() && printable_ascii(saved.error()));
    return;
  }
  const auto restored = restore(root["state"].dump(), &*saved);
  if (!restored) {
    check(!restored.error().empty() && printable_ascii(restored.error()));
    return;
  }
  WindowTable table;
  std::string state;
  serialize(*restored, state, &table);
  std::string list;
  table.write(list);
  auto saved_again = SavedWindows::read(nlohmann::json::parse(list, nullptr, false));
  check(saved_again.has_value() && saved_again->size() == table.size());
  const auto again = restore(state, &*saved_again);
  check(again.has_value() && *again == *restored);
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: torii::fuzz::check_expression(text); break;
    case 1: torii::fuzz::check_rule(text); break;
    case 2: torii::fuzz::check_state(text); break;
    default: torii::fuzz::check_shared(text); break;
  }
  return 0;
}

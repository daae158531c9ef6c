// The condition language of rules (the Decision Trigger): a small, total expression
// language over a device's metrics. Pure: text in, values out; no I/O, no clock.
//
// Grammar, functions, limits and the error format: docs/rules.md, "The condition language".
// In short:
//
//   temperature > 30 and not door_open == true
//   avg(temperature, 5m) > 30 or rate(pressure, 1m) < -2.5
//   absent(10m)
//
// Cost is bounded by construction: at most kMaxTextBytes of text, kMaxNodes nodes, nesting
// depth kMaxDepth and kMaxWindowCalls windowed functions; no loops, no user functions.
// Evaluation is three-valued (true, false, unknown): a missing metric, an empty window or a
// division by zero make what depends on them unknown, and a rule fires only on true.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <tl/expected.hpp>

namespace torii::rules {

inline constexpr std::size_t kMaxTextBytes = 1000;
inline constexpr std::size_t kMaxNodes = 64;
inline constexpr std::size_t kMaxDepth = 16;
inline constexpr std::size_t kMaxWindowCalls = 8;
inline constexpr std::chrono::milliseconds kMinWindow = std::chrono::seconds(1);
inline constexpr std::chrono::milliseconds kMaxWindow = std::chrono::hours(24);

struct ParseError {
  std::size_t position = 0;  // 0-based byte offset into the text
  std::string message;
  friend bool operator==(const ParseError&, const ParseError&) = default;
};

// "12: expected ')'": the position, then the message. Callers put the field's path in front
// ("condition: 12: expected ')'").
[[nodiscard]] std::string describe(const ParseError& error);

// What an expression yields. Checked when parsing where the parser can tell (a literal, an
// operator's result); a bare metric or last(m) is `any` until evaluation sees its value.
enum class ValueKind { number, boolean, any };

// The windowed functions; `absent` has no metric.
enum class WindowFunction { avg, min, max, count, rate };

// The result of evaluating an expression: unknown (std::monostate), a number or a boolean.
using Value = std::variant<std::monostate, double, bool>;

// What an expression reads while it is evaluated; the rule evaluator implements it over a
// DeviceState, tests with fixed values. Evaluation calls it only for the metrics and windows
// the expression names.
class Inputs {
 public:
  virtual ~Inputs() = default;
  // The latest value of the metric (numbers and integers as double), nullopt when none.
  [[nodiscard]] virtual std::optional<std::variant<double, bool>> latest(std::string_view metric) const = 0;
  // The function over the metric's numeric samples in the window (now - window, now];
  // nullopt when it has no value (avg/min/max of no samples, rate of fewer than two).
  [[nodiscard]] virtual std::optional<double> window(WindowFunction function, std::string_view metric,
                                                     std::chrono::milliseconds window) const = 0;
  // How long since the device's last message (or since evaluation started, before the first).
  [[nodiscard]] virtual std::optional<std::chrono::milliseconds> silence() const = 0;
};

// A parsed expression: immutable, cheap to copy (the tree is shared).
class Expression {
 public:
  struct Node;
  struct Tree;

  // The expression `false`, so that definitions holding one can be default-constructed.
  Expression();

  // Refuses anything outside the language or its limits, with the byte offset of the problem.
  [[nodiscard]] static tl::expected<Expression, ParseError> parse(std::string_view text);

  // The text it was parsed from, unchanged.
  [[nodiscard]] const std::string& text() const;
  // The metric names it reads, sorted, each once.
  [[nodiscard]] std::vector<std::string> metrics() const;
  // The longest window (or absence) duration it uses; zero when none.
  [[nodiscard]] std::chrono::milliseconds horizon() const;
  // Each distinct (metric, window) of its windowed functions, sorted. The evaluator keeps
  // the longest window's history of exactly these metrics.
  [[nodiscard]] std::vector<std::pair<std::string, std::chrono::milliseconds>> windows() const;
  // The durations of its absent(D) calls, ascending, each once.
  [[nodiscard]] std::vector<std::chrono::milliseconds> absences() const;
  [[nodiscard]] ValueKind kind() const;

  // Total: never throws, never yields NaN or infinity (those become unknown).
  [[nodiscard]] Value evaluate(const Inputs& inputs) const;
  // A short account of the comparisons (and absent calls) at the top of the expression with
  // the values they saw, e.g. "avg(temperature, 5m) > 30: 31.2 > 30". Only the expression's
  // own text and numbers appear: nothing a device sent beyond numeric values.
  [[nodiscard]] std::string explain(const Inputs& inputs) const;

  // Expressions are equal when their texts are.
  friend bool operator==(const Expression& a, const Expression& b) { return a.text() == b.text(); }

 private:
  explicit Expression(std::shared_ptr<const Tree> tree) : tree_(std::move(tree)) {}
  std::shared_ptr<const Tree> tree_;  // never null
};

// "5m" -> 5 minutes: a whole number followed by s, m or h, nothing else. nullopt otherwise
// (the range is the caller's to check).
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// The inverse, in the largest unit that is exact ("90s", "5m", "2h"); "0s" for zero.
[[nodiscard]] std::string format_duration(std::chrono::milliseconds duration);

}  // namespace torii::rules

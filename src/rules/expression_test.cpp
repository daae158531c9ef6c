#include "rules/expression.h"

#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::rules {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// Fixed values: latest per metric, one value per (function, metric, window), a silence.
class FakeInputs final : public Inputs {
 public:
  std::map<std::string, std::variant<double, bool>, std::less<>> values;
  std::map<std::tuple<WindowFunction, std::string, milliseconds>, double> windows;
  std::optional<milliseconds> quiet;

  [[nodiscard]] std::optional<std::variant<double, bool>> latest(std::string_view metric) const override {
    const auto it = values.find(metric);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::optional<double> window(WindowFunction f, std::string_view metric, milliseconds d) const override {
    const auto it = windows.find({f, std::string(metric), d});
    if (it == windows.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::optional<milliseconds> silence() const override { return quiet; }
};

Expression parsed(std::string_view text) {
  auto e = Expression::parse(text);
  EXPECT_TRUE(e.has_value()) << text << ": " << (e ? "" : describe(e.error()));
  return e ? *e : Expression();
}

Value eval(std::string_view text, const FakeInputs& inputs = {}) { return parsed(text).evaluate(inputs); }

ParseError error_of(std::string_view text) {
  auto e = Expression::parse(text);
  EXPECT_FALSE(e.has_value()) << "parsed: " << text;
  return e ? ParseError{} : e.error();
}

const Value kUnknown = std::monostate{};

TEST(Expression, ArithmeticPrecedence) {
  EXPECT_EQ(eval("1 + 2 * 3"), Value(7.0));
  EXPECT_EQ(eval("(1 + 2) * 3"), Value(9.0));
  EXPECT_EQ(eval("10 - 4 - 3"), Value(3.0));  // left-associative
  EXPECT_EQ(eval("12 / 3 / 2"), Value(2.0));
  EXPECT_EQ(eval("-2 * -3"), Value(6.0));
  EXPECT_EQ(eval("2.5e1 + 0.5"), Value(25.5));
}

TEST(Expression, LogicPrecedence) {
  // and binds tighter than or; not tighter than and; comparison tighter than not.
  EXPECT_EQ(eval("true or false and false"), Value(true));
  EXPECT_EQ(eval("(true or false) and false"), Value(false));
  EXPECT_EQ(eval("not 1 > 2 and 3 > 2"), Value(true));
  EXPECT_EQ(eval("not (1 < 2 and 3 > 2)"), Value(false));
  EXPECT_EQ(eval("1 + 1 == 2"), Value(true));
  EXPECT_EQ(eval("not not true"), Value(true));
}

TEST(Expression, Comparisons) {
  FakeInputs in;
  in.values = {{"t", 30.0}, {"door_open", true}};
  EXPECT_EQ(eval("t > 30", in), Value(false));
  EXPECT_EQ(eval("t >= 30", in), Value(true));
  EXPECT_EQ(eval("t < 30.5", in), Value(true));
  EXPECT_EQ(eval("t <= 29.9", in), Value(false));
  EXPECT_EQ(eval("t == 30", in), Value(true));
  EXPECT_EQ(eval("t != 30", in), Value(false));
  EXPECT_EQ(eval("door_open == true", in), Value(true));
  EXPECT_EQ(eval("door_open != true", in), Value(false));
  EXPECT_EQ(eval("door_open and t > 1", in), Value(true));
  EXPECT_EQ(eval("last(t) * 2", in), Value(60.0));
  // A metric whose value has the other type than the expression needs is unknown.
  EXPECT_EQ(eval("door_open > 1", in), kUnknown);
  EXPECT_EQ(eval("t and true", in), kUnknown);
  EXPECT_EQ(eval("door_open == 1", in), kUnknown);
}

TEST(Expression, MissingMetricIsUnknownThreeValued) {
  FakeInputs in;
  in.values = {{"t", 20.0}};
  EXPECT_EQ(eval("missing > 1", in), kUnknown);
  EXPECT_EQ(eval("not missing > 1", in), kUnknown);
  EXPECT_EQ(eval("missing > 1 and t > 10", in), kUnknown);
  EXPECT_EQ(eval("missing > 1 and t > 30", in), Value(false));
  EXPECT_EQ(eval("missing > 1 or t > 10", in), Value(true));
  EXPECT_EQ(eval("missing > 1 or t > 30", in), kUnknown);
  EXPECT_EQ(eval("missing + 1", in), kUnknown);
}

TEST(Expression, DivisionByZeroIsUnknownNeverNaN) {
  FakeInputs in;
  in.values = {{"zero", 0.0}, {"big", 1e308}};
  EXPECT_EQ(eval("1 / zero > 0", in), kUnknown);
  EXPECT_EQ(eval("not (1 / zero > 0)", in), kUnknown);
  EXPECT_EQ(eval("0 / zero", in), kUnknown);
  EXPECT_EQ(eval("big * 10", in), kUnknown);  // overflow to infinity
  EXPECT_EQ(eval("zero / 2", in), Value(0.0));
}

TEST(Expression, WindowFunctionsAndAbsence) {
  FakeInputs in;
  in.windows = {{{WindowFunction::avg, "temperature", minutes(5)}, 31.25},
                {{WindowFunction::min, "temperature", minutes(5)}, 29.0},
                {{WindowFunction::max, "temperature", hours(2)}, 40.0},
                {{WindowFunction::count, "temperature", seconds(30)}, 3.0},
                {{WindowFunction::rate, "pressure", minutes(1)}, -3.0}};
  EXPECT_EQ(eval("avg(temperature, 5m) > 30", in), Value(true));
  EXPECT_EQ(eval("min(temperature, 5m)", in), Value(29.0));
  EXPECT_EQ(eval("max(temperature, 2h)", in), Value(40.0));
  EXPECT_EQ(eval("count(temperature, 30s) >= 3", in), Value(true));
  EXPECT_EQ(eval("rate(pressure, 1m) < -2.5", in), Value(true));
  EXPECT_EQ(eval("avg(humidity, 5m) > 1", in), kUnknown);  // empty window
  EXPECT_EQ(eval("absent(5m)", in), kUnknown);             // no clock yet
  in.quiet = minutes(5);
  EXPECT_EQ(eval("absent(5m)", in), Value(true));
  EXPECT_EQ(eval("absent(6m)", in), Value(false));
}

TEST(Expression, ReportsMetricsWindowsAndHorizon) {
  const Expression e = parsed("avg(t, 5m) > max(t, 1h) and rate(p, 30s) > 0 and h < 3 and absent(2h) and absent(1m)");
  EXPECT_THAT(e.metrics(), ElementsAre("h", "p", "t"));
  EXPECT_THAT(e.windows(), ElementsAre(Pair("p", seconds(30)), Pair("t", minutes(5)), Pair("t", hours(1))));
  EXPECT_THAT(e.absences(), ElementsAre(minutes(1), hours(2)));
  EXPECT_EQ(e.horizon(), hours(2));
  EXPECT_EQ(e.kind(), ValueKind::boolean);
  EXPECT_EQ(parsed("t * 2").kind(), ValueKind::number);
  EXPECT_EQ(parsed("t").kind(), ValueKind::any);
  EXPECT_EQ(parsed("t").horizon(), milliseconds(0));
  EXPECT_EQ(e.text(), "avg(t, 5m) > max(t, 1h) and rate(p, 30s) > 0 and h < 3 and absent(2h) and absent(1m)");
  // A metric named like a function is a metric unless called.
  EXPECT_THAT(parsed("count > 1").metrics(), ElementsAre("count"));
}

TEST(Expression, ExplainShowsComparisonsWithValues) {
  FakeInputs in;
  in.windows = {{{WindowFunction::avg, "temperature", minutes(5)}, 31.2}};
  in.values = {{"humidity", 55.0}};
  EXPECT_EQ(parsed("avg(temperature,   5m) > 30 and not humidity < 80").explain(in),
            "avg(temperature, 5m) > 30: 31.2 > 30; humidity < 80: 55 < 80");
  EXPECT_EQ(parsed("missing == true").explain(in), "missing == true: unknown == true");
  in.quiet = minutes(7);
  EXPECT_EQ(parsed("absent(5m)").explain(in), "absent(5m): true");
}

// Every error, with the byte offset it points at.
TEST(Expression, ErrorsPointAtTheirPosition) {
  struct Case {
    std::string text;
    std::size_t position;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", 0, "empty expression"},
      {"   ", 0, "empty expression"},
      {"t >", 3, "expected a value, found the end"},
      {"(t > 1", 6, "expected ')'"},
      {"t > 1)", 5, "unexpected ')'"},
      {"t > 1 t", 6, "unexpected 't'"},
      {"t = 1", 2, "equality is '=='"},
      {"!t", 0, "negation is 'not'"},
      {"t > 1 # x", 6, "unexpected character '#'"},
      {"t > \x01", 4, "unexpected byte 0x01"},
      {"mean(t, 5m) > 1", 0, "unknown function 'mean'"},
      {"avg(t) > 1", 5, "expected ','"},
      {"avg(t, 5) > 1", 7, "expected a duration"},
      {"avg(t, 5x) > 1", 7, "invalid number or duration"},
      {"avg(t, 0s) > 1", 7, "duration out of range"},
      {"avg(t, 25h) > 1", 7, "duration out of range"},
      {"avg(t, 1234567890s) > 1", 7, "duration out of range"},
      {"avg(5m, 5m) > 1", 4, "expected a metric name"},
      {"avg(t, 5m > 1", 10, "expected ')'"},
      {"absent()", 7, "expected a duration"},
      {"Temperature > 1", 0, "metric names are"},
      {"t > 5m", 4, "a duration is only allowed"},
      {"t > 1e999", 4, "number out of range"},
      {"t > 1.", 6, "expected a digit after '.'"},
      {"1 < t < 3", 6, "comparisons do not chain"},
      {"t > true", 4, "'>' compares numbers"},
      {"1 == true", 2, "cannot compare a number with true or false"},
      {"true + 1", 0, "'+' needs numbers"},
      {"-true", 1, "'-' needs a number"},
      {"not 1", 4, "'not' needs true or false"},
      {"1 and t", 0, "expected true or false here"},
      {"t > 1 and", 9, "expected a value"},
      {"and", 0, "expected a value, found 'and'"},
      {"last(t, 5m)", 6, "expected ')'"},
  };
  for (const Case& c : cases) {
    const ParseError e = error_of(c.text);
    EXPECT_EQ(e.position, c.position) << c.text << " -> " << describe(e);
    EXPECT_THAT(e.message, HasSubstr(c.message)) << c.text;
  }
  EXPECT_EQ(describe(ParseError{12, "expected ')'"}), "12: expected ')'");
  // A long token is quoted cut short.
  const ParseError long_token = error_of("t > 1 " + std::string(200, '2'));
  EXPECT_EQ(long_token.position, 6U);
  EXPECT_EQ(long_token.message, "unexpected '" + std::string(32, '2') + "...'");
}

TEST(Expression, LimitsHavePositions) {
  // Text length.
  const std::string long_text = "t > " + std::string(1000, '1');
  EXPECT_EQ(error_of(long_text), (ParseError{1000, "longer than 1000 bytes"}));
  EXPECT_TRUE(Expression::parse("t > 1" + std::string(995, ' ')).has_value());

  // Nodes: a balanced tree of 16 comparisons (16 * 3 + 15 = 63 nodes) parses; a metric
  // and an operator more make 65, refused at that operator.
  std::string tree = "a>1";
  for (int i = 0; i < 4; ++i) tree = "(" + tree + " and " + tree + ")";
  EXPECT_TRUE(Expression::parse(tree).has_value()) << describe(error_of(tree));
  const ParseError too_many = error_of(tree + " and b");
  EXPECT_EQ(too_many.position, tree.size() + 1);
  EXPECT_THAT(too_many.message, HasSubstr("more than 64"));
}

TEST(Expression, NodeDepthAndWindowLimits) {
  // 64 nodes parse, 65 do not: a chain of ors of metrics (n metrics, n-1 ors).
  std::string ors = "a";
  for (int i = 1; i < 32; ++i) ors += " or a";  // 32 metrics + 31 ors = 63 nodes, depth 32 > 16
  const ParseError deep = error_of(ors);
  EXPECT_THAT(deep.message, HasSubstr("nested deeper than 16"));
  // Depth 16 exactly: 15 nots over a metric.
  std::string nots;
  for (int i = 0; i < 15; ++i) nots += "not ";
  EXPECT_TRUE(Expression::parse(nots + "a").has_value());
  const ParseError too_deep = error_of("not " + nots + "a");
  EXPECT_EQ(too_deep.position, 0U);  // the outermost 'not', whose node is 17 deep
  EXPECT_THAT(too_deep.message, HasSubstr("nested deeper than 16"));
  // Parentheses count as nesting.
  const ParseError parens = error_of(std::string(17, '(') + "1" + std::string(17, ')'));
  EXPECT_EQ(parens.position, 16U);

  // Node count: a balanced tree of 33 and/or-joined comparisons stays shallow but has
  // 33 * 3 + 32 = 131 nodes; the error points at the token that made the 65th.
  std::string many = "(a>1 and b>1) and (c>1 and d>1)";
  std::string wide = many;
  for (int i = 0; i < 3; ++i) wide = "(" + wide + ") and (" + wide + ")";
  const ParseError big = error_of(wide);
  EXPECT_THAT(big.message, HasSubstr("more than 64"));
  EXPECT_GT(big.position, 0U);

  // Windowed calls: 8 parse, the 9th is refused at its name.
  std::string calls = "avg(t,1s) > 0";
  for (int i = 0; i < 7; ++i) calls = "(" + calls + ") or avg(t,1s) > 0";
  // The chain above nests 8 ors deep; fine within 16.
  EXPECT_TRUE(Expression::parse(calls).has_value()) << describe(error_of(calls));
  const std::string nine = calls + " or absent(1m)";
  const ParseError ninth = error_of(nine);
  EXPECT_EQ(ninth.position, nine.find("absent"));
  EXPECT_THAT(ninth.message, HasSubstr("more than 8 windowed functions"));
}

TEST(Expression, Durations) {
  EXPECT_EQ(parse_duration("30s"), seconds(30));
  EXPECT_EQ(parse_duration("5m"), minutes(5));
  EXPECT_EQ(parse_duration("2h"), hours(2));
  EXPECT_EQ(parse_duration("0s"), seconds(0));
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("5d"));
  EXPECT_FALSE(parse_duration("-5s"));
  EXPECT_FALSE(parse_duration("1.5m"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_EQ(format_duration(seconds(90)), "90s");
  EXPECT_EQ(format_duration(minutes(120)), "2h");
  EXPECT_EQ(format_duration(seconds(300)), "5m");
  EXPECT_EQ(format_duration(seconds(0)), "0s");
}

TEST(Expression, DefaultIsFalse) {
  const Expression e;
  EXPECT_EQ(e.text(), "false");
  EXPECT_EQ(e.evaluate(FakeInputs{}), Value(false));
  EXPECT_EQ(e, parsed("false"));
}

}  // namespace
}  // namespace torii::rules

#include "rules/rule.h"

#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::rules {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr std::string_view kExample = R"j({"name":"hot","selector":{"profiles":["thermo"],"tags":["cold-room"]},
  "condition":"avg(temperature, 5m) > 30 and humidity < 80",
  "for":"30s","clear_for":"1m","severity":"critical",
  "actions":[{"type":"alert"},{"type":"command","device":"fan-1","command":"set_actuator","params":{"state":true}},
             {"type":"command","device":"fan-1","command":"set_actuator","params":{"state":false},"on":"clear"},
             {"type":"metric","name":"temp_avg","value":"avg(temperature, 5m)"},{"type":"notify","channels":["ops"]}]})j";

std::vector<std::string> problems_of(std::string_view text) {
  auto r = parse_rule(text);
  EXPECT_FALSE(r.has_value()) << "parsed: " << text;
  return r ? std::vector<std::string>{} : r.error();
}

TEST(Rule, ParsesTheDocumentedExample) {
  const auto r = parse_rule(kExample);
  ASSERT_TRUE(r.has_value()) << ::testing::PrintToString(r.error());
  EXPECT_EQ(r->name, "hot");
  EXPECT_THAT(r->selector.profiles, ElementsAre("thermo"));
  EXPECT_THAT(r->selector.tags, ElementsAre("cold-room"));
  EXPECT_TRUE(r->selector.device_ids.empty());
  EXPECT_EQ(r->condition.text(), "avg(temperature, 5m) > 30 and humidity < 80");
  EXPECT_EQ(r->hold, seconds(30));
  EXPECT_EQ(r->clear_hold, minutes(1));
  EXPECT_EQ(r->severity, Severity::critical);
  ASSERT_THAT(r->actions, SizeIs(5));
  EXPECT_TRUE(std::holds_alternative<AlertAction>(r->actions[0]));
  const auto& on = std::get<CommandAction>(r->actions[1]);
  EXPECT_EQ(on.device_id, "fan-1");
  EXPECT_EQ(on.command, "set_actuator");
  EXPECT_EQ(on.params, nlohmann::json({{"state", true}}));
  EXPECT_FALSE(on.on_clear);
  EXPECT_TRUE(std::get<CommandAction>(r->actions[2]).on_clear);
  EXPECT_EQ(std::get<MetricAction>(r->actions[3]).name, "temp_avg");
  EXPECT_THAT(std::get<NotifyAction>(r->actions[4]).channels, ElementsAre("ops"));
}

TEST(Rule, ToJsonRoundTrips) {
  const auto r = parse_rule(kExample);
  ASSERT_TRUE(r.has_value());
  const auto again = parse_rule(to_json(*r).dump());
  ASSERT_TRUE(again.has_value()) << ::testing::PrintToString(again.error());
  EXPECT_EQ(*again, *r);

  const auto minimal = parse_rule(R"j({"name":"quiet","condition":"absent(10m)","actions":[{"type":"alert"}]})j");
  ASSERT_TRUE(minimal.has_value());
  EXPECT_EQ(minimal->severity, Severity::warning);
  EXPECT_EQ(minimal->hold, seconds(0));
  const nlohmann::json j = to_json(*minimal);
  EXPECT_FALSE(j.contains("for"));
  EXPECT_EQ(parse_rule(j.dump()).value(), *minimal);
}

TEST(Rule, ReportsEveryProblemWithItsPath) {
  const auto problems =
      problems_of(R"j({"name":"","selector":{"devices":["Bad Id"],"colour":["x"],"tags":["ok","Not Ok"]},
    "condition":"mean(t, 5m) > 1","for":"5d","clear_for":"48h","severity":"loud","extra":1,
    "actions":[{"type":"alert"},{"type":"command","command":"Go"},{"type":"metric","name":"x","value":"t > 1"},
               {"type":"notify","channels":[]},{"type":"teleport"},{"type":"alert"},
               {"type":"command","device":"fan-1","command":"go","on":"later","params":[1]}]})j");
  EXPECT_THAT(problems, Contains("name: 1..100 characters, no control characters"));
  EXPECT_THAT(problems, Contains(HasSubstr("selector.devices[0]: must be a device id")));
  EXPECT_THAT(problems, Contains("selector.colour: unknown field"));
  EXPECT_THAT(problems, Contains("selector.tags[1]: must be a tag (a-z, 0-9 and -, at most 63)"));
  EXPECT_THAT(problems, Contains("condition: 0: unknown function 'mean'"));
  EXPECT_THAT(problems, Contains(HasSubstr("for: must be a duration")));
  EXPECT_THAT(problems, Contains("clear_for: must be at most 24h"));
  EXPECT_THAT(problems, Contains("severity: must be info, warning or critical"));
  EXPECT_THAT(problems, Contains("extra: unknown field"));
  EXPECT_THAT(problems, Contains("actions[1].device: required"));
  EXPECT_THAT(problems, Contains(HasSubstr("actions[1].command: must be a command name")));
  EXPECT_THAT(problems, Contains(HasSubstr("actions[2].value: 0: must be a number")));
  EXPECT_THAT(problems, Contains("actions[3].channels: at least one channel"));
  EXPECT_THAT(problems, Contains("actions[4].type: must be alert, command, metric or notify"));
  EXPECT_THAT(problems, Contains("actions[5]: only one alert action"));
  EXPECT_THAT(problems, Contains("actions[6].on: must be \"fire\" or \"clear\""));
  EXPECT_THAT(problems, Contains("actions[6].params: must be an object"));
  EXPECT_THAT(problems, SizeIs(17));
}

TEST(Rule, RefusesWholeTextProblems) {
  EXPECT_THAT(problems_of("{"), ElementsAre("(root): not valid JSON"));
  EXPECT_THAT(problems_of("[]"), ElementsAre("(root): must be an object"));
  EXPECT_THAT(problems_of(std::string(kMaxRuleBytes + 1, ' ')), ElementsAre(HasSubstr("larger than")));
  const auto missing = problems_of("{}");
  EXPECT_THAT(missing, ElementsAre("name: required", "condition: required", "actions: required"));
  EXPECT_THAT(problems_of(R"j({"name":"n","condition":"t + 1","actions":[]})j"),
              ElementsAre("condition: 0: must be true or false (a comparison), not a number",
                          "actions: between 1 and 16 actions"));
  EXPECT_THAT(problems_of(R"j({"name":"n","condition":"t > (1","actions":[{"type":"alert"}]})j"),
              ElementsAre("condition: 6: expected ')'"));
  EXPECT_THAT(problems_of(R"j({"name":"n\u0001","condition":"t > 1","actions":[{"type":"alert"}]})j"),
              ElementsAre(HasSubstr("name: 1..100")));
  // 100 characters are fine, counted as characters (not bytes).
  std::string name;
  for (int i = 0; i < 100; ++i) name += "\xc3\xa9";
  EXPECT_TRUE(parse_rule(R"j({"name":")j" + name + R"j(","condition":"t > 1","actions":[{"type":"alert"}]})j"));
}

TEST(Rule, RefusesMoreThan64MetricsAcrossConditionAndMetricActions) {
  std::string condition = "m0 > 0";
  for (int i = 1; i < 8; ++i) condition = "(" + condition + fmt::format(") or m{} > 0", i);
  std::string actions = R"j({"type":"alert"})j";
  for (int a = 0; a < 5; ++a) {
    std::string value = fmt::format("n{}_0", a);
    for (int i = 1; i < 12; ++i) value += fmt::format(" + n{}_{}", a, i);
    actions += fmt::format(R"j(,{{"type":"metric","name":"d{}","value":"{}"}})j", a, value);
  }
  const std::string text = fmt::format(R"j({{"name":"wide","condition":"{}","actions":[{}]}})j", condition, actions);
  // 8 metrics in the condition and 5 * 12 in the metric actions: 68.
  EXPECT_THAT(problems_of(text), ElementsAre("(root): the condition and metric actions read more than 64 metrics"));
}

TEST(Rule, SelectorMatching) {
  const std::vector<std::string> tags = {"cold-room", "floor-2"};
  const DeviceFacts thermo{"dev-1", "thermo", "lab", tags};
  EXPECT_TRUE(matches(Selector{}, thermo));
  EXPECT_TRUE(matches(Selector{{}, {"thermo", "other"}, {}, {}}, thermo));
  EXPECT_FALSE(matches(Selector{{}, {"other"}, {}, {}}, thermo));
  EXPECT_TRUE(matches(Selector{{"dev-1"}, {"thermo"}, {"lab"}, {}}, thermo));
  EXPECT_FALSE(matches(Selector{{"dev-1"}, {"thermo"}, {"office"}, {}}, thermo));  // every list must match
  EXPECT_FALSE(matches(Selector{{"dev-2"}, {}, {}, {}}, thermo));
  // Tags: any one of the selector's that the device has.
  EXPECT_TRUE(matches(Selector{{}, {}, {}, {"floor-2"}}, thermo));
  EXPECT_TRUE(matches(Selector{{}, {}, {}, {"roof", "cold-room"}}, thermo));
  EXPECT_FALSE(matches(Selector{{}, {}, {}, {"roof"}}, thermo));
  EXPECT_FALSE(matches(Selector{{}, {"thermo"}, {}, {"roof"}}, thermo));
  EXPECT_FALSE(matches(Selector{{}, {}, {}, {"floor-2"}}, DeviceFacts{"dev-1", "thermo", "lab", {}}));
}

}  // namespace
}  // namespace torii::rules

#include "policy/profile.h"

#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy/test_support.h"

namespace torii::policy {
namespace {

using test_data::problem_at;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// The problems of a definition that must not parse.
std::vector<Problem> problems_of(std::string_view text) {
  auto r = parse_profile(text);
  EXPECT_FALSE(r.has_value()) << "parsed: " << text;
  return r.has_value() ? std::vector<Problem>{} : r.error();
}

TEST(Profile, ParsesTheDocumentedExample) {
  const auto r = parse_profile(test_data::kExampleProfile);
  ASSERT_TRUE(r.has_value()) << format_problems(r.error());
  const Profile& p = *r;
  ASSERT_THAT(p.metrics(), SizeIs(4));
  EXPECT_EQ(p.metrics()[0], (FieldSpec{"temperature", ValueType::number, "°C", -40.0, 125.0, 256, false}));
  EXPECT_EQ(p.metrics()[1].type, ValueType::boolean);
  EXPECT_EQ(p.metrics()[2].max_length, 32U);
  EXPECT_EQ(p.metrics()[3].min, 0.0);
  EXPECT_FALSE(p.metrics()[3].max.has_value());
  ASSERT_THAT(p.commands(), SizeIs(3));
  EXPECT_EQ(p.commands()[0].params.at(0), (FieldSpec{"seconds", ValueType::integer, "", 1.0, 86400.0, 256, true}));
  EXPECT_TRUE(p.commands()[2].params.empty());
  EXPECT_EQ(p.heartbeat(), std::chrono::seconds(60));
  EXPECT_EQ(p.max_message_bytes(), 4096U);
  EXPECT_FALSE(p.accepts_any_metric());
  EXPECT_EQ(p.max_metrics_per_message(), 4U);
}

TEST(Profile, FindsMetricsAndCommandsByName) {
  const auto p = parse_profile(test_data::kExampleProfile).value();
  EXPECT_EQ(p.metric_index("temperature"), 0U);
  EXPECT_EQ(p.metric_index("count"), 3U);
  EXPECT_EQ(p.metric_index("mode"), 2U);
  EXPECT_EQ(p.metric_index("nope"), std::nullopt);
  EXPECT_EQ(p.metric_index(""), std::nullopt);
  ASSERT_NE(p.find_metric("door_open"), nullptr);
  EXPECT_EQ(p.find_metric("door_open")->type, ValueType::boolean);
  ASSERT_NE(p.find_command("set_actuator"), nullptr);
  EXPECT_EQ(p.find_command("set_actuator")->params.at(0).name, "on");
  EXPECT_EQ(p.find_command("reboot"), nullptr);
}

TEST(Profile, DefaultsApplyWhenOptionalKeysAreAbsent) {
  const auto r = parse_profile(R"({"metrics":[{"name":"s","type":"string"}]})");
  ASSERT_TRUE(r.has_value()) << format_problems(r.error());
  EXPECT_EQ(r->heartbeat(), std::chrono::seconds(kDefaultHeartbeatSeconds));
  EXPECT_EQ(r->max_message_bytes(), kDefaultMaxMessageBytes);
  EXPECT_EQ(r->metrics().at(0).max_length, kDefaultMaxStringBytes);
  EXPECT_TRUE(r->commands().empty());
}

TEST(Profile, EmptyMetricsAreAllowedForCommandOnlyDevices) {
  const auto r = parse_profile(R"({"metrics":[],"commands":[{"name":"open"}]})");
  ASSERT_TRUE(r.has_value()) << format_problems(r.error());
  EXPECT_EQ(r->max_metrics_per_message(), 0U);
  EXPECT_TRUE(r->find_command("open")->params.empty());
}

TEST(Profile, ReportsEveryProblemWithItsPath) {
  const auto problems = problems_of(R"({
    "metrics": [{"name":"ok","type":"number"},
                {"name":"Bad Name","type":"float"},
                {"type":"number","colour":"red"},
                {"name":"ok","type":"number"}],
    "commands": [{"name":"go","params":[{"name":"p","type":"integer","required":"yes"}]}],
    "heartbeat_seconds": 0,
    "max_message_bytes": 10,
    "extra": true})");
  EXPECT_THAT(problems, Contains(problem_at("metrics[1].name", "must be 1 to 64 characters of a-z, 0-9 and _")));
  EXPECT_THAT(problems, Contains(problem_at("metrics[1].type", "must be one of number, integer, boolean, string")));
  EXPECT_THAT(problems, Contains(problem_at("metrics[2].name", "is required")));
  EXPECT_THAT(problems, Contains(problem_at("metrics[2].colour", "unknown key")));
  EXPECT_THAT(problems, Contains(problem_at("metrics[3].name", "duplicate name 'ok' (also metrics[0])")));
  EXPECT_THAT(problems, Contains(problem_at("commands[0].params[0].required", "must be true or false")));
  EXPECT_THAT(problems, Contains(problem_at("heartbeat_seconds", "must be an integer between 1 and 86400")));
  EXPECT_THAT(problems, Contains(problem_at("max_message_bytes", "must be an integer between 64 and 1048576")));
  EXPECT_THAT(problems, Contains(problem_at("extra", "unknown key")));
  EXPECT_THAT(problems, SizeIs(9)) << format_problems(problems);
}

TEST(Profile, RefusesReservedAndInvalidNames) {
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"ts","type":"integer"},{"name":"id","type":"string"}]})"),
              ElementsAre(problem_at("metrics[0].name", "'ts' is reserved"),
                          problem_at("metrics[1].name", "'id' is reserved")));
  const std::string long_name(65, 'a');
  for (const std::string& name :
       {std::string(""), std::string("Temp"), std::string("a-b"), std::string("a.b"), long_name}) {
    EXPECT_THAT(problems_of(fmt::format(R"({{"metrics":[{{"name":"{}","type":"number"}}]}})", name)),
                ElementsAre(problem_at("metrics[0].name", "must be 1 to 64 characters")))
        << name;
  }
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":7,"type":"number"}]})"),
              ElementsAre(problem_at("metrics[0].name", "must be 1 to 64")));
  EXPECT_TRUE(parse_profile(fmt::format(R"({{"metrics":[{{"name":"{}","type":"number"}}]}})", std::string(64, 'z'))));
  // Reserved only for metrics: a parameter may be called id.
  EXPECT_TRUE(parse_profile(R"({"metrics":[],"commands":[{"name":"c","params":[{"name":"id","type":"string"}]}]})"));
}

TEST(Profile, ValidNameRule) {
  EXPECT_TRUE(valid_name("temperature_2"));
  EXPECT_TRUE(valid_name("0"));
  EXPECT_FALSE(valid_name(""));
  EXPECT_FALSE(valid_name("Temperature"));
  EXPECT_FALSE(valid_name("temp erature"));
  EXPECT_FALSE(valid_name(std::string_view("a\0b", 3)));
  EXPECT_FALSE(valid_name("température"));
}

TEST(Profile, ChecksBoundsAgainstTheType) {
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a","type":"boolean","min":0},
                                         {"name":"b","type":"string","max":3},
                                         {"name":"c","type":"number","max_length":3},
                                         {"name":"d","type":"integer","min":0.5},
                                         {"name":"e","type":"integer","max":1e16},
                                         {"name":"f","type":"number","min":"0"},
                                         {"name":"g","type":"number","min":5,"max":4},
                                         {"name":"h","type":"string","max_length":0},
                                         {"name":"i","type":"string","max_length":65536},
                                         {"name":"j","type":"string","max_length":1.5}]})"),
              ElementsAre(problem_at("metrics[0].min", "only for number and integer values"),
                          problem_at("metrics[1].max", "only for number and integer values"),
                          problem_at("metrics[2].max_length", "only for string values"),
                          problem_at("metrics[3].min", "must be a whole number between -2^53 and 2^53"),
                          problem_at("metrics[4].max", "must be a whole number between -2^53 and 2^53"),
                          problem_at("metrics[5].min", "must be a number"),
                          problem_at("metrics[6].max", "must not be less than min (5)"),
                          problem_at("metrics[7].max_length", "must be an integer between 1 and 65535"),
                          problem_at("metrics[8].max_length", "must be an integer between 1 and 65535"),
                          problem_at("metrics[9].max_length", "must be an integer between 1 and 65535")));
  // Equal bounds and fractional bounds of numbers are fine; integer bounds may be written 1.0.
  EXPECT_TRUE(parse_profile(
      R"({"metrics":[{"name":"a","type":"number","min":0.5,"max":0.5},{"name":"b","type":"integer","min":1.0,"max":9007199254740992}]})"));
}

TEST(Profile, ChecksUnits) {
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a","type":"number","unit":5},
                                         {"name":"b","type":"number","unit":"123456789012345678901234567890123"},
                                         {"name":"c","type":"number","unit":"a\nb"}]})"),
              ElementsAre(problem_at("metrics[0].unit", "must be a string of at most 32 bytes"),
                          problem_at("metrics[1].unit", "must be a string of at most 32 bytes"),
                          problem_at("metrics[2].unit", "without control characters")));
}

TEST(Profile, ChecksTypesOfSections) {
  EXPECT_THAT(problems_of(R"({"metrics":{},"commands":"x"})"),
              ElementsAre(problem_at("metrics", "must be an array"), problem_at("commands", "must be an array")));
  EXPECT_THAT(problems_of(R"({"metrics":[1, "x"],"commands":[2,{"name":"c","params":{}}]})"),
              ElementsAre(problem_at("metrics[0]", "must be an object"), problem_at("metrics[1]", "must be an object"),
                          problem_at("commands[0]", "must be an object"),
                          problem_at("commands[1].params", "must be an array")));
  EXPECT_THAT(problems_of(R"({"commands":[]})"), ElementsAre(problem_at("metrics", "is required")));
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a"}]})"), ElementsAre(problem_at("metrics[0].type", "is required")));
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a","type":1}]})"),
              ElementsAre(problem_at("metrics[0].type", "must be one of")));
  EXPECT_THAT(problems_of(R"({"metrics":[],"heartbeat_seconds":1.5,"max_message_bytes":"4096"})"),
              ElementsAre(problem_at("heartbeat_seconds", "must be an integer"),
                          problem_at("max_message_bytes", "must be an integer")));
  EXPECT_THAT(problems_of(R"({"metrics":[],"heartbeat_seconds":-1,"max_message_bytes":1048577})"),
              ElementsAre(problem_at("heartbeat_seconds", "between 1 and 86400"),
                          problem_at("max_message_bytes", "between 64 and 1048576")));
}

TEST(Profile, ChecksCommands) {
  EXPECT_THAT(problems_of(R"({"metrics":[],"commands":[{"params":[]},
                                                      {"name":"Go"},
                                                      {"name":"go","timeout":5},
                                                      {"name":"go"},
                                                      {"name":"p","params":[{"name":"x","type":"integer"},{"name":"x","type":"integer"}]}]})"),
              ElementsAre(problem_at("commands[0].name", "is required"),
                          problem_at("commands[1].name", "must be 1 to 64 characters"),
                          problem_at("commands[2].timeout", "unknown key"),
                          problem_at("commands[3].name", "duplicate name 'go' (also commands[2])"),
                          problem_at("commands[4].params[1].name", "duplicate name 'x' (also commands[4].params[0])")));
  // `required` belongs to parameters, not to metrics.
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a","type":"number","required":true}]})"),
              ElementsAre(problem_at("metrics[0].required", "unknown key")));
}

TEST(Profile, RefusesDuplicateJsonKeysWithTheirPath) {
  EXPECT_THAT(problems_of(R"({"metrics":[],"heartbeat_seconds":5,"heartbeat_seconds":6})"),
              ElementsAre(problem_at("heartbeat_seconds", "duplicate key")));
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a","type":"number"},{"name":"b","type":"number","max":1,"max":2}]})"),
              ElementsAre(problem_at("metrics[1].max", "duplicate key")));
  EXPECT_THAT(
      problems_of(
          R"({"metrics":[],"commands":[{"name":"c","params":[{"name":"a","type":"integer"},{"name":"b","type":"integer","type":"number"}]}]})"),
      ElementsAre(problem_at("commands[0].params[1].type", "duplicate key")));
  // The same key in sibling objects is no duplicate.
  EXPECT_TRUE(parse_profile(R"({"metrics":[{"name":"a","type":"number"},{"name":"b","type":"number"}]})"));
}

TEST(Profile, RefusesLimitsExceeded) {
  std::string metrics;
  for (std::size_t i = 0; i <= kMaxMetrics; ++i) {
    metrics += fmt::format(R"({}{{"name":"m{}","type":"number"}})", i == 0 ? "" : ",", i);
  }
  EXPECT_THAT(problems_of(fmt::format(R"({{"metrics":[{}]}})", metrics)),
              ElementsAre(problem_at("metrics", "at most 256 entries (got 257)")));

  std::string commands;
  for (std::size_t i = 0; i <= kMaxCommands; ++i)
    commands += fmt::format(R"({}{{"name":"c{}"}})", i == 0 ? "" : ",", i);
  EXPECT_THAT(problems_of(fmt::format(R"({{"metrics":[],"commands":[{}]}})", commands)),
              ElementsAre(problem_at("commands", "at most 64 entries (got 65)")));

  std::string params;
  for (std::size_t i = 0; i <= kMaxParams; ++i) {
    params += fmt::format(R"({}{{"name":"p{}","type":"boolean"}})", i == 0 ? "" : ",", i);
  }
  EXPECT_THAT(problems_of(fmt::format(R"({{"metrics":[],"commands":[{{"name":"c","params":[{}]}}]}})", params)),
              ElementsAre(problem_at("commands[0].params", "at most 32 entries (got 33)")));
}

TEST(Profile, ExactlyAtTheLimitsParses) {
  std::string metrics;
  for (std::size_t i = 0; i < kMaxMetrics; ++i) {
    metrics += fmt::format(R"({}{{"name":"m{}","type":"integer"}})", i == 0 ? "" : ",", i);
  }
  const auto r = parse_profile(fmt::format(R"({{"metrics":[{}]}})", metrics));
  ASSERT_TRUE(r.has_value()) << format_problems(r.error());
  EXPECT_EQ(r->metric_index("m255"), 255U);
  EXPECT_EQ(r->metric_index("m0"), 0U);
  EXPECT_EQ(r->metric_index("m100"), 100U);
}

TEST(Profile, ListsAtMostAHundredProblems) {
  std::string metrics;
  for (std::size_t i = 0; i < 200; ++i) metrics += fmt::format(R"({}{{"name":"X"}})", i == 0 ? "" : ",");
  const auto problems = problems_of(fmt::format(R"({{"metrics":[{}]}})", metrics));
  ASSERT_THAT(problems, SizeIs(101));
  EXPECT_THAT(problems.back(), problem_at("", "only the first 100 are listed"));
}

TEST(Profile, RefusesTextThatIsNotAJsonObject) {
  EXPECT_THAT(problems_of(""), ElementsAre(problem_at("", "not valid JSON (at byte 1)")));
  EXPECT_THAT(problems_of(R"({"metrics":[})"), ElementsAre(problem_at("", "not valid JSON (at byte")));
  EXPECT_THAT(problems_of("[]"), ElementsAre(problem_at("", "must be a JSON object")));
  EXPECT_THAT(problems_of("{\"metrics\":[],\"x\":\"\xff\"}"), ElementsAre(problem_at("", "not valid JSON")));
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a","type":"number","max":1e400}]})"),
              ElementsAre(problem_at("", "a number is out of range")));
  EXPECT_THAT(problems_of(R"({"metrics":[{"name":"a","type":"number","max":NaN}]})"),
              ElementsAre(problem_at("", "not valid JSON")));
  EXPECT_THAT(problems_of("{\"metrics\":[]} // comment"), ElementsAre(problem_at("", "not valid JSON")));
  EXPECT_THAT(problems_of(std::string(100, '[') + std::string(100, ']')),
              ElementsAre(problem_at("", "nested deeper than 16 levels")));
  EXPECT_THAT(problems_of(std::string(kMaxDefinitionBytes + 1, ' ')),
              ElementsAre(problem_at("", "larger than 1048576 bytes")));
}

TEST(Profile, GenericProfileAcceptsAnyMetric) {
  const Profile& g = generic_profile();
  EXPECT_TRUE(g.accepts_any_metric());
  EXPECT_TRUE(g.metrics().empty());
  EXPECT_TRUE(g.commands().empty());
  EXPECT_EQ(g.max_metrics_per_message(), 64U);
  EXPECT_EQ(g.max_string_bytes(), 256U);
  EXPECT_EQ(g.max_message_bytes(), 4096U);
  EXPECT_EQ(g.heartbeat(), std::chrono::seconds(60));
  EXPECT_EQ(&g, &generic_profile());
}

TEST(Profile, SampleEnvironmentProfileParses) {
  const auto r = parse_profile(sample_environment_profile_json());
  ASSERT_TRUE(r.has_value()) << format_problems(r.error());
  for (const char* name : {"temperature", "humidity", "power", "door_open", "tamper"}) {
    EXPECT_NE(r->find_metric(name), nullptr) << name;
  }
  EXPECT_EQ(r->find_metric("temperature")->unit, "°C");
  EXPECT_NE(r->find_command("set_interval"), nullptr);
  EXPECT_NE(r->find_command("report_posture"), nullptr);
}

TEST(Profile, FormatsProblemsOnePerLine) {
  EXPECT_EQ(format_problems({{"metrics[0].type", "bad"}, {"", "whole"}}), "  metrics[0].type: bad\n  whole\n");
  EXPECT_EQ(to_string(ValueType::integer), "integer");
}

}  // namespace
}  // namespace torii::policy

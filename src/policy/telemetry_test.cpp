#include "policy/telemetry.h"

#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy/test_support.h"

namespace torii::policy {
namespace {

using test_data::problem_at;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TelemetryTest : public ::testing::Test {
 protected:
  Profile profile_ = parse_profile(test_data::kExampleProfile).value();
  TelemetryValidator validator_;

  // The reason a payload is refused with (and that it is refused).
  std::string refusal(std::string_view payload, const Profile* profile = nullptr,
                      RefusalKind kind = RefusalKind::invalid) {
    const auto r = validator_.validate(profile != nullptr ? *profile : profile_, payload);
    EXPECT_FALSE(r.has_value()) << "accepted: " << payload;
    if (r.has_value()) return "";
    EXPECT_EQ(r.error().kind, kind) << payload << " -> " << r.error().reason;
    return r.error().reason;
  }
  Telemetry accepted(std::string_view payload, const Profile* profile = nullptr) {
    auto r = validator_.validate(profile != nullptr ? *profile : profile_, payload);
    EXPECT_TRUE(r.has_value()) << payload << " -> " << (r.has_value() ? "" : r.error().reason);
    return r.has_value() ? std::move(*r) : Telemetry{};
  }
};

TEST_F(TelemetryTest, AcceptsAValidPayloadWithTypedValues) {
  const Telemetry t = accepted(
      R"({"ts": 1733000000000, "id": "m-1.a:B_2", "temperature": 21.5, "door_open": false, "mode": "eco", "count": 7})");
  EXPECT_EQ(t.ts_ms, 1733000000000);
  EXPECT_EQ(t.message_id, "m-1.a:B_2");
  EXPECT_THAT(t.metrics, ElementsAre(Metric{"temperature", 21.5}, Metric{"door_open", false},
                                     Metric{"mode", std::string("eco")}, Metric{"count", std::int64_t{7}}));
}

TEST_F(TelemetryTest, TsAndIdAreOptionalAndOrderIsKept) {
  const Telemetry t = accepted(R"({"count":0,"temperature":-40})");
  EXPECT_FALSE(t.ts_ms.has_value());
  EXPECT_EQ(t.message_id, "");
  EXPECT_THAT(t.metrics, ElementsAre(Metric{"count", std::int64_t{0}}, Metric{"temperature", -40.0}));
}

TEST_F(TelemetryTest, BoundsAreInclusive) {
  EXPECT_THAT(accepted(R"({"temperature":125})").metrics, ElementsAre(Metric{"temperature", 125.0}));
  EXPECT_THAT(accepted(R"({"temperature":-40.0})").metrics, ElementsAre(Metric{"temperature", -40.0}));
  EXPECT_THAT(accepted(R"({"temperature":1.25e2})").metrics, ElementsAre(Metric{"temperature", 125.0}));
  EXPECT_EQ(refusal(R"({"temperature":125.0001})"), "metric 'temperature' above max 125");
  EXPECT_EQ(refusal(R"({"temperature":-40.5})"), "metric 'temperature' below min -40");
  EXPECT_EQ(refusal(R"({"count":-1})"), "metric 'count' below min 0");
}

TEST_F(TelemetryTest, RefusesWrongTypes) {
  EXPECT_EQ(refusal(R"({"temperature":"21"})"), "metric 'temperature' must be a number");
  EXPECT_EQ(refusal(R"({"temperature":null})"), "metric 'temperature' must be a number");
  EXPECT_EQ(refusal(R"({"door_open":1})"), "metric 'door_open' must be a boolean");
  EXPECT_EQ(refusal(R"({"mode":true})"), "metric 'mode' must be a string");
  EXPECT_EQ(refusal(R"({"count":"1"})"), "metric 'count' must be an integer");
  EXPECT_EQ(refusal(R"({"count":1.0})"), "metric 'count' must be an integer (no fraction or exponent)");
  EXPECT_EQ(refusal(R"({"count":1e2})"), "metric 'count' must be an integer (no fraction or exponent)");
  EXPECT_EQ(refusal(R"({"count":18446744073709551615})"), "metric 'count' is out of range for an integer");
  EXPECT_THAT(accepted(R"({"count":9223372036854775807})").metrics,
              ElementsAre(Metric{"count", std::int64_t{9223372036854775807}}));
}

TEST_F(TelemetryTest, RefusesNestedValues) {
  EXPECT_EQ(refusal(R"({"temperature":[1]})"), "nested values are not allowed");
  EXPECT_EQ(refusal(R"({"temperature":{"v":1}})"), "nested values are not allowed");
  // Empty containers pass the parser's depth limit; the type check still refuses them.
  EXPECT_EQ(refusal(R"({"temperature":[]})"), "metric 'temperature' is not a scalar (nested values are not allowed)");
  EXPECT_EQ(refusal(R"({"mode":{}})"), "metric 'mode' is not a scalar (nested values are not allowed)");
  EXPECT_EQ(refusal(R"({"anything":[]})", &generic_profile()),
            "metric 'anything' is not a scalar (nested values are not allowed)");
}

TEST_F(TelemetryTest, RefusesStringsTooLongOrWithControlCharacters) {
  EXPECT_TRUE(validator_.validate(profile_, fmt::format(R"({{"mode":"{}"}})", std::string(32, 'x'))));
  EXPECT_EQ(refusal(fmt::format(R"({{"mode":"{}"}})", std::string(33, 'x'))), "metric 'mode' longer than 32 bytes");
  // Bytes, not characters: 11 three-byte characters are 33 bytes.
  std::string wide;
  for (int i = 0; i < 11; ++i) wide += "€";
  EXPECT_EQ(refusal(fmt::format(R"({{"mode":"{}"}})", wide)), "metric 'mode' longer than 32 bytes");
  EXPECT_EQ(refusal(R"({"mode":"a\nb"})"), "metric 'mode' contains control characters");
  EXPECT_EQ(refusal(R"({"mode":"a\u0000b"})"), "metric 'mode' contains control characters");
  EXPECT_EQ(refusal("{\"mode\":\"a\x7f\"}"), "metric 'mode' contains control characters");
  EXPECT_THAT(accepted(R"({"mode":"caf\u00e9 ☕"})").metrics, ElementsAre(Metric{"mode", std::string("café ☕")}));
}

TEST_F(TelemetryTest, RefusesUnknownAndInvalidMetricNames) {
  EXPECT_EQ(refusal(R"({"foo":1})"), "unknown metric 'foo'");
  // A name outside [a-z0-9_] is never quoted: it could hold anything.
  EXPECT_EQ(refusal(R"({"Foo\nbar":1})"), "invalid metric name");
  EXPECT_EQ(refusal(R"({"":1})"), "invalid metric name");
  EXPECT_EQ(refusal(fmt::format(R"({{"{}":1}})", std::string(65, 'a'))), "invalid metric name");
  EXPECT_EQ(refusal(R"({"TS":1})"), "invalid metric name");
}

TEST_F(TelemetryTest, RefusesDuplicateKeys) {
  EXPECT_EQ(refusal(R"({"temperature":1,"temperature":1})"), "duplicate key 'temperature'");
  EXPECT_EQ(refusal(R"({"temperature":1,"ts":1,"ts":2})"), "duplicate key 'ts'");
  EXPECT_EQ(refusal(R"({"temperature":1,"id":"a","id":"a"})"), "duplicate key 'id'");
  // An escaped key is the same key.
  EXPECT_EQ(refusal(R"({"temperature":1,"temp\u0065rature":2})"), "duplicate key 'temperature'");
  EXPECT_EQ(refusal(R"({"x":1,"x":2})", &generic_profile()), "duplicate key 'x'");
}

TEST_F(TelemetryTest, ChecksTsAndId) {
  const std::string ts_reason = "'ts' must be a non-negative integer (milliseconds since the epoch)";
  EXPECT_EQ(refusal(R"({"ts":-1,"count":1})"), ts_reason);
  EXPECT_EQ(refusal(R"({"ts":1.5,"count":1})"), ts_reason);
  EXPECT_EQ(refusal(R"({"ts":"2024-01-01","count":1})"), ts_reason);
  EXPECT_EQ(refusal(R"({"ts":18446744073709551615,"count":1})"), ts_reason);
  EXPECT_EQ(accepted(R"({"ts":0,"count":1})").ts_ms, 0);

  const std::string id_reason = "'id' must be 1 to 64 characters of A-Z, a-z, 0-9 and _.:-";
  EXPECT_EQ(refusal(R"({"id":"","count":1})"), id_reason);
  EXPECT_EQ(refusal(R"({"id":"a b","count":1})"), id_reason);
  EXPECT_EQ(refusal(R"({"id":"a/b","count":1})"), id_reason);
  EXPECT_EQ(refusal(R"({"id":7,"count":1})"), id_reason);
  EXPECT_EQ(refusal(fmt::format(R"({{"id":"{}","count":1}})", std::string(65, 'a'))), id_reason);
  EXPECT_EQ(accepted(fmt::format(R"({{"id":"{}","count":1}})", std::string(64, 'a'))).message_id, std::string(64, 'a'));
}

TEST_F(TelemetryTest, RefusesPayloadsWithoutMetrics) {
  EXPECT_EQ(refusal("{}"), "no metrics");
  EXPECT_EQ(refusal(R"({"ts":1,"id":"x"})"), "no metrics");
  EXPECT_EQ(refusal("{}", &generic_profile()), "no metrics");
}

TEST_F(TelemetryTest, RefusesWhatIsNotAStrictJsonObject) {
  EXPECT_EQ(refusal("", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal("   ", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal(R"({"temperature":1)", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal(R"({"temperature":1} {})", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal(R"({"temperature":1,})", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal(R"({'temperature':1})", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal(R"({"temperature":NaN})", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal(R"({"temperature":Infinity})", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal(R"({"temperature":-Infinity})", nullptr, RefusalKind::malformed), "invalid or out-of-range number");
  EXPECT_EQ(refusal(R"({"temperature":1e400})", nullptr, RefusalKind::malformed), "invalid or out-of-range number");
  EXPECT_EQ(refusal(R"({"temperature":01})", nullptr, RefusalKind::malformed), "invalid or out-of-range number");
  EXPECT_EQ(refusal(R"({"count":-9223372036854775809})", nullptr, RefusalKind::malformed),
            "invalid or out-of-range number");
  EXPECT_EQ(refusal(R"({"mode":"\ud800"})", nullptr, RefusalKind::malformed), "not valid JSON");
  EXPECT_EQ(refusal("{\"mode\":\"\xff\"}", nullptr, RefusalKind::malformed), "invalid UTF-8");
  EXPECT_EQ(refusal("{\"mode\":\"\xc0\xaf\"}", nullptr, RefusalKind::malformed), "invalid UTF-8");
  EXPECT_EQ(refusal("\xef\xbb\xbf{\"count\":1}", nullptr, RefusalKind::malformed), "not valid JSON");

  EXPECT_EQ(refusal("[1]"), "not a JSON object");
  EXPECT_EQ(refusal("[[[[1]]]]"), "not a JSON object");
  EXPECT_EQ(refusal("42"), "not a JSON object");
  EXPECT_EQ(refusal(R"("text")"), "not a JSON object");
  EXPECT_EQ(refusal("null"), "not a JSON object");
}

TEST_F(TelemetryTest, RefusesPayloadsLargerThanTheProfileAllows) {
  const std::string padding(4096, ' ');
  EXPECT_EQ(refusal(R"({"count":1})" + padding, nullptr, RefusalKind::too_large), "payload larger than 4096 bytes");
  // Exactly at the limit is fine.
  std::string exact = R"({"count":1})";
  exact += std::string(4096 - exact.size(), ' ');
  EXPECT_TRUE(validator_.validate(profile_, exact));

  const auto big =
      parse_profile(R"({"metrics":[{"name":"s","type":"string","max_length":65535}],"max_message_bytes":100000})");
  ASSERT_TRUE(big.has_value());
  const std::string large = fmt::format(R"({{"s":"{}"}})", std::string(65535, 'x'));
  EXPECT_TRUE(validator_.validate(*big, large));
  // After growing for a large payload the parser still refuses nesting and still handles small ones.
  EXPECT_EQ(refusal(R"({"s":[[1]]})", &*big), "nested values are not allowed");
  EXPECT_TRUE(validator_.validate(profile_, R"({"count":1})"));
}

TEST_F(TelemetryTest, ReasonsNeverQuoteThePayload) {
  const std::string secret = "s3cr3t-VALUE";
  for (const std::string& payload :
       {fmt::format(R"({{"mode":"{}{}"}})", secret, std::string(40, 'x')), fmt::format(R"({{"{}":1}})", secret),
        fmt::format(R"({{"id":"{} {}","count":1}})", secret, secret), fmt::format(R"({{"count":"{}"}})", secret),
        fmt::format(R"({{"count":1,"x":"{})", secret)}) {
    const auto r = validator_.validate(profile_, payload);
    ASSERT_FALSE(r.has_value()) << payload;
    EXPECT_THAT(r.error().reason, ::testing::Not(HasSubstr(secret))) << payload;
  }
}

TEST_F(TelemetryTest, GenericProfileAcceptsAnyValidName) {
  const Profile& g = generic_profile();
  const Telemetry t = accepted(R"({"ts":5,"a":1,"b":2.5,"c":true,"d":"x","e":-3})", &g);
  EXPECT_EQ(t.ts_ms, 5);
  EXPECT_THAT(t.metrics, ElementsAre(Metric{"a", 1.0}, Metric{"b", 2.5}, Metric{"c", true},
                                     Metric{"d", std::string("x")}, Metric{"e", -3.0}));
  EXPECT_EQ(refusal(R"({"a":null})", &g), "metric 'a' must be a number, boolean or string");
  EXPECT_EQ(refusal(R"({"Bad":1})", &g), "invalid metric name");
  EXPECT_EQ(refusal(fmt::format(R"({{"s":"{}"}})", std::string(257, 'x')), &g), "metric 's' longer than 256 bytes");
  EXPECT_TRUE(validator_.validate(g, fmt::format(R"({{"s":"{}"}})", std::string(256, 'x'))));
  EXPECT_EQ(refusal(R"({"s":"\u0007"})", &g), "metric 's' contains control characters");
  EXPECT_EQ(refusal(std::string(4097, ' '), &g, RefusalKind::too_large), "payload larger than 4096 bytes");
}

TEST_F(TelemetryTest, GenericProfileAllowsAtMost64Metrics) {
  std::string body;
  for (int i = 0; i < 64; ++i) body += fmt::format("{}\"m{}\":{}", i == 0 ? "" : ",", i, i);
  EXPECT_EQ(accepted("{" + body + "}", &generic_profile()).metrics.size(), 64U);
  EXPECT_EQ(refusal("{" + body + ",\"m64\":1}", &generic_profile()), "more than 64 metrics");
}

TEST_F(TelemetryTest, OneValidatorServesManyProfilesAndPayloads) {
  // The seen-markers of one payload must not leak into the next one.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(validator_.validate(profile_, R"({"count":1,"temperature":2})"));
    EXPECT_TRUE(validator_.validate(generic_profile(), R"({"count":1,"temperature":2})"));
  }
  const auto environment = parse_profile(sample_environment_profile_json()).value();
  EXPECT_TRUE(validator_.validate(environment,
                                  R"({"temperature":20,"humidity":40,"power":3.5,"door_open":false,"tamper":false})"));
  EXPECT_EQ(refusal(R"({"humidity":101})", &environment), "metric 'humidity' above max 100");
  TelemetryValidator moved = std::move(validator_);
  EXPECT_TRUE(moved.validate(profile_, R"({"count":1})"));
}

// --- commands --------------------------------------------------------------------------------

TEST_F(TelemetryTest, AcceptsValidCommands) {
  EXPECT_THAT(validate_command(profile_, "set_interval", R"({"seconds":30})"), IsEmpty());
  EXPECT_THAT(validate_command(profile_, "set_actuator", R"({"on":true})"), IsEmpty());
  EXPECT_THAT(validate_command(profile_, "report_posture", "{}"), IsEmpty());
  EXPECT_THAT(validate_command(profile_, "report_posture", " { } "), IsEmpty());
}

TEST_F(TelemetryTest, ReportsEveryProblemOfACommand) {
  const auto optional = parse_profile(
      R"({"metrics":[],"commands":[{"name":"c","params":[{"name":"a","type":"integer","min":1,"max":10,"required":true},{"name":"b","type":"string","max_length":3},{"name":"d","type":"number"}]}]})");
  ASSERT_TRUE(optional.has_value());
  EXPECT_THAT(validate_command(*optional, "c", R"({"b":"long","d":"x","e":1})"),
              ElementsAre(problem_at("params.b", "longer than 3 bytes"), problem_at("params.d", "must be a number"),
                          problem_at("params.e", "unknown parameter"), problem_at("params.a", "is required")));
  EXPECT_THAT(validate_command(*optional, "c", R"({"a":0})"), ElementsAre(problem_at("params.a", "below min 1")));
  EXPECT_THAT(validate_command(*optional, "c", R"({"a":11})"), ElementsAre(problem_at("params.a", "above max 10")));
  EXPECT_THAT(validate_command(*optional, "c", R"({"a":1.5})"),
              ElementsAre(problem_at("params.a", "must be an integer (no fraction or exponent)")));
  EXPECT_THAT(validate_command(*optional, "c", R"({"a":18446744073709551615})"),
              ElementsAre(problem_at("params.a", "out of range for an integer")));
  EXPECT_THAT(validate_command(*optional, "c", R"({"a":[1]})"), ElementsAre(problem_at("params.a", "not a scalar")));
  EXPECT_THAT(validate_command(*optional, "c", R"({"a":5})"), IsEmpty());
}

TEST_F(TelemetryTest, RefusesUnknownCommandsAndBadParameterText) {
  EXPECT_THAT(validate_command(profile_, "reboot", "{}"),
              ElementsAre(problem_at("command", "unknown command 'reboot'")));
  EXPECT_THAT(validate_command(profile_, "Re boot\n", "{}"),
              ElementsAre(problem_at("command", "invalid command name")));
  EXPECT_THAT(validate_command(profile_, "set_interval", ""), ElementsAre(problem_at("params", "not valid JSON")));
  EXPECT_THAT(validate_command(profile_, "set_interval", "[]"),
              ElementsAre(problem_at("params", "must be a JSON object")));
  EXPECT_THAT(validate_command(profile_, "set_interval", R"({"seconds":1e999})"),
              ElementsAre(problem_at("params", "not valid JSON")));
  EXPECT_THAT(validate_command(profile_, "set_interval", R"({"seconds":30,"seconds":40})"),
              ElementsAre(problem_at("params.seconds", "duplicate key")));
  EXPECT_THAT(validate_command(profile_, "set_interval", R"({"seconds":30,"Bad Key":1})"),
              ElementsAre(problem_at("params", "unknown parameter (not a valid name)")));
  EXPECT_THAT(validate_command(profile_, "set_interval", std::string(20, '[') + std::string(20, ']')),
              ElementsAre(problem_at("params", "nested values are not allowed")));
  EXPECT_THAT(validate_command(profile_, "set_interval", fmt::format(R"({{"seconds":1}}{})", std::string(4096, ' '))),
              ElementsAre(problem_at("params", "larger than 4096 bytes")));
  // Both the command and the text are reported.
  EXPECT_THAT(validate_command(profile_, "reboot", "nope"),
              ElementsAre(problem_at("command", "unknown command"), problem_at("params", "not valid JSON")));
  // The generic profile defines no commands.
  EXPECT_THAT(validate_command(generic_profile(), "report_posture", "{}"),
              ElementsAre(problem_at("command", "unknown command 'report_posture'")));
}

TEST(MessageId, IsTheValidIdOfAJsonObjectOrNothing) {
  EXPECT_EQ(message_id_of(R"({"id":"a1b2c3d4-17","type":"sensor_stuck"})"), "a1b2c3d4-17");
  EXPECT_EQ(message_id_of(R"({"type":"x"})"), "");
  EXPECT_EQ(message_id_of(R"({"id":17})"), "");
  EXPECT_EQ(message_id_of(R"({"id":"has space"})"), "");
  EXPECT_EQ(message_id_of(R"({"id":")" + std::string(65, 'a') + R"("})"), "");
  EXPECT_EQ(message_id_of(R"(["id","x"])"), "");
  EXPECT_EQ(message_id_of("not json"), "");
  EXPECT_EQ(message_id_of(""), "");
}

}  // namespace
}  // namespace torii::policy

#include "policy/device_command.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace torii::policy {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

DeviceCommand sample() {
  DeviceCommand c;
  c.id = "c-0a1b2c";
  c.device_id = "dev-1";
  c.name = "set_interval";
  c.params_json = R"({"seconds": 30})";
  c.nonce = "AAECAwQFBgcICQoLDA0ODw";  // 16 bytes 00..0f
  c.issued_at_ms = 1'700'000'000'000;
  c.expires_at_ms = 1'700'000'300'000;
  return c;
}

// The body with one member replaced (or removed, for a null value).
std::string body_with(const std::string& member, const json& value) {
  auto body = json::parse(command_body(sample()));
  if (value.is_null()) {
    body.erase(member);
  } else {
    body[member] = value;
  }
  return body.dump();
}

TEST(DeviceCommand, ABodyReadsBackAsTheCommandItWasMadeFrom) {
  const auto body = command_body(sample());
  auto read = parse_command_body(body);
  ASSERT_TRUE(read.has_value()) << read.error();
  auto expected = sample();
  expected.params_json = R"({"seconds":30})";  // written compact
  EXPECT_EQ(*read, expected);
}

TEST(DeviceCommand, ThePayloadCarriesTheBodyBytesAndTheSignatureUnchanged) {
  const auto body = command_body(sample());
  const Bytes signature(64, 0xAB);
  auto split = parse_command_payload(command_payload(body, signature));
  ASSERT_TRUE(split.has_value()) << split.error();
  EXPECT_EQ(split->body, body);
  EXPECT_EQ(split->signature, signature);
}

TEST(DeviceCommand, TheSignedBytesAreTheBodyBehindADomainTag) {
  const auto input = command_signing_input("{}");
  const std::string text(input.begin(), input.end());
  EXPECT_EQ(text, std::string("torii-command-v1") + '\0' + "{}");
}

TEST(DeviceCommand, PayloadsThatAreNotSignedCommandsAreRefused) {
  for (const std::string payload :
       {"", "not json", "[]", R"({"command":"{}"})", R"({"command":"{}","signature":"AA","extra":1})",
        R"({"command":{},"signature":"AA"})", R"({"command":"{}","signature":"*not base64*"})",
        R"({"command":"{}","signature":7})"}) {
    EXPECT_FALSE(parse_command_payload(payload).has_value()) << payload;
  }
  EXPECT_FALSE(parse_command_payload(std::string(kMaxCommandPayloadBytes + 1, ' ')).has_value());
}

TEST(DeviceCommand, BodiesWithAMissingExtraOrInvalidMemberAreRefused) {
  const std::vector<std::pair<std::string, json>> bad = {
      {"id", nullptr},
      {"id", "has space"},
      {"id", std::string(65, 'a')},
      {"id", 42},
      {"device", ""},
      {"device", "dev\n1"},
      {"device", std::string(129, 'd')},
      {"device", std::string(64, 'd')},  // device ids: 1 to 63 of a-z, 0-9 and '-' (valid_device_id)
      {"device", "Sensor-1"},
      {"device", "-sensor"},
      {"name", "no spaces allowed"},
      {"name", ""},
      {"params", json::array()},
      {"params", "{}"},
      {"nonce", "short"},
      {"nonce", "AAECAwQFBgcICQoLDA0OD*"},
      {"issued_at", -1},
      {"issued_at", 1.5},
      {"expires_at", "soon"},
      {"expires_at", 1'700'000'000'000},                         // not after issued_at
      {"expires_at", 1'700'000'000'000 + 24LL * 3'600'000 + 1},  // longer than allowed
      {"extra", true},
  };
  for (const auto& [member, value] : bad) {
    EXPECT_FALSE(parse_command_body(body_with(member, value)).has_value()) << member << " = " << value.dump();
  }
  EXPECT_FALSE(parse_command_body("not json").has_value());
  EXPECT_TRUE(parse_command_body(body_with("expires_at", 1'700'000'000'000 + 24LL * 3'600'000)).has_value());
}

TEST(DeviceCommand, OnlyTheNamedDeviceRunsItAndOnlyBeforeItExpires) {
  const auto c = sample();
  EXPECT_TRUE(check_command_time_and_target(c, "dev-1", c.issued_at_ms + 1000, milliseconds(0)).has_value());
  EXPECT_EQ(check_command_time_and_target(c, "dev-2", c.issued_at_ms, milliseconds(0)).error(),
            "command for another device");
  EXPECT_EQ(check_command_time_and_target(c, "dev-1", c.expires_at_ms, milliseconds(0)).error(), "command expired");
  EXPECT_TRUE(check_command_time_and_target(c, "dev-1", c.expires_at_ms - 1, milliseconds(0)).has_value());
}

TEST(DeviceCommand, ACommandFromTheFutureIsRefusedBeyondTheToleratedSkew) {
  const auto c = sample();
  EXPECT_TRUE(check_command_time_and_target(c, "dev-1", c.issued_at_ms - 5000, milliseconds(5000)).has_value());
  const auto refused = check_command_time_and_target(c, "dev-1", c.issued_at_ms - 5001, milliseconds(5000));
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error(), testing::HasSubstr("clock skew"));
}

TEST(DeviceCommand, AResultReadsBackWithItsStatusAndReason) {
  for (const auto status : {CommandStatus::done, CommandStatus::refused, CommandStatus::failed}) {
    const CommandResult result{"c-1", status, status == CommandStatus::done ? "" : "command expired"};
    const auto payload = command_result_payload("r-7", result, 1'700'000'000'000);
    EXPECT_EQ(json::parse(payload)["id"], "r-7");
    auto read = parse_command_result(payload);
    ASSERT_TRUE(read.has_value()) << payload;
    EXPECT_EQ(*read, result);
  }
}

TEST(DeviceCommand, AResultsReasonLosesControlCharactersAndIsCut) {
  const auto payload = command_result_payload("r-1", {"c-1", CommandStatus::failed, "a\nb" + std::string(300, 'x')}, 0);
  const auto read = parse_command_result(payload);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->reason.substr(0, 3), "a b");
  EXPECT_EQ(read->reason.size(), 200U);
}

TEST(DeviceCommand, PayloadsThatAreNotResultsAreNotTakenForOne) {
  for (const std::string payload : {"", "[]", R"({"command":"c-1"})", R"({"command":"c 1","status":"done"})",
                                    R"({"command":"c-1","status":"ok"})", R"({"command":1,"status":"done"})"}) {
    EXPECT_FALSE(parse_command_result(payload).has_value()) << payload;
  }
}

}  // namespace
}  // namespace torii::policy

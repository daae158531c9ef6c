#include "identity/device_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;
using ::testing::Field;
using ::testing::UnorderedElementsAre;

class DeviceCommandsTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    store::DeviceProfileRecord profile{
        "env", "org-1", "Environment", std::string(policy::sample_environment_profile_json()), 1, 0};
    ASSERT_TRUE(store_->device_profiles().put(profile));
    ASSERT_TRUE(store_->devices().insert(device("pump-1", "env")));
    ASSERT_TRUE(store_->devices().insert(device("plain-1", "")));
    auto commands = DeviceCommands::open(*store_, *keys_, clock_, random_);
    ASSERT_TRUE(commands) << commands.error().message;
    commands_ = std::move(*commands);
  }

  static store::DeviceRecord device(std::string id, std::string profile) {
    store::DeviceRecord d;
    d.id = std::move(id);
    d.organisation_id = "org-1";
    d.name = d.id;
    d.profile_id = std::move(profile);
    return d;
  }

  IssuedCommand issue(std::string_view name, std::string_view params, std::chrono::seconds lifetime = 300s) {
    auto outcome = commands_->issue(device("pump-1", "env"), name, params, lifetime, "user:u-1");
    EXPECT_TRUE(outcome) << (outcome ? "" : outcome.error().message);
    if (!outcome || !outcome->issued) {
      ADD_FAILURE() << "not issued";
      return {};
    }
    return *outcome->issued;
  }

  std::unique_ptr<DeviceCommands> commands_;
};

TEST_F(DeviceCommandsTest, AnIssuedCommandIsSignedWithTheKeyDevicesAreGivenAndCarriesWhatWasAsked) {
  const auto issued = issue("set_interval", R"({"seconds":30})", 120s);
  EXPECT_EQ(issued.topic, "devices/pump-1/commands");
  auto split = policy::parse_command_payload(issued.payload);
  ASSERT_TRUE(split) << split.error();
  EXPECT_TRUE(
      crypto::ed25519_verify(commands_->public_key(), policy::command_signing_input(split->body), split->signature));
  auto body = policy::parse_command_body(split->body);
  ASSERT_TRUE(body) << body.error();
  EXPECT_EQ(body->id, issued.record.id);
  EXPECT_EQ(body->device_id, "pump-1");
  EXPECT_EQ(body->name, "set_interval");
  EXPECT_EQ(body->params_json, R"({"seconds":30})");
  EXPECT_EQ(body->issued_at_ms, to_unix_millis(clock_.now()));
  EXPECT_EQ(body->expires_at_ms, to_unix_millis(clock_.now() + 120s));

  auto stored = store_->device_commands().find(issued.record.id);
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ((*stored)->status, "sent");
  EXPECT_EQ((*stored)->issued_by, "user:u-1");
  auto params = commands_->params_of(**stored);
  ASSERT_TRUE(params) << params.error().message;
  EXPECT_EQ(*params, R"({"seconds":30})");
}

TEST_F(DeviceCommandsTest, EachCommandHasItsOwnIdAndNonce) {
  const auto a = issue("report_posture", "{}");
  const auto b = issue("report_posture", "{}");
  EXPECT_NE(a.record.id, b.record.id);
  const auto nonce = [](const IssuedCommand& c) {
    return policy::parse_command_body(policy::parse_command_payload(c.payload)->body)->nonce;
  };
  EXPECT_NE(nonce(a), nonce(b));
}

TEST_F(DeviceCommandsTest, TheKeyIsKeptAcrossRestarts) {
  auto again = DeviceCommands::open(*store_, *keys_, clock_, random_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)->public_key(), commands_->public_key());
  EXPECT_EQ(commands_->public_key().size(), crypto::kEd25519PublicKeyBytes);
}

TEST_F(DeviceCommandsTest, CommandsTheProfileDoesNotAllowAreRefusedWithEveryProblemAndNotRecorded) {
  auto outcome = commands_->issue(device("pump-1", "env"), "set_interval", R"({"seconds":0,"extra":1})", 0s, "u");
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_FALSE(outcome->issued);
  EXPECT_THAT(outcome->problems, UnorderedElementsAre(Field(&policy::Problem::path, "ttl_seconds"),
                                                      Field(&policy::Problem::path, "params.seconds"),
                                                      Field(&policy::Problem::path, "params.extra")));
  auto unknown = commands_->issue(device("pump-1", "env"), "self_destruct", "{}", 60s, "u");
  ASSERT_TRUE(unknown);
  EXPECT_THAT(unknown->problems, UnorderedElementsAre(Field(&policy::Problem::path, "command")));
  auto too_long = commands_->issue(device("pump-1", "env"), "report_posture", "{}", 25h, "u");
  ASSERT_TRUE(too_long);
  EXPECT_THAT(too_long->problems, UnorderedElementsAre(Field(&policy::Problem::path, "ttl_seconds")));
  // Without a profile a device takes no command.
  auto plain = commands_->issue(device("plain-1", ""), "report_posture", "{}", 60s, "u");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->issued);
  auto listed = store_->device_commands().list_for_device("pump-1", 10);
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
}

TEST_F(DeviceCommandsTest, ADisabledDeviceIsSentNothing) {
  auto disabled = device("pump-1", "env");
  disabled.status = std::string(store::kDeviceStatusDisabled);
  auto outcome = commands_->issue(disabled, "report_posture", "{}", 60s, "u");
  ASSERT_FALSE(outcome);
  EXPECT_TRUE(outcome.error().is(Errc::permission_denied));
}

TEST_F(DeviceCommandsTest, TheDevicesFirstResultIsRecordedAndOthersAreNot) {
  const auto issued = issue("set_actuator", R"({"on":true})");
  const auto id = issued.record.id;
  const std::string refused = R"({"id":"r-1","command":")" + id + R"(","status":"refused","reason":"command expired"})";
  auto by_other = commands_->record_result("plain-1", refused);
  ASSERT_TRUE(by_other);
  EXPECT_FALSE(by_other->has_value());
  auto not_a_result = commands_->record_result("pump-1", R"({"id":"e-1","event":"tamper"})");
  ASSERT_TRUE(not_a_result);
  EXPECT_FALSE(not_a_result->has_value());
  clock_.advance(2s);
  auto recorded = commands_->record_result("pump-1", refused);
  ASSERT_TRUE(recorded && recorded->has_value());
  EXPECT_EQ((*recorded)->status, policy::CommandStatus::refused);
  auto again = commands_->record_result("pump-1", R"({"id":"r-2","command":")" + id + R"(","status":"done"})");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->has_value());
  auto stored = store_->device_commands().find(id);
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ((*stored)->status, "refused");
  EXPECT_EQ((*stored)->reason, "command expired");
  EXPECT_EQ((*stored)->answered_at, to_unix_millis(clock_.now()));
}

TEST_F(DeviceCommandsTest, CommandsAwaitingAnAnswerAreSentAgainUnchangedUntilAnsweredOrExpired) {
  const auto first = issue("set_interval", R"({"seconds":30})", 60s);
  clock_.advance(1s);
  const auto second = issue("report_posture", "{}", 600s);
  clock_.advance(1s);
  const auto answered = issue("report_posture", "{}", 600s);
  ASSERT_TRUE(
      commands_->record_result("pump-1", R"({"id":"r-1","command":")" + answered.record.id + R"(","status":"done"})"));
  auto again = commands_->awaiting("pump-1");
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_EQ(again->size(), 2U);
  EXPECT_EQ((*again)[0].record.id, first.record.id);  // oldest first
  EXPECT_EQ((*again)[0].payload, first.payload);      // the same signature and nonce
  EXPECT_EQ((*again)[0].topic, "devices/pump-1/commands");
  EXPECT_EQ((*again)[1].record.id, second.record.id);
  clock_.advance(60s);  // the first has expired
  auto later = commands_->awaiting("pump-1");
  ASSERT_TRUE(later);
  ASSERT_EQ(later->size(), 1U);
  EXPECT_EQ((*later)[0].record.id, second.record.id);
  auto other = commands_->awaiting("plain-1");
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->empty());
}

}  // namespace
}  // namespace torii::identity

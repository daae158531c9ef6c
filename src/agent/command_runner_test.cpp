#include "agent/command_runner.h"

#include <array>
#include <optional>

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "agent/device_agent.h"
#include "crypto/sodium.h"
#include "policy/telemetry.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::agent {
namespace {

using nlohmann::json;
using policy::CommandStatus;
using policy::DeviceCommand;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr std::string_view kDevice = "pump-7";

// What the gateway would send: commands made and signed in the test, with a fresh nonce each.
class CommandSigner {
 public:
  explicit CommandSigner(const testing::FakeClock& clock) : clock_(clock) {}

  [[nodiscard]] DeviceCommand command(std::string name, std::string params_json) {
    DeviceCommand c;
    c.id = "c-" + std::to_string(++count_);
    c.device_id = std::string(kDevice);
    c.name = std::move(name);
    c.params_json = std::move(params_json);
    std::array<std::uint8_t, policy::kCommandNonceBytes> nonce{};
    nonce[0] = static_cast<std::uint8_t>(count_);
    nonce[1] = static_cast<std::uint8_t>(count_ >> 8U);
    c.nonce = base64url_encode(nonce);
    c.issued_at_ms = to_unix_millis(clock_.now());
    c.expires_at_ms = c.issued_at_ms + std::int64_t{5} * 60 * 1000;
    return c;
  }

  // The payload of `command`, signed with `key` (the gateway's unless told).
  [[nodiscard]] std::string sign(const DeviceCommand& command, const crypto::Ed25519KeyPair* key = nullptr) const {
    const auto body = policy::command_body(command);
    return signed_body(body, key);
  }
  [[nodiscard]] std::string signed_body(std::string_view body, const crypto::Ed25519KeyPair* key = nullptr) const {
    const auto signature =
        crypto::ed25519_sign((key != nullptr ? *key : gateway).secret_key, policy::command_signing_input(body));
    return policy::command_payload(body, signature.value());
  }

  crypto::Ed25519KeyPair gateway = crypto::ed25519_generate();

 private:
  const testing::FakeClock& clock_;
  int count_ = 0;
};

class CommandRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen(std::uint64_t max_nonces = kMaxCommandNonces) {
    runner_.reset();
    outbox_.reset();
    auto box = Outbox::open(dir_ / "outbox.db", 100, random_, clock_);
    ASSERT_TRUE(box.has_value()) << box.error().message;
    outbox_.emplace(std::move(*box));
    runner_.emplace(std::string(kDevice), signer_.gateway.public_key, *outbox_, max_nonces);
  }

  CommandDecision decide(std::string_view payload) { return runner_->decide(payload, clock_.now()); }

  // A refusal that runs nothing and whose result the gateway reads back as refused.
  static void expect_refused(const CommandDecision& d, std::string_view command_id, std::string_view reason) {
    EXPECT_FALSE(d.action.has_value());
    EXPECT_EQ(d.result.status, CommandStatus::refused);
    EXPECT_EQ(d.result.command_id, command_id);
    EXPECT_THAT(d.result.reason, HasSubstr(std::string(reason)));
    const auto sent = policy::parse_command_result(policy::command_result_payload("r-1", d.result, 0));
    ASSERT_TRUE(sent.has_value());
    EXPECT_EQ(*sent, d.result);
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  testing::SeededRandom random_;
  CommandSigner signer_{clock_};
  std::optional<Outbox> outbox_;
  std::optional<CommandRunner> runner_;
};

TEST_F(CommandRunnerTest, AValidCommandRunsOnceAndItsReplayIsRefused) {
  const auto command = signer_.command("set_interval", R"({"seconds": 30})");
  const auto payload = signer_.sign(command);
  const auto first = decide(payload);
  EXPECT_EQ(first.result.status, CommandStatus::done) << first.result.reason;
  EXPECT_EQ(first.result.command_id, command.id);
  ASSERT_TRUE(first.action.has_value());
  EXPECT_EQ(*first.action, CommandAction(SetInterval{seconds(30)}));
  EXPECT_EQ(outbox_->nonces().value(), 1U);

  clock_.advance(seconds(1));
  expect_refused(decide(payload), command.id, "replayed");
}

TEST_F(CommandRunnerTest, AReplayIsRefusedAfterTheAgentRestarts) {
  const auto payload = signer_.sign(signer_.command("set_actuator", R"({"on": true})"));
  const auto first = decide(payload);
  ASSERT_TRUE(first.action.has_value()) << first.result.reason;
  EXPECT_EQ(*first.action, CommandAction(SetActuator{true}));
  reopen();
  expect_refused(decide(payload), "c-1", "replayed");
}

TEST_F(CommandRunnerTest, EachActionOfTheProfileRuns) {
  const auto off = decide(signer_.sign(signer_.command("set_actuator", R"({"on": false})")));
  ASSERT_TRUE(off.action.has_value()) << off.result.reason;
  EXPECT_EQ(*off.action, CommandAction(SetActuator{false}));
  const auto posture = decide(signer_.sign(signer_.command("report_posture", "{}")));
  ASSERT_TRUE(posture.action.has_value()) << posture.result.reason;
  EXPECT_EQ(*posture.action, CommandAction(ReportPosture{}));
  const auto longest = decide(signer_.sign(signer_.command("set_interval", R"({"seconds": 86400})")));
  ASSERT_TRUE(longest.action.has_value()) << longest.result.reason;
  EXPECT_EQ(*longest.action, CommandAction(SetInterval{seconds(86400)}));
}

TEST_F(CommandRunnerTest, AnExpiredCommandIsRefusedAndItsNonceNotKept) {
  const auto command = signer_.command("set_interval", R"({"seconds": 30})");
  clock_.advance(minutes(5));
  const auto d = decide(signer_.sign(command));
  expect_refused(d, command.id, "command expired");
  EXPECT_FALSE(d.clock_skew_ms.has_value());
  EXPECT_EQ(outbox_->nonces().value(), 0U);
}

TEST_F(CommandRunnerTest, ACommandFromTooFarAheadIsRefusedWithTheSkew) {
  const auto now = clock_.now();
  clock_.advance(minutes(6));  // the gateway's clock runs 6 minutes ahead of the device's
  auto command = signer_.command("set_interval", R"({"seconds": 30})");
  clock_.set(now);
  const auto d = decide(signer_.sign(command));
  expect_refused(d, command.id, "clock skew");
  ASSERT_TRUE(d.clock_skew_ms.has_value());
  EXPECT_EQ(*d.clock_skew_ms, 6 * 60 * 1000);

  // Up to the tolerance it runs; a millisecond beyond, it does not.
  const auto at_the_limit = signer_.command("set_actuator", R"({"on": true})");
  clock_.set(from_unix_millis(at_the_limit.issued_at_ms) - kToleratedCommandSkew);
  const auto ran = decide(signer_.sign(at_the_limit));
  EXPECT_TRUE(ran.action.has_value()) << ran.result.reason;
  EXPECT_FALSE(ran.clock_skew_ms.has_value());
  const auto beyond = signer_.command("set_actuator", R"({"on": false})");
  clock_.set(from_unix_millis(beyond.issued_at_ms) - kToleratedCommandSkew - milliseconds(1));
  const auto refused = decide(signer_.sign(beyond));
  expect_refused(refused, beyond.id, "clock skew");
  EXPECT_EQ(refused.clock_skew_ms, std::optional<std::int64_t>(5 * 60 * 1000 + 1));
}

TEST_F(CommandRunnerTest, UnsignedAndGarbagePayloadsAreRefused) {
  const auto command = signer_.command("set_interval", R"({"seconds": 30})");
  const auto body = policy::command_body(command);
  expect_refused(decide(""), kUnknownCommandId, "not a signed command");
  expect_refused(decide("\x01\xff garbage"), kUnknownCommandId, "not a signed command");
  expect_refused(decide(json{{"command", body}}.dump()), command.id, "not a signed command");
  expect_refused(decide(policy::command_payload(body, Bytes{})), command.id, "signature invalid");
  expect_refused(decide(policy::command_payload(body, Bytes(64, 0))), command.id, "signature invalid");
  expect_refused(decide(std::string(policy::kMaxCommandPayloadBytes + 1, '{')), kUnknownCommandId, "larger");
  EXPECT_EQ(outbox_->nonces().value(), 0U);
}

TEST_F(CommandRunnerTest, ACommandSignedByAnotherKeyIsRefused) {
  const auto other = crypto::ed25519_generate();
  const auto command = signer_.command("set_interval", R"({"seconds": 30})");
  expect_refused(decide(signer_.sign(command, &other)), command.id, "signature invalid");
}

TEST_F(CommandRunnerTest, ABodyAlteredAfterSigningIsRefused) {
  const auto command = signer_.command("set_interval", R"({"seconds": 30})");
  const auto body = policy::command_body(command);
  const auto signature = crypto::ed25519_sign(signer_.gateway.secret_key, policy::command_signing_input(body)).value();
  auto altered = body;
  altered.replace(altered.find("30"), 2, "31");
  expect_refused(decide(policy::command_payload(altered, signature)), command.id, "signature invalid");
  // The same signature on the body it was made for is accepted.
  EXPECT_TRUE(decide(policy::command_payload(body, signature)).action.has_value());
}

TEST_F(CommandRunnerTest, AnotherDevicesCommandIsRefused) {
  auto command = signer_.command("set_interval", R"({"seconds": 30})");
  command.device_id = "pump-8";
  const auto d = decide(signer_.sign(command));
  expect_refused(d, command.id, "command for another device");
  EXPECT_FALSE(d.clock_skew_ms.has_value());
}

TEST_F(CommandRunnerTest, AMalformedBodyIsRefusedEvenWhenSigned) {
  const auto payload = signer_.signed_body(R"({"id":"c-9","device":"pump-7"})");
  expect_refused(decide(payload), "c-9", "command body malformed");
}

TEST_F(CommandRunnerTest, AnUnknownCommandIsRefused) {
  const auto command = signer_.command("reboot", "{}");
  expect_refused(decide(signer_.sign(command)), command.id, "unknown command 'reboot'");
}

TEST_F(CommandRunnerTest, ParametersThatDoNotFitAreRefused) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"set_interval", "{}"},                              // missing
      {"set_interval", R"({"seconds": 30, "extra": 1})"},  // extra
      {"set_interval", R"({"seconds": "30"})"},            // wrong type
      {"set_interval", R"({"seconds": 1.5})"},             // not an integer
      {"set_interval", R"({"seconds": 0})"},               // out of range
      {"set_interval", R"({"seconds": 86401})"},           // out of range
      {"set_actuator", R"({"on": 1})"},                    // wrong type
      {"set_actuator", "{}"},                              // missing
      {"report_posture", R"({"now": true})"},              // extra
  };
  for (const auto& [name, params] : bad) {
    const auto command = signer_.command(name, params);
    const auto d = decide(signer_.sign(command));
    expect_refused(d, command.id, "invalid parameters: params");
    EXPECT_FALSE(d.action.has_value()) << name << " " << params;
  }
}

TEST_F(CommandRunnerTest, WithoutACommandKeyEveryCommandIsRefused) {
  CommandRunner keyless(std::string(kDevice), std::nullopt, *outbox_);
  EXPECT_FALSE(keyless.has_key());
  const auto command = signer_.command("set_actuator", R"({"on": true})");
  const auto d = keyless.decide(signer_.sign(command), clock_.now());
  expect_refused(d, command.id, "no command key; enrol again");
}

TEST_F(CommandRunnerTest, WhenTheNonceTableIsFullCommandsAreRefusedUntilNoncesExpire) {
  reopen(2);
  EXPECT_TRUE(decide(signer_.sign(signer_.command("set_actuator", R"({"on": true})"))).action.has_value());
  EXPECT_TRUE(decide(signer_.sign(signer_.command("set_actuator", R"({"on": false})"))).action.has_value());
  const auto third = signer_.command("set_actuator", R"({"on": true})");
  expect_refused(decide(signer_.sign(third)), third.id, "too many commands");
  EXPECT_EQ(outbox_->nonces().value(), 2U);

  // Once the first two have expired their nonces go, and there is room again.
  clock_.advance(minutes(5));
  const auto later = signer_.command("set_actuator", R"({"on": true})");
  EXPECT_TRUE(decide(signer_.sign(later)).action.has_value());
  EXPECT_EQ(outbox_->nonces().value(), 1U);
}

TEST(AgentCommands, AreTheSampleProfilesCommands) {
  const auto sample = policy::parse_profile(policy::sample_environment_profile_json());
  ASSERT_TRUE(sample.has_value());
  EXPECT_EQ(agent_commands().commands(), sample->commands());
}

// The runtime's half: results and events go through the outbox, and the actions take effect.
class DeviceAgentCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { start(300); }

  void start(std::uint32_t posture_seconds) {
    agent_.reset();
    AgentConfig config = default_agent_config(2);
    config.state_dir = dir_.path();
    config.posture_seconds = posture_seconds;
    Identity identity;
    identity.device_id = std::string(kDevice);
    identity.command_key = signer_.gateway.public_key;
    auto agent = DeviceAgent::create(io_.get_executor(), io_.get_executor(), config, identity, random_, clock_);
    ASSERT_TRUE(agent.has_value()) << agent.error().message;
    agent_ = std::move(*agent);
  }

  void receive(const std::string& payload, std::string topic = "devices/pump-7/commands") {
    mqtt::Publish message;
    message.qos = 1;
    message.topic = std::move(topic);
    message.payload.assign(payload.begin(), payload.end());
    agent_->on_command(message);
  }

  // The messages waiting in the outbox on one topic, as JSON.
  std::vector<json> sent(std::string_view topic) {
    std::vector<json> out;
    for (const auto& m : agent_->waiting(1000)) {
      if (m.topic == topic) out.push_back(json::parse(m.payload));
    }
    return out;
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  testing::SeededRandom random_;
  CommandSigner signer_{clock_};
  boost::asio::io_context io_;
  std::unique_ptr<DeviceAgent> agent_;
};

TEST_F(DeviceAgentCommandTest, ARunCommandTakesEffectAndIsAnsweredDone) {
  receive(signer_.sign(signer_.command("set_actuator", R"({"on": true})")));
  receive(signer_.sign(signer_.command("set_interval", R"({"seconds": 90})")));
  receive(signer_.sign(signer_.command("report_posture", "{}")));
  const auto status = agent_->status();
  EXPECT_TRUE(status.actuator_on);
  EXPECT_EQ(status.sensor_interval, std::optional<milliseconds>(seconds(90)));
  EXPECT_EQ(status.commands_run, 3U);
  EXPECT_EQ(status.commands_refused, 0U);

  const auto results = sent("devices/pump-7/results");
  ASSERT_EQ(results.size(), 3U);
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i]["command"], "c-" + std::to_string(i + 1));
    EXPECT_EQ(results[i]["status"], "done");
    EXPECT_EQ(results[i]["ts"], to_unix_millis(clock_.now()));
    EXPECT_TRUE(policy::valid_message_id(results[i]["id"].get<std::string>()));
  }
  EXPECT_NE(results[0]["id"], results[1]["id"]);
}

TEST_F(DeviceAgentCommandTest, ARefusedCommandIsAnsweredRefusedAndChangesNothing) {
  const auto payload = signer_.sign(signer_.command("set_actuator", R"({"on": true})"));
  receive(payload);
  receive(payload);
  receive("garbage");
  const auto status = agent_->status();
  EXPECT_EQ(status.commands_run, 1U);
  EXPECT_EQ(status.commands_refused, 2U);
  const auto results = sent("devices/pump-7/results");
  ASSERT_EQ(results.size(), 3U);
  EXPECT_EQ(results[1]["command"], "c-1");
  EXPECT_EQ(results[1]["status"], "refused");
  EXPECT_EQ(results[1]["reason"], "replayed");
  EXPECT_EQ(results[2]["command"], "unknown");
  EXPECT_EQ(results[2]["status"], "refused");
}

TEST_F(DeviceAgentCommandTest, ACommandFromTooFarAheadIsAClockSkewEvent) {
  clock_.advance(minutes(10));
  const auto command = signer_.command("set_actuator", R"({"on": true})");
  clock_.advance(-minutes(10));
  receive(signer_.sign(command));
  EXPECT_FALSE(agent_->status().actuator_on);
  const auto events = sent("devices/pump-7/events");
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0]["type"], "clock_skew");
  EXPECT_EQ(events[0]["skew_ms"], 10 * 60 * 1000);
  EXPECT_EQ(events[0]["command"], command.id);
  EXPECT_EQ(agent_->status().events, 1U);
  const auto results = sent("devices/pump-7/results");
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0]["status"], "refused");
}

TEST_F(DeviceAgentCommandTest, APostureReportAskedOfADeviceWithoutReportsFails) {
  start(0);
  receive(signer_.sign(signer_.command("report_posture", "{}")));
  const auto results = sent("devices/pump-7/results");
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0]["status"], "failed");
  EXPECT_EQ(results[0]["reason"], "posture reports are off on this device");
  EXPECT_EQ(agent_->status().commands_run, 1U);
}

TEST_F(DeviceAgentCommandTest, MessagesOnOtherTopicsAreIgnored) {
  receive(signer_.sign(signer_.command("set_actuator", R"({"on": true})")), "devices/pump-8/commands");
  EXPECT_FALSE(agent_->status().actuator_on);
  EXPECT_TRUE(sent("devices/pump-7/results").empty());
}

}  // namespace
}  // namespace torii::agent

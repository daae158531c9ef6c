#include "broker/device_health.h"

#include <gtest/gtest.h>

namespace torii::broker {
namespace {

using policy::TopicKind;

constexpr UnixMillis kStart = 1'790'000'000'000;
constexpr std::string_view kBeat = R"({"type":"heartbeat","uptime_seconds":5})";

const policy::Profile& every_ten_seconds() {
  static const policy::Profile profile = *policy::parse_profile(R"({"metrics": [], "heartbeat_seconds": 10})");
  return profile;
}

std::vector<std::string> actions(const std::vector<events::SecurityEvent>& events) {
  std::vector<std::string> out;
  out.reserve(events.size());
  for (const auto& e : events) out.push_back(e.action);
  return out;
}

TEST(DeviceHealth, MissedHeartbeatsAreAnAlertOnceUntilTheDeviceBeatsAgain) {
  DeviceHealth health(3);
  EXPECT_TRUE(health.observe("pump-1", TopicKind::state, kBeat, every_ten_seconds(), kStart).empty());
  EXPECT_TRUE(health.check(kStart + 29'999).empty());

  const auto missed = health.check(kStart + 30'000);
  ASSERT_EQ(actions(missed), std::vector<std::string>{"device.heartbeat_missed"});
  EXPECT_EQ(missed[0].actor, "system");
  EXPECT_EQ(missed[0].object, "device:pump-1");
  EXPECT_EQ(missed[0].details["alert"], true);
  EXPECT_EQ(missed[0].details["heartbeat_seconds"], 10);
  EXPECT_EQ(missed[0].details["silent_seconds"], 30);
  EXPECT_TRUE(health.check(kStart + 90'000).empty());  // reported once

  const auto back = health.observe("pump-1", TopicKind::state, kBeat, every_ten_seconds(), kStart + 100'000);
  ASSERT_EQ(actions(back), std::vector<std::string>{"device.heartbeat_resumed"});
  EXPECT_FALSE(back[0].details.contains("alert"));
  EXPECT_TRUE(health.check(kStart + 129'000).empty());
  EXPECT_EQ(actions(health.check(kStart + 130'000)), std::vector<std::string>{"device.heartbeat_missed"});
}

TEST(DeviceHealth, OnlyDevicesThatSendHeartbeatsAreWatched) {
  DeviceHealth health;
  EXPECT_TRUE(
      health.observe("meter-1", TopicKind::telemetry, R"({"temperature":1})", every_ten_seconds(), kStart).empty());
  EXPECT_TRUE(health.observe("meter-1", TopicKind::state, R"({"type":"booted"})", every_ten_seconds(), kStart).empty());
  EXPECT_TRUE(health.observe("meter-1", TopicKind::state, "not json", every_ten_seconds(), kStart).empty());
  EXPECT_EQ(health.watched(), 0U);
  EXPECT_TRUE(health.check(kStart + 3'600'000).empty());

  EXPECT_TRUE(health.observe("meter-1", TopicKind::state, kBeat, every_ten_seconds(), kStart).empty());
  health.forget("meter-1");
  EXPECT_TRUE(health.check(kStart + 3'600'000).empty());
}

TEST(DeviceHealth, AnAgentsIrregularSensorIsAnAlertAndItsRecoveryIsRecorded) {
  DeviceHealth health;
  const auto stuck =
      health.observe("pump-1", TopicKind::events,
                     R"({"id":"ab-3","type":"sensor_stuck","metric":"temperature","detail":"the same value 10 times"})",
                     policy::generic_profile(), kStart);
  ASSERT_EQ(actions(stuck), std::vector<std::string>{"device.sensor_irregular"});
  EXPECT_EQ(stuck[0].actor, "device:pump-1");
  EXPECT_EQ(stuck[0].details["condition"], "stuck");
  EXPECT_EQ(stuck[0].details["metric"], "temperature");
  EXPECT_EQ(stuck[0].details["alert"], true);
  EXPECT_FALSE(stuck[0].details.contains("detail"));  // the device's own words stay in its message

  const auto recovered = health.observe("pump-1", TopicKind::events,
                                        R"({"type":"sensor_recovered","metric":"temperature","ended":"sensor_stuck"})",
                                        policy::generic_profile(), kStart);
  ASSERT_EQ(actions(recovered), std::vector<std::string>{"device.sensor_recovered"});
  EXPECT_EQ(recovered[0].details["condition"], "stuck");
  EXPECT_FALSE(recovered[0].details.contains("alert"));

  for (const char* ignored :
       {R"({"type":"sensor_melted","metric":"temperature"})", R"({"type":"sensor_stuck","metric":"Temperature; DROP"})",
        R"({"type":"sensor_stuck"})", R"({"type":"door_opened","metric":"door"})", "[]"}) {
    EXPECT_TRUE(health.observe("pump-1", TopicKind::events, ignored, policy::generic_profile(), kStart).empty())
        << ignored;
  }
}

std::string beat_at(std::int64_t device_ms) {
  return R"({"type":"heartbeat","ts":)" + std::to_string(device_ms) + R"(,"uptime_seconds":5})";
}

TEST(DeviceHealth, AClockBeyondTheBoundIsAnAlertOnceUntilItIsRightAgain) {
  DeviceHealth health(3, std::chrono::seconds(60));
  const auto& profile = every_ten_seconds();
  // Within a minute either way: nothing.
  EXPECT_TRUE(health.observe("meter-1", TopicKind::state, beat_at(kStart + 59'000), profile, kStart).empty());
  EXPECT_TRUE(health.observe("meter-1", TopicKind::state, beat_at(kStart - 60'000), profile, kStart).empty());
  // The device's clock is 90 s behind the server's.
  const auto skewed =
      health.observe("meter-1", TopicKind::state, beat_at(kStart + 10'000 - 90'000), profile, kStart + 10'000);
  ASSERT_EQ(actions(skewed), std::vector<std::string>{"device.clock_skew"});
  EXPECT_EQ(skewed[0].actor, "system");  // the server's finding
  EXPECT_EQ(skewed[0].object, "device:meter-1");
  EXPECT_EQ(skewed[0].outcome, events::Outcome::failure);
  EXPECT_EQ(skewed[0].details["skew_seconds"], -90);
  EXPECT_EQ(skewed[0].details["max_clock_skew_seconds"], 60);
  EXPECT_EQ(skewed[0].details["alert"], true);
  // Still off, even further the other way: no second alert.
  EXPECT_TRUE(
      health.observe("meter-1", TopicKind::state, beat_at(kStart + 20'000 + 3'600'000), profile, kStart + 20'000)
          .empty());
  // Set right: resolved, once.
  const auto resolved =
      health.observe("meter-1", TopicKind::state, beat_at(kStart + 30'000 + 1'500), profile, kStart + 30'000);
  ASSERT_EQ(actions(resolved), std::vector<std::string>{"device.clock_skew_resolved"});
  EXPECT_EQ(resolved[0].details["skew_seconds"], 2);
  EXPECT_FALSE(resolved[0].details.contains("alert"));
  EXPECT_TRUE(health.observe("meter-1", TopicKind::state, beat_at(kStart + 40'000), profile, kStart + 40'000).empty());
  // And again when it drifts away.
  EXPECT_EQ(
      actions(health.observe("meter-1", TopicKind::state, beat_at(kStart + 50'000 + 61'000), profile, kStart + 50'000)),
      std::vector<std::string>{"device.clock_skew"});

  // Heartbeats without a time, or with one that is not a number, are not judged; absurd
  // times are reported as a finite skew.
  EXPECT_TRUE(health.observe("meter-2", TopicKind::state, kBeat, profile, kStart).empty());
  EXPECT_TRUE(
      health.observe("meter-2", TopicKind::state, R"({"type":"heartbeat","ts":"yesterday"})", profile, kStart).empty());
  const auto absurd =
      health.observe("meter-2", TopicKind::state, R"({"type":"heartbeat","ts":1e300})", profile, kStart);
  ASSERT_EQ(actions(absurd), std::vector<std::string>{"device.clock_skew"});
  EXPECT_TRUE(absurd[0].details["skew_seconds"].is_number_integer());
  EXPECT_GT(absurd[0].details["skew_seconds"].get<std::int64_t>(), 0);
  // Other state messages carry times of their own (a posture report from the outbox may be
  // hours old): only heartbeats are compared.
  EXPECT_TRUE(health.observe("meter-3", TopicKind::state, R"({"type":"posture","ts":1})", profile, kStart).empty());
}

TEST(DeviceHealth, ABoundOfZeroComparesNoClocks) {
  DeviceHealth health(3, std::chrono::seconds(0));
  EXPECT_TRUE(health.observe("meter-1", TopicKind::state, beat_at(1), every_ten_seconds(), kStart).empty());
}

TEST(DeviceHealth, ATamperInputIsAnAlertOncePerTransition) {
  DeviceHealth health;
  const auto& generic = policy::generic_profile();
  const std::string open = R"({"id":"ab-7","type":"tamper","metric":"lid","detail":"the tamper input reads 1"})";
  const std::string closed = R"({"id":"ab-8","type":"tamper_cleared","metric":"lid","detail":"reads 0 again"})";
  const auto tampered = health.observe("cabinet-1", TopicKind::events, open, generic, kStart);
  ASSERT_EQ(actions(tampered), std::vector<std::string>{"device.tamper"});
  EXPECT_EQ(tampered[0].actor, "device:cabinet-1");
  EXPECT_EQ(tampered[0].object, "device:cabinet-1");
  EXPECT_EQ(tampered[0].outcome, events::Outcome::failure);
  EXPECT_EQ(tampered[0].details["metric"], "lid");
  EXPECT_EQ(tampered[0].details["alert"], true);
  EXPECT_FALSE(tampered[0].details.contains("detail"));
  // The same state again (an agent that restarted with the lid open): no second alert.
  EXPECT_TRUE(health.observe("cabinet-1", TopicKind::events, open, generic, kStart + 1000).empty());
  // Another device, or another input of this one, is its own transition.
  EXPECT_EQ(actions(health.observe("cabinet-2", TopicKind::events, open, generic, kStart)),
            std::vector<std::string>{"device.tamper"});

  const auto cleared = health.observe("cabinet-1", TopicKind::events, closed, generic, kStart + 2000);
  ASSERT_EQ(actions(cleared), std::vector<std::string>{"device.tamper_cleared"});
  EXPECT_EQ(cleared[0].details["metric"], "lid");
  EXPECT_FALSE(cleared[0].details.contains("alert"));
  EXPECT_TRUE(health.observe("cabinet-1", TopicKind::events, closed, generic, kStart + 3000).empty());
  EXPECT_EQ(actions(health.observe("cabinet-1", TopicKind::events, open, generic, kStart + 4000)),
            std::vector<std::string>{"device.tamper"});

  // What the server does not know of (it restarted): a clearance is still recorded.
  EXPECT_EQ(actions(health.observe("cabinet-3", TopicKind::events, closed, generic, kStart)),
            std::vector<std::string>{"device.tamper_cleared"});
  EXPECT_TRUE(
      health.observe("cabinet-1", TopicKind::events, R"({"type":"tamper","metric":"Lid<script>"})", generic, kStart)
          .empty());
  EXPECT_TRUE(health.observe("cabinet-1", TopicKind::state, open, generic, kStart).empty());  // events only
  // A deleted device starts afresh.
  health.forget("cabinet-2");
  EXPECT_EQ(actions(health.observe("cabinet-2", TopicKind::events, open, generic, kStart)),
            std::vector<std::string>{"device.tamper"});
}

TEST(DeviceHealth, APostureReportsNewFindingsAreAlertsAndThoseThatEndAreRecorded) {
  DeviceHealth health;
  const auto& strict = policy::generic_profile();
  const std::string_view open_ssh =
      R"({"type":"posture","listening":[{"protocol":"tcp","address":"0.0.0.0","port":22,"service":"ssh"}],)"
      R"("serial_consoles":["ttyS0"]})";
  const auto first = health.observe("gw-1", TopicKind::state, open_ssh, strict, kStart);
  ASSERT_EQ(actions(first), (std::vector<std::string>{"device.posture_violation", "device.posture_violation"}));
  EXPECT_EQ(first[0].details["finding"], "remote_access");
  EXPECT_EQ(first[0].details["detail"], "tcp/22 (ssh) on 0.0.0.0");
  EXPECT_EQ(first[0].details["alert"], true);
  EXPECT_EQ(first[1].details["finding"], "serial_console");
  // The same findings again: nothing new to say.
  EXPECT_TRUE(health.observe("gw-1", TopicKind::state, open_ssh, strict, kStart + 1000).empty());
  // ssh closed: the remote-access finding ends, the console stays.
  const auto later = health.observe("gw-1", TopicKind::state, R"({"type":"posture","serial_consoles":["ttyS0"]})",
                                    strict, kStart + 2000);
  ASSERT_EQ(actions(later), std::vector<std::string>{"device.posture_resolved"});
  EXPECT_EQ(later[0].details["finding"], "remote_access");
  EXPECT_FALSE(later[0].details.contains("alert"));
}

}  // namespace
}  // namespace torii::broker

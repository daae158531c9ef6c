#include "alerts/alert_rules.h"

#include <gtest/gtest.h>

namespace torii::alerts {
namespace {

using events::Outcome;
using events::SecurityEvent;
using Kind = AlertChange::Kind;

SecurityEvent device_event(std::string action, nlohmann::json details) {
  return {"system", std::move(action), "device:pump-1", Outcome::failure, "", std::move(details)};
}

// Every device health alert is ended by its own clearing event, by exactly the same key.
TEST(AlertRules, EachDeviceHealthAlertPairsWithTheEventThatEndsIt) {
  struct Pair {
    SecurityEvent opens;
    SecurityEvent ends;
    std::string key;
    std::string severity;
  };
  const std::vector<Pair> pairs = {
      {device_event("device.heartbeat_missed", {{"heartbeat_seconds", 60}, {"silent_seconds", 185}, {"alert", true}}),
       device_event("device.heartbeat_resumed", {{"silent_seconds", 200}}), "device.heartbeat:pump-1", "warning"},
      {device_event("device.clock_skew", {{"skew_seconds", 400}, {"max_clock_skew_seconds", 300}, {"alert", true}}),
       device_event("device.clock_skew_resolved", {{"skew_seconds", 2}}), "device.clock_skew:pump-1", "warning"},
      {device_event("device.tamper", {{"metric", "lid"}, {"alert", true}}),
       device_event("device.tamper_cleared", {{"metric", "lid"}}), "device.tamper:pump-1:lid", "critical"},
      {device_event("device.sensor_irregular", {{"metric", "temp"}, {"condition", "stuck"}, {"alert", true}}),
       device_event("device.sensor_recovered", {{"metric", "temp"}, {"condition", "stuck"}}),
       "device.sensor:pump-1:temp", "warning"},
      {device_event("device.posture_violation",
                    {{"finding", "port_not_allowed"}, {"detail", "tcp/22 (ssh) on 0.0.0.0"}, {"alert", true}}),
       device_event("device.posture_resolved",
                    {{"finding", "port_not_allowed"}, {"detail", "tcp/22 (ssh) on 0.0.0.0"}}),
       "device.posture:pump-1:port_not_allowed:tcp/22 (ssh) on 0.0.0.0", "warning"},
  };
  for (const auto& p : pairs) {
    SCOPED_TRACE(p.opens.action);
    auto opened = alert_change_for(p.opens);
    ASSERT_TRUE(opened);
    EXPECT_EQ(opened->kind, Kind::raise);
    EXPECT_EQ(opened->key, p.key);
    EXPECT_EQ(opened->source, "device");
    EXPECT_EQ(opened->severity, p.severity);
    EXPECT_EQ(opened->device_id, "pump-1");
    EXPECT_FALSE(opened->title.empty());
    auto ended = alert_change_for(p.ends);
    ASSERT_TRUE(ended);
    EXPECT_EQ(ended->kind, Kind::resolve);
    EXPECT_EQ(ended->key, p.key);
    EXPECT_EQ(ended->device_id, "pump-1");
  }
}

TEST(AlertRules, AlertsOfOneDeviceAndMetricDoNotEndEachOther) {
  auto lid = alert_change_for(device_event("device.tamper", {{"metric", "lid"}, {"alert", true}}));
  auto door = alert_change_for(device_event("device.tamper_cleared", {{"metric", "door"}}));
  ASSERT_TRUE(lid && door);
  EXPECT_NE(lid->key, door->key);
  auto other = device_event("device.tamper_cleared", {{"metric", "lid"}});
  other.object = "device:pump-2";
  auto other_device = alert_change_for(other);
  ASSERT_TRUE(other_device);
  EXPECT_NE(lid->key, other_device->key);
}

TEST(AlertRules, ALockoutEndsWhenThePersonIsUnlocked) {
  auto locked = alert_change_for({"system",
                                  "account.locked",
                                  "user:u-1",
                                  Outcome::success,
                                  "203.0.113.5:4000",
                                  {{"seconds", 900}, {"alert", true}}});
  ASSERT_TRUE(locked);
  EXPECT_EQ(locked->kind, Kind::raise);
  EXPECT_EQ(locked->source, "security");
  EXPECT_EQ(locked->user_id, "u-1");
  auto unlocked = alert_change_for({"user:admin", "user.unlocked", "user:u-1", Outcome::success, "", {}});
  ASSERT_TRUE(unlocked);
  EXPECT_EQ(unlocked->kind, Kind::resolve);
  EXPECT_EQ(unlocked->key, locked->key);
}

TEST(AlertRules, SecurityEventsMarkedAsAlertsOpenOne) {
  const std::vector<SecurityEvent> raised = {
      {"system",
       "login.failures_burst",
       "source:203.0.113.5",
       Outcome::failure,
       "203.0.113.5:4000",
       {{"failures", 20}, {"alert", true}}},
      {"anonymous", "waf.blocked", "/api/v1/login?x=<script>", Outcome::denied, "198.51.100.7:5555", {{"alert", true}}},
      {"user:u-1", "totp.disabled", "user:u-1", Outcome::success, "", {{"organisation", "org-1"}, {"alert", true}}},
      {"user:u-1",
       "second_factor.reset",
       "user:u-2",
       Outcome::success,
       "",
       {{"organisation", "org-1"}, {"alert", true}}},
      {"user:u-1", "user.created", "user:u-3", Outcome::success, "", {{"organisation", "org-1"}, {"alert", true}}},
      {"user:u-1", "user.changed", "user:u-3", Outcome::success, "", {{"organisation", "org-1"}, {"alert", true}}},
      {"user:u-1",
       "role.created",
       "role:org-1/boss",
       Outcome::success,
       "",
       {{"organisation", "org-1"}, {"alert", true}}},
      {"user:u-1",
       "role.changed",
       "role:org-1/boss",
       Outcome::success,
       "",
       {{"organisation", "org-1"}, {"alert", true}}},
      {"user:u-1", "settings.changed", "setting:firewall.allow", Outcome::success, "", {{"alert", true}}},
      {"system", "some.future_alert", "thing:1", Outcome::failure, "", {{"alert", true}}},
  };
  for (const auto& e : raised) {
    SCOPED_TRACE(e.action);
    auto change = alert_change_for(e);
    ASSERT_TRUE(change);
    EXPECT_EQ(change->kind, Kind::raise);
    EXPECT_EQ(change->source, "security");
    EXPECT_FALSE(change->key.empty());
    EXPECT_FALSE(change->title.empty());
  }
  // The WAF's alert is per address: the attacker's path stays out of it.
  auto waf = alert_change_for(raised[1]);
  EXPECT_EQ(waf->key, "waf.blocked:198.51.100.7");
  EXPECT_EQ(waf->summary.find("script"), std::string::npos);
  EXPECT_EQ(alert_change_for(raised[2])->organisation_id, "org-1");
  auto settings = raised[8];
  settings.details["organisation"] = "org-1";  // the administrator's, as the console adds it
  EXPECT_EQ(alert_change_for(settings)->organisation_id, "") << "the settings are the installation's";
  EXPECT_EQ(alert_change_for(settings)->key, "settings.weakened:firewall.allow");
}

// JPCERT VIII-1, IIIT N6: a traffic anomaly the gateway finds is an alert of its device, one
// per kind of anomaly while it is open.
TEST(AlertRules, ATrafficAnomalyIsAnAlertOfItsDevicePerKind) {
  auto spike = alert_change_for({"system",
                                 "traffic.anomaly",
                                 "device:pump-1",
                                 Outcome::failure,
                                 "10.0.0.9:4000",
                                 {{"anomaly", "rate_spike"}, {"detail", "120 messages/min"}, {"alert", true}}});
  ASSERT_TRUE(spike);
  EXPECT_EQ(spike->kind, Kind::raise);
  EXPECT_EQ(spike->device_id, "pump-1");
  EXPECT_EQ(spike->key, "traffic.anomaly:pump-1:rate_spike");
  EXPECT_EQ(spike->title, "Traffic anomaly");
  auto topic = alert_change_for({"system",
                                 "traffic.anomaly",
                                 "device:pump-1",
                                 Outcome::failure,
                                 "10.0.0.9:4000",
                                 {{"anomaly", "unusual_topic"}, {"detail", "x"}, {"alert", true}}});
  ASSERT_TRUE(topic);
  EXPECT_NE(topic->key, spike->key);
}

TEST(AlertRules, UnrelatedEventsAndTheBooksOwnChangeNothing) {
  const std::vector<SecurityEvent> quiet = {
      {"user:u-1", "login.succeeded", "user:u-1", Outcome::success, "", {}},
      {"user:u-1", "user.created", "user:u-3", Outcome::success, "", {{"alert", false}}},
      {"system", "server.start", "", Outcome::success, "local", {}},
      {"device:pump-1", "device.command_answered", "device:pump-1", Outcome::success, "", {}},
      {"user:u-1", "alert.acknowledged", "alert:a-1", Outcome::success, "", {{"alert", true}}},
      {"user:u-1", "alert.resolved", "alert:a-1", Outcome::success, "", {}},
      {"system", "device.tamper", "device:pump-1", Outcome::failure, "", {{"alert", true}}},  // no metric
      {"system", "device.tamper_cleared", "user:u-1", Outcome::success, "", {{"metric", "lid"}}},
  };
  for (const auto& e : quiet) {
    SCOPED_TRACE(e.action);
    EXPECT_FALSE(alert_change_for(e));
  }
}

}  // namespace
}  // namespace torii::alerts

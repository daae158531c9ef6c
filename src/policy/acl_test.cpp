#include "policy/acl.h"

#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::policy {
namespace {

using Verdict = Decision::Verdict;

// NOLINTBEGIN(cert-err58-cpp): short strings; a test binary that cannot allocate them fails anyway
const DeviceIdentity kA{"sensor-a", "lab"};
const DeviceIdentity kB{"sensor-b", "office"};
const DeviceIdentity kC{"sensor-c", ""};
// NOLINTEND(cert-err58-cpp)

class AclTest : public ::testing::Test {
 protected:
  RouteTable routes_;
  std::map<std::string, std::string, std::less<>> segments_{{"sensor-a", "lab"}, {"sensor-b", "office"}};
  int lookups_ = 0;
  SegmentLookup segment_of_ = [this](std::string_view id) -> std::optional<std::string> {
    ++lookups_;
    const auto it = segments_.find(id);
    if (it == segments_.end()) return std::nullopt;
    return it->second;
  };

  Decision subscribe(const DeviceIdentity& who, std::string_view filter) {
    return authorize_subscribe(who, filter, routes_, segment_of_);
  }
  Decision deliver(const DeviceIdentity& who, std::string_view topic) {
    return authorize_delivery(who, topic, routes_, segment_of_);
  }
};

TEST(DeviceId, Rule) {
  EXPECT_TRUE(valid_device_id("a"));
  EXPECT_TRUE(valid_device_id("0sensor-1"));
  EXPECT_TRUE(valid_device_id(std::string(63, 'x')));
  EXPECT_FALSE(valid_device_id(std::string(64, 'x')));
  EXPECT_FALSE(valid_device_id(""));
  EXPECT_FALSE(valid_device_id("-a"));
  EXPECT_FALSE(valid_device_id("Sensor"));
  EXPECT_FALSE(valid_device_id("a_b"));
  EXPECT_FALSE(valid_device_id("a/b"));
  EXPECT_FALSE(valid_device_id("+"));
  EXPECT_FALSE(valid_device_id(std::string_view("a\0", 2)));
  EXPECT_TRUE(valid_segment_name("lab-2"));
  EXPECT_FALSE(valid_segment_name("Lab"));
}

TEST(DeviceTopic, ParsesOnlyTheEightKinds) {
  const auto t = parse_device_topic("devices/sensor-a/telemetry");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->device_id, "sensor-a");
  EXPECT_EQ(t->kind, TopicKind::telemetry);
  for (const TopicKind kind : {TopicKind::telemetry, TopicKind::events, TopicKind::state, TopicKind::results,
                               TopicKind::commands, TopicKind::renew, TopicKind::certificate, TopicKind::alerts}) {
    const std::string topic = device_topic("d1", kind);
    const auto parsed = parse_device_topic(topic);
    ASSERT_TRUE(parsed.has_value()) << topic;
    EXPECT_EQ(parsed->kind, kind);
    EXPECT_EQ(parsed->device_id, "d1");
  }
  EXPECT_EQ(device_topic("d1", TopicKind::results), "devices/d1/results");
  EXPECT_EQ(device_topic("d1", TopicKind::renew), "devices/d1/renew");
  EXPECT_EQ(device_topic("d1", TopicKind::certificate), "devices/d1/certificate");
  EXPECT_EQ(device_topic("d1", TopicKind::alerts), "devices/d1/alerts");
  for (const char* bad : {"devices/sensor-a", "devices/sensor-a/telemetry/x", "devices/Sensor/telemetry",
                          "devices//telemetry", "devices/+/telemetry", "devices/a/logs", "device/a/telemetry",
                          "/devices/a/telemetry", "devices/a/telemetry/", "", "devices/a/Telemetry"}) {
    EXPECT_FALSE(parse_device_topic(bad).has_value()) << bad;
  }
}

TEST(Decisions, AnyDenyWinsAndNobodyAllowingMeansDeny) {
  const auto allow = Decision::allow("yes");
  const auto deny = Decision::deny("no");
  const auto abstain = Decision::abstain();
  EXPECT_EQ(combine({allow, deny, allow}, "default").reason, "no");
  EXPECT_EQ(combine({abstain, allow, abstain}, "default").verdict, Verdict::allow);
  EXPECT_EQ(combine({abstain, abstain}, "default").verdict, Verdict::deny);
  EXPECT_EQ(combine({abstain, abstain}, "default").reason, "default");
  EXPECT_EQ(combine({}, "default").verdict, Verdict::deny);
}

TEST_F(AclTest, DevicePublishesOnlyToItsOwnDeviceTopics) {
  for (const char* kind : {"telemetry", "events", "state", "results", "renew"}) {
    const std::string topic = std::string("devices/sensor-a/") + kind;
    const Decision d = authorize_publish(kA, topic);
    EXPECT_TRUE(d.allowed()) << topic << ": " << d.reason;
  }
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a/commands").reason,
            "a device does not publish to its commands topic");
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a/certificate").reason,
            "a device does not publish to its certificate topic");
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a/alerts").reason, "a device does not publish to its alerts topic");
}

TEST_F(AclTest, PublishingIntoAnotherNamespaceIsNeverAllowedEvenWithARoute) {
  ASSERT_TRUE(routes_.add({Selector::device("sensor-a"), Selector::device("sensor-b")}));
  ASSERT_TRUE(routes_.add({Selector::device("sensor-b"), Selector::device("sensor-a")}));
  for (const char* topic : {"devices/sensor-b/telemetry", "devices/sensor-b/commands", "devices/sensor-b/renew",
                            "devices/sensor-b/certificate", "devices/sensor-b/x", "devices/sensor-b",
                            "devices//telemetry", "devices/sensor-a-2/telemetry"}) {
    const Decision d = authorize_publish(kA, topic);
    EXPECT_EQ(d.verdict, Verdict::deny) << topic;
    EXPECT_EQ(d.reason, "another device's namespace") << topic;
  }
}

TEST_F(AclTest, PublishOutsideTheNamespaceIsDeniedByDefault) {
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a/other").reason, "topic outside the device's namespace");
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a/telemetry/x").reason, "topic outside the device's namespace");
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a").reason, "topic outside the device's namespace");
  EXPECT_EQ(authorize_publish(kA, "devices").reason, "topic outside the device's namespace");
  EXPECT_EQ(authorize_publish(kA, "home/kitchen").reason, "topic outside the device's namespace");
  EXPECT_EQ(authorize_publish(kA, "/devices/sensor-a/telemetry").reason, "topic outside the device's namespace");
}

TEST_F(AclTest, MalformedPublishTopicsAreDenied) {
  EXPECT_EQ(authorize_publish(kA, "").reason, "empty topic");
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a/+").reason, "wildcard in a topic name");
  EXPECT_EQ(authorize_publish(kA, "devices/sensor-a/#").reason, "wildcard in a topic name");
  EXPECT_EQ(authorize_publish(kA, "$SYS/broker").reason, "'$' topics are reserved for the server");
  EXPECT_EQ(authorize_publish(kA, std::string_view("devices/sensor-a/telemetry\0", 27)).reason, "NUL in topic");
  EXPECT_EQ(authorize_publish(kA, std::string(65536, 'a')).reason, "topic longer than 65535 bytes");
}

TEST_F(AclTest, DeviceSubscribesOnlyToItsOwnCommandsCertificateAndAlertsTopics) {
  EXPECT_TRUE(subscribe(kA, "devices/sensor-a/commands").allowed());
  EXPECT_TRUE(subscribe(kA, "devices/sensor-a/certificate").allowed());
  EXPECT_TRUE(subscribe(kA, "devices/sensor-a/alerts").allowed());
  for (const char* filter : {"devices/sensor-a/+", "devices/sensor-a/#", "devices/sensor-a/telemetry",
                             "devices/sensor-a/renew", "devices/sensor-a/commands/#", "devices/sensor-a/commands/x",
                             "devices/sensor-a/certificate/x", "devices/sensor-a/alerts/x", "devices/sensor-a"}) {
    const Decision d = subscribe(kA, filter);
    EXPECT_EQ(d.verdict, Verdict::deny) << filter;
    EXPECT_EQ(d.reason, "a device subscribes only to its own commands, certificate and alerts topics") << filter;
  }
}

TEST_F(AclTest, AnotherDevicesRenewalTopicsAreClosedEvenWithARoute) {
  ASSERT_TRUE(routes_.add({Selector::device("sensor-a"), Selector::device("sensor-b")}));
  EXPECT_EQ(authorize_publish(kB, "devices/sensor-a/renew").reason, "another device's namespace");
  EXPECT_EQ(authorize_publish(kB, "devices/sensor-a/certificate").reason, "another device's namespace");
  for (const char* filter : {"devices/sensor-a/renew", "devices/sensor-a/certificate", "devices/sensor-a/alerts"}) {
    EXPECT_EQ(subscribe(kB, filter).verdict, Verdict::deny) << filter;
  }
  // devices/sensor-a/+ is routed, but never carries renewal traffic or sensor-a's alerts.
  EXPECT_TRUE(subscribe(kB, "devices/sensor-a/+").allowed());
  for (const char* topic : {"devices/sensor-a/renew", "devices/sensor-a/certificate", "devices/sensor-a/alerts"}) {
    EXPECT_EQ(deliver(kB, topic).reason, "another device's commands, results, certificates or alerts") << topic;
  }
}

TEST_F(AclTest, BroadAndDollarFiltersAreAlwaysDenied) {
  // Even with a route from everyone's segment to the subscriber.
  ASSERT_TRUE(routes_.add({Selector::segment("office"), Selector::segment("lab")}));
  EXPECT_EQ(subscribe(kA, "#").reason, "wildcard at the first level");
  EXPECT_EQ(subscribe(kA, "+/sensor-b/telemetry").reason, "wildcard at the first level");
  EXPECT_EQ(subscribe(kA, "+").reason, "wildcard at the first level");
  EXPECT_EQ(subscribe(kA, "$SYS/#").reason, "'$' topics are not for devices");
  EXPECT_EQ(subscribe(kA, "$share/g/devices/sensor-b/telemetry").reason, "'$' topics are not for devices");
  EXPECT_EQ(subscribe(kA, "devices/#").reason, "wildcard in place of a device id");
  EXPECT_EQ(subscribe(kA, "devices/+/telemetry").reason, "wildcard in place of a device id");
  EXPECT_EQ(subscribe(kA, "devices/sensor-b/tele#").reason, "malformed wildcard");
  EXPECT_EQ(subscribe(kA, "devices/sensor-b/#/x").reason, "malformed wildcard");
  EXPECT_EQ(subscribe(kA, "devices/sensor-b+/x").reason, "malformed wildcard");
  EXPECT_EQ(subscribe(kA, "").reason, "empty filter");
  EXPECT_EQ(subscribe(kA, std::string_view("devices/sensor-a/commands\0", 26)).reason, "NUL in filter");
  EXPECT_EQ(subscribe(kA, std::string(65536, 'a')).reason, "filter longer than 65535 bytes");
  EXPECT_EQ(lookups_, 0) << "a malformed filter must be refused before any registry lookup";
}

TEST_F(AclTest, ReadingAnotherDeviceNeedsARoute) {
  EXPECT_EQ(subscribe(kB, "devices/sensor-a/telemetry").reason, "no route allows this filter");
  ASSERT_TRUE(routes_.add({Selector::device("sensor-a"), Selector::device("sensor-b")}));
  for (const char* filter :
       {"devices/sensor-a/telemetry", "devices/sensor-a/events", "devices/sensor-a/state", "devices/sensor-a/+"}) {
    const Decision d = subscribe(kB, filter);
    EXPECT_TRUE(d.allowed()) << filter << ": " << d.reason;
    EXPECT_EQ(d.reason, "route");
  }
  // One direction only; other devices gain nothing.
  EXPECT_EQ(subscribe(kA, "devices/sensor-b/telemetry").verdict, Verdict::deny);
  EXPECT_EQ(subscribe(kC, "devices/sensor-a/telemetry").verdict, Verdict::deny);
  // A route never opens commands, results, deeper levels or '#'.
  for (const char* filter : {"devices/sensor-a/commands", "devices/sensor-a/results", "devices/sensor-a/#",
                             "devices/sensor-a/telemetry/x", "devices/sensor-a/+/+", "devices/sensor-a"}) {
    const Decision d = subscribe(kB, filter);
    EXPECT_EQ(d.verdict, Verdict::deny) << filter;
    EXPECT_EQ(d.reason, "a routed filter is devices/<id>/telemetry, events, state or +") << filter;
  }
  // Removing the route takes the permission away.
  EXPECT_TRUE(routes_.remove({Selector::device("sensor-a"), Selector::device("sensor-b")}));
  EXPECT_FALSE(routes_.remove({Selector::device("sensor-a"), Selector::device("sensor-b")}));
  EXPECT_EQ(subscribe(kB, "devices/sensor-a/telemetry").verdict, Verdict::deny);
}

TEST_F(AclTest, SegmentRoutesUseTheRegistry) {
  ASSERT_TRUE(routes_.add({Selector::segment("lab"), Selector::segment("office")}));
  EXPECT_TRUE(subscribe(kB, "devices/sensor-a/telemetry").allowed());
  EXPECT_EQ(lookups_, 1);
  // A device without a segment, or of another segment, is not covered.
  EXPECT_EQ(subscribe(kC, "devices/sensor-a/telemetry").verdict, Verdict::deny);
  EXPECT_EQ(subscribe(kA, "devices/sensor-b/telemetry").verdict, Verdict::deny);
  // Unknown source device: the lookup says nothing, so no route applies.
  EXPECT_EQ(subscribe(kB, "devices/ghost/telemetry").verdict, Verdict::deny);
  // The segment is looked up once per decision however many routes there are.
  ASSERT_TRUE(routes_.add({Selector::segment("basement"), Selector::segment("office")}));
  ASSERT_TRUE(routes_.add({Selector::segment("garage"), Selector::device("sensor-b")}));
  lookups_ = 0;
  EXPECT_EQ(subscribe(kB, "devices/ghost/telemetry").verdict, Verdict::deny);
  EXPECT_EQ(lookups_, 1);
}

TEST_F(AclTest, MixedRoutes) {
  ASSERT_TRUE(routes_.add({Selector::device("sensor-a"), Selector::segment("office")}));
  ASSERT_TRUE(routes_.add({Selector::segment("office"), Selector::device("sensor-c")}));
  EXPECT_TRUE(subscribe(kB, "devices/sensor-a/state").allowed());
  EXPECT_TRUE(subscribe(kC, "devices/sensor-b/events").allowed());
  EXPECT_EQ(subscribe(kC, "devices/sensor-a/events").verdict, Verdict::deny);
  // No segment lookup is needed for a device route.
  lookups_ = 0;
  EXPECT_TRUE(subscribe(kB, "devices/sensor-a/state").allowed());
  EXPECT_EQ(lookups_, 0);
  // An empty SegmentLookup simply finds no segments.
  EXPECT_EQ(authorize_subscribe(kC, "devices/sensor-b/events", routes_, SegmentLookup{}).verdict, Verdict::deny);
}

TEST_F(AclTest, DeliveryIsCheckedPerMessage) {
  ASSERT_TRUE(routes_.add({Selector::device("sensor-a"), Selector::device("sensor-b")}));
  EXPECT_TRUE(deliver(kA, "devices/sensor-a/commands").allowed());
  EXPECT_TRUE(deliver(kB, "devices/sensor-a/telemetry").allowed());
  EXPECT_TRUE(deliver(kB, "devices/sensor-a/state").allowed());
  // devices/sensor-a/+ matches these too, but they are not routed.
  EXPECT_EQ(deliver(kB, "devices/sensor-a/commands").reason,
            "another device's commands, results, certificates or alerts");
  EXPECT_EQ(deliver(kB, "devices/sensor-a/results").reason,
            "another device's commands, results, certificates or alerts");
  EXPECT_TRUE(deliver(kA, "devices/sensor-a/certificate").allowed());
  EXPECT_TRUE(deliver(kA, "devices/sensor-a/alerts").allowed());
  EXPECT_EQ(deliver(kA, "devices/sensor-a/renew").reason,
            "a device receives only its own commands, certificates and alerts");
  EXPECT_EQ(deliver(kC, "devices/sensor-a/telemetry").reason, "no route from the publishing device");
  EXPECT_EQ(deliver(kA, "devices/sensor-a/telemetry").reason,
            "a device receives only its own commands, certificates and alerts");
  EXPECT_EQ(deliver(kA, "$SYS/broker/load").reason, "not a device topic");
  ASSERT_TRUE(routes_.remove({Selector::device("sensor-a"), Selector::device("sensor-b")}));
  EXPECT_EQ(deliver(kB, "devices/sensor-a/telemetry").verdict, Verdict::deny);
}

TEST_F(AclTest, AnInvalidIdentityIsDeniedEverything) {
  for (const DeviceIdentity& who :
       {DeviceIdentity{"", ""}, DeviceIdentity{"Sensor", "lab"}, DeviceIdentity{"a/b", ""}}) {
    EXPECT_EQ(authorize_publish(who, "devices//telemetry").reason, "not a valid device identity");
    EXPECT_EQ(subscribe(who, "devices//commands").reason, "not a valid device identity");
    EXPECT_EQ(deliver(who, "devices/sensor-a/commands").reason, "not a valid device identity");
  }
}

TEST(Routes, AreValidated) {
  EXPECT_TRUE(validate_route({Selector::device("a"), Selector::segment("lab")}));
  EXPECT_TRUE(validate_route({Selector::segment("lab"), Selector::segment("lab")}));
  const auto self = validate_route({Selector::device("a"), Selector::device("a")});
  ASSERT_FALSE(self);
  EXPECT_TRUE(self.error().is(Errc::invalid_argument));
  EXPECT_EQ(self.error().message, "a device needs no route to itself");
  EXPECT_EQ(validate_route({Selector::device("A"), Selector::device("b")}).error().message,
            "route source: not a valid device id or segment name");
  EXPECT_EQ(validate_route({Selector::device("a"), Selector::segment("")}).error().message,
            "route target: not a valid device id or segment name");

  RouteTable table;
  EXPECT_FALSE(table.add({Selector::device("a"), Selector::device("#")}));
  EXPECT_TRUE(table.add({Selector::device("a"), Selector::device("b")}));
  EXPECT_TRUE(table.add({Selector::device("a"), Selector::device("b")}));
  EXPECT_EQ(table.routes().size(), 1U);
}

TEST(AclProducers, AbstainOutsideTheirConcern) {
  EXPECT_EQ(acl::topic_name_syntax("devices/a/telemetry").verdict, Verdict::abstain);
  EXPECT_EQ(acl::own_namespace_publish(kA, "devices/sensor-b/telemetry").verdict, Verdict::abstain);
  EXPECT_EQ(acl::foreign_namespace_publish(kA, "devices/sensor-a/telemetry").verdict, Verdict::abstain);
  EXPECT_EQ(acl::foreign_namespace_publish(kA, "other/x").verdict, Verdict::abstain);
  EXPECT_EQ(acl::filter_syntax("devices/a/+").verdict, Verdict::abstain);
  EXPECT_EQ(acl::own_commands_subscribe(kA, "devices/sensor-b/commands").verdict, Verdict::abstain);
  EXPECT_EQ(acl::routed_subscribe(kA, "devices/sensor-a/telemetry", RouteTable{}, SegmentLookup{}).verdict,
            Verdict::abstain);
  EXPECT_EQ(acl::routed_subscribe(kA, "devices/sensor-b/telemetry", RouteTable{}, SegmentLookup{}).verdict,
            Verdict::abstain);
}

}  // namespace
}  // namespace torii::policy

#include "broker/traffic_monitor.h"

#include <gtest/gtest.h>

namespace torii::broker {
namespace {

using namespace std::chrono_literals;
using time_point = TrafficMonitor::time_point;

const time_point kStart{std::chrono::hours(1000)};

TEST(TrafficMonitor, SteadyTrafficIsNoAnomaly) {
  TrafficMonitor monitor;
  TrafficHistory d;
  for (int i = 0; i < 600; ++i) {  // 1 message/s of 100 bytes for 10 minutes
    EXPECT_FALSE(monitor.on_message(d, 100, kStart + std::chrono::seconds(i))) << i;
  }
}

TEST(TrafficMonitor, ARateSpikeIsReportedOncePerInterval) {
  TrafficMonitor monitor;
  TrafficHistory d;
  TrafficHistory other;
  auto t = kStart;
  for (int i = 0; i < 60; ++i, t += 1s) ASSERT_FALSE(monitor.on_message(d, 100, t));
  int reports = 0;
  for (int i = 0; i < 200; ++i) {  // 200 messages within one second
    if (auto r = monitor.on_message(d, 100, t)) {
      EXPECT_EQ(r->anomaly, Anomaly::rate_spike);
      ++reports;
    }
  }
  EXPECT_EQ(reports, 1);
  // Another device is judged on its own history.
  EXPECT_FALSE(monitor.on_message(other, 100, t));
}

TEST(TrafficMonitor, APayloadFarAboveTheUsualSizeIsReported) {
  TrafficMonitor monitor;
  TrafficHistory d;
  auto t = kStart;
  for (int i = 0; i < 30; ++i, t += 1s) ASSERT_FALSE(monitor.on_message(d, 80, t));
  auto r = monitor.on_message(d, 4000, t);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->anomaly, Anomaly::payload_spike);
  EXPECT_EQ(r->detail.find('{'), std::string::npos);
}

TEST(TrafficMonitor, SmallPayloadsNeverCountAsSpikes) {
  TrafficMonitor monitor;
  TrafficHistory d;
  auto t = kStart;
  for (int i = 0; i < 30; ++i, t += 1s) ASSERT_FALSE(monitor.on_message(d, 10, t));
  EXPECT_FALSE(monitor.on_message(d, 900, t));  // 90x, but below min_spike_bytes
}

TEST(TrafficMonitor, ConnectFlappingIsReportedAndForgottenAfterTheWindow) {
  TrafficMonitorOptions options;
  options.report_interval = 30s;
  TrafficMonitor monitor(options);
  TrafficHistory d;
  auto t = kStart;
  for (int i = 0; i < 10; ++i, t += 1s) ASSERT_FALSE(monitor.on_connect(d, t));
  auto r = monitor.on_connect(d, t);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->anomaly, Anomaly::connect_flapping);
  EXPECT_FALSE(monitor.on_connect(d, t + 1s));  // reported already
  // A quiet hour later, a few reconnects are normal again.
  t += 1h;
  for (int i = 0; i < 5; ++i, t += 1s) EXPECT_FALSE(monitor.on_connect(d, t));
}

}  // namespace
}  // namespace torii::broker

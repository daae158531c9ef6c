#include "identity/failure_bursts.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;

TEST(FailureBursts, OneBurstPerSourceAndWindowNotOnePerFailure) {
  testing::FakeClock clock;
  FailureBursts bursts({60s, 3, 0});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bursts.record("192.0.2.1", clock.now()).empty()) << i;
  const auto start = clock.now();
  clock.advance(10s);
  auto fourth = bursts.record("192.0.2.1", clock.now());
  ASSERT_EQ(fourth.size(), 1u) << "more than three within the window";
  EXPECT_EQ(fourth[0].source, "192.0.2.1");
  EXPECT_EQ(fourth[0].failures, 4u);
  EXPECT_EQ(fourth[0].window_start, start);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(bursts.record("192.0.2.1", clock.now()).empty()) << "already reported";
  // Another source has its own count.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bursts.record("192.0.2.2", clock.now()).empty());
  EXPECT_EQ(bursts.record("192.0.2.2", clock.now()).size(), 1u);
  // A new window starts from zero and may report again.
  clock.advance(51s);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bursts.record("192.0.2.1", clock.now()).empty()) << i;
  EXPECT_EQ(bursts.record("192.0.2.1", clock.now()).size(), 1u);
}

TEST(FailureBursts, FailuresSpreadOverSlowTimeAreNoBurst) {
  testing::FakeClock clock;
  FailureBursts bursts({60s, 3, 0});
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(bursts.record("192.0.2.1", clock.now()).empty()) << i;
    clock.advance(21s);  // three per minute at most: never more than three in one window
  }
}

TEST(FailureBursts, ManySourcesTogetherMakeAnOverallBurst) {
  testing::FakeClock clock;
  FailureBursts bursts({300s, 5, 10});
  std::vector<FailureBurst> seen;
  for (int i = 0; i < 30; ++i) {
    auto found = bursts.record("198.51.100." + std::to_string(i), clock.now());
    seen.insert(seen.end(), found.begin(), found.end());
    clock.advance(1s);
  }
  ASSERT_EQ(seen.size(), 1u) << "no source passed five; all together passed ten, once";
  EXPECT_EQ(seen[0].source, "");
  EXPECT_EQ(seen[0].failures, 11u);
}

TEST(FailureBursts, ZeroTurnsACounterOff) {
  testing::FakeClock clock;
  FailureBursts bursts({60s, 0, 0});
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(bursts.record("192.0.2.1", clock.now()).empty());
}

TEST(FailureBursts, EndpointAddressesLoseTheirPort) {
  EXPECT_EQ(endpoint_address("203.0.113.5:51234"), "203.0.113.5");
  EXPECT_EQ(endpoint_address("[2001:db8::1]:443"), "2001:db8::1");
  EXPECT_EQ(endpoint_address("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(endpoint_address("local"), "local");
}

}  // namespace
}  // namespace torii::identity

#include "policy/rate_limit.h"

#include <limits>

#include <gtest/gtest.h>

namespace torii::policy {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

// An arbitrary fixed origin: tests never read the real clock.
constexpr Clock::time_point t0{1000h};

TEST(TokenBucket, StartsFullAndAllowsTheBurst) {
  TokenBucket bucket(10, 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.try_take(1, t0)) << i;
  EXPECT_FALSE(bucket.try_take(1, t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 0);
  EXPECT_DOUBLE_EQ(bucket.rate_per_second(), 10);
  EXPECT_DOUBLE_EQ(bucket.burst(), 5);
}

TEST(TokenBucket, RefillsAtTheRateAndNeverAboveTheBurst) {
  TokenBucket bucket(10, 5);
  ASSERT_TRUE(bucket.try_take(5, t0));
  EXPECT_FALSE(bucket.try_take(1, t0 + 99ms));
  EXPECT_TRUE(bucket.try_take(1, t0 + 100ms));
  EXPECT_FALSE(bucket.try_take(1, t0 + 150ms));
  EXPECT_DOUBLE_EQ(bucket.available(t0 + 150ms), 0.5);
  EXPECT_DOUBLE_EQ(bucket.available(t0 + 1h), 5);
  EXPECT_TRUE(bucket.try_take(5, t0 + 1h));
  EXPECT_FALSE(bucket.try_take(0.5, t0 + 1h));
}

TEST(TokenBucket, AFailedTakeTakesNothing) {
  TokenBucket bucket(1, 10);
  EXPECT_FALSE(bucket.try_take(11, t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 10);
  EXPECT_TRUE(bucket.try_take(10, t0));
}

TEST(TokenBucket, FractionalAndZeroTokens) {
  TokenBucket bucket(1, 1);
  EXPECT_TRUE(bucket.try_take(0.25, t0));
  EXPECT_TRUE(bucket.try_take(0.75, t0));
  EXPECT_TRUE(bucket.try_take(0, t0));
  EXPECT_FALSE(bucket.try_take(0.01, t0));
}

TEST(TokenBucket, RefusesNegativeAndNaNTokens) {
  TokenBucket bucket(1, 1);
  EXPECT_FALSE(bucket.try_take(-1, t0));
  EXPECT_FALSE(bucket.try_take(std::numeric_limits<double>::quiet_NaN(), t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 1);
  EXPECT_EQ(bucket.time_to_available(-1, t0), Clock::duration::max());
  EXPECT_EQ(bucket.time_to_available(std::numeric_limits<double>::quiet_NaN(), t0), Clock::duration::max());
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  TokenBucket bucket(10, 5);
  ASSERT_TRUE(bucket.try_take(5, t0));
  EXPECT_FALSE(bucket.try_take(1, t0 - 1h));
  EXPECT_DOUBLE_EQ(bucket.available(t0 - 1h), 0);
  // And the earlier time does not become the new reference point.
  EXPECT_TRUE(bucket.try_take(1, t0 + 100ms));
}

TEST(TokenBucket, TimeToAvailable) {
  TokenBucket bucket(4, 2);
  EXPECT_EQ(bucket.time_to_available(2, t0), Clock::duration::zero());
  ASSERT_TRUE(bucket.try_take(2, t0));
  EXPECT_EQ(bucket.time_to_available(1, t0), 250ms);
  EXPECT_EQ(bucket.time_to_available(2, t0), 500ms);
  EXPECT_EQ(bucket.time_to_available(1, t0 + 100ms), 150ms);
  EXPECT_EQ(bucket.time_to_available(1, t0 + 1s), Clock::duration::zero());
  EXPECT_EQ(bucket.time_to_available(3, t0), Clock::duration::max()) << "more than the burst: never";
}

TEST(TokenBucket, WaitingTheAnnouncedTimeIsEnough) {
  // Rates and amounts whose arithmetic does not come out even in binary.
  for (const double rate : {3.0, 7.0, 0.3, 1e6 / 3, 12345.678}) {
    TokenBucket bucket(rate, 10);
    Clock::time_point now = t0;
    ASSERT_TRUE(bucket.try_take(10, now));
    for (int i = 0; i < 50; ++i) {
      const double want = 0.1 + (i % 7) * 1.3;
      const auto wait = bucket.time_to_available(want, now);
      ASSERT_NE(wait, Clock::duration::max());
      now += wait;
      EXPECT_TRUE(bucket.try_take(want, now)) << "rate " << rate << " step " << i;
    }
  }
}

TEST(TokenBucket, ZeroRateNeverRefills) {
  TokenBucket bucket(0, 2);
  EXPECT_TRUE(bucket.try_take(2, t0));
  EXPECT_FALSE(bucket.try_take(1, t0 + 24h));
  EXPECT_EQ(bucket.time_to_available(1, t0), Clock::duration::max());
}

TEST(TokenBucket, ClampsInvalidSettings) {
  TokenBucket negative(-5, -1);
  EXPECT_DOUBLE_EQ(negative.rate_per_second(), 0);
  EXPECT_DOUBLE_EQ(negative.burst(), 0);
  EXPECT_FALSE(negative.try_take(1, t0));
  EXPECT_TRUE(negative.try_take(0, t0));
  TokenBucket nan(std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN());
  EXPECT_DOUBLE_EQ(nan.rate_per_second(), 0);
  EXPECT_FALSE(nan.try_take(1, t0 + 1h));
  TokenBucket huge(std::numeric_limits<double>::infinity(), 3);
  ASSERT_TRUE(huge.try_take(3, t0));
  EXPECT_FALSE(huge.try_take(1, t0)) << "no time has passed";
  EXPECT_TRUE(huge.try_take(3, t0 + 1ns));
  EXPECT_DOUBLE_EQ(huge.available(t0 + 1ns), 0);
}

TEST(TrafficLimiter, AdmitsOnlyWhenBothLimitsAllowAndChargesBoth) {
  TrafficLimiter limiter(/*messages_per_second=*/2, /*message_burst=*/2, /*bytes_per_second=*/100,
                         /*byte_burst=*/100);
  EXPECT_TRUE(limiter.try_admit(60, t0));
  // Bytes short (40 left), messages fine: nothing is charged.
  EXPECT_FALSE(limiter.try_admit(60, t0));
  EXPECT_DOUBLE_EQ(limiter.messages().available(t0), 1);
  EXPECT_DOUBLE_EQ(limiter.bytes().available(t0), 40);
  EXPECT_EQ(limiter.time_to_admit(60, t0), 200ms);
  EXPECT_TRUE(limiter.try_admit(40, t0));
  // Messages short now, bytes fine after a while.
  EXPECT_FALSE(limiter.try_admit(0, t0));
  EXPECT_EQ(limiter.time_to_admit(0, t0), 500ms);
  EXPECT_EQ(limiter.time_to_admit(100, t0), 1s);
  EXPECT_TRUE(limiter.try_admit(50, t0 + 500ms));
  // A message larger than the byte burst is never admitted.
  EXPECT_EQ(limiter.time_to_admit(101, t0 + 1h), Clock::duration::max());
  EXPECT_FALSE(limiter.try_admit(101, t0 + 1h));
}

TEST(TrafficLimiter, SteadyFloodIsHeldToTheRate) {
  TrafficLimiter limiter(100, 10, 1e9, 1e9);
  int admitted = 0;
  // One attempt per millisecond for 10 s of simulated time.
  for (int ms = 0; ms < 10'000; ++ms) {
    if (limiter.try_admit(64, t0 + std::chrono::milliseconds(ms))) ++admitted;
  }
  EXPECT_GE(admitted, 1000);
  EXPECT_LE(admitted, 1010);  // burst of 10 + 100/s over 9.999 s
}

}  // namespace
}  // namespace torii::policy

#include "notify/rate_limit.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace torii::notify {
namespace {

using namespace std::chrono_literals;

TEST(RateLimitTest, ABurstThenThePerMinuteRate) {
  testing::FakeClock clock;
  RateLimiter limiter(RateLimit{10, 30}, clock);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(limiter.try_acquire()) << i;
  EXPECT_FALSE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
  EXPECT_EQ(limiter.suppressed(), 2U);
  EXPECT_EQ(limiter.next_token_at(), clock.now() + 2s);  // 30 a minute: one every 2 s
  clock.advance(1999ms);
  EXPECT_FALSE(limiter.take_summary().has_value());
  clock.advance(1ms);
  EXPECT_EQ(limiter.take_summary(), 2U);  // the token goes to the summary
  EXPECT_EQ(limiter.suppressed(), 0U);
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(2s);
  EXPECT_EQ(limiter.take_summary(), 1U);
  EXPECT_FALSE(limiter.take_summary().has_value());  // nothing suppressed since
}

TEST(RateLimitTest, AnIdleChannelRefillsToTheBurstOnly) {
  testing::FakeClock clock;
  RateLimiter limiter(RateLimit{3, 60}, clock);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.try_acquire());
  clock.advance(std::chrono::hours(24 * 365));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimitTest, AClockSetBackGivesNothing) {
  testing::FakeClock clock;
  RateLimiter limiter(RateLimit{1, 60}, clock);
  EXPECT_TRUE(limiter.try_acquire());
  clock.advance(-1h);
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(1h);
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(1s);
  EXPECT_EQ(limiter.take_summary(), 2U);
}

TEST(RateLimitTest, ZeroLimitsStillLetOneThrough) {
  testing::FakeClock clock;
  RateLimiter limiter(RateLimit{0, 0}, clock);
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(1min);
  EXPECT_TRUE(limiter.try_acquire());
}

}  // namespace
}  // namespace torii::notify

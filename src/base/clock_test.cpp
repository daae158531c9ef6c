#include "base/clock.h"

#include <gtest/gtest.h>

namespace torii {
namespace {

TEST(Clock, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_utc_millis(from_unix_millis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(1'795'000'000'123)), "2026-11-18T11:06:40.123Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(-1)), "1969-12-31T23:59:59.999Z");
}

}  // namespace
}  // namespace torii

#include "base/clock.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <ctime>
#include <random>

namespace torii {
namespace {

TEST(Clock, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_utc_millis(from_unix_millis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(1'795'000'000'123)), "2026-11-18T11:06:40.123Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(-1)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(-9'000'000'000'000)), "1684-10-19T08:00:00.000Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(9'000'000'000'000)), "2255-03-14T16:00:00.000Z");
}

// The digits written one by one agree with the C library and fmt across the time points'
// range (64-bit nanoseconds: the years 1677-2262).
TEST(Clock, FormatsAsTheCLibraryDoesAcrossTheYears) {
  std::mt19937_64 random(1205);
  std::uniform_int_distribution<UnixMillis> any(-9'000'000'000'000, 9'000'000'000'000);
  for (int i = 0; i < 20'000; ++i) {
    const UnixMillis ms = any(random);
    const UnixMillis millis = ((ms % 1000) + 1000) % 1000;
    const auto seconds = static_cast<std::time_t>((ms - millis) / 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    ASSERT_EQ(format_utc_millis(from_unix_millis(ms)),
              fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                          tm.tm_hour, tm.tm_min, tm.tm_sec, millis))
        << ms;
  }
}

TEST(Clock, ParsesWhatItFormatsAndNothingElse) {
  for (const UnixMillis ms : {UnixMillis{0}, UnixMillis{1'795'000'000'123}, UnixMillis{7'258'118'399'999}}) {
    EXPECT_EQ(parse_utc_millis(format_utc_millis(from_unix_millis(ms))), ms);
  }
  EXPECT_EQ(parse_utc_millis("2027-01-31T00:00:00Z"), 1'801'353'600'000);
  EXPECT_EQ(parse_utc_millis("2028-02-29T12:00:00Z"), 1'835'438'400'000);
  for (const char* bad :
       {"", "2027-02-29T00:00:00Z", "2027-01-31T24:00:00Z", "2027-01-31 00:00:00Z", "2027-01-31T00:00:00+01:00",
        "2027-01-31T00:00:00", "1969-12-31T23:59:59Z", "2027-13-01T00:00:00Z", "2027-01-31T00:00:00,123Z",
        "2027-01-3lT00:00:00Z", "2201-01-01T00:00:00Z"}) {
    EXPECT_FALSE(parse_utc_millis(bad)) << bad;
  }
}

}  // namespace
}  // namespace torii

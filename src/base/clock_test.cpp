#include "base/clock.h"

#include <gtest/gtest.h>

namespace torii {
namespace {

TEST(Clock, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_utc_millis(from_unix_millis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(1'795'000'000'123)), "2026-11-18T11:06:40.123Z");
  EXPECT_EQ(format_utc_millis(from_unix_millis(-1)), "1969-12-31T23:59:59.999Z");
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

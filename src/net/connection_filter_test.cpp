#include "net/connection_filter.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace torii::net {
namespace {

using namespace std::chrono_literals;

IpAddress ip(std::string_view s) { return *IpAddress::parse(s); }
CidrBlock cidr(std::string_view s) { return *CidrBlock::parse(s); }

TEST(ConnectionFilter, DenyListWinsOverAllowListForBothFamilies) {
  testing::FakeClock clock;
  ConnectionFilter f({{cidr("10.0.0.0/8"), cidr("2001:db8::/32")}, {cidr("10.6.0.0/16"), cidr("2001:db8:6::/48")}},
                     clock);
  EXPECT_EQ(f.admit(ip("10.1.2.3")), Admission::admitted);
  EXPECT_EQ(f.admit(ip("10.6.2.3")), Admission::denied_by_list);
  EXPECT_EQ(f.admit(ip("192.0.2.1")), Admission::not_allowed);
  EXPECT_EQ(f.admit(ip("2001:db8:1::1")), Admission::admitted);
  EXPECT_EQ(f.admit(ip("2001:db8:6::1")), Admission::denied_by_list);
  EXPECT_EQ(f.admit(ip("2001:db9::1")), Admission::not_allowed);
  EXPECT_EQ(f.counters().refused, 4u);
}

TEST(ConnectionFilter, EmptyAllowListAdmitsEveryoneNotDenied) {
  testing::FakeClock clock;
  ConnectionFilter f({{}, {cidr("203.0.113.0/24")}}, clock);
  EXPECT_EQ(f.admit(ip("198.51.100.1")), Admission::admitted);
  EXPECT_EQ(f.admit(ip("203.0.113.77")), Admission::denied_by_list);
}

// The console's settings (PATCH /api/v1/settings) replace the lists and the ban rule of the
// running filter: the next admission and failure follow them.
TEST(ConnectionFilter, NewOptionsApplyToTheNextAdmissionAndFailure) {
  testing::FakeClock clock;
  ConnectionFilter f({}, clock);
  ASSERT_EQ(f.admit(ip("203.0.113.7")), Admission::admitted);
  FilterOptions next;
  next.deny = {cidr("203.0.113.0/24")};
  next.ban_after_failures = 1;
  f.set_options(next);
  EXPECT_EQ(f.admit(ip("203.0.113.8")), Admission::denied_by_list);
  EXPECT_EQ(f.open_connections(), 1u);  // the one admitted before stays
  f.release(ip("203.0.113.7"));
  EXPECT_TRUE(f.record_failure(ip("198.51.100.1")).banned_now);
  f.set_options({});
  EXPECT_EQ(f.admit(ip("203.0.113.8")), Admission::admitted);
}

TEST(ConnectionFilter, PerSourceAndGlobalLimitsFreeSlotsOnRelease) {
  testing::FakeClock clock;
  FilterOptions o;
  o.max_connections = 3;
  o.max_connections_per_source = 2;
  ConnectionFilter f(o, clock);
  const auto a = ip("127.0.0.2");
  EXPECT_EQ(f.admit(a), Admission::admitted);
  EXPECT_EQ(f.admit(a), Admission::admitted);
  EXPECT_EQ(f.admit(a), Admission::source_limit);
  EXPECT_EQ(f.admit(ip("127.0.0.3")), Admission::admitted);
  EXPECT_EQ(f.admit(ip("127.0.0.4")), Admission::global_limit);
  f.release(a);
  EXPECT_EQ(f.open_connections(), 2u);
  EXPECT_EQ(f.admit(a), Admission::admitted);
}

TEST(ConnectionFilter, RepeatedFailuresBanTheSourceUntilTheBanExpires) {
  testing::FakeClock clock;
  FilterOptions o;
  o.ban_after_failures = 3;
  o.failure_window = 60s;
  o.ban_duration = 600s;
  ConnectionFilter f(o, clock);
  const auto bad = ip("192.0.2.9");
  EXPECT_FALSE(f.record_failure(bad).banned_now);
  EXPECT_FALSE(f.record_failure(bad).banned_now);
  EXPECT_TRUE(f.record_failure(bad).banned_now);
  EXPECT_EQ(f.admit(bad), Admission::banned);
  EXPECT_EQ(f.admit(ip("192.0.2.10")), Admission::admitted);  // others are unaffected
  clock.advance(599s);
  EXPECT_EQ(f.admit(bad), Admission::banned);
  clock.advance(2s);
  EXPECT_EQ(f.admit(bad), Admission::admitted);
  EXPECT_EQ(f.counters().bans, 1u);
}

TEST(ConnectionFilter, FailuresOutsideTheWindowDoNotAddUp) {
  testing::FakeClock clock;
  FilterOptions o;
  o.ban_after_failures = 3;
  o.failure_window = 60s;
  ConnectionFilter f(o, clock);
  const auto src = ip("::1");
  EXPECT_FALSE(f.record_failure(src).banned_now);
  clock.advance(40s);
  EXPECT_FALSE(f.record_failure(src).banned_now);
  clock.advance(40s);  // the first failure has left the window
  EXPECT_FALSE(f.record_failure(src).banned_now);
  EXPECT_FALSE(f.is_banned(src));
  EXPECT_TRUE(f.record_failure(src).banned_now);
  EXPECT_TRUE(f.is_banned(src));
}

TEST(ConnectionFilter, CountsFailuresWithinTheWindow) {
  testing::FakeClock clock;
  ConnectionFilter f({}, clock);
  const auto src = ip("192.0.2.20");
  EXPECT_EQ(f.record_failure(src).in_window, 1u);
  EXPECT_EQ(f.record_failure(src).in_window, 2u);
  clock.advance(61s);
  EXPECT_EQ(f.record_failure(src).in_window, 1u);
}

TEST(ConnectionFilter, ManySourcesFailingOnceDoNotGrowItsMemoryForEver) {
  testing::FakeClock clock;
  ConnectionFilter f({}, clock);
  for (unsigned i = 0; i < 6000; ++i) {
    IpAddress a = ip("2001:db8::");
    a.bytes[14] = static_cast<std::uint8_t>(i >> 8);
    a.bytes[15] = static_cast<std::uint8_t>(i & 0xff);
    f.record_failure(a);
  }
  EXPECT_GE(f.tracked_sources(), 6000u);
  clock.advance(61s);  // every failure has left the window
  f.record_failure(ip("198.51.100.1"));
  EXPECT_LE(f.tracked_sources(), 1u);
}

TEST(ConnectionFilter, ExplicitBanFromLaterLayers) {
  testing::FakeClock clock;
  ConnectionFilter f({}, clock);
  f.ban(ip("198.51.100.4"), 30s);
  EXPECT_EQ(f.admit(ip("198.51.100.4")), Admission::banned);
  clock.advance(31s);
  EXPECT_EQ(f.admit(ip("198.51.100.4")), Admission::admitted);
}

}  // namespace
}  // namespace torii::net

#include "policy/series.h"

#include <limits>

#include <gtest/gtest.h>

namespace torii::policy {
namespace {

TEST(Downsample, EachBucketSummarisesItsSamples) {
  // [0, 100) in 4 buckets of 25 ms.
  const std::vector<Sample> samples{{0, 1}, {10, 3}, {24, 2}, {25, 10}, {80, -4}, {99, 6}};
  const auto buckets = downsample(samples, 0, 100, 4);
  ASSERT_EQ(buckets.size(), 3u) << "the empty bucket [50, 75) is left out";
  EXPECT_EQ(buckets[0], (Bucket{0, 25, 1, 3, 2, 3}));
  EXPECT_EQ(buckets[1], (Bucket{25, 50, 10, 10, 10, 1}));
  EXPECT_EQ(buckets[2], (Bucket{75, 100, -4, 6, 1, 2}));
}

TEST(Downsample, NeverMoreBucketsThanAskedAndTheLastEndsAtTheRangesEnd) {
  std::vector<Sample> samples;
  for (UnixMillis t = 1000; t < 2000; ++t) samples.push_back({t, static_cast<double>(t)});
  for (std::size_t n : {1u, 3u, 7u, 500u, 999u, 1000u, 2000u}) {
    const auto buckets = downsample(samples, 1000, 2000, n);
    ASSERT_LE(buckets.size(), n) << n;
    ASSERT_FALSE(buckets.empty());
    std::size_t total = 0;
    for (const auto& b : buckets) total += b.count;
    EXPECT_EQ(total, samples.size()) << n << ": every sample in exactly one bucket";
    EXPECT_EQ(buckets.front().from, 1000) << n;
    EXPECT_EQ(buckets.back().to, 2000) << n;
    for (std::size_t i = 1; i < buckets.size(); ++i) EXPECT_EQ(buckets[i - 1].to, buckets[i].from) << n;
  }
  const auto one = downsample(samples, 1000, 2000, 1);
  EXPECT_EQ(one.front(), (Bucket{1000, 2000, 1000, 1999, 1499.5, 1000}));
}

TEST(Downsample, SamplesOutsideTheRangeOrInAnyOrderAndEmptyRanges) {
  const std::vector<Sample> samples{{50, 5}, {-1, 100}, {10, 1}, {60, 100}, {30, 3}};
  const auto buckets = downsample(samples, 0, 60, 2);
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(buckets[0], (Bucket{0, 30, 1, 1, 1, 1}));
  EXPECT_EQ(buckets[1], (Bucket{30, 60, 3, 5, 4, 2}));
  EXPECT_TRUE(downsample(samples, 60, 60, 10).empty());
  EXPECT_TRUE(downsample(samples, 60, 0, 10).empty());
  EXPECT_TRUE(downsample(samples, 0, 60, 0).empty());
  EXPECT_TRUE(downsample({}, 0, 60, 10).empty());
}

TEST(Downsample, ARangeShorterThanTheBucketsAskedForGetsOneMillisecondBuckets) {
  const std::vector<Sample> samples{{0, 1}, {1, 2}, {2, 3}};
  const auto buckets = downsample(samples, 0, 3, 2000);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[2], (Bucket{2, 3, 3, 3, 3, 1}));
}

TEST(Downsample, TheWidestRangeDoesNotOverflow) {
  constexpr auto lo = std::numeric_limits<UnixMillis>::min();
  constexpr auto hi = std::numeric_limits<UnixMillis>::max();
  const std::vector<Sample> samples{{lo, 1}, {0, 2}, {hi - 1, 3}};
  const auto buckets = downsample(samples, lo, hi, 2);
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(buckets[0].count, 1u);
  EXPECT_EQ(buckets[1].count, 2u);
  EXPECT_EQ(buckets[1].to, hi);
}

TEST(ChartValue, NumbersAndBooleansChartStringsAndOthersDoNot) {
  const std::string payload = R"({"ts":1,"id":"m-1","temperature":21.5,"count":7,"door_open":true,"mode":"auto"})";
  EXPECT_EQ(chart_value(payload, "temperature"), 21.5);
  EXPECT_EQ(chart_value(payload, "count"), 7.0);
  EXPECT_EQ(chart_value(payload, "door_open"), 1.0);
  EXPECT_EQ(chart_value(R"({"door_open":false})", "door_open"), 0.0);
  EXPECT_EQ(chart_value(payload, "mode"), std::nullopt);
  EXPECT_EQ(chart_value(payload, "humidity"), std::nullopt);
  EXPECT_EQ(chart_value("[1,2]", "temperature"), std::nullopt);
  EXPECT_EQ(chart_value("not json", "temperature"), std::nullopt);
}

}  // namespace
}  // namespace torii::policy

#include "bench/latency_histogram.h"

#include <random>

#include <gtest/gtest.h>

namespace torii::bench {
namespace {

TEST(LatencyHistogram, EmptyReportsZeros) {
  const LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.99), 0u);
  EXPECT_EQ(h.summary().p50_us, 0);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(0.50), 50u);
  EXPECT_EQ(h.percentile(0.99), 99u);
  EXPECT_EQ(h.percentile(1.0), 100u);
  EXPECT_EQ(h.max(), 100u);
}

TEST(LatencyHistogram, BucketsAreContiguousAndBounded) {
  std::size_t previous = 0;
  for (std::uint64_t v = 0; v < 1'000'000; v += 7) {
    const auto b = LatencyHistogram::bucket_of(v);
    EXPECT_GE(b, previous);
    EXPECT_GE(LatencyHistogram::bucket_upper(b), v);
    EXPECT_LE(LatencyHistogram::bucket_upper(b) - v, v / 64 + 1);
    previous = b;
  }
  EXPECT_EQ(LatencyHistogram::bucket_of(127), 127u);
  EXPECT_EQ(LatencyHistogram::bucket_of(128), 128u);
  // The largest value fits.
  const auto last = LatencyHistogram::bucket_of(~std::uint64_t{0});
  EXPECT_EQ(LatencyHistogram::bucket_upper(last), ~std::uint64_t{0});
}

TEST(LatencyHistogram, PercentilesAreWithinTheRelativeErrorOfExactOnes) {
  std::mt19937_64 random(7);
  std::lognormal_distribution<double> latency(11.0, 1.0);  // around 60 µs, long tail
  std::vector<std::uint64_t> values;
  LatencyHistogram h;
  for (int k = 0; k < 100'000; ++k) {
    const auto v = static_cast<std::uint64_t>(latency(random));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (const double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto exact =
        static_cast<double>(values[static_cast<std::size_t>(q * static_cast<double>(values.size())) - 1]);
    const auto got = static_cast<double>(h.percentile(q));
    EXPECT_NEAR(got, exact, exact / 64 + 1) << q;
  }
  EXPECT_EQ(h.max(), values.back());
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a;
  LatencyHistogram b;
  LatencyHistogram all;
  for (std::uint64_t v = 0; v < 5000; ++v) {
    (v % 3 == 0 ? a : b).record(v * 977);
    all.record(v * 977);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  for (const double q : {0.1, 0.5, 0.99}) EXPECT_EQ(a.percentile(q), all.percentile(q));
  EXPECT_DOUBLE_EQ(a.summary().mean_us, all.summary().mean_us);
}

TEST(LatencyHistogram, SummaryIsInMicroseconds) {
  LatencyHistogram h;
  h.record(2'000);  // 2 µs
  h.record(4'000);
  const auto s = h.summary();
  EXPECT_EQ(s.count, 2u);
  EXPECT_DOUBLE_EQ(s.mean_us, 3.0);
  EXPECT_NEAR(s.p50_us, 2.0, 2.0 / 64);
  EXPECT_DOUBLE_EQ(s.max_us, 4.0);
}

}  // namespace
}  // namespace torii::bench

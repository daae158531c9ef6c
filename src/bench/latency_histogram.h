// A latency histogram with bounded relative error, for `torii bench`'s percentiles.
//
// Values (nanoseconds) below 128 have their own bucket; above, each power of two is split
// into 64 buckets, so a reported percentile is within 1/64 (1.6 %) of the true value. Fixed
// size (about 30 KB), no allocation while recording; one per thread, merged at the end.
// Not thread-safe.
#pragma once

#include <array>
#include <cstdint>

namespace torii::bench {

struct LatencySummary {
  std::uint64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

class LatencyHistogram {
 public:
  void record(std::uint64_t nanoseconds);
  void merge(const LatencyHistogram& other);

  [[nodiscard]] std::uint64_t count() const { return count_; }
  [[nodiscard]] std::uint64_t max() const { return max_; }
  // The smallest recorded value v such that at least q (0..1] of the values are <= v, as the
  // upper edge of its bucket (never above the true maximum). 0 when empty.
  [[nodiscard]] std::uint64_t percentile(double q) const;
  [[nodiscard]] LatencySummary summary() const;

  // Exposed for tests: bucket arithmetic.
  [[nodiscard]] static std::size_t bucket_of(std::uint64_t value);
  [[nodiscard]] static std::uint64_t bucket_upper(std::size_t bucket);

 private:
  static constexpr std::size_t kSubBuckets = 64;
  static constexpr std::size_t kBuckets = 128 + 57 * kSubBuckets;
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace torii::bench

#include "bench/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace torii::bench {

// v < 128: bucket v. Otherwise v = m << s with m in [64, 128) and s >= 1: bucket s*64 + m, so
// that 128..255 (s = 1) start right after the exact buckets.
std::size_t LatencyHistogram::bucket_of(std::uint64_t value) {
  if (value < 128) return static_cast<std::size_t>(value);
  const auto shift = static_cast<unsigned>(std::bit_width(value)) - 7;
  const auto mantissa = value >> shift;  // 64..127
  return shift * kSubBuckets + static_cast<std::size_t>(mantissa);
}

std::uint64_t LatencyHistogram::bucket_upper(std::size_t bucket) {
  if (bucket < 128) return bucket;
  const auto shift = bucket / kSubBuckets - 1;
  const auto mantissa = bucket % kSubBuckets + kSubBuckets;
  const std::uint64_t lower = static_cast<std::uint64_t>(mantissa) << shift;
  return lower + ((std::uint64_t{1} << shift) - 1);
}

void LatencyHistogram::record(std::uint64_t nanoseconds) {
  ++counts_[bucket_of(nanoseconds)];
  ++count_;
  max_ = std::max(max_, nanoseconds);
  sum_ += static_cast<long double>(nanoseconds);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

std::uint64_t LatencyHistogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(bucket_upper(i), max_);
  }
  return max_;
}

LatencySummary LatencyHistogram::summary() const {
  LatencySummary s;
  s.count = count_;
  if (count_ == 0) return s;
  const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  s.mean_us = static_cast<double>(sum_ / static_cast<long double>(count_)) / 1000.0;
  s.p50_us = us(percentile(0.50));
  s.p90_us = us(percentile(0.90));
  s.p99_us = us(percentile(0.99));
  s.p999_us = us(percentile(0.999));
  s.max_us = us(max_);
  return s;
}

}  // namespace torii::bench

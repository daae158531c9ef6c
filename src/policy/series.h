// Time series for charts: one metric's values out of stored telemetry payloads, and their
// downsampling to a bounded number of buckets. Pure: values in, values out.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/clock.h"

namespace torii::policy {

struct Sample {
  UnixMillis at = 0;
  double value = 0;
};

// One bucket of a downsampled series: the samples with from <= at < to.
struct Bucket {
  UnixMillis from = 0;
  UnixMillis to = 0;
  double min = 0;
  double max = 0;
  double avg = 0;
  std::size_t count = 0;  // never 0: empty buckets are left out

  friend bool operator==(const Bucket&, const Bucket&) = default;
};

// The chartable value of `metric` in a telemetry payload (policy/telemetry.h): numbers and
// integers as they are, booleans as 1 and 0. nullopt when the payload is not a JSON object,
// lacks the metric, or holds a string for it.
[[nodiscard]] std::optional<double> chart_value(std::string_view payload_json, std::string_view metric);

// Splits [from, to) into at most max_buckets buckets of equal width (whole milliseconds,
// the last one possibly shorter) and summarises the samples of each. Samples outside the
// range are ignored; their order does not matter. Returns the non-empty buckets in time
// order; none when from >= to or max_buckets is 0.
[[nodiscard]] std::vector<Bucket> downsample(std::span<const Sample> samples, UnixMillis from, UnixMillis to,
                                             std::size_t max_buckets);

}  // namespace torii::policy

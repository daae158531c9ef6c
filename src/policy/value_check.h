// Internal to torii_policy: checks one JSON scalar against a FieldSpec. Shared by the
// telemetry validator (simdjson) and the command validator (nlohmann), so that a metric and
// a command parameter with the same spec accept exactly the same values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/profile.h"
#include "policy/telemetry.h"

namespace torii::policy::detail {

// A JSON value as either parser sees it. `text` points into the parser's buffer.
struct Scalar {
  enum class Kind { null, boolean, int64, uint64, floating, string, container };
  Kind kind = Kind::null;
  bool boolean = false;
  std::int64_t int64 = 0;
  std::uint64_t uint64 = 0;  // only values above INT64_MAX arrive here
  double floating = 0;
  std::string_view text;
};

enum class Fault { none, not_scalar, wrong_type, not_integer, integer_range, below_min, above_max, too_long, control };

// Checks `value` against `spec` and, when it fits, stores it in `out` as the spec's type.
[[nodiscard]] Fault check_value(const FieldSpec& spec, const Scalar& value, MetricValue& out);

// "must be an integer", "above max 125", ... (without the field's name).
[[nodiscard]] std::string describe(Fault fault, const FieldSpec& spec);

}  // namespace torii::policy::detail

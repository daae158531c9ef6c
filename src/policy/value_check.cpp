#include "policy/value_check.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace torii::policy::detail {
namespace {

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// Integer bounds are whole numbers within +-2^53 (parse_profile checks), so the conversion
// is exact and the comparison is done in integers: no rounding lets 2^53 + 1 pass a max of 2^53.
std::int64_t as_integer_bound(double bound) { return static_cast<std::int64_t>(bound); }

}  // namespace

Fault check_value(const FieldSpec& spec, const Scalar& value, MetricValue& out) {
  if (value.kind == Scalar::Kind::container) return Fault::not_scalar;
  switch (spec.type) {
    case ValueType::number: {
      double d = 0;
      switch (value.kind) {
        case Scalar::Kind::int64: d = static_cast<double>(value.int64); break;
        case Scalar::Kind::uint64: d = static_cast<double>(value.uint64); break;
        case Scalar::Kind::floating: d = value.floating; break;
        default: return Fault::wrong_type;
      }
      // Both parsers refuse NaN and Infinity already; this keeps the invariant local.
      if (!std::isfinite(d)) return Fault::wrong_type;
      if (spec.min && d < *spec.min) return Fault::below_min;
      if (spec.max && d > *spec.max) return Fault::above_max;
      out = d;
      return Fault::none;
    }
    case ValueType::integer: {
      if (value.kind == Scalar::Kind::uint64) return Fault::integer_range;
      if (value.kind == Scalar::Kind::floating) return Fault::not_integer;
      if (value.kind != Scalar::Kind::int64) return Fault::wrong_type;
      if (spec.min && value.int64 < as_integer_bound(*spec.min)) return Fault::below_min;
      if (spec.max && value.int64 > as_integer_bound(*spec.max)) return Fault::above_max;
      out = value.int64;
      return Fault::none;
    }
    case ValueType::boolean:
      if (value.kind != Scalar::Kind::boolean) return Fault::wrong_type;
      out = value.boolean;
      return Fault::none;
    case ValueType::string:
      if (value.kind != Scalar::Kind::string) return Fault::wrong_type;
      if (value.text.size() > spec.max_length) return Fault::too_long;
      if (has_control(value.text)) return Fault::control;
      out = std::string(value.text);
      return Fault::none;
  }
  return Fault::wrong_type;
}

std::string describe(Fault fault, const FieldSpec& spec) {
  switch (fault) {
    case Fault::none: return "is valid";
    case Fault::not_scalar: return "is not a scalar (nested values are not allowed)";
    case Fault::wrong_type:
      switch (spec.type) {
        case ValueType::number: return "must be a number";
        case ValueType::integer: return "must be an integer";
        case ValueType::boolean: return "must be a boolean";
        case ValueType::string: return "must be a string";
      }
      return "has the wrong type";
    case Fault::not_integer: return "must be an integer (no fraction or exponent)";
    case Fault::integer_range: return "is out of range for an integer";
    case Fault::below_min: return fmt::format("below min {}", spec.min.value_or(0));
    case Fault::above_max: return fmt::format("above max {}", spec.max.value_or(0));
    case Fault::too_long: return fmt::format("longer than {} bytes", spec.max_length);
    case Fault::control: return "contains control characters";
  }
  return "is invalid";
}

}  // namespace torii::policy::detail

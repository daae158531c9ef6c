#include "agent/sensor_health.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace torii::agent {

std::string_view to_string(HealthEventKind kind) {
  switch (kind) {
    case HealthEventKind::out_of_range: return "sensor_out_of_range";
    case HealthEventKind::stuck: return "sensor_stuck";
    case HealthEventKind::failing: return "sensor_failing";
    case HealthEventKind::recovered: return "sensor_recovered";
    case HealthEventKind::tamper: return "tamper";
    case HealthEventKind::tamper_cleared: return "tamper_cleared";
  }
  return "?";
}

std::string_view to_string(SensorStatus status) {
  switch (status) {
    case SensorStatus::ok: return "ok";
    case SensorStatus::failing: return "failing";
    case SensorStatus::stuck: return "stuck";
    case SensorStatus::out_of_range: return "out_of_range";
  }
  return "?";
}

SensorHealth::SensorHealth(HealthLimits limits) : limits_(limits) {
  limits_.stuck_after_reads = std::max<std::uint32_t>(limits_.stuck_after_reads, 2);
  limits_.failing_after_failures = std::max<std::uint32_t>(limits_.failing_after_failures, 1);
}

void SensorHealth::add_sensor(const std::string& metric, std::optional<double> min, std::optional<double> max,
                              bool tamper) {
  State& s = sensors_[metric];
  s.min = min;
  s.max = max;
  s.tamper_input = tamper;
}

void SensorHealth::add_sensors(const std::vector<SensorConfig>& sensors) {
  for (const auto& s : sensors) add_sensor(s.metric, s.min, s.max, s.tamper);
}

std::vector<HealthEvent> SensorHealth::observe(const std::string& metric, const Result<Value>& reading,
                                               std::chrono::system_clock::time_point at) {
  std::vector<HealthEvent> events;
  const auto emit = [&](HealthEventKind kind, std::string detail, std::optional<HealthEventKind> ended = {}) {
    events.push_back({kind, metric, std::move(detail), at, ended});
  };
  State& s = sensors_[metric];

  if (!reading) {
    ++s.failures;
    if (s.failures >= limits_.failing_after_failures && s.failing.empty()) {
      s.failing = fmt::format("{} failed reads in a row, the last: {}", s.failures, reading.error().message);
      emit(HealthEventKind::failing, s.failing);
    }
    // A failed read ends a run of equal values.
    s.last.reset();
    s.same = 0;
    return events;
  }
  if (!s.failing.empty()) {
    emit(HealthEventKind::recovered, fmt::format("reads succeed again after {} failures", s.failures),
         HealthEventKind::failing);
    s.failing.clear();
  }
  s.failures = 0;

  const auto* number = std::get_if<double>(&*reading);
  if (s.tamper_input) {
    const bool open = number != nullptr ? *number != 0.0 : std::get<bool>(*reading);
    const std::string text = number != nullptr ? fmt::format("{}", *number) : open ? "true" : "false";
    if (open && !s.tampered) {
      emit(HealthEventKind::tamper, fmt::format("the tamper input reads {}", text));
    } else if (!open && s.tampered) {
      emit(HealthEventKind::tamper_cleared, fmt::format("the tamper input reads {} again", text));
    }
    s.tampered = open;
  }
  if (number == nullptr) return events;  // booleans have no range and are never stuck
  const double x = *number;

  const bool below = s.min && x < *s.min;
  const bool above = s.max && x > *s.max;
  const bool outside = below || above || !std::isfinite(x);
  if (outside && s.out_of_range.empty()) {
    s.out_of_range = below   ? fmt::format("{} is below the minimum {}", x, *s.min)
                     : above ? fmt::format("{} is above the maximum {}", x, *s.max)
                             : fmt::format("{} is not a finite number", x);
    emit(HealthEventKind::out_of_range, s.out_of_range);
  } else if (!outside && !s.out_of_range.empty()) {
    emit(HealthEventKind::recovered, fmt::format("{} is within range again", x), HealthEventKind::out_of_range);
    s.out_of_range.clear();
  }

  if (s.last && *s.last == x) {
    ++s.same;
  } else {
    if (!s.stuck.empty()) {
      // After a failed read there is no last value to compare with (s.last was reset).
      emit(HealthEventKind::recovered,
           s.last ? fmt::format("changes again ({} after {} reads of {})", x, s.same, *s.last)
                  : fmt::format("reads {} after a failed read", x),
           HealthEventKind::stuck);
      s.stuck.clear();
    }
    s.last = x;
    s.same = 1;
  }
  if (s.same >= limits_.stuck_after_reads && s.stuck.empty() && !s.tamper_input) {
    s.stuck = fmt::format("{} for {} reads in a row", x, s.same);
    emit(HealthEventKind::stuck, s.stuck);
  }
  return events;
}

std::vector<SelfTest> SensorHealth::self_test() const {
  std::vector<SelfTest> out;
  out.reserve(sensors_.size());
  for (const auto& [metric, s] : sensors_) {
    SelfTest t{metric, SensorStatus::ok, {}};
    if (!s.failing.empty()) {
      t = {metric, SensorStatus::failing, s.failing};
    } else if (!s.out_of_range.empty()) {
      t = {metric, SensorStatus::out_of_range, s.out_of_range};
    } else if (!s.stuck.empty()) {
      t = {metric, SensorStatus::stuck, s.stuck};
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace torii::agent

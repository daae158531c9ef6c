// Irregular states of sensors, found in their readings (pure: no I/O, no clock of its own).
//
// Fed every reading in time order, SensorHealth reports a condition once when it starts and
// once when it ends (sensor_recovered), never on every reading while it lasts:
//   sensor_out_of_range  a number outside the sensor's configured min/max
//   sensor_stuck         the same number for stuck_after_reads reads in a row (booleans,
//                        which may rightly stay the same for days, never count)
//   sensor_failing       failing_after_failures failed reads in a row
//   tamper               a tamper input reads true or a number other than 0 (JPCERT IV-1,
//                        VIII-1); it ends with tamper_cleared, not sensor_recovered, when it
//                        reads false or 0 again. A failed read changes neither. Tamper inputs
//                        are never stuck: a switch may rightly stay closed for years.
// Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/sensors.h"
#include "base/error.h"

namespace torii::agent {

enum class HealthEventKind { out_of_range, stuck, failing, recovered, tamper, tamper_cleared };
// "sensor_out_of_range", "sensor_stuck", "sensor_failing", "sensor_recovered", "tamper",
// "tamper_cleared".
[[nodiscard]] std::string_view to_string(HealthEventKind kind);

struct HealthEvent {
  HealthEventKind kind = HealthEventKind::recovered;
  std::string metric;
  std::string detail;  // for people: "42.5 is above the maximum 40"
  std::chrono::system_clock::time_point time;
  // For sensor_recovered: the condition that ended (out_of_range, stuck or failing).
  std::optional<HealthEventKind> ended;
  friend bool operator==(const HealthEvent&, const HealthEvent&) = default;
};

// A sensor's self-test result, as heartbeats report it.
enum class SensorStatus { ok, failing, stuck, out_of_range };
// "ok", "failing", "stuck", "out_of_range".
[[nodiscard]] std::string_view to_string(SensorStatus status);

struct SelfTest {
  std::string metric;
  SensorStatus status = SensorStatus::ok;
  std::string detail;  // the event that started the condition; empty when ok
  friend bool operator==(const SelfTest&, const SelfTest&) = default;
};

struct HealthLimits {
  std::uint32_t stuck_after_reads = 10;      // at least 2
  std::uint32_t failing_after_failures = 3;  // at least 1
};

class SensorHealth {
 public:
  explicit SensorHealth(HealthLimits limits = {});

  // Declares a sensor, its expected range (either bound may be missing) and whether it is a
  // tamper input. A metric that observe() sees without this has no range and is not one.
  void add_sensor(const std::string& metric, std::optional<double> min, std::optional<double> max, bool tamper = false);
  void add_sensors(const std::vector<SensorConfig>& sensors);

  // One reading of `metric` taken at `at`; returns the events it causes (usually none).
  [[nodiscard]] std::vector<HealthEvent> observe(const std::string& metric, const Result<Value>& reading,
                                                 std::chrono::system_clock::time_point at);

  // Every declared or observed sensor, in metric order. A sensor in several conditions
  // reports the first of failing, out_of_range, stuck.
  [[nodiscard]] std::vector<SelfTest> self_test() const;

 private:
  struct State {
    std::optional<double> min;
    std::optional<double> max;
    bool tamper_input = false;
    bool tampered = false;       // the last successful read of a tamper input said so
    std::uint32_t failures = 0;  // failed reads in a row
    std::optional<double> last;  // the last number read
    std::uint32_t same = 0;      // reads in a row that gave `last`
    std::string failing;         // each condition's detail; empty: not in it
    std::string out_of_range;
    std::string stuck;
  };

  HealthLimits limits_;
  std::map<std::string, State, std::less<>> sensors_;
};

}  // namespace torii::agent

// Sensors: where the agent's readings come from. A failed read is a value (an Error), not
// an exception; sensor_health.h turns runs of them into events.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/agent_config.h"
#include "base/error.h"
#include "base/random.h"

namespace torii::agent {

// A reading: a number, or a boolean (a door's state).
using Value = std::variant<double, bool>;

class Sensor {
 public:
  virtual ~Sensor() = default;
  [[nodiscard]] virtual const std::string& metric() const = 0;
  // How often the runtime reads it.
  [[nodiscard]] virtual std::chrono::milliseconds interval() const = 0;
  // One reading at `now` (wall-clock time, as the runtime's Clock gives it). Errors:
  // io_error (the source failed: a file or command), unavailable (a timeout), corrupt (the
  // source gave no number). May block: a command sensor for up to its timeout.
  [[nodiscard]] virtual Result<Value> read(std::chrono::system_clock::time_point now) = 0;
};

// A simulated signal (config.signal) with the configured fault injected from `start` +
// config.fault_after on. Deterministic: its values depend only on the bytes drawn from
// `random` and the times passed to read(). `random` must outlive the sensor.
[[nodiscard]] std::unique_ptr<Sensor> make_simulated_sensor(const SensorConfig& config, Random& random,
                                                            std::chrono::system_clock::time_point start);

// Reads config.path (one number, such as hwmon's temp1_input or a thermal zone's temp, in
// millidegrees) and multiplies it by config.scale.
[[nodiscard]] std::unique_ptr<Sensor> make_file_sensor(const SensorConfig& config);

// Runs config.command (see run_command) and takes the first number of its output.
[[nodiscard]] std::unique_ptr<Sensor> make_command_sensor(const SensorConfig& config);

// The sensor config.source names; `random` and `start` serve simulated sensors only.
[[nodiscard]] std::unique_ptr<Sensor> make_sensor(const SensorConfig& config, Random& random,
                                                  std::chrono::system_clock::time_point start);

// Runs argv (argv[0] an absolute path) without a shell: standard input closed (/dev/null),
// standard error discarded, no file descriptors inherited but these, an environment of
// PATH=/usr/bin:/bin only. Returns its standard output (at most 64 KiB kept) when it exits
// with status 0 within `timeout`; otherwise io_error (cannot start, a non-zero status or a
// signal) or unavailable (the timeout: the child is killed by its PID and reaped).
[[nodiscard]] Result<std::string> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// The first decimal number in text: "temp=48.3'C" gives 48.3, "-5 dBm" gives -5.
[[nodiscard]] std::optional<double> first_number(std::string_view text);

}  // namespace torii::agent

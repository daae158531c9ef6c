// Per-device traffic anomaly detectors (IIIT N6). Pure: the broker reports what happened
// with a time point and the device's history (kept with the broker's other per-device state,
// not in a map of the monitor's own); the monitor updates the history and answers which
// anomaly, if any, that completes.
//
//   rate spike        a 10-second window holds more than spike_factor × the device's usual
//                     count per window (an exponentially weighted average of earlier
//                     windows) and at least min_spike_messages
//   payload spike     a payload larger than spike_factor × the device's average payload size
//                     and at least min_spike_bytes, once the average has settled
//   connect flapping  more than max_connects_per_window connects within connect_window
//
// Each anomaly is reported once per kind and device until report_interval has passed, so a
// sustained anomaly does not flood the security log. Not thread-safe (the io thread owns it).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace torii::broker {

enum class Anomaly { rate_spike, payload_spike, connect_flapping };
[[nodiscard]] std::string_view to_string(Anomaly anomaly);

struct TrafficMonitorOptions {
  std::chrono::seconds rate_window{10};
  double spike_factor = 5.0;
  std::uint64_t min_spike_messages = 50;
  std::uint64_t min_spike_bytes = 1024;
  std::uint64_t settle_messages = 20;  // payload sizes seen before spikes are judged
  std::chrono::seconds connect_window{60};
  std::size_t max_connects_per_window = 10;
  std::chrono::seconds report_interval{300};
};

struct AnomalyReport {
  Anomaly anomaly;
  std::string detail;  // "120 messages in 10 s, usually 8" (numbers only, no payload)
};

// What the monitor knows of one device's traffic: one per device, held by the caller.
struct TrafficHistory {
  using time_point = std::chrono::steady_clock::time_point;
  time_point window_start{};
  std::uint64_t window_count = 0;
  double usual_per_window = 0;  // EWMA of completed windows
  std::uint64_t windows_seen = 0;
  double average_bytes = 0;
  std::uint64_t messages_seen = 0;
  // Oldest first. A vector: every device has one, and a std::deque holds about 0.6 KiB
  // from its first element on.
  std::vector<time_point> connects;
  time_point last_report[3]{};
  bool reported[3]{};
};

class TrafficMonitor {
 public:
  using time_point = TrafficHistory::time_point;
  explicit TrafficMonitor(TrafficMonitorOptions options = {}) : options_(options) {}

  [[nodiscard]] std::optional<AnomalyReport> on_message(TrafficHistory& device, std::size_t payload_bytes,
                                                        time_point now) const;
  [[nodiscard]] std::optional<AnomalyReport> on_connect(TrafficHistory& device, time_point now) const;

 private:
  std::optional<AnomalyReport> report(TrafficHistory& d, Anomaly anomaly, std::string detail, time_point now) const;

  TrafficMonitorOptions options_;
};

}  // namespace torii::broker

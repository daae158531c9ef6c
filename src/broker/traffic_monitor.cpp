#include "broker/traffic_monitor.h"

#include <algorithm>

#include <fmt/format.h>

namespace torii::broker {

namespace {
constexpr double kAlpha = 0.2;  // weight of the newest window / payload in the averages
}

std::string_view to_string(Anomaly anomaly) {
  switch (anomaly) {
    case Anomaly::rate_spike: return "rate_spike";
    case Anomaly::payload_spike: return "payload_spike";
    case Anomaly::connect_flapping: return "connect_flapping";
  }
  return "unknown";
}

std::optional<AnomalyReport> TrafficMonitor::report(TrafficHistory& d, Anomaly anomaly, std::string detail,
                                                    time_point now) const {
  const auto i = static_cast<std::size_t>(anomaly);
  if (d.reported[i] && now - d.last_report[i] < options_.report_interval) return std::nullopt;
  d.reported[i] = true;
  d.last_report[i] = now;
  return AnomalyReport{anomaly, std::move(detail)};
}

std::optional<AnomalyReport> TrafficMonitor::on_message(TrafficHistory& d, std::size_t payload_bytes,
                                                        time_point now) const {
  std::optional<AnomalyReport> found;

  // Rate: close the windows that ended (empty ones count as zero).
  if (d.windows_seen == 0 && d.window_count == 0) d.window_start = now;
  while (now - d.window_start >= options_.rate_window) {
    d.usual_per_window = d.windows_seen == 0
                             ? static_cast<double>(d.window_count)
                             : (1 - kAlpha) * d.usual_per_window + kAlpha * static_cast<double>(d.window_count);
    ++d.windows_seen;
    d.window_count = 0;
    d.window_start += options_.rate_window;
    if (now - d.window_start > options_.rate_window * 100) d.window_start = now;  // long silence
  }
  ++d.window_count;
  if (d.windows_seen >= 3 && d.window_count >= options_.min_spike_messages &&
      static_cast<double>(d.window_count) > options_.spike_factor * std::max(d.usual_per_window, 1.0)) {
    found = report(d, Anomaly::rate_spike,
                   fmt::format("{} messages within {} s, usually {:.0f}", d.window_count, options_.rate_window.count(),
                               d.usual_per_window),
                   now);
  }

  // Payload size.
  const auto bytes = static_cast<double>(payload_bytes);
  if (d.messages_seen >= options_.settle_messages && payload_bytes >= options_.min_spike_bytes &&
      bytes > options_.spike_factor * std::max(d.average_bytes, 1.0)) {
    auto r = report(d, Anomaly::payload_spike,
                    fmt::format("payload of {} bytes, usually {:.0f}", payload_bytes, d.average_bytes), now);
    if (!found) found = std::move(r);
  }
  d.average_bytes = d.messages_seen == 0 ? bytes : (1 - kAlpha) * d.average_bytes + kAlpha * bytes;
  ++d.messages_seen;
  return found;
}

std::optional<AnomalyReport> TrafficMonitor::on_connect(TrafficHistory& d, time_point now) const {
  d.connects.push_back(now);
  const auto recent = std::find_if(d.connects.begin(), d.connects.end(),
                                   [&](time_point at) { return now - at <= options_.connect_window; });
  d.connects.erase(d.connects.begin(), recent);
  if (d.connects.size() > options_.max_connects_per_window) {
    return report(d, Anomaly::connect_flapping,
                  fmt::format("{} connections within {} s", d.connects.size(), options_.connect_window.count()), now);
  }
  return std::nullopt;
}

}  // namespace torii::broker

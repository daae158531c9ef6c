#include "broker/device_health.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <nlohmann/json.hpp>

namespace torii::broker {

namespace {

constexpr std::size_t kMaxMetricName = 64;
// A skew is reported up to about 31,700 years either way.
constexpr double kMaxSkewMs = 1e15;
// Tamper inputs remembered per device: a device naming more gets its alerts, not deduplicated.
constexpr std::size_t kMaxTamperInputs = 64;

bool valid_metric(std::string_view name) {
  return !name.empty() && name.size() <= kMaxMetricName && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// "sensor_stuck" -> "stuck", for the conditions an agent reports; empty for anything else.
std::string_view condition_of(std::string_view type) {
  constexpr std::array<std::string_view, 3> kConditions{"out_of_range", "stuck", "failing"};
  constexpr std::string_view kPrefix = "sensor_";
  if (!type.starts_with(kPrefix)) return {};
  const auto rest = type.substr(kPrefix.size());
  for (const auto c : kConditions) {
    if (rest == c) return c;
  }
  return {};
}

std::string_view text_of(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get_ref<const std::string&>();
}

// What the device reported is its own act; a missed heartbeat is the server's finding.
events::SecurityEvent device_event(const std::string& device_id, std::string action, events::Outcome outcome,
                                   nlohmann::json details, bool reported_by_device = true) {
  return {reported_by_device ? "device:" + device_id : "system",
          std::move(action),
          "device:" + device_id,
          outcome,
          "",
          std::move(details)};
}

}  // namespace

DeviceHealth::DeviceHealth(std::uint32_t missed_beats, std::chrono::seconds max_clock_skew)
    : missed_beats_(std::max<std::uint32_t>(missed_beats, 1)),
      max_clock_skew_(std::max(max_clock_skew, std::chrono::seconds(0))) {}

std::vector<events::SecurityEvent> DeviceHealth::observe(const std::string& device_id, policy::TopicKind kind,
                                                         std::string_view payload, const policy::Profile& profile,
                                                         UnixMillis at) {
  std::vector<events::SecurityEvent> out;
  if (kind != policy::TopicKind::state && kind != policy::TopicKind::events) return out;
  // Heartbeats and events are small; anything else on these topics is not parsed twice.
  if (payload.empty() || payload.front() != '{') return out;
  const auto json = nlohmann::json::parse(payload, nullptr, false);
  if (!json.is_object()) return out;
  const auto type = text_of(json, "type");

  if (kind == policy::TopicKind::state && type == "posture") {
    auto findings = policy::evaluate_posture(profile.posture(), payload);
    auto& before = posture_[device_id];
    for (const auto& f : findings) {
      if (std::binary_search(before.begin(), before.end(), f)) continue;
      out.push_back(device_event(device_id, "device.posture_violation", events::Outcome::failure,
                                 {{"finding", f.kind}, {"detail", f.detail}, {"alert", true}}));
    }
    for (const auto& f : before) {
      if (std::binary_search(findings.begin(), findings.end(), f)) continue;
      out.push_back(device_event(device_id, "device.posture_resolved", events::Outcome::success,
                                 {{"finding", f.kind}, {"detail", f.detail}}));
    }
    before = std::move(findings);
    return out;
  }
  if (kind == policy::TopicKind::state) {
    if (type != "heartbeat") return out;
    auto& watch = watch_[device_id];
    if (watch.reported) {
      out.push_back(device_event(device_id, "device.heartbeat_resumed", events::Outcome::success,
                                 {{"silent_seconds", (at - watch.last_beat) / 1000}}, false));
    }
    watch.last_beat = at;
    watch.every = profile.heartbeat();
    watch.reported = false;
    const auto ts = json.find("ts");
    if (max_clock_skew_.count() == 0 || ts == json.end() || !ts->is_number()) return out;
    // Positive: the device's clock is ahead. Clamped so that any number gives a finite integer.
    const double skew_ms = std::clamp(ts->get<double>() - static_cast<double>(at), -kMaxSkewMs, kMaxSkewMs);
    const auto skew_seconds = static_cast<std::int64_t>(std::llround(skew_ms / 1000.0));
    const bool beyond = std::abs(skew_ms) > static_cast<double>(max_clock_skew_.count()) * 1000.0;
    if (beyond && !watch.skewed) {
      out.push_back(device_event(
          device_id, "device.clock_skew", events::Outcome::failure,
          {{"skew_seconds", skew_seconds}, {"max_clock_skew_seconds", max_clock_skew_.count()}, {"alert", true}},
          false));
    } else if (!beyond && watch.skewed) {
      out.push_back(device_event(device_id, "device.clock_skew_resolved", events::Outcome::success,
                                 {{"skew_seconds", skew_seconds}}, false));
    }
    watch.skewed = beyond;
    return out;
  }

  const auto metric = text_of(json, "metric");
  if (!valid_metric(metric)) return out;
  if (type == "tamper" || type == "tamper_cleared") {
    const bool tampered = type == "tamper";
    auto& inputs = tamper_[device_id];
    if (const auto it = inputs.find(metric); it != inputs.end()) {
      if (it->second == tampered) return out;  // sent again (an agent restarted): no new transition
      it->second = tampered;
    } else if (inputs.size() < kMaxTamperInputs) {
      inputs.emplace(metric, tampered);
    }
    if (tampered) {
      out.push_back(
          device_event(device_id, "device.tamper", events::Outcome::failure, {{"metric", metric}, {"alert", true}}));
    } else {
      out.push_back(device_event(device_id, "device.tamper_cleared", events::Outcome::success, {{"metric", metric}}));
    }
    return out;
  }
  if (const auto condition = condition_of(type); !condition.empty()) {
    out.push_back(device_event(device_id, "device.sensor_irregular", events::Outcome::failure,
                               {{"metric", metric}, {"condition", condition}, {"alert", true}}));
  } else if (type == "sensor_recovered") {
    nlohmann::json details = {{"metric", metric}};
    if (const auto ended = condition_of(text_of(json, "ended")); !ended.empty()) {
      details["condition"] = ended;
    }
    out.push_back(device_event(device_id, "device.sensor_recovered", events::Outcome::success, std::move(details)));
  }
  return out;
}

std::vector<events::SecurityEvent> DeviceHealth::check(UnixMillis now) {
  std::vector<events::SecurityEvent> out;
  for (auto& [device_id, watch] : watch_) {
    if (watch.reported) continue;
    const auto allowed = static_cast<UnixMillis>(watch.every.count()) * 1000 * missed_beats_;
    if (now - watch.last_beat < allowed) continue;
    watch.reported = true;
    out.push_back(device_event(device_id, "device.heartbeat_missed", events::Outcome::failure,
                               {{"heartbeat_seconds", watch.every.count()},
                                {"silent_seconds", (now - watch.last_beat) / 1000},
                                {"alert", true}},
                               false));
  }
  return out;
}

void DeviceHealth::forget(const std::string& device_id) {
  watch_.erase(device_id);
  posture_.erase(device_id);
  tamper_.erase(device_id);
}

}  // namespace torii::broker

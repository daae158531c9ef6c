#include "alerts/alert_rules.h"

#include <algorithm>
#include <iterator>
#include <string_view>

#include <fmt/format.h>

#include "identity/failure_bursts.h"

namespace torii::alerts {
namespace {

// Keys and summaries hold at most this much of any one value taken from an event.
constexpr std::size_t kMaxPart = 128;

std::string bounded(std::string_view text) { return std::string(text.substr(0, kMaxPart)); }

std::string text_of(const nlohmann::json& details, const char* name) {
  if (!details.is_object()) return {};
  const auto it = details.find(name);
  if (it == details.end() || !it->is_string()) return {};
  return bounded(it->get_ref<const std::string&>());
}

std::int64_t number_of(const nlohmann::json& details, const char* name) {
  if (!details.is_object()) return 0;
  const auto it = details.find(name);
  if (it == details.end() || !it->is_number_integer()) return 0;
  return it->get<std::int64_t>();
}

bool marked_alert(const nlohmann::json& details) {
  if (!details.is_object()) return false;
  const auto it = details.find("alert");
  return it != details.end() && it->is_boolean() && it->get<bool>();
}

// "device:<id>" -> "<id>"; "" for any other object.
std::string named(std::string_view object, std::string_view prefix) {
  if (!object.starts_with(prefix)) return {};
  return bounded(object.substr(prefix.size()));
}

AlertChange base_change(const events::SecurityEvent& e, AlertChange::Kind kind, std::string key) {
  AlertChange c;
  c.kind = kind;
  c.key = std::move(key);
  c.organisation_id = text_of(e.details, "organisation");
  c.device_id = named(e.object, "device:");
  c.user_id = named(e.object, "user:");
  return c;
}

AlertChange raise(const events::SecurityEvent& e, std::string key, std::string source, std::string severity,
                  std::string title, std::string summary) {
  AlertChange c = base_change(e, AlertChange::Kind::raise, std::move(key));
  c.source = std::move(source);
  c.severity = std::move(severity);
  c.title = std::move(title);
  c.summary = std::move(summary);
  return c;
}

AlertChange resolve(const events::SecurityEvent& e, std::string key) {
  return base_change(e, AlertChange::Kind::resolve, std::move(key));
}

// The device's alerts and what ends them. nullopt: not a device health event.
std::optional<AlertChange> device_change(const events::SecurityEvent& e, const std::string& device) {
  const std::string_view a = e.action;
  const auto& d = e.details;
  const std::string metric = text_of(d, "metric");
  const std::string finding = text_of(d, "finding");
  const std::string heartbeat = "device.heartbeat:" + device;
  const std::string skew = "device.clock_skew:" + device;
  const std::string tamper = fmt::format("device.tamper:{}:{}", device, metric);
  const std::string sensor = fmt::format("device.sensor:{}:{}", device, metric);
  // The finding's kind and detail together: two findings of one kind end separately.
  const std::string posture = fmt::format("device.posture:{}:{}:{}", device, finding, text_of(d, "detail"));

  if (a == "device.heartbeat_missed") {
    return raise(e, heartbeat, "device", "warning", "Heartbeat missed",
                 fmt::format("no heartbeat for {} s (one expected every {} s)", number_of(d, "silent_seconds"),
                             number_of(d, "heartbeat_seconds")));
  }
  if (a == "device.heartbeat_resumed") return resolve(e, heartbeat);
  if (a == "device.clock_skew") {
    return raise(e, skew, "device", "warning", "Device clock skewed",
                 fmt::format("clock {} s off (at most {} s allowed)", number_of(d, "skew_seconds"),
                             number_of(d, "max_clock_skew_seconds")));
  }
  if (a == "device.clock_skew_resolved") return resolve(e, skew);
  if (a == "device.tamper") {
    if (metric.empty()) return std::nullopt;
    return raise(e, tamper, "device", "critical", "Tamper detected", "input " + metric);
  }
  if (a == "device.tamper_cleared") {
    if (metric.empty()) return std::nullopt;
    return resolve(e, tamper);
  }
  if (a == "device.sensor_irregular") {
    if (metric.empty()) return std::nullopt;
    const std::string condition = text_of(d, "condition");
    return raise(e, sensor, "device", "warning", "Sensor irregular",
                 condition.empty() ? "sensor " + metric : fmt::format("sensor {}: {}", metric, condition));
  }
  if (a == "device.sensor_recovered") {
    if (metric.empty()) return std::nullopt;
    return resolve(e, sensor);
  }
  if (a == "device.posture_violation") {
    if (finding.empty()) return std::nullopt;
    return raise(e, posture, "device", "warning", "Posture violation", "finding " + finding);
  }
  if (a == "device.posture_resolved") {
    if (finding.empty()) return std::nullopt;
    return resolve(e, posture);
  }
  return std::nullopt;
}

constexpr std::string_view kDeviceActions[] = {"device.heartbeat_missed",
                                               "device.heartbeat_resumed",
                                               "device.clock_skew",
                                               "device.clock_skew_resolved",
                                               "device.tamper",
                                               "device.tamper_cleared",
                                               "device.sensor_irregular",
                                               "device.sensor_recovered",
                                               "device.posture_violation",
                                               "device.posture_resolved"};

struct SecurityTitle {
  std::string_view action;
  std::string_view severity;
  std::string_view title;
};

// The security events the tree marks as alerts, and how they read.
constexpr SecurityTitle kSecurityTitles[] = {
    {"login.failures_burst", "warning", "Burst of failed sign-ins"},
    {"account.locked", "warning", "Account locked"},
    {"waf.blocked", "warning", "Request blocked by the web application firewall"},
    {"totp.disabled", "warning", "Second factor turned off"},
    {"second_factor.reset", "warning", "Second factor reset"},
    {"user.created", "warning", "New administrator"},
    {"user.changed", "warning", "Administrator role given"},
    {"role.created", "warning", "Administrative role defined"},
    {"role.changed", "warning", "Administrative role defined"},
    {"settings.changed", "warning", "Security setting weakened"},
    {"traffic.anomaly", "warning", "Traffic anomaly"},
};

}  // namespace

std::optional<AlertChange> alert_change_for(const events::SecurityEvent& e) {
  // The book's own events (alert.acknowledged, alert.resolved) never change an alert.
  if (e.action.starts_with("alert.")) return std::nullopt;
  if (const std::string device = named(e.object, "device:"); !device.empty()) {
    if (auto change = device_change(e, device)) return change;
    // A device health event without what its key needs (no metric, no finding) changes
    // nothing: device_health never sends one.
    if (e.action.starts_with("device.") && std::find(std::begin(kDeviceActions), std::end(kDeviceActions),
                                                     std::string_view(e.action)) != std::end(kDeviceActions)) {
      return std::nullopt;
    }
  }
  if (e.action == "user.unlocked" && e.object.starts_with("user:")) {
    return resolve(e, "account.locked:" + named(e.object, "user:"));
  }
  if (!marked_alert(e.details)) return std::nullopt;

  std::string key;
  std::string summary;
  if (e.action == "waf.blocked") {
    // One alert per address probing; the path is the attacker's text and stays out.
    const std::string address = bounded(identity::endpoint_address(e.source));
    key = "waf.blocked:" + address;
    summary = address.empty() ? "requests refused" : "requests from " + address + " refused";
  } else if (e.action == "login.failures_burst") {
    key = "login.failures_burst:" + bounded(e.object);
    summary = fmt::format("{} failed sign-ins ({})", number_of(e.details, "failures"),
                          e.object.starts_with("source:") ? "from " + named(e.object, "source:") : "all sources");
  } else if (e.action == "account.locked") {
    const std::string user = named(e.object, "user:");
    key = "account.locked:" + user;
    summary = "user " + user;
  } else if (e.action == "traffic.anomaly") {
    // JPCERT VIII-1, IIIT N6: one alert per device and kind of anomaly while it is open; the
    // detail (rates, sizes, the topic's shape) is in the event.
    const std::string device = named(e.object, "device:");
    const std::string anomaly = bounded(text_of(e.details, "anomaly"));
    key = "traffic.anomaly:" + device + ":" + anomaly;
    summary = anomaly + " on device " + device;
  } else if (e.action == "settings.changed") {
    const std::string setting = named(e.object, "setting:");
    key = "settings.weakened:" + setting;
    summary = "setting " + setting;
  } else {
    key = fmt::format("{}:{}", bounded(e.action), bounded(e.object));
    summary = e.object.empty() ? std::string() : bounded(e.object);
  }
  for (const auto& t : kSecurityTitles) {
    if (t.action == e.action) {
      auto change =
          raise(e, std::move(key), "security", std::string(t.severity), std::string(t.title), std::move(summary));
      // The settings are the installation's, whichever organisation the administrator is of.
      if (e.action == "settings.changed") change.organisation_id.clear();
      return change;
    }
  }
  // Marked an alert by code this table does not know yet: an alert all the same, titled by
  // its action (the tree's own vocabulary).
  return raise(e, std::move(key), "security", "warning", bounded(e.action), std::move(summary));
}

}  // namespace torii::alerts

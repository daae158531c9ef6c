// Which security events open an alert and which end one (JPCERT VIII-1: device health,
// missed heartbeats, irregular sensors, tamper, posture; VIII-2: security events). Pure: an
// event in, a change out; the book (alert_book.h) applies it.
//
// Every event whose details carry "alert": true opens (or counts again on) an alert; the
// events below end one, by the same key:
//
//   opened by                 key                                   ended by
//   device.heartbeat_missed   device.heartbeat:<device>             device.heartbeat_resumed
//   device.clock_skew         device.clock_skew:<device>            device.clock_skew_resolved
//   device.tamper             device.tamper:<device>:<metric>       device.tamper_cleared
//   device.sensor_irregular   device.sensor:<device>:<metric>       device.sensor_recovered
//   device.posture_violation  device.posture:<device>:<finding>     device.posture_resolved
//   account.locked            account.locked:<user>                 user.unlocked
//
// The others (bursts of failed sign-ins, WAF blocks, second factors turned off or reset,
// new administrators, administrative roles, weakened settings, and any future event marked
// "alert") stay until a person resolves them. alert.* events (the book's own) never change
// an alert, so acknowledging or resolving cannot loop.
#pragma once

#include <optional>
#include <string>

#include "events/security_log.h"

namespace torii::alerts {

struct AlertChange {
  enum class Kind { raise, resolve };
  Kind kind = Kind::raise;
  std::string key;  // pairs a raise with the events that resolve it
  // The organisation as the event names it (details "organisation"); empty when it does not.
  // The book then takes the device's or the person's organisation, or leaves it
  // installation-wide.
  std::string organisation_id;
  std::string device_id;  // from an object "device:<id>"
  std::string user_id;    // from an object "user:<id>"
  // For a raise:
  std::string source;    // "device" or "security"
  std::string severity;  // "info", "warning", "critical"
  std::string title;     // fixed vocabulary, never the device's own text
  std::string summary;   // short; never secrets, never raw device text
};

// The change `event` makes to the alerts, if any.
[[nodiscard]] std::optional<AlertChange> alert_change_for(const events::SecurityEvent& event);

}  // namespace torii::alerts

// Device health as the gateway sees it (JPCERT VII-1, VIII-1): heartbeats that stop or carry
// a clock that is off, and the irregular sensor states and tamper inputs agents report.
// Pure: fed accepted messages and the time, it returns the security events to record; the
// server feeds it from the broker's observer and a timer.
//
//   device.heartbeat_missed   alert: a device that sends heartbeats ({"type":"heartbeat"} on
//                             devices/{id}/state, as `torii agent` does) sent none for
//                             `missed_beats` times its profile's heartbeat_seconds; once,
//                             until it beats again
//   device.heartbeat_resumed  its heartbeats came back
//   device.clock_skew         alert: the time a heartbeat carries ("ts", milliseconds since the
//                             epoch, device time) is more than max_clock_skew from the server's
//                             when it arrives, either way (JPCERT VIII-1); once, with the
//                             measured skew, until a heartbeat is within the bound again
//   device.clock_skew_resolved  that heartbeat
//   device.sensor_irregular   alert: an agent's events message of type sensor_out_of_range,
//                             sensor_stuck or sensor_failing
//   device.sensor_recovered   the matching sensor_recovered
//   device.tamper             alert: an agent's events message of type tamper (a tamper input
//                             reads true: the enclosure is open; JPCERT IV-1, VIII-1); once per
//                             device and metric until tamper_cleared
//   device.tamper_cleared     the matching tamper_cleared; once, unless nothing was known of
//                             the input (the server restarted meanwhile)
//   device.posture_violation  alert: a finding of the device's posture report ({"type":
//                             "posture"} on devices/{id}/state) against its profile's
//                             policy (policy/posture.h) that the previous report did not have
//   device.posture_resolved   a finding the previous report had and this one has not
//
// Only devices that have sent a heartbeat since the server started are watched: a device
// that never sends one (a plain MQTT client) is never reported for missing them. What is
// quoted from a payload is only a metric name that passes the profile's name rule and a
// condition from the fixed list above; the device's own text stays in the stored message.
// Not thread-safe: the broker's io thread calls it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "events/security_log.h"
#include "policy/acl.h"
#include "policy/posture.h"
#include "policy/profile.h"

namespace torii::broker {

class DeviceHealth {
 public:
  static constexpr std::uint32_t kDefaultMissedBeats = 3;

  // max_clock_skew 0: clocks are not compared.
  explicit DeviceHealth(std::uint32_t missed_beats = kDefaultMissedBeats,
                        std::chrono::seconds max_clock_skew = std::chrono::seconds(60));

  // A message the gateway accepted from the device at `at`, judged by its profile.
  [[nodiscard]] std::vector<events::SecurityEvent> observe(const std::string& device_id, policy::TopicKind kind,
                                                           std::string_view payload, const policy::Profile& profile,
                                                           UnixMillis at);
  // Heartbeats overdue at `now`, each reported once.
  [[nodiscard]] std::vector<events::SecurityEvent> check(UnixMillis now);
  // The device was deleted.
  void forget(const std::string& device_id);

  [[nodiscard]] std::size_t watched() const { return watch_.size(); }

 private:
  struct Watch {
    UnixMillis last_beat = 0;
    std::chrono::seconds every{60};
    bool reported = false;  // heartbeat_missed, until the next beat
    bool skewed = false;    // clock_skew, until a beat within the bound
  };

  std::uint32_t missed_beats_;
  std::chrono::seconds max_clock_skew_;
  std::map<std::string, Watch, std::less<>> watch_;
  std::map<std::string, std::vector<policy::PostureFinding>, std::less<>> posture_;  // the last report's
  // Per device, each tamper input's last state (true: tampered); at most kMaxTamperInputs each.
  std::map<std::string, std::map<std::string, bool, std::less<>>, std::less<>> tamper_;
};

}  // namespace torii::broker

// Validation of telemetry payloads against a device profile (JPCERT II-5, IIIT J8/I5), and of
// commands sent to devices. Pure: bytes in, values out.
//
// A telemetry payload is one JSON object:
//
//   {"ts": 1733000000000, "id": "m-42", "temperature": 21.5, "door_open": false}
//
//   ts     optional: non-negative integer, milliseconds since the Unix epoch (device time)
//   id     optional: message id, 1..64 characters of [A-Za-z0-9_.:-], for de-duplication
//   other  metrics: each key a metric name of the profile, each value a scalar of its type
//
// Refused: more than the profile's max_message_bytes, anything that is not strict JSON
// (NaN and Infinity included), invalid UTF-8, a root that is not an object, duplicate keys,
// nested values (arrays, objects), null, unknown metrics, wrong types, values out of range,
// strings longer than their max_length or holding control characters (U+0000..U+001F, U+007F),
// and objects without any metric. Types are strict: "integer" takes only JSON numbers
// written without fraction or exponent; "number" takes any JSON number.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <tl/expected.hpp>

#include "policy/profile.h"

namespace torii::policy {

// number -> double, integer -> int64, boolean -> bool, string -> string. The generic profile
// stores every JSON number as double.
using MetricValue = std::variant<double, std::int64_t, bool, std::string>;

struct Metric {
  std::string name;
  MetricValue value;
  friend bool operator==(const Metric&, const Metric&) = default;
};

struct Telemetry {
  std::optional<std::int64_t> ts_ms;
  std::string message_id;       // empty when the payload carried no "id"
  std::vector<Metric> metrics;  // in payload order; never empty
  friend bool operator==(const Telemetry&, const Telemetry&) = default;
};

// Why a payload was refused, for counting and for choosing the MQTT 5 reason code
// (too_large: 0x95 Packet too large; otherwise 0x99 Payload format invalid).
enum class RefusalKind {
  too_large,  // larger than the profile's max_message_bytes
  malformed,  // not strict JSON, or not UTF-8
  invalid,    // JSON, but not what the profile allows
};

struct Refusal {
  RefusalKind kind = RefusalKind::invalid;
  // Short, for logs: "metric 'temperature' above max 125", "unknown metric 'foo'". Never
  // quotes the payload; names appear only when they satisfy valid_name() (so are log-safe).
  std::string reason;
};

using TelemetryResult = tl::expected<Telemetry, Refusal>;

// Holds a reusable parser and scratch buffers: create one per thread (not thread-safe) and
// keep it; validate() then allocates only for the Telemetry it returns (and for a refusal's
// reason). The buffers grow to the largest payload seen, at most kMaxMessageBytes.
class TelemetryValidator {
 public:
  TelemetryValidator();
  ~TelemetryValidator();
  TelemetryValidator(TelemetryValidator&&) noexcept;
  TelemetryValidator& operator=(TelemetryValidator&&) noexcept;
  TelemetryValidator(const TelemetryValidator&) = delete;
  TelemetryValidator& operator=(const TelemetryValidator&) = delete;

  [[nodiscard]] TelemetryResult validate(const Profile& profile, std::string_view payload);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// 1..64 characters of [A-Za-z0-9_.:-]: the ids of messages and commands.
[[nodiscard]] bool valid_message_id(std::string_view id);

// The message id of an events or results payload: the "id" member of a JSON object, when it
// is a valid message id (as telemetry's); empty otherwise (not JSON, no id, or not valid).
// These payloads are stored as they come, so this is all the gateway reads of them to keep
// a resent message from being stored twice.
[[nodiscard]] std::string message_id_of(std::string_view payload);

// Checks a command before it is sent to a device: the command must be in the profile and
// `params_json` (a JSON object, "{}" for none; at most the profile's max_message_bytes) must
// hold exactly its parameters: every required one, no unknown or duplicate key, each value
// valid for its spec. Returns every problem (paths "command", "params", "params.<name>");
// empty means valid. For people (console, rules), so slower than telemetry validation.
[[nodiscard]] std::vector<Problem> validate_command(const Profile& profile, std::string_view command_name,
                                                    std::string_view params_json);

}  // namespace torii::policy

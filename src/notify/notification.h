// What a notification says, and how it travels: the JSON payload of webhooks, its HMAC
// signature, the RFC 5424 syslog message with RFC 5425 framing, the e-mail text
// (JPCERT VIII-1, VIII-2, I-10).
//
// A notice holds the alert's own fields only: no credentials, tokens or device secrets.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/clock.h"

namespace torii::notify {

enum class AlertEvent : std::uint8_t { opened, acknowledged, resolved };

// "alert.opened", "alert.acknowledged", "alert.resolved".
[[nodiscard]] std::string_view event_name(AlertEvent event);

// An alert change, filled by the caller from its alert record.
struct AlertNotice {
  AlertEvent event = AlertEvent::opened;
  std::string id;
  std::string organisation_id;
  std::string severity;  // "critical", "warning", "info"
  std::string title;
  std::string summary;
  std::string device_id;          // empty: the alert is not about one device
  std::string rule_id;            // empty: raised by torii itself
  std::string status;             // "open", "acknowledged", "resolved"
  std::string source;             // "rule", "device", "security"; empty: not said
  std::uint32_t occurrences = 1;  // times raised while not resolved
  UnixMillis opened_at = 0;
  std::optional<UnixMillis> acknowledged_at;
  std::optional<UnixMillis> resolved_at;
};

// Sent instead of the notices a channel's rate limit held back, once it allows again.
struct SuppressedNotice {
  std::size_t count = 0;
};

using Notice = std::variant<AlertNotice, SuppressedNotice>;

// --- Webhooks ------------------------------------------------------------------------------

inline constexpr std::size_t kMaxWebhookBodyBytes = std::size_t{64} * 1024;

// {"event":"alert.opened","alert":{...},"sent_at":"<UTC ms>","delivery":"<id>"}; for a
// SuppressedNotice {"event":"notifications.suppressed","suppressed":N,...}. Compact, member
// order fixed. Dates are UTC with milliseconds ("2026-11-22T03:41:07.123Z"), absent ones null.
[[nodiscard]] std::string notification_json(const Notice& notice, std::string_view delivery_id, UnixMillis sent_at);

// The X-Torii-Signature value: "v1=" and the lower-case hex of
// HMAC-SHA256(secret, "<unix seconds>" "." body).
[[nodiscard]] std::string sign_webhook(std::string_view secret, std::int64_t unix_seconds, std::string_view body);

// For receivers and tests: whether `signature` (the X-Torii-Signature header) is the
// signature of `body` at `timestamp` (the X-Torii-Timestamp header, decimal unix seconds),
// compared in constant time, and the timestamp is within `tolerance` of `now` either way
// (a replayed request is refused once it is older than that).
[[nodiscard]] bool verify_signature(std::string_view secret, std::string_view timestamp, std::string_view body,
                                    std::string_view signature, std::chrono::system_clock::time_point now,
                                    std::chrono::seconds tolerance = std::chrono::minutes(5));

// --- Syslog (RFC 5424 over TLS, RFC 5425) -----------------------------------------------------

struct SyslogOrigin {
  std::string hostname;  // RFC 5424 HOSTNAME; empty or not PRINTUSASCII: "-"
  std::string app_name = "torii";
  int facility = 10;  // authpriv
};

// The PRI severity of an alert severity: critical 2, warning 4, info 6, anything else 5
// (notice). For a SuppressedNotice: 4.
[[nodiscard]] int syslog_severity(std::string_view alert_severity);

// Escapes a PARAM-VALUE (RFC 5424 §6.3.3): '"', '\' and ']' get a backslash.
[[nodiscard]] std::string escape_param_value(std::string_view value);

// One RFC 5424 message:
//   <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [torii@32473 event="…" id="…" …] MSG
// MSGID "alert" (or "suppressed"); PROCID NILVALUE. The SD-ID uses the documentation
// enterprise number 32473 (RFC 5612). MSG is "<title>: <summary>" with control characters
// replaced by spaces; it starts with the UTF-8 BOM when it holds non-ASCII UTF-8 (MSG-UTF8),
// and is plain ASCII otherwise (MSG-ANY).
[[nodiscard]] std::string syslog_message(const Notice& notice, const SyslogOrigin& origin,
                                         std::chrono::system_clock::time_point now);

// RFC 5425 §4.3 octet counting: "<length> <message>".
[[nodiscard]] std::string octet_counted(std::string_view message);

// --- E-mail ------------------------------------------------------------------------------

struct EmailText {
  std::string subject;
  std::string body;
};
[[nodiscard]] EmailText email_text(const Notice& notice);

}  // namespace torii::notify

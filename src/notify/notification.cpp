#include "notify/notification.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "base/bytes.h"
#include "base/json_writer.h"
#include "crypto/sodium.h"

namespace torii::notify {
namespace {

constexpr std::string_view kSuppressedEvent = "notifications.suppressed";
constexpr std::string_view kSdId = "torii@32473";
constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr std::size_t kMaxHostnameBytes = 255;  // RFC 5424 §6.2.4

void date_or_null(JsonWriter& out, std::string_view key, std::optional<UnixMillis> at) {
  out.key(key);
  if (at) {
    out.string(format_utc_millis(from_unix_millis(*at)));
  } else {
    out.null();
  }
}

void optional_string(JsonWriter& out, std::string_view key, const std::string& value) {
  out.key(key);
  if (value.empty()) {
    out.null();
  } else {
    out.string(value);
  }
}

std::array<std::uint8_t, crypto_auth_hmacsha256_BYTES> hmac(std::string_view key, std::string_view message) {
  crypto_auth_hmacsha256_state state;
  std::array<std::uint8_t, crypto_auth_hmacsha256_BYTES> mac{};
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(message.data()), message.size());
  crypto_auth_hmacsha256_final(&state, mac.data());
  sodium_memzero(&state, sizeof state);
  return mac;
}

// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, ≤ U+10FFFF).
bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
      code = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      code = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      code = c & 0x07u;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0u) != 0x80u) return false;
      code = (code << 6u) | (next & 0x3Fu);
    }
    if ((length == 3 && code < 0x800) || (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

std::string without_controls(std::string_view text) {
  std::string out(text);
  std::ranges::replace_if(
      out, [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, ' ');
  return out;
}

// PRINTUSASCII 1*255, else NILVALUE.
std::string header_field(std::string_view value, std::size_t max) {
  if (value.empty() || value.size() > max || !std::ranges::all_of(value, [](char c) { return c > 0x20 && c < 0x7f; })) {
    return "-";
  }
  return std::string(value);
}

void sd_param(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += name;
  out += "=\"";
  out += escape_param_value(value);
  out += '"';
}

}  // namespace

std::string_view event_name(AlertEvent event) {
  switch (event) {
    case AlertEvent::opened: return "alert.opened";
    case AlertEvent::acknowledged: return "alert.acknowledged";
    case AlertEvent::resolved: return "alert.resolved";
  }
  return "alert.unknown";
}

std::string notification_json(const Notice& notice, std::string_view delivery_id, UnixMillis sent_at) {
  JsonWriter out;
  out.begin_object();
  if (const auto* alert = std::get_if<AlertNotice>(&notice)) {
    out.key("event").string(event_name(alert->event));
    out.key("alert").begin_object();
    out.key("id").string(alert->id);
    out.key("organisation_id").string(alert->organisation_id);
    out.key("severity").string(alert->severity);
    out.key("title").string(alert->title);
    out.key("summary").string(alert->summary);
    optional_string(out, "device_id", alert->device_id);
    optional_string(out, "rule_id", alert->rule_id);
    out.key("status").string(alert->status);
    optional_string(out, "source", alert->source);
    out.key("occurrences").number(alert->occurrences);
    date_or_null(out, "opened_at", alert->opened_at);
    date_or_null(out, "acknowledged_at", alert->acknowledged_at);
    date_or_null(out, "resolved_at", alert->resolved_at);
    out.end_object();
  } else {
    out.key("event").string(kSuppressedEvent);
    out.key("suppressed").number(static_cast<std::int64_t>(std::get<SuppressedNotice>(notice).count));
  }
  out.key("sent_at").string(format_utc_millis(from_unix_millis(sent_at)));
  out.key("delivery").string(delivery_id);
  out.end_object();
  return out.take();
}

std::string sign_webhook(std::string_view secret, std::int64_t unix_seconds, std::string_view body) {
  std::string message = std::to_string(unix_seconds);
  message += '.';
  message += body;
  const auto mac = hmac(secret, message);
  return "v1=" + hex_encode(mac);
}

bool verify_signature(std::string_view secret, std::string_view timestamp, std::string_view body,
                      std::string_view signature, std::chrono::system_clock::time_point now,
                      std::chrono::seconds tolerance) {
  std::int64_t seconds = 0;
  const auto [ptr, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), seconds);
  if (timestamp.empty() || ec != std::errc{} || ptr != timestamp.data() + timestamp.size()) return false;
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
  if (at > now + tolerance || at < now - tolerance) return false;
  if (!signature.starts_with("v1=")) return false;
  const auto given = hex_decode(signature.substr(3));
  if (!given || given->size() != crypto_auth_hmacsha256_BYTES) return false;
  std::string message(timestamp);
  message += '.';
  message += body;
  const auto expected = hmac(secret, message);
  return crypto::equal_constant_time(*given, expected);
}

int syslog_severity(std::string_view alert_severity) {
  if (alert_severity == "critical") return 2;
  if (alert_severity == "warning") return 4;
  if (alert_severity == "info") return 6;
  return 5;
}

std::string escape_param_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '"' || c == '\\' || c == ']') out += '\\';
    out += c;
  }
  return out;
}

std::string syslog_message(const Notice& notice, const SyslogOrigin& origin,
                           std::chrono::system_clock::time_point now) {
  const auto* alert = std::get_if<AlertNotice>(&notice);
  const int severity = alert != nullptr ? syslog_severity(alert->severity) : 4;
  const int facility = std::clamp(origin.facility, 0, 23);
  std::string out = "<" + std::to_string(facility * 8 + severity) + ">1 " + format_utc_millis(now) + " ";
  out += header_field(origin.hostname, kMaxHostnameBytes) + " ";
  out += header_field(origin.app_name, 48) + " - ";
  out += alert != nullptr ? "alert" : "suppressed";
  out += " [";
  out += kSdId;
  std::string text;
  if (alert != nullptr) {
    sd_param(out, "event", event_name(alert->event));
    sd_param(out, "id", alert->id);
    sd_param(out, "organisation", alert->organisation_id);
    sd_param(out, "severity", alert->severity);
    if (!alert->device_id.empty()) sd_param(out, "device", alert->device_id);
    if (!alert->rule_id.empty()) sd_param(out, "rule", alert->rule_id);
    sd_param(out, "status", alert->status);
    if (!alert->source.empty()) sd_param(out, "source", alert->source);
    text = without_controls(alert->title);
    if (!alert->summary.empty()) text += ": " + without_controls(alert->summary);
  } else {
    const auto count = std::to_string(std::get<SuppressedNotice>(notice).count);
    sd_param(out, "event", kSuppressedEvent);
    sd_param(out, "count", count);
    text = count + " notifications suppressed";
  }
  out += ']';
  if (!text.empty()) {
    out += ' ';
    const bool ascii = std::ranges::all_of(text, [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (!ascii && valid_utf8(text)) out += kBom;
    out += text;
  }
  return out;
}

std::string octet_counted(std::string_view message) {
  return std::to_string(message.size()) + " " + std::string(message);
}

EmailText email_text(const Notice& notice) {
  if (const auto* alert = std::get_if<AlertNotice>(&notice)) {
    EmailText out;
    const std::string_view change = alert->event == AlertEvent::opened         ? "opened"
                                    : alert->event == AlertEvent::acknowledged ? "acknowledged"
                                                                               : "resolved";
    out.subject = "[torii] " + without_controls(alert->severity) + ": " + without_controls(alert->title) + " (" +
                  std::string(change) + ")";
    out.body = without_controls(alert->title) + "\n\n" + alert->summary + "\n\n";
    out.body += "Alert:        " + alert->id + "\n";
    out.body += "Severity:     " + alert->severity + "\n";
    out.body += "Status:       " + alert->status + "\n";
    if (!alert->device_id.empty()) out.body += "Device:       " + alert->device_id + "\n";
    if (!alert->rule_id.empty()) out.body += "Rule:         " + alert->rule_id + "\n";
    out.body += "Opened:       " + format_utc_millis(from_unix_millis(alert->opened_at)) + "\n";
    if (alert->acknowledged_at) {
      out.body += "Acknowledged: " + format_utc_millis(from_unix_millis(*alert->acknowledged_at)) + "\n";
    }
    if (alert->resolved_at)
      out.body += "Resolved:     " + format_utc_millis(from_unix_millis(*alert->resolved_at)) + "\n";
    return out;
  }
  const auto count = std::to_string(std::get<SuppressedNotice>(notice).count);
  return {"[torii] " + count + " notifications suppressed",
          count +
              " notifications were not sent to this channel: its rate limit was reached.\n"
              "The alerts are listed in the console.\n"};
}

}  // namespace torii::notify

// Notification channels as people write them (JSON), validated with every problem reported
// with its path (JPCERT VIII-2, I-10).
//
//   {"name":"ops hook","type":"webhook","url":"https://hooks.example:8443/torii",
//    "secret":"<32..256 characters; omitted: generated>","ca":"<PEM; omitted: system CAs>"}
//   {"name":"on call","type":"email","to":["oncall@example.org"]}
//   {"name":"siem","type":"syslog","host":"siem.example","port":6514,"ca":"<PEM>",
//    "app_name":"torii","facility":10}
//   {"name":"backend","type":"mqtt","devices":["backend-1"]}
//
// An mqtt channel's notifications go to each device it names, on that device's own
// devices/<id>/alerts topic (policy/acl.h): a backend holding a device certificate of the
// organisation subscribes there, and no other client can.
//
// Any type may add "rate_limit":{"burst":10,"per_minute":30} (the defaults; each 1 to 10000).
//
// Webhooks are HTTPS only and their URL holds no credentials (no user-info): what
// authenticates a notification is its HMAC signature (notification.h). Syslog is TLS only
// (RFC 5425). The webhook secret leaves torii once, in the answer that created the channel:
// redacted_json() is what every other view shows.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "base/random.h"
#include "notify/rate_limit.h"

namespace torii::notify {

enum class ChannelType : std::uint8_t { webhook, email, syslog, mqtt };

[[nodiscard]] std::string_view channel_type_name(ChannelType type);

inline constexpr std::size_t kMinSecretChars = 32;
inline constexpr std::size_t kMaxSecretChars = 256;
inline constexpr std::size_t kMaxRecipients = 20;
inline constexpr int kDefaultSyslogFacility = 10;  // authpriv: security messages (RFC 5424 §6.2.1)

// A webhook URL taken apart: https only, so no scheme is kept.
struct WebhookUrl {
  std::string host;  // DNS name or IP address (without the brackets of an IPv6 literal)
  std::uint16_t port = 443;
  std::string target;  // path and query, at least "/"
  friend bool operator==(const WebhookUrl&, const WebhookUrl&) = default;
};

struct Channel {
  std::string name;
  ChannelType type = ChannelType::webhook;
  // webhook
  std::string url;  // as written
  WebhookUrl webhook;
  std::string secret;  // HMAC key: never logged, shown once
  // webhook and syslog
  std::string ca_pem;  // empty: the system trust store
  // email
  std::vector<std::string> to;
  // syslog
  std::string host;
  std::uint16_t port = 6514;
  std::string app_name = "torii";
  int facility = kDefaultSyslogFacility;
  // mqtt: the receiving devices
  std::vector<std::string> devices;
  RateLimit rate;
  friend bool operator==(const Channel&, const Channel&) = default;
};

// One problem of a definition, with where it is: "url", "to[1]", "port"; empty: the whole text.
struct Problem {
  std::string path;
  std::string message;
  friend bool operator==(const Problem&, const Problem&) = default;
};

// "  path: message\n" per problem.
[[nodiscard]] std::string format_problems(const std::vector<Problem>& problems);

using ChannelResult = tl::expected<Channel, std::vector<Problem>>;

// Parses and validates a definition. A webhook without "secret" gets a fresh one drawn from
// `random` (256 bits, base64url). Members that do not belong to the type are problems.
[[nodiscard]] ChannelResult parse_channel_text(std::string_view json_text, Random& random);
[[nodiscard]] ChannelResult parse_channel(const nlohmann::json& definition, Random& random);

// https://host[:port]/path?query; problems under `path`.
[[nodiscard]] tl::expected<WebhookUrl, std::string> parse_webhook_url(std::string_view url);

// The definition without its secret ("secret_set": true instead), for every display.
[[nodiscard]] nlohmann::json redacted_json(const Channel& channel);

}  // namespace torii::notify

// torii's configuration: one TOML file, every key with a secure default.
//
// Pure: parse_config() takes text and returns a Config or every problem found, each with
// its key path. No file or network I/O happens here; load_config_file() is the thin I/O
// wrapper. Key reference: docs/configuration.md (a test keeps it complete).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace torii::config {

struct ListenAddress {
  std::string host;  // numeric IPv4 or IPv6 address (no brackets)
  std::uint16_t port = 0;

  [[nodiscard]] std::string to_string() const;  // "127.0.0.1:8883", "[::1]:8883"
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

struct ServerConfig {
  std::string user = "torii";
  std::filesystem::path data_dir = "/var/lib/torii";
  std::vector<std::string> hostnames = {"localhost", "127.0.0.1"};
  std::string public_url;  // empty: https://<first hostname>:<first console port>
  friend bool operator==(const ServerConfig&, const ServerConfig&) = default;
};

struct ListenerConfig {
  std::vector<ListenAddress> listen;
  std::uint32_t handshake_timeout_seconds = 10;
  friend bool operator==(const ListenerConfig&, const ListenerConfig&) = default;
};

struct TlsConfig {
  std::string min_version = "1.2";
  std::string ciphers_tls12 =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305";
  std::string ciphersuites_tls13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
  friend bool operator==(const TlsConfig&, const TlsConfig&) = default;
};

struct FirewallConfig {
  std::vector<std::string> allow;  // CIDR; empty allows every source not denied
  std::vector<std::string> deny;   // CIDR; deny wins over allow
  std::uint32_t max_connections = 10000;
  std::uint32_t max_connections_per_source = 64;
  std::uint32_t ban_after_failures = 10;
  std::uint32_t failure_window_seconds = 60;
  std::uint32_t ban_seconds = 600;
  friend bool operator==(const FirewallConfig&, const FirewallConfig&) = default;
};

enum class KekSource { file, passphrase };

struct KeysConfig {
  KekSource kek_source = KekSource::file;
  std::filesystem::path kek_file = "kek.key";  // relative paths are inside the data directory
  std::filesystem::path passphrase_file;       // empty: ask on the terminal
  friend bool operator==(const KeysConfig&, const KeysConfig&) = default;
};

struct PkiConfig {
  std::uint32_t root_ca_lifetime_days = 3650;
  std::uint32_t issuing_ca_lifetime_days = 1095;
  std::uint32_t server_certificate_lifetime_days = 90;
  std::uint32_t device_certificate_lifetime_days = 90;
  std::uint32_t crl_next_update_hours = 24;
  // A certificate in use expiring within this many days is an alert; 0: none.
  std::uint32_t expiry_alert_days = 14;
  friend bool operator==(const PkiConfig&, const PkiConfig&) = default;
};

struct LogConfig {
  std::string level = "info";
  std::filesystem::path security_log_dir = "log";  // relative paths are inside the data directory
  std::uint32_t max_file_mib = 16;
  std::uint32_t retention_days = 365;
  std::uint32_t checkpoint_every_events = 100;
  std::uint32_t checkpoint_interval_seconds = 300;
  friend bool operator==(const LogConfig&, const LogConfig&) = default;
};

// The MQTT protocol layer of the gateway: session limits and per-device quotas
// (JPCERT II-6, IIIT N8) and the unused-device rule (JPCERT I-2).
struct MqttConfig {
  std::uint32_t connect_timeout_seconds = 10;
  std::uint32_t max_packet_bytes = 65536;
  std::uint32_t max_keep_alive_seconds = 300;
  std::uint32_t receive_maximum = 64;
  std::uint32_t max_inflight_messages = 32;
  std::uint32_t max_queued_messages = 1000;
  std::uint32_t max_pending_output_bytes = 1048576;
  std::uint32_t max_session_expiry_seconds = 604800;
  std::uint32_t max_subscriptions = 32;
  std::uint32_t device_messages_per_second = 50;
  std::uint32_t device_message_burst = 200;
  std::uint32_t device_bytes_per_second = 65536;
  std::uint32_t device_byte_burst = 262144;
  std::uint32_t offences_before_ban = 20;
  std::uint32_t offence_window_seconds = 60;
  std::uint32_t device_ban_seconds = 300;
  std::uint32_t ingest_queue_messages = 100000;
  std::uint32_t disable_unused_devices_after_days = 90;
  friend bool operator==(const MqttConfig&, const MqttConfig&) = default;
};

// The console's HTTP limits (keys in [console], next to its listener's).
struct ConsoleConfig {
  std::uint32_t max_body_bytes = 65536;
  std::uint32_t request_timeout_seconds = 10;
  std::uint32_t idle_timeout_seconds = 30;
  // Sign-in, setup and second-factor attempts per source address (JPCERT I-1).
  std::uint32_t sign_in_attempts_per_minute = 20;
  // Requests per signed-in person (a token's owner included) and minute (JPCERT item 8).
  std::uint32_t requests_per_minute_per_user = 600;
  // The web application firewall (JPCERT II-1): ModSecurity with the OWASP Core Rule Set.
  bool waf = true;
  std::uint32_t waf_paranoia_level = 1;
  std::uint32_t waf_anomaly_threshold = 5;
  // Threads that run the firewall's inspections beside the I/O thread; 0: one per core but
  // the I/O thread's (at least one).
  std::uint32_t waf_threads = 0;
  // The web console's built files (web/); empty: beside the executable or in
  // ../share/torii/console from it.
  std::filesystem::path assets;
  friend bool operator==(const ConsoleConfig&, const ConsoleConfig&) = default;
};

// People's accounts: sessions, lockout and password hashing (JPCERT I-1…I-4, III-2…III-4).
struct AccountsConfig {
  std::uint32_t session_idle_minutes = 15;
  std::uint32_t session_absolute_hours = 12;
  std::uint32_t lock_after_failures = 5;
  std::uint32_t first_lock_seconds = 60;
  std::uint32_t longest_lock_seconds = 3600;
  std::uint32_t password_hash_passes = 2;
  std::uint32_t password_hash_memory_kib = 65536;
  std::uint32_t concurrent_password_hashes = 2;
  std::uint32_t disable_unused_after_days = 90;
  // The longest lifetime an API token may be given (JPCERT I-10).
  std::uint32_t api_token_max_days = 90;
  // Failed sign-ins across accounts that make one alert (JPCERT VIII-2); 0 turns a count off.
  std::uint32_t failure_burst_window_seconds = 300;
  std::uint32_t failure_burst_per_source = 20;
  std::uint32_t failure_burst_total = 100;
  friend bool operator==(const AccountsConfig&, const AccountsConfig&) = default;
};

// Outgoing e-mail (password links): an SMTP submission server. Off while host is empty.
// TLS is required ("starttls", or "tls" from the first byte, port 465) with the server's
// certificate verified; "none" only to a loopback host (a local relay). The password is
// read from password_file, never written in this file.
struct MailConfig {
  std::string host;
  std::uint32_t port = 587;
  std::string tls = "starttls";  // "starttls", "tls" or "none"
  std::string from;              // sender address; required with a host
  std::string from_name = "torii";
  std::string username;                 // empty: no AUTH
  std::filesystem::path password_file;  // with username; mode 0600
  std::filesystem::path ca_file;        // PEM of the CAs trusted for the server; empty: the system's
  std::uint32_t timeout_seconds = 30;
  friend bool operator==(const MailConfig&, const MailConfig&) = default;
};

// Devices that make their own key and enrol with a one-time token (identity/enrolment.h), and
// how far a device's clock may be from the server's before it is an alert (JPCERT VIII-1;
// broker/device_health.h).
struct DevicesConfig {
  std::uint32_t enrolment_token_hours = 24;
  std::uint32_t max_clock_skew_seconds = 60;  // 0: not checked
  friend bool operator==(const DevicesConfig&, const DevicesConfig&) = default;
};

// Notification channels (docs/notifications.md).
struct NotificationsConfig {
  // Webhooks and syslog to loopback, link-local (cloud metadata), unspecified and multicast
  // addresses are refused unless this is set (a host's own services, for tests and labs).
  bool allow_local_destinations = false;
  friend bool operator==(const NotificationsConfig&, const NotificationsConfig&) = default;
};

struct SetupConfig {
  std::uint32_t token_lifetime_minutes = 60;
  friend bool operator==(const SetupConfig&, const SetupConfig&) = default;
};

struct Config {
  ServerConfig server;
  ListenerConfig gateway{{{"127.0.0.1", 8883}}, 10};
  ListenerConfig console{{{"127.0.0.1", 8443}}, 10};
  ConsoleConfig console_http;
  MqttConfig mqtt;
  DevicesConfig devices;
  NotificationsConfig notifications;
  AccountsConfig accounts;
  TlsConfig tls;
  FirewallConfig firewall;
  KeysConfig keys;
  PkiConfig pki;
  LogConfig log;
  SetupConfig setup;
  MailConfig mail;
  friend bool operator==(const Config&, const Config&) = default;
};

struct Problem {
  std::string key;  // "gateway.listen[1]"; empty for the file as a whole
  std::string message;
};

// Either a valid Config or every problem found (never just the first).
struct ParseResult {
  Config config;
  std::vector<Problem> problems;
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

[[nodiscard]] ParseResult parse_config(std::string_view toml_text);
[[nodiscard]] ParseResult load_config_file(const std::filesystem::path& path);

// The built-in configuration as a commented TOML file (torii server --print-default-config).
[[nodiscard]] std::string default_config_text();

// Every key path the file may contain, e.g. "gateway.listen" (for docs and tests).
[[nodiscard]] const std::vector<std::string>& known_keys();

// --- Settings changed through the console (PATCH /api/v1/settings) ---------------------------

// A key the console may change, and whether a running server applies a change at once or
// at its next start (what server.cpp and the console wire live; docs/configuration.md).
// Listener addresses, TLS, key sources, the data directory and the PKI are never among them.
struct ChangeableKey {
  std::string_view key;  // "accounts.lock_after_failures"
  bool live = false;
};
[[nodiscard]] const std::vector<ChangeableKey>& changeable_keys();
[[nodiscard]] const ChangeableKey* find_changeable_key(std::string_view key);

struct Override {
  std::string key;         // "firewall.deny"
  std::string value_json;  // its value as JSON: ["203.0.113.0/24"]
};

// `base` (the configuration file's) with the overrides applied as if the file said so:
// each value read and checked as the file's own would be, the checks across keys
// (longest_lock_seconds against first_lock_seconds) run on the result, and every problem
// reported with its key, with the file's messages. A key outside changeable_keys(), or a
// value that is not JSON, is a problem too. Pure.
[[nodiscard]] ParseResult apply_overrides(const Config& base, const std::vector<Override>& overrides);

// "problem one\nproblem two" with key paths, for terminals.
[[nodiscard]] std::string format_problems(const std::vector<Problem>& problems);

// A DNS name (RFC 1123 §2.1: dot-separated labels of 1-63 letters, digits and hyphens, no
// label starting or ending with a hyphen, at most 253 characters, no trailing dot) or an IP
// address.
[[nodiscard]] bool valid_hostname(std::string_view name);

// Parses "127.0.0.1:8883" or "[::1]:8883".
[[nodiscard]] Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace torii::config

#include "config/config.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include "base/ip.h"
#include "base/privileges.h"

namespace torii::config {
namespace {

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = text.find(separator, start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

// Walks the parsed TOML document. Each typed read records the key as known, converts the
// value, and records a problem (with the key path) instead of stopping at the first one.
class Reader {
 public:
  Reader(const toml::table& root, std::vector<Problem>& problems) : root_(root), problems_(problems) {}

  template <class Check = std::nullptr_t>
  void text(std::string_view key, std::string& out, Check check = nullptr) {
    const toml::node* node = find(key);
    if (node == nullptr) return;
    if (const auto* v = node->as_string()) {
      out = v->get();
      if constexpr (!std::is_same_v<Check, std::nullptr_t>) check(key, out);
    } else {
      problem(key, "must be a string");
    }
  }

  void path(std::string_view key, std::filesystem::path& out, bool allow_empty) {
    std::string value = out.string();
    text(key, value);
    if (!allow_empty && value.empty()) problem(key, "must not be empty");
    out = value;
  }

  void number(std::string_view key, std::uint32_t& out, std::uint32_t min, std::uint32_t max) {
    const toml::node* node = find(key);
    if (node == nullptr) return;
    const auto* v = node->as_integer();
    if (v == nullptr) {
      problem(key, "must be an integer");
      return;
    }
    const std::int64_t value = v->get();
    if (value < min || value > max) {
      problem(key, fmt::format("must be between {} and {} (got {})", min, max, value));
      return;
    }
    out = static_cast<std::uint32_t>(value);
  }

  void flag(std::string_view key, bool& out) {
    const toml::node* node = find(key);
    if (node == nullptr) return;
    if (const auto* v = node->as_boolean()) {
      out = v->get();
    } else {
      problem(key, "must be true or false");
    }
  }

  void text_list(std::string_view key, std::vector<std::string>& out) {
    const toml::node* node = find(key);
    if (node == nullptr) return;
    const auto* array = node->as_array();
    if (array == nullptr) {
      problem(key, "must be an array of strings");
      return;
    }
    std::vector<std::string> values;
    for (std::size_t i = 0; i < array->size(); ++i) {
      if (const auto* s = (*array)[i].as_string()) {
        values.push_back(s->get());
      } else {
        problem(fmt::format("{}[{}]", key, i), "must be a string");
      }
    }
    out = std::move(values);
  }

  void problem(std::string_view key, std::string message) {
    problems_.push_back({std::string(key), std::move(message)});
  }

  [[nodiscard]] const std::vector<std::string>& visited() const { return visited_; }

  // Keys present in the file that no read asked for: typos must not pass silently.
  void report_unknown_keys() {
    const std::set<std::string> known(visited_.begin(), visited_.end());
    std::set<std::string> sections;
    for (const std::string& k : visited_) sections.insert(k.substr(0, k.find('.')));
    for (const auto& [section_key, section_node] : root_) {
      const std::string section(section_key.str());
      const auto* table = section_node.as_table();
      if (!sections.contains(section)) {
        problem(section, "unknown section");
        continue;
      }
      if (table == nullptr) {
        problem(section, "must be a table ([" + section + "])");
        continue;
      }
      for (const auto& [name, node] : *table) {
        const std::string full = section + "." + std::string(name.str());
        if (!known.contains(full)) problem(full, "unknown key");
      }
    }
  }

 private:
  const toml::node* find(std::string_view key) {
    visited_.emplace_back(key);
    const auto dot = key.find('.');
    const auto* section = root_.get(key.substr(0, dot));
    if (section == nullptr || !section->is_table()) return nullptr;
    return section->as_table()->get(key.substr(dot + 1));
  }

  const toml::table& root_;
  std::vector<Problem>& problems_;
  std::vector<std::string> visited_;
};

// ASCII only, whatever the locale (the checks below are about DNS and passwd names).
bool ascii_lower_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool ascii_letter_or_digit(char c) { return ascii_lower_or_digit(c) || (c >= 'A' && c <= 'Z'); }

void check_cipher_list(Reader& r, std::string_view key, const std::string& value,
                       const std::set<std::string_view>& allowed) {
  if (value.empty()) return;
  for (const std::string& name : split(value, ':')) {
    if (!allowed.contains(name)) {
      r.problem(key, fmt::format("'{}' is not an allowed suite (allowed: AEAD suites with forward secrecy: {})", name,
                                 fmt::join(allowed, ", ")));
    }
  }
}

void read_listener(Reader& r, std::string_view section, ListenerConfig& out,
                   std::vector<std::pair<std::string, ListenAddress>>& all) {
  std::vector<std::string> listen;
  for (const auto& a : out.listen) listen.push_back(a.to_string());
  const std::string listen_key = std::string(section) + ".listen";
  const std::string& lk = listen_key;
  const std::string tk = std::string(section) + ".handshake_timeout_seconds";
  r.text_list(lk, listen);
  if (listen.empty()) r.problem(lk, "must name at least one address");
  std::vector<ListenAddress> parsed;
  for (std::size_t i = 0; i < listen.size(); ++i) {
    auto address = parse_listen_address(listen[i]);
    if (!address) {
      r.problem(fmt::format("{}[{}]", lk, i), address.error().message);
      continue;
    }
    for (const auto& [other_key, other] : all) {
      const bool wildcard =
          other.host == "0.0.0.0" || other.host == "::" || address->host == "0.0.0.0" || address->host == "::";
      if (address->port != 0 && other.port == address->port && (other.host == address->host || wildcard)) {
        r.problem(fmt::format("{}[{}]", lk, i),
                  fmt::format("{} overlaps {} ({})", address->to_string(), other.to_string(), other_key));
      }
    }
    all.emplace_back(fmt::format("{}[{}]", lk, i), *address);
    parsed.push_back(*address);
  }
  out.listen = std::move(parsed);
  r.number(tk, out.handshake_timeout_seconds, 1, 120);
}

void read_all(Reader& r, Config& c) {
  // [server]
  r.text("server.user", c.server.user, [&](std::string_view key, const std::string& v) {
    if (v == "root") {
      r.problem(key, "must not be root: torii drops root privileges after binding its ports (JPCERT I-5)");
    } else if (!valid_account_name(v)) {
      r.problem(key, "must be a system user name ([a-z_][a-z0-9_-]*)");
    }
  });
  r.path("server.data_dir", c.server.data_dir, false);
  r.text_list("server.hostnames", c.server.hostnames);
  if (c.server.hostnames.empty()) r.problem("server.hostnames", "must name at least one host name or address");
  for (std::size_t i = 0; i < c.server.hostnames.size(); ++i) {
    if (!valid_hostname(c.server.hostnames[i])) {
      r.problem(fmt::format("server.hostnames[{}]", i),
                fmt::format("'{}' is neither a DNS name nor an IP address", c.server.hostnames[i]));
    }
  }
  r.text("server.public_url", c.server.public_url, [&](std::string_view key, const std::string& v) {
    if (!v.empty() && v.rfind("https://", 0) != 0) r.problem(key, "must start with https:// (the console is TLS only)");
  });

  // [gateway], [console]
  std::vector<std::pair<std::string, ListenAddress>> addresses;
  read_listener(r, "gateway", c.gateway, addresses);
  read_listener(r, "console", c.console, addresses);
  auto& h = c.console_http;
  r.number("console.max_body_bytes", h.max_body_bytes, 1024, 16 * 1024 * 1024);
  r.number("console.request_timeout_seconds", h.request_timeout_seconds, 1, 300);
  r.number("console.idle_timeout_seconds", h.idle_timeout_seconds, 1, 3600);
  r.number("console.sign_in_attempts_per_minute", h.sign_in_attempts_per_minute, 1, 10'000);
  r.number("console.requests_per_minute_per_user", h.requests_per_minute_per_user, 1, 10'000'000);
  r.flag("console.waf", h.waf);
  r.number("console.waf_paranoia_level", h.waf_paranoia_level, 1, 4);
  r.number("console.waf_anomaly_threshold", h.waf_anomaly_threshold, 1, 1000);
  r.number("console.waf_threads", h.waf_threads, 0, 64);
  r.path("console.assets", h.assets, true);

  // [accounts]
  auto& a = c.accounts;
  r.number("accounts.session_idle_minutes", a.session_idle_minutes, 1, 24 * 60);
  r.number("accounts.session_absolute_hours", a.session_absolute_hours, 1, 30 * 24);
  r.number("accounts.lock_after_failures", a.lock_after_failures, 1, 100);
  r.number("accounts.first_lock_seconds", a.first_lock_seconds, 1, 86'400);
  r.number("accounts.longest_lock_seconds", a.longest_lock_seconds, 1, 30 * 86'400);
  if (a.longest_lock_seconds < a.first_lock_seconds) {
    r.problem("accounts.longest_lock_seconds", "must be at least accounts.first_lock_seconds");
  }
  r.number("accounts.password_hash_passes", a.password_hash_passes, 1, 10);
  r.number("accounts.password_hash_memory_kib", a.password_hash_memory_kib, 8, 4 * 1024 * 1024);
  r.number("accounts.concurrent_password_hashes", a.concurrent_password_hashes, 1, 64);
  r.number("accounts.disable_unused_after_days", a.disable_unused_after_days, 0, 3650);
  r.number("accounts.api_token_max_days", a.api_token_max_days, 1, 3650);
  r.number("accounts.failure_burst_window_seconds", a.failure_burst_window_seconds, 10, 86'400);
  r.number("accounts.failure_burst_per_source", a.failure_burst_per_source, 0, 1'000'000);
  r.number("accounts.failure_burst_total", a.failure_burst_total, 0, 1'000'000);

  // [mqtt]
  auto& m = c.mqtt;
  r.number("mqtt.connect_timeout_seconds", m.connect_timeout_seconds, 1, 120);
  r.number("mqtt.max_packet_bytes", m.max_packet_bytes, 256, 268'435'455);
  r.number("mqtt.max_keep_alive_seconds", m.max_keep_alive_seconds, 10, 65'535);
  r.number("mqtt.receive_maximum", m.receive_maximum, 1, 65'535);
  r.number("mqtt.max_inflight_messages", m.max_inflight_messages, 1, 65'535);
  r.number("mqtt.max_queued_messages", m.max_queued_messages, 0, 1'000'000);
  r.number("mqtt.max_pending_output_bytes", m.max_pending_output_bytes, 65'536, 1'073'741'824);
  r.number("mqtt.max_session_expiry_seconds", m.max_session_expiry_seconds, 0, 30 * 86'400);
  r.number("mqtt.max_subscriptions", m.max_subscriptions, 1, 1000);
  r.number("mqtt.device_messages_per_second", m.device_messages_per_second, 1, 1'000'000);
  r.number("mqtt.device_message_burst", m.device_message_burst, 1, 10'000'000);
  r.number("mqtt.device_bytes_per_second", m.device_bytes_per_second, 256, 1'000'000'000);
  r.number("mqtt.device_byte_burst", m.device_byte_burst, 256, 1'000'000'000);
  r.number("mqtt.offences_before_ban", m.offences_before_ban, 1, 1'000'000);
  r.number("mqtt.offence_window_seconds", m.offence_window_seconds, 1, 86'400);
  r.number("mqtt.device_ban_seconds", m.device_ban_seconds, 1, 30 * 86'400);
  r.number("mqtt.ingest_queue_messages", m.ingest_queue_messages, 1, 10'000'000);
  r.number("mqtt.disable_unused_devices_after_days", m.disable_unused_devices_after_days, 0, 3650);
  if (m.device_message_burst < m.device_messages_per_second) {
    r.problem("mqtt.device_message_burst", "must be at least mqtt.device_messages_per_second");
  }
  if (m.device_byte_burst < m.device_bytes_per_second) {
    r.problem("mqtt.device_byte_burst", "must be at least mqtt.device_bytes_per_second");
  }
  if (m.device_byte_burst < m.max_packet_bytes) {
    r.problem("mqtt.device_byte_burst", "must be at least mqtt.max_packet_bytes, or the largest message never passes");
  }

  // [tls]
  r.text("tls.min_version", c.tls.min_version, [&](std::string_view key, const std::string& v) {
    if (v != "1.2" && v != "1.3") r.problem(key, "must be \"1.2\" or \"1.3\"");
  });
  r.text("tls.ciphers_tls12", c.tls.ciphers_tls12, [&](std::string_view key, const std::string& v) {
    check_cipher_list(
        r, key, v, {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"});
  });
  r.text("tls.ciphersuites_tls13", c.tls.ciphersuites_tls13, [&](std::string_view key, const std::string& v) {
    check_cipher_list(
        r, key, v,
        {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256"});
    if (v.empty()) r.problem(key, "must name at least one suite");
  });
  if (c.tls.min_version == "1.2" && c.tls.ciphers_tls12.empty()) {
    r.problem("tls.ciphers_tls12", "must name at least one suite while tls.min_version is \"1.2\"");
  }

  // [firewall]
  for (auto [key, list] :
       {std::pair{"firewall.allow", &c.firewall.allow}, std::pair{"firewall.deny", &c.firewall.deny}}) {
    r.text_list(key, *list);
    for (std::size_t i = 0; i < list->size(); ++i) {
      if (auto block = CidrBlock::parse((*list)[i]); !block)
        r.problem(fmt::format("{}[{}]", key, i), block.error().message);
    }
  }
  r.number("firewall.max_connections", c.firewall.max_connections, 1, 1'000'000);
  r.number("firewall.max_connections_per_source", c.firewall.max_connections_per_source, 1, 1'000'000);
  if (c.firewall.max_connections_per_source > c.firewall.max_connections) {
    r.problem("firewall.max_connections_per_source", "must not exceed firewall.max_connections");
  }
  r.number("firewall.ban_after_failures", c.firewall.ban_after_failures, 1, 10'000);
  r.number("firewall.failure_window_seconds", c.firewall.failure_window_seconds, 1, 86'400);
  r.number("firewall.ban_seconds", c.firewall.ban_seconds, 1, 30 * 86'400);

  // [keys]
  std::string source = c.keys.kek_source == KekSource::file ? "file" : "passphrase";
  r.text("keys.kek_source", source, [&](std::string_view key, const std::string& v) {
    if (v == "file") {
      c.keys.kek_source = KekSource::file;
    } else if (v == "passphrase") {
      c.keys.kek_source = KekSource::passphrase;
    } else {
      r.problem(key, "must be \"file\" or \"passphrase\"");
    }
  });
  r.path("keys.kek_file", c.keys.kek_file, false);
  r.path("keys.passphrase_file", c.keys.passphrase_file, true);

  // [devices]
  r.number("devices.enrolment_token_hours", c.devices.enrolment_token_hours, 1, 720);
  r.number("devices.max_clock_skew_seconds", c.devices.max_clock_skew_seconds, 0, 86'400);

  // [notifications]
  r.flag("notifications.allow_local_destinations", c.notifications.allow_local_destinations);

  // [pki]
  r.number("pki.root_ca_lifetime_days", c.pki.root_ca_lifetime_days, 365, 9125);
  r.number("pki.issuing_ca_lifetime_days", c.pki.issuing_ca_lifetime_days, 30, 3650);
  r.number("pki.server_certificate_lifetime_days", c.pki.server_certificate_lifetime_days, 1, 397);
  r.number("pki.device_certificate_lifetime_days", c.pki.device_certificate_lifetime_days, 1, 397);
  r.number("pki.crl_next_update_hours", c.pki.crl_next_update_hours, 1, 168);
  r.number("pki.expiry_alert_days", c.pki.expiry_alert_days, 0, 90);
  if (c.pki.issuing_ca_lifetime_days > c.pki.root_ca_lifetime_days) {
    r.problem("pki.issuing_ca_lifetime_days", "must not exceed pki.root_ca_lifetime_days");
  }
  for (auto [key, days] : {std::pair{"pki.server_certificate_lifetime_days", c.pki.server_certificate_lifetime_days},
                           std::pair{"pki.device_certificate_lifetime_days", c.pki.device_certificate_lifetime_days}}) {
    if (days > c.pki.issuing_ca_lifetime_days) r.problem(key, "must not exceed pki.issuing_ca_lifetime_days");
  }

  // [log]
  r.text("log.level", c.log.level, [&](std::string_view key, const std::string& v) {
    if (v != "trace" && v != "debug" && v != "info" && v != "warn" && v != "error") {
      r.problem(key, "must be one of trace, debug, info, warn, error");
    }
  });
  r.path("log.security_log_dir", c.log.security_log_dir, false);
  r.number("log.max_file_mib", c.log.max_file_mib, 1, 4096);
  r.number("log.retention_days", c.log.retention_days, 0, 36'500);
  r.number("log.checkpoint_every_events", c.log.checkpoint_every_events, 1, 1'000'000);
  r.number("log.checkpoint_interval_seconds", c.log.checkpoint_interval_seconds, 1, 86'400);

  // [setup]
  r.number("setup.token_lifetime_minutes", c.setup.token_lifetime_minutes, 5, 60);

  // [mail]
  r.text("mail.host", c.mail.host, [&](std::string_view key, const std::string& v) {
    if (!v.empty() && !valid_hostname(v)) r.problem(key, "must be a DNS name or an IP address");
  });
  r.number("mail.port", c.mail.port, 1, 65535);
  r.text("mail.tls", c.mail.tls, [&](std::string_view key, const std::string& v) {
    if (v != "starttls" && v != "tls" && v != "none") r.problem(key, "must be \"starttls\", \"tls\" or \"none\"");
  });
  r.text("mail.from", c.mail.from, [&](std::string_view key, const std::string& v) {
    const auto at = v.rfind('@');
    if (!v.empty() &&
        (at == std::string::npos || at == 0 || at + 1 == v.size() || std::any_of(v.begin(), v.end(), [](char ch) {
           return static_cast<unsigned char>(ch) <= 0x20 || ch == '<' || ch == '>' || ch == 0x7f;
         }))) {
      r.problem(key, "must be an e-mail address such as torii@example.org");
    }
  });
  r.text("mail.from_name", c.mail.from_name, [&](std::string_view key, const std::string& v) {
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) r.problem(key, "must be one line");
  });
  r.text("mail.username", c.mail.username, [&](std::string_view key, const std::string& v) {
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) r.problem(key, "must be one line");
  });
  r.path("mail.password_file", c.mail.password_file, true);
  r.path("mail.ca_file", c.mail.ca_file, true);
  r.number("mail.timeout_seconds", c.mail.timeout_seconds, 1, 300);
  if (!c.mail.host.empty()) {
    if (c.mail.from.empty()) r.problem("mail.from", "must be set when mail.host is");
    const auto ip = IpAddress::parse(c.mail.host);
    const bool loopback =
        c.mail.host == "localhost" || (ip && (ip->to_string() == "::1" || ip->to_string().starts_with("127.")));
    if (c.mail.tls == "none" && !loopback) {
      r.problem("mail.tls", "\"none\" (no TLS) is allowed only to a loopback host (localhost, 127.0.0.0/8, ::1)");
    }
    if (c.mail.username.empty() != c.mail.password_file.empty()) {
      r.problem(c.mail.username.empty() ? "mail.username" : "mail.password_file",
                "mail.username and mail.password_file go together");
    }
    if (c.mail.tls == "none" && !c.mail.username.empty()) {
      r.problem("mail.username", "credentials are sent only over TLS: set mail.tls to \"starttls\" or \"tls\"");
    }
  }
}

}  // namespace

// Checked by hand rather than with std::regex: its instantiations more than doubled the
// compile time of this file.
bool valid_hostname(std::string_view name) {
  if (IpAddress::parse(name)) return true;
  if (name.empty() || name.size() > 253) return false;
  while (true) {
    const auto dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return ascii_letter_or_digit(c) || c == '-'; })) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    name.remove_prefix(dot + 1);
  }
}

std::string ListenAddress::to_string() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

Result<ListenAddress> parse_listen_address(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return fail(Errc::invalid_argument, fmt::format("'{}' must look like [::1]:8883", text));
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return fail(Errc::invalid_argument, fmt::format("'{}' must look like 127.0.0.1:8883 or [::1]:8883", text));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto address = IpAddress::parse(host);
  if (!address) {
    return fail(
        Errc::invalid_argument,
        fmt::format("'{}': '{}' is not a numeric IP address (listeners bind to addresses, not names)", text, host));
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return fail(Errc::invalid_argument, fmt::format("'{}': port must be 0-65535 (0 picks a free port)", text));
  }
  return ListenAddress{address->to_string(), static_cast<std::uint16_t>(value)};
}

ParseResult parse_config(std::string_view toml_text) {
  ParseResult result;
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    result.problems.push_back(
        {"", fmt::format("line {}, column {}: {}", where.line, where.column, std::string(e.description()))});
    return result;
  }
  Reader reader(root, result.problems);
  read_all(reader, result.config);
  reader.report_unknown_keys();
  return result;
}

ParseResult load_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ParseResult result;
    result.problems.push_back({"", fmt::format("cannot read {}", path.string())});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str());
}

const std::vector<std::string>& known_keys() {
  static const std::vector<std::string> keys = [] {
    toml::table empty;
    std::vector<Problem> ignored;
    Reader reader(empty, ignored);
    Config c;
    read_all(reader, c);
    return reader.visited();
  }();
  return keys;
}

namespace {

// A JSON value as the TOML node the file would hold. What the file cannot say (null, an
// object, a float) becomes a node of another type, so the Reader answers it with the
// file's own message ("must be an integer").
std::unique_ptr<toml::node> to_toml(const nlohmann::json& value) {
  if (value.is_boolean()) return std::make_unique<toml::value<bool>>(value.get<bool>());
  if (value.is_number_integer() && !value.is_number_unsigned()) {
    return std::make_unique<toml::value<std::int64_t>>(value.get<std::int64_t>());
  }
  if (value.is_number_unsigned()) {
    const auto n = value.get<std::uint64_t>();
    if (n <= static_cast<std::uint64_t>(INT64_MAX)) {
      return std::make_unique<toml::value<std::int64_t>>(static_cast<std::int64_t>(n));
    }
    return std::make_unique<toml::value<double>>(static_cast<double>(n));
  }
  if (value.is_number_float()) return std::make_unique<toml::value<double>>(value.get<double>());
  if (value.is_string()) return std::make_unique<toml::value<std::string>>(value.get<std::string>());
  if (value.is_array()) {
    auto array = std::make_unique<toml::array>();
    for (const auto& item : value) {
      to_toml(item)->visit([&](auto& v) { array->push_back(std::move(v)); });  // ours to move
    }
    return array;
  }
  return std::make_unique<toml::table>();  // null, an object
}

}  // namespace

const std::vector<ChangeableKey>& changeable_keys() {
  // Live: identity::Accounts (lockout, sessions, failure bursts), identity::ApiTokens (the
  // longest lifetime), the console's request limits and the connection filter's lists and
  // bans are replaced in the running server. The unused-account rule and the log's
  // retention are read by timers set up at start.
  static const std::vector<ChangeableKey> keys = {
      {"accounts.lock_after_failures", true},
      {"accounts.first_lock_seconds", true},
      {"accounts.longest_lock_seconds", true},
      {"accounts.session_idle_minutes", true},
      {"accounts.session_absolute_hours", true},
      {"accounts.disable_unused_after_days", false},
      {"accounts.api_token_max_days", true},
      {"accounts.failure_burst_window_seconds", true},
      {"accounts.failure_burst_per_source", true},
      {"accounts.failure_burst_total", true},
      {"console.sign_in_attempts_per_minute", true},
      {"console.requests_per_minute_per_user", true},
      {"log.retention_days", false},
      {"firewall.allow", true},
      {"firewall.deny", true},
      {"firewall.ban_after_failures", true},
      {"firewall.failure_window_seconds", true},
      {"firewall.ban_seconds", true},
  };
  return keys;
}

const ChangeableKey* find_changeable_key(std::string_view key) {
  const auto& keys = changeable_keys();
  const auto it = std::find_if(keys.begin(), keys.end(), [&](const ChangeableKey& k) { return k.key == key; });
  return it == keys.end() ? nullptr : &*it;
}

ParseResult apply_overrides(const Config& base, const std::vector<Override>& overrides) {
  ParseResult result;
  result.config = base;
  toml::table root;
  for (const auto& o : overrides) {
    if (find_changeable_key(o.key) == nullptr) {
      const auto& known = known_keys();
      result.problems.push_back({o.key, std::find(known.begin(), known.end(), o.key) != known.end()
                                            ? "cannot be changed through the console; edit the configuration file"
                                            : "unknown key"});
      continue;
    }
    auto value = nlohmann::json::parse(o.value_json, nullptr, false);
    if (value.is_discarded()) {
      result.problems.push_back({o.key, "is not a JSON value"});
      continue;
    }
    const auto dot = o.key.find('.');
    auto* section = root.emplace<toml::table>(o.key.substr(0, dot)).first->second.as_table();
    auto node = to_toml(value);
    node->visit([&](auto& v) { section->insert_or_assign(o.key.substr(dot + 1), std::move(v)); });
  }
  Reader reader(root, result.problems);
  read_all(reader, result.config);
  reader.report_unknown_keys();
  return result;
}

std::string format_problems(const std::vector<Problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    out += p.key.empty() ? fmt::format("  {}\n", p.message) : fmt::format("  {}: {}\n", p.key, p.message);
  }
  return out;
}

}  // namespace torii::config

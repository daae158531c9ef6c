// The console API (api.h), settings: the installation's security settings in force, for the
// system administrator (settings.read). They come from the configuration file
// (docs/configuration.md) and are read here under the same section and key names; nothing
// secret is among them (key material and passphrases are never part of the answer).
#include <string>
#include <vector>

#include "console/api_internal.h"

namespace torii::console::api {

using identity::Permission;

namespace {

json addresses(const config::ListenerConfig& listener) {
  json out = json::array();
  for (const auto& a : listener.listen) out.push_back(a.to_string());
  return out;
}

json settings_json(const config::Config& c) {
  const auto& a = c.accounts;
  const auto& h = c.console_http;
  const auto& f = c.firewall;
  const auto& m = c.mqtt;
  return {
      {"accounts",
       {{"session_idle_minutes", a.session_idle_minutes},
        {"session_absolute_hours", a.session_absolute_hours},
        {"lock_after_failures", a.lock_after_failures},
        {"first_lock_seconds", a.first_lock_seconds},
        {"longest_lock_seconds", a.longest_lock_seconds},
        {"password_hash_passes", a.password_hash_passes},
        {"password_hash_memory_kib", a.password_hash_memory_kib},
        {"concurrent_password_hashes", a.concurrent_password_hashes},
        {"disable_unused_after_days", a.disable_unused_after_days}}},
      // Fixed by torii, not configurable: shown so that nobody has to guess them.
      {"password_policy",
       {{"min_length", 12},
        {"max_length", 128},
        {"min_zxcvbn_score", 3},
        {"history", 5},
        {"common_list", true},
        {"second_factor_for_administrators", true}}},
      {"console",
       {{"listen", addresses(c.console)},
        {"max_body_bytes", h.max_body_bytes},
        {"request_timeout_seconds", h.request_timeout_seconds},
        {"idle_timeout_seconds", h.idle_timeout_seconds},
        {"sign_in_attempts_per_minute", h.sign_in_attempts_per_minute},
        {"waf", h.waf},
        {"waf_paranoia_level", h.waf_paranoia_level},
        {"waf_anomaly_threshold", h.waf_anomaly_threshold}}},
      {"gateway",
       {{"listen", addresses(c.gateway)}, {"handshake_timeout_seconds", c.gateway.handshake_timeout_seconds}}},
      {"tls",
       {{"min_version", c.tls.min_version},
        {"ciphers_tls12", c.tls.ciphers_tls12},
        {"ciphersuites_tls13", c.tls.ciphersuites_tls13}}},
      {"firewall",
       {{"allow", f.allow},
        {"deny", f.deny},
        {"max_connections", f.max_connections},
        {"max_connections_per_source", f.max_connections_per_source},
        {"ban_after_failures", f.ban_after_failures},
        {"failure_window_seconds", f.failure_window_seconds},
        {"ban_seconds", f.ban_seconds}}},
      {"mqtt",
       {{"max_packet_bytes", m.max_packet_bytes},
        {"max_keep_alive_seconds", m.max_keep_alive_seconds},
        {"max_session_expiry_seconds", m.max_session_expiry_seconds},
        {"device_messages_per_second", m.device_messages_per_second},
        {"device_bytes_per_second", m.device_bytes_per_second},
        {"offences_before_ban", m.offences_before_ban},
        {"device_ban_seconds", m.device_ban_seconds},
        {"disable_unused_devices_after_days", m.disable_unused_devices_after_days}}},
      {"pki",
       {{"root_ca_lifetime_days", c.pki.root_ca_lifetime_days},
        {"issuing_ca_lifetime_days", c.pki.issuing_ca_lifetime_days},
        {"server_certificate_lifetime_days", c.pki.server_certificate_lifetime_days},
        {"device_certificate_lifetime_days", c.pki.device_certificate_lifetime_days}}},
      {"log",
       {{"level", c.log.level},
        {"retention_days", c.log.retention_days},
        {"max_file_mib", c.log.max_file_mib},
        {"checkpoint_every_events", c.log.checkpoint_every_events},
        {"checkpoint_interval_seconds", c.log.checkpoint_interval_seconds}}},
      {"keys", {{"kek_source", c.keys.kek_source == config::KekSource::file ? "file" : "passphrase"}}},
  };
}

asio::awaitable<Response> show_settings(ApiState& s, Call&) {
  co_return json_response(200, {{"settings", settings_json(s.ctx.config)}, {"source", "configuration file"}});
}

}  // namespace

void add_settings_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/settings", Access::full, Permission::settings_read, {}, false, show_settings},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

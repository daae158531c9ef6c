// The console API (api.h), settings: the installation's security settings, for the system
// administrator (settings.read), and the changes they make to some of them (settings.write,
// with step-up). They come from the configuration file (docs/configuration.md), then the
// overrides stored through PATCH /api/v1/settings (settings.h), and are shown under the
// file's section and key names; nothing secret is among them (key material and passphrases
// are never part of the answer).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "base/ip.h"
#include "base/version.h"
#include "console/api_internal.h"
#include "console/settings.h"

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
        {"disable_unused_after_days", a.disable_unused_after_days},
        {"api_token_max_days", a.api_token_max_days},
        {"failure_burst_window_seconds", a.failure_burst_window_seconds},
        {"failure_burst_per_source", a.failure_burst_per_source},
        {"failure_burst_total", a.failure_burst_total}}},
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
        {"requests_per_minute_per_user", h.requests_per_minute_per_user},
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
      {"notifications", {{"allow_local_destinations", c.notifications.allow_local_destinations}}},
  };
}

// The value of "section.key" in settings_json's answer.
json value_of(const json& settings, std::string_view key) {
  const auto dot = key.find('.');
  const std::string section(key.substr(0, dot));
  const std::string name(key.substr(dot + 1));
  if (!settings.contains(section) || !settings[section].contains(name)) return nullptr;
  return settings[section][name];
}

// Per changeable key: where its value comes from, and when a change of it takes effect.
json sources_json(const ApiState& s, const std::vector<store::SettingOverrideRecord>& overrides) {
  const json now = settings_json(s.settings);
  const json at_start = settings_json(s.settings_at_start);
  json out = json::object();
  for (const auto& k : config::changeable_keys()) {
    json entry = {{"source", "file"}, {"applies", k.live ? "now" : "next start"}};
    const auto it = std::find_if(overrides.begin(), overrides.end(),
                                 [&](const store::SettingOverrideRecord& o) { return o.key == k.key; });
    if (it != overrides.end()) {
      entry["source"] = "console";
      entry["changed_by"] = it->changed_by;
      entry["changed_at"] = iso(it->changed_at);
    }
    entry["pending_restart"] = !k.live && value_of(now, k.key) != value_of(at_start, k.key);
    out[std::string(k.key)] = std::move(entry);
  }
  return out;
}

Result<json> settings_answer(ApiState& s) {
  auto overrides = s.ctx.store.setting_overrides().list();
  if (!overrides) return tl::unexpected(overrides.error());
  return json{{"version", kVersion},
              {"settings", settings_json(s.settings)},
              {"source", "configuration file, then changes made in the console"},
              {"keys", sources_json(s, *overrides)}};
}

asio::awaitable<Response> show_settings(ApiState& s, Call&) {
  auto answer = settings_answer(s);
  if (!answer) co_return internal_error(answer.error());
  co_return json_response(200, *answer);
}

// Whether `next` weakens a protection `before` gave, for the alert (JPCERT VIII-2): the
// firewall admits what it refused, a lockout or burst alert comes later or not at all, a
// lock or ban is shorter, sessions, tokens or limits are longer or larger, unused accounts
// are no longer disabled.
bool weakens(std::string_view key, const json& before, const json& next) {
  if (key == "firewall.deny") {
    return std::any_of(before.begin(), before.end(),
                       [&](const json& b) { return std::find(next.begin(), next.end(), b) == next.end(); });
  }
  if (key == "firewall.allow") {
    if (before.empty()) return false;
    return next.empty() || std::any_of(next.begin(), next.end(), [&](const json& n) {
             return std::find(before.begin(), before.end(), n) == before.end();
           });
  }
  if (!before.is_number_integer() || !next.is_number_integer()) return false;
  const auto b = before.get<std::int64_t>();
  const auto n = next.get<std::int64_t>();
  // 0 turns these off.
  if (key == "accounts.failure_burst_per_source" || key == "accounts.failure_burst_total" ||
      key == "accounts.disable_unused_after_days") {
    return (n == 0 && b != 0) || (b != 0 && n > b);
  }
  static const std::vector<std::string_view> shorter_is_weaker = {
      "accounts.first_lock_seconds", "accounts.longest_lock_seconds", "firewall.ban_seconds",
      "firewall.failure_window_seconds", "accounts.failure_burst_window_seconds"};
  if (std::find(shorter_is_weaker.begin(), shorter_is_weaker.end(), key) != shorter_is_weaker.end()) return n < b;
  if (key == "log.retention_days") return b == 0 ? n != 0 : (n != 0 && n < b);  // 0 keeps the log for ever
  return n > b;  // failures before a lock or ban, timeouts, lifetimes, limits
}

// Whether the filter the firewall lists make would refuse `address` (net::ConnectionFilter:
// deny wins, then a non-empty allow list must name it).
bool refused_by(const config::FirewallConfig& f, const IpAddress& address) {
  const auto in = [&](const std::vector<std::string>& list) {
    return std::any_of(list.begin(), list.end(), [&](const std::string& c) {
      auto block = CidrBlock::parse(c);
      return block && block->contains(address);
    });
  };
  return in(f.deny) || (!f.allow.empty() && !in(f.allow));
}

asio::awaitable<Response> change_settings(ApiState& s, Call& call) {
  const json changes = json::parse(call.fields["changes"], nullptr, false);
  if (changes.is_discarded() || !changes.is_object() || changes.empty()) {
    co_return invalid_input(std::vector<FieldProblem>{{"changes", "empty", "name at least one setting to change"}});
  }
  auto stored = s.ctx.store.setting_overrides().list();
  if (!stored) co_return internal_error(stored.error());

  // The overrides as they would be: the stored ones, then these changes (null removes one).
  std::map<std::string, std::string> next_overrides;
  for (const auto& o : *stored) next_overrides[o.key] = o.value_json;
  std::vector<FieldProblem> problems;
  for (const auto& [key, value] : changes.items()) {
    if (value.is_null()) {
      if (config::find_changeable_key(key) == nullptr) {
        problems.push_back({key, "invalid", "cannot be changed through the console; edit the configuration file"});
      }
      next_overrides.erase(key);
    } else {
      next_overrides[key] = value.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  std::vector<config::Override> list;
  list.reserve(next_overrides.size());
  for (const auto& [key, value] : next_overrides) list.push_back({key, value});
  // The file's own reading and checks, every problem at once (config::apply_overrides).
  const auto applied = config::apply_overrides(s.ctx.config, list);
  for (const auto& p : applied.problems) problems.push_back({p.key, "invalid", p.message});
  if (!problems.empty()) co_return invalid_input(problems);

  // No one may shut themselves out: changed lists must still admit the address this comes
  // from (the peer of this connection: nothing a client says about itself counts).
  const bool lists_change = changes.contains("firewall.deny") || changes.contains("firewall.allow");
  if (auto caller = IpAddress::parse(address_of(call.request.source));
      lists_change && caller && refused_by(applied.config.firewall, *caller)) {
    const std::string field = changes.contains("firewall.deny") ? "firewall.deny" : "firewall.allow";
    co_return invalid_input(
        std::vector<FieldProblem>{{field, "locks_you_out",
                                   "the firewall would refuse " + caller->to_string() +
                                       ", the address this request comes from; change it from another address"}});
  }

  const std::string actor = "user:" + call.caller->user.id;
  const UnixMillis now = to_unix_millis(s.ctx.clock.now());
  const auto stored_changes = [&]() -> Status {
    for (const auto& [key, value] : changes.items()) {
      if (value.is_null()) {
        if (auto removed = s.ctx.store.setting_overrides().remove(key); !removed) {
          return tl::unexpected(removed.error());
        }
      } else if (auto st = s.ctx.store.setting_overrides().put({key, next_overrides[key], actor, now}); !st) {
        return st;
      }
    }
    return ok();
  };
  if (auto st = s.ctx.store.transaction(stored_changes); !st) co_return internal_error(st.error());

  const json before = settings_json(s.settings);
  const json after = settings_json(applied.config);
  s.settings = applied.config;
  // What takes effect at once (config::changeable_keys): the accounts' lockout, sessions and
  // failure bursts, the tokens' longest lifetime, the request limits here (their buckets
  // start again) and, through the server, the connection filter.
  s.ctx.accounts.update_policy(accounts_options(s.settings.accounts));
  s.ctx.tokens.set_max_lifetime(std::chrono::hours(24) * s.settings.accounts.api_token_max_days);
  s.attempts.clear();
  s.user_requests.clear();
  if (s.ctx.settings_changed) s.ctx.settings_changed(s.settings);

  json changed = json::array();
  for (const auto& [key, value] : changes.items()) {
    const bool live = config::find_changeable_key(key)->live;
    const json old_value = value_of(before, key);
    const json new_value = value_of(after, key);
    json details = {{"key", key},
                    {"old", old_value},
                    {"new", new_value},
                    {"source", value.is_null() ? "file" : "console"},
                    {"applies", live ? "now" : "next start"}};
    if (weakens(key, old_value, new_value)) details["alert"] = true;
    s.emit(&*call.caller, "settings.changed", "setting:" + key, events::Outcome::success, call.origin,
           std::move(details));
    changed.push_back({{"key", key}, {"value", new_value}, {"applies", live ? "now" : "next start"}});
  }
  auto answer = settings_answer(s);
  if (!answer) co_return internal_error(answer.error());
  (*answer)["changed"] = std::move(changed);
  co_return json_response(200, *answer);
}

}  // namespace

void add_settings_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/settings", Access::full, Permission::settings_read, {}, false, show_settings},
      // {"changes": {"accounts.lock_after_failures": 3, "firewall.deny": null}}: all or nothing.
      {"PATCH",
       "/api/v1/settings",
       Access::full,
       Permission::settings_write,
       {{"changes", true, 16384, false, 0, true}},
       false,
       change_settings,
       true},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

namespace torii::console {

Result<config::ParseResult> settings_in_force(const config::Config& file, store::Store& store) {
  auto stored = store.setting_overrides().list();
  if (!stored) return tl::unexpected(stored.error());
  std::vector<config::Override> overrides;
  overrides.reserve(stored->size());
  for (auto& o : *stored) overrides.push_back({std::move(o.key), std::move(o.value_json)});
  return config::apply_overrides(file, overrides);
}

identity::AccountsOptions accounts_options(const config::AccountsConfig& a) {
  identity::AccountsOptions o;
  o.hash_cost = {a.password_hash_passes, std::size_t{a.password_hash_memory_kib} * 1024};
  o.lock_after_failures = static_cast<int>(a.lock_after_failures);
  o.first_lock = std::chrono::seconds(a.first_lock_seconds);
  o.longest_lock = std::chrono::seconds(a.longest_lock_seconds);
  o.session_idle = std::chrono::minutes(a.session_idle_minutes);
  o.session_absolute = std::chrono::hours(a.session_absolute_hours);
  o.failure_bursts = {std::chrono::seconds(a.failure_burst_window_seconds), a.failure_burst_per_source,
                      a.failure_burst_total};
  return o;
}

}  // namespace torii::console

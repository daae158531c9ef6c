#include "alerts/alert_book.h"

#include <array>

#include <spdlog/spdlog.h>

#include "base/bytes.h"

namespace torii::alerts {
namespace {

std::string random_alert_id(Random& random) {
  std::array<std::uint8_t, 12> bytes{};
  random.fill(bytes);
  return "a-" + hex_encode(bytes);
}

nlohmann::json time_or_null(const std::optional<UnixMillis>& at) {
  if (!at) return nullptr;
  return format_utc_millis(from_unix_millis(*at));
}

}  // namespace

AlertBook::AlertBook(store::Store& store, events::SecurityLog* log, const Clock& clock, Random& random)
    : store_(store), log_(log), clock_(clock), random_(random) {}

Result<std::pair<store::AlertRecord, bool>> AlertBook::raise(store::AlertRecord alert) {
  alert.id = random_alert_id(random_);
  alert.opened_at = to_unix_millis(clock_.now());
  alert.status = std::string(store::kAlertOpen);
  auto raised = store_.alerts().raise(alert);
  if (raised && raised->second && changed_) changed_(raised->first, "alert.opened");
  return raised;
}

Result<std::optional<store::AlertRecord>> AlertBook::resolve_key(std::string_view organisation_id, std::string_view key,
                                                                 std::string_view by) {
  auto resolved = store_.alerts().resolve_key(organisation_id, key, by, to_unix_millis(clock_.now()));
  if (resolved && *resolved && changed_) changed_(**resolved, "alert.resolved");
  return resolved;
}

Result<std::optional<store::AlertRecord>> AlertBook::find(std::string_view id, const Scope& scope) {
  auto found = store_.alerts().find(id);
  if (!found) return tl::unexpected(std::move(found.error()));
  if (*found && !scope.contains(**found)) return std::optional<store::AlertRecord>();
  return found;
}

Result<Transition> AlertBook::acknowledge(std::string_view id, std::string_view by, const Scope& scope,
                                          std::string_view source) {
  auto found = find(id, scope);
  if (!found) return tl::unexpected(std::move(found.error()));
  if (!*found) return Transition::not_found;
  auto changed = store_.alerts().acknowledge(id, by, to_unix_millis(clock_.now()));
  if (!changed) return tl::unexpected(std::move(changed.error()));
  if (!*changed) return Transition::already;
  record("alert.acknowledged", by, **found, source);
  tell(id, "alert.acknowledged");
  return Transition::done;
}

Result<Transition> AlertBook::resolve(std::string_view id, std::string_view by, const Scope& scope,
                                      std::string_view source) {
  auto found = find(id, scope);
  if (!found) return tl::unexpected(std::move(found.error()));
  if (!*found) return Transition::not_found;
  auto changed = store_.alerts().resolve(id, by, to_unix_millis(clock_.now()));
  if (!changed) return tl::unexpected(std::move(changed.error()));
  if (!*changed) return Transition::already;
  record("alert.resolved", by, **found, source);
  tell(id, "alert.resolved");
  return Transition::done;
}

Result<std::vector<store::AlertRecord>> AlertBook::list(store::AlertRepository::Query query, const Scope& scope) {
  if (scope.organisation) query.organisation_id = scope.organisation;
  query.limit = std::min(query.limit, kMaxAlertsListed);
  return store_.alerts().list(query);
}

void AlertBook::observe(const events::SecurityEvent& event) {
  auto change = alert_change_for(event);
  if (!change) return;
  const std::string organisation = organisation_for(*change);
  if (change->kind == AlertChange::Kind::resolve) {
    if (auto r = resolve_key(organisation, change->key, "system"); !r) {
      spdlog::error("alerts: resolving an alert ({}) failed: {}", event.action, r.error().message);
    }
    return;
  }
  store::AlertRecord alert;
  alert.organisation_id = organisation;
  alert.source = change->source;
  alert.key = change->key;
  alert.device_id = change->device_id;
  alert.severity = change->severity;
  alert.title = change->title;
  alert.summary = change->summary;
  if (auto r = raise(std::move(alert)); !r) {
    spdlog::error("alerts: raising an alert ({}) failed: {}", event.action, r.error().message);
  }
}

std::string AlertBook::organisation_for(const AlertChange& change) {
  if (!change.organisation_id.empty()) return change.organisation_id;
  if (!change.device_id.empty()) {
    auto device = store_.devices().find(change.device_id);
    if (device && *device) return (*device)->organisation_id;
  }
  if (!change.user_id.empty()) {
    auto user = store_.users().find(change.user_id);
    if (user && *user) return (*user)->organisation_id;
  }
  return {};
}

void AlertBook::tell(std::string_view id, std::string_view event) {
  if (!changed_) return;
  auto now = store_.alerts().find(id);
  if (!now || !*now) {
    spdlog::error("alerts: alert {} changed but cannot be read back", id);
    return;
  }
  changed_(**now, event);
}

void AlertBook::record(std::string_view action, std::string_view by, const store::AlertRecord& alert,
                       std::string_view source) {
  if (log_ == nullptr) return;
  nlohmann::json details = {{"title", alert.title}, {"severity", alert.severity}};
  if (!alert.organisation_id.empty()) details["organisation"] = alert.organisation_id;
  events::SecurityEvent e{std::string(by),
                          std::string(action),
                          "alert:" + alert.id,
                          events::Outcome::success,
                          source.empty() ? std::string("local") : std::string(source),
                          std::move(details)};
  if (auto st = log_->append(e); !st) spdlog::error("security log: {}", st.error().message);
}

nlohmann::json to_json(const store::AlertRecord& a) {
  return {{"id", a.id},
          {"organisation", a.organisation_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.organisation_id)},
          {"source", a.source},
          {"key", a.key},
          {"device", a.device_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.device_id)},
          {"rule", a.rule_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.rule_id)},
          {"severity", a.severity},
          {"title", a.title},
          {"summary", a.summary},
          {"status", a.status},
          {"occurrences", a.occurrences},
          {"opened_at", format_utc_millis(from_unix_millis(a.opened_at))},
          {"last_raised_at", format_utc_millis(from_unix_millis(a.last_raised_at))},
          {"acknowledged_at", time_or_null(a.acknowledged_at)},
          {"acknowledged_by", a.acknowledged_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.acknowledged_by)},
          {"resolved_at", time_or_null(a.resolved_at)},
          {"resolved_by", a.resolved_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.resolved_by)}};
}

}  // namespace torii::alerts

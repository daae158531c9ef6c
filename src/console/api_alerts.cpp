// The console API (api.h), alerts (JPCERT VIII-1, VIII-2): listing them, one alert, and a
// person's acknowledging and resolving (alerts/alert_book.h keeps them; the book records
// alert.acknowledged and alert.resolved in the security log).
//
// Who sees which: a caller sees their organisation's alerts; the installation-wide ones
// (no organisation: a burst of failed sign-ins, a WAF block) and every organisation's only
// a role that spans organisations (the system administrator), as the security log does,
// who may also narrow the list with ?organisation=. Another organisation's alert is 404, as
// an unknown one is (JPCERT I-9).
#include <algorithm>
#include <charconv>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "alerts/alert_book.h"
#include "console/api_internal.h"

namespace torii::console::api {

using identity::Permission;

namespace {

constexpr std::size_t kDefaultAlertsListed = 100;

Response alerts_unavailable() { return problem(503, "unavailable", "Alerts are not available on this server"); }

// The caller's scope; nullopt when they named an organisation they may not see.
std::optional<alerts::Scope> alert_scope(const Call& call) {
  auto organisation = organisation_scope(call);
  if (!organisation) return std::nullopt;
  const bool named = !query_parameter(call.request.query, "organisation").value_or("").empty();
  if (identity::role_spans_organisations(call.caller->user.role) && !named) return alerts::Scope::everything();
  return alerts::Scope{*organisation};
}

bool plain_id(std::string_view text) {
  if (text.empty() || text.size() > 128) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

// The list's filters; every problem reported.
store::AlertRepository::Query read_alert_query(const Call& call, std::vector<FieldProblem>& problems) {
  store::AlertRepository::Query q;
  q.limit = kDefaultAlertsListed;
  const auto param = [&](std::string_view name) { return query_parameter(call.request.query, name).value_or(""); };
  for (const auto& one : query_list(call.request.query, "status").value_or(std::vector<std::string>{})) {
    if (one == store::kAlertOpen || one == store::kAlertAcknowledged || one == store::kAlertResolved) {
      q.statuses.push_back(one);
    } else {
      problems.push_back({"status", "invalid", "open, acknowledged or resolved, separated by commas"});
      break;
    }
  }
  q.device_id = param("device");
  if (!q.device_id.empty() && !plain_id(q.device_id)) problems.push_back({"device", "invalid", "a device id"});
  q.severity = param("severity");
  if (!q.severity.empty() && q.severity != "info" && q.severity != "warning" && q.severity != "critical") {
    problems.push_back({"severity", "invalid", "info, warning or critical"});
  }
  if (const std::string limit = param("limit"); !limit.empty()) {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), n);
    if (ec != std::errc() || end != limit.data() + limit.size() || n < 1 || n > alerts::kMaxAlertsListed) {
      problems.push_back({"limit", "invalid", fmt::format("a number from 1 to {}", alerts::kMaxAlertsListed)});
    } else {
      q.limit = n;
    }
  }
  if (const std::string before = param("before"); !before.empty()) {
    q.before = parse_utc_millis(before);
    if (!q.before) problems.push_back({"before", "invalid", "a UTC time such as 2027-01-31T00:00:00Z"});
  }
  return q;
}

asio::awaitable<Response> list_alerts(ApiState& s, Call& call) {
  if (s.ctx.alerts == nullptr) co_return alerts_unavailable();
  std::vector<FieldProblem> problems;
  auto query = read_alert_query(call, problems);
  if (!problems.empty()) co_return invalid_input(problems, 400);
  auto scope = alert_scope(call);
  if (!scope) co_return problem(403, "forbidden", "You may not act on that organisation");
  auto listed = s.ctx.alerts->list(query, *scope);
  if (!listed) co_return internal_error(listed.error());
  json out = json::array();
  for (const auto& a : *listed) out.push_back(alerts::to_json(a));
  // The next page: the alerts opened before the last one listed.
  const json next = listed->size() == query.limit && !listed->empty() ? json(iso(listed->back().opened_at)) : json();
  co_return json_response(200, {{"alerts", std::move(out)},
                                {"organisation", scope->organisation ? json(*scope->organisation) : json()},
                                {"next_before", next}});
}

asio::awaitable<Response> show_alert(ApiState& s, Call& call) {
  if (s.ctx.alerts == nullptr) co_return alerts_unavailable();
  auto scope = alert_scope(call);
  if (!scope) co_return problem(403, "forbidden", "You may not act on that organisation");
  auto found = s.ctx.alerts->find(call.params["id"], *scope);
  if (!found) co_return internal_error(found.error());
  if (!*found) co_return problem(404, "not_found", "No such alert");
  co_return json_response(200, alerts::to_json(**found));
}

// POST .../acknowledge and .../resolve: the alert as it is now, 404 outside the caller's
// scope, 409 when it is past that step.
asio::awaitable<Response> change_alert(ApiState& s, Call& call, bool resolve) {
  if (s.ctx.alerts == nullptr) co_return alerts_unavailable();
  auto scope = alert_scope(call);
  if (!scope) co_return problem(403, "forbidden", "You may not act on that organisation");
  const std::string& id = call.params["id"];
  const std::string by = "user:" + call.caller->user.id;
  auto done = resolve ? s.ctx.alerts->resolve(id, by, *scope, call.origin.source)
                      : s.ctx.alerts->acknowledge(id, by, *scope, call.origin.source);
  if (!done) co_return internal_error(done.error());
  if (*done == alerts::Transition::not_found) co_return problem(404, "not_found", "No such alert");
  if (*done == alerts::Transition::already) {
    co_return resolve ? problem(409, "already_resolved", "The alert is already resolved")
                      : problem(409, "not_open", "Only an open alert can be acknowledged");
  }
  auto found = s.ctx.alerts->find(id, *scope);
  if (!found) co_return internal_error(found.error());
  if (!*found) co_return problem(404, "not_found", "No such alert");
  co_return json_response(200, alerts::to_json(**found));
}

asio::awaitable<Response> acknowledge_alert(ApiState& s, Call& call) {
  co_return co_await change_alert(s, call, false);
}

asio::awaitable<Response> resolve_alert(ApiState& s, Call& call) { co_return co_await change_alert(s, call, true); }

}  // namespace

void add_alert_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/alerts", Access::full, Permission::alerts_read, {}, false, list_alerts},
      {"GET", "/api/v1/alerts/{id}", Access::full, Permission::alerts_read, {}, false, show_alert},
      {"POST",
       "/api/v1/alerts/{id}/acknowledge",
       Access::full,
       Permission::alerts_manage,
       {},
       false,
       acknowledge_alert},
      {"POST", "/api/v1/alerts/{id}/resolve", Access::full, Permission::alerts_manage, {}, false, resolve_alert},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

// The console API (api.h), security: reading and verifying the security log (JPCERT III-1,
// VII-2; alerts have their own model, api_alerts.cpp), and the second factor's end of life:
// turning one's own TOTP off, an administrator's reset of someone's, new recovery codes
// (JPCERT I-4).
//
// Who sees which events (events/log_reader.h): the system administrator every event, or
// one organisation's with ?organisation=; anyone else only their own organisation's (events
// the console marked with it, and events whose actor or object is one of its people or
// devices); ?alert=true keeps the events marked "alert". Reading and verifying run on the
// WorkPool: they read files.
#include <fmt/format.h>

#include <charconv>
#include <string>
#include <vector>

#include "console/api_internal.h"
#include "console/work_pool.h"
#include "events/log_reader.h"
#include "events/log_verify.h"

namespace torii::console::api {

using identity::Permission;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A query parameter percent-decoded ('+' is a space); nullopt for a bad escape.
std::optional<std::string> decoded(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '+') {
      out.push_back(' ');
    } else if (raw[i] == '%') {
      if (i + 2 >= raw.size()) return std::nullopt;
      const int hi = hex_value(raw[i + 1]);
      const int lo = hex_value(raw[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(raw[i]);
    }
  }
  return out;
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

// The filters of GET /api/v1/security-log; every problem reported.
events::LogQuery read_log_query(const Call& call, std::vector<FieldProblem>& problems) {
  events::LogQuery q;
  const auto param = [&](std::string_view name) -> std::string {
    auto raw = query_parameter(call.request.query, name);
    if (!raw) return {};
    auto value = decoded(*raw);
    if (!value) {
      problems.push_back({std::string(name), "invalid", "a malformed percent escape"});
      return {};
    }
    if (value->size() > 256) {
      problems.push_back({std::string(name), "too_long", "at most 256 bytes"});
      return {};
    }
    return *value;
  };
  for (const auto* name : {"from", "to"}) {
    const std::string text = param(name);
    if (text.empty()) continue;
    auto when = parse_utc_millis(text);
    if (!when) problems.push_back({name, "invalid", "a UTC time such as 2027-01-31T00:00:00Z"});
    (std::string_view(name) == "from" ? q.from : q.to) = when;
  }
  q.actor = param("actor");
  q.action_prefix = param("action");
  q.outcome = param("outcome");
  if (!q.outcome.empty() && q.outcome != "success" && q.outcome != "failure" && q.outcome != "denied") {
    problems.push_back({"outcome", "invalid", "success, failure or denied"});
  }
  q.text = param("q");
  if (q.text.size() > events::kMaxLogSearchBytes) {
    problems.push_back({"q", "too_long", fmt::format("at most {} bytes", events::kMaxLogSearchBytes)});
  }
  const std::string alert = param("alert");
  if (alert == "true" || alert == "1") {
    q.alerts_only = true;
  } else if (!alert.empty() && alert != "false" && alert != "0") {
    problems.push_back({"alert", "invalid", "true or false"});
  }
  if (const std::string limit = param("limit"); !limit.empty()) {
    auto n = parse_number(limit);
    if (!n || *n < 1 || *n > events::kMaxLogPage) {
      problems.push_back({"limit", "invalid", fmt::format("a number from 1 to {}", events::kMaxLogPage)});
    } else {
      q.limit = static_cast<std::size_t>(*n);
    }
  }
  if (const std::string before = param("before_seq"); !before.empty()) {
    auto n = parse_number(before);
    if (!n || *n < 1) {
      problems.push_back({"before_seq", "invalid", "a seq from a previous page's next_before_seq"});
    } else {
      q.before_seq = n;
    }
  }
  return q;
}

// The organisation's people and devices, as the log names them.
Result<events::LogScope> organisation_scope_of(ApiState& s, const std::string& organisation, bool people) {
  events::LogScope scope;
  if (people) {
    scope.organisation = organisation;
    auto users = s.ctx.store.users().list(organisation);
    if (!users) return tl::unexpected(users.error());
    for (const auto& u : *users) scope.principals.insert("user:" + u.id);
  }
  auto devices = s.ctx.store.devices().list(organisation);
  if (!devices) return tl::unexpected(devices.error());
  for (const auto& d : *devices) scope.principals.insert("device:" + d.id);
  return scope;
}

json event_json(const events::LoggedEvent& e) {
  return {{"seq", e.seq},       {"ts", e.ts},           {"actor", e.actor},   {"action", e.action},
          {"object", e.object}, {"outcome", e.outcome}, {"source", e.source}, {"details", e.details}};
}

Response log_unavailable() {
  Response r = problem(503, "log_unavailable", "The security log cannot be read here");
  r.set("Retry-After", "60");
  return r;
}

// Reads one page of the log for the caller: every event of their organisation's scope.
asio::awaitable<Response> security_log(ApiState& s, Call& call) {
  std::vector<FieldProblem> problems;
  events::LogQuery query = read_log_query(call, problems);
  if (!problems.empty()) co_return invalid_input(problems, 400);
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  const bool named = !query_parameter(call.request.query, "organisation").value_or("").empty();
  const bool everything = identity::role_spans_organisations(call.caller->user.role) && !named;
  if (!everything) {
    auto scope = organisation_scope_of(s, *organisation, true);
    if (!scope) co_return internal_error(scope.error());
    query.scope = std::move(*scope);
  }
  if (s.ctx.security_log_dir.empty()) co_return log_unavailable();
  auto job = [dir = s.ctx.security_log_dir, query] { return events::read_log(dir, query); };
  auto page = co_await s.ctx.work.run(std::move(job));
  if (!page) co_return busy();
  if (!*page && page->error().is(Errc::not_found)) co_return log_unavailable();
  if (!*page) co_return internal_error(page->error());
  json out = json::array();
  for (const auto& e : (*page)->events) out.push_back(event_json(e));
  co_return json_response(200,
                          {{"events", out},
                           {"organisation", everything ? json(nullptr) : json(*organisation)},
                           {"next_before_seq", (*page)->next_before_seq ? json(*(*page)->next_before_seq) : json()},
                           {"scan_limit_reached", (*page)->scan_limit_reached}});
}

// JPCERT VII-2: anyone who may read the log may check that it was not altered. The log is
// one for the whole installation, so its size (files, lines, seqs) is told only to the
// system administrator; everyone gets the verdict and the first problem, which names a file
// and a line, never an event's content.
asio::awaitable<Response> verify(ApiState& s, Call& call) {
  if (s.ctx.security_log_dir.empty() || s.ctx.security_log_public_key.empty()) co_return log_unavailable();
  auto job = [dir = s.ctx.security_log_dir, key = s.ctx.security_log_public_key] {
    return events::verify_log(dir, key);
  };
  auto report = co_await s.ctx.work.run(std::move(job));
  if (!report) co_return busy();
  if (!*report && report->error().is(Errc::not_found)) co_return log_unavailable();
  if (!*report) co_return internal_error(report->error());
  const auto& r = **report;
  json out = {{"ok", r.ok},
              {"last_checkpoint_ts", r.last_checkpoint_ts ? json(*r.last_checkpoint_ts) : json()},
              {"lines_after_last_checkpoint", r.unsigned_tail_lines},
              {"starts_after_retention", r.starts_after_retention},
              {"first_problem", json()}};
  if (!r.problems.empty()) {
    const auto& p = r.problems.front();
    out["first_problem"] = {{"file", p.file}, {"line", p.line}, {"what", p.what}};
  }
  if (identity::role_spans_organisations(call.caller->user.role)) {
    out["files"] = r.files;
    out["lines"] = r.lines;
    out["checkpoints"] = r.checkpoints;
    out["problems"] = r.problems.size();
    out["first_seq"] = r.first_seq ? json(*r.first_seq) : json();
    out["last_seq"] = r.last_seq ? json(*r.last_seq) : json();
    out["last_checkpoint_seq"] = r.checkpoints > 0 && r.last_seq ? json(*r.last_seq - r.unsigned_tail_lines) : json();
  }
  co_return json_response(200, out);
}

asio::awaitable<Response> disable_totp(ApiState& s, Call& call) {
  if (auto st = s.ctx.accounts.disable_totp(*call.caller, call.origin); !st) {
    if (st.error().is(Errc::conflict)) co_return problem(409, "second_factor_required", st.error().message);
    if (st.error().is(Errc::not_found)) co_return problem(409, "not_enrolled", st.error().message);
    co_return internal_error(st.error());
  }
  co_return no_content();
}

asio::awaitable<Response> reset_totp(ApiState& s, Call& call) {
  if (auto st = s.ctx.accounts.reset_second_factor(*call.caller, call.params["id"], call.origin); !st) {
    if (st.error().is(Errc::not_found)) co_return problem(404, "not_found", "No such person");
    if (st.error().is(Errc::conflict)) co_return problem(409, "conflict", st.error().message);
    co_return internal_error(st.error());
  }
  co_return no_content();
}

asio::awaitable<Response> new_recovery_codes(ApiState& s, Call& call) {
  auto codes = s.ctx.accounts.regenerate_recovery_codes(*call.caller, call.origin);
  if (!codes && codes.error().is(Errc::not_found)) co_return problem(409, "not_enrolled", codes.error().message);
  if (!codes) co_return internal_error(codes.error());
  co_return json_response(200, {{"recovery_codes", *codes}});
}

}  // namespace

void add_security_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/security-log", Access::full, Permission::security_log_read, {}, false, security_log},
      {"GET", "/api/v1/security-log/verify", Access::full, Permission::security_log_read, {}, false, verify},
      {"DELETE", "/api/v1/account/totp", Access::full, Permission::account_self, {}, false, disable_totp, true},
      {"POST",
       "/api/v1/account/recovery-codes",
       Access::full,
       Permission::account_self,
       {},
       false,
       new_recovery_codes,
       true},
      {"DELETE", "/api/v1/users/{id}/totp", Access::full, Permission::users_write, {}, false, reset_totp, true},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

// The console API's request chain (api.h) and what its handlers share (api_internal.h).
// The handlers live by area in api_<area>.cpp: session, people, roles, tokens, devices,
// telemetry, security (log, alerts, second factor) and settings.
#include "console/api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "console/api_internal.h"
#include "console/assets.h"
#include "console/request_checks.h"
#include "console/settings.h"
#include "console/waf.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "identity/roles.h"

namespace torii::console {

using api::json;
namespace asio = boost::asio;

std::string csrf_token(std::string_view session_id) { return crypto::token_hash("torii console csrf", session_id); }

namespace api {

using identity::Permission;

namespace {

// Sent with every answer. The API serves JSON only, so its policy allows nothing at all.
constexpr std::array<std::pair<std::string_view, std::string_view>, 8> kSecurityHeaders = {{
    {"Strict-Transport-Security", "max-age=63072000; includeSubDomains"},
    {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cache-Control", "no-store"},
    {"Cross-Origin-Opener-Policy", "same-origin"},
    {"Cross-Origin-Resource-Policy", "same-origin"},
}};

bool is_state_change(std::string_view method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

}  // namespace

Response json_response(int status, const json& body) { return json_text_response(status, body.dump()); }

Response json_text_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.set("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

Response problem(int status, std::string_view code, std::string_view title, const json& extra) {
  json body = {
      {"type", fmt::format("urn:torii:problem:{}", code)}, {"title", title}, {"status", status}, {"code", code}};
  for (const auto& [k, v] : extra.items()) body[k] = v;
  Response r;
  r.status = status;
  r.set("Content-Type", "application/problem+json");
  r.body = body.dump();
  return r;
}

Response invalid_input(const std::vector<FieldProblem>& problems, int status) {
  json errors = json::array();
  for (const auto& p : problems) errors.push_back({{"field", p.field}, {"code", p.code}, {"message", p.message}});
  return problem(status, "invalid_input", "Some fields are not acceptable", {{"errors", errors}});
}

Response invalid_input(const std::vector<identity::FieldProblem>& problems) {
  std::vector<FieldProblem> out;
  out.reserve(problems.size());
  for (const auto& p : problems) out.push_back({p.field, p.code, p.message});
  return invalid_input(out);
}

Response internal_error(const Error& error) {
  spdlog::error("console: {}", error.message);
  return problem(500, "internal", "The request could not be completed");
}

Response busy() {
  Response r = problem(503, "busy", "The server is busy; try again shortly");
  r.set("Retry-After", "1");
  return r;
}

Response no_content() {
  Response r;
  r.status = 204;
  return r;
}

std::string session_cookie(std::string_view id) {
  return fmt::format("{}={}; Path=/; Secure; HttpOnly; SameSite=Strict", kSessionCookie, id);
}

std::string clear_session_cookie() {
  return fmt::format("{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0", kSessionCookie);
}

json user_json(const store::UserRecord& u) {
  return {{"id", u.id},
          {"username", u.username},
          {"email", u.email},
          {"role", u.role},
          {"organisation", u.organisation_id},
          {"second_factor", u.totp_enabled}};
}

std::string iso(UnixMillis ms) { return format_utc_millis(from_unix_millis(ms)); }

std::optional<std::string> organisation_scope(const Call& call) {
  const auto& user = call.caller->user;
  const std::string named = query_parameter(call.request.query, "organisation").value_or("");
  if (named.empty() || named == user.organisation_id) return user.organisation_id;
  if (identity::spans_organisations(*call.caller)) return named;
  return std::nullopt;
}

ApiState::ApiState(ApiContext c) : ctx(std::move(c)), roles(ctx.store, ctx.clock, ctx.events), settings(ctx.config) {
  // The server refuses to start on overrides it cannot apply (server.cpp), so this only
  // falls back to the file where no server checked first.
  if (auto in_force = settings_in_force(ctx.config, ctx.store); !in_force) {
    spdlog::error("console: the stored settings cannot be read: {}", in_force.error().message);
  } else if (!in_force->ok()) {
    spdlog::error("console: the stored settings are not valid; the configuration file's are used:\n{}",
                  config::format_problems(in_force->problems));
  } else {
    settings = std::move(in_force->config);
  }
  settings_at_start = settings;
}

void ApiState::emit(const identity::Caller* caller, std::string action, std::string object, events::Outcome outcome,
                    const identity::Origin& origin, json details) const {
  if (!ctx.events) return;
  if (caller != nullptr) details = identity::attributed(*caller, std::move(details));
  // Whose record this is: the organisation of the person acting, so that organisation's
  // auditors read it (events/log_reader.h).
  if (caller != nullptr && !details.contains("organisation")) details["organisation"] = caller->user.organisation_id;
  ctx.events({caller ? "user:" + caller->user.id : "anonymous", std::move(action), std::move(object), outcome,
              origin.source, std::move(details)});
}

bool ApiState::allow_attempt(const std::string& address) {
  const double per_minute = settings.console_http.sign_in_attempts_per_minute;
  if (attempts.size() > 10000) attempts.clear();
  auto it = attempts.try_emplace(address, per_minute / 60.0, per_minute).first;
  return it->second.try_take(1, policy::TokenBucket::Clock::now());
}

std::optional<std::chrono::seconds> ApiState::throttle_user(const identity::Caller& caller,
                                                            const identity::Origin& origin) {
  const double per_minute = settings.console_http.requests_per_minute_per_user;
  const auto now = policy::TokenBucket::Clock::now();
  // Bounded: forgetting every bucket at worst gives people a fresh minute, never less.
  if (user_requests.size() > 10000) user_requests.clear();
  auto& limit =
      user_requests.try_emplace(caller.user.id, UserRequests{policy::TokenBucket(per_minute / 60.0, per_minute), {}})
          .first->second;
  if (limit.bucket.try_take(1, now)) return std::nullopt;
  if (!limit.last_event || now - *limit.last_event >= std::chrono::minutes(1)) {
    limit.last_event = now;
    emit(&caller, "console.user_throttled", "user:" + caller.user.id, events::Outcome::denied, origin,
         {{"requests_per_minute", settings.console_http.requests_per_minute_per_user}});
  }
  const auto wait = std::chrono::ceil<std::chrono::seconds>(limit.bucket.time_to_available(1, now));
  return std::max(wait, std::chrono::seconds(1));
}

Response ApiState::session_answer(int status, const identity::SessionTicket& ticket, const store::UserRecord& user,
                                  json extra) const {
  json body = {{"stage", ticket.session.stage}, {"csrf_token", csrf_token(ticket.id)}, {"user", user_json(user)}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  Response r = json_response(status, body);
  r.set("Set-Cookie", session_cookie(ticket.id));
  return r;
}

Response ApiState::sign_in_answer(const Result<identity::SignInResult>& result, const store::UserRecord* user) const {
  if (!result) return internal_error(result.error());
  switch (result->status) {
    case identity::SignInStatus::signed_in: {
      if (user != nullptr) return session_answer(200, *result->ticket, *user);
      auto found = ctx.store.users().find(result->ticket->session.user_id);
      if (!found || !*found) return internal_error(found ? Error{{}, "user vanished"} : found.error());
      return session_answer(200, *result->ticket, **found);
    }
    case identity::SignInStatus::refused:
      return problem(401, "invalid_credentials", "The user name, password or code is not correct");
    case identity::SignInStatus::locked: {
      Response r = problem(429, "account_locked",
                           fmt::format("Too many failed attempts: signing in is locked for {} more seconds",
                                       result->retry_after.count()),
                           {{"retry_after_seconds", result->retry_after.count()}});
      r.set("Retry-After", std::to_string(result->retry_after.count()));
      return r;
    }
    case identity::SignInStatus::disabled:
      return problem(403, "account_disabled", "This account is disabled or has ended; ask an administrator");
  }
  return problem(401, "invalid_credentials", "The user name, password or code is not correct");
}

namespace {

// The request chain (api.h) in front of every handler.
asio::awaitable<Response> dispatch(ApiState& s, const std::vector<Route>& routes, Request& request) {
  if (s.ctx.waf != nullptr) {
    const auto colon = request.source.rfind(':');
    const auto port = static_cast<std::uint16_t>(std::strtoul(request.source.c_str() + colon + 1, nullptr, 10));
    const auto inspect = [&s, &request, port] {
      return s.ctx.waf->inspect(request, address_of(request.source), port, "0.0.0.0", 0);
    };
    // On the firewall's own threads when there are some: the request stays untouched here
    // until the verdict is back. When they are all taken and too many wait, the request is
    // not served uninspected: it is answered busy.
    std::optional<WafVerdict> verdict;
    if (s.ctx.waf_work != nullptr) {
      verdict = co_await s.ctx.waf_work->run(inspect);
    } else {
      verdict = inspect();
    }
    if (!verdict) co_return busy();
    if (verdict->blocked) {
      // An alert: someone is probing the console (JPCERT VIII-2). The rule messages say
      // what matched; the request's contents stay out of the log.
      s.emit(
          nullptr, "waf.blocked", request.path.substr(0, 128), events::Outcome::denied, {request.source, ""},
          {{"rules", verdict->rule_ids}, {"message", verdict->message}, {"status", verdict->status}, {"alert", true}});
      co_return problem(verdict->status == 0 ? 403 : verdict->status, "blocked",
                        "The request was refused by the web application firewall");
    }
  }
  if (s.ctx.assets != nullptr && request.path != "/api" && !request.path.starts_with("/api/")) {
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = problem(405, "method_not_allowed", "The console's pages are only read (GET, HEAD)");
      r.set("Allow", "GET, HEAD");
      co_return r;
    }
    const auto* file = s.ctx.assets->find(request.path);
    if (file == nullptr) co_return problem(404, "not_found", "No such resource");
    co_return asset_response(*file, request.method, request.header("if-none-match"));
  }
  std::map<std::string, std::string> params;
  const Route* route = nullptr;
  std::vector<std::string_view> allowed;
  for (const auto& r : routes) {
    std::map<std::string, std::string> p;
    if (!match_route(r.pattern, request.path, p)) continue;
    if (r.method == request.method) {
      route = &r;
      params = std::move(p);
      break;
    }
    allowed.push_back(r.method);
  }
  if (route == nullptr && allowed.empty()) co_return problem(404, "not_found", "No such resource");
  if (route == nullptr) {
    Response r = problem(405, "method_not_allowed", "This resource does not support that method");
    std::string allow;
    for (auto m : allowed) allow += allow.empty() ? std::string(m) : fmt::format(", {}", m);
    r.set("Allow", allow);
    co_return r;
  }

  // RFC 6750 §5.3: never in a URL. Refused even on routes that take no token, so the
  // mistake shows at once; the token is in logs and histories now and should be revoked.
  if (query_carries_token(request.query)) {
    co_return problem(400, "token_in_url",
                      "Send API tokens in the Authorization header (Bearer), never in the URL; revoke this one");
  }
  Call call{request, std::nullopt, {}, std::move(params), {}, {}, {request.source, ""}};
  if (auto ua = request.header("user-agent")) call.origin.user_agent = std::string(ua->substr(0, 256));

  if (route->limited && !s.allow_attempt(address_of(request.source))) {
    s.emit(nullptr, "console.throttled", std::string(route->pattern), events::Outcome::denied, call.origin);
    Response r = problem(429, "too_many_attempts", "Too many attempts from this address; wait a minute");
    r.set("Retry-After", "60");
    co_return r;
  }
  const bool changes = is_state_change(request.method);
  if (changes && !same_origin(request)) {
    s.emit(nullptr, "console.cross_origin_refused", std::string(route->pattern), events::Outcome::denied, call.origin);
    co_return problem(403, "cross_origin", "Cross-origin requests are not accepted");
  }
  // A body is JSON; only a route whose members are all optional may be called without one.
  const bool may_omit_body = std::ranges::none_of(route->body, [](const FieldSpec& f) { return f.required; });
  if (changes && !route->body.empty() && !(may_omit_body && request.body.empty())) {
    auto type = request.header("content-type");
    if (!type || !(type->starts_with("application/json"))) {
      co_return problem(415, "unsupported_media_type", "Send the body as application/json");
    }
  }

  if (route->access != Access::anyone) {
    auto bearer = bearer_token(request);
    std::optional<std::string> id;
    if (!bearer) id = cookie_value(request, kSessionCookie);
    if (bearer) {
      // JPCERT I-10: an integration's token instead of a session. No cookie is involved, so
      // no CSRF token either: a browser never adds this header to a cross-site request.
      auto caller = s.ctx.tokens.resolve(*bearer, call.origin);
      if (!caller) co_return internal_error(caller.error());
      call.caller = std::move(*caller);
    } else if (id) {
      auto caller = s.ctx.accounts.resolve_session(*id);
      if (!caller) co_return internal_error(caller.error());
      call.caller = std::move(*caller);
      call.session_id = std::move(*id);
    }
    if (!call.caller) {
      Response r = problem(401, "unauthenticated", bearer ? "The API token is not valid" : "Sign in first");
      if (bearer) r.set("WWW-Authenticate", R"(Bearer error="invalid_token")");
      if (id) r.set("Set-Cookie", clear_session_cookie());
      co_return r;
    }
    if (auto wait = s.throttle_user(*call.caller, call.origin)) {
      Response r = problem(429, "too_many_requests", "Too many requests from your account; slow down",
                           {{"retry_after_seconds", wait->count()}});
      r.set("Retry-After", std::to_string(wait->count()));
      co_return r;
    }
    // A token manages no account, session or token, and cannot stand in for the recent proof
    // of a person that step-up asks for.
    if (call.caller->token && (route->access != Access::full || !route->permission ||
                               *route->permission == Permission::account_self || route->sensitive)) {
      s.emit(&*call.caller, "access.denied", std::string(route->pattern), events::Outcome::denied, call.origin,
             {{"reason", "not for API tokens"}});
      co_return problem(403, "token_not_allowed", "This request needs a signed-in person, not an API token");
    }
    const auto& stage = call.caller->session.stage;
    const bool stage_ok = call.caller->token.has_value() || route->access == Access::any_session ||
                          (route->access == Access::second_factor && stage == store::kSessionStageSecondFactor) ||
                          (route->access == Access::enrolling &&
                           (stage == store::kSessionStageEnrol || stage == store::kSessionStageFull)) ||
                          (route->access == Access::full && stage == store::kSessionStageFull);
    if (!stage_ok) {
      if (stage == store::kSessionStageEnrol) {
        co_return problem(403, "second_factor_enrolment_required", "Enrol a second factor (TOTP) first");
      }
      if (stage == store::kSessionStageSecondFactor) {
        co_return problem(401, "second_factor_required", "Enter the code from your authenticator first");
      }
      co_return problem(409, "wrong_stage", "This session has already passed that step");
    }
    if (changes && !call.caller->token) {
      auto token = request.header(kCsrfHeader);
      const std::string expected = csrf_token(call.session_id);
      if (!token || !crypto::equal_constant_time(as_bytes(*token), as_bytes(expected))) {
        s.emit(&*call.caller, "console.csrf_refused", std::string(route->pattern), events::Outcome::denied,
               call.origin);
        co_return problem(403, "csrf", "The request's CSRF token is missing or wrong");
      }
    }
    if (route->permission && !call.caller->permissions.has(*route->permission)) {
      s.emit(&*call.caller, "access.denied", std::string(route->pattern), events::Outcome::denied, call.origin,
             {{"permission", identity::to_string(*route->permission)}, {"role", call.caller->user.role}});
      co_return problem(403, "forbidden", "Your role does not allow this");
    }
    // JPCERT I-10: a token holds only what it was given, of what the role still grants.
    if (route->permission && !identity::ApiTokens::in_scope(*call.caller, *route->permission)) {
      s.emit(&*call.caller, "access.denied", std::string(route->pattern), events::Outcome::denied, call.origin,
             {{"permission", identity::to_string(*route->permission)}, {"reason", "not in the token's scope"}});
      co_return problem(403, "forbidden", "This API token does not allow this");
    }
    if (route->sensitive && !s.ctx.accounts.recently_authenticated(*call.caller)) {
      co_return problem(403, "step_up_required",
                        "Confirm your password or a code first (POST /api/v1/session/step-up), then repeat this");
    }
  }
  if (auto problems = read_json_fields(request.body, route->body, call.fields, call.lists); !problems.empty()) {
    co_return invalid_input(problems, 400);
  }
  co_return co_await route->handler(s, call);
}

}  // namespace

}  // namespace api

struct Api::Impl {
  explicit Impl(ApiContext c) : state(std::move(c)) {
    api::add_session_routes(routes);
    api::add_people_routes(routes);
    api::add_device_routes(routes);
    api::add_command_routes(routes);
    api::add_rule_routes(routes);
    api::add_channel_routes(routes);
    api::add_role_routes(routes);
    api::add_settings_routes(routes);
    api::add_token_routes(routes);
    api::add_telemetry_routes(routes);
    api::add_security_routes(routes);
    api::add_alert_routes(routes);
  }

  api::ApiState state;
  std::vector<api::Route> routes;
};

Api::Api(ApiContext context) : impl_(std::make_unique<Impl>(std::move(context))) {}
Api::~Api() = default;

std::vector<RouteInfo> Api::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : impl_->routes) {
    std::string_view access;
    switch (r.access) {
      case api::Access::anyone: access = "anyone"; break;
      case api::Access::any_session: access = "any session"; break;
      case api::Access::second_factor: access = "second-factor stage"; break;
      case api::Access::enrolling: access = "enrol or full"; break;
      case api::Access::full: access = "signed in"; break;
    }
    out.push_back(
        {r.method, r.pattern, access, r.permission ? identity::to_string(*r.permission) : "", r.sensitive, r.body});
  }
  return out;
}

asio::awaitable<Response> Api::handle(Request request) {
  Response response = co_await api::dispatch(impl_->state, impl_->routes, request);
  for (const auto& header : api::kSecurityHeaders) {
    // The console's pages bring their own policy and caching (assets.cpp).
    const std::string_view name = header.first;
    const bool own = std::ranges::any_of(response.headers, [name](const auto& h) { return h.first == name; });
    if (!own) response.set(std::string(name), std::string(header.second));
  }
  co_return response;
}

}  // namespace torii::console

#include "console/api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "console/request_checks.h"
#include "console/waf.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "identity/roles.h"
#include "identity/setup_token.h"
#include "policy/rate_limit.h"

namespace torii::console {

namespace asio = boost::asio;
using identity::Permission;
using nlohmann::json;

std::string csrf_token(std::string_view session_id) { return crypto::token_hash("torii console csrf", session_id); }

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

// Which callers a route admits before its permission is checked.
enum class Access {
  anyone,         // no session needed (setup, sign-in)
  any_session,    // a session in any stage (who am I, sign out)
  second_factor,  // a session waiting for its second factor
  enrolling,      // a session in the enrol or full stage (TOTP enrolment)
  full,           // a fully signed-in session holding the route's permission
};

struct Call {
  Request& request;
  std::optional<identity::Caller> caller;
  std::string session_id;
  std::map<std::string, std::string> params;  // {name} segments of the route
  std::map<std::string, std::string> fields;  // the validated JSON body
  identity::Origin origin;
};

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.set("Content-Type", "application/json");
  r.body = body.dump();
  return r;
}

Response problem(int status, std::string_view code, std::string_view title, json extra = json::object()) {
  json body = {
      {"type", fmt::format("urn:torii:problem:{}", code)}, {"title", title}, {"status", status}, {"code", code}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  Response r;
  r.status = status;
  r.set("Content-Type", "application/problem+json");
  r.body = body.dump();
  return r;
}

// 422: well-formed but refused (a weak password); 400: not what the request takes.
Response invalid_input(const std::vector<FieldProblem>& problems, int status = 422) {
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

std::string session_cookie(std::string_view id) {
  return fmt::format("{}={}; Path=/; Secure; HttpOnly; SameSite=Strict", kSessionCookie, id);
}

std::string clear_session_cookie() {
  return fmt::format("{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0", kSessionCookie);
}

bool is_state_change(std::string_view method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

json user_json(const store::UserRecord& u) {
  return {{"id", u.id},
          {"username", u.username},
          {"email", u.email},
          {"role", u.role},
          {"organisation", u.organisation_id},
          {"second_factor", u.totp_enabled}};
}

std::string iso(UnixMillis ms) { return format_utc_millis(from_unix_millis(ms)); }

}  // namespace

struct Api::Impl {
  using Handler = std::function<asio::awaitable<Response>(Impl&, Call&)>;
  struct Route {
    std::string_view method;
    std::string_view pattern;  // "/api/v1/devices/{id}"
    Access access;
    std::optional<Permission> permission;
    std::vector<FieldSpec> body;
    bool limited = false;  // counts against the per-source sign-in limit
    Handler handler;
    // Needs a password or TOTP proof from the last few minutes (step-up, JPCERT I-4): what
    // a stolen session must not be enough for.
    bool sensitive = false;
  };

  explicit Impl(ApiContext c) : ctx(std::move(c)) { add_routes(); }

  ApiContext ctx;
  std::vector<Route> routes;
  std::map<std::string, policy::TokenBucket, std::less<>> attempts;  // per source address

  void emit(const identity::Caller* caller, std::string action, std::string object, events::Outcome outcome,
            const identity::Origin& origin, json details = json::object()) const {
    if (!ctx.events) return;
    ctx.events({caller ? "user:" + caller->user.id : "anonymous", std::move(action), std::move(object), outcome,
                origin.source, std::move(details)});
  }

  bool allow_attempt(const std::string& address) {
    const double per_minute = ctx.config.console_http.sign_in_attempts_per_minute;
    if (attempts.size() > 10000) attempts.clear();
    auto it = attempts.try_emplace(address, per_minute / 60.0, per_minute).first;
    return it->second.try_take(1, policy::TokenBucket::Clock::now());
  }

  Response session_answer(int status, const identity::SessionTicket& ticket, const store::UserRecord& user,
                          json extra = json::object()) {
    json body = {{"stage", ticket.session.stage}, {"csrf_token", csrf_token(ticket.id)}, {"user", user_json(user)}};
    for (auto& [k, v] : extra.items()) body[k] = v;
    Response r = json_response(status, body);
    r.set("Set-Cookie", session_cookie(ticket.id));
    return r;
  }

  Response sign_in_answer(const Result<identity::SignInResult>& result, const store::UserRecord* user) {
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

  // --- Handlers ------------------------------------------------------------------------

  asio::awaitable<Response> setup_status(Call&) {
    auto users = ctx.store.users().count();
    if (!users) co_return internal_error(users.error());
    auto pending = identity::setup_pending(ctx.store);
    if (!pending) co_return internal_error(pending.error());
    co_return json_response(200, {{"pending", *pending && *users == 0}});
  }

  asio::awaitable<Response> setup(Call& call) {
    identity::NewAdministrator request{call.fields["token"], call.fields["username"], call.fields["email"],
                                       call.fields["password"]};
    // Named before co_await: GCC 12 mishandles non-trivial temporaries in co_await operands.
    auto job = [this, request, origin = call.origin] {
      return ctx.accounts.create_first_administrator(request, origin);
    };
    auto outcome = co_await ctx.work.run(std::move(job));
    if (!outcome) co_return busy();
    if (!*outcome) co_return internal_error(outcome->error());
    if (!(*outcome)->problems.empty()) co_return invalid_input((*outcome)->problems);
    const auto& ticket = *(*outcome)->ticket;
    auto user = ctx.store.users().find(ticket.session.user_id);
    if (!user || !*user) co_return internal_error(user ? Error{{}, "user vanished"} : user.error());
    co_return session_answer(201, ticket, **user);
  }

  asio::awaitable<Response> sign_in(Call& call) {
    auto job = [this, username = call.fields["username"], password = call.fields["password"], origin = call.origin] {
      return ctx.accounts.sign_in(username, password, origin);
    };
    auto result = co_await ctx.work.run(std::move(job));
    if (!result) co_return busy();
    co_return sign_in_answer(*result, nullptr);
  }

  asio::awaitable<Response> session_info(Call& call) {
    const auto& s = call.caller->session;
    const auto& o = ctx.accounts.options();
    const UnixMillis idle_end = s.last_seen_at + o.session_idle.count() * 1000;
    const UnixMillis absolute_end = s.created_at + o.session_absolute.count() * 1000;
    co_return json_response(200, {{"stage", s.stage},
                                  {"csrf_token", csrf_token(call.session_id)},
                                  {"user", user_json(call.caller->user)},
                                  {"session",
                                   {{"handle", s.handle},
                                    {"created_at", iso(s.created_at)},
                                    {"expires_at", iso(std::min(idle_end, absolute_end))}}}});
  }

  asio::awaitable<Response> sign_out(Call& call) {
    if (auto st = ctx.accounts.sign_out(*call.caller, call.origin); !st) co_return internal_error(st.error());
    Response r;
    r.status = 204;
    r.set("Set-Cookie", clear_session_cookie());
    // Whatever the browser kept for this origin goes too (JPCERT III-4).
    r.set("Clear-Site-Data", R"("cache", "cookies", "storage")");
    co_return r;
  }

  asio::awaitable<Response> second_factor(Call& call) {
    auto result = ctx.accounts.second_factor(*call.caller, call.fields["code"], call.origin);
    if (!result && result.error().is(Errc::conflict)) {
      co_return problem(409, "wrong_stage", "This session is not waiting for a second factor");
    }
    co_return sign_in_answer(result, &call.caller->user);
  }

  asio::awaitable<Response> step_up(Call& call) {
    const std::string password = call.fields["password"];
    const std::string code = call.fields["code"];
    if (password.empty() == code.empty()) {
      co_return invalid_input(std::vector<FieldProblem>{{"", "one_of", "send either password or code"}}, 400);
    }
    auto job = [this, caller = *call.caller, password, code, origin = call.origin] {
      return ctx.accounts.step_up(caller, password, code, origin);
    };
    auto result = co_await ctx.work.run(std::move(job));
    if (!result) co_return busy();
    if (!*result) co_return internal_error(result->error());
    if ((*result)->status == identity::SignInStatus::signed_in) {
      Response r;
      r.status = 204;
      co_return r;
    }
    co_return sign_in_answer(*result, &call.caller->user);
  }

  asio::awaitable<Response> totp_begin(Call& call) {
    auto enrolment = ctx.accounts.begin_totp_enrolment(*call.caller);
    if (!enrolment && enrolment.error().is(Errc::conflict)) {
      co_return problem(409, "already_enrolled", "A second factor is already enrolled for this account");
    }
    if (!enrolment) co_return internal_error(enrolment.error());
    co_return json_response(
        200, {{"secret", enrolment->secret_base32}, {"uri", enrolment->uri}, {"qr_svg", enrolment->qr_svg}});
  }

  asio::awaitable<Response> totp_confirm(Call& call) {
    auto result = ctx.accounts.confirm_totp_enrolment(*call.caller, call.fields["code"], call.origin);
    if (!result && result.error().is(Errc::conflict)) {
      co_return problem(409, "no_enrolment", result.error().message);
    }
    if (!result) co_return internal_error(result.error());
    if (!result->problems.empty()) co_return invalid_input(result->problems);
    auto user = call.caller->user;
    user.totp_enabled = true;
    co_return session_answer(200, *result->ticket, user, {{"recovery_codes", result->recovery_codes}});
  }

  asio::awaitable<Response> change_password(Call& call) {
    auto job = [this, caller = *call.caller, current = call.fields["current_password"],
                next = call.fields["new_password"],
                origin = call.origin] { return ctx.accounts.change_password(caller, current, next, origin); };
    auto outcome = co_await ctx.work.run(std::move(job));
    if (!outcome) co_return busy();
    if (!*outcome) co_return internal_error(outcome->error());
    if (!(*outcome)->problems.empty()) co_return invalid_input((*outcome)->problems);
    co_return session_answer(200, *(*outcome)->ticket, call.caller->user);
  }

  asio::awaitable<Response> list_sessions(Call& call) {
    auto sessions = ctx.accounts.sessions(*call.caller);
    if (!sessions) co_return internal_error(sessions.error());
    json out = json::array();
    for (const auto& s : *sessions) {
      out.push_back({{"handle", s.handle},
                     {"stage", s.stage},
                     {"created_at", iso(s.created_at)},
                     {"last_seen_at", iso(s.last_seen_at)},
                     {"source", s.source},
                     {"user_agent", s.user_agent},
                     {"current", s.id_hash == call.caller->session.id_hash}});
    }
    co_return json_response(200, {{"sessions", out}});
  }

  asio::awaitable<Response> end_session(Call& call) {
    auto ended = ctx.accounts.end_session(*call.caller, call.params["handle"], call.origin);
    if (!ended) co_return internal_error(ended.error());
    if (!*ended) co_return problem(404, "not_found", "No such session");
    Response r;
    r.status = 204;
    co_return r;
  }

  asio::awaitable<Response> end_other_sessions(Call& call) {
    auto ended = ctx.accounts.sign_out_elsewhere(*call.caller, call.origin);
    if (!ended) co_return internal_error(ended.error());
    co_return json_response(200, {{"ended", *ended}});
  }

  // The organisation a request acts on: the caller's own, or for the system administrator
  // the one named in ?organisation=. nullopt (403) when anyone else names another.
  std::optional<std::string> organisation_scope(const Call& call) {
    const auto& user = call.caller->user;
    const std::string named = query_parameter(call.request.query, "organisation").value_or("");
    if (named.empty() || named == user.organisation_id) return user.organisation_id;
    if (identity::role_spans_organisations(user.role)) return named;
    return std::nullopt;
  }

  json device_json(const store::DeviceRecord& d) {
    json j = {{"id", d.id},
              {"name", d.name},
              {"organisation", d.organisation_id},
              {"profile", d.profile_id},
              {"segment", d.segment},
              {"status", d.status},
              {"created_at", iso(d.created_at)},
              {"last_seen_at", d.last_seen_at ? json(iso(*d.last_seen_at)) : json(nullptr)}};
    return j;
  }

  asio::awaitable<Response> list_devices(Call& call) {
    auto organisation = organisation_scope(call);
    if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
    auto devices = ctx.store.devices().list(*organisation);
    if (!devices) co_return internal_error(devices.error());
    json out = json::array();
    for (const auto& d : *devices) out.push_back(device_json(d));
    co_return json_response(200, {{"organisation", *organisation}, {"devices", out}});
  }

  asio::awaitable<Response> device_detail(Call& call) {
    auto device = ctx.store.devices().find(call.params["id"]);
    if (!device) co_return internal_error(device.error());
    // Another organisation's device is answered like a missing one: its existence is not
    // the caller's business (JPCERT I-9).
    const auto& user = call.caller->user;
    if (!*device ||
        ((*device)->organisation_id != user.organisation_id && !identity::role_spans_organisations(user.role))) {
      co_return problem(404, "not_found", "No such device");
    }
    json j = device_json(**device);
    auto counters = ctx.store.device_counters().find((*device)->id);
    if (!counters) co_return internal_error(counters.error());
    if (*counters) {
      j["counters"] = {{"messages", (*counters)->messages},
                       {"bytes", (*counters)->bytes},
                       {"refusals", (*counters)->refusals},
                       {"connects", (*counters)->connects}};
    }
    auto certificates = ctx.store.certificates().list_for_device((*device)->id);
    if (!certificates) co_return internal_error(certificates.error());
    json certs = json::array();
    for (const auto& c : *certificates) {
      certs.push_back({{"serial", c.serial_hex},
                       {"not_after", iso(c.not_after)},
                       {"revoked", c.revoked_at.has_value()},
                       {"fingerprint_sha256", c.fingerprint_sha256}});
    }
    j["certificates"] = certs;
    co_return json_response(200, j);
  }

  // --- People and organisations ------------------------------------------------------------

  json person_json(const store::UserRecord& u) {
    json j = user_json(u);
    j["status"] = u.status;
    j["created_at"] = iso(u.created_at);
    j["last_login_at"] = u.last_login_at ? json(iso(*u.last_login_at)) : json(nullptr);
    j["expires_at"] = u.expires_at ? json(iso(*u.expires_at)) : json(nullptr);
    j["locked"] = u.locked_until > to_unix_millis(ctx.clock.now());
    j["has_password"] = u.password_hash != identity::kNoPassword;
    return j;
  }

  // The one-time link a person opens to set their password; the token rides in the
  // fragment, which browsers never send to a server.
  json link_json(const identity::PasswordLink& link) {
    return {{"password_link", fmt::format("{}/password#{}", ctx.public_url, link.token)},
            {"token", link.token},
            {"expires_at", iso(link.expires_at)}};
  }

  // An optional date member: absent, "" (none) or an RFC 3339 UTC time.
  static std::optional<std::optional<UnixMillis>> read_date(const Call& call, std::string_view name,
                                                            std::vector<FieldProblem>& problems) {
    auto it = call.fields.find(std::string(name));
    if (it == call.fields.end()) return std::nullopt;
    if (it->second.empty()) return std::optional<UnixMillis>{};
    auto parsed = parse_utc_millis(it->second);
    if (!parsed) {
      problems.push_back({std::string(name), "invalid", "must be a date such as 2027-01-31T00:00:00Z"});
      return std::nullopt;
    }
    return std::optional<UnixMillis>{*parsed};
  }

  static Response person_error(const Error& e) {
    if (e.is(Errc::not_found)) return problem(404, "not_found", "No such person");
    if (e.is(Errc::permission_denied)) return problem(403, "forbidden", "You may not act on that organisation");
    if (e.is(Errc::conflict)) return problem(409, "conflict", e.message);
    return internal_error(e);
  }

  asio::awaitable<Response> list_people(Call& call) {
    auto people = ctx.people.list(*call.caller, query_parameter(call.request.query, "organisation").value_or(""));
    if (!people) co_return person_error(people.error());
    json out = json::array();
    for (const auto& p : *people) out.push_back(person_json(p));
    co_return json_response(200, {{"people", out}});
  }

  asio::awaitable<Response> show_person(Call& call) {
    auto person = ctx.people.find(*call.caller, call.params["id"]);
    if (!person) co_return person_error(person.error());
    co_return json_response(200, person_json(*person));
  }

  asio::awaitable<Response> create_person(Call& call) {
    std::vector<FieldProblem> problems;
    identity::NewPerson person{call.fields["organisation"], call.fields["username"], call.fields["email"],
                               call.fields["role"], std::nullopt};
    if (auto date = read_date(call, "expires_at", problems)) person.expires_at = *date;
    if (!problems.empty()) co_return invalid_input(problems);
    auto outcome = ctx.people.create(*call.caller, person, call.origin);
    if (!outcome) co_return person_error(outcome.error());
    if (!outcome->problems.empty()) co_return invalid_input(outcome->problems);
    json body = person_json(*outcome->person);
    body.update(link_json(*outcome->link));
    co_return json_response(201, body);
  }

  asio::awaitable<Response> change_person(Call& call) {
    std::vector<FieldProblem> problems;
    identity::PersonChanges changes;
    if (call.fields.contains("role")) changes.role = call.fields["role"];
    if (call.fields.contains("email")) changes.email = call.fields["email"];
    if (call.fields.contains("status")) changes.status = call.fields["status"];
    changes.expires_at = read_date(call, "expires_at", problems);
    if (!problems.empty()) co_return invalid_input(problems);
    auto outcome = ctx.people.change(*call.caller, call.params["id"], changes, call.origin);
    if (!outcome) co_return person_error(outcome.error());
    if (!outcome->problems.empty()) co_return invalid_input(outcome->problems);
    co_return json_response(200, person_json(*outcome->person));
  }

  asio::awaitable<Response> unlock_person(Call& call) {
    auto person = ctx.people.unlock(*call.caller, call.params["id"], call.origin);
    if (!person) co_return person_error(person.error());
    co_return json_response(200, person_json(*person));
  }

  asio::awaitable<Response> password_link(Call& call) {
    auto link = ctx.people.issue_password_link(*call.caller, call.params["id"], call.origin);
    if (!link) co_return person_error(link.error());
    co_return json_response(200, link_json(*link));
  }

  asio::awaitable<Response> delete_person(Call& call) {
    if (auto st = ctx.people.remove(*call.caller, call.params["id"], call.origin); !st) {
      co_return person_error(st.error());
    }
    Response r;
    r.status = 204;
    co_return r;
  }

  asio::awaitable<Response> use_password_link(Call& call) {
    auto job = [this, token = call.fields["token"], password = call.fields["new_password"], origin = call.origin] {
      return ctx.people.complete_password_link(token, password, origin);
    };
    auto problems = co_await ctx.work.run(std::move(job));
    if (!problems) co_return busy();
    if (!*problems) co_return internal_error(problems->error());
    if (!(*problems)->empty()) co_return invalid_input(**problems);
    Response r;
    r.status = 204;
    co_return r;
  }

  asio::awaitable<Response> list_organisations(Call& call) {
    auto organisations = ctx.people.organisations(*call.caller);
    if (!organisations) co_return internal_error(organisations.error());
    json out = json::array();
    for (const auto& o : *organisations) {
      out.push_back({{"id", o.id},
                     {"name", o.name},
                     {"require_second_factor", o.require_second_factor},
                     {"created_at", iso(o.created_at)}});
    }
    co_return json_response(200, {{"organisations", out}});
  }

  asio::awaitable<Response> create_organisation(Call& call) {
    store::OrganisationRecord record{call.fields["id"], call.fields["name"],
                                     call.fields["require_second_factor"] == "true", 0};
    auto problems = ctx.people.create_organisation(*call.caller, record, call.origin);
    if (!problems) co_return person_error(problems.error());
    if (!problems->empty()) co_return invalid_input(*problems);
    co_return json_response(
        201, {{"id", record.id}, {"name", record.name}, {"require_second_factor", record.require_second_factor}});
  }

  // --- Routing ---------------------------------------------------------------------------

  void add_routes() {
    using I = Impl;
    const auto h = [](asio::awaitable<Response> (I::*f)(Call&)) {
      return [f](I& self, Call& call) { return (self.*f)(call); };
    };
    routes = {
        {"GET", "/api/v1/setup", Access::anyone, std::nullopt, {}, false, h(&I::setup_status)},
        {"POST",
         "/api/v1/setup",
         Access::anyone,
         std::nullopt,
         {{"token", true, 128}, {"username", true, 256}, {"email", true, 512}, {"password", true, 4096}},
         true,
         h(&I::setup)},
        {"POST",
         "/api/v1/session",
         Access::anyone,
         std::nullopt,
         {{"username", true, 256}, {"password", true, 4096}},
         true,
         h(&I::sign_in)},
        {"GET", "/api/v1/session", Access::any_session, std::nullopt, {}, false, h(&I::session_info)},
        {"DELETE", "/api/v1/session", Access::any_session, std::nullopt, {}, false, h(&I::sign_out)},
        {"POST",
         "/api/v1/session/second-factor",
         Access::second_factor,
         std::nullopt,
         {{"code", true, 64}},
         true,
         h(&I::second_factor)},
        {"POST",
         "/api/v1/session/step-up",
         Access::full,
         Permission::account_self,
         {{"password", false, 4096}, {"code", false, 64}},
         true,
         h(&I::step_up)},
        {"POST", "/api/v1/account/totp", Access::enrolling, std::nullopt, {}, false, h(&I::totp_begin)},
        {"POST",
         "/api/v1/account/totp/confirm",
         Access::enrolling,
         std::nullopt,
         {{"code", true, 64}},
         true,
         h(&I::totp_confirm)},
        {"POST",
         "/api/v1/account/password",
         Access::full,
         Permission::account_self,
         {{"current_password", true, 4096}, {"new_password", true, 4096}},
         true,
         h(&I::change_password)},
        {"GET", "/api/v1/account/sessions", Access::full, Permission::account_self, {}, false, h(&I::list_sessions)},
        {"DELETE",
         "/api/v1/account/sessions/{handle}",
         Access::full,
         Permission::account_self,
         {},
         false,
         h(&I::end_session)},
        {"POST",
         "/api/v1/account/sessions/end-others",
         Access::full,
         Permission::account_self,
         {},
         false,
         h(&I::end_other_sessions)},
        {"GET", "/api/v1/users", Access::full, Permission::users_read, {}, false, h(&I::list_people)},
        {"POST",
         "/api/v1/users",
         Access::full,
         Permission::users_write,
         {{"username", true, 256},
          {"email", true, 512},
          {"role", false, 64},
          {"organisation", false, 64},
          {"expires_at", false, 32}},
         false,
         h(&I::create_person),
         true},
        {"GET", "/api/v1/users/{id}", Access::full, Permission::users_read, {}, false, h(&I::show_person)},
        {"PATCH",
         "/api/v1/users/{id}",
         Access::full,
         Permission::users_write,
         {{"role", false, 64}, {"email", false, 512}, {"status", false, 16}, {"expires_at", false, 32}},
         false,
         h(&I::change_person),
         true},
        {"DELETE", "/api/v1/users/{id}", Access::full, Permission::users_write, {}, false, h(&I::delete_person), true},
        {"POST",
         "/api/v1/users/{id}/unlock",
         Access::full,
         Permission::users_write,
         {},
         false,
         h(&I::unlock_person),
         true},
        {"POST",
         "/api/v1/users/{id}/password-link",
         Access::full,
         Permission::users_write,
         {},
         false,
         h(&I::password_link),
         true},
        {"POST",
         "/api/v1/password-link",
         Access::anyone,
         std::nullopt,
         {{"token", true, 128}, {"new_password", true, 4096}},
         true,
         h(&I::use_password_link)},
        {"GET",
         "/api/v1/organisations",
         Access::full,
         Permission::organisations_read,
         {},
         false,
         h(&I::list_organisations)},
        {"POST",
         "/api/v1/organisations",
         Access::full,
         Permission::organisations_write,
         {{"id", true, 64}, {"name", true, 256}, {"require_second_factor", false, 8, true}},
         false,
         h(&I::create_organisation),
         true},
        {"GET", "/api/v1/devices", Access::full, Permission::devices_read, {}, false, h(&I::list_devices)},
        {"GET", "/api/v1/devices/{id}", Access::full, Permission::devices_read, {}, false, h(&I::device_detail)},
    };
  }

  asio::awaitable<Response> dispatch(Request& request) {
    if (ctx.waf != nullptr) {
      const auto colon = request.source.rfind(':');
      const auto port = static_cast<std::uint16_t>(std::strtoul(request.source.c_str() + colon + 1, nullptr, 10));
      const auto verdict = ctx.waf->inspect(request, address_of(request.source), port, "0.0.0.0", 0);
      if (verdict.blocked) {
        // An alert: someone is probing the console (JPCERT VIII-2). The rule messages say
        // what matched; the request's contents stay out of the log.
        emit(nullptr, "waf.blocked", request.path.substr(0, 128), events::Outcome::denied, {request.source, ""},
             {{"rules", verdict.rule_ids}, {"message", verdict.message}, {"status", verdict.status}, {"alert", true}});
        co_return problem(verdict.status == 0 ? 403 : verdict.status, "blocked",
                          "The request was refused by the web application firewall");
      }
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

    Call call{request, std::nullopt, {}, std::move(params), {}, {request.source, ""}};
    if (auto ua = request.header("user-agent")) call.origin.user_agent = std::string(ua->substr(0, 256));

    if (route->limited && !allow_attempt(address_of(request.source))) {
      emit(nullptr, "console.throttled", std::string(route->pattern), events::Outcome::denied, call.origin);
      Response r = problem(429, "too_many_attempts", "Too many attempts from this address; wait a minute");
      r.set("Retry-After", "60");
      co_return r;
    }
    const bool changes = is_state_change(request.method);
    if (changes && !same_origin(request)) {
      emit(nullptr, "console.cross_origin_refused", std::string(route->pattern), events::Outcome::denied, call.origin);
      co_return problem(403, "cross_origin", "Cross-origin requests are not accepted");
    }
    if (changes && !route->body.empty()) {
      auto type = request.header("content-type");
      if (!type || !(type->starts_with("application/json"))) {
        co_return problem(415, "unsupported_media_type", "Send the body as application/json");
      }
    }

    if (route->access != Access::anyone) {
      auto id = cookie_value(request, kSessionCookie);
      if (id) {
        auto caller = ctx.accounts.resolve_session(*id);
        if (!caller) co_return internal_error(caller.error());
        call.caller = std::move(*caller);
        call.session_id = std::move(*id);
      }
      if (!call.caller) {
        Response r = problem(401, "unauthenticated", "Sign in first");
        if (id) r.set("Set-Cookie", clear_session_cookie());
        co_return r;
      }
      const auto& stage = call.caller->session.stage;
      const bool stage_ok = route->access == Access::any_session ||
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
      if (changes) {
        auto token = request.header(kCsrfHeader);
        const std::string expected = csrf_token(call.session_id);
        if (!token || !crypto::equal_constant_time(as_bytes(*token), as_bytes(expected))) {
          emit(&*call.caller, "console.csrf_refused", std::string(route->pattern), events::Outcome::denied,
               call.origin);
          co_return problem(403, "csrf", "The request's CSRF token is missing or wrong");
        }
      }
      if (route->permission && !identity::role_grants(call.caller->user.role, *route->permission)) {
        emit(&*call.caller, "access.denied", std::string(route->pattern), events::Outcome::denied, call.origin,
             {{"permission", identity::to_string(*route->permission)}, {"role", call.caller->user.role}});
        co_return problem(403, "forbidden", "Your role does not allow this");
      }
      if (route->sensitive && !ctx.accounts.recently_authenticated(*call.caller)) {
        co_return problem(403, "step_up_required",
                          "Confirm your password or a code first (POST /api/v1/session/step-up), then repeat this");
      }
    }
    if (auto problems = read_json_fields(request.body, route->body, call.fields); !problems.empty()) {
      co_return invalid_input(problems, 400);
    }
    co_return co_await route->handler(*this, call);
  }
};

Api::Api(ApiContext context) : impl_(std::make_unique<Impl>(std::move(context))) {}
Api::~Api() = default;

std::vector<RouteInfo> Api::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : impl_->routes) {
    std::string_view access;
    switch (r.access) {
      case Access::anyone: access = "anyone"; break;
      case Access::any_session: access = "any session"; break;
      case Access::second_factor: access = "second-factor stage"; break;
      case Access::enrolling: access = "enrol or full"; break;
      case Access::full: access = "signed in"; break;
    }
    out.push_back({r.method, r.pattern, access, r.permission ? identity::to_string(*r.permission) : "", r.sensitive});
  }
  return out;
}

asio::awaitable<Response> Api::handle(Request request) {
  Response response = co_await impl_->dispatch(request);
  for (const auto& [name, value] : kSecurityHeaders) response.set(std::string(name), std::string(value));
  co_return response;
}

}  // namespace torii::console

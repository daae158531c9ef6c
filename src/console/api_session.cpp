// The console API (api.h), session and own account: first administrator, sign-in, second
// factor, step-up, TOTP enrolment, password change and the caller's sessions.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "console/api_internal.h"
#include "console/live.h"
#include "console/work_pool.h"
#include "identity/setup_token.h"

namespace torii::console::api {

using identity::Permission;

namespace {

asio::awaitable<Response> setup_status(ApiState& s, Call&) {
  auto users = s.ctx.store.users().count();
  if (!users) co_return internal_error(users.error());
  auto pending = identity::setup_pending(s.ctx.store);
  if (!pending) co_return internal_error(pending.error());
  co_return json_response(200, {{"pending", *pending && *users == 0}});
}

asio::awaitable<Response> setup(ApiState& s, Call& call) {
  identity::NewAdministrator request{call.fields["token"], call.fields["username"], call.fields["email"],
                                     call.fields["password"]};
  // Named before co_await: GCC 12 mishandles non-trivial temporaries in co_await operands.
  auto job = [&s, request, origin = call.origin] { return s.ctx.accounts.create_first_administrator(request, origin); };
  auto outcome = co_await s.ctx.work.run(std::move(job));
  if (!outcome) co_return busy();
  if (!*outcome) co_return internal_error(outcome->error());
  if (!(*outcome)->problems.empty()) co_return invalid_input((*outcome)->problems);
  const auto& ticket = *(*outcome)->ticket;
  auto user = s.ctx.store.users().find(ticket.session.user_id);
  if (!user || !*user) co_return internal_error(user ? Error{{}, "user vanished"} : user.error());
  co_return s.session_answer(201, ticket, **user);
}

asio::awaitable<Response> sign_in(ApiState& s, Call& call) {
  auto job = [&s, username = call.fields["username"], password = call.fields["password"], origin = call.origin] {
    return s.ctx.accounts.sign_in(username, password, origin);
  };
  auto result = co_await s.ctx.work.run(std::move(job));
  if (!result) co_return busy();
  co_return s.sign_in_answer(*result, nullptr);
}

asio::awaitable<Response> session_info(ApiState& s, Call& call) {
  const auto& session = call.caller->session;
  const auto o = s.ctx.accounts.options();
  const UnixMillis idle_end = session.last_seen_at + o.session_idle.count() * 1000;
  const UnixMillis absolute_end = session.created_at + o.session_absolute.count() * 1000;
  co_return json_response(200, {{"stage", session.stage},
                                {"csrf_token", csrf_token(call.session_id)},
                                {"user", user_json(call.caller->user)},
                                {"permissions", call.caller->permissions.names()},
                                {"session",
                                 {{"handle", session.handle},
                                  {"created_at", iso(session.created_at)},
                                  {"expires_at", iso(std::min(idle_end, absolute_end))}}}});
}

asio::awaitable<Response> sign_out(ApiState& s, Call& call) {
  if (auto st = s.ctx.accounts.sign_out(*call.caller, call.origin); !st) co_return internal_error(st.error());
  if (s.ctx.live != nullptr) s.ctx.live->end_for(call.caller->session.id_hash, "signed out");
  Response r;
  r.status = 204;
  r.set("Set-Cookie", clear_session_cookie());
  // Whatever the browser kept for this origin goes too (JPCERT III-4).
  r.set("Clear-Site-Data", R"("cache", "cookies", "storage")");
  co_return r;
}

asio::awaitable<Response> second_factor(ApiState& s, Call& call) {
  auto result = s.ctx.accounts.second_factor(*call.caller, call.fields["code"], call.origin);
  if (!result && result.error().is(Errc::conflict)) {
    co_return problem(409, "wrong_stage", "This session is not waiting for a second factor");
  }
  co_return s.sign_in_answer(result, &call.caller->user);
}

asio::awaitable<Response> step_up(ApiState& s, Call& call) {
  const std::string password = call.fields["password"];
  const std::string code = call.fields["code"];
  if (password.empty() == code.empty()) {
    co_return invalid_input(std::vector<FieldProblem>{{"", "one_of", "send either password or code"}}, 400);
  }
  auto job = [&s, caller = *call.caller, password, code, origin = call.origin] {
    return s.ctx.accounts.step_up(caller, password, code, origin);
  };
  auto result = co_await s.ctx.work.run(std::move(job));
  if (!result) co_return busy();
  if (!*result) co_return internal_error(result->error());
  if ((*result)->status == identity::SignInStatus::signed_in) {
    co_return no_content();
  }
  co_return s.sign_in_answer(*result, &call.caller->user);
}

asio::awaitable<Response> totp_begin(ApiState& s, Call& call) {
  auto enrolment = s.ctx.accounts.begin_totp_enrolment(*call.caller);
  if (!enrolment && enrolment.error().is(Errc::conflict)) {
    co_return problem(409, "already_enrolled", "A second factor is already enrolled for this account");
  }
  if (!enrolment) co_return internal_error(enrolment.error());
  co_return json_response(
      200, {{"secret", enrolment->secret_base32}, {"uri", enrolment->uri}, {"qr_svg", enrolment->qr_svg}});
}

asio::awaitable<Response> totp_confirm(ApiState& s, Call& call) {
  auto result = s.ctx.accounts.confirm_totp_enrolment(*call.caller, call.fields["code"], call.origin);
  if (!result && result.error().is(Errc::conflict)) {
    co_return problem(409, "no_enrolment", result.error().message);
  }
  if (!result) co_return internal_error(result.error());
  if (!result->problems.empty()) co_return invalid_input(result->problems);
  auto user = call.caller->user;
  user.totp_enabled = true;
  co_return s.session_answer(200, *result->ticket, user, {{"recovery_codes", result->recovery_codes}});
}

asio::awaitable<Response> change_password(ApiState& s, Call& call) {
  auto job = [&s, caller = *call.caller, current = call.fields["current_password"], next = call.fields["new_password"],
              origin = call.origin] { return s.ctx.accounts.change_password(caller, current, next, origin); };
  auto outcome = co_await s.ctx.work.run(std::move(job));
  if (!outcome) co_return busy();
  if (!*outcome) co_return internal_error(outcome->error());
  if (!(*outcome)->problems.empty()) co_return invalid_input((*outcome)->problems);
  co_return s.session_answer(200, *(*outcome)->ticket, call.caller->user);
}

asio::awaitable<Response> list_sessions(ApiState& s, Call& call) {
  auto sessions = s.ctx.accounts.sessions(*call.caller);
  if (!sessions) co_return internal_error(sessions.error());
  json out = json::array();
  for (const auto& session : *sessions) {
    out.push_back({{"handle", session.handle},
                   {"stage", session.stage},
                   {"created_at", iso(session.created_at)},
                   {"last_seen_at", iso(session.last_seen_at)},
                   {"source", session.source},
                   {"user_agent", session.user_agent},
                   {"current", session.id_hash == call.caller->session.id_hash}});
  }
  co_return json_response(200, {{"sessions", std::move(out)}});
}

asio::awaitable<Response> end_session(ApiState& s, Call& call) {
  auto ended = s.ctx.accounts.end_session(*call.caller, call.params["handle"], call.origin);
  if (!ended) co_return internal_error(ended.error());
  if (!*ended) co_return problem(404, "not_found", "No such session");
  co_return no_content();
}

asio::awaitable<Response> end_other_sessions(ApiState& s, Call& call) {
  auto ended = s.ctx.accounts.sign_out_elsewhere(*call.caller, call.origin);
  if (!ended) co_return internal_error(ended.error());
  co_return json_response(200, {{"ended", *ended}});
}

}  // namespace

void add_session_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/setup", Access::anyone, std::nullopt, {}, false, setup_status},
      {"POST",
       "/api/v1/setup",
       Access::anyone,
       std::nullopt,
       {{"token", true, 128}, {"username", true, 256}, {"email", true, 512}, {"password", true, 4096}},
       true,
       setup},
      {"POST",
       "/api/v1/session",
       Access::anyone,
       std::nullopt,
       {{"username", true, 256}, {"password", true, 4096}},
       true,
       sign_in},
      {"GET", "/api/v1/session", Access::any_session, std::nullopt, {}, false, session_info},
      {"DELETE", "/api/v1/session", Access::any_session, std::nullopt, {}, false, sign_out},
      {"POST",
       "/api/v1/session/second-factor",
       Access::second_factor,
       std::nullopt,
       {{"code", true, 64}},
       true,
       second_factor},
      {"POST",
       "/api/v1/session/step-up",
       Access::full,
       Permission::account_self,
       {{"password", false, 4096}, {"code", false, 64}},
       true,
       step_up},
      {"POST", "/api/v1/account/totp", Access::enrolling, std::nullopt, {}, false, totp_begin},
      {"POST",
       "/api/v1/account/totp/confirm",
       Access::enrolling,
       std::nullopt,
       {{"code", true, 64}},
       true,
       totp_confirm},
      {"POST",
       "/api/v1/account/password",
       Access::full,
       Permission::account_self,
       {{"current_password", true, 4096}, {"new_password", true, 4096}},
       true,
       change_password},
      {"GET", "/api/v1/account/sessions", Access::full, Permission::account_self, {}, false, list_sessions},
      {"DELETE", "/api/v1/account/sessions/{handle}", Access::full, Permission::account_self, {}, false, end_session},
      {"POST",
       "/api/v1/account/sessions/end-others",
       Access::full,
       Permission::account_self,
       {},
       false,
       end_other_sessions},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

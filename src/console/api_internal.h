// Inside the console API (api.h): the route table's types, the state handlers share and
// the answers they build. Only the api*.cpp files include this; each area of the API
// (session, people, devices, ...) adds its routes and handlers from its own file, so no
// single unit carries every coroutine and every JSON shape.
//
// Threading: everything here runs on the listener's io_context thread, except the jobs
// handlers hand to the WorkPool.
#pragma once

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "console/api.h"
#include "console/request_checks.h"
#include "identity/custom_roles.h"
#include "identity/roles.h"
#include "policy/rate_limit.h"

namespace torii::console::api {

namespace asio = boost::asio;
using nlohmann::json;

// Which callers a route admits before its permission is checked.
enum class Access {
  anyone,         // no session needed (setup, sign-in)
  any_session,    // a session in any stage (who am I, sign out)
  second_factor,  // a session waiting for its second factor
  enrolling,      // a session in the enrol or full stage (TOTP enrolment)
  full,           // a fully signed-in session holding the route's permission
};

// One request on its way through the chain: what the checks found out about it.
struct Call {
  Request& request;
  std::optional<identity::Caller> caller;
  std::string session_id;
  std::map<std::string, std::string> params;              // {name} segments of the route
  std::map<std::string, std::string> fields;              // the validated JSON body's members
  std::map<std::string, std::vector<std::string>> lists;  // ... and its lists of strings
  identity::Origin origin;
};

struct ApiState;
using Handler = asio::awaitable<Response> (*)(ApiState&, Call&);

struct Route {
  std::string_view method;
  std::string_view pattern;  // "/api/v1/devices/{id}"
  Access access;
  std::optional<identity::Permission> permission;
  std::vector<FieldSpec> body;
  bool limited = false;  // counts against the per-source sign-in limit
  Handler handler = nullptr;
  // Needs a password or TOTP proof from the last few minutes (step-up, JPCERT I-4): what
  // a stolen session must not be enough for.
  bool sensitive = false;
};

// What every handler may use; one per Api, owned by it.
struct ApiState {
  explicit ApiState(ApiContext c);

  ApiContext ctx;
  identity::CustomRoles roles;
  // The configuration set now: the file, then the overrides stored through the console
  // (settings.h). The request limits below read it; PATCH /api/v1/settings replaces it.
  config::Config settings;
  // ... and as it was when the console was made: a key that applies at the next start is
  // pending while the two differ.
  config::Config settings_at_start;
  std::map<std::string, policy::TokenBucket, std::less<>> attempts;  // per source address
  struct UserRequests {
    policy::TokenBucket bucket;
    std::optional<policy::TokenBucket::Clock::time_point> last_event;  // console.user_throttled
  };
  std::map<std::string, UserRequests, std::less<>> user_requests;  // per person (user id)
  // Work posted to run after a handler has answered holds a weak_ptr to this: it does
  // nothing once the state is gone.
  std::shared_ptr<const bool> alive = std::make_shared<const bool>(true);

  // Writes a security event (no-op without a sink); a token caller's is attributed to the
  // token (identity::attributed).
  void emit(const identity::Caller* caller, std::string action, std::string object, events::Outcome outcome,
            const identity::Origin& origin, json details = json::object()) const;

  // Takes one sign-in attempt from the source's bucket; false when it is empty.
  bool allow_attempt(const std::string& address);
  // Takes one request from the caller's person's bucket (a token's owner pays for it;
  // JPCERT item 8). nullopt when allowed, else how long to wait; a refusal is recorded as
  // console.user_throttled at most once a minute per person, so a flood does not flood the log.
  std::optional<std::chrono::seconds> throttle_user(const identity::Caller& caller, const identity::Origin& origin);

  // The answer that starts or renews a session: its stage, CSRF token and the cookie.
  Response session_answer(int status, const identity::SessionTicket& ticket, const store::UserRecord& user,
                          json extra = json::object()) const;
  // The answer to a password or code: a session, 401, 429 with Retry-After, or 403.
  // `user` may be null: the person is then read from the store.
  Response sign_in_answer(const Result<identity::SignInResult>& result, const store::UserRecord* user) const;
};

[[nodiscard]] Response json_response(int status, const json& body);
// The same for a body already written as JSON text (base/json_writer.h).
[[nodiscard]] Response json_text_response(int status, std::string body);
// application/problem+json (RFC 9457); `extra` members are added to the body.
[[nodiscard]] Response problem(int status, std::string_view code, std::string_view title,
                               const json& extra = json::object());
// 422: well-formed but refused (a weak password); 400: not what the request takes.
[[nodiscard]] Response invalid_input(const std::vector<FieldProblem>& problems, int status = 422);
[[nodiscard]] Response invalid_input(const std::vector<identity::FieldProblem>& problems);
// 500 without internals; the error goes to the log.
[[nodiscard]] Response internal_error(const Error& error);
// 503 with Retry-After: the password-hashing pool is full.
[[nodiscard]] Response busy();
[[nodiscard]] Response no_content();

[[nodiscard]] std::string session_cookie(std::string_view id);
[[nodiscard]] std::string clear_session_cookie();

[[nodiscard]] json user_json(const store::UserRecord& u);
// RFC 3339 UTC with milliseconds.
[[nodiscard]] std::string iso(UnixMillis ms);

// The organisation a request acts on: the caller's own, or for a role that spans
// organisations the one named in ?organisation=. nullopt (403) when anyone else names
// another.
[[nodiscard]] std::optional<std::string> organisation_scope(const Call& call);

// The device the path's {id} names, when the caller may act on it: one of their
// organisation's, or any for a role that spans organisations. Otherwise the answer: 404 as
// for a missing device (JPCERT I-9), or 500.
[[nodiscard]] tl::expected<store::DeviceRecord, Response> reachable_device(ApiState& s, Call& call);
// 503: the server gave the API no device registry or key ring (ApiContext).
[[nodiscard]] Response devices_unavailable();

// Each area of the API appends its routes.
void add_session_routes(std::vector<Route>& routes);
void add_people_routes(std::vector<Route>& routes);
void add_device_routes(std::vector<Route>& routes);
void add_command_routes(std::vector<Route>& routes);
void add_rule_routes(std::vector<Route>& routes);
void add_channel_routes(std::vector<Route>& routes);
void add_role_routes(std::vector<Route>& routes);
void add_settings_routes(std::vector<Route>& routes);
void add_token_routes(std::vector<Route>& routes);
void add_telemetry_routes(std::vector<Route>& routes);
// Alerts: listing, acknowledging, resolving (api_alerts.cpp).
void add_alert_routes(std::vector<Route>& routes);
// The security log, its verification, alerts; turning one's second factor off, an
// administrator's reset of someone's, new recovery codes.
void add_security_routes(std::vector<Route>& routes);

}  // namespace torii::console::api

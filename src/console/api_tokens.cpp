// The console API (api.h), API tokens (JPCERT I-10): a person lists, creates and revokes their
// tokens for integrations. The token itself is in the creation's answer only.
#include <string>
#include <vector>

#include "console/api_internal.h"

namespace torii::console::api {

using identity::Permission;

namespace {

json token_json(const ApiState& s, const store::ApiTokenRecord& t) {
  const UnixMillis now = to_unix_millis(s.ctx.clock.now());
  const std::string_view status = t.revoked_at ? "revoked" : t.expires_at <= now ? "expired" : "active";
  return {{"id", t.id},
          {"name", t.name},
          {"permissions", t.permissions},
          {"organisation", t.organisation_id},
          {"status", status},
          {"created_at", iso(t.created_at)},
          {"expires_at", iso(t.expires_at)},
          {"last_used_at", t.last_used_at ? json(iso(*t.last_used_at)) : json(nullptr)},
          {"revoked_at", t.revoked_at ? json(iso(*t.revoked_at)) : json(nullptr)}};
}

asio::awaitable<Response> list_tokens(ApiState& s, Call& call) {
  auto tokens = s.ctx.tokens.list(*call.caller);
  if (!tokens) co_return internal_error(tokens.error());
  json out = json::array();
  for (const auto& t : *tokens) out.push_back(token_json(s, t));
  co_return json_response(200, {{"tokens", std::move(out)}});
}

asio::awaitable<Response> create_token(ApiState& s, Call& call) {
  identity::NewApiToken request{call.fields["name"], call.lists["permissions"], std::nullopt,
                                call.fields["organisation"]};
  if (auto expires = parse_utc_millis(call.fields["expires_at"])) {
    request.expires_at = *expires;
  } else {
    co_return invalid_input(
        std::vector<FieldProblem>{{"expires_at", "invalid", "must be a date such as 2027-01-31T00:00:00Z"}});
  }
  auto issued = s.ctx.tokens.create(*call.caller, request, call.origin);
  if (!issued) co_return internal_error(issued.error());
  if (!issued->problems.empty()) co_return invalid_input(issued->problems);
  json body = token_json(s, *issued->token);
  body["token"] = issued->secret;  // shown this once; only its hash is kept
  co_return json_response(201, body);
}

asio::awaitable<Response> revoke_token(ApiState& s, Call& call) {
  if (auto st = s.ctx.tokens.revoke(*call.caller, call.params["id"], call.origin); !st) {
    if (st.error().is(Errc::not_found)) co_return problem(404, "not_found", "No such API token");
    co_return internal_error(st.error());
  }
  co_return no_content();
}

}  // namespace

void add_token_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/account/tokens", Access::full, Permission::account_self, {}, false, list_tokens},
      {"POST",
       "/api/v1/account/tokens",
       Access::full,
       Permission::account_self,
       {{"name", true, 100},
        {"permissions", true, 64, false, 32},
        {"expires_at", true, 32},
        {"organisation", false, 64}},
       false,
       create_token,
       true},
      {"DELETE", "/api/v1/account/tokens/{id}", Access::full, Permission::account_self, {}, false, revoke_token},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

// The console API (api.h), roles: the built-in ones and each organisation's own (custom
// roles, identity/custom_roles.h).
#include <string>
#include <vector>

#include "console/api_internal.h"

namespace torii::console::api {

using identity::Permission;

namespace {

json role_json(const identity::RoleView& r) {
  return {{"name", r.name}, {"description", r.description}, {"builtin", r.builtin}, {"permissions", r.permissions}};
}

Response role_error(const Error& e) {
  if (e.is(Errc::not_found)) return problem(404, "not_found", "No such role");
  if (e.is(Errc::permission_denied)) return problem(403, "forbidden", e.message);
  if (e.is(Errc::conflict)) return problem(409, "conflict", e.message);
  return internal_error(e);
}

std::string organisation_named(const Call& call) {
  return query_parameter(call.request.query, "organisation").value_or("");
}

asio::awaitable<Response> list_roles(ApiState& s, Call& call) {
  auto roles = s.roles.list(*call.caller, organisation_named(call));
  if (!roles) co_return role_error(roles.error());
  json out = json::array();
  for (const auto& r : *roles) out.push_back(role_json(r));
  co_return json_response(200, {{"roles", std::move(out)}});
}

asio::awaitable<Response> create_role(ApiState& s, Call& call) {
  identity::NewRole role{call.fields["organisation"], call.fields["name"], call.fields["description"],
                         call.lists["permissions"]};
  auto outcome = s.roles.create(*call.caller, role, call.origin);
  if (!outcome) co_return role_error(outcome.error());
  if (!outcome->problems.empty()) co_return invalid_input(outcome->problems);
  co_return json_response(201, role_json(*outcome->role));
}

asio::awaitable<Response> change_role(ApiState& s, Call& call) {
  identity::RoleChanges changes;
  if (call.fields.contains("description")) changes.description = call.fields["description"];
  if (call.lists.contains("permissions")) changes.permissions = call.lists["permissions"];
  auto outcome = s.roles.change(*call.caller, organisation_named(call), call.params["name"], changes, call.origin);
  if (!outcome) co_return role_error(outcome.error());
  if (!outcome->problems.empty()) co_return invalid_input(outcome->problems);
  co_return json_response(200, role_json(*outcome->role));
}

asio::awaitable<Response> delete_role(ApiState& s, Call& call) {
  if (auto st = s.roles.remove(*call.caller, organisation_named(call), call.params["name"], call.origin); !st) {
    co_return role_error(st.error());
  }
  co_return no_content();
}

}  // namespace

void add_role_routes(std::vector<Route>& routes) {
  // Roles are how people are given what they may do: managing them is managing people.
  const std::vector<Route> mine = {
      {"GET", "/api/v1/roles", Access::full, Permission::users_read, {}, false, list_roles},
      {"POST",
       "/api/v1/roles",
       Access::full,
       Permission::users_write,
       {{"name", true, 64},
        {"description", false, 1024},
        {"permissions", true, 64, false, 32},
        {"organisation", false, 64}},
       false,
       create_role,
       true},
      {"PATCH",
       "/api/v1/roles/{name}",
       Access::full,
       Permission::users_write,
       {{"description", false, 1024}, {"permissions", false, 64, false, 32}},
       false,
       change_role,
       true},
      {"DELETE", "/api/v1/roles/{name}", Access::full, Permission::users_write, {}, false, delete_role, true},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

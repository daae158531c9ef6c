// The console API (api.h), people and organisations: create, change, unlock and remove people,
// password links, organisations.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "console/api_internal.h"
#include "console/work_pool.h"

namespace torii::console::api {

using identity::Permission;

namespace {

json person_json(const ApiState& s, const store::UserRecord& u) {
  json j = user_json(u);
  j["status"] = u.status;
  j["created_at"] = iso(u.created_at);
  j["last_login_at"] = u.last_login_at ? json(iso(*u.last_login_at)) : json(nullptr);
  j["expires_at"] = u.expires_at ? json(iso(*u.expires_at)) : json(nullptr);
  j["locked"] = u.locked_until > to_unix_millis(s.ctx.clock.now());
  j["has_password"] = u.password_hash != identity::kNoPassword;
  return j;
}

// The one-time link a person opens to set their password; the token rides in the
// fragment, which browsers never send to a server.
json link_json(const ApiState& s, const identity::PasswordLink& link) {
  return {{"password_link", fmt::format("{}/password#{}", s.ctx.public_url, link.token)},
          {"token", link.token},
          {"expires_at", iso(link.expires_at)}};
}

// An optional date member: absent, "" (none) or an RFC 3339 UTC time.
std::optional<std::optional<UnixMillis>> read_date(const Call& call, std::string_view name,
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

Response person_error(const Error& e) {
  if (e.is(Errc::not_found)) return problem(404, "not_found", "No such person");
  if (e.is(Errc::permission_denied)) return problem(403, "forbidden", "You may not act on that organisation");
  if (e.is(Errc::conflict)) return problem(409, "conflict", e.message);
  return internal_error(e);
}

asio::awaitable<Response> list_people(ApiState& s, Call& call) {
  auto people = s.ctx.people.list(*call.caller, query_parameter(call.request.query, "organisation").value_or(""));
  if (!people) co_return person_error(people.error());
  json out = json::array();
  for (const auto& p : *people) out.push_back(person_json(s, p));
  co_return json_response(200, {{"people", out}});
}

asio::awaitable<Response> show_person(ApiState& s, Call& call) {
  auto person = s.ctx.people.find(*call.caller, call.params["id"]);
  if (!person) co_return person_error(person.error());
  co_return json_response(200, person_json(s, *person));
}

asio::awaitable<Response> create_person(ApiState& s, Call& call) {
  std::vector<FieldProblem> problems;
  identity::NewPerson person{call.fields["organisation"], call.fields["username"], call.fields["email"],
                             call.fields["role"], std::nullopt};
  if (auto date = read_date(call, "expires_at", problems)) person.expires_at = *date;
  if (!problems.empty()) co_return invalid_input(problems);
  auto outcome = s.ctx.people.create(*call.caller, person, call.origin);
  if (!outcome) co_return person_error(outcome.error());
  if (!outcome->problems.empty()) co_return invalid_input(outcome->problems);
  json body = person_json(s, *outcome->person);
  body.update(link_json(s, *outcome->link));
  co_return json_response(201, body);
}

asio::awaitable<Response> change_person(ApiState& s, Call& call) {
  std::vector<FieldProblem> problems;
  identity::PersonChanges changes;
  if (call.fields.contains("role")) changes.role = call.fields["role"];
  if (call.fields.contains("email")) changes.email = call.fields["email"];
  if (call.fields.contains("status")) changes.status = call.fields["status"];
  changes.expires_at = read_date(call, "expires_at", problems);
  if (!problems.empty()) co_return invalid_input(problems);
  auto outcome = s.ctx.people.change(*call.caller, call.params["id"], changes, call.origin);
  if (!outcome) co_return person_error(outcome.error());
  if (!outcome->problems.empty()) co_return invalid_input(outcome->problems);
  co_return json_response(200, person_json(s, *outcome->person));
}

asio::awaitable<Response> unlock_person(ApiState& s, Call& call) {
  auto person = s.ctx.people.unlock(*call.caller, call.params["id"], call.origin);
  if (!person) co_return person_error(person.error());
  co_return json_response(200, person_json(s, *person));
}

asio::awaitable<Response> password_link(ApiState& s, Call& call) {
  auto link = s.ctx.people.issue_password_link(*call.caller, call.params["id"], call.origin);
  if (!link) co_return person_error(link.error());
  co_return json_response(200, link_json(s, *link));
}

asio::awaitable<Response> delete_person(ApiState& s, Call& call) {
  if (auto st = s.ctx.people.remove(*call.caller, call.params["id"], call.origin); !st) {
    co_return person_error(st.error());
  }
  co_return no_content();
}

asio::awaitable<Response> use_password_link(ApiState& s, Call& call) {
  auto job = [&s, token = call.fields["token"], password = call.fields["new_password"], origin = call.origin] {
    return s.ctx.people.complete_password_link(token, password, origin);
  };
  auto problems = co_await s.ctx.work.run(std::move(job));
  if (!problems) co_return busy();
  if (!*problems) co_return internal_error(problems->error());
  if (!(*problems)->empty()) co_return invalid_input(**problems);
  co_return no_content();
}

asio::awaitable<Response> list_organisations(ApiState& s, Call& call) {
  auto organisations = s.ctx.people.organisations(*call.caller);
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

asio::awaitable<Response> create_organisation(ApiState& s, Call& call) {
  store::OrganisationRecord record{call.fields["id"], call.fields["name"],
                                   call.fields["require_second_factor"] == "true", 0};
  auto problems = s.ctx.people.create_organisation(*call.caller, record, call.origin);
  if (!problems) co_return person_error(problems.error());
  if (!problems->empty()) co_return invalid_input(*problems);
  co_return json_response(
      201, {{"id", record.id}, {"name", record.name}, {"require_second_factor", record.require_second_factor}});
}

}  // namespace

void add_people_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/users", Access::full, Permission::users_read, {}, false, list_people},
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
       create_person,
       true},
      {"GET", "/api/v1/users/{id}", Access::full, Permission::users_read, {}, false, show_person},
      {"PATCH",
       "/api/v1/users/{id}",
       Access::full,
       Permission::users_write,
       {{"role", false, 64}, {"email", false, 512}, {"status", false, 16}, {"expires_at", false, 32}},
       false,
       change_person,
       true},
      {"DELETE", "/api/v1/users/{id}", Access::full, Permission::users_write, {}, false, delete_person, true},
      {"POST", "/api/v1/users/{id}/unlock", Access::full, Permission::users_write, {}, false, unlock_person, true},
      {"POST",
       "/api/v1/users/{id}/password-link",
       Access::full,
       Permission::users_write,
       {},
       false,
       password_link,
       true},
      {"POST",
       "/api/v1/password-link",
       Access::anyone,
       std::nullopt,
       {{"token", true, 128}, {"new_password", true, 4096}},
       true,
       use_password_link},
      {"GET", "/api/v1/organisations", Access::full, Permission::organisations_read, {}, false, list_organisations},
      {"POST",
       "/api/v1/organisations",
       Access::full,
       Permission::organisations_write,
       {{"id", true, 64}, {"name", true, 256}, {"require_second_factor", false, 8, true}},
       false,
       create_organisation,
       true},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

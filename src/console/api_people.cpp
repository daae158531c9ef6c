// The console API (api.h), people and organisations: create, change, unlock and remove people,
// password links (in the answer or by e-mail, and the self-service "forgot password"),
// organisations.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include "console/api_internal.h"
#include "console/work_pool.h"
#include "mail/outbox.h"

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
std::string link_url(const ApiState& s, const identity::PasswordLink& link) {
  return fmt::format("{}/password#{}", s.ctx.public_url, link.token);
}

json link_json(const ApiState& s, const identity::PasswordLink& link) {
  return {{"password_link", link_url(s, link)}, {"token", link.token}, {"expires_at", iso(link.expires_at)}};
}

Response mail_unavailable() {
  return problem(503, "mail_unavailable", "Sending e-mail is not configured on this server");
}

// The message that carries a password link. The link is in the body only: never in a
// header, a log line or an event.
mail::MailMessage link_mail(const ApiState& s, const store::UserRecord& person, const identity::PasswordLink& link,
                            bool self_service) {
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(
      std::chrono::milliseconds(link.expires_at - to_unix_millis(s.ctx.clock.now())));
  std::string body = fmt::format(
      "{} to set a new password for the torii account \"{}\".\n\n"
      "Open this link within {} minutes to choose it:\n\n{}\n\n"
      "The link works once; a newer link replaces it. When the new password is set, every "
      "session of the account ends.\n",
      self_service ? "Somebody (hopefully you) asked" : "An administrator asked", person.username, minutes.count(),
      link_url(s, link));
  if (self_service) body += "\nIf you did not ask for this, ignore this message: your password stays as it is.\n";
  return {person.email, "Set your torii password", std::move(body)};
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
  co_return json_response(200, {{"people", std::move(out)}});
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

// "send": "answer" (the default) hands the link to the administrator; "email" mails it to
// the person instead and answers 202 without it.
asio::awaitable<Response> password_link(ApiState& s, Call& call) {
  const std::string send = call.fields.contains("send") ? call.fields["send"] : "answer";
  if (send != "answer" && send != "email") {
    co_return invalid_input(std::vector<FieldProblem>{{"send", "invalid", "must be \"answer\" or \"email\""}});
  }
  if (send == "answer") {
    auto link = s.ctx.people.issue_password_link(*call.caller, call.params["id"], call.origin);
    if (!link) co_return person_error(link.error());
    co_return json_response(200, link_json(s, *link));
  }
  if (s.ctx.mail == nullptr) co_return mail_unavailable();
  // Checked before the link is issued: issuing one revokes the person's earlier link.
  auto person = s.ctx.people.find(*call.caller, call.params["id"]);
  if (!person) co_return person_error(person.error());
  if (!mail::check_address(person->email, "the person's e-mail")) {
    co_return problem(409, "no_email", "This person has no e-mail address mail can be sent to");
  }
  auto link = s.ctx.people.issue_password_link(*call.caller, person->id, call.origin, "email");
  if (!link) co_return person_error(link.error());
  if (!s.ctx.mail->post(link_mail(s, *person, *link, false))) {
    co_return problem(503, "mail_unavailable", "Too many messages are waiting to be sent; try again shortly");
  }
  co_return json_response(202, {{"email", person->email}, {"expires_at", iso(link->expires_at)}});
}

// Self-service "forgot password" (JPCERT I-1, IIIT DI7): the answer is the same, and comes
// before any lookup, whoever is named; the lookup, the link and the mail happen after it, on
// the io_context, so neither the answer nor its timing tells whether the person exists.
asio::awaitable<Response> forgot_password(ApiState& s, Call& call) {
  if (s.ctx.mail == nullptr) co_return mail_unavailable();
  auto later = [&s, alive = std::weak_ptr<const bool>(s.alive), name = call.fields["name"], origin = call.origin] {
    if (alive.expired()) return;
    auto links = s.ctx.people.issue_self_service_links(name);
    if (!links) {
      spdlog::error("self-service password link: {}", links.error().message);
      return;
    }
    for (const auto& [person, link] : *links) {
      const bool queued = s.ctx.mail->post(link_mail(s, person, link, true));
      s.emit(nullptr, "password_link.mailed", "user:" + person.id,
             queued ? events::Outcome::success : events::Outcome::failure, origin,
             {{"organisation", person.organisation_id},
              {"requested_by", "self-service"},
              {"expires_at", iso(link.expires_at)},
              {"queued", queued}});
    }
  };
  asio::post(co_await asio::this_coro::executor, std::move(later));
  co_return json_response(
      202, {{"status", "accepted"},
            {"detail", "If this names an active account with an e-mail address, a password link is on its way."}});
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
  co_return json_response(200, {{"organisations", std::move(out)}});
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

asio::awaitable<Response> change_organisation(ApiState& s, Call& call) {
  std::optional<std::string> name;
  std::optional<bool> required;
  if (auto it = call.fields.find("name"); it != call.fields.end()) name = it->second;
  if (auto it = call.fields.find("require_second_factor"); it != call.fields.end()) required = it->second == "true";
  const std::string id = call.params["id"];
  auto problems = s.ctx.people.change_organisation(*call.caller, id, name, required, call.origin);
  if (!problems) {
    if (problems.error().is(Errc::not_found)) co_return problem(404, "not_found", "No such organisation");
    co_return person_error(problems.error());
  }
  if (!problems->empty()) co_return invalid_input(*problems);
  auto found = s.ctx.store.organisations().find(id);
  if (!found || !*found) co_return internal_error(found ? Error{{}, "organisation vanished"} : found.error());
  const auto& o = **found;
  co_return json_response(200, {{"id", o.id},
                                {"name", o.name},
                                {"require_second_factor", o.require_second_factor},
                                {"created_at", iso(o.created_at)}});
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
       {{"send", false, 16}},
       false,
       password_link,
       true},
      {"POST", "/api/v1/password-reset", Access::anyone, std::nullopt, {{"name", true, 512}}, true, forgot_password},
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
      {"PATCH",
       "/api/v1/organisations/{id}",
       Access::full,
       Permission::organisations_write,
       {{"name", false, 256}, {"require_second_factor", false, 8, true}},
       false,
       change_organisation,
       true},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

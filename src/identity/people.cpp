#include "identity/people.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "crypto/sodium.h"
#include "identity/custom_roles.h"
#include "identity/roles.h"

namespace torii::identity {
namespace {

constexpr std::string_view kLinkHashDomain = "torii password link";

std::string link_hash(std::string_view token) { return crypto::token_hash(kLinkHashDomain, token); }

std::string actor_name(const Caller& actor) { return "user:" + actor.user.id; }

bool valid_organisation_id(std::string_view id) {
  return id.size() >= 2 && id.size() <= 64 && std::isalnum(static_cast<unsigned char>(id.front())) != 0 &&
         std::ranges::all_of(id, [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

// Whether the actor may give a person of `organisation` this role: a built-in one (only a
// system administrator makes another), or one of the organisation's own roles that grants
// nothing the actor does not hold. The problem, if any.
Result<std::optional<FieldProblem>> check_role(store::Store& store, const Caller& actor, std::string_view organisation,
                                               std::string_view role) {
  if (is_builtin_role(role)) {
    if (role_spans_organisations(role) && !spans_organisations(actor)) {
      return FieldProblem{"role", "forbidden", "only a system administrator may make another"};
    }
    return std::optional<FieldProblem>{};
  }
  auto custom = store.custom_roles().find(organisation, role);
  if (!custom) return tl::unexpected(custom.error());
  if (!*custom) return FieldProblem{"role", "unknown", "no such role"};
  if (!actor.permissions.contains(role_permissions(**custom))) {
    return FieldProblem{"role", "forbidden", "the role grants permissions you do not hold yourself"};
  }
  return std::optional<FieldProblem>{};
}

// Whether a role makes its holder an administrator (an alert when somebody gets it).
bool administrative(store::Store& store, std::string_view organisation, std::string_view role) {
  auto grants = role_permissions(store, organisation, role);
  return !grants || is_administrator(*grants);
}

}  // namespace

People::People(store::Store& store, const Clock& clock, Random& random, PeopleOptions options, EventSink events)
    : store_(store), clock_(clock), random_(random), options_(options), events_(std::move(events)) {}

void People::emit(const Caller& actor, std::string action, std::string object, const Origin& origin,
                  nlohmann::json details) const {
  if (!events_) return;
  events_({actor_name(actor), std::move(action), std::move(object), events::Outcome::success, origin.source,
           attributed(actor, std::move(details))});
}

Status People::check_reach(const Caller& actor, const store::UserRecord& person) const {
  if (person.organisation_id == actor.user.organisation_id || spans_organisations(actor)) return ok();
  return fail(Errc::not_found, "no such person");
}

Result<std::vector<store::UserRecord>> People::list(const Caller& actor, std::string_view organisation_id) {
  const std::string_view org = organisation_id.empty() ? std::string_view(actor.user.organisation_id) : organisation_id;
  if (org != actor.user.organisation_id && !spans_organisations(actor)) {
    return fail(Errc::permission_denied, "you may not act on that organisation");
  }
  return store_.users().list(org);
}

Result<store::UserRecord> People::find(const Caller& actor, std::string_view user_id) {
  auto found = store_.users().find(user_id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return fail(Errc::not_found, "no such person");
  if (auto st = check_reach(actor, **found); !st) return tl::unexpected(st.error());
  return std::move(**found);
}

Result<PasswordLink> People::issue_link(const store::UserRecord& person, std::chrono::minutes lifetime,
                                        const std::string& issued_by) {
  const UnixMillis now = to_unix_millis(clock_.now());
  PasswordLink link{crypto::random_token(random_), to_unix_millis(clock_.now() + lifetime)};
  auto st =
      store_.password_resets().issue({link_hash(link.token), person.id, now, link.expires_at, std::nullopt, issued_by});
  if (!st) return tl::unexpected(st.error());
  return link;
}

Result<PersonOutcome> People::create(const Caller& actor, const NewPerson& person, const Origin& origin) {
  PersonOutcome outcome;
  const std::string org = person.organisation_id.empty() ? actor.user.organisation_id : person.organisation_id;
  if (org != actor.user.organisation_id && !spans_organisations(actor)) {
    outcome.problems.push_back({"organisation", "forbidden", "you may not add people to that organisation"});
  } else if (auto found = store_.organisations().find(org); !found) {
    return tl::unexpected(found.error());
  } else if (!*found) {
    outcome.problems.push_back({"organisation", "unknown", "no such organisation"});
  }
  auto username = normalize_username(person.username);
  if (!username) outcome.problems.push_back({"username", "invalid", username.error().message});
  auto email = normalize_email(person.email);
  if (!email) outcome.problems.push_back({"email", "invalid", email.error().message});
  const std::string role = person.role.empty() ? std::string(kDefaultRole) : person.role;
  auto role_problem = check_role(store_, actor, org, role);
  if (!role_problem) return tl::unexpected(role_problem.error());
  if (*role_problem) outcome.problems.push_back(std::move(**role_problem));
  if (person.expires_at && *person.expires_at <= to_unix_millis(clock_.now())) {
    outcome.problems.push_back({"expires_at", "past", "must be in the future"});
  }
  if (username) {
    auto taken = store_.users().find_by_username(*username);
    if (!taken) return tl::unexpected(taken.error());
    if (*taken) outcome.problems.push_back({"username", "taken", "is already in use"});
  }
  if (!outcome.problems.empty()) return outcome;

  const UnixMillis now = to_unix_millis(clock_.now());
  store::UserRecord user;
  std::array<std::uint8_t, 16> id{};
  random_.fill(id);
  user.id = hex_encode(id);
  user.organisation_id = org;
  user.username = *username;
  user.email = *email;
  user.role = role;
  user.password_hash = std::string(kNoPassword);
  user.password_changed_at = now;
  user.created_at = now;
  user.expires_at = person.expires_at;
  Status st = store_.transaction([&]() -> Status {
    if (auto inserted = store_.users().insert(user); !inserted) return inserted;
    auto link = issue_link(user, options_.first_password_lifetime, actor_name(actor));
    if (!link) return tl::unexpected(link.error());
    outcome.link = std::move(*link);
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  // A new administrator is an alert (JPCERT VIII-2): it is how a takeover would start.
  emit(actor, "user.created", "user:" + user.id, origin,
       {{"username", user.username},
        {"role", user.role},
        {"organisation", user.organisation_id},
        {"alert", administrative(store_, user.organisation_id, user.role)}});
  outcome.person = std::move(user);
  return outcome;
}

Result<PersonOutcome> People::change(const Caller& actor, std::string_view user_id, const PersonChanges& changes,
                                     const Origin& origin) {
  auto person = find(actor, user_id);
  if (!person) return tl::unexpected(person.error());
  PersonOutcome outcome;
  auto user = *person;
  const bool self = user.id == actor.user.id;
  bool privileges_changed = false;
  if (changes.role && *changes.role != user.role) {
    auto role_problem = check_role(store_, actor, user.organisation_id, *changes.role);
    if (!role_problem) return tl::unexpected(role_problem.error());
    if (*role_problem) {
      outcome.problems.push_back(std::move(**role_problem));
    } else if (self) {
      outcome.problems.push_back({"role", "self", "you may not change your own role"});
    } else if (role_spans_organisations(user.role) && !spans_organisations(actor)) {
      outcome.problems.push_back({"role", "forbidden", "only a system administrator may do that"});
    } else {
      user.role = *changes.role;
      privileges_changed = true;
    }
  }
  if (changes.email) {
    auto email = normalize_email(*changes.email);
    if (!email) {
      outcome.problems.push_back({"email", "invalid", email.error().message});
    } else {
      user.email = *email;
    }
  }
  if (changes.status && *changes.status != user.status) {
    if (!store::is_user_status(*changes.status)) {
      outcome.problems.push_back({"status", "unknown", "must be active or disabled"});
    } else if (self) {
      outcome.problems.push_back({"status", "self", "you may not disable yourself"});
    } else {
      user.status = *changes.status;
      user.disabled_reason = user.status == store::kUserStatusDisabled ? "by " + actor_name(actor) : "";
      privileges_changed = true;
      // Enabling starts the unused-account clock afresh.
      if (user.status == store::kUserStatusActive) user.last_login_at = to_unix_millis(clock_.now());
    }
  }
  if (changes.expires_at) {
    if (*changes.expires_at && **changes.expires_at <= to_unix_millis(clock_.now())) {
      outcome.problems.push_back({"expires_at", "past", "must be in the future"});
    } else {
      user.expires_at = *changes.expires_at;
    }
  }
  // The last active system administrator stays one: nobody could manage the installation.
  if (outcome.problems.empty() && person->role == kRoleSystemAdmin &&
      (user.role != kRoleSystemAdmin || user.status != store::kUserStatusActive)) {
    auto admins = store_.users().count_active_with_role(person->organisation_id, kRoleSystemAdmin);
    if (!admins) return tl::unexpected(admins.error());
    if (*admins <= 1) {
      outcome.problems.push_back({"role", "last_administrator", "this is the last system administrator"});
    }
  }
  if (!outcome.problems.empty()) return outcome;
  Status st = store_.transaction([&]() -> Status {
    if (auto updated = store_.users().update(user); !updated) return updated;
    if (privileges_changed) {
      auto ended = store_.console_sessions().remove_for_user(user.id, "");
      if (!ended) return tl::unexpected(ended.error());
    }
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  nlohmann::json details = nlohmann::json::object();
  if (user.role != person->role) {
    details["role"] = {person->role, user.role};
    details["alert"] = administrative(store_, user.organisation_id, user.role);
  }
  if (user.status != person->status) details["status"] = {person->status, user.status};
  if (user.email != person->email) details["email_changed"] = true;
  if (user.expires_at != person->expires_at) {
    details["expires_at"] = user.expires_at ? format_utc_millis(from_unix_millis(*user.expires_at)) : "";
  }
  emit(actor, "user.changed", "user:" + user.id, origin, details);
  outcome.person = std::move(user);
  return outcome;
}

Result<store::UserRecord> People::unlock(const Caller& actor, std::string_view user_id, const Origin& origin) {
  auto person = find(actor, user_id);
  if (!person) return tl::unexpected(person.error());
  person->failed_logins = 0;
  person->lockouts = 0;
  person->locked_until = 0;
  if (auto st = store_.users().update(*person); !st) return tl::unexpected(st.error());
  emit(actor, "user.unlocked", "user:" + person->id, origin);
  return person;
}

Result<PasswordLink> People::issue_password_link(const Caller& actor, std::string_view user_id, const Origin& origin,
                                                 std::string_view delivery) {
  auto person = find(actor, user_id);
  if (!person) return tl::unexpected(person.error());
  auto link = issue_link(*person, options_.reset_lifetime, actor_name(actor));
  if (!link) return tl::unexpected(link.error());
  emit(actor, "password_link.issued", "user:" + person->id, origin,
       {{"expires_at", format_utc_millis(from_unix_millis(link->expires_at))}, {"delivery", delivery}});
  return link;
}

Result<std::vector<LinkToMail>> People::issue_self_service_links(std::string_view name_or_email) {
  std::vector<store::UserRecord> named;
  if (name_or_email.find('@') != std::string_view::npos) {
    auto found = store_.users().find_by_email(name_or_email);
    if (!found) return tl::unexpected(found.error());
    named = std::move(*found);
  } else if (auto username = normalize_username(name_or_email)) {
    auto found = store_.users().find_by_username(*username);
    if (!found) return tl::unexpected(found.error());
    if (*found) named.push_back(std::move(**found));
  }
  const auto now = clock_.now();
  std::vector<LinkToMail> out;
  for (auto& person : named) {
    if (person.status != store::kUserStatusActive || person.email.empty() ||
        (person.expires_at && *person.expires_at <= to_unix_millis(now))) {
      continue;
    }
    {
      const std::lock_guard lock(self_service_mutex_);
      // What no longer limits anybody goes first, so the map holds recent requests only.
      std::erase_if(last_self_service_,
                    [&](const auto& entry) { return now - entry.second >= options_.self_service_interval; });
      if (!last_self_service_.try_emplace(person.id, now).second) continue;
    }
    auto link = issue_link(person, options_.reset_lifetime, "self-service");
    if (!link) return tl::unexpected(link.error());
    out.push_back({std::move(person), std::move(*link)});
  }
  return out;
}

Status People::remove(const Caller& actor, std::string_view user_id, const Origin& origin) {
  auto person = find(actor, user_id);
  if (!person) return tl::unexpected(person.error());
  if (person->id == actor.user.id) return fail(Errc::conflict, "you may not delete yourself");
  if (person->role == kRoleSystemAdmin && person->status == store::kUserStatusActive) {
    auto admins = store_.users().count_active_with_role(person->organisation_id, kRoleSystemAdmin);
    if (!admins) return tl::unexpected(admins.error());
    if (*admins <= 1) return fail(Errc::conflict, "this is the last system administrator");
  }
  auto removed = store_.users().remove(person->id);
  if (!removed) return tl::unexpected(removed.error());
  emit(actor, "user.deleted", "user:" + person->id, origin, {{"username", person->username}});
  return ok();
}

Result<std::vector<FieldProblem>> People::complete_password_link(std::string_view token, std::string_view new_password,
                                                                 const Origin& origin) {
  std::vector<FieldProblem> problems;
  const FieldProblem bad_link{"token", "invalid",
                              "this password link is not valid: it was used, replaced or has expired; ask an "
                              "administrator for a new one"};
  const UnixMillis now = to_unix_millis(clock_.now());
  auto pending = token.size() == 43 ? store_.password_resets().find(link_hash(token))
                                    : Result<std::optional<store::PasswordResetToken>>{};
  if (!pending) return tl::unexpected(pending.error());
  if (!*pending || (*pending)->used_at || (*pending)->expires_at <= now) return std::vector<FieldProblem>{bad_link};
  auto found = store_.users().find((*pending)->user_id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return std::vector<FieldProblem>{bad_link};
  auto user = std::move(**found);

  auto normalized = normalize_password(new_password);
  if (!normalized) return std::vector<FieldProblem>{{"new_password", "invalid", normalized.error().message}};
  auto history = store_.users().password_history(user.id);
  if (!history) return tl::unexpected(history.error());
  std::vector<std::string> previous{user.password_hash};
  for (const auto& h : *history) previous.push_back(h.password_hash);
  for (const auto& p : check_password(*normalized, {user.username, user.email, previous})) {
    problems.push_back({"new_password", p.code, p.message});
  }
  if (!problems.empty()) return problems;  // the link stays usable
  auto hash = hash_password(*normalized, options_.hash_cost);
  if (!hash) return tl::unexpected(hash.error());

  bool raced = false;
  Status st = store_.transaction([&]() -> Status {
    auto consumed = store_.password_resets().consume(link_hash(token), now);
    if (!consumed) return tl::unexpected(consumed.error());
    if (consumed->outcome != store::ConsumeOutcome::consumed) {
      raced = true;
      return fail(Errc::conflict, "password link used meanwhile");
    }
    if (user.password_hash != kNoPassword) {
      if (auto added = store_.users().add_password_history(user.id, {user.password_hash, user.password_changed_at},
                                                           kPasswordHistory - 1);
          !added) {
        return added;
      }
    }
    user.password_hash = std::move(*hash);
    user.password_changed_at = now;
    user.failed_logins = 0;
    user.lockouts = 0;
    user.locked_until = 0;
    if (auto updated = store_.users().update(user); !updated) return updated;
    auto ended = store_.console_sessions().remove_for_user(user.id, "");
    if (!ended) return tl::unexpected(ended.error());
    return ok();
  });
  if (raced) return std::vector<FieldProblem>{bad_link};
  if (!st) return tl::unexpected(st.error());
  if (events_) {
    events_({"user:" + user.id, "password_link.used", "user:" + user.id, events::Outcome::success, origin.source,
             nlohmann::json::object()});
  }
  return problems;
}

Result<std::vector<std::string>> People::disable_unused(std::chrono::hours unused) {
  const UnixMillis cutoff = to_unix_millis(clock_.now() - unused);
  auto stale = store_.users().list_unused_since(cutoff);
  if (!stale) return tl::unexpected(stale.error());
  std::vector<std::string> disabled;
  for (auto user : *stale) {
    // The last system administrator stays: a dormant installation must remain manageable.
    if (user.role == kRoleSystemAdmin) {
      auto admins = store_.users().count_active_with_role(user.organisation_id, kRoleSystemAdmin);
      if (!admins) return tl::unexpected(admins.error());
      if (*admins <= 1) continue;
    }
    user.status = std::string(store::kUserStatusDisabled);
    user.disabled_reason = "unused";
    Status st = store_.transaction([&]() -> Status {
      if (auto updated = store_.users().update(user); !updated) return updated;
      auto ended = store_.console_sessions().remove_for_user(user.id, "");
      if (!ended) return tl::unexpected(ended.error());
      return ok();
    });
    if (!st) return tl::unexpected(st.error());
    disabled.push_back(user.id);
  }
  return disabled;
}

Result<std::vector<store::OrganisationRecord>> People::organisations(const Caller& actor) {
  if (!spans_organisations(actor)) {
    auto own = store_.organisations().find(actor.user.organisation_id);
    if (!own) return tl::unexpected(own.error());
    return *own ? std::vector<store::OrganisationRecord>{**own} : std::vector<store::OrganisationRecord>{};
  }
  return store_.organisations().list();
}

Result<std::vector<FieldProblem>> People::create_organisation(const Caller& actor,
                                                              const store::OrganisationRecord& organisation,
                                                              const Origin& origin) {
  std::vector<FieldProblem> problems;
  if (!spans_organisations(actor)) {
    return fail(Errc::permission_denied, "only a system administrator creates organisations");
  }
  if (!valid_organisation_id(organisation.id)) {
    problems.push_back({"id", "invalid", "must be 2 to 64 of a-z, 0-9 and '-', starting with a letter or digit"});
  }
  if (organisation.name.empty() || organisation.name.size() > 200) {
    problems.push_back({"name", "invalid", "must be 1 to 200 bytes"});
  }
  if (!problems.empty()) return problems;
  auto record = organisation;
  record.created_at = to_unix_millis(clock_.now());
  if (auto st = store_.organisations().insert(record); !st) {
    if (st.error().is(Errc::already_exists)) return std::vector<FieldProblem>{{"id", "taken", "is already in use"}};
    return tl::unexpected(st.error());
  }
  emit(actor, "organisation.created", "organisation:" + record.id, origin,
       {{"require_second_factor", record.require_second_factor}});
  return problems;
}

Result<std::vector<FieldProblem>> People::change_organisation(const Caller& actor, std::string_view id,
                                                              std::optional<std::string> name,
                                                              std::optional<bool> require_second_factor,
                                                              const Origin& origin) {
  if (!spans_organisations(actor)) {
    return fail(Errc::permission_denied, "only a system administrator changes organisations");
  }
  auto found = store_.organisations().find(id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return fail(Errc::not_found, "no such organisation");
  std::vector<FieldProblem> problems;
  if (name && (name->empty() || name->size() > 200)) problems.push_back({"name", "invalid", "must be 1 to 200 bytes"});
  if (!problems.empty()) return problems;
  auto record = **found;
  nlohmann::json details = nlohmann::json::object();
  if (name && *name != record.name) {
    details["name"] = {{"old", record.name}, {"new", *name}};
    record.name = *name;
  }
  if (require_second_factor && *require_second_factor != record.require_second_factor) {
    details["require_second_factor"] = {{"old", record.require_second_factor}, {"new", *require_second_factor}};
    if (!*require_second_factor) details["alert"] = true;
    record.require_second_factor = *require_second_factor;
  }
  if (details.empty()) return problems;
  if (auto st = store_.organisations().update(record); !st) return tl::unexpected(st.error());
  emit(actor, "organisation.changed", "organisation:" + record.id, origin, std::move(details));
  return problems;
}

}  // namespace torii::identity

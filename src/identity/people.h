// People management: organisation administrators (and the system administrator) create
// people, change their role, e-mail, status and end date, unlock them, issue one-time
// password links, and delete them; organisations are the system administrator's.
//
//   JPCERT I-6…I-9  personal accounts only, new people start as viewers, roles from the
//                   built-in set, nobody acts outside their organisation except the system
//                   administrator, nobody grants what they could not hold themselves
//   JPCERT I-2      end dates; people unused for a configured period are disabled
//   IIIT DI7        password links: single use, stored hashed, 15 minutes (24 hours for a
//                   new person's first password); a reset ends every session of the person
//   JPCERT I-1      self-service resets ("forgot password") reveal nothing about who exists:
//                   the caller learns no outcome, and a person gets at most one link per
//                   self_service_interval
//
// Every decision here is made against the acting person (`actor`), so the console's
// permission check ("users.write") is the first gate, not the only one. Changes that alter
// what a person may do (role, status) end their sessions: their next request signs them out.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "identity/accounts.h"
#include "store/store.h"

namespace torii::identity {

struct PeopleOptions {
  PasswordHashCost hash_cost;
  std::chrono::minutes reset_lifetime{15};
  std::chrono::hours first_password_lifetime{24};
  // Self-service: at most one link per person in this time.
  std::chrono::minutes self_service_interval{5};
};

struct NewPerson {
  std::string organisation_id;  // empty: the actor's
  std::string username;
  std::string email;
  std::string role;  // empty: the default role (viewer)
  std::optional<UnixMillis> expires_at;
};

// What an administrator changes about a person; unset members stay as they are.
struct PersonChanges {
  std::optional<std::string> role;
  std::optional<std::string> email;
  std::optional<std::string> status;                    // "active" or "disabled"
  std::optional<std::optional<UnixMillis>> expires_at;  // a date, or none
};

// A one-time password link's token: shown once to the administrator (who hands it on),
// never stored, never logged.
struct PasswordLink {
  std::string token;
  UnixMillis expires_at = 0;
};

// A link issued to be mailed to the person it is for.
struct LinkToMail {
  store::UserRecord person;
  PasswordLink link;
};

struct PersonOutcome {
  std::vector<FieldProblem> problems;  // nothing changed
  std::optional<store::UserRecord> person;
  std::optional<PasswordLink> link;
};

class People {
 public:
  People(store::Store& store, const Clock& clock, Random& random, PeopleOptions options, EventSink events);

  // The people of an organisation the actor may see (their own; any for the system
  // administrator). permission_denied for another organisation.
  [[nodiscard]] Result<std::vector<store::UserRecord>> list(const Caller& actor, std::string_view organisation_id);
  // not_found for an unknown person and for one of another organisation (the actor learns
  // nothing about other organisations).
  [[nodiscard]] Result<store::UserRecord> find(const Caller& actor, std::string_view user_id);

  // A new person without a usable password, and the link for their first password.
  [[nodiscard]] Result<PersonOutcome> create(const Caller& actor, const NewPerson& person, const Origin& origin);
  [[nodiscard]] Result<PersonOutcome> change(const Caller& actor, std::string_view user_id,
                                             const PersonChanges& changes, const Origin& origin);
  [[nodiscard]] Result<store::UserRecord> unlock(const Caller& actor, std::string_view user_id, const Origin& origin);
  // A new password link (any earlier one stops working). `delivery` ("answer", "email") is
  // recorded in the event.
  [[nodiscard]] Result<PasswordLink> issue_password_link(const Caller& actor, std::string_view user_id,
                                                         const Origin& origin, std::string_view delivery = "answer");

  // Self-service reset: new links for the people `name_or_email` names (a username, or an
  // e-mail address, which several people may share) who are active, not past their end date,
  // have an e-mail address and were not given a self-service link in the last
  // self_service_interval. Often none: whoever asked must not learn which (the console
  // answers the same either way and sends the mail off the request path). Events are the
  // caller's to write, once the mail is queued.
  [[nodiscard]] Result<std::vector<LinkToMail>> issue_self_service_links(std::string_view name_or_email);
  // conflict for the actor themselves and for the last active system administrator.
  [[nodiscard]] Status remove(const Caller& actor, std::string_view user_id, const Origin& origin);

  // Sets the password a link was issued for. Problems: token (unknown, used or expired:
  // one message), new_password (the policy). The link is used up only by success; every
  // session of the person ends, and a lock is lifted. Slow (Argon2id).
  [[nodiscard]] Result<std::vector<FieldProblem>> complete_password_link(std::string_view token,
                                                                         std::string_view new_password,
                                                                         const Origin& origin);

  // Disables active people who have not signed in for `unused` (never signed in: since
  // they were created); returns their ids (JPCERT I-2).
  [[nodiscard]] Result<std::vector<std::string>> disable_unused(std::chrono::hours unused);

  // Organisations: the system administrator's.
  [[nodiscard]] Result<std::vector<store::OrganisationRecord>> organisations(const Caller& actor);
  [[nodiscard]] Result<std::vector<FieldProblem>> create_organisation(const Caller& actor,
                                                                      const store::OrganisationRecord& organisation,
                                                                      const Origin& origin);
  // Renames it and/or sets whether everyone in it must use a second factor (the system
  // administrator's). not_found for an unknown organisation. Turning the requirement off is
  // recorded as an alert: it weakens a protection (JPCERT VIII-2).
  [[nodiscard]] Result<std::vector<FieldProblem>> change_organisation(const Caller& actor, std::string_view id,
                                                                      std::optional<std::string> name,
                                                                      std::optional<bool> require_second_factor,
                                                                      const Origin& origin);

 private:
  [[nodiscard]] Status check_reach(const Caller& actor, const store::UserRecord& person) const;
  [[nodiscard]] Result<PasswordLink> issue_link(const store::UserRecord& person, std::chrono::minutes lifetime,
                                                const std::string& issued_by);
  void emit(const Caller& actor, std::string action, std::string object, const Origin& origin,
            nlohmann::json details = nlohmann::json::object()) const;

  store::Store& store_;
  const Clock& clock_;
  Random& random_;
  PeopleOptions options_;
  EventSink events_;
  std::mutex self_service_mutex_;  // guards last_self_service_
  std::map<std::string, std::chrono::system_clock::time_point, std::less<>> last_self_service_;  // by user id
};

// What a person who has no password yet has in place of a hash: never verifies.
inline constexpr std::string_view kNoPassword = "!no-password";

}  // namespace torii::identity

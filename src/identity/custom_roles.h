// Custom roles: an organisation's own roles, each a named set of permissions, next to the
// five built-in ones (JPCERT I-7, I-8). People hold them like any role; what a role grants
// is looked up on every request, so a change takes effect at once.
//
// Nobody grants what they do not hold themselves: a role's permissions must be within the
// acting person's, and a custom role never holds the installation's permissions
// (settings, creating organisations). Every custom role includes account.self, so its
// holders can always change their own password and second factor. A role that may manage
// people (users.write) is an administrator's: its holders must use a second factor.
//
// Changing a role's permissions ends the sessions of everyone holding it, so each signs in
// again under the new grants (with a second factor if the role now needs one). A role some
// person holds cannot be removed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "identity/accounts.h"
#include "identity/roles.h"
#include "store/store.h"

namespace torii::identity {

// What any role of an organisation grants: a built-in role's permissions, a custom role's
// of that organisation, or nothing for a name that is neither (deny unless allowed).
[[nodiscard]] Result<PermissionSet> role_permissions(store::Store& store, std::string_view organisation_id,
                                                     std::string_view role);

// What a stored custom role grants (a name this version does not know grants nothing).
[[nodiscard]] PermissionSet role_permissions(const store::CustomRoleRecord& role);

struct NewRole {
  std::string organisation_id;  // empty: the actor's
  std::string name;
  std::string description;
  std::vector<std::string> permissions;  // permission names
};

// What changes about a role; unset members stay as they are.
struct RoleChanges {
  std::optional<std::string> description;
  std::optional<std::vector<std::string>> permissions;
};

// A role as the console shows it.
struct RoleView {
  std::string name;
  std::string description;
  bool builtin = false;
  std::vector<std::string> permissions;
};

struct RoleOutcome {
  std::vector<FieldProblem> problems;  // nothing changed
  std::optional<RoleView> role;
};

class CustomRoles {
 public:
  static constexpr std::size_t kMaxRolesPerOrganisation = 64;
  static constexpr std::size_t kMaxDescriptionBytes = 256;

  // Borrows the store and the clock; both must outlive this.
  CustomRoles(store::Store& store, const Clock& clock, EventSink events);

  // The built-in roles, then the organisation's own by name. permission_denied for another
  // organisation unless the actor's role spans organisations.
  [[nodiscard]] Result<std::vector<RoleView>> list(const Caller& actor, std::string_view organisation_id);
  [[nodiscard]] Result<RoleOutcome> create(const Caller& actor, const NewRole& role, const Origin& origin);
  // not_found for an unknown role (built-in roles cannot be changed: conflict).
  [[nodiscard]] Result<RoleOutcome> change(const Caller& actor, std::string_view organisation_id, std::string_view name,
                                           const RoleChanges& changes, const Origin& origin);
  // not_found for an unknown role; conflict for a built-in role or one somebody holds.
  [[nodiscard]] Status remove(const Caller& actor, std::string_view organisation_id, std::string_view name,
                              const Origin& origin);

 private:
  // The organisation the actor acts on, or permission_denied.
  [[nodiscard]] Result<std::string> scope(const Caller& actor, std::string_view organisation_id) const;
  // The permissions named, with account.self; problems for unknown names, the
  // installation's permissions and anything the actor does not hold.
  [[nodiscard]] PermissionSet read_permissions(const Caller& actor, const std::vector<std::string>& names,
                                               std::vector<FieldProblem>& problems) const;
  void emit(const Caller& actor, std::string action, const store::CustomRoleRecord& role, const Origin& origin) const;

  store::Store& store_;
  const Clock& clock_;
  EventSink events_;
};

}  // namespace torii::identity

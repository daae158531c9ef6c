#include "identity/custom_roles.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace torii::identity {
namespace {

bool valid_role_name(std::string_view name) {
  return name.size() >= 2 && name.size() <= 32 && name.front() != '-' &&
         std::ranges::all_of(name, [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

PermissionSet parse_names(const std::vector<std::string>& names) {
  PermissionSet set;
  for (const auto& name : names) {
    // A name this version does not know (written by a newer one) grants nothing.
    if (auto p = parse_permission(name)) set.add(*p);
  }
  return set;
}

RoleView view(const store::CustomRoleRecord& r) { return {r.name, r.description, false, r.permissions}; }

}  // namespace

Result<PermissionSet> role_permissions(store::Store& store, std::string_view organisation_id, std::string_view role) {
  if (is_builtin_role(role)) return builtin_role_permissions(role);
  auto found = store.custom_roles().find(organisation_id, role);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return PermissionSet{};
  return role_permissions(**found);
}

PermissionSet role_permissions(const store::CustomRoleRecord& role) { return parse_names(role.permissions); }

CustomRoles::CustomRoles(store::Store& store, const Clock& clock, EventSink events)
    : store_(store), clock_(clock), events_(std::move(events)) {}

void CustomRoles::emit(const Caller& actor, std::string action, const store::CustomRoleRecord& role,
                       const Origin& origin) const {
  if (!events_) return;
  // A role that may manage people makes administrators of its holders: an alert, as a new
  // administrator is (JPCERT VIII-2).
  events_({"user:" + actor.user.id,
           std::move(action),
           fmt::format("role:{}/{}", role.organisation_id, role.name),
           events::Outcome::success,
           origin.source,
           {{"organisation", role.organisation_id},
            {"permissions", role.permissions},
            {"alert", is_administrator(parse_names(role.permissions))}}});
}

Result<std::string> CustomRoles::scope(const Caller& actor, std::string_view organisation_id) const {
  if (organisation_id.empty() || organisation_id == actor.user.organisation_id) return actor.user.organisation_id;
  if (!spans_organisations(actor)) {
    return fail(Errc::permission_denied, "you may not act on that organisation");
  }
  return std::string(organisation_id);
}

PermissionSet CustomRoles::read_permissions(const Caller& actor, const std::vector<std::string>& names,
                                            std::vector<FieldProblem>& problems) const {
  PermissionSet set;
  set.add(Permission::account_self);
  for (const auto& name : names) {
    const auto p = parse_permission(name);
    if (!p) {
      problems.push_back({"permissions", "unknown", fmt::format("no permission is called \"{}\"", name)});
    } else if (installation_permissions().has(*p)) {
      problems.push_back(
          {"permissions", "not_allowed", fmt::format("\"{}\" belongs to the system administrator only", name)});
    } else if (!actor.permissions.has(*p)) {
      problems.push_back({"permissions", "forbidden", fmt::format("you do not hold \"{}\" yourself", name)});
    } else {
      set.add(*p);
    }
  }
  return set;
}

Result<std::vector<RoleView>> CustomRoles::list(const Caller& actor, std::string_view organisation_id) {
  auto org = scope(actor, organisation_id);
  if (!org) return tl::unexpected(org.error());
  std::vector<RoleView> out;
  for (std::string_view name : builtin_roles()) {
    out.push_back({std::string(name), "", true, builtin_role_permissions(name).names()});
  }
  auto custom = store_.custom_roles().list(*org);
  if (!custom) return tl::unexpected(custom.error());
  for (const auto& r : *custom) out.push_back(view(r));
  return out;
}

Result<RoleOutcome> CustomRoles::create(const Caller& actor, const NewRole& role, const Origin& origin) {
  RoleOutcome outcome;
  auto org = scope(actor, role.organisation_id);
  if (!org) {
    outcome.problems.push_back({"organisation", "forbidden", "you may not add roles to that organisation"});
  } else if (auto found = store_.organisations().find(*org); !found) {
    return tl::unexpected(found.error());
  } else if (!*found) {
    outcome.problems.push_back({"organisation", "unknown", "no such organisation"});
  }
  if (!valid_role_name(role.name)) {
    outcome.problems.push_back(
        {"name", "invalid", "must be 2 to 32 lower-case letters, digits and '-', not starting with '-'"});
  } else if (is_builtin_role(role.name)) {
    outcome.problems.push_back({"name", "taken", "is the name of a built-in role"});
  }
  if (role.description.size() > kMaxDescriptionBytes) {
    outcome.problems.push_back(
        {"description", "too_long", fmt::format("must be at most {} bytes", kMaxDescriptionBytes)});
  }
  const PermissionSet permissions = read_permissions(actor, role.permissions, outcome.problems);
  if (org && outcome.problems.empty()) {
    auto existing = store_.custom_roles().list(*org);
    if (!existing) return tl::unexpected(existing.error());
    if (existing->size() >= kMaxRolesPerOrganisation) {
      outcome.problems.push_back(
          {"name", "too_many",
           fmt::format("an organisation has at most {} roles of its own", kMaxRolesPerOrganisation)});
    } else if (std::ranges::any_of(*existing, [&](const auto& r) { return r.name == role.name; })) {
      outcome.problems.push_back({"name", "taken", "the organisation already has a role of this name"});
    }
  }
  if (!outcome.problems.empty()) return outcome;

  const UnixMillis now = to_unix_millis(clock_.now());
  const store::CustomRoleRecord record{*org, role.name, role.description, permissions.names(), now, now};
  if (auto st = store_.custom_roles().insert(record); !st) {
    if (st.error().is(Errc::already_exists)) {
      outcome.problems.push_back({"name", "taken", "the organisation already has a role of this name"});
      return outcome;
    }
    return tl::unexpected(st.error());
  }
  emit(actor, "role.created", record, origin);
  outcome.role = view(record);
  return outcome;
}

Result<RoleOutcome> CustomRoles::change(const Caller& actor, std::string_view organisation_id, std::string_view name,
                                        const RoleChanges& changes, const Origin& origin) {
  auto org = scope(actor, organisation_id);
  if (!org) return tl::unexpected(org.error());
  if (is_builtin_role(name)) return fail(Errc::conflict, "built-in roles cannot be changed");
  auto found = store_.custom_roles().find(*org, name);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return fail(Errc::not_found, "no such role");
  store::CustomRoleRecord record = std::move(**found);

  RoleOutcome outcome;
  // Nobody changes a role into more than they hold, nor takes away what they could not grant.
  const PermissionSet before = parse_names(record.permissions);
  if (!actor.permissions.contains(before)) {
    outcome.problems.push_back({"permissions", "forbidden", "the role holds permissions you do not hold yourself"});
  }
  if (changes.description) {
    if (changes.description->size() > kMaxDescriptionBytes) {
      outcome.problems.push_back(
          {"description", "too_long", fmt::format("must be at most {} bytes", kMaxDescriptionBytes)});
    }
    record.description = *changes.description;
  }
  PermissionSet after = before;
  if (changes.permissions) after = read_permissions(actor, *changes.permissions, outcome.problems);
  if (!outcome.problems.empty()) return outcome;

  record.permissions = after.names();
  record.updated_at = to_unix_millis(clock_.now());
  Status st = store_.transaction([&]() -> Status {
    if (auto updated = store_.custom_roles().update(record); !updated) return updated;
    if (after == before) return ok();
    // Everyone holding the role signs in again under its new grants.
    auto holders = store_.users().list(*org);
    if (!holders) return tl::unexpected(holders.error());
    for (const auto& person : *holders) {
      if (person.role != record.name) continue;
      if (auto ended = store_.console_sessions().remove_for_user(person.id, ""); !ended) {
        return tl::unexpected(ended.error());
      }
    }
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  emit(actor, "role.changed", record, origin);
  outcome.role = view(record);
  return outcome;
}

Status CustomRoles::remove(const Caller& actor, std::string_view organisation_id, std::string_view name,
                           const Origin& origin) {
  auto org = scope(actor, organisation_id);
  if (!org) return tl::unexpected(org.error());
  if (is_builtin_role(name)) return fail(Errc::conflict, "built-in roles cannot be removed");
  auto found = store_.custom_roles().find(*org, name);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return fail(Errc::not_found, "no such role");
  if (!actor.permissions.contains(parse_names((*found)->permissions))) {
    return fail(Errc::permission_denied, "the role holds permissions you do not hold yourself");
  }
  Status st = store_.transaction([&]() -> Status {
    auto holders = store_.users().list(*org);
    if (!holders) return tl::unexpected(holders.error());
    if (std::ranges::any_of(*holders, [&](const auto& p) { return p.role == name; })) {
      return fail(Errc::conflict, "people hold this role; give them another first");
    }
    auto removed = store_.custom_roles().remove(*org, name);
    if (!removed) return tl::unexpected(removed.error());
    return ok();
  });
  if (!st) return st;
  emit(actor, "role.removed", **found, origin);
  return ok();
}

}  // namespace torii::identity

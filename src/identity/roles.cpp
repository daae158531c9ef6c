#include "identity/roles.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

namespace torii::identity {
namespace {

using P = Permission;

constexpr std::array<std::pair<Permission, std::string_view>, 21> kNames = {{
    {P::account_self, "account.self"},
    {P::devices_read, "devices.read"},
    {P::devices_write, "devices.write"},
    {P::devices_delete, "devices.delete"},
    {P::devices_command, "devices.command"},
    {P::profiles_read, "profiles.read"},
    {P::profiles_write, "profiles.write"},
    {P::telemetry_read, "telemetry.read"},
    {P::users_read, "users.read"},
    {P::users_write, "users.write"},
    {P::security_log_read, "security_log.read"},
    {P::settings_read, "settings.read"},
    {P::settings_write, "settings.write"},
    {P::organisations_read, "organisations.read"},
    {P::organisations_write, "organisations.write"},
    {P::rules_read, "rules.read"},
    {P::rules_write, "rules.write"},
    {P::alerts_read, "alerts.read"},
    {P::alerts_manage, "alerts.manage"},
    {P::channels_read, "channels.read"},
    {P::channels_write, "channels.write"},
}};

constexpr std::array<Permission, 21> kAll = {
    P::account_self,      P::devices_read,   P::devices_write,  P::devices_delete,     P::devices_command,
    P::profiles_read,     P::profiles_write, P::telemetry_read, P::users_read,         P::users_write,
    P::security_log_read, P::settings_read,  P::settings_write, P::organisations_read, P::organisations_write,
    P::rules_read,        P::rules_write,    P::alerts_read,    P::alerts_manage,      P::channels_read,
    P::channels_write};
static_assert(kAll.size() <= 32, "PermissionSet keeps one bit per permission in 32 bits");

struct RoleDefinition {
  std::string_view name;
  std::span<const Permission> grants;
};

constexpr std::array<Permission, 17> kOrgAdmin = {
    P::account_self,   P::devices_read,   P::devices_write, P::devices_delete, P::devices_command,    P::profiles_read,
    P::profiles_write, P::telemetry_read, P::users_read,    P::users_write,    P::organisations_read, P::rules_read,
    P::rules_write,    P::alerts_read,    P::alerts_manage, P::channels_read,  P::channels_write};
constexpr std::array<Permission, 10> kOperator = {
    P::account_self,   P::devices_read, P::devices_write, P::devices_command, P::profiles_read,
    P::telemetry_read, P::rules_read,   P::rules_write,   P::alerts_read,     P::alerts_manage};
constexpr std::array<Permission, 6> kViewer = {P::account_self,   P::devices_read, P::profiles_read,
                                               P::telemetry_read, P::rules_read,   P::alerts_read};
// Auditors read the record of what happened, and what it happened to; they change nothing.
constexpr std::array<Permission, 8> kAuditor = {P::account_self, P::devices_read,      P::profiles_read,
                                                P::users_read,   P::security_log_read, P::rules_read,
                                                P::alerts_read,  P::channels_read};

constexpr std::array<RoleDefinition, 5> kRoles = {{
    {kRoleSystemAdmin, kAll},
    {kRoleOrgAdmin, kOrgAdmin},
    {kRoleOperator, kOperator},
    {kRoleViewer, kViewer},
    {kRoleAuditor, kAuditor},
}};

constexpr std::array<std::string_view, 5> kRoleNames = {kRoleSystemAdmin, kRoleOrgAdmin, kRoleOperator, kRoleViewer,
                                                        kRoleAuditor};

}  // namespace

std::string_view to_string(Permission permission) {
  for (const auto& [p, name] : kNames) {
    if (p == permission) return name;
  }
  return "unknown";
}

std::optional<Permission> parse_permission(std::string_view name) {
  for (const auto& [p, n] : kNames) {
    if (n == name) return p;
  }
  return std::nullopt;
}

std::span<const Permission> all_permissions() { return kAll; }

PermissionSet PermissionSet::of(std::span<const Permission> permissions) {
  PermissionSet set;
  for (Permission p : permissions) set.add(p);
  return set;
}

std::vector<std::string> PermissionSet::names() const {
  std::vector<std::string> out;
  for (const auto& [p, name] : kNames) {
    if (has(p)) out.emplace_back(name);
  }
  std::ranges::sort(out);
  return out;
}

PermissionSet installation_permissions() {
  return PermissionSet::of(std::array{P::settings_read, P::settings_write, P::organisations_write});
}

PermissionSet builtin_role_permissions(std::string_view role) {
  for (const auto& r : kRoles) {
    if (r.name == role) return PermissionSet::of(r.grants);
  }
  return {};
}

std::span<const std::string_view> builtin_roles() { return kRoleNames; }

bool is_builtin_role(std::string_view role) { return std::ranges::find(kRoleNames, role) != kRoleNames.end(); }

bool role_grants(std::string_view role, Permission permission) {
  for (const auto& r : kRoles) {
    if (r.name == role) return std::ranges::find(r.grants, permission) != r.grants.end();
  }
  return false;
}

bool is_administrator_role(std::string_view role) { return role == kRoleSystemAdmin || role == kRoleOrgAdmin; }

bool role_spans_organisations(std::string_view role) { return role == kRoleSystemAdmin; }

}  // namespace torii::identity

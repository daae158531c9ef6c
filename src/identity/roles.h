// Roles and named permissions (JPCERT I-7…I-9, III-5, III-6).
//
// Every console endpoint names the one permission it needs; a person holds the permissions
// of their role within their own organisation. Nobody holds a permission their role does not
// list: deny unless allowed. Only the system administrator acts across organisations.
// docs/permissions.md publishes this matrix and a test compares the two.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace torii::identity {

enum class Permission : std::uint8_t {
  account_self,  // one's own account: password, second factor, sessions
  devices_read,
  devices_write,  // create, disable, enable, revoke
  devices_delete,
  profiles_read,
  profiles_write,
  telemetry_read,
  users_read,
  users_write,
  security_log_read,
  settings_read,
  settings_write,
  organisations_read,   // one's own organisation; every one for the system administrator
  organisations_write,  // create organisations and set their policy
  devices_command,      // send commands to devices (IIIT I7)
  rules_read,           // the Decision Trigger's rules and their history
  rules_write,          // create, change, switch on or off, delete and dry-run rules
  alerts_read,          // the organisation's alerts (JPCERT VIII-1, VIII-2)
  alerts_manage,        // acknowledge and resolve them
  channels_read,        // the organisation's notification channels, redacted
  channels_write,       // create, change, delete and test notification channels
};

// "devices.read", "security_log.read", ...
[[nodiscard]] std::string_view to_string(Permission permission);
[[nodiscard]] std::optional<Permission> parse_permission(std::string_view name);
[[nodiscard]] std::span<const Permission> all_permissions();

// A set of permissions: what a role grants, what an API token may do.
class PermissionSet {
 public:
  constexpr PermissionSet() = default;
  [[nodiscard]] static PermissionSet of(std::span<const Permission> permissions);

  [[nodiscard]] constexpr bool has(Permission p) const { return (bits_ & bit(p)) != 0; }
  constexpr void add(Permission p) { bits_ |= bit(p); }
  // Whether every permission of `other` is in this set.
  [[nodiscard]] constexpr bool contains(PermissionSet other) const { return (other.bits_ & ~bits_) == 0; }
  [[nodiscard]] constexpr PermissionSet operator&(PermissionSet other) const {
    return PermissionSet(bits_ & other.bits_);
  }
  [[nodiscard]] constexpr bool empty() const { return bits_ == 0; }
  // The names, sorted ("account.self", "devices.read", ...).
  [[nodiscard]] std::vector<std::string> names() const;

  friend constexpr bool operator==(PermissionSet, PermissionSet) = default;

 private:
  constexpr explicit PermissionSet(std::uint32_t bits) : bits_(bits) {}
  static constexpr std::uint32_t bit(Permission p) { return std::uint32_t{1} << static_cast<unsigned>(p); }
  std::uint32_t bits_ = 0;
};

// Permissions over the installation as a whole (settings, creating organisations): only the
// system administrator's built-in role holds them; a custom role never does.
[[nodiscard]] PermissionSet installation_permissions();

inline constexpr std::string_view kRoleSystemAdmin = "system-admin";
inline constexpr std::string_view kRoleOrgAdmin = "org-admin";
inline constexpr std::string_view kRoleOperator = "operator";
inline constexpr std::string_view kRoleViewer = "viewer";
inline constexpr std::string_view kRoleAuditor = "auditor";
// New people start with the least: they see, they change nothing (JPCERT I-7).
inline constexpr std::string_view kDefaultRole = kRoleViewer;

[[nodiscard]] std::span<const std::string_view> builtin_roles();
[[nodiscard]] bool is_builtin_role(std::string_view role);
// False for an unknown role: a role nobody defined grants nothing. Built-in roles only;
// identity/custom_roles.h resolves any role of an organisation.
[[nodiscard]] bool role_grants(std::string_view role, Permission permission);
// What a built-in role grants; empty for any other name.
[[nodiscard]] PermissionSet builtin_role_permissions(std::string_view role);
// Whoever may manage people is an administrator and must always use a second factor,
// whatever the role is called (built-in or custom).
[[nodiscard]] constexpr bool is_administrator(PermissionSet permissions) {
  return permissions.has(Permission::users_write);
}
// Administrators must always use a second factor, whatever their organisation's policy.
[[nodiscard]] bool is_administrator_role(std::string_view role);
// The system administrator's permissions hold in every organisation; everyone else's only
// in their own.
[[nodiscard]] bool role_spans_organisations(std::string_view role);

}  // namespace torii::identity

#include "identity/roles.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace torii::identity {
namespace {

TEST(Roles, EveryPermissionHasADistinctNameThatParsesBack) {
  std::set<std::string_view> names;
  for (const auto p : all_permissions()) {
    const auto name = to_string(p);
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_EQ(parse_permission(name), p);
  }
  EXPECT_FALSE(parse_permission("devices.*"));
}

TEST(Roles, AnUnknownRoleGrantsNothing) {
  for (const auto p : all_permissions()) EXPECT_FALSE(role_grants("root", p)) << to_string(p);
  for (const auto p : all_permissions()) EXPECT_FALSE(role_grants("", p)) << to_string(p);
}

TEST(Roles, OnlyTheSystemAdministratorHoldsEverythingAndSpansOrganisations) {
  for (const auto p : all_permissions()) EXPECT_TRUE(role_grants(kRoleSystemAdmin, p)) << to_string(p);
  for (const auto role : builtin_roles()) {
    EXPECT_EQ(role_spans_organisations(role), role == kRoleSystemAdmin) << role;
  }
}

TEST(Roles, ViewersAndAuditorsChangeNothingAndOnlyAuditorsReadTheSecurityLogBesidesTheSystem) {
  for (const auto role : {kRoleViewer, kRoleAuditor}) {
    for (const auto p : {Permission::devices_write, Permission::devices_delete, Permission::profiles_write,
                         Permission::users_write, Permission::settings_write}) {
      EXPECT_FALSE(role_grants(role, p)) << role << " " << to_string(p);
    }
  }
  for (const auto role : builtin_roles()) {
    EXPECT_EQ(role_grants(role, Permission::security_log_read), role == kRoleSystemAdmin || role == kRoleAuditor)
        << role;
    EXPECT_TRUE(role_grants(role, Permission::account_self)) << role;
  }
  EXPECT_EQ(kDefaultRole, kRoleViewer);
}

}  // namespace
}  // namespace torii::identity

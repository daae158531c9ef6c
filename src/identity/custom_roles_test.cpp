#include "identity/custom_roles.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "identity/people.h"
#include "identity/setup_token.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

constexpr std::string_view kStrong = "violet harbour ladder sprinkle 42";

class CustomRolesTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    AccountsOptions options;
    options.hash_cost = minimum_password_hash_cost();
    const auto sink = [this](const events::SecurityEvent& e) {
      events_.push_back(e.action + (e.details.value("alert", false) ? " (alert)" : ""));
    };
    accounts_ = std::make_unique<Accounts>(*store_, *keys_, clock_, random_, options, sink);
    people_ = std::make_unique<People>(*store_, clock_, random_, PeopleOptions{options.hash_cost}, sink);
    roles_ = std::make_unique<CustomRoles>(*store_, clock_, sink);
    auto token = issue_setup_token(*store_, random_, clock_, 60min);
    auto made = accounts_->create_first_administrator(
        {token->token, "root-admin", "admin@example.org", std::string(kStrong)}, origin_);
    ASSERT_TRUE(made && made->ticket);
    system_admin_ = *accounts_->resolve_session(made->ticket->id).value();
    ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
    org_admin_ = acting_as(person(system_admin_, "acme-admin", "org-admin", "acme"));
  }

  // A person created by `actor`, with their first password set through the link.
  store::UserRecord person(const Caller& actor, const std::string& name, const std::string& role,
                           const std::string& organisation = "") {
    auto made = people_->create(actor, {organisation, name, name + "@example.org", role, std::nullopt}, origin_);
    EXPECT_TRUE(made && made->person) << (made ? ::testing::PrintToString(made->problems) : made.error().message);
    if (!made || !made->person) return {};
    auto set = people_->complete_password_link(made->link->token, kStrong, origin_);
    EXPECT_TRUE(set && set->empty());
    return *made->person;
  }

  // An actor holding what the person's role grants now (administrators would need TOTP to
  // sign in; what is tested here is what they may do once signed in).
  Caller acting_as(const store::UserRecord& user) {
    auto permissions = role_permissions(*store_, user.organisation_id, user.role);
    EXPECT_TRUE(permissions);
    return Caller{{}, user, permissions.value_or(PermissionSet{}), std::nullopt};
  }

  // Signs a person in with their password; the session's stage and what it grants.
  std::optional<Caller> sign_in(const std::string& name) {
    auto in = accounts_->sign_in(name, kStrong, origin_);
    if (!in || in->status != SignInStatus::signed_in) return std::nullopt;
    return accounts_->resolve_session(in->ticket->id).value();
  }

  Result<RoleOutcome> create(const Caller& actor, const std::string& name, std::vector<std::string> permissions,
                             const std::string& organisation = "") {
    return roles_->create(actor, {organisation, name, "", std::move(permissions)}, origin_);
  }

  std::unique_ptr<Accounts> accounts_;
  std::unique_ptr<People> people_;
  std::unique_ptr<CustomRoles> roles_;
  std::vector<std::string> events_;
  Origin origin_{"192.0.2.1:5000", "test"};
  Caller system_admin_;
  Caller org_admin_;
};

TEST_F(CustomRolesTest, ACustomRoleGrantsItsPermissionsAndAlwaysTheOwnAccount) {
  auto made = create(org_admin_, "field-tech", {"telemetry.read", "devices.write", "devices.read"});
  ASSERT_TRUE(made) << made.error().message;
  ASSERT_THAT(made->problems, IsEmpty());
  EXPECT_THAT(made->role->permissions, ElementsAre("account.self", "devices.read", "devices.write", "telemetry.read"));
  EXPECT_THAT(events_, Contains("role.created"));

  person(org_admin_, "tech-1", "field-tech");
  auto caller = sign_in("tech-1");
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->session.stage, store::kSessionStageFull);  // not an administrator: no second factor needed
  EXPECT_THAT(caller->permissions.names(),
              ElementsAre("account.self", "devices.read", "devices.write", "telemetry.read"));
  EXPECT_FALSE(caller->permissions.has(Permission::users_read));
}

TEST_F(CustomRolesTest, NobodyPutsIntoARoleWhatTheyDoNotHoldOrWhatBelongsToTheInstallation) {
  auto made = create(org_admin_, "snoop", {"security_log.read", "settings.read", "no.such", "devices.read"});
  ASSERT_TRUE(made);
  EXPECT_THAT(made->problems,
              ElementsAre(Field(&FieldProblem::code, "forbidden"), Field(&FieldProblem::code, "not_allowed"),
                          Field(&FieldProblem::code, "unknown")));
  EXPECT_FALSE(made->role);
  auto stored = store_->custom_roles().list("acme");
  ASSERT_TRUE(stored);
  EXPECT_THAT(*stored, IsEmpty());

  // Not even the system administrator puts the installation's permissions into a role.
  auto installation = create(system_admin_, "operators-plus", {"organisations.write"}, "acme");
  ASSERT_TRUE(installation);
  EXPECT_THAT(installation->problems, ElementsAre(Field(&FieldProblem::code, "not_allowed")));
}

TEST_F(CustomRolesTest, AnOrganisationAdministratorCannotGiveOrEditARoleGrantingMoreThanTheyHold) {
  auto made = create(system_admin_, "reviewer", {"security_log.read", "devices.read"}, "acme");
  ASSERT_TRUE(made && made->problems.empty());
  auto given = people_->create(org_admin_, {"", "rev-1", "rev-1@example.org", "reviewer", std::nullopt}, origin_);
  ASSERT_TRUE(given);
  EXPECT_THAT(given->problems, ElementsAre(Field(&FieldProblem::code, "forbidden")));

  auto edited =
      roles_->change(org_admin_, "", "reviewer", {std::nullopt, std::vector<std::string>{"devices.read"}}, origin_);
  ASSERT_TRUE(edited);
  EXPECT_THAT(edited->problems, ElementsAre(Field(&FieldProblem::code, "forbidden")));
  EXPECT_TRUE(roles_->remove(org_admin_, "", "reviewer", origin_).error().is(Errc::permission_denied));

  // The system administrator may give it.
  const auto reviewer = person(system_admin_, "rev-2", "reviewer", "acme");
  EXPECT_EQ(reviewer.role, "reviewer");
}

TEST_F(CustomRolesTest, RoleNamesAreCheckedAndRolesStayInTheirOrganisation) {
  auto builtin = create(org_admin_, "operator", {});
  ASSERT_TRUE(builtin);
  EXPECT_THAT(builtin->problems, ElementsAre(Field(&FieldProblem::code, "taken")));
  for (const char* bad : {"", "x", "-lead", "Field Tech", "a/b", "name-that-is-far-too-long-for-a-role"}) {
    auto made = create(org_admin_, bad, {});
    ASSERT_TRUE(made);
    EXPECT_THAT(made->problems, ElementsAre(Field(&FieldProblem::code, "invalid"))) << bad;
  }
  ASSERT_TRUE(create(org_admin_, "field-tech", {})->problems.empty());
  EXPECT_THAT(create(org_admin_, "field-tech", {})->problems, ElementsAre(Field(&FieldProblem::code, "taken")));

  // Another organisation's roles are out of reach, and its people cannot be given them.
  EXPECT_THAT(create(org_admin_, "elsewhere", {}, "default")->problems,
              ElementsAre(Field(&FieldProblem::code, "forbidden")));
  EXPECT_TRUE(roles_->list(org_admin_, "default").error().is(Errc::permission_denied));
  auto other =
      people_->create(system_admin_, {"default", "dflt-1", "d@example.org", "field-tech", std::nullopt}, origin_);
  ASSERT_TRUE(other);
  EXPECT_THAT(other->problems, ElementsAre(Field(&FieldProblem::code, "unknown")));

  auto listed = roles_->list(org_admin_, "");
  ASSERT_TRUE(listed);
  std::vector<std::string> names;
  for (const auto& r : *listed) names.push_back(r.name + (r.builtin ? "*" : ""));
  EXPECT_THAT(names, ElementsAre("system-admin*", "org-admin*", "operator*", "viewer*", "auditor*", "field-tech"));
}

TEST_F(CustomRolesTest, ChangingARolesPermissionsEndsItsHoldersSessionsAndAnAdministrativeRoleNeedsASecondFactor) {
  ASSERT_TRUE(create(org_admin_, "lead", {"devices.read"})->problems.empty());
  person(org_admin_, "lead-1", "lead");
  auto before = sign_in("lead-1");
  ASSERT_TRUE(before);
  const std::string old_session = before->session.id_hash;

  events_.clear();
  auto changed =
      roles_->change(org_admin_, "", "lead",
                     {std::string("Team lead"), std::vector<std::string>{"devices.read", "users.write"}}, origin_);
  ASSERT_TRUE(changed) << changed.error().message;
  ASSERT_THAT(changed->problems, IsEmpty());
  EXPECT_EQ(changed->role->description, "Team lead");
  EXPECT_THAT(events_, ElementsAre("role.changed (alert)"));
  auto gone = store_->console_sessions().find(old_session);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());

  // Now an administrator: signing in asks for a second factor (enrolment first).
  auto in = accounts_->sign_in("lead-1", kStrong, origin_);
  ASSERT_TRUE(in);
  ASSERT_EQ(in->status, SignInStatus::signed_in);
  EXPECT_EQ(in->ticket->session.stage, store::kSessionStageEnrol);

  // A description alone changes no grants and ends no session.
  auto after = accounts_->resolve_session(in->ticket->id).value();
  ASSERT_TRUE(after);
  ASSERT_TRUE(roles_->change(org_admin_, "", "lead", {std::string("Leads"), std::nullopt}, origin_));
  auto kept = store_->console_sessions().find(after->session.id_hash);
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->has_value());
}

TEST_F(CustomRolesTest, ARoleSomebodyHoldsCannotBeRemovedAndBuiltInRolesNeverCan) {
  ASSERT_TRUE(create(org_admin_, "field-tech", {"devices.read"})->problems.empty());
  const auto tech = person(org_admin_, "tech-1", "field-tech");
  EXPECT_TRUE(roles_->remove(org_admin_, "", "field-tech", origin_).error().is(Errc::conflict));
  EXPECT_TRUE(roles_->remove(org_admin_, "", "viewer", origin_).error().is(Errc::conflict));
  EXPECT_TRUE(roles_->remove(org_admin_, "", "nothing", origin_).error().is(Errc::not_found));
  EXPECT_TRUE(roles_->change(org_admin_, "", "viewer", {}, origin_).error().is(Errc::conflict));

  auto moved = people_->change(org_admin_, tech.id, {std::string("viewer"), {}, {}, {}}, origin_);
  ASSERT_TRUE(moved && moved->problems.empty());
  EXPECT_TRUE(roles_->remove(org_admin_, "", "field-tech", origin_));
  auto found = store_->custom_roles().find("acme", "field-tech");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  EXPECT_THAT(events_, Contains("role.removed"));
}

TEST_F(CustomRolesTest, AnUnknownRoleGrantsNothing) {
  auto none = role_permissions(*store_, "acme", "no-such-role");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(create(org_admin_, "field-tech", {"devices.read"})->problems.empty());
  auto elsewhere = role_permissions(*store_, "default", "field-tech");
  ASSERT_TRUE(elsewhere);
  EXPECT_TRUE(elsewhere->empty());
  EXPECT_EQ(*role_permissions(*store_, "acme", "viewer"), builtin_role_permissions("viewer"));
}

}  // namespace
}  // namespace torii::identity

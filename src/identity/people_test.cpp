#include "identity/people.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "identity/roles.h"
#include "identity/setup_token.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

constexpr std::string_view kStrong = "violet harbour ladder sprinkle 42";
constexpr std::string_view kOther = "quiet marble teapot orbit 1987";

class PeopleTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    AccountsOptions options;
    options.hash_cost = minimum_password_hash_cost();
    options.lock_after_failures = 2;
    const auto sink = [this](const events::SecurityEvent& e) {
      events_.push_back(e.action + (e.details.value("alert", false) ? " (alert)" : ""));
    };
    accounts_ = std::make_unique<Accounts>(*store_, *keys_, clock_, random_, options, sink);
    people_ = std::make_unique<People>(*store_, clock_, random_, PeopleOptions{options.hash_cost}, sink);
    auto token = issue_setup_token(*store_, random_, clock_, 60min);
    auto made = accounts_->create_first_administrator(
        {token->token, "root-admin", "admin@example.org", std::string(kStrong)}, origin_);
    ASSERT_TRUE(made && made->ticket);
    admin_ = *accounts_->resolve_session(made->ticket->id).value();
    ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
  }

  // A person created by `actor`, with their first password set through the link.
  store::UserRecord person(const Caller& actor, const std::string& name, const std::string& role,
                           const std::string& organisation = "") {
    auto made = people_->create(actor, {organisation, name, name + "@example.org", role, std::nullopt}, origin_);
    EXPECT_TRUE(made && made->person) << (made ? "problems" : made.error().message);
    auto set = people_->complete_password_link(made->link->token, kStrong, origin_);
    EXPECT_TRUE(set && set->empty());
    return *made->person;
  }

  // A full session of a person (no second factor needed for non-administrators).
  Caller caller(const std::string& name) {
    auto in = accounts_->sign_in(name, kStrong, origin_);
    EXPECT_EQ(in->status, SignInStatus::signed_in);
    return *accounts_->resolve_session(in->ticket->id).value();
  }

  std::unique_ptr<Accounts> accounts_;
  std::unique_ptr<People> people_;
  std::vector<std::string> events_;
  Origin origin_{"192.0.2.1:5000", "test"};
  Caller admin_;
};

TEST_F(PeopleTest, ANewPersonStartsAsAViewerWithoutAPasswordUntilTheyUseTheirLink) {
  auto made = people_->create(admin_, {"", "Bob", "bob@example.org", "", std::nullopt}, origin_);
  ASSERT_TRUE(made && made->person);
  EXPECT_EQ(made->person->role, kRoleViewer);
  EXPECT_EQ(made->person->organisation_id, "default");
  ASSERT_TRUE(made->link);
  EXPECT_EQ(made->link->expires_at, to_unix_millis(clock_.now() + 24h));
  // Nothing signs in as bob yet, not even an empty or the "no password" marker.
  for (std::string_view guess : {std::string_view(""), kNoPassword, kStrong}) {
    EXPECT_EQ(accounts_->sign_in("bob", guess, origin_)->status, SignInStatus::refused) << guess;
    ASSERT_TRUE(people_->unlock(admin_, made->person->id, origin_));  // two failures lock here
  }

  // A weak password leaves the link usable; a good one uses it up.
  auto weak = people_->complete_password_link(made->link->token, "bob", origin_);
  ASSERT_TRUE(weak);
  EXPECT_FALSE(weak->empty());
  auto set = people_->complete_password_link(made->link->token, kStrong, origin_);
  ASSERT_TRUE(set);
  EXPECT_THAT(*set, IsEmpty());
  EXPECT_EQ(accounts_->sign_in("bob", kStrong, origin_)->status, SignInStatus::signed_in);
  auto again = people_->complete_password_link(made->link->token, kOther, origin_);
  ASSERT_TRUE(again);
  EXPECT_THAT(*again, ElementsAre(Field(&FieldProblem::field, "token")));
}

TEST_F(PeopleTest, APasswordLinkExpiresAfterFifteenMinutesAndEndsEverySessionWhenUsed) {
  const auto bob = person(admin_, "bob", "operator");
  auto link = people_->issue_password_link(admin_, bob.id, origin_);
  ASSERT_TRUE(link);
  EXPECT_EQ(link->expires_at, to_unix_millis(clock_.now() + 15min));
  clock_.advance(16min);
  EXPECT_THAT(people_->complete_password_link(link->token, kOther, origin_).value(),
              ElementsAre(Field(&FieldProblem::field, "token")));
  const auto session = accounts_->sign_in("bob", kStrong, origin_)->ticket->id;
  auto fresh = people_->issue_password_link(admin_, bob.id, origin_);
  ASSERT_TRUE(accounts_->resolve_session(session).value()) << "still signed in before the reset";
  EXPECT_THAT(people_->complete_password_link(fresh->token, kOther, origin_).value(), IsEmpty());
  EXPECT_FALSE(accounts_->resolve_session(session).value()) << "a reset ends every session";
  EXPECT_EQ(accounts_->sign_in("bob", kOther, origin_)->status, SignInStatus::signed_in);
  EXPECT_EQ(accounts_->sign_in("bob", kStrong, origin_)->status, SignInStatus::refused);
}

TEST_F(PeopleTest, SelfServiceLinksGoOnlyToActivePeopleAndAtMostOncePerInterval) {
  const auto bob = person(admin_, "bob", "operator");
  const auto carol = person(admin_, "carol", "viewer");
  ASSERT_TRUE(people_->change(admin_, carol.id, {{}, {}, std::string("disabled"), {}}, origin_));
  EXPECT_THAT(people_->issue_self_service_links("nobody").value(), IsEmpty());
  EXPECT_THAT(people_->issue_self_service_links("nobody@example.org").value(), IsEmpty());
  EXPECT_THAT(people_->issue_self_service_links("carol").value(), IsEmpty()) << "disabled";
  EXPECT_THAT(people_->issue_self_service_links("bad name!").value(), IsEmpty());

  auto by_name = people_->issue_self_service_links("bob");
  ASSERT_TRUE(by_name);
  ASSERT_EQ(by_name->size(), 1U);
  EXPECT_EQ((*by_name)[0].person.id, bob.id);
  EXPECT_EQ((*by_name)[0].link.expires_at, to_unix_millis(clock_.now() + 15min));
  EXPECT_THAT(people_->issue_self_service_links("BOB@example.org").value(), IsEmpty())
      << "one link per person per interval, whether asked by name or address";
  clock_.advance(5min);
  auto by_address = people_->issue_self_service_links("BOB@example.org");
  ASSERT_TRUE(by_address);
  ASSERT_EQ(by_address->size(), 1U);
  EXPECT_THAT(people_->complete_password_link((*by_name)[0].link.token, kOther, origin_).value(),
              ElementsAre(Field(&FieldProblem::field, "token")))
      << "the newer link replaced the older one";
  const auto session = accounts_->sign_in("bob", kStrong, origin_)->ticket->id;
  EXPECT_THAT(people_->complete_password_link((*by_address)[0].link.token, kOther, origin_).value(), IsEmpty());
  EXPECT_FALSE(accounts_->resolve_session(session).value()) << "a reset ends every session";
  EXPECT_EQ(accounts_->sign_in("bob", kOther, origin_)->status, SignInStatus::signed_in);
}

TEST_F(PeopleTest, NobodyActsOutsideTheirOrganisationOrGrantsMoreThanTheyMay) {
  const auto acme_admin = person(admin_, "acme-admin", "org-admin", "acme");
  const auto local = person(admin_, "local", "viewer");
  auto boss = caller("acme-admin");
  // Another organisation's people do not exist for an organisation administrator.
  EXPECT_TRUE(people_->find(boss, local.id).error().is(Errc::not_found));
  EXPECT_TRUE(people_->list(boss, "default").error().is(Errc::permission_denied));
  EXPECT_TRUE(people_->issue_password_link(boss, local.id, origin_).error().is(Errc::not_found));
  EXPECT_TRUE(people_->remove(boss, local.id, origin_).error().is(Errc::not_found));
  auto elsewhere = people_->create(boss, {"default", "intruder", "i@example.org", "", std::nullopt}, origin_);
  EXPECT_THAT(elsewhere->problems, ElementsAre(Field(&FieldProblem::field, "organisation")));
  // Nor do they make system administrators, in their organisation or elsewhere.
  auto grant = people_->create(boss, {"", "carol", "carol@example.org", "system-admin", std::nullopt}, origin_);
  EXPECT_THAT(grant->problems, ElementsAre(Field(&FieldProblem::code, "forbidden")));
  auto mine = people_->create(boss, {"", "dave", "dave@example.org", "operator", std::nullopt}, origin_);
  ASSERT_TRUE(mine && mine->person);
  EXPECT_EQ(mine->person->organisation_id, "acme");
  auto promote = people_->change(boss, mine->person->id, {std::string("system-admin"), {}, {}, {}}, origin_);
  EXPECT_THAT(promote->problems, ElementsAre(Field(&FieldProblem::code, "forbidden")));
  EXPECT_THAT(people_->list(boss, "").value(), ::testing::SizeIs(2));
}

TEST_F(PeopleTest, ARoleChangeEndsThePersonsSessionsAndTheLastSystemAdministratorStays) {
  const auto bob = person(admin_, "bob", "viewer");
  const auto session = accounts_->sign_in("bob", kStrong, origin_)->ticket->id;
  auto changed = people_->change(admin_, bob.id, {std::string("operator"), {}, {}, {}}, origin_);
  ASSERT_TRUE(changed && changed->person);
  EXPECT_EQ(changed->person->role, kRoleOperator);
  EXPECT_FALSE(accounts_->resolve_session(session).value());

  EXPECT_THAT(people_->change(admin_, admin_.user.id, {std::string("viewer"), {}, {}, {}}, origin_)->problems,
              ElementsAre(Field(&FieldProblem::code, "self")));
  EXPECT_TRUE(people_->remove(admin_, admin_.user.id, origin_).error().is(Errc::conflict));
  // A system administrator can be demoted while another one remains.
  const auto second = person(admin_, "second-admin", "system-admin");
  auto other = people_->change(admin_, second.id, {std::string("viewer"), {}, {}, {}}, origin_);
  ASSERT_TRUE(other && other->person);
  EXPECT_THAT(events_, ::testing::Contains("user.created (alert)")) << "a new system administrator";
  EXPECT_THAT(events_, ::testing::Contains("user.created")) << "a new viewer is no alert";
}

TEST_F(PeopleTest, DisabledPeopleAndPeoplePastTheirEndDateCannotSignIn) {
  const auto bob = person(admin_, "bob", "viewer");
  ASSERT_TRUE(people_->change(admin_, bob.id, {{}, {}, std::string("disabled"), {}}, origin_));
  EXPECT_EQ(accounts_->sign_in("bob", kStrong, origin_)->status, SignInStatus::disabled);
  ASSERT_TRUE(people_->change(admin_, bob.id, {{}, {}, std::string("active"), {}}, origin_));
  const UnixMillis end = to_unix_millis(clock_.now() + 48h);
  ASSERT_TRUE(people_->change(admin_, bob.id, {{}, {}, {}, std::optional<UnixMillis>(end)}, origin_));
  EXPECT_EQ(accounts_->sign_in("bob", kStrong, origin_)->status, SignInStatus::signed_in);
  clock_.advance(49h);
  EXPECT_EQ(accounts_->sign_in("bob", kStrong, origin_)->status, SignInStatus::disabled);
  auto past = people_->change(admin_, bob.id, {{}, {}, {}, std::optional<UnixMillis>(end)}, origin_);
  EXPECT_THAT(past->problems, ElementsAre(Field(&FieldProblem::field, "expires_at")));
}

TEST_F(PeopleTest, PeopleUnusedForTheConfiguredPeriodAreDisabledButNotTheLastSystemAdministrator) {
  const auto bob = person(admin_, "bob", "viewer");
  const auto carol = person(admin_, "carol", "viewer");
  clock_.advance(80 * 24h);
  (void)accounts_->sign_in("carol", kStrong, origin_);
  clock_.advance(11 * 24h);
  auto disabled = people_->disable_unused(90 * 24h);
  ASSERT_TRUE(disabled);
  EXPECT_THAT(*disabled, ElementsAre(bob.id));
  EXPECT_EQ(store_->users().find(bob.id).value()->status, store::kUserStatusDisabled);
  EXPECT_EQ(store_->users().find(carol.id).value()->status, store::kUserStatusActive);
  EXPECT_EQ(store_->users().find(admin_.user.id).value()->status, store::kUserStatusActive);
}

TEST_F(PeopleTest, AnAdministratorUnlocksALockedPerson) {
  person(admin_, "bob", "viewer");
  for (int i = 0; i < 2; ++i) (void)accounts_->sign_in("bob", "wrong password here", origin_);
  EXPECT_EQ(accounts_->sign_in("bob", kStrong, origin_)->status, SignInStatus::locked);
  ASSERT_TRUE(people_->unlock(admin_, store_->users().find_by_username("bob").value()->id, origin_));
  EXPECT_EQ(accounts_->sign_in("bob", kStrong, origin_)->status, SignInStatus::signed_in);
}

TEST_F(PeopleTest, OnlyTheSystemAdministratorCreatesOrganisations) {
  EXPECT_THAT(people_->create_organisation(admin_, {"Bad Id", "", false, 0}, origin_).value(), ::testing::SizeIs(2));
  EXPECT_THAT(people_->create_organisation(admin_, {"globex", "Globex", true, 0}, origin_).value(), IsEmpty());
  EXPECT_THAT(people_->create_organisation(admin_, {"globex", "Again", false, 0}, origin_).value(),
              ElementsAre(Field(&FieldProblem::code, "taken")));
  person(admin_, "acme-admin", "org-admin", "acme");
  auto boss = caller("acme-admin");
  EXPECT_TRUE(
      people_->create_organisation(boss, {"mine", "Mine", false, 0}, origin_).error().is(Errc::permission_denied));
  auto seen = people_->organisations(boss).value();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].id, "acme");
}

// JPCERT I-4: the system administrator sets whether an organisation requires a second
// factor; turning the requirement off weakens a protection and is an alert.
TEST_F(PeopleTest, OnlyTheSystemAdministratorChangesAnOrganisationAndRelaxingTwoFactorIsAnAlert) {
  ASSERT_THAT(people_->create_organisation(admin_, {"globex", "Globex", false, 0}, origin_).value(), IsEmpty());
  EXPECT_THAT(people_->change_organisation(admin_, "globex", std::nullopt, true, origin_).value(), IsEmpty());
  EXPECT_TRUE(store_->organisations().find("globex").value()->require_second_factor);
  EXPECT_THAT(people_->change_organisation(admin_, "globex", "Globex Corp", false, origin_).value(), IsEmpty());
  const auto after = store_->organisations().find("globex").value();
  EXPECT_FALSE(after->require_second_factor);
  EXPECT_EQ(after->name, "Globex Corp");
  EXPECT_THAT(events_, ::testing::Contains("organisation.changed"));
  EXPECT_THAT(events_, ::testing::Contains("organisation.changed (alert)"));
  // A change to the same values records nothing.
  const auto recorded = events_.size();
  EXPECT_THAT(people_->change_organisation(admin_, "globex", "Globex Corp", false, origin_).value(), IsEmpty());
  EXPECT_EQ(events_.size(), recorded);

  EXPECT_THAT(people_->change_organisation(admin_, "globex", std::string(), std::nullopt, origin_).value(),
              ElementsAre(Field(&FieldProblem::field, "name")));
  EXPECT_TRUE(people_->change_organisation(admin_, "nowhere", std::nullopt, true, origin_).error().is(Errc::not_found));
  person(admin_, "acme-admin", "org-admin", "acme");
  EXPECT_TRUE(people_->change_organisation(caller("acme-admin"), "acme", std::nullopt, false, origin_)
                  .error()
                  .is(Errc::permission_denied));
}

}  // namespace
}  // namespace torii::identity

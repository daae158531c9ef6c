// The store contract for the console's people: organisations, users (with their password
// history and recovery codes), console sessions, password reset tokens, API tokens, custom roles and
// the settings changed through the console. Backend-agnostic,
// like contract_test.cpp.
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>

#include "store/contract_test.h"

namespace torii::store {

// Readable failures: the records' fields instead of their bytes (found by argument lookup).
void PrintTo(const SettingOverrideRecord& r, std::ostream* os) {
  *os << "{" << r.key << ", " << r.value_json << ", " << r.changed_by << ", " << r.changed_at << "}";
}

void PrintTo(const CustomRoleRecord& r, std::ostream* os) {
  *os << "{" << r.organisation_id << ", " << r.name << ", " << r.description << ", "
      << ::testing::PrintToString(r.permissions) << ", " << r.created_at << ", " << r.updated_at << "}";
}

namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

OrganisationRecord make_organisation(std::string id) {
  OrganisationRecord o;
  o.name = "Organisation " + id;
  o.created_at = kNow;
  o.id = std::move(id);
  return o;
}

UserRecord make_user(std::string id, std::string organisation = "org-1", UnixMillis created_at = kNow) {
  UserRecord u;
  u.organisation_id = std::move(organisation);
  u.username = "name-" + id;
  u.email = id + "@example.org";
  u.role = "operator";
  u.password_hash = "$argon2id$v=19$m=65536,t=2,p=1$" + id;
  u.password_changed_at = created_at;
  u.created_at = created_at;
  u.id = std::move(id);
  return u;
}

ConsoleSessionRecord make_session(std::string id_hash, std::string user_id, UnixMillis created_at = kNow) {
  ConsoleSessionRecord s;
  s.handle = "handle-" + id_hash;
  s.user_id = std::move(user_id);
  s.stage = std::string(kSessionStageFull);
  s.created_at = created_at;
  s.last_seen_at = created_at;
  s.authenticated_at = created_at;
  s.source = "192.0.2.7";
  s.user_agent = "Mozilla/5.0";
  s.id_hash = std::move(id_hash);
  return s;
}

// A reset token valid for 15 minutes from created_at (IIIT DI7).
PasswordResetToken make_reset_token(std::string token_hash, std::string user_id, UnixMillis created_at = kNow) {
  PasswordResetToken t;
  t.user_id = std::move(user_id);
  t.created_at = created_at;
  t.expires_at = created_at + 15 * 60 * 1000;
  t.issued_by = "user:admin-1";
  t.token_hash = std::move(token_hash);
  return t;
}

// An API token of org-1 valid for 30 days from created_at (JPCERT I-10).
ApiTokenRecord make_api_token(std::string id, std::string user_id, UnixMillis created_at = kNow) {
  ApiTokenRecord t;
  t.user_id = std::move(user_id);
  t.organisation_id = "org-1";
  t.name = "integration " + id;
  t.permissions = {"devices.read", "telemetry.read"};
  t.secret_hash = "hash-" + id;
  t.created_at = created_at;
  t.expires_at = created_at + 30LL * 24 * 3600 * 1000;
  t.id = std::move(id);
  return t;
}

// Stores organisation org-1 and, for each id, a user of it made by make_user.
::testing::AssertionResult add_people(Store& s, std::initializer_list<std::string_view> user_ids) {
  if (auto r = s.organisations().insert(make_organisation("org-1")); !r) {
    return ::testing::AssertionFailure() << "organisation: " << r.error().message;
  }
  for (std::string_view id : user_ids) {
    if (auto r = s.users().insert(make_user(std::string(id))); !r) {
      return ::testing::AssertionFailure() << "user " << id << ": " << r.error().message;
    }
  }
  return ::testing::AssertionSuccess();
}

// The `field` of each record, in order.
template <class Record>
std::vector<std::string> fields(const std::vector<Record>& records, std::string Record::*field) {
  std::vector<std::string> out;
  out.reserve(records.size());
  for (const Record& r : records) out.push_back(r.*field);
  return out;
}

// ----------------------------------------------------------------------------- organisations

TEST_P(StoreContractTest, OrganisationInsertAndFindRoundTripEveryField) {
  OrganisationRecord o = make_organisation("acme");
  o.name = kTricky;
  o.require_second_factor = true;
  ASSERT_TRUE(is_ok(store().organisations().insert(o)));
  const OrganisationRecord plain = make_organisation("plain");
  ASSERT_TRUE(is_ok(store().organisations().insert(plain)));
  auto found = store().organisations().find("acme");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, o);
  auto other = store().organisations().find("plain");
  ASSERT_TRUE(is_ok(other));
  ASSERT_TRUE(other->has_value());
  EXPECT_EQ(**other, plain);
  EXPECT_FALSE((*other)->require_second_factor);
  auto unknown = store().organisations().find("nope");
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(unknown->has_value());
}

TEST_P(StoreContractTest, OrganisationWithADuplicateIdIsAlreadyExistsAndKeepsTheOriginal) {
  const OrganisationRecord o = make_organisation("acme");
  ASSERT_TRUE(is_ok(store().organisations().insert(o)));
  OrganisationRecord imposter = make_organisation("acme");
  imposter.name = "Imposter";
  imposter.require_second_factor = true;
  EXPECT_TRUE(fails_with(store().organisations().insert(imposter), Errc::already_exists));
  auto found = store().organisations().find("acme");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, o);
}

TEST_P(StoreContractTest, OrganisationWithAnEmptyIdOrNameIsInvalidArgument) {
  auto& organisations = store().organisations();
  EXPECT_TRUE(fails_with(organisations.insert(make_organisation("")), Errc::invalid_argument));
  OrganisationRecord unnamed = make_organisation("acme");
  unnamed.name = "";
  EXPECT_TRUE(fails_with(organisations.insert(unnamed), Errc::invalid_argument));
  auto all = organisations.list();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, IsEmpty());

  ASSERT_TRUE(is_ok(organisations.insert(make_organisation("acme"))));
  EXPECT_TRUE(fails_with(organisations.update(unnamed), Errc::invalid_argument));
  auto found = organisations.find("acme");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, make_organisation("acme"));
}

TEST_P(StoreContractTest, OrganisationsAreListedById) {
  auto& organisations = store().organisations();
  for (const char* id : {"globex", "acme", "initech", "Zeta"}) {
    ASSERT_TRUE(is_ok(organisations.insert(make_organisation(id))));
  }
  auto all = organisations.list();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(fields(*all, &OrganisationRecord::id), ElementsAre("Zeta", "acme", "globex", "initech"));
  EXPECT_EQ(all->at(1), make_organisation("acme"));
}

TEST_P(StoreContractTest, OrganisationUpdateReplacesNameAndSecondFactorButNotTheCreationTime) {
  auto& organisations = store().organisations();
  ASSERT_TRUE(is_ok(organisations.insert(make_organisation("acme"))));
  ASSERT_TRUE(is_ok(organisations.insert(make_organisation("globex"))));
  OrganisationRecord changed = make_organisation("acme");
  changed.name = "ACME Corporation";
  changed.require_second_factor = true;
  changed.created_at = kNow + 500;
  ASSERT_TRUE(is_ok(organisations.update(changed)));

  auto found = organisations.find("acme");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  OrganisationRecord expected = changed;
  expected.created_at = kNow;
  EXPECT_EQ(**found, expected);
  auto other = organisations.find("globex");
  ASSERT_TRUE(is_ok(other));
  ASSERT_TRUE(other->has_value());
  EXPECT_EQ(**other, make_organisation("globex"));

  changed.require_second_factor = false;
  ASSERT_TRUE(is_ok(organisations.update(changed)));
  found = organisations.find("acme");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_FALSE((*found)->require_second_factor);
}

TEST_P(StoreContractTest, OrganisationUpdateOfAnUnknownIdIsNotFound) {
  EXPECT_TRUE(fails_with(store().organisations().update(make_organisation("nope")), Errc::not_found));
  auto all = store().organisations().list();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, IsEmpty());
}

// ----------------------------------------------------------------------------- users

TEST_P(StoreContractTest, UserInsertAndFindRoundTripEveryField) {
  ASSERT_TRUE(add_people(store(), {}));
  UserRecord u = make_user("u-1");
  u.username = kTricky;
  u.email = kTricky;
  u.role = "admin";
  u.totp_key_id = "dk-people";
  for (int i = 0; i < 256; ++i) u.totp_sealed.push_back(static_cast<std::uint8_t>(i));
  u.totp_enabled = true;
  u.totp_last_step = 59'666'666;
  u.status = std::string(kUserStatusDisabled);
  u.disabled_reason = kTricky;
  u.failed_logins = 4;
  u.lockouts = 2;
  u.locked_until = kNow + 900'000;
  u.last_login_at = kNow + 10;
  u.expires_at = kNow + 86'400'000;
  ASSERT_TRUE(is_ok(store().users().insert(u)));

  auto by_id = store().users().find("u-1");
  ASSERT_TRUE(is_ok(by_id));
  ASSERT_TRUE(by_id->has_value());
  EXPECT_EQ(**by_id, u);
  auto by_name = store().users().find_by_username(kTricky);
  ASSERT_TRUE(is_ok(by_name));
  ASSERT_TRUE(by_name->has_value());
  EXPECT_EQ(**by_name, u);
}

TEST_P(StoreContractTest, UserOptionalFieldsRoundTripAsAbsent) {
  ASSERT_TRUE(add_people(store(), {}));
  const UserRecord u = make_user("u-1");
  ASSERT_TRUE(is_ok(store().users().insert(u)));
  auto found = store().users().find("u-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, u);
  EXPECT_EQ((*found)->status, kUserStatusActive);
  EXPECT_FALSE((*found)->totp_enabled);
  EXPECT_TRUE((*found)->totp_sealed.empty());
  EXPECT_FALSE((*found)->last_login_at.has_value());
  EXPECT_FALSE((*found)->expires_at.has_value());
}

TEST_P(StoreContractTest, UserFindOfAnUnknownIdOrUsernameReturnsNothing) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto by_id = store().users().find("name-u-1");  // a username is not an id
  ASSERT_TRUE(is_ok(by_id));
  EXPECT_FALSE(by_id->has_value());
  auto by_name = store().users().find_by_username("u-1");  // nor an id a username
  ASSERT_TRUE(is_ok(by_name));
  EXPECT_FALSE(by_name->has_value());
}

TEST_P(StoreContractTest, UserWithADuplicateIdIsAlreadyExistsAndKeepsTheOriginal) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  UserRecord imposter = make_user("u-1");
  imposter.username = "someone-else";
  imposter.role = "admin";
  EXPECT_TRUE(fails_with(store().users().insert(imposter), Errc::already_exists));
  auto found = store().users().find("u-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, make_user("u-1"));
  auto by_name = store().users().find_by_username("someone-else");
  ASSERT_TRUE(is_ok(by_name));
  EXPECT_FALSE(by_name->has_value());
}

TEST_P(StoreContractTest, UserWithADuplicateUsernameIsAlreadyExistsAndIsNotStored) {
  ASSERT_TRUE(add_people(store(), {}));
  UserRecord first = make_user("u-1");
  first.username = kTricky;
  ASSERT_TRUE(is_ok(store().users().insert(first)));
  UserRecord second = make_user("u-2");
  second.username = kTricky;
  auto dup = store().users().insert(second);
  ASSERT_TRUE(fails_with(dup, Errc::already_exists));
  EXPECT_TRUE(does_not_quote(dup.error(), "DROP TABLE"));
  auto missing = store().users().find("u-2");
  ASSERT_TRUE(is_ok(missing));
  EXPECT_FALSE(missing->has_value());
  auto count = store().users().count();
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 1U);
}

TEST_P(StoreContractTest, UsersAreFoundByEMailWhateverTheAsciiCase) {
  ASSERT_TRUE(add_people(store(), {}));
  UserRecord first = make_user("u-1");
  first.email = "Ann@Example.org";
  UserRecord second = make_user("u-2");
  second.email = "ann@example.org";
  UserRecord other = make_user("u-3");
  other.email = "bob@example.org";
  for (const auto& u : {first, second, other}) ASSERT_TRUE(is_ok(store().users().insert(u)));
  auto found = store().users().find_by_email("ANN@example.ORG");
  ASSERT_TRUE(is_ok(found));
  ASSERT_EQ(found->size(), 2U);
  EXPECT_EQ((*found)[0].id, "u-1");
  EXPECT_EQ((*found)[1].id, "u-2");
  auto none = store().users().find_by_email("nobody@example.org");
  ASSERT_TRUE(is_ok(none));
  EXPECT_TRUE(none->empty());
  auto not_a_pattern = store().users().find_by_email("%");
  ASSERT_TRUE(is_ok(not_a_pattern));
  EXPECT_TRUE(not_a_pattern->empty());
}

TEST_P(StoreContractTest, UsernamesAreComparedAsStored) {
  ASSERT_TRUE(add_people(store(), {}));
  UserRecord lower = make_user("u-1");
  lower.username = "alice";
  UserRecord upper = make_user("u-2");
  upper.username = "Alice";
  ASSERT_TRUE(is_ok(store().users().insert(lower)));
  ASSERT_TRUE(is_ok(store().users().insert(upper)));
  auto found = store().users().find_by_username("Alice");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, "u-2");
  auto none = store().users().find_by_username("ALICE");
  ASSERT_TRUE(is_ok(none));
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreContractTest, UserWithAnEmptyIdUsernameRoleOrPasswordHashOrAnUnknownStatusIsInvalidArgument) {
  ASSERT_TRUE(add_people(store(), {}));
  auto& users = store().users();
  EXPECT_TRUE(fails_with(users.insert(make_user("")), Errc::invalid_argument));
  UserRecord no_username = make_user("u-1");
  no_username.username = "";
  EXPECT_TRUE(fails_with(users.insert(no_username), Errc::invalid_argument));
  UserRecord no_role = make_user("u-1");
  no_role.role = "";
  EXPECT_TRUE(fails_with(users.insert(no_role), Errc::invalid_argument));
  UserRecord no_hash = make_user("u-1");
  no_hash.password_hash = "";
  EXPECT_TRUE(fails_with(users.insert(no_hash), Errc::invalid_argument));
  for (const char* status : {"retired", "", "Active"}) {
    UserRecord bad_status = make_user("u-1");
    bad_status.status = status;
    EXPECT_TRUE(fails_with(users.insert(bad_status), Errc::invalid_argument)) << status;
  }
  auto count = users.count();
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 0U);
}

TEST_P(StoreContractTest, UserWithAnUnknownOrganisationIsAConflict) {
  ASSERT_TRUE(add_people(store(), {}));
  EXPECT_TRUE(fails_with(store().users().insert(make_user("u-1", "org-2")), Errc::conflict));
  EXPECT_TRUE(fails_with(store().users().insert(make_user("u-1", "")), Errc::conflict));
  auto count = store().users().count();
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 0U);
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  EXPECT_TRUE(is_ok(store().users().insert(make_user("u-1", "org-2"))));
}

TEST_P(StoreContractTest, UsersAreListedPerOrganisationByUsername) {
  ASSERT_TRUE(add_people(store(), {}));
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  auto& users = store().users();
  const std::vector<std::pair<const char*, const char*>> people = {
      {"u-1", "carol"}, {"u-2", "alice"}, {"u-3", "Bob"}, {"u-4", "bob"}};
  for (const auto& [id, username] : people) {
    UserRecord u = make_user(id);
    u.username = username;
    ASSERT_TRUE(is_ok(users.insert(u)));
  }
  UserRecord elsewhere = make_user("u-0", "org-2");
  elsewhere.username = "aaron";
  ASSERT_TRUE(is_ok(users.insert(elsewhere)));

  auto org1 = users.list("org-1");
  ASSERT_TRUE(is_ok(org1));
  EXPECT_THAT(fields(*org1, &UserRecord::id), ElementsAre("u-3", "u-2", "u-4", "u-1"));
  auto org2 = users.list("org-2");
  ASSERT_TRUE(is_ok(org2));
  EXPECT_THAT(*org2, ElementsAre(elsewhere));
  auto none = users.list("org-3");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, UserCountCountsTheUsersOfEveryOrganisation) {
  auto empty = store().users().count();
  ASSERT_TRUE(is_ok(empty));
  EXPECT_EQ(*empty, 0U);
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  ASSERT_TRUE(is_ok(store().users().insert(make_user("u-3", "org-2"))));
  auto count = store().users().count();
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 3U);
  auto removed = store().users().remove("u-1");
  ASSERT_TRUE(is_ok(removed));
  count = store().users().count();
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 2U);
}

TEST_P(StoreContractTest, UserUpdateReplacesEveryFieldButIdOrganisationAndCreationTime) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  UserRecord changed = make_user("u-1");
  changed.organisation_id = "org-2";
  changed.created_at = kNow + 1;
  changed.username = "renamed";
  changed.email = "new@example.org";
  changed.role = "admin";
  changed.password_hash = "$argon2id$v=19$new";
  changed.password_changed_at = kNow + 2;
  changed.totp_key_id = "dk-2";
  changed.totp_sealed = Bytes{0, 1, 2, 0};
  changed.totp_enabled = true;
  changed.totp_last_step = 42;
  changed.status = std::string(kUserStatusDisabled);
  changed.disabled_reason = "left the company";
  changed.failed_logins = 3;
  changed.lockouts = 1;
  changed.locked_until = kNow + 3;
  changed.last_login_at = kNow + 4;
  changed.expires_at = kNow + 5;
  ASSERT_TRUE(is_ok(store().users().update(changed)));

  UserRecord expected = changed;
  expected.organisation_id = "org-1";
  expected.created_at = kNow;
  auto found = store().users().find("u-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, expected);
  auto by_new_name = store().users().find_by_username("renamed");
  ASSERT_TRUE(is_ok(by_new_name));
  EXPECT_EQ(*by_new_name, std::optional<UserRecord>(expected));
  auto by_old_name = store().users().find_by_username("name-u-1");
  ASSERT_TRUE(is_ok(by_old_name));
  EXPECT_FALSE(by_old_name->has_value());
  auto other = store().users().find("u-2");
  ASSERT_TRUE(is_ok(other));
  EXPECT_EQ(*other, std::optional<UserRecord>(make_user("u-2")));

  // Optional fields can be cleared again, and a user may keep their own username.
  expected.last_login_at.reset();
  expected.expires_at.reset();
  expected.totp_sealed.clear();
  ASSERT_TRUE(is_ok(store().users().update(expected)));
  found = store().users().find("u-1");
  ASSERT_TRUE(is_ok(found));
  EXPECT_EQ(*found, std::optional<UserRecord>(expected));
}

TEST_P(StoreContractTest, UserUpdateOfAnUnknownIdIsNotFound) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  EXPECT_TRUE(fails_with(store().users().update(make_user("u-2")), Errc::not_found));
  auto count = store().users().count();
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 1U);
}

TEST_P(StoreContractTest, UserUpdateToAnotherUsersUsernameIsAlreadyExistsAndChangesNothing) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  UserRecord changed = make_user("u-1");
  changed.username = "name-u-2";
  changed.role = "admin";
  EXPECT_TRUE(fails_with(store().users().update(changed), Errc::already_exists));
  auto first = store().users().find("u-1");
  ASSERT_TRUE(is_ok(first));
  EXPECT_EQ(*first, std::optional<UserRecord>(make_user("u-1")));
  auto second = store().users().find_by_username("name-u-2");
  ASSERT_TRUE(is_ok(second));
  EXPECT_EQ(*second, std::optional<UserRecord>(make_user("u-2")));
}

TEST_P(StoreContractTest, UserUpdateWithAnInvalidFieldIsInvalidArgumentAndChangesNothing) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& users = store().users();
  UserRecord no_username = make_user("u-1");
  no_username.username = "";
  UserRecord no_role = make_user("u-1");
  no_role.role = "";
  UserRecord no_hash = make_user("u-1");
  no_hash.password_hash = "";
  UserRecord bad_status = make_user("u-1");
  bad_status.status = "retired";
  for (const UserRecord& bad : {no_username, no_role, no_hash, bad_status}) {
    EXPECT_TRUE(fails_with(users.update(bad), Errc::invalid_argument));
  }
  EXPECT_TRUE(fails_with(users.update(make_user("")), Errc::invalid_argument));
  auto found = users.find("u-1");
  ASSERT_TRUE(is_ok(found));
  EXPECT_EQ(*found, std::optional<UserRecord>(make_user("u-1")));
}

TEST_P(StoreContractTest, UserRemoveTakesTheirPasswordHistoryRecoveryCodesAndSessionsAlong) {
  auto& s = store();
  ASSERT_TRUE(add_people(s, {"doomed", "kept"}));
  for (const char* user : {"doomed", "kept"}) {
    ASSERT_TRUE(is_ok(s.users().add_password_history(user, {std::string("old-") + user, kNow}, 5)));
    const std::vector<std::string> codes = {std::string("code-1-") + user, std::string("code-2-") + user};
    ASSERT_TRUE(is_ok(s.users().replace_recovery_codes(user, codes)));
    ASSERT_TRUE(is_ok(s.console_sessions().insert(make_session(std::string("session-") + user, user))));
  }

  auto removed = s.users().remove("doomed");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto gone = s.users().find("doomed");
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
  auto session = s.console_sessions().find("session-doomed");
  ASSERT_TRUE(is_ok(session));
  EXPECT_FALSE(session->has_value());

  // Registered again under the same id, the user starts clean: nothing was merely hidden.
  ASSERT_TRUE(is_ok(s.users().insert(make_user("doomed"))));
  auto history = s.users().password_history("doomed");
  ASSERT_TRUE(is_ok(history));
  EXPECT_THAT(*history, IsEmpty());
  auto codes = s.users().count_unused_recovery_codes("doomed");
  ASSERT_TRUE(is_ok(codes));
  EXPECT_EQ(*codes, 0U);
  auto used = s.users().use_recovery_code("doomed", "code-1-doomed", kNow);
  ASSERT_TRUE(is_ok(used));
  EXPECT_FALSE(*used);
  auto sessions = s.console_sessions().list_for_user("doomed");
  ASSERT_TRUE(is_ok(sessions));
  EXPECT_THAT(*sessions, IsEmpty());

  auto kept_history = s.users().password_history("kept");
  ASSERT_TRUE(is_ok(kept_history));
  EXPECT_EQ(kept_history->size(), 1U);
  auto kept_codes = s.users().count_unused_recovery_codes("kept");
  ASSERT_TRUE(is_ok(kept_codes));
  EXPECT_EQ(*kept_codes, 2U);
  auto kept_sessions = s.console_sessions().list_for_user("kept");
  ASSERT_TRUE(is_ok(kept_sessions));
  EXPECT_EQ(kept_sessions->size(), 1U);

  auto unknown = s.users().remove("nobody");
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(*unknown);
}

TEST_P(StoreContractTest, UserListUnusedSinceIsLeastRecentlyActiveFirstAndSkipsDisabledUsers) {
  ASSERT_TRUE(add_people(store(), {}));
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  auto& users = store().users();
  const UnixMillis cutoff = kNow + 1000;
  auto insert = [&](UserRecord u, std::optional<UnixMillis> last_login = std::nullopt) {
    u.last_login_at = last_login;
    return users.insert(u);
  };
  ASSERT_TRUE(is_ok(insert(make_user("never-signed-in-old", "org-1", kNow))));
  ASSERT_TRUE(is_ok(insert(make_user("never-signed-in-new", "org-1", cutoff))));  // == cutoff: not before
  ASSERT_TRUE(is_ok(insert(make_user("signed-in-long-ago", "org-2", kNow - 500), kNow + 500)));
  ASSERT_TRUE(is_ok(insert(make_user("signed-in-recently", "org-1", kNow - 500), cutoff + 1)));
  ASSERT_TRUE(is_ok(insert(make_user("signed-in-at-cutoff", "org-1", kNow - 500), cutoff)));
  ASSERT_TRUE(is_ok(insert(make_user("b-tie", "org-1", kNow))));
  UserRecord disabled = make_user("disabled-old", "org-1", kNow - 900);
  disabled.status = std::string(kUserStatusDisabled);
  ASSERT_TRUE(is_ok(insert(disabled)));

  auto unused = users.list_unused_since(cutoff);
  ASSERT_TRUE(is_ok(unused));
  ASSERT_THAT(fields(*unused, &UserRecord::id), ElementsAre("b-tie", "never-signed-in-old", "signed-in-long-ago"));
  UserRecord expected = make_user("signed-in-long-ago", "org-2", kNow - 500);
  expected.last_login_at = kNow + 500;
  EXPECT_EQ(unused->back(), expected);
  auto none = users.list_unused_since(kNow - 1000);
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, UserCountActiveWithRoleCountsOnlyActiveUsersOfThatRoleInThatOrganisation) {
  ASSERT_TRUE(add_people(store(), {}));
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  auto& users = store().users();
  auto insert = [&](std::string id, std::string organisation, std::string role, std::string_view status) {
    UserRecord u = make_user(std::move(id), std::move(organisation));
    u.role = std::move(role);
    u.status = std::string(status);
    return users.insert(u);
  };
  ASSERT_TRUE(is_ok(insert("admin-1", "org-1", "admin", kUserStatusActive)));
  ASSERT_TRUE(is_ok(insert("admin-2", "org-1", "admin", kUserStatusActive)));
  ASSERT_TRUE(is_ok(insert("admin-disabled", "org-1", "admin", kUserStatusDisabled)));
  ASSERT_TRUE(is_ok(insert("operator-1", "org-1", "operator", kUserStatusActive)));
  ASSERT_TRUE(is_ok(insert("admin-elsewhere", "org-2", "admin", kUserStatusActive)));

  auto count = [&](std::string_view organisation, std::string_view role) -> std::size_t {
    auto n = users.count_active_with_role(organisation, role);
    EXPECT_TRUE(is_ok(n)) << organisation << " " << role;
    return n ? *n : 99;
  };
  EXPECT_EQ(count("org-1", "admin"), 2U);
  EXPECT_EQ(count("org-1", "operator"), 1U);
  EXPECT_EQ(count("org-2", "admin"), 1U);
  EXPECT_EQ(count("org-2", "operator"), 0U);
  EXPECT_EQ(count("org-1", "Admin"), 0U);  // roles are compared as stored
  EXPECT_EQ(count("org-1", "auditor"), 0U);
  EXPECT_EQ(count("org-3", "admin"), 0U);

  UserRecord disabled = make_user("admin-2");
  disabled.role = "admin";
  disabled.status = std::string(kUserStatusDisabled);
  ASSERT_TRUE(is_ok(users.update(disabled)));
  EXPECT_EQ(count("org-1", "admin"), 1U);
  auto removed = users.remove("admin-1");
  ASSERT_TRUE(is_ok(removed));
  ASSERT_TRUE(*removed);
  EXPECT_EQ(count("org-1", "admin"), 0U);
  EXPECT_EQ(count("org-2", "admin"), 1U);
}

// ----------------------------------------------------------------------------- password history

TEST_P(StoreContractTest, PasswordHistoryIsNewestFirstAndKeepsOnlyTheNewestEntries) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& users = store().users();
  auto empty = users.password_history("u-1");
  ASSERT_TRUE(is_ok(empty));
  EXPECT_THAT(*empty, IsEmpty());

  ASSERT_TRUE(is_ok(users.add_password_history("u-2", {"other-1", kNow}, 3)));
  ASSERT_TRUE(is_ok(users.add_password_history("u-2", {"other-2", kNow + 1}, 3)));
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(is_ok(users.add_password_history("u-1", {"hash-" + std::to_string(i), kNow + i}, 3)));
  }
  auto history = users.password_history("u-1");
  ASSERT_TRUE(is_ok(history));
  EXPECT_THAT(*history, ElementsAre(PasswordHistoryEntry{"hash-5", kNow + 5}, PasswordHistoryEntry{"hash-4", kNow + 4},
                                    PasswordHistoryEntry{"hash-3", kNow + 3}));
  // Trimming one user's history leaves the others' alone.
  auto other = users.password_history("u-2");
  ASSERT_TRUE(is_ok(other));
  EXPECT_THAT(fields(*other, &PasswordHistoryEntry::password_hash), ElementsAre("other-2", "other-1"));

  ASSERT_TRUE(is_ok(users.add_password_history("u-1", {"hash-6", kNow + 6}, 1)));
  history = users.password_history("u-1");
  ASSERT_TRUE(is_ok(history));
  EXPECT_THAT(*history, ElementsAre(PasswordHistoryEntry{"hash-6", kNow + 6}));
}

TEST_P(StoreContractTest, PasswordHistoryIsOrderedByChangeTimeWhateverTheOrderItWasAddedIn) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& users = store().users();
  // Added out of time order: the newest by time comes first whatever the order of the calls.
  ASSERT_TRUE(is_ok(users.add_password_history("u-1", {"middle", kNow + 2}, 4)));
  ASSERT_TRUE(is_ok(users.add_password_history("u-1", {"newest", kNow + 3}, 4)));
  ASSERT_TRUE(is_ok(users.add_password_history("u-1", {"oldest", kNow + 1}, 4)));
  auto history = users.password_history("u-1");
  ASSERT_TRUE(is_ok(history));
  EXPECT_THAT(fields(*history, &PasswordHistoryEntry::password_hash), ElementsAre("newest", "middle", "oldest"));
}

TEST_P(StoreContractTest, PasswordHistoryForAnUnknownUserIsAConflict) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  EXPECT_TRUE(fails_with(store().users().add_password_history("nobody", {"hash", kNow}, 5), Errc::conflict));
  auto history = store().users().password_history("nobody");
  ASSERT_TRUE(is_ok(history));
  EXPECT_THAT(*history, IsEmpty());
}

// ----------------------------------------------------------------------------- recovery codes

TEST_P(StoreContractTest, RecoveryCodesAreSingleUseAndOnlyTheirUsersOwn) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& users = store().users();
  const std::vector<std::string> codes = {"code-a", "code-b", kTricky};
  ASSERT_TRUE(is_ok(users.replace_recovery_codes("u-1", codes)));
  auto unused = users.count_unused_recovery_codes("u-1");
  ASSERT_TRUE(is_ok(unused));
  EXPECT_EQ(*unused, 3U);

  auto first = users.use_recovery_code("u-1", kTricky, kNow);
  ASSERT_TRUE(is_ok(first));
  EXPECT_TRUE(*first);
  auto second = users.use_recovery_code("u-1", kTricky, kNow + 1);
  ASSERT_TRUE(is_ok(second));
  EXPECT_FALSE(*second);
  auto unknown = users.use_recovery_code("u-1", "code-z", kNow);
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(*unknown);
  auto someone_elses = users.use_recovery_code("u-2", "code-a", kNow);
  ASSERT_TRUE(is_ok(someone_elses));
  EXPECT_FALSE(*someone_elses);

  unused = users.count_unused_recovery_codes("u-1");
  ASSERT_TRUE(is_ok(unused));
  EXPECT_EQ(*unused, 2U);
  auto theirs = users.use_recovery_code("u-1", "code-a", kNow);  // not spent by u-2's attempt
  ASSERT_TRUE(is_ok(theirs));
  EXPECT_TRUE(*theirs);
  auto none = users.count_unused_recovery_codes("u-2");
  ASSERT_TRUE(is_ok(none));
  EXPECT_EQ(*none, 0U);
}

TEST_P(StoreContractTest, RecoveryCodesReplaceDiscardsEveryOldCodeAndStoresTheNewOnesUnused) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& users = store().users();
  const std::vector<std::string> old_codes = {"old-1", "old-2", "both"};
  ASSERT_TRUE(is_ok(users.replace_recovery_codes("u-1", old_codes)));
  ASSERT_TRUE(is_ok(users.replace_recovery_codes("u-2", old_codes)));
  auto used = users.use_recovery_code("u-1", "both", kNow);
  ASSERT_TRUE(is_ok(used));
  ASSERT_TRUE(*used);

  const std::vector<std::string> new_codes = {"new-1", "both"};
  ASSERT_TRUE(is_ok(users.replace_recovery_codes("u-1", new_codes)));
  auto unused = users.count_unused_recovery_codes("u-1");
  ASSERT_TRUE(is_ok(unused));
  EXPECT_EQ(*unused, 2U);
  auto old = users.use_recovery_code("u-1", "old-1", kNow);
  ASSERT_TRUE(is_ok(old));
  EXPECT_FALSE(*old);
  auto again = users.use_recovery_code("u-1", "both", kNow);  // stored anew, unused
  ASSERT_TRUE(is_ok(again));
  EXPECT_TRUE(*again);
  auto other = users.count_unused_recovery_codes("u-2");
  ASSERT_TRUE(is_ok(other));
  EXPECT_EQ(*other, 3U);

  ASSERT_TRUE(is_ok(users.replace_recovery_codes("u-1", {})));
  unused = users.count_unused_recovery_codes("u-1");
  ASSERT_TRUE(is_ok(unused));
  EXPECT_EQ(*unused, 0U);
  auto after_clear = users.use_recovery_code("u-1", "new-1", kNow);
  ASSERT_TRUE(is_ok(after_clear));
  EXPECT_FALSE(*after_clear);
}

TEST_P(StoreContractTest, RecoveryCodesForAnUnknownUserAreAConflict) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  const std::vector<std::string> codes = {"code-a"};
  EXPECT_TRUE(fails_with(store().users().replace_recovery_codes("nobody", codes), Errc::conflict));
  EXPECT_TRUE(fails_with(store().users().replace_recovery_codes("nobody", {}), Errc::conflict));
  auto unused = store().users().count_unused_recovery_codes("nobody");
  ASSERT_TRUE(is_ok(unused));
  EXPECT_EQ(*unused, 0U);
}

TEST_P(StoreContractTest, RecoveryCodeConcurrentUsersExactlyOneWins) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  const std::vector<std::string> codes = {"race"};
  ASSERT_TRUE(is_ok(store().users().replace_recovery_codes("u-1", codes)));
  constexpr int kThreads = 8;
  std::atomic<int> won{0};
  std::atomic<int> lost{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto r = store().users().use_recovery_code("u-1", "race", kNow);
      if (!r) {
        ++failed;
      } else if (*r) {
        ++won;
      } else {
        ++lost;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), kThreads - 1);
  EXPECT_EQ(failed.load(), 0);
}

// ----------------------------------------------------------------------------- console sessions

TEST_P(StoreContractTest, ConsoleSessionInsertAndFindRoundTripEveryField) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  ConsoleSessionRecord s = make_session(kTricky, "u-1");
  s.handle = "h-" + kTricky;
  s.stage = std::string(kSessionStageSecondFactor);
  s.last_seen_at = kNow + 5;
  s.authenticated_at = kNow + 3;
  s.source = "2001:db8::1";
  s.user_agent = kTricky;
  ASSERT_TRUE(is_ok(store().console_sessions().insert(s)));
  auto found = store().console_sessions().find(kTricky);
  ASSERT_TRUE(is_ok(found));
  EXPECT_EQ(*found, std::optional<ConsoleSessionRecord>(s));
  auto unknown = store().console_sessions().find("handle-" + kTricky);  // a handle is not an id hash
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(unknown->has_value());
}

TEST_P(StoreContractTest, ConsoleSessionWithADuplicateIdHashOrHandleIsAlreadyExists) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& sessions = store().console_sessions();
  const ConsoleSessionRecord original = make_session("id-1", "u-1");
  ASSERT_TRUE(is_ok(sessions.insert(original)));
  ConsoleSessionRecord same_id = make_session("id-1", "u-2");
  same_id.handle = "another-handle";
  EXPECT_TRUE(fails_with(sessions.insert(same_id), Errc::already_exists));
  ConsoleSessionRecord same_handle = make_session("id-2", "u-2");  // handles are unique across users
  same_handle.handle = original.handle;
  EXPECT_TRUE(fails_with(sessions.insert(same_handle), Errc::already_exists));

  auto found = sessions.find("id-1");
  ASSERT_TRUE(is_ok(found));
  EXPECT_EQ(*found, std::optional<ConsoleSessionRecord>(original));
  auto missing = sessions.find("id-2");
  ASSERT_TRUE(is_ok(missing));
  EXPECT_FALSE(missing->has_value());
  auto of_u2 = sessions.list_for_user("u-2");
  ASSERT_TRUE(is_ok(of_u2));
  EXPECT_THAT(*of_u2, IsEmpty());
}

TEST_P(StoreContractTest, ConsoleSessionWithAnEmptyIdHashHandleOrUserOrAnUnknownStageIsInvalidArgument) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& sessions = store().console_sessions();
  EXPECT_TRUE(fails_with(sessions.insert(make_session("", "u-1")), Errc::invalid_argument));
  ConsoleSessionRecord no_handle = make_session("id-1", "u-1");
  no_handle.handle = "";
  EXPECT_TRUE(fails_with(sessions.insert(no_handle), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(sessions.insert(make_session("id-1", "")), Errc::invalid_argument));
  for (const char* stage : {"", "password", "Full"}) {
    ConsoleSessionRecord bad_stage = make_session("id-1", "u-1");
    bad_stage.stage = stage;
    EXPECT_TRUE(fails_with(sessions.insert(bad_stage), Errc::invalid_argument)) << stage;
  }
  auto listed = sessions.list_for_user("u-1");
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, IsEmpty());
}

TEST_P(StoreContractTest, ConsoleSessionForAnUnknownUserIsAConflict) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  EXPECT_TRUE(fails_with(store().console_sessions().insert(make_session("id-1", "nobody")), Errc::conflict));
  auto found = store().console_sessions().find("id-1");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
}

TEST_P(StoreContractTest, ConsoleSessionUpdateReplacesStageAndTimesOnly) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& sessions = store().console_sessions();
  ConsoleSessionRecord s = make_session("id-1", "u-1");
  s.stage = std::string(kSessionStageSecondFactor);
  ASSERT_TRUE(is_ok(sessions.insert(s)));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("id-2", "u-1"))));

  ConsoleSessionRecord changed = s;
  changed.stage = std::string(kSessionStageEnrol);
  changed.last_seen_at = kNow + 60;
  changed.authenticated_at = kNow + 30;
  changed.handle = "other-handle";
  changed.user_id = "u-2";
  changed.created_at = kNow + 1;
  changed.source = "198.51.100.1";
  changed.user_agent = "curl";
  ASSERT_TRUE(is_ok(sessions.update(changed)));

  ConsoleSessionRecord expected = s;
  expected.stage = std::string(kSessionStageEnrol);
  expected.last_seen_at = kNow + 60;
  expected.authenticated_at = kNow + 30;
  auto found = sessions.find("id-1");
  ASSERT_TRUE(is_ok(found));
  EXPECT_EQ(*found, std::optional<ConsoleSessionRecord>(expected));
  auto untouched = sessions.find("id-2");
  ASSERT_TRUE(is_ok(untouched));
  EXPECT_EQ(*untouched, std::optional<ConsoleSessionRecord>(make_session("id-2", "u-1")));
}

TEST_P(StoreContractTest, ConsoleSessionUpdateOfAnUnknownIdHashIsNotFoundAndAnUnknownStageInvalid) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& sessions = store().console_sessions();
  ASSERT_TRUE(is_ok(sessions.insert(make_session("id-1", "u-1"))));
  EXPECT_TRUE(fails_with(sessions.update(make_session("id-2", "u-1")), Errc::not_found));
  ConsoleSessionRecord bad_stage = make_session("id-1", "u-1");
  bad_stage.stage = "password";
  bad_stage.last_seen_at = kNow + 60;
  EXPECT_TRUE(fails_with(sessions.update(bad_stage), Errc::invalid_argument));
  auto found = sessions.find("id-1");
  ASSERT_TRUE(is_ok(found));
  EXPECT_EQ(*found, std::optional<ConsoleSessionRecord>(make_session("id-1", "u-1")));
}

TEST_P(StoreContractTest, ConsoleSessionRemoveReportsWhetherASessionWasDeleted) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& sessions = store().console_sessions();
  ASSERT_TRUE(is_ok(sessions.insert(make_session("id-1", "u-1"))));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("id-2", "u-1"))));
  auto removed = sessions.remove("id-1");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto again = sessions.remove("id-1");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto listed = sessions.list_for_user("u-1");
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(fields(*listed, &ConsoleSessionRecord::handle), ElementsAre("handle-id-2"));
}

TEST_P(StoreContractTest, ConsoleSessionRemoveByHandleRemovesOnlyTheUsersOwnSession) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& sessions = store().console_sessions();
  ASSERT_TRUE(is_ok(sessions.insert(make_session("id-1", "u-1"))));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("id-2", "u-2"))));

  auto not_theirs = sessions.remove_by_handle("u-1", "handle-id-2");
  ASSERT_TRUE(is_ok(not_theirs));
  EXPECT_FALSE(*not_theirs);
  auto still_there = sessions.find("id-2");
  ASSERT_TRUE(is_ok(still_there));
  EXPECT_TRUE(still_there->has_value());

  auto own = sessions.remove_by_handle("u-1", "handle-id-1");
  ASSERT_TRUE(is_ok(own));
  EXPECT_TRUE(*own);
  auto gone = sessions.find("id-1");
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
  auto again = sessions.remove_by_handle("u-1", "handle-id-1");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
}

TEST_P(StoreContractTest, ConsoleSessionRemoveForUserKeepsTheNamedSessionAndOtherUsersSessions) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& sessions = store().console_sessions();
  for (const char* id : {"a", "b", "c", "d"}) ASSERT_TRUE(is_ok(sessions.insert(make_session(id, "u-1"))));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("other", "u-2"))));

  auto removed = sessions.remove_for_user("u-1", "c");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_EQ(*removed, 3U);
  auto left = sessions.list_for_user("u-1");
  ASSERT_TRUE(is_ok(left));
  EXPECT_THAT(fields(*left, &ConsoleSessionRecord::handle), ElementsAre("handle-c"));

  // The session to keep must be the user's own: another user's id hash keeps nothing of theirs.
  ASSERT_TRUE(is_ok(sessions.insert(make_session("e", "u-1"))));
  removed = sessions.remove_for_user("u-1", "other");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_EQ(*removed, 2U);

  ASSERT_TRUE(is_ok(sessions.insert(make_session("f", "u-1"))));
  removed = sessions.remove_for_user("u-1", "");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_EQ(*removed, 1U);
  left = sessions.list_for_user("u-1");
  ASSERT_TRUE(is_ok(left));
  EXPECT_THAT(*left, IsEmpty());
  auto other = sessions.list_for_user("u-2");
  ASSERT_TRUE(is_ok(other));
  EXPECT_THAT(fields(*other, &ConsoleSessionRecord::handle), ElementsAre("handle-other"));
}

TEST_P(StoreContractTest, ConsoleSessionsAreListedNewestFirstTiesByHandle) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& sessions = store().console_sessions();
  ASSERT_TRUE(is_ok(sessions.insert(make_session("old", "u-1", kNow))));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("tie-b", "u-1", kNow + 10))));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("newest", "u-1", kNow + 20))));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("tie-a", "u-1", kNow + 10))));
  ASSERT_TRUE(is_ok(sessions.insert(make_session("of-u-2", "u-2", kNow + 15))));
  auto listed = sessions.list_for_user("u-1");
  ASSERT_TRUE(is_ok(listed));
  ASSERT_THAT(fields(*listed, &ConsoleSessionRecord::handle),
              ElementsAre("handle-newest", "handle-tie-a", "handle-tie-b", "handle-old"));
  EXPECT_EQ(listed->front(), make_session("newest", "u-1", kNow + 20));
  auto none = sessions.list_for_user("nobody");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, ConsoleSessionRemoveExpiredDeletesIdleAndTooOldSessions) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& sessions = store().console_sessions();
  const UnixMillis idle_cutoff = kNow + 1000;
  const UnixMillis absolute_cutoff = kNow;
  auto session = [](std::string id, std::string user, UnixMillis created_at, UnixMillis last_seen_at) {
    ConsoleSessionRecord s = make_session(std::move(id), std::move(user), created_at);
    s.last_seen_at = last_seen_at;
    return s;
  };
  const std::vector<ConsoleSessionRecord> all = {
      session("idle", "u-1", kNow + 10, idle_cutoff - 1),            // idle too long
      session("too-old", "u-2", kNow - 1, idle_cutoff + 500),        // busy, but past its lifetime
      session("both", "u-1", kNow - 1, idle_cutoff - 1),             // counted once
      session("idle-at-cutoff", "u-1", kNow + 10, idle_cutoff),      // not before: kept
      session("created-at-cutoff", "u-2", kNow, idle_cutoff + 500),  // not before: kept
  };
  for (const auto& s : all) ASSERT_TRUE(is_ok(sessions.insert(s)));

  auto removed = sessions.remove_expired(idle_cutoff, absolute_cutoff);
  ASSERT_TRUE(is_ok(removed));
  EXPECT_EQ(*removed, 3U);
  auto of_u1 = sessions.list_for_user("u-1");
  ASSERT_TRUE(is_ok(of_u1));
  EXPECT_THAT(*of_u1, ElementsAre(all[3]));
  auto of_u2 = sessions.list_for_user("u-2");
  ASSERT_TRUE(is_ok(of_u2));
  EXPECT_THAT(*of_u2, ElementsAre(all[4]));
  auto again = sessions.remove_expired(idle_cutoff, absolute_cutoff);
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(*again, 0U);
}

// ----------------------------------------------------------------------------- password reset tokens

TEST_P(StoreContractTest, PasswordResetTokenConsumedReturnsTheUserItWasIssuedFor) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& resets = store().password_resets();
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token(kTricky, "u-2"))));
  auto truncated = resets.consume("O'Brien", kNow);  // a value pasted into SQL would end here
  ASSERT_TRUE(is_ok(truncated));
  EXPECT_EQ(truncated->outcome, ConsumeOutcome::unknown);
  auto consumed = resets.consume(kTricky, kNow + 1);
  ASSERT_TRUE(is_ok(consumed));
  EXPECT_EQ(consumed->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(consumed->user_id, "u-2");
}

TEST_P(StoreContractTest, PasswordResetTokenFindShowsItAsStoredUsedOrNot) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& resets = store().password_resets();
  const auto token = make_reset_token(kTricky, "u-1");
  ASSERT_TRUE(is_ok(resets.issue(token)));
  auto found = resets.find(kTricky);
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, token);
  ASSERT_TRUE(is_ok(resets.consume(kTricky, kNow + 1)));
  auto used = resets.find(kTricky);
  ASSERT_TRUE(is_ok(used) && used->has_value());
  EXPECT_EQ((*used)->used_at, kNow + 1);
  auto missing = resets.find("O'Brien");
  ASSERT_TRUE(is_ok(missing));
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreContractTest, PasswordResetTokenConsumedTwiceIsAlreadyUsedTheSecondTime) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& resets = store().password_resets();
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("t-1", "u-1"))));
  auto first = resets.consume("t-1", kNow);
  ASSERT_TRUE(is_ok(first));
  EXPECT_EQ(first->outcome, ConsumeOutcome::consumed);
  auto second = resets.consume("t-1", kNow + 1);
  ASSERT_TRUE(is_ok(second));
  EXPECT_EQ(second->outcome, ConsumeOutcome::already_used);
  EXPECT_EQ(second->user_id, "");  // a refused token names nobody

  PasswordResetToken issued_used = make_reset_token("t-2", "u-1", kNow + 2);
  issued_used.used_at = kNow + 2;
  ASSERT_TRUE(is_ok(resets.issue(issued_used)));
  auto never = resets.consume("t-2", kNow + 3);
  ASSERT_TRUE(is_ok(never));
  EXPECT_EQ(never->outcome, ConsumeOutcome::already_used);
}

TEST_P(StoreContractTest, PasswordResetTokenPastItsExpiryIsExpired) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& resets = store().password_resets();
  const PasswordResetToken stale = make_reset_token("stale", "u-1");
  ASSERT_TRUE(is_ok(resets.issue(stale)));
  auto at_expiry = resets.consume("stale", stale.expires_at);  // valid while now < expires_at
  ASSERT_TRUE(is_ok(at_expiry));
  EXPECT_EQ(at_expiry->outcome, ConsumeOutcome::expired);
  EXPECT_EQ(at_expiry->user_id, "");
  auto later = resets.consume("stale", stale.expires_at + 1);  // a refused attempt does not use it up
  ASSERT_TRUE(is_ok(later));
  EXPECT_EQ(later->outcome, ConsumeOutcome::expired);

  const PasswordResetToken fresh = make_reset_token("fresh", "u-2");
  ASSERT_TRUE(is_ok(resets.issue(fresh)));
  auto just_in_time = resets.consume("fresh", fresh.expires_at - 1);
  ASSERT_TRUE(is_ok(just_in_time));
  EXPECT_EQ(just_in_time->outcome, ConsumeOutcome::consumed);
}

TEST_P(StoreContractTest, PasswordResetTokenNeverIssuedIsUnknown) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& resets = store().password_resets();
  auto empty_store = resets.consume("t-1", kNow);
  ASSERT_TRUE(is_ok(empty_store));
  EXPECT_EQ(empty_store->outcome, ConsumeOutcome::unknown);
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("t-1", "u-1"))));
  for (const char* hash : {"t-2", "T-1", "u-1", ""}) {
    auto r = resets.consume(hash, kNow);
    ASSERT_TRUE(is_ok(r));
    EXPECT_EQ(r->outcome, ConsumeOutcome::unknown) << hash;
    EXPECT_EQ(r->user_id, "") << hash;
  }
  auto count = resets.count_active("u-1", kNow);
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 1U);
}

TEST_P(StoreContractTest, PasswordResetTokenBothUsedAndExpiredIsAlreadyUsed) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& resets = store().password_resets();
  const PasswordResetToken token = make_reset_token("t-1", "u-1");
  ASSERT_TRUE(is_ok(resets.issue(token)));
  auto used = resets.consume("t-1", kNow);
  ASSERT_TRUE(is_ok(used));
  ASSERT_EQ(used->outcome, ConsumeOutcome::consumed);
  auto late = resets.consume("t-1", token.expires_at + 1000);
  ASSERT_TRUE(is_ok(late));
  EXPECT_EQ(late->outcome, ConsumeOutcome::already_used);
}

TEST_P(StoreContractTest, PasswordResetTokenIssuedAnewRevokesTheUsersPreviousTokensButNotOtherUsersTokens) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& resets = store().password_resets();
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("lapsed", "u-1", kNow - 3'600'000))));
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("old", "u-1", kNow - 10))));
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("other", "u-2", kNow - 10))));
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("new", "u-1", kNow))));

  auto old = resets.consume("old", kNow + 1);
  ASSERT_TRUE(is_ok(old));
  EXPECT_EQ(old->outcome, ConsumeOutcome::already_used);
  // Revocation covers every unused token of the user, the already expired ones too.
  auto lapsed = resets.consume("lapsed", kNow + 1);
  ASSERT_TRUE(is_ok(lapsed));
  EXPECT_EQ(lapsed->outcome, ConsumeOutcome::already_used);
  auto active = resets.count_active("u-1", kNow + 1);
  ASSERT_TRUE(is_ok(active));
  EXPECT_EQ(*active, 1U);

  auto other = resets.consume("other", kNow + 1);
  ASSERT_TRUE(is_ok(other));
  EXPECT_EQ(other->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(other->user_id, "u-2");
  auto fresh = resets.consume("new", kNow + 1);
  ASSERT_TRUE(is_ok(fresh));
  EXPECT_EQ(fresh->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(fresh->user_id, "u-1");
}

TEST_P(StoreContractTest, PasswordResetTokenCountActiveCountsTheUsersUnusedUnexpiredTokens) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& resets = store().password_resets();
  auto count = [&](std::string_view user_id, UnixMillis now) -> std::size_t {
    auto n = resets.count_active(user_id, now);
    EXPECT_TRUE(is_ok(n)) << user_id;
    return n ? *n : 99;
  };
  EXPECT_EQ(count("u-1", kNow), 0U);
  const PasswordResetToken token = make_reset_token("t-1", "u-1");
  ASSERT_TRUE(is_ok(resets.issue(token)));
  EXPECT_EQ(count("u-1", kNow), 1U);
  EXPECT_EQ(count("u-1", token.expires_at - 1), 1U);
  EXPECT_EQ(count("u-1", token.expires_at), 0U);
  EXPECT_EQ(count("u-2", kNow), 0U);
  EXPECT_EQ(count("nobody", kNow), 0U);

  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("t-2", "u-2"))));
  EXPECT_EQ(count("u-2", kNow), 1U);
  auto used = resets.consume("t-1", kNow);
  ASSERT_TRUE(is_ok(used));
  ASSERT_EQ(used->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(count("u-1", kNow), 0U);
  EXPECT_EQ(count("u-2", kNow), 1U);
}

TEST_P(StoreContractTest, PasswordResetTokenWithADuplicateHashIsAlreadyExistsAndRevokesNothing) {
  ASSERT_TRUE(add_people(store(), {"u-1", "u-2"}));
  auto& resets = store().password_resets();
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("t-1", "u-1"))));
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("t-2", "u-2"))));
  // The same hash again, for its own user or another: refused, and the refused issue must not
  // have revoked the tokens the user already holds.
  EXPECT_TRUE(fails_with(resets.issue(make_reset_token("t-1", "u-1", kNow + 5)), Errc::already_exists));
  EXPECT_TRUE(fails_with(resets.issue(make_reset_token("t-1", "u-2", kNow + 5)), Errc::already_exists));
  for (const char* user : {"u-1", "u-2"}) {
    auto active = resets.count_active(user, kNow + 6);
    ASSERT_TRUE(is_ok(active));
    EXPECT_EQ(*active, 1U) << user;
  }
  auto t1 = resets.consume("t-1", kNow + 6);
  ASSERT_TRUE(is_ok(t1));
  EXPECT_EQ(t1->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(t1->user_id, "u-1");
  auto t2 = resets.consume("t-2", kNow + 6);
  ASSERT_TRUE(is_ok(t2));
  EXPECT_EQ(t2->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(t2->user_id, "u-2");
}

TEST_P(StoreContractTest, PasswordResetTokenWithAnEmptyHashOrUserIdIsInvalidArgument) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& resets = store().password_resets();
  ASSERT_TRUE(is_ok(resets.issue(make_reset_token("t-1", "u-1"))));
  EXPECT_TRUE(fails_with(resets.issue(make_reset_token("", "u-1", kNow + 1)), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(resets.issue(make_reset_token("t-2", "", kNow + 1)), Errc::invalid_argument));
  auto unknown = resets.consume("", kNow + 2);
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_EQ(unknown->outcome, ConsumeOutcome::unknown);
  auto missing = resets.consume("t-2", kNow + 2);
  ASSERT_TRUE(is_ok(missing));
  EXPECT_EQ(missing->outcome, ConsumeOutcome::unknown);
  auto kept = resets.consume("t-1", kNow + 2);  // not revoked by the refused issues
  ASSERT_TRUE(is_ok(kept));
  EXPECT_EQ(kept->outcome, ConsumeOutcome::consumed);
}

TEST_P(StoreContractTest, PasswordResetTokenForAnUnknownUserIsAConflict) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto& resets = store().password_resets();
  EXPECT_TRUE(fails_with(resets.issue(make_reset_token("t-1", "nobody")), Errc::conflict));
  EXPECT_TRUE(fails_with(resets.issue(make_reset_token("t-2", "name-u-1")), Errc::conflict));  // a username
  auto r = resets.consume("t-1", kNow);
  ASSERT_TRUE(is_ok(r));
  EXPECT_EQ(r->outcome, ConsumeOutcome::unknown);
  auto count = resets.count_active("nobody", kNow);
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 0U);
}

TEST_P(StoreContractTest, PasswordResetTokensGoWithTheirUser) {
  auto& s = store();
  ASSERT_TRUE(add_people(s, {"doomed", "kept"}));
  ASSERT_TRUE(is_ok(s.password_resets().issue(make_reset_token("t-doomed", "doomed"))));
  ASSERT_TRUE(is_ok(s.password_resets().issue(make_reset_token("t-kept", "kept"))));
  auto removed = s.users().remove("doomed");
  ASSERT_TRUE(is_ok(removed));
  ASSERT_TRUE(*removed);

  auto gone = s.password_resets().consume("t-doomed", kNow);
  ASSERT_TRUE(is_ok(gone));
  EXPECT_EQ(gone->outcome, ConsumeOutcome::unknown);
  EXPECT_EQ(gone->user_id, "");
  // Registered again under the same id, the user holds no token of the removed account.
  ASSERT_TRUE(is_ok(s.users().insert(make_user("doomed"))));
  auto active = s.password_resets().count_active("doomed", kNow);
  ASSERT_TRUE(is_ok(active));
  EXPECT_EQ(*active, 0U);
  // The hash is free again.
  EXPECT_TRUE(is_ok(s.password_resets().issue(make_reset_token("t-doomed", "doomed"))));

  auto kept = s.password_resets().consume("t-kept", kNow);
  ASSERT_TRUE(is_ok(kept));
  EXPECT_EQ(kept->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(kept->user_id, "kept");
}

TEST_P(StoreContractTest, PasswordResetTokenConcurrentConsumersExactlyOneWins) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  ASSERT_TRUE(is_ok(store().password_resets().issue(make_reset_token("race", "u-1"))));
  constexpr int kThreads = 8;
  std::atomic<int> consumed{0};
  std::atomic<int> already_used{0};
  std::atomic<int> other{0};
  std::atomic<int> named_the_user{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto r = store().password_resets().consume("race", kNow);
      if (r && r->outcome == ConsumeOutcome::consumed) {
        ++consumed;
        if (r->user_id == "u-1") ++named_the_user;
      } else if (r && r->outcome == ConsumeOutcome::already_used) {
        ++already_used;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(consumed.load(), 1);
  EXPECT_EQ(named_the_user.load(), 1);
  EXPECT_EQ(already_used.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
}

TEST_P(StoreContractTest, ApiTokenInsertAndFindRoundTripEveryField) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  auto token = make_api_token("t-1", "u-1");
  token.name = kTricky;
  token.last_used_at = kNow + 5;
  token.revoked_at = kNow + 9;
  token.revoked_reason = "user:u-1";
  ASSERT_TRUE(is_ok(store().api_tokens().insert(token)));
  auto found = store().api_tokens().find("t-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, token);

  auto bare = make_api_token("t-2", "u-1");
  bare.permissions.clear();
  ASSERT_TRUE(is_ok(store().api_tokens().insert(bare)));
  auto found_bare = store().api_tokens().find("t-2");
  ASSERT_TRUE(is_ok(found_bare));
  ASSERT_TRUE(found_bare->has_value());
  EXPECT_EQ(**found_bare, bare);

  auto unknown = store().api_tokens().find("nothing");
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(unknown->has_value());
}

TEST_P(StoreContractTest, ApiTokenWithADuplicateIdOrSecretHashIsAlreadyExists) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  ASSERT_TRUE(is_ok(store().api_tokens().insert(make_api_token("t-1", "u-1"))));
  auto same_id = make_api_token("t-1", "u-1");
  same_id.secret_hash = "another";
  EXPECT_TRUE(fails_with(store().api_tokens().insert(same_id), Errc::already_exists));
  auto same_hash = make_api_token("t-2", "u-1");
  same_hash.secret_hash = "hash-t-1";
  EXPECT_TRUE(fails_with(store().api_tokens().insert(same_hash), Errc::already_exists));
  auto list = store().api_tokens().list_for_user("u-1");
  ASSERT_TRUE(is_ok(list));
  EXPECT_THAT(fields(*list, &ApiTokenRecord::id), ElementsAre("t-1"));
}

TEST_P(StoreContractTest, ApiTokenWithAnEmptyKeyOrABadPermissionNameIsInvalidArgument) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  std::vector<ApiTokenRecord> bad(6, make_api_token("t-1", "u-1"));
  bad[0].id.clear();
  bad[1].user_id.clear();
  bad[2].organisation_id.clear();
  bad[3].secret_hash.clear();
  bad[4].permissions = {"devices.read", ""};
  bad[5].permissions = {"devices.read telemetry.read"};
  for (const auto& t : bad) EXPECT_TRUE(fails_with(store().api_tokens().insert(t), Errc::invalid_argument));
}

TEST_P(StoreContractTest, ApiTokenForAnUnknownUserOrOrganisationIsAConflict) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  EXPECT_TRUE(fails_with(store().api_tokens().insert(make_api_token("t-1", "nobody")), Errc::conflict));
  auto elsewhere = make_api_token("t-2", "u-1");
  elsewhere.organisation_id = "no-such-org";
  EXPECT_TRUE(fails_with(store().api_tokens().insert(elsewhere), Errc::conflict));
}

TEST_P(StoreContractTest, ApiTokensAreListedPerUserAndPerOrganisationNewestFirstTiesById) {
  auto& s = store();
  ASSERT_TRUE(add_people(s, {"u-1", "u-2"}));
  ASSERT_TRUE(is_ok(s.organisations().insert(make_organisation("org-2"))));
  ASSERT_TRUE(is_ok(s.users().insert(make_user("u-3", "org-2"))));
  ASSERT_TRUE(is_ok(s.api_tokens().insert(make_api_token("t-b", "u-1", kNow))));
  ASSERT_TRUE(is_ok(s.api_tokens().insert(make_api_token("t-a", "u-1", kNow))));
  ASSERT_TRUE(is_ok(s.api_tokens().insert(make_api_token("t-c", "u-1", kNow + 1))));
  ASSERT_TRUE(is_ok(s.api_tokens().insert(make_api_token("t-d", "u-2", kNow + 2))));
  auto other = make_api_token("t-e", "u-3");
  other.organisation_id = "org-2";
  ASSERT_TRUE(is_ok(s.api_tokens().insert(other)));

  auto mine = s.api_tokens().list_for_user("u-1");
  ASSERT_TRUE(is_ok(mine));
  EXPECT_THAT(fields(*mine, &ApiTokenRecord::id), ElementsAre("t-c", "t-a", "t-b"));
  auto organisation = s.api_tokens().list_for_organisation("org-1");
  ASSERT_TRUE(is_ok(organisation));
  EXPECT_THAT(fields(*organisation, &ApiTokenRecord::id), ElementsAre("t-d", "t-c", "t-a", "t-b"));
  auto none = s.api_tokens().list_for_user("nobody");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, ApiTokenRevokeHappensOnceAndKeepsTheFirstTimeAndReason) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  ASSERT_TRUE(is_ok(store().api_tokens().insert(make_api_token("t-1", "u-1"))));
  auto first = store().api_tokens().revoke("t-1", kNow + 10, "user:u-1");
  ASSERT_TRUE(is_ok(first));
  EXPECT_TRUE(*first);
  auto again = store().api_tokens().revoke("t-1", kNow + 20, "unused");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto found = store().api_tokens().find("t-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->revoked_at, kNow + 10);
  EXPECT_EQ((*found)->revoked_reason, "user:u-1");
  auto unknown = store().api_tokens().revoke("nothing", kNow, "user:u-1");
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(*unknown);
}

TEST_P(StoreContractTest, ApiTokenTouchSetsTheLastUseAndAnUnknownIdIsNotFound) {
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  ASSERT_TRUE(is_ok(store().api_tokens().insert(make_api_token("t-1", "u-1"))));
  ASSERT_TRUE(is_ok(store().api_tokens().touch("t-1", kNow + 60'000)));
  auto found = store().api_tokens().find("t-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->last_used_at, kNow + 60'000);
  EXPECT_TRUE(fails_with(store().api_tokens().touch("nothing", kNow), Errc::not_found));
}

TEST_P(StoreContractTest, ApiTokenListUnusedSinceIsLeastRecentlyUsedFirstAndSkipsRevokedTokens) {
  auto& tokens = store().api_tokens();
  ASSERT_TRUE(add_people(store(), {"u-1"}));
  ASSERT_TRUE(is_ok(tokens.insert(make_api_token("never-used", "u-1", kNow - 50))));
  auto used_long_ago = make_api_token("used-long-ago", "u-1", kNow - 500);
  used_long_ago.last_used_at = kNow - 100;
  ASSERT_TRUE(is_ok(tokens.insert(used_long_ago)));
  auto used_lately = make_api_token("used-lately", "u-1", kNow - 500);
  used_lately.last_used_at = kNow;
  ASSERT_TRUE(is_ok(tokens.insert(used_lately)));
  ASSERT_TRUE(is_ok(tokens.insert(make_api_token("new", "u-1", kNow))));
  ASSERT_TRUE(is_ok(tokens.insert(make_api_token("revoked", "u-1", kNow - 500))));
  ASSERT_TRUE(is_ok(tokens.revoke("revoked", kNow - 400, "user:u-1")));

  auto unused = tokens.list_unused_since(kNow);
  ASSERT_TRUE(is_ok(unused));
  EXPECT_THAT(fields(*unused, &ApiTokenRecord::id), ElementsAre("used-long-ago", "never-used"));
}

TEST_P(StoreContractTest, ApiTokensGoWithTheirUser) {
  auto& s = store();
  ASSERT_TRUE(add_people(s, {"doomed", "kept"}));
  ASSERT_TRUE(is_ok(s.api_tokens().insert(make_api_token("t-doomed", "doomed"))));
  ASSERT_TRUE(is_ok(s.api_tokens().insert(make_api_token("t-kept", "kept"))));
  auto removed = s.users().remove("doomed");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto gone = s.api_tokens().find("t-doomed");
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
  auto kept = s.api_tokens().find("t-kept");
  ASSERT_TRUE(is_ok(kept));
  EXPECT_TRUE(kept->has_value());
}

// ------------------------------------------------------------------------------ custom roles

CustomRoleRecord make_role(std::string name, std::string organisation = "org-1") {
  CustomRoleRecord r;
  r.organisation_id = std::move(organisation);
  r.description = "Role " + name;
  r.permissions = {"account.self", "devices.read", "telemetry.read"};
  r.created_at = kNow;
  r.updated_at = kNow;
  r.name = std::move(name);
  return r;
}

TEST_P(StoreContractTest, CustomRoleInsertAndFindRoundTripEveryField) {
  ASSERT_TRUE(add_people(store(), {}));
  CustomRoleRecord r = make_role("field-tech");
  r.description = kTricky;
  ASSERT_TRUE(is_ok(store().custom_roles().insert(r)));
  CustomRoleRecord empty = make_role("nothing");
  empty.permissions.clear();
  ASSERT_TRUE(is_ok(store().custom_roles().insert(empty)));
  auto found = store().custom_roles().find("org-1", "field-tech");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, r);
  auto none = store().custom_roles().find("org-1", "nothing");
  ASSERT_TRUE(is_ok(none));
  ASSERT_TRUE(none->has_value());
  EXPECT_EQ(**none, empty);
  auto unknown = store().custom_roles().find("org-2", "field-tech");
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(unknown->has_value());
}

TEST_P(StoreContractTest, CustomRoleNamesAreUniquePerOrganisationOnly) {
  ASSERT_TRUE(add_people(store(), {}));
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  ASSERT_TRUE(is_ok(store().custom_roles().insert(make_role("field-tech"))));
  CustomRoleRecord imposter = make_role("field-tech");
  imposter.permissions = {"users.write"};
  EXPECT_TRUE(fails_with(store().custom_roles().insert(imposter), Errc::already_exists));
  EXPECT_TRUE(is_ok(store().custom_roles().insert(make_role("field-tech", "org-2"))));
  auto found = store().custom_roles().find("org-1", "field-tech");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, make_role("field-tech"));
}

TEST_P(StoreContractTest, CustomRoleOfAnUnknownOrganisationIsAConflict) {
  EXPECT_TRUE(fails_with(store().custom_roles().insert(make_role("field-tech", "nowhere")), Errc::conflict));
}

TEST_P(StoreContractTest, CustomRoleWithoutANameOrWithUnsortedDuplicateOrSpacedPermissionsIsInvalidArgument) {
  ASSERT_TRUE(add_people(store(), {}));
  auto& roles = store().custom_roles();
  EXPECT_TRUE(fails_with(roles.insert(make_role("")), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(roles.insert(make_role("x", "")), Errc::invalid_argument));
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"devices.read", "account.self"}, {"devices.read", "devices.read"}, {"devices read"}, {""}}) {
    CustomRoleRecord r = make_role("x");
    r.permissions = bad;
    EXPECT_TRUE(fails_with(roles.insert(r), Errc::invalid_argument)) << ::testing::PrintToString(bad);
    ASSERT_TRUE(is_ok(roles.insert(make_role("x"))));
    EXPECT_TRUE(fails_with(roles.update(r), Errc::invalid_argument)) << ::testing::PrintToString(bad);
    auto kept = roles.find("org-1", "x");
    ASSERT_TRUE(is_ok(kept));
    ASSERT_TRUE(kept->has_value());
    EXPECT_EQ(**kept, make_role("x"));
    ASSERT_TRUE(is_ok(roles.remove("org-1", "x")));
  }
}

TEST_P(StoreContractTest, CustomRolesAreListedPerOrganisationByName) {
  ASSERT_TRUE(add_people(store(), {}));
  ASSERT_TRUE(is_ok(store().organisations().insert(make_organisation("org-2"))));
  for (const char* name : {"night-shift", "auditor-lite", "field-tech"}) {
    ASSERT_TRUE(is_ok(store().custom_roles().insert(make_role(name))));
  }
  ASSERT_TRUE(is_ok(store().custom_roles().insert(make_role("elsewhere", "org-2"))));
  auto mine = store().custom_roles().list("org-1");
  ASSERT_TRUE(is_ok(mine));
  EXPECT_THAT(fields(*mine, &CustomRoleRecord::name), ElementsAre("auditor-lite", "field-tech", "night-shift"));
  auto theirs = store().custom_roles().list("org-2");
  ASSERT_TRUE(is_ok(theirs));
  EXPECT_THAT(fields(*theirs, &CustomRoleRecord::name), ElementsAre("elsewhere"));
}

TEST_P(StoreContractTest, CustomRoleUpdateReplacesDescriptionPermissionsAndUpdateTimeOnly) {
  ASSERT_TRUE(add_people(store(), {}));
  ASSERT_TRUE(is_ok(store().custom_roles().insert(make_role("field-tech"))));
  CustomRoleRecord changed = make_role("field-tech");
  changed.description = "Changed";
  changed.permissions = {"devices.write"};
  changed.created_at = kNow + 99;
  changed.updated_at = kNow + 5000;
  ASSERT_TRUE(is_ok(store().custom_roles().update(changed)));
  auto found = store().custom_roles().find("org-1", "field-tech");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  CustomRoleRecord expected = changed;
  expected.created_at = kNow;
  EXPECT_EQ(**found, expected);
  EXPECT_TRUE(fails_with(store().custom_roles().update(make_role("unknown")), Errc::not_found));
}

TEST_P(StoreContractTest, CustomRoleRemoveReportsWhetherARoleWasDeleted) {
  ASSERT_TRUE(add_people(store(), {}));
  ASSERT_TRUE(is_ok(store().custom_roles().insert(make_role("field-tech"))));
  auto removed = store().custom_roles().remove("org-1", "field-tech");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto again = store().custom_roles().remove("org-1", "field-tech");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto found = store().custom_roles().find("org-1", "field-tech");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
}

// -------------------------------------------------------------------------- setting overrides

SettingOverrideRecord make_setting(std::string key, std::string value_json, UnixMillis at = kNow) {
  return {std::move(key), std::move(value_json), "user:u-1", at};
}

TEST_P(StoreContractTest, SettingOverridesRoundTripEveryFieldAndAreListedByKey) {
  auto& settings = store().setting_overrides();
  const SettingOverrideRecord tricky = make_setting("log.retention_days", "\"" + kTricky + "\"");
  ASSERT_TRUE(is_ok(settings.put(make_setting("firewall.deny", R"(["203.0.113.0/24"])"))));
  ASSERT_TRUE(is_ok(settings.put(tricky)));
  ASSERT_TRUE(is_ok(settings.put(make_setting("accounts.lock_after_failures", "3"))));
  auto listed = settings.list();
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, ElementsAre(make_setting("accounts.lock_after_failures", "3"),
                                   make_setting("firewall.deny", R"(["203.0.113.0/24"])"), tricky));
}

TEST_P(StoreContractTest, ASettingOverridePutAgainReplacesValueAuthorAndTime) {
  auto& settings = store().setting_overrides();
  ASSERT_TRUE(is_ok(settings.put(make_setting("accounts.lock_after_failures", "3"))));
  SettingOverrideRecord changed = make_setting("accounts.lock_after_failures", "7", kNow + 5000);
  changed.changed_by = "user:u-2";
  ASSERT_TRUE(is_ok(settings.put(changed)));
  auto listed = settings.list();
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, ElementsAre(changed));
}

TEST_P(StoreContractTest, ASettingOverrideWithoutKeyOrValueIsInvalidArgument) {
  auto& settings = store().setting_overrides();
  EXPECT_TRUE(fails_with(settings.put(make_setting("", "3")), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(settings.put(make_setting("accounts.lock_after_failures", "")), Errc::invalid_argument));
  auto listed = settings.list();
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, IsEmpty());
}

TEST_P(StoreContractTest, SettingOverrideRemoveReportsWhetherOneWasThere) {
  auto& settings = store().setting_overrides();
  ASSERT_TRUE(is_ok(settings.put(make_setting("accounts.lock_after_failures", "3"))));
  ASSERT_TRUE(is_ok(settings.put(make_setting("log.retention_days", "30"))));
  auto removed = settings.remove("accounts.lock_after_failures");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto again = settings.remove("accounts.lock_after_failures");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto listed = settings.list();
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, ElementsAre(make_setting("log.retention_days", "30")));
}

// A change of several settings is all or nothing (the console's PATCH /api/v1/settings).
TEST_P(StoreContractTest, SettingOverridesChangedInATransactionThatFailsAreNotKept) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.setting_overrides().put(make_setting("log.retention_days", "30"))));
  auto t = s.transaction([&]() -> Status {
    if (auto st = s.setting_overrides().put(make_setting("accounts.lock_after_failures", "3")); !st) return st;
    if (auto removed = s.setting_overrides().remove("log.retention_days"); !removed) {
      return tl::unexpected(removed.error());
    }
    return fail(Errc::invalid_argument, "refused");
  });
  EXPECT_TRUE(fails_with(t, Errc::invalid_argument));
  auto listed = s.setting_overrides().list();
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, ElementsAre(make_setting("log.retention_days", "30")));
}

}  // namespace
}  // namespace testing
}  // namespace torii::store

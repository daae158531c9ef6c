#include "identity/api_tokens.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "identity/people.h"
#include "identity/roles.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class ApiTokensTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
    ASSERT_TRUE(store_->organisations().insert({"other", "Other", false, 0}));
    tokens_ = std::make_unique<ApiTokens>(*store_, clock_, random_, ApiTokenOptions{24h * 90},
                                          [this](const events::SecurityEvent& e) { events_.push_back(e); });
    root_ = person("root", kRoleSystemAdmin, "acme");
    admin_ = person("admin", kRoleOrgAdmin, "acme");
    operator_ = person("op", kRoleOperator, "acme");
  }

  // A stored person and the caller they are when signed in (the session does not matter here).
  Caller person(const std::string& id, std::string_view role, const std::string& organisation) {
    store::UserRecord u;
    u.id = id;
    u.organisation_id = organisation;
    u.username = id;
    u.email = id + "@example.org";
    u.role = std::string(role);
    u.password_hash = std::string(kNoPassword);
    u.created_at = to_unix_millis(clock_.now());
    EXPECT_TRUE(store_->users().insert(u));
    return Caller{{}, u, builtin_role_permissions(role), std::nullopt};
  }

  NewApiToken request(std::vector<std::string> permissions, std::chrono::hours lifetime = 24h * 30) {
    return {"monitoring", std::move(permissions), to_unix_millis(clock_.now() + lifetime), ""};
  }

  // A token made by `actor`, and its secret.
  std::pair<store::ApiTokenRecord, std::string> issue(const Caller& actor, std::vector<std::string> permissions) {
    auto made = tokens_->create(actor, request(std::move(permissions)), origin_);
    EXPECT_TRUE(made && made->token) << (made ? "problems" : made.error().message);
    if (!made || !made->token) return {};
    return {*made->token, made->secret};
  }

  std::optional<Caller> resolve(const std::string& secret) {
    auto r = tokens_->resolve(secret, origin_);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : std::nullopt;
  }

  std::vector<std::string> actions() const {
    std::vector<std::string> out;
    for (const auto& e : events_) out.push_back(e.action);
    return out;
  }

  std::unique_ptr<ApiTokens> tokens_;
  std::vector<events::SecurityEvent> events_;
  Origin origin_{"192.0.2.1:5000", "test"};
  Caller root_;
  Caller admin_;
  Caller operator_;
};

TEST_F(ApiTokensTest, ATokenIsShownOnceStoredHashedAndStandsForItsOwnerWithinItsScope) {
  auto [token, secret] = issue(operator_, {"devices.read", "telemetry.read", "devices.read"});
  EXPECT_TRUE(secret.starts_with("torii_" + token.id + "_"));
  EXPECT_GE(secret.size(), 6U + 16U + 1U + 43U);
  EXPECT_THAT(token.permissions, ElementsAre("devices.read", "telemetry.read"));
  EXPECT_EQ(token.organisation_id, "acme");
  auto stored = store_->api_tokens().find(token.id);
  ASSERT_TRUE(stored && *stored);
  EXPECT_NE((*stored)->secret_hash, secret);
  EXPECT_THAT((*stored)->secret_hash, Not(HasSubstr(secret.substr(23))));

  auto caller = resolve(secret);
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->user.id, "op");
  ASSERT_TRUE(caller->token);
  EXPECT_EQ(caller->token->id, token.id);
  EXPECT_TRUE(ApiTokens::grants(*caller, Permission::devices_read));
  EXPECT_FALSE(ApiTokens::grants(*caller, Permission::devices_write));  // the role has it, the token not
  EXPECT_FALSE(ApiTokens::grants(*caller, Permission::account_self));

  // The creation is recorded, without the secret and without an alert.
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.front().action, "api_token.created");
  EXPECT_EQ(events_.front().actor, "user:op");
  EXPECT_FALSE(events_.front().details.value("alert", false));
  EXPECT_THAT(events_.front().details.dump(), Not(HasSubstr(secret.substr(23))));
}

TEST_F(ApiTokensTest, AnythingButTheExactTokenIsRefused) {
  auto [token, secret] = issue(operator_, {"devices.read"});
  std::string altered = secret;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  for (const std::string& wrong : {altered, secret.substr(1), secret + "x", std::string(), "torii_" + token.id,
                                   token.secret_hash, "Torii_" + secret.substr(6)}) {
    EXPECT_FALSE(resolve(wrong)) << wrong;
  }
  EXPECT_TRUE(resolve(secret));
}

TEST_F(ApiTokensTest, PermissionsBeyondTheCreatorsRoleUnknownOnesAndAccountSelfAreRefused) {
  auto made = tokens_->create(operator_, request({"devices.read", "users.write", "no.such", "account.self"}), origin_);
  ASSERT_TRUE(made);
  EXPECT_FALSE(made->token);
  EXPECT_TRUE(made->secret.empty());
  EXPECT_THAT(made->problems,
              ElementsAre(Field(&FieldProblem::code, "forbidden"), Field(&FieldProblem::code, "unknown"),
                          Field(&FieldProblem::code, "forbidden")));
  auto none = tokens_->create(operator_, request({}), origin_);
  ASSERT_TRUE(none);
  EXPECT_THAT(none->problems, ElementsAre(Field(&FieldProblem::field, "permissions")));
  auto listed = tokens_->list(operator_);
  ASSERT_TRUE(listed);
  EXPECT_THAT(*listed, IsEmpty());
}

TEST_F(ApiTokensTest, AnExpiryIsRequiredInTheFutureAndWithinTheConfiguredMaximum) {
  auto no_date = request({"devices.read"});
  no_date.expires_at.reset();
  auto past = request({"devices.read"});
  past.expires_at = to_unix_millis(clock_.now());
  for (const auto& r : {no_date, past, request({"devices.read"}, 24h * 90 + 1h)}) {
    auto made = tokens_->create(operator_, r, origin_);
    ASSERT_TRUE(made);
    EXPECT_THAT(made->problems, ElementsAre(Field(&FieldProblem::field, "expires_at")));
  }
  auto longest = tokens_->create(operator_, request({"devices.read"}, 24h * 90), origin_);
  ASSERT_TRUE(longest);
  EXPECT_TRUE(longest->token);
}

// The console's settings change the maximum for the tokens created from then on.
TEST_F(ApiTokensTest, ANewMaximumLifetimeAppliesToTheNextToken) {
  tokens_->set_max_lifetime(24h * 7);
  auto refused = tokens_->create(operator_, request({"devices.read"}, 24h * 8), origin_);
  ASSERT_TRUE(refused);
  EXPECT_THAT(refused->problems, ElementsAre(Field(&FieldProblem::message, ::testing::HasSubstr("7 days"))));
  auto within = tokens_->create(operator_, request({"devices.read"}, 24h * 7), origin_);
  ASSERT_TRUE(within);
  EXPECT_TRUE(within->token);
}

TEST_F(ApiTokensTest, AnExpiredTokenIsRefusedAndItsUseRecorded) {
  auto [token, secret] = issue(operator_, {"devices.read"});
  clock_.advance(24h * 30 - 1s);
  EXPECT_TRUE(resolve(secret));
  clock_.advance(1s);
  events_.clear();
  EXPECT_FALSE(resolve(secret));
  ASSERT_THAT(actions(), ElementsAre("api_token.expired_refused"));
  EXPECT_EQ(events_.front().outcome, events::Outcome::denied);
  EXPECT_EQ(events_.front().object, "api_token:" + token.id);
}

TEST_F(ApiTokensTest, ARevokedTokenStopsWorkingAndOnlyItsOwnerOrTheirAdministratorMayRevokeIt) {
  auto [token, secret] = issue(operator_, {"devices.read"});
  const Caller stranger = person("stranger", kRoleOrgAdmin, "other");
  const Caller viewer = person("viewer", kRoleViewer, "acme");
  const auto not_found = [](const Status& st) { return !st && st.error().is(Errc::not_found); };
  EXPECT_TRUE(not_found(tokens_->revoke(stranger, token.id, origin_)));
  EXPECT_TRUE(not_found(tokens_->revoke(viewer, token.id, origin_)));
  EXPECT_TRUE(resolve(secret));

  ASSERT_TRUE(tokens_->revoke(admin_, token.id, origin_));
  EXPECT_FALSE(resolve(secret));
  EXPECT_TRUE(not_found(tokens_->revoke(operator_, token.id, origin_)));
  EXPECT_EQ(events_.back().action, "api_token.revoked");
  EXPECT_EQ(events_.back().actor, "user:admin");

  auto [own, own_secret] = issue(operator_, {"devices.read"});
  ASSERT_TRUE(tokens_->revoke(operator_, own.id, origin_));
  EXPECT_FALSE(resolve(own_secret));
  auto listed = tokens_->list(operator_);
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 2U);  // revoked tokens stay listed, marked so
  for (const auto& t : *listed) EXPECT_TRUE(t.revoked_at);
}

TEST_F(ApiTokensTest, ARoleChangeShrinksTheTokenAndADisabledOrEndedOwnerStopsIt) {
  auto [token, secret] = issue(operator_, {"devices.read", "devices.write"});
  auto user = operator_.user;
  user.role = std::string(kRoleViewer);
  ASSERT_TRUE(store_->users().update(user));
  auto caller = resolve(secret);
  ASSERT_TRUE(caller);
  EXPECT_TRUE(ApiTokens::grants(*caller, Permission::devices_read));
  EXPECT_FALSE(ApiTokens::grants(*caller, Permission::devices_write));

  user.expires_at = to_unix_millis(clock_.now() + 1h);
  ASSERT_TRUE(store_->users().update(user));
  EXPECT_TRUE(resolve(secret));
  clock_.advance(1h);
  EXPECT_FALSE(resolve(secret));
  user.expires_at.reset();
  user.status = std::string(store::kUserStatusDisabled);
  ASSERT_TRUE(store_->users().update(user));
  EXPECT_FALSE(resolve(secret));
}

TEST_F(ApiTokensTest, OnlyASystemAdministratorNamesAnotherOrganisationAndTheTokenStaysInsideIt) {
  auto elsewhere = request({"devices.read"});
  elsewhere.organisation_id = "other";
  auto refused = tokens_->create(admin_, elsewhere, origin_);
  ASSERT_TRUE(refused);
  EXPECT_THAT(refused->problems, ElementsAre(Field(&FieldProblem::field, "organisation")));

  auto made = tokens_->create(root_, elsewhere, origin_);
  ASSERT_TRUE(made && made->token);
  auto caller = resolve(made->secret);
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->user.organisation_id, "other");
  EXPECT_FALSE(spans_organisations(*caller));
  EXPECT_TRUE(spans_organisations(root_));
}

TEST_F(ApiTokensTest, LastUseIsWrittenAtMostOnceAMinute) {
  const auto [token, secret] = issue(operator_, {"devices.read"});
  const std::string id = token.id;  // clang 14 (clang-tidy) cannot capture a structured binding
  const auto last_used = [&] { return store_->api_tokens().find(id).value()->last_used_at; };
  EXPECT_FALSE(last_used());
  ASSERT_TRUE(resolve(secret));
  const auto first = last_used();
  EXPECT_EQ(first, to_unix_millis(clock_.now()));
  clock_.advance(59s);
  ASSERT_TRUE(resolve(secret));
  EXPECT_EQ(last_used(), first);
  clock_.advance(1s);
  ASSERT_TRUE(resolve(secret));
  EXPECT_EQ(last_used(), to_unix_millis(clock_.now()));
}

TEST_F(ApiTokensTest, TokensUnusedForTheConfiguredPeriodAreRevokedWithAnEvent) {
  auto [used, used_secret] = issue(operator_, {"devices.read"});
  auto [idle, idle_secret] = issue(operator_, {"devices.read"});
  clock_.advance(24h * 20);
  ASSERT_TRUE(resolve(used_secret));
  clock_.advance(24h * 5);
  events_.clear();
  auto revoked = tokens_->disable_unused(24h * 21);
  ASSERT_TRUE(revoked);
  EXPECT_THAT(*revoked, ElementsAre(idle.id));
  ASSERT_THAT(actions(), ElementsAre("api_token.revoked"));
  EXPECT_EQ(events_.front().actor, "system");
  EXPECT_EQ(events_.front().details.value("reason", ""), "unused");
  EXPECT_FALSE(resolve(idle_secret));
  EXPECT_TRUE(resolve(used_secret));
  auto again = tokens_->disable_unused(24h * 21);
  ASSERT_TRUE(again);
  EXPECT_THAT(*again, IsEmpty());
}

TEST_F(ApiTokensTest, ATokenCannotMakeTokens) {
  auto [token, secret] = issue(admin_, {"devices.read"});
  auto caller = resolve(secret);
  ASSERT_TRUE(caller);
  auto made = tokens_->create(*caller, request({"devices.read"}), origin_);
  ASSERT_FALSE(made);
  EXPECT_TRUE(made.error().is(Errc::permission_denied));
}

TEST_F(ApiTokensTest, EventsOfATokenCallerNameTheTokenAsTheCredential) {
  auto [token, secret] = issue(admin_, {"users.write"});
  auto caller = resolve(secret);
  ASSERT_TRUE(caller);
  EXPECT_EQ(attributed(*caller, {{"x", 1}}), nlohmann::json({{"x", 1}, {"credential", "api_token:" + token.id}}));
  EXPECT_EQ(attributed(admin_, {{"x", 1}}), nlohmann::json({{"x", 1}}));
  auto [other, other_secret] = issue(operator_, {"devices.read"});
  ASSERT_TRUE(tokens_->revoke(*caller, other.id, origin_));
  EXPECT_EQ(events_.back().details.value("credential", ""), "api_token:" + token.id);
}

}  // namespace
}  // namespace torii::identity

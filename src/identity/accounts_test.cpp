#include "identity/accounts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "identity/setup_token.h"
#include "identity/totp.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr std::string_view kStrong = "violet harbour ladder sprinkle 42";
constexpr std::string_view kStronger = "quiet marble teapot orbit 1987";

class AccountsTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    AccountsOptions options;
    options.hash_cost = minimum_password_hash_cost();
    options.lock_after_failures = 3;
    options.first_lock = 60s;
    options.longest_lock = 200s;
    accounts_ = std::make_unique<Accounts>(*store_, *keys_, clock_, random_, options,
                                           [this](const events::SecurityEvent& e) { events_.push_back(e.action); });
  }

  std::string setup_token() {
    auto issued = issue_setup_token(*store_, random_, clock_, 60min);
    EXPECT_TRUE(issued);
    return issued ? issued->token : "";
  }

  // The first administrator, enrolled in TOTP, signed in fully.
  SessionTicket administrator() {
    auto outcome = accounts_->create_first_administrator(
        {setup_token(), "Alice", "alice@example.org", std::string(kStrong)}, origin_);
    EXPECT_TRUE(outcome && outcome->ticket);
    auto caller = resolve(outcome->ticket->id);
    auto enrolment = accounts_->begin_totp_enrolment(*caller);
    EXPECT_TRUE(enrolment) << enrolment.error().message;
    secret_ = secret_of(caller->user.id);
    auto confirmed = accounts_->confirm_totp_enrolment(*resolve(outcome->ticket->id), current_code(), origin_);
    EXPECT_TRUE(confirmed && confirmed->ticket);
    recovery_codes_ = confirmed->recovery_codes;
    return *confirmed->ticket;
  }

  crypto::SecretBytes secret_of(const std::string& user_id) {
    auto user = store_->users().find(user_id);
    auto secret = keys_->open((*user)->totp_key_id, (*user)->totp_sealed, "user-totp|" + user_id);
    EXPECT_TRUE(secret);
    return secret ? *secret : crypto::SecretBytes{};
  }

  std::string current_code() { return totp_code(secret_, totp_step(clock_.now())); }

  std::optional<Caller> resolve(const std::string& id) {
    auto caller = accounts_->resolve_session(id);
    EXPECT_TRUE(caller) << caller.error().message;
    return caller ? *caller : std::nullopt;
  }

  std::unique_ptr<Accounts> accounts_;
  std::vector<std::string> events_;
  Origin origin_{"192.0.2.1:5000", "test"};
  crypto::SecretBytes secret_;
  std::vector<std::string> recovery_codes_;
};

TEST_F(AccountsTest, TheFirstAdministratorNeedsTheSetupTokenOnceAndMustEnrolTotpFirst) {
  const std::string token = setup_token();
  // Input problems leave the link usable and report every field.
  auto weak = accounts_->create_first_administrator({token, "a", "not-an-address", "short"}, origin_);
  ASSERT_TRUE(weak);
  EXPECT_FALSE(weak->ticket);
  std::vector<std::string> fields;
  for (const auto& p : weak->problems) fields.push_back(p.field);
  EXPECT_THAT(fields, ::testing::IsSupersetOf({"username", "email", "password"}));

  auto made =
      accounts_->create_first_administrator({token, "Alice", "alice@example.org", std::string(kStrong)}, origin_);
  ASSERT_TRUE(made && made->ticket) << (made ? "problems" : made.error().message);
  EXPECT_THAT(made->problems, IsEmpty());
  EXPECT_EQ(made->ticket->session.stage, store::kSessionStageEnrol);
  auto caller = resolve(made->ticket->id);
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->user.username, "alice");
  EXPECT_EQ(caller->user.role, kRoleSystemAdmin);
  EXPECT_EQ(setup_pending(*store_).value(), false);

  // The link is dead now.
  auto again =
      accounts_->create_first_administrator({token, "bob", "bob@example.org", std::string(kStronger)}, origin_);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->ticket);
  EXPECT_THAT(again->problems, ElementsAre(Field(&FieldProblem::field, "setup_token")));
  EXPECT_EQ(store_->users().count().value(), 1u);
}

TEST_F(AccountsTest, SignInWithTotpRotatesTheSessionAndRefusesAReplayedCode) {
  administrator();
  clock_.advance(90s);
  auto signed_in = accounts_->sign_in("ALICE", kStrong, origin_);
  ASSERT_TRUE(signed_in);
  ASSERT_EQ(signed_in->status, SignInStatus::signed_in);
  const auto first = *signed_in->ticket;
  EXPECT_EQ(first.session.stage, store::kSessionStageSecondFactor);

  const std::string code = current_code();
  auto done = accounts_->second_factor(*resolve(first.id), code, origin_);
  ASSERT_TRUE(done);
  ASSERT_EQ(done->status, SignInStatus::signed_in);
  EXPECT_EQ(done->ticket->session.stage, store::kSessionStageFull);
  EXPECT_NE(done->ticket->id, first.id);
  EXPECT_FALSE(resolve(first.id)) << "the password-stage session id must not survive";
  ASSERT_TRUE(resolve(done->ticket->id));

  // The same code again, in a new sign-in within its validity: refused.
  auto second = accounts_->sign_in("alice", kStrong, origin_);
  ASSERT_TRUE(second && second->ticket);
  auto replay = accounts_->second_factor(*resolve(second->ticket->id), code, origin_);
  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->status, SignInStatus::refused);
  // The next step's code is fine.
  clock_.advance(30s);
  auto next = accounts_->second_factor(*resolve(second->ticket->id), current_code(), origin_);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, SignInStatus::signed_in);
}

TEST_F(AccountsTest, ARecoveryCodeWorksOnce) {
  administrator();
  ASSERT_THAT(recovery_codes_, SizeIs(10));
  auto a = accounts_->sign_in("alice", kStrong, origin_);
  auto used = accounts_->second_factor(*resolve(a->ticket->id), recovery_codes_[3], origin_);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->status, SignInStatus::signed_in);
  auto b = accounts_->sign_in("alice", kStrong, origin_);
  auto reused = accounts_->second_factor(*resolve(b->ticket->id), recovery_codes_[3], origin_);
  ASSERT_TRUE(reused);
  EXPECT_EQ(reused->status, SignInStatus::refused);
}

TEST_F(AccountsTest, RepeatedFailuresLockTheAccountLongerEachTimeEvenAgainstTheRightPassword) {
  administrator();
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(accounts_->sign_in("alice", "wrong password here", origin_)->status, SignInStatus::refused);
  auto locked = accounts_->sign_in("alice", "wrong password here", origin_);
  ASSERT_TRUE(locked);
  EXPECT_EQ(locked->status, SignInStatus::locked);
  EXPECT_EQ(locked->retry_after, 60s);
  // Locked means locked: the right password does not get through.
  EXPECT_EQ(accounts_->sign_in("alice", kStrong, origin_)->status, SignInStatus::locked);
  clock_.advance(61s);
  // Three more failures: the second lock lasts twice as long, and the third is capped.
  for (int i = 0; i < 2; ++i) (void)accounts_->sign_in("alice", "wrong password here", origin_);
  EXPECT_EQ(accounts_->sign_in("alice", "wrong password here", origin_)->retry_after, 120s);
  clock_.advance(121s);
  for (int i = 0; i < 2; ++i) (void)accounts_->sign_in("alice", "wrong password here", origin_);
  EXPECT_EQ(accounts_->sign_in("alice", "wrong password here", origin_)->retry_after, 200s);
  clock_.advance(201s);
  // A success ends the series.
  auto ok = accounts_->sign_in("alice", kStrong, origin_);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, SignInStatus::signed_in);
  EXPECT_EQ(store_->users().find_by_username("alice").value()->lockouts, 0);
  EXPECT_THAT(events_, ::testing::Contains("account.locked"));
}

TEST_F(AccountsTest, AnUnknownNameIsAnsweredAndLockedLikeAKnownOne) {
  administrator();
  std::vector<SignInStatus> known;
  std::vector<SignInStatus> unknown;
  for (int i = 0; i < 4; ++i) {
    known.push_back(accounts_->sign_in("alice", "wrong password here", origin_)->status);
    unknown.push_back(accounts_->sign_in("mallory", "wrong password here", origin_)->status);
  }
  EXPECT_EQ(known, unknown);
  EXPECT_EQ(unknown.back(), SignInStatus::locked);
}

TEST_F(AccountsTest, SessionsEndAfterTheIdleAndTheAbsoluteTimeout) {
  const auto ticket = administrator();
  clock_.advance(14min);
  ASSERT_TRUE(resolve(ticket.id)) << "used within the idle timeout";
  clock_.advance(14min);
  ASSERT_TRUE(resolve(ticket.id)) << "each use restarts the idle timeout";
  clock_.advance(15min);
  EXPECT_FALSE(resolve(ticket.id)) << "idle for 15 minutes";

  auto again = accounts_->sign_in("alice", kStrong, origin_);
  clock_.advance(30s);
  auto full = accounts_->second_factor(*resolve(again->ticket->id), current_code(), origin_);
  ASSERT_TRUE(full && full->ticket);
  for (int i = 0; i < 12 * 6 - 1; ++i) {
    clock_.advance(10min);
    ASSERT_TRUE(resolve(full->ticket->id)) << "at " << (i + 1) * 10 << " minutes";
  }
  clock_.advance(10min);
  EXPECT_FALSE(resolve(full->ticket->id)) << "12 hours after sign-in, however active";
}

// The console's settings (PATCH /api/v1/settings) reach a running Accounts: the next failure
// counts against the new threshold and lock time, the next session check the new timeout.
TEST_F(AccountsTest, ANewPolicyAppliesToTheNextFailureAndSessionCheck) {
  const auto ticket = administrator();
  AccountsOptions next = accounts_->options();
  next.lock_after_failures = 1;
  next.first_lock = 30s;
  next.session_idle = 5min;
  next.hash_cost = {4, std::size_t{1} << 20};
  accounts_->update_policy(next);
  EXPECT_EQ(accounts_->options().hash_cost.ops, minimum_password_hash_cost().ops) << "the hash cost stays";
  clock_.advance(6min);
  EXPECT_FALSE(resolve(ticket.id)) << "idle longer than the new timeout";
  auto locked = accounts_->sign_in("alice", "wrong password here", origin_);
  ASSERT_TRUE(locked);
  EXPECT_EQ(locked->status, SignInStatus::locked);
  EXPECT_EQ(locked->retry_after, 30s);
}

TEST_F(AccountsTest, AChangedPasswordEndsOtherSessionsAndMayNotRepeatARecentOne) {
  const auto ticket = administrator();
  auto other = accounts_->sign_in("alice", kStrong, origin_);
  ASSERT_TRUE(other && other->ticket);

  auto wrong = accounts_->change_password(*resolve(ticket.id), "not the password", kStronger, origin_);
  ASSERT_TRUE(wrong);
  EXPECT_THAT(wrong->problems, ElementsAre(Field(&FieldProblem::field, "current_password")));

  auto same = accounts_->change_password(*resolve(ticket.id), kStrong, kStrong, origin_);
  ASSERT_TRUE(same);
  EXPECT_THAT(same->problems, ElementsAre(Field(&FieldProblem::code, "reused")));

  auto changed = accounts_->change_password(*resolve(ticket.id), kStrong, kStronger, origin_);
  ASSERT_TRUE(changed && changed->ticket);
  EXPECT_FALSE(resolve(ticket.id)) << "the session gets a new id";
  EXPECT_FALSE(resolve(other->ticket->id)) << "other sessions end";
  ASSERT_TRUE(resolve(changed->ticket->id));
  // Back to the first one: it is in the history now.
  auto back = accounts_->change_password(*resolve(changed->ticket->id), kStronger, kStrong, origin_);
  ASSERT_TRUE(back);
  EXPECT_THAT(back->problems, ElementsAre(Field(&FieldProblem::code, "reused")));
  EXPECT_EQ(accounts_->sign_in("alice", kStronger, origin_)->status, SignInStatus::signed_in);
}

TEST_F(AccountsTest, ADisabledOrEndedAccountCannotSignInAndItsSessionsStopWorking) {
  const auto ticket = administrator();
  auto user = *store_->users().find_by_username("alice").value();
  user.expires_at = to_unix_millis(clock_.now() + 1h);
  ASSERT_TRUE(store_->users().update(user));
  ASSERT_TRUE(resolve(ticket.id));
  clock_.advance(1h);
  EXPECT_FALSE(resolve(ticket.id));
  EXPECT_EQ(accounts_->sign_in("alice", kStrong, origin_)->status, SignInStatus::disabled);
  EXPECT_EQ(accounts_->sign_in("alice", "wrong password here", origin_)->status, SignInStatus::refused)
      << "without the password nothing about the account is told";
}

TEST_F(AccountsTest, SessionIdsAreNotStoredAndOnlyWellFormedIdsAreLookedUp) {
  const auto ticket = administrator();
  EXPECT_NE(ticket.session.id_hash, ticket.id);
  EXPECT_EQ(ticket.id.size(), 43u);
  EXPECT_FALSE(resolve(ticket.session.id_hash)) << "the stored hash is not a key";
  EXPECT_FALSE(resolve("'; DROP TABLE users; --"));
  EXPECT_FALSE(resolve(""));
}

TEST_F(AccountsTest, StepUpRenewsTheProofWithACodeOrThePasswordAndFailuresLockTheAccount) {
  const auto ticket = administrator();
  clock_.advance(6min);
  auto caller = resolve(ticket.id);
  ASSERT_TRUE(caller);
  EXPECT_FALSE(accounts_->recently_authenticated(*caller));
  const std::string code = current_code();
  ASSERT_EQ(accounts_->step_up(*caller, "", code, origin_)->status, SignInStatus::signed_in);
  EXPECT_TRUE(accounts_->recently_authenticated(*resolve(ticket.id)));
  EXPECT_EQ(accounts_->step_up(*resolve(ticket.id), "", code, origin_)->status, SignInStatus::refused)
      << "a code once used is used";
  clock_.advance(6min);
  ASSERT_EQ(accounts_->step_up(*resolve(ticket.id), kStrong, "", origin_)->status, SignInStatus::signed_in);
  EXPECT_TRUE(accounts_->recently_authenticated(*resolve(ticket.id)));
  // Someone at an unattended session guessing: locked out, and the session ends.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(accounts_->step_up(*resolve(ticket.id), "guess guess guess", "", origin_)->status, SignInStatus::refused);
  }
  EXPECT_EQ(accounts_->step_up(*resolve(ticket.id), "guess guess guess", "", origin_)->status, SignInStatus::locked);
  EXPECT_FALSE(resolve(ticket.id));
}

// A viewer with a password, in the administrator's organisation ("default"), and a fully
// signed-in session of theirs with TOTP enrolled.
class SecondFactorTest : public AccountsTest {
 protected:
  SessionTicket enrolled_viewer() {
    admin_ = administrator();
    store::UserRecord u;
    u.id = "bob-id";
    u.organisation_id = "default";
    u.username = "bob";
    u.email = "bob@example.org";
    u.role = std::string(kRoleViewer);
    u.password_hash = hash_password(std::string(kStronger), minimum_password_hash_cost()).value();
    u.created_at = to_unix_millis(clock_.now());
    EXPECT_TRUE(store_->users().insert(u));
    auto signed_in = accounts_->sign_in("bob", kStronger, origin_);
    EXPECT_EQ(signed_in->ticket->session.stage, store::kSessionStageFull) << "no second factor required of bob";
    return enrol(signed_in->ticket->id);
  }

  SessionTicket enrol(const std::string& session_id) {
    auto caller = resolve(session_id);
    EXPECT_TRUE(accounts_->begin_totp_enrolment(*caller));
    secret_ = secret_of(caller->user.id);
    auto confirmed = accounts_->confirm_totp_enrolment(*resolve(session_id), current_code(), origin_);
    EXPECT_TRUE(confirmed && confirmed->ticket);
    recovery_codes_ = confirmed->recovery_codes;
    return *confirmed->ticket;
  }

  void require_second_factor() {
    auto org = store_->organisations().find("default").value().value();
    org.require_second_factor = true;
    ASSERT_TRUE(store_->organisations().update(org));
  }

  SessionTicket admin_;
};

TEST_F(SecondFactorTest, TurningTotpOffIsAnAlertAndLetsThePersonEnrolAnew) {
  auto bob = enrolled_viewer();
  ASSERT_TRUE(accounts_->disable_totp(*resolve(bob.id), origin_));
  EXPECT_THAT(events_, ::testing::Contains("totp.disabled"));
  const auto stored = store_->users().find("bob-id").value().value();
  EXPECT_FALSE(stored.totp_enabled);
  EXPECT_TRUE(stored.totp_sealed.empty());
  EXPECT_EQ(store_->users().count_unused_recovery_codes("bob-id").value(), 0u) << "the old codes are gone";
  auto again = accounts_->disable_totp(*resolve(bob.id), origin_);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::not_found));

  // Signing in needs no second factor now, and enrolling works again with a new secret.
  const auto old_secret = secret_;
  auto signed_in = accounts_->sign_in("bob", kStronger, origin_);
  ASSERT_EQ(signed_in->ticket->session.stage, store::kSessionStageFull);
  enrol(signed_in->ticket->id);
  EXPECT_NE(secret_.view().size(), 0u);
  EXPECT_FALSE(std::ranges::equal(secret_.view(), old_secret.view())) << "a fresh secret";
  EXPECT_TRUE(store_->users().find("bob-id").value()->totp_enabled);
}

TEST_F(SecondFactorTest, WhoMustUseASecondFactorCannotTurnItOff) {
  auto bob = enrolled_viewer();
  auto admin = accounts_->disable_totp(*resolve(admin_.id), origin_);
  ASSERT_FALSE(admin);
  EXPECT_TRUE(admin.error().is(Errc::conflict)) << "administrators always keep one";
  require_second_factor();
  auto viewer = accounts_->disable_totp(*resolve(bob.id), origin_);
  ASSERT_FALSE(viewer);
  EXPECT_TRUE(viewer.error().is(Errc::conflict)) << "the organisation requires one";
  EXPECT_TRUE(store_->users().find("bob-id").value()->totp_enabled);
  EXPECT_THAT(events_, ::testing::Not(::testing::Contains("totp.disabled")));
}

TEST_F(SecondFactorTest, AnAdministratorsResetEndsTheSessionsAndTheNextSignInMustEnrol) {
  auto bob = enrolled_viewer();
  require_second_factor();
  const auto admin = *resolve(admin_.id);
  auto self = accounts_->reset_second_factor(admin, admin.user.id, origin_);
  ASSERT_FALSE(self);
  EXPECT_TRUE(self.error().is(Errc::conflict));
  auto unknown = accounts_->reset_second_factor(admin, "nobody", origin_);
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(unknown.error().is(Errc::not_found));
  auto by_bob = accounts_->reset_second_factor(*resolve(bob.id), admin.user.id, origin_);
  ASSERT_FALSE(by_bob);
  EXPECT_TRUE(by_bob.error().is(Errc::conflict)) << "only a system administrator resets one";

  ASSERT_TRUE(accounts_->reset_second_factor(admin, "bob-id", origin_));
  EXPECT_THAT(events_, ::testing::Contains("second_factor.reset"));
  EXPECT_FALSE(resolve(bob.id)) << "bob's sessions end";
  auto signed_in = accounts_->sign_in("bob", kStronger, origin_);
  ASSERT_EQ(signed_in->status, SignInStatus::signed_in);
  EXPECT_EQ(signed_in->ticket->session.stage, store::kSessionStageEnrol);
  enrol(signed_in->ticket->id);
}

TEST_F(SecondFactorTest, NewRecoveryCodesReplaceTheOldOnes) {
  auto bob = enrolled_viewer();
  const auto old_codes = recovery_codes_;
  auto codes = accounts_->regenerate_recovery_codes(*resolve(bob.id), origin_);
  ASSERT_TRUE(codes);
  ASSERT_THAT(*codes, SizeIs(10));
  auto a = accounts_->sign_in("bob", kStronger, origin_);
  EXPECT_EQ(accounts_->second_factor(*resolve(a->ticket->id), old_codes[0], origin_)->status, SignInStatus::refused);
  auto b = accounts_->sign_in("bob", kStronger, origin_);
  EXPECT_EQ(accounts_->second_factor(*resolve(b->ticket->id), (*codes)[0], origin_)->status, SignInStatus::signed_in);
}

// JPCERT VIII-2: failures spread over many accounts stay under each account's lock, but the
// burst from one source is an alert, once per window.
TEST(AccountsBursts, FailedSignInsAcrossAccountsFromOneSourceMakeOneAlert) {
  testing::TempDir dir;
  crypto::SystemRandom random;
  testing::FakeClock clock;
  auto opened = testing::open_keyed_store(dir.path(), random, clock);
  ASSERT_TRUE(opened);
  AccountsOptions options;
  options.hash_cost = minimum_password_hash_cost();
  options.failure_bursts = {std::chrono::seconds(60), 4, 0};
  std::vector<events::SecurityEvent> events;
  Accounts accounts(*opened->store, *opened->keys, clock, random, options,
                    [&](const events::SecurityEvent& e) { events.push_back(e); });
  for (int i = 0; i < 12; ++i) {
    (void)accounts.sign_in("name" + std::to_string(i), "wrong password here",
                           {"198.51.100.9:" + std::to_string(i), ""});
  }
  std::vector<events::SecurityEvent> bursts;
  std::ranges::copy_if(events, std::back_inserter(bursts),
                       [](const auto& e) { return e.action == "login.failures_burst"; });
  ASSERT_EQ(bursts.size(), 1u);
  EXPECT_EQ(bursts[0].object, "source:198.51.100.9");
  EXPECT_EQ(bursts[0].details.at("alert"), true);
  EXPECT_EQ(bursts[0].details.at("failures"), 5);
  clock.advance(61s);
  for (int i = 0; i < 5; ++i)
    (void)accounts.sign_in("other" + std::to_string(i), "wrong password here", {"198.51.100.9:1", ""});
  EXPECT_EQ(std::ranges::count_if(events, [](const auto& e) { return e.action == "login.failures_burst"; }), 2)
      << "a new window, a new alert";
}

TEST(Usernames, AreFoldedToLowerCaseAndLimitedToASafeAlphabet) {
  EXPECT_EQ(normalize_username("Alice.Smith-2").value(), "alice.smith-2");
  EXPECT_FALSE(normalize_username("al"));
  EXPECT_FALSE(normalize_username("-alice"));
  EXPECT_FALSE(normalize_username("alice smith"));
  EXPECT_FALSE(normalize_username("ålice"));
  EXPECT_EQ(normalize_email("  a@example.org ").value(), "a@example.org");
  EXPECT_FALSE(normalize_email("a@b@c"));
  EXPECT_FALSE(normalize_email("@example.org"));
  EXPECT_FALSE(normalize_email("a b@example.org"));
}

}  // namespace
}  // namespace torii::identity

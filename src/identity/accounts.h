// People's accounts and console sessions: the first administrator, sign-in with lockout,
// the second factor, sessions with idle and absolute timeouts, password changes.
//
//   JPCERT I-1/I-2, IIIT DI7  lockout after repeated failures, each lock longer than the last;
//                             unknown names lock the same way, so answers reveal nothing
//   JPCERT I-3, IIIT DI2      password policy (password_policy.h), history of five
//   JPCERT I-4, IIIT I2       TOTP with replay refusal, single-use recovery codes; required
//                             for administrators and where the organisation says so
//   JPCERT I-6, IIIT DI1      no default account: the first administrator is created through
//                             the one-time setup link and must enrol TOTP before anything else
//   JPCERT III-2…III-4, I4    opaque 256-bit session ids stored hashed, a new id at sign-in,
//                             after the second factor and on a password change; timeouts
//
// Cores do no I/O beyond the store: callers run the slow calls (those verifying or making an
// Argon2id hash, marked "slow") off the I/O thread and bound how many run at once. An
// Accounts object holds no mutable state of its own except the in-memory lock state of
// unknown names, guarded by a mutex: it may be used from several threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "events/security_log.h"
#include "identity/failure_bursts.h"
#include "identity/password_policy.h"
#include "identity/roles.h"
#include "keys/key_ring.h"
#include "store/store.h"

namespace torii::identity {

struct AccountsOptions {
  PasswordHashCost hash_cost;
  int lock_after_failures = 5;
  std::chrono::seconds first_lock{60};  // doubled by each further lock in a row
  std::chrono::seconds longest_lock{std::chrono::hours(1)};
  std::chrono::seconds session_idle{std::chrono::minutes(15)};
  std::chrono::seconds session_absolute{std::chrono::hours(12)};
  // A session waiting for the second factor lasts this long at most.
  std::chrono::seconds second_factor_window{std::chrono::minutes(5)};
  // Sensitive operations need a password or TOTP proof at most this old (step-up).
  std::chrono::seconds step_up_window{std::chrono::minutes(5)};
  std::string totp_issuer = "torii";
  // Failed sign-ins across accounts that make one "login.failures_burst" alert (JPCERT VIII-2).
  FailureBurstOptions failure_bursts;
};

// Where a request came from, recorded with sessions and security events.
struct Origin {
  std::string source;  // "203.0.113.5:51234"
  std::string user_agent;
};

// A session just created: its id goes to the client once (the cookie) and is never stored.
struct SessionTicket {
  std::string id;
  store::ConsoleSessionRecord session;
};

// The signed-in person behind a request: through a console session, or through one of their
// API tokens (api_tokens.h). A token caller has no session (its members are empty), and its
// user's organisation_id is the token's organisation, so everything that asks "the caller's
// organisation" stays inside the one the token is scoped to.
struct Caller {
  store::ConsoleSessionRecord session;
  store::UserRecord user;
  // What the person's role grants, read when the session was resolved (built-in or custom
  // role: identity/custom_roles.h).
  PermissionSet permissions;
  std::optional<store::ApiTokenRecord> token;
};

// Whether the person may act now: active, and not past their end date.
[[nodiscard]] bool active_at(const store::UserRecord& user, UnixMillis now);

// Whether the caller acts in every organisation: a system administrator, except through an
// API token (scoped to one organisation, JPCERT I-10).
[[nodiscard]] bool spans_organisations(const Caller& caller);

// The security-event details of what the caller does: `details`, and for a token caller
// "credential": "api_token:<id>" (the actor stays "user:<id>"; JPCERT I-10).
[[nodiscard]] nlohmann::json attributed(const Caller& caller, nlohmann::json details);

struct NewAdministrator {
  std::string setup_token;
  std::string username;
  std::string email;
  std::string password;
};

// A person's input refused, field by field (`field` is the request's member name).
struct FieldProblem {
  std::string field;
  std::string code;
  std::string message;

  friend bool operator==(const FieldProblem&, const FieldProblem&) = default;
};

// Either problems with the input (nothing changed) or the new session.
struct Outcome {
  std::vector<FieldProblem> problems;
  std::optional<SessionTicket> ticket;
};

enum class SignInStatus {
  signed_in,  // ticket set; its stage says what comes next
  refused,    // wrong name, password or code: one answer for all
  locked,     // too many failures: retry_after says for how long
  disabled,   // the right password for an account that is disabled or past its end date
};

struct SignInResult {
  SignInStatus status = SignInStatus::refused;
  std::optional<SessionTicket> ticket;
  std::chrono::seconds retry_after{0};
};

struct TotpEnrolment {
  std::string secret_base32;
  std::string uri;
  std::string qr_svg;
};

struct EnrolmentResult {
  std::vector<FieldProblem> problems;  // a wrong code
  std::optional<SessionTicket> ticket;
  std::vector<std::string> recovery_codes;  // shown once
};

using EventSink = std::function<void(const events::SecurityEvent&)>;

class Accounts {
 public:
  // Keeps references to everything it is given: they must outlive it.
  Accounts(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random, AccountsOptions options,
           EventSink events);

  // A copy: the policy part may change while the server runs (update_policy).
  [[nodiscard]] AccountsOptions options() const;
  // Replaces the lockout (lock_after_failures, first_lock, longest_lock), the session
  // timeouts (session_idle, session_absolute) and failure_bursts with `next`'s; the other
  // members stay as constructed. Takes effect for the next failure, session check and sweep
  // (a lock already running keeps its end; sessions are judged by the new timeouts).
  // Thread-safe: the console calls it on the io thread while sign-ins verify on the pool.
  void update_policy(const AccountsOptions& next);

  // Consumes the setup token and creates the system administrator (organisation "default",
  // created when missing) with a session in the enrol stage. Problems: setup_token
  // (unknown, expired or used: one message), username, email, password. Slow.
  [[nodiscard]] Result<Outcome> create_first_administrator(const NewAdministrator& request, const Origin& origin);

  // Slow, also for an unknown name (the same Argon2id work is done either way).
  [[nodiscard]] Result<SignInResult> sign_in(std::string_view username, std::string_view password,
                                             const Origin& origin);

  // For a session in the second-factor stage: a TOTP code or a recovery code. On success
  // the session is replaced by a new one in the full stage. Failures count towards the
  // account's lockout; a lock ends the waiting session.
  [[nodiscard]] Result<SignInResult> second_factor(const Caller& caller, std::string_view code, const Origin& origin);

  // A fresh TOTP secret for the caller, stored sealed and unconfirmed (it replaces an
  // unconfirmed one). conflict when TOTP is already on.
  [[nodiscard]] Result<TotpEnrolment> begin_totp_enrolment(const Caller& caller);
  // Confirms the secret with a code from it: TOTP is on, ten recovery codes are issued,
  // and the session is replaced by a new one in the full stage.
  [[nodiscard]] Result<EnrolmentResult> confirm_totp_enrolment(const Caller& caller, std::string_view code,
                                                               const Origin& origin);

  // Turns the caller's own TOTP off (JPCERT I-4): the secret and the recovery codes are
  // removed, "totp.disabled" is recorded as an alert, and begin_totp_enrolment works again.
  // conflict when the person must use a second factor (second_factor_required);
  // not_found when TOTP is not on. The caller checks the step-up.
  [[nodiscard]] Status disable_totp(const Caller& caller, const Origin& origin);
  // An administrator's reset of another person's second factor (lost phone): as
  // disable_totp, whatever the policy, and every session of the person ends; at their next
  // sign-in they must enrol again where a second factor is required. not_found for an
  // unknown person or one of another organisation (unless the actor spans organisations);
  // conflict for the actor themselves, for a person without TOTP, and for a system
  // administrator unless the actor is one. The caller checks users.write and the step-up.
  [[nodiscard]] Status reset_second_factor(const Caller& actor, std::string_view user_id, const Origin& origin);
  // Ten new recovery codes (shown once) in place of the old ones. not_found when TOTP is
  // not on.
  [[nodiscard]] Result<std::vector<std::string>> regenerate_recovery_codes(const Caller& caller, const Origin& origin);

  // The session a cookie value names, when it is valid now: not idle too long, not too
  // old, its person active. Expired sessions are deleted when seen.
  [[nodiscard]] Result<std::optional<Caller>> resolve_session(std::string_view session_id);
  // Whether the caller's session is still valid now, by the same rules, without counting as
  // activity (a live view open in a browser does not keep its session from going idle).
  // For what outlives the request that resolved the session: the live telemetry socket.
  [[nodiscard]] Result<bool> still_signed_in(const Caller& caller);

  [[nodiscard]] Status sign_out(const Caller& caller, const Origin& origin);
  // Ends every session of the caller but the current one; returns how many.
  [[nodiscard]] Result<std::size_t> sign_out_elsewhere(const Caller& caller, const Origin& origin);
  [[nodiscard]] Result<std::vector<store::ConsoleSessionRecord>> sessions(const Caller& caller);
  // False when the caller has no session with this handle.
  [[nodiscard]] Result<bool> end_session(const Caller& caller, std::string_view handle, const Origin& origin);

  // Needs the current password; the new one must pass the policy. Other sessions end; the
  // current one is replaced by a new one. Problems: current_password, new_password. Slow.
  [[nodiscard]] Result<Outcome> change_password(const Caller& caller, std::string_view current_password,
                                                std::string_view new_password, const Origin& origin);

  // Whether the caller proved who they are recently enough for a sensitive operation.
  [[nodiscard]] bool recently_authenticated(const Caller& caller) const;
  // Step-up re-authentication (JPCERT I-4): the password, or a current TOTP code for an
  // account with TOTP, proves the person is still at the keyboard; the session's
  // authenticated_at becomes now. Failures count towards the lockout as at sign-in. Slow
  // when a password is given.
  [[nodiscard]] Result<SignInResult> step_up(const Caller& caller, std::string_view password, std::string_view code,
                                             const Origin& origin);

  // Whether the person must use a second factor: administrators always, others when their
  // organisation requires it.
  [[nodiscard]] Result<bool> second_factor_required(const store::UserRecord& user);

  // Deletes expired sessions; returns how many.
  [[nodiscard]] Result<std::size_t> remove_expired_sessions();

 private:
  // Idle or absolute timeout passed (a session waiting for its second factor has its own).
  [[nodiscard]] bool session_timed_out(const store::ConsoleSessionRecord& session, UnixMillis now) const;

  struct Lock {
    int failures = 0;
    int lockouts = 0;
    UnixMillis locked_until = 0;
  };

  [[nodiscard]] Result<SessionTicket> open_session(const store::UserRecord& user, std::string_view stage,
                                                   const Origin& origin);
  [[nodiscard]] Result<SessionTicket> replace_session(const Caller& caller, std::string_view stage,
                                                      const Origin& origin);
  // Records a failed proof; true when it locked the account.
  bool count_failure(Lock& lock, UnixMillis now, const AccountsOptions& policy) const;
  struct Failure {
    std::string action;  // the security event
    nlohmann::json details;
  };
  // A wrong password or code of a known person: counted, recorded, and when it locks the
  // account, on_lock runs (ending sessions) and the lock is recorded as an alert.
  [[nodiscard]] Result<SignInResult> refuse(store::UserRecord& user, const Failure& failure,
                                            const std::function<Status()>& on_lock, const Origin& origin);
  [[nodiscard]] std::chrono::seconds remaining(UnixMillis locked_until, UnixMillis now) const;
  [[nodiscard]] Result<SignInResult> refuse_unknown(std::string_view username, const Origin& origin);
  [[nodiscard]] const std::string& decoy_hash();
  // Counts a failed proof towards the bursts across accounts and records a burst as an alert.
  void note_failure(const Origin& origin);
  // Removes a person's TOTP secret and recovery codes (in one transaction).
  [[nodiscard]] Status remove_totp(store::UserRecord& user);
  void emit(std::string actor, std::string action, std::string object, events::Outcome outcome, const Origin& origin,
            nlohmann::json details = nlohmann::json::object()) const;

  store::Store& store_;
  keys::KeyRing& keys_;
  const Clock& clock_;
  Random& random_;
  // hash_cost, the windows and totp_issuer are never changed after construction; the rest
  // of options_ is read and replaced under options_mutex_ (options(), update_policy()).
  mutable std::mutex options_mutex_;
  AccountsOptions options_;
  EventSink events_;

  std::once_flag decoy_once_;
  std::string decoy_hash_;  // verified for unknown names, so they cost what known ones do

  std::mutex unknown_mutex_;
  std::unordered_map<std::string, Lock> unknown_names_;  // bounded; guarded by unknown_mutex_

  std::mutex bursts_mutex_;
  FailureBursts bursts_;  // guarded by bursts_mutex_
};

// What the store keeps of a session id (the cookie value): a SHA-256 under a domain tag.
[[nodiscard]] std::string session_id_hash(std::string_view session_id);

// Lower-cased name, checked: 3 to 64 of a-z 0-9 . _ - starting with a letter or digit.
[[nodiscard]] Result<std::string> normalize_username(std::string_view username);
// Trimmed; one '@' with text on both sides, at most 254 bytes, no spaces or controls.
[[nodiscard]] Result<std::string> normalize_email(std::string_view email);

}  // namespace torii::identity

#include "identity/accounts.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "crypto/sodium.h"
#include "identity/custom_roles.h"
#include "identity/devices.h"
#include "identity/setup_token.h"
#include "identity/totp.h"

namespace torii::identity {
namespace {

constexpr std::string_view kSessionHashDomain = "torii console session";
constexpr std::size_t kSessionIdLength = 43;  // 256 bits, base64url
// Unknown names whose lock state is remembered; beyond it the oldest state is forgotten,
// which at worst lets an attacker spraying names retry sooner, never locks anyone out.
constexpr std::size_t kMaxUnknownNames = 10000;
// A session's last_seen_at is written at most this often: the idle timeout is 15 minutes
// by default, and a write per request would serialise every request on the store.
constexpr UnixMillis kSessionTouchEveryMs = 30'000;

std::string user_key_id(std::string_view user_id) { return fmt::format("user:{}", user_id); }
std::string totp_aad(std::string_view user_id) { return fmt::format("user-totp|{}", user_id); }

UnixMillis millis(std::chrono::seconds s) { return static_cast<UnixMillis>(s.count()) * 1000; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<FieldProblem> as_field_problems(std::string_view field, const std::vector<PasswordProblem>& problems) {
  std::vector<FieldProblem> out;
  out.reserve(problems.size());
  for (const auto& p : problems) out.push_back({std::string(field), p.code, p.message});
  return out;
}

}  // namespace

bool active_at(const store::UserRecord& user, UnixMillis now) {
  return user.status == store::kUserStatusActive && !(user.expires_at && *user.expires_at <= now);
}

bool spans_organisations(const Caller& caller) { return !caller.token && role_spans_organisations(caller.user.role); }

nlohmann::json attributed(const Caller& caller, nlohmann::json details) {
  if (caller.token) details["credential"] = "api_token:" + caller.token->id;
  return details;
}

std::string session_id_hash(std::string_view session_id) { return crypto::token_hash(kSessionHashDomain, session_id); }

Result<std::string> normalize_username(std::string_view username) {
  std::string out;
  out.reserve(username.size());
  for (char c : username) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  const auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  if (out.size() < 3 || out.size() > 64 || !std::ranges::all_of(out, allowed) ||
      !(std::isalnum(static_cast<unsigned char>(out.front())) != 0)) {
    return fail(Errc::invalid_argument,
                "must be 3 to 64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  return out;
}

Result<std::string> normalize_email(std::string_view email) {
  while (!email.empty() && email.front() == ' ') email.remove_prefix(1);
  while (!email.empty() && email.back() == ' ') email.remove_suffix(1);
  const auto at = email.find('@');
  const bool clean = std::ranges::none_of(email, [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"';
  });
  if (email.size() > 254 || at == std::string_view::npos || at == 0 || at + 1 == email.size() ||
      email.find('@', at + 1) != std::string_view::npos || !clean) {
    return fail(Errc::invalid_argument, "must be an e-mail address such as name@example.org");
  }
  return std::string(email);
}

Accounts::Accounts(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random,
                   AccountsOptions options, EventSink events)
    : store_(store),
      keys_(keys),
      clock_(clock),
      random_(random),
      options_(std::move(options)),
      events_(std::move(events)),
      bursts_(options_.failure_bursts) {}

AccountsOptions Accounts::options() const {
  const std::lock_guard lock(options_mutex_);
  return options_;
}

void Accounts::update_policy(const AccountsOptions& next) {
  {
    const std::lock_guard lock(options_mutex_);
    options_.lock_after_failures = next.lock_after_failures;
    options_.first_lock = next.first_lock;
    options_.longest_lock = next.longest_lock;
    options_.session_idle = next.session_idle;
    options_.session_absolute = next.session_absolute;
    options_.failure_bursts = next.failure_bursts;
  }
  const std::lock_guard lock(bursts_mutex_);
  bursts_.set_options(next.failure_bursts);
}

void Accounts::emit(std::string actor, std::string action, std::string object, events::Outcome outcome,
                    const Origin& origin, nlohmann::json details) const {
  if (!events_) return;
  events_({std::move(actor), std::move(action), std::move(object), outcome, origin.source, std::move(details)});
}

void Accounts::note_failure(const Origin& origin) {
  const auto now = clock_.now();
  std::vector<FailureBurst> bursts;
  {
    std::lock_guard lock(bursts_mutex_);
    bursts = bursts_.record(endpoint_address(origin.source), now);
  }
  // JPCERT VIII-2: spraying many accounts stays under each account's lock; this is its alert.
  for (const auto& burst : bursts) {
    const bool per_source = !burst.source.empty();
    emit("system", "login.failures_burst", per_source ? "source:" + burst.source : "sign-in", events::Outcome::failure,
         {per_source ? origin.source : "", ""},
         {{"failures", burst.failures},
          {"since", format_utc_millis(burst.window_start)},
          {"window_seconds", options().failure_bursts.window.count()},
          {"scope", per_source ? "source" : "all sources"},
          {"alert", true}});
  }
}

const std::string& Accounts::decoy_hash() {
  std::call_once(decoy_once_, [this] {
    std::array<std::uint8_t, 32> raw{};
    random_.fill(raw);
    auto hash = hash_password(hex_encode(raw), options_.hash_cost);
    decoy_hash_ = hash ? std::move(*hash) : std::string();
  });
  return decoy_hash_;
}

Result<bool> Accounts::second_factor_required(const store::UserRecord& user) {
  auto permissions = role_permissions(store_, user.organisation_id, user.role);
  if (!permissions) return tl::unexpected(permissions.error());
  if (is_administrator(*permissions)) return true;
  auto org = store_.organisations().find(user.organisation_id);
  if (!org) return tl::unexpected(org.error());
  return *org && (*org)->require_second_factor;
}

Result<SessionTicket> Accounts::open_session(const store::UserRecord& user, std::string_view stage,
                                             const Origin& origin) {
  const UnixMillis now = to_unix_millis(clock_.now());
  std::array<std::uint8_t, 16> handle{};
  random_.fill(handle);
  SessionTicket ticket{crypto::random_token(random_), {}};
  ticket.session = {
      session_id_hash(ticket.id),      hex_encode(handle), user.id, std::string(stage), now, now, now, origin.source,
      origin.user_agent.substr(0, 256)};
  if (auto st = store_.console_sessions().insert(ticket.session); !st) return tl::unexpected(st.error());
  return ticket;
}

Result<SessionTicket> Accounts::replace_session(const Caller& caller, std::string_view stage, const Origin& origin) {
  Result<SessionTicket> ticket = fail(Errc::io_error, "not run");
  Status st = store_.transaction([&]() -> Status {
    if (auto removed = store_.console_sessions().remove(caller.session.id_hash); !removed) {
      return tl::unexpected(removed.error());
    }
    ticket = open_session(caller.user, stage, origin);
    if (!ticket) return tl::unexpected(ticket.error());
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  return ticket;
}

bool Accounts::count_failure(Lock& lock, UnixMillis now, const AccountsOptions& policy) const {
  if (++lock.failures < policy.lock_after_failures) return false;
  lock.failures = 0;
  ++lock.lockouts;
  // first_lock, then twice as long each further time in a row, up to longest_lock.
  auto duration = policy.first_lock;
  for (int i = 1; i < lock.lockouts && duration < policy.longest_lock; ++i) duration *= 2;
  lock.locked_until = now + millis(std::min(duration, policy.longest_lock));
  return true;
}

Result<SignInResult> Accounts::refuse(store::UserRecord& user, const Failure& failure,
                                      const std::function<Status()>& on_lock, const Origin& origin) {
  const UnixMillis now = to_unix_millis(clock_.now());
  const std::string actor = "user:" + user.id;
  Lock lock{user.failed_logins, user.lockouts, user.locked_until};
  const bool locked = count_failure(lock, now, options());
  user.failed_logins = lock.failures;
  user.lockouts = lock.lockouts;
  user.locked_until = lock.locked_until;
  if (auto st = store_.users().update(user); !st) return tl::unexpected(st.error());
  emit(actor, failure.action, actor, events::Outcome::failure, origin, failure.details);
  note_failure(origin);
  if (!locked) return SignInResult{SignInStatus::refused, std::nullopt, {}};
  if (auto st = on_lock(); !st) return tl::unexpected(st.error());
  emit("system", "account.locked", actor, events::Outcome::success, origin,
       {{"seconds", remaining(user.locked_until, now).count()}, {"lockouts", user.lockouts}, {"alert", true}});
  return SignInResult{SignInStatus::locked, std::nullopt, remaining(user.locked_until, now)};
}

std::chrono::seconds Accounts::remaining(UnixMillis locked_until, UnixMillis now) const {
  return std::chrono::seconds((locked_until - now + 999) / 1000);
}

Result<Outcome> Accounts::create_first_administrator(const NewAdministrator& request, const Origin& origin) {
  Outcome outcome;
  auto username = normalize_username(request.username);
  if (!username) outcome.problems.push_back({"username", "invalid", username.error().message});
  auto email = normalize_email(request.email);
  if (!email) outcome.problems.push_back({"email", "invalid", email.error().message});
  auto password = normalize_password(request.password);
  if (!password) {
    outcome.problems.push_back({"password", "invalid", password.error().message});
  } else {
    auto problems =
        check_password(*password, {username ? *username : request.username, email ? *email : request.email, {}});
    auto fields = as_field_problems("password", problems);
    outcome.problems.insert(outcome.problems.end(), fields.begin(), fields.end());
  }
  if (!outcome.problems.empty()) return outcome;  // the setup link stays usable
  auto hash = hash_password(*password, options_.hash_cost);
  if (!hash) return tl::unexpected(hash.error());

  const UnixMillis now = to_unix_millis(clock_.now());
  store::UserRecord user;
  std::array<std::uint8_t, 16> id{};
  random_.fill(id);
  user.id = hex_encode(id);
  user.organisation_id = std::string(kDefaultOrganisation);
  user.username = *username;
  user.email = *email;
  user.role = std::string(kRoleSystemAdmin);
  user.password_hash = std::move(*hash);
  user.password_changed_at = now;
  user.created_at = now;

  bool token_refused = false;
  Status st = store_.transaction([&]() -> Status {
    // Consumed in the same transaction as the account is created: exactly one administrator
    // per link, even for two requests racing with the same token.
    auto consumed = consume_setup_token(store_, clock_, request.setup_token);
    if (!consumed) return tl::unexpected(consumed.error());
    if (*consumed != store::ConsumeOutcome::consumed) {
      token_refused = true;
      return fail(Errc::expired, "setup token refused");
    }
    auto org = store_.organisations().find(kDefaultOrganisation);
    if (!org) return tl::unexpected(org.error());
    if (!*org) {
      if (auto created =
              store_.organisations().insert({std::string(kDefaultOrganisation), "Default organisation", false, now});
          !created) {
        return created;
      }
    }
    if (auto inserted = store_.users().insert(user); !inserted) return inserted;
    if (auto done = mark_setup_complete(store_, clock_); !done) return done;
    auto ticket = open_session(user, store::kSessionStageEnrol, origin);
    if (!ticket) return tl::unexpected(ticket.error());
    outcome.ticket = std::move(*ticket);
    return ok();
  });
  if (token_refused) {
    emit("anonymous", "setup.refused", "setup", events::Outcome::failure, origin);
    outcome.problems.push_back(
        {"setup_token", "invalid",
         "this setup link is not valid: it was used or has expired; restart the server for a new one"});
    return outcome;
  }
  if (!st) return tl::unexpected(st.error());
  emit("user:" + user.id, "user.created", "user:" + user.id, events::Outcome::success, origin,
       {{"role", user.role}, {"organisation", user.organisation_id}, {"via", "setup"}});
  emit("user:" + user.id, "setup.completed", "setup", events::Outcome::success, origin);
  return outcome;
}

Result<SignInResult> Accounts::refuse_unknown(std::string_view username, const Origin& origin) {
  const UnixMillis now = to_unix_millis(clock_.now());
  note_failure(origin);
  std::lock_guard lock(unknown_mutex_);
  if (unknown_names_.size() >= kMaxUnknownNames) unknown_names_.clear();
  auto& state = unknown_names_[std::string(username)];
  if (state.locked_until > now)
    return SignInResult{SignInStatus::locked, std::nullopt, remaining(state.locked_until, now)};
  emit("anonymous", "login.failed", "", events::Outcome::failure, origin, {{"reason", "unknown user"}});
  if (count_failure(state, now, options())) {
    return SignInResult{SignInStatus::locked, std::nullopt, remaining(state.locked_until, now)};
  }
  return SignInResult{SignInStatus::refused, std::nullopt, {}};
}

Result<SignInResult> Accounts::sign_in(std::string_view username, std::string_view password, const Origin& origin) {
  auto name = normalize_username(username);
  auto normalized = normalize_password(password);
  std::optional<store::UserRecord> user;
  if (name) {
    auto found = store_.users().find_by_username(*name);
    if (!found) return tl::unexpected(found.error());
    user = std::move(*found);
  }
  // The same Argon2id work for every answer, so timing tells nothing about the name.
  // A person who has not set a password yet (kNoPassword) is verified against the decoy too.
  const bool usable_hash = user && user->password_hash.starts_with("$argon2");
  const bool password_ok =
      normalized && verify_password(usable_hash ? user->password_hash : decoy_hash(), *normalized) && usable_hash;
  if (!user) return refuse_unknown(name ? *name : std::string(username.substr(0, 64)), origin);

  const UnixMillis now = to_unix_millis(clock_.now());
  const std::string actor = "user:" + user->id;
  if (user->locked_until > now) {
    emit(actor, "login.failed", actor, events::Outcome::denied, origin, {{"reason", "locked"}});
    note_failure(origin);
    return SignInResult{SignInStatus::locked, std::nullopt, remaining(user->locked_until, now)};
  }
  if (!password_ok) {
    return refuse(
        *user, {"login.failed", {{"reason", "wrong password"}}}, [] { return ok(); }, origin);
  }
  if (!active_at(*user, now)) {
    emit(actor, "login.failed", actor, events::Outcome::denied, origin, {{"reason", "account disabled or ended"}});
    return SignInResult{SignInStatus::disabled, std::nullopt, {}};
  }
  user->failed_logins = 0;
  user->lockouts = 0;
  user->locked_until = 0;
  user->last_login_at = now;
  if (password_needs_rehash(user->password_hash, options_.hash_cost)) {
    if (auto rehashed = hash_password(*normalized, options_.hash_cost)) user->password_hash = std::move(*rehashed);
  }
  if (auto st = store_.users().update(*user); !st) return tl::unexpected(st.error());

  auto required = second_factor_required(*user);
  if (!required) return tl::unexpected(required.error());
  const std::string_view stage = user->totp_enabled ? store::kSessionStageSecondFactor
                                 : *required        ? store::kSessionStageEnrol
                                                    : store::kSessionStageFull;
  auto ticket = open_session(*user, stage, origin);
  if (!ticket) return tl::unexpected(ticket.error());
  emit(actor, user->totp_enabled ? "login.password_accepted" : "login.succeeded", actor, events::Outcome::success,
       origin, {{"stage", std::string(stage)}});
  return SignInResult{SignInStatus::signed_in, std::move(*ticket), {}};
}

Result<SignInResult> Accounts::second_factor(const Caller& caller, std::string_view code, const Origin& origin) {
  if (caller.session.stage != store::kSessionStageSecondFactor) {
    return fail(Errc::conflict, "this session is not waiting for a second factor");
  }
  auto user = caller.user;
  const UnixMillis now = to_unix_millis(clock_.now());
  const std::string actor = "user:" + user.id;
  if (user.locked_until > now) {
    return SignInResult{SignInStatus::locked, std::nullopt, remaining(user.locked_until, now)};
  }
  bool accepted = false;
  std::string method;
  if (code.size() == static_cast<std::size_t>(kTotpDigits) && all_digits(code)) {
    method = "totp";
    auto secret = keys_.open(user.totp_key_id, user.totp_sealed, totp_aad(user.id));
    if (!secret) return tl::unexpected(secret.error());
    if (auto step = verify_totp(*secret, code, clock_.now(), user.totp_last_step)) {
      user.totp_last_step = *step;
      accepted = true;
    }
  } else {
    method = "recovery_code";
    auto used = store_.users().use_recovery_code(user.id, recovery_code_hash(code), now);
    if (!used) return tl::unexpected(used.error());
    accepted = *used;
  }
  if (!accepted) {
    // A lock ends the session that was waiting for this code.
    const auto end_waiting = [&]() -> Status {
      auto removed = store_.console_sessions().remove(caller.session.id_hash);
      if (!removed) return tl::unexpected(removed.error());
      return ok();
    };
    return refuse(user, {"login.second_factor_failed", {{"method", method}}}, end_waiting, origin);
  }
  user.failed_logins = 0;
  user.lockouts = 0;
  if (auto st = store_.users().update(user); !st) return tl::unexpected(st.error());
  auto ticket =
      replace_session({caller.session, user, caller.permissions, std::nullopt}, store::kSessionStageFull, origin);
  if (!ticket) return tl::unexpected(ticket.error());
  emit(actor, "login.succeeded", actor, events::Outcome::success, origin, {{"second_factor", method}});
  if (method == "recovery_code") {
    auto left = store_.users().count_unused_recovery_codes(user.id);
    emit(actor, "recovery_code.used", actor, events::Outcome::success, origin,
         {{"remaining", left ? static_cast<std::int64_t>(*left) : -1}});
  }
  return SignInResult{SignInStatus::signed_in, std::move(*ticket), {}};
}

Result<TotpEnrolment> Accounts::begin_totp_enrolment(const Caller& caller) {
  auto user = caller.user;
  // Replacing a confirmed secret needs its own confirmation flow; until then it stays.
  if (user.totp_enabled) return fail(Errc::conflict, "TOTP is already enrolled");
  const auto secret = generate_totp_secret(random_);
  const std::string key_id = user_key_id(user.id);
  if (auto st = keys_.ensure_data_key(key_id, "user"); !st) return tl::unexpected(st.error());
  auto sealed = keys_.seal(key_id, secret.view(), totp_aad(user.id));
  if (!sealed) return tl::unexpected(sealed.error());
  user.totp_key_id = key_id;
  user.totp_sealed = std::move(*sealed);
  user.totp_last_step = 0;
  if (auto st = store_.users().update(user); !st) return tl::unexpected(st.error());
  const std::string uri = totp_uri(options_.totp_issuer, user.username, secret);
  auto svg = qr_code_svg(uri);
  if (!svg) return tl::unexpected(svg.error());
  return TotpEnrolment{totp_secret_base32(secret), uri, std::move(*svg)};
}

Result<EnrolmentResult> Accounts::confirm_totp_enrolment(const Caller& caller, std::string_view code,
                                                         const Origin& origin) {
  auto user = caller.user;
  if (user.totp_enabled) return fail(Errc::conflict, "TOTP is already enrolled");
  if (user.totp_sealed.empty()) return fail(Errc::conflict, "no TOTP enrolment was started");
  auto secret = keys_.open(user.totp_key_id, user.totp_sealed, totp_aad(user.id));
  if (!secret) return tl::unexpected(secret.error());
  EnrolmentResult result;
  auto step = verify_totp(*secret, code, clock_.now(), user.totp_last_step);
  if (!step) {
    result.problems.push_back({"code", "invalid",
                               "the code does not match: check the authenticator's clock and "
                               "enter the current code"});
    return result;
  }
  user.totp_enabled = true;
  user.totp_last_step = *step;
  result.recovery_codes = generate_recovery_codes(random_);
  std::vector<std::string> hashes;
  for (const auto& c : result.recovery_codes) hashes.push_back(recovery_code_hash(c));
  Status st = store_.transaction([&]() -> Status {
    if (auto updated = store_.users().update(user); !updated) return updated;
    return store_.users().replace_recovery_codes(user.id, hashes);
  });
  if (!st) return tl::unexpected(st.error());
  auto ticket =
      replace_session({caller.session, user, caller.permissions, std::nullopt}, store::kSessionStageFull, origin);
  if (!ticket) return tl::unexpected(ticket.error());
  result.ticket = std::move(*ticket);
  const std::string actor = "user:" + user.id;
  emit(actor, "second_factor.enrolled", actor, events::Outcome::success, origin, {{"method", "totp"}});
  return result;
}

Status Accounts::remove_totp(store::UserRecord& user) {
  user.totp_enabled = false;
  user.totp_sealed.clear();
  user.totp_key_id.clear();
  return store_.transaction([&]() -> Status {
    if (auto updated = store_.users().update(user); !updated) return updated;
    return store_.users().replace_recovery_codes(user.id, {});
  });
}

Status Accounts::disable_totp(const Caller& caller, const Origin& origin) {
  auto user = caller.user;
  if (!user.totp_enabled) return fail(Errc::not_found, "TOTP is not on for this account");
  auto required = second_factor_required(user);
  if (!required) return tl::unexpected(required.error());
  if (*required) {
    return fail(Errc::conflict, is_administrator(caller.permissions) ? "administrators must keep a second factor"
                                                                     : "your organisation requires a second factor");
  }
  if (auto st = remove_totp(user); !st) return st;
  const std::string actor = "user:" + user.id;
  // An alert: a second factor turned off is what an attacker holding a session would do.
  emit(actor, "totp.disabled", actor, events::Outcome::success, origin,
       {{"organisation", user.organisation_id}, {"alert", true}});
  return ok();
}

Status Accounts::reset_second_factor(const Caller& actor, std::string_view user_id, const Origin& origin) {
  auto found = store_.users().find(user_id);
  if (!found) return tl::unexpected(found.error());
  if (!*found ||
      ((*found)->organisation_id != actor.user.organisation_id && !role_spans_organisations(actor.user.role))) {
    return fail(Errc::not_found, "no such person");
  }
  auto person = std::move(**found);
  if (person.id == actor.user.id) {
    return fail(Errc::conflict, "to turn off your own second factor use DELETE /api/v1/account/totp");
  }
  if (person.role == kRoleSystemAdmin && actor.user.role != kRoleSystemAdmin) {
    return fail(Errc::conflict, "only a system administrator may reset a system administrator's second factor");
  }
  if (!person.totp_enabled && person.totp_sealed.empty()) {
    return fail(Errc::conflict, "this person has no second factor");
  }
  if (auto st = remove_totp(person); !st) return st;
  // Whoever holds the person's sessions got past the old second factor: they end.
  auto ended = store_.console_sessions().remove_for_user(person.id, "");
  if (!ended) return tl::unexpected(ended.error());
  emit("user:" + actor.user.id, "second_factor.reset", "user:" + person.id, events::Outcome::success, origin,
       {{"organisation", person.organisation_id},
        {"sessions_ended", static_cast<std::int64_t>(*ended)},
        {"alert", true}});
  return ok();
}

Result<std::vector<std::string>> Accounts::regenerate_recovery_codes(const Caller& caller, const Origin& origin) {
  // The stored person, not the session's copy: the codes belong to what is enrolled now.
  auto found = store_.users().find(caller.user.id);
  if (!found) return tl::unexpected(found.error());
  if (!*found || !(*found)->totp_enabled) return fail(Errc::not_found, "TOTP is not on for this account");
  auto codes = generate_recovery_codes(random_);
  std::vector<std::string> hashes;
  hashes.reserve(codes.size());
  for (const auto& c : codes) hashes.push_back(recovery_code_hash(c));
  if (auto st = store_.users().replace_recovery_codes(caller.user.id, hashes); !st) return tl::unexpected(st.error());
  const std::string actor = "user:" + caller.user.id;
  emit(actor, "recovery_codes.regenerated", actor, events::Outcome::success, origin,
       {{"organisation", caller.user.organisation_id}});
  return codes;
}

Result<std::optional<Caller>> Accounts::resolve_session(std::string_view session_id) {
  if (session_id.size() != kSessionIdLength || !base64url_decode(session_id)) return std::optional<Caller>{};
  auto found = store_.console_sessions().find(session_id_hash(session_id));
  if (!found) return tl::unexpected(found.error());
  if (!*found) return std::optional<Caller>{};
  auto session = std::move(**found);
  const UnixMillis now = to_unix_millis(clock_.now());
  const bool timed_out = session_timed_out(session, now);
  auto user = timed_out ? Result<std::optional<store::UserRecord>>{} : store_.users().find(session.user_id);
  if (!user) return tl::unexpected(user.error());
  if (timed_out || !*user || !active_at(**user, now)) {
    if (auto removed = store_.console_sessions().remove(session.id_hash); !removed) {
      return tl::unexpected(removed.error());
    }
    return std::optional<Caller>{};
  }
  if (now - session.last_seen_at >= kSessionTouchEveryMs) {
    session.last_seen_at = now;
    if (auto st = store_.console_sessions().update(session); !st) return tl::unexpected(st.error());
  }
  auto permissions = role_permissions(store_, (*user)->organisation_id, (*user)->role);
  if (!permissions) return tl::unexpected(permissions.error());
  return std::optional<Caller>{Caller{std::move(session), std::move(**user), *permissions, std::nullopt}};
}

Result<bool> Accounts::still_signed_in(const Caller& caller) {
  auto found = store_.console_sessions().find(caller.session.id_hash);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return false;
  const UnixMillis now = to_unix_millis(clock_.now());
  if (session_timed_out(**found, now)) return false;
  auto user = store_.users().find((*found)->user_id);
  if (!user) return tl::unexpected(user.error());
  return *user && active_at(**user, now);
}

bool Accounts::session_timed_out(const store::ConsoleSessionRecord& session, UnixMillis now) const {
  // A copy: the policy may change while the server runs (update_policy).
  const AccountsOptions policy = options();
  const UnixMillis absolute = session.stage == store::kSessionStageSecondFactor ? millis(policy.second_factor_window)
                                                                                : millis(policy.session_absolute);
  return now - session.last_seen_at >= millis(policy.session_idle) || now - session.created_at >= absolute;
}

Status Accounts::sign_out(const Caller& caller, const Origin& origin) {
  auto removed = store_.console_sessions().remove(caller.session.id_hash);
  if (!removed) return tl::unexpected(removed.error());
  const std::string actor = "user:" + caller.user.id;
  emit(actor, "logout", "session:" + caller.session.handle, events::Outcome::success, origin);
  return ok();
}

Result<std::size_t> Accounts::sign_out_elsewhere(const Caller& caller, const Origin& origin) {
  auto removed = store_.console_sessions().remove_for_user(caller.user.id, caller.session.id_hash);
  if (!removed) return tl::unexpected(removed.error());
  const std::string actor = "user:" + caller.user.id;
  emit(actor, "sessions.ended", actor, events::Outcome::success, origin,
       {{"count", static_cast<std::int64_t>(*removed)}});
  return *removed;
}

Result<std::vector<store::ConsoleSessionRecord>> Accounts::sessions(const Caller& caller) {
  return store_.console_sessions().list_for_user(caller.user.id);
}

Result<bool> Accounts::end_session(const Caller& caller, std::string_view handle, const Origin& origin) {
  auto removed = store_.console_sessions().remove_by_handle(caller.user.id, handle);
  if (!removed) return tl::unexpected(removed.error());
  if (*removed) {
    const std::string actor = "user:" + caller.user.id;
    emit(actor, "session.ended", "session:" + std::string(handle), events::Outcome::success, origin);
  }
  return *removed;
}

Result<Outcome> Accounts::change_password(const Caller& caller, std::string_view current_password,
                                          std::string_view new_password, const Origin& origin) {
  Outcome outcome;
  auto user = caller.user;
  const std::string actor = "user:" + user.id;
  auto current = normalize_password(current_password);
  if (!current || !verify_password(user.password_hash, *current)) {
    emit(actor, "password.change_failed", actor, events::Outcome::failure, origin, {{"reason", "wrong password"}});
    outcome.problems.push_back({"current_password", "wrong", "the current password is not correct"});
    return outcome;
  }
  auto next = normalize_password(new_password);
  if (!next) {
    outcome.problems.push_back({"new_password", "invalid", next.error().message});
    return outcome;
  }
  auto history = store_.users().password_history(user.id);
  if (!history) return tl::unexpected(history.error());
  std::vector<std::string> previous{user.password_hash};
  for (const auto& h : *history) previous.push_back(h.password_hash);
  outcome.problems = as_field_problems("new_password", check_password(*next, {user.username, user.email, previous}));
  if (!outcome.problems.empty()) return outcome;
  auto hash = hash_password(*next, options_.hash_cost);
  if (!hash) return tl::unexpected(hash.error());
  const UnixMillis now = to_unix_millis(clock_.now());
  const store::PasswordHistoryEntry old{user.password_hash, user.password_changed_at};
  user.password_hash = std::move(*hash);
  user.password_changed_at = now;
  Status st = store_.transaction([&]() -> Status {
    // The current password joins the history; with it, the last kPasswordHistory are refused.
    if (auto added = store_.users().add_password_history(user.id, old, kPasswordHistory - 1); !added) return added;
    if (auto updated = store_.users().update(user); !updated) return updated;
    auto ended = store_.console_sessions().remove_for_user(user.id, caller.session.id_hash);
    if (!ended) return tl::unexpected(ended.error());
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  auto ticket = replace_session({caller.session, user, caller.permissions, std::nullopt}, caller.session.stage, origin);
  if (!ticket) return tl::unexpected(ticket.error());
  outcome.ticket = std::move(*ticket);
  emit(actor, "password.changed", actor, events::Outcome::success, origin);
  return outcome;
}

Result<SignInResult> Accounts::step_up(const Caller& caller, std::string_view password, std::string_view code,
                                       const Origin& origin) {
  auto user = caller.user;
  const UnixMillis now = to_unix_millis(clock_.now());
  const std::string actor = "user:" + user.id;
  if (user.locked_until > now)
    return SignInResult{SignInStatus::locked, std::nullopt, remaining(user.locked_until, now)};
  bool accepted = false;
  if (!code.empty()) {
    if (user.totp_enabled) {
      auto secret = keys_.open(user.totp_key_id, user.totp_sealed, totp_aad(user.id));
      if (!secret) return tl::unexpected(secret.error());
      if (auto step = verify_totp(*secret, code, clock_.now(), user.totp_last_step)) {
        user.totp_last_step = *step;
        accepted = true;
      }
    }
  } else {
    auto normalized = normalize_password(password);
    accepted =
        normalized && user.password_hash.starts_with("$argon2") && verify_password(user.password_hash, *normalized);
  }
  if (!accepted) {
    // Someone guessing at an unattended session: a lock ends every session of the account.
    const auto end_all = [&]() -> Status {
      auto removed = store_.console_sessions().remove_for_user(user.id, "");
      if (!removed) return tl::unexpected(removed.error());
      return ok();
    };
    return refuse(user, {"step_up.failed", nlohmann::json::object()}, end_all, origin);
  }
  user.failed_logins = 0;
  auto session = caller.session;
  session.authenticated_at = now;
  session.last_seen_at = now;
  Status st = store_.transaction([&]() -> Status {
    if (auto updated = store_.users().update(user); !updated) return updated;
    return store_.console_sessions().update(session);
  });
  if (!st) return tl::unexpected(st.error());
  emit(actor, "step_up.succeeded", actor, events::Outcome::success, origin,
       {{"method", code.empty() ? "password" : "totp"}});
  return SignInResult{SignInStatus::signed_in, std::nullopt, {}};
}

bool Accounts::recently_authenticated(const Caller& caller) const {
  return to_unix_millis(clock_.now()) - caller.session.authenticated_at <= millis(options_.step_up_window);
}

Result<std::size_t> Accounts::remove_expired_sessions() {
  const UnixMillis now = to_unix_millis(clock_.now());
  const AccountsOptions policy = options();
  return store_.console_sessions().remove_expired(now - millis(policy.session_idle),
                                                  now - millis(policy.session_absolute));
}

}  // namespace torii::identity

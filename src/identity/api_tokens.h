// API tokens for integrations (JPCERT I-10): a person issues a token that carries some of
// their permissions in one organisation, until a date no later than a configured maximum.
//
//   scoped       the permissions named at creation, each one the creator's role grants (never
//                account.self: a token manages no account, session or token); at use, only
//                those the owner's role still grants (a role change shrinks every token)
//   one org      the creator's own; a system administrator may name another, and the token
//                then reaches only that one (Caller::user.organisation_id, spans_organisations)
//   expiring     expires_at is required, at most `max_lifetime` ahead
//   shown once   the token is "torii_<id>_<secret>" (the secret 256 bits, base64url); only a
//                SHA-256 of the whole token under a domain tag is stored, compared in constant
//                time
//   revocable    by its owner, or by whoever may change its owner (users.write in their reach)
//   unused       tokens unused for the period after which people are disabled are revoked
//                (JPCERT I-2, disable_unused)
//   attributed   events of a token's calls name its owner as the actor and the token as the
//                "credential" detail (accounts.h, attributed())
//
// Like Accounts, no mutable state of its own: usable from several threads.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "identity/accounts.h"
#include "store/store.h"

namespace torii::identity {

struct ApiTokenOptions {
  std::chrono::hours max_lifetime{24 * 90};
};

struct NewApiToken {
  std::string name;                      // 1 to 100 bytes
  std::vector<std::string> permissions;  // permission names, at least one
  std::optional<UnixMillis> expires_at;  // required: in the future, within max_lifetime
  std::string organisation_id;           // empty: the creator's; another one: system administrators only
};

struct IssuedApiToken {
  std::vector<FieldProblem> problems;  // nothing was created
  std::optional<store::ApiTokenRecord> token;
  std::string secret;  // the whole token to present; shown once, never stored or logged
};

// The prefix of every token, so that secret scanners and people recognise one.
inline constexpr std::string_view kApiTokenPrefix = "torii_";

class ApiTokens {
 public:
  // Keeps references to everything it is given: they must outlive it.
  ApiTokens(store::Store& store, const Clock& clock, Random& random, ApiTokenOptions options, EventSink events);

  [[nodiscard]] Result<IssuedApiToken> create(const Caller& actor, const NewApiToken& request, const Origin& origin);
  // The longest lifetime of the tokens created from now on (tokens already issued keep
  // theirs). Thread-safe.
  void set_max_lifetime(std::chrono::hours max_lifetime);
  // The actor's own tokens, revoked and expired ones too, newest first.
  [[nodiscard]] Result<std::vector<store::ApiTokenRecord>> list(const Caller& actor);
  // The actor's own token, or one of a person the actor may change (users.write, their
  // organisation; any for a system administrator). not_found for anything else, so nothing
  // is learnt about other people's tokens; already revoked tokens are not_found too.
  [[nodiscard]] Status revoke(const Caller& actor, std::string_view id, const Origin& origin);

  // The caller a presented token stands for, when it is valid now: well-formed, known, the
  // hash equal, not revoked, not expired, its owner active and not past their end date.
  // nullopt otherwise (an expired token's use is recorded). last_used_at is written at most
  // once a minute.
  [[nodiscard]] Result<std::optional<Caller>> resolve(std::string_view presented, const Origin& origin);

  // Whether a token caller's token is still valid now (not revoked, not expired, its owner
  // active) and both it and its owner's current role still grant `permission`; for what
  // outlives the request that resolved it (the live telemetry socket). Not a use of the token.
  [[nodiscard]] Result<bool> still_valid(const Caller& caller, Permission permission);

  // Revokes tokens not used for `unused` (never used: since they were created), each with a
  // security event; returns their ids (JPCERT I-2).
  [[nodiscard]] Result<std::vector<std::string>> disable_unused(std::chrono::hours unused);

  // Whether a token caller's token names `permission`; true for a caller without a token.
  [[nodiscard]] static bool in_scope(const Caller& caller, Permission permission);
  // What the caller may use: their role grants it, and it is in_scope.
  [[nodiscard]] static bool grants(const Caller& caller, Permission permission);

 private:
  void emit(std::string actor, std::string action, std::string object, events::Outcome outcome, const Origin& origin,
            nlohmann::json details) const;

  store::Store& store_;
  const Clock& clock_;
  Random& random_;
  // The only option, changed while the server runs (set_max_lifetime): its hours.
  std::atomic<std::chrono::hours::rep> max_lifetime_hours_;
  EventSink events_;
};

}  // namespace torii::identity

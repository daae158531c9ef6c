#include "identity/api_tokens.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "crypto/sodium.h"
#include "identity/custom_roles.h"
#include "identity/roles.h"

namespace torii::identity {
namespace {

constexpr std::string_view kSecretHashDomain = "torii api token";
constexpr std::size_t kIdBytes = 8;        // the public handle: 16 hex digits
constexpr std::size_t kSecretLength = 43;  // 256 bits, base64url
constexpr std::size_t kMaxTokenNameBytes = 100;
// last_used_at is written at most this often: a busy integration must not turn every
// request into a write, and a minute is precise enough to find unused tokens by the day.
constexpr UnixMillis kTokenTouchEveryMs = 60'000;

std::string secret_hash(std::string_view presented) { return crypto::token_hash(kSecretHashDomain, presented); }

bool is_hex(std::string_view s) {
  return std::ranges::all_of(s, [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The id in "torii_<id>_<secret>", when the rest has the shape of a token.
std::optional<std::string_view> id_of(std::string_view presented) {
  if (!presented.starts_with(kApiTokenPrefix)) return std::nullopt;
  presented.remove_prefix(kApiTokenPrefix.size());
  const std::size_t id_length = kIdBytes * 2;
  if (presented.size() != id_length + 1 + kSecretLength || presented[id_length] != '_') return std::nullopt;
  const std::string_view id = presented.substr(0, id_length);
  if (!is_hex(id) || !base64url_decode(presented.substr(id_length + 1))) return std::nullopt;
  return id;
}

std::string format_millis(UnixMillis ms) { return format_utc_millis(from_unix_millis(ms)); }

}  // namespace

ApiTokens::ApiTokens(store::Store& store, const Clock& clock, Random& random, ApiTokenOptions options, EventSink events)
    : store_(store),
      clock_(clock),
      random_(random),
      max_lifetime_hours_(options.max_lifetime.count()),
      events_(std::move(events)) {}

void ApiTokens::emit(std::string actor, std::string action, std::string object, events::Outcome outcome,
                     const Origin& origin, nlohmann::json details) const {
  if (!events_) return;
  events_({std::move(actor), std::move(action), std::move(object), outcome, origin.source, std::move(details)});
}

bool ApiTokens::in_scope(const Caller& caller, Permission permission) {
  if (!caller.token) return true;
  return std::ranges::find(caller.token->permissions, to_string(permission)) != caller.token->permissions.end();
}

bool ApiTokens::grants(const Caller& caller, Permission permission) {
  return caller.permissions.has(permission) && in_scope(caller, permission);
}

void ApiTokens::set_max_lifetime(std::chrono::hours max_lifetime) { max_lifetime_hours_.store(max_lifetime.count()); }

Result<IssuedApiToken> ApiTokens::create(const Caller& actor, const NewApiToken& request, const Origin& origin) {
  // Tokens do not make tokens: what one leaked token can do stays bounded by its own scope
  // and date.
  if (actor.token) return fail(Errc::permission_denied, "an API token cannot create API tokens");
  IssuedApiToken issued;
  auto& problems = issued.problems;
  if (request.name.empty() || request.name.size() > kMaxTokenNameBytes) {
    problems.push_back({"name", "invalid", fmt::format("must be 1 to {} bytes", kMaxTokenNameBytes)});
  }
  std::vector<std::string> permissions;
  if (request.permissions.empty()) problems.push_back({"permissions", "missing", "name at least one permission"});
  for (const auto& name : request.permissions) {
    const auto permission = parse_permission(name);
    if (!permission) {
      problems.push_back({"permissions", "unknown", fmt::format("no such permission: {}", name.substr(0, 64))});
    } else if (*permission == Permission::account_self) {
      problems.push_back({"permissions", "forbidden", "account.self cannot be given to a token"});
    } else if (!actor.permissions.has(*permission)) {
      problems.push_back({"permissions", "forbidden", fmt::format("your role does not grant {}", name)});
    } else {
      permissions.push_back(name);
    }
  }
  std::sort(permissions.begin(), permissions.end());
  permissions.erase(std::unique(permissions.begin(), permissions.end()), permissions.end());

  const UnixMillis now = to_unix_millis(clock_.now());
  const std::chrono::hours max_lifetime(max_lifetime_hours_.load());
  const UnixMillis latest = to_unix_millis(clock_.now() + max_lifetime);
  if (!request.expires_at) {
    problems.push_back({"expires_at", "missing", "is required"});
  } else if (*request.expires_at <= now) {
    problems.push_back({"expires_at", "past", "must be in the future"});
  } else if (*request.expires_at > latest) {
    problems.push_back({"expires_at", "too_late",
                        fmt::format("must be at most {} days ahead",
                                    std::chrono::duration_cast<std::chrono::days>(max_lifetime).count())});
  }

  const std::string organisation =
      request.organisation_id.empty() ? actor.user.organisation_id : request.organisation_id;
  if (organisation != actor.user.organisation_id && !spans_organisations(actor)) {
    problems.push_back({"organisation", "forbidden", "you may not act on that organisation"});
  } else if (auto found = store_.organisations().find(organisation); !found) {
    return tl::unexpected(found.error());
  } else if (!*found) {
    problems.push_back({"organisation", "unknown", "no such organisation"});
  }
  if (!problems.empty()) return issued;

  std::array<std::uint8_t, kIdBytes> id{};
  random_.fill(id);
  store::ApiTokenRecord token;
  token.id = hex_encode(id);
  token.user_id = actor.user.id;
  token.organisation_id = organisation;
  token.name = request.name;
  token.permissions = std::move(permissions);
  issued.secret = fmt::format("{}{}_{}", kApiTokenPrefix, token.id, crypto::random_token(random_));
  token.secret_hash = secret_hash(issued.secret);
  token.created_at = now;
  token.expires_at = *request.expires_at;
  if (auto st = store_.api_tokens().insert(token); !st) return tl::unexpected(st.error());
  // Not an alert: a token holds no more than its creator, who has just proved themselves
  // again (step-up) to make it.
  emit("user:" + actor.user.id, "api_token.created", "api_token:" + token.id, events::Outcome::success, origin,
       {{"name", token.name},
        {"permissions", token.permissions},
        {"organisation", token.organisation_id},
        {"expires_at", format_millis(token.expires_at)}});
  issued.token = std::move(token);
  return issued;
}

Result<std::vector<store::ApiTokenRecord>> ApiTokens::list(const Caller& actor) {
  return store_.api_tokens().list_for_user(actor.user.id);
}

Status ApiTokens::revoke(const Caller& actor, std::string_view id, const Origin& origin) {
  auto found = store_.api_tokens().find(id);
  if (!found) return tl::unexpected(found.error());
  const auto not_found = [] { return fail(Errc::not_found, "no such API token"); };
  if (!*found || (*found)->revoked_at) return not_found();
  const auto& token = **found;
  if (token.user_id != actor.user.id) {
    const bool in_reach = token.organisation_id == actor.user.organisation_id || spans_organisations(actor);
    if (!in_reach || !grants(actor, Permission::users_write)) return not_found();
  }
  auto revoked = store_.api_tokens().revoke(token.id, to_unix_millis(clock_.now()), "user:" + actor.user.id);
  if (!revoked) return tl::unexpected(revoked.error());
  if (!*revoked) return not_found();
  emit("user:" + actor.user.id, "api_token.revoked", "api_token:" + token.id, events::Outcome::success, origin,
       attributed(actor, {{"owner", "user:" + token.user_id}}));
  return ok();
}

Result<std::optional<Caller>> ApiTokens::resolve(std::string_view presented, const Origin& origin) {
  const auto id = id_of(presented);
  if (!id) return std::optional<Caller>{};
  auto found = store_.api_tokens().find(*id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return std::optional<Caller>{};
  auto token = std::move(**found);
  const std::string hash = secret_hash(presented);
  if (!crypto::equal_constant_time(as_bytes(hash), as_bytes(token.secret_hash)) || token.revoked_at) {
    return std::optional<Caller>{};
  }
  const UnixMillis now = to_unix_millis(clock_.now());
  if (token.expires_at <= now) {
    // Recorded: an integration still running on an expired token needs someone's attention.
    emit("user:" + token.user_id, "api_token.expired_refused", "api_token:" + token.id, events::Outcome::denied, origin,
         {{"expired_at", format_millis(token.expires_at)}});
    return std::optional<Caller>{};
  }
  auto user = store_.users().find(token.user_id);
  if (!user) return tl::unexpected(user.error());
  if (!*user || !active_at(**user, now)) {
    return std::optional<Caller>{};
  }
  if (!token.last_used_at || now - *token.last_used_at >= kTokenTouchEveryMs) {
    if (auto st = store_.api_tokens().touch(token.id, now); !st) return tl::unexpected(st.error());
    token.last_used_at = now;
  }
  // What the owner's role grants now, in the owner's organisation (a custom role is defined
  // there); the token then acts in its own organisation only.
  auto permissions = role_permissions(store_, (*user)->organisation_id, (*user)->role);
  if (!permissions) return tl::unexpected(permissions.error());
  Caller caller{{}, std::move(**user), *permissions, std::nullopt};
  caller.user.organisation_id = token.organisation_id;
  caller.token = std::move(token);
  return std::optional<Caller>{std::move(caller)};
}

Result<bool> ApiTokens::still_valid(const Caller& caller, Permission permission) {
  if (!caller.token || !in_scope(caller, permission)) return false;
  auto found = store_.api_tokens().find(caller.token->id);
  if (!found) return tl::unexpected(found.error());
  const UnixMillis now = to_unix_millis(clock_.now());
  if (!*found || (*found)->revoked_at || (*found)->expires_at <= now) return false;
  auto user = store_.users().find((*found)->user_id);
  if (!user) return tl::unexpected(user.error());
  if (!*user || !active_at(**user, now)) return false;
  auto permissions = role_permissions(store_, (*user)->organisation_id, (*user)->role);
  if (!permissions) return tl::unexpected(permissions.error());
  return permissions->has(permission);
}

Result<std::vector<std::string>> ApiTokens::disable_unused(std::chrono::hours unused) {
  const UnixMillis now = to_unix_millis(clock_.now());
  auto stale = store_.api_tokens().list_unused_since(to_unix_millis(clock_.now() - unused));
  if (!stale) return tl::unexpected(stale.error());
  std::vector<std::string> revoked;
  for (const auto& token : *stale) {
    auto done = store_.api_tokens().revoke(token.id, now, "unused");
    if (!done) return tl::unexpected(done.error());
    if (!*done) continue;
    emit("system", "api_token.revoked", "api_token:" + token.id, events::Outcome::success, {"local", ""},
         {{"reason", "unused"},
          {"owner", "user:" + token.user_id},
          {"days", std::chrono::duration_cast<std::chrono::days>(unused).count()}});
    revoked.push_back(token.id);
  }
  return revoked;
}

}  // namespace torii::identity

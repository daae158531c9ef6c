#include "identity/setup_token.h"

#include <fmt/format.h>

#include "crypto/sodium.h"

namespace torii::identity {
namespace {

constexpr std::string_view kHashDomain = "torii setup token";
constexpr std::string_view kSetupCompleteKey = "setup.completed_at";

}  // namespace

Result<IssuedSetupToken> issue_setup_token(store::Store& store, Random& random, const Clock& clock,
                                           std::chrono::minutes lifetime) {
  IssuedSetupToken issued{crypto::random_token(random), clock.now() + lifetime};
  const UnixMillis now = to_unix_millis(clock.now());
  Status st = store.transaction([&]() -> Status {
    auto revoked = store.setup_tokens().revoke_all(now);
    if (!revoked) return tl::unexpected(revoked.error());
    return store.setup_tokens().insert(
        {crypto::token_hash(kHashDomain, issued.token), now, to_unix_millis(issued.expires_at), std::nullopt});
  });
  if (!st) return tl::unexpected(st.error());
  return issued;
}

Result<store::ConsumeOutcome> consume_setup_token(store::Store& store, const Clock& clock, std::string_view token) {
  // Refuse malformed input before it reaches the store; a real token is 43 base64url chars.
  if (token.size() != 43 || !base64url_decode(token)) return store::ConsumeOutcome::unknown;
  return store.setup_tokens().consume(crypto::token_hash(kHashDomain, token), to_unix_millis(clock.now()));
}

std::string setup_link(std::string_view public_url, std::string_view token) {
  std::string_view base = public_url;
  while (base.ends_with('/')) base.remove_suffix(1);
  return fmt::format("{}/setup#{}", base, token);
}

Result<bool> setup_pending(store::Store& store) {
  auto done = store.meta().get(kSetupCompleteKey);
  if (!done) return tl::unexpected(done.error());
  return !done->has_value();
}

Status mark_setup_complete(store::Store& store, const Clock& clock) {
  return store.meta().put(kSetupCompleteKey, as_bytes(std::to_string(to_unix_millis(clock.now()))));
}

}  // namespace torii::identity

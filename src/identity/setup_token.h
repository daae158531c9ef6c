// The one-time setup link (JPCERT I-6, III-3; IIIT DI1).
//
// While no administrator exists, each server start issues a fresh token (older ones are
// revoked), prints the link once, and stores only the token's hash. The console's setup
// step consumes it: single use, valid for the configured lifetime (one hour at most).
// The token travels in the URL fragment (https://host:8443/setup#<token>), which browsers
// never send to a server nor put in a Referer header, so it cannot reach access logs.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "store/store.h"

namespace torii::identity {

struct IssuedSetupToken {
  std::string token;  // shown once; never stored, never logged
  std::chrono::system_clock::time_point expires_at;
};

[[nodiscard]] Result<IssuedSetupToken> issue_setup_token(store::Store& store, Random& random, const Clock& clock,
                                                         std::chrono::minutes lifetime);

// consumed exactly once for a valid token; unknown, expired or already_used otherwise.
[[nodiscard]] Result<store::ConsumeOutcome> consume_setup_token(store::Store& store, const Clock& clock,
                                                                std::string_view token);

// The link printed for the operator.
[[nodiscard]] std::string setup_link(std::string_view public_url, std::string_view token);

// Whether the installation still needs its first administrator. The console marks setup
// complete when the first administrator has been created.
[[nodiscard]] Result<bool> setup_pending(store::Store& store);
[[nodiscard]] Status mark_setup_complete(store::Store& store, const Clock& clock);

}  // namespace torii::identity

// Certificate renewal, the decisions (JPCERT VI-4; docs/agent.md "Certificate renewal"). Pure:
// the device agent asks, these functions answer; time comes from the caller's Clock.
//
// A certificate is renewed once `renew_at` of its lifetime has passed (kDefaultRenewAt, two
// thirds, unless [agent] renew_at says otherwise), over the device's own MQTT session:
//
//   devices/{id}/renew        {"id": "<request id>", "csr": "<PEM P-256 CSR>"}
//   devices/{id}/certificate  {"id", "certificate_pem", "ca_bundle_pem", "expires_at"}
//                             or {"id", "error"}
//
// An expired certificate cannot be renewed: the gateway refuses it, and the device must be
// enrolled again with a new token.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/error.h"

namespace torii::agent {

inline constexpr double kDefaultRenewAt = 2.0 / 3.0;
// The largest renew_at accepted: later leaves too little time for a refused or lost request.
inline constexpr double kMaxRenewAt = 0.95;
// How often an unanswered request is sent again.
inline constexpr std::chrono::minutes kRenewalRetry{3};

enum class RenewalStep { wait, renew, reenrol };

// reenrol once now >= not_after; renew once now >= renewal_due(...); wait before.
[[nodiscard]] RenewalStep renewal_step(std::chrono::system_clock::time_point not_before,
                                       std::chrono::system_clock::time_point not_after,
                                       std::chrono::system_clock::time_point now, double renew_at);
// not_before + renew_at × (not_after − not_before); renew_at is clamped to 0..1.
[[nodiscard]] std::chrono::system_clock::time_point renewal_due(std::chrono::system_clock::time_point not_before,
                                                                std::chrono::system_clock::time_point not_after,
                                                                double renew_at);

// The request's JSON text.
[[nodiscard]] std::string renewal_request_payload(std::string_view request_id, std::string_view csr_pem);

struct RenewalAnswer {
  std::string id;
  std::string error;  // non-empty: refused, the rest is empty
  std::string certificate_pem;
  std::string ca_bundle_pem;
};
// invalid_argument when the text is not an answer (not JSON, an id missing, neither an error
// nor a certificate and a CA bundle).
[[nodiscard]] Result<RenewalAnswer> parse_renewal_answer(std::string_view text);

}  // namespace torii::agent

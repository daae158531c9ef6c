// Certificates about to expire are alerts (JPCERT VI-4, VIII-2, III-9). The server checks at
// start and daily (check_certificate_expiry); the console also lists what expires within N
// days (GET /api/v1/certificates/expiring), but an alert reaches the channels.
//
// A certificate in use is, for each active device, the one of its unrevoked certificates that
// expires last (a renewed device is judged by its new certificate); for the installation, the
// newest unrevoked server certificate, issuing CA certificate and root CA certificate. One in
// use that expires within `within` is a warning, "Certificate expires soon"; one past its end a
// critical alert, "Certificate expired" (the warning is then resolved). Each check raises them
// again (one alert per certificate holder while it is not resolved; its occurrences count the
// days). An alert whose certificate was renewed, revoked or is no longer in use (the device
// disabled or deleted) is resolved by "system".
//
//   device certificate    the device's organisation, key certificate.expiring:device:<id>
//                         (or certificate.expired:device:<id>)
//   server, CA            installation-wide, key certificate.expiring:server (issuing-ca, root-ca)
#pragma once

#include <chrono>
#include <cstddef>

#include "alerts/alert_book.h"
#include "base/clock.h"
#include "base/error.h"
#include "store/store.h"

namespace torii::alerts {

struct ExpiryReport {
  std::size_t expiring = 0;  // certificates in use expiring within the period (alerts raised)
  std::size_t expired = 0;   // certificates in use past their end (alerts raised)
  std::size_t resolved = 0;  // alerts whose certificate was renewed or is no longer in use
};

[[nodiscard]] Result<ExpiryReport> check_certificate_expiry(store::Store& store, AlertBook& book, const Clock& clock,
                                                            std::chrono::hours within);

}  // namespace torii::alerts

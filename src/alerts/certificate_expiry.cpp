#include "alerts/certificate_expiry.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace torii::alerts {
namespace {

constexpr std::string_view kExpiring = "certificate.expiring:";
constexpr std::string_view kExpired = "certificate.expired:";

// One certificate in use and who holds it.
struct InUse {
  std::string organisation_id;  // empty: installation-wide
  std::string holder;           // "device:<id>", "server", "issuing-ca", "root-ca"
  std::string device_id;        // for a device's certificate
  store::CertificateRecord certificate;
};

// The certificates in use that end by `horizon`: of each active device, its unrevoked one
// that ends last, and of the installation, the newest unrevoked server and CA certificates.
// Only those are read and kept (not every device's certificates): the store finds them
// through its index on the end date, checking each against the device's other certificates.
Result<std::vector<InUse>> in_use_ending_by(store::Store& store, UnixMillis horizon) {
  std::vector<InUse> out;
  for (const std::string_view kind : {store::kCertKindServer, store::kCertKindIssuingCa, store::kCertKindRootCa}) {
    auto latest = store.certificates().latest(kind);
    if (!latest) return tl::unexpected(latest.error());
    if (*latest && (*latest)->not_after <= horizon) out.push_back({"", std::string(kind), "", std::move(**latest)});
  }
  auto ending = store.certificates().list_last_of_devices_ending_by(horizon);
  if (!ending) return tl::unexpected(ending.error());
  for (auto& certificate : *ending) {
    auto device = store.devices().find(*certificate.device_id);
    if (!device) return tl::unexpected(device.error());
    if (!*device || (*device)->status != store::kDeviceStatusActive) continue;
    out.push_back({(*device)->organisation_id, "device:" + (*device)->id, (*device)->id, std::move(certificate)});
  }
  return out;
}

std::string describe(const InUse& in_use) {
  if (!in_use.device_id.empty()) return "the certificate of device " + in_use.device_id;
  if (in_use.holder == store::kCertKindServer) return "the server certificate";
  if (in_use.holder == store::kCertKindIssuingCa) return "the issuing CA certificate";
  return "the root CA certificate";
}

}  // namespace

Result<ExpiryReport> check_certificate_expiry(store::Store& store, AlertBook& book, const Clock& clock,
                                              std::chrono::hours within) {
  const UnixMillis now = to_unix_millis(clock.now());
  const UnixMillis horizon = to_unix_millis(clock.now() + within);
  auto in_use = in_use_ending_by(store, horizon);
  if (!in_use) return tl::unexpected(in_use.error());
  ExpiryReport report;
  std::set<std::pair<std::string, std::string>> wanted;  // (organisation, key) that stay open
  for (const auto& u : *in_use) {
    const auto& c = u.certificate;
    const bool expired = c.not_after <= now;
    store::AlertRecord a;
    a.organisation_id = u.organisation_id;
    a.source = "security";
    a.key = fmt::format("{}{}", expired ? kExpired : kExpiring, u.holder);
    a.device_id = u.device_id;
    a.severity = expired ? "critical" : "warning";
    a.title = expired ? "Certificate expired" : "Certificate expires soon";
    a.summary = fmt::format("{} (serial {}) {} {}", describe(u), c.serial_hex, expired ? "expired" : "expires",
                            format_utc_millis(from_unix_millis(c.not_after)));
    wanted.emplace(a.organisation_id, a.key);
    if (auto raised = book.raise(std::move(a)); !raised) return tl::unexpected(raised.error());
    ++(expired ? report.expired : report.expiring);
  }
  // What is open and no longer wanted: renewed, revoked, no longer in use, or now expired
  // (its warning gives way to the critical alert).
  store::AlertRepository::Query query;
  query.statuses = {std::string(store::kAlertOpen), std::string(store::kAlertAcknowledged)};
  query.limit = 100000;
  auto active = book.list(query, Scope::everything());
  if (!active) return tl::unexpected(active.error());
  for (const auto& a : *active) {
    if (!a.key.starts_with(kExpiring) && !a.key.starts_with(kExpired)) continue;
    if (wanted.contains({a.organisation_id, a.key})) continue;
    auto resolved = book.resolve_key(a.organisation_id, a.key, "system");
    if (!resolved) return tl::unexpected(resolved.error());
    if (*resolved) ++report.resolved;
  }
  return report;
}

}  // namespace torii::alerts

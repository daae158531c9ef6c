#include "pki/certificate_authority.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/ip.h"
#include "crypto/x509.h"

namespace torii::pki {
namespace {

constexpr std::string_view kRootKey = "ca.root.key";
constexpr std::string_view kIssuingKey = "ca.issuing.key";
constexpr std::string_view kServerKey = "tls.server.key";
constexpr std::string_view kCrlCounter = "crl.number";

std::chrono::seconds days(std::uint32_t n) { return std::chrono::hours(24) * n; }

crypto::SubjectAltNames split_names(const std::vector<std::string>& hostnames) {
  crypto::SubjectAltNames names;
  for (const auto& h : hostnames) {
    if (auto ip = IpAddress::parse(h)) {
      names.ip.push_back(ip->to_string());
    } else {
      names.dns.push_back(h);
    }
  }
  return names;
}

bool same_names(const crypto::CertificateInfo& info, const crypto::SubjectAltNames& wanted) {
  auto a = info.dns_names;
  auto b = wanted.dns;
  auto c = info.ip_addresses;
  auto d = wanted.ip;
  for (auto* v : {&a, &b, &c, &d}) std::sort(v->begin(), v->end());
  return a == b && c == d;
}

}  // namespace

CertificateAuthority::CertificateAuthority(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random,
                                           config::PkiConfig options)
    : store_(store), keys_(keys), clock_(clock), random_(random), options_(options) {}

Result<store::CertificateRecord> CertificateAuthority::record(std::string_view kind, const std::string& pem,
                                                              std::string_view issuer_serial,
                                                              std::optional<std::string> device_id) {
  auto info = crypto::inspect_certificate(pem);
  if (!info) return tl::unexpected(info.error());
  store::CertificateRecord r;
  r.serial_hex = info->serial_hex;
  r.kind = std::string(kind);
  r.subject = info->subject_cn;
  r.device_id = std::move(device_id);
  r.issuer_serial_hex = issuer_serial.empty() ? info->serial_hex : std::string(issuer_serial);
  r.pem = pem;
  r.fingerprint_sha256 = info->fingerprint_sha256_hex;
  r.not_before = to_unix_millis(info->not_before);
  r.not_after = to_unix_millis(info->not_after);
  if (auto st = store_.certificates().insert(r); !st) return tl::unexpected(st.error());
  return r;
}

Result<std::pair<store::CertificateRecord, crypto::SecretBytes>> CertificateAuthority::load(std::string_view kind,
                                                                                            std::string_view key_name) {
  auto cert = store_.certificates().latest(kind);
  if (!cert) return tl::unexpected(cert.error());
  if (!*cert) return fail(Errc::not_found, fmt::format("no {} certificate yet", kind));
  auto key = keys_.get_secret(key_name);
  if (!key) return tl::unexpected(key.error());
  if (!*key)
    return fail(Errc::corrupt, fmt::format("the {} certificate exists but its key {} is missing", kind, key_name));
  return std::pair{std::move(**cert), std::move(**key)};
}

Result<InitialiseReport> CertificateAuthority::initialise(const std::vector<std::string>& hostnames) {
  InitialiseReport report;
  const auto now = clock_.now();
  Status st = store_.transaction([&]() -> Status {
    auto root = store_.certificates().latest(store::kCertKindRootCa);
    if (!root) return tl::unexpected(root.error());
    if (!*root) {
      auto key = crypto::generate_p256_key();
      if (!key) return tl::unexpected(key.error());
      auto pem = crypto::make_root_ca(*key, "torii root CA", now, days(options_.root_ca_lifetime_days), random_);
      if (!pem) return tl::unexpected(pem.error());
      if (auto s = keys_.put_secret(kRootKey, key->view()); !s) return s;
      auto r = record(store::kCertKindRootCa, *pem, "", std::nullopt);
      if (!r) return tl::unexpected(r.error());
      report.created_root = true;
    }
    auto issuing = store_.certificates().latest(store::kCertKindIssuingCa);
    if (!issuing) return tl::unexpected(issuing.error());
    if (!*issuing) {
      auto loaded_root = load(store::kCertKindRootCa, kRootKey);
      if (!loaded_root) return tl::unexpected(loaded_root.error());
      auto key = crypto::generate_p256_key();
      if (!key) return tl::unexpected(key.error());
      const crypto::Issuer root_issuer{loaded_root->first.pem, &loaded_root->second};
      auto pem = crypto::make_issuing_ca(root_issuer, *key, "torii issuing CA", now,
                                         days(options_.issuing_ca_lifetime_days), random_);
      if (!pem) return tl::unexpected(pem.error());
      if (auto s = keys_.put_secret(kIssuingKey, key->view()); !s) return s;
      auto r = record(store::kCertKindIssuingCa, *pem, loaded_root->first.serial_hex, std::nullopt);
      if (!r) return tl::unexpected(r.error());
      report.created_issuing = true;
    }

    const crypto::SubjectAltNames names = split_names(hostnames);
    auto server = store_.certificates().latest(store::kCertKindServer);
    if (!server) return tl::unexpected(server.error());
    bool needed = !*server;
    if (!needed) {
      const auto lifetime = (*server)->not_after - (*server)->not_before;
      const bool past_two_thirds = to_unix_millis(now) >= (*server)->not_before + lifetime * 2 / 3;
      auto info = crypto::inspect_certificate((*server)->pem);
      if (!info) return tl::unexpected(info.error());
      needed = past_two_thirds || !same_names(*info, names);
    }
    if (needed) {
      auto ca = load(store::kCertKindIssuingCa, kIssuingKey);
      if (!ca) return tl::unexpected(ca.error());
      auto key = crypto::generate_p256_key();
      if (!key) return tl::unexpected(key.error());
      const crypto::Issuer issuer{ca->first.pem, &ca->second};
      auto pem = crypto::issue_server_certificate(issuer, *key, names, now,
                                                  days(options_.server_certificate_lifetime_days), random_);
      if (!pem) return tl::unexpected(pem.error());
      if (auto s = keys_.put_secret(kServerKey, key->view()); !s) return s;
      if (*server) {
        if (auto s = store_.certificates().revoke((*server)->serial_hex, to_unix_millis(now), "superseded"); !s)
          return s;
      }
      auto r = record(store::kCertKindServer, *pem, ca->first.serial_hex, std::nullopt);
      if (!r) return tl::unexpected(r.error());
      report.issued_server_certificate = true;
    }
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  return report;
}

Result<ServerCredentials> CertificateAuthority::server_credentials() {
  auto server = load(store::kCertKindServer, kServerKey);
  if (!server) return tl::unexpected(server.error());
  auto issuing = issuing_certificate_pem();
  if (!issuing) return tl::unexpected(issuing.error());
  return ServerCredentials{server->first.pem + *issuing, std::move(server->second)};
}

Result<std::string> CertificateAuthority::root_certificate_pem() {
  auto r = store_.certificates().latest(store::kCertKindRootCa);
  if (!r) return tl::unexpected(r.error());
  if (!*r) return fail(Errc::not_found, "no root CA yet");
  return (*r)->pem;
}

Result<std::string> CertificateAuthority::issuing_certificate_pem() {
  auto r = store_.certificates().latest(store::kCertKindIssuingCa);
  if (!r) return tl::unexpected(r.error());
  if (!*r) return fail(Errc::not_found, "no issuing CA yet");
  return (*r)->pem;
}

Result<store::CertificateRecord> CertificateAuthority::issue_device_certificate(std::string_view csr_pem,
                                                                                std::string_view device_id) {
  auto ca = load(store::kCertKindIssuingCa, kIssuingKey);
  if (!ca) return tl::unexpected(ca.error());
  const crypto::Issuer issuer{ca->first.pem, &ca->second};
  auto pem = crypto::issue_device_certificate(issuer, csr_pem, device_id, clock_.now(),
                                              days(options_.device_certificate_lifetime_days), random_);
  if (!pem) return tl::unexpected(pem.error());
  return record(store::kCertKindDevice, *pem, ca->first.serial_hex, std::string(device_id));
}

Status CertificateAuthority::revoke(std::string_view serial_hex, std::string_view reason) {
  return store_.certificates().revoke(serial_hex, to_unix_millis(clock_.now()), reason);
}

Result<std::string> CertificateAuthority::revocation_list() {
  auto ca = load(store::kCertKindIssuingCa, kIssuingKey);
  if (!ca) return tl::unexpected(ca.error());
  auto revoked = store_.certificates().list_revoked(ca->first.serial_hex);
  if (!revoked) return tl::unexpected(revoked.error());
  std::vector<crypto::RevokedEntry> entries;
  for (const auto& r : *revoked) entries.push_back({r.serial_hex, from_unix_millis(r.revoked_at.value_or(0))});
  auto number = store_.counters().next(kCrlCounter);
  if (!number) return tl::unexpected(number.error());
  const crypto::Issuer issuer{ca->first.pem, &ca->second};
  return crypto::make_crl(issuer, entries, *number, clock_.now(), std::chrono::hours(options_.crl_next_update_hours));
}

Result<std::vector<store::CertificateRecord>> CertificateAuthority::expiring_within(std::chrono::seconds within) {
  return store_.certificates().list_expiring(to_unix_millis(clock_.now() + within));
}

}  // namespace torii::pki

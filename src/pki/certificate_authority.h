// torii's built-in PKI: a root CA, an online issuing CA, the server's TLS certificate and
// device certificates issued from CSRs (JPCERT VI-4; IIIT N1, J7, J9).
//
//   root CA (EC P-256, long-lived; signs only the issuing CA)
//    └─ issuing CA (EC P-256; signs server and device certificates, and the CRL)
//        ├─ server certificate for server.hostnames (renewed at 2/3 of its lifetime)
//        └─ device certificates (subject bound to the device id, 90 days by default)
//
// Private keys of both CAs and of the server are sealed at rest by the KeyRing; the
// database holds every issued certificate, its revocation and expiry. Device private keys
// are never seen: devices send CSRs.
//
// Threading: used from one thread at a time, like the KeyRing it borrows.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "config/config.h"
#include "crypto/secret.h"
#include "keys/key_ring.h"
#include "store/store.h"

namespace torii::pki {

struct ServerCredentials {
  std::string certificate_chain_pem;  // server certificate, then the issuing CA
  crypto::SecretBytes private_key_pem;
};

struct InitialiseReport {
  bool created_root = false;
  bool created_issuing = false;
  bool issued_server_certificate = false;
};

class CertificateAuthority {
 public:
  // Borrows everything; all must outlive the CA.
  CertificateAuthority(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random,
                       config::PkiConfig options);

  // First start: creates the root and the issuing CA. Every start: (re)issues the server
  // certificate when missing, past 2/3 of its lifetime, or when hostnames changed.
  [[nodiscard]] Result<InitialiseReport> initialise(const std::vector<std::string>& hostnames);

  [[nodiscard]] Result<ServerCredentials> server_credentials();
  [[nodiscard]] Result<std::string> root_certificate_pem();
  [[nodiscard]] Result<std::string> issuing_certificate_pem();

  // Issues a device certificate from a PEM CSR; the subject is bound to device_id whatever
  // the CSR asks for. Returns the certificate PEM; the record is stored.
  [[nodiscard]] Result<store::CertificateRecord> issue_device_certificate(std::string_view csr_pem,
                                                                          std::string_view device_id);
  [[nodiscard]] Status revoke(std::string_view serial_hex, std::string_view reason);
  // A fresh CRL of the issuing CA, with the next CRL number.
  [[nodiscard]] Result<std::string> revocation_list();
  // Certificates that expire before now + within, not revoked, soonest first.
  [[nodiscard]] Result<std::vector<store::CertificateRecord>> expiring_within(std::chrono::seconds within);

 private:
  [[nodiscard]] Result<store::CertificateRecord> record(std::string_view kind, const std::string& pem,
                                                        std::string_view issuer_serial,
                                                        std::optional<std::string> device_id);
  [[nodiscard]] Result<std::pair<store::CertificateRecord, crypto::SecretBytes>> load(std::string_view kind,
                                                                                      std::string_view key_name);

  store::Store& store_;
  keys::KeyRing& keys_;
  const Clock& clock_;
  Random& random_;
  config::PkiConfig options_;
};

}  // namespace torii::pki

// X.509 primitives for torii's built-in certificate authority, over OpenSSL 3.
//
// The PKI has three tiers (RFC 5280 profile):
//   root CA (self-signed, offline-capable)  ->  issuing CA (pathlen:0)  ->  leaves
// Leaves are TLS server certificates (serverAuth) and device certificates (clientAuth) issued
// from a device's CSR. Every function is pure: PEM text in, PEM text out. There is no file or
// network I/O here; time and randomness come from the caller so tests can use fakes.
//
// Private keys travel as SecretBytes holding an unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY").
// They are never printed and never appear in error messages. Every key this module signs
// with or certifies is EC P-256 with ECDSA-SHA256 signatures.
//
// Errors: malformed PEM or out-of-profile input -> Errc::invalid_argument; a signature that
// does not verify (a CSR, a chain) -> Errc::authentication_failed; an expired certificate in
// a chain -> Errc::expired; an OpenSSL primitive that fails -> Errc::crypto_error with
// OpenSSL's reason string.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/random.h"
#include "crypto/secret.h"

namespace torii::crypto {

// Certificates are back-dated by this much so that a relying party whose clock is slightly
// behind still accepts a certificate issued a moment ago.
inline constexpr std::chrono::minutes kCertificateBackdate{5};

// A fresh EC P-256 private key as PKCS#8 PEM.
[[nodiscard]] Result<SecretBytes> generate_p256_key();

// The SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") of a private key. Safe to print.
[[nodiscard]] Result<std::string> public_key_pem(const SecretBytes& key_pem);

// Names for a TLS server certificate's subjectAltName (RFC 5280 §4.2.1.6).
struct SubjectAltNames {
  std::vector<std::string> dns;  // host names, letters/digits/hyphens; "*." only as the whole leftmost label
  std::vector<std::string> ip;   // IPv4 or IPv6 text
};

// A CA that signs: its certificate and its private key. key_pem is borrowed and must outlive
// the call; it must match the certificate, which must be a CA certificate.
struct Issuer {
  std::string certificate_pem;
  const SecretBytes* key_pem = nullptr;
};

// Self-signed root: basicConstraints critical CA:TRUE (no path length limit), keyUsage critical
// keyCertSign, cRLSign. common_name is 1..64 characters (RFC 5280 Appendix A, ub-common-name).
[[nodiscard]] Result<std::string> make_root_ca(const SecretBytes& key_pem, std::string_view common_name,
                                               std::chrono::system_clock::time_point now, std::chrono::seconds lifetime,
                                               Random& random);

// Issuing (intermediate) CA signed by `root`: basicConstraints critical CA:TRUE, pathlen:0
// (it may sign only leaves), keyUsage critical keyCertSign, cRLSign.
[[nodiscard]] Result<std::string> make_issuing_ca(const Issuer& root, const SecretBytes& subject_key_pem,
                                                  std::string_view common_name,
                                                  std::chrono::system_clock::time_point now,
                                                  std::chrono::seconds lifetime, Random& random);

// TLS server leaf: basicConstraints critical CA:FALSE, keyUsage critical digitalSignature,
// extendedKeyUsage serverAuth, subjectAltName from `names` (at least one name). The subject
// is CN=<first name> when it fits in 64 characters, else CN=torii server; clients match the
// SAN, not the CN (RFC 6125 §6.4.4).
[[nodiscard]] Result<std::string> issue_server_certificate(const Issuer& ca, const SecretBytes& subject_key_pem,
                                                           const SubjectAltNames& names,
                                                           std::chrono::system_clock::time_point now,
                                                           std::chrono::seconds lifetime, Random& random);

// Device leaf from a PKCS#10 CSR (RFC 2986) in PEM. The CSR's self-signature must verify
// (proof of possession; else authentication_failed) and its key must be EC P-256. Only the
// public key is taken from the CSR: whatever subject or extensions it asks for are ignored.
// The certificate says: subject O=torii device, CN=<device_id>; SAN URI
// urn:torii:device:<device_id>; extendedKeyUsage clientAuth; keyUsage critical
// digitalSignature; basicConstraints critical CA:FALSE.
// device_id must match [A-Za-z0-9._-]{1,64}, else invalid_argument.
[[nodiscard]] Result<std::string> issue_device_certificate(const Issuer& ca, std::string_view csr_pem,
                                                           std::string_view device_id,
                                                           std::chrono::system_clock::time_point now,
                                                           std::chrono::seconds lifetime, Random& random);

// A CSR with subject CN=<common_name>, signed with key_pem (EC P-256). No extensions are
// requested: the CA decides them.
[[nodiscard]] Result<std::string> make_csr(const SecretBytes& key_pem, std::string_view common_name);

struct RevokedEntry {
  std::string serial_hex;  // as CertificateInfo::serial_hex; upper case and leading zeros accepted
  std::chrono::system_clock::time_point revoked_at;
};

// A v2 CRL (RFC 5280 §5) signed by `ca`: thisUpdate = now, nextUpdate = now + next_update_in,
// cRLNumber = crl_number (§5.2.3, must increase with each CRL the CA publishes),
// authorityKeyIdentifier (§5.2.1).
[[nodiscard]] Result<std::string> make_crl(const Issuer& ca, const std::vector<RevokedEntry>& revoked,
                                           std::uint64_t crl_number, std::chrono::system_clock::time_point now,
                                           std::chrono::seconds next_update_in);

struct CertificateInfo {
  std::string subject_cn;  // empty when the subject has no CN
  std::string issuer_cn;
  std::string serial_hex;  // lower-case hex, no leading zeros ("0" for zero)
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  bool is_ca = false;  // basicConstraints CA:TRUE
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // canonical text (inet_ntop form)
  std::vector<std::string> uris;
  std::string fingerprint_sha256_hex;  // SHA-256 over the DER encoding, lower-case hex
};

// Parses the first certificate in `pem`. Does not verify anything.
[[nodiscard]] Result<CertificateInfo> inspect_certificate(std::string_view pem);

// Path validation (RFC 5280 §6) at time `at` with OpenSSL's X509_verify_cert: leaf ->
// intermediates (untrusted) -> root (the only trust anchor). With a CRL (issued by the leaf's
// issuer) the leaf's revocation status is checked too, and a CRL that is stale at `at` fails.
// The error message names OpenSSL's reason ("certificate has expired", "certificate
// revoked", ...). Errc::expired for an expired certificate, authentication_failed otherwise.
[[nodiscard]] Status verify_certificate_chain(std::string_view leaf_pem,
                                              const std::vector<std::string>& intermediate_pems,
                                              std::string_view root_pem, std::chrono::system_clock::time_point at,
                                              std::optional<std::string_view> crl_pem = std::nullopt);

// ok when key_pem is the private half of the certificate's public key; Errc::conflict when
// both parse but do not belong together.
[[nodiscard]] Status check_key_matches_certificate(const SecretBytes& key_pem, std::string_view certificate_pem);

}  // namespace torii::crypto

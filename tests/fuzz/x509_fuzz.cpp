// Fuzzes the two X.509 parsers that see bytes from outside: inspect_certificate (operators
// import certificates; devices present them) and the CSR parsing in
// issue_device_certificate (a device's enrolment request: the most exposed input of the CA).
//
// Each input is tried as PEM text as it is and, when it holds no PEM header, also as DER
// wrapped in a PEM envelope here: mutating PEM mostly breaks its base64, so without the
// wrapping the fuzzer would rarely get past the envelope to OpenSSL's ASN.1 decoders and
// torii's own walk over the decoded fields (names, SANs, times).
//
// Properties beyond "does not crash":
//   - an inspected certificate has a serial and a 64-hex-digit SHA-256 fingerprint;
//   - a device certificate issued from any accepted CSR carries exactly the profile the CA
//     promises (CN and SAN URI from the device id, not from the CSR; not a CA) and validates
//     up to the root. A CSR that could smuggle its own subject, extensions or CA flag into
//     the certificate would break device identity.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/random.h"
#include "crypto/secret.h"
#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "fuzz_check.h"

namespace torii::fuzz {
namespace {

using std::chrono::days;

constexpr std::string_view kDeviceId = "fuzz-device";
// A fixed "now" keeps runs repeatable: validity windows never drift out from under a seed.
const std::chrono::system_clock::time_point kNow{std::chrono::seconds{1'790'000'000}};

// Serials come from here; deterministic so that a reproducer behaves the same on every run.
// Not for real keys: the CA keys below are throwaway and OpenSSL generates them anyway.
class SplitMixRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    for (auto& b : out) {
      std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      b = static_cast<std::uint8_t>((z ^ (z >> 31)) >> 56);
    }
  }

 private:
  std::uint64_t state_ = 1;
};

[[noreturn]] void setup_failed(const char* what, const Error& error) {
  std::fprintf(stderr, "x509_fuzz: %s: %s\n", what, error.message.c_str());
  std::abort();
}

// A root and an issuing CA, created once per process: key generation and signing would
// otherwise dominate every execution.
struct Pki {
  Pki() {
    if (auto s = crypto::init(); !s) setup_failed("crypto::init", s.error());
    auto rk = crypto::generate_p256_key();
    auto ik = crypto::generate_p256_key();
    if (!rk) setup_failed("root key", rk.error());
    if (!ik) setup_failed("issuing key", ik.error());
    root_key = std::move(*rk);
    issuing_key = std::move(*ik);
    auto root = crypto::make_root_ca(root_key, "fuzz root", kNow, days(3650), random);
    if (!root) setup_failed("root CA", root.error());
    root_pem = std::move(*root);
    auto issuing =
        crypto::make_issuing_ca({root_pem, &root_key}, issuing_key, "fuzz issuing", kNow, days(1095), random);
    if (!issuing) setup_failed("issuing CA", issuing.error());
    issuing_pem = std::move(*issuing);
  }

  crypto::SecretBytes root_key;
  crypto::SecretBytes issuing_key;
  std::string root_pem;
  std::string issuing_pem;
  SplitMixRandom random;
};

Pki& pki() {
  static Pki instance;
  return instance;
}

// RFC 7468 textual encoding: standard base64 (torii's base64url with the two differing
// characters swapped back and padding restored), 64 characters a line.
std::string to_pem(std::string_view label, ByteView der) {
  std::string b64 = base64url_encode(der);
  for (char& c : b64) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (b64.size() % 4 != 0) b64.push_back('=');
  std::string pem = "-----BEGIN " + std::string(label) + "-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) {
    pem += b64.substr(i, 64);
    pem += '\n';
  }
  pem += "-----END " + std::string(label) + "-----\n";
  return pem;
}

void inspect(std::string_view pem) {
  const auto info = crypto::inspect_certificate(pem);
  if (!info) return;
  check(!info->serial_hex.empty());
  check(info->fingerprint_sha256_hex.size() == 64 && hex_decode(info->fingerprint_sha256_hex).has_value());
}

void issue(std::string_view csr_pem) {
  Pki& p = pki();
  const auto cert =
      crypto::issue_device_certificate({p.issuing_pem, &p.issuing_key}, csr_pem, kDeviceId, kNow, days(1), p.random);
  if (!cert) return;
  const auto info = crypto::inspect_certificate(*cert);
  check(info.has_value());
  check(info->subject_cn == kDeviceId && info->issuer_cn == "fuzz issuing" && !info->is_ca);
  check(info->dns_names.empty() && info->ip_addresses.empty());
  check(info->uris.size() == 1 && info->uris.front() == "urn:torii:device:" + std::string(kDeviceId));
  check(crypto::verify_certificate_chain(*cert, {p.issuing_pem}, p.root_pem, kNow).has_value());
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  fuzz::pki();  // before the first input, so set-up failures are not blamed on it
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  fuzz::inspect(text);
  fuzz::issue(text);
  if (text.find("-----BEGIN") == std::string_view::npos) {
    const ByteView der(data, size);
    fuzz::inspect(fuzz::to_pem("CERTIFICATE", der));
    fuzz::issue(fuzz::to_pem("CERTIFICATE REQUEST", der));
  }
  return 0;
}

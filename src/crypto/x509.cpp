#include "crypto/x509.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>

#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "base/bytes.h"
#include "base/ip.h"
#include "crypto/openssl.h"

namespace torii::crypto {
namespace {

using TimePoint = std::chrono::system_clock::time_point;

// --- RAII over OpenSSL objects -------------------------------------------------------------
using ossl::BioPtr;
using ossl::CrlPtr;
using ossl::Deleter;
using ossl::PkeyPtr;
using ossl::X509Ptr;
struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_pop_free(s, X509_free); }
};
struct GeneralNamesDeleter {
  void operator()(GENERAL_NAMES* s) const noexcept { GENERAL_NAMES_free(s); }
};
struct OpenSslStringDeleter {
  void operator()(unsigned char* p) const noexcept { OPENSSL_free(p); }
};

using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using RevokedPtr = std::unique_ptr<X509_REVOKED, Deleter<X509_REVOKED_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using IntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using TimePtr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesDeleter>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using Ia5Ptr = std::unique_ptr<ASN1_IA5STRING, Deleter<ASN1_IA5STRING_free>>;
using OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
using OpenSslString = std::unique_ptr<unsigned char, OpenSslStringDeleter>;

// OpenSSL reports failures on a per-thread queue. Each public function starts and ends with
// an empty queue so that a stale error from an earlier call is never blamed on this one.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_clear_error(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
  ~ErrorQueueScope() { ERR_clear_error(); }
};

// "what: reason; reason", draining the queue.
tl::unexpected<Error> openssl_failure(std::string_view what) {
  return fail(Errc::crypto_error, fmt::format("{}: {}", what, ossl::drain_errors()));
}

tl::unexpected<Error> invalid(std::string message) {
  ERR_clear_error();
  return fail(Errc::invalid_argument, std::move(message));
}

// PEM inputs come from operators, devices and disk; none is legitimately this large.
constexpr std::size_t kMaxPemBytes = 1u << 20;

Result<BioPtr> read_bio(ByteView data, std::string_view what) {
  if (data.empty()) return invalid(fmt::format("{} is empty", what));
  if (data.size() > kMaxPemBytes) return invalid(fmt::format("{} is larger than 1 MiB", what));
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return openssl_failure("BIO_new_mem_buf");
  return bio;
}

// Returns everything written to a memory BIO.
std::string_view bio_contents(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  if (size <= 0 || data == nullptr) return {};
  return {data, static_cast<std::size_t>(size)};
}

// --- Loading -------------------------------------------------------------------------------

// A passphrase callback that refuses: without it OpenSSL would prompt on the terminal for an
// encrypted key. torii's keys are protected at rest by its own sealing, not by PEM encryption.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return -1; }

Result<PkeyPtr> load_private_key(const SecretBytes& key_pem) {
  auto bio = read_bio(key_pem.view(), "private key");
  if (!bio) return tl::unexpected(bio.error());
  PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, no_passphrase, nullptr));
  if (!key) return invalid("private key is not an unencrypted PEM private key");
  return key;
}

bool is_p256(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC") != 1) return false;
  std::array<char, 64> group{};
  std::size_t length = 0;
  if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &length) != 1) return false;
  return std::string_view(group.data(), length) == SN_X9_62_prime256v1;
}

Result<PkeyPtr> load_p256_private_key(const SecretBytes& key_pem) {
  auto key = load_private_key(key_pem);
  if (!key) return key;
  if (!is_p256(key->get())) return invalid("private key is not an EC P-256 key");
  return key;
}

Result<X509Ptr> load_certificate(std::string_view pem, std::string_view what) {
  auto bio = read_bio(as_bytes(pem), what);
  if (!bio) return tl::unexpected(bio.error());
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, no_passphrase, nullptr));
  if (!cert) return invalid(fmt::format("{} is not a PEM certificate", what));
  return cert;
}

// --- Names and values ----------------------------------------------------------------------

// ub-common-name is 64 (RFC 5280 Appendix A). Control characters are refused: they have no
// place in a name and confuse terminals and logs that show it.
Status check_common_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return invalid("common name must be 1 to 64 bytes");
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return invalid("common name must not contain control characters");
  }
  return ok();
}

bool is_device_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

// RFC 1034 §3.5 preferred name syntax (with RFC 1123 §2.1 leading digits), as RFC 5280
// §4.2.1.6 requires for dNSName; a wildcard is allowed only as the whole leftmost label.
bool is_dns_name(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (const char c : label) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    start = end + 1;
  }
  return true;
}

Status add_name_entry(X509_NAME* name, int nid, std::string_view value) {
  if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return openssl_failure("X509_NAME_add_entry_by_NID");
  }
  return ok();
}

std::string name_entry(const X509_NAME* name, int nid) {
  const int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return {};
  const OpenSslString owned(utf8);
  return {reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length)};
}

std::string ia5_text(const ASN1_IA5STRING* s) {
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s))};
}

// Serial numbers and CRL entries share this form so that one can be pasted into the other.
std::string integer_hex(const ASN1_INTEGER* integer) {
  const BignumPtr bn(ASN1_INTEGER_to_BN(integer, nullptr));
  if (!bn) return {};
  Bytes bytes(static_cast<std::size_t>(BN_num_bytes(bn.get())));
  BN_bn2bin(bn.get(), bytes.data());
  std::string hex = hex_encode(bytes);
  const std::size_t first = hex.find_first_not_of('0');
  return first == std::string::npos ? "0" : hex.substr(first);
}

Result<IntegerPtr> parse_serial_hex(std::string_view hex) {
  // RFC 5280 §4.1.2.2: at most 20 octets.
  if (hex.empty() || hex.size() > 40 || !std::all_of(hex.begin(), hex.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      })) {
    return invalid(fmt::format("serial '{}' is not 1 to 40 hex digits", hex));
  }
  const std::string text(hex);
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, text.c_str()) == 0) return openssl_failure("BN_hex2bn");
  const BignumPtr bn(raw);
  IntegerPtr integer(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!integer) return openssl_failure("BN_to_ASN1_INTEGER");
  return integer;
}

// 128 random bits with the top bit cleared: a positive INTEGER of at most 16 octets (RFC 5280
// §4.1.2.2), unpredictable so that chosen-prefix collisions on the TBS cannot be staged.
Status set_random_serial(X509* cert, Random& random) {
  std::array<std::uint8_t, 16> bytes{};
  for (int attempt = 0; attempt < 8; ++attempt) {
    random.fill(bytes);
    bytes[0] &= 0x7f;
    if (std::any_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b != 0; })) {
      const BignumPtr bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
      if (!bn) return openssl_failure("BN_bin2bn");
      if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
        return openssl_failure("BN_to_ASN1_INTEGER");
      }
      return ok();
    }
  }
  return fail(Errc::crypto_error, "random source returned only zero serial numbers");
}

std::time_t to_time_t(TimePoint t) {
  return static_cast<std::time_t>(std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count());
}

Result<TimePoint> from_asn1_time(const ASN1_TIME* time) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(time, &tm) != 1) return fail(Errc::corrupt, "certificate has an unreadable time");
  using namespace std::chrono;
  const sys_days date =
      year{tm.tm_year + 1900} / month{static_cast<unsigned>(tm.tm_mon + 1)} / day{static_cast<unsigned>(tm.tm_mday)};
  return TimePoint(date) + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
}

// ASN1_TIME_set chooses UTCTime through 2049 and GeneralizedTime after (RFC 5280 §4.1.2.5).
Status set_validity(X509* cert, TimePoint now, std::chrono::seconds lifetime) {
  if (lifetime <= std::chrono::seconds::zero()) return invalid("certificate lifetime must be positive");
  if (ASN1_TIME_set(X509_getm_notBefore(cert), to_time_t(now - kCertificateBackdate)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), to_time_t(now + lifetime)) == nullptr) {
    return openssl_failure("ASN1_TIME_set");
  }
  return ok();
}

// Adds an extension written in OpenSSL's configuration syntax. Only constant strings reach
// this: values built from input go through add_subject_alt_names, which cannot be injected.
Status add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  const ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext) return openssl_failure(fmt::format("building extension {}", OBJ_nid2sn(nid)));
  if (X509_add_ext(cert, ext.get(), -1) != 1) return openssl_failure("X509_add_ext");
  return ok();
}

Status push_name(GENERAL_NAMES* names, int type, ByteView value) {
  GeneralNamePtr name(GENERAL_NAME_new());
  if (!name) return openssl_failure("GENERAL_NAME_new");
  if (type == GEN_IPADD) {
    OctetStringPtr octets(ASN1_OCTET_STRING_new());
    if (!octets || ASN1_OCTET_STRING_set(octets.get(), value.data(), static_cast<int>(value.size())) != 1) {
      return openssl_failure("ASN1_OCTET_STRING_set");
    }
    GENERAL_NAME_set0_value(name.get(), type, octets.release());
  } else {
    Ia5Ptr text(ASN1_IA5STRING_new());
    if (!text || ASN1_STRING_set(text.get(), value.data(), static_cast<int>(value.size())) != 1) {
      return openssl_failure("ASN1_STRING_set");
    }
    GENERAL_NAME_set0_value(name.get(), type, text.release());
  }
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) return openssl_failure("sk_GENERAL_NAME_push");
  static_cast<void>(name.release());  // owned by the stack now
  return ok();
}

struct SanInput {
  std::vector<std::string> dns;
  std::vector<Bytes> ip;  // 4 or 16 octets
  std::vector<std::string> uri;
};

// subjectAltName, non-critical because the subject is never empty (RFC 5280 §4.2.1.6).
Status add_subject_alt_names(X509* cert, const SanInput& input) {
  const GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return openssl_failure("GENERAL_NAMES_new");
  for (const auto& dns : input.dns) {
    if (auto s = push_name(names.get(), GEN_DNS, as_bytes(dns)); !s) return s;
  }
  for (const auto& ip : input.ip) {
    if (auto s = push_name(names.get(), GEN_IPADD, ip); !s) return s;
  }
  for (const auto& uri : input.uri) {
    if (auto s = push_name(names.get(), GEN_URI, as_bytes(uri)); !s) return s;
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return openssl_failure("adding subjectAltName");
  }
  return ok();
}

Result<std::string> certificate_to_pem(X509* cert) {
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return openssl_failure("PEM_write_bio_X509");
  return std::string(bio_contents(bio.get()));
}

// --- Signing -------------------------------------------------------------------------------

struct LoadedIssuer {
  X509Ptr certificate;
  PkeyPtr key;
};

Result<LoadedIssuer> load_issuer(const Issuer& issuer) {
  if (issuer.key_pem == nullptr) return invalid("issuer has no private key");
  auto cert = load_certificate(issuer.certificate_pem, "issuer certificate");
  if (!cert) return tl::unexpected(cert.error());
  auto key = load_p256_private_key(*issuer.key_pem);
  if (!key) return tl::unexpected(key.error());
  if (EVP_PKEY_eq(X509_get0_pubkey(cert->get()), key->get()) != 1) {
    return invalid("issuer private key does not match the issuer certificate");
  }
  // EXFLAG_CA is set only by basicConstraints CA:TRUE; X509_check_ca would also accept v1
  // certificates, which have no place in this PKI.
  if ((X509_get_extension_flags(cert->get()) & EXFLAG_CA) == 0) {
    return invalid("issuer certificate is not a CA certificate");
  }
  ERR_clear_error();
  return LoadedIssuer{std::move(*cert), std::move(*key)};
}

enum class Profile { root_ca, issuing_ca, server, device };

struct Template {
  Profile profile;
  EVP_PKEY* subject_key;                             // public key to certify
  std::vector<std::pair<int, std::string>> subject;  // (NID, value), in order
  SanInput san;
};

// Builds and signs one certificate. For the root, `issuer` is null and the certificate signs
// itself with `self_key`.
Result<std::string> build_certificate(const Template& t, const LoadedIssuer* issuer, EVP_PKEY* self_key, TimePoint now,
                                      std::chrono::seconds lifetime, Random& random) {
  const X509Ptr cert(X509_new());
  if (!cert) return openssl_failure("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return openssl_failure("X509_set_version");
  if (auto s = set_random_serial(cert.get(), random); !s) return tl::unexpected(s.error());
  if (auto s = set_validity(cert.get(), now, lifetime); !s) return tl::unexpected(s.error());

  X509_NAME* subject = X509_get_subject_name(cert.get());
  for (const auto& [nid, value] : t.subject) {
    if (auto s = add_name_entry(subject, nid, value); !s) return tl::unexpected(s.error());
  }
  const X509_NAME* issuer_name = issuer != nullptr ? X509_get_subject_name(issuer->certificate.get()) : subject;
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1) return openssl_failure("X509_set_issuer_name");
  if (X509_set_pubkey(cert.get(), t.subject_key) != 1) return openssl_failure("X509_set_pubkey");

  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer->certificate.get() : cert.get(), cert.get(), nullptr, nullptr, 0);
  // The subjectKeyIdentifier goes first: for the root, the authorityKeyIdentifier is copied
  // from it (RFC 5280 §4.2.1.1, §4.2.1.2).
  struct Ext {
    int nid;
    const char* value;
  };
  std::vector<Ext> extensions;
  switch (t.profile) {
    case Profile::root_ca:
      extensions = {{NID_basic_constraints, "critical,CA:TRUE"}, {NID_key_usage, "critical,keyCertSign,cRLSign"}};
      break;
    case Profile::issuing_ca:
      extensions = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                    {NID_key_usage, "critical,keyCertSign,cRLSign"}};
      break;
    case Profile::server:
      extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                    {NID_key_usage, "critical,digitalSignature"},
                    {NID_ext_key_usage, "serverAuth"}};
      break;
    case Profile::device:
      extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                    {NID_key_usage, "critical,digitalSignature"},
                    {NID_ext_key_usage, "clientAuth"}};
      break;
  }
  extensions.push_back({NID_subject_key_identifier, "hash"});
  extensions.push_back({NID_authority_key_identifier, "keyid:always"});
  for (const auto& ext : extensions) {
    if (auto s = add_extension(cert.get(), &ctx, ext.nid, ext.value); !s) return tl::unexpected(s.error());
  }
  if (!t.san.dns.empty() || !t.san.ip.empty() || !t.san.uri.empty()) {
    if (auto s = add_subject_alt_names(cert.get(), t.san); !s) return tl::unexpected(s.error());
  }

  EVP_PKEY* signing_key = issuer != nullptr ? issuer->key.get() : self_key;
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) <= 0) return openssl_failure("X509_sign");
  return certificate_to_pem(cert.get());
}

}  // namespace

Result<SecretBytes> generate_p256_key() {
  const ErrorQueueScope errors;
  const PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", SN_X9_62_prime256v1));
  if (!key) return openssl_failure("generating a P-256 key");
  // The secure-heap memory BIO is wiped when freed; the SecretBytes copy is wiped on release.
  const BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) return openssl_failure("BIO_new");
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") in OpenSSL 3.
  if (PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return openssl_failure("encoding the private key");
  }
  return SecretBytes(as_bytes(bio_contents(bio.get())));
}

Result<std::string> public_key_pem(const SecretBytes& key_pem) {
  const ErrorQueueScope errors;
  auto key = load_private_key(key_pem);
  if (!key) return tl::unexpected(key.error());
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key->get()) != 1) return openssl_failure("PEM_write_bio_PUBKEY");
  return std::string(bio_contents(bio.get()));
}

Result<std::string> make_root_ca(const SecretBytes& key_pem, std::string_view common_name, TimePoint now,
                                 std::chrono::seconds lifetime, Random& random) {
  const ErrorQueueScope errors;
  if (auto s = check_common_name(common_name); !s) return tl::unexpected(s.error());
  auto key = load_p256_private_key(key_pem);
  if (!key) return tl::unexpected(key.error());
  const Template t{Profile::root_ca, key->get(), {{NID_commonName, std::string(common_name)}}, {}};
  return build_certificate(t, nullptr, key->get(), now, lifetime, random);
}

Result<std::string> make_issuing_ca(const Issuer& root, const SecretBytes& subject_key_pem,
                                    std::string_view common_name, TimePoint now, std::chrono::seconds lifetime,
                                    Random& random) {
  const ErrorQueueScope errors;
  if (auto s = check_common_name(common_name); !s) return tl::unexpected(s.error());
  auto issuer = load_issuer(root);
  if (!issuer) return tl::unexpected(issuer.error());
  auto key = load_p256_private_key(subject_key_pem);
  if (!key) return tl::unexpected(key.error());
  const Template t{Profile::issuing_ca, key->get(), {{NID_commonName, std::string(common_name)}}, {}};
  return build_certificate(t, &*issuer, nullptr, now, lifetime, random);
}

Result<std::string> issue_server_certificate(const Issuer& ca, const SecretBytes& subject_key_pem,
                                             const SubjectAltNames& names, TimePoint now, std::chrono::seconds lifetime,
                                             Random& random) {
  const ErrorQueueScope errors;
  if (names.dns.empty() && names.ip.empty()) return invalid("a server certificate needs at least one name");
  SanInput san;
  for (const auto& dns : names.dns) {
    if (!is_dns_name(dns)) return invalid(fmt::format("'{}' is not a valid DNS name", dns));
    san.dns.push_back(dns);
  }
  for (const auto& text : names.ip) {
    auto ip = IpAddress::parse(text);
    if (!ip) return tl::unexpected(ip.error());
    san.ip.push_back(ip->v4 ? Bytes(ip->bytes.begin() + 12, ip->bytes.end())
                            : Bytes(ip->bytes.begin(), ip->bytes.end()));
  }
  auto issuer = load_issuer(ca);
  if (!issuer) return tl::unexpected(issuer.error());
  auto key = load_p256_private_key(subject_key_pem);
  if (!key) return tl::unexpected(key.error());
  const std::string& first = names.dns.empty() ? names.ip.front() : names.dns.front();
  const std::string cn = first.size() <= 64 ? first : "torii server";
  const Template t{Profile::server, key->get(), {{NID_commonName, cn}}, std::move(san)};
  return build_certificate(t, &*issuer, nullptr, now, lifetime, random);
}

Result<std::string> issue_device_certificate(const Issuer& ca, std::string_view csr_pem, std::string_view device_id,
                                             TimePoint now, std::chrono::seconds lifetime, Random& random) {
  const ErrorQueueScope errors;
  if (!is_device_id(device_id)) return invalid("device id must be 1 to 64 of A-Z a-z 0-9 . _ -");
  auto bio = read_bio(as_bytes(csr_pem), "CSR");
  if (!bio) return tl::unexpected(bio.error());
  const ReqPtr csr(PEM_read_bio_X509_REQ(bio->get(), nullptr, no_passphrase, nullptr));
  if (!csr) return invalid("CSR is not a PEM certificate request");
  EVP_PKEY* public_key = X509_REQ_get0_pubkey(csr.get());
  if (public_key == nullptr) return invalid("CSR public key cannot be read");
  if (!is_p256(public_key)) return invalid("CSR key is not an EC P-256 key");
  // Proof of possession (RFC 2986 §3): the requester holds the private key.
  if (X509_REQ_verify(csr.get(), public_key) != 1) {
    ERR_clear_error();
    return fail(Errc::authentication_failed, "CSR signature does not verify");
  }
  auto issuer = load_issuer(ca);
  if (!issuer) return tl::unexpected(issuer.error());
  const std::string id(device_id);
  const Template t{Profile::device,
                   public_key,
                   {{NID_organizationName, "torii device"}, {NID_commonName, id}},
                   {{}, {}, {"urn:torii:device:" + id}}};
  return build_certificate(t, &*issuer, nullptr, now, lifetime, random);
}

Result<std::string> make_csr(const SecretBytes& key_pem, std::string_view common_name) {
  const ErrorQueueScope errors;
  if (auto s = check_common_name(common_name); !s) return tl::unexpected(s.error());
  auto key = load_p256_private_key(key_pem);
  if (!key) return tl::unexpected(key.error());
  const ReqPtr csr(X509_REQ_new());
  if (!csr) return openssl_failure("X509_REQ_new");
  if (X509_REQ_set_version(csr.get(), X509_REQ_VERSION_1) != 1) return openssl_failure("X509_REQ_set_version");
  if (auto s = add_name_entry(X509_REQ_get_subject_name(csr.get()), NID_commonName, common_name); !s) {
    return tl::unexpected(s.error());
  }
  if (X509_REQ_set_pubkey(csr.get(), key->get()) != 1) return openssl_failure("X509_REQ_set_pubkey");
  if (X509_REQ_sign(csr.get(), key->get(), EVP_sha256()) <= 0) return openssl_failure("X509_REQ_sign");
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), csr.get()) != 1) return openssl_failure("PEM_write_bio_X509_REQ");
  return std::string(bio_contents(bio.get()));
}

Result<std::string> make_crl(const Issuer& ca, const std::vector<RevokedEntry>& revoked, std::uint64_t crl_number,
                             TimePoint now, std::chrono::seconds next_update_in) {
  const ErrorQueueScope errors;
  if (next_update_in <= std::chrono::seconds::zero()) return invalid("CRL next update must be in the future");
  auto issuer = load_issuer(ca);
  if (!issuer) return tl::unexpected(issuer.error());

  const CrlPtr crl(X509_CRL_new());
  if (!crl) return openssl_failure("X509_CRL_new");
  if (X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1) return openssl_failure("X509_CRL_set_version");
  if (X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer->certificate.get())) != 1) {
    return openssl_failure("X509_CRL_set_issuer_name");
  }
  const TimePtr this_update(ASN1_TIME_set(nullptr, to_time_t(now)));
  const TimePtr next_update(ASN1_TIME_set(nullptr, to_time_t(now + next_update_in)));
  if (!this_update || !next_update || X509_CRL_set1_lastUpdate(crl.get(), this_update.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update.get()) != 1) {
    return openssl_failure("setting CRL times");
  }

  for (const auto& entry : revoked) {
    auto serial = parse_serial_hex(entry.serial_hex);
    if (!serial) return tl::unexpected(serial.error());
    const TimePtr date(ASN1_TIME_set(nullptr, to_time_t(entry.revoked_at)));
    RevokedPtr item(X509_REVOKED_new());
    if (!date || !item || X509_REVOKED_set_serialNumber(item.get(), serial->get()) != 1 ||
        X509_REVOKED_set_revocationDate(item.get(), date.get()) != 1) {
      return openssl_failure("building a CRL entry");
    }
    if (X509_CRL_add0_revoked(crl.get(), item.get()) != 1) return openssl_failure("X509_CRL_add0_revoked");
    static_cast<void>(item.release());  // owned by the CRL now
  }

  const IntegerPtr number(ASN1_INTEGER_new());
  if (!number || ASN1_INTEGER_set_uint64(number.get(), crl_number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return openssl_failure("adding cRLNumber");
  }
  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, issuer->certificate.get(), nullptr, nullptr, crl.get(), 0);
  const ExtensionPtr aki(X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!aki || X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1) return openssl_failure("adding authorityKeyIdentifier");

  if (X509_CRL_sort(crl.get()) != 1) return openssl_failure("X509_CRL_sort");
  if (X509_CRL_sign(crl.get(), issuer->key.get(), EVP_sha256()) <= 0) return openssl_failure("X509_CRL_sign");
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) return openssl_failure("PEM_write_bio_X509_CRL");
  return std::string(bio_contents(bio.get()));
}

Result<CertificateInfo> inspect_certificate(std::string_view pem) {
  const ErrorQueueScope errors;
  auto cert = load_certificate(pem, "certificate");
  if (!cert) return tl::unexpected(cert.error());
  X509* x = cert->get();

  CertificateInfo info;
  info.subject_cn = name_entry(X509_get_subject_name(x), NID_commonName);
  info.issuer_cn = name_entry(X509_get_issuer_name(x), NID_commonName);
  info.serial_hex = integer_hex(X509_get0_serialNumber(x));
  auto not_before = from_asn1_time(X509_get0_notBefore(x));
  auto not_after = from_asn1_time(X509_get0_notAfter(x));
  if (!not_before) return tl::unexpected(not_before.error());
  if (!not_after) return tl::unexpected(not_after.error());
  info.not_before = *not_before;
  info.not_after = *not_after;
  info.is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;

  const GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      int type = 0;
      const void* value = GENERAL_NAME_get0_value(name, &type);
      if (type == GEN_DNS) {
        info.dns_names.push_back(ia5_text(static_cast<const ASN1_IA5STRING*>(value)));
      } else if (type == GEN_URI) {
        info.uris.push_back(ia5_text(static_cast<const ASN1_IA5STRING*>(value)));
      } else if (type == GEN_IPADD) {
        const auto* octets = static_cast<const ASN1_OCTET_STRING*>(value);
        const ByteView bytes(ASN1_STRING_get0_data(octets), static_cast<std::size_t>(ASN1_STRING_length(octets)));
        IpAddress ip;
        if (bytes.size() == 4) {
          ip.v4 = true;
          ip.bytes[10] = ip.bytes[11] = 0xff;  // IPv4-mapped form, as IpAddress holds it
          std::copy(bytes.begin(), bytes.end(), ip.bytes.begin() + 12);
        } else if (bytes.size() == 16) {
          std::copy(bytes.begin(), bytes.end(), ip.bytes.begin());
        } else {
          return fail(Errc::corrupt, "certificate has an IP address SAN that is neither 4 nor 16 octets");
        }
        info.ip_addresses.push_back(ip.to_string());
      }
    }
  }

  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (X509_digest(x, EVP_sha256(), digest.data(), &length) != 1) return openssl_failure("X509_digest");
  info.fingerprint_sha256_hex = hex_encode(ByteView(digest.data(), length));
  return info;
}

Status verify_certificate_chain(std::string_view leaf_pem, const std::vector<std::string>& intermediate_pems,
                                std::string_view root_pem, TimePoint at, std::optional<std::string_view> crl_pem) {
  const ErrorQueueScope errors;
  auto leaf = load_certificate(leaf_pem, "leaf certificate");
  if (!leaf) return tl::unexpected(leaf.error());
  auto root = load_certificate(root_pem, "root certificate");
  if (!root) return tl::unexpected(root.error());

  const X509StackPtr untrusted(sk_X509_new_null());
  if (!untrusted) return openssl_failure("sk_X509_new_null");
  for (const auto& pem : intermediate_pems) {
    auto cert = load_certificate(pem, "intermediate certificate");
    if (!cert) return tl::unexpected(cert.error());
    if (sk_X509_push(untrusted.get(), cert->get()) == 0) return openssl_failure("sk_X509_push");
    static_cast<void>(cert->release());  // owned by the stack now
  }

  const StorePtr store(X509_STORE_new());
  if (!store) return openssl_failure("X509_STORE_new");
  if (X509_STORE_add_cert(store.get(), root->get()) != 1) return openssl_failure("X509_STORE_add_cert");
  unsigned long flags = X509_V_FLAG_X509_STRICT;
  if (crl_pem) {
    auto bio = read_bio(as_bytes(*crl_pem), "CRL");
    if (!bio) return tl::unexpected(bio.error());
    const CrlPtr crl(PEM_read_bio_X509_CRL(bio->get(), nullptr, no_passphrase, nullptr));
    if (!crl) return invalid("CRL is not a PEM certificate revocation list");
    if (X509_STORE_add_crl(store.get(), crl.get()) != 1) return openssl_failure("X509_STORE_add_crl");
    // Checks the leaf only: intermediates are under the operator's own control.
    flags |= X509_V_FLAG_CRL_CHECK;
  }

  const StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx) return openssl_failure("X509_STORE_CTX_new");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf->get(), untrusted.get()) != 1) {
    return openssl_failure("X509_STORE_CTX_init");
  }
  X509_STORE_CTX_set_flags(ctx.get(), flags);
  X509_STORE_CTX_set_time(ctx.get(), 0, to_time_t(at));
  if (X509_verify_cert(ctx.get()) == 1) return ok();

  const int error = X509_STORE_CTX_get_error(ctx.get());
  const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  const std::string message =
      fmt::format("certificate chain does not verify: {} (at depth {})", X509_verify_cert_error_string(error), depth);
  if (error == X509_V_ERR_CERT_HAS_EXPIRED) return fail(Errc::expired, message);
  return fail(Errc::authentication_failed, message);
}

Status check_key_matches_certificate(const SecretBytes& key_pem, std::string_view certificate_pem) {
  const ErrorQueueScope errors;
  auto key = load_private_key(key_pem);
  if (!key) return tl::unexpected(key.error());
  auto cert = load_certificate(certificate_pem, "certificate");
  if (!cert) return tl::unexpected(cert.error());
  if (EVP_PKEY_eq(X509_get0_pubkey(cert->get()), key->get()) != 1) {
    return fail(Errc::conflict, "private key does not match the certificate's public key");
  }
  return ok();
}

}  // namespace torii::crypto

#include "crypto/x509.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

#include "base/file.h"
#include "crypto/sodium.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::crypto {
namespace {

using namespace std::chrono_literals;
using std::chrono::system_clock;

constexpr auto kYear = std::chrono::seconds(365 * 24h);

// --- Helpers: the openssl command-line tool as an independent second opinion ------------------

struct CommandResult {
  int exit_status = -1;
  std::string output;  // stdout and stderr
};

CommandResult run(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::filesystem::path write(const testing::TempDir& dir, const std::string& name, std::string_view text) {
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string read(const std::filesystem::path& path) {
  const auto data = read_file(path);
  EXPECT_TRUE(data) << path;
  return data ? to_string(*data) : std::string();
}

long long epoch_seconds(system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// PEM <-> DER, so tests can flip bytes inside the encoding.
struct Pem {
  std::string label;
  Bytes der;
};
Pem decode_pem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long length = 0;
  Pem out;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &length) == 1) {
    out.label = name;
    out.der.assign(data, data + length);
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  return out;
}
std::string encode_pem(const Pem& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio(bio.get(), pem.label.c_str(), "", pem.der.data(), static_cast<long>(pem.der.size()));
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}
// Flips one bit of the first occurrence of `needle` in the DER (inside the TBS when the
// needle is the subject CN).
std::string flip_in_tbs(std::string_view pem, std::string_view needle) {
  Pem decoded = decode_pem(pem);
  const std::string der = to_string(decoded.der);
  const std::size_t at = der.find(needle);
  EXPECT_NE(at, std::string::npos);
  decoded.der[at] ^= 0x01;
  return encode_pem(decoded);
}
// Flips a bit in the last byte of the DER: the end of the signature's s value.
std::string flip_in_signature(std::string_view pem) {
  Pem decoded = decode_pem(pem);
  decoded.der.back() ^= 0x01;
  return encode_pem(decoded);
}

SecretBytes new_key() {
  auto key = generate_p256_key();
  EXPECT_TRUE(key) << key.error().message;
  return key ? std::move(*key) : SecretBytes();
}

// A root -> issuing CA hierarchy at a fixed fake time.
class Pki : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = make_root_ca(root_key, "torii root", clock.now(), 10 * kYear, random);
    ASSERT_TRUE(root) << root.error().message;
    root_pem = *root;
    auto issuing = make_issuing_ca({root_pem, &root_key}, issuing_key, "torii issuing", clock.now(), 5 * kYear, random);
    ASSERT_TRUE(issuing) << issuing.error().message;
    issuing_pem = *issuing;
  }

  [[nodiscard]] Issuer issuing() const { return {issuing_pem, &issuing_key}; }

  std::string device_certificate(std::string_view device_id, const SecretBytes& key) {
    auto csr = make_csr(key, "whatever");
    EXPECT_TRUE(csr) << csr.error().message;
    auto cert = issue_device_certificate(issuing(), csr.value_or(""), device_id, clock.now(), kYear, random);
    EXPECT_TRUE(cert) << cert.error().message;
    return cert.value_or("");
  }

  // `openssl verify` at the fake clock's time (the tool otherwise uses the real clock).
  CommandResult openssl_verify(std::string_view leaf, std::string extra = "") {
    const auto root_file = write(dir, "root.pem", root_pem);
    const auto issuing_file = write(dir, "issuing.pem", issuing_pem);
    const auto leaf_file = write(dir, "leaf.pem", leaf);
    return run(fmt::format("openssl verify -attime {} {} -CAfile {} -untrusted {} {}", epoch_seconds(clock.now()),
                           extra, quoted(root_file), quoted(issuing_file), quoted(leaf_file)));
  }

  std::string openssl_text(std::string_view pem, const char* command = "x509") {
    const auto file = write(dir, "show.pem", pem);
    return run(fmt::format("openssl {} -noout -text -in {}", command, quoted(file))).output;
  }

  testing::TempDir dir;
  testing::FakeClock clock;
  testing::SeededRandom random{42};
  SecretBytes root_key = new_key();
  SecretBytes issuing_key = new_key();
  std::string root_pem;
  std::string issuing_pem;
};

// --- Keys ------------------------------------------------------------------------------------

TEST(X509Keys, GeneratesDistinctPkcs8P256Keys) {
  const SecretBytes a = new_key();
  const SecretBytes b = new_key();
  const std::string a_text = to_string(a.view());
  EXPECT_TRUE(a_text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
  EXPECT_FALSE(equal_constant_time(a.view(), b.view()));

  const auto pub = public_key_pem(a);
  ASSERT_TRUE(pub) << pub.error().message;
  EXPECT_TRUE(pub->starts_with("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_EQ(pub->find("PRIVATE"), std::string::npos);

  testing::TempDir dir;
  const auto text = run("openssl pkey -noout -text -in " + quoted(write(dir, "k.pem", a_text))).output;
  EXPECT_NE(text.find("prime256v1"), std::string::npos) << text;
}

TEST(X509Keys, RefusesGarbageAndEncryptedKeysWithoutPrompting) {
  const SecretBytes garbage(as_bytes("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
  EXPECT_TRUE(public_key_pem(garbage).error().is(Errc::invalid_argument));
  EXPECT_TRUE(public_key_pem(SecretBytes()).error().is(Errc::invalid_argument));

  // An encrypted PKCS#8 key must fail rather than ask for a passphrase on the terminal.
  testing::TempDir dir;
  const SecretBytes key = new_key();
  const auto plain = write(dir, "k.pem", to_string(key.view()));
  const auto encrypted = dir / "enc.pem";
  ASSERT_EQ(run(fmt::format("openssl pkey -in {} -out {} -aes256 -passout pass:secret </dev/null", quoted(plain),
                            quoted(encrypted)))
                .exit_status,
            0);
  const auto result = public_key_pem(SecretBytes(as_bytes(read(encrypted))));
  ASSERT_FALSE(result);
  EXPECT_TRUE(result.error().is(Errc::invalid_argument));
}

// --- Certificate profiles --------------------------------------------------------------------

TEST_F(Pki, RootIsSelfSignedCaWithBackdatedValidity) {
  const auto info = inspect_certificate(root_pem);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->subject_cn, "torii root");
  EXPECT_EQ(info->issuer_cn, "torii root");
  EXPECT_TRUE(info->is_ca);
  EXPECT_EQ(info->not_before, clock.now() - 5min);
  EXPECT_EQ(info->not_after, clock.now() + 10 * kYear);
  EXPECT_EQ(info->fingerprint_sha256_hex.size(), 64u);
  ASSERT_FALSE(info->serial_hex.empty());
  EXPECT_LE(info->serial_hex.size(), 32u);
  EXPECT_NE(info->serial_hex.front(), '0');
  EXPECT_EQ(info->serial_hex.find_first_not_of("0123456789abcdef"), std::string::npos);

  const std::string text = openssl_text(root_pem);
  for (const char* expected : {"Version: 3 (0x2)", "ecdsa-with-SHA256", "CA:TRUE", "Certificate Sign, CRL Sign",
                               "X509v3 Subject Key Identifier", "X509v3 Authority Key Identifier"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  EXPECT_EQ(text.find("pathlen"), std::string::npos);
}

TEST_F(Pki, IssuingCaIsLimitedToSigningLeaves) {
  const auto info = inspect_certificate(issuing_pem);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->subject_cn, "torii issuing");
  EXPECT_EQ(info->issuer_cn, "torii root");
  EXPECT_TRUE(info->is_ca);
  const std::string text = openssl_text(issuing_pem);
  EXPECT_NE(text.find("CA:TRUE, pathlen:0"), std::string::npos) << text;
  EXPECT_NE(text.find("Certificate Sign, CRL Sign"), std::string::npos) << text;
  EXPECT_TRUE(verify_certificate_chain(issuing_pem, {}, root_pem, clock.now()));
}

TEST_F(Pki, ServerChainVerifiesHereAndWithOpenssl) {
  const SecretBytes key = new_key();
  const auto cert = issue_server_certificate(
      issuing(), key, {{"torii.local", "*.torii.example"}, {"192.168.1.10", "fd00::1"}}, clock.now(), 90 * 24h, random);
  ASSERT_TRUE(cert) << cert.error().message;

  const auto info = inspect_certificate(*cert);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->subject_cn, "torii.local");
  EXPECT_EQ(info->issuer_cn, "torii issuing");
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"torii.local", "*.torii.example"}));
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"192.168.1.10", "fd00::1"}));
  EXPECT_TRUE(info->uris.empty());

  const auto ours = verify_certificate_chain(*cert, {issuing_pem}, root_pem, clock.now());
  EXPECT_TRUE(ours) << ours.error().message;
  const auto theirs = openssl_verify(*cert);
  EXPECT_EQ(theirs.exit_status, 0) << theirs.output;
  EXPECT_NE(theirs.output.find(": OK"), std::string::npos) << theirs.output;
  const auto as_server = openssl_verify(*cert, "-purpose sslserver");
  EXPECT_EQ(as_server.exit_status, 0) << as_server.output;

  const std::string text = openssl_text(*cert);
  for (const char* expected : {"TLS Web Server Authentication", "DNS:torii.local", "IP Address:192.168.1.10",
                               "CA:FALSE", "Digital Signature"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  EXPECT_TRUE(check_key_matches_certificate(key, *cert));
}

TEST_F(Pki, ServerNamesAreValidated) {
  const SecretBytes key = new_key();
  const auto issue = [&](SubjectAltNames names) {
    return issue_server_certificate(issuing(), key, names, clock.now(), 24h, random);
  };
  EXPECT_TRUE(issue({}).error().is(Errc::invalid_argument));
  for (const char* bad : {"", "a..b", "-a.example", "a-.example", "a b.example", "a,IP:1.2.3.4", "*", "a.*.example",
                          "xn--\xc3\xbc.example"}) {
    EXPECT_TRUE(issue({{bad}, {}}).error().is(Errc::invalid_argument)) << bad;
  }
  for (const char* bad : {"1.2.3", "1.2.3.4.5", "300.1.1.1", "localhost", "1.2.3.4/32"}) {
    EXPECT_TRUE(issue({{}, {bad}}).error().is(Errc::invalid_argument)) << bad;
  }
  EXPECT_TRUE(issue({{}, {"10.0.0.1"}}));
  EXPECT_TRUE(issue({{"localhost"}, {}}));
}

TEST_F(Pki, DeviceChainVerifiesHereAndWithOpenssl) {
  const std::string cert = device_certificate("sensor-42", new_key());
  const auto info = inspect_certificate(cert);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->subject_cn, "sensor-42");
  EXPECT_EQ(info->uris, std::vector<std::string>{"urn:torii:device:sensor-42"});
  EXPECT_TRUE(info->dns_names.empty());
  EXPECT_FALSE(info->is_ca);

  const auto ours = verify_certificate_chain(cert, {issuing_pem}, root_pem, clock.now());
  EXPECT_TRUE(ours) << ours.error().message;
  const auto theirs = openssl_verify(cert, "-purpose sslclient");
  EXPECT_EQ(theirs.exit_status, 0) << theirs.output;
  EXPECT_NE(theirs.output.find(": OK"), std::string::npos) << theirs.output;

  const std::string text = openssl_text(cert);
  for (const char* expected : {"URI:urn:torii:device:sensor-42", "TLS Web Client Authentication", "CA:FALSE",
                               "Digital Signature", "O = torii device, CN = sensor-42"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  EXPECT_EQ(text.find("Server Authentication"), std::string::npos);
}

// --- Rejections --------------------------------------------------------------------------------

TEST_F(Pki, TamperedCertificateIsRejected) {
  const std::string cert = device_certificate("sensor-42", new_key());
  for (const std::string& tampered : {flip_in_tbs(cert, "sensor-42"), flip_in_signature(cert)}) {
    const auto ours = verify_certificate_chain(tampered, {issuing_pem}, root_pem, clock.now());
    ASSERT_FALSE(ours);
    EXPECT_TRUE(ours.error().is(Errc::authentication_failed));
    EXPECT_NE(ours.error().message.find("signature failure"), std::string::npos) << ours.error().message;
    const auto theirs = openssl_verify(tampered);
    EXPECT_NE(theirs.exit_status, 0) << theirs.output;
  }
}

TEST_F(Pki, ExpiredLeafIsRejected) {
  // A whole hierarchy issued in 2020, with a one-hour leaf.
  clock.set(system_clock::time_point(std::chrono::seconds(1'577'836'800)));  // 2020-01-01T00:00:00Z
  SetUp();
  const auto csr = make_csr(new_key(), "x");
  ASSERT_TRUE(csr);
  const auto cert = issue_device_certificate(issuing(), *csr, "old-device", clock.now(), 1h, random);
  ASSERT_TRUE(cert) << cert.error().message;

  EXPECT_TRUE(verify_certificate_chain(*cert, {issuing_pem}, root_pem, clock.now() + 30min));
  const auto later = clock.now() + 2h;
  const auto ours = verify_certificate_chain(*cert, {issuing_pem}, root_pem, later);
  ASSERT_FALSE(ours);
  EXPECT_TRUE(ours.error().is(Errc::expired));
  EXPECT_NE(ours.error().message.find("certificate has expired"), std::string::npos) << ours.error().message;

  clock.set(later);
  const auto at_time = openssl_verify(*cert);
  EXPECT_NE(at_time.exit_status, 0);
  EXPECT_NE(at_time.output.find("certificate has expired"), std::string::npos) << at_time.output;
  // And at the real time, without -attime.
  const auto now = run(fmt::format("openssl verify -CAfile {} -untrusted {} {}", quoted(dir / "root.pem"),
                                   quoted(dir / "issuing.pem"), quoted(dir / "leaf.pem")));
  EXPECT_NE(now.exit_status, 0);
  EXPECT_NE(now.output.find("certificate has expired"), std::string::npos) << now.output;
}

TEST_F(Pki, NotYetValidLeafIsRejected) {
  const auto cert = device_certificate("early", new_key());
  const auto ours = verify_certificate_chain(cert, {issuing_pem}, root_pem, clock.now() - 1h);
  ASSERT_FALSE(ours);
  EXPECT_NE(ours.error().message.find("not yet valid"), std::string::npos) << ours.error().message;
}

TEST_F(Pki, LeafFromAnotherCaIsRejected) {
  const SecretBytes other_root_key = new_key();
  const SecretBytes other_issuing_key = new_key();
  const auto other_root = make_root_ca(other_root_key, "torii root", clock.now(), kYear, random);
  ASSERT_TRUE(other_root);
  // Same names as the real hierarchy: only the keys tell them apart.
  const auto other_issuing =
      make_issuing_ca({*other_root, &other_root_key}, other_issuing_key, "torii issuing", clock.now(), kYear, random);
  ASSERT_TRUE(other_issuing);
  const auto csr = make_csr(new_key(), "x");
  ASSERT_TRUE(csr);
  const auto cert =
      issue_device_certificate({*other_issuing, &other_issuing_key}, *csr, "intruder", clock.now(), kYear, random);
  ASSERT_TRUE(cert);

  EXPECT_TRUE(verify_certificate_chain(*cert, {*other_issuing}, *other_root, clock.now()));
  const auto with_our_intermediate = verify_certificate_chain(*cert, {issuing_pem}, root_pem, clock.now());
  ASSERT_FALSE(with_our_intermediate);
  EXPECT_TRUE(with_our_intermediate.error().is(Errc::authentication_failed));
  const auto with_theirs = verify_certificate_chain(*cert, {*other_issuing}, root_pem, clock.now());
  ASSERT_FALSE(with_theirs);
  EXPECT_TRUE(with_theirs.error().is(Errc::authentication_failed));
  EXPECT_NE(openssl_verify(*cert).exit_status, 0);
  // A leaf alone, without its intermediate, does not chain to the root either.
  const auto own = device_certificate("d", new_key());
  EXPECT_FALSE(verify_certificate_chain(own, {}, root_pem, clock.now()));
}

TEST_F(Pki, RevokedDeviceIsRejectedWithCrl) {
  const std::string revoked = device_certificate("lost-device", new_key());
  const std::string good = device_certificate("kept-device", new_key());
  const auto revoked_info = inspect_certificate(revoked);
  ASSERT_TRUE(revoked_info);

  // Upper case is accepted for the serial too; the CRL must say the same number.
  std::string upper = revoked_info->serial_hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto crl = make_crl(issuing(), {{upper, clock.now() - 1min}}, 7, clock.now(), 24h);
  ASSERT_TRUE(crl) << crl.error().message;
  const std::string crl_text = openssl_text(*crl, "crl");
  EXPECT_NE(crl_text.find("X509v3 CRL Number"), std::string::npos) << crl_text;
  EXPECT_NE(crl_text.find("X509v3 Authority Key Identifier"), std::string::npos) << crl_text;

  const auto ours = verify_certificate_chain(revoked, {issuing_pem}, root_pem, clock.now(), *crl);
  ASSERT_FALSE(ours);
  EXPECT_TRUE(ours.error().is(Errc::authentication_failed));
  EXPECT_NE(ours.error().message.find("certificate revoked"), std::string::npos) << ours.error().message;
  EXPECT_TRUE(verify_certificate_chain(good, {issuing_pem}, root_pem, clock.now(), *crl));
  // Without the CRL, revocation is not checked.
  EXPECT_TRUE(verify_certificate_chain(revoked, {issuing_pem}, root_pem, clock.now()));

  const auto crl_file = write(dir, "crl.pem", *crl);
  const std::string crl_args = "-crl_check -CRLfile " + quoted(crl_file);
  const auto theirs = openssl_verify(revoked, crl_args);
  EXPECT_NE(theirs.exit_status, 0) << theirs.output;
  EXPECT_NE(theirs.output.find("certificate revoked"), std::string::npos) << theirs.output;
  const auto theirs_good = openssl_verify(good, crl_args);
  EXPECT_EQ(theirs_good.exit_status, 0) << theirs_good.output;

  // A CRL past its nextUpdate fails closed.
  const auto stale = verify_certificate_chain(good, {issuing_pem}, root_pem, clock.now() + 25h, *crl);
  ASSERT_FALSE(stale);
  EXPECT_NE(stale.error().message.find("CRL has expired"), std::string::npos) << stale.error().message;
}

TEST_F(Pki, CrlRefusesBadSerials) {
  for (const char* bad : {"", "-1", "xyz", "0x10", "12 34"}) {
    EXPECT_TRUE(make_crl(issuing(), {{bad, clock.now()}}, 1, clock.now(), 24h).error().is(Errc::invalid_argument))
        << bad;
  }
  EXPECT_TRUE(make_crl(issuing(), {{std::string(41, '1'), clock.now()}}, 1, clock.now(), 24h)
                  .error()
                  .is(Errc::invalid_argument));
  EXPECT_TRUE(make_crl(issuing(), {}, 1, clock.now(), 24h));
}

// --- CSR handling ----------------------------------------------------------------------------

TEST_F(Pki, DeviceCertificateIgnoresWhatTheCsrAsksFor) {
  const SecretBytes key = new_key();
  const auto key_file = write(dir, "device.key", to_string(key.view()));
  const auto csr_file = dir / "device.csr";
  const auto made =
      run(fmt::format("openssl req -new -key {} -out {} -subj '/O=torii operators/CN=admin' "
                      "-addext 'subjectAltName=DNS:evil.example,URI:urn:torii:device:other,IP:10.0.0.1' "
                      "-addext 'basicConstraints=critical,CA:TRUE' -addext 'extendedKeyUsage=serverAuth,codeSigning'",
                      quoted(key_file), quoted(csr_file)));
  ASSERT_EQ(made.exit_status, 0) << made.output;

  const auto cert = issue_device_certificate(issuing(), read(csr_file), "sensor-7", clock.now(), kYear, random);
  ASSERT_TRUE(cert) << cert.error().message;
  const auto info = inspect_certificate(*cert);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->subject_cn, "sensor-7");
  EXPECT_EQ(info->uris, std::vector<std::string>{"urn:torii:device:sensor-7"});
  EXPECT_TRUE(info->dns_names.empty());
  EXPECT_TRUE(info->ip_addresses.empty());
  EXPECT_FALSE(info->is_ca);
  EXPECT_TRUE(check_key_matches_certificate(key, *cert));

  const std::string text = openssl_text(*cert);
  for (const char* absent : {"admin", "operators", "evil", "other", "Code Signing", "Server Authentication"}) {
    EXPECT_EQ(text.find(absent), std::string::npos) << absent << "\n" << text;
  }
}

TEST_F(Pki, CsrWithBadSignatureIsRefused) {
  const auto csr = make_csr(new_key(), "sensor");
  ASSERT_TRUE(csr);
  for (const std::string& tampered : {flip_in_signature(*csr), flip_in_tbs(*csr, "sensor")}) {
    const auto cert = issue_device_certificate(issuing(), tampered, "sensor", clock.now(), kYear, random);
    ASSERT_FALSE(cert);
    EXPECT_TRUE(cert.error().is(Errc::authentication_failed)) << cert.error().message;
  }
}

TEST_F(Pki, CsrWithNonP256KeyIsRefused) {
  const auto csr_file = dir / "rsa.csr";
  for (const char* algorithm :
       {"-newkey rsa:2048", "-newkey ec -pkeyopt ec_paramgen_curve:secp384r1", "-newkey ed25519"}) {
    const auto made = run(fmt::format("openssl req -new {} -nodes -keyout {} -out {} -subj /CN=dev", algorithm,
                                      quoted(dir / "other.key"), quoted(csr_file)));
    ASSERT_EQ(made.exit_status, 0) << made.output;
    const auto cert = issue_device_certificate(issuing(), read(csr_file), "dev", clock.now(), kYear, random);
    ASSERT_FALSE(cert) << algorithm;
    EXPECT_TRUE(cert.error().is(Errc::invalid_argument)) << cert.error().message;
    EXPECT_NE(cert.error().message.find("P-256"), std::string::npos) << cert.error().message;
  }
  // Nor can such a key sign anything here.
  const SecretBytes rsa(as_bytes(read(dir / "other.key")));
  EXPECT_TRUE(make_csr(rsa, "dev").error().is(Errc::invalid_argument));
}

TEST_F(Pki, BadDeviceIdsAreRefused) {
  const auto csr = make_csr(new_key(), "x");
  ASSERT_TRUE(csr);
  for (const std::string& bad :
       {std::string(), std::string(65, 'a'), std::string("a b"), std::string("a/b"), std::string("dev;rm"),
        std::string("caf\xc3\xa9"), std::string("a\0b", 3), std::string("a:b")}) {
    const auto cert = issue_device_certificate(issuing(), *csr, bad, clock.now(), kYear, random);
    ASSERT_FALSE(cert);
    EXPECT_TRUE(cert.error().is(Errc::invalid_argument));
  }
  EXPECT_TRUE(issue_device_certificate(issuing(), *csr, std::string(64, 'a'), clock.now(), kYear, random));
  EXPECT_TRUE(issue_device_certificate(issuing(), *csr, "A.b_c-9", clock.now(), kYear, random));
}

// --- Keys against certificates, malformed input -----------------------------------------------

TEST_F(Pki, KeyCertificateMismatchIsDetected) {
  EXPECT_TRUE(check_key_matches_certificate(root_key, root_pem));
  EXPECT_TRUE(check_key_matches_certificate(issuing_key, issuing_pem));
  const auto mismatch = check_key_matches_certificate(issuing_key, root_pem);
  ASSERT_FALSE(mismatch);
  EXPECT_TRUE(mismatch.error().is(Errc::conflict));
  EXPECT_EQ(mismatch.error().message.find("BEGIN"), std::string::npos);

  // Signing with a key that is not the issuer's is refused before anything is signed.
  const auto csr = make_csr(new_key(), "x");
  ASSERT_TRUE(csr);
  EXPECT_TRUE(issue_device_certificate({issuing_pem, &root_key}, *csr, "d", clock.now(), kYear, random)
                  .error()
                  .is(Errc::invalid_argument));
}

TEST_F(Pki, MalformedInputIsInvalidArgument) {
  const auto csr = make_csr(new_key(), "x");
  ASSERT_TRUE(csr);
  EXPECT_TRUE(inspect_certificate("not a certificate").error().is(Errc::invalid_argument));
  EXPECT_TRUE(inspect_certificate(*csr).error().is(Errc::invalid_argument));
  EXPECT_TRUE(
      verify_certificate_chain("junk", {issuing_pem}, root_pem, clock.now()).error().is(Errc::invalid_argument));
  EXPECT_TRUE(
      verify_certificate_chain(issuing_pem, {"junk"}, root_pem, clock.now()).error().is(Errc::invalid_argument));
  EXPECT_TRUE(
      verify_certificate_chain(issuing_pem, {}, root_pem, clock.now(), "junk").error().is(Errc::invalid_argument));
  EXPECT_TRUE(
      issue_device_certificate(issuing(), "junk", "d", clock.now(), kYear, random).error().is(Errc::invalid_argument));
  EXPECT_TRUE(issue_device_certificate({issuing_pem, nullptr}, *csr, "d", clock.now(), kYear, random)
                  .error()
                  .is(Errc::invalid_argument));
  EXPECT_TRUE(
      issue_device_certificate(issuing(), *csr, "d", clock.now(), 0s, random).error().is(Errc::invalid_argument));
  EXPECT_TRUE(make_root_ca(root_key, "", clock.now(), kYear, random).error().is(Errc::invalid_argument));
  EXPECT_TRUE(
      make_root_ca(root_key, std::string(65, 'x'), clock.now(), kYear, random).error().is(Errc::invalid_argument));
  EXPECT_TRUE(make_root_ca(root_key, "a\nb", clock.now(), kYear, random).error().is(Errc::invalid_argument));
  EXPECT_TRUE(make_csr(root_key, "").error().is(Errc::invalid_argument));
  EXPECT_TRUE(std::string(1u << 21, 'A').size() > 0 &&
              inspect_certificate(std::string(1u << 21, 'A')).error().is(Errc::invalid_argument));

  // A leaf cannot act as a CA, even with its own key.
  const SecretBytes server_key = new_key();
  const auto server = issue_server_certificate(issuing(), server_key, {{"a.example"}, {}}, clock.now(), kYear, random);
  ASSERT_TRUE(server);
  EXPECT_TRUE(issue_device_certificate({*server, &server_key}, *csr, "d", clock.now(), kYear, random)
                  .error()
                  .is(Errc::invalid_argument));
}

// --- Serial numbers ----------------------------------------------------------------------------

class ConstantRandom final : public Random {
 public:
  explicit ConstantRandom(std::uint8_t value) : value_(value) {}
  void fill(std::span<std::uint8_t> out) override { std::fill(out.begin(), out.end(), value_); }

 private:
  std::uint8_t value_;
};

TEST_F(Pki, SerialsAre128BitPositiveAndUnpredictable) {
  ConstantRandom ones(0xff);
  const auto cert = make_root_ca(root_key, "r", clock.now(), kYear, ones);
  ASSERT_TRUE(cert);
  EXPECT_EQ(inspect_certificate(*cert)->serial_hex, "7fffffffffffffffffffffffffffffff");

  ConstantRandom zeros(0);
  const auto refused = make_root_ca(root_key, "r", clock.now(), kYear, zeros);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::crypto_error));

  SystemRandom system;
  const auto a = make_root_ca(root_key, "r", clock.now(), kYear, system);
  const auto b = make_root_ca(root_key, "r", clock.now(), kYear, system);
  ASSERT_TRUE(a && b);
  EXPECT_NE(inspect_certificate(*a)->serial_hex, inspect_certificate(*b)->serial_hex);
}

}  // namespace
}  // namespace torii::crypto

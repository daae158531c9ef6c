#include "pki/certificate_authority.h"

#include <gtest/gtest.h>

#include "crypto/x509.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::pki {
namespace {

using namespace std::chrono_literals;

class CertificateAuthorityTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    ca_ = std::make_unique<CertificateAuthority>(*store_, *keys_, clock_, random_, config::PkiConfig{});
  }

  std::string device_csr(std::string_view cn = "ignored") {
    auto key = crypto::generate_p256_key();
    return *crypto::make_csr(*key, cn);
  }

  std::unique_ptr<CertificateAuthority> ca_;
};

TEST_F(CertificateAuthorityTest, FirstStartCreatesTheHierarchyOnce) {
  auto first = ca_->initialise({"localhost", "127.0.0.1"});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->created_root && first->created_issuing && first->issued_server_certificate);
  auto second = ca_->initialise({"localhost", "127.0.0.1"});
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->created_root || second->created_issuing || second->issued_server_certificate);

  auto creds = ca_->server_credentials();
  ASSERT_TRUE(creds) << creds.error().message;
  EXPECT_TRUE(crypto::check_key_matches_certificate(creds->private_key_pem, creds->certificate_chain_pem));
  auto info = crypto::inspect_certificate(creds->certificate_chain_pem);
  EXPECT_EQ(info->dns_names, std::vector<std::string>{"localhost"});
  EXPECT_EQ(info->ip_addresses, std::vector<std::string>{"127.0.0.1"});
  EXPECT_TRUE(crypto::verify_certificate_chain(creds->certificate_chain_pem, {*ca_->issuing_certificate_pem()},
                                               *ca_->root_certificate_pem(), clock_.now()));
}

TEST_F(CertificateAuthorityTest, CaKeysAreSealedAtRest) {
  ASSERT_TRUE(ca_->initialise({"localhost"}));
  for (const char* name : {"ca.root.key", "ca.issuing.key", "tls.server.key"}) {
    auto row = store_->secrets().find(name);
    ASSERT_TRUE(row && *row) << name;
    EXPECT_EQ(to_string((*row)->sealed).find("PRIVATE KEY"), std::string::npos) << name;
  }
}

TEST_F(CertificateAuthorityTest, ServerCertificateRenewedAtTwoThirdsOrWhenNamesChange) {
  ASSERT_TRUE(ca_->initialise({"localhost"}));
  const std::string first_chain = ca_->server_credentials()->certificate_chain_pem;
  clock_.advance(24h * 59);
  EXPECT_FALSE(ca_->initialise({"localhost"})->issued_server_certificate);
  clock_.advance(24h * 2);  // day 61 of 90
  EXPECT_TRUE(ca_->initialise({"localhost"})->issued_server_certificate);
  EXPECT_NE(ca_->server_credentials()->certificate_chain_pem, first_chain);
  EXPECT_TRUE(ca_->initialise({"localhost", "gateway.example"})->issued_server_certificate);
  EXPECT_EQ(crypto::inspect_certificate(ca_->server_credentials()->certificate_chain_pem)->dns_names.size(), 2u);
}

TEST_F(CertificateAuthorityTest, DeviceCertificateIsBoundToTheDeviceAndVerifies) {
  ASSERT_TRUE(ca_->initialise({"localhost"}));
  auto cert = ca_->issue_device_certificate(device_csr("admin"), "sensor-17");
  ASSERT_TRUE(cert) << cert.error().message;
  EXPECT_EQ(cert->device_id, "sensor-17");
  EXPECT_EQ(cert->subject, "sensor-17");
  EXPECT_EQ(cert->not_after - cert->not_before, to_unix_millis(from_unix_millis(0) + 24h * 90 + 5min));
  EXPECT_TRUE(crypto::verify_certificate_chain(cert->pem, {*ca_->issuing_certificate_pem()},
                                               *ca_->root_certificate_pem(), clock_.now()));
  auto stored = store_->certificates().find_by_fingerprint(cert->fingerprint_sha256);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->serial_hex, cert->serial_hex);
  EXPECT_FALSE(ca_->issue_device_certificate("not a csr", "sensor-18"));
  EXPECT_FALSE(ca_->issue_device_certificate(device_csr(), "bad id with spaces"));
}

TEST_F(CertificateAuthorityTest, RevokedDeviceAppearsInTheCrlAndFailsVerification) {
  ASSERT_TRUE(ca_->initialise({"localhost"}));
  auto good = ca_->issue_device_certificate(device_csr(), "good");
  auto bad = ca_->issue_device_certificate(device_csr(), "bad");
  ASSERT_TRUE(good && bad);
  ASSERT_TRUE(ca_->revoke(bad->serial_hex, "key compromise"));
  auto crl = ca_->revocation_list();
  ASSERT_TRUE(crl) << crl.error().message;
  const std::vector<std::string> chain{*ca_->issuing_certificate_pem()};
  const std::string root = *ca_->root_certificate_pem();
  EXPECT_TRUE(crypto::verify_certificate_chain(good->pem, chain, root, clock_.now(), *crl));
  auto refused = crypto::verify_certificate_chain(bad->pem, chain, root, clock_.now(), *crl);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("revoked"), std::string::npos);
  EXPECT_TRUE(ca_->revoke("deadbeef", "unknown").error().is(Errc::not_found));
}

TEST_F(CertificateAuthorityTest, ARevocationListLapsesAndAFreshOneReplacesIt) {
  ASSERT_TRUE(ca_->initialise({"localhost"}));
  auto device = ca_->issue_device_certificate(device_csr(), "d1");
  ASSERT_TRUE(device);
  const std::vector<std::string> chain{*ca_->issuing_certificate_pem()};
  const std::string root = *ca_->root_certificate_pem();
  const std::string first = *ca_->revocation_list();
  clock_.advance(25h);  // past nextUpdate (24 h): the gateway must not keep using it
  EXPECT_FALSE(crypto::verify_certificate_chain(device->pem, chain, root, clock_.now(), first));
  const std::string fresh = *ca_->revocation_list();
  EXPECT_TRUE(crypto::verify_certificate_chain(device->pem, chain, root, clock_.now(), fresh));
}

TEST_F(CertificateAuthorityTest, ExpiryQueryListsCertificatesExpiringSoonest) {
  ASSERT_TRUE(ca_->initialise({"localhost"}));
  clock_.advance(24h * 10);
  auto device = ca_->issue_device_certificate(device_csr(), "d1");
  ASSERT_TRUE(device);
  auto soon = ca_->expiring_within(24h * 85);  // server cert (day 90) yes, device (day 100) no
  ASSERT_TRUE(soon);
  ASSERT_EQ(soon->size(), 1u);
  EXPECT_EQ((*soon)[0].kind, "server");
  auto later = ca_->expiring_within(24h * 95);
  ASSERT_EQ(later->size(), 2u);
  EXPECT_EQ((*later)[1].device_id, "d1");
}

TEST_F(CertificateAuthorityTest, CredentialsSurviveARestartWithTheSameKek) {
  ASSERT_TRUE(ca_->initialise({"localhost"}));
  const std::string chain = ca_->server_credentials()->certificate_chain_pem;
  ca_.reset();
  keys_.reset();
  store_.reset();
  SetUp();
  auto again = ca_->initialise({"localhost"});
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->created_root);
  EXPECT_EQ(ca_->server_credentials()->certificate_chain_pem, chain);
}

}  // namespace
}  // namespace torii::pki

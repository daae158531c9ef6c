#include "identity/enrolment.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <thread>
#include <vector>

#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;

class EnrolmentTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    ca_ = std::make_unique<pki::CertificateAuthority>(*store_, *keys_, clock_, random_, config::PkiConfig{});
    ASSERT_TRUE(ca_->initialise({"localhost"}));
    registry_ = std::make_unique<DeviceRegistry>(*store_, *keys_, *ca_, clock_);
    enrolment_ = std::make_unique<Enrolment>(*store_, *registry_, clock_, random_);
  }

  // A device awaiting enrolment and its token.
  EnrolmentTicket awaiting(const std::string& id) {
    NewDevice spec;
    spec.id = id;
    auto made = enrolment_->create_device(spec, "user:admin", 24h);
    EXPECT_TRUE(made) << (made ? "" : made.error().message);
    return made ? made->second : EnrolmentTicket{};
  }

  // A CSR made as a device makes it, asking for whatever subject it likes.
  std::string device_csr(std::string_view common_name = "pump-1") {
    auto key = crypto::generate_p256_key();
    EXPECT_TRUE(key);
    auto csr = crypto::make_csr(*key, common_name);
    EXPECT_TRUE(csr);
    return csr ? *csr : std::string();
  }

  EnrolOutcome enrol(std::string_view token, std::string_view csr) {
    auto outcome = enrolment_->enrol(token, csr);
    EXPECT_TRUE(outcome) << (outcome ? "" : outcome.error().message);
    return outcome ? std::move(*outcome) : EnrolOutcome{};
  }

  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<DeviceRegistry> registry_;
  std::unique_ptr<Enrolment> enrolment_;
};

TEST_F(EnrolmentTest, ADeviceAwaitingEnrolmentHasNoCertificateOrKeyAndItsTokenIsStoredOnlyHashed) {
  NewDevice spec;
  spec.id = "pump-1";
  auto made = enrolment_->create_device(spec, "user:admin", 24h);
  ASSERT_TRUE(made) << made.error().message;
  const auto& [bundle, ticket] = *made;
  EXPECT_FALSE(bundle.certificate);
  EXPECT_FALSE(bundle.private_key_pem);
  EXPECT_EQ(bundle.device.status, store::kDeviceStatusActive);
  EXPECT_EQ(ticket.token.size(), 43U);  // 32 bytes, base64url without padding
  EXPECT_EQ(ticket.expires_at, to_unix_millis(clock_.now() + 24h));
  auto certs = store_->certificates().list_for_device("pump-1");
  ASSERT_TRUE(certs);
  EXPECT_TRUE(certs->empty());
  auto stored = store_->enrolment_tokens().find_for_device("pump-1");
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_NE((*stored)->token_hash, ticket.token);
  EXPECT_EQ((*stored)->token_hash.find(ticket.token), std::string::npos);
  EXPECT_EQ((*stored)->created_by, "user:admin");
  // A CSR and enrolment together are one request too many.
  NewDevice both;
  both.id = "pump-2";
  both.csr_pem = device_csr();
  both.enrolment = true;
  auto refused = registry_->create(both);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::invalid_argument));
}

TEST_F(EnrolmentTest, ATokenIsUsedOnceAndTheCertificateNamesTheDeviceWhateverTheCsrAsks) {
  const auto ticket = awaiting("pump-1");
  auto key = crypto::generate_p256_key();
  ASSERT_TRUE(key);
  auto csr = crypto::make_csr(*key, "someone-else");
  ASSERT_TRUE(csr);
  const auto first = enrol(ticket.token, *csr);
  ASSERT_TRUE(first.enrolled);
  EXPECT_FALSE(first.refused);
  EXPECT_EQ(first.device_id, "pump-1");
  const auto& cert = first.enrolled->certificate;
  EXPECT_EQ(cert.device_id, "pump-1");
  EXPECT_NE(cert.subject.find("pump-1"), std::string::npos);
  EXPECT_EQ(cert.subject.find("someone-else"), std::string::npos);
  EXPECT_TRUE(crypto::check_key_matches_certificate(*key, cert.pem));
  auto root = ca_->root_certificate_pem();
  auto issuing = ca_->issuing_certificate_pem();
  ASSERT_TRUE(root && issuing);
  EXPECT_EQ(first.enrolled->ca_bundle_pem, *issuing + *root);
  EXPECT_TRUE(crypto::verify_certificate_chain(cert.pem, {*issuing}, *root, clock_.now()));

  const auto again = enrol(ticket.token, device_csr());
  EXPECT_FALSE(again.enrolled);
  EXPECT_EQ(again.refused, EnrolmentRefusal::used);
  auto certs = store_->certificates().list_for_device("pump-1");
  ASSERT_TRUE(certs);
  EXPECT_EQ(certs->size(), 1U);
}

TEST_F(EnrolmentTest, TwoRequestsRacingWithOneTokenGetOneCertificate) {
  const auto ticket = awaiting("pump-1");
  const std::string csr = device_csr();
  constexpr int kThreads = 8;
  std::atomic<int> enrolled{0};
  std::atomic<int> refused{0};
  std::latch start(kThreads);  // all at once: each finds the token unused before any uses it
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      auto outcome = enrolment_->enrol(ticket.token, csr);
      if (outcome && outcome->enrolled) ++enrolled;
      if (outcome && outcome->refused == EnrolmentRefusal::used) ++refused;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(enrolled.load(), 1);
  EXPECT_EQ(refused.load(), kThreads - 1);
  auto certs = store_->certificates().list_for_device("pump-1");
  ASSERT_TRUE(certs);
  EXPECT_EQ(certs->size(), 1U);
}

TEST_F(EnrolmentTest, ATokenExpiresAfterItsLifetime) {
  const auto ticket = awaiting("pump-1");
  clock_.advance(24h);
  const auto late = enrol(ticket.token, device_csr());
  EXPECT_FALSE(late.enrolled);
  EXPECT_EQ(late.refused, EnrolmentRefusal::expired);

  auto fresh = enrolment_->issue_token("pump-1", "user:admin", 1h);
  ASSERT_TRUE(fresh) << fresh.error().message;
  clock_.advance(59min);
  EXPECT_TRUE(enrol(fresh->token, device_csr()).enrolled);
}

TEST_F(EnrolmentTest, ANewTokenReplacesTheDevicesEarlierOne) {
  const auto first = awaiting("pump-1");
  auto second = enrolment_->issue_token("pump-1", "user:admin", 24h);
  ASSERT_TRUE(second);
  EXPECT_NE(second->token, first.token);
  const auto old = enrol(first.token, device_csr());
  EXPECT_FALSE(old.enrolled);
  EXPECT_EQ(old.refused, EnrolmentRefusal::unknown);
  EXPECT_TRUE(enrol(second->token, device_csr()).enrolled);
}

TEST_F(EnrolmentTest, ABadCsrIsRefusedAndKeepsTheTokenForTheNextTry) {
  const auto ticket = awaiting("pump-1");
  const auto garbage = enrol(ticket.token, "not a CSR");
  EXPECT_FALSE(garbage.enrolled);
  EXPECT_EQ(garbage.refused, EnrolmentRefusal::bad_csr);
  // A CSR whose signature does not verify (proof of possession fails).
  std::string forged = device_csr();
  forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(enrol(ticket.token, forged).refused, EnrolmentRefusal::bad_csr);
  auto stored = store_->enrolment_tokens().find_for_device("pump-1");
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_FALSE((*stored)->used_at);
  EXPECT_TRUE(enrol(ticket.token, device_csr()).enrolled);
}

TEST_F(EnrolmentTest, ADisabledDeviceIsRefusedAndGetsNoToken) {
  const auto ticket = awaiting("pump-1");
  ASSERT_TRUE(registry_->disable("pump-1", "stolen"));
  const auto outcome = enrol(ticket.token, device_csr());
  EXPECT_FALSE(outcome.enrolled);
  EXPECT_EQ(outcome.refused, EnrolmentRefusal::device_disabled);
  auto issued = enrolment_->issue_token("pump-1", "user:admin", 24h);
  ASSERT_FALSE(issued);
  EXPECT_TRUE(issued.error().is(Errc::permission_denied));
  auto unknown = enrolment_->issue_token("pump-9", "user:admin", 24h);
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(unknown.error().is(Errc::not_found));
  EXPECT_EQ(enrol(crypto::random_token(random_), device_csr()).refused, EnrolmentRefusal::unknown);
}

TEST_F(EnrolmentTest, ADeviceWhoseCertificateWasRevokedEnrolsAgain) {
  NewDevice spec;
  spec.id = "pump-1";
  ASSERT_TRUE(registry_->create(spec));
  ASSERT_TRUE(registry_->revoke_certificates("pump-1", "lost"));
  auto ticket = enrolment_->issue_token("pump-1", "user:admin", 24h);
  ASSERT_TRUE(ticket);
  const auto outcome = enrol(ticket->token, device_csr());
  ASSERT_TRUE(outcome.enrolled);
  EXPECT_FALSE(outcome.enrolled->certificate.revoked_at);
}

}  // namespace
}  // namespace torii::identity

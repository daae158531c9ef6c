#include "agent/identity.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "agent/enrolment.h"
#include "crypto/x509.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::agent {
namespace {

using std::chrono::hours;
using namespace std::chrono_literals;

// A root CA and a device certificate for a key made "on the device", as enrolment returns
// them.
class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_key_ = *crypto::generate_p256_key();
    ca_pem_ = *crypto::make_root_ca(ca_key_, "test root", clock_.now(), hours(24 * 365), random_);
    device_key_ = *crypto::generate_p256_key();
    const auto csr = *crypto::make_csr(device_key_, "ignored");
    device_pem_ =
        *crypto::issue_device_certificate({ca_pem_, &ca_key_}, csr, "pump-7", clock_.now(), hours(24 * 30), random_);
  }

  testing::FakeClock clock_;
  testing::SeededRandom random_;
  testing::TempDir dir_;
  crypto::SecretBytes ca_key_;
  std::string ca_pem_;
  crypto::SecretBytes device_key_;
  std::string device_pem_;
};

TEST_F(IdentityTest, AStoredIdentityLoadsWithItsDeviceAndLifetime) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7"));
  struct stat st {};
  ASSERT_EQ(::stat((state / "key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  ASSERT_EQ(::stat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);

  const auto identity = load_identity(state, clock_.now());
  ASSERT_TRUE(identity) << identity.error().message;
  EXPECT_EQ(identity->device_id, "pump-7");
  EXPECT_GT(identity->not_after, clock_.now() + hours(24 * 29));
}

TEST_F(IdentityTest, NothingEnrolledIsNotFound) {
  const auto identity = load_identity(dir_ / "empty", clock_.now());
  ASSERT_FALSE(identity);
  EXPECT_TRUE(identity.error().is(Errc::not_found));
  EXPECT_NE(identity.error().message.find("torii agent enroll"), std::string::npos);
}

TEST_F(IdentityTest, AKeyOthersCanReadIsRefused) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7"));
  ASSERT_EQ(::chmod((state / "key.pem").c_str(), 0640), 0);
  const auto identity = load_identity(state, clock_.now());
  ASSERT_FALSE(identity);
  EXPECT_TRUE(identity.error().is(Errc::permission_denied));
  EXPECT_NE(identity.error().message.find("key.pem"), std::string::npos);
}

TEST_F(IdentityTest, AnExpiredCertificateNeedsANewEnrolment) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7"));
  const auto identity = load_identity(state, clock_.now() + hours(24 * 31));
  ASSERT_FALSE(identity);
  EXPECT_TRUE(identity.error().is(Errc::expired));
  EXPECT_NE(identity.error().message.find("enrol again"), std::string::npos);
}

TEST_F(IdentityTest, FilesThatDoNotBelongTogetherAreRefused) {
  const auto state = dir_ / "state";
  const auto other_key = *crypto::generate_p256_key();
  ASSERT_TRUE(store_identity(state, other_key, device_pem_, ca_pem_, "pump-7"));
  EXPECT_TRUE(load_identity(state, clock_.now()).error().is(Errc::corrupt));

  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-8"));
  EXPECT_TRUE(load_identity(state, clock_.now()).error().is(Errc::corrupt));
}

TEST(ServerUrl, OnlyHttpsWithAHostAndAnOptionalPort) {
  const auto plain = parse_server_url("https://torii.example");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->host, "torii.example");
  EXPECT_EQ(plain->port, 443);
  const auto with_port = parse_server_url("https://127.0.0.1:8443/");
  ASSERT_TRUE(with_port);
  EXPECT_EQ(with_port->host, "127.0.0.1");
  EXPECT_EQ(with_port->port, 8443);
  const auto v6 = parse_server_url("https://[::1]:8443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8443);
  for (const char* bad : {"http://torii.example", "torii.example:8443", "https://", "https://:8443", "https://host:0",
                          "https://host:65536", "https://host:84x3", "https://host/path", "https://user@host",
                          "https://host?x=1", "https://host:", "https://[::1"}) {
    const auto url = parse_server_url(bad);
    EXPECT_FALSE(url) << bad;
    if (!url) {
      EXPECT_TRUE(url.error().is(Errc::invalid_argument)) << bad;
    }
  }
}

}  // namespace
}  // namespace torii::agent

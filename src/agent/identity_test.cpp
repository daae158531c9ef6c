#include "agent/identity.h"

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/enrolment.h"
#include "base/file.h"
#include "crypto/sodium.h"
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
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
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

TEST_F(IdentityTest, ARenewedCertificateReplacesTheOldPair) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
  const auto before = load_identity(state, clock_.now());
  ASSERT_TRUE(before) << before.error().message;
  clock_.advance(hours(24 * 20));
  const auto new_key = *crypto::generate_p256_key();
  const auto renewed = *crypto::issue_device_certificate({ca_pem_, &ca_key_}, *crypto::make_csr(new_key, "pump-7"),
                                                         "pump-7", clock_.now(), hours(24 * 30), random_);
  ASSERT_TRUE(store_renewed_identity(state, new_key, renewed, ca_pem_, "pump-7"));
  const auto after = load_identity(state, clock_.now());
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_NE(after->certificate_serial, before->certificate_serial);
  EXPECT_GT(after->not_after, before->not_after);
  const auto key_bytes = read_file(state / "key.pem");
  ASSERT_TRUE(key_bytes);
  EXPECT_TRUE(crypto::check_key_matches_certificate(crypto::SecretBytes(*key_bytes), renewed));
  struct stat st {};
  ASSERT_EQ(::stat((state / "key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_FALSE(std::filesystem::exists(state / "renewed-key.pem"));
  EXPECT_FALSE(std::filesystem::exists(state / "renewed-certificate.pem"));
}

TEST_F(IdentityTest, ARenewedCertificateForAnotherKeyOrDeviceIsRefused) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
  const auto new_key = *crypto::generate_p256_key();
  const auto other_key = *crypto::generate_p256_key();
  const auto for_other_key = *crypto::issue_device_certificate(
      {ca_pem_, &ca_key_}, *crypto::make_csr(other_key, "pump-7"), "pump-7", clock_.now(), hours(24), random_);
  auto refused = store_renewed_identity(state, new_key, for_other_key, ca_pem_, "pump-7");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::corrupt));
  const auto for_other_device = *crypto::issue_device_certificate(
      {ca_pem_, &ca_key_}, *crypto::make_csr(new_key, "pump-8"), "pump-8", clock_.now(), hours(24), random_);
  refused = store_renewed_identity(state, new_key, for_other_device, ca_pem_, "pump-7");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::corrupt));
  // Nothing was written: the enrolled pair is still the one in use.
  const auto identity = load_identity(state, clock_.now());
  ASSERT_TRUE(identity) << identity.error().message;
  EXPECT_EQ(identity->certificate_serial, crypto::inspect_certificate(device_pem_)->serial_hex);
}

TEST_F(IdentityTest, ARenewalInterruptedAfterTheKeyIsFinishedAtTheNextLoad) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
  const auto new_key = *crypto::generate_p256_key();
  const auto renewed = *crypto::issue_device_certificate({ca_pem_, &ca_key_}, *crypto::make_csr(new_key, "pump-7"),
                                                         "pump-7", clock_.now(), hours(24), random_);
  // As if stopped between the two renames: the new key in place, its certificate staged.
  ASSERT_TRUE(write_file_atomic(state / "key.pem", new_key.view(), 0600));
  ASSERT_TRUE(write_file_atomic(state / "renewed-certificate.pem", as_bytes(renewed), 0644));
  const auto identity = load_identity(state, clock_.now());
  ASSERT_TRUE(identity) << identity.error().message;
  EXPECT_EQ(identity->certificate_serial, crypto::inspect_certificate(renewed)->serial_hex);
  EXPECT_FALSE(std::filesystem::exists(state / "renewed-certificate.pem"));
}

TEST_F(IdentityTest, NothingEnrolledIsNotFound) {
  const auto identity = load_identity(dir_ / "empty", clock_.now());
  ASSERT_FALSE(identity);
  EXPECT_TRUE(identity.error().is(Errc::not_found));
  EXPECT_NE(identity.error().message.find("torii agent enroll"), std::string::npos);
}

TEST_F(IdentityTest, AKeyOthersCanReadIsRefused) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
  ASSERT_EQ(::chmod((state / "key.pem").c_str(), 0640), 0);
  const auto identity = load_identity(state, clock_.now());
  ASSERT_FALSE(identity);
  EXPECT_TRUE(identity.error().is(Errc::permission_denied));
  EXPECT_NE(identity.error().message.find("key.pem"), std::string::npos);
}

TEST_F(IdentityTest, AnExpiredCertificateNeedsANewEnrolment) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
  const auto identity = load_identity(state, clock_.now() + hours(24 * 31));
  ASSERT_FALSE(identity);
  EXPECT_TRUE(identity.error().is(Errc::expired));
  EXPECT_NE(identity.error().message.find("enrol again"), std::string::npos);
}

TEST_F(IdentityTest, FilesThatDoNotBelongTogetherAreRefused) {
  const auto state = dir_ / "state";
  const auto other_key = *crypto::generate_p256_key();
  ASSERT_TRUE(store_identity(state, other_key, device_pem_, ca_pem_, "pump-7", std::nullopt));
  EXPECT_TRUE(load_identity(state, clock_.now()).error().is(Errc::corrupt));

  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-8", std::nullopt));
  EXPECT_TRUE(load_identity(state, clock_.now()).error().is(Errc::corrupt));
}

TEST_F(IdentityTest, TheCommandKeyIsStoredOwnerOnlyAndLoadsWithTheIdentity) {
  const auto state = dir_ / "state";
  const auto key = crypto::ed25519_generate().public_key;
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", key));
  struct stat st {};
  ASSERT_EQ(::stat((state / "command-key.pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const auto text = read_file(state / "command-key.pub", 4096);
  ASSERT_TRUE(text);
  EXPECT_EQ(torii::to_string(*text), base64url_encode(key) + "\n");

  const auto identity = load_identity(state, clock_.now());
  ASSERT_TRUE(identity) << identity.error().message;
  ASSERT_TRUE(identity->command_key.has_value());
  EXPECT_EQ(*identity->command_key, key);
}

TEST_F(IdentityTest, AnIdentityWithoutACommandKeyLoadsWithoutOneAndAnOldKeyGoes) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(
      store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", crypto::ed25519_generate().public_key));
  ASSERT_TRUE(std::filesystem::exists(state / "command-key.pub"));
  // Enrolled again with a console that sends no key: the old one belonged to the old enrolment.
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
  EXPECT_FALSE(std::filesystem::exists(state / "command-key.pub"));
  const auto identity = load_identity(state, clock_.now());
  ASSERT_TRUE(identity) << identity.error().message;
  EXPECT_FALSE(identity->command_key.has_value());
}

TEST_F(IdentityTest, ADamagedCommandKeyIsRefused) {
  const auto state = dir_ / "state";
  ASSERT_TRUE(store_identity(state, device_key_, device_pem_, ca_pem_, "pump-7", std::nullopt));
  for (const std::string& text :
       std::vector<std::string>{"", "not base64url!\n", base64url_encode(Bytes(31, 7)) + "\n"}) {
    ASSERT_TRUE(write_file_atomic(state / "command-key.pub", as_bytes(text), 0600));
    const auto identity = load_identity(state, clock_.now());
    ASSERT_FALSE(identity) << text;
    EXPECT_TRUE(identity.error().is(Errc::corrupt)) << text;
    EXPECT_NE(identity.error().message.find("command-key.pub"), std::string::npos);
  }
}

TEST(EnrolmentAnswer, TheCommandKeyIsReadWhenSentAndOptional) {
  const auto key = crypto::ed25519_generate().public_key;
  nlohmann::json answer = {{"device", "pump-7"},
                           {"certificate_pem", "CERT"},
                           {"ca_bundle_pem", "CA"},
                           {"command_key", base64url_encode(key)}};
  const auto with_key = parse_enrolment_answer(answer.dump());
  ASSERT_TRUE(with_key) << with_key.error().message;
  EXPECT_EQ(with_key->device_id, "pump-7");
  EXPECT_EQ(with_key->certificate_pem, "CERT");
  EXPECT_EQ(with_key->ca_bundle_pem, "CA");
  ASSERT_TRUE(with_key->command_key.has_value());
  EXPECT_EQ(*with_key->command_key, key);

  answer.erase("command_key");
  const auto without_key = parse_enrolment_answer(answer.dump());
  ASSERT_TRUE(without_key) << without_key.error().message;
  EXPECT_FALSE(without_key->command_key.has_value());
}

TEST(EnrolmentAnswer, ABadCommandKeyOrAMissingPartIsRefused) {
  const nlohmann::json good = {{"device", "pump-7"}, {"certificate_pem", "CERT"}, {"ca_bundle_pem", "CA"}};
  for (const nlohmann::json& key :
       {nlohmann::json(""), nlohmann::json("*"), nlohmann::json(base64url_encode(Bytes(16, 1))), nlohmann::json(42),
        nlohmann::json(nullptr)}) {
    auto answer = good;
    answer["command_key"] = key;
    const auto read = parse_enrolment_answer(answer.dump());
    ASSERT_FALSE(read) << key.dump();
    EXPECT_TRUE(read.error().is(Errc::corrupt));
  }
  for (const char* part : {"device", "certificate_pem", "ca_bundle_pem"}) {
    auto answer = good;
    answer.erase(part);
    EXPECT_FALSE(parse_enrolment_answer(answer.dump())) << part;
  }
  EXPECT_FALSE(parse_enrolment_answer("not json"));
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

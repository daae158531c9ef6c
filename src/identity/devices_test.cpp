#include "identity/devices.h"

#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "policy/profile.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;

class DeviceRegistryTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    ca_ = std::make_unique<pki::CertificateAuthority>(*store_, *keys_, clock_, random_, config::PkiConfig{});
    ASSERT_TRUE(ca_->initialise({"localhost"}));
    registry_ = std::make_unique<DeviceRegistry>(*store_, *keys_, *ca_, clock_);
  }

  DeviceBundle create(const std::string& id) {
    NewDevice spec;
    spec.id = id;
    auto bundle = registry_->create(spec);
    EXPECT_TRUE(bundle) << (bundle ? "" : bundle.error().message);
    return bundle ? std::move(*bundle) : DeviceBundle{};
  }

  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<DeviceRegistry> registry_;
};

TEST_F(DeviceRegistryTest, ADeviceGetsAKeyPairACertificateAndItsOwnDataKey) {
  auto bundle = create("pump-1");
  ASSERT_TRUE(bundle.private_key_pem);
  EXPECT_EQ(bundle.device.status, store::kDeviceStatusActive);
  EXPECT_EQ(bundle.device.organisation_id, kDefaultOrganisation);
  EXPECT_EQ(bundle.certificate->device_id, "pump-1");
  EXPECT_TRUE(crypto::check_key_matches_certificate(*bundle.private_key_pem, bundle.certificate->pem));
  const auto root = ca_->root_certificate_pem();
  const auto issuing = ca_->issuing_certificate_pem();
  EXPECT_EQ(bundle.ca_bundle_pem, *issuing + *root);
  EXPECT_TRUE(crypto::verify_certificate_chain(bundle.certificate->pem, {*issuing}, *root, clock_.now()));
  EXPECT_TRUE(keys_->seal(keys::device_key_id("pump-1"), as_bytes("x"), "ad"));
}

TEST_F(DeviceRegistryTest, AKeyMadeOnTheDeviceStaysThere) {
  auto key = crypto::generate_p256_key();
  NewDevice spec;
  spec.id = "valve-1";
  spec.csr_pem = *crypto::make_csr(*key, "anything");
  auto bundle = registry_->create(spec);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_FALSE(bundle->private_key_pem);
  EXPECT_TRUE(crypto::check_key_matches_certificate(*key, bundle->certificate->pem));
  EXPECT_EQ(bundle->certificate->subject.find("anything"), std::string::npos);
}

TEST_F(DeviceRegistryTest, BadIdsFieldsAndDuplicatesAreRefusedWithoutLeavingAnything) {
  for (const std::string& id :
       std::vector<std::string>{"", "Upper", "-dash", "with space", "a/b", std::string(64, 'a')}) {
    NewDevice spec;
    spec.id = id;
    auto r = registry_->create(spec);
    ASSERT_FALSE(r) << id;
    EXPECT_TRUE(r.error().is(Errc::invalid_argument)) << id;
  }
  NewDevice control;
  control.id = "ok-1";
  control.name = "line\nbreak";
  EXPECT_FALSE(registry_->create(control));
  control.name.clear();
  control.profile_id = "missing";
  EXPECT_FALSE(registry_->create(control));
  EXPECT_FALSE(*store_->devices().find("ok-1"));
  EXPECT_TRUE(store_->certificates().list_for_device("ok-1")->empty());

  create("twin");
  NewDevice again;
  again.id = "twin";
  auto dup = registry_->create(again);
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(Errc::already_exists));
  EXPECT_EQ(store_->certificates().list_for_device("twin")->size(), 1u);
}

TEST_F(DeviceRegistryTest, DisableEnableAndRevoke) {
  create("lamp-1");
  ASSERT_TRUE(registry_->disable("lamp-1", "maintenance"));
  EXPECT_EQ((*store_->devices().find("lamp-1"))->status, store::kDeviceStatusDisabled);
  auto key = crypto::generate_p256_key();
  EXPECT_TRUE(registry_->issue_certificate("lamp-1", *crypto::make_csr(*key, "x")).error().is(Errc::permission_denied));
  ASSERT_TRUE(registry_->enable("lamp-1"));
  ASSERT_TRUE(registry_->issue_certificate("lamp-1", *crypto::make_csr(*key, "x")));

  auto revoked = registry_->revoke_certificates("lamp-1", "lost");
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->size(), 2u);
  const auto lamp_certs = store_->certificates().list_for_device("lamp-1");
  for (const auto& c : *lamp_certs) EXPECT_TRUE(c.revoked_at);
  EXPECT_TRUE(registry_->disable("nope", "x").error().is(Errc::not_found));
  EXPECT_TRUE(registry_->revoke_certificates("nope", "x").error().is(Errc::not_found));
}

TEST_F(DeviceRegistryTest, DeletingADeviceRevokesItsCertificatesAndShredsItsData) {
  create("gone-1");
  const auto key_id = keys::device_key_id("gone-1");
  auto sealed = keys_->seal(key_id, as_bytes("reading"), "telemetry|gone-1");
  ASSERT_TRUE(sealed);
  ASSERT_TRUE(registry_->remove("gone-1"));
  EXPECT_FALSE(*store_->devices().find("gone-1"));
  const auto gone_certs = store_->certificates().list_for_device("gone-1");
  ASSERT_FALSE(gone_certs->empty());
  for (const auto& c : *gone_certs) EXPECT_TRUE(c.revoked_at);
  auto opened = keys_->open(key_id, *sealed, "telemetry|gone-1");
  ASSERT_FALSE(opened);
  EXPECT_TRUE(opened.error().is(Errc::not_found));
}

TEST_F(DeviceRegistryTest, DevicesUnusedForTooLongAreDisabled) {
  create("old-1");
  create("busy-1");
  clock_.advance(24h * 80);
  ASSERT_TRUE(store_->devices().touch_last_seen("busy-1", to_unix_millis(clock_.now())));
  clock_.advance(24h * 11);
  auto disabled = registry_->disable_unused(24h * 90);
  ASSERT_TRUE(disabled);
  EXPECT_EQ(*disabled, std::vector<std::string>{"old-1"});
  EXPECT_EQ((*store_->devices().find("old-1"))->disabled_reason, "unused for too long");
  EXPECT_EQ((*store_->devices().find("busy-1"))->status, store::kDeviceStatusActive);
}

TEST_F(DeviceRegistryTest, ProfilesAreValidatedBeforeTheyAreStored) {
  store::DeviceProfileRecord profile{"thermo", "default", "Thermometer", R"({"metrics":[{"name":"t","type":"x"}]})",
                                     0,        0};
  auto refused = registry_->put_profile(profile);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("metrics[0].type"), std::string::npos);
  profile.definition_json = std::string(policy::sample_environment_profile_json());
  ASSERT_TRUE(registry_->put_profile(profile));
  NewDevice spec;
  spec.id = "thermo-1";
  spec.profile_id = "thermo";
  EXPECT_TRUE(registry_->create(spec));
}

}  // namespace
}  // namespace torii::identity

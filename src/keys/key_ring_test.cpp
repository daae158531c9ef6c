#include "keys/key_ring.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "base/file.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::keys {
namespace {

const crypto::Argon2Params kFastArgon{1, 8u << 20};

class KeyRingTest : public ::testing::Test {
 protected:
  std::unique_ptr<store::Store> open_store() {
    auto s = store::sqlite::open_sqlite_store(dir_ / "torii.db");
    EXPECT_TRUE(s) << s.error().message;
    return std::move(*s);
  }
  KekOptions file_options() { return {config::KekSource::file, dir_ / "kek.key", nullptr, kFastArgon}; }
  KekOptions passphrase_options(std::string passphrase) {
    return {config::KekSource::passphrase,
            {},
            [p = std::move(passphrase)]() -> Result<std::string> { return p; },
            kFastArgon};
  }

  testing::TempDir dir_;
  crypto::SystemRandom random_;
  testing::FakeClock clock_;
};

TEST_F(KeyRingTest, KeyFileIsCreatedOwnerOnlyAndUnlocksAfterRestart) {
  auto store = open_store();
  auto first = unlock_kek(*store, file_options(), random_);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->created);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "kek.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto second = unlock_kek(*store, file_options(), random_);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(second->created);
  EXPECT_TRUE(crypto::equal_constant_time(first->kek.view(), second->kek.view()));
}

TEST_F(KeyRingTest, KeyFileReadableByOthersIsRefused) {
  auto store = open_store();
  ASSERT_TRUE(unlock_kek(*store, file_options(), random_));
  ASSERT_EQ(::chmod((dir_ / "kek.key").c_str(), 0644), 0);
  auto refused = unlock_kek(*store, file_options(), random_);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::permission_denied));
}

TEST_F(KeyRingTest, WrongKeyFileIsDetectedBeforeAnythingIsDecrypted) {
  auto store = open_store();
  ASSERT_TRUE(unlock_kek(*store, file_options(), random_));
  ASSERT_TRUE(write_file_atomic(dir_ / "kek.key", crypto::random_key(random_).view(), 0600));
  auto refused = unlock_kek(*store, file_options(), random_);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::authentication_failed));
  std::filesystem::remove(dir_ / "kek.key");
  EXPECT_TRUE(unlock_kek(*store, file_options(), random_).error().is(Errc::not_found));
}

TEST_F(KeyRingTest, PassphraseUnlocksOnlyWithTheSamePassphrase) {
  auto store = open_store();
  auto first = unlock_kek(*store, passphrase_options("a long operator passphrase"), random_);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "kek.key"));
  EXPECT_TRUE(unlock_kek(*store, passphrase_options("a long operator passphrase"), random_));
  auto wrong = unlock_kek(*store, passphrase_options("another long passphrase"), random_);
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(Errc::authentication_failed));
  EXPECT_NE(wrong.error().message.find("wrong passphrase"), std::string::npos);
  EXPECT_TRUE(unlock_kek(*store, file_options(), random_).error().is(Errc::conflict));
}

TEST_F(KeyRingTest, ShortPassphraseIsRefusedAtFirstStart) {
  auto store = open_store();
  EXPECT_TRUE(unlock_kek(*store, passphrase_options("short"), random_).error().is(Errc::invalid_argument));
}

TEST_F(KeyRingTest, SealedValuesOpenOnlyUnderTheirKeyAndRow) {
  auto store = open_store();
  auto kek = unlock_kek(*store, file_options(), random_);
  ASSERT_TRUE(kek);
  KeyRing ring(*store, std::move(kek->kek), random_, clock_);
  ASSERT_TRUE(ring.create_data_key(device_key_id("d1"), "device data"));
  ASSERT_TRUE(ring.create_data_key(device_key_id("d2"), "device data"));
  EXPECT_TRUE(ring.create_data_key(device_key_id("d1"), "device data").error().is(Errc::already_exists));

  auto sealed = ring.seal(device_key_id("d1"), as_bytes("{\"t\":21.5}"), "telemetry:1");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(to_string(ring.open(device_key_id("d1"), *sealed, "telemetry:1")->view()), "{\"t\":21.5}");
  // Moved to another row, or opened under another device's key: refused.
  EXPECT_TRUE(ring.open(device_key_id("d1"), *sealed, "telemetry:2").error().is(Errc::authentication_failed));
  EXPECT_TRUE(ring.open(device_key_id("d2"), *sealed, "telemetry:1").error().is(Errc::authentication_failed));
}

TEST_F(KeyRingTest, DestroyingADeviceKeyMakesItsDataUnreadableEvenAfterRestart) {
  Bytes sealed;
  {
    auto store = open_store();
    auto kek = unlock_kek(*store, file_options(), random_);
    KeyRing ring(*store, std::move(kek->kek), random_, clock_);
    ASSERT_TRUE(ring.create_data_key(device_key_id("d1"), "device data"));
    sealed = *ring.seal(device_key_id("d1"), as_bytes("secret reading"), "telemetry:1");
    EXPECT_TRUE(*ring.destroy_data_key(device_key_id("d1")));
    EXPECT_TRUE(ring.open(device_key_id("d1"), sealed, "telemetry:1").error().is(Errc::not_found));
    EXPECT_FALSE(*ring.destroy_data_key(device_key_id("d1")));
  }
  auto store = open_store();
  auto kek = unlock_kek(*store, file_options(), random_);
  KeyRing ring(*store, std::move(kek->kek), random_, clock_);
  EXPECT_TRUE(ring.open(device_key_id("d1"), sealed, "telemetry:1").error().is(Errc::not_found));
}

TEST_F(KeyRingTest, SystemSecretsSurviveRestartAndAreNotStoredInClear) {
  const std::string secret = "-----BEGIN PRIVATE KEY-----\nnot really\n";
  {
    auto store = open_store();
    auto kek = unlock_kek(*store, file_options(), random_);
    KeyRing ring(*store, std::move(kek->kek), random_, clock_);
    ASSERT_TRUE(ring.put_secret("ca.root.key", as_bytes(secret)));
    auto row = store->secrets().find("ca.root.key");
    ASSERT_TRUE(row && *row);
    EXPECT_EQ(to_string((*row)->sealed).find("PRIVATE KEY"), std::string::npos);
  }
  auto db = read_file(dir_ / "torii.db");
  ASSERT_TRUE(db);
  EXPECT_EQ(to_string(*db).find("PRIVATE KEY"), std::string::npos);

  auto store = open_store();
  auto kek = unlock_kek(*store, file_options(), random_);
  KeyRing ring(*store, std::move(kek->kek), random_, clock_);
  auto back = ring.get_secret("ca.root.key");
  ASSERT_TRUE(back && *back);
  EXPECT_EQ(to_string((*back)->view()), secret);
  EXPECT_FALSE(*ring.get_secret("missing"));
}

TEST_F(KeyRingTest, KeyFileLeftByAnInterruptedFirstStartIsAdopted) {
  const auto key = crypto::random_key(random_);
  ASSERT_TRUE(write_file_atomic(dir_ / "kek.key", key.view(), 0600));
  auto store = open_store();
  auto kek = unlock_kek(*store, file_options(), random_);
  ASSERT_TRUE(kek) << kek.error().message;
  EXPECT_TRUE(crypto::equal_constant_time(kek->kek.view(), key.view()));
  EXPECT_TRUE(unlock_kek(*store, file_options(), random_));
}

TEST_F(KeyRingTest, IncompleteKeyRecordsAreNeverReplacedByANewHierarchy) {
  auto store = open_store();
  auto kek = unlock_kek(*store, passphrase_options("a long operator passphrase"), random_);
  ASSERT_TRUE(kek);
  KeyRing ring(*store, std::move(kek->kek), random_, clock_);
  ASSERT_TRUE(ring.put_secret("ca.root.key", as_bytes("x")));
  ASSERT_TRUE(store->meta().remove("kek.check"));
  auto refused = unlock_kek(*store, passphrase_options("a long operator passphrase"), random_);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::corrupt));
  // Even with every record gone, wrapped keys in the store forbid starting over.
  for (const char* k : {"kek.source", "kek.salt", "kek.argon2id"}) ASSERT_TRUE(store->meta().remove(k));
  EXPECT_TRUE(unlock_kek(*store, passphrase_options("a long operator passphrase"), random_).error().is(Errc::corrupt));
}

}  // namespace
}  // namespace torii::keys

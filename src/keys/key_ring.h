// Envelope encryption at rest (JPCERT VI-1, IIIT I3/J2).
//
//   KEK (key-encryption key)      from a key file (0600) or an Argon2id-derived passphrase;
//    │                            never stored in the database
//    └─ data keys                 random 256-bit keys, stored wrapped (sealed) by the KEK
//        └─ sealed values         XChaCha20-Poly1305; the associated data binds each value
//                                 to its key id and to the row it belongs to
//
// Each device gets its own data key ("device:<id>"); destroying that key makes every value
// sealed under it unreadable (crypto-shredding), whatever copies of the rows remain.
// System secrets (CA keys, the TLS server key, the log signing key) are sealed under the
// "system" data key and kept in the SecretRepository.
//
// Threading: seal, open and the key operations may be called from several threads (the
// gateway's store writer seals on its own thread). Unwrapped data keys are cached in memory
// from their first use until destroy_data_key or the ring's destruction.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "config/config.h"
#include "crypto/secret.h"
#include "crypto/sodium.h"
#include "store/store.h"

namespace torii::keys {

struct KekOptions {
  config::KekSource source = config::KekSource::file;
  std::filesystem::path key_file;  // absolute, for source == file
  // For source == passphrase: asked only when needed (first start and every start after).
  std::function<Result<std::string>()> passphrase;
  crypto::Argon2Params argon2 = crypto::argon2_moderate();  // used when the KEK is first derived
  // false: a store without a key hierarchy is an error (not_found) instead of a first start.
  bool create_if_missing = true;
};

// Whether unlock_kek created a new key hierarchy or opened the existing one.
struct UnlockedKek {
  crypto::SecretBytes kek;
  bool created = false;
};

// First start (the store records no key hierarchy and holds no wrapped keys): makes the
// KEK (random key file, or salt + Argon2id) and records in the store's meta, in one
// transaction, which source was used and a check value sealed under the KEK. Incomplete
// records, or wrapped keys without records, fail with corrupt instead. Later
// starts: obtains the KEK the same way and proves it against the check value, failing with
// authentication_failed ("wrong passphrase or key file") before anything is decrypted.
[[nodiscard]] Result<UnlockedKek> unlock_kek(store::Store& store, const KekOptions& options, Random& random);

inline constexpr std::string_view kSystemKeyId = "system";
[[nodiscard]] std::string device_key_id(std::string_view device_id);

// The associated data binding what a device sent, sealed under its key, to its row: the
// gateway's store writer seals with these, and whoever reads the rows back (the admin
// requests, the console) opens with them.
[[nodiscard]] std::string telemetry_associated_data(std::string_view device_id, std::string_view kind,
                                                    UnixMillis received_at, std::string_view message_key);
[[nodiscard]] std::string latest_value_associated_data(std::string_view device_id, std::string_view metric);
[[nodiscard]] std::string mqtt_state_associated_data(std::string_view device_id, std::string_view kind,
                                                     std::string_view name);

class KeyRing {
 public:
  // The ring keeps references to store, random and clock: they must outlive it.
  KeyRing(store::Store& store, crypto::SecretBytes kek, Random& random, const Clock& clock);

  // Creates a random data key and stores it wrapped. Fails with already_exists.
  [[nodiscard]] Status create_data_key(std::string_view key_id, std::string_view purpose);
  // Creates the key when it does not exist yet.
  [[nodiscard]] Status ensure_data_key(std::string_view key_id, std::string_view purpose);
  // Erases the wrapped key (crypto-shredding). Returns false when there was none.
  [[nodiscard]] Result<bool> destroy_data_key(std::string_view key_id);

  // Seals plaintext under a data key; associated_data names the row (e.g. "telemetry:42")
  // and must be given again, unchanged, to open it.
  [[nodiscard]] Result<Bytes> seal(std::string_view key_id, ByteView plaintext, std::string_view associated_data);
  // The same under a device's key (device_key_id), made first when the device has none (one
  // registered before devices were given a key with their record). not_found when the device
  // is no longer registered: a writer sealing for a device deleted meanwhile, whose key the
  // registry destroyed after its rows, must not make it a new one.
  [[nodiscard]] Result<Bytes> seal_for_device(std::string_view device_id, ByteView plaintext,
                                              std::string_view associated_data);
  // not_found when the key was destroyed; authentication_failed for wrong data or AD.
  [[nodiscard]] Result<crypto::SecretBytes> open(std::string_view key_id, ByteView sealed,
                                                 std::string_view associated_data);

  // Named system secrets, sealed under the system key and bound to their name.
  [[nodiscard]] Status put_secret(std::string_view name, ByteView plaintext);
  [[nodiscard]] Result<std::optional<crypto::SecretBytes>> get_secret(std::string_view name);

 private:
  // Creates a device's key when it has none, in one transaction with a check that the device
  // is still registered (not_found otherwise).
  [[nodiscard]] Status ensure_device_data_key(std::string_view device_id);
  // Loads the key into the cache unless it is there.
  [[nodiscard]] Status cache_data_key(std::string_view key_id);

  store::Store& store_;
  crypto::SecretBytes kek_;
  Random& random_;
  const Clock& clock_;
  std::mutex mutex_;             // guards cache_, random_ and nonces_; never held while the store is called
  BlockRandom nonces_{random_};  // one draw from random_ per 170 nonces
  std::map<std::string, crypto::SecretBytes, std::less<>> cache_;
};

}  // namespace torii::keys

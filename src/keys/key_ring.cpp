#include "keys/key_ring.h"

#include <array>
#include <charconv>
#include <initializer_list>

#include <fmt/format.h>

#include "base/file.h"

namespace torii::keys {
namespace {

constexpr std::string_view kMetaSource = "kek.source";
constexpr std::string_view kMetaCheck = "kek.check";
constexpr std::string_view kMetaSalt = "kek.salt";
constexpr std::string_view kMetaArgon = "kek.argon2id";
constexpr std::string_view kCheckPlaintext = "torii key-encryption key check v1";

// The parts one after the other. The associated data of every message sealed are built this
// way, without a format string to interpret.
std::string joined(std::initializer_list<std::string_view> parts) {
  std::size_t size = 0;
  for (const auto part : parts) size += part.size();
  std::string out;
  out.reserve(size);
  for (const auto part : parts) out.append(part);
  return out;
}

std::string wrap_ad(std::string_view key_id, std::string_view purpose) {
  return fmt::format("torii:data-key\x1f{}\x1f{}", key_id, purpose);
}

std::string value_ad(std::string_view key_id, std::string_view associated_data) {
  return joined({"torii:value\x1f", key_id, "\x1f", associated_data});
}

Result<std::string> meta_text(store::MetaRepository& meta, std::string_view key) {
  auto value = meta.get(key);
  if (!value) return tl::unexpected(value.error());
  return *value ? to_string(**value) : std::string();
}

Result<crypto::SecretBytes> read_key_file(const std::filesystem::path& path) {
  if (auto st = check_owner_only(path); !st) return tl::unexpected(st.error());
  auto bytes = read_file(path, 1024);
  if (!bytes) return tl::unexpected(bytes.error());
  crypto::SecretBytes key(*bytes);
  std::fill(bytes->begin(), bytes->end(), std::uint8_t{0});
  if (key.size() != crypto::kAeadKeyBytes) {
    return fail(Errc::corrupt, fmt::format("{} does not hold a 32-byte key", path.string()));
  }
  return key;
}

// The length rule applies when the passphrase is chosen (first start); later, a short one
// is simply a wrong one.
Result<crypto::SecretBytes> derive_from_passphrase(const KekOptions& options, ByteView salt,
                                                   const crypto::Argon2Params& params, bool choosing) {
  if (!options.passphrase) return fail(Errc::invalid_argument, "no passphrase source configured");
  auto passphrase = options.passphrase();
  if (!passphrase) return tl::unexpected(passphrase.error());
  if (choosing && passphrase->size() < 12) {
    return fail(Errc::invalid_argument, "the passphrase must be at least 12 characters long");
  }
  auto key = crypto::argon2id_derive(*passphrase, salt, params);
  std::fill(passphrase->begin(), passphrase->end(), '\0');
  return key;
}

Result<crypto::Argon2Params> parse_argon_params(std::string_view text) {
  const auto comma = text.find(',');
  crypto::Argon2Params p{};
  if (comma == std::string_view::npos ||
      std::from_chars(text.data(), text.data() + comma, p.ops_limit).ec != std::errc() ||
      std::from_chars(text.data() + comma + 1, text.data() + text.size(), p.mem_limit_bytes).ec != std::errc()) {
    return fail(Errc::corrupt, "stored Argon2id parameters are unreadable");
  }
  return p;
}

}  // namespace

std::string device_key_id(std::string_view device_id) { return joined({"device:", device_id}); }

std::string telemetry_associated_data(std::string_view device_id, std::string_view kind, UnixMillis received_at,
                                      std::string_view message_key) {
  std::array<char, 24> at{};
  const auto end = std::to_chars(at.data(), at.data() + at.size(), received_at).ptr;
  return joined({"telemetry|", device_id, "|", kind, "|", std::string_view(at.data(), end), "|", message_key});
}

std::string latest_value_associated_data(std::string_view device_id, std::string_view metric) {
  return joined({"latest|", device_id, "|", metric});
}

std::string mqtt_state_associated_data(std::string_view device_id, std::string_view kind, std::string_view name) {
  return joined({"mqtt-state|", device_id, "|", kind, "|", name});
}

Result<UnlockedKek> unlock_kek(store::Store& store, const KekOptions& options, Random& random) {
  auto& meta = store.meta();
  const std::string wanted = options.source == config::KekSource::file ? "file" : "passphrase";
  auto recorded = meta_text(meta, kMetaSource);
  if (!recorded) return tl::unexpected(recorded.error());
  auto check = meta.get(kMetaCheck);
  if (!check) return tl::unexpected(check.error());
  auto salt_row = meta.get(kMetaSalt);
  if (!salt_row) return tl::unexpected(salt_row.error());
  auto system_key = store.data_keys().find(kSystemKeyId);
  if (!system_key) return tl::unexpected(system_key.error());

  const bool nothing_recorded = recorded->empty() && !*check && !*salt_row;
  if (nothing_recorded && *system_key) {
    // Data keys exist without the records that say how to unlock them: never start over,
    // that would replace the key hierarchy and lose every sealed value.
    return fail(Errc::corrupt,
                "the store holds wrapped keys but no key-encryption key records; restore the data "
                "directory from a backup");
  }
  if (!nothing_recorded && (recorded->empty() || !*check)) {
    return fail(Errc::corrupt,
                "the store's key-encryption key records are incomplete; restore the data directory "
                "from a backup");
  }

  if (nothing_recorded) {
    if (!options.create_if_missing) {
      return fail(Errc::not_found, "this data directory has no keys yet: start `torii server` once first");
    }
    // First start: make a new key hierarchy. The records are written in one transaction,
    // so a crash leaves either all of them or none.
    UnlockedKek out{crypto::SecretBytes(), true};
    Bytes salt;
    if (options.source == config::KekSource::file) {
      std::error_code ec;
      if (std::filesystem::exists(options.key_file, ec)) {
        // Left by an earlier first start that stopped before its records were committed
        // (nothing was sealed with it yet), or placed by the operator: adopt it.
        auto key = read_key_file(options.key_file);
        if (!key) return tl::unexpected(key.error());
        out.kek = std::move(*key);
      } else {
        out.kek = crypto::random_key(random);
        if (auto st = write_file_atomic(options.key_file, out.kek.view(), 0600); !st) {
          return tl::unexpected(st.error());
        }
      }
    } else {
      salt.resize(crypto::kArgonSaltBytes);
      random.fill(salt);
      auto key = derive_from_passphrase(options, salt, options.argon2, true);
      if (!key) return tl::unexpected(key.error());
      out.kek = std::move(*key);
    }
    auto sealed = crypto::aead_seal(out.kek, as_bytes(kCheckPlaintext), as_bytes(kMetaCheck), random);
    if (!sealed) return tl::unexpected(sealed.error());
    Status written = store.transaction([&]() -> Status {
      if (!salt.empty()) {
        if (auto st = meta.put(kMetaSalt, salt); !st) return st;
        const std::string params = fmt::format("{},{}", options.argon2.ops_limit, options.argon2.mem_limit_bytes);
        if (auto st = meta.put(kMetaArgon, as_bytes(params)); !st) return st;
      }
      if (auto st = meta.put(kMetaCheck, *sealed); !st) return st;
      return meta.put(kMetaSource, as_bytes(wanted));
    });
    if (!written) return tl::unexpected(written.error());
    return out;
  }

  if (*recorded != wanted) {
    return fail(Errc::conflict, fmt::format("this data directory's keys are protected by a {} but keys.kek_source "
                                            "is \"{}\"; set keys.kek_source = \"{}\"",
                                            *recorded == "file" ? "key file" : "passphrase", wanted, *recorded));
  }
  UnlockedKek out{crypto::SecretBytes(), false};
  if (options.source == config::KekSource::file) {
    auto key = read_key_file(options.key_file);
    if (!key) {
      if (key.error().is(Errc::not_found)) {
        return fail(Errc::not_found, fmt::format("the key file {} is missing: the store cannot be decrypted without "
                                                 "it (restore it from your backup)",
                                                 options.key_file.string()));
      }
      return tl::unexpected(key.error());
    }
    out.kek = std::move(*key);
  } else {
    auto salt = meta.get(kMetaSalt);
    auto params_text = meta_text(meta, kMetaArgon);
    if (!salt || !params_text) return fail(Errc::io_error, "cannot read the key derivation parameters");
    if (!*salt) return fail(Errc::corrupt, "the store has no passphrase salt");
    auto params = parse_argon_params(*params_text);
    if (!params) return tl::unexpected(params.error());
    auto key = derive_from_passphrase(options, **salt, *params, false);
    if (!key) return tl::unexpected(key.error());
    out.kek = std::move(*key);
  }
  if (!crypto::aead_open(out.kek, **check, as_bytes(kMetaCheck))) {
    return fail(Errc::authentication_failed, options.source == config::KekSource::file
                                                 ? "the key file does not unlock this store (wrong key file)"
                                                 : "the passphrase does not unlock this store (wrong passphrase)");
  }
  return out;
}

KeyRing::KeyRing(store::Store& store, crypto::SecretBytes kek, Random& random, const Clock& clock)
    : store_(store), kek_(std::move(kek)), random_(random), clock_(clock) {}

Status KeyRing::create_data_key(std::string_view key_id, std::string_view purpose) {
  crypto::SecretBytes key;
  {
    std::lock_guard lock(mutex_);
    key = crypto::random_key(random_);
  }
  auto wrapped = crypto::aead_seal(kek_, key.view(), as_bytes(wrap_ad(key_id, purpose)), random_);
  if (!wrapped) return tl::unexpected(wrapped.error());
  store::WrappedKey row{std::string(key_id), std::string(purpose), std::move(*wrapped), to_unix_millis(clock_.now())};
  // Not cached here: the key is read back from the store at first use, so a creation that
  // an enclosing transaction rolls back leaves nothing behind in memory either.
  return store_.data_keys().insert(row);
}

Status KeyRing::ensure_data_key(std::string_view key_id, std::string_view purpose) {
  auto found = store_.data_keys().find(key_id);
  if (!found) return tl::unexpected(found.error());
  if (*found) return ok();
  return create_data_key(key_id, purpose);
}

Status KeyRing::ensure_device_data_key(std::string_view device_id) {
  return store_.transaction([&]() -> Status {
    auto device = store_.devices().find(device_id);
    if (!device) return tl::unexpected(device.error());
    if (!*device) return fail(Errc::not_found, fmt::format("device '{}' is not registered", device_id));
    return ensure_data_key(device_key_id(device_id), "device");
  });
}

Result<bool> KeyRing::destroy_data_key(std::string_view key_id) {
  auto removed = store_.data_keys().remove(key_id);
  std::lock_guard lock(mutex_);
  if (auto it = cache_.find(key_id); it != cache_.end()) cache_.erase(it);
  return removed;
}

Status KeyRing::cache_data_key(std::string_view key_id) {
  {
    std::lock_guard lock(mutex_);
    if (cache_.contains(key_id)) return ok();
  }
  // The store is read without the ring's lock held: another thread may hold the store (a
  // transaction) while it waits for this lock.
  auto found = store_.data_keys().find(key_id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return fail(Errc::not_found, fmt::format("data key '{}' does not exist (destroyed?)", key_id));
  auto key = crypto::aead_open(kek_, (*found)->wrapped, as_bytes(wrap_ad(key_id, (*found)->purpose)));
  if (!key) return fail(Errc::authentication_failed, fmt::format("data key '{}' does not unwrap", key_id));
  std::lock_guard lock(mutex_);
  cache_.emplace(std::string(key_id), std::move(*key));
  return ok();
}

Result<Bytes> KeyRing::seal(std::string_view key_id, ByteView plaintext, std::string_view associated_data) {
  const auto ad = value_ad(key_id, associated_data);
  {
    std::lock_guard lock(mutex_);
    if (auto it = cache_.find(key_id); it != cache_.end())
      return crypto::aead_seal(it->second, plaintext, as_bytes(ad), nonces_);
  }
  if (auto st = cache_data_key(key_id); !st) return tl::unexpected(st.error());
  std::lock_guard lock(mutex_);
  auto it = cache_.find(key_id);
  if (it == cache_.end()) return fail(Errc::not_found, fmt::format("data key '{}' was destroyed", key_id));
  return crypto::aead_seal(it->second, plaintext, as_bytes(ad), nonces_);
}

Result<Bytes> KeyRing::seal_for_device(std::string_view device_id, ByteView plaintext,
                                       std::string_view associated_data) {
  const auto key_id = device_key_id(device_id);
  auto sealed = seal(key_id, plaintext, associated_data);
  if (sealed || !sealed.error().is(Errc::not_found)) return sealed;
  if (auto made = ensure_device_data_key(device_id); !made) return tl::unexpected(made.error());
  return seal(key_id, plaintext, associated_data);
}

Result<crypto::SecretBytes> KeyRing::open(std::string_view key_id, ByteView sealed, std::string_view associated_data) {
  if (auto st = cache_data_key(key_id); !st) return tl::unexpected(st.error());
  std::lock_guard lock(mutex_);
  auto it = cache_.find(key_id);
  if (it == cache_.end()) return fail(Errc::not_found, fmt::format("data key '{}' was destroyed", key_id));
  return crypto::aead_open(it->second, sealed, as_bytes(value_ad(key_id, associated_data)));
}

Status KeyRing::put_secret(std::string_view name, ByteView plaintext) {
  if (auto st = ensure_data_key(kSystemKeyId, "system secrets"); !st) return st;
  auto sealed = seal(kSystemKeyId, plaintext, fmt::format("secret:{}", name));
  if (!sealed) return tl::unexpected(sealed.error());
  return store_.secrets().put(
      {std::string(name), std::string(kSystemKeyId), std::move(*sealed), to_unix_millis(clock_.now())});
}

Result<std::optional<crypto::SecretBytes>> KeyRing::get_secret(std::string_view name) {
  auto found = store_.secrets().find(name);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return std::optional<crypto::SecretBytes>();
  auto opened = open((*found)->key_id, (*found)->sealed, fmt::format("secret:{}", name));
  if (!opened) return tl::unexpected(opened.error());
  return std::optional<crypto::SecretBytes>(std::move(*opened));
}

}  // namespace torii::keys

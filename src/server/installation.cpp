#include "server/installation.h"

#include <fmt/format.h>

#include "base/file.h"
#include "crypto/sodium.h"
#include "server/passphrase.h"
#include "store/sqlite/sqlite_store.h"

namespace torii::server {
namespace {

constexpr std::string_view kLogSigningKey = "log.signing.key";
constexpr std::string_view kLogPublicKeyMeta = "log.public_key";

std::filesystem::path inside(const std::filesystem::path& data_dir, const std::filesystem::path& p) {
  return p.is_absolute() ? p : data_dir / p;
}

}  // namespace

std::filesystem::path resolve_data_dir(const config::Config& config) {
  return std::filesystem::absolute(config.server.data_dir).lexically_normal();
}

std::filesystem::path security_log_dir(const config::Config& config) {
  return inside(resolve_data_dir(config), config.log.security_log_dir);
}

std::filesystem::path security_log_public_key_file(const config::Config& config) {
  return resolve_data_dir(config) / "security-log.pub";
}

Result<Installation> open_installation(const config::Config& config, const Clock& clock, Random& random,
                                       OpenOptions options) {
  Installation in;
  in.data_dir = resolve_data_dir(config);
  if (options.create_if_missing) {
    if (auto st = ensure_private_directory(in.data_dir); !st) return tl::unexpected(st.error());
  } else if (auto st = check_owner_only(in.data_dir); !st) {
    return tl::unexpected(st.error());
  }

  auto store = store::sqlite::open_sqlite_store(in.data_dir / "torii.db");
  if (!store) return tl::unexpected(store.error());
  in.store = std::move(*store);

  keys::KekOptions kek_options{config.keys.kek_source, inside(in.data_dir, config.keys.kek_file), nullptr,
                               crypto::argon2_moderate(), options.create_if_missing};
  const auto passphrase_file =
      config.keys.passphrase_file.empty() ? std::filesystem::path() : inside(in.data_dir, config.keys.passphrase_file);
  kek_options.passphrase = [passphrase_file] { return read_passphrase(passphrase_file); };
  if (options.fast_key_derivation_for_tests) kek_options.argon2 = {1, 8u << 20};
  auto kek = keys::unlock_kek(*in.store, kek_options, random);
  if (!kek) return tl::unexpected(kek.error());
  in.first_start = kek->created;
  in.keys = std::make_unique<keys::KeyRing>(*in.store, std::move(kek->kek), random, clock);
  in.ca = std::make_unique<pki::CertificateAuthority>(*in.store, *in.keys, clock, random, config.pki);
  return in;
}

Result<std::unique_ptr<events::SecurityLog>> open_security_log(const config::Config& config, Installation& installation,
                                                               const Clock& clock) {
  auto& keys = *installation.keys;
  auto signing = keys.get_secret(kLogSigningKey);
  if (!signing) return tl::unexpected(signing.error());
  crypto::SecretBytes signing_key;
  if (*signing) {
    signing_key = std::move(**signing);
  } else {
    auto pair = crypto::ed25519_generate();
    if (auto st = keys.put_secret(kLogSigningKey, pair.secret_key.view()); !st) return tl::unexpected(st.error());
    if (auto st = installation.store->meta().put(kLogPublicKeyMeta, pair.public_key); !st) {
      return tl::unexpected(st.error());
    }
    signing_key = std::move(pair.secret_key);
  }
  events::SecurityLog::Options options;
  options.directory = security_log_dir(config);
  options.checkpoint_every = config.log.checkpoint_every_events;
  options.checkpoint_interval = std::chrono::seconds(config.log.checkpoint_interval_seconds);
  options.max_file_bytes = std::uint64_t{config.log.max_file_mib} << 20;
  options.retention = std::chrono::hours(24) * config.log.retention_days;
  auto log = events::SecurityLog::open(options, clock, std::move(signing_key));
  if (!log) return tl::unexpected(log.error());
  const std::string public_key_hex = hex_encode((*log)->public_key());
  if (auto st = write_file_atomic(security_log_public_key_file(config), as_bytes(public_key_hex + "\n"), 0600); !st) {
    return tl::unexpected(st.error());
  }
  return log;
}

std::string console_base_url(const config::Config& config, std::uint16_t console_port) {
  if (!config.server.public_url.empty()) return config.server.public_url;
  const auto& host = config.server.hostnames.front();
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("https://{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", console_port);
}

}  // namespace torii::server

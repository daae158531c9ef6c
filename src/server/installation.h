// An opened installation: the data directory checked, the store open, the key-encryption
// key unlocked and the CA loaded. Shared by `torii server` and the admin commands.
#pragma once

#include <filesystem>
#include <memory>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "config/config.h"
#include "events/security_log.h"
#include "keys/key_ring.h"
#include "pki/certificate_authority.h"
#include "store/store.h"

namespace torii::server {

struct Installation {
  std::filesystem::path data_dir;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<keys::KeyRing> keys;
  std::unique_ptr<pki::CertificateAuthority> ca;
  bool first_start = false;  // the key hierarchy was created by this call
};

struct OpenOptions {
  bool create_if_missing = true;  // false for admin commands: they never make a new installation
  bool fast_key_derivation_for_tests = false;
};

// JPCERT I-5: refuses a data directory, database or key file that others can read.
[[nodiscard]] Result<Installation> open_installation(const config::Config& config, const Clock& clock, Random& random,
                                                     OpenOptions options);

// Opens the installation's security log (taking its writer lock), creating the Ed25519
// signing key at first use (sealed like every secret) and writing the public half to
// security-log.pub for `torii admin log verify`.
[[nodiscard]] Result<std::unique_ptr<events::SecurityLog>> open_security_log(const config::Config& config,
                                                                             Installation& installation,
                                                                             const Clock& clock);

// Base of the links torii prints: server.public_url, or https://<first hostname>:<port>.
[[nodiscard]] std::string console_base_url(const config::Config& config, std::uint16_t console_port);

// The path of the data directory a configuration names, made absolute.
[[nodiscard]] std::filesystem::path resolve_data_dir(const config::Config& config);
// Where the security log of that data directory lives, and its public key file.
[[nodiscard]] std::filesystem::path security_log_dir(const config::Config& config);
[[nodiscard]] std::filesystem::path security_log_public_key_file(const config::Config& config);

}  // namespace torii::server

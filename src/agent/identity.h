// The device's identity on disk, in the agent's state directory (JPCERT I-5, VI-4):
//
//   key.pem          its P-256 private key, made on the device, mode 0600, never sent
//   certificate.pem  its certificate from torii's CA
//   ca.pem           the CA bundle it trusts (issuing CA, then root): the gateway's and
//                    the console's certificates must chain to it
//   device           its device id, as the certificate names it
//
// The directory must be the owner's alone (0700) and the key file too: a key readable by
// anyone else is refused, not used.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "base/error.h"
#include "crypto/secret.h"

namespace torii::agent {

struct IdentityFiles {
  std::filesystem::path key;
  std::filesystem::path certificate;
  std::filesystem::path ca_bundle;
  std::filesystem::path device;
};

[[nodiscard]] IdentityFiles identity_files(const std::filesystem::path& state_dir);

struct Identity {
  IdentityFiles files;
  std::string device_id;
  std::string certificate_serial;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

// The enrolled identity, checked: not_found when the agent has not enrolled yet;
// permission_denied when the directory or the key is readable by others; expired when the
// certificate is (the device must enrol again); corrupt when the files do not belong
// together (key and certificate, device id and certificate).
[[nodiscard]] Result<Identity> load_identity(const std::filesystem::path& state_dir,
                                             std::chrono::system_clock::time_point now);

// Stores what enrolment returned: the key first, then the certificate, the CA bundle and
// the device id, each written atomically.
[[nodiscard]] Status store_identity(const std::filesystem::path& state_dir, const crypto::SecretBytes& key_pem,
                                    std::string_view certificate_pem, std::string_view ca_bundle_pem,
                                    std::string_view device_id);

}  // namespace torii::agent

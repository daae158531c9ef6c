// The device's identity on disk, in the agent's state directory (JPCERT I-5, VI-4):
//
//   key.pem          its P-256 private key, made on the device, mode 0600, never sent
//   certificate.pem  its certificate from torii's CA
//   ca.pem           the CA bundle it trusts (issuing CA, then root): the gateway's and
//                    the console's certificates must chain to it
//   device           its device id, as the certificate names it
//   renewed-key.pem, renewed-certificate.pem
//                    a renewed pair while it is being put in place (store_renewed_identity);
//                    a pair left by an interruption is finished by load_identity
//   command-key.pub  the gateway's Ed25519 public key, base64url: commands must be signed with
//                    it (IIIT J8, I7; command_runner.h). Missing in state directories enrolled
//                    before torii sent one: then every command is refused.
//
// The directory must be the owner's alone (0700) and the key file too: a key readable by
// anyone else is refused, not used.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "base/bytes.h"
#include "base/error.h"
#include "crypto/secret.h"

namespace torii::agent {

struct IdentityFiles {
  std::filesystem::path key;
  std::filesystem::path certificate;
  std::filesystem::path renewed_key;
  std::filesystem::path renewed_certificate;
  std::filesystem::path ca_bundle;
  std::filesystem::path device;
  std::filesystem::path command_key;
};

[[nodiscard]] IdentityFiles identity_files(const std::filesystem::path& state_dir);

struct Identity {
  IdentityFiles files;
  std::string device_id;
  std::string certificate_serial;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::optional<Bytes> command_key;  // 32 bytes (Ed25519); nullopt when the file is missing
};

// The enrolled identity, checked (a renewal that was interrupted after its pair was written
// is finished first): not_found when the agent has not enrolled yet;
// permission_denied when the directory or the key is readable by others; expired when the
// certificate is (the device must enrol again); corrupt when the files do not belong
// together (key and certificate, device id and certificate) or the command key is not one.
[[nodiscard]] Result<Identity> load_identity(const std::filesystem::path& state_dir,
                                             std::chrono::system_clock::time_point now);

// Stores what enrolment returned: the key first, then the certificate, the CA bundle, the
// device id and the command key (0600), each written atomically. Without a command key, one
// left by an earlier enrolment is removed: it belonged to that enrolment.
[[nodiscard]] Status store_identity(const std::filesystem::path& state_dir, const crypto::SecretBytes& key_pem,
                                    std::string_view certificate_pem, std::string_view ca_bundle_pem,
                                    std::string_view device_id, const std::optional<Bytes>& command_key);

// Stores a renewed key and certificate (and the CA bundle that came with them) in place of
// the current ones. Refused, with nothing written: corrupt when the certificate is not for
// this key, or names another device than `device_id`. The pair is written to the renewed-*
// files first, then each renamed into place, key first: an interruption leaves either the old
// pair or a renewal that load_identity finishes, never a key without its certificate.
[[nodiscard]] Status store_renewed_identity(const std::filesystem::path& state_dir, const crypto::SecretBytes& key_pem,
                                            std::string_view certificate_pem, std::string_view ca_bundle_pem,
                                            std::string_view device_id);

// The text of a command-key.pub file (base64url of 32 bytes, a line end allowed); nullopt when
// it is not one.
[[nodiscard]] std::optional<Bytes> parse_command_key(std::string_view text);

}  // namespace torii::agent

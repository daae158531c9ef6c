// Enrolment without shipped secrets (IIIT DI1, J9; JPCERT VI-4).
//
// The device makes its own P-256 key, sends a certificate request with the one-time token an
// operator got from torii (`torii admin device create --enrolment-token`, or the console) to
// the console over HTTPS, and keeps the certificate it gets back. The key never leaves the
// device. The console's certificate must chain to the CA bundle given (torii's CA, exported
// with `torii admin ca export`): the agent trusts nothing else, so a man in the middle
// cannot take the token.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "agent/agent_config.h"
#include "base/bytes.h"
#include "base/error.h"

namespace torii::agent {

struct EnrolmentRequest {
  std::string server_url;           // the console, e.g. https://torii.example:8443
  std::string token;                // one-time enrolment token
  std::string ca_pem;               // torii's CA bundle (PEM): the console's certificate must chain to it
  std::filesystem::path state_dir;  // where the identity is stored (identity.h)
  std::chrono::seconds timeout{30};
};

struct Enrolled {
  std::string device_id;
  std::string certificate_serial;
  std::chrono::system_clock::time_point not_after;
  bool command_key = false;  // the console sent the key commands are signed with
};

// The console's answer to POST /api/v1/enrol (201), a JSON object:
//
//   device           the device id
//   certificate_pem  its certificate
//   ca_bundle_pem    the CA bundle it trusts (issuing CA, then root)
//   command_key      base64url of the gateway's 32-byte Ed25519 public key, which signs the
//                    commands the device takes (IIIT J8, I7); optional, for consoles that send
//                    none: the device then refuses every command
struct EnrolmentAnswer {
  std::string device_id;
  std::string certificate_pem;
  std::string ca_bundle_pem;
  std::optional<Bytes> command_key;
};

// Reads an answer. Errors: corrupt when the device, the certificate or the CA bundle is
// missing, or a command_key is there but is not a base64url Ed25519 public key.
[[nodiscard]] Result<EnrolmentAnswer> parse_enrolment_answer(std::string_view body);

// Makes the key, sends the request, stores key, certificate, CA bundle, device id and command
// key (identity.h). An answer without a command key still enrols the device, with a warning
// in the log.
// Errors: invalid_argument (the URL, the CA bundle), unavailable (the console cannot be reached
// or its certificate does not verify), authentication_failed (the token was refused: unknown,
// used, expired or the device disabled), limit_exceeded (too many attempts from this address),
// and the file errors of storing the identity. Nothing is stored unless enrolment succeeds;
// an identity already in the directory is replaced only then.
[[nodiscard]] Result<Enrolled> enrol(const EnrolmentRequest& request);

}  // namespace torii::agent

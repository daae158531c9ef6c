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
#include <string>

#include "agent/agent_config.h"
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
};

// Makes the key, sends the request, stores key, certificate, CA bundle and device id.
// Errors: invalid_argument (the URL, the CA bundle), unavailable (the console cannot be reached
// or its certificate does not verify), authentication_failed (the token was refused: unknown,
// used, expired or the device disabled), limit_exceeded (too many attempts from this address),
// and the file errors of storing the identity. Nothing is stored unless enrolment succeeds;
// an identity already in the directory is replaced only then.
[[nodiscard]] Result<Enrolled> enrol(const EnrolmentRequest& request);

}  // namespace torii::agent

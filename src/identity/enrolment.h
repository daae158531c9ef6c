// Enrolment of devices that make their own key (IIIT DI1, J9; JPCERT VI-4): an administrator
// registers the device awaiting enrolment, or asks for a token for an existing one (after
// its certificate expired or was revoked), and hands the one-time token to whoever installs
// it. The device makes its P-256 key, sends a CSR with the token and gets its certificate:
// its private key never leaves it.
//
//   token     32 random bytes, base64url; shown once, stored only as a SHA-256 hash, valid
//             for the lifetime given (devices.enrolment_token_hours); a device has at most
//             one, issuing another replaces it
//   single    a token is used up by the enrolment it lets through, atomically: of two
//             requests racing with one token exactly one gets a certificate
//   retry     a CSR that is not acceptable does not use the token up
//   no hints  unknown, used and expired tokens and disabled devices are refused alike to
//             the device; the reason is for the security log only
//
// The certificate is the registry's (DeviceRegistry::issue_certificate): its subject is the
// device's id whatever the CSR asks for.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "identity/devices.h"
#include "store/store.h"

namespace torii::identity {

// A one-time enrolment token: shown once to the administrator, never stored, never logged.
struct EnrolmentTicket {
  store::DeviceRecord device;
  std::string token;
  UnixMillis expires_at = 0;
};

// Why an enrolment was refused: for the security log, never for the device.
enum class EnrolmentRefusal { unknown, used, expired, device_disabled, bad_csr };
[[nodiscard]] std::string_view to_string(EnrolmentRefusal refusal);

struct Enrolled {
  store::DeviceRecord device;
  store::CertificateRecord certificate;
  std::string ca_bundle_pem;  // issuing CA then root: what the device trusts
};

struct EnrolOutcome {
  std::optional<Enrolled> enrolled;
  std::optional<EnrolmentRefusal> refused;
  std::string device_id;        // the token's device when it is known (for the log); else empty
  std::string organisation_id;  // ... and its organisation
};

class Enrolment {
 public:
  // Borrows everything; all must outlive this.
  Enrolment(store::Store& store, DeviceRegistry& devices, const Clock& clock, Random& random);

  // A device awaiting enrolment (spec.enrolment is set here) and its first token, in one
  // transaction. Errors as DeviceRegistry::create.
  [[nodiscard]] Result<std::pair<DeviceBundle, EnrolmentTicket>> create_device(NewDevice spec,
                                                                               std::string_view created_by,
                                                                               std::chrono::hours lifetime);
  // A new token for an existing, active device; its earlier token stops working. not_found
  // for an unknown device, permission_denied for a disabled one.
  [[nodiscard]] Result<EnrolmentTicket> issue_token(std::string_view device_id, std::string_view created_by,
                                                    std::chrono::hours lifetime);
  // The certificate for the CSR when the token is valid and its device active; a refusal
  // otherwise (bad_csr keeps the token). Errors are the store's or the CA's own failures.
  [[nodiscard]] Result<EnrolOutcome> enrol(std::string_view token, std::string_view csr_pem);

 private:
  [[nodiscard]] Result<EnrolmentTicket> issue(const store::DeviceRecord& device, std::string_view created_by,
                                              std::chrono::hours lifetime);

  store::Store& store_;
  DeviceRegistry& devices_;
  const Clock& clock_;
  Random& random_;
};

}  // namespace torii::identity

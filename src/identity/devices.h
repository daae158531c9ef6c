// The device registry as operations: what `torii admin device ...`, the control socket and
// (later) the console's REST API do to devices, in one place (IIIT DI1, N1; JPCERT I-2, VI-4).
//
// A device is registered with an id, an organisation, a profile and a segment; it gets its
// own data key (its telemetry is sealed under it) and a certificate from torii's CA, from a
// CSR made on the device (its private key never leaves it), from a key pair made here and
// handed over once, or later, when the device enrols with a one-time token (enrolment.h). Deleting a device destroys
// its data key (crypto-shredding), its rows, and revokes its certificates.
//
// Every operation runs in one store transaction. Live effects (closing the device's MQTT
// session) are the caller's: the registry knows nothing of connections.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "crypto/secret.h"
#include "identity/accounts.h"
#include "keys/key_ring.h"
#include "pki/certificate_authority.h"
#include "store/store.h"

namespace torii::identity {

inline constexpr std::string_view kDefaultOrganisation = "default";

struct NewDevice {
  std::string id;  // policy::valid_device_id
  std::string name;
  std::string organisation_id = std::string(kDefaultOrganisation);
  std::string profile_id;  // empty: the generic profile
  std::string segment = "default";
  std::string serial_number;
  std::string firmware_version;
  std::vector<std::string> tags;       // any order, repeats allowed: stored sorted and distinct
  std::optional<std::string> csr_pem;  // none: a key pair is generated for the device
  // Awaiting enrolment: no certificate and no key are made now; the device makes its key
  // and enrols with a one-time token (enrolment.h). Not together with csr_pem.
  bool enrolment = false;
};

struct DeviceBundle {
  store::DeviceRecord device;
  std::optional<store::CertificateRecord> certificate;  // none for a device awaiting enrolment
  std::optional<crypto::SecretBytes> private_key_pem;   // only when generated here
  std::string ca_bundle_pem;                            // issuing CA then root: what the device trusts
};

class DeviceRegistry {
 public:
  // Borrows everything; all must outlive the registry.
  DeviceRegistry(store::Store& store, keys::KeyRing& keys, pki::CertificateAuthority& ca, const Clock& clock);

  // Every problem of the spec's fields, each named by its field ("id", "name", "profile",
  // "segment", "serial_number", "firmware_version", "tags"): what create() refuses as
  // invalid_argument. A taken id is not a problem here (create's already_exists), nor is a
  // CSR that does not verify (create's invalid_argument or authentication_failed).
  [[nodiscard]] Result<std::vector<FieldProblem>> check(const NewDevice& spec);
  // invalid_argument for a bad id, name or unknown profile, or for a CSR with enrolment;
  // already_exists for a taken id.
  [[nodiscard]] Result<DeviceBundle> create(const NewDevice& spec);
  // What a device trusts: the issuing CA's certificate, then the root's (PEM).
  [[nodiscard]] Result<std::string> ca_bundle_pem();
  // A further certificate for an existing, active device (renewal, re-enrolment).
  [[nodiscard]] Result<store::CertificateRecord> issue_certificate(std::string_view device_id,
                                                                   std::string_view csr_pem);
  // not_found for an unknown id. Disabling keeps data and certificates; the device is refused
  // at its next connection (the caller closes a live one).
  [[nodiscard]] Status disable(std::string_view device_id, std::string_view reason);
  [[nodiscard]] Status enable(std::string_view device_id);
  // Revokes every unrevoked certificate of the device; returns their serials.
  [[nodiscard]] Result<std::vector<std::string>> revoke_certificates(std::string_view device_id,
                                                                     std::string_view reason);
  // The problems of a device's tags (field "tags"): each a policy::valid_tag, at most
  // store::kMaxDeviceTags distinct ones.
  [[nodiscard]] static std::vector<FieldProblem> check_tags(const std::vector<std::string>& tags);
  // Replaces the device's tags; returns the device as stored now. not_found for an unknown
  // id, invalid_argument for what check_tags refuses.
  [[nodiscard]] Result<store::DeviceRecord> set_tags(std::string_view device_id, std::vector<std::string> tags);
  // Revokes the certificates, removes the device and all its data, destroys its key.
  [[nodiscard]] Status remove(std::string_view device_id);
  // Active devices not seen for `unused_for` are disabled (JPCERT I-2); returns their ids.
  [[nodiscard]] Result<std::vector<std::string>> disable_unused(std::chrono::hours unused_for);

  // Every problem of a profile before it is stored: its id ("id"), its name ("name") and
  // each of its definition's ("definition" or "definition.<path>", policy::parse_profile).
  [[nodiscard]] static std::vector<FieldProblem> check_profile(const store::DeviceProfileRecord& profile);
  // Stores (or replaces) a device profile after validating its definition (invalid_argument
  // with every problem); conflict when the id belongs to another organisation.
  [[nodiscard]] Status put_profile(const store::DeviceProfileRecord& profile);

 private:
  store::Store& store_;
  keys::KeyRing& keys_;
  pki::CertificateAuthority& ca_;
  const Clock& clock_;
};

}  // namespace torii::identity

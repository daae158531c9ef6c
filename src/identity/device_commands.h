// Commands to devices (IIIT J8, I5, I7): checked against the device's profile before they
// leave, signed with the gateway's Ed25519 command key, recorded with who sent them, and
// answered by the device (policy/device_command.h has the wire format; the agent checks the
// signature, the expiry and the nonce before anything runs).
//
//   key       made at first use, sealed in the key ring like every secret; its public half is
//             handed to devices when they enrol (POST /api/v1/enrol, "command_key")
//   checked   the command must be one of the device's profile and its parameters valid for
//             it (policy::validate_command); a device without a profile takes no command
//   expiry    each command carries one, at most policy::kMaxCommandLifetime after issue
//   recorded  the signed payload is sealed under the device's data key (it goes with the
//             device); a command awaits its answer until the device gives one
//   again     commands awaiting an answer and not expired are sent again when the device
//             connects (the agent keeps each nonce, so a command runs at most once)
//
// Sending is the caller's: the payload goes to devices/{id}/commands through the gateway.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "crypto/secret.h"
#include "keys/key_ring.h"
#include "policy/device_command.h"
#include "policy/profile.h"
#include "store/store.h"

namespace torii::identity {

inline constexpr std::chrono::seconds kDefaultCommandLifetime{300};
inline constexpr std::size_t kMaxCommandsAwaiting = 64;

struct IssuedCommand {
  store::DeviceCommandRecord record;
  std::string topic;    // devices/{id}/commands
  std::string payload;  // signed (policy::command_payload)
};

struct CommandIssue {
  std::optional<IssuedCommand> issued;
  std::vector<policy::Problem> problems;  // paths "command", "params", "params.<name>", "ttl_seconds"
};

// The profile a device's commands are checked against: its stored profile, or the generic
// one (which takes no command) for a device without one or whose profile was deleted.
// corrupt when the stored profile no longer parses.
[[nodiscard]] Result<policy::Profile> command_profile(store::Store& store, const store::DeviceRecord& device);

class DeviceCommands {
 public:
  // Loads the command key, making it at first use. Borrows everything; all must outlive it.
  [[nodiscard]] static Result<std::unique_ptr<DeviceCommands>> open(store::Store& store, keys::KeyRing& keys,
                                                                    const Clock& clock, Random& random);
  ~DeviceCommands();
  DeviceCommands(const DeviceCommands&) = delete;
  DeviceCommands& operator=(const DeviceCommands&) = delete;

  // The Ed25519 public key devices check commands with (32 bytes).
  [[nodiscard]] const Bytes& public_key() const { return public_key_; }

  // Checks, signs and records a command for an active device, valid for `lifetime` (1 s up to
  // policy::kMaxCommandLifetime). Problems when the command, its parameters or the lifetime are
  // not acceptable (nothing is recorded); permission_denied for a disabled device; store and
  // key ring failures as errors.
  [[nodiscard]] Result<CommandIssue> issue(const store::DeviceRecord& device, std::string_view name,
                                           std::string_view params_json, std::chrono::seconds lifetime,
                                           std::string_view issued_by);

  // Records a device's result message (policy::parse_command_result) against its command.
  // The result when it answered one of the device's commands awaiting an answer; nullopt for
  // anything else (not a result, another device's command, answered before).
  [[nodiscard]] Result<std::optional<policy::CommandResult>> record_result(std::string_view device_id,
                                                                           std::string_view payload);

  // The parameters' JSON text of a recorded command.
  [[nodiscard]] Result<std::string> params_of(const store::DeviceCommandRecord& record);
  // A recorded command as the API and the CLI show it: id, device, command, params, status
  // ("sent" past its expiry is "expired": the device can no longer run it), issued_at,
  // expires_at, issued_by, and answered_at and reason when there are some.
  [[nodiscard]] Result<nlohmann::json> describe(const store::DeviceCommandRecord& record);

  // The device's commands awaiting an answer and not expired, oldest first, to send again
  // (at most the newest kMaxCommandsAwaiting).
  [[nodiscard]] Result<std::vector<IssuedCommand>> awaiting(std::string_view device_id);

 private:
  DeviceCommands(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random,
                 crypto::SecretBytes secret_key, Bytes public_key);
  [[nodiscard]] Result<std::string> payload_of(const store::DeviceCommandRecord& record);

  store::Store& store_;
  keys::KeyRing& keys_;
  const Clock& clock_;
  Random& random_;
  crypto::SecretBytes secret_key_;
  Bytes public_key_;
};

// The associated data binding a command's sealed payload to its row.
[[nodiscard]] std::string command_payload_associated_data(std::string_view device_id, std::string_view command_id);

}  // namespace torii::identity

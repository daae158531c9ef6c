// Commands from the gateway (IIIT J8, I5, I7): whether one the agent received on
// devices/{id}/commands may run, what it asks for, and the result to send back on
// devices/{id}/results (the wire format: policy/device_command.h).
//
// decide() checks, in this order, stopping at the first refusal:
//
//   1. the payload's size and shape (parse_command_payload);
//   2. the Ed25519 signature over command_signing_input(body), with the gateway's key from
//      enrolment (identity.h; without one every command is refused);
//   3. the body (parse_command_body);
//   4. the target device and the times (check_command_time_and_target, kToleratedCommandSkew);
//   5. the nonce, which must not have been seen before; it is recorded, durably in the
//      outbox's file, before anything runs, so neither a replay nor a crash mid-run makes a
//      command run twice;
//   6. the name and parameters, against the commands this agent runs (agent_commands()).
//
// The runner only decides: the caller runs the action and sends the result. Not thread-safe;
// it uses the outbox, on the outbox's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "agent/outbox.h"
#include "base/bytes.h"
#include "policy/device_command.h"
#include "policy/profile.h"

namespace torii::agent {

// How far ahead of the device's clock a command's issued_at may be (the gateway's clock
// ahead of the device's); beyond it the command is refused and the skew reported.
inline constexpr std::chrono::minutes kToleratedCommandSkew{5};
// Nonces kept at most. A command lives at most policy::kMaxCommandLifetime (24 h) and its
// nonce is forgotten once it expires, so this bounds the commands taken in any 24 h; beyond
// it commands are refused ("too many commands"), never run with a nonce forgotten early.
inline constexpr std::uint64_t kMaxCommandNonces = 10'000;
// The command id of a result whose command had no readable id.
inline constexpr std::string_view kUnknownCommandId = "unknown";

// set_interval {seconds: integer 1..86400}: every sensor's sampling interval, from now on.
struct SetInterval {
  std::chrono::seconds every{0};
  friend bool operator==(const SetInterval&, const SetInterval&) = default;
};
// set_actuator {on: boolean}: the simulated actuator's state.
struct SetActuator {
  bool on = false;
  friend bool operator==(const SetActuator&, const SetActuator&) = default;
};
// report_posture {}: a posture report now.
struct ReportPosture {
  friend bool operator==(const ReportPosture&, const ReportPosture&) = default;
};
using CommandAction = std::variant<SetInterval, SetActuator, ReportPosture>;

struct CommandDecision {
  // refused, with the reason; or done, for an action to run (the caller makes it failed when
  // running it fails).
  policy::CommandResult result;
  std::optional<CommandAction> action;  // only when it is to run
  // Refused for having been issued further ahead of the device's clock than tolerated: by how
  // many milliseconds (JPCERT VIII-1: the caller reports it as a clock_skew event).
  std::optional<std::int64_t> clock_skew_ms;
};

// The commands this agent runs, as a profile's commands (the sample "environment" profile's:
// set_interval, set_actuator, report_posture).
[[nodiscard]] const policy::Profile& agent_commands();

class CommandRunner {
 public:
  // `command_key`: the gateway's Ed25519 public key; nullopt refuses every command.
  // `nonces`: the outbox whose file keeps the nonces; it must outlive the runner.
  CommandRunner(std::string device_id, std::optional<Bytes> command_key, Outbox& nonces,
                std::uint64_t max_nonces = kMaxCommandNonces);

  // The decision on one payload received at `now` (device time). A refusal's result names the
  // command's id when one can be read, even from a body whose signature did not verify (so the
  // gateway can tell which command failed); otherwise kUnknownCommandId.
  [[nodiscard]] CommandDecision decide(std::string_view payload, std::chrono::system_clock::time_point now);

  [[nodiscard]] bool has_key() const { return key_.has_value(); }

 private:
  std::string device_id_;
  std::optional<Bytes> key_;
  Outbox& nonces_;
  std::uint64_t max_nonces_;
};

}  // namespace torii::agent

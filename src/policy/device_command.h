// Commands to devices as they travel (IIIT J8, I5, I7): what the gateway signs and sends on
// devices/{id}/commands, what the agent checks before anything runs, and the result the
// agent sends back on devices/{id}/results. Pure: the signature itself is made and checked
// by the callers (crypto/sodium.h, Ed25519) over signing_input(body).
//
// The command payload is a JSON object with exactly two members:
//
//   {"command": "<body>", "signature": "<base64url Ed25519 signature of signing_input(body)>"}
//
// The body is carried as a JSON string so that the bytes signed are the bytes checked, with
// no canonical form to agree on. It is itself a JSON object with exactly these members:
//
//   id          the command's id, a message id (telemetry.h): "c-<hex>"
//   device      the device it is for; any other device refuses it
//   name        the command (a valid_name of the profile's commands)
//   params      a JSON object, the command's parameters ({} for none)
//   nonce       22 characters of base64url (16 random bytes); seen once per device
//   issued_at   milliseconds since the Unix epoch, gateway time
//   expires_at  milliseconds since the Unix epoch; issued_at < expires_at, and the lifetime is
//               at most kMaxCommandLifetime (so a device keeps nonces for a bounded time)
//
// The result payload (device -> gateway) is a JSON object:
//
//   {"id": "<message id>", "command": "<command id>", "status": "done|refused|failed",
//    "reason": "<short text, optional>", "ts": <ms>}
//
// "refused": the command never ran (bad signature, replayed, expired, not for this device,
// unknown or invalid parameters); "failed": it ran and did not succeed; "done": it ran.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "base/bytes.h"

namespace torii::policy {

inline constexpr std::chrono::hours kMaxCommandLifetime{24};
inline constexpr std::size_t kCommandNonceBytes = 16;
// The largest command payload a device accepts (body, escaping and signature included).
inline constexpr std::size_t kMaxCommandPayloadBytes = std::size_t{16} * 1024;

struct DeviceCommand {
  std::string id;
  std::string device_id;
  std::string name;
  std::string params_json = "{}";  // compact JSON object text
  std::string nonce;
  std::int64_t issued_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  friend bool operator==(const DeviceCommand&, const DeviceCommand&) = default;
};

// Why a payload or body was refused: short, for the result message and logs. It never quotes
// the input, except a command id or name that is valid (so safe to show).
using CommandRefusal = std::string;

// The body's JSON text. params_json must be a JSON object (the caller validated it); it is
// written compact.
[[nodiscard]] std::string command_body(const DeviceCommand& command);
// What is signed: a domain tag, a NUL and the body.
[[nodiscard]] Bytes command_signing_input(std::string_view body);
// The payload sent to the device.
[[nodiscard]] std::string command_payload(std::string_view body, ByteView signature);

struct SignedCommand {
  std::string body;
  Bytes signature;
};
// Splits a payload into its body and signature; the body is not read yet (check the
// signature first).
[[nodiscard]] tl::expected<SignedCommand, CommandRefusal> parse_command_payload(std::string_view payload);
// Reads a body whose signature was checked.
[[nodiscard]] tl::expected<DeviceCommand, CommandRefusal> parse_command_body(std::string_view body);

// Whether a signed command may run on device `device_id` at `now_ms` (device time): it is
// for this device, not expired, and not issued further ahead of now than `tolerated_skew`
// (a gateway clock ahead of the device's, or a body made for later use). Replay is the
// caller's check (it keeps the nonces).
[[nodiscard]] tl::expected<void, CommandRefusal> check_command_time_and_target(
    const DeviceCommand& command, std::string_view device_id, std::int64_t now_ms,
    std::chrono::milliseconds tolerated_skew);

enum class CommandStatus { done, refused, failed };
[[nodiscard]] std::string_view to_string(CommandStatus status);

struct CommandResult {
  std::string command_id;
  CommandStatus status = CommandStatus::done;
  std::string reason;
  friend bool operator==(const CommandResult&, const CommandResult&) = default;
};
// The result payload; reason may be empty (then left out) and is cut to 200 bytes.
[[nodiscard]] std::string command_result_payload(std::string_view message_id, const CommandResult& result,
                                                 std::int64_t ts_ms);
// A result payload as the gateway reads it; nullopt when it is not one (no valid command id,
// unknown status).
[[nodiscard]] std::optional<CommandResult> parse_command_result(std::string_view payload);

}  // namespace torii::policy

#include "agent/command_runner.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "crypto/sodium.h"
#include "policy/telemetry.h"

namespace torii::agent {
namespace {

using nlohmann::json;
using policy::CommandResult;
using policy::CommandStatus;

// The commands this agent implements, with the parameters it takes. Keep in step with the
// actions of device_agent.cpp and with the sample "environment" profile (a test compares them).
constexpr std::string_view kAgentCommands = R"({
  "metrics": [],
  "commands": [
    {"name": "set_interval", "params": [{"name": "seconds", "type": "integer", "min": 1, "max": 86400, "required": true}]},
    {"name": "set_actuator", "params": [{"name": "on", "type": "boolean", "required": true}]},
    {"name": "report_posture", "params": []}
  ]
})";

// The "id" a command body claims, before (or without) its signature being checked: only for
// naming the command in a refusal.
std::string claimed_id(std::string_view body) {
  const auto root = json::parse(body, nullptr, false);
  if (root.is_object()) {
    const auto id = root.find("id");
    if (id != root.end() && id->is_string() && policy::valid_message_id(id->get_ref<const std::string&>())) {
      return id->get<std::string>();
    }
  }
  return std::string(kUnknownCommandId);
}

// The same, from a payload that did not split into body and signature.
std::string claimed_id_of_payload(std::string_view payload) {
  if (payload.size() > policy::kMaxCommandPayloadBytes) return std::string(kUnknownCommandId);
  const auto root = json::parse(payload, nullptr, false);
  if (root.is_object()) {
    const auto body = root.find("command");
    if (body != root.end() && body->is_string()) return claimed_id(body->get_ref<const std::string&>());
  }
  return std::string(kUnknownCommandId);
}

CommandDecision refused(std::string command_id, std::string reason) {
  return {CommandResult{std::move(command_id), CommandStatus::refused, std::move(reason)}, std::nullopt, std::nullopt};
}

// Why params do not fit the command ("" when they do): the command unknown, or each problem
// with its path.
std::string schema_problems(const policy::DeviceCommand& command) {
  const auto problems = policy::validate_command(agent_commands(), command.name, command.params_json);
  if (problems.empty()) return {};
  for (const auto& p : problems) {
    if (p.path == "command") return p.message;
  }
  std::string reason = "invalid parameters:";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    reason += fmt::format("{} {}: {}", i == 0 ? "" : ";", problems[i].path, problems[i].message);
  }
  return reason;
}

// The action of a command whose parameters fit agent_commands().
CommandAction action_of(const policy::DeviceCommand& command) {
  const auto params = json::parse(command.params_json, nullptr, false);
  if (command.name == "set_interval")
    return SetInterval{std::chrono::seconds(params.at("seconds").get<std::int64_t>())};
  if (command.name == "set_actuator") return SetActuator{params.at("on").get<bool>()};
  return ReportPosture{};
}

}  // namespace

const policy::Profile& agent_commands() {
  static const policy::Profile commands = policy::parse_profile(kAgentCommands).value();
  return commands;
}

CommandRunner::CommandRunner(std::string device_id, std::optional<Bytes> command_key, Outbox& nonces,
                             std::uint64_t max_nonces)
    : device_id_(std::move(device_id)), key_(std::move(command_key)), nonces_(nonces), max_nonces_(max_nonces) {}

CommandDecision CommandRunner::decide(std::string_view payload, std::chrono::system_clock::time_point now) {
  auto signed_command = policy::parse_command_payload(payload);
  if (!signed_command) return refused(claimed_id_of_payload(payload), std::move(signed_command.error()));
  const auto& body = signed_command->body;
  if (!key_) return refused(claimed_id(body), "no command key; enrol again");
  if (!crypto::ed25519_verify(*key_, policy::command_signing_input(body), signed_command->signature)) {
    return refused(claimed_id(body), "signature invalid");
  }

  auto command = policy::parse_command_body(body);
  if (!command) return refused(claimed_id(body), std::move(command.error()));
  const auto now_ms = to_unix_millis(now);
  constexpr auto tolerated = std::chrono::duration_cast<std::chrono::milliseconds>(kToleratedCommandSkew);
  if (auto fit = policy::check_command_time_and_target(*command, device_id_, now_ms, tolerated); !fit) {
    auto decision = refused(command->id, std::move(fit.error()));
    if (command->device_id == device_id_ && command->issued_at_ms - now_ms > tolerated.count()) {
      decision.clock_skew_ms = command->issued_at_ms - now_ms;
    }
    return decision;
  }

  const auto seen = nonces_.record_nonce(command->nonce, from_unix_millis(command->expires_at_ms), now, max_nonces_);
  if (!seen) {
    spdlog::error("agent {}: cannot record a command's nonce: {}", device_id_, seen.error().message);
    return refused(command->id, "cannot record the command's nonce");
  }
  if (*seen == NonceCheck::replayed) return refused(command->id, "replayed");
  if (*seen == NonceCheck::full) return refused(command->id, "too many commands");

  if (auto problems = schema_problems(*command); !problems.empty()) return refused(command->id, std::move(problems));
  return {CommandResult{command->id, CommandStatus::done, {}}, action_of(*command), std::nullopt};
}

}  // namespace torii::agent

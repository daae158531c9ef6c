#include "policy/device_command.h"

#include <algorithm>
#include <array>
#include <initializer_list>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/acl.h"
#include "policy/profile.h"
#include "policy/telemetry.h"

namespace torii::policy {
namespace {

using nlohmann::json;

constexpr std::string_view kSigningDomain = "torii-command-v1";
constexpr std::size_t kNonceChars = 22;  // base64url of 16 bytes, unpadded
constexpr std::size_t kMaxReasonBytes = 200;

// Exactly `names` as members: nothing missing, nothing more.
bool has_exactly(const json& object, std::initializer_list<std::string_view> names) {
  if (object.size() != names.size()) return false;
  return std::all_of(names.begin(), names.end(), [&](std::string_view n) { return object.contains(n); });
}

bool whole_millis(const json& value) {
  return (value.is_number_unsigned() || value.is_number_integer()) && value.get<std::int64_t>() >= 0;
}

// Control characters become spaces; the text is cut to at most `max` bytes on a character
// boundary.
std::string clean_reason(std::string_view text, std::size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max));
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  if (out.size() > max) {
    std::size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0U) == 0x80U) --cut;
    out.resize(cut);
  }
  return out;
}

tl::unexpected<CommandRefusal> refuse(std::string_view why) { return tl::unexpected(CommandRefusal(why)); }

}  // namespace

std::string command_body(const DeviceCommand& command) {
  json body = json::object();
  body["id"] = command.id;
  body["device"] = command.device_id;
  body["name"] = command.name;
  body["params"] = json::parse(command.params_json, nullptr, false);
  if (!body["params"].is_object()) body["params"] = json::object();
  body["nonce"] = command.nonce;
  body["issued_at"] = command.issued_at_ms;
  body["expires_at"] = command.expires_at_ms;
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

Bytes command_signing_input(std::string_view body) {
  Bytes input(kSigningDomain.size() + 1 + body.size(), 0);
  std::copy(kSigningDomain.begin(), kSigningDomain.end(), input.begin());
  std::copy(body.begin(), body.end(), input.begin() + static_cast<std::ptrdiff_t>(kSigningDomain.size() + 1));
  return input;
}

std::string command_payload(std::string_view body, ByteView signature) {
  json payload = json::object();
  payload["command"] = body;
  payload["signature"] = base64url_encode(signature);
  return payload.dump(-1, ' ', false, json::error_handler_t::replace);
}

tl::expected<SignedCommand, CommandRefusal> parse_command_payload(std::string_view payload) {
  if (payload.size() > kMaxCommandPayloadBytes) return refuse("command larger than a device accepts");
  const auto root = json::parse(payload, nullptr, false);
  if (!root.is_object() || !has_exactly(root, {"command", "signature"}) || !root["command"].is_string() ||
      !root["signature"].is_string()) {
    return refuse("not a signed command");
  }
  auto signature = base64url_decode(root["signature"].get_ref<const std::string&>());
  if (!signature) return refuse("signature not base64url");
  return SignedCommand{root["command"].get<std::string>(), std::move(*signature)};
}

tl::expected<DeviceCommand, CommandRefusal> parse_command_body(std::string_view body) {
  const auto root = json::parse(body, nullptr, false);
  if (!root.is_object() || !has_exactly(root, {"id", "device", "name", "params", "nonce", "issued_at", "expires_at"})) {
    return refuse("command body malformed");
  }
  DeviceCommand c;
  const auto& id = root["id"];
  if (!id.is_string() || !valid_message_id(id.get_ref<const std::string&>())) {
    return refuse("command id invalid");
  }
  c.id = id.get<std::string>();
  const auto& device = root["device"];
  if (!device.is_string() || !valid_device_id(device.get_ref<const std::string&>())) {
    return refuse("command device invalid");
  }
  c.device_id = device.get<std::string>();
  const auto& name = root["name"];
  if (!name.is_string() || !valid_name(name.get_ref<const std::string&>())) {
    return refuse("command name invalid");
  }
  c.name = name.get<std::string>();
  if (!root["params"].is_object()) return refuse("command params not an object");
  c.params_json = root["params"].dump(-1, ' ', false, json::error_handler_t::replace);
  const auto& nonce = root["nonce"];
  if (!nonce.is_string() || nonce.get_ref<const std::string&>().size() != kNonceChars) {
    return refuse("command nonce invalid");
  }
  const auto decoded = base64url_decode(nonce.get_ref<const std::string&>());
  if (!decoded || decoded->size() != kCommandNonceBytes) return refuse("command nonce invalid");
  c.nonce = nonce.get<std::string>();
  if (!whole_millis(root["issued_at"]) || !whole_millis(root["expires_at"])) {
    return refuse("command times invalid");
  }
  c.issued_at_ms = root["issued_at"].get<std::int64_t>();
  c.expires_at_ms = root["expires_at"].get<std::int64_t>();
  const auto lifetime = std::chrono::duration_cast<std::chrono::milliseconds>(kMaxCommandLifetime).count();
  if (c.expires_at_ms <= c.issued_at_ms || c.expires_at_ms - c.issued_at_ms > lifetime) {
    return refuse("command lifetime invalid");
  }
  return c;
}

tl::expected<void, CommandRefusal> check_command_time_and_target(const DeviceCommand& command,
                                                                 std::string_view device_id, std::int64_t now_ms,
                                                                 std::chrono::milliseconds tolerated_skew) {
  if (command.device_id != device_id) return refuse("command for another device");
  if (now_ms >= command.expires_at_ms) return refuse("command expired");
  if (command.issued_at_ms > now_ms && command.issued_at_ms - now_ms > tolerated_skew.count()) {
    return refuse("command issued in the future (clock skew)");
  }
  return {};
}

std::string_view to_string(CommandStatus status) {
  switch (status) {
    case CommandStatus::done: return "done";
    case CommandStatus::refused: return "refused";
    case CommandStatus::failed: return "failed";
  }
  return "failed";
}

std::string command_result_payload(std::string_view message_id, const CommandResult& result, std::int64_t ts_ms) {
  json payload = json::object();
  payload["id"] = message_id;
  payload["command"] = result.command_id;
  payload["status"] = to_string(result.status);
  if (!result.reason.empty()) payload["reason"] = clean_reason(result.reason, kMaxReasonBytes);
  payload["ts"] = ts_ms;
  return payload.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<CommandResult> parse_command_result(std::string_view payload) {
  const auto root = json::parse(payload, nullptr, false);
  if (!root.is_object()) return std::nullopt;
  const auto command = root.find("command");
  const auto status = root.find("status");
  if (command == root.end() || !command->is_string() || !valid_message_id(command->get_ref<const std::string&>()) ||
      status == root.end() || !status->is_string()) {
    return std::nullopt;
  }
  CommandResult r;
  r.command_id = command->get<std::string>();
  constexpr std::array kStatuses = {CommandStatus::done, CommandStatus::refused, CommandStatus::failed};
  const auto& text = status->get_ref<const std::string&>();
  const auto* found =
      std::find_if(kStatuses.begin(), kStatuses.end(), [&](CommandStatus s) { return to_string(s) == text; });
  if (found == kStatuses.end()) return std::nullopt;
  r.status = *found;
  if (const auto reason = root.find("reason"); reason != root.end() && reason->is_string()) {
    r.reason = clean_reason(reason->get_ref<const std::string&>(), kMaxReasonBytes);
  }
  return r;
}

}  // namespace torii::policy

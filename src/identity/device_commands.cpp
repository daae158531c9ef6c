#include "identity/device_commands.h"

#include <array>
#include <utility>

#include <fmt/format.h>

#include "crypto/sodium.h"
#include "policy/telemetry.h"

namespace torii::identity {
namespace {

constexpr std::string_view kCommandSigningKey = "command.signing.key";
constexpr std::string_view kCommandPublicKeyMeta = "command.public_key";
constexpr std::size_t kCommandIdBytes = 12;

std::string random_base64url(Random& random, std::size_t n) {
  Bytes bytes(n);
  random.fill(bytes);
  return base64url_encode(bytes);
}

std::string random_command_id(Random& random) {
  Bytes bytes(kCommandIdBytes);
  random.fill(bytes);
  return "c-" + hex_encode(bytes);
}

}  // namespace

std::string command_payload_associated_data(std::string_view device_id, std::string_view command_id) {
  return fmt::format("torii/device-command/v1\n{}\n{}", device_id, command_id);
}

DeviceCommands::DeviceCommands(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random,
                               crypto::SecretBytes secret_key, Bytes public_key)
    : store_(store),
      keys_(keys),
      clock_(clock),
      random_(random),
      secret_key_(std::move(secret_key)),
      public_key_(std::move(public_key)) {}

DeviceCommands::~DeviceCommands() = default;

Result<std::unique_ptr<DeviceCommands>> DeviceCommands::open(store::Store& store, keys::KeyRing& keys,
                                                             const Clock& clock, Random& random) {
  auto stored = keys.get_secret(kCommandSigningKey);
  if (!stored) return tl::unexpected(stored.error());
  crypto::SecretBytes secret;
  Bytes public_key;
  if (*stored) {
    secret = std::move(**stored);
    auto meta = store.meta().get(kCommandPublicKeyMeta);
    if (!meta) return tl::unexpected(meta.error());
    if (!*meta || (*meta)->size() != crypto::kEd25519PublicKeyBytes) {
      return fail(Errc::corrupt, "the command signing key's public half is missing from the store");
    }
    public_key = std::move(**meta);
  } else {
    auto pair = crypto::ed25519_generate();
    if (auto st = keys.put_secret(kCommandSigningKey, pair.secret_key.view()); !st) return tl::unexpected(st.error());
    if (auto st = store.meta().put(kCommandPublicKeyMeta, pair.public_key); !st) return tl::unexpected(st.error());
    secret = std::move(pair.secret_key);
    public_key = std::move(pair.public_key);
  }
  if (secret.size() != crypto::kEd25519SecretKeyBytes) {
    return fail(Errc::corrupt, "the command signing key has the wrong size");
  }
  return std::unique_ptr<DeviceCommands>(
      new DeviceCommands(store, keys, clock, random, std::move(secret), std::move(public_key)));
}

Result<policy::Profile> command_profile(store::Store& store, const store::DeviceRecord& device) {
  if (device.profile_id.empty()) return policy::generic_profile();
  auto record = store.device_profiles().find(device.profile_id);
  if (!record) return tl::unexpected(record.error());
  if (!*record) return policy::generic_profile();  // the profile was deleted: no commands
  auto parsed = policy::parse_profile((*record)->definition_json);
  if (!parsed) return fail(Errc::corrupt, fmt::format("stored profile '{}' does not parse", device.profile_id));
  return std::move(*parsed);
}

Result<CommandIssue> DeviceCommands::issue(const store::DeviceRecord& device, std::string_view name,
                                           std::string_view params_json, std::chrono::seconds lifetime,
                                           std::string_view issued_by) {
  if (device.status != store::kDeviceStatusActive) {
    return fail(Errc::permission_denied, "the device is disabled");
  }
  CommandIssue outcome;
  if (lifetime < std::chrono::seconds(1) || lifetime > policy::kMaxCommandLifetime) {
    outcome.problems.push_back(
        {"ttl_seconds",
         fmt::format("must be 1..{}",
                     std::chrono::duration_cast<std::chrono::seconds>(policy::kMaxCommandLifetime).count())});
  }
  auto profile = command_profile(store_, device);
  if (!profile) return tl::unexpected(profile.error());
  for (auto& p : policy::validate_command(*profile, name, params_json)) outcome.problems.push_back(std::move(p));
  if (!outcome.problems.empty()) return outcome;

  policy::DeviceCommand command;
  command.id = random_command_id(random_);
  command.device_id = device.id;
  command.name = std::string(name);
  command.params_json = std::string(params_json);
  command.nonce = random_base64url(random_, policy::kCommandNonceBytes);
  command.issued_at_ms = to_unix_millis(clock_.now());
  command.expires_at_ms =
      command.issued_at_ms + std::chrono::duration_cast<std::chrono::milliseconds>(lifetime).count();
  const auto body = policy::command_body(command);
  auto signature = crypto::ed25519_sign(secret_key_, policy::command_signing_input(body));
  if (!signature) return tl::unexpected(signature.error());

  store::DeviceCommandRecord record;
  record.id = command.id;
  record.device_id = device.id;
  record.organisation_id = device.organisation_id;
  record.name = command.name;
  record.key_id = keys::device_key_id(device.id);
  auto payload = policy::command_payload(body, *signature);
  const auto associated = command_payload_associated_data(device.id, command.id);
  auto sealed = keys_.seal(record.key_id, as_bytes(payload), associated);
  if (!sealed && sealed.error().is(Errc::not_found)) {
    // A device registered before it had a data key: make it now.
    if (auto st = keys_.ensure_data_key(record.key_id, "device"); !st) return tl::unexpected(st.error());
    sealed = keys_.seal(record.key_id, as_bytes(payload), associated);
  }
  if (!sealed) return tl::unexpected(sealed.error());
  record.payload_sealed = std::move(*sealed);
  record.issued_at = command.issued_at_ms;
  record.expires_at = command.expires_at_ms;
  record.issued_by = std::string(issued_by);
  if (auto st = store_.device_commands().add(record); !st) return tl::unexpected(st.error());
  outcome.issued = IssuedCommand{std::move(record), "devices/" + device.id + "/commands", std::move(payload)};
  return outcome;
}

Result<std::optional<policy::CommandResult>> DeviceCommands::record_result(std::string_view device_id,
                                                                           std::string_view payload) {
  auto result = policy::parse_command_result(payload);
  if (!result) return std::optional<policy::CommandResult>();
  auto answered = store_.device_commands().answer(device_id, result->command_id, policy::to_string(result->status),
                                                  result->reason, to_unix_millis(clock_.now()));
  if (!answered) return tl::unexpected(answered.error());
  if (!*answered) return std::optional<policy::CommandResult>();
  return result;
}

Result<std::string> DeviceCommands::payload_of(const store::DeviceCommandRecord& record) {
  auto opened =
      keys_.open(record.key_id, record.payload_sealed, command_payload_associated_data(record.device_id, record.id));
  if (!opened) return tl::unexpected(opened.error());
  return std::string(reinterpret_cast<const char*>(opened->data()), opened->size());
}

Result<std::string> DeviceCommands::params_of(const store::DeviceCommandRecord& record) {
  auto payload = payload_of(record);
  if (!payload) return tl::unexpected(payload.error());
  auto split = policy::parse_command_payload(*payload);
  if (!split) return fail(Errc::corrupt, "stored command " + record.id + ": " + split.error());
  auto body = policy::parse_command_body(split->body);
  if (!body) return fail(Errc::corrupt, "stored command " + record.id + ": " + body.error());
  return std::move(body->params_json);
}

Result<nlohmann::json> DeviceCommands::describe(const store::DeviceCommandRecord& record) {
  auto params = params_of(record);
  if (!params) return tl::unexpected(params.error());
  const auto iso = [](UnixMillis ms) { return format_utc_millis(from_unix_millis(ms)); };
  const bool expired = record.status == "sent" && record.expires_at <= to_unix_millis(clock_.now());
  nlohmann::json j = {{"id", record.id},
                      {"device", record.device_id},
                      {"command", record.name},
                      {"params", nlohmann::json::parse(*params, nullptr, false)},
                      {"status", expired ? std::string("expired") : record.status},
                      {"issued_at", iso(record.issued_at)},
                      {"expires_at", iso(record.expires_at)},
                      {"issued_by", record.issued_by}};
  if (record.answered_at) j["answered_at"] = iso(*record.answered_at);
  if (!record.reason.empty()) j["reason"] = record.reason;
  return j;
}

Result<std::vector<IssuedCommand>> DeviceCommands::awaiting(std::string_view device_id) {
  auto listed = store_.device_commands().list_for_device(device_id, kMaxCommandsAwaiting);
  if (!listed) return tl::unexpected(listed.error());
  const auto now = to_unix_millis(clock_.now());
  std::vector<IssuedCommand> out;
  for (auto it = listed->rbegin(); it != listed->rend(); ++it) {
    if (it->status != "sent" || it->expires_at <= now) continue;
    auto payload = payload_of(*it);
    if (!payload) return tl::unexpected(payload.error());
    std::string topic = "devices/" + it->device_id + "/commands";
    out.push_back({std::move(*it), std::move(topic), std::move(*payload)});
  }
  return out;
}

}  // namespace torii::identity

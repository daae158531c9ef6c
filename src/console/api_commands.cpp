// The console API (api.h), commands to devices (IIIT J8, I5, I7): sending one, and reading
// what was sent and what each device answered. The commands themselves are
// identity::DeviceCommands' (checked against the profile, signed, recorded); the gateway
// carries them through ApiContext::gateway.send_command. Each command sent is a security
// event with the person as actor; its parameters are not logged (they are the device's data).

#include <charconv>
#include <string>
#include <vector>

#include "console/api_internal.h"

namespace torii::console::api {

using identity::Permission;

namespace {

constexpr std::size_t kMaxParamsBytes = std::size_t{16} * 1024;
constexpr std::size_t kCommandsListed = 100;

Response commands_unavailable() {
  return problem(503, "unavailable", "Commands to devices are not available on this server");
}

std::chrono::seconds lifetime_of(Call& call) {
  const auto it = call.fields.find("ttl_seconds");
  if (it == call.fields.end()) return identity::kDefaultCommandLifetime;
  std::int64_t seconds = 0;
  std::from_chars(it->second.data(), it->second.data() + it->second.size(), seconds);
  return std::chrono::seconds(seconds);
}

// IIIT I5, I7, J8: checked against the device's profile, signed, recorded, then sent. The
// answer is 202: the device's result comes later (GET .../commands/{command}).
asio::awaitable<Response> send_command(ApiState& s, Call& call) {
  if (s.ctx.commands == nullptr) co_return commands_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  const std::string params = call.fields.contains("params") ? call.fields["params"] : std::string("{}");
  auto outcome =
      s.ctx.commands->issue(*device, call.fields["command"], params, lifetime_of(call), "user:" + call.caller->user.id);
  if (!outcome) {
    if (outcome.error().is(Errc::permission_denied)) {
      co_return problem(409, "device_disabled", "The device is disabled; enable it first");
    }
    co_return internal_error(outcome.error());
  }
  if (!outcome->issued) {
    std::vector<FieldProblem> problems;
    for (const auto& p : outcome->problems) problems.push_back({p.path, "invalid", p.message});
    co_return invalid_input(problems);
  }
  const auto& issued = *outcome->issued;
  s.emit(&*call.caller, "device.command_sent", "device:" + device->id, events::Outcome::success, call.origin,
         {{"organisation", device->organisation_id},
          {"command", issued.record.name},
          {"command_id", issued.record.id},
          {"expires_at", iso(issued.record.expires_at)}});
  if (s.ctx.gateway.send_command) s.ctx.gateway.send_command(issued);
  auto body = s.ctx.commands->describe(issued.record);
  if (!body) co_return internal_error(body.error());
  co_return json_response(202, *body);
}

asio::awaitable<Response> list_commands(ApiState& s, Call& call) {
  if (s.ctx.commands == nullptr) co_return commands_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  auto listed = s.ctx.store.device_commands().list_for_device(device->id, kCommandsListed);
  if (!listed) co_return internal_error(listed.error());
  json commands = json::array();
  for (const auto& c : *listed) {
    auto j = s.ctx.commands->describe(c);
    if (!j) co_return internal_error(j.error());
    commands.push_back(std::move(*j));
  }
  co_return json_response(200, {{"device", device->id}, {"commands", std::move(commands)}});
}

asio::awaitable<Response> show_command(ApiState& s, Call& call) {
  if (s.ctx.commands == nullptr) co_return commands_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  auto found = s.ctx.store.device_commands().find(call.params["command"]);
  if (!found) co_return internal_error(found.error());
  if (!*found || (*found)->device_id != device->id) co_return problem(404, "not_found", "No such command");
  auto j = s.ctx.commands->describe(**found);
  if (!j) co_return internal_error(j.error());
  co_return json_response(200, *j);
}

}  // namespace

void add_command_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"POST",
       "/api/v1/devices/{id}/commands",
       Access::full,
       Permission::devices_command,
       {{"command", true, 64},
        {"params", false, kMaxParamsBytes, false, 0, true},
        {"ttl_seconds", false, static_cast<std::size_t>(std::chrono::seconds(policy::kMaxCommandLifetime).count()),
         false, 0, false, true}},
       false,
       send_command},
      {"GET", "/api/v1/devices/{id}/commands", Access::full, Permission::devices_read, {}, false, list_commands},
      {"GET",
       "/api/v1/devices/{id}/commands/{command}",
       Access::full,
       Permission::devices_read,
       {},
       false,
       show_command},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

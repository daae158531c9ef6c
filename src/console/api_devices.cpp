// The console API (api.h), devices: the list and one device with its counters and certificates.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "console/api_internal.h"

namespace torii::console::api {

using identity::Permission;

namespace {

json device_json(const store::DeviceRecord& d) {
  json j = {{"id", d.id},
            {"name", d.name},
            {"organisation", d.organisation_id},
            {"profile", d.profile_id},
            {"segment", d.segment},
            {"status", d.status},
            {"created_at", iso(d.created_at)},
            {"last_seen_at", d.last_seen_at ? json(iso(*d.last_seen_at)) : json(nullptr)}};
  return j;
}

asio::awaitable<Response> list_devices(ApiState& s, Call& call) {
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  auto devices = s.ctx.store.devices().list(*organisation);
  if (!devices) co_return internal_error(devices.error());
  json out = json::array();
  for (const auto& d : *devices) out.push_back(device_json(d));
  co_return json_response(200, {{"organisation", *organisation}, {"devices", out}});
}

asio::awaitable<Response> device_detail(ApiState& s, Call& call) {
  auto device = s.ctx.store.devices().find(call.params["id"]);
  if (!device) co_return internal_error(device.error());
  // Another organisation's device is answered like a missing one: its existence is not
  // the caller's business (JPCERT I-9).
  const auto& user = call.caller->user;
  if (!*device ||
      ((*device)->organisation_id != user.organisation_id && !identity::spans_organisations(*call.caller))) {
    co_return problem(404, "not_found", "No such device");
  }
  json j = device_json(**device);
  auto counters = s.ctx.store.device_counters().find((*device)->id);
  if (!counters) co_return internal_error(counters.error());
  if (*counters) {
    j["counters"] = {{"messages", (*counters)->messages},
                     {"bytes", (*counters)->bytes},
                     {"refusals", (*counters)->refusals},
                     {"connects", (*counters)->connects}};
  }
  auto certificates = s.ctx.store.certificates().list_for_device((*device)->id);
  if (!certificates) co_return internal_error(certificates.error());
  json certs = json::array();
  for (const auto& c : *certificates) {
    certs.push_back({{"serial", c.serial_hex},
                     {"not_after", iso(c.not_after)},
                     {"revoked", c.revoked_at.has_value()},
                     {"fingerprint_sha256", c.fingerprint_sha256}});
  }
  j["certificates"] = certs;
  co_return json_response(200, j);
}

}  // namespace

void add_device_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/devices", Access::full, Permission::devices_read, {}, false, list_devices},
      {"GET", "/api/v1/devices/{id}", Access::full, Permission::devices_read, {}, false, device_detail},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

// The console API (api.h), devices and their profiles: the list and one device with its
// counters and certificates; creating, disabling, enabling, revoking and deleting devices;
// reading, storing and deleting profiles. What devices sent is in api_telemetry.cpp.
//
// Device actions are the registry's (identity/devices.h), as for `torii admin device ...`;
// their live effects on the gateway go through ApiContext::gateway. Each change is a
// security event with the person as actor.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/json_writer.h"
#include "console/api_internal.h"
#include "identity/enrolment.h"
#include "policy/acl.h"
#include "policy/profile.h"

namespace torii::console::api {

using identity::Permission;

namespace {

// A device as the API shows it. Written straight as text: the device list is the console's
// most frequent request, and a document tree of every device cost it more than everything
// else the request does (docs/benchmarks.md).
void write_device(JsonWriter& w, const store::DeviceRecord& d, std::optional<bool> connected = std::nullopt) {
  w.begin_object()
      .key("id")
      .string(d.id)
      .key("name")
      .string(d.name)
      .key("organisation")
      .string(d.organisation_id)
      .key("profile")
      .string(d.profile_id)
      .key("segment")
      .string(d.segment)
      .key("tags")
      .begin_array();
  for (const auto& tag : d.tags) w.string(tag);
  w.end_array().key("status").string(d.status).key("created_at").string(iso(d.created_at)).key("last_seen_at");
  if (d.last_seen_at) {
    w.string(iso(*d.last_seen_at));
  } else {
    w.null();
  }
  if (d.disabled_at) w.key("disabled_at").string(iso(*d.disabled_at)).key("disabled_reason").string(d.disabled_reason);
  if (connected) w.key("connected").boolean(*connected);
  w.end_object();
}

// The same, as a document, for the answers that add to it.
json device_json(const store::DeviceRecord& d) {
  JsonWriter w;
  write_device(w, d);
  return json::parse(w.take());
}

json certificate_json(const store::CertificateRecord& c) {
  return {{"serial", c.serial_hex},
          {"not_after", iso(c.not_after)},
          {"revoked", c.revoked_at.has_value()},
          {"fingerprint_sha256", c.fingerprint_sha256}};
}

json profile_json(const store::DeviceProfileRecord& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"organisation", p.organisation_id},
          {"version", p.version},
          {"updated_at", iso(p.updated_at)},
          {"definition", json::parse(p.definition_json, nullptr, false)}};
}

// The reason an action was given in its body, or the default.
std::string reason_of(Call& call, std::string_view fallback) {
  auto it = call.fields.find("reason");
  return it == call.fields.end() || it->second.empty() ? std::string(fallback) : it->second;
}

// The device as stored now, for the answer to an action.
Response device_answer(ApiState& s, std::string_view id) {
  auto device = s.ctx.store.devices().find(id);
  if (!device) return internal_error(device.error());
  if (!*device) return problem(404, "not_found", "No such device");
  return json_response(200, device_json(**device));
}

// Whether the device has a live MQTT connection now; nullopt when there is no gateway to ask.
std::optional<bool> connected(const ApiState& s, std::string_view id) {
  if (!s.ctx.gateway.connected) return std::nullopt;
  return s.ctx.gateway.connected(id);
}

void disconnect(ApiState& s, std::string_view id, std::string_view why) {
  if (s.ctx.gateway.disconnect_device) s.ctx.gateway.disconnect_device(id, why);
}

// The running rules read the device again (created, enabled, tags changed).
void device_changed(const ApiState& s, const store::DeviceRecord& device) {
  if (s.ctx.gateway.device_changed) s.ctx.gateway.device_changed(device);
}

// What GET /devices may be narrowed to: each filter given must hold.
struct DeviceFilter {
  std::vector<std::string> tags;  // every one of them
  std::optional<std::string> segment;
  std::optional<std::string> profile;
  std::optional<std::string> status;

  [[nodiscard]] bool admits(const store::DeviceRecord& d) const {
    if (segment && d.segment != *segment) return false;
    if (profile && d.profile_id != *profile) return false;
    if (status && d.status != *status) return false;
    return std::all_of(tags.begin(), tags.end(),
                       [&](const std::string& tag) { return std::binary_search(d.tags.begin(), d.tags.end(), tag); });
  }
};

// ?tag=a,b&segment=s&profile=p&status=active|disabled. Tags and names are identifiers, so a
// value is taken as sent.
tl::expected<DeviceFilter, std::vector<FieldProblem>> device_filter(std::string_view query) {
  DeviceFilter filter;
  std::vector<FieldProblem> problems;
  if (auto text = query_parameter(query, "profile")) {
    if (!policy::valid_device_id(*text)) problems.push_back({"profile", "invalid", "a profile id"});
    filter.profile = std::move(*text);
  }
  if (auto text = query_parameter(query, "segment")) {
    if (!policy::valid_segment_name(*text)) problems.push_back({"segment", "invalid", "a segment name"});
    filter.segment = std::move(*text);
  }
  if (auto text = query_parameter(query, "status")) {
    if (*text != store::kDeviceStatusActive && *text != store::kDeviceStatusDisabled) {
      problems.push_back({"status", "invalid", "active or disabled"});
    }
    filter.status = std::move(*text);
  }
  if (auto tags = query_list(query, "tag")) {
    filter.tags = std::move(*tags);
    if (filter.tags.empty() || !std::all_of(filter.tags.begin(), filter.tags.end(), policy::valid_tag) ||
        filter.tags.size() > store::kMaxDeviceTags) {
      problems.push_back({"tag", "invalid", fmt::format("up to {} tags, separated by commas", store::kMaxDeviceTags)});
    }
  }
  if (!problems.empty()) return tl::unexpected(std::move(problems));
  return filter;
}

asio::awaitable<Response> list_devices(ApiState& s, Call& call) {
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  auto filter = device_filter(call.request.query);
  if (!filter) co_return invalid_input(filter.error(), 400);
  auto devices = s.ctx.store.devices().list(*organisation);
  if (!devices) co_return internal_error(devices.error());
  JsonWriter w;
  w.begin_object().key("organisation").string(*organisation).key("devices").begin_array();
  for (const auto& d : *devices) {
    if (filter->admits(d)) write_device(w, d, connected(s, d.id));
  }
  w.end_array().end_object();
  co_return json_text_response(200, w.take());
}

asio::awaitable<Response> device_detail(ApiState& s, Call& call) {
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  json j = device_json(*device);
  if (auto c = connected(s, device->id)) j["connected"] = *c;
  auto counters = s.ctx.store.device_counters().find(device->id);
  if (!counters) co_return internal_error(counters.error());
  if (*counters) {
    j["counters"] = {{"messages", (*counters)->messages},
                     {"bytes", (*counters)->bytes},
                     {"refusals", (*counters)->refusals},
                     {"connects", (*counters)->connects}};
  }
  auto certificates = s.ctx.store.certificates().list_for_device(device->id);
  if (!certificates) co_return internal_error(certificates.error());
  json certs = json::array();
  for (const auto& c : *certificates) certs.push_back(certificate_json(c));
  j["certificates"] = certs;
  co_return json_response(200, j);
}

// The lifetime of the enrolment tokens issued now (devices.enrolment_token_hours).
std::chrono::hours token_lifetime(const ApiState& s) {
  return std::chrono::hours(s.settings.devices.enrolment_token_hours);
}

void emit_token_issued(ApiState& s, Call& call, const identity::EnrolmentTicket& ticket) {
  s.emit(&*call.caller, "device.enrolment_token_issued", "device:" + ticket.device.id, events::Outcome::success,
         call.origin, {{"organisation", ticket.device.organisation_id}, {"expires_at", iso(ticket.expires_at)}});
}

// IIIT DI1, J9: a device that makes its own key. No certificate or key now: the answer
// carries the one-time token the device enrols with (POST /api/v1/enrol), shown here only.
asio::awaitable<Response> create_for_enrolment(ApiState& s, Call& call, identity::NewDevice spec) {
  if (s.ctx.enrolment == nullptr) co_return devices_unavailable();
  spec.enrolment = true;
  auto problems = s.ctx.devices->check(spec);
  if (!problems) co_return internal_error(problems.error());
  if (spec.csr_pem) {
    problems->push_back({"csr", "conflict", "not together with enrolment: the device sends its CSR when it enrols"});
  }
  if (!problems->empty()) co_return invalid_input(*problems);
  auto made = s.ctx.enrolment->create_device(spec, "user:" + call.caller->user.id, token_lifetime(s));
  if (!made) {
    if (made.error().is(Errc::already_exists)) {
      co_return problem(409, "conflict", "A device with this id exists",
                        {{"errors", json::array({{{"field", "id"}, {"code", "taken"}, {"message", "is taken"}}})}});
    }
    co_return internal_error(made.error());
  }
  const auto& [bundle, ticket] = *made;
  s.emit(&*call.caller, "device.created", "device:" + spec.id, events::Outcome::success, call.origin,
         {{"organisation", spec.organisation_id},
          {"profile", spec.profile_id},
          {"segment", spec.segment},
          {"tags", bundle.device.tags},
          {"key_generated_by", "device"},
          {"awaiting_enrolment", true}});
  emit_token_issued(s, call, ticket);
  device_changed(s, bundle.device);
  co_return json_response(201, {{"device", device_json(bundle.device)},
                                {"enrolment_token", ticket.token},
                                {"enrolment_expires_at", iso(ticket.expires_at)}});
}

// JPCERT I-2, IIIT N1, J9: the device gets its own certificate (and data key). A key pair
// made here is handed over in this answer only: it is stored nowhere, and no later answer
// holds it. A CSR keeps the device's key on the device.
asio::awaitable<Response> create_device(ApiState& s, Call& call) {
  if (s.ctx.devices == nullptr) co_return devices_unavailable();
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  identity::NewDevice spec;
  spec.id = call.fields["id"];
  spec.name = call.fields["name"];
  spec.organisation_id = *organisation;
  spec.profile_id = call.fields["profile"];
  if (call.fields.contains("segment")) spec.segment = call.fields["segment"];
  spec.tags = call.lists["tags"];
  spec.serial_number = call.fields["serial_number"];
  spec.firmware_version = call.fields["firmware_version"];
  if (call.fields.contains("csr")) spec.csr_pem = call.fields["csr"];
  if (call.fields["enrolment"] == "true") co_return co_await create_for_enrolment(s, call, std::move(spec));

  auto problems = s.ctx.devices->check(spec);
  if (!problems) co_return internal_error(problems.error());
  if (!problems->empty()) co_return invalid_input(*problems);
  auto bundle = s.ctx.devices->create(spec);
  if (!bundle) {
    if (bundle.error().is(Errc::already_exists)) {
      co_return problem(409, "conflict", "A device with this id exists",
                        {{"errors", json::array({{{"field", "id"}, {"code", "taken"}, {"message", "is taken"}}})}});
    }
    // Every other field was checked above: what is left is the request.
    if (spec.csr_pem && (bundle.error().is(Errc::invalid_argument) || bundle.error().is(Errc::authentication_failed))) {
      co_return invalid_input(std::vector<FieldProblem>{
          {"csr", "invalid", "must be a PEM certificate request for an EC P-256 key, signed with that key"}});
    }
    co_return internal_error(bundle.error());
  }
  s.emit(&*call.caller, "device.created", "device:" + spec.id, events::Outcome::success, call.origin,
         {{"organisation", spec.organisation_id},
          {"profile", spec.profile_id},
          {"segment", spec.segment},
          {"tags", bundle->device.tags},
          {"key_generated_by", spec.csr_pem ? "device" : "server"}});
  s.emit(&*call.caller, "certificate.issued", "device:" + spec.id, events::Outcome::success, call.origin,
         {{"serial", bundle->certificate->serial_hex}, {"not_after", iso(bundle->certificate->not_after)}});
  json body = {{"device", device_json(bundle->device)},
               {"certificate", certificate_json(*bundle->certificate)},
               {"certificate_pem", bundle->certificate->pem},
               {"ca_bundle_pem", bundle->ca_bundle_pem}};
  if (bundle->private_key_pem) body["private_key_pem"] = to_string(bundle->private_key_pem->view());
  device_changed(s, bundle->device);
  co_return json_response(201, body);
}

Response device_error(const Error& e) {
  if (e.is(Errc::not_found)) return problem(404, "not_found", "No such device");
  return internal_error(e);
}

// Disabling keeps the device's data and certificates; it is refused at its next connection
// and its live one is closed now (JPCERT I-2).
asio::awaitable<Response> disable_device(ApiState& s, Call& call) {
  if (s.ctx.devices == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  const std::string reason = reason_of(call, "disabled by an administrator");
  if (auto st = s.ctx.devices->disable(device->id, reason); !st) co_return device_error(st.error());
  s.emit(&*call.caller, "device.disabled", "device:" + device->id, events::Outcome::success, call.origin,
         {{"reason", reason}});
  disconnect(s, device->id, "device disabled");
  co_return device_answer(s, device->id);
}

asio::awaitable<Response> enable_device(ApiState& s, Call& call) {
  if (s.ctx.devices == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  if (auto st = s.ctx.devices->enable(device->id); !st) co_return device_error(st.error());
  s.emit(&*call.caller, "device.enabled", "device:" + device->id, events::Outcome::success, call.origin);
  auto enabled = s.ctx.store.devices().find(device->id);
  if (!enabled) co_return internal_error(enabled.error());
  if (!*enabled) co_return problem(404, "not_found", "No such device");
  device_changed(s, **enabled);
  co_return json_response(200, device_json(**enabled));
}

// Tags are labels rules select devices by (docs/rules.md); replacing them takes effect on
// the running rules at once.
asio::awaitable<Response> set_device_tags(ApiState& s, Call& call) {
  if (s.ctx.devices == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  const auto& tags = call.lists["tags"];
  if (auto problems = identity::DeviceRegistry::check_tags(tags); !problems.empty()) {
    co_return invalid_input(problems);
  }
  auto changed = s.ctx.devices->set_tags(device->id, tags);
  if (!changed) co_return device_error(changed.error());
  if (changed->tags != device->tags) {
    s.emit(&*call.caller, "device.tags_changed", "device:" + device->id, events::Outcome::success, call.origin,
           {{"before", device->tags}, {"after", changed->tags}});
    device_changed(s, *changed);
  }
  co_return json_response(200, device_json(*changed));
}

// JPCERT VI-4, IIIT N1: the certificates go on the revocation list, the live session is
// closed, and the gateway refuses the device's return.
asio::awaitable<Response> revoke_device(ApiState& s, Call& call) {
  if (s.ctx.devices == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  const std::string reason = reason_of(call, "revoked by an administrator");
  auto serials = s.ctx.devices->revoke_certificates(device->id, reason);
  if (!serials) co_return device_error(serials.error());
  for (const auto& serial : *serials) {
    s.emit(&*call.caller, "certificate.revoked", "certificate:" + serial, events::Outcome::success, call.origin,
           {{"device", device->id}, {"reason", reason}});
  }
  disconnect(s, device->id, "certificate revoked");
  co_return json_response(200, {{"id", device->id}, {"revoked", *serials}});
}

// Crypto-shredding (JPCERT VI-1): the rows go and the device's data key is destroyed.
asio::awaitable<Response> delete_device(ApiState& s, Call& call) {
  if (s.ctx.devices == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  disconnect(s, device->id, "device deleted");
  if (auto st = s.ctx.devices->remove(device->id); !st) co_return device_error(st.error());
  s.emit(&*call.caller, "device.deleted", "device:" + device->id, events::Outcome::success, call.origin,
         {{"data", "deleted; its key destroyed"}});
  if (s.ctx.gateway.device_deleted) s.ctx.gateway.device_deleted(device->id);
  // The store deleted the routes naming the device; the gateway drops them as well.
  if (s.ctx.gateway.reload_routes) {
    if (auto reloaded = s.ctx.gateway.reload_routes(); !reloaded) co_return internal_error(reloaded.error());
  }
  co_return no_content();
}

// IIIT DI1, J9; JPCERT VI-4: a new one-time token for an existing device, to enrol it
// again after its certificate expired or was revoked; its earlier token stops working.
asio::awaitable<Response> issue_enrolment_token(ApiState& s, Call& call) {
  if (s.ctx.enrolment == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  auto ticket = s.ctx.enrolment->issue_token(device->id, "user:" + call.caller->user.id, token_lifetime(s));
  if (!ticket) {
    if (ticket.error().is(Errc::permission_denied)) {
      co_return problem(409, "device_disabled", "The device is disabled; enable it first");
    }
    co_return device_error(ticket.error());
  }
  emit_token_issued(s, call, *ticket);
  co_return json_response(201, {{"device", device_json(ticket->device)},
                                {"enrolment_token", ticket->token},
                                {"enrolment_expires_at", iso(ticket->expires_at)}});
}

// The device's side of enrolment: no session, the token is the credential (it travels in
// the body, never in the URL, and is never logged). Every kind of token problem gets the
// same answer, so the answer tells nothing about which tokens or devices exist; the reason
// goes to the security log. Counted against the source's sign-in attempts (the route is
// limited), so tokens cannot be guessed at speed.
asio::awaitable<Response> enrol_device(ApiState& s, Call& call) {
  if (s.ctx.enrolment == nullptr) co_return devices_unavailable();
  auto outcome = s.ctx.enrolment->enrol(call.fields["token"], call.fields["csr"]);
  if (!outcome) co_return internal_error(outcome.error());
  const std::string object =
      outcome->device_id.empty() ? std::string("device:unknown") : "device:" + outcome->device_id;
  const std::string actor = outcome->device_id.empty() ? std::string("anonymous") : "device:" + outcome->device_id;
  if (outcome->refused) {
    json details = {{"reason", identity::to_string(*outcome->refused)}};
    // Whose record this is, when the token named a device: its organisation's auditors read it.
    if (!outcome->organisation_id.empty()) details["organisation"] = outcome->organisation_id;
    if (s.ctx.events) {
      s.ctx.events(
          {actor, "device.enrolment_refused", object, events::Outcome::denied, call.origin.source, std::move(details)});
    }
    if (*outcome->refused == identity::EnrolmentRefusal::bad_csr) {
      co_return invalid_input(std::vector<FieldProblem>{
          {"csr", "invalid", "must be a PEM certificate request for an EC P-256 key, signed with that key"}});
    }
    co_return problem(401, "enrolment_refused", "The enrolment token is not valid; ask for a new one",
                      {{"error", "enrolment_refused"}});
  }
  const auto& enrolled = *outcome->enrolled;
  if (s.ctx.events) {
    s.ctx.events({actor,
                  "device.enrolled",
                  object,
                  events::Outcome::success,
                  call.origin.source,
                  {{"organisation", enrolled.device.organisation_id},
                   {"serial", enrolled.certificate.serial_hex},
                   {"not_after", iso(enrolled.certificate.not_after)},
                   {"key_generated_by", "device"}}});
  }
  json answer = {{"device", enrolled.device.id},
                 {"certificate_pem", enrolled.certificate.pem},
                 {"ca_bundle_pem", enrolled.ca_bundle_pem},
                 {"expires_at", iso(enrolled.certificate.not_after)}};
  // The key the device checks commands with (IIIT J8), over the connection it pinned.
  if (s.ctx.commands != nullptr) answer["command_key"] = base64url_encode(s.ctx.commands->public_key());
  co_return json_response(201, answer);
}

// The profile the path names, when the caller may see it; otherwise the answer (404 as for
// a missing one).
tl::expected<store::DeviceProfileRecord, Response> reachable_profile(ApiState& s, Call& call) {
  auto profile = s.ctx.store.device_profiles().find(call.params["id"]);
  if (!profile) return tl::unexpected(internal_error(profile.error()));
  const auto& user = call.caller->user;
  if (!*profile ||
      ((*profile)->organisation_id != user.organisation_id && !identity::spans_organisations(*call.caller))) {
    return tl::unexpected(problem(404, "not_found", "No such profile"));
  }
  return std::move(**profile);
}

// JPCERT VII-1: the organisation's device certificates that expire within ?days= (1-365,
// default 30), expired ones included, soonest first; a certificate already replaced by a
// later-expiring one of the same device (renewal) and revoked ones are left out.
asio::awaitable<Response> expiring_certificates(ApiState& s, Call& call) {
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  std::int64_t days = 30;
  if (auto text = query_parameter(call.request.query, "days")) {
    char* end = nullptr;
    const long n = std::strtol(text->c_str(), &end, 10);
    if (text->empty() || *end != '\0' || n < 1 || n > 365) {
      co_return invalid_input({{"days", "invalid", "a number of days from 1 to 365"}}, 400);
    }
    days = n;
  }
  const UnixMillis now = to_unix_millis(s.ctx.clock.now());
  auto expiring = s.ctx.store.certificates().list_expiring(now + days * 86'400'000);
  if (!expiring) co_return internal_error(expiring.error());
  // Per device met, read once: nullopt when it is not the organisation's, else the latest
  // expiry among its certificates not revoked.
  std::map<std::string, std::optional<UnixMillis>, std::less<>> latest;
  json out = json::array();
  for (const auto& c : *expiring) {
    if (c.kind != store::kCertKindDevice || !c.device_id) continue;
    const std::string& id = *c.device_id;
    auto known = latest.find(id);
    if (known == latest.end()) {
      auto device = s.ctx.store.devices().find(id);
      if (!device) co_return internal_error(device.error());
      std::optional<UnixMillis> until;
      if (*device && (*device)->organisation_id == *organisation) {
        auto all = s.ctx.store.certificates().list_for_device(id);
        if (!all) co_return internal_error(all.error());
        until = 0;
        for (const auto& other : *all) {
          if (!other.revoked_at) until = std::max(*until, other.not_after);
        }
      }
      known = latest.emplace(id, until).first;
    }
    // Not the organisation's, or replaced by a later-expiring certificate (a renewal).
    if (!known->second || *known->second > c.not_after) continue;
    out.push_back(
        {{"device", id}, {"serial", c.serial_hex}, {"not_after", iso(c.not_after)}, {"expired", c.not_after <= now}});
  }
  co_return json_response(200, {{"organisation", *organisation}, {"days", days}, {"certificates", std::move(out)}});
}

asio::awaitable<Response> list_profiles(ApiState& s, Call& call) {
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  auto profiles = s.ctx.store.device_profiles().list(*organisation);
  if (!profiles) co_return internal_error(profiles.error());
  json out = json::array();
  for (const auto& p : *profiles) out.push_back(profile_json(p));
  co_return json_response(200, {{"organisation", *organisation}, {"profiles", std::move(out)}});
}

asio::awaitable<Response> show_profile(ApiState& s, Call& call) {
  auto profile = reachable_profile(s, call);
  if (!profile) co_return profile.error();
  co_return json_response(200, profile_json(*profile));
}

// JPCERT II-5, IIIT J8: what a device's telemetry is checked against. Devices connected now
// use the new definition from their next message on.
asio::awaitable<Response> put_profile(ApiState& s, Call& call) {
  if (s.ctx.devices == nullptr) co_return devices_unavailable();
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  store::DeviceProfileRecord profile;
  profile.id = call.params["id"];
  profile.organisation_id = *organisation;
  profile.name = call.fields.contains("name") ? call.fields["name"] : profile.id;
  profile.definition_json = call.fields["definition"];
  if (auto problems = identity::DeviceRegistry::check_profile(profile); !problems.empty()) {
    co_return invalid_input(problems);
  }
  auto existing = s.ctx.store.device_profiles().find(profile.id);
  if (!existing) co_return internal_error(existing.error());
  if (auto st = s.ctx.devices->put_profile(profile); !st) {
    if (st.error().is(Errc::conflict)) co_return problem(409, "conflict", "This profile id is taken");
    co_return internal_error(st.error());
  }
  auto stored = s.ctx.store.device_profiles().find(profile.id);
  if (!stored || !*stored) co_return internal_error(stored ? Error{{}, "profile vanished"} : stored.error());
  s.emit(&*call.caller, "profile.stored", "profile:" + profile.id, events::Outcome::success, call.origin,
         {{"organisation", profile.organisation_id}, {"version", (*stored)->version}});
  if (s.ctx.gateway.profile_changed) s.ctx.gateway.profile_changed(profile.id);
  co_return json_response(*existing ? 200 : 201, profile_json(**stored));
}

asio::awaitable<Response> delete_profile(ApiState& s, Call& call) {
  auto profile = reachable_profile(s, call);
  if (!profile) co_return profile.error();
  auto removed = s.ctx.store.device_profiles().remove(profile->id);
  if (!removed) {
    if (removed.error().is(Errc::conflict)) {
      co_return problem(409, "profile_in_use", "Devices use this profile; give them another one first");
    }
    co_return internal_error(removed.error());
  }
  s.emit(&*call.caller, "profile.deleted", "profile:" + profile->id, events::Outcome::success, call.origin,
         {{"organisation", profile->organisation_id}});
  if (s.ctx.gateway.profile_changed) s.ctx.gateway.profile_changed(profile->id);
  co_return no_content();
}

}  // namespace

tl::expected<store::DeviceRecord, Response> reachable_device(ApiState& s, Call& call) {
  auto device = s.ctx.store.devices().find(call.params["id"]);
  if (!device) return tl::unexpected(internal_error(device.error()));
  // Another organisation's device is answered like a missing one: its existence is not
  // the caller's business (JPCERT I-9).
  const auto& user = call.caller->user;
  if (!*device ||
      ((*device)->organisation_id != user.organisation_id && !identity::spans_organisations(*call.caller))) {
    return tl::unexpected(problem(404, "not_found", "No such device"));
  }
  return std::move(**device);
}

Response devices_unavailable() {
  return problem(503, "unavailable", "Device management is not available on this server");
}

void add_device_routes(std::vector<Route>& routes) {
  // Step-up (JPCERT I-4) for what hands out credentials, re-admits a device or cannot be
  // undone; disabling is the emergency brake and works on the session alone.
  const std::vector<Route> mine = {
      {"GET", "/api/v1/devices", Access::full, Permission::devices_read, {}, false, list_devices},
      {"POST",
       "/api/v1/devices",
       Access::full,
       Permission::devices_write,
       {{"id", true, 64},
        {"name", false, 128},
        {"profile", false, 64},
        {"segment", false, 64},
        {"tags", false, 64, false, store::kMaxDeviceTags},
        {"serial_number", false, 64},
        {"firmware_version", false, 64},
        {"csr", false, 8192},
        {"enrolment", false, 0, true}},
       false,
       create_device,
       true},
      {"POST",
       "/api/v1/devices/{id}/enrolment-token",
       Access::full,
       Permission::devices_write,
       {},
       false,
       issue_enrolment_token,
       true},
      // Public: the device has no session; its token is the credential (see enrol_device).
      {"POST",
       "/api/v1/enrol",
       Access::anyone,
       std::nullopt,
       {{"token", true, 128}, {"csr", true, 8192}},
       true,
       enrol_device},
      {"GET", "/api/v1/devices/{id}", Access::full, Permission::devices_read, {}, false, device_detail},
      {"DELETE", "/api/v1/devices/{id}", Access::full, Permission::devices_delete, {}, false, delete_device, true},
      {"POST",
       "/api/v1/devices/{id}/disable",
       Access::full,
       Permission::devices_write,
       {{"reason", false, 256}},
       false,
       disable_device},
      {"POST", "/api/v1/devices/{id}/enable", Access::full, Permission::devices_write, {}, false, enable_device, true},
      {"PUT",
       "/api/v1/devices/{id}/tags",
       Access::full,
       Permission::devices_write,
       {{"tags", true, 64, false, store::kMaxDeviceTags}},
       false,
       set_device_tags},
      {"POST",
       "/api/v1/devices/{id}/revoke",
       Access::full,
       Permission::devices_write,
       {{"reason", false, 256}},
       false,
       revoke_device,
       true},
      {"GET",
       "/api/v1/certificates/expiring",
       Access::full,
       Permission::devices_read,
       {},
       false,
       expiring_certificates},
      {"GET", "/api/v1/profiles", Access::full, Permission::profiles_read, {}, false, list_profiles},
      {"GET", "/api/v1/profiles/{id}", Access::full, Permission::profiles_read, {}, false, show_profile},
      {"PUT",
       "/api/v1/profiles/{id}",
       Access::full,
       Permission::profiles_write,
       {{"name", false, 128}, {"definition", true, policy::kMaxDefinitionBytes, false, 0, true}},
       false,
       put_profile,
       true},
      {"DELETE", "/api/v1/profiles/{id}", Access::full, Permission::profiles_write, {}, false, delete_profile, true},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api

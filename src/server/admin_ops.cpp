#include "server/admin_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>

#include "alerts/alert_book.h"
#include "broker/broker.h"
#include "broker/store_writer.h"
#include "identity/devices.h"
#include "identity/enrolment.h"
#include "keys/key_ring.h"

namespace torii::server {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxTelemetryRows = 10000;

// Reads a string argument; absent → fallback, present but not a string → error.
Result<std::string> text_arg(const json& args, const char* name, std::optional<std::string> fallback = std::nullopt) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) {
    if (fallback) return *fallback;
    return fail(Errc::invalid_argument, fmt::format("missing argument '{}'", name));
  }
  if (!it->is_string()) return fail(Errc::invalid_argument, fmt::format("argument '{}' must be a string", name));
  return it->get<std::string>();
}

// Reads a list of strings; absent → empty.
Result<std::vector<std::string>> strings_arg(const json& args, const char* name) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return std::vector<std::string>{};
  const bool strings =
      it->is_array() && std::all_of(it->begin(), it->end(), [](const json& e) { return e.is_string(); });
  if (!strings) return fail(Errc::invalid_argument, fmt::format("argument '{}' must be a list of strings", name));
  return it->get<std::vector<std::string>>();
}

Result<std::int64_t> int_arg(const json& args, const char* name, std::int64_t fallback) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    return fail(Errc::invalid_argument, fmt::format("argument '{}' must be an integer", name));
  }
  return it->get<std::int64_t>();
}

Result<bool> bool_arg(const json& args, const char* name) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return false;
  if (!it->is_boolean()) return fail(Errc::invalid_argument, fmt::format("argument '{}' must be true or false", name));
  return it->get<bool>();
}

json device_json(const store::DeviceRecord& d) {
  json j = {{"id", d.id},
            {"name", d.name},
            {"organisation", d.organisation_id},
            {"profile", d.profile_id},
            {"segment", d.segment},
            {"tags", d.tags},
            {"serial_number", d.serial_number},
            {"firmware_version", d.firmware_version},
            {"status", d.status},
            {"created_at", format_utc_millis(from_unix_millis(d.created_at))}};
  j["last_seen_at"] = d.last_seen_at ? json(format_utc_millis(from_unix_millis(*d.last_seen_at))) : json(nullptr);
  if (d.disabled_at) {
    j["disabled_at"] = format_utc_millis(from_unix_millis(*d.disabled_at));
    j["disabled_reason"] = d.disabled_reason;
  }
  return j;
}

json certificate_json(const store::CertificateRecord& c) {
  json j = {{"serial", c.serial_hex},
            {"kind", c.kind},
            {"subject", c.subject},
            {"fingerprint_sha256", c.fingerprint_sha256},
            {"not_before", format_utc_millis(from_unix_millis(c.not_before))},
            {"not_after", format_utc_millis(from_unix_millis(c.not_after))}};
  if (c.device_id) j["device_id"] = *c.device_id;
  if (c.revoked_at) {
    j["revoked_at"] = format_utc_millis(from_unix_millis(*c.revoked_at));
    j["revocation_reason"] = c.revocation_reason;
  }
  return j;
}

class Executor {
 public:
  Executor(AdminContext& c, const AdminRequest& r)
      : c_(c), r_(r), registry_(*c.installation.store, *c.installation.keys, *c.installation.ca, c.clock) {}

  Result<json> run() {
    static const std::map<std::string, Result<json> (Executor::*)(), std::less<>> ops = {
        {"device.create", &Executor::device_create},
        {"device.list", &Executor::device_list},
        {"device.show", &Executor::device_show},
        {"device.disable", &Executor::device_disable},
        {"device.enable", &Executor::device_enable},
        {"device.tags", &Executor::device_tags},
        {"device.revoke", &Executor::device_revoke},
        {"device.delete", &Executor::device_delete},
        {"device.enrolment_token", &Executor::device_enrolment_token},
        {"profile.put", &Executor::profile_put},
        {"profile.list", &Executor::profile_list},
        {"telemetry.list", &Executor::telemetry_list},
        {"cert.issue", &Executor::cert_issue},
        {"cert.revoke", &Executor::cert_revoke},
        {"route.add", &Executor::route_add},
        {"route.list", &Executor::route_list},
        {"route.remove", &Executor::route_remove},
        {"device.command", &Executor::device_command},
        {"command.list", &Executor::command_list},
        {"rule.create", &Executor::rule_create},
        {"rule.change", &Executor::rule_change},
        {"rule.list", &Executor::rule_list},
        {"rule.show", &Executor::rule_show},
        {"rule.delete", &Executor::rule_delete},
        {"alert.list", &Executor::alert_list},
        {"alert.acknowledge", &Executor::alert_acknowledge},
        {"alert.resolve", &Executor::alert_resolve},
        {"channel.create", &Executor::channel_create},
        {"channel.change", &Executor::channel_change},
        {"channel.list", &Executor::channel_list},
        {"channel.delete", &Executor::channel_delete},
    };
    auto it = ops.find(r_.op);
    if (it == ops.end()) return fail(Errc::invalid_argument, fmt::format("unknown request '{}'", r_.op));
    if (!r_.args.is_object()) return fail(Errc::invalid_argument, "arguments must be a JSON object");
    if (admin_op_writes(r_.op) && c_.log == nullptr) {
      return fail(Errc::unavailable, "this request changes state and needs the security log");
    }
    return (this->*(it->second))();
  }

 private:
  void record(std::string action, std::string object, json details = json::object()) {
    if (c_.log == nullptr) return;
    (void)c_.log->append(
        {r_.actor, std::move(action), std::move(object), events::Outcome::success, "local", std::move(details)});
  }

  void disconnect(const std::string& device_id, const std::string& why) {
    if (c_.broker) c_.broker->disconnect_device(device_id, mqtt::ReasonCode::administrative_action, why);
  }

  Result<json> device_create() {
    identity::NewDevice spec;
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    spec.id = *id;
    for (auto [name, field, fallback] :
         {std::tuple{"name", &spec.name, std::string()},
          std::tuple{"organisation", &spec.organisation_id, std::string(identity::kDefaultOrganisation)},
          std::tuple{"profile", &spec.profile_id, std::string()},
          std::tuple{"segment", &spec.segment, std::string("default")},
          std::tuple{"serial_number", &spec.serial_number, std::string()},
          std::tuple{"firmware_version", &spec.firmware_version, std::string()}}) {
      auto v = text_arg(r_.args, name, fallback);
      if (!v) return tl::unexpected(v.error());
      *field = std::move(*v);
    }
    auto tags = strings_arg(r_.args, "tags");
    if (!tags) return tl::unexpected(tags.error());
    spec.tags = std::move(*tags);
    if (r_.args.contains("csr")) {
      auto csr = text_arg(r_.args, "csr");
      if (!csr) return tl::unexpected(csr.error());
      spec.csr_pem = *csr;
    }
    auto enrolment = bool_arg(r_.args, "enrolment");
    if (!enrolment) return tl::unexpected(enrolment.error());
    if (*enrolment) return device_create_for_enrolment(std::move(spec));
    auto bundle = registry_.create(spec);
    if (!bundle) return tl::unexpected(bundle.error());
    record("device.created", "device:" + spec.id,
           {{"organisation", spec.organisation_id},
            {"profile", spec.profile_id},
            {"segment", spec.segment},
            {"tags", bundle->device.tags},
            {"key_generated_by", spec.csr_pem ? "device" : "server"}});
    if (c_.device_changed) c_.device_changed(bundle->device);
    record("certificate.issued", "device:" + spec.id,
           {{"serial", bundle->certificate->serial_hex},
            {"not_after", format_utc_millis(from_unix_millis(bundle->certificate->not_after))}});
    json out = {{"device", device_json(bundle->device)},
                {"certificate", certificate_json(*bundle->certificate)},
                {"certificate_pem", bundle->certificate->pem},
                {"ca_bundle_pem", bundle->ca_bundle_pem}};
    if (bundle->private_key_pem) out["private_key_pem"] = to_string(bundle->private_key_pem->view());
    return out;
  }

  // IIIT DI1, J9: no certificate or key now; the device makes its key and enrols with the
  // token (POST /api/v1/enrol), which is in this result only.
  Result<json> device_create_for_enrolment(identity::NewDevice spec) {
    if (spec.csr_pem) return fail(Errc::invalid_argument, "a CSR and enrolment exclude each other");
    identity::Enrolment enrolment(*c_.installation.store, registry_, c_.clock, c_.random);
    auto made = enrolment.create_device(std::move(spec), r_.actor, token_lifetime());
    if (!made) return tl::unexpected(made.error());
    const auto& [bundle, ticket] = *made;
    record("device.created", "device:" + bundle.device.id,
           {{"organisation", bundle.device.organisation_id},
            {"profile", bundle.device.profile_id},
            {"segment", bundle.device.segment},
            {"tags", bundle.device.tags},
            {"key_generated_by", "device"},
            {"awaiting_enrolment", true}});
    if (c_.device_changed) c_.device_changed(bundle.device);
    return ticket_json(ticket);
  }

  // A new one-time token for an existing, active device; its earlier token stops working.
  Result<json> device_enrolment_token() {
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    identity::Enrolment enrolment(*c_.installation.store, registry_, c_.clock, c_.random);
    auto ticket = enrolment.issue_token(*id, r_.actor, token_lifetime());
    if (!ticket) return tl::unexpected(ticket.error());
    return ticket_json(*ticket);
  }

  std::chrono::hours token_lifetime() const { return std::chrono::hours(c_.config.devices.enrolment_token_hours); }

  json ticket_json(const identity::EnrolmentTicket& ticket) {
    const std::string expires_at = format_utc_millis(from_unix_millis(ticket.expires_at));
    record("device.enrolment_token_issued", "device:" + ticket.device.id,
           {{"organisation", ticket.device.organisation_id}, {"expires_at", expires_at}});
    return {{"device", device_json(ticket.device)},
            {"enrolment_token", ticket.token},
            {"enrolment_expires_at", expires_at}};
  }

  Result<json> device_list() {
    auto org = text_arg(r_.args, "organisation", "");
    if (!org) return tl::unexpected(org.error());
    auto devices =
        org->empty() ? c_.installation.store->devices().list_all() : c_.installation.store->devices().list(*org);
    if (!devices) return tl::unexpected(devices.error());
    json out = json::array();
    for (const auto& d : *devices) out.push_back(device_json(d));
    return out;
  }

  Result<json> device_show() {
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    auto& store = *c_.installation.store;
    auto device = store.devices().find(*id);
    if (!device) return tl::unexpected(device.error());
    if (!*device) return fail(Errc::not_found, "no such device");
    json out = device_json(**device);
    auto certs = store.certificates().list_for_device(*id);
    if (!certs) return tl::unexpected(certs.error());
    out["certificates"] = json::array();
    for (const auto& cert : *certs) out["certificates"].push_back(certificate_json(cert));
    auto counters = store.device_counters().find(*id);
    if (!counters) return tl::unexpected(counters.error());
    json traffic = {{"messages", 0}, {"bytes", 0}, {"refusals", 0}, {"connects", 0}};
    if (*counters) {
      traffic = {{"messages", (*counters)->messages},
                 {"bytes", (*counters)->bytes},
                 {"refusals", (*counters)->refusals},
                 {"connects", (*counters)->connects}};
    }
    if (c_.broker) {
      // Not yet flushed to the store: the running totals are the broker's.
      const auto live = c_.broker->traffic(*id);
      traffic["messages_since_start"] = live.messages;
      traffic["refusals_since_start"] = live.refusals;
    }
    out["traffic"] = traffic;
    auto count = store.telemetry().count(*id);
    if (!count) return tl::unexpected(count.error());
    out["stored_messages"] = *count;
    auto latest = store.latest_values().list(*id);
    if (!latest) return tl::unexpected(latest.error());
    json values = json::object();
    for (const auto& v : *latest) {
      auto plain = c_.installation.keys->open(v.key_id, v.sealed, broker::latest_value_associated_data(*id, v.metric));
      if (!plain) continue;  // crypto-shredded
      values[v.metric] = {{"value", json::parse(to_string(plain->view()), nullptr, false)},
                          {"at", format_utc_millis(from_unix_millis(v.at))}};
    }
    out["latest"] = values;
    return out;
  }

  Result<json> device_disable() {
    auto id = text_arg(r_.args, "id");
    auto reason = text_arg(r_.args, "reason", "disabled by an administrator");
    if (!id) return tl::unexpected(id.error());
    if (!reason) return tl::unexpected(reason.error());
    if (auto st = registry_.disable(*id, *reason); !st) return tl::unexpected(st.error());
    record("device.disabled", "device:" + *id, {{"reason", *reason}});
    disconnect(*id, "device disabled");
    return json{{"id", *id}, {"status", "disabled"}};
  }

  // IIIT I5, I7, J8: checked against the device's profile, signed and recorded as the
  // console does (identity/device_commands.h); sent at once inside the running server.
  Result<json> device_command() {
    auto id = text_arg(r_.args, "id");
    auto name = text_arg(r_.args, "command");
    auto params = text_arg(r_.args, "params", "{}");
    auto ttl = int_arg(r_.args, "ttl_seconds", identity::kDefaultCommandLifetime.count());
    if (!id) return tl::unexpected(id.error());
    if (!name) return tl::unexpected(name.error());
    if (!params) return tl::unexpected(params.error());
    if (!ttl) return tl::unexpected(ttl.error());
    auto opened = device_and_commands(*id);
    if (!opened) return tl::unexpected(opened.error());
    auto [device, commands] = std::move(*opened);
    auto outcome = commands->issue(device, *name, *params, std::chrono::seconds(*ttl), r_.actor);
    if (!outcome) return tl::unexpected(outcome.error());
    if (!outcome->issued) {
      std::string problems;
      for (const auto& p : outcome->problems) {
        problems += fmt::format("{}{}: {}", problems.empty() ? "" : "; ", p.path, p.message);
      }
      return fail(Errc::invalid_argument, problems);
    }
    const auto& issued = *outcome->issued;
    record("device.command_sent", "device:" + *id,
           {{"organisation", device.organisation_id},
            {"command", issued.record.name},
            {"command_id", issued.record.id},
            {"expires_at", format_utc_millis(from_unix_millis(issued.record.expires_at))}});
    if (c_.send_command) c_.send_command(issued);
    return commands->describe(issued.record);
  }

  Result<json> command_list() {
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    auto opened = device_and_commands(*id);
    if (!opened) return tl::unexpected(opened.error());
    auto* commands = opened->second;
    auto listed = c_.installation.store->device_commands().list_for_device(*id, 100);
    if (!listed) return tl::unexpected(listed.error());
    json rows = json::array();
    for (const auto& c : *listed) {
      auto row = commands->describe(c);
      if (!row) return tl::unexpected(row.error());
      rows.push_back(std::move(*row));
    }
    return rows;
  }

  // JPCERT VIII-1, VIII-2: the operator sees every organisation's alerts and the
  // installation-wide ones (alerts/alert_book.h).
  Result<json> alert_list() {
    store::AlertRepository::Query q;
    auto status = text_arg(r_.args, "status", "");
    if (!status) return tl::unexpected(status.error());
    for (std::string_view rest = *status; !rest.empty();) {
      const auto comma = rest.find(',');
      const std::string_view one = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (one != store::kAlertOpen && one != store::kAlertAcknowledged && one != store::kAlertResolved) {
        return fail(Errc::invalid_argument, "status: open, acknowledged or resolved, separated by commas");
      }
      q.statuses.emplace_back(one);
    }
    auto limit = int_arg(r_.args, "limit", 100);
    if (!limit) return tl::unexpected(limit.error());
    if (*limit < 1 || *limit > static_cast<std::int64_t>(alerts::kMaxAlertsListed)) {
      return fail(Errc::invalid_argument, fmt::format("limit: a number from 1 to {}", alerts::kMaxAlertsListed));
    }
    q.limit = static_cast<std::size_t>(*limit);
    auto listed = book().list(q, alerts::Scope::everything());
    if (!listed) return tl::unexpected(listed.error());
    json rows = json::array();
    for (const auto& a : *listed) rows.push_back(alerts::to_json(a));
    return rows;
  }

  Result<json> alert_acknowledge() { return alert_change(false); }
  Result<json> alert_resolve() { return alert_change(true); }

  // The book records alert.acknowledged / alert.resolved with the operator as actor.
  Result<json> alert_change(bool resolve) {
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    const auto scope = alerts::Scope::everything();
    auto done = resolve ? book().resolve(*id, r_.actor, scope) : book().acknowledge(*id, r_.actor, scope);
    if (!done) return tl::unexpected(done.error());
    if (*done == alerts::Transition::not_found) return fail(Errc::not_found, "no such alert");
    if (*done == alerts::Transition::already) {
      return fail(Errc::conflict, resolve ? "the alert is already resolved" : "only an open alert can be acknowledged");
    }
    auto found = book().find(*id, scope);
    if (!found) return tl::unexpected(found.error());
    if (!*found) return fail(Errc::not_found, "no such alert");
    return alerts::to_json(**found);
  }

  // The running server's book, or one made here when the CLI runs the request itself.
  alerts::AlertBook& book() {
    if (c_.alerts != nullptr) return *c_.alerts;
    if (!own_alerts_) {
      own_alerts_ = std::make_unique<alerts::AlertBook>(*c_.installation.store, c_.log, c_.clock, c_.random);
    }
    return *own_alerts_;
  }

  // The device (not_found when unknown) and the installation's commands: the running
  // server's, or opened here when the CLI runs the request itself.
  Result<std::pair<store::DeviceRecord, identity::DeviceCommands*>> device_and_commands(const std::string& id) {
    auto device = c_.installation.store->devices().find(id);
    if (!device) return tl::unexpected(device.error());
    if (!*device) return fail(Errc::not_found, "no such device");
    identity::DeviceCommands* commands = c_.commands;
    if (commands == nullptr) {
      auto opened = identity::DeviceCommands::open(*c_.installation.store, *c_.installation.keys, c_.clock, c_.random);
      if (!opened) return tl::unexpected(opened.error());
      own_commands_ = std::move(*opened);
      commands = own_commands_.get();
    }
    return std::pair{std::move(**device), commands};
  }

  Result<json> device_enable() {
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    if (auto st = registry_.enable(*id); !st) return tl::unexpected(st.error());
    record("device.enabled", "device:" + *id);
    if (c_.device_changed) {
      auto device = c_.installation.store->devices().find(*id);
      if (!device) return tl::unexpected(device.error());
      if (*device) c_.device_changed(**device);
    }
    return json{{"id", *id}, {"status", "active"}};
  }

  // Replaces the device's tags (rules select devices by them).
  Result<json> device_tags() {
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    auto tags = strings_arg(r_.args, "tags");
    if (!tags) return tl::unexpected(tags.error());
    auto before = c_.installation.store->devices().find(*id);
    if (!before) return tl::unexpected(before.error());
    if (!*before) return fail(Errc::not_found, "no such device");
    auto changed = registry_.set_tags(*id, std::move(*tags));
    if (!changed) return tl::unexpected(changed.error());
    if (changed->tags != (*before)->tags) {
      record("device.tags_changed", "device:" + *id, {{"before", (*before)->tags}, {"after", changed->tags}});
      if (c_.device_changed) c_.device_changed(*changed);
    }
    return device_json(*changed);
  }

  Result<json> device_revoke() {
    auto id = text_arg(r_.args, "id");
    auto reason = text_arg(r_.args, "reason", "revoked by an administrator");
    if (!id) return tl::unexpected(id.error());
    if (!reason) return tl::unexpected(reason.error());
    auto serials = registry_.revoke_certificates(*id, *reason);
    if (!serials) return tl::unexpected(serials.error());
    for (const auto& serial : *serials) {
      record("certificate.revoked", "certificate:" + serial, {{"device", *id}, {"reason", *reason}});
    }
    disconnect(*id, "certificate revoked");
    return json{{"id", *id}, {"revoked", *serials}};
  }

  Result<json> device_delete() {
    auto id = text_arg(r_.args, "id");
    if (!id) return tl::unexpected(id.error());
    disconnect(*id, "device deleted");
    if (auto st = registry_.remove(*id); !st) return tl::unexpected(st.error());
    record("device.deleted", "device:" + *id, {{"data", "deleted; its key destroyed"}});
    if (c_.device_deleted) c_.device_deleted(*id);
    // The store deleted the routes naming the device; the broker drops them as well.
    if (c_.broker) {
      if (auto reloaded = c_.broker->load_routes(); !reloaded) return tl::unexpected(reloaded.error());
    }
    return json{{"id", *id}, {"deleted", true}};
  }

  Result<json> profile_put() {
    store::DeviceProfileRecord profile;
    auto id = text_arg(r_.args, "id");
    auto org = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    auto definition = text_arg(r_.args, "definition");
    if (!id) return tl::unexpected(id.error());
    if (!org) return tl::unexpected(org.error());
    if (!definition) return tl::unexpected(definition.error());
    auto name = text_arg(r_.args, "name", *id);
    if (!name) return tl::unexpected(name.error());
    profile.id = *id;
    profile.organisation_id = *org;
    profile.name = *name;
    profile.definition_json = *definition;
    if (auto st = registry_.put_profile(profile); !st) return tl::unexpected(st.error());
    record("profile.stored", "profile:" + *id, {{"organisation", *org}});
    if (c_.broker) c_.broker->invalidate_profile(*id);
    return json{{"id", *id}};
  }

  Result<json> profile_list() {
    auto org = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    if (!org) return tl::unexpected(org.error());
    auto profiles = c_.installation.store->device_profiles().list(*org);
    if (!profiles) return tl::unexpected(profiles.error());
    json out = json::array();
    for (const auto& p : *profiles) {
      out.push_back({{"id", p.id},
                     {"name", p.name},
                     {"organisation", p.organisation_id},
                     {"version", p.version},
                     {"updated_at", format_utc_millis(from_unix_millis(p.updated_at))},
                     {"definition", json::parse(p.definition_json, nullptr, false)}});
    }
    return out;
  }

  Result<json> telemetry_list() {
    auto id = text_arg(r_.args, "device");
    if (!id) return tl::unexpected(id.error());
    auto from = int_arg(r_.args, "from_ms", 0);
    auto to = int_arg(r_.args, "to_ms", std::numeric_limits<std::int64_t>::max());
    auto limit = int_arg(r_.args, "limit", 1000);
    if (!from) return tl::unexpected(from.error());
    if (!to) return tl::unexpected(to.error());
    if (!limit) return tl::unexpected(limit.error());
    if (*limit < 1 || static_cast<std::size_t>(*limit) > kMaxTelemetryRows) {
      return fail(Errc::invalid_argument, fmt::format("limit must be 1..{}", kMaxTelemetryRows));
    }
    auto rows = c_.installation.store->telemetry().range(*id, *from, *to, static_cast<std::size_t>(*limit));
    if (!rows) return tl::unexpected(rows.error());
    json out = json::array();
    for (const auto& row : *rows) {
      auto plain = c_.installation.keys->open(
          row.key_id, row.sealed,
          broker::telemetry_associated_data(row.device_id, row.kind, row.received_at, row.message_key));
      if (!plain)
        return fail(Errc::corrupt, fmt::format("message {} does not open: {}", row.seq, plain.error().message));
      out.push_back({{"seq", row.seq},
                     {"kind", row.kind},
                     {"received_at", format_utc_millis(from_unix_millis(row.received_at))},
                     {"message_id", row.message_key},
                     {"payload", to_string(plain->view())}});
    }
    return out;
  }

  Result<json> cert_issue() {
    auto id = text_arg(r_.args, "device_id");
    auto csr = text_arg(r_.args, "csr");
    if (!id) return tl::unexpected(id.error());
    if (!csr) return tl::unexpected(csr.error());
    auto cert = registry_.issue_certificate(*id, *csr);
    if (!cert) return tl::unexpected(cert.error());
    record("certificate.issued", "device:" + *id,
           {{"serial", cert->serial_hex}, {"not_after", format_utc_millis(from_unix_millis(cert->not_after))}});
    json out = certificate_json(*cert);
    out["certificate_pem"] = cert->pem;
    return out;
  }

  Result<json> cert_revoke() {
    auto serial = text_arg(r_.args, "serial");
    auto reason = text_arg(r_.args, "reason", "unspecified");
    if (!serial) return tl::unexpected(serial.error());
    if (!reason) return tl::unexpected(reason.error());
    auto cert = c_.installation.store->certificates().find_by_serial(*serial);
    if (!cert) return tl::unexpected(cert.error());
    if (!*cert) return fail(Errc::not_found, "no certificate with this serial");
    if (auto st = c_.installation.ca->revoke(*serial, *reason); !st) return tl::unexpected(st.error());
    record("certificate.revoked", "certificate:" + *serial, {{"reason", *reason}});
    if ((*cert)->device_id) disconnect(*(*cert)->device_id, "certificate revoked");
    return json{{"serial", *serial}, {"revoked", true}};
  }

  // "device:ID" or "segment:NAME" → (kind, value); the device must belong to the organisation.
  Result<std::pair<std::string, std::string>> route_end(const char* name, const std::string& organisation) {
    auto text = text_arg(r_.args, name);
    if (!text) return tl::unexpected(text.error());
    const auto colon = text->find(':');
    const std::string kind = colon == std::string::npos ? std::string() : text->substr(0, colon);
    const std::string value = colon == std::string::npos ? std::string() : text->substr(colon + 1);
    if (kind == store::kRouteEndSegment) {
      if (!policy::valid_segment_name(value)) {
        return fail(Errc::invalid_argument, fmt::format("{}: '{}' is not a valid segment name", name, value));
      }
      return std::pair{kind, value};
    }
    if (kind != store::kRouteEndDevice) {
      return fail(Errc::invalid_argument, fmt::format("{}: expected device:ID or segment:NAME", name));
    }
    auto device = c_.installation.store->devices().find(value);
    if (!device) return tl::unexpected(device.error());
    if (!*device || (*device)->organisation_id != organisation) {
      return fail(Errc::not_found, fmt::format("{}: no device '{}' in organisation '{}'", name, value, organisation));
    }
    return std::pair{kind, value};
  }

  // The route the request names, checked by the ACL's rules.
  Result<store::RouteRecord> route_arg() {
    auto org = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    if (!org) return tl::unexpected(org.error());
    auto from = route_end("from", *org);
    if (!from) return tl::unexpected(from.error());
    auto to = route_end("to", *org);
    if (!to) return tl::unexpected(to.error());
    store::RouteRecord r{*org,    from->first, from->second, to->first, to->second, to_unix_millis(c_.clock.now()),
                         r_.actor};
    auto route = broker::to_policy_route(r);
    if (!route) return tl::unexpected(route.error());
    return r;
  }

  static json route_json(const store::RouteRecord& r) {
    return {{"organisation", r.organisation_id},
            {"from", r.from_kind + ":" + r.from_value},
            {"to", r.to_kind + ":" + r.to_value},
            {"created_at", format_utc_millis(from_unix_millis(r.created_at))},
            {"created_by", r.created_by}};
  }

  Result<json> route_add() {
    auto r = route_arg();
    if (!r) return tl::unexpected(r.error());
    auto created = c_.installation.store->routes().insert(*r);
    if (!created) return tl::unexpected(created.error());
    if (*created) {
      record("route.added", "route:" + r->from_kind + ":" + r->from_value + "->" + r->to_kind + ":" + r->to_value,
             {{"organisation", r->organisation_id}});
    }
    if (c_.broker) {
      if (auto added = c_.broker->add_route(r->organisation_id, *broker::to_policy_route(*r)); !added) {
        return tl::unexpected(added.error());
      }
    }
    json out = route_json(*r);
    out["created"] = *created;  // false: the route existed already
    return out;
  }

  Result<json> route_remove() {
    auto r = route_arg();
    if (!r) return tl::unexpected(r.error());
    auto removed = c_.installation.store->routes().remove(*r);
    if (!removed) return tl::unexpected(removed.error());
    if (!*removed) return fail(Errc::not_found, "no such route");
    record("route.removed", "route:" + r->from_kind + ":" + r->from_value + "->" + r->to_kind + ":" + r->to_value,
           {{"organisation", r->organisation_id}});
    if (c_.broker) c_.broker->remove_route(r->organisation_id, *broker::to_policy_route(*r));
    return json{{"removed", true}};
  }

  Result<json> route_list() {
    auto org = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    if (!org) return tl::unexpected(org.error());
    auto routes = c_.installation.store->routes().list(*org);
    if (!routes) return tl::unexpected(routes.error());
    json out = json::array();
    for (const auto& r : *routes) out.push_back(route_json(r));
    return out;
  }

  // The Decision Trigger's rules (decision/rule_book.h), written as the host's administrator:
  // every permission, in the organisation named (the default one unless told).
  decision::RuleBook& rule_book() {
    if (c_.rules != nullptr) return *c_.rules;
    if (!own_rules_) {
      own_rules_ =
          std::make_unique<decision::RuleBook>(*c_.installation.store, *c_.installation.keys, c_.clock, c_.random);
    }
    return *own_rules_;
  }

  Result<decision::Author> rule_author() {
    auto organisation = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    if (!organisation) return tl::unexpected(organisation.error());
    return decision::Author{r_.actor, *organisation, identity::PermissionSet::of(identity::all_permissions())};
  }

  // The rule args "id" names in the organisation args name (not_found otherwise), with the
  // author the request acts as.
  Result<std::pair<decision::Author, store::RuleRecord>> named_rule() {
    auto author = rule_author();
    auto id = text_arg(r_.args, "id");
    if (!author) return tl::unexpected(author.error());
    if (!id) return tl::unexpected(id.error());
    auto found = rule_book().find(author->organisation_id, *id);
    if (!found) return tl::unexpected(found.error());
    if (!*found) return fail(Errc::not_found, "no such rule");
    return std::pair{std::move(*author), std::move(**found)};
  }

  static Error rule_problems(const std::vector<decision::RuleProblem>& problems) {
    std::string text;
    for (const auto& p : problems) text += fmt::format("{}{}: {}", text.empty() ? "" : "; ", p.path, p.message);
    return Error{make_error_code(Errc::invalid_argument), text};
  }

  void record_rule(std::string action, const store::RuleRecord& rule) {
    record(std::move(action), "rule:" + rule.id,
           {{"organisation", rule.organisation_id},
            {"rule", rule.name},
            {"version", rule.version},
            {"enabled", rule.enabled}});
  }

  Result<json> rule_create() {
    auto author = rule_author();
    auto definition = text_arg(r_.args, "definition");
    auto disabled = bool_arg(r_.args, "disabled");
    if (!author) return tl::unexpected(author.error());
    if (!definition) return tl::unexpected(definition.error());
    if (!disabled) return tl::unexpected(disabled.error());
    auto outcome = rule_book().create(*author, *definition, !*disabled);
    if (!outcome) return tl::unexpected(outcome.error());
    if (!outcome->rule) return tl::unexpected(rule_problems(outcome->problems));
    record_rule("rule.created", *outcome->rule);
    return decision::RuleBook::describe(*outcome->rule);
  }

  // A new version: the definition given, or the stored one (to switch a rule on or off).
  Result<json> rule_change() {
    auto found = named_rule();
    auto disabled = bool_arg(r_.args, "disabled");
    if (!found) return tl::unexpected(found.error());
    if (!disabled) return tl::unexpected(disabled.error());
    const auto& [author, rule] = *found;
    auto definition = text_arg(r_.args, "definition", rule.definition);
    if (!definition) return tl::unexpected(definition.error());
    auto outcome = rule_book().change(author, rule.id, *definition, !*disabled, rule.version);
    if (!outcome) return tl::unexpected(outcome.error());
    if (!outcome->rule) return tl::unexpected(rule_problems(outcome->problems));
    record_rule("rule.changed", *outcome->rule);
    return decision::RuleBook::describe(*outcome->rule);
  }

  Result<json> rule_list() {
    auto author = rule_author();
    if (!author) return tl::unexpected(author.error());
    auto listed = c_.installation.store->rules().list(author->organisation_id);
    if (!listed) return tl::unexpected(listed.error());
    json rows = json::array();
    for (const auto& r : *listed) rows.push_back(decision::RuleBook::describe(r));
    return rows;
  }

  Result<json> rule_show() {
    auto found = named_rule();
    if (!found) return tl::unexpected(found.error());
    return decision::RuleBook::describe(found->second);
  }

  Result<json> rule_delete() {
    auto found = named_rule();
    if (!found) return tl::unexpected(found.error());
    const auto& [author, rule] = *found;
    auto removed = rule_book().remove(author.organisation_id, rule.id);
    if (!removed) return tl::unexpected(removed.error());
    record_rule("rule.deleted", rule);
    return json{{"id", rule.id}, {"deleted", *removed}};
  }

  // Notification channels (notify/channel_book.h) of the organisation named (the default
  // one unless told). Events name where a channel sends to by host or topic only.
  notify::ChannelBook& channel_book() {
    if (c_.channels != nullptr) return *c_.channels;
    if (!own_channels_) {
      own_channels_ =
          std::make_unique<notify::ChannelBook>(*c_.installation.store, *c_.installation.keys, c_.clock, c_.random);
    }
    return *own_channels_;
  }

  void record_channel(std::string action, const store::NotificationChannelRecord& channel,
                      const notify::Channel* opened) {
    json details = {{"organisation", channel.organisation_id},
                    {"channel", channel.id},
                    {"name", channel.name},
                    {"type", channel.type},
                    {"min_severity", channel.min_severity},
                    {"enabled", channel.enabled}};
    if (opened != nullptr && opened->type == notify::ChannelType::webhook)
      details["destination"] = opened->webhook.host;
    if (opened != nullptr && opened->type == notify::ChannelType::syslog) details["destination"] = opened->host;
    if (opened != nullptr && opened->type == notify::ChannelType::mqtt) details["destination"] = opened->devices;
    record(std::move(action), "channel:" + channel.organisation_id + ":" + channel.id, std::move(details));
  }

  // What channel.create and channel.change are given.
  struct ChannelArgs {
    std::string organisation, id, definition, min_severity;  // min_severity: empty when not given
  };
  Result<ChannelArgs> channel_args() {
    auto organisation = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    auto id = text_arg(r_.args, "id");
    auto definition = text_arg(r_.args, "definition");
    auto min_severity = text_arg(r_.args, "min_severity", std::string());
    if (!organisation) return tl::unexpected(organisation.error());
    if (!id) return tl::unexpected(id.error());
    if (!definition) return tl::unexpected(definition.error());
    if (!min_severity) return tl::unexpected(min_severity.error());
    return ChannelArgs{*organisation, *id, *definition, *min_severity};
  }

  Result<json> channel_create() {
    auto a = channel_args();
    if (!a) return tl::unexpected(a.error());
    return channel_stored(channel_book().create(a->organisation, a->id, a->definition, a->min_severity, r_.actor),
                          "channel.created", std::nullopt);
  }

  // A create's or change's outcome: refused with every problem, or recorded as `action` (after
  // switching the channel on or off when `enabled` says so) and printed redacted, with the
  // secret torii generated, once.
  Result<json> channel_stored(Result<notify::ChannelOutcome> outcome, const char* action, std::optional<bool> enabled) {
    if (!outcome) return tl::unexpected(outcome.error());
    if (!outcome->stored) {
      return tl::unexpected(Error{make_error_code(Errc::invalid_argument), notify::format_problems(outcome->problems)});
    }
    auto& record = outcome->stored->record;
    if (enabled && *enabled != record.enabled) {
      if (auto st = channel_book().set_enabled(record.organisation_id, record.id, *enabled); !st) {
        return tl::unexpected(st.error());
      }
      record.enabled = *enabled;
    }
    record_channel(action, record, &outcome->stored->channel);
    auto out = channel_book().to_json(record);
    if (!out) return tl::unexpected(out.error());
    (*out)["organisation"] = record.organisation_id;
    if (outcome->secret_shown_once) (*out)["secret"] = *outcome->secret_shown_once;
    return out;
  }

  // The definition replaced; min_severity and enabled kept unless given. Logged as
  // channel.changed, as through the console.
  Result<json> channel_change() {
    auto a = channel_args();
    if (!a) return tl::unexpected(a.error());
    std::optional<bool> enabled;
    if (const auto it = r_.args.find("enabled"); it != r_.args.end()) {
      if (!it->is_boolean()) return fail(Errc::invalid_argument, "enabled: true or false");
      enabled = it->get<bool>();
    }
    auto found = channel_book().find(a->organisation, a->id);
    if (!found) return tl::unexpected(found.error());
    if (!*found) return fail(Errc::not_found, "no such channel");
    const std::string severity = a->min_severity.empty() ? (*found)->min_severity : a->min_severity;
    return channel_stored(channel_book().replace(a->organisation, a->id, a->definition, severity, r_.actor),
                          "channel.changed", enabled);
  }

  Result<json> channel_list() {
    auto organisation = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    if (!organisation) return tl::unexpected(organisation.error());
    auto listed = channel_book().list(*organisation);
    if (!listed) return tl::unexpected(listed.error());
    json rows = json::array();
    for (const auto& c : *listed) {
      auto j = channel_book().to_json(c);
      if (!j) return tl::unexpected(j.error());
      (*j)["organisation"] = c.organisation_id;
      rows.push_back(std::move(*j));
    }
    return rows;
  }

  Result<json> channel_delete() {
    auto organisation = text_arg(r_.args, "organisation", std::string(identity::kDefaultOrganisation));
    auto id = text_arg(r_.args, "id");
    if (!organisation) return tl::unexpected(organisation.error());
    if (!id) return tl::unexpected(id.error());
    auto found = channel_book().find(*organisation, *id);
    if (!found) return tl::unexpected(found.error());
    if (!*found) return fail(Errc::not_found, "no such channel");
    auto removed = channel_book().remove(*organisation, *id);
    if (!removed) return tl::unexpected(removed.error());
    record_channel("channel.deleted", **found, nullptr);
    return json{{"id", *id}, {"organisation", *organisation}, {"deleted", *removed}};
  }

  AdminContext& c_;
  const AdminRequest& r_;
  identity::DeviceRegistry registry_;
  std::unique_ptr<decision::RuleBook> own_rules_;           // when c_.rules is not set
  std::unique_ptr<notify::ChannelBook> own_channels_;       // when c_.channels is not set
  std::unique_ptr<identity::DeviceCommands> own_commands_;  // when c_.commands is not set
  std::unique_ptr<alerts::AlertBook> own_alerts_;           // when c_.alerts is not set
};

}  // namespace

const std::vector<std::string>& admin_ops() {
  static const std::vector<std::string> ops = {"device.create",  "device.list",       "device.show",
                                               "device.disable", "device.enable",     "device.tags",
                                               "device.revoke",  "device.delete",     "device.enrolment_token",
                                               "profile.put",    "profile.list",      "telemetry.list",
                                               "cert.issue",     "cert.revoke",       "route.add",
                                               "route.list",     "route.remove",      "device.command",
                                               "command.list",   "rule.create",       "rule.change",
                                               "rule.list",      "rule.show",         "rule.delete",
                                               "alert.list",     "alert.acknowledge", "alert.resolve",
                                               "channel.create", "channel.change",    "channel.list",
                                               "channel.delete"};
  return ops;
}

bool admin_op_writes(std::string_view op) { return !(op.ends_with(".list") || op.ends_with(".show")); }

Result<json> execute_admin(AdminContext& context, const AdminRequest& request) {
  return Executor(context, request).run();
}

namespace {
constexpr std::array<std::pair<Errc, std::string_view>, 13> kErrcNames = {{
    {Errc::ok, "ok"},
    {Errc::invalid_argument, "invalid_argument"},
    {Errc::not_found, "not_found"},
    {Errc::already_exists, "already_exists"},
    {Errc::permission_denied, "permission_denied"},
    {Errc::io_error, "io_error"},
    {Errc::crypto_error, "crypto_error"},
    {Errc::authentication_failed, "authentication_failed"},
    {Errc::corrupt, "corrupt"},
    {Errc::expired, "expired"},
    {Errc::unavailable, "unavailable"},
    {Errc::conflict, "conflict"},
    {Errc::limit_exceeded, "limit_exceeded"},
}};
}  // namespace

std::string errc_name(const Error& error) {
  for (const auto& [code, name] : kErrcNames) {
    if (error.is(code)) return std::string(name);
  }
  return "io_error";
}

Errc errc_from_name(std::string_view name) {
  for (const auto& [code, n] : kErrcNames) {
    if (n == name) return code;
  }
  return Errc::io_error;
}

}  // namespace torii::server

// Fuzzes the policy parsers that see device and operator input: telemetry validation (simdjson)
// against the sample "environment" profile and the generic profile, profile definitions and
// command parameters (nlohmann), and the topic ACL.
//
// Properties beyond "does not crash":
//   - an accepted payload fits the profile: at least one metric, every name valid and known
//     (generic: at most 64), no name twice, each value of the metric's type, within its bounds
//     and length, strings without control characters; a valid id; a non-negative ts;
//   - a refusal reason is short printable ASCII, so no payload bytes reach the log beyond
//     names that satisfy valid_name(); payloads above max_message_bytes are too_large;
//   - validation is repeatable: the same bytes give the same result twice on one validator
//     (its reused buffers and duplicate markers carry nothing over);
//   - a definition that parses yields a consistent profile (limits, unique valid names, an
//     index that finds each metric), and a refused one names at least one problem;
//   - the ACL never lets a device publish outside its own telemetry/events/state/results, nor
//     subscribe to anything but its own commands topic without a route;
//   - a posture report judged by the strict and by a lenient policy gives findings of known
//     kinds whose details are short printable ASCII (they go to the security log); what a
//     lenient policy finds, the strict one finds too;
//   - a command payload or body (device_command.h) that parses is within the documented
//     bounds and reads back unchanged once written again; a refusal reason is short printable
//     ASCII; a result that parses names a valid command id.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.h"
#include "policy/acl.h"
#include "policy/device_command.h"
#include "policy/posture.h"
#include "policy/profile.h"
#include "policy/telemetry.h"

namespace torii::fuzz {
namespace {

using namespace torii::policy;

bool printable_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool valid_message_id(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == '-';
  });
}

void check_value(const FieldSpec& spec, const MetricValue& value) {
  switch (spec.type) {
    case ValueType::number: {
      check(std::holds_alternative<double>(value));
      const double d = std::get<double>(value);
      check(!spec.min || d >= *spec.min);
      check(!spec.max || d <= *spec.max);
      break;
    }
    case ValueType::integer: {
      check(std::holds_alternative<std::int64_t>(value));
      const auto i = static_cast<double>(std::get<std::int64_t>(value));
      check(!spec.min || i >= *spec.min);
      check(!spec.max || i <= *spec.max);
      break;
    }
    case ValueType::boolean: check(std::holds_alternative<bool>(value)); break;
    case ValueType::string: {
      check(std::holds_alternative<std::string>(value));
      const auto& s = std::get<std::string>(value);
      check(s.size() <= spec.max_length);
      check(!has_control(s));
      break;
    }
  }
}

void check_accepted(const Profile& profile, const Telemetry& t) {
  check(!t.metrics.empty());
  check(t.metrics.size() <= profile.max_metrics_per_message());
  check(!t.ts_ms || *t.ts_ms >= 0);
  check(t.message_id.empty() || valid_message_id(t.message_id));
  std::set<std::string> names;
  for (const Metric& m : t.metrics) {
    check(valid_name(m.name));
    check(m.name != "ts" && m.name != "id");
    check(names.insert(m.name).second);
    if (profile.accepts_any_metric()) {
      check(!std::holds_alternative<std::int64_t>(m.value));
      if (const auto* s = std::get_if<std::string>(&m.value)) {
        check(s->size() <= profile.max_string_bytes());
        check(!has_control(*s));
      }
    } else {
      const FieldSpec* spec = profile.find_metric(m.name);
      check(spec != nullptr);
      check_value(*spec, m.value);
    }
  }
}

void validate_twice(TelemetryValidator& validator, const Profile& profile, std::string_view payload) {
  const auto first = validator.validate(profile, payload);
  if (first) {
    check_accepted(profile, *first);
  } else {
    check(!first.error().reason.empty() && first.error().reason.size() <= 200);
    check(printable_ascii(first.error().reason));
    check((payload.size() > profile.max_message_bytes()) == (first.error().kind == RefusalKind::too_large));
  }
  const auto second = validator.validate(profile, payload);
  check(first.has_value() == second.has_value());
  if (first) {
    check(*first == *second);
  } else {
    check(first.error().reason == second.error().reason && first.error().kind == second.error().kind);
  }
}

void check_profile(std::string_view text) {
  const auto parsed = parse_profile(text);
  if (!parsed) {
    check(!parsed.error().empty());
    check(parsed.error().size() <= 101);
    for (const Problem& p : parsed.error()) check(!p.message.empty());
    return;
  }
  const Profile& p = *parsed;
  check(!p.accepts_any_metric());
  check(p.metrics().size() <= kMaxMetrics && p.commands().size() <= kMaxCommands);
  check(p.max_message_bytes() >= kMinMessageBytes && p.max_message_bytes() <= kMaxMessageBytes);
  for (std::size_t i = 0; i < p.metrics().size(); ++i) {
    const FieldSpec& m = p.metrics()[i];
    check(valid_name(m.name) && m.name != "ts" && m.name != "id");
    check(p.metric_index(m.name) == i);
    check(!m.min || !m.max || *m.min <= *m.max);
  }
  std::set<std::string> commands;
  for (const CommandSpec& c : p.commands()) {
    check(valid_name(c.name) && commands.insert(c.name).second);
    check(p.find_command(c.name) == &c);
    check(c.params.size() <= kMaxParams);
  }
}

void check_acl(std::string_view topic) {
  static const DeviceIdentity self{"sensor-a", "lab"};
  static const RouteTable routes = [] {
    RouteTable table;
    (void)table.add({Selector::device("sensor-b"), Selector::device("sensor-a")});
    (void)table.add({Selector::segment("office"), Selector::segment("lab")});
    return table;
  }();
  const SegmentLookup segment_of = [](std::string_view id) -> std::optional<std::string> {
    if (id == "sensor-c") return std::string("office");
    return std::nullopt;
  };

  if (authorize_publish(self, topic).allowed()) {
    const auto parsed = parse_device_topic(topic);
    check(parsed.has_value() && parsed->device_id == self.id && parsed->kind != TopicKind::commands);
  }
  if (authorize_subscribe(self, topic, routes, segment_of).allowed()) {
    const bool own_commands = topic == "devices/sensor-a/commands";
    // Routes reach sensor-b (by id) and sensor-c (by segment), and only these four levels.
    const std::string_view prefix = topic.substr(0, 17);
    const std::string_view last = topic.size() > 17 ? topic.substr(17) : std::string_view();
    const bool routed = (prefix == "devices/sensor-b/" || prefix == "devices/sensor-c/") &&
                        (last == "telemetry" || last == "events" || last == "state" || last == "+");
    check(own_commands || routed);
  }
  if (authorize_delivery(self, topic, routes, segment_of).allowed()) {
    const auto parsed = parse_device_topic(topic);
    check(parsed.has_value());
    check(parsed->device_id == self.id ? parsed->kind == TopicKind::commands
                                       : parsed->kind != TopicKind::commands && parsed->kind != TopicKind::results);
  }
}

void check_refusal(const CommandRefusal& reason) {
  check(!reason.empty() && reason.size() <= 200 && printable_ascii(reason));
}

void check_command(std::string_view text) {
  if (const auto payload = parse_command_payload(text)) {
    check(text.size() <= kMaxCommandPayloadBytes);
    const auto again = parse_command_payload(command_payload(payload->body, payload->signature));
    check(again.has_value() && again->body == payload->body && again->signature == payload->signature);
  } else {
    check_refusal(payload.error());
  }
  if (const auto body = parse_command_body(text)) {
    check(valid_message_id(body->id) && valid_name(body->name));
    check(!body->device_id.empty() && body->device_id.size() <= 128 && printable_ascii(body->device_id));
    check(body->nonce.size() == 22);
    check(body->issued_at_ms >= 0 && body->issued_at_ms < body->expires_at_ms);
    check(body->expires_at_ms - body->issued_at_ms <= 24LL * 3600 * 1000);
    const auto again = parse_command_body(command_body(*body));
    check(again.has_value() && *again == *body);
    const auto fits = check_command_time_and_target(*body, body->device_id, body->issued_at_ms, {});
    check(fits.has_value());
  } else {
    check_refusal(body.error());
  }
  if (const auto result = parse_command_result(text)) {
    check(valid_message_id(result->command_id) && result->reason.size() <= 200 && !has_control(result->reason));
  }
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  static policy::TelemetryValidator validator;
  static const policy::Profile sample = policy::parse_profile(policy::sample_environment_profile_json()).value();
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  fuzz::validate_twice(validator, sample, text);
  fuzz::validate_twice(validator, policy::generic_profile(), text);
  fuzz::check_profile(text);

  const auto command_problems = policy::validate_command(sample, "set_interval", text);
  for (const auto& p : command_problems) fuzz::check(!p.message.empty());

  fuzz::check_acl(text);
  fuzz::check_command(text);

  policy::PosturePolicy lenient;
  lenient.remote_access = lenient.upnp = lenient.wps = lenient.serial_consoles = lenient.passwordless_accounts =
      lenient.debug_interfaces = true;
  lenient.min_wifi_security = "open";
  const auto strict_findings = policy::evaluate_posture(policy::PosturePolicy{}, text);
  for (const auto& f : policy::evaluate_posture(lenient, text)) {
    fuzz::check(f.kind == "remote_access" || f.kind == "wifi_security");  // telnet, unknown modes
    fuzz::check(std::find(strict_findings.begin(), strict_findings.end(), f) != strict_findings.end());
  }
  for (const auto& f : strict_findings) {
    fuzz::check(!f.kind.empty() && f.detail.size() <= 128);
    fuzz::check(std::all_of(f.detail.begin(), f.detail.end(), [](char c) { return c >= 0x20 && c < 0x7f; }));
  }
  return 0;
}

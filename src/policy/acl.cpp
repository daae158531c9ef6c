#include "policy/acl.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

#include <fmt/format.h>

namespace torii::policy {
namespace {

constexpr std::size_t kMaxDeviceIdLength = 63;
constexpr std::size_t kMaxTopicBytes = 65535;  // MQTT §1.5.4: a UTF-8 string's length is 16 bits
constexpr std::string_view kDevices = "devices";

constexpr std::array<std::pair<std::string_view, TopicKind>, 8> kKinds{{
    {"telemetry", TopicKind::telemetry},
    {"events", TopicKind::events},
    {"state", TopicKind::state},
    {"results", TopicKind::results},
    {"commands", TopicKind::commands},
    {"renew", TopicKind::renew},
    {"certificate", TopicKind::certificate},
    {"alerts", TopicKind::alerts},
}};

// Splits "a/b/c" into its levels without allocating; at most N levels are kept, `count`
// says how many there were.
template <std::size_t N>
struct Levels {
  std::array<std::string_view, N> level{};
  std::size_t count = 0;

  explicit Levels(std::string_view text) {
    std::size_t start = 0;
    while (true) {
      const auto slash = text.find('/', start);
      const auto end = slash == std::string_view::npos ? text.size() : slash;
      if (count < N) level.at(count) = text.substr(start, end - start);
      ++count;
      if (slash == std::string_view::npos) break;
      start = slash + 1;
    }
  }
};

bool readable_kind(TopicKind kind) {
  return kind == TopicKind::telemetry || kind == TopicKind::events || kind == TopicKind::state;
}

bool valid_identifier(std::string_view id) {
  if (id.empty() || id.size() > kMaxDeviceIdLength) return false;
  const auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(id.front())) return false;
  return std::all_of(id.begin() + 1, id.end(), [&](char c) { return lower_or_digit(c) || c == '-'; });
}

bool selector_valid(const Selector& s) {
  return s.kind == Selector::Kind::device ? valid_device_id(s.value) : valid_segment_name(s.value);
}

}  // namespace

bool valid_device_id(std::string_view id) { return valid_identifier(id); }
bool valid_segment_name(std::string_view name) { return valid_identifier(name); }
bool valid_tag(std::string_view tag) { return valid_identifier(tag); }

std::string_view to_string(TopicKind kind) {
  for (const auto& [name, k] : kKinds) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<DeviceTopic> parse_device_topic(std::string_view topic) {
  const Levels<3> levels(topic);
  if (levels.count != 3 || levels.level[0] != kDevices || !valid_device_id(levels.level[1])) return std::nullopt;
  for (const auto& [name, kind] : kKinds) {
    if (levels.level[2] == name) return DeviceTopic{levels.level[1], kind};
  }
  return std::nullopt;
}

std::string device_topic(std::string_view device_id, TopicKind kind) {
  return fmt::format("{}/{}/{}", kDevices, device_id, to_string(kind));
}

Decision combine(std::initializer_list<Decision> decisions, std::string_view nobody_allowed) {
  const Decision* allowed = nullptr;
  for (const Decision& d : decisions) {
    if (d.verdict == Decision::Verdict::deny) return d;
    if (d.verdict == Decision::Verdict::allow && allowed == nullptr) allowed = &d;
  }
  return allowed != nullptr ? *allowed : Decision::deny(nobody_allowed);
}

Status validate_route(const Route& route) {
  if (!selector_valid(route.from))
    return fail(Errc::invalid_argument, "route source: not a valid device id or segment name");
  if (!selector_valid(route.to))
    return fail(Errc::invalid_argument, "route target: not a valid device id or segment name");
  if (route.from.kind == Selector::Kind::device && route.from == route.to) {
    return fail(Errc::invalid_argument, "a device needs no route to itself");
  }
  return ok();
}

Status RouteTable::add(Route route) {
  if (auto valid = validate_route(route); !valid) return valid;
  if (std::find(routes_.begin(), routes_.end(), route) == routes_.end()) routes_.push_back(std::move(route));
  return ok();
}

bool RouteTable::remove(const Route& route) {
  const auto it = std::find(routes_.begin(), routes_.end(), route);
  if (it == routes_.end()) return false;
  routes_.erase(it);
  return true;
}

bool RouteTable::allows(std::string_view source_id, const DeviceIdentity& reader,
                        const SegmentLookup& segment_of) const {
  bool looked_up = false;
  std::optional<std::string> source_segment;
  for (const Route& route : routes_) {
    const bool reaches_reader = route.to.kind == Selector::Kind::device
                                    ? route.to.value == reader.id
                                    : !reader.segment.empty() && route.to.value == reader.segment;
    if (!reaches_reader) continue;
    if (route.from.kind == Selector::Kind::device) {
      if (route.from.value == source_id) return true;
      continue;
    }
    if (!looked_up) {
      looked_up = true;
      if (segment_of) source_segment = segment_of(source_id);
    }
    if (source_segment && !source_segment->empty() && *source_segment == route.from.value) return true;
  }
  return false;
}

namespace acl {

Decision identity(const DeviceIdentity& who) {
  if (!valid_device_id(who.id)) return Decision::deny("not a valid device identity");
  return Decision::abstain();
}

Decision topic_name_syntax(std::string_view topic) {
  if (topic.empty()) return Decision::deny("empty topic");
  if (topic.size() > kMaxTopicBytes) return Decision::deny("topic longer than 65535 bytes");
  if (topic.find('\0') != std::string_view::npos) return Decision::deny("NUL in topic");
  if (topic.find_first_of("+#") != std::string_view::npos) return Decision::deny("wildcard in a topic name");
  if (topic.front() == '$') return Decision::deny("'$' topics are reserved for the server");
  return Decision::abstain();
}

Decision own_namespace_publish(const DeviceIdentity& who, std::string_view topic) {
  const auto parsed = parse_device_topic(topic);
  if (!parsed || parsed->device_id != who.id) return Decision::abstain();
  if (parsed->kind == TopicKind::commands) return Decision::deny("a device does not publish to its commands topic");
  if (parsed->kind == TopicKind::certificate) {
    return Decision::deny("a device does not publish to its certificate topic");
  }
  if (parsed->kind == TopicKind::alerts) return Decision::deny("a device does not publish to its alerts topic");
  return Decision::allow("own namespace");
}

Decision foreign_namespace_publish(const DeviceIdentity& who, std::string_view topic) {
  const Levels<2> levels(topic);
  if (levels.count >= 2 && levels.level[0] == kDevices && levels.level[1] != who.id) {
    return Decision::deny("another device's namespace");
  }
  return Decision::abstain();
}

Decision filter_syntax(std::string_view filter) {
  if (filter.empty()) return Decision::deny("empty filter");
  if (filter.size() > kMaxTopicBytes) return Decision::deny("filter longer than 65535 bytes");
  if (filter.find('\0') != std::string_view::npos) return Decision::deny("NUL in filter");
  if (filter.front() == '$') return Decision::deny("'$' topics are not for devices");
  // MQTT §4.7.1: '+' is a whole level, '#' the whole last level.
  std::size_t start = 0;
  std::size_t index = 0;
  std::string_view second;
  while (true) {
    const auto slash = filter.find('/', start);
    const auto end = slash == std::string_view::npos ? filter.size() : slash;
    const std::string_view level = filter.substr(start, end - start);
    const bool wildcard = level == "+" || level == "#";
    if (!wildcard && level.find_first_of("+#") != std::string_view::npos) return Decision::deny("malformed wildcard");
    if (level == "#" && slash != std::string_view::npos) return Decision::deny("malformed wildcard");
    if (index == 0 && wildcard) return Decision::deny("wildcard at the first level");
    if (index == 1) second = level;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
    ++index;
  }
  if (filter.substr(0, filter.find('/')) == kDevices && (second == "+" || second == "#")) {
    return Decision::deny("wildcard in place of a device id");
  }
  return Decision::abstain();
}

Decision own_commands_subscribe(const DeviceIdentity& who, std::string_view filter) {
  const Levels<3> levels(filter);
  if (levels.count < 2 || levels.level[0] != kDevices || levels.level[1] != who.id) return Decision::abstain();
  if (levels.count == 3 && levels.level[2] == "commands") return Decision::allow("own commands topic");
  if (levels.count == 3 && levels.level[2] == "certificate") return Decision::allow("own certificate topic");
  if (levels.count == 3 && levels.level[2] == "alerts") return Decision::allow("own alerts topic");
  return Decision::deny("a device subscribes only to its own commands, certificate and alerts topics");
}

Decision routed_subscribe(const DeviceIdentity& who, std::string_view filter, const RouteTable& routes,
                          const SegmentLookup& segment_of) {
  const Levels<3> levels(filter);
  if (levels.count < 2 || levels.level[0] != kDevices) return Decision::abstain();
  const std::string_view source = levels.level[1];
  if (source == who.id || !valid_device_id(source)) return Decision::abstain();
  const std::string_view last = levels.level[2];
  const bool readable = last == "+" || last == "telemetry" || last == "events" || last == "state";
  if (levels.count != 3 || !readable) {
    return Decision::deny("a routed filter is devices/<id>/telemetry, events, state or +");
  }
  if (routes.allows(source, who, segment_of)) return Decision::allow("route");
  return Decision::abstain();
}

}  // namespace acl

Decision authorize_publish(const DeviceIdentity& who, std::string_view topic) {
  return combine({acl::identity(who), acl::topic_name_syntax(topic), acl::foreign_namespace_publish(who, topic),
                  acl::own_namespace_publish(who, topic)},
                 "topic outside the device's namespace");
}

Decision authorize_subscribe(const DeviceIdentity& who, std::string_view filter, const RouteTable& routes,
                             const SegmentLookup& segment_of) {
  // Refusals that need no registry lookup come first.
  if (const Decision d = acl::identity(who); d.verdict == Decision::Verdict::deny) return d;
  const Decision syntax = acl::filter_syntax(filter);
  if (syntax.verdict == Decision::Verdict::deny) return syntax;
  return combine(
      {syntax, acl::own_commands_subscribe(who, filter), acl::routed_subscribe(who, filter, routes, segment_of)},
      "no route allows this filter");
}

Decision authorize_delivery(const DeviceIdentity& who, std::string_view topic, const RouteTable& routes,
                            const SegmentLookup& segment_of) {
  if (const Decision d = acl::identity(who); d.verdict == Decision::Verdict::deny) return d;
  const auto parsed = parse_device_topic(topic);
  if (!parsed) return Decision::deny("not a device topic");
  if (parsed->device_id == who.id) {
    if (parsed->kind == TopicKind::commands) return Decision::allow("own commands topic");
    if (parsed->kind == TopicKind::certificate) return Decision::allow("own certificate topic");
    if (parsed->kind == TopicKind::alerts) return Decision::allow("own alerts topic");
    return Decision::deny("a device receives only its own commands, certificates and alerts");
  }
  if (!readable_kind(parsed->kind)) {
    return Decision::deny("another device's commands, results, certificates or alerts");
  }
  if (routes.allows(parsed->device_id, who, segment_of)) return Decision::allow("route");
  return Decision::deny("no route from the publishing device");
}

}  // namespace torii::policy

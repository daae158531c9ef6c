// The device topic namespace and the authorization of devices (IIIT N3 isolation, N5 access
// control, N9 segmentation). Pure: the broker asks, these functions answer.
//
// Namespace: every device owns devices/{id}/ with exactly these topics:
//
//   devices/{id}/telemetry   device -> platform   metrics (validated against its profile)
//   devices/{id}/events      device -> platform   alarms, state changes
//   devices/{id}/state       device -> platform   current state (retained)
//   devices/{id}/results     device -> platform   results of commands
//   devices/{id}/commands    platform -> device   commands
//   devices/{id}/renew       device -> platform   certificate renewal requests (a CSR)
//   devices/{id}/certificate platform -> device   answers to renewal requests
//   devices/{id}/alerts      platform -> device   alert notifications of MQTT channels naming
//                                                 the device (a backend's; notify/channel.h)
//
// Rules, denied by default:
//   - a device publishes only to its own telemetry, events, state, results and renew topics;
//     publishing into another device's namespace is never allowed, whatever the routes;
//   - a device subscribes only to its own commands, certificate and alerts topics (those
//     exact filters, no wildcards);
//   - reading another device's telemetry, events or state needs a Route from it (or its
//     segment) to the reader (or the reader's segment), and a filter confined to that one
//     device: devices/A/telemetry, devices/A/events, devices/A/state or devices/A/+; a
//     device's renew, certificate and alerts topics are never delivered to another device;
//   - never: "#", "+/..." (a wildcard first level), "$SYS/#" or any topic or filter starting
//     with '$', a wildcard in place of the device id.
//
// Each rule is a small producer answering allow, deny or abstain (a Decision); an authorize_*
// function combines them: any deny wins, otherwise any allow, and nobody allowing means deny.
// Reasons are for the server log; the peer gets only an MQTT reason code.
#pragma once

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace torii::policy {

// Device ids: 1..63 characters, [a-z0-9][a-z0-9-]{0,62}. Lower case only so that ids compare
// byte-wise and are safe in topics, file names, certificate subjects and logs.
[[nodiscard]] bool valid_device_id(std::string_view id);
// Segment names follow the same rule.
[[nodiscard]] bool valid_segment_name(std::string_view name);
// A device tag (rules select devices by them) follows the same rule.
[[nodiscard]] bool valid_tag(std::string_view tag);

enum class TopicKind { telemetry, events, state, results, commands, renew, certificate, alerts };
[[nodiscard]] std::string_view to_string(TopicKind kind);

struct DeviceTopic {
  std::string_view device_id;  // points into the parsed topic
  TopicKind kind = TopicKind::telemetry;
};

// "devices/{id}/{kind}" with a valid id and a known kind; nullopt for anything else,
// including extra levels and wildcards.
[[nodiscard]] std::optional<DeviceTopic> parse_device_topic(std::string_view topic);
// The topic of `kind` for a device (the id is not checked).
[[nodiscard]] std::string device_topic(std::string_view device_id, TopicKind kind);

// Who is asking: the device named by its client certificate, and its network segment
// (empty: none) from the device registry.
struct DeviceIdentity {
  std::string id;
  std::string segment;
};

struct Decision {
  enum class Verdict { allow, deny, abstain };
  Verdict verdict = Verdict::abstain;
  std::string_view reason;  // static text: deciding allocates nothing

  [[nodiscard]] static constexpr Decision allow(std::string_view why) { return {Verdict::allow, why}; }
  [[nodiscard]] static constexpr Decision deny(std::string_view why) { return {Verdict::deny, why}; }
  [[nodiscard]] static constexpr Decision abstain() { return {Verdict::abstain, {}}; }
  [[nodiscard]] constexpr bool allowed() const { return verdict == Verdict::allow; }
};

// The first deny if any; else the first allow; else deny with `nobody_allowed`.
[[nodiscard]] Decision combine(std::initializer_list<Decision> decisions, std::string_view nobody_allowed);

struct Selector {
  enum class Kind { device, segment };
  Kind kind = Kind::device;
  std::string value;  // a device id or a segment name

  [[nodiscard]] static Selector device(std::string id) { return {Kind::device, std::move(id)}; }
  [[nodiscard]] static Selector segment(std::string name) { return {Kind::segment, std::move(name)}; }
  friend bool operator==(const Selector&, const Selector&) = default;
};

// Lets `to` read the telemetry, events and state of `from`. One direction only.
struct Route {
  Selector from;
  Selector to;
  friend bool operator==(const Route&, const Route&) = default;
};

// Ids and names valid; a device routed to itself is refused (it needs no route).
[[nodiscard]] Status validate_route(const Route& route);

// Looks up the segment of a device (nullopt: unknown device or no segment). Called only when
// a segment route could apply, at most once per decision.
using SegmentLookup = std::function<std::optional<std::string>(std::string_view device_id)>;

// The routes in force. Not thread-safe: the broker owns one and swaps or guards it.
class RouteTable {
 public:
  // Validates the route; adding one that exists already is not an error.
  [[nodiscard]] Status add(Route route);
  // False when there was no such route.
  bool remove(const Route& route);
  [[nodiscard]] const std::vector<Route>& routes() const { return routes_; }

  // Whether some route lets `reader` read the device `source_id`.
  [[nodiscard]] bool allows(std::string_view source_id, const DeviceIdentity& reader,
                            const SegmentLookup& segment_of) const;

 private:
  std::vector<Route> routes_;
};

// --- the producers (each answers only for what it knows about) --------------------------------
namespace acl {

// Deny: an identity whose id is not a valid device id (so that, say, an empty id can never
// own "devices//commands"). Otherwise abstain.
[[nodiscard]] Decision identity(const DeviceIdentity& who);
// Deny: empty, NUL, wildcards, '$' first, longer than 65535 bytes. Otherwise abstain.
[[nodiscard]] Decision topic_name_syntax(std::string_view topic);
// Allow: own telemetry/events/state/results/renew. Deny: own commands, certificate and alerts
// (the platform's topics). Otherwise abstain.
[[nodiscard]] Decision own_namespace_publish(const DeviceIdentity& who, std::string_view topic);
// Deny: a topic or filter under devices/{other}/ or with a wildcard as device id. Otherwise abstain.
[[nodiscard]] Decision foreign_namespace_publish(const DeviceIdentity& who, std::string_view topic);

// Deny: empty, NUL, malformed wildcards, '$' first, a wildcard first level ("#", "+/..."), a
// wildcard in place of the device id, longer than 65535 bytes. Otherwise abstain.
[[nodiscard]] Decision filter_syntax(std::string_view filter);
// Allow: exactly devices/{own id}/commands, devices/{own id}/certificate or
// devices/{own id}/alerts. Deny: anything else under devices/{own id}/.
[[nodiscard]] Decision own_commands_subscribe(const DeviceIdentity& who, std::string_view filter);
// For filters under another device's namespace. Deny: a shape other than
// devices/A/{telemetry,events,state,+}. Allow: that shape and a route from A to who.
// Otherwise (no route) abstain.
[[nodiscard]] Decision routed_subscribe(const DeviceIdentity& who, std::string_view filter, const RouteTable& routes,
                                        const SegmentLookup& segment_of);

}  // namespace acl

// PUBLISH from a device.
[[nodiscard]] Decision authorize_publish(const DeviceIdentity& who, std::string_view topic);

// SUBSCRIBE from a device, per filter.
[[nodiscard]] Decision authorize_subscribe(const DeviceIdentity& who, std::string_view filter, const RouteTable& routes,
                                           const SegmentLookup& segment_of);

// Delivery of a message published on `topic` to a subscriber: checked again per message so
// that a filter such as devices/A/+ never carries A's commands or results to another device,
// and so that removing a route takes effect at once, without waiting for an unsubscribe.
[[nodiscard]] Decision authorize_delivery(const DeviceIdentity& who, std::string_view topic, const RouteTable& routes,
                                          const SegmentLookup& segment_of);

}  // namespace torii::policy

#include "mqtt/codec.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "mqtt/topic.h"

namespace torii::mqtt {
namespace {

constexpr std::uint32_t kMaxVarint = 268'435'455;  // §1.5.5: four bytes of seven bits
constexpr std::size_t kMaxField = 65'535;          // strings and binary data: 16-bit length
constexpr std::string_view kProtocolName = "MQTT";

// ---------------------------------------------------------------------------------------
// Property identifiers (MQTT 5.0 §2.2.2.2) and which packet may carry which.

enum class Prop : std::uint8_t {
  payload_format_indicator = 0x01,
  message_expiry_interval = 0x02,
  content_type = 0x03,
  response_topic = 0x08,
  correlation_data = 0x09,
  subscription_identifier = 0x0B,
  session_expiry_interval = 0x11,
  assigned_client_identifier = 0x12,
  server_keep_alive = 0x13,
  authentication_method = 0x15,
  authentication_data = 0x16,
  request_problem_information = 0x17,
  will_delay_interval = 0x18,
  request_response_information = 0x19,
  response_information = 0x1A,
  server_reference = 0x1C,
  reason_string = 0x1F,
  receive_maximum = 0x21,
  topic_alias_maximum = 0x22,
  topic_alias = 0x23,
  maximum_qos = 0x24,
  retain_available = 0x25,
  user_property = 0x26,
  maximum_packet_size = 0x27,
  wildcard_subscription_available = 0x28,
  subscription_identifier_available = 0x29,
  shared_subscription_available = 0x2A,
};

// One bit per identifier; every identifier is below 64.
using PropMask = std::uint64_t;

constexpr PropMask bit(Prop id) { return PropMask{1} << static_cast<std::uint8_t>(id); }
constexpr PropMask mask(std::initializer_list<Prop> ids) {
  PropMask result = 0;
  for (const Prop id : ids) result |= bit(id);
  return result;
}

constexpr PropMask kConnectProps =
    mask({Prop::session_expiry_interval, Prop::receive_maximum, Prop::maximum_packet_size, Prop::topic_alias_maximum,
          Prop::request_response_information, Prop::request_problem_information, Prop::user_property,
          Prop::authentication_method, Prop::authentication_data});
constexpr PropMask kWillProps =
    mask({Prop::will_delay_interval, Prop::payload_format_indicator, Prop::message_expiry_interval, Prop::content_type,
          Prop::response_topic, Prop::correlation_data, Prop::user_property});
constexpr PropMask kConnackProps =
    mask({Prop::session_expiry_interval, Prop::receive_maximum, Prop::maximum_qos, Prop::retain_available,
          Prop::maximum_packet_size, Prop::assigned_client_identifier, Prop::topic_alias_maximum, Prop::reason_string,
          Prop::user_property, Prop::wildcard_subscription_available, Prop::subscription_identifier_available,
          Prop::shared_subscription_available, Prop::server_keep_alive, Prop::response_information,
          Prop::server_reference, Prop::authentication_method, Prop::authentication_data});
constexpr PropMask kPublishProps =
    mask({Prop::payload_format_indicator, Prop::message_expiry_interval, Prop::topic_alias, Prop::response_topic,
          Prop::correlation_data, Prop::user_property, Prop::subscription_identifier, Prop::content_type});
constexpr PropMask kAckProps = mask({Prop::reason_string, Prop::user_property});  // PUBACK..PUBCOMP, SUBACK, UNSUBACK
constexpr PropMask kSubscribeProps = mask({Prop::subscription_identifier, Prop::user_property});
constexpr PropMask kUnsubscribeProps = mask({Prop::user_property});
constexpr PropMask kDisconnectProps =
    mask({Prop::session_expiry_interval, Prop::reason_string, Prop::user_property, Prop::server_reference});
constexpr PropMask kAuthProps =
    mask({Prop::authentication_method, Prop::authentication_data, Prop::reason_string, Prop::user_property});

std::string_view property_name(std::uint32_t id) {
  switch (id) {
    case 0x01: return "payload format indicator";
    case 0x02: return "message expiry interval";
    case 0x03: return "content type";
    case 0x08: return "response topic";
    case 0x09: return "correlation data";
    case 0x0B: return "subscription identifier";
    case 0x11: return "session expiry interval";
    case 0x12: return "assigned client identifier";
    case 0x13: return "server keep alive";
    case 0x15: return "authentication method";
    case 0x16: return "authentication data";
    case 0x17: return "request problem information";
    case 0x18: return "will delay interval";
    case 0x19: return "request response information";
    case 0x1A: return "response information";
    case 0x1C: return "server reference";
    case 0x1F: return "reason string";
    case 0x21: return "receive maximum";
    case 0x22: return "topic alias maximum";
    case 0x23: return "topic alias";
    case 0x24: return "maximum QoS";
    case 0x25: return "retain available";
    case 0x26: return "user property";
    case 0x27: return "maximum packet size";
    case 0x28: return "wildcard subscription available";
    case 0x29: return "subscription identifier available";
    case 0x2A: return "shared subscription available";
    default: return "unknown property";
  }
}

std::string hex(std::uint32_t value) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string digits;
  do {
    digits.insert(digits.begin(), kDigits[value & 0xF]);
    value >>= 4;
  } while (value != 0);
  if (digits.size() % 2 != 0) digits.insert(digits.begin(), '0');
  return "0x" + digits;
}

PropMask present(const Properties& p) {
  PropMask m = 0;
  const auto set = [&m](bool is_present, Prop id) {
    if (is_present) m |= bit(id);
  };
  set(p.payload_format_indicator.has_value(), Prop::payload_format_indicator);
  set(p.message_expiry_interval.has_value(), Prop::message_expiry_interval);
  set(p.content_type.has_value(), Prop::content_type);
  set(p.response_topic.has_value(), Prop::response_topic);
  set(p.correlation_data.has_value(), Prop::correlation_data);
  set(!p.subscription_identifiers.empty(), Prop::subscription_identifier);
  set(p.session_expiry_interval.has_value(), Prop::session_expiry_interval);
  set(p.assigned_client_identifier.has_value(), Prop::assigned_client_identifier);
  set(p.server_keep_alive.has_value(), Prop::server_keep_alive);
  set(p.authentication_method.has_value(), Prop::authentication_method);
  set(p.authentication_data.has_value(), Prop::authentication_data);
  set(p.request_problem_information.has_value(), Prop::request_problem_information);
  set(p.will_delay_interval.has_value(), Prop::will_delay_interval);
  set(p.request_response_information.has_value(), Prop::request_response_information);
  set(p.response_information.has_value(), Prop::response_information);
  set(p.server_reference.has_value(), Prop::server_reference);
  set(p.reason_string.has_value(), Prop::reason_string);
  set(p.receive_maximum.has_value(), Prop::receive_maximum);
  set(p.topic_alias_maximum.has_value(), Prop::topic_alias_maximum);
  set(p.topic_alias.has_value(), Prop::topic_alias);
  set(p.maximum_qos.has_value(), Prop::maximum_qos);
  set(p.retain_available.has_value(), Prop::retain_available);
  set(!p.user_properties.empty(), Prop::user_property);
  set(p.maximum_packet_size.has_value(), Prop::maximum_packet_size);
  set(p.wildcard_subscription_available.has_value(), Prop::wildcard_subscription_available);
  set(p.subscription_identifier_available.has_value(), Prop::subscription_identifier_available);
  set(p.shared_subscription_available.has_value(), Prop::shared_subscription_available);
  return m;
}

// ---------------------------------------------------------------------------------------
// Reason codes each 5.0 packet may carry (§3.2.2.2, §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1,
// §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1).

class CodeSet {
 public:
  constexpr CodeSet(std::initializer_list<std::uint8_t> codes) {
    for (const std::uint8_t code : codes) bits_[code >> 6U] |= std::uint64_t{1} << (code & 63U);
  }
  [[nodiscard]] constexpr bool contains(ReasonCode code) const {
    const auto value = static_cast<std::uint8_t>(code);
    return ((bits_[value >> 6U] >> (value & 63U)) & 1U) != 0;
  }

 private:
  std::array<std::uint64_t, 4> bits_{};
};

constexpr CodeSet kConnackCodes{0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
constexpr CodeSet kPubackCodes{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};  // and PUBREC
constexpr CodeSet kPubrelCodes{0x00, 0x92};                                            // and PUBCOMP
constexpr CodeSet kSubackCodes{0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
constexpr CodeSet kUnsubackCodes{0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
constexpr CodeSet kDisconnectCodes{0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                   0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                   0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
constexpr CodeSet kAuthCodes{0x00, 0x18, 0x19};

constexpr std::uint8_t code(ReasonCode reason) { return static_cast<std::uint8_t>(reason); }

// ---------------------------------------------------------------------------------------
// Errors.

CodecError make_error(ReasonCode reason, std::string_view where, std::string_view what) {
  std::string message;
  message.reserve(where.size() + 2 + what.size());
  message.append(where).append(": ").append(what);
  return CodecError{reason, std::move(message)};
}

using Problem = std::optional<CodecError>;

// ---------------------------------------------------------------------------------------
// Variable byte integers (§1.5.5).

enum class VarintStatus : std::uint8_t { ok, incomplete, too_long, not_minimal };

// Reads from data[pos]; on ok, pos is past the integer. The spec requires the minimum
// number of bytes [MQTT-1.5.5-1], so a zero final byte after the first is refused: every
// value has exactly one encoding.
VarintStatus parse_varint(ByteView data, std::size_t& pos, std::uint32_t& value) {
  std::uint32_t result = 0;
  for (unsigned i = 0; i < 4; ++i) {
    if (pos + i >= data.size()) return VarintStatus::incomplete;
    const std::uint8_t byte = data[pos + i];
    result |= static_cast<std::uint32_t>(byte & 0x7FU) << (7U * i);
    if ((byte & 0x80U) == 0) {
      if (i > 0 && byte == 0) return VarintStatus::not_minimal;
      pos += i + 1;
      value = result;
      return VarintStatus::ok;
    }
  }
  return VarintStatus::too_long;
}

constexpr std::size_t varint_size(std::size_t value) {
  if (value < 128) return 1;
  if (value < 16'384) return 2;
  if (value < 2'097'152) return 3;
  return 4;
}

// ---------------------------------------------------------------------------------------
// Validation shared by decode (after parsing) and encode (before writing), so that
// whatever encode() writes, decode() accepts.

Problem check_string(std::string_view text, std::string_view where, std::string_view what) {
  if (text.size() > kMaxField) return make_error(ReasonCode::malformed_packet, where, std::string(what) + " too long");
  if (!valid_utf8(text)) {
    return make_error(ReasonCode::malformed_packet, where,
                      std::string(what) + " is not valid UTF-8 or contains U+0000");
  }
  return std::nullopt;
}

Problem check_binary(ByteView data, std::string_view where, std::string_view what) {
  if (data.size() > kMaxField) return make_error(ReasonCode::malformed_packet, where, std::string(what) + " too long");
  return std::nullopt;
}

// §2.2.2.2 and the property descriptions of each packet. `what` names the property set
// in messages ("property", "will property").
Problem check_properties(const Properties& p, PropMask allowed, bool many_subscription_ids, std::string_view where,
                         std::string_view what = "property") {
  const PropMask has = present(p);
  if (has == 0) return std::nullopt;  // the common case: nothing to check
  const PropMask extra = has & ~allowed;
  if (extra != 0) {
    std::uint32_t id = 0;
    while (((extra >> id) & 1U) == 0) ++id;
    return make_error(ReasonCode::protocol_error, where,
                      std::string(what) + " " + hex(id) + " (" + std::string(property_name(id)) + ") not allowed");
  }
  constexpr PropMask kFlags =
      mask({Prop::payload_format_indicator, Prop::request_problem_information, Prop::request_response_information,
            Prop::maximum_qos, Prop::retain_available, Prop::wildcard_subscription_available,
            Prop::subscription_identifier_available, Prop::shared_subscription_available});
  if ((has & kFlags) != 0) {
    const std::array<std::pair<const std::optional<std::uint8_t>*, Prop>, 8> flags = {{
        {&p.payload_format_indicator, Prop::payload_format_indicator},
        {&p.request_problem_information, Prop::request_problem_information},
        {&p.request_response_information, Prop::request_response_information},
        {&p.maximum_qos, Prop::maximum_qos},
        {&p.retain_available, Prop::retain_available},
        {&p.wildcard_subscription_available, Prop::wildcard_subscription_available},
        {&p.subscription_identifier_available, Prop::subscription_identifier_available},
        {&p.shared_subscription_available, Prop::shared_subscription_available},
    }};
    for (const auto& [value, id] : flags) {
      if (*value && **value > 1) {
        return make_error(ReasonCode::protocol_error, where,
                          std::string(property_name(static_cast<std::uint8_t>(id))) + " is not 0 or 1");
      }
    }
  }
  if (p.receive_maximum == 0) return make_error(ReasonCode::protocol_error, where, "receive maximum is 0");
  if (p.maximum_packet_size == 0) return make_error(ReasonCode::protocol_error, where, "maximum packet size is 0");
  if (p.topic_alias == 0) return make_error(ReasonCode::protocol_error, where, "topic alias is 0");
  for (const std::uint32_t id : p.subscription_identifiers) {
    if (id == 0) return make_error(ReasonCode::protocol_error, where, "subscription identifier is 0");
    if (id > kMaxVarint) return make_error(ReasonCode::malformed_packet, where, "subscription identifier too large");
  }
  if (!many_subscription_ids && p.subscription_identifiers.size() > 1) {
    return make_error(ReasonCode::protocol_error, where, "more than one subscription identifier");
  }
  constexpr PropMask kStrings =
      mask({Prop::content_type, Prop::response_topic, Prop::assigned_client_identifier, Prop::authentication_method,
            Prop::response_information, Prop::server_reference, Prop::reason_string});
  if ((has & kStrings) != 0) {
    const std::array<std::pair<const std::optional<std::string>*, Prop>, 7> strings = {{
        {&p.content_type, Prop::content_type},
        {&p.response_topic, Prop::response_topic},
        {&p.assigned_client_identifier, Prop::assigned_client_identifier},
        {&p.authentication_method, Prop::authentication_method},
        {&p.response_information, Prop::response_information},
        {&p.server_reference, Prop::server_reference},
        {&p.reason_string, Prop::reason_string},
    }};
    for (const auto& [value, id] : strings) {
      if (!*value) continue;
      if (auto problem = check_string(**value, where, property_name(static_cast<std::uint8_t>(id)))) return problem;
    }
    if (p.response_topic && !valid_topic_name(*p.response_topic)) {  // [MQTT-3.3.2-14]
      return make_error(ReasonCode::protocol_error, where, "response topic is not a valid topic name");
    }
  }
  for (const auto& [name, value] : p.user_properties) {
    if (auto problem = check_string(name, where, "user property name")) return problem;
    if (auto problem = check_string(value, where, "user property value")) return problem;
  }
  if (p.correlation_data) {
    if (auto problem = check_binary(*p.correlation_data, where, "correlation data")) return problem;
  }
  if (p.authentication_data) {
    if (auto problem = check_binary(*p.authentication_data, where, "authentication data")) return problem;
    if (!p.authentication_method) {  // §3.1.2.11.10, §3.2.2.3.18
      return make_error(ReasonCode::protocol_error, where, "authentication data without an authentication method");
    }
  }
  return std::nullopt;
}

// A topic name as a PUBLISH or a will carries it. 5.0 allows an empty name when a topic
// alias stands in for it (§3.3.2.3.4).
Problem check_topic_name(std::string_view topic, bool alias_allowed, std::string_view where) {
  if (valid_topic_name(topic)) return std::nullopt;  // one pass in the common case
  if (auto problem = check_string(topic, where, "topic name")) return problem;
  if (topic.empty()) {
    if (alias_allowed) return std::nullopt;
    return make_error(ReasonCode::protocol_error, where, "empty topic name");
  }
  return make_error(ReasonCode::topic_name_invalid, where, "wildcard in topic name");
}

Problem check_filter(std::string_view filter, std::string_view where) {
  if (auto problem = check_string(filter, where, "topic filter")) return problem;
  if (!valid_topic_filter(filter)) return make_error(ReasonCode::topic_filter_invalid, where, "invalid topic filter");
  return std::nullopt;
}

Problem check_packet_id(std::uint16_t id, std::string_view where) {
  if (id == 0) return make_error(ReasonCode::protocol_error, where, "packet identifier 0");  // §2.2.1
  return std::nullopt;
}

Problem check_reason(ReasonCode reason, const CodeSet& allowed, std::string_view where) {
  if (!allowed.contains(reason)) {
    return make_error(ReasonCode::protocol_error, where, "reason code " + hex(code(reason)) + " not allowed");
  }
  return std::nullopt;
}

bool is_v5(ProtocolVersion version) { return version == ProtocolVersion::v5; }

Problem check(const Connect& c, ProtocolVersion version) {
  constexpr std::string_view where = "CONNECT";
  if (c.version != version) {
    return make_error(ReasonCode::implementation_specific_error, where, "version differs from the encoding version");
  }
  if (auto problem = check_string(c.client_id, where, "client identifier")) return problem;
  // 3.1.1 §3.1.3.1 [MQTT-3.1.3-8]: a zero-byte client identifier needs a clean session.
  // (5.0 leaves an empty identifier with Clean Start 0 to the server.)
  if (!is_v5(version) && c.client_id.empty() && !c.clean_start) {
    return make_error(ReasonCode::client_identifier_not_valid, where, "empty client identifier without clean session");
  }
  if (c.will) {
    if (c.will->qos > 2) return make_error(ReasonCode::malformed_packet, where, "will QoS 3");  // §3.1.2.6
    if (auto problem = check_string(c.will->topic, where, "will topic")) return problem;
    if (!valid_topic_name(c.will->topic)) {
      return make_error(ReasonCode::topic_name_invalid, where, "will topic is not a valid topic name");
    }
    if (auto problem = check_binary(c.will->payload, where, "will payload")) return problem;
    if (is_v5(version)) {
      if (auto problem = check_properties(c.will->properties, kWillProps, false, where, "will property")) {
        return problem;
      }
    }
  }
  if (c.username) {
    if (auto problem = check_string(*c.username, where, "user name")) return problem;
  }
  if (c.password) {
    if (auto problem = check_binary(*c.password, where, "password")) return problem;
    // 3.1.1 [MQTT-3.1.2-22]; 5.0 §3.1.2.9 allows a password without a user name.
    if (!is_v5(version) && !c.username) {
      return make_error(ReasonCode::protocol_error, where, "password without user name");
    }
  }
  if (is_v5(version)) return check_properties(c.properties, kConnectProps, false, where);
  return std::nullopt;
}

Problem check(const Connack& c, ProtocolVersion version) {
  constexpr std::string_view where = "CONNACK";
  if (c.session_present && c.reason != ReasonCode::success) {  // [MQTT-3.2.2-6], 3.1.1 [MQTT-3.2.2-4]
    return make_error(ReasonCode::protocol_error, where, "session present with a non-zero reason code");
  }
  if (!is_v5(version)) return std::nullopt;  // every reason maps to a return code
  if (auto problem = check_reason(c.reason, kConnackCodes, where)) return problem;
  return check_properties(c.properties, kConnackProps, false, where);
}

Problem check(const Publish& p, ProtocolVersion version) {
  constexpr std::string_view where = "PUBLISH";
  if (p.qos > 2) return make_error(ReasonCode::malformed_packet, where, "QoS 3");  // [MQTT-3.3.1-4]
  // [MQTT-3.3.1-2]: DUP must be 0 with QoS 0.
  if (p.dup && p.qos == 0) return make_error(ReasonCode::malformed_packet, where, "DUP set with QoS 0");
  if (p.qos > 0) {
    if (auto problem = check_packet_id(p.packet_id, where)) return problem;
  } else if (p.packet_id != 0) {
    return make_error(ReasonCode::protocol_error, where, "packet identifier with QoS 0");
  }
  if (auto problem = check_topic_name(p.topic, is_v5(version) && p.properties.topic_alias.has_value(), where)) {
    return problem;
  }
  if (is_v5(version)) return check_properties(p.properties, kPublishProps, true, where);
  return std::nullopt;
}

template <typename Ack>
Problem check_ack(const Ack& a, ProtocolVersion version, const CodeSet& codes, std::string_view where) {
  if (auto problem = check_packet_id(a.packet_id, where)) return problem;
  if (!is_v5(version)) return std::nullopt;
  if (auto problem = check_reason(a.reason, codes, where)) return problem;
  return check_properties(a.properties, kAckProps, false, where);
}

Problem check(const Puback& a, ProtocolVersion version) { return check_ack(a, version, kPubackCodes, "PUBACK"); }
Problem check(const Pubrec& a, ProtocolVersion version) { return check_ack(a, version, kPubackCodes, "PUBREC"); }
Problem check(const Pubrel& a, ProtocolVersion version) { return check_ack(a, version, kPubrelCodes, "PUBREL"); }
Problem check(const Pubcomp& a, ProtocolVersion version) { return check_ack(a, version, kPubrelCodes, "PUBCOMP"); }

bool is_shared(std::string_view filter) { return filter.starts_with("$share/"); }

Problem check(const Subscribe& s, ProtocolVersion version) {
  constexpr std::string_view where = "SUBSCRIBE";
  if (auto problem = check_packet_id(s.packet_id, where)) return problem;
  if (s.subscriptions.empty()) {  // [MQTT-3.8.3-2], 3.1.1 [MQTT-3.8.3-3]
    return make_error(ReasonCode::protocol_error, where, "no topic filter");
  }
  for (const Subscription& sub : s.subscriptions) {
    if (auto problem = check_filter(sub.filter, where)) return problem;
    if (sub.qos > 2) return make_error(ReasonCode::malformed_packet, where, "QoS 3");  // [MQTT-3.8.3-5]
    if (!is_v5(version)) continue;
    if (sub.retain_handling > 2) return make_error(ReasonCode::protocol_error, where, "retain handling 3");
    if (sub.no_local && is_shared(sub.filter)) {  // [MQTT-3.8.3-4]
      return make_error(ReasonCode::protocol_error, where, "no local on a shared subscription");
    }
  }
  if (is_v5(version)) return check_properties(s.properties, kSubscribeProps, false, where);
  return std::nullopt;
}

Problem check(const Suback& s, ProtocolVersion version) {
  constexpr std::string_view where = "SUBACK";
  if (auto problem = check_packet_id(s.packet_id, where)) return problem;
  if (s.reasons.empty()) return make_error(ReasonCode::protocol_error, where, "no reason code");
  for (const ReasonCode reason : s.reasons) {
    if (is_v5(version)) {
      if (auto problem = check_reason(reason, kSubackCodes, where)) return problem;
    } else if (!is_error(reason) && code(reason) > 2) {  // errors are all written as 0x80
      return make_error(ReasonCode::protocol_error, where, "return code " + hex(code(reason)) + " not in MQTT 3.1.1");
    }
  }
  if (is_v5(version)) return check_properties(s.properties, kAckProps, false, where);
  return std::nullopt;
}

Problem check(const Unsubscribe& u, ProtocolVersion version) {
  constexpr std::string_view where = "UNSUBSCRIBE";
  if (auto problem = check_packet_id(u.packet_id, where)) return problem;
  if (u.filters.empty()) {  // [MQTT-3.10.3-2]
    return make_error(ReasonCode::protocol_error, where, "no topic filter");
  }
  for (const std::string& filter : u.filters) {
    if (auto problem = check_filter(filter, where)) return problem;
  }
  if (is_v5(version)) return check_properties(u.properties, kUnsubscribeProps, false, where);
  return std::nullopt;
}

Problem check(const Unsuback& u, ProtocolVersion version) {
  constexpr std::string_view where = "UNSUBACK";
  if (auto problem = check_packet_id(u.packet_id, where)) return problem;
  if (!is_v5(version)) return std::nullopt;
  if (u.reasons.empty()) return make_error(ReasonCode::protocol_error, where, "no reason code");
  for (const ReasonCode reason : u.reasons) {
    if (auto problem = check_reason(reason, kUnsubackCodes, where)) return problem;
  }
  return check_properties(u.properties, kAckProps, false, where);
}

Problem check(const Pingreq& /*unused*/, ProtocolVersion /*unused*/) { return std::nullopt; }
Problem check(const Pingresp& /*unused*/, ProtocolVersion /*unused*/) { return std::nullopt; }

Problem check(const Disconnect& d, ProtocolVersion version) {
  constexpr std::string_view where = "DISCONNECT";
  if (!is_v5(version)) return std::nullopt;
  if (auto problem = check_reason(d.reason, kDisconnectCodes, where)) return problem;
  return check_properties(d.properties, kDisconnectProps, false, where);
}

Problem check(const Auth& a, ProtocolVersion version) {
  constexpr std::string_view where = "AUTH";
  if (!is_v5(version)) return make_error(ReasonCode::malformed_packet, where, "not part of MQTT 3.1.1");
  if (auto problem = check_reason(a.reason, kAuthCodes, where)) return problem;
  if (auto problem = check_properties(a.properties, kAuthProps, false, where)) return problem;
  // §3.15.2.2.2: omitting the method is a protocol error, except in the short form (§3.15.2.1:
  // success and no properties, remaining length 0).
  const bool short_form = a.reason == ReasonCode::success && present(a.properties) == 0;
  if (!short_form && !a.properties.authentication_method) {
    return make_error(ReasonCode::protocol_error, where, "no authentication method");
  }
  return std::nullopt;
}

Problem validate(const Packet& packet, ProtocolVersion version) {
  if (version != ProtocolVersion::v311 && version != ProtocolVersion::v5) {
    return make_error(ReasonCode::implementation_specific_error, to_string(type_of(packet)),
                      "unknown protocol version");
  }
  return std::visit([version](const auto& p) { return check(p, version); }, packet);
}

// ---------------------------------------------------------------------------------------
// Encoding: one template per packet body, run once with a Counter (for the remaining length
// and encoded_size) and once with a Writer.

class Counter {
 public:
  void byte(std::uint8_t /*unused*/) { size_ += 1; }
  void u16(std::uint16_t /*unused*/) { size_ += 2; }
  void u32(std::uint32_t /*unused*/) { size_ += 4; }
  void varint(std::size_t value) { size_ += varint_size(value); }
  void raw(ByteView data) { size_ += data.size(); }
  void raw(std::string_view text) { size_ += text.size(); }
  void payload(ByteView data) { size_ += data.size(); }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  std::size_t size_ = 0;
};

// Writes into the bytes encode() has sized with a Counter pass over the same template. Every
// write is bounds-checked all the same, so that a disagreement between the two passes is an
// error, never an overflow.
class Writer {
 public:
  Writer(std::uint8_t* begin, std::uint8_t* end) : at_(begin), end_(end) {}
  void byte(std::uint8_t value) {
    if (room(1)) *at_++ = value;
  }
  void u16(std::uint16_t value) {
    if (!room(2)) return;
    *at_++ = static_cast<std::uint8_t>(value >> 8U);
    *at_++ = static_cast<std::uint8_t>(value);
  }
  void u32(std::uint32_t value) {
    if (!room(4)) return;
    for (unsigned shift = 24;; shift -= 8) {
      *at_++ = static_cast<std::uint8_t>(value >> shift);
      if (shift == 0) break;
    }
  }
  // Only called with values up to kMaxVarint (checked by validate() and encode()).
  void varint(std::size_t value) {
    do {
      auto byte = static_cast<std::uint8_t>(value & 0x7FU);
      value >>= 7U;
      if (value != 0) byte |= 0x80U;
      this->byte(byte);
    } while (value != 0);
  }
  void raw(ByteView data) {
    if (data.empty() || !room(data.size())) return;
    std::memcpy(at_, data.data(), data.size());
    at_ += data.size();
  }
  void raw(std::string_view text) { raw(as_bytes(text)); }
  // The PUBLISH payload, which encode() appends after the fields rather than copying it
  // twice (once to zero-fill, once to write).
  void payload(ByteView /*unused*/) {}
  // Whether exactly the sized bytes were written.
  [[nodiscard]] bool complete() const { return !overflow_ && at_ == end_; }

 private:
  bool room(std::size_t n) {
    if (n > static_cast<std::size_t>(end_ - at_)) overflow_ = true;
    return !overflow_;
  }

  std::uint8_t* at_;
  std::uint8_t* end_;
  bool overflow_ = false;
};

// Lengths are checked by validate() before anything is written.
template <typename Sink>
void put_string(Sink& s, std::string_view text) {
  s.u16(static_cast<std::uint16_t>(text.size()));
  s.raw(text);
}

template <typename Sink>
void put_binary(Sink& s, ByteView data) {
  s.u16(static_cast<std::uint16_t>(data.size()));
  s.raw(data);
}

template <typename Sink>
void put_prop(Sink& s, Prop id) {
  s.byte(static_cast<std::uint8_t>(id));  // every identifier fits one varint byte
}

// The properties in identifier order (the order on the wire carries no meaning, §2.2.2.2).
template <typename Sink>
void put_properties(Sink& s, const Properties& p) {
  const auto byte = [&s](Prop id, const std::optional<std::uint8_t>& v) {
    if (v) {
      put_prop(s, id);
      s.byte(*v);
    }
  };
  const auto u16 = [&s](Prop id, const std::optional<std::uint16_t>& v) {
    if (v) {
      put_prop(s, id);
      s.u16(*v);
    }
  };
  const auto u32 = [&s](Prop id, const std::optional<std::uint32_t>& v) {
    if (v) {
      put_prop(s, id);
      s.u32(*v);
    }
  };
  const auto str = [&s](Prop id, const std::optional<std::string>& v) {
    if (v) {
      put_prop(s, id);
      put_string(s, *v);
    }
  };
  const auto bin = [&s](Prop id, const std::optional<Bytes>& v) {
    if (v) {
      put_prop(s, id);
      put_binary(s, *v);
    }
  };
  byte(Prop::payload_format_indicator, p.payload_format_indicator);
  u32(Prop::message_expiry_interval, p.message_expiry_interval);
  str(Prop::content_type, p.content_type);
  str(Prop::response_topic, p.response_topic);
  bin(Prop::correlation_data, p.correlation_data);
  for (const std::uint32_t id : p.subscription_identifiers) {
    put_prop(s, Prop::subscription_identifier);
    s.varint(id);
  }
  u32(Prop::session_expiry_interval, p.session_expiry_interval);
  str(Prop::assigned_client_identifier, p.assigned_client_identifier);
  u16(Prop::server_keep_alive, p.server_keep_alive);
  str(Prop::authentication_method, p.authentication_method);
  bin(Prop::authentication_data, p.authentication_data);
  byte(Prop::request_problem_information, p.request_problem_information);
  u32(Prop::will_delay_interval, p.will_delay_interval);
  byte(Prop::request_response_information, p.request_response_information);
  str(Prop::response_information, p.response_information);
  str(Prop::server_reference, p.server_reference);
  str(Prop::reason_string, p.reason_string);
  u16(Prop::receive_maximum, p.receive_maximum);
  u16(Prop::topic_alias_maximum, p.topic_alias_maximum);
  u16(Prop::topic_alias, p.topic_alias);
  byte(Prop::maximum_qos, p.maximum_qos);
  byte(Prop::retain_available, p.retain_available);
  for (const auto& [name, value] : p.user_properties) {
    put_prop(s, Prop::user_property);
    put_string(s, name);
    put_string(s, value);
  }
  u32(Prop::maximum_packet_size, p.maximum_packet_size);
  byte(Prop::wildcard_subscription_available, p.wildcard_subscription_available);
  byte(Prop::subscription_identifier_available, p.subscription_identifier_available);
  byte(Prop::shared_subscription_available, p.shared_subscription_available);
}

std::size_t properties_size(const Properties& p) {
  Counter counter;
  put_properties(counter, p);
  return counter.size();
}

// Property length, then the properties.
template <typename Sink>
void put_property_block(Sink& s, const Properties& p) {
  s.varint(properties_size(p));
  put_properties(s, p);
}

template <typename Sink>
void put_body(Sink& s, const Connect& c, ProtocolVersion version) {
  put_string(s, kProtocolName);
  s.byte(static_cast<std::uint8_t>(version));
  unsigned flags = 0;
  if (c.clean_start) flags |= 0x02U;
  if (c.will) {
    flags |= 0x04U | (static_cast<unsigned>(c.will->qos) << 3U);
    if (c.will->retain) flags |= 0x20U;
  }
  if (c.password) flags |= 0x40U;
  if (c.username) flags |= 0x80U;
  s.byte(static_cast<std::uint8_t>(flags));
  s.u16(c.keep_alive_seconds);
  if (is_v5(version)) put_property_block(s, c.properties);
  put_string(s, c.client_id);
  if (c.will) {
    if (is_v5(version)) put_property_block(s, c.will->properties);
    put_string(s, c.will->topic);
    put_binary(s, c.will->payload);
  }
  if (c.username) put_string(s, *c.username);
  if (c.password) put_binary(s, *c.password);
}

template <typename Sink>
void put_body(Sink& s, const Connack& c, ProtocolVersion version) {
  s.byte(c.session_present ? 1 : 0);
  if (!is_v5(version)) {
    s.byte(connack_return_code_v311(c.reason));
    return;
  }
  s.byte(code(c.reason));
  put_property_block(s, c.properties);
}

template <typename Sink>
void put_body(Sink& s, const Publish& p, ProtocolVersion version) {
  put_string(s, p.topic);
  if (p.qos > 0) s.u16(p.packet_id);
  if (is_v5(version)) put_property_block(s, p.properties);
  s.payload(p.payload);  // last: see Writer::payload
}

// PUBACK, PUBREC, PUBREL, PUBCOMP in their shortest 5.0 form (§3.4.2.1, §3.4.2.2.1).
template <typename Sink, typename Ack>
void put_ack(Sink& s, const Ack& a, ProtocolVersion version) {
  s.u16(a.packet_id);
  if (!is_v5(version)) return;
  const bool has_properties = present(a.properties) != 0;
  if (a.reason == ReasonCode::success && !has_properties) return;
  s.byte(code(a.reason));
  if (has_properties) put_property_block(s, a.properties);
}

template <typename Sink>
void put_body(Sink& s, const Puback& a, ProtocolVersion version) {
  put_ack(s, a, version);
}
template <typename Sink>
void put_body(Sink& s, const Pubrec& a, ProtocolVersion version) {
  put_ack(s, a, version);
}
template <typename Sink>
void put_body(Sink& s, const Pubrel& a, ProtocolVersion version) {
  put_ack(s, a, version);
}
template <typename Sink>
void put_body(Sink& s, const Pubcomp& a, ProtocolVersion version) {
  put_ack(s, a, version);
}

template <typename Sink>
void put_body(Sink& s, const Subscribe& sub, ProtocolVersion version) {
  s.u16(sub.packet_id);
  if (is_v5(version)) put_property_block(s, sub.properties);
  for (const Subscription& entry : sub.subscriptions) {
    put_string(s, entry.filter);
    unsigned options = entry.qos;
    if (is_v5(version)) {  // §3.8.3.1
      if (entry.no_local) options |= 0x04U;
      if (entry.retain_as_published) options |= 0x08U;
      options |= static_cast<unsigned>(entry.retain_handling) << 4U;
    }
    s.byte(static_cast<std::uint8_t>(options));
  }
}

template <typename Sink>
void put_body(Sink& s, const Suback& sub, ProtocolVersion version) {
  s.u16(sub.packet_id);
  if (is_v5(version)) put_property_block(s, sub.properties);
  for (const ReasonCode reason : sub.reasons) {
    // 3.1.1 §3.9.3 knows one failure code, 0x80.
    s.byte(!is_v5(version) && is_error(reason) ? std::uint8_t{0x80} : code(reason));
  }
}

template <typename Sink>
void put_body(Sink& s, const Unsubscribe& u, ProtocolVersion version) {
  s.u16(u.packet_id);
  if (is_v5(version)) put_property_block(s, u.properties);
  for (const std::string& filter : u.filters) put_string(s, filter);
}

template <typename Sink>
void put_body(Sink& s, const Unsuback& u, ProtocolVersion version) {
  s.u16(u.packet_id);
  if (!is_v5(version)) return;
  put_property_block(s, u.properties);
  for (const ReasonCode reason : u.reasons) s.byte(code(reason));
}

template <typename Sink>
void put_body(Sink& /*unused*/, const Pingreq& /*unused*/, ProtocolVersion /*unused*/) {}
template <typename Sink>
void put_body(Sink& /*unused*/, const Pingresp& /*unused*/, ProtocolVersion /*unused*/) {}

// §3.14.2.1: remaining length 0 means success without properties, 1 a reason code alone.
template <typename Sink>
void put_body(Sink& s, const Disconnect& d, ProtocolVersion version) {
  if (!is_v5(version)) return;
  const bool has_properties = present(d.properties) != 0;
  if (d.reason == ReasonCode::success && !has_properties) return;
  s.byte(code(d.reason));
  if (has_properties) put_property_block(s, d.properties);
}

// §3.15.2.1: reason code and properties are both omitted, or both present.
template <typename Sink>
void put_body(Sink& s, const Auth& a, ProtocolVersion /*unused*/) {
  if (a.reason == ReasonCode::success && present(a.properties) == 0) return;
  s.byte(code(a.reason));
  put_property_block(s, a.properties);
}

template <typename Sink>
void put_packet_body(Sink& s, const Packet& packet, ProtocolVersion version) {
  std::visit([&s, version](const auto& p) { put_body(s, p, version); }, packet);
}

// Packet type and the flags of §2.1.3.
std::uint8_t first_byte(const Packet& packet) {
  const auto type = static_cast<unsigned>(type_of(packet));
  unsigned flags = 0;
  if (const auto* publish = std::get_if<Publish>(&packet)) {
    flags = (publish->dup ? 0x08U : 0U) | (static_cast<unsigned>(publish->qos) << 1U) | (publish->retain ? 1U : 0U);
  } else if (std::holds_alternative<Pubrel>(packet) || std::holds_alternative<Subscribe>(packet) ||
             std::holds_alternative<Unsubscribe>(packet)) {
    flags = 0x02;
  }
  return static_cast<std::uint8_t>((type << 4U) | flags);
}

// ---------------------------------------------------------------------------------------
// Decoding. A Decoder reads fields from the body of one packet and records the first error;
// every read checks the bounds, and every allocation copies bytes of the packet, so memory
// use is bounded by a small multiple of the packet size.

class Decoder {
 public:
  Decoder(ByteView data, std::string_view where) : data_(data), end_(data.size()), where_(where) {}

  [[nodiscard]] std::size_t remaining() const { return end_ - pos_; }
  [[nodiscard]] CodecError take_error() { return std::move(error_); }

  [[nodiscard]] CodecError make(std::string_view what) const {
    return make_error(ReasonCode::malformed_packet, where_, what);
  }
  bool fail(ReasonCode reason, std::string_view what) {
    error_ = make_error(reason, where_, what);
    return false;
  }
  bool truncated() { return fail(ReasonCode::malformed_packet, "truncated"); }

  [[nodiscard]] bool u8(std::uint8_t& out) {
    if (remaining() < 1) return truncated();
    out = data_[pos_++];
    return true;
  }
  [[nodiscard]] bool u16(std::uint16_t& out) {
    if (remaining() < 2) return truncated();
    out = static_cast<std::uint16_t>((unsigned{data_[pos_]} << 8U) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  [[nodiscard]] bool u32(std::uint32_t& out) {
    if (remaining() < 4) return truncated();
    out = (std::uint32_t{data_[pos_]} << 24U) | (std::uint32_t{data_[pos_ + 1]} << 16U) |
          (std::uint32_t{data_[pos_ + 2]} << 8U) | std::uint32_t{data_[pos_ + 3]};
    pos_ += 4;
    return true;
  }
  [[nodiscard]] bool varint(std::uint32_t& out) {
    switch (parse_varint(data_.first(end_), pos_, out)) {
      case VarintStatus::ok: return true;
      case VarintStatus::incomplete: return truncated();
      case VarintStatus::too_long: return fail(ReasonCode::malformed_packet, "variable byte integer over 4 bytes");
      case VarintStatus::not_minimal:
        return fail(ReasonCode::malformed_packet, "variable byte integer not minimally encoded");
    }
    return truncated();
  }
  // A 16-bit length, then that many bytes; not copied.
  [[nodiscard]] bool field(ByteView& out) {
    std::uint16_t length = 0;
    if (!u16(length)) return false;
    if (remaining() < length) return truncated();
    out = data_.subspan(pos_, length);
    pos_ += length;
    return true;
  }
  // Strings are copied as they are; validate() checks their UTF-8 afterwards.
  [[nodiscard]] bool string(std::string& out) {
    ByteView bytes;
    if (!field(bytes)) return false;
    out.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return true;
  }
  [[nodiscard]] bool binary(Bytes& out) {
    ByteView bytes;
    if (!field(bytes)) return false;
    out.assign(bytes.begin(), bytes.end());
    return true;
  }
  void rest(Bytes& out) {
    out.assign(data_.begin() + static_cast<std::ptrdiff_t>(pos_), data_.begin() + static_cast<std::ptrdiff_t>(end_));
    pos_ = end_;
  }

  template <typename T>
  [[nodiscard]] bool read_optional(std::optional<T>& out) {
    T value{};
    bool ok = false;
    if constexpr (std::is_same_v<T, std::uint8_t>) {
      ok = u8(value);
    } else if constexpr (std::is_same_v<T, std::uint16_t>) {
      ok = u16(value);
    } else if constexpr (std::is_same_v<T, std::uint32_t>) {
      ok = u32(value);
    } else if constexpr (std::is_same_v<T, std::string>) {
      ok = string(value);
    } else {
      static_assert(std::is_same_v<T, Bytes>);
      ok = binary(value);
    }
    if (ok) out = std::move(value);
    return ok;
  }

  // §2.2.2: property length, then properties. Identifiers outside `allowed` and repeated
  // identifiers (other than user property, and subscription identifier where
  // many_subscription_ids) are protocol errors.
  [[nodiscard]] bool properties(Properties& out, PropMask allowed, bool many_subscription_ids,
                                std::string_view what = "property") {
    std::uint32_t length = 0;
    if (!varint(length)) return false;
    if (length > remaining()) return fail(ReasonCode::malformed_packet, std::string(what) + " length past the end");
    const std::size_t outer_end = end_;
    end_ = pos_ + length;
    PropMask seen = 0;
    while (pos_ < end_) {
      std::uint32_t id = 0;
      if (!varint(id)) return false;
      if (id >= 64 || ((allowed >> id) & 1U) == 0) {
        return fail(ReasonCode::protocol_error,
                    std::string(what) + " " + hex(id) + " (" + std::string(property_name(id)) + ") not allowed");
      }
      const auto prop = static_cast<Prop>(id);
      const bool repeatable =
          prop == Prop::user_property || (prop == Prop::subscription_identifier && many_subscription_ids);
      if ((seen & bit(prop)) != 0 && !repeatable) {
        return fail(ReasonCode::protocol_error,
                    std::string(what) + " " + hex(id) + " (" + std::string(property_name(id)) + ") repeated");
      }
      seen |= bit(prop);
      if (!property_value(prop, out)) return false;
    }
    end_ = outer_end;
    return true;
  }

 private:
  [[nodiscard]] bool property_value(Prop prop, Properties& out) {
    switch (prop) {
      case Prop::payload_format_indicator: return read_optional(out.payload_format_indicator);
      case Prop::message_expiry_interval: return read_optional(out.message_expiry_interval);
      case Prop::content_type: return read_optional(out.content_type);
      case Prop::response_topic: return read_optional(out.response_topic);
      case Prop::correlation_data: return read_optional(out.correlation_data);
      case Prop::subscription_identifier: {
        std::uint32_t id = 0;
        if (!varint(id)) return false;
        out.subscription_identifiers.push_back(id);
        return true;
      }
      case Prop::session_expiry_interval: return read_optional(out.session_expiry_interval);
      case Prop::assigned_client_identifier: return read_optional(out.assigned_client_identifier);
      case Prop::server_keep_alive: return read_optional(out.server_keep_alive);
      case Prop::authentication_method: return read_optional(out.authentication_method);
      case Prop::authentication_data: return read_optional(out.authentication_data);
      case Prop::request_problem_information: return read_optional(out.request_problem_information);
      case Prop::will_delay_interval: return read_optional(out.will_delay_interval);
      case Prop::request_response_information: return read_optional(out.request_response_information);
      case Prop::response_information: return read_optional(out.response_information);
      case Prop::server_reference: return read_optional(out.server_reference);
      case Prop::reason_string: return read_optional(out.reason_string);
      case Prop::receive_maximum: return read_optional(out.receive_maximum);
      case Prop::topic_alias_maximum: return read_optional(out.topic_alias_maximum);
      case Prop::topic_alias: return read_optional(out.topic_alias);
      case Prop::maximum_qos: return read_optional(out.maximum_qos);
      case Prop::retain_available: return read_optional(out.retain_available);
      case Prop::user_property: {
        std::string name;
        std::string value;
        if (!string(name) || !string(value)) return false;
        out.user_properties.emplace_back(std::move(name), std::move(value));
        return true;
      }
      case Prop::maximum_packet_size: return read_optional(out.maximum_packet_size);
      case Prop::wildcard_subscription_available: return read_optional(out.wildcard_subscription_available);
      case Prop::subscription_identifier_available: return read_optional(out.subscription_identifier_available);
      case Prop::shared_subscription_available: return read_optional(out.shared_subscription_available);
    }
    return fail(ReasonCode::protocol_error, "unknown property");
  }

  ByteView data_;
  std::size_t pos_ = 0;
  std::size_t end_;
  std::string_view where_;
  CodecError error_;
};

// §3.1.2: protocol name and level first, so that a client speaking another protocol
// version is told so rather than that its packet is malformed.
bool decode_connect(Decoder& d, Connect& c) {
  ByteView name;
  if (!d.field(name)) return false;
  const std::string_view protocol(reinterpret_cast<const char*>(name.data()), name.size());
  if (protocol != kProtocolName) {
    return d.fail(ReasonCode::unsupported_protocol_version,
                  protocol == "MQIsdp" ? "MQTT 3.1 (MQIsdp) not supported" : "unknown protocol name");
  }
  std::uint8_t level = 0;
  if (!d.u8(level)) return false;
  if (level != 4 && level != 5) {
    return d.fail(ReasonCode::unsupported_protocol_version,
                  "protocol level " + std::to_string(level) + " not supported");
  }
  c.version = static_cast<ProtocolVersion>(level);
  const bool v5 = is_v5(c.version);
  std::uint8_t flags = 0;
  if (!d.u8(flags)) return false;
  if ((flags & 0x01U) != 0) return d.fail(ReasonCode::malformed_packet, "reserved connect flag set");  // §3.1.2.3
  const bool has_will = (flags & 0x04U) != 0;
  const auto will_qos = static_cast<std::uint8_t>((flags >> 3U) & 0x03U);
  const bool will_retain = (flags & 0x20U) != 0;
  if (!has_will && (will_qos != 0 || will_retain)) {  // [MQTT-3.1.2-11], [MQTT-3.1.2-13]
    return d.fail(ReasonCode::malformed_packet, "will QoS or will retain without will flag");
  }
  if (will_qos == 3) return d.fail(ReasonCode::malformed_packet, "will QoS 3");
  c.clean_start = (flags & 0x02U) != 0;
  if (!d.u16(c.keep_alive_seconds)) return false;
  if (v5 && !d.properties(c.properties, kConnectProps, false)) return false;
  if (!d.string(c.client_id)) return false;
  if (has_will) {
    Will& will = c.will.emplace();
    will.qos = will_qos;
    will.retain = will_retain;
    if (v5 && !d.properties(will.properties, kWillProps, false, "will property")) return false;
    if (!d.string(will.topic) || !d.binary(will.payload)) return false;
  }
  if ((flags & 0x80U) != 0 && !d.string(c.username.emplace())) return false;
  if ((flags & 0x40U) != 0 && !d.binary(c.password.emplace())) return false;
  return true;
}

// 3.1.1 §3.2.2.3 return codes 0..5; 6..255 are reserved.
bool connack_reason_v311(std::uint8_t return_code, ReasonCode& out) {
  constexpr std::array<ReasonCode, 6> kReasons = {ReasonCode::success,
                                                  ReasonCode::unsupported_protocol_version,
                                                  ReasonCode::client_identifier_not_valid,
                                                  ReasonCode::server_unavailable,
                                                  ReasonCode::bad_user_name_or_password,
                                                  ReasonCode::not_authorized};
  if (return_code >= kReasons.size()) return false;
  out = kReasons.at(return_code);
  return true;
}

bool decode_connack(Decoder& d, ProtocolVersion version, Connack& c) {
  std::uint8_t flags = 0;
  std::uint8_t reason = 0;
  if (!d.u8(flags) || !d.u8(reason)) return false;
  if ((flags & 0xFEU) != 0) return d.fail(ReasonCode::malformed_packet, "reserved acknowledge flags set");
  c.session_present = (flags & 0x01U) != 0;
  if (!is_v5(version)) {
    if (!connack_reason_v311(reason, c.reason)) {
      return d.fail(ReasonCode::protocol_error, "reserved return code " + hex(reason));
    }
    return true;
  }
  c.reason = static_cast<ReasonCode>(reason);
  return d.properties(c.properties, kConnackProps, false);
}

bool decode_publish(Decoder& d, std::uint8_t flags, ProtocolVersion version, Publish& p) {
  p.dup = (flags & 0x08U) != 0;
  p.qos = static_cast<std::uint8_t>((flags >> 1U) & 0x03U);
  p.retain = (flags & 0x01U) != 0;
  if (p.qos == 3) return d.fail(ReasonCode::malformed_packet, "QoS 3");
  if (!d.string(p.topic)) return false;
  if (p.qos > 0 && !d.u16(p.packet_id)) return false;
  if (is_v5(version) && !d.properties(p.properties, kPublishProps, true)) return false;
  d.rest(p.payload);
  return true;
}

// §3.4.2.1: in 5.0 a remaining length of 2 means success without properties, and one
// below 4 no properties.
template <typename Ack>
bool decode_ack(Decoder& d, ProtocolVersion version, Ack& a) {
  if (!d.u16(a.packet_id)) return false;
  if (!is_v5(version) || d.remaining() == 0) return true;
  std::uint8_t reason = 0;
  if (!d.u8(reason)) return false;
  a.reason = static_cast<ReasonCode>(reason);
  if (d.remaining() == 0) return true;
  return d.properties(a.properties, kAckProps, false);
}

bool decode_subscribe(Decoder& d, ProtocolVersion version, Subscribe& s) {
  if (!d.u16(s.packet_id)) return false;
  if (is_v5(version) && !d.properties(s.properties, kSubscribeProps, false)) return false;
  while (d.remaining() > 0) {
    Subscription& entry = s.subscriptions.emplace_back();
    std::uint8_t options = 0;
    if (!d.string(entry.filter) || !d.u8(options)) return false;
    // 5.0 §3.8.3.1: bits 6-7 reserved; 3.1.1 §3.8.3.1: bits 2-7 reserved.
    const unsigned reserved = is_v5(version) ? 0xC0U : 0xFCU;
    if ((options & reserved) != 0) return d.fail(ReasonCode::malformed_packet, "reserved subscription option bits set");
    entry.qos = static_cast<std::uint8_t>(options & 0x03U);
    if (entry.qos == 3) return d.fail(ReasonCode::malformed_packet, "QoS 3");
    entry.no_local = (options & 0x04U) != 0;
    entry.retain_as_published = (options & 0x08U) != 0;
    entry.retain_handling = static_cast<std::uint8_t>((options >> 4U) & 0x03U);
  }
  return true;
}

bool decode_suback(Decoder& d, ProtocolVersion version, Suback& s) {
  if (!d.u16(s.packet_id)) return false;
  if (is_v5(version) && !d.properties(s.properties, kAckProps, false)) return false;
  while (d.remaining() > 0) {
    std::uint8_t reason = 0;
    if (!d.u8(reason)) return false;
    if (!is_v5(version) && reason > 2 && reason != 0x80) {  // 3.1.1 §3.9.3
      return d.fail(ReasonCode::protocol_error, "reserved return code " + hex(reason));
    }
    s.reasons.push_back(static_cast<ReasonCode>(reason));
  }
  return true;
}

bool decode_unsubscribe(Decoder& d, ProtocolVersion version, Unsubscribe& u) {
  if (!d.u16(u.packet_id)) return false;
  if (is_v5(version) && !d.properties(u.properties, kUnsubscribeProps, false)) return false;
  while (d.remaining() > 0) {
    if (!d.string(u.filters.emplace_back())) return false;
  }
  return true;
}

bool decode_unsuback(Decoder& d, ProtocolVersion version, Unsuback& u) {
  if (!d.u16(u.packet_id)) return false;
  if (!is_v5(version)) return true;  // 3.1.1: remaining length 2, no payload
  if (!d.properties(u.properties, kAckProps, false)) return false;
  while (d.remaining() > 0) {
    std::uint8_t reason = 0;
    if (!d.u8(reason)) return false;
    u.reasons.push_back(static_cast<ReasonCode>(reason));
  }
  return true;
}

// §3.14.2.1: remaining length 0 is success without properties; below 2, no properties.
bool decode_disconnect(Decoder& d, ProtocolVersion version, Disconnect& out) {
  if (!is_v5(version) || d.remaining() == 0) return true;
  std::uint8_t reason = 0;
  if (!d.u8(reason)) return false;
  out.reason = static_cast<ReasonCode>(reason);
  if (d.remaining() == 0) return true;
  return d.properties(out.properties, kDisconnectProps, false);
}

// §3.15.2.1: remaining length 0 is success without properties; otherwise both follow.
bool decode_auth(Decoder& d, Auth& a) {
  if (d.remaining() == 0) return true;
  std::uint8_t reason = 0;
  if (!d.u8(reason)) return false;
  a.reason = static_cast<ReasonCode>(reason);
  return d.properties(a.properties, kAuthProps, false);
}

// Parses the body into a T built in place inside the result (no copy or move of the packet
// afterwards), then checks that nothing is left over and that the value follows the rules.
template <typename T, typename Parse>
CodecResult<Packet> decode_body(Decoder& d, ProtocolVersion version, Parse parse) {
  // Every path returns `result`, so that it is constructed in the caller's return slot.
  CodecResult<Packet> result(tl::in_place, std::in_place_type<T>);
  T& value = *std::get_if<T>(&*result);
  if (!parse(value)) {
    result = tl::unexpected(d.take_error());
  } else if (d.remaining() != 0) {
    result = tl::unexpected(d.make("unexpected bytes at the end"));
  } else {
    if constexpr (std::is_same_v<T, Connect>) version = value.version;
    if (auto problem = check(value, version)) result = tl::unexpected(std::move(*problem));
  }
  return result;
}

enum class HeaderStatus : std::uint8_t { ok, incomplete, type_zero, too_long, not_minimal };

HeaderStatus parse_fixed_header(ByteView buffer, Frame& out) {
  if (buffer.empty()) return HeaderStatus::incomplete;
  if ((buffer[0] >> 4U) == 0) return HeaderStatus::type_zero;
  std::size_t pos = 1;
  std::uint32_t length = 0;
  switch (parse_varint(buffer, pos, length)) {
    case VarintStatus::ok: break;
    case VarintStatus::incomplete: return HeaderStatus::incomplete;
    case VarintStatus::too_long: return HeaderStatus::too_long;
    case VarintStatus::not_minimal: return HeaderStatus::not_minimal;
  }
  out = Frame{buffer[0], pos, length};
  return HeaderStatus::ok;
}

std::optional<CodecError> header_error(HeaderStatus status) {
  switch (status) {
    case HeaderStatus::ok:
    case HeaderStatus::incomplete: return std::nullopt;
    case HeaderStatus::type_zero:
      return make_error(ReasonCode::malformed_packet, "fixed header", "packet type 0 is reserved");
    case HeaderStatus::too_long:
      return make_error(ReasonCode::malformed_packet, "fixed header", "remaining length over 4 bytes");
    case HeaderStatus::not_minimal:
      return make_error(ReasonCode::malformed_packet, "fixed header", "remaining length not minimally encoded");
  }
  return std::nullopt;
}

}  // namespace

CodecResult<std::optional<Frame>> frame(ByteView buffer, std::size_t max_packet_bytes) {
  Frame result;
  const HeaderStatus status = parse_fixed_header(buffer, result);
  if (status == HeaderStatus::incomplete) return std::optional<Frame>{};
  if (auto error = header_error(status)) return tl::unexpected(std::move(*error));
  if (result.total_bytes() > max_packet_bytes) {  // 5.0 §3.1.2.11.4, §4.13
    return tl::unexpected(make_error(ReasonCode::packet_too_large, "fixed header",
                                     "packet of " + std::to_string(result.total_bytes()) + " bytes over the limit of " +
                                         std::to_string(max_packet_bytes)));
  }
  return std::optional<Frame>{result};
}

CodecResult<Packet> decode(ByteView packet, std::optional<ProtocolVersion> version) {
  Frame header;
  const HeaderStatus status = parse_fixed_header(packet, header);
  if (auto error = header_error(status)) return tl::unexpected(std::move(*error));
  if (status == HeaderStatus::incomplete || header.total_bytes() > packet.size()) {
    return tl::unexpected(make_error(ReasonCode::malformed_packet, "fixed header", "truncated packet"));
  }
  if (header.total_bytes() < packet.size()) {
    return tl::unexpected(make_error(ReasonCode::malformed_packet, "fixed header", "bytes after the packet"));
  }

  const auto type = static_cast<PacketType>(header.first_byte >> 4U);
  const auto flags = static_cast<std::uint8_t>(header.first_byte & 0x0FU);
  const std::string_view where = to_string(type);
  if (!version && type != PacketType::connect) {  // 5.0 §3.1, 3.1.1 [MQTT-3.1.0-1]
    return tl::unexpected(make_error(ReasonCode::protocol_error, where, "first packet is not CONNECT"));
  }
  if (version && !is_v5(*version) && type == PacketType::auth) {
    return tl::unexpected(make_error(ReasonCode::malformed_packet, where, "packet type 15 is reserved in MQTT 3.1.1"));
  }
  // §2.1.3: PUBLISH carries DUP/QoS/RETAIN; PUBREL, SUBSCRIBE and UNSUBSCRIBE have 0010;
  // every other type 0000.
  if (type != PacketType::publish) {
    const bool flags_0010 =
        type == PacketType::pubrel || type == PacketType::subscribe || type == PacketType::unsubscribe;
    if (flags != (flags_0010 ? 0x02U : 0x00U)) {
      return tl::unexpected(make_error(ReasonCode::malformed_packet, where, "reserved fixed header flags"));
    }
  }

  // For CONNECT, the version the packet names (decode_body takes it from the packet);
  // otherwise the connection's.
  const ProtocolVersion v = version.value_or(ProtocolVersion::v5);
  Decoder d(packet.subspan(header.header_bytes), where);
  switch (type) {
    case PacketType::connect: return decode_body<Connect>(d, v, [&](Connect& c) { return decode_connect(d, c); });
    case PacketType::connack: return decode_body<Connack>(d, v, [&](Connack& c) { return decode_connack(d, v, c); });
    case PacketType::publish:
      return decode_body<Publish>(d, v, [&](Publish& p) { return decode_publish(d, flags, v, p); });
    case PacketType::puback: return decode_body<Puback>(d, v, [&](Puback& a) { return decode_ack(d, v, a); });
    case PacketType::pubrec: return decode_body<Pubrec>(d, v, [&](Pubrec& a) { return decode_ack(d, v, a); });
    case PacketType::pubrel: return decode_body<Pubrel>(d, v, [&](Pubrel& a) { return decode_ack(d, v, a); });
    case PacketType::pubcomp: return decode_body<Pubcomp>(d, v, [&](Pubcomp& a) { return decode_ack(d, v, a); });
    case PacketType::subscribe:
      return decode_body<Subscribe>(d, v, [&](Subscribe& s) { return decode_subscribe(d, v, s); });
    case PacketType::suback: return decode_body<Suback>(d, v, [&](Suback& s) { return decode_suback(d, v, s); });
    case PacketType::unsubscribe:
      return decode_body<Unsubscribe>(d, v, [&](Unsubscribe& u) { return decode_unsubscribe(d, v, u); });
    case PacketType::unsuback:
      return decode_body<Unsuback>(d, v, [&](Unsuback& u) { return decode_unsuback(d, v, u); });
    case PacketType::pingreq: return decode_body<Pingreq>(d, v, [](Pingreq& /*unused*/) { return true; });
    case PacketType::pingresp: return decode_body<Pingresp>(d, v, [](Pingresp& /*unused*/) { return true; });
    case PacketType::disconnect:
      return decode_body<Disconnect>(d, v, [&](Disconnect& out) { return decode_disconnect(d, v, out); });
    case PacketType::auth: return decode_body<Auth>(d, v, [&](Auth& a) { return decode_auth(d, a); });
  }
  return tl::unexpected(make_error(ReasonCode::malformed_packet, where, "reserved packet type"));
}

CodecResult<std::size_t> encode(const Packet& packet, ProtocolVersion version, Bytes& out) {
  if (auto problem = validate(packet, version)) {
    return tl::unexpected(CodecError{ReasonCode::implementation_specific_error, std::move(problem->message)});
  }
  Counter counter;
  put_packet_body(counter, packet, version);
  const std::size_t body = counter.size();
  if (body > kMaxVarint) {
    return tl::unexpected(make_error(ReasonCode::implementation_specific_error, to_string(type_of(packet)),
                                     "packet over 268,435,455 bytes"));
  }
  const std::size_t total = 1 + varint_size(body) + body;
  const auto* publish = std::get_if<Publish>(&packet);
  const ByteView payload = publish != nullptr ? ByteView(publish->payload) : ByteView();
  const std::size_t start = out.size();
  out.reserve(start + total);
  out.resize(start + total - payload.size());
  Writer writer(out.data() + start, out.data() + out.size());
  writer.byte(first_byte(packet));
  writer.varint(body);
  put_packet_body(writer, packet, version);
  if (!writer.complete()) {  // the two passes disagree: a bug here, not in the caller
    out.resize(start);
    return tl::unexpected(
        make_error(ReasonCode::implementation_specific_error, to_string(type_of(packet)), "encoder size mismatch"));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return total;
}

std::size_t encoded_size(const Packet& packet, ProtocolVersion version) {
  Counter counter;
  put_packet_body(counter, packet, version);
  return 1 + varint_size(counter.size()) + counter.size();
}

// 3.1.1 §3.2.2.3 knows six return codes; each 5.0 reason goes to the nearest, and no
// failure ever maps to 0 (accepted).
std::uint8_t connack_return_code_v311(ReasonCode reason) {
  switch (reason) {
    case ReasonCode::success: return 0x00;
    case ReasonCode::unsupported_protocol_version: return 0x01;
    case ReasonCode::client_identifier_not_valid: return 0x02;
    case ReasonCode::bad_user_name_or_password: return 0x04;
    case ReasonCode::not_authorized:
    case ReasonCode::banned:
    case ReasonCode::bad_authentication_method: return 0x05;
    default: return 0x03;  // server unavailable
  }
}

}  // namespace torii::mqtt

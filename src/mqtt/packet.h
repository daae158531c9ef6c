// MQTT control packets as values: what the codec (codec.h) decodes from and encodes to bytes.
//
// One struct per packet type, for both protocol versions (MQTT 3.1.1 = level 4, MQTT 5.0 =
// level 5). Fields a version lacks (properties, reason codes of acknowledgements) are
// ignored when encoding for 3.1.1 and left at their defaults when decoding 3.1.1.
// Pure data: no I/O, no allocation beyond the members.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/bytes.h"

namespace torii::mqtt {

enum class ProtocolVersion : std::uint8_t { v311 = 4, v5 = 5 };

enum class PacketType : std::uint8_t {
  connect = 1,
  connack = 2,
  publish = 3,
  puback = 4,
  pubrec = 5,
  pubrel = 6,
  pubcomp = 7,
  subscribe = 8,
  suback = 9,
  unsubscribe = 10,
  unsuback = 11,
  pingreq = 12,
  pingresp = 13,
  disconnect = 14,
  auth = 15,
};
[[nodiscard]] std::string_view to_string(PacketType type);

// MQTT 5.0 §2.4 reason codes. 3.1.1 CONNACK return codes are mapped by the codec
// (connack_return_code_v311); SUBACK 3.1.1 uses 0x00–0x02 and 0x80 as 5.0 does.
enum class ReasonCode : std::uint8_t {
  success = 0x00,  // also normal disconnection, granted QoS 0
  granted_qos_1 = 0x01,
  granted_qos_2 = 0x02,
  disconnect_with_will = 0x04,
  no_matching_subscribers = 0x10,
  no_subscription_existed = 0x11,
  continue_authentication = 0x18,
  reauthenticate = 0x19,
  unspecified_error = 0x80,
  malformed_packet = 0x81,
  protocol_error = 0x82,
  implementation_specific_error = 0x83,
  unsupported_protocol_version = 0x84,
  client_identifier_not_valid = 0x85,
  bad_user_name_or_password = 0x86,
  not_authorized = 0x87,
  server_unavailable = 0x88,
  server_busy = 0x89,
  banned = 0x8A,
  server_shutting_down = 0x8B,
  bad_authentication_method = 0x8C,
  keep_alive_timeout = 0x8D,
  session_taken_over = 0x8E,
  topic_filter_invalid = 0x8F,
  topic_name_invalid = 0x90,
  packet_identifier_in_use = 0x91,
  packet_identifier_not_found = 0x92,
  receive_maximum_exceeded = 0x93,
  topic_alias_invalid = 0x94,
  packet_too_large = 0x95,
  message_rate_too_high = 0x96,
  quota_exceeded = 0x97,
  administrative_action = 0x98,
  payload_format_invalid = 0x99,
  retain_not_supported = 0x9A,
  qos_not_supported = 0x9B,
  use_another_server = 0x9C,
  server_moved = 0x9D,
  shared_subscriptions_not_supported = 0x9E,
  connection_rate_exceeded = 0x9F,
  maximum_connect_time = 0xA0,
  subscription_identifiers_not_supported = 0xA1,
  wildcard_subscriptions_not_supported = 0xA2,
};
[[nodiscard]] std::string_view to_string(ReasonCode code);
[[nodiscard]] constexpr bool is_error(ReasonCode code) { return static_cast<std::uint8_t>(code) >= 0x80; }

using UserProperties = std::vector<std::pair<std::string, std::string>>;

// MQTT 5.0 §2.2.2.2 properties. Only those a packet may carry are decoded for it; any
// other is a protocol error. Repeating a property other than user property (and
// subscription identifier in PUBLISH) is a protocol error.
struct Properties {
  std::optional<std::uint8_t> payload_format_indicator;           // 0x01
  std::optional<std::uint32_t> message_expiry_interval;           // 0x02
  std::optional<std::string> content_type;                        // 0x03
  std::optional<std::string> response_topic;                      // 0x08
  std::optional<Bytes> correlation_data;                          // 0x09
  std::vector<std::uint32_t> subscription_identifiers;            // 0x0B variable byte integer
  std::optional<std::uint32_t> session_expiry_interval;           // 0x11
  std::optional<std::string> assigned_client_identifier;          // 0x12
  std::optional<std::uint16_t> server_keep_alive;                 // 0x13
  std::optional<std::string> authentication_method;               // 0x15
  std::optional<Bytes> authentication_data;                       // 0x16
  std::optional<std::uint8_t> request_problem_information;        // 0x17
  std::optional<std::uint32_t> will_delay_interval;               // 0x18
  std::optional<std::uint8_t> request_response_information;       // 0x19
  std::optional<std::string> response_information;                // 0x1A
  std::optional<std::string> server_reference;                    // 0x1C
  std::optional<std::string> reason_string;                       // 0x1F
  std::optional<std::uint16_t> receive_maximum;                   // 0x21
  std::optional<std::uint16_t> topic_alias_maximum;               // 0x22
  std::optional<std::uint16_t> topic_alias;                       // 0x23
  std::optional<std::uint8_t> maximum_qos;                        // 0x24
  std::optional<std::uint8_t> retain_available;                   // 0x25
  UserProperties user_properties;                                 // 0x26
  std::optional<std::uint32_t> maximum_packet_size;               // 0x27
  std::optional<std::uint8_t> wildcard_subscription_available;    // 0x28
  std::optional<std::uint8_t> subscription_identifier_available;  // 0x29
  std::optional<std::uint8_t> shared_subscription_available;      // 0x2A

  friend bool operator==(const Properties&, const Properties&) = default;
};

struct Will {
  std::string topic;
  Bytes payload;
  std::uint8_t qos = 0;
  bool retain = false;
  Properties properties;  // 5.0 will properties
  friend bool operator==(const Will&, const Will&) = default;
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::v5;
  bool clean_start = true;  // 3.1.1: clean session
  std::uint16_t keep_alive_seconds = 0;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<Bytes> password;
  Properties properties;
  friend bool operator==(const Connect&, const Connect&) = default;
};

struct Connack {
  bool session_present = false;
  ReasonCode reason = ReasonCode::success;  // 3.1.1: mapped to a return code
  Properties properties;
  friend bool operator==(const Connack&, const Connack&) = default;
};

struct Publish {
  bool dup = false;
  std::uint8_t qos = 0;
  bool retain = false;
  std::string topic;            // may be empty in 5.0 when a topic alias is set
  std::uint16_t packet_id = 0;  // only for qos > 0
  Properties properties;
  Bytes payload;
  friend bool operator==(const Publish&, const Publish&) = default;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP share one shape (MQTT 5.0 §3.4–3.7). In 5.0 the reason
// code and properties may be omitted on the wire when success and empty.
struct Puback {
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::success;
  Properties properties;
  friend bool operator==(const Puback&, const Puback&) = default;
};
struct Pubrec {
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::success;
  Properties properties;
  friend bool operator==(const Pubrec&, const Pubrec&) = default;
};
struct Pubrel {
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::success;
  Properties properties;
  friend bool operator==(const Pubrel&, const Pubrel&) = default;
};
struct Pubcomp {
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::success;
  Properties properties;
  friend bool operator==(const Pubcomp&, const Pubcomp&) = default;
};

struct Subscription {
  std::string filter;
  std::uint8_t qos = 0;
  bool no_local = false;             // 5.0
  bool retain_as_published = false;  // 5.0
  std::uint8_t retain_handling = 0;  // 5.0: 0, 1 or 2
  friend bool operator==(const Subscription&, const Subscription&) = default;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<Subscription> subscriptions;  // at least one
  friend bool operator==(const Subscribe&, const Subscribe&) = default;
};

struct Suback {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<ReasonCode> reasons;  // one per subscription, in order
  friend bool operator==(const Suback&, const Suback&) = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::string> filters;  // at least one
  friend bool operator==(const Unsubscribe&, const Unsubscribe&) = default;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<ReasonCode> reasons;  // 5.0 only; 3.1.1 carries none
  friend bool operator==(const Unsuback&, const Unsuback&) = default;
};

struct Pingreq {
  friend bool operator==(const Pingreq&, const Pingreq&) = default;
};
struct Pingresp {
  friend bool operator==(const Pingresp&, const Pingresp&) = default;
};

struct Disconnect {
  ReasonCode reason = ReasonCode::success;  // 5.0
  Properties properties;
  friend bool operator==(const Disconnect&, const Disconnect&) = default;
};

struct Auth {  // 5.0 only
  ReasonCode reason = ReasonCode::success;
  Properties properties;
  friend bool operator==(const Auth&, const Auth&) = default;
};

using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Suback, Unsubscribe,
                            Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

[[nodiscard]] PacketType type_of(const Packet& packet);

}  // namespace torii::mqtt

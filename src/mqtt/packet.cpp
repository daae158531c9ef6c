#include "mqtt/packet.h"

#include <type_traits>

namespace torii::mqtt {

std::string_view to_string(PacketType type) {
  switch (type) {
    case PacketType::connect: return "CONNECT";
    case PacketType::connack: return "CONNACK";
    case PacketType::publish: return "PUBLISH";
    case PacketType::puback: return "PUBACK";
    case PacketType::pubrec: return "PUBREC";
    case PacketType::pubrel: return "PUBREL";
    case PacketType::pubcomp: return "PUBCOMP";
    case PacketType::subscribe: return "SUBSCRIBE";
    case PacketType::suback: return "SUBACK";
    case PacketType::unsubscribe: return "UNSUBSCRIBE";
    case PacketType::unsuback: return "UNSUBACK";
    case PacketType::pingreq: return "PINGREQ";
    case PacketType::pingresp: return "PINGRESP";
    case PacketType::disconnect: return "DISCONNECT";
    case PacketType::auth: return "AUTH";
  }
  return "reserved packet type";
}

// The names of MQTT 5.0 §2.4 Table 2-6.
std::string_view to_string(ReasonCode code) {
  switch (code) {
    case ReasonCode::success: return "Success";
    case ReasonCode::granted_qos_1: return "Granted QoS 1";
    case ReasonCode::granted_qos_2: return "Granted QoS 2";
    case ReasonCode::disconnect_with_will: return "Disconnect with Will Message";
    case ReasonCode::no_matching_subscribers: return "No matching subscribers";
    case ReasonCode::no_subscription_existed: return "No subscription existed";
    case ReasonCode::continue_authentication: return "Continue authentication";
    case ReasonCode::reauthenticate: return "Re-authenticate";
    case ReasonCode::unspecified_error: return "Unspecified error";
    case ReasonCode::malformed_packet: return "Malformed Packet";
    case ReasonCode::protocol_error: return "Protocol Error";
    case ReasonCode::implementation_specific_error: return "Implementation specific error";
    case ReasonCode::unsupported_protocol_version: return "Unsupported Protocol Version";
    case ReasonCode::client_identifier_not_valid: return "Client Identifier not valid";
    case ReasonCode::bad_user_name_or_password: return "Bad User Name or Password";
    case ReasonCode::not_authorized: return "Not authorized";
    case ReasonCode::server_unavailable: return "Server unavailable";
    case ReasonCode::server_busy: return "Server busy";
    case ReasonCode::banned: return "Banned";
    case ReasonCode::server_shutting_down: return "Server shutting down";
    case ReasonCode::bad_authentication_method: return "Bad authentication method";
    case ReasonCode::keep_alive_timeout: return "Keep Alive timeout";
    case ReasonCode::session_taken_over: return "Session taken over";
    case ReasonCode::topic_filter_invalid: return "Topic Filter invalid";
    case ReasonCode::topic_name_invalid: return "Topic Name invalid";
    case ReasonCode::packet_identifier_in_use: return "Packet Identifier in use";
    case ReasonCode::packet_identifier_not_found: return "Packet Identifier not found";
    case ReasonCode::receive_maximum_exceeded: return "Receive Maximum exceeded";
    case ReasonCode::topic_alias_invalid: return "Topic Alias invalid";
    case ReasonCode::packet_too_large: return "Packet too large";
    case ReasonCode::message_rate_too_high: return "Message rate too high";
    case ReasonCode::quota_exceeded: return "Quota exceeded";
    case ReasonCode::administrative_action: return "Administrative action";
    case ReasonCode::payload_format_invalid: return "Payload format invalid";
    case ReasonCode::retain_not_supported: return "Retain not supported";
    case ReasonCode::qos_not_supported: return "QoS not supported";
    case ReasonCode::use_another_server: return "Use another server";
    case ReasonCode::server_moved: return "Server moved";
    case ReasonCode::shared_subscriptions_not_supported: return "Shared Subscriptions not supported";
    case ReasonCode::connection_rate_exceeded: return "Connection rate exceeded";
    case ReasonCode::maximum_connect_time: return "Maximum connect time";
    case ReasonCode::subscription_identifiers_not_supported: return "Subscription Identifiers not supported";
    case ReasonCode::wildcard_subscriptions_not_supported: return "Wildcard Subscriptions not supported";
  }
  return "unknown reason code";
}

// The alternatives of Packet are declared in the order of their packet type numbers.
PacketType type_of(const Packet& packet) { return static_cast<PacketType>(packet.index() + 1); }

static_assert(std::variant_size_v<Packet> == 15);
static_assert(std::is_same_v<std::variant_alternative_t<0, Packet>, Connect>);
static_assert(std::is_same_v<std::variant_alternative_t<13, Packet>, Disconnect>);
static_assert(std::is_same_v<std::variant_alternative_t<14, Packet>, Auth>);

}  // namespace torii::mqtt

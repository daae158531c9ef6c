#include "mqtt/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/bytes.h"

namespace torii::mqtt {

// Readable reason codes in failure messages (found by argument-dependent lookup).
void PrintTo(ReasonCode code, std::ostream* os) {
  *os << to_string(code) << " (0x" << std::hex << static_cast<int>(code) << std::dec << ")";
}

namespace {

using mqtt::to_string;
using torii::to_string;  // Bytes as text, beside to_string(PacketType / ReasonCode)

constexpr auto v311 = ProtocolVersion::v311;
constexpr auto v5 = ProtocolVersion::v5;
constexpr std::optional<ProtocolVersion> kBeforeConnect = std::nullopt;

// Hex with optional spaces, as packet captures are written.
Bytes h(std::string_view text) {
  std::string digits;
  for (const char c : text) {
    if (c != ' ') digits.push_back(c);
  }
  auto bytes = hex_decode(digits);
  EXPECT_TRUE(bytes.has_value()) << text;
  return bytes.value_or(Bytes{});
}

// Builds a packet body field by field; packet() prefixes the fixed header.
class Body {
 public:
  Body& hex(std::string_view text) {
    const Bytes bytes = h(text);
    body_.insert(body_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  Body& raw(std::string_view text) {
    body_.insert(body_.end(), text.begin(), text.end());
    return *this;
  }
  Body& str(std::string_view text) {  // two-byte length, then the bytes
    body_.push_back(static_cast<std::uint8_t>(text.size() >> 8U));
    body_.push_back(static_cast<std::uint8_t>(text.size()));
    return raw(text);
  }
  [[nodiscard]] Bytes packet(std::uint8_t first_byte) const {
    Bytes out{first_byte};
    std::size_t length = body_.size();
    do {
      auto byte = static_cast<std::uint8_t>(length & 0x7FU);
      length >>= 7U;
      if (length != 0) byte |= 0x80U;
      out.push_back(byte);
    } while (length != 0);
    out.insert(out.end(), body_.begin(), body_.end());
    return out;
  }

 private:
  Bytes body_;
};

template <typename T>
T decode_as(const Bytes& bytes, std::optional<ProtocolVersion> version) {
  auto result = decode(bytes, version);
  EXPECT_TRUE(result.has_value()) << (result ? std::string() : result.error().message);
  if (!result) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*result)) << to_string(type_of(*result));
  if (!std::holds_alternative<T>(*result)) return T{};
  return std::get<T>(std::move(*result));
}

// Expects decode to fail with `reason`; returns the log message.
std::string decode_error(const Bytes& bytes, std::optional<ProtocolVersion> version, ReasonCode reason) {
  auto result = decode(bytes, version);
  EXPECT_FALSE(result.has_value()) << "decoded as " << to_string(type_of(*result));
  if (result) return {};
  EXPECT_EQ(result.error().reason, reason) << result.error().message;
  EXPECT_FALSE(result.error().message.empty());
  return result.error().message;
}

Bytes encode_ok(const Packet& packet, ProtocolVersion version) {
  Bytes out;
  auto written = encode(packet, version, out);
  EXPECT_TRUE(written.has_value()) << (written ? std::string() : written.error().message);
  if (written) {
    EXPECT_EQ(*written, out.size());
  }
  return out;
}

ReasonCode encode_error(const Packet& packet, ProtocolVersion version) {
  Bytes out;
  auto written = encode(packet, version, out);
  EXPECT_FALSE(written.has_value());
  if (written) return ReasonCode::success;
  EXPECT_TRUE(out.empty());
  return written.error().reason;
}

// ---------------------------------------------------------------------------------------
// Captured from real clients (mosquitto_pub / mosquitto_sub 2.0 against a loopback socket).

struct Captures {
  // mosquitto_pub -V mqttv311 -i sensor-1 -t sensors/temp -m 21.5 -q 1
  Bytes connect_311 = h("10 14 00 04 4d 51 54 54 04 02 00 3c 00 08 73 65 6e 73 6f 72 2d 31");
  Bytes publish_311 = h("32 14 00 0c 73 65 6e 73 6f 72 73 2f 74 65 6d 70 00 01 32 31 2e 35");
  Bytes disconnect = h("e0 00");

  // mosquitto_pub -V mqttv5 -i sensor-2 -u alice -P s3cret -k 30 -t sensors/hum -m 40 -q 1
  //   -D connect session-expiry-interval 3600 -D connect receive-maximum 20
  //   -D connect user-property origin lab -D publish message-expiry-interval 60
  //   -D publish content-type text/plain -D publish user-property unit pct
  //   --will-topic devices/sensor-2/status --will-payload offline --will-qos 1 --will-retain
  Bytes connect_5 =
      h("10 5d 00 04 4d 51 54 54 05 ee 00 1e 16 11 00 00 0e 10 21 00 14 26 00 06 6f 72 69 67 69 6e 00 03 6c 61 62 00 08"
        "73 65 6e 73 6f 72 2d 32 00 00 17 64 65 76 69 63 65 73 2f 73 65 6e 73 6f 72 2d 32 2f 73 74 61 74 75 73 00 07"
        "6f 66 66 6c 69 6e 65 00 05 61 6c 69 63 65 00 06 73 33 63 72 65 74");
  Bytes publish_5 =
      h("32 30 00 0b 73 65 6e 73 6f 72 73 2f 68 75 6d 00 01 1e 02 00 00 00 3c 03 00 0a 74 65 78 74 2f 70 6c 61 69 6e"
        "26 00 04 75 6e 69 74 00 03 70 63 74 34 30");

  // mosquitto_sub -V mqttv5 -i sub-1 -t sport/tennis/+ -t sport/# -q 1 -c -x 120
  //   -D subscribe user-property team blue
  Bytes connect_sub_5 = h("10 1a 00 04 4d 51 54 54 05 00 00 3c 08 11 00 00 00 78 21 00 14 00 05 73 75 62 2d 31");
  Bytes subscribe_5 =
      h("82 2b 00 01 0d 26 00 04 74 65 61 6d 00 04 62 6c 75 65 00 0e 73 70 6f 72 74 2f 74 65 6e 6e 69 73 2f 2b 01 00 07"
        "73 70 6f 72 74 2f 23 01");

  // mosquitto_sub -V mqttv311 -i sub-1 -t sport/tennis/+ -q 2 -U a/b
  Bytes subscribe_311 = h("82 13 00 01 00 0e 73 70 6f 72 74 2f 74 65 6e 6e 69 73 2f 2b 02");
  Bytes unsubscribe_311 = h("a2 07 00 02 00 03 61 2f 62");
};

// A function-local static: built on first use, not during static initialisation.
const Captures& cap() {
  static const Captures captures;
  return captures;
}

TEST(DecodeCapture, MosquittoConnect311) {
  const auto connect = decode_as<Connect>(cap().connect_311, kBeforeConnect);
  EXPECT_EQ(connect.version, v311);
  EXPECT_TRUE(connect.clean_start);
  EXPECT_EQ(connect.keep_alive_seconds, 60);
  EXPECT_EQ(connect.client_id, "sensor-1");
  EXPECT_FALSE(connect.will);
  EXPECT_FALSE(connect.username);
  EXPECT_FALSE(connect.password);
  EXPECT_EQ(connect.properties, Properties{});
}

TEST(DecodeCapture, MosquittoPublish311) {
  const auto publish = decode_as<Publish>(cap().publish_311, v311);
  EXPECT_EQ(publish.qos, 1);
  EXPECT_FALSE(publish.dup);
  EXPECT_FALSE(publish.retain);
  EXPECT_EQ(publish.topic, "sensors/temp");
  EXPECT_EQ(publish.packet_id, 1);
  EXPECT_EQ(to_string(publish.payload), "21.5");
}

TEST(DecodeCapture, MosquittoConnect5WithPropertiesWillAndCredentials) {
  const auto connect = decode_as<Connect>(cap().connect_5, kBeforeConnect);
  EXPECT_EQ(connect.version, v5);
  EXPECT_TRUE(connect.clean_start);
  EXPECT_EQ(connect.keep_alive_seconds, 30);
  EXPECT_EQ(connect.client_id, "sensor-2");
  EXPECT_EQ(connect.properties.session_expiry_interval, 3600U);
  EXPECT_EQ(connect.properties.receive_maximum, 20);
  EXPECT_EQ(connect.properties.user_properties, (UserProperties{{"origin", "lab"}}));
  ASSERT_TRUE(connect.will);
  EXPECT_EQ(connect.will->topic, "devices/sensor-2/status");
  EXPECT_EQ(to_string(connect.will->payload), "offline");
  EXPECT_EQ(connect.will->qos, 1);
  EXPECT_TRUE(connect.will->retain);
  EXPECT_EQ(connect.will->properties, Properties{});
  EXPECT_EQ(connect.username, "alice");
  ASSERT_TRUE(connect.password);
  EXPECT_EQ(to_string(*connect.password), "s3cret");
}

TEST(DecodeCapture, MosquittoPublish5WithProperties) {
  const auto publish = decode_as<Publish>(cap().publish_5, v5);
  EXPECT_EQ(publish.topic, "sensors/hum");
  EXPECT_EQ(publish.qos, 1);
  EXPECT_EQ(publish.packet_id, 1);
  EXPECT_EQ(publish.properties.message_expiry_interval, 60U);
  EXPECT_EQ(publish.properties.content_type, "text/plain");
  EXPECT_EQ(publish.properties.user_properties, (UserProperties{{"unit", "pct"}}));
  EXPECT_EQ(to_string(publish.payload), "40");
}

TEST(DecodeCapture, MosquittoSubscribe) {
  const auto sub5 = decode_as<Subscribe>(cap().subscribe_5, v5);
  EXPECT_EQ(sub5.packet_id, 1);
  EXPECT_EQ(sub5.properties.user_properties, (UserProperties{{"team", "blue"}}));
  ASSERT_EQ(sub5.subscriptions.size(), 2U);
  EXPECT_EQ(sub5.subscriptions[0].filter, "sport/tennis/+");
  EXPECT_EQ(sub5.subscriptions[0].qos, 1);
  EXPECT_EQ(sub5.subscriptions[1].filter, "sport/#");

  const auto sub311 = decode_as<Subscribe>(cap().subscribe_311, v311);
  ASSERT_EQ(sub311.subscriptions.size(), 1U);
  EXPECT_EQ(sub311.subscriptions[0].filter, "sport/tennis/+");
  EXPECT_EQ(sub311.subscriptions[0].qos, 2);

  const auto unsub = decode_as<Unsubscribe>(cap().unsubscribe_311, v311);
  EXPECT_EQ(unsub.packet_id, 2);
  EXPECT_EQ(unsub.filters, std::vector<std::string>{"a/b"});

  const auto connect = decode_as<Connect>(cap().connect_sub_5, kBeforeConnect);
  EXPECT_FALSE(connect.clean_start);
  EXPECT_EQ(connect.properties.session_expiry_interval, 120U);
}

TEST(DecodeCapture, DisconnectWithRemainingLengthZeroInBothVersions) {
  EXPECT_EQ(decode_as<Disconnect>(cap().disconnect, v311), Disconnect{});
  EXPECT_EQ(decode_as<Disconnect>(cap().disconnect, v5), Disconnect{});
}

TEST(DecodeCapture, ReencodesByteForByte) {
  // Real clients write properties in identifier order and lengths minimally, as encode does.
  const std::vector<std::pair<const Bytes*, ProtocolVersion>> captures = {
      {&cap().connect_311, v311},     {&cap().publish_311, v311}, {&cap().subscribe_311, v311},
      {&cap().unsubscribe_311, v311}, {&cap().disconnect, v311},  {&cap().connect_5, v5},
      {&cap().publish_5, v5},         {&cap().connect_sub_5, v5}, {&cap().subscribe_5, v5},
      {&cap().disconnect, v5}};
  for (const auto& [bytes, version] : captures) {
    const auto packet = decode(*bytes, version);
    ASSERT_TRUE(packet.has_value()) << packet.error().message;
    EXPECT_EQ(encode_ok(*packet, version), *bytes) << to_string(type_of(*packet));
    EXPECT_EQ(encoded_size(*packet, version), bytes->size());
  }
}

// ---------------------------------------------------------------------------------------
// Examples of the specifications.

TEST(DecodeSpec, ConnectVariableHeaderExample5) {
  // MQTT 5.0 §3.1.2.11 Figure 3-6: flags 0xCE, Keep Alive 10, Session Expiry Interval 10.
  const Bytes bytes = Body()
                          .hex("00 04 4d 51 54 54 05 ce 00 0a 05 11 00 00 00 0a")
                          .str("c1")
                          .hex("05 18 00 00 00 05")  // will delay interval 5
                          .str("w")
                          .str("x")
                          .str("u")
                          .str("p")
                          .packet(0x10);
  const auto connect = decode_as<Connect>(bytes, kBeforeConnect);
  EXPECT_EQ(connect.keep_alive_seconds, 10);
  EXPECT_EQ(connect.properties.session_expiry_interval, 10U);
  ASSERT_TRUE(connect.will);
  EXPECT_EQ(connect.will->qos, 1);
  EXPECT_FALSE(connect.will->retain);
  EXPECT_EQ(connect.will->properties.will_delay_interval, 5U);
  EXPECT_EQ(connect.username, "u");
  EXPECT_EQ(connect.password, h("70"));
  EXPECT_EQ(encode_ok(connect, v5), bytes);
}

TEST(DecodeSpec, ConnectVariableHeaderExample311) {
  // MQTT 3.1.1 §3.1.2.10 Figure 3.6: flags 0xCE, Keep Alive 10.
  const Bytes bytes =
      Body().hex("00 04 4d 51 54 54 04 ce 00 0a").str("c1").str("w").str("x").str("u").str("p").packet(0x10);
  const auto connect = decode_as<Connect>(bytes, kBeforeConnect);
  EXPECT_EQ(connect.version, v311);
  EXPECT_EQ(connect.keep_alive_seconds, 10);
  ASSERT_TRUE(connect.will);
  EXPECT_EQ(connect.will->topic, "w");
  EXPECT_EQ(encode_ok(connect, v311), bytes);
}

TEST(DecodeSpec, Connack) {
  EXPECT_EQ(decode_as<Connack>(h("20 02 00 00"), v311), Connack{});
  EXPECT_TRUE(decode_as<Connack>(h("20 02 01 00"), v311).session_present);
  EXPECT_EQ(decode_as<Connack>(h("20 02 00 01"), v311).reason, ReasonCode::unsupported_protocol_version);
  EXPECT_EQ(decode_as<Connack>(h("20 02 00 02"), v311).reason, ReasonCode::client_identifier_not_valid);
  EXPECT_EQ(decode_as<Connack>(h("20 02 00 03"), v311).reason, ReasonCode::server_unavailable);
  EXPECT_EQ(decode_as<Connack>(h("20 02 00 04"), v311).reason, ReasonCode::bad_user_name_or_password);
  EXPECT_EQ(decode_as<Connack>(h("20 02 00 05"), v311).reason, ReasonCode::not_authorized);
  decode_error(h("20 02 00 06"), v311, ReasonCode::protocol_error);    // reserved return code
  decode_error(h("20 02 02 00"), v311, ReasonCode::malformed_packet);  // reserved acknowledge flag
  decode_error(h("20 02 01 05"), v311, ReasonCode::protocol_error);    // session present on refusal
  decode_error(h("20 03 00 00 00"), v311, ReasonCode::malformed_packet);

  EXPECT_EQ(decode_as<Connack>(h("20 03 00 00 00"), v5), Connack{});
  const auto connack = decode_as<Connack>(Body().hex("00 00 0d 24 01 25 00 12 00 06").raw("srv-42").packet(0x20),
                                          v5);  // max QoS 1, no retain
  EXPECT_EQ(connack.properties.maximum_qos, 1);
  EXPECT_EQ(connack.properties.retain_available, 0);
  EXPECT_EQ(connack.properties.assigned_client_identifier, "srv-42");
  EXPECT_EQ(decode_as<Connack>(h("20 03 00 8a 00"), v5).reason, ReasonCode::banned);
  decode_error(h("20 02 00 00"), v5, ReasonCode::malformed_packet);         // 5.0 always has properties
  decode_error(h("20 03 00 10 00"), v5, ReasonCode::protocol_error);        // 0x10 is not a CONNACK reason
  decode_error(h("20 05 00 00 02 24 02"), v5, ReasonCode::protocol_error);  // maximum QoS 2
}

TEST(DecodeSpec, AcknowledgementsOmitReasonAndPropertiesIn5) {
  // §3.4.2.1: remaining length 2 is success without properties; below 4, no properties.
  EXPECT_EQ(decode_as<Puback>(h("40 02 00 07"), v5), (Puback{7, ReasonCode::success, {}}));
  EXPECT_EQ(decode_as<Puback>(h("40 03 00 07 10"), v5), (Puback{7, ReasonCode::no_matching_subscribers, {}}));
  EXPECT_EQ(decode_as<Puback>(h("40 04 00 07 10 00"), v5), (Puback{7, ReasonCode::no_matching_subscribers, {}}));
  EXPECT_EQ(decode_as<Pubrec>(h("50 02 00 07"), v5).packet_id, 7);
  EXPECT_EQ(decode_as<Pubrel>(h("62 03 00 07 92"), v5).reason, ReasonCode::packet_identifier_not_found);
  EXPECT_EQ(decode_as<Pubcomp>(h("70 02 00 07"), v5).packet_id, 7);
  const auto puback = decode_as<Puback>(Body().hex("00 07 87 09 1f 00 06").raw("denied").packet(0x40), v5);
  EXPECT_EQ(puback.reason, ReasonCode::not_authorized);
  EXPECT_EQ(puback.properties.reason_string, "denied");

  // Encode writes the shortest form.
  EXPECT_EQ(encode_ok(Puback{7, ReasonCode::success, {}}, v5), h("40 02 00 07"));
  EXPECT_EQ(encode_ok(Pubrec{7, ReasonCode::quota_exceeded, {}}, v5), h("50 03 00 07 97"));
  EXPECT_EQ(encode_ok(Pubrel{7, ReasonCode::success, {}}, v5), h("62 02 00 07"));
  EXPECT_EQ(encode_ok(Puback{7, ReasonCode::no_matching_subscribers, {}}, v311), h("40 02 00 07"));

  // 3.1.1: exactly the packet identifier.
  EXPECT_EQ(decode_as<Puback>(h("40 02 00 07"), v311).packet_id, 7);
  decode_error(h("40 03 00 07 00"), v311, ReasonCode::malformed_packet);
  decode_error(h("40 01 00"), v5, ReasonCode::malformed_packet);
  decode_error(h("40 03 00 07 92"), v5, ReasonCode::protocol_error);  // PUBREL's code in PUBACK
  decode_error(h("70 03 00 07 10"), v5, ReasonCode::protocol_error);  // PUBACK's code in PUBCOMP
}

TEST(DecodeSpec, SubackAndUnsuback) {
  const auto suback = decode_as<Suback>(h("90 05 00 01 00 02 80"), v311);
  EXPECT_EQ(suback.reasons,
            (std::vector<ReasonCode>{ReasonCode::success, ReasonCode::granted_qos_2, ReasonCode::unspecified_error}));
  decode_error(h("90 03 00 01 03"), v311, ReasonCode::protocol_error);  // 3.1.1 knows 0, 1, 2, 0x80
  decode_error(h("90 03 00 01 87"), v311, ReasonCode::protocol_error);
  decode_error(h("90 02 00 01"), v311, ReasonCode::protocol_error);  // no return code
  EXPECT_EQ(decode_as<Suback>(h("90 05 00 01 00 01 a2"), v5).reasons,
            (std::vector<ReasonCode>{ReasonCode::granted_qos_1, ReasonCode::wildcard_subscriptions_not_supported}));
  decode_error(h("90 04 00 01 00 11"), v5, ReasonCode::protocol_error);  // UNSUBACK's code

  EXPECT_EQ(decode_as<Unsuback>(h("b0 02 00 01"), v311).packet_id, 1);
  decode_error(h("b0 03 00 01 00"), v311, ReasonCode::malformed_packet);
  EXPECT_EQ(decode_as<Unsuback>(h("b0 05 00 01 00 00 11"), v5).reasons,
            (std::vector<ReasonCode>{ReasonCode::success, ReasonCode::no_subscription_existed}));
  decode_error(h("b0 03 00 01 00"), v5, ReasonCode::protocol_error);  // no reason code
}

TEST(DecodeSpec, DisconnectAndAuthShortForms) {
  // §3.14.2.1: remaining length 1 is a reason code without properties.
  EXPECT_EQ(decode_as<Disconnect>(h("e0 01 04"), v5).reason, ReasonCode::disconnect_with_will);
  EXPECT_EQ(decode_as<Disconnect>(h("e0 02 8e 00"), v5).reason, ReasonCode::session_taken_over);
  const auto moved = decode_as<Disconnect>(Body().hex("9d 0b 1c 00 08").raw("10.0.0.2").packet(0xe0), v5);
  EXPECT_EQ(moved.properties.server_reference, "10.0.0.2");
  decode_error(h("e0 01 00"), v311, ReasonCode::malformed_packet);
  decode_error(h("e0 01 05"), v5, ReasonCode::protocol_error);  // 0x05 is no reason code
  decode_error(h("e0 02 00 00"), v311, ReasonCode::malformed_packet);

  EXPECT_EQ(decode_as<Auth>(h("f0 00"), v5), Auth{});
  const auto auth =
      decode_as<Auth>(Body().hex("18 0e 15 00 05").raw("SCRAM").hex("16 00 03 01 02 03").packet(0xf0), v5);
  EXPECT_EQ(auth.reason, ReasonCode::continue_authentication);
  EXPECT_EQ(auth.properties.authentication_method, "SCRAM");
  EXPECT_EQ(auth.properties.authentication_data, h("01 02 03"));
  decode_error(h("f0 01 18"), v5, ReasonCode::malformed_packet);   // reason code without property length
  decode_error(h("f0 02 18 00"), v5, ReasonCode::protocol_error);  // no authentication method
  EXPECT_EQ(decode_as<Auth>(h("f0 02 00 00"), v5), Auth{});        // the long form of the short one
  decode_error(h("f0 02 04 00"), v5, ReasonCode::protocol_error);  // 0x04 is no AUTH reason
  decode_error(h("f0 00"), v311, ReasonCode::malformed_packet);    // type 15 is reserved in 3.1.1
}

TEST(DecodeSpec, PingAndPublishVariants) {
  EXPECT_EQ(decode_as<Pingreq>(h("c0 00"), v5), Pingreq{});
  EXPECT_EQ(decode_as<Pingresp>(h("d0 00"), v311), Pingresp{});
  decode_error(h("c0 01 00"), v5, ReasonCode::malformed_packet);

  const auto qos0 = decode_as<Publish>(Body().str("a/b").raw("hi").packet(0x31), v311);  // retain
  EXPECT_EQ(qos0.qos, 0);
  EXPECT_TRUE(qos0.retain);
  EXPECT_EQ(qos0.packet_id, 0);
  EXPECT_EQ(to_string(qos0.payload), "hi");

  const auto qos2 = decode_as<Publish>(Body().str("a/b").hex("12 34 00").packet(0x3c), v5);  // DUP, QoS 2
  EXPECT_TRUE(qos2.dup);
  EXPECT_EQ(qos2.qos, 2);
  EXPECT_EQ(qos2.packet_id, 0x1234);
  EXPECT_TRUE(qos2.payload.empty());

  // Topic alias with an empty topic name (§3.3.2.3.4); several subscription identifiers.
  const auto aliased = decode_as<Publish>(Body().str("").hex("08 23 00 05 0b 01 0b 80 01").raw("x").packet(0x30), v5);
  EXPECT_EQ(aliased.topic, "");
  EXPECT_EQ(aliased.properties.topic_alias, 5);
  EXPECT_EQ(aliased.properties.subscription_identifiers, (std::vector<std::uint32_t>{1, 128}));

  // Binary payload with every byte value survives untouched.
  Body body;
  body.str("bin");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  body.raw(all);
  const auto binary = decode_as<Publish>(body.packet(0x30), v311);
  EXPECT_EQ(to_string(binary.payload), all);
}

// ---------------------------------------------------------------------------------------
// Error paths, each with the reason code a server closes the connection with.

TEST(DecodeErrors, OnlyConnectBeforeConnect) {
  decode_error(cap().publish_311, kBeforeConnect, ReasonCode::protocol_error);
  decode_error(h("c0 00"), kBeforeConnect, ReasonCode::protocol_error);
  decode_error(h("f0 00"), kBeforeConnect, ReasonCode::protocol_error);
}

TEST(DecodeErrors, ConnectProtocolNameAndLevel) {
  // A 3.1 client: "MQIsdp", level 3.
  decode_error(Body().str("MQIsdp").hex("03 02 00 3c").str("old").packet(0x10), kBeforeConnect,
               ReasonCode::unsupported_protocol_version);
  decode_error(Body().str("MQTX").hex("04 02 00 3c").str("x").packet(0x10), kBeforeConnect,
               ReasonCode::unsupported_protocol_version);
  decode_error(Body().str("MQTT").hex("03 02 00 3c").str("x").packet(0x10), kBeforeConnect,
               ReasonCode::unsupported_protocol_version);
  decode_error(Body().str("MQTT").hex("06 02 00 3c").str("x").packet(0x10), kBeforeConnect,
               ReasonCode::unsupported_protocol_version);
  decode_error(Body().str("MQTT").packet(0x10), kBeforeConnect, ReasonCode::malformed_packet);  // no level
}

TEST(DecodeErrors, ConnectFlags) {
  const auto connect = [](std::string_view level_and_flags) {
    return Body().str("MQTT").hex(level_and_flags).hex("00 3c").str("id").packet(0x10);
  };
  EXPECT_TRUE(decode(connect("04 02"), kBeforeConnect).has_value());
  decode_error(connect("04 03"), kBeforeConnect, ReasonCode::malformed_packet);  // reserved bit (§3.1.2.3)
  decode_error(connect("05 01"), kBeforeConnect, ReasonCode::malformed_packet);
  decode_error(connect("04 0a"), kBeforeConnect, ReasonCode::malformed_packet);  // will QoS 1 without will
  decode_error(connect("05 22"), kBeforeConnect, ReasonCode::malformed_packet);  // will retain without will
  // Will flag and QoS 3, with a will topic and payload present.
  decode_error(Body().str("MQTT").hex("04 1e 00 3c").str("id").str("w").str("x").packet(0x10), kBeforeConnect,
               ReasonCode::malformed_packet);
  decode_error(h("11 00"), kBeforeConnect, ReasonCode::malformed_packet);  // fixed header flags
}

TEST(DecodeErrors, ConnectCredentials) {
  // Password without user name: a protocol violation in 3.1.1 [MQTT-3.1.2-22], allowed in 5.0.
  decode_error(Body().str("MQTT").hex("04 42 00 3c").str("id").str("pw").packet(0x10), kBeforeConnect,
               ReasonCode::protocol_error);
  const auto connect =
      decode_as<Connect>(Body().str("MQTT").hex("05 42 00 3c 00").str("id").str("pw").packet(0x10), kBeforeConnect);
  EXPECT_FALSE(connect.username);
  EXPECT_EQ(connect.password, h("70 77"));
  // User name flag set but the field is missing.
  decode_error(Body().str("MQTT").hex("04 82 00 3c").str("id").packet(0x10), kBeforeConnect,
               ReasonCode::malformed_packet);
  decode_error(Body().str("MQTT").hex("04 82 00 3c").str("id").str("bad\xff").packet(0x10), kBeforeConnect,
               ReasonCode::malformed_packet);
}

TEST(DecodeErrors, ConnectClientIdentifier) {
  // 3.1.1 [MQTT-3.1.3-8]: an empty client identifier needs Clean Session; answer 0x02.
  decode_error(Body().str("MQTT").hex("04 00 00 3c").str("").packet(0x10), kBeforeConnect,
               ReasonCode::client_identifier_not_valid);
  EXPECT_TRUE(decode(Body().str("MQTT").hex("04 02 00 3c").str("").packet(0x10), kBeforeConnect).has_value());
  // 5.0 §3.1.3.1 leaves that to the server.
  EXPECT_TRUE(decode(Body().str("MQTT").hex("05 00 00 3c 00").str("").packet(0x10), kBeforeConnect).has_value());
  decode_error(Body().str("MQTT").hex("04 02 00 3c").str(std::string("a\0b", 3)).packet(0x10), kBeforeConnect,
               ReasonCode::malformed_packet);
  decode_error(Body().str("MQTT").hex("05 02 00 3c 00").str("\xed\xa0\x80").packet(0x10), kBeforeConnect,
               ReasonCode::malformed_packet);
}

TEST(DecodeErrors, WillTopic) {
  decode_error(Body().str("MQTT").hex("04 06 00 3c").str("id").str("a/#").str("x").packet(0x10), kBeforeConnect,
               ReasonCode::topic_name_invalid);
  decode_error(Body().str("MQTT").hex("04 06 00 3c").str("id").str("").str("x").packet(0x10), kBeforeConnect,
               ReasonCode::topic_name_invalid);
  decode_error(Body().str("MQTT").hex("05 06 00 3c 00").str("id").hex("03 23 00 05").str("w").str("x").packet(0x10),
               kBeforeConnect, ReasonCode::protocol_error);  // topic alias is no will property
}

TEST(DecodeErrors, ReservedFixedHeaderFlags) {                                     // §2.1.3
  decode_error(h("c2 00"), v5, ReasonCode::malformed_packet);                      // PINGREQ
  decode_error(h("60 02 00 01"), v5, ReasonCode::malformed_packet);                // PUBREL needs 0010
  decode_error(h("41 02 00 01"), v311, ReasonCode::malformed_packet);              // PUBACK
  decode_error(h("80 06 00 01 00 01 61 00"), v311, ReasonCode::malformed_packet);  // SUBSCRIBE needs 0010
  decode_error(h("a0 05 00 01 00 01 61"), v311, ReasonCode::malformed_packet);     // UNSUBSCRIBE needs 0010
  decode_error(h("e8 00"), v5, ReasonCode::malformed_packet);                      // DISCONNECT
  decode_error(h("f1 00"), v5, ReasonCode::malformed_packet);                      // AUTH
  decode_error(h("21 02 00 00"), v311, ReasonCode::malformed_packet);              // CONNACK
}

TEST(DecodeErrors, PublishQosDupAndPacketId) {
  decode_error(Body().str("a").hex("00 01").packet(0x36), v311, ReasonCode::malformed_packet);  // QoS 3
  decode_error(Body().str("a").packet(0x38), v311, ReasonCode::malformed_packet);               // DUP with QoS 0
  decode_error(Body().str("a").hex("00 00").packet(0x32), v311, ReasonCode::protocol_error);    // packet id 0
  decode_error(Body().str("a").hex("00 00 00").packet(0x34), v5, ReasonCode::protocol_error);
  decode_error(h("40 02 00 00"), v311, ReasonCode::protocol_error);
  decode_error(h("62 02 00 00"), v5, ReasonCode::protocol_error);
  decode_error(h("82 06 00 00 00 01 61 00"), v311, ReasonCode::protocol_error);
  decode_error(h("a2 05 00 00 00 01 61"), v311, ReasonCode::protocol_error);
  decode_error(h("90 03 00 00 00"), v311, ReasonCode::protocol_error);
  decode_error(h("b0 02 00 00"), v311, ReasonCode::protocol_error);
}

TEST(DecodeErrors, PublishTopicName) {
  decode_error(Body().str("a/+").packet(0x30), v311, ReasonCode::topic_name_invalid);
  decode_error(Body().str("#").hex("00").packet(0x30), v5, ReasonCode::topic_name_invalid);
  decode_error(Body().str("").packet(0x30), v311, ReasonCode::protocol_error);
  decode_error(Body().str("").hex("00").packet(0x30), v5, ReasonCode::protocol_error);  // no topic alias
  decode_error(Body().str("caf\xc3").packet(0x30), v311, ReasonCode::malformed_packet);
  decode_error(Body().str("\xc0\xaf").packet(0x30), v311, ReasonCode::malformed_packet);      // overlong '/'
  decode_error(Body().str("\xed\xa0\x80").packet(0x30), v311, ReasonCode::malformed_packet);  // surrogate
  decode_error(Body().str(std::string("a/\0", 3)).packet(0x30), v311, ReasonCode::malformed_packet);
  decode_error(h("30 03 00 05 61"), v311, ReasonCode::malformed_packet);  // string past the end
  decode_error(h("30 01 00"), v311, ReasonCode::malformed_packet);
}

TEST(DecodeErrors, SubscribeAndUnsubscribe) {
  decode_error(h("82 02 00 01"), v311, ReasonCode::protocol_error);   // no topic filter
  decode_error(h("82 03 00 01 00"), v5, ReasonCode::protocol_error);  // no topic filter
  decode_error(h("a2 02 00 01"), v311, ReasonCode::protocol_error);
  for (const std::string_view bad : {"sport/tennis#", "sport/#/ranking", "sport+", "$share/+/a", "$share/g"}) {
    decode_error(Body().hex("00 01").str(bad).hex("01").packet(0x82), v311, ReasonCode::topic_filter_invalid);
    decode_error(Body().hex("00 01 00").str(bad).packet(0xa2), v5, ReasonCode::topic_filter_invalid);
  }
  decode_error(Body().hex("00 01").str("a\xff").hex("00").packet(0x82), v311, ReasonCode::malformed_packet);
  decode_error(Body().hex("00 01").str("a").hex("03").packet(0x82), v311, ReasonCode::malformed_packet);  // QoS 3
  decode_error(Body().hex("00 01").str("a").hex("04").packet(0x82), v311, ReasonCode::malformed_packet);  // bit 2
  decode_error(Body().hex("00 01").str("a").packet(0x82), v311, ReasonCode::malformed_packet);            // no options
  decode_error(Body().hex("00 01 00").str("a").hex("40").packet(0x82), v5, ReasonCode::malformed_packet);
  decode_error(Body().hex("00 01 00").str("a").hex("30").packet(0x82), v5, ReasonCode::protocol_error);  // RH 3
  decode_error(Body().hex("00 01 00").str("$share/g/a").hex("04").packet(0x82), v5,
               ReasonCode::protocol_error);  // no local on a shared subscription [MQTT-3.8.3-4]

  const auto options = decode_as<Subscribe>(Body().hex("00 01 02 0b 07").str("a/+").hex("2e").packet(0x82), v5);
  ASSERT_EQ(options.subscriptions.size(), 1U);
  EXPECT_EQ(options.properties.subscription_identifiers, std::vector<std::uint32_t>{7});
  EXPECT_EQ(options.subscriptions[0].qos, 2);
  EXPECT_TRUE(options.subscriptions[0].no_local);
  EXPECT_TRUE(options.subscriptions[0].retain_as_published);
  EXPECT_EQ(options.subscriptions[0].retain_handling, 2);
}

TEST(DecodeErrors, Properties) {
  const auto publish5 = [](std::string_view properties) {
    return Body().str("t").hex(properties).raw("payload").packet(0x30);
  };
  EXPECT_TRUE(decode(publish5("05 02 00 00 00 3c"), v5).has_value());
  // Repeated property.
  decode_error(publish5("0a 02 00 00 00 3c 02 00 00 00 3c"), v5, ReasonCode::protocol_error);
  decode_error(publish5("04 23 00 01 23 00 02"), v5, ReasonCode::protocol_error);
  // User properties and (in PUBLISH) subscription identifiers may repeat.
  EXPECT_TRUE(decode(publish5("0e 26 00 01 6b 00 01 76 26 00 01 6b 00 01 76"), v5).has_value());
  EXPECT_TRUE(decode(publish5("04 0b 01 0b 02"), v5).has_value());
  decode_error(Body().hex("00 01 04 0b 01 0b 02").str("a").hex("00").packet(0x82), v5, ReasonCode::protocol_error);
  // Not allowed in this packet, or no property at all.
  decode_error(publish5("05 11 00 00 00 3c"), v5, ReasonCode::protocol_error);       // session expiry in PUBLISH
  decode_error(publish5("02 24 01"), v5, ReasonCode::protocol_error);                // maximum QoS in PUBLISH
  decode_error(publish5("02 04 00"), v5, ReasonCode::protocol_error);                // 0x04 is unassigned
  decode_error(publish5("03 80 01 00"), v5, ReasonCode::protocol_error);             // identifier 128
  decode_error(h("e0 04 00 02 23 01"), v5, ReasonCode::protocol_error);              // topic alias in DISCONNECT
  decode_error(h("a2 08 00 01 02 1f 00 00 01 61"), v5, ReasonCode::protocol_error);  // reason string in UNSUBSCRIBE
  // Values the spec forbids.
  decode_error(publish5("03 23 00 00"), v5, ReasonCode::protocol_error);                // topic alias 0
  decode_error(publish5("02 01 02"), v5, ReasonCode::protocol_error);                   // payload format indicator 2
  decode_error(publish5("02 0b 00"), v5, ReasonCode::protocol_error);                   // subscription identifier 0
  decode_error(publish5("06 08 00 03 61 2f 23"), v5, ReasonCode::protocol_error);       // wildcard response topic
  decode_error(publish5("05 03 00 02 c3 28"), v5, ReasonCode::malformed_packet);        // content type not UTF-8
  decode_error(publish5("07 26 00 01 00 00 01 76"), v5, ReasonCode::malformed_packet);  // U+0000 in user property
  const auto connect5 = [](std::string_view properties) {
    return Body().str("MQTT").hex("05 02 00 3c").hex(properties).str("id").packet(0x10);
  };
  decode_error(connect5("03 21 00 00"), kBeforeConnect, ReasonCode::protocol_error);        // receive maximum 0
  decode_error(connect5("05 27 00 00 00 00"), kBeforeConnect, ReasonCode::protocol_error);  // max packet size 0
  decode_error(connect5("02 17 02"), kBeforeConnect, ReasonCode::protocol_error);           // request problem 2
  decode_error(connect5("04 16 00 01 00"), kBeforeConnect, ReasonCode::protocol_error);     // data without method
  decode_error(connect5("03 23 00 01"), kBeforeConnect, ReasonCode::protocol_error);        // topic alias
  // Lengths.
  decode_error(publish5("03 02 00 00"), v5, ReasonCode::malformed_packet);                    // value cut short
  decode_error(Body().str("t").hex("7f 02").packet(0x30), v5, ReasonCode::malformed_packet);  // length past end
  decode_error(publish5("03 0b 81 00"), v5, ReasonCode::malformed_packet);           // non-minimal identifier value
  decode_error(publish5("06 0b ff ff ff ff 7f"), v5, ReasonCode::malformed_packet);  // five-byte integer
  decode_error(Body().str("t").hex("80 00").packet(0x30), v5, ReasonCode::malformed_packet);  // non-minimal length
}

TEST(DecodeErrors, ReasonCodesMustSuitThePacket) {
  decode_error(h("40 03 00 07 04"), v5, ReasonCode::protocol_error);
  decode_error(h("50 03 00 07 92"), v5, ReasonCode::protocol_error);
  decode_error(h("62 03 00 07 80"), v5, ReasonCode::protocol_error);
  decode_error(h("e0 01 84"), v5, ReasonCode::protocol_error);  // CONNACK-only code in DISCONNECT
  decode_error(h("20 03 00 04 00"), v5, ReasonCode::protocol_error);
  decode_error(h("b0 04 00 01 00 02"), v5, ReasonCode::protocol_error);
}

TEST(DecodeErrors, LengthsAndFraming) {
  decode_error(h("30 ff ff ff ff 01"), v5, ReasonCode::malformed_packet);  // remaining length of 5 bytes
  decode_error(h("c0 80 00"), v5, ReasonCode::malformed_packet);           // non-minimal remaining length
  decode_error(h("00 00"), v5, ReasonCode::malformed_packet);              // packet type 0
  decode_error(h("c0 00 00"), v5, ReasonCode::malformed_packet);           // trailing byte after the packet
  decode_error(Bytes(cap().connect_311.begin(), cap().connect_311.end() - 1), kBeforeConnect,
               ReasonCode::malformed_packet);  // truncated
  decode_error(Bytes{}, v5, ReasonCode::malformed_packet);
  decode_error(h("30"), v5, ReasonCode::malformed_packet);
  // A trailing byte inside the remaining length.
  decode_error(Body().str("MQTT").hex("04 02 00 3c").str("id").hex("00").packet(0x10), kBeforeConnect,
               ReasonCode::malformed_packet);
  decode_error(h("40 05 00 07 00 00 00"), v5, ReasonCode::malformed_packet);
  decode_error(h("a0 00"), v5, ReasonCode::malformed_packet);
  decode_error(h("a2 00"), v5, ReasonCode::malformed_packet);
  // Every proper prefix of a valid packet fails cleanly.
  for (std::size_t n = 0; n < cap().connect_5.size(); ++n) {
    const Bytes prefix(cap().connect_5.begin(), cap().connect_5.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(decode(prefix, kBeforeConnect).has_value()) << n;
  }
}

// ---------------------------------------------------------------------------------------
// Framing a byte stream.

TEST(Frame, ReportsNothingUntilTheFixedHeaderIsComplete) {
  auto empty = frame({}, 1024);
  ASSERT_TRUE(empty.has_value());
  EXPECT_FALSE(empty->has_value());

  // A 200-byte payload needs a two-byte remaining length.
  Body body;
  body.str("t").raw(std::string(200, 'x'));
  const Bytes packet = body.packet(0x30);
  ASSERT_EQ(packet.size(), 206U);
  for (std::size_t n = 0; n <= packet.size(); ++n) {
    const auto result = frame(ByteView(packet).first(n), 1024);
    ASSERT_TRUE(result.has_value()) << n;
    if (n < 3) {
      EXPECT_FALSE(result->has_value()) << n;
      continue;
    }
    ASSERT_TRUE(result->has_value()) << n;
    EXPECT_EQ((*result)->first_byte, 0x30);
    EXPECT_EQ((*result)->header_bytes, 3U);
    EXPECT_EQ((*result)->remaining_length, 203U);
    EXPECT_EQ((*result)->total_bytes(), packet.size());
  }
}

TEST(Frame, SplitsAStreamFedByteByByte) {
  Bytes stream;
  for (const Bytes* packet : {&cap().connect_5, &cap().publish_5, &cap().subscribe_5, &cap().disconnect}) {
    stream.insert(stream.end(), packet->begin(), packet->end());
  }
  Bytes buffer;
  std::optional<ProtocolVersion> version;
  std::vector<PacketType> seen;
  for (const std::uint8_t byte : stream) {
    buffer.push_back(byte);
    while (true) {
      const auto framed = frame(buffer, 1 << 20);
      ASSERT_TRUE(framed.has_value()) << framed.error().message;
      if (!framed->has_value() || (*framed)->total_bytes() > buffer.size()) break;
      const std::size_t size = (*framed)->total_bytes();
      const auto packet = decode(ByteView(buffer).first(size), version);
      ASSERT_TRUE(packet.has_value()) << packet.error().message;
      if (const auto* connect = std::get_if<Connect>(&*packet)) version = connect->version;
      seen.push_back(type_of(*packet));
      buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size));
    }
  }
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(seen, (std::vector<PacketType>{PacketType::connect, PacketType::publish, PacketType::subscribe,
                                           PacketType::disconnect}));
}

TEST(Frame, Errors) {
  const auto error_of = [](const Bytes& bytes, std::size_t max) {
    const auto result = frame(bytes, max);
    EXPECT_FALSE(result.has_value());
    return result ? ReasonCode::success : result.error().reason;
  };
  EXPECT_EQ(error_of(h("00"), 100), ReasonCode::malformed_packet);                   // type 0, known at once
  EXPECT_EQ(error_of(h("30 ff ff ff ff"), SIZE_MAX), ReasonCode::malformed_packet);  // fifth length byte due
  EXPECT_EQ(error_of(h("30 80 80 00"), SIZE_MAX), ReasonCode::malformed_packet);     // non-minimal
  // Too large as soon as the length is known, before the body arrives.
  EXPECT_EQ(error_of(h("30 ff 7f"), 1000), ReasonCode::packet_too_large);
  EXPECT_EQ(error_of(h("30 ff ff ff 7f"), 1 << 20), ReasonCode::packet_too_large);

  // The largest remaining length; and the limit applies to the whole packet, header included.
  const auto largest = frame(h("30 ff ff ff 7f"), SIZE_MAX);
  ASSERT_TRUE(largest.has_value() && largest->has_value());
  EXPECT_EQ((*largest)->remaining_length, 268'435'455U);
  EXPECT_EQ((*largest)->header_bytes, 5U);
  EXPECT_TRUE(frame(h("c0 00"), 2).has_value());
  EXPECT_EQ(error_of(h("c0 00"), 1), ReasonCode::packet_too_large);
  EXPECT_TRUE(frame(cap().connect_5, cap().connect_5.size()).has_value());
  EXPECT_EQ(error_of(cap().connect_5, cap().connect_5.size() - 1), ReasonCode::packet_too_large);
}

// ---------------------------------------------------------------------------------------
// Encoding.

Properties rich_publish_properties() {
  Properties p;
  p.payload_format_indicator = 1;
  p.message_expiry_interval = 3600;
  p.content_type = "application/json";
  p.response_topic = "replies/device-7";
  p.correlation_data = Bytes{0xde, 0xad, 0xbe, 0xef};
  p.subscription_identifiers = {1, 268'435'455};
  p.topic_alias = 3;
  p.user_properties = {{"a", "1"}, {"a", "2"}, {"", ""}};
  return p;
}

std::vector<Packet> samples(ProtocolVersion version) {
  const bool is5 = version == v5;
  std::vector<Packet> out;

  Connect connect;
  connect.version = version;
  connect.clean_start = false;
  connect.keep_alive_seconds = 65'535;
  connect.client_id = "device-\xe6\x9d\xb1";
  connect.username = "alice";
  connect.password = Bytes{0, 1, 2, 255};
  Will will;
  will.topic = "devices/7/status";
  will.payload = Bytes{'o', 'f', 'f'};
  will.qos = 2;
  will.retain = true;
  if (is5) {
    connect.properties.session_expiry_interval = 0xFFFFFFFF;
    connect.properties.receive_maximum = 100;
    connect.properties.maximum_packet_size = 1 << 20;
    connect.properties.topic_alias_maximum = 10;
    connect.properties.request_response_information = 1;
    connect.properties.request_problem_information = 0;
    connect.properties.authentication_method = "SCRAM-SHA-256";
    connect.properties.authentication_data = Bytes{1, 2, 3};
    connect.properties.user_properties = {{"k", "v"}};
    will.properties.will_delay_interval = 30;
    will.properties.payload_format_indicator = 1;
    will.properties.message_expiry_interval = 10;
    will.properties.content_type = "text/plain";
    will.properties.response_topic = "r";
    will.properties.correlation_data = Bytes{9};
    will.properties.user_properties = {{"x", "y"}};
  }
  connect.will = will;
  out.emplace_back(connect);
  Connect minimal;
  minimal.version = version;
  minimal.client_id = "";
  out.emplace_back(minimal);
  if (is5) {
    Connect password_only;  // 5.0 only
    password_only.client_id = "p";
    password_only.password = Bytes{};
    out.emplace_back(password_only);
  }

  out.emplace_back(Connack{true, ReasonCode::success, {}});
  out.emplace_back(Connack{false, ReasonCode::bad_user_name_or_password, {}});
  if (is5) {
    Connack connack{false, ReasonCode::success, {}};
    Properties& p = connack.properties;
    p.session_expiry_interval = 60;
    p.receive_maximum = 65'535;
    p.maximum_qos = 1;
    p.retain_available = 0;
    p.maximum_packet_size = 268'435'460;
    p.assigned_client_identifier = "auto-1";
    p.topic_alias_maximum = 0;
    p.reason_string = "welcome";
    p.wildcard_subscription_available = 1;
    p.subscription_identifier_available = 0;
    p.shared_subscription_available = 1;
    p.server_keep_alive = 120;
    p.response_information = "resp/";
    p.server_reference = "other:1883";
    p.authentication_method = "SCRAM-SHA-256";
    p.authentication_data = Bytes{4, 5};
    p.user_properties = {{"region", "eu"}};
    out.emplace_back(connack);
    out.emplace_back(Connack{false, ReasonCode::use_another_server, {}});
  }

  Publish qos0;
  qos0.topic = "a";
  out.emplace_back(qos0);
  Publish qos1;
  qos1.qos = 1;
  qos1.retain = true;
  qos1.packet_id = 1;
  qos1.topic = "sensors/\xe6\x9d\xb1/temp";
  qos1.payload = Bytes(300, 0x42);  // two-byte remaining length
  out.emplace_back(qos1);
  Publish qos2;
  qos2.qos = 2;
  qos2.dup = true;
  qos2.packet_id = 65'535;
  qos2.topic = std::string(65'535, 't');  // longest topic
  qos2.payload = Bytes(20'000, 0x00);     // three-byte remaining length
  if (is5) qos2.properties = rich_publish_properties();
  out.emplace_back(qos2);
  if (is5) {
    Publish aliased;
    aliased.properties.topic_alias = 1;
    out.emplace_back(aliased);
  }

  Properties ack_properties;
  if (is5) {
    ack_properties.reason_string = "why";
    ack_properties.user_properties = {{"k", "v"}};
  }
  out.emplace_back(Puback{1, ReasonCode::success, {}});
  out.emplace_back(Pubrec{2, ReasonCode::success, {}});
  out.emplace_back(Pubrel{3, ReasonCode::success, {}});
  out.emplace_back(Pubcomp{4, ReasonCode::success, {}});
  if (is5) {
    out.emplace_back(Puback{5, ReasonCode::payload_format_invalid, {}});
    out.emplace_back(Puback{6, ReasonCode::success, ack_properties});
    out.emplace_back(Pubrec{7, ReasonCode::packet_identifier_in_use, ack_properties});
    out.emplace_back(Pubrel{8, ReasonCode::packet_identifier_not_found, {}});
    out.emplace_back(Pubcomp{9, ReasonCode::success, ack_properties});
  }

  Subscribe subscribe;
  subscribe.packet_id = 10;
  subscribe.subscriptions = {{"sport/#", 0, false, false, 0}, {"+/tennis/+", 1, false, false, 0}};
  if (is5) {
    subscribe.subscriptions.push_back({"$share/g/sport", 2, false, true, 2});
    subscribe.subscriptions.push_back({"own/echo", 1, true, false, 1});
    subscribe.properties.subscription_identifiers = {42};
    subscribe.properties.user_properties = {{"k", "v"}};
  }
  out.emplace_back(subscribe);

  Suback suback;
  suback.packet_id = 10;
  suback.reasons = {ReasonCode::success, ReasonCode::granted_qos_1, ReasonCode::granted_qos_2,
                    ReasonCode::unspecified_error};
  if (is5) {
    suback.reasons.push_back(ReasonCode::shared_subscriptions_not_supported);
    suback.properties = ack_properties;
  }
  out.emplace_back(suback);

  Unsubscribe unsubscribe;
  unsubscribe.packet_id = 11;
  unsubscribe.filters = {"sport/#", "a/+/b"};
  if (is5) unsubscribe.properties.user_properties = {{"k", "v"}};
  out.emplace_back(unsubscribe);

  Unsuback unsuback;
  unsuback.packet_id = 11;
  if (is5) {
    unsuback.reasons = {ReasonCode::success, ReasonCode::no_subscription_existed};
    unsuback.properties = ack_properties;
  }
  out.emplace_back(unsuback);

  out.emplace_back(Pingreq{});
  out.emplace_back(Pingresp{});
  out.emplace_back(Disconnect{});
  if (is5) {
    out.emplace_back(Disconnect{ReasonCode::disconnect_with_will, {}});
    Disconnect disconnect{ReasonCode::server_moved, {}};
    disconnect.properties.server_reference = "b:8883";
    disconnect.properties.session_expiry_interval = 0;
    disconnect.properties.reason_string = "moving";
    out.emplace_back(disconnect);
    out.emplace_back(Auth{});
    Auth auth{ReasonCode::continue_authentication, {}};
    auth.properties.authentication_method = "SCRAM-SHA-256";
    auth.properties.authentication_data = Bytes{7, 7};
    out.emplace_back(auth);
    Auth reauth{ReasonCode::reauthenticate, {}};
    reauth.properties.authentication_method = "SCRAM-SHA-256";
    out.emplace_back(reauth);
  }
  return out;
}

TEST(Encode, RoundTripsEveryPacketInBothVersions) {
  for (const ProtocolVersion version : {v311, v5}) {
    for (const Packet& packet : samples(version)) {
      SCOPED_TRACE(std::string(to_string(type_of(packet))) + (version == v5 ? " 5.0" : " 3.1.1"));
      const Bytes bytes = encode_ok(packet, version);
      EXPECT_EQ(encoded_size(packet, version), bytes.size());
      const std::optional<ProtocolVersion> context =
          std::holds_alternative<Connect>(packet) ? kBeforeConnect : std::optional{version};
      const auto decoded = decode(bytes, context);
      ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
      EXPECT_TRUE(*decoded == packet);
      const auto framed = frame(bytes, bytes.size());
      ASSERT_TRUE(framed.has_value() && framed->has_value());
      EXPECT_EQ((*framed)->total_bytes(), bytes.size());
    }
  }
}

TEST(Encode, AppendsToTheBuffer) {
  Bytes out{0xAA};
  const auto written = encode(Pingreq{}, v5, out);
  ASSERT_TRUE(written.has_value());
  EXPECT_EQ(*written, 2U);
  EXPECT_EQ(out, h("aa c0 00"));
  ASSERT_TRUE(encode(Puback{7, ReasonCode::success, {}}, v311, out).has_value());
  EXPECT_EQ(out, h("aa c0 00 40 02 00 07"));
}

TEST(Encode, MapsReasonsToMqtt311) {
  EXPECT_EQ(encode_ok(Connack{false, ReasonCode::banned, {}}, v311), h("20 02 00 05"));
  EXPECT_EQ(encode_ok(Connack{false, ReasonCode::server_busy, {}}, v311), h("20 02 00 03"));
  EXPECT_EQ(encode_ok(Suback{1, {}, {ReasonCode::granted_qos_1, ReasonCode::not_authorized}}, v311),
            h("90 04 00 01 01 80"));
  EXPECT_EQ(encode_ok(Unsuback{1, {}, {ReasonCode::no_subscription_existed}}, v311), h("b0 02 00 01"));
  EXPECT_EQ(encode_ok(Disconnect{ReasonCode::disconnect_with_will, {}}, v311), h("e0 00"));
  Publish publish;
  publish.topic = "t";
  publish.properties.message_expiry_interval = 5;  // 5.0 fields are ignored for 3.1.1
  EXPECT_EQ(encode_ok(publish, v311), h("30 03 00 01 74"));

  EXPECT_EQ(connack_return_code_v311(ReasonCode::success), 0x00);
  EXPECT_EQ(connack_return_code_v311(ReasonCode::unsupported_protocol_version), 0x01);
  EXPECT_EQ(connack_return_code_v311(ReasonCode::client_identifier_not_valid), 0x02);
  EXPECT_EQ(connack_return_code_v311(ReasonCode::server_unavailable), 0x03);
  EXPECT_EQ(connack_return_code_v311(ReasonCode::bad_user_name_or_password), 0x04);
  EXPECT_EQ(connack_return_code_v311(ReasonCode::not_authorized), 0x05);
  EXPECT_EQ(connack_return_code_v311(ReasonCode::bad_authentication_method), 0x05);
  EXPECT_EQ(connack_return_code_v311(ReasonCode::quota_exceeded), 0x03);
  EXPECT_NE(connack_return_code_v311(ReasonCode::granted_qos_1), 0x00);  // never "accepted" by accident
}

TEST(Encode, RefusesWhatTheProtocolCannotCarry) {
  Publish long_topic;
  long_topic.topic = std::string(65'536, 'a');
  EXPECT_EQ(encode_error(long_topic, v5), ReasonCode::implementation_specific_error);
  Publish wildcard;
  wildcard.topic = "a/#";
  EXPECT_EQ(encode_error(wildcard, v5), ReasonCode::implementation_specific_error);
  Publish id_without_qos;
  id_without_qos.topic = "a";
  id_without_qos.packet_id = 5;
  EXPECT_EQ(encode_error(id_without_qos, v311), ReasonCode::implementation_specific_error);
  Publish qos_without_id;
  qos_without_id.topic = "a";
  qos_without_id.qos = 1;
  EXPECT_EQ(encode_error(qos_without_id, v311), ReasonCode::implementation_specific_error);
  EXPECT_EQ(encode_error(Auth{}, v311), ReasonCode::implementation_specific_error);
  Connect mismatch;  // version 5 encoded as 3.1.1
  EXPECT_EQ(encode_error(mismatch, v311), ReasonCode::implementation_specific_error);
  Connect long_client_id;
  long_client_id.client_id = std::string(65'536, 'c');
  EXPECT_EQ(encode_error(long_client_id, v5), ReasonCode::implementation_specific_error);
  Disconnect long_user_property;
  long_user_property.properties.user_properties = {{"k", std::string(65'536, 'v')}};
  EXPECT_EQ(encode_error(long_user_property, v5), ReasonCode::implementation_specific_error);
  Connect big_password;
  big_password.password = Bytes(65'536, 0);
  EXPECT_EQ(encode_error(big_password, v5), ReasonCode::implementation_specific_error);
  Connect password_only;
  password_only.version = v311;
  password_only.client_id = "c";
  password_only.password = Bytes{1};
  EXPECT_EQ(encode_error(password_only, v311), ReasonCode::implementation_specific_error);
  EXPECT_EQ(encode_error(Subscribe{1, {}, {}}, v5), ReasonCode::implementation_specific_error);
  EXPECT_EQ(encode_error(Puback{0, ReasonCode::success, {}}, v5), ReasonCode::implementation_specific_error);
  EXPECT_EQ(encode_error(Puback{1, ReasonCode::banned, {}}, v5), ReasonCode::implementation_specific_error);
  Disconnect with_topic_alias;
  with_topic_alias.properties.topic_alias = 1;
  EXPECT_EQ(encode_error(with_topic_alias, v5), ReasonCode::implementation_specific_error);
  Subscribe too_many_ids{1, {}, {{"a", 0, false, false, 0}}};
  too_many_ids.properties.subscription_identifiers = {1, 2};
  EXPECT_EQ(encode_error(too_many_ids, v5), ReasonCode::implementation_specific_error);
  Publish huge_id;
  huge_id.topic = "a";
  huge_id.properties.subscription_identifiers = {268'435'456};
  EXPECT_EQ(encode_error(huge_id, v5), ReasonCode::implementation_specific_error);
  EXPECT_EQ(encode_error(Connack{true, ReasonCode::not_authorized, {}}, v311),
            ReasonCode::implementation_specific_error);
}

TEST(PacketNames, AreReadable) {
  EXPECT_EQ(to_string(PacketType::connect), "CONNECT");
  EXPECT_EQ(to_string(PacketType::auth), "AUTH");
  EXPECT_EQ(to_string(ReasonCode::malformed_packet), "Malformed Packet");
  EXPECT_EQ(to_string(ReasonCode::wildcard_subscriptions_not_supported), "Wildcard Subscriptions not supported");
  EXPECT_EQ(type_of(Packet{Unsuback{}}), PacketType::unsuback);
  EXPECT_EQ(type_of(Packet{Auth{}}), PacketType::auth);
  EXPECT_THAT(decode_error(Body().str("a/+").hex("00").packet(0x30), v5, ReasonCode::topic_name_invalid),
              testing::StartsWith("PUBLISH: "));
}

}  // namespace
}  // namespace torii::mqtt

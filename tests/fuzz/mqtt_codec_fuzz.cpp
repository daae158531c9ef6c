// Fuzzes the MQTT codec: frame() and decode() read every byte a device sends to the
// gateway, before any authentication beyond the TLS handshake.
//
// Input layout: the first byte chooses the connection state, the rest is the byte stream
// as it arrives from the peer:
//   first byte % 3 == 0  before CONNECT (decode with no version; a decoded CONNECT then sets
//                        the version for the packets after it, as a server does),
//                    1   MQTT 3.1.1 negotiated,
//                    2   MQTT 5.0 negotiated.
// The stream is cut into packets with frame() and each one decoded, until the stream ends
// or the first error (where a server would close the connection).
//
// Properties beyond "does not crash, reads nothing out of bounds":
//   - frame() reports a 2..5-byte fixed header and never a packet over its limit;
//   - decode() refuses every incomplete packet, and every error carries a reason code
//     >= 0x80 and a message;
//   - round trip: whatever decode() accepts, encode() accepts; encoded_size() is what encode
//     appends; decode(encode(p)) == p; encode is canonical (encoding the result again gives
//     the same bytes) and never longer than what was received;
//   - topics: a decoded topic name matches itself as a filter (and is a valid one unless it
//     begins with "$share/"), "#" matches it unless it begins with '$', and topic_matches()
//     survives every filter received so far.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "fuzz_check.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace torii::fuzz {
namespace {

constexpr std::size_t kMaxPacketBytes = 1 << 20;
constexpr std::size_t kMaxFilters = 16;  // bounds the topic_matches() work per input

void check_round_trip(const mqtt::Packet& packet, mqtt::ProtocolVersion version,
                      std::optional<mqtt::ProtocolVersion> context, std::size_t received_bytes) {
  Bytes encoded;
  const auto written = mqtt::encode(packet, version, encoded);
  check(written.has_value());
  check(*written == encoded.size());
  check(mqtt::encoded_size(packet, version) == encoded.size());
  check(encoded.size() <= received_bytes);

  const auto framed = mqtt::frame(encoded, encoded.size());
  check(framed.has_value() && framed->has_value() && (*framed)->total_bytes() == encoded.size());

  const auto again = mqtt::decode(encoded, context);
  check(again.has_value());
  check(*again == packet);

  Bytes reencoded;
  check(mqtt::encode(*again, version, reencoded).has_value());
  check(reencoded == encoded);
}

void check_topics(const mqtt::Packet& packet, std::vector<std::string>& filters) {
  if (const auto* publish = std::get_if<mqtt::Publish>(&packet)) {
    if (publish->topic.empty()) return;  // a topic alias stands in for it
    check(mqtt::valid_topic_name(publish->topic));
    // A name is a filter too, except under "$share/", where filters have their own syntax.
    check(publish->topic.starts_with("$share/") || mqtt::valid_topic_filter(publish->topic));
    check(mqtt::topic_matches(publish->topic, publish->topic));
    check(mqtt::topic_matches("#", publish->topic) == (publish->topic.front() != '$'));
    for (const std::string& filter : filters) (void)mqtt::topic_matches(filter, publish->topic);
  } else if (const auto* subscribe = std::get_if<mqtt::Subscribe>(&packet)) {
    for (const auto& subscription : subscribe->subscriptions) {
      check(mqtt::valid_topic_filter(subscription.filter));
      if (filters.size() < kMaxFilters) filters.push_back(subscription.filter);
    }
  }
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  if (size == 0) return 0;

  std::optional<mqtt::ProtocolVersion> version;
  switch (data[0] % 3) {
    case 1: version = mqtt::ProtocolVersion::v311; break;
    case 2: version = mqtt::ProtocolVersion::v5; break;
    default: break;
  }
  ByteView stream(data + 1, size - 1);
  std::vector<std::string> filters;

  while (!stream.empty()) {
    const auto framed = mqtt::frame(stream, fuzz::kMaxPacketBytes);
    if (!framed) {
      check(mqtt::is_error(framed.error().reason) && !framed.error().message.empty());
      if (framed.error().reason == mqtt::ReasonCode::malformed_packet) {
        check(!mqtt::decode(stream, version).has_value());
      }
      break;
    }
    if (!framed->has_value() || (*framed)->total_bytes() > stream.size()) {
      // Incomplete: a decoder given the partial packet must refuse it.
      check(!mqtt::decode(stream, version).has_value());
      break;
    }
    const mqtt::Frame header = **framed;
    check(header.header_bytes >= 2 && header.header_bytes <= 5);
    check(header.total_bytes() <= fuzz::kMaxPacketBytes);

    const ByteView bytes = stream.first(header.total_bytes());
    const auto packet = mqtt::decode(bytes, version);
    if (!packet) {
      check(mqtt::is_error(packet.error().reason) && !packet.error().message.empty());
      break;
    }
    check(static_cast<std::uint8_t>(mqtt::type_of(*packet)) == header.first_byte >> 4U);
    const auto* connect = std::get_if<mqtt::Connect>(&*packet);
    check(version.has_value() || connect != nullptr);
    const mqtt::ProtocolVersion packet_version = connect != nullptr ? connect->version : *version;
    fuzz::check_round_trip(*packet, packet_version, version, bytes.size());
    fuzz::check_topics(*packet, filters);
    if (!version) version = packet_version;
    stream = stream.subspan(header.total_bytes());
  }
  return 0;
}

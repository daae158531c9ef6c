// The MQTT 3.1.1 / 5.0 wire format (OASIS mqtt-v3.1.1 §2–3, mqtt-v5.0 §1.5, §2–3). Pure:
// bytes in, packet values out, and back. No I/O, no state beyond the arguments.
//
// Reading a stream: call frame() on the bytes received so far; once it reports a complete
// packet, decode() exactly those bytes and drop them from the buffer.
//
// Every violation of the specification found while decoding is reported with the reason
// code a server must close the connection with (malformed_packet, protocol_error,
// packet_too_large, unsupported_protocol_version, topic_name_invalid, ...), and a short
// message for the log that quotes no payload bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <tl/expected.hpp>
#include "base/bytes.h"
#include "mqtt/packet.h"

namespace torii::mqtt {

struct CodecError {
  ReasonCode reason = ReasonCode::malformed_packet;
  std::string message;  // e.g. "PUBLISH: topic name is not valid UTF-8"
};

template <typename T>
using CodecResult = tl::expected<T, CodecError>;

// The fixed header of the packet at the start of a buffer (§2.1).
struct Frame {
  std::uint8_t first_byte = 0;       // packet type << 4 | flags
  std::size_t header_bytes = 0;      // 2..5
  std::size_t remaining_length = 0;  // bytes after the fixed header
  [[nodiscard]] std::size_t total_bytes() const { return header_bytes + remaining_length; }
};

// nullopt: more bytes are needed. Errors: a remaining-length field longer than 4 bytes
// (malformed_packet), a packet larger than max_packet_bytes (packet_too_large; known as
// soon as the length field is complete, before the body arrives), packet type 0
// (malformed_packet).
[[nodiscard]] CodecResult<std::optional<Frame>> frame(ByteView buffer, std::size_t max_packet_bytes);

// Decodes one complete packet (fixed header included, exactly frame().total_bytes()).
// `version` is the connection's negotiated version; nullopt before CONNECT, when only a
// CONNECT is acceptable (anything else: protocol_error). A CONNECT names its own version:
// levels other than 4 and 5 give unsupported_protocol_version, and a protocol name other
// than "MQTT" gives unsupported_protocol_version too (3.1 clients say "MQIsdp").
// Checks every rule a receiver must check: reserved flag bits, QoS 3, packet identifier 0,
// UTF-8 well-formedness and U+0000 in strings (§1.5.4), wildcards in PUBLISH topic names,
// topic filter syntax, empty SUBSCRIBE/UNSUBSCRIBE, property identifiers allowed for the
// packet type and not repeated, trailing bytes.
// Also: variable byte integers (remaining length included) must use the fewest bytes
// [MQTT-1.5.5-1]; a CONNECT is decoded by the level it names even when `version` is set (a
// second CONNECT is the session's protocol error to raise); client_identifier_not_valid
// comes only from a 3.1.1 CONNECT (empty identifier without clean session, [MQTT-3.1.3-8]),
// to be answered with a 3.1.1 CONNACK. Rules that depend on who sent the packet (e.g. no
// subscription identifier in a client's PUBLISH) or on the session (topic alias range,
// maximum QoS) are the session's.
[[nodiscard]] CodecResult<Packet> decode(ByteView packet, std::optional<ProtocolVersion> version);

// Appends the encoding of packet to out and returns the number of bytes appended. Encoding a
// value the protocol cannot carry (a string over 65,535 bytes, a packet over 268,435,455
// bytes, AUTH in 3.1.1) is a programming error and reported as implementation_specific_error;
// so is any value decode() would refuse (the same checks run), e.g. a QoS 0 PUBLISH with a
// packet identifier, or a Connect whose version is not `version`. Nothing is appended then.
// For 3.1.1, 5.0-only fields are ignored, SUBACK failures are written as 0x80 and CONNACK
// reasons as connack_return_code_v311(). 5.0 acknowledgements, DISCONNECT and AUTH take
// their shortest form.
[[nodiscard]] CodecResult<std::size_t> encode(const Packet& packet, ProtocolVersion version, Bytes& out);

// The size encode() would produce, for checking a client's maximum packet size before
// sending (MQTT 5.0 §3.1.2.11.4).
[[nodiscard]] std::size_t encoded_size(const Packet& packet, ProtocolVersion version);

// 3.1.1 CONNACK return codes (§3.2.2.3) for the 5.0 reason codes a server sends.
[[nodiscard]] std::uint8_t connack_return_code_v311(ReasonCode reason);

}  // namespace torii::mqtt

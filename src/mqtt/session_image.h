// The bytes a persistent session (SessionState) is kept as while its device is away, so that
// it survives a restart of the server.
//
// The image is made of MQTT 5.0 packets, decoded by the codec's own checks, in a small frame:
//
//   u8  format (1)
//   u16 last packet id
//   u16 count, then u16 × count        inbound QoS 2 packet ids awaiting PUBREL
//   u8  0 | 1, then SUBSCRIBE           the subscriptions (options included), when any
//   u16 count, then per message:        outbound QoS 1/2 in flight
//       u8 state, PUBLISH                 (packet id, DUP and QoS as sent)
//   u32 count, then per message:        waiting beyond the client's window
//       i64 expires at (Unix ms, 0: never), PUBLISH
//   u64 dropped, u64 expired
//
// Integers are big-endian. Times in the image are wall-clock milliseconds: the steady
// clock does not survive a restart, so expiries are converted on the way out and back in.
#pragma once

#include <chrono>
#include <cstdint>

#include "base/bytes.h"
#include "mqtt/codec.h"
#include "mqtt/session.h"

namespace torii::mqtt {

// The moment an image is written or read, on both clocks.
struct ImageTime {
  std::chrono::steady_clock::time_point steady;
  std::int64_t unix_ms = 0;
};

// An instant on the steady clock as wall-clock milliseconds, at least 1 ms after `now` (0
// stands for "never" where these are stored), and back (bounded by the longest message expiry
// interval, 2^32 - 1 s).
[[nodiscard]] std::int64_t to_unix_ms(std::chrono::steady_clock::time_point at, ImageTime now);
[[nodiscard]] std::chrono::steady_clock::time_point to_steady(std::int64_t unix_ms, ImageTime now);

// implementation_specific_error when a message cannot be encoded (it was checked when it
// arrived, so this does not happen for a state the session built).
[[nodiscard]] CodecResult<Bytes> encode_session_image(const SessionState& state, ImageTime now);

// malformed_packet for anything but an image encode_session_image wrote (truncated, trailing
// bytes, an unknown format, a packet that is not what its place says). Queued messages that
// expired meanwhile are left out and counted as expired.
[[nodiscard]] CodecResult<SessionState> decode_session_image(ByteView image, ImageTime now);

}  // namespace torii::mqtt

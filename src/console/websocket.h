// The server side of RFC 6455 WebSockets, as far as the console uses them: the opening
// handshake of an HTTP request, and a connection that sends text messages and answers the
// client's control frames. No I/O here: the HTTPS shell (http_server.cpp) moves the bytes.
//
// The console's sockets only send (live telemetry, live.h); what a client may send is
// narrow, so that an untrusted peer can make the server hold or parse little:
//   - control frames only (ping, pong, close), each whole (FIN) and at most 125 bytes of
//     payload, masked as §5.3 requires of clients;
//   - a data frame (text, binary, continuation) ends the connection with 1003 (unsupported
//     data), a protocol violation with 1002, both after a close frame of our own (§7.1.7);
//   - no extensions (RSV bits must be 0) and no subprotocols.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "base/bytes.h"
#include "console/http.h"

namespace torii::console::websocket {

// §7.4.1 status codes the server sends.
enum class CloseCode : std::uint16_t {
  normal = 1000,
  going_away = 1001,
  protocol_error = 1002,
  unsupported_data = 1003,
  policy_violation = 1008,
  internal_error = 1011,
};

// §4.2.2 step 5.4: base64(SHA-1(key + the RFC's GUID)).
[[nodiscard]] std::string accept_key(std::string_view client_key);

// Why an upgrade request is refused: 400 (not a valid WebSocket opening handshake) or 426
// (a version other than 13; the answer names the one this server speaks).
struct HandshakeRefusal {
  int status;
  std::string reason;
};

// Checks a request's opening handshake (§4.2.1): GET, "Upgrade: websocket", a Connection
// field naming "upgrade", Sec-WebSocket-Version 13 and a Sec-WebSocket-Key of 16 bytes in
// base64. Returns the Sec-WebSocket-Accept value to answer with.
[[nodiscard]] tl::expected<std::string, HandshakeRefusal> check_handshake(const Request& request);

// Whether a request asks for a WebSocket at all (an Upgrade field naming websocket), so that
// a plain GET of the same path can be told "use a WebSocket" rather than half-checked.
[[nodiscard]] bool is_upgrade(const Request& request);

// One server-side connection after the handshake. Single-threaded.
class Connection {
 public:
  // Parses what the client sent; answers pings, completes or starts the closing handshake.
  void receive(ByteView bytes);
  // Queues one text message (unfragmented). Ignored once closing.
  void send_text(std::string_view text);
  // Queues a ping; a pong (or any frame) received afterwards counts as an answer.
  void ping();
  // Starts the closing handshake with this code; the reason is cut to what fits (§5.5).
  void close(CloseCode code, std::string_view reason);

  [[nodiscard]] bool has_output() const { return !output_.empty(); }
  [[nodiscard]] Bytes take_output();
  // Something arrived since the last call (the peer is alive); resets the flag.
  [[nodiscard]] bool heard_from_peer();
  // Nothing more to read: the closing handshake is complete, or the connection failed.
  // Whatever is still in the output should be written before the socket is closed.
  [[nodiscard]] bool closed() const { return closed_; }
  // A close frame of ours is queued or sent.
  [[nodiscard]] bool closing() const { return close_sent_; }

 private:
  void frame(std::uint8_t opcode, ByteView payload);
  void fail(CloseCode code, std::string_view reason);
  // Handles one whole control frame from the front of `input_`; false when more bytes are
  // needed.
  bool take_frame();

  Bytes input_;  // at most one frame's header and 125 bytes of payload
  Bytes output_;
  bool close_sent_ = false;
  bool closed_ = false;
  bool heard_ = false;
};

// A server frame (FIN, unmasked) with the shortest length encoding (§5.2).
[[nodiscard]] Bytes encode_frame(std::uint8_t opcode, ByteView payload);

inline constexpr std::uint8_t kText = 0x1;
inline constexpr std::uint8_t kClose = 0x8;
inline constexpr std::uint8_t kPing = 0x9;
inline constexpr std::uint8_t kPong = 0xA;

}  // namespace torii::console::websocket

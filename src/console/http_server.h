// The console's HTTPS shell: HTTP/1.1 over the TLS streams of a net::TlsListener.
//
// Each connection reads requests with Beast's parser, one at a time (keep-alive and
// pipelining are served in order), within limits that hold for every request:
//   - the header block at most max_header_bytes (431), the body at most max_body_bytes (413);
//   - a request must arrive whole within request_timeout of its first byte, and the next one
//     start within idle_timeout; otherwise the connection is closed;
//   - at most max_requests_per_connection, then the connection is closed after the answer.
// A request that cannot be parsed gets 400 and the connection is closed. The handler's
// answer is written with Content-Length; nothing is ever sent in plain text (JPCERT II-1).
// A 101 answer carrying a WebSocketFeed (live.h) turns the connection into a WebSocket
// (websocket.h) that sends the feed's messages, pings every 30 s and ends with the feed.
#pragma once

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>

#include "console/http.h"
#include "console/request_handler.h"
#include "net/listener.h"

namespace torii::console {

struct HttpLimits {
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  std::size_t max_body_bytes = std::size_t{64} * 1024;
  std::chrono::seconds request_timeout{10};
  std::chrono::seconds idle_timeout{30};
  unsigned max_requests_per_connection = 1000;
};

class HttpServer final : public net::CoroutineHandler {
 public:
  // The handler must outlive the server's connections.
  HttpServer(RequestHandler& handler, HttpLimits limits) : handler_(handler), limits_(limits) {}
  boost::asio::awaitable<void> serve(net::TlsStream& stream, const net::PeerInfo& peer) override;

 private:
  RequestHandler& handler_;
  HttpLimits limits_;
};

// The bytes of a response as sent: status line, the handler's fields, Content-Length and
// Connection, then the body. Header values holding CR or LF are dropped (no response
// splitting, whatever a handler puts there).
[[nodiscard]] std::string serialize_response(const Response& response, bool keep_alive);
// The bytes of a 101 answer: status line and the handler's fields, no body; the connection
// is a WebSocket afterwards (its feed is the response's).
[[nodiscard]] std::string serialize_upgrade(const Response& response);

}  // namespace torii::console

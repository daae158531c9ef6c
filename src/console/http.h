// HTTP messages as plain values: what the console's handlers see and return. Beast stays in
// http_server.cpp, so handlers and their tests compile without it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace torii::console {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target before '?', percent-decoding left to the router
  std::string query;   // after '?', without it; may be empty
  // Field names lower-cased; repeated fields kept in order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string source;  // the peer's address and port, "203.0.113.5:51234"

  // The first field with this (lower-case) name.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

class WebSocketFeed;  // live.h

struct Response {
  int status = 200;
  // Set by the handler; the server adds Content-Length, Date and the connection fields.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // With status 101: the connection becomes a WebSocket (websocket.h) carrying this feed,
  // after an answer of these headers and no body.
  std::shared_ptr<WebSocketFeed> websocket;

  void set(std::string name, std::string value);
};

// "OK", "Not Found", ...; "Unknown" for a status this server never sends.
[[nodiscard]] std::string_view reason_phrase(int status);

}  // namespace torii::console

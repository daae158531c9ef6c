#include "console/http_server.h"

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "console/request_reader.h"

namespace torii::console {

namespace asio = boost::asio;

namespace {

thread_local std::array<std::uint8_t, 16384> read_buffer;

Response plain_error(int status) {
  Response r;
  r.status = status;
  r.set("Content-Type", "application/problem+json");
  r.body = fmt::format(R"({{"type":"about:blank","title":"{}","status":{}}})", reason_phrase(status), status);
  return r;
}

// Closes the connection's socket when the deadline passes, which ends any pending wait.
class Deadline {
 public:
  explicit Deadline(net::TlsStream& stream) : stream_(stream), timer_(stream.get_executor()) {}
  ~Deadline() { timer_.cancel(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void set(std::chrono::seconds in) {
    expired_ = false;
    timer_.expires_after(in);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      expired_ = true;
      boost::system::error_code ignored;
      stream_.socket().cancel(ignored);
    });
  }
  void clear() { timer_.cancel(); }
  [[nodiscard]] bool expired() const { return expired_; }

 private:
  net::TlsStream& stream_;
  asio::steady_timer timer_;
  bool expired_ = false;
};

}  // namespace

std::string serialize_response(const Response& response, bool keep_alive) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", response.status, reason_phrase(response.status));
  for (const auto& [name, value] : response.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos || value.find_first_of("\r\n") != std::string::npos) {
      continue;
    }
    out += fmt::format("{}: {}\r\n", name, value);
  }
  out += fmt::format("Content-Length: {}\r\nConnection: {}\r\n\r\n", response.body.size(),
                     keep_alive ? "keep-alive" : "close");
  out += response.body;
  return out;
}

asio::awaitable<void> HttpServer::serve(net::TlsStream& stream, const net::PeerInfo& peer) {
  std::string pending;  // bytes read but not yet consumed by a reader
  boost::system::error_code ec;
  Deadline deadline(stream);
  bool keep_alive = true;
  for (unsigned served = 0; keep_alive && served < limits_.max_requests_per_connection; ++served) {
    RequestReader reader(limits_.max_header_bytes, limits_.max_body_bytes);
    deadline.set(limits_.idle_timeout);
    bool started = false;
    for (;;) {
      if (!pending.empty() && !started) {
        started = true;
        deadline.set(limits_.request_timeout);
      }
      if (reader.feed(pending) != RequestReader::State::need_more) break;
      const std::size_t n = stream.read_now(read_buffer, ec);
      if (ec == asio::error::would_block) {
        co_await stream.wait(ec);
        if (ec) co_return;  // a deadline passed or the peer went away
        continue;
      }
      if (ec) co_return;
      pending.append(reinterpret_cast<const char*>(read_buffer.data()), n);
    }
    deadline.clear();
    if (reader.refusal_status() != 0) {
      const std::string out = serialize_response(plain_error(reader.refusal_status()), false);
      co_await stream.write(ByteView(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()), ec);
      break;
    }
    Request request = reader.take(peer.endpoint());
    keep_alive = reader.keep_alive() && served + 1 < limits_.max_requests_per_connection;
    Response response;
    try {
      response = co_await handler_.handle(std::move(request));
    } catch (const std::exception& e) {
      spdlog::error("console: request from {} failed: {}", peer.endpoint(), e.what());
      response = plain_error(500);
      keep_alive = false;
    }
    const std::string out = serialize_response(response, keep_alive);
    deadline.set(limits_.request_timeout);
    co_await stream.write(ByteView(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()), ec);
    deadline.clear();
    if (ec) co_return;
  }
  deadline.set(std::chrono::seconds(1));
  co_await stream.shutdown(ec);
}

}  // namespace torii::console

#include "console/http_server.h"

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "console/live.h"
#include "console/request_reader.h"
#include "console/websocket.h"

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

// Live sockets (websocket.h, live.h): a ping every so often, and a peer that has sent
// nothing since the previous one is gone, as is one that takes longer than that to take a
// write. A close we start must be answered within a few seconds.
constexpr auto kPingEvery = std::chrono::seconds(30);
constexpr auto kCloseAnswerWithin = std::chrono::seconds(5);
constexpr unsigned kReadsBeforeYielding = 8;

// One WebSocket after its 101 answer: a reader that hands what the peer sends to the
// protocol, and a writer that sends the feed's messages, pings, and the close. Shared by the
// two so that whichever the io_context destroys last still finds it (as the gateway's
// connections are).
class LiveSocket final : public std::enable_shared_from_this<LiveSocket> {
 public:
  LiveSocket(net::TlsStream& stream, std::shared_ptr<WebSocketFeed> feed)
      : stream_(stream), feed_(std::move(feed)), wake_(stream.get_executor()), writer_exited_(stream.get_executor()) {}

  // `early`: bytes that arrived with the upgrade request, already the socket's.
  asio::awaitable<void> run(std::string early) {
    feed_->start([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->wake();
    });
    ws_.receive(as_bytes(early));
    asio::co_spawn(stream_.get_executor(), write_loop(shared_from_this()), asio::detached);
    co_await read_loop();
    wake();
    boost::system::error_code ec;
    while (!writer_done_) {
      writer_exited_.expires_at(std::chrono::steady_clock::time_point::max());
      co_await writer_exited_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    feed_->stop();
    if (!write_failed_) {
      Deadline limit(stream_);
      limit.set(std::chrono::seconds(1));
      co_await stream_.shutdown(ec);
    }
  }

 private:
  void wake() { wake_.cancel(); }

  asio::awaitable<void> read_loop() {
    boost::system::error_code ec;
    unsigned reads_in_a_row = 0;
    while (!ws_.closed() && !writer_done_) {
      const std::size_t n = stream_.read_now(read_buffer, ec);
      if (ec == asio::error::would_block) {
        reads_in_a_row = 0;
        co_await stream_.wait(ec);
        if (ec) break;
        continue;
      }
      if (ec) break;
      ws_.receive(ByteView(read_buffer.data(), n));
      if (ws_.has_output() || ws_.closed()) wake();
      if (++reads_in_a_row == kReadsBeforeYielding) {
        reads_in_a_row = 0;
        co_await asio::post(stream_.get_executor(), asio::use_awaitable);
      }
    }
    reader_done_ = true;
  }

  asio::awaitable<void> write_loop(std::shared_ptr<LiveSocket> self) {
    struct Exit {
      LiveSocket& s;
      ~Exit() {
        s.writer_done_ = true;
        s.writer_exited_.cancel();
      }
    } exit{*self};
    using steady = std::chrono::steady_clock;
    auto next_ping = steady::now() + kPingEvery;
    auto close_by = steady::time_point::max();
    bool pinged = false;
    boost::system::error_code ec;
    for (;;) {
      if (!ws_.closing()) {
        if (auto end = feed_->ended()) {
          ws_.close(end->first, end->second);
          close_by = steady::now() + kCloseAnswerWithin;
        } else {
          for (const auto& message : feed_->take()) ws_.send_text(message);
        }
      }
      if (ws_.has_output()) {
        out_ = ws_.take_output();
        // A peer that stops reading fills its window and would hold the socket forever.
        Deadline write_within(stream_);
        write_within.set(kPingEvery);
        co_await stream_.write(out_, ec);
        write_within.clear();
        if (ec) {
          write_failed_ = true;
          break;
        }
        continue;
      }
      if (ws_.closed() || reader_done_ || steady::now() >= close_by) break;
      if (steady::now() >= next_ping && !ws_.closing()) {
        // Whatever arrived since the last ping answers it; silence means the peer is gone.
        if (!ws_.heard_from_peer() && pinged) break;
        feed_->check();
        ws_.ping();
        pinged = true;
        next_ping = steady::now() + kPingEvery;
        continue;
      }
      // While closing, only the close's answer is waited for (a ping time passed meanwhile
      // must not make this loop spin).
      wake_.expires_at(ws_.closing() ? close_by : std::min(next_ping, close_by));
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    out_.clear();
    boost::system::error_code ignored;
    stream_.socket().cancel(ignored);  // ends the reader, which may be waiting for bytes
  }

  net::TlsStream& stream_;
  std::shared_ptr<WebSocketFeed> feed_;
  websocket::Connection ws_;
  asio::steady_timer wake_;
  asio::steady_timer writer_exited_;
  Bytes out_;
  bool reader_done_ = false;
  bool writer_done_ = false;
  bool write_failed_ = false;
};

// The status line and the handler's fields. Fields holding CR or LF are dropped (no response
// splitting, whatever a handler puts there).
std::string head_of(const Response& response) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", response.status, reason_phrase(response.status));
  for (const auto& [name, value] : response.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos || value.find_first_of("\r\n") != std::string::npos) {
      continue;
    }
    out += fmt::format("{}: {}\r\n", name, value);
  }
  return out;
}

}  // namespace

std::string serialize_upgrade(const Response& response) { return head_of(response) + "\r\n"; }

std::string serialize_response(const Response& response, bool keep_alive) {
  std::string out = head_of(response);
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
    if (response.status == 101 && response.websocket) {
      const std::string head = serialize_upgrade(response);
      deadline.set(limits_.request_timeout);
      co_await stream.write(ByteView(reinterpret_cast<const std::uint8_t*>(head.data()), head.size()), ec);
      deadline.clear();
      if (ec) co_return;
      auto socket = std::make_shared<LiveSocket>(stream, std::move(response.websocket));
      co_await socket->run(std::move(pending));
      co_return;
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

#include "broker/gateway.h"

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <memory>

namespace torii::broker {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

namespace {

// What a connection reads goes here first: one buffer for every connection of the thread
// (TlsStream::read_now never suspends, and the session copies what it keeps), so that an
// idle connection holds no read buffer. A TLS record's payload is at most 16 KiB.
thread_local std::array<std::uint8_t, 16384> read_buffer;
constexpr unsigned kReadsBeforeYielding = 8;

// One MQTT connection. Shared by its reader (the serve() coroutine) and its writer, so that
// whichever frame the io_context destroys last at shutdown still finds it alive.
class Connection final : public ClientLink, public std::enable_shared_from_this<Connection> {
 public:
  Connection(net::TlsStream& stream, Broker& broker, DeviceInfo device, const net::PeerInfo& peer,
             const GatewayOptions& options, mqtt::SessionLimits limits)
      : stream_(stream),
        options_(options),
        host_(broker.open_session(std::move(device), *this, peer.endpoint())),
        session_(*host_, limits),
        wake_(stream.get_executor()),
        writer_exited_(stream.get_executor()),
        started_(steady::now()),
        last_activity_(started_) {}

  asio::awaitable<void> run() {
    asio::co_spawn(stream_.get_executor(), write_loop(shared_from_this()), asio::detached);
    co_await read_loop();
    if (!session_.closed()) session_.connection_lost();
    wake();
    boost::system::error_code ec;
    while (!writer_done_) {
      writer_exited_.expires_at(steady::time_point::max());
      co_await writer_exited_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    host_->ended(session_);
    // TLS close_notify, so that the peer can tell our close from a cut connection; a peer
    // that does not answer it gets one second.
    if (!write_failed_) {
      asio::steady_timer limit(stream_.get_executor(), std::chrono::seconds(1));
      limit.async_wait([this](const boost::system::error_code& e) {
        if (e) return;
        boost::system::error_code ignored;
        stream_.socket().cancel(ignored);
      });
      co_await stream_.shutdown(ec);
      limit.cancel();
    }
  }

  [[nodiscard]] const mqtt::Session& session() const { return session_; }
  [[nodiscard]] const DeviceInfo& device() const { return host_->device(); }

  void deliver(mqtt::Publish message) override {
    session_.deliver(std::move(message));
    if (session_.has_output()) wake();
  }
  void disconnect(mqtt::ReasonCode reason, std::string detail) override {
    session_.close(reason, std::move(detail));
    wake();
  }
  void publish_done(std::uint16_t packet_id, mqtt::ReasonCode reason) override {
    session_.complete_publish(packet_id, reason);
    wake();
  }

 private:
  void wake() { wake_.cancel(); }

  [[nodiscard]] steady::time_point deadline() const {
    if (!session_.connected()) return started_ + options_.connect_timeout;
    const auto keep_alive = session_.keep_alive();
    if (keep_alive.count() == 0) return steady::time_point::max();
    return last_activity_ + std::chrono::milliseconds(keep_alive) * 3 / 2;  // MQTT 5.0 §3.1.2.10: one and a half times
  }

  asio::awaitable<void> read_loop() {
    boost::system::error_code ec;
    unsigned reads_in_a_row = 0;
    while (!session_.closed()) {
      const std::size_t n = stream_.read_now(read_buffer, ec);
      if (ec == asio::error::would_block) {
        reads_in_a_row = 0;
        co_await stream_.wait(ec);  // idle: no buffer held while waiting
        if (ec) break;
        continue;
      }
      if (ec) break;
      last_activity_ = steady::now();
      session_.receive(ByteView(read_buffer.data(), n));
      if (session_.has_output() || session_.closed()) wake();
      // A client that keeps its socket full must not keep the thread: after a few reads in
      // a row, the other connections (and this one's writer) get their turn first.
      if (++reads_in_a_row == kReadsBeforeYielding) {
        reads_in_a_row = 0;
        co_await asio::post(stream_.get_executor(), asio::use_awaitable);
      }
    }
    reader_done_ = true;
  }

  // Writes whatever the session produced; sleeps until woken or until the connection's
  // deadline, which it enforces.
  asio::awaitable<void> write_loop(std::shared_ptr<Connection> self) {
    struct Exit {
      Connection& c;
      ~Exit() {
        c.writer_done_ = true;
        c.writer_exited_.cancel();
      }
    } exit{*self};
    boost::system::error_code ec;
    for (;;) {
      if (session_.has_output()) {
        out_ = session_.take_output();
        co_await stream_.write(out_, ec);
        if (ec) {
          write_failed_ = true;
          break;
        }
        continue;
      }
      if (session_.closed() || reader_done_) break;
      wake_.expires_at(deadline());
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!ec && steady::now() >= deadline()) {
        if (session_.connected()) {
          session_.close(mqtt::ReasonCode::keep_alive_timeout, "no packet within 1.5 x keep-alive");
        } else {
          session_.close(mqtt::ReasonCode::maximum_connect_time, "no CONNECT in time");
        }
      }
    }
    out_.clear();
    out_.shrink_to_fit();
    // Our last packets are written: end the reader, which may be waiting for bytes.
    boost::system::error_code ignored;
    stream_.socket().cancel(ignored);
  }

  net::TlsStream& stream_;
  const GatewayOptions& options_;
  std::unique_ptr<DeviceSession> host_;
  mqtt::Session session_;
  asio::steady_timer wake_;
  asio::steady_timer writer_exited_;
  steady::time_point started_;
  steady::time_point last_activity_;
  Bytes out_;
  bool reader_done_ = false;
  bool writer_done_ = false;
  bool write_failed_ = false;
};

// Answers the CONNECT of a TLS-authenticated client whose certificate names no usable
// device with a refusal (MQTT 5: 0x87 not authorized or 0x8A banned; 3.1.1: return code 5),
// so that its operator sees why, then closes. Nothing the client sends is acted upon.
class RefusingHost final : public mqtt::SessionHost {
 public:
  explicit RefusingHost(mqtt::ReasonCode reason) : reason_(reason) {}
  ConnectDecision on_connect(const mqtt::Connect&) override { return {reason_, nullptr, false, {}}; }
  PublishDecision on_publish(const mqtt::Publish&) override { return {mqtt::ReasonCode::not_authorized, false}; }
  mqtt::ReasonCode on_subscribe(const mqtt::Subscription&) override { return mqtt::ReasonCode::not_authorized; }
  mqtt::ReasonCode on_unsubscribe(std::string_view) override { return mqtt::ReasonCode::not_authorized; }
  void on_subscribed(const mqtt::Subscription&, bool) override {}

 private:
  mqtt::ReasonCode reason_;
};

asio::awaitable<void> refuse_connect(net::TlsStream& stream, mqtt::ReasonCode reason, std::chrono::seconds timeout) {
  RefusingHost host(reason);
  mqtt::SessionLimits limits;
  limits.maximum_packet_bytes = 4096;  // a CONNECT needs no more
  mqtt::Session session(host, limits);
  asio::steady_timer deadline(stream.get_executor(), timeout);
  deadline.async_wait([&stream](const boost::system::error_code& ec) {
    if (ec) return;
    boost::system::error_code ignored;
    stream.socket().cancel(ignored);
  });
  boost::system::error_code ec;
  while (!session.closed()) {
    const std::size_t n = stream.read_now(read_buffer, ec);
    if (ec == asio::error::would_block) {
      co_await stream.wait(ec);
      if (ec) break;
      continue;
    }
    if (ec) break;
    session.receive(ByteView(read_buffer.data(), n));
  }
  if (session.has_output()) {
    const Bytes out = session.take_output();
    co_await stream.write(out, ec);
  }
  deadline.cancel();
}

}  // namespace

Gateway::Gateway(Broker& broker, GatewayOptions options, GatewayEvents events)
    : broker_(broker), options_(options), events_(std::move(events)) {}

asio::awaitable<void> Gateway::serve(net::TlsStream& stream, const net::PeerInfo& peer) {
  auto device = broker_.authenticate(stream.peer_certificate_der());
  if (!device) {
    if (events_.refused) events_.refused(peer, device.error().message);
    // The client learns "not authorized" (or "banned"), never which check failed.
    co_await refuse_connect(
        stream, device.error().is(Errc::limit_exceeded) ? mqtt::ReasonCode::banned : mqtt::ReasonCode::not_authorized,
        options_.connect_timeout);
    co_return;
  }
  auto connection =
      std::make_shared<Connection>(stream, broker_, std::move(*device), peer, options_, broker_.session_limits());
  if (events_.connected) events_.connected(peer, connection->device());
  co_await connection->run();
  if (events_.disconnected) {
    events_.disconnected(peer, connection->device(), connection->session().close_reason(),
                         connection->session().close_detail());
  }
}

}  // namespace torii::broker

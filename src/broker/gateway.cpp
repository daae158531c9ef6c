#include "broker/gateway.h"

#include "net/socket_deadline.h"

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <unordered_map>
#include <vector>

namespace torii::broker {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

namespace {

// What a connection reads goes here first: one buffer for every connection of the thread
// (TlsStream::read_now never suspends, and the session copies what it keeps), so that an
// idle connection holds no read buffer. A TLS record's payload is at most 16 KiB.
thread_local std::array<std::uint8_t, 16384> read_buffer;
constexpr unsigned kReadsBeforeYielding = 8;
// A closed session's last packets get this long while the peer takes none of them; then
// the connection is cut without them.
constexpr std::chrono::seconds kCloseGrace{5};

class Connection;

}  // namespace

// The deadlines of every connection of a gateway, checked once a second by one timer: a
// connection keeps two links of this list instead of a timer and a pending wait of its
// own, so a deadline is enforced up to a second late. Shared by the connections and the
// timer's wait; the timer stops while no connection is listed, and the object goes with
// the last connection.
class Deadlines final : public std::enable_shared_from_this<Deadlines> {
 public:
  explicit Deadlines(const asio::any_io_executor& executor) : timer_(executor) {}
  Deadlines(const Deadlines&) = delete;
  Deadlines& operator=(const Deadlines&) = delete;
  ~Deadlines() = default;

  void add(Connection& connection);
  void remove(Connection& connection);

  // A connection whose reading waits for the broker (its message held back) has no wait of
  // its own to hold it: it is kept here meanwhile. release() gives it back (null if not kept).
  void keep(std::shared_ptr<Connection> connection);
  std::shared_ptr<Connection> release(Connection& connection);

 private:
  void tick();
  void start_ticking();

  asio::steady_timer timer_;
  Connection* first_ = nullptr;
  bool ticking_ = false;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> kept_;
};

namespace {

// One MQTT connection, driven by callbacks: an idle connection is this object, its TLS
// connection and a wait for input on its socket, and nothing else (no coroutine frames, no
// buffers, no timer of its own). Each pending wait holds a shared_ptr to it; the last one
// to end frees it, which closes the socket.
//
//   reader     reads what TLS has, feeds the session, then waits for the socket again
//   writer     writes what the session produced (flush), waiting while the socket is full
//   deadlines  no CONNECT within connect_timeout, or no packet within 1.5 × keep-alive, closes
//
// When the session is closed, or the peer went away, the writer writes what is left, then
// the connection ends (finish): the broker learns it, close_notify is sent, and the
// gateway reports the disconnection.
class Connection final : public ClientLink, public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::unique_ptr<net::TlsConnection> tls, Broker& broker, DeviceInfo device, const GatewayOptions& options,
             const GatewayEvents& events, const mqtt::SessionLimits& limits, std::shared_ptr<Deadlines> deadlines)
      : tls_(std::move(tls)),
        options_(options),
        events_(events),
        host_(broker.open_session(std::move(device), *this, tls_->peer().endpoint())),
        session_(*host_, limits),
        deadlines_(std::move(deadlines)),
        started_(steady::now()),
        last_activity_(started_) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection() override { deadlines_->remove(*this); }

  void start() {
    guarded([&] {
      if (events_.connected) events_.connected(tls_->peer(), host_->device());
      deadlines_->add(*this);
      read();
    });
  }

  // For Deadlines: whether the deadline has passed, and acting on it.
  [[nodiscard]] bool due(steady::time_point now) const { return !finished_ && now >= deadline(); }
  void expire() {
    guarded([&] { on_deadline(); });
  }

  // Deadlines' links (a connection is in one list at most).
  Connection* previous = nullptr;
  Connection* next = nullptr;
  bool listed = false;

  void deliver(mqtt::Publish message, mqtt::Delivery how) override {
    session_.deliver(std::move(message), how);
    if (session_.has_output() || session_.closed()) wake();
  }
  void disconnect(mqtt::ReasonCode reason, std::string detail) override {
    session_.close(reason, std::move(detail));
    wake();
    deadlines_->release(*this);  // the flush wake() posted holds the connection until it ends
  }
  void publish_done(std::uint16_t packet_id, mqtt::ReasonCode reason) override {
    session_.complete_publish(packet_id, reason);
    wake();
  }
  void resume() override {
    const auto self = shared_from_this();
    const bool paused = deadlines_->release(*this) != nullptr;
    guarded([&] {
      session_.resume();
      if (session_.has_output() || session_.closed()) wake();
      if (!paused) return;  // held, but its read() has not come round to pausing: it reads on then
      last_activity_ = steady::now();
      read();
    });
  }

 private:
  using error_code = boost::system::error_code;

  net::TlsStream& stream() { return tls_->stream(); }

  // The broker calls in while the session may be in the middle of receive(): writing waits
  // for the next turn of the io_context, once per turn however many calls came.
  void wake() {
    if (flush_posted_ || finished_) return;
    flush_posted_ = true;
    asio::post(stream().get_executor(), [self = shared_from_this()] {
      self->flush_posted_ = false;
      self->guarded([&] { self->flush(); });
    });
  }

  // Every callback's work: an exception ends this connection only, reported as a handler's.
  template <class Work>
  void guarded(Work&& work) {
    if (finished_) return;
    try {
      work();
    } catch (const std::exception& e) {
      abandon(e.what());
    }
  }

  [[nodiscard]] steady::time_point deadline() const {
    // Closed: what is left is being written (given kCloseGrace without progress), or the
    // connection ends at the next check, should nothing else end it first.
    if (session_.closed()) return writing_ ? waiting_to_write_since_ + kCloseGrace : started_;
    if (!session_.connected()) return started_ + options_.connect_timeout;
    if (session_.held()) return steady::time_point::max();  // it is we who do not read
    const auto keep_alive = session_.keep_alive();
    if (keep_alive.count() == 0) return steady::time_point::max();
    return last_activity_ + std::chrono::milliseconds(keep_alive) * 3 / 2;  // MQTT 5.0 §3.1.2.10: one and a half times
  }

  void on_deadline() {
    if (session_.closed()) {
      if (!writing_) return flush();  // writes what is left, then finishes
      write_failed_ = true;           // the peer has taken nothing of it for kCloseGrace
      return finish();
    }
    if (session_.connected()) {
      session_.close(mqtt::ReasonCode::keep_alive_timeout, "no packet within 1.5 x keep-alive");
    } else {
      session_.close(mqtt::ReasonCode::maximum_connect_time, "no CONNECT in time");
    }
    flush();
  }

  void read() {
    error_code ec;
    for (unsigned reads = 0; reads < kReadsBeforeYielding; ++reads) {
      if (session_.closed()) return stop_reading();
      if (session_.held()) {
        // Nothing more is read until the broker has room (resume).
        deadlines_->keep(shared_from_this());
        return;
      }
      const std::size_t n = stream().read_now(read_buffer, ec);
      if (ec == asio::error::would_block) {
        // Idle: no buffer held while waiting.
        stream().async_wait([self = shared_from_this()](const error_code& e) {
          if (e) return self->guarded([&] { self->stop_reading(); });
          self->guarded([&] { self->read(); });
        });
        return;
      }
      if (ec) return stop_reading();
      last_activity_ = steady::now();
      session_.receive(ByteView(read_buffer.data(), n));
      if (session_.has_output()) wake();  // written once this turn's reads are done
    }
    // A client that keeps its socket full must not keep the thread: after a few reads in a
    // row, the other connections (and this one's writes) get their turn first.
    asio::post(stream().get_executor(), [self = shared_from_this()] { self->guarded([&] { self->read(); }); });
  }

  void stop_reading() {
    if (reader_done_) return;
    reader_done_ = true;
    if (!session_.closed()) session_.connection_lost();
    flush();
  }

  // Writes what the session has produced, from where the last write stopped; ends the
  // connection once everything is written and nothing more will come.
  void flush() {
    if (writing_ || finished_) return;
    error_code ec;
    for (;;) {
      if (written_ == out_.size()) {
        out_ = Bytes{};  // an idle connection keeps no output buffer
        written_ = 0;
        if (!session_.has_output()) break;
        out_ = session_.take_output();
      }
      const std::size_t n = stream().write_now(std::span(out_).subspan(written_), ec);
      if (ec == asio::error::would_block) {
        writing_ = true;
        waiting_to_write_since_ = steady::now();
        stream().async_wait_write([self = shared_from_this()](const error_code& e) {
          self->writing_ = false;
          if (e) {
            self->write_failed_ = true;
            return self->guarded([&] { self->finish(); });
          }
          self->guarded([&] { self->flush(); });
        });
        return;
      }
      if (ec) {
        write_failed_ = true;
        return finish();
      }
      written_ += n;
    }
    if (session_.closed() || reader_done_) finish();
  }

  // Our last packets are written (or cannot be): the broker learns the connection ended,
  // the peer gets close_notify (a peer that does not answer it gets one second), and the
  // gateway reports the disconnection. The socket closes when the last wait has ended.
  void finish() {
    if (finished_) return;
    finished_ = true;
    deadlines_->remove(*this);
    error_code ignored;
    stream().socket().cancel(ignored);  // ends the reader's wait
    if (!session_.closed()) session_.connection_lost();
    ended_ = true;
    host_->ended(session_);
    asio::co_spawn(stream().get_executor(), close(shared_from_this()), asio::detached);
    deadlines_->release(*this);  // close() holds it now
  }

  static asio::awaitable<void> close(std::shared_ptr<Connection> self) {
    if (!self->write_failed_) {
      net::SocketDeadline limit(self->stream().socket(), std::chrono::seconds(1));
      error_code ec;
      co_await self->stream().shutdown(ec);
      limit.disarm();
    }
    if (self->events_.disconnected) {
      self->events_.disconnected(self->tls_->peer(), self->host_->device(), self->session_.close_reason(),
                                 self->session_.close_detail());
    }
  }

  // After an exception: no more reading or writing, the socket closes now; the failure, the
  // end of the session and the disconnection are reported as far as they can be.
  void abandon(const char* what) {
    // Every caller of guarded() holds the connection too: this is not the last reference.
    deadlines_->release(*this);
    finished_ = true;
    deadlines_->remove(*this);
    error_code ignored;
    stream().socket().close(ignored);
    try {
      tls_->report_failure(what);
      if (!ended_) {  // not when ending it is what failed
        ended_ = true;
        if (!session_.closed()) session_.connection_lost();
        host_->ended(session_);
      }
      if (events_.disconnected) {
        events_.disconnected(tls_->peer(), host_->device(), session_.close_reason(), session_.close_detail());
      }
    } catch (const std::exception&) {
      // This connection is gone either way; the others go on.
    }
  }

  std::unique_ptr<net::TlsConnection> tls_;
  const GatewayOptions& options_;
  const GatewayEvents& events_;
  std::unique_ptr<DeviceSession> host_;
  mqtt::Session session_;
  std::shared_ptr<Deadlines> deadlines_;
  steady::time_point started_;
  steady::time_point last_activity_;
  steady::time_point waiting_to_write_since_;
  Bytes out_;
  std::size_t written_ = 0;
  bool writing_ = false;
  bool flush_posted_ = false;
  bool reader_done_ = false;
  bool write_failed_ = false;
  bool finished_ = false;
  bool ended_ = false;  // the broker was told (DeviceSession::ended)
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

asio::awaitable<void> refuse_connect(std::unique_ptr<net::TlsConnection> tls, mqtt::ReasonCode reason,
                                     std::chrono::seconds timeout) {
  net::TlsStream& stream = tls->stream();
  RefusingHost host(reason);
  mqtt::SessionLimits limits;
  limits.maximum_packet_bytes = 4096;  // a CONNECT needs no more
  mqtt::Session session(host, limits);
  net::SocketDeadline deadline(stream.socket(), timeout);
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
}

}  // namespace

void Deadlines::add(Connection& connection) {
  if (connection.listed) return;
  connection.listed = true;
  connection.previous = nullptr;
  connection.next = first_;
  if (first_ != nullptr) first_->previous = &connection;
  first_ = &connection;
  start_ticking();
}

void Deadlines::remove(Connection& connection) {
  if (!connection.listed) return;
  connection.listed = false;
  (connection.previous != nullptr ? connection.previous->next : first_) = connection.next;
  if (connection.next != nullptr) connection.next->previous = connection.previous;
  connection.previous = nullptr;
  connection.next = nullptr;
}

void Deadlines::keep(std::shared_ptr<Connection> connection) {
  Connection* key = connection.get();
  kept_.insert_or_assign(key, std::move(connection));
}

std::shared_ptr<Connection> Deadlines::release(Connection& connection) {
  const auto it = kept_.find(&connection);
  if (it == kept_.end()) return nullptr;
  auto kept = std::move(it->second);
  kept_.erase(it);
  return kept;
}

void Deadlines::start_ticking() {
  if (ticking_ || first_ == nullptr) return;
  ticking_ = true;
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    self->ticking_ = false;
    if (!ec) self->tick();
  });
}

void Deadlines::tick() {
  // What is due is collected first: acting on a connection may end it, which takes it out
  // of the list being walked.
  const auto now = steady::now();
  std::vector<std::shared_ptr<Connection>> due;
  for (Connection* c = first_; c != nullptr; c = c->next) {
    if (c->due(now)) due.push_back(c->shared_from_this());
  }
  for (const auto& c : due) c->expire();
  start_ticking();
}

Gateway::Gateway(Broker& broker, GatewayOptions options, GatewayEvents events)
    : broker_(broker), options_(options), events_(std::move(events)) {}

void Gateway::adopt(std::unique_ptr<net::TlsConnection> tls) {
  auto device = broker_.authenticate(tls->stream().peer_certificate_der(), tls->peer().endpoint());
  if (!device) {
    if (events_.refused) events_.refused(tls->peer(), device.error().message);
    // The client learns "not authorized" (or "banned"), never which check failed.
    const auto reason =
        device.error().is(Errc::limit_exceeded) ? mqtt::ReasonCode::banned : mqtt::ReasonCode::not_authorized;
    const auto executor = tls->stream().get_executor();
    asio::co_spawn(executor, refuse_connect(std::move(tls), reason, options_.connect_timeout), asio::detached);
    return;
  }
  auto deadlines = deadlines_.lock();
  if (!deadlines) {
    deadlines = std::make_shared<Deadlines>(tls->stream().get_executor());
    deadlines_ = deadlines;
  }
  std::make_shared<Connection>(std::move(tls), broker_, std::move(*device), options_, events_, broker_.session_limits(),
                               std::move(deadlines))
      ->start();
}

}  // namespace torii::broker

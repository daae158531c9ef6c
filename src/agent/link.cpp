#include "agent/link.h"

#include <algorithm>
#include <deque>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "agent/delivery.h"
#include "agent/tls_client.h"
#include "mqtt/codec.h"
#include "net/socket_deadline.h"
#include "policy/rate_limit.h"

namespace torii::agent {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
using TlsSocket = asio::ssl::stream<tcp::socket>;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMaxIncomingPacket = 256u << 10;
constexpr auto kStableConnection = std::chrono::minutes(1);
constexpr auto kProtocolVersion = mqtt::ProtocolVersion::v5;

}  // namespace

struct Link::State {
  State(asio::any_io_executor ex, LinkSettings s, MessageSource& src, Random& rnd)
      : executor(std::move(ex)),
        settings(std::move(s)),
        source(src),
        random(rnd),
        delivery(settings.window),
        pace(settings.messages_per_second, settings.message_burst),
        wake(executor),
        pause(executor) {}

  asio::any_io_executor executor;
  LinkSettings settings;
  MessageSource& source;
  Random& random;
  Delivery delivery;
  policy::TokenBucket pace;
  LinkStats stats;
  asio::steady_timer wake;   // the writer's wait
  asio::steady_timer pause;  // between connection attempts
  bool stopping = false;
  bool reconnecting = false;  // reconnect(): the current connection ends, the next starts at once
  bool connected = false;
  tcp::socket* socket = nullptr;  // of the connection being made or in use
  std::deque<std::pair<std::string, std::string>> transient;
  std::function<void(const mqtt::Publish&)> on_message;
  std::vector<std::string> filters;
};

// One connection, from TCP connect to its end.
class Link::Session {
 public:
  Session(State& state, TlsSocket& stream) : s_(state), stream_(stream), in_(16u << 10) {}

  // The reason the connection could not be made or ended ("" when stopped).
  asio::awaitable<std::string> run() {
    if (auto problem = co_await open(); !problem.empty()) co_return problem;
    s_.connected = true;
    ++s_.stats.connections;
    spdlog::info("agent {}: connected to {}:{}", s_.settings.client_id, s_.settings.host, s_.settings.port);

    bool reader_done = false;
    auto reader_finished = [this, &reader_done](const std::exception_ptr&) {
      reader_done = true;
      s_.wake.cancel();
    };
    asio::co_spawn(s_.executor, read_loop(), reader_finished);
    co_await write_loop();
    close_socket();
    while (!reader_done) {
      s_.wake.expires_at(steady::time_point::max());
      error_code ignored;
      co_await s_.wake.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    s_.connected = false;
    s_.delivery.connection_lost();
    s_.transient.clear();
    if (s_.reconnecting && lost_.empty()) lost_ = "reconnecting";
    co_return s_.stopping ? std::string() : lost_;
  }

 private:
  asio::awaitable<std::string> open() {
    const auto& cfg = s_.settings;
    auto& socket = stream_.next_layer();
    error_code ec;
    tcp::resolver resolver(s_.executor);
    net::Deadline deadline(s_.executor, cfg.connect_timeout, [this, &resolver] {
      resolver.cancel();
      close_socket();
    });
    const auto endpoints = co_await resolver.async_resolve(cfg.host, std::to_string(cfg.port),
                                                           asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return fmt::format("cannot resolve {}: {}", cfg.host, deadline.disarm() ? "timed out" : ec.message());
    if (s_.stopping) co_return std::string();
    co_await asio::async_connect(socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      co_return fmt::format("cannot connect to {}:{}: {}", cfg.host, cfg.port,
                            deadline.disarm() ? "timed out" : ec.message());
    }
    if (s_.stopping) co_return std::string();
    socket.set_option(tcp::no_delay(true), ec);
    if (!expect_server_name(stream_.native_handle(), cfg.host)) co_return "cannot set the server name to verify";
    co_await stream_.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return "TLS handshake: " + (deadline.disarm() ? std::string("timed out") : tls_error_text(ec));
    if (s_.stopping) co_return std::string();

    mqtt::Connect connect;
    connect.version = kProtocolVersion;
    connect.clean_start = true;
    connect.keep_alive_seconds = static_cast<std::uint16_t>(std::min<std::int64_t>(cfg.keep_alive.count(), 0xFFFF));
    connect.client_id = cfg.client_id;
    out_.clear();
    (void)mqtt::encode(connect, kProtocolVersion, out_);
    co_await asio::async_write(stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return "CONNECT: " + (deadline.disarm() ? std::string("timed out") : tls_error_text(ec));
    auto connack = co_await next_packet();
    if (!connack) co_return "CONNACK: " + (deadline.disarm() ? std::string("timed out") : lost_);
    const auto* ack = std::get_if<mqtt::Connack>(&*connack);
    if (ack == nullptr) co_return "the gateway sent something other than CONNACK";
    if (ack->reason != mqtt::ReasonCode::success) {
      co_return fmt::format("the gateway refused the connection: {}", mqtt::to_string(ack->reason));
    }
    keep_alive_ = cfg.keep_alive;
    if (ack->properties.server_keep_alive) keep_alive_ = std::chrono::seconds(*ack->properties.server_keep_alive);
    s_.delivery.connected(ack->properties.receive_maximum);

    if (!s_.filters.empty()) {
      mqtt::Subscribe subscribe;
      subscribe.packet_id = 1;
      for (const auto& filter : s_.filters) subscribe.subscriptions.push_back({filter, 1, false, false, 0});
      out_.clear();
      (void)mqtt::encode(subscribe, kProtocolVersion, out_);
      co_await asio::async_write(stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return "SUBSCRIBE: " + tls_error_text(ec);
      auto suback = co_await next_packet();
      if (!suback) co_return "SUBACK: " + (deadline.disarm() ? std::string("timed out") : lost_);
      const auto* sub = std::get_if<mqtt::Suback>(&*suback);
      if (sub == nullptr) co_return "the gateway sent something other than SUBACK";
      for (std::size_t i = 0; i < sub->reasons.size() && i < s_.filters.size(); ++i) {
        if (mqtt::is_error(sub->reasons[i])) {
          spdlog::warn("agent {}: subscribing to {} refused: {}", cfg.client_id, s_.filters[i],
                       mqtt::to_string(sub->reasons[i]));
        }
      }
    }
    if (deadline.disarm()) co_return "connection setup timed out";
    last_write_ = last_read_ = steady::now();
    co_return std::string();
  }

  asio::awaitable<void> read_loop() {
    for (;;) {
      auto packet = co_await next_packet();
      if (!packet) break;
      last_read_ = steady::now();
      try {
        handle(*packet);
      } catch (const std::exception& e) {
        lost_ = std::string("handling a packet from the gateway: ") + e.what();
      }
      if (!lost_.empty()) break;
    }
    if (lost_.empty()) lost_ = "connection closed";
    close_socket();
  }

  void handle(const mqtt::Packet& packet) {
    if (const auto* ack = std::get_if<mqtt::Puback>(&packet)) {
      on_puback(*ack);
    } else if (std::holds_alternative<mqtt::Pingresp>(packet)) {
      ping_outstanding_ = false;
    } else if (const auto* publish = std::get_if<mqtt::Publish>(&packet)) {
      if (publish->qos == 1) pending_acks_.push_back(publish->packet_id);
      if (publish->qos == 2) {
        lost_ = "the gateway sent a QoS 2 message, which the agent does not subscribe to";
        return;
      }
      if (s_.on_message) s_.on_message(*publish);
      s_.wake.cancel();
    } else if (const auto* disconnect = std::get_if<mqtt::Disconnect>(&packet)) {
      lost_ = fmt::format("the gateway disconnected: {}", mqtt::to_string(disconnect->reason));
    } else if (!std::holds_alternative<mqtt::Suback>(packet)) {
      lost_ = fmt::format("unexpected {} from the gateway", mqtt::to_string(mqtt::type_of(packet)));
    }
  }

  void on_puback(const mqtt::Puback& ack) {
    const auto result = s_.delivery.acknowledged(ack.packet_id, ack.reason);
    if (!result) return;
    switch (result->outcome) {
      case Delivery::Outcome::delivered:
        ++s_.stats.delivered;
        s_.source.delivered(result->seq);
        break;
      case Delivery::Outcome::refused:
        ++s_.stats.refused;
        s_.source.refused(result->seq, ack.reason);
        break;
      case Delivery::Outcome::retry_later:
        ++s_.stats.retried;
        paused_until_ = steady::now() + s_.settings.retry_pause;
        spdlog::info("agent {}: the gateway asked to wait ({}); sending again in {} ms", s_.settings.client_id,
                     mqtt::to_string(ack.reason), s_.settings.retry_pause.count());
        break;
    }
    s_.wake.cancel();
  }

  asio::awaitable<void> write_loop() {
    error_code ec;
    while (lost_.empty()) {
      out_.clear();
      if (s_.stopping || s_.reconnecting) {
        for (const auto id : pending_acks_) (void)mqtt::encode(mqtt::Puback{id, {}, {}}, kProtocolVersion, out_);
        pending_acks_.clear();
        (void)mqtt::encode(mqtt::Disconnect{}, kProtocolVersion, out_);
        co_await asio::async_write(stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
        break;
      }
      const auto now = steady::now();
      for (const auto id : pending_acks_) (void)mqtt::encode(mqtt::Puback{id, {}, {}}, kProtocolVersion, out_);
      pending_acks_.clear();
      while (!s_.transient.empty()) {
        auto& [topic, payload] = s_.transient.front();
        mqtt::Publish publish;
        publish.topic = std::move(topic);
        publish.payload.assign(payload.begin(), payload.end());
        (void)mqtt::encode(publish, kProtocolVersion, out_);
        s_.transient.pop_front();
      }
      if (now >= paused_until_) add_publishes(now);
      // Keep-alive both ways: a PINGREQ when nothing was written for the keep-alive (so the
      // gateway hears from us), and also when nothing was read for it (so a gateway gone
      // silent is noticed even while messages are written into a dead connection).
      if (ping_outstanding_) {
        if (now - ping_sent_ >= keep_alive_) {
          lost_ = "the gateway did not answer PINGREQ within the keep-alive";
          break;
        }
      } else if ((out_.empty() && now - last_write_ >= keep_alive_) || now - last_read_ >= keep_alive_) {
        (void)mqtt::encode(mqtt::Pingreq{}, kProtocolVersion, out_);
        ping_outstanding_ = true;
        ping_sent_ = now;
      }
      if (!out_.empty()) {
        co_await asio::async_write(stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          if (lost_.empty()) lost_ = "write: " + tls_error_text(ec);
          break;
        }
        last_write_ = now;
        continue;
      }
      auto at = ping_outstanding_ ? ping_sent_ + keep_alive_ : std::min(last_write_, last_read_) + keep_alive_;
      if (paused_until_ > now) at = std::min(at, paused_until_);
      if (paced_ && now >= paused_until_) {
        at = std::min(at, now + std::max(s_.pace.time_to_available(1, now), steady::duration(1ms)));
      }
      s_.wake.expires_at(at);
      co_await s_.wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  void add_publishes(steady::time_point now) {
    paced_ = false;
    if (s_.delivery.in_flight() >= s_.delivery.window()) return;
    auto waiting = s_.source.waiting(s_.delivery.in_flight() + s_.delivery.window());
    std::vector<std::uint64_t> seqs;
    seqs.reserve(waiting.size());
    for (const auto& m : waiting) {
      // Only messages not already in flight cost a token: they are the ones take() sends.
      if (seqs.size() >= s_.delivery.in_flight() + static_cast<std::size_t>(s_.pace.available(now))) break;
      seqs.push_back(m.seq);
    }
    paced_ = seqs.size() < waiting.size();
    for (const auto& send : s_.delivery.take(seqs)) {
      (void)s_.pace.try_take(1, now);
      const auto it = std::find_if(waiting.begin(), waiting.end(), [&](const auto& m) { return m.seq == send.seq; });
      mqtt::Publish publish;
      publish.qos = 1;
      publish.topic = it->topic;
      publish.packet_id = send.packet_id;
      const auto bytes = as_bytes(it->payload);
      publish.payload.assign(bytes.begin(), bytes.end());
      (void)mqtt::encode(publish, kProtocolVersion, out_);
      ++s_.stats.published;
    }
  }

  // The next packet from the gateway; nullopt with lost_ set when the connection ends.
  asio::awaitable<std::optional<mqtt::Packet>> next_packet() {
    for (;;) {
      const ByteView available(in_.data() + begin_, end_ - begin_);
      auto f = mqtt::frame(available, kMaxIncomingPacket);
      if (!f) {
        lost_ = "protocol error: " + f.error().message;
        co_return std::nullopt;
      }
      if (*f && (*f)->total_bytes() <= available.size()) {
        const auto size = (*f)->total_bytes();
        auto packet = mqtt::decode(available.first(size), kProtocolVersion);
        begin_ += size;
        if (!packet) {
          lost_ = "protocol error: " + packet.error().message;
          co_return std::nullopt;
        }
        co_return std::move(*packet);
      }
      if (begin_ > 0) {
        std::copy(in_.begin() + static_cast<std::ptrdiff_t>(begin_), in_.begin() + static_cast<std::ptrdiff_t>(end_),
                  in_.begin());
        end_ -= begin_;
        begin_ = 0;
      }
      if (end_ == in_.size()) in_.resize(in_.size() * 2);  // bounded by kMaxIncomingPacket
      error_code ec;
      const auto n = co_await stream_.async_read_some(asio::buffer(in_.data() + end_, in_.size() - end_),
                                                      asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (lost_.empty()) lost_ = ec == asio::error::eof ? "closed by the gateway" : "read: " + tls_error_text(ec);
        co_return std::nullopt;
      }
      end_ += n;
    }
  }

  void close_socket() {
    error_code ignored;
    stream_.next_layer().close(ignored);
  }

  State& s_;
  TlsSocket& stream_;
  Bytes in_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  Bytes out_;
  std::vector<std::uint16_t> pending_acks_;
  std::string lost_;
  std::chrono::seconds keep_alive_{60};
  steady::time_point last_write_{};
  steady::time_point last_read_{};
  steady::time_point ping_sent_{};
  steady::time_point paused_until_{};
  bool ping_outstanding_ = false;
  bool paced_ = false;  // messages wait for the pace, not for acknowledgements
};

Link::Link(asio::any_io_executor executor, LinkSettings settings, MessageSource& source, Random& random)
    : state_(std::make_unique<State>(std::move(executor), std::move(settings), source, random)) {}

Link::~Link() = default;

asio::awaitable<void> Link::run() {
  auto& s = *state_;
  auto backoff = s.settings.backoff_first;
  while (!s.stopping) {
    const auto started = steady::now();
    const auto connections_before = s.stats.connections;
    std::string problem;
    auto tls = make_client_tls_context(s.settings.ca_bundle, ClientCredentials{s.settings.certificate, s.settings.key});
    if (!tls) {
      problem = tls.error().message;
    } else {
      TlsSocket stream(s.executor, **tls);
      s.socket = &stream.next_layer();
      Session session(s, stream);
      problem = co_await session.run();
      s.socket = nullptr;
    }
    if (s.stopping) break;
    if (s.reconnecting) {
      s.reconnecting = false;
      spdlog::info("agent {}: reconnecting with the certificate in {}", s.settings.client_id,
                   s.settings.certificate.string());
      continue;
    }
    if (s.stats.connections == connections_before) ++s.stats.attempts_failed;
    s.stats.last_problem = problem;
    if (s.stats.connections > connections_before && steady::now() - started >= kStableConnection) {
      backoff = s.settings.backoff_first;
    }
    // Between half and all of the current backoff: spread, never immediate.
    std::uint64_t draw = 0;
    s.random.fill({reinterpret_cast<std::uint8_t*>(&draw), sizeof draw});
    const auto half = backoff / 2;
    const auto delay = half + std::chrono::milliseconds(draw % static_cast<std::uint64_t>(half.count() + 1));
    spdlog::warn("agent {}: {}; trying again in {} ms", s.settings.client_id, problem, delay.count());
    s.pause.expires_after(delay);
    error_code ignored;
    co_await s.pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    backoff = std::min(backoff * 2, s.settings.backoff_max);
  }
}

void Link::stop() {
  auto& s = *state_;
  s.stopping = true;
  s.pause.cancel();
  s.wake.cancel();
  if (s.socket != nullptr && !s.connected) {
    error_code ignored;
    s.socket->close(ignored);  // a connection being made ends at once
  }
}

void Link::wake() { state_->wake.cancel(); }

void Link::reconnect() {
  auto& s = *state_;
  if (!s.connected) return;  // the next connection reads the files anyway
  s.reconnecting = true;
  s.wake.cancel();
}

bool Link::send_transient(std::string topic, std::string payload) {
  if (!state_->connected) return false;
  state_->transient.emplace_back(std::move(topic), std::move(payload));
  state_->wake.cancel();
  return true;
}

void Link::on_message(std::function<void(const mqtt::Publish&)> handler) { state_->on_message = std::move(handler); }

void Link::subscribe_at_connect(std::string filter) { state_->filters.push_back(std::move(filter)); }

bool Link::connected() const { return state_->connected && !state_->reconnecting; }

const LinkStats& Link::stats() const { return state_->stats; }

}  // namespace torii::agent

// The network side of `torii bench` (bench.h): worker threads, each with one io_context, run
// the connections as coroutines; the calling thread is the controller that opens connections
// at the asked rate, moves every connection through the phases and samples the counters.
//
//   connecting ─▶ running (warm-up, then the measurement window) ─▶ draining ─▶ closing
//
// Threading: a Client lives on its worker's thread only; the controller talks to it by
// posting to that io_context. Counters are per worker, written by its thread only (relaxed
// atomics, so the controller may read them while the run goes on); histograms are per worker
// and read after the threads are joined.
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <csignal>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "bench/bench.h"
#include "bench/message_template.h"
#include "mqtt/codec.h"
#include "net/socket_deadline.h"

namespace torii::bench {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using boost::system::error_code;

// Client-side TLS 1.3 preference: AES-128-GCM first, as torii's server preference, so that a
// broker that follows the client's order (Mosquitto) negotiates the same suite.
constexpr const char* kCiphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr std::size_t kMaxBatch = 64;  // messages per write when nothing else bounds it
constexpr std::size_t kMaxIncomingPacket = std::size_t{16} * 1024 * 1024;
constexpr auto kMinPacingInterval = std::chrono::milliseconds(5);
constexpr std::size_t kFiltersPerSubscribe = 64;
constexpr int kMaxLoggedErrors = 10;

enum class Phase : int { connecting = 0, running = 1, draining = 2, closing = 3 };
enum class Role { publisher, idle, subscriber };

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) { g_interrupted = 1; }

std::uint64_t now_ts(TimestampUnit unit) {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  if (unit == TimestampUnit::ns) {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count());
  }
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count());
}

double seconds_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string tls_error_text(const error_code& ec) {
  if (ec.category() == asio::error::get_ssl_category()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buffer.data(), buffer.size());
    return buffer.data();
  }
  return ec.message();
}

// Errors worth showing while the run goes on; the first is also kept for the result.
class ErrorLog {
 public:
  explicit ErrorLog(std::ostream& out) : out_(out) {}
  void report(const std::string& what) {
    const std::lock_guard lock(mutex_);
    if (first_.empty()) first_ = what;
    if (++count_ <= kMaxLoggedErrors) {
      std::string line = "torii bench: " + what + "\n";
      if (count_ == kMaxLoggedErrors) line += "torii bench: (further errors are counted, not shown)\n";
      out_ << line << std::flush;
    }
  }
  std::string first() {
    const std::lock_guard lock(mutex_);
    return first_;
  }

 private:
  std::ostream& out_;
  std::mutex mutex_;
  std::string first_;
  int count_ = 0;
};

// What a worker counts. One writer (the worker's thread); relaxed reads by the controller.
struct alignas(64) Counters {
  std::atomic<std::uint64_t> connected{0};
  std::atomic<std::uint64_t> connect_failures{0};
  std::atomic<std::uint64_t> connack_refused{0};
  std::atomic<std::int64_t> open{0};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> server_disconnects{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> unparsed{0};
  std::atomic<std::uint64_t> count_settled{0};  // reached --count, or lost before
  std::atomic<std::uint64_t> drain_settled{0};  // drained, or lost before

  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

struct Totals {
  std::uint64_t connected = 0, connect_failures = 0, connack_refused = 0, sent = 0, acked = 0, refused = 0, errors = 0,
                server_disconnects = 0, received = 0, unparsed = 0, count_settled = 0, drain_settled = 0;
  std::int64_t open = 0;
};

class ClientBase {
 public:
  virtual ~ClientBase() = default;
  virtual void wake() = 0;
};

struct Worker {
  Counters counters;
  LatencyHistogram ack_latency;  // worker thread only
  LatencyHistogram delivery_latency;
  std::array<std::uint64_t, 256> refused_by_reason{};
  std::string tls_version;  // of its first handshake
  std::string cipher;
  std::vector<std::weak_ptr<ClientBase>> clients;
  std::thread thread;
  // Last, so that it is destroyed first: the coroutine frames it destroys reference the
  // members above.
  asio::io_context io{1};
};

// Everything the connections share; read-only once the run starts, except the atomics.
struct Shared {
  const BenchOptions& o;
  tcp::endpoint server;
  std::vector<asio::ip::address> sources;
  std::shared_ptr<asio::ssl::context> tls;  // null: --insecure-plaintext
  MessageTemplate topic;
  MessageTemplate payload;
  std::vector<std::string> sub_filters;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::v5;
  double rate_per_connection = 0;  // 0: unlimited
  ErrorLog& errors;
  std::atomic<int> phase{static_cast<int>(Phase::connecting)};
  std::atomic<bool> measuring{false};
  steady::time_point run_start;  // written before phase becomes running (release)
  std::mutex fatal_mutex;
  std::string fatal;  // a failure that ends the run (refused subscription)

  Shared(const BenchOptions& options, ErrorLog& log) : o(options), errors(log) {}
  [[nodiscard]] Phase current() const { return static_cast<Phase>(phase.load(std::memory_order_acquire)); }
  void set_fatal(std::string what) {
    const std::lock_guard lock(fatal_mutex);
    if (fatal.empty()) fatal = std::move(what);
  }
};

using net::SocketDeadline;

template <class Stream>
constexpr bool kIsTls = !std::is_same_v<Stream, tcp::socket>;

// One MQTT connection: a reader coroutine (run) and a writer coroutine (write_loop), both on
// the worker's thread. The writer sleeps on wake_ until there is something to send: a
// window slot freed by a PUBACK, the next message due by the rate, a keep-alive ping, or a
// phase change from the controller.
template <class Stream>
class Client final : public ClientBase, public std::enable_shared_from_this<Client<Stream>> {
 public:
  Client(Worker& worker, Shared& shared, Role role, std::uint64_t index, std::string client_id, std::string device)
      : worker_(worker),
        shared_(shared),
        o_(shared.o),
        role_(role),
        index_(index),
        client_id_(std::move(client_id)),
        device_(std::move(device)),
        wake_(worker.io),
        keep_alive_(shared.o.keep_alive_s) {
    if constexpr (kIsTls<Stream>) {
      stream_.emplace(tcp::socket(worker.io), *shared.tls);
    } else {
      stream_.emplace(worker.io);
    }
    in_.resize(role == Role::subscriber ? 64 * 1024 : role == Role::idle ? 512 : 4096);
    if (role_ == Role::publisher && o_.qos == 1) window_ = o_.inflight;
  }

  void wake() override { wake_.cancel(); }

  asio::awaitable<void> run(std::shared_ptr<Client> self) {
    try {
      co_await serve(self);
    } catch (const std::exception& e) {
      if (lost_reason_.empty()) lost_reason_ = std::string("unexpected error: ") + e.what();
      if (!connected_) Counters::add(worker_.counters.connect_failures);
      finish();
    }
  }

 private:
  tcp::socket& socket() {
    if constexpr (kIsTls<Stream>) {
      return stream_->next_layer();
    } else {
      return *stream_;
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<Client> self) {
    const bool opened = co_await open();
    if (!opened) {
      Counters::add(worker_.counters.connect_failures);
      finished_ = true;
      error_code ignored;
      socket().close(ignored);
      co_return;
    }
    connected_ = true;
    Counters::add(worker_.counters.connected);
    worker_.counters.open.fetch_add(1, std::memory_order_relaxed);
    if (role_ != Role::publisher) settle_count();
    asio::co_spawn(worker_.io, write_loop(self), asio::detached);
    co_await read_loop();
    finish();
  }

  // The connection has ended (once): closes it, counts it, and ends the writer.
  void finish() {
    if (finished_) return;
    finished_ = true;
    closed_ = true;
    error_code ignored;
    socket().close(ignored);  // ends a write the broker no longer reads
    if (!connected_) return;
    worker_.counters.open.fetch_sub(1, std::memory_order_relaxed);
    if (!closed_by_us_ && shared_.current() != Phase::closing) {
      Counters::add(worker_.counters.errors);
      shared_.errors.report(fmt::format("{}: connection lost: {}", client_id_, lost_reason_));
    }
    settle_count();
    settle_drain();
    wake();
  }

  // TCP connect (from a source address), TLS handshake, CONNECT/CONNACK and, for the
  // subscriber, SUBSCRIBE/SUBACK, all under one deadline.
  asio::awaitable<bool> open() {
    auto& sock = socket();
    error_code ec;
    const auto failed = [&](const std::string& what) {
      shared_.errors.report(fmt::format("{}: {}", client_id_, what));
      return false;
    };
    sock.open(shared_.server.protocol(), ec);
    if (ec) co_return failed("cannot open a socket: " + ec.message());
    if (!shared_.sources.empty()) {
      // Defers the choice of the local port to connect(), so that each source address has its
      // own port range towards the server (Linux IP_BIND_ADDRESS_NO_PORT).
      const int one = 1;
      ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      const auto& source = shared_.sources[index_ % shared_.sources.size()];
      sock.bind(tcp::endpoint(source, 0), ec);
      if (ec) co_return failed(fmt::format("cannot bind source address {}: {}", source.to_string(), ec.message()));
    }
    SocketDeadline deadline(
        sock, std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o_.connect_timeout_s)));
    co_await sock.async_connect(shared_.server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed(deadline.disarm() ? "connect: timed out" : "connect: " + ec.message());
    sock.set_option(tcp::no_delay(true), ec);

    if constexpr (kIsTls<Stream>) {
      SSL* ssl = stream_->native_handle();
      const std::string& name = o_.tls_server_name.empty() ? o_.host : o_.tls_server_name;
      error_code parse_ec;
      asio::ip::make_address(name, parse_ec);
      if (!parse_ec) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
      } else {
        SSL_set1_host(ssl, name.c_str());
        SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str()));  // SNI
      }
      if (auto identity = identity_files()) {
        if (SSL_use_certificate_chain_file(ssl, identity->first.c_str()) != 1 ||
            SSL_use_PrivateKey_file(ssl, identity->second.c_str(), SSL_FILETYPE_PEM) != 1) {
          ERR_clear_error();
          co_return failed(fmt::format("cannot load the client identity {} / {}", identity->first, identity->second));
        }
      }
      co_await stream_->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return failed(deadline.disarm() ? "TLS handshake: timed out" : "TLS handshake: " + tls_error_text(ec));
      if (worker_.tls_version.empty()) {
        worker_.tls_version = SSL_get_version(ssl);
        worker_.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
      }
    }

    mqtt::Connect connect;
    connect.version = shared_.version;
    connect.clean_start = true;
    connect.keep_alive_seconds = o_.keep_alive_s;
    connect.client_id = client_id_;
    out_.clear();
    if (!mqtt::encode(connect, shared_.version, out_)) co_return failed("cannot encode CONNECT");
    co_await asio::async_write(*stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed(deadline.disarm() ? "CONNECT: timed out" : "CONNECT: " + ec.message());

    auto connack = co_await read_packet<mqtt::Connack>();
    if (!connack) co_return failed(deadline.disarm() ? "CONNACK: timed out" : "CONNACK: " + lost_reason_);
    if (connack->reason != mqtt::ReasonCode::success) {
      Counters::add(worker_.counters.connack_refused);
      co_return failed(fmt::format("CONNACK refused: {}", mqtt::to_string(connack->reason)));
    }
    if (connack->properties.server_keep_alive)
      keep_alive_ = std::chrono::seconds(*connack->properties.server_keep_alive);
    if (connack->properties.receive_maximum && window_ > *connack->properties.receive_maximum) {
      window_ = *connack->properties.receive_maximum;  // MQTT 5.0 §3.3.4: never more in flight
    }

    if (role_ == Role::subscriber) {
      std::uint16_t packet_id = 0;
      for (std::size_t first = 0; first < shared_.sub_filters.size(); first += kFiltersPerSubscribe) {
        mqtt::Subscribe subscribe;
        subscribe.packet_id = ++packet_id;
        const auto last = std::min(shared_.sub_filters.size(), first + kFiltersPerSubscribe);
        for (std::size_t k = first; k < last; ++k) {
          subscribe.subscriptions.push_back({shared_.sub_filters[k], static_cast<std::uint8_t>(o_.sub_qos)});
        }
        out_.clear();
        if (!mqtt::encode(subscribe, shared_.version, out_)) co_return failed("cannot encode SUBSCRIBE");
        co_await asio::async_write(*stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return failed("SUBSCRIBE: " + ec.message());
        auto suback = co_await read_packet<mqtt::Suback>();
        if (!suback) co_return failed(deadline.disarm() ? "SUBACK: timed out" : "SUBACK: " + lost_reason_);
        for (std::size_t k = 0; k < suback->reasons.size(); ++k) {
          if (mqtt::is_error(suback->reasons[k])) {
            shared_.set_fatal(fmt::format("the broker refused the subscription to '{}' ({})",
                                          shared_.sub_filters[first + k], mqtt::to_string(suback->reasons[k])));
            co_return failed("SUBACK: subscription refused");
          }
        }
      }
    }
    if (deadline.disarm()) co_return failed("connection setup timed out");
    last_write_ = steady::now();
    co_return true;
  }

  // <cert, key> for this connection's own identity; nullopt: the context's (--cert) or none.
  std::optional<std::pair<std::string, std::string>> identity_files() const {
    if (role_ == Role::subscriber && !o_.sub_cert.empty()) return std::pair{o_.sub_cert, o_.sub_key};
    if (o_.cert_dir.empty()) return std::nullopt;
    const std::string base = o_.cert_dir + "/" + device_;
    return std::pair{base + ".crt", base + ".key"};
  }

  // Reads until one packet of type T arrives (others before it are ignored); nullopt with
  // lost_reason_ set on failure.
  template <class T>
  asio::awaitable<std::optional<T>> read_packet() {
    for (;;) {
      auto packet = next_packet();
      if (!packet) {
        if (!lost_reason_.empty()) co_return std::nullopt;
        if (!co_await fill()) co_return std::nullopt;
        continue;
      }
      if (auto* p = std::get_if<T>(&*packet)) co_return std::move(*p);
      if (auto* d = std::get_if<mqtt::Disconnect>(&*packet)) {
        lost_reason_ = fmt::format("DISCONNECT from the broker: {}", mqtt::to_string(d->reason));
        co_return std::nullopt;
      }
    }
  }

  // Reads more bytes into in_; false with lost_reason_ set on failure.
  asio::awaitable<bool> fill() {
    if (in_begin_ > 0 && in_begin_ == in_end_) in_begin_ = in_end_ = 0;
    if (in_end_ == in_.size()) {
      if (in_begin_ > 0) {
        std::copy(in_.begin() + static_cast<std::ptrdiff_t>(in_begin_),
                  in_.begin() + static_cast<std::ptrdiff_t>(in_end_), in_.begin());
        in_end_ -= in_begin_;
        in_begin_ = 0;
      } else {
        in_.resize(in_.size() * 2);  // a packet larger than the buffer (bounded by kMaxIncomingPacket)
      }
    }
    error_code ec;
    const std::size_t n = co_await stream_->async_read_some(asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
                                                            asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (lost_reason_.empty()) lost_reason_ = ec == asio::error::eof ? "closed by the broker" : tls_error_text(ec);
      co_return false;
    }
    in_end_ += n;
    co_return true;
  }

  // The next complete packet in in_, if any; on a protocol error sets lost_reason_.
  std::optional<mqtt::Packet> next_packet() {
    const ByteView available(in_.data() + in_begin_, in_end_ - in_begin_);
    auto f = mqtt::frame(available, kMaxIncomingPacket);
    if (!f) {
      lost_reason_ = "protocol error: " + f.error().message;
      return std::nullopt;
    }
    if (!*f || (*f)->total_bytes() > available.size()) return std::nullopt;
    const auto size = (*f)->total_bytes();
    auto packet = mqtt::decode(available.first(size), shared_.version);
    in_begin_ += size;
    if (!packet) {
      lost_reason_ = "protocol error: " + packet.error().message;
      return std::nullopt;
    }
    return std::move(*packet);
  }

  asio::awaitable<void> read_loop() {
    for (;;) {
      bool woke = false;
      while (auto packet = next_packet()) woke |= handle(*packet);
      if (woke) wake();
      if (!lost_reason_.empty() || closed_) break;
      if (!co_await fill()) break;
    }
  }

  // Returns whether the writer has something new to do.
  bool handle(mqtt::Packet& packet) {
    if (auto* ack = std::get_if<mqtt::Puback>(&packet)) return on_puback(*ack);
    if (auto* publish = std::get_if<mqtt::Publish>(&packet)) return on_publish(*publish);
    if (std::holds_alternative<mqtt::Pingresp>(packet)) {
      ++pongs_;
      if (drain_ping_ != 0 && pongs_ >= drain_ping_) settle_drain();
      return false;
    }
    if (auto* d = std::get_if<mqtt::Disconnect>(&packet)) {
      Counters::add(worker_.counters.server_disconnects);
      lost_reason_ = fmt::format("DISCONNECT from the broker: {}", mqtt::to_string(d->reason));
      return true;
    }
    return false;
  }

  bool on_puback(const mqtt::Puback& ack) {
    const std::size_t slot = ack.packet_id - 1u;
    if (ack.packet_id == 0 || slot >= slots_.size() || !slots_[slot].in_use) return false;  // not ours: ignore
    slots_[slot].in_use = false;
    free_slots_.push_back(static_cast<std::uint16_t>(slot));
    --inflight_;
    if (shared_.measuring.load(std::memory_order_relaxed)) {
      worker_.ack_latency.record(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - slots_[slot].sent_at).count()));
    }
    if (mqtt::is_error(ack.reason)) {
      Counters::add(worker_.counters.refused);
      ++worker_.refused_by_reason[static_cast<std::uint8_t>(ack.reason)];
    } else {
      Counters::add(worker_.counters.acked);
    }
    if (inflight_ == 0) {
      if (o_.count != 0 && seq_ >= o_.count) settle_count();
      if (shared_.current() >= Phase::draining && drain_started_) settle_drain();
    }
    return inflight_ == 0 || window_ - inflight_ >= min_batch();
  }

  // At full speed, a freed window slot is refilled only once a quarter of the window is free:
  // a broker that acknowledges message by message (Mosquitto) would otherwise get one TLS
  // record and one send() per message, and the bench would spend as much CPU as the broker.
  // Paced runs (--rate) send each message when it is due.
  [[nodiscard]] std::size_t min_batch() const {
    return shared_.rate_per_connection > 0 ? 1 : std::max<std::size_t>(1, window_ / 4);
  }

  bool on_publish(const mqtt::Publish& publish) {
    if (role_ != Role::subscriber) return false;
    Counters::add(worker_.counters.received);
    const std::string_view text(reinterpret_cast<const char*>(publish.payload.data()), publish.payload.size());
    if (const auto ts = shared_.payload.extract_ts(text)) {
      if (shared_.measuring.load(std::memory_order_relaxed)) {
        const auto now = now_ts(o_.ts_unit);
        std::uint64_t delta = now > *ts ? now - *ts : 0;
        if (o_.ts_unit == TimestampUnit::us) delta *= 1000;
        worker_.delivery_latency.record(delta);
      }
    } else {
      Counters::add(worker_.counters.unparsed);
    }
    if (publish.qos == 1) {
      pending_acks_.push_back(publish.packet_id);
      return true;
    }
    return false;
  }

  void settle_count() {
    if (count_settled_) return;
    count_settled_ = true;
    Counters::add(worker_.counters.count_settled);
  }
  void settle_drain() {
    if (drain_settled_) return;
    drain_settled_ = true;
    Counters::add(worker_.counters.drain_settled);
  }

  // Appends the messages due now to out_.
  void add_publishes(steady::time_point now) {
    std::size_t allowed = kMaxBatch;
    if (o_.qos == 1) {
      allowed = std::min<std::size_t>(allowed, window_ - inflight_);
      if (inflight_ > 0 && allowed < min_batch()) return;
    }
    if (shared_.rate_per_connection > 0) {
      const auto due = due_count(now);
      allowed = std::min<std::uint64_t>(allowed, due > seq_ ? due - seq_ : 0);
    }
    if (o_.count != 0) allowed = std::min<std::uint64_t>(allowed, o_.count - seq_);
    if (allowed == 0) return;
    if (!publish_) {
      publish_.emplace();
      publish_->qos = static_cast<std::uint8_t>(o_.qos);
      publish_->topic = shared_.topic.expand({device_, index_, 0, 0});
      if (o_.qos == 1) {
        slots_.resize(window_);
        for (std::size_t k = window_; k > 0; --k) free_slots_.push_back(static_cast<std::uint16_t>(k - 1));
      }
    }
    const std::uint64_t ts = shared_.payload.uses(Placeholder::ts) ? now_ts(o_.ts_unit) : 0;
    for (std::size_t k = 0; k < allowed; ++k) {
      text_.clear();
      shared_.payload.expand({device_, index_, seq_, ts}, text_);
      publish_->payload.assign(text_.begin(), text_.end());
      if (o_.qos == 1) {
        const auto slot = free_slots_.back();
        free_slots_.pop_back();
        slots_[slot] = {true, now};
        ++inflight_;
        publish_->packet_id = static_cast<std::uint16_t>(slot + 1);
      }
      if (!mqtt::encode(*publish_, shared_.version, out_)) {
        lost_reason_ = "cannot encode PUBLISH (is the topic valid?)";
        return;
      }
      ++seq_;
    }
    Counters::add(worker_.counters.sent, allowed);
    if (o_.qos == 0 && o_.count != 0 && seq_ >= o_.count) settle_count();
  }

  // Messages due since the run started, staggered per connection so that they do not all
  // send at the same instant.
  [[nodiscard]] std::uint64_t due_count(steady::time_point now) const {
    const double elapsed = seconds_between(shared_.run_start, now);
    const double offset = static_cast<double>(index_ % 1000) / 1000.0;
    return static_cast<std::uint64_t>(std::max(0.0, std::floor(elapsed * shared_.rate_per_connection + offset)));
  }
  [[nodiscard]] steady::time_point next_due() const {
    const double offset = static_cast<double>(index_ % 1000) / 1000.0;
    const double at = (static_cast<double>(seq_ + 1) - offset) / shared_.rate_per_connection;
    return shared_.run_start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(at));
  }

  [[nodiscard]] bool publishing(Phase phase) const {
    return role_ == Role::publisher && phase == Phase::running && (o_.count == 0 || seq_ < o_.count);
  }

  asio::awaitable<void> write_loop(std::shared_ptr<Client> self) {
    error_code ec;
    while (!closed_ && lost_reason_.empty()) {
      const Phase phase = shared_.current();
      const auto now = steady::now();
      out_.clear();
      if (phase == Phase::closing) {
        (void)mqtt::encode(mqtt::Disconnect{}, shared_.version, out_);
        closed_by_us_ = true;
        co_await asio::async_write(*stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
        socket().shutdown(tcp::socket::shutdown_both, ec);
        socket().close(ec);
        break;
      }
      for (const auto id : pending_acks_) (void)mqtt::encode(mqtt::Puback{id, {}, {}}, shared_.version, out_);
      pending_acks_.clear();
      if (publishing(phase)) add_publishes(now);
      if (phase == Phase::draining && !drain_started_) {
        drain_started_ = true;
        if (role_ != Role::publisher) {
          settle_drain();
        } else if (o_.qos == 1) {
          if (inflight_ == 0) settle_drain();
        } else {
          // The broker answers packets of a connection in order: its PINGRESP means it has
          // read every PUBLISH before it.
          (void)mqtt::encode(mqtt::Pingreq{}, shared_.version, out_);
          drain_ping_ = ++pings_;
        }
      }
      if (out_.empty() && keep_alive_.count() > 0 && now - last_write_ >= keep_alive_) {
        (void)mqtt::encode(mqtt::Pingreq{}, shared_.version, out_);
        ++pings_;
      }
      if (!out_.empty()) {
        co_await asio::async_write(*stream_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          if (lost_reason_.empty()) lost_reason_ = "write: " + tls_error_text(ec);
          error_code ignored;
          socket().close(ignored);  // ends the reader
          break;
        }
        last_write_ = now;
        continue;
      }
      wake_.expires_at(next_wakeup(phase, now));
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    (void)self;
  }

  [[nodiscard]] steady::time_point next_wakeup(Phase phase, steady::time_point now) const {
    auto at = steady::time_point::max();
    if (keep_alive_.count() > 0) at = last_write_ + keep_alive_;
    if (publishing(phase) && (o_.qos == 0 || inflight_ + min_batch() <= window_)) {
      // With room in the window, only the rate holds the next message back.
      if (shared_.rate_per_connection > 0) at = std::min(at, std::max(next_due(), now + kMinPacingInterval));
    }
    return at;
  }

  Worker& worker_;
  Shared& shared_;
  const BenchOptions& o_;
  Role role_;
  std::uint64_t index_;
  std::string client_id_;  // the MQTT client id
  std::string device_;     // the identity: --cert-dir/<device>.crt, {device}
  std::optional<Stream> stream_;
  asio::steady_timer wake_;

  std::vector<std::uint8_t> in_;
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  Bytes out_;
  std::string text_;
  std::optional<mqtt::Publish> publish_;

  struct Slot {
    bool in_use = false;
    steady::time_point sent_at;
  };
  std::vector<Slot> slots_;  // QoS 1: packet id k + 1 is slot k
  std::vector<std::uint16_t> free_slots_;
  std::size_t window_ = 0;
  std::size_t inflight_ = 0;
  std::uint64_t seq_ = 0;
  std::vector<std::uint16_t> pending_acks_;  // subscriber: QoS 1 deliveries to acknowledge

  std::chrono::seconds keep_alive_{0};
  steady::time_point last_write_;
  std::uint64_t pings_ = 0;
  std::uint64_t pongs_ = 0;
  std::uint64_t drain_ping_ = 0;  // the PINGREQ whose answer ends the drain

  bool connected_ = false;
  bool finished_ = false;
  bool closed_ = false;
  bool closed_by_us_ = false;
  bool drain_started_ = false;
  bool count_settled_ = false;
  bool drain_settled_ = false;
  std::string lost_reason_;
};

Totals sum(const std::vector<std::unique_ptr<Worker>>& workers) {
  Totals t;
  for (const auto& w : workers) {
    const auto& c = w->counters;
    const auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    t.connected += get(c.connected);
    t.connect_failures += get(c.connect_failures);
    t.connack_refused += get(c.connack_refused);
    t.open += c.open.load(std::memory_order_relaxed);
    t.sent += get(c.sent);
    t.acked += get(c.acked);
    t.refused += get(c.refused);
    t.errors += get(c.errors);
    t.server_disconnects += get(c.server_disconnects);
    t.received += get(c.received);
    t.unparsed += get(c.unparsed);
    t.count_settled += get(c.count_settled);
    t.drain_settled += get(c.drain_settled);
  }
  return t;
}

// /proc/<pid>/status VmRSS in kB.
std::optional<std::uint64_t> read_rss_kb(int pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      std::uint64_t kb = 0;
      if (fields >> kb) return kb;
    }
  }
  return std::nullopt;
}

// User + system CPU seconds of a process, from /proc/<pid>/stat fields 14 and 15.
std::optional<double> read_cpu_s(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text;
  std::getline(in, text);              // one line
  const auto close = text.rfind(')');  // the command name may contain spaces
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double utime = 0;
  double stime = 0;
  for (int k = 3; k <= 15 && fields >> field; ++k) {
    if (k == 14) utime = std::stod(field);
    if (k == 15) stime = std::stod(field);
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return std::nullopt;
  return (utime + stime) / static_cast<double>(ticks);
}

double own_cpu_s() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Restores the previous SIGINT/SIGTERM handlers when the run ends.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = 0;
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;  // a second signal ends the process
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptGuard() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  [[nodiscard]] static bool interrupted() { return g_interrupted != 0; }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

class Controller {
 public:
  Controller(const BenchOptions& o, std::ostream& progress) : o_(o), progress_(progress), log_(progress) {}

  BenchResult run() {
    r_.mode = o_.mode;
    r_.host = o_.host;
    r_.port = o_.port;
    r_.tls = !o_.insecure_plaintext;
    r_.v5 = o_.v5;
    r_.qos = o_.qos;
    r_.rate_target = o_.rate;
    r_.connections = o_.connections;
    r_.warmup_s = o_.warmup_s;
    if (auto st = prepare(); !st) {
      r_.error = st.error().message;
      return r_;
    }
    if (r_.tls) {
      execute<asio::ssl::stream<tcp::socket>>();
    } else {
      execute<tcp::socket>();
    }
    return r_;
  }

 private:
  Status prepare() {
    shared_ = std::make_unique<Shared>(o_, log_);
    auto& s = *shared_;
    s.version = o_.v5 ? mqtt::ProtocolVersion::v5 : mqtt::ProtocolVersion::v311;
    auto topic = MessageTemplate::parse(o_.topic, {Placeholder::device, Placeholder::index});
    auto payload = MessageTemplate::parse(o_.payload,
                                          {Placeholder::device, Placeholder::index, Placeholder::seq, Placeholder::ts});
    if (!topic || !payload) return fail(Errc::invalid_argument, "templates were not validated");
    s.topic = std::move(*topic);
    s.payload = std::move(*payload);
    r_.payload_bytes = s.payload.expand({device_name(o_, 0), 0, 0, now_ts(o_.ts_unit)}).size();
    if (o_.mode == Mode::publish || o_.mode == Mode::subscribe) {
      s.rate_per_connection = o_.rate / static_cast<double>(o_.connections);
    }

    error_code ec;
    asio::io_context resolver_io;
    tcp::resolver resolver(resolver_io);
    const auto endpoints = resolver.resolve(o_.host, std::to_string(o_.port), ec);
    if (ec || endpoints.empty()) {
      return fail(Errc::invalid_argument, fmt::format("--host: cannot resolve '{}': {}", o_.host, ec.message()));
    }
    s.server = endpoints.begin()->endpoint();
    for (const auto& text : o_.source_list) {
      const auto address = asio::ip::make_address(text, ec);
      if (address.is_v4() != s.server.address().is_v4()) {
        return fail(Errc::invalid_argument,
                    fmt::format("--source-addresses: {} is not of the server's address family", text));
      }
      s.sources.push_back(address);
    }

    if (o_.mode == Mode::subscribe) {
      if (o_.sub_topic.empty()) {
        for (std::uint64_t i = 0; i < o_.connections; ++i) {
          auto filter = s.topic.expand({device_name(o_, i), i, 0, 0});
          if (std::find(s.sub_filters.begin(), s.sub_filters.end(), filter) == s.sub_filters.end()) {
            s.sub_filters.push_back(std::move(filter));
          }
        }
      } else {
        auto filter = MessageTemplate::parse(o_.sub_topic, {Placeholder::device, Placeholder::index});
        if (!filter) return fail(Errc::invalid_argument, "--sub-topic was not validated");
        if (filter->uses(Placeholder::device) || filter->uses(Placeholder::index)) {
          for (std::uint64_t i = 0; i < o_.connections; ++i) {
            auto f = filter->expand({device_name(o_, i), i, 0, 0});
            if (std::find(s.sub_filters.begin(), s.sub_filters.end(), f) == s.sub_filters.end()) {
              s.sub_filters.push_back(std::move(f));
            }
          }
        } else {
          s.sub_filters.push_back(o_.sub_topic);
        }
      }
    }

    if (!r_.tls) return ok();
    auto tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX* ctx = tls->native_handle();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_ciphersuites(ctx, kCiphersuites);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every connection a full handshake
    if (o_.mode == Mode::idle) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // A client certificate goes as its file has it: OpenSSL would otherwise add the issuers
    // it finds in --cafile, and so send more to a broker whose CA is in it than to one whose
    // is not.
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    tls->load_verify_file(o_.cafile, ec);
    if (ec)
      return fail(Errc::invalid_argument, fmt::format("--cafile: cannot load {}: {}", o_.cafile, tls_error_text(ec)));
    tls->set_verify_mode(asio::ssl::verify_peer);
    if (!o_.cert.empty()) {
      tls->use_certificate_chain_file(o_.cert, ec);
      if (ec)
        return fail(Errc::invalid_argument, fmt::format("--cert: cannot load {}: {}", o_.cert, tls_error_text(ec)));
      tls->use_private_key_file(o_.key, asio::ssl::context::pem, ec);
      if (ec) return fail(Errc::invalid_argument, fmt::format("--key: cannot load {}: {}", o_.key, tls_error_text(ec)));
      if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return fail(Errc::invalid_argument, "--key: does not match --cert");
      }
    }
    // Fail fast on a wrong --cert-dir rather than with one error per connection.
    if (!o_.cert_dir.empty()) {
      const auto first = o_.cert_dir + "/" + device_name(o_, 0);
      for (const auto& path : {first + ".crt", first + ".key"}) {
        if (::access(path.c_str(), R_OK) != 0) {
          return fail(Errc::invalid_argument, fmt::format("--cert-dir: cannot read {} (files are <device>.crt and "
                                                          "<device>.key, device = --device-prefix + index)",
                                                          path));
        }
      }
    }
    for (const auto& path : {o_.sub_cert, o_.sub_key}) {
      if (o_.mode == Mode::subscribe && !path.empty() && ::access(path.c_str(), R_OK) != 0) {
        return fail(Errc::invalid_argument, fmt::format("--sub-cert/--sub-key: cannot read {}", path));
      }
    }
    s.tls = std::move(tls);
    return ok();
  }

  template <class Stream>
  void launch(std::size_t worker_index, Role role, std::uint64_t index, std::string client_id, std::string device) {
    Worker& w = *workers_[worker_index];
    Shared& s = *shared_;
    asio::post(w.io, [&w, &s, role, index, id = std::move(client_id), device = std::move(device)]() mutable {
      auto client = std::make_shared<Client<Stream>>(w, s, role, index, std::move(id), std::move(device));
      w.clients.push_back(client);
      asio::co_spawn(w.io, client->run(client), asio::detached);
    });
  }

  void wake_all() {
    for (auto& w : workers_) {
      asio::post(w->io, [&worker = *w] {
        for (auto& weak : worker.clients) {
          if (auto c = weak.lock()) c->wake();
        }
      });
    }
  }

  void set_phase(Phase phase) {
    shared_->phase.store(static_cast<int>(phase), std::memory_order_release);
    wake_all();
  }

  void progress(const char* phase, steady::time_point now) {
    if (o_.quiet || now < next_progress_) return;
    const auto t = sum(workers_);
    const double dt = seconds_between(last_progress_at_, now);
    const std::uint64_t done = o_.qos == 1 ? t.acked : t.sent;
    const double rate = dt > 0 ? static_cast<double>(done - last_progress_done_) / dt : 0;
    std::string line = fmt::format("[{:7.1f}s] {:<10} open {}/{}", seconds_between(started_, now), phase, t.open,
                                   o_.connections + (o_.mode == Mode::subscribe ? 1 : 0));
    if (o_.mode != Mode::idle) {
      line += o_.qos == 1 ? fmt::format("  sent {}  acked {}  {:.0f}/s", t.sent, done, rate)
                          : fmt::format("  sent {}  {:.0f}/s", t.sent, rate);
      if (t.refused) line += fmt::format("  refused {}", t.refused);
    }
    if (o_.mode == Mode::subscribe) line += fmt::format("  received {}", t.received);
    if (t.connect_failures) line += fmt::format("  connect failures {}", t.connect_failures);
    if (t.errors) line += fmt::format("  errors {}", t.errors);
    progress_ << line << "\n" << std::flush;
    last_progress_at_ = now;
    last_progress_done_ = done;
    next_progress_ = now + std::chrono::seconds(1);
  }

  bool fatal() {
    const std::lock_guard lock(shared_->fatal_mutex);
    return !shared_->fatal.empty();
  }

  template <class Stream>
  void execute() {
    const InterruptGuard interrupts;
    const auto tick = std::chrono::milliseconds(5);
    if (o_.server_pid > 0) {
      server_.emplace();
      server_->pid = o_.server_pid;
      server_->rss_kb_before = read_rss_kb(o_.server_pid);
      if (!server_->rss_kb_before) progress_ << "torii bench: cannot read /proc/" << o_.server_pid << "/status\n";
    }

    std::uint32_t threads = o_.threads != 0 ? o_.threads : std::max(1u, std::thread::hardware_concurrency());
    threads = std::min<std::uint32_t>(threads, o_.connections + 1);
    r_.threads = threads;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (std::uint32_t k = 0; k < threads; ++k) {
      workers_.push_back(std::make_unique<Worker>());
      guards.push_back(asio::make_work_guard(workers_.back()->io));
    }
    for (auto& w : workers_) {
      w->thread = std::thread([&io = w->io] { io.run(); });
    }
    started_ = last_progress_at_ = steady::now();
    if (!o_.quiet) {
      progress_ << fmt::format("torii bench: {} {} connection{} to {}:{} ({}, MQTT {}, QoS {}), {} thread{}\n",
                               to_string(o_.mode), o_.connections, o_.connections == 1 ? "" : "s", o_.host, o_.port,
                               r_.tls ? "TLS" : "PLAINTEXT", o_.v5 ? "5" : "3.1.1", o_.qos, threads,
                               threads == 1 ? "" : "s");
    }

    // Connecting: the subscriber first, then the others at the asked rate.
    std::uint64_t expected = o_.connections;
    if (o_.mode == Mode::subscribe) {
      ++expected;
      launch<Stream>(0, Role::subscriber, o_.connections, o_.sub_client_id, o_.sub_client_id);
      while (!InterruptGuard::interrupted()) {
        const auto t = sum(workers_);
        if (t.connected + t.connect_failures >= 1) break;
        std::this_thread::sleep_for(tick);
      }
      if (sum(workers_).connected == 0) {
        const std::lock_guard lock(shared_->fatal_mutex);
        if (shared_->fatal.empty()) shared_->fatal = "the subscriber could not connect: " + log_.first();
      }
    }
    const Role role = o_.mode == Mode::idle ? Role::idle : Role::publisher;
    std::uint64_t launched = 0;
    const auto connect_start = steady::now();
    const auto max_pending = static_cast<std::uint64_t>(std::max(64.0, o_.connect_rate));
    const std::uint64_t base = expected - o_.connections;  // the subscriber, settled already
    while (!InterruptGuard::interrupted() && !fatal()) {
      const auto now = steady::now();
      const auto t = sum(workers_);
      const std::uint64_t settled = t.connected + t.connect_failures - base;
      if (settled >= o_.connections) break;
      const auto allowed = std::min<std::uint64_t>(
          o_.connections, static_cast<std::uint64_t>(seconds_between(connect_start, now) * o_.connect_rate) + 1);
      while (launched < allowed && launched - settled < max_pending) {
        launch<Stream>(launched % threads, role, launched, client_id(o_, launched), device_name(o_, launched));
        ++launched;
      }
      progress("connecting", now);
      std::this_thread::sleep_for(tick);
    }
    r_.connect_s = seconds_between(connect_start, steady::now());
    if (!o_.quiet) {
      const auto t = sum(workers_);
      progress_ << fmt::format("torii bench: {} of {} connected in {:.2f} s ({} failed)\n", t.connected, expected,
                               r_.connect_s, t.connect_failures);
    }

    // Running: warm-up, then the measurement window.
    auto window_start = steady::now();
    auto window_end = window_start;
    Totals at_start{};
    double cpu_at_start = 0;
    std::optional<double> server_cpu_at_start;
    bool measuring = false;
    if (!InterruptGuard::interrupted() && !fatal() && sum(workers_).connected > 0) {
      shared_->run_start = steady::now();
      set_phase(Phase::running);
      const auto measure_from =
          shared_->run_start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o_.warmup_s));
      const auto measure_until =
          measure_from + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o_.duration_s));
      for (;;) {
        const auto now = steady::now();
        const auto t = sum(workers_);
        if (!measuring && now >= measure_from) {
          measuring = true;
          at_start = t;
          window_start = now;
          cpu_at_start = own_cpu_s();
          if (server_) server_cpu_at_start = read_cpu_s(server_->pid);
          shared_->measuring.store(true, std::memory_order_relaxed);
        }
        if (o_.duration_s > 0 && now >= measure_until) break;
        if (o_.count > 0 && o_.mode != Mode::idle && t.count_settled >= t.connected) break;
        if (t.open == 0) break;  // every connection is gone
        if (InterruptGuard::interrupted() || fatal()) break;
        progress(measuring ? "running" : "warmup", now);
        std::this_thread::sleep_for(tick);
      }
    }
    window_end = steady::now();
    shared_->measuring.store(false, std::memory_order_relaxed);
    const Totals at_end = sum(workers_);
    if (!measuring) {
      at_start = at_end;
      window_start = window_end;
    }
    r_.duration_s = seconds_between(window_start, window_end);
    r_.bench_cpu_s = measuring ? own_cpu_s() - cpu_at_start : 0;
    r_.open_at_end = static_cast<std::uint64_t>(std::max<std::int64_t>(0, at_end.open));
    if (server_) {
      server_->rss_kb_after = read_rss_kb(server_->pid);
      if (server_cpu_at_start) {
        if (const auto cpu = read_cpu_s(server_->pid)) server_->cpu_s = *cpu - *server_cpu_at_start;
      }
    }
    r_.interrupted = InterruptGuard::interrupted();

    // Draining: no new messages; wait for what is in flight.
    const auto drain_start = steady::now();
    const auto drain_until =
        drain_start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o_.drain_timeout_s));
    set_phase(Phase::draining);
    if (!o_.quiet && o_.mode != Mode::idle && measuring) progress_ << "torii bench: draining\n";
    std::uint64_t last_received = at_end.received;
    auto received_changed = drain_start;
    r_.drained = false;
    while (steady::now() < drain_until && !fatal()) {
      const auto t = sum(workers_);
      bool done = t.drain_settled >= t.connected;
      if (o_.mode == Mode::subscribe) {
        // Deliveries still on their way: wait until they stop arriving for a moment.
        if (t.received != last_received) {
          last_received = t.received;
          received_changed = steady::now();
        }
        const std::uint64_t expected_deliveries = o_.qos == 1 ? t.acked : t.sent;
        done = done &&
               (t.received >= expected_deliveries || steady::now() - received_changed > std::chrono::milliseconds(500));
      }
      if (done) {
        r_.drained = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    r_.drain_s = seconds_between(drain_start, steady::now());

    // Closing: DISCONNECT everyone, then stop the workers (forcibly after a few seconds).
    set_phase(Phase::closing);
    guards.clear();
    const auto close_until = steady::now() + std::chrono::seconds(5);
    while (steady::now() < close_until) {
      bool all_stopped = true;
      for (auto& w : workers_) all_stopped = all_stopped && w->io.stopped();
      if (all_stopped) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& w : workers_) w->io.stop();
    for (auto& w : workers_) w->thread.join();

    // The result.
    const Totals t = sum(workers_);
    r_.connected = t.connected;
    r_.connect_failures = t.connect_failures;
    r_.connack_refused = t.connack_refused;
    r_.sent = t.sent;
    r_.acked = t.acked;
    r_.refused = t.refused;
    r_.errors = t.errors;
    r_.server_disconnects = t.server_disconnects;
    r_.received = t.received;
    r_.unparsed = t.unparsed;
    if (o_.mode != Mode::idle) {
      if (o_.qos == 1) {
        r_.window_messages = at_end.acked - at_start.acked;
        r_.msgs_per_s = r_.duration_s > 0 ? static_cast<double>(r_.window_messages) / r_.duration_s : 0;
      } else {
        // What was written may still sit in socket buffers at the end of the window: the drain
        // (PINGREQ/PINGRESP) time is counted too, so that only what the broker read is rated.
        r_.window_messages = at_end.sent - at_start.sent;
        const double span = r_.duration_s + r_.drain_s;
        r_.msgs_per_s = span > 0 ? static_cast<double>(r_.window_messages) / span : 0;
      }
    }
    LatencyHistogram acks;
    LatencyHistogram deliveries;
    std::array<std::uint64_t, 256> refused{};
    for (auto& w : workers_) {
      acks.merge(w->ack_latency);
      deliveries.merge(w->delivery_latency);
      for (std::size_t k = 0; k < refused.size(); ++k) refused[k] += w->refused_by_reason[k];
      if (r_.tls_version.empty() && !w->tls_version.empty()) {
        r_.tls_version = w->tls_version;
        r_.cipher = w->cipher;
      }
    }
    for (std::size_t k = 0; k < refused.size(); ++k) {
      if (refused[k] != 0) {
        r_.refused_by_reason[std::string(mqtt::to_string(static_cast<mqtt::ReasonCode>(k)))] += refused[k];
      }
    }
    if (o_.mode != Mode::idle && o_.qos == 1) r_.ack_latency = acks.summary();
    if (o_.mode == Mode::subscribe) r_.latency = deliveries.summary();
    r_.server = server_;
    r_.first_error = log_.first();
    {
      const std::lock_guard lock(shared_->fatal_mutex);
      r_.error = shared_->fatal;
    }
    workers_.clear();  // before shared_: their coroutine frames reference it
  }

  const BenchOptions& o_;
  std::ostream& progress_;
  ErrorLog log_;
  BenchResult r_;
  std::unique_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<ServerSample> server_;
  steady::time_point started_;
  steady::time_point last_progress_at_;
  steady::time_point next_progress_;
  std::uint64_t last_progress_done_ = 0;
};

}  // namespace

BenchResult run(const BenchOptions& options, std::ostream& progress) {
  try {
    Controller controller(options, progress);
    return controller.run();
  } catch (const std::exception& e) {
    BenchResult r;
    r.mode = options.mode;
    r.error = std::string("unexpected error: ") + e.what();
    return r;
  }
}

}  // namespace torii::bench

#include "net/listener.h"

#include "net/socket_deadline.h"

#include <array>

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace torii::net {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

IpAddress to_ip(const asio::ip::address& a) {
  IpAddress out;
  if (a.is_v4()) {
    out.v4 = true;
    out.bytes[10] = 0xff;
    out.bytes[11] = 0xff;
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin() + 12);
  } else {
    const auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) return to_ip(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    const auto b = v6.to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
  }
  return out;
}

std::string handshake_reason(const boost::system::error_code& ec, bool timed_out) {
  if (timed_out) return "handshake deadline passed";
  if (ec.category() == asio::error::get_ssl_category()) {
    char buffer[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buffer, sizeof buffer);
    return buffer;
  }
  return ec.message();
}

// Closes after a failed handshake so that the TLS alert reaches the client: closing a
// socket with unread input makes the kernel send a reset, which can destroy the alert in
// the client's receive queue. Half-close, then discard input for at most a second.
asio::awaitable<void> linger_close(tcp::socket& socket) {
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  SocketDeadline limit(socket, std::chrono::seconds(1));
  std::array<char, 512> discard{};
  while (!ec) {
    co_await socket.async_read_some(asio::buffer(discard), asio::redirect_error(asio::use_awaitable, ec));
  }
  limit.disarm();
  socket.close(ec);
}

}  // namespace

std::string PeerInfo::endpoint() const {
  return address.v4 ? fmt::format("{}:{}", address.to_string(), port)
                    : fmt::format("[{}]:{}", address.to_string(), port);
}

TlsListener::TlsListener(asio::io_context& io, ListenerOptions options, ConnectionFilter& filter)
    : io_(io), options_(std::move(options)), filter_(filter), acceptor_(io) {}

TlsListener::~TlsListener() { stop(); }

Status TlsListener::bind() {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options_.address.host, ec);
  if (ec) return fail(Errc::invalid_argument, fmt::format("{}: bad address {}", options_.name, options_.address.host));
  const tcp::endpoint endpoint(address, options_.address.port);
  const auto failed = [&](std::string_view step) {
    return fail(Errc::unavailable, fmt::format("{} listener on {}: cannot {}: {}", options_.name,
                                               options_.address.to_string(), step, ec.message()));
  };
  if (acceptor_.open(endpoint.protocol(), ec); ec) return failed("open a socket");
  if (address.is_v6()) {
    if (acceptor_.set_option(asio::ip::v6_only(true), ec); ec) return failed("set IPV6_V6ONLY");
  }
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), ec); ec) return failed("set SO_REUSEADDR");
  if (acceptor_.bind(endpoint, ec); ec) return failed("bind");
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec) return failed("listen");
  return ok();
}

std::uint16_t TlsListener::local_port() const {
  boost::system::error_code ec;
  const auto endpoint = acceptor_.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

std::string TlsListener::local_endpoint() const {
  config::ListenAddress a = options_.address;
  a.port = local_port();
  return a.to_string();
}

void TlsListener::start(std::shared_ptr<asio::ssl::context> tls, ConnectionHandler& handler, ListenerEvents events) {
  tls_ = std::move(tls);
  handler_ = &handler;
  events_ = std::move(events);
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void TlsListener::update_tls(std::shared_ptr<asio::ssl::context> tls) { tls_ = std::move(tls); }

void TlsListener::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

asio::awaitable<void> TlsListener::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      // Out of file descriptors and the like: back off briefly instead of spinning.
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    const auto remote = socket.remote_endpoint(ec);
    if (ec) continue;
    PeerInfo peer;
    peer.address = to_ip(remote.address());
    peer.port = remote.port();
    peer.listener = options_.name;
    const Admission admission = filter_.admit(peer.address);
    if (admission != Admission::admitted) {
      // Closed before a single byte is read: refused sources learn nothing.
      socket.close(ec);
      if (events_.refused) events_.refused(peer, admission);
      continue;
    }
    // The connection is on the heap from the start: after the handshake, its handler keeps
    // it, and this coroutine's frame ends.
    auto connection =
        std::make_unique<TlsConnection>(std::move(socket), tls_->native_handle(), std::move(peer), filter_, events_);
    asio::co_spawn(io_, handshake(tls_, std::move(connection)), asio::detached);
  }
}

// `tls`: the context the connection was made with, kept alive across update_tls() for the
// handshake (the SSL object holds a reference of its own on the OpenSSL context).
asio::awaitable<void> TlsListener::handshake([[maybe_unused]] std::shared_ptr<asio::ssl::context> tls,
                                             std::unique_ptr<TlsConnection> connection) {
  TlsStream& stream = connection->stream();
  boost::system::error_code ec;
  stream.socket().set_option(tcp::no_delay(true), ec);
  SocketDeadline deadline(stream.socket(), options_.handshake_timeout);
  co_await stream.handshake(ec);
  const bool timed_out = deadline.disarm();
  if (ec) {
    const PeerInfo& peer = connection->peer();
    const auto verdict = filter_.record_failure(peer.address);
    if (events_.handshake_failed) events_.handshake_failed(peer, handshake_reason(ec, timed_out), verdict.in_window);
    if (verdict.banned_now && events_.banned) events_.banned(peer);
    if (!timed_out) co_await linger_close(stream.socket());
    co_return;
  }
  handler_->adopt(std::move(connection));
}

TlsConnection::TlsConnection(tcp::socket socket, SSL_CTX* context, PeerInfo peer, ConnectionFilter& filter,
                             const ListenerEvents& events)
    : stream_(std::move(socket), context), peer_(std::move(peer)), filter_(filter), events_(events) {}

TlsConnection::~TlsConnection() {
  boost::system::error_code ignored;
  stream_.socket().close(ignored);
  filter_.release(peer_.address);
}

void TlsConnection::report_failure(const std::string& what) const {
  if (events_.handler_failed) events_.handler_failed(peer_, what);
}

void CoroutineHandler::adopt(std::unique_ptr<TlsConnection> connection) {
  const auto executor = connection->stream().get_executor();
  asio::co_spawn(executor, run(std::move(connection)), asio::detached);
}

asio::awaitable<void> CoroutineHandler::run(std::unique_ptr<TlsConnection> connection) {
  try {
    co_await serve(connection->stream(), connection->peer());
  } catch (const std::exception& e) {
    connection->report_failure(e.what());
  }
}

asio::awaitable<void> CloseAfterHandshake::serve(TlsStream& stream, const PeerInfo&) {
  // Sends close_notify; a peer that never answers it must not hold the connection.
  SocketDeadline deadline(stream.socket(), std::chrono::seconds(2));
  boost::system::error_code ec;
  co_await stream.shutdown(ec);
}

}  // namespace torii::net

// A TLS-only TCP listener: the network shell every protocol handler sits behind.
//
//   accept → ConnectionFilter::admit (lists, bans, limits) → TLS handshake with a deadline
//          → ConnectionHandler::adopt → ... → ConnectionFilter::release when the connection ends
//
// Nothing is ever read or written in plain text: the handler receives an established TLS
// connection and owns it from then on. A CoroutineHandler serves each connection as its own
// coroutine on the listener's io_context; an exception escaping it is caught, reported and
// closes that connection only. A handler that holds tens of thousands of mostly idle
// connections (the gateway) adopts them directly and waits with callbacks, so that an idle
// connection keeps no coroutine frames.
//
// Lifetime: bind() may run as root before privileges are dropped; start() later, once
// the TLS context exists. The listener, its filter, its handler and its events must
// outlive the io_context's run().
#pragma once

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/error.h"
#include "base/ip.h"
#include "config/config.h"
#include "net/connection_filter.h"
#include "net/tls_stream.h"

namespace boost::asio::ssl {
class context;
}

namespace torii::net {

struct PeerInfo {
  IpAddress address;
  std::uint16_t port = 0;
  std::string listener;  // "gateway", "console"

  [[nodiscard]] std::string endpoint() const;  // "127.0.0.1:51234", "[::1]:51234"
};

// What a listener reports; each callback may be empty.
struct ListenerEvents {
  std::function<void(const PeerInfo&, Admission)> refused;
  // failures_in_window counts this source's failures within the filter's window (1: the
  // first), so that callers can record a burst once instead of line by line.
  std::function<void(const PeerInfo&, const std::string& reason, std::size_t failures_in_window)> handshake_failed;
  std::function<void(const PeerInfo&)> banned;
  std::function<void(const PeerInfo&, const std::string& what)> handler_failed;
};

// An accepted connection: its TLS stream, who the peer is, and its place in the filter.
// Destroying it closes the socket and gives the source's slot back to the filter.
class TlsConnection {
 public:
  TlsConnection(boost::asio::ip::tcp::socket socket, SSL_CTX* context, PeerInfo peer, ConnectionFilter& filter,
                const ListenerEvents& events);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  [[nodiscard]] TlsStream& stream() { return stream_; }
  [[nodiscard]] const PeerInfo& peer() const { return peer_; }
  // Reports an exception that ended the connection (ListenerEvents::handler_failed). Only
  // while the io_context runs: the listener's events outlive its run(), not its destruction.
  void report_failure(const std::string& what) const;

 private:
  TlsStream stream_;
  PeerInfo peer_;
  ConnectionFilter& filter_;
  const ListenerEvents& events_;
};

class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // Called on the io_context's thread once the handshake succeeded. The handler owns the
  // connection from now on; the connection ends when it is destroyed.
  virtual void adopt(std::unique_ptr<TlsConnection> connection) = 0;
};

// A handler that serves each connection as one coroutine.
class CoroutineHandler : public ConnectionHandler {
 public:
  void adopt(std::unique_ptr<TlsConnection> connection) final;

 protected:
  // Owns the connection until it returns; the stream is closed afterwards.
  virtual boost::asio::awaitable<void> serve(TlsStream& stream, const PeerInfo& peer) = 0;

 private:
  boost::asio::awaitable<void> run(std::unique_ptr<TlsConnection> connection);
};

struct ListenerOptions {
  std::string name;
  config::ListenAddress address;
  std::chrono::seconds handshake_timeout{10};
};

class TlsListener {
 public:
  TlsListener(boost::asio::io_context& io, ListenerOptions options, ConnectionFilter& filter);
  ~TlsListener();
  TlsListener(const TlsListener&) = delete;
  TlsListener& operator=(const TlsListener&) = delete;

  // Opens, binds and listens. IPv6 sockets are v6-only: "::" does not also take IPv4.
  [[nodiscard]] Status bind();
  [[nodiscard]] std::uint16_t local_port() const;
  [[nodiscard]] std::string local_endpoint() const;

  void start(std::shared_ptr<boost::asio::ssl::context> tls, ConnectionHandler& handler, ListenerEvents events);
  // New connections use this context from now on (a fresh revocation list, a renewed
  // certificate); connections in progress keep theirs. Call on the io_context's thread.
  void update_tls(std::shared_ptr<boost::asio::ssl::context> tls);
  // Closes the listening socket; connections in progress finish on their own.
  void stop();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> handshake(std::shared_ptr<boost::asio::ssl::context> tls,
                                         std::unique_ptr<TlsConnection> connection);

  boost::asio::io_context& io_;
  ListenerOptions options_;
  ConnectionFilter& filter_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  ConnectionHandler* handler_ = nullptr;
  ListenerEvents events_;
};

// A handler that completes the TLS handshake and closes the connection with a TLS
// close_notify: used by listeners whose protocol layer is not configured.
class CloseAfterHandshake final : public CoroutineHandler {
 protected:
  boost::asio::awaitable<void> serve(TlsStream& stream, const PeerInfo& peer) override;
};

}  // namespace torii::net

// TLS on an accepted TCP socket, driven through OpenSSL directly on the socket's descriptor.
//
// Why not asio::ssl::stream: it keeps about 70 KiB of buffers per connection (a BIO pair and
// its own record buffers) for the connection's whole life, and a gateway holds tens of
// thousands of mostly idle connections. Here OpenSSL reads and writes the non-blocking
// socket itself; with SSL_MODE_RELEASE_BUFFERS (set on torii's contexts) an idle connection
// holds no record buffers at all, and readers can wait for input before they need a buffer.
//
//   handshake()     server side; fails with the OpenSSL error (asio's ssl category)
//   read_now(buf)   whatever is readable now; error::would_block when nothing is
//   wait()          until the socket is ready for what the last read_now needed (no
//                   coroutine frame of its own: an idle connection waits here)
//   write(data)     all of it, waiting for the socket as needed
//   shutdown()      close_notify, then discards input until the peer's close_notify or EOF
//
// For connections driven by callbacks instead of coroutines (the gateway's):
//   async_wait(h)        as wait(), calling h(error_code)
//   write_now(data)      what the socket takes now; error::would_block when nothing
//   async_wait_write(h)  until the socket is ready for what the last write_now needed
//
// Creating the first stream sets SIGPIPE to be ignored in the process: OpenSSL writes with
// plain send(), and a peer gone away must give an error, not end the process.
//
// One reader and one writer may use a stream at the same time, on one thread (the io
// context's). Cancelling the socket (socket().cancel()) ends their waits with
// operation_aborted. Errors: eof when the peer closed, asio's ssl category for TLS errors,
// the system category for socket errors.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "base/bytes.h"

namespace torii::net {

class TlsStream {
 public:
  // Takes a reference on the context; the socket is switched to non-blocking mode.
  TlsStream(boost::asio::ip::tcp::socket socket, SSL_CTX* context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  boost::asio::awaitable<void> handshake(boost::system::error_code& ec);
  // Bytes decrypted into `buffer` (> 0), or 0 with ec set: would_block (then wait()), eof,
  // or an error. Never suspends, so a buffer shared by all connections of a thread is safe.
  std::size_t read_now(std::span<std::uint8_t> buffer, boost::system::error_code& ec);
  // Waits until the socket is ready for what the last read_now asked for (input, or output
  // while TLS needs to write first).
  boost::asio::awaitable<void> wait(boost::system::error_code& ec);
  boost::asio::awaitable<void> write(std::span<const std::uint8_t> data, boost::system::error_code& ec);

  template <class Handler>
  void async_wait(Handler&& handler) {
    socket_.async_wait(wait_type(want_), std::forward<Handler>(handler));
  }
  // Bytes of `data` written (> 0), or 0 with ec set: would_block (then async_wait_write), or
  // an error. A write that would block must be retried with the same bytes.
  std::size_t write_now(std::span<const std::uint8_t> data, boost::system::error_code& ec);
  template <class Handler>
  void async_wait_write(Handler&& handler) {
    socket_.async_wait(wait_type(write_wants_), std::forward<Handler>(handler));
  }
  boost::asio::awaitable<void> shutdown(boost::system::error_code& ec);

  // The certificate the peer presented, DER-encoded (empty: none). A copy, made when asked:
  // a connection keeps none beyond OpenSSL's own.
  [[nodiscard]] Bytes peer_certificate_der() const;

  [[nodiscard]] SSL* native_handle() const { return ssl_; }
  [[nodiscard]] boost::asio::ip::tcp::socket& socket() { return socket_; }
  [[nodiscard]] boost::asio::any_io_executor get_executor() { return socket_.get_executor(); }

 private:
  enum class Want : std::uint8_t { read, write };

  // Maps the result of an SSL call that did not succeed: sets want_ and returns
  // would_block when OpenSSL waits for the socket, otherwise the error.
  boost::system::error_code failure(int result);
  boost::asio::awaitable<void> wait_for(Want want, boost::system::error_code& ec);
  static boost::asio::socket_base::wait_type wait_type(Want want) {
    return want == Want::read ? boost::asio::socket_base::wait_read : boost::asio::socket_base::wait_write;
  }

  boost::asio::ip::tcp::socket socket_;
  SSL* ssl_ = nullptr;
  Want want_ = Want::read;          // of the last read_now
  Want write_wants_ = Want::write;  // of the last write_now
};

}  // namespace torii::net

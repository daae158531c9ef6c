#include "net/tls_stream.h"

#include <openssl/err.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <mutex>

#include <boost/asio/error.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace torii::net {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
// Before each SSL call: its errors are read from the thread's queue and from errno.
void clear_errors() {
  ERR_clear_error();
  errno = 0;
}

// OpenSSL writes to the socket with plain send(), without MSG_NOSIGNAL: a peer that has
// gone away would raise SIGPIPE and end the whole process. Writes report EPIPE instead.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });  // NOLINT(cert-err33-c): cannot fail for SIGPIPE
}
}  // namespace

TlsStream::TlsStream(asio::ip::tcp::socket socket, SSL_CTX* context) : socket_(std::move(socket)) {
  ignore_sigpipe();
  error_code ec;
  socket_.non_blocking(true, ec);
  if (ec) return;
  ssl_ = SSL_new(context);
  if (ssl_ == nullptr) return;
  // Partial writes and a buffer that may move between retries: write() resumes where the
  // last call stopped, from a span that stays the same data but is not promised the same address.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_set_fd(ssl_, socket_.native_handle()) != 1) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    return;
  }
  SSL_set_accept_state(ssl_);
}

TlsStream::~TlsStream() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

error_code TlsStream::failure(int result) {
  const int error = SSL_get_error(ssl_, result);
  switch (error) {
    case SSL_ERROR_WANT_READ: want_ = Want::read; return asio::error::would_block;
    case SSL_ERROR_WANT_WRITE: want_ = Want::write; return asio::error::would_block;
    case SSL_ERROR_ZERO_RETURN: return asio::error::eof;  // the peer's close_notify
    case SSL_ERROR_SYSCALL: {
      const int saved = errno;
      ERR_clear_error();
      if (saved == 0 || saved == EPIPE) return asio::error::eof;  // closed without close_notify
      return {saved, boost::system::system_category()};
    }
    default: {
      const unsigned long code = ERR_get_error();
      ERR_clear_error();
      if (code == 0) return asio::error::eof;
      return {static_cast<int>(code), asio::error::get_ssl_category()};
    }
  }
}

// Not coroutines: they hand back the wait's own awaitable, so that waiting costs no frame
// beyond the operation's.
asio::awaitable<void> TlsStream::wait_for(Want want, error_code& ec) {
  return socket_.async_wait(wait_type(want), asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> TlsStream::wait(error_code& ec) { return wait_for(want_, ec); }

Bytes TlsStream::peer_certificate_der() const {
  Bytes der;
  if (ssl_ == nullptr) return der;
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return der;
  const int length = i2d_X509(cert, nullptr);
  if (length <= 0) return der;
  der.resize(static_cast<std::size_t>(length));
  unsigned char* out = der.data();
  if (i2d_X509(cert, &out) != length) der.clear();
  return der;
}

asio::awaitable<void> TlsStream::handshake(error_code& ec) {
  if (ssl_ == nullptr) {
    ec = asio::error::no_memory;
    co_return;
  }
  for (;;) {
    clear_errors();
    const int result = SSL_do_handshake(ssl_);
    if (result == 1) {
      ec = {};
      co_return;
    }
    ec = failure(result);
    if (ec != asio::error::would_block) co_return;
    co_await wait_for(want_, ec);
    if (ec) co_return;
  }
}

std::size_t TlsStream::read_now(std::span<std::uint8_t> buffer, error_code& ec) {
  if (ssl_ == nullptr) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  clear_errors();
  std::size_t n = 0;
  const int result = SSL_read_ex(ssl_, buffer.data(), buffer.size(), &n);
  if (result == 1) {
    ec = {};
    return n;
  }
  ec = failure(result);
  return 0;
}

std::size_t TlsStream::write_now(std::span<const std::uint8_t> data, error_code& ec) {
  if (ssl_ == nullptr) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  clear_errors();
  std::size_t written = 0;
  const int result = SSL_write_ex(ssl_, data.data(), data.size(), &written);
  if (result == 1) {
    ec = {};
    return written;
  }
  // write_wants_, not want_: that belongs to the reader, which may be waiting at the same
  // time. failure() touches want_ only for the two cases handled here.
  const int error = SSL_get_error(ssl_, result);
  if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
    write_wants_ = error == SSL_ERROR_WANT_WRITE ? Want::write : Want::read;
    ec = asio::error::would_block;
    return 0;
  }
  ec = failure(result);
  return 0;
}

asio::awaitable<void> TlsStream::write(std::span<const std::uint8_t> data, error_code& ec) {
  ec = {};
  while (!data.empty()) {
    const std::size_t written = write_now(data, ec);
    if (ec == asio::error::would_block) {
      co_await wait_for(write_wants_, ec);
      if (ec) co_return;
      continue;
    }
    if (ec) co_return;
    data = data.subspan(written);
  }
}

asio::awaitable<void> TlsStream::shutdown(error_code& ec) {
  if (ssl_ == nullptr) {
    ec = asio::error::bad_descriptor;
    co_return;
  }
  // Our close_notify first (waiting while the socket is full), then the peer's: input that
  // arrives meanwhile is read and dropped, so that closing does not reset the connection.
  for (;;) {
    clear_errors();
    const int result = SSL_shutdown(ssl_);
    if (result >= 0) break;  // 0: sent, 1: both sent and received
    ec = failure(result);
    if (ec != asio::error::would_block) co_return;
    co_await wait_for(want_, ec);
    if (ec) co_return;
  }
  if ((SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0) {
    ec = {};
    co_return;
  }
  std::array<std::uint8_t, 512> discard{};
  for (;;) {
    read_now(discard, ec);
    if (!ec) continue;
    if (ec == asio::error::eof) {
      ec = {};
      co_return;
    }
    if (ec != asio::error::would_block) co_return;
    co_await wait(ec);
    if (ec) co_return;
  }
}

}  // namespace torii::net

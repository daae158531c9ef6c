#include "net/tls_client.h"

#include <openssl/x509v3.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include "base/ip.h"

namespace torii::net {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;

tl::unexpected<Error> unavailable(std::string message) { return fail(Errc::unavailable, std::move(message)); }

}  // namespace

Status configure_client_context(SSL_CTX* context, std::string_view ca_pem) {
  SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) {
    return fail(Errc::crypto_error, "tls: cannot require TLS 1.2");
  }
  if (ca_pem.empty()) {
    if (SSL_CTX_set_default_verify_paths(context) != 1) {
      return fail(Errc::invalid_argument, "tls: cannot load the system's trusted CAs");
    }
  } else {
    // Through Asio's context wrapper would need the context object; the PEM is read here.
    BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
    if (bio == nullptr) return fail(Errc::crypto_error, "tls: out of memory");
    X509_STORE* store = SSL_CTX_get_cert_store(context);
    int added = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      if (X509_STORE_add_cert(store, cert) == 1) ++added;
      X509_free(cert);
    }
    BIO_free(bio);
    ERR_clear_error();  // the end of the PEM text reads as an error
    if (added == 0) return fail(Errc::invalid_argument, "tls: the trusted CA PEM holds no certificate");
  }
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
  return ok();
}

Status expect_peer_name(SSL* ssl, const std::string& host) {
  // (SSL_set_tlsext_host_name is a macro with a C cast, hence SSL_ctrl.)
  const bool named = IpAddress::parse(host) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
                                            : SSL_set1_host(ssl, host.c_str()) == 1 &&
                                                  SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                                                           const_cast<char*>(host.c_str())) == 1;
  if (!named) return fail(Errc::invalid_argument, "tls: the host name cannot be checked in a certificate");
  return ok();
}

// One io_context per connection; each operation is started, then the context runs until it
// completes or the deadline passes, when the socket is closed and the operation ends with an
// error (run to completion, so no handler outlives the call).
struct TlsClient::Impl {
  explicit Impl(TlsClientOptions o) : options(std::move(o)), context(ssl::context::tls_client) {}

  // Returns whether the deadline passed before `done` was set.
  bool run_until(const bool& done) { return run_until(done, options.timeout); }
  bool run_until(const bool& done, std::chrono::milliseconds timeout) {
    io.restart();
    io.run_for(timeout);
    if (done) return false;
    error_code ignored;
    stream->lowest_layer().close(ignored);
    io.restart();
    io.run();
    return true;
  }

  [[nodiscard]] std::string where() const { return options.host + ":" + std::to_string(options.port); }

  TlsClientOptions options;
  asio::io_context io{1};
  ssl::context context;
  // Made once the context is configured: SSL_new copies the verify mode and protocol bounds.
  std::optional<ssl::stream<tcp::socket>> stream;
};

TlsClient::TlsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsClient::~TlsClient() = default;

Result<std::unique_ptr<TlsClient>> TlsClient::connect(const TlsClientOptions& options) {
  if (options.host.empty()) return fail(Errc::invalid_argument, "tls: no host");
  auto impl = std::make_unique<Impl>(options);
  if (auto st = configure_client_context(impl->context.native_handle(), options.ca_pem); !st) {
    return tl::unexpected(st.error());
  }
  impl->stream.emplace(impl->io, impl->context);
  if (auto st = expect_peer_name(impl->stream->native_handle(), options.host); !st) {
    return tl::unexpected(st.error());
  }

  tcp::resolver resolver(impl->io);
  tcp::resolver::results_type endpoints;
  bool done = false;
  error_code ec;
  resolver.async_resolve(options.host, std::to_string(options.port),
                         [&](const error_code& e, tcp::resolver::results_type results) {
                           done = true;
                           ec = e;
                           endpoints = std::move(results);
                         });
  impl->io.restart();
  impl->io.run_for(options.timeout);
  if (!done) {
    resolver.cancel();
    impl->io.restart();
    impl->io.run();
    return unavailable("tls: resolving " + options.host + " timed out");
  }
  if (ec) return unavailable("tls: cannot resolve " + options.host + ": " + ec.message());
  std::vector<tcp::endpoint> allowed;
  for (const auto& entry : endpoints) {
    const auto address = IpAddress::parse(entry.endpoint().address().to_string());
    if (!options.allow_address || (address && options.allow_address(*address))) allowed.push_back(entry.endpoint());
  }
  if (allowed.empty()) {
    return fail(Errc::permission_denied, "tls: " + options.host + " resolves only to addresses not allowed here");
  }

  done = false;
  asio::async_connect(impl->stream->lowest_layer(), allowed, [&](const error_code& e, const tcp::endpoint&) {
    done = true;
    ec = e;
  });
  if (impl->run_until(done)) return unavailable("tls: connecting to " + impl->where() + " timed out");
  if (ec) return unavailable("tls: cannot connect to " + impl->where() + ": " + ec.message());

  done = false;
  impl->stream->async_handshake(ssl::stream_base::client, [&](const error_code& e) {
    done = true;
    ec = e;
  });
  if (impl->run_until(done)) return unavailable("tls: the handshake with " + impl->where() + " timed out");
  if (ec) {
    const long verify = SSL_get_verify_result(impl->stream->native_handle());
    if (verify != X509_V_OK) {
      return unavailable("tls: the certificate of " + impl->where() +
                         " is not trusted: " + X509_verify_cert_error_string(verify));
    }
    return unavailable("tls: the handshake with " + impl->where() + " failed: " + ec.message());
  }
  return std::unique_ptr<TlsClient>(new TlsClient(std::move(impl)));
}

Status TlsClient::write(std::string_view data) {
  bool done = false;
  error_code ec;
  asio::async_write(*impl_->stream, asio::buffer(data.data(), data.size()), [&](const error_code& e, std::size_t) {
    done = true;
    ec = e;
  });
  if (impl_->run_until(done)) return unavailable("tls: writing to " + impl_->where() + " timed out");
  if (ec) return unavailable("tls: writing to " + impl_->where() + " failed: " + ec.message());
  return ok();
}

Result<std::size_t> TlsClient::read_some(std::span<char> buffer) {
  bool done = false;
  error_code ec;
  std::size_t n = 0;
  impl_->stream->async_read_some(asio::buffer(buffer.data(), buffer.size()), [&](const error_code& e, std::size_t got) {
    done = true;
    ec = e;
    n = got;
  });
  if (impl_->run_until(done)) return unavailable("tls: no answer from " + impl_->where() + " in time");
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated) return std::size_t{0};
  if (ec) return unavailable("tls: reading from " + impl_->where() + " failed: " + ec.message());
  return n;
}

void TlsClient::close() {
  bool done = false;
  impl_->stream->async_shutdown([&](const error_code&) { done = true; });
  // A peer that never answers close_notify costs at most a second.
  (void)impl_->run_until(done, std::min(impl_->options.timeout, std::chrono::milliseconds(1000)));
  error_code ignored;
  impl_->stream->lowest_layer().close(ignored);
}

}  // namespace torii::net

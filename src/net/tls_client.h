// An outbound TLS connection for one short exchange (a webhook POST, a syslog frame), blocking
// the calling thread on an io_context of its own. A plain header: Asio stays in tls_client.cpp.
//
// Secure by default: TLS 1.2 or later, the peer's certificate verified (chain to the system
// CAs or to `ca_pem`) and its name checked against `host` (RFC 6125: an IP address as an
// iPAddress SAN, a DNS name as a dNSName, also sent as SNI). Every step (resolve, connect,
// handshake, each write, each read) has the deadline `timeout`. Errors are unavailable for
// network and TLS failures ("not trusted" when the certificate did not verify),
// permission_denied when allow_address refuses every address of the host, invalid_argument
// for options that cannot be used; messages never hold data sent.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/ip.h"

namespace torii::net {

struct TlsClientOptions {
  std::string host;  // DNS name or IP address; the certificate must name it
  std::uint16_t port = 443;
  std::string ca_pem;  // the CAs trusted for the peer (PEM); empty: the system's
  std::chrono::milliseconds timeout{10'000};
  // Which resolved addresses may be connected to; empty: any. Checked after resolution, on
  // the addresses actually used, so a name that resolves elsewhere later changes nothing.
  std::function<bool(const IpAddress&)> allow_address;
};

// Shared by the outbound clients (SMTP, webhooks, syslog): TLS 1.2+, no compression, peer
// verification against `ca_pem` or, empty, the system trust store.
[[nodiscard]] Status configure_client_context(SSL_CTX* context, std::string_view ca_pem);
// Makes the handshake check that the certificate names `host` and sends it as SNI when it is
// a DNS name. invalid_argument when the name cannot be checked.
[[nodiscard]] Status expect_peer_name(SSL* ssl, const std::string& host);

class TlsClient {
 public:
  // Resolves, connects and completes the handshake.
  [[nodiscard]] static Result<std::unique_ptr<TlsClient>> connect(const TlsClientOptions& options);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  [[nodiscard]] Status write(std::string_view data);
  // Bytes read into `buffer` (> 0), or 0 when the peer closed the connection.
  [[nodiscard]] Result<std::size_t> read_some(std::span<char> buffer);
  // Sends close_notify and waits (at most a second) for the peer's; errors are ignored: the
  // exchange is over.
  void close();

 private:
  struct Impl;
  explicit TlsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace torii::net

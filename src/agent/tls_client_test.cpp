// The agent's TLS client against torii's device listener profile, over loopback, with a
// root CA, an issuing CA and certificates made here.
#include "agent/tls_client.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/bytes.h"
#include "base/file.h"
#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "net/tls_context.h"
#include "net/tls_stream.h"
#include "testing/temp_dir.h"

namespace torii::agent {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

Status write_text(const std::filesystem::path& path, std::string_view text) {
  return write_file_atomic(path, ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

// The device's certificate file holds its own certificate only, as enrolment stores it; the
// CA bundle holds the root and the issuing CA. OpenSSL would by default complete the chain
// from the bundle and send all three: the gateway trusts both CAs already, and every
// certificate received is parsed and kept for the connection's whole life.
TEST(AgentTlsClient, SendsTheDeviceCertificateWithoutTheIssuersItTrusts) {
  crypto::SystemRandom random;
  const auto now = std::chrono::system_clock::now();
  const auto hour = std::chrono::hours(1);
  const auto root_key = *crypto::generate_p256_key();
  const auto root = *crypto::make_root_ca(root_key, "agent test root", now, hour, random);
  const auto issuing_key = *crypto::generate_p256_key();
  const auto issuing =
      *crypto::make_issuing_ca({root, &root_key}, issuing_key, "agent test issuing", now, hour, random);
  const crypto::Issuer issuer{issuing, &issuing_key};
  auto server_key = *crypto::generate_p256_key();
  const auto server_cert =
      *crypto::issue_server_certificate(issuer, server_key, {{}, {"127.0.0.1"}}, now, hour, random);
  const auto device_key = *crypto::generate_p256_key();
  const auto device_cert =
      crypto::issue_device_certificate(issuer, *crypto::make_csr(device_key, "dev-1"), "dev-1", now, hour, random);
  ASSERT_TRUE(device_cert.has_value()) << device_cert.error().message;
  const auto crl = *crypto::make_crl(issuer, {}, 1, now, hour);

  auto server = net::make_server_tls_context(config::TlsConfig{}, {server_cert + issuing, std::move(server_key)},
                                             net::ClientVerification{{root, issuing}, crl});
  ASSERT_TRUE(server.has_value()) << server.error().message;

  const testing::TempDir dir;
  ASSERT_TRUE(write_text(dir / "ca.crt", root + issuing));
  ASSERT_TRUE(write_text(dir / "device.crt", *device_cert));
  ASSERT_TRUE(write_file_atomic(dir / "device.key", ByteView(device_key.data(), device_key.size())));
  auto client = make_client_tls_context(dir / "ca.crt", ClientCredentials{dir / "device.crt", dir / "device.key"});
  ASSERT_TRUE(client.has_value()) << client.error().message;

  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address_v4("127.0.0.1"), 0});
  error_code server_handshake{asio::error::not_connected}, client_handshake{asio::error::not_connected};
  std::string peer_cn;
  std::string peer_fingerprint;
  int issuers_received = -1;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        net::TlsStream stream(co_await acceptor.async_accept(asio::use_awaitable), (*server)->native_handle());
        co_await stream.handshake(server_handshake);
        if (server_handshake) co_return;
        SSL* ssl = stream.native_handle();
        // On the server side the chain the peer sent, without its own certificate.
        issuers_received = sk_X509_num(SSL_get_peer_cert_chain(ssl));
        peer_fingerprint = hex_encode(crypto::sha256(stream.peer_certificate_der()));
        if (X509* cert = SSL_get0_peer_certificate(ssl)) {
          std::array<char, 65> cn{};
          X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn.data(), cn.size());
          peer_cn = cn.data();
        }
      },
      asio::detached);
  asio::ssl::stream<tcp::socket> c(io, **client);
  ASSERT_TRUE(expect_server_name(c.native_handle(), "127.0.0.1"));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await c.next_layer().async_connect(acceptor.local_endpoint(), asio::use_awaitable);
        co_await c.async_handshake(asio::ssl::stream_base::client,
                                   asio::redirect_error(asio::use_awaitable, client_handshake));
      },
      asio::detached);
  io.run_for(std::chrono::seconds(30));

  EXPECT_FALSE(client_handshake) << tls_error_text(client_handshake);
  ASSERT_FALSE(server_handshake) << server_handshake.message();
  EXPECT_EQ(peer_cn, "dev-1");
  // What the gateway authenticates the device by.
  EXPECT_EQ(peer_fingerprint, crypto::inspect_certificate(*device_cert)->fingerprint_sha256_hex);
  EXPECT_EQ(issuers_received, 0);
}

}  // namespace
}  // namespace torii::agent

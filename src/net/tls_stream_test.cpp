// TlsStream against Asio's own TLS client, over loopback, with certificates made here.
#include "net/tls_stream.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "net/tls_context.h"

namespace torii::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::SystemRandom random;
    const auto now = std::chrono::system_clock::now();
    ca_key_ = *crypto::generate_p256_key();
    ca_pem_ = *crypto::make_root_ca(ca_key_, "tls stream test CA", now, std::chrono::hours(1), random);
    auto server_key = *crypto::generate_p256_key();
    auto leaf = crypto::issue_server_certificate({ca_pem_, &ca_key_}, server_key, {{}, {"127.0.0.1"}}, now,
                                                 std::chrono::hours(1), random);
    ASSERT_TRUE(leaf.has_value()) << leaf.error().message;
    auto context = make_server_tls_context(config::TlsConfig{}, {*leaf + ca_pem_, std::move(server_key)}, std::nullopt);
    ASSERT_TRUE(context.has_value()) << context.error().message;
    server_context_ = *context;
    client_context_.add_certificate_authority(asio::buffer(ca_pem_));
    client_context_.set_verify_mode(asio::ssl::verify_peer);
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address_v4("127.0.0.1"), 0});
    acceptor_.listen();
  }

  // The server side of one connection: accepts, then runs `body` on its stream.
  template <class Body>
  void serve(Body body) {
    asio::co_spawn(
        io_,
        [this, body]() -> asio::awaitable<void> {
          tcp::socket socket = co_await acceptor_.async_accept(asio::use_awaitable);
          // A small send buffer, so that large writes must wait for the peer (want-write).
          socket.set_option(asio::socket_base::send_buffer_size(4096));
          TlsStream stream(std::move(socket), server_context_->native_handle());
          co_await body(stream);
        },
        asio::detached);
  }

  // Reads until `count` bytes arrived or the stream failed; the error is left in ec.
  static asio::awaitable<std::string> read_exactly(TlsStream& stream, std::size_t count, error_code& ec) {
    std::string got;
    std::array<std::uint8_t, 4096> buffer{};
    while (got.size() < count) {
      const std::size_t n = stream.read_now(buffer, ec);
      if (ec == asio::error::would_block) {
        co_await stream.wait(ec);
        if (ec) co_return got;
        continue;
      }
      if (ec) co_return got;
      got.append(reinterpret_cast<const char*>(buffer.data()), n);  // NOLINT: bytes as text
    }
    co_return got;
  }

  asio::ssl::stream<tcp::socket> client() { return {io_, client_context_}; }
  // Connects a client() to the server and completes its handshake.
  asio::awaitable<void> connect(asio::ssl::stream<tcp::socket>& c) {
    co_await c.next_layer().async_connect(endpoint(), asio::use_awaitable);
    co_await c.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  crypto::SecretBytes ca_key_;
  std::string ca_pem_;
  std::shared_ptr<asio::ssl::context> server_context_;
  asio::ssl::context client_context_{asio::ssl::context::tls_client};
};

// Nothing could be resumed, so nothing is offered: no session cache, no TLS 1.3 tickets (each
// would be built and sent after every handshake for nothing).
TEST_F(TlsStreamTest, TheServerContextKeepsNoSessionsAndIssuesNoTickets) {
  SSL_CTX* ctx = server_context_->native_handle();
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
  EXPECT_EQ(SSL_CTX_get_num_tickets(ctx), 0U);
}

TEST_F(TlsStreamTest, EchoesAMebibyteBothWaysAndClosesWithCloseNotify) {
  std::string payload(1 << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  error_code server_read{}, server_write{}, server_shutdown{}, server_handshake{};
  std::string server_got;
  serve([&](TlsStream& stream) -> asio::awaitable<void> {
    co_await stream.handshake(server_handshake);
    if (server_handshake) co_return;
    server_got = co_await read_exactly(stream, payload.size(), server_read);
    // More than the socket buffers hold: the write has to wait for the client to read.
    co_await stream.write(std::span(reinterpret_cast<const std::uint8_t*>(server_got.data()), server_got.size()),
                          server_write);
    co_await stream.shutdown(server_shutdown);
  });

  std::string client_got(payload.size(), '\0');
  error_code client_end{};
  auto c = client();
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        co_await connect(c);
        co_await asio::async_write(c, asio::buffer(payload), asio::use_awaitable);
        co_await asio::async_read(c, asio::buffer(client_got), asio::use_awaitable);
        std::array<char, 16> more{};
        co_await c.async_read_some(asio::buffer(more), asio::redirect_error(asio::use_awaitable, client_end));
        error_code ignored;
        co_await c.async_shutdown(asio::redirect_error(asio::use_awaitable, ignored));
      },
      asio::detached);
  io_.run_for(std::chrono::seconds(30));

  EXPECT_FALSE(server_handshake) << server_handshake.message();
  EXPECT_FALSE(server_read) << server_read.message();
  EXPECT_EQ(server_got, payload);
  EXPECT_FALSE(server_write) << server_write.message();
  EXPECT_FALSE(server_shutdown) << server_shutdown.message();
  EXPECT_EQ(client_got, payload);
  EXPECT_EQ(client_end, asio::error::eof) << client_end.message();  // the server's close_notify
}

TEST_F(TlsStreamTest, AClientThatDoesNotTrustTheServerFailsTheHandshakeWithAnSslError) {
  error_code server_handshake{};
  serve([&](TlsStream& stream) -> asio::awaitable<void> { co_await stream.handshake(server_handshake); });
  asio::ssl::context untrusting(asio::ssl::context::tls_client);
  untrusting.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<tcp::socket> c(io_, untrusting);
  error_code client_handshake{};
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        co_await c.next_layer().async_connect(endpoint(), asio::use_awaitable);
        co_await c.async_handshake(asio::ssl::stream_base::client,
                                   asio::redirect_error(asio::use_awaitable, client_handshake));
        c.next_layer().close();
      },
      asio::detached);
  io_.run_for(std::chrono::seconds(30));
  EXPECT_TRUE(client_handshake);
  ASSERT_TRUE(server_handshake);
  EXPECT_EQ(server_handshake.category(), asio::error::get_ssl_category()) << server_handshake.message();
}

TEST_F(TlsStreamTest, WritingToAPeerThatHasGoneFailsWithoutEndingTheProcess) {
  // OpenSSL writes with plain send(): without SIGPIPE ignored, this test process would die.
  error_code written{};
  serve([&](TlsStream& stream) -> asio::awaitable<void> {
    error_code ec;
    co_await stream.handshake(ec);
    if (ec) co_return;
    asio::steady_timer gone(stream.get_executor(), std::chrono::milliseconds(200));
    co_await gone.async_wait(asio::use_awaitable);
    const std::vector<std::uint8_t> chunk(64 * 1024, 'x');
    for (int i = 0; i < 64 && !written; ++i) co_await stream.write(chunk, written);
  });
  auto c = client();
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        co_await connect(c);
        c.next_layer().close();  // gone, with the server's writes still to come
      },
      asio::detached);
  io_.run_for(std::chrono::seconds(30));
  EXPECT_TRUE(written);
}

TEST_F(TlsStreamTest, CancellingTheSocketEndsAWaitingReader) {
  error_code waited{};
  bool handshaken = false;
  TlsStream* server_stream = nullptr;
  serve([&](TlsStream& stream) -> asio::awaitable<void> {
    error_code ec;
    co_await stream.handshake(ec);
    handshaken = !ec;
    server_stream = &stream;
    std::array<std::uint8_t, 16> buffer{};
    (void)stream.read_now(buffer, waited);
    if (waited != asio::error::would_block) co_return;
    co_await stream.wait(waited);  // the client sends nothing
    server_stream = nullptr;
  });
  auto c = client();
  asio::steady_timer later(io_, std::chrono::milliseconds(300));
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        co_await connect(c);
        co_await later.async_wait(asio::use_awaitable);
        if (server_stream != nullptr) server_stream->socket().cancel();
      },
      asio::detached);
  io_.run_for(std::chrono::seconds(30));
  EXPECT_TRUE(handshaken);
  EXPECT_EQ(waited, asio::error::operation_aborted) << waited.message();
}

}  // namespace
}  // namespace torii::net

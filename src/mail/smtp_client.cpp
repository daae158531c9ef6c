#include "mail/smtp_client.h"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/crypto.h>
#include "base/bytes.h"
#include "base/clock.h"
#include "base/ip.h"
#include "crypto/sodium.h"
#include "mail/smtp_reply.h"
#include "net/socket_deadline.h"
#include "net/tls_client.h"

namespace torii::mail {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;

using net::Deadline;

void wipe(std::string& text) { OPENSSL_cleanse(text.data(), text.size()); }

tl::unexpected<Error> unavailable(std::string message) { return fail(Errc::unavailable, std::move(message)); }

// One SMTP dialogue over one connection. Lives in the coroutine that sends the message.
class Session {
 public:
  Session(asio::io_context& io, const SmtpSettings& settings)
      : settings_(settings), socket_(io), tls_context_(ssl::context::tls_client) {}

  asio::awaitable<Status> send(const MailMessage& message) {
    if (auto st = co_await connect(); !st) co_return st;
    if (settings_.tls == TlsMode::tls) {
      if (auto st = co_await start_tls(); !st) co_return st;
    }
    auto greeting = co_await expect("", "greeting", 220);
    if (!greeting) co_return tl::unexpected(greeting.error());
    auto ehlo = co_await expect("EHLO " + settings_.helo_name, "EHLO", 250);
    if (!ehlo) co_return tl::unexpected(ehlo.error());
    if (settings_.tls == TlsMode::starttls) {
      if (!ehlo->advertises("STARTTLS")) {
        co_return unavailable("smtp: the server does not offer STARTTLS (tls = \"starttls\" requires it)");
      }
      if (auto r = co_await expect("STARTTLS", "STARTTLS", 220); !r) co_return tl::unexpected(r.error());
      if (reader_.pending_bytes() != 0) co_return unavailable("smtp: the server sent data before the TLS handshake");
      if (auto st = co_await start_tls(); !st) co_return st;
      reader_ = ReplyReader{};
      ehlo = co_await expect("EHLO " + settings_.helo_name, "EHLO", 250);
      if (!ehlo) co_return tl::unexpected(ehlo.error());
    }
    if (!settings_.username.empty()) {
      if (!tls_) co_return fail(Errc::invalid_argument, "smtp: credentials are sent only over TLS");
      const auto mechanisms = ehlo->parameters("AUTH");
      if (std::ranges::none_of(mechanisms, [](const std::string& m) { return m == "PLAIN" || m == "plain"; })) {
        co_return unavailable("smtp: the server does not offer AUTH PLAIN");
      }
      std::string credentials = std::string(1, '\0') + settings_.username + '\0' + settings_.password;
      std::string command = "AUTH PLAIN " + base64(credentials);
      auto r = co_await expect(command, "AUTH", 235);
      wipe(credentials);
      wipe(command);
      if (!r) co_return tl::unexpected(r.error());
    }
    const bool eight_bit = ehlo->advertises("8BITMIME");
    const std::array<std::uint8_t, 16> id_bytes = random_bytes();
    const auto at = settings_.from.rfind('@');
    const MessageHeaders headers{
        settings_.from, settings_.from_name, rfc5322_date(std::chrono::system_clock::now()),
        hex_encode(id_bytes) + (at == std::string::npos ? std::string("@localhost") : settings_.from.substr(at))};
    auto text = format_message(headers, message, eight_bit);
    if (!text) co_return tl::unexpected(text.error());
    const std::string body_parameter = eight_bit ? " BODY=8BITMIME" : "";
    if (auto r = co_await expect(fmt::format("MAIL FROM:<{}>{}", settings_.from, body_parameter), "MAIL FROM", 250);
        !r) {
      co_return tl::unexpected(r.error());
    }
    auto rcpt = co_await command("RCPT TO:<" + message.to + ">", "RCPT TO");
    if (!rcpt) co_return tl::unexpected(rcpt.error());
    if (rcpt->code != 250 && rcpt->code != 251) co_return refused(*rcpt, "RCPT TO");
    if (auto r = co_await expect("DATA", "DATA", 354); !r) co_return tl::unexpected(r.error());
    if (auto r = co_await expect_after_write(dot_stuff(*text), "end of data", 250); !r) {
      co_return tl::unexpected(r.error());
    }
    // The message is accepted; QUIT's answer changes nothing.
    [[maybe_unused]] auto quit = co_await command("QUIT", "QUIT");
    co_return ok();
  }

 private:
  static std::array<std::uint8_t, 16> random_bytes() {
    std::array<std::uint8_t, 16> out{};
    crypto::SystemRandom random;
    random.fill(out);
    return out;
  }

  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : socket_; }

  tl::unexpected<Error> refused(const Reply& reply, std::string_view stage) const {
    return unavailable(fmt::format("smtp: {} at {}", reply.summary(), stage));
  }

  asio::awaitable<Status> connect() {
    const auto executor = socket_.get_executor();
    tcp::resolver resolver(executor);
    error_code ec;
    tcp::resolver::results_type endpoints;
    {
      Deadline deadline(executor, settings_.timeout, [&resolver] { resolver.cancel(); });
      endpoints = co_await resolver.async_resolve(settings_.host, std::to_string(settings_.port),
                                                  asio::redirect_error(asio::use_awaitable, ec));
      if (deadline.disarm()) co_return unavailable(fmt::format("smtp: resolving {} timed out", settings_.host));
    }
    if (ec) co_return unavailable(fmt::format("smtp: cannot resolve {}: {}", settings_.host, ec.message()));
    {
      Deadline deadline(executor, settings_.timeout, [this] {
        error_code ignored;
        socket_.close(ignored);
      });
      co_await asio::async_connect(socket_, endpoints, asio::redirect_error(asio::use_awaitable, ec));
      if (deadline.disarm()) co_return unavailable(fmt::format("smtp: connecting to {} timed out", settings_.host));
    }
    if (ec) {
      co_return unavailable(
          fmt::format("smtp: cannot connect to {}:{}: {}", settings_.host, settings_.port, ec.message()));
    }
    co_return ok();
  }

  Status prepare_tls() {
    if (auto st = net::configure_client_context(tls_context_.native_handle(), settings_.ca_pem); !st) {
      return tl::unexpected(Error{st.error().code, "smtp: " + st.error().message});
    }
    return ok();
  }

  asio::awaitable<Status> start_tls() {
    if (auto st = prepare_tls(); !st) co_return st;
    tls_.emplace(std::move(socket_), tls_context_);
    SSL* handle = tls_->native_handle();
    // The certificate must name the host (RFC 6125).
    if (auto st = net::expect_peer_name(handle, settings_.host); !st) {
      co_return fail(Errc::invalid_argument, "smtp: " + st.error().message);
    }
    error_code ec;
    Deadline deadline(tls_->get_executor(), settings_.timeout, [this] {
      error_code ignored;
      lowest().close(ignored);
    });
    co_await tls_->async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (deadline.disarm()) co_return unavailable("smtp: the TLS handshake timed out");
    if (ec) {
      const long verify = SSL_get_verify_result(handle);
      if (verify != X509_V_OK) {
        co_return unavailable(
            fmt::format("smtp: the server's certificate is not trusted: {}", X509_verify_cert_error_string(verify)));
      }
      co_return unavailable(fmt::format("smtp: TLS handshake failed: {}", ec.message()));
    }
    co_return ok();
  }

  asio::awaitable<Status> write(std::string_view data, std::string_view stage) {
    error_code ec;
    Deadline deadline(lowest().get_executor(), settings_.timeout, [this] {
      error_code ignored;
      lowest().close(ignored);
    });
    if (tls_) {
      co_await asio::async_write(*tls_, asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await asio::async_write(socket_, asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
    }
    if (deadline.disarm()) co_return unavailable(fmt::format("smtp: timed out sending {}", stage));
    if (ec) co_return unavailable(fmt::format("smtp: sending {} failed: {}", stage, ec.message()));
    co_return ok();
  }

  // One deadline per read: a server may take its time over a long reply, but never
  // longer than the timeout between two pieces of it.
  asio::awaitable<Result<Reply>> read_reply(std::string_view stage) {
    std::array<char, 1024> buffer{};
    while (true) {
      auto reply = reader_.next();
      if (!reply)
        co_return tl::unexpected(Error{reply.error().code, reply.error().message + " at " + std::string(stage)});
      if (*reply) co_return std::move(**reply);
      error_code ec;
      std::size_t n = 0;
      Deadline deadline(lowest().get_executor(), settings_.timeout, [this] {
        error_code ignored;
        lowest().close(ignored);
      });
      if (tls_) {
        n = co_await tls_->async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
      } else {
        n = co_await socket_.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
      }
      if (deadline.disarm()) co_return unavailable(fmt::format("smtp: no reply at {} in time", stage));
      if (ec) co_return unavailable(fmt::format("smtp: connection lost at {}: {}", stage, ec.message()));
      reader_.feed(std::string_view(buffer.data(), n));
    }
  }

  // Writes the command line (none for the greeting) and reads the reply.
  asio::awaitable<Result<Reply>> command(std::string line, std::string_view stage) {
    if (!line.empty()) {
      line += "\r\n";
      auto st = co_await write(line, stage);
      wipe(line);
      if (!st) co_return tl::unexpected(st.error());
    }
    co_return co_await read_reply(stage);
  }

  asio::awaitable<Result<Reply>> expect(std::string line, std::string_view stage, int code) {
    auto reply = co_await command(std::move(line), stage);
    if (!reply) co_return reply;
    if (reply->code != code) co_return refused(*reply, stage);
    co_return reply;
  }

  asio::awaitable<Result<Reply>> expect_after_write(const std::string& data, std::string_view stage, int code) {
    if (auto st = co_await write(data, stage); !st) co_return tl::unexpected(st.error());
    auto reply = co_await read_reply(stage);
    if (!reply) co_return reply;
    if (reply->code != code) co_return refused(*reply, stage);
    co_return reply;
  }

  const SmtpSettings& settings_;
  tcp::socket socket_;  // moved into tls_ when TLS starts
  ssl::context tls_context_;
  std::optional<ssl::stream<tcp::socket>> tls_;
  ReplyReader reader_;
};

}  // namespace

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  auto ip = IpAddress::parse(host);
  if (!ip) return false;
  const std::string text = ip->to_string();
  return text == "::1" || text.starts_with("127.");
}

Status check_settings(const SmtpSettings& settings) {
  if (settings.host.empty()) return fail(Errc::invalid_argument, "smtp: no host");
  if (auto st = check_address(settings.from, "the sender"); !st) return st;
  if (settings.tls == TlsMode::none && !is_loopback_host(settings.host)) {
    return fail(Errc::invalid_argument, "smtp: plain SMTP (tls = \"none\") is allowed to a loopback host only");
  }
  if (settings.tls == TlsMode::none && !settings.username.empty()) {
    return fail(Errc::invalid_argument, "smtp: credentials are sent only over TLS");
  }
  if (settings.helo_name.empty() || settings.helo_name.find_first_of(" \r\n") != std::string::npos) {
    return fail(Errc::invalid_argument, "smtp: the EHLO name is malformed");
  }
  return ok();
}

Status send_mail(const SmtpSettings& settings, const MailMessage& message) {
  if (auto st = check_settings(settings); !st) return st;
  if (auto st = check_address(message.to, "the recipient"); !st) return st;
  asio::io_context io(1);
  Status outcome = fail(Errc::unavailable, "smtp: not sent");
  auto run = [&]() -> asio::awaitable<void> {
    Session session(io, settings);
    outcome = co_await session.send(message);
  };
  asio::co_spawn(io, run(), [&outcome](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      outcome = fail(Errc::unavailable, fmt::format("smtp: {}", ex.what()));
    }
  });
  io.run();
  return outcome;
}

}  // namespace torii::mail

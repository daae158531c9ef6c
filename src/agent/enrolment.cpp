#include "agent/enrolment.h"

#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include "agent/identity.h"
#include "agent/tls_client.h"
#include "base/version.h"
#include "crypto/x509.h"
#include "net/socket_deadline.h"

namespace torii::agent {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxAnswerBytes = 256u << 10;

struct Answer {
  unsigned status = 0;
  std::string body;
};

// POSTs a JSON body over HTTPS; the server's certificate must chain to ca_pem and name the
// host. Every step together must finish within `timeout`.
Result<Answer> post_json(const ServerUrl& url, std::string_view target, std::string body, std::string_view ca_pem,
                         std::chrono::seconds timeout) {
  auto tls = make_client_tls_context_for_pem(ca_pem);
  if (!tls) return tl::unexpected(tls.error());
  asio::io_context io;
  asio::ssl::stream<tcp::socket> stream(io, **tls);
  std::optional<Result<Answer>> result;

  auto exchange = [&]() -> asio::awaitable<void> {
    error_code ec;
    tcp::resolver resolver(io);
    net::Deadline deadline(io.get_executor(), timeout, [&] {
      resolver.cancel();
      error_code ignored;
      stream.next_layer().close(ignored);
    });
    auto failed = [&](std::string_view step, const std::string& why) {
      result = fail(Errc::unavailable, fmt::format("{} {}:{}: {}", step, url.host, url.port,
                                                   deadline.disarm() ? std::string("timed out") : why));
    };
    const auto endpoints = co_await resolver.async_resolve(url.host, std::to_string(url.port),
                                                           asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("cannot resolve", ec.message());
    co_await asio::async_connect(stream.next_layer(), endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("cannot connect to", ec.message());
    if (!expect_server_name(stream.native_handle(), url.host)) co_return failed("cannot verify", "bad host name");
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("TLS handshake with", tls_error_text(ec));

    http::request<http::string_body> request{http::verb::post, std::string(target), 11};
    const bool v6 = url.host.find(':') != std::string::npos;
    request.set(http::field::host,
                v6 ? fmt::format("[{}]:{}", url.host, url.port) : fmt::format("{}:{}", url.host, url.port));
    request.set(http::field::user_agent, fmt::format("torii-agent/{}", kVersion));
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, "application/json");
    request.body() = std::move(body);
    request.prepare_payload();
    co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("sending to", tls_error_text(ec));

    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxAnswerBytes);
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("reading the answer of", tls_error_text(ec));
    if (deadline.disarm()) co_return failed("waiting for", "timed out");
    result = Answer{parser.get().result_int(), std::move(parser.get().body())};
    error_code ignored;
    stream.next_layer().close(ignored);
  };
  asio::co_spawn(io, exchange(), asio::detached);
  io.run();
  if (!result) return fail(Errc::unavailable, "the exchange with the console did not finish");
  return std::move(*result);
}

// The code, title and field problems of an error answer (RFC 9457 problem details), for
// the operator.
std::string explain(const Answer& answer) {
  const auto json = nlohmann::json::parse(answer.body, nullptr, false);
  std::string text = fmt::format("HTTP {}", answer.status);
  if (json.is_object()) {
    for (const char* name : {"code", "title"}) {
      if (const auto it = json.find(name); it != json.end() && it->is_string()) text += ": " + it->get<std::string>();
    }
    if (const auto it = json.find("errors"); it != json.end() && it->is_array()) {
      for (const auto& p : *it) {
        const auto field = p.is_object() ? p.find("field") : p.end();
        const auto message = p.is_object() ? p.find("message") : p.end();
        if (field != p.end() && message != p.end() && field->is_string() && message->is_string()) {
          text += fmt::format("; {}: {}", field->get<std::string>(), message->get<std::string>());
        }
      }
    }
  }
  return text;
}

}  // namespace

Result<EnrolmentAnswer> parse_enrolment_answer(std::string_view body) {
  const auto json = nlohmann::json::parse(body, nullptr, false);
  const auto member = [&](const char* name) -> const nlohmann::json* {
    if (!json.is_object()) return nullptr;
    const auto it = json.find(name);
    return it != json.end() ? &*it : nullptr;
  };
  const auto text = [&](const char* name) -> std::string {
    const auto* value = member(name);
    return value != nullptr && value->is_string() ? value->get<std::string>() : std::string();
  };
  EnrolmentAnswer answer{text("device"), text("certificate_pem"), text("ca_bundle_pem"), std::nullopt};
  if (answer.device_id.empty() || answer.certificate_pem.empty() || answer.ca_bundle_pem.empty()) {
    return fail(Errc::corrupt, "the console's answer lacks the device, its certificate or the CA bundle");
  }
  if (const auto* key = member("command_key"); key != nullptr) {
    if (key->is_string()) answer.command_key = parse_command_key(key->get_ref<const std::string&>());
    if (!answer.command_key) return fail(Errc::corrupt, "the console's command_key is not an Ed25519 public key");
  }
  return answer;
}

Result<Enrolled> enrol(const EnrolmentRequest& request) {
  auto url = parse_server_url(request.server_url);
  if (!url) return tl::unexpected(url.error());
  if (request.timeout <= std::chrono::seconds(0)) return fail(Errc::invalid_argument, "the timeout must be positive");
  if (request.token.empty() || request.token.size() > 512) {
    return fail(Errc::invalid_argument, "the enrolment token is empty or too long");
  }
  auto key = crypto::generate_p256_key();
  if (!key) return tl::unexpected(key.error());
  auto csr = crypto::make_csr(*key, "torii-agent");
  if (!csr) return tl::unexpected(csr.error());

  const nlohmann::json body = {{"token", request.token}, {"csr", *csr}};
  auto answer = post_json(*url, "/api/v1/enrol", body.dump(), request.ca_pem, request.timeout);
  if (!answer) return tl::unexpected(answer.error());
  switch (answer->status) {
    case 201: break;
    case 401:
    case 403:
      return fail(Errc::authentication_failed,
                  fmt::format("the console refused the enrolment token ({}): it is unknown, used or expired, or "
                              "the device is disabled; ask for a new token",
                              explain(*answer)));
    case 429: return fail(Errc::limit_exceeded, "too many attempts from this address: wait, then try again");
    default:
      return fail(answer->status == 422 ? Errc::invalid_argument : Errc::unavailable,
                  "the console did not enrol the device: " + explain(*answer));
  }

  auto read = parse_enrolment_answer(answer->body);
  if (!read) return tl::unexpected(read.error());
  const auto& device_id = read->device_id;
  const auto& certificate = read->certificate_pem;
  if (auto matches = crypto::check_key_matches_certificate(*key, certificate); !matches) {
    return fail(Errc::corrupt, "the certificate the console returned is not for this device's key");
  }
  auto info = crypto::inspect_certificate(certificate);
  if (!info) return fail(Errc::corrupt, "the certificate the console returned: " + info.error().message);
  if (info->subject_cn != device_id) {
    return fail(Errc::corrupt, fmt::format("the certificate names '{}', the answer '{}'", info->subject_cn, device_id));
  }
  if (auto stored =
          store_identity(request.state_dir, *key, certificate, read->ca_bundle_pem, device_id, read->command_key);
      !stored) {
    return tl::unexpected(stored.error());
  }
  if (!read->command_key) {
    spdlog::warn(
        "device {} enrolled, but the console sent no command key: the device will refuse every command "
        "until it enrols again with a console that sends one",
        device_id);
  }
  return Enrolled{device_id, info->serial_hex, info->not_after, read->command_key.has_value()};
}

}  // namespace torii::agent

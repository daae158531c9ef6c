// TLS for the agent's connections (the gateway's MQTT listener, the console's HTTPS): the
// same profile as torii's listeners from the client's side: TLS 1.2 or 1.3, AEAD suites with
// forward secrecy, no compression, no renegotiation; the server's certificate must chain to
// the CA bundle given (torii's CA, pinned: the system's trust store is not used) and name
// the host connected to.
#pragma once

#include <openssl/ssl.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

#include "base/error.h"

namespace boost::asio::ssl {
class context;
}

namespace torii::agent {

struct ClientCredentials {
  std::filesystem::path certificate;
  std::filesystem::path key;
};

[[nodiscard]] Result<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context(
    const std::filesystem::path& ca_bundle, const std::optional<ClientCredentials>& credentials);

// The same without client credentials, trusting the CA certificates of PEM text (the
// enrolment's --ca file, read before the agent gave root up).
[[nodiscard]] Result<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context_for_pem(
    std::string_view ca_bundle_pem);

// Asks the connection to check that the server's certificate names `host` (a DNS name,
// also sent as SNI, or an IP address). false when OpenSSL refuses the name.
[[nodiscard]] bool expect_server_name(SSL* ssl, const std::string& host);

// OpenSSL's reason for a TLS error code of Asio's ssl category; the message otherwise.
[[nodiscard]] std::string tls_error_text(const boost::system::error_code& ec);

}  // namespace torii::agent

// TLS profiles for torii's listeners (JPCERT VI-2, VI-3; IIIT N2, DI3).
//
// TLS 1.2 or 1.3 only, AEAD suites with forward secrecy only, no compression, no
// renegotiation, no session tickets (so every session has fresh ephemeral keys), server
// preference for suites. With client verification on (the device gateway), a client must
// present a certificate that chains to torii's CA and is not on its revocation list.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "config/config.h"
#include "crypto/secret.h"

namespace boost::asio::ssl {
class context;
}

namespace torii::net {

struct TlsCredentials {
  std::string certificate_chain_pem;  // leaf first, then the issuing CA
  crypto::SecretBytes private_key_pem;
};

struct ClientVerification {
  std::vector<std::string> trusted_ca_pems;  // root and issuing CA
  std::optional<std::string> crl_pem;        // checked for the client's certificate
};

[[nodiscard]] Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const config::TlsConfig& tls, const TlsCredentials& credentials,
    const std::optional<ClientVerification>& client_verification);

}  // namespace torii::net

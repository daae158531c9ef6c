#include "agent/tls_client.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <array>

#include <fmt/format.h>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>

namespace torii::agent {

namespace asio = boost::asio;

namespace {

constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kCiphersuites13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

std::string openssl_reason() {
  std::array<char, 256> buffer{};
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  ERR_error_string_n(code, buffer.data(), buffer.size());
  return buffer.data();
}

// The profile, without the CAs to trust.
Result<std::shared_ptr<asio::ssl::context>> make_profile() {
  auto tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* ctx = tls->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(ctx, kCiphers12) != 1 || SSL_CTX_set_ciphersuites(ctx, kCiphersuites13) != 1) {
    return fail(Errc::crypto_error, "cannot set the TLS suites: " + openssl_reason());
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_verify_depth(ctx, 3);
  return tls;
}

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> make_client_tls_context_for_pem(std::string_view ca_bundle_pem) {
  auto tls = make_profile();
  if (!tls) return tls;
  boost::system::error_code ec;
  (*tls)->add_certificate_authority(asio::buffer(ca_bundle_pem.data(), ca_bundle_pem.size()), ec);
  if (ec) return fail(Errc::invalid_argument, "the CA bundle holds no usable PEM certificate: " + tls_error_text(ec));
  return tls;
}

Result<std::shared_ptr<asio::ssl::context>> make_client_tls_context(
    const std::filesystem::path& ca_bundle, const std::optional<ClientCredentials>& credentials) {
  auto made = make_profile();
  if (!made) return made;
  auto tls = std::move(*made);
  SSL_CTX* ctx = tls->native_handle();
  if (SSL_CTX_load_verify_locations(ctx, ca_bundle.c_str(), nullptr) != 1) {
    return fail(Errc::invalid_argument,
                fmt::format("cannot load the CA bundle {}: {}", ca_bundle.string(), openssl_reason()));
  }
  if (credentials) {
    // The device's certificate goes alone (with whatever its file holds after it): OpenSSL
    // would otherwise complete its chain from the CA bundle, which the gateway trusts
    // already, and the gateway parses and keeps every certificate sent for as long as the
    // connection lasts (about 4 KiB each).
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    if (SSL_CTX_use_certificate_chain_file(ctx, credentials->certificate.c_str()) != 1) {
      return fail(Errc::invalid_argument, fmt::format("cannot load the certificate {}: {}",
                                                      credentials->certificate.string(), openssl_reason()));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, credentials->key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return fail(Errc::invalid_argument, fmt::format("cannot use the key {} with the certificate: {}",
                                                      credentials->key.string(), openssl_reason()));
    }
  }
  return tls;
}

bool expect_server_name(SSL* ssl, const std::string& host) {
  boost::system::error_code ec;
  (void)asio::ip::make_address(host, ec);
  if (!ec) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
  // SSL_set_tlsext_host_name, without its macro's C cast.
  return SSL_set1_host(ssl, host.c_str()) == 1 &&
         SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(host.c_str())) == 1;
}

std::string tls_error_text(const boost::system::error_code& ec) {
  if (ec.category() == asio::error::get_ssl_category()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buffer.data(), buffer.size());
    return buffer.data();
  }
  return ec.message();
}

}  // namespace torii::agent

#include "net/tls_context.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <boost/asio/ssl/context.hpp>

#include "crypto/openssl.h"

namespace torii::net {
namespace {

using crypto::ossl::drain_errors;

crypto::ossl::BioPtr memory_bio(std::string_view data) {
  return crypto::ossl::BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

Status add_trusted(SSL_CTX* ctx, const std::string& pem) {
  const auto bio = memory_bio(pem);
  const crypto::ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return fail(Errc::invalid_argument, "trusted CA certificate is not valid PEM");
  if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), cert.get()) != 1) {
    return fail(Errc::crypto_error, "cannot add a trusted CA: " + drain_errors());
  }
  // The CA names in the CertificateRequest tell clients which certificate to send.
  SSL_CTX_add_client_CA(ctx, cert.get());
  return ok();
}

}  // namespace

Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const config::TlsConfig& tls, const TlsCredentials& credentials,
    const std::optional<ClientVerification>& client_verification) {
  auto context = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  const int min_version = tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return fail(Errc::crypto_error, "cannot set TLS versions: " + drain_errors());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_TICKET | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // Nothing can be resumed (no cache, no tickets), so TLS 1.3 session tickets would be
  // built, sent and kept for nothing: none are issued.
  if (SSL_CTX_set_num_tickets(ctx, 0) != 1) return fail(Errc::crypto_error, "cannot turn off session tickets");
  // OpenSSL frees a connection's record buffers (about 34 KiB) whenever they are empty: an
  // idle connection, the common case for a device gateway, then holds none.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!tls.ciphers_tls12.empty() && SSL_CTX_set_cipher_list(ctx, tls.ciphers_tls12.c_str()) != 1) {
    return fail(Errc::invalid_argument, "tls.ciphers_tls12 names no usable suite: " + drain_errors());
  }
  if (SSL_CTX_set_ciphersuites(ctx, tls.ciphersuites_tls13.c_str()) != 1) {
    return fail(Errc::invalid_argument, "tls.ciphersuites_tls13 names no usable suite: " + drain_errors());
  }
  if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
    return fail(Errc::crypto_error, "cannot set key exchange groups: " + drain_errors());
  }

  boost::system::error_code ec;
  context->use_certificate_chain(
      boost::asio::buffer(credentials.certificate_chain_pem.data(), credentials.certificate_chain_pem.size()), ec);
  if (ec) return fail(Errc::invalid_argument, "server certificate chain is not usable: " + ec.message());
  context->use_private_key(boost::asio::buffer(credentials.private_key_pem.data(), credentials.private_key_pem.size()),
                           boost::asio::ssl::context::pem, ec);
  if (ec) return fail(Errc::invalid_argument, "server private key is not usable");
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return fail(Errc::invalid_argument, "server private key does not match its certificate");
  }

  if (client_verification) {
    for (const auto& pem : client_verification->trusted_ca_pems) {
      if (auto st = add_trusted(ctx, pem); !st) return tl::unexpected(st.error());
    }
    if (client_verification->crl_pem) {
      const auto bio = memory_bio(*client_verification->crl_pem);
      const crypto::ossl::CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
      if (!crl) return fail(Errc::invalid_argument, "revocation list is not valid PEM");
      if (X509_STORE_add_crl(SSL_CTX_get_cert_store(ctx), crl.get()) != 1) {
        return fail(Errc::crypto_error, "cannot add the revocation list: " + drain_errors());
      }
      X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_CRL_CHECK);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_verify_depth(ctx, 3);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return context;
}

}  // namespace torii::net

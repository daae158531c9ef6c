// Small shared helpers over OpenSSL for the modules that call it directly (crypto, net):
// owning pointers for its objects and the text of its error queue.
#pragma once

#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace torii::crypto::ossl {

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using CrlPtr = std::unique_ptr<X509_CRL, Deleter<X509_CRL_free>>;

// Empties this thread's error queue into "reason; reason" ("no reason given" when empty).
// OpenSSL's reason strings name the failing operation and never carry key material.
[[nodiscard]] std::string drain_errors();

}  // namespace torii::crypto::ossl

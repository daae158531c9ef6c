#include "crypto/openssl.h"

#include <array>

#include <openssl/err.h>

namespace torii::crypto::ossl {

std::string drain_errors() {
  std::string reasons;
  while (const unsigned long code = ERR_get_error()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    if (!reasons.empty()) reasons += "; ";
    reasons += buffer.data();
  }
  return reasons.empty() ? "no reason given" : reasons;
}

}  // namespace torii::crypto::ossl

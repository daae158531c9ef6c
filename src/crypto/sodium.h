// libsodium primitives used across torii. Nothing here is home-made cryptography: each
// function is a thin, typed wrapper over one libsodium call.
//
// init() must succeed before any other function is called (main() and the test main do it).
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/error.h"
#include "base/random.h"
#include "crypto/secret.h"

namespace torii::crypto {

[[nodiscard]] Status init();

// Random bytes from the operating system's CSPRNG (randombytes_buf).
class SystemRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override;
};

using Sha256 = std::array<std::uint8_t, 32>;
[[nodiscard]] Sha256 sha256(ByteView data);
[[nodiscard]] Sha256 sha256(std::string_view data);

// Constant-time comparison (sodium_memcmp) for MACs, token hashes and the like.
[[nodiscard]] bool equal_constant_time(ByteView a, ByteView b);

// --- AEAD: XChaCha20-Poly1305 (IETF) -----------------------------------------------------
inline constexpr std::size_t kAeadKeyBytes = 32;
inline constexpr std::size_t kAeadNonceBytes = 24;
inline constexpr std::size_t kAeadTagBytes = 16;

// Returns nonce || ciphertext || tag. The nonce is random (192 bits: safe to draw at random).
[[nodiscard]] Result<Bytes> aead_seal(const SecretBytes& key, ByteView plaintext, ByteView associated_data,
                                      Random& random);
// Fails with authentication_failed when the key, the associated data or any byte differs.
[[nodiscard]] Result<SecretBytes> aead_open(const SecretBytes& key, ByteView sealed, ByteView associated_data);

[[nodiscard]] SecretBytes random_key(Random& random, std::size_t size = kAeadKeyBytes);

// --- Password hashing: Argon2id ----------------------------------------------------------
inline constexpr std::size_t kArgonSaltBytes = 16;
struct Argon2Params {
  unsigned long long ops_limit;
  std::size_t mem_limit_bytes;
};
// libsodium's "moderate" profile: 3 passes, 256 MiB.
[[nodiscard]] Argon2Params argon2_moderate();
// Derives a key of key_size bytes from a passphrase.
[[nodiscard]] Result<SecretBytes> argon2id_derive(std::string_view passphrase, ByteView salt,
                                                  const Argon2Params& params, std::size_t key_size = kAeadKeyBytes);

// --- Signatures: Ed25519 -----------------------------------------------------------------
inline constexpr std::size_t kEd25519PublicKeyBytes = 32;
inline constexpr std::size_t kEd25519SecretKeyBytes = 64;
inline constexpr std::size_t kEd25519SignatureBytes = 64;

struct Ed25519KeyPair {
  Bytes public_key;
  SecretBytes secret_key;
};
[[nodiscard]] Ed25519KeyPair ed25519_generate();
[[nodiscard]] Result<Bytes> ed25519_sign(const SecretBytes& secret_key, ByteView message);
[[nodiscard]] bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature);

// --- Tokens ------------------------------------------------------------------------------
// A fresh 256-bit token, base64url: for one-time links and API tokens, shown once.
[[nodiscard]] std::string random_token(Random& random);
// What is stored instead of a token: hex of SHA-256 over a domain tag and the token. A
// slow hash is not needed: tokens carry 256 bits of entropy.
[[nodiscard]] std::string token_hash(std::string_view domain, std::string_view token);

}  // namespace torii::crypto

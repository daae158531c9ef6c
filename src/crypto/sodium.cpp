#include "crypto/sodium.h"

#include <sodium.h>

namespace torii::crypto {

Status init() {
  if (sodium_init() < 0) return fail(Errc::crypto_error, "libsodium could not be initialised");
  return ok();
}

void SystemRandom::fill(std::span<std::uint8_t> out) { randombytes_buf(out.data(), out.size()); }

Sha256 sha256(ByteView data) {
  Sha256 out{};
  crypto_hash_sha256(out.data(), data.data(), data.size());
  return out;
}

Sha256 sha256(std::string_view data) { return sha256(as_bytes(data)); }

bool equal_constant_time(ByteView a, ByteView b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<Bytes> aead_seal(const SecretBytes& key, ByteView plaintext, ByteView associated_data, Random& random) {
  if (key.size() != kAeadKeyBytes) return fail(Errc::invalid_argument, "AEAD key must be 32 bytes");
  Bytes out(kAeadNonceBytes + plaintext.size() + kAeadTagBytes);
  random.fill(std::span(out.data(), kAeadNonceBytes));
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kAeadNonceBytes, &written, plaintext.data(),
                                                 plaintext.size(), associated_data.data(), associated_data.size(),
                                                 nullptr, out.data(), key.data()) != 0) {
    return fail(Errc::crypto_error, "AEAD encryption failed");
  }
  out.resize(kAeadNonceBytes + written);
  return out;
}

Result<SecretBytes> aead_open(const SecretBytes& key, ByteView sealed, ByteView associated_data) {
  if (key.size() != kAeadKeyBytes) return fail(Errc::invalid_argument, "AEAD key must be 32 bytes");
  if (sealed.size() < kAeadNonceBytes + kAeadTagBytes) return fail(Errc::corrupt, "sealed value is too short");
  SecretBytes out(sealed.size() - kAeadNonceBytes - kAeadTagBytes);
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &written, nullptr, sealed.data() + kAeadNonceBytes,
                                                 sealed.size() - kAeadNonceBytes, associated_data.data(),
                                                 associated_data.size(), sealed.data(), key.data()) != 0) {
    return fail(Errc::authentication_failed, "sealed value does not open with this key and associated data");
  }
  return out;
}

SecretBytes random_key(Random& random, std::size_t size) {
  SecretBytes key(size);
  random.fill(key.span());
  return key;
}

Argon2Params argon2_moderate() { return {crypto_pwhash_OPSLIMIT_MODERATE, crypto_pwhash_MEMLIMIT_MODERATE}; }

Result<SecretBytes> argon2id_derive(std::string_view passphrase, ByteView salt, const Argon2Params& params,
                                    std::size_t key_size) {
  if (salt.size() != crypto_pwhash_SALTBYTES) return fail(Errc::invalid_argument, "Argon2id salt must be 16 bytes");
  SecretBytes key(key_size);
  if (crypto_pwhash(key.data(), key.size(), passphrase.data(), passphrase.size(), salt.data(), params.ops_limit,
                    params.mem_limit_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return fail(Errc::crypto_error, "Argon2id derivation failed (out of memory?)");
  }
  return key;
}

Ed25519KeyPair ed25519_generate() {
  Ed25519KeyPair pair{Bytes(kEd25519PublicKeyBytes), SecretBytes(kEd25519SecretKeyBytes)};
  crypto_sign_keypair(pair.public_key.data(), pair.secret_key.data());
  return pair;
}

Result<Bytes> ed25519_sign(const SecretBytes& secret_key, ByteView message) {
  if (secret_key.size() != kEd25519SecretKeyBytes) return fail(Errc::invalid_argument, "Ed25519 key must be 64 bytes");
  Bytes signature(kEd25519SignatureBytes);
  crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(), secret_key.data());
  return signature;
}

bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature) {
  if (public_key.size() != kEd25519PublicKeyBytes || signature.size() != kEd25519SignatureBytes) return false;
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(), public_key.data()) == 0;
}

std::string random_token(Random& random) {
  std::array<std::uint8_t, 32> raw{};
  random.fill(raw);
  std::string token = base64url_encode(raw);
  sodium_memzero(raw.data(), raw.size());
  return token;
}

std::string token_hash(std::string_view domain, std::string_view token) {
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  crypto_hash_sha256_update(&state, reinterpret_cast<const unsigned char*>(domain.data()), domain.size());
  const unsigned char separator = 0;
  crypto_hash_sha256_update(&state, &separator, 1);
  crypto_hash_sha256_update(&state, reinterpret_cast<const unsigned char*>(token.data()), token.size());
  Sha256 out{};
  crypto_hash_sha256_final(&state, out.data());
  return hex_encode(out);
}

}  // namespace torii::crypto

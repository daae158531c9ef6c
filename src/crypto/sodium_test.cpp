#include "crypto/sodium.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace torii::crypto {
namespace {

TEST(Sha256, MatchesKnownVector) {
  EXPECT_EQ(hex_encode(sha256(std::string_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Aead, OpensOnlyWithSameKeyAndAssociatedData) {
  SystemRandom random;
  const SecretBytes key = random_key(random);
  const auto sealed = aead_seal(key, as_bytes("reading 21.5"), as_bytes("row:7"), random);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->size(), kAeadNonceBytes + 12 + kAeadTagBytes);

  const auto opened = aead_open(key, *sealed, as_bytes("row:7"));
  ASSERT_TRUE(opened);
  EXPECT_EQ(to_string(opened->view()), "reading 21.5");

  EXPECT_TRUE(aead_open(key, *sealed, as_bytes("row:8")).error().is(Errc::authentication_failed));
  EXPECT_TRUE(aead_open(random_key(random), *sealed, as_bytes("row:7")).error().is(Errc::authentication_failed));
  Bytes flipped = *sealed;
  flipped[kAeadNonceBytes] ^= 1;
  EXPECT_TRUE(aead_open(key, flipped, as_bytes("row:7")).error().is(Errc::authentication_failed));
  EXPECT_TRUE(aead_open(key, Bytes(10), as_bytes("row:7")).error().is(Errc::corrupt));
}

TEST(Aead, SealingTwiceGivesDifferentCiphertexts) {
  SystemRandom random;
  const SecretBytes key = random_key(random);
  EXPECT_NE(*aead_seal(key, as_bytes("x"), {}, random), *aead_seal(key, as_bytes("x"), {}, random));
}

TEST(Argon2id, SamePassphraseAndSaltGiveSameKey) {
  const Argon2Params fast{1, 8u << 20};  // small parameters: the test checks behaviour, not cost
  const Bytes salt(kArgonSaltBytes, 7);
  const auto a = argon2id_derive("correct horse battery staple", salt, fast);
  const auto b = argon2id_derive("correct horse battery staple", salt, fast);
  const auto c = argon2id_derive("correct horse battery stapler", salt, fast);
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(equal_constant_time(a->view(), b->view()));
  EXPECT_FALSE(equal_constant_time(a->view(), c->view()));
  EXPECT_FALSE(argon2id_derive("x", Bytes(3), fast));
}

TEST(Ed25519, VerifiesOwnSignatureOnly) {
  const auto pair = ed25519_generate();
  const auto sig = ed25519_sign(pair.secret_key, as_bytes("checkpoint 42"));
  ASSERT_TRUE(sig);
  EXPECT_TRUE(ed25519_verify(pair.public_key, as_bytes("checkpoint 42"), *sig));
  EXPECT_FALSE(ed25519_verify(pair.public_key, as_bytes("checkpoint 43"), *sig));
  EXPECT_FALSE(ed25519_verify(ed25519_generate().public_key, as_bytes("checkpoint 42"), *sig));
}

TEST(Token, IsLongRandomAndHashedWithDomainSeparation) {
  SystemRandom random;
  const std::string a = random_token(random);
  const std::string b = random_token(random);
  EXPECT_EQ(a.size(), 43u);  // 256 bits in base64url
  EXPECT_NE(a, b);
  EXPECT_EQ(token_hash("setup", a), token_hash("setup", a));
  EXPECT_NE(token_hash("setup", a), token_hash("reset", a));
  EXPECT_EQ(token_hash("setup", a).find(a), std::string::npos);
}

}  // namespace
}  // namespace torii::crypto

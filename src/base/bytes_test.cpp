#include "base/bytes.h"

#include <gtest/gtest.h>

namespace torii {
namespace {

TEST(Hex, RoundTripsAndRejectsBadInput) {
  const Bytes data{0x00, 0x7f, 0x80, 0xff};
  EXPECT_EQ(hex_encode(data), "007f80ff");
  EXPECT_EQ(hex_decode("007F80ff"), data);
  EXPECT_FALSE(hex_decode("abc"));
  EXPECT_FALSE(hex_decode("zz"));
}

TEST(Base64Url, MatchesRfc4648Vectors) {
  // RFC 4648 §10 vectors, in the URL alphabet without padding.
  EXPECT_EQ(base64url_encode(as_bytes("")), "");
  EXPECT_EQ(base64url_encode(as_bytes("f")), "Zg");
  EXPECT_EQ(base64url_encode(as_bytes("fo")), "Zm8");
  EXPECT_EQ(base64url_encode(as_bytes("foo")), "Zm9v");
  EXPECT_EQ(base64url_encode(as_bytes("foob")), "Zm9vYg");
  EXPECT_EQ(base64url_encode(as_bytes("fooba")), "Zm9vYmE");
  EXPECT_EQ(base64url_encode(as_bytes("foobar")), "Zm9vYmFy");
  const Bytes high{0xfb, 0xff};
  EXPECT_EQ(base64url_encode(high), "-_8");
}

TEST(Base64Url, DecodesAndRejectsNonCanonicalInput) {
  EXPECT_EQ(to_string(*base64url_decode("Zm9vYmFy")), "foobar");
  EXPECT_EQ(to_string(*base64url_decode("Zm9vYg")), "foob");
  EXPECT_FALSE(base64url_decode("Zm9vY"));   // impossible length
  EXPECT_FALSE(base64url_decode("Zm9v+g"));  // standard alphabet, not URL
  EXPECT_FALSE(base64url_decode("Zh"));      // leftover bits set
}

}  // namespace
}  // namespace torii

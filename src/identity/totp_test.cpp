#include "identity/totp.h"

#include <qrencode.h>

#include <algorithm>
#include <memory>
#include <regex>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "testing/fakes.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;
using crypto::SecretBytes;
using std::chrono::system_clock;

SecretBytes secret_of(std::string_view text) { return SecretBytes(as_bytes(text)); }

constexpr system_clock::time_point at_unix_seconds(std::int64_t seconds) {
  return system_clock::time_point{std::chrono::seconds{seconds}};
}

// Mid-way through a step, so that neither neighbour is a rounding accident.
constexpr system_clock::time_point kNow = at_unix_seconds(1'790'000'015);

// RFC 6238 Appendix B, SHA1 rows: the key is the ASCII string "12345678901234567890".
TEST(Totp, CodesMatchTheRfc6238Sha1TestVectors) {
  const SecretBytes secret = secret_of("12345678901234567890");
  const std::pair<std::int64_t, std::string_view> vectors[] = {
      {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
      {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
  };
  for (const auto& [unix_seconds, eight_digits] : vectors) {
    // Six digits are the eight-digit value mod 10^6: its last six digits.
    const std::string expected(eight_digits.substr(2));
    EXPECT_EQ(totp_code(secret, unix_seconds / 30), expected) << "T = " << unix_seconds;
  }
  // The last row lies beyond what a nanosecond system_clock can hold (year 2262), so the
  // time-based checks stop at 2000000000.
  for (const auto& [unix_seconds, eight_digits] : std::span(vectors).first(5)) {
    const std::string expected(eight_digits.substr(2));
    EXPECT_EQ(totp_step(at_unix_seconds(unix_seconds)), unix_seconds / 30) << "T = " << unix_seconds;
    EXPECT_EQ(verify_totp(secret, expected, at_unix_seconds(unix_seconds), -1), unix_seconds / 30)
        << "T = " << unix_seconds;
  }
}

TEST(Totp, TheStepIsUnixTimeOverThirtySecondsRoundedDown) {
  EXPECT_EQ(totp_step(at_unix_seconds(0)), 0);
  EXPECT_EQ(totp_step(at_unix_seconds(29) + 999ms), 0);
  EXPECT_EQ(totp_step(at_unix_seconds(30)), 1);
  EXPECT_EQ(totp_step(at_unix_seconds(59)), 1);
  EXPECT_EQ(totp_step(at_unix_seconds(-1)), -1);
}

TEST(Totp, ACodeFromTheCurrentStepIsAcceptedOnce) {
  const SecretBytes secret = secret_of("12345678901234567890");
  const std::int64_t step = totp_step(kNow);
  const std::string code = totp_code(secret, step);
  ASSERT_EQ(verify_totp(secret, code, kNow, step - 10), step);
  // The caller stores the accepted step; the same code is then refused for the rest of it.
  EXPECT_EQ(verify_totp(secret, code, kNow, step), std::nullopt);
  EXPECT_EQ(verify_totp(secret, code, kNow + 10s, step), std::nullopt);
}

TEST(Totp, ACodeOneStepEitherSideOfNowIsAccepted) {
  const SecretBytes secret = secret_of("12345678901234567890");
  const std::int64_t step = totp_step(kNow);
  EXPECT_EQ(verify_totp(secret, totp_code(secret, step - 1), kNow, step - 10), step - 1);
  EXPECT_EQ(verify_totp(secret, totp_code(secret, step + 1), kNow, step - 10), step + 1);
}

TEST(Totp, ACodeTwoStepsFromNowIsRefused) {
  const SecretBytes secret = secret_of("12345678901234567890");
  const std::int64_t step = totp_step(kNow);
  for (const std::int64_t far : {step - 2, step + 2}) {
    const std::string code = totp_code(secret, far);
    for (std::int64_t near = step - 1; near <= step + 1; ++near) {
      ASSERT_NE(code, totp_code(secret, near)) << "pick another kNow: the codes collide";
    }
    EXPECT_EQ(verify_totp(secret, code, kNow, step - 10), std::nullopt) << "step " << far - step;
  }
}

TEST(Totp, ACodeForAStepNoLaterThanTheLastUsedIsRefused) {
  const SecretBytes secret = secret_of("12345678901234567890");
  const std::int64_t step = totp_step(kNow);
  // After the next step's code was accepted (a fast clock), the current one no longer is.
  EXPECT_EQ(verify_totp(secret, totp_code(secret, step), kNow, step + 1), std::nullopt);
  EXPECT_EQ(verify_totp(secret, totp_code(secret, step - 1), kNow, step - 1), std::nullopt);
  // The last used step itself is refused, the one after it is accepted.
  EXPECT_EQ(verify_totp(secret, totp_code(secret, step + 1), kNow, step), step + 1);
}

TEST(Totp, ACodeFromAnotherSecretIsRefused) {
  const SecretBytes secret = secret_of("12345678901234567890");
  const SecretBytes other = secret_of("12345678901234567891");
  const std::int64_t step = totp_step(kNow);
  for (std::int64_t near = step - 1; near <= step + 1; ++near) {
    ASSERT_NE(totp_code(other, step), totp_code(secret, near));
  }
  EXPECT_EQ(verify_totp(secret, totp_code(other, step), kNow, step - 10), std::nullopt);
}

TEST(Totp, OnlyExactlySixAsciiDigitsAreConsidered) {
  const SecretBytes secret = secret_of("12345678901234567890");
  const std::int64_t step = totp_step(kNow);
  const std::string code = totp_code(secret, step);
  ASSERT_EQ(verify_totp(secret, code, kNow, step - 10), step);
  const std::string refused[] = {
      "",
      code.substr(0, 5),
      code + "0",
      " " + code,
      code + " ",
      code.substr(0, 3) + " " + code.substr(3),
      code.substr(0, 5) + "a",
      code.substr(0, 4) + "\xd9\xa0",  // six bytes, the last two ARABIC-INDIC DIGIT ZERO
      code + std::string(1, '\0'),
      std::string(10'000, '1'),
  };
  for (const std::string& input : refused) {
    EXPECT_EQ(verify_totp(secret, input, kNow, step - 10), std::nullopt) << '"' << input << '"';
  }
}

TEST(Totp, TheSecretIsTwentyBytesFromTheRandomSource) {
  testing::SeededRandom random(7);
  const SecretBytes secret = generate_totp_secret(random);
  ASSERT_EQ(secret.size(), kTotpSecretBytes);
  testing::SeededRandom same(7);
  Bytes expected(kTotpSecretBytes);
  same.fill(expected);
  EXPECT_EQ(hex_encode(secret.view()), hex_encode(expected));
  EXPECT_NE(hex_encode(generate_totp_secret(random).view()), hex_encode(secret.view()));
}

TEST(Totp, TheSecretIsShownAsRfc4648Base32WithoutPadding) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "MY"},
      {"fo", "MZXQ"},
      {"foo", "MZXW6"},
      {"foob", "MZXW6YQ"},
      {"fooba", "MZXW6YTB"},
      {"foobar", "MZXW6YTBOI"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(totp_secret_base32(secret_of(plain)), encoded) << '"' << plain << '"';
  }
  // Every symbol of the alphabet, and 20 bytes (160 bits) as 32 characters.
  const Bytes all_symbols = *hex_decode("00443214c74254b635cf84653a56d7c675be77df");
  EXPECT_EQ(totp_secret_base32(SecretBytes(all_symbols)), "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
}

TEST(Totp, TheUriNamesIssuerAndAccountPercentEncoded) {
  EXPECT_EQ(totp_uri("Acme IoT", "alice@example.com", secret_of("foobar")),
            "otpauth://totp/Acme%20IoT:alice%40example.com?secret=MZXW6YTBOI&issuer=Acme%20IoT"
            "&algorithm=SHA1&digits=6&period=30");
  // Only RFC 3986 unreserved characters pass; UTF-8 bytes and delimiters are encoded.
  EXPECT_EQ(totp_uri("a-b.c_d~e", "caf\xc3\xa9:x/y?z&w=1#", secret_of("f")),
            "otpauth://totp/a-b.c_d~e:caf%C3%A9%3Ax%2Fy%3Fz%26w%3D1%23?secret=MY&issuer=a-b.c_d~e"
            "&algorithm=SHA1&digits=6&period=30");
}

struct QrCodeFree {
  void operator()(QRcode* code) const noexcept { QRcode_free(code); }
};

// The symbol libqrencode draws for `text`, as the implementation asks for it.
std::unique_ptr<QRcode, QrCodeFree> encode(const std::string& text) {
  return std::unique_ptr<QRcode, QrCodeFree>(QRcode_encodeString(text.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1));
}

int view_box_size(const std::string& svg) {
  std::smatch m;
  if (!std::regex_search(svg, m, std::regex(R"re(viewBox="0 0 (\d+) (\d+)")re")) || m[1] != m[2]) return -1;
  return std::stoi(m[1]);
}

std::size_t count(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

constexpr std::string_view kUri =
    "otpauth://totp/Acme%20IoT:alice%40example.com?secret=MZXW6YTBOI&issuer=Acme%20IoT"
    "&algorithm=SHA1&digits=6&period=30";

TEST(QrCode, IsAStandaloneSvgWithOnePathAndNoStyle) {
  const auto svg = qr_code_svg(kUri);
  ASSERT_TRUE(svg) << svg.error().message;
  EXPECT_TRUE(svg->starts_with(R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 )")) << *svg;
  EXPECT_TRUE(svg->ends_with("</svg>\n"));
  EXPECT_EQ(count(*svg, "<svg"), 1U);
  EXPECT_EQ(count(*svg, "<path "), 1U);
  EXPECT_EQ(count(*svg, R"(fill="#fff")"), 1U);
  EXPECT_EQ(count(*svg, R"(fill="#000")"), 1U);
  EXPECT_EQ(svg->find("style"), std::string::npos);  // a strict CSP forbids inline style
  EXPECT_EQ(svg->find("alice"), std::string::npos);  // nothing of the text, so nothing to escape
}

TEST(QrCode, DrawsExactlyTheDarkModulesOfTheSymbolInsideAQuietZone) {
  const auto svg = qr_code_svg(kUri);
  ASSERT_TRUE(svg) << svg.error().message;
  const auto qr = encode(std::string(kUri));
  ASSERT_NE(qr, nullptr);
  const int width = qr->width;
  EXPECT_EQ(view_box_size(*svg), width + 8);

  std::set<std::pair<int, int>> expected;
  for (int y = 0; y < width; ++y) {
    for (int x = 0; x < width; ++x) {
      if ((qr->data[y * width + x] & 1) != 0) expected.emplace(x + 4, y + 4);
    }
  }
  std::set<std::pair<int, int>> drawn;
  const std::regex square(R"(M(\d+) (\d+)h1v1h-1z)");
  for (std::sregex_iterator it(svg->begin(), svg->end(), square), end; it != end; ++it) {
    drawn.emplace(std::stoi((*it)[1]), std::stoi((*it)[2]));
  }
  EXPECT_EQ(drawn, expected);

  // The quiet zone is empty.
  for (const auto& [x, y] : drawn) {
    EXPECT_TRUE(x >= 4 && y >= 4 && x < width + 4 && y < width + 4) << x << "," << y;
  }
  // The three finder patterns (a dark 7x7 ring around a dark 3x3 centre) sit in the top-left,
  // top-right and bottom-left corners, four modules in from the edge.
  EXPECT_NE(svg->find("M4 4h1v1h-1z"), std::string::npos);
  for (const auto& [left, top] : {std::pair{4, 4}, std::pair{width - 3, 4}, std::pair{4, width - 3}}) {
    for (int dy = 0; dy < 7; ++dy) {
      for (int dx = 0; dx < 7; ++dx) {
        const bool ring = dx == 0 || dx == 6 || dy == 0 || dy == 6;
        const bool centre = dx >= 2 && dx <= 4 && dy >= 2 && dy <= 4;
        EXPECT_EQ(drawn.contains({left + dx, top + dy}), ring || centre)
            << "finder at " << left << "," << top << " module " << dx << "," << dy;
      }
    }
  }
}

TEST(QrCode, GrowsWithTheLengthOfTheText) {
  const auto short_text = qr_code_svg("otpauth://totp/a:b?secret=MY");
  const auto long_text = qr_code_svg(std::string(kUri) + "&" + std::string(300, 'x'));
  ASSERT_TRUE(short_text);
  ASSERT_TRUE(long_text);
  EXPECT_LT(view_box_size(*short_text), view_box_size(*long_text));
  EXPECT_GT(view_box_size(*short_text), 0);
}

TEST(QrCode, TextThatDoesNotFitIsRefused) {
  const auto too_long = qr_code_svg(std::string(8000, 'x'));
  ASSERT_FALSE(too_long);
  EXPECT_TRUE(too_long.error().is(Errc::invalid_argument)) << too_long.error().message;
  // A NUL would cut the text short in libqrencode: refused instead of encoding less.
  const auto with_nul = qr_code_svg(std::string_view("abc\0def", 7));
  ASSERT_FALSE(with_nul);
  EXPECT_TRUE(with_nul.error().is(Errc::invalid_argument));
}

std::string lower_case(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return text;
}

TEST(RecoveryCode, TenDistinctCodesOfFourGroupsOfFourLowerCaseBase32) {
  testing::SeededRandom random(11);
  const std::vector<std::string> codes = generate_recovery_codes(random);
  ASSERT_EQ(codes.size(), kRecoveryCodeCount);
  EXPECT_EQ(codes.size(), 10U);
  const std::regex shape("[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}");
  for (const std::string& code : codes) EXPECT_TRUE(std::regex_match(code, shape)) << code;
  EXPECT_EQ(std::set<std::string>(codes.begin(), codes.end()).size(), codes.size());
}

TEST(RecoveryCode, EachCodeIsEightyBitsFromTheRandomSource) {
  testing::SeededRandom random(11);
  const std::vector<std::string> codes = generate_recovery_codes(random);
  testing::SeededRandom same(11);
  for (const std::string& code : codes) {
    Bytes raw(10);
    same.fill(raw);
    const std::string chars = lower_case(totp_secret_base32(SecretBytes(raw)));
    ASSERT_EQ(chars.size(), 16U);
    EXPECT_EQ(code, fmt::format("{}-{}-{}-{}", chars.substr(0, 4), chars.substr(4, 4), chars.substr(8, 4),
                                chars.substr(12, 4)));
  }
}

// Hands out the same bytes for the first two requests, then defers to a seeded source.
class RepeatingRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    if (calls_++ < 2) {
      std::fill(out.begin(), out.end(), std::uint8_t{0x5a});
    } else {
      rest_.fill(out);
    }
  }

 private:
  int calls_ = 0;
  testing::SeededRandom rest_{3};
};

TEST(RecoveryCode, ARepeatedDrawIsReplacedSoTheCodesStayDistinct) {
  RepeatingRandom random;
  const std::vector<std::string> codes = generate_recovery_codes(random);
  ASSERT_EQ(codes.size(), kRecoveryCodeCount);
  EXPECT_EQ(std::set<std::string>(codes.begin(), codes.end()).size(), codes.size());
}

TEST(RecoveryCode, TheHashIgnoresCaseSpacesAndDashes) {
  const std::string stored = recovery_code_hash("abcd-efgh-ijkl-mnop");
  EXPECT_EQ(recovery_code_hash("ABCD EFGH-ijkl mnop"), stored);
  EXPECT_EQ(recovery_code_hash("abcdefghijklmnop"), stored);
  EXPECT_EQ(stored, crypto::token_hash("torii recovery code", "abcdefghijklmnop"));
  EXPECT_EQ(stored.size(), 64U);
  EXPECT_EQ(stored.find("abcd"), std::string::npos);
}

TEST(RecoveryCode, DifferentCodesHashDifferently) {
  const std::string stored = recovery_code_hash("abcd-efgh-ijkl-mnop");
  EXPECT_NE(recovery_code_hash("abcd-efgh-ijkl-mnoq"), stored);
  EXPECT_NE(recovery_code_hash("abcd-efgh-ijkl-mno"), stored);
  EXPECT_NE(recovery_code_hash("abcd_efgh_ijkl_mnop"), stored);  // only spaces and '-' are dropped
  EXPECT_NE(recovery_code_hash(""), stored);
}

}  // namespace
}  // namespace torii::identity

#include "mail/message.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace torii::mail {
namespace {

MessageHeaders headers() {
  return {"torii@example.org", "torii", "Sat, 05 Dec 2026 18:28:34 +0000", "abc123@example.org"};
}

TEST(MailMessage, HeadersAndAPlainAsciiBody) {
  auto text = format_message(headers(), {"ann@example.org", "Set your password", "Hello\nline two\n"}, false);
  ASSERT_TRUE(text.has_value()) << text.error().message;
  EXPECT_EQ(*text,
            "Date: Sat, 05 Dec 2026 18:28:34 +0000\r\n"
            "Message-ID: <abc123@example.org>\r\n"
            "From: \"torii\" <torii@example.org>\r\n"
            "To: <ann@example.org>\r\n"
            "Subject: Set your password\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
            "Hello\r\nline two\r\n");
}

TEST(MailMessage, NonAsciiTravelsAs8BitOnlyWhenTheServerSaysSoAndTheSubjectIsEncoded) {
  const MailMessage message{"ann@example.org", "Passwort für Ann", "Grüße = hallo\r\n"};
  auto eight = format_message(headers(), message, true);
  ASSERT_TRUE(eight.has_value());
  EXPECT_NE(eight->find("Content-Transfer-Encoding: 8bit\r\n"), std::string::npos);
  EXPECT_NE(eight->find("\r\n\r\nGrüße = hallo\r\n"), std::string::npos);
  EXPECT_NE(eight->find("Subject: =?utf-8?B?UGFzc3dvcnQgZsO8ciBBbm4=?=\r\n"), std::string::npos);

  auto seven = format_message(headers(), message, false);
  ASSERT_TRUE(seven.has_value());
  EXPECT_NE(seven->find("Content-Transfer-Encoding: quoted-printable\r\n"), std::string::npos);
  EXPECT_NE(seven->find("\r\n\r\nGr=C3=BC=C3=9Fe =3D hallo\r\n"), std::string::npos);
  EXPECT_TRUE(std::ranges::all_of(*seven, [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
}

TEST(MailMessage, LongLinesAreSoftBrokenInQuotedPrintable) {
  auto text = format_message(headers(), {"ann@example.org", "s", std::string(2000, 'a')}, true);
  ASSERT_TRUE(text.has_value());
  EXPECT_NE(text->find("quoted-printable"), std::string::npos);
  std::size_t start = 0;
  while (true) {
    const auto end = text->find("\r\n", start);
    if (end == std::string::npos) break;
    EXPECT_LE(end - start, 76U);
    start = end + 2;
  }
}

TEST(MailMessage, LineBreaksAndNulInHeadersAreRefusedNotStripped) {
  const std::vector<std::string> evils = {"x\r\nBcc: eve@example.org", "x\nBcc: eve@example.org", "x\rBcc: eve",
                                          std::string("x\0y", 3)};
  for (const std::string& evil : evils) {
    EXPECT_FALSE(format_message(headers(), {"ann@example.org", evil, "b"}, true).has_value());
    MessageHeaders named = headers();
    named.from_name = evil;
    EXPECT_FALSE(format_message(named, {"ann@example.org", "s", "b"}, true).has_value());
    EXPECT_FALSE(format_message(headers(), {"ann@example.org" + evil, "s", "b"}, true).has_value());
  }
  EXPECT_FALSE(format_message(headers(), {"ann@example.org", "s", std::string("a\0b", 3)}, true).has_value());
}

TEST(MailMessage, AddressesAreChecked) {
  for (const char* good : {"ann@example.org", "a.b+tag@mail.example.org", "x@localhost"}) {
    EXPECT_TRUE(check_address(good, "it").has_value()) << good;
  }
  for (const char* bad : {"", "ann", "@example.org", "ann@", "ann@@example.org", "a n@example.org", "<ann@example.org>",
                          "ann@example.org>", ".ann@example.org", "a..b@example.org", "ann@-example.org",
                          "ann@exa_mple.org", "ann@example.org,eve@example.org", "\"ann\"@example.org",
                          "ann@example.org\r\nRCPT TO:<eve@example.org>", "änn@example.org"}) {
    EXPECT_FALSE(check_address(bad, "it").has_value()) << bad;
  }
}

TEST(MailMessage, DotStuffingDoublesLeadingDotsAndEndsTheData) {
  EXPECT_EQ(dot_stuff(".\r\n..x\r\na.b\r\n.end\r\n"), "..\r\n...x\r\na.b\r\n..end\r\n.\r\n");
  EXPECT_EQ(dot_stuff("no final line end"), "no final line end\r\n.\r\n");
  auto text = format_message(headers(), {"ann@example.org", "s", "first\n.\nlast"}, true);
  ASSERT_TRUE(text.has_value());
  const std::string data = dot_stuff(*text);
  EXPECT_NE(data.find("\r\nfirst\r\n..\r\nlast\r\n.\r\n"), std::string::npos);
  EXPECT_EQ(data.find("\r\n.\r\n"), data.size() - 5) << "the only end-of-data line is the last";
}

TEST(MailMessage, Base64AndDates) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64(std::string("\0ann\0pw", 7)), "AGFubgBwdw==");
  EXPECT_EQ(rfc5322_date(std::chrono::system_clock::time_point(std::chrono::seconds(1796495314))),
            "Sat, 05 Dec 2026 18:28:34 +0000");
}

}  // namespace
}  // namespace torii::mail

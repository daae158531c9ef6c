#include "mail/smtp_reply.h"

#include <gtest/gtest.h>

namespace torii::mail {
namespace {

TEST(SmtpReply, AMultiLineReplyArrivesWholeWhateverTheChunks) {
  const std::string text =
      "250-mail.example.org greets you\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n";
  ReplyReader reader;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    reader.feed(text.substr(i, 1));
    auto none = reader.next();
    ASSERT_TRUE(none.has_value());
    EXPECT_FALSE(none->has_value()) << "complete after byte " << i;
  }
  reader.feed(text.substr(text.size() - 1));
  auto reply = reader.next();
  ASSERT_TRUE(reply.has_value() && reply->has_value());
  EXPECT_EQ((*reply)->code, 250);
  EXPECT_EQ((*reply)->lines.size(), 4U);
  EXPECT_TRUE((*reply)->advertises("starttls"));
  EXPECT_TRUE((*reply)->advertises("8BITMIME"));
  EXPECT_FALSE((*reply)->advertises("mail.example.org")) << "the first line is the greeting, not a keyword";
  EXPECT_EQ((*reply)->parameters("AUTH"), (std::vector<std::string>{"PLAIN", "LOGIN"}));
  EXPECT_EQ((*reply)->summary(), "250 mail.example.org greets you");
  EXPECT_EQ(reader.pending_bytes(), 0U);
}

TEST(SmtpReply, TwoRepliesInOneReadComeOutOneAfterTheOtherAndBareLfEndsALine) {
  ReplyReader reader;
  reader.feed("220 ready\n354 go ahead\r\n22");
  auto first = reader.next();
  auto second = reader.next();
  auto third = reader.next();
  ASSERT_TRUE(first && *first && second && *second && third);
  EXPECT_EQ((*first)->code, 220);
  EXPECT_EQ((*second)->code, 354);
  EXPECT_FALSE(third->has_value());
  EXPECT_EQ(reader.pending_bytes(), 2U) << "bytes after a reply are kept (STARTTLS checks them)";
  reader.feed("1\r\n");
  auto bare = reader.next();
  ASSERT_TRUE(bare && *bare);
  EXPECT_EQ((*bare)->code, 221);
  EXPECT_TRUE((*bare)->lines.front().empty());
}

TEST(SmtpReply, MalformedRepliesAreRefusedAndTheReaderStaysFailed) {
  for (const std::string bad : {"hello\r\n", "25\r\n", "250x\r\n", "150 below 2xx\r\n", "650 above 5xx\r\n",
                                "250-a\r\n251 b\r\n", "250 bell\a\r\n", "2a0 x\r\n"}) {
    ReplyReader reader;
    reader.feed(bad);
    auto reply = reader.next();
    ASSERT_FALSE(reply.has_value()) << bad;
    EXPECT_TRUE(reply.error().is(Errc::invalid_argument)) << bad;
    reader.feed("250 fine\r\n");
    EXPECT_FALSE(reader.next().has_value()) << "a failed reader stays failed";
  }
}

TEST(SmtpReply, LinesAndRepliesAreBounded) {
  ReplyReader unterminated;
  unterminated.feed("250 " + std::string(kMaxReplyLineBytes, 'x'));
  auto too_long = unterminated.next();
  ASSERT_FALSE(too_long.has_value());
  EXPECT_TRUE(too_long.error().is(Errc::limit_exceeded));

  ReplyReader endless;
  std::string lines;
  for (std::size_t i = 0; i <= kMaxReplyLines; ++i) lines += "250-more\r\n";
  endless.feed(lines);
  auto too_many = endless.next();
  ASSERT_FALSE(too_many.has_value());
  EXPECT_TRUE(too_many.error().is(Errc::limit_exceeded));
}

}  // namespace
}  // namespace torii::mail

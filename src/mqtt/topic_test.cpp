#include "mqtt/topic.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace torii::mqtt {
namespace {

using namespace std::string_view_literals;

TEST(ValidUtf8, AcceptsWellFormedText) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("sensors/temperature/kitchen"));
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9"));               // U+00E9
  EXPECT_TRUE(valid_utf8("\xe6\x9d\xb1\xe4\xba\xac"));  // 東京
  EXPECT_TRUE(valid_utf8("\xf0\x9f\x8c\xa1 temp"));     // U+1F321
  EXPECT_TRUE(valid_utf8("\xef\xbb\xbf"));              // U+FEFF is allowed (§1.5.4)
  EXPECT_TRUE(valid_utf8("\xed\x9f\xbf"));              // U+D7FF, just below the surrogates
  EXPECT_TRUE(valid_utf8("\xf4\x8f\xbf\xbf"));          // U+10FFFF
  EXPECT_TRUE(
      valid_utf8("0123456789abcdef\xc3\xa9"
                 "0123456"));  // past the eight-byte fast path
}

TEST(ValidUtf8, RefusesNullCharacterAnywhere) {
  // The fast path reads eight bytes at a time: probe every position of two words and the tail.
  for (std::size_t at = 0; at < 19; ++at) {
    std::string text(19, 'a');
    text[at] = '\0';
    EXPECT_FALSE(valid_utf8(text)) << "U+0000 at " << at;
  }
  EXPECT_FALSE(valid_utf8("\0"sv));
  EXPECT_FALSE(valid_utf8("\xc0\x80"));  // "modified UTF-8" NUL is overlong
}

TEST(ValidUtf8, RefusesIllFormedSequences) {
  EXPECT_FALSE(valid_utf8("\x80"));                  // lone continuation byte
  EXPECT_FALSE(valid_utf8("abc\xbf"));               // continuation byte after ASCII
  EXPECT_FALSE(valid_utf8("\xc3"));                  // truncated two-byte sequence
  EXPECT_FALSE(valid_utf8("\xc3\x28"));              // bad continuation
  EXPECT_FALSE(valid_utf8("\xc1\xbf"));              // overlong two-byte
  EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));          // overlong three-byte '/'
  EXPECT_FALSE(valid_utf8("\xe0\x9f\xbf"));          // overlong three-byte
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));          // U+D800 surrogate
  EXPECT_FALSE(valid_utf8("\xed\xbf\xbf"));          // U+DFFF surrogate
  EXPECT_FALSE(valid_utf8("\xf0\x8f\xbf\xbf"));      // overlong four-byte
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));      // U+110000
  EXPECT_FALSE(valid_utf8("\xf5\x80\x80\x80"));      // lead byte past U+10FFFF
  EXPECT_FALSE(valid_utf8("\xff"));                  // never valid
  EXPECT_FALSE(valid_utf8("\xe6\x9d"));              // truncated three-byte
  EXPECT_FALSE(valid_utf8("\xf0\x9f\x8c"));          // truncated four-byte
  EXPECT_FALSE(valid_utf8("\xe6\x9d\x41"));          // bad third byte
  EXPECT_FALSE(valid_utf8("\xf0\x9f\x8c\x41"));      // bad fourth byte
  EXPECT_FALSE(valid_utf8("abcdefgh\xf0\x9f\x8c"));  // truncated after a fast-path word
}

TEST(TopicName, FollowsSection4_7) {
  EXPECT_TRUE(valid_topic_name("sport/tennis/player1"));
  EXPECT_TRUE(valid_topic_name("/"));
  EXPECT_TRUE(valid_topic_name("/finance"));
  EXPECT_TRUE(valid_topic_name("Accounts payable"));  // spaces are allowed
  EXPECT_TRUE(valid_topic_name("$SYS/broker/load"));
  EXPECT_FALSE(valid_topic_name(""));  // at least one character (§4.7.3)
  EXPECT_FALSE(valid_topic_name("sport/tennis/+"));
  EXPECT_FALSE(valid_topic_name("sport/#"));
  EXPECT_FALSE(valid_topic_name("sport+"));
  // Wildcards inside the eight-byte words of the fast path, and after them.
  EXPECT_FALSE(valid_topic_name("a+cdefghijklmnop"));
  EXPECT_FALSE(valid_topic_name("abcdefg#ijklmnop"));
  EXPECT_FALSE(valid_topic_name("abcdefghijklmno+"));
  EXPECT_FALSE(valid_topic_name("abcdefghijklmnop#"));
  EXPECT_TRUE(valid_topic_name("abcdefghijklmnop*"));
  EXPECT_TRUE(valid_utf8("abcdefg#ijklmno+"));  // plain UTF-8 allows them
  EXPECT_FALSE(valid_topic_name("a\xc3"));
  EXPECT_FALSE(valid_topic_name("a\0b"sv));
  EXPECT_TRUE(valid_topic_name(std::string(65'535, 'a')));
  EXPECT_FALSE(valid_topic_name(std::string(65'536, 'a')));
}

TEST(TopicFilter, FollowsSection4_7_1) {
  for (const std::string_view good : {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#", "sport/+/player1",
                                      "+/+", "/+", "sport/tennis/+", "sport/", "/", "$SYS/#", "a//b"}) {
    EXPECT_TRUE(valid_topic_filter(good)) << good;
  }
  for (const std::string_view bad :
       {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "+sport", "sport/+x/a", "#/", "##", "a/b\xc3"}) {
    EXPECT_FALSE(valid_topic_filter(bad)) << bad;
  }
  EXPECT_FALSE(valid_topic_filter("a\0b"sv));
  EXPECT_FALSE(valid_topic_filter(std::string(65'536, 'a')));
}

TEST(TopicFilter, SharedSubscriptionSyntax) {  // MQTT 5.0 §4.8.2
  EXPECT_TRUE(valid_topic_filter("$share/consumers/sport/tennis/+"));
  EXPECT_TRUE(valid_topic_filter("$share/g/#"));
  EXPECT_TRUE(valid_topic_filter("$share/g//"));
  EXPECT_FALSE(valid_topic_filter("$share/"));            // no share name
  EXPECT_FALSE(valid_topic_filter("$share//sport"));      // empty share name
  EXPECT_FALSE(valid_topic_filter("$share/consumers"));   // no topic filter
  EXPECT_FALSE(valid_topic_filter("$share/consumers/"));  // empty topic filter
  EXPECT_FALSE(valid_topic_filter("$share/+/sport"));     // wildcard share name
  EXPECT_FALSE(valid_topic_filter("$share/a#b/sport"));
  EXPECT_FALSE(valid_topic_filter("$share/g/sport#"));  // the filter itself is checked
  EXPECT_TRUE(valid_topic_filter("$shared/x"));         // not the shared prefix: a plain filter
}

TEST(TopicMatches, MultiLevelWildcardExamples) {  // §4.7.1.2
  EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_FALSE(topic_matches("sport/tennis/player1/#", "sport/tennis/player2"));
  EXPECT_FALSE(topic_matches("sport/tennis/player1/#", "sport/tennis"));
  EXPECT_TRUE(topic_matches("sport/#", "sport"));  // '#' includes the parent level
  EXPECT_TRUE(topic_matches("sport/#", "sport/"));
  EXPECT_TRUE(topic_matches("#", "sport/tennis"));
  EXPECT_TRUE(topic_matches("#", "/"));
  EXPECT_FALSE(topic_matches("sport/#", "sports"));
}

TEST(TopicMatches, SingleLevelWildcardExamples) {  // §4.7.1.3
  EXPECT_TRUE(topic_matches("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(topic_matches("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(topic_matches("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(topic_matches("sport/+", "sport"));
  EXPECT_TRUE(topic_matches("sport/+", "sport/"));
  EXPECT_TRUE(topic_matches("+/+", "/finance"));
  EXPECT_TRUE(topic_matches("/+", "/finance"));
  EXPECT_FALSE(topic_matches("+", "/finance"));
  EXPECT_TRUE(topic_matches("+", "finance"));
  EXPECT_TRUE(topic_matches("+/tennis/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(topic_matches("sport/+/player1", "sport/tennis/player1"));
  EXPECT_FALSE(topic_matches("sport/+/player1", "sport/tennis/player2"));
  EXPECT_TRUE(topic_matches("+/+/+", "a//c"));
}

TEST(TopicMatches, DollarTopicsAreNotMatchedByLeadingWildcards) {  // §4.7.2
  EXPECT_FALSE(topic_matches("#", "$SYS/broker/load"));
  EXPECT_FALSE(topic_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_FALSE(topic_matches("+", "$SYS"));
  EXPECT_TRUE(topic_matches("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(topic_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
  EXPECT_TRUE(topic_matches("$SYS/#", "$SYS"));
  EXPECT_TRUE(topic_matches("a/#", "a/$b"));  // only the first level is special
}

TEST(TopicMatches, ExactLevelsAreCaseSensitive) {  // §4.7.3
  EXPECT_TRUE(topic_matches("ACCOUNTS", "ACCOUNTS"));
  EXPECT_FALSE(topic_matches("ACCOUNTS", "Accounts"));
  EXPECT_FALSE(topic_matches("/finance", "finance"));
  EXPECT_FALSE(topic_matches("finance", "/finance"));
  EXPECT_FALSE(topic_matches("a/b", "a/b/c"));
  EXPECT_FALSE(topic_matches("a/b/c", "a/b"));
  EXPECT_TRUE(topic_matches("Accounts payable", "Accounts payable"));
}

}  // namespace
}  // namespace torii::mqtt

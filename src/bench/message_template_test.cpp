#include "bench/message_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::bench {
namespace {

using ::testing::HasSubstr;

const std::vector<Placeholder> kAll{Placeholder::device, Placeholder::index, Placeholder::seq, Placeholder::ts};

TEST(MessageTemplate, ExpandsEveryPlaceholder) {
  auto t = MessageTemplate::parse(R"({"id":"{device}-{seq}","n":{i},"ts":{ts}})", kAll);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->expand({"bench-7", 7, 42, 1733000000123456}), R"({"id":"bench-7-42","n":7,"ts":1733000000123456})");
  EXPECT_TRUE(t->uses(Placeholder::ts));
}

TEST(MessageTemplate, AppendsToTheBufferItIsGiven) {
  auto t = MessageTemplate::parse("devices/{device}/telemetry", {Placeholder::device});
  ASSERT_TRUE(t);
  std::string out = "x:";
  t->expand({"d1", 0, 0, 0}, out);
  EXPECT_EQ(out, "x:devices/d1/telemetry");
  EXPECT_EQ(t->literal_text(), "devices//telemetry");
  EXPECT_FALSE(t->uses(Placeholder::seq));
}

TEST(MessageTemplate, BracesThatAreNotPlaceholdersAreLiteral) {
  auto t = MessageTemplate::parse(R"({"a":{"b":[{seq}]},"c":"{ }","d":"{}"})", kAll);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->expand({"", 0, 5, 0}), R"({"a":{"b":[5]},"c":"{ }","d":"{}"})");
}

TEST(MessageTemplate, RefusesUnknownPlaceholdersNamingThem) {
  auto unknown = MessageTemplate::parse("devices/{devcie}/telemetry", {Placeholder::device, Placeholder::index});
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr("{devcie}"));
  EXPECT_THAT(unknown.error().message, HasSubstr("{device}, {i}"));

  // Known, but not allowed in a topic.
  auto not_here = MessageTemplate::parse("devices/{seq}", {Placeholder::device, Placeholder::index});
  ASSERT_FALSE(not_here);
  EXPECT_THAT(not_here.error().message, HasSubstr("{seq}"));

  EXPECT_FALSE(MessageTemplate::parse(R"({"id":"{Seq}"})", kAll));
}

TEST(MessageTemplate, ExtractsTheTimestampFromWhatItProduced) {
  auto t = MessageTemplate::parse(R"({"id":"{device}-{seq}","sent":{ts},"t":21.5})", kAll);
  ASSERT_TRUE(t);
  const auto text = t->expand({"bench-12", 12, 999, 1733000000654321});
  EXPECT_EQ(t->extract_ts(text), 1733000000654321u);
  // Other text, a truncated message, or no digits: nothing.
  EXPECT_EQ(t->extract_ts(R"({"id":"x-1","sent":,"t":21.5})"), std::nullopt);
  EXPECT_EQ(t->extract_ts(text.substr(0, text.size() - 1)), std::nullopt);
  EXPECT_EQ(t->extract_ts("hello"), std::nullopt);
}

TEST(MessageTemplate, ExtractsNothingWithoutATimestampOrWhenAmbiguous) {
  auto without = MessageTemplate::parse(R"({"id":"{device}-{seq}"})", kAll);
  ASSERT_TRUE(without) << without.error().message;
  EXPECT_EQ(without->extract_ts(without->expand({"d", 0, 1, 0})), std::nullopt);
  auto adjacent = MessageTemplate::parse("{seq}{ts}", kAll);
  ASSERT_TRUE(adjacent);
  EXPECT_EQ(adjacent->extract_ts("12345"), std::nullopt);
  auto leading = MessageTemplate::parse("{ts}:{device}", kAll);
  ASSERT_TRUE(leading);
  EXPECT_EQ(leading->extract_ts("777:anything"), 777u);
}

}  // namespace
}  // namespace torii::bench

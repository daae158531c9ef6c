#include "base/json_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace torii {
namespace {

using json = nlohmann::json;

TEST(JsonWriter, WritesWhatTheDocumentLibraryDumpsForTheSameValues) {
  JsonWriter w;
  w.begin_object()
      .key("organisation")
      .string("default")
      .key("devices")
      .begin_array()
      .begin_object()
      .key("id")
      .string("pump-1")
      .key("last_seen_at")
      .null()
      .key("online")
      .boolean(true)
      .key("count")
      .number(-42)
      .key("tags")
      .begin_array()
      .end_array()
      .key("empty")
      .begin_object()
      .end_object()
      .end_object()
      .begin_object()
      .key("id")
      .string("pump-2")
      .key("big")
      .number(std::numeric_limits<std::int64_t>::max())
      .key("small")
      .number(std::numeric_limits<std::int64_t>::min())
      .key("off")
      .boolean(false)
      .end_object()
      .end_array()
      .end_object();
  const json expected = {{"organisation", "default"},
                         {"devices",
                          {{{"id", "pump-1"},
                            {"last_seen_at", nullptr},
                            {"online", true},
                            {"count", -42},
                            {"tags", json::array()},
                            {"empty", json::object()}},
                           {{"id", "pump-2"},
                            {"big", std::numeric_limits<std::int64_t>::max()},
                            {"small", std::numeric_limits<std::int64_t>::min()},
                            {"off", false}}}}};
  const std::string text = w.take();
  // nlohmann::json sorts members by name; compare as documents, then byte for byte for a
  // document written in its order.
  EXPECT_EQ(json::parse(text), expected);
  JsonWriter sorted;
  sorted.begin_array().string("a").number(1).null().boolean(true).begin_object().key("a").number(1).key("b");
  sorted.begin_array().end_array().end_object().end_array();
  EXPECT_EQ(sorted.take(), json::parse(R"(["a",1,null,true,{"a":1,"b":[]}])").dump());
  EXPECT_EQ(w.take(), "") << "take() leaves the writer empty";
}

TEST(JsonWriter, EscapesEveryAsciiCharacterAsTheDocumentLibraryDoes) {
  for (int c = 0; c < 0x80; ++c) {
    const std::string text = "a" + std::string(1, static_cast<char>(c)) + "b";
    JsonWriter w;
    w.string(text);
    EXPECT_EQ(w.take(), json(text).dump()) << "character " << c;
  }
}

TEST(JsonWriter, KeepsValidUtf8AsItIs) {
  std::mt19937 random(20261205);
  std::uniform_int_distribution<std::uint32_t> code_point(0, 0x10FFFF);
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    for (int i = 0; i < 8; ++i) {
      std::uint32_t cp = code_point(random);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
      if (cp < 0x80) {
        text += static_cast<char>(cp);
      } else if (cp < 0x800) {
        text += static_cast<char>(0xC0 | (cp >> 6));
        text += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        text += static_cast<char>(0xE0 | (cp >> 12));
        text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        text += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        text += static_cast<char>(0xF0 | (cp >> 18));
        text += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        text += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    JsonWriter w;
    w.string(text);
    ASSERT_EQ(w.take(), json(text).dump());
  }
}

TEST(JsonWriter, ReplacesEachByteThatIsNotValidUtf8) {
  const auto written = [](const std::string& text) {
    JsonWriter w;
    w.string(text);
    return json::parse(w.take()).get<std::string>();
  };
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(written("a\xFF"
                    "b"),
            "a" + fffd + "b");
  EXPECT_EQ(written("truncated \xC3"), "truncated " + fffd);
  EXPECT_EQ(written("\xE2\x82"), fffd + fffd) << "a cut three-byte sequence";
  EXPECT_EQ(written("\xC0\xAF"), fffd + fffd) << "overlong";
  EXPECT_EQ(written("\xE0\x80\xAF"), fffd + fffd + fffd) << "overlong";
  EXPECT_EQ(written("\xED\xA0\x80"), fffd + fffd + fffd) << "a surrogate";
  EXPECT_EQ(written("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd) << "above U+10FFFF";
  EXPECT_EQ(written("\xE2\x82\xAC \xF0\x9F\x94\x92"), "\xE2\x82\xAC \xF0\x9F\x94\x92") << "valid ones kept";

  // Whatever the bytes, the text is JSON that parses.
  std::mt19937 random(5);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    for (int i = 0; i < 12; ++i) text += static_cast<char>(byte(random));
    JsonWriter w;
    w.begin_object().key(text).string(text).end_object();
    const std::string out = w.take();
    ASSERT_FALSE(json::parse(out, nullptr, false).is_discarded()) << out;
  }
}

}  // namespace
}  // namespace torii

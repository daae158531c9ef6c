#include "notify/channel.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace torii::notify {
namespace {

using testing::SeededRandom;

const std::string kSecret(40, 'k');

ChannelResult parse(const std::string& text) {
  SeededRandom random;
  return parse_channel_text(text, random);
}

std::vector<Problem> problems(const std::string& text) {
  auto parsed = parse(text);
  EXPECT_FALSE(parsed.has_value()) << text;
  return parsed ? std::vector<Problem>{} : parsed.error();
}

TEST(ChannelTest, AWebhookIsParsedWithItsUrlTakenApart) {
  auto channel = parse(R"({"name":"ops hook","type":"webhook","url":"https://hooks.example:8443/in?x=1","secret":")" +
                       kSecret + R"("})");
  ASSERT_TRUE(channel.has_value()) << format_problems(channel.error());
  EXPECT_EQ(channel->type, ChannelType::webhook);
  EXPECT_EQ(channel->webhook, (WebhookUrl{"hooks.example", 8443, "/in?x=1"}));
  EXPECT_EQ(channel->secret, kSecret);
  EXPECT_TRUE(channel->ca_pem.empty());
}

TEST(ChannelTest, AWebhookWithoutSecretGetsAFreshOne) {
  SeededRandom a(1);
  SeededRandom b(2);
  const std::string text = R"({"name":"h","type":"webhook","url":"https://[::1]/"})";
  auto first = parse_channel_text(text, a);
  auto second = parse_channel_text(text, b);
  ASSERT_TRUE(first && second);
  EXPECT_GE(first->secret.size(), kMinSecretChars);
  EXPECT_NE(first->secret, second->secret);
  EXPECT_EQ(first->webhook, (WebhookUrl{"::1", 443, "/"}));
}

TEST(ChannelTest, PlainHttpAndCredentialsInTheUrlAreRefused) {
  EXPECT_NE(parse_webhook_url("http://hooks.example/").error().find("HTTPS only"), std::string::npos);
  EXPECT_NE(parse_webhook_url("HTTP://hooks.example/").error().find("HTTPS only"), std::string::npos);
  EXPECT_NE(parse_webhook_url("https://user:pw@hooks.example/").error().find("credentials"), std::string::npos);
  EXPECT_NE(parse_webhook_url("https://token@hooks.example/").error().find("credentials"), std::string::npos);
  EXPECT_FALSE(parse_webhook_url("ftp://hooks.example/").has_value());
  EXPECT_FALSE(parse_webhook_url("https://hooks.example:0/").has_value());
  EXPECT_FALSE(parse_webhook_url("https://hooks.example:70000/").has_value());
  EXPECT_FALSE(parse_webhook_url("https://hooks.example:/").has_value());
  EXPECT_FALSE(parse_webhook_url("https:///path").has_value());
  EXPECT_FALSE(parse_webhook_url("https://hooks.example/a b").has_value());
  EXPECT_FALSE(parse_webhook_url("https://hooks.example/#frag").has_value());
  EXPECT_FALSE(parse_webhook_url("https://[::1/").has_value());
  EXPECT_EQ(*parse_webhook_url("https://hooks.example?q=1"), (WebhookUrl{"hooks.example", 443, "/?q=1"}));
}

TEST(ChannelTest, EveryProblemIsReportedWithItsPath) {
  const auto found = problems(R"({"type":"webhook","url":"http://x.example/","secret":"short","ca":"nope","to":[]})");
  const std::vector<std::string> paths = [&] {
    std::vector<std::string> out;
    for (const auto& p : found) out.push_back(p.path);
    return out;
  }();
  EXPECT_EQ(paths, (std::vector<std::string>{"name", "url", "secret", "ca", "to"})) << format_problems(found);
}

TEST(ChannelTest, AnEmailChannelChecksEachRecipient) {
  auto channel = parse(R"({"name":"on call","type":"email","to":["a@b.example","c@d.example"]})");
  ASSERT_TRUE(channel.has_value()) << format_problems(channel.error());
  EXPECT_EQ(channel->to, (std::vector<std::string>{"a@b.example", "c@d.example"}));
  const auto found = problems(R"({"name":"x","type":"email","to":["a@b.example","not an address",7,"a@b.example"]})");
  ASSERT_EQ(found.size(), 3U) << format_problems(found);
  EXPECT_EQ(found[0].path, "to[1]");
  EXPECT_EQ(found[1].path, "to[2]");
  EXPECT_EQ(found[2], (Problem{"to[3]", "listed twice"}));
  EXPECT_EQ(problems(R"({"name":"x","type":"email","to":[]})")[0].path, "to");
}

TEST(ChannelTest, ASyslogChannelHasDefaultsAndBounds) {
  auto channel = parse(R"({"name":"siem","type":"syslog","host":"siem.example"})");
  ASSERT_TRUE(channel.has_value()) << format_problems(channel.error());
  EXPECT_EQ(channel->port, 6514);
  EXPECT_EQ(channel->app_name, "torii");
  EXPECT_EQ(channel->facility, kDefaultSyslogFacility);
  const auto found =
      problems(R"({"name":"siem","type":"syslog","host":"bad host","port":0,"app_name":"a b","facility":24})");
  ASSERT_EQ(found.size(), 4U) << format_problems(found);
  EXPECT_EQ(found[0].path, "host");
  EXPECT_EQ(found[1].path, "port");
  EXPECT_EQ(found[2].path, "app_name");
  EXPECT_EQ(found[3].path, "facility");
}

TEST(ChannelTest, AnMqttChannelNamesTheDevicesThatReceiveIt) {
  auto channel = parse(R"({"name":"b","type":"mqtt","devices":["backend-1","backend-2"]})");
  ASSERT_TRUE(channel.has_value()) << format_problems(channel.error());
  EXPECT_EQ(channel->devices, (std::vector<std::string>{"backend-1", "backend-2"}));
  EXPECT_EQ(redacted_json(*channel)["devices"], nlohmann::json::array({"backend-1", "backend-2"}));
  const auto found = problems(R"({"name":"b","type":"mqtt","devices":["Backend","b-1","b-1",7,"#"]})");
  ASSERT_EQ(found.size(), 4U) << format_problems(found);
  EXPECT_EQ(found[0].path, "devices[0]");
  EXPECT_EQ(found[1], (Problem{"devices[2]", "listed twice"}));
  EXPECT_EQ(found[2].path, "devices[3]");
  EXPECT_EQ(found[3].path, "devices[4]");
  EXPECT_EQ(problems(R"({"name":"b","type":"mqtt","devices":[]})")[0].path, "devices");
  EXPECT_EQ(problems(R"({"name":"b","type":"mqtt"})")[0].path, "devices");
  // A topic of one's choosing is not offered: other clients could not be kept from it.
  EXPECT_EQ(problems(R"({"name":"b","type":"mqtt","devices":["b-1"],"topic":"alerts/ops"})")[0].path, "topic");
}

TEST(ChannelTest, MembersOfAnotherTypeAndBadTextAreProblems) {
  EXPECT_EQ(problems(R"({"name":"b","type":"mqtt","devices":["b-1"],"url":"https://x/"})")[0].path, "url");
  EXPECT_EQ(problems("{not json")[0], (Problem{"", "not valid JSON"}));
  EXPECT_EQ(problems("[]")[0].path, "");
  EXPECT_EQ(problems(R"({"name":"b","type":"pager"})")[0].path, "type");
}

TEST(ChannelTest, ARateLimitMayBeSetPerChannel) {
  auto channel = parse(R"({"name":"s","type":"syslog","host":"h.example","rate_limit":{"burst":3}})");
  ASSERT_TRUE(channel.has_value()) << format_problems(channel.error());
  EXPECT_EQ(channel->rate, (RateLimit{3, 30}));
  EXPECT_EQ(parse(R"({"name":"e","type":"email","to":["a@b.example"]})")->rate, RateLimit{});
  const auto found =
      problems(R"({"name":"s","type":"syslog","host":"h.example","rate_limit":{"burst":0,"per_minute":"9","x":1}})");
  ASSERT_EQ(found.size(), 3U) << format_problems(found);
  EXPECT_EQ(found[0].path, "rate_limit.burst");
  EXPECT_EQ(found[1].path, "rate_limit.per_minute");
  EXPECT_EQ(found[2].path, "rate_limit.x");
  EXPECT_EQ(parse(R"({"name":"b","type":"mqtt","devices":["b-1"],"rate_limit":{"burst":2}})")->rate,
            (RateLimit{2, 30}));
}

TEST(ChannelTest, TheRedactedViewNeverHoldsTheSecret) {
  auto channel = parse(R"({"name":"h","type":"webhook","url":"https://h.example/","secret":")" + kSecret + R"("})");
  ASSERT_TRUE(channel.has_value());
  const auto view = redacted_json(*channel);
  EXPECT_EQ(view.dump().find(kSecret), std::string::npos);
  EXPECT_TRUE(view["secret_set"].get<bool>());
  EXPECT_EQ(view["url"], "https://h.example/");
}

}  // namespace
}  // namespace torii::notify

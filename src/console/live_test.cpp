#include "console/live.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace torii::console {
namespace {

using nlohmann::json;

LiveMessage message(std::string organisation, std::string device, std::string text) {
  return {std::move(organisation), std::move(device), std::move(text)};
}

LiveFeed::StillAllowed allowed(const bool& flag) {
  return [&flag]() -> Result<bool> { return flag; };
}

TEST(LiveFeed, ASubscriberSeesOnlyItsOwnOrganisationsDevices) {
  LiveFeed live;
  bool yes = true;
  auto mine = live.subscribe({"alice", "s1", "org-a"}, {}, allowed(yes));
  ASSERT_NE(mine, nullptr);
  int wakes = 0;
  mine->start([&] { ++wakes; });
  live.publish(message("org-b", "d9", "theirs"));
  live.publish(message("org-a", "d1", "one"));
  live.publish(message("org-a", "d2", "two"));
  EXPECT_EQ(wakes, 2);
  EXPECT_EQ(mine->take(), (std::vector<std::string>{"one", "two"}));
  EXPECT_TRUE(mine->take().empty());
}

TEST(LiveFeed, ADeviceFeedSeesThatDeviceOnly) {
  LiveFeed live;
  bool yes = true;
  auto feed = live.subscribe({"alice", "s1", "org-a"}, {"d2"}, allowed(yes));
  feed->start([] {});
  live.publish(message("org-a", "d1", "one"));
  live.publish(message("org-a", "d2", "two"));
  EXPECT_EQ(feed->take(), (std::vector<std::string>{"two"}));
}

TEST(LiveFeed, ASlowReaderLosesTheOldestMessagesAndIsToldHowMany) {
  LiveFeed live(LiveFeed::Options{3, 8, 100});
  bool yes = true;
  auto feed = live.subscribe({"alice", "s1", "org-a"}, {}, allowed(yes));
  feed->start([] {});
  for (int i = 1; i <= 5; ++i) live.publish(message("org-a", "d1", std::to_string(i)));
  const auto got = feed->take();
  ASSERT_EQ(got.size(), 4U);
  EXPECT_EQ(json::parse(got[0]), (json{{"type", "dropped"}, {"count", 2}}));
  EXPECT_EQ(std::vector<std::string>(got.begin() + 1, got.end()), (std::vector<std::string>{"3", "4", "5"}));
}

TEST(LiveFeed, OpenFeedsAreLimitedPerPersonAndInAll) {
  LiveFeed live(LiveFeed::Options{10, 2, 3});
  bool yes = true;
  auto a1 = live.subscribe({"alice", "s1", "org-a"}, {}, allowed(yes));
  auto a2 = live.subscribe({"alice", "s2", "org-a"}, {}, allowed(yes));
  EXPECT_EQ(live.subscribe({"alice", "s3", "org-a"}, {}, allowed(yes)), nullptr);
  auto b1 = live.subscribe({"bob", "s4", "org-a"}, {}, allowed(yes));
  ASSERT_NE(b1, nullptr);
  EXPECT_EQ(live.subscribe({"carol", "s5", "org-a"}, {}, allowed(yes)), nullptr);
  EXPECT_EQ(live.open(), 3U);
  a1->stop();
  a1.reset();
  EXPECT_EQ(live.open(), 2U);
  EXPECT_NE(live.subscribe({"alice", "s3", "org-a"}, {}, allowed(yes)), nullptr);
  a2.reset();  // dropped without stop(): it unregisters too
  EXPECT_EQ(live.open(), 1U);
}

TEST(LiveFeed, AFeedEndsWhenItsSessionIsNoLongerValidOrSignsOut) {
  LiveFeed live;
  bool valid = true;
  auto checked = live.subscribe({"alice", "s1", "org-a"}, {}, allowed(valid));
  auto other = live.subscribe({"alice", "s2", "org-a"}, {}, allowed(valid));
  int wakes = 0;
  checked->start([&] { ++wakes; });
  other->start([] {});
  checked->check();
  EXPECT_FALSE(checked->ended());
  valid = false;
  checked->check();
  ASSERT_TRUE(checked->ended());
  EXPECT_EQ(checked->ended()->first, websocket::CloseCode::policy_violation);
  EXPECT_EQ(wakes, 1);
  live.publish(message("org-a", "d1", "after the end"));
  EXPECT_TRUE(checked->take().empty());

  EXPECT_FALSE(other->ended());
  live.end_for("s2", "signed out");
  ASSERT_TRUE(other->ended());
  EXPECT_EQ(other->ended()->second, "signed out");
}

TEST(LiveFeed, AFailedCheckEndsTheFeedAsAnInternalError) {
  LiveFeed live;
  auto feed = live.subscribe({"alice", "s1", "org-a"}, {},
                             []() -> Result<bool> { return fail(Errc::unavailable, "store unavailable"); });
  feed->start([] {});
  feed->check();
  ASSERT_TRUE(feed->ended());
  EXPECT_EQ(feed->ended()->first, websocket::CloseCode::internal_error);
}

TEST(LiveFeed, FeedsOutlivingTheLiveFeedAreToldItIsGoingAway) {
  std::shared_ptr<WebSocketFeed> feed;
  {
    LiveFeed live;
    bool yes = true;
    feed = live.subscribe({"alice", "s1", "org-a"}, {}, allowed(yes));
    feed->start([] {});
  }
  ASSERT_TRUE(feed->ended());
  EXPECT_EQ(feed->ended()->first, websocket::CloseCode::going_away);
  feed->stop();  // after the registry is gone: nothing to unregister from
}

TEST(LiveFeed, MessagesAreJsonOfTheirOwnShape) {
  EXPECT_EQ(
      json::parse(telemetry_message("d1", "2027-01-01T00:00:00.000Z",
                                    {{"temp", 21.5}, {"door", true}, {"count", std::int64_t{3}}, {"mode", "auto"}})),
      (json{{"type", "telemetry"},
            {"device", "d1"},
            {"at", "2027-01-01T00:00:00.000Z"},
            {"metrics", {{"temp", 21.5}, {"door", true}, {"count", 3}, {"mode", "auto"}}}}));
  EXPECT_EQ(json::parse(status_message("d1", false, "2027-01-01T00:00:00.000Z")),
            (json{{"type", "status"}, {"device", "d1"}, {"online", false}, {"at", "2027-01-01T00:00:00.000Z"}}));
}

}  // namespace
}  // namespace torii::console

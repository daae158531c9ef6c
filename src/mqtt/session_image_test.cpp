#include "mqtt/session_image.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace torii::mqtt {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Publish message(std::string topic, std::string payload, std::uint8_t qos, std::uint16_t packet_id = 0) {
  Publish p;
  p.topic = std::move(topic);
  p.payload = Bytes(payload.begin(), payload.end());
  p.qos = qos;
  p.packet_id = packet_id;
  return p;
}

// A state with something in every part of the image.
SessionState full_state(std::chrono::steady_clock::time_point now) {
  SessionState s;
  s.subscriptions["devices/a/commands"] = Subscription{"devices/a/commands", 1, true, false, 2};
  s.subscriptions["devices/b/telemetry"] = Subscription{"devices/b/telemetry", 2, false, true, 0};
  auto sent = message("devices/a/commands", "open", 1, 7);
  sent.dup = true;
  sent.properties.user_properties.emplace_back("origin", "rules");
  s.inflight_out.emplace(7, SessionState::Inflight{sent, SessionState::OutState::await_puback});
  s.inflight_out.emplace(
      9, SessionState::Inflight{message("devices/b/telemetry", "{}", 2, 9), SessionState::OutState::await_pubcomp});
  s.queued_out.push_back({message("devices/a/commands", "close", 1), std::nullopt});
  auto expiring = message("devices/a/commands", "soon", 1);
  expiring.properties.message_expiry_interval = 60;
  s.queued_out.push_back({expiring, now + 60s});
  s.inbound_qos2 = {3, 4};
  s.last_packet_id = 9;
  s.dropped_out = 5;
  s.expired_out = 2;
  return s;
}

TEST(SessionImage, KeepsEveryPartOfTheStateAndMovesExpiriesToTheNewClock) {
  const ImageTime written{std::chrono::steady_clock::time_point(1000s), 1'700'000'000'000};
  const SessionState before = full_state(written.steady);
  auto image = encode_session_image(before, written);
  ASSERT_TRUE(image.has_value()) << image.error().message;

  // Read back 10 s later (wall clock) after a restart (the steady clock started again).
  const ImageTime read{std::chrono::steady_clock::time_point(5s), written.unix_ms + 10'000};
  auto after = decode_session_image(*image, read);
  ASSERT_TRUE(after.has_value()) << after.error().message;
  EXPECT_EQ(after->subscriptions, before.subscriptions);
  ASSERT_EQ(after->inflight_out.size(), 2U);
  EXPECT_EQ(after->inflight_out.at(7).message, before.inflight_out.at(7).message);
  EXPECT_EQ(after->inflight_out.at(7).state, SessionState::OutState::await_puback);
  EXPECT_EQ(after->inflight_out.at(9).state, SessionState::OutState::await_pubcomp);
  ASSERT_EQ(after->queued_out.size(), 2U);
  EXPECT_EQ(after->queued_out[0].message.payload, before.queued_out[0].message.payload);
  EXPECT_FALSE(after->queued_out[0].expires_at);
  ASSERT_TRUE(after->queued_out[1].expires_at);
  EXPECT_EQ(*after->queued_out[1].expires_at, read.steady + 50s);  // 60 s less the 10 s that passed
  EXPECT_THAT(after->inbound_qos2, ElementsAre(3, 4));
  EXPECT_EQ(after->last_packet_id, 9);
  EXPECT_EQ(after->dropped_out, 5U);
  EXPECT_EQ(after->expired_out, 2U);
}

TEST(SessionImage, AQueuedMessageThatExpiredWhileKeptIsLeftOutAndCounted) {
  const ImageTime written{std::chrono::steady_clock::time_point(1000s), 1'700'000'000'000};
  auto image = encode_session_image(full_state(written.steady), written);
  ASSERT_TRUE(image.has_value());
  auto after = decode_session_image(*image, {std::chrono::steady_clock::time_point(5s), written.unix_ms + 61'000});
  ASSERT_TRUE(after.has_value()) << after.error().message;
  ASSERT_EQ(after->queued_out.size(), 1U);
  EXPECT_EQ(after->expired_out, 3U);
}

TEST(SessionImage, AnEmptyStateRoundTrips) {
  const ImageTime now{std::chrono::steady_clock::time_point(1s), 1};
  auto image = encode_session_image(SessionState{}, now);
  ASSERT_TRUE(image.has_value());
  auto after = decode_session_image(*image, now);
  ASSERT_TRUE(after.has_value()) << after.error().message;
  EXPECT_TRUE(after->subscriptions.empty());
  EXPECT_TRUE(after->queued_out.empty());
}

TEST(SessionImage, EveryTruncationAndTrailingBytesAndUnknownFormatsAreRefused) {
  const ImageTime now{std::chrono::steady_clock::time_point(1000s), 1'700'000'000'000};
  auto image = encode_session_image(full_state(now.steady), now);
  ASSERT_TRUE(image.has_value());
  for (std::size_t n = 0; n < image->size(); ++n) {
    auto cut = decode_session_image(ByteView(image->data(), n), now);
    ASSERT_FALSE(cut.has_value()) << "accepted the first " << n << " bytes";
    EXPECT_EQ(cut.error().reason, ReasonCode::malformed_packet);
    EXPECT_THAT(cut.error().message, HasSubstr("session image"));
  }
  Bytes longer = *image;
  longer.push_back(0);
  EXPECT_FALSE(decode_session_image(longer, now).has_value());
  Bytes other_format = *image;
  other_format[0] = 2;
  auto refused = decode_session_image(other_format, now);
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().message, HasSubstr("unknown format 2"));
}

}  // namespace
}  // namespace torii::mqtt

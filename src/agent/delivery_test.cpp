#include "agent/delivery.h"

#include <gtest/gtest.h>

namespace torii::agent {
namespace {

using R = mqtt::ReasonCode;

std::vector<std::uint64_t> seqs_of(const std::vector<Delivery::Send>& sends) {
  std::vector<std::uint64_t> out;
  out.reserve(sends.size());
  for (const auto& s : sends) out.push_back(s.seq);
  return out;
}

TEST(Delivery, SendsOldestFirstWithinTheWindowAndNeverTheSameMessageTwiceAtOnce) {
  Delivery d(3);
  d.connected(std::nullopt);
  const std::vector<std::uint64_t> waiting{10, 11, 12, 13, 14};
  const auto first = d.take(waiting);
  EXPECT_EQ(seqs_of(first), (std::vector<std::uint64_t>{10, 11, 12}));
  EXPECT_TRUE(d.take(waiting).empty());  // the window is full
  ASSERT_TRUE(d.acknowledged(first[1].packet_id, R::success));
  EXPECT_EQ(seqs_of(d.take(std::vector<std::uint64_t>{10, 12, 13, 14})), (std::vector<std::uint64_t>{13}));
  EXPECT_EQ(d.in_flight(), 3U);
}

TEST(Delivery, TheServersReceiveMaximumLowersTheWindowForThatConnectionOnly) {
  Delivery d(16);
  d.connected(std::uint16_t{2});
  EXPECT_EQ(d.window(), 2U);
  d.connection_lost();
  d.connected(std::nullopt);
  EXPECT_EQ(d.window(), 16U);
}

TEST(Delivery, WhatWasInFlightWhenTheConnectionWasLostIsSentAgainInOrder) {
  Delivery d(4);
  d.connected(std::nullopt);
  const std::vector<std::uint64_t> waiting{1, 2, 3};
  const auto sent = d.take(waiting);
  ASSERT_EQ(sent.size(), 3U);
  d.connection_lost();
  EXPECT_EQ(d.in_flight(), 0U);
  EXPECT_FALSE(d.acknowledged(sent[0].packet_id, R::success));  // a PUBACK of the old connection
  d.connected(std::nullopt);
  EXPECT_EQ(seqs_of(d.take(waiting)), waiting);
}

TEST(Delivery, EachAcknowledgementSaysWhatBecameOfItsMessage) {
  Delivery d(8);
  d.connected(std::nullopt);
  const auto sent = d.take(std::vector<std::uint64_t>{1, 2, 3, 4});
  ASSERT_EQ(sent.size(), 4U);
  const auto delivered = d.acknowledged(sent[0].packet_id, R::success);
  ASSERT_TRUE(delivered);
  EXPECT_EQ(delivered->seq, 1U);
  EXPECT_EQ(delivered->outcome, Delivery::Outcome::delivered);
  EXPECT_EQ(d.acknowledged(sent[1].packet_id, R::payload_format_invalid)->outcome, Delivery::Outcome::refused);
  EXPECT_EQ(d.acknowledged(sent[2].packet_id, R::quota_exceeded)->outcome, Delivery::Outcome::retry_later);
  EXPECT_EQ(d.acknowledged(sent[3].packet_id, R::no_matching_subscribers)->outcome, Delivery::Outcome::delivered);
  EXPECT_FALSE(d.acknowledged(sent[3].packet_id, R::success));  // a repeated PUBACK is ignored
  EXPECT_EQ(outcome_of(R::not_authorized), Delivery::Outcome::refused);
  EXPECT_EQ(outcome_of(R::server_busy), Delivery::Outcome::retry_later);
}

TEST(Delivery, PacketIdsSkipZeroAndThoseStillInFlightWhenTheyWrap) {
  Delivery d(2);
  d.connected(std::nullopt);
  auto held = d.take(std::vector<std::uint64_t>{1});
  ASSERT_EQ(held.size(), 1U);
  const auto kept = held[0].packet_id;
  std::uint64_t seq = 2;
  for (int i = 0; i < 70000; ++i, ++seq) {
    const auto sent = d.take(std::vector<std::uint64_t>{1, seq});
    ASSERT_EQ(sent.size(), 1U);
    ASSERT_NE(sent[0].packet_id, 0);
    ASSERT_NE(sent[0].packet_id, kept);
    ASSERT_TRUE(d.acknowledged(sent[0].packet_id, R::success));
  }
}

}  // namespace
}  // namespace torii::agent

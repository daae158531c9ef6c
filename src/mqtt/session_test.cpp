// The server session state machine driven by bytes, as a connection would drive it.
#include "mqtt/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mqtt/codec.h"

namespace torii::mqtt {
namespace {

using ::testing::ElementsAre;

class FakeHost final : public SessionHost {
 public:
  ConnectDecision connect_decision;
  PublishDecision publish_decision;
  ReasonCode subscribe_answer = ReasonCode::granted_qos_1;
  std::vector<Connect> connects;
  std::vector<Publish> publishes;
  std::vector<std::string> subscribed;  // after SUBACK, in order
  std::vector<std::string> unsubscribed;
  std::function<void()> on_subscribed_hook;
  std::chrono::steady_clock::time_point clock{std::chrono::hours(1)};

  [[nodiscard]] std::chrono::steady_clock::time_point now() const override { return clock; }

  ConnectDecision on_connect(const Connect& connect) override {
    connects.push_back(connect);
    return connect_decision;
  }
  PublishDecision on_publish(const Publish& publish) override {
    publishes.push_back(publish);
    return publish_decision;
  }
  ReasonCode on_subscribe(const Subscription& s) override {
    return s.filter.starts_with("denied") ? ReasonCode::not_authorized : subscribe_answer;
  }
  ReasonCode on_unsubscribe(std::string_view filter) override {
    unsubscribed.emplace_back(filter);
    return ReasonCode::success;
  }
  void on_subscribed(const Subscription& s, bool) override {
    subscribed.push_back(s.filter);
    if (on_subscribed_hook) on_subscribed_hook();
  }
};

Bytes bytes_of(const Packet& p, ProtocolVersion v) {
  Bytes out;
  EXPECT_TRUE(encode(p, v, out));
  return out;
}

// Decodes everything the session wrote into packets.
std::vector<Packet> packets_in(const Bytes& out, ProtocolVersion v) {
  std::vector<Packet> packets;
  std::size_t offset = 0;
  while (offset < out.size()) {
    const ByteView rest(out.data() + offset, out.size() - offset);
    auto f = frame(rest, 1 << 20);
    EXPECT_TRUE(f && *f) << "incomplete output";
    if (!f || !*f) break;
    auto p = decode(rest.first((*f)->total_bytes()), v);
    EXPECT_TRUE(p) << (p ? "" : p.error().message);
    if (!p) break;
    packets.push_back(*p);
    offset += (*f)->total_bytes();
  }
  return packets;
}

// A 3.1.1 CONNECT as mosquitto_pub sends it: clean session, keep-alive 60, client id "d1".
const Bytes kConnect311 = {0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 'd', '1'};

class SessionTest : public ::testing::Test {
 protected:
  FakeHost host;
  SessionLimits limits;

  std::unique_ptr<Session> connect5(Properties props = {}, std::optional<Will> will = std::nullopt) {
    auto s = std::make_unique<Session>(host, limits);
    Connect c;
    c.version = ProtocolVersion::v5;
    c.client_id = "dev-1";
    c.keep_alive_seconds = 30;
    c.properties = std::move(props);
    c.will = std::move(will);
    s->receive(bytes_of(c, ProtocolVersion::v5));
    auto out = packets_in(s->take_output(), ProtocolVersion::v5);
    EXPECT_EQ(out.size(), 1u);
    EXPECT_TRUE(s->connected());
    return s;
  }

  std::unique_ptr<Session> connect311() {
    auto s = std::make_unique<Session>(host, limits);
    s->receive(kConnect311);
    EXPECT_EQ(s->take_output(), (Bytes{0x20, 0x02, 0x00, 0x00}));
    return s;
  }
};

TEST_F(SessionTest, A311ConnectFromTheWireGetsAnAcceptingConnack) {
  auto s = connect311();
  EXPECT_TRUE(s->connected());
  EXPECT_EQ(s->version(), ProtocolVersion::v311);
  EXPECT_EQ(s->client_id(), "d1");
  EXPECT_EQ(s->keep_alive(), std::chrono::seconds(60));
  ASSERT_EQ(host.connects.size(), 1u);
}

TEST_F(SessionTest, BytesArrivingOneAtATimeMakeTheSamePackets) {
  Session s(host, limits);
  for (std::uint8_t b : kConnect311) s.receive(ByteView(&b, 1));
  EXPECT_TRUE(s.connected());
  const Bytes publish = {0x30, 0x0b, 0x00, 0x06, 'a', '/', 'b', '/', 'c', 'd', 'h', 'i', '!'};
  for (std::uint8_t b : publish) s.receive(ByteView(&b, 1));
  ASSERT_EQ(host.publishes.size(), 1u);
  EXPECT_EQ(host.publishes[0].topic, "a/b/cd");
}

TEST_F(SessionTest, TheFirstPacketMustBeConnect) {
  Session s(host, limits);
  s.receive(Bytes{0xc0, 0x00});  // PINGREQ
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(s.close_reason(), ReasonCode::protocol_error);
  EXPECT_FALSE(s.has_output());
  EXPECT_TRUE(host.connects.empty());
}

TEST_F(SessionTest, AnUnsupportedProtocolLevelIsAnsweredWithReturnCode1) {
  Session s(host, limits);
  Bytes c = kConnect311;
  c[8] = 0x03;  // MQTT 3.1 level with the 3.1.1 name
  s.receive(c);
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(s.take_output(), (Bytes{0x20, 0x02, 0x00, 0x01}));
}

TEST_F(SessionTest, ARefusedConnectGetsTheHostsReasonAndCloses) {
  host.connect_decision.reason = ReasonCode::not_authorized;
  Session s(host, limits);
  s.receive(kConnect311);
  EXPECT_EQ(s.take_output(), (Bytes{0x20, 0x02, 0x00, 0x05}));  // 3.1.1: not authorized
  EXPECT_TRUE(s.closed());

  Session s5(host, limits);
  Connect c;
  c.client_id = "x";
  s5.receive(bytes_of(c, ProtocolVersion::v5));
  auto out = packets_in(s5.take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Connack>(out[0]).reason, ReasonCode::not_authorized);
}

TEST_F(SessionTest, ASecondConnectIsAProtocolError) {
  auto s = connect5();
  Connect again;
  again.client_id = "dev-1";
  s->receive(bytes_of(again, ProtocolVersion::v5));
  EXPECT_TRUE(s->closed());
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Disconnect>(out[0]).reason, ReasonCode::protocol_error);
}

TEST_F(SessionTest, Connack5AnnouncesTheServersLimitsAndOverridesAMissingKeepAlive) {
  limits.max_keep_alive_seconds = 120;
  Session s(host, limits);
  Connect c;
  c.client_id = "";
  c.keep_alive_seconds = 0;
  host.connect_decision.assigned_client_id = "dev-9";
  s.receive(bytes_of(c, ProtocolVersion::v5));
  auto out = packets_in(s.take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  const auto& ack = std::get<Connack>(out[0]);
  EXPECT_EQ(ack.reason, ReasonCode::success);
  EXPECT_EQ(ack.properties.server_keep_alive, 120);
  EXPECT_EQ(ack.properties.receive_maximum, limits.receive_maximum);
  EXPECT_EQ(ack.properties.maximum_packet_size, limits.maximum_packet_bytes);
  EXPECT_EQ(ack.properties.shared_subscription_available, 0);
  EXPECT_EQ(ack.properties.assigned_client_identifier, "dev-9");
  EXPECT_EQ(s.keep_alive(), std::chrono::seconds(120));
}

TEST_F(SessionTest, QoS1IsAcknowledgedOnlyOnceTheHostSaysItIsDurable) {
  host.publish_decision.pending = true;
  auto s = connect5();
  Publish p;
  p.qos = 1;
  p.packet_id = 7;
  p.topic = "devices/dev-1/telemetry";
  p.payload = {'{', '}'};
  s->receive(bytes_of(p, ProtocolVersion::v5));
  EXPECT_FALSE(s->has_output());
  // A retransmission while pending is neither passed on again nor acknowledged.
  p.dup = true;
  s->receive(bytes_of(p, ProtocolVersion::v5));
  EXPECT_EQ(host.publishes.size(), 1u);
  EXPECT_FALSE(s->has_output());
  s->complete_publish(7, ReasonCode::success);
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Puback>(out[0]).packet_id, 7);
  EXPECT_EQ(std::get<Puback>(out[0]).reason, ReasonCode::success);
}

TEST_F(SessionTest, ARefusedPublishGetsItsReasonIn5AndAPlainAckIn311) {
  host.publish_decision.reason = ReasonCode::not_authorized;
  auto s5 = connect5();
  Publish p;
  p.qos = 1;
  p.packet_id = 3;
  p.topic = "devices/other/telemetry";
  s5->receive(bytes_of(p, ProtocolVersion::v5));
  auto out = packets_in(s5->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Puback>(out[0]).reason, ReasonCode::not_authorized);

  auto s3 = connect311();
  s3->receive(bytes_of(p, ProtocolVersion::v311));
  EXPECT_EQ(s3->take_output(), (Bytes{0x40, 0x02, 0x00, 0x03}));
  EXPECT_TRUE(s3->connected());
}

TEST_F(SessionTest, A311MessageThatCouldNotBeStoredClosesTheConnectionInsteadOfBeingAcknowledged) {
  host.publish_decision.pending = true;
  auto s = connect311();
  Publish p;
  p.qos = 1;
  p.packet_id = 9;
  p.topic = "t";
  s->receive(bytes_of(p, ProtocolVersion::v311));
  s->complete_publish(9, ReasonCode::unspecified_error);
  EXPECT_FALSE(s->has_output());
  EXPECT_TRUE(s->closed());
}

// 5.0 cannot acknowledge with "server busy" (§3.4.2.1): the session closes with it,
// unacknowledged, rather than write a PUBACK no client may accept.
TEST_F(SessionTest, A5MessageTheServerIsTooBusyToStoreClosesWithServerBusyUnacknowledged) {
  host.publish_decision.pending = true;
  auto s = connect5();
  Publish p;
  p.qos = 1;
  p.packet_id = 4;
  p.topic = "t";
  s->receive(bytes_of(p, ProtocolVersion::v5));
  s->complete_publish(4, ReasonCode::server_busy);
  EXPECT_TRUE(s->closed());
  EXPECT_EQ(s->close_reason(), ReasonCode::server_busy);
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Disconnect>(out[0]).reason, ReasonCode::server_busy);
}

// A PUBLISH the host holds back waits, with everything the client sent after it, until
// resume(): then the host is asked again and the rest follows, each packet counted once.
TEST_F(SessionTest, APublishHeldBackWaitsWithWhatFollowsItUntilResumed) {
  auto s = connect5();
  Bytes wire;
  for (std::uint16_t id = 1; id <= 3; ++id) {
    Publish p;
    p.qos = 1;
    p.packet_id = id;
    p.topic = "devices/dev-1/telemetry";
    p.properties.topic_alias = 1;
    if (id == 2) p.topic.clear();  // by its alias, set by the first
    const auto one = bytes_of(p, ProtocolVersion::v5);
    wire.insert(wire.end(), one.begin(), one.end());
  }
  const Bytes ping = bytes_of(Pingreq{}, ProtocolVersion::v5);
  wire.insert(wire.end(), ping.begin(), ping.end());
  const auto packets_before = s->counters().packets_in;

  host.publish_decision.hold = true;
  s->receive(wire);
  EXPECT_TRUE(s->held());
  EXPECT_FALSE(s->closed());
  EXPECT_FALSE(s->has_output());  // no acknowledgement, no PINGRESP
  ASSERT_EQ(host.publishes.size(), 1u);
  s->resume();  // still held back
  EXPECT_TRUE(s->held());
  EXPECT_EQ(host.publishes.size(), 2u);

  host.publish_decision.hold = false;
  s->resume();
  EXPECT_FALSE(s->held());
  ASSERT_EQ(host.publishes.size(), 5u);
  EXPECT_EQ(host.publishes[2].packet_id, 1);
  EXPECT_EQ(host.publishes[3].packet_id, 2);
  EXPECT_EQ(host.publishes[3].topic, "devices/dev-1/telemetry");
  EXPECT_EQ(host.publishes[4].packet_id, 3);
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 4u);
  for (std::uint16_t id = 1; id <= 3; ++id) EXPECT_EQ(std::get<Puback>(out[id - 1]).packet_id, id);
  EXPECT_TRUE(std::holds_alternative<Pingresp>(out[3]));
  EXPECT_EQ(s->counters().packets_in, packets_before + 4);
  EXPECT_EQ(s->counters().publishes_in, 3u);
  s->resume();  // not held: nothing happens
  EXPECT_EQ(host.publishes.size(), 5u);
}

TEST_F(SessionTest, QoS2IsDeliveredOnceWhateverTheRetransmissions) {
  auto s = connect5();
  Publish p;
  p.qos = 2;
  p.packet_id = 11;
  p.topic = "t";
  s->receive(bytes_of(p, ProtocolVersion::v5));
  p.dup = true;
  s->receive(bytes_of(p, ProtocolVersion::v5));
  EXPECT_EQ(host.publishes.size(), 1u);
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(std::get<Pubrec>(out[0]).packet_id, 11);
  EXPECT_EQ(std::get<Pubrec>(out[1]).packet_id, 11);
  s->receive(bytes_of(Pubrel{11, ReasonCode::success, {}}, ProtocolVersion::v5));
  s->receive(bytes_of(Pubrel{11, ReasonCode::success, {}}, ProtocolVersion::v5));
  out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(std::get<Pubcomp>(out[0]).reason, ReasonCode::success);
  EXPECT_EQ(std::get<Pubcomp>(out[1]).reason, ReasonCode::packet_identifier_not_found);
  // After PUBCOMP the id is free: a new message with it is a new message.
  p.dup = false;
  s->receive(bytes_of(p, ProtocolVersion::v5));
  EXPECT_EQ(host.publishes.size(), 2u);
}

TEST_F(SessionTest, MoreUnacknowledgedMessagesThanTheReceiveMaximumCloseTheConnection) {
  limits.receive_maximum = 2;
  host.publish_decision.pending = true;
  auto s = connect5();
  for (std::uint16_t id = 1; id <= 3; ++id) {
    Publish p;
    p.qos = 1;
    p.packet_id = id;
    p.topic = "t";
    s->receive(bytes_of(p, ProtocolVersion::v5));
  }
  EXPECT_TRUE(s->closed());
  EXPECT_EQ(s->close_reason(), ReasonCode::receive_maximum_exceeded);
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Disconnect>(out[0]).reason, ReasonCode::receive_maximum_exceeded);
}

TEST_F(SessionTest, TopicAliasesAreResolvedAndBoundsEnforced) {
  auto s = connect5();
  Publish p;
  p.topic = "devices/dev-1/telemetry";
  p.properties.topic_alias = 1;
  s->receive(bytes_of(p, ProtocolVersion::v5));
  p.topic.clear();
  s->receive(bytes_of(p, ProtocolVersion::v5));
  ASSERT_EQ(host.publishes.size(), 2u);
  EXPECT_EQ(host.publishes[1].topic, "devices/dev-1/telemetry");
  EXPECT_FALSE(host.publishes[1].properties.topic_alias);

  p.properties.topic_alias = 2;  // never set
  s->receive(bytes_of(p, ProtocolVersion::v5));
  EXPECT_EQ(s->close_reason(), ReasonCode::protocol_error);

  auto s2 = connect5();
  Publish q;
  q.topic = "t";
  q.properties.topic_alias = static_cast<std::uint16_t>(limits.topic_alias_maximum + 1);
  s2->receive(bytes_of(q, ProtocolVersion::v5));
  EXPECT_EQ(s2->close_reason(), ReasonCode::topic_alias_invalid);
}

TEST_F(SessionTest, SubackCarriesOneAnswerPerFilterAndRetainedFollowAfterIt) {
  auto s = connect5();
  host.on_subscribed_hook = [&] {
    // The SUBACK is already in the output when the host is first told.
    if (host.subscribed.size() > 1) return;
    auto out = packets_in(s->take_output(), ProtocolVersion::v5);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_THAT(std::get<Suback>(out[0]).reasons,
                ElementsAre(ReasonCode::granted_qos_1, ReasonCode::not_authorized,
                            ReasonCode::shared_subscriptions_not_supported, ReasonCode::success));
  };
  Subscribe sub;
  sub.packet_id = 5;
  sub.subscriptions = {{"devices/dev-1/commands", 2}, {"denied/x", 1}, {"$share/g/t", 0}, {"qos0", 0}};
  s->receive(bytes_of(sub, ProtocolVersion::v5));
  EXPECT_THAT(host.subscribed, ElementsAre("devices/dev-1/commands", "qos0"));
  EXPECT_EQ(s->state()->subscriptions.size(), 2u);
  EXPECT_EQ(s->state()->subscriptions.at("devices/dev-1/commands").qos, 1);

  Unsubscribe unsub;
  unsub.packet_id = 6;
  unsub.filters = {"qos0", "never"};
  s->receive(bytes_of(unsub, ProtocolVersion::v5));
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_THAT(std::get<Unsuback>(out[0]).reasons,
              ElementsAre(ReasonCode::success, ReasonCode::no_subscription_existed));
}

TEST_F(SessionTest, A311RefusedSubscriptionIsAnsweredWith0x80) {
  auto s = connect311();
  Subscribe sub;
  sub.packet_id = 1;
  sub.subscriptions = {{"denied/x", 0}, {"ok", 1}};
  s->receive(bytes_of(sub, ProtocolVersion::v311));
  EXPECT_EQ(s->take_output(), (Bytes{0x90, 0x04, 0x00, 0x01, 0x80, 0x01}));
}

TEST_F(SessionTest, OutboundQoS1RespectsTheClientsReceiveMaximum) {
  Properties props;
  props.receive_maximum = 2;
  auto s = connect5(props);
  for (int i = 0; i < 5; ++i) {
    Publish m;
    m.qos = 1;
    m.topic = "devices/dev-1/commands";
    m.payload = {static_cast<std::uint8_t>('0' + i)};
    s->deliver(m);
  }
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 2u);
  const auto first_id = std::get<Publish>(out[0]).packet_id;
  EXPECT_NE(first_id, 0);
  EXPECT_NE(std::get<Publish>(out[1]).packet_id, first_id);
  s->receive(bytes_of(Puback{first_id, ReasonCode::success, {}}, ProtocolVersion::v5));
  out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Publish>(out[0]).payload, Bytes{'2'});
  EXPECT_EQ(s->state()->queued_out.size(), 2u);
}

TEST_F(SessionTest, AQueuedMessageExpiresAndOneSentLaterCarriesTheTimeItHasLeft) {
  Properties props;
  props.receive_maximum = 1;
  auto s = connect5(props);
  const auto message = [](char payload, std::optional<std::uint32_t> expiry) {
    Publish m;
    m.qos = 1;
    m.topic = "devices/dev-1/commands";
    m.payload = {static_cast<std::uint8_t>(payload)};
    m.properties.message_expiry_interval = expiry;
    return m;
  };
  s->deliver(message('a', 60));  // sent at once, with its full interval
  s->deliver(message('b', 10));  // waits for the window
  s->deliver(message('c', 30));
  s->deliver(message('d', std::nullopt));  // never expires
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Publish>(out[0]).properties.message_expiry_interval, 60U);

  host.clock += std::chrono::milliseconds(12500);  // b has expired, c has 17.5 s left
  s->receive(bytes_of(Puback{std::get<Publish>(out[0]).packet_id, ReasonCode::success, {}}, ProtocolVersion::v5));
  out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Publish>(out[0]).payload, Bytes{'c'});
  EXPECT_EQ(std::get<Publish>(out[0]).properties.message_expiry_interval, 18U);  // rounded up
  EXPECT_EQ(s->state()->expired_out, 1u);

  host.clock += std::chrono::hours(24);
  s->receive(bytes_of(Puback{std::get<Publish>(out[0]).packet_id, ReasonCode::success, {}}, ProtocolVersion::v5));
  out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Publish>(out[0]).payload, Bytes{'d'});
  EXPECT_FALSE(std::get<Publish>(out[0]).properties.message_expiry_interval);
}

TEST_F(SessionTest, AKeptSessionResendsUnacknowledgedMessagesWithDup) {
  auto s = connect5();
  Publish m;
  m.qos = 1;
  m.topic = "devices/dev-1/commands";
  s->deliver(m);
  auto out = packets_in(s->take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 1u);
  const auto id = std::get<Publish>(out[0]).packet_id;
  s->connection_lost();

  host.connect_decision.state = s->state();
  host.connect_decision.session_present = true;
  Session again(host, limits);
  Connect c;
  c.client_id = "dev-1";
  c.clean_start = false;
  again.receive(bytes_of(c, ProtocolVersion::v5));
  out = packets_in(again.take_output(), ProtocolVersion::v5);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(std::get<Connack>(out[0]).session_present);
  EXPECT_TRUE(std::get<Publish>(out[1]).dup);
  EXPECT_EQ(std::get<Publish>(out[1]).packet_id, id);
}

TEST_F(SessionTest, TheWillIsPublishedOnlyWhenTheConnectionEndsAbnormally) {
  Will will{"devices/dev-1/state", {'o', 'f', 'f'}, 1, true, {}};
  auto normal = connect5({}, will);
  normal->receive(bytes_of(Disconnect{}, ProtocolVersion::v5));
  EXPECT_TRUE(normal->closed());
  EXPECT_FALSE(normal->take_will());

  auto with_will = connect5({}, will);
  with_will->receive(bytes_of(Disconnect{ReasonCode::disconnect_with_will, {}}, ProtocolVersion::v5));
  EXPECT_TRUE(with_will->take_will());

  auto lost = connect5({}, will);
  lost->connection_lost();
  auto taken = lost->take_will();
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->topic, "devices/dev-1/state");
  EXPECT_FALSE(lost->take_will());  // once

  auto timed_out = connect5({}, will);
  timed_out->close(ReasonCode::keep_alive_timeout, "silent");
  EXPECT_TRUE(timed_out->take_will());
}

TEST_F(SessionTest, APacketLargerThanTheLimitClosesTheConnection) {
  limits.maximum_packet_bytes = 64;
  auto s = connect5();
  Publish p;
  p.topic = "t";
  p.payload.assign(100, 'x');
  s->receive(bytes_of(p, ProtocolVersion::v5));
  EXPECT_TRUE(s->closed());
  EXPECT_EQ(s->close_reason(), ReasonCode::packet_too_large);
  EXPECT_TRUE(host.publishes.empty());
}

TEST_F(SessionTest, MessagesLargerThanTheClientAcceptsAreDroppedAndCounted) {
  Properties props;
  props.maximum_packet_size = 40;
  auto s = connect5(props);
  Publish m;
  m.topic = "devices/dev-1/commands";
  m.payload.assign(100, 'x');
  s->deliver(m);
  EXPECT_FALSE(s->has_output());
  EXPECT_EQ(s->state()->dropped_out, 1u);
}

TEST_F(SessionTest, QosZeroMessagesForAClientThatDoesNotReadAreDroppedOnceItsOutputIsFull) {
  limits.max_pending_output_bytes = std::size_t{64} * 1024;
  auto s = connect5();
  Publish m;
  m.topic = "devices/dev-1/commands";
  m.payload.assign(1000, 'x');
  const std::size_t packet = bytes_of(m, ProtocolVersion::v5).size();
  constexpr std::size_t kDelivered = 100;  // about 100 KiB: more than the limit
  for (std::size_t i = 0; i < kDelivered; ++i) s->deliver(m);
  // The connection has taken nothing (it is still writing): what waits stops at the limit.
  const Bytes held = s->take_output();
  EXPECT_GE(held.size(), limits.max_pending_output_bytes);
  EXPECT_LT(held.size(), limits.max_pending_output_bytes + packet);
  const std::size_t kept = packets_in(held, ProtocolVersion::v5).size();
  EXPECT_LT(kept, kDelivered);
  EXPECT_EQ(s->state()->dropped_out, kDelivered - kept);
  EXPECT_EQ(s->counters().publishes_out, kept);
  // Taken by the connection: messages are accepted again.
  s->deliver(m);
  EXPECT_EQ(packets_in(s->take_output(), ProtocolVersion::v5).size(), 1u);
  EXPECT_EQ(s->state()->dropped_out, kDelivered - kept);

  // Retained messages for a new subscription come all at once: none is dropped.
  for (std::size_t i = 0; i < kDelivered; ++i) s->deliver(m, Delivery::retained_on_subscribe);
  EXPECT_EQ(packets_in(s->take_output(), ProtocolVersion::v5).size(), kDelivered);
  EXPECT_EQ(s->state()->dropped_out, kDelivered - kept);
}

TEST_F(SessionTest, GarbageAfterConnectIsAMalformedPacket) {
  auto s = connect311();
  s->receive(Bytes{0x30, 0x03, 0x00, 0x05, 'a'});  // topic length beyond the packet
  EXPECT_TRUE(s->closed());
  EXPECT_EQ(s->close_reason(), ReasonCode::malformed_packet);
  EXPECT_FALSE(s->has_output());  // 3.1.1 has no DISCONNECT from the server
}

}  // namespace
}  // namespace torii::mqtt

#include "console/websocket.h"

#include <gtest/gtest.h>

#include <string>

namespace torii::console::websocket {
namespace {

// A frame as a client sends it: masked with `mask`.
Bytes client_frame(std::uint8_t first, ByteView payload, std::array<std::uint8_t, 4> mask = {0x37, 0xfa, 0x21, 0x3d}) {
  Bytes out{first, static_cast<std::uint8_t>(0x80U | payload.size())};
  out.insert(out.end(), mask.begin(), mask.end());
  for (std::size_t i = 0; i < payload.size(); ++i) out.push_back(payload[i] ^ mask[i % 4]);
  return out;
}

Bytes close_payload(unsigned code, std::string_view reason = "") {
  Bytes out{static_cast<std::uint8_t>(code >> 8U), static_cast<std::uint8_t>(code)};
  out.insert(out.end(), reason.begin(), reason.end());
  return out;
}

// The close code of a server close frame, 0 when `bytes` is not one.
unsigned close_code_of(const Bytes& bytes) {
  if (bytes.size() < 4 || bytes[0] != 0x88) return 0;
  return (unsigned{bytes[2]} << 8U) | bytes[3];
}

Request upgrade_request() {
  Request r;
  r.method = "GET";
  r.path = "/api/v1/live";
  r.headers = {{"host", "console.example.org"},
               {"upgrade", "websocket"},
               {"connection", "keep-alive, Upgrade"},
               {"sec-websocket-version", "13"},
               {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  return r;
}

TEST(WebSocket, TheAcceptKeyIsTheOneOfRfc6455sExample) {
  // RFC 6455 §1.3.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, AValidOpeningHandshakeIsAccepted) {
  auto accepted = check_handshake(upgrade_request());
  ASSERT_TRUE(accepted) << accepted.error().reason;
  EXPECT_EQ(*accepted, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, AnIncompleteOrForeignHandshakeIsRefusedWithItsReason) {
  auto without = [](std::string_view field) {
    Request r = upgrade_request();
    std::erase_if(r.headers, [&](const auto& h) { return h.first == field; });
    return check_handshake(r);
  };
  EXPECT_EQ(without("upgrade").error().status, 400);
  EXPECT_EQ(without("connection").error().status, 400);
  EXPECT_EQ(without("sec-websocket-key").error().status, 400);
  EXPECT_EQ(without("sec-websocket-version").error().status, 426);

  Request post = upgrade_request();
  post.method = "POST";
  EXPECT_EQ(check_handshake(post).error().status, 400);

  Request old = upgrade_request();
  old.headers[3].second = "8";
  EXPECT_EQ(check_handshake(old).error().status, 426);

  for (const std::string key : {"dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZSBub25jZQ=",
                                "c2hvcnQ=", "dGhlIHNhbXBsZSBub25j*Q=="}) {
    Request r = upgrade_request();
    r.headers[4].second = key;
    auto refused = check_handshake(r);
    ASSERT_FALSE(refused) << key;
    EXPECT_EQ(refused.error().status, 400) << key;
  }
}

TEST(WebSocket, ServerFramesUseTheShortestLengthEncoding) {
  for (const std::size_t n : {0UL, 125UL, 126UL, 65535UL, 65536UL}) {
    const Bytes payload(n, 'x');
    const Bytes frame = encode_frame(kText, payload);
    ASSERT_GE(frame.size(), 2U);
    EXPECT_EQ(frame[0], 0x81) << n;        // FIN, text
    EXPECT_EQ(frame[1] & 0x80U, 0U) << n;  // a server never masks
    const std::size_t header = n < 126 ? 2 : n <= 0xFFFF ? 4 : 10;
    EXPECT_EQ(frame.size(), header + n) << n;
    if (n < 126) {
      EXPECT_EQ(frame[1], n);
    } else if (n <= 0xFFFF) {
      EXPECT_EQ(frame[1], 126);
      EXPECT_EQ((std::size_t{frame[2]} << 8U) | frame[3], n);
    } else {
      EXPECT_EQ(frame[1], 127);
    }
  }
}

TEST(WebSocket, APingIsAnsweredWithAPongOfTheSamePayloadEvenWhenItArrivesInPieces) {
  Connection c;
  const Bytes ping = client_frame(0x89, as_bytes("are you there"));
  for (const std::uint8_t b : ping) c.receive(ByteView(&b, 1));
  EXPECT_TRUE(c.heard_from_peer());
  EXPECT_FALSE(c.heard_from_peer());
  EXPECT_EQ(c.take_output(), encode_frame(kPong, as_bytes("are you there")));
  EXPECT_FALSE(c.closed());
}

TEST(WebSocket, TextIsSentAsOneUnmaskedFrame) {
  Connection c;
  c.send_text(R"({"type":"status"})");
  EXPECT_EQ(c.take_output(), encode_frame(kText, as_bytes(R"({"type":"status"})")));
}

TEST(WebSocket, AClientsCloseIsAnsweredWithItsCodeAndEndsTheConnection) {
  Connection c;
  c.receive(client_frame(0x88, close_payload(1000, "bye")));
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.take_output(), encode_frame(kClose, close_payload(1000)));
  c.send_text("nothing after the close");
  EXPECT_FALSE(c.has_output());
}

TEST(WebSocket, OurCloseWaitsForTheClientsAnswer) {
  Connection c;
  c.close(CloseCode::policy_violation, "the session ended");
  EXPECT_TRUE(c.closing());
  EXPECT_FALSE(c.closed());
  EXPECT_EQ(close_code_of(c.take_output()), 1008U);
  c.receive(client_frame(0x88, close_payload(1008)));
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.has_output());  // no second close frame
}

TEST(WebSocket, MessagesFromTheClientAreRefusedAsUnsupportedData) {
  for (const std::uint8_t first : {0x81, 0x82, 0x01, 0x80}) {  // text, binary, unfinished text, continuation
    Connection c;
    c.receive(client_frame(first, as_bytes("{}")));
    EXPECT_TRUE(c.closed()) << int{first};
    EXPECT_EQ(close_code_of(c.take_output()), 1003U) << int{first};
  }
}

TEST(WebSocket, ADataFramesAnnouncedLengthIsNeverWaitedFor) {
  // 127: a 64-bit length follows; nothing of it is read before the connection is failed.
  Connection c;
  const Bytes huge{0x82, 0xFF};
  c.receive(huge);
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(close_code_of(c.take_output()), 1003U);
}

TEST(WebSocket, ProtocolViolationsFailTheConnectionWith1002) {
  const std::vector<std::pair<std::string, Bytes>> cases = {
      {"unmasked", Bytes{0x89, 0x00}},
      {"reserved bit", client_frame(0xC9, {})},
      {"reserved opcode", client_frame(0x83, {})},
      {"reserved control opcode", client_frame(0x8B, {})},
      {"fragmented ping", client_frame(0x09, {})},
      {"long ping", Bytes{0x89, 0xFE, 0x00, 0x7E}},
      {"one-byte close", client_frame(0x88, Bytes{0x03})},
      {"close code 1005", client_frame(0x88, close_payload(1005))},
      {"close code 999", client_frame(0x88, close_payload(999))},
      {"close code 2000", client_frame(0x88, close_payload(2000))},
      {"close code 5000", client_frame(0x88, close_payload(5000))},
  };
  for (const auto& [name, bytes] : cases) {
    Connection c;
    c.receive(bytes);
    EXPECT_TRUE(c.closed()) << name;
    EXPECT_EQ(close_code_of(c.take_output()), 1002U) << name;
  }
}

TEST(WebSocket, CloseCodesAClientMaySendAreAccepted) {
  for (const unsigned code : {1000U, 1001U, 1003U, 1007U, 1011U, 3000U, 4999U}) {
    Connection c;
    c.receive(client_frame(0x88, close_payload(code)));
    EXPECT_TRUE(c.closed());
    EXPECT_EQ(close_code_of(c.take_output()), code);
  }
  Connection empty;
  empty.receive(client_frame(0x88, {}));
  EXPECT_TRUE(empty.closed());
  EXPECT_EQ(empty.take_output(), encode_frame(kClose, {}));
}

TEST(WebSocket, APeerThatPingsWithoutReadingTheAnswersIsCutOff) {
  Connection c;
  const Bytes ping = client_frame(0x89, Bytes(125, 'p'));
  for (int i = 0; i < 1000 && !c.closed(); ++i) c.receive(ping);
  EXPECT_TRUE(c.closed());
  const Bytes out = c.take_output();
  EXPECT_LT(out.size(), std::size_t{70} * 1024);
}

TEST(WebSocket, NothingIsReadAfterTheConnectionFailed) {
  Connection c;
  c.receive(Bytes{0x89, 0x00});  // unmasked: failed
  (void)c.take_output();
  c.receive(client_frame(0x89, as_bytes("late")));
  EXPECT_FALSE(c.has_output());
}

}  // namespace
}  // namespace torii::console::websocket

// Fuzzes the server session state machine (mqtt::Session) with a byte stream from a
// client, as the gateway feeds it: arbitrary chunking, a host that grants, refuses and
// defers, messages delivered to the client, acknowledgements completed late.
//
// Input: byte 0 picks the host's behaviour, byte 1 the chunk size (1..64); the rest is the
// client's byte stream. Properties beyond "does not crash":
//   - everything the session writes is a sequence of well-formed packets of its version
//     (a CONNACK first), which the codec decodes completely;
//   - once closed, the session neither reads nor writes anything more;
//   - the outbound queue and in-flight window stay within their limits.
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "fuzz_check.h"
#include "mqtt/codec.h"
#include "mqtt/session.h"

namespace torii::fuzz {
namespace {

using namespace torii::mqtt;

class Host final : public SessionHost {
 public:
  explicit Host(std::uint8_t mode) : mode_(mode) {}
  ConnectDecision on_connect(const Connect&) override {
    ConnectDecision d;
    if (mode_ & 0x01) d.reason = ReasonCode::not_authorized;
    d.assigned_client_id = "fuzz";
    return d;
  }
  PublishDecision on_publish(const Publish& p) override {
    ++publishes;
    PublishDecision d;
    d.pending = (mode_ & 0x02) != 0 && p.qos > 0;
    if (mode_ & 0x04) d.reason = ReasonCode::not_authorized;
    if (d.pending) pending.push_back(p.packet_id);
    return d;
  }
  ReasonCode on_subscribe(const Subscription& s) override {
    return (mode_ & 0x08) ? ReasonCode::not_authorized : static_cast<ReasonCode>(s.qos);
  }
  ReasonCode on_unsubscribe(std::string_view) override { return ReasonCode::success; }
  void on_subscribed(const Subscription&, bool) override {}

  std::size_t publishes = 0;
  std::vector<std::uint16_t> pending;

 private:
  std::uint8_t mode_;
};

// Decodes the session's output completely; traps on anything malformed.
void check_output(const Bytes& out, ProtocolVersion version, bool& first) {
  std::size_t offset = 0;
  while (offset < out.size()) {
    const ByteView rest(out.data() + offset, out.size() - offset);
    auto f = frame(rest, 1u << 28);
    check(f.has_value() && f->has_value() && (*f)->total_bytes() <= rest.size());
    auto packet = decode(rest.first((*f)->total_bytes()), version);
    if (!packet) std::fprintf(stderr, "session wrote an undecodable packet: %s\n", packet.error().message.c_str());
    check(packet.has_value());
    if (first) check(std::holds_alternative<Connack>(*packet));
    first = false;
    offset += (*f)->total_bytes();
  }
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii::fuzz;
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::size_t chunk = 1 + (data[1] % 64);
  data += 2;
  size -= 2;

  Host host(mode);
  SessionLimits limits;
  limits.receive_maximum = 4;
  limits.max_queued_out = 8;
  limits.max_inflight_out = 4;
  limits.maximum_packet_bytes = 4096;
  Session session(host, limits);
  bool first = true;
  bool was_closed = false;
  for (std::size_t offset = 0; offset < size; offset += chunk) {
    const std::size_t n = std::min(chunk, size - offset);
    session.receive(torii::ByteView(data + offset, n));
    if (was_closed) check(!session.has_output());
    if (session.connected() && (mode & 0x10)) {
      Publish m;
      m.topic = "devices/fuzz/commands";
      m.qos = static_cast<std::uint8_t>((mode >> 5) % 3);
      m.payload = {'{', '}'};
      session.deliver(m);
    }
    if (!host.pending.empty() && (offset / chunk) % 2 == 1) {
      session.complete_publish(host.pending.back(),
                               (mode & 0x80) ? ReasonCode::unspecified_error : ReasonCode::success);
      host.pending.pop_back();
    }
    const auto out = session.take_output();
    if (!session.connected() && !session.closed()) check(out.empty());
    if (!out.empty()) check_output(out, session.version(), first);
    if (session.state()) {
      check(session.state()->queued_out.size() <= limits.max_queued_out);
      check(session.state()->inflight_out.size() <= limits.max_inflight_out);
    }
    was_closed = session.closed();
  }
  return 0;
}

#include "mqtt/session_image.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

namespace torii::mqtt {

namespace {

constexpr std::uint8_t kFormat = 1;

template <typename T>
void put(Bytes& out, T value) {
  for (int shift = (static_cast<int>(sizeof(T)) - 1) * 8; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> shift));
  }
}

CodecError malformed(std::string what) { return {ReasonCode::malformed_packet, "session image: " + std::move(what)}; }

class Reader {
 public:
  explicit Reader(ByteView bytes) : bytes_(bytes) {}

  template <typename T>
  CodecResult<T> get(const char* what) {
    if (bytes_.size() - offset_ < sizeof(T)) return tl::unexpected(malformed(std::string(what) + " is cut short"));
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v = (v << 8) | bytes_[offset_ + i];
    offset_ += sizeof(T);
    return static_cast<T>(v);
  }

  // The next packet, framed and decoded as MQTT 5.0.
  CodecResult<Packet> packet(const char* what) {
    const ByteView rest = bytes_.subspan(offset_);
    auto framed = frame(rest, std::numeric_limits<std::size_t>::max());
    if (!framed) return tl::unexpected(malformed(std::string(what) + ": " + framed.error().message));
    if (!*framed || (*framed)->total_bytes() > rest.size()) {
      return tl::unexpected(malformed(std::string(what) + " is cut short"));
    }
    const auto size = (*framed)->total_bytes();
    auto decoded = decode(rest.first(size), ProtocolVersion::v5);
    if (!decoded) return tl::unexpected(malformed(std::string(what) + ": " + decoded.error().message));
    offset_ += size;
    return decoded;
  }

  CodecResult<Publish> publish(const char* what) {
    auto p = packet(what);
    if (!p) return tl::unexpected(p.error());
    auto* publish = std::get_if<Publish>(&*p);
    if (publish == nullptr) return tl::unexpected(malformed(std::string(what) + " is not a PUBLISH"));
    return std::move(*publish);
  }

  [[nodiscard]] bool done() const { return offset_ == bytes_.size(); }

 private:
  ByteView bytes_;
  std::size_t offset_ = 0;
};

}  // namespace

std::int64_t to_unix_ms(std::chrono::steady_clock::time_point at, ImageTime now) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - now.steady).count();
  return now.unix_ms + std::max<std::int64_t>(left, 1);
}

std::chrono::steady_clock::time_point to_steady(std::int64_t unix_ms, ImageTime now) {
  const auto left = std::min<std::int64_t>(unix_ms - now.unix_ms, std::int64_t{0xFFFFFFFF} * 1000);
  return now.steady + std::chrono::milliseconds(left);
}

CodecResult<Bytes> encode_session_image(const SessionState& state, ImageTime now) {
  Bytes out;
  put<std::uint8_t>(out, kFormat);
  put<std::uint16_t>(out, state.last_packet_id);
  put<std::uint16_t>(out, static_cast<std::uint16_t>(state.inbound_qos2.size()));  // ids are u16: ≤ 65,535
  for (auto id : state.inbound_qos2) put<std::uint16_t>(out, id);

  put<std::uint8_t>(out, state.subscriptions.empty() ? 0 : 1);
  if (!state.subscriptions.empty()) {
    Subscribe subscribe{1, {}, {}};
    for (const auto& [filter, s] : state.subscriptions) subscribe.subscriptions.push_back(s);
    if (auto r = encode(subscribe, ProtocolVersion::v5, out); !r) return tl::unexpected(r.error());
  }

  put<std::uint16_t>(out, static_cast<std::uint16_t>(state.inflight_out.size()));  // keyed by u16 packet id
  for (const auto& [id, inflight] : state.inflight_out) {
    put<std::uint8_t>(out, static_cast<std::uint8_t>(inflight.state));
    if (auto r = encode(inflight.message, ProtocolVersion::v5, out); !r) return tl::unexpected(r.error());
  }

  put<std::uint32_t>(out, static_cast<std::uint32_t>(state.queued_out.size()));
  for (const auto& queued : state.queued_out) {
    put<std::int64_t>(out, queued.expires_at ? to_unix_ms(*queued.expires_at, now) : 0);
    Publish message = queued.message;
    if (message.qos > 0 && message.packet_id == 0) message.packet_id = 1;  // the codec wants one; not used
    if (auto r = encode(message, ProtocolVersion::v5, out); !r) return tl::unexpected(r.error());
  }
  put<std::uint64_t>(out, state.dropped_out);
  put<std::uint64_t>(out, state.expired_out);
  return out;
}

CodecResult<SessionState> decode_session_image(ByteView image, ImageTime now) {
  Reader in(image);
  SessionState state;
  auto format = in.get<std::uint8_t>("format");
  if (!format) return tl::unexpected(format.error());
  if (*format != kFormat) return tl::unexpected(malformed("unknown format " + std::to_string(*format)));
  auto last = in.get<std::uint16_t>("last packet id");
  if (!last) return tl::unexpected(last.error());
  state.last_packet_id = *last;

  auto qos2 = in.get<std::uint16_t>("inbound QoS 2 count");
  if (!qos2) return tl::unexpected(qos2.error());
  for (std::uint16_t i = 0; i < *qos2; ++i) {
    auto id = in.get<std::uint16_t>("inbound QoS 2 packet id");
    if (!id) return tl::unexpected(id.error());
    if (*id == 0 || !state.inbound_qos2.insert(*id).second) return tl::unexpected(malformed("bad inbound packet id"));
  }

  auto has_subscriptions = in.get<std::uint8_t>("subscription flag");
  if (!has_subscriptions) return tl::unexpected(has_subscriptions.error());
  if (*has_subscriptions > 1) return tl::unexpected(malformed("bad subscription flag"));
  if (*has_subscriptions == 1) {
    auto p = in.packet("subscriptions");
    if (!p) return tl::unexpected(p.error());
    auto* subscribe = std::get_if<Subscribe>(&*p);
    if (subscribe == nullptr) return tl::unexpected(malformed("subscriptions are not a SUBSCRIBE"));
    for (auto& s : subscribe->subscriptions) {
      std::string filter = s.filter;
      if (!state.subscriptions.emplace(std::move(filter), std::move(s)).second) {
        return tl::unexpected(malformed("a subscription filter is repeated"));
      }
    }
  }

  auto inflight = in.get<std::uint16_t>("in-flight count");
  if (!inflight) return tl::unexpected(inflight.error());
  for (std::uint16_t i = 0; i < *inflight; ++i) {
    auto out_state = in.get<std::uint8_t>("in-flight state");
    if (!out_state) return tl::unexpected(out_state.error());
    if (*out_state > static_cast<std::uint8_t>(SessionState::OutState::await_pubcomp)) {
      return tl::unexpected(malformed("bad in-flight state"));
    }
    auto message = in.publish("in-flight message");
    if (!message) return tl::unexpected(message.error());
    if (message->qos == 0) return tl::unexpected(malformed("a QoS 0 message in flight"));
    const auto id = message->packet_id;
    const SessionState::Inflight entry{std::move(*message), static_cast<SessionState::OutState>(*out_state)};
    if (!state.inflight_out.emplace(id, entry).second) return tl::unexpected(malformed("a packet id in flight twice"));
  }

  auto queued = in.get<std::uint32_t>("queued count");
  if (!queued) return tl::unexpected(queued.error());
  for (std::uint32_t i = 0; i < *queued; ++i) {
    auto expires_at = in.get<std::int64_t>("queued expiry");
    if (!expires_at) return tl::unexpected(expires_at.error());
    auto message = in.publish("queued message");
    if (!message) return tl::unexpected(message.error());
    if (*expires_at < 0) return tl::unexpected(malformed("negative expiry"));
    if (*expires_at > 0 && *expires_at <= now.unix_ms) {
      ++state.expired_out;
      continue;
    }
    message->packet_id = 0;
    std::optional<std::chrono::steady_clock::time_point> at;
    if (*expires_at > 0) at = to_steady(*expires_at, now);
    state.queued_out.push_back({std::move(*message), at});
  }

  auto dropped = in.get<std::uint64_t>("dropped count");
  if (!dropped) return tl::unexpected(dropped.error());
  auto expired = in.get<std::uint64_t>("expired count");
  if (!expired) return tl::unexpected(expired.error());
  state.dropped_out += *dropped;
  state.expired_out += *expired;
  if (!in.done()) return tl::unexpected(malformed("trailing bytes"));
  return state;
}

}  // namespace torii::mqtt

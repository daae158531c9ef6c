#include "mqtt/session.h"

#include <algorithm>
#include <utility>

#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace torii::mqtt {

namespace {

constexpr std::size_t kMaxClientIdBytes = 128;

// Reasons that mean "the server could not take the message" rather than "the message was
// refused": a 3.1.1 client cannot be told either, but must not get a positive
// acknowledgement for a message that was not stored (it would never send it again).
bool is_server_failure(ReasonCode reason) {
  switch (reason) {
    case ReasonCode::unspecified_error:
    case ReasonCode::implementation_specific_error:
    case ReasonCode::server_unavailable:
    case ReasonCode::server_busy:
    case ReasonCode::server_shutting_down: return true;
    default: return false;
  }
}

}  // namespace

Session::Session(SessionHost& host, const SessionLimits& limits) : host_(host), limits_(limits) {}

std::uint32_t Session::session_expiry_of(const Connect& connect, const SessionLimits& limits) {
  if (connect.version == ProtocolVersion::v5) {
    return std::min(connect.properties.session_expiry_interval.value_or(0), limits.max_session_expiry_seconds);
  }
  return connect.clean_start ? 0 : limits.max_session_expiry_seconds;
}

void Session::receive(ByteView bytes) {
  if (phase_ == Phase::closed) return;
  counters_.bytes_in += bytes.size();
  in_.insert(in_.end(), bytes.begin(), bytes.end());
  process();
}

void Session::resume() {
  if (!held()) return;
  held_ = false;
  process();
}

void Session::process() {
  while (phase_ != Phase::closed && !held_) {
    const ByteView rest(in_.data() + in_offset_, in_.size() - in_offset_);
    auto framed = frame(rest, limits_.maximum_packet_bytes);
    if (!framed) {
      protocol_close(framed.error().reason, framed.error().message);
      break;
    }
    if (!*framed || (*framed)->total_bytes() > rest.size()) break;
    const std::size_t size = (*framed)->total_bytes();
    auto packet = decode(rest.first(size),
                         phase_ == Phase::awaiting_connect ? std::nullopt : std::optional<ProtocolVersion>(version_));
    in_offset_ += size;
    ++counters_.packets_in;
    if (!packet) {
      protocol_close(packet.error().reason, packet.error().message);
      break;
    }
    handle(*packet);
    if (held_) {  // decoded again, and counted then, at resume()
      in_offset_ -= size;
      --counters_.packets_in;
    }
  }
  if (in_offset_ == in_.size()) {
    in_.clear();
    in_offset_ = 0;
  } else if (in_offset_ > 4096 && in_offset_ * 2 > in_.size()) {
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(in_offset_));
    in_offset_ = 0;
  }
}

Bytes Session::take_output() { return std::exchange(out_, {}); }

std::optional<Will> Session::take_will() {
  if (!will_due_ || !will_) return std::nullopt;
  will_due_ = false;
  std::optional<Will> will(std::move(*will_));
  will_.reset();
  return will;
}

void Session::connection_lost() {
  if (phase_ == Phase::closed) return;
  if (phase_ == Phase::connected) will_due_ = will_ != nullptr;
  phase_ = Phase::closed;
  close_reason_ = ReasonCode::unspecified_error;
  close_detail_ = "connection lost";
}

void Session::handle(Packet& packet) {
  if (phase_ == Phase::awaiting_connect) {
    // The codec accepts only a CONNECT before the version is known.
    if (auto* connect = std::get_if<Connect>(&packet)) {
      on_connect(*connect);
    } else {
      protocol_close(ReasonCode::protocol_error, "the first packet was not CONNECT");
    }
    return;
  }
  std::visit(
      [this](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Publish>) {
          on_publish(p);
        } else if constexpr (std::is_same_v<T, Puback>) {
          on_puback(p.packet_id);
        } else if constexpr (std::is_same_v<T, Pubrec>) {
          on_pubrec(p);
        } else if constexpr (std::is_same_v<T, Pubrel>) {
          on_pubrel(p);
        } else if constexpr (std::is_same_v<T, Pubcomp>) {
          on_pubcomp(p.packet_id);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          on_subscribe(p);
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          on_unsubscribe(p);
        } else if constexpr (std::is_same_v<T, Pingreq>) {
          send(Pingresp{});
        } else if constexpr (std::is_same_v<T, Disconnect>) {
          // 5.0 §3.14.2.2.2: a session expiry of 0 at CONNECT cannot be raised here.
          if (p.properties.session_expiry_interval) {
            if (session_expiry_seconds_ == 0 && *p.properties.session_expiry_interval != 0) {
              protocol_close(ReasonCode::protocol_error, "DISCONNECT raised a session expiry of 0");
              return;
            }
            session_expiry_seconds_ =
                std::min(*p.properties.session_expiry_interval, limits_.max_session_expiry_seconds);
          }
          will_due_ = p.reason == ReasonCode::disconnect_with_will && will_ != nullptr;
          if (!will_due_) will_.reset();  // §3.1.2.5: a normal DISCONNECT discards the will
          phase_ = Phase::closed;
          close_reason_ = ReasonCode::success;
          close_detail_ = "client disconnected";
        } else if constexpr (std::is_same_v<T, Connect>) {
          protocol_close(ReasonCode::protocol_error, "second CONNECT");
        } else if constexpr (std::is_same_v<T, Auth>) {
          protocol_close(ReasonCode::protocol_error, "AUTH without an authentication method");
        } else {
          protocol_close(ReasonCode::protocol_error, std::string(to_string(type_of(Packet(p)))) + " from a client");
        }
      },
      packet);
}

void Session::on_connect(Connect& connect) {
  version_ = connect.version;
  connect_seen_ = true;
  if (connect.properties.authentication_method) {
    protocol_close(ReasonCode::bad_authentication_method, "extended authentication is not offered");
    return;
  }
  if (connect.client_id.size() > kMaxClientIdBytes) {
    protocol_close(ReasonCode::client_identifier_not_valid, "client identifier longer than 128 bytes");
    return;
  }
  if (connect.client_id.empty() && version_ == ProtocolVersion::v311 && !connect.clean_start) {
    // 3.1.1 §3.1.3.1: a zero-length client id needs CleanSession = 1.
    protocol_close(ReasonCode::client_identifier_not_valid, "empty client identifier with a persistent session");
    return;
  }
  client_id_ = connect.client_id;
  const auto& props = connect.properties;
  if (props.receive_maximum) client_receive_maximum_ = *props.receive_maximum;
  if (props.maximum_packet_size) client_maximum_packet_bytes_ = *props.maximum_packet_size;
  session_expiry_seconds_ = session_expiry_of(connect, limits_);
  const bool keep_alive_changed =
      connect.keep_alive_seconds == 0 || connect.keep_alive_seconds > limits_.max_keep_alive_seconds;
  keep_alive_seconds_ = keep_alive_changed ? limits_.max_keep_alive_seconds : connect.keep_alive_seconds;

  auto decision = host_.on_connect(connect);
  if (is_error(decision.reason)) {
    Connack refusal{false, decision.reason, {}};
    send(refusal);
    phase_ = Phase::closed;
    close_reason_ = decision.reason;
    close_detail_ = "connection refused";
    return;
  }
  state_ = decision.state ? std::move(decision.state) : std::make_shared<SessionState>();
  if (connect.will) will_ = std::make_unique<Will>(std::move(*connect.will));
  phase_ = Phase::connected;

  Connack connack;
  connack.session_present = decision.session_present;
  if (version_ == ProtocolVersion::v5) {
    auto& p = connack.properties;
    p.receive_maximum = limits_.receive_maximum;
    p.maximum_packet_size = limits_.maximum_packet_bytes;
    p.topic_alias_maximum = limits_.topic_alias_maximum;
    p.retain_available = 1;
    p.wildcard_subscription_available = 1;
    p.subscription_identifier_available = 0;
    p.shared_subscription_available = 0;
    if (keep_alive_changed) p.server_keep_alive = keep_alive_seconds_;
    if (props.session_expiry_interval && *props.session_expiry_interval != session_expiry_seconds_) {
      p.session_expiry_interval = session_expiry_seconds_;
    }
    if (client_id_.empty()) {
      client_id_ = decision.assigned_client_id;
      p.assigned_client_identifier = client_id_;
    }
  }
  send(connack);
  if (decision.session_present) resend_inflight();
  pump_outbound();
}

void Session::on_publish(Publish& publish) {
  ++counters_.publishes_in;
  if (auto alias = publish.properties.topic_alias) {
    if (*alias == 0 || *alias > limits_.topic_alias_maximum) {
      protocol_close(ReasonCode::topic_alias_invalid, "topic alias out of range");
      return;
    }
    if (publish.topic.empty()) {
      auto known = topic_aliases_.find(*alias);
      if (known == topic_aliases_.end()) {
        protocol_close(ReasonCode::protocol_error, "unknown topic alias");
        return;
      }
      publish.topic = known->second;
    } else {
      topic_aliases_[*alias] = publish.topic;
    }
    publish.properties.topic_alias.reset();
  }
  if (publish.topic.empty()) {
    protocol_close(ReasonCode::protocol_error, "PUBLISH without a topic name");
    return;
  }

  const std::uint16_t id = publish.packet_id;
  if (publish.qos == 2 && state_->inbound_qos2.contains(id)) {
    // A retransmission of a message already taken: acknowledge again, deliver once (§4.3.3).
    send_ack(PacketType::pubrec, id, ReasonCode::success);
    return;
  }
  if (publish.qos > 0 && pending_in_.contains(id)) return;  // acknowledged once durable
  if (publish.qos > 0 && pending_in_.size() + state_->inbound_qos2.size() >= limits_.receive_maximum) {
    protocol_close(ReasonCode::receive_maximum_exceeded, "more unacknowledged QoS 1/2 messages than allowed");
    return;
  }

  auto decision = host_.on_publish(publish);
  if (decision.hold && phase_ != Phase::closed) {
    held_ = true;
    --counters_.publishes_in;
    return;
  }
  if (publish.qos == 0 || phase_ == Phase::closed) return;  // the host may have closed us
  if (decision.pending && !is_error(decision.reason)) {
    pending_in_.insert(id);
    if (publish.qos == 2) pending_qos2_.insert(id);
    return;
  }
  const bool qos2 = publish.qos == 2;
  if (!qos2) {
    send_ack(PacketType::puback, id, decision.reason);
  } else {
    if (!is_error(decision.reason) || version_ == ProtocolVersion::v311) state_->inbound_qos2.insert(id);
    send_ack(PacketType::pubrec, id, decision.reason);
  }
}

void Session::complete_publish(std::uint16_t packet_id, ReasonCode reason) {
  if (phase_ != Phase::connected || !pending_in_.erase(packet_id)) return;
  const bool qos2 = pending_qos2_.erase(packet_id) > 0;
  if (qos2 && (!is_error(reason) || version_ == ProtocolVersion::v311)) state_->inbound_qos2.insert(packet_id);
  send_ack(qos2 ? PacketType::pubrec : PacketType::puback, packet_id, reason);
}

void Session::send_ack(PacketType type, std::uint16_t packet_id, ReasonCode reason) {
  if (version_ == ProtocolVersion::v311 && is_error(reason)) {
    if (is_server_failure(reason)) {
      // Not stored: no positive acknowledgement; the client sends it again after reconnecting.
      protocol_close(reason, "message could not be stored");
      return;
    }
    reason = ReasonCode::success;  // 3.1.1 §3.3.5: acknowledge (and drop) a refused message
  }
  if (reason == ReasonCode::server_busy || reason == ReasonCode::server_shutting_down) {
    // 5.0 has no such acknowledgement (§3.4.2.1): the connection is closed with the reason
    // instead, and the message, unacknowledged, is sent again after reconnecting.
    protocol_close(reason, "message could not be stored");
    return;
  }
  switch (type) {
    case PacketType::puback: send(Puback{packet_id, reason, {}}); break;
    case PacketType::pubrec: send(Pubrec{packet_id, reason, {}}); break;
    case PacketType::pubrel: send(Pubrel{packet_id, reason, {}}); break;
    case PacketType::pubcomp: send(Pubcomp{packet_id, reason, {}}); break;
    default: break;
  }
}

void Session::on_pubrel(const Pubrel& pubrel) {
  const bool known = state_->inbound_qos2.erase(pubrel.packet_id) > 0;
  send_ack(PacketType::pubcomp, pubrel.packet_id,
           known || version_ == ProtocolVersion::v311 ? ReasonCode::success : ReasonCode::packet_identifier_not_found);
}

void Session::on_puback(std::uint16_t packet_id) {
  auto it = state_->inflight_out.find(packet_id);
  if (it == state_->inflight_out.end() || it->second.state != SessionState::OutState::await_puback) return;
  state_->inflight_out.erase(it);
  pump_outbound();
}

void Session::on_pubrec(const Pubrec& pubrec) {
  auto it = state_->inflight_out.find(pubrec.packet_id);
  if (it == state_->inflight_out.end() || it->second.state == SessionState::OutState::await_puback) {
    send_ack(PacketType::pubrel, pubrec.packet_id, ReasonCode::packet_identifier_not_found);
    return;
  }
  if (is_error(pubrec.reason)) {  // 5.0 §4.3.3: an error PUBREC ends the flow
    state_->inflight_out.erase(it);
    pump_outbound();
    return;
  }
  it->second.state = SessionState::OutState::await_pubcomp;
  send_ack(PacketType::pubrel, pubrec.packet_id, ReasonCode::success);
}

void Session::on_pubcomp(std::uint16_t packet_id) {
  auto it = state_->inflight_out.find(packet_id);
  if (it == state_->inflight_out.end() || it->second.state != SessionState::OutState::await_pubcomp) return;
  state_->inflight_out.erase(it);
  pump_outbound();
}

void Session::on_subscribe(const Subscribe& subscribe) {
  if (!subscribe.properties.subscription_identifiers.empty()) {
    protocol_close(ReasonCode::subscription_identifiers_not_supported, "subscription identifiers are not offered");
    return;
  }
  Suback suback;
  suback.packet_id = subscribe.packet_id;
  std::vector<std::pair<Subscription, bool>> accepted;
  for (const auto& s : subscribe.subscriptions) {
    ReasonCode reason = ReasonCode::success;
    const bool existed = state_->subscriptions.contains(s.filter);
    if (s.filter.starts_with("$share/")) {
      reason = ReasonCode::shared_subscriptions_not_supported;
    } else if (!existed && state_->subscriptions.size() >= limits_.max_subscriptions) {
      reason = ReasonCode::quota_exceeded;
    } else {
      reason = host_.on_subscribe(s);
      if (phase_ == Phase::closed) return;  // the host closed the connection (too many refusals)
    }
    if (version_ == ProtocolVersion::v311 && is_error(reason)) reason = ReasonCode::unspecified_error;  // 0x80
    if (!is_error(reason)) {
      Subscription granted = s;
      granted.qos = std::min<std::uint8_t>(s.qos, static_cast<std::uint8_t>(reason));
      reason = static_cast<ReasonCode>(granted.qos);
      state_->subscriptions[granted.filter] = granted;
      accepted.emplace_back(granted, existed);
    }
    suback.reasons.push_back(reason);
  }
  send(suback);
  for (const auto& [s, existed] : accepted) host_.on_subscribed(s, existed);
}

void Session::on_unsubscribe(const Unsubscribe& unsubscribe) {
  Unsuback unsuback;
  unsuback.packet_id = unsubscribe.packet_id;
  for (const auto& filter : unsubscribe.filters) {
    const bool existed = state_->subscriptions.erase(filter) > 0;
    auto reason = host_.on_unsubscribe(filter);
    if (!is_error(reason) && !existed) reason = ReasonCode::no_subscription_existed;
    if (version_ == ProtocolVersion::v5) unsuback.reasons.push_back(reason);
  }
  send(unsuback);
}

void Session::deliver(Publish message, Delivery how) {
  if (!state_) return;
  message.dup = false;
  message.packet_id = message.qos > 0 ? 1 : 0;  // placeholder for the size check
  if (version_ == ProtocolVersion::v5 && encoded_size(message, version_) > client_maximum_packet_bytes_) {
    ++state_->dropped_out;  // 5.0 §3.1.2.11.4: discard what the client said it cannot take
    return;
  }
  if (message.qos == 0) {
    if (phase_ != Phase::connected) return;
    if (how == Delivery::routed && out_.size() >= limits_.max_pending_output_bytes) {
      ++state_->dropped_out;  // at most once: dropping is allowed, holding without end is not
      return;
    }
    message.packet_id = 0;
    ++counters_.publishes_out;
    send(message);
    return;
  }
  auto& queue = state_->queued_out;
  if (queue.size() >= limits_.max_queued_out) {
    queue.pop_front();
    ++state_->dropped_out;
  }
  auto expires_at = SessionState::expiry_of(message, host_.now());
  queue.push_back({std::move(message), expires_at});
  pump_outbound();
}

std::uint32_t SessionState::seconds_left(std::chrono::steady_clock::time_point expires_at,
                                         std::chrono::steady_clock::time_point now) {
  return static_cast<std::uint32_t>(std::chrono::ceil<std::chrono::seconds>(expires_at - now).count());
}

std::optional<std::chrono::steady_clock::time_point> SessionState::expiry_of(
    const Publish& message, std::chrono::steady_clock::time_point now) {
  if (!message.properties.message_expiry_interval) return std::nullopt;
  return now + std::chrono::seconds(*message.properties.message_expiry_interval);
}

void Session::pump_outbound() {
  if (phase_ != Phase::connected) return;
  const std::size_t window = std::min<std::size_t>(client_receive_maximum_, limits_.max_inflight_out);
  auto& queue = state_->queued_out;
  const auto now = host_.now();
  while (!queue.empty() && state_->inflight_out.size() < window) {
    SessionState::Queued queued = std::move(queue.front());
    queue.pop_front();
    Publish& message = queued.message;
    if (queued.expires_at) {
      // 5.0 §3.3.2.3.3: expired before onward delivery began → dropped; otherwise the
      // interval sent is what is left of it.
      if (*queued.expires_at <= now) {
        ++state_->expired_out;
        continue;
      }
      message.properties.message_expiry_interval = SessionState::seconds_left(*queued.expires_at, now);
    }
    message.packet_id = next_packet_id();
    ++counters_.publishes_out;
    send(message);
    const auto wait = message.qos == 1 ? SessionState::OutState::await_puback : SessionState::OutState::await_pubrec;
    const std::uint16_t id = message.packet_id;
    state_->inflight_out.emplace(id, SessionState::Inflight{std::move(message), wait});
  }
}

void Session::resend_inflight() {
  // §4.4: on reconnect with a kept session, unacknowledged PUBLISH (DUP = 1) and PUBREL
  // packets are sent again, in their original order.
  for (auto& [id, inflight] : state_->inflight_out) {
    if (inflight.state == SessionState::OutState::await_pubcomp) {
      send(Pubrel{id, ReasonCode::success, {}});
    } else {
      inflight.message.dup = true;
      send(inflight.message);
    }
  }
}

std::uint16_t Session::next_packet_id() {
  do {
    ++state_->last_packet_id;
  } while (state_->last_packet_id == 0 || state_->inflight_out.contains(state_->last_packet_id));
  return state_->last_packet_id;
}

void Session::close(ReasonCode reason, std::string detail) {
  if (phase_ == Phase::closed) return;
  if (phase_ == Phase::connected) {
    if (version_ == ProtocolVersion::v5) send(Disconnect{reason, {}});
    will_due_ = will_ != nullptr && reason != ReasonCode::success;
  }
  phase_ = Phase::closed;
  close_reason_ = reason;
  close_detail_ = std::move(detail);
}

void Session::protocol_close(ReasonCode reason, std::string detail) {
  if (phase_ == Phase::closed) return;
  if (phase_ == Phase::awaiting_connect) {
    // §3.2.2.3 / 5.0 §3.1.4: an unacceptable CONNECT may be answered with a CONNACK
    // carrying the reason; 3.1.1 has return codes only for some reasons.
    // A CONNECT the codec could not decode gets no answer: its version is not known.
    if (reason == ReasonCode::unsupported_protocol_version) {
      version_ = ProtocolVersion::v311;        // the refusal is written in 3.1.1 form, whatever was asked
      send_connack_refusal(version_, reason);  // §3.1.2.2: return code 0x01
    } else if (connect_seen_) {
      send_connack_refusal(version_, reason);
    }
    phase_ = Phase::closed;
    close_reason_ = reason;
    close_detail_ = std::move(detail);
    return;
  }
  close(reason, std::move(detail));
}

void Session::send_connack_refusal(ProtocolVersion version, ReasonCode reason) {
  auto written = encode(Connack{false, reason, {}}, version, out_);
  (void)written;
}

void Session::send(const Packet& packet) {
  // Encoding our own, already checked values cannot fail; if it did, the connection
  // would be left in an unknown state, so it is closed.
  if (!encode(packet, version_, out_)) {
    phase_ = Phase::closed;
    close_reason_ = ReasonCode::implementation_specific_error;
    close_detail_ = "could not encode a packet";
  }
}

}  // namespace torii::mqtt

// The server side of one MQTT connection as a state machine (MQTT 3.1.1 and 5.0, §4).
//
// Pure: bytes in (receive), bytes out (take_output), decisions asked of a SessionHost.
// No sockets, no timers, no threads; the gateway's connection shell owns those and the
// tests drive it with byte arrays.
//
//   receive(bytes) ─▶ frame/decode ─▶ CONNECT?     host.on_connect      ─▶ CONNACK
//                                     PUBLISH      host.on_publish      ─▶ PUBACK/PUBREC now,
//                                                                          or after complete_publish
//                                     PUBREL       (QoS 2 state)        ─▶ PUBCOMP
//                                     SUBSCRIBE    host.on_subscribe    ─▶ SUBACK
//                                     UNSUBSCRIBE  host.on_unsubscribe  ─▶ UNSUBACK
//                                     PINGREQ                           ─▶ PINGRESP
//                                     DISCONNECT   close (will dropped unless 0x04)
//   deliver(message) ─▶ PUBLISH to the client, QoS 1/2 flow, bounded queue beyond the
//                       client's receive maximum
//
// A protocol violation closes the session with the reason code the specification names
// (5.0: a DISCONNECT carrying it is written first; 3.1.1 just closes). After closed() is
// true nothing more is read and the shell closes the connection once the output is written.
//
// Session state that outlives a connection (subscriptions, unacknowledged outbound
// messages, inbound QoS 2 packet ids) lives in SessionState, which the host keeps for
// persistent sessions and hands back at the next CONNECT.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/deque.hpp>
#include <boost/container/flat_map.hpp>
#include <boost/container/flat_set.hpp>

#include "base/bytes.h"
#include "mqtt/packet.h"

namespace torii::mqtt {

struct SessionLimits {
  // Inbound QoS 1/2 PUBLISH packets the client may have unacknowledged (our receive maximum).
  std::uint16_t receive_maximum = 64;
  // Largest packet accepted from the client, fixed header included.
  std::uint32_t maximum_packet_bytes = 64 * 1024;
  std::uint16_t topic_alias_maximum = 16;
  // A client asking for a longer keep-alive (or none) is told this one (5.0 server keep
  // alive); 3.1.1 clients are held to it as well.
  std::uint16_t max_keep_alive_seconds = 300;
  // Outbound QoS 1/2 messages in flight, whatever the client's receive maximum says.
  std::uint16_t max_inflight_out = 32;
  // Messages waiting beyond those in flight (also while offline); older ones are dropped.
  std::size_t max_queued_out = 1000;
  // Output the connection has not taken yet (it takes more only once it has written what
  // it took): QoS 0 messages arriving while this much waits are dropped and counted, so a
  // client that stops reading costs the server at most about twice this, not without end.
  std::size_t max_pending_output_bytes = std::size_t{1024} * 1024;
  std::uint32_t max_session_expiry_seconds = 7 * 24 * 3600;
  std::size_t max_subscriptions = 32;
};

// What survives a connection for a persistent session.
struct SessionState {
  enum class OutState : std::uint8_t { await_puback, await_pubrec, await_pubcomp };
  struct Inflight {
    Publish message;  // packet_id set; dup set once resent
    OutState state = OutState::await_puback;
  };
  // Flat, as the containers below: a session holds few of each, and an empty one allocates
  // nothing and keeps 24 bytes (a std::map 48).
  boost::container::flat_map<std::string, Subscription, std::less<>> subscriptions;
  // A message waiting for room in the client's window (or for the client to return).
  struct Queued {
    Publish message;
    // From the message expiry interval (5.0 §3.3.2.3.3): a message still queued then is
    // dropped; one sent earlier carries the time it has left.
    std::optional<std::chrono::steady_clock::time_point> expires_at;
  };
  // The expiry of a message queued at `now`.
  [[nodiscard]] static std::optional<std::chrono::steady_clock::time_point> expiry_of(
      const Publish& message, std::chrono::steady_clock::time_point now);
  // The interval to send with a message that expires at `expires_at` (not yet passed):
  // rounded up, since 0 would say "no time left".
  [[nodiscard]] static std::uint32_t seconds_left(std::chrono::steady_clock::time_point expires_at,
                                                  std::chrono::steady_clock::time_point now);

  boost::container::flat_map<std::uint16_t, Inflight> inflight_out;
  // Boost's deque allocates nothing until a message is queued (std::deque: about 0.6 KiB at
  // once), and most sessions never queue one.
  boost::container::deque<Queued> queued_out;
  boost::container::flat_set<std::uint16_t> inbound_qos2;  // received, PUBREC sent, PUBREL not yet received
  std::uint16_t last_packet_id = 0;
  std::uint64_t dropped_out = 0;  // queue overflow, oversized messages, QoS 0 to a client not reading
  std::uint64_t expired_out = 0;  // expired while queued
};

// The decisions a session asks for. Implemented by the broker; faked in tests.
class SessionHost {
 public:
  virtual ~SessionHost() = default;

  struct ConnectDecision {
    ReasonCode reason = ReasonCode::success;
    // The state to continue (nullptr or empty for a new session); session_present tells the
    // client whether it was kept (§3.2.2.2).
    std::shared_ptr<SessionState> state;
    bool session_present = false;
    std::string assigned_client_id;  // 5.0, when the client sent an empty one
  };
  // The time, for message expiry; tests turn it.
  [[nodiscard]] virtual std::chrono::steady_clock::time_point now() const { return std::chrono::steady_clock::now(); }

  // The CONNECT has passed the codec's checks and the session's own (first packet, client
  // id). The host authenticates and decides.
  virtual ConnectDecision on_connect(const Connect& connect) = 0;

  struct PublishDecision {
    ReasonCode reason = ReasonCode::success;
    // QoS 1/2 only: acknowledge when complete_publish(packet_id, ...) is called (after the
    // message is durable) instead of now.
    bool pending = false;
    // Not now: the host cannot take the message yet (its store is behind). The session
    // keeps it, and everything the client sent after it, unprocessed until resume(), when
    // the host is asked again; the shell stops reading meanwhile (held()).
    bool hold = false;
  };
  // An inbound PUBLISH, topic alias already resolved. Not called again for a QoS 2
  // retransmission whose packet id is awaiting PUBREL or a QoS 1 DUP whose id is pending.
  virtual PublishDecision on_publish(const Publish& publish) = 0;

  // The granted QoS (granted_qos_1 ...) or a refusal reason for one subscription; the
  // host records accepted ones in the session state itself.
  virtual ReasonCode on_subscribe(const Subscription& subscription) = 0;
  virtual ReasonCode on_unsubscribe(std::string_view filter) = 0;
  // After the SUBACK for an accepted subscription went out: the place to send retained
  // messages (5.0 retain handling: existed tells whether it replaced one).
  virtual void on_subscribed(const Subscription& subscription, bool existed) = 0;
};

// Why a message goes to a client (Session::deliver).
enum class Delivery {
  routed,                 // published now, to a subscription in place
  retained_on_subscribe,  // a retained message, for a subscription just made
};

class Session {
 public:
  // The limits are referred to, not copied (every connection has the broker's): they must
  // outlive the session.
  Session(SessionHost& host, const SessionLimits& limits);

  // Appends bytes read from the connection and processes every complete packet (none while
  // held()).
  void receive(ByteView bytes);
  // The host held a PUBLISH back (PublishDecision::hold): nothing more is processed, and the
  // shell reads nothing more, until resume().
  [[nodiscard]] bool held() const { return held_ && phase_ != Phase::closed; }
  // Asks the host again for the PUBLISH it held back, then processes what followed it. Does
  // nothing unless held().
  void resume();
  // Bytes to write to the connection, in order; empties the buffer.
  [[nodiscard]] Bytes take_output();
  [[nodiscard]] bool has_output() const { return !out_.empty(); }

  // The host finished a pending QoS 1/2 publish: sends PUBACK/PUBREC with this reason
  // (5.0; 3.1.1 sends a positive acknowledgement or, on error, closes).
  void complete_publish(std::uint16_t packet_id, ReasonCode reason);

  // Queues a message for the client with the QoS already reduced to the subscription's.
  // Dropped (and counted) when larger than the client's maximum packet size, or when the
  // queue is full (the oldest queued message goes). A message with an expiry interval that
  // is still queued when it expires is dropped; when sent, it carries the time it has left.
  // A QoS 0 message is dropped (and counted) while max_pending_output_bytes wait for the
  // connection, unless it is a retained message sent for a new subscription: those are few
  // (at most the retained messages of one device's namespace) and come all at once, before
  // the client had a chance to read.
  void deliver(Publish message, Delivery how = Delivery::routed);

  // Server-initiated close: 5.0 sends DISCONNECT with the reason; the will is published
  // unless the reason is a normal close. Used for keep-alive timeouts, revocation, take-over.
  void close(ReasonCode reason, std::string detail);
  // The connection ended without a DISCONNECT (EOF, reset, read error): the will is due.
  void connection_lost();

  [[nodiscard]] bool connected() const { return phase_ == Phase::connected; }
  [[nodiscard]] bool closed() const { return phase_ == Phase::closed; }
  [[nodiscard]] ReasonCode close_reason() const { return close_reason_; }
  [[nodiscard]] const std::string& close_detail() const { return close_detail_; }
  // The will to publish now that the connection ended: set when the connection ended
  // without a normal DISCONNECT (or with 0x04). Cleared by take_will().
  [[nodiscard]] std::optional<Will> take_will();

  [[nodiscard]] ProtocolVersion version() const { return version_; }
  // Effective keep-alive (0: none). The shell closes after 1.5 × this without a packet.
  [[nodiscard]] std::chrono::seconds keep_alive() const { return std::chrono::seconds(keep_alive_seconds_); }
  [[nodiscard]] const std::string& client_id() const { return client_id_; }
  // Session expiry the client asked for, bounded by the limits (5.0; 3.1.1: 0 for a clean
  // session, the maximum otherwise).
  [[nodiscard]] std::uint32_t session_expiry_seconds() const { return session_expiry_seconds_; }
  // The same, as a CONNECT asks for it (a 5.0 DISCONNECT may change it later).
  [[nodiscard]] static std::uint32_t session_expiry_of(const Connect& connect, const SessionLimits& limits);
  [[nodiscard]] const std::shared_ptr<SessionState>& state() const { return state_; }

  // Counters for traffic monitoring.
  struct Counters {
    std::uint64_t packets_in = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t publishes_in = 0;
    std::uint64_t publishes_out = 0;
  };
  [[nodiscard]] const Counters& counters() const { return counters_; }

 private:
  enum class Phase : std::uint8_t { awaiting_connect, connected, closed };

  void process();
  void handle(Packet& packet);
  void on_connect(Connect& connect);
  void on_publish(Publish& publish);
  void on_puback(std::uint16_t packet_id);
  void on_pubrec(const Pubrec& pubrec);
  void on_pubrel(const Pubrel& pubrel);
  void on_pubcomp(std::uint16_t packet_id);
  void on_subscribe(const Subscribe& subscribe);
  void on_unsubscribe(const Unsubscribe& unsubscribe);
  void send(const Packet& packet);
  void send_ack(PacketType type, std::uint16_t packet_id, ReasonCode reason);
  void protocol_close(ReasonCode reason, std::string detail);
  void send_connack_refusal(ProtocolVersion version, ReasonCode reason);
  void pump_outbound();
  void resend_inflight();
  [[nodiscard]] std::uint16_t next_packet_id();

  SessionHost& host_;
  const SessionLimits& limits_;
  Phase phase_ = Phase::awaiting_connect;
  bool connect_seen_ = false;  // a CONNECT was decoded, so its version is known
  bool held_ = false;          // the PUBLISH at in_offset_ waits for resume()
  ProtocolVersion version_ = ProtocolVersion::v5;
  Bytes in_;
  std::size_t in_offset_ = 0;
  Bytes out_;

  std::string client_id_;
  std::uint16_t keep_alive_seconds_ = 0;
  std::uint32_t session_expiry_seconds_ = 0;
  std::uint16_t client_receive_maximum_ = 65535;
  std::uint32_t client_maximum_packet_bytes_ = 268435460;
  std::unique_ptr<Will> will_;  // on the heap: most clients have none, and a Will is about 0.5 KiB
  bool will_due_ = false;
  std::shared_ptr<SessionState> state_;
  // Flat: at most topic_alias_maximum and receive_maximum entries; a QoS 1 message's id
  // comes and goes without an allocation, and an idle connection keeps 24 bytes for each.
  boost::container::flat_map<std::uint16_t, std::string> topic_aliases_;
  boost::container::flat_set<std::uint16_t> pending_in_;    // QoS 1/2 publishes awaiting complete_publish
  boost::container::flat_set<std::uint16_t> pending_qos2_;  // subset of pending_in_ that are QoS 2
  ReasonCode close_reason_ = ReasonCode::success;
  std::string close_detail_;
  Counters counters_;
};

}  // namespace torii::mqtt

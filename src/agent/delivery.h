// Which outbox messages go on the wire, and what each acknowledgement means (no I/O).
//
// The agent publishes from its outbox, oldest first, with QoS 1. At most `window` messages
// are unacknowledged at once (the server's Receive Maximum may lower it, MQTT 5.0
// §3.3.4). Each message in flight holds a packet identifier; a PUBACK frees it and says what
// became of the message:
//
//   delivered    success (or 0x10 no matching subscribers): the gateway stored it; remove
//                it from the outbox. A resent message the gateway already holds is
//                acknowledged the same way (its message id makes it a duplicate there).
//   refused      the gateway will never take it (payload invalid, not authorized, too
//                large, topic invalid, ...): remove it and report it.
//   retry_later  the gateway cannot take it now (quota exceeded, server busy): it stays
//                first in the outbox and is sent again after a pause.
//
// When the connection is lost, every message in flight is waiting again; the next
// connection sends them first, in outbox order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "mqtt/packet.h"

namespace torii::agent {

class Delivery {
 public:
  enum class Outcome : std::uint8_t { delivered, refused, retry_later };

  struct Send {
    std::uint64_t seq = 0;
    std::uint16_t packet_id = 0;
  };
  struct Acknowledged {
    std::uint64_t seq = 0;
    Outcome outcome = Outcome::delivered;
  };

  explicit Delivery(std::size_t window);

  // The window for this connection: min(configured, server's Receive Maximum), at least 1.
  void connected(std::optional<std::uint16_t> receive_maximum);
  // Every message in flight is waiting again.
  void connection_lost();

  // Of the outbox's waiting messages (sequence numbers, oldest first), those to publish now:
  // the ones not in flight, while the window has room, each with a fresh packet id.
  [[nodiscard]] std::vector<Send> take(std::span<const std::uint64_t> waiting);
  // nullopt: the packet id is not in flight (a stray or repeated PUBACK), to be ignored.
  [[nodiscard]] std::optional<Acknowledged> acknowledged(std::uint16_t packet_id, mqtt::ReasonCode reason);

  [[nodiscard]] std::size_t in_flight() const { return by_packet_.size(); }
  [[nodiscard]] std::size_t window() const { return window_; }

 private:
  [[nodiscard]] std::uint16_t next_packet_id();

  std::size_t configured_;
  std::size_t window_;
  std::uint16_t last_packet_id_ = 0;
  std::map<std::uint16_t, std::uint64_t> by_packet_;  // packet id -> outbox seq
};

// How a PUBACK reason code is taken (above).
[[nodiscard]] Delivery::Outcome outcome_of(mqtt::ReasonCode reason);

}  // namespace torii::agent

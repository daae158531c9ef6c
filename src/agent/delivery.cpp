#include "agent/delivery.h"

#include <algorithm>

namespace torii::agent {

Delivery::Delivery(std::size_t window) : configured_(std::max<std::size_t>(window, 1)), window_(configured_) {}

void Delivery::connected(std::optional<std::uint16_t> receive_maximum) {
  window_ = configured_;
  if (receive_maximum && *receive_maximum > 0) window_ = std::min<std::size_t>(window_, *receive_maximum);
}

void Delivery::connection_lost() { by_packet_.clear(); }

std::vector<Delivery::Send> Delivery::take(std::span<const std::uint64_t> waiting) {
  std::vector<Send> out;
  for (const auto seq : waiting) {
    if (by_packet_.size() >= window_) break;
    const bool flying =
        std::any_of(by_packet_.begin(), by_packet_.end(), [seq](const auto& entry) { return entry.second == seq; });
    if (flying) continue;
    const auto id = next_packet_id();
    by_packet_.emplace(id, seq);
    out.push_back({seq, id});
  }
  return out;
}

std::optional<Delivery::Acknowledged> Delivery::acknowledged(std::uint16_t packet_id, mqtt::ReasonCode reason) {
  const auto it = by_packet_.find(packet_id);
  if (it == by_packet_.end()) return std::nullopt;
  const Acknowledged ack{it->second, outcome_of(reason)};
  by_packet_.erase(it);
  return ack;
}

std::uint16_t Delivery::next_packet_id() {
  // The window is far below 65,535, so a free id is always found.
  do {
    last_packet_id_ = static_cast<std::uint16_t>(last_packet_id_ == 0xFFFF ? 1 : last_packet_id_ + 1);
  } while (by_packet_.contains(last_packet_id_));
  return last_packet_id_;
}

Delivery::Outcome outcome_of(mqtt::ReasonCode reason) {
  using R = mqtt::ReasonCode;
  switch (reason) {
    case R::success:
    case R::no_matching_subscribers: return Delivery::Outcome::delivered;
    case R::quota_exceeded:
    case R::server_busy:
    case R::unspecified_error:
    case R::implementation_specific_error: return Delivery::Outcome::retry_later;
    default: return mqtt::is_error(reason) ? Delivery::Outcome::refused : Delivery::Outcome::delivered;
  }
}

}  // namespace torii::agent

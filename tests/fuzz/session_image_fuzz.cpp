// Fuzzes the reader of kept MQTT sessions (mqtt/session_image.h). Images are sealed by the
// server before they are stored, so only torii writes them; the reader still has to refuse
// anything else cleanly, whatever a newer or damaged image holds.
//
// Properties beyond "does not crash, reads nothing out of bounds":
//   - a refusal is malformed_packet with a message;
//   - round trip: an accepted image, written again and read again at the same moment, gives
//     the same state (expired queued messages were already left out the first time).
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "base/bytes.h"
#include "fuzz_check.h"
#include "mqtt/session_image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  const mqtt::ImageTime now{std::chrono::steady_clock::time_point(std::chrono::hours(1)), 1'700'000'000'000};
  auto state = mqtt::decode_session_image(ByteView(data, size), now);
  if (!state) {
    fuzz::check(state.error().reason == mqtt::ReasonCode::malformed_packet && !state.error().message.empty());
    return 0;
  }
  auto image = mqtt::encode_session_image(*state, now);
  fuzz::check(image.has_value());
  auto again = mqtt::decode_session_image(*image, now);
  fuzz::check(again.has_value());
  fuzz::check(again->subscriptions == state->subscriptions);
  fuzz::check(again->inbound_qos2 == state->inbound_qos2 && again->last_packet_id == state->last_packet_id);
  fuzz::check(again->inflight_out.size() == state->inflight_out.size());
  for (const auto& [id, inflight] : state->inflight_out) {
    const auto it = again->inflight_out.find(id);
    fuzz::check(it != again->inflight_out.end() && it->second.message == inflight.message &&
                it->second.state == inflight.state);
  }
  fuzz::check(again->queued_out.size() == state->queued_out.size());
  for (std::size_t i = 0; i < state->queued_out.size(); ++i) {
    fuzz::check(again->queued_out[i].message == state->queued_out[i].message);
    fuzz::check(again->queued_out[i].expires_at == state->queued_out[i].expires_at);
  }
  fuzz::check(again->dropped_out == state->dropped_out && again->expired_out == state->expired_out);
  return 0;
}

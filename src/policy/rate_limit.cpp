#include "policy/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace torii::policy {
namespace {

double clamp_setting(double value) {
  if (std::isnan(value) || value < 0) return 0;
  return std::min(value, std::numeric_limits<double>::max());
}

// Floating-point slack, so that waiting exactly time_to_available() then taking succeeds even
// when the refill arithmetic rounds down by an ulp or two.
bool enough(double available, double wanted) { return wanted <= available + 1e-9 * std::max(1.0, wanted); }

double refilled(double tokens, double rate, double burst, TokenBucket::Clock::duration elapsed) {
  if (elapsed <= TokenBucket::Clock::duration::zero() || rate == 0) return tokens;
  const double seconds = std::chrono::duration<double>(elapsed).count();
  return std::min(burst, tokens + seconds * rate);
}

}  // namespace

TokenBucket::TokenBucket(double rate_per_second, double burst)
    : rate_(clamp_setting(rate_per_second)), burst_(clamp_setting(burst)), tokens_(burst_) {}

void TokenBucket::refill(Clock::time_point now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    return;
  }
  if (now <= last_) return;
  tokens_ = refilled(tokens_, rate_, burst_, now - last_);
  last_ = now;
}

double TokenBucket::available(Clock::time_point now) const {
  return started_ ? refilled(tokens_, rate_, burst_, now - last_) : tokens_;
}

bool TokenBucket::try_take(double tokens, Clock::time_point now) {
  if (std::isnan(tokens) || tokens < 0) return false;
  refill(now);
  if (!enough(tokens_, tokens)) return false;
  tokens_ = std::max(0.0, tokens_ - tokens);
  return true;
}

TokenBucket::Clock::duration TokenBucket::time_to_available(double tokens, Clock::time_point now) const {
  constexpr auto never = Clock::duration::max();
  if (std::isnan(tokens) || tokens < 0 || !enough(burst_, tokens)) return never;
  const double have = available(now);
  if (enough(have, tokens)) return Clock::duration::zero();
  if (rate_ == 0) return never;
  const double nanoseconds = std::ceil((tokens - have) / rate_ * 1e9);
  if (!(nanoseconds < static_cast<double>(std::chrono::nanoseconds::max().count()))) return never;
  return std::chrono::ceil<Clock::duration>(std::chrono::nanoseconds(static_cast<std::int64_t>(nanoseconds)));
}

TrafficLimiter::TrafficLimiter(double messages_per_second, double message_burst, double bytes_per_second,
                               double byte_burst)
    : messages_(messages_per_second, message_burst), bytes_(bytes_per_second, byte_burst) {}

bool TrafficLimiter::try_admit(std::size_t payload_bytes, TokenBucket::Clock::time_point now) {
  const auto bytes = static_cast<double>(payload_bytes);
  if (messages_.time_to_available(1, now) != TokenBucket::Clock::duration::zero() ||
      bytes_.time_to_available(bytes, now) != TokenBucket::Clock::duration::zero()) {
    return false;
  }
  const bool took_message = messages_.try_take(1, now);
  const bool took_bytes = bytes_.try_take(bytes, now);
  return took_message && took_bytes;
}

TokenBucket::Clock::duration TrafficLimiter::time_to_admit(std::size_t payload_bytes,
                                                           TokenBucket::Clock::time_point now) const {
  return std::max(messages_.time_to_available(1, now),
                  bytes_.time_to_available(static_cast<double>(payload_bytes), now));
}

}  // namespace torii::policy

#include "notify/rate_limit.h"

#include <algorithm>
#include <utility>

namespace torii::notify {

RateLimiter::RateLimiter(RateLimit limit, const Clock& clock)
    : capacity_units_(static_cast<std::int64_t>(std::max<std::size_t>(limit.burst, 1)) * kUnitsPerToken),
      units_per_ms_(static_cast<std::int64_t>(std::max<std::size_t>(limit.per_minute, 1))),
      clock_(&clock),
      units_(capacity_units_),
      refilled_at_(to_unix_millis(clock.now())) {}

void RateLimiter::refill() {
  const UnixMillis now = to_unix_millis(clock_->now());
  if (now <= refilled_at_) return;  // a clock set back gives nothing
  const std::int64_t elapsed = now - refilled_at_;
  // Saturate before multiplying: a long idle time fills the bucket, no more.
  const std::int64_t full_after = capacity_units_ / units_per_ms_ + 1;
  units_ = elapsed >= full_after ? capacity_units_ : std::min(capacity_units_, units_ + elapsed * units_per_ms_);
  refilled_at_ = now;
}

bool RateLimiter::try_acquire() {
  refill();
  if (units_ >= kUnitsPerToken) {
    units_ -= kUnitsPerToken;
    return true;
  }
  ++suppressed_;
  return false;
}

std::optional<std::size_t> RateLimiter::take_summary() {
  if (suppressed_ == 0) return std::nullopt;
  refill();
  if (units_ < kUnitsPerToken) return std::nullopt;
  units_ -= kUnitsPerToken;
  return std::exchange(suppressed_, 0);
}

std::chrono::system_clock::time_point RateLimiter::next_token_at() {
  refill();
  if (units_ >= kUnitsPerToken) return from_unix_millis(refilled_at_);
  const std::int64_t missing = kUnitsPerToken - units_;
  return from_unix_millis(refilled_at_ + (missing + units_per_ms_ - 1) / units_per_ms_);
}

}  // namespace torii::notify

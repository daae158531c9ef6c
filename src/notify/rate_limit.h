// A token bucket per channel, so an alert storm cannot flood a channel.
//
// A channel may send `burst` notifications at once and `per_minute` a minute after that.
// A notification the bucket refuses is counted, not queued; when a token is back, the
// dispatcher sends one summary ("N notifications suppressed") for all of them and the count
// starts again. Time comes from the Clock seam. Not thread-safe: its owner locks.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/clock.h"

namespace torii::notify {

struct RateLimit {
  std::size_t burst = 10;
  std::size_t per_minute = 30;
  friend bool operator==(const RateLimit&, const RateLimit&) = default;
};

class RateLimiter {
 public:
  // A limit of zero burst or zero per minute is raised to one: a channel always sends something.
  RateLimiter(RateLimit limit, const Clock& clock);

  // Takes a token: true when one was there; false counts the notification as suppressed.
  [[nodiscard]] bool try_acquire();
  // When notifications were suppressed and a token is back: takes the token and returns how
  // many (the count starts again at zero); nullopt otherwise.
  [[nodiscard]] std::optional<std::size_t> take_summary();
  [[nodiscard]] std::size_t suppressed() const { return suppressed_; }
  // When the next token will be back (now when one is there).
  [[nodiscard]] std::chrono::system_clock::time_point next_token_at();

 private:
  void refill();

  // Tokens in units of 1/60000 token: a minute of refill at `per_minute` tokens adds
  // per_minute * 60000 units, one per millisecond per token a minute.
  static constexpr std::int64_t kUnitsPerToken = 60'000;

  std::int64_t capacity_units_;
  std::int64_t units_per_ms_;
  const Clock* clock_;
  std::int64_t units_;
  UnixMillis refilled_at_;
  std::size_t suppressed_ = 0;
};

}  // namespace torii::notify

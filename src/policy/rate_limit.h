// Token buckets for per-device traffic limits (JPCERT II-6, IIIT N8). Pure: the caller passes
// the time, so tests move time by hand and nothing sleeps.
#pragma once

#include <chrono>
#include <cstddef>

namespace torii::policy {

// Holds up to `burst` tokens and gains `rate_per_second` tokens per second; starts full. Time
// going backwards (an older `now` than before) adds nothing. Not thread-safe: one per
// device connection, used on its strand.
//
// Arguments come from validated configuration; out-of-range values are clamped rather than
// asserted (negative or NaN rate: 0, never refills; burst below 0 or NaN: 0, takes nothing).
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(double rate_per_second, double burst);

  // Takes `tokens` if that many are available; otherwise takes nothing and returns false.
  // Zero tokens always succeed; negative or NaN tokens always fail.
  [[nodiscard]] bool try_take(double tokens, Clock::time_point now);

  // How long until `tokens` are available (zero if they are now); Clock::duration::max() if
  // never: more than the burst, a rate of 0, or a negative or NaN count.
  [[nodiscard]] Clock::duration time_to_available(double tokens, Clock::time_point now) const;

  [[nodiscard]] double available(Clock::time_point now) const;
  [[nodiscard]] double rate_per_second() const { return rate_; }
  [[nodiscard]] double burst() const { return burst_; }

 private:
  void refill(Clock::time_point now);

  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_{};
  bool started_ = false;  // last_ is meaningful
};

// The two limits of one device: messages per second and payload bytes per second. A message
// is admitted only if both buckets can pay for it, and then both pay.
class TrafficLimiter {
 public:
  TrafficLimiter(double messages_per_second, double message_burst, double bytes_per_second, double byte_burst);

  [[nodiscard]] bool try_admit(std::size_t payload_bytes, TokenBucket::Clock::time_point now);
  // How long until a message of this size would be admitted (see TokenBucket).
  [[nodiscard]] TokenBucket::Clock::duration time_to_admit(std::size_t payload_bytes,
                                                           TokenBucket::Clock::time_point now) const;

  [[nodiscard]] const TokenBucket& messages() const { return messages_; }
  [[nodiscard]] const TokenBucket& bytes() const { return bytes_; }

 private:
  TokenBucket messages_;
  TokenBucket bytes_;
};

}  // namespace torii::policy

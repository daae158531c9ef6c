// Seam for time: everything that expires, locks out, renews or rotates asks a Clock, so
// tests move a fake clock instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace torii {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC), for timestamps and expiry dates.
  [[nodiscard]] virtual std::chrono::system_clock::time_point now() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
};

using UnixMillis = std::int64_t;
[[nodiscard]] UnixMillis to_unix_millis(std::chrono::system_clock::time_point t);
[[nodiscard]] std::chrono::system_clock::time_point from_unix_millis(UnixMillis ms);

// "2026-11-22T03:41:07.123Z": UTC with millisecond precision (JPCERT III-1).
[[nodiscard]] std::string format_utc_millis(std::chrono::system_clock::time_point t);

}  // namespace torii

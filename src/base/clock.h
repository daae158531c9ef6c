// Seam for time: everything that expires, locks out, renews or rotates asks a Clock, so
// tests move a fake clock instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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
// The inverse, for dates people send: "2027-01-31T00:00:00Z" or with ".123" milliseconds,
// UTC only ("Z"), years 1970-2200 (what a time_point holds), real calendar dates; nullopt for
// anything else.
[[nodiscard]] std::optional<UnixMillis> parse_utc_millis(std::string_view text);

}  // namespace torii

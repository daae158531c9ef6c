#include "base/clock.h"

#include <ctime>

#include <fmt/format.h>

namespace torii {

UnixMillis to_unix_millis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_unix_millis(UnixMillis ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

std::string format_utc_millis(std::chrono::system_clock::time_point t) {
  const UnixMillis ms = to_unix_millis(t);
  UnixMillis seconds = ms / 1000;
  UnixMillis millis = ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  const std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

}  // namespace torii

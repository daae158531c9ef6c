#include "base/clock.h"

#include <chrono>
#include <ctime>
#include <type_traits>

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
  // Digit by digit: every timestamp of every listed record comes through here. A time point
  // of 64-bit nanoseconds lies in the years 1677-2262, so the year always has four digits.
  static_assert(std::is_same_v<std::chrono::system_clock::duration, std::chrono::nanoseconds>);
  const int year = tm.tm_year + 1900;
  std::string out = "0000-00-00T00:00:00.000Z";
  const auto put = [&out](std::size_t at, std::size_t width, long long value) {
    for (std::size_t i = width; i > 0; --i, value /= 10) out[at + i - 1] = static_cast<char>('0' + value % 10);
  };
  put(0, 4, year);
  put(5, 2, tm.tm_mon + 1);
  put(8, 2, tm.tm_mday);
  put(11, 2, tm.tm_hour);
  put(14, 2, tm.tm_min);
  put(17, 2, tm.tm_sec);
  put(20, 3, millis);
  return out;
}

std::optional<UnixMillis> parse_utc_millis(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS.mmmZ
  if (text.size() != 20 && text.size() != 24) return std::nullopt;
  const auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  if (text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':' || text.back() != 'Z') {
    return std::nullopt;
  }
  const auto y = digits(0, 4);
  const auto mo = digits(5, 2);
  const auto d = digits(8, 2);
  const auto h = digits(11, 2);
  const auto mi = digits(14, 2);
  const auto s = digits(17, 2);
  std::optional<int> ms = 0;
  if (text.size() == 24) ms = text[19] == '.' ? digits(20, 3) : std::nullopt;
  if (!y || !mo || !d || !h || !mi || !s || !ms || *y < 1970 || *y > 2200 || *h > 23 || *mi > 59 || *s > 59)
    return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(*y), std::chrono::month(static_cast<unsigned>(*mo)),
                                         std::chrono::day(static_cast<unsigned>(*d))};
  if (!date.ok()) return std::nullopt;
  const auto t = std::chrono::sys_days(date) + std::chrono::hours(*h) + std::chrono::minutes(*mi) +
                 std::chrono::seconds(*s) + std::chrono::milliseconds(*ms);
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace torii

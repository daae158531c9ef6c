// Bursts of failed sign-ins across accounts (JPCERT VIII-2): per-account lockouts catch
// guessing at one account; spraying many accounts from one address, or a flood from many,
// stays under every account's lock and is caught here instead.
//
// Counting, no I/O: record() is told of each failure with the source address and answers
// when that failure takes a counter past its threshold, once per window, so the caller
// writes one alert per burst, not one per failure. Two counters: per source address and
// over all sources. A window is fixed: it starts at the first failure after the previous
// window ended and lasts `window`; the counts start again from zero after it.
//
// Memory is bounded: beyond kMaxSources addresses the per-source counts are forgotten
// (at worst a burst from a source spread over that many others is reported late). Not
// thread safe: the owner guards it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace torii::identity {

struct FailureBurstOptions {
  std::chrono::seconds window{300};
  std::uint32_t per_source = 20;  // more failures than this from one address: a burst; 0 turns it off
  std::uint32_t total = 100;      // more than this from all addresses together; 0 turns it off
};

struct FailureBurst {
  std::string source;  // the address, or "" for the count over all sources
  std::uint32_t failures = 0;
  std::chrono::system_clock::time_point window_start;
};

class FailureBursts {
 public:
  static constexpr std::size_t kMaxSources = 10000;

  explicit FailureBursts(FailureBurstOptions options) : options_(options) {}

  // New thresholds and window from the next failure on; the counts so far are kept.
  void set_options(FailureBurstOptions options) { options_ = options; }

  // Counts one failure from `address` at `now`; the bursts this failure starts (at most
  // one per counter, at most once per window each).
  [[nodiscard]] std::vector<FailureBurst> record(std::string_view address, std::chrono::system_clock::time_point now);

 private:
  struct Counter {
    std::chrono::system_clock::time_point start{};
    std::uint32_t failures = 0;
    bool reported = false;
  };
  [[nodiscard]] std::optional<FailureBurst> count(Counter& counter, std::uint32_t threshold, std::string_view source,
                                                  std::chrono::system_clock::time_point now) const;

  FailureBurstOptions options_;
  Counter total_;
  std::unordered_map<std::string, Counter> sources_;
};

// The address of an endpoint "203.0.113.5:51234" or "[2001:db8::1]:443".
[[nodiscard]] std::string endpoint_address(std::string_view endpoint);

}  // namespace torii::identity

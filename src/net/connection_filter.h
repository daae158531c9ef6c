// The connection firewall in front of every listener (JPCERT II-2, II-6; IIIT N8).
//
// Pure policy, no I/O: the listener asks admit() for each accepted socket before any
// byte is read, and release() when the connection ends. Sources that fail
// authentication or break the protocol are reported with record_failure(); enough of
// them within the window ban the source for a while. Time comes from the Clock seam.
//
// Thread-safe: every method takes the internal mutex (listeners may run on several threads).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/ip.h"

namespace torii::net {

struct FilterOptions {
  std::vector<CidrBlock> allow;  // empty: every source not denied
  std::vector<CidrBlock> deny;
  std::uint32_t max_connections = 10000;
  std::uint32_t max_connections_per_source = 64;
  std::uint32_t ban_after_failures = 10;
  std::chrono::seconds failure_window{60};
  std::chrono::seconds ban_duration{600};
};

enum class Admission { admitted, denied_by_list, not_allowed, banned, source_limit, global_limit };
[[nodiscard]] std::string_view to_string(Admission a);

struct FilterCounters {
  std::uint64_t admitted = 0;
  std::uint64_t refused = 0;
  std::uint64_t bans = 0;
};

class ConnectionFilter {
 public:
  ConnectionFilter(FilterOptions options, const Clock& clock);

  // Replaces the lists, limits and ban rule (the console's settings, PATCH /api/v1/settings)
  // for the next admission and failure. Connections already admitted stay open and bans
  // already given keep their end.
  void set_options(FilterOptions options);

  // On `admitted` the caller holds a slot and must call release() exactly once.
  [[nodiscard]] Admission admit(const IpAddress& source);
  void release(const IpAddress& source);

  struct FailureVerdict {
    bool banned_now = false;    // this failure banned the source
    std::size_t in_window = 0;  // failures of this source within the window, this one included
  };
  FailureVerdict record_failure(const IpAddress& source);
  void ban(const IpAddress& source, std::chrono::seconds duration);
  [[nodiscard]] bool is_banned(const IpAddress& source);

  [[nodiscard]] std::size_t open_connections() const;
  // Sources the filter keeps state for (connected, banned or recently failing).
  [[nodiscard]] std::size_t tracked_sources() const;
  [[nodiscard]] FilterCounters counters() const;

 private:
  struct SourceState {
    std::uint32_t open = 0;
    std::vector<std::chrono::system_clock::time_point> failures;  // within the window
    std::chrono::system_clock::time_point banned_until{};
  };
  // Drops the source's state when it is neither connected, banned nor recently failing.
  void forget_if_idle(std::map<IpAddress, SourceState>::iterator it, std::chrono::system_clock::time_point now);
  void prune_failures(SourceState& state, std::chrono::system_clock::time_point now) const;
  // Many sources failing once each (scanners, rotating IPv6 addresses) must not grow the
  // map for ever: past kSweepAbove entries, idle ones are dropped, at most once a second.
  void sweep(std::chrono::system_clock::time_point now);
  static constexpr std::size_t kSweepAbove = 4096;
  std::chrono::system_clock::time_point last_sweep_{};

  const Clock& clock_;
  mutable std::mutex mutex_;
  // Guarded by mutex_:
  FilterOptions options_;
  std::map<IpAddress, SourceState> sources_;
  std::size_t open_ = 0;
  FilterCounters counters_;
};

}  // namespace torii::net

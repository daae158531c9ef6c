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

  // On `admitted` the caller holds a slot and must call release() exactly once.
  [[nodiscard]] Admission admit(const IpAddress& source);
  void release(const IpAddress& source);

  // Returns true when this failure banned the source.
  bool record_failure(const IpAddress& source);
  void ban(const IpAddress& source, std::chrono::seconds duration);
  [[nodiscard]] bool is_banned(const IpAddress& source);

  [[nodiscard]] std::size_t open_connections() const;
  [[nodiscard]] FilterCounters counters() const;

 private:
  struct SourceState {
    std::uint32_t open = 0;
    std::vector<std::chrono::system_clock::time_point> failures;  // within the window
    std::chrono::system_clock::time_point banned_until{};
  };
  void forget_if_idle(std::map<IpAddress, SourceState>::iterator it);

  const FilterOptions options_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  // Guarded by mutex_:
  std::map<IpAddress, SourceState> sources_;
  std::size_t open_ = 0;
  FilterCounters counters_;
};

}  // namespace torii::net

#include "net/connection_filter.h"

#include <algorithm>

namespace torii::net {

std::string_view to_string(Admission a) {
  switch (a) {
    case Admission::admitted: return "admitted";
    case Admission::denied_by_list: return "denied by the deny list";
    case Admission::not_allowed: return "not in the allow list";
    case Admission::banned: return "temporarily banned";
    case Admission::source_limit: return "too many connections from this source";
    case Admission::global_limit: return "too many connections";
  }
  return "unknown";
}

ConnectionFilter::ConnectionFilter(FilterOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

Admission ConnectionFilter::admit(const IpAddress& source) {
  const auto matches = [&](const std::vector<CidrBlock>& list) {
    return std::any_of(list.begin(), list.end(), [&](const CidrBlock& b) { return b.contains(source); });
  };
  std::lock_guard lock(mutex_);
  Admission decision = Admission::admitted;
  if (matches(options_.deny)) {
    decision = Admission::denied_by_list;
  } else if (!options_.allow.empty() && !matches(options_.allow)) {
    decision = Admission::not_allowed;
  } else if (auto it = sources_.find(source); it != sources_.end() && it->second.banned_until > clock_.now()) {
    decision = Admission::banned;
  } else if (open_ >= options_.max_connections) {
    decision = Admission::global_limit;
  } else if (it != sources_.end() && it->second.open >= options_.max_connections_per_source) {
    decision = Admission::source_limit;
  }
  if (decision != Admission::admitted) {
    ++counters_.refused;
    return decision;
  }
  ++sources_[source].open;
  ++open_;
  ++counters_.admitted;
  return decision;
}

void ConnectionFilter::release(const IpAddress& source) {
  std::lock_guard lock(mutex_);
  auto it = sources_.find(source);
  if (it == sources_.end() || it->second.open == 0) return;
  --it->second.open;
  --open_;
  forget_if_idle(it);
}

bool ConnectionFilter::record_failure(const IpAddress& source) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  auto& state = sources_[source];
  auto& failures = state.failures;
  failures.erase(
      std::remove_if(failures.begin(), failures.end(), [&](auto t) { return t <= now - options_.failure_window; }),
      failures.end());
  failures.push_back(now);
  if (failures.size() >= options_.ban_after_failures && state.banned_until <= now) {
    state.banned_until = now + options_.ban_duration;
    failures.clear();
    ++counters_.bans;
    return true;
  }
  return false;
}

void ConnectionFilter::ban(const IpAddress& source, std::chrono::seconds duration) {
  std::lock_guard lock(mutex_);
  sources_[source].banned_until = clock_.now() + duration;
  ++counters_.bans;
}

bool ConnectionFilter::is_banned(const IpAddress& source) {
  std::lock_guard lock(mutex_);
  auto it = sources_.find(source);
  return it != sources_.end() && it->second.banned_until > clock_.now();
}

std::size_t ConnectionFilter::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

FilterCounters ConnectionFilter::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

void ConnectionFilter::forget_if_idle(std::map<IpAddress, SourceState>::iterator it) {
  // Keeps memory bounded by the sources that are connected, banned or recently failing.
  if (it->second.open == 0 && it->second.failures.empty() && it->second.banned_until <= clock_.now()) {
    sources_.erase(it);
  }
}

}  // namespace torii::net

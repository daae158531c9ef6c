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
    : clock_(clock), options_(std::move(options)) {}

void ConnectionFilter::set_options(FilterOptions options) {
  std::lock_guard lock(mutex_);
  options_ = std::move(options);
}

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
  forget_if_idle(it, clock_.now());
}

void ConnectionFilter::prune_failures(SourceState& state, std::chrono::system_clock::time_point now) const {
  auto& failures = state.failures;
  failures.erase(
      std::remove_if(failures.begin(), failures.end(), [&](auto t) { return t <= now - options_.failure_window; }),
      failures.end());
}

ConnectionFilter::FailureVerdict ConnectionFilter::record_failure(const IpAddress& source) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  if (sources_.size() > kSweepAbove) sweep(now);
  auto& state = sources_[source];
  prune_failures(state, now);
  state.failures.push_back(now);
  FailureVerdict verdict{false, state.failures.size()};
  if (state.failures.size() >= options_.ban_after_failures && state.banned_until <= now) {
    state.banned_until = now + options_.ban_duration;
    state.failures.clear();
    ++counters_.bans;
    verdict.banned_now = true;
  }
  return verdict;
}

void ConnectionFilter::sweep(std::chrono::system_clock::time_point now) {
  if (now - last_sweep_ < std::chrono::seconds(1)) return;
  last_sweep_ = now;
  for (auto it = sources_.begin(); it != sources_.end();) {
    auto next = std::next(it);
    forget_if_idle(it, now);
    it = next;
  }
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

std::size_t ConnectionFilter::tracked_sources() const {
  std::lock_guard lock(mutex_);
  return sources_.size();
}

std::size_t ConnectionFilter::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

FilterCounters ConnectionFilter::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

void ConnectionFilter::forget_if_idle(std::map<IpAddress, SourceState>::iterator it,
                                      std::chrono::system_clock::time_point now) {
  prune_failures(it->second, now);
  if (it->second.open == 0 && it->second.failures.empty() && it->second.banned_until <= now) sources_.erase(it);
}

}  // namespace torii::net

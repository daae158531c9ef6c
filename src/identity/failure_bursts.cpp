#include "identity/failure_bursts.h"

namespace torii::identity {

std::string endpoint_address(std::string_view endpoint) {
  if (endpoint.starts_with('[')) {
    const auto end = endpoint.find(']');
    return std::string(endpoint.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
  }
  const auto colon = endpoint.rfind(':');
  // Two colons or more without brackets: a bare IPv6 address, no port.
  if (colon == std::string_view::npos || endpoint.find(':') != colon) return std::string(endpoint);
  return std::string(endpoint.substr(0, colon));
}

std::optional<FailureBurst> FailureBursts::count(Counter& counter, std::uint32_t threshold, std::string_view source,
                                                 std::chrono::system_clock::time_point now) const {
  if (threshold == 0) return std::nullopt;
  if (counter.failures == 0 || now - counter.start >= options_.window || now < counter.start) {
    counter = Counter{now, 0, false};
  }
  ++counter.failures;
  if (counter.failures <= threshold || counter.reported) return std::nullopt;
  counter.reported = true;
  return FailureBurst{std::string(source), counter.failures, counter.start};
}

std::vector<FailureBurst> FailureBursts::record(std::string_view address, std::chrono::system_clock::time_point now) {
  std::vector<FailureBurst> out;
  if (options_.per_source != 0) {
    auto it = sources_.find(std::string(address));
    if (it == sources_.end()) {
      if (sources_.size() >= kMaxSources) sources_.clear();
      it = sources_.emplace(std::string(address), Counter{}).first;
    }
    if (auto burst = count(it->second, options_.per_source, address, now)) out.push_back(std::move(*burst));
  }
  if (auto burst = count(total_, options_.total, "", now)) out.push_back(std::move(*burst));
  return out;
}

}  // namespace torii::identity

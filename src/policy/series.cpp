#include "policy/series.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace torii::policy {

std::optional<double> chart_value(std::string_view payload_json, std::string_view metric) {
  const auto parsed = nlohmann::json::parse(payload_json, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  const auto it = parsed.find(metric);
  if (it == parsed.end()) return std::nullopt;
  if (it->is_boolean()) return it->get<bool>() ? 1.0 : 0.0;
  if (it->is_number()) return it->get<double>();
  return std::nullopt;
}

std::vector<Bucket> downsample(std::span<const Sample> samples, UnixMillis from, UnixMillis to,
                               std::size_t max_buckets) {
  if (from >= to || max_buckets == 0) return {};
  // Unsigned: a span of the whole int64 range does not overflow.
  const auto span = static_cast<std::uint64_t>(to) - static_cast<std::uint64_t>(from);
  // Rounded up without adding first, which could overflow.
  const std::uint64_t width = span / max_buckets + (span % max_buckets != 0 ? 1 : 0);         // >= 1
  const auto buckets = static_cast<std::size_t>(span / width + (span % width != 0 ? 1 : 0));  // <= max_buckets
  std::vector<Bucket> all(buckets);
  for (const auto& s : samples) {
    if (s.at < from || s.at >= to) continue;
    const auto i =
        static_cast<std::size_t>((static_cast<std::uint64_t>(s.at) - static_cast<std::uint64_t>(from)) / width);
    Bucket& b = all[i];
    if (b.count == 0) {
      b.min = s.value;
      b.max = s.value;
    } else {
      b.min = std::min(b.min, s.value);
      b.max = std::max(b.max, s.value);
    }
    b.avg += s.value;  // the sum until the end
    ++b.count;
  }
  std::vector<Bucket> out;
  for (std::size_t i = 0; i < all.size(); ++i) {
    Bucket& b = all[i];
    if (b.count == 0) continue;
    b.from = static_cast<UnixMillis>(static_cast<std::uint64_t>(from) + i * width);
    b.to = i + 1 == all.size() ? to : static_cast<UnixMillis>(static_cast<std::uint64_t>(b.from) + width);
    b.avg /= static_cast<double>(b.count);
    out.push_back(b);
  }
  return out;
}

}  // namespace torii::policy

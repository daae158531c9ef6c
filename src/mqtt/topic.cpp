#include "mqtt/topic.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace torii::mqtt {
namespace {

constexpr std::size_t kMaxTopicBytes = 65'535;  // a UTF-8 string's 16-bit length prefix (§1.5.4)
constexpr std::string_view kSharePrefix = "$share/";

// The level of `text` that starts at `pos`; advances `pos` past the '/' that ends it, or
// beyond text.size() after the last level. "a/" has two levels, "a" and "".
std::string_view next_level(std::string_view text, std::size_t& pos) {
  const std::size_t end = text.find('/', pos);
  if (end == std::string_view::npos) {
    const std::string_view level = text.substr(pos);
    pos = text.size() + 1;
    return level;
  }
  const std::string_view level = text.substr(pos, end - pos);
  pos = end + 1;
  return level;
}

// A plain loop: std::string_view::find_first_of calls memchr once per character.
bool has_wildcard(std::string_view text) {
  for (const char c : text) {
    if (c == '+' || c == '#') return true;
  }
  return false;
}

}  // namespace

namespace {

constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
constexpr std::uint64_t kLow = 0x0101010101010101ULL;

// Whether a byte of `word` is zero (the usual word trick, exact).
constexpr bool has_zero_byte(std::uint64_t word) { return ((word - kLow) & ~word & kHigh) != 0; }

// RFC 3629 §4 well-formed sequences (which excludes overlong forms, surrogates and code
// points above U+10FFFF), minus U+0000 as MQTT 5.0 §1.5.4 / 3.1.1 §1.5.3 require; with
// kNoWildcards, also no '+' or '#'. One pass, as a topic name is checked for both.
template <bool kNoWildcards>
bool scan(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  std::size_t i = 0;
  while (i < size) {
    // Topics and identifiers are mostly ASCII: take eight bytes at a time while no byte has
    // the high bit set.
    while (i + 8 <= size) {
      std::uint64_t word = 0;
      std::memcpy(&word, bytes + i, sizeof word);
      if ((word & kHigh) != 0) break;
      if (has_zero_byte(word)) return false;
      if constexpr (kNoWildcards) {
        if (has_zero_byte(word ^ (kLow * '+')) || has_zero_byte(word ^ (kLow * '#'))) return false;
      }
      i += 8;
    }
    if (i >= size) break;
    const unsigned char lead = bytes[i];
    if (lead < 0x80) {
      if (lead == 0) return false;
      if (kNoWildcards && (lead == '+' || lead == '#')) return false;
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_min = 0xA0;  // overlong
      if (lead == 0xED) second_max = 0x9F;  // U+D800..U+DFFF
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_min = 0x90;  // overlong
      if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
    } else {
      return false;  // continuation byte, C0/C1 (overlong) or F5..FF
    }
    if (size - i < length) return false;
    if (bytes[i + 1] < second_min || bytes[i + 1] > second_max) return false;
    for (std::size_t k = 2; k < length; ++k) {
      if ((bytes[i + k] & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

}  // namespace

bool valid_utf8(std::string_view text) { return scan<false>(text); }

// MQTT 5.0 §4.7.3: at least one character, no wildcard characters (§3.3.2.1).
bool valid_topic_name(std::string_view topic) {
  return !topic.empty() && topic.size() <= kMaxTopicBytes && scan<true>(topic);
}

// MQTT 5.0 §4.7.1 (wildcards) and §4.8.2 (shared subscriptions).
bool valid_topic_filter(std::string_view filter) {
  if (filter.empty() || filter.size() > kMaxTopicBytes || !valid_utf8(filter)) return false;
  if (filter.starts_with(kSharePrefix)) {
    // "$share/{ShareName}/{filter}": a non-empty ShareName without '+' or '#' (a '/' ends
    // it), then a non-empty topic filter.
    const std::string_view rest = filter.substr(kSharePrefix.size());
    const std::size_t slash = rest.find('/');
    if (slash == 0 || slash == std::string_view::npos || slash + 1 == rest.size()) return false;
    if (has_wildcard(rest.substr(0, slash))) return false;
  }
  std::size_t pos = 0;
  while (pos <= filter.size()) {
    const std::string_view level = next_level(filter, pos);
    if (level == "#") return pos > filter.size();  // only as the last level
    if (level != "+" && has_wildcard(level)) return false;
  }
  return true;
}

// MQTT 5.0 §4.7.1.2–§4.7.2. Filter and topic are walked level by level; "#" matches the
// parent level too ("sport/#" matches "sport"), "+" exactly one level, possibly empty.
bool topic_matches(std::string_view filter, std::string_view topic) {
  if (filter.empty() || topic.empty()) return false;
  if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;
  std::size_t f = 0;
  std::size_t t = 0;
  while (f <= filter.size()) {
    const std::string_view filter_level = next_level(filter, f);
    if (filter_level == "#") return true;
    if (t > topic.size()) return false;
    const std::string_view topic_level = next_level(topic, t);
    if (filter_level != "+" && filter_level != topic_level) return false;
  }
  return t > topic.size();
}

}  // namespace torii::mqtt

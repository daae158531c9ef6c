#include "bench/message_template.h"

#include <algorithm>
#include <array>
#include <charconv>

#include <fmt/format.h>

namespace torii::bench {
namespace {

struct Name {
  std::string_view text;
  Placeholder placeholder;
};
constexpr std::array kNames{Name{"device", Placeholder::device}, Name{"i", Placeholder::index},
                            Name{"seq", Placeholder::seq}, Name{"ts", Placeholder::ts}};

void append_number(std::uint64_t value, std::string& out) {
  std::array<char, 24> digits{};
  const auto r = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out.append(digits.data(), r.ptr);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The end of the identifier ([A-Za-z0-9_]*) starting at from.
std::size_t identifier_end(std::string_view text, std::size_t from) {
  while (from < text.size()) {
    const char c = text[from];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_')) break;
    ++from;
  }
  return from;
}

}  // namespace

std::string_view to_string(Placeholder p) {
  for (const auto& n : kNames) {
    if (n.placeholder == p) return n.text;
  }
  return "?";
}

Result<MessageTemplate> MessageTemplate::parse(std::string_view text, std::vector<Placeholder> allowed) {
  MessageTemplate t;
  std::string literal;
  const auto flush = [&] {
    if (!literal.empty()) t.parts_.push_back({false, Placeholder::device, std::move(literal)});
    literal.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const std::size_t name_end = c == '{' ? identifier_end(text, i + 1) : i + 1;
    if (c != '{' || name_end == i + 1 || name_end >= text.size() || text[name_end] != '}') {
      literal += c;
      continue;
    }
    const auto name = text.substr(i + 1, name_end - i - 1);
    const auto known = std::find_if(kNames.begin(), kNames.end(), [&](const Name& n) { return n.text == name; });
    if (known == kNames.end() || std::find(allowed.begin(), allowed.end(), known->placeholder) == allowed.end()) {
      std::string names;
      for (const auto p : allowed) names += fmt::format("{}{{{}}}", names.empty() ? "" : ", ", to_string(p));
      return fail(Errc::invalid_argument, fmt::format("unknown placeholder {{{}}} (allowed here: {})", name, names));
    }
    flush();
    t.parts_.push_back({true, known->placeholder, {}});
    i = name_end;
  }
  flush();
  return t;
}

void MessageTemplate::expand(const TemplateValues& values, std::string& out) const {
  for (const auto& part : parts_) {
    if (!part.is_placeholder) {
      out += part.literal;
      continue;
    }
    switch (part.placeholder) {
      case Placeholder::device: out += values.device; break;
      case Placeholder::index: append_number(values.index, out); break;
      case Placeholder::seq: append_number(values.seq, out); break;
      case Placeholder::ts: append_number(values.ts, out); break;
    }
  }
}

std::string MessageTemplate::expand(const TemplateValues& values) const {
  std::string out;
  expand(values, out);
  return out;
}

bool MessageTemplate::uses(Placeholder p) const {
  return std::any_of(parts_.begin(), parts_.end(),
                     [p](const Part& part) { return part.is_placeholder && part.placeholder == p; });
}

std::string MessageTemplate::literal_text() const {
  std::string out;
  for (const auto& part : parts_) out += part.literal;
  return out;
}

std::optional<std::uint64_t> MessageTemplate::extract_ts(std::string_view text) const {
  std::optional<std::uint64_t> ts;
  std::size_t pos = 0;
  for (std::size_t k = 0; k < parts_.size(); ++k) {
    const auto& part = parts_[k];
    if (!part.is_placeholder) {
      if (text.substr(pos, part.literal.size()) != part.literal) return std::nullopt;
      pos += part.literal.size();
      continue;
    }
    if (part.placeholder == Placeholder::ts) {
      const auto begin = pos;
      while (pos < text.size() && is_digit(text[pos])) ++pos;
      std::uint64_t value = 0;
      const auto r = std::from_chars(text.data() + begin, text.data() + pos, value);
      if (pos == begin || r.ec != std::errc()) return std::nullopt;
      ts = value;
      continue;
    }
    // Any other placeholder runs up to the next literal part, or to the end.
    if (k + 1 == parts_.size()) {
      pos = text.size();
      continue;
    }
    const auto& next = parts_[k + 1];
    if (next.is_placeholder) return std::nullopt;  // two placeholders side by side: ambiguous
    const auto found = text.find(next.literal, pos);
    if (found == std::string_view::npos) return std::nullopt;
    pos = found;
  }
  if (pos != text.size()) return std::nullopt;
  return ts;
}

}  // namespace torii::bench

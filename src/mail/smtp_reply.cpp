#include "mail/smtp_reply.h"

#include <fmt/format.h>

#include <algorithm>

namespace torii::mail {
namespace {

bool same_keyword(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.emplace_back(line.substr(start, i - start));
  }
  return out;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string Reply::summary() const {
  return lines.empty() ? fmt::format("{}", code) : fmt::format("{} {}", code, lines.front());
}

bool Reply::advertises(std::string_view keyword) const {
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto w = words(lines[i]);
    if (!w.empty() && same_keyword(w.front(), keyword)) return true;
  }
  return false;
}

std::vector<std::string> Reply::parameters(std::string_view keyword) const {
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto w = words(lines[i]);
    if (!w.empty() && same_keyword(w.front(), keyword)) {
      w.erase(w.begin());
      return w;
    }
  }
  return {};
}

void ReplyReader::feed(std::string_view bytes) {
  if (failed_) return;
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<Reply>> ReplyReader::next() {
  if (failed_) return tl::unexpected(*failed_);
  auto failure = [this](Errc code, std::string message) -> Result<std::optional<Reply>> {
    failed_ = Error{make_error_code(code), std::move(message)};
    return tl::unexpected(*failed_);
  };
  while (true) {
    const std::string_view rest = std::string_view(buffer_).substr(consumed_);
    const auto lf = rest.find('\n');
    if (lf == std::string_view::npos) {
      if (rest.size() > kMaxReplyLineBytes) return failure(Errc::limit_exceeded, "smtp: reply line too long");
      return std::optional<Reply>{};
    }
    if (lf + 1 > kMaxReplyLineBytes) return failure(Errc::limit_exceeded, "smtp: reply line too long");
    std::string_view line = rest.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    consumed_ += lf + 1;
    if (line.size() < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) || line[0] < '2' || line[0] > '5' ||
        (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      return failure(Errc::invalid_argument, "smtp: malformed reply line");
    }
    if (std::ranges::any_of(line, [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return (u < 0x20 && c != '\t') || u == 0x7f;
        })) {
      return failure(Errc::invalid_argument, "smtp: control character in a reply");
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!partial_.lines.empty() && code != partial_.code) {
      return failure(Errc::invalid_argument, "smtp: reply lines with different codes");
    }
    if (partial_.lines.size() >= kMaxReplyLines) return failure(Errc::limit_exceeded, "smtp: reply has too many lines");
    partial_.code = code;
    partial_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view{});
    const bool last = line.size() == 3 || line[3] == ' ';
    if (last) {
      Reply done = std::move(partial_);
      partial_ = {};
      return std::optional<Reply>{std::move(done)};
    }
  }
}

}  // namespace torii::mail

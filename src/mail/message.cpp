#include "mail/message.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <ctime>

namespace torii::mail {
namespace {

// RFC 5322 §3.2.3 atext, the characters of a dot-atom's atoms.
bool atext(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool valid_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  while (true) {
    const auto dot = domain.find('.');
    const std::string_view label = domain.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::ranges::all_of(label, [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        })) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    domain.remove_prefix(dot + 1);
  }
}

bool has_line_break_or_nul(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool ascii(std::string_view text) {
  return std::ranges::all_of(text, [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Splits on CRLF, LF or a lone CR.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' || text[i] == '\n') {
      out.push_back(text.substr(start, i - start));
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < text.size()) out.push_back(text.substr(start));
  return out;
}

// RFC 2045 §6.7, lines of at most 76 characters with soft breaks.
std::string quoted_printable(const std::vector<std::string_view>& lines) {
  std::string out;
  for (const auto line : lines) {
    std::size_t width = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const auto u = static_cast<unsigned char>(line[i]);
      const bool at_end = i + 1 == line.size();
      std::string piece;
      if ((u >= 33 && u <= 126 && u != '=') || ((u == ' ' || u == '\t') && !at_end)) {
        piece.push_back(line[i]);
      } else {
        piece = fmt::format("={:02X}", u);
      }
      if (width + piece.size() > 75) {
        out += "=\r\n";
        width = 0;
      }
      out += piece;
      width += piece.size();
    }
    out += "\r\n";
  }
  return out;
}

// RFC 2047 encoded words of at most 75 characters, split between UTF-8 sequences.
std::string encoded_words(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    std::size_t take = std::min<std::size_t>(text.size(), 45);
    while (take < text.size() && take > 0 && (static_cast<unsigned char>(text[take]) & 0xC0) == 0x80) --take;
    if (take == 0) take = std::min<std::size_t>(text.size(), 45);
    if (!out.empty()) out += "\r\n ";
    out += "=?utf-8?B?" + base64(text.substr(0, take)) + "?=";
    text.remove_prefix(take);
  }
  return out;
}

std::string header_text(std::string_view text) { return ascii(text) ? std::string(text) : encoded_words(text); }

// A display name as a quoted string (RFC 5322 §3.2.4) or encoded words.
std::string display_name(std::string_view name) {
  if (!ascii(name)) return encoded_words(name);
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

Status check_address(std::string_view address, std::string_view what) {
  auto bad = [&] { return fail(Errc::invalid_argument, fmt::format("smtp: {} is not a valid e-mail address", what)); };
  const auto at = address.rfind('@');
  if (address.size() > 254 || at == std::string_view::npos || at == 0 || at > 64) return bad();
  const std::string_view local = address.substr(0, at);
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) return bad();
  if (!std::ranges::all_of(local, [](char c) { return atext(c) || c == '.'; })) return bad();
  if (!valid_domain(address.substr(at + 1))) return bad();
  return ok();
}

std::string rfc5322_date(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  static constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", kDays.at(static_cast<std::size_t>(tm.tm_wday)),
                     tm.tm_mday, kMonths.at(static_cast<std::size_t>(tm.tm_mon)), tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

Result<std::string> format_message(const MessageHeaders& headers, const MailMessage& message, bool eight_bit_allowed) {
  if (auto st = check_address(headers.from, "the sender"); !st) return tl::unexpected(st.error());
  if (auto st = check_address(message.to, "the recipient"); !st) return tl::unexpected(st.error());
  for (auto [value, what] : {std::pair{std::string_view(message.subject), "the subject"},
                             std::pair{std::string_view(headers.from_name), "the sender's name"},
                             std::pair{std::string_view(headers.date), "the date"},
                             std::pair{std::string_view(headers.message_id), "the message id"}}) {
    if (has_line_break_or_nul(value)) {
      return fail(Errc::invalid_argument, fmt::format("smtp: {} contains a line break or NUL", what));
    }
  }
  if (headers.message_id.find_first_of("<> ") != std::string::npos) {
    return fail(Errc::invalid_argument, "smtp: the message id is malformed");
  }
  if (message.body.find('\0') != std::string::npos) return fail(Errc::invalid_argument, "smtp: the body contains NUL");

  const auto lines = lines_of(message.body);
  const bool short_lines = std::ranges::all_of(lines, [](std::string_view l) { return l.size() <= 998; });
  std::string encoding = "quoted-printable";
  if (short_lines && ascii(message.body)) {
    encoding = "7bit";
  } else if (short_lines && eight_bit_allowed) {
    encoding = "8bit";
  }
  std::string out;
  out += "Date: " + headers.date + "\r\n";
  out += "Message-ID: <" + headers.message_id + ">\r\n";
  out += headers.from_name.empty() ? "From: <" + headers.from + ">\r\n"
                                   : "From: " + display_name(headers.from_name) + " <" + headers.from + ">\r\n";
  out += "To: <" + message.to + ">\r\n";
  out += "Subject: " + header_text(message.subject) + "\r\n";
  out += "MIME-Version: 1.0\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += "Content-Transfer-Encoding: " + encoding + "\r\n";
  out += "\r\n";
  if (encoding == "quoted-printable") {
    out += quoted_printable(lines);
  } else {
    for (const auto line : lines) {
      out += line;
      out += "\r\n";
    }
  }
  return out;
}

std::string dot_stuff(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 8);
  bool line_start = true;
  for (char c : message) {
    if (line_start && c == '.') out.push_back('.');
    out.push_back(c);
    line_start = c == '\n';
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  out += ".\r\n";
  return out;
}

std::string base64(std::string_view data) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const auto n = (static_cast<unsigned>(static_cast<unsigned char>(data[i])) << 16U) |
                   (static_cast<unsigned>(static_cast<unsigned char>(data[i + 1])) << 8U) |
                   static_cast<unsigned>(static_cast<unsigned char>(data[i + 2]));
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += kAlphabet[(n >> 6U) & 63U];
    out += kAlphabet[n & 63U];
  }
  if (i < data.size()) {
    auto n = static_cast<unsigned>(static_cast<unsigned char>(data[i])) << 16U;
    if (i + 1 < data.size()) n |= static_cast<unsigned>(static_cast<unsigned char>(data[i + 1])) << 8U;
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += i + 1 < data.size() ? kAlphabet[(n >> 6U) & 63U] : '=';
    out += '=';
  }
  return out;
}

}  // namespace torii::mail

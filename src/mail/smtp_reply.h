// SMTP replies (RFC 5321 §4.2) read from untrusted bytes: a pure parser, no I/O.
//
// A reply is one or more lines "ddd-text" ending with a line "ddd text" (or just "ddd"),
// every line with the same three-digit code and ending in CRLF. Lines are bounded
// (kMaxReplyLineBytes) and so is the number of lines of one reply, so a hostile server
// cannot make the client buffer without limit. A bare LF ends a line too (some servers
// send it); any other control character, a line without a code, or codes that differ
// within one reply make the reply malformed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace torii::mail {

// RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; some servers send a little more.
inline constexpr std::size_t kMaxReplyLineBytes = 1024;
inline constexpr std::size_t kMaxReplyLines = 100;

struct Reply {
  int code = 0;                    // 200..599
  std::vector<std::string> lines;  // the text after the code and separator, one per line

  // 2xx and 3xx are positive; 4xx transient and 5xx permanent failures.
  [[nodiscard]] bool positive_completion() const { return code >= 200 && code < 300; }
  [[nodiscard]] bool positive_intermediate() const { return code >= 300 && code < 400; }
  // The first line's text, for error messages (servers do not echo credentials).
  [[nodiscard]] std::string summary() const;
  // Whether an EHLO reply advertises the extension (case-insensitive keyword, RFC 5321
  // §4.1.1.1: every line after the first is "keyword [params]").
  [[nodiscard]] bool advertises(std::string_view keyword) const;
  // The parameters of an advertised extension ("AUTH PLAIN LOGIN" -> {"PLAIN", "LOGIN"}).
  [[nodiscard]] std::vector<std::string> parameters(std::string_view keyword) const;
};

// Accumulates bytes and hands out whole replies. After an error the reader stays failed.
class ReplyReader {
 public:
  // Appends received bytes; nothing is parsed yet.
  void feed(std::string_view bytes);
  // The next complete reply, nullopt when more bytes are needed, or an error
  // (invalid_argument: malformed; limit_exceeded: a line or reply too long).
  [[nodiscard]] Result<std::optional<Reply>> next();
  // Bytes received but not yet part of a returned reply. After STARTTLS's 220 there must
  // be none: bytes sent before the TLS handshake must not be read as if they came through it.
  [[nodiscard]] std::size_t pending_bytes() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  std::size_t consumed_ = 0;
  Reply partial_;
  std::optional<Error> failed_;
};

}  // namespace torii::mail

// Plain-text e-mail messages (RFC 5322, MIME RFC 2045-2047): validation and formatting, pure.
//
// Header injection is impossible by construction: addresses are checked against a strict
// subset of RFC 5321 §4.1.2 (ASCII dot-atom local part, a DNS domain), and the subject
// and display name may hold any text except CR, LF and NUL, which are refused, never
// stripped. Non-ASCII subjects become RFC 2047 encoded words. The body's line ends become
// CRLF; it travels as 7bit when it is short-lined ASCII, as 8bit when the server
// advertised 8BITMIME (RFC 6152), otherwise quoted-printable.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/error.h"

namespace torii::mail {

struct MailMessage {
  std::string to;       // one address, "name@example.org"
  std::string subject;  // UTF-8, one line
  std::string body;     // UTF-8 text; LF, CRLF or CR line ends
};

// What the sender adds to every message.
struct MessageHeaders {
  std::string from;        // address
  std::string from_name;   // display name; may be empty
  std::string date;        // RFC 5322 date-time (rfc5322_date)
  std::string message_id;  // without angle brackets: "id@domain"
};

// invalid_argument with a message naming `what` when the address is not one torii sends to
// or from.
[[nodiscard]] Status check_address(std::string_view address, std::string_view what);

// "Sat, 05 Dec 2026 18:28:34 +0000".
[[nodiscard]] std::string rfc5322_date(std::chrono::system_clock::time_point t);

// The whole message with CRLF line ends (headers, blank line, body), not yet dot-stuffed.
// invalid_argument when an address is invalid or a header value holds CR, LF or NUL, or
// the body holds NUL.
[[nodiscard]] Result<std::string> format_message(const MessageHeaders& headers, const MailMessage& message,
                                                 bool eight_bit_allowed);

// What follows DATA (RFC 5321 §4.5.2): every line starting with "." gets another "." in
// front, and the end-of-data line ".\r\n" is appended. `message` has CRLF line ends.
[[nodiscard]] std::string dot_stuff(std::string_view message);

// Standard base64 (RFC 4648 §4, padded), for AUTH PLAIN and encoded words.
[[nodiscard]] std::string base64(std::string_view data);

}  // namespace torii::mail

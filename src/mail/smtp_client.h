// An SMTP submission client (RFC 5321, STARTTLS RFC 3207, AUTH PLAIN RFC 4954/4616,
// 8BITMIME RFC 6152): sends one message per connection. A plain header: Asio stays in
// smtp_client.cpp.
//
// Secure by default: the connection is TLS (STARTTLS, or implicit TLS on port 465) with
// the server's certificate verified (chain to the system CAs or to `ca_pem`, and the host
// name); plain SMTP only when asked for, and then only to a loopback host. Credentials are
// sent only over TLS. A STARTTLS reply followed by more bytes before the handshake is
// refused (those bytes would be read as if they came through TLS: CVE-2011-0411).
// Every step has a deadline (connect, TLS handshake, each write, each reply) and replies
// are bounded (smtp_reply.h). Errors name the reply and the step ("smtp: 535 5.7.8
// authentication failed at AUTH") and never contain the password.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "mail/message.h"

namespace torii::mail {

enum class TlsMode : std::uint8_t {
  starttls,  // plain connect, then STARTTLS before anything else (the default; port 587)
  tls,       // TLS from the first byte (port 465)
  none,      // no TLS: loopback hosts only (a local relay)
};

struct SmtpSettings {
  std::string host;  // DNS name or IP address; the certificate must name it
  std::uint16_t port = 587;
  TlsMode tls = TlsMode::starttls;
  std::string from;                     // envelope and header sender
  std::string from_name;                // display name; may be empty
  std::string username;                 // empty: no AUTH
  std::string password;                 // with username; never logged
  std::string ca_pem;                   // the CAs trusted for the server (PEM, read at start); empty: the system's
  std::chrono::seconds timeout{30};     // connect, handshake, each write and each reply
  std::string helo_name = "localhost";  // the name given in EHLO
};

// Whether a host name is loopback: "localhost", 127.0.0.0/8 or ::1.
[[nodiscard]] bool is_loopback_host(std::string_view host);

// invalid_argument for settings the client refuses: no host or sender, plain SMTP to a
// host that is not loopback, credentials without TLS.
[[nodiscard]] Status check_settings(const SmtpSettings& settings);

// Connects, sends the message and quits; blocks the calling thread (an io_context of its
// own) for at most the deadlines above. unavailable for network, TLS and reply failures,
// invalid_argument for settings or a message that cannot be sent.
[[nodiscard]] Status send_mail(const SmtpSettings& settings, const MailMessage& message);

}  // namespace torii::mail

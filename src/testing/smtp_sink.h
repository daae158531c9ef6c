// A real SMTP server for tests: aiosmtpd (Debian's python3-aiosmtpd) running
// smtp_sink.py on 127.0.0.1 with a free port. It writes what it accepts to a temporary
// directory; the test reads it back. The process is the test's own and ends (by PID) with
// the SmtpSink.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "testing/process.h"
#include "testing/temp_dir.h"

namespace torii::testing {

struct SinkCertificates {
  std::filesystem::path ca;    // the CA a client must trust
  std::filesystem::path cert;  // the server's: localhost and 127.0.0.1
  std::filesystem::path key;
};

// A fresh CA and a server certificate it issued for `names` (a subjectAltName value), made
// with the openssl command in `dir`. Fails the test (and returns empty paths) when openssl fails.
SinkCertificates make_sink_certificates(const std::filesystem::path& dir,
                                        const std::string& names = "DNS:localhost,IP:127.0.0.1");

struct SinkOptions {
  std::optional<SinkCertificates> tls;  // STARTTLS offered and required; none: plain only
  std::string auth;                     // "user:password" required; empty: no AUTH
  bool auth_in_clear = false;           // AUTH offered before TLS too
  bool eight_bit_mime = true;
};

class SmtpSink {
 public:
  // Starts the sink and waits (bounded) for it to listen; port() is 0 when it did not.
  explicit SmtpSink(const SinkOptions& options);
  ~SmtpSink();
  SmtpSink(const SmtpSink&) = delete;
  SmtpSink& operator=(const SmtpSink&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  // The n-th message accepted (1-based) as the sink's JSON (mail_from, rcpt_tos,
  // mail_options, tls, authenticated, data), waiting for it at most `timeout`.
  [[nodiscard]] std::optional<std::string> message(int n, std::chrono::seconds timeout) const;
  // Every command received, one per line, as "EHLO plain", "AUTH tls", ...
  [[nodiscard]] std::string commands() const;

 private:
  TempDir dir_;
  std::unique_ptr<Process> process_;
  std::uint16_t port_ = 0;
};

}  // namespace torii::testing

// The console's web application firewall (JPCERT II-1, III-8): ModSecurity v3 running the
// OWASP Core Rule Set (CRS) over every request before a handler sees it.
//
// The configuration is torii's own (see base_configuration in waf.cpp): the CRS in anomaly
// scoring mode at the configured paranoia level, only the methods and the content type the
// console's API speaks, JSON bodies parsed so that their members are inspected one by one,
// bodies that do not parse refused, no audit log files. The CRS rules themselves come from
// Debian's modsecurity-crs package, unmodified.
//
// Thread safety: after load() the Waf is only read. inspect() may run on several threads
// at once; each call has its own ModSecurity transaction. (The CRS rules that write
// ModSecurity's shared per-process collections, IP reputation and DoS protection, stay off
// in this configuration; libmodsecurity 3.0 locks writes to those collections but not
// reads.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "console/http.h"
#include "console/request_checks.h"

namespace modsecurity {
class ModSecurity;
class RulesSet;
}  // namespace modsecurity

namespace torii::console {

struct WafOptions {
  bool enabled = true;
  // Holds rules/REQUEST-*.conf and their .data files (Debian: modsecurity-crs).
  std::filesystem::path crs_dir = "/usr/share/modsecurity-crs";
  // CRS paranoia level, 1 to 4: higher levels add rules that catch more and misfire more.
  int paranoia_level = 1;
  // The inbound anomaly score at which a request is blocked, 1 to 1000. A critical match
  // (SQL injection, XSS, ...) scores 5, an error 4, a warning 3, a notice 2.
  int anomaly_threshold = 5;
  // A larger body is refused without being inspected; 1 byte to 1 GiB. The HTTP server's
  // own limit (HttpLimits::max_body_bytes) should not be above it.
  std::size_t max_body_bytes = std::size_t{64} * 1024;
  // The cookie the rules are not shown: the session cookie, whose value the console only
  // hashes and looks up, never interprets. Inspecting it was a third of the firewall's work on a request without a
  // body, for nothing to find. The first cookie of that name (the one the console reads) is
  // left out; any further one, every other cookie and the rest of the request are inspected.
  // Empty: every cookie is shown.
  std::string opaque_cookie{kSessionCookie};
};

struct WafVerdict {
  bool blocked = false;
  int status = 0;  // the HTTP status to answer with when blocked (403, 400, ...); 0 otherwise
  // The ids of the rules that matched, in the order they matched and each once; also when
  // the request passed (matches below the threshold).
  std::vector<std::string> rule_ids;
  // What matched, for the security log: rule messages only (never a header value, the
  // body or what a rule matched in them), printable ASCII, at most kMaxMessageChars.
  std::string message;
};

class Waf {
 public:
  static constexpr std::size_t kMaxMessageChars = 200;

  // Builds the rule set: torii's configuration, then crs_dir/rules/REQUEST-*.conf in name
  // order. Fails with invalid_argument (every problem named) for options out of range, and
  // with unavailable when the CRS is not installed or libmodsecurity refuses a rule file
  // (its message, naming the file and line, is passed on). A disabled Waf loads nothing and
  // cannot fail. Takes a few hundred milliseconds: load once, at start.
  [[nodiscard]] static Result<std::unique_ptr<Waf>> load(const WafOptions& options);

  Waf(const Waf&) = delete;
  Waf& operator=(const Waf&) = delete;
  ~Waf();

  // Runs the request through the rules: connection, URI (path and query as received),
  // every header field, then the body. Stops at the first phase in which ModSecurity
  // intervenes. When libmodsecurity fails to process the request, the verdict is blocked
  // with status 500: nothing passes uninspected. A disabled Waf passes everything.
  [[nodiscard]] WafVerdict inspect(const Request& request, std::string_view client_address, std::uint16_t client_port,
                                   std::string_view server_address, std::uint16_t server_port) const;

  [[nodiscard]] bool enabled() const { return engine_ != nullptr; }

 private:
  struct EngineFree {
    void operator()(modsecurity::ModSecurity* engine) const noexcept;
  };
  struct RulesFree {
    void operator()(modsecurity::RulesSet* rules) const noexcept;
  };
  using EnginePtr = std::unique_ptr<modsecurity::ModSecurity, EngineFree>;
  using RulesPtr = std::unique_ptr<modsecurity::RulesSet, RulesFree>;

  Waf(EnginePtr engine, RulesPtr rules, const WafOptions& options);

  // Both null when disabled.
  EnginePtr engine_;
  RulesPtr rules_;
  std::size_t max_body_bytes_;
  std::string opaque_cookie_;
};

}  // namespace torii::console

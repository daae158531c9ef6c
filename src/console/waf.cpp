#include "console/waf.h"

#include <fmt/format.h>
#include <modsecurity/intervention.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rule_message.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <list>
#include <system_error>

namespace torii::console {
namespace {

// The CRS version this configuration was written for. REQUEST-901 refuses to run (status
// 500 on every request) unless tx.crs_setup_version is set, which is how the CRS notices a
// missing crs-setup.conf; torii's configuration below stands in for that file.
constexpr int kCrsSetupVersion = 334;

constexpr int kMaxParanoiaLevel = 4;
constexpr int kMaxAnomalyThreshold = 1000;
constexpr std::size_t kMaxBodyLimitBytes = std::size_t{1} << 30;

// Status of a verdict when libmodsecurity failed to process the request.
constexpr int kStatusWafFailed = 500;
constexpr int kStatusForbidden = 403;

// ModSecurity's rule ids 1-99999 are reserved for local use; torii's own rules live here.
//
// Anomaly scoring mode (CRS's default): the default action of phases 1 and 2 is `pass`, so a
// CRS rule that matches only adds to the anomaly score, and REQUEST-949's rule 949110 denies
// (403) once the score reaches tx.inbound_anomaly_score_threshold. A default action of
// `deny` would instead make every CRS rule block on its own (CRS "self-contained" mode),
// warnings and notices included, and the threshold would mean nothing.
//
// 10001: JSON bodies go through the JSON body processor, so every member is an ARGS:json.*
//   variable the CRS inspects like a form field; without it a JSON body is seen as one
//   opaque string that most CRS rules never look at.
// 10002: a body the processor cannot parse would hide its members from every rule, so it is
//   refused outright (400), as ModSecurity's recommended configuration does.
// 10003: tuning (false positives at paranoia level 1). Passwords are never interpreted:
//   they are only hashed with Argon2id, never put into SQL, HTML or a shell. Generated
//   passwords are full of punctuation, and about 1 in 75 random 12-32 character ones trips a
//   CRS rule (942100 libinjection SQLi, 942190, 933100, 932130, 941100, 921200, ...), which
//   would lock their owners out. So the password members, and only on the routes that take
//   one (sign-in, step-up, first-run setup, password change, password link), are removed from
//   the CRS rules' targets.
//   Every other member of those bodies (username, email, token) is still inspected, and a
//   member called password anywhere else is too.
// 10004: tuning. The member name "profile" of a new device is, as json.profile, a match for
//   ".profile" in 930120's list of OS files (a shell's start-up file). Only that rule, only
//   that name and only on that route stop looking at it; its value is still inspected.
// 10005: tuning. A device's certificate request (csr: PEM, base64 lines) is only parsed by
//   OpenSSL, which takes nothing from it but the public key, and an enrolment token is only
//   hashed and looked up. Both are random-looking base64: about 1 in 400 enrolments tripped
//   932110 (Windows command injection) on them, refusing a device its first certificate at
//   random. So csr, on the two routes that take one, and token, on the enrolment route, are
//   removed from the CRS rules' targets (10005, 10006); every other member is still inspected.
// 10010: what crs-setup.conf would set. The methods of a REST API (the console's routes use
//   GET, POST and DELETE), and only JSON bodies (read_json_fields takes nothing else; a form
//   post is also what a cross-site request forgery sends).
//
// No audit log and no debug log: they would write request bodies, passwords included, to
// files. Response bodies are not buffered (the WAF inspects requests only).
std::string base_configuration(const WafOptions& options) {
  return fmt::format(
      R"(SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit {max_body}
SecRequestBodyNoFilesLimit {max_body}
SecRequestBodyLimitAction Reject
SecResponseBodyAccess Off
SecAuditEngine Off
SecDefaultAction "phase:1,log,auditlog,pass"
SecDefaultAction "phase:2,log,auditlog,pass"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" \
    "id:10001,phase:1,pass,nolog,t:none,t:lowercase,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" \
    "id:10002,phase:2,deny,status:400,log,t:none,severity:'CRITICAL',msg:'Request body could not be parsed'"
SecRule REQUEST_FILENAME "@rx ^/api/v1/(?:session|session/step-up|setup|account/password|password-link)$" \
    "id:10003,phase:1,pass,nolog,t:none,\
    ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:json.password,\
    ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:json.current_password,\
    ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:json.new_password"
SecRule REQUEST_FILENAME "@streq /api/v1/devices" \
    "id:10004,phase:1,pass,nolog,t:none,ctl:ruleRemoveTargetById=930120;ARGS_NAMES:json.profile"
SecRule REQUEST_FILENAME "@rx ^/api/v1/(?:devices|enrol)$" \
    "id:10005,phase:1,pass,nolog,t:none,\
    ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:json.csr"
SecRule REQUEST_FILENAME "@streq /api/v1/enrol" \
    "id:10006,phase:1,pass,nolog,t:none,ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:json.token"
SecAction \
    "id:10010,phase:1,pass,nolog,t:none,\
    setvar:tx.crs_setup_version={setup_version},\
    setvar:tx.paranoia_level={paranoia_level},\
    setvar:tx.inbound_anomaly_score_threshold={threshold},\
    setvar:'tx.allowed_methods=GET HEAD POST PUT PATCH DELETE OPTIONS',\
    setvar:'tx.allowed_request_content_type=|application/json|'"
)",
      fmt::arg("max_body", options.max_body_bytes), fmt::arg("setup_version", kCrsSetupVersion),
      fmt::arg("paranoia_level", options.paranoia_level), fmt::arg("threshold", options.anomaly_threshold));
}

// Every problem with the options at once.
Status check_options(const WafOptions& options) {
  std::string problems;
  const auto add = [&](std::string problem) { problems += problems.empty() ? problem : fmt::format("; {}", problem); };
  if (options.paranoia_level < 1 || options.paranoia_level > kMaxParanoiaLevel) {
    add(fmt::format("paranoia_level must be 1 to {}, not {}", kMaxParanoiaLevel, options.paranoia_level));
  }
  if (options.anomaly_threshold < 1 || options.anomaly_threshold > kMaxAnomalyThreshold) {
    add(fmt::format("anomaly_threshold must be 1 to {}, not {}", kMaxAnomalyThreshold, options.anomaly_threshold));
  }
  if (options.max_body_bytes < 1 || options.max_body_bytes > kMaxBodyLimitBytes) {
    add(fmt::format("max_body_bytes must be 1 to {}, not {}", kMaxBodyLimitBytes, options.max_body_bytes));
  }
  if (!problems.empty()) return fail(Errc::invalid_argument, fmt::format("WAF options: {}", problems));
  return ok();
}

// crs_dir/rules/REQUEST-*.conf in name order, which is the order the CRS numbers them to
// run in (901 initialisation first, 949 blocking evaluation last).
//
// RESPONSE-*.conf are not loaded: they inspect response headers and bodies (data leakage,
// outbound anomaly score) in phases 3 and 4, and inspect() runs request phases only, so
// they would never be evaluated; loading them would only cost start-up time and memory.
Result<std::vector<std::filesystem::path>> crs_request_rule_files(const std::filesystem::path& crs_dir) {
  const std::filesystem::path rules_dir = crs_dir / "rules";
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(rules_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name.starts_with("REQUEST-") && name.ends_with(".conf") && it->is_regular_file(type_ec)) {
      files.push_back(it->path());
    }
  }
  if (ec || files.empty()) {
    return fail(Errc::unavailable, fmt::format("no OWASP Core Rule Set in {} (REQUEST-*.conf{}): install the "
                                               "Debian package modsecurity-crs, or set the WAF's crs_dir",
                                               rules_dir.string(), ec ? fmt::format(": {}", ec.message()) : ""));
  }
  std::ranges::sort(files);
  return files;
}

// msc_rules_add and msc_rules_add_file return the number of rules added, or a negative
// number and a message allocated with malloc, which the caller frees.
class ParserError {
 public:
  ParserError() = default;
  ParserError(const ParserError&) = delete;
  ParserError& operator=(const ParserError&) = delete;
  ~ParserError() { std::free(const_cast<char*>(text_)); }

  const char** out() { return &text_; }
  [[nodiscard]] Status check(int added, std::string_view what) const {
    if (added >= 0) return ok();
    return fail(Errc::unavailable,
                fmt::format("ModSecurity refused {}: {}", what, text_ != nullptr ? text_ : "no message"));
  }

 private:
  const char* text_ = nullptr;
};

// ModSecurity's server log: called on the inspecting thread for each rule match that is not
// itself the blocking decision. Installed with RuleMessageLogProperty (the structured form,
// see <modsecurity/reading_logs_via_rule_message.h>) rather than msc_set_log_cb's text
// form: the text embeds what the rule matched (header values, cookies, body members,
// passwords) and cannot be parsed unambiguously. Only the rule's id and severity go to the
// debug log; the verdict carries the rest.
void log_rule_match(void* /*transaction_data*/, const void* message) {
  if (message == nullptr) return;
  const auto& rule = *static_cast<const modsecurity::RuleMessage*>(message);
  spdlog::debug("waf: rule {} matched (severity {})", rule.m_ruleId, rule.m_severity);
}

struct TransactionFree {
  void operator()(modsecurity::Transaction* transaction) const noexcept {
    modsecurity::msc_transaction_cleanup(transaction);
  }
};
using TransactionPtr = std::unique_ptr<modsecurity::Transaction, TransactionFree>;

// msc_intervention copies the url and log strings with malloc; the caller frees them.
struct Intervention {
  Intervention() = default;
  Intervention(const Intervention&) = delete;
  Intervention& operator=(const Intervention&) = delete;
  ~Intervention() { modsecurity::intervention::free(&value); }

  modsecurity::ModSecurityIntervention value{
      .status = 200, .pause = 0, .url = nullptr, .log = nullptr, .disruptive = 0};
};

// Syslog severities as the CRS uses them: 2 critical (attacks), 3 error, 4 warning, 5
// notice; lower is graver. A rule without a severity reports 0 and ranks last.
int severity_rank(const modsecurity::RuleMessage& rule) {
  return rule.m_severity > 0 ? rule.m_severity : std::numeric_limits<int>::max();
}

// Rule messages are the rules' own text. A few CRS messages expand a variable: the anomaly
// scores, a header's name (920450) or a parameter's name (921180, paranoia level 3), never
// a value. Kept to printable ASCII so a log line stays one line.
std::string printable(std::string_view text) {
  std::string out(text);
  std::ranges::replace_if(
      out, [](char c) { return c < ' ' || c > '~'; }, '?');
  return out;
}

// Fills the verdict's rule ids and its message: the message of the gravest rule that
// matched (the first of equals), then that of the rule that blocked.
void describe_matches(const std::list<modsecurity::RuleMessage>& matches, WafVerdict& verdict) {
  const modsecurity::RuleMessage* gravest = nullptr;
  const modsecurity::RuleMessage* blocker = nullptr;
  for (const auto& rule : matches) {
    std::string id = std::to_string(rule.m_ruleId);
    if (std::ranges::find(verdict.rule_ids, id) == verdict.rule_ids.end()) verdict.rule_ids.push_back(std::move(id));
    if (rule.m_message.empty()) continue;
    if (rule.m_isDisruptive) {
      if (blocker == nullptr) blocker = &rule;
    } else if (gravest == nullptr || severity_rank(rule) < severity_rank(*gravest)) {
      gravest = &rule;
    }
  }
  std::string message;
  if (gravest != nullptr) message = fmt::format("{} ({})", gravest->m_message, gravest->m_ruleId);
  if (blocker != nullptr) {
    message += message.empty() ? fmt::format("{} ({})", blocker->m_message, blocker->m_ruleId)
                               : fmt::format("; {}", blocker->m_message);
  }
  message = printable(message);
  if (message.size() > Waf::kMaxMessageChars) {
    message.resize(Waf::kMaxMessageChars - 3);
    message += "...";
  }
  verdict.message = std::move(message);
}

// A Cookie field's value without the cookie whose value is at `at` (its name, '=', value and
// one separator): the other cookies as received.
std::string without_cookie(std::string_view field, std::string_view name, CookieSpan at) {
  std::size_t from = at.offset - name.size() - 1;
  std::size_t to = at.offset + at.length;
  if (to < field.size()) {  // a ';' follows: it goes, with the spaces after it
    ++to;
    while (to < field.size() && field[to] == ' ') ++to;
  } else {  // the last cookie: the separator before it goes
    while (from > 0 && field[from - 1] == ' ') --from;
    if (from > 0 && field[from - 1] == ';') --from;
  }
  std::string out(field);
  out.erase(from, to - from);
  return out;
}

// Adds every header field as received, but for the opaque cookie (WafOptions): the first
// cookie of that name, found as the console finds it (find_cookie_value), is left out of its
// field, and a field left empty is not added. 1 when ModSecurity took them all.
int add_request_headers(modsecurity::Transaction* transaction, const Request& request, std::string_view opaque_cookie) {
  int all = 1;
  bool hidden = opaque_cookie.empty();
  std::string shown;
  for (const auto& [name, value] : request.headers) {
    std::string_view field = value;
    if (!hidden && name == "cookie") {
      if (const auto at = find_cookie_value(value, opaque_cookie)) {
        hidden = true;
        shown = without_cookie(value, opaque_cookie, *at);
        if (shown.find_first_not_of(' ') == std::string::npos) continue;
        field = shown;
      }
    }
    if (modsecurity::msc_add_n_request_header(transaction, reinterpret_cast<const unsigned char*>(name.data()),
                                              name.size(), reinterpret_cast<const unsigned char*>(field.data()),
                                              field.size()) == 0) {
      all = 0;
    }
  }
  return all;
}

}  // namespace

void Waf::EngineFree::operator()(modsecurity::ModSecurity* engine) const noexcept { modsecurity::msc_cleanup(engine); }
void Waf::RulesFree::operator()(modsecurity::RulesSet* rules) const noexcept { modsecurity::msc_rules_cleanup(rules); }

Waf::Waf(EnginePtr engine, RulesPtr rules, const WafOptions& options)
    : engine_(std::move(engine)),
      rules_(std::move(rules)),
      max_body_bytes_(options.max_body_bytes),
      opaque_cookie_(options.opaque_cookie) {}

Waf::~Waf() = default;

Result<std::unique_ptr<Waf>> Waf::load(const WafOptions& options) {
  if (!options.enabled) return std::unique_ptr<Waf>(new Waf(nullptr, nullptr, options));
  if (auto checked = check_options(options); !checked) return tl::unexpected(checked.error());
  auto files = crs_request_rule_files(options.crs_dir);
  if (!files) return tl::unexpected(files.error());

  EnginePtr engine(modsecurity::msc_init());
  RulesPtr rules(modsecurity::msc_create_rules_set());
  if (!engine || !rules) return fail(Errc::unavailable, "ModSecurity could not be initialised");
  modsecurity::msc_set_connector_info(engine.get(), "torii");
  engine->setServerLogCb(&log_rule_match, modsecurity::RuleMessageLogProperty);

  {
    ParserError error;
    const int added = modsecurity::msc_rules_add(rules.get(), base_configuration(options).c_str(), error.out());
    if (auto checked = error.check(added, "torii's WAF configuration"); !checked)
      return tl::unexpected(checked.error());
  }
  for (const auto& file : *files) {
    ParserError error;
    const int added = modsecurity::msc_rules_add_file(rules.get(), file.c_str(), error.out());
    if (auto checked = error.check(added, file.string()); !checked) return tl::unexpected(checked.error());
  }
  return std::unique_ptr<Waf>(new Waf(std::move(engine), std::move(rules), options));
}

WafVerdict Waf::inspect(const Request& request, std::string_view client_address, std::uint16_t client_port,
                        std::string_view server_address, std::uint16_t server_port) const {
  if (!enabled()) return {};
  WafVerdict verdict;
  const TransactionPtr transaction(modsecurity::msc_new_transaction(engine_.get(), rules_.get(), nullptr));
  if (!transaction) {
    verdict.blocked = true;
    verdict.status = kStatusWafFailed;
    verdict.message = "ModSecurity could not start a transaction";
    return verdict;
  }

  // Each step runs the rules of its phase; ModSecurity reports a decision to block through
  // msc_intervention, after which the later steps are skipped. A step that fails (returns
  // 0) also ends the inspection, and the request is blocked.
  Intervention intervention;
  bool failed = false;
  const auto stop_after = [&](int result) {
    failed = result == 0;
    return failed || modsecurity::msc_intervention(transaction.get(), &intervention.value) != 0;
  };
  const std::string client(client_address);
  const std::string server(server_address);
  const std::string uri = request.query.empty() ? request.path : fmt::format("{}?{}", request.path, request.query);
  const bool stopped =
      stop_after(modsecurity::msc_process_connection(transaction.get(), client.c_str(), client_port, server.c_str(),
                                                     server_port)) ||
      stop_after(modsecurity::msc_process_uri(transaction.get(), uri.c_str(), request.method.c_str(), "1.1")) ||
      stop_after(add_request_headers(transaction.get(), request, opaque_cookie_)) ||
      stop_after(modsecurity::msc_process_request_headers(transaction.get())) ||
      stop_after(modsecurity::msc_append_request_body(
          transaction.get(), reinterpret_cast<const unsigned char*>(request.body.data()), request.body.size())) ||
      stop_after(modsecurity::msc_process_request_body(transaction.get()));

  describe_matches(transaction->m_rulesMessages, verdict);
  if (failed) {
    verdict.blocked = true;
    verdict.status = kStatusWafFailed;
    verdict.message = "ModSecurity could not process the request";
  } else if (stopped) {
    verdict.blocked = true;
    // deny without a status, or a redirect, answers 403 here: a blocked request gets an error.
    const int status = intervention.value.status;
    verdict.status = status >= 400 && status <= 599 ? status : kStatusForbidden;
    if (verdict.message.empty()) {
      // The intervention's log text is not used: it quotes what the rule matched.
      verdict.message = request.body.size() > max_body_bytes_
                            ? fmt::format("request body over the WAF's limit of {} bytes", max_body_bytes_)
                            : std::string("ModSecurity intervened without a rule message");
    }
  }
  return verdict;
}

}  // namespace torii::console

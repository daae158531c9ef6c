// `torii`: argument parsing and dispatch only. The work lives in src/ (the server's wiring
// in src/server) so that tests drive the same code. Exit codes: docs/cli.md.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "base/clock.h"
#include "base/file.h"
#include "base/version.h"
#include "config/config.h"
#include "crypto/sodium.h"
#include "events/log_verify.h"
#include "identity/setup_token.h"
#include "server/privileges.h"
#include "server/server.h"

namespace {

using namespace torii;

// Exit codes (documented in docs/cli.md).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;   // a runtime failure: I/O, a port in use, ...
constexpr int kExitUsage = 2;     // bad arguments or an invalid configuration
constexpr int kExitRefused = 3;   // refused for security: permissions, wrong key, privileges
constexpr int kExitTampered = 4;  // verification found a problem (admin log verify)

int exit_code_for(const Error& e) {
  if (e.is(Errc::permission_denied) || e.is(Errc::authentication_failed)) return kExitRefused;
  if (e.is(Errc::invalid_argument) || e.is(Errc::conflict)) return kExitUsage;
  return kExitFailure;
}

int report(const Error& e) {
  std::cerr << "torii: " << e.message << "\n";
  return exit_code_for(e);
}

struct CommonOptions {
  std::string config_file;
  std::string data_dir;
};

void add_common(CLI::App* app, CommonOptions& o) {
  app->add_option("--config", o.config_file, "TOML configuration file (default: built-in defaults)")
      ->check(CLI::ExistingFile);
  app->add_option("--data-dir", o.data_dir, "data directory (overrides server.data_dir)");
}

std::optional<config::Config> load_config(const CommonOptions& o) {
  config::ParseResult parsed;
  if (!o.config_file.empty()) parsed = config::load_config_file(o.config_file);
  if (!parsed.ok()) {
    std::cerr << fmt::format("torii: {} has {} problem{}:\n{}", o.config_file, parsed.problems.size(),
                             parsed.problems.size() == 1 ? "" : "s", config::format_problems(parsed.problems));
    return std::nullopt;
  }
  if (!o.data_dir.empty()) parsed.config.server.data_dir = o.data_dir;
  return parsed.config;
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("torii");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
}

// Started as root, the admin commands act as server.user too, so that files they touch keep
// the owner the server expects.
Status become_service_user(const config::Config& c) {
  if (::geteuid() != 0) return ok();
  auto account = server::lookup_account(c.server.user);
  if (!account) return tl::unexpected(account.error());
  return server::drop_privileges(*account);
}

SystemClock g_clock;
crypto::SystemRandom g_random;

int run_server(const CommonOptions& o) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  setup_logging(c->log.level);
  auto server = server::Server::create(*c, {g_clock, g_random, std::cout});
  if (!server) return report(server.error());
  auto& s = **server;
  for (auto step : {&server::Server::bind_listeners, &server::Server::drop_privileges, &server::Server::open_state,
                    &server::Server::start}) {
    if (auto st = (s.*step)(); !st) return report(st.error());
  }
  s.run();
  spdlog::info("stopped");
  return kExitOk;
}

int run_log_verify(const CommonOptions& o, const std::string& log_dir, const std::string& public_key_text) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  if (auto st = become_service_user(*c); !st) return report(st.error());
  const std::filesystem::path dir = log_dir.empty() ? server::security_log_dir(*c) : std::filesystem::path(log_dir);
  std::string key_hex = public_key_text;
  if (key_hex.empty()) {
    auto file = read_file(server::security_log_public_key_file(*c), 4096);
    if (!file) return report(file.error());
    key_hex = to_string(*file);
  }
  while (!key_hex.empty() && (key_hex.back() == '\n' || key_hex.back() == ' ')) key_hex.pop_back();
  const auto key = hex_decode(key_hex);
  if (!key || key->size() != crypto::kEd25519PublicKeyBytes) {
    std::cerr << "torii: the public key must be 64 hexadecimal characters\n";
    return kExitUsage;
  }
  auto result = events::verify_log(dir, *key);
  if (!result) return report(result.error());
  const auto& r = *result;
  if (!r.ok) {
    std::cout << fmt::format("security log in {}: TAMPERED or damaged\n", dir.string());
    for (const auto& p : r.problems) {
      std::cout << fmt::format("  {}:{}: {}\n", p.file, p.line, p.what);
    }
    return kExitTampered;
  }
  std::cout << fmt::format("security log in {}: OK ({} file{}, {} lines, {} signed checkpoints", dir.string(), r.files,
                           r.files == 1 ? "" : "s", r.lines, r.checkpoints);
  if (r.last_checkpoint_ts) std::cout << fmt::format(", last at {}", *r.last_checkpoint_ts);
  std::cout << ")\n";
  if (r.unsigned_tail_lines > 0) {
    std::cout << fmt::format("  {} line{} after the last checkpoint are chained but not yet signed\n",
                             r.unsigned_tail_lines, r.unsigned_tail_lines == 1 ? "" : "s");
  }
  if (r.starts_after_retention) {
    std::cout << fmt::format("  the oldest available line is seq {}: earlier files were removed (retention)\n",
                             r.first_seq.value_or(0));
  }
  return kExitOk;
}

// The real person behind an admin command, for the security log (JPCERT I-6): the login
// that ran it, even through sudo.
std::string admin_actor() {
  std::string name;
  // Single-threaded here (before any server thread exists), so getenv/getpwuid are safe.
  if (const char* sudo_user = std::getenv("SUDO_USER");  // NOLINT(concurrency-mt-unsafe)
      sudo_user != nullptr && ::getuid() == 0) {
    name = sudo_user;
  } else if (const struct passwd* pw = ::getpwuid(::getuid())) {  // NOLINT(concurrency-mt-unsafe)
    name = pw->pw_name;
  } else {
    name = fmt::format("uid {}", ::getuid());
  }
  return "admin-cli:" + name;
}

// An admin command's view of the installation. With the security log, it holds the log's
// writer lock, so state-changing commands refuse to run beside a running server rather
// than fork the log's hash chain.
struct AdminSession {
  server::Installation installation;
  std::unique_ptr<events::SecurityLog> log;
  std::string actor;

  void record(std::string action, std::string object, nlohmann::json details = nlohmann::json::object()) {
    if (!log) return;
    if (auto st = log->append(
            {actor, std::move(action), std::move(object), events::Outcome::success, "local", std::move(details)});
        !st) {
      std::cerr << "torii: security log: " << st.error().message << "\n";
    }
  }
};

Result<AdminSession> open_admin(const config::Config& c, bool writes) {
  AdminSession session;
  session.actor = admin_actor();
  if (auto st = become_service_user(c); !st) return tl::unexpected(st.error());
  auto in = server::open_installation(c, g_clock, g_random, {false, false});
  if (!in) return tl::unexpected(in.error());
  session.installation = std::move(*in);
  if (writes) {
    auto log = server::open_security_log(c, session.installation, g_clock);
    if (!log) return tl::unexpected(log.error());
    session.log = std::move(*log);
  }
  return session;
}

Status write_output(const std::string& path, const std::string& text) {
  if (path.empty()) {
    std::cout << text;
    return ok();
  }
  return write_file_atomic(path, as_bytes(text), 0644);  // certificates are public
}

int run_setup_link(const CommonOptions& o) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto session = open_admin(*c, true);
  if (!session) return report(session.error());
  auto& store = *session->installation.store;
  auto pending = identity::setup_pending(store);
  if (!pending) return report(pending.error());
  if (!*pending) {
    std::cerr << "torii: an administrator exists already; setup links are only for the first one\n";
    return kExitRefused;
  }
  const std::chrono::minutes lifetime(c->setup.token_lifetime_minutes);
  auto token = identity::issue_setup_token(store, g_random, g_clock, lifetime);
  if (!token) return report(token.error());
  session->record("setup_token.issued", "setup", {{"expires_at", format_utc_millis(token->expires_at)}});
  if (c->server.public_url.empty() && c->console.listen.front().port == 0) {
    std::cerr << "torii: the console port is chosen at start (port 0); set server.public_url to print a link\n";
    return kExitUsage;
  }
  const std::string base = server::console_base_url(*c, c->console.listen.front().port);
  std::cout << fmt::format("One-time setup link (valid {} minutes; earlier links no longer work):\n  {}\n",
                           lifetime.count(), identity::setup_link(base, token->token));
  return kExitOk;
}

int run_cert_issue(const CommonOptions& o, const std::string& device_id, const std::string& csr_file,
                   const std::string& out) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto csr = read_file(csr_file, std::size_t{64} * 1024);
  if (!csr) return report(csr.error());
  auto session = open_admin(*c, true);
  if (!session) return report(session.error());
  // Checked before issuing: the command may now run as server.user, and a certificate that
  // cannot be saved must not be issued and left valid.
  if (!out.empty()) {
    const auto dir = std::filesystem::absolute(out).parent_path();
    if (::access(dir.c_str(), W_OK) != 0) {
      std::cerr << fmt::format(
          "torii: cannot write into {} as the account this command runs as; choose another "
          "--out or use standard output\n",
          dir.string());
      return kExitFailure;
    }
  }
  auto cert = session->installation.ca->issue_device_certificate(to_string(*csr), device_id);
  if (!cert) return report(cert.error());
  session->record("certificate.issued", "device:" + device_id,
                  {{"serial", cert->serial_hex}, {"not_after", format_utc_millis(from_unix_millis(cert->not_after))}});
  if (auto st = write_output(out, cert->pem); !st) return report(st.error());
  std::cerr << fmt::format("issued certificate {} for device {} (valid until {})\n", cert->serial_hex, device_id,
                           format_utc_millis(from_unix_millis(cert->not_after)));
  return kExitOk;
}

int run_cert_revoke(const CommonOptions& o, const std::string& serial, const std::string& reason) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto session = open_admin(*c, true);
  if (!session) return report(session.error());
  if (auto st = session->installation.ca->revoke(serial, reason); !st) return report(st.error());
  session->record("certificate.revoked", "certificate:" + serial, {{"reason", reason}});
  std::cout << fmt::format("revoked certificate {}; the gateway refuses it from its next start\n", serial);
  return kExitOk;
}

int run_cert_list(const CommonOptions& o, unsigned expiring_within_days) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto session = open_admin(*c, false);
  if (!session) return report(session.error());
  auto list = session->installation.ca->expiring_within(std::chrono::hours(24) * expiring_within_days);
  if (!list) return report(list.error());
  std::cout << fmt::format("{:<34} {:<11} {:<24} {}\n", "SERIAL", "KIND", "SUBJECT", "NOT AFTER");
  for (const auto& r : *list) {
    std::cout << fmt::format("{:<34} {:<11} {:<24} {}\n", r.serial_hex, r.kind, r.subject,
                             format_utc_millis(from_unix_millis(r.not_after)));
  }
  return kExitOk;
}

int run_ca_export(const CommonOptions& o, const std::string& out) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto session = open_admin(*c, false);
  if (!session) return report(session.error());
  auto root = session->installation.ca->root_certificate_pem();
  auto issuing = session->installation.ca->issuing_certificate_pem();
  if (!root) return report(root.error());
  if (!issuing) return report(issuing.error());
  if (auto st = write_output(out, *issuing + *root); !st) return report(st.error());
  return kExitOk;
}

int run(int argc, char** argv) {
  if (!crypto::init()) {
    std::cerr << "torii: libsodium could not be initialised\n";
    return kExitFailure;
  }
  CLI::App app{"torii: a secure-by-default IoT platform", "torii"};
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 refused for security, "
      "4 verification failed. See docs/cli.md.");

  auto* version = app.add_subcommand("version", "Print torii's version");

  CommonOptions server_options;
  bool print_default = false;
  bool check_only = false;
  auto* server = app.add_subcommand("server", "Run the gateway and console (TLS only, loopback by default)");
  add_common(server, server_options);
  server->add_flag("--print-default-config", print_default, "Print the built-in configuration as TOML and exit");
  server->add_flag("--check-config", check_only, "Validate the configuration, report every problem, and exit");

  auto* admin = app.add_subcommand("admin", "Operator tasks on a local installation");
  admin->require_subcommand(1);
  auto* log = admin->add_subcommand("log", "The security log");
  log->require_subcommand(1);
  CommonOptions verify_options;
  std::string log_dir;
  std::string public_key;
  auto* verify = log->add_subcommand("verify", "Check the hash chain and signed checkpoints of the security log");
  add_common(verify, verify_options);
  verify->add_option("--log-dir", log_dir, "security log directory (default: from the configuration)");
  verify->add_option("--public-key", public_key,
                     "hex Ed25519 public key to verify against (default: security-log.pub in the data "
                     "directory; pass a copy kept elsewhere to detect a replaced key)");
  CommonOptions setup_options;
  auto* setup_link = admin->add_subcommand("setup-link", "Issue a new one-time setup link (no administrator yet)");
  add_common(setup_link, setup_options);

  auto* cert = admin->add_subcommand("cert", "Certificates of the built-in CA");
  cert->require_subcommand(1);
  CommonOptions cert_options;
  std::string device_id;
  std::string csr_file;
  std::string out_file;
  auto* cert_issue = cert->add_subcommand("issue", "Issue a device certificate from a CSR (PEM)");
  add_common(cert_issue, cert_options);
  cert_issue->add_option("--device-id", device_id, "device id the certificate is bound to ([A-Za-z0-9._-]{1,64})")
      ->required();
  cert_issue->add_option("--csr", csr_file, "PKCS#10 request made on the device (EC P-256)")
      ->required()
      ->check(CLI::ExistingFile);
  cert_issue->add_option("--out", out_file, "write the certificate here instead of standard output");
  std::string serial;
  std::string reason = "unspecified";
  auto* cert_revoke = cert->add_subcommand("revoke", "Revoke a certificate by serial number");
  add_common(cert_revoke, cert_options);
  cert_revoke->add_option("--serial", serial, "serial number (hex), as `torii admin cert list` shows it")->required();
  cert_revoke->add_option("--reason", reason, "reason recorded with the revocation");
  unsigned expiring_days = 36500;
  auto* cert_list = cert->add_subcommand("list", "List certificates that are not revoked, soonest expiry first");
  add_common(cert_list, cert_options);
  cert_list->add_option("--expiring-within-days", expiring_days, "only those expiring within this many days");

  auto* ca = admin->add_subcommand("ca", "The built-in CA");
  ca->require_subcommand(1);
  auto* ca_export = ca->add_subcommand("export", "Write the CA bundle (issuing CA, then root) that devices trust");
  add_common(ca_export, cert_options);
  ca_export->add_option("--out", out_file, "write the bundle here instead of standard output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (version->parsed()) {
      std::cout << "torii " << kVersion << "\n";
      return kExitOk;
    }
    if (server->parsed()) {
      if (print_default) {
        std::cout << config::default_config_text();
        return kExitOk;
      }
      if (check_only) {
        auto c = load_config(server_options);
        if (!c) return kExitUsage;
        std::cout << "configuration OK\n";
        return kExitOk;
      }
      return run_server(server_options);
    }
    if (verify->parsed()) return run_log_verify(verify_options, log_dir, public_key);
    if (setup_link->parsed()) return run_setup_link(setup_options);
    if (cert_issue->parsed()) return run_cert_issue(cert_options, device_id, csr_file, out_file);
    if (cert_revoke->parsed()) return run_cert_revoke(cert_options, serial, reason);
    if (cert_list->parsed()) return run_cert_list(cert_options, expiring_days);
    if (ca_export->parsed()) return run_ca_export(cert_options, out_file);
  } catch (const std::exception& e) {
    std::cerr << "torii: unexpected error: " << e.what() << "\n";
    return kExitFailure;
  }
  return kExitUsage;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (...) {  // the commands catch what they expect; this is the last line of defence
    std::fputs("torii: unexpected error\n", stderr);
    return 1;
  }
}

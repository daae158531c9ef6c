// `torii`: argument parsing and dispatch only. The work lives in src/ (the server's wiring
// in src/server) so that tests drive the same code. Exit codes: docs/cli.md.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>

#include "agent_cli.h"
#include "base/allocator.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/privileges.h"
#include "base/version.h"
#include "bench/bench.h"
#include "config/config.h"
#include "crypto/sodium.h"
#include "events/log_verify.h"
#include "identity/device_commands.h"
#include "identity/setup_token.h"
#include "server/admin_ops.h"
#include "server/control.h"
#include "server/installation.h"
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
  auto account = lookup_account(c.server.user, "server.user");
  if (!account) return tl::unexpected(account.error());
  return drop_privileges(*account);
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
std::string admin_login() {
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
  return name;
}

std::string admin_actor() { return "admin-cli:" + admin_login(); }

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

// Returns a setting changed through the console to the configuration file's value: the way
// out when a stored change no longer passes the file's checks and the server refuses to
// start. Beside a running server it is refused (the security log's writer lock); the
// console's PATCH /api/v1/settings with null does the same there.
int run_settings_reset(const CommonOptions& o, const std::string& key) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto session = open_admin(*c, true);
  if (!session) return report(session.error());
  auto removed = session->installation.store->setting_overrides().remove(key);
  if (!removed) return report(removed.error());
  if (!*removed) {
    std::cerr << fmt::format("torii: {} has no value set through the console\n", key);
    return kExitRefused;
  }
  session->record("settings.changed", "setting:" + key, {{"key", key}, {"source", "file"}, {"applies", "next start"}});
  std::cout << fmt::format("{} is the configuration file's again from the next start\n", key);
  return kExitOk;
}

// Runs an operator request: through the control socket when a server runs on this data
// directory (its effects are then live at once), in-process otherwise. `prepare` runs
// before anything changes, as the account the request will run as (checks of output paths).
Result<nlohmann::json> dispatch_admin(const config::Config& c, server::AdminRequest request,
                                      const std::function<Status()>& prepare = {}) {
  request.actor = admin_login();
  const auto socket = server::resolve_data_dir(c) / server::kControlSocketName;
  if (std::filesystem::exists(socket)) {
    if (prepare) {
      if (auto st = prepare(); !st) return tl::unexpected(st.error());
    }
    auto online = server::call_control(socket, request);
    if (!online) return tl::unexpected(online.error());
    if (*online) return std::move(**online);
  }
  if (auto st = become_service_user(c); !st) return tl::unexpected(st.error());
  if (prepare) {
    if (auto st = prepare(); !st) return tl::unexpected(st.error());
  }
  auto session = open_admin(c, server::admin_op_writes(request.op));
  if (!session) return tl::unexpected(session.error());
  request.actor = session->actor;
  server::AdminContext context{c, session->installation, session->log.get(), nullptr, g_clock, g_random};
  return server::execute_admin(context, request);
}

// Fails when files cannot be created in dir by the account this command runs as.
Status check_writable_directory(const std::filesystem::path& dir) {
  if (::access(dir.c_str(), W_OK) != 0) {
    return fail(Errc::permission_denied,
                fmt::format("cannot write into {} as the account this command runs as; choose another directory",
                            dir.string()));
  }
  return ok();
}

int run_request(const CommonOptions& o, server::AdminRequest request,
                const std::function<int(const nlohmann::json&)>& print) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto result = dispatch_admin(*c, std::move(request));
  if (!result) return report(result.error());
  return print(*result);
}

int print_json(const nlohmann::json& result) {
  std::cout << result.dump(2) << "\n";
  return kExitOk;
}

int run_cert_issue(const CommonOptions& o, const std::string& device_id, const std::string& csr_file,
                   const std::string& out) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  auto csr = read_file(csr_file, std::size_t{64} * 1024);
  if (!csr) return report(csr.error());
  // Checked before issuing: a certificate that cannot be saved must not be issued and left valid.
  auto prepare = [&]() -> Status {
    if (out.empty()) return ok();
    return check_writable_directory(std::filesystem::absolute(out).parent_path());
  };
  auto cert = dispatch_admin(*c, {"cert.issue", {{"device_id", device_id}, {"csr", to_string(*csr)}}, ""}, prepare);
  if (!cert) return report(cert.error());
  if (auto st = write_output(out, (*cert)["certificate_pem"].get<std::string>()); !st) return report(st.error());
  std::cerr << fmt::format("issued certificate {} for device {} (valid until {})\n",
                           (*cert)["serial"].get<std::string>(), device_id, (*cert)["not_after"].get<std::string>());
  return kExitOk;
}

int run_cert_revoke(const CommonOptions& o, const std::string& serial, const std::string& reason) {
  return run_request(o, {"cert.revoke", {{"serial", serial}, {"reason", reason}}, ""}, [&](const nlohmann::json&) {
    std::cout << fmt::format("revoked certificate {}; its device is refused from now on\n", serial);
    return kExitOk;
  });
}

struct DeviceCreateOptions {
  std::string id;
  std::string name;
  std::string organisation;
  std::string profile;
  std::string segment;
  std::string serial_number;
  std::string firmware_version;
  std::vector<std::string> tags;
  std::string csr_file;
  std::string out_dir;
  bool enrolment_token = false;
};

// A device's one-time enrolment token as the admin commands print it: what to do with it,
// then the token alone on the last line, for scripts (`tail -n1`).
int print_enrolment_token(const nlohmann::json& r) {
  std::cout << fmt::format(
      "enrolment token for device {} (single use, valid until {}; any earlier token of the device no longer works).\n"
      "The device sends it with a CSR made on the device to POST /api/v1/enrol; it is shown only now:\n",
      r["device"]["id"].get<std::string>(), r["enrolment_expires_at"].get<std::string>());
  std::cout << r["enrolment_token"].get<std::string>() << "\n";
  return kExitOk;
}

int run_device_create(const CommonOptions& o, const DeviceCreateOptions& d) {
  auto c = load_config(o);
  if (!c) return kExitUsage;
  nlohmann::json args = {{"id", d.id}};
  for (auto [key, value] :
       {std::pair{"name", &d.name}, std::pair{"organisation", &d.organisation}, std::pair{"profile", &d.profile},
        std::pair{"segment", &d.segment}, std::pair{"serial_number", &d.serial_number},
        std::pair{"firmware_version", &d.firmware_version}}) {
    if (!value->empty()) args[key] = *value;
  }
  if (!d.tags.empty()) args["tags"] = d.tags;
  if (!d.csr_file.empty()) {
    auto csr = read_file(d.csr_file, std::size_t{64} * 1024);
    if (!csr) return report(csr.error());
    args["csr"] = to_string(*csr);
  }
  if (d.enrolment_token) {
    args["enrolment"] = true;
    auto result = dispatch_admin(*c, {"device.create", args, ""});
    if (!result) return report(result.error());
    std::cout << fmt::format("created device {} awaiting enrolment (no certificate or key yet)\n", d.id);
    std::cout << fmt::format("  topics: devices/{0}/telemetry (publish), devices/{0}/commands (subscribe)\n", d.id);
    return print_enrolment_token(*result);
  }
  if (d.out_dir.empty()) {
    std::cerr << "torii: --out is required (or --enrolment-token, for a device that enrols itself)\n";
    return kExitUsage;
  }
  const std::filesystem::path dir = std::filesystem::absolute(d.out_dir);
  auto prepare = [&]() -> Status {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Errc::io_error, fmt::format("cannot create {}: {}", dir.string(), ec.message()));
    return check_writable_directory(dir);
  };
  auto result = dispatch_admin(*c, {"device.create", args, ""}, prepare);
  if (!result) return report(result.error());
  const auto& r = *result;
  const auto cert_path = dir / (d.id + ".crt");
  const auto key_path = dir / (d.id + ".key");
  const auto ca_path = dir / "ca.crt";
  if (auto st = write_file_atomic(cert_path, as_bytes(r["certificate_pem"].get<std::string>()), 0644); !st) {
    return report(st.error());
  }
  if (auto st = write_file_atomic(ca_path, as_bytes(r["ca_bundle_pem"].get<std::string>()), 0644); !st) {
    return report(st.error());
  }
  if (r.contains("private_key_pem")) {
    if (auto st = write_file_atomic(key_path, as_bytes(r["private_key_pem"].get<std::string>()), 0600); !st) {
      return report(st.error());
    }
  }
  std::cout << fmt::format("created device {} (certificate {}, valid until {})\n", d.id,
                           r["certificate"]["serial"].get<std::string>(),
                           r["certificate"]["not_after"].get<std::string>());
  std::cout << fmt::format("  certificate: {}\n", cert_path.string());
  if (r.contains("private_key_pem")) {
    std::cout << fmt::format("  private key: {} (0600; hand it to the device, then delete this copy)\n",
                             key_path.string());
  }
  std::cout << fmt::format("  CA bundle:   {}\n", ca_path.string());
  std::cout << fmt::format("  topics:      devices/{0}/telemetry (publish), devices/{0}/commands (subscribe)\n", d.id);
  return kExitOk;
}

int print_device_table(const nlohmann::json& devices) {
  std::cout << fmt::format("{:<24} {:<9} {:<12} {:<14} {:<12} {:<24} {}\n", "ID", "STATUS", "ORGANISATION", "PROFILE",
                           "SEGMENT", "LAST SEEN", "TAGS");
  for (const auto& d : devices) {
    const auto tags = d["tags"].get<std::vector<std::string>>();
    std::cout << fmt::format("{:<24} {:<9} {:<12} {:<14} {:<12} {:<24} {}\n", d["id"].get<std::string>(),
                             d["status"].get<std::string>(), d["organisation"].get<std::string>(),
                             d["profile"].get<std::string>().empty() ? "-" : d["profile"].get<std::string>(),
                             d["segment"].get<std::string>(),
                             d["last_seen_at"].is_null() ? "never" : d["last_seen_at"].get<std::string>(),
                             tags.empty() ? "-" : fmt::format("{}", fmt::join(tags, ",")));
  }
  return kExitOk;
}

int print_json_lines(const nlohmann::json& rows) {
  for (const auto& row : rows) std::cout << row.dump() << "\n";
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

  CommonOptions settings_options;
  std::string settings_key;
  auto* settings = admin->add_subcommand("settings", "Settings changed through the console");
  settings->require_subcommand(1);
  auto* settings_reset = settings->add_subcommand(
      "reset", "Return a setting changed through the console to the configuration file's value (server stopped)");
  add_common(settings_reset, settings_options);
  settings_reset->add_option("--key", settings_key, "the setting, e.g. accounts.lock_after_failures")->required();

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

  auto* device = admin->add_subcommand("device", "Devices: registry, certificates, status");
  device->require_subcommand(1);
  CommonOptions device_options;
  DeviceCreateOptions create;
  auto* device_create = device->add_subcommand(
      "create", "Register a device and issue its certificate (from its CSR, or with a key made for it)");
  add_common(device_create, device_options);
  device_create->add_option("--id", create.id, "device id: lower-case letters, digits, '-' (1-63)")->required();
  device_create->add_option("--name", create.name, "display name (default: the id)");
  device_create->add_option("--organisation", create.organisation, "organisation (default: default)");
  device_create->add_option("--profile", create.profile, "device profile id (default: the generic profile)");
  device_create->add_option("--segment", create.segment, "network segment (default: default)");
  device_create->add_option("--serial-number", create.serial_number, "hardware serial number");
  device_create->add_option("--firmware-version", create.firmware_version, "firmware version");
  device_create->add_option("--tag", create.tags, "a tag rules select it by (repeat, or a,b)")->delimiter(',');
  device_create->add_option("--csr", create.csr_file, "PKCS#10 request made on the device (its key stays there)")
      ->check(CLI::ExistingFile);
  auto* create_out = device_create->add_option(
      "--out", create.out_dir,
      "directory for <id>.crt, <id>.key (0600, without --csr), ca.crt (required but with --enrolment-token)");
  device_create
      ->add_flag("--enrolment-token", create.enrolment_token,
                 "no certificate now: print a one-time token the device enrols with, making its own key")
      ->excludes("--csr")
      ->excludes(create_out);
  std::string organisation;
  auto* device_list = device->add_subcommand("list", "List devices");
  add_common(device_list, device_options);
  device_list->add_option("--organisation", organisation, "only this organisation's devices");
  std::string target_id;
  std::string device_reason;
  auto* device_show = device->add_subcommand("show", "A device with its certificates, traffic and latest values");
  add_common(device_show, device_options);
  device_show->add_option("--id", target_id, "device id")->required();
  auto* device_disable = device->add_subcommand("disable", "Disable a device; a live connection is closed at once");
  add_common(device_disable, device_options);
  device_disable->add_option("--id", target_id, "device id")->required();
  device_disable->add_option("--reason", device_reason, "reason recorded in the security log");
  auto* device_enable = device->add_subcommand("enable", "Enable a disabled device");
  add_common(device_enable, device_options);
  device_enable->add_option("--id", target_id, "device id")->required();
  std::vector<std::string> device_tags;
  bool no_tags = false;
  auto* device_tag = device->add_subcommand("tag", "Replace a device's tags, which rules select devices by");
  add_common(device_tag, device_options);
  device_tag->add_option("--id", target_id, "device id")->required();
  auto* new_tags = device_tag->add_option_group("tags", "--tag or --none");
  new_tags->add_option("--tag", device_tags, "its tags from now on (repeat, or a,b)")->delimiter(',');
  new_tags->add_flag("--none", no_tags, "no tags from now on");
  new_tags->require_option(1);
  auto* device_revoke =
      device->add_subcommand("revoke", "Revoke every certificate of a device; a live connection is closed at once");
  add_common(device_revoke, device_options);
  device_revoke->add_option("--id", target_id, "device id")->required();
  device_revoke->add_option("--reason", device_reason, "reason recorded with the revocation");
  bool confirmed = false;
  auto* device_token = device->add_subcommand(
      "enrolment-token", "A new one-time enrolment token for a device (replaces its earlier one); printed last");
  add_common(device_token, device_options);
  device_token->add_option("--id", target_id, "device id")->required();
  std::string command_name;
  std::string command_params = "{}";
  std::int64_t command_ttl = identity::kDefaultCommandLifetime.count();
  auto* device_command = device->add_subcommand(
      "command", "Send a command to a device: checked against its profile, signed, answered by the device later");
  add_common(device_command, device_options);
  device_command->add_option("--id", target_id, "device id")->required();
  device_command->add_option("--command", command_name, "one of the device profile's commands")->required();
  device_command->add_option("--params", command_params, "the command's parameters as a JSON object (default {})");
  device_command->add_option("--ttl", command_ttl, "seconds the device may run it (1-86400, default 300)");
  auto* device_commands =
      device->add_subcommand("commands", "A device's last 100 commands, newest first, with the device's answers");
  add_common(device_commands, device_options);
  device_commands->add_option("--id", target_id, "device id")->required();
  auto* device_delete = device->add_subcommand(
      "delete", "Delete a device with all its data: certificates revoked, key destroyed (cannot be undone)");
  add_common(device_delete, device_options);
  device_delete->add_option("--id", target_id, "device id")->required();
  device_delete->add_flag("--yes", confirmed, "confirm: the device's stored data becomes unrecoverable")->required();

  std::string alert_status;
  std::int64_t alert_limit = 100;
  std::string alert_id;
  auto* alerts_list =
      admin->add_subcommand("alerts", "Alerts of every organisation and the installation, newest first");
  add_common(alerts_list, device_options);
  alerts_list->add_option("--status", alert_status, "open, acknowledged, resolved; several separated by commas");
  alerts_list->add_option("--limit", alert_limit, "at most this many (1-500, default 100)");
  auto* alert = admin->add_subcommand("alert", "Acknowledge or resolve an alert");
  alert->require_subcommand(1);
  auto* alert_acknowledge = alert->add_subcommand("acknowledge", "Acknowledge an open alert");
  add_common(alert_acknowledge, device_options);
  alert_acknowledge->add_option("--id", alert_id, "alert id")->required();
  auto* alert_resolve = alert->add_subcommand("resolve", "Resolve an open or acknowledged alert");
  add_common(alert_resolve, device_options);
  alert_resolve->add_option("--id", alert_id, "alert id")->required();

  auto* profile = admin->add_subcommand("profile", "Device profiles: metrics and commands devices may use");
  profile->require_subcommand(1);
  std::string profile_file;
  std::string profile_name;
  auto* profile_put = profile->add_subcommand("put", "Store or replace a device profile from a JSON definition");
  add_common(profile_put, device_options);
  profile_put->add_option("--id", target_id, "profile id: lower-case letters, digits, '-'")->required();
  profile_put->add_option("--file", profile_file, "JSON definition (docs/devices.md)")
      ->required()
      ->check(CLI::ExistingFile);
  profile_put->add_option("--name", profile_name, "display name (default: the id)");
  profile_put->add_option("--organisation", organisation, "organisation (default: default)");
  auto* profile_list = profile->add_subcommand("list", "List an organisation's device profiles (JSON)");
  add_common(profile_list, device_options);
  profile_list->add_option("--organisation", organisation, "organisation (default: default)");

  auto* route = admin->add_subcommand(
      "route", "Routes: who may read another device's telemetry, events and state (denied unless routed)");
  route->require_subcommand(1);
  std::string route_from;
  std::string route_to;
  const auto add_route_ends = [&](CLI::App* c) {
    add_common(c, device_options);
    c->add_option("--from", route_from, "source: device:ID or segment:NAME")->required();
    c->add_option("--to", route_to, "reader: device:ID or segment:NAME")->required();
    c->add_option("--organisation", organisation, "organisation of both ends (default: default)");
  };
  auto* route_add = route->add_subcommand("add", "Let the --to side read the --from side (takes effect at once)");
  add_route_ends(route_add);
  auto* route_remove = route->add_subcommand("remove", "Remove a route (deliveries stop at once)");
  add_route_ends(route_remove);
  auto* route_list = route->add_subcommand("list", "List an organisation's routes (JSON)");
  add_common(route_list, device_options);
  route_list->add_option("--organisation", organisation, "organisation (default: default)");

  auto* rule = admin->add_subcommand("rule", "Rules of the Decision Trigger: conditions over telemetry, and actions");
  rule->require_subcommand(1);
  std::string rule_file;
  bool rule_disabled = false;
  const auto add_rule_common = [&](CLI::App* c) {
    add_common(c, device_options);
    c->add_option("--organisation", organisation, "organisation (default: default)");
  };
  auto* rule_create = rule->add_subcommand("create", "Create a rule from its JSON definition (docs/rules.md)");
  add_rule_common(rule_create);
  rule_create->add_option("--file", rule_file, "JSON definition")->required()->check(CLI::ExistingFile);
  rule_create->add_flag("--disabled", rule_disabled, "store it switched off (try it with the console's dry run)");
  auto* rule_change = rule->add_subcommand("change", "A new version of a rule: a new definition, or on/off");
  add_rule_common(rule_change);
  rule_change->add_option("--id", target_id, "rule id")->required();
  rule_change->add_option("--file", rule_file, "new JSON definition (default: keep the current one)")
      ->check(CLI::ExistingFile);
  rule_change->add_flag("--disabled", rule_disabled, "switch it off (without it, the new version is on)");
  auto* rule_list = rule->add_subcommand("list", "An organisation's rules, one JSON object per line");
  add_rule_common(rule_list);
  auto* rule_show = rule->add_subcommand("show", "One rule (JSON)");
  add_rule_common(rule_show);
  rule_show->add_option("--id", target_id, "rule id")->required();
  auto* rule_delete = rule->add_subcommand("delete", "Delete a rule with its history and state");
  add_rule_common(rule_delete);
  rule_delete->add_option("--id", target_id, "rule id")->required();

  auto* channel = admin->add_subcommand("channel", "Notification channels: where an organisation's alerts are sent");
  channel->require_subcommand(1);
  std::string channel_file;
  std::string channel_min_severity;
  const auto add_channel_common = [&](CLI::App* c) {
    add_common(c, device_options);
    c->add_option("--organisation", organisation, "organisation (default: default)");
  };
  auto* channel_create =
      channel->add_subcommand("create", "Create a channel from its JSON definition (docs/notifications.md)");
  add_channel_common(channel_create);
  channel_create->add_option("--id", target_id, "channel id (1..64 of A-Z, a-z, 0-9 and _.:-)")->required();
  channel_create->add_option("--file", channel_file, "JSON definition")->required()->check(CLI::ExistingFile);
  channel_create->add_option("--min-severity", channel_min_severity,
                             "info, warning or critical: every alert at or above it is sent; none (default): only "
                             "rules that name the channel");
  auto* channel_list =
      channel->add_subcommand("list", "An organisation's channels, redacted, one JSON object per line");
  add_channel_common(channel_list);
  auto* channel_delete = channel->add_subcommand("delete", "Delete a channel");
  add_channel_common(channel_delete);
  channel_delete->add_option("--id", target_id, "channel id")->required();
  std::string channel_enabled;
  auto* channel_change = channel->add_subcommand(
      "change", "Replace a channel's definition, and optionally its severity floor or whether it is enabled");
  add_channel_common(channel_change);
  channel_change->add_option("--id", target_id, "channel id")->required();
  channel_change->add_option("--file", channel_file, "JSON definition (a webhook without secret keeps its secret)")
      ->required()
      ->check(CLI::ExistingFile);
  channel_change->add_option("--min-severity", channel_min_severity, "info, warning, critical or none (default: kept)");
  channel_change->add_option("--enabled", channel_enabled, "true or false (default: kept)")
      ->check(CLI::IsMember({"true", "false"}));

  auto* telemetry = admin->add_subcommand("telemetry", "Stored device messages");
  telemetry->require_subcommand(1);
  std::int64_t telemetry_limit = 100;
  auto* telemetry_list =
      telemetry->add_subcommand("list", "Print a device's stored messages, oldest first, one JSON object per line");
  add_common(telemetry_list, device_options);
  telemetry_list->add_option("--device", target_id, "device id")->required();
  telemetry_list->add_option("--limit", telemetry_limit, "at most this many (1-10000)");

  auto* ca = admin->add_subcommand("ca", "The built-in CA");
  ca->require_subcommand(1);
  auto* ca_export = ca->add_subcommand("export", "Write the CA bundle (issuing CA, then root) that devices trust");
  add_common(ca_export, cert_options);
  ca_export->add_option("--out", out_file, "write the bundle here instead of standard output");

  bench::BenchOptions bench_options;
  auto* bench_cmd = app.add_subcommand(
      "bench", "MQTT load generator for torii or any MQTT broker; prints one JSON result line (docs/benchmarks.md)");
  {
    auto& b = bench_options;
    auto* c = bench_cmd;
    c->add_option("--host", b.host, "broker address or name")->capture_default_str();
    c->add_option("--port", b.port, "broker port")->capture_default_str();
    c->add_option("--cafile", b.cafile, "CA bundle that verifies the broker (TLS is always on)");
    c->add_option("--cert", b.cert,
                  "client certificate (PEM) for every connection, sent as the file has it (no issuers added "
                  "from --cafile); with --key");
    c->add_option("--key", b.key, "private key of --cert");
    c->add_option("--cert-dir", b.cert_dir,
                  "one identity per device: DIR/<device>.crt (sent as the file has it) and DIR/<device>.key");
    c->add_option("--tls-server-name", b.tls_server_name,
                  "name to verify in the broker's certificate (default: --host)");
    c->add_flag("--insecure-plaintext", b.insecure_plaintext, "no TLS, only to compare with a plaintext broker");
    c->add_option("--device-prefix", b.device_prefix, "device i is <prefix><i>, also its client id")
        ->capture_default_str();
    c->add_option("--devices", b.devices, "distinct devices (default: --connections); connection i is device i % N");
    c->add_option("--connections", b.connections, "connections to open")->capture_default_str();
    c->add_option("--threads", b.threads, "I/O threads (default: one per core)");
    c->add_option("--connect-rate", b.connect_rate, "new connections per second")->capture_default_str();
    c->add_option("--connect-timeout", b.connect_timeout_s, "seconds for TCP, TLS and CONNACK")->capture_default_str();
    c->add_option("--source-addresses", b.source_addresses,
                  "local addresses bound round-robin, e.g. 127.0.0.1,127.0.0.2");
    c->add_option("--keep-alive", b.keep_alive_s, "MQTT keep-alive in seconds (PINGREQ when silent)")
        ->capture_default_str();
    c->add_option("--mqtt-version", b.mqtt_version, "311 or 5")->capture_default_str();
    c->add_option("--qos", b.qos, "0 or 1")->capture_default_str();
    c->add_option("--topic", b.topic, "topic template: {device} {i}")->capture_default_str();
    c->add_option("--payload", b.payload, "payload template: {device} {i} {seq} {ts}");
    c->add_option("--rate", b.rate, "messages per second over all connections; 0: as fast as possible")
        ->capture_default_str();
    c->add_option("--inflight", b.inflight, "QoS 1: unacknowledged messages per connection")->capture_default_str();
    c->add_option("--duration", b.duration_s, "seconds to measure, after --warmup (default 10 without --count)");
    c->add_option("--count", b.count, "messages per connection, then stop");
    c->add_option("--warmup", b.warmup_s, "seconds of load before measuring")->capture_default_str();
    c->add_option("--drain-timeout", b.drain_timeout_s, "seconds to wait for outstanding acknowledgements")
        ->capture_default_str();
    c->add_option("--ts-unit", b.ts_unit_text, "unit of {ts}: us or ns")->capture_default_str();
    c->add_flag("--idle", b.idle, "open and hold the connections, sending only PINGREQ");
    c->add_flag("--subscribe", b.subscribe, "add a subscriber and measure publish-to-delivery latency from {ts}");
    c->add_option("--sub-topic", b.sub_topic, "subscriber's filter (default: --topic for each device); {device} {i}");
    c->add_option("--sub-qos", b.sub_qos, "QoS of the subscription (0 or 1)")->capture_default_str();
    c->add_option("--sub-cert", b.sub_cert,
                  "subscriber's certificate (default: --cert, or --cert-dir/<sub-client-id>.crt)");
    c->add_option("--sub-key", b.sub_key, "subscriber's private key");
    c->add_option("--sub-client-id", b.sub_client_id, "subscriber's client id (default: <prefix>sub)");
    c->add_option("--server-pid", b.server_pid, "sample this broker process's memory (VmRSS) and CPU time");
    c->add_flag("--quiet", b.quiet, "no progress lines on standard error");
  }

  auto* agent_cmd = app.add_subcommand("agent", "The device agent: enrolment, sensors, outbox, link to the gateway");
  agent_cmd->require_subcommand(1);
  const apps::AgentCli agent_cli(*agent_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (agent_cmd->parsed()) {
      if (auto code = agent_cli.run()) return *code;
    }
    if (bench_cmd->parsed()) return bench::run_command(bench_options, std::cout, std::cerr);
    if (version->parsed()) {
      std::cout << "torii " << kVersion << "\n"
                << "memory allocator: " << memory_allocator() << "\n";
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
    if (settings_reset->parsed()) return run_settings_reset(settings_options, settings_key);
    if (cert_issue->parsed()) return run_cert_issue(cert_options, device_id, csr_file, out_file);
    if (cert_revoke->parsed()) return run_cert_revoke(cert_options, serial, reason);
    if (cert_list->parsed()) return run_cert_list(cert_options, expiring_days);
    if (ca_export->parsed()) return run_ca_export(cert_options, out_file);
    if (device_create->parsed()) return run_device_create(device_options, create);
    if (device_list->parsed()) {
      nlohmann::json args = nlohmann::json::object();
      if (!organisation.empty()) args["organisation"] = organisation;
      return run_request(device_options, {"device.list", args, ""}, print_device_table);
    }
    if (device_show->parsed()) return run_request(device_options, {"device.show", {{"id", target_id}}, ""}, print_json);
    if (device_disable->parsed() || device_revoke->parsed()) {
      nlohmann::json args = {{"id", target_id}};
      if (!device_reason.empty()) args["reason"] = device_reason;
      return run_request(device_options, {device_disable->parsed() ? "device.disable" : "device.revoke", args, ""},
                         print_json);
    }
    if (device_enable->parsed()) {
      return run_request(device_options, {"device.enable", {{"id", target_id}}, ""}, print_json);
    }
    if (device_tag->parsed()) {
      return run_request(device_options, {"device.tags", {{"id", target_id}, {"tags", device_tags}}, ""}, print_json);
    }
    if (device_token->parsed()) {
      return run_request(device_options, {"device.enrolment_token", {{"id", target_id}}, ""}, print_enrolment_token);
    }
    if (device_delete->parsed()) {
      return run_request(device_options, {"device.delete", {{"id", target_id}}, ""}, print_json);
    }
    if (device_command->parsed()) {
      return run_request(
          device_options,
          {"device.command",
           {{"id", target_id}, {"command", command_name}, {"params", command_params}, {"ttl_seconds", command_ttl}},
           ""},
          print_json);
    }
    if (device_commands->parsed()) {
      return run_request(device_options, {"command.list", {{"id", target_id}}, ""}, print_json_lines);
    }
    if (rule_create->parsed() || rule_change->parsed() || rule_list->parsed() || rule_show->parsed() ||
        rule_delete->parsed()) {
      nlohmann::json args = nlohmann::json::object();
      if (!organisation.empty()) args["organisation"] = organisation;
      if (!rule_create->parsed() && !rule_list->parsed()) args["id"] = target_id;
      if (!rule_file.empty()) {
        auto text = read_file(rule_file, std::size_t{64} * 1024);
        if (!text) return report(text.error());
        args["definition"] = to_string(*text);
      }
      if (rule_create->parsed() || rule_change->parsed()) args["disabled"] = rule_disabled;
      const char* op = rule_create->parsed()   ? "rule.create"
                       : rule_change->parsed() ? "rule.change"
                       : rule_list->parsed()   ? "rule.list"
                       : rule_show->parsed()   ? "rule.show"
                                               : "rule.delete";
      return run_request(device_options, {op, args, ""}, rule_list->parsed() ? print_json_lines : print_json);
    }
    if (alerts_list->parsed()) {
      nlohmann::json args = {{"limit", alert_limit}};
      if (!alert_status.empty()) args["status"] = alert_status;
      return run_request(device_options, {"alert.list", args, ""}, print_json_lines);
    }
    if (alert_acknowledge->parsed() || alert_resolve->parsed()) {
      return run_request(device_options,
                         {alert_resolve->parsed() ? "alert.resolve" : "alert.acknowledge", {{"id", alert_id}}, ""},
                         print_json);
    }
    if (channel_create->parsed() || channel_change->parsed() || channel_list->parsed() || channel_delete->parsed()) {
      nlohmann::json args = nlohmann::json::object();
      if (!organisation.empty()) args["organisation"] = organisation;
      if (!channel_list->parsed()) args["id"] = target_id;
      if (channel_create->parsed() || channel_change->parsed()) {
        auto text = read_file(channel_file, std::size_t{64} * 1024);
        if (!text) return report(text.error());
        args["definition"] = to_string(*text);
        if (!channel_min_severity.empty()) args["min_severity"] = channel_min_severity;
        if (!channel_enabled.empty()) args["enabled"] = channel_enabled == "true";
      }
      const char* op = channel_create->parsed()   ? "channel.create"
                       : channel_change->parsed() ? "channel.change"
                       : channel_list->parsed()   ? "channel.list"
                                                  : "channel.delete";
      return run_request(device_options, {op, args, ""}, channel_list->parsed() ? print_json_lines : print_json);
    }
    if (profile_put->parsed()) {
      auto text = read_file(profile_file, std::size_t{1024} * 1024);
      if (!text) return report(text.error());
      nlohmann::json args = {{"id", target_id}, {"definition", to_string(*text)}};
      if (!profile_name.empty()) args["name"] = profile_name;
      if (!organisation.empty()) args["organisation"] = organisation;
      return run_request(device_options, {"profile.put", args, ""}, print_json);
    }
    if (profile_list->parsed()) {
      nlohmann::json args = nlohmann::json::object();
      if (!organisation.empty()) args["organisation"] = organisation;
      return run_request(device_options, {"profile.list", args, ""}, print_json);
    }
    if (route_add->parsed() || route_remove->parsed()) {
      nlohmann::json args = {{"from", route_from}, {"to", route_to}};
      if (!organisation.empty()) args["organisation"] = organisation;
      return run_request(device_options, {route_add->parsed() ? "route.add" : "route.remove", args, ""}, print_json);
    }
    if (route_list->parsed()) {
      nlohmann::json args = nlohmann::json::object();
      if (!organisation.empty()) args["organisation"] = organisation;
      return run_request(device_options, {"route.list", args, ""}, print_json);
    }
    if (telemetry_list->parsed()) {
      return run_request(device_options, {"telemetry.list", {{"device", target_id}, {"limit", telemetry_limit}}, ""},
                         print_json_lines);
    }
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

#include "agent/command.h"

#include <unistd.h>

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>

#include <spdlog/spdlog.h>
#include "agent/device_agent.h"
#include "agent/enrolment.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/privileges.h"
#include "crypto/sodium.h"

namespace torii::agent {

namespace asio = boost::asio;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRefused = 3;

int exit_code_for(const Error& e) {
  if (e.is(Errc::permission_denied) || e.is(Errc::authentication_failed) || e.is(Errc::expired)) return kExitRefused;
  if (e.is(Errc::invalid_argument) || e.is(Errc::not_found)) return kExitUsage;
  return kExitFailure;
}

int report(std::ostream& err, const Error& e) {
  err << "torii agent: " << e.message << "\n";
  return exit_code_for(e);
}

std::optional<AgentConfig> load_config(const std::filesystem::path& file, std::ostream& err) {
  auto parsed = load_agent_config_file(file);
  if (parsed.ok()) return parsed.config;
  err << fmt::format("torii agent: {} has {} problem{}:\n{}", file.string(), parsed.problems.size(),
                     parsed.problems.size() == 1 ? "" : "s", config::format_problems(parsed.problems));
  return std::nullopt;
}

// A token from a file or standard input ("-"): the first line, without its end. Tokens are
// secrets: on the command line they would show in the process list.
Result<std::string> read_token(const std::filesystem::path& file) {
  std::string line;
  if (file == "-") {
    std::getline(std::cin, line);
  } else {
    auto bytes = read_file(file, 4096);
    if (!bytes) return tl::unexpected(bytes.error());
    line = torii::to_string(*bytes);
    line = line.substr(0, line.find('\n'));
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) return fail(Errc::invalid_argument, "the token file holds no token");
  return line;
}

// The --ca file: read before the switch, so it need not be readable by the agent's account.
Result<std::string> read_ca_bundle(const std::filesystem::path& file) {
  auto bytes = read_file(file, 1U << 20);
  if (!bytes) return tl::unexpected(bytes.error());
  return torii::to_string(*bytes);
}

// JPCERT I-5: started as root, makes `dir` (0700) for the account if it is missing and gives
// root up for good. `setting` names where the account came from, for the refusal. Not root:
// nothing to do.
Status run_as_account(const std::string& user, std::string_view setting, const std::filesystem::path& dir) {
  if (::geteuid() != 0) return ok();
  if (!valid_account_name(user) || user == "root") {
    return fail(Errc::invalid_argument, fmt::format("{} must name a system account other than root", setting));
  }
  auto account = lookup_account(user, setting);
  if (!account) return tl::unexpected(account.error());
  if (auto st = prepare_directory_for(dir, *account); !st) return st;
  if (auto st = drop_privileges(*account); !st) return st;
  spdlog::info("agent: running as {} (uid {}, gid {})", account->name, account->uid, account->gid);
  return ok();
}

// Runs agents until SIGINT or SIGTERM.
int run_agents(asio::io_context& io, std::vector<std::unique_ptr<DeviceAgent>>& agents) {
  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::size_t running = agents.size();
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    spdlog::info("agent: stopping");
    for (auto& agent : agents) agent->stop();
  });
  for (auto& agent : agents) {
    asio::co_spawn(io, agent->run(), [&](const std::exception_ptr&) {
      if (--running == 0) signals.cancel();
    });
  }
  io.run();
  for (const auto& agent : agents) {
    if (agent->needs_enrolment()) return kExitRefused;
  }
  return kExitOk;
}

}  // namespace

int run_enrol_command(const EnrolCommand& command, std::ostream& out, std::ostream& err) {
  EnrolmentRequest request;
  std::string user = AgentConfig{}.user;
  if (!command.config_file.empty()) {
    auto config = load_config(command.config_file, err);
    if (!config) return kExitUsage;
    request.server_url = config->server;
    request.state_dir = config->state_dir;
    user = config->user;
  }
  if (!command.user.empty()) user = command.user;
  if (!command.server.empty()) request.server_url = command.server;
  if (!command.state_dir.empty()) request.state_dir = command.state_dir;
  if (request.server_url.empty() || request.state_dir.empty()) {
    err << "torii agent enroll: name the console (--server) and the state directory (--state-dir), or --config\n";
    return kExitUsage;
  }
  auto ca = read_ca_bundle(command.ca_file);
  if (!ca) return report(err, ca.error());
  request.ca_pem = std::move(*ca);
  if (!command.token_file.empty()) {
    auto token = read_token(command.token_file);
    if (!token) return report(err, token.error());
    request.token = std::move(*token);
  } else {
    request.token = command.token;
  }
  if (auto st = run_as_account(user, command.user.empty() ? "agent.user" : "--user", request.state_dir); !st) {
    return report(err, st.error());
  }
  auto enrolled = enrol(request);
  if (!enrolled) return report(err, enrolled.error());
  out << fmt::format("enrolled as device {} (certificate {}, valid until {})\n", enrolled->device_id,
                     enrolled->certificate_serial, format_utc_millis(enrolled->not_after));
  out << fmt::format("identity stored in {}\n", request.state_dir.string());
  return kExitOk;
}

int run_agent_command(const std::filesystem::path& config_file, std::ostream& err) {
  auto config = load_config(config_file, err);
  if (!config) return kExitUsage;
  if (auto st = run_as_account(config->user, "agent.user", config->state_dir); !st) return report(err, st.error());
  SystemClock clock;
  crypto::SystemRandom random;
  auto identity = load_identity(config->state_dir, clock.now());
  if (!identity) return report(err, identity.error());
  asio::io_context io(1);
  asio::thread_pool blocking(1);
  auto agent =
      DeviceAgent::create(io.get_executor(), blocking.get_executor(), *config, std::move(*identity), random, clock);
  if (!agent) return report(err, agent.error());
  std::vector<std::unique_ptr<DeviceAgent>> agents;
  agents.push_back(std::move(*agent));
  const int code = run_agents(io, agents);
  blocking.join();
  return code;
}

int run_simulate_command(const SimulateCommand& command, std::ostream& out, std::ostream& err) {
  if (command.count == 0 || command.count > 10'000) {
    err << "torii agent simulate: --count must be 1..10000\n";
    return kExitUsage;
  }
  if (!(command.interval_seconds >= 0.1 && command.interval_seconds <= 86400)) {
    err << "torii agent simulate: --interval must be 0.1..86400 seconds\n";
    return kExitUsage;
  }
  if (command.heartbeat_seconds < 1 || command.heartbeat_seconds > 86400) {
    err << "torii agent simulate: --heartbeat must be 1..86400 seconds\n";
    return kExitUsage;
  }
  auto gateway = parse_gateway_address(command.gateway);
  if (!gateway) return report(err, gateway.error());

  std::string ca_pem;
  if (!command.ca_file.empty()) {
    auto ca = read_ca_bundle(command.ca_file);
    if (!ca) return report(err, ca.error());
    ca_pem = std::move(*ca);
  }
  std::vector<std::string> tokens;
  if (!command.tokens_file.empty()) {
    auto bytes = read_file(command.tokens_file, 1u << 20);
    if (!bytes) return report(err, bytes.error());
    std::istringstream lines(torii::to_string(*bytes));
    for (std::string line; std::getline(lines, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      tokens.push_back(line);  // an empty line: no token for that device
    }
  }
  if (auto st = run_as_account(command.user, "--user", command.dir); !st) return report(err, st.error());
  if (auto dir = ensure_private_directory(command.dir); !dir) return report(err, dir.error());

  SystemClock clock;
  crypto::SystemRandom random;
  asio::io_context io(1);
  asio::thread_pool blocking(1);
  std::vector<std::unique_ptr<DeviceAgent>> agents;
  for (std::size_t i = 1; i <= command.count; ++i) {
    AgentConfig config = default_agent_config(4);
    config.state_dir = command.dir / std::to_string(i);
    config.gateway = *gateway;
    config.server = command.server;
    config.heartbeat_seconds = command.heartbeat_seconds;
    config.posture_seconds = 0;  // the devices are simulated, the host is not theirs
    for (auto& sensor : config.sensors) {
      sensor.interval = std::chrono::milliseconds(static_cast<std::int64_t>(command.interval_seconds * 1000));
    }
    auto identity = load_identity(config.state_dir, clock.now());
    if (!identity && identity.error().is(Errc::not_found) && i <= tokens.size() && !tokens[i - 1].empty()) {
      EnrolmentRequest request;
      request.server_url = command.server;
      request.token = tokens[i - 1];
      request.ca_pem = ca_pem;
      request.state_dir = config.state_dir;
      auto enrolled = enrol(request);
      if (!enrolled) {
        err << fmt::format("torii agent simulate: device {} (token on line {}): ", i, i);
        return report(err, enrolled.error());
      }
      out << fmt::format("device {} enrolled as {}\n", i, enrolled->device_id);
      identity = load_identity(config.state_dir, clock.now());
    }
    if (!identity) {
      err << fmt::format("torii agent simulate: device {} ({}): ", i, config.state_dir.string());
      return report(err, identity.error());
    }
    auto agent =
        DeviceAgent::create(io.get_executor(), blocking.get_executor(), config, std::move(*identity), random, clock);
    if (!agent) return report(err, agent.error());
    agents.push_back(std::move(*agent));
  }
  out << fmt::format("simulating {} device{} against {}\n", agents.size(), agents.size() == 1 ? "" : "s",
                     gateway->to_string())
      << std::flush;
  const int code = run_agents(io, agents);
  blocking.join();
  return code;
}

}  // namespace torii::agent

#include "agent_cli.h"

#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/agent_config.h"

namespace torii::apps {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

void set_up_logging() {
  auto logger = spdlog::stderr_color_mt("torii-agent");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::info);
}

}  // namespace

AgentCli::AgentCli(CLI::App& parent) {
  enroll_ =
      parent.add_subcommand("enroll", "Make this device's key and get its certificate with a one-time enrolment token");
  enroll_->add_option("--config", enrol_.config_file, "the agent's configuration file (agent.server, agent.state_dir)")
      ->check(CLI::ExistingFile);
  enroll_->add_option("--server", enrol_.server, "the console's URL, https://host:port");
  enroll_->add_option("--state-dir", enrol_.state_dir, "where the key, certificate and outbox are kept");
  enroll_->add_option("--user", enrol_.user, "started as root, run as this account (default: agent.user, torii-agent)");
  enroll_->add_option("--ca", enrol_.ca_file, "torii's CA bundle (`torii admin ca export`)")
      ->required()
      ->check(CLI::ExistingFile);
  auto* token = enroll_->add_option("--token", enrol_.token,
                                    "the one-time enrolment token (shows in the process list: prefer --token-file)");
  enroll_->add_option("--token-file", enrol_.token_file, "read the token from a file ('-': standard input)")
      ->excludes(token);

  run_ = parent.add_subcommand("run", "Run the agent until SIGINT or SIGTERM");
  run_->add_option("--config", config_, "the agent's configuration file")->check(CLI::ExistingFile);
  run_->add_flag("--print-default-config", print_default_, "Print a commented configuration file and exit");

  simulate_ = parent.add_subcommand(
      "simulate", "Run a fleet of simulated devices in one process, each with its own key and certificate");
  auto& s = simulate_options_;
  simulate_->add_option("--count", s.count, "how many devices (1..10000)");
  simulate_->add_option("--dir", s.dir, "device i keeps its identity and outbox in DIR/i")->required();
  simulate_->add_option("--gateway", s.gateway, "the gateway, host:port");
  simulate_->add_option("--interval", s.interval_seconds, "seconds between readings (0.1..86400)");
  simulate_->add_option("--heartbeat", s.heartbeat_seconds, "seconds between heartbeats (1..86400)");
  simulate_->add_option("--tokens", s.tokens_file, "enrol devices not yet enrolled: device i with the token on line i")
      ->check(CLI::ExistingFile);
  simulate_->add_option("--server", s.server, "the console's URL, for enrolment");
  simulate_->add_option("--ca", s.ca_file, "torii's CA bundle, for enrolment")->check(CLI::ExistingFile);
  simulate_->add_option("--user", s.user, "started as root, run as this account (default: torii-agent)");
}

std::optional<int> AgentCli::run() const {
  if (enroll_->parsed()) {
    set_up_logging();
    return agent::run_enrol_command(enrol_, std::cout, std::cerr);
  }
  if (run_->parsed()) {
    if (print_default_) {
      std::cout << agent::default_agent_config_text();
      return kExitOk;
    }
    if (config_.empty()) {
      std::cerr << "agent run: --config is required\n";
      return kExitUsage;
    }
    set_up_logging();
    return agent::run_agent_command(config_, std::cerr);
  }
  if (simulate_->parsed()) {
    if (!simulate_options_.tokens_file.empty() && simulate_options_.ca_file.empty()) {
      std::cerr << "agent simulate: --tokens needs --ca\n";
      return kExitUsage;
    }
    set_up_logging();
    return agent::run_simulate_command(simulate_options_, std::cout, std::cerr);
  }
  return std::nullopt;
}

}  // namespace torii::apps

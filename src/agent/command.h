// `torii agent ...`: the commands, after argument parsing (apps/torii/main.cpp). Exit
// codes as docs/cli.md: 0 done, 1 a runtime failure, 2 bad arguments or configuration,
// 3 refused for security (a token refused, a key readable by others, an account to run as
// that does not exist).
//
// JPCERT I-5: started as root, each command makes its state directory (0700) for the
// agent's account if it is missing and gives root up for good (no supplementary groups, gid
// then uid, no_new_privs) before it opens a key, an outbox or a connection. Files named on
// the command line (the configuration, a token file, the --ca bundle) are read before, so
// they need not be readable by the account. Not started as root: they run as they are.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

namespace torii::agent {

struct EnrolCommand {
  std::filesystem::path config_file;  // optional: server and state_dir come from it
  std::string server;                 // overrides the file's
  std::filesystem::path state_dir;    // overrides the file's
  std::string user;                   // overrides the file's agent.user
  std::filesystem::path ca_file;      // torii's CA (`torii admin ca export`)
  std::string token;                  // or token_file ("-": standard input)
  std::filesystem::path token_file;
};

struct SimulateCommand {
  std::size_t count = 3;
  std::filesystem::path dir;  // device i (1..count) keeps its identity and outbox in dir/i
  std::string gateway = "127.0.0.1:8883";
  double interval_seconds = 5;  // every simulated sensor's
  std::uint32_t heartbeat_seconds = 60;
  // Devices not enrolled yet enrol first: device i with the token on line i of tokens_file
  // (an empty line: none).
  std::filesystem::path tokens_file;
  std::string server = "https://127.0.0.1:8443";
  std::filesystem::path ca_file;
  std::string user = "torii-agent";  // started as root, the fleet runs as this account
};

[[nodiscard]] int run_enrol_command(const EnrolCommand& command, std::ostream& out, std::ostream& err);
// Runs the agent of the configuration file until SIGINT or SIGTERM.
[[nodiscard]] int run_agent_command(const std::filesystem::path& config_file, std::ostream& err);
[[nodiscard]] int run_simulate_command(const SimulateCommand& command, std::ostream& out, std::ostream& err);

}  // namespace torii::agent

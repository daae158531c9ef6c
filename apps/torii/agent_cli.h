// The agent's commands and their arguments, shared by `torii agent ...` and the lean
// `torii-agent` binary (the same commands, without the server linked in).
#pragma once

#include <filesystem>
#include <optional>

#include <CLI/CLI.hpp>

#include "agent/command.h"

namespace torii::apps {

class AgentCli {
 public:
  // Adds enroll, run and simulate under `parent`. The object must stay where it is until
  // the commands ran: the parser writes into its members.
  explicit AgentCli(CLI::App& parent);
  AgentCli(const AgentCli&) = delete;
  AgentCli& operator=(const AgentCli&) = delete;

  // The exit code of the command that was parsed; nullopt when none of them was.
  [[nodiscard]] std::optional<int> run() const;

 private:
  CLI::App* enroll_ = nullptr;
  CLI::App* run_ = nullptr;
  CLI::App* simulate_ = nullptr;
  agent::EnrolCommand enrol_;
  std::filesystem::path config_;
  bool print_default_ = false;
  agent::SimulateCommand simulate_options_;
};

}  // namespace torii::apps

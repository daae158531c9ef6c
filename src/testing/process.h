// Child processes for integration tests: the real torii binary and real peers (openssl,
// nmap). Output is captured through pipes; every wait is bounded and a child still running
// when its Process dies is killed (tests end only what they started, by PID).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace torii::testing {

struct RunResult {
  int exit_code = -1;  // -1: killed after the timeout or by a signal
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) to completion with the given standard input.
RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout = std::chrono::seconds(60),
              std::string_view input = {});

class Process {
 public:
  explicit Process(const std::vector<std::string>& argv);
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  [[nodiscard]] pid_t pid() const { return pid_; }
  // Reads until standard output contains `needle`; false on timeout or exit.
  bool wait_for_output(std::string_view needle, std::chrono::seconds timeout);
  // SIGTERM, then waits; SIGKILL after the timeout. Returns the exit code (-1 if killed).
  int stop(std::chrono::seconds timeout = std::chrono::seconds(30));
  // Waits for the process to exit on its own; -1 (after SIGKILL) on timeout.
  int wait(std::chrono::seconds timeout);
  // Sends `sig` without waiting; false when the process has already been reaped.
  bool signal(int sig);
  // SIGKILL (no chance to clean up, as on a crash or `kill -9`), then reaps it and drains
  // its output. Returns -1, or the exit code when it had already exited.
  int kill();
  [[nodiscard]] const std::string& out() const { return out_; }
  [[nodiscard]] const std::string& err() const { return err_; }

 private:
  void pump(std::chrono::milliseconds timeout);
  void close_pipes();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
  std::string out_;
  std::string err_;
};

}  // namespace torii::testing

// Starts the real `torii` binary on loopback with a private data directory and ephemeral
// ports, for tests that treat it as a user would: through its CLI, its ports and its files.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "testing/process.h"
#include "testing/temp_dir.h"

namespace torii::testing {

struct ListeningSocket {
  std::string address;  // "127.0.0.1"
  std::uint16_t port = 0;
  friend auto operator<=>(const ListeningSocket&, const ListeningSocket&) = default;
};

// Every TCP socket in LISTEN state that the process owns, read from /proc.
std::set<ListeningSocket> listening_sockets(pid_t pid);
// Established TCP connections (IPv4 and IPv6) that the process holds on its local `port`.
std::size_t established_connections(pid_t pid, std::uint16_t port);

class ServerTest : public ::testing::Test {
 protected:
  ServerTest();
  ~ServerTest() override;

  // The configuration file's text; tests append their own sections before start().
  std::string config_text;

  // Starts the server and waits for its ready lines; fails the test otherwise.
  void start();
  // Stops it with SIGTERM and returns its exit code.
  int stop();
  // Kills it with SIGKILL, as a crash would; start() brings it up again on the same data.
  void kill();
  // Runs `torii <args...> --config <file> --data-dir <dir>` to completion.
  RunResult torii(std::vector<std::string> args, bool with_config = true);

  [[nodiscard]] std::filesystem::path data_dir() const { return dir_ / "data"; }
  [[nodiscard]] std::filesystem::path work_dir() const { return dir_.path(); }
  [[nodiscard]] static bool is_root() { return ::geteuid() == 0; }

  // Polls until `done` holds or the bound passes (a wait for an event, not a timing check):
  // for what the server does beside its answers, such as the security log's lines and alerts
  // of the message path, written by threads of their own.
  template <class Done>
  static bool eventually(Done done, std::chrono::seconds bound = std::chrono::seconds(60)) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < until) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return done();
  }

  std::unique_ptr<Process> server;
  std::uint16_t gateway_port = 0;
  std::uint16_t console_port = 0;
  std::string setup_url;

 private:
  TempDir dir_;
};

// Path of the torii binary under test (set by CMake).
std::string torii_binary();

}  // namespace torii::testing

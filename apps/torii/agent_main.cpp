// `torii-agent`: the device agent alone (`torii agent ...` without the server linked in), for
// devices where memory and storage count. Commands and exit codes: docs/agent.md, docs/cli.md.
#include <cstdio>
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "agent_cli.h"
#include "base/version.h"
#include "crypto/sodium.h"

namespace {

int run(int argc, char** argv) {
  if (!torii::crypto::init()) {
    std::cerr << "torii-agent: libsodium could not be initialised\n";
    return 1;
  }
  CLI::App app{"torii-agent: the device agent of torii (enrolment, sensors, outbox, link to the gateway)",
               "torii-agent"};
  app.require_subcommand(1);
  app.footer("Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 refused for security. See docs/agent.md.");
  auto* version = app.add_subcommand("version", "Print the version");
  const torii::apps::AgentCli agent(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (version->parsed()) {
    std::cout << "torii-agent " << torii::kVersion << "\n";
    return 0;
  }
  try {
    if (auto code = agent.run()) return *code;
  } catch (const std::exception& e) {
    std::cerr << "torii-agent: unexpected error: " << e.what() << "\n";
    return 1;
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (...) {
    std::fputs("torii-agent: unexpected error\n", stderr);
    return 1;
  }
}

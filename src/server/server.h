// The composition root of `torii server`: wires configuration, keys, store, PKI, the
// security log and the listeners. A library, so integration tests run the same wiring.
//
// Start-up phases, in this order (each may fail with a message for the operator):
//   Server::create      resolve paths, umask 077
//   bind_listeners      open every configured port (may need root)
//   drop_privileges     started as root: switch to server.user for good (JPCERT I-5)
//   open_state          check the data directory, unlock keys, open the store and the
//                       security log
//   start               create or load the CA, TLS contexts, accept connections, print
//                       the ready lines and, while no administrator exists, the setup link
//   run                 until SIGINT/SIGTERM or request_stop()
//
// Threading: everything runs on one io_context thread; request_stop() may be called from
// any thread.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "config/config.h"
#include "server/installation.h"

namespace torii::server {

struct Environment {
  const Clock& clock;
  Random& random;
  std::ostream& out;  // ready lines and the one-time setup link (a terminal, not a log)
  // Argon2id cost for a new passphrase-derived KEK; tests lower it.
  bool fast_key_derivation_for_tests = false;
};

class Server {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Server>> create(config::Config config, Environment env);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] Status bind_listeners();
  [[nodiscard]] Status drop_privileges();
  [[nodiscard]] Status open_state();
  [[nodiscard]] Status start();
  void run();
  void request_stop();

  [[nodiscard]] const std::filesystem::path& data_dir() const;

 private:
  struct State;
  explicit Server(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace torii::server

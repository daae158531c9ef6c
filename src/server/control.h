// The control socket: how `torii admin` reaches a running server.
//
// A Unix stream socket `control.sock` in the data directory (mode 0600, inside the 0700
// directory, owned by the server's account). Only root and the server's own account may
// connect, and the peer's uid (SO_PEERCRED) is checked again on every connection. One
// request per connection: a JSON line {"op", "args", "actor"} in, a JSON line
// {"ok": true, "result": ...} or {"ok": false, "error": {"code", "message"}} out.
//
// Threading: the server side runs on the server's io_context thread, so a request runs
// beside the gateway without locks; the client side is blocking and for the CLI only.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/error.h"
#include "server/admin_ops.h"

namespace boost::asio {
class io_context;
}

namespace torii::server {

inline constexpr std::string_view kControlSocketName = "control.sock";
inline constexpr std::size_t kMaxControlRequestBytes = std::size_t{1024} * 1024;

using ControlHandler = std::function<Result<nlohmann::json>(const AdminRequest&, uid_t peer_uid)>;

class ControlServer {
 public:
  ControlServer(boost::asio::io_context& io, std::filesystem::path socket_path, ControlHandler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Replaces a stale socket file (the data directory's writer lock guarantees no other
  // server uses it), binds, restricts it to 0600 and accepts.
  [[nodiscard]] Status start();
  // Stops accepting and removes the socket file.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sends a request to the server listening on socket_path. nullopt when no server listens
// there (no socket file, or nobody accepting); errors for everything else, including an
// error the server answered with.
[[nodiscard]] Result<std::optional<nlohmann::json>> call_control(const std::filesystem::path& socket_path,
                                                                 const AdminRequest& request);

}  // namespace torii::server

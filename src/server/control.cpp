#include "server/control.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>

namespace torii::server {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using nlohmann::json;

namespace {

constexpr auto kRequestDeadline = std::chrono::seconds(10);

json error_reply(const Error& e) {
  return json{{"ok", false}, {"error", {{"code", errc_name(e)}, {"message", e.message}}}};
}

std::optional<uid_t> peer_uid(int fd) {
  struct ucred cred {};
  socklen_t length = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return std::nullopt;
  return cred.uid;
}

}  // namespace

struct ControlServer::Impl {
  Impl(asio::io_context& context, std::filesystem::path path, ControlHandler h)
      : io(context), socket_path(std::move(path)), handler(std::move(h)), acceptor(io) {}

  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      local::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;
      }
      asio::co_spawn(io, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(local::socket socket) {
    boost::system::error_code ec;
    asio::steady_timer deadline(io, kRequestDeadline);
    deadline.async_wait([&socket](const boost::system::error_code& e) {
      if (!e) {
        boost::system::error_code ignored;
        socket.close(ignored);
      }
    });
    json reply;
    const auto uid = peer_uid(socket.native_handle());
    if (!uid || (*uid != 0 && *uid != ::geteuid())) {
      reply = error_reply(Error{make_error_code(Errc::permission_denied), "not allowed to control this server"});
    } else {
      std::string line;
      const std::size_t n = co_await asio::async_read_until(socket, asio::dynamic_buffer(line, kMaxControlRequestBytes),
                                                            '\n', asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        deadline.cancel();
        co_return;  // closed, too large or too slow: nothing to answer
      }
      line.resize(n);
      auto request = json::parse(line, nullptr, false);
      if (request.is_discarded() || !request.is_object() || !request.contains("op") || !request["op"].is_string()) {
        reply = error_reply(Error{make_error_code(Errc::invalid_argument), "malformed request"});
      } else {
        AdminRequest r;
        r.op = request["op"].get<std::string>();
        if (request.contains("args")) r.args = request["args"];
        const std::string claimed = request.value("actor", std::string());
        // The account is what the kernel says; the login name is what the CLI says.
        r.actor = fmt::format("admin-cli:{}", claimed.empty() ? fmt::format("uid {}", *uid) : claimed.substr(0, 64));
        auto result = handler(r, *uid);
        reply = result ? json{{"ok", true}, {"result", std::move(*result)}} : error_reply(result.error());
      }
    }
    std::string out = reply.dump(-1, ' ', false, json::error_handler_t::replace);
    out.push_back('\n');
    co_await asio::async_write(socket, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
    deadline.cancel();
    socket.close(ec);
  }

  asio::io_context& io;
  std::filesystem::path socket_path;
  ControlHandler handler;
  local::acceptor acceptor;
};

ControlServer::ControlServer(asio::io_context& io, std::filesystem::path socket_path, ControlHandler handler)
    : impl_(std::make_unique<Impl>(io, std::move(socket_path), std::move(handler))) {}

ControlServer::~ControlServer() { stop(); }

Status ControlServer::start() {
  const auto& path = impl_->socket_path;
  if (path.native().size() >= sizeof(sockaddr_un::sun_path)) {
    return fail(Errc::invalid_argument, fmt::format("control socket path too long: {}", path.string()));
  }
  std::error_code fs_ec;
  std::filesystem::remove(path, fs_ec);
  boost::system::error_code ec;
  impl_->acceptor.open(local(), ec);
  if (!ec) impl_->acceptor.bind(local::endpoint(path.string()), ec);
  if (!ec && ::chmod(path.c_str(), 0600) != 0) {
    return fail(Errc::io_error, fmt::format("cannot restrict {}: {}", path.string(), errno_text(errno)));
  }
  if (!ec) impl_->acceptor.listen(16, ec);
  if (ec)
    return fail(Errc::io_error, fmt::format("cannot open the control socket {}: {}", path.string(), ec.message()));
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  return ok();
}

void ControlServer::stop() {
  if (!impl_ || !impl_->acceptor.is_open()) return;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  std::error_code fs_ec;
  std::filesystem::remove(impl_->socket_path, fs_ec);
}

Result<std::optional<json>> call_control(const std::filesystem::path& socket_path, const AdminRequest& request) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const auto& native = socket_path.native();
  if (native.size() >= sizeof address.sun_path) return fail(Errc::invalid_argument, "control socket path too long");
  std::memcpy(address.sun_path, native.c_str(), native.size() + 1);

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::io_error, fmt::format("socket: {}", errno_text(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) return std::optional<json>();
    if (err == EACCES) {
      return fail(Errc::permission_denied,
                  "a server is running but its control socket is not accessible to this account "
                  "(run as root or as the server's user)");
    }
    return fail(Errc::io_error, fmt::format("cannot reach the running server: {}", errno_text(err)));
  }
  std::string line = json{{"op", request.op}, {"args", request.args}, {"actor", request.actor}}.dump();
  line.push_back('\n');
  std::size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io_error, fmt::format("sending to the server: {}", errno_text(errno)));
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io_error, fmt::format("reading the server's answer: {}", errno_text(errno)));
    }
    if (n == 0) break;
    reply.append(buffer, static_cast<std::size_t>(n));
    if (reply.size() > 64 * kMaxControlRequestBytes) return fail(Errc::io_error, "the server's answer is too large");
  }
  auto parsed = json::parse(reply, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return fail(Errc::io_error, "the server sent no valid answer");
  if (parsed.value("ok", false)) return std::optional<json>(parsed.value("result", json()));
  const auto& error = parsed["error"];
  return fail(errc_from_name(error.value("code", "io_error")), error.value("message", "request failed"));
}

}  // namespace torii::server

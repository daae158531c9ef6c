#include "server_fixture.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <vector>

namespace torii::testing {
namespace {

std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> inodes;
  const std::filesystem::path fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir, ec)) {
    const auto target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (target.starts_with("socket:[")) inodes.insert(target.substr(8, target.size() - 9));
  }
  return inodes;
}

std::string ipv4_from_hex(const std::string& hex) {
  const unsigned long v = std::stoul(hex, nullptr, 16);  // little-endian in /proc
  std::ostringstream s;
  s << (v & 0xff) << '.' << ((v >> 8) & 0xff) << '.' << ((v >> 16) & 0xff) << '.' << ((v >> 24) & 0xff);
  return s.str();
}

// The process's TCP sockets (IPv4 and IPv6) as /proc lists them: local address, port, state.
struct TcpSocket {
  std::string host_hex;
  std::uint16_t port = 0;
  std::string state;  // hex, as in include/net/tcp_states.h: 01 established, 0A listen
};

std::vector<TcpSocket> tcp_sockets(pid_t pid) {
  const auto inodes = socket_inodes(pid);
  std::vector<TcpSocket> out;
  for (const char* table : {"tcp", "tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/" + table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      if (!inodes.contains(inode)) continue;
      const auto colon = local.find(':');
      out.push_back({local.substr(0, colon),
                     static_cast<std::uint16_t>(std::stoul(local.substr(colon + 1), nullptr, 16)), state});
    }
  }
  return out;
}

}  // namespace

std::string torii_binary() { return TORII_BINARY; }

std::set<ListeningSocket> listening_sockets(pid_t pid) {
  std::set<ListeningSocket> out;
  for (const auto& socket : tcp_sockets(pid)) {
    if (socket.state != "0A") continue;  // LISTEN
    out.insert({socket.host_hex.size() == 8 ? ipv4_from_hex(socket.host_hex) : "ipv6:" + socket.host_hex, socket.port});
  }
  return out;
}

std::size_t established_connections(pid_t pid, std::uint16_t port) {
  const auto sockets = tcp_sockets(pid);
  return static_cast<std::size_t>(std::count_if(sockets.begin(), sockets.end(), [port](const TcpSocket& s) {
    return s.state == "01" && s.port == port;  // ESTABLISHED
  }));
}

ServerTest::ServerTest() {
  // Started as root, the server runs as `nobody`, which must be able to reach the data dir.
  ::chmod(dir_.path().c_str(), 0711);
  config_text = R"([server]
user = "nobody"
[gateway]
listen = ["127.0.0.1:0"]
handshake_timeout_seconds = 2
[console]
listen = ["127.0.0.1:0"]
)";
}

ServerTest::~ServerTest() {
  if (server) server->stop();
}

RunResult ServerTest::torii(std::vector<std::string> args, bool with_config) {
  std::vector<std::string> argv{torii_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  if (with_config) {
    std::ofstream(dir_ / "torii.toml") << config_text;
    argv.insert(argv.end(), {"--config", (dir_ / "torii.toml").string(), "--data-dir", data_dir().string()});
  }
  return run(argv, std::chrono::seconds(120));
}

void ServerTest::start() {
  std::ofstream(dir_ / "torii.toml") << config_text;
  server = std::make_unique<Process>(std::vector<std::string>{
      torii_binary(), "server", "--config", (dir_ / "torii.toml").string(), "--data-dir", data_dir().string()});
  const bool ready = server->wait_for_output("security log public key", std::chrono::seconds(120));
  ASSERT_TRUE(ready) << "server did not start.\nstdout:\n" << server->out() << "\nstderr:\n" << server->err();
  std::smatch m;
  const std::string out = server->out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex("listening: gateway 127\\.0\\.0\\.1:(\\d+)")));
  gateway_port = static_cast<std::uint16_t>(std::stoi(m[1]));
  ASSERT_TRUE(std::regex_search(out, m, std::regex("listening: console 127\\.0\\.0\\.1:(\\d+)")));
  console_port = static_cast<std::uint16_t>(std::stoi(m[1]));
  if (server->wait_for_output("/setup#", std::chrono::seconds(5))) {
    server->wait_for_output("\n", std::chrono::seconds(1));
    const std::string all = server->out();
    if (std::regex_search(all, m, std::regex("(https://\\S+/setup#\\S+)"))) setup_url = m[1];
  }
}

int ServerTest::stop() {
  if (!server) return -1;
  const int code = server->stop();
  return code;
}

void ServerTest::kill() {
  if (server) server->kill();
}

}  // namespace torii::testing

// `torii server` as a user meets it: first start, its files, its ports, its refusals.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server_fixture.h"

namespace torii::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

// Connects from `source` to 127.0.0.1:port, sends `payload`, and returns what the server
// sends back until it closes the connection (or 10 s pass).
std::string exchange(std::uint16_t port, const std::string& payload, const char* source = "127.0.0.1") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local), 0);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  std::string received;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) == 0) {
    if (!payload.empty()) {
      [[maybe_unused]] const auto sent = ::send(fd, payload.data(), payload.size(), MSG_NOSIGNAL);
    }
    for (int i = 0; i < 100; ++i) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return received;
}

// `openssl s_client` against 127.0.0.1:port with extra arguments; returns its result.
// It sends one line and reads until the server closes the connection (-ign_eof), so a
// verdict the server sends after a TLS 1.3 handshake (an alert about the client
// certificate) is always seen.
RunResult s_client(std::uint16_t port, std::vector<std::string> extra) {
  std::vector<std::string> argv{"openssl",     "s_client",  "-connect", "127.0.0.1:" + std::to_string(port),
                                "-servername", "localhost", "-brief",   "-ign_eof"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run(argv, std::chrono::seconds(30), "\n");
}

class ToriiServer : public ServerTest {};

TEST_F(ToriiServer, FirstStartCreatesAPrivateDataDirectoryAndAOneTimeSetupLink) {
  start();
  EXPECT_EQ(mode_of(data_dir()), 0700u);
  EXPECT_EQ(mode_of(data_dir() / "kek.key"), 0600u);
  EXPECT_EQ(mode_of(data_dir() / "torii.db"), 0600u);
  EXPECT_EQ(mode_of(data_dir() / "log" / "security.log"), 0600u);
  EXPECT_TRUE(std::regex_match(
      setup_url, std::regex("https://localhost:" + std::to_string(console_port) + "/setup#[A-Za-z0-9_-]{43}")))
      << setup_url;
  EXPECT_EQ(stop(), 0);
  // The token is shown once, on the terminal: never in a log or on disk.
  const std::string token = setup_url.substr(setup_url.find('#') + 1);
  EXPECT_THAT(server->err(), Not(HasSubstr(token)));
  for (const auto& f : std::filesystem::recursive_directory_iterator(data_dir())) {
    if (f.is_regular_file()) {
      EXPECT_THAT(slurp(f.path()), Not(HasSubstr(token))) << f.path();
    }
  }
  const std::string log = slurp(data_dir() / "log" / "security.log");
  for (const char* action :
       {"keys.created", "ca.created", "certificate.issued", "setup_token.issued", "server.start", "server.stop"}) {
    EXPECT_THAT(log, HasSubstr(std::string("\"action\":\"") + action + "\"")) << action;
  }
}

TEST_F(ToriiServer, OnlyTheConfiguredTlsPortsListen) {
  // The scanner's probes of old protocols fail handshakes; without this it gets banned.
  config_text += "[firewall]\nban_after_failures = 10000\n";
  start();
  const std::set<ListeningSocket> expected{{"127.0.0.1", gateway_port}, {"127.0.0.1", console_port}};
  EXPECT_EQ(listening_sockets(server->pid()), expected);

  // An external scanner sees TLS 1.2/1.3 with strong suites only, on both ports.
  const auto scan =
      run({"nmap", "-Pn", "-sT", "-n", "-p", std::to_string(gateway_port) + "," + std::to_string(console_port),
           "--script", "ssl-enum-ciphers", "127.0.0.1"},
          std::chrono::seconds(120));
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  EXPECT_THAT(scan.out, HasSubstr(std::to_string(console_port) + "/tcp open"));
  EXPECT_THAT(scan.out, HasSubstr(std::to_string(gateway_port) + "/tcp open"));
  EXPECT_THAT(scan.out, HasSubstr("TLSv1.2"));
  EXPECT_THAT(scan.out, HasSubstr("TLSv1.3"));
  for (const char* weak : {"SSLv3", "TLSv1.0", "TLSv1.1", "_CBC_", "RC4", "_NULL_", "least strength: B",
                           "least strength: C", "least strength: F"}) {
    EXPECT_THAT(scan.out, Not(HasSubstr(weak))) << scan.out;
  }
}

TEST_F(ToriiServer, PlaintextGetsNoAnswer) {
  start();
  for (std::uint16_t port : {gateway_port, console_port}) {
    const std::string http = exchange(port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_THAT(http, Not(HasSubstr("HTTP/"))) << port;
    // An MQTT 3.1.1 CONNECT in the clear: no CONNACK (0x20) comes back, at most a TLS alert (0x15).
    const std::string mqtt_connect("\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test", 18);
    const std::string reply = exchange(port, mqtt_connect);
    EXPECT_TRUE(reply.empty() || reply[0] == '\x15') << port;
  }
}

TEST_F(ToriiServer, ConsoleSpeaksModernTlsOnlyWithACertificateFromTheBuiltInCa) {
  config_text += "idle_timeout_seconds = 2\n";  // [console]
  start();
  const auto bundle = torii({"admin", "ca", "export"});
  ASSERT_EQ(bundle.exit_code, 0) << bundle.err;
  std::ofstream(work_dir() / "ca.pem") << bundle.out;
  const std::string ca = (work_dir() / "ca.pem").string();

  const auto tls13 = s_client(console_port, {"-tls1_3", "-CAfile", ca, "-verify_return_error"});
  EXPECT_EQ(tls13.exit_code, 0) << tls13.err;
  EXPECT_THAT(tls13.err + tls13.out, HasSubstr("Verification: OK"));
  const auto tls12 = s_client(console_port, {"-tls1_2", "-CAfile", ca, "-verify_return_error"});
  EXPECT_EQ(tls12.exit_code, 0) << tls12.err;
  EXPECT_THAT(tls12.err + tls12.out, HasSubstr("ECDHE-ECDSA-AES128-GCM-SHA256"));

  // A client that stays connected after the handshake without sending a request does not
  // keep its slot: the console closes it after console.idle_timeout_seconds (run() kills it
  // after 30 s otherwise, giving -1).
  const auto lingering =
      run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(console_port), "-ign_eof", "-CAfile", ca},
          std::chrono::seconds(30));
  EXPECT_NE(lingering.exit_code, -1);

  EXPECT_NE(s_client(console_port, {"-tls1_1"}).exit_code, 0);
  EXPECT_NE(s_client(console_port, {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"}).exit_code, 0);
  EXPECT_NE(s_client(console_port, {"-tls1_2", "-cipher", "AES128-GCM-SHA256"}).exit_code, 0);  // no forward secrecy
}

TEST_F(ToriiServer, GatewayAdmitsOnlyDevicesWithAValidCertificate) {
  start();
  const auto bundle = torii({"admin", "ca", "export"});
  ASSERT_EQ(bundle.exit_code, 0) << bundle.err;
  std::ofstream(work_dir() / "ca.pem") << bundle.out;
  const std::string ca = (work_dir() / "ca.pem").string();

  // Without a client certificate the handshake fails.
  const auto anonymous = s_client(gateway_port, {"-tls1_3", "-CAfile", ca});
  EXPECT_THAT(anonymous.err, HasSubstr("alert certificate required"));

  // A device key made "on the device", a CSR, and a certificate from the admin command.
  const std::string key = (work_dir() / "device.key").string();
  const std::string csr = (work_dir() / "device.csr").string();
  ASSERT_EQ(run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                 "/CN=whatever", "-keyout", key, "-out", csr})
                .exit_code,
            0);
  ::chmod(csr.c_str(), 0644);
  // Registered through the running server (its control socket).
  const auto issued =
      torii({"admin", "device", "create", "--id", "sensor-1", "--csr", csr, "--out", (work_dir() / "certs").string()});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  const std::string cert = (work_dir() / "certs" / "sensor-1.crt").string();
  EXPECT_FALSE(std::filesystem::exists(work_dir() / "certs" / "sensor-1.key"));  // the key stayed on the device

  const auto device = s_client(gateway_port, {"-tls1_3", "-CAfile", ca, "-cert", cert, "-key", key});
  EXPECT_EQ(device.exit_code, 0) << device.err;
  EXPECT_THAT(device.err + device.out, HasSubstr("Verification: OK"));
  EXPECT_THAT(device.err + device.out, Not(HasSubstr("alert")));

  // Revoked: refused by the TLS layer too from the next start (the MQTT layer refuses at
  // once: gateway_test.cpp).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(issued.out, m, std::regex("certificate ([0-9a-f]+), valid")));
  const auto revoked = torii({"admin", "cert", "revoke", "--serial", m[1], "--reason", "lost"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  ASSERT_EQ(stop(), 0);
  start();  // the TLS layer's revocation list is renewed at start
  const auto refused = s_client(gateway_port, {"-tls1_3", "-CAfile", ca, "-cert", cert, "-key", key});
  EXPECT_THAT(refused.err, HasSubstr("certificate revoked"));
}

TEST_F(ToriiServer, SilentClientIsCutOffAtTheHandshakeDeadline) {
  start();
  // Sends nothing: the server closes the connection once its 2 s deadline passes.
  EXPECT_EQ(exchange(console_port, ""), "");
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(slurp(data_dir() / "log" / "security.log"), HasSubstr("handshake deadline passed"));
}

TEST_F(ToriiServer, StopsCleanlyWhileConnectionsAreOpen) {
  start();
  // Connections still in their handshake when SIGTERM arrives are torn down with the
  // server; under the sanitizers a use-after-free there would fail the exit code.
  std::vector<int> sockets;
  for (std::uint16_t port : {gateway_port, console_port}) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote), 0);
    sockets.push_back(fd);
  }
  // The server has accepted both once it answers a third connection.
  EXPECT_EQ(s_client(console_port, {"-tls1_3"}).exit_code, 0);
  EXPECT_EQ(stop(), 0) << server->err();
  for (int fd : sockets) ::close(fd);
}

TEST_F(ToriiServer, DenyListedSourcesAreClosedBeforeTlsAndRepeatOffendersBanned) {
  config_text += R"([firewall]
deny = ["127.0.0.2/32"]
ban_after_failures = 3
)";
  start();
  // 127.0.0.2 is denied: not even a TLS alert comes back to a ClientHello-looking payload.
  EXPECT_EQ(exchange(console_port, std::string("\x16\x03\x01\x00\x05hello", 10), "127.0.0.2"), "");
  // 127.0.0.3 fails three handshakes and is banned.
  for (int i = 0; i < 3; ++i) exchange(console_port, "not tls\r\n\r\n", "127.0.0.3");
  ASSERT_EQ(stop(), 0);
  const std::string log = slurp(data_dir() / "log" / "security.log");
  EXPECT_THAT(log, HasSubstr("\"action\":\"firewall.ban\""));
  EXPECT_THAT(log, HasSubstr("\"object\":\"source:127.0.0.3\""));
  EXPECT_THAT(log, Not(HasSubstr("127.0.0.2")));  // refused before a handshake could fail
}

TEST_F(ToriiServer, RefusesToStartWhenTheDataDirectoryOrAKeyFileIsReadableByOthers) {
  start();
  ASSERT_EQ(stop(), 0);
  ASSERT_EQ(::chmod(data_dir().c_str(), 0750), 0);
  auto refused = torii({"server"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_THAT(refused.err, HasSubstr("0750"));
  EXPECT_THAT(refused.err, HasSubstr(data_dir().string()));
  ASSERT_EQ(::chmod(data_dir().c_str(), 0700), 0);

  ASSERT_EQ(::chmod((data_dir() / "kek.key").c_str(), 0644), 0);
  refused = torii({"server"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_THAT(refused.err, HasSubstr("kek.key has mode 0644"));
}

TEST_F(ToriiServer, StartedAsRootItRunsAsTheConfiguredUnprivilegedAccount) {
  if (!is_root()) GTEST_SKIP() << "needs root to test the privilege drop";
  start();
  const struct passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  const std::string status = slurp("/proc/" + std::to_string(server->pid()) + "/status");
  const std::string uid = std::to_string(nobody->pw_uid);
  const std::string gid = std::to_string(nobody->pw_gid);
  EXPECT_THAT(status, HasSubstr("Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid + "\n"));
  EXPECT_THAT(status, HasSubstr("Gid:\t" + gid + "\t" + gid + "\t" + gid + "\t" + gid + "\n"));
  EXPECT_TRUE(std::regex_search(status, std::regex("\nGroups:\\s*\n"))) << status;
  EXPECT_THAT(status, HasSubstr("CapEff:\t0000000000000000"));
  EXPECT_THAT(status, HasSubstr("NoNewPrivs:\t1"));
  struct stat st {};
  ASSERT_EQ(::stat(data_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, nobody->pw_uid);
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(slurp(data_dir() / "log" / "security.log"), HasSubstr("\"action\":\"privileges.dropped\""));
}

TEST_F(ToriiServer, RestartKeepsTheCaAndReplacesTheSetupLink) {
  start();
  std::smatch m;
  const std::string first_out = server->out();
  ASSERT_TRUE(std::regex_search(first_out, m, std::regex("root CA SHA-256 fingerprint: (\\S+)")));
  const std::string fingerprint = m[1];
  const std::string first_link = setup_url;
  ASSERT_EQ(stop(), 0);
  start();
  EXPECT_THAT(server->out(), HasSubstr(fingerprint));
  EXPECT_FALSE(setup_url.empty());
  EXPECT_NE(setup_url, first_link);
}

TEST_F(ToriiServer, WrongKeyFileIsRefused) {
  start();
  ASSERT_EQ(stop(), 0);
  std::ofstream(data_dir() / "kek.key", std::ios::binary | std::ios::trunc) << std::string(32, 'x');
  const auto refused = torii({"server"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_THAT(refused.err, HasSubstr("wrong key file"));
}

TEST_F(ToriiServer, LogVerifyFindsTheEditedLine) {
  start();
  ASSERT_EQ(stop(), 0);
  auto verified = torii({"admin", "log", "verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("OK"));

  const auto path = data_dir() / "log" / "security.log";
  std::vector<std::string> lines;
  {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  ASSERT_GE(lines.size(), 4u);
  lines[2] = std::regex_replace(lines[2], std::regex("\"outcome\":\"success\""), "\"outcome\":\"failure\"");
  {
    std::ofstream out(path, std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }
  verified = torii({"admin", "log", "verify"});
  EXPECT_EQ(verified.exit_code, 4);
  EXPECT_THAT(verified.out, HasSubstr("security.log:3:"));
  EXPECT_THAT(verified.out, HasSubstr("TAMPERED"));
}

TEST_F(ToriiServer, InvalidConfigurationIsRefusedWithEveryProblem) {
  config_text += R"([tls]
min_version = "1.0"
[log]
level = "loud"
[firewall]
allow = ["10.0.0.1/8"]
)";
  const auto refused = torii({"server"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr("3 problems"));
  EXPECT_THAT(refused.err, HasSubstr("tls.min_version"));
  EXPECT_THAT(refused.err, HasSubstr("log.level"));
  EXPECT_THAT(refused.err, HasSubstr("firewall.allow[0]"));
  EXPECT_FALSE(std::filesystem::exists(data_dir()));  // nothing was created
}

// Notification channels from the host: the generated webhook secret is printed once, never
// listed, and not in the security log.
TEST_F(ToriiServer, AChannelCreatedFromTheCliShowsItsSecretOnceAndIsListedRedacted) {
  start();
  ASSERT_EQ(stop(), 0);
  const auto file = work_dir() / "hook.json";
  std::ofstream(file) << R"({"name": "ops hook", "type": "webhook", "url": "https://hooks.example/torii"})";
  const auto created =
      torii({"admin", "channel", "create", "--id", "ops", "--file", file.string(), "--min-severity", "warning"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const auto made = nlohmann::json::parse(created.out);
  const std::string secret = made.value("secret", "");
  ASSERT_GE(secret.size(), 32U) << created.out;
  EXPECT_EQ(made["min_severity"], "warning");

  const auto listed = torii({"admin", "channel", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("\"id\":\"ops\""));
  EXPECT_THAT(listed.out, HasSubstr("\"secret_set\":true"));
  EXPECT_THAT(listed.out, Not(HasSubstr(secret)));

  const auto taken = torii({"admin", "channel", "create", "--id", "ops", "--file", file.string()});
  EXPECT_NE(taken.exit_code, 0);
  EXPECT_THAT(taken.err, HasSubstr("id: is already in use"));

  // A new URL, disabled: the secret and the severity floor are kept; a bad definition changes nothing.
  std::ofstream(file) << R"({"name": "ops hook", "type": "webhook", "url": "https://other.example/torii"})";
  const auto changed =
      torii({"admin", "channel", "change", "--id", "ops", "--file", file.string(), "--enabled", "false"});
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  const auto now = nlohmann::json::parse(changed.out);
  EXPECT_EQ(now["definition"]["url"], "https://other.example/torii");
  EXPECT_EQ(now["min_severity"], "warning");
  EXPECT_EQ(now["enabled"], false);
  EXPECT_FALSE(now.contains("secret")) << "the secret is kept, so it is not shown";
  std::ofstream(file) << R"({"name": "ops hook", "type": "webhook", "url": "http://plain.example/"})";
  const auto refused = torii({"admin", "channel", "change", "--id", "ops", "--file", file.string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("url: "));
  EXPECT_THAT(torii({"admin", "channel", "list"}).out, HasSubstr("https://other.example/torii"));
  EXPECT_NE(torii({"admin", "channel", "change", "--id", "nope", "--file", file.string()}).exit_code, 0);

  const auto deleted = torii({"admin", "channel", "delete", "--id", "ops"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(torii({"admin", "channel", "list"}).out, "");
  const std::string log = slurp(data_dir() / "log" / "security.log");
  EXPECT_THAT(log, HasSubstr("channel.created"));
  EXPECT_THAT(log, HasSubstr("channel.changed"));
  EXPECT_THAT(log, HasSubstr("channel.deleted"));
  EXPECT_THAT(log, Not(HasSubstr(secret)));
}

TEST_F(ToriiServer, CliDocumentsItselfAndPrintsItsDefaults) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"server", "--help"}, {"admin", "--help"}, {"admin", "log", "verify", "--help"}}) {
    const auto r = torii(args, false);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_THAT(r.out, HasSubstr("Usage"));
  }
  const auto version = torii({"version"}, false).out;
  EXPECT_THAT(version, HasSubstr("torii 0."));
  // The allocator found at run time is the one the build links (TORII_ALLOCATOR; the
  // sanitizer build keeps the system's).
  EXPECT_THAT(version, HasSubstr("memory allocator: " TORII_EXPECTED_ALLOCATOR));
  EXPECT_EQ(torii({"no-such-command"}, false).exit_code, 2);

  const auto defaults = torii({"server", "--print-default-config"}, false);
  ASSERT_EQ(defaults.exit_code, 0);
  std::ofstream(work_dir() / "defaults.toml") << defaults.out;
  const auto checked = torii({"server", "--check-config", "--config", (work_dir() / "defaults.toml").string()}, false);
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
}

}  // namespace
}  // namespace torii::testing

// `torii agent` against a real `torii server`: enrolment with a one-time token, delivery
// through the durable outbox across a server outage, heartbeats, and a fleet simulated in
// one process by `torii-agent`, the agent's own binary.
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "crypto/x509.h"
#include "server_fixture.h"
#include "testing/smtp_sink.h"

namespace torii::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class AgentTest : public ServerTest {
 protected:
  // A new device awaiting enrolment; its one-time token (the last line torii prints).
  std::string new_device(const std::string& id) {
    const auto r = torii({"admin", "device", "create", "--id", id, "--enrolment-token"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out.substr(out.rfind('\n') + 1);
  }

  std::string ca_file() {
    const auto r = torii({"admin", "ca", "export"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return write("ca.pem", r.out);
  }

  std::string write(const std::string& name, const std::string& text) {
    auto path = (work_dir() / name).string();
    std::ofstream(path) << text;
    return path;
  }

  // Started as root, the agent runs as `nobody`, as the server does (server_fixture.cpp);
  // enroll takes it from --user, run from agent.user in the configuration file.
  RunResult agent(std::vector<std::string> args) {
    std::vector<std::string> argv{torii_binary(), "agent"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (args.front() == "enroll") argv.insert(argv.end(), {"--user", "nobody"});
    return run(argv, std::chrono::seconds(60));
  }

  std::string console_url() const { return "https://127.0.0.1:" + std::to_string(console_port); }

  // The device's stored messages, oldest first.
  std::vector<json> stored(const std::string& device) {
    const auto r = torii({"admin", "telemetry", "list", "--device", device, "--limit", "10000"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> rows;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) rows.push_back(json::parse(line));
    }
    return rows;
  }

  static std::vector<json> of_kind(const std::vector<json>& rows, const std::string& kind) {
    std::vector<json> out;
    std::copy_if(rows.begin(), rows.end(), std::back_inserter(out), [&](const json& r) { return r["kind"] == kind; });
    return out;
  }

  // Restarts keep the ports the agent knows.
  void pin_ports() {
    const auto gateway = "127.0.0.1:" + std::to_string(gateway_port);
    const auto console = "127.0.0.1:" + std::to_string(console_port);
    config_text = std::regex_replace(config_text, std::regex(R"(\[gateway\]\nlisten = \["127\.0\.0\.1:0"\])"),
                                     "[gateway]\nlisten = [\"" + gateway + "\"]");
    config_text = std::regex_replace(config_text, std::regex(R"(\[console\]\nlisten = \["127\.0\.0\.1:0"\])"),
                                     "[console]\nlisten = [\"" + console + "\"]");
  }

  // `extra`: more [agent] keys, one a line.
  std::string agent_config(const std::string& state_dir, const std::string& extra = "") {
    return write("agent.toml",
                 "[agent]\n" + extra + "user = \"nobody\"\nstate_dir = \"" + state_dir +
                     "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) + "\"\nserver = \"" + console_url() +
                     "\"\nheartbeat_seconds = 1\nposture_seconds = 0\n\n[[sensor]]\nmetric = \"temperature\"\n"
                     "source = \"simulated\"\nsignal = \"temperature\"\ninterval_seconds = 0.2\n");
  }
};

TEST_F(AgentTest, AnEnrolledAgentDeliversEveryReadingOnceAndInOrderAcrossAServerOutage) {
  start();
  const auto token = new_device("agent-1");
  ASSERT_FALSE(token.empty());
  const auto ca = ca_file();
  const auto state = (work_dir() / "agent-1").string();
  const auto token_file = write("token", token + "\n");

  const auto enrolled =
      agent({"enroll", "--server", console_url(), "--ca", ca, "--token-file", token_file, "--state-dir", state});
  ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
  EXPECT_THAT(enrolled.out, HasSubstr("enrolled as device agent-1"));
  struct stat key {};
  ASSERT_EQ(::stat((work_dir() / "agent-1" / "key.pem").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 0777, 0600U);

  // The token was for one use.
  const auto again =
      agent({"enroll", "--server", console_url(), "--ca", ca, "--token-file", token_file, "--state-dir", state + "-2"});
  EXPECT_EQ(again.exit_code, 3) << again.out << again.err;
  EXPECT_THAT(again.err, HasSubstr("refused the enrolment token"));

  pin_ports();
  Process running({torii_binary(), "agent", "run", "--config", agent_config(state)});
  ASSERT_TRUE(eventually([&] { return of_kind(stored("agent-1"), "telemetry").size() >= 5; })) << running.err();
  ASSERT_TRUE(eventually([&] { return !of_kind(stored("agent-1"), "state").empty(); })) << running.err();

  // The gateway goes away; the agent keeps sampling into its outbox.
  const auto before_outage = of_kind(stored("agent-1"), "telemetry").size();
  ASSERT_EQ(stop(), 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  start();
  // Back: the outbox drains (a heartbeat after the restart says nothing waits).
  ASSERT_TRUE(eventually([&] {
    std::vector<json> beats;
    for (const auto& row : of_kind(stored("agent-1"), "state")) {
      auto payload = json::parse(row["payload"].get<std::string>());
      if (payload.value("type", "") == "heartbeat") beats.push_back(std::move(payload));
    }
    if (beats.empty()) return false;
    const auto& last = beats.back();
    return last["outbox"]["waiting"] == 0 && of_kind(stored("agent-1"), "telemetry").size() > before_outage + 5;
  })) << running.err();
  EXPECT_EQ(running.stop(), 0);

  // Every message the agent made (telemetry and events share one sequence) is stored exactly
  // once, and in the order it was made, including those sampled while the server was down.
  const auto rows = stored("agent-1");
  std::vector<std::int64_t> seqs;
  std::string prefix;
  for (const auto& row : rows) {
    if (row["kind"] == "state") continue;
    const auto id = row["message_id"].get<std::string>();
    const auto dash = id.rfind('-');
    ASSERT_NE(dash, std::string::npos) << id;
    if (prefix.empty()) prefix = id.substr(0, dash);
    EXPECT_EQ(id.substr(0, dash), prefix);
    seqs.push_back(std::stoll(id.substr(dash + 1)));
    const auto payload = json::parse(row["payload"].get<std::string>());
    EXPECT_EQ(payload["id"], id);
  }
  ASSERT_GT(seqs.size(), before_outage + 5);
  for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], static_cast<std::int64_t>(i + 1)) << i;
  EXPECT_THAT(running.err(), HasSubstr("trying again"));
}

TEST_F(AgentTest, AnAgentRenewsItsCertificateOverItsSessionWithoutLosingAMessage) {
  start();
  const auto token = new_device("renew-1");
  ASSERT_FALSE(token.empty());
  const auto state = (work_dir() / "renew-1").string();
  const auto enrolled = agent({"enroll", "--server", console_url(), "--ca", ca_file(), "--token-file",
                               write("token", token + "\n"), "--state-dir", state});
  ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
  auto read_text = [](const std::filesystem::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto security_log = [&] { return read_text(data_dir() / "log" / "security.log"); };
  const auto enrolled_certificate = read_text(work_dir() / "renew-1" / "certificate.pem");
  const auto enrolled_key = read_text(work_dir() / "renew-1" / "key.pem");
  ASSERT_FALSE(enrolled_certificate.empty());

  // renew_at = 0: renewal is due at once.
  Process running({torii_binary(), "agent", "run", "--config", agent_config(state, "renew_at = 0.0\n")});
  ASSERT_TRUE(eventually([&] { return security_log().find("certificate.renewed") != std::string::npos; }))
      << (running.stop(), running.err());
  ASSERT_TRUE(eventually([&] { return read_text(work_dir() / "renew-1" / "certificate.pem") != enrolled_certificate; }))
      << (running.stop(), running.err());
  const auto renewed_certificate = read_text(work_dir() / "renew-1" / "certificate.pem");
  const auto enrolled_serial = crypto::inspect_certificate(enrolled_certificate);
  const auto renewed_serial = crypto::inspect_certificate(renewed_certificate);
  ASSERT_TRUE(enrolled_serial && renewed_serial);
  EXPECT_NE(renewed_serial->serial_hex, enrolled_serial->serial_hex);
  EXPECT_EQ(renewed_serial->subject_cn, "renew-1");
  EXPECT_NE(read_text(work_dir() / "renew-1" / "key.pem"), enrolled_key);
  struct stat key {};
  ASSERT_EQ(::stat((work_dir() / "renew-1" / "key.pem").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 0777, 0600U);
  EXPECT_THAT(security_log(), HasSubstr(renewed_serial->serial_hex));

  // Telemetry keeps arriving after the reconnection with the new certificate.
  const auto at_renewal = of_kind(stored("renew-1"), "telemetry").size();
  ASSERT_TRUE(eventually([&] { return of_kind(stored("renew-1"), "telemetry").size() >= at_renewal + 10; }))
      << (running.stop(), running.err());
  // With renew_at = 0 the agent asks again at once: one renewal an hour, the rest refused.
  ASSERT_TRUE(eventually([&] { return security_log().find("certificate.renewal_refused") != std::string::npos; }))
      << (running.stop(), running.err());
  EXPECT_THAT(security_log(), HasSubstr("at most one renewal per hour"));
  EXPECT_EQ(running.stop(), 0);
  EXPECT_THAT(running.err(), HasSubstr("certificate renewed: " + renewed_serial->serial_hex));
  EXPECT_THAT(running.err(), HasSubstr("reconnecting with the certificate"));
  EXPECT_THAT(running.err(), HasSubstr("refused: at most one renewal per hour"));

  // No message was lost or stored twice across the reconnection.
  std::vector<std::int64_t> seqs;
  for (const auto& row : stored("renew-1")) {
    if (row["kind"] == "state") continue;
    const auto id = row["message_id"].get<std::string>();
    seqs.push_back(std::stoll(id.substr(id.rfind('-') + 1)));
  }
  ASSERT_GT(seqs.size(), at_renewal);
  for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], static_cast<std::int64_t>(i + 1)) << i;

  // Its first connection with the renewed certificate revoked the enrolled one: the old key
  // no longer opens a connection.
  ASSERT_TRUE(eventually([&] { return security_log().find("certificate.superseded") != std::string::npos; }));
  EXPECT_THAT(security_log(), HasSubstr("certificate:" + enrolled_serial->serial_hex));
  const auto with_old_key = run({"mosquitto_pub",
                                 "--cafile",
                                 ca_file(),
                                 "--cert",
                                 write("old.crt", enrolled_certificate),
                                 "--key",
                                 write("old.key", enrolled_key),
                                 "-h",
                                 "127.0.0.1",
                                 "-p",
                                 std::to_string(gateway_port),
                                 "-V",
                                 "mqttv5",
                                 "-i",
                                 "renew-1",
                                 "-q",
                                 "1",
                                 "-t",
                                 "devices/renew-1/telemetry",
                                 "-m",
                                 R"({"temperature":20})"},
                                std::chrono::seconds(30));
  EXPECT_NE(with_old_key.exit_code, 0);
  EXPECT_THAT(with_old_key.out + with_old_key.err, HasSubstr("authori"));
  EXPECT_THAT(security_log(), HasSubstr("certificate revoked"));

  // The renewed identity is the one the agent starts with next time.
  Process again({torii_binary(), "agent", "run", "--config", agent_config(state)});
  const auto before_restart = of_kind(stored("renew-1"), "telemetry").size();
  ASSERT_TRUE(eventually([&] { return of_kind(stored("renew-1"), "telemetry").size() >= before_restart + 3; }))
      << (again.stop(), again.err());
  EXPECT_EQ(again.stop(), 0);
}

TEST_F(AgentTest, ASimulatedFleetOnTheLeanAgentBinaryEnrolsEachDeviceWithItsOwnKeyAndPublishes) {
  start();
  std::string tokens;
  for (int i = 1; i <= 3; ++i) tokens += new_device("sim-" + std::to_string(i)) + "\n";
  const auto ca = ca_file();
  const auto dir = (work_dir() / "fleet").string();
  // torii-agent: the agent alone, as a device would install it.
  Process fleet({TORII_AGENT, "simulate", "--count", "3", "--dir", dir, "--gateway",
                 "127.0.0.1:" + std::to_string(gateway_port), "--interval", "0.5", "--tokens", write("tokens", tokens),
                 "--server", console_url(), "--ca", ca, "--user", "nobody"});
  for (int i = 1; i <= 3; ++i) {
    const auto id = "sim-" + std::to_string(i);
    ASSERT_TRUE(eventually([&] { return of_kind(stored(id), "telemetry").size() >= 4; }))
        << (fleet.stop(), fleet.out() + fleet.err());
  }
  EXPECT_EQ(fleet.stop(), 0);
  std::set<std::string> keys;
  for (int i = 1; i <= 3; ++i) {
    std::ifstream key(work_dir() / "fleet" / std::to_string(i) / "key.pem");
    keys.insert(std::string(std::istreambuf_iterator<char>(key), {}));
  }
  EXPECT_EQ(keys.size(), 3U);
  // Each metric of the simulated device arrives.
  std::set<std::string> metrics;
  for (const auto& row : of_kind(stored("sim-1"), "telemetry")) {
    const auto payload = json::parse(row["payload"].get<std::string>());
    for (const auto& [k, v] : payload.items()) metrics.insert(k);
  }
  EXPECT_TRUE(metrics.contains("temperature") && metrics.contains("humidity") && metrics.contains("power") &&
              metrics.contains("door_open"));
}

TEST_F(AgentTest, AStuckSensorAndHeartbeatsThatStopAreAlerts) {
  start();
  // A profile that expects a heartbeat every second: three missed are an alert.
  const auto profile = write("fast.json", R"({"metrics": [{"name": "temperature", "type": "number"}],
                                             "heartbeat_seconds": 1})");
  ASSERT_EQ(torii({"admin", "profile", "put", "--id", "fast", "--file", profile}).exit_code, 0);
  const auto made = torii({"admin", "device", "create", "--id", "agent-h", "--profile", "fast", "--enrolment-token"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string token = made.out;
  while (!token.empty() && token.back() == '\n') token.pop_back();
  token = token.substr(token.rfind('\n') + 1);
  const auto state = (work_dir() / "agent-h").string();
  ASSERT_EQ(
      agent({"enroll", "--server", console_url(), "--ca", ca_file(), "--token", token, "--state-dir", state}).exit_code,
      0);
  // A simulated sensor that sticks at once.
  const auto config =
      write("stuck.toml", "[agent]\nuser = \"nobody\"\nstate_dir = \"" + state +
                              "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
                              "\"\nheartbeat_seconds = 1\nposture_seconds = 0\n\n[[sensor]]\nmetric = \"temperature\"\n"
                              "source = \"simulated\"\nfault = \"stuck\"\ninterval_seconds = 0.1\n");
  auto security_log = [&] {
    std::ifstream in(data_dir() / "log" / "security.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  {
    Process running({torii_binary(), "agent", "run", "--config", config});
    ASSERT_TRUE(eventually([&] { return security_log().find("device.sensor_irregular") != std::string::npos; }))
        << running.err();
    ASSERT_TRUE(eventually([&] { return !of_kind(stored("agent-h"), "state").empty(); })) << running.err();
    running.kill();  // the device goes silent without a word
  }
  ASSERT_TRUE(eventually([&] { return security_log().find("device.heartbeat_missed") != std::string::npos; }));
  std::istringstream lines(security_log());
  for (std::string line; std::getline(lines, line);) {
    if (line.find("device.sensor_irregular") == std::string::npos &&
        line.find("device.heartbeat_missed") == std::string::npos) {
      continue;
    }
    const auto event = json::parse(line);
    EXPECT_EQ(event["object"], "device:agent-h");
    EXPECT_EQ(event["details"]["alert"], true);
  }
}

TEST_F(AgentTest, ATamperInputThatTripsAndClosesIsAnAlertAndItsClearance) {
  start();
  const auto state = (work_dir() / "agent-t").string();
  ASSERT_EQ(agent({"enroll", "--server", console_url(), "--ca", ca_file(), "--token", new_device("agent-t"),
                   "--state-dir", state})
                .exit_code,
            0);
  // A tamper switch as a GPIO value file: 0 closed, 1 open. Replaced whole, never half written.
  const auto gpio = work_dir() / "gpio17";
  auto set_switch = [&](const char* value) {
    std::ofstream(work_dir() / "gpio17.new") << value << "\n";
    std::filesystem::rename(work_dir() / "gpio17.new", gpio);
  };
  set_switch("0");
  const auto config =
      write("tamper.toml", "[agent]\nuser = \"nobody\"\nstate_dir = \"" + state +
                               "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
                               "\"\nheartbeat_seconds = 1\nposture_seconds = 0\n\n[[sensor]]\nmetric = \"lid\"\n"
                               "source = \"hwmon\"\npath = \"" +
                               gpio.string() + "\"\nscale = 1\ntamper = true\ninterval_seconds = 0.1\n");
  auto count = [&](const std::string& action) {
    std::ifstream in(data_dir() / "log" / "security.log");
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      const auto event = json::parse(line, nullptr, false);
      if (!event.is_object() || event.value("action", "") != action) continue;
      EXPECT_EQ(event["object"], "device:agent-t");
      EXPECT_EQ(event["details"]["metric"], "lid");
      ++n;
    }
    return n;
  };
  Process running({torii_binary(), "agent", "run", "--config", config});
  // Readings arrive while the switch is closed: nothing to report yet.
  ASSERT_TRUE(eventually([&] { return of_kind(stored("agent-t"), "telemetry").size() >= 3; })) << running.err();
  EXPECT_EQ(count("device.tamper"), 0u);
  set_switch("1");
  ASSERT_TRUE(eventually([&] { return count("device.tamper") >= 1; })) << (running.stop(), running.err());
  set_switch("0");
  ASSERT_TRUE(eventually([&] { return count("device.tamper_cleared") >= 1; })) << (running.stop(), running.err());
  // Once per transition, though the switch was read open and closed many times.
  EXPECT_EQ(count("device.tamper"), 1u);
  EXPECT_EQ(count("device.tamper_cleared"), 1u);
  // The agent's heartbeats carry its time in milliseconds, as the gateway reads them: this
  // host's clock is the server's, so no skew.
  ASSERT_TRUE(eventually([&] { return !of_kind(stored("agent-t"), "state").empty(); })) << running.err();
  EXPECT_EQ(count("device.clock_skew"), 0u);
  EXPECT_EQ(running.stop(), 0);
}

TEST_F(AgentTest, TheHostsPostureIsReportedAndJudgedByTheProfile) {
  start();
  const auto state = (work_dir() / "agent-p").string();
  ASSERT_EQ(agent({"enroll", "--server", console_url(), "--ca", ca_file(), "--token", new_device("agent-p"),
                   "--state-dir", state})
                .exit_code,
            0);
  // A host whose access point has WPS on, which runs a login console on a serial line and
  // whose kernel waits for a debugger on it.
  const auto host = work_dir() / "host";
  std::filesystem::create_directories(host / "etc" / "hostapd");
  std::filesystem::create_directories(host / "proc");
  std::ofstream(host / "proc" / "cmdline") << "console=ttyS0,115200 kgdboc=ttyS0,115200\n";
  std::ofstream(host / "etc" / "hostapd" / "hostapd.conf") << "ssid=plant-ap\nwpa=2\nwps_state=2\n";
  std::ofstream(host / "etc" / "inittab") << "T0:23:respawn:/sbin/getty -L ttyS0 115200 vt100\n";
  const auto config =
      write("posture.toml", "[agent]\nuser = \"nobody\"\nstate_dir = \"" + state +
                                "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
                                "\"\nposture_seconds = 60\n" + "posture_root = \"" + host.string() + "\"\n");
  Process running({torii_binary(), "agent", "run", "--config", config});
  auto findings = [&] {
    std::set<std::string> out;
    std::ifstream in(data_dir() / "log" / "security.log");
    for (std::string line; std::getline(in, line);) {
      if (line.find("device.posture_violation") == std::string::npos) continue;
      const auto event = json::parse(line);
      EXPECT_EQ(event["object"], "device:agent-p");
      EXPECT_EQ(event["details"]["alert"], true);
      out.insert(event["details"]["finding"].get<std::string>() + ": " + event["details"]["detail"].get<std::string>());
    }
    return out;
  };
  ASSERT_TRUE(eventually([&] { return findings().size() >= 3; })) << (running.stop(), running.err());
  EXPECT_EQ(findings(), (std::set<std::string>{"debug_interface: kgdb: kgdboc=ttyS0,115200", "serial_console: ttyS0",
                                               "wps: Wi-Fi 'plant-ap' has WPS on"}));
  // The report itself is stored as the device's state.
  bool stored_report = false;
  for (const auto& row : of_kind(stored("agent-p"), "state")) {
    stored_report = stored_report || json::parse(row["payload"].get<std::string>())["type"] == "posture";
  }
  EXPECT_TRUE(stored_report);
  EXPECT_EQ(running.stop(), 0);
}

TEST_F(AgentTest, AKeyReadableByOthersIsRefused) {
  start();
  const auto ca = ca_file();
  const auto state = (work_dir() / "agent-k").string();
  ASSERT_EQ(
      agent({"enroll", "--server", console_url(), "--ca", ca, "--token", new_device("agent-k"), "--state-dir", state})
          .exit_code,
      0);
  ASSERT_EQ(::chmod((work_dir() / "agent-k" / "key.pem").c_str(), 0644), 0);
  const auto r = agent({"run", "--config", agent_config(state)});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("key.pem"));
}

// JPCERT I-5: started as root, the agent gives root up before it opens its key.
TEST_F(AgentTest, StartedAsRootTheLeanAgentRunsAsTheConfiguredUnprivilegedAccount) {
  if (!is_root()) GTEST_SKIP() << "needs root to test the privilege drop";
  start();
  const struct passwd* nobody = ::getpwnam("nobody");  // NOLINT(concurrency-mt-unsafe): one thread
  ASSERT_NE(nobody, nullptr);
  const auto state = work_dir() / "agent-u";
  // What the command line names is read before the switch: the account need not read it.
  const auto ca = ca_file();
  ASSERT_EQ(::chmod(ca.c_str(), 0600), 0);
  const auto enrolled = run({TORII_AGENT, "enroll", "--server", console_url(), "--ca", ca, "--token",
                             new_device("agent-u"), "--state-dir", state.string(), "--user", "nobody"},
                            std::chrono::seconds(60));
  ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
  // The state directory and the key belong to the account, not to root.
  for (const auto& path : {state, state / "key.pem"}) {
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, nobody->pw_uid) << path;
    EXPECT_EQ(st.st_mode & 077, 0U) << path;
  }

  pin_ports();
  Process running({TORII_AGENT, "run", "--config", agent_config(state.string())});
  ASSERT_TRUE(eventually([&] { return !of_kind(stored("agent-u"), "telemetry").empty(); }))
      << (running.stop(), running.err());
  std::ifstream in("/proc/" + std::to_string(running.pid()) + "/status");
  const std::string status(std::istreambuf_iterator<char>(in), {});
  const std::string uid = std::to_string(nobody->pw_uid);
  const std::string gid = std::to_string(nobody->pw_gid);
  EXPECT_THAT(status, HasSubstr("Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid + "\n"));
  EXPECT_THAT(status, HasSubstr("Gid:\t" + gid + "\t" + gid + "\t" + gid + "\t" + gid + "\n"));
  EXPECT_TRUE(std::regex_search(status, std::regex("\nGroups:\\s*\n"))) << status;
  EXPECT_THAT(status, HasSubstr("CapEff:\t0000000000000000"));
  EXPECT_THAT(status, HasSubstr("NoNewPrivs:\t1"));
  EXPECT_EQ(running.stop(), 0);
  EXPECT_THAT(running.err(), HasSubstr("running as nobody"));
}

TEST_F(AgentTest, StartedAsRootWithAnAccountThatDoesNotExistTheAgentRefusesToRun) {
  if (!is_root()) GTEST_SKIP() << "not started as root, the agent runs as it is";
  start();
  const auto state = work_dir() / "agent-x";
  const auto config = write("missing-user.toml", "[agent]\nuser = \"torii-no-such-account\"\nstate_dir = \"" +
                                                     state.string() + "\"\nposture_seconds = 0\n");
  const auto r = run({TORII_AGENT, "run", "--config", config}, std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("the account 'torii-no-such-account' (agent.user) does not exist"));
  EXPECT_THAT(r.err, HasSubstr("useradd --system"));
  EXPECT_FALSE(std::filesystem::exists(state));
}

// IIIT I5, I7, J8: a command an operator sends is checked against the device's profile,
// signed by the gateway, run once by the agent and answered; one sent while the device is
// away reaches it when it is back (before it expires).
TEST_F(AgentTest, ACommandRunsOnceOnTheDeviceAndItsAnswerIsRecordedEvenWhenSentWhileItWasAway) {
  start();
  const auto profile = write("env.json", R"({"metrics": [{"name": "temperature", "type": "number"}],
      "commands": [{"name": "set_interval", "params": [{"name": "seconds", "type": "integer", "min": 1, "max": 86400, "required": true}]},
                   {"name": "set_actuator", "params": [{"name": "on", "type": "boolean", "required": true}]}]})");
  ASSERT_EQ(torii({"admin", "profile", "put", "--id", "env", "--file", profile}).exit_code, 0);
  const auto made = torii({"admin", "device", "create", "--id", "agent-c", "--profile", "env", "--enrolment-token"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string token = made.out;
  while (!token.empty() && token.back() == '\n') token.pop_back();
  token = token.substr(token.rfind('\n') + 1);
  const auto state = (work_dir() / "agent-c").string();
  ASSERT_EQ(
      agent({"enroll", "--server", console_url(), "--ca", ca_file(), "--token", token, "--state-dir", state}).exit_code,
      0);
  EXPECT_TRUE(std::filesystem::exists(work_dir() / "agent-c" / "command-key.pub"));

  auto command = [&](const std::string& name, const std::string& params) {
    return torii({"admin", "device", "command", "--id", "agent-c", "--command", name, "--params", params});
  };
  auto status_of = [&](const std::string& id) {
    const auto listed = torii({"admin", "device", "commands", "--id", "agent-c"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    std::istringstream lines(listed.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      const auto row = json::parse(line);
      if (row["id"] == id)
        return row["status"].get<std::string>() +
               (row.contains("reason") ? " " + row["reason"].get<std::string>() : "");
    }
    return std::string("missing");
  };

  // What the profile does not allow never leaves.
  const auto refused = command("set_interval", R"({"seconds": 0})");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("params.seconds"));
  EXPECT_NE(command("reboot", "{}").exit_code, 0);

  pin_ports();
  const auto config = agent_config(state);
  std::string actuator_id;
  {
    Process running({torii_binary(), "agent", "run", "--config", config});
    ASSERT_TRUE(eventually([&] { return !of_kind(stored("agent-c"), "telemetry").empty(); })) << running.err();
    const auto sent = command("set_actuator", R"({"on": true})");
    ASSERT_EQ(sent.exit_code, 0) << sent.err;
    actuator_id = json::parse(sent.out)["id"].get<std::string>();
    EXPECT_EQ(json::parse(sent.out)["status"], "sent");
    ASSERT_TRUE(eventually([&] { return status_of(actuator_id) == "done"; }))
        << status_of(actuator_id) << (running.stop(), running.err());
    // The actuator is on: the heartbeats say so.
    ASSERT_TRUE(eventually([&] {
      for (const auto& row : of_kind(stored("agent-c"), "state")) {
        const auto beat = json::parse(row["payload"].get<std::string>());
        if (beat.value("type", "") == "heartbeat" && beat.contains("actuator") && beat["actuator"]["on"] == true) {
          return true;
        }
      }
      return false;
    })) << running.err();
    EXPECT_EQ(running.stop(), 0);
  }

  // Sent while the agent is away: it runs when the agent is back.
  const auto later = command("set_interval", R"({"seconds": 2})");
  ASSERT_EQ(later.exit_code, 0) << later.err;
  const auto later_id = json::parse(later.out)["id"].get<std::string>();
  EXPECT_EQ(status_of(later_id), "sent");
  {
    Process running({torii_binary(), "agent", "run", "--config", config});
    ASSERT_TRUE(eventually([&] { return status_of(later_id) == "done"; }))
        << status_of(later_id) << (running.stop(), running.err());
    EXPECT_EQ(running.stop(), 0);
  }
  // Each ran once: the first answer stands, and nothing was answered twice.
  EXPECT_EQ(status_of(actuator_id), "done");
  std::ifstream in(data_dir() / "log" / "security.log");
  int sent_events = 0;
  int answers = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"device.command_sent\"") != std::string::npos) ++sent_events;
    if (line.find("\"device.command_answered\"") != std::string::npos) ++answers;
  }
  EXPECT_EQ(sent_events, 2);
  EXPECT_EQ(answers, 2);
}

// The Decision Trigger end to end: a reading crosses a rule's threshold, one alert
// opens and a signed command reaches the actuator, which runs it and answers; the reading
// returns, the alert resolves and the actuator is switched back. A rule on absence fires when
// the device goes silent.
TEST_F(AgentTest, ARuleOpensOneAlertCommandsTheActuatorAndResolvesWhenTheReadingReturns) {
  start();
  const auto profile = write("env.json", R"({"metrics": [{"name": "temperature", "type": "number"}],
      "commands": [{"name": "set_actuator", "params": [{"name": "on", "type": "boolean", "required": true}]}]})");
  ASSERT_EQ(torii({"admin", "profile", "put", "--id", "env", "--file", profile}).exit_code, 0);
  const auto made = torii({"admin", "device", "create", "--id", "thermo-1", "--profile", "env", "--enrolment-token"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string token = made.out;
  while (!token.empty() && token.back() == '\n') token.pop_back();
  token = token.substr(token.rfind('\n') + 1);
  const auto state = (work_dir() / "thermo-1").string();
  ASSERT_EQ(
      agent({"enroll", "--server", console_url(), "--ca", ca_file(), "--token", token, "--state-dir", state}).exit_code,
      0);

  // The reading, as a sensor file the test sets; replaced whole, never half written.
  const auto reading = work_dir() / "reading";
  auto set_reading = [&](const char* value) {
    std::ofstream(work_dir() / "reading.new") << value << "\n";
    std::filesystem::rename(work_dir() / "reading.new", reading);
  };
  set_reading("20");
  const auto rule = write("hot.json", R"({"name": "too hot", "selector": {"devices": ["thermo-1"]},
      "condition": "temperature > 30", "severity": "critical",
      "actions": [{"type": "alert"},
                  {"type": "command", "device": "thermo-1", "command": "set_actuator", "params": {"on": true}},
                  {"type": "command", "device": "thermo-1", "command": "set_actuator", "params": {"on": false},
                   "on": "clear"}]})");
  const auto created = torii({"admin", "rule", "create", "--file", rule});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const auto rule_id = json::parse(created.out)["id"].get<std::string>();

  auto lines_of = [](const std::string& text) {
    std::vector<json> rows;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) rows.push_back(json::parse(line));
    }
    return rows;
  };
  auto alerts_titled = [&](const std::string& title) {
    const auto r = torii({"admin", "alerts"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> out;
    for (auto& a : lines_of(r.out)) {
      if (a["title"] == title) out.push_back(a);
    }
    return out;
  };
  auto commands = [&] {
    const auto r = torii({"admin", "device", "commands", "--id", "thermo-1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return lines_of(r.out);
  };
  auto done_with = [&](bool on) {
    for (const auto& c : commands()) {
      if (c["command"] == "set_actuator" && c["params"]["on"] == on && c["status"] == "done") return true;
    }
    return false;
  };
  auto security_log = [&] {
    std::ifstream in(data_dir() / "log" / "security.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };

  pin_ports();
  const auto config = write("thermo.toml", "[agent]\nuser = \"nobody\"\nstate_dir = \"" + state +
                                               "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
                                               "\"\nheartbeat_seconds = 1\nposture_seconds = 0\n\n[[sensor]]\nmetric = "
                                               "\"temperature\"\nsource = \"hwmon\"\npath = \"" +
                                               reading.string() + "\"\nscale = 1\ninterval_seconds = 0.2\n");
  Process running({torii_binary(), "agent", "run", "--config", config});
  ASSERT_TRUE(eventually([&] { return of_kind(stored("thermo-1"), "telemetry").size() >= 3; })) << running.err();
  EXPECT_TRUE(alerts_titled("too hot").empty());

  set_reading("35");
  ASSERT_TRUE(eventually([&] { return alerts_titled("too hot").size() == 1; })) << (running.stop(), running.err());
  ASSERT_TRUE(eventually([&] { return done_with(true); })) << (running.stop(), running.err());
  // The actuator is on: the device's heartbeats say so.
  ASSERT_TRUE(eventually([&] {
    for (const auto& row : of_kind(stored("thermo-1"), "state")) {
      const auto beat = json::parse(row["payload"].get<std::string>());
      if (beat.value("type", "") == "heartbeat" && beat.contains("actuator") && beat["actuator"]["on"] == true) {
        return true;
      }
    }
    return false;
  })) << running.err();
  // Readings stay above the threshold: still one alert, one command.
  const auto readings = of_kind(stored("thermo-1"), "telemetry").size();
  ASSERT_TRUE(eventually([&] { return of_kind(stored("thermo-1"), "telemetry").size() >= readings + 5; }));
  auto open = alerts_titled("too hot");
  ASSERT_EQ(open.size(), 1U);
  EXPECT_EQ(open[0]["status"], "open");
  EXPECT_EQ(open[0]["severity"], "critical");
  EXPECT_EQ(open[0]["device"], "thermo-1");
  EXPECT_EQ(commands().size(), 1U);

  set_reading("20");
  ASSERT_TRUE(eventually([&] {
    const auto a = alerts_titled("too hot");
    return a.size() == 1 && a[0]["status"] == "resolved";
  })) << (running.stop(), running.err());
  ASSERT_TRUE(eventually([&] { return done_with(false); })) << (running.stop(), running.err());
  const auto sent = commands();
  ASSERT_EQ(sent.size(), 2U);
  for (const auto& c : sent) EXPECT_EQ(c["issued_by"], "rule:" + rule_id);
  // The firing's events are written by the security log's own thread.
  ASSERT_TRUE(eventually([&] {
    const auto log = security_log();
    return log.find("\"rule.fired\"") != std::string::npos && log.find("\"rule.cleared\"") != std::string::npos;
  }));
  EXPECT_NE(security_log().find("\"actor\":\"rule:" + rule_id + "\""), std::string::npos);

  // A device that goes silent.
  const auto silent = write("silent.json", R"j({"name": "silent", "selector": {"devices": ["thermo-1"]},
      "condition": "absent(5s)", "actions": [{"type": "alert"}]})j");
  ASSERT_EQ(torii({"admin", "rule", "create", "--file", silent}).exit_code, 0);
  running.kill();
  ASSERT_TRUE(eventually([&] {
    const auto a = alerts_titled("silent");
    return a.size() == 1 && a[0]["status"] == "open";
  }));
}

// JPCERT VIII-2, I-10: an alert leaves torii through the organisation's channels: a webhook
// over HTTPS to a receiver that checks the signature with the channel's secret, and an e-mail
// through the server's SMTP settings to a real SMTP server. The alert comes from a rule on a
// device that never sends anything (absence).
TEST_F(AgentTest, AnAlertReachesASignedWebhookAndAnEMailThroughTheOrganisationsChannels) {
  // Where the server, running as nobody when started as root, can read them.
  const auto mail_dir = work_dir() / "mail";
  std::filesystem::create_directory(mail_dir);
  ::chmod(mail_dir.c_str(), 0711);
  const auto certificates = make_sink_certificates(mail_dir);
  SmtpSink sink(SinkOptions{certificates, ""});
  ASSERT_NE(sink.port(), 0);
  config_text += "[mail]\nhost = \"127.0.0.1\"\nport = " + std::to_string(sink.port()) +
                 "\nfrom = \"torii@example.org\"\nca_file = \"" + certificates.ca.string() +
                 "\"\ntimeout_seconds = 10\n[notifications]\nallow_local_destinations = true\n";
  start();

  const std::string secret = "receiver-shared-secret-" + std::to_string(::getpid()) + "-0123456789abcdef";
  const auto received = work_dir() / "webhook.jsonl";
  Process receiver({"/usr/bin/python3", WEBHOOK_RECEIVER, certificates.cert.string(), certificates.key.string(), secret,
                    received.string()});
  // Its first line, whole: "PORT <n>".
  ASSERT_TRUE(receiver.wait_for_output("\n", std::chrono::seconds(20))) << receiver.err();
  const auto out = receiver.out();
  const std::string port = out.substr(out.find("PORT ") + 5, out.find('\n', out.find("PORT ")) - out.find("PORT ") - 5);
  std::ifstream ca_in(certificates.ca);
  const std::string ca_pem{std::istreambuf_iterator<char>(ca_in), {}};

  const auto hook = write("hook.json", json{{"name", "ops hook"},
                                            {"type", "webhook"},
                                            {"url", "https://127.0.0.1:" + port + "/torii"},
                                            {"secret", secret},
                                            {"ca", ca_pem}}
                                           .dump());
  const auto made_hook =
      torii({"admin", "channel", "create", "--id", "ops-hook", "--file", hook, "--min-severity", "warning"});
  ASSERT_EQ(made_hook.exit_code, 0) << made_hook.err;
  EXPECT_EQ(made_hook.out.find(secret), std::string::npos) << "a secret given is not shown back";
  const auto mail = write("mail.json", R"({"name": "on call", "type": "email", "to": ["oncall@example.org"]})");
  const auto made_mail =
      torii({"admin", "channel", "create", "--id", "on-call", "--file", mail, "--min-severity", "critical"});
  ASSERT_EQ(made_mail.exit_code, 0) << made_mail.err;

  ASSERT_EQ(torii({"admin", "device", "create", "--id", "quiet-1", "--enrolment-token"}).exit_code, 0);
  const auto rule = write("quiet.json", R"j({"name": "quiet device", "selector": {"devices": ["quiet-1"]},
      "condition": "absent(2s)", "severity": "critical", "actions": [{"type": "alert"}]})j");
  ASSERT_EQ(torii({"admin", "rule", "create", "--file", rule}).exit_code, 0);

  auto deliveries = [&] {
    std::vector<json> rows;
    std::ifstream in(received);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) rows.push_back(json::parse(line));
    }
    return rows;
  };
  ASSERT_TRUE(eventually([&] { return !deliveries().empty(); })) << receiver.err();
  const auto first = deliveries().front();
  EXPECT_EQ(first["valid"], true) << first.dump();
  const auto notice = json::parse(first["body"].get<std::string>());
  EXPECT_EQ(notice["event"], "alert.opened");
  EXPECT_EQ(notice["alert"]["title"], "quiet device");
  EXPECT_EQ(notice["alert"]["device_id"], "quiet-1");
  EXPECT_EQ(first["body"].get<std::string>().find(secret), std::string::npos);

  const auto message = sink.message(1, std::chrono::seconds(60));
  ASSERT_TRUE(message);
  const auto email = json::parse(*message);
  EXPECT_EQ(email["rcpt_tos"], json::array({"oncall@example.org"}));
  EXPECT_NE(email["data"].get<std::string>().find("quiet device"), std::string::npos);
  EXPECT_EQ(email["tls"], true);
}

}  // namespace
}  // namespace torii::testing

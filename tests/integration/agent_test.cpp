// `torii agent` against a real `torii server`: enrolment with a one-time token, delivery
// through the durable outbox across a server outage, heartbeats, and a fleet simulated in
// one process by `torii-agent`, the agent's own binary.
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

#include "server_fixture.h"

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

  RunResult agent(std::vector<std::string> args) {
    std::vector<std::string> argv{torii_binary(), "agent"};
    argv.insert(argv.end(), args.begin(), args.end());
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

  // Polls until `done` holds or the bound passes (a wait for an event, not a timing check).
  template <class Done>
  bool eventually(Done done, std::chrono::seconds bound = std::chrono::seconds(60)) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < until) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return done();
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

  std::string agent_config(const std::string& state_dir) {
    return write("agent.toml",
                 "[agent]\nstate_dir = \"" + state_dir + "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
                     "\"\nserver = \"" + console_url() +
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

TEST_F(AgentTest, ASimulatedFleetOnTheLeanAgentBinaryEnrolsEachDeviceWithItsOwnKeyAndPublishes) {
  start();
  std::string tokens;
  for (int i = 1; i <= 3; ++i) tokens += new_device("sim-" + std::to_string(i)) + "\n";
  const auto ca = ca_file();
  const auto dir = (work_dir() / "fleet").string();
  // torii-agent: the agent alone, as a device would install it.
  Process fleet({TORII_AGENT, "simulate", "--count", "3", "--dir", dir, "--gateway",
                 "127.0.0.1:" + std::to_string(gateway_port), "--interval", "0.5", "--tokens", write("tokens", tokens),
                 "--server", console_url(), "--ca", ca});
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
  const auto config = write(
      "stuck.toml", "[agent]\nstate_dir = \"" + state + "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
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
  const auto config = write(
      "tamper.toml", "[agent]\nstate_dir = \"" + state + "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
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
  const auto config = write(
      "posture.toml", "[agent]\nstate_dir = \"" + state + "\"\ngateway = \"127.0.0.1:" + std::to_string(gateway_port) +
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

}  // namespace
}  // namespace torii::testing

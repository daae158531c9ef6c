#include "agent/agent_config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::agent {
namespace {

using config::Problem;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;

auto problem_at(const std::string& key, const std::string& text) {
  return AllOf(Field(&Problem::key, key), Field(&Problem::message, HasSubstr(text)));
}
auto any_problem_at(const std::string& key) { return Field(&Problem::key, key); }

TEST(AgentConfig, EmptyFileMeansTheDefaults) {
  const auto r = parse_agent_config("");
  ASSERT_TRUE(r.ok()) << config::format_problems(r.problems);
  EXPECT_EQ(r.config, AgentConfig{});
  EXPECT_EQ(r.config.gateway.to_string(), "127.0.0.1:8883");
  EXPECT_EQ(r.config.server, "https://127.0.0.1:8443");
  EXPECT_EQ(r.config.heartbeat_seconds, 60u);
  EXPECT_EQ(r.config.outbox_max_messages, 100'000u);
  EXPECT_EQ(r.config.posture_seconds, 3600u);
  EXPECT_EQ(r.config.posture_root, "/");
  EXPECT_EQ(r.config.user, "torii-agent");
  EXPECT_TRUE(r.config.sensors.empty());
}

TEST(AgentConfig, TheAccountIsASystemUserNameAndNeverRoot) {
  EXPECT_EQ(parse_agent_config("[agent]\nuser = \"sensor_svc\"\n").config.user, "sensor_svc");
  EXPECT_THAT(parse_agent_config("[agent]\nuser = \"root\"\n").problems,
              ElementsAre(problem_at("agent.user", "must not be root")));
  EXPECT_THAT(parse_agent_config("[agent]\nuser = \"Agent User\"\n").problems,
              ElementsAre(problem_at("agent.user", "system user name")));
  EXPECT_THAT(parse_agent_config("[agent]\nuser = 1000\n").problems,
              ElementsAre(problem_at("agent.user", "must be a string")));
}

TEST(AgentConfig, PostureReportsAreOffOrAtMostOnceAMinute) {
  EXPECT_TRUE(parse_agent_config("[agent]\nposture_seconds = 0\n").ok());
  EXPECT_TRUE(parse_agent_config("[agent]\nposture_seconds = 60\nposture_root = \"/srv/host\"\n").ok());
  const auto r = parse_agent_config("[agent]\nposture_seconds = 30\nposture_root = \"relative\"\n");
  EXPECT_THAT(r.problems, Contains(problem_at("agent.posture_seconds", "between 60 and 86400")));
  EXPECT_THAT(r.problems, Contains(problem_at("agent.posture_root", "absolute")));
}

TEST(AgentConfig, PrintedDefaultParsesToTheDefaultWithFourSimulatedSensorsAndNamesEveryKey) {
  const std::string text = default_agent_config_text();
  const auto r = parse_agent_config(text);
  ASSERT_TRUE(r.ok()) << config::format_problems(r.problems);
  EXPECT_EQ(r.config, default_agent_config(4));
  for (const auto& key : known_agent_keys()) {
    const auto name = key.substr(key.find('.') + 1);
    EXPECT_TRUE(text.find("\n" + name + " = ") != std::string::npos ||
                text.find("\n# " + name + " = ") != std::string::npos)
        << key;
  }
}

TEST(AgentConfig, EveryKeyIsDocumented) {
  const char* source_dir = std::getenv("TORII_SOURCE_DIR");  // NOLINT(concurrency-mt-unsafe): one thread
  ASSERT_NE(source_dir, nullptr);
  std::ifstream in(std::string(source_dir) + "/docs/agent.md");
  ASSERT_TRUE(in) << "docs/agent.md is missing";
  std::ostringstream doc;
  doc << in.rdbuf();
  EXPECT_EQ(known_agent_keys().size(), 22u);
  for (const auto& key : known_agent_keys()) EXPECT_THAT(doc.str(), HasSubstr("`" + key + "`")) << key;
}

TEST(AgentConfig, RenewAtIsAFractionOfTheLifetime) {
  EXPECT_DOUBLE_EQ(parse_agent_config("").config.renew_at, 2.0 / 3.0);
  const auto zero = parse_agent_config("[agent]\nrenew_at = 0\n");
  ASSERT_TRUE(zero.ok()) << config::format_problems(zero.problems);
  EXPECT_DOUBLE_EQ(zero.config.renew_at, 0.0);
  const auto half = parse_agent_config("[agent]\nrenew_at = 0.5\n");
  ASSERT_TRUE(half.ok()) << config::format_problems(half.problems);
  EXPECT_DOUBLE_EQ(half.config.renew_at, 0.5);
  for (const char* bad : {"[agent]\nrenew_at = 0.96\n", "[agent]\nrenew_at = -0.1\n", "[agent]\nrenew_at = 1\n",
                          "[agent]\nrenew_at = \"soon\"\n"}) {
    const auto r = parse_agent_config(bad);
    ASSERT_EQ(r.problems.size(), 1u) << bad;
    EXPECT_EQ(r.problems[0].key, "agent.renew_at") << bad;
  }
}

TEST(AgentConfig, ReadsEverySource) {
  const auto r = parse_agent_config(R"(
[agent]
state_dir = "/srv/agent"
gateway = "gateway.example:18883"
server = "https://torii.example:8443"
heartbeat_seconds = 30
outbox_max_messages = 5000

[[sensor]]
metric = "room"
source = "simulated"
interval_seconds = 0.1
min = -40
max = 125.5
signal = "humidity"
fault = "drift"
fault_after_seconds = 90.5

[[sensor]]
metric = "board"
source = "hwmon"
interval_seconds = 30
path = "/sys/class/hwmon/hwmon0/temp1_input"

[[sensor]]
metric = "zone"
source = "thermal"
path = "/sys/class/thermal/thermal_zone0/temp"
scale = 0.01

[[sensor]]
metric = "soc"
source = "command"
interval_seconds = 60
command = ["/usr/bin/vcgencmd", "measure_temp"]
timeout_seconds = 2.5
)");
  ASSERT_TRUE(r.ok()) << config::format_problems(r.problems);
  const AgentConfig& c = r.config;
  EXPECT_EQ(c.state_dir, "/srv/agent");
  EXPECT_EQ(c.gateway, (GatewayAddress{"gateway.example", 18883}));
  EXPECT_EQ(c.server, "https://torii.example:8443");
  EXPECT_EQ(c.heartbeat_seconds, 30u);
  EXPECT_EQ(c.outbox_max_messages, 5000u);
  ASSERT_EQ(c.sensors.size(), 4u);

  const SensorConfig& room = c.sensors[0];
  EXPECT_EQ(room.metric, "room");
  EXPECT_EQ(room.source, SensorSource::simulated);
  EXPECT_EQ(room.interval, std::chrono::milliseconds(100));
  EXPECT_EQ(room.min, -40.0);
  EXPECT_EQ(room.max, 125.5);
  EXPECT_EQ(room.signal, Signal::humidity);
  EXPECT_EQ(room.fault, Fault::drift);
  EXPECT_EQ(room.fault_after, std::chrono::milliseconds(90'500));

  EXPECT_EQ(c.sensors[1].source, SensorSource::hwmon);
  EXPECT_EQ(c.sensors[1].path, "/sys/class/hwmon/hwmon0/temp1_input");
  EXPECT_EQ(c.sensors[1].scale, 0.001);
  EXPECT_FALSE(c.sensors[1].min.has_value());
  EXPECT_EQ(c.sensors[2].source, SensorSource::thermal);
  EXPECT_EQ(c.sensors[2].scale, 0.01);
  EXPECT_EQ(c.sensors[2].interval, std::chrono::seconds(5));

  EXPECT_EQ(c.sensors[3].source, SensorSource::command);
  EXPECT_THAT(c.sensors[3].command, ElementsAre("/usr/bin/vcgencmd", "measure_temp"));
  EXPECT_EQ(c.sensors[3].timeout, std::chrono::milliseconds(2500));
}

TEST(AgentConfig, ReportsEveryProblemWithItsKeyPath) {
  const auto r = parse_agent_config(R"(
[agent]
state_dir = "relative/dir"
gateway = "gateway.example"
server = "http://torii.example"
heartbeat_seconds = 0
outbox_max_messages = 10000001
colour = "blue"

[extra]

[[sensor]]
metric = "Bad-Name"
interval_seconds = 0.05

[[sensor]]
metric = "temp"
source = "gpio"

[[sensor]]
metric = "temp"
interval_seconds = "fast"

[[sensor]]
metric = "board"
source = "hwmon"
fault = "stuck"

[[sensor]]
metric = "soc"
source = "command"
command = ["vcgencmd", "measure_temp"]
timeout_seconds = 301

[[sensor]]
metric = "sim"
path = "/sys/class/hwmon/hwmon0/temp1_input"
min = 10
max = 5

[[sensor]]
metric = "door"
signal = "door"
min = 0
fault = "drift"

[[sensor]]
metric = "nobounds"
fault = "out_of_range"

[[sensor]]
metric = "ts"
signal = "weather"

[[sensor]]
source = "simulated"
)");
  ASSERT_FALSE(r.ok());
  const auto& p = r.problems;
  EXPECT_THAT(p, Contains(problem_at("agent.state_dir", "absolute")));
  EXPECT_THAT(p, Contains(problem_at("agent.gateway", "gateway.example:8883")));
  EXPECT_THAT(p, Contains(problem_at("agent.server", "https://")));
  EXPECT_THAT(p, Contains(problem_at("agent.heartbeat_seconds", "between 1 and 86400")));
  EXPECT_THAT(p, Contains(problem_at("agent.outbox_max_messages", "between 1 and 10000000")));
  EXPECT_THAT(p, Contains(problem_at("agent.colour", "unknown key")));
  EXPECT_THAT(p, Contains(problem_at("extra", "unknown section")));
  EXPECT_THAT(p, Contains(problem_at("sensor[0].metric", "a-z, 0-9 and _")));
  EXPECT_THAT(p, Contains(problem_at("sensor[0].interval_seconds", "between 0.1 and 86400")));
  EXPECT_THAT(p, Contains(problem_at("sensor[1].source", "must be one of simulated, hwmon, thermal, command")));
  EXPECT_THAT(p, Contains(problem_at("sensor[2].metric", "already used")));
  EXPECT_THAT(p, Contains(problem_at("sensor[2].interval_seconds", "must be a number")));
  EXPECT_THAT(p, Contains(problem_at("sensor[3].path", "is required")));
  EXPECT_THAT(p, Contains(problem_at("sensor[3].fault", "applies only to simulated sensors")));
  EXPECT_THAT(p, Contains(problem_at("sensor[4].command", "absolute path")));
  EXPECT_THAT(p, Contains(problem_at("sensor[4].timeout_seconds", "between 0.1 and 300")));
  EXPECT_THAT(p, Contains(problem_at("sensor[5].path", "applies only to hwmon and thermal sensors")));
  EXPECT_THAT(p, Contains(problem_at("sensor[5].max", "greater than min")));
  EXPECT_THAT(p, Contains(problem_at("sensor[6].min", "numeric sensors")));
  EXPECT_THAT(p, Contains(problem_at("sensor[6].fault", "boolean")));
  EXPECT_THAT(p, Contains(problem_at("sensor[7].fault", "needs min or max")));
  EXPECT_THAT(p, Contains(problem_at("sensor[8].metric", "reserved")));
  EXPECT_THAT(p, Contains(problem_at("sensor[8].signal", "temperature, humidity, power, door, tamper")));
  EXPECT_THAT(p, Contains(problem_at("sensor[9].metric", "is required")));
  // Problems are reported where they are, and nowhere else.
  EXPECT_THAT(p, Not(Contains(any_problem_at("sensor[1].metric"))));
  EXPECT_THAT(p, Not(Contains(any_problem_at("sensor[7].metric"))));
}

TEST(AgentConfig, TamperInputs) {
  const auto r = parse_agent_config(R"([[sensor]]
metric = "tamper"
signal = "tamper"

[[sensor]]
metric = "lid"
source = "hwmon"
path = "/sys/class/gpio/gpio17/value"
scale = 1
tamper = true

[[sensor]]
metric = "door_open"
signal = "door"

[[sensor]]
metric = "quiet_switch"
signal = "tamper"
tamper = false
)");
  ASSERT_TRUE(r.ok()) << r.problems.front().key << ": " << r.problems.front().message;
  ASSERT_EQ(r.config.sensors.size(), 4u);
  EXPECT_TRUE(r.config.sensors[0].tamper);  // the simulated switch is one by default
  EXPECT_EQ(r.config.sensors[0].signal, Signal::tamper);
  EXPECT_TRUE(r.config.sensors[1].tamper);
  EXPECT_FALSE(r.config.sensors[2].tamper);  // a door is not, unless it says so
  EXPECT_FALSE(r.config.sensors[3].tamper);

  const auto bad = parse_agent_config(R"([[sensor]]
metric = "lid"
tamper = "yes"

[[sensor]]
metric = "switch"
signal = "tamper"
max = 1
fault = "drift"
)");
  EXPECT_THAT(bad.problems, Contains(problem_at("sensor[0].tamper", "true or false")));
  EXPECT_THAT(bad.problems, Contains(problem_at("sensor[1].max", "signal \"tamper\" is a boolean")));
  EXPECT_THAT(bad.problems, Contains(problem_at("sensor[1].fault", "a tamper (a boolean)")));
}

TEST(AgentConfig, ReportsTomlSyntaxErrorsWithTheirLine) {
  const auto r = parse_agent_config("[agent]\ngateway = \n");
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_THAT(r.problems[0].message, HasSubstr("line 2"));
}

TEST(AgentConfig, SensorMustBeAnArrayOfTables) {
  const auto r = parse_agent_config("[sensor]\nmetric = \"x\"\n");
  EXPECT_THAT(r.problems, Contains(problem_at("sensor", "[[sensor]]")));
}

TEST(AgentConfig, DefaultConfigCyclesTheFourSignalsWithUniqueMetrics) {
  const AgentConfig c = default_agent_config(6);
  ASSERT_EQ(c.sensors.size(), 6u);
  std::vector<std::string> metrics;
  std::vector<Signal> signals;
  for (const auto& s : c.sensors) {
    EXPECT_EQ(s.source, SensorSource::simulated);
    EXPECT_EQ(s.fault, Fault::none);
    metrics.push_back(s.metric);
    signals.push_back(s.signal);
  }
  EXPECT_THAT(metrics, ElementsAre("temperature", "humidity", "power", "door_open", "temperature_2", "humidity_2"));
  EXPECT_THAT(signals, ElementsAre(Signal::temperature, Signal::humidity, Signal::power, Signal::door,
                                   Signal::temperature, Signal::humidity));
  EXPECT_FALSE(c.sensors[3].min.has_value());  // a door has no range
  EXPECT_TRUE(default_agent_config(0).sensors.empty());
}

TEST(AgentConfig, GatewayAddresses) {
  EXPECT_EQ(parse_gateway_address("gateway.example:8883"), (GatewayAddress{"gateway.example", 8883}));
  EXPECT_EQ(parse_gateway_address("192.0.2.7:1"), (GatewayAddress{"192.0.2.7", 1}));
  const auto v6 = parse_gateway_address("[2001:db8::1]:8883");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(v6->to_string(), "[2001:db8::1]:8883");
  for (const char* bad : {"gateway.example", "gateway.example:0", "gateway.example:65536", "2001:db8::1:8883",
                          "[gateway.example]:8883", "bad_host!:8883", ":8883", "host:88x3"}) {
    EXPECT_FALSE(parse_gateway_address(bad).has_value()) << bad;
  }
}

TEST(AgentConfig, ServerMustBeHttps) {
  for (const char* good :
       {"https://torii.example", "https://torii.example:8443", "https://[::1]:8443/", "https://192.0.2.1"}) {
    const auto r = parse_agent_config(std::string("[agent]\nserver = \"") + good + "\"\n");
    EXPECT_TRUE(r.ok()) << good << config::format_problems(r.problems);
  }
  for (const char* bad : {"http://torii.example", "https://", "https://user@torii.example", "https://torii example",
                          "ftp://torii.example", "https://torii.example:0", "https://192.0.2.1/console"}) {
    const auto r = parse_agent_config(std::string("[agent]\nserver = \"") + bad + "\"\n");
    EXPECT_THAT(r.problems, Contains(any_problem_at("agent.server"))) << bad;
  }
}

TEST(AgentConfig, LoadsAFileAndReportsAMissingOne) {
  const auto missing = load_agent_config_file("/nonexistent/torii-agent.toml");
  ASSERT_EQ(missing.problems.size(), 1u);
  EXPECT_THAT(missing.problems[0].message, HasSubstr("/nonexistent/torii-agent.toml"));
}

}  // namespace
}  // namespace torii::agent

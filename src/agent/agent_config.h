// The device agent's configuration (`torii agent`): one TOML file with an [agent] table and
// one [[sensor]] table per metric.
//
// Pure: parse_agent_config() takes text and returns an AgentConfig or every problem found,
// each with its key path ("sensor[2].interval_seconds"). load_agent_config_file() is the thin
// I/O wrapper. Key reference: docs/agent.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/renewal.h"
#include "config/config.h"

namespace torii::agent {

enum class SensorSource { simulated, hwmon, thermal, command };
// What a simulated sensor imitates: °C, % relative humidity, W, a door (open: true), or a
// tamper switch (tripped: true).
enum class Signal { temperature, humidity, power, door, tamper };
enum class Fault { none, stuck, drift, out_of_range, read_failure };

[[nodiscard]] std::string_view to_string(SensorSource source);
[[nodiscard]] std::string_view to_string(Signal signal);
[[nodiscard]] std::string_view to_string(Fault fault);

struct SensorConfig {
  std::string metric;  // [a-z0-9_]{1,64}, unique within the file
  SensorSource source = SensorSource::simulated;
  std::chrono::milliseconds interval{5000};  // interval_seconds, 0.1 .. 86400
  // The expected range; a reading outside it is an out-of-range event. Numeric sensors only.
  std::optional<double> min;
  std::optional<double> max;
  // A tamper input (JPCERT IV-1, VIII-1): a reading of true, or a number other than 0, means
  // the enclosure is open. Default: true for the simulated signal "tamper", false otherwise.
  bool tamper = false;

  // simulated
  Signal signal = Signal::temperature;
  Fault fault = Fault::none;
  std::chrono::milliseconds fault_after{0};  // after the sensor's start

  // hwmon, thermal: a file holding one number (millidegrees for tempN_input and
  // thermal_zoneN/temp), multiplied by scale.
  std::filesystem::path path;
  double scale = 0.001;

  // command: argv, run without a shell; argv[0] is an absolute path.
  std::vector<std::string> command;
  std::chrono::milliseconds timeout{5000};  // timeout_seconds, 0.1 .. 300

  friend bool operator==(const SensorConfig&, const SensorConfig&) = default;
};

// host:port of the gateway; the host is a DNS name or an IP address (IPv6 in brackets in
// the file: "[::1]:8883").
struct GatewayAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8883;
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const GatewayAddress&, const GatewayAddress&) = default;
};

struct AgentConfig {
  // The device key, certificate, CA bundle and outbox live here.
  std::filesystem::path state_dir = "/var/lib/torii-agent";
  // Started as root, the agent runs as this account (JPCERT I-5); never root.
  std::string user = "torii-agent";
  GatewayAddress gateway;
  std::string server = "https://127.0.0.1:8443";  // the console, for enrolment
  std::uint32_t heartbeat_seconds = 60;
  std::uint32_t outbox_max_messages = 100'000;
  std::uint32_t posture_seconds = 3600;  // 0: no posture report
  std::filesystem::path posture_root = "/";
  // The fraction of the certificate's lifetime after which it is renewed (renewal.h).
  double renew_at = kDefaultRenewAt;
  std::vector<SensorConfig> sensors;
  friend bool operator==(const AgentConfig&, const AgentConfig&) = default;
};

// Either a valid AgentConfig or every problem found (never just the first).
struct AgentParseResult {
  AgentConfig config;
  std::vector<config::Problem> problems;
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

[[nodiscard]] AgentParseResult parse_agent_config(std::string_view toml_text);
[[nodiscard]] AgentParseResult load_agent_config_file(const std::filesystem::path& path);

// The built-in configuration with `simulated_sensors` simulated sensors (`torii agent
// simulate`): temperature, humidity, power and door in turn; past four the metric names
// take a suffix ("temperature_2").
[[nodiscard]] AgentConfig default_agent_config(std::size_t simulated_sensors);

// default_agent_config(4) as a commented TOML file, with commented-out examples of the
// other sources (`torii agent --print-default-config`).
[[nodiscard]] std::string default_agent_config_text();

// Every key path the file may contain: "agent.gateway", "sensor.metric" (for docs and tests).
[[nodiscard]] const std::vector<std::string>& known_agent_keys();

// The console's address, from agent.server.
struct ServerUrl {
  std::string host;
  std::uint16_t port = 443;
};

// https://host[:port][/] only: no other scheme, no path, no user information, no query.
[[nodiscard]] Result<ServerUrl> parse_server_url(std::string_view url);

// Parses "host:port" or "[v6]:port"; port 1-65535.
[[nodiscard]] Result<GatewayAddress> parse_gateway_address(std::string_view text);

}  // namespace torii::agent

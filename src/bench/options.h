// What `torii bench` is asked to do, and the validation of it (pure: no I/O).
//
// apps/torii parses the command line into BenchOptions; validate() reports every problem at
// once (each naming its option) and fills in the defaults that depend on other options, so
// the runner only ever sees a consistent request.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace torii::bench {

enum class Mode { publish, idle, subscribe };
[[nodiscard]] const char* to_string(Mode mode);

enum class TimestampUnit { us, ns };

// Grouped by topic for the reader; one instance per run, so its padding does not matter.
struct BenchOptions {  // NOLINT(clang-analyzer-optin.performance.Padding)
  // Target and transport. TLS is always on unless insecure_plaintext is asked for.
  std::string host = "127.0.0.1";
  std::uint16_t port = 8883;
  std::string tls_server_name;  // name verified in the server certificate; empty: host
  std::string cafile;
  std::string cert;  // one client identity for every connection ...
  std::string key;
  std::string cert_dir;  // ... or <cert_dir>/<device>.crt and .key per connection
  bool insecure_plaintext = false;

  // Connections.
  std::string device_prefix = "bench-";
  std::uint32_t devices = 0;  // 0: as many as connections; connection i is device i % devices
  std::uint32_t connections = 10;
  std::uint32_t threads = 0;  // 0: one per core
  double connect_rate = 500;  // new connections per second, over all threads
  double connect_timeout_s = 30;
  std::string source_addresses;  // "127.0.0.1,127.0.0.2": bound round-robin
  std::uint16_t keep_alive_s = 60;

  // Messages.
  std::string mqtt_version = "5";  // "311" (also "3.1.1", "4") or "5" (also "5.0")
  int qos = 1;
  std::string topic = "devices/{device}/telemetry";
  std::string payload;  // empty: kDefaultPayload, or kDefaultTimestampedPayload with --subscribe
  double rate = 0;      // messages per second over all connections; 0: as fast as possible
  std::uint32_t inflight = 16;
  double duration_s = 0;    // 0 and no count: kDefaultDurationSeconds
  std::uint64_t count = 0;  // per connection; 0: no limit
  double warmup_s = 0;
  double drain_timeout_s = 10;
  TimestampUnit ts_unit = TimestampUnit::us;
  std::string ts_unit_text = "us";

  // Modes.
  bool idle = false;
  bool subscribe = false;
  std::string sub_topic;  // empty: the --topic template, one filter per publishing device
  int sub_qos = 0;        // the subscription's QoS: 0 keeps the broker's flow control towards
                          // the one subscriber (e.g. Mosquitto's 20 in flight) out of the latency
  std::string sub_cert;
  std::string sub_key;
  std::string sub_client_id;  // empty: <device_prefix>sub

  // Reporting.
  int server_pid = 0;  // >0: sample this process's RSS and CPU time
  bool quiet = false;  // no progress lines

  // Filled by validate().
  Mode mode = Mode::publish;
  bool v5 = true;
  std::vector<std::string> source_list;
};

inline constexpr const char* kDefaultPayload = R"({"id":"{device}-{seq}","temperature":21.5})";
inline constexpr const char* kDefaultTimestampedPayload = R"({"id":"{device}-{seq}","sent":{ts},"temperature":21.5})";
inline constexpr double kDefaultDurationSeconds = 10;

// Every problem, each as "--option: what is wrong"; empty when the options are usable.
// Normalises in place: mode, v5, source_list, devices, payload, duration, sub_client_id.
[[nodiscard]] std::vector<std::string> validate(BenchOptions& options);

// The device of connection i: <prefix><i % devices>. It names the connection's identity
// (--cert-dir/<device>.crt) and fills {device}.
[[nodiscard]] std::string device_name(const BenchOptions& options, std::uint64_t connection_index);
// The MQTT client id of connection i: <prefix><i>, distinct per connection even when devices
// are fewer than connections (a broker that keys sessions by client id keeps them all; torii
// keys them by the certificate's device and allows one connection per device).
[[nodiscard]] std::string client_id(const BenchOptions& options, std::uint64_t connection_index);

}  // namespace torii::bench

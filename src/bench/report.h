// The outcome of a `torii bench` run and its one-line JSON form (pure).
//
// Counts are over the whole run (warm-up and drain included) so that they can be compared
// with what the broker stored; rates are over the measurement window only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "bench/latency_histogram.h"
#include "bench/options.h"

namespace torii::bench {

struct ServerSample {
  int pid = 0;
  std::optional<std::uint64_t> rss_kb_before;  // before the first connection
  std::optional<std::uint64_t> rss_kb_after;   // at the end of the window, connections still open
  std::optional<double> cpu_s;                 // user + system CPU time during the window
};

// Grouped by topic for the reader; one instance per run, so its padding does not matter.
struct BenchResult {  // NOLINT(clang-analyzer-optin.performance.Padding)
  Mode mode = Mode::publish;
  std::string host;
  std::uint16_t port = 0;
  bool tls = true;
  std::string tls_version;  // of the first connection that completed a handshake
  std::string cipher;
  bool v5 = true;
  int qos = 1;
  std::uint32_t threads = 0;
  double rate_target = 0;
  std::size_t payload_bytes = 0;  // of the first message of connection 0

  std::uint32_t connections = 0;       // asked for
  std::uint64_t connected = 0;         // completed CONNACK success
  std::uint64_t connect_failures = 0;  // TCP, TLS, CONNACK refusal or timeout
  std::uint64_t connack_refused = 0;   // of which: the broker answered CONNACK with an error
  std::uint64_t open_at_end = 0;       // still connected when the window closed
  double connect_s = 0;                // from the first attempt until every attempt settled

  std::uint64_t sent = 0;
  std::uint64_t acked = 0;    // PUBACK with a success reason code (QoS 1)
  std::uint64_t refused = 0;  // PUBACK with an MQTT 5 error reason code (quota exceeded, ...)
  std::map<std::string, std::uint64_t> refused_by_reason;
  std::uint64_t errors = 0;              // connections lost, protocol errors, write failures after CONNACK
  std::uint64_t server_disconnects = 0;  // of which: DISCONNECT packets from the broker
  std::uint64_t received = 0;            // --subscribe: messages the subscriber got
  std::uint64_t unparsed = 0;            // --subscribe: received without a readable {ts}

  double warmup_s = 0;
  double duration_s = 0;              // the measurement window
  std::uint64_t window_messages = 0;  // QoS 1: acknowledged in the window; QoS 0: sent in it
  double msgs_per_s = 0;
  double drain_s = 0;   // after the window: waiting for acknowledgements / PINGRESP
  bool drained = true;  // every connection confirmed before the drain timeout

  std::optional<LatencySummary> ack_latency;  // QoS 1: PUBLISH written -> PUBACK read
  std::optional<LatencySummary> latency;      // --subscribe: {ts} -> delivery to the subscriber

  std::optional<ServerSample> server;
  double bench_cpu_s = 0;  // this process, during the window
  bool interrupted = false;
  std::string first_error;  // the first failure seen, for diagnosis
  std::string error;        // set when the run could not be carried out
};

// One line of JSON, without a trailing newline.
[[nodiscard]] std::string to_json_line(const BenchResult& result);

}  // namespace torii::bench

#include "bench/report.h"

#include <cmath>

#include <nlohmann/json.hpp>

namespace torii::bench {
namespace {

// Rounded for reading; the figures are not more precise than that.
double round_to(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

nlohmann::ordered_json latency_json(const LatencySummary& s) {
  return {{"count", s.count},
          {"mean", round_to(s.mean_us, 1)},
          {"p50", round_to(s.p50_us, 1)},
          {"p90", round_to(s.p90_us, 1)},
          {"p99", round_to(s.p99_us, 1)},
          {"p999", round_to(s.p999_us, 1)},
          {"max", round_to(s.max_us, 1)}};
}

}  // namespace

std::string to_json_line(const BenchResult& r) {
  nlohmann::ordered_json j;
  j["tool"] = "torii-bench";
  j["mode"] = to_string(r.mode);
  j["host"] = r.host;
  j["port"] = r.port;
  j["tls"] = r.tls;
  if (r.tls) {
    j["tls_version"] = r.tls_version;
    j["cipher"] = r.cipher;
  }
  j["mqtt_version"] = r.v5 ? 5 : 311;
  j["qos"] = r.qos;
  j["threads"] = r.threads;
  j["rate_target"] = r.rate_target;
  j["payload_bytes"] = r.payload_bytes;
  j["connections"] = r.connections;
  j["connected"] = r.connected;
  j["connect_failures"] = r.connect_failures;
  j["connack_refused"] = r.connack_refused;
  j["open_at_end"] = r.open_at_end;
  j["connect_s"] = round_to(r.connect_s, 3);
  j["sent"] = r.sent;
  j["acked"] = r.acked;
  j["refused"] = r.refused;
  if (!r.refused_by_reason.empty()) j["refused_by_reason"] = r.refused_by_reason;
  j["errors"] = r.errors;
  j["server_disconnects"] = r.server_disconnects;
  if (r.mode == Mode::subscribe) {
    j["received"] = r.received;
    j["unparsed"] = r.unparsed;
  }
  j["warmup_s"] = round_to(r.warmup_s, 3);
  j["duration_s"] = round_to(r.duration_s, 3);
  j["window_messages"] = r.window_messages;
  j["msgs_per_s"] = round_to(r.msgs_per_s, 1);
  j["drain_s"] = round_to(r.drain_s, 3);
  j["drained"] = r.drained;
  if (r.ack_latency) j["ack_latency_us"] = latency_json(*r.ack_latency);
  if (r.latency) j["latency_us"] = latency_json(*r.latency);
  if (r.server) {
    nlohmann::ordered_json s;
    s["pid"] = r.server->pid;
    if (r.server->rss_kb_before) s["rss_kb_before"] = *r.server->rss_kb_before;
    if (r.server->rss_kb_after) s["rss_kb_after"] = *r.server->rss_kb_after;
    if (r.mode == Mode::idle && r.server->rss_kb_before && r.server->rss_kb_after && r.open_at_end > 0) {
      const double delta_bytes =
          (static_cast<double>(*r.server->rss_kb_after) - static_cast<double>(*r.server->rss_kb_before)) * 1024.0;
      s["rss_bytes_per_connection"] = std::round(delta_bytes / static_cast<double>(r.open_at_end));
    }
    if (r.server->cpu_s) {
      s["cpu_s"] = round_to(*r.server->cpu_s, 2);
      if (r.duration_s > 0) s["cpu_percent"] = round_to(100.0 * *r.server->cpu_s / r.duration_s, 1);
    }
    j["server"] = s;
  }
  j["bench_cpu_s"] = round_to(r.bench_cpu_s, 2);
  j["interrupted"] = r.interrupted;
  if (!r.first_error.empty()) j["first_error"] = r.first_error;
  if (!r.error.empty()) j["error"] = r.error;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace torii::bench

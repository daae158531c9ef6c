#include "bench/options.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "base/ip.h"
#include "bench/message_template.h"

namespace torii::bench {
namespace {

bool valid_prefix(std::string_view prefix) {
  return std::all_of(prefix.begin(), prefix.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    auto item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

bool finite_at_least(double v, double min) { return std::isfinite(v) && v >= min; }

}  // namespace

const char* to_string(Mode mode) {
  switch (mode) {
    case Mode::publish: return "publish";
    case Mode::idle: return "idle";
    case Mode::subscribe: return "subscribe";
  }
  return "?";
}

std::string device_name(const BenchOptions& options, std::uint64_t connection_index) {
  const std::uint64_t devices = options.devices == 0 ? options.connections : options.devices;
  return fmt::format("{}{}", options.device_prefix, devices == 0 ? connection_index : connection_index % devices);
}

std::string client_id(const BenchOptions& options, std::uint64_t connection_index) {
  return fmt::format("{}{}", options.device_prefix, connection_index);
}

std::vector<std::string> validate(BenchOptions& o) {
  std::vector<std::string> problems;
  const auto problem = [&](std::string text) { problems.push_back(std::move(text)); };

  // Mode.
  if (o.idle && o.subscribe) problem("--idle and --subscribe: choose one mode");
  o.mode = o.idle ? Mode::idle : o.subscribe ? Mode::subscribe : Mode::publish;

  // Target.
  if (o.host.empty()) problem("--host: must not be empty");
  if (o.port == 0) problem("--port: must be 1-65535");

  // TLS.
  if (o.insecure_plaintext) {
    for (const auto& [name, value] :
         {std::pair{"--cafile", &o.cafile}, std::pair{"--cert", &o.cert}, std::pair{"--key", &o.key},
          std::pair{"--cert-dir", &o.cert_dir}, std::pair{"--sub-cert", &o.sub_cert},
          std::pair{"--sub-key", &o.sub_key}, std::pair{"--tls-server-name", &o.tls_server_name}}) {
      if (!value->empty()) problem(fmt::format("{}: a TLS option, but --insecure-plaintext turns TLS off", name));
    }
  } else {
    if (o.cafile.empty()) {
      problem(
          "--cafile: required to verify the server (TLS is always on; --insecure-plaintext only for plaintext "
          "brokers)");
    }
    if (o.cert.empty() != o.key.empty()) problem("--cert and --key: give both or neither");
    if (!o.cert_dir.empty() && (!o.cert.empty() || !o.key.empty())) {
      problem("--cert-dir: cannot be combined with --cert/--key (one identity for all, or one per device)");
    }
    if (o.sub_cert.empty() != o.sub_key.empty()) problem("--sub-cert and --sub-key: give both or neither");
  }

  // Connections.
  if (o.connections == 0 || o.connections > 1'000'000) problem("--connections: must be 1-1000000");
  if (o.devices > 1'000'000) problem("--devices: must be at most 1000000");
  if (o.devices == 0) o.devices = o.connections;
  if (!valid_prefix(o.device_prefix)) problem("--device-prefix: only letters, digits, '-', '_' and '.'");
  if (o.threads > 256) problem("--threads: must be 0 (one per core) to 256");
  if (!finite_at_least(o.connect_rate, 0) || o.connect_rate < 0.1) problem("--connect-rate: must be at least 0.1");
  if (!finite_at_least(o.connect_timeout_s, 0) || o.connect_timeout_s < 0.1 || o.connect_timeout_s > 3600) {
    problem("--connect-timeout: must be 0.1-3600 seconds");
  }
  o.source_list.clear();
  if (!o.source_addresses.empty()) {
    for (const auto& item : split_list(o.source_addresses)) {
      if (!IpAddress::parse(item)) {
        problem(fmt::format("--source-addresses: '{}' is not a numeric IP address", item));
      } else {
        o.source_list.push_back(item);
      }
    }
  }

  // Protocol.
  if (o.mqtt_version == "5" || o.mqtt_version == "5.0") {
    o.v5 = true;
  } else if (o.mqtt_version == "311" || o.mqtt_version == "3.1.1" || o.mqtt_version == "4") {
    o.v5 = false;
  } else {
    problem(fmt::format("--mqtt-version: '{}' is not 311 or 5", o.mqtt_version));
  }
  if (o.qos != 0 && o.qos != 1) problem("--qos: must be 0 or 1");
  if (o.inflight == 0 || o.inflight > 65535) problem("--inflight: must be 1-65535");

  // Templates.
  if (auto t = MessageTemplate::parse(o.topic, {Placeholder::device, Placeholder::index}); !t) {
    problem("--topic: " + t.error().message);
  } else {
    const auto literal = t->literal_text();
    if (o.topic.empty()) problem("--topic: must not be empty");
    if (literal.find_first_of("+#") != std::string::npos) problem("--topic: no MQTT wildcards ('+', '#') in a topic");
  }
  if (o.payload.empty()) o.payload = o.mode == Mode::subscribe ? kDefaultTimestampedPayload : kDefaultPayload;
  if (auto t = MessageTemplate::parse(o.payload,
                                      {Placeholder::device, Placeholder::index, Placeholder::seq, Placeholder::ts});
      !t) {
    problem("--payload: " + t.error().message);
  } else if (o.mode == Mode::subscribe && !t->uses(Placeholder::ts)) {
    problem("--payload: --subscribe measures latency from {ts}; the payload must contain it");
  }
  if (o.ts_unit_text == "us" || o.ts_unit_text == "µs") {
    o.ts_unit = TimestampUnit::us;
  } else if (o.ts_unit_text == "ns") {
    o.ts_unit = TimestampUnit::ns;
  } else {
    problem(fmt::format("--ts-unit: '{}' is not us or ns", o.ts_unit_text));
  }

  // Load and duration.
  if (!finite_at_least(o.rate, 0)) problem("--rate: must be 0 (as fast as possible) or a positive rate");
  if (!finite_at_least(o.duration_s, 0) || o.duration_s > 7 * 24 * 3600.0)
    problem("--duration: must be 0-604800 seconds");
  if (!finite_at_least(o.warmup_s, 0) || o.warmup_s > 3600) problem("--warmup: must be 0-3600 seconds");
  if (!finite_at_least(o.drain_timeout_s, 0) || o.drain_timeout_s > 600) {
    problem("--drain-timeout: must be 0-600 seconds");
  }
  if (o.duration_s == 0 && o.count == 0) o.duration_s = kDefaultDurationSeconds;
  if (o.mode == Mode::idle) {
    if (o.count != 0) problem("--count: not with --idle (idle connections send no messages)");
    if (o.rate != 0) problem("--rate: not with --idle (idle connections send no messages)");
  }

  // Subscriber.
  if (o.mode != Mode::subscribe) {
    for (const auto& [name, value] :
         {std::pair{"--sub-topic", &o.sub_topic}, std::pair{"--sub-cert", &o.sub_cert},
          std::pair{"--sub-key", &o.sub_key}, std::pair{"--sub-client-id", &o.sub_client_id}}) {
      if (!value->empty()) problem(fmt::format("{}: only with --subscribe", name));
    }
  } else {
    if (!o.sub_topic.empty()) {
      if (auto t = MessageTemplate::parse(o.sub_topic, {Placeholder::device, Placeholder::index}); !t) {
        problem("--sub-topic: " + t.error().message);
      }
    }
    if (o.sub_client_id.empty()) o.sub_client_id = o.device_prefix + "sub";
    if (o.sub_qos != 0 && o.sub_qos != 1) problem("--sub-qos: must be 0 or 1");
  }

  if (o.server_pid < 0) problem("--server-pid: must be a process id");
  return problems;
}

}  // namespace torii::bench

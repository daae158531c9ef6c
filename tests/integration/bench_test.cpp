// `torii bench` against a real torii server: mutual TLS with per-device identities, QoS 1 and
// QoS 0, and MQTT 5 refusals counted apart. Each test checks the one result line against
// what the server stored. No timed assertions: durations only bound the runs.
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

class Bench : public ServerTest {
 protected:
  std::filesystem::path certs() const { return work_dir() / "certs"; }

  void create_devices(int n) {
    for (int i = 0; i < n; ++i) {
      const auto r =
          torii({"admin", "device", "create", "--id", "bench-" + std::to_string(i), "--out", certs().string()});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }

  RunResult bench(std::vector<std::string> extra) const {
    std::vector<std::string> argv{torii_binary(), "bench",
                                  "--host",       "127.0.0.1",
                                  "--port",       std::to_string(gateway_port),
                                  "--cafile",     (certs() / "ca.crt").string(),
                                  "--cert-dir",   certs().string(),
                                  "--quiet"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, std::chrono::seconds(120));
  }

  // The one line on standard output, parsed.
  static json result_line(const RunResult& r) {
    std::istringstream lines(r.out);
    std::vector<std::string> all;
    for (std::string line; std::getline(lines, line);) all.push_back(line);
    EXPECT_EQ(all.size(), 1u) << r.out;
    if (all.empty()) return json::object();
    return json::parse(all.front());
  }

  std::size_t stored(const std::string& id) {
    const auto r = torii({"admin", "telemetry", "list", "--device", id, "--limit", "10000"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::size_t n = 0;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) ++n;
    return n;
  }

  std::size_t stored_total(int devices) {
    std::size_t total = 0;
    for (int i = 0; i < devices; ++i) total += stored("bench-" + std::to_string(i));
    return total;
  }
};

constexpr const char* kGenerousQuotas = R"([mqtt]
device_messages_per_second = 1000000
device_message_burst = 10000000
device_bytes_per_second = 1000000000
device_byte_burst = 1000000000
)";

TEST_F(Bench, QosOneRunReportsOneResultLineAndEveryAcknowledgedMessageIsStored) {
  config_text += kGenerousQuotas;
  start();
  create_devices(5);
  // The rate keeps each device under the 10,000 messages `telemetry list` can show.
  const auto r = bench({"--connections", "5", "--qos", "1", "--duration", "3", "--rate", "2000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = result_line(r);
  EXPECT_EQ(j["tool"], "torii-bench");
  EXPECT_EQ(j["mode"], "publish");
  EXPECT_EQ(j["tls_version"], "TLSv1.3");
  EXPECT_EQ(j["connected"], 5);
  EXPECT_EQ(j["connect_failures"], 0);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["refused"], 0);
  EXPECT_TRUE(j["drained"].get<bool>());
  const auto acked = j["acked"].get<std::size_t>();
  EXPECT_GT(acked, 0u);
  EXPECT_EQ(j["sent"].get<std::size_t>(), acked);
  EXPECT_GT(j["msgs_per_s"].get<double>(), 0);
  EXPECT_GT(j["ack_latency_us"]["count"].get<std::size_t>(), 0u);
  // A QoS 1 PUBACK comes only once the message is durable: the store holds exactly those.
  EXPECT_EQ(stored_total(5), acked);
}

TEST_F(Bench, QosZeroRunWithACountSendsExactlyThatManyAndTheServerStoresThem) {
  config_text += kGenerousQuotas;
  start();
  create_devices(3);
  const auto r = bench({"--connections", "3", "--qos", "0", "--count", "40", "--mqtt-version", "311"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = result_line(r);
  EXPECT_EQ(j["sent"], 120);
  EXPECT_EQ(j["acked"], 0);
  EXPECT_EQ(j["mqtt_version"], 311);
  EXPECT_TRUE(j["drained"].get<bool>());  // the PINGRESP after the last PUBLISH came back
  // QoS 0 is stored as it arrives: wait for it through the admin command, bounded.
  std::size_t total = 0;
  for (int k = 0; k < 50 && total < 120; ++k) {
    total = stored_total(3);
    if (total < 120) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(total, 120u);
}

TEST_F(Bench, NegativePubacksOfMqtt5AreCountedAsRefusedNotAcknowledged) {
  config_text += R"([mqtt]
device_messages_per_second = 1
device_message_burst = 3
)";
  start();
  create_devices(2);
  const auto r = bench({"--connections", "2", "--qos", "1", "--count", "10", "--inflight", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = result_line(r);
  const auto acked = j["acked"].get<std::size_t>();
  const auto refused = j["refused"].get<std::size_t>();
  EXPECT_EQ(j["sent"], 20);
  EXPECT_EQ(acked + refused, 20u);
  EXPECT_GE(refused, 1u);
  EXPECT_GE(j["refused_by_reason"]["Quota exceeded"].get<std::size_t>(), 1u);
  EXPECT_EQ(stored_total(2), acked);
}

// While the ingest queue is full, publishers are held back, not refused or disconnected:
// with room for one message, connections keeping 32 QoS 1 messages each in flight find it
// full again and again, and every message is acknowledged and stored once, in MQTT 5 and 3.1.1.
TEST_F(Bench, AFullIngestQueueHoldsPublishersBackAndLosesNothing) {
  config_text += kGenerousQuotas;
  config_text += "ingest_queue_messages = 1\n";
  start();
  create_devices(4);
  std::size_t sent = 0;
  for (const char* version : {"5", "311"}) {
    const auto r =
        bench({"--connections", "4", "--qos", "1", "--count", "1000", "--inflight", "32", "--mqtt-version", version,
               "--payload", std::string(R"({"id":"v)") + version + R"(-{device}-{seq}","temperature":21.5})"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = result_line(r);
    EXPECT_EQ(j["sent"], 4000) << version;
    EXPECT_EQ(j["acked"], 4000) << version;
    EXPECT_EQ(j["refused"], 0) << version;
    EXPECT_EQ(j["errors"], 0) << version << ": " << j.value("first_error", "");
    EXPECT_EQ(j["open_at_end"], 4) << version;
    sent += 4000;
  }
  EXPECT_EQ(stored_total(4), sent);
  EXPECT_EQ(stop(), 0);
  EXPECT_THAT(server->err(), HasSubstr("the ingest queue is full"));  // it was, again and again
}

TEST_F(Bench, ARefusedSubscriptionFailsTheRunWithItsReason) {
  start();
  create_devices(1);
  ASSERT_EQ(torii({"admin", "device", "create", "--id", "bench-sub", "--out", certs().string()}).exit_code, 0);
  // torii isolates devices: without a route, bench-sub may not read bench-0's telemetry.
  const auto r = bench({"--connections", "1", "--subscribe", "--duration", "1"});
  EXPECT_EQ(r.exit_code, 1);
  const auto j = result_line(r);
  EXPECT_THAT(j["error"].get<std::string>(), HasSubstr("refused the subscription"));
  EXPECT_THAT(r.err, HasSubstr("Not authorized"));
}

TEST_F(Bench, InvalidOptionsAreAllReportedWithoutAResultLine) {
  const auto r = run({torii_binary(), "bench", "--qos", "2", "--topic", "devices/#", "--payload", "{\"n\":{nope}}"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  for (const char* expected : {"--cafile", "--qos", "--topic", "{nope}"}) EXPECT_THAT(r.err, HasSubstr(expected));
}

}  // namespace
}  // namespace torii::testing

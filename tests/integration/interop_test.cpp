// The gateway as the Eclipse Paho MQTT C client meets it (tests/interop/paho_client.cpp,
// MQTT 3.1.1 and 5.0 over mutual TLS), and two proofs of the gateway that need many real
// clients at once:
//
//   - crash: `kill -9` the server during QoS 1 ingest from many connections; after a restart
//     every acknowledged message is in the store, exactly once;
//   - flood: one device floods while 100 well-behaved devices publish; every message of the
//     well-behaved ones is acknowledged and stored while the flooder's excess is refused
//     (quota exceeded); and a flooder that keeps at it is disconnected and banned.
//
// No assertion here is about time: everything is bounded in count, and every wait is
// bounded so that a test stops by itself.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server_fixture.h"

namespace torii::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// What one run of paho_client printed.
struct PahoReport {
  std::vector<long> acked;                    // as printed: in order, until the connection is lost
  std::vector<std::pair<long, int>> refused;  // index, reason code
  std::vector<long> sent;                     // QoS 0
  std::vector<int> disconnected;              // DISCONNECT reason codes from the server
  std::vector<std::string> messages;          // "topic payload"
  std::optional<int> granted;
  std::optional<int> denied;
  std::optional<int> connect_failed;
  std::optional<long> lost_after;
  std::optional<long> done;
};

PahoReport parse_report(const std::string& out) {
  PahoReport r;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string what;
    words >> what;
    long a = 0;
    long b = 0;
    if (what == "acked" && words >> a) {
      r.acked.push_back(a);
    } else if (what == "refused" && words >> a >> b) {
      r.refused.emplace_back(a, static_cast<int>(b));
    } else if (what == "sent" && words >> a) {
      r.sent.push_back(a);
    } else if (what == "disconnected" && words >> a) {
      r.disconnected.push_back(static_cast<int>(a));
    } else if (what == "message") {
      r.messages.push_back(line.substr(8));
    } else if (what == "granted" && words >> a) {
      r.granted = static_cast<int>(a);
    } else if (what == "denied" && words >> a) {
      r.denied = static_cast<int>(a);
    } else if (what == "connect" && words >> what && words >> a) {
      r.connect_failed = static_cast<int>(a);
    } else if (what == "lost" && words >> what && words >> a) {
      r.lost_after = a;
    } else if (what == "done" && words >> a) {
      r.done = a;
    }
  }
  return r;
}

std::string paho_client() { return PAHO_CLIENT; }

// A child whose output is read on a thread of its own while the test waits for other
// children: one that prints a line per message (the flooder) would otherwise fill its pipe
// and stall. Only the reader touches the Process until finish().
class DrainedProcess {
 public:
  // Waits (bounded) for `first` in its output before handing the reading to the thread.
  DrainedProcess(const std::vector<std::string>& argv, std::string_view first) : process_(argv) {
    started_ = process_.wait_for_output(first, std::chrono::seconds(60));
    reader_ = std::thread([this] { process_.wait_for_output("\n\n", std::chrono::seconds(600)); });
  }
  DrainedProcess(const DrainedProcess&) = delete;
  DrainedProcess& operator=(const DrainedProcess&) = delete;
  ~DrainedProcess() { finish(SIGKILL); }

  // Sends `sig` (the reader stops at end of output), then reaps the child: its exit code.
  int finish(int sig) {
    if (reader_.joinable()) {
      process_.signal(sig);
      reader_.join();
    }
    return process_.wait(std::chrono::seconds(60));
  }
  // Whether `first` appeared.
  [[nodiscard]] bool started() const { return started_; }
  // Valid after finish().
  [[nodiscard]] const std::string& out() const { return process_.out(); }
  [[nodiscard]] const std::string& err() const { return process_.err(); }

 private:
  Process process_;
  bool started_ = false;
  std::thread reader_;
};

class Interop : public ServerTest {
 protected:
  Interop() {
    // Many TLS handshakes arrive at once in these tests, on a loaded 2-core machine and
    // under ASan: the fixture's 2 s handshake deadline would turn slowness into failures
    // (and failures into a ban of 127.0.0.1).
    const std::string short_deadline = "handshake_timeout_seconds = 2\n";
    if (const auto at = config_text.find(short_deadline); at != std::string::npos) {
      config_text.replace(at, short_deadline.size(), "handshake_timeout_seconds = 60\n");
    }
  }

  std::filesystem::path certs() const { return work_dir() / "certs"; }

  // Runs `torii <command…> --config … --data-dir …` for each command, a few at a time (each
  // is a process and a request to the server, which adds up for a hundred devices under
  // ASan); the results in order. The server must be running: start() wrote the
  // configuration file they read.
  std::vector<RunResult> torii_each(const std::vector<std::vector<std::string>>& commands) const {
    constexpr std::size_t kAtOnce = 6;
    std::vector<RunResult> results(commands.size());
    for (std::size_t first = 0; first < commands.size(); first += kAtOnce) {
      const std::size_t end = std::min(commands.size(), first + kAtOnce);
      std::vector<std::unique_ptr<Process>> batch;
      batch.reserve(end - first);
      for (std::size_t i = first; i < end; ++i) {
        std::vector<std::string> argv{torii_binary()};
        argv.insert(argv.end(), commands[i].begin(), commands[i].end());
        argv.insert(argv.end(), {"--config", (work_dir() / "torii.toml").string(), "--data-dir", data_dir().string()});
        batch.push_back(std::make_unique<Process>(argv));
      }
      for (std::size_t i = first; i < end; ++i) {
        auto& p = *batch[i - first];
        results[i].exit_code = p.wait(std::chrono::seconds(120));
        results[i].out = p.out();
        results[i].err = p.err();
      }
    }
    return results;
  }

  void create_devices(const std::vector<std::string>& ids) {
    std::vector<std::vector<std::string>> commands;
    commands.reserve(ids.size());
    for (const auto& id : ids) commands.push_back({"admin", "device", "create", "--id", id, "--out", certs().string()});
    for (const auto& r : torii_each(commands)) ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  // paho_client <mode> acting as device `id`, with the extra options.
  std::vector<std::string> paho(const std::string& mode, const std::string& id, const std::string& version,
                                std::vector<std::string> extra) const {
    std::vector<std::string> argv{paho_client(), mode,
                                  "--host",      "127.0.0.1",
                                  "--port",      std::to_string(gateway_port),
                                  "--cafile",    (certs() / "ca.crt").string(),
                                  "--cert",      (certs() / (id + ".crt")).string(),
                                  "--key",       (certs() / (id + ".key")).string(),
                                  "--device",    id,
                                  "--version",   version};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  RunResult publish(const std::string& id, const std::string& version, int qos, int count, const std::string& prefix,
                    std::vector<std::string> extra = {}) const {
    std::vector<std::string> options{"--qos", std::to_string(qos), "--count", std::to_string(count), "--prefix",
                                     prefix};
    options.insert(options.end(), extra.begin(), extra.end());
    return run(paho("publish", id, version, options), std::chrono::seconds(120));
  }

  PahoReport subscribe(const std::string& id, const std::string& version, const std::string& filter) const {
    const auto r = run(paho("subscribe", id, version, {"--topic", filter, "--qos", "1"}), std::chrono::seconds(60));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return parse_report(r.out);
  }

  // The devices' stored messages: for each, message id → how many times it is stored.
  std::vector<std::map<std::string, int>> stored_ids(const std::vector<std::string>& devices) const {
    std::vector<std::vector<std::string>> commands;
    commands.reserve(devices.size());
    for (const auto& id : devices)
      commands.push_back({"admin", "telemetry", "list", "--device", id, "--limit", "10000"});
    std::vector<std::map<std::string, int>> stored;
    for (const auto& r : torii_each(commands)) {
      EXPECT_EQ(r.exit_code, 0) << r.err;
      auto& ids = stored.emplace_back();
      std::istringstream lines(r.out);
      for (std::string line; std::getline(lines, line);) ++ids[json::parse(line)["message_id"].get<std::string>()];
    }
    return stored;
  }
  std::map<std::string, int> stored_ids(const std::string& device) const {
    return stored_ids(std::vector{device}).front();
  }

  // Polls until the device has at least `count` stored messages (QoS 0 is stored after the
  // publisher is gone); bounded.
  std::map<std::string, int> stored_ids_at_least(const std::string& id, std::size_t count) {
    auto ids = stored_ids(id);
    for (int i = 0; i < 100 && ids.size() < count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ids = stored_ids(id);
    }
    return ids;
  }

  std::string security_log() const {
    std::ifstream in(data_dir() / "log" / "security.log");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

std::set<std::string> ids_of(const std::string& prefix, const std::vector<long>& indexes) {
  std::set<std::string> ids;
  for (const long i : indexes) ids.insert(prefix + std::to_string(i));
  return ids;
}

std::vector<long> zero_to(long n) {
  std::vector<long> v;
  for (long i = 0; i < n; ++i) v.push_back(i);
  return v;
}

// --- Paho interop -------------------------------------------------------------------------

TEST_F(Interop, PahoPublishesAtEveryQosInBothVersionsAndEachAcknowledgedMessageIsStoredOnce) {
  start();
  create_devices({"paho-1"});
  constexpr int kCount = 20;
  std::set<std::string> expected;
  for (const std::string version : {"311", "5"}) {
    for (int qos = 0; qos <= 2; ++qos) {
      const std::string prefix = "v" + version + "-q" + std::to_string(qos) + "-";
      const auto r = publish("paho-1", version, qos, kCount, prefix, {"--inflight", "4"});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
      const auto report = parse_report(r.out);
      EXPECT_EQ(report.done, kCount);
      EXPECT_TRUE(report.refused.empty()) << r.out;
      if (qos == 0) {
        EXPECT_EQ(report.sent, zero_to(kCount));
      } else {
        EXPECT_EQ(report.acked, zero_to(kCount)) << version << " QoS " << qos;
      }
      const auto ids = ids_of(prefix, zero_to(kCount));
      expected.insert(ids.begin(), ids.end());
    }
  }
  // The same messages again, as a client that lost its acknowledgements would resend them:
  // acknowledged, not stored twice.
  const auto again = publish("paho-1", "5", 1, kCount, "v5-q1-");
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(parse_report(again.out).acked, zero_to(kCount));

  const auto stored = stored_ids_at_least("paho-1", expected.size());
  std::set<std::string> stored_set;
  for (const auto& [id, times] : stored) {
    stored_set.insert(id);
    EXPECT_EQ(times, 1) << id << " is stored " << times << " times";
  }
  EXPECT_EQ(stored_set, expected);
}

TEST_F(Interop, PahoSubscribesToItsOwnCommandsAndIsDeniedEverythingElse) {
  start();
  create_devices({"paho-a", "paho-b"});
  for (const std::string version : {"311", "5"}) {
    const int denied = version == "5" ? 0x87 : 0x80;  // 5.0: not authorized; 3.1.1: failure
    const auto own = subscribe("paho-a", version, "devices/paho-a/commands");
    EXPECT_EQ(own.granted, 1) << version;
    EXPECT_FALSE(own.denied.has_value());
    for (const std::string filter :
         {"#", "devices/paho-b/commands", "devices/paho-b/telemetry", "devices/+/commands"}) {
      const auto refused = subscribe("paho-a", version, filter);
      EXPECT_EQ(refused.denied, denied) << version << " " << filter;
      EXPECT_FALSE(refused.granted.has_value()) << version << " " << filter;
    }
  }
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"mqtt.subscribe_denied")"));
}

TEST_F(Interop, PahoPublishingIntoAnotherDevicesNamespaceIsRefused) {
  start();
  create_devices({"paho-a", "paho-b"});
  // MQTT 5: a negative PUBACK (QoS 1) or PUBREC (QoS 2), 0x87 not authorized, per message.
  for (const int qos : {1, 2}) {
    const auto r = publish("paho-a", "5", qos, 3, "intrusion-", {"--topic", "devices/paho-b/telemetry"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    const auto report = parse_report(r.out);
    EXPECT_TRUE(report.acked.empty()) << r.out;
    EXPECT_EQ(report.refused, (std::vector<std::pair<long, int>>{{0, 0x87}, {1, 0x87}, {2, 0x87}})) << r.out;
  }
  // MQTT 3.1.1 has no negative acknowledgement: acknowledged and dropped.
  const auto r311 = publish("paho-a", "311", 1, 3, "intrusion311-", {"--topic", "devices/paho-b/telemetry"});
  EXPECT_EQ(r311.exit_code, 0) << r311.out << r311.err;

  // B's own message is the only one stored; nothing under A either.
  const auto own = publish("paho-b", "5", 1, 1, "own-");
  ASSERT_EQ(own.exit_code, 0) << own.out << own.err;
  EXPECT_EQ(stored_ids("paho-b"), (std::map<std::string, int>{{"own-0", 1}}));
  EXPECT_TRUE(stored_ids("paho-a").empty());
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"mqtt.publish_denied")"));
}

// --- kill -9 during QoS 1 ingest --------------------------------------------------------

TEST_F(Interop, KillNineDuringQos1IngestLosesNoAcknowledgedMessage) {
  // Quotas out of the way: this test is about durability, not limits.
  config_text += R"([mqtt]
device_messages_per_second = 1000000
device_message_burst = 1000000
device_bytes_per_second = 1000000000
device_byte_burst = 1000000000
)";
  start();
  constexpr int kDevices = 20;
  constexpr int kMessages = 2000;
  std::vector<std::string> devices;
  devices.reserve(kDevices);
  for (int d = 0; d < kDevices; ++d) devices.push_back("crash-" + std::to_string(d));
  create_devices(devices);
  // Half speak 3.1.1, half 5.0; each keeps a few messages in flight, so that the crash
  // finds messages in every state: received, queued for the writer, in the transaction being
  // committed, committed but not yet acknowledged.
  std::vector<std::unique_ptr<Process>> publishers;
  publishers.reserve(kDevices);
  for (int d = 0; d < kDevices; ++d) {
    publishers.push_back(std::make_unique<Process>(paho(
        "publish", devices[static_cast<std::size_t>(d)], d % 2 ? "311" : "5",
        {"--qos", "1", "--count", std::to_string(kMessages), "--rate", "0", "--inflight", "4", "--prefix", "m-"})));
  }
  // Acknowledgements are flowing on every connection (at least 101 each, 2020 in all).
  for (auto& p : publishers) {
    ASSERT_TRUE(p->wait_for_output("acked 100\n", std::chrono::seconds(120))) << p->out() << p->err();
  }
  kill();

  long acked = 0;
  int interrupted = 0;
  std::vector<PahoReport> reports;
  for (auto& p : publishers) {
    const int code = p->wait(std::chrono::seconds(60));
    reports.push_back(parse_report(p->out()));
    const auto& report = reports.back();
    EXPECT_TRUE(code == 0 || code == 2) << "exit " << code << "\n" << p->out() << p->err();
    if (report.lost_after) ++interrupted;
    EXPECT_TRUE(report.refused.empty()) << p->out();
    acked += static_cast<long>(report.acked.size());
  }
  // The crash happened during ingest, not after it.
  EXPECT_GT(interrupted, 0);

  start();
  const auto stored_by_device = stored_ids(devices);
  long stored = 0;
  long lost = 0;
  long duplicates = 0;
  for (int d = 0; d < kDevices; ++d) {
    const auto& device = devices[static_cast<std::size_t>(d)];
    const auto& ids = stored_by_device[static_cast<std::size_t>(d)];
    for (const auto& [id, times] : ids) {
      stored += times;
      if (times != 1) ++duplicates;
      EXPECT_EQ(times, 1) << device << ": " << id << " stored " << times << " times";
    }
    for (const auto& id : ids_of("m-", reports[static_cast<std::size_t>(d)].acked)) {
      if (!ids.contains(id)) {
        ++lost;
        ADD_FAILURE() << device << ": acknowledged message " << id << " is not in the store";
      }
    }
  }
  std::cout << "[ crash    ] " << kDevices << " publishers, " << interrupted << " interrupted; acknowledged " << acked
            << ", stored " << stored << ", acknowledged but lost " << lost << ", duplicates " << duplicates << "\n";
  RecordProperty("acknowledged", static_cast<int>(acked));
  RecordProperty("stored", static_cast<int>(stored));
  RecordProperty("lost", static_cast<int>(lost));
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_GE(stored, acked);
}

// --- flood -----------------------------------------------------------------------------

// Quotas that a well-behaved device (10 messages at 2 per second) never meets, even if all
// its messages arrived at once: its burst alone covers them.
constexpr const char* kFloodQuotas = R"(device_messages_per_second = 20
device_message_burst = 20
)";

TEST_F(Interop, OneDeviceFloodsWhileWellBehavedOnesPublishAndTheyAreUnaffected) {
  // The flooder is refused message by message but never banned here: it keeps flooding
  // until the well-behaved devices are done (the next test covers the ban).
  config_text += std::string(R"([firewall]
max_connections_per_source = 256
[mqtt]
offences_before_ban = 1000000
)") + kFloodQuotas;
  start();
  // A hundred well-behaved devices; 25 against the ASan+UBSan build of the server, where each
  // TLS handshake and message costs several times more (the flood then took 112 s of the
  // sanitized suite's time against 17 s in the dev build).
#ifdef TORII_SANITIZED_SERVER
  constexpr int kWellBehaved = 25;
#else
  constexpr int kWellBehaved = 100;
#endif
  constexpr int kMessages = 10;
  std::vector<std::string> devices{"flooder"};
  for (int d = 0; d < kWellBehaved; ++d) devices.push_back("calm-" + std::to_string(d));
  create_devices(devices);

  // MQTT 5 and QoS 1, so that each refusal comes back as a reason code; as fast as the
  // acknowledgements allow, 32 in flight. Bounded (count, 300 s); stopped by SIGTERM below.
  DrainedProcess flooder(paho("publish", "flooder", "5",
                              {"--qos", "1", "--count", "10000000", "--rate", "0", "--inflight", "32", "--seconds",
                               "300", "--prefix", "flood-"}),
                         "refused ");  // its burst is spent
  if (!flooder.started()) {
    flooder.finish(SIGKILL);
    FAIL() << "the flooder was never refused\n" << flooder.out() << flooder.err();
  }

  // Half MQTT 3.1.1, half 5.0; QoS 1, so that "acked" means stored.
  std::vector<std::unique_ptr<Process>> calm;
  calm.reserve(kWellBehaved);
  for (int d = 1; d <= kWellBehaved; ++d) {
    calm.push_back(std::make_unique<Process>(paho("publish", devices[static_cast<std::size_t>(d)], d % 2 ? "311" : "5",
                                                  {"--qos", "1", "--count", std::to_string(kMessages), "--rate", "2",
                                                   "--prefix", "calm-", "--ack-timeout", "120"})));
  }
  long calm_acked = 0;
  for (std::size_t d = 0; d < calm.size(); ++d) {
    auto& p = *calm[d];
    EXPECT_EQ(p.wait(std::chrono::seconds(240)), 0) << devices[d + 1] << "\n" << p.out() << p.err();
    const auto report = parse_report(p.out());
    EXPECT_EQ(report.acked, zero_to(kMessages)) << devices[d + 1] << "\n" << p.out();
    EXPECT_TRUE(report.refused.empty()) << devices[d + 1] << "\n" << p.out();
    calm_acked += static_cast<long>(report.acked.size());
  }

  // The flood lasted all along: the flooder ends now, on our signal, still connected.
  EXPECT_EQ(flooder.finish(SIGTERM), 0) << flooder.err();
  const auto flood = parse_report(flooder.out());
  EXPECT_TRUE(flood.done.has_value()) << flooder.out().substr(flooder.out().size() -
                                                              std::min<std::size_t>(2000, flooder.out().size()));
  EXPECT_FALSE(flood.lost_after.has_value());
  EXPECT_FALSE(flood.refused.empty());
  long quota_refusals = 0;
  for (const auto& [index, reason] : flood.refused) quota_refusals += reason == 0x97 ? 1 : 0;  // quota exceeded
  EXPECT_EQ(quota_refusals, static_cast<long>(flood.refused.size()));

  // Every well-behaved message is stored once; of the flood, exactly what was acknowledged.
  const auto stored = stored_ids(devices);
  std::map<std::string, int> flood_expected;
  for (const auto& id : ids_of("flood-", flood.acked)) flood_expected[id] = 1;
  EXPECT_EQ(stored.front(), flood_expected);
  std::map<std::string, int> calm_expected;
  for (const auto& id : ids_of("calm-", zero_to(kMessages))) calm_expected[id] = 1;
  long calm_stored = 0;
  for (std::size_t d = 1; d < devices.size(); ++d) {
    EXPECT_EQ(stored[d], calm_expected) << devices[d];
    for (const auto& [id, times] : stored[d]) calm_stored += times;
  }

  std::cout << "[ flood    ] flooder: " << flood.acked.size() << " accepted, " << flood.refused.size()
            << " refused (quota exceeded); " << kWellBehaved << " well-behaved devices: " << calm_acked
            << " acknowledged, " << calm_stored << " stored of " << kWellBehaved * kMessages << "\n";
  RecordProperty("flood_accepted", static_cast<int>(flood.acked.size()));
  RecordProperty("flood_refused", static_cast<int>(flood.refused.size()));
  RecordProperty("well_behaved_acknowledged", static_cast<int>(calm_acked));

  ASSERT_EQ(stop(), 0);
  // Only the flooder was rate limited.
  const auto log = security_log();
  EXPECT_THAT(log, HasSubstr(R"("action":"mqtt.rate_limited")"));
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(R"("action":"mqtt.rate_limited")") != std::string::npos) {
      EXPECT_THAT(line, HasSubstr(R"("object":"device:flooder")"));
    }
  }
}

TEST_F(Interop, AFloodingDeviceIsDisconnectedAndBannedWhileAnotherCarriesOn) {
  config_text += std::string(R"([mqtt]
offences_before_ban = 50
offence_window_seconds = 3600
device_ban_seconds = 3600
)") + kFloodQuotas;
  start();
  create_devices({"flooder", "steady"});
  Process steady(paho("publish", "steady", "311",
                      {"--qos", "1", "--count", "10", "--rate", "2", "--prefix", "steady-", "--ack-timeout", "120"}));
  ASSERT_TRUE(steady.wait_for_output("acked 0\n", std::chrono::seconds(60))) << steady.out() << steady.err();

  // Bounded in count; ends long before, when the gateway disconnects it.
  const auto r = run(paho("publish", "flooder", "5",
                          {"--qos", "1", "--count", "1000000", "--rate", "0", "--inflight", "8", "--prefix", "flood-"}),
                     std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const auto flood = parse_report(r.out);
  EXPECT_TRUE(flood.lost_after.has_value());
  // The gateway sends DISCONNECT 0x98 (administrative action) and closes. A client still
  // publishing may hit the closed socket on a write and drop the connection before its
  // receiving thread has read that DISCONNECT (seen with Paho about once in 15 runs under
  // load), so its absence proves nothing; a different reason code would be wrong.
  if (!flood.disconnected.empty()) {
    EXPECT_EQ(flood.disconnected, std::vector<int>{0x98});
  }
  ASSERT_FALSE(flood.refused.empty());
  EXPECT_EQ(flood.refused.front().second, 0x97);  // quota exceeded
  EXPECT_LE(flood.refused.size(), 50u);

  // Banned: refused at CONNECT, in both versions, while the other device carries on.
  const auto again5 = parse_report(run(paho("publish", "flooder", "5", {"--count", "1"})).out);
  EXPECT_EQ(again5.connect_failed, 0x8A);  // banned
  const auto again311 = parse_report(run(paho("publish", "flooder", "311", {"--count", "1"})).out);
  EXPECT_EQ(again311.connect_failed, 5);  // not authorized

  EXPECT_EQ(steady.wait(std::chrono::seconds(120)), 0) << steady.out() << steady.err();
  EXPECT_EQ(parse_report(steady.out()).acked, zero_to(10));
  EXPECT_EQ(stored_ids("steady").size(), 10u);
  // Of the flood, every acknowledged message is stored once and no refused one is; those
  // accepted but not yet acknowledged when the connection was closed may be stored (QoS 1 is
  // at least once: the device sends them again).
  const auto stored = stored_ids("flooder");
  for (const auto& id : ids_of("flood-", flood.acked)) EXPECT_EQ(stored.count(id) ? stored.at(id) : 0, 1) << id;
  for (const auto& [index, reason] : flood.refused) EXPECT_FALSE(stored.contains("flood-" + std::to_string(index)));
  for (const auto& [id, times] : stored) EXPECT_EQ(times, 1) << id;

  ASSERT_EQ(stop(), 0);
  const auto log = security_log();
  EXPECT_THAT(log, HasSubstr(R"("action":"mqtt.rate_limited")"));
  EXPECT_THAT(log, HasSubstr(R"("action":"device.banned")"));
  EXPECT_THAT(log, HasSubstr(R"("reason":"device temporarily banned")"));
}

}  // namespace
}  // namespace torii::testing

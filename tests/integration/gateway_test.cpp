// The gateway as devices meet it, through real MQTT clients (Eclipse Mosquitto's
// mosquitto_pub and mosquitto_sub, MQTT 3.1.1 and 5.0) over mutual TLS, and as operators
// check it, through `torii admin` against the running server.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <fstream>
#include <iterator>
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
using ::testing::Not;

class Gateway : public ServerTest {
 protected:
  std::filesystem::path certs() const { return work_dir() / "certs"; }

  // Registers a device through the running server; its key is made by torii and written
  // next to its certificate.
  void create_device(const std::string& id, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"admin", "device", "create", "--id", id, "--out", certs().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = torii(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // The TLS and connection arguments of a Mosquitto client acting as device `id`.
  std::vector<std::string> client(const std::string& tool, const std::string& id, const std::string& version) const {
    return {tool,
            "--cafile",
            (certs() / "ca.crt").string(),
            "--cert",
            (certs() / (id + ".crt")).string(),
            "--key",
            (certs() / (id + ".key")).string(),
            "-h",
            "127.0.0.1",
            "-p",
            std::to_string(gateway_port),
            "-V",
            version,
            "-i",
            id};
  }

  RunResult publish(const std::string& id, const std::string& version, const std::string& topic,
                    const std::string& message, int qos = 1) const {
    auto argv = client("mosquitto_pub", id, version);
    argv.insert(argv.end(), {"-q", std::to_string(qos), "-t", topic, "-m", message, "-d"});
    return run(argv, std::chrono::seconds(30));
  }

  // Creates devices `from` and `to` and a route from → to.
  void create_routed_pair(const std::string& from, const std::string& to) {
    create_device(from);
    create_device(to);
    const auto route = torii({"admin", "route", "add", "--from", "device:" + from, "--to", "device:" + to});
    ASSERT_EQ(route.exit_code, 0) << route.err;
  }

  // Runs one SQL statement on the server's database with the sqlite3 shell (rows on stdout).
  RunResult sql(const std::string& statement) const {
    return run({"sqlite3", (data_dir() / "torii.db").string(), statement}, std::chrono::seconds(10));
  }

  // Creates devices `from` and `to` with a route from → to, and a line-buffered mosquitto_sub
  // as `to` on `topic` printing each message with `format`. Null (with a failure recorded)
  // when any step fails; otherwise the subscription is in place.
  std::unique_ptr<Process> watch_through_route(const std::string& from, const std::string& to, const std::string& topic,
                                               const std::string& format) {
    create_routed_pair(from, to);
    if (HasFailure()) return nullptr;
    auto argv = client("mosquitto_sub", to, "mqttv5");
    argv.insert(argv.end(), {"-t", topic, "-F", format, "-d"});
    argv.insert(argv.begin(), {"stdbuf", "-oL"});
    auto watcher = std::make_unique<Process>(argv);
    const bool subscribed = watcher->wait_for_output("Subscribed", std::chrono::seconds(10));
    EXPECT_TRUE(subscribed) << watcher->out();
    return subscribed ? std::move(watcher) : nullptr;
  }

  // mosquitto_sub with a session kept for an hour (clean start 0), subscribed at QoS 1,
  // printing "got: PAYLOAD" per message as it arrives.
  std::vector<std::string> persistent_subscriber(const std::string& id, const std::string& filter) const {
    auto argv = client("mosquitto_sub", id, "mqttv5");
    argv.insert(argv.end(), {"-c", "-x", "3600", "-q", "1", "-t", filter, "-F", "got: %p", "-d"});
    argv.insert(argv.begin(), {"stdbuf", "-oL"});
    return argv;
  }

  // Quotas far above what the stalled-subscriber tests send: only the subscriber's pace
  // matters there.
  static constexpr std::string_view kUnlimitedQuotas = R"([mqtt]
device_messages_per_second = 1000000
device_message_burst = 1000000
device_bytes_per_second = 1000000000
device_byte_burst = 1000000000
)";

  // A line-buffered mosquitto_sub as `to`, subscribed to `from`'s telemetry through a route
  // and then stopped (SIGSTOP), so that it reads nothing. Null (with a failure recorded)
  // when any step fails.
  std::unique_ptr<Process> stopped_subscriber(const std::string& from, const std::string& to) {
    auto subscriber = watch_through_route(from, to, "devices/" + from + "/telemetry", "%p");
    if (!subscriber) return nullptr;
    EXPECT_TRUE(subscriber->signal(SIGSTOP));
    return subscriber;
  }

  // `count` messages of about 2 KiB (ids "m-0", "m-1", ...) from `id` at QoS 1, so that each
  // is known to have reached the gateway: 6,000 of them are more than two sockets' buffers
  // hold on loopback.
  void publish_large(const std::string& id, int count) {
    std::string metrics;
    for (int m = 0; m < 8; ++m) metrics += R"(,"note_)" + std::to_string(m) + R"(":")" + std::string(240, 'x') + "\"";
    std::string lines;
    for (int i = 0; i < count; ++i) lines += R"({"id":"m-)" + std::to_string(i) + "\"" + metrics + "}\n";
    auto argv = client("mosquitto_pub", id, "mqttv5");
    argv.insert(argv.end(), {"-q", "1", "-t", "devices/" + id + "/telemetry", "-l"});
    const auto published = run(argv, std::chrono::seconds(120), lines);
    ASSERT_EQ(published.exit_code, 0) << published.err;
  }

  // mosquitto_sub that gives up after `seconds` without a message.
  RunResult subscribe_briefly(const std::string& id, const std::string& version, const std::string& filter,
                              int seconds = 2) const {
    auto argv = client("mosquitto_sub", id, version);
    argv.insert(argv.end(), {"-t", filter, "-d", "-W", std::to_string(seconds)});
    return run(argv, std::chrono::seconds(30));
  }

  // The device's stored messages, decrypted by the running server.
  std::vector<json> stored(const std::string& id) {
    const auto r = torii({"admin", "telemetry", "list", "--device", id, "--limit", "10000"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> rows;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) rows.push_back(json::parse(line));
    return rows;
  }

  json show(const std::string& id) {
    const auto r = torii({"admin", "device", "show", "--id", id});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  std::string security_log() const {
    std::ifstream in(data_dir() / "log" / "security.log");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // The security log's events of one action, oldest first.
  std::vector<json> security_events(const std::string& action) const {
    std::vector<json> out;
    std::istringstream lines(security_log());
    for (std::string line; std::getline(lines, line);) {
      const auto event = json::parse(line, nullptr, false);
      if (event.is_object() && event.value("action", "") == action) out.push_back(event);
    }
    return out;
  }
};

TEST_F(Gateway, MosquittoClientsPublishAtEveryQosInBothVersionsAndEachMessageIsStoredOnce) {
  start();
  create_device("meter-1");
  int sent = 0;
  for (const std::string version : {"mqttv311", "mqttv5"}) {
    for (int qos = 0; qos <= 2; ++qos) {
      const auto id = version + "-q" + std::to_string(qos);
      const auto r =
          publish("meter-1", version, "devices/meter-1/telemetry",
                  R"({"id":")" + id + R"(","temperature":21.5,"door_open":false,"site":"north-wing-7"})", qos);
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
      if (qos == 1) {
        EXPECT_THAT(r.out, HasSubstr("received PUBACK"));
      } else if (qos == 2) {
        EXPECT_THAT(r.out, HasSubstr("received PUBCOMP"));
      }
      ++sent;
    }
  }
  // The same message id again (a retransmission after a lost acknowledgement) is
  // acknowledged but not stored twice.
  ASSERT_EQ(
      publish("meter-1", "mqttv5", "devices/meter-1/telemetry", R"({"id":"mqttv5-q1","temperature":21.5})").exit_code,
      0);

  // QoS 1 and 2 were acknowledged only once stored; QoS 0 is stored as it arrives, so wait
  // for it through the admin command rather than assume.
  std::vector<json> rows;
  for (int i = 0; i < 50 && rows.size() < static_cast<std::size_t>(sent); ++i) {
    rows = stored("meter-1");
    if (rows.size() < static_cast<std::size_t>(sent)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(sent));
  std::set<std::string> ids;
  for (const auto& row : rows) {
    ids.insert(row["message_id"].get<std::string>());
    EXPECT_EQ(row["kind"], "telemetry");
    EXPECT_THAT(row["payload"].get<std::string>(), HasSubstr("temperature"));
  }
  EXPECT_EQ(ids.size(), rows.size());

  // The latest values are kept per metric; payloads and values are sealed in the database
  // file (metric names are not).
  const auto device = show("meter-1");
  EXPECT_EQ(device["latest"]["temperature"]["value"], 21.5);
  EXPECT_EQ(device["latest"]["door_open"]["value"], false);
  EXPECT_EQ(device["stored_messages"], sent);
  ASSERT_EQ(stop(), 0);
  // The per-device counters reached the store (written every 10 s off the I/O thread, the
  // last of them as the server stopped): each mosquitto_pub above was one connection.
  const auto traffic = show("meter-1")["traffic"];
  EXPECT_EQ(traffic["connects"], sent + 1);
  EXPECT_GE(traffic["messages"].get<int>(), sent);
  EXPECT_GT(traffic["bytes"].get<int>(), 0);
  EXPECT_FALSE(traffic.contains("messages_since_start"));  // read from the store, the server being stopped
  std::ifstream db(data_dir() / "torii.db", std::ios::binary);
  std::ostringstream bytes;
  bytes << db.rdbuf();
  EXPECT_EQ(bytes.str().find("north-wing-7"), std::string::npos);
}

TEST_F(Gateway, AHeartbeatWhoseClockIsOffIsAnAlertUntilItIsRightAgain) {
  config_text += "\n[devices]\nmax_clock_skew_seconds = 120\n";
  start();
  create_device("meter-9");
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  auto heartbeat = [](std::int64_t ts) {
    return R"({"type":"heartbeat","ts":)" + std::to_string(ts) + R"(,"uptime_seconds":1})";
  };
  // A device whose clock is an hour behind: beyond the configured 120 s.
  ASSERT_EQ(publish("meter-9", "mqttv5", "devices/meter-9/state", heartbeat(now_ms - 3'600'000)).exit_code, 0);
  ASSERT_EQ(publish("meter-9", "mqttv5", "devices/meter-9/state", heartbeat(now_ms - 3'600'000)).exit_code, 0);
  // The gateway's events are written by the security log's own thread.
  ASSERT_TRUE(eventually([&] { return !security_events("device.clock_skew").empty(); })) << security_log();
  const auto skewed = security_events("device.clock_skew");
  ASSERT_EQ(skewed.size(), 1u) << security_log();
  EXPECT_EQ(skewed[0]["object"], "device:meter-9");
  EXPECT_EQ(skewed[0]["details"]["alert"], true);
  EXPECT_EQ(skewed[0]["details"]["max_clock_skew_seconds"], 120);
  EXPECT_LE(skewed[0]["details"]["skew_seconds"].get<std::int64_t>(), -3'600 + 60);
  // Ninety seconds ahead is within that bound: resolved.
  ASSERT_EQ(publish("meter-9", "mqttv5", "devices/meter-9/state", heartbeat(now_ms + 90'000)).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return !security_events("device.clock_skew_resolved").empty(); })) << security_log();
  EXPECT_EQ(security_events("device.clock_skew_resolved").size(), 1u) << security_log();
  EXPECT_EQ(security_events("device.clock_skew").size(), 1u);
}

// JPCERT VIII-1: a device's tamper event opens one alert, which the operator sees and
// acknowledges; the input's clearing resolves it.
TEST_F(Gateway, ATamperEventOpensAnAlertAndItsClearingResolvesIt) {
  start();
  create_device("door-7");
  auto alerts = [&](const std::string& status) {
    const auto r = torii({"admin", "alerts", "--status", status});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> out;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      const auto alert = json::parse(line, nullptr, false);
      if (alert.is_object() && alert.value("key", "") == "device.tamper:door-7:lid") out.push_back(alert);
    }
    return out;
  };
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(publish("door-7", "mqttv5", "devices/door-7/events", R"({"type":"tamper","metric":"lid"})").exit_code, 0);
  }
  // Raised on the server's alert thread, beside the gateway.
  ASSERT_TRUE(eventually([&] { return !alerts("open").empty(); })) << security_log();
  const auto open = alerts("open");
  ASSERT_EQ(open.size(), 1u) << security_log();
  EXPECT_EQ(open[0]["device"], "door-7");
  EXPECT_EQ(open[0]["severity"], "critical");
  EXPECT_EQ(open[0]["occurrences"], 1) << "the gateway reports a transition once";
  const std::string id = open[0]["id"];
  const auto acked = torii({"admin", "alert", "acknowledge", "--id", id});
  ASSERT_EQ(acked.exit_code, 0) << acked.err;
  EXPECT_THAT(acked.out, HasSubstr("\"acknowledged\""));
  EXPECT_NE(torii({"admin", "alert", "acknowledge", "--id", id}).exit_code, 0) << "acknowledged already";
  EXPECT_EQ(alerts("acknowledged").size(), 1u);

  ASSERT_EQ(
      publish("door-7", "mqttv5", "devices/door-7/events", R"({"type":"tamper_cleared","metric":"lid"})").exit_code, 0);
  ASSERT_TRUE(eventually([&] { return alerts("open,acknowledged").empty(); }));
  const auto resolved = alerts("resolved");
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0]["id"], id);
  EXPECT_EQ(resolved[0]["resolved_by"], "system");
  EXPECT_THAT(security_log(), HasSubstr("\"alert.acknowledged\""));
}

TEST_F(Gateway, AnEventOrResultSentAgainWithItsIdIsStoredOnce) {
  start();
  create_device("door-1");
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(publish("door-1", "mqttv5", "devices/door-1/events", R"({"id":"e-1","type":"tamper"})").exit_code, 0);
    ASSERT_EQ(publish("door-1", "mqttv5", "devices/door-1/results", R"({"id":"r-1","ok":true})").exit_code, 0);
    ASSERT_EQ(publish("door-1", "mqttv5", "devices/door-1/events", R"({"type":"no id"})").exit_code, 0);
  }
  const auto rows = stored("door-1");
  std::multiset<std::string> ids;
  for (const auto& row : rows) ids.insert(row["kind"].get<std::string>() + ":" + row["message_id"].get<std::string>());
  EXPECT_EQ(ids, (std::multiset<std::string>{"events:", "events:", "events:e-1", "results:r-1"}));
}

TEST_F(Gateway, ADeviceSubscribesToItsOwnCommandsAndToNothingElse) {
  start();
  create_device("valve-1");
  create_device("valve-2");
  for (const std::string version : {"mqttv311", "mqttv5"}) {
    const auto own = subscribe_briefly("valve-1", version, "devices/valve-1/commands", 1);
    EXPECT_THAT(own.out, HasSubstr("Subscribed (mid: 1): 0")) << own.out << own.err;
    for (const std::string filter : {"#", "$SYS/#", "devices/+/telemetry", "devices/valve-2/telemetry",
                                     "devices/valve-2/commands", "devices/valve-1/telemetry"}) {
      const auto denied = subscribe_briefly("valve-1", version, filter, 1);
      EXPECT_THAT(denied.err, HasSubstr("All subscription requests were denied")) << version << " " << filter;
    }
  }
}

TEST_F(Gateway, DeviceACannotWriteIntoOrReadFromDeviceB) {
  start();
  create_device("device-a");
  create_device("device-b");

  const auto intrusion = publish("device-a", "mqttv5", "devices/device-b/telemetry", R"({"temperature":99})");
  EXPECT_THAT(intrusion.out, HasSubstr("RC:135"));  // PUBACK 0x87 not authorized
  const auto commands = publish("device-a", "mqttv5", "devices/device-b/commands", R"({"open":true})");
  EXPECT_THAT(commands.out, HasSubstr("RC:135"));
  // 3.1.1 has no negative PUBACK: the message is acknowledged and dropped.
  EXPECT_EQ(publish("device-a", "mqttv311", "devices/device-b/telemetry", R"({"temperature":99})").exit_code, 0);

  // B's own message reaches nobody but the store.
  auto spy_argv = client("mosquitto_sub", "device-a", "mqttv5");
  spy_argv.insert(spy_argv.end(), {"-t", "devices/device-b/telemetry", "-W", "3"});
  Process spy(spy_argv);
  ASSERT_EQ(publish("device-b", "mqttv5", "devices/device-b/telemetry", R"({"temperature":20})").exit_code, 0);
  spy.wait(std::chrono::seconds(10));
  EXPECT_THAT(spy.out(), Not(HasSubstr("temperature")));

  EXPECT_EQ(stored("device-b").size(), 1u);
  EXPECT_EQ(stored("device-a").size(), 0u);
  EXPECT_GE(show("device-a")["traffic"]["refusals_since_start"].get<int>(), 3);
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"mqtt.publish_denied")"));
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"mqtt.subscribe_denied")"));
}

TEST_F(Gateway, ADevicesRenewalTopicsAreItsOwnAndRequestsAreNeverStored) {
  start();
  create_device("device-a");
  create_device("device-b");
  // Nobody renews for another device, or answers in the platform's place.
  for (const std::string topic : {"devices/device-b/renew", "devices/device-b/certificate"}) {
    const auto intrusion = publish("device-a", "mqttv5", topic, R"({"id":"x","csr":"y"})");
    EXPECT_THAT(intrusion.out, HasSubstr("RC:135")) << topic;
    const auto denied = subscribe_briefly("device-a", "mqttv5", topic, 1);
    EXPECT_THAT(denied.err, HasSubstr("All subscription requests were denied")) << topic;
  }
  EXPECT_THAT(publish("device-b", "mqttv5", "devices/device-b/certificate", "{}").out, HasSubstr("RC:135"));
  EXPECT_THAT(subscribe_briefly("device-b", "mqttv5", "devices/device-b/renew", 1).err,
              HasSubstr("All subscription requests were denied"));
  const auto own = subscribe_briefly("device-b", "mqttv5", "devices/device-b/certificate", 1);
  EXPECT_THAT(own.out, HasSubstr("Subscribed (mid: 1): 0")) << own.out << own.err;

  // A device's own request goes to the server's renewal, not to the store: this one holds no
  // CSR and is refused, and logged.
  EXPECT_EQ(publish("device-b", "mqttv5", "devices/device-b/renew", R"({"id":"r-1","csr":"not a CSR"})").exit_code, 0);
  EXPECT_EQ(stored("device-a").size(), 0u);
  EXPECT_EQ(stored("device-b").size(), 0u);
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"certificate.renewal_refused")"));
  EXPECT_THAT(security_log(), Not(HasSubstr(R"("action":"certificate.renewed")")));
}

TEST_F(Gateway, TelemetryIsValidatedAgainstTheDeviceProfile) {
  start();
  std::ofstream(work_dir() / "thermo.json")
      << R"({"metrics":[{"name":"temperature","type":"number","unit":"°C","min":-40,"max":125}]})";
  ::chmod((work_dir() / "thermo.json").c_str(), 0644);
  const auto put =
      torii({"admin", "profile", "put", "--id", "thermo", "--file", (work_dir() / "thermo.json").string()});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  create_device("thermo-1", {"--profile", "thermo"});

  EXPECT_THAT(publish("thermo-1", "mqttv5", "devices/thermo-1/telemetry", R"({"temperature":21})").out,
              HasSubstr("RC:0"));
  for (const std::string bad : {R"({"temperature":500})", R"({"humidity":40})", R"({"temperature":"warm"})",
                                R"(not json)", R"({"temperature":NaN})", R"([1,2])"}) {
    const auto r = publish("thermo-1", "mqttv5", "devices/thermo-1/telemetry", bad);
    EXPECT_THAT(r.out, HasSubstr("RC:153")) << bad;  // 0x99 payload format invalid
  }
  EXPECT_EQ(stored("thermo-1").size(), 1u);

  // A profile with problems is refused with every problem named.
  std::ofstream(work_dir() / "bad.json") << R"({"metrics":[{"name":"Temp","type":"float"}],"colour":1})";
  ::chmod((work_dir() / "bad.json").c_str(), 0644);
  const auto refused = torii({"admin", "profile", "put", "--id", "bad", "--file", (work_dir() / "bad.json").string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr("metrics[0].name"));
  EXPECT_THAT(refused.err, HasSubstr("metrics[0].type"));
  EXPECT_THAT(refused.err, HasSubstr("colour"));
}

TEST_F(Gateway, RevokingADeviceClosesItsLiveSessionAndRefusesItsReturn) {
  start();
  create_device("pump-1");
  auto argv = client("mosquitto_sub", "pump-1", "mqttv5");
  argv.insert(argv.end(), {"-t", "devices/pump-1/commands", "-d"});
  argv.insert(argv.begin(), {"stdbuf", "-oL"});  // its debug lines, as they happen
  Process live(argv);
  ASSERT_TRUE(live.wait_for_output("Subscribed", std::chrono::seconds(10))) << live.out();

  const auto revoked = torii({"admin", "device", "revoke", "--id", "pump-1", "--reason", "stolen"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  // The DISCONNECT is written before the admin command returns; the client then exits.
  EXPECT_EQ(live.wait(std::chrono::seconds(10)), 0);
  EXPECT_THAT(live.out(), HasSubstr("Received DISCONNECT (152)"));  // 0x98 administrative action

  const auto again = publish("pump-1", "mqttv5", "devices/pump-1/telemetry", R"({"t":1})");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("Not authorized"));  // CONNACK 0x87
  const auto again311 = publish("pump-1", "mqttv311", "devices/pump-1/telemetry", R"({"t":1})");
  EXPECT_NE(again311.exit_code, 0);
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(security_log(), HasSubstr(R"("reason":"certificate revoked")"));
}

TEST_F(Gateway, DisabledDevicesAreRefusedUntilEnabled) {
  start();
  create_device("lamp-1");
  ASSERT_EQ(torii({"admin", "device", "disable", "--id", "lamp-1", "--reason", "maintenance"}).exit_code, 0);
  EXPECT_NE(publish("lamp-1", "mqttv5", "devices/lamp-1/telemetry", R"({"on":true})").exit_code, 0);
  ASSERT_EQ(torii({"admin", "device", "enable", "--id", "lamp-1"}).exit_code, 0);
  EXPECT_EQ(publish("lamp-1", "mqttv5", "devices/lamp-1/telemetry", R"({"on":true})").exit_code, 0);
  const auto list = torii({"admin", "device", "list"});
  EXPECT_THAT(list.out, HasSubstr("lamp-1"));
  EXPECT_THAT(list.out, HasSubstr("active"));
}

// A device deleted and made again under the same id starts afresh: the gateway keeps nothing
// of the first one (its counters, quota and ban, traffic history, retained messages).
TEST_F(Gateway, ADeviceMadeAgainUnderADeletedOnesIdStartsWithNothingOfIt) {
  start();
  create_device("pump-1");
  ASSERT_EQ(publish("pump-1", "mqttv5", "devices/pump-1/telemetry", R"({"t":1})").exit_code, 0);
  EXPECT_EQ(show("pump-1")["traffic"]["messages_since_start"], 1);
  const auto deleted = torii({"admin", "device", "delete", "--id", "pump-1", "--yes"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  create_device("pump-1");
  EXPECT_EQ(show("pump-1")["traffic"]["messages_since_start"], 0);
  ASSERT_EQ(publish("pump-1", "mqttv5", "devices/pump-1/telemetry", R"({"t":2})").exit_code, 0);
  EXPECT_EQ(show("pump-1")["traffic"]["messages_since_start"], 1);
}

// What the traffic monitor knows of a device outlives its connections: the eleventh
// connection within a minute is reported as connect flapping, once (IIIT N6).
TEST_F(Gateway, ADeviceReconnectingOverAndOverIsReportedAsFlappingOnce) {
  start();
  create_device("flappy-1");
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(publish("flappy-1", "mqttv5", "devices/flappy-1/telemetry", R"({"t":1})", 0).exit_code, 0) << i;
  }
  const auto flapping = [&] {
    const auto events = security_events("traffic.anomaly");
    return std::count_if(events.begin(), events.end(), [](const json& e) {
      return e["object"] == "device:flappy-1" && e["details"]["anomaly"] == "connect_flapping";
    });
  };
  // The gateway's events are written by the security log's own thread.
  ASSERT_TRUE(eventually([&] { return flapping() > 0; })) << security_log();
  EXPECT_EQ(flapping(), 1) << security_log();
}

TEST_F(Gateway, ACertificateFromAnotherCaIsRefusedAtTheHandshake) {
  start();
  create_device("real-1");
  const auto key = (certs() / "fake-1.key").string();
  const auto crt = (certs() / "fake-1.crt").string();
  ASSERT_EQ(run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                 "/O=torii device/CN=real-1", "-days", "1", "-keyout", key, "-out", crt})
                .exit_code,
            0);
  const auto r = publish("fake-1", "mqttv5", "devices/real-1/telemetry", R"({"t":1})");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(stored("real-1").size(), 0u);
}

TEST_F(Gateway, PerDeviceQuotasRefuseTheExcessAndCountIt) {
  config_text += R"([mqtt]
device_messages_per_second = 1
device_message_burst = 3
)";
  start();
  create_device("chatty-1");
  auto argv = client("mosquitto_pub", "chatty-1", "mqttv5");
  argv.insert(argv.end(), {"-q", "1", "-t", "devices/chatty-1/telemetry", "-l", "-d"});
  std::string lines;
  for (int i = 0; i < 10; ++i) lines += R"({"n":)" + std::to_string(i) + "}\n";
  const auto r = run(argv, std::chrono::seconds(30), lines);
  EXPECT_THAT(r.out, HasSubstr("RC:151"));  // 0x97 quota exceeded
  const auto rows = stored("chatty-1");
  EXPECT_GE(rows.size(), 3u);
  EXPECT_LT(rows.size(), 10u);
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"mqtt.rate_limited")"));
}

TEST_F(Gateway, AClientThatNeverSendsConnectIsClosed) {
  config_text += R"([mqtt]
connect_timeout_seconds = 1
)";
  start();
  create_device("mute-1");
  // TLS completes (the certificate is valid), then nothing: the server closes after 1 s.
  const auto r = run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(gateway_port), "-brief",
                      "-ign_eof", "-CAfile", (certs() / "ca.crt").string(), "-cert", (certs() / "mute-1.crt").string(),
                      "-key", (certs() / "mute-1.key").string()},
                     std::chrono::seconds(30));
  EXPECT_THAT(r.err, HasSubstr("Verification: OK"));
  EXPECT_NE(r.exit_code, -1) << "the server did not close the connection";
}

TEST_F(Gateway, AConnectionSilentForOneAndAHalfKeepAlivesIsClosed) {
  start();
  create_device("quiet-1");
  // An MQTT 3.1.1 CONNECT asking for a 1 s keep-alive, then silence (openssl keeps the
  // connection open after its input ends, until the server closes it).
  const std::string connect{"\x10\x13\x00\x04MQTT\x04\x02\x00\x01\x00\x07quiet-1", 21};
  const auto r = run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(gateway_port), "-quiet",
                      "-ign_eof", "-CAfile", (certs() / "ca.crt").string(), "-cert", (certs() / "quiet-1.crt").string(),
                      "-key", (certs() / "quiet-1.key").string()},
                     std::chrono::seconds(30), connect);
  EXPECT_NE(r.exit_code, -1) << "the server did not close the connection";
  EXPECT_EQ(r.out, std::string("\x20\x02\x00\x00", 4));  // CONNACK accepted, then nothing
}

TEST_F(Gateway, ASecondConnectionOfADeviceTakesOverAndTheFirstIsToldWhy) {
  start();
  create_device("twice-1");
  auto argv = client("mosquitto_sub", "twice-1", "mqttv5");
  argv.insert(argv.end(), {"-t", "devices/twice-1/commands", "-d"});
  argv.insert(argv.begin(), {"stdbuf", "-oL"});
  Process first(argv);
  ASSERT_TRUE(first.wait_for_output("Subscribed", std::chrono::seconds(10))) << first.out();
  // The second connection is accepted and served; the first is closed with 0x8E (session
  // taken over), written before its socket closes.
  const auto second = publish("twice-1", "mqttv5", "devices/twice-1/telemetry", R"({"temperature":21.5})");
  EXPECT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_THAT(second.out, HasSubstr("received PUBACK"));
  EXPECT_TRUE(first.wait_for_output("DISCONNECT (142)", std::chrono::seconds(10))) << first.out();
}

TEST_F(Gateway, ASubscriberThatStopsReadingCostsABoundedBacklogAndIsServedAgainWhenItReads) {
  config_text += std::string(kUnlimitedQuotas) + "max_pending_output_bytes = 65536\n";
  start();
  auto subscriber = stopped_subscriber("hose-1", "stalled-1");
  ASSERT_TRUE(subscriber);
  // The gateway's writes to the stopped subscriber wait for room, and what waits in the
  // server stops at 64 KiB; the rest is dropped (the subscription is QoS 0, which allows it).
  constexpr int kMessages = 6000;
  publish_large("hose-1", kMessages);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(subscriber->signal(SIGCONT));
  // Reading again, it is served again: a message sent once it has caught up arrives (sent
  // until one does, since one sent while the backlog is still full is dropped too).
  int sent_after = 0;
  bool served = false;
  while (sent_after < 20 && !served) {
    const auto r = publish("hose-1", "mqttv5", "devices/hose-1/telemetry",
                           R"({"id":"after-)" + std::to_string(sent_after++) + R"(","temperature":21.5})", 0);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    served = subscriber->wait_for_output(R"("id":"after-)", std::chrono::seconds(3));
  }
  EXPECT_TRUE(served) << "nothing arrived once the subscriber read again";
  std::size_t received = 0;
  for (std::size_t at = subscriber->out().find(R"("id":"m-)"); at != std::string::npos;
       at = subscriber->out().find(R"("id":"m-)", at + 1)) {
    ++received;
  }
  EXPECT_GT(received, 0u);
  EXPECT_LT(received, static_cast<std::size_t>(kMessages))
      << "every message reached the stopped subscriber: its backlog was not bounded";
}

TEST_F(Gateway, AConnectionWhoseLastPacketsThePeerDoesNotReadIsCutLoose) {
  config_text += kUnlimitedQuotas;
  start();
  auto subscriber = stopped_subscriber("hose-2", "stalled-2");
  ASSERT_TRUE(subscriber);
  publish_large("hose-2", 6000);  // fills both sockets' buffers: nothing more can be written
  if (HasFatalFailure()) return;
  ASSERT_EQ(established_connections(server->pid(), gateway_port), 1u);
  // Disabling the device closes its session; its DISCONNECT cannot be written, and after a
  // few seconds without the peer taking anything the server lets go of the connection.
  ASSERT_EQ(torii({"admin", "device", "disable", "--id", "stalled-2", "--reason", "test"}).exit_code, 0);
  std::size_t held = 1;
  for (int i = 0; i < 60 && held > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    held = established_connections(server->pid(), gateway_port);
  }
  EXPECT_EQ(held, 0u) << "the server still holds the connection of a peer that reads nothing";
  subscriber->signal(SIGCONT);
}

TEST_F(Gateway, StoredMessagesSurviveARestart) {
  start();
  create_device("logger-1");
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(publish("logger-1", i % 2 ? "mqttv5" : "mqttv311", "devices/logger-1/telemetry",
                      R"({"id":"m)" + std::to_string(i) + R"(","level":)" + std::to_string(i) + "}")
                  .exit_code,
              0);
  }
  ASSERT_EQ(stop(), 0);
  start();
  const auto rows = stored("logger-1");
  ASSERT_EQ(rows.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rows[static_cast<std::size_t>(i)]["message_id"], "m" + std::to_string(i));
}

TEST_F(Gateway, RetainedMessagesAreKeptSealedAcrossARestartAndAnEmptyOneDeletesThem) {
  start();
  create_routed_pair("sensor-k", "watcher-k");
  ASSERT_FALSE(HasFailure());
  const auto retained = [&](const std::string& topic, std::vector<std::string> extra) {
    auto argv = client("mosquitto_pub", "sensor-k", "mqttv5");
    argv.insert(argv.end(), {"-q", "1", "-r", "-t", topic, "-d"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto r = run(argv, std::chrono::seconds(30));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ASSERT_THAT(r.out, HasSubstr("received PUBACK"));
  };
  retained("devices/sensor-k/state", {"-m", "valve-open-4711", "-D", "publish", "user-property", "origin", "field"});
  retained("devices/sensor-k/events", {"-m", "old-event-4711"});
  retained("devices/sensor-k/events", {"-n"});  // an empty retained message deletes the one kept
  ASSERT_EQ(stop(), 0);
  for (const char* file : {"torii.db", "torii.db-wal"}) {
    std::ifstream db(data_dir() / file, std::ios::binary);
    std::ostringstream bytes;
    bytes << db.rdbuf();
    EXPECT_EQ(bytes.str().find("valve-open-4711"), std::string::npos) << file;
  }

  start();
  auto argv = client("mosquitto_sub", "watcher-k", "mqttv5");
  argv.insert(argv.end(), {"-t", "devices/sensor-k/state", "-C", "1", "-W", "10", "-F", "%t %p retain=%r %P"});
  const auto state = run(argv, std::chrono::seconds(30));
  EXPECT_EQ(state.exit_code, 0) << state.out << state.err;
  EXPECT_THAT(state.out, HasSubstr("devices/sensor-k/state valve-open-4711 retain=1 origin:field"));
  const auto events = subscribe_briefly("watcher-k", "mqttv5", "devices/sensor-k/events", 1);
  EXPECT_THAT(events.out, HasSubstr("Subscribed"));
  EXPECT_THAT(events.out, Not(HasSubstr("old-event")));

  // A kept row that no longer opens (damaged bytes) does not stop the server: it is logged
  // and deleted.
  ASSERT_EQ(stop(), 0);
  ASSERT_EQ(sql("UPDATE mqtt_state SET sealed = X'00' WHERE kind = 'retained'").exit_code, 0);
  start();
  EXPECT_EQ(sql("SELECT count(*) FROM mqtt_state WHERE kind = 'retained'").out, "0\n");
  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(server->err() + server->out(), HasSubstr("cannot be opened and is deleted"));
}

TEST_F(Gateway, APersistentSessionKeepsItsSubscriptionsAndQueuedMessagesAcrossARestart) {
  start();
  create_routed_pair("sensor-s", "display-s");
  ASSERT_FALSE(HasFailure());
  const auto display = [&] { return persistent_subscriber("display-s", "devices/sensor-s/telemetry"); };
  {
    Process away(display());
    ASSERT_TRUE(away.wait_for_output("Subscribed", std::chrono::seconds(10))) << away.out();
    away.kill();
  }
  // Queued while the display is away, then the server restarts.
  ASSERT_EQ(publish("sensor-s", "mqttv5", "devices/sensor-s/telemetry", R"({"temperature":1})").exit_code, 0);
  ASSERT_EQ(stop(), 0);
  start();
  // Routed to the display through the subscription it made before the restart: it has not
  // subscribed since.
  ASSERT_EQ(publish("sensor-s", "mqttv5", "devices/sensor-s/telemetry", R"({"temperature":2})").exit_code, 0);

  Process back(display());
  EXPECT_TRUE(back.wait_for_output(R"(got: {"temperature":1})", std::chrono::seconds(10))) << back.out();
  EXPECT_TRUE(back.wait_for_output(R"(got: {"temperature":2})", std::chrono::seconds(10))) << back.out();
  back.stop();
}

TEST_F(Gateway, AConnectedPersistentSessionKeepsItsSubscriptionsThroughACrashOfTheServer) {
  start();
  create_routed_pair("sensor-c", "display-c");
  ASSERT_FALSE(HasFailure());
  const auto display = [&] { return persistent_subscriber("display-c", "devices/sensor-c/telemetry"); };
  Process connected(display());
  ASSERT_TRUE(connected.wait_for_output("Subscribed", std::chrono::seconds(10))) << connected.out();
  // The subscription is written within a second; the database shows when.
  bool written = false;
  for (int i = 0; i < 100 && !written; ++i) {
    written = sql("SELECT count(*) FROM mqtt_state WHERE kind = 'session' AND device_id = 'display-c'").out == "1\n";
    if (!written) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(written);
  kill();  // SIGKILL: no graceful stop writes anything more
  connected.kill();

  start();
  // Queued for the display through the subscription it made before the crash.
  ASSERT_EQ(publish("sensor-c", "mqttv5", "devices/sensor-c/telemetry", R"({"temperature":3})").exit_code, 0);
  Process back(display());
  EXPECT_TRUE(back.wait_for_output(R"(got: {"temperature":3})", std::chrono::seconds(10))) << back.out();
  back.stop();
}

TEST_F(Gateway, ARouteLetsOneDeviceReadAnotherFromTheMomentItIsAddedUntilItIsRemoved) {
  start();
  create_device("sensor-r", {"--segment", "plant"});
  create_device("display-r", {"--segment", "control"});
  create_device("bystander-r", {"--segment", "control"});
  const std::string filter = "devices/sensor-r/telemetry";
  const std::string denied = "All subscription requests were denied";
  EXPECT_THAT(subscribe_briefly("display-r", "mqttv5", filter, 1).err, HasSubstr(denied));

  // Bad requests are refused with the reason, and nothing is stored (the list below holds
  // only the one route added after them).
  const std::vector<std::array<std::string, 4>> refused = {
      {"add", "device:nobody", "device:display-r", "no device 'nobody'"},
      {"add", "sensor-r", "device:display-r", "expected device:ID or segment:NAME"},
      {"add", "device:sensor-r", "device:sensor-r", "needs no route to itself"},
      {"remove", "device:sensor-r", "device:display-r", "no such route"},
  };
  for (const auto& [op, from, to, why] : refused) {
    const auto r = torii({"admin", "route", op, "--from", from, "--to", to});
    EXPECT_NE(r.exit_code, 0) << op << " " << from << " " << to;
    EXPECT_THAT(r.err, HasSubstr(why));
  }

  const auto added = torii({"admin", "route", "add", "--from", "device:sensor-r", "--to", "device:display-r"});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_TRUE(json::parse(added.out)["created"].get<bool>());
  const auto listed = torii({"admin", "route", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  ASSERT_EQ(json::parse(listed.out).size(), 1u) << listed.out;
  EXPECT_EQ(json::parse(listed.out)[0]["from"], "device:sensor-r");

  // Routes are stored: they hold after a restart.
  ASSERT_EQ(stop(), 0);
  start();
  auto argv = client("mosquitto_sub", "display-r", "mqttv5");
  argv.insert(argv.end(), {"-t", filter, "-d"});
  argv.insert(argv.begin(), {"stdbuf", "-oL"});
  Process display(argv);
  ASSERT_TRUE(display.wait_for_output("Subscribed", std::chrono::seconds(10))) << display.out();
  EXPECT_THAT(display.out(), HasSubstr("Subscribed (mid: 1): 0")) << display.out();  // granted
  EXPECT_THAT(subscribe_briefly("bystander-r", "mqttv5", filter, 1).err, HasSubstr(denied));
  ASSERT_EQ(publish("sensor-r", "mqttv5", "devices/sensor-r/telemetry", R"({"temperature":21})").exit_code, 0);
  EXPECT_TRUE(display.wait_for_output(R"({"temperature":21})", std::chrono::seconds(10))) << display.out();

  // Removed: the live subscription stays, but nothing more is delivered through it.
  const auto removed = torii({"admin", "route", "remove", "--from", "device:sensor-r", "--to", "device:display-r"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  ASSERT_EQ(publish("sensor-r", "mqttv5", "devices/sensor-r/telemetry", R"({"temperature":22})").exit_code, 0);

  // A segment route covers every device of the segments, and only those.
  const auto segments = torii({"admin", "route", "add", "--from", "segment:plant", "--to", "segment:control"});
  ASSERT_EQ(segments.exit_code, 0) << segments.err;
  const auto bystander = subscribe_briefly("bystander-r", "mqttv5", filter, 1);
  EXPECT_THAT(bystander.err, Not(HasSubstr(denied))) << bystander.out << bystander.err;
  ASSERT_EQ(publish("sensor-r", "mqttv5", "devices/sensor-r/telemetry", R"({"temperature":23})").exit_code, 0);
  EXPECT_TRUE(display.wait_for_output(R"({"temperature":23})", std::chrono::seconds(10))) << display.out();
  // Messages go out in order on one connection: 23 arrived, 22 (sent while unrouted) never will.
  EXPECT_THAT(display.out(), Not(HasSubstr(R"({"temperature":22})")));
  display.stop();

  ASSERT_EQ(stop(), 0);
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"route.added")"));
  EXPECT_THAT(security_log(), HasSubstr(R"("action":"route.removed")"));
}

TEST_F(Gateway, AWillIsPublishedWithItsPropertiesWhenTheConnectionIsLost) {
  start();
  auto watched = watch_through_route("sensor-w", "watcher-w", "devices/sensor-w/state", "will: %t %p %P");
  ASSERT_TRUE(watched);
  Process& watcher = *watched;

  auto device = client("mosquitto_sub", "sensor-w", "mqttv5");
  device.insert(device.end(),
                {"-t", "devices/sensor-w/commands", "-d", "--will-topic", "devices/sensor-w/state", "--will-payload",
                 "offline", "--will-qos", "1", "-D", "will", "user-property", "cause", "connection-lost"});
  device.insert(device.begin(), {"stdbuf", "-oL"});
  Process sensor(device);
  ASSERT_TRUE(sensor.wait_for_output("Subscribed", std::chrono::seconds(10))) << sensor.out();
  EXPECT_THAT(watcher.out(), Not(HasSubstr("will:")));  // nothing while the device is connected
  sensor.kill();                                        // no DISCONNECT: the connection is simply gone

  ASSERT_TRUE(watcher.wait_for_output("will: devices/sensor-w/state offline", std::chrono::seconds(10)))
      << watcher.out();
  EXPECT_TRUE(watcher.wait_for_output("cause:connection-lost", std::chrono::seconds(5))) << watcher.out();
  watcher.stop();
}

TEST_F(Gateway, ADelayedWillWaitsForTheDeviceToReturnAndIsSentWhenItDoesNot) {
  start();
  auto watched = watch_through_route("sensor-d", "watcher-d", "devices/sensor-d/state", "got: %p");
  ASSERT_TRUE(watched);
  Process& watcher = *watched;

  // A device with a kept session (expiry one hour) and a will to be sent `delay` s after the
  // connection is lost.
  const auto device = [&](const std::string& delay) {
    auto argv = client("mosquitto_sub", "sensor-d", "mqttv5");
    argv.insert(argv.end(),
                {"-t", "devices/sensor-d/commands", "-d", "-c", "-x", "3600", "--will-topic", "devices/sensor-d/state",
                 "--will-payload", "will-" + delay, "--will-qos", "1", "-D", "will", "will-delay-interval", delay});
    argv.insert(argv.begin(), {"stdbuf", "-oL"});
    return argv;
  };
  // A message of the device's own, from a new connection with a clean start.
  const auto mark = [&](const std::string& text) {
    const auto r = publish("sensor-d", "mqttv5", "devices/sensor-d/state", text);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(watcher.wait_for_output("got: " + text, std::chrono::seconds(10))) << watcher.out();
  };

  // 1. The connection is lost, and the device comes back within the delay to continue its
  //    session: no will, then or later. (Were it still waiting, the clean start of the next
  //    connection would end the session and send it before the mark.)
  {
    Process first(device("30"));
    ASSERT_TRUE(first.wait_for_output("Subscribed", std::chrono::seconds(10))) << first.out();
    first.kill();
    // -E: once subscribed, a normal DISCONNECT, which discards this connection's own will.
    auto argv = device("30");
    argv.emplace_back("-E");
    Process again(argv);
    ASSERT_EQ(again.wait(std::chrono::seconds(20)), 0) << again.out() << again.err();
    ASSERT_THAT(again.out(), HasSubstr("sending DISCONNECT"));
  }
  mark("mark-1");
  EXPECT_THAT(watcher.out(), Not(HasSubstr("got: will-")));

  // 2. Lost, and a new connection starts clean: the old session ends, and its will goes at once,
  //    ahead of the new connection's message.
  {
    Process first(device("30"));
    ASSERT_TRUE(first.wait_for_output("Subscribed", std::chrono::seconds(10))) << first.out();
    first.kill();
  }
  mark("mark-2");
  const auto out = watcher.out();
  ASSERT_THAT(out, HasSubstr("got: will-30"));
  EXPECT_LT(out.find("got: will-30"), out.find("got: mark-2")) << out;

  // 3. Lost, and nothing comes back: the will is sent once its delay has passed.
  {
    Process first(device("2"));
    ASSERT_TRUE(first.wait_for_output("Subscribed", std::chrono::seconds(10))) << first.out();
    first.kill();
  }
  EXPECT_TRUE(watcher.wait_for_output("got: will-2", std::chrono::seconds(15))) << watcher.out();
  watcher.stop();
}

// JPCERT VIII-2: an MQTT channel's alerts reach the backends it names on each one's own
// alerts topic, live or kept for a persistent session while the backend is away; no other
// device can subscribe there, and no device publishes there.
TEST_F(Gateway, AnMqttChannelPublishesAlertsToTheBackendsItNamesOnTheirOwnAlertsTopic) {
  start();
  for (const char* id : {"meter-1", "backend-1", "backend-2", "other-1"}) create_device(id);
  const auto write = [this](const std::string& name, const std::string& text) {
    const auto path = work_dir() / name;
    std::ofstream(path) << text;
    return path.string();
  };
  const auto bus =
      write("bus.json", R"({"name": "bus", "type": "mqtt", "devices": ["backend-1", "backend-2", "gone-1"]})");
  const auto made = torii({"admin", "channel", "create", "--id", "bus", "--file", bus, "--min-severity", "warning"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto rule = write("hot.json", R"j({"name": "hot meter", "selector": {"devices": ["meter-1"]},
      "condition": "temperature > 30", "severity": "warning", "actions": [{"type": "alert"}]})j");
  ASSERT_EQ(torii({"admin", "rule", "create", "--file", rule}).exit_code, 0);

  auto live_argv = client("mosquitto_sub", "backend-1", "mqttv5");
  live_argv.insert(live_argv.end(), {"-q", "1", "-t", "devices/backend-1/alerts", "-F", "got: %p", "-d"});
  live_argv.insert(live_argv.begin(), {"stdbuf", "-oL"});
  Process live(live_argv);
  ASSERT_TRUE(live.wait_for_output("Subscribed (mid: 1): 1", std::chrono::seconds(10))) << live.out();
  {
    Process away(persistent_subscriber("backend-2", "devices/backend-2/alerts"));
    ASSERT_TRUE(away.wait_for_output("Subscribed", std::chrono::seconds(10))) << away.out();
    away.kill();
  }
  EXPECT_THAT(subscribe_briefly("other-1", "mqttv5", "devices/backend-1/alerts", 1).err,
              HasSubstr("All subscription requests were denied"));
  EXPECT_THAT(publish("other-1", "mqttv5", "devices/other-1/alerts", "{}").out, HasSubstr("RC:135"));

  ASSERT_EQ(publish("meter-1", "mqttv5", "devices/meter-1/telemetry", R"({"temperature":40})").exit_code, 0);
  ASSERT_TRUE(live.wait_for_output(R"("event":"alert.opened")", std::chrono::seconds(20))) << live.out();
  ASSERT_EQ(publish("meter-1", "mqttv5", "devices/meter-1/telemetry", R"({"temperature":20})").exit_code, 0);
  ASSERT_TRUE(live.wait_for_output(R"("event":"alert.resolved")", std::chrono::seconds(20))) << live.out();
  live.stop();
  // mosquitto_sub, stopped by SIGTERM as it prints, can write its last line out again (seen
  // once: one "received PUBLISH", then the same "got:" line twice, then "sending DISCONNECT"):
  // a line repeated right after itself is one line. A message the server sent twice would
  // come with a second "received PUBLISH" between the two.
  std::vector<json> notices;
  std::istringstream lines(live.out());
  std::string previous;
  for (std::string line; std::getline(lines, line); previous = line) {
    if (line.starts_with("got: ") && line != previous) notices.push_back(json::parse(line.substr(5)));
  }
  ASSERT_EQ(notices.size(), 2U) << live.out();
  EXPECT_EQ(notices[0]["alert"]["title"], "hot meter");
  EXPECT_EQ(notices[0]["alert"]["device_id"], "meter-1");
  EXPECT_EQ(notices[0]["alert"]["severity"], "warning");
  EXPECT_EQ(notices[1]["alert"]["status"], "resolved");
  EXPECT_NE(notices[0]["delivery"], notices[1]["delivery"]);

  // The backend that was away gets both from its kept session.
  Process back(persistent_subscriber("backend-2", "devices/backend-2/alerts"));
  EXPECT_TRUE(back.wait_for_output(R"("event":"alert.opened")", std::chrono::seconds(10))) << back.out();
  EXPECT_TRUE(back.wait_for_output(R"("event":"alert.resolved")", std::chrono::seconds(10))) << back.out();
  back.stop();
  ASSERT_EQ(stop(), 0);  // its output read to the end
  EXPECT_THAT(server->err(), HasSubstr("the organisation has no device gone-1; nothing was sent to it"));
}

// What a rule's metric actions compute is stored under the device as kind "derived", once
// per message even when the device sends the message again, keyed by the message's id and
// the rule's.
TEST_F(Gateway, ValuesARuleDerivesAreStoredUnderTheDeviceOncePerMessage) {
  start();
  create_device("meter-1");
  const auto rule = work_dir() / "fahrenheit.json";
  std::ofstream(rule) << R"j({"name": "fahrenheit", "selector": {"devices": ["meter-1"]},
      "condition": "temperature > 1000",
      "actions": [{"type": "metric", "name": "temperature_f", "value": "temperature * 9 / 5 + 32"}]})j";
  const auto created = torii({"admin", "rule", "create", "--file", rule.string()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const auto rule_id = json::parse(created.out)["id"].get<std::string>();
  for (const char* message :
       {R"({"id": "m-1", "temperature": 20})", R"({"id": "m-1", "temperature": 20})", R"({"temperature": 25})"}) {
    ASSERT_EQ(publish("meter-1", "mqttv5", "devices/meter-1/telemetry", message).exit_code, 0);
  }
  const auto listed = torii({"admin", "telemetry", "list", "--device", "meter-1"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  std::vector<json> sent;
  std::vector<json> derived;
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto row = json::parse(line);
    (row["kind"] == "derived" ? derived : sent).push_back(row);
  }
  EXPECT_EQ(sent.size(), 2U) << listed.out;
  ASSERT_EQ(derived.size(), 2U) << listed.out;
  EXPECT_EQ(derived[0]["message_id"], "m-1/" + rule_id);
  EXPECT_EQ(json::parse(derived[0]["payload"].get<std::string>()), (json{{"$rule", rule_id}, {"temperature_f", 68.0}}));
  EXPECT_EQ(derived[1]["message_id"], "");
  EXPECT_EQ(json::parse(derived[1]["payload"].get<std::string>())["temperature_f"], 77.0);
}

// A rule selects devices by tag. Tags given at creation and replaced through the CLI while
// the server runs take effect at once: a device tagged later is evaluated from its next
// message, and one untagged is no longer watched, its open alert resolved.
TEST_F(Gateway, ARuleSelectsDevicesByTagAndFollowsTagChangesWhileTheServerRuns) {
  start();
  create_device("meter-1", {"--tag", "cold-room,floor-2"});
  create_device("meter-2");
  const auto rule = work_dir() / "cold.json";
  std::ofstream(rule) << R"j({"name": "cold room warm", "selector": {"tags": ["cold-room"]},
      "condition": "temperature > 8", "actions": [{"type": "alert"}]})j";
  ASSERT_EQ(torii({"admin", "rule", "create", "--file", rule.string()}).exit_code, 0);
  const auto alerts = [this] {
    std::map<std::string, std::string> by_device;  // device → status
    const auto r = torii({"admin", "alerts"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      const auto a = json::parse(line);
      if (a["title"] == "cold room warm") by_device[a["device"]] = a["status"];
    }
    return by_device;
  };
  const auto until = [&](const std::map<std::string, std::string>& want) {
    for (int i = 0; i < 120 && alerts() != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    return alerts() == want;
  };
  const auto listed = torii({"admin", "device", "list"});
  EXPECT_THAT(listed.out, HasSubstr("cold-room,floor-2"));

  for (const char* id : {"meter-1", "meter-2"}) {
    const std::string topic = std::string("devices/") + id + "/telemetry";
    ASSERT_EQ(publish(id, "mqttv5", topic, R"({"temperature":12})").exit_code, 0);
  }
  ASSERT_TRUE(until({{"meter-1", "open"}})) << (stop(), server->err());

  const auto tagged = torii({"admin", "device", "tag", "--id", "meter-2", "--tag", "cold-room"});
  ASSERT_EQ(tagged.exit_code, 0) << tagged.err;
  EXPECT_EQ(json::parse(tagged.out)["tags"], json({"cold-room"}));
  ASSERT_EQ(publish("meter-2", "mqttv5", "devices/meter-2/telemetry", R"({"temperature":12})").exit_code, 0);
  ASSERT_TRUE(until({{"meter-1", "open"}, {"meter-2", "open"}})) << (stop(), server->err());

  ASSERT_EQ(torii({"admin", "device", "tag", "--id", "meter-1", "--none"}).exit_code, 0);
  ASSERT_TRUE(until({{"meter-1", "resolved"}, {"meter-2", "open"}})) << (stop(), server->err());

  const auto bad = torii({"admin", "device", "tag", "--id", "meter-2", "--tag", "Cold Room"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("tags: each must be"));
  EXPECT_NE(torii({"admin", "device", "tag", "--id", "meter-2"}).exit_code, 0) << "--tag or --none";
  ASSERT_EQ(stop(), 0);
  std::ifstream log(data_dir() / "log" / "security.log");
  const std::string events{std::istreambuf_iterator<char>(log), {}};
  EXPECT_THAT(events, HasSubstr(R"("action":"device.tags_changed")"));
}

// JPCERT VI-4, VIII-2: a device certificate near its end is an alert, raised when the server
// starts (and daily), and resolved once the certificate is no longer in use.
TEST_F(Gateway, ADeviceCertificateNearItsEndIsAnAlertUntilItIsNoLongerInUse) {
  config_text += "[pki]\ndevice_certificate_lifetime_days = 10\n";
  start();
  create_device("meter-1");
  create_device("meter-2");
  const auto alerts = [this] {
    std::map<std::string, json> by_device;
    const auto r = torii({"admin", "alerts"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      auto a = json::parse(line);
      if (a["title"] == "Certificate expires soon") by_device[a["device"]] = a;
    }
    return by_device;
  };
  EXPECT_TRUE(alerts().empty()) << "checked at start and daily, not at each issue";
  ASSERT_EQ(stop(), 0);
  start();
  auto raised = alerts();
  ASSERT_EQ(raised.size(), 2U);
  EXPECT_EQ(raised["meter-1"]["status"], "open");
  EXPECT_EQ(raised["meter-1"]["severity"], "warning");
  EXPECT_THAT(raised["meter-1"]["summary"].get<std::string>(), HasSubstr("the certificate of device meter-1"));

  ASSERT_EQ(torii({"admin", "device", "revoke", "--id", "meter-2"}).exit_code, 0);
  ASSERT_EQ(stop(), 0);
  start();
  raised = alerts();
  EXPECT_EQ(raised["meter-1"]["status"], "open");
  EXPECT_EQ(raised["meter-1"]["occurrences"], 2);
  EXPECT_EQ(raised["meter-2"]["status"], "resolved");
  EXPECT_EQ(raised["meter-2"]["resolved_by"], "system");
  ASSERT_EQ(stop(), 0);
}

}  // namespace
}  // namespace torii::testing

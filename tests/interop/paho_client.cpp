// A device as the Eclipse Paho MQTT C client (synchronous MQTTClient API, SSL variant
// libpaho-mqtt3cs) sees torii's gateway: mutual TLS, MQTT 3.1.1 or 5.0. The integration
// tests (tests/integration/interop_test.cpp) run it as a child process and read its
// standard output: one line per event, flushed as it happens.
//
//   paho_client publish --host H --port P --cafile F --cert F --key F --device ID --count N
//                       [--qos 0|1|2] [--version 311|5] [--rate R] [--prefix S]
//                       [--inflight W] [--seconds S] [--topic T] [--ack-timeout S]
//     Publishes N messages {"id":"<prefix><i>","seq":<i>} (i = 0 … N-1) to
//     devices/ID/telemetry (or --topic) at R messages/s (0, the default: as fast as
//     possible), with at most W (default 1) unacknowledged at once. --seconds, or SIGTERM /
//     SIGINT, stops publishing early: what is in flight is still waited for, then "done".
//     Acknowledgements are reported in publishing order:
//       acked <i>            QoS 1/2: acknowledged (MQTT 5: PUBACK / PUBCOMP reason < 0x80)
//       refused <i> <rc>     MQTT 5: PUBACK or PUBREC with reason code rc >= 0x80 (decimal)
//       sent <i>             QoS 0: handed to the connection (there is no acknowledgement)
//       disconnected <rc>    MQTT 5: the server sent DISCONNECT with reason code rc
//       lost after <n>       the connection ended after n messages completed; exit code 2
//       done <n>             all n messages completed; exit code 0
//
//   paho_client subscribe (connection options as above) --topic T [--qos Q] [--seconds S]
//       granted <qos>        the SUBACK granted the subscription
//       denied <rc>          the SUBACK refused it (5.0: its reason code; 3.1.1: 128)
//       message <topic> <payload>
//     Receives for S seconds (default 0), then disconnects: exit code 0 (2 on connection loss).
//
//   Both: "connect failed <rc>" and exit code 1 when the connection is refused (rc: the
//   CONNACK reason code or 3.1.1 return code, or a negative Paho error code); exit code 3
//   when an acknowledgement does not arrive within --ack-timeout seconds (default 60);
//   64 on bad usage.
//
// The client runs in Paho's callback mode (MQTTClient_setCallbacks starts the library's
// receive thread): MQTTClient_waitForCompletion polls in 100 ms steps, too coarse for a
// client that waits for every acknowledgement. Completions come from the
// MQTTClient_deliveryComplete callback (3.1.1) or the MQTTClient_published callback (5.0,
// which carries the reason code); the main thread waits for them on a condition variable.
#include <MQTTClient.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kExitUsage = 64;
constexpr int kExitConnect = 1;
constexpr int kExitLost = 2;
constexpr int kExitTimeout = 3;
// Messages acknowledged but not reported yet (an older one is still waiting) are bounded,
// so that the library cannot reuse a packet id (1-65535, assigned in turn) that is still
// waiting here to be reported.
constexpr std::size_t kMaxUnreported = 4096;
constexpr int kPacketTypePubrec = 5;  // MQTT control packet type (§2.1.2); Paho's own constant is internal

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  std::string port;
  std::string cafile;
  std::string cert;
  std::string key;
  std::string device;
  std::string topic;
  std::string prefix;
  long count = 1;
  int qos = 1;
  int version = 5;
  double rate = 0;
  int inflight = 1;
  double seconds = -1;  // publish: no time bound; subscribe: 0
  long ack_timeout_seconds = 60;
};

// Ends the program with this exit code (thrown to main, so that destructors run).
struct Exit {
  int code;
};

volatile std::sig_atomic_t stop_requested = 0;  // SIGTERM / SIGINT

extern "C" void request_stop(int /*signal*/) { stop_requested = 1; }

std::mutex output_mutex;  // lines come from the main thread and the library's threads

void line(const std::string& text) {
  const std::lock_guard lock(output_mutex);
  std::fputs(text.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "paho_client: %s\n", why.c_str());
  std::fputs(
      "usage: paho_client publish|subscribe --host H --port P --cafile F --cert F --key F --device ID\n"
      "         [--version 311|5] [--qos 0|1|2] [--count N] [--rate R] [--prefix S] [--inflight W]\n"
      "         [--topic T] [--seconds S] [--ack-timeout S]\n",
      stderr);
  throw Exit{kExitUsage};
}

long to_long(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') usage(flag + ": not an integer: " + text);
  return v;
}

double to_double(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') usage(flag + ": not a number: " + text);
  return v;
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("no mode");
  Options o;
  o.mode = argv[1];
  if (o.mode != "publish" && o.mode != "subscribe") usage("unknown mode " + o.mode);
  for (int i = 2; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--host") {
      o.host = value;
    } else if (flag == "--port") {
      o.port = value;
    } else if (flag == "--cafile") {
      o.cafile = value;
    } else if (flag == "--cert") {
      o.cert = value;
    } else if (flag == "--key") {
      o.key = value;
    } else if (flag == "--device") {
      o.device = value;
    } else if (flag == "--topic") {
      o.topic = value;
    } else if (flag == "--prefix") {
      o.prefix = value;
    } else if (flag == "--count") {
      o.count = to_long(flag, value);
    } else if (flag == "--qos") {
      o.qos = static_cast<int>(to_long(flag, value));
    } else if (flag == "--version") {
      const long v = to_long(flag, value);
      if (v != 311 && v != 5) usage("--version must be 311 or 5");
      o.version = static_cast<int>(v);
    } else if (flag == "--rate") {
      o.rate = to_double(flag, value);
    } else if (flag == "--inflight") {
      o.inflight = static_cast<int>(to_long(flag, value));
    } else if (flag == "--seconds") {
      o.seconds = to_double(flag, value);
    } else if (flag == "--ack-timeout") {
      o.ack_timeout_seconds = to_long(flag, value);
    } else {
      usage("unknown option " + flag);
    }
  }
  if (o.port.empty() || o.cafile.empty() || o.cert.empty() || o.key.empty() || o.device.empty()) {
    usage("--port, --cafile, --cert, --key and --device are required");
  }
  if (o.qos < 0 || o.qos > 2) usage("--qos must be 0, 1 or 2");
  // 64: the gateway's default receive maximum; more in flight closes the connection.
  if (o.count < 0 || o.rate < 0 || o.inflight < 1 || o.inflight > 64 || o.ack_timeout_seconds < 1) {
    usage("--count, --rate, --inflight (1-64) or --ack-timeout out of range");
  }
  if (o.mode == "subscribe" && o.topic.empty()) usage("subscribe needs --topic");
  if (o.mode == "subscribe" && o.seconds < 0) o.seconds = 0;
  if (o.topic.empty()) o.topic = "devices/" + o.device + "/telemetry";
  return o;
}

// What the library's callbacks report, read by the main thread. Guarded by mutex.
struct Events {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<int, int> completed;  // delivery token (packet id) → reason code of its final acknowledgement
  bool lost = false;
};

// MQTT 5: called for every PUBACK and PUBCOMP, and for a PUBREC with an error reason code
// (which ends the QoS 2 flow), before the library forgets the message.
void on_published(void* context, int token, int packet_type, MQTTProperties* /*properties*/,
                  enum MQTTReasonCodes reason) {
  auto& events = *static_cast<Events*>(context);
  if (packet_type == kPacketTypePubrec && reason < MQTTREASONCODE_UNSPECIFIED_ERROR) return;  // PUBREL / PUBCOMP follow
  {
    const std::lock_guard lock(events.mutex);
    events.completed[token] = static_cast<int>(reason);
  }
  events.changed.notify_all();
}

// MQTT 3.1.1: called for every PUBACK and PUBCOMP.
void on_delivered(void* context, MQTTClient_deliveryToken token) {
  auto& events = *static_cast<Events*>(context);
  {
    const std::lock_guard lock(events.mutex);
    events.completed[token] = 0;
  }
  events.changed.notify_all();
}

void on_connection_lost(void* context, char* /*cause*/) {
  auto& events = *static_cast<Events*>(context);
  {
    const std::lock_guard lock(events.mutex);
    events.lost = true;
  }
  events.changed.notify_all();
}

// MQTT 5: the server sent DISCONNECT. The library does not call on_connection_lost then.
void on_disconnected(void* context, MQTTProperties* /*properties*/, enum MQTTReasonCodes reason) {
  line("disconnected " + std::to_string(static_cast<int>(reason)));
  on_connection_lost(context, nullptr);
}

int on_message(void* /*context*/, char* topic, int topic_len, MQTTClient_message* message) {
  const std::string name = topic_len > 0 ? std::string(topic, static_cast<std::size_t>(topic_len)) : topic;
  line("message " + name + " " +
       std::string(static_cast<const char*>(message->payload), static_cast<std::size_t>(message->payloadlen)));
  MQTTClient_freeMessage(&message);
  MQTTClient_free(topic);
  return 1;
}

class Client {
 public:
  explicit Client(const Options& o) : o_(o) {
    const std::string uri = "ssl://" + o.host + ":" + o.port;
    MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
    create.MQTTVersion = v5() ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    int rc = MQTTClient_createWithOptions(&client_, uri.c_str(), o.device.c_str(), MQTTCLIENT_PERSISTENCE_NONE, nullptr,
                                          &create);
    if (rc == MQTTCLIENT_SUCCESS) {
      rc = MQTTClient_setCallbacks(client_, &events_, on_connection_lost, on_message, v5() ? nullptr : on_delivered);
    }
    if (rc == MQTTCLIENT_SUCCESS && v5()) rc = MQTTClient_setPublished(client_, &events_, on_published);
    if (rc == MQTTCLIENT_SUCCESS && v5()) rc = MQTTClient_setDisconnected(client_, &events_, on_disconnected);
    if (rc != MQTTCLIENT_SUCCESS) {
      line("connect failed " + std::to_string(rc));
      throw Exit{kExitConnect};
    }
  }
  ~Client() { MQTTClient_destroy(&client_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  [[nodiscard]] bool v5() const { return o_.version == 5; }
  MQTTClient handle() { return client_; }
  Events& events() { return events_; }

  // Exits with "connect failed <rc>" when refused.
  void connect() {
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    ssl.trustStore = o_.cafile.c_str();
    ssl.keyStore = o_.cert.c_str();
    ssl.privateKey = o_.key.c_str();
    ssl.enableServerCertAuth = 1;
    ssl.verify = 1;                             // the server certificate must name the host
    ssl.sslVersion = MQTT_SSL_VERSION_DEFAULT;  // TLS 1.2 or 1.3, as the server prefers

    int rc = 0;
    if (v5()) {
      MQTTClient_connectOptions options = MQTTClient_connectOptions_initializer5;
      configure(options, ssl);
      options.cleanstart = 1;
      MQTTResponse response = MQTTClient_connect5(client_, &options, nullptr, nullptr);
      rc = static_cast<int>(response.reasonCode);
      MQTTResponse_free(response);
    } else {
      MQTTClient_connectOptions options = MQTTClient_connectOptions_initializer;
      configure(options, ssl);
      options.MQTTVersion = MQTTVERSION_3_1_1;
      options.cleansession = 1;
      rc = MQTTClient_connect(client_, &options);
    }
    if (rc != MQTTCLIENT_SUCCESS) {
      line("connect failed " + std::to_string(rc));
      throw Exit{kExitConnect};
    }
  }

  void disconnect() {
    if (MQTTClient_isConnected(client_)) MQTTClient_disconnect(client_, 1000);
  }

 private:
  void configure(MQTTClient_connectOptions& options, MQTTClient_SSLOptions& ssl) const {
    options.keepAliveInterval = 30;
    options.connectTimeout = 30;
    options.reliable = 0;
    options.maxInflightMessages = o_.inflight;
    options.ssl = &ssl;
  }

  const Options& o_;
  MQTTClient client_ = nullptr;
  Events events_;
};

int publish(const Options& o) {
  Client client(o);
  client.connect();
  Events& events = client.events();
  const auto start = Clock::now();
  const std::optional<Clock::time_point> stop_at =
      o.seconds >= 0
          ? std::optional(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds)))
          : std::nullopt;
  long completed = 0;
  std::deque<std::pair<long, MQTTClient_deliveryToken>> pending;  // oldest first

  const auto ack_timeout = std::chrono::seconds(o.ack_timeout_seconds);
  const auto report = [&](long index, int reason) {
    if (reason >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
      line("refused " + std::to_string(index) + " " + std::to_string(reason));
    } else {
      line("acked " + std::to_string(index));
    }
    ++completed;
  };
  // Reports the oldest pending message once its acknowledgement is in. Called with the lock.
  const auto report_oldest = [&]() -> bool {
    const auto [index, token] = pending.front();
    const auto it = events.completed.find(token);
    if (it == events.completed.end()) return false;
    report(index, it->second);
    events.completed.erase(it);
    pending.pop_front();
    return true;
  };
  const auto report_in_order = [&] {
    while (!pending.empty() && report_oldest()) {
    }
  };
  // Sent and not acknowledged yet; the window counts these, not those waiting to be reported
  // behind an older one. Called with the lock.
  const auto unacknowledged = [&] {
    return static_cast<std::size_t>(std::count_if(pending.begin(), pending.end(),
                                                  [&](const auto& p) { return !events.completed.contains(p.second); }));
  };
  // The connection ended: every acknowledgement that arrived before still counts.
  const auto lost = [&](std::unique_lock<std::mutex>& lock) {
    for (const auto& [index, token] : pending) {
      if (const auto it = events.completed.find(token); it != events.completed.end()) report(index, it->second);
    }
    pending.clear();
    lock.unlock();
    line("lost after " + std::to_string(completed));
    return kExitLost;
  };
  // Reports acknowledgements in publishing order and waits until at most `limit` messages
  // are unacknowledged; non-zero: the exit code. Times out when no acknowledgement arrives
  // for --ack-timeout.
  const auto drain_to = [&](std::size_t limit) -> int {
    std::unique_lock lock(events.mutex);
    std::size_t waiting = unacknowledged();
    auto deadline = Clock::now() + ack_timeout;
    for (;;) {
      report_in_order();
      const std::size_t now_waiting = unacknowledged();
      if (now_waiting <= limit && pending.size() <= kMaxUnreported) return 0;
      if (events.lost) return lost(lock);
      if (now_waiting < waiting) {
        waiting = now_waiting;
        deadline = Clock::now() + ack_timeout;
      }
      if (events.changed.wait_until(lock, deadline) == std::cv_status::timeout && unacknowledged() == waiting &&
          !events.lost) {
        const auto oldest = std::find_if(pending.begin(), pending.end(),
                                         [&](const auto& p) { return !events.completed.contains(p.second); });
        lock.unlock();
        line("timeout " + std::to_string(oldest->first));
        return kExitTimeout;
      }
    }
  };

  for (long i = 0; i < o.count; ++i) {
    if (stop_requested != 0 || (stop_at && Clock::now() >= *stop_at)) break;
    if (o.rate > 0) {
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(i) / o.rate));
      std::unique_lock lock(events.mutex);
      // Acknowledgements are reported as they come, also while waiting for the next slot.
      for (;;) {
        report_in_order();
        if (events.lost) return lost(lock);
        if (Clock::now() >= due) break;
        events.changed.wait_until(lock, due);
      }
    }
    const std::string payload = R"({"id":")" + o.prefix + std::to_string(i) + R"(","seq":)" + std::to_string(i) + "}";
    MQTTClient_deliveryToken token = 0;
    int rc = 0;
    if (client.v5()) {
      MQTTResponse response = MQTTClient_publish5(client.handle(), o.topic.c_str(), static_cast<int>(payload.size()),
                                                  payload.data(), o.qos, 0, nullptr, &token);
      rc = static_cast<int>(response.reasonCode);
      MQTTResponse_free(response);
    } else {
      rc = MQTTClient_publish(client.handle(), o.topic.c_str(), static_cast<int>(payload.size()), payload.data(), o.qos,
                              0, &token);
    }
    if (rc != MQTTCLIENT_SUCCESS || !MQTTClient_isConnected(client.handle())) {
      std::unique_lock lock(events.mutex);
      return lost(lock);
    }
    if (o.qos == 0) {
      line("sent " + std::to_string(i));
      ++completed;
      continue;
    }
    {
      const std::lock_guard lock(events.mutex);
      pending.emplace_back(i, token);
    }
    if (const int r = drain_to(static_cast<std::size_t>(o.inflight) - 1); r != 0) return r;
  }
  if (const int r = drain_to(0); r != 0) return r;
  client.disconnect();
  line("done " + std::to_string(completed));
  return 0;
}

int subscribe(const Options& o) {
  Client client(o);
  client.connect();
  std::string filter = o.topic;
  char* topics[] = {filter.data()};
  int qos[] = {o.qos};
  MQTTSubscribe_options options = MQTTSubscribe_options_initializer;
  MQTTResponse response =
      MQTTClient_subscribeMany5(client.handle(), 1, topics, qos, client.v5() ? &options : nullptr, nullptr);
  // MQTT 5: the SUBACK's reason code; 3.1.1: the granted QoS (0x80: failure) replaces qos[0].
  const int rc = static_cast<int>(response.reasonCode);
  MQTTResponse_free(response);
  if (rc < 0) {
    line("lost after 0");
    return kExitLost;
  }
  const int granted = client.v5() ? rc : qos[0];
  line((granted >= MQTT_BAD_SUBSCRIBE ? "denied " : "granted ") + std::to_string(granted));

  Events& events = client.events();
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  {
    std::unique_lock lock(events.mutex);
    while (Clock::now() < deadline && stop_requested == 0) {
      // In steps, so that a stop signal is noticed.
      events.changed.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(100)));
      if (events.lost) {
        lock.unlock();
        line("lost after 0");
        return kExitLost;
      }
    }
  }
  client.disconnect();
  return 0;
}

}  // namespace

// LeakSanitizer (the asan-ubsan preset): when a connection is lost, libpaho-mqtt3cs 1.3
// does not free the OpenSSL objects of its TLS session; the leaked blocks' stacks end in
// libcrypto, through which nothing else in this program allocates. Defined in every build:
// this file is compiled without instrumentation even there (it is test code) but linked with
// the sanitizer runtime, which asks for the hook; elsewhere nothing calls it.
extern "C" const char* __lsan_default_suppressions() {  // NOLINT(bugprone-reserved-identifier)
  return "leak:libcrypto.so\n";
}

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    std::signal(SIGTERM, request_stop);
    std::signal(SIGINT, request_stop);
    return o.mode == "publish" ? publish(o) : subscribe(o);
  } catch (const Exit& e) {
    return e.code;
  }
}

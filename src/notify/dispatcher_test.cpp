// The dispatcher against real receivers on 127.0.0.1 (port 0): an HTTPS webhook receiver and a
// TLS syslog receiver written here on blocking Asio, with certificates made at test time, and
// the tree's SMTP sink (testing/smtp_sink.h) for e-mail.
#include "notify/dispatcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "mail/outbox.h"
#include "net/tls_context.h"
#include "testing/fakes.h"
#include "testing/smtp_sink.h"
#include "testing/temp_dir.h"

namespace torii::notify {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

struct Certificates {
  std::string ca_pem;
  std::string chain_pem;
  crypto::SecretBytes key_pem;
};

Certificates make_certificates(const std::string& ip = "127.0.0.1") {
  crypto::SystemRandom random;
  const auto now = std::chrono::system_clock::now();
  auto ca_key = *crypto::generate_p256_key();
  Certificates out;
  out.ca_pem = *crypto::make_root_ca(ca_key, "notify test CA", now, std::chrono::hours(1), random);
  out.key_pem = *crypto::generate_p256_key();
  auto leaf = crypto::issue_server_certificate({out.ca_pem, &ca_key}, out.key_pem, {{}, {ip}}, now,
                                               std::chrono::hours(1), random);
  EXPECT_TRUE(leaf.has_value());
  out.chain_pem = leaf.value_or("") + out.ca_pem;
  return out;
}

struct Request {
  std::string head;  // request line and headers
  std::string body;
  [[nodiscard]] std::string header(const std::string& name) const {
    const auto at = head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return {};
    const auto start = at + name.size() + 4;
    return head.substr(start, head.find("\r\n", start) - start);
  }
};

// A TLS server on a thread of its own, one connection at a time, blocking Asio. `serve`
// handles one connection's stream.
class TlsReceiver {
 public:
  using Serve = std::function<void(ssl::stream<tcp::socket>&)>;

  TlsReceiver(const Certificates& certificates, Serve serve) : serve_(std::move(serve)) {
    auto context =
        net::make_server_tls_context(config::TlsConfig{}, {certificates.chain_pem, certificates.key_pem}, std::nullopt);
    EXPECT_TRUE(context.has_value());
    context_ = *context;
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address_v4("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~TlsReceiver() {
    stopping_ = true;
    // Wakes the blocking accept with a connection of our own.
    asio::io_context io;
    tcp::socket wake(io);
    error_code ignored;
    wake.connect({asio::ip::make_address_v4("127.0.0.1"), port_}, ignored);
    thread_.join();
  }
  TlsReceiver(const TlsReceiver&) = delete;
  TlsReceiver& operator=(const TlsReceiver&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] int handshakes() const { return handshakes_; }

 private:
  void run() {
    while (!stopping_) {
      error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec || stopping_) continue;
      ssl::stream<tcp::socket> stream(std::move(socket), *context_);
      stream.handshake(ssl::stream_base::server, ec);
      if (ec) continue;
      ++handshakes_;
      serve_(stream);
      stream.shutdown(ec);
    }
  }

  Serve serve_;
  asio::io_context io_;
  std::shared_ptr<ssl::context> context_;
  tcp::acceptor acceptor_{io_};
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_ = false;
  std::atomic<int> handshakes_ = 0;
  std::thread thread_;
};

// Records every request; answers each with the next status of `statuses` (the last one again
// when they run out).
class WebhookReceiver {
 public:
  WebhookReceiver(const Certificates& certificates, std::vector<int> statuses)
      : statuses_(std::move(statuses)), server_(certificates, [this](auto& stream) { serve(stream); }) {}

  [[nodiscard]] std::uint16_t port() const { return server_.port(); }
  [[nodiscard]] int handshakes() const { return server_.handshakes(); }
  [[nodiscard]] std::vector<Request> requests() const {
    const std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve(ssl::stream<tcp::socket>& stream) {
    std::string data;
    error_code ec;
    const auto head_end = asio::read_until(stream, asio::dynamic_buffer(data), "\r\n\r\n", ec);
    if (ec) return;
    Request request{data.substr(0, head_end), data.substr(head_end)};
    const auto length = std::stoul(request.header("Content-Length"));
    if (request.body.size() < length) {
      std::string rest(length - request.body.size(), '\0');
      asio::read(stream, asio::buffer(rest), ec);
      request.body += rest;
    }
    int status = 0;
    {
      const std::lock_guard lock(mutex_);
      status = statuses_[std::min(requests_.size(), statuses_.size() - 1)];
      requests_.push_back(std::move(request));
    }
    const std::string answer =
        "HTTP/1.1 " + std::to_string(status) + " Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    asio::write(stream, asio::buffer(answer), ec);
  }

  const std::vector<int> statuses_;
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  TlsReceiver server_;  // last: its thread calls serve()
};

// Reads one RFC 5425 frame per connection.
class SyslogReceiver {
 public:
  explicit SyslogReceiver(const Certificates& certificates)
      : server_(certificates, [this](auto& stream) { serve(stream); }) {}
  [[nodiscard]] std::uint16_t port() const { return server_.port(); }
  [[nodiscard]] std::vector<std::string> frames() const {
    const std::lock_guard lock(mutex_);
    return frames_;
  }

 private:
  void serve(ssl::stream<tcp::socket>& stream) {
    std::string data;
    error_code ec;
    const auto space = asio::read_until(stream, asio::dynamic_buffer(data), ' ', ec);
    if (ec) return;
    const auto length = std::stoul(data.substr(0, space - 1));
    std::string message = data.substr(space);
    if (message.size() < length) {
      std::string rest(length - message.size(), '\0');
      asio::read(stream, asio::buffer(rest), ec);
      message += rest;
    }
    const std::lock_guard lock(mutex_);
    frames_.push_back(data.substr(0, space) + message);
  }

  mutable std::mutex mutex_;
  std::vector<std::string> frames_;
  TlsReceiver server_;
};

template <class Condition>
bool eventually(Condition condition, std::chrono::seconds timeout = 20s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

AlertNotice sample_notice(std::string id = "al-1") {
  AlertNotice a;
  a.id = std::move(id);
  a.organisation_id = "org-1";
  a.severity = "critical";
  a.title = "Posture violation";
  a.summary = "telnet is listening";
  a.device_id = "dev-1";
  a.status = "open";
  a.opened_at = 1'790'000'000'000;
  return a;
}

// A fake clock the dispatcher's thread may read while the test moves it.
class SharedFakeClock final : public Clock {
 public:
  explicit SharedFakeClock(std::chrono::system_clock::time_point start) : now_(start.time_since_epoch().count()) {}
  [[nodiscard]] std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(std::chrono::system_clock::duration(now_.load()));
  }
  void advance(std::chrono::system_clock::duration d) { now_ += d.count(); }

 private:
  std::atomic<std::chrono::system_clock::rep> now_;
};

const std::string kSecret = "whsec-" + std::string(40, 'q');

class DispatcherTest : public ::testing::Test {
 protected:
  Dispatcher::Options options() {
    Dispatcher::Options o;
    o.clock = &clock;
    o.random = &random;
    o.hostname = "gw-test";
    o.policy.timeout = 5s;
    o.policy.allow_local_destinations = true;     // the receivers are on 127.0.0.1
    o.backoff = [](std::size_t) { return 5ms; };  // the schedule itself: BackoffDelay below
    o.on_dead_letter = [this](const std::string& channel, const std::string& delivery, const std::string& reason) {
      const std::lock_guard lock(mutex);
      dead.push_back({channel, delivery, reason});
    };
    return o;
  }

  Channel webhook(std::uint16_t port, const std::string& ca_pem) {
    testing::SeededRandom seeded;
    auto channel = parse_channel(nlohmann::json{{"name", "hook"},
                                                {"type", "webhook"},
                                                {"url", "https://127.0.0.1:" + std::to_string(port) + "/hook?x=1"},
                                                {"secret", kSecret},
                                                {"ca", ca_pem}},
                                 seeded);
    EXPECT_TRUE(channel.has_value());
    return *channel;
  }

  std::vector<std::vector<std::string>> dead_letters() {
    const std::lock_guard lock(mutex);
    return dead;
  }

  SystemClock clock;
  crypto::SystemRandom random;
  Certificates certificates = make_certificates();
  std::mutex mutex;
  std::vector<std::vector<std::string>> dead;
};

TEST_F(DispatcherTest, AWebhookArrivesSignedOverVerifiedTls) {
  WebhookReceiver receiver(certificates, {204});
  Dispatcher dispatcher(options());
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(receiver.port(), certificates.ca_pem)).has_value());
  auto delivery = dispatcher.notify("c1", sample_notice());
  ASSERT_TRUE(delivery.has_value()) << delivery.error().message;
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").delivered == 1; }));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1U);
  const auto& request = requests[0];
  EXPECT_TRUE(request.head.starts_with("POST /hook?x=1 HTTP/1.1\r\n")) << request.head;
  EXPECT_EQ(request.header("Host"), "127.0.0.1:" + std::to_string(receiver.port()));
  EXPECT_EQ(request.header("Content-Type"), "application/json");
  EXPECT_EQ(request.header("X-Torii-Delivery"), *delivery);
  EXPECT_TRUE(verify_signature(kSecret, request.header("X-Torii-Timestamp"), request.body,
                               request.header("X-Torii-Signature"), std::chrono::system_clock::now()));
  EXPECT_FALSE(verify_signature("another-" + kSecret, request.header("X-Torii-Timestamp"), request.body,
                                request.header("X-Torii-Signature"), std::chrono::system_clock::now()));
  const auto body = nlohmann::json::parse(request.body);
  EXPECT_EQ(body["event"], "alert.opened");
  EXPECT_EQ(body["delivery"], *delivery);
  EXPECT_EQ(body["alert"]["id"], "al-1");
  EXPECT_EQ(request.head.find(kSecret), std::string::npos);
  EXPECT_EQ(request.body.find(kSecret), std::string::npos);
}

TEST_F(DispatcherTest, TwoFailuresThenDeliveredOnTheThirdAttempt) {
  WebhookReceiver receiver(certificates, {500, 500, 200});
  Dispatcher dispatcher(options());
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(receiver.port(), certificates.ca_pem)).has_value());
  auto delivery = dispatcher.notify("c1", sample_notice());
  ASSERT_TRUE(delivery.has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").delivered == 1; }));
  const auto stats = dispatcher.stats("c1");
  EXPECT_EQ(stats.failed_attempts, 2U);
  EXPECT_EQ(stats.dead_letters, 0U);
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3U);
  for (const auto& r : requests) EXPECT_EQ(r.header("X-Torii-Delivery"), *delivery);
  EXPECT_TRUE(dead_letters().empty());
}

TEST_F(DispatcherTest, AReceiverThatAlwaysFailsMakesADeadLetterAfterMaxAttempts) {
  WebhookReceiver receiver(certificates, {500});
  auto o = options();
  o.policy.max_attempts = 4;
  Dispatcher dispatcher(o);
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(receiver.port(), certificates.ca_pem)).has_value());
  auto delivery = dispatcher.notify("c1", sample_notice());
  ASSERT_TRUE(delivery.has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").dead_letters == 1; }));
  EXPECT_EQ(receiver.requests().size(), 4U);
  EXPECT_EQ(dispatcher.stats("c1").failed_attempts, 4U);
  const auto letters = dispatcher.dead_letters();
  ASSERT_EQ(letters.size(), 1U);
  EXPECT_EQ(letters[0].delivery_id, *delivery);
  EXPECT_EQ(letters[0].attempts, 4U);
  EXPECT_NE(letters[0].reason.find("HTTP 500"), std::string::npos) << letters[0].reason;
  ASSERT_TRUE(eventually([&] { return dead_letters().size() == 1; }));
  EXPECT_EQ(dead_letters()[0], (std::vector<std::string>{"c1", *delivery, letters[0].reason}));
}

TEST_F(DispatcherTest, ARedirectIsNotFollowed) {
  WebhookReceiver receiver(certificates, {302});
  auto o = options();
  o.policy.max_attempts = 1;
  Dispatcher dispatcher(o);
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(receiver.port(), certificates.ca_pem)).has_value());
  ASSERT_TRUE(dispatcher.notify("c1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").dead_letters == 1; }));
  EXPECT_EQ(receiver.requests().size(), 1U);
  EXPECT_NE(dispatcher.dead_letters()[0].reason.find("HTTP 302 (redirects are not followed)"), std::string::npos)
      << dispatcher.dead_letters()[0].reason;
}

TEST_F(DispatcherTest, AnUntrustedCertificateIsRefusedBeforeAnythingIsSent) {
  WebhookReceiver receiver(certificates, {200});
  const auto other = make_certificates();
  auto o = options();
  o.policy.max_attempts = 1;
  Dispatcher dispatcher(o);
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(receiver.port(), other.ca_pem)).has_value());
  ASSERT_TRUE(dispatcher.notify("c1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").dead_letters == 1; }))
      << dispatcher.stats("c1").delivered << " " << dispatcher.stats("c1").failed_attempts << " "
      << receiver.handshakes();
  EXPECT_NE(dispatcher.dead_letters()[0].reason.find("not trusted"), std::string::npos)
      << dispatcher.dead_letters()[0].reason;
  EXPECT_TRUE(receiver.requests().empty());
}

TEST_F(DispatcherTest, ACertificateForAnotherAddressIsRefused) {
  const auto elsewhere = make_certificates("127.0.0.2");
  WebhookReceiver receiver(elsewhere, {200});
  auto o = options();
  o.policy.max_attempts = 1;
  Dispatcher dispatcher(o);
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(receiver.port(), elsewhere.ca_pem)).has_value());
  ASSERT_TRUE(dispatcher.notify("c1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").dead_letters == 1; }));
  EXPECT_TRUE(receiver.requests().empty());
}

TEST_F(DispatcherTest, AReceiverThatNeverAnswersMeetsTheDeadline) {
  // A listening socket nobody accepts on: the kernel completes the connection, then silence
  // through the TLS handshake.
  asio::io_context io;
  tcp::acceptor silent(io, {asio::ip::make_address_v4("127.0.0.1"), 0});
  auto o = options();
  o.policy.timeout = 300ms;
  o.policy.max_attempts = 1;
  Dispatcher dispatcher(o);
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(silent.local_endpoint().port(), certificates.ca_pem)).has_value());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(dispatcher.notify("c1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").dead_letters == 1; }));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_NE(dispatcher.dead_letters()[0].reason.find("handshake"), std::string::npos)
      << dispatcher.dead_letters()[0].reason;
  EXPECT_NE(dispatcher.dead_letters()[0].reason.find("timed out"), std::string::npos)
      << dispatcher.dead_letters()[0].reason;
}

TEST_F(DispatcherTest, TheServersOwnHostIsNotReachableByDefault) {
  WebhookReceiver receiver(certificates, {200});
  auto o = options();
  o.policy.allow_local_destinations = false;  // the default
  Dispatcher dispatcher(o);
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(receiver.port(), certificates.ca_pem)).has_value());
  ASSERT_TRUE(dispatcher.notify("c1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").dead_letters == 1; }));
  EXPECT_EQ(dispatcher.stats("c1").failed_attempts, 1U) << "a refusal is not retried";
  EXPECT_NE(dispatcher.dead_letters()[0].reason.find("not allowed"), std::string::npos)
      << dispatcher.dead_letters()[0].reason;
  EXPECT_EQ(receiver.handshakes(), 0);
  EXPECT_FALSE(DeliveryPolicy{}.allow_local_destinations);
}

TEST(LocalDestinations, LoopbackLinkLocalAndSuchAreLocalPrivateRangesAreNot) {
  for (const char* local : {"127.0.0.1", "127.8.9.10", "::1", "169.254.169.254", "fe80::1", "0.0.0.0",
                            "::", "224.0.0.1", "ff02::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(is_local_destination(*IpAddress::parse(local))) << local;
  }
  for (const char* remote : {"10.0.0.5", "192.168.1.10", "172.16.0.1", "203.0.113.7", "2001:db8::1", "fd00::1"}) {
    EXPECT_FALSE(is_local_destination(*IpAddress::parse(remote))) << remote;
  }
}

TEST_F(DispatcherTest, PlainHttpIsRefusedWhenTheChannelIsDefined) {
  testing::SeededRandom seeded;
  auto channel = parse_channel_text(R"({"name":"h","type":"webhook","url":"http://127.0.0.1:8080/"})", seeded);
  ASSERT_FALSE(channel.has_value());
  EXPECT_EQ(channel.error()[0].path, "url");
}

TEST_F(DispatcherTest, SyslogArrivesAsAnOctetCountedRfc5424Frame) {
  SyslogReceiver receiver(certificates);
  Dispatcher dispatcher(options());
  testing::SeededRandom seeded;
  auto channel = parse_channel(nlohmann::json{{"name", "siem"},
                                              {"type", "syslog"},
                                              {"host", "127.0.0.1"},
                                              {"port", receiver.port()},
                                              {"ca", certificates.ca_pem}},
                               seeded);
  ASSERT_TRUE(channel.has_value()) << format_problems(channel.error());
  ASSERT_TRUE(dispatcher.set_channel("s1", *channel).has_value());
  ASSERT_TRUE(dispatcher.notify("s1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] { return !receiver.frames().empty(); }));
  const auto frame = receiver.frames()[0];
  const auto space = frame.find(' ');
  EXPECT_EQ(std::stoul(frame.substr(0, space)), frame.size() - space - 1) << frame;
  EXPECT_TRUE(frame.substr(space + 1).starts_with("<82>1 ")) << frame;
  EXPECT_NE(frame.find(" gw-test torii - alert [torii@32473 event=\"alert.opened\" id=\"al-1\""), std::string::npos)
      << frame;
  EXPECT_TRUE(frame.ends_with("] Posture violation: telnet is listening")) << frame;
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("s1").delivered == 1; }));
}

TEST_F(DispatcherTest, TheRateLimitSuppressesAndThenSendsOneSummary) {
  WebhookReceiver receiver(certificates, {200});
  SharedFakeClock fake(std::chrono::system_clock::now());
  auto o = options();
  o.clock = &fake;
  Dispatcher dispatcher(o);
  auto channel = webhook(receiver.port(), certificates.ca_pem);
  channel.rate = RateLimit{2, 60};
  ASSERT_TRUE(dispatcher.set_channel("c1", channel).has_value());
  EXPECT_TRUE(dispatcher.notify("c1", sample_notice("a1")).has_value());
  EXPECT_TRUE(dispatcher.notify("c1", sample_notice("a2")).has_value());
  const auto refused = dispatcher.notify("c1", sample_notice("a3"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_TRUE(refused.error().is(Errc::limit_exceeded));
  EXPECT_FALSE(dispatcher.notify("c1", sample_notice("a4")).has_value());
  EXPECT_EQ(dispatcher.stats("c1").suppressed, 2U);
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").delivered == 2; }));
  fake.advance(1s);  // one token back: it goes to the summary
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("c1").delivered == 3; }));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3U);
  const auto summary = nlohmann::json::parse(requests[2].body);
  EXPECT_EQ(summary["event"], "notifications.suppressed");
  EXPECT_EQ(summary["suppressed"], 2);
}

// An MQTT channel's notification goes to the gateway with the channel's devices; a refusal
// there is a failed attempt, retried like any other, and the rate limit holds as for the rest.
TEST_F(DispatcherTest, AnMqttChannelIsHandedToTheGatewayWithItsDevices) {
  struct Handed {
    std::string channel;
    std::vector<std::string> devices;
    nlohmann::json body;
  };
  std::mutex handed_mutex;
  std::vector<Handed> handed;
  int refusals = 1;
  auto o = options();
  o.publish_mqtt = [&](const std::string& channel, const std::vector<std::string>& devices,
                       const std::string& body) -> Status {
    const std::lock_guard lock(handed_mutex);
    if (refusals-- > 0) return fail(Errc::unavailable, "the gateway is busy");
    handed.push_back({channel, devices, nlohmann::json::parse(body)});
    return ok();
  };
  Dispatcher dispatcher(o);
  testing::SeededRandom seeded;
  auto channel = parse_channel_text(R"({"name":"bus","type":"mqtt","devices":["backend-1","backend-2"],
                                        "rate_limit":{"burst":1,"per_minute":1}})",
                                    seeded);
  ASSERT_TRUE(channel.has_value()) << format_problems(channel.error());
  ASSERT_TRUE(dispatcher.set_channel("org-1/bus", *channel).has_value());
  const auto delivery = dispatcher.notify("org-1/bus", sample_notice());
  ASSERT_TRUE(delivery.has_value());
  EXPECT_TRUE(dispatcher.notify("org-1/bus", sample_notice("al-2")).error().is(Errc::limit_exceeded));
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("org-1/bus").delivered == 1; }));
  EXPECT_EQ(dispatcher.stats("org-1/bus").failed_attempts, 1U);
  const std::lock_guard lock(handed_mutex);
  ASSERT_EQ(handed.size(), 1U);
  EXPECT_EQ(handed[0].channel, "org-1/bus");
  EXPECT_EQ(handed[0].devices, (std::vector<std::string>{"backend-1", "backend-2"}));
  EXPECT_EQ(handed[0].body["event"], "alert.opened");
  EXPECT_EQ(handed[0].body["alert"]["id"], "al-1");
  EXPECT_EQ(handed[0].body["delivery"], *delivery);
}

TEST_F(DispatcherTest, AFullQueueForgetsItsOldestDeliveries) {
  // Nothing listens on the port of a closed acceptor: every attempt fails at once.
  std::uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, {asio::ip::make_address_v4("127.0.0.1"), 0});
    port = acceptor.local_endpoint().port();
  }
  auto o = options();
  o.policy.queue_per_channel = 2;
  o.backoff = [](std::size_t) { return std::chrono::milliseconds(std::chrono::hours(1)); };
  Dispatcher dispatcher(o);
  ASSERT_TRUE(dispatcher.set_channel("c1", webhook(port, certificates.ca_pem)).has_value());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(dispatcher.notify("c1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] {
    const auto s = dispatcher.stats("c1");
    return s.queued == 2 && s.dropped == 3;
  })) << dispatcher.stats("c1").queued
      << " " << dispatcher.stats("c1").dropped;
  EXPECT_EQ(dispatcher.stats("c1").dead_letters, 0U);
}

TEST_F(DispatcherTest, UnknownAndUndeliverableChannelsAreRefused) {
  Dispatcher dispatcher(options());
  EXPECT_TRUE(dispatcher.notify("nope", sample_notice()).error().is(Errc::not_found));
  Channel mqtt;
  mqtt.type = ChannelType::mqtt;
  mqtt.devices = {"backend-1"};
  EXPECT_FALSE(dispatcher.set_channel("m", mqtt).has_value()) << "no gateway to publish";
  Channel email;
  email.type = ChannelType::email;
  email.to = {"a@b.example"};
  EXPECT_FALSE(dispatcher.set_channel("e", email).has_value()) << "no outbox";
  Channel hook;
  hook.type = ChannelType::webhook;
  hook.webhook = {"h.example", 443, "/"};
  hook.secret = "short";
  EXPECT_FALSE(dispatcher.set_channel("w", hook).has_value()) << "a short secret";
  Channel syslog;
  syslog.type = ChannelType::syslog;
  EXPECT_FALSE(dispatcher.set_channel("s", syslog).has_value()) << "no host";
}

// Takes every message but refuses the second one offered (a full outbox), once.
class RefusingOnceOutbox final : public mail::Outbox {
 public:
  bool post(mail::MailMessage message) override {
    const std::lock_guard lock(mutex_);
    if (++offered_ == 2) return false;
    taken_.push_back(message.to);
    return true;
  }
  std::vector<std::string> taken() const {
    const std::lock_guard lock(mutex_);
    return taken_;
  }

 private:
  mutable std::mutex mutex_;
  int offered_ = 0;
  std::vector<std::string> taken_;
};

TEST_F(DispatcherTest, AnEmailRetryDoesNotRepeatRecipientsTheOutboxTook) {
  RefusingOnceOutbox outbox;
  auto o = options();
  o.outbox = &outbox;
  Dispatcher dispatcher(o);
  Channel email;
  email.type = ChannelType::email;
  email.to = {"ann@example.org", "bob@example.org", "cy@example.org"};
  ASSERT_TRUE(dispatcher.set_channel("e1", email).has_value());
  ASSERT_TRUE(dispatcher.notify("e1", sample_notice()).has_value());
  ASSERT_TRUE(eventually([&] { return dispatcher.stats("e1").delivered == 1; }));
  EXPECT_EQ(dispatcher.stats("e1").failed_attempts, 1U);
  EXPECT_EQ(outbox.taken(), (std::vector<std::string>{"ann@example.org", "bob@example.org", "cy@example.org"}));
}

TEST(BackoffDelay, DoublesFromOneSecondUpToFiveMinutesWithJitter) {
  testing::SeededRandom random;
  const DeliveryPolicy policy;
  std::chrono::milliseconds nominal = 1s;
  for (std::size_t failures = 1; failures <= 20; ++failures) {
    for (int draw = 0; draw < 20; ++draw) {
      const auto delay = backoff_delay(policy, failures, random);
      EXPECT_GE(delay, nominal / 2) << failures;
      EXPECT_LE(delay, nominal) << failures;
    }
    nominal = std::min<std::chrono::milliseconds>(nominal * 2, 5min);
  }
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DispatcherEmailTest, AnEmailChannelSendsThroughTheOutboxToEachRecipient) {
  testing::TempDir dir;
  const auto sink_certificates = testing::make_sink_certificates(dir.path());
  testing::SmtpSink sink(testing::SinkOptions{sink_certificates, ""});
  ASSERT_NE(sink.port(), 0);
  mail::SmtpSettings settings;
  settings.host = "127.0.0.1";
  settings.port = sink.port();
  settings.from = "torii@example.org";
  settings.ca_pem = read_text(sink_certificates.ca);
  settings.timeout = 10s;
  mail::SmtpOutbox outbox(settings, nullptr);
  Dispatcher::Options options;  // the system's clock and random
  options.outbox = &outbox;
  Dispatcher dispatcher(options);
  testing::SeededRandom seeded;
  auto channel =
      parse_channel_text(R"({"name":"on call","type":"email","to":["ann@example.org","bob@example.org"]})", seeded);
  ASSERT_TRUE(channel.has_value());
  ASSERT_TRUE(dispatcher.set_channel("e1", *channel).has_value());
  ASSERT_TRUE(dispatcher.notify("e1", sample_notice()).has_value());
  std::vector<std::string> recipients;
  for (int n = 1; n <= 2; ++n) {
    const auto text = sink.message(n, 20s);
    ASSERT_TRUE(text.has_value()) << n;
    const auto got = nlohmann::json::parse(*text);
    recipients.push_back(got["rcpt_tos"][0]);
    EXPECT_TRUE(got["tls"].get<bool>());
    EXPECT_NE(got["data"].get<std::string>().find("Subject: [torii] critical: Posture violation (opened)"),
              std::string::npos);
  }
  std::sort(recipients.begin(), recipients.end());
  EXPECT_EQ(recipients, (std::vector<std::string>{"ann@example.org", "bob@example.org"}));
}

}  // namespace
}  // namespace torii::notify

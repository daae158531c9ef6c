// The agent's connection to torii's gateway: MQTT 5.0 over mutual TLS (IIIT J11).
//
// run() connects, publishes what the source (the outbox) holds, oldest first, with QoS 1
// and a window of unacknowledged messages (Delivery), and keeps the connection alive with
// PINGREQ. When the connection fails or is lost it waits and tries again, with exponential
// backoff and jitter: a random wait between half and all of the current backoff, which starts
// at backoff_first and doubles up to backoff_max (and starts again after a connection that
// lasted a minute), so a fleet does not reconnect in step after an outage. Messages stay in the source until the
// gateway acknowledges them; after a reconnection the unacknowledged ones are sent again, and their message ids keep
// the gateway from storing any twice.
//
// Everything runs on the executor's one thread; the source is called there.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "base/random.h"
#include "mqtt/packet.h"

namespace torii::agent {

struct OutgoingMessage {
  std::uint64_t seq = 0;
  std::string topic;
  std::string payload;
};

// Where the link takes messages from and what it tells about them: the outbox.
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  // At most `max` waiting messages, oldest first.
  [[nodiscard]] virtual std::vector<OutgoingMessage> waiting(std::size_t max) = 0;
  // The gateway stored it (or already had it).
  virtual void delivered(std::uint64_t seq) = 0;
  // The gateway will never take it (the reason code says why).
  virtual void refused(std::uint64_t seq, mqtt::ReasonCode reason) = 0;
};

struct LinkSettings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8883;
  std::string client_id;  // the device id
  std::filesystem::path ca_bundle;
  std::filesystem::path certificate;
  std::filesystem::path key;
  std::chrono::seconds keep_alive{60};
  std::chrono::seconds connect_timeout{10};  // TCP, TLS and CONNACK together
  std::chrono::milliseconds backoff_first{1000};
  std::chrono::milliseconds backoff_max{60000};
  std::chrono::milliseconds retry_pause{1000};  // after "quota exceeded" or "server busy"
  std::size_t window = 16;
  // Publishing pace (token bucket): an outbox that filled during an outage drains below the
  // gateway's default per-device quota (50 a second), whose refusals would count as offences.
  double messages_per_second = 20;
  double message_burst = 20;
};

struct LinkStats {
  std::uint64_t connections = 0;  // sessions that reached CONNACK success
  std::uint64_t attempts_failed = 0;
  std::uint64_t published = 0;  // PUBLISH packets sent, resends included
  std::uint64_t delivered = 0;
  std::uint64_t refused = 0;
  std::uint64_t retried = 0;
  std::string last_problem;  // why the last connection ended or failed
};

class Link {
 public:
  Link(boost::asio::any_io_executor executor, LinkSettings settings, MessageSource& source, Random& random);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Until stop(); never fails: problems are retried and reported in stats().
  boost::asio::awaitable<void> run();
  // Ends run(): the current connection is closed with DISCONNECT, no wait is left pending.
  void stop();
  // The source holds new messages.
  void wake();
  // Ends the current connection (DISCONNECT) and connects again at once, reading the
  // certificate and key files anew (after a renewal). Unacknowledged messages are sent again
  // on the new connection, as after any reconnection.
  void reconnect();
  // Publishes now with QoS 0 when connected (heartbeats); dropped otherwise. Returns
  // whether it was queued.
  bool send_transient(std::string topic, std::string payload);
  // Messages the gateway sends the device (its commands topic, once subscribed).
  void on_message(std::function<void(const mqtt::Publish&)> handler);
  // Subscribed at every connection (QoS 1).
  void subscribe_at_connect(std::string filter);

  [[nodiscard]] bool connected() const;
  [[nodiscard]] const LinkStats& stats() const;

 private:
  class Session;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace torii::agent

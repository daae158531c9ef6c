// Delivers notifications to channels off the caller's thread, with retries, dead letters and
// rate limits (JPCERT VIII-2, I-10). A plain header: Asio stays in
// net/tls_client.cpp.
//
// notify() only queues and returns at once. One thread of the dispatcher's own takes the
// delivery that is due first, whatever its channel, and makes one attempt, bounded by the
// policy's timeout on each step:
//   webhook  an HTTPS POST (net::TlsClient: TLS 1.2+, the channel's CA or the system's, host
//            name checked), signed (notification.h), body at most 64 KiB; 2xx is delivered,
//            anything else (redirects too: they are not followed) is a failed attempt;
//   syslog   one RFC 5424 message, RFC 5425 octet-counted, over TLS;
//   email    one mail::MailMessage per recipient posted to the server's mail::Outbox, which
//            sends it (a refused post is a failed attempt; the outbox reports its own failures);
//   mqtt     the notification's JSON handed to Options::publish_mqtt with the channel's
//            devices; the server's gateway publishes it on each one's alerts topic (QoS 1),
//            so "delivered" means handed over.
// Destinations on the server's own host or link are refused unless the policy allows them
// (allow_local_destinations), checked on the resolved addresses; such a refusal is a dead
// letter at once. A failed attempt is retried after backoff_delay(): 1 s, 2 s, 4 s … capped
// at 5 min, each drawn between half and all of that (jitter), until max_attempts; then the
// delivery is a dead letter: kept in a bounded list (oldest forgotten) and handed to
// on_dead_letter, from the dispatcher's thread, for the server to log as notify.dead_letter.
// Queues are bounded per channel: a full queue forgets its oldest delivery and counts it as
// dropped.
//
// Each channel has a RateLimiter with the channel's RateLimit: a notice it refuses is
// counted and notify() fails with limit_exceeded; one SuppressedNotice goes out once a token
// is back (checked at each notify() and at least once a second on the dispatcher's thread).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/ip.h"
#include "base/random.h"
#include "crypto/sodium.h"
#include "mail/outbox.h"
#include "notify/channel.h"
#include "notify/notification.h"
#include "notify/rate_limit.h"

namespace torii::notify {

struct DeliveryPolicy {
  std::size_t max_attempts = 8;
  std::chrono::milliseconds first_backoff{1000};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
  std::chrono::milliseconds timeout{10'000};  // connect, handshake, each write and read
  std::size_t queue_per_channel = 100;
  std::size_t dead_letters_kept = 100;
  // Webhooks and syslog reach no loopback, link-local (cloud metadata services),
  // unspecified or multicast address unless this is set: a channel defined through the API
  // must not make the server call services on its own host. Private ranges are allowed.
  bool allow_local_destinations = false;
};

// Whether an address is one allow_local_destinations guards: 127.0.0.0/8, ::1,
// 169.254.0.0/16, fe80::/10, 0.0.0.0/8, ::, 224.0.0.0/4, ff00::/8, ::ffff:0:0/96.
[[nodiscard]] bool is_local_destination(const IpAddress& address);

// The wait after the `failures`-th failed attempt (1-based): first_backoff * 2^(failures-1),
// at most max_backoff, then drawn uniformly between half of it and all of it.
[[nodiscard]] std::chrono::milliseconds backoff_delay(const DeliveryPolicy& policy, std::size_t failures,
                                                      Random& random);

struct DeadLetter {
  std::string channel_id;
  std::string delivery_id;
  std::string reason;  // the last attempt's error
  std::size_t attempts = 0;
  UnixMillis at = 0;
};

struct ChannelStats {
  std::size_t queued = 0;
  std::size_t delivered = 0;
  std::size_t failed_attempts = 0;
  std::size_t dead_letters = 0;
  std::size_t dropped = 0;     // forgotten because the queue was full
  std::size_t suppressed = 0;  // refused by the rate limit, all time
};

class Dispatcher {
 public:
  using OnDeadLetter =
      std::function<void(const std::string& channel_id, const std::string& delivery_id, const std::string& reason)>;
  // The wait after the n-th failure; a seam so tests need not sleep through real backoffs.
  using Backoff = std::function<std::chrono::milliseconds(std::size_t failures)>;
  // Hands an MQTT channel's notification (its JSON) to the gateway for the devices it names;
  // called on the dispatcher's thread. An error is a failed attempt.
  using PublishMqtt = std::function<Status(const std::string& channel_id, const std::vector<std::string>& devices,
                                           const std::string& body)>;

  struct Options {
    DeliveryPolicy policy;
    std::string hostname;            // syslog HOSTNAME
    mail::Outbox* outbox = nullptr;  // for email channels; null: they are refused
    const Clock* clock = nullptr;    // timestamps, signatures, rate limits; null: the system's
    Random* random = nullptr;        // delivery ids, jitter; null: the system's CSPRNG
    OnDeadLetter on_dead_letter;     // may be empty
    Backoff backoff;                 // empty: backoff_delay(policy, n, random)
    PublishMqtt publish_mqtt;        // for mqtt channels; empty: they are refused
  };

  // Starts the thread. A clock, random or outbox given must outlive the dispatcher.
  explicit Dispatcher(Options options);
  // Forgets what is queued and waits for the attempt in progress (bounded by the timeouts).
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Adds or replaces a channel; a replaced channel keeps its queue, and its rate limiter
  // unless the limit changed.
  // invalid_argument for an MQTT channel without publish_mqtt, an email channel without an
  // outbox, and a channel parse_channel would not have made (no host, no recipients or
  // devices, a webhook secret too short).
  [[nodiscard]] Status set_channel(const std::string& id, Channel channel);
  // Forgets the channel and its queued deliveries.
  void remove_channel(std::string_view id);

  // Queues a notice; returns the delivery id. not_found for an unknown channel,
  // limit_exceeded when the rate limit suppressed it. Thread-safe, never blocks on the network.
  [[nodiscard]] Result<std::string> notify(std::string_view channel_id, const AlertNotice& notice);

  [[nodiscard]] std::vector<DeadLetter> dead_letters() const;
  [[nodiscard]] ChannelStats stats(std::string_view channel_id) const;

 private:
  struct Delivery {
    std::string id;
    Notice notice;
    std::size_t attempts = 0;
    std::chrono::steady_clock::time_point due;
    std::size_t recipients_posted = 0;  // email: a retry skips those the outbox took
  };
  struct ChannelState {
    std::shared_ptr<const Channel> channel;
    RateLimiter limiter;
    std::deque<Delivery> queue;
    ChannelStats stats;
  };

  void run();
  [[nodiscard]] Status attempt(const std::string& channel_id, const Channel& channel, Delivery& delivery);
  [[nodiscard]] Status send_webhook(const Channel& channel, const Delivery& delivery);
  [[nodiscard]] Status send_syslog(const Channel& channel, const Delivery& delivery);
  [[nodiscard]] Status send_email(const Channel& channel, Delivery& delivery);
  // With mutex_ held.
  void enqueue(ChannelState& state, Notice notice);
  void queue_summaries();
  std::string new_delivery_id();

  const Options options_;
  const SystemClock system_clock_;
  crypto::SystemRandom system_random_;
  const Clock* const clock_;
  Random* const random_;
  mutable std::mutex mutex_;  // guards everything below but thread_
  std::condition_variable wake_;
  std::map<std::string, ChannelState, std::less<>> channels_;
  std::deque<DeadLetter> dead_letters_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace torii::notify

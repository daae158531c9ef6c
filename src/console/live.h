// Live telemetry for the console (issue item 10): what the gateway accepts, fanned out to the
// WebSockets people opened on GET /api/v1/live, each seeing only its own organisation's
// devices (JPCERT I-9).
//
// The server publishes every accepted telemetry message and every device connect and
// disconnect once, as JSON text built once; each subscription keeps a bounded queue of what
// its socket has not written yet. A slow reader loses the oldest messages, never the
// server's memory: the next thing it reads says how many were dropped.
//
// Threading: everything runs on the io_context thread.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "console/websocket.h"
#include "policy/telemetry.h"

namespace torii::console {

// What an upgraded connection (a 101 answer, http.h) carries: the HTTPS shell runs the
// socket, the feed decides what goes on it and when it ends.
class WebSocketFeed {
 public:
  virtual ~WebSocketFeed() = default;
  // Called once the 101 answer is written, with what to call (on the io thread) when
  // messages are waiting or the feed has ended. Never called after stop().
  virtual void start(std::function<void()> wake) = 0;
  // The messages waiting, oldest first.
  [[nodiscard]] virtual std::vector<std::string> take() = 0;
  // Set once the connection must end (its session ended, the server stops).
  [[nodiscard]] virtual std::optional<std::pair<websocket::CloseCode, std::string>> ended() const = 0;
  // Called at every ping: checks again what the feed depends on (the caller's session).
  virtual void check() = 0;
  // The connection is gone.
  virtual void stop() = 0;
};

// One message as the live view sends it.
struct LiveMessage {
  std::string organisation_id;
  std::string device_id;
  std::string text;  // JSON
};

// {"type":"telemetry","device":…,"at":…,"metrics":{name: value, …}}
[[nodiscard]] std::string telemetry_message(std::string_view device_id, std::string_view at,
                                            const std::vector<policy::Metric>& metrics);
// {"type":"status","device":…,"online":true|false,"at":…}
[[nodiscard]] std::string status_message(std::string_view device_id, bool online, std::string_view at);

class LiveFeed {
 public:
  struct Options {
    std::size_t max_queued = 256;          // per subscription
    std::size_t max_per_person = 8;        // open sockets per person
    std::size_t max_subscriptions = 1000;  // open sockets in all
  };
  // Whether the subscriber may still see what it subscribed to; false ends its socket with
  // 1008. An error ends it with 1011.
  using StillAllowed = std::function<Result<bool>()>;

  LiveFeed();
  explicit LiveFeed(Options options);
  ~LiveFeed();  // ends every open feed with 1001 (going away)
  LiveFeed(const LiveFeed&) = delete;
  LiveFeed& operator=(const LiveFeed&) = delete;

  struct Subscriber {
    std::string person_id;        // whose limit it counts against
    std::string credential;       // the session (its id hash) or "api_token:<id>"
    std::string organisation_id;  // whose devices it sees
  };

  // A feed of the organisation's devices (all of them when `devices` is empty); nullptr when
  // the person, or everyone together, has as many open as allowed.
  [[nodiscard]] std::shared_ptr<WebSocketFeed> subscribe(Subscriber subscriber,
                                                         std::set<std::string, std::less<>> devices,
                                                         StillAllowed still_allowed);
  void publish(const LiveMessage& message);
  // Ends the feeds opened with this credential (1008): the session signed out.
  void end_for(std::string_view credential, std::string_view why);

  [[nodiscard]] std::size_t open() const;

 private:
  struct Registry;
  class Subscription;
  std::shared_ptr<Registry> registry_;
};

}  // namespace torii::console

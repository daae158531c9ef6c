// The broker core of the gateway: device identity, sessions, isolation, validation,
// quotas, routing, retained messages and durable ingest (the Aggregator).
//
// No sockets here: the gateway's connection shell (gateway.h) owns the TLS stream and
// drives an mqtt::Session whose decisions this class makes through DeviceSession.
//
//   client certificate ─▶ authenticate()   certificate known to torii's CA, kind device,
//                                          not revoked, not expired; device active, not banned
//   PUBLISH            ─▶ ACL (policy::authorize_publish) ─▶ quotas (token buckets)
//                      ─▶ payload validated against the device profile
//                      ─▶ routed to permitted subscribers ─▶ StoreWriter (acknowledged once durable)
//   SUBSCRIBE          ─▶ ACL (own commands, or a route) ─▶ retained messages
//   PUBLISH renew      ─▶ ACL ─▶ quotas ─▶ the renewal handler (not stored, not routed)
//
// Every refusal is counted per device; a device that keeps sending refused messages is
// disconnected and refused for a while. Security-relevant refusals go to the security log
// through the event sink, at most once per device and reason per minute.
//
// Threading: one io thread calls everything here (the StoreWriter posts completions back
// to it). Thread-safe entry points say so.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/container/flat_map.hpp>

#include "base/clock.h"
#include "base/error.h"
#include "broker/device_health.h"
#include "broker/store_writer.h"
#include "broker/traffic_monitor.h"
#include "crypto/secret.h"
#include "events/security_log.h"
#include "keys/key_ring.h"
#include "mqtt/session.h"
#include "mqtt/session_image.h"
#include "policy/acl.h"
#include "policy/profile.h"
#include "policy/rate_limit.h"
#include "policy/telemetry.h"
#include "store/store.h"

namespace torii::broker {

struct BrokerOptions {
  mqtt::SessionLimits session;
  // Per-device quotas (JPCERT II-6, IIIT N8): sustained rate and burst.
  double messages_per_second = 50;
  double message_burst = 200;
  double bytes_per_second = 64 * 1024;
  double byte_burst = 256 * 1024;
  // Refused messages (ACL, validation, quota) a device may send within offence_window before
  // it is disconnected and refused for device_ban.
  std::uint32_t offences_before_ban = 20;
  std::chrono::seconds offence_window{60};
  std::chrono::seconds device_ban{300};
  std::size_t max_retained_per_device = 32;
  // How far the time in a device's heartbeats may be from the server's (DeviceHealth); 0: not
  // checked.
  std::chrono::seconds max_clock_skew{60};
};

// A connected device as its connection's session keeps it (one per connection: nothing here
// that no one reads).
struct DeviceInfo {
  std::string id;
  std::string organisation_id;
  std::string segment;
  std::string profile_id;
};

// How a connection is told about things the broker decides outside its own packets.
class ClientLink {
 public:
  virtual ~ClientLink() = default;
  virtual void deliver(mqtt::Publish message, mqtt::Delivery how) = 0;
  virtual void disconnect(mqtt::ReasonCode reason, std::string detail) = 0;
  // A pending QoS 1/2 publish has been stored (or not).
  virtual void publish_done(std::uint16_t packet_id, mqtt::ReasonCode reason) = 0;
  // The broker held a message of this connection back (the ingest queue was full) and has
  // room now: the session asks for it again, and the connection reads on.
  virtual void resume() = 0;
};

// Something in-process that consumes accepted messages (the console's live view, rules).
struct AcceptedMessage {
  const DeviceInfo& device;
  policy::TopicKind kind;
  const mqtt::Publish& publish;
  const policy::Telemetry* telemetry;  // for telemetry, the validated values
  UnixMillis received_at;
};
using MessageObserver = std::function<void(const AcceptedMessage&)>;

// A certificate renewal request a device published on its own renew topic; the payload is
// as the device sent it (at most kMaxRenewalRequestBytes), unparsed.
using RenewalHandler = std::function<void(const DeviceInfo& device, std::string_view payload)>;
inline constexpr std::size_t kMaxRenewalRequestBytes = std::size_t{8} * 1024;

using SecurityEventSink = std::function<void(events::SecurityEvent)>;

struct DeviceTraffic {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t refusals = 0;
  std::uint64_t connects = 0;
};

// A stored route as the ACL's Route; invalid_argument for an end the ACL does not accept.
[[nodiscard]] Result<policy::Route> to_policy_route(const store::RouteRecord& route);

class DeviceSession;

class Broker {
 public:
  Broker(store::Store& store, StoreWriter& writer, const Clock& clock, BrokerOptions options,
         SecurityEventSink security_events);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // The device a client certificate (DER) names, or why it is refused (for the log; the
  // client only learns "not authorized"). A device's first connection with a newer
  // certificate revokes its older unrevoked ones ("superseded", a certificate.superseded
  // event each, from `source`): a renewed device's old key no longer opens a connection.
  [[nodiscard]] Result<DeviceInfo> authenticate(ByteView certificate_der, const std::string& source);

  // A session host for one connection of an authenticated device. The link must outlive it.
  [[nodiscard]] std::unique_ptr<DeviceSession> open_session(DeviceInfo device, ClientLink& link, std::string source);

  // Closes the device's live connection (revocation, disable, delete) with the reason, and
  // forgets its stored session.
  void disconnect_device(std::string_view device_id, mqtt::ReasonCode reason, const std::string& why);

  // Whether the device has a live connection now.
  [[nodiscard]] bool is_connected(std::string_view device_id) const { return live_.contains(std::string(device_id)); }

  // Sends a message from the server (e.g. a command) to the subscribers of the topic.
  void publish_from_server(const mqtt::Publish& message);

  void add_observer(MessageObserver observer);
  // Called when a device subscribes to a filter that takes its own commands topic (the
  // server then sends the commands awaiting its answer). Empty: nothing.
  void on_commands_subscribed(std::function<void(const DeviceInfo&)> handler);
  // Called for each message a device publishes on its own renew topic, on the io thread; the
  // server answers on the device's certificate topic. Empty: renewal requests are refused.
  void on_renewal_requested(RenewalHandler handler);

  // The per-device counters and last-seen times gathered since the last take (each device's
  // start again from zero), for write_counters on another thread: the server writes them
  // every 10 s off the io thread.
  struct CounterBatch {
    std::vector<store::DeviceCounters> deltas;             // one per device
    std::vector<std::pair<std::string, UnixMillis>> seen;  // one per device
    [[nodiscard]] bool empty() const { return deltas.empty() && seen.empty(); }
  };
  [[nodiscard]] CounterBatch take_counters();
  // Adds `from` to `into`, a device's deltas summed and its latest last-seen time kept: a
  // batch whose write failed is merged with the next rather than lost.
  static void merge_counters(CounterBatch& into, CounterBatch from);
  // Writes a batch in one transaction, from any thread (the store is thread-safe). The
  // counters of a device deleted since are dropped, so one such device cannot hold up the
  // others'.
  [[nodiscard]] static Status write_counters(store::Store& store, const CounterBatch& batch);
  // Records heartbeats overdue by now (DeviceHealth); the server calls it every few seconds.
  void check_device_health();
  // Drops stored sessions past their expiry.
  void expire_sessions();
  // Publishes the wills whose delay (5.0 will delay interval) has passed.
  void publish_due_wills();

  // While the ingest queue is full, a connection's next QoS 1/2 message is held back, and
  // the connection with it, instead of being refused: the client waits for its
  // acknowledgements, and nothing is lost or sent twice. The server calls this when the store
  // writer has made room (StoreWriterOptions::on_room); the connections held go on, oldest
  // first, as long as there is room.
  void resume_held();
  // At a stop: the connections still held are closed ("server shutting down"), their
  // messages unacknowledged.
  void close_held();

  [[nodiscard]] std::size_t connected_devices() const { return live_.size(); }
  [[nodiscard]] const mqtt::SessionLimits& session_limits() const { return options_.session; }
  [[nodiscard]] DeviceTraffic traffic(std::string_view device_id) const;
  // Reloads a profile from the store at its next use (after it was edited).
  void invalidate_profile(std::string_view profile_id);

  // Loads the retained messages and persistent sessions kept from before the last stop
  // (sealed under each device's key); see below. Expired rows are deleted first; rows that
  // cannot be opened or decoded are logged and skipped, not fatal.
  [[nodiscard]] Status load_kept_state(keys::KeyRing& keys);

  // Persistent sessions (MQTT clean start 0 / session expiry) are kept in the store: while
  // the device is connected, its subscriptions (written within a second of a change,
  // persist_dirty_sessions); while it is away, the whole state (written when the connection
  // ends and within a second of a message queued for it); for every session, the whole state
  // at a graceful stop (save_sessions, before the store writer stops). A session that ends is
  // deleted from the store.
  void persist_dirty_sessions();
  void save_sessions();

  // Routes (IIIT N3, N9): loads those stored, replacing the routes in force.
  [[nodiscard]] Status load_routes();
  // Adds or removes one route of an organisation at once (already stored or deleted by the
  // caller). Removal takes effect at the next message: deliveries are checked per message.
  [[nodiscard]] Status add_route(const std::string& organisation_id, policy::Route route);
  void remove_route(const std::string& organisation_id, const policy::Route& route);
  // Forgets what the broker cached about a device (its organisation and segment) after the
  // device was changed or deleted.
  void forget_device(std::string_view device_id);
  // After the device was deleted (and disconnected, disconnect_device): forgets everything
  // else kept of it as well (its counters, quota and ban, traffic history, retained
  // messages), so that a device made again under its id starts with nothing of it.
  void forget_deleted_device(std::string_view device_id);

 private:
  friend class DeviceSession;

  struct Subscriber {
    std::string device_id;  // the subscribing device
    mqtt::Subscription subscription;
  };
  struct StoredSession {
    std::shared_ptr<mqtt::SessionState> state;
    std::chrono::steady_clock::time_point expires_at;
  };
  struct Runtime {
    std::optional<policy::TrafficLimiter> quota;
    std::uint32_t offences = 0;
    std::chrono::steady_clock::time_point offence_window_start;
    std::chrono::steady_clock::time_point banned_until;
    // reason → time; flat: usually empty, and 24 bytes then (a std::map 48)
    boost::container::flat_map<std::string, std::chrono::steady_clock::time_point, std::less<>> last_logged;
    DeviceTraffic total;
    DeviceTraffic unflushed;
    std::optional<UnixMillis> last_seen;
    TrafficHistory traffic;  // the traffic monitor's (monitor_)
  };

  // Where a device belongs, cached: routes are checked per delivered message.
  struct Placement {
    std::string organisation_id;
    std::string segment;
  };

  // nullptr: the device's profile is missing or invalid, and its telemetry is refused.
  [[nodiscard]] const policy::Profile* profile_for(const std::string& profile_id);
  // nullopt: unknown device.
  [[nodiscard]] const std::optional<Placement>& placement(std::string_view device_id);
  // Whether `reader` may read through `filter_or_topic` (subscribe or deliver): the ACL with
  // the routes of the reader's organisation, segments looked up within that organisation.
  [[nodiscard]] policy::Decision authorize_read(const std::string& reader_id, std::string_view filter_or_topic,
                                                bool subscribing);
  [[nodiscard]] Runtime& runtime(const std::string& device_id);
  void supersede_older_certificates(const store::CertificateRecord& in_use, const std::string& source, UnixMillis now);
  void route(const std::string& source_device, const mqtt::Publish& message, const std::string* publisher);
  // Retains (when flagged) and routes a will as a message of its device.
  void publish_will(const std::string& device_id, const mqtt::Publish& message);
  void deliver_to(const Subscriber& subscriber, const mqtt::Publish& message);
  void retain(const std::string& namespace_device, const mqtt::Publish& message);
  // The kept rows of a kind with their opened contents; rows that cannot be opened are logged
  // and deleted.
  struct KeptRow {
    store::MqttStateRecord row;
    crypto::SecretBytes plain;
  };
  [[nodiscard]] Result<std::vector<KeptRow>> load_kept(keys::KeyRing& keys, std::string_view kind);
  void load_retained(const std::vector<KeptRow>& rows);
  void load_sessions(const std::vector<KeptRow>& rows);
  // Queues a change to the kept state for the store writer; false (logged) when its queue is full.
  bool submit_state(const std::string& device_id, StateChange change);
  // Now, on both clocks, for converting expiries to and from the store.
  [[nodiscard]] mqtt::ImageTime image_time() const;
  // Submits the session's image to the store writer (or its deletion: nullptr).
  void persist_session(const std::string& device_id, const mqtt::SessionState* state,
                       std::chrono::steady_clock::time_point expires_at);
  void forget_stored_session(const std::string& device_id);
  // Makes a change to a device's retained messages durable (nullptr: deleted).
  void persist_retained(const std::string& namespace_device, const std::string& topic, const mqtt::Publish* message,
                        std::optional<std::chrono::steady_clock::time_point> expires_at);
  void add_subscriber(const std::string& namespace_device, Subscriber subscriber);
  void remove_subscriber(const std::string& namespace_device, std::string_view device_id, std::string_view filter);
  void remove_all_subscriptions(std::string_view device_id);
  // Counts a refused message; true when the device must now be disconnected and banned.
  bool offence(const DeviceInfo& device, const std::string& source, std::string_view reason);
  void anomaly(const DeviceInfo& device, const std::string& source, const AnomalyReport& report);
  void security_event(const DeviceInfo& device, const std::string& source, std::string action, std::string reason,
                      bool rate_limited);
  // The server log's warning that the ingest queue is full, at most once a minute.
  void warn_busy();

  store::Store& store_;
  StoreWriter& writer_;
  const Clock& clock_;
  BrokerOptions options_;
  SecurityEventSink security_events_;
  std::vector<MessageObserver> observers_;
  std::function<void(const DeviceInfo&)> commands_subscribed_;
  RenewalHandler renewal_requested_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  std::unordered_map<std::string, DeviceSession*> live_;  // device id → its connection
  std::unordered_map<std::string, StoredSession> stored_;
  std::unordered_set<std::string> sessions_in_store_;  // devices whose session has a row
  std::unordered_set<std::string> dirty_sessions_;     // stored_ entries changed since written
  // Wills waiting for their delay (5.0 §3.1.3.2.2): published then, or when the session ends,
  // whichever comes first; dropped when the device continues its session in time.
  struct PendingWill {
    mqtt::Publish message;
    std::chrono::steady_clock::time_point due;
  };
  std::unordered_map<std::string, PendingWill> pending_wills_;
  // Subscriptions by the device whose namespace they cover ("devices/<id>/...").
  std::unordered_map<std::string, std::vector<Subscriber>> subscribers_;
  struct Retained {
    mqtt::Publish message;
    std::optional<std::chrono::steady_clock::time_point> expires_at;  // 5.0 message expiry
  };
  using RetainedTopics = std::map<std::string, Retained, std::less<>>;
  static void drop_expired(RetainedTopics& topics, std::chrono::steady_clock::time_point now);
  std::unordered_map<std::string, RetainedTopics> retained_;
  std::unordered_map<std::string, Runtime> runtime_;
  std::map<std::string, std::shared_ptr<const policy::Profile>, std::less<>> profiles_;
  // Routes by organisation (IIIT N3, N9): none unless configured.
  std::unordered_map<std::string, policy::RouteTable> routes_;
  // Looked up by string_view on the delivery path, without building a key string.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::optional<Placement>, StringHash, std::equal_to<>> placements_;
  policy::TelemetryValidator validator_;
  std::chrono::steady_clock::time_point last_busy_warning_;  // "ingest queue full", once a minute
  std::deque<std::string> held_;  // devices whose connection waits for room in the ingest queue, oldest first
  TrafficMonitor monitor_;
  DeviceHealth health_;
};

// The mqtt::SessionHost of one device connection.
class DeviceSession final : public mqtt::SessionHost {
 public:
  DeviceSession(Broker& broker, DeviceInfo device, ClientLink& link, std::string source);
  ~DeviceSession() override;
  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;

  // The connection ended; session is the state machine that served it.
  void ended(mqtt::Session& session);

  ConnectDecision on_connect(const mqtt::Connect& connect) override;
  PublishDecision on_publish(const mqtt::Publish& publish) override;
  mqtt::ReasonCode on_subscribe(const mqtt::Subscription& subscription) override;
  mqtt::ReasonCode on_unsubscribe(std::string_view filter) override;
  void on_subscribed(const mqtt::Subscription& subscription, bool existed) override;

  [[nodiscard]] const DeviceInfo& device() const { return device_; }
  [[nodiscard]] ClientLink& link() { return link_; }

 private:
  friend class Broker;
  Broker& broker_;
  DeviceInfo device_;
  ClientLink& link_;
  std::string source_;
  bool registered_ = false;                   // in broker_.live_
  std::uint32_t session_expiry_seconds_ = 0;  // as the CONNECT asked, for save_sessions()
  std::shared_ptr<mqtt::SessionState> state_;
};

}  // namespace torii::broker

#include "broker/broker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>

#include "crypto/sodium.h"
#include "mqtt/codec.h"
#include "mqtt/session_image.h"
#include "mqtt/topic.h"

namespace torii::broker {

namespace {

using mqtt::ReasonCode;
using steady = std::chrono::steady_clock;

constexpr auto kLogEvery = std::chrono::seconds(60);

std::string fingerprint_of(ByteView der) { return hex_encode(crypto::sha256(der)); }

policy::DeviceIdentity identity_of(const DeviceInfo& device) { return {device.id, device.segment}; }

// The device whose namespace a filter lies in: "devices/<id>/..." with a literal id.
std::optional<std::string> filter_namespace(std::string_view filter) {
  constexpr std::string_view kPrefix = "devices/";
  if (!filter.starts_with(kPrefix)) return std::nullopt;
  const auto rest = filter.substr(kPrefix.size());
  const auto slash = rest.find('/');
  const auto id = rest.substr(0, slash);
  if (!policy::valid_device_id(id)) return std::nullopt;
  return std::string(id);
}

}  // namespace

Broker::Broker(store::Store& store, StoreWriter& writer, const Clock& clock, BrokerOptions options,
               SecurityEventSink security_events)
    : store_(store),
      writer_(writer),
      clock_(clock),
      options_(options),
      security_events_(std::move(security_events)),
      health_(DeviceHealth::kDefaultMissedBeats, options_.max_clock_skew) {}

Result<policy::Route> to_policy_route(const store::RouteRecord& r) {
  const auto end = [](const std::string& kind, const std::string& value) {
    return kind == store::kRouteEndDevice ? policy::Selector::device(value) : policy::Selector::segment(value);
  };
  policy::Route route{end(r.from_kind, r.from_value), end(r.to_kind, r.to_value)};
  if (auto valid = policy::validate_route(route); !valid) return tl::unexpected(valid.error());
  return route;
}

const std::optional<Broker::Placement>& Broker::placement(std::string_view device_id) {
  if (auto it = placements_.find(device_id); it != placements_.end()) return it->second;
  const std::string id(device_id);
  // Only devices found are cached: one registered later must be found then. A device's
  // organisation and segment do not change while it exists; forget_device() on deletion.
  static const std::optional<Placement> kUnknown;
  auto device = store_.devices().find(id);
  if (!device) {
    spdlog::warn("gateway: looking up device {}: {}", id, device.error().message);
    return kUnknown;
  }
  if (!*device) return kUnknown;
  return placements_.emplace(id, Placement{(*device)->organisation_id, (*device)->segment}).first->second;
}

policy::Decision Broker::authorize_read(const std::string& reader_id, std::string_view filter_or_topic,
                                        bool subscribing) {
  static const policy::RouteTable kNoRoutes;
  const auto& reader = placement(reader_id);
  if (!reader) return policy::Decision::deny("unknown reader");
  // A reference into placements_: later insertions do not move its elements.
  const std::string& organisation = reader->organisation_id;
  const policy::DeviceIdentity who{reader_id, reader->segment};
  const auto table = routes_.find(organisation);
  const policy::RouteTable& routes = table != routes_.end() ? table->second : kNoRoutes;
  // A segment route of one organisation never reaches another organisation's devices.
  const policy::SegmentLookup segment_of = [&](std::string_view source_id) -> std::optional<std::string> {
    const auto& source = placement(source_id);
    if (!source || source->organisation_id != organisation || source->segment.empty()) return std::nullopt;
    return source->segment;
  };
  return subscribing ? policy::authorize_subscribe(who, filter_or_topic, routes, segment_of)
                     : policy::authorize_delivery(who, filter_or_topic, routes, segment_of);
}

Status Broker::load_routes() {
  auto stored = store_.routes().list_all();
  if (!stored) return tl::unexpected(stored.error());
  std::unordered_map<std::string, policy::RouteTable> loaded;
  for (const auto& r : *stored) {
    auto route = to_policy_route(r);
    if (!route) {
      spdlog::warn("gateway: ignoring a stored route of {}: {}", r.organisation_id, route.error().message);
      continue;
    }
    if (auto added = loaded[r.organisation_id].add(*route); !added) {
      spdlog::warn("gateway: ignoring a stored route of {}: {}", r.organisation_id, added.error().message);
    }
  }
  routes_ = std::move(loaded);
  return ok();
}

Status Broker::add_route(const std::string& organisation_id, policy::Route route) {
  return routes_[organisation_id].add(std::move(route));
}

void Broker::remove_route(const std::string& organisation_id, const policy::Route& route) {
  if (auto it = routes_.find(organisation_id); it != routes_.end()) it->second.remove(route);
}

void Broker::forget_device(std::string_view device_id) {
  if (auto it = placements_.find(device_id); it != placements_.end()) placements_.erase(it);
}

void Broker::forget_deleted_device(std::string_view device_id) {
  const std::string id(device_id);
  forget_device(id);
  runtime_.erase(id);  // its counters, quota, ban and traffic history
  health_.forget(id);
  retained_.erase(id);  // the store's rows went with the device
}

void Broker::drop_expired(RetainedTopics& topics, std::chrono::steady_clock::time_point now) {
  std::erase_if(topics, [&](const auto& entry) { return entry.second.expires_at && *entry.second.expires_at <= now; });
}

Broker::~Broker() { *alive_ = false; }

Result<DeviceInfo> Broker::authenticate(ByteView certificate_der, const std::string& source) {
  if (certificate_der.empty()) return fail(Errc::authentication_failed, "no client certificate");
  auto cert = store_.certificates().find_by_fingerprint(fingerprint_of(certificate_der));
  if (!cert) return tl::unexpected(cert.error());
  if (!*cert) return fail(Errc::authentication_failed, "certificate not issued by this installation");
  const auto& record = **cert;
  if (record.kind != store::kCertKindDevice || !record.device_id) {
    return fail(Errc::authentication_failed, "not a device certificate");
  }
  if (record.revoked_at) return fail(Errc::authentication_failed, "certificate revoked");
  const auto now = to_unix_millis(clock_.now());
  if (now < record.not_before || now >= record.not_after) return fail(Errc::expired, "certificate expired");
  auto device = store_.devices().find(*record.device_id);
  if (!device) return tl::unexpected(device.error());
  if (!*device) return fail(Errc::not_found, "device not registered");
  if ((*device)->status != store::kDeviceStatusActive) return fail(Errc::permission_denied, "device disabled");
  auto& rt = runtime((*device)->id);
  if (steady::now() < rt.banned_until) return fail(Errc::limit_exceeded, "device temporarily banned");
  supersede_older_certificates(record, source, now);
  store::DeviceRecord& found = **device;
  return DeviceInfo{std::move(found.id), std::move(found.organisation_id), std::move(found.segment),
                    std::move(found.profile_id)};
}

void Broker::supersede_older_certificates(const store::CertificateRecord& in_use, const std::string& source,
                                          UnixMillis now) {
  auto revoked = store_.certificates().revoke_superseded(*in_use.device_id, in_use.not_before, now);
  if (!revoked) {
    // The device itself is admitted: its certificate is valid. The older ones stay valid
    // until its next connection tries again.
    spdlog::error("device {}: older certificates not revoked: {}", *in_use.device_id, revoked.error().message);
    return;
  }
  if (!security_events_) return;
  for (const auto& serial : *revoked) {
    security_events_({"device:" + *in_use.device_id,
                      "certificate.superseded",
                      "certificate:" + serial,
                      events::Outcome::success,
                      source,
                      {{"device", *in_use.device_id}, {"by", in_use.serial_hex}}});
  }
}

std::unique_ptr<DeviceSession> Broker::open_session(DeviceInfo device, ClientLink& link, std::string source) {
  return std::make_unique<DeviceSession>(*this, std::move(device), link, std::move(source));
}

Broker::Runtime& Broker::runtime(const std::string& device_id) {
  auto [it, inserted] = runtime_.try_emplace(device_id);
  if (inserted) {
    it->second.quota.emplace(options_.messages_per_second, options_.message_burst, options_.bytes_per_second,
                             options_.byte_burst);
  }
  return it->second;
}

DeviceTraffic Broker::traffic(std::string_view device_id) const {
  auto it = runtime_.find(std::string(device_id));
  return it == runtime_.end() ? DeviceTraffic{} : it->second.total;
}

void Broker::invalidate_profile(std::string_view profile_id) {
  if (auto it = profiles_.find(profile_id); it != profiles_.end()) profiles_.erase(it);
}

const policy::Profile* Broker::profile_for(const std::string& profile_id) {
  if (profile_id.empty()) return &policy::generic_profile();
  if (auto it = profiles_.find(profile_id); it != profiles_.end()) return it->second.get();
  std::shared_ptr<const policy::Profile> loaded;
  auto record = store_.device_profiles().find(profile_id);
  if (record && *record) {
    auto parsed = policy::parse_profile((*record)->definition_json);
    if (parsed) {
      loaded = std::make_shared<const policy::Profile>(std::move(*parsed));
    } else {
      spdlog::error("device profile {} in the store is invalid; its devices' telemetry is refused", profile_id);
    }
  }
  return profiles_.emplace(profile_id, std::move(loaded)).first->second.get();
}

void Broker::security_event(const DeviceInfo& device, const std::string& source, std::string action, std::string reason,
                            bool rate_limited) {
  if (!security_events_) return;
  if (rate_limited) {
    auto& rt = runtime(device.id);
    const auto now = steady::now();
    auto key = action + "|" + reason;
    auto it = rt.last_logged.find(key);
    if (it != rt.last_logged.end() && now - it->second < kLogEvery) return;
    rt.last_logged[std::move(key)] = now;
  }
  security_events_({"device:" + device.id,
                    std::move(action),
                    "device:" + device.id,
                    events::Outcome::failure,
                    source,
                    {{"reason", std::move(reason)}}});
}

void Broker::warn_busy() {
  if (const auto at = steady::now(); at - last_busy_warning_ >= kLogEvery) {
    last_busy_warning_ = at;
    spdlog::warn(
        "gateway: the ingest queue is full; connections publishing at QoS 1/2 wait and QoS 0 messages are dropped "
        "until the store catches up");
  }
}

void Broker::resume_held() {
  // A connection that goes on may fill the queue again: it is then held again, at the back.
  while (!held_.empty() && !writer_.full()) {
    const std::string id = std::move(held_.front());
    held_.pop_front();
    if (const auto it = live_.find(id); it != live_.end()) it->second->link().resume();
  }
}

void Broker::close_held() {
  for (const auto& id : std::exchange(held_, {})) {
    if (const auto it = live_.find(id); it != live_.end()) {
      it->second->link().disconnect(ReasonCode::server_shutting_down, "the server is stopping");
    }
  }
}

bool Broker::offence(const DeviceInfo& device, const std::string& source, std::string_view reason) {
  auto& rt = runtime(device.id);
  ++rt.total.refusals;
  ++rt.unflushed.refusals;
  const auto now = steady::now();
  if (now - rt.offence_window_start > options_.offence_window) {
    rt.offence_window_start = now;
    rt.offences = 0;
  }
  if (++rt.offences < options_.offences_before_ban) return false;
  rt.offences = 0;
  rt.banned_until = now + options_.device_ban;
  security_events_({"system",
                    "device.banned",
                    "device:" + device.id,
                    events::Outcome::success,
                    source,
                    {{"reason", std::string(reason)},
                     {"offences", options_.offences_before_ban},
                     {"seconds", options_.device_ban.count()}}});
  return true;
}

void Broker::anomaly(const DeviceInfo& device, const std::string& source, const AnomalyReport& report) {
  if (!security_events_) return;
  security_events_({"system",
                    "traffic.anomaly",
                    "device:" + device.id,
                    events::Outcome::failure,
                    source,
                    {{"anomaly", std::string(to_string(report.anomaly))}, {"detail", report.detail}, {"alert", true}}});
}

void Broker::add_observer(MessageObserver observer) { observers_.push_back(std::move(observer)); }

void Broker::on_commands_subscribed(std::function<void(const DeviceInfo&)> handler) {
  commands_subscribed_ = std::move(handler);
}

void Broker::on_renewal_requested(RenewalHandler handler) { renewal_requested_ = std::move(handler); }

void Broker::add_subscriber(const std::string& namespace_device, Subscriber subscriber) {
  auto& list = subscribers_[namespace_device];
  for (auto& s : list) {
    if (s.device_id == subscriber.device_id && s.subscription.filter == subscriber.subscription.filter) {
      s = std::move(subscriber);
      return;
    }
  }
  list.push_back(std::move(subscriber));
}

void Broker::remove_subscriber(const std::string& namespace_device, std::string_view device_id,
                               std::string_view filter) {
  auto it = subscribers_.find(namespace_device);
  if (it == subscribers_.end()) return;
  std::erase_if(it->second,
                [&](const Subscriber& s) { return s.device_id == device_id && s.subscription.filter == filter; });
  if (it->second.empty()) subscribers_.erase(it);
}

void Broker::remove_all_subscriptions(std::string_view device_id) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    std::erase_if(it->second, [&](const Subscriber& s) { return s.device_id == device_id; });
    it = it->second.empty() ? subscribers_.erase(it) : std::next(it);
  }
}

void Broker::deliver_to(const Subscriber& subscriber, const mqtt::Publish& message) {
  mqtt::Publish copy = message;
  copy.qos = std::min(message.qos, subscriber.subscription.qos);
  if (!subscriber.subscription.retain_as_published) copy.retain = false;
  copy.dup = false;
  copy.packet_id = 0;
  if (auto live = live_.find(subscriber.device_id); live != live_.end()) {
    live->second->link().deliver(std::move(copy), mqtt::Delivery::routed);
    return;
  }
  // Offline with a kept session: QoS 1/2 messages wait in its queue (bounded).
  auto stored = stored_.find(subscriber.device_id);
  if (stored == stored_.end() || copy.qos == 0) return;
  auto& queue = stored->second.state->queued_out;
  if (queue.size() >= options_.session.max_queued_out) {
    queue.pop_front();
    ++stored->second.state->dropped_out;
  }
  auto expires_at = mqtt::SessionState::expiry_of(copy, steady::now());
  queue.push_back({std::move(copy), expires_at});
  dirty_sessions_.insert(subscriber.device_id);
}

void Broker::route(const std::string& source_device, const mqtt::Publish& message, const std::string* publisher) {
  auto it = subscribers_.find(source_device);
  if (it == subscribers_.end()) return;
  // Copy: a delivery may close a connection, which edits the list.
  const auto subscribers = it->second;
  for (const auto& s : subscribers) {
    if (publisher && s.subscription.no_local && s.device_id == *publisher) continue;
    if (!mqtt::topic_matches(s.subscription.filter, message.topic)) continue;
    // Checked per message: a route removed takes effect at once, and devices/A/+ never
    // carries A's commands or results to another device.
    if (s.device_id != source_device && !authorize_read(s.device_id, message.topic, false).allowed()) continue;
    deliver_to(s, message);
  }
}

void Broker::retain(const std::string& namespace_device, const mqtt::Publish& message) {
  auto& topics = retained_[namespace_device];
  if (message.payload.empty()) {  // §3.3.1.3: an empty retained message deletes the retained one
    if (auto it = topics.find(message.topic); it != topics.end()) {
      topics.erase(it);
      persist_retained(namespace_device, message.topic, nullptr, std::nullopt);
    }
    return;
  }
  if (!topics.contains(message.topic) && topics.size() >= options_.max_retained_per_device) {
    drop_expired(topics, steady::now());
    if (topics.size() >= options_.max_retained_per_device) return;
  }
  mqtt::Publish kept = message;
  kept.dup = false;
  kept.packet_id = 0;
  kept.properties.topic_alias.reset();
  auto expires_at = mqtt::SessionState::expiry_of(kept, steady::now());
  persist_retained(namespace_device, message.topic, &kept, expires_at);
  topics[message.topic] = {std::move(kept), expires_at};
}

void Broker::persist_retained(const std::string& namespace_device, const std::string& topic,
                              const mqtt::Publish* message,
                              std::optional<std::chrono::steady_clock::time_point> expires_at) {
  const auto now = image_time();
  StateChange change{std::string(store::kMqttStateRetained), topic, {}, 0, now.unix_ms};
  if (message != nullptr) {
    // Kept as the MQTT 5.0 PUBLISH it is, properties included (a QoS 1/2 packet needs an id).
    mqtt::Publish packet = *message;
    if (packet.qos > 0) packet.packet_id = 1;
    if (auto encoded = mqtt::encode(packet, mqtt::ProtocolVersion::v5, change.plain); !encoded) {
      spdlog::error("gateway: a retained message of device {} cannot be kept: {}", namespace_device,
                    encoded.error().message);
      return;
    }
    if (expires_at) change.expires_at = mqtt::to_unix_ms(*expires_at, now);
  }
  submit_state(namespace_device, std::move(change));
}

bool Broker::submit_state(const std::string& device_id, StateChange change) {
  const auto kind = change.kind;
  IngestItem item;
  item.device_id = device_id;
  item.state = std::move(change);
  if (writer_.submit(std::move(item), nullptr)) return true;
  spdlog::warn("gateway: the ingest queue is full; a change to the kept {} of device {} was not stored", kind,
               device_id);
  return false;
}

mqtt::ImageTime Broker::image_time() const { return {steady::now(), to_unix_millis(clock_.now())}; }

Status Broker::load_kept_state(keys::KeyRing& keys) {
  if (auto expired = store_.mqtt_state().remove_expired(to_unix_millis(clock_.now())); !expired) {
    return tl::unexpected(expired.error());
  }
  auto retained = load_kept(keys, store::kMqttStateRetained);
  if (!retained) return tl::unexpected(retained.error());
  load_retained(*retained);
  auto sessions = load_kept(keys, store::kMqttStateSession);
  if (!sessions) return tl::unexpected(sessions.error());
  load_sessions(*sessions);
  return ok();
}

Result<std::vector<Broker::KeptRow>> Broker::load_kept(keys::KeyRing& keys, std::string_view kind) {
  auto rows = store_.mqtt_state().list(kind);
  if (!rows) return tl::unexpected(rows.error());
  std::vector<KeptRow> kept;
  kept.reserve(rows->size());
  for (auto& row : *rows) {
    auto plain = keys.open(row.key_id, row.sealed, mqtt_state_associated_data(row.device_id, row.kind, row.name));
    if (!plain) {  // unusable for good (its key or its bytes are damaged): deleted
      spdlog::error("gateway: the kept {} of device {} cannot be opened and is deleted: {}", kind, row.device_id,
                    plain.error().message);
      if (auto removed = store_.mqtt_state().remove(row.device_id, row.kind, row.name); !removed) {
        return tl::unexpected(removed.error());
      }
      continue;
    }
    kept.push_back({std::move(row), std::move(*plain)});
  }
  return kept;
}

void Broker::load_retained(const std::vector<KeptRow>& rows) {
  const auto now = image_time();
  for (const auto& [row, plain] : rows) {
    auto packet = mqtt::decode(plain.view(), mqtt::ProtocolVersion::v5);
    auto* publish = packet ? std::get_if<mqtt::Publish>(&*packet) : nullptr;
    if (publish == nullptr || publish->topic != row.name) {
      spdlog::error("gateway: a retained message of device {} is not a valid PUBLISH; skipped", row.device_id);
      continue;
    }
    publish->packet_id = 0;
    std::optional<std::chrono::steady_clock::time_point> expires_at;
    if (row.expires_at > 0) expires_at = mqtt::to_steady(row.expires_at, now);
    retained_[row.device_id][row.name] = Retained{std::move(*publish), expires_at};
  }
}

void Broker::persist_session(const std::string& device_id, const mqtt::SessionState* state,
                             std::chrono::steady_clock::time_point expires_at) {
  dirty_sessions_.erase(device_id);
  const auto now = image_time();
  StateChange change{std::string(store::kMqttStateSession), "", {}, 0, now.unix_ms};
  if (state != nullptr) {
    auto image = mqtt::encode_session_image(*state, now);
    if (!image) {
      spdlog::error("gateway: the session of device {} cannot be kept: {}", device_id, image.error().message);
      return;
    }
    change.plain = std::move(*image);
    change.expires_at = mqtt::to_unix_ms(expires_at, now);
    sessions_in_store_.insert(device_id);
  } else {
    sessions_in_store_.erase(device_id);
  }
  if (!submit_state(device_id, std::move(change)) && state != nullptr) {
    dirty_sessions_.insert(device_id);  // tried again at the next tick
  }
}

void Broker::forget_stored_session(const std::string& device_id) {
  dirty_sessions_.erase(device_id);
  if (sessions_in_store_.contains(device_id)) persist_session(device_id, nullptr, {});
}

void Broker::persist_dirty_sessions() {
  if (dirty_sessions_.empty()) return;
  const auto dirty = std::exchange(dirty_sessions_, {});
  const auto now = steady::now();
  for (const auto& id : dirty) {
    if (auto it = stored_.find(id); it != stored_.end()) {
      persist_session(id, it->second.state.get(), it->second.expires_at);
    } else if (auto live = live_.find(id); live != live_.end()) {
      // Connected: its subscriptions, so that they outlive a crash of the server. Messages in
      // flight are left out: after a crash nobody can tell which of them arrived.
      const DeviceSession& session = *live->second;
      if (session.session_expiry_seconds_ == 0 || !session.state_) continue;
      mqtt::SessionState subscriptions;
      subscriptions.subscriptions = session.state_->subscriptions;
      persist_session(id, &subscriptions, now + std::chrono::seconds(session.session_expiry_seconds_));
    }
  }
}

void Broker::save_sessions() {
  for (const auto& [id, stored] : stored_) {
    if (dirty_sessions_.contains(id) || !sessions_in_store_.contains(id)) {
      persist_session(id, stored.state.get(), stored.expires_at);
    }
  }
  // Live connections end with the server: their sessions are kept as if the connection was
  // lost now (the will is not sent: the device did nothing wrong).
  const auto now = steady::now();
  for (const auto& [id, session] : live_) {
    if (session->session_expiry_seconds_ > 0 && session->state_) {
      persist_session(id, session->state_.get(), now + std::chrono::seconds(session->session_expiry_seconds_));
    }
  }
}

void Broker::load_sessions(const std::vector<KeptRow>& rows) {
  const auto now = image_time();
  for (const auto& [row, plain] : rows) {
    sessions_in_store_.insert(row.device_id);  // deleted when continued, ended or unusable
    auto state = mqtt::decode_session_image(plain.view(), now);
    if (!state) {
      spdlog::error("gateway: the kept session of device {} is not readable: {}", row.device_id, state.error().message);
      forget_stored_session(row.device_id);
      continue;
    }
    auto shared = std::make_shared<mqtt::SessionState>(std::move(*state));
    for (const auto& [filter, subscription] : shared->subscriptions) {
      if (auto ns = filter_namespace(filter)) add_subscriber(*ns, {row.device_id, subscription});
    }
    stored_[row.device_id] = {std::move(shared), mqtt::to_steady(row.expires_at, now)};
  }
}

void Broker::publish_from_server(const mqtt::Publish& message) {
  auto topic = policy::parse_device_topic(message.topic);
  if (!topic) return;
  const std::string device_id(topic->device_id);
  if (message.retain) retain(device_id, message);
  route(device_id, message, nullptr);
}

void Broker::publish_will(const std::string& device_id, const mqtt::Publish& message) {
  if (message.retain) retain(device_id, message);
  route(device_id, message, &device_id);
}

void Broker::publish_due_wills() {
  if (pending_wills_.empty()) return;
  const auto now = steady::now();
  std::vector<std::pair<std::string, mqtt::Publish>> due;
  for (auto it = pending_wills_.begin(); it != pending_wills_.end();) {
    if (it->second.due <= now) {
      due.emplace_back(it->first, std::move(it->second.message));
      it = pending_wills_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [device_id, message] : due) publish_will(device_id, message);
}

void Broker::disconnect_device(std::string_view device_id, ReasonCode reason, const std::string& why) {
  const std::string id(device_id);
  stored_.erase(id);
  forget_stored_session(id);
  pending_wills_.erase(id);  // like a live connection's will: not sent for a device shut out
  remove_all_subscriptions(id);
  forget_device(id);
  health_.forget(id);  // a device shut out is not reported for the heartbeats it cannot send
  if (auto it = live_.find(id); it != live_.end()) {
    // Unregistered first: the ending connection keeps no session and sends no will.
    DeviceSession* session = it->second;
    live_.erase(it);
    session->registered_ = false;
    session->link().disconnect(reason, why);
  }
}

void Broker::expire_sessions() {
  const auto now = steady::now();
  for (auto it = stored_.begin(); it != stored_.end();) {
    if (it->second.expires_at <= now) {
      remove_all_subscriptions(it->first);
      // The session ended: a will still waiting for its delay is due now.
      if (auto will = pending_wills_.find(it->first); will != pending_wills_.end()) will->second.due = now;
      forget_stored_session(it->first);
      it = stored_.erase(it);
    } else {
      ++it;
    }
  }
}

void Broker::check_device_health() {
  for (auto& event : health_.check(to_unix_millis(clock_.now()))) {
    if (security_events_) security_events_(std::move(event));
  }
}

Broker::CounterBatch Broker::take_counters() {
  CounterBatch batch;
  const auto now = to_unix_millis(clock_.now());
  for (auto& [id, rt] : runtime_) {
    const auto& u = rt.unflushed;
    if (u.messages || u.bytes || u.refusals || u.connects) {
      batch.deltas.push_back({id, u.messages, u.bytes, u.refusals, u.connects, now});
    }
    if (rt.last_seen) batch.seen.emplace_back(id, *rt.last_seen);
    rt.unflushed = {};
    rt.last_seen.reset();
  }
  return batch;
}

void Broker::merge_counters(CounterBatch& into, CounterBatch from) {
  if (into.empty()) {
    into = std::move(from);
    return;
  }
  std::unordered_map<std::string, std::size_t> delta_of;
  for (std::size_t i = 0; i < into.deltas.size(); ++i) delta_of.emplace(into.deltas[i].device_id, i);
  for (auto& d : from.deltas) {
    const auto [it, added] = delta_of.try_emplace(d.device_id, into.deltas.size());
    if (added) {
      into.deltas.push_back(std::move(d));
      continue;
    }
    auto& sum = into.deltas[it->second];
    sum.messages += d.messages;
    sum.bytes += d.bytes;
    sum.refusals += d.refusals;
    sum.connects += d.connects;
    sum.updated_at = std::max(sum.updated_at, d.updated_at);
  }
  std::unordered_map<std::string, std::size_t> seen_of;
  for (std::size_t i = 0; i < into.seen.size(); ++i) seen_of.emplace(into.seen[i].first, i);
  for (auto& [id, at] : from.seen) {
    const auto [it, added] = seen_of.try_emplace(id, into.seen.size());
    if (added) {
      into.seen.emplace_back(std::move(id), at);
    } else {
      into.seen[it->second].second = std::max(into.seen[it->second].second, at);
    }
  }
}

Status Broker::write_counters(store::Store& store, const CounterBatch& batch) {
  if (batch.empty()) return ok();
  const auto write = [&](std::span<const store::DeviceCounters> deltas) {
    return store.transaction([&]() -> Status {
      if (auto added = store.device_counters().add(deltas); !added) return added;
      for (const auto& [id, at] : batch.seen) {
        auto touched = store.devices().touch_last_seen(id, at);
        if (!touched && !touched.error().is(Errc::not_found)) return touched;
      }
      return ok();
    });
  };
  auto written = write(batch.deltas);
  if (written || !written.error().is(Errc::conflict)) return written;
  // A device deleted since its counters were taken (the store refuses counters of a device it
  // does not hold): its own go with it, the others' are written. Looked up only then, not for
  // every device every time, in a transaction that holds the group commit back.
  std::vector<store::DeviceCounters> kept;
  kept.reserve(batch.deltas.size());
  for (const auto& d : batch.deltas) {
    auto device = store.devices().find(d.device_id);
    if (!device) return tl::unexpected(device.error());
    if (*device) kept.push_back(d);
  }
  return write(kept);
}

// ---------------------------------------------------------------------------------------

DeviceSession::DeviceSession(Broker& broker, DeviceInfo device, ClientLink& link, std::string source)
    : broker_(broker), device_(std::move(device)), link_(link), source_(std::move(source)) {}

DeviceSession::~DeviceSession() {
  if (!registered_) return;
  auto it = broker_.live_.find(device_.id);
  if (it != broker_.live_.end() && it->second == this) broker_.live_.erase(it);
}

mqtt::SessionHost::ConnectDecision DeviceSession::on_connect(const mqtt::Connect& connect) {
  ConnectDecision decision;
  auto& rt = broker_.runtime(device_.id);
  ++rt.total.connects;
  ++rt.unflushed.connects;
  rt.last_seen = to_unix_millis(broker_.clock_.now());
  if (auto a = broker_.monitor_.on_connect(rt.traffic, steady::now())) broker_.anomaly(device_, source_, *a);

  if (connect.will) {
    const auto acl = policy::authorize_publish(identity_of(device_), connect.will->topic);
    if (!acl.allowed()) {
      broker_.security_event(device_, source_, "mqtt.publish_denied", "will topic: " + std::string(acl.reason), true);
      decision.reason = ReasonCode::not_authorized;
      return decision;
    }
  }

  // One connection per device: a new one takes over (MQTT 5.0 §3.1.4-3).
  if (auto it = broker_.live_.find(device_.id); it != broker_.live_.end()) {
    DeviceSession* previous = it->second;
    broker_.live_.erase(it);
    previous->registered_ = false;
    previous->link().disconnect(ReasonCode::session_taken_over, "a new connection of the device took over");
  }
  broker_.live_[device_.id] = this;
  registered_ = true;

  // A will waiting for its delay: the session continues (no will), or a clean start ends
  // the previous session, and with it the delay (5.0 §3.1.3.2.2).
  if (auto will = broker_.pending_wills_.find(device_.id); will != broker_.pending_wills_.end()) {
    mqtt::Publish message = std::move(will->second.message);
    broker_.pending_wills_.erase(will);
    if (connect.clean_start) broker_.publish_will(device_.id, message);
  }

  session_expiry_seconds_ = mqtt::Session::session_expiry_of(connect, broker_.options_.session);
  // Continued or ended here: either way the kept copy is out of date. A persistent session is
  // written again (its subscriptions) at the next tick.
  broker_.forget_stored_session(device_.id);
  if (session_expiry_seconds_ > 0) broker_.dirty_sessions_.insert(device_.id);
  auto stored = broker_.stored_.find(device_.id);
  if (connect.clean_start || stored == broker_.stored_.end()) {
    if (stored != broker_.stored_.end()) broker_.stored_.erase(stored);
    broker_.remove_all_subscriptions(device_.id);
    state_ = std::make_shared<mqtt::SessionState>();
  } else {
    state_ = stored->second.state;
    broker_.stored_.erase(stored);
    decision.session_present = true;
  }
  decision.state = state_;
  decision.assigned_client_id = device_.id;
  return decision;
}

mqtt::SessionHost::PublishDecision DeviceSession::on_publish(const mqtt::Publish& publish) {
  PublishDecision decision;
  // The store is behind: the message waits, and its connection with it, until there is room
  // (Broker::resume_held), before anything is done with it.
  if (publish.qos > 0 && broker_.writer_.full()) {
    broker_.held_.push_back(device_.id);
    broker_.warn_busy();
    decision.hold = true;
    return decision;
  }
  auto& rt = broker_.runtime(device_.id);
  rt.last_seen = to_unix_millis(broker_.clock_.now());
  const auto refuse = [&](ReasonCode reason, const std::string& action, const std::string& why) {
    decision.reason = reason;
    broker_.security_event(device_, source_, action, why, true);
    if (broker_.offence(device_, source_, why)) {
      link_.disconnect(ReasonCode::administrative_action, "too many refused messages");
    }
    return decision;
  };

  // IIIT N3/N5: only under its own namespace.
  const auto acl = policy::authorize_publish(identity_of(device_), publish.topic);
  if (!acl.allowed()) return refuse(ReasonCode::not_authorized, "mqtt.publish_denied", std::string(acl.reason));
  auto topic = policy::parse_device_topic(publish.topic);
  if (!topic) return refuse(ReasonCode::topic_name_invalid, "mqtt.publish_denied", "not a device topic");

  // JPCERT II-6: quotas before any further work on the message.
  const auto now = steady::now();
  if (!rt.quota->try_admit(publish.payload.size() + publish.topic.size(), now)) {
    return refuse(ReasonCode::quota_exceeded, "mqtt.rate_limited", "message or byte rate above the device's quota");
  }

  // Renewal requests go to the server's handler only: never stored as telemetry, retained
  // or routed.
  if (topic->kind == policy::TopicKind::renew) {
    if (publish.payload.size() > kMaxRenewalRequestBytes) {
      return refuse(ReasonCode::packet_too_large, "mqtt.payload_invalid", "renewal request too large");
    }
    if (!broker_.renewal_requested_) {
      return refuse(ReasonCode::implementation_specific_error, "mqtt.publish_denied", "renewal is not offered");
    }
    ++rt.total.messages;
    ++rt.unflushed.messages;
    rt.total.bytes += publish.payload.size();
    rt.unflushed.bytes += publish.payload.size();
    broker_.renewal_requested_(
        device_, std::string_view(reinterpret_cast<const char*>(publish.payload.data()), publish.payload.size()));
    return decision;
  }

  // JPCERT II-5: telemetry must match the device profile.
  const policy::Telemetry* telemetry = nullptr;
  policy::Telemetry parsed;
  const policy::Profile* profile = broker_.profile_for(device_.profile_id);
  if (profile == nullptr) {
    return refuse(ReasonCode::payload_format_invalid, "mqtt.payload_invalid", "the device's profile is not usable");
  }
  if (topic->kind == policy::TopicKind::telemetry) {
    auto validated = broker_.validator_.validate(
        *profile, std::string_view(reinterpret_cast<const char*>(publish.payload.data()), publish.payload.size()));
    if (!validated) {
      const auto code = validated.error().kind == policy::RefusalKind::too_large ? ReasonCode::packet_too_large
                                                                                 : ReasonCode::payload_format_invalid;
      return refuse(code, "mqtt.payload_invalid", validated.error().reason);
    }
    parsed = std::move(*validated);
    telemetry = &parsed;
  } else if (publish.payload.size() > profile->max_message_bytes()) {
    return refuse(ReasonCode::packet_too_large, "mqtt.payload_invalid", "message larger than the profile allows");
  }

  if (auto a = broker_.monitor_.on_message(rt.traffic, publish.payload.size(), now)) {
    broker_.anomaly(device_, source_, *a);
  }
  ++rt.total.messages;
  ++rt.unflushed.messages;
  rt.total.bytes += publish.payload.size();
  rt.unflushed.bytes += publish.payload.size();
  const auto received_at = to_unix_millis(broker_.clock_.now());

  if (topic->kind == policy::TopicKind::state || topic->kind == policy::TopicKind::events) {
    const std::string_view text(reinterpret_cast<const char*>(publish.payload.data()), publish.payload.size());
    for (auto& event : broker_.health_.observe(device_.id, topic->kind, text, *profile, received_at)) {
      if (broker_.security_events_) broker_.security_events_(std::move(event));
    }
  }
  if (publish.retain) broker_.retain(device_.id, publish);
  broker_.route(device_.id, publish, &device_.id);
  for (const auto& observer : broker_.observers_) {
    observer(AcceptedMessage{device_, topic->kind, publish, telemetry, received_at});
  }

  IngestItem item;
  item.device_id = device_.id;
  item.kind = std::string(policy::to_string(topic->kind));
  item.received_at = telemetry && telemetry->ts_ms ? *telemetry->ts_ms : received_at;
  item.payload = publish.payload;
  if (topic->kind == policy::TopicKind::events || topic->kind == policy::TopicKind::results) {
    item.message_key = policy::message_id_of(
        std::string_view(reinterpret_cast<const char*>(publish.payload.data()), publish.payload.size()));
  }
  if (telemetry) {  // the observers have had it: its values move to the writer
    item.message_key = std::move(parsed.message_id);
    item.metrics = std::move(parsed.metrics);
  }
  const std::uint16_t packet_id = publish.packet_id;
  const bool acknowledge_later = publish.qos > 0;
  IngestDone done;
  if (acknowledge_later) {
    // The session may be gone when the batch commits: check through the broker's map.
    done = [&broker = broker_, alive = broker_.alive_, device_id = device_.id, self = this, packet_id](bool stored) {
      if (!*alive) return;
      auto it = broker.live_.find(device_id);
      if (it == broker.live_.end() || it->second != self) return;
      self->link().publish_done(packet_id, stored ? ReasonCode::success : ReasonCode::unspecified_error);
    };
  }
  if (!broker_.writer_.submit(std::move(item), std::move(done))) {
    // The store cannot keep up: a QoS 0 message is dropped. A QoS 1/2 one (only when the
    // queue filled since the check above, with this message's retained copy) is not
    // acknowledged: the session closes with "server busy" and the client sends it again.
    // Either way it is counted, not held against the device.
    ++rt.total.refusals;
    ++rt.unflushed.refusals;
    broker_.warn_busy();
    decision.reason = ReasonCode::server_busy;
    return decision;
  }
  decision.pending = acknowledge_later;
  return decision;
}

mqtt::ReasonCode DeviceSession::on_subscribe(const mqtt::Subscription& subscription) {
  const auto acl = broker_.authorize_read(device_.id, subscription.filter, true);
  if (!acl.allowed()) {
    broker_.security_event(device_, source_, "mqtt.subscribe_denied", std::string(acl.reason), true);
    if (broker_.offence(device_, source_, acl.reason)) {
      link_.disconnect(ReasonCode::administrative_action, "too many refused requests");
    }
    return ReasonCode::not_authorized;
  }
  auto ns = filter_namespace(subscription.filter);
  if (!ns) return ReasonCode::topic_filter_invalid;
  broker_.add_subscriber(*ns, {device_.id, subscription});
  return static_cast<ReasonCode>(std::min<std::uint8_t>(subscription.qos, 2));
}

mqtt::ReasonCode DeviceSession::on_unsubscribe(std::string_view filter) {
  if (session_expiry_seconds_ > 0) broker_.dirty_sessions_.insert(device_.id);
  if (auto ns = filter_namespace(filter)) broker_.remove_subscriber(*ns, device_.id, filter);
  return ReasonCode::success;
}

void DeviceSession::on_subscribed(const mqtt::Subscription& subscription, bool existed) {
  if (session_expiry_seconds_ > 0) broker_.dirty_sessions_.insert(device_.id);
  if (broker_.commands_subscribed_ &&
      mqtt::topic_matches(subscription.filter, policy::device_topic(device_.id, policy::TopicKind::commands))) {
    broker_.commands_subscribed_(device_);
  }
  // 5.0 §3.3.1.3 retain handling: 0 always, 1 only for a new subscription, 2 never.
  if (subscription.retain_handling == 2 || (subscription.retain_handling == 1 && existed)) return;
  auto ns = filter_namespace(subscription.filter);
  if (!ns) return;
  auto it = broker_.retained_.find(*ns);
  if (it == broker_.retained_.end()) return;
  const auto now = steady::now();
  Broker::drop_expired(it->second, now);
  for (const auto& [topic, retained] : it->second) {
    if (!mqtt::topic_matches(subscription.filter, topic)) continue;
    mqtt::Publish copy = retained.message;
    copy.retain = true;  // §3.3.1.3: retained messages keep RETAIN = 1 when sent for a new subscription
    copy.qos = std::min(copy.qos, subscription.qos);
    if (retained.expires_at) {  // 5.0 §3.3.2.3.3: what is left of the interval
      copy.properties.message_expiry_interval = mqtt::SessionState::seconds_left(*retained.expires_at, now);
    }
    link_.deliver(std::move(copy), mqtt::Delivery::retained_on_subscribe);
  }
}

void DeviceSession::ended(mqtt::Session& session) {
  switch (session.close_reason()) {
    case ReasonCode::malformed_packet:
    case ReasonCode::protocol_error:
    case ReasonCode::packet_too_large:
    case ReasonCode::receive_maximum_exceeded:
    case ReasonCode::topic_alias_invalid:
    case ReasonCode::subscription_identifiers_not_supported:
      // IIIT N6: protocol violations are anomalies of their own.
      broker_.security_event(device_, source_, "mqtt.protocol_violation",
                             fmt::format("{}: {}", mqtt::to_string(session.close_reason()), session.close_detail()),
                             true);
      break;
    default: break;
  }
  if (auto will = session.take_will(); will && registered_) {
    mqtt::Publish message;
    message.topic = will->topic;
    message.payload = std::move(will->payload);
    message.qos = will->qos;
    message.retain = will->retain;
    // 5.0 §3.1.3.2: the will's properties travel with it (payload format, message expiry,
    // content type, response topic, correlation data, user properties), except the delay.
    message.properties = std::move(will->properties);
    const auto delay = message.properties.will_delay_interval.value_or(0);
    message.properties.will_delay_interval.reset();
    // §3.1.3.2.2: sent once the delay has passed or the session has ended, whichever is first.
    const auto wait = std::min(delay, session.session_expiry_seconds());
    if (wait == 0) {
      broker_.publish_will(device_.id, message);
    } else {
      broker_.pending_wills_[device_.id] = {std::move(message), steady::now() + std::chrono::seconds(wait)};
    }
  }
  if (!registered_) return;  // taken over: the new connection owns the session now
  const auto expiry = session.session_expiry_seconds();
  if (expiry > 0 && state_) {
    const auto expires_at = steady::now() + std::chrono::seconds(expiry);
    broker_.stored_[device_.id] = {state_, expires_at};
    broker_.persist_session(device_.id, state_.get(), expires_at);
  } else {
    broker_.remove_all_subscriptions(device_.id);
    broker_.forget_stored_session(device_.id);  // e.g. a 5.0 DISCONNECT set the expiry to 0
  }
}

}  // namespace torii::broker

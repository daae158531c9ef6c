#include "server/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>
#include <unordered_map>

#include "alerts/alert_book.h"
#include "alerts/certificate_expiry.h"
#include "base/allocator.h"
#include "base/file.h"
#include "base/privileges.h"
#include "base/version.h"
#include "broker/broker.h"
#include "broker/gateway.h"
#include "broker/store_writer.h"
#include "console/api.h"
#include "console/assets.h"
#include "console/http_server.h"
#include "console/live.h"
#include "console/settings.h"
#include "console/waf.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "decision/rule_book.h"
#include "decision/trigger.h"
#include "events/security_log.h"
#include "identity/accounts.h"
#include "identity/api_tokens.h"
#include "identity/custom_roles.h"
#include "identity/device_commands.h"
#include "identity/devices.h"
#include "identity/enrolment.h"
#include "identity/setup_token.h"
#include "mail/outbox.h"
#include "net/listener.h"
#include "net/tls_context.h"
#include "notify/channel_book.h"
#include "notify/dispatcher.h"
#include "pki/certificate_authority.h"
#include "server/admin_ops.h"
#include "server/control.h"
#include "server/passphrase.h"

namespace torii::server {
namespace asio = boost::asio;

namespace {

// The password-hashing threads' niceness (setpriority(2)): with a weight about a tenth of the
// I/O thread's, they take the CPU it leaves rather than share it evenly.
constexpr int kHashingNice = 10;

std::string colon_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    if (!out.empty()) out.push_back(':');
    out.append(hex.substr(i, 2));
  }
  return out;
}

net::FilterOptions filter_options(const config::FirewallConfig& f) {
  net::FilterOptions o;
  for (const auto& c : f.allow) o.allow.push_back(*CidrBlock::parse(c));  // validated by config
  for (const auto& c : f.deny) o.deny.push_back(*CidrBlock::parse(c));
  o.max_connections = f.max_connections;
  o.max_connections_per_source = f.max_connections_per_source;
  o.ban_after_failures = f.ban_after_failures;
  o.failure_window = std::chrono::seconds(f.failure_window_seconds);
  o.ban_duration = std::chrono::seconds(f.ban_seconds);
  return o;
}

}  // namespace

struct Server::State {
  State(config::Config c, Environment e)
      : file_config(c),
        config(std::move(c)),
        env(e),
        data_dir(resolve_data_dir(config)),
        filter(filter_options(config.firewall), env.clock) {}

  // The configuration file as loaded, and the configuration in force: the file, then the
  // overrides stored through the console (applied in start(); changed on the io thread by
  // the console's settings routes, of which only the firewall is read here afterwards).
  const config::Config file_config;
  config::Config config;
  Environment env;
  std::filesystem::path data_dir;

  // Declared before io: connection coroutines still suspended when io is destroyed
  // release their filter slot and refer to their handler as they unwind.
  net::ConnectionFilter filter;
  // The gateway (made in start(), once the store is open). The writer is stopped by
  // ~Server before the store closes; the broker outlives the connection coroutines.
  std::unique_ptr<broker::StoreWriter> writer;
  // Commands to devices: signed and recorded here, carried by the broker (which calls back
  // into it, so it is declared first and outlives the broker).
  std::unique_ptr<identity::DeviceCommands> commands;
  // The Decision Trigger: the rules people keep, and the engine running them (make_rules()).
  std::unique_ptr<decision::RuleBook> rule_book;
  std::unique_ptr<decision::Trigger> trigger;
  std::unique_ptr<broker::Broker> broker;
  std::unique_ptr<broker::Gateway> gateway;
  // What the gateway accepts, for the console's live sockets; declared before io as well,
  // so that sockets unwinding when io is destroyed still find it.
  console::LiveFeed live;

  asio::io_context io{1};
  // Registered at creation, so a SIGTERM that arrives during start-up is not lost.
  asio::signal_set signals{io, SIGINT, SIGTERM};
  std::vector<std::unique_ptr<net::TlsListener>> listeners;

  Installation installation;
  std::unique_ptr<events::SecurityLog> log;
  // The installation's alerts, fed by log_event (made in open_state(), with the log).
  std::unique_ptr<alerts::AlertBook> alerts;
  // Where the alerts of the message path are raised and resolved, one at a time in the order
  // they come: the rules' (rule_alert) and those the gateway's security events open
  // (post_event). Storing an alert waits for the store, which a group commit of the gateway's
  // may hold, and the I/O thread must not wait with it. Made with the book; joined by ~Server
  // before the store and the log close.
  std::unique_ptr<asio::thread_pool> alert_thread;
  // Where the gateway's per-device counters and last-seen times are written every 10 s: a
  // transaction that would hold the I/O thread (a few milliseconds, longer behind a group
  // commit). Joined by ~Server before the last batch is written there.
  std::unique_ptr<asio::thread_pool> counters_thread;
  broker::Broker::CounterBatch counters_unwritten;  // on counters_thread: a batch whose write failed
  bool dropped_to_user = false;
  asio::steady_timer checkpoint_timer{io};
  asio::steady_timer tls_refresh_timer{io};
  std::unique_ptr<ControlServer> control;
  asio::steady_timer counters_timer{io};
  asio::steady_timer wills_timer{io};
  asio::steady_timer unused_devices_timer{io};
  asio::steady_timer certificate_expiry_timer{io};
  asio::steady_timer sessions_timer{io};
  asio::steady_timer unused_people_timer{io};
  asio::steady_timer rules_timer{io};
  // The console (made in start()). The work pools are declared last so that they are destroyed
  // first: their threads are joined while everything their jobs use still exists.
  std::unique_ptr<identity::Accounts> accounts;
  std::unique_ptr<identity::People> people;
  std::unique_ptr<identity::ApiTokens> api_tokens;
  std::unique_ptr<identity::DeviceRegistry> devices;
  std::unique_ptr<identity::Enrolment> enrolment;
  std::unique_ptr<console::Waf> waf;
  std::unique_ptr<mail::SmtpOutbox> outbox;  // outlives the api, which posts to it
  // Notification channels (make_notifications()): each organisation's, kept by the book and
  // delivered by the dispatcher's own thread, which posts e-mail to the outbox above (so it
  // is declared after it: destroyed, its thread joined, first).
  std::unique_ptr<notify::ChannelBook> channels;
  std::unique_ptr<notify::Dispatcher> dispatcher;
  std::unique_ptr<console::Api> api;
  std::unique_ptr<console::Assets> console_assets;  // nullptr: the web console was not found
  std::unique_ptr<console::HttpServer> http;
  std::unique_ptr<console::WorkPool> hash_pool;
  std::unique_ptr<console::WorkPool> waf_pool;  // inspections read the waf and the request

  // Every server-side security event comes through here, the console's too (its sink), from
  // the io thread and the console's hashing threads. Each may open or resolve an alert
  // (JPCERT VIII-1, VIII-2; alerts/alert_rules.h). The book writes its own events
  // (alert.acknowledged, alert.resolved) to the log directly, and alert_change_for ignores
  // them anyway, so an alert never feeds itself.
  void log_event(const events::SecurityEvent& event) {
    if (log) {
      if (auto st = log->append(event); !st) spdlog::error("security log: {}", st.error().message);
    }
    if (alerts) alerts->observe(event);
  }
  // The same for an event of the message path (the gateway's, a rule firing): the log's own
  // thread writes it and the alert thread applies it to the alerts, so that the I/O thread
  // waits for neither the disk nor the store (a storm of them, say every device of a site
  // missing its heartbeats at once, would otherwise hold every connection).
  void post_event(const events::SecurityEvent& event) {
    if (log) {
      if (auto st = log->post(event); !st) spdlog::error("security log: {}", st.error().message);
    }
    if (alerts) asio::post(*alert_thread, [this, event] { alerts->observe(event); });
  }

  struct TlsContexts {
    std::shared_ptr<asio::ssl::context> console;
    std::shared_ptr<asio::ssl::context> gateway;
  };

  // Renews the server certificate when due and builds both TLS contexts with a fresh
  // revocation list, so a long-running gateway never checks devices against a stale CRL.
  Result<TlsContexts> make_tls_contexts() {
    auto& ca = *installation.ca;
    // First start: creates the CA hierarchy too.
    auto renewed = ca.initialise(config.server.hostnames);
    if (!renewed) return tl::unexpected(renewed.error());
    if (renewed->created_root) log_event({"system", "ca.created", "ca:root", events::Outcome::success, "local"});
    if (renewed->created_issuing) log_event({"system", "ca.created", "ca:issuing", events::Outcome::success, "local"});
    if (renewed->issued_server_certificate) {
      log_event({"system",
                 "certificate.issued",
                 "certificate:server",
                 events::Outcome::success,
                 "local",
                 {{"hostnames", config.server.hostnames}}});
    }
    auto credentials = ca.server_credentials();
    if (!credentials) return tl::unexpected(credentials.error());
    auto root = ca.root_certificate_pem();
    auto issuing = ca.issuing_certificate_pem();
    auto crl = ca.revocation_list();
    if (!root || !issuing || !crl) return fail(Errc::corrupt, "the CA's certificates or revocation list are unusable");
    const net::TlsCredentials tls_credentials{credentials->certificate_chain_pem, credentials->private_key_pem};
    auto console_tls = net::make_server_tls_context(config.tls, tls_credentials, std::nullopt);
    if (!console_tls) return tl::unexpected(console_tls.error());
    // Devices must present a certificate from torii's CA that is not revoked (IIIT N1).
    auto gateway_tls =
        net::make_server_tls_context(config.tls, tls_credentials, net::ClientVerification{{*root, *issuing}, *crl});
    if (!gateway_tls) return tl::unexpected(gateway_tls.error());
    return TlsContexts{std::move(*console_tls), std::move(*gateway_tls)};
  }

  // The first console listener's port (the one links name).
  [[nodiscard]] std::uint16_t console_port() const { return listeners.at(config.gateway.listen.size())->local_port(); }

  [[nodiscard]] bool is_gateway(std::size_t listener_index) const {
    return listener_index < config.gateway.listen.size();
  }

  // Runs work every period on the io_context until the timer is cancelled.
  static void every(asio::steady_timer& timer, std::chrono::seconds period, std::function<void()> work) {
    timer.expires_after(period);
    timer.async_wait([&timer, period, work = std::move(work)](const boost::system::error_code& ec) mutable {
      if (ec) return;
      work();
      every(timer, period, std::move(work));
    });
  }

  broker::BrokerOptions broker_options() const {
    const auto& m = config.mqtt;
    broker::BrokerOptions o;
    o.session.receive_maximum = static_cast<std::uint16_t>(m.receive_maximum);
    o.session.maximum_packet_bytes = m.max_packet_bytes;
    o.session.max_keep_alive_seconds = static_cast<std::uint16_t>(m.max_keep_alive_seconds);
    o.session.max_inflight_out = static_cast<std::uint16_t>(m.max_inflight_messages);
    o.session.max_queued_out = m.max_queued_messages;
    o.session.max_pending_output_bytes = m.max_pending_output_bytes;
    o.session.max_session_expiry_seconds = m.max_session_expiry_seconds;
    o.session.max_subscriptions = m.max_subscriptions;
    o.messages_per_second = m.device_messages_per_second;
    o.message_burst = m.device_message_burst;
    o.bytes_per_second = m.device_bytes_per_second;
    o.byte_burst = m.device_byte_burst;
    o.offences_before_ban = m.offences_before_ban;
    o.offence_window = std::chrono::seconds(m.offence_window_seconds);
    o.device_ban = std::chrono::seconds(m.device_ban_seconds);
    o.max_clock_skew = std::chrono::seconds(config.devices.max_clock_skew_seconds);
    return o;
  }

  Status make_gateway() {
    writer = std::make_unique<broker::StoreWriter>(
        *installation.store, *installation.keys,
        [this](std::function<void()> work) { asio::post(io, std::move(work)); },
        broker::StoreWriterOptions{config.mqtt.ingest_queue_messages, 2000, [this] {
                                     if (broker) broker->resume_held();
                                   }});
    broker = std::make_unique<broker::Broker>(*installation.store, *writer, env.clock, broker_options(),
                                              [this](const events::SecurityEvent& e) { post_event(e); });
    if (auto routes = broker->load_routes(); !routes) return routes;
    if (auto kept = broker->load_kept_state(*installation.keys); !kept) return kept;
    if (auto st = make_commands(); !st) return st;
    if (auto st = make_rules(); !st) return st;
    make_renewal();
    broker::GatewayEvents events;
    events.refused = [this](const net::PeerInfo& peer, const std::string& reason) {
      log_event({"anonymous",
                 "device.connect_refused",
                 "listener:gateway",
                 events::Outcome::failure,
                 peer.endpoint(),
                 {{"reason", reason}}});
    };
    events.connected = [this](const net::PeerInfo&, const broker::DeviceInfo& device) {
      live.publish({device.organisation_id, device.id,
                    console::status_message(device.id, true, format_utc_millis(env.clock.now()))});
    };
    events.disconnected = [this](const net::PeerInfo& peer, const broker::DeviceInfo& device, mqtt::ReasonCode reason,
                                 const std::string& detail) {
      spdlog::debug("gateway: device {} from {} disconnected: {} ({})", device.id, peer.endpoint(),
                    mqtt::to_string(reason), detail);
      live.publish({device.organisation_id, device.id,
                    console::status_message(device.id, false, format_utc_millis(env.clock.now()))});
    };
    broker->add_observer([this](const broker::AcceptedMessage& m) {
      if (m.telemetry == nullptr || live.open() == 0) return;
      live.publish({m.device.organisation_id, m.device.id,
                    console::telemetry_message(
                        m.device.id, format_utc_millis(from_unix_millis(m.telemetry->ts_ms.value_or(m.received_at))),
                        m.telemetry->metrics)});
    });
    gateway = std::make_unique<broker::Gateway>(
        *broker, broker::GatewayOptions{std::chrono::seconds(config.mqtt.connect_timeout_seconds)}, std::move(events));
    return ok();
  }

  // Commands to devices (IIIT J8, I7): the key is made at the first start; results are
  // recorded as they arrive; a device that subscribes to its commands is sent those still
  // awaiting its answer.
  Status make_commands() {
    auto opened = identity::DeviceCommands::open(*installation.store, *installation.keys, env.clock, env.random);
    if (!opened) return tl::unexpected(opened.error());
    commands = std::move(*opened);
    broker->on_commands_subscribed([this](const broker::DeviceInfo& device) {
      // After the subscription's turn, so that it is in place when these are routed.
      asio::post(io, [this, id = device.id] {
        auto awaiting = commands->awaiting(id);
        if (!awaiting) {
          spdlog::error("commands for device {}: {}", id, awaiting.error().message);
          return;
        }
        for (const auto& c : *awaiting) send_command(c);
      });
    });
    broker->add_observer([this](const broker::AcceptedMessage& m) {
      if (m.kind == policy::TopicKind::results) record_command_result(m);
    });
    return ok();
  }

  // The Decision Trigger (docs/rules.md): every enabled rule evaluates the telemetry the
  // gateway accepts, in the stream, and time passing (every second). Their per-device states
  // are written every 10 s and at stop. Rule changes through the console or the control
  // socket reload the rule at once (both run on this thread).
  Status make_rules() {
    decision::TriggerActions actions;
    actions.security_event = [this](const events::SecurityEvent& e) { post_event(e); };
    actions.command = [this](const decision::Firing& f, const rules::CommandAction& c) { rule_command(f, c); };
    actions.alert = [this](const decision::Firing& f) { rule_alert(f); };
    actions.notify = [this](const decision::Firing& f, const rules::NotifyAction& n) { rule_notify(f, n); };
    actions.derived = [this](const decision::DerivedValues& d) { store_derived(d); };
    trigger =
        std::make_unique<decision::Trigger>(*installation.store, *installation.keys, env.clock, std::move(actions));
    if (auto st = trigger->load(); !st) return st;
    rule_book = std::make_unique<decision::RuleBook>(*installation.store, *installation.keys, env.clock, env.random,
                                                     [this](const std::string& rule_id) {
                                                       if (auto st = trigger->reload(rule_id); !st)
                                                         spdlog::error("rule {}: {}", rule_id, st.error().message);
                                                     });
    broker->add_observer([this](const broker::AcceptedMessage& m) {
      if (m.telemetry == nullptr) return;
      trigger->observe({m.device.organisation_id, m.device.id, m.device.profile_id, m.device.segment,
                        m.telemetry->metrics, m.received_at, m.telemetry->message_id});
    });
    return ok();
  }

  // What a rule's metric actions computed (docs/rules.md "Derived metrics"): a row of kind
  // "derived" under the device, through the telemetry writer (sealed, the latest values
  // kept), and the live view. Its key is the message's id and the rule's, so a message the
  // device sends again is stored once. Values the writer could not take are counted
  // and logged at most once a minute.
  void store_derived(const decision::DerivedValues& d) {
    broker::IngestItem item;
    item.device_id = d.device_id;
    item.kind = std::string(store::kTelemetryKindDerived);
    item.received_at = d.at;
    if (!d.message_id.empty()) item.message_key = fmt::format("{}/{}", d.message_id, d.rule_id);
    nlohmann::json payload = {{kDerivedRuleKey, d.rule_id}};
    for (const auto& [name, value] : d.values) {
      if (!std::isfinite(value)) continue;  // JSON has no such number
      payload[name] = value;
      item.metrics.push_back(policy::Metric{name, value});
    }
    if (item.metrics.empty()) return;
    const auto text = payload.dump();
    item.payload.assign(text.begin(), text.end());
    if (live.open() > 0) {
      live.publish({d.organisation_id, d.device_id,
                    console::telemetry_message(d.device_id, format_utc_millis(from_unix_millis(d.at)), item.metrics)});
    }
    const auto lost = [this](const std::string& device_id) {
      ++derived_lost;
      const auto now = std::chrono::steady_clock::now();
      if (now - derived_lost_logged < std::chrono::minutes(1)) return;
      derived_lost_logged = now;
      spdlog::warn("derived metrics of device {} not stored (the store is behind); {} so far", device_id, derived_lost);
    };
    if (!writer->submit(std::move(item), [lost, device_id = d.device_id](bool stored) {
          if (!stored) lost(device_id);
        })) {
      lost(d.device_id);
    }
  }
  static constexpr std::string_view kDerivedRuleKey = "$rule";  // not a metric name (policy::valid_name)
  std::uint64_t derived_lost = 0;
  std::chrono::steady_clock::time_point derived_lost_logged{};

  // Notification channels (docs/notifications.md; JPCERT VIII-2, I-10). Every alert opened,
  // acknowledged or resolved goes to each enabled channel of its organisation whose
  // min_severity it reaches; installation-wide alerts to the channels of the default
  // organisation, where the installation's administrators are. A rule's notify action tells
  // the channels it names. Delivery is the dispatcher's (retries, dead letters, rate limits);
  // a dead letter is a notify.dead_letter event.
  static std::string dispatch_id(std::string_view organisation_id, std::string_view channel_id) {
    return fmt::format("{}/{}", organisation_id, channel_id);
  }

  Status make_notifications() {
    notify::Dispatcher::Options o;
    o.hostname = config.server.hostnames.empty() ? std::string("torii") : config.server.hostnames.front();
    o.outbox = outbox.get();
    o.clock = &env.clock;
    o.random = &env.random;
    o.policy.allow_local_destinations = config.notifications.allow_local_destinations;
    o.publish_mqtt = [this](const std::string& channel, const std::vector<std::string>& receivers,
                            const std::string& body) {
      asio::post(io, [this, channel, receivers, body] { publish_notification(channel, receivers, body); });
      return ok();
    };
    o.on_dead_letter = [this](const std::string& channel, const std::string& delivery, const std::string& reason) {
      // From the dispatcher's thread to the io thread, where events are written.
      asio::post(io, [this, channel, delivery, reason] {
        log_event({"system",
                   "notify.dead_letter",
                   "channel:" + channel,
                   events::Outcome::failure,
                   "local",
                   {{"delivery", delivery}, {"reason", reason}}});
      });
    };
    dispatcher = std::make_unique<notify::Dispatcher>(std::move(o));
    channels = std::make_unique<notify::ChannelBook>(
        *installation.store, *installation.keys, env.clock, env.random,
        [this](const std::string& organisation_id, const std::string& id) { load_channel(organisation_id, id); });
    auto all = installation.store->notification_channels().list_all();
    if (!all) return tl::unexpected(all.error());
    for (const auto& c : *all) load_channel(c.organisation_id, c.id);
    alerts->on_change([this](const store::AlertRecord& a, std::string_view event) { notify_alert(a, event); });
    return ok();
  }

  // The channel as stored now goes to the dispatcher; a deleted or disabled one, or one that
  // does not open, is taken away from it.
  void load_channel(const std::string& organisation_id, const std::string& id) {
    const auto key = dispatch_id(organisation_id, id);
    auto found = channels->find(organisation_id, id);
    if (!found) spdlog::error("channel {}: {}", key, found.error().message);
    if (!found || !*found || !(*found)->enabled) {
      dispatcher->remove_channel(key);
      return;
    }
    auto opened = channels->open(**found);
    if (!opened) {
      spdlog::error("channel {}: {}", key, opened.error().message);
      dispatcher->remove_channel(key);
      return;
    }
    if (auto st = dispatcher->set_channel(key, std::move(*opened)); !st) {
      spdlog::error("channel {}: {}", key, st.error().message);
    }
  }

  static notify::AlertNotice notice_of(const store::AlertRecord& a, notify::AlertEvent event) {
    notify::AlertNotice n;
    n.event = event;
    n.id = a.id;
    n.organisation_id = a.organisation_id;
    n.severity = a.severity;
    n.title = a.title;
    n.summary = a.summary;
    n.device_id = a.device_id;
    n.rule_id = a.rule_id;
    n.status = a.status;
    n.source = a.source;
    n.occurrences = a.occurrences;
    n.opened_at = a.opened_at;
    n.acknowledged_at = a.acknowledged_at;
    n.resolved_at = a.resolved_at;
    return n;
  }

  void deliver(const std::string& organisation_id, const std::string& channel_id, const notify::AlertNotice& n) {
    auto queued = dispatcher->notify(dispatch_id(organisation_id, channel_id), n);
    if (!queued && !queued.error().is(Errc::limit_exceeded)) {
      spdlog::warn("channel {}/{}: {}", organisation_id, channel_id, queued.error().message);
    }
  }

  // An MQTT channel's notification (from the dispatcher's thread, handed over here): QoS 1 on
  // the alerts topic of each device the channel names that is a device of its organisation
  // now, to its live connection or its kept session. On the io thread.
  void publish_notification(const std::string& dispatch_key, const std::vector<std::string>& receivers,
                            const std::string& body) {
    if (!broker) return;  // defensive: io runs only once start() has made the gateway
    const std::string organisation_id = dispatch_key.substr(0, dispatch_key.find('/'));
    for (const auto& device_id : receivers) {
      auto device = installation.store->devices().find(device_id);
      if (!device) {
        spdlog::error("channel {}: {}", dispatch_key, device.error().message);
        continue;
      }
      if (!*device || (*device)->organisation_id != organisation_id) {
        spdlog::warn("channel {}: the organisation has no device {}; nothing was sent to it", dispatch_key, device_id);
        continue;
      }
      mqtt::Publish publish;
      publish.qos = 1;
      publish.topic = policy::device_topic(device_id, policy::TopicKind::alerts);
      publish.payload.assign(body.begin(), body.end());
      broker->publish_from_server(publish);
    }
  }

  void notify_alert(const store::AlertRecord& a, std::string_view event) {
    const auto kind = event == "alert.opened"         ? notify::AlertEvent::opened
                      : event == "alert.acknowledged" ? notify::AlertEvent::acknowledged
                                                      : notify::AlertEvent::resolved;
    const std::string organisation =
        a.organisation_id.empty() ? std::string(identity::kDefaultOrganisation) : a.organisation_id;
    auto listed = channels->list(organisation);
    if (!listed) {
      spdlog::error("channels of {}: {}", organisation, listed.error().message);
      return;
    }
    const auto notice = notice_of(a, kind);
    for (const auto& c : *listed) {
      if (c.enabled && notify::severity_reaches(a.severity, c.min_severity)) deliver(organisation, c.id, notice);
    }
  }

  // A rule's notify action: its channels hear of the firing and the clearing. A channel the
  // rule's alert already reaches (its min_severity) is not told twice.
  void rule_notify(const decision::Firing& f, const rules::NotifyAction& action) {
    store::AlertRecord a;
    a.id = "rule:" + f.rule_id + ":" + f.device_id;
    a.organisation_id = f.organisation_id;
    a.source = "rule";
    a.device_id = f.device_id;
    a.rule_id = f.rule_id;
    a.severity = std::string(rules::to_string(f.severity));
    a.title = f.rule_name;
    a.summary = f.summary;
    a.status = f.transition == rules::Transition::fired ? "open" : "resolved";
    a.opened_at = f.at;
    if (f.transition == rules::Transition::cleared) a.resolved_at = f.at;
    const auto notice = notice_of(
        a, f.transition == rules::Transition::fired ? notify::AlertEvent::opened : notify::AlertEvent::resolved);
    for (const auto& id : action.channels) {
      auto found = channels->find(f.organisation_id, id);
      if (!found) {
        spdlog::error("channel {}/{}: {}", f.organisation_id, id, found.error().message);
        continue;
      }
      if (!*found || !(*found)->enabled) {
        log_event(
            {"rule:" + f.rule_id,
             "rule.notify_refused",
             "channel:" + id,
             events::Outcome::failure,
             "local",
             {{"organisation", f.organisation_id}, {"rule", f.rule_name}, {"reason", "no such channel, or disabled"}}});
        continue;
      }
      if (f.alerts && notify::severity_reaches(a.severity, (*found)->min_severity)) continue;
      deliver(f.organisation_id, id, notice);
    }
  }

  // Sends a channel a test notice (the console's "test" button); the delivery id, or why not.
  Result<std::string> test_channel(const std::string& organisation_id, const std::string& id) {
    notify::AlertNotice n;
    n.id = "test";
    n.organisation_id = organisation_id;
    n.severity = "info";
    n.title = "Test notification";
    n.summary = "a test of the channel " + id;
    n.status = "open";
    n.opened_at = to_unix_millis(env.clock.now());
    return dispatcher->notify(dispatch_id(organisation_id, id), n);
  }

  // A rule's alert action: one alert per rule and device while the rule fires (the store's
  // de-duplication), resolved by the rule when it clears.
  void rule_alert(const decision::Firing& f) {
    asio::post(*alert_thread, [this, f] { store_rule_alert(f); });
  }

  // On the alert thread: the alert of a firing raised, or of a clearing resolved.
  void store_rule_alert(const decision::Firing& f) {
    const std::string key = "rule:" + f.rule_id + ":" + f.device_id;
    if (f.transition == rules::Transition::cleared) {
      if (auto r = alerts->resolve_key(f.organisation_id, key, "rule:" + f.rule_id); !r) {
        spdlog::error("rule {}: {}", f.rule_id, r.error().message);
      }
      return;
    }
    store::AlertRecord a;
    a.organisation_id = f.organisation_id;
    a.source = "rule";
    a.key = key;
    a.device_id = f.device_id;
    a.rule_id = f.rule_id;
    a.severity = std::string(rules::to_string(f.severity));
    a.title = f.rule_name;
    a.summary = f.summary;
    if (auto r = alerts->raise(std::move(a)); !r) spdlog::error("rule {}: {}", f.rule_id, r.error().message);
  }

  // Whether a rule's author may still send commands in the rule's organisation when it
  // fires (IIIT I7): an account that is gone, disabled or no longer holds devices.command
  // makes its rules' commands refused. "admin-cli:<login>" is the host's administrator.
  Result<bool> author_may_command(const std::string& author, const std::string& organisation_id) {
    if (author.starts_with("admin-cli")) return true;
    constexpr std::string_view kUser = "user:";
    if (!author.starts_with(kUser)) return false;
    auto user = installation.store->users().find(author.substr(kUser.size()));
    if (!user) return tl::unexpected(user.error());
    if (!*user || !identity::active_at(**user, to_unix_millis(env.clock.now()))) return false;
    if ((*user)->organisation_id != organisation_id && !identity::role_spans_organisations((*user)->role)) {
      return false;
    }
    auto granted = identity::role_permissions(*installation.store, (*user)->organisation_id, (*user)->role);
    if (!granted) return tl::unexpected(granted.error());
    return granted->has(identity::Permission::devices_command);
  }

  void rule_command(const decision::Firing& f, const rules::CommandAction& c) {
    const auto refuse = [&](std::string_view reason) {
      log_event({"rule:" + f.rule_id,
                 "rule.command_refused",
                 "device:" + c.device_id,
                 events::Outcome::denied,
                 "local",
                 {{"organisation", f.organisation_id},
                  {"rule", f.rule_name},
                  {"command", c.command},
                  {"reason", std::string(reason)}}});
    };
    auto allowed = author_may_command(f.author, f.organisation_id);
    if (!allowed) {
      spdlog::error("rule {}: {}", f.rule_id, allowed.error().message);
      return;
    }
    if (!*allowed) return refuse("the rule's author may not send commands");
    auto device = installation.store->devices().find(c.device_id);
    if (!device) {
      spdlog::error("rule {}: {}", f.rule_id, device.error().message);
      return;
    }
    if (!*device || (*device)->organisation_id != f.organisation_id) return refuse("no such device");
    auto outcome =
        commands->issue(**device, c.command, c.params.dump(), identity::kDefaultCommandLifetime, "rule:" + f.rule_id);
    if (!outcome) return refuse(outcome.error().is(Errc::permission_denied) ? "the device is disabled" : "error");
    if (!outcome->issued) return refuse("the device's profile refuses it");
    const auto& issued = *outcome->issued;
    log_event({"rule:" + f.rule_id,
               "device.command_sent",
               "device:" + c.device_id,
               events::Outcome::success,
               "local",
               {{"organisation", f.organisation_id},
                {"command", issued.record.name},
                {"command_id", issued.record.id},
                {"expires_at", format_utc_millis(from_unix_millis(issued.record.expires_at))}}});
    send_command(issued);
  }

  // Certificate renewal over the device's own session (docs/agent.md "Certificate renewal"):
  // a CSR on devices/{id}/renew is answered on devices/{id}/certificate. At most one
  // certificate per device per kRenewalInterval; a request repeated with the same id (its
  // answer was lost) gets the same answer again. The old certificate is not revoked: the
  // device is still connected with it, and it expires on its own.
  static constexpr std::chrono::hours kRenewalInterval{1};
  struct LastRenewal {
    std::chrono::system_clock::time_point at;
    std::string request_id;
    std::string answer;
  };
  std::unordered_map<std::string, LastRenewal> renewals;
  // A device sending refused requests in a loop writes one refusal a minute to the log.
  std::unordered_map<std::string, std::chrono::system_clock::time_point> renewal_refusal_logged;

  void make_renewal() {
    broker->on_renewal_requested(
        [this](const broker::DeviceInfo& device, std::string_view payload) { renew_certificate(device, payload); });
  }

  void answer_renewal(const std::string& device_id, const std::string& answer) {
    mqtt::Publish publish;
    publish.qos = 1;
    publish.topic = policy::device_topic(device_id, policy::TopicKind::certificate);
    publish.payload.assign(answer.begin(), answer.end());
    broker->publish_from_server(publish);
  }

  void renew_certificate(const broker::DeviceInfo& device, std::string_view payload) {
    const std::string actor = "device:" + device.id;
    // The log has the reason; the device learns only what it can act on.
    const auto refuse = [&](const std::string& request_id, const std::string& reason,
                            const std::string& answer = "refused") {
      const auto at = env.clock.now();
      auto [logged, first] = renewal_refusal_logged.try_emplace(device.id, at);
      if (first || at - logged->second >= std::chrono::minutes(1)) {
        logged->second = at;
        log_event({actor,
                   "certificate.renewal_refused",
                   actor,
                   events::Outcome::denied,
                   "gateway",
                   {{"organisation", device.organisation_id}, {"reason", reason}}});
      }
      answer_renewal(device.id, nlohmann::json{{"id", request_id}, {"error", answer}}.dump(
                                    -1, ' ', false, nlohmann::json::error_handler_t::replace));
    };
    const auto request = nlohmann::json::parse(payload, nullptr, false);
    if (!request.is_object() || !request.contains("id") || !request["id"].is_string() || !request.contains("csr") ||
        !request["csr"].is_string()) {
      refuse("", "not a renewal request", "a renewal request is {\"id\": string, \"csr\": PEM}");
      return;
    }
    const auto request_id = request["id"].get<std::string>();
    const auto now = env.clock.now();
    if (auto it = renewals.find(device.id); it != renewals.end() && now - it->second.at < kRenewalInterval) {
      if (it->second.request_id == request_id) {
        answer_renewal(device.id, it->second.answer);
        return;
      }
      refuse(request_id, "at most one renewal per hour", "at most one renewal per hour");
      return;
    }
    if (!devices) {
      refuse(request_id, "the server is starting");
      return;
    }
    auto issued = devices->issue_certificate(device.id, request["csr"].get<std::string>());
    if (!issued) {
      refuse(request_id, issued.error().message);
      return;
    }
    auto bundle = devices->ca_bundle_pem();
    if (!bundle) {
      refuse(request_id, bundle.error().message);
      return;
    }
    const auto expires_at = format_utc_millis(from_unix_millis(issued->not_after));
    std::string answer = nlohmann::json{
        {"id", request_id},
        {"certificate_pem", issued->pem},
        {"ca_bundle_pem", *bundle},
        {"expires_at",
         expires_at}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    log_event({actor,
               "certificate.renewed",
               actor,
               events::Outcome::success,
               "gateway",
               {{"organisation", device.organisation_id}, {"serial", issued->serial_hex}, {"not_after", expires_at}}});
    renewals[device.id] = LastRenewal{now, request_id, answer};
    answer_renewal(device.id, answer);
  }

  void send_command(const identity::IssuedCommand& command) {
    const auto left_ms = command.record.expires_at - to_unix_millis(env.clock.now());
    if (left_ms <= 0) return;
    mqtt::Publish publish;
    publish.qos = 1;
    publish.topic = command.topic;
    publish.payload.assign(command.payload.begin(), command.payload.end());
    // MQTT 5.0 §3.3.2.3.3: a queued copy is dropped once the command has expired.
    publish.properties.message_expiry_interval = static_cast<std::uint32_t>((left_ms + 999) / 1000);
    broker->publish_from_server(publish);
  }

  void record_command_result(const broker::AcceptedMessage& m) {
    const std::string_view text(reinterpret_cast<const char*>(m.publish.payload.data()), m.publish.payload.size());
    auto result = commands->record_result(m.device.id, text);
    if (!result) {
      spdlog::error("command result of device {}: {}", m.device.id, result.error().message);
      return;
    }
    if (!*result) return;
    const auto& r = **result;
    const auto outcome = r.status == policy::CommandStatus::done      ? events::Outcome::success
                         : r.status == policy::CommandStatus::refused ? events::Outcome::denied
                                                                      : events::Outcome::failure;
    nlohmann::json details = {{"organisation", m.device.organisation_id},
                              {"command_id", r.command_id},
                              {"status", policy::to_string(r.status)}};
    if (!r.reason.empty()) details["reason"] = r.reason;
    log_event({"device:" + m.device.id, "device.command_answered", "device:" + m.device.id, outcome, "gateway",
               std::move(details)});
  }

  // The outbox for password links by e-mail, when [mail] names a host. The password and the
  // trusted CAs are read now, before privileges are dropped; the password file must be the
  // owner's alone (JPCERT I-5).
  Status make_mail() {
    const auto& m = config.mail;
    if (m.host.empty()) return ok();
    const auto base = resolve_data_dir(config);
    auto inside = [&](const std::filesystem::path& p) { return p.is_absolute() ? p : base / p; };
    mail::SmtpSettings settings;
    settings.host = m.host;
    settings.port = static_cast<std::uint16_t>(m.port);
    settings.tls = m.tls == "tls"    ? mail::TlsMode::tls
                   : m.tls == "none" ? mail::TlsMode::none
                                     : mail::TlsMode::starttls;
    settings.from = m.from;
    settings.from_name = m.from_name;
    settings.username = m.username;
    settings.timeout = std::chrono::seconds(m.timeout_seconds);
    if (!config.server.hostnames.empty()) settings.helo_name = config.server.hostnames.front();
    if (!m.password_file.empty()) {
      auto password = read_passphrase(inside(m.password_file));
      if (!password) return fail(Errc::invalid_argument, "mail.password_file: " + password.error().message);
      settings.password = std::move(*password);
    }
    if (!m.ca_file.empty()) {
      auto pem = read_file(inside(m.ca_file), 1U << 20);
      if (!pem) return fail(Errc::invalid_argument, "mail.ca_file: " + pem.error().message);
      settings.ca_pem = to_string(*pem);
    }
    if (auto st = mail::check_settings(settings); !st)
      return fail(Errc::invalid_argument, "[mail] " + st.error().message);
    outbox = std::make_unique<mail::SmtpOutbox>(std::move(settings), [](const mail::MailMessage&, const Status& sent) {
      // The recipient and the body (a password link) stay out of the log.
      if (sent) {
        spdlog::info("mail: a message was sent");
      } else {
        spdlog::warn("mail: a message was not sent: {}", sent.error().message);
      }
    });
    spdlog::info("mail: sending through {}:{} ({})", m.host, m.port, m.tls);
    return ok();
  }

  // The web console's files (console/assets.h): console.assets, or where the build or the
  // installation puts them. Without them the API is still served.
  Status load_console_assets() {
    std::optional<std::filesystem::path> dir;
    if (!config.console_http.assets.empty()) dir = config.console_http.assets;
    if (!dir) dir = console::default_assets_dir();
    if (!dir) {
      spdlog::warn("console: the web console's files were not found (set console.assets); serving the API only");
      return ok();
    }
    auto loaded = console::Assets::load(*dir);
    if (!loaded) return fail(Errc::invalid_argument, "console.assets: " + loaded.error().message);
    spdlog::info("console: {} files ({} bytes) from {}", loaded->size(), loaded->bytes(), dir->string());
    console_assets = std::make_unique<console::Assets>(std::move(*loaded));
    return ok();
  }

  Status make_console() {
    if (auto st = load_console_assets(); !st) return st;
    const auto& a = config.accounts;
    const identity::AccountsOptions o = console::accounts_options(a);
    accounts = std::make_unique<identity::Accounts>(*installation.store, *installation.keys, env.clock, env.random, o,
                                                    [this](const events::SecurityEvent& e) { log_event(e); });
    people = std::make_unique<identity::People>(*installation.store, env.clock, env.random,
                                                identity::PeopleOptions{o.hash_cost},
                                                [this](const events::SecurityEvent& e) { log_event(e); });
    api_tokens =
        std::make_unique<identity::ApiTokens>(*installation.store, env.clock, env.random,
                                              identity::ApiTokenOptions{std::chrono::hours(24) * a.api_token_max_days},
                                              [this](const events::SecurityEvent& e) { log_event(e); });
    // At most this many sign-ins wait for a hash; more are answered 503 at once. The hashing
    // threads run at a lower priority: while sign-ins are hammered, the I/O thread and the
    // firewall's threads still get the CPU first, and the rest of the console keeps its pace.
    hash_pool = std::make_unique<console::WorkPool>(a.concurrent_password_hashes, a.concurrent_password_hashes * 32,
                                                    kHashingNice);
    const auto& h = config.console_http;
    if (h.waf) {
      console::WafOptions w;
      w.paranoia_level = static_cast<int>(h.waf_paranoia_level);
      w.anomaly_threshold = static_cast<int>(h.waf_anomaly_threshold);
      w.max_body_bytes = h.max_body_bytes;
      auto loaded = console::Waf::load(w);
      if (!loaded) return tl::unexpected(loaded.error());
      waf = std::move(*loaded);
      // By default the I/O thread keeps a core of its own: on two cores, two firewall threads
      // beside it made its answers wait for the CPU (docs/benchmarks.md).
      const unsigned cores = std::thread::hardware_concurrency();
      const unsigned threads = h.waf_threads != 0 ? h.waf_threads : (cores > 1 ? cores - 1 : 1U);
      waf_pool = std::make_unique<console::WorkPool>(threads, std::size_t{threads} * 64);
    }
    devices = std::make_unique<identity::DeviceRegistry>(*installation.store, *installation.keys, *installation.ca,
                                                         env.clock);
    enrolment = std::make_unique<identity::Enrolment>(*installation.store, *devices, env.clock, env.random);
    // The console's device actions take effect on the gateway as the control socket's do
    // (admin_ops.cpp); both run on the io_context thread.
    console::GatewayHooks hooks;
    hooks.disconnect_device = [this](std::string_view id, std::string_view why) {
      broker->disconnect_device(id, mqtt::ReasonCode::administrative_action, std::string(why));
    };
    hooks.reload_routes = [this] { return broker->load_routes(); };
    hooks.connected = [this](std::string_view id) { return broker->is_connected(id); };
    hooks.profile_changed = [this](std::string_view id) { broker->invalidate_profile(id); };
    hooks.send_command = [this](const identity::IssuedCommand& command) { send_command(command); };
    hooks.device_deleted = [this](std::string_view id) {
      broker->forget_deleted_device(id);
      if (trigger) trigger->forget_device(std::string(id));
    };
    hooks.device_changed = [this](const store::DeviceRecord& device) {
      if (trigger) trigger->device_changed(device);
    };
    // The console changes the accounts and tokens itself; the firewall is the server's. The
    // rest of `config` stays as started (what applies at the next start).
    const console::SettingsChanged settings_changed = [this](const config::Config& next) {
      config.firewall = next.firewall;
      filter.set_options(filter_options(config.firewall));
    };
    api = std::make_unique<console::Api>(
        console::ApiContext{file_config,
                            *installation.store,
                            *accounts,
                            *people,
                            *api_tokens,
                            *hash_pool,
                            env.clock,
                            [this](const events::SecurityEvent& e) { log_event(e); },
                            console_base_url(config, console_port()),
                            waf.get(),
                            devices.get(),
                            installation.keys.get(),
                            std::move(hooks),
                            security_log_dir(config),
                            log ? log->public_key() : Bytes{},
                            &live,
                            settings_changed,
                            outbox.get(),
                            waf_pool.get(),
                            enrolment.get(),
                            commands.get(),
                            rule_book.get(),
                            alerts.get(),
                            channels.get(),
                            [this](const std::string& organisation_id, const std::string& channel_id) {
                              return test_channel(organisation_id, channel_id);
                            },
                            console_assets.get()});
    console::HttpLimits limits;
    limits.max_body_bytes = h.max_body_bytes;
    limits.request_timeout = std::chrono::seconds(h.request_timeout_seconds);
    limits.idle_timeout = std::chrono::seconds(h.idle_timeout_seconds);
    http = std::make_unique<console::HttpServer>(*api, limits);
    return ok();
  }

  // Hands the counters gathered since the last call to counters_thread, which writes them
  // with any whose write failed before.
  void write_counters() {
    auto batch = broker->take_counters();
    if (batch.empty()) return;
    asio::post(*counters_thread, [this, batch = std::move(batch)]() mutable {
      broker::Broker::merge_counters(counters_unwritten, std::move(batch));
      if (auto st = broker::Broker::write_counters(*installation.store, counters_unwritten); !st) {
        spdlog::error("device counters: {} (written again with the next)", st.error().message);
        return;
      }
      counters_unwritten = {};
    });
  }

  // The rules' changed states, handed to their writer's thread (which logs a failure) a few
  // devices at a time, each part a turn of the I/O thread: between two parts every connection
  // gets its turn, instead of waiting for all of them to be serialised.
  void save_rule_states() {
    if (trigger->saving()) return;  // the save under way goes on
    save_rule_states_part();
  }
  void save_rule_states_part() {
    if (trigger->save_some(std::chrono::microseconds(500))) asio::post(io, [this] { save_rule_states_part(); });
  }

  void start_maintenance() {
    every(sessions_timer, std::chrono::minutes(5), [this] {
      if (auto removed = accounts->remove_expired_sessions(); !removed) {
        spdlog::error("console sessions: {}", removed.error().message);
      }
    });
    // Will delay intervals are given in seconds; a will is published within a second of its
    // time. Sessions that received messages while their device was away are written as often.
    every(wills_timer, std::chrono::seconds(1), [this] {
      broker->publish_due_wills();
      broker->persist_dirty_sessions();
    });
    every(rules_timer, std::chrono::seconds(1), [this] { trigger->tick(to_unix_millis(env.clock.now())); });
    every(counters_timer, std::chrono::seconds(10), [this] {
      save_rule_states();
      broker->expire_sessions();
      broker->check_device_health();
      write_counters();
    });
    if (config.accounts.disable_unused_after_days > 0) {
      const auto run = [this] {
        auto disabled = people->disable_unused(std::chrono::hours(24) * config.accounts.disable_unused_after_days);
        if (!disabled) {
          spdlog::error("unused accounts: {}", disabled.error().message);
          return;
        }
        for (const auto& id : *disabled) {
          log_event({"system",
                     "user.disabled",
                     "user:" + id,
                     events::Outcome::success,
                     "local",
                     {{"reason", "unused"}, {"days", config.accounts.disable_unused_after_days}}});
        }
        // API tokens unused as long are revoked the same way (JPCERT I-2, I-10); each one
        // is recorded by ApiTokens.
        if (auto revoked =
                api_tokens->disable_unused(std::chrono::hours(24) * config.accounts.disable_unused_after_days);
            !revoked) {
          spdlog::error("unused API tokens: {}", revoked.error().message);
        }
      };
      run();
      every(unused_people_timer, std::chrono::hours(24), run);
    }
    if (config.mqtt.disable_unused_devices_after_days > 0) {
      const auto run = [this] {
        identity::DeviceRegistry registry(*installation.store, *installation.keys, *installation.ca, env.clock);
        auto disabled = registry.disable_unused(std::chrono::hours(24) * config.mqtt.disable_unused_devices_after_days);
        if (!disabled) {
          spdlog::error("unused devices: {}", disabled.error().message);
          return;
        }
        for (const auto& id : *disabled) {
          log_event({"system",
                     "device.disabled",
                     "device:" + id,
                     events::Outcome::success,
                     "local",
                     {{"reason", "unused"}, {"days", config.mqtt.disable_unused_devices_after_days}}});
          broker->disconnect_device(id, mqtt::ReasonCode::administrative_action, "device disabled");
        }
      };
      run();
      every(unused_devices_timer, std::chrono::hours(24), run);
    }
    // Certificates in use that expire within pki.expiry_alert_days are alerts (JPCERT VI-4,
    // VIII-2), raised again daily until renewed (alerts/certificate_expiry.h).
    if (config.pki.expiry_alert_days > 0) {
      const auto run = [this] {
        auto report = alerts::check_certificate_expiry(*installation.store, *alerts, env.clock,
                                                       std::chrono::hours(24) * config.pki.expiry_alert_days);
        if (!report) {
          spdlog::error("certificate expiry: {}", report.error().message);
          return;
        }
        if (report->expiring + report->expired > 0) {
          spdlog::warn("certificates: {} expire within {} days, {} expired", report->expiring,
                       config.pki.expiry_alert_days, report->expired);
        }
      };
      run();
      every(certificate_expiry_timer, std::chrono::hours(24), run);
    }
    // Seals the log's tail even when no further event comes to trigger a checkpoint.
    every(checkpoint_timer, std::chrono::seconds(config.log.checkpoint_interval_seconds), [this] {
      if (auto st = log->checkpoint(); !st) spdlog::error("security log: {}", st.error().message);
    });
    // Half the CRL's validity, so a fresh one is always in place before the old one lapses.
    const auto refresh_period = std::chrono::seconds(std::chrono::hours(config.pki.crl_next_update_hours)) / 2;
    every(tls_refresh_timer, refresh_period, [this] {
      auto contexts = make_tls_contexts();
      if (!contexts) {
        spdlog::error("cannot refresh the TLS contexts: {}", contexts.error().message);
        return;
      }
      for (std::size_t i = 0; i < listeners.size(); ++i) {
        listeners[i]->update_tls(is_gateway(i) ? contexts->gateway : contexts->console);
      }
      spdlog::info("TLS contexts refreshed (revocation list and server certificate)");
    });
  }
};

Server::Server(std::unique_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() {
  // Password hashing and inspections in progress finish before anything they use goes away.
  if (state_) {
    state_->waf_pool.reset();
    state_->hash_pool.reset();
    // The alerts handed over are stored (and their channels told) first, too, and so are the
    // counters (the last of them are written below).
    if (state_->alert_thread) state_->alert_thread->join();
    if (state_->counters_thread) state_->counters_thread->join();
  }
  if (state_ && state_->trigger) {
    // The rules' states handed to the Trigger's writer thread are written before the store
    // closes (request_stop flushed them already, unless the server ended another way).
    if (auto st = state_->trigger->flush(); !st) spdlog::error("rule states: {}", st.error().message);
  }
  if (state_ && state_->writer) {
    // Everything accepted is stored before the store closes (it was never acknowledged,
    // but it is not lost either), and so are the persistent sessions.
    state_->broker->save_sessions();
    state_->writer->stop();
    broker::Broker::merge_counters(state_->counters_unwritten, state_->broker->take_counters());
    if (auto st = broker::Broker::write_counters(*state_->installation.store, state_->counters_unwritten); !st) {
      spdlog::error("device counters: {}", st.error().message);
    }
  }
  if (state_ && state_->log) {
    state_->log_event({"system", "server.stop", "", events::Outcome::success, "local"});
    if (auto st = state_->log->close(); !st) spdlog::error("security log: {}", st.error().message);
  }
}

const std::filesystem::path& Server::data_dir() const { return state_->data_dir; }

Result<std::unique_ptr<Server>> Server::create(config::Config config, Environment env) {
  ::umask(077);  // every file torii creates is private to its owner
  return std::unique_ptr<Server>(new Server(std::make_unique<State>(std::move(config), env)));
}

Status Server::bind_listeners() {
  auto& s = *state_;
  for (const auto& [name, listener] :
       {std::pair{"gateway", &s.config.gateway}, std::pair{"console", &s.config.console}}) {
    for (const auto& address : listener->listen) {
      auto l = std::make_unique<net::TlsListener>(
          s.io, net::ListenerOptions{name, address, std::chrono::seconds(listener->handshake_timeout_seconds)},
          s.filter);
      if (auto st = l->bind(); !st) return st;
      s.listeners.push_back(std::move(l));
    }
  }
  return ok();
}

Status Server::drop_privileges() {
  auto& s = *state_;
  if (::geteuid() != 0) return ok();
  auto account = lookup_account(s.config.server.user, "server.user");
  if (!account) return tl::unexpected(account.error());
  if (auto st = prepare_directory_for(s.data_dir, *account); !st) return st;
  if (auto st = torii::drop_privileges(*account); !st) return st;
  s.dropped_to_user = true;
  spdlog::info("running as {} (uid {}, gid {})", account->name, account->uid, account->gid);
  return ok();
}

Status Server::open_state() {
  auto& s = *state_;
  auto opened = open_installation(s.config, s.env.clock, s.env.random, {true, s.env.fast_key_derivation_for_tests});
  if (!opened) return tl::unexpected(opened.error());
  s.installation = std::move(*opened);
  // The settings changed through the console survive restarts: they are layered over the
  // file as soon as the store is open, before anything else reads them (the security log's
  // retention first). One that no longer passes the file's checks (the file changed since,
  // a newer torii) stops the start, as a bad file does, naming the key.
  auto in_force = console::settings_in_force(s.file_config, *s.installation.store);
  if (!in_force) return tl::unexpected(in_force.error());
  if (!in_force->ok()) {
    return fail(Errc::invalid_argument,
                fmt::format("the settings changed through the console are not valid with this configuration file "
                            "(return one to the file's value with `torii admin settings reset --key KEY`, or change "
                            "the file):\n{}",
                            config::format_problems(in_force->problems)));
  }
  s.config = std::move(in_force->config);
  s.filter.set_options(filter_options(s.config.firewall));
  auto log = open_security_log(s.config, s.installation, s.env.clock);
  if (!log) return tl::unexpected(log.error());
  s.log = std::move(*log);
  s.alerts = std::make_unique<alerts::AlertBook>(*s.installation.store, s.log.get(), s.env.clock, s.env.random);
  s.alert_thread = std::make_unique<asio::thread_pool>(1);
  s.counters_thread = std::make_unique<asio::thread_pool>(1);

  if (s.installation.first_start) {
    s.log_event({"system",
                 "keys.created",
                 "",
                 events::Outcome::success,
                 "local",
                 {{"kek_source", s.config.keys.kek_source == config::KekSource::file ? "file" : "passphrase"}}});
  }

  if (s.dropped_to_user) {
    s.log_event({"system", "privileges.dropped", "user:" + s.config.server.user, events::Outcome::success, "local"});
  }
  return ok();
}

Status Server::start() {
  auto& s = *state_;
  auto contexts = s.make_tls_contexts();
  if (!contexts) return tl::unexpected(contexts.error());
  auto root = s.installation.ca->root_certificate_pem();
  if (!root) return tl::unexpected(root.error());

  net::ListenerEvents events;
  // The first failure of a source within the firewall's window is recorded, and the ban if
  // one follows; the failures in between are counted by the filter, not written one by one
  // (each security event is a synchronous, fsynced write).
  events.handshake_failed = [&s](const net::PeerInfo& peer, const std::string& reason, std::size_t in_window) {
    if (in_window != 1) {
      spdlog::debug("{}: handshake failed from {}: {}", peer.listener, peer.endpoint(), reason);
      return;
    }
    s.log_event({"anonymous",
                 "connection.handshake_failed",
                 "listener:" + peer.listener,
                 events::Outcome::failure,
                 peer.endpoint(),
                 {{"reason", reason}}});
  };
  events.banned = [&s](const net::PeerInfo& peer) {
    s.log_event({"system",
                 "firewall.ban",
                 "source:" + peer.address.to_string(),
                 events::Outcome::success,
                 peer.endpoint(),
                 {{"seconds", s.config.firewall.ban_seconds}}});
  };
  events.refused = [](const net::PeerInfo& peer, net::Admission why) {
    spdlog::debug("{}: refused {}: {}", peer.listener, peer.endpoint(), net::to_string(why));
  };
  events.handler_failed = [](const net::PeerInfo& peer, const std::string& what) {
    spdlog::warn("{}: connection {} failed: {}", peer.listener, peer.endpoint(), what);
  };

  // Mail and the channels first: rules loaded with the gateway may notify at once.
  if (auto mail = s.make_mail(); !mail) return mail;
  if (auto notifications = s.make_notifications(); !notifications) return notifications;
  if (auto gateway = s.make_gateway(); !gateway) return gateway;
  if (auto console = s.make_console(); !console) return console;
  s.control =
      std::make_unique<ControlServer>(s.io, s.data_dir / kControlSocketName, [&s](const AdminRequest& request, uid_t) {
        AdminContext context{s.config, s.installation, s.log.get(), s.broker.get(), s.env.clock, s.env.random};
        context.commands = s.commands.get();
        context.alerts = s.alerts.get();
        context.channels = s.channels.get();
        context.send_command = [&s](const identity::IssuedCommand& command) { s.send_command(command); };
        context.rules = s.rule_book.get();
        context.device_deleted = [&s](const std::string& id) {
          if (s.broker) s.broker->forget_deleted_device(id);
          if (s.trigger) s.trigger->forget_device(id);
        };
        context.device_changed = [&s](const store::DeviceRecord& device) {
          if (s.trigger) s.trigger->device_changed(device);
        };
        return execute_admin(context, request);
      });
  if (auto st = s.control->start(); !st) return st;
  std::vector<std::string> endpoints;
  for (std::size_t i = 0; i < s.listeners.size(); ++i) {
    const bool gateway = s.is_gateway(i);
    if (gateway) {
      s.listeners[i]->start(contexts->gateway, *s.gateway, events);
    } else {
      s.listeners[i]->start(contexts->console, *s.http, events);
    }
    endpoints.push_back(fmt::format("{} {}", gateway ? "gateway" : "console", s.listeners[i]->local_endpoint()));
  }
  s.start_maintenance();

  s.log_event({"system",
               "server.start",
               "",
               events::Outcome::success,
               "local",
               {{"version", std::string(kVersion)}, {"listeners", endpoints}}});

  auto& out = s.env.out;
  out << fmt::format("torii {} server started\n", kVersion);
  out << fmt::format("  data directory: {}\n", s.data_dir.string());
  out << fmt::format("  memory allocator: {}\n", memory_allocator());
  for (const auto& e : endpoints) out << fmt::format("  listening: {}\n", e);
  if (auto info = crypto::inspect_certificate(*root)) {
    out << fmt::format("  root CA SHA-256 fingerprint: {}\n", colon_hex(info->fingerprint_sha256_hex));
  }
  out << fmt::format("  security log public key: {}\n", hex_encode(s.log->public_key()));

  auto& store = *s.installation.store;
  auto pending = identity::setup_pending(store);
  if (!pending) return tl::unexpected(pending.error());
  if (*pending) {
    const std::chrono::minutes lifetime(s.config.setup.token_lifetime_minutes);
    auto token = identity::issue_setup_token(store, s.env.random, s.env.clock, lifetime);
    if (!token) return tl::unexpected(token.error());
    const std::string base = console_base_url(s.config, s.console_port());
    s.log_event({"system",
                 "setup_token.issued",
                 "setup",
                 events::Outcome::success,
                 "local",
                 {{"expires_at", format_utc_millis(token->expires_at)}}});
    out << fmt::format(
        "\nNo administrator exists yet. Within {} minutes, open this one-time link to create one:\n"
        "  {}\n",
        lifetime.count(), identity::setup_link(base, token->token));
  }
  out.flush();
  return ok();
}

void Server::run() {
  auto& s = *state_;
  s.signals.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (!ec) {
      spdlog::info("signal {} received; stopping", signal);
      request_stop();
    }
  });
  s.io.run();
}

void Server::request_stop() {
  auto& s = *state_;
  asio::post(s.io, [&s] {
    s.checkpoint_timer.cancel();
    s.tls_refresh_timer.cancel();
    s.counters_timer.cancel();
    s.wills_timer.cancel();
    if (s.control) s.control->stop();
    s.unused_devices_timer.cancel();
    s.certificate_expiry_timer.cancel();
    s.sessions_timer.cancel();
    s.unused_people_timer.cancel();
    s.rules_timer.cancel();
    if (s.trigger) {
      if (auto st = s.trigger->flush(); !st) spdlog::error("rule states: {}", st.error().message);
    }
    for (auto& l : s.listeners) l->stop();
    if (s.broker) s.broker->close_held();
    s.io.stop();
  });
}

}  // namespace torii::server

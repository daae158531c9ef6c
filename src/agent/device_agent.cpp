#include "agent/device_agent.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "agent/posture.h"
#include "agent/renewal.h"
#include "agent/sensor_health.h"
#include "agent/sensors.h"
#include "base/version.h"
#include "crypto/x509.h"

namespace torii::agent {

namespace asio = boost::asio;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
using nlohmann::json;

namespace {

std::int64_t epoch_millis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Waits for the next tick of a fixed schedule: `next` moves on by `every`, and a tick already
// missed (a late read) starts the schedule again from now instead of bunching up. Cancelling
// the timer ends the wait early.
asio::awaitable<void> next_tick(asio::steady_timer& timer, steady::time_point& next, steady::duration every) {
  next += every;
  if (next < steady::now()) next = steady::now() + every;
  timer.expires_at(next);
  error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

// While a renewal is due but the link is down, how often the agent looks again; while none is
// due, the longest wait before the clock is read again (the wall clock may be set meanwhile).
constexpr auto kRenewalConnectPoll = std::chrono::seconds(2);
constexpr auto kRenewalLongestWait = std::chrono::hours(1);

// Readings keep three decimals: more is noise from the simulation or the scale.
json reading_json(const Value& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b;
  return std::round(std::get<double>(value) * 1000.0) / 1000.0;
}

}  // namespace

struct DeviceAgent::State {
  State(asio::any_io_executor io_ex, asio::any_io_executor blocking_ex, const AgentConfig& cfg, Identity id, Outbox box,
        Random& rnd, const Clock& clk)
      : io(std::move(io_ex)),
        blocking(std::move(blocking_ex)),
        config(cfg),
        identity(std::move(id)),
        outbox(std::move(box)),
        random(rnd),
        clock(clk),
        idle(io),
        renewal_timer(io),
        started(steady::now()) {}

  asio::any_io_executor io;
  asio::any_io_executor blocking;
  AgentConfig config;
  Identity identity;
  Outbox outbox;
  Random& random;
  const Clock& clock;
  std::unique_ptr<Link> link;
  std::vector<std::unique_ptr<Sensor>> sensors;
  std::vector<std::unique_ptr<asio::steady_timer>> timers;  // one per sensor, then the heartbeat's
  SensorHealth health;
  asio::steady_timer idle;  // run() waits on it
  asio::steady_timer renewal_timer;
  // A renewal request made and not answered yet: the same key, CSR and id are sent again.
  struct PendingRenewal {
    std::string id;
    crypto::SecretBytes key;
    std::string csr;
    std::optional<steady::time_point> sent;
  };
  std::optional<PendingRenewal> renewal;
  bool must_reenrol = false;
  steady::time_point started;
  bool stopping = false;
  std::size_t running = 0;  // coroutines run() started and waits for
  AgentStatus counts;
  std::string topic_prefix;
  std::unique_ptr<CommandRunner> commands;
  // Set by set_interval: every sensor's interval, in place of its configured one; each
  // set_interval counts, so each starts the sensors' schedules afresh.
  std::optional<std::chrono::milliseconds> interval;
  std::uint64_t interval_changes = 0;
  bool actuator_on = false;     // set_actuator's simulated actuator
  bool posture_wanted = false;  // report_posture asked for a report the loop has not begun
};

Result<std::unique_ptr<DeviceAgent>> DeviceAgent::create(const asio::any_io_executor& io,
                                                         asio::any_io_executor blocking, const AgentConfig& config,
                                                         Identity identity, Random& random, const Clock& clock) {
  auto outbox = Outbox::open(config.state_dir / "outbox.db", config.outbox_max_messages, random, clock);
  if (!outbox) return tl::unexpected(outbox.error());
  auto state =
      std::make_unique<State>(io, std::move(blocking), config, std::move(identity), std::move(*outbox), random, clock);
  state->topic_prefix = fmt::format("devices/{}/", state->identity.device_id);
  const auto now = clock.now();
  for (const auto& sensor : config.sensors) {
    state->sensors.push_back(make_sensor(sensor, random, now));
    state->timers.push_back(std::make_unique<asio::steady_timer>(io));
  }
  state->timers.push_back(std::make_unique<asio::steady_timer>(io));  // the heartbeat's
  state->timers.push_back(std::make_unique<asio::steady_timer>(io));  // the posture report's
  state->health.add_sensors(config.sensors);
  state->commands =
      std::make_unique<CommandRunner>(state->identity.device_id, state->identity.command_key, state->outbox);

  std::unique_ptr<DeviceAgent> agent(new DeviceAgent(std::move(state)));
  LinkSettings link;
  link.host = config.gateway.host;
  link.port = config.gateway.port;
  link.client_id = agent->s_->identity.device_id;
  link.ca_bundle = agent->s_->identity.files.ca_bundle;
  link.certificate = agent->s_->identity.files.certificate;
  link.key = agent->s_->identity.files.key;
  agent->s_->link = std::make_unique<Link>(io, link, *agent, random);
  agent->s_->link->subscribe_at_connect(agent->s_->topic_prefix + "commands");
  agent->s_->link->subscribe_at_connect(agent->s_->topic_prefix + "certificate");
  agent->s_->link->on_message([raw = agent.get()](const mqtt::Publish& message) {
    if (message.topic == raw->s_->topic_prefix + "certificate") {
      raw->on_certificate(message);
    } else {
      raw->on_command(message);
    }
  });
  return agent;
}

DeviceAgent::DeviceAgent(std::unique_ptr<State> state) : s_(std::move(state)) {}

DeviceAgent::~DeviceAgent() = default;

const std::string& DeviceAgent::device_id() const { return s_->identity.device_id; }

AgentStatus DeviceAgent::status() const {
  AgentStatus out = s_->counts;
  out.outbox_waiting = s_->outbox.size();
  out.outbox_evicted = s_->outbox.evicted();
  out.link = s_->link->stats();
  out.actuator_on = s_->actuator_on;
  out.sensor_interval = s_->interval;
  return out;
}

asio::awaitable<void> DeviceAgent::run() {
  auto& s = *s_;
  spdlog::info("agent {}: {} sensors, gateway {}, {} messages waiting in the outbox", s.identity.device_id,
               s.sensors.size(), s.config.gateway.to_string(), s.outbox.size());
  if (!s.commands->has_key()) {
    spdlog::warn(
        "agent {}: {} holds no command key (enrolled before torii sent one): every command will be "
        "refused; enrol again",
        s.identity.device_id, s.config.state_dir.string());
  }
  auto done = [this](const std::exception_ptr& failure) {
    if (failure) spdlog::error("agent {}: a task ended with an exception", s_->identity.device_id);
    finished();
  };
  s.running = 4 + s.sensors.size();
  asio::co_spawn(s.io, s.link->run(), done);
  asio::co_spawn(s.io, renew(), done);
  asio::co_spawn(s.io, beat(), done);
  asio::co_spawn(s.io, report_posture(), done);
  for (std::size_t i = 0; i < s.sensors.size(); ++i) asio::co_spawn(s.io, sample(i), done);
  while (s.running > 0) {
    s.idle.expires_at(steady::time_point::max());
    error_code ignored;
    co_await s.idle.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  spdlog::info("agent {}: stopped, {} messages waiting in the outbox", s.identity.device_id, s.outbox.size());
}

void DeviceAgent::stop() {
  auto& s = *s_;
  s.stopping = true;
  s.link->stop();
  s.renewal_timer.cancel();
  for (auto& timer : s.timers) timer->cancel();
}

bool DeviceAgent::needs_enrolment() const { return s_->must_reenrol; }

void DeviceAgent::finished() {
  --s_->running;
  s_->idle.cancel();
}

asio::awaitable<void> DeviceAgent::sample(std::size_t index) {
  auto& s = *s_;
  auto& sensor = *s.sensors[index];
  auto& timer = *s.timers[index];
  const bool blocking = s.config.sensors[index].source == SensorSource::command;
  auto next = steady::now();
  std::uint64_t interval_changes = s.interval_changes;
  while (!s.stopping) {
    const auto at = s.clock.now();
    Result<Value> reading = fail(Errc::unavailable, "not read");
    if (blocking) {
      auto read_elsewhere = [&sensor, at]() -> asio::awaitable<Result<Value>> { co_return sensor.read(at); };
      reading = co_await asio::co_spawn(s.blocking, read_elsewhere(), asio::use_awaitable);
    } else {
      reading = sensor.read(at);
    }
    if (s.stopping) break;
    for (const auto& event : s.health.observe(sensor.metric(), reading, at)) {
      auto payload = [&](std::string_view id) {
        json out = {{"ts", epoch_millis(event.time)},
                    {"id", id},
                    {"type", to_string(event.kind)},
                    {"metric", event.metric},
                    {"detail", event.detail}};
        if (event.ended) out["ended"] = to_string(*event.ended);
        return out.dump();
      };
      if (auto pushed = s.outbox.push(TopicKind::events, payload); !pushed) {
        spdlog::error("agent {}: cannot keep an event: {}", s.identity.device_id, pushed.error().message);
      } else {
        ++s.counts.events;
      }
      spdlog::warn("agent {}: {} {}: {}", s.identity.device_id, to_string(event.kind), event.metric, event.detail);
    }
    if (reading) {
      ++s.counts.readings;
      auto payload = [&](std::string_view id) {
        return json{{"ts", epoch_millis(at)}, {"id", id}, {sensor.metric(), reading_json(*reading)}}.dump();
      };
      if (auto pushed = s.outbox.push(TopicKind::telemetry, payload); !pushed) {
        spdlog::error("agent {}: cannot keep a reading: {}", s.identity.device_id, pushed.error().message);
      }
    } else {
      ++s.counts.failed_readings;
    }
    s.link->wake();

    // A new interval (set_interval) starts its schedule from now.
    if (interval_changes != s.interval_changes) {
      interval_changes = s.interval_changes;
      next = steady::now();
    }
    co_await next_tick(timer, next, s.interval.value_or(sensor.interval()));
  }
}

asio::awaitable<void> DeviceAgent::beat() {
  auto& s = *s_;
  auto& timer = *s.timers[s.sensors.size()];
  const auto every = std::chrono::seconds(s.config.heartbeat_seconds);
  auto next = steady::now();
  while (!s.stopping) {
    if (s.link->connected()) {
      json sensors = json::object();
      for (const auto& test : s.health.self_test()) {
        sensors[test.metric] = test.detail.empty() ? json{{"status", to_string(test.status)}}
                                                   : json{{"status", to_string(test.status)}, {"detail", test.detail}};
      }
      const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(steady::now() - s.started).count();
      const json heartbeat = {{"type", "heartbeat"},
                              {"ts", epoch_millis(s.clock.now())},
                              {"agent_version", kVersion},
                              {"uptime_seconds", uptime},
                              {"outbox", {{"waiting", s.outbox.size()}, {"evicted", s.outbox.evicted()}}},
                              {"sensors", sensors},
                              {"actuator", {{"on", s.actuator_on}}}};
      if (s.link->send_transient(s.topic_prefix + "state", heartbeat.dump())) ++s.counts.heartbeats;
    }
    // The first beat follows the connection closely; then one every heartbeat_seconds.
    if (s.counts.heartbeats == 0) {
      next = steady::now();
      co_await next_tick(timer, next, std::chrono::seconds(1));
    } else {
      co_await next_tick(timer, next, every);
    }
  }
}

asio::awaitable<void> DeviceAgent::report_posture() {
  auto& s = *s_;
  if (s.config.posture_seconds == 0) co_return;
  auto& timer = *s.timers.back();
  const auto every = std::chrono::seconds(s.config.posture_seconds);
  const auto root = s.config.posture_root;
  auto next = steady::now();
  while (!s.stopping) {
    s.posture_wanted = false;
    // Reading the host's files may take a moment: not on the link's thread.
    auto collect = [root]() -> asio::awaitable<PostureReport> { co_return collect_posture(root); };
    const auto report = co_await asio::co_spawn(s.blocking, collect(), asio::use_awaitable);
    if (s.stopping) break;
    const auto at = epoch_millis(s.clock.now());
    auto payload = [&](std::string_view id) { return posture_message(report, at, id); };
    if (auto pushed = s.outbox.push(TopicKind::state, payload); !pushed) {
      spdlog::error("agent {}: cannot keep a posture report: {}", s.identity.device_id, pushed.error().message);
    } else {
      ++s.counts.posture_reports;
      s.link->wake();
    }
    // A report asked for while this one was being made is made at once.
    if (!s.posture_wanted) co_await next_tick(timer, next, every);
  }
}

asio::awaitable<void> DeviceAgent::renew() {
  auto& s = *s_;
  while (!s.stopping) {
    const auto now = s.clock.now();
    const auto& id = s.identity;
    const auto step = renewal_step(id.not_before, id.not_after, now, s.config.renew_at);
    if (step == RenewalStep::reenrol) {
      spdlog::error(
          "agent {}: the certificate {} expired at {} and cannot be renewed: the device must be enrolled again "
          "with a new token (`torii agent enroll`)",
          id.device_id, id.certificate_serial, format_utc_millis(id.not_after));
      s.must_reenrol = true;
      stop();
      break;
    }
    steady::duration wait = kRenewalLongestWait;
    if (step == RenewalStep::wait) {
      wait = std::min<steady::duration>(renewal_due(id.not_before, id.not_after, s.config.renew_at) - now, wait);
    } else if (!s.link->connected()) {
      wait = kRenewalConnectPoll;
    } else if (!s.renewal || !s.renewal->sent || steady::now() - *s.renewal->sent >= kRenewalRetry) {
      request_renewal();
      wait = kRenewalRetry;
    } else {
      wait = *s.renewal->sent + kRenewalRetry - steady::now();
    }
    // An expiry is noticed when it comes, whatever else the agent waits for.
    wait = std::max<steady::duration>(std::min<steady::duration>(wait, id.not_after - now), std::chrono::seconds(1));
    s.renewal_timer.expires_after(wait);
    error_code ignored;
    co_await s.renewal_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

void DeviceAgent::request_renewal() {
  auto& s = *s_;
  const auto& device = s.identity.device_id;
  if (!s.renewal) {
    auto key = crypto::generate_p256_key();
    if (!key) {
      spdlog::error("agent {}: cannot make a key for the renewal: {}", device, key.error().message);
      return;
    }
    auto csr = crypto::make_csr(*key, device);
    if (!csr) {
      spdlog::error("agent {}: cannot make the renewal's CSR: {}", device, csr.error().message);
      return;
    }
    Bytes nonce(16);
    s.random.fill(nonce);
    s.renewal = State::PendingRenewal{hex_encode(nonce), std::move(*key), std::move(*csr), std::nullopt};
  }
  if (!s.link->send_transient(s.topic_prefix + "renew", renewal_request_payload(s.renewal->id, s.renewal->csr))) return;
  spdlog::info("agent {}: certificate {} is due for renewal (valid until {}): request {} sent", device,
               s.identity.certificate_serial, format_utc_millis(s.identity.not_after), s.renewal->id);
  s.renewal->sent = steady::now();
}

void DeviceAgent::on_certificate(const mqtt::Publish& message) {
  auto& s = *s_;
  const auto& device = s.identity.device_id;
  const std::string_view payload(reinterpret_cast<const char*>(message.payload.data()), message.payload.size());
  auto answer = parse_renewal_answer(payload);
  if (!answer) {
    spdlog::warn("agent {}: a message on the certificate topic is ignored: {}", device, answer.error().message);
    return;
  }
  if (!s.renewal || answer->id != s.renewal->id) {
    spdlog::warn("agent {}: an answer to no pending renewal request ({}) is ignored", device, answer->id);
    return;
  }
  if (!answer->error.empty()) {
    spdlog::warn("agent {}: renewal request {} refused: {}; asking again in {} minutes", device, answer->id,
                 answer->error, kRenewalRetry.count());
    return;
  }
  if (auto stored = store_renewed_identity(s.config.state_dir, s.renewal->key, answer->certificate_pem,
                                           answer->ca_bundle_pem, device);
      !stored) {
    spdlog::error("agent {}: the renewed certificate is not used: {}", device, stored.error().message);
    s.renewal.reset();  // the next request brings a new key
    return;
  }
  s.renewal.reset();
  auto renewed = load_identity(s.config.state_dir, s.clock.now());
  if (!renewed) {
    spdlog::error("agent {}: the renewed identity cannot be read back: {}", device, renewed.error().message);
    return;
  }
  const auto previous = s.identity.certificate_serial;
  s.identity.certificate_serial = renewed->certificate_serial;
  s.identity.not_before = renewed->not_before;
  s.identity.not_after = renewed->not_after;
  ++s.counts.renewals;
  spdlog::info("agent {}: certificate renewed: {} replaces {}, valid until {}; reconnecting with it", device,
               s.identity.certificate_serial, previous, format_utc_millis(s.identity.not_after));
  s.link->reconnect();
  s.renewal_timer.cancel();
}

void DeviceAgent::on_command(const mqtt::Publish& message) {
  auto& s = *s_;
  const auto& id = s.identity.device_id;
  if (message.topic != s.topic_prefix + "commands") {
    spdlog::warn("agent {}: a message on a topic the agent did not subscribe to is ignored", id);
    return;
  }
  const auto now = s.clock.now();
  const std::string_view payload(reinterpret_cast<const char*>(message.payload.data()), message.payload.size());
  auto decision = s.commands->decide(payload, now);
  auto& result = decision.result;
  if (decision.action) {
    ++s.counts.commands_run;
    run_command(*decision.action, result);
  } else {
    ++s.counts.commands_refused;
    spdlog::warn("agent {}: command {} refused: {}", id, result.command_id, result.reason);
  }

  const auto at = epoch_millis(now);
  if (decision.clock_skew_ms) {
    const auto skew = *decision.clock_skew_ms;
    auto event = [&](std::string_view message_id) {
      const json out = {{"ts", at},
                        {"id", message_id},
                        {"type", "clock_skew"},
                        {"command", result.command_id},
                        {"skew_ms", skew},
                        {"detail", fmt::format("a command was issued {} ms ahead of the device's clock", skew)}};
      return out.dump(-1, ' ', false, json::error_handler_t::replace);
    };
    if (auto pushed = s.outbox.push(TopicKind::events, event); !pushed) {
      spdlog::error("agent {}: cannot keep an event: {}", id, pushed.error().message);
    } else {
      ++s.counts.events;
    }
    spdlog::warn("agent {}: clock_skew: a command was issued {} ms ahead of the device's clock", id, skew);
  }
  auto answer = [&](std::string_view message_id) { return policy::command_result_payload(message_id, result, at); };
  if (auto pushed = s.outbox.push(TopicKind::results, answer); !pushed) {
    spdlog::error("agent {}: cannot keep a command's result: {}", id, pushed.error().message);
  }
  s.link->wake();
}

void DeviceAgent::run_command(const CommandAction& action, policy::CommandResult& result) {
  auto& s = *s_;
  const auto& id = s.identity.device_id;
  if (const auto* set = std::get_if<SetInterval>(&action)) {
    s.interval = std::chrono::duration_cast<std::chrono::milliseconds>(set->every);
    ++s.interval_changes;
    for (std::size_t i = 0; i < s.sensors.size(); ++i) s.timers[i]->cancel();  // read now, then at the new pace
    spdlog::info("agent {}: command {}: sensors read every {} s until the agent restarts", id, result.command_id,
                 set->every.count());
  } else if (const auto* actuator = std::get_if<SetActuator>(&action)) {
    s.actuator_on = actuator->on;
    spdlog::info("agent {}: command {}: actuator {}", id, result.command_id, actuator->on ? "on" : "off");
  } else if (s.config.posture_seconds == 0) {
    result.status = policy::CommandStatus::failed;
    result.reason = "posture reports are off on this device";
    spdlog::warn("agent {}: command {}: {}", id, result.command_id, result.reason);
  } else {
    s.posture_wanted = true;
    s.timers.back()->cancel();
    spdlog::info("agent {}: command {}: posture report", id, result.command_id);
  }
}

std::vector<OutgoingMessage> DeviceAgent::waiting(std::size_t max) {
  auto& s = *s_;
  auto entries = s.outbox.oldest(max);
  std::vector<OutgoingMessage> out;
  if (!entries) {
    spdlog::error("agent {}: cannot read the outbox: {}", s.identity.device_id, entries.error().message);
    return out;
  }
  out.reserve(entries->size());
  for (auto& e : *entries) {
    out.push_back(
        {static_cast<std::uint64_t>(e.seq), s.topic_prefix + std::string(to_string(e.kind)), std::move(e.payload)});
  }
  return out;
}

void DeviceAgent::delivered(std::uint64_t seq) {
  if (auto removed = s_->outbox.remove(static_cast<std::int64_t>(seq)); !removed) {
    spdlog::error("agent {}: cannot remove a delivered message from the outbox: {}", s_->identity.device_id,
                  removed.error().message);
  }
}

void DeviceAgent::refused(std::uint64_t seq, mqtt::ReasonCode reason) {
  ++s_->counts.refused;
  spdlog::warn("agent {}: the gateway refused message {} for good ({}); it is dropped", s_->identity.device_id, seq,
               mqtt::to_string(reason));
  delivered(seq);
}

}  // namespace torii::agent

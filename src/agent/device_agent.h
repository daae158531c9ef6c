// One device's agent at run time: its sensors are read on their intervals, each reading
// goes into the durable outbox as a telemetry message (with its time and message id), the
// link delivers the outbox to the gateway, irregular sensor states become events (through
// the outbox too), and heartbeats report the agent's health (JPCERT VII-1, VIII-1).
//
// Topics: devices/{id}/telemetry, devices/{id}/events, and devices/{id}/state for heartbeats
// (QoS 0, only while connected: a heartbeat is about now, so none is kept for later) and for
// the host's posture report (posture.h; through the outbox, at start and every
// posture_seconds).
//
// Commands (IIIT J8, I5, I7): the agent subscribes to devices/{id}/commands (QoS 1) at every
// connection; each message is decided by a CommandRunner (command_runner.h), run when
// accepted, and answered on devices/{id}/results through the outbox, refused ones included.
// A command refused for having been issued too far ahead of the device's clock is also a
// clock_skew event (JPCERT VIII-1). What set_interval and set_actuator change is not kept
// across restarts.
//
// Certificate renewal (renewal.h; docs/agent.md): once renew_at of the certificate's lifetime
// has passed, the agent makes a new P-256 key, publishes a CSR on devices/{id}/renew (again
// every kRenewalRetry until answered) and takes the answer from devices/{id}/certificate
// (subscribed at every connection): the certificate must be for the new key and name the
// device; key and certificate are stored (store_renewed_identity) and the link reconnects
// with them. The outbox keeps every message across that reconnection. An expired certificate
// cannot be renewed: the agent stops, and needs_enrolment() says why.
//
// Everything but a command sensor's read runs on the io executor's one thread; command
// sensors are read on the blocking executor, so a slow program never stalls the link.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/agent_config.h"
#include "agent/command_runner.h"
#include "agent/identity.h"
#include "agent/link.h"
#include "agent/outbox.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"

namespace torii::agent {

struct AgentStatus {
  std::uint64_t readings = 0;
  std::uint64_t failed_readings = 0;
  std::uint64_t events = 0;
  std::uint64_t heartbeats = 0;
  std::uint64_t posture_reports = 0;
  std::uint64_t outbox_waiting = 0;
  std::uint64_t outbox_evicted = 0;
  std::uint64_t refused = 0;       // messages the gateway will never take
  std::uint64_t commands_run = 0;  // done or failed
  std::uint64_t commands_refused = 0;
  std::uint64_t renewals = 0;                                // certificates renewed and in use
  bool actuator_on = false;                                  // set_actuator's simulated actuator
  std::optional<std::chrono::milliseconds> sensor_interval;  // set_interval's, for every sensor
  LinkStats link;
};

class DeviceAgent final : public MessageSource {
 public:
  // Opens the outbox (<state_dir>/outbox.db) and makes the sensors. The executors, random
  // and clock must outlive the agent.
  [[nodiscard]] static Result<std::unique_ptr<DeviceAgent>> create(const boost::asio::any_io_executor& io,
                                                                   boost::asio::any_io_executor blocking,
                                                                   const AgentConfig& config, Identity identity,
                                                                   Random& random, const Clock& clock);
  ~DeviceAgent() override;
  DeviceAgent(const DeviceAgent&) = delete;
  DeviceAgent& operator=(const DeviceAgent&) = delete;

  // Until stop(); returns once everything it started has ended.
  boost::asio::awaitable<void> run();
  void stop();

  [[nodiscard]] const std::string& device_id() const;

  // A message from the gateway on the device's commands topic: decided, run when accepted, and
  // answered through the outbox (the link calls it when connected; tests call it directly).
  void on_command(const mqtt::Publish& message);
  // A message from the gateway on the device's certificate topic: the answer to a renewal
  // request.
  void on_certificate(const mqtt::Publish& message);

  // The certificate expired: the agent stopped, and the device must be enrolled again.
  [[nodiscard]] bool needs_enrolment() const;

  // The outbox, as the link sees it (MessageSource).
  std::vector<OutgoingMessage> waiting(std::size_t max) override;
  void delivered(std::uint64_t seq) override;
  void refused(std::uint64_t seq, mqtt::ReasonCode reason) override;
  [[nodiscard]] AgentStatus status() const;

 private:
  struct State;
  explicit DeviceAgent(std::unique_ptr<State> state);

  boost::asio::awaitable<void> sample(std::size_t index);
  boost::asio::awaitable<void> beat();
  boost::asio::awaitable<void> report_posture();
  boost::asio::awaitable<void> renew();
  // Publishes the pending renewal request, made first when there is none.
  void request_renewal();
  void finished();
  // Runs an accepted command's action; a failure turns `result` into failed, with the reason.
  void run_command(const CommandAction& action, policy::CommandResult& result);

  std::unique_ptr<State> s_;
};

}  // namespace torii::agent

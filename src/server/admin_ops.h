// Operator requests: what `torii admin ...` asks of an installation, as data.
//
// One implementation serves both ways a request arrives:
//   - the server is not running: the CLI opens the installation itself (holding the
//     security log's writer lock) and executes the request in-process;
//   - the server is running: the CLI sends the request over the control socket
//     (control.h) and the server executes it, so that its effects are live at once
//     (a revoked or disabled device is disconnected within the same call) and its events
//     join the one hash chain the server writes.
//
// Requests and results are JSON objects. Every state change is written to the security
// log with the requesting person as actor. Private keys generated for a device appear in
// the result of device.create only; they are never logged. A webhook secret torii generates
// appears in the result of channel.create only.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "config/config.h"
#include "decision/rule_book.h"
#include "events/security_log.h"
#include "identity/device_commands.h"
#include "notify/channel_book.h"
#include "server/installation.h"

namespace torii::alerts {
class AlertBook;
}

namespace torii::broker {
class Broker;
}

namespace torii::server {

struct AdminRequest {
  std::string op;  // "device.create", "device.list", ...
  nlohmann::json args = nlohmann::json::object();
  std::string actor;  // "admin-cli:<login>"
};

struct AdminContext {
  const config::Config& config;
  Installation& installation;
  events::SecurityLog* log = nullptr;  // nullptr: read-only requests only
  broker::Broker* broker = nullptr;    // set inside the running server
  const Clock& clock;
  Random& random;
  // Inside the running server: its commands (the key loaded once), and a way to send a
  // signed command through the gateway at once. Unset: the request opens the commands
  // itself, and a command waits for the device's next subscription to its commands after
  // a start.
  identity::DeviceCommands* commands = nullptr;
  std::function<void(const identity::IssuedCommand&)> send_command = {};
  // Inside the running server: its rules, whose changes reach the running engine at once.
  // Unset: the request keeps the rules itself, and the server runs them from its next start.
  decision::RuleBook* rules = nullptr;
  // Inside the running server: its alerts. Unset: the request makes a book over the store.
  alerts::AlertBook* alerts = nullptr;
  // Inside the running server: its notification channels, whose changes reach the running
  // dispatcher at once. Unset: the request keeps the channels itself, and the server reads
  // them at its next start.
  notify::ChannelBook* channels = nullptr;
  // Inside the running server: the device was deleted, and the running rules drop their
  // states of it. Unset: the stored states went with the device.
  std::function<void(const std::string& device_id)> device_deleted = {};
  // Inside the running server: the device was created or its tags changed, and the running
  // rules read it again. Unset: the server reads the devices at its next start.
  std::function<void(const store::DeviceRecord& device)> device_changed = {};
};

// Every op's name, for help texts and the control socket's checks.
[[nodiscard]] const std::vector<std::string>& admin_ops();
// Whether the op changes state (needs the security log).
[[nodiscard]] bool admin_op_writes(std::string_view op);

// Executes the request. Errors: invalid_argument for a bad request (unknown op, missing or
// mistyped argument), and whatever the operation itself reports.
[[nodiscard]] Result<nlohmann::json> execute_admin(AdminContext& context, const AdminRequest& request);

// Errc to and from the names used on the control socket ("not_found").
[[nodiscard]] std::string errc_name(const Error& error);
[[nodiscard]] Errc errc_from_name(std::string_view name);

}  // namespace torii::server

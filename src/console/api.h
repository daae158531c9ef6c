// The console's REST API (eUtility): every request passes the same chain before its handler.
//
//   security headers on every answer (HSTS, CSP, nosniff, no-referrer, no-store; the
//     console's files keep their own CSP and caching, assets.h)
//   → the web application firewall: ModSecurity with the OWASP CRS (403, an alert)
//   → a path outside /api/: the web console's files (GET and HEAD only, 405 otherwise)
//   → route (404 / 405 with Allow)
//   → no API token in the query string (400)
//   → per-source limit on sign-in, setup and second-factor attempts (429)
//   → for state changes: same origin (Origin / Sec-Fetch-Site), JSON content type (415)
//   → the caller: an API token from "Authorization: Bearer" (401), or else the session from
//     the __Host- cookie only (never from the URL), its stage
//   → per-person request limit (429 with Retry-After)
//   → a token only on fully signed-in routes outside account.self and without step-up (403
//     token_not_allowed)
//   → CSRF token header for state changes made with a session (403)
//   → the route's named permission in the caller's organisation (403): deny unless allowed;
//     for a token, only if the token names it too (JPCERT I-10)
//   → the handler; request bodies are JSON objects of known members only (400)
//
// Errors are application/problem+json (RFC 9457) with a code and, for input, every problem
// with its field; never internals. Handlers that hash passwords run on the WorkPool.
//
// Threading: handle() runs on the listener's io_context thread.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "config/config.h"
#include "console/request_checks.h"
#include "console/request_handler.h"
#include "decision/rule_book.h"
#include "identity/accounts.h"
#include "identity/api_tokens.h"
#include "identity/device_commands.h"
#include "identity/devices.h"
#include "identity/enrolment.h"
#include "identity/people.h"
#include "notify/channel_book.h"
#include "store/store.h"

namespace torii::alerts {
class AlertBook;
}  // namespace torii::alerts

namespace torii::mail {
class Outbox;
}

namespace torii::console {

class WorkPool;
class Waf;
class Assets;
class LiveFeed;

// What the device routes change on the running gateway, which the console does not know: the
// server wires these to the broker. Called on the io_context thread, after the change is
// stored. An empty member does nothing (no gateway, tests).
struct GatewayHooks {
  // Closes the device's live MQTT session (disabled, revoked, deleted), if it has one, and
  // forgets its kept session.
  std::function<void(std::string_view device_id, std::string_view why)> disconnect_device;
  // The routes naming a deleted device went with it: the routes in force are read again.
  std::function<Status()> reload_routes;
  // A profile was replaced or deleted: its next use reads it again.
  std::function<void(std::string_view profile_id)> profile_changed;
  // Whether the device has a live MQTT connection now (the device answers' "connected").
  std::function<bool(std::string_view device_id)> connected;
  // Sends a signed command (identity/device_commands.h) to the device's commands topic, QoS 1.
  std::function<void(const identity::IssuedCommand& command)> send_command;
  // The device was deleted: the running rules drop their states of it.
  std::function<void(std::string_view device_id)> device_deleted;
  // The device was created or its tags changed: the running rules read it again
  // (decision::Trigger::device_changed).
  std::function<void(const store::DeviceRecord& device)> device_changed;
};

// What the setting routes change on the running server that the console does not hold: the
// server wires it to the connection filter. Called on the io_context thread after the
// overrides are stored, with the configuration now set (file, then overrides); the console
// has already given identity::Accounts and ApiTokens their new options. Empty: nothing more.
using SettingsChanged = std::function<void(const config::Config& next)>;

struct ApiContext {
  // The configuration file as loaded. The console layers the overrides stored through
  // PATCH /api/v1/settings over it (settings.h), and removing an override returns its key
  // to this value.
  const config::Config& config;
  store::Store& store;
  identity::Accounts& accounts;
  identity::People& people;
  identity::ApiTokens& tokens;
  WorkPool& work;
  const Clock& clock;
  identity::EventSink events;
  std::string public_url;    // base of the links the API hands out ("https://host:8443")
  const Waf* waf = nullptr;  // inspects every request first; nullptr: none
  // The device routes: the registry (with its key ring and CA) and the key ring that opens
  // what devices sent. The server always sets both; without them those routes answer 503.
  identity::DeviceRegistry* devices = nullptr;
  keys::KeyRing* keys = nullptr;
  GatewayHooks gateway = {};
  // The security log's directory and its checkpoint public key (32 bytes), for reading and
  // verifying it; empty: the log endpoints answer 503.
  std::filesystem::path security_log_dir = {};
  Bytes security_log_public_key = {};
  // Live telemetry (live.h): the server publishes to it; nullptr: the live routes answer 503.
  LiveFeed* live = nullptr;
  SettingsChanged settings_changed = {};
  // Where password links sent by e-mail go; nullptr: mail is not configured, and the routes
  // that need it answer 503 mail_unavailable.
  mail::Outbox* mail = nullptr;
  // Runs the firewall's inspections off the I/O thread (console.waf_threads); nullptr: they
  // run on the I/O thread.
  WorkPool* waf_work = nullptr;
  // Devices that enrol with a one-time token (identity/enrolment.h), over the registry
  // above; nullptr: those routes answer 503.
  identity::Enrolment* enrolment = nullptr;
  // Commands to devices (identity/device_commands.h); nullptr: those routes answer 503, and
  // enrolment answers carry no command key.
  identity::DeviceCommands* commands = nullptr;
  // The Decision Trigger's rules (decision/rule_book.h); nullptr: the rule routes answer 503.
  decision::RuleBook* rules = nullptr;
  // The installation's alerts (alerts/alert_book.h); nullptr: the alert routes answer 503.
  alerts::AlertBook* alerts = nullptr;
  // The organisations' notification channels (notify/channel_book.h); nullptr: the channel
  // routes answer 503.
  notify::ChannelBook* channels = nullptr;
  // Queues a test notice to the organisation's channel and returns its delivery id; the
  // server wires it to the dispatcher. Errors: not_found (no such channel), limit_exceeded
  // (its rate limit holds notices back), unavailable; anything else is answered 409. Empty:
  // POST /api/v1/channels/{channel}/test answers 503.
  std::function<Result<std::string>(const std::string& organisation_id, const std::string& channel_id)> test_channel =
      {};
  // The web console's files (assets.h), served for every path outside /api/; nullptr: none,
  // and such paths answer 404 like any unknown resource.
  const Assets* assets = nullptr;
};

// One row of the route table, for docs/permissions.md and its test.
struct RouteInfo {
  std::string_view method;
  std::string_view pattern;     // "/api/v1/devices/{id}"
  std::string_view access;      // "anyone", "any session", "second-factor stage", "enrol or full", "signed in"
  std::string_view permission;  // a permission name, or empty
  bool step_up = false;         // needs a recent password or TOTP proof
  std::vector<FieldSpec> body;  // the JSON members the request takes (docs/openapi.yaml)
};

class Api final : public RequestHandler {
 public:
  explicit Api(ApiContext context);
  ~Api() override;
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  boost::asio::awaitable<Response> handle(Request request) override;

  [[nodiscard]] std::vector<RouteInfo> routes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The header carrying the CSRF token on state-changing requests.
inline constexpr std::string_view kCsrfHeader = "x-csrf-token";

// The CSRF token of a session: derived from its id one way, so it reveals nothing of it.
[[nodiscard]] std::string csrf_token(std::string_view session_id);

}  // namespace torii::console

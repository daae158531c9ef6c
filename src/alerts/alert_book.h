// The alerts of the installation (JPCERT VIII-1, VIII-2): raised by the rules engine, by
// device health and by security events (observe), acknowledged and resolved by people
// (the console, the API) and by the operator (torii admin), each step with who and when.
//
// Organisations: an alert belongs to the organisation the event names, else to its
// device's, else to its person's; with none of them it is installation-wide (empty
// organisation_id) and only a caller with a system-wide role sees it (Scope).
//
// Security events: a person's acknowledging or resolving is recorded in the security log
// as alert.acknowledged / alert.resolved (never an alert themselves: alert_change_for
// ignores alert.*). Opening and resolving by events is not logged again: the event that
// caused it is.
//
// Thread safety: an AlertBook may be used from any thread at once (the server's io thread,
// the console's handlers and its hashing threads). It keeps no state of its own; the store
// serialises its repositories, the SecurityLog takes its own lock, and the Random given
// must be safe to share (crypto::SystemRandom is).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "alerts/alert_rules.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "events/security_log.h"
#include "store/store.h"

namespace torii::alerts {

inline constexpr std::size_t kMaxAlertsListed = 500;

// Which alerts a caller may see and change.
struct Scope {
  // One organisation's alerts only; nullopt: every organisation's and the installation-wide
  // ones (the operator, a system-wide role).
  std::optional<std::string> organisation;

  [[nodiscard]] static Scope everything() { return {std::nullopt}; }
  [[nodiscard]] bool contains(const store::AlertRecord& alert) const {
    return !organisation || *organisation == alert.organisation_id;
  }
};

enum class Transition { done, not_found, already };

class AlertBook {
 public:
  // All must outlive the book; log may be null (nothing recorded).
  AlertBook(store::Store& store, events::SecurityLog* log, const Clock& clock, Random& random);

  // Raises `alert` (its id, opened_at and status are set here; source, key, title and
  // severity are the caller's). Returns the stored alert and whether it is new.
  // invalid_argument for a record store::validate_alert refuses.
  [[nodiscard]] Result<std::pair<store::AlertRecord, bool>> raise(store::AlertRecord alert);
  // Resolves the organisation's active alert with `key`, if any, by `by` ("system",
  // "rule:<id>").
  [[nodiscard]] Result<std::optional<store::AlertRecord>> resolve_key(std::string_view organisation_id,
                                                                      std::string_view key, std::string_view by);

  // The alert if the scope contains it; nullopt otherwise (another organisation's is as
  // unknown as one that does not exist).
  [[nodiscard]] Result<std::optional<store::AlertRecord>> find(std::string_view id, const Scope& scope);
  // open -> acknowledged by `by` ("user:<id>", "admin-cli"); already: not open. `source` is
  // the peer's address for the security event.
  [[nodiscard]] Result<Transition> acknowledge(std::string_view id, std::string_view by, const Scope& scope,
                                               std::string_view source = "");
  // open or acknowledged -> resolved; already: resolved before.
  [[nodiscard]] Result<Transition> resolve(std::string_view id, std::string_view by, const Scope& scope,
                                           std::string_view source = "");
  // Newest first within the scope: an organisation's scope replaces query.organisation_id
  // (so installation-wide alerts are left out); the whole installation's keeps it.
  [[nodiscard]] Result<std::vector<store::AlertRecord>> list(store::AlertRepository::Query query, const Scope& scope);

  // Applies alert_change_for(event). Failures are logged (spdlog), never thrown: the
  // event itself is already recorded.
  void observe(const events::SecurityEvent& event);

  // What happens to alerts, for the notification channels (JPCERT VIII-2): "alert.opened" (a
  // new alert, not another occurrence of an open one), "alert.acknowledged", "alert.resolved",
  // with the alert as stored after the change. Called on the thread that made the change,
  // after it is stored; it must not call back into the book. Set it once, before the book is
  // shared.
  using Changed = std::function<void(const store::AlertRecord& alert, std::string_view event)>;
  void on_change(Changed changed) { changed_ = std::move(changed); }

 private:
  std::string organisation_for(const AlertChange& change);
  void tell(std::string_view id, std::string_view event);
  void record(std::string_view action, std::string_view by, const store::AlertRecord& alert, std::string_view source);

  store::Store& store_;
  events::SecurityLog* log_;
  const Clock& clock_;
  Random& random_;
  Changed changed_;
};

// The alert as the API and the CLI show it.
[[nodiscard]] nlohmann::json to_json(const store::AlertRecord& alert);

}  // namespace torii::alerts

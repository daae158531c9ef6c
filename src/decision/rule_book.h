// The rules people keep (the Decision Trigger): created, changed, switched on and off and
// deleted through the console API and `torii admin rule`, each change a new version kept in
// the rule's history (store::RuleRepository), and tried against stored telemetry before it
// is switched on (dry run).
//
// Checked before anything is stored, every problem with its path:
//   definition  rules::parse_rule (the language, the selector, the actions)
//   commands    a rule that sends commands needs an author who may send them
//               (devices.command) to a device of the rule's organisation, with that command
//               in the device's profile; when it fires, the author is checked again
//               (decision/trigger.h), so a rule outlives nobody's rights
//
// The running engine learns of a change through the callback the server gives (rule id).
// Thread safety: the store and key ring are; a RuleBook keeps nothing of its own, so handlers
// on any thread may share one.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "identity/roles.h"
#include "keys/key_ring.h"
#include "rules/evaluator.h"
#include "rules/rule.h"
#include "store/store.h"

namespace torii::decision {

// Who writes a rule: what the engine checks its commands against.
struct Author {
  std::string actor;  // "user:<id>" or "admin-cli"
  std::string organisation_id;
  identity::PermissionSet permissions;
};

struct RuleProblem {
  std::string path;  // "definition.condition", "definition.actions[1].device", "version", ...
  std::string message;
  friend bool operator==(const RuleProblem&, const RuleProblem&) = default;
};

struct RuleOutcome {
  std::optional<store::RuleRecord> rule;  // set when stored
  std::vector<RuleProblem> problems;      // set when refused
};

// How far back a dry run may look (the store keeps more; this bounds the work).
inline constexpr std::chrono::hours kMaxDryRunSpan{72};
// Messages read per device in a dry run; beyond it the run says where it stopped.
inline constexpr std::size_t kMaxDryRunMessages = 20'000;
inline constexpr std::size_t kMaxDryRunDevices = 100;
inline constexpr std::size_t kMaxRulesPerOrganisation = 1000;

struct DryRunDevice {
  std::string device_id;
  std::size_t messages = 0;                  // telemetry messages replayed
  std::optional<UnixMillis> complete_until;  // set when the message cap cut the replay short
  std::vector<rules::DryRunEvent> events;    // when it would have fired and cleared
};
struct DryRun {
  UnixMillis from = 0;
  UnixMillis to = 0;
  std::vector<DryRunDevice> devices;  // the organisation's devices the selector matches
  std::size_t devices_skipped = 0;    // matched beyond kMaxDryRunDevices
};

class RuleBook {
 public:
  using Changed = std::function<void(const std::string& rule_id)>;

  // Borrows everything; all must outlive it.
  RuleBook(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random, Changed changed = {});

  // definition: the rule's JSON (rules::parse_rule). The author's organisation owns it.
  [[nodiscard]] Result<RuleOutcome> create(const Author& author, std::string_view definition, bool enabled);
  // A new version of the rule: definition and enabled replace the stored ones when the stored
  // version is expected_version (problem "version" when someone changed it first). The author
  // of the change becomes the one its commands are checked against. not_found: no such rule
  // in the author's organisation.
  [[nodiscard]] Result<RuleOutcome> change(const Author& author, std::string_view rule_id, std::string_view definition,
                                           bool enabled, std::uint32_t expected_version);
  // False: no such rule in the organisation.
  [[nodiscard]] Result<bool> remove(std::string_view organisation_id, std::string_view rule_id);
  // The rule when it is the organisation's.
  [[nodiscard]] Result<std::optional<store::RuleRecord>> find(std::string_view organisation_id,
                                                              std::string_view rule_id);

  // Replays the last `span` of the stored telemetry of the organisation's devices the
  // definition selects through a fresh evaluation; nothing is stored or sent. Problems as
  // for create (the definition), or "hours" for a span out of bounds.
  [[nodiscard]] Result<tl::expected<DryRun, std::vector<RuleProblem>>> dry_run(const Author& author,
                                                                               std::string_view definition,
                                                                               std::chrono::hours span);

  // What the rule's JSON shows people: its record and its definition as parsed.
  [[nodiscard]] static nlohmann::json describe(const store::RuleRecord& rule);

 private:
  [[nodiscard]] Result<std::vector<RuleProblem>> check(const Author& author, std::string_view definition,
                                                       std::optional<rules::RuleDefinition>& parsed);

  store::Store& store_;
  keys::KeyRing& keys_;
  const Clock& clock_;
  Random& random_;
  Changed changed_;
};

// "rules: 3 problems" style JSON for people: [{"path":..,"message":..}, ...].
[[nodiscard]] nlohmann::json to_json(const std::vector<RuleProblem>& problems);

}  // namespace torii::decision

// The running rules (the Decision Trigger): every enabled rule of every organisation,
// evaluated in the stream of accepted telemetry (not by polling the store) and as time
// passes (absence, "for at least"), with each device's state kept across restarts.
//
//   load      at start, every enabled rule and its stored states (sealed under each device's
//             data key: they hold the device's recent values); a state that does not open or
//             restore is dropped and logged, and that device starts afresh
//   observe   a telemetry message the gateway accepted, with its validated values: each rule
//             of the device's organisation whose selector matches evaluates it; which rules
//             those are, and the device's state of each, is worked out at its first message
//             and again only after rules, watches or tags changed (its view), so that a
//             message costs its evaluations, not lookups; the device's rules share their
//             windows of a metric and duration (rules::WindowPool), filled once per message
//   tick      time passing (the server calls it every second): only the states with a deadline
//             due by then (a hold ending, a sample leaving a window, an absence reaching its
//             length; rules::Evaluator::next_deadline) are evaluated, so a tick costs what is
//             due, not every rule times every device
//   save      the states of each device with a state changed since the last save, one
//             sealed row per device holding all its rules' states (the server begins one
//             every 10 seconds and goes through it in parts, save_some, and flushes at stop:
//             a crash loses at most that much); only the serialising happens on the caller's
//             thread, a StateWriter seals and writes the rows, a few hundred per transaction
//   reload    after a rule is created, changed, switched on or off or deleted
//   device_changed  after a device is created or its tags change: rules that now select it
//             watch it, rules that no longer do forget it (clearing what they fired for it)
//
// What a rule does when it fires or clears goes to the TriggerActions the server gives (raise
// or resolve an alert, send a command, notify channels, publish a derived metric); each
// firing and clearing is also a security event (rule.fired, rule.cleared).
//
// Threading: not thread-safe; the server calls everything on its io_context thread, where
// the broker's observers run. The StateWriter's thread sees only the serialised rows.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "events/security_log.h"
#include "keys/key_ring.h"
#include "policy/telemetry.h"
#include "rules/evaluator.h"
#include "rules/rule.h"
#include "store/store.h"

namespace torii::decision {

class StateWriter;

// One rule firing or clearing for one device.
struct Firing {
  std::string rule_id;
  std::string rule_name;
  std::string organisation_id;
  std::string author;  // the rule's, "user:<id>" or "admin-cli": its commands are checked against it
  rules::Severity severity = rules::Severity::warning;
  std::string device_id;
  rules::Transition transition = rules::Transition::none;  // fired or cleared
  std::string summary;
  UnixMillis at = 0;
  bool alerts = false;  // the rule has an alert action
};

// What one rule's metric actions computed from one message of a device.
struct DerivedValues {
  const std::string& organisation_id;
  const std::string& device_id;
  const std::string& rule_id;
  std::string_view message_id;  // the message's id ("id" in its payload); empty when it had none
  UnixMillis at = 0;            // the message's time, as the rule saw it
  const std::vector<std::pair<std::string, double>>& values;  // metric name, value
};

struct TriggerActions {
  // The rule has an alert action: raise it (fired) or resolve it (cleared).
  std::function<void(const Firing&)> alert;
  // A command action whose moment this is (on fire, or on clear for "on": "clear").
  std::function<void(const Firing&, const rules::CommandAction&)> command;
  std::function<void(const Firing&, const rules::NotifyAction&)> notify;
  // The values a rule's metric actions computed from a device's message (one call per rule
  // and message, when it computed any). It must not change the rules.
  std::function<void(const DerivedValues&)> derived;
  std::function<void(events::SecurityEvent)> security_event;
};

// A telemetry message with the device it came from. The device's tags are not in it: the
// Trigger keeps them (load, device_changed), since they change while the device is connected.
struct DeviceMessage {
  std::string_view organisation_id;
  std::string_view device_id, profile_id, segment;
  const std::vector<policy::Metric>& metrics;
  UnixMillis at = 0;
  std::string_view message_id = {};  // its "id", when it had one
};

class Trigger {
 public:
  struct Counters {
    std::uint64_t candidates = 0;   // a rule a message's device led to (its selector then checked)
    std::uint64_t evaluations = 0;  // a message against a rule
    std::uint64_t deadlines = 0;    // a state evaluated by tick() at its deadline
    std::uint64_t fired = 0;
    std::uint64_t cleared = 0;
    std::uint64_t states_dropped = 0;  // stored states that did not open or restore
    std::uint64_t states_saved = 0;    // states written by save()
  };

  // Borrows everything; all must outlive it.
  Trigger(store::Store& store, keys::KeyRing& keys, const Clock& clock, TriggerActions actions);
  // Writes the states handed over by save() (not those changed since).
  ~Trigger();
  Trigger(const Trigger&) = delete;
  Trigger& operator=(const Trigger&) = delete;

  // Every enabled rule with its stored states. A rule whose stored definition no longer
  // parses is skipped and logged (rules::parse_rule refused it at creation, so only a newer
  // version's rule or a damaged row does that).
  [[nodiscard]] Status load();
  // The rule as stored now: loaded afresh when enabled, dropped when disabled or gone.
  [[nodiscard]] Status reload(const std::string& rule_id);

  void observe(const DeviceMessage& message);
  void tick(UnixMillis now);
  // Hands the states of each device with a state changed since the last call to the writer's
  // thread, which seals each device's row under its data key (device_rule_states_associated_data)
  // and writes them; returns without waiting for the store (a failure there is logged).
  void save();
  // The same in parts, for a caller that must not stop for all of it: a save begins with the
  // devices changed by then and goes on, a few devices per call, until it has handed over
  // their rows (each device's as it is when its turn comes; one changed after its turn waits
  // for the next save). Serialises devices until `budget` has passed (at least one) and
  // returns whether this save has devices left; the next call after the last begins another.
  [[nodiscard]] bool save_some(std::chrono::microseconds budget);
  // A save begun by save_some has devices left.
  [[nodiscard]] bool saving() const { return saved_ < saving_.size(); }
  // save(), then waits until everything handed over is written: the first write failure since
  // the previous flush, if any (at stop, and for tests).
  [[nodiscard]] Status flush();
  // The device was deleted (its stored states went with it).
  void forget_device(const std::string& device_id);
  // The device was created or its tags changed (its profile and segment are fixed). The rules
  // of its organisation that select it now and had no state of it watch it from now on (an
  // absence rule notices a device that never sends); those that no longer select it drop its
  // state, and where they had fired for it, clear ("the rule no longer selects the device").
  void device_changed(const store::DeviceRecord& record);

  [[nodiscard]] std::size_t rules() const { return rules_.size(); }
  [[nodiscard]] const Counters& counters() const { return counters_; }
  // Entries in the deadline queue, stale ones included (see Due).
  [[nodiscard]] std::size_t queued() const { return due_.size(); }

 private:
  using DeviceSlot = std::uint32_t;  // a device id, interned: device_ids_[slot]
  using RuleSlot = std::uint32_t;    // a loaded rule: loaded_[slot] (nullptr once dropped; never reused)
  static constexpr UnixMillis kNoDeadline = std::numeric_limits<UnixMillis>::min();

  // One device's state of one rule, with its bookkeeping.
  struct Watch {
    rules::DeviceState state;
    UnixMillis deadline = kNoDeadline;  // its next deadline (rules::Evaluator::next_deadline)
    UnixMillis queued = kNoDeadline;    // its entry in due_: never later than deadline
  };
  struct Loaded {
    store::RuleRecord record;
    RuleSlot slot = 0;
    std::shared_ptr<const rules::RuleDefinition> definition;
    std::unique_ptr<rules::Evaluator> evaluator;
    std::unordered_map<DeviceSlot, Watch> watches;
    std::string saved_as;  // how each of its states begins in a device's saved row (row_of)
  };
  // A state saved with a device's row, for a rule's version.
  struct SavedState {
    std::string device_id;
    std::uint32_t version = 0;
    rules::DeviceState state;
  };
  using Restored = std::unordered_map<std::string, std::vector<SavedState>>;  // by rule id
  // An entry of the deadline queue. A watch has one (at its `queued` time) while it has a
  // deadline; an entry that is not its watch's `queued` one (or whose watch is gone) is stale:
  // tick() skips it, and compact_due() drops the stale ones once due_ has doubled.
  struct Due {
    UnixMillis at = 0;
    RuleSlot rule = 0;
    DeviceSlot device = 0;
  };
  // due_'s order: a min-heap by time.
  static bool later(const Due& a, const Due& b) { return a.at > b.at; }

  // The devices' tags as just read from the store (they may have changed since last read):
  // once per list read, not once per rule loaded from it.
  void remember_tags(const std::vector<store::DeviceRecord>& devices);
  // Every device's saved states (a row that does not open or parse is dropped and logged).
  [[nodiscard]] Result<Restored> read_saved_states();
  // devices: the rule's organisation's, as stored now, by id (DeviceRepository::list), their
  // tags remembered (remember_tags);
  // saved: the rule's saved states (those of other versions are left out), or null.
  [[nodiscard]] Status load_rule(const store::RuleRecord& record, const std::vector<store::DeviceRecord>& devices,
                                 std::vector<SavedState>* saved);
  void drop(const std::string& rule_id);
  [[nodiscard]] DeviceSlot intern(std::string_view device_id);
  // The rule's watch of the device, made (and listed in device_rules_) when it has none.
  [[nodiscard]] Watch& watch_of(Loaded& rule, DeviceSlot device);
  struct RuleIndex;
  struct Met {
    RuleSlot rule = 0;
    Watch* watch = nullptr;
  };
  // The rules a message of the device meets (its index lists read, the selectors checked) and
  // the device's watch of each: the device's view, worked out again when it is not of the
  // current generation_ or of the message's profile and segment.
  [[nodiscard]] const std::vector<Met>& meets(const RuleIndex& index, DeviceSlot device, const DeviceMessage& message);
  // Something a view depends on changed: rules loaded or dropped, watches erased, tags.
  void changed() { ++generation_; }
  // Starts (or goes on) watching the device at `now`: its state's clock starts, and what that
  // first step decides is applied.
  void watch_from(Loaded& rule, DeviceSlot device, UnixMillis now);
  [[nodiscard]] Loaded* loaded(RuleSlot slot) const { return slot < loaded_.size() ? loaded_[slot] : nullptr; }
  // Sets the watch's next deadline and queues it in due_ unless an earlier entry is there.
  void schedule(Loaded& rule, DeviceSlot device, Watch& watch);
  void enqueue(Loaded& rule, DeviceSlot device, Watch& watch);
  void compact_due();
  void mark_dirty(DeviceSlot device);
  void apply(Loaded& rule, DeviceSlot device, const rules::Evaluation& evaluation, UnixMillis at);

  store::Store& store_;
  keys::KeyRing& keys_;
  const Clock& clock_;
  TriggerActions actions_;
  std::map<std::string, std::unique_ptr<Loaded>, std::less<>> rules_;  // by rule id
  std::vector<Loaded*> loaded_;                                        // by RuleSlot
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, DeviceSlot, StringHash, std::equal_to<>> device_slots_;
  std::deque<std::string> device_ids_;  // by DeviceSlot; a deque, so references stay valid as it grows
  // By DeviceSlot: each device's tags as last read (load_rule, device_changed), sorted.
  std::deque<std::vector<std::string>> device_tags_;
  // By DeviceSlot: the rules that watch the device (and, until the next save, some that no
  // longer do), whose states its saved row holds.
  std::deque<std::vector<RuleSlot>> device_rules_;
  std::vector<bool> device_dirty_;  // by DeviceSlot: a state changed since the last save()
  // By DeviceSlot, made at the device's first message: what meets() worked out. Its watches
  // are pointers, valid while the generation stays: a watch is erased only with a change
  // (an unordered_map does not move its elements as it grows).
  struct DeviceView {
    std::uint64_t generation = 0;
    std::string profile_id, segment;
    std::uint64_t candidates = 0;  // the rules the index led to, before their selectors
    std::vector<Met> met;
  };
  std::vector<std::unique_ptr<DeviceView>> device_views_;
  // By DeviceSlot: the windows its rules' states share (rules::WindowPool); a message is added
  // to each once, under its number (messages_, counted from 1).
  std::deque<rules::WindowPool> device_windows_;
  std::uint64_t messages_ = 0;
  std::uint64_t generation_ = 1;
  std::vector<DeviceSlot> dirty_devices_;  // the devices whose flag is set
  std::vector<DeviceSlot> saving_;         // the save under way (save_some): its devices
  std::size_t saved_ = 0;                  // how many of them are done
  // Serialises the device's row (every state of it) and clears its flag.
  [[nodiscard]] std::string row_of(DeviceSlot device);
  // An organisation's rules by the first part of their selector that names something: its
  // devices, else its profiles, else its segments, else its tags, else none (every device). A
  // message looks at the lists its device's id, profile, segment and tags lead to, not at
  // every rule.
  struct RuleIndex {
    std::map<std::string, std::vector<RuleSlot>, std::less<>> by_device, by_profile, by_segment, by_tag;
    std::vector<RuleSlot> every_device;
    std::size_t rules = 0;
  };
  void index(const Loaded& rule);
  void unindex(const Loaded& rule);
  std::map<std::string, RuleIndex, std::less<>> by_organisation_;
  std::vector<Due> due_;           // a min-heap by time, with stale entries
  std::size_t compact_at_ = 4096;  // due_'s size at which compact_due() runs
  Counters counters_;
  std::size_t last_row_size_ = 0;        // of the latest device row saved: the next one's first guess
  std::unique_ptr<StateWriter> writer_;  // last: its destructor writes what save() handed over
};

// The associated data a rule state is sealed with: the row it belongs to (rule_states, as a
// previous version saved them; read at start).
[[nodiscard]] std::string rule_state_associated_data(std::string_view rule_id, std::string_view device_id);
// ... and a device's row of all its rule states (device_rule_states).
[[nodiscard]] std::string device_rule_states_associated_data(std::string_view device_id);

}  // namespace torii::decision

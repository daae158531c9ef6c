// Evaluation of one rule for one device, in the telemetry stream (the Decision
// Trigger). Pure: messages and times in, transitions out; no I/O, no clock, no threads.
//
// The caller keeps one DeviceState per (rule, device), hands each message of a matching
// device to observe() with its server receive time, and calls tick() from a timer (e.g. every
// second, or at next_deadline()) so that absence and the hold timers fire without messages.
// The states of one device for several rules may share their windows through a WindowPool.
// An Evaluator is immutable: one may serve many threads; a DeviceState is not synchronised,
// so one state (and the states sharing a pool with it) is used by one thread at a time.
// serialize()/restore() keep the state across restarts, including the time a pending
// transition started.
//
// Firing (docs/rules.md, "Evaluation"): the condition is three-valued; the rule fires once it
// has been true for `hold`, and clears once it has been not true (false or unknown) for
// `clear_hold`. A condition that flips back before its hold has passed restarts the wait, so
// a value oscillating around a threshold does not flap.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <tl/expected.hpp>

#include "base/clock.h"
#include "policy/telemetry.h"
#include "rules/expression.h"
#include "rules/rule.h"

namespace torii::rules {

// A window of duration D keeps its metric's samples in buckets D / kWindowBuckets wide (at
// least 1 ms), each holding its oldest and newest sample and the count, mean, min and max of
// its samples: a window costs the same at any message rate. A bucket leaves the window with
// its oldest sample, so with at most one sample per bucket width a window is exact, and with
// more it covers between D less one bucket width and D (docs/rules.md, "Windows").
inline constexpr std::int64_t kWindowBuckets = 60;
// Samples per metric a state saved in format 1 (which kept samples, not buckets) may hold.
inline constexpr std::size_t kMaxWindowSamples = 1000;
// A serialised state larger than this is refused by restore().
inline constexpr std::size_t kMaxStateBytes = std::size_t{4} * 1024 * 1024;
// dry_run() stops ticking after this many ticks.
inline constexpr std::size_t kMaxDryRunTicks = 1'000'000;

enum class Transition { none, fired, cleared };
[[nodiscard]] std::string_view to_string(Transition transition);

struct Evaluation {
  Transition transition = Transition::none;
  bool active = false;                                  // firing after this step
  std::vector<std::pair<std::string, double>> derived;  // metric actions' values on this step (observe only)
  // On a transition: the condition's comparisons and their values ("avg(temperature, 5m) > 30:
  // 31.2 > 30"); empty otherwise. Holds no device-supplied strings.
  std::string summary;
};

class DeviceState;
class WindowTable;
class SavedWindows;
class WindowPool;
[[nodiscard]] std::string serialize(const DeviceState& state);
// The same, appended to `into` (a caller writing many states into one text). With a table,
// a window equal to one it holds is written as its index there, and any other is added to it.
void serialize(const DeviceState& state, std::string& into, WindowTable* shared = nullptr);
// A window written as an index is taken from `shared` (refused without one), and checked as
// one written in full; the states restored naming the same index with the same duration share
// one window (as they did when saved: see WindowPool).
[[nodiscard]] tl::expected<DeviceState, std::string> restore(std::string_view text, SavedWindows* shared = nullptr);

// One device's state for one rule: the latest value and a bounded window of recent samples
// of each metric the rule reads, the last message time, the pending transition and the
// active flag.
class DeviceState {
 public:
  [[nodiscard]] bool active() const { return active_; }
  // Since when the condition has disagreed with active(); nullopt when it agrees.
  [[nodiscard]] std::optional<UnixMillis> pending_since() const { return pending_since_; }
  [[nodiscard]] std::optional<UnixMillis> last_message_at() const { return last_message_at_; }
  // The latest time observe() or tick() saw; nullopt before the first.
  [[nodiscard]] std::optional<UnixMillis> now() const {
    return started_at_ ? std::optional<UnixMillis>(now_) : std::nullopt;
  }

  // Equal in what they hold: windows are compared by their buckets, whether shared or not.
  friend bool operator==(const DeviceState&, const DeviceState&) = default;

 private:
  friend class Evaluator;
  friend class StateInputs;
  friend class WindowTable;
  friend class SavedWindows;
  friend class WindowPool;
  friend void serialize(const DeviceState& state, std::string& into, WindowTable* shared);
  friend tl::expected<DeviceState, std::string> restore(std::string_view text, SavedWindows* shared);

  // Some of a metric's numeric samples: those of one bucket of a window (kWindowBuckets).
  struct Bucket {
    UnixMillis first_at = 0;  // its oldest sample's time
    UnixMillis last_at = 0;   // its newest's
    std::uint64_t count = 0;
    double first = 0, last = 0, mean = 0, low = 0, high = 0;
    friend bool operator==(const Bucket&, const Bucket&) = default;
  };
  // What the buckets before the newest add up to: StateInputs::window adds the newest to it,
  // rather than going through every bucket at each evaluation. Kept up as buckets join the
  // older ones (a new newest begins) and leave (the oldest is dropped): the count exactly; the
  // total by adding and subtracting, and worked out again from the buckets after
  // kWindowBuckets departures, so that rounding cannot build up; the extremes worked out again
  // when one of them left (and only when min or max asks). Derived: neither saved nor compared.
  struct Older {
    bool valid = false;            // count and total
    bool extremes = false;         // low and high
    std::uint32_t departures = 0;  // buckets dropped since the total was worked out
    std::uint64_t count = 0;
    double total = 0;  // of mean × count
    double low = 0, high = 0;
  };
  struct Window {
    // Milliseconds. 0: samples restored from a format-1 state, one per bucket, put into the
    // rule's windows of the metric at the next step.
    std::int64_t duration = 0;
    std::deque<Bucket> buckets;  // oldest first, none empty
    mutable Older older;         // kept up where buckets join or leave (Evaluator::add, advance)
    // The message (Sharing) whose sample it took last; 0: none. Derived, like older.
    std::uint64_t message = 0;
    friend bool operator==(const Window& a, const Window& b) {
      return a.duration == b.duration && a.buckets == b.buckets;
    }
  };
  // A state's windows may be shared with the states of the same device for other rules (a
  // WindowPool's): a copy of a state holds copies of them, shared with nothing.
  struct History {
    std::optional<std::variant<double, bool>> latest;  // nullopt: the last value was a string
    UnixMillis latest_at = 0;
    std::vector<std::shared_ptr<Window>> windows;  // by duration, none null; only those holding samples

    History() = default;
    History(const History& other);
    History& operator=(const History& other);
    History(History&&) noexcept = default;
    History& operator=(History&&) noexcept = default;
    ~History() = default;
    friend bool operator==(const History& a, const History& b) {
      return a.latest == b.latest && a.latest_at == b.latest_at &&
             std::equal(a.windows.begin(), a.windows.end(), b.windows.begin(), b.windows.end(),
                        [](const auto& x, const auto& y) { return *x == *y; });
    }
  };

  bool active_ = false;
  std::optional<UnixMillis> pending_since_;
  std::optional<UnixMillis> last_message_at_;
  std::optional<UnixMillis> started_at_;  // the first observe() or tick()
  UnixMillis now_ = 0;                    // the latest time seen, once started
  std::map<std::string, History, std::less<>> metrics_;
};

// The windows of several states serialised into one text, each distinct window once. The
// states of one device for all the rules watching it see the same messages, so rules with a
// window of the same metric and duration mostly hold equal windows: a save writes (and formats
// the numbers of) each of those once rather than once per rule. Written as a JSON array of
// {"now":T,"buckets":[...]}, the buckets as serialize() writes a window's, their ages counted
// back from T (the time of the first state written with it).
class WindowTable {
 public:
  // Distinct windows held.
  [[nodiscard]] std::size_t size() const { return windows_.size(); }
  // Appends the array to `into`.
  void write(std::string& into) const;

 private:
  friend void serialize(const DeviceState& state, std::string& into, WindowTable* shared);
  // The index of a window equal to `window` (its duration and buckets); nullopt if none is.
  [[nodiscard]] std::optional<std::size_t> find(const DeviceState::Window& window) const;
  // Adds the window, written as `entry`; its index.
  std::size_t add(const DeviceState::Window& window, std::string_view entry);

  std::vector<const DeviceState::Window*> windows_;  // the states' own: they outlive the table
  std::string entries_;                              // written so far, comma-separated
};

// A WindowTable's array read back, for restore(): its buckets with their times, checked for
// their form here and against each window that names them in restore().
class SavedWindows {
 public:
  // Refuses anything but such an array of at most kMaxSavedWindows windows.
  [[nodiscard]] static tl::expected<SavedWindows, std::string> read(const nlohmann::json& array);
  [[nodiscard]] std::size_t size() const { return windows_.size(); }

  static constexpr std::size_t kMaxSavedWindows = 100'000;

 private:
  friend tl::expected<DeviceState, std::string> restore(std::string_view text, SavedWindows* shared);
  // A bucket as serialize() writes it, its ages counted back from `now`; with no `now`, format
  // 1's [time, value] sample.
  [[nodiscard]] static std::optional<DeviceState::Bucket> bucket_of(const nlohmann::json& j,
                                                                    std::optional<UnixMillis> now);

  std::vector<std::vector<DeviceState::Bucket>> windows_;
  // The windows restore() made of an entry, by (index, duration): the states naming it share it.
  std::map<std::pair<std::size_t, std::int64_t>, std::shared_ptr<DeviceState::Window>> made_;
};

// The windows of one device's states, shared among the rules watching it. Those rules see the
// same messages, so a window of a metric and duration holds the same buckets in each: kept
// once, it is filled once per message (Sharing) and held in memory once, rather
// than once per rule. A rule that starts watching the device, or starts reading a window
// another of its rules already keeps, takes that window as it is, samples from before included.
// Holds its windows weakly: a window goes when the last state holding it lets go.
class WindowPool {
 public:
  // The state's windows join the pool where it has none of their metric and duration (a state
  // restored, or made before the pool); the others stay the state's own.
  void adopt(const DeviceState& state);
  // Live windows held (expired entries are reused as others are added).
  [[nodiscard]] std::size_t size() const;

 private:
  friend class Evaluator;
  // The pool's window of the metric and duration, made (empty) when it has none.
  [[nodiscard]] std::shared_ptr<DeviceState::Window> window(std::string_view metric, std::int64_t duration);

  struct Entry {
    std::string metric;
    std::int64_t duration = 0;
    std::weak_ptr<DeviceState::Window> window;
  };
  // The entry of the metric and duration; when there is none, an expired one (or a new one)
  // made theirs, holding no window.
  [[nodiscard]] Entry& entry(std::string_view metric, std::int64_t duration);
  std::vector<Entry> entries_;  // a device's rules read a few windows: a list
};

// How a state's windows are shared with those of the device's other states (Evaluator::
// observe): a window the state lacks is taken from (or made in) the pool, and a message's
// sample goes into a shared window once, by the first rule to see it. `message` is nonzero and
// differs from one message of the device to the next; the pool outlives the states using it.
struct Sharing {
  WindowPool* pool = nullptr;  // null: the state's windows are its own
  std::uint64_t message = 0;
};

class Evaluator {
 public:
  explicit Evaluator(std::shared_ptr<const RuleDefinition> rule);

  [[nodiscard]] const RuleDefinition& rule() const { return *rule_; }

  // A telemetry message of a matching device, at server receive time. A time earlier than
  // the state's latest counts as that latest time (windows stay in order). String values
  // make their metric missing; metrics the rule does not read are ignored.
  [[nodiscard]] Evaluation observe(DeviceState& state, const std::vector<policy::Metric>& metrics, UnixMillis at,
                                   Sharing sharing = {}) const;
  // Time passing without a message: absence, window expiry and the hold timers.
  [[nodiscard]] Evaluation tick(DeviceState& state, UnixMillis now, WindowPool* pool = nullptr) const;
  // The earliest time after the state's latest at which tick() could change the outcome (a
  // hold ending, a sample leaving a window, an absence reaching its duration); nullopt when
  // nothing is pending. Lets a caller sleep instead of ticking every second.
  [[nodiscard]] std::optional<UnixMillis> next_deadline(const DeviceState& state) const;

 private:
  void advance(DeviceState& state, UnixMillis at, WindowPool* pool) const;
  [[nodiscard]] Evaluation decide(DeviceState& state) const;
  // The history's window of that duration; when it has none, the pool's (or a new one).
  static DeviceState::Window& window_of(DeviceState::History& history, std::string_view metric, std::int64_t duration,
                                        WindowPool* pool);
  // A sample joins the window's newest bucket when it falls in the same one, else starts one.
  static void add(DeviceState::Window& window, UnixMillis at, double value);

  // Whether the rule reads the metric; its window durations (none when it has no window).
  [[nodiscard]] bool reads(std::string_view metric) const;
  [[nodiscard]] const std::vector<std::int64_t>& durations(std::string_view metric) const;

  std::shared_ptr<const RuleDefinition> rule_;
  // Lists rather than trees: a rule reads a few metrics, and these are looked up for every
  // message and state.
  std::vector<std::string> reads_;  // every metric read, sorted, distinct
  // Each windowed metric (sorted) with its distinct window durations in milliseconds, ascending.
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> windows_;
  std::vector<std::chrono::milliseconds> absences_;
};

// Dry run: replays one device's stored samples (in time order) through a fresh state,
// ticking at each deadline between them and up to `until`; returns every transition.
struct Sample {
  UnixMillis at = 0;
  std::vector<policy::Metric> metrics;
};
struct DryRunEvent {
  UnixMillis at = 0;
  Transition transition = Transition::none;
  std::string summary;
  friend bool operator==(const DryRunEvent&, const DryRunEvent&) = default;
};
[[nodiscard]] std::vector<DryRunEvent> dry_run(const RuleDefinition& rule, const std::vector<Sample>& samples,
                                               UnixMillis until);

}  // namespace torii::rules

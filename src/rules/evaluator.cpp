#include "rules/evaluator.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <iterator>
#include <limits>

#include <fmt/compile.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/profile.h"

namespace torii::rules {

using std::chrono::milliseconds;

// The expression's view of a DeviceState at its latest time.
class StateInputs final : public Inputs {
 public:
  explicit StateInputs(const DeviceState& state) : state_(state) {}

  [[nodiscard]] std::optional<std::variant<double, bool>> latest(std::string_view metric) const override {
    const auto it = state_.metrics_.find(metric);
    if (it == state_.metrics_.end()) return std::nullopt;
    return it->second.latest;
  }

  // Evaluated after Evaluator::advance: the window holds exactly the buckets still inside.
  [[nodiscard]] std::optional<double> window(WindowFunction function, std::string_view metric,
                                             milliseconds window) const override {
    const DeviceState::Window* found = nullptr;
    if (const auto it = state_.metrics_.find(metric); it != state_.metrics_.end()) {
      for (const auto& w : it->second.windows) {
        if (w->duration == window.count()) {
          found = w.get();
          break;
        }
      }
    }
    if (found == nullptr || found->buckets.empty()) {
      if (function == WindowFunction::count) return 0.0;
      return std::nullopt;
    }
    const auto& buckets = found->buckets;
    const auto& newest = buckets.back();
    if (function == WindowFunction::rate) {  // the oldest and newest samples alone
      const auto& oldest = buckets.front();
      if ((buckets.size() < 2 && newest.count < 2) || newest.last_at == oldest.first_at) return std::nullopt;
      const double seconds = static_cast<double>(newest.last_at - oldest.first_at) / 1000.0;
      return (newest.last - oldest.first) / seconds;
    }
    DeviceState::Older& older = found->older;
    const auto older_end = std::prev(buckets.end());
    if (!older.valid || !std::isfinite(older.total)) {
      older = {true, false, 0, 0, 0, 0, 0};
      for (auto b = buckets.begin(); b != older_end; ++b) {
        older.count += b->count;
        older.total += b->mean * static_cast<double>(b->count);
      }
    }
    if (!older.extremes && (function == WindowFunction::min || function == WindowFunction::max)) {
      older.extremes = true;
      older.low = std::numeric_limits<double>::infinity();
      older.high = -std::numeric_limits<double>::infinity();
      for (auto b = buckets.begin(); b != older_end; ++b) {
        older.low = std::min(older.low, b->low);
        older.high = std::max(older.high, b->high);
      }
    }
    const std::uint64_t count = older.count + newest.count;
    const double total = older.total + newest.mean * static_cast<double>(newest.count);
    const double low = std::min(older.low, newest.low);
    const double high = std::max(older.high, newest.high);
    switch (function) {
      case WindowFunction::count: return static_cast<double>(count);
      case WindowFunction::avg: {
        if (std::isfinite(total)) return total / static_cast<double>(count);
        double mean = 0;  // the sum overflowed: each bucket's share instead (no term exceeds its mean)
        for (const auto& b : buckets) mean += b.mean * (static_cast<double>(b.count) / static_cast<double>(count));
        return mean;
      }
      case WindowFunction::min: return low;
      case WindowFunction::max: return high;
      case WindowFunction::rate: break;  // above
    }
    return std::nullopt;
  }

  [[nodiscard]] std::optional<milliseconds> silence() const override {
    const auto since = state_.last_message_at_ ? state_.last_message_at_ : state_.started_at_;
    if (!since) return std::nullopt;
    return milliseconds(state_.now_ - *since);
  }

 private:
  const DeviceState& state_;
};

namespace {

constexpr std::size_t kMaxSummaryBytes = 300;

std::int64_t bucket_width(std::int64_t duration) { return std::max<std::int64_t>(1, duration / kWindowBuckets); }

std::optional<std::variant<double, bool>> usable(const policy::MetricValue& value) {
  if (const auto* d = std::get_if<double>(&value)) {
    if (!std::isfinite(*d)) return std::nullopt;
    return *d;
  }
  if (const auto* i = std::get_if<std::int64_t>(&value)) return static_cast<double>(*i);
  if (const auto* b = std::get_if<bool>(&value)) return *b;
  return std::nullopt;  // strings cannot be used
}

}  // namespace

std::string_view to_string(Transition transition) {
  switch (transition) {
    case Transition::none: return "none";
    case Transition::fired: return "fired";
    case Transition::cleared: return "cleared";
  }
  return "none";
}

Evaluator::Evaluator(std::shared_ptr<const RuleDefinition> rule) : rule_(std::move(rule)) {
  const auto collect = [this](const Expression& e) {
    for (auto& m : e.metrics()) reads_.push_back(std::move(m));
    for (const auto& window : e.windows()) {
      auto it = std::find_if(windows_.begin(), windows_.end(), [&](const auto& w) { return w.first == window.first; });
      if (it == windows_.end()) it = windows_.insert(windows_.end(), {window.first, {}});
      it->second.push_back(window.second.count());
    }
    for (const auto d : e.absences()) absences_.push_back(d);
  };
  collect(rule_->condition);
  for (const Action& a : rule_->actions) {
    if (const auto* m = std::get_if<MetricAction>(&a)) collect(m->value);
  }
  std::sort(reads_.begin(), reads_.end());
  reads_.erase(std::unique(reads_.begin(), reads_.end()), reads_.end());
  std::sort(windows_.begin(), windows_.end());
  for (auto& [metric, durations] : windows_) {
    std::sort(durations.begin(), durations.end());
    durations.erase(std::unique(durations.begin(), durations.end()), durations.end());
  }
  std::sort(absences_.begin(), absences_.end());
  absences_.erase(std::unique(absences_.begin(), absences_.end()), absences_.end());
}

bool Evaluator::reads(std::string_view metric) const {
  return std::find(reads_.begin(), reads_.end(), metric) != reads_.end();
}

const std::vector<std::int64_t>& Evaluator::durations(std::string_view metric) const {
  static const std::vector<std::int64_t> kNone;
  for (const auto& [name, durations] : windows_) {
    if (name == metric) return durations;
  }
  return kNone;
}

DeviceState::History::History(const History& other) : latest(other.latest), latest_at(other.latest_at) {
  windows.reserve(other.windows.size());
  for (const auto& w : other.windows) windows.push_back(std::make_shared<Window>(*w));
}

DeviceState::History& DeviceState::History::operator=(const History& other) {
  if (this != &other) *this = History(other);
  return *this;
}

WindowPool::Entry& WindowPool::entry(std::string_view metric, std::int64_t duration) {
  Entry* free = nullptr;
  for (Entry& e : entries_) {
    if (e.duration == duration && e.metric == metric) return e;
    if (free == nullptr && e.window.expired()) free = &e;
  }
  if (free == nullptr) free = &entries_.emplace_back();
  free->metric = metric;
  free->duration = duration;
  free->window.reset();
  return *free;
}

std::shared_ptr<DeviceState::Window> WindowPool::window(std::string_view metric, std::int64_t duration) {
  Entry& e = entry(metric, duration);
  if (auto live = e.window.lock()) return live;
  auto made = std::make_shared<DeviceState::Window>();
  made->duration = duration;
  e.window = made;
  return made;
}

void WindowPool::adopt(const DeviceState& state) {
  for (const auto& named : state.metrics_) {
    for (const auto& w : named.second.windows) {
      if (w->duration == 0) continue;  // format-1 samples: the state's alone
      Entry& e = entry(named.first, w->duration);
      if (e.window.expired()) e.window = w;
    }
  }
}

std::size_t WindowPool::size() const {
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return !e.window.expired(); }));
}

DeviceState::Window& Evaluator::window_of(DeviceState::History& history, std::string_view metric, std::int64_t duration,
                                          WindowPool* pool) {
  auto& windows = history.windows;
  auto it =
      std::lower_bound(windows.begin(), windows.end(), duration,
                       [](const std::shared_ptr<DeviceState::Window>& w, std::int64_t d) { return w->duration < d; });
  if (it == windows.end() || (*it)->duration != duration) {
    auto window = pool != nullptr ? pool->window(metric, duration) : std::make_shared<DeviceState::Window>();
    window->duration = duration;
    it = windows.insert(it, std::move(window));
  }
  return **it;
}

void Evaluator::add(DeviceState::Window& window, UnixMillis at, double value) {
  auto& buckets = window.buckets;
  const std::int64_t width = bucket_width(window.duration);
  if (window.duration != 0 && !buckets.empty() && buckets.back().last_at / width == at / width) {
    auto& b = buckets.back();
    ++b.count;
    const double n = static_cast<double>(b.count);
    b.last_at = at;
    b.last = value;
    b.low = std::min(b.low, value);
    b.high = std::max(b.high, value);
    // A running mean stays within [low, high] (a sum could overflow); clamped against rounding.
    b.mean = std::clamp(b.mean * ((n - 1) / n) + value / n, b.low, b.high);
    return;
  }
  auto& older = window.older;
  if (!buckets.empty()) {  // the bucket that was newest is among the older ones now
    const auto& joins = buckets.back();
    if (older.valid) {
      older.count += joins.count;
      older.total += joins.mean * static_cast<double>(joins.count);
    }
    if (older.extremes) {
      older.low = std::min(older.low, joins.low);
      older.high = std::max(older.high, joins.high);
    }
  }
  buckets.push_back({at, at, 1, value, value, value, value, value});
}

// Moves the state's time to `at` (never backwards) and drops the buckets that have left their
// windows, as well as the history of metrics and windows the rule no longer reads (a state
// kept across an edit). Samples restored from a format-1 state go into the metric's windows.
void Evaluator::advance(DeviceState& state, UnixMillis at, WindowPool* pool) const {
  if (!state.started_at_) {
    state.started_at_ = at;
    state.now_ = at;
  } else {
    state.now_ = std::max(state.now_, at);
  }
  for (auto it = state.metrics_.begin(); it != state.metrics_.end();) {
    if (!reads(it->first)) {
      it = state.metrics_.erase(it);
      continue;
    }
    auto& history = it->second;
    const auto& durations = this->durations(it->first);
    if (!history.windows.empty() && history.windows.front()->duration == 0) {
      const std::shared_ptr<DeviceState::Window> samples = std::move(history.windows.front());
      history.windows.erase(history.windows.begin());
      for (const std::int64_t d : durations) {
        auto& window = window_of(history, it->first, d, pool);
        // A shared window holding samples has those of the same messages already.
        if (!window.buckets.empty()) continue;
        for (const auto& s : samples->buckets) {
          if (s.first_at > state.now_ - d) add(window, s.first_at, s.first);
        }
      }
    }
    for (auto& shared : history.windows) {
      DeviceState::Window& w = *shared;
      const UnixMillis edge = state.now_ - w.duration;  // a bucket whose oldest sample is at or before it is out
      while (!w.buckets.empty() && w.buckets.front().first_at <= edge) {
        auto& older = w.older;
        const auto& leaves = w.buckets.front();
        if (w.buckets.size() == 1) {  // the newest: the window is empty now
          older.valid = older.extremes = false;
        } else {
          if (older.valid) {
            older.count -= leaves.count;
            older.total -= leaves.mean * static_cast<double>(leaves.count);
            if (++older.departures >= static_cast<std::uint32_t>(kWindowBuckets)) older.valid = false;
          }
          if (older.extremes && (leaves.low <= older.low || leaves.high >= older.high)) older.extremes = false;
        }
        w.buckets.pop_front();
      }
    }
    std::erase_if(history.windows, [&durations](const std::shared_ptr<DeviceState::Window>& w) {
      return w->buckets.empty() || !std::binary_search(durations.begin(), durations.end(), w->duration);
    });
    ++it;
  }
}

Evaluation Evaluator::decide(DeviceState& state) const {
  const StateInputs inputs(state);
  const Value value = rule_->condition.evaluate(inputs);
  const bool holds = std::holds_alternative<bool>(value) && std::get<bool>(value);
  Evaluation out;
  if (holds == state.active_) {
    state.pending_since_.reset();
  } else {
    if (!state.pending_since_) state.pending_since_ = state.now_;
    const milliseconds wait = state.active_ ? rule_->clear_hold : rule_->hold;
    if (state.now_ - *state.pending_since_ >= wait.count()) {
      state.active_ = holds;
      state.pending_since_.reset();
      out.transition = holds ? Transition::fired : Transition::cleared;
      out.summary = rule_->condition.explain(inputs);
      if (out.summary.size() > kMaxSummaryBytes) {
        out.summary.resize(kMaxSummaryBytes - 3);
        out.summary += "...";
      }
    }
  }
  out.active = state.active_;
  return out;
}

Evaluation Evaluator::observe(DeviceState& state, const std::vector<policy::Metric>& metrics, UnixMillis at,
                              Sharing sharing) const {
  advance(state, at, sharing.pool);
  const UnixMillis now = state.now_;
  state.last_message_at_ = now;
  for (const policy::Metric& m : metrics) {
    if (!reads(m.name)) continue;
    auto& history = state.metrics_[m.name];
    history.latest = usable(m.value);
    history.latest_at = now;
    if (!history.latest || !std::holds_alternative<double>(*history.latest)) continue;
    for (const std::int64_t d : durations(m.name)) {
      auto& window = window_of(history, m.name, d, sharing.pool);
      if (sharing.message != 0) {  // another rule of the device may have added it already
        if (window.message == sharing.message) continue;
        window.message = sharing.message;
      }
      add(window, now, std::get<double>(*history.latest));
    }
  }
  Evaluation out = decide(state);
  const StateInputs inputs(state);
  for (const Action& a : rule_->actions) {
    const auto* m = std::get_if<MetricAction>(&a);
    if (m == nullptr) continue;
    const Value v = m->value.evaluate(inputs);
    if (const auto* d = std::get_if<double>(&v)) out.derived.emplace_back(m->name, *d);
  }
  return out;
}

Evaluation Evaluator::tick(DeviceState& state, UnixMillis now, WindowPool* pool) const {
  advance(state, now, pool);
  return decide(state);
}

std::optional<UnixMillis> Evaluator::next_deadline(const DeviceState& state) const {
  if (!state.started_at_) return std::nullopt;
  const UnixMillis now = state.now_;
  std::optional<UnixMillis> best;
  const auto consider = [&best, now](UnixMillis t) {
    if (t > now && (!best || t < *best)) best = t;
  };
  if (state.pending_since_) {
    consider(*state.pending_since_ + (state.active_ ? rule_->clear_hold : rule_->hold).count());
  }
  const UnixMillis since = state.last_message_at_ ? *state.last_message_at_ : *state.started_at_;
  for (const auto d : absences_) consider(since + d.count());
  for (const auto& [metric, durations] : windows_) {
    const auto it = state.metrics_.find(metric);
    if (it == state.metrics_.end()) continue;
    for (const auto& shared : it->second.windows) {
      const DeviceState::Window& w = *shared;
      if (w.duration != 0) {
        // Its oldest bucket leaves the window when that bucket's oldest sample does.
        if (!w.buckets.empty()) consider(w.buckets.front().first_at + w.duration);
        continue;
      }
      for (const std::int64_t d : durations) {  // samples of a format-1 state, not yet in their windows
        const auto inside = std::find_if(w.buckets.begin(), w.buckets.end(),
                                         [edge = now - d](const DeviceState::Bucket& s) { return s.first_at > edge; });
        if (inside != w.buckets.end()) consider(inside->first_at + d);
      }
    }
  }
  return best;
}

// State format, version 2:
//   {"v":2,"active":false,"pending":null,"last":123,"start":100,"now":123,
//    "metrics":{"temperature":{"at":123,"value":21.5,"windows":{"60000":[[23,21.0],
//      [13,5,3,21.1,21.4,21.2,21.0,21.5]]}}}}
// Each window (by its duration in milliseconds; "0" for samples restored from version 1 and not
// yet put into windows) lists its buckets, oldest first: a bucket of one sample as [age, value],
// else [age of the first, age of the last, count, first value, last value, mean, min, max], an
// age being milliseconds before "now" (shorter than a time: a save writes many). Written with a
// WindowTable, a window may instead be a number: the index of its buckets in the table, whose
// entry has a "now" of its own to count their ages back from.
// Version 1 (read, no longer written) had "window":[[time,value],...] in place of "windows".
// Written straight as text: the server saves every changed state every few seconds, and a
// document tree of each cost more than sealing and writing it (docs/benchmarks.md). Numbers
// are written in their shortest form that reads back to the same double (with ".0" when
// whole, as JSON libraries write doubles); metric names are JSON-quoted. restore() reads it
// (and any equal JSON).
std::string serialize(const DeviceState& state) {
  std::string out;
  serialize(state, out);
  return out;
}

void serialize(const DeviceState& state, std::string& into, WindowTable* shared) {
  thread_local fmt::memory_buffer buffer;  // keeps its capacity from one state to the next
  fmt::memory_buffer& out = buffer;
  out.clear();
  const auto put = [&out](std::string_view text) { out.append(text); };
  const auto number = [&](double v) {
    const std::size_t start = out.size();
    fmt::format_to(std::back_inserter(out), FMT_COMPILE("{}"), v);
    if (std::string_view(out.data() + start, out.size() - start).find_first_of(".e") == std::string_view::npos) {
      put(".0");
    }
  };
  const auto time = [&](const std::optional<UnixMillis>& t) {
    if (t) {
      fmt::format_to(std::back_inserter(out), FMT_COMPILE("{}"), *t);
    } else {
      put("null");
    }
  };
  // A window's buckets, their ages counted back from the state's now.
  const auto buckets = [&](const DeviceState::Window& w) {
    put("[");
    bool first_bucket = true;
    for (const auto& b : w.buckets) {
      put(first_bucket ? "[" : ",[");
      first_bucket = false;
      if (b.count == 1) {
        fmt::format_to(std::back_inserter(out), FMT_COMPILE("{},"), state.now_ - b.first_at);
        number(b.first);
      } else {
        fmt::format_to(std::back_inserter(out), FMT_COMPILE("{},{},{}"), state.now_ - b.first_at,
                       state.now_ - b.last_at, b.count);
        for (const double v : {b.first, b.last, b.mean, b.low, b.high}) {
          put(",");
          number(v);
        }
      }
      put("]");
    }
    put("]");
  };
  fmt::format_to(std::back_inserter(out), FMT_COMPILE(R"({{"v":2,"active":{},"pending":)"), state.active_);
  time(state.pending_since_);
  put(R"(,"last":)");
  time(state.last_message_at_);
  put(R"(,"start":)");
  time(state.started_at_);
  fmt::format_to(std::back_inserter(out), FMT_COMPILE(R"(,"now":{},"metrics":{{)"), state.now_);
  bool first_metric = true;
  for (const auto& [name, h] : state.metrics_) {
    if (!first_metric) put(",");
    first_metric = false;
    if (policy::valid_name(name)) {  // nothing to escape: quoted as it is
      put("\"");
      put(name);
      put("\"");
    } else {
      put(nlohmann::json(name).dump());
    }
    fmt::format_to(std::back_inserter(out), FMT_COMPILE(R"(:{{"at":{},"value":)"), h.latest_at);
    if (!h.latest) {
      put("null");
    } else if (const bool* b = std::get_if<bool>(&*h.latest)) {
      put(*b ? "true" : "false");
    } else {
      number(std::get<double>(*h.latest));
    }
    put(R"(,"windows":{)");
    bool first_window = true;
    for (const auto& shared_window : h.windows) {
      const DeviceState::Window& w = *shared_window;
      fmt::format_to(std::back_inserter(out), FMT_COMPILE(R"({}"{}":)"), first_window ? "" : ",", w.duration);
      first_window = false;
      if (shared == nullptr || w.duration == 0) {
        buckets(w);
        continue;
      }
      std::optional<std::size_t> index = shared->find(w);
      if (!index) {  // written into the table, not here
        const std::size_t mark = out.size();
        fmt::format_to(std::back_inserter(out), FMT_COMPILE(R"({{"now":{},"buckets":)"), state.now_);
        buckets(w);
        put("}");
        index = shared->add(w, std::string_view(out.data() + mark, out.size() - mark));
        out.resize(mark);
      }
      fmt::format_to(std::back_inserter(out), FMT_COMPILE("{}"), *index);
    }
    put("}}");
  }
  put("}}");
  into.append(out.data(), out.size());
}

namespace {

using json = nlohmann::json;
constexpr std::int64_t kMaxMillis = std::int64_t{1} << 53;

std::optional<UnixMillis> time_of(const json& j) {
  if (!j.is_number_integer()) return std::nullopt;
  const auto t = j.get<std::int64_t>();
  if (j.is_number_unsigned() && j.get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxMillis)) return std::nullopt;
  if (t < 0 || t > kMaxMillis) return std::nullopt;
  return t;
}

std::optional<double> finite(const json& j) {
  if (!j.is_number()) return std::nullopt;
  const double v = j.get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

bool exactly(const json& object, std::initializer_list<const char*> keys) {
  if (!object.is_object() || object.size() != keys.size()) return false;
  return std::all_of(keys.begin(), keys.end(), [&object](const char* k) { return object.contains(k); });
}

}  // namespace

std::optional<DeviceState::Bucket> SavedWindows::bucket_of(const json& j, std::optional<UnixMillis> now) {
  const auto time_in = [now](const json& t) -> std::optional<UnixMillis> {
    const auto at = time_of(t);
    if (!now || !at) return at;
    if (*at > *now) return std::nullopt;
    return *now - *at;
  };
  if (!j.is_array()) return std::nullopt;
  if (j.size() == 2) {
    const auto t = time_in(j[0]);
    const auto v = finite(j[1]);
    if (!t || !v) return std::nullopt;
    return DeviceState::Bucket{*t, *t, 1, *v, *v, *v, *v, *v};
  }
  if (!now || j.size() != 8 || !j[2].is_number_unsigned()) return std::nullopt;
  const auto first_at = time_in(j[0]);
  const auto last_at = time_in(j[1]);
  const auto count = j[2].get<std::uint64_t>();
  std::array<double, 5> v{};
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto x = finite(j[3 + i]);
    if (!x) return std::nullopt;
    v[i] = *x;
  }
  if (!first_at || !last_at || *first_at > *last_at || count < 2 || count > static_cast<std::uint64_t>(kMaxMillis)) {
    return std::nullopt;
  }
  const double low = v[3];
  const double high = v[4];
  if (!std::all_of(v.begin(), v.begin() + 3, [low, high](double x) { return low <= x && x <= high; })) {
    return std::nullopt;
  }
  return DeviceState::Bucket{*first_at, *last_at, count, v[0], v[1], v[2], low, high};
}

tl::expected<SavedWindows, std::string> SavedWindows::read(const json& array) {
  const auto refuse = [](std::string_view why) { return tl::unexpected(fmt::format("saved windows: {}", why)); };
  if (!array.is_array()) return refuse("not a list");
  if (array.size() > kMaxSavedWindows) return refuse("too many");
  SavedWindows out;
  out.windows_.reserve(array.size());
  for (const json& entry : array) {
    if (!exactly(entry, {"now", "buckets"})) return refuse("an entry is not a window");
    const auto now = time_of(entry["now"]);
    const json& list = entry["buckets"];
    // The most any window holds (restore() checks each against the window naming it).
    if (!now || !list.is_array() || list.size() > static_cast<std::size_t>(kWindowBuckets) + 2) {
      return refuse("an entry's time or buckets are out of bounds");
    }
    auto& buckets = out.windows_.emplace_back();
    buckets.reserve(list.size());
    for (const json& j : list) {
      auto b = bucket_of(j, *now);
      if (!b) return refuse("a bucket is malformed");
      buckets.push_back(*b);
    }
  }
  return out;
}

std::optional<std::size_t> WindowTable::find(const DeviceState::Window& window) const {
  for (std::size_t i = 0; i < windows_.size(); ++i) {
    if (windows_[i] == &window || *windows_[i] == window) return i;  // shared windows are the same one
  }
  return std::nullopt;
}

std::size_t WindowTable::add(const DeviceState::Window& window, std::string_view entry) {
  if (!windows_.empty()) entries_ += ',';
  entries_ += entry;
  windows_.push_back(&window);
  return windows_.size() - 1;
}

void WindowTable::write(std::string& into) const {
  into += '[';
  into += entries_;
  into += ']';
}

tl::expected<DeviceState, std::string> restore(std::string_view text, SavedWindows* shared) {
  const auto refuse = [](std::string why) { return tl::unexpected("rule state: " + std::move(why)); };
  if (text.size() > kMaxStateBytes) return refuse("larger than 4 MiB");
  const json root = json::parse(text, nullptr, false);
  if (root.is_discarded()) return refuse("not valid JSON");
  if (!exactly(root, {"v", "active", "pending", "last", "start", "now", "metrics"})) {
    return refuse("not a rule state object");
  }
  const json& format = root["v"];
  if (format != 1 && format != 2) return refuse("unknown version");
  const bool samples = format == 1;  // format 1 kept each metric's samples, not buckets
  DeviceState s;
  if (!root["active"].is_boolean()) return refuse("active must be true or false");
  s.active_ = root["active"].get<bool>();
  const auto now = time_of(root["now"]);
  if (!now) return refuse("now must be a time");
  s.now_ = *now;
  const auto optional_time = [&](const char* key, std::optional<UnixMillis>& out) {
    const json& j = root[key];
    if (j.is_null()) return true;
    out = time_of(j);
    return out.has_value() && *out <= s.now_;
  };
  if (!optional_time("pending", s.pending_since_) || !optional_time("last", s.last_message_at_) ||
      !optional_time("start", s.started_at_)) {
    return refuse("pending, last and start must be times no later than now");
  }
  const json& metrics = root["metrics"];
  if (!metrics.is_object()) return refuse("metrics must be an object");
  if (!s.started_at_) {
    if (s.active_ || s.pending_since_ || s.last_message_at_ || s.now_ != 0 || !metrics.empty()) {
      return refuse("a state that never started holds nothing");
    }
    return s;
  }
  if (s.last_message_at_ && *s.last_message_at_ < *s.started_at_) return refuse("last is before start");
  if (metrics.size() > kMaxRuleMetrics) return refuse("too many metrics");
  // One window's buckets: in time order, each in a bucket of its own (of the window's width),
  // no later than now and still inside the window; format-1 samples one each, at most 1000.
  const auto window_of = [&s](std::int64_t duration,
                              const std::vector<DeviceState::Bucket>& buckets) -> std::optional<DeviceState::Window> {
    const std::int64_t width = bucket_width(duration);
    const std::size_t most = duration == 0 ? kMaxWindowSamples : static_cast<std::size_t>(duration / width + 2);
    if (buckets.size() > most) return std::nullopt;
    DeviceState::Window w{duration, {}, {}};
    for (const auto& b : buckets) {
      if (b.last_at > s.now_) return std::nullopt;
      if (duration == 0) {
        if (b.count != 1 || (!w.buckets.empty() && b.first_at < w.buckets.back().last_at)) return std::nullopt;
      } else if (b.first_at <= s.now_ - duration || b.first_at / width != b.last_at / width ||
                 (!w.buckets.empty() && w.buckets.back().last_at / width >= b.first_at / width)) {
        return std::nullopt;
      }
      w.buckets.push_back(b);
    }
    return w;
  };
  // A window written in full: its buckets' ages count back from the state's now (format 1:
  // [time, value] samples).
  const auto read_window = [&](std::int64_t duration, const json& list) -> std::optional<DeviceState::Window> {
    if (!list.is_array() || list.size() > kMaxWindowSamples) return std::nullopt;
    std::vector<DeviceState::Bucket> buckets;
    buckets.reserve(list.size());
    for (const json& j : list) {
      auto b = SavedWindows::bucket_of(j, samples ? std::nullopt : std::optional<UnixMillis>(s.now_));
      if (!b) return std::nullopt;
      buckets.push_back(*b);
    }
    return window_of(duration, buckets);
  };
  for (const auto& [name, m] : metrics.items()) {
    if (!policy::valid_name(name)) return refuse("invalid metric name");
    if (!exactly(m, {"at", "value", samples ? "window" : "windows"})) {
      return refuse("a metric must hold at, value and its windows");
    }
    DeviceState::History h;
    const auto at = time_of(m["at"]);
    if (!at || *at > s.now_) return refuse("a metric's time must be no later than now");
    h.latest_at = *at;
    const json& value = m["value"];
    if (value.is_boolean()) {
      h.latest = value.get<bool>();
    } else if (value.is_number()) {
      const auto v = finite(value);
      if (!v) return refuse("a metric's value must be finite");
      h.latest = *v;
    } else if (!value.is_null()) {
      return refuse("a metric's value must be a number, true, false or null");
    }
    if (samples) {
      auto w = read_window(0, m["window"]);
      if (!w) return refuse("a window holds at most 1000 samples, in time order, no later than now");
      if (!w->buckets.empty()) h.windows.push_back(std::make_shared<DeviceState::Window>(std::move(*w)));
    } else {
      const json& windows = m["windows"];
      if (!windows.is_object() || windows.size() > kMaxWindowCalls)
        return refuse("windows must be an object of at most 8");
      for (const auto& [key, list] : windows.items()) {
        std::int64_t duration = -1;
        const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), duration);
        const bool known = duration == 0 || (duration >= kMinWindow.count() && duration <= kMaxWindow.count());
        if (error != std::errc{} || end != key.data() + key.size() || !known) return refuse("unknown window duration");
        const bool indexed = list.is_number_unsigned();  // written into a WindowTable
        const std::size_t index = indexed ? static_cast<std::size_t>(list.get<std::uint64_t>()) : 0;
        std::optional<DeviceState::Window> w;
        if (indexed) {
          if (shared == nullptr || index >= shared->windows_.size()) return refuse("a window names no saved window");
          w = window_of(duration, shared->windows_[index]);
        } else {
          w = read_window(duration, list);
        }
        if (!w || w->buckets.empty())
          return refuse("a window's buckets must be in time order, inside it and no later than now");
        if (!indexed) {
          h.windows.push_back(std::make_shared<DeviceState::Window>(std::move(*w)));
          continue;
        }
        // Checked for this state above; the states naming the entry with this duration share it.
        auto& made = shared->made_[{index, duration}];
        if (!made) made = std::make_shared<DeviceState::Window>(std::move(*w));
        h.windows.push_back(made);
      }
      std::sort(h.windows.begin(), h.windows.end(),
                [](const auto& a, const auto& b) { return a->duration < b->duration; });
      for (std::size_t i = 1; i < h.windows.size(); ++i) {
        if (h.windows[i]->duration == h.windows[i - 1]->duration) return refuse("a window is listed twice");
      }
      if (!h.windows.empty() && h.windows.front()->duration == 0 && h.windows.size() > 1) {
        return refuse("samples of format 1 go with no window");
      }
    }
    s.metrics_.emplace(name, std::move(h));
  }
  return s;
}

std::vector<DryRunEvent> dry_run(const RuleDefinition& rule, const std::vector<Sample>& samples, UnixMillis until) {
  const Evaluator evaluator(std::make_shared<const RuleDefinition>(rule));
  DeviceState state;
  std::vector<DryRunEvent> events;
  std::size_t ticks = 0;
  const auto record = [&events, &state](const Evaluation& e) {
    if (e.transition != Transition::none) events.push_back({state.now().value_or(0), e.transition, e.summary});
  };
  // Ticks at every deadline strictly before `limit`.
  const auto tick_until = [&](UnixMillis limit) {
    while (ticks < kMaxDryRunTicks) {
      const auto deadline = evaluator.next_deadline(state);
      if (!deadline || *deadline >= limit) return;
      record(evaluator.tick(state, *deadline));
      ++ticks;
    }
  };
  for (const Sample& sample : samples) {
    if (sample.at > until) break;
    tick_until(sample.at);
    record(evaluator.observe(state, sample.metrics, sample.at));
  }
  tick_until(until);
  if (ticks < kMaxDryRunTicks) record(evaluator.tick(state, until));
  return events;
}

}  // namespace torii::rules

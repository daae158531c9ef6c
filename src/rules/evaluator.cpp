#include "rules/evaluator.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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

  [[nodiscard]] std::optional<double> window(WindowFunction function, std::string_view metric,
                                             milliseconds window) const override {
    const auto it = state_.metrics_.find(metric);
    std::size_t count = 0;
    double sum = 0;
    double low = std::numeric_limits<double>::infinity();
    double high = -std::numeric_limits<double>::infinity();
    std::pair<UnixMillis, double> oldest{};
    std::pair<UnixMillis, double> newest{};
    if (it != state_.metrics_.end()) {
      const UnixMillis edge = state_.now_ - window.count();  // samples at or before it are out
      const auto& samples = it->second.window;
      for (auto s = samples.rbegin(); s != samples.rend() && s->first > edge; ++s) {
        if (count == 0) newest = *s;
        oldest = *s;
        ++count;
        sum += s->second;
        low = std::min(low, s->second);
        high = std::max(high, s->second);
      }
    }
    switch (function) {
      case WindowFunction::count: return static_cast<double>(count);
      case WindowFunction::avg:
        if (count == 0) return std::nullopt;
        return sum / static_cast<double>(count);
      case WindowFunction::min:
        if (count == 0) return std::nullopt;
        return low;
      case WindowFunction::max:
        if (count == 0) return std::nullopt;
        return high;
      case WindowFunction::rate: {
        if (count < 2 || newest.first == oldest.first) return std::nullopt;
        const double seconds = static_cast<double>(newest.first - oldest.first) / 1000.0;
        return (newest.second - oldest.second) / seconds;
      }
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
    for (auto& m : e.metrics()) reads_.insert(std::move(m));
    for (auto& w : e.windows()) {
      auto& longest = longest_[w.first];
      longest = std::max(longest, w.second);
      windows_.push_back(std::move(w));
    }
    for (const auto d : e.absences()) absences_.push_back(d);
  };
  collect(rule_->condition);
  for (const Action& a : rule_->actions) {
    if (const auto* m = std::get_if<MetricAction>(&a)) collect(m->value);
  }
  std::sort(windows_.begin(), windows_.end());
  windows_.erase(std::unique(windows_.begin(), windows_.end()), windows_.end());
  std::sort(absences_.begin(), absences_.end());
  absences_.erase(std::unique(absences_.begin(), absences_.end()), absences_.end());
}

// Moves the state's time to `at` (never backwards) and drops what has left every window,
// as well as the history of metrics the rule no longer reads (a state kept across an edit).
void Evaluator::advance(DeviceState& state, UnixMillis at) const {
  if (!state.started_at_) {
    state.started_at_ = at;
    state.now_ = at;
  } else {
    state.now_ = std::max(state.now_, at);
  }
  for (auto it = state.metrics_.begin(); it != state.metrics_.end();) {
    if (!reads_.contains(it->first)) {
      it = state.metrics_.erase(it);
      continue;
    }
    auto& window = it->second.window;
    const auto longest = longest_.find(it->first);
    if (longest == longest_.end()) {
      window.clear();
    } else {
      const UnixMillis edge = state.now_ - longest->second.count();
      while (!window.empty() && window.front().first <= edge) window.pop_front();
    }
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

Evaluation Evaluator::observe(DeviceState& state, const std::vector<policy::Metric>& metrics, UnixMillis at) const {
  advance(state, at);
  const UnixMillis now = state.now_;
  state.last_message_at_ = now;
  for (const policy::Metric& m : metrics) {
    if (!reads_.contains(m.name)) continue;
    auto& history = state.metrics_[m.name];
    history.latest = usable(m.value);
    history.latest_at = now;
    if (history.latest && std::holds_alternative<double>(*history.latest) && longest_.contains(m.name)) {
      history.window.emplace_back(now, std::get<double>(*history.latest));
      if (history.window.size() > kMaxWindowSamples) history.window.pop_front();
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

Evaluation Evaluator::tick(DeviceState& state, UnixMillis now) const {
  advance(state, now);
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
  for (const auto& [metric, d] : windows_) {
    const auto it = state.metrics_.find(metric);
    if (it == state.metrics_.end()) continue;
    const auto& window = it->second.window;
    // The oldest sample still inside (now - d, now] leaves the window at its time + d.
    const auto inside = std::upper_bound(window.begin(), window.end(), now - d.count(),
                                         [](UnixMillis edge, const auto& s) { return edge < s.first; });
    if (inside != window.end()) consider(inside->first + d.count());
  }
  return best;
}

// State format, version 1:
//   {"v":1,"active":false,"pending":null,"last":123,"start":100,"now":123,
//    "metrics":{"temperature":{"at":123,"value":21.5,"window":[[100,21.0],[123,21.5]]}}}
// Written straight as text: the server saves every changed state every few seconds, and a
// document tree of each cost more than sealing and writing it (docs/benchmarks.md). Numbers
// are written in their shortest form that reads back to the same double (with ".0" when
// whole, as JSON libraries write doubles); metric names are JSON-quoted. restore() reads it
// (and any equal JSON).
std::string serialize(const DeviceState& state) {
  fmt::memory_buffer out;
  const auto put = [&out](std::string_view text) { out.append(text); };
  const auto number = [&](double v) {
    const std::size_t start = out.size();
    fmt::format_to(std::back_inserter(out), "{}", v);
    if (std::string_view(out.data() + start, out.size() - start).find_first_of(".e") == std::string_view::npos) {
      put(".0");
    }
  };
  const auto time = [&](const std::optional<UnixMillis>& t) {
    if (t) {
      fmt::format_to(std::back_inserter(out), "{}", *t);
    } else {
      put("null");
    }
  };
  fmt::format_to(std::back_inserter(out), R"({{"v":1,"active":{},"pending":)", state.active_);
  time(state.pending_since_);
  put(R"(,"last":)");
  time(state.last_message_at_);
  put(R"(,"start":)");
  time(state.started_at_);
  fmt::format_to(std::back_inserter(out), R"(,"now":{},"metrics":{{)", state.now_);
  bool first_metric = true;
  for (const auto& [name, h] : state.metrics_) {
    if (!first_metric) put(",");
    first_metric = false;
    put(nlohmann::json(name).dump());
    fmt::format_to(std::back_inserter(out), R"(:{{"at":{},"value":)", h.latest_at);
    if (!h.latest) {
      put("null");
    } else if (const bool* b = std::get_if<bool>(&*h.latest)) {
      put(*b ? "true" : "false");
    } else {
      number(std::get<double>(*h.latest));
    }
    put(R"(,"window":[)");
    bool first_sample = true;
    for (const auto& [at, v] : h.window) {
      fmt::format_to(std::back_inserter(out), "{}[{},", first_sample ? "" : ",", at);
      number(v);
      put("]");
      first_sample = false;
    }
    put("]}");
  }
  put("}}");
  return fmt::to_string(out);
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

bool exactly(const json& object, std::initializer_list<const char*> keys) {
  if (!object.is_object() || object.size() != keys.size()) return false;
  return std::all_of(keys.begin(), keys.end(), [&object](const char* k) { return object.contains(k); });
}

}  // namespace

tl::expected<DeviceState, std::string> restore(std::string_view text) {
  const auto refuse = [](std::string why) { return tl::unexpected("rule state: " + std::move(why)); };
  if (text.size() > kMaxStateBytes) return refuse("larger than 4 MiB");
  const json root = json::parse(text, nullptr, false);
  if (root.is_discarded()) return refuse("not valid JSON");
  if (!exactly(root, {"v", "active", "pending", "last", "start", "now", "metrics"})) {
    return refuse("not a rule state object");
  }
  if (root["v"] != 1) return refuse("unknown version");
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
  for (const auto& [name, m] : metrics.items()) {
    if (!policy::valid_name(name)) return refuse("invalid metric name");
    if (!exactly(m, {"at", "value", "window"})) return refuse("a metric must hold at, value and window");
    DeviceState::History h;
    const auto at = time_of(m["at"]);
    if (!at || *at > s.now_) return refuse("a metric's time must be no later than now");
    h.latest_at = *at;
    const json& value = m["value"];
    if (value.is_boolean()) {
      h.latest = value.get<bool>();
    } else if (value.is_number()) {
      const double v = value.get<double>();
      if (!std::isfinite(v)) return refuse("a metric's value must be finite");
      h.latest = v;
    } else if (!value.is_null()) {
      return refuse("a metric's value must be a number, true, false or null");
    }
    const json& window = m["window"];
    if (!window.is_array() || window.size() > kMaxWindowSamples) return refuse("a window holds at most 1000 samples");
    UnixMillis previous = 0;
    for (const json& sample : window) {
      if (!sample.is_array() || sample.size() != 2 || !sample[1].is_number()) return refuse("malformed sample");
      const auto t = time_of(sample[0]);
      const double v = sample[1].get<double>();
      if (!t || *t > s.now_ || *t < previous || !std::isfinite(v)) return refuse("samples out of order or range");
      previous = *t;
      h.window.emplace_back(*t, v);
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

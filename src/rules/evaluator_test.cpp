#include "rules/evaluator.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace torii::rules {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr UnixMillis kT0 = 1'780'000'000'000;  // a fixed time; no real clock
constexpr UnixMillis kSecond = 1000;
constexpr UnixMillis kMinute = 60 * kSecond;

std::shared_ptr<const RuleDefinition> rule(std::string_view condition, std::string_view extra = "") {
  const std::string text =
      fmt::format(R"j({{"name":"r","condition":"{}"{},"actions":[{{"type":"alert"}}]}})j", condition, extra);
  auto r = parse_rule(text);
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : ::testing::PrintToString(r.error()));
  return std::make_shared<const RuleDefinition>(r ? *r : RuleDefinition{});
}

std::vector<policy::Metric> m(std::string name, policy::MetricValue value) {
  return {policy::Metric{std::move(name), std::move(value)}};
}

TEST(Evaluator, FiresAndClearsOnAComparison) {
  const Evaluator e(rule("temperature > 30"));
  DeviceState s;
  EXPECT_EQ(e.observe(s, m("temperature", 25.0), kT0).transition, Transition::none);
  const Evaluation fired = e.observe(s, m("temperature", 31.5), kT0 + kSecond);
  EXPECT_EQ(fired.transition, Transition::fired);
  EXPECT_TRUE(fired.active);
  EXPECT_EQ(fired.summary, "temperature > 30: 31.5 > 30");
  EXPECT_EQ(e.observe(s, m("temperature", 32.0), kT0 + 2 * kSecond).transition, Transition::none);
  const Evaluation cleared = e.observe(s, m("temperature", 29.0), kT0 + 3 * kSecond);
  EXPECT_EQ(cleared.transition, Transition::cleared);
  EXPECT_FALSE(cleared.active);
}

TEST(Evaluator, IntegersCountAsNumbersStringsAsMissing) {
  const Evaluator e(rule("level >= 3"));
  DeviceState s;
  EXPECT_EQ(e.observe(s, m("level", std::int64_t{3}), kT0).transition, Transition::fired);
  // A string makes the metric missing: the condition is unknown, so the rule clears.
  EXPECT_EQ(e.observe(s, m("level", std::string("high")), kT0 + kSecond).transition, Transition::cleared);
}

TEST(Evaluator, MissingMetricNeverFires) {
  const Evaluator e(rule("humidity < 80 or not humidity < 80"));
  DeviceState s;
  const Evaluation r = e.observe(s, m("temperature", 20.0), kT0);
  EXPECT_EQ(r.transition, Transition::none);
  EXPECT_FALSE(e.tick(s, kT0 + kMinute).active);
}

TEST(Evaluator, DivisionByZeroDoesNotFire) {
  const Evaluator e(rule("100 / load > 1 or not (100 / load > 1)"));
  DeviceState s;
  EXPECT_EQ(e.observe(s, m("load", 0.0), kT0).transition, Transition::none);
  EXPECT_EQ(e.observe(s, m("load", 50.0), kT0 + kSecond).transition, Transition::fired);
}

TEST(Evaluator, WindowAverageEvictsAtTheEdge) {
  const Evaluator e(rule("avg(t, 10s) > 20"));
  DeviceState s;
  EXPECT_EQ(e.observe(s, m("t", 30.0), kT0).transition, Transition::fired);                 // avg 30
  EXPECT_EQ(e.observe(s, m("t", 0.0), kT0 + 5 * kSecond).transition, Transition::cleared);  // avg 15
  // The window is (now - 10 s, now]: at kT0 + 10 s the 30 has left it, so avg(0, 35) = 17.5.
  EXPECT_EQ(e.observe(s, m("t", 35.0), kT0 + 10 * kSecond).transition, Transition::none);

  DeviceState earlier;
  (void)e.observe(earlier, m("t", 30.0), kT0);
  (void)e.observe(earlier, m("t", 0.0), kT0 + 5 * kSecond);
  // One millisecond before the edge the 30 still counts: avg(30, 0, 35) = 21.7.
  EXPECT_EQ(e.observe(earlier, m("t", 35.0), kT0 + 10 * kSecond - 1).transition, Transition::fired);
}

TEST(Evaluator, WindowFunctionsMinMaxCountRate) {
  const Evaluator e(rule("min(t, 1m) < 5 and max(t, 1m) > 50 and count(t, 1m) == 3 and rate(t, 1m) == 2"));
  DeviceState s;
  (void)e.observe(s, m("t", 4.0), kT0);
  (void)e.observe(s, m("t", 60.0), kT0 + 10 * kSecond);
  // rate: (84 - 4) / 40 s = 2 per second.
  const Evaluation r = e.observe(s, m("t", 84.0), kT0 + 40 * kSecond);
  EXPECT_EQ(r.transition, Transition::fired);
  EXPECT_THAT(r.summary, HasSubstr("count(t, 1m) == 3: 3 == 3"));
  // At kT0 + 60 s the 4 leaves: min is 60, count 2.
  EXPECT_EQ(e.tick(s, kT0 + 60 * kSecond - 1).transition, Transition::none);
  EXPECT_EQ(e.tick(s, kT0 + 60 * kSecond).transition, Transition::cleared);
}

// Derived metrics report the window functions' values after each message.
std::map<std::string, double> window_values(const Evaluation& e) { return {e.derived.begin(), e.derived.end()}; }

TEST(Evaluator, EachExpressionReadsItsOwnMetrics) {
  // The condition reads h; the actions t, then h and t, then a metric of the message no
  // expression but this one reads.
  const std::string text = R"j({"name":"r","condition":"h > 1","actions":[
    {"type":"metric","name":"x","value":"t * 2"},{"type":"metric","name":"y","value":"h - t"},
    {"type":"metric","name":"z","value":"avg(a, 1m) + last(h)"}]})j";
  const Evaluator e(std::make_shared<const RuleDefinition>(parse_rule(text).value()));
  DeviceState s;
  const auto r = e.observe(s, {policy::Metric{"t", 10.0}, policy::Metric{"h", 3.0}, policy::Metric{"a", 100.0}}, kT0);
  EXPECT_TRUE(r.active);
  EXPECT_THAT(r.derived, ElementsAre(Pair("x", 20.0), Pair("y", -7.0), Pair("z", 103.0)));
  // A message without a usable h: the condition and y are unknown, x as it was.
  const auto later = e.observe(s, {policy::Metric{"t", 4.0}, policy::Metric{"h", std::string("off")}}, kT0 + kSecond);
  EXPECT_THAT(later.derived, ElementsAre(Pair("x", 8.0)));
}

TEST(Evaluator, ARateNeedsTwoSamplesAtDifferentTimes) {
  const std::string text = R"j({"name":"r","condition":"t > 100","actions":[
    {"type":"metric","name":"slope","value":"rate(t, 1m)"}]})j";
  const Evaluator e(std::make_shared<const RuleDefinition>(parse_rule(text).value()));
  DeviceState s;
  EXPECT_TRUE(e.observe(s, m("t", 1.0), kT0).derived.empty());      // one sample: unknown
  EXPECT_TRUE(e.observe(s, m("t", 3.0), kT0).derived.empty());      // two, at one time
  auto v = window_values(e.observe(s, m("t", 5.0), kT0 + 500));     // same 1 s bucket
  EXPECT_DOUBLE_EQ(v["slope"], 8.0);                                // (5 - 1) / 0.5 s
  v = window_values(e.observe(s, m("t", 6.0), kT0 + 2 * kSecond));  // a second bucket
  EXPECT_DOUBLE_EQ(v["slope"], 2.5);                                // (6 - 1) / 2 s
  DeviceState t;
  (void)e.observe(t, m("t", 1.0), kT0 + 900);
  v = window_values(e.observe(t, m("t", 4.0), kT0 + 61 * kSecond));  // the first has left
  EXPECT_TRUE(v.empty());
  v = window_values(e.observe(t, m("t", 7.0), kT0 + 62 * kSecond + 500));  // one per bucket
  EXPECT_DOUBLE_EQ(v["slope"], 2.0);                                       // (7 - 4) / 1.5 s
}

TEST(Evaluator, AWindowKeepsBucketsOfSamplesWhateverTheRate) {
  const std::string text = R"j({"name":"r","condition":"count(t, 1m) > 5950","actions":[
    {"type":"metric","name":"n","value":"count(t, 1m)"},{"type":"metric","name":"lo","value":"min(t, 1m)"},
    {"type":"metric","name":"hi","value":"max(t, 1m)"},{"type":"metric","name":"mean","value":"avg(t, 1m)"},
    {"type":"metric","name":"slope","value":"rate(t, 1m)"}]})j";
  const Evaluator e(std::make_shared<const RuleDefinition>(parse_rule(text).value()));
  DeviceState s;
  // 100 samples a second for a minute (value i at i * 10 ms): buckets of 1 s, 100 samples each.
  Evaluation last;
  for (int i = 0; i < 6000; ++i) last = e.observe(s, m("t", static_cast<double>(i)), kT0 + i * 10);
  EXPECT_TRUE(last.active);
  auto v = window_values(last);
  EXPECT_EQ(v["n"], 6000);  // every sample counts: none is dropped at a high rate
  EXPECT_EQ(v["lo"], 0);
  EXPECT_EQ(v["hi"], 5999);
  EXPECT_NEAR(v["mean"], 2999.5, 1e-6);
  EXPECT_NEAR(v["slope"], 5999 / 59.99, 1e-9);  // (newest - oldest) / seconds between them
  // What is kept, and saved, is 60 buckets, not 6000 samples.
  const auto saved = nlohmann::json::parse(serialize(s));
  const auto& buckets = saved["metrics"]["t"]["windows"]["60000"];
  ASSERT_EQ(buckets.size(), 60U);
  // [age of the first, age of the last, count, first, last, mean, min, max], ages before now
  EXPECT_EQ(buckets[0][0], 59'990);
  EXPECT_EQ(buckets[0][1], 59'000);
  EXPECT_EQ(buckets[0][2], 100);
  EXPECT_EQ(buckets[0][3], 0.0);
  EXPECT_EQ(buckets[0][4], 99.0);
  EXPECT_NEAR(buckets[0][5].get<double>(), 49.5, 1e-9);
  EXPECT_EQ(buckets[0][6], 0.0);
  EXPECT_EQ(buckets[0][7], 99.0);
  // A bucket leaves the window with its oldest sample: at kT0 + 1 min the first second's 100.
  EXPECT_EQ(e.tick(s, kT0 + kMinute - 1).transition, Transition::none);
  EXPECT_EQ(e.tick(s, kT0 + kMinute).transition, Transition::cleared);  // 5900 left
  v = window_values(e.observe(s, m("t", 1.0), kT0 + kMinute + 10));
  EXPECT_EQ(v["n"], 5901);
  EXPECT_EQ(v["lo"], 1);
}

// A window keeps what its older buckets add up to between evaluations, adding the buckets that
// join and taking away those that leave. A state saved and restored before each message has no
// such sums and goes through every bucket: both must give the same count, minimum, maximum and
// rate, to the bit, and the same mean but for rounding, whatever the samples and their spacing.
TEST(Evaluator, AWindowsKeptSumsGiveWhatGoingThroughItsBucketsGives) {
  const std::string text = R"j({"name":"r","condition":"avg(t, 10s) > 50","actions":[
    {"type":"metric","name":"n","value":"count(t, 10s)"},{"type":"metric","name":"lo","value":"min(t, 10s)"},
    {"type":"metric","name":"hi","value":"max(t, 10s)"},{"type":"metric","name":"mean","value":"avg(t, 10s)"},
    {"type":"metric","name":"slope","value":"rate(t, 10s)"},{"type":"metric","name":"m30","value":"avg(t, 30s)"}]})j";
  const Evaluator e(std::make_shared<const RuleDefinition>(parse_rule(text).value()));
  DeviceState kept;
  std::uint64_t seed = 42;
  const auto next = [&seed] {  // a fixed pseudo-random sequence (an LCG)
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return seed >> 33;
  };
  UnixMillis at = kT0;
  int compared = 0;
  for (int i = 0; i < 3000; ++i) {
    // Mostly close together (many samples to a bucket), now and then a gap that empties a window.
    at += next() % 20 == 0 ? static_cast<UnixMillis>(next() % 15'000) : static_cast<UnixMillis>(next() % 400);
    const double value = static_cast<double>(next() % 10'000) / 100.0;
    auto fresh = restore(serialize(kept));
    ASSERT_TRUE(fresh.has_value()) << fresh.error();
    const auto a = e.observe(kept, m("t", value), at);
    const auto b = e.observe(*fresh, m("t", value), at);
    ASSERT_EQ(a.derived.size(), b.derived.size()) << "sample " << i;
    for (std::size_t k = 0; k < a.derived.size(); ++k) {
      const auto& [name, value_a] = a.derived[k];
      ASSERT_EQ(name, b.derived[k].first) << "sample " << i;
      const double value_b = b.derived[k].second;
      if (name == "mean" || name == "m30") {
        ASSERT_NEAR(value_a, value_b, 1e-12 * std::max(1.0, std::abs(value_b))) << name << ", sample " << i;
      } else {
        ASSERT_EQ(value_a, value_b) << name << ", sample " << i;
      }
    }
    ASSERT_EQ(a.active, b.active) << "sample " << i;
    compared += a.derived.size() == 6 ? 1 : 0;
    if (i % 7 == 0) {  // time passing without a message drops buckets too
      at += static_cast<UnixMillis>(next() % 3'000);
      fresh = restore(serialize(kept));
      ASSERT_TRUE(fresh.has_value());
      EXPECT_EQ(e.tick(kept, at).active, e.tick(*fresh, at).active);
    }
  }
  EXPECT_GT(compared, 2500);  // the windows held samples (a rate needs two) nearly throughout
}

TEST(Evaluator, EachWindowOfAMetricHasItsOwnBuckets) {
  const std::string text = R"j({"name":"r","condition":"t > 100","actions":[
    {"type":"metric","name":"short","value":"count(t, 10s)"},{"type":"metric","name":"long","value":"count(t, 1h)"}]})j";
  const Evaluator e(std::make_shared<const RuleDefinition>(parse_rule(text).value()));
  DeviceState s;
  // One sample a second for two minutes: the 10 s window's buckets are 166 ms wide (one sample
  // each, exact); the hour's are 1 min wide.
  Evaluation last;
  for (int i = 0; i < 120; ++i) last = e.observe(s, m("t", 1.0), kT0 + i * kSecond);
  EXPECT_EQ(window_values(last)["short"], 10);
  EXPECT_EQ(window_values(last)["long"], 120);
}

TEST(Evaluator, AbsenceFiresThroughTick) {
  const Evaluator e(rule("absent(5m)", R"j(,"clear_for":"0s")j"));
  DeviceState s;
  EXPECT_EQ(e.observe(s, m("t", 1.0), kT0).transition, Transition::none);
  EXPECT_EQ(e.next_deadline(s), kT0 + 5 * kMinute);
  EXPECT_EQ(e.tick(s, kT0 + 5 * kMinute - 1).transition, Transition::none);
  const Evaluation fired = e.tick(s, kT0 + 5 * kMinute);
  EXPECT_EQ(fired.transition, Transition::fired);
  EXPECT_EQ(fired.summary, "absent(5m): true");
  EXPECT_EQ(e.observe(s, m("t", 1.0), kT0 + 6 * kMinute).transition, Transition::cleared);
}

TEST(Evaluator, AbsenceCountsFromTheFirstTickWithoutMessages) {
  const Evaluator e(rule("absent(1m)"));
  DeviceState s;
  EXPECT_EQ(e.tick(s, kT0).transition, Transition::none);
  EXPECT_EQ(e.tick(s, kT0 + kMinute).transition, Transition::fired);
}

// A value oscillating around the threshold with hold and clear_hold fires once.
TEST(Evaluator, HysteresisPreventsFlapping) {
  const Evaluator e(rule("t > 30", R"j(,"for":"30s","clear_for":"1m")j"));
  DeviceState s;
  std::vector<Transition> transitions;
  // Every 10 s: above for 20 s, below for 10 s: never 30 s above in a row.
  for (int i = 0; i < 30; ++i) {
    const double v = i % 3 == 2 ? 29.0 : 31.0;
    const auto r = e.observe(s, m("t", v), kT0 + i * 10 * kSecond);
    if (r.transition != Transition::none) transitions.push_back(r.transition);
  }
  EXPECT_THAT(transitions, IsEmpty());
  // Above for good: fires once, 30 s after it was first seen above.
  UnixMillis t = kT0 + 300 * kSecond;
  std::vector<std::pair<UnixMillis, Transition>> seen;
  for (int i = 0; i < 10; ++i, t += 10 * kSecond) {
    const auto r = e.observe(s, m("t", 31.0), t);
    if (r.transition != Transition::none) seen.emplace_back(t, r.transition);
  }
  EXPECT_THAT(seen, ElementsAre(Pair(kT0 + 330 * kSecond, Transition::fired)));
  // Now oscillating again: below for 20 s at most, so it stays active.
  seen.clear();
  for (int i = 0; i < 30; ++i, t += 10 * kSecond) {
    const double v = i % 3 == 2 ? 31.0 : 29.0;
    const auto r = e.observe(s, m("t", v), t);
    if (r.transition != Transition::none) seen.emplace_back(t, r.transition);
  }
  EXPECT_THAT(seen, IsEmpty());
  EXPECT_TRUE(s.active());
}

TEST(Evaluator, HoldCompletesThroughTick) {
  const Evaluator e(rule("t > 30", R"j(,"for":"30s")j"));
  DeviceState s;
  EXPECT_EQ(e.observe(s, m("t", 31.0), kT0).transition, Transition::none);
  EXPECT_EQ(s.pending_since(), kT0);
  EXPECT_EQ(e.next_deadline(s), kT0 + 30 * kSecond);
  EXPECT_EQ(e.tick(s, kT0 + 29 * kSecond).transition, Transition::none);
  EXPECT_EQ(e.tick(s, kT0 + 30 * kSecond).transition, Transition::fired);
  EXPECT_FALSE(s.pending_since().has_value());
}

TEST(Evaluator, TimeNeverRunsBackwards) {
  const Evaluator e(rule("avg(t, 10s) > 0"));
  DeviceState s;
  (void)e.observe(s, m("t", 1.0), kT0 + 5 * kSecond);
  (void)e.observe(s, m("t", 2.0), kT0);  // earlier: counted at kT0 + 5 s
  EXPECT_EQ(s.now(), kT0 + 5 * kSecond);
  EXPECT_EQ(s.last_message_at(), kT0 + 5 * kSecond);
}

TEST(Evaluator, DerivedMetrics) {
  const std::string text = R"j({"name":"r","condition":"t > 100","actions":[
    {"type":"metric","name":"t_avg","value":"avg(t, 1m)"},{"type":"metric","name":"t_f","value":"t * 9 / 5 + 32"},
    {"type":"metric","name":"h_x","value":"h * 2"}]})j";
  const Evaluator e(std::make_shared<const RuleDefinition>(parse_rule(text).value()));
  DeviceState s;
  (void)e.observe(s, m("t", 10.0), kT0);
  const Evaluation r = e.observe(s, m("t", 20.0), kT0 + kSecond);
  // h has no value: its derived metric is left out.
  EXPECT_THAT(r.derived, ElementsAre(Pair("t_avg", 15.0), Pair("t_f", 68.0)));
  EXPECT_THAT(e.tick(s, kT0 + 2 * kSecond).derived, IsEmpty());
}

TEST(Evaluator, NextDeadlineIsWhenASampleLeavesItsWindow) {
  const Evaluator e(rule("avg(t, 10s) > 1 and max(t, 1m) < 100"));
  DeviceState s;
  EXPECT_FALSE(e.next_deadline(s).has_value());
  (void)e.observe(s, m("t", 5.0), kT0);
  (void)e.observe(s, m("t", 6.0), kT0 + 4 * kSecond);
  EXPECT_EQ(e.next_deadline(s), kT0 + 10 * kSecond);
  (void)e.tick(s, kT0 + 10 * kSecond);
  EXPECT_EQ(e.next_deadline(s), kT0 + 14 * kSecond);
  (void)e.tick(s, kT0 + 14 * kSecond);
  EXPECT_EQ(e.next_deadline(s), kT0 + 60 * kSecond);  // the 1-minute window still holds the 5
}

TEST(DeviceStateStore, StateOfAnEditedRuleDropsWhatItNoLongerReads) {
  const Evaluator before(rule("avg(t, 1m) > 1 and h > 1"));
  DeviceState s;
  (void)before.observe(s, {policy::Metric{"t", 2.0}, policy::Metric{"h", 2.0}}, kT0);
  EXPECT_TRUE(s.active());
  const Evaluator after(rule("h > 1"));
  const Evaluation r = after.tick(s, kT0 + kSecond);
  EXPECT_EQ(r.transition, Transition::none);
  EXPECT_THAT(serialize(s), Not(HasSubstr(R"j("t":)j")));
  EXPECT_THAT(serialize(s), HasSubstr(R"j("h":{"at":1780000000000,"value":2.0,"windows":{}})j"));
}

TEST(DeviceStateStore, SerializeRestoreRoundTrip) {
  const Evaluator e(rule("avg(t, 1m) > 30 and door == false", R"j(,"for":"30s")j"));
  DeviceState s;
  EXPECT_EQ(serialize(restore(serialize(s)).value()), serialize(s));
  (void)e.observe(s, {policy::Metric{"t", 31.0}, policy::Metric{"door", false}}, kT0);
  (void)e.observe(s, m("t", 35.5), kT0 + 10 * kSecond);
  ASSERT_TRUE(s.pending_since().has_value());
  const std::string saved = serialize(s);
  auto restored = restore(saved);
  ASSERT_TRUE(restored.has_value()) << restored.error();
  EXPECT_EQ(*restored, s);
  // The restored state keeps the timing: it fires 30 s after the condition first held.
  EXPECT_EQ(e.tick(*restored, kT0 + 30 * kSecond).transition, Transition::fired);
}

TEST(DeviceStateStore, RestoreRefusesMalformedOrOversized) {
  const Evaluator e(rule("avg(t, 1m) > 30"));
  DeviceState s;
  (void)e.observe(s, m("t", 31.0), kT0);
  const std::string good = serialize(s);
  ASSERT_TRUE(restore(good).has_value());
  const auto replaced = [&good](std::string_view from, std::string_view to) {
    std::string out = good;
    const auto at = out.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) out.replace(at, from.size(), to);
    return out;
  };
  const std::vector<std::string> bad = {
      "",
      "not json",
      "[]",
      "{}",
      replaced(R"j("v":2)j", R"j("v":3)j"),
      replaced(R"j("v":2)j", R"j("v":1)j"),  // format 1 had "window"
      replaced(R"j("active":true)j", R"j("active":1)j"),
      replaced(R"j("now":1780000000000)j", R"j("now":-5)j"),
      replaced(R"j("now":1780000000000)j", R"j("now":1)j"),  // last after now
      replaced(R"j("now":1780000000000)j", R"j("now":1e300)j"),
      replaced(R"j("metrics":{)j", R"j("extra":1,"metrics":{)j"),
      replaced(R"j("t":)j", R"j("T":)j"),
      replaced(R"j([0,31.0])j", R"j([0,"31"])j"),
      replaced(R"j([0,31.0])j", R"j([0,31.0,1])j"),
      replaced(R"j("value":31.0)j", R"j("value":"x")j"),
      replaced(R"j("60000":)j", R"j("61":)j"),  // not a window duration
      replaced(R"j("60000":)j", R"j("sixty":)j"),
      replaced(R"j("60000":[)j", R"j("0":[[1,2.0]],"60000":[)j"),  // format-1 samples beside windows
      replaced(R"j("60000":[[0,31.0]])j", R"j("60000":[])j"),
      // Ages: milliseconds before now, so none greater than now. Out of order, in one bucket, or
      // already out of the window:
      replaced(R"j([0,31.0])j", R"j([1780000000001,31.0])j"),
      replaced(R"j([[0,31.0]])j", R"j([[0,31.0],[1000,2.0]])j"),
      replaced(R"j([[0,31.0]])j", R"j([[1000,2.0],[500,31.0]])j"),
      replaced(R"j([[0,31.0]])j", R"j([[60000,2.0],[0,31.0]])j"),
      // The eight-element form: at least two samples, the first no later than the last, in one
      // bucket, values within min and max.
      replaced(R"j([0,31.0])j", R"j([0,0,1,31.0,31.0,31.0,31.0,31.0])j"),
      replaced(R"j([0,31.0])j", R"j([0,100,2,30.0,31.0,30.5,30.0,31.0])j"),
      replaced(R"j([0,31.0])j", R"j([100,0,2,30.0,31.0,30.5,30.0,31.0])j"),
      replaced(R"j([0,31.0])j", R"j([0,0,2,30.0,31.0,32.0,30.0,31.0])j"),
      replaced(R"j([0,31.0])j", R"j([0,0,-2,30.0,31.0,30.5,30.0,31.0])j"),
  };
  for (const std::string& text : bad) EXPECT_FALSE(restore(text).has_value()) << text;
  EXPECT_TRUE(restore(replaced(R"j([0,31.0])j", R"j([0,0,2,30.0,31.0,30.5,30.0,31.0])j")).has_value());
  EXPECT_THAT(restore(std::string(kMaxStateBytes + 1, ' ')).error(), HasSubstr("larger than"));
}

// States serialised with one WindowTable write each distinct window once; each comes back
// from the table to the states that name it, checked as a window written in full.
TEST(DeviceStateStore, EqualWindowsOfSeveralStatesAreWrittenOnceAndComeBackToEach) {
  const Evaluator warm(rule("avg(t, 1m) > 30"));
  const Evaluator hot(rule("avg(t, 1m) > 35 or max(t, 30s) > 40"));
  DeviceState a;
  DeviceState b;
  DeviceState late;  // its minute's window holds one sample less
  for (int i = 0; i < 5; ++i) {
    const auto at = kT0 + i * 2 * kSecond;
    (void)warm.observe(a, m("t", 31.0 + i), at);
    (void)hot.observe(b, m("t", 31.0 + i), at);
    if (i > 0) (void)warm.observe(late, m("t", 31.0 + i), at);
  }
  WindowTable table;
  std::string text_a;
  std::string text_b;
  std::string text_late;
  serialize(a, text_a, &table);
  serialize(b, text_b, &table);
  serialize(late, text_late, &table);
  EXPECT_EQ(table.size(), 3U) << "the minute's, the half minute's, and the minute's of the state begun later";
  EXPECT_THAT(text_a, HasSubstr(R"j("windows":{"60000":0})j"));
  EXPECT_THAT(text_b, HasSubstr(R"j("windows":{"30000":1,"60000":0})j"));
  EXPECT_THAT(text_late, HasSubstr(R"j("windows":{"60000":2})j"));
  std::string list;
  table.write(list);
  EXPECT_THAT(list, StartsWith(R"j([{"now":1780000008000,"buckets":[[8000,31.0],)j"));

  auto saved = SavedWindows::read(nlohmann::json::parse(list));
  ASSERT_TRUE(saved.has_value()) << saved.error();
  EXPECT_EQ(saved->size(), 3U);
  for (const auto& [text, state] : {std::pair{text_a, a}, std::pair{text_b, b}, std::pair{text_late, late}}) {
    auto restored = restore(text, &*saved);
    ASSERT_TRUE(restored.has_value()) << restored.error();
    EXPECT_EQ(*restored, state);
  }
  EXPECT_THAT(restore(text_a).error(), HasSubstr("names no saved window")) << "an index needs its table";
  const auto replaced = [](std::string text, std::string_view from, std::string_view to) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  };
  EXPECT_FALSE(restore(replaced(text_a, R"j("60000":0)j", R"j("60000":3)j"), &*saved).has_value());
  EXPECT_FALSE(restore(replaced(text_a, R"j("60000":0)j", R"j("60000":-1)j"), &*saved).has_value());
  // The half minute's buckets do not all fit in a window of 1 s.
  EXPECT_FALSE(restore(replaced(text_b, R"j("30000":1)j", R"j("1000":1)j"), &*saved).has_value());
  // A state whose now is two minutes on: the table's buckets are out of its minute's window.
  EXPECT_FALSE(restore(replaced(text_a, R"j("now":1780000008000)j", R"j("now":1780000128000)j"), &*saved).has_value());
}

// The states of one device's rules share a window of a metric and duration through a pool:
// a message goes into it once, however many rules see it, and a state that comes later takes
// it as it is. A copy of a state shares nothing.
TEST(WindowPoolTest, StatesOfADeviceShareAWindowThatTakesEachMessageOnce) {
  const Evaluator three(rule("count(t, 1m) >= 3"));
  const Evaluator warm(rule("avg(t, 1m) > 30"));
  WindowPool pool;
  auto a = std::make_unique<DeviceState>();
  auto b = std::make_unique<DeviceState>();
  std::uint64_t message = 0;
  const auto send = [&](DeviceState& state, const Evaluator& e, double value, UnixMillis at) {
    return e.observe(state, m("t", value), at, Sharing{&pool, message}).transition;
  };
  for (int i = 0; i < 2; ++i) {
    ++message;
    EXPECT_EQ(send(*a, three, 31.0, kT0 + i * kSecond), Transition::none) << "counted once per message";
    EXPECT_EQ(send(*b, warm, 31.0, kT0 + i * kSecond), i == 0 ? Transition::fired : Transition::none);
  }
  EXPECT_EQ(pool.size(), 1U);
  ++message;
  EXPECT_EQ(send(*b, warm, 29.0, kT0 + 2 * kSecond), Transition::none) << "the average is 30.33";
  EXPECT_EQ(send(*a, three, 29.0, kT0 + 2 * kSecond), Transition::fired);
  EXPECT_EQ(serialize(*a).substr(serialize(*a).find("\"windows\"")),
            serialize(*b).substr(serialize(*b).find("\"windows\"")));

  DeviceState later;  // a rule that starts watching the device now
  ++message;
  EXPECT_EQ(send(later, three, 10.0, kT0 + 3 * kSecond), Transition::fired) << "four messages in its window";
  EXPECT_EQ(send(*a, three, 10.0, kT0 + 3 * kSecond), Transition::none);
  EXPECT_EQ(send(*b, warm, 10.0, kT0 + 3 * kSecond), Transition::cleared) << "the average is 25.25";

  DeviceState copy = *a;
  const std::string before = serialize(*a);
  (void)three.observe(copy, m("t", 50.0), kT0 + 4 * kSecond);
  EXPECT_EQ(serialize(*a), before) << "the copy's window is its own";
  EXPECT_NE(serialize(copy), before);

  a.reset();
  b.reset();
  EXPECT_EQ(pool.size(), 1U) << "held by the later state";
  later = DeviceState();
  EXPECT_EQ(pool.size(), 0U);
}

// States restored from one table share the window they name, as they did when saved.
TEST(WindowPoolTest, StatesRestoredFromATableShareTheWindowTheyName) {
  const Evaluator warm(rule("avg(t, 1m) > 30"));
  WindowPool pool;
  DeviceState a;
  DeviceState b;
  (void)warm.observe(a, m("t", 31.0), kT0, Sharing{&pool, 1});
  (void)warm.observe(b, m("t", 31.0), kT0, Sharing{&pool, 1});
  WindowTable table;
  std::string text_a;
  std::string text_b;
  serialize(a, text_a, &table);
  serialize(b, text_b, &table);
  ASSERT_EQ(table.size(), 1U);
  std::string list;
  table.write(list);
  auto saved = SavedWindows::read(nlohmann::json::parse(list));
  ASSERT_TRUE(saved.has_value()) << saved.error();
  auto restored_a = restore(text_a, &*saved);
  auto restored_b = restore(text_b, &*saved);
  ASSERT_TRUE(restored_a && restored_b);
  WindowPool after;  // the server's, after a restart
  after.adopt(*restored_a);
  after.adopt(*restored_b);
  EXPECT_EQ(after.size(), 1U);
  // A message one state's window takes is in the other's: they are one.
  EXPECT_EQ(warm.observe(*restored_a, m("t", 20.0), kT0 + kSecond, Sharing{&after, 1}).transition, Transition::cleared);
  EXPECT_EQ(warm.tick(*restored_b, kT0 + kSecond, &after).transition, Transition::cleared) << "the average is 25.5";
}

TEST(DeviceStateStore, SavedWindowsRefuseWhatATableDoesNotWrite) {
  const std::vector<std::string> bad = {
      "{}",
      R"j([{"now":1780000000000}])j",
      R"j([{"now":1780000000000,"buckets":[],"extra":1}])j",
      R"j([{"now":-1,"buckets":[]}])j",
      R"j([{"now":1780000000000,"buckets":{}}])j",
      R"j([{"now":1780000000000,"buckets":[[0,"31"]]}])j",
      R"j([{"now":1000,"buckets":[[1001,31.0]]}])j",  // an age before time began
      R"j([{"now":1780000000000,"buckets":[[0,0,1,31.0,31.0,31.0,31.0,31.0]]}])j",
  };
  for (const std::string& text : bad) EXPECT_FALSE(SavedWindows::read(nlohmann::json::parse(text)).has_value()) << text;
  std::string too_many = R"j([{"now":1780000000000,"buckets":[)j";
  for (int i = 0; i < kWindowBuckets + 3; ++i) too_many += (i == 0 ? "" : ",") + std::string("[0,1.0]");
  too_many += "]}]";
  EXPECT_FALSE(SavedWindows::read(nlohmann::json::parse(too_many)).has_value());
  const auto empty = SavedWindows::read(nlohmann::json::array());
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->size(), 0U);
}

TEST(DeviceStateStore, AFormat1StateComesBackWithItsSamplesInTheRulesWindows) {
  // As version 1 saved it: samples, not buckets.
  const std::string saved = R"j({"v":1,"active":true,"pending":null,"last":1780000020000,"start":1780000000000,
    "now":1780000020000,"metrics":{"t":{"at":1780000020000,"value":40.0,"window":[[1780000000000,10.0],
    [1780000010000,40.0],[1780000020000,40.0]]}}})j";
  auto restored = restore(saved);
  ASSERT_TRUE(restored.has_value()) << restored.error();
  EXPECT_EQ(restore(serialize(*restored)).value(), *restored);  // as written again: the samples kept apart
  const std::string text = R"j({"name":"r","condition":"avg(t, 15s) > 30","actions":[
    {"type":"metric","name":"n","value":"count(t, 1m)"},{"type":"metric","name":"recent","value":"avg(t, 15s)"}]})j";
  const Evaluator e(std::make_shared<const RuleDefinition>(parse_rule(text).value()));
  // The 10.0 is in the minute's window, not in the 15 seconds'.
  EXPECT_EQ(e.next_deadline(*restored), kT0 + 25 * kSecond);  // the 40 of kT0 + 10 s leaves the 15 s window
  const Evaluation r = e.observe(*restored, m("t", 40.0), kT0 + 21 * kSecond);
  EXPECT_EQ(r.transition, Transition::none);
  EXPECT_THAT(r.derived, ElementsAre(Pair("n", 4.0), Pair("recent", 40.0)));
  EXPECT_THAT(serialize(*restored), HasSubstr(R"j("windows":{"15000":[[11000,40.0],)j"));
}

TEST(DryRun, ReportsWhenARuleWouldHaveFired) {
  const auto r = rule("avg(temperature, 2m) > 30", R"j(,"for":"1m","clear_for":"1m")j");
  std::vector<Sample> samples;
  // One sample a minute for an hour: 20 degrees, then 40 from minute 10 to 19, then 20 again.
  for (int i = 0; i < 60; ++i) {
    const double v = i >= 10 && i < 20 ? 40.0 : 20.0;
    samples.push_back({kT0 + i * kMinute, m("temperature", v)});
  }
  const auto events = dry_run(*r, samples, kT0 + 60 * kMinute);
  ASSERT_THAT(events, SizeIs(2));
  // avg over (now - 2m, now]: at minute 10 it is (20 + 40) / 2 = 30, not above; at 11, 40. Held 1 min: 12.
  EXPECT_EQ(events[0].at, kT0 + 12 * kMinute);
  EXPECT_EQ(events[0].transition, Transition::fired);
  EXPECT_THAT(events[0].summary, HasSubstr("avg(temperature, 2m) > 30: 40 > 30"));
  // At 20: (40 + 20) / 2 = 30, not above; held 1 min: cleared at 21.
  EXPECT_EQ(events[1].at, kT0 + 21 * kMinute);
  EXPECT_EQ(events[1].transition, Transition::cleared);
}

TEST(DryRun, AbsenceBetweenSamples) {
  const auto r = rule("absent(5m)");
  const std::vector<Sample> samples = {{kT0, m("t", 1.0)}, {kT0 + 20 * kMinute, m("t", 1.0)}};
  const auto events = dry_run(*r, samples, kT0 + 30 * kMinute);
  ASSERT_THAT(events, SizeIs(3));
  EXPECT_EQ(events[0], (DryRunEvent{kT0 + 5 * kMinute, Transition::fired, "absent(5m): true"}));
  EXPECT_EQ(events[1].at, kT0 + 20 * kMinute);
  EXPECT_EQ(events[1].transition, Transition::cleared);
  EXPECT_EQ(events[2].at, kT0 + 25 * kMinute);
  EXPECT_THAT(dry_run(*r, {}, kT0), IsEmpty());
}

}  // namespace
}  // namespace torii::rules

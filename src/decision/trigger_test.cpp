#include "decision/trigger.h"

#include <functional>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "decision/rule_book.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::decision {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class TriggerTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(store_->device_profiles().put(
        {"env", "org-1", "Environment", std::string(policy::sample_environment_profile_json()), 1, 0}));
    for (const auto& [id, org, profile] : {std::tuple{"fan-1", "org-1", "env"}, std::tuple{"sensor-1", "org-1", "env"},
                                           std::tuple{"plain-1", "org-1", ""}, std::tuple{"far-1", "org-2", "env"}}) {
      store::DeviceRecord d;
      d.id = id;
      d.organisation_id = org;
      d.name = id;
      d.profile_id = profile;
      ASSERT_TRUE(store_->devices().insert(d));
    }
    book_ = std::make_unique<RuleBook>(*store_, *keys_, clock_, random_);
    trigger_ = make_trigger();
  }

  std::unique_ptr<Trigger> make_trigger() {
    TriggerActions actions;
    actions.alert = [this](const Firing& f) {
      seen_.push_back(std::string(f.transition == rules::Transition::fired ? "alert+" : "alert-") + ":" + f.device_id);
    };
    actions.command = [this](const Firing& f, const rules::CommandAction& c) {
      seen_.push_back("command:" + c.device_id + ":" + c.params.dump() + ":" + f.author);
    };
    actions.security_event = [this](events::SecurityEvent e) { events_.push_back(e.action + ":" + e.object); };
    actions.derived = [this](const DerivedValues& d) {
      std::string line = "derived:" + d.organisation_id + ":" + d.device_id + ":" + d.rule_id + ":" +
                         std::string(d.message_id) + ":" + std::to_string(d.at);
      for (const auto& [name, value] : d.values) line += ":" + name + "=" + std::to_string(value);
      seen_.push_back(line);
    };
    return std::make_unique<Trigger>(*store_, *keys_, clock_, std::move(actions));
  }

  std::string create(std::string_view definition) {
    auto outcome = book_->create({"user:op-1", "org-1", identity::builtin_role_permissions(identity::kRoleOperator)},
                                 definition, true);
    EXPECT_TRUE(outcome && outcome->rule) << (outcome ? "" : outcome.error().message);
    if (!outcome || !outcome->rule) return {};
    EXPECT_TRUE(trigger_->reload(outcome->rule->id));
    return outcome->rule->id;
  }

  void send(const std::string& device, double temperature, const std::string& org = "org-1",
            const std::string& profile = "env") {
    const std::vector<policy::Metric> metrics{{"temperature", temperature}};
    trigger_->observe({org, device, profile, "default", metrics, to_unix_millis(clock_.now())});
  }

  // Replaces a device's tags, as the console or the CLI does, and tells the running rules.
  void tag(const std::string& device, const std::vector<std::string>& tags) {
    ASSERT_TRUE(store_->devices().set_tags(device, tags));
    auto record = store_->devices().find(device);
    ASSERT_TRUE(record && *record);
    trigger_->device_changed(**record);
  }

  // The saved rows of rule states, each opened and parsed (device id → its JSON).
  std::map<std::string, nlohmann::json> saved_rows() {
    std::map<std::string, nlohmann::json> out;
    auto rows = store_->rules().device_states();
    EXPECT_TRUE(rows);
    if (!rows) return out;
    for (const auto& r : *rows) {
      auto plain = keys_->open(r.key_id, r.sealed, device_rule_states_associated_data(r.device_id));
      EXPECT_TRUE(plain) << r.device_id;
      if (plain) out[r.device_id] = nlohmann::json::parse(to_string(plain->view()), nullptr, false);
    }
    return out;
  }

  // Seals each row again as `edit` leaves it and stores it in place of the saved one.
  void rewrite_rows(const std::function<void(nlohmann::json&)>& edit) {
    std::vector<store::DeviceRuleStatesRecord> rewritten;
    for (auto& [device, saved] : saved_rows()) {
      edit(saved);
      const auto associated = device_rule_states_associated_data(device);
      auto sealed = keys_->seal_for_device(device, as_bytes(saved.dump()), associated);
      ASSERT_TRUE(sealed);
      rewritten.push_back({device, keys::device_key_id(device), std::move(*sealed), to_unix_millis(clock_.now())});
    }
    ASSERT_TRUE(store_->rules().save_device_states(rewritten));
  }

  std::unique_ptr<RuleBook> book_;
  std::unique_ptr<Trigger> trigger_;
  std::vector<std::string> seen_;
  std::vector<std::string> events_;
};

TEST_F(TriggerTest, ARuleFiresOnceWhileItsConditionHoldsAndClearsWhenItStops) {
  const auto id = create(R"({"name":"hot","selector":{"profiles":["env"]},"condition":"temperature > 30",
    "actions":[{"type":"alert"},
               {"type":"command","device":"fan-1","command":"set_actuator","params":{"on":true}},
               {"type":"command","device":"fan-1","command":"set_actuator","params":{"on":false},"on":"clear"}]})");
  send("sensor-1", 25);
  EXPECT_THAT(seen_, IsEmpty());
  for (const double t : {31.0, 35.0, 40.0}) {
    clock_.advance(1s);
    send("sensor-1", t);
  }
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", R"(command:fan-1:{"on":true}:user:op-1)"));
  clock_.advance(1s);
  send("sensor-1", 20);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", R"(command:fan-1:{"on":true}:user:op-1)", "alert-:sensor-1",
                                 R"(command:fan-1:{"on":false}:user:op-1)"));
  EXPECT_THAT(events_, ElementsAre("rule.fired:device:sensor-1", "rule.cleared:device:sensor-1"));
  EXPECT_EQ(trigger_->counters().fired, 1U);
  EXPECT_EQ(trigger_->counters().cleared, 1U);
  // The firing time is written on the state writer's thread.
  ASSERT_TRUE(trigger_->flush());
  auto stored = store_->rules().find(id);
  ASSERT_TRUE(stored && *stored);
  EXPECT_TRUE((*stored)->last_fired_at.has_value());
}

// Which rules a device's message meets is worked out once and kept with the device: each
// change (a rule added or removed, the device's tags, a message under another profile) must
// show at its next message.
TEST_F(TriggerTest, TheRulesAMessageMeetsFollowRulesTagsAndProfile) {
  const auto evaluated = [this](const std::string& profile = "env") {
    const auto before = trigger_->counters().evaluations;
    clock_.advance(1s);
    send("sensor-1", 31, "org-1", profile);
    return trigger_->counters().evaluations - before;
  };
  const auto by_profile = create(R"({"name":"env hot","selector":{"profiles":["env"]},"condition":"temperature > 30",
    "actions":[{"type":"alert"}]})");
  EXPECT_EQ(evaluated(), 1U);
  EXPECT_EQ(evaluated(), 1U);  // the same rules, from what was kept
  create(R"({"name":"room hot","selector":{"tags":["hot-room"]},"condition":"temperature > 30",
    "actions":[{"type":"alert"}]})");
  EXPECT_EQ(evaluated(), 1U);  // sensor-1 has no such tag
  tag("sensor-1", {"hot-room"});
  EXPECT_EQ(evaluated(), 2U);
  tag("sensor-1", {});
  EXPECT_EQ(evaluated(), 1U);
  EXPECT_EQ(evaluated("other"), 0U);  // a message under another profile: not the profile rule's
  EXPECT_EQ(evaluated(), 1U);
  ASSERT_TRUE(book_->remove("org-1", by_profile));
  ASSERT_TRUE(trigger_->reload(by_profile));
  EXPECT_EQ(evaluated(), 0U);
  trigger_->forget_device("sensor-1");
  tag("sensor-1", {"hot-room"});
  EXPECT_EQ(evaluated(), 1U);
  // The tag rule fired once for sensor-1 (while tagged the first time) and cleared when the tag
  // went; the profile rule fired at the first message.
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert+:sensor-1", "alert-:sensor-1", "alert+:sensor-1"));
}

// A save in parts hands over a device at a time (the budget here is none: one device per
// call); a device that changes after its turn waits for the next save, and save() ends the
// one under way and saves what changed since.
TEST_F(TriggerTest, ASaveInPartsHandsOverEachChangedDeviceOnce) {
  create(R"({"name":"hot","selector":{"profiles":["env"]},"condition":"temperature > 30",
    "actions":[{"type":"alert"}]})");
  const auto saved = [this] { return trigger_->counters().states_saved; };
  const auto before = saved();
  // Both devices changed when the rule began watching them (fan-1, then sensor-1).
  send("sensor-1", 20);
  send("fan-1", 20);
  EXPECT_TRUE(trigger_->save_some(0us));  // fan-1
  EXPECT_EQ(saved() - before, 1U);
  send("fan-1", 21);                       // after its turn: the next save's
  EXPECT_FALSE(trigger_->save_some(0us));  // sensor-1, and this save is done
  EXPECT_EQ(saved() - before, 2U);
  EXPECT_FALSE(trigger_->save_some(0us));  // the next: fan-1 again
  EXPECT_EQ(saved() - before, 3U);
  EXPECT_FALSE(trigger_->save_some(0us));  // nothing changed
  EXPECT_EQ(saved() - before, 3U);
  send("sensor-1", 22);
  send("fan-1", 22);
  EXPECT_TRUE(trigger_->save_some(0us));  // sensor-1
  send("sensor-1", 23);
  trigger_->save();  // fan-1 (the save under way), then sensor-1 (changed since)
  EXPECT_EQ(saved() - before, 6U);
  ASSERT_TRUE(trigger_->flush());
  EXPECT_EQ(saved() - before, 6U);
}

TEST_F(TriggerTest, ARulesMetricActionsGiveOneSetOfValuesPerMessageWithTheMessagesId) {
  const auto id = create(R"({"name":"fahrenheit","selector":{"devices":["sensor-1"]},"condition":"temperature > 100",
    "actions":[{"type":"metric","name":"temperature_f","value":"temperature * 9 / 5 + 32"},
               {"type":"metric","name":"humidity_copy","value":"humidity"}]})");
  const auto at = std::to_string(to_unix_millis(clock_.now()));
  const std::vector<policy::Metric> metrics{{"temperature", 20.0}};
  trigger_->observe({"org-1", "sensor-1", "env", "default", metrics, to_unix_millis(clock_.now()), "m-1"});
  // humidity has no value: left out. Another device's message: not this rule's.
  send("fan-1", 20);
  EXPECT_THAT(seen_, ElementsAre("derived:org-1:sensor-1:" + id + ":m-1:" + at + ":temperature_f=68.000000"));
  seen_.clear();
  clock_.advance(1s);
  send("sensor-1", 101);  // fires: the values come first, then the firing (no alert action here)
  EXPECT_THAT(seen_, ElementsAre("derived:org-1:sensor-1:" + id + "::" + std::to_string(to_unix_millis(clock_.now())) +
                                 ":temperature_f=213.800000"));
  EXPECT_EQ(trigger_->counters().fired, 1U);
  // Time passing computes nothing.
  seen_.clear();
  clock_.advance(10s);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, IsEmpty());
}

TEST_F(TriggerTest, OnlyDevicesTheSelectorNamesInTheRulesOrganisationAreEvaluated) {
  create(
      R"({"name":"hot","selector":{"profiles":["env"]},"condition":"temperature > 30","actions":[{"type":"alert"}]})");
  send("plain-1", 50, "org-1", "");   // another profile
  send("far-1", 50, "org-2", "env");  // another organisation
  EXPECT_THAT(seen_, IsEmpty());
  send("sensor-1", 50);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
}

// save() only serialises the states: sealing and writing happen on the Trigger's writer
// thread, so a store held by another thread (as a group commit holds it) does not hold the
// caller, the server's I/O thread.
TEST_F(TriggerTest, ASaveDoesNotWaitForTheStoreAndAFlushWritesWhatItHandedOver) {
  create(R"({"name":"hot","condition":"temperature > 30","actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  // A save that wrote on its caller's thread would wait for the held store until the holder
  // lets go: then this is false.
  EXPECT_TRUE(testing::while_store_is_held(*store_, [&] { trigger_->save(); }));
  ASSERT_TRUE(trigger_->flush());
  auto rows = store_->rules().device_states();
  ASSERT_TRUE(rows);
  // The rule selects every device of org-1: each has its row.
  std::vector<std::string> devices;
  for (const auto& row : *rows) devices.push_back(row.device_id);
  EXPECT_THAT(devices, ElementsAre("fan-1", "plain-1", "sensor-1"));
}

// Rules keep per-device state across restarts: a "for at least" timer started before a
// restart goes on after it.
TEST_F(TriggerTest, StateSurvivesARestartSealedInTheStore) {
  create(R"({"name":"hot","condition":"temperature > 30","for":"60s","actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  EXPECT_THAT(seen_, IsEmpty());
  ASSERT_TRUE(trigger_->flush());
  auto states = store_->rules().device_states();
  ASSERT_TRUE(states);
  ASSERT_FALSE(states->empty());
  for (const auto& s : *states) {
    // Sealed: the device's values do not stand in the store in clear.
    EXPECT_EQ(to_string(s.sealed).find("temperature"), std::string::npos);
  }

  trigger_ = make_trigger();  // the server restarts
  ASSERT_TRUE(trigger_->load());
  EXPECT_EQ(trigger_->rules(), 1U);
  clock_.advance(61s);
  send("sensor-1", 41);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
}

TEST_F(TriggerTest, AnAbsenceRuleFiresForADeviceThatSendsNothing) {
  create(R"j({"name":"silent","selector":{"devices":["sensor-1"]},"condition":"absent(5m)",
    "actions":[{"type":"alert"}]})j");
  clock_.advance(4min);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, IsEmpty());
  clock_.advance(2min);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_EQ(seen_.size(), 1U);
  send("sensor-1", 20);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert-:sensor-1"));
}

// A tick evaluates only the states with a deadline due by then, not every rule times every
// device: a plain comparison never, a "for" rule when its hold ends.
TEST_F(TriggerTest, ATickEvaluatesOnlyTheStatesWhoseDeadlineIsDue) {
  create(R"({"name":"hot","selector":{"profiles":["env"]},"condition":"temperature > 50",
    "actions":[{"type":"alert"}]})");
  create(R"({"name":"warm","selector":{"devices":["sensor-1"]},"condition":"temperature > 30","for":"60s",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  send("fan-1", 20);
  const auto tick_for = [this](int seconds) {
    for (int i = 0; i < seconds; ++i) {
      clock_.advance(1s);
      trigger_->tick(to_unix_millis(clock_.now()));
    }
  };
  tick_for(59);
  EXPECT_EQ(trigger_->counters().deadlines, 0U);
  EXPECT_THAT(seen_, IsEmpty());
  tick_for(1);
  EXPECT_EQ(trigger_->counters().deadlines, 1U);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  tick_for(30);
  EXPECT_EQ(trigger_->counters().deadlines, 1U);
  EXPECT_EQ(trigger_->counters().evaluations, 3U);  // sensor-1 against both rules, fan-1 against "hot"
}

// Without any message, the sample leaving the window changes the outcome at its deadline.
TEST_F(TriggerTest, ASampleLeavingItsWindowIsEvaluatedWhenItLeaves) {
  create(R"({"name":"hot","selector":{"devices":["sensor-1"]},"condition":"avg(temperature, 1m) > 30",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  clock_.advance(59s);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  clock_.advance(1s);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert-:sensor-1"));
}

// A restored state whose deadline passed while the server was down is evaluated at the
// first tick.
TEST_F(TriggerTest, ADeadlineThatPassedDuringARestartIsEvaluatedAtTheFirstTick) {
  create(R"({"name":"warm","selector":{"devices":["sensor-1"]},"condition":"temperature > 30","for":"60s",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  ASSERT_TRUE(trigger_->flush());
  trigger_ = make_trigger();
  ASSERT_TRUE(trigger_->load());
  clock_.advance(5min);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
}

// A deadline that moves later (an absence's, with every message) keeps its entry in the
// queue; one that moves earlier (a hold starting) gets a new one and the old is skipped.
TEST_F(TriggerTest, ADeadlineMovingLaterOrEarlierIsEvaluatedOnceAtItsTime) {
  create(R"j({"name":"quiet or hot","selector":{"devices":["sensor-1"]},"condition":"absent(5m) or temperature > 30",
    "for":"60s","actions":[{"type":"alert"}]})j");
  const auto queued = trigger_->queued();
  for (int i = 0; i < 100; ++i) {
    clock_.advance(1s);
    send("sensor-1", 20);
    trigger_->tick(to_unix_millis(clock_.now()));
  }
  EXPECT_EQ(trigger_->queued(), queued) << "the absence's deadline moved 100 times without a new entry";
  EXPECT_EQ(trigger_->counters().deadlines, 0U);
  send("sensor-1", 40);  // the hold starts: a deadline 60 s from now, before the absence's
  const auto tick_for = [this](std::chrono::seconds span) {
    for (auto t = 0s; t < span; t += 1s) {
      clock_.advance(1s);
      trigger_->tick(to_unix_millis(clock_.now()));
    }
  };
  tick_for(59s);
  EXPECT_THAT(seen_, IsEmpty());
  tick_for(1s);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  EXPECT_EQ(trigger_->counters().deadlines, 1U);
  send("sensor-1", 20);  // it clears at once; 5 min after this message the absence starts its hold
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert-:sensor-1"));
  tick_for(10min);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert-:sensor-1", "alert+:sensor-1"));
  EXPECT_EQ(trigger_->counters().deadlines, 3U) << "the first hold's end, the absence's start and its hold's end";
  EXPECT_EQ(trigger_->queued(), 0U);
}

// A rule reloaded over and over leaves stale entries behind; they are dropped before the
// queue grows past twice what is live.
TEST_F(TriggerTest, TheDeadlineQueueStaysBoundedWhileARuleIsReloaded) {
  const auto id = create(R"j({"name":"quiet","selector":{"profiles":["env"]},"condition":"absent(5m)",
    "actions":[{"type":"alert"}]})j");
  std::size_t most = 0;
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(trigger_->reload(id));
    most = std::max(most, trigger_->queued());
  }
  EXPECT_LE(most, 4096U);
  EXPECT_GE(most, 4000U) << "stale entries did pile up before they were dropped";
  clock_.advance(6min);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, UnorderedElementsAre("alert+:fan-1", "alert+:sensor-1"));
  EXPECT_EQ(trigger_->queued(), 0U);
}

// A deleted device's states go: its absence is not reported, its messages' states are not saved.
TEST_F(TriggerTest, ADeletedDeviceIsForgotten) {
  create(R"j({"name":"quiet","selector":{"profiles":["env"]},"condition":"absent(5m)",
    "actions":[{"type":"alert"}]})j");
  trigger_->forget_device("fan-1");
  clock_.advance(6min);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  ASSERT_TRUE(trigger_->flush());
  auto states = store_->rules().device_states();
  ASSERT_TRUE(states);
  ASSERT_EQ(states->size(), 1U);
  EXPECT_EQ(states->front().device_id, "sensor-1");
}

// A device's states of all its rules are saved as one sealed row; each comes back to its
// rule after a restart, but only to the version it was saved with.
TEST_F(TriggerTest, ADevicesStatesOfEveryRuleAreOneRowAndComeBackToTheirRulesVersion) {
  create(R"({"name":"warm","condition":"temperature > 30","for":"60s","actions":[{"type":"alert"}]})");
  const auto hot = create(R"({"name":"hot","condition":"temperature > 35","for":"60s","actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  send("fan-1", 20);
  ASSERT_TRUE(trigger_->flush());
  auto rows = store_->rules().device_states();
  ASSERT_TRUE(rows);
  std::vector<std::string> devices;
  for (const auto& r : *rows) devices.push_back(r.device_id);
  EXPECT_THAT(devices, ElementsAre("fan-1", "plain-1", "sensor-1"))
      << "one row per device (plain-1: watched from load)";
  EXPECT_EQ(trigger_->counters().states_saved, 6U) << "two rules for each of three devices";
  ASSERT_TRUE(trigger_->flush());
  EXPECT_EQ(trigger_->counters().states_saved, 6U) << "nothing changed since";

  // "hot" changes (a new version) while the server is down: its timer starts afresh; "warm"'s goes on.
  auto stored = store_->rules().find(hot);
  ASSERT_TRUE(stored && *stored);
  ASSERT_TRUE(book_->change({"user:op-1", "org-1", identity::builtin_role_permissions(identity::kRoleOperator)}, hot,
                            (*stored)->definition, true, (*stored)->version));
  trigger_ = make_trigger();
  ASSERT_TRUE(trigger_->load());
  EXPECT_EQ(trigger_->counters().states_dropped, 0U);
  clock_.advance(61s);
  send("sensor-1", 41);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1")) << "warm fired; hot's hold started again at this message";
  clock_.advance(60s);
  send("sensor-1", 41);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert+:sensor-1")) << "hot, a minute after its new start";
}

// Rules with a window of the same metric and duration hold equal windows of a device: its row
// writes that window once, and after a restart each rule has it back.
TEST_F(TriggerTest, AWindowEqualAmongADevicesRulesIsSavedOnceAndComesBackToEach) {
  create(R"({"name":"warm","selector":{"devices":["sensor-1"]},"condition":"avg(temperature, 1m) > 30",
    "actions":[{"type":"alert"}]})");
  create(R"({"name":"hot","selector":{"devices":["sensor-1"]},"condition":"avg(temperature, 1m) > 40",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 20);
  clock_.advance(10s);
  send("sensor-1", 50);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1")) << "warm: the average is 35";
  ASSERT_TRUE(trigger_->flush());

  const nlohmann::json saved = saved_rows()["sensor-1"];
  ASSERT_TRUE(saved.is_object()) << saved.dump();
  EXPECT_EQ(saved["v"], 2);
  ASSERT_EQ(saved["windows"].size(), 1U) << saved.dump();
  ASSERT_EQ(saved["rules"].size(), 2U);
  for (const auto& rule : saved["rules"]) {
    EXPECT_EQ(rule["state"]["metrics"]["temperature"]["windows"]["60000"], 0) << rule.dump();
  }

  trigger_ = make_trigger();  // the server restarts
  ASSERT_TRUE(trigger_->load());
  EXPECT_EQ(trigger_->counters().states_dropped, 0U);
  clock_.advance(10s);
  send("sensor-1", 45);
  // With the two earlier values hot's average is 38.3; a window lost would make it 45.
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1")) << "neither fires again nor clears";
  clock_.advance(20s);
  send("sensor-1", 60);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert+:sensor-1")) << "hot: the average is 43.75";
}

// A device's rules keep one window of a metric and duration between them: each message is
// counted in it once, and a rule made later takes it as it is.
TEST_F(TriggerTest, ADevicesRulesShareAWindowThatCountsEachMessageOnce) {
  create(R"({"name":"three","selector":{"devices":["sensor-1"]},"condition":"count(temperature, 1m) >= 3",
    "actions":[{"type":"alert"}]})");
  create(R"({"name":"many","selector":{"profiles":["env"]},"condition":"count(temperature, 1m) >= 100",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 20);
  clock_.advance(1s);
  send("sensor-1", 21);
  EXPECT_THAT(seen_, IsEmpty()) << "two messages, each counted once";
  clock_.advance(1s);
  send("sensor-1", 22);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  create(R"({"name":"four","selector":{"devices":["sensor-1"]},"condition":"count(temperature, 1m) >= 4",
    "actions":[{"type":"alert"}]})");
  clock_.advance(1s);
  send("sensor-1", 23);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert+:sensor-1")) << "four: the three before it and this one";
  EXPECT_EQ(trigger_->counters().fired, 2U);
}

// Rows as versions before format 2 wrote them (no "windows") come back.
TEST_F(TriggerTest, ARowOfFormat1ComesBack) {
  create(R"({"name":"hot","selector":{"devices":["sensor-1"]},"condition":"temperature > 30","for":"60s",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  ASSERT_TRUE(trigger_->flush());
  rewrite_rows([](nlohmann::json& saved) {
    ASSERT_EQ(saved["windows"], nlohmann::json::array());
    saved.erase("windows");
    saved["v"] = 1;
  });
  ASSERT_FALSE(HasFatalFailure());

  trigger_ = make_trigger();
  ASSERT_TRUE(trigger_->load());
  EXPECT_EQ(trigger_->counters().states_dropped, 0U);
  clock_.advance(61s);
  send("sensor-1", 41);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1")) << "its hold went on from the first message";
}

// A row whose format is not a number is dropped and logged like any unknown format; the
// server still starts.
TEST_F(TriggerTest, ARowOfNoKnownFormatIsDropped) {
  create(R"({"name":"hot","selector":{"devices":["sensor-1"]},"condition":"temperature > 30",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  ASSERT_TRUE(trigger_->flush());
  ASSERT_EQ(saved_rows().size(), 1U);
  rewrite_rows([](nlohmann::json& saved) { saved["v"] = "two"; });
  ASSERT_FALSE(HasFatalFailure());

  trigger_ = make_trigger();
  ASSERT_TRUE(trigger_->load());
  EXPECT_EQ(trigger_->counters().states_dropped, 1U);
  send("sensor-1", 41);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert+:sensor-1")) << "started afresh: it fires again";
}

TEST_F(TriggerTest, ARuleSwitchedOffOrDeletedStopsAtOnce) {
  const auto id = create(R"({"name":"hot","condition":"temperature > 30","actions":[{"type":"alert"}]})");
  auto stored = store_->rules().find(id);
  ASSERT_TRUE(stored && *stored);
  auto off = book_->change({"user:op-1", "org-1", identity::builtin_role_permissions(identity::kRoleOperator)}, id,
                           (*stored)->definition, false, (*stored)->version);
  ASSERT_TRUE(off && off->rule);
  ASSERT_TRUE(trigger_->reload(id));
  EXPECT_EQ(trigger_->rules(), 0U);
  send("sensor-1", 50);
  EXPECT_THAT(seen_, IsEmpty());
}

// A message meets only the rules whose selector can take its device (found through the
// index by device, profile, segment or none), and a changed selector moves its rule.
TEST_F(TriggerTest, AMessageMeetsOnlyTheRulesThatCanSelectItsDevice) {
  const auto rule = [](const std::string& name, const std::string& selector) {
    return R"({"name":")" + name + R"(","selector":)" + selector +
           R"(,"condition":"temperature > 30","actions":[{"type":"alert"}]})";
  };
  create(rule("by device", R"({"devices":["fan-1"]})"));
  create(rule("by profile", R"({"profiles":["env"]})"));
  create(rule("by segment", R"({"segments":["default"]})"));
  create(rule("both", R"({"devices":["sensor-1"],"profiles":["other"]})"));  // names a profile it lacks
  const auto everywhere = create(rule("everywhere", "{}"));
  const auto evaluations = [&] { return trigger_->counters().evaluations; };

  auto before = evaluations();
  auto met = trigger_->counters().candidates;
  send("sensor-1", 20);
  EXPECT_EQ(evaluations() - before, 3U) << "by profile, by segment, everywhere";
  EXPECT_EQ(trigger_->counters().candidates - met, 4U) << "and 'both', by its device; never 'by device'";
  before = evaluations();
  send("fan-1", 20);
  EXPECT_EQ(evaluations() - before, 4U) << "and by device";
  before = evaluations();
  send("plain-1", 20, "org-1", "");
  EXPECT_EQ(evaluations() - before, 2U) << "by segment, everywhere";

  // The rule for every device now names one: it leaves the list for every device.
  auto stored = store_->rules().find(everywhere);
  ASSERT_TRUE(stored && *stored);
  auto moved = book_->change({"user:op-1", "org-1", identity::builtin_role_permissions(identity::kRoleOperator)},
                             everywhere, rule("everywhere", R"({"devices":["plain-1"]})"), true, (*stored)->version);
  ASSERT_TRUE(moved && moved->rule);
  ASSERT_TRUE(trigger_->reload(everywhere));
  before = evaluations();
  send("sensor-1", 20);
  EXPECT_EQ(evaluations() - before, 2U);
  before = evaluations();
  send("plain-1", 20, "org-1", "");
  EXPECT_EQ(evaluations() - before, 2U) << "by segment, and the moved rule by device";
  EXPECT_EQ(trigger_->rules(), 5U);
}

// A rule selecting tags watches the devices that have any of them, and follows their tags as
// they change while the server runs: a device tagged later is watched from then on, one
// untagged is dropped, and what the rule fired for it clears.
TEST_F(TriggerTest, ARuleSelectingTagsFollowsTheDevicesTagsAsTheyChange) {
  ASSERT_TRUE(store_->devices().set_tags("sensor-1", {"cold-room", "floor-2"}));
  create(R"({"name":"cold room","selector":{"tags":["cold-room","floor-2"]},"condition":"temperature > 30",
    "actions":[{"type":"alert"}]})");
  const auto evaluations = trigger_->counters().evaluations;
  send("sensor-1", 50);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));
  EXPECT_EQ(trigger_->counters().evaluations - evaluations, 1U) << "met through both its tags, evaluated once";
  send("fan-1", 50);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1"));

  tag("fan-1", {"cold-room"});
  send("fan-1", 50);
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert+:fan-1"));

  tag("sensor-1", {"office"});
  EXPECT_THAT(seen_, ElementsAre("alert+:sensor-1", "alert+:fan-1", "alert-:sensor-1"));
  EXPECT_THAT(events_,
              ElementsAre("rule.fired:device:sensor-1", "rule.fired:device:fan-1", "rule.cleared:device:sensor-1"));
  send("sensor-1", 50);
  EXPECT_EQ(seen_.size(), 3U);
  ASSERT_TRUE(trigger_->flush());
}

TEST_F(TriggerTest, AnAbsenceRuleWatchesADeviceFromWhenItIsCreatedOrTagged) {
  create(R"j({"name":"roof quiet","selector":{"tags":["roof"]},"condition":"absent(5m)",
    "actions":[{"type":"alert"}]})j");
  store::DeviceRecord added;
  added.id = "new-1";
  added.organisation_id = "org-1";
  added.name = "new-1";
  added.tags = {"roof"};
  ASSERT_TRUE(store_->devices().insert(added));
  trigger_->device_changed(added);
  clock_.advance(2min);
  tag("plain-1", {"roof"});
  clock_.advance(4min);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, ElementsAre("alert+:new-1"));
  clock_.advance(2min);
  trigger_->tick(to_unix_millis(clock_.now()));
  EXPECT_THAT(seen_, ElementsAre("alert+:new-1", "alert+:plain-1"));
}

// Tags changed while the server was down (the CLI writes the store directly then): a stored
// state of a device the rule no longer selects is not restored.
TEST_F(TriggerTest, AStoredStateOfADeviceNoLongerSelectedIsNotRestored) {
  ASSERT_TRUE(store_->devices().set_tags("sensor-1", {"roof"}));
  create(R"({"name":"hot roof","selector":{"tags":["roof"]},"condition":"temperature > 30","for":"60s",
    "actions":[{"type":"alert"}]})");
  send("sensor-1", 40);
  ASSERT_TRUE(trigger_->flush());
  ASSERT_TRUE(store_->devices().set_tags("sensor-1", {}));
  trigger_ = make_trigger();
  ASSERT_TRUE(trigger_->load());
  clock_.advance(61s);
  trigger_->tick(to_unix_millis(clock_.now()));
  send("sensor-1", 41);
  EXPECT_THAT(seen_, IsEmpty());
  EXPECT_EQ(trigger_->queued(), 0U);
}

}  // namespace
}  // namespace torii::decision

#include "decision/state_writer.h"

#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/bytes.h"
#include "crypto/sodium.h"
#include "decision/trigger.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::decision {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

class StateWriterTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* id : {"a", "b", "c"}) {
      store::DeviceRecord d;
      d.id = id;
      d.organisation_id = "org-1";
      d.name = id;
      ASSERT_TRUE(store_->devices().insert(d));
    }
  }

  // Every stored row, opened: device -> text.
  std::map<std::string, std::string> stored() {
    std::map<std::string, std::string> out;
    auto rows = store_->rules().device_states();
    EXPECT_TRUE(rows);
    for (const auto& row : rows ? *rows : std::vector<store::DeviceRuleStatesRecord>{}) {
      auto opened = keys_->open(row.key_id, row.sealed, device_rule_states_associated_data(row.device_id));
      EXPECT_TRUE(opened) << row.device_id;
      if (opened) out[row.device_id] = to_string(opened->view());
    }
    return out;
  }
};

TEST_F(StateWriterTest, RowsAreSealedUnderTheirDevicesKeyAndWritten) {
  StateWriter writer(*store_, *keys_);
  writer.submit({{"a", "one", 1}, {"b", "two", 1}});
  ASSERT_TRUE(writer.wait());
  EXPECT_THAT(stored(), ElementsAre(Pair("a", "one"), Pair("b", "two")));
}

// While the writer waits for the store, a device's newer row replaces its waiting one, and a
// deleted device's waiting row is dropped.
TEST_F(StateWriterTest, WhileTheWriterIsBehindANewerRowReplacesTheWaitingOne) {
  StateWriter writer(*store_, *keys_);
  ASSERT_TRUE(testing::while_store_is_held(*store_, [&] {
    writer.submit({{"a", "a1", 1}});
    while (writer.waiting() != 0) std::this_thread::yield();  // taken: the writer waits for the store
    writer.submit({{"b", "b1", 2}, {"c", "c1", 2}});
    writer.submit({{"b", "b2", 3}});
    writer.forget("c");
  }));
  ASSERT_TRUE(writer.wait());
  EXPECT_THAT(stored(), ElementsAre(Pair("a", "a1"), Pair("b", "b2")));
}

TEST_F(StateWriterTest, WhatWasHandedOverIsWrittenBeforeItStops) {
  {
    StateWriter writer(*store_, *keys_);
    ASSERT_TRUE(testing::while_store_is_held(*store_, [&] { writer.submit({{"a", "last", 1}}); }));
  }
  EXPECT_THAT(stored(), ElementsAre(Pair("a", "last")));
}

// A rule's firing times: the latest handed over is written, whichever order they came in.
TEST_F(StateWriterTest, ARulesLatestFiringTimeIsWritten) {
  store::RuleRecord rule;
  rule.id = "r-1";
  rule.organisation_id = "org-1";
  rule.name = "hot";
  rule.definition = "{}";
  ASSERT_TRUE(store_->rules().insert(rule));
  StateWriter writer(*store_, *keys_);
  ASSERT_TRUE(testing::while_store_is_held(*store_, [&] {
    writer.fired("r-1", 20);
    writer.fired("r-1", 30);
    writer.fired("r-1", 25);     // handed over later, but older
    writer.fired("r-gone", 30);  // a rule deleted meanwhile: nothing to mark
  }));
  ASSERT_TRUE(writer.wait());
  const auto stored_rule = store_->rules().find("r-1");
  ASSERT_TRUE(stored_rule && stored_rule->has_value());
  EXPECT_EQ((*stored_rule)->last_fired_at, 30);
}

// A device deleted before its row is written: the row is skipped, the others are written,
// and no data key is made for the device that no longer exists (the registry destroyed its
// key with it).
TEST_F(StateWriterTest, ARowOfADeletedDeviceIsSkipped) {
  ASSERT_TRUE(store_->devices().remove("c"));
  StateWriter writer(*store_, *keys_);
  writer.submit({{"a", "one", 1}, {"c", "gone", 1}});
  ASSERT_TRUE(writer.wait());
  EXPECT_THAT(stored(), ElementsAre(Pair("a", "one")));
  const auto key = store_->data_keys().find(keys::device_key_id("c"));
  ASSERT_TRUE(key);
  EXPECT_FALSE(key->has_value());
}

}  // namespace
}  // namespace torii::decision

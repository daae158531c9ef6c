// The gateway's per-device counters on their way to the store (Broker::CounterBatch): merged
// when a write failed, written in one transaction, a deleted device's dropped.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "broker/broker.h"
#include "crypto/sodium.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::broker {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

using Batch = Broker::CounterBatch;

TEST(CounterBatch, MergingSumsEachDevicesDeltasAndKeepsItsLatestSighting) {
  Batch into;
  Broker::merge_counters(into, Batch{{{"a", 1, 10, 0, 1, 100}}, {{"a", 90}}});
  EXPECT_EQ(into.deltas, (std::vector<store::DeviceCounters>{{"a", 1, 10, 0, 1, 100}}));
  Broker::merge_counters(into, Batch{{{"b", 5, 50, 1, 0, 200}, {"a", 2, 20, 3, 0, 200}}, {{"b", 150}, {"a", 80}}});
  EXPECT_THAT(into.deltas, UnorderedElementsAre(store::DeviceCounters{"a", 3, 30, 3, 1, 200},
                                                store::DeviceCounters{"b", 5, 50, 1, 0, 200}));
  // The later sighting wins, whichever batch holds it.
  EXPECT_THAT(into.seen, UnorderedElementsAre(Pair("a", 90), Pair("b", 150)));
  Broker::merge_counters(into, Batch{});
  EXPECT_EQ(into.deltas.size(), 2U);
  EXPECT_TRUE(Batch{}.empty());
  EXPECT_FALSE(into.empty());
}

class CounterWriteTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* id : {"a", "b"}) {
      store::DeviceRecord d;
      d.id = id;
      d.organisation_id = "org-1";
      d.name = id;
      ASSERT_TRUE(store_->devices().insert(d));
    }
  }

  store::DeviceCounters counters(const std::string& id) {
    auto found = store_->device_counters().find(id);
    EXPECT_TRUE(found);
    return found && *found ? **found : store::DeviceCounters{};
  }
};

TEST_F(CounterWriteTest, ABatchAddsToTheStoredCountersAndLastSeenTimes) {
  ASSERT_TRUE(Broker::write_counters(*store_, Batch{{{"a", 2, 20, 1, 1, 100}}, {{"a", 90}}}));
  ASSERT_TRUE(Broker::write_counters(*store_, Batch{{{"a", 3, 30, 0, 0, 200}, {"b", 1, 5, 0, 1, 200}}, {{"b", 190}}}));
  EXPECT_EQ(counters("a"), (store::DeviceCounters{"a", 5, 50, 1, 1, 200}));
  EXPECT_EQ(counters("b"), (store::DeviceCounters{"b", 1, 5, 0, 1, 200}));
  auto a = store_->devices().find("a");
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((*a)->last_seen_at, 90);
  ASSERT_TRUE(Broker::write_counters(*store_, Batch{}));
}

// A device deleted while its counters waited: the others' are still written (its own are
// gone with it), not refused with them batch after batch.
TEST_F(CounterWriteTest, ADeletedDevicesCountersDoNotHoldUpTheOthers) {
  auto removed = store_->devices().remove("a");
  ASSERT_TRUE(removed && *removed);
  ASSERT_TRUE(Broker::write_counters(
      *store_, Batch{{{"a", 2, 20, 0, 1, 100}, {"b", 4, 40, 0, 1, 100}}, {{"a", 100}, {"b", 100}}}));
  EXPECT_EQ(counters("b"), (store::DeviceCounters{"b", 4, 40, 0, 1, 100}));
  auto none = store_->device_counters().find("a");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

}  // namespace
}  // namespace torii::broker

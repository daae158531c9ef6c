// The store writer's group commit: a message is acknowledged once the commit of its batch is
// on disk (the store's sync_committed after it), and not as stored when that sync fails.
#include "broker/store_writer.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::broker {
namespace {

using namespace std::chrono_literals;

// The real store, except that sync_committed() waits until the test lets it go (and then
// fails if the test says so).
class GatedStore final : public store::Store {
 public:
  explicit GatedStore(store::Store& inner) : inner_(inner) {}

  store::MetaRepository& meta() override { return inner_.meta(); }
  store::DataKeyRepository& data_keys() override { return inner_.data_keys(); }
  store::SecretRepository& secrets() override { return inner_.secrets(); }
  store::CertificateRepository& certificates() override { return inner_.certificates(); }
  store::SetupTokenRepository& setup_tokens() override { return inner_.setup_tokens(); }
  store::CounterRepository& counters() override { return inner_.counters(); }
  store::DeviceRepository& devices() override { return inner_.devices(); }
  store::DeviceProfileRepository& device_profiles() override { return inner_.device_profiles(); }
  store::TelemetryRepository& telemetry() override { return inner_.telemetry(); }
  store::LatestValueRepository& latest_values() override { return inner_.latest_values(); }
  store::DeviceCounterRepository& device_counters() override { return inner_.device_counters(); }
  store::RouteRepository& routes() override { return inner_.routes(); }
  store::MqttStateRepository& mqtt_state() override { return inner_.mqtt_state(); }
  store::OrganisationRepository& organisations() override { return inner_.organisations(); }
  store::UserRepository& users() override { return inner_.users(); }
  store::ConsoleSessionRepository& console_sessions() override { return inner_.console_sessions(); }
  store::PasswordResetRepository& password_resets() override { return inner_.password_resets(); }
  store::EnrolmentTokenRepository& enrolment_tokens() override { return inner_.enrolment_tokens(); }
  store::DeviceCommandRepository& device_commands() override { return inner_.device_commands(); }
  store::RuleRepository& rules() override { return inner_.rules(); }
  store::NotificationChannelRepository& notification_channels() override { return inner_.notification_channels(); }
  store::ApiTokenRepository& api_tokens() override { return inner_.api_tokens(); }
  store::CustomRoleRepository& custom_roles() override { return inner_.custom_roles(); }
  store::SettingOverrideRepository& setting_overrides() override { return inner_.setting_overrides(); }
  store::AlertRepository& alerts() override { return inner_.alerts(); }
  Status transaction(const std::function<Status()>& body) override { return inner_.transaction(body); }
  Status transaction_unsynced(const std::function<Status()>& body) override {
    {
      std::unique_lock lock(mutex_);
      ++committing_;
      changed_.notify_all();
      changed_.wait(lock, [this] { return !commits_held_; });
      --committing_;
    }
    return inner_.transaction_unsynced(body);
  }
  int schema_version() override { return inner_.schema_version(); }

  Status sync_committed() override {
    std::unique_lock lock(mutex_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return released_; });
    --waiting_;
    if (failing_) return fail(Errc::io_error, "the disk went away");
    return inner_.sync_committed();
  }

  // True once a sync waits (false after half a minute without).
  bool sync_waits() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 30s, [this] { return waiting_ > 0; });
  }
  // Batch commits wait from now on until release_commits().
  void hold_commits() {
    const std::lock_guard lock(mutex_);
    commits_held_ = true;
  }
  // True once a batch's commit waits (false after half a minute without).
  bool commit_waits() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 30s, [this] { return committing_ > 0; });
  }
  void release_commits() {
    {
      const std::lock_guard lock(mutex_);
      commits_held_ = false;
    }
    changed_.notify_all();
  }
  // Lets every sync, this one and later ones, go on: to the disk, or failing.
  void release(bool failing) {
    {
      const std::lock_guard lock(mutex_);
      released_ = true;
      failing_ = failing;
    }
    changed_.notify_all();
  }

 private:
  store::Store& inner_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int waiting_ = 0;
  int committing_ = 0;
  bool commits_held_ = false;
  bool released_ = false;
  bool failing_ = false;
};

// What the writer posts for the io thread, run by the test when it chooses.
class Posted {
 public:
  void post(std::function<void()> work) {
    {
      const std::lock_guard lock(mutex_);
      work_.push_back(std::move(work));
    }
    arrived_.notify_all();
  }
  [[nodiscard]] bool empty() {
    const std::lock_guard lock(mutex_);
    return work_.empty();
  }
  // Runs what has been posted, waiting up to half a minute for something; false if nothing came.
  bool run() {
    std::deque<std::function<void()>> work;
    {
      std::unique_lock lock(mutex_);
      if (!arrived_.wait_for(lock, 30s, [this] { return !work_.empty(); })) return false;
      work.swap(work_);
    }
    for (auto& w : work) w();
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<std::function<void()>> work_;
};

class StoreWriterTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    store::DeviceRecord d;
    d.id = "pump-1";
    d.organisation_id = "org-1";
    d.name = "pump-1";
    ASSERT_TRUE(store_->devices().insert(d));
    gated_ = std::make_unique<GatedStore>(*store_);
    writer_ =
        std::make_unique<StoreWriter>(*gated_, *keys_, [this](std::function<void()> w) { posted_.post(std::move(w)); });
  }
  void TearDown() override {
    if (gated_) gated_->release(false);
    writer_.reset();
  }

  static IngestItem telemetry(const std::string& id) {
    IngestItem item;
    item.device_id = "pump-1";
    item.kind = "telemetry";
    item.message_key = id;
    item.received_at = 1'790'000'000'000;
    const std::string text = R"({"id":")" + id + R"(","temperature":21.5})";
    item.payload.assign(text.begin(), text.end());
    item.metrics.push_back({"temperature", 21.5});
    return item;
  }

  std::size_t stored() {
    auto n = store_->telemetry().count("pump-1");
    EXPECT_TRUE(n);
    return n ? *n : 0;
  }

  std::unique_ptr<GatedStore> gated_;
  Posted posted_;
  std::unique_ptr<StoreWriter> writer_;
};

TEST_F(StoreWriterTest, AMessageIsAcknowledgedOnlyOnceItsCommitIsOnDisk) {
  std::optional<bool> done;
  ASSERT_TRUE(writer_->submit(telemetry("m-1"), [&](bool stored) { done = stored; }));
  // Committed, and the sync that follows waits: nothing is acknowledged yet.
  ASSERT_TRUE(gated_->sync_waits());
  EXPECT_EQ(stored(), 1U);
  EXPECT_TRUE(posted_.empty());

  // Meanwhile the writer goes on: the next message is committed before the first is synced.
  std::optional<bool> second;
  ASSERT_TRUE(writer_->submit(telemetry("m-2"), [&](bool stored) { second = stored; }));
  for (int i = 0; i < 3000 && stored() < 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(stored(), 2U);
  EXPECT_TRUE(posted_.empty());

  gated_->release(false);
  while (!(done && second)) ASSERT_TRUE(posted_.run());
  EXPECT_TRUE(*done);
  EXPECT_TRUE(*second);
}

// Committed but perhaps not on disk: the message is not acknowledged as stored, so the device
// sends it again (and the store keeps it once: its id is the same).
TEST_F(StoreWriterTest, AMessageWhoseSyncFailedIsNotAcknowledgedAsStored) {
  std::optional<bool> done;
  ASSERT_TRUE(writer_->submit(telemetry("m-1"), [&](bool stored) { done = stored; }));
  ASSERT_TRUE(gated_->sync_waits());
  gated_->release(true);
  while (!done) ASSERT_TRUE(posted_.run());
  EXPECT_FALSE(*done);
}

// Stopping stores what is queued, syncs what was committed last and posts every completion
// before it returns.
TEST_F(StoreWriterTest, StoppingAcknowledgesEverythingQueued) {
  gated_->release(false);
  constexpr int kMessages = 50;
  int acknowledged = 0;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(
        writer_->submit(telemetry("m-" + std::to_string(i)), [&](bool stored) { acknowledged += stored ? 1 : 0; }));
  }
  writer_->stop();
  EXPECT_FALSE(writer_->submit(telemetry("late"), [](bool) {}));
  ASSERT_FALSE(posted_.empty());  // already there: stop() waited for it
  while (!posted_.empty()) ASSERT_TRUE(posted_.run());
  EXPECT_EQ(acknowledged, kMessages);
  EXPECT_EQ(stored(), std::size_t{kMessages});
}

// While the writer is busy the queue fills; full() says so (as submit() does by refusing),
// and once the writer takes from it the room is announced on the io thread.
TEST_F(StoreWriterTest, AFullQueueSaysSoAndTheRoomMadeIsAnnounced) {
  gated_->release(false);
  gated_->hold_commits();
  int rooms = 0;
  writer_ = std::make_unique<StoreWriter>(
      *gated_, *keys_, [this](std::function<void()> w) { posted_.post(std::move(w)); },
      StoreWriterOptions{2, 1, [&] { ++rooms; }});
  int acknowledged = 0;
  const auto count = [&](bool stored) { acknowledged += stored ? 1 : 0; };
  ASSERT_TRUE(writer_->submit(telemetry("m-1"), count));
  ASSERT_TRUE(gated_->commit_waits());  // the writer took m-1 and waits in its commit
  EXPECT_FALSE(writer_->full());
  ASSERT_TRUE(writer_->submit(telemetry("m-2"), count));
  ASSERT_TRUE(writer_->submit(telemetry("m-3"), count));
  EXPECT_TRUE(writer_->full());
  EXPECT_FALSE(writer_->submit(telemetry("m-4"), count));
  EXPECT_TRUE(posted_.empty());

  gated_->release_commits();
  while (rooms == 0 || acknowledged < 3) ASSERT_TRUE(posted_.run());
  EXPECT_EQ(rooms, 1);
  EXPECT_FALSE(writer_->full());
  EXPECT_EQ(stored(), 3U);
}

}  // namespace
}  // namespace torii::broker

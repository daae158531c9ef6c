// Durable ingest with group commit (the Aggregator's storage).
//
// Connections submit accepted messages from the io thread, which seals each payload under
// its device's data key as it submits it; one writer thread takes everything queued and
// stores the lot in one transaction together with the latest value per metric. A syncer
// thread then makes the commit durable (store::Store::sync_committed, an fdatasync of the
// SQLite write-ahead log) while the writer goes on with the next batch. Only then is each
// message's completion posted back to the io_context, where the session sends its PUBACK
// (QoS 1) or PUBREC (QoS 2): an acknowledged message is on disk, whatever happens to the
// process or the machine afterwards.
//
//   submit ─▶ queue ─▶ writer: batch, one transaction ─▶ syncer: every batch committed
//                      (the next batch collects          meanwhile, one sync ─▶ completions
//                       meanwhile)                                              on the io thread
//
// While one transaction commits, the next batch collects, so the commit cost is shared by
// every connection that published meanwhile; while a sync waits for the disk, the writer
// commits the batches after it, which the next sync covers at once. The queue is bounded:
// submit() refuses when it is full. The broker asks full() before it takes a QoS 1/2 message,
// holds the connection back while it is, and lets it go on at on_room.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "keys/key_ring.h"
#include "policy/telemetry.h"
#include "store/store.h"

namespace torii::broker {

// A change to the MQTT state kept across restarts (a retained message), written in the
// transaction of the batch it arrives in, so it is durable before anything submitted after it
// is acknowledged.
struct StateChange {
  std::string kind;  // store::kMqttStateRetained
  std::string name;  // the topic
  Bytes plain;       // sealed by the writer under the device's key; empty: delete the record
  UnixMillis expires_at = 0;
  UnixMillis at = 0;
};

struct IngestItem {
  std::string device_id;
  std::string kind;         // "telemetry", "events", "state", "results"; empty: only `state`
  std::string message_key;  // the device's message id; empty: no de-duplication
  UnixMillis received_at = 0;
  Bytes payload;
  // The values to keep as the latest (telemetry only). The writer turns into JSON text only
  // the newest of each device and metric in a batch.
  std::vector<policy::Metric> metrics;
  std::optional<StateChange> state;
  // Set by StoreWriter::submit, on the submitting thread: the payload sealed under the
  // device's data key (nullopt when sealing failed: the item is then not stored).
  std::optional<Bytes> sealed;
};

// Called on the io_context with true once the item is durable (or was a duplicate of a
// stored one), false when it could not be stored or its commit could not be synced.
using IngestDone = std::function<void(bool stored)>;

// The associated data binding a sealed payload to its row (keys/key_ring.h).
using keys::latest_value_associated_data;
using keys::mqtt_state_associated_data;
using keys::telemetry_associated_data;

struct StoreWriterOptions {
  std::size_t max_queued = 100000;
  std::size_t max_batch = 2000;
  // Posted (run on the io thread) once the writer has taken from a queue that full() found
  // full: there is room again for what was held back.
  std::function<void()> on_room;
};

class StoreWriter {
 public:
  // post runs a completion on the io thread. The store and key ring must outlive the writer;
  // the key ring is used from the writer thread only between seals (it is thread-safe).
  StoreWriter(store::Store& store, keys::KeyRing& keys, std::function<void(std::function<void()>)> post,
              StoreWriterOptions options = {});
  ~StoreWriter();  // stops: drains what is queued first
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // False when the queue is full (nothing queued, done not called).
  [[nodiscard]] bool submit(IngestItem item, IngestDone done);
  // Whether submit() would refuse now (the queue is full, or the writer stopping); when it
  // is, options.on_room is posted as soon as the writer makes room.
  [[nodiscard]] bool full();
  void stop();

  struct Stats {
    std::uint64_t batches = 0;
    std::uint64_t stored = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t failed = 0;
    std::size_t largest_batch = 0;
  };
  [[nodiscard]] Stats stats() const;

 private:
  // Completions of committed items, each with whether it was stored, in submission order.
  using Completions = std::vector<std::pair<IngestDone, bool>>;

  void run();
  void write_batch(std::vector<std::pair<IngestItem, IngestDone>>& batch);
  // The syncer thread: syncs what the writer committed, then posts its completions.
  void run_syncer();

  store::Store& store_;
  keys::KeyRing& keys_;
  std::function<void(std::function<void()>)> post_;
  StoreWriterOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::pair<IngestItem, IngestDone>> queue_;
  bool stopping_ = false;
  bool room_wanted_ = false;  // full() said so: on_room is due when the writer takes from the queue
  Stats stats_;
  std::mutex sync_mutex_;
  std::condition_variable committed_;
  Completions unsynced_;                                         // committed, not yet synced; guarded by sync_mutex_
  bool writer_stopped_ = false;                                  // guarded by sync_mutex_
  std::chrono::steady_clock::time_point sync_failure_logged_{};  // the syncer's own
  std::uint64_t sync_failures_unlogged_ = 0;                     // the syncer's own
  std::thread syncer_;  // the threads last: they start once the rest is in place
  std::thread thread_;
};

}  // namespace torii::broker

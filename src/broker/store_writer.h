// Durable ingest with group commit (the Aggregator's storage).
//
// Connections submit accepted messages from the io thread, which seals each payload under
// its device's data key as it submits it; one writer thread takes everything queued and
// stores the lot in one transaction together with the latest value per metric (the writer,
// which also waits for each commit to reach the disk, spends its time on the store). Only then is each
// message's completion posted back to the io_context, where the session sends its PUBACK
// (QoS 1) or PUBREC (QoS 2): an acknowledged message is on disk (SQLite WAL,
// synchronous=FULL), whatever happens to the process afterwards.
//
// While one transaction commits, the next batch collects, so the commit cost is shared by
// every connection that published meanwhile. The queue is bounded: submit() refuses when
// it is full and the session answers "server busy" (the client retries later).
#pragma once

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
// stored one), false when it could not be stored.
using IngestDone = std::function<void(bool stored)>;

// The associated data binding a sealed payload to its row (keys/key_ring.h).
using keys::latest_value_associated_data;
using keys::mqtt_state_associated_data;
using keys::telemetry_associated_data;

struct StoreWriterOptions {
  std::size_t max_queued = 100000;
  std::size_t max_batch = 2000;
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
  void run();
  void write_batch(std::vector<std::pair<IngestItem, IngestDone>>& batch);

  store::Store& store_;
  keys::KeyRing& keys_;
  std::function<void(std::function<void()>)> post_;
  StoreWriterOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::pair<IngestItem, IngestDone>> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace torii::broker

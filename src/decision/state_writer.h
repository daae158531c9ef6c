// Where the Trigger's saved states are sealed and written, off the server's I/O thread: a save
// serialises each changed device's states there (they live on that thread) and hands the rows
// here, so that sealing and the store's transaction, the larger part of a save of many states
// (docs/benchmarks.md), do not delay the messages and alerts behind it. A rule's last firing
// time comes here too: writing it on the I/O thread made every firing wait for the store (a
// group commit of the gateway's, then a commit of its own) before its alert was raised.
//
// Rows are written in the order they were handed over, kRowsPerTransaction per transaction. A
// device's row handed over again while its earlier one still waits replaces it (the newer holds
// all its states). A row whose device is gone is skipped (its foreign key fails); forget() drops
// one still waiting. Firing times are written before the rows handed over with them, all in one
// transaction; a rule's later firing handed over while its earlier one waits replaces it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "keys/key_ring.h"
#include "store/store.h"

namespace torii::decision {

class StateWriter {
 public:
  // Rows written per transaction.
  static constexpr std::size_t kRowsPerTransaction = 256;

  // One device's states of all its rules, as text (Trigger::save).
  struct Row {
    std::string device_id;
    std::string text;
    UnixMillis at = 0;
  };

  // Borrows both; they must outlive it. Thread-safe.
  StateWriter(store::Store& store, keys::KeyRing& keys);
  // Writes what was handed over, then stops.
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // Queues the rows and returns without waiting for the store.
  void submit(std::vector<Row> rows);
  // Queues the rule's last firing time (store::RuleRepository::mark_fired) and returns without
  // waiting for the store.
  void fired(std::string_view rule_id, UnixMillis at);
  // The device was deleted: a row of it still waiting is dropped.
  void forget(std::string_view device_id);
  // Waits until every row handed over before the call is written (or skipped); the first
  // failure since the previous wait, if any.
  [[nodiscard]] Status wait();
  // Rows handed over that the writer has not taken up yet.
  [[nodiscard]] std::size_t waiting();

 private:
  void run();
  // Seals each row under its device's data key and writes them, kRowsPerTransaction at a time:
  // the first failure, the other transactions written all the same.
  [[nodiscard]] Status write(std::vector<Row>& rows);
  // The rules' last firing times, in one transaction.
  [[nodiscard]] Status write_fired(const std::unordered_map<std::string, UnixMillis>& fired);

  store::Store& store_;
  keys::KeyRing& keys_;
  std::mutex mutex_;                 // guards everything below but thread_
  std::condition_variable wake_;     // rows are waiting, or stopping
  std::condition_variable written_;  // a batch was written
  std::vector<Row> waiting_;
  std::unordered_map<std::string, UnixMillis> fired_;  // rule id → its latest firing, waiting
  std::uint64_t handed_ = 0;                           // batches handed over
  std::uint64_t written_up_to_ = 0;                    // of which written
  Status failure_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace torii::decision

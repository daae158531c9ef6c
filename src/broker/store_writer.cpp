#include "broker/store_writer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <span>

#include <nlohmann/json.hpp>

namespace torii::broker {
namespace {

// A metric value as JSON text (21.5, 7, true, "auto"), for the latest-value table.
std::string value_json(const policy::MetricValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return std::to_string(v);
        } else {  // double, string: JSON's own number and string syntax
          return nlohmann::json(v).dump();
        }
      },
      value);
}

}  // namespace

StoreWriter::StoreWriter(store::Store& store, keys::KeyRing& keys, std::function<void(std::function<void()>)> post,
                         StoreWriterOptions options)
    : store_(store),
      keys_(keys),
      post_(std::move(post)),
      options_(std::move(options)),
      syncer_([this] { run_syncer(); }),
      thread_([this] { run(); }) {}

StoreWriter::~StoreWriter() { stop(); }

void StoreWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The writer has committed everything queued: the syncer syncs that last, then ends.
  {
    std::lock_guard lock(sync_mutex_);
    writer_stopped_ = true;
  }
  committed_.notify_all();
  if (syncer_.joinable()) syncer_.join();
}

bool StoreWriter::submit(IngestItem item, IngestDone done) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= options_.max_queued) return false;
  }
  // Outside the lock: meanwhile the writer only takes from the queue, making room (submit is
  // called from the io thread alone).
  if (!item.kind.empty()) {
    auto sealed =
        keys_.seal_for_device(item.device_id, item.payload,
                              telemetry_associated_data(item.device_id, item.kind, item.received_at, item.message_key));
    if (sealed) {
      item.sealed = std::move(*sealed);
      item.payload = Bytes();  // not needed any more: the queue holds the sealed copy only
    } else {
      spdlog::error("store writer: cannot seal a message of device {}: {}", item.device_id, sealed.error().message);
    }
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    queue_.emplace_back(std::move(item), std::move(done));
  }
  ready_.notify_one();
  return true;
}

bool StoreWriter::full() {
  const std::lock_guard lock(mutex_);
  if (!stopping_ && queue_.size() < options_.max_queued) return false;
  room_wanted_ = true;
  return true;
}

StoreWriter::Stats StoreWriter::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void StoreWriter::run() {
  std::vector<std::pair<IngestItem, IngestDone>> batch;
  for (;;) {
    bool room_made = false;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      const std::size_t n = std::min(queue_.size(), options_.max_batch);
      batch.clear();
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      room_made = std::exchange(room_wanted_, false) && !stopping_;
    }
    if (room_made && options_.on_room) post_(options_.on_room);
    write_batch(batch);
  }
}

void StoreWriter::write_batch(std::vector<std::pair<IngestItem, IngestDone>>& batch) {
  // The latest values and state changes are sealed here, outside the transaction: a key
  // ring miss reads the store, which a transaction on this thread would otherwise hold.
  std::vector<store::TelemetryRecord> records;
  records.reserve(batch.size());
  std::vector<bool> sealed_ok(batch.size(), false);
  std::vector<std::optional<std::size_t>> record_of(batch.size());  // the item's telemetry record
  // The newest value of each (device, metric) in the batch; sealed once, after the loop.
  struct Newest {
    const policy::MetricValue* value = nullptr;
    UnixMillis at = 0;
  };
  std::map<std::pair<std::string_view, std::string_view>, Newest> newest;
  // State changes, in submission order; a put carries its sealed record.
  struct StateWrite {
    std::size_t item = 0;
    bool remove = false;
    store::MqttStateRecord record;
  };
  std::vector<StateWrite> state_writes;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& item = batch[i].first;
    const auto key_id = keys::device_key_id(item.device_id);
    if (item.state) {
      const auto& change = *item.state;
      StateWrite write{
          i, change.plain.empty(),
          store::MqttStateRecord{item.device_id, change.kind, change.name, key_id, {}, change.expires_at, change.at}};
      if (!write.remove) {
        auto sealed_state = keys_.seal_for_device(item.device_id, change.plain,
                                                  mqtt_state_associated_data(item.device_id, change.kind, change.name));
        if (sealed_state) {
          write.record.sealed = std::move(*sealed_state);
        } else {
          spdlog::error("store writer: cannot seal the MQTT state of device {}: {}", item.device_id,
                        sealed_state.error().message);
        }
      }
      if (write.remove || !write.record.sealed.empty()) state_writes.push_back(std::move(write));
    }
    if (item.kind.empty()) {  // state only
      sealed_ok[i] = true;
      continue;
    }
    if (!item.sealed) continue;  // sealing failed in submit(), which logged it
    sealed_ok[i] = true;
    records.push_back(
        {0, item.device_id, item.kind, item.message_key, item.received_at, key_id, std::move(*item.sealed)});
    record_of[i] = records.size() - 1;
    for (const auto& metric : item.metrics) {
      auto& slot = newest[{item.device_id, metric.name}];
      if (slot.value != nullptr && slot.at > item.received_at) continue;
      slot = {&metric.value, item.received_at};
    }
  }

  std::vector<store::LatestValue> latest_rows;
  latest_rows.reserve(newest.size());
  for (const auto& [key, value] : newest) {
    const auto& [device_id, metric] = key;
    const auto key_id = keys::device_key_id(device_id);
    auto sealed =
        keys_.seal(key_id, as_bytes(value_json(*value.value)), latest_value_associated_data(device_id, metric));
    if (!sealed) continue;
    latest_rows.push_back(
        store::LatestValue{std::string(device_id), std::string(metric), key_id, std::move(*sealed), value.at});
  }

  const auto write_state = [this](const StateWrite& w) -> Status {
    if (!w.remove) return store_.mqtt_state().put(w.record);
    auto removed = store_.mqtt_state().remove(w.record.device_id, w.record.kind, w.record.name);
    if (!removed) return tl::unexpected(std::move(removed.error()));
    return ok();
  };
  std::vector<std::int64_t> seqs;
  auto st = store_.transaction_unsynced([&]() -> Status {
    if (!records.empty()) {
      auto appended = store_.telemetry().append(records);
      if (!appended) return tl::unexpected(appended.error());
      seqs = std::move(*appended);
    }
    if (!latest_rows.empty()) {
      if (auto upserted = store_.latest_values().upsert(latest_rows); !upserted) return upserted;
    }
    for (const auto& w : state_writes) {
      if (auto written = write_state(w); !written) return written;
    }
    return ok();
  });
  std::vector<bool> stored(batch.size(), st.has_value());
  if (!st) {
    // One bad record (a device deleted while its messages were queued) must not cost the
    // others: store them one by one, each in its own transaction.
    spdlog::warn("store writer: a batch of {} messages failed ({}); storing them one by one", records.size(),
                 st.error().message);
    seqs.clear();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!sealed_ok[i]) continue;
      auto one = store_.transaction_unsynced([&]() -> Status {
        for (const auto& w : state_writes) {
          if (w.item != i) continue;
          if (auto written = write_state(w); !written) return written;
        }
        if (!record_of[i]) return ok();
        auto appended = store_.telemetry().append(std::span(&records[*record_of[i]], 1));
        if (!appended) return tl::unexpected(appended.error());
        seqs.push_back(appended->front());
        return ok();
      });
      stored[i] = one.has_value();
      if (!one)
        spdlog::error("store writer: a message of device {} was not stored: {}", batch[i].first.device_id,
                      one.error().message);
    }
  }

  std::size_t duplicates = 0;
  for (auto seq : seqs) duplicates += seq == 0 ? 1 : 0;
  {
    std::lock_guard lock(mutex_);
    ++stats_.batches;
    stats_.largest_batch = std::max(stats_.largest_batch, batch.size());
    std::size_t messages = 0;
    std::size_t good = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].first.kind.empty()) continue;  // state only: not a message
      ++messages;
      good += stored[i] && sealed_ok[i] ? 1 : 0;
    }
    stats_.stored += good - std::min(good, duplicates);
    stats_.duplicates += duplicates;
    stats_.failed += messages - good;
  }
  // To the syncer, which posts them once the commit is on disk.
  {
    std::lock_guard lock(sync_mutex_);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      unsynced_.emplace_back(std::move(batch[i].second), stored[i] && sealed_ok[i]);
    }
  }
  committed_.notify_one();
}

void StoreWriter::run_syncer() {
  for (;;) {
    Completions completions;
    {
      std::unique_lock lock(sync_mutex_);
      committed_.wait(lock, [this] { return writer_stopped_ || !unsynced_.empty(); });
      if (unsynced_.empty()) return;  // the writer has stopped and everything is acknowledged
      completions.swap(unsynced_);
    }
    // Everything taken was committed before this sync began.
    if (auto synced = store_.sync_committed(); !synced) {
      for (auto& completion : completions) completion.second = false;
      ++sync_failures_unlogged_;
      if (const auto now = std::chrono::steady_clock::now(); now - sync_failure_logged_ >= std::chrono::minutes(1)) {
        sync_failure_logged_ = now;
        spdlog::error("store writer: {}; the messages committed before it are not acknowledged ({} such syncs)",
                      synced.error().message, std::exchange(sync_failures_unlogged_, 0));
      }
    }
    // One post for all of them: completions run on the io thread in submission order.
    post_([completions = std::move(completions)]() mutable {
      for (auto& [done, was_stored] : completions) {
        if (done) done(was_stored);
      }
    });
  }
}

}  // namespace torii::broker

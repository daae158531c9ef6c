#include "decision/state_writer.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "decision/trigger.h"

namespace torii::decision {

StateWriter::StateWriter(store::Store& store, keys::KeyRing& keys)
    : store_(store), keys_(keys), thread_([this] { run(); }) {}

StateWriter::~StateWriter() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StateWriter::submit(std::vector<Row> rows) {
  if (rows.empty()) return;
  {
    const std::lock_guard lock(mutex_);
    ++handed_;
    if (waiting_.empty()) {
      waiting_ = std::move(rows);
    } else {
      // The writer is behind: a device's newer row replaces its waiting one.
      waiting_.reserve(waiting_.size() + rows.size());  // the index below points into it
      std::unordered_map<std::string_view, std::size_t> at;
      for (std::size_t i = 0; i < waiting_.size(); ++i) at.emplace(waiting_[i].device_id, i);
      for (Row& row : rows) {
        if (const auto it = at.find(row.device_id); it != at.end()) {
          waiting_[it->second].text = std::move(row.text);
          waiting_[it->second].at = row.at;
        } else {
          waiting_.push_back(std::move(row));
        }
      }
    }
  }
  wake_.notify_one();
}

void StateWriter::fired(std::string_view rule_id, UnixMillis at) {
  {
    const std::lock_guard lock(mutex_);
    ++handed_;
    auto [it, inserted] = fired_.try_emplace(std::string(rule_id), at);
    if (!inserted) it->second = std::max(it->second, at);
  }
  wake_.notify_one();
}

void StateWriter::forget(std::string_view device_id) {
  const std::lock_guard lock(mutex_);
  std::erase_if(waiting_, [device_id](const Row& row) { return row.device_id == device_id; });
}

Status StateWriter::wait() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = handed_;
  written_.wait(lock, [&] { return written_up_to_ >= target; });
  return std::exchange(failure_, ok());
}

std::size_t StateWriter::waiting() {
  const std::lock_guard lock(mutex_);
  return waiting_.size();
}

void StateWriter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || handed_ > written_up_to_; });
    if (handed_ == written_up_to_) return;  // stopping, nothing left
    std::vector<Row> rows = std::move(waiting_);
    waiting_.clear();
    std::unordered_map<std::string, UnixMillis> fired = std::move(fired_);
    fired_.clear();
    const std::uint64_t covers = handed_;
    lock.unlock();
    auto st = write_fired(fired);
    if (!st) spdlog::error("rules' last firing times: {}", st.error().message);
    if (auto rows_written = write(rows); !rows_written) {
      spdlog::error("rule states: {}", rows_written.error().message);
      if (st) st = std::move(rows_written);
    }
    lock.lock();
    if (!st && failure_) failure_ = std::move(st);
    written_up_to_ = covers;
    written_.notify_all();
  }
}

Status StateWriter::write_fired(const std::unordered_map<std::string, UnixMillis>& fired) {
  if (fired.empty()) return ok();
  return store_.transaction([&]() -> Status {
    for (const auto& [rule_id, at] : fired) {
      if (auto st = store_.rules().mark_fired(rule_id, at); !st) return st;
    }
    return ok();
  });
}

Status StateWriter::write(std::vector<Row>& rows) {
  // A transaction of a few hundred rows at a time: the store is held for each in turn, so the
  // gateway's group commits and the server's other writes (an alert being raised) wait for a
  // few milliseconds, not for the whole save.
  std::vector<store::DeviceRuleStatesRecord> batch;
  Status failed = ok();
  for (std::size_t start = 0; start < rows.size(); start += kRowsPerTransaction) {
    batch.clear();
    const std::size_t end = std::min(rows.size(), start + kRowsPerTransaction);
    for (std::size_t i = start; i < end; ++i) {
      Row& row = rows[i];
      const auto key_id = keys::device_key_id(row.device_id);
      const std::string associated = device_rule_states_associated_data(row.device_id);
      auto sealed = keys_.seal_for_device(row.device_id, as_bytes(row.text), associated);
      if (!sealed && sealed.error().is(Errc::not_found)) continue;  // deleted since: nothing to keep
      if (!sealed) {
        spdlog::error("cannot seal the rule states of device {}: {}", row.device_id, sealed.error().message);
        continue;
      }
      std::string().swap(row.text);  // no longer needed: a large save holds less at a time
      batch.push_back({std::move(row.device_id), key_id, std::move(*sealed), row.at});
    }
    // One transaction failing does not keep the others from being written.
    if (auto st = store_.rules().save_device_states(batch); !st && failed) failed = std::move(st);
  }
  return failed;
}

}  // namespace torii::decision

// The agent's durable outbox: messages wait here, on disk, until the gateway acknowledges
// them, so readings taken while the network is down are sent later and none is lost to a
// crash or a power cut.
//
// One SQLite file (WAL, synchronous=FULL, mode 0600) owned by one agent process. A push
// returns only once the message is on disk. The outbox holds at most max_messages; a push
// into a full outbox drops the oldest waiting message and counts it (evicted(), stored in
// the file). Message ids are "<prefix>-<seq>": the 8-hex-digit prefix is drawn once, when
// the file is created, so an outbox made afresh never repeats an old one's ids, which the
// gateway uses to drop duplicates (docs/devices.md, `id`). The same file keeps the nonces of
// the commands the agent has taken (record_nonce), so that a command replayed after a restart
// is still refused. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"

namespace torii::agent {

// Which of the device's topics a message goes to: devices/{id}/<kind>.
enum class TopicKind { telemetry, events, state, results };
[[nodiscard]] std::string_view to_string(TopicKind kind);

// What record_nonce found: a nonce not seen before (now recorded), one recorded before, or no
// room to record it.
enum class NonceCheck { fresh, replayed, full };

struct OutboxEntry {
  std::int64_t seq = 0;  // 1, 2, 3 … in push order; never reused within one file
  std::string id;        // "<prefix>-<seq>"
  TopicKind kind = TopicKind::telemetry;
  std::string payload;
  std::chrono::system_clock::time_point created;  // millisecond precision
  friend bool operator==(const OutboxEntry&, const OutboxEntry&) = default;
};

class Outbox {
 public:
  // Builds the payload for a message id (so the id can be written into the payload).
  using PayloadMaker = std::function<std::string(std::string_view message_id)>;

  // Opens the outbox at `path`, creating it (mode 0600) when missing. max_messages >= 1
  // bounds what waits; a smaller bound than the file holds takes effect at the next push.
  // `random` draws a new file's id prefix; `clock` stamps entries. Both must outlive the
  // outbox. Errors: permission_denied (the file is readable by others), corrupt (not an
  // SQLite file, or not an outbox), io_error, invalid_argument (max_messages of 0).
  [[nodiscard]] static Result<Outbox> open(const std::filesystem::path& path, std::uint64_t max_messages,
                                           Random& random, const Clock& clock);

  Outbox(Outbox&&) noexcept;
  Outbox& operator=(Outbox&&) noexcept;
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  ~Outbox();

  // Appends a message with the next seq and id, evicting the oldest when full, durably;
  // returns what was stored. On error nothing changed.
  [[nodiscard]] Result<OutboxEntry> push(TopicKind kind, const PayloadMaker& make_payload);
  // The first n waiting entries, oldest first.
  [[nodiscard]] Result<std::vector<OutboxEntry>> oldest(std::size_t n);
  // Forgets an entry the gateway acknowledged (in any order); an unknown seq is not an error.
  [[nodiscard]] Status remove(std::int64_t seq);

  // Records a command's nonce as used until `expires_at` (device time), durably, after
  // forgetting the nonces of commands expired at `now` (those commands are refused as expired,
  // so their nonces need not be kept; IIIT J8). replayed: recorded before; full: max_nonces
  // are kept and none has expired (nothing is forgotten early, so the caller must refuse the
  // command). The nonce is recorded only when fresh; on error nothing changes.
  [[nodiscard]] Result<NonceCheck> record_nonce(std::string_view nonce,
                                                std::chrono::system_clock::time_point expires_at,
                                                std::chrono::system_clock::time_point now, std::uint64_t max_nonces);
  // Nonces kept.
  [[nodiscard]] Result<std::uint64_t> nonces();

  [[nodiscard]] std::uint64_t size() const;     // entries waiting
  [[nodiscard]] std::uint64_t evicted() const;  // entries dropped for room, over the file's life
  [[nodiscard]] const std::string& id_prefix() const;

 private:
  struct Impl;
  explicit Outbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace torii::agent

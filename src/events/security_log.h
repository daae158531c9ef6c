// The tamper-evident security log (JPCERT III-1: record security-relevant events with
// accurate UTC timestamps; VII-2: protect the log from tampering and keep it for a defined
// period).
//
// On disk: JSON Lines in one directory, one record per line, in canonical form (sorted
// keys, compact, ASCII only; see log_format.h):
//
//   {"action":..,"actor":..,"details":{..},"hash":"<64 hex>","object":..,"outcome":"success",
//    "prev":"<64 hex>","seq":12,"source":..,"ts":"2026-11-22T03:41:07.123Z","type":"event"}
//
// - hash = hex SHA-256 over the canonical JSON of the record without its "hash" member.
// - prev = hash of the previous line (the first line of a new log: 64 zeros).
// - seq  = 1 on the first line, +1 on every line, across restarts and rotated files.
// - Checkpoint lines ("type":"checkpoint") carry "head" (= prev, the hash of the line
//   before) and "sig": hex Ed25519 over "torii-log-checkpoint\0" <decimal seq> "\0" <head>,
//   where seq is the checkpoint line's own seq. A hash chain alone can be rewritten from
//   the edit point onwards by anyone who can write the file; a checkpoint signature cannot
//   be forged without the signing key, so everything up to the last checkpoint is sealed.
//   Lines after the last checkpoint are only chained (verify_log reports how many).
//
// Files: the active file is security.log; when the next line would take it past
// max_file_bytes, a checkpoint is written, the file is renamed to
// security-<YYYYMMDDTHHMMSSmmmZ>.log (UTC, from the Clock) and a new security.log continues
// the chain. Rotated files older than `retention` are deleted at rotation and at open, and
// each deletion is itself recorded as a "log.retention.deleted" event.
//
// Durability: every line is written with a single write() and fdatasync()ed before
// append() returns. A failed write is truncated away so the file never keeps a torn line.
// post() queues an event for the log's own thread instead, for callers that must not wait for
// the disk (a rule firing on the server's I/O thread); it is written within milliseconds, in
// the order posted and before anything appended after it, but a crash can lose it meanwhile.
//
// Thread safety: a SecurityLog may be shared between threads; every member function takes
// an internal std::mutex (post() only the queue's). Only one SecurityLog (one process) may
// write a directory.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/error.h"
#include "crypto/secret.h"

namespace torii::events {

enum class Outcome { success, failure, denied };

[[nodiscard]] std::string_view to_string(Outcome outcome);

struct SecurityEvent {
  std::string actor;   // "system", "user:<id>", "device:<id>", "admin-cli"; must not be empty
  std::string action;  // dotted verb, [a-z0-9_.], e.g. "server.start", "login.failed"
  std::string object;  // what was acted on, e.g. "device:abc"; may be empty
  Outcome outcome = Outcome::success;
  std::string source;                                 // peer address "203.0.113.5:51234" or "local"; may be empty
  nlohmann::json details = nlohmann::json::object();  // small, never secrets
};

// The secret guard: fails with invalid_argument when any key in details (at any depth)
// contains, case-insensitively and with '-' read as '_', one of: password, passphrase,
// token, secret, private_key, key_pem; or when a string value holds a PEM private key.
// It errs on the side of refusing: name such fields e.g. "setup_id", not "token_id".
// append() runs it on every event, so a caller bug cannot write a secret to the log.
[[nodiscard]] Status check_no_secrets(const nlohmann::json& details);

class SecurityLog {
 public:
  struct Options {
    std::filesystem::path directory;  // created 0700 if missing; must be owner-only
    // A checkpoint after every this many events (0: only by time, on close and on demand).
    std::size_t checkpoint_every = 100;
    // Also a checkpoint when an event is appended at least this long after the last
    // checkpoint (or after open). 0 disables.
    std::chrono::milliseconds checkpoint_interval = std::chrono::hours(1);
    std::uint64_t max_file_bytes = 16u << 20;  // at least 4 KiB
    // Rotated files rotated longer ago than this are deleted. 0 keeps them forever.
    std::chrono::milliseconds retention = std::chrono::days(365);
  };

  // Opens (or creates) the log in options.directory. signing_secret_key is a 64-byte
  // libsodium Ed25519 secret key; checkpoints are signed with it.
  //
  // When the log already has lines, the chain continues from the last one: that line must
  // be complete, parse, be canonical and have a hash that recomputes; otherwise open fails
  // with Errc::corrupt naming the file and line, and the operator must run verify_log and
  // repair or move the file aside. Nothing is silently skipped. Only the last line is
  // checked here; verify_log checks the rest.
  //
  // clock must outlive the log. Fails with permission_denied when the directory or
  // security.log grants access to group or others (JPCERT I-5).
  [[nodiscard]] static Result<std::unique_ptr<SecurityLog>> open(Options options, const Clock& clock,
                                                                 crypto::SecretBytes signing_secret_key);

  SecurityLog(const SecurityLog&) = delete;
  SecurityLog& operator=(const SecurityLog&) = delete;
  // Closes as close() does; errors are lost, so call close() to see them.
  ~SecurityLog();

  // Appends one event (with a checkpoint after it when one is due, and a rotation before
  // it when the file is full). Fails with invalid_argument for an empty actor, a malformed
  // action, non-object details or details refused by check_no_secrets; those events are
  // not written. actor, object and source longer than 256 bytes are cut (marked
  // "...[cut]") and details over 8 KiB are replaced by {"cut":true,"bytes":N}, so a
  // hostile peer cannot make its event unloggable. io_error when the disk refuses the
  // line (or the rotation before it); when only the checkpoint after it fails, the event
  // is already written, so do not retry it. unavailable after close().
  [[nodiscard]] Status append(const SecurityEvent& event);

  // Queues the event for the log's thread (started at the first post) and returns without
  // waiting for the disk. The event is checked and cut as append() does, and its time taken,
  // now: those failures are returned here; a failure to write it later is logged. Posted
  // events are written in the order posted, each before any event appended after its post.
  // unavailable after close().
  [[nodiscard]] Status post(const SecurityEvent& event);

  // Writes what was posted, then a checkpoint, unless the last line already is one (nothing
  // new to seal).
  [[nodiscard]] Status checkpoint();

  // Writes a final checkpoint (unless the last line is one) and closes the file. Later
  // calls to append() fail with unavailable; a second close() does nothing.
  [[nodiscard]] Status close();

  // The Ed25519 public key matching the signing key: what verify_log needs.
  [[nodiscard]] Bytes public_key() const;

  // The seq the next line will get.
  [[nodiscard]] std::uint64_t next_seq() const;

 private:
  SecurityLog(Options options, const Clock& clock, crypto::SecretBytes key);

  [[nodiscard]] Bytes public_key_unlocked() const;
  [[nodiscard]] Status open_active_locked();
  [[nodiscard]] Status write_record_locked(nlohmann::json record);
  [[nodiscard]] Status append_record_locked(const nlohmann::json& record);
  [[nodiscard]] Status checkpoint_locked();
  [[nodiscard]] Status rotate_locked();
  [[nodiscard]] Status apply_retention_locked();
  [[nodiscard]] Status close_locked();
  // Writes the events posted so far; their first failure (each is logged). emptied_at: set to
  // the time the queue was emptied, taken with it held.
  Status write_posted_locked(std::chrono::system_clock::time_point* emptied_at = nullptr);
  void run_posted();  // the thread of post()

  Options options_;
  const Clock& clock_;
  crypto::SecretBytes key_;
  mutable std::mutex mutex_;
  int fd_ = -1;
  int lock_fd_ = -1;  // holds an exclusive flock for the log's lifetime
  bool closed_ = false;
  std::uint64_t file_bytes_ = 0;  // size of security.log
  std::uint64_t next_seq_ = 1;
  std::string prev_;                // hash of the last line written
  bool last_is_checkpoint_ = true;  // true also for an empty log: nothing to seal
  std::size_t events_since_checkpoint_ = 0;
  std::chrono::system_clock::time_point last_checkpoint_at_{};
  std::chrono::system_clock::time_point last_rotated_at_{};  // newest rotated file's time

  // post()'s queue: events as records without seq, prev and hash. Taken with mutex_ held
  // first when both are held.
  std::mutex posted_mutex_;
  std::condition_variable posted_ready_;
  std::deque<nlohmann::json> posted_;  // guarded by posted_mutex_, as are the two flags below
  bool posting_closed_ = false;        // close() has begun: post() refuses
  bool posting_stopped_ = false;       // the destructor stops the thread
  std::thread poster_;                 // last: started by the first post()
};

}  // namespace torii::events

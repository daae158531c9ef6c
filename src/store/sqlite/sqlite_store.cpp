// SQLite implementation of the store interfaces.
//
// Locking: one sqlite3 connection (opened SQLITE_OPEN_NOMUTEX) is shared by every
// repository and guarded by Db::mutex_. EVERY public method of every repository, and
// Store::transaction(), locks it for its whole duration. The mutex is recursive
// (std::recursive_mutex) on purpose: a transaction body runs with the mutex held, so other
// threads cannot slip their statements into the open transaction, while the body's own
// repository calls on the same thread re-enter it. A file-backed store has a second
// connection, the Checkpointer's, which only copies the write-ahead log into the database
// file, on a thread of its own.
//
// Statements: the repositories of migration 1 prepare theirs per call (rare calls). The
// gateway's repositories (devices onwards) sit on the message path, and the console's
// (organisations onwards) on every request, so they take theirs from Db's statement cache,
// prepared once per connection and reset after every use.
#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/file.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/statement.h"

namespace torii::store::sqlite {
namespace {

using Lock = std::lock_guard<std::recursive_mutex>;

// Releases a connection that failed to open or configure.
struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

Status require_nonempty(std::string_view value, std::string_view what) {
  if (value.empty()) return fail(Errc::invalid_argument, fmt::format("store: {} is empty", what));
  return ok();
}

// A statement taken from Db's cache for the duration of one call. Resets the statement and
// drops its bindings when it goes, so no pointer to the caller's buffers outlives the call
// and no read stays open. Use and destroy it with Db's mutex held.
class CachedStatement {
 public:
  CachedStatement(Statement& stmt, bool& in_use) : stmt_(&stmt), in_use_(&in_use) { in_use = true; }
  // For a statement whose cached copy is already in use further up the stack.
  explicit CachedStatement(std::unique_ptr<Statement> owned) : stmt_(owned.get()), owned_(std::move(owned)) {}

  CachedStatement(CachedStatement&& other) noexcept
      : stmt_(std::exchange(other.stmt_, nullptr)),
        in_use_(std::exchange(other.in_use_, nullptr)),
        owned_(std::move(other.owned_)) {}
  CachedStatement& operator=(CachedStatement&&) = delete;
  CachedStatement(const CachedStatement&) = delete;
  CachedStatement& operator=(const CachedStatement&) = delete;
  ~CachedStatement() {
    if (stmt_ != nullptr) stmt_->reset();
    if (in_use_ != nullptr) *in_use_ = false;
  }

  [[nodiscard]] Statement& operator*() const { return *stmt_; }

 private:
  Statement* stmt_ = nullptr;
  bool* in_use_ = nullptr;
  std::unique_ptr<Statement> owned_;
};

// Copies the write-ahead log into the database file on a thread and a connection of its own,
// so that a commit does not wait for it: SQLite's own automatic checkpoint runs on the
// committing thread, after the commit, and syncs the database file there (the store
// writer's, in the gateway: every PUBACK of the next batch waited for it). After each commit
// the store's connection tells it how long the log is (Db::wal_committed); from
// kCheckpointAtPages on, it copies the log in two steps:
//   1. PASSIVE checkpoints, which copy what no reader still needs and neither wait for nor
//      block the store's connection, while commits go on adding to the log (at most
//      kPassiveRounds, until fewer than kRestartBelowPages pages are left);
//   2. a RESTART checkpoint, which waits for the commit under way, holds the next one back
//      while it copies those last pages, and makes the next write start the log again from
//      its beginning (otherwise, with commits all the time, it would only ever grow).
// Should the log reach kBackstopPages all the same (a reader of another process holding old
// pages), the committing thread checkpoints, as SQLite would by itself. Failures are left to
// the next checkpoint, as SQLite's automatic one leaves them.
class Checkpointer {
 public:
  static constexpr int kCheckpointAtPages = 8000;  // about 31 MiB of log
  static constexpr int kRestartBelowPages = 1000;
  static constexpr int kPassiveRounds = 4;
  static constexpr int kBackstopPages = 64000;

  explicit Checkpointer(DbHandle db) : db_(std::move(db)), thread_([this] { run(); }) {}
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  Checkpointer(Checkpointer&&) = delete;
  Checkpointer& operator=(Checkpointer&&) = delete;
  ~Checkpointer() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // A connection of its own to the store's file, with the log opened (a connection that has
  // read nothing yet would not checkpoint).
  static Result<std::unique_ptr<Checkpointer>> open(const char* file) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(
        file, &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
        nullptr);
    DbHandle db(raw);
    if (rc != SQLITE_OK) return tl::unexpected(sqlite_error(raw, rc, "open the checkpointer's connection"));
    // busy_timeout: how long the RESTART step waits for the store's commit under way, and then
    // for readers of older pages (it holds the next commit back meanwhile): briefly, or the
    // log starts again after a later checkpoint.
    if (auto s = execute_script(
            raw, "PRAGMA busy_timeout = 100; PRAGMA synchronous = FULL; SELECT count(*) FROM sqlite_schema",
            "checkpointer");
        !s) {
      return tl::unexpected(std::move(s.error()));
    }
    return std::make_unique<Checkpointer>(std::move(db));
  }

  // From the store's connection after a commit that left `pages` pages in the log.
  void wal_grew(int pages) {
    if (pages < kCheckpointAtPages) return;
    {
      const std::lock_guard lock(mutex_);
      due_ = true;
    }
    wake_.notify_one();
  }

  // Held while a checkpoint runs on either connection: the store's TRUNCATE checkpoint after
  // erasing sensitive data waits for a copy under way instead of failing beside it.
  [[nodiscard]] std::mutex& running() { return running_; }

 private:
  void run() {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return due_ || stopping_; });
        if (stopping_) return;
      }
      {
        const std::lock_guard copying(running_);
        copy();
      }
      // Done, with what commits asked for meanwhile: the log starts again at the next one.
      const std::lock_guard lock(mutex_);
      due_ = false;
    }
  }

  void copy() {
    for (int round = 0; round < kPassiveRounds; ++round) {
      int log = 0;
      int copied = 0;
      if (sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) != SQLITE_OK) return;
      if (log - copied < kRestartBelowPages) break;
    }
    (void)sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
  }

  DbHandle db_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool due_ = false;       // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::mutex running_;
  std::thread thread_;  // last: it starts once the rest is in place
};

// Makes the commits of transaction_unsynced() durable, from any thread. Those commit with
// synchronous = NORMAL: SQLite writes them to the write-ahead log without waiting for the
// disk. An fdatasync of the log through a descriptor of this class's then makes every commit
// written before it durable, as synchronous = FULL would have at the commit (the kernel syncs
// the file, whichever descriptor asks). SQLite removes the log only when the store closes;
// should it be another file all the same, it is opened again, and its directory synced, so
// that a log just made is still found after a crash.
class LogSync {
 public:
  explicit LogSync(std::filesystem::path log) : log_(std::move(log)) {}
  LogSync(const LogSync&) = delete;
  LogSync& operator=(const LogSync&) = delete;
  LogSync(LogSync&&) = delete;
  LogSync& operator=(LogSync&&) = delete;
  ~LogSync() {
    if (fd_ >= 0) ::close(fd_);
  }

  [[nodiscard]] Status sync() {
    const std::lock_guard lock(mutex_);
    struct stat now {};
    if (::stat(log_.c_str(), &now) != 0) {
      return fail(Errc::io_error,
                  fmt::format("store: cannot find the write-ahead log {}: {}", log_.string(), errno_text(errno)));
    }
    if (fd_ < 0 || now.st_ino != inode_ || now.st_dev != device_) {
      if (auto s = reopen(); !s) return s;
    }
    while (::fdatasync(fd_) != 0) {
      if (errno != EINTR) {
        return fail(Errc::io_error, fmt::format("store: cannot sync the write-ahead log: {}", errno_text(errno)));
      }
    }
    return ok();
  }

 private:
  Status reopen() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    const int fd = ::open(log_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      return fail(Errc::io_error,
                  fmt::format("store: cannot open the write-ahead log {}: {}", log_.string(), errno_text(errno)));
    }
    struct stat opened {};
    if (::fstat(fd, &opened) != 0) {
      const int err = errno;
      ::close(fd);
      return fail(Errc::io_error, fmt::format("store: cannot read the write-ahead log's status: {}", errno_text(err)));
    }
    const auto directory = log_.has_parent_path() ? log_.parent_path() : std::filesystem::path(".");
    const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool dir_synced = dir >= 0 && ::fsync(dir) == 0;
    const int err = errno;
    if (dir >= 0) ::close(dir);
    if (!dir_synced) {
      ::close(fd);
      return fail(Errc::io_error,
                  fmt::format("store: cannot sync the directory {}: {}", directory.string(), errno_text(err)));
    }
    fd_ = fd;
    inode_ = opened.st_ino;
    device_ = opened.st_dev;
    return ok();
  }

  const std::filesystem::path log_;
  std::mutex mutex_;
  int fd_ = -1;  // guarded by mutex_, as are inode_ and device_
  ino_t inode_ = 0;
  dev_t device_ = 0;
};

// The single connection, its mutex and the transaction bookkeeping.
class Db {
 public:
  // checkpointer: for a file-backed store (null in memory), copies the log from now on in
  // place of SQLite's automatic checkpoint.
  Db(DbHandle db, bool file_backed, int version, std::unique_ptr<Checkpointer> checkpointer)
      : db_(std::move(db)), file_backed_(file_backed), version_(version), checkpointer_(std::move(checkpointer)) {
    if (checkpointer_) sqlite3_wal_hook(db_.get(), &Db::wal_committed, this);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  Db(Db&&) = delete;
  Db& operator=(Db&&) = delete;
  ~Db() {
    // The checkpointer's connection closes first, so that the store's, the last one, copies
    // what is left and removes the log.
    if (checkpointer_) sqlite3_wal_hook(db_.get(), nullptr, nullptr);
    checkpointer_.reset();
  }

  [[nodiscard]] std::recursive_mutex& mutex() { return mutex_; }
  [[nodiscard]] int version() const { return version_; }

  [[nodiscard]] Result<Statement> prepare(std::string_view sql) { return Statement::prepare(db_.get(), sql); }

  // The cached statement for this constant SQL, prepared on first use. Mutex held. SQLite
  // re-prepares a cached statement by itself if the schema changes.
  [[nodiscard]] Result<CachedStatement> cached(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      auto stmt = Statement::prepare(db_.get(), sql, Statement::Lifetime::persistent);
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      it = cache_.try_emplace(std::string(sql), CacheEntry{std::move(*stmt)}).first;
    }
    CacheEntry& entry = it->second;
    if (entry.in_use) {
      auto stmt = Statement::prepare(db_.get(), sql);
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      return CachedStatement(std::make_unique<Statement>(std::move(*stmt)));
    }
    return CachedStatement(entry.stmt, entry.in_use);
  }

  // The rowid of the row the last successful INSERT on this connection added. Mutex held.
  [[nodiscard]] std::int64_t last_insert_rowid() { return sqlite3_last_insert_rowid(db_.get()); }

  // Steps a statement that returns no rows; returns how many rows it changed.
  [[nodiscard]] Result<std::int64_t> execute(Statement& stmt) {
    if (auto s = stmt.run(); !s) return tl::unexpected(std::move(s.error()));
    return sqlite3_changes64(db_.get());
  }

  // Called (mutex held) after a committed-or-pending write that replaced or deleted bytes
  // that must not stay readable. secure_delete zeroes them in the page, but with WAL the old
  // page image remains in the database file (and older frames in the WAL) until a
  // checkpoint; a TRUNCATE checkpoint after the commit writes the zeroed pages back and
  // empties the WAL. Best effort: a checkpoint blocked by another process's reader is
  // completed by a later one, and the write itself has succeeded, so no error is returned.
  void erased_sensitive_data() {
    if (depth_ > 0) {
      erase_pending_ = true;
      return;
    }
    checkpoint();
  }

  // synced false: an outermost transaction of a file-backed store commits with synchronous =
  // NORMAL (LogSync makes it durable); every other statement keeps FULL.
  [[nodiscard]] Status transaction(const std::function<Status()>& body, bool synced = true) {
    const Lock lock(mutex_);
    if (synced || depth_ > 0 || !file_backed_) return run_transaction(body);
    if (auto s = execute_script(db_.get(), "PRAGMA synchronous = NORMAL", "defer the commit's sync"); !s) return s;
    // FULL again on every way out. Should that fail (SQLite out of memory), so does the call,
    // though its commit may have been made.
    struct Restore {
      sqlite3* db = nullptr;
      bool armed = true;
      ~Restore() {
        if (armed) (void)execute_script(db, "PRAGMA synchronous = FULL", "restore the commit's sync");
      }
    } restore{db_.get()};
    Status result = run_transaction(body);
    restore.armed = false;
    if (auto s = execute_script(db_.get(), "PRAGMA synchronous = FULL", "restore the commit's sync"); !s) return s;
    return result;
  }

 private:
  [[nodiscard]] Status run_transaction(const std::function<Status()>& body) {
    const bool nested = depth_ > 0;
    if (auto s = execute_script(db_.get(), nested ? "SAVEPOINT torii_nested" : "BEGIN IMMEDIATE", "begin transaction");
        !s) {
      return s;
    }
    ++depth_;
    // Rolls back if body throws; disarmed on the normal path.
    struct Unwind {
      Db* self = nullptr;
      bool nested = false;
      bool armed = true;
      ~Unwind() {
        if (!armed) return;
        --self->depth_;
        self->abort(nested);
      }
    } unwind{this, nested};
    Status result = body();
    unwind.armed = false;
    --depth_;

    if (sqlite3_get_autocommit(db_.get()) != 0) {
      // SQLite rolled the whole transaction back by itself (I/O error, disk full, ...).
      erase_pending_ = false;
      if (!result) return result;
      return fail(Errc::io_error, "store: the database rolled the transaction back");
    }
    if (!result) {
      abort(nested);
      return result;
    }
    if (nested) return execute_script(db_.get(), "RELEASE torii_nested", "release savepoint");
    if (auto s = execute_script(db_.get(), "COMMIT", "commit transaction"); !s) {
      abort(false);
      return s;
    }
    if (std::exchange(erase_pending_, false)) checkpoint();
    return ok();
  }

  // Undoes the innermost open level. Failures are ignored: the transaction is being
  // abandoned anyway, and SQLite may already have rolled it back.
  void abort(bool nested) {
    if (sqlite3_get_autocommit(db_.get()) != 0) {
      erase_pending_ = false;
      return;
    }
    if (nested) {
      (void)execute_script(db_.get(), "ROLLBACK TO torii_nested", "roll back savepoint");
      (void)execute_script(db_.get(), "RELEASE torii_nested", "release savepoint");
    } else {
      (void)execute_script(db_.get(), "ROLLBACK", "roll back transaction");
      erase_pending_ = false;
    }
  }

  void checkpoint() {
    if (!file_backed_) return;
    std::unique_lock<std::mutex> copying;
    if (checkpointer_) copying = std::unique_lock(checkpointer_->running());
    (void)execute_script(db_.get(), "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint");
  }

  // SQLite's WAL hook: after each commit of the store's connection (mutex held), with the
  // number of pages in the log.
  static int wal_committed(void* self, sqlite3* db, const char* /*schema*/, int pages) {
    auto& checkpointer = *static_cast<Db*>(self)->checkpointer_;
    if (pages < Checkpointer::kBackstopPages) {
      checkpointer.wal_grew(pages);
      return SQLITE_OK;
    }
    const std::unique_lock copying(checkpointer.running(), std::try_to_lock);
    if (copying.owns_lock()) {
      (void)sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
    return SQLITE_OK;
  }

  struct CacheEntry {
    Statement stmt;
    bool in_use = false;  // checked out by a CachedStatement
  };

  DbHandle db_;
  const bool file_backed_;
  const int version_;
  std::recursive_mutex mutex_;
  int depth_ = 0;               // open transaction levels; guarded by mutex_
  bool erase_pending_ = false;  // checkpoint due after the outermost commit; guarded by mutex_
  // Declared after db_, so the statements are finalized before the connection closes.
  std::map<std::string, CacheEntry, std::less<>> cache_;  // guarded by mutex_
  std::unique_ptr<Checkpointer> checkpointer_;            // null for an in-memory store
};

// ---------------------------------------------------------------------------------------

class SqliteMetaRepository final : public MetaRepository {
 public:
  explicit SqliteMetaRepository(Db& db) : db_(db) {}

  Result<std::optional<Bytes>> get(std::string_view key) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT value FROM meta WHERE key = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, key);
    auto row = stmt->step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return std::optional<Bytes>();
    return std::optional<Bytes>(stmt->column_blob(0));
  }

  Status put(std::string_view key, ByteView value) override {
    if (auto s = require_nonempty(key, "meta key"); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, key).bind_blob(2, value);
    return stmt->run();
  }

  Result<bool> remove(std::string_view key) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("DELETE FROM meta WHERE key = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, key);
    auto changed = db_.execute(*stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed > 0;
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

class SqliteDataKeyRepository final : public DataKeyRepository {
 public:
  explicit SqliteDataKeyRepository(Db& db) : db_(db) {}

  Status insert(const WrappedKey& key) override {
    if (auto s = require_nonempty(key.id, "data key id"); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("INSERT INTO data_keys (id, purpose, wrapped, created_at_ms) VALUES (?1, ?2, ?3, ?4)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, key.id).bind_text(2, key.purpose).bind_blob(3, key.wrapped).bind_int(4, key.created_at);
    return stmt->run();
  }

  Result<std::optional<WrappedKey>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT id, purpose, wrapped, created_at_ms FROM data_keys WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, id);
    auto row = stmt->step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return std::optional<WrappedKey>();
    return std::optional<WrappedKey>(
        WrappedKey{stmt->column_text(0), stmt->column_text(1), stmt->column_blob(2), stmt->column_int(3)});
  }

  Result<bool> remove(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("DELETE FROM data_keys WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, id);
    auto changed = db_.execute(*stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    if (*changed == 0) return false;
    db_.erased_sensitive_data();
    return true;
  }

  Result<std::vector<std::string>> list_ids(std::string_view purpose) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT id FROM data_keys WHERE purpose = ?1 ORDER BY created_at_ms, id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, purpose);
    std::vector<std::string> ids;
    for (;;) {
      auto row = stmt->step();
      if (!row) return tl::unexpected(std::move(row.error()));
      if (!*row) return ids;
      ids.push_back(stmt->column_text(0));
    }
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

class SqliteSecretRepository final : public SecretRepository {
 public:
  explicit SqliteSecretRepository(Db& db) : db_(db) {}

  Status put(const SealedSecret& secret) override {
    if (auto s = require_nonempty(secret.name, "secret name"); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare(
        "INSERT INTO secrets (name, key_id, sealed, updated_at_ms) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, "
        "updated_at_ms = excluded.updated_at_ms");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, secret.name)
        .bind_text(2, secret.key_id)
        .bind_blob(3, secret.sealed)
        .bind_int(4, secret.updated_at);
    auto changed = db_.execute(*stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    db_.erased_sensitive_data();  // the previous value, if any, must not linger
    return ok();
  }

  Result<std::optional<SealedSecret>> find(std::string_view name) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT name, key_id, sealed, updated_at_ms FROM secrets WHERE name = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, name);
    auto row = stmt->step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return std::optional<SealedSecret>();
    return std::optional<SealedSecret>(
        SealedSecret{stmt->column_text(0), stmt->column_text(1), stmt->column_blob(2), stmt->column_int(3)});
  }

  Result<bool> remove(std::string_view name) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("DELETE FROM secrets WHERE name = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, name);
    auto changed = db_.execute(*stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    if (*changed == 0) return false;
    db_.erased_sensitive_data();
    return true;
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

// Column list shared by every certificate query; a compile-time literal, never a value.
#define TORII_CERT_COLUMNS                                                                            \
  "serial_hex, kind, subject, device_id, issuer_serial_hex, pem, fingerprint_sha256, not_before_ms, " \
  "not_after_ms, revoked_at_ms, revocation_reason"

CertificateRecord read_certificate(const Statement& stmt) {
  CertificateRecord c;
  c.serial_hex = stmt.column_text(0);
  c.kind = stmt.column_text(1);
  c.subject = stmt.column_text(2);
  c.device_id = stmt.column_optional_text(3);
  c.issuer_serial_hex = stmt.column_text(4);
  c.pem = stmt.column_text(5);
  c.fingerprint_sha256 = stmt.column_text(6);
  c.not_before = stmt.column_int(7);
  c.not_after = stmt.column_int(8);
  c.revoked_at = stmt.column_optional_int(9);
  c.revocation_reason = stmt.column_text(10);
  return c;
}

Result<std::optional<CertificateRecord>> read_one_certificate(Statement& stmt) {
  auto row = stmt.step();
  if (!row) return tl::unexpected(std::move(row.error()));
  if (!*row) return std::optional<CertificateRecord>();
  return std::optional<CertificateRecord>(read_certificate(stmt));
}

// Reads every row of stmt with read(stmt).
template <class Read>
auto read_all(Statement& stmt, Read read) -> Result<std::vector<decltype(read(stmt))>> {
  std::vector<decltype(read(stmt))> out;
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return out;
    out.push_back(read(stmt));
  }
}

class SqliteCertificateRepository final : public CertificateRepository {
 public:
  explicit SqliteCertificateRepository(Db& db) : db_(db) {}

  Status insert(const CertificateRecord& cert) override {
    if (auto s = validate_certificate(cert); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("INSERT INTO certificates (" TORII_CERT_COLUMNS
                            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, cert.serial_hex)
        .bind_text(2, cert.kind)
        .bind_text(3, cert.subject)
        .bind_optional_text(4, cert.device_id)
        .bind_text(5, cert.issuer_serial_hex)
        .bind_text(6, cert.pem)
        .bind_text(7, cert.fingerprint_sha256)
        .bind_int(8, cert.not_before)
        .bind_int(9, cert.not_after)
        .bind_optional_int(10, cert.revoked_at)
        .bind_text(11, cert.revocation_reason);
    return stmt->run();
  }

  Result<std::optional<CertificateRecord>> find_by_serial(std::string_view serial_hex) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT " TORII_CERT_COLUMNS " FROM certificates WHERE serial_hex = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, serial_hex);
    return read_one_certificate(*stmt);
  }

  Result<std::optional<CertificateRecord>> find_by_fingerprint(std::string_view fingerprint_sha256) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT " TORII_CERT_COLUMNS " FROM certificates WHERE fingerprint_sha256 = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, fingerprint_sha256);
    return read_one_certificate(*stmt);
  }

  Status revoke(std::string_view serial_hex, UnixMillis at, std::string_view reason) override {
    return db_.transaction([&]() -> Status {
      auto update = db_.prepare(
          "UPDATE certificates SET revoked_at_ms = ?2, revocation_reason = ?3 "
          "WHERE serial_hex = ?1 AND revoked_at_ms IS NULL");
      if (!update) return tl::unexpected(std::move(update.error()));
      update->bind_text(1, serial_hex).bind_int(2, at).bind_text(3, reason);
      auto changed = db_.execute(*update);
      if (!changed) return tl::unexpected(std::move(changed.error()));
      if (*changed > 0) return ok();
      auto exists = db_.prepare("SELECT 1 FROM certificates WHERE serial_hex = ?1");
      if (!exists) return tl::unexpected(std::move(exists.error()));
      exists->bind_text(1, serial_hex);
      auto row = exists->step();
      if (!row) return tl::unexpected(std::move(row.error()));
      if (!*row) return fail(Errc::not_found, "store: revoke: no certificate with this serial");
      return ok();  // already revoked: the first revocation stands
    });
  }

  Result<std::vector<CertificateRecord>> list_revoked(std::string_view issuer_serial_hex) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT " TORII_CERT_COLUMNS
                            " FROM certificates WHERE issuer_serial_hex = ?1 AND revoked_at_ms IS NOT NULL "
                            "ORDER BY revoked_at_ms, serial_hex");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, issuer_serial_hex);
    return read_all(*stmt, read_certificate);
  }

  Result<std::vector<CertificateRecord>> list_expiring(UnixMillis before, bool include_revoked) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT " TORII_CERT_COLUMNS
                            " FROM certificates WHERE not_after_ms < ?1 AND (?2 OR revoked_at_ms IS NULL) "
                            "ORDER BY not_after_ms, serial_hex");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_int(1, before).bind_int(2, include_revoked ? 1 : 0);
    return read_all(*stmt, read_certificate);
  }

  Result<std::vector<CertificateRecord>> list_last_of_devices_ending_by(UnixMillis by) override {
    const Lock lock(db_.mutex());
    // Through the index on not_after; each candidate is checked against the device's other
    // certificates through the index on device_id.
    auto stmt = db_.prepare(
        "SELECT " TORII_CERT_COLUMNS
        " FROM certificates AS c WHERE c.not_after_ms <= ?1 AND c.kind = 'device' AND c.revoked_at_ms IS NULL "
        "AND c.device_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM certificates AS n "
        "WHERE n.device_id = c.device_id AND n.kind = 'device' AND n.revoked_at_ms IS NULL "
        "AND (n.not_after_ms > c.not_after_ms OR (n.not_after_ms = c.not_after_ms AND n.serial_hex > c.serial_hex))) "
        "ORDER BY c.device_id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_int(1, by);
    return read_all(*stmt, read_certificate);
  }

  Result<std::vector<std::string>> revoke_superseded(std::string_view device_id, UnixMillis not_before,
                                                     UnixMillis at) override {
    // Cached: the gateway asks at every connection.
    const auto older = [&]() -> Result<std::vector<std::string>> {
      auto stmt = db_.cached(
          "SELECT serial_hex FROM certificates WHERE device_id = ?1 AND kind = 'device' "
          "AND revoked_at_ms IS NULL AND not_before_ms < ?2 ORDER BY not_before_ms, serial_hex");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      (**stmt).bind_text(1, device_id).bind_int(2, not_before);
      return read_all(**stmt, [](const Statement& row) { return row.column_text(0); });
    };
    {
      // A read first: it takes no write lock, and there is nearly always nothing to revoke.
      const Lock lock(db_.mutex());
      auto found = older();
      if (!found || found->empty()) return found;
    }
    std::vector<std::string> revoked;
    auto done = db_.transaction([&]() -> Status {
      auto found = older();
      if (!found) return tl::unexpected(std::move(found.error()));
      revoked = std::move(*found);
      auto update = db_.prepare(
          "UPDATE certificates SET revoked_at_ms = ?3, revocation_reason = 'superseded' "
          "WHERE device_id = ?1 AND kind = 'device' AND revoked_at_ms IS NULL AND not_before_ms < ?2");
      if (!update) return tl::unexpected(std::move(update.error()));
      update->bind_text(1, device_id).bind_int(2, not_before).bind_int(3, at);
      auto changed = db_.execute(*update);
      if (!changed) return tl::unexpected(std::move(changed.error()));
      return ok();
    });
    if (!done) return tl::unexpected(std::move(done.error()));
    return revoked;
  }

  Result<std::optional<CertificateRecord>> latest(std::string_view kind) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT " TORII_CERT_COLUMNS
                            " FROM certificates WHERE kind = ?1 AND revoked_at_ms IS NULL "
                            "ORDER BY not_before_ms DESC, rowid DESC LIMIT 1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, kind);
    return read_one_certificate(*stmt);
  }

  Result<std::vector<CertificateRecord>> list_for_device(std::string_view device_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT " TORII_CERT_COLUMNS
                            " FROM certificates WHERE device_id = ?1 ORDER BY not_before_ms, serial_hex");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, device_id);
    return read_all(*stmt, read_certificate);
  }

 private:
  Db& db_;
};

#undef TORII_CERT_COLUMNS

// ---------------------------------------------------------------------------------------

class SqliteSetupTokenRepository final : public SetupTokenRepository {
 public:
  explicit SqliteSetupTokenRepository(Db& db) : db_(db) {}

  Status insert(const SetupToken& token) override {
    if (auto s = require_nonempty(token.token_hash, "setup token hash"); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare(
        "INSERT INTO setup_tokens (token_hash, created_at_ms, expires_at_ms, used_at_ms) VALUES (?1, ?2, ?3, ?4)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, token.token_hash)
        .bind_int(2, token.created_at)
        .bind_int(3, token.expires_at)
        .bind_optional_int(4, token.used_at);
    return stmt->run();
  }

  Result<ConsumeOutcome> consume(std::string_view token_hash, UnixMillis now) override {
    ConsumeOutcome outcome = ConsumeOutcome::unknown;
    // The UPDATE alone decides (atomic even against other processes); the SELECT only
    // explains a refusal.
    auto s = db_.transaction([&]() -> Status {
      auto update = db_.prepare(
          "UPDATE setup_tokens SET used_at_ms = ?2 "
          "WHERE token_hash = ?1 AND used_at_ms IS NULL AND expires_at_ms > ?2");
      if (!update) return tl::unexpected(std::move(update.error()));
      update->bind_text(1, token_hash).bind_int(2, now);
      auto changed = db_.execute(*update);
      if (!changed) return tl::unexpected(std::move(changed.error()));
      if (*changed > 0) {
        outcome = ConsumeOutcome::consumed;
        return ok();
      }
      auto why = db_.prepare("SELECT used_at_ms IS NOT NULL FROM setup_tokens WHERE token_hash = ?1");
      if (!why) return tl::unexpected(std::move(why.error()));
      why->bind_text(1, token_hash);
      auto row = why->step();
      if (!row) return tl::unexpected(std::move(row.error()));
      if (!*row) {
        outcome = ConsumeOutcome::unknown;
      } else {
        outcome = why->column_int(0) != 0 ? ConsumeOutcome::already_used : ConsumeOutcome::expired;
      }
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return outcome;
  }

  Result<std::size_t> revoke_all(UnixMillis now) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("UPDATE setup_tokens SET used_at_ms = ?1 WHERE used_at_ms IS NULL");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_int(1, now);
    auto changed = db_.execute(*stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return static_cast<std::size_t>(*changed);
  }

  Result<std::size_t> count_active(UnixMillis now) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT COUNT(*) FROM setup_tokens WHERE used_at_ms IS NULL AND expires_at_ms > ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_int(1, now);
    auto row = stmt->step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return fail(Errc::io_error, "store: count setup tokens: no result row");
    return static_cast<std::size_t>(stmt->column_int(0));
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

class SqliteCounterRepository final : public CounterRepository {
 public:
  explicit SqliteCounterRepository(Db& db) : db_(db) {}

  Result<std::uint64_t> next(std::string_view name) override {
    if (auto s = require_nonempty(name, "counter name"); !s) return tl::unexpected(std::move(s.error()));
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare(
        "INSERT INTO counters (name, value) VALUES (?1, 1) "
        "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_text(1, name);
    auto row = stmt->step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return fail(Errc::io_error, "store: counter increment returned no value");
    const std::int64_t value = stmt->column_int(0);
    if (auto done = stmt->run(); !done) return tl::unexpected(std::move(done.error()));
    if (value < 1) return fail(Errc::corrupt, "store: counter value out of range");
    return static_cast<std::uint64_t>(value);
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

// Reads the first row of stmt, if any, with read(stmt).
template <class Read>
auto read_one(Statement& stmt, Read read) -> Result<std::optional<decltype(read(stmt))>> {
  auto row = stmt.step();
  if (!row) return tl::unexpected(std::move(row.error()));
  if (!*row) return std::optional<decltype(read(stmt))>();
  return std::optional<decltype(read(stmt))>(read(stmt));
}

// Steps a statement that returns no rows and reports how many rows it changed.
Result<std::size_t> changed_rows(Db& db, Statement& stmt) {
  auto changed = db.execute(stmt);
  if (!changed) return tl::unexpected(std::move(changed.error()));
  return static_cast<std::size_t>(*changed);
}

// ---------------------------------------------------------------------------------------

#define TORII_DEVICE_COLUMNS                                                                                 \
  "id, organisation_id, name, profile_id, segment, serial_number, firmware_version, status, created_at_ms, " \
  "last_seen_at_ms, disabled_at_ms, disabled_reason, tags"

std::string join_tags(const std::vector<std::string>& tags) { return fmt::format("{}", fmt::join(tags, ",")); }

std::vector<std::string> split_tags(std::string_view joined) {
  std::vector<std::string> tags;
  while (!joined.empty()) {
    const auto comma = joined.find(',');
    tags.emplace_back(joined.substr(0, comma));
    if (comma == std::string_view::npos) break;
    joined.remove_prefix(comma + 1);
  }
  return tags;
}

DeviceRecord read_device(const Statement& stmt) {
  DeviceRecord d;
  d.id = stmt.column_text(0);
  d.organisation_id = stmt.column_text(1);
  d.name = stmt.column_text(2);
  d.profile_id = stmt.column_text(3);
  d.segment = stmt.column_text(4);
  d.serial_number = stmt.column_text(5);
  d.firmware_version = stmt.column_text(6);
  d.status = stmt.column_text(7);
  d.created_at = stmt.column_int(8);
  d.last_seen_at = stmt.column_optional_int(9);
  d.disabled_at = stmt.column_optional_int(10);
  d.disabled_reason = stmt.column_text(11);
  d.tags = split_tags(stmt.column_text(12));
  return d;
}

class SqliteDeviceRepository final : public DeviceRepository {
 public:
  explicit SqliteDeviceRepository(Db& db) : db_(db) {}

  Status insert(const DeviceRecord& device) override {
    if (auto s = validate_device(device); !s) return s;
    const std::string tags = join_tags(device.tags);  // bound by reference: lives until run()
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO devices (" TORII_DEVICE_COLUMNS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    Statement& q = **stmt;
    q.bind_text(1, device.id)
        .bind_text(2, device.organisation_id)
        .bind_text(3, device.name)
        .bind_text(4, device.profile_id)
        .bind_text(5, device.segment)
        .bind_text(6, device.serial_number)
        .bind_text(7, device.firmware_version)
        .bind_text(8, device.status)
        .bind_int(9, device.created_at)
        .bind_optional_int(10, device.last_seen_at)
        .bind_optional_int(11, device.disabled_at)
        .bind_text(12, device.disabled_reason)
        .bind_text(13, tags);
    return q.run();
  }

  Result<std::optional<DeviceRecord>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_DEVICE_COLUMNS " FROM devices WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return read_one(**stmt, read_device);
  }

  Result<std::vector<DeviceRecord>> list(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_DEVICE_COLUMNS " FROM devices WHERE organisation_id = ?1 ORDER BY id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_device);
  }

  Result<std::vector<DeviceRecord>> list_all() override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_DEVICE_COLUMNS " FROM devices ORDER BY id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_all(**stmt, read_device);
  }

  Status set_status(std::string_view id, std::string_view status, UnixMillis at, std::string_view reason) override {
    if (!is_device_status(status)) {
      return fail(Errc::invalid_argument,
                  fmt::format("store: device status ({} bytes) is not one of active, disabled", status.size()));
    }
    const Lock lock(db_.mutex());
    // SET expressions read the row as it was, so `status` below is the old status.
    auto stmt = db_.cached(
        "UPDATE devices SET status = ?2, "
        "disabled_at_ms = CASE WHEN ?2 = 'active' THEN NULL WHEN status = 'disabled' THEN disabled_at_ms ELSE ?3 END, "
        "disabled_reason = CASE WHEN ?2 = 'active' THEN '' WHEN status = 'disabled' THEN disabled_reason ELSE ?4 END "
        "WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id).bind_text(2, status).bind_int(3, at).bind_text(4, reason);
    return expect_one_row(**stmt, "set device status");
  }

  Status touch_last_seen(std::string_view id, UnixMillis at) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "UPDATE devices SET last_seen_at_ms = CASE WHEN last_seen_at_ms IS NULL OR last_seen_at_ms < ?2 THEN ?2 "
        "ELSE last_seen_at_ms END WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id).bind_int(2, at);
    return expect_one_row(**stmt, "touch device");
  }

  Status update_firmware(std::string_view id, std::string_view firmware_version) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("UPDATE devices SET firmware_version = ?2 WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id).bind_text(2, firmware_version);
    return expect_one_row(**stmt, "update device firmware");
  }

  Status set_tags(std::string_view id, const std::vector<std::string>& tags) override {
    if (auto s = validate_device_tags(tags); !s) return s;
    const std::string joined = join_tags(tags);  // bound by reference: lives until run()
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("UPDATE devices SET tags = ?2 WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id).bind_text(2, joined);
    return expect_one_row(**stmt, "set device tags");
  }

  Result<bool> remove(std::string_view id) override {
    bool removed = false;
    // The foreign keys' ON DELETE CASCADE removes the device's telemetry, latest values,
    // counters and commands; its routes and alerts go in the same transaction.
    auto s = db_.transaction([&]() -> Status {
      auto stmt = db_.cached("DELETE FROM devices WHERE id = ?1");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      (**stmt).bind_text(1, id);
      auto changed = changed_rows(db_, **stmt);
      if (!changed) return tl::unexpected(std::move(changed.error()));
      removed = *changed > 0;
      // Its alerts go too: a device deleted "with its data" leaves nothing that names it.
      auto alerts = db_.cached("DELETE FROM alerts WHERE device_id = ?1");
      if (!alerts) return tl::unexpected(std::move(alerts.error()));
      (**alerts).bind_text(1, id);
      if (auto gone = changed_rows(db_, **alerts); !gone) return tl::unexpected(std::move(gone.error()));
      auto routes = db_.cached(
          "DELETE FROM routes WHERE (from_kind = 'device' AND from_value = ?1) OR (to_kind = 'device' AND to_value = "
          "?1)");
      if (!routes) return tl::unexpected(std::move(routes.error()));
      (**routes).bind_text(1, id);
      auto gone = changed_rows(db_, **routes);
      if (!gone) return tl::unexpected(std::move(gone.error()));
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return removed;
  }

  Result<std::vector<DeviceRecord>> list_unused_since(UnixMillis cutoff) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_DEVICE_COLUMNS
                           " FROM devices WHERE status = 'active' AND COALESCE(last_seen_at_ms, created_at_ms) < ?1 "
                           "ORDER BY COALESCE(last_seen_at_ms, created_at_ms), id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_int(1, cutoff);
    return read_all(**stmt, read_device);
  }

 private:
  // Runs an UPDATE by primary key; not_found when it matched no row.
  Status expect_one_row(Statement& stmt, std::string_view what) {
    auto changed = changed_rows(db_, stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    if (*changed == 0) return fail(Errc::not_found, fmt::format("store: {}: no device with this id", what));
    return ok();
  }

  Db& db_;
};

#undef TORII_DEVICE_COLUMNS

// ---------------------------------------------------------------------------------------

#define TORII_PROFILE_COLUMNS "id, organisation_id, name, definition_json, version, updated_at_ms"

DeviceProfileRecord read_profile(const Statement& stmt) {
  DeviceProfileRecord p;
  p.id = stmt.column_text(0);
  p.organisation_id = stmt.column_text(1);
  p.name = stmt.column_text(2);
  p.definition_json = stmt.column_text(3);
  // CHECK (version >= 1) holds the lower bound; put() cannot outgrow int in practice.
  p.version = static_cast<int>(std::min<std::int64_t>(stmt.column_int(4), std::numeric_limits<int>::max()));
  p.updated_at = stmt.column_int(5);
  return p;
}

class SqliteDeviceProfileRepository final : public DeviceProfileRepository {
 public:
  explicit SqliteDeviceProfileRepository(Db& db) : db_(db) {}

  Result<int> put(const DeviceProfileRecord& profile) override {
    if (auto s = require_nonempty(profile.id, "device profile id"); !s) return tl::unexpected(std::move(s.error()));
    if (auto s = require_nonempty(profile.organisation_id, "device profile organisation id"); !s) {
      return tl::unexpected(std::move(s.error()));
    }
    const Lock lock(db_.mutex());
    // The WHERE of the upsert leaves another organisation's profile alone and returns no row.
    auto stmt =
        db_.cached("INSERT INTO device_profiles (" TORII_PROFILE_COLUMNS
                   ") VALUES (?1, ?2, ?3, ?4, 1, ?5) "
                   "ON CONFLICT (id) DO UPDATE SET name = excluded.name, definition_json = excluded.definition_json, "
                   "version = device_profiles.version + 1, updated_at_ms = excluded.updated_at_ms "
                   "WHERE device_profiles.organisation_id = excluded.organisation_id RETURNING version");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    Statement& q = **stmt;
    q.bind_text(1, profile.id)
        .bind_text(2, profile.organisation_id)
        .bind_text(3, profile.name)
        .bind_text(4, profile.definition_json)
        .bind_int(5, profile.updated_at);
    auto row = q.step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return fail(Errc::conflict, "store: put device profile: the id belongs to another organisation");
    const std::int64_t version = q.column_int(0);
    if (auto done = q.run(); !done) return tl::unexpected(std::move(done.error()));
    if (version < 1 || version > std::numeric_limits<int>::max()) {
      return fail(Errc::corrupt, "store: device profile version out of range");
    }
    return static_cast<int>(version);
  }

  Result<std::optional<DeviceProfileRecord>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_PROFILE_COLUMNS " FROM device_profiles WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return read_one(**stmt, read_profile);
  }

  Result<std::vector<DeviceProfileRecord>> list(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt =
        db_.cached("SELECT " TORII_PROFILE_COLUMNS " FROM device_profiles WHERE organisation_id = ?1 ORDER BY id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_profile);
  }

  Result<bool> remove(std::string_view id) override {
    bool removed = false;
    // The check and the delete share a write transaction, so no device can start using the
    // profile in between (other processes included).
    auto s = db_.transaction([&]() -> Status {
      {
        auto used = db_.cached("SELECT 1 FROM devices WHERE profile_id = ?1 LIMIT 1");
        if (!used) return tl::unexpected(std::move(used.error()));
        (**used).bind_text(1, id);
        auto row = (**used).step();
        if (!row) return tl::unexpected(std::move(row.error()));
        if (*row) return fail(Errc::conflict, "store: remove device profile: devices still use it");
      }
      auto stmt = db_.cached("DELETE FROM device_profiles WHERE id = ?1");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      (**stmt).bind_text(1, id);
      auto changed = changed_rows(db_, **stmt);
      if (!changed) return tl::unexpected(std::move(changed.error()));
      removed = *changed > 0;
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return removed;
  }

 private:
  Db& db_;
};

#undef TORII_PROFILE_COLUMNS

// ---------------------------------------------------------------------------------------

#define TORII_TELEMETRY_COLUMNS "seq, device_id, kind, message_key, received_at_ms, key_id, sealed"
// One row of an INSERT INTO telemetry's VALUES, and 64 of them: a batch is inserted 64 rows
// to a statement, which spares 63 statement starts and ends out of 64 (a good part of an
// append's cost).
#define TORII_TELEMETRY_ROW "(?, ?, ?, ?, ?, ?)"
#define TORII_TELEMETRY_ROWS_4 \
  TORII_TELEMETRY_ROW ", " TORII_TELEMETRY_ROW ", " TORII_TELEMETRY_ROW ", " TORII_TELEMETRY_ROW
#define TORII_TELEMETRY_ROWS_16 \
  TORII_TELEMETRY_ROWS_4 ", " TORII_TELEMETRY_ROWS_4 ", " TORII_TELEMETRY_ROWS_4 ", " TORII_TELEMETRY_ROWS_4
#define TORII_TELEMETRY_ROWS_64 \
  TORII_TELEMETRY_ROWS_16 ", " TORII_TELEMETRY_ROWS_16 ", " TORII_TELEMETRY_ROWS_16 ", " TORII_TELEMETRY_ROWS_16
#define TORII_TELEMETRY_INSERT \
  "INSERT INTO telemetry (device_id, kind, message_key, received_at_ms, key_id, sealed) VALUES "
// A message key already stored for the device makes a row's insert do nothing.
#define TORII_TELEMETRY_ON_CONFLICT " ON CONFLICT (device_id, message_key) WHERE message_key IS NOT NULL DO NOTHING"

TelemetryRecord read_telemetry(const Statement& stmt) {
  TelemetryRecord t;
  t.seq = stmt.column_int(0);
  t.device_id = stmt.column_text(1);
  t.kind = stmt.column_text(2);
  t.message_key = stmt.column_text(3);  // NULL (no key) reads as ""
  t.received_at = stmt.column_int(4);
  t.key_id = stmt.column_text(5);
  t.sealed = stmt.column_blob(6);
  return t;
}

class SqliteTelemetryRepository final : public TelemetryRepository {
 public:
  explicit SqliteTelemetryRepository(Db& db) : db_(db) {}

  Result<std::vector<std::int64_t>> append(std::span<const TelemetryRecord> records) override {
    for (const TelemetryRecord& r : records) {
      if (auto s = require_nonempty(r.device_id, "telemetry device id"); !s)
        return tl::unexpected(std::move(s.error()));
      if (!is_telemetry_kind(r.kind)) {
        return fail(
            Errc::invalid_argument,
            fmt::format("store: telemetry kind ({} bytes) is not one of telemetry, events, state, results, derived",
                        r.kind.size()));
      }
    }
    std::vector<std::int64_t> seqs;
    if (records.empty()) return seqs;
    seqs.reserve(records.size());
    // A savepoint inside the caller's transaction (or a transaction of its own), so a
    // failing record takes the records before it back with it.
    auto s = db_.transaction([&]() -> Status {
      std::size_t i = 0;
      for (; i + kRowsPerInsert <= records.size(); i += kRowsPerInsert) {
        if (auto st = insert_rows(records.subspan(i, kRowsPerInsert), seqs); !st) return st;
      }
      for (; i < records.size(); ++i) {
        if (auto st = insert_row(records[i], seqs); !st) return st;
      }
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return seqs;
  }

  Result<std::vector<TelemetryRecord>> range(std::string_view device_id, UnixMillis from, UnixMillis to,
                                             std::size_t limit) override {
    if (limit == 0 || to <= from) return std::vector<TelemetryRecord>();
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_TELEMETRY_COLUMNS
                           " FROM telemetry WHERE device_id = ?1 AND received_at_ms >= ?2 AND received_at_ms < ?3 "
                           "ORDER BY received_at_ms, seq LIMIT ?4");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    constexpr auto kMaxLimit = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    (**stmt)
        .bind_text(1, device_id)
        .bind_int(2, from)
        .bind_int(3, to)
        .bind_int(4, static_cast<std::int64_t>(std::min(limit, kMaxLimit)));
    return read_all(**stmt, read_telemetry);
  }

  Result<std::size_t> count(std::string_view device_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT COUNT(*) FROM telemetry WHERE device_id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, device_id);
    auto row = (**stmt).step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return fail(Errc::io_error, "store: count telemetry: no result row");
    return static_cast<std::size_t>((**stmt).column_int(0));
  }

  Result<std::size_t> remove_device(std::string_view device_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM telemetry WHERE device_id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, device_id);
    return changed_rows(db_, **stmt);
  }

  Result<std::size_t> remove_older_than(UnixMillis cutoff) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM telemetry WHERE received_at_ms < ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_int(1, cutoff);
    return changed_rows(db_, **stmt);
  }

 private:
  static constexpr std::size_t kRowsPerInsert = 64;

  static void bind_row(Statement& q, int first, const TelemetryRecord& r) {
    q.bind_text(first, r.device_id).bind_text(first + 1, r.kind);
    if (r.message_key.empty()) {
      q.bind_null(first + 2);
    } else {
      q.bind_text(first + 2, r.message_key);
    }
    q.bind_int(first + 3, r.received_at).bind_text(first + 4, r.key_id).bind_blob(first + 5, r.sealed);
  }

  // One record; seq 0 when its message key was stored already. Mutex held, in a transaction.
  Status insert_row(const TelemetryRecord& r, std::vector<std::int64_t>& seqs) {
    auto stmt = db_.cached(TORII_TELEMETRY_INSERT TORII_TELEMETRY_ROW TORII_TELEMETRY_ON_CONFLICT);
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    Statement& q = **stmt;
    bind_row(q, 1, r);
    auto changed = db_.execute(q);
    q.reset();
    if (!changed) return tl::unexpected(std::move(changed.error()));
    seqs.push_back(*changed > 0 ? db_.last_insert_rowid() : 0);
    return ok();
  }

  // kRowsPerInsert records in one statement. RETURNING names the rows inserted, in no
  // promised order; by seq they come in the order of the records (each gets the next seq),
  // and a record left out is one whose key was stored already, before or earlier in the
  // batch (a later record with the same key is left out too, so it never takes its place).
  Status insert_rows(std::span<const TelemetryRecord> rows, std::vector<std::int64_t>& seqs) {
    auto stmt = db_.cached(TORII_TELEMETRY_INSERT TORII_TELEMETRY_ROWS_64 TORII_TELEMETRY_ON_CONFLICT
                           " RETURNING seq, device_id, message_key");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    Statement& q = **stmt;
    for (std::size_t k = 0; k < rows.size(); ++k) bind_row(q, static_cast<int>(k * 6 + 1), rows[k]);
    struct Inserted {
      std::int64_t seq = 0;
      std::string device_id;
      std::string message_key;  // empty: none
    };
    std::vector<Inserted> inserted;
    inserted.reserve(rows.size());
    for (;;) {
      auto row = q.step();
      if (!row) {
        q.reset();
        return tl::unexpected(std::move(row.error()));
      }
      if (!*row) break;
      inserted.push_back({q.column_int(0), q.column_text(1), q.is_null(2) ? std::string() : q.column_text(2)});
    }
    q.reset();
    std::sort(inserted.begin(), inserted.end(), [](const Inserted& a, const Inserted& b) { return a.seq < b.seq; });
    std::size_t next = 0;
    for (const TelemetryRecord& r : rows) {
      if (next < inserted.size() && inserted[next].device_id == r.device_id &&
          inserted[next].message_key == r.message_key) {
        seqs.push_back(inserted[next++].seq);
      } else {
        seqs.push_back(0);
      }
    }
    if (next != inserted.size()) return fail(Errc::corrupt, "store: telemetry rows inserted do not match the batch");
    return ok();
  }

  Db& db_;
};

#undef TORII_TELEMETRY_COLUMNS

// ---------------------------------------------------------------------------------------

class SqliteLatestValueRepository final : public LatestValueRepository {
 public:
  explicit SqliteLatestValueRepository(Db& db) : db_(db) {}

  Status upsert(std::span<const LatestValue> values) override {
    for (const LatestValue& v : values) {
      if (auto s = require_nonempty(v.device_id, "latest value device id"); !s) return s;
      if (auto s = require_nonempty(v.metric, "latest value metric"); !s) return s;
    }
    if (values.empty()) return ok();
    return db_.transaction([&]() -> Status {
      auto stmt = db_.cached(
          "INSERT INTO latest_values (device_id, metric, key_id, sealed, at_ms) VALUES (?1, ?2, ?3, ?4, ?5) "
          "ON CONFLICT (device_id, metric) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, "
          "at_ms = excluded.at_ms WHERE excluded.at_ms >= latest_values.at_ms");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      Statement& q = **stmt;
      for (const LatestValue& v : values) {
        q.bind_text(1, v.device_id)
            .bind_text(2, v.metric)
            .bind_text(3, v.key_id)
            .bind_blob(4, v.sealed)
            .bind_int(5, v.at);
        if (auto s = q.run(); !s) return s;
        q.reset();
      }
      return ok();
    });
  }

  Result<std::vector<LatestValue>> list(std::string_view device_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT device_id, metric, key_id, sealed, at_ms FROM latest_values WHERE device_id = ?1 ORDER BY metric");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, device_id);
    return read_all(**stmt, [](const Statement& q) {
      return LatestValue{q.column_text(0), q.column_text(1), q.column_text(2), q.column_blob(3), q.column_int(4)};
    });
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

class SqliteDeviceCounterRepository final : public DeviceCounterRepository {
 public:
  explicit SqliteDeviceCounterRepository(Db& db) : db_(db) {}

  Status add(std::span<const DeviceCounters> deltas) override {
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    for (const DeviceCounters& d : deltas) {
      if (auto s = require_nonempty(d.device_id, "device counters device id"); !s) return s;
      if (d.messages > kMax || d.bytes > kMax || d.refusals > kMax || d.connects > kMax) {
        return fail(Errc::invalid_argument, "store: device counters delta exceeds the largest storable value");
      }
    }
    if (deltas.empty()) return ok();
    auto s = db_.transaction([&]() -> Status {
      // A sum past INT64_MAX becomes NULL (CASE without ELSE) and fails NOT NULL, rather
      // than turning into an inexact REAL.
      auto stmt = db_.cached(
          "INSERT INTO device_counters (device_id, messages, bytes, refusals, connects, updated_at_ms) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device_id) DO UPDATE SET "
          "messages = CASE WHEN messages <= 9223372036854775807 - excluded.messages "
          "THEN messages + excluded.messages END, "
          "bytes = CASE WHEN bytes <= 9223372036854775807 - excluded.bytes THEN bytes + excluded.bytes END, "
          "refusals = CASE WHEN refusals <= 9223372036854775807 - excluded.refusals "
          "THEN refusals + excluded.refusals END, "
          "connects = CASE WHEN connects <= 9223372036854775807 - excluded.connects "
          "THEN connects + excluded.connects END, "
          "updated_at_ms = MAX(updated_at_ms, excluded.updated_at_ms)");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      Statement& q = **stmt;
      for (const DeviceCounters& d : deltas) {
        q.bind_text(1, d.device_id)
            .bind_int(2, static_cast<std::int64_t>(d.messages))
            .bind_int(3, static_cast<std::int64_t>(d.bytes))
            .bind_int(4, static_cast<std::int64_t>(d.refusals))
            .bind_int(5, static_cast<std::int64_t>(d.connects))
            .bind_int(6, d.updated_at);
        if (auto r = q.run(); !r) {
          if (r.error().is(Errc::invalid_argument)) {
            return fail(Errc::invalid_argument, "store: device counters total would exceed the largest storable value");
          }
          return r;
        }
        q.reset();
      }
      return ok();
    });
    return s;
  }

  Result<std::optional<DeviceCounters>> find(std::string_view device_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT device_id, messages, bytes, refusals, connects, updated_at_ms FROM device_counters "
        "WHERE device_id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, device_id);
    // CHECK (... >= 0) keeps the totals non-negative, so the casts are exact.
    return read_one(**stmt, [](const Statement& q) {
      return DeviceCounters{q.column_text(0),
                            static_cast<std::uint64_t>(q.column_int(1)),
                            static_cast<std::uint64_t>(q.column_int(2)),
                            static_cast<std::uint64_t>(q.column_int(3)),
                            static_cast<std::uint64_t>(q.column_int(4)),
                            q.column_int(5)};
    });
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

#define TORII_ROUTE_COLUMNS "organisation_id, from_kind, from_value, to_kind, to_value, created_at_ms, created_by"

RouteRecord read_route(const Statement& stmt) {
  return RouteRecord{stmt.column_text(0), stmt.column_text(1), stmt.column_text(2), stmt.column_text(3),
                     stmt.column_text(4), stmt.column_int(5),  stmt.column_text(6)};
}

class SqliteRouteRepository final : public RouteRepository {
 public:
  explicit SqliteRouteRepository(Db& db) : db_(db) {}

  Result<bool> insert(const RouteRecord& route) override {
    if (auto valid = validate_route_record(route); !valid) return tl::unexpected(std::move(valid.error()));
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO routes (" TORII_ROUTE_COLUMNS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    bind_ends(**stmt, route).bind_int(6, route.created_at).bind_text(7, route.created_by);
    auto changed = changed_rows(db_, **stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed > 0;
  }

  Result<bool> remove(const RouteRecord& route) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "DELETE FROM routes WHERE organisation_id = ?1 AND from_kind = ?2 AND from_value = ?3 AND to_kind = ?4 "
        "AND to_value = ?5");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    bind_ends(**stmt, route);
    auto changed = changed_rows(db_, **stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed > 0;
  }

  Result<std::vector<RouteRecord>> list(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_ROUTE_COLUMNS
                           " FROM routes WHERE organisation_id = ?1 ORDER BY from_kind, from_value, to_kind, to_value");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_route);
  }

  Result<std::vector<RouteRecord>> list_all() override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_ROUTE_COLUMNS
                           " FROM routes ORDER BY organisation_id, from_kind, from_value, to_kind, to_value");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_all(**stmt, read_route);
  }

 private:
  static Statement& bind_ends(Statement& stmt, const RouteRecord& route) {
    return stmt.bind_text(1, route.organisation_id)
        .bind_text(2, route.from_kind)
        .bind_text(3, route.from_value)
        .bind_text(4, route.to_kind)
        .bind_text(5, route.to_value);
  }

  Db& db_;
};

#undef TORII_ROUTE_COLUMNS

// ---------------------------------------------------------------------------------------

class SqliteMqttStateRepository final : public MqttStateRepository {
 public:
  explicit SqliteMqttStateRepository(Db& db) : db_(db) {}

  Status put(const MqttStateRecord& record) override {
    if (auto s = require_nonempty(record.device_id, "MQTT state device id"); !s) return s;
    if (record.kind != kMqttStateRetained && record.kind != kMqttStateSession) {
      return fail(Errc::invalid_argument, "store: unknown MQTT state kind");
    }
    if (record.expires_at < 0) return fail(Errc::invalid_argument, "store: MQTT state expiry is negative");
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "INSERT INTO mqtt_state (device_id, kind, name, key_id, sealed, expires_at_ms, updated_at_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (device_id, kind, name) DO UPDATE SET "
        "key_id = excluded.key_id, sealed = excluded.sealed, expires_at_ms = excluded.expires_at_ms, "
        "updated_at_ms = excluded.updated_at_ms");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    Statement& q = **stmt;
    q.bind_text(1, record.device_id)
        .bind_text(2, record.kind)
        .bind_text(3, record.name)
        .bind_text(4, record.key_id)
        .bind_blob(5, record.sealed)
        .bind_int(6, record.expires_at)
        .bind_int(7, record.updated_at);
    return q.run();
  }

  Result<bool> remove(std::string_view device_id, std::string_view kind, std::string_view name) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM mqtt_state WHERE device_id = ?1 AND kind = ?2 AND name = ?3");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, device_id).bind_text(2, kind).bind_text(3, name);
    auto changed = changed_rows(db_, **stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed > 0;
  }

  Result<std::vector<MqttStateRecord>> list(std::string_view kind) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT device_id, kind, name, key_id, sealed, expires_at_ms, updated_at_ms FROM mqtt_state WHERE kind = ?1 "
        "ORDER BY device_id, name");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, kind);
    return read_all(**stmt, [](const Statement& q) {
      return MqttStateRecord{q.column_text(0), q.column_text(1), q.column_text(2), q.column_text(3),
                             q.column_blob(4), q.column_int(5),  q.column_int(6)};
    });
  }

  Result<std::size_t> remove_expired(UnixMillis now) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM mqtt_state WHERE expires_at_ms > 0 AND expires_at_ms < ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_int(1, now);
    return changed_rows(db_, **stmt);
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

// Steps a DELETE or UPDATE; true when it changed a row.
Result<bool> changed_any(Db& db, Statement& stmt) {
  auto changed = changed_rows(db, stmt);
  if (!changed) return tl::unexpected(std::move(changed.error()));
  return *changed > 0;
}

// Steps an UPDATE by key; not_found, saying `what` found no row, when it changed none.
Status expect_changed(Db& db, Statement& stmt, std::string_view what) {
  auto changed = changed_any(db, stmt);
  if (!changed) return tl::unexpected(std::move(changed.error()));
  if (!*changed) return fail(Errc::not_found, fmt::format("store: {}", what));
  return ok();
}

// Reads the single COUNT(*) row of stmt.
Result<std::size_t> read_count(Statement& stmt, std::string_view what) {
  auto row = stmt.step();
  if (!row) return tl::unexpected(std::move(row.error()));
  if (!*row) return fail(Errc::io_error, fmt::format("store: {}: no result row", what));
  return static_cast<std::size_t>(stmt.column_int(0));
}

// True when a user with this id is stored. Mutex held.
Result<bool> user_exists(Db& db, std::string_view user_id) {
  auto stmt = db.cached("SELECT 1 FROM users WHERE id = ?1");
  if (!stmt) return tl::unexpected(std::move(stmt.error()));
  (**stmt).bind_text(1, user_id);
  return (**stmt).step();
}

#define TORII_ORGANISATION_COLUMNS "id, name, require_second_factor, created_at_ms"

OrganisationRecord read_organisation(const Statement& stmt) {
  return OrganisationRecord{stmt.column_text(0), stmt.column_text(1), stmt.column_int(2) != 0, stmt.column_int(3)};
}

class SqliteOrganisationRepository final : public OrganisationRepository {
 public:
  explicit SqliteOrganisationRepository(Db& db) : db_(db) {}

  Status insert(const OrganisationRecord& organisation) override {
    if (auto s = validate_organisation(organisation); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO organisations (" TORII_ORGANISATION_COLUMNS ") VALUES (?1, ?2, ?3, ?4)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, organisation.id)
        .bind_text(2, organisation.name)
        .bind_int(3, organisation.require_second_factor ? 1 : 0)
        .bind_int(4, organisation.created_at);
    return (**stmt).run();
  }

  Result<std::optional<OrganisationRecord>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_ORGANISATION_COLUMNS " FROM organisations WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return read_one(**stmt, read_organisation);
  }

  Result<std::vector<OrganisationRecord>> list() override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_ORGANISATION_COLUMNS " FROM organisations ORDER BY id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_all(**stmt, read_organisation);
  }

  Status update(const OrganisationRecord& organisation) override {
    if (auto s = validate_organisation(organisation); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("UPDATE organisations SET name = ?2, require_second_factor = ?3 WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, organisation.id)
        .bind_text(2, organisation.name)
        .bind_int(3, organisation.require_second_factor ? 1 : 0);
    return expect_changed(db_, **stmt, "update organisation: no organisation with this id");
  }

 private:
  Db& db_;
};

#undef TORII_ORGANISATION_COLUMNS

// ---------------------------------------------------------------------------------------

// Parameter ?N binds column N of this list (bind_user); UPDATE leaves ?2 and ?17 unused.
#define TORII_USER_COLUMNS                                                                                           \
  "id, organisation_id, username, email, role, password_hash, password_changed_at_ms, totp_key_id, totp_sealed, "    \
  "totp_enabled, totp_last_step, status, disabled_reason, failed_logins, lockouts, locked_until_ms, created_at_ms, " \
  "last_login_at_ms, expires_at_ms"

// CHECK (... >= 0) holds the lower bound, and only ints are ever stored.
int column_nonnegative_int(const Statement& stmt, int column) {
  return static_cast<int>(std::clamp<std::int64_t>(stmt.column_int(column), 0, std::numeric_limits<int>::max()));
}

UserRecord read_user(const Statement& stmt) {
  UserRecord u;
  u.id = stmt.column_text(0);
  u.organisation_id = stmt.column_text(1);
  u.username = stmt.column_text(2);
  u.email = stmt.column_text(3);
  u.role = stmt.column_text(4);
  u.password_hash = stmt.column_text(5);
  u.password_changed_at = stmt.column_int(6);
  u.totp_key_id = stmt.column_text(7);
  u.totp_sealed = stmt.column_blob(8);
  u.totp_enabled = stmt.column_int(9) != 0;
  u.totp_last_step = stmt.column_int(10);
  u.status = stmt.column_text(11);
  u.disabled_reason = stmt.column_text(12);
  u.failed_logins = column_nonnegative_int(stmt, 13);
  u.lockouts = column_nonnegative_int(stmt, 14);
  u.locked_until = stmt.column_int(15);
  u.created_at = stmt.column_int(16);
  u.last_login_at = stmt.column_optional_int(17);
  u.expires_at = stmt.column_optional_int(18);
  return u;
}

Statement& bind_user(Statement& stmt, const UserRecord& user) {
  return stmt.bind_text(1, user.id)
      .bind_text(2, user.organisation_id)
      .bind_text(3, user.username)
      .bind_text(4, user.email)
      .bind_text(5, user.role)
      .bind_text(6, user.password_hash)
      .bind_int(7, user.password_changed_at)
      .bind_text(8, user.totp_key_id)
      .bind_blob(9, user.totp_sealed)
      .bind_int(10, user.totp_enabled ? 1 : 0)
      .bind_int(11, user.totp_last_step)
      .bind_text(12, user.status)
      .bind_text(13, user.disabled_reason)
      .bind_int(14, user.failed_logins)
      .bind_int(15, user.lockouts)
      .bind_int(16, user.locked_until)
      .bind_int(17, user.created_at)
      .bind_optional_int(18, user.last_login_at)
      .bind_optional_int(19, user.expires_at);
}

class SqliteUserRepository final : public UserRepository {
 public:
  explicit SqliteUserRepository(Db& db) : db_(db) {}

  Status insert(const UserRecord& user) override {
    if (auto s = validate_user(user); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO users (" TORII_USER_COLUMNS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
                           "?18, ?19)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return bind_user(**stmt, user).run();
  }

  Result<std::optional<UserRecord>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_USER_COLUMNS " FROM users WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return read_one(**stmt, read_user);
  }

  Result<std::optional<UserRecord>> find_by_username(std::string_view username) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_USER_COLUMNS " FROM users WHERE username = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, username);
    return read_one(**stmt, read_user);
  }

  Result<std::vector<UserRecord>> find_by_email(std::string_view email) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_USER_COLUMNS " FROM users WHERE lower(email) = lower(?1) ORDER BY id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, email);
    return read_all(**stmt, read_user);
  }

  Result<std::vector<UserRecord>> list(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_USER_COLUMNS " FROM users WHERE organisation_id = ?1 ORDER BY username");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_user);
  }

  Result<std::size_t> count() override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT COUNT(*) FROM users");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_count(**stmt, "count users");
  }

  Result<std::size_t> count_active_with_role(std::string_view organisation_id, std::string_view role) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT COUNT(*) FROM users WHERE organisation_id = ?1 AND role = ?2 AND status = 'active'");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id).bind_text(2, role);
    return read_count(**stmt, "count users with role");
  }

  Status update(const UserRecord& user) override {
    if (auto s = validate_user(user); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "UPDATE users SET username = ?3, email = ?4, role = ?5, password_hash = ?6, password_changed_at_ms = ?7, "
        "totp_key_id = ?8, totp_sealed = ?9, totp_enabled = ?10, totp_last_step = ?11, status = ?12, "
        "disabled_reason = ?13, failed_logins = ?14, lockouts = ?15, locked_until_ms = ?16, last_login_at_ms = ?18, "
        "expires_at_ms = ?19 WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return expect_changed(db_, bind_user(**stmt, user), "update user: no user with this id");
  }

  Result<bool> remove(std::string_view id) override {
    const Lock lock(db_.mutex());
    // The foreign keys' ON DELETE CASCADE removes the user's password history, recovery codes,
    // console sessions and password reset tokens in the same statement.
    auto stmt = db_.cached("DELETE FROM users WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return changed_any(db_, **stmt);
  }

  Result<std::vector<UserRecord>> list_unused_since(UnixMillis cutoff) override {
    const Lock lock(db_.mutex());
    // Spelled as in the users_by_activity index, so the index serves both filter and order.
    auto stmt = db_.cached("SELECT " TORII_USER_COLUMNS
                           " FROM users WHERE status = 'active' AND COALESCE(last_login_at_ms, created_at_ms) < ?1 "
                           "ORDER BY COALESCE(last_login_at_ms, created_at_ms), id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_int(1, cutoff);
    return read_all(**stmt, read_user);
  }

  Status add_password_history(std::string_view user_id, const PasswordHistoryEntry& entry, std::size_t keep) override {
    constexpr auto kMaxKeep = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    return db_.transaction([&]() -> Status {
      {
        auto insert =
            db_.cached("INSERT INTO password_history (user_id, password_hash, changed_at_ms) VALUES (?1, ?2, ?3)");
        if (!insert) return tl::unexpected(std::move(insert.error()));
        (**insert).bind_text(1, user_id).bind_text(2, entry.password_hash).bind_int(3, entry.changed_at);
        if (auto s = (**insert).run(); !s) return s;
      }
      // The order is password_history()'s, so what is kept is what it lists first.
      auto trim = db_.cached(
          "DELETE FROM password_history WHERE user_id = ?1 AND rowid NOT IN (SELECT rowid FROM password_history "
          "WHERE user_id = ?1 ORDER BY changed_at_ms DESC, rowid DESC LIMIT ?2)");
      if (!trim) return tl::unexpected(std::move(trim.error()));
      (**trim).bind_text(1, user_id).bind_int(2, static_cast<std::int64_t>(std::min(keep, kMaxKeep)));
      return (**trim).run();
    });
  }

  Result<std::vector<PasswordHistoryEntry>> password_history(std::string_view user_id) override {
    const Lock lock(db_.mutex());
    // Ties by changed_at: the entry added last first.
    auto stmt = db_.cached(
        "SELECT password_hash, changed_at_ms FROM password_history WHERE user_id = ?1 "
        "ORDER BY changed_at_ms DESC, rowid DESC");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id);
    return read_all(**stmt, [](const Statement& q) { return PasswordHistoryEntry{q.column_text(0), q.column_int(1)}; });
  }

  Status replace_recovery_codes(std::string_view user_id, std::span<const std::string> code_hashes) override {
    return db_.transaction([&]() -> Status {
      // Checked explicitly: with no codes to insert, no foreign key would notice.
      auto exists = user_exists(db_, user_id);
      if (!exists) return tl::unexpected(std::move(exists.error()));
      if (!*exists) return fail(Errc::conflict, "store: replace recovery codes: no user with this id");
      {
        auto remove = db_.cached("DELETE FROM recovery_codes WHERE user_id = ?1");
        if (!remove) return tl::unexpected(std::move(remove.error()));
        (**remove).bind_text(1, user_id);
        if (auto s = (**remove).run(); !s) return s;
      }
      auto insert = db_.cached("INSERT INTO recovery_codes (user_id, code_hash, used_at_ms) VALUES (?1, ?2, NULL)");
      if (!insert) return tl::unexpected(std::move(insert.error()));
      Statement& q = **insert;
      for (const std::string& code_hash : code_hashes) {
        q.bind_text(1, user_id).bind_text(2, code_hash);
        if (auto s = q.run(); !s) return s;
        q.reset();
      }
      return ok();
    });
  }

  Result<bool> use_recovery_code(std::string_view user_id, std::string_view code_hash, UnixMillis at) override {
    const Lock lock(db_.mutex());
    // The UPDATE alone decides, so of two callers (other processes included) one changes the row.
    auto stmt = db_.cached(
        "UPDATE recovery_codes SET used_at_ms = ?3 WHERE user_id = ?1 AND code_hash = ?2 AND used_at_ms IS NULL");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id).bind_text(2, code_hash).bind_int(3, at);
    return changed_any(db_, **stmt);
  }

  Result<std::size_t> count_unused_recovery_codes(std::string_view user_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at_ms IS NULL");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id);
    return read_count(**stmt, "count recovery codes");
  }

 private:
  Db& db_;
};

#undef TORII_USER_COLUMNS

// ---------------------------------------------------------------------------------------

#define TORII_SESSION_COLUMNS \
  "id_hash, handle, user_id, stage, created_at_ms, last_seen_at_ms, authenticated_at_ms, source, user_agent"

ConsoleSessionRecord read_session(const Statement& stmt) {
  return ConsoleSessionRecord{stmt.column_text(0), stmt.column_text(1), stmt.column_text(2),
                              stmt.column_text(3), stmt.column_int(4),  stmt.column_int(5),
                              stmt.column_int(6),  stmt.column_text(7), stmt.column_text(8)};
}

class SqliteConsoleSessionRepository final : public ConsoleSessionRepository {
 public:
  explicit SqliteConsoleSessionRepository(Db& db) : db_(db) {}

  Status insert(const ConsoleSessionRecord& session) override {
    if (auto s = validate_console_session(session); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO console_sessions (" TORII_SESSION_COLUMNS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, session.id_hash)
        .bind_text(2, session.handle)
        .bind_text(3, session.user_id)
        .bind_text(4, session.stage)
        .bind_int(5, session.created_at)
        .bind_int(6, session.last_seen_at)
        .bind_int(7, session.authenticated_at)
        .bind_text(8, session.source)
        .bind_text(9, session.user_agent);
    return (**stmt).run();
  }

  Result<std::optional<ConsoleSessionRecord>> find(std::string_view id_hash) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_SESSION_COLUMNS " FROM console_sessions WHERE id_hash = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id_hash);
    return read_one(**stmt, read_session);
  }

  Status update(const ConsoleSessionRecord& session) override {
    if (!is_session_stage(session.stage)) {
      return fail(Errc::invalid_argument,
                  fmt::format("store: console session stage ({} bytes) is not one of second-factor, enrol, full",
                              session.stage.size()));
    }
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "UPDATE console_sessions SET stage = ?2, last_seen_at_ms = ?3, authenticated_at_ms = ?4 WHERE id_hash = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, session.id_hash)
        .bind_text(2, session.stage)
        .bind_int(3, session.last_seen_at)
        .bind_int(4, session.authenticated_at);
    return expect_changed(db_, **stmt, "update console session: no session with this id hash");
  }

  Result<bool> remove(std::string_view id_hash) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM console_sessions WHERE id_hash = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id_hash);
    return changed_any(db_, **stmt);
  }

  Result<bool> remove_by_handle(std::string_view user_id, std::string_view handle) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM console_sessions WHERE user_id = ?1 AND handle = ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id).bind_text(2, handle);
    return changed_any(db_, **stmt);
  }

  Result<std::size_t> remove_for_user(std::string_view user_id, std::string_view keep_id_hash) override {
    const Lock lock(db_.mutex());
    // No stored session has an empty id hash, so an empty keep_id_hash keeps none.
    auto stmt = db_.cached("DELETE FROM console_sessions WHERE user_id = ?1 AND id_hash <> ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id).bind_text(2, keep_id_hash);
    return changed_rows(db_, **stmt);
  }

  Result<std::vector<ConsoleSessionRecord>> list_for_user(std::string_view user_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_SESSION_COLUMNS
                           " FROM console_sessions WHERE user_id = ?1 ORDER BY created_at_ms DESC, handle");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id);
    return read_all(**stmt, read_session);
  }

  Result<std::size_t> remove_expired(UnixMillis idle_cutoff, UnixMillis absolute_cutoff) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM console_sessions WHERE last_seen_at_ms < ?1 OR created_at_ms < ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_int(1, idle_cutoff).bind_int(2, absolute_cutoff);
    return changed_rows(db_, **stmt);
  }

 private:
  Db& db_;
};

#undef TORII_SESSION_COLUMNS

// ---------------------------------------------------------------------------------------

class SqlitePasswordResetRepository final : public PasswordResetRepository {
 public:
  explicit SqlitePasswordResetRepository(Db& db) : db_(db) {}

  Status issue(const PasswordResetToken& token) override {
    if (auto s = validate_password_reset_token(token); !s) return s;
    // One transaction: a refused insert (duplicate hash, unknown user) undoes the revocation.
    return db_.transaction([&]() -> Status {
      {
        auto revoke =
            db_.cached("UPDATE password_reset_tokens SET used_at_ms = ?2 WHERE user_id = ?1 AND used_at_ms IS NULL");
        if (!revoke) return tl::unexpected(std::move(revoke.error()));
        (**revoke).bind_text(1, token.user_id).bind_int(2, token.created_at);
        if (auto s = (**revoke).run(); !s) return s;
      }
      auto insert = db_.cached(
          "INSERT INTO password_reset_tokens (token_hash, user_id, created_at_ms, expires_at_ms, used_at_ms, "
          "issued_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
      if (!insert) return tl::unexpected(std::move(insert.error()));
      (**insert)
          .bind_text(1, token.token_hash)
          .bind_text(2, token.user_id)
          .bind_int(3, token.created_at)
          .bind_int(4, token.expires_at)
          .bind_optional_int(5, token.used_at)
          .bind_text(6, token.issued_by);
      return (**insert).run();
    });
  }

  Result<Consumed> consume(std::string_view token_hash, UnixMillis now) override {
    Consumed consumed;
    // The UPDATE alone decides (atomic even against other processes); the SELECT only
    // explains a refusal.
    auto s = db_.transaction([&]() -> Status {
      {
        auto update = db_.cached(
            "UPDATE password_reset_tokens SET used_at_ms = ?2 "
            "WHERE token_hash = ?1 AND used_at_ms IS NULL AND expires_at_ms > ?2 RETURNING user_id");
        if (!update) return tl::unexpected(std::move(update.error()));
        Statement& q = **update;
        q.bind_text(1, token_hash).bind_int(2, now);
        auto row = q.step();
        if (!row) return tl::unexpected(std::move(row.error()));
        if (*row) {
          consumed.user_id = q.column_text(0);
          consumed.outcome = ConsumeOutcome::consumed;
          return q.run();
        }
      }
      auto why = db_.cached("SELECT used_at_ms IS NOT NULL FROM password_reset_tokens WHERE token_hash = ?1");
      if (!why) return tl::unexpected(std::move(why.error()));
      (**why).bind_text(1, token_hash);
      auto row = (**why).step();
      if (!row) return tl::unexpected(std::move(row.error()));
      if (!*row) {
        consumed.outcome = ConsumeOutcome::unknown;
      } else {
        consumed.outcome = (**why).column_int(0) != 0 ? ConsumeOutcome::already_used : ConsumeOutcome::expired;
      }
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return consumed;
  }

  Result<std::optional<PasswordResetToken>> find(std::string_view token_hash) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT token_hash, user_id, created_at_ms, expires_at_ms, used_at_ms, issued_by FROM password_reset_tokens "
        "WHERE token_hash = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, token_hash);
    return read_one(**stmt, [](Statement& q) {
      return PasswordResetToken{q.column_text(0), q.column_text(1),         q.column_int(2),
                                q.column_int(3),  q.column_optional_int(4), q.column_text(5)};
    });
  }

  Result<std::size_t> count_active(std::string_view user_id, UnixMillis now) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT COUNT(*) FROM password_reset_tokens WHERE user_id = ?1 AND used_at_ms IS NULL AND expires_at_ms > ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id).bind_int(2, now);
    return read_count(**stmt, "count password reset tokens");
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

class SqliteEnrolmentTokenRepository final : public EnrolmentTokenRepository {
 public:
  explicit SqliteEnrolmentTokenRepository(Db& db) : db_(db) {}

  Status issue(const EnrolmentToken& token) override {
    if (token.token_hash.empty()) return fail(Errc::invalid_argument, "store: enrolment token hash is empty");
    if (token.device_id.empty()) return fail(Errc::invalid_argument, "store: enrolment token device id is empty");
    // One transaction: a refused insert (a hash taken, an unknown device) keeps the earlier token.
    return db_.transaction([&]() -> Status {
      {
        auto replace = db_.cached("DELETE FROM enrolment_tokens WHERE device_id = ?1");
        if (!replace) return tl::unexpected(std::move(replace.error()));
        (**replace).bind_text(1, token.device_id);
        if (auto s = (**replace).run(); !s) return s;
      }
      auto insert = db_.cached(
          "INSERT INTO enrolment_tokens (device_id, token_hash, organisation_id, created_at_ms, expires_at_ms, "
          "used_at_ms, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      if (!insert) return tl::unexpected(std::move(insert.error()));
      (**insert)
          .bind_text(1, token.device_id)
          .bind_text(2, token.token_hash)
          .bind_text(3, token.organisation_id)
          .bind_int(4, token.created_at)
          .bind_int(5, token.expires_at)
          .bind_optional_int(6, token.used_at)
          .bind_text(7, token.created_by);
      return (**insert).run();
    });
  }

  Result<Consumed> consume(std::string_view token_hash, UnixMillis now) override {
    Consumed consumed;
    // The UPDATE alone decides (atomic even against other processes); the SELECT only
    // explains a refusal.
    auto s = db_.transaction([&]() -> Status {
      {
        auto update = db_.cached(
            "UPDATE enrolment_tokens SET used_at_ms = ?2 "
            "WHERE token_hash = ?1 AND used_at_ms IS NULL AND expires_at_ms > ?2 RETURNING device_id");
        if (!update) return tl::unexpected(std::move(update.error()));
        Statement& q = **update;
        q.bind_text(1, token_hash).bind_int(2, now);
        auto row = q.step();
        if (!row) return tl::unexpected(std::move(row.error()));
        if (*row) {
          consumed.device_id = q.column_text(0);
          consumed.outcome = ConsumeOutcome::consumed;
          return q.run();
        }
      }
      auto why = db_.cached("SELECT used_at_ms IS NOT NULL FROM enrolment_tokens WHERE token_hash = ?1");
      if (!why) return tl::unexpected(std::move(why.error()));
      (**why).bind_text(1, token_hash);
      auto row = (**why).step();
      if (!row) return tl::unexpected(std::move(row.error()));
      if (!*row) {
        consumed.outcome = ConsumeOutcome::unknown;
      } else {
        consumed.outcome = (**why).column_int(0) != 0 ? ConsumeOutcome::already_used : ConsumeOutcome::expired;
      }
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return consumed;
  }

  Result<std::optional<EnrolmentToken>> find(std::string_view token_hash) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT token_hash, device_id, organisation_id, created_at_ms, expires_at_ms, used_at_ms, created_by "
        "FROM enrolment_tokens WHERE token_hash = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, token_hash);
    return read_one(**stmt, read_token);
  }

  Result<std::optional<EnrolmentToken>> find_for_device(std::string_view device_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT token_hash, device_id, organisation_id, created_at_ms, expires_at_ms, used_at_ms, created_by "
        "FROM enrolment_tokens WHERE device_id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, device_id);
    return read_one(**stmt, read_token);
  }

 private:
  static EnrolmentToken read_token(Statement& q) {
    return EnrolmentToken{q.column_text(0), q.column_text(1),         q.column_text(2), q.column_int(3),
                          q.column_int(4),  q.column_optional_int(5), q.column_text(6)};
  }

  Db& db_;
};

// ---------------------------------------------------------------------------------------

#define TORII_DEVICE_COMMAND_COLUMNS                                                                               \
  "id, device_id, organisation_id, name, key_id, payload_sealed, issued_at_ms, expires_at_ms, issued_by, status, " \
  "reason, answered_at_ms"

class SqliteDeviceCommandRepository final : public DeviceCommandRepository {
 public:
  explicit SqliteDeviceCommandRepository(Db& db) : db_(db) {}

  Status add(const DeviceCommandRecord& c) override {
    if (c.id.empty()) return fail(Errc::invalid_argument, "store: device command id is empty");
    if (c.device_id.empty()) return fail(Errc::invalid_argument, "store: device command device id is empty");
    const Lock lock(db_.mutex());
    auto insert = db_.cached("INSERT INTO device_commands (" TORII_DEVICE_COMMAND_COLUMNS
                             ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    if (!insert) return tl::unexpected(std::move(insert.error()));
    (**insert)
        .bind_text(1, c.id)
        .bind_text(2, c.device_id)
        .bind_text(3, c.organisation_id)
        .bind_text(4, c.name)
        .bind_text(5, c.key_id)
        .bind_blob(6, c.payload_sealed)
        .bind_int(7, c.issued_at)
        .bind_int(8, c.expires_at)
        .bind_text(9, c.issued_by)
        .bind_text(10, c.status)
        .bind_text(11, c.reason)
        .bind_optional_int(12, c.answered_at);
    return (**insert).run();
  }

  Result<bool> answer(std::string_view device_id, std::string_view command_id, std::string_view status,
                      std::string_view reason, UnixMillis at) override {
    const Lock lock(db_.mutex());
    auto update = db_.cached(
        "UPDATE device_commands SET status = ?3, reason = ?4, answered_at_ms = ?5 "
        "WHERE id = ?2 AND device_id = ?1 AND status = 'sent'");
    if (!update) return tl::unexpected(std::move(update.error()));
    (**update)
        .bind_text(1, device_id)
        .bind_text(2, command_id)
        .bind_text(3, status)
        .bind_text(4, reason)
        .bind_int(5, at);
    auto changed = changed_rows(db_, **update);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed == 1;
  }

  Result<std::optional<DeviceCommandRecord>> find(std::string_view command_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_DEVICE_COMMAND_COLUMNS " FROM device_commands WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, command_id);
    return read_one(**stmt, read_command);
  }

  Result<std::vector<DeviceCommandRecord>> list_for_device(std::string_view device_id, std::size_t limit) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_DEVICE_COMMAND_COLUMNS
                           " FROM device_commands WHERE device_id = ?1 ORDER BY issued_at_ms DESC, rowid DESC "
                           "LIMIT ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, device_id).bind_int(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, 1U << 20)));
    return read_all(**stmt, read_command);
  }

 private:
  static DeviceCommandRecord read_command(Statement& q) {
    DeviceCommandRecord c;
    c.id = q.column_text(0);
    c.device_id = q.column_text(1);
    c.organisation_id = q.column_text(2);
    c.name = q.column_text(3);
    c.key_id = q.column_text(4);
    c.payload_sealed = q.column_blob(5);
    c.issued_at = q.column_int(6);
    c.expires_at = q.column_int(7);
    c.issued_by = q.column_text(8);
    c.status = q.column_text(9);
    c.reason = q.column_text(10);
    c.answered_at = q.column_optional_int(11);
    return c;
  }

  Db& db_;
};

// ---------------------------------------------------------------------------------------

#define TORII_RULE_COLUMNS                                                                           \
  "id, organisation_id, name, definition, version, enabled, created_by, created_at_ms, updated_by, " \
  "updated_at_ms, last_fired_at_ms"

class SqliteRuleRepository final : public RuleRepository {
 public:
  explicit SqliteRuleRepository(Db& db) : db_(db) {}

  Status insert(const RuleRecord& r) override {
    if (auto s = check(r); !s) return s;
    return db_.transaction([&]() -> Status {
      auto insert =
          db_.cached("INSERT INTO rules (" TORII_RULE_COLUMNS ") VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10)");
      if (!insert) return tl::unexpected(std::move(insert.error()));
      (**insert)
          .bind_text(1, r.id)
          .bind_text(2, r.organisation_id)
          .bind_text(3, r.name)
          .bind_text(4, r.definition)
          .bind_int(5, r.enabled ? 1 : 0)
          .bind_text(6, r.created_by)
          .bind_int(7, r.created_at)
          .bind_text(8, r.updated_by.empty() ? r.created_by : r.updated_by)
          .bind_int(9, r.updated_at == 0 ? r.created_at : r.updated_at)
          .bind_optional_int(10, r.last_fired_at);
      if (auto s = (**insert).run(); !s) return s;
      return add_version(r.id, 1, r.name, r.definition, r.enabled, r.created_by, r.created_at);
    });
  }

  Result<RuleRecord> update(const RuleRecord& r, std::uint32_t expected_version) override {
    if (auto s = check(r); !s) return tl::unexpected(std::move(s.error()));
    std::optional<RuleRecord> stored;
    auto s = db_.transaction([&]() -> Status {
      auto stmt = db_.cached(
          "UPDATE rules SET name = ?2, definition = ?3, enabled = ?4, updated_by = ?5, updated_at_ms = ?6, "
          "version = version + 1 WHERE id = ?1 AND version = ?7");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      (**stmt)
          .bind_text(1, r.id)
          .bind_text(2, r.name)
          .bind_text(3, r.definition)
          .bind_int(4, r.enabled ? 1 : 0)
          .bind_text(5, r.updated_by)
          .bind_int(6, r.updated_at)
          .bind_int(7, expected_version);
      auto changed = changed_rows(db_, **stmt);
      if (!changed) return tl::unexpected(std::move(changed.error()));
      auto found = find(r.id);
      if (!found) return tl::unexpected(std::move(found.error()));
      if (!*found) return fail(Errc::not_found, "store: no such rule");
      if (*changed == 0) return fail(Errc::conflict, "store: the rule was changed by someone else first");
      stored = std::move(*found);
      return add_version(r.id, stored->version, r.name, r.definition, r.enabled, r.updated_by, r.updated_at);
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return std::move(*stored);
  }

  Result<std::optional<RuleRecord>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_RULE_COLUMNS " FROM rules WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return read_one(**stmt, read_rule);
  }

  Result<std::vector<RuleRecord>> list(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_RULE_COLUMNS " FROM rules WHERE organisation_id = ?1 ORDER BY name, id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_rule);
  }

  Result<std::vector<RuleRecord>> list_enabled() override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_RULE_COLUMNS " FROM rules WHERE enabled = 1 ORDER BY id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_all(**stmt, read_rule);
  }

  Result<std::vector<RuleVersionRecord>> versions(std::string_view rule_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT rule_id, version, name, definition, enabled, changed_by, changed_at_ms FROM rule_versions "
        "WHERE rule_id = ?1 ORDER BY version DESC");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, rule_id);
    return read_all(**stmt, [](const Statement& q) {
      return RuleVersionRecord{q.column_text(0),     static_cast<std::uint32_t>(q.column_int(1)),
                               q.column_text(2),     q.column_text(3),
                               q.column_int(4) != 0, q.column_text(5),
                               q.column_int(6)};
    });
  }

  Result<bool> remove(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM rules WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    auto changed = changed_rows(db_, **stmt);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed > 0;
  }

  Status mark_fired(std::string_view id, UnixMillis at) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("UPDATE rules SET last_fired_at_ms = ?2 WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id).bind_int(2, at);
    return (**stmt).run();
  }

  Status save_states(const std::vector<RuleStateRecord>& states) override {
    if (states.empty()) return ok();
    return db_.transaction([&]() -> Status {
      // An upsert: the row is updated in place (no delete and insert, no index churn). A state
      // whose rule or device is gone fails its foreign key and is skipped: a constraint
      // failure ends the statement, not the transaction.
      auto stmt = db_.cached(
          "INSERT INTO rule_states (rule_id, device_id, key_id, sealed, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5) "
          "ON CONFLICT (rule_id, device_id) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, "
          "updated_at_ms = excluded.updated_at_ms");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      for (const auto& st : states) {
        (**stmt)
            .bind_text(1, st.rule_id)
            .bind_text(2, st.device_id)
            .bind_text(3, st.key_id)
            .bind_blob(4, st.sealed)
            .bind_int(5, st.updated_at);
        auto s = (**stmt).run();
        (**stmt).reset();
        if (!s && !s.error().is(Errc::conflict)) return s;
      }
      return ok();
    });
  }

  Result<std::vector<RuleStateRecord>> states(std::string_view rule_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "SELECT rule_id, device_id, key_id, sealed, updated_at_ms FROM rule_states WHERE rule_id = ?1 "
        "ORDER BY device_id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, rule_id);
    return read_all(**stmt, [](const Statement& q) {
      return RuleStateRecord{q.column_text(0), q.column_text(1), q.column_text(2), q.column_blob(3), q.column_int(4)};
    });
  }

  Status save_device_states(const std::vector<DeviceRuleStatesRecord>& rows) override {
    if (rows.empty()) return ok();
    return db_.transaction([&]() -> Status {
      // A row whose device is gone fails its foreign key and is skipped (see save_states).
      auto stmt = db_.cached(
          "INSERT INTO device_rule_states (device_id, key_id, sealed, updated_at_ms) VALUES (?1, ?2, ?3, ?4) "
          "ON CONFLICT (device_id) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, "
          "updated_at_ms = excluded.updated_at_ms");
      if (!stmt) return tl::unexpected(std::move(stmt.error()));
      for (const auto& row : rows) {
        (**stmt)
            .bind_text(1, row.device_id)
            .bind_text(2, row.key_id)
            .bind_blob(3, row.sealed)
            .bind_int(4, row.updated_at);
        auto s = (**stmt).run();
        (**stmt).reset();
        if (!s && !s.error().is(Errc::conflict)) return s;
      }
      return ok();
    });
  }

  Result<std::vector<DeviceRuleStatesRecord>> device_states() override {
    const Lock lock(db_.mutex());
    auto stmt =
        db_.cached("SELECT device_id, key_id, sealed, updated_at_ms FROM device_rule_states ORDER BY device_id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_all(**stmt, [](const Statement& q) {
      return DeviceRuleStatesRecord{q.column_text(0), q.column_text(1), q.column_blob(2), q.column_int(3)};
    });
  }

  Status clear_states(std::string_view rule_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM rule_states WHERE rule_id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, rule_id);
    return (**stmt).run();
  }

 private:
  static Status check(const RuleRecord& r) {
    if (r.id.empty()) return fail(Errc::invalid_argument, "store: rule id is empty");
    if (r.organisation_id.empty()) return fail(Errc::invalid_argument, "store: rule organisation is empty");
    if (r.name.empty()) return fail(Errc::invalid_argument, "store: rule name is empty");
    if (r.definition.empty()) return fail(Errc::invalid_argument, "store: rule definition is empty");
    return ok();
  }

  Status add_version(std::string_view id, std::uint32_t version, std::string_view name, std::string_view definition,
                     bool enabled, std::string_view by, UnixMillis at) {
    auto stmt = db_.cached(
        "INSERT INTO rule_versions (rule_id, version, name, definition, enabled, changed_by, changed_at_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, id)
        .bind_int(2, version)
        .bind_text(3, name)
        .bind_text(4, definition)
        .bind_int(5, enabled ? 1 : 0)
        .bind_text(6, by)
        .bind_int(7, at);
    return (**stmt).run();
  }

  static RuleRecord read_rule(const Statement& q) {
    RuleRecord r;
    r.id = q.column_text(0);
    r.organisation_id = q.column_text(1);
    r.name = q.column_text(2);
    r.definition = q.column_text(3);
    r.version = static_cast<std::uint32_t>(q.column_int(4));
    r.enabled = q.column_int(5) != 0;
    r.created_by = q.column_text(6);
    r.created_at = q.column_int(7);
    r.updated_by = q.column_text(8);
    r.updated_at = q.column_int(9);
    r.last_fired_at = q.column_optional_int(10);
    return r;
  }

  Db& db_;
};

// ---------------------------------------------------------------------------------------

// Parameter ?N binds column N of this list (insert and replace).
#define TORII_CHANNEL_COLUMNS                                                                                      \
  "organisation_id, id, name, type, min_severity, enabled, key_id, definition_sealed, created_by, created_at_ms, " \
  "updated_at_ms"

class SqliteNotificationChannelRepository final : public NotificationChannelRepository {
 public:
  explicit SqliteNotificationChannelRepository(Db& db) : db_(db) {}

  Status insert(const NotificationChannelRecord& c) override {
    if (auto s = check(c); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO notification_channels (" TORII_CHANNEL_COLUMNS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, c.organisation_id)
        .bind_text(2, c.id)
        .bind_text(3, c.name)
        .bind_text(4, c.type)
        .bind_text(5, c.min_severity)
        .bind_int(6, c.enabled ? 1 : 0)
        .bind_text(7, c.key_id)
        .bind_blob(8, c.definition_sealed)
        .bind_text(9, c.created_by)
        .bind_int(10, c.created_at)
        .bind_int(11, c.updated_at);
    return (**stmt).run();
  }

  Status replace(const NotificationChannelRecord& c) override {
    if (auto s = check(c); !s) return s;
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "UPDATE notification_channels SET name = ?3, type = ?4, min_severity = ?5, enabled = ?6, key_id = ?7, "
        "definition_sealed = ?8, updated_at_ms = ?9 WHERE organisation_id = ?1 AND id = ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, c.organisation_id)
        .bind_text(2, c.id)
        .bind_text(3, c.name)
        .bind_text(4, c.type)
        .bind_text(5, c.min_severity)
        .bind_int(6, c.enabled ? 1 : 0)
        .bind_text(7, c.key_id)
        .bind_blob(8, c.definition_sealed)
        .bind_int(9, c.updated_at);
    return expect_changed(db_, **stmt, "no such notification channel");
  }

  Result<std::optional<NotificationChannelRecord>> find(std::string_view organisation_id,
                                                        std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_CHANNEL_COLUMNS
                           " FROM notification_channels WHERE organisation_id = ?1 AND id = ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id).bind_text(2, id);
    return read_one(**stmt, read_channel);
  }

  Result<std::vector<NotificationChannelRecord>> list(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_CHANNEL_COLUMNS
                           " FROM notification_channels WHERE organisation_id = ?1 ORDER BY id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_channel);
  }

  Result<std::vector<NotificationChannelRecord>> list_all() override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_CHANNEL_COLUMNS " FROM notification_channels ORDER BY organisation_id, id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_all(**stmt, read_channel);
  }

  Result<bool> remove(std::string_view organisation_id, std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM notification_channels WHERE organisation_id = ?1 AND id = ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id).bind_text(2, id);
    return changed_any(db_, **stmt);
  }

 private:
  static Status check(const NotificationChannelRecord& c) {
    if (c.organisation_id.empty() || c.id.empty() || c.name.empty() || c.type.empty() || c.key_id.empty() ||
        c.definition_sealed.empty()) {
      return fail(Errc::invalid_argument,
                  "store: a notification channel needs an organisation, id, name, type, key id and definition");
    }
    return ok();
  }

  static NotificationChannelRecord read_channel(const Statement& q) {
    NotificationChannelRecord c;
    c.organisation_id = q.column_text(0);
    c.id = q.column_text(1);
    c.name = q.column_text(2);
    c.type = q.column_text(3);
    c.min_severity = q.column_text(4);
    c.enabled = q.column_int(5) != 0;
    c.key_id = q.column_text(6);
    c.definition_sealed = q.column_blob(7);
    c.created_by = q.column_text(8);
    c.created_at = q.column_int(9);
    c.updated_at = q.column_int(10);
    return c;
  }

  Db& db_;
};

// ---------------------------------------------------------------------------------------

// Parameter ?N binds column N of this list (insert).
#define TORII_API_TOKEN_COLUMNS                                                                                   \
  "id, user_id, organisation_id, name, permissions, secret_hash, created_at_ms, expires_at_ms, last_used_at_ms, " \
  "revoked_at_ms, revoked_reason"

// The permission names as stored: separated by single spaces (validate_api_token keeps
// spaces out of them).
std::string join_permissions(const std::vector<std::string>& permissions) {
  std::string out;
  for (const auto& p : permissions) {
    if (!out.empty()) out += ' ';
    out += p;
  }
  return out;
}

std::vector<std::string> split_permissions(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto end = text.find(' ');
    if (end != 0) out.emplace_back(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return out;
}

ApiTokenRecord read_api_token(const Statement& stmt) {
  ApiTokenRecord t;
  t.id = stmt.column_text(0);
  t.user_id = stmt.column_text(1);
  t.organisation_id = stmt.column_text(2);
  t.name = stmt.column_text(3);
  t.permissions = split_permissions(stmt.column_text(4));
  t.secret_hash = stmt.column_text(5);
  t.created_at = stmt.column_int(6);
  t.expires_at = stmt.column_int(7);
  t.last_used_at = stmt.column_optional_int(8);
  t.revoked_at = stmt.column_optional_int(9);
  t.revoked_reason = stmt.column_text(10);
  return t;
}

class SqliteApiTokenRepository final : public ApiTokenRepository {
 public:
  explicit SqliteApiTokenRepository(Db& db) : db_(db) {}

  Status insert(const ApiTokenRecord& token) override {
    if (auto s = validate_api_token(token); !s) return s;
    // Bound without a copy: it must live until the statement has run.
    const std::string permissions = join_permissions(token.permissions);
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO api_tokens (" TORII_API_TOKEN_COLUMNS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, token.id)
        .bind_text(2, token.user_id)
        .bind_text(3, token.organisation_id)
        .bind_text(4, token.name)
        .bind_text(5, permissions)
        .bind_text(6, token.secret_hash)
        .bind_int(7, token.created_at)
        .bind_int(8, token.expires_at)
        .bind_optional_int(9, token.last_used_at)
        .bind_optional_int(10, token.revoked_at)
        .bind_text(11, token.revoked_reason);
    return (**stmt).run();
  }

  Result<std::optional<ApiTokenRecord>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_API_TOKEN_COLUMNS " FROM api_tokens WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return read_one(**stmt, read_api_token);
  }

  Result<std::vector<ApiTokenRecord>> list_for_user(std::string_view user_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_API_TOKEN_COLUMNS
                           " FROM api_tokens WHERE user_id = ?1 ORDER BY created_at_ms DESC, id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, user_id);
    return read_all(**stmt, read_api_token);
  }

  Result<std::vector<ApiTokenRecord>> list_for_organisation(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_API_TOKEN_COLUMNS
                           " FROM api_tokens WHERE organisation_id = ?1 ORDER BY created_at_ms DESC, id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_api_token);
  }

  Result<bool> revoke(std::string_view id, UnixMillis at, std::string_view reason) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "UPDATE api_tokens SET revoked_at_ms = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at_ms IS NULL");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id).bind_int(2, at).bind_text(3, reason);
    return changed_any(db_, **stmt);
  }

  Status touch(std::string_view id, UnixMillis at) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("UPDATE api_tokens SET last_used_at_ms = ?2 WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id).bind_int(2, at);
    return expect_changed(db_, **stmt, "touch API token: no token with this id");
  }

  Result<std::vector<ApiTokenRecord>> list_unused_since(UnixMillis cutoff) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_API_TOKEN_COLUMNS
                           " FROM api_tokens WHERE revoked_at_ms IS NULL AND COALESCE(last_used_at_ms, created_at_ms) "
                           "< ?1 ORDER BY COALESCE(last_used_at_ms, created_at_ms), id");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_int(1, cutoff);
    return read_all(**stmt, read_api_token);
  }

 private:
  Db& db_;
};

#undef TORII_API_TOKEN_COLUMNS

// ---------------------------------------------------------------------------------------

#define TORII_CUSTOM_ROLE_COLUMNS "organisation_id, name, description, permissions, created_at_ms, updated_at_ms"

CustomRoleRecord read_custom_role(const Statement& stmt) {
  CustomRoleRecord r{stmt.column_text(0), stmt.column_text(1), stmt.column_text(2), {},
                     stmt.column_int(4),  stmt.column_int(5)};
  r.permissions = split_permissions(stmt.column_text(3));
  return r;
}

class SqliteCustomRoleRepository final : public CustomRoleRepository {
 public:
  explicit SqliteCustomRoleRepository(Db& db) : db_(db) {}

  Status insert(const CustomRoleRecord& role) override {
    if (auto s = validate_custom_role(role); !s) return s;
    const std::string permissions = join_permissions(role.permissions);  // bound without a copy
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("INSERT INTO custom_roles (" TORII_CUSTOM_ROLE_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, role.organisation_id)
        .bind_text(2, role.name)
        .bind_text(3, role.description)
        .bind_text(4, permissions)
        .bind_int(5, role.created_at)
        .bind_int(6, role.updated_at);
    return (**stmt).run();
  }

  Result<std::optional<CustomRoleRecord>> find(std::string_view organisation_id, std::string_view name) override {
    const Lock lock(db_.mutex());
    auto stmt =
        db_.cached("SELECT " TORII_CUSTOM_ROLE_COLUMNS " FROM custom_roles WHERE organisation_id = ?1 AND name = ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id).bind_text(2, name);
    return read_one(**stmt, read_custom_role);
  }

  Result<std::vector<CustomRoleRecord>> list(std::string_view organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt =
        db_.cached("SELECT " TORII_CUSTOM_ROLE_COLUMNS " FROM custom_roles WHERE organisation_id = ?1 ORDER BY name");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id);
    return read_all(**stmt, read_custom_role);
  }

  Status update(const CustomRoleRecord& role) override {
    if (auto s = validate_custom_role(role); !s) return s;
    const std::string permissions = join_permissions(role.permissions);  // bound without a copy
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "UPDATE custom_roles SET description = ?3, permissions = ?4, updated_at_ms = ?5 "
        "WHERE organisation_id = ?1 AND name = ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, role.organisation_id)
        .bind_text(2, role.name)
        .bind_text(3, role.description)
        .bind_text(4, permissions)
        .bind_int(5, role.updated_at);
    return expect_changed(db_, **stmt, "update custom role: no such role");
  }

  Result<bool> remove(std::string_view organisation_id, std::string_view name) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM custom_roles WHERE organisation_id = ?1 AND name = ?2");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id).bind_text(2, name);
    return changed_any(db_, **stmt);
  }

 private:
  Db& db_;
};

#undef TORII_CUSTOM_ROLE_COLUMNS

// ---------------------------------------------------------------------------------------

class SqliteSettingOverrideRepository final : public SettingOverrideRepository {
 public:
  explicit SqliteSettingOverrideRepository(Db& db) : db_(db) {}

  Status put(const SettingOverrideRecord& setting) override {
    if (setting.key.empty() || setting.value_json.empty()) {
      return fail(Errc::invalid_argument, "store: a setting override needs a key and a value");
    }
    const Lock lock(db_.mutex());
    auto stmt = db_.cached(
        "INSERT INTO setting_overrides (key, value_json, changed_by, changed_at_ms) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, changed_by = excluded.changed_by, "
        "changed_at_ms = excluded.changed_at_ms");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt)
        .bind_text(1, setting.key)
        .bind_text(2, setting.value_json)
        .bind_text(3, setting.changed_by)
        .bind_int(4, setting.changed_at);
    return (**stmt).run();
  }

  Result<bool> remove(std::string_view key) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("DELETE FROM setting_overrides WHERE key = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, key);
    return changed_any(db_, **stmt);
  }

  Result<std::vector<SettingOverrideRecord>> list() override {
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT key, value_json, changed_by, changed_at_ms FROM setting_overrides ORDER BY key");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    return read_all(**stmt, [](const Statement& row) {
      return SettingOverrideRecord{row.column_text(0), row.column_text(1), row.column_text(2), row.column_int(3)};
    });
  }

 private:
  Db& db_;
};

// ---------------------------------------------------------------------------------------

// Parameter ?N binds column N of this list (insert).
#define TORII_ALERT_COLUMNS                                                                                     \
  "id, organisation_id, source, alert_key, device_id, rule_id, severity, title, summary, status, occurrences, " \
  "opened_at_ms, last_raised_at_ms, acknowledged_at_ms, acknowledged_by, resolved_at_ms, resolved_by"

class SqliteAlertRepository final : public AlertRepository {
 public:
  explicit SqliteAlertRepository(Db& db) : db_(db) {}

  Result<std::pair<AlertRecord, bool>> raise(const AlertRecord& alert) override {
    if (auto valid = validate_alert(alert); !valid) return tl::unexpected(std::move(valid.error()));
    const Lock lock(db_.mutex());
    std::pair<AlertRecord, bool> out;
    auto s = db_.transaction([&]() -> Status {
      auto active = find_active(alert.organisation_id, alert.key);
      if (!active) return tl::unexpected(std::move(active.error()));
      if (*active) {
        // Raised again: one more occurrence; the severity only goes up.
        auto update = db_.cached(
            "UPDATE alerts SET occurrences = occurrences + 1, last_raised_at_ms = MAX(last_raised_at_ms, ?2), "
            "severity = CASE WHEN ?3 = 'critical' OR (?3 = 'warning' AND severity = 'info') THEN ?3 ELSE severity "
            "END WHERE id = ?1");
        if (!update) return tl::unexpected(std::move(update.error()));
        (**update).bind_text(1, (*active)->id).bind_int(2, alert.opened_at).bind_text(3, alert.severity);
        if (auto st = (**update).run(); !st) return st;
        auto again = find_locked((*active)->id);
        if (!again) return tl::unexpected(std::move(again.error()));
        if (!*again) return fail(Errc::corrupt, "store: raised alert vanished");
        out = {std::move(**again), false};
        return ok();
      }
      AlertRecord a = alert;
      a.status = std::string(kAlertOpen);
      a.occurrences = 1;
      a.last_raised_at = a.opened_at;
      a.acknowledged_at.reset();
      a.acknowledged_by.clear();
      a.resolved_at.reset();
      a.resolved_by.clear();
      auto insert = db_.cached("INSERT INTO alerts (" TORII_ALERT_COLUMNS
                               ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)");
      if (!insert) return tl::unexpected(std::move(insert.error()));
      (**insert)
          .bind_text(1, a.id)
          .bind_text(2, a.organisation_id)
          .bind_text(3, a.source)
          .bind_text(4, a.key)
          .bind_text(5, a.device_id)
          .bind_text(6, a.rule_id)
          .bind_text(7, a.severity)
          .bind_text(8, a.title)
          .bind_text(9, a.summary)
          .bind_text(10, a.status)
          .bind_int(11, a.occurrences)
          .bind_int(12, a.opened_at)
          .bind_int(13, a.last_raised_at)
          .bind_optional_int(14, a.acknowledged_at)
          .bind_text(15, a.acknowledged_by)
          .bind_optional_int(16, a.resolved_at)
          .bind_text(17, a.resolved_by);
      if (auto st = (**insert).run(); !st) return st;
      out = {std::move(a), true};
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return out;
  }

  Result<bool> acknowledge(std::string_view id, std::string_view by, UnixMillis at) override {
    const Lock lock(db_.mutex());
    auto update = db_.cached(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at_ms = ?2, acknowledged_by = ?3 "
        "WHERE id = ?1 AND status = 'open'");
    if (!update) return tl::unexpected(std::move(update.error()));
    (**update).bind_text(1, id).bind_int(2, at).bind_text(3, by);
    auto changed = changed_rows(db_, **update);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed == 1;
  }

  Result<bool> resolve(std::string_view id, std::string_view by, UnixMillis at) override {
    const Lock lock(db_.mutex());
    auto update = db_.cached(
        "UPDATE alerts SET status = 'resolved', resolved_at_ms = ?2, resolved_by = ?3 "
        "WHERE id = ?1 AND status <> 'resolved'");
    if (!update) return tl::unexpected(std::move(update.error()));
    (**update).bind_text(1, id).bind_int(2, at).bind_text(3, by);
    auto changed = changed_rows(db_, **update);
    if (!changed) return tl::unexpected(std::move(changed.error()));
    return *changed == 1;
  }

  Result<std::optional<AlertRecord>> resolve_key(std::string_view organisation_id, std::string_view key,
                                                 std::string_view by, UnixMillis at) override {
    const Lock lock(db_.mutex());
    std::optional<AlertRecord> out;
    auto s = db_.transaction([&]() -> Status {
      auto active = find_active(organisation_id, key);
      if (!active) return tl::unexpected(std::move(active.error()));
      if (!*active) return ok();
      auto resolved = resolve((*active)->id, by, at);
      if (!resolved) return tl::unexpected(std::move(resolved.error()));
      auto after = find_locked((*active)->id);
      if (!after) return tl::unexpected(std::move(after.error()));
      out = std::move(*after);
      return ok();
    });
    if (!s) return tl::unexpected(std::move(s.error()));
    return out;
  }

  Result<std::optional<AlertRecord>> find(std::string_view id) override {
    const Lock lock(db_.mutex());
    return find_locked(id);
  }

  Result<std::vector<AlertRecord>> list(const Query& q) override {
    // The statuses as ",open,acknowledged," so that one fixed statement filters by any set.
    std::string statuses;
    for (const auto& status : q.statuses) statuses += "," + status;
    if (!statuses.empty()) statuses += ",";
    const Lock lock(db_.mutex());
    auto stmt = db_.cached("SELECT " TORII_ALERT_COLUMNS
                           " FROM alerts WHERE (?1 IS NULL OR organisation_id = ?1) "
                           "AND (?2 = '' OR instr(?2, ',' || status || ',') > 0) AND (?3 = '' OR device_id = ?3) "
                           "AND (?4 = '' OR severity = ?4) AND (?5 IS NULL OR opened_at_ms < ?5) "
                           "ORDER BY opened_at_ms DESC, id DESC LIMIT ?6");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    if (q.organisation_id) {
      (**stmt).bind_text(1, *q.organisation_id);
    } else {
      (**stmt).bind_null(1);
    }
    (**stmt)
        .bind_text(2, statuses)
        .bind_text(3, q.device_id)
        .bind_text(4, q.severity)
        .bind_optional_int(5, q.before)
        .bind_int(6, static_cast<std::int64_t>(std::min<std::size_t>(q.limit, 1U << 20)));
    return read_all(**stmt, read_alert);
  }

  Result<std::size_t> count_active(std::optional<std::string> organisation_id) override {
    const Lock lock(db_.mutex());
    auto stmt =
        db_.cached("SELECT COUNT(*) FROM alerts WHERE status <> 'resolved' AND (?1 IS NULL OR organisation_id = ?1)");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    if (organisation_id) {
      (**stmt).bind_text(1, *organisation_id);
    } else {
      (**stmt).bind_null(1);
    }
    auto row = (**stmt).step();
    if (!row) return tl::unexpected(std::move(row.error()));
    return *row ? static_cast<std::size_t>((**stmt).column_int(0)) : std::size_t{0};
  }

 private:
  // With the mutex held.
  Result<std::optional<AlertRecord>> find_locked(std::string_view id) {
    auto stmt = db_.cached("SELECT " TORII_ALERT_COLUMNS " FROM alerts WHERE id = ?1");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, id);
    return read_one(**stmt, read_alert);
  }

  // With the mutex held.
  Result<std::optional<AlertRecord>> find_active(std::string_view organisation_id, std::string_view key) {
    auto stmt = db_.cached("SELECT " TORII_ALERT_COLUMNS
                           " FROM alerts WHERE organisation_id = ?1 AND alert_key = ?2 AND status <> 'resolved'");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    (**stmt).bind_text(1, organisation_id).bind_text(2, key);
    return read_one(**stmt, read_alert);
  }

  static AlertRecord read_alert(Statement& q) {
    AlertRecord a;
    a.id = q.column_text(0);
    a.organisation_id = q.column_text(1);
    a.source = q.column_text(2);
    a.key = q.column_text(3);
    a.device_id = q.column_text(4);
    a.rule_id = q.column_text(5);
    a.severity = q.column_text(6);
    a.title = q.column_text(7);
    a.summary = q.column_text(8);
    a.status = q.column_text(9);
    a.occurrences = static_cast<std::uint32_t>(std::clamp<std::int64_t>(q.column_int(10), 1, UINT32_MAX));
    a.opened_at = q.column_int(11);
    a.last_raised_at = q.column_int(12);
    a.acknowledged_at = q.column_optional_int(13);
    a.acknowledged_by = q.column_text(14);
    a.resolved_at = q.column_optional_int(15);
    a.resolved_by = q.column_text(16);
    return a;
  }

  Db& db_;
};

// ---------------------------------------------------------------------------------------

class SqliteStore final : public Store {
 public:
  // log_sync: null for an in-memory store.
  SqliteStore(DbHandle db, bool file_backed, int version, std::unique_ptr<Checkpointer> checkpointer,
              std::unique_ptr<LogSync> log_sync)
      : db_(std::move(db), file_backed, version, std::move(checkpointer)),
        log_sync_(std::move(log_sync)),
        meta_(db_),
        data_keys_(db_),
        secrets_(db_),
        certificates_(db_),
        setup_tokens_(db_),
        counters_(db_),
        devices_(db_),
        device_profiles_(db_),
        telemetry_(db_),
        latest_values_(db_),
        device_counters_(db_),
        routes_(db_),
        mqtt_state_(db_),
        organisations_(db_),
        users_(db_),
        console_sessions_(db_),
        password_resets_(db_),
        enrolment_tokens_(db_),
        device_commands_(db_),
        rules_(db_),
        notification_channels_(db_),
        api_tokens_(db_),
        custom_roles_(db_),
        setting_overrides_(db_),
        alerts_(db_) {}

  MetaRepository& meta() override { return meta_; }
  DataKeyRepository& data_keys() override { return data_keys_; }
  SecretRepository& secrets() override { return secrets_; }
  CertificateRepository& certificates() override { return certificates_; }
  SetupTokenRepository& setup_tokens() override { return setup_tokens_; }
  CounterRepository& counters() override { return counters_; }
  DeviceRepository& devices() override { return devices_; }
  DeviceProfileRepository& device_profiles() override { return device_profiles_; }
  TelemetryRepository& telemetry() override { return telemetry_; }
  LatestValueRepository& latest_values() override { return latest_values_; }
  DeviceCounterRepository& device_counters() override { return device_counters_; }
  RouteRepository& routes() override { return routes_; }
  MqttStateRepository& mqtt_state() override { return mqtt_state_; }
  OrganisationRepository& organisations() override { return organisations_; }
  UserRepository& users() override { return users_; }
  ConsoleSessionRepository& console_sessions() override { return console_sessions_; }
  PasswordResetRepository& password_resets() override { return password_resets_; }
  EnrolmentTokenRepository& enrolment_tokens() override { return enrolment_tokens_; }
  DeviceCommandRepository& device_commands() override { return device_commands_; }
  RuleRepository& rules() override { return rules_; }
  NotificationChannelRepository& notification_channels() override { return notification_channels_; }
  ApiTokenRepository& api_tokens() override { return api_tokens_; }
  CustomRoleRepository& custom_roles() override { return custom_roles_; }
  SettingOverrideRepository& setting_overrides() override { return setting_overrides_; }
  AlertRepository& alerts() override { return alerts_; }

  Status transaction(const std::function<Status()>& body) override { return db_.transaction(body, true); }
  Status transaction_unsynced(const std::function<Status()>& body) override {
    return db_.transaction(body, log_sync_ == nullptr);
  }
  Status sync_committed() override { return log_sync_ ? log_sync_->sync() : ok(); }

  int schema_version() override { return db_.version(); }

 private:
  Db db_;
  std::unique_ptr<LogSync> log_sync_;
  SqliteMetaRepository meta_;
  SqliteDataKeyRepository data_keys_;
  SqliteSecretRepository secrets_;
  SqliteCertificateRepository certificates_;
  SqliteSetupTokenRepository setup_tokens_;
  SqliteCounterRepository counters_;
  SqliteDeviceRepository devices_;
  SqliteDeviceProfileRepository device_profiles_;
  SqliteTelemetryRepository telemetry_;
  SqliteLatestValueRepository latest_values_;
  SqliteDeviceCounterRepository device_counters_;
  SqliteRouteRepository routes_;
  SqliteMqttStateRepository mqtt_state_;
  SqliteOrganisationRepository organisations_;
  SqliteUserRepository users_;
  SqliteConsoleSessionRepository console_sessions_;
  SqlitePasswordResetRepository password_resets_;
  SqliteEnrolmentTokenRepository enrolment_tokens_;
  SqliteDeviceCommandRepository device_commands_;
  SqliteRuleRepository rules_;
  SqliteNotificationChannelRepository notification_channels_;
  SqliteApiTokenRepository api_tokens_;
  SqliteCustomRoleRepository custom_roles_;
  SqliteSettingOverrideRepository setting_overrides_;
  SqliteAlertRepository alerts_;
};

// ---------------------------------------------------------------------------------------

// Runs a PRAGMA and returns the first column of its first row ("" when it returns none).
Result<std::string> pragma(sqlite3* db, std::string_view sql) {
  auto stmt = Statement::prepare(db, sql);
  if (!stmt) return tl::unexpected(std::move(stmt.error()));
  auto row = stmt->step();
  if (!row) return tl::unexpected(std::move(row.error()));
  std::string value = *row ? stmt->column_text(0) : std::string();
  if (auto done = stmt->run(); !done) return tl::unexpected(std::move(done.error()));
  return value;
}

// Sets a PRAGMA and checks that SQLite reports the value back (a PRAGMA SQLite does not
// know is silently ignored, so "it ran" proves nothing).
Status set_pragma(sqlite3* db, std::string_view set_sql, std::string_view get_sql, std::string_view expected) {
  if (auto s = execute_script(db, set_sql, set_sql); !s) return s;
  auto value = pragma(db, get_sql);
  if (!value) return tl::unexpected(std::move(value.error()));
  if (*value != expected) {
    return fail(Errc::unavailable, fmt::format("store: `{}` did not take effect (reads back '{}')", set_sql, *value));
  }
  return ok();
}

Result<std::unique_ptr<Store>> configure_and_migrate(DbHandle db, bool file_backed) {
  sqlite3* raw = db.get();
  sqlite3_extended_result_codes(raw, 1);
  // Hardening: no schema tricks through writable_schema or corrupt shadow tables, no
  // functions with side effects from schema objects, no extension loading.
  if (sqlite3_db_config(raw, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr) != SQLITE_OK ||
      sqlite3_db_config(raw, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr) != SQLITE_OK ||
      sqlite3_db_config(raw, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr) != SQLITE_OK) {
    return fail(Errc::io_error, "store: cannot apply SQLite hardening options");
  }

  // busy_timeout first, so the journal mode switch below waits for other processes.
  if (auto s = set_pragma(raw, "PRAGMA busy_timeout = 5000", "PRAGMA busy_timeout", "5000"); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  // Setting journal_mode returns the resulting mode; a file that cannot do WAL keeps its old
  // one and says so.
  auto mode = pragma(raw, "PRAGMA journal_mode = WAL");
  if (!mode) return tl::unexpected(std::move(mode.error()));
  if (file_backed && *mode != "wal") {
    return fail(Errc::unavailable, fmt::format("store: cannot enable WAL journal (journal mode is '{}')", *mode));
  }
  const struct {
    std::string_view set;
    std::string_view get;
    std::string_view expected;
  } settings[] = {
      {"PRAGMA synchronous = FULL", "PRAGMA synchronous", "2"},
      {"PRAGMA foreign_keys = ON", "PRAGMA foreign_keys", "1"},
      {"PRAGMA secure_delete = ON", "PRAGMA secure_delete", "1"},
      // Sorts and temporary indexes stay in memory rather than in unencrypted temp files.
      {"PRAGMA temp_store = MEMORY", "PRAGMA temp_store", "2"},
      // 16 MiB of page cache (the default is 2 MiB): the telemetry indexes of a busy gateway
      // stay in memory instead of being read back for every batch.
      {"PRAGMA cache_size = -16384", "PRAGMA cache_size", "-16384"},
      // The WAL is copied into the database once it holds 8,000 pages (about 31 MiB) rather
      // than 1,000: a page rewritten by many batches is copied once (QoS 1 ingest +20 %,
      // docs/benchmarks.md). A file-backed store's Checkpointer then takes this over, off the
      // committing thread, at the same size. Deleting sensitive data still checkpoints at once.
      {"PRAGMA wal_autocheckpoint = 8000", "PRAGMA wal_autocheckpoint", "8000"},
  };
  for (const auto& setting : settings) {
    if (auto s = set_pragma(raw, setting.set, setting.get, setting.expected); !s) {
      return tl::unexpected(std::move(s.error()));
    }
  }

  auto version = migrate(raw);
  if (!version) return tl::unexpected(std::move(version.error()));
  std::unique_ptr<Checkpointer> checkpointer;
  std::unique_ptr<LogSync> log_sync;
  if (file_backed) {
    const char* file = sqlite3_db_filename(raw, "main");
    auto opened = Checkpointer::open(file);
    if (!opened) return tl::unexpected(std::move(opened.error()));
    checkpointer = std::move(*opened);
    log_sync = std::make_unique<LogSync>(std::string(file) + "-wal");
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(std::move(db), file_backed, *version,
                                                              std::move(checkpointer), std::move(log_sync)));
}

}  // namespace

// Creates the database file with mode 0600 ourselves (SQLite would use 0644 minus umask),
// or checks an existing one. SQLite gives the -wal and -shm files the database file's mode.
Status prepare_private_database_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    const bool chmod_ok = ::fchmod(fd, 0600) == 0;  // independent of the umask
    const int err = errno;
    ::close(fd);
    if (!chmod_ok) {
      return fail(Errc::io_error, fmt::format("cannot set the mode of {}: {}", file.string(), errno_text(err)));
    }
    return ok();
  }
  if (errno != EEXIST) {
    return fail(errno == EACCES ? Errc::permission_denied : Errc::io_error,
                fmt::format("cannot create {}: {}", file.string(), errno_text(errno)));
  }
  if (auto s = check_owner_only(file); !s) return s;
  for (const char* suffix : {"-wal", "-shm"}) {
    std::filesystem::path companion = file;
    companion += suffix;
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(companion, ec))) continue;
    if (auto s = check_owner_only(companion); !s) return s;
  }
  return ok();
}

namespace {

// Process-wide settings, before SQLite's first use. Memory statistics off: with them, every
// allocation SQLite makes takes a global mutex, and nothing here reads them.
void configure_sqlite_library() {
  static std::once_flag once;
  std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::filesystem::path& file) {
  configure_sqlite_library();
  if (auto s = prepare_private_database_file(file); !s) return tl::unexpected(std::move(s.error()));
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      file.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
      nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) {
    Error e = sqlite_error(raw, rc, "open database");
    e.message += fmt::format(" ({})", file.string());
    return tl::unexpected(std::move(e));
  }
  return configure_and_migrate(std::move(db), true);
}

Result<std::unique_ptr<Store>> open_sqlite_memory_store() {
  configure_sqlite_library();
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      ":memory:", &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) return tl::unexpected(sqlite_error(raw, rc, "open in-memory database"));
  return configure_and_migrate(std::move(db), false);
}

}  // namespace torii::store::sqlite

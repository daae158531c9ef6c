// SQLite implementation of the store interfaces.
//
// Locking: one sqlite3 connection (opened SQLITE_OPEN_NOMUTEX) is shared by every
// repository and guarded by Db::mutex_. EVERY public method of every repository, and
// Store::transaction(), locks it for its whole duration. The mutex is recursive
// (std::recursive_mutex) on purpose: a transaction body runs with the mutex held, so other
// threads cannot slip their statements into the open transaction, while the body's own
// repository calls on the same thread re-enter it.
#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <mutex>
#include <system_error>
#include <utility>

#include <fmt/format.h>

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

// The single connection, its mutex and the transaction bookkeeping.
class Db {
 public:
  Db(DbHandle db, bool file_backed, int version) : db_(std::move(db)), file_backed_(file_backed), version_(version) {}

  [[nodiscard]] std::recursive_mutex& mutex() { return mutex_; }
  [[nodiscard]] int version() const { return version_; }

  [[nodiscard]] Result<Statement> prepare(std::string_view sql) { return Statement::prepare(db_.get(), sql); }

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

  [[nodiscard]] Status transaction(const std::function<Status()>& body) {
    const Lock lock(mutex_);
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

 private:
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
    if (file_backed_) (void)execute_script(db_.get(), "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint");
  }

  DbHandle db_;
  const bool file_backed_;
  const int version_;
  std::recursive_mutex mutex_;
  int depth_ = 0;               // open transaction levels; guarded by mutex_
  bool erase_pending_ = false;  // checkpoint due after the outermost commit; guarded by mutex_
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

Result<std::vector<CertificateRecord>> read_all_certificates(Statement& stmt) {
  std::vector<CertificateRecord> out;
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return out;
    out.push_back(read_certificate(stmt));
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
    return read_all_certificates(*stmt);
  }

  Result<std::vector<CertificateRecord>> list_expiring(UnixMillis before, bool include_revoked) override {
    const Lock lock(db_.mutex());
    auto stmt = db_.prepare("SELECT " TORII_CERT_COLUMNS
                            " FROM certificates WHERE not_after_ms < ?1 AND (?2 OR revoked_at_ms IS NULL) "
                            "ORDER BY not_after_ms, serial_hex");
    if (!stmt) return tl::unexpected(std::move(stmt.error()));
    stmt->bind_int(1, before).bind_int(2, include_revoked ? 1 : 0);
    return read_all_certificates(*stmt);
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
    return read_all_certificates(*stmt);
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

class SqliteStore final : public Store {
 public:
  SqliteStore(DbHandle db, bool file_backed, int version)
      : db_(std::move(db), file_backed, version),
        meta_(db_),
        data_keys_(db_),
        secrets_(db_),
        certificates_(db_),
        setup_tokens_(db_),
        counters_(db_) {}

  MetaRepository& meta() override { return meta_; }
  DataKeyRepository& data_keys() override { return data_keys_; }
  SecretRepository& secrets() override { return secrets_; }
  CertificateRepository& certificates() override { return certificates_; }
  SetupTokenRepository& setup_tokens() override { return setup_tokens_; }
  CounterRepository& counters() override { return counters_; }

  Status transaction(const std::function<Status()>& body) override { return db_.transaction(body); }

  int schema_version() override { return db_.version(); }

 private:
  Db db_;
  SqliteMetaRepository meta_;
  SqliteDataKeyRepository data_keys_;
  SqliteSecretRepository secrets_;
  SqliteCertificateRepository certificates_;
  SqliteSetupTokenRepository setup_tokens_;
  SqliteCounterRepository counters_;
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
  };
  for (const auto& setting : settings) {
    if (auto s = set_pragma(raw, setting.set, setting.get, setting.expected); !s) {
      return tl::unexpected(std::move(s.error()));
    }
  }

  auto version = migrate(raw);
  if (!version) return tl::unexpected(std::move(version.error()));
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(std::move(db), file_backed, *version));
}

// Creates the database file with mode 0600 ourselves (SQLite would use 0644 minus umask),
// or checks an existing one. SQLite gives the -wal and -shm files the database file's mode.
Status prepare_file(const std::filesystem::path& file) {
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

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::filesystem::path& file) {
  if (auto s = prepare_file(file); !s) return tl::unexpected(std::move(s.error()));
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
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      ":memory:", &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) return tl::unexpected(sqlite_error(raw, rc, "open in-memory database"));
  return configure_and_migrate(std::move(db), false);
}

}  // namespace torii::store::sqlite

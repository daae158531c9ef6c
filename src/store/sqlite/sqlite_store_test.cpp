#include "store/sqlite/sqlite_store.h"

#include <sys/stat.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "base/file.h"
#include "store/contract_test.h"
#include "store/sqlite/migrations.h"
#include "testing/temp_dir.h"

namespace torii::store::sqlite {
namespace {

using torii::store::testing::backend_name;
using torii::store::testing::StoreBackend;
using torii::store::testing::StoreContractTest;

std::unique_ptr<Store> make_memory_store() {
  auto store = open_sqlite_memory_store();
  if (!store) ADD_FAILURE() << store.error().message;
  return store ? std::move(*store) : nullptr;
}

// Every call gets a new file in one temporary directory that lives until the program ends.
std::unique_ptr<Store> make_file_store() {
  static torii::testing::TempDir dir;
  static std::atomic<int> counter{0};
  auto store = open_sqlite_store(dir / ("store-" + std::to_string(++counter) + ".db"));
  if (!store) ADD_FAILURE() << store.error().message;
  return store ? std::move(*store) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContractTest,
                         ::testing::Values(StoreBackend{"memory", &make_memory_store},
                                           StoreBackend{"file", &make_file_store}),
                         backend_name);

// ---------------------------------------------------------------------------------------
// SQLite-specific behaviour, checked through a second, raw connection where needed.

struct RawDb {
  explicit RawDb(const std::filesystem::path& file) {
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << file << ": " << sqlite3_errmsg(db);
    }
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  ~RawDb() { sqlite3_close_v2(db); }

  // Runs constant test SQL and returns the first column of the first row.
  std::string query(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
      return out;
    }
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (text != nullptr) out = reinterpret_cast<const char*>(text);
      while (rc == SQLITE_ROW) rc = sqlite3_step(stmt);
    }
    if (rc != SQLITE_DONE) ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    sqlite3_finalize(stmt);
    return out;
  }

  // Runs constant test SQL that may hold several statements.
  void exec(std::string_view sql) {
    char* error = nullptr;
    if (sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error != nullptr ? error : "?");
    }
    sqlite3_free(error);
  }

  sqlite3* db = nullptr;
};

mode_t file_mode(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

bool file_contains(const std::filesystem::path& p, ByteView needle) {
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) return false;
  auto data = read_file(p);
  if (!data) {
    ADD_FAILURE() << data.error().message;
    return false;
  }
  return std::search(data->begin(), data->end(), needle.begin(), needle.end()) != data->end();
}

std::filesystem::path with_suffix(std::filesystem::path p, const char* suffix) {
  p += suffix;
  return p;
}

TEST(SqliteStore, CreatesTheFileOwnerOnly) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE((*store)->meta().put("k", as_bytes("v")));
  EXPECT_EQ(file_mode(file), 0600u);
  for (const char* suffix : {"-wal", "-shm"}) {
    const auto companion = with_suffix(file, suffix);
    if (std::filesystem::exists(companion)) {
      EXPECT_EQ(file_mode(companion), 0600u) << companion;
    }
  }
}

TEST(SqliteStore, RefusesAFileReadableByOthers) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  { ASSERT_TRUE(open_sqlite_store(file)); }
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  auto store = open_sqlite_store(file);
  ASSERT_FALSE(store);
  EXPECT_TRUE(store.error().is(Errc::permission_denied)) << store.error().message;
}

TEST(SqliteStore, RefusesAFileThatIsNotADatabase) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  ASSERT_TRUE(write_file_atomic(file, as_bytes(std::string(4096, 'x')), 0600));
  auto store = open_sqlite_store(file);
  ASSERT_FALSE(store);
  EXPECT_TRUE(store.error().is(Errc::corrupt)) << store.error().message;
}

TEST(SqliteStore, UsesWriteAheadLogging) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  RawDb raw(file);
  EXPECT_EQ(raw.query("PRAGMA journal_mode"), "wal");  // persistent in the file header
}

TEST(SqliteStore, DataSurvivesReopen) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  {
    auto store = open_sqlite_store(file);
    ASSERT_TRUE(store) << store.error().message;
    ASSERT_TRUE((*store)->meta().put("installation-id", as_bytes("abc")));
    ASSERT_TRUE((*store)->data_keys().insert({"dk", "secrets", Bytes{1, 0, 2}, 5}));
    ASSERT_TRUE((*store)->counters().next("crl"));
  }
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  auto meta = (*store)->meta().get("installation-id");
  ASSERT_TRUE(meta && meta->has_value());
  EXPECT_EQ(torii::to_string(**meta), "abc");
  auto key = (*store)->data_keys().find("dk");
  ASSERT_TRUE(key && key->has_value());
  EXPECT_EQ((*key)->wrapped, (Bytes{1, 0, 2}));
  auto crl = (*store)->counters().next("crl");
  ASSERT_TRUE(crl);
  EXPECT_EQ(*crl, 2u);
}

TEST(SqliteStore, RecordsAppliedMigrations) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), latest_schema_version());
  EXPECT_EQ(static_cast<std::size_t>(latest_schema_version()), migrations().size());
  RawDb raw(file);
  EXPECT_EQ(raw.query("SELECT MAX(version) FROM schema_migrations"), std::to_string(latest_schema_version()));
  EXPECT_EQ(raw.query("SELECT COUNT(*) FROM schema_migrations"), std::to_string(migrations().size()));
  EXPECT_EQ(raw.query("SELECT description FROM schema_migrations WHERE version = 1"), migrations()[0].description);
  EXPECT_NE(raw.query("SELECT applied_at_ms FROM schema_migrations WHERE version = 1"), "");
}

// A store made by the migrations before 17 with telemetry in it: 17 makes the table again
// with the 'derived' kind allowed, keeping every row and the sequence.
TEST(SqliteStore, TheTelemetryTableMadeAgainKeepsItsRowsAndItsSequence) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  ASSERT_TRUE(prepare_private_database_file(file));
  {
    RawDb raw(file);
    raw.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT, applied_at_ms INTEGER)");
    for (const auto& m : migrations()) {
      if (m.version >= 17) break;
      raw.exec(m.sql);
      raw.exec("INSERT INTO schema_migrations VALUES (" + std::to_string(m.version) + ", 'test', 0)");
    }
    raw.exec(
        "INSERT INTO devices (id, organisation_id, name, profile_id, segment, serial_number, firmware_version, "
        "status, created_at_ms) VALUES ('d', 'default', 'd', '', '', '', '', 'active', 1);"
        "INSERT INTO telemetry (device_id, kind, message_key, received_at_ms, key_id, sealed) VALUES "
        "('d', 'telemetry', 'm1', 10, 'k', x'01'), ('d', 'events', NULL, 20, 'k', x'02'), "
        "('d', 'telemetry', 'm3', 30, 'k', x'03');"
        "DELETE FROM telemetry WHERE seq = 3;");
    // The old table refuses the new kind.
    char* error = nullptr;
    EXPECT_NE(sqlite3_exec(raw.db,
                           "INSERT INTO telemetry (device_id, kind, received_at_ms, key_id, sealed) "
                           "VALUES ('d', 'derived', 40, 'k', x'04')",
                           nullptr, nullptr, &error),
              SQLITE_OK);
    sqlite3_free(error);
  }
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), latest_schema_version());
  auto kept = (*store)->telemetry().range("d", 0, 1000, 10);
  ASSERT_TRUE(kept) << kept.error().message;
  ASSERT_EQ(kept->size(), 2U);
  EXPECT_EQ((*kept)[0].seq, 1);
  EXPECT_EQ((*kept)[0].message_key, "m1");
  EXPECT_EQ((*kept)[0].sealed, (Bytes{1}));
  EXPECT_EQ((*kept)[1].seq, 2);
  EXPECT_EQ((*kept)[1].kind, "events");
  EXPECT_EQ((*kept)[1].message_key, "");

  TelemetryRecord derived;
  derived.device_id = "d";
  derived.kind = std::string(kTelemetryKindDerived);
  derived.message_key = "m1/r1";
  derived.received_at = 40;
  derived.key_id = "k";
  derived.sealed = Bytes{4};
  auto appended = (*store)->telemetry().append(std::span<const TelemetryRecord>(&derived, 1));
  ASSERT_TRUE(appended) << appended.error().message;
  auto all = (*store)->telemetry().range("d", 0, 1000, 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3U);
  EXPECT_EQ(all->back().kind, "derived");
  EXPECT_EQ(all->back().seq, 4) << "a deleted row's seq is not handed out again";
  // The de-duplication index came back with the table.
  auto again = (*store)->telemetry().append(std::span<const TelemetryRecord>(&derived, 1));
  ASSERT_TRUE(again) << again.error().message;
  auto after = (*store)->telemetry().range("d", 0, 1000, 10);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), 3U);
}

TEST(SqliteStore, MigrationsAreIdempotentOnReopen) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  std::string first_applied;
  for (int i = 0; i < 3; ++i) {
    auto store = open_sqlite_store(file);
    ASSERT_TRUE(store) << store.error().message;
    EXPECT_EQ((*store)->schema_version(), latest_schema_version());
    RawDb raw(file);
    EXPECT_EQ(raw.query("SELECT COUNT(*) FROM schema_migrations"), std::to_string(migrations().size()));
    const std::string applied = raw.query("SELECT applied_at_ms FROM schema_migrations WHERE version = 1");
    if (i == 0) first_applied = applied;
    EXPECT_EQ(applied, first_applied) << "migration 1 was applied again";
  }
}

TEST(SqliteStore, RefusesADatabaseFromANewerTorii) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  { ASSERT_TRUE(open_sqlite_store(file)); }
  {
    RawDb raw(file);
    (void)raw.query(
        "INSERT INTO schema_migrations (version, description, applied_at_ms) VALUES (1000, 'from the future', 0)");
  }
  auto store = open_sqlite_store(file);
  ASSERT_FALSE(store);
  EXPECT_TRUE(store.error().is(Errc::conflict)) << store.error().message;
  EXPECT_EQ(store.error().message, "database schema version 1000 is newer than this torii (" +
                                       std::to_string(latest_schema_version()) + "); upgrade torii");
  RawDb raw(file);
  EXPECT_EQ(raw.query("SELECT COUNT(*) FROM schema_migrations"), std::to_string(migrations().size() + 1));
}

// A database written by a torii that knew only migration 1 is brought up to date on open,
// keeping its rows.
TEST(SqliteStore, UpgradesAVersion1Database) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  ASSERT_TRUE(write_file_atomic(file, ByteView{}, 0600));
  {
    RawDb raw(file);
    raw.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT, applied_at_ms INTEGER)");
    raw.exec(migrations()[0].sql);
    raw.exec("INSERT INTO schema_migrations VALUES (1, 'initial', 1)");
    raw.exec("INSERT INTO meta (key, value) VALUES ('installation-id', x'616263')");
  }
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), latest_schema_version());
  EXPECT_GE(latest_schema_version(), 2);
  auto meta = (*store)->meta().get("installation-id");
  ASSERT_TRUE(meta && meta->has_value());
  EXPECT_EQ(torii::to_string(**meta), "abc");

  DeviceRecord device;
  device.id = "d";
  device.organisation_id = "org";
  ASSERT_TRUE((*store)->devices().insert(device));
  const std::vector<TelemetryRecord> records = {{0, "d", "telemetry", "m1", 5, "dk", Bytes{1, 2}}};
  auto seqs = (*store)->telemetry().append(records);
  ASSERT_TRUE(seqs) << seqs.error().message;
  EXPECT_EQ(seqs->size(), 1u);
  RawDb raw(file);
  EXPECT_EQ(raw.query("SELECT applied_at_ms FROM schema_migrations WHERE version = 1"), "1");
  EXPECT_EQ(raw.query("SELECT COUNT(*) FROM schema_migrations"), std::to_string(migrations().size()));
}

TEST(SqliteStore, MemoryStoresAreIndependent) {
  auto a = open_sqlite_memory_store();
  auto b = open_sqlite_memory_store();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE((*a)->meta().put("k", as_bytes("v")));
  auto got = (*b)->meta().get("k");
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ((*a)->schema_version(), latest_schema_version());
}

// The write-ahead log's index (the -shm file, https://sqlite.org/walformat.html, in the
// machine's byte order): how many frames the log holds and how many of them are copied.
struct WalIndex {
  std::uint32_t frames = 0;  // mxFrame, in the index header at offset 16
  std::uint32_t copied = 0;  // nBackfill, in the checkpoint information at offset 96
};

WalIndex read_wal_index(const std::filesystem::path& db_file) {
  WalIndex index;
  auto shm = read_file(with_suffix(db_file, "-shm"));
  if (!shm || shm->size() < 100) {
    ADD_FAILURE() << "no write-ahead log index beside " << db_file;
    return index;
  }
  std::memcpy(&index.frames, shm->data() + 16, sizeof index.frames);
  std::memcpy(&index.copied, shm->data() + 96, sizeof index.copied);
  return index;
}

// The log is copied into the database file by the store's checkpointer (its own thread and
// connection) once it holds 8,000 pages, and it starts again from its beginning afterwards:
// it does not grow without end although no commit checkpoints.
TEST(SqliteStore, TheLogIsCopiedIntoTheDatabaseAndStartsAgain) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  constexpr int kBlobs = 36;  // 36 MiB: over 8,000 pages of 4 KiB
  const Bytes blob(1 << 20, 0x3C);
  for (int i = 0; i < kBlobs; ++i) ASSERT_TRUE((*store)->meta().put("blob-" + std::to_string(i), blob));

  // Copied, every frame, while nothing here checkpoints.
  WalIndex index = read_wal_index(file);
  ASSERT_GE(index.frames, 8000U);
  for (int i = 0; i < 600 && index.copied < index.frames; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    index = read_wal_index(file);
  }
  ASSERT_EQ(index.copied, index.frames);
  EXPECT_GE(std::filesystem::file_size(file), std::uintmax_t{kBlobs} << 20);

  // Started again: one more small write is at the log's beginning.
  ASSERT_TRUE((*store)->meta().put("after", Bytes(16, 0x01)));
  index = read_wal_index(file);
  EXPECT_GT(index.frames, 0U);
  EXPECT_LT(index.frames, 100U);
}

// While it lives, the default VFS: SQLite's own, counting the syncs SQLite asks of
// write-ahead logs (of every connection opened meanwhile).
class WalSyncCounter {
 public:
  WalSyncCounter() {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.zName = "torii-wal-sync-counter";
    vfs_.pNext = nullptr;
    vfs_.xOpen = &WalSyncCounter::open;
    instance_ = this;
    if (sqlite3_vfs_register(&vfs_, 1) != SQLITE_OK) ADD_FAILURE() << "cannot register the counting VFS";
  }
  WalSyncCounter(const WalSyncCounter&) = delete;
  WalSyncCounter& operator=(const WalSyncCounter&) = delete;
  ~WalSyncCounter() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(real_, 1);
    instance_ = nullptr;
  }

  [[nodiscard]] int syncs() const { return syncs_.load(); }

 private:
  // Ours, then the real file right behind it (vfs_.szOsFile).
  struct File {
    sqlite3_file base;
    sqlite3_file* real;
    bool wal;
  };
  static sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }
  static inline WalSyncCounter* instance_ = nullptr;

  static int open(sqlite3_vfs* /*vfs*/, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    auto* f = reinterpret_cast<File*>(file);
    f->real = reinterpret_cast<sqlite3_file*>(f + 1);
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    const int rc = instance_->real_->xOpen(instance_->real_, name, f->real, flags, out_flags);
    f->base.pMethods = f->real->pMethods != nullptr ? &kMethods : nullptr;
    return rc;
  }

  static const sqlite3_io_methods kMethods;

  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_{};
  std::atomic<int> syncs_{0};
};

const sqlite3_io_methods WalSyncCounter::kMethods = {
    3,
    [](sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); },
    [](sqlite3_file* f, void* b, int n, sqlite3_int64 o) { return real(f)->pMethods->xRead(real(f), b, n, o); },
    [](sqlite3_file* f, const void* b, int n, sqlite3_int64 o) { return real(f)->pMethods->xWrite(real(f), b, n, o); },
    [](sqlite3_file* f, sqlite3_int64 size) { return real(f)->pMethods->xTruncate(real(f), size); },
    [](sqlite3_file* f, int flags) {
      if (reinterpret_cast<File*>(f)->wal) ++instance_->syncs_;
      return real(f)->pMethods->xSync(real(f), flags);
    },
    [](sqlite3_file* f, sqlite3_int64* size) { return real(f)->pMethods->xFileSize(real(f), size); },
    [](sqlite3_file* f, int lock) { return real(f)->pMethods->xLock(real(f), lock); },
    [](sqlite3_file* f, int lock) { return real(f)->pMethods->xUnlock(real(f), lock); },
    [](sqlite3_file* f, int* out) { return real(f)->pMethods->xCheckReservedLock(real(f), out); },
    [](sqlite3_file* f, int op, void* arg) { return real(f)->pMethods->xFileControl(real(f), op, arg); },
    [](sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); },
    [](sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); },
    [](sqlite3_file* f, int page, int size, int extend, void volatile** out) {
      return real(f)->pMethods->xShmMap(real(f), page, size, extend, out);
    },
    [](sqlite3_file* f, int offset, int n, int flags) {
      return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
    },
    [](sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); },
    [](sqlite3_file* f, int remove) { return real(f)->pMethods->xShmUnmap(real(f), remove); },
    [](sqlite3_file* f, sqlite3_int64 offset, int n, void** out) {
      return real(f)->pMethods->xFetch(real(f), offset, n, out);
    },
    [](sqlite3_file* f, sqlite3_int64 offset, void* page) {
      return real(f)->pMethods->xUnfetch(real(f), offset, page);
    },
};

// The gateway's batches commit without SQLite's sync (sync_committed() syncs the log after
// them); everything else still waits for the disk at its commit.
TEST(SqliteStore, OnlyAnUnsyncedTransactionCommitsWithoutSyncingTheLog) {
  const WalSyncCounter counter;
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  auto opened = open_sqlite_store(file);
  ASSERT_TRUE(opened) << opened.error().message;
  Store& store = **opened;

  int syncs = counter.syncs();
  ASSERT_TRUE(store.meta().put("synced", as_bytes("1")));
  EXPECT_GT(counter.syncs(), syncs);

  syncs = counter.syncs();
  ASSERT_TRUE(store.transaction_unsynced([&] { return store.meta().put("unsynced", as_bytes("2")); }));
  EXPECT_EQ(counter.syncs(), syncs);
  RawDb raw(file);  // committed: another connection reads it
  EXPECT_EQ(raw.query("SELECT count(*) FROM meta WHERE key = 'unsynced'"), "1");
  ASSERT_TRUE(store.sync_committed());

  // The statements after it, in a transaction or not, sync again.
  syncs = counter.syncs();
  ASSERT_TRUE(store.meta().put("synced-again", as_bytes("3")));
  EXPECT_GT(counter.syncs(), syncs);
  syncs = counter.syncs();
  ASSERT_TRUE(store.transaction([&] { return store.meta().put("in-a-transaction", as_bytes("4")); }));
  EXPECT_GT(counter.syncs(), syncs);
  // Also after one whose body failed.
  ASSERT_FALSE(store.transaction_unsynced([] { return fail(Errc::conflict, "no"); }));
  syncs = counter.syncs();
  ASSERT_TRUE(store.meta().put("after-a-failure", as_bytes("5")));
  EXPECT_GT(counter.syncs(), syncs);
}

TEST(SqliteStore, SyncingCommitsFailsWhenTheLogIsGone) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  auto opened = open_sqlite_store(file);
  ASSERT_TRUE(opened) << opened.error().message;
  Store& store = **opened;
  ASSERT_TRUE(store.transaction_unsynced([&] { return store.meta().put("a", as_bytes("1")); }));
  ASSERT_TRUE(store.sync_committed());
  std::filesystem::remove(with_suffix(file, "-wal"));
  const auto synced = store.sync_committed();
  ASSERT_FALSE(synced);
  EXPECT_TRUE(synced.error().is(Errc::io_error));
  EXPECT_THAT(synced.error().message, ::testing::HasSubstr("write-ahead log"));
}

// secure_delete zeroes deleted cells; the checkpoint after the delete makes sure the page
// image that still held the bytes is overwritten in the database file and dropped from the WAL.
TEST(SqliteStore, RemovedWrappedKeyBytesAreErasedFromTheFiles) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  const Bytes marker(48, 0xA7);
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE((*store)->data_keys().insert({"keep", "p", Bytes(48, 0x11), 1}));
  ASSERT_TRUE((*store)->data_keys().insert({"doomed", "p", marker, 2}));
  {
    RawDb raw(file);
    (void)raw.query("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  ASSERT_TRUE(file_contains(file, marker)) << "test setup: the key should be in the database file";

  auto removed = (*store)->data_keys().remove("doomed");
  ASSERT_TRUE(removed && *removed);
  EXPECT_FALSE(file_contains(file, marker));
  EXPECT_FALSE(file_contains(with_suffix(file, "-wal"), marker));
  auto kept = (*store)->data_keys().find("keep");
  ASSERT_TRUE(kept && kept->has_value());
}

TEST(SqliteStore, ReplacedSecretBytesAreErasedAfterTheTransactionCommits) {
  torii::testing::TempDir dir;
  const auto file = dir / "torii.db";
  const Bytes old_value(40, 0x5C);
  auto store = open_sqlite_store(file);
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE((*store)->secrets().put({"ca/root", "dk", old_value, 1}));
  ASSERT_TRUE(file_contains(file, old_value) || file_contains(with_suffix(file, "-wal"), old_value));

  auto s = (*store)->transaction([&] { return (*store)->secrets().put({"ca/root", "dk2", Bytes(40, 0x01), 2}); });
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(file_contains(file, old_value));
  EXPECT_FALSE(file_contains(with_suffix(file, "-wal"), old_value));
}

}  // namespace
}  // namespace torii::store::sqlite

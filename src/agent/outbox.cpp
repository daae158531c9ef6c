#include "agent/outbox.h"

#include <array>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

#include "base/bytes.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/statement.h"

namespace torii::agent {
namespace {

using store::sqlite::Statement;

// The schema version kept in PRAGMA user_version; 0 is a file SQLite has just created.
// Version 2 added command_nonces; a version 1 file gains the table when opened.
constexpr int kSchemaVersion = 2;

constexpr std::string_view kCreateSchema = R"(
CREATE TABLE outbox_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  id_prefix TEXT NOT NULL,
  next_seq INTEGER NOT NULL,
  evicted INTEGER NOT NULL
);
CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY,
  message_id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('telemetry', 'events', 'state', 'results')),
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
)";

// The nonces of the commands the agent has taken, until their commands expire (device time).
constexpr std::string_view kCreateNonces = R"(
CREATE TABLE command_nonces (
  nonce TEXT PRIMARY KEY,
  expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX command_nonces_by_expiry ON command_nonces (expires_ms);
PRAGMA user_version = 2;
)";

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, CloseDb>;

std::optional<TopicKind> parse_kind(std::string_view text) {
  for (const auto kind : {TopicKind::telemetry, TopicKind::events, TopicKind::state, TopicKind::results}) {
    if (to_string(kind) == text) return kind;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(TopicKind kind) {
  switch (kind) {
    case TopicKind::telemetry: return "telemetry";
    case TopicKind::events: return "events";
    case TopicKind::state: return "state";
    case TopicKind::results: return "results";
  }
  return "?";
}

struct Outbox::Impl {
  std::filesystem::path path;
  std::uint64_t max_messages = 0;
  const Clock* clock = nullptr;
  DbHandle db;  // before the statements, which must be finalized first
  std::string id_prefix;
  std::int64_t next_seq = 1;
  std::uint64_t evicted = 0;
  std::uint64_t size = 0;

  // The error with the outbox's path in front, in place of the SQLite helper's "store:".
  [[nodiscard]] Error located(Error e) const {
    std::string_view message = e.message;
    if (message.starts_with("store: ")) message.remove_prefix(7);
    e.message = fmt::format("outbox {}: {}", path.string(), message);
    return e;
  }
  [[nodiscard]] tl::unexpected<Error> failure(Error e) const { return tl::unexpected(located(std::move(e))); }

  [[nodiscard]] Status script(std::string_view sql, std::string_view what) {
    if (auto s = store::sqlite::execute_script(db.get(), sql, what); !s) return failure(std::move(s.error()));
    return ok();
  }

  // The first column of the first row of a one-statement query.
  [[nodiscard]] Result<std::int64_t> query_int(std::string_view sql) {
    auto stmt = Statement::prepare(db.get(), sql);
    if (!stmt) return failure(std::move(stmt.error()));
    auto row = stmt->step();
    if (!row) return failure(std::move(row.error()));
    return *row ? stmt->column_int(0) : 0;
  }

  [[nodiscard]] Result<std::string> query_text(std::string_view sql) {
    auto stmt = Statement::prepare(db.get(), sql);
    if (!stmt) return failure(std::move(stmt.error()));
    auto row = stmt->step();
    if (!row) return failure(std::move(row.error()));
    return *row ? stmt->column_text(0) : std::string();
  }

  void roll_back() { (void)store::sqlite::execute_script(db.get(), "ROLLBACK", "roll back"); }

  [[nodiscard]] Status configure() {
    sqlite3* raw = db.get();
    sqlite3_extended_result_codes(raw, 1);
    if (sqlite3_db_config(raw, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr) != SQLITE_OK ||
        sqlite3_db_config(raw, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr) != SQLITE_OK ||
        sqlite3_db_config(raw, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr) != SQLITE_OK) {
      return fail(Errc::io_error, fmt::format("outbox {}: cannot apply SQLite hardening options", path.string()));
    }
    if (auto s = script("PRAGMA busy_timeout = 5000", "set busy timeout"); !s) return s;
    auto mode = query_text("PRAGMA journal_mode = WAL");
    if (!mode) return tl::unexpected(std::move(mode.error()));
    if (*mode != "wal") {
      return fail(Errc::unavailable,
                  fmt::format("outbox {}: cannot enable the WAL journal (journal mode is '{}')", path.string(), *mode));
    }
    if (auto s = script("PRAGMA synchronous = FULL", "set synchronous"); !s) return s;
    auto synchronous = query_int("PRAGMA synchronous");
    if (!synchronous) return tl::unexpected(std::move(synchronous.error()));
    if (*synchronous != 2) {
      return fail(Errc::unavailable, fmt::format("outbox {}: synchronous=FULL did not take effect", path.string()));
    }
    return ok();
  }

  // Creates the schema in a new file, or checks that an existing file is an outbox.
  [[nodiscard]] Status create_or_check(Random& random) {
    if (auto s = script("BEGIN IMMEDIATE", "begin transaction"); !s) return s;
    auto s = create_or_check_in_transaction(random);
    if (!s) {
      roll_back();
      return s;
    }
    return script("COMMIT", "commit transaction");
  }

  [[nodiscard]] Status create_or_check_in_transaction(Random& random) {
    auto version = query_int("PRAGMA user_version");
    if (!version) return tl::unexpected(std::move(version.error()));
    if (*version == 0) {
      auto tables = query_int("SELECT count(*) FROM sqlite_schema");
      if (!tables) return tl::unexpected(std::move(tables.error()));
      if (*tables != 0) {
        return fail(Errc::corrupt, fmt::format("outbox {}: the file is an SQLite database but not an outbox (refusing "
                                               "to change it)",
                                               path.string()));
      }
      std::array<std::uint8_t, 4> bytes{};
      random.fill(bytes);
      const std::string prefix = hex_encode(bytes);
      if (auto c = script(kCreateSchema, "create the outbox"); !c) return c;
      if (auto c = script(kCreateNonces, "create the nonce table"); !c) return c;
      auto insert = Statement::prepare(
          db.get(), "INSERT INTO outbox_meta (id, id_prefix, next_seq, evicted) VALUES (1, ?1, 1, 0)");
      if (!insert) return failure(std::move(insert.error()));
      if (auto r = insert->bind_text(1, prefix).run(); !r) return failure(std::move(r.error()));
    } else if (*version == 1) {
      if (auto c = script(kCreateNonces, "add the nonce table"); !c) return c;
    } else if (*version != kSchemaVersion) {
      return fail(Errc::corrupt,
                  fmt::format("outbox {}: unknown outbox format version {} (this agent reads version {})",
                              path.string(), *version, kSchemaVersion));
    }
    auto meta = Statement::prepare(db.get(), "SELECT id_prefix, next_seq, evicted FROM outbox_meta WHERE id = 1");
    if (!meta) return failure(std::move(meta.error()));
    auto row = meta->step();
    if (!row) return failure(std::move(row.error()));
    const bool valid = *row && meta->column_text(0).size() == 8 && meta->column_int(1) >= 1 && meta->column_int(2) >= 0;
    if (!valid)
      return fail(Errc::corrupt, fmt::format("outbox {}: its header row is missing or damaged", path.string()));
    id_prefix = meta->column_text(0);
    next_seq = meta->column_int(1);
    evicted = static_cast<std::uint64_t>(meta->column_int(2));
    auto count = query_int("SELECT count(*) FROM outbox");
    if (!count) return tl::unexpected(std::move(count.error()));
    size = static_cast<std::uint64_t>(*count);
    return ok();
  }

  // The writes of one record_nonce, inside its transaction.
  [[nodiscard]] Result<NonceCheck> note_nonce(std::string_view nonce, std::int64_t expires_ms, std::int64_t now_ms,
                                              std::uint64_t max_nonces) {
    auto prune = Statement::prepare(db.get(), "DELETE FROM command_nonces WHERE expires_ms <= ?1");
    if (!prune) return failure(std::move(prune.error()));
    if (auto r = prune->bind_int(1, now_ms).run(); !r) return failure(std::move(r.error()));
    auto seen = Statement::prepare(db.get(), "SELECT 1 FROM command_nonces WHERE nonce = ?1");
    if (!seen) return failure(std::move(seen.error()));
    auto row = seen->bind_text(1, nonce).step();
    if (!row) return failure(std::move(row.error()));
    if (*row) return NonceCheck::replayed;
    auto kept = query_int("SELECT count(*) FROM command_nonces");
    if (!kept) return tl::unexpected(std::move(kept.error()));
    if (static_cast<std::uint64_t>(*kept) >= max_nonces) return NonceCheck::full;
    auto insert = Statement::prepare(db.get(), "INSERT INTO command_nonces (nonce, expires_ms) VALUES (?1, ?2)");
    if (!insert) return failure(std::move(insert.error()));
    if (auto r = insert->bind_text(1, nonce).bind_int(2, expires_ms).run(); !r) return failure(std::move(r.error()));
    return NonceCheck::fresh;
  }

  // The writes of one push, inside its transaction; returns how many entries were evicted.
  [[nodiscard]] Result<std::uint64_t> write(const OutboxEntry& entry) {
    std::uint64_t evict = 0;
    if (size >= max_messages) {
      evict = size - max_messages + 1;
      auto stmt = Statement::prepare(db.get(),
                                     "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?1)");
      if (!stmt) return failure(std::move(stmt.error()));
      if (auto r = stmt->bind_int(1, static_cast<std::int64_t>(evict)).run(); !r) return failure(std::move(r.error()));
      evict = static_cast<std::uint64_t>(sqlite3_changes(db.get()));
    }
    auto insert = Statement::prepare(
        db.get(), "INSERT INTO outbox (seq, message_id, kind, payload, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!insert) return failure(std::move(insert.error()));
    insert->bind_int(1, entry.seq)
        .bind_text(2, entry.id)
        .bind_text(3, to_string(entry.kind))
        .bind_text(4, entry.payload)
        .bind_int(5, to_unix_millis(entry.created));
    if (auto r = insert->run(); !r) return failure(std::move(r.error()));
    auto meta =
        Statement::prepare(db.get(), "UPDATE outbox_meta SET next_seq = ?1, evicted = evicted + ?2 WHERE id = 1");
    if (!meta) return failure(std::move(meta.error()));
    if (auto r = meta->bind_int(1, entry.seq + 1).bind_int(2, static_cast<std::int64_t>(evict)).run(); !r) {
      return failure(std::move(r.error()));
    }
    return evict;
  }
};

Outbox::Outbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Outbox::Outbox(Outbox&&) noexcept = default;
Outbox& Outbox::operator=(Outbox&&) noexcept = default;
Outbox::~Outbox() = default;

Result<Outbox> Outbox::open(const std::filesystem::path& path, std::uint64_t max_messages, Random& random,
                            const Clock& clock) {
  if (max_messages == 0) return fail(Errc::invalid_argument, "outbox: max_messages must be at least 1");
  if (auto s = store::sqlite::prepare_private_database_file(path); !s) return tl::unexpected(std::move(s.error()));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->max_messages = max_messages;
  impl->clock = &clock;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
      nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) return impl->failure(store::sqlite::sqlite_error(raw, rc, "open"));
  if (auto s = impl->configure(); !s) return tl::unexpected(std::move(s.error()));
  if (auto s = impl->create_or_check(random); !s) return tl::unexpected(std::move(s.error()));
  return Outbox(std::move(impl));
}

Result<OutboxEntry> Outbox::push(TopicKind kind, const PayloadMaker& make_payload) {
  Impl& d = *impl_;
  OutboxEntry entry;
  entry.seq = d.next_seq;
  entry.id = fmt::format("{}-{}", d.id_prefix, entry.seq);
  entry.kind = kind;
  entry.payload = make_payload(entry.id);
  entry.created = from_unix_millis(to_unix_millis(d.clock->now()));
  if (auto s = d.script("BEGIN IMMEDIATE", "begin transaction"); !s) return tl::unexpected(std::move(s.error()));
  auto evicted = d.write(entry);
  if (!evicted) {
    d.roll_back();
    return tl::unexpected(std::move(evicted.error()));
  }
  if (auto s = d.script("COMMIT", "commit transaction"); !s) {
    d.roll_back();
    return tl::unexpected(std::move(s.error()));
  }
  d.next_seq = entry.seq + 1;
  d.size = d.size + 1 - *evicted;
  d.evicted += *evicted;
  return entry;
}

Result<std::vector<OutboxEntry>> Outbox::oldest(std::size_t n) {
  Impl& d = *impl_;
  auto stmt = Statement::prepare(d.db.get(),
                                 "SELECT seq, message_id, kind, payload, created_ms FROM outbox ORDER BY seq LIMIT ?1");
  if (!stmt) return d.failure(std::move(stmt.error()));
  stmt->bind_int(1, static_cast<std::int64_t>(std::min<std::size_t>(n, INT64_MAX)));
  std::vector<OutboxEntry> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return d.failure(std::move(row.error()));
    if (!*row) break;
    const auto kind = parse_kind(stmt->column_text(2));
    if (!kind) {
      return fail(Errc::corrupt,
                  fmt::format("outbox {}: entry {} has an unknown topic kind", d.path.string(), stmt->column_int(0)));
    }
    out.push_back({stmt->column_int(0), stmt->column_text(1), *kind, stmt->column_text(3),
                   from_unix_millis(stmt->column_int(4))});
  }
  return out;
}

Status Outbox::remove(std::int64_t seq) {
  Impl& d = *impl_;
  auto stmt = Statement::prepare(d.db.get(), "DELETE FROM outbox WHERE seq = ?1");
  if (!stmt) return d.failure(std::move(stmt.error()));
  if (auto r = stmt->bind_int(1, seq).run(); !r) return d.failure(std::move(r.error()));
  d.size -= std::min<std::uint64_t>(d.size, static_cast<std::uint64_t>(sqlite3_changes(d.db.get())));
  return ok();
}

Result<NonceCheck> Outbox::record_nonce(std::string_view nonce, std::chrono::system_clock::time_point expires_at,
                                        std::chrono::system_clock::time_point now, std::uint64_t max_nonces) {
  Impl& d = *impl_;
  if (auto s = d.script("BEGIN IMMEDIATE", "begin transaction"); !s) return tl::unexpected(std::move(s.error()));
  auto check = d.note_nonce(nonce, to_unix_millis(expires_at), to_unix_millis(now), max_nonces);
  if (!check) {
    d.roll_back();
    return tl::unexpected(std::move(check.error()));
  }
  if (auto s = d.script("COMMIT", "commit transaction"); !s) {
    d.roll_back();
    return tl::unexpected(std::move(s.error()));
  }
  return *check;
}

Result<std::uint64_t> Outbox::nonces() {
  auto count = impl_->query_int("SELECT count(*) FROM command_nonces");
  if (!count) return tl::unexpected(std::move(count.error()));
  return static_cast<std::uint64_t>(*count);
}

std::uint64_t Outbox::size() const { return impl_->size; }
std::uint64_t Outbox::evicted() const { return impl_->evicted; }
const std::string& Outbox::id_prefix() const { return impl_->id_prefix; }

}  // namespace torii::agent

#include "store/sqlite/statement.h"

#include <limits>
#include <utility>

#include <fmt/format.h>

namespace torii::store::sqlite {
namespace {

// sqlite3_bind_text/blob treat a null pointer as SQL NULL; an empty value must stay empty.
constexpr char kEmpty[1] = {};

bool only_whitespace(std::string_view s) {
  for (const char c : s) {
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  const char* detail = db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string message = fmt::format("store: {}: {}", what, detail);
  Errc code = Errc::io_error;
  switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE: code = Errc::already_exists; break;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_DATATYPE:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISUSE: code = Errc::invalid_argument; break;
    case SQLITE_CONSTRAINT_FOREIGNKEY: code = Errc::conflict; break;
    default:
      switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED: code = Errc::unavailable; break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: code = Errc::corrupt; break;
        case SQLITE_PERM:
        case SQLITE_AUTH:
        case SQLITE_READONLY: code = Errc::permission_denied; break;
        case SQLITE_CONSTRAINT: code = Errc::conflict; break;
        default: break;
      }
  }
  return Error{make_error_code(code), message};
}

Result<Statement> Statement::prepare(sqlite3* db, std::string_view sql, Lifetime lifetime) {
  if (sql.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return fail(Errc::invalid_argument, "store: SQL text too long");
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  const unsigned int flags = lifetime == Lifetime::persistent ? SQLITE_PREPARE_PERSISTENT : 0U;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), flags, &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return tl::unexpected(sqlite_error(db, rc, "prepare statement"));
  }
  Statement out(db, stmt);
  const std::size_t used = static_cast<std::size_t>(tail - sql.data());
  if (stmt == nullptr || !only_whitespace(sql.substr(used))) {
    return fail(Errc::invalid_argument, "store: prepare statement: expected exactly one SQL statement");
  }
  return out;
}

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_error_(std::exchange(other.bind_error_, SQLITE_OK)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_error_ = std::exchange(other.bind_error_, SQLITE_OK);
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

void Statement::note_bind(int rc) {
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

Statement& Statement::bind_int(int index, std::int64_t value) {
  note_bind(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
  const char* data = value.empty() ? kEmpty : value.data();
  note_bind(sqlite3_bind_text64(stmt_, index, data, value.size(), SQLITE_STATIC, SQLITE_UTF8));
  return *this;
}

Statement& Statement::bind_blob(int index, ByteView value) {
  const void* data = value.empty() ? static_cast<const void*>(kEmpty) : static_cast<const void*>(value.data());
  note_bind(sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_STATIC));
  return *this;
}

Statement& Statement::bind_null(int index) {
  note_bind(sqlite3_bind_null(stmt_, index));
  return *this;
}

Statement& Statement::bind_optional_int(int index, const std::optional<std::int64_t>& value) {
  return value ? bind_int(index, *value) : bind_null(index);
}

Statement& Statement::bind_optional_text(int index, const std::optional<std::string>& value) {
  return value ? bind_text(index, *value) : bind_null(index);
}

Result<bool> Statement::step() {
  if (bind_error_ != SQLITE_OK) return tl::unexpected(sqlite_error(nullptr, bind_error_, "bind parameter"));
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return tl::unexpected(sqlite_error(db_, rc, "execute statement"));
}

Status Statement::run() {
  for (;;) {
    auto row = step();
    if (!row) return tl::unexpected(std::move(row.error()));
    if (!*row) return ok();
  }
}

bool Statement::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

std::int64_t Statement::column_int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::column_text(int column) const {
  // column_text first, then column_bytes: the documented order for an exact byte count.
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (text == nullptr || size <= 0) return {};
  return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(size)};
}

Bytes Statement::column_blob(int column) const {
  const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, column));
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return Bytes(data, data + size);
}

std::optional<std::int64_t> Statement::column_optional_int(int column) const {
  if (is_null(column)) return std::nullopt;
  return column_int(column);
}

std::optional<std::string> Statement::column_optional_text(int column) const {
  if (is_null(column)) return std::nullopt;
  return column_text(column);
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = SQLITE_OK;
}

Status execute_script(sqlite3* db, std::string_view sql, std::string_view what) {
  while (!only_whitespace(sql)) {
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), 0, &raw, &tail);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(raw);
      return tl::unexpected(sqlite_error(db, rc, what));
    }
    sql.remove_prefix(static_cast<std::size_t>(tail - sql.data()));
    if (raw == nullptr) continue;  // a comment
    int step_rc = SQLITE_ROW;
    while (step_rc == SQLITE_ROW) step_rc = sqlite3_step(raw);
    sqlite3_finalize(raw);
    if (step_rc != SQLITE_DONE) return tl::unexpected(sqlite_error(db, step_rc, what));
  }
  return ok();
}

}  // namespace torii::store::sqlite

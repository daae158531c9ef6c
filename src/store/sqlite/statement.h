// A prepared SQLite statement (RAII) and the mapping of SQLite result codes to Errc.
//
// Every value reaches SQLite through a bound parameter; SQL text is always a constant.
// Binding errors are remembered and reported by the next step(), so call sites can bind a
// row without checking each call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <sqlite3.h>

#include "base/bytes.h"
#include "base/error.h"

namespace torii::store::sqlite {

// An Error for SQLite result code rc, described with db's message. `what` says what torii
// was doing ("insert data key"). Constraint violations become already_exists (primary key,
// unique) or invalid_argument (check, not null); busy/locked become unavailable.
[[nodiscard]] Error sqlite_error(sqlite3* db, int rc, std::string_view what);

class Statement {
 public:
  // How long a prepared statement is meant to live: `persistent` tells SQLite it will be
  // reset and reused many times (SQLITE_PREPARE_PERSISTENT), as by a statement cache.
  enum class Lifetime { transient, persistent };

  // Prepares exactly one statement; trailing SQL other than whitespace is invalid_argument.
  [[nodiscard]] static Result<Statement> prepare(sqlite3* db, std::string_view sql,
                                                 Lifetime lifetime = Lifetime::transient);

  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameter indexes start at 1, as in SQLite. Text and blobs are bound without copying:
  // the data must stay alive until the statement is reset or destroyed.
  Statement& bind_int(int index, std::int64_t value);
  Statement& bind_text(int index, std::string_view value);
  Statement& bind_blob(int index, ByteView value);
  Statement& bind_null(int index);
  Statement& bind_optional_int(int index, const std::optional<std::int64_t>& value);
  Statement& bind_optional_text(int index, const std::optional<std::string>& value);

  // True when a row is available, false when the statement is done.
  [[nodiscard]] Result<bool> step();
  // Steps to completion, expecting no rows.
  [[nodiscard]] Status run();

  // Column indexes start at 0. Valid only after step() returned true.
  [[nodiscard]] bool is_null(int column) const;
  [[nodiscard]] std::int64_t column_int(int column) const;
  [[nodiscard]] std::string column_text(int column) const;
  [[nodiscard]] Bytes column_blob(int column) const;
  [[nodiscard]] std::optional<std::int64_t> column_optional_int(int column) const;
  [[nodiscard]] std::optional<std::string> column_optional_text(int column) const;

  // Makes the statement runnable again and drops all bindings (so no pointer to a caller's
  // buffer outlives the call that bound it).
  void reset();

  [[nodiscard]] sqlite3_stmt* handle() const { return stmt_; }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void note_bind(int rc);

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int bind_error_ = SQLITE_OK;
};

// Runs constant SQL that may hold several statements (migrations, PRAGMAs), one prepared
// statement at a time. Rows returned are ignored.
[[nodiscard]] Status execute_script(sqlite3* db, std::string_view sql, std::string_view what);

}  // namespace torii::store::sqlite

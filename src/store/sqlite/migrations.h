// Versioned schema migrations for the SQLite backend.
#pragma once

#include <span>
#include <string_view>

#include <sqlite3.h>

#include "base/error.h"

namespace torii::store::sqlite {

struct Migration {
  int version;  // 1, 2, 3, ... without gaps
  std::string_view description;
  std::string_view sql;  // constant DDL, possibly several statements
};

// Every migration this build knows, in order.
[[nodiscard]] std::span<const Migration> migrations();
// The version of the newest migration this build knows.
[[nodiscard]] int latest_schema_version();

// Brings the database up to latest_schema_version() and returns the resulting version.
// Each pending migration runs in its own IMMEDIATE transaction that re-reads the current
// version first, so two processes opening the same file concurrently apply each migration
// once. A database newer than this build is refused with conflict and left untouched.
// Must not be called inside a transaction.
[[nodiscard]] Result<int> migrate(sqlite3* db);

}  // namespace torii::store::sqlite

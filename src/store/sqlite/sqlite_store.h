// The SQLite backend of the store: one file, one connection, WAL journal (copied into the
// file by a connection and a thread of its own).
#pragma once

#include <filesystem>
#include <memory>

#include "base/error.h"
#include "store/store.h"

namespace torii::store::sqlite {

// Opens (creating with mode 0600 if missing) the database file and migrates it to the
// newest schema. Fails with permission_denied when the file, or its -wal/-shm companion,
// grants any access to group or others (JPCERT I-5), conflict when the schema is newer than
// this build, corrupt when the file is not a database, unavailable when another process
// keeps it locked past the 5 s busy timeout. The directory is the caller's business
// (ensure_private_directory).
[[nodiscard]] Result<std::unique_ptr<Store>> open_sqlite_store(const std::filesystem::path& file);

// Creates the database file with mode 0600 (whatever the umask) if it is missing, or checks
// that the existing file and its -wal/-shm companions grant no access to group or others
// (permission_denied, naming the file). For every SQLite file torii keeps; SQLite gives the
// companions the database file's mode.
[[nodiscard]] Status prepare_private_database_file(const std::filesystem::path& file);

// A private, empty in-memory database with the same schema and settings (no WAL: SQLite
// keeps in-memory journals in memory). For tests.
[[nodiscard]] Result<std::unique_ptr<Store>> open_sqlite_memory_store();

}  // namespace torii::store::sqlite

// Files that hold secrets or state: private creation, permission checks, atomic writes.
// JPCERT I-5: torii refuses to run when its data directory or a key file is readable by
// anyone but its owner.
#pragma once

#include <sys/types.h>
#include <filesystem>
#include <string>

#include "base/bytes.h"
#include "base/error.h"

namespace torii {

// Reads a whole file (refuses files larger than max_bytes).
[[nodiscard]] Result<Bytes> read_file(const std::filesystem::path& path, std::size_t max_bytes = 64u << 20);

// Writes data to path atomically (temporary file, fsync, rename, fsync of the directory),
// created with the given mode. An existing file is replaced.
[[nodiscard]] Status write_file_atomic(const std::filesystem::path& path, ByteView data, mode_t mode = 0600);

// Fails with permission_denied when the file or directory grants any access to group or
// others, naming the path and its mode.
[[nodiscard]] Status check_owner_only(const std::filesystem::path& path);

// Creates the directory with mode 0700 if it is missing (parents as needed, 0755 for
// those), then checks it with check_owner_only.
[[nodiscard]] Status ensure_private_directory(const std::filesystem::path& path);

// "0640" style rendering of a mode, for messages.
[[nodiscard]] std::string format_mode(mode_t mode);

}  // namespace torii

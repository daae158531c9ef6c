// Where the operator's passphrase comes from when keys.kek_source = "passphrase".
#pragma once

#include <filesystem>
#include <string>

#include "base/error.h"

namespace torii::server {

// From a file that only its owner may read (trailing newline removed), or, when file is
// empty, from the controlling terminal with echo off. Fails when neither is possible.
[[nodiscard]] Result<std::string> read_passphrase(const std::filesystem::path& file);

}  // namespace torii::server

// Running as an unprivileged account (JPCERT I-5).
#pragma once

#include <sys/types.h>
#include <filesystem>
#include <string>

#include "base/error.h"

namespace torii::server {

struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

[[nodiscard]] Result<Account> lookup_account(const std::string& name);

// Gives up root for good: no supplementary groups, gid then uid, then no_new_privs. Fails
// unless the process can no longer become root afterwards.
[[nodiscard]] Status drop_privileges(const Account& account);

// Started as root: creates the data directory (0700) owned by the account if it is missing.
// An existing directory is left alone; the checks after the drop judge it.
[[nodiscard]] Status prepare_directory_for(const std::filesystem::path& dir, const Account& account);

}  // namespace torii::server

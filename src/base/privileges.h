// Running as an unprivileged account (JPCERT I-5): `torii server` (server.user) and the
// device agent (agent.user) both start as root, give root up for good, and only then open
// their keys, state and network.
#pragma once

#include <sys/types.h>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/error.h"

namespace torii {

struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// A system user name: [a-z_][a-z0-9_-]{0,31}.
[[nodiscard]] bool valid_account_name(std::string_view name);

// `setting` names where the account came from ("server.user"), for the operator. A missing
// account or root is permission_denied (refused for security); the message says how to
// create the account.
[[nodiscard]] Result<Account> lookup_account(const std::string& name, std::string_view setting);

// Gives up root for good: no supplementary groups, gid then uid, then no_new_privs. Fails
// unless the process can no longer become root afterwards.
[[nodiscard]] Status drop_privileges(const Account& account);

// Started as root: creates `dir` (0700) owned by the account if it is missing, its missing
// parents 0755 and owned by root. An existing directory is left alone; the checks after the
// drop judge it.
[[nodiscard]] Status prepare_directory_for(const std::filesystem::path& dir, const Account& account);

}  // namespace torii

#include "base/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace torii {

bool valid_account_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  const auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  const char first = name.front();
  return ((first >= 'a' && first <= 'z') || first == '_') &&
         std::all_of(name.begin(), name.end(), [&](char c) { return lower_or_digit(c) || c == '_' || c == '-'; });
}

Result<Account> lookup_account(const std::string& name, std::string_view setting) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  const int rc = ::getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found);
  if (rc != 0 || found == nullptr) {
    // Refused for security (exit 3): torii never keeps running as root.
    return fail(Errc::permission_denied,
                fmt::format("the account '{}' ({}) does not exist; create it with "
                            "`useradd --system --no-create-home --shell /usr/sbin/nologin {}` or "
                            "name another in {}",
                            name, setting, name, setting));
  }
  if (pw.pw_uid == 0) return fail(Errc::permission_denied, fmt::format("{} '{}' is root", setting, name));
  return Account{name, pw.pw_uid, pw.pw_gid};
}

Status drop_privileges(const Account& account) {
  const auto failed = [&](std::string_view step) {
    return fail(Errc::permission_denied,
                fmt::format("cannot switch to the account '{}': {}: {}", account.name, step, errno_text(errno)));
  };
  if (::setgroups(0, nullptr) != 0) return failed("setgroups");
  if (::setgid(account.gid) != 0) return failed("setgid");
  if (::setuid(account.uid) != 0) return failed("setuid");
  if (::setuid(0) == 0 || ::geteuid() == 0 || ::getegid() == 0) {
    return fail(Errc::permission_denied, "root privileges could be regained after the switch; refusing to run");
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return failed("PR_SET_NO_NEW_PRIVS");
  return ok();
}

Status prepare_directory_for(const std::filesystem::path& dir, const Account& account) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) return ok();
  // Parents must stay reachable by the account after the switch (the server's umask is 077).
  const mode_t saved = ::umask(022);
  std::filesystem::create_directories(dir.parent_path(), ec);
  ::umask(saved);
  if (ec) return fail(Errc::io_error, fmt::format("cannot create {}: {}", dir.parent_path().string(), ec.message()));
  if (::mkdir(dir.c_str(), 0700) != 0) {
    return fail(Errc::io_error, fmt::format("cannot create {}: {}", dir.string(), errno_text(errno)));
  }
  if (::chown(dir.c_str(), account.uid, account.gid) != 0) {
    return fail(Errc::io_error,
                fmt::format("cannot give {} to '{}': {}", dir.string(), account.name, errno_text(errno)));
  }
  return ok();
}

}  // namespace torii

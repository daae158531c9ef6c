#include "base/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace torii {
namespace {

using ::testing::HasSubstr;

TEST(Privileges, AccountNamesAreSystemUserNames) {
  for (const char* good : {"torii", "torii-agent", "_svc", "a1_b-2"}) EXPECT_TRUE(valid_account_name(good)) << good;
  for (const char* bad : {"", "Torii", "1torii", "-x", "to rii", "tor/ii", "a234567890123456789012345678901234"}) {
    EXPECT_FALSE(valid_account_name(bad)) << bad;
  }
}

TEST(Privileges, AMissingAccountIsRefusedWithHowToCreateIt) {
  const auto r = lookup_account("torii-no-such-account", "agent.user");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::permission_denied));
  EXPECT_THAT(r.error().message, HasSubstr("the account 'torii-no-such-account' (agent.user) does not exist"));
  EXPECT_THAT(r.error().message, HasSubstr("useradd --system"));
}

TEST(Privileges, RootIsNoAccountToRunAs) {
  const auto r = lookup_account("root", "server.user");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::permission_denied));
  EXPECT_THAT(r.error().message, HasSubstr("server.user 'root' is root"));
}

// Exit codes of the child below: which check failed.
enum ChildExit : int { kDropped = 0, kDropFailed = 10, kUid, kGid, kGroups, kRegained, kNoNewPrivs };

TEST(Privileges, ADropLeavesNoGroupsAndNoWayBackToRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to test the drop";
  auto account = lookup_account("nobody", "test.user");
  ASSERT_TRUE(account) << account.error().message;
  // The drop is for good: it runs in a child so that the test process keeps root.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (!drop_privileges(*account)) ::_exit(kDropFailed);
    if (::getuid() != account->uid || ::geteuid() != account->uid) ::_exit(kUid);
    if (::getgid() != account->gid || ::getegid() != account->gid) ::_exit(kGid);
    if (::getgroups(0, nullptr) != 0) ::_exit(kGroups);
    if (::setuid(0) == 0 || ::setgid(0) == 0) ::_exit(kRegained);
    if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) ::_exit(kNoNewPrivs);
    ::_exit(kDropped);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kDropped);
}

TEST(Privileges, AMissingDirectoryIsMadePrivateToTheAccountAndAnExistingOneIsLeftAlone) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  auto account = lookup_account("nobody", "test.user");
  ASSERT_TRUE(account) << account.error().message;
  testing::TempDir dir;
  const auto state = dir / "var" / "state";
  ASSERT_TRUE(prepare_directory_for(state, *account));
  struct stat st {};
  ASSERT_EQ(::stat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  EXPECT_EQ(st.st_uid, account->uid);
  EXPECT_EQ(st.st_gid, account->gid);
  ASSERT_EQ(::stat(state.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755U);
  EXPECT_EQ(st.st_uid, 0U);

  const auto existing = dir / "existing";
  ASSERT_EQ(::mkdir(existing.c_str(), 0750), 0);
  ASSERT_TRUE(prepare_directory_for(existing, *account));
  ASSERT_EQ(::stat(existing.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0U);
  EXPECT_EQ(st.st_mode & 0777, 0750U);
}

}  // namespace
}  // namespace torii

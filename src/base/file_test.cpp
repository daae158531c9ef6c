#include "base/file.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace torii {
namespace {

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 0777;
}

TEST(File, AtomicWriteCreatesFileWithRequestedModeAndReadsBack) {
  testing::TempDir dir;
  const auto path = dir / "secret.key";
  ASSERT_TRUE(write_file_atomic(path, as_bytes("hello"), 0600));
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(to_string(*read_file(path)), "hello");
  ASSERT_TRUE(write_file_atomic(path, as_bytes("replaced"), 0600));
  EXPECT_EQ(to_string(*read_file(path)), "replaced");
}

TEST(File, ReadRefusesOversizedAndMissingFiles) {
  testing::TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir / "big", as_bytes("0123456789")));
  EXPECT_TRUE(read_file(dir / "big", 5).error().is(Errc::limit_exceeded));
  EXPECT_TRUE(read_file(dir / "missing").error().is(Errc::not_found));
}

TEST(File, OwnerOnlyCheckRefusesGroupOrWorldAccess) {
  testing::TempDir dir;
  const auto path = dir / "key";
  ASSERT_TRUE(write_file_atomic(path, as_bytes("k"), 0600));
  EXPECT_TRUE(check_owner_only(path));
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  const auto refused = check_owner_only(path);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::permission_denied));
  EXPECT_NE(refused.error().message.find("0644"), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_FALSE(check_owner_only(path));
}

TEST(File, PrivateDirectoryIsCreated0700AndLooseOneRefused) {
  testing::TempDir dir;
  const auto data = dir / "a" / "data";
  ASSERT_TRUE(ensure_private_directory(data));
  EXPECT_EQ(mode_of(data), 0700u);
  ASSERT_EQ(::chmod(data.c_str(), 0755), 0);
  EXPECT_FALSE(ensure_private_directory(data));
}

}  // namespace
}  // namespace torii

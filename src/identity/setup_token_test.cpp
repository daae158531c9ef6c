#include "identity/setup_token.h"

#include <gtest/gtest.h>

#include "base/file.h"
#include "crypto/sodium.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::identity {
namespace {

using namespace std::chrono_literals;
using store::ConsumeOutcome;

class SetupTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::sqlite::open_sqlite_store(dir_ / "torii.db");
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  testing::TempDir dir_;
  crypto::SystemRandom random_;
  testing::FakeClock clock_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(SetupTokenTest, TokenWorksExactlyOnce) {
  auto issued = issue_setup_token(*store_, random_, clock_, 60min);
  ASSERT_TRUE(issued);
  EXPECT_EQ(*consume_setup_token(*store_, clock_, issued->token), ConsumeOutcome::consumed);
  EXPECT_EQ(*consume_setup_token(*store_, clock_, issued->token), ConsumeOutcome::already_used);
}

TEST_F(SetupTokenTest, TokenExpiresAfterItsLifetime) {
  auto issued = issue_setup_token(*store_, random_, clock_, 60min);
  clock_.advance(60min);
  EXPECT_EQ(*consume_setup_token(*store_, clock_, issued->token), ConsumeOutcome::expired);
}

TEST_F(SetupTokenTest, ANewTokenRevokesTheOldOne) {
  auto first = issue_setup_token(*store_, random_, clock_, 60min);
  auto second = issue_setup_token(*store_, random_, clock_, 60min);
  EXPECT_NE(first->token, second->token);
  EXPECT_NE(*consume_setup_token(*store_, clock_, first->token), ConsumeOutcome::consumed);
  EXPECT_EQ(*consume_setup_token(*store_, clock_, second->token), ConsumeOutcome::consumed);
}

TEST_F(SetupTokenTest, OnlyTheHashIsStored) {
  auto issued = issue_setup_token(*store_, random_, clock_, 60min);
  store_.reset();  // close, so that the WAL is checkpointed into the file
  std::string everything;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    everything += to_string(*read_file(entry.path()));
  }
  EXPECT_EQ(everything.find(issued->token), std::string::npos);
}

TEST_F(SetupTokenTest, GarbageAndUnknownTokensAreUnknown) {
  ASSERT_TRUE(issue_setup_token(*store_, random_, clock_, 60min));
  EXPECT_EQ(*consume_setup_token(*store_, clock_, ""), ConsumeOutcome::unknown);
  EXPECT_EQ(*consume_setup_token(*store_, clock_, "' OR 1=1 --"), ConsumeOutcome::unknown);
  EXPECT_EQ(*consume_setup_token(*store_, clock_, crypto::random_token(random_)), ConsumeOutcome::unknown);
}

TEST_F(SetupTokenTest, LinkCarriesTheTokenInTheFragmentOnly) {
  EXPECT_EQ(setup_link("https://127.0.0.1:8443/", "abc"), "https://127.0.0.1:8443/setup#abc");
}

TEST_F(SetupTokenTest, SetupPendingUntilMarkedComplete) {
  EXPECT_TRUE(*setup_pending(*store_));
  ASSERT_TRUE(mark_setup_complete(*store_, clock_));
  EXPECT_FALSE(*setup_pending(*store_));
}

}  // namespace
}  // namespace torii::identity

#include "events/log_reader.h"

#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "events/log_format.h"
#include "events/security_log.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::events {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

class LogReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SecurityLog::Options o;
    o.directory = dir();
    o.checkpoint_every = 7;
    o.checkpoint_interval = 0ms;
    o.retention = 0ms;
    o.max_file_bytes = 4096;  // a few events per file: the reader must cross rotations
    auto log = SecurityLog::open(o, clock_, keys_.secret_key);
    ASSERT_TRUE(log) << log.error().message;
    log_ = std::move(*log);
  }

  [[nodiscard]] fs::path dir() const { return dir_.path() / "log"; }

  // Event i: alice and bob take turns; every fifth is an alert; every third fails; events
  // of organisation "acme" are marked so, and user:carol belongs to acme without a mark.
  void write(int n) {
    for (int i = 1; i <= n; ++i) {
      Json details{{"i", i}};
      if (i % 5 == 0) details["alert"] = true;
      if (i % 4 == 0) details["organisation"] = "acme";
      const std::string actor = i % 7 == 0 ? "user:carol" : (i % 2 ? "user:alice" : "user:bob");
      ASSERT_TRUE(log_->append({actor, i % 2 ? "login.failed" : "device.created", fmt::format("device:d{}", i),
                                i % 3 == 0 ? Outcome::failure : Outcome::success, "192.0.2.1:1", details}));
      clock_.advance(1s);
    }
  }

  static std::vector<int> numbers(const LogPage& page) {
    std::vector<int> out;
    for (const auto& e : page.events) out.push_back(e.details.value("i", 0));
    return out;
  }

  LogPage read(const LogQuery& q) {
    auto page = read_log(dir(), q);
    EXPECT_TRUE(page) << page.error().message;
    return page ? *page : LogPage{};
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  crypto::Ed25519KeyPair keys_ = crypto::ed25519_generate();
  std::unique_ptr<SecurityLog> log_;
};

TEST_F(LogReaderTest, PagesWalkEveryEventNewestFirstAcrossRotatedFiles) {
  write(60);
  auto files = detail::list_log_files(dir());
  ASSERT_TRUE(files);
  ASSERT_GE(files->size(), 4u) << "the log did not rotate";

  std::vector<int> seen;
  LogQuery q;
  q.limit = 7;
  for (int pages = 0; pages < 20; ++pages) {
    const LogPage page = read(q);
    const auto n = numbers(page);
    seen.insert(seen.end(), n.begin(), n.end());
    if (!page.next_before_seq) break;
    EXPECT_LE(page.events.size(), 7u);
    q.before_seq = page.next_before_seq;
  }
  std::vector<int> expected;
  for (int i = 60; i >= 1; --i) expected.push_back(i);
  EXPECT_EQ(seen, expected) << "each event once, newest first, no checkpoints";
}

TEST_F(LogReaderTest, FiltersSelectByActorActionOutcomeTextTimeAndAlert) {
  const UnixMillis start = to_unix_millis(clock_.now());
  write(30);
  LogQuery q;
  q.limit = 1000;
  q.alerts_only = true;
  EXPECT_EQ(numbers(read(q)), (std::vector<int>{30, 25, 20, 15, 10, 5}));

  q = LogQuery{};
  q.actor = "user:bob";
  q.action_prefix = "device.";
  q.outcome = "failure";
  EXPECT_EQ(numbers(read(q)), (std::vector<int>{30, 24, 18, 12, 6}));

  q = LogQuery{};
  q.action_prefix = "login.fail";
  q.text = "D2";  // case-insensitive, over actor, action and object
  EXPECT_EQ(numbers(read(q)), (std::vector<int>{29, 27, 25, 23, 21}));

  q = LogQuery{};
  q.from = start + 10'000;  // event i was written at start + (i - 1) s
  q.to = start + 13'000;
  EXPECT_EQ(numbers(read(q)), (std::vector<int>{13, 12, 11}));
}

TEST_F(LogReaderTest, AnOrganisationSeesOnlyItsMarkedEventsAndThoseOfItsPrincipals) {
  write(16);
  LogQuery q;
  q.scope = LogScope{"acme", {"user:carol"}};
  EXPECT_EQ(numbers(read(q)), (std::vector<int>{16, 14, 12, 8, 7, 4}));
  q.scope = LogScope{"globex", {}};
  EXPECT_TRUE(read(q).events.empty()) << "nothing of acme, nothing unmarked";
  q.scope = LogScope{std::nullopt, {"device:d3"}};
  EXPECT_EQ(numbers(read(q)), (std::vector<int>{3}));
  q.scope.reset();
  EXPECT_EQ(read(q).events.size(), 16u) << "no scope: everything (the system administrator)";
}

TEST_F(LogReaderTest, AScanBudgetStopsEarlyWithACursorToGoOn) {
  write(40);
  LogQuery q;
  q.actor = "user:nobody";
  q.max_scan_lines = 10;
  const LogPage page = read(q);
  EXPECT_TRUE(page.events.empty());
  EXPECT_TRUE(page.scan_limit_reached);
  ASSERT_TRUE(page.next_before_seq);
  EXPECT_LT(*page.next_before_seq, log_->next_seq());

  // Going on from the cursor finds what lies further back.
  q.actor = "user:alice";
  q.limit = 1;
  q.before_seq = page.next_before_seq;
  const LogPage on = read(q);
  ASSERT_EQ(on.events.size(), 1u);
  EXPECT_LT(on.events.front().seq, *page.next_before_seq);
}

TEST_F(LogReaderTest, ATornLastLineAndGarbageArePassedOver) {
  write(3);
  ASSERT_TRUE(log_->close());
  {
    std::ofstream out(dir() / "security.log", std::ios::app);
    out << "not json\n{\"type\":\"event\",\"seq\":99,\"act";  // garbage, then a line being written
  }
  EXPECT_EQ(numbers(read(LogQuery{})), (std::vector<int>{3, 2, 1}));
}

TEST_F(LogReaderTest, AMissingDirectoryIsNotFound) {
  auto page = read_log(dir_.path() / "nowhere", LogQuery{});
  ASSERT_FALSE(page);
  EXPECT_TRUE(page.error().is(Errc::not_found));
}

}  // namespace
}  // namespace torii::events

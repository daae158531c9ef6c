#include "agent/outbox.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::agent {
namespace {

using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class OutboxTest : public ::testing::Test {
 protected:
  [[nodiscard]] Result<Outbox> open(std::uint64_t max_messages = 100) {
    return Outbox::open(path_, max_messages, random_, clock_);
  }

  static std::string payload(std::string_view id) {
    return std::string(R"({"id":")") + std::string(id) + R"(","t":1})";
  }

  static std::vector<std::int64_t> seqs(const std::vector<OutboxEntry>& entries) {
    std::vector<std::int64_t> out;
    out.reserve(entries.size());
    for (const auto& e : entries) out.push_back(e.seq);
    return out;
  }

  testing::TempDir dir_;
  std::filesystem::path path_ = dir_ / "outbox.db";
  testing::SeededRandom random_{42};
  testing::FakeClock clock_;
};

TEST_F(OutboxTest, PushAssignsSequenceNumbersAndIdsItHandsToThePayload) {
  auto box = open();
  ASSERT_TRUE(box.has_value()) << box.error().message;
  EXPECT_THAT(box->id_prefix(), MatchesRegex("[0-9a-f]{8}"));
  std::vector<OutboxEntry> pushed;
  for (auto kind : {TopicKind::telemetry, TopicKind::events, TopicKind::state, TopicKind::results}) {
    auto e = box->push(kind, payload);
    ASSERT_TRUE(e.has_value()) << e.error().message;
    pushed.push_back(*e);
    clock_.advance(seconds(1));
  }
  EXPECT_EQ(pushed[0].seq, 1);
  EXPECT_EQ(pushed[3].seq, 4);
  EXPECT_EQ(pushed[1].id, box->id_prefix() + "-2");
  EXPECT_EQ(pushed[1].payload, R"({"id":")" + box->id_prefix() + R"(-2","t":1})");
  EXPECT_EQ(pushed[2].kind, TopicKind::state);
  EXPECT_EQ(pushed[2].created, testing::FakeClock().now() + seconds(2));
  EXPECT_EQ(box->size(), 4u);
  auto all = box->oldest(10);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(*all, pushed);
  auto two = box->oldest(2);
  ASSERT_TRUE(two.has_value());
  EXPECT_THAT(seqs(*two), ElementsAre(1, 2));
  EXPECT_EQ(to_string(TopicKind::results), "results");
}

TEST_F(OutboxTest, ReopenedFileHoldsWhatWasPushedAndNotRemovedInOrder) {
  std::vector<OutboxEntry> pushed;
  {
    auto box = open();
    ASSERT_TRUE(box.has_value()) << box.error().message;
    for (int i = 0; i < 6; ++i) pushed.push_back(*box->push(TopicKind::telemetry, payload));
    // Acknowledged out of order; an unknown seq is fine.
    ASSERT_TRUE(box->remove(4).has_value());
    ASSERT_TRUE(box->remove(1).has_value());
    ASSERT_TRUE(box->remove(99).has_value());
    ASSERT_TRUE(box->remove(4).has_value());
    EXPECT_EQ(box->size(), 4u);
  }
  auto box = open();
  ASSERT_TRUE(box.has_value()) << box.error().message;
  EXPECT_EQ(box->size(), 4u);
  auto left = box->oldest(100);
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(*left, (std::vector<OutboxEntry>{pushed[1], pushed[2], pushed[4], pushed[5]}));
  // Sequence numbers go on where they stopped, even past removed ones.
  ASSERT_TRUE(box->remove(6).has_value());
  EXPECT_EQ(box->push(TopicKind::events, payload)->seq, 7);
}

TEST_F(OutboxTest, WhatWasPushedSurvivesTheProcessBeingKilled) {
  std::string prefix;
  {
    auto box = open();
    ASSERT_TRUE(box.has_value()) << box.error().message;
    prefix = box->id_prefix();
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto box = open();
    if (!box) ::_exit(2);
    for (int i = 0; i < 3; ++i) {
      if (!box->push(TopicKind::telemetry, payload)) ::_exit(3);
    }
    if (!box->remove(2)) ::_exit(4);
    ::kill(::getpid(), SIGKILL);  // no destructor, no checkpoint, no close
    ::_exit(5);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited with " << WEXITSTATUS(status);
  auto box = open();
  ASSERT_TRUE(box.has_value()) << box.error().message;
  auto left = box->oldest(10);
  ASSERT_TRUE(left.has_value());
  EXPECT_THAT(seqs(*left), ElementsAre(1, 3));
  EXPECT_EQ((*left)[1].id, prefix + "-3");
  EXPECT_EQ(box->push(TopicKind::telemetry, payload)->seq, 4);
}

TEST_F(OutboxTest, AFullOutboxEvictsTheOldestAndCountsOnlyThen) {
  {
    auto box = open(3);
    ASSERT_TRUE(box.has_value()) << box.error().message;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(box->push(TopicKind::telemetry, payload).has_value());
    EXPECT_EQ(box->size(), 3u);
    EXPECT_EQ(box->evicted(), 0u);
    ASSERT_TRUE(box->push(TopicKind::telemetry, payload).has_value());
    ASSERT_TRUE(box->push(TopicKind::telemetry, payload).has_value());
    EXPECT_EQ(box->size(), 3u);
    EXPECT_EQ(box->evicted(), 2u);
    EXPECT_THAT(seqs(*box->oldest(10)), ElementsAre(3, 4, 5));
    // Room made by acknowledgements is not eviction.
    ASSERT_TRUE(box->remove(4).has_value());
    ASSERT_TRUE(box->push(TopicKind::telemetry, payload).has_value());
    EXPECT_EQ(box->evicted(), 2u);
    EXPECT_THAT(seqs(*box->oldest(10)), ElementsAre(3, 5, 6));
  }
  {
    auto box = open(3);
    ASSERT_TRUE(box.has_value()) << box.error().message;
    EXPECT_EQ(box->evicted(), 2u);  // stored in the file
  }
  // A smaller bound takes effect at the next push.
  auto box = open(1);
  ASSERT_TRUE(box.has_value()) << box.error().message;
  EXPECT_EQ(box->size(), 3u);
  ASSERT_TRUE(box->push(TopicKind::telemetry, payload).has_value());
  EXPECT_EQ(box->size(), 1u);
  EXPECT_EQ(box->evicted(), 5u);
  EXPECT_THAT(seqs(*box->oldest(10)), ElementsAre(7));
}

TEST_F(OutboxTest, ARecreatedOutboxNeverReusesIds) {
  std::set<std::string> ids;
  std::string first_prefix;
  {
    auto box = open();
    ASSERT_TRUE(box.has_value()) << box.error().message;
    first_prefix = box->id_prefix();
    for (int i = 0; i < 5; ++i) ids.insert(box->push(TopicKind::telemetry, payload)->id);
  }
  {
    auto again = open();  // the same file keeps its prefix
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->id_prefix(), first_prefix);
  }
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix);
  auto box = open();
  ASSERT_TRUE(box.has_value()) << box.error().message;
  EXPECT_NE(box->id_prefix(), first_prefix);
  for (int i = 0; i < 5; ++i) {
    const auto e = box->push(TopicKind::telemetry, payload);
    ASSERT_TRUE(e.has_value());
    EXPECT_TRUE(ids.insert(e->id).second) << e->id;
  }
}

TEST_F(OutboxTest, TheFileIsTheOwnersOnly) {
  const mode_t old_umask = ::umask(0);
  auto box = open();
  ::umask(old_umask);
  ASSERT_TRUE(box.has_value()) << box.error().message;
  ASSERT_TRUE(box->push(TopicKind::telemetry, payload).has_value());
  for (const char* suffix : {"", "-wal"}) {
    struct stat st {};
    ASSERT_EQ(::stat((path_.string() + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << suffix;
  }
}

TEST_F(OutboxTest, AFileOthersCanReadIsRefused) {
  { ASSERT_TRUE(open().has_value()); }
  std::filesystem::permissions(path_, std::filesystem::perms::group_read | std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto box = open();
  ASSERT_FALSE(box.has_value());
  EXPECT_TRUE(box.error().is(Errc::permission_denied));
  EXPECT_THAT(box.error().message, HasSubstr(path_.string()));

  // The same for the journal SQLite keeps beside it.
  std::filesystem::permissions(path_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ASSERT_TRUE(open().has_value());
  const std::filesystem::path wal = path_.string() + "-wal";
  std::ofstream(wal).close();
  std::filesystem::permissions(wal, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                        std::filesystem::perms::others_read);
  auto with_wal = open();
  ASSERT_FALSE(with_wal.has_value());
  EXPECT_TRUE(with_wal.error().is(Errc::permission_denied));
  EXPECT_THAT(with_wal.error().message, HasSubstr(wal.string()));
}

TEST_F(OutboxTest, ACorruptFileIsAClearError) {
  {
    std::ofstream out(path_, std::ios::binary);
    for (int i = 0; i < 1000; ++i) out << "not an outbox, not a database ";
  }
  std::filesystem::permissions(path_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto box = open();
  ASSERT_FALSE(box.has_value());
  EXPECT_TRUE(box.error().is(Errc::corrupt)) << box.error().message;
  EXPECT_THAT(box.error().message, HasSubstr("outbox " + path_.string()));
  EXPECT_THAT(box.error().message, HasSubstr("not a database"));
}

TEST_F(OutboxTest, ADamagedOutboxIsAClearError) {
  {
    auto box = open();
    ASSERT_TRUE(box.has_value());
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(box->push(TopicKind::telemetry, payload).has_value());
  }
  // Overwrite everything after the first page (the schema's and the rows' pages).
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(100);
    const std::string junk(8192, '\x5a');
    file.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto box = open();
  if (box.has_value()) {
    auto entries = box->oldest(100);
    ASSERT_FALSE(entries.has_value());
    EXPECT_TRUE(entries.error().is(Errc::corrupt)) << entries.error().message;
  } else {
    EXPECT_TRUE(box.error().is(Errc::corrupt)) << box.error().message;
    EXPECT_THAT(box.error().message, HasSubstr(path_.string()));
  }
}

TEST_F(OutboxTest, ADatabaseThatIsNotAnOutboxIsLeftAlone) {
  {
    std::ofstream(path_).close();
    std::filesystem::permissions(path_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE people (name TEXT)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto box = open();
  ASSERT_FALSE(box.has_value());
  EXPECT_TRUE(box.error().is(Errc::corrupt));
  EXPECT_THAT(box.error().message, HasSubstr("not an outbox"));
}

TEST_F(OutboxTest, ANonceIsNewOnceUntilItsCommandExpires) {
  auto box = open();
  ASSERT_TRUE(box.has_value()) << box.error().message;
  const auto now = clock_.now();
  EXPECT_EQ(box->record_nonce("n1", now + seconds(60), now, 10).value(), NonceCheck::fresh);
  EXPECT_EQ(box->record_nonce("n1", now + seconds(60), now + seconds(59), 10).value(), NonceCheck::replayed);
  EXPECT_EQ(box->record_nonce("n2", now + seconds(120), now, 10).value(), NonceCheck::fresh);
  EXPECT_EQ(box->nonces().value(), 2U);
  // At n1's expiry it is forgotten (its command is refused as expired by then); n2 stays.
  EXPECT_EQ(box->record_nonce("n3", now + seconds(180), now + seconds(60), 10).value(), NonceCheck::fresh);
  EXPECT_EQ(box->nonces().value(), 2U);
  EXPECT_EQ(box->record_nonce("n2", now + seconds(120), now + seconds(60), 10).value(), NonceCheck::replayed);
  EXPECT_EQ(box->size(), 0U);  // nonces are not messages
}

TEST_F(OutboxTest, AnOutboxOfTheFirstVersionGainsTheNonceTableAndKeepsItsMessages) {
  {
    std::ofstream(path_).close();
    std::filesystem::permissions(path_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const char* v1 = R"(
      CREATE TABLE outbox_meta (id INTEGER PRIMARY KEY CHECK (id = 1), id_prefix TEXT NOT NULL,
                                next_seq INTEGER NOT NULL, evicted INTEGER NOT NULL);
      CREATE TABLE outbox (seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE,
                           kind TEXT NOT NULL CHECK (kind IN ('telemetry', 'events', 'state', 'results')),
                           payload TEXT NOT NULL, created_ms INTEGER NOT NULL);
      INSERT INTO outbox_meta VALUES (1, '0a0b0c0d', 2, 0);
      INSERT INTO outbox VALUES (1, '0a0b0c0d-1', 'telemetry', '{"id":"0a0b0c0d-1","t":1}', 1790000000000);
      PRAGMA user_version = 1;)";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  {
    auto box = open();
    ASSERT_TRUE(box.has_value()) << box.error().message;
    EXPECT_EQ(box->size(), 1U);
    EXPECT_EQ(box->id_prefix(), "0a0b0c0d");
    EXPECT_EQ(box->record_nonce("n1", clock_.now() + seconds(60), clock_.now(), 10).value(), NonceCheck::fresh);
  }
  auto box = open();
  ASSERT_TRUE(box.has_value()) << box.error().message;
  EXPECT_EQ(box->record_nonce("n1", clock_.now() + seconds(60), clock_.now(), 10).value(), NonceCheck::replayed);
  auto entries = box->oldest(10);
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->size(), 1U);
  EXPECT_EQ((*entries)[0].id, "0a0b0c0d-1");
}

TEST_F(OutboxTest, PathsThatCannotBeAnOutboxAreErrors) {
  std::filesystem::create_directory(path_);
  auto directory = open();
  ASSERT_FALSE(directory.has_value());
  EXPECT_THAT(directory.error().message, HasSubstr(path_.string()));

  auto missing_dir = Outbox::open(dir_ / "no/such/dir/outbox.db", 10, random_, clock_);
  ASSERT_FALSE(missing_dir.has_value());
  EXPECT_THAT(missing_dir.error().message, HasSubstr("no/such/dir"));

  auto zero = Outbox::open(dir_ / "other.db", 0, random_, clock_);
  ASSERT_FALSE(zero.has_value());
  EXPECT_TRUE(zero.error().is(Errc::invalid_argument));
}

}  // namespace
}  // namespace torii::agent

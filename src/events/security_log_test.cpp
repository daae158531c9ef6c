#include "events/security_log.h"

#include <sys/stat.h>

#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "base/file.h"
#include "crypto/sodium.h"
#include "events/log_format.h"
#include "events/log_verify.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::events {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  ASSERT_TRUE(write_file_atomic(path, as_bytes(text), 0600));
}

// What an attacker who knows the format does after editing a record: recompute its hash.
std::string rehashed(Json record) {
  record.erase("hash");
  record["hash"] = detail::record_hash(record);
  return detail::canonical_dump(record);
}

mode_t mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

class SecurityLogTest : public ::testing::Test {
 protected:
  [[nodiscard]] SecurityLog::Options options() const {
    SecurityLog::Options o;
    o.directory = dir_ / "log";
    o.checkpoint_every = 100;
    o.checkpoint_interval = 0ms;
    o.retention = 0ms;
    return o;
  }

  std::unique_ptr<SecurityLog> open_log(const SecurityLog::Options& o) {
    auto log = SecurityLog::open(o, clock_, keys_.secret_key);
    EXPECT_TRUE(log) << log.error().message;
    return log ? std::move(*log) : nullptr;
  }

  static SecurityEvent event(int i) {
    return SecurityEvent{"user:alice",        "login.failed",
                         "device:abc",        i % 2 ? Outcome::failure : Outcome::success,
                         "203.0.113.5:51234", Json{{"attempt", i}}};
  }

  // Writes n events and closes the log (which adds a final checkpoint).
  void write_log(const SecurityLog::Options& o, int n) {
    auto log = open_log(o);
    ASSERT_TRUE(log);
    for (int i = 0; i < n; ++i) ASSERT_TRUE(log->append(event(i)));
    ASSERT_TRUE(log->close());
  }

  VerifyReport verify(ByteView public_key) {
    auto report = verify_log(dir_ / "log", public_key);
    EXPECT_TRUE(report) << report.error().message;
    return report ? *report : VerifyReport{};
  }
  VerifyReport verify() { return verify(keys_.public_key); }

  [[nodiscard]] fs::path active() const { return dir_ / "log" / "security.log"; }

  static void expect_first_problem(const VerifyReport& report, std::string_view file, std::size_t line,
                                   std::string_view what) {
    EXPECT_FALSE(report.ok);
    ASSERT_FALSE(report.problems.empty());
    EXPECT_EQ(report.problems.front().file, file);
    EXPECT_EQ(report.problems.front().line, line) << report.problems.front().what;
    EXPECT_NE(report.problems.front().what.find(what), std::string::npos) << report.problems.front().what;
  }

  torii::testing::TempDir dir_;
  torii::testing::FakeClock clock_;
  crypto::Ed25519KeyPair keys_ = crypto::ed25519_generate();
};

TEST_F(SecurityLogTest, WritesEventsAndCheckpointsThatVerify) {
  auto o = options();
  o.checkpoint_every = 5;
  write_log(o, 12);
  // e1..e5 cp e6..e10 cp e11 e12 cp(close)
  const auto lines = read_lines(active());
  ASSERT_EQ(lines.size(), 15u);
  EXPECT_EQ(Json::parse(lines[5])["type"], "checkpoint");
  EXPECT_EQ(Json::parse(lines[11])["type"], "checkpoint");
  EXPECT_EQ(Json::parse(lines[14])["type"], "checkpoint");

  const auto report = verify();
  EXPECT_TRUE(report.ok);
  EXPECT_EQ(report.files, 1u);
  EXPECT_EQ(report.lines, 15u);
  EXPECT_EQ(report.checkpoints, 3u);
  EXPECT_EQ(report.unsigned_tail_lines, 0u);
  EXPECT_EQ(report.first_seq, 1u);
  EXPECT_EQ(report.last_seq, 15u);
  EXPECT_FALSE(report.starts_after_retention);
  EXPECT_EQ(report.last_checkpoint_ts, format_utc_millis(clock_.now()));
}

TEST_F(SecurityLogTest, LineFormatMatchesTheContract) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append(event(1)));
  ASSERT_TRUE(log->checkpoint());
  const auto lines = read_lines(active());
  ASSERT_EQ(lines.size(), 2u);

  const Json first = Json::parse(lines[0]);
  EXPECT_EQ(first["seq"], 1);
  EXPECT_EQ(first["type"], "event");
  EXPECT_EQ(first["actor"], "user:alice");
  EXPECT_EQ(first["action"], "login.failed");
  EXPECT_EQ(first["object"], "device:abc");
  EXPECT_EQ(first["outcome"], "failure");
  EXPECT_EQ(first["source"], "203.0.113.5:51234");
  EXPECT_EQ(first["details"], (Json{{"attempt", 1}}));
  EXPECT_EQ(first["prev"], std::string(64, '0'));
  // UTC with milliseconds and a Z suffix (JPCERT III-1), from the injected clock.
  const std::string ts = first["ts"];
  EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"))) << ts;
  EXPECT_EQ(ts, format_utc_millis(clock_.now()));
  // hash = SHA-256 over nlohmann's dump() (sorted keys) of the record without "hash".
  Json body = first;
  body.erase("hash");
  EXPECT_EQ(first["hash"], hex_encode(crypto::sha256(body.dump())));
  EXPECT_EQ(lines[0], first.dump());

  const Json cp = Json::parse(lines[1]);
  EXPECT_EQ(cp["type"], "checkpoint");
  EXPECT_EQ(cp["seq"], 2);
  EXPECT_EQ(cp["head"], first["hash"]);
  EXPECT_EQ(cp["prev"], first["hash"]);
  std::string message("torii-log-checkpoint");
  message += std::string(1, '\0') + "2" + std::string(1, '\0') + cp["head"].get<std::string>();
  const auto sig = hex_decode(cp["sig"].get<std::string>());
  ASSERT_TRUE(sig);
  EXPECT_TRUE(crypto::ed25519_verify(keys_.public_key, as_bytes(message), *sig));
  EXPECT_EQ(log->public_key(), keys_.public_key);
}

TEST_F(SecurityLogTest, FilesAreOwnerOnly) {
  write_log(options(), 1);
  EXPECT_EQ(mode_of(active()), 0600u);
  EXPECT_EQ(mode_of(dir_ / "log"), 0700u);
}

TEST_F(SecurityLogTest, OnlyOneWriterAtATime) {
  auto first = open_log(options());
  ASSERT_NE(first, nullptr);
  auto second = SecurityLog::open(options(), clock_, keys_.secret_key);
  ASSERT_FALSE(second);
  EXPECT_TRUE(second.error().is(Errc::unavailable));
  first.reset();
  EXPECT_TRUE(SecurityLog::open(options(), clock_, keys_.secret_key));
}

TEST_F(SecurityLogTest, EditedFieldIsReportedAtThatLine) {
  write_log(options(), 12);
  auto lines = read_lines(active());
  ASSERT_NE(lines[4].find("\"outcome\":\"success\""), std::string::npos);
  lines[4].replace(lines[4].find("\"outcome\":\"success\""), 19, "\"outcome\":\"failure\"");
  write_lines(active(), lines);
  const auto report = verify();
  expect_first_problem(report, "security.log", 5, "hash does not match");
  EXPECT_EQ(report.problems.size(), 1u);
}

TEST_F(SecurityLogTest, EditWithRecomputedHashIsReportedAtTheNextLine) {
  write_log(options(), 12);
  auto lines = read_lines(active());
  Json record = Json::parse(lines[4]);
  record["outcome"] = "denied";
  lines[4] = rehashed(record);
  write_lines(active(), lines);
  expect_first_problem(verify(), "security.log", 6, "prev does not match");
}

TEST_F(SecurityLogTest, DeletedLineIsReportedWhereItWas) {
  write_log(options(), 12);
  auto lines = read_lines(active());
  lines.erase(lines.begin() + 4);
  write_lines(active(), lines);
  const auto report = verify();
  expect_first_problem(report, "security.log", 5, "prev does not match");
  EXPECT_EQ(report.problems.size(), 1u);
}

TEST_F(SecurityLogTest, SwappedLinesAreReportedAtTheFirst) {
  write_log(options(), 12);
  auto lines = read_lines(active());
  std::swap(lines[3], lines[4]);
  write_lines(active(), lines);
  expect_first_problem(verify(), "security.log", 4, "prev does not match");
}

TEST_F(SecurityLogTest, InsertedLineIsReported) {
  write_log(options(), 12);
  auto lines = read_lines(active());
  lines.insert(lines.begin() + 6, lines[2]);  // a replayed copy of line 3 as line 7
  write_lines(active(), lines);
  expect_first_problem(verify(), "security.log", 7, "prev does not match");

  // A forged line whose prev and seq fit: the line after it no longer links.
  lines = read_lines(active());
  lines.erase(lines.begin() + 6);
  Json forged = Json::parse(lines[5]);
  forged["seq"] = 7;
  forged["prev"] = forged["hash"];
  forged["outcome"] = "success";
  lines.insert(lines.begin() + 6, rehashed(forged));
  write_lines(active(), lines);
  expect_first_problem(verify(), "security.log", 8, "prev does not match");
}

TEST_F(SecurityLogTest, NonCanonicalAndDuplicateKeyLinesAreReported) {
  write_log(options(), 6);
  auto lines = read_lines(active());
  const std::string original = lines[2];
  lines[2].insert(1, " ");
  write_lines(active(), lines);
  expect_first_problem(verify(), "security.log", 3, "canonical");

  // Readers disagree on which duplicate wins; the verifier refuses the line outright.
  lines[2] = original;
  const auto pos = lines[1].find("\"outcome\":\"failure\"");
  ASSERT_NE(pos, std::string::npos);
  lines[1].insert(pos, "\"outcome\":\"success\",");
  write_lines(active(), lines);
  expect_first_problem(verify(), "security.log", 2, "canonical");
}

TEST_F(SecurityLogTest, ForgedCheckpointSignatureIsReportedAtThatLine) {
  auto o = options();
  o.checkpoint_every = 5;
  write_log(o, 12);
  auto lines = read_lines(active());
  Json cp = Json::parse(lines[5]);
  ASSERT_EQ(cp["type"], "checkpoint");
  const auto other = crypto::ed25519_generate();
  const auto sig = crypto::ed25519_sign(
      other.secret_key,
      as_bytes(detail::checkpoint_message(cp["seq"].get<std::uint64_t>(), cp["head"].get<std::string>())));
  ASSERT_TRUE(sig);
  cp["sig"] = hex_encode(*sig);
  lines[5] = rehashed(cp);
  write_lines(active(), lines);
  const auto report = verify();
  expect_first_problem(report, "security.log", 6, "signature");
  EXPECT_EQ(report.checkpoints, 2u);
}

TEST_F(SecurityLogTest, AnotherPublicKeyDoesNotVerify) {
  auto o = options();
  o.checkpoint_every = 5;
  write_log(o, 7);
  const auto report = verify(crypto::ed25519_generate().public_key);
  expect_first_problem(report, "security.log", 6, "signature");
  EXPECT_EQ(report.checkpoints, 0u);
  EXPECT_FALSE(verify_log(dir_ / "log", Bytes(31)));
}

TEST_F(SecurityLogTest, ReopenContinuesTheChain) {
  write_log(options(), 3);  // seq 1..3, checkpoint 4
  {
    auto log = open_log(options());
    ASSERT_TRUE(log);
    EXPECT_EQ(log->next_seq(), 5u);
    ASSERT_TRUE(log->append(event(4)));
    // Dropped without close(): the destructor still seals the log.
  }
  write_log(options(), 2);
  const auto lines = read_lines(active());
  ASSERT_EQ(lines.size(), 9u);  // e1-e3 cp | e5 cp | e7 e8 cp
  for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(Json::parse(lines[i])["seq"], i + 1);
  const auto report = verify();
  EXPECT_TRUE(report.ok);
  EXPECT_EQ(report.checkpoints, 3u);
  EXPECT_EQ(report.last_seq, 9u);
}

TEST_F(SecurityLogTest, ChainContinuesFromARotatedFileWhenTheActiveFileIsMissing) {
  write_log(options(), 3);
  fs::rename(active(), dir_ / "log" / detail::rotated_file_name(clock_.now(), 0));
  write_log(options(), 1);
  const auto report = verify();
  EXPECT_TRUE(report.ok);
  EXPECT_EQ(report.files, 2u);
  EXPECT_EQ(report.last_seq, 6u);
}

TEST_F(SecurityLogTest, RotationBySizeKeepsOneChainAcrossFiles) {
  auto o = options();
  o.max_file_bytes = 4096;
  auto log = open_log(o);
  ASSERT_TRUE(log);
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(log->append(event(i)));
    if (i < 30) clock_.advance(1s);  // the rest rotate within one millisecond: numbered names
  }
  ASSERT_TRUE(log->close());

  auto files = detail::list_log_files(dir_ / "log");
  ASSERT_TRUE(files);
  ASSERT_GE(files->size(), 4u);
  EXPECT_TRUE(files->back().active);
  bool numbered = false;
  std::uint64_t expected_seq = 1;
  for (const auto& file : *files) {
    if (!file.active) {
      EXPECT_LE(fs::file_size(file.path), 4096u) << file.path;
      EXPECT_EQ(mode_of(file.path), 0600u);
      EXPECT_TRUE(
          std::regex_match(file.path.filename().string(), std::regex(R"(security-\d{8}T\d{9}Z(\.[1-9]\d*)?\.log)")))
          << file.path;
      numbered = numbered || file.collision > 0;
    }
    const auto lines = read_lines(file.path);
    ASSERT_FALSE(lines.empty());
    if (!file.active) {
      EXPECT_EQ(Json::parse(lines.back())["type"], "checkpoint") << file.path;
    }
    for (const auto& line : lines) EXPECT_EQ(Json::parse(line)["seq"], expected_seq++);
  }
  EXPECT_TRUE(numbered);

  const auto report = verify();
  EXPECT_TRUE(report.ok) << (report.problems.empty() ? "" : report.problems.front().what);
  EXPECT_EQ(report.files, files->size());
  EXPECT_EQ(report.last_seq, expected_seq - 1);
  EXPECT_EQ(report.unsigned_tail_lines, 0u);
  EXPECT_FALSE(report.starts_after_retention);

  // Removing a whole rotated file from the middle breaks the chain at the next file.
  fs::remove((*files)[1].path);
  expect_first_problem(verify(), (*files)[2].path.filename().string(), 1, "prev does not match");
}

TEST_F(SecurityLogTest, RetentionDeletesOldRotatedFiles) {
  auto o = options();
  o.max_file_bytes = 4096;
  o.retention = std::chrono::days(30);
  write_log(o, 40);  // rotated at t0
  const auto old_files = detail::list_log_files(dir_ / "log")->size() - 1;
  ASSERT_GE(old_files, 2u);
  clock_.advance(std::chrono::days(10));
  write_log(o, 40);  // rotated at t0 + 10 days
  const auto all_files = detail::list_log_files(dir_ / "log")->size();

  clock_.advance(std::chrono::days(25));  // t0 + 35 days: only the first batch is past retention
  {
    auto log = open_log(o);  // retention applies at open
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->close());
  }
  EXPECT_EQ(detail::list_log_files(dir_ / "log")->size(), all_files - old_files);
  auto report = verify();
  EXPECT_TRUE(report.ok) << (report.problems.empty() ? "" : report.problems.front().what);
  EXPECT_TRUE(report.starts_after_retention);
  EXPECT_GT(*report.first_seq, 1u);
  std::size_t deletions = 0;
  for (const auto& line : read_lines(active())) {
    if (Json::parse(line).value("action", "") == "log.retention.deleted") ++deletions;
  }
  EXPECT_EQ(deletions, old_files);

  // And at rotation: the second batch goes once it is past retention.
  clock_.advance(std::chrono::days(21));
  write_log(o, 20);
  const auto remaining = detail::list_log_files(dir_ / "log");
  ASSERT_TRUE(remaining);
  for (const auto& file : *remaining) {
    if (!file.active) {
      EXPECT_GE(file.rotated_at, clock_.now() - std::chrono::days(30));
    }
  }
  report = verify();
  EXPECT_TRUE(report.ok);
  EXPECT_TRUE(report.starts_after_retention);
}

TEST_F(SecurityLogTest, CorruptLastLineMakesOpenFail) {
  write_log(options(), 3);
  const auto good = read_lines(active());

  auto lines = good;
  lines.push_back("{not json");
  write_lines(active(), lines);
  auto log = SecurityLog::open(options(), clock_, keys_.secret_key);
  ASSERT_FALSE(log);
  EXPECT_TRUE(log.error().is(Errc::corrupt));
  EXPECT_NE(log.error().message.find("security.log line 5"), std::string::npos) << log.error().message;

  lines = good;
  Json last = Json::parse(lines.back());
  last["seq"] = 99;  // hash left alone
  lines.back() = last.dump();
  write_lines(active(), lines);
  log = SecurityLog::open(options(), clock_, keys_.secret_key);
  ASSERT_FALSE(log);
  EXPECT_TRUE(log.error().is(Errc::corrupt));
  EXPECT_NE(log.error().message.find("line 4"), std::string::npos) << log.error().message;

  // A torn last line (no newline).
  std::string text;
  for (const auto& line : good) text += line + "\n";
  text += good.front().substr(0, 40);
  ASSERT_TRUE(write_file_atomic(active(), as_bytes(text), 0600));
  log = SecurityLog::open(options(), clock_, keys_.secret_key);
  ASSERT_FALSE(log);
  EXPECT_TRUE(log.error().is(Errc::corrupt));
}

TEST_F(SecurityLogTest, SecretGuardRefusesSecretLookingDetails) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  const std::uint64_t before = log->next_seq();
  for (const Json& details : {Json{{"password", "x"}}, Json{{"API_Token", "x"}}, Json{{"Pass-Phrase", "x"}},
                              Json{{"auth", {{"private-key", "x"}}}}, Json{{"items", {{{"key_pem", "x"}}}}},
                              Json{{"cert", "-----BEGIN PRIVATE KEY-----\nMC4C..."}}}) {
    SecurityEvent e = event(1);
    e.details = details;
    const auto st = log->append(e);
    ASSERT_FALSE(st) << details.dump();
    EXPECT_TRUE(st.error().is(Errc::invalid_argument));
    EXPECT_EQ(st.error().message.find("\"x\""), std::string::npos);  // the value is never echoed
  }
  EXPECT_EQ(log->next_seq(), before);
  EXPECT_TRUE(check_no_secrets(Json{{"attempt", 3}, {"reason", "bad credentials"}, {"key_id", "k1"}}));
}

TEST_F(SecurityLogTest, MalformedEventsAreRefused) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  SecurityEvent e = event(1);
  e.actor.clear();
  EXPECT_TRUE(log->append(e).error().is(Errc::invalid_argument));
  for (const char* action : {"", "Login.Failed", "login failed", ".login", "login."}) {
    e = event(1);
    e.action = action;
    EXPECT_TRUE(log->append(e).error().is(Errc::invalid_argument)) << action;
  }
  e = event(1);
  e.details = Json::array({1, 2});
  EXPECT_TRUE(log->append(e).error().is(Errc::invalid_argument));
  EXPECT_EQ(log->next_seq(), 1u);
  ASSERT_TRUE(log->close());
  EXPECT_TRUE(log->append(event(1)).error().is(Errc::unavailable));
}

TEST_F(SecurityLogTest, HostilePeerDataStaysOnOneAsciiLine) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  SecurityEvent e = event(1);
  e.actor = "user:eve\n{\"seq\":1}\x1b[31m\xff\xfe\u202e";
  e.object = std::string(1000, 'o');
  e.details = Json{{"user_agent", std::string(20000, 'a')}};
  ASSERT_TRUE(log->append(e));
  ASSERT_TRUE(log->close());
  const auto lines = read_lines(active());
  ASSERT_EQ(lines.size(), 2u);
  for (char c : lines[0]) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
  const Json record = Json::parse(lines[0]);
  EXPECT_LT(record["object"].get<std::string>().size(), 300u);
  EXPECT_EQ(record["details"]["cut"], true);
  EXPECT_TRUE(verify().ok);
}

TEST_F(SecurityLogTest, TimeBasedCheckpointAndUnsignedTail) {
  auto o = options();
  o.checkpoint_every = 0;
  o.checkpoint_interval = 1h;
  auto log = open_log(o);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append(event(1)));
  clock_.advance(30min);
  ASSERT_TRUE(log->append(event(2)));
  EXPECT_EQ(verify().checkpoints, 0u);
  EXPECT_EQ(verify().unsigned_tail_lines, 2u);
  clock_.advance(31min);
  ASSERT_TRUE(log->append(event(3)));  // 61 minutes since open: sealed right after
  auto report = verify();
  EXPECT_EQ(report.checkpoints, 1u);
  EXPECT_EQ(report.unsigned_tail_lines, 0u);
  ASSERT_TRUE(log->append(event(4)));
  EXPECT_EQ(verify().unsigned_tail_lines, 1u);

  // An explicit checkpoint seals it; a second one has nothing new to seal.
  ASSERT_TRUE(log->checkpoint());
  const auto seq = log->next_seq();
  ASSERT_TRUE(log->checkpoint());
  EXPECT_EQ(log->next_seq(), seq);
  report = verify();
  EXPECT_TRUE(report.ok);
  EXPECT_EQ(report.checkpoints, 2u);
  EXPECT_EQ(report.unsigned_tail_lines, 0u);
}

TEST_F(SecurityLogTest, CutTailIsOnlyVisibleAsAShorterUnsignedTail) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->append(event(i)));
  ASSERT_TRUE(log->checkpoint());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->append(event(i)));
  EXPECT_EQ(verify().unsigned_tail_lines, 3u);
  log.reset();  // seals the tail

  // Without the final checkpoint, cutting the last two events is not provable.
  auto lines = read_lines(active());
  lines.resize(lines.size() - 3);
  write_lines(active(), lines);
  const auto report = verify();
  EXPECT_TRUE(report.ok);
  EXPECT_EQ(report.unsigned_tail_lines, 1u);
}

TEST_F(SecurityLogTest, ConcurrentAppendsKeepTheChain) {
  auto o = options();
  o.checkpoint_every = 7;
  auto log = open_log(o);
  ASSERT_TRUE(log);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < 25; ++i) EXPECT_TRUE(log->append(event(t * 100 + i)));
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(log->close());
  const auto report = verify();
  EXPECT_TRUE(report.ok);
  EXPECT_EQ(report.lines - report.checkpoints, 100u);
}

// post(): events queued for the log's thread are written in the order posted, each with the
// time of its post, before an event appended after them, and the chain verifies.
TEST_F(SecurityLogTest, PostedEventsComeBeforeWhatIsAppendedAfterThem) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  std::vector<std::string> times;
  for (int i = 0; i < 3; ++i) {
    times.push_back(format_utc_millis(clock_.now()));
    ASSERT_TRUE(log->post(event(i)));
    clock_.advance(1s);
  }
  times.push_back(format_utc_millis(clock_.now()));
  ASSERT_TRUE(log->append(event(3)));
  ASSERT_TRUE(log->post(event(4)));
  ASSERT_TRUE(log->checkpoint());  // seals the event posted before it
  ASSERT_TRUE(log->close());
  const auto lines = read_lines(active());
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(Json::parse(lines[4])["details"]["attempt"], 4);
  EXPECT_EQ(Json::parse(lines[5])["type"], "checkpoint");  // close() found nothing new to seal
  for (int i = 0; i < 4; ++i) {
    const auto record = Json::parse(lines[static_cast<std::size_t>(i)]);
    EXPECT_EQ(record["details"]["attempt"], i);
    EXPECT_EQ(record["ts"], times[static_cast<std::size_t>(i)]);
  }
  EXPECT_TRUE(verify().ok);
}

// Without any append after it, a posted event is written by the log's own thread; what is
// still queued at close() is written before its checkpoint; afterwards post() refuses.
TEST_F(SecurityLogTest, PostedEventsAreWrittenByTheLogsThreadAndAtClose) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->post(event(0)));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (log->next_seq() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(log->next_seq(), 2u);
  EXPECT_EQ(read_lines(active()).size(), 1u);
  for (int i = 1; i <= 50; ++i) ASSERT_TRUE(log->post(event(i)));
  ASSERT_TRUE(log->close());
  const auto lines = read_lines(active());
  ASSERT_EQ(lines.size(), 52u);
  for (int i = 0; i <= 50; ++i) EXPECT_EQ(Json::parse(lines[static_cast<std::size_t>(i)])["details"]["attempt"], i);
  EXPECT_EQ(Json::parse(lines[51])["type"], "checkpoint");
  EXPECT_TRUE(verify().ok);
  EXPECT_TRUE(log->post(event(99)).error().is(Errc::unavailable));
}

// A posted event is checked as an appended one is, at once; a refused one is not queued.
TEST_F(SecurityLogTest, AMalformedPostedEventIsRefusedAtOnce) {
  auto log = open_log(options());
  ASSERT_TRUE(log);
  SecurityEvent e = event(1);
  e.actor.clear();
  EXPECT_TRUE(log->post(e).error().is(Errc::invalid_argument));
  e = event(1);
  e.details = Json{{"password", "hunter2"}};
  EXPECT_TRUE(log->post(e).error().is(Errc::invalid_argument));
  ASSERT_TRUE(log->close());
  EXPECT_EQ(log->next_seq(), 1u);  // nothing written, and no checkpoint needed
}

TEST_F(SecurityLogTest, OpenRefusesBadKeysAndOpenDirectories) {
  auto log = SecurityLog::open(options(), clock_, crypto::SecretBytes(32));
  ASSERT_FALSE(log);
  EXPECT_TRUE(log.error().is(Errc::invalid_argument));

  fs::create_directories(dir_ / "log");
  fs::permissions(dir_ / "log", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  log = SecurityLog::open(options(), clock_, keys_.secret_key);
  ASSERT_FALSE(log);
  EXPECT_TRUE(log.error().is(Errc::permission_denied));
}

TEST_F(SecurityLogTest, EmptyDirectoryIsAProblem) {
  fs::create_directories(dir_ / "log");
  const auto report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.files, 0u);
  EXPECT_FALSE(verify_log(dir_ / "missing", keys_.public_key));
}

}  // namespace
}  // namespace torii::events

#include "events/security_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/file.h"
#include "crypto/sodium.h"
#include "events/log_format.h"

namespace torii::events {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxFieldBytes = 256;
constexpr std::size_t kMaxDetailsBytes = std::size_t{8} * 1024;
constexpr std::size_t kMaxDetailsDepth = 16;
constexpr std::size_t kMaxActionBytes = 64;
// Room kept free in a file so the checkpoint that closes it always fits (a checkpoint
// line is about 330 bytes), plus the members an event gains when written.
constexpr std::uint64_t kCheckpointReserve = 512;
constexpr std::uint64_t kRecordOverhead = 256;

void fsync_directory(const fs::path& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// Removes what a failed write may have left after the last whole line. Returns "" or, when
// that fails too, a note for the error message: the file then ends in a torn line that
// open() will refuse until the operator repairs it.
std::string truncate_back(int fd, std::uint64_t size) {
  if (::ftruncate(fd, static_cast<off_t>(size)) == 0) return {};
  return fmt::format(" (and cannot cut the partial line: {})", errno_text(errno));
}

bool valid_action(std::string_view action) {
  if (action.empty() || action.size() > kMaxActionBytes || action.front() == '.' || action.back() == '.') {
    return false;
  }
  return std::all_of(action.begin(), action.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'; });
}

std::string cut(std::string_view s) {
  if (s.size() <= kMaxFieldBytes) return std::string(s);
  return std::string(s.substr(0, kMaxFieldBytes)) + "...[cut]";
}

// Lower-cased, with '_', '-', '.' and spaces removed: "Private-Key", "private_key" and
// "privateKey" all become "privatekey".
std::string normalise_key(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '_' || c == '-' || c == '.' || c == ' ') continue;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

bool looks_like_secret_name(std::string_view key) {
  static constexpr std::array<std::string_view, 7> kWords = {"password", "passwd",     "passphrase", "token",
                                                             "secret",   "privatekey", "keypem"};
  const std::string k = normalise_key(key);
  return std::any_of(kWords.begin(), kWords.end(), [&](std::string_view w) { return k.find(w) != std::string::npos; });
}

Status check_no_secrets_at(const nlohmann::json& value, std::size_t depth) {
  if (depth > kMaxDetailsDepth) return fail(Errc::invalid_argument, "event details are nested too deeply");
  if (value.is_object()) {
    for (const auto& [key, member] : value.items()) {
      if (looks_like_secret_name(key)) {
        return fail(Errc::invalid_argument,
                    fmt::format("event details member \"{}\" looks like a secret; secrets are never logged (JPCERT "
                                "VII-2)",
                                cut(key)));
      }
      if (auto st = check_no_secrets_at(member, depth + 1); !st) return st;
    }
  } else if (value.is_array()) {
    for (const auto& member : value) {
      if (auto st = check_no_secrets_at(member, depth + 1); !st) return st;
    }
  } else if (value.is_string()) {
    if (value.get_ref<const std::string&>().find("PRIVATE KEY-----") != std::string::npos) {
      return fail(Errc::invalid_argument, "event details hold a PEM private key; secrets are never logged");
    }
  }
  return ok();
}

// Reads the last line of a log file and checks it well enough to chain onto it.
struct Tail {
  std::string hash;
  std::uint64_t seq = 0;
  bool is_checkpoint = false;
};

Result<std::optional<Tail>> read_tail(const fs::path& path) {
  auto reader = detail::LineReader::open(path);
  if (!reader) return tl::unexpected(reader.error());
  std::optional<detail::LineReader::Line> last;
  std::size_t line_no = 0;
  for (;;) {
    auto line = reader->next();
    if (!line) return tl::unexpected(line.error());
    if (!*line) break;
    last = std::move(*line);
    ++line_no;
  }
  if (!last) return std::optional<Tail>();

  const auto corrupt = [&](std::string_view what) {
    return fail(Errc::corrupt, fmt::format("{} line {} (the last line): {}; run the security log verification and "
                                           "repair or move the file aside before restarting",
                                           path.string(), line_no, what));
  };
  if (!last->terminated) return corrupt("the line is incomplete (no final newline)");
  if (last->too_long) return corrupt("the line is too long");
  const nlohmann::json record = nlohmann::json::parse(last->text, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded() || !record.is_object()) return corrupt("not a JSON object");
  if (detail::canonical_dump(record) != last->text) return corrupt("not in canonical form");
  const auto hash = record.find("hash");
  const auto seq = record.find("seq");
  const auto type = record.find("type");
  if (hash == record.end() || !hash->is_string() || !detail::is_hash_hex(hash->get_ref<const std::string&>()) ||
      seq == record.end() || !seq->is_number_unsigned() || seq->get<std::uint64_t>() == 0 || type == record.end() ||
      !type->is_string()) {
    return corrupt("missing or malformed hash, seq or type");
  }
  if (detail::record_hash(record) != hash->get_ref<const std::string&>()) return corrupt("the hash does not verify");
  return std::optional<Tail>(Tail{hash->get<std::string>(), seq->get<std::uint64_t>(), *type == "checkpoint"});
}

std::uint64_t retention_days(std::chrono::milliseconds retention) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::days>(retention).count());
}

}  // namespace

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::success: return "success";
    case Outcome::failure: return "failure";
    case Outcome::denied: return "denied";
  }
  return "unknown";
}

Status check_no_secrets(const nlohmann::json& details) { return check_no_secrets_at(details, 0); }

SecurityLog::SecurityLog(Options options, const Clock& clock, crypto::SecretBytes key)
    : options_(std::move(options)), clock_(clock), key_(std::move(key)), prev_(detail::kZeroHash) {}

SecurityLog::~SecurityLog() {
  {
    const std::lock_guard queue(posted_mutex_);
    posting_stopped_ = true;
  }
  posted_ready_.notify_all();
  if (poster_.joinable()) poster_.join();  // what it has not written, close_locked() writes
  try {
    std::lock_guard lock(mutex_);
    (void)close_locked();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw; close() reports errors
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the writer lock
}

Result<std::unique_ptr<SecurityLog>> SecurityLog::open(Options options, const Clock& clock,
                                                       crypto::SecretBytes signing_secret_key) {
  if (options.directory.empty()) return fail(Errc::invalid_argument, "the security log directory is not set");
  if (signing_secret_key.size() != crypto::kEd25519SecretKeyBytes) {
    return fail(Errc::invalid_argument, fmt::format("the log signing key must be a {}-byte Ed25519 secret key",
                                                    crypto::kEd25519SecretKeyBytes));
  }
  if (options.max_file_bytes < 4096) {
    return fail(Errc::invalid_argument, "the security log max_file_bytes must be at least 4096");
  }
  if (options.checkpoint_interval.count() < 0 || options.retention.count() < 0) {
    return fail(Errc::invalid_argument, "the security log checkpoint_interval and retention must not be negative");
  }
  if (auto st = ensure_private_directory(options.directory); !st) return tl::unexpected(st.error());

  std::unique_ptr<SecurityLog> log(new SecurityLog(std::move(options), clock, std::move(signing_secret_key)));
  std::lock_guard lock(log->mutex_);

  // One writer per directory: a second process appending would fork the chain.
  const fs::path lock_path = log->options_.directory / ".writer.lock";
  log->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (log->lock_fd_ < 0) {
    return fail(Errc::io_error, fmt::format("cannot open {}: {}", lock_path.string(), errno_text(errno)));
  }
  if (::flock(log->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return fail(Errc::unavailable, fmt::format("the security log in {} is in use by another process (a running "
                                               "torii server?); stop it first",
                                               log->options_.directory.string()));
  }

  // A key whose embedded public half does not match would produce checkpoints nobody can
  // verify: refuse it now rather than discover it during an investigation.
  static constexpr std::string_view kProbe = "torii-log-key-check";
  const auto probe = crypto::ed25519_sign(log->key_, as_bytes(kProbe));
  if (!probe || !crypto::ed25519_verify(log->public_key_unlocked(), as_bytes(kProbe), *probe)) {
    return fail(Errc::invalid_argument, "the log signing key is not a valid Ed25519 secret key");
  }

  const fs::path& dir = log->options_.directory;
  auto files = detail::list_log_files(dir);
  if (!files) return tl::unexpected(files.error());
  for (const auto& file : *files) {
    if (!file.active) log->last_rotated_at_ = std::max(log->last_rotated_at_, file.rotated_at);
  }
  // Continue the chain from the newest non-empty file: normally security.log, but after a
  // crash between renaming a full file and creating its successor, the newest rotated one.
  for (auto it = files->rbegin(); it != files->rend(); ++it) {
    if (it->active) {
      if (auto st = check_owner_only(it->path); !st) return tl::unexpected(st.error());
    }
    auto tail = read_tail(it->path);
    if (!tail) return tl::unexpected(tail.error());
    if (!*tail) continue;
    log->prev_ = (*tail)->hash;
    log->next_seq_ = (*tail)->seq + 1;
    log->last_is_checkpoint_ = (*tail)->is_checkpoint;
    log->events_since_checkpoint_ = (*tail)->is_checkpoint ? 0 : 1;
    break;
  }
  log->last_checkpoint_at_ = clock.now();
  if (auto st = log->open_active_locked(); !st) return tl::unexpected(st.error());
  if (auto st = log->apply_retention_locked(); !st) return tl::unexpected(st.error());
  return log;
}

Bytes SecurityLog::public_key() const {
  std::lock_guard lock(mutex_);
  return public_key_unlocked();
}

Bytes SecurityLog::public_key_unlocked() const {
  // libsodium's 64-byte Ed25519 secret key is seed || public key.
  const ByteView sk = key_.view();
  return Bytes(sk.begin() + 32, sk.end());
}

std::uint64_t SecurityLog::next_seq() const {
  std::lock_guard lock(mutex_);
  return next_seq_;
}

Status SecurityLog::open_active_locked() {
  const fs::path path = options_.directory / detail::kActiveFileName;
  std::error_code ec;
  const bool existed = fs::exists(fs::symlink_status(path, ec));
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(Errc::io_error, fmt::format("cannot open {}: {}", path.string(), errno_text(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(Errc::io_error, fmt::format("{} is not a regular file", path.string()));
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return fail(Errc::permission_denied, fmt::format("{} has mode {}: group and others must have no access",
                                                     path.string(), format_mode(st.st_mode)));
  }
  if (!existed) fsync_directory(options_.directory);
  fd_ = fd;
  file_bytes_ = static_cast<std::uint64_t>(st.st_size);
  return ok();
}

Status SecurityLog::write_record_locked(nlohmann::json record) {
  if (fd_ < 0) {
    if (auto st = open_active_locked(); !st) return st;
  }
  record["seq"] = next_seq_;
  record["prev"] = prev_;
  std::string hash = detail::record_hash(record);
  record["hash"] = hash;
  std::string line = detail::canonical_dump(record);
  if (line.size() > detail::kMaxLineBytes) {
    return fail(Errc::invalid_argument, fmt::format("a security log line would be {} bytes", line.size()));
  }
  line.push_back('\n');

  // One write() per line: the line lands whole or, on error, is truncated away so the
  // file never holds a torn line that would break the chain.
  ssize_t n = 0;
  do {
    n = ::write(fd_, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  const fs::path path = options_.directory / detail::kActiveFileName;
  if (n != static_cast<ssize_t>(line.size())) {
    const int err = n < 0 ? errno : ENOSPC;
    return fail(Errc::io_error, fmt::format("cannot write to {}: {}{}", path.string(), errno_text(err),
                                            truncate_back(fd_, file_bytes_)));
  }
  if (::fdatasync(fd_) != 0) {
    const int err = errno;
    return fail(Errc::io_error,
                fmt::format("cannot flush {}: {}{}", path.string(), errno_text(err), truncate_back(fd_, file_bytes_)));
  }
  file_bytes_ += line.size();
  prev_ = std::move(hash);
  ++next_seq_;
  last_is_checkpoint_ = record["type"] == "checkpoint";
  return ok();
}

Status SecurityLog::checkpoint_locked() {
  if (last_is_checkpoint_) return ok();
  const auto now = clock_.now();
  const auto sig = crypto::ed25519_sign(key_, as_bytes(detail::checkpoint_message(next_seq_, prev_)));
  if (!sig) return tl::unexpected(sig.error());
  nlohmann::json record = {
      {"type", "checkpoint"}, {"ts", format_utc_millis(now)}, {"head", prev_}, {"sig", hex_encode(*sig)}};
  if (auto st = write_record_locked(std::move(record)); !st) return st;
  events_since_checkpoint_ = 0;
  last_checkpoint_at_ = now;
  return ok();
}

Status SecurityLog::append_record_locked(const nlohmann::json& record) {
  const std::uint64_t estimate = detail::canonical_dump(record).size() + kRecordOverhead;
  if (file_bytes_ > 0 && file_bytes_ + estimate + kCheckpointReserve > options_.max_file_bytes) {
    if (auto st = rotate_locked(); !st) return st;
  }
  if (auto st = write_record_locked(record); !st) return st;
  ++events_since_checkpoint_;
  const bool by_count = options_.checkpoint_every > 0 && events_since_checkpoint_ >= options_.checkpoint_every;
  const bool by_time =
      options_.checkpoint_interval.count() > 0 && clock_.now() - last_checkpoint_at_ >= options_.checkpoint_interval;
  if (by_count || by_time) return checkpoint_locked();
  return ok();
}

Status SecurityLog::rotate_locked() {
  // Seal the full file, so each rotated file ends with a signed checkpoint.
  if (auto st = checkpoint_locked(); !st) return st;
  const fs::path& dir = options_.directory;
  const fs::path active = dir / detail::kActiveFileName;
  // Names must sort in rotation order even if the clock steps back: never go below the
  // newest existing name, and number collisions within one millisecond.
  const auto at = std::max(std::chrono::floor<std::chrono::milliseconds>(clock_.now()),
                           std::chrono::floor<std::chrono::milliseconds>(last_rotated_at_));
  fs::path target;
  for (std::uint32_t n = 0;; ++n) {
    if (n > 10000) return fail(Errc::io_error, fmt::format("cannot find a free rotated file name in {}", dir.string()));
    target = dir / detail::rotated_file_name(at, n);
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(target, ec))) break;
  }
  ::close(fd_);
  fd_ = -1;
  if (::rename(active.c_str(), target.c_str()) != 0) {
    const int err = errno;
    (void)open_active_locked();  // keep logging into the old file
    return fail(Errc::io_error,
                fmt::format("cannot rename {} to {}: {}", active.string(), target.string(), errno_text(err)));
  }
  last_rotated_at_ = at;
  fsync_directory(dir);
  if (auto st = open_active_locked(); !st) return st;
  return apply_retention_locked();
}

Status SecurityLog::apply_retention_locked() {
  if (options_.retention.count() == 0) return ok();
  auto files = detail::list_log_files(options_.directory);
  if (!files) return tl::unexpected(files.error());
  const auto now = clock_.now();
  const auto cutoff = now - options_.retention;
  Status result = ok();
  for (const auto& file : *files) {
    if (file.active || file.rotated_at >= cutoff) continue;
    std::error_code ec;
    fs::remove(file.path, ec);
    // The deletion is itself a security event: it explains why verify_log later finds a
    // log that starts after seq 1 (JPCERT VII-2: defined retention, visibly applied).
    nlohmann::json record = {
        {"type", "event"},
        {"ts", format_utc_millis(now)},
        {"actor", "system"},
        {"action", "log.retention.deleted"},
        {"object", "file:" + file.path.filename().string()},
        {"outcome", ec ? "failure" : "success"},
        {"source", "local"},
        {"details",
         {{"rotated_at", format_utc_millis(file.rotated_at)}, {"retention_days", retention_days(options_.retention)}}}};
    if (ec) {
      record["details"]["error"] = ec.message();
      if (result) {
        result = fail(Errc::io_error, fmt::format("cannot delete {}: {}", file.path.string(), ec.message()));
      }
    }
    if (auto st = write_record_locked(std::move(record)); !st) return st;
    ++events_since_checkpoint_;
  }
  fsync_directory(options_.directory);
  return result;
}

namespace {

// The event's record without ts, seq, prev and hash, or why it cannot be logged (append()).
Result<nlohmann::json> event_record(const SecurityEvent& event) {
  if (event.actor.empty()) return fail(Errc::invalid_argument, "a security event needs an actor");
  if (!valid_action(event.action)) {
    return fail(Errc::invalid_argument,
                fmt::format("security event action \"{}\" is not a dotted verb of [a-z0-9_.]", cut(event.action)));
  }
  if (!event.details.is_object()) return fail(Errc::invalid_argument, "security event details must be an object");
  if (auto st = check_no_secrets(event.details); !st) return tl::unexpected(st.error());

  nlohmann::json details = event.details;
  if (const std::size_t size = detail::canonical_dump(details).size(); size > kMaxDetailsBytes) {
    details = {{"cut", true}, {"bytes", size}};
  }
  return nlohmann::json{{"type", "event"},
                        {"actor", cut(event.actor)},
                        {"action", event.action},
                        {"object", cut(event.object)},
                        {"outcome", std::string(to_string(event.outcome))},
                        {"source", cut(event.source)},
                        {"details", std::move(details)}};
}

}  // namespace

Status SecurityLog::append(const SecurityEvent& event) {
  // Checked before the lock (the time is set below).
  auto record = event_record(event);
  if (!record) return tl::unexpected(std::move(record.error()));
  std::lock_guard lock(mutex_);
  if (closed_) return fail(Errc::unavailable, "the security log is closed");
  // What was posted before this event is written before it (failures are logged), and this
  // event's time is taken as the queue is emptied: no later than that of any event posted after.
  std::chrono::system_clock::time_point at;
  (void)write_posted_locked(&at);
  (*record)["ts"] = format_utc_millis(at);
  return append_record_locked(*record);
}

Status SecurityLog::post(const SecurityEvent& event) {
  const std::lock_guard queue(posted_mutex_);
  if (posting_closed_) return fail(Errc::unavailable, "the security log is closed");
  // The time is taken with the queue held: an event appended later takes its own as it empties
  // the queue, so the times in the file never go back.
  auto record = event_record(event);
  if (!record) return tl::unexpected(std::move(record.error()));
  (*record)["ts"] = format_utc_millis(clock_.now());
  posted_.push_back(std::move(*record));
  if (!poster_.joinable()) poster_ = std::thread([this] { run_posted(); });
  posted_ready_.notify_one();
  return ok();
}

Status SecurityLog::write_posted_locked(std::chrono::system_clock::time_point* emptied_at) {
  std::deque<nlohmann::json> records;
  {
    const std::lock_guard queue(posted_mutex_);
    records.swap(posted_);
    if (emptied_at != nullptr) *emptied_at = clock_.now();
  }
  Status first = ok();
  for (const auto& record : records) {
    if (auto st = append_record_locked(record); !st) {
      spdlog::error("security log: a posted event ({}) was not written: {}", record.value("action", ""),
                    st.error().message);
      if (first) first = std::move(st);
    }
  }
  return first;
}

void SecurityLog::run_posted() {
  for (;;) {
    {
      std::unique_lock queue(posted_mutex_);
      posted_ready_.wait(queue, [this] { return posting_stopped_ || !posted_.empty(); });
      if (posted_.empty()) return;  // stopped, nothing left
    }
    const std::lock_guard lock(mutex_);
    (void)write_posted_locked();
  }
}

Status SecurityLog::checkpoint() {
  std::lock_guard lock(mutex_);
  if (closed_) return fail(Errc::unavailable, "the security log is closed");
  (void)write_posted_locked();  // what was posted before is sealed too (failures are logged)
  return checkpoint_locked();
}

Status SecurityLog::close() {
  std::lock_guard lock(mutex_);
  return close_locked();
}

Status SecurityLog::close_locked() {
  if (closed_) return ok();
  {
    const std::lock_guard queue(posted_mutex_);
    posting_closed_ = true;
  }
  Status result = write_posted_locked();
  if (auto st = checkpoint_locked(); !st && result) result = std::move(st);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  closed_ = true;
  return result;
}

}  // namespace torii::events

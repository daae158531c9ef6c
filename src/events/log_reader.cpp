#include "events/log_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include <fmt/format.h>

#include "events/log_format.h"

namespace torii::events {
namespace {

constexpr std::size_t kBlockBytes = std::size_t{64} * 1024;

// Reads a file's lines last to first with pread(), in kBlockBytes blocks. A final line
// without its newline (being written, or torn) is skipped; a line longer than
// 2 * kMaxLineBytes is skipped too (the writer never makes one).
class ReverseLineReader {
 public:
  [[nodiscard]] static Result<ReverseLineReader> open(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      const int err = errno;
      return fail(err == ENOENT ? Errc::not_found : Errc::io_error,
                  fmt::format("cannot open {}: {}", path.string(), errno_text(err)));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return fail(Errc::io_error, fmt::format("cannot read {}: {}", path.string(), errno_text(err)));
    }
    return ReverseLineReader(fd, path, static_cast<std::uint64_t>(st.st_size));
  }

  ReverseLineReader(ReverseLineReader&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        path_(std::move(other.path_)),
        pos_(other.pos_),
        carry_(std::move(other.carry_)),
        started_(other.started_),
        done_(other.done_),
        skipping_(other.skipping_) {}
  ReverseLineReader& operator=(ReverseLineReader&&) = delete;
  ReverseLineReader(const ReverseLineReader&) = delete;
  ReverseLineReader& operator=(const ReverseLineReader&) = delete;
  ~ReverseLineReader() {
    if (fd_ >= 0) ::close(fd_);
  }

  // The previous line (without its newline), or nullopt before the first.
  [[nodiscard]] Result<std::optional<std::string>> previous() {
    for (;;) {
      if (done_) return std::optional<std::string>();
      const auto newline = carry_.rfind('\n');
      if (newline != std::string::npos && started_) {
        std::string line = carry_.substr(newline + 1);
        carry_.resize(newline);
        if (std::exchange(skipping_, false)) continue;
        return std::optional<std::string>(std::move(line));
      }
      if (pos_ == 0) {
        if (!started_) {
          // The whole file is one line without a newline, or empty: nothing complete.
          done_ = true;
          continue;
        }
        done_ = true;
        if (skipping_ || carry_.empty()) continue;
        return std::optional<std::string>(std::move(carry_));
      }
      if (carry_.size() > 2 * detail::kMaxLineBytes) {
        carry_.clear();
        skipping_ = true;
      }
      if (auto st = read_block(); !st) return tl::unexpected(st.error());
      if (!started_) {
        const auto last = carry_.rfind('\n');
        if (last == std::string::npos) continue;  // no newline yet: keep reading back
        carry_.resize(last);                      // drops the final newline and any torn tail
        started_ = true;
        skipping_ = false;  // an overlong torn tail is gone with it
      }
    }
  }

 private:
  ReverseLineReader(int fd, std::filesystem::path path, std::uint64_t size)
      : fd_(fd), path_(std::move(path)), pos_(size) {}

  [[nodiscard]] Status read_block() {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(pos_, kBlockBytes));
    std::string block(n, '\0');
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, block.data() + got, n - got, static_cast<off_t>(pos_ - n + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return fail(Errc::io_error, fmt::format("cannot read {}: {}", path_.string(), errno_text(errno)));
      if (r == 0) return fail(Errc::io_error, fmt::format("{} shrank while being read", path_.string()));
      got += static_cast<std::size_t>(r);
    }
    pos_ -= n;
    carry_.insert(0, block);
    return ok();
  }

  int fd_;
  std::filesystem::path path_;
  std::uint64_t pos_;     // bytes before this offset are not read yet
  std::string carry_;     // read, not yet returned
  bool started_ = false;  // the file's final newline (or the end of its last whole line) was found
  bool done_ = false;
  bool skipping_ = false;  // inside an overlong line
};

std::optional<LoggedEvent> parse_event(const std::string& line) {
  const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded() || !record.is_object()) return std::nullopt;
  const auto type = record.find("type");
  const auto seq = record.find("seq");
  if (type == record.end() || *type != "event" || seq == record.end() || !seq->is_number_unsigned()) {
    return std::nullopt;
  }
  LoggedEvent e;
  e.seq = seq->get<std::uint64_t>();
  const auto text = [&](const char* name) {
    const auto it = record.find(name);
    return it != record.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  e.ts = text("ts");
  e.actor = text("actor");
  e.action = text("action");
  e.object = text("object");
  e.outcome = text("outcome");
  e.source = text("source");
  if (const auto details = record.find("details"); details != record.end() && details->is_object()) {
    e.details = *details;
  }
  return e;
}

// The seq of a line, without building the event.
std::optional<std::uint64_t> seq_of(const std::string& line) {
  const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object()) return std::nullopt;
  const auto seq = record.find("seq");
  if (seq == record.end() || !seq->is_number_unsigned()) return std::nullopt;
  return seq->get<std::uint64_t>();
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(),
                         [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return out;
}

bool contains_folded(std::string_view haystack, std::string_view needle_lower) {
  return lower(haystack).find(needle_lower) != std::string::npos;
}

bool in_scope(const LogScope& scope, const LoggedEvent& e) {
  if (scope.organisation) {
    const auto org = e.details.find("organisation");
    if (org != e.details.end() && org->is_string() && org->get_ref<const std::string&>() == *scope.organisation) {
      return true;
    }
  }
  return scope.principals.contains(e.actor) || (!e.object.empty() && scope.principals.contains(e.object));
}

// The first line of a file: where a rotated file starts.
Result<std::optional<std::uint64_t>> first_seq(const std::filesystem::path& path) {
  auto reader = detail::LineReader::open(path);
  if (!reader) return tl::unexpected(reader.error());
  auto line = reader->next();
  if (!line) return tl::unexpected(line.error());
  if (!*line || (*line)->too_long) return std::optional<std::uint64_t>();
  return seq_of((*line)->text);
}

}  // namespace

bool matches(const LogQuery& query, const LoggedEvent& e) {
  if (query.before_seq && e.seq >= *query.before_seq) return false;
  // ts is fixed-width RFC 3339 UTC, so it orders as text.
  if (query.from && e.ts < format_utc_millis(from_unix_millis(*query.from))) return false;
  if (query.to && e.ts >= format_utc_millis(from_unix_millis(*query.to))) return false;
  if (!query.actor.empty() && e.actor != query.actor) return false;
  if (!query.action_prefix.empty() && !e.action.starts_with(query.action_prefix)) return false;
  if (!query.outcome.empty() && e.outcome != query.outcome) return false;
  if (query.alerts_only) {
    const auto alert = e.details.find("alert");
    if (alert == e.details.end() || *alert != true) return false;
  }
  if (!query.text.empty()) {
    const std::string needle = lower(std::string_view(query.text).substr(0, kMaxLogSearchBytes));
    if (!contains_folded(e.actor, needle) && !contains_folded(e.action, needle) && !contains_folded(e.object, needle)) {
      return false;
    }
  }
  return !query.scope || in_scope(*query.scope, e);
}

Result<LogPage> read_log(const std::filesystem::path& dir, const LogQuery& query) {
  auto files = detail::list_log_files(dir);
  if (!files) return tl::unexpected(files.error());
  const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, kMaxLogPage);
  LogPage page;
  std::size_t scanned = 0;
  std::optional<std::uint64_t> oldest_examined;
  for (auto file = files->rbegin(); file != files->rend(); ++file) {
    if (!file->active && query.before_seq) {
      auto first = first_seq(file->path);
      if (!first && first.error().is(Errc::not_found)) continue;  // removed by retention meanwhile
      if (!first) return tl::unexpected(first.error());
      if (*first && **first >= *query.before_seq) continue;
    }
    auto reader = ReverseLineReader::open(file->path);
    if (!reader && reader.error().is(Errc::not_found)) continue;
    if (!reader) return tl::unexpected(reader.error());
    for (;;) {
      if (scanned >= query.max_scan_lines) {
        page.scan_limit_reached = true;
        page.next_before_seq = oldest_examined;
        return page;
      }
      auto line = reader->previous();
      if (!line) return tl::unexpected(line.error());
      if (!*line) break;
      auto event = parse_event(**line);
      // Lines above the cursor do not count against the budget: within one file they are
      // at most what the previous pages read, and whole files above it were skipped.
      if (event && query.before_seq && event->seq >= *query.before_seq) continue;
      ++scanned;
      if (!event) continue;
      oldest_examined = event->seq;
      if (!matches(query, *event)) continue;
      page.events.push_back(std::move(*event));
      if (page.events.size() == limit) {
        if (page.events.back().seq > 1) page.next_before_seq = page.events.back().seq;
        return page;
      }
    }
  }
  return page;
}

}  // namespace torii::events

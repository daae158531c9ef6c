#include "events/log_format.h"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "crypto/sodium.h"

namespace torii::events::detail {
namespace {

constexpr std::string_view kRotatedPrefix = "security-";
constexpr std::string_view kSuffix = ".log";
constexpr std::size_t kStampLength = 19;  // YYYYMMDDTHHMMSSmmmZ

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view digits) {
  int v = 0;
  for (char c : digits) v = v * 10 + (c - '0');
  return v;
}

std::optional<std::chrono::system_clock::time_point> parse_stamp(std::string_view s) {
  if (s.size() != kStampLength || s[8] != 'T' || s[18] != 'Z') return std::nullopt;
  if (!all_digits(s.substr(0, 8)) || !all_digits(s.substr(9, 9))) return std::nullopt;
  using namespace std::chrono;
  const year_month_day ymd{year{to_int(s.substr(0, 4))}, month{static_cast<unsigned>(to_int(s.substr(4, 2)))},
                           day{static_cast<unsigned>(to_int(s.substr(6, 2)))}};
  const int h = to_int(s.substr(9, 2));
  const int m = to_int(s.substr(11, 2));
  const int sec = to_int(s.substr(13, 2));
  const int ms = to_int(s.substr(15, 3));
  if (!ymd.ok() || h > 23 || m > 59 || sec > 60) return std::nullopt;
  return time_point_cast<system_clock::duration>(sys_days{ymd} + hours{h} + minutes{m} + seconds{sec} +
                                                 milliseconds{ms});
}

}  // namespace

std::string canonical_dump(const nlohmann::json& record) {
  return record.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
}

std::string record_hash(const nlohmann::json& record) {
  if (!record.is_object() || !record.contains("hash")) return hex_encode(crypto::sha256(canonical_dump(record)));
  nlohmann::json body = record;
  body.erase("hash");
  return hex_encode(crypto::sha256(canonical_dump(body)));
}

std::string checkpoint_message(std::uint64_t seq, std::string_view head) {
  std::string message("torii-log-checkpoint");
  message.push_back('\0');
  message += std::to_string(seq);
  message.push_back('\0');
  message += head;
  return message;
}

bool is_hash_hex(std::string_view s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string rotated_file_name(std::chrono::system_clock::time_point t, std::uint32_t collision) {
  std::string stamp;
  for (char c : format_utc_millis(t)) {
    if (c != '-' && c != ':' && c != '.') stamp.push_back(c);
  }
  if (collision == 0) return fmt::format("{}{}{}", kRotatedPrefix, stamp, kSuffix);
  return fmt::format("{}{}.{}{}", kRotatedPrefix, stamp, collision, kSuffix);
}

std::optional<LogFile> parse_log_file_name(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  if (name == kActiveFileName) return LogFile{path, true, {}, 0};
  std::string_view rest(name);
  if (!rest.starts_with(kRotatedPrefix) || !rest.ends_with(kSuffix)) return std::nullopt;
  rest.remove_prefix(kRotatedPrefix.size());
  rest.remove_suffix(kSuffix.size());
  if (rest.size() < kStampLength) return std::nullopt;
  const auto when = parse_stamp(rest.substr(0, kStampLength));
  if (!when) return std::nullopt;
  rest.remove_prefix(kStampLength);
  std::uint32_t collision = 0;
  if (!rest.empty()) {
    if (rest[0] != '.' || !all_digits(rest.substr(1)) || rest.size() > 10 || rest[1] == '0') return std::nullopt;
    collision = static_cast<std::uint32_t>(to_int(rest.substr(1)));
  }
  return LogFile{path, false, *when, collision};
}

Result<std::vector<LogFile>> list_log_files(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    return fail(ec == std::errc::no_such_file_or_directory ? Errc::not_found : Errc::io_error,
                fmt::format("cannot list {}: {}", dir.string(), ec.message()));
  }
  std::vector<LogFile> files;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return fail(Errc::io_error, fmt::format("cannot list {}: {}", dir.string(), ec.message()));
    if (auto file = parse_log_file_name(it->path())) files.push_back(std::move(*file));
  }
  if (ec) return fail(Errc::io_error, fmt::format("cannot list {}: {}", dir.string(), ec.message()));
  std::sort(files.begin(), files.end(), [](const LogFile& a, const LogFile& b) {
    if (a.active != b.active) return b.active;
    if (a.rotated_at != b.rotated_at) return a.rotated_at < b.rotated_at;
    return a.collision < b.collision;
  });
  return files;
}

Result<LineReader> LineReader::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    return fail(err == ENOENT ? Errc::not_found : Errc::io_error,
                fmt::format("cannot open {}: {}", path.string(), errno_text(err)));
  }
  return LineReader(fd, path);
}

LineReader::LineReader(LineReader&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      buffer_(std::move(other.buffer_)),
      begin_(other.begin_),
      end_(other.end_),
      eof_(other.eof_) {}

LineReader::~LineReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status LineReader::fill() {
  begin_ = 0;
  end_ = 0;
  for (;;) {
    const ssize_t n = ::read(fd_, buffer_.data(), buffer_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io_error, fmt::format("cannot read {}: {}", path_.string(), errno_text(errno)));
    }
    if (n == 0) eof_ = true;
    end_ = static_cast<std::size_t>(n);
    return ok();
  }
}

Result<std::optional<LineReader::Line>> LineReader::next() {
  Line line;
  bool any = false;
  for (;;) {
    if (begin_ == end_) {
      if (eof_) break;
      if (auto st = fill(); !st) return tl::unexpected(st.error());
      if (eof_) break;
    }
    any = true;
    const char* start = buffer_.data() + begin_;
    const char* stop = buffer_.data() + end_;
    const char* newline = std::find(start, stop, '\n');
    const std::size_t room = kMaxLineBytes - std::min(kMaxLineBytes, line.text.size());
    const std::size_t take = std::min(static_cast<std::size_t>(newline - start), room);
    line.text.append(start, take);
    if (static_cast<std::size_t>(newline - start) > room) line.too_long = true;
    if (newline != stop) {
      begin_ += static_cast<std::size_t>(newline - start) + 1;
      line.terminated = true;
      return std::optional<Line>(std::move(line));
    }
    begin_ = end_;
  }
  if (!any) return std::optional<Line>();
  return std::optional<Line>(std::move(line));
}

}  // namespace torii::events::detail

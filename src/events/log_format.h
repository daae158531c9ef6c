// Internal to src/events: the on-disk format of the security log, shared by the writer
// (security_log.cpp) and the verifier (log_verify.cpp) so the two cannot drift apart.
//
// Canonical form of a record: nlohmann::json's default object type is an ordered
// std::map, so members are always serialised in sorted key order; canonical_dump() adds
// compact separators, ensure_ascii (every non-ASCII character is written as \uXXXX, so the
// file is pure ASCII and bidi or terminal escape tricks cannot hide in it) and replacement
// of invalid UTF-8 by U+FFFD (so a hostile peer name can never make an event unloggable).
// Parsing a canonical line and dumping it again gives the same bytes, which is what lets
// the verifier recompute hashes and reject any line that is not in canonical form.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace torii::events::detail {

inline constexpr std::string_view kActiveFileName = "security.log";
inline constexpr std::string_view kZeroHash = "0000000000000000000000000000000000000000000000000000000000000000";
// Longest line the writer produces and the verifier accepts (newline excluded).
inline constexpr std::size_t kMaxLineBytes = std::size_t{64} * 1024;

// Serialises a record in the canonical form described above. Never throws.
[[nodiscard]] std::string canonical_dump(const nlohmann::json& record);

// Hex SHA-256 over the canonical form of the record without its "hash" member.
[[nodiscard]] std::string record_hash(const nlohmann::json& record);

// The bytes a checkpoint signature covers: "torii-log-checkpoint\0" <decimal seq> "\0" <head>.
[[nodiscard]] std::string checkpoint_message(std::uint64_t seq, std::string_view head);

// True for 64 lower-case hex digits (the form hex_encode produces).
[[nodiscard]] bool is_hash_hex(std::string_view s);

// Rotated files are named security-<YYYYMMDDTHHMMSSmmmZ>.log, or
// security-<YYYYMMDDTHHMMSSmmmZ>.<n>.log (n >= 1) when that name was already taken in the
// same millisecond. Files sort by (time, n); the active file security.log comes last.
struct LogFile {
  std::filesystem::path path;
  bool active = false;
  std::chrono::system_clock::time_point rotated_at{};  // rotated files only
  std::uint32_t collision = 0;                         // the n above, 0 when absent
};

[[nodiscard]] std::string rotated_file_name(std::chrono::system_clock::time_point t, std::uint32_t collision);
[[nodiscard]] std::optional<LogFile> parse_log_file_name(const std::filesystem::path& path);

// The log files in dir, oldest first, the active file (when present) last. Other files
// are ignored.
[[nodiscard]] Result<std::vector<LogFile>> list_log_files(const std::filesystem::path& dir);

// Reads a file line by line with bounded memory. A line longer than kMaxLineBytes is
// returned truncated with too_long set (the rest up to the newline is skipped).
class LineReader {
 public:
  struct Line {
    std::string text;
    bool terminated = false;  // ended with '\n' (false only for a last, torn line)
    bool too_long = false;
  };

  [[nodiscard]] static Result<LineReader> open(const std::filesystem::path& path);
  LineReader(LineReader&& other) noexcept;
  LineReader& operator=(LineReader&&) = delete;
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  ~LineReader();

  // The next line, or nullopt at end of file.
  [[nodiscard]] Result<std::optional<Line>> next();

 private:
  LineReader(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  [[nodiscard]] Status fill();

  int fd_;
  std::filesystem::path path_;
  std::vector<char> buffer_ = std::vector<char>(16384);
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
};

}  // namespace torii::events::detail

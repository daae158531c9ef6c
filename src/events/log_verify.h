// Offline verification of the security log written by SecurityLog (JPCERT VII-2: an
// operator or auditor can show that the log was not altered).
//
// verify_log reads the rotated files oldest first, then security.log, and checks every
// line: it is complete, parses, is in canonical form, its hash recomputes, its prev equals
// the hash of the line before (across files), its seq is the previous seq + 1, and, for a
// checkpoint, its head equals that prev and its signature verifies with public_key.
//
// Which line is blamed: the first line where the chain breaks, at its 1-based line number
// within its file.
//   - a line edited in place: that line (its hash no longer recomputes);
//   - a line edited with its hash recomputed: the NEXT line (its prev no longer matches).
//     A hash chain cannot tell "line k altered and rehashed" from "line k+1's link is
//     wrong"; the problem text says so;
//   - a line removed: the line that now sits in its place (prev mismatch);
//   - two lines swapped: the first of them (prev mismatch);
//   - a line inserted: the inserted line (or, if its prev and seq were forged to fit, the
//     line after it);
//   - a checkpoint re-signed with another key: that checkpoint line.
// After a problem the check resynchronises on the line's own claimed hash and seq, so one
// alteration produces one problem (a rewrite may produce a few); the first is what matters.
//
// What a hash chain cannot prove: (1) that lines after the last valid checkpoint were not
// cut off: unsigned_tail_lines says how many lines only the chain protects; (2) that the
// oldest files were removed by retention rather than by an attacker: when the oldest
// available line is not seq 1, starts_after_retention is set, which is not a failure on its
// own (compare with the "log.retention.deleted" events and the configured retention).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/error.h"

namespace torii::events {

struct VerifyProblem {
  std::string file;  // file name within the log directory, e.g. "security.log"
  std::size_t line;  // 1-based within that file (0: not about one line)
  std::string what;
};

struct VerifyReport {
  bool ok = false;  // no problems
  std::size_t files = 0;
  std::size_t lines = 0;
  std::size_t checkpoints = 0;  // checkpoints whose signature verified
  // The "ts" of the last verified checkpoint. It is covered by the line hash and thus by
  // the next checkpoint, but not by its own signature.
  std::optional<std::string> last_checkpoint_ts;
  std::optional<std::uint64_t> first_seq;  // seq of the oldest available line
  std::optional<std::uint64_t> last_seq;
  bool starts_after_retention = false;  // the oldest available line is not seq 1
  std::vector<VerifyProblem> problems;  // in file order; the first one is what matters
  bool more_problems = false;           // problems were cut at 1000
  std::size_t unsigned_tail_lines = 0;  // lines after the last verified checkpoint
};

// Fails (rather than reporting a problem) only when the directory cannot be read or
// public_key is not 32 bytes. An empty directory is a problem: SecurityLog::open always
// creates security.log.
[[nodiscard]] Result<VerifyReport> verify_log(const std::filesystem::path& dir, ByteView public_key);

}  // namespace torii::events

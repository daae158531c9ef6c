// Reading the security log written by SecurityLog: the events that match a query, newest
// first, one page at a time (JPCERT III-1: the record can be looked at; VIII-2: alerts are
// security events whose details carry "alert": true).
//
// How much work one query does: the files are read backwards from their end in 64 KiB
// blocks (rotated files newest first, the active file first of all), so the newest events
// cost the least and nothing is read beyond what the page needs. A rotated file whose
// first line is not older than before_seq is skipped after reading that one line; lines
// above the cursor within a file are read again but do not count against the budget. A query
// that matches little stops after max_scan_lines lines all the same and hands back a cursor
// (next_before_seq) to go on from, so no request reads a year of files at once.
//
// Lines that are not events (checkpoints), do not parse or are torn (a line being written
// at that instant) are passed over: integrity is what verify_log reports, not this.
//
// Tenancy: events do not belong to an organisation by themselves. An event is in an
// organisation's scope when its details carry "organisation": <that id> (the console adds it
// for the organisation of the person acting), or when its actor or object is one of the
// organisation's principals ("user:<id>", "device:<id>", which the caller lists from the
// store). Events in no organisation's scope (the server's own, anonymous probes) are only
// visible to a query without a scope: the system administrator's.
//
// Pure reading: no locks are taken, the writer is not disturbed, and one reader may run
// on any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/error.h"

namespace torii::events {

// The most events a page holds, and the longest free text a query may search for.
inline constexpr std::size_t kMaxLogPage = 1000;
inline constexpr std::size_t kMaxLogSearchBytes = 128;

struct LogScope {
  std::optional<std::string> organisation;  // events whose details name this organisation
  std::set<std::string> principals;         // events whose actor or object is one of these
};

struct LogQuery {
  std::optional<UnixMillis> from;  // ts >= from
  std::optional<UnixMillis> to;    // ts < to
  std::string actor;               // exact; empty: any
  std::string action_prefix;       // "login." or "login.failed"; empty: any
  std::string outcome;             // "success", "failure", "denied"; empty: any
  std::string text;                // case-insensitive substring of actor, action or object; cut to kMaxLogSearchBytes
  bool alerts_only = false;
  std::optional<LogScope> scope;  // nullopt: every event
  std::size_t limit = 100;        // 1..kMaxLogPage
  std::optional<std::uint64_t> before_seq;
  std::size_t max_scan_lines = 200000;
};

struct LoggedEvent {
  std::uint64_t seq = 0;
  std::string ts;
  std::string actor;
  std::string action;
  std::string object;
  std::string outcome;
  std::string source;
  nlohmann::json details = nlohmann::json::object();
};

struct LogPage {
  std::vector<LoggedEvent> events;  // newest first
  // Set when older matching events may remain: repeat the query with before_seq = this.
  std::optional<std::uint64_t> next_before_seq;
  bool scan_limit_reached = false;  // stopped by max_scan_lines, not by limit or the log's start
};

// Whether an event matches the query's filters and scope.
[[nodiscard]] bool matches(const LogQuery& query, const LoggedEvent& event);

// not_found when dir does not exist; io_error when a file cannot be read.
[[nodiscard]] Result<LogPage> read_log(const std::filesystem::path& dir, const LogQuery& query);

}  // namespace torii::events

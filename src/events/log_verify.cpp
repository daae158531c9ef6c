#include "events/log_verify.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "crypto/sodium.h"
#include "events/log_format.h"

namespace torii::events {
namespace {

constexpr std::size_t kMaxProblems = 1000;

bool is_string_member(const nlohmann::json& record, const char* name) {
  const auto it = record.find(name);
  return it != record.end() && it->is_string();
}

class Verifier {
 public:
  Verifier(ByteView public_key, VerifyReport& report) : public_key_(public_key), report_(report) {}

  void check_line(const std::string& file, std::size_t line_no, const detail::LineReader::Line& line) {
    ++report_.lines;
    ++report_.unsigned_tail_lines;
    if (auto what = check(line)) add(file, line_no, std::move(*what));
    previous_ = fmt::format("{} line {}", file, line_no);
    first_ = false;
  }

  void add(std::string file, std::size_t line_no, std::string what) {
    if (report_.problems.size() >= kMaxProblems) {
      report_.more_problems = true;
      return;
    }
    report_.problems.push_back(VerifyProblem{std::move(file), line_no, std::move(what)});
  }

 private:
  // Returns the first problem of the line, and resynchronises the expected prev and seq
  // on whatever the line claims so that one alteration is reported once.
  std::optional<std::string> check(const detail::LineReader::Line& line) {
    const std::optional<std::string> expected_prev = std::exchange(expected_prev_, std::nullopt);
    const std::optional<std::uint64_t> expected_seq = std::exchange(expected_seq_, std::nullopt);
    if (line.too_long) return fmt::format("the line is longer than {} bytes", detail::kMaxLineBytes);
    const nlohmann::json record = nlohmann::json::parse(line.text, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object()) return "the line is not a JSON object";

    // Resynchronise first: the members are read again below for the checks.
    const auto hash_it = record.find("hash");
    const auto seq_it = record.find("seq");
    const auto prev_it = record.find("prev");
    const bool hash_ok =
        hash_it != record.end() && hash_it->is_string() && detail::is_hash_hex(hash_it->get_ref<const std::string&>());
    const bool seq_ok = seq_it != record.end() && seq_it->is_number_unsigned();
    const bool prev_ok =
        prev_it != record.end() && prev_it->is_string() && detail::is_hash_hex(prev_it->get_ref<const std::string&>());
    if (hash_ok) expected_prev_ = hash_it->get<std::string>();
    if (seq_ok) expected_seq_ = seq_it->get<std::uint64_t>() + 1;
    if (seq_ok) {
      if (!report_.first_seq) report_.first_seq = seq_it->get<std::uint64_t>();
      report_.last_seq = seq_it->get<std::uint64_t>();
    }

    if (!line.terminated) return std::string("the last line is incomplete (no final newline): a torn or cut write");
    if (detail::canonical_dump(record) != line.text) {
      return std::string("the line is not in canonical form: it was altered outside torii");
    }
    if (!hash_ok || !seq_ok || !prev_ok || !is_string_member(record, "type") || !is_string_member(record, "ts")) {
      return std::string("missing or malformed seq, ts, type, prev or hash");
    }
    const std::string& hash = hash_it->get_ref<const std::string&>();
    const std::string& prev = prev_it->get_ref<const std::string&>();
    const std::uint64_t seq = seq_it->get<std::uint64_t>();
    if (detail::record_hash(record) != hash) {
      return std::string("the hash does not match the line's content: this line was altered");
    }

    if (first_) {
      if (seq == 1 && prev != detail::kZeroHash) return std::string("seq 1 must have prev of 64 zeros");
      if (seq != 1) {
        if (prev == detail::kZeroHash) return fmt::format("prev is 64 zeros but seq is {}, not 1", seq);
        report_.starts_after_retention = true;
      }
    } else {
      if (expected_prev && prev != *expected_prev) {
        return fmt::format(
            "prev does not match the hash of the previous line ({}): a line was removed, inserted or reordered "
            "here, or the previous line was altered and its hash recomputed",
            previous_);
      }
      if (expected_seq && seq != *expected_seq) return fmt::format("seq is {}, expected {}", seq, *expected_seq);
    }

    const std::string& type = record["type"].get_ref<const std::string&>();
    if (type == "event") {
      for (const char* name : {"actor", "action", "object", "outcome", "source"}) {
        if (!is_string_member(record, name)) return fmt::format("event member \"{}\" is missing or not a string", name);
      }
      const std::string& outcome = record["outcome"].get_ref<const std::string&>();
      if (outcome != "success" && outcome != "failure" && outcome != "denied") {
        return fmt::format("unknown outcome \"{}\"", outcome);
      }
      const auto details = record.find("details");
      if (details == record.end() || !details->is_object()) return std::string("event details are not an object");
      return std::nullopt;
    }
    if (type == "checkpoint") {
      if (!is_string_member(record, "head") || !is_string_member(record, "sig")) {
        return std::string("checkpoint head or sig is missing");
      }
      const std::string& head = record["head"].get_ref<const std::string&>();
      if (head != prev) return std::string("checkpoint head differs from its prev");
      const auto sig = hex_decode(record["sig"].get_ref<const std::string&>());
      if (!sig || sig->size() != crypto::kEd25519SignatureBytes ||
          !crypto::ed25519_verify(public_key_, as_bytes(detail::checkpoint_message(seq, head)), *sig)) {
        return std::string("the checkpoint signature does not verify with the given public key");
      }
      ++report_.checkpoints;
      report_.last_checkpoint_ts = record["ts"].get<std::string>();
      report_.unsigned_tail_lines = 0;
      return std::nullopt;
    }
    return fmt::format("unknown line type \"{}\"", type);
  }

  ByteView public_key_;
  VerifyReport& report_;
  bool first_ = true;
  std::optional<std::string> expected_prev_;
  std::optional<std::uint64_t> expected_seq_;
  std::string previous_;
};

}  // namespace

Result<VerifyReport> verify_log(const std::filesystem::path& dir, ByteView public_key) {
  if (public_key.size() != crypto::kEd25519PublicKeyBytes) {
    return fail(Errc::invalid_argument,
                fmt::format("the log public key must be {} bytes", crypto::kEd25519PublicKeyBytes));
  }
  auto files = detail::list_log_files(dir);
  if (!files) return tl::unexpected(files.error());

  VerifyReport report;
  Verifier verifier(public_key, report);
  if (files->empty()) verifier.add(dir.string(), 0, "no security log files in the directory");
  for (const auto& file : *files) {
    ++report.files;
    const std::string name = file.path.filename().string();
    auto reader = detail::LineReader::open(file.path);
    if (!reader) return tl::unexpected(reader.error());
    for (std::size_t line_no = 1;; ++line_no) {
      auto line = reader->next();
      if (!line) return tl::unexpected(line.error());
      if (!*line) break;
      verifier.check_line(name, line_no, **line);
    }
  }
  report.ok = report.problems.empty() && !report.more_problems;
  return report;
}

}  // namespace torii::events

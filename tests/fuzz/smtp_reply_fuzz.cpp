// Fuzzes mail::ReplyReader: every byte an SMTP server sends goes through it before the
// client decides anything (STARTTLS offered? AUTH accepted? message taken?).
//
// Input: the bytes a server sends, cut into reads at the positions the first byte picks.
// Properties beyond "does not crash":
//   - replies are well formed: a code 200-599, at least one and at most kMaxReplyLines
//     lines, none longer than the line limit and none holding CR or LF;
//   - buffering is bounded: what waits for a line end never exceeds the line limit;
//   - the cut does not matter: the replies (and the failure, if any) are those of the
//     same bytes fed whole.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "mail/smtp_reply.h"

namespace {

struct Outcome {
  std::vector<torii::mail::Reply> replies;
  bool failed = false;
};

Outcome read_all(std::string_view bytes, std::size_t chunk) {
  using namespace torii;
  Outcome out;
  mail::ReplyReader reader;
  for (std::size_t at = 0; at < bytes.size() && !out.failed; at += chunk) {
    reader.feed(bytes.substr(at, chunk));
    while (true) {
      auto reply = reader.next();
      if (!reply) {
        out.failed = true;
        break;
      }
      if (!*reply) {
        fuzz::check(reader.pending_bytes() <= mail::kMaxReplyLineBytes);
        break;
      }
      out.replies.push_back(std::move(**reply));
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  const Outcome cut = read_all(bytes, chunk);
  const Outcome whole = read_all(bytes, bytes.size() + 1);
  for (const auto& reply : cut.replies) {
    check(reply.code >= 200 && reply.code <= 599);
    check(!reply.lines.empty() && reply.lines.size() <= mail::kMaxReplyLines);
    for (const auto& line : reply.lines) {
      check(line.size() < mail::kMaxReplyLineBytes);
      check(line.find_first_of("\r\n") == std::string::npos);
    }
  }
  check(cut.failed == whole.failed);
  check(cut.replies.size() == whole.replies.size());
  for (std::size_t i = 0; i < cut.replies.size() && i < whole.replies.size(); ++i) {
    check(cut.replies[i].code == whole.replies[i].code && cut.replies[i].lines == whole.replies[i].lines);
  }
  return 0;
}

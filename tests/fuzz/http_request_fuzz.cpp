// Fuzzes the console's path from bytes to a checked request: HTTP/1.1 parsing (Beast's
// parser behind RequestReader, fed in pieces whose sizes come from the input) and the pure
// request checks (session cookie, route matching, origin, JSON body validation).
//
// Properties beyond "does not crash":
//   - a reader is done, refused with 400/413/431, or waiting for more; what it leaves
//     unconsumed is a suffix of what it was given (it never invents bytes);
//   - a request it returns fits its limits (body at most max_body_bytes) and has a method
//     and a path;
//   - the session cookie's value is found within its Cookie field, right after its name
//     and "=", without a ';', and is the value cookie_value reads;
//   - matching a route binds exactly the pattern's parameters, each non-empty and at most
//     128 bytes, and the literal segments are the path's;
//   - body validation accepts only known members of their kind (strings, lists of strings,
//     objects) within their length and item count, reports a problem for everything else,
//     and accepting a body means no problems were reported;
//   - after a valid WebSocket opening handshake the rest of the bytes go to the frame parser,
//     as on a live socket after its 101 answer: everything it answers is whole, unmasked
//     server frames (pongs, then at most one close, last), within its output bound.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "console/request_checks.h"
#include "console/request_reader.h"
#include "console/websocket.h"
#include "fuzz_check.h"

namespace torii::fuzz {
namespace {

using namespace torii::console;

constexpr std::size_t kMaxHeader = 2048;
constexpr std::size_t kMaxBody = 1024;

constexpr FieldSpec kSpecs[] = {{"username", true, 16},
                                {"password", true, 64},
                                {"code", false, 8},
                                {"scopes", false, 48, false, 3},
                                {"definition", false, 256, false, 0, true}};
constexpr std::string_view kPatterns[] = {"/api/v1/devices", "/api/v1/devices/{id}",
                                          "/api/v1/account/sessions/{handle}", "/a/{x}/b/{y}"};

void check_request(const Request& r) {
  check(!r.method.empty());
  check(r.body.size() <= kMaxBody);

  // The session cookie's value lies within its field, after "name=", and is what
  // cookie_value reads (the WAF is not shown exactly those bytes).
  constexpr std::string_view kCookie = "__Host-torii-session";
  std::optional<std::string> first;
  for (const auto& [field, value] : r.headers) {
    if (field != "cookie") continue;
    const auto at = find_cookie_value(value, kCookie);
    if (!at) continue;
    check(at->offset >= kCookie.size() + 1 && at->offset + at->length <= value.size());
    check(value.compare(at->offset - kCookie.size() - 1, kCookie.size() + 1, std::string(kCookie) + "=") == 0);
    check(value.find(';', at->offset) >= at->offset + at->length);
    if (!first) first = value.substr(at->offset, at->length);
  }
  check(cookie_value(r, kCookie) == first);
  (void)query_parameter(r.query, "organisation");
  (void)query_carries_token(r.query);
  if (auto bearer = bearer_token(r)) check(bearer->find(' ') == std::string::npos);
  (void)same_origin(r);
  (void)address_of(r.source);

  for (auto pattern : kPatterns) {
    std::map<std::string, std::string> params;
    if (!match_route(pattern, r.path, params)) continue;
    std::size_t braces = 0;
    for (char c : pattern) braces += c == '{' ? 1 : 0;
    check(params.size() <= braces);
    for (const auto& [name, value] : params) check(!value.empty() && value.size() <= 128 && !name.empty());
  }

  std::map<std::string, std::string> fields;
  std::map<std::string, std::vector<std::string>> lists;
  const auto problems = read_json_fields(r.body, kSpecs, fields, lists);
  for (const auto& [name, value] : fields) {
    bool known = false;
    for (const auto& spec : kSpecs) {
      if (spec.name == name && spec.max_items == 0) {
        known = true;
        check(value.size() <= spec.max_bytes);
      }
    }
    check(known);
  }
  for (const auto& [name, items] : lists) {
    bool known = false;
    for (const auto& spec : kSpecs) {
      if (spec.name == name && spec.max_items > 0) {
        known = true;
        check(items.size() <= spec.max_items);
        for (const auto& item : items) check(item.size() <= spec.max_bytes);
      }
    }
    check(known);
  }
  if (problems.empty()) {
    check(fields.size() >= 2);  // both required members arrived
  }
}

// What a live socket answers to `bytes` (fed in pieces): checked frame by frame.
void check_websocket(std::string_view bytes, std::size_t piece) {
  websocket::Connection ws;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    ws.receive(as_bytes(bytes.substr(at, piece)));
  }
  const Bytes out = ws.take_output();
  check(out.size() <= std::size_t{64} * 1024 + 127);
  std::size_t at = 0;
  bool closed_by_frame = false;
  while (at < out.size()) {
    check(!closed_by_frame);  // nothing after a close
    check(at + 2 <= out.size());
    const std::uint8_t first = out[at];
    const std::uint8_t second = out[at + 1];
    check(first == (0x80U | websocket::kPong) || first == (0x80U | websocket::kClose));
    check((second & 0x80U) == 0 && second <= 125);
    at += 2 + second;
    check(at <= out.size());
    closed_by_frame = first == (0x80U | websocket::kClose);
  }
  check(closed_by_frame == ws.closing());
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii::console;
  if (size == 0) return 0;
  // The first byte sets the piece size, so the parser also sees requests split anywhere.
  const std::size_t piece = 1 + data[0] % 64;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string pending;
  std::size_t offset = 0;
  // Pipelined requests: one reader after another over the same bytes.
  for (int requests = 0; requests < 8; ++requests) {
    RequestReader reader(torii::fuzz::kMaxHeader, torii::fuzz::kMaxBody);
    auto state = RequestReader::State::need_more;
    while (state == RequestReader::State::need_more) {
      if (pending.empty() && offset >= input.size()) break;
      const std::size_t n = std::min(piece, input.size() - offset);
      pending.append(input, offset, n);
      offset += n;
      const std::string before = pending;
      state = reader.feed(pending);
      torii::fuzz::check(before.size() >= pending.size() &&
                         before.compare(before.size() - pending.size(), pending.size(), pending) == 0);
      if (n == 0 && state == RequestReader::State::need_more) break;
    }
    if (state == RequestReader::State::refused) {
      const int status = reader.refusal_status();
      torii::fuzz::check(status == 400 || status == 413 || status == 431);
      return 0;
    }
    if (state != RequestReader::State::done) return 0;
    const Request request = reader.take("192.0.2.1:1234");
    torii::fuzz::check_request(request);
    if (websocket::check_handshake(request)) {
      torii::fuzz::check_websocket(pending + input.substr(offset), piece);
      return 0;
    }
  }
  return 0;
}

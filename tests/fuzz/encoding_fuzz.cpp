// Fuzzes hex_decode and base64url_decode: tokens, key identifiers, signatures and hashes
// arrive in these encodings from clients, URLs and files.
//
// Properties beyond "does not crash":
//   - base64url: decoding is canonical (the decoder refuses non-zero leftover bits), so
//     when decode(x) succeeds, encode(decode(x)) == x exactly. Two encodings of one token
//     would let an attacker dodge an exact-match deny list or cache;
//   - hex: decode accepts both cases while encode writes lower case, so the round trip
//     holds up to case: encode(decode(x)) == lower(x);
//   - on the raw bytes as data: decode(encode(bytes)) == bytes for both encodings;
//   - output sizes are what the lengths imply (no byte appended or lost).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "fuzz_check.h"

namespace torii::fuzz {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  return out;
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ByteView bytes(data, size);

  if (const auto decoded = hex_decode(text)) {
    check(decoded->size() * 2 == text.size());
    check(hex_encode(*decoded) == fuzz::lower(text));
  }
  if (const auto decoded = base64url_decode(text)) {
    check(decoded->size() == text.size() * 6 / 8);
    check(base64url_encode(*decoded) == text);
  }

  const std::string hex = hex_encode(bytes);
  const auto hex_back = hex_decode(hex);
  check(hex_back.has_value() && std::equal(hex_back->begin(), hex_back->end(), bytes.begin(), bytes.end()));

  const std::string b64 = base64url_encode(bytes);
  check(b64.find('=') == std::string::npos);  // unpadded: safe in file names and URLs
  const auto b64_back = base64url_decode(b64);
  check(b64_back.has_value() && std::equal(b64_back->begin(), b64_back->end(), bytes.begin(), bytes.end()));
  return 0;
}

// Byte buffers and encodings shared by every module.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace torii {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

[[nodiscard]] inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
[[nodiscard]] inline std::string to_string(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

[[nodiscard]] std::string hex_encode(ByteView data);
[[nodiscard]] std::optional<Bytes> hex_decode(std::string_view text);

// RFC 4648 §5, without padding: safe in file names and URL fragments.
[[nodiscard]] std::string base64url_encode(ByteView data);
[[nodiscard]] std::optional<Bytes> base64url_decode(std::string_view text);

}  // namespace torii

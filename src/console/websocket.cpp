#include "console/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace torii::console::websocket {

namespace {

// §1.3: the GUID every server appends to the client's key.
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t kMaxControlPayload = 125;
// Pongs waiting to be written; a client that pings faster than it reads is cut off.
constexpr std::size_t kMaxPendingOutput = std::size_t{64} * 1024;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether any field of this name holds the token in its comma-separated list.
bool field_has_token(const Request& request, std::string_view name, std::string_view token) {
  for (const auto& [field, value] : request.headers) {
    if (field != name) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      if (iequals(trim(rest.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

bool base64_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '/'; }

// Base64 of exactly 16 bytes: 22 characters, the last of which carries 2 bits (so its low
// four bits are zero: A, Q, g or w), then "==".
bool sixteen_bytes_base64(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  if (!std::all_of(key.begin(), key.begin() + 22, base64_char)) return false;
  return key[21] == 'A' || key[21] == 'Q' || key[21] == 'g' || key[21] == 'w';
}

// §7.4.1 and the IANA registry: what a client may send in a close frame. 1005, 1006 and 1015
// are never sent; 1004 and 1016-2999 are reserved.
bool valid_close_code(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

}  // namespace

std::string accept_key(std::string_view client_key) {
  std::string input(client_key);
  input += kGuid;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &length, EVP_sha1(), nullptr) != 1) return {};
  std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> encoded{};
  const int n = EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(length));
  return {reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n)};
}

bool is_upgrade(const Request& request) { return field_has_token(request, "upgrade", "websocket"); }

tl::expected<std::string, HandshakeRefusal> check_handshake(const Request& request) {
  if (request.method != "GET") return tl::unexpected(HandshakeRefusal{400, "a WebSocket is opened with GET"});
  if (!is_upgrade(request)) return tl::unexpected(HandshakeRefusal{400, "the request does not ask for a WebSocket"});
  if (!field_has_token(request, "connection", "upgrade")) {
    return tl::unexpected(HandshakeRefusal{400, "the Connection field does not name upgrade"});
  }
  const auto version = request.header("sec-websocket-version");
  if (!version || trim(*version) != "13") {
    return tl::unexpected(HandshakeRefusal{426, "this server speaks WebSocket version 13"});
  }
  const auto key = request.header("sec-websocket-key");
  if (!key || !sixteen_bytes_base64(trim(*key))) {
    return tl::unexpected(HandshakeRefusal{400, "Sec-WebSocket-Key must be 16 bytes in base64"});
  }
  std::string accept = accept_key(trim(*key));
  if (accept.empty()) return tl::unexpected(HandshakeRefusal{400, "the key could not be hashed"});
  return accept;
}

Bytes encode_frame(std::uint8_t opcode, ByteView payload) {
  Bytes out;
  out.reserve(payload.size() + 10);
  out.push_back(static_cast<std::uint8_t>(0x80U | opcode));
  const std::size_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<std::uint8_t>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(126);
    out.push_back(static_cast<std::uint8_t>(n >> 8U));
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    out.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(std::uint64_t{n} >> shift));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void Connection::frame(std::uint8_t opcode, ByteView payload) {
  const Bytes encoded = encode_frame(opcode, payload);
  output_.insert(output_.end(), encoded.begin(), encoded.end());
}

Bytes Connection::take_output() {
  Bytes out;
  out.swap(output_);
  return out;
}

bool Connection::heard_from_peer() { return std::exchange(heard_, false); }

void Connection::send_text(std::string_view text) {
  if (!close_sent_) frame(kText, as_bytes(text));
}

void Connection::ping() {
  if (!close_sent_) frame(kPing, as_bytes("torii"));
}

void Connection::close(CloseCode code, std::string_view reason) {
  if (close_sent_) return;
  const auto value = static_cast<unsigned>(code);
  Bytes payload{static_cast<std::uint8_t>(value >> 8U), static_cast<std::uint8_t>(value)};
  const auto text = as_bytes(reason.substr(0, kMaxControlPayload - 2));
  payload.insert(payload.end(), text.begin(), text.end());
  frame(kClose, payload);
  close_sent_ = true;
}

void Connection::fail(CloseCode code, std::string_view reason) {
  close(code, reason);
  closed_ = true;
  input_.clear();
}

void Connection::receive(ByteView bytes) {
  if (closed_ || bytes.empty()) return;
  heard_ = true;
  input_.insert(input_.end(), bytes.begin(), bytes.end());
  while (!closed_ && take_frame()) {
  }
}

bool Connection::take_frame() {
  if (input_.size() < 2) return false;
  const std::uint8_t first = input_[0];
  const std::uint8_t second = input_[1];
  const bool fin = (first & 0x80U) != 0;
  const std::uint8_t opcode = first & 0x0FU;
  const bool masked = (second & 0x80U) != 0;
  const std::size_t length = second & 0x7FU;
  // Everything that can be told from the first two bytes is checked before waiting for more,
  // so a data frame's announced length never makes us buffer its payload.
  if ((first & 0x70U) != 0) {
    fail(CloseCode::protocol_error, "reserved bits set: no extension was agreed");
    return false;
  }
  if (opcode <= 0x2) {
    fail(CloseCode::unsupported_data, "this socket only sends; it takes no messages");
    return false;
  }
  if (opcode != kClose && opcode != kPing && opcode != kPong) {
    fail(CloseCode::protocol_error, "unknown opcode");
    return false;
  }
  if (!fin) {
    fail(CloseCode::protocol_error, "a control frame must not be fragmented");
    return false;
  }
  if (length > kMaxControlPayload) {
    fail(CloseCode::protocol_error, "a control frame carries at most 125 bytes");
    return false;
  }
  if (!masked) {
    fail(CloseCode::protocol_error, "frames from a client must be masked");
    return false;
  }
  const std::size_t header = 2 + 4;
  if (input_.size() < header + length) return false;
  Bytes payload(input_.begin() + header, input_.begin() + static_cast<std::ptrdiff_t>(header + length));
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= input_[2 + (i % 4)];
  input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(header + length));

  switch (opcode) {
    case kPing:
      if (close_sent_) break;
      if (output_.size() > kMaxPendingOutput) {
        fail(CloseCode::policy_violation, "pings faster than their answers are read");
        return false;
      }
      frame(kPong, payload);
      break;
    case kPong: break;
    default: {  // kClose
      if (payload.size() == 1) {
        fail(CloseCode::protocol_error, "a close frame's code takes two bytes");
        return false;
      }
      if (payload.size() >= 2) {
        const unsigned code = (unsigned{payload[0]} << 8U) | payload[1];
        if (!valid_close_code(code)) {
          fail(CloseCode::protocol_error, "invalid close code");
          return false;
        }
      }
      // §5.5.1: answer with a close frame (echoing the code) unless ours was sent first.
      if (!close_sent_) {
        frame(kClose, ByteView(payload.data(), std::min<std::size_t>(payload.size(), 2)));
        close_sent_ = true;
      }
      closed_ = true;
      input_.clear();
      return false;
    }
  }
  return true;
}

}  // namespace torii::console::websocket

#include "identity/totp.h"

#include <oath.h>
#include <qrencode.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <iterator>
#include <memory>
#include <ratio>
#include <span>

#include <fmt/format.h>

#include "crypto/sodium.h"

namespace torii::identity {
namespace {

// RFC 4648 §6 alphabet; recovery codes use it in lower case, which is easier to read aloud
// and to type on a phone.
constexpr std::string_view kBase32Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::string_view kBase32Lower = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kHexUpper = "0123456789ABCDEF";

constexpr std::string_view kRecoveryHashDomain = "torii recovery code";
constexpr std::size_t kRecoveryCodeBytes = 10;  // 80 bits: exactly 16 base32 characters
constexpr std::size_t kRecoveryGroupChars = 4;

constexpr int kQuietZoneModules = 4;  // the light margin ISO/IEC 18004 asks for around a QR code
constexpr int kPixelsPerModule = 5;   // the SVG's intrinsic size; it scales without loss

// RFC 6238 §4.2: T = floor((Unix time - T0) / X) with T0 = 0 and X = 30 s.
using StepDuration = std::chrono::duration<std::int64_t, std::ratio<30>>;
static_assert(StepDuration{1} == kTotpStep);

// oath_init() is not itself thread-safe; a function-local static runs it exactly once.
// It fails only when liboath's hash backend cannot start.
bool oath_ready() {
  static const bool ready = oath_init() == OATH_OK;
  return ready;
}

struct QrCodeFree {
  void operator()(QRcode* code) const noexcept { QRcode_free(code); }
};
using QrCodePtr = std::unique_ptr<QRcode, QrCodeFree>;

// RFC 4648 §6 without the trailing '=' padding: the last group's spare bits are zero.
std::string base32_encode(ByteView data, std::string_view alphabet) {
  std::string out;
  out.reserve((data.size() * 8 + 4) / 5);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const std::uint8_t byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(alphabet[(buffer >> bits) & 31U]);
    }
  }
  if (bits > 0) out.push_back(alphabet[(buffer << (5 - bits)) & 31U]);
  return out;
}

// RFC 3986 §2.3 unreserved characters pass through; every other byte becomes %XX (§2.1,
// upper-case hex).
std::string percent_encode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHexUpper[byte >> 4]);
      out.push_back(kHexUpper[byte & 0x0f]);
    }
  }
  return out;
}

bool is_totp_code_shape(std::string_view code) {
  return code.size() == static_cast<std::size_t>(kTotpDigits) &&
         std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

crypto::SecretBytes generate_totp_secret(Random& random) { return crypto::random_key(random, kTotpSecretBytes); }

std::string totp_secret_base32(const crypto::SecretBytes& secret) { return base32_encode(secret.view(), kBase32Upper); }

// Key URI format as read by authenticator apps: the label is "issuer:account", and the issuer
// is repeated as a parameter, which apps prefer over the label's prefix.
std::string totp_uri(std::string_view issuer, std::string_view account, const crypto::SecretBytes& secret) {
  const std::string encoded_issuer = percent_encode(issuer);
  return fmt::format("otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}", encoded_issuer,
                     percent_encode(account), totp_secret_base32(secret), encoded_issuer, kTotpDigits,
                     kTotpStep.count());
}

std::int64_t totp_step(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<StepDuration>(t.time_since_epoch()).count();
}

// RFC 6238 §4: TOTP is HOTP (RFC 4226 §5.3) with the time step as its counter. An empty string
// when liboath cannot run: it never equals a code, so verification fails closed.
std::string totp_code(const crypto::SecretBytes& secret, std::int64_t step) {
  if (!oath_ready()) return {};
  std::array<char, kTotpDigits + 1> otp{};
  const int rc =
      oath_hotp_generate(reinterpret_cast<const char*>(secret.data()), secret.size(), static_cast<std::uint64_t>(step),
                         kTotpDigits, false, OATH_HOTP_DYNAMIC_TRUNCATION, otp.data());
  if (rc != OATH_OK) return {};
  return {otp.data(), static_cast<std::size_t>(kTotpDigits)};
}

// RFC 6238 §5.2: one step of clock drift either way, and a code is never accepted twice (only
// steps after last_used_step count).
std::optional<std::int64_t> verify_totp(const crypto::SecretBytes& secret, std::string_view code,
                                        std::chrono::system_clock::time_point now, std::int64_t last_used_step) {
  if (!is_totp_code_shape(code)) return std::nullopt;
  const std::int64_t current = totp_step(now);
  std::optional<std::int64_t> matched;
  // Every step of the window is computed and compared, matching or not, so the time taken does
  // not tell which step (if any) matched. Later steps overwrite earlier ones: the latest wins.
  for (std::int64_t step = current - 1; step <= current + 1; ++step) {
    const std::string expected = totp_code(secret, step);
    const bool same = crypto::equal_constant_time(as_bytes(expected), as_bytes(code));
    if (same && step > last_used_step) matched = step;
  }
  return matched;
}

// libqrencode reads a C string, so a NUL inside `text` is refused rather than silently cutting
// the text short. The SVG draws from the module matrix only: no byte of `text` reaches it, and
// it carries no style attribute, so a strict Content-Security-Policy (no inline style) shows it.
Result<std::string> qr_code_svg(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) {
    return fail(Errc::invalid_argument, "text for a QR code contains a NUL byte");
  }
  const std::string c_text(text);
  errno = 0;
  const QrCodePtr qr(QRcode_encodeString(c_text.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1));
  if (!qr) {
    const int err = errno;
    if (err == ERANGE) {
      return fail(Errc::invalid_argument, fmt::format("{} bytes of text do not fit in a QR code", text.size()));
    }
    return fail(Errc::invalid_argument, fmt::format("QR code could not be encoded: {}", errno_text(err)));
  }

  const int width = qr->width;
  const int size = width + 2 * kQuietZoneModules;
  std::string svg =
      fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {0} {0}" width="{1}" height="{1}" )"
                  R"(shape-rendering="crispEdges"><rect width="{0}" height="{0}" fill="#fff"/><path fill="#000" d=")",
                  size, size * kPixelsPerModule);
  // One byte per module, row by row; bit 0 set means dark (qrencode.h, QRcode).
  const std::span<const unsigned char> modules(qr->data, static_cast<std::size_t>(width) * width);
  auto out = std::back_inserter(svg);
  for (int y = 0; y < width; ++y) {
    for (int x = 0; x < width; ++x) {
      if ((modules[static_cast<std::size_t>(y) * width + x] & 1U) != 0) {
        fmt::format_to(out, "M{} {}h1v1h-1z", x + kQuietZoneModules, y + kQuietZoneModules);
      }
    }
  }
  svg += "\"/></svg>\n";
  return svg;
}

std::vector<std::string> generate_recovery_codes(Random& random) {
  std::vector<std::string> codes;
  codes.reserve(kRecoveryCodeCount);
  // A repeat (odds of 2^-80 per pair from a working source) is drawn again, so the ten are distinct.
  while (codes.size() < kRecoveryCodeCount) {
    const crypto::SecretBytes raw = crypto::random_key(random, kRecoveryCodeBytes);
    const std::string chars = base32_encode(raw.view(), kBase32Lower);
    std::string code;
    code.reserve(chars.size() + chars.size() / kRecoveryGroupChars);
    for (std::size_t i = 0; i < chars.size(); ++i) {
      if (i > 0 && i % kRecoveryGroupChars == 0) code.push_back('-');
      code.push_back(chars[i]);
    }
    if (std::find(codes.begin(), codes.end(), code) == codes.end()) codes.push_back(std::move(code));
  }
  return codes;
}

std::string recovery_code_hash(std::string_view code) {
  std::string normalised;
  normalised.reserve(code.size());
  for (const char c : code) {
    if (c == ' ' || c == '-') continue;
    normalised.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return crypto::token_hash(kRecoveryHashDomain, normalised);
}

}  // namespace torii::identity

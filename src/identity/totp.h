// Second factor (JPCERT I-4, IIIT I2): TOTP (RFC 6238) and single-use recovery codes.
//
// TOTP here: HMAC-SHA1, 6 digits, 30-second steps (what every authenticator app speaks),
// computed by liboath. A code is accepted for the current step and one step either side
// (clock drift), and only for a step later than the last one accepted for the account, so a
// code seen over someone's shoulder cannot be replayed.
//
// Recovery codes: ten per account, 80 random bits each, shown once, stored as hashes,
// each usable once.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/random.h"
#include "crypto/secret.h"

namespace torii::identity {

inline constexpr std::size_t kTotpSecretBytes = 20;  // 160 bits, RFC 4226's recommendation
inline constexpr std::chrono::seconds kTotpStep{30};
inline constexpr int kTotpDigits = 6;
inline constexpr std::size_t kRecoveryCodeCount = 10;

[[nodiscard]] crypto::SecretBytes generate_totp_secret(Random& random);
// RFC 4648 base32 without padding, as authenticator apps expect it.
[[nodiscard]] std::string totp_secret_base32(const crypto::SecretBytes& secret);
// otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
// with issuer and account percent-encoded.
[[nodiscard]] std::string totp_uri(std::string_view issuer, std::string_view account,
                                   const crypto::SecretBytes& secret);

// The time step (Unix time / 30 s) of a point in time.
[[nodiscard]] std::int64_t totp_step(std::chrono::system_clock::time_point t);
// The code for a step: for tests, the bench and clients built on torii.
[[nodiscard]] std::string totp_code(const crypto::SecretBytes& secret, std::int64_t step);

// The step whose code this is, within one step of now's and later than last_used_step;
// nullopt otherwise (wrong code, too old, replayed, not six digits).
[[nodiscard]] std::optional<std::int64_t> verify_totp(const crypto::SecretBytes& secret, std::string_view code,
                                                      std::chrono::system_clock::time_point now,
                                                      std::int64_t last_used_step);

// A QR code of `text` as a standalone SVG document (black modules on white, quiet zone of
// four modules), drawn with libqrencode at error correction level M. invalid_argument when
// the text does not fit in a QR code.
[[nodiscard]] Result<std::string> qr_code_svg(std::string_view text);

// Ten fresh codes such as "k7qm-2xwd-p4ta-e6nr": four groups of four lower-case base32 characters.
[[nodiscard]] std::vector<std::string> generate_recovery_codes(Random& random);
// What is stored for a code: hex SHA-256 over a domain tag and the code normalised (lower
// case, spaces and dashes removed), so "ABCDE ABCDE..." typed by hand matches.
[[nodiscard]] std::string recovery_code_hash(std::string_view code);

}  // namespace torii::identity

// Passwords of people (JPCERT I-3, IIIT DI2): what is accepted, and how it is stored.
//
// A password is normalised to Unicode NFKC before anything else, so the same password typed
// on two keyboards is the same password. It is accepted when it is 12 to 128 characters
// (code points) long, zxcvbn rates it 3 or better, it is not on the shipped list of common
// and breached passwords, it does not contain the user's name or the local part of their
// e-mail address, and it is none of their last five. Every reason that applies is reported,
// each with a message a person can act on.
//
// Storage: Argon2id through libsodium (crypto_pwhash_str), whose string carries its own
// salt and cost, so the cost can be raised later without invalidating stored hashes.
// Hashing is deliberately slow: callers run it off the I/O thread and bound how many run at
// once (console::HashPool).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace torii::identity {

inline constexpr std::size_t kMinPasswordLength = 12;   // code points, after NFKC
inline constexpr std::size_t kMaxPasswordLength = 128;  // longer is refused, not truncated
inline constexpr int kMinPasswordScore = 3;             // zxcvbn's 0..4 scale
inline constexpr std::size_t kPasswordHistory = 5;

// NFKC form of a UTF-8 password; invalid_argument when it is not valid UTF-8 or holds
// control characters.
[[nodiscard]] Result<std::string> normalize_password(std::string_view password);

// zxcvbn's score (0 worst .. 4 best) of a normalised password, from libzxcvbn's entropy
// estimate mapped onto zxcvbn's guess thresholds (10^3, 10^6, 10^8, 10^10 guesses).
[[nodiscard]] int password_score(std::string_view normalized, std::span<const std::string> user_words = {});

// Whether the password (compared case-insensitively) is on the shipped list of common and
// breached passwords.
[[nodiscard]] bool is_common_password(std::string_view normalized);

// What a password is checked against besides itself.
struct PasswordContext {
  std::string_view username;
  std::string_view email;
  // Argon2id strings of the user's current and previous passwords, newest first; the first
  // kPasswordHistory are checked.
  std::span<const std::string> previous_hashes;
};

struct PasswordProblem {
  // too_short, too_long, weak, common, contains_name, reused
  std::string code;
  std::string message;  // for the person; never contains the password

  friend bool operator==(const PasswordProblem&, const PasswordProblem&) = default;
};

// Every problem of a normalised password; empty when it is acceptable. Checking the
// history verifies Argon2id hashes: slow, run it where hashing runs.
[[nodiscard]] std::vector<PasswordProblem> check_password(std::string_view normalized, const PasswordContext& context);

// Argon2id cost. libsodium's "interactive" profile by default (2 passes, 64 MiB).
struct PasswordHashCost {
  unsigned long long ops = 2;
  std::size_t memory_bytes = std::size_t{64} << 20;
};
// The lowest cost libsodium allows: for tests only.
[[nodiscard]] PasswordHashCost minimum_password_hash_cost();

// crypto_pwhash_str with Argon2id; crypto_error when libsodium fails (out of memory).
[[nodiscard]] Result<std::string> hash_password(std::string_view normalized, const PasswordHashCost& cost);
// Constant-time verification; false for a malformed hash.
[[nodiscard]] bool verify_password(std::string_view hash, std::string_view normalized);
// True when the hash was made with another cost than `cost`, or is malformed (rehash at the
// next login).
[[nodiscard]] bool password_needs_rehash(std::string_view hash, const PasswordHashCost& cost);

}  // namespace torii::identity

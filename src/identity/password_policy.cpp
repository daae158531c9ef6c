#include "identity/password_policy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>

#include <fmt/format.h>
#include <sodium.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <zxcvbn.h>

#include "identity/common_passwords.h"

namespace torii::identity {
namespace {

// Input longer than this is refused before normalisation. No password that can be accepted
// comes near it; it bounds the work done on input from outside, and keeps every length
// handed to ICU (NFKC expands a code point to at most 18) within its 32-bit range.
constexpr std::size_t kMaxInputBytes = std::size_t{64} << 10;

// zxcvbn's guesses_to_score: one point for each of 10^3, 10^6, 10^8 and 10^10 guesses.
constexpr std::array<double, 4> kScoreLog10Guesses = {3, 6, 8, 10};
constexpr int kMaxScore = static_cast<int>(kScoreLog10Guesses.size());

// A listed word with digits or punctuation around it is looked up only when at least this
// long: short entries ("abc", "007") would otherwise condemn "abc" plus random symbols.
constexpr std::size_t kMinCommonCore = 4;
// Names shorter than this are not looked for in passwords: they would match too many.
constexpr std::size_t kMinNameLength = 3;

// C0 controls, DEL and C1 controls; all of them are single UTF-16 units.
bool is_control(char16_t unit) { return unit < 0x20 || (unit >= 0x7f && unit <= 0x9f); }

// Lengths handed to ICU; callers keep them below kMaxInputBytes times a small factor.
std::int32_t icu_length(std::size_t size) { return static_cast<std::int32_t>(size); }

Result<std::u16string> utf8_to_utf16(std::string_view utf8) {
  std::u16string out(utf8.size(), u'\0');  // never more UTF-16 units than UTF-8 bytes
  std::int32_t length = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strFromUTF8(out.data(), icu_length(out.size()), &length, utf8.data(), icu_length(utf8.size()), &status);
  if (U_FAILURE(status)) return fail(Errc::invalid_argument, "password is not valid UTF-8");
  out.resize(static_cast<std::size_t>(length));
  return out;
}

Result<std::u16string> nfkc(const std::u16string& text) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* normalizer = unorm2_getNFKCInstance(&status);
  if (U_FAILURE(status)) {
    return fail(Errc::unavailable, fmt::format("Unicode normalisation is unavailable: {}", u_errorName(status)));
  }
  std::u16string out(text.size(), u'\0');
  std::int32_t length =
      unorm2_normalize(normalizer, text.data(), icu_length(text.size()), out.data(), icu_length(out.size()), &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) {  // compatibility forms expand: "ﬃ" is three letters
    status = U_ZERO_ERROR;
    out.assign(static_cast<std::size_t>(length), u'\0');
    length =
        unorm2_normalize(normalizer, text.data(), icu_length(text.size()), out.data(), icu_length(out.size()), &status);
  }
  if (U_FAILURE(status)) return fail(Errc::invalid_argument, "password could not be normalised");
  out.resize(static_cast<std::size_t>(length));
  return out;
}

Result<std::string> utf16_to_utf8(const std::u16string& text) {
  std::string out(text.size() * 3, '\0');  // at most 3 UTF-8 bytes for each UTF-16 unit
  std::int32_t length = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strToUTF8(out.data(), icu_length(out.size()), &length, text.data(), icu_length(text.size()), &status);
  if (U_FAILURE(status)) return fail(Errc::invalid_argument, "password could not be normalised");
  out.resize(static_cast<std::size_t>(length));
  return out;
}

// Code points of valid UTF-8: every byte that does not continue a sequence starts one.
std::size_t code_points(std::string_view utf8) {
  return static_cast<std::size_t>(
      std::ranges::count_if(utf8, [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

// ASCII only, as the list of common passwords is; other letters are left as they are.
std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_listed(std::string_view lowered) { return std::ranges::binary_search(common_passwords(), lowered); }

// What may surround a listed word: ASCII that is not a letter (digits, punctuation, spaces).
bool is_decoration(char c) { return static_cast<unsigned char>(c) < 0x80 && !(c >= 'a' && c <= 'z'); }

// The local part of an address: before its last '@' (a quoted local part may hold '@'; a
// domain never does). The whole value when there is no '@'.
std::string_view local_part(std::string_view email) { return email.substr(0, email.rfind('@')); }

// Whether a lower-cased password contains a name, compared the way the password is: NFKC,
// then ASCII lower case.
bool contains_name(std::string_view lowered_password, std::string_view name) {
  auto normalized = normalize_password(name);
  const std::string folded = ascii_lower(normalized ? std::string_view(*normalized) : name);
  return code_points(folded) >= kMinNameLength && lowered_password.find(folded) != std::string_view::npos;
}

// libsodium reads a stored hash as a NUL-terminated string in a buffer of
// crypto_pwhash_STRBYTES; a view need not be terminated, so it is copied into one. Anything
// longer, or with a NUL inside, is not a hash libsodium made.
using HashString = std::array<char, crypto_pwhash_STRBYTES>;
std::optional<HashString> terminated_hash(std::string_view hash) {
  if (hash.size() >= crypto_pwhash_STRBYTES || hash.find('\0') != std::string_view::npos) return std::nullopt;
  HashString out{};
  std::ranges::copy(hash, out.begin());
  return out;
}

}  // namespace

Result<std::string> normalize_password(std::string_view password) {
  // Messages name the problem only: the password goes nowhere.
  if (password.size() > kMaxInputBytes) return fail(Errc::invalid_argument, "password is far too long");
  auto utf16 = utf8_to_utf16(password);
  if (!utf16) return tl::unexpected(utf16.error());
  auto normalized = nfkc(*utf16);
  if (!normalized) return tl::unexpected(normalized.error());
  if (std::ranges::any_of(*normalized, is_control)) {
    return fail(Errc::invalid_argument, "password contains control characters");
  }
  return utf16_to_utf8(*normalized);
}

int password_score(std::string_view normalized, std::span<const std::string> user_words) {
  // libzxcvbn takes NUL-terminated strings, the dictionary as a null-terminated array.
  const std::string password(normalized);
  std::vector<const char*> dictionary;
  dictionary.reserve(user_words.size() + 1);
  for (const std::string& word : user_words) {
    if (!word.empty()) dictionary.push_back(word.c_str());
  }
  dictionary.push_back(nullptr);
  const double bits = ZxcvbnMatch(password.c_str(), dictionary.data(), nullptr);  // log2 of the guesses
  const double log10_guesses = bits * std::log10(2.0);
  return static_cast<int>(std::ranges::count_if(kScoreLog10Guesses, [&](double t) { return log10_guesses >= t; }));
}

bool is_common_password(std::string_view normalized) {
  const std::string lowered = ascii_lower(normalized);
  if (is_listed(lowered)) return true;
  // A listed word dressed up with digits and punctuation: "password123!", "!!qwerty2024".
  std::string_view core = lowered;
  while (!core.empty() && is_decoration(core.front())) core.remove_prefix(1);
  while (!core.empty() && is_decoration(core.back())) core.remove_suffix(1);
  return core.size() < lowered.size() && core.size() >= kMinCommonCore && is_listed(core);
}

std::vector<PasswordProblem> check_password(std::string_view normalized, const PasswordContext& context) {
  std::vector<PasswordProblem> problems;
  const std::size_t length = code_points(normalized);
  if (length < kMinPasswordLength) {
    problems.push_back({"too_short", fmt::format("must be at least {} characters long (this one has {})",
                                                 kMinPasswordLength, length)});
  }
  if (length > kMaxPasswordLength) {
    problems.push_back(
        {"too_long", fmt::format("must be at most {} characters long (this one has {})", kMaxPasswordLength, length)});
  } else {
    // Strength is not judged past the maximum length: the password is refused anyway, and the
    // estimate's cost grows with the length.
    const std::array<std::string, 3> words = {std::string(context.username), std::string(local_part(context.email)),
                                              std::string(context.email)};
    const int score = password_score(normalized, words);
    if (score < kMinPasswordScore) {
      problems.push_back({"weak", fmt::format("is too easy to guess (strength {} of {}; at least {} is needed): "
                                              "add more words or characters",
                                              score, kMaxScore, kMinPasswordScore)});
    }
  }
  if (is_common_password(normalized)) {
    problems.push_back({"common", "is on the list of common or breached passwords"});
  }
  const std::string lowered = ascii_lower(normalized);
  if (contains_name(lowered, context.username) || contains_name(lowered, local_part(context.email))) {
    problems.push_back({"contains_name", "must not contain your user name or e-mail name"});
  }
  const auto history = context.previous_hashes.first(std::min(kPasswordHistory, context.previous_hashes.size()));
  if (std::ranges::any_of(history, [&](const std::string& hash) { return verify_password(hash, normalized); })) {
    problems.push_back({"reused", fmt::format("must differ from your last {} passwords", kPasswordHistory)});
  }
  return problems;
}

PasswordHashCost minimum_password_hash_cost() { return {crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN}; }

Result<std::string> hash_password(std::string_view normalized, const PasswordHashCost& cost) {
  HashString out{};
  if (crypto_pwhash_str_alg(out.data(), normalized.data(), normalized.size(), cost.ops, cost.memory_bytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return fail(Errc::crypto_error, "Argon2id hashing failed (out of memory, or a cost outside libsodium's limits)");
  }
  return std::string(out.data());
}

bool verify_password(std::string_view hash, std::string_view normalized) {
  const auto terminated = terminated_hash(hash);
  return terminated && crypto_pwhash_str_verify(terminated->data(), normalized.data(), normalized.size()) == 0;
}

bool password_needs_rehash(std::string_view hash, const PasswordHashCost& cost) {
  // libsodium answers yes whenever the hash's cost differs from `cost`, lower or higher, and
  // for an Argon2i hash. A hash it cannot read is not one this code would make either (and
  // never verifies, so it is never rehashed in practice).
  const auto terminated = terminated_hash(hash);
  return !terminated || crypto_pwhash_str_needs_rehash(terminated->data(), cost.ops, cost.memory_bytes) != 0;
}

}  // namespace torii::identity

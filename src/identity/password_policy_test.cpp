#include "identity/password_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::identity {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// libzxcvbn's scores of the passwords the tests lean on; ScoresFollowZxcvbnsGuessThresholds
// checks them.
constexpr std::string_view kScore2 = "summer2024summer";
constexpr std::string_view kScore3 = "kitchen-garden";
constexpr std::string_view kStrong = "correct horse battery staple violet";  // 4

PasswordContext named(std::string_view username, std::string_view email = {}) { return {username, email, {}}; }
PasswordContext remembering(std::span<const std::string> previous_hashes) { return {{}, {}, previous_hashes}; }

std::vector<std::string> codes(const std::vector<PasswordProblem>& problems) {
  std::vector<std::string> out;
  out.reserve(problems.size());
  for (const auto& problem : problems) out.push_back(problem.code);
  return out;
}

std::vector<std::string> codes_of(std::string_view password, const PasswordContext& context = {}) {
  return codes(check_password(password, context));
}

std::string normalized(std::string_view password) {
  auto result = normalize_password(password);
  EXPECT_TRUE(result) << result.error().message;
  return result.value_or("");
}

std::string hashed(std::string_view password) {
  auto result = hash_password(password, minimum_password_hash_cost());
  EXPECT_TRUE(result) << result.error().message;
  return result.value_or("");
}

// --- Normalisation -----------------------------------------------------------------------

TEST(PasswordPolicy, FullWidthLettersAndLigaturesNormaliseToPlainLetters) {
  EXPECT_EQ(normalized("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44"), "password");  // ｐａｓｓｗｏｒｄ
  EXPECT_EQ(normalized("\ufb01ve"), "five");                                              // ﬁ ligature
  EXPECT_EQ(normalized("plain ascii 123"), "plain ascii 123");
}

TEST(PasswordPolicy, ComposedAndDecomposedAccentsNormaliseAlike) {
  const std::string composed = normalized("caf\u00e9 cr\u00e8me");      // é, è as one code point
  const std::string decomposed = normalized("cafe\u0301 cre\u0300me");  // e + combining accent
  EXPECT_EQ(composed, decomposed);
  EXPECT_EQ(composed, "caf\u00e9 cr\u00e8me");
}

TEST(PasswordPolicy, InvalidUtf8IsRefusedWithoutRepeatingThePassword) {
  for (std::string_view bad :
       {"secret\xff", "secret\xc3", "secret\xc0\xaf", "secret\xed\xa0\x80", "secret\xf4\x90\x80\x80"}) {
    auto result = normalize_password(bad);
    ASSERT_FALSE(result) << "accepted byte sequence " << testing::PrintToString(bad);
    EXPECT_TRUE(result.error().is(Errc::invalid_argument));
    EXPECT_THAT(result.error().message, Not(HasSubstr("secret")));
  }
}

TEST(PasswordPolicy, ControlCharactersAreRefused) {
  using namespace std::string_view_literals;
  // Tab, line feed, DEL, NEL (C1, U+0085) and NUL.
  for (std::string_view bad :
       {"secret\tword"sv, "secret\nword"sv, "secret\x7fword"sv, "secret\xc2\x85word"sv, "secret\0word"sv}) {
    auto result = normalize_password(bad);
    ASSERT_FALSE(result) << "accepted " << testing::PrintToString(bad);
    EXPECT_TRUE(result.error().is(Errc::invalid_argument));
    EXPECT_THAT(result.error().message, Not(HasSubstr("secret")));
  }
  EXPECT_EQ(normalized("secret word \u00e9\u00df"), "secret word \u00e9\u00df");  // spaces and letters are fine
}

// --- Length ------------------------------------------------------------------------------

TEST(PasswordPolicy, AShortPasswordIsRefusedWithItsLength) {
  const auto problems = check_password("xk7#Qp2mVw", {});
  ASSERT_THAT(codes(problems), ElementsAre("too_short"));
  EXPECT_EQ(problems[0].message, "must be at least 12 characters long (this one has 10)");
}

TEST(PasswordPolicy, AnEmptyPasswordIsShortAndWeak) {
  EXPECT_EQ(normalized(""), "");
  EXPECT_THAT(codes_of(""), ElementsAre("too_short", "weak"));
}

TEST(PasswordPolicy, LengthIsCountedInCodePointsAfterNormalisation) {
  // 11 Greek and ASCII code points in 18 bytes: short.
  EXPECT_THAT(codes_of("\u03be\u03ba7#\u0398\u03c02\u03bc\u03a9\u03c99"), ElementsAre("too_short"));
  EXPECT_THAT(codes_of("\u03be\u03ba7#\u0398\u03c02\u03bc\u03a9\u03c99\u03bb"), IsEmpty());
  // The ligature ﬃ is one code point as typed and three after NFKC.
  const std::string expanded = normalized("xk7#Qp2mVw\ufb03");
  EXPECT_EQ(expanded, "xk7#Qp2mVwffi");
  EXPECT_THAT(codes_of(expanded), Not(Contains("too_short")));
}

TEST(PasswordPolicy, APasswordOverTheMaximumLengthIsRefused) {
  EXPECT_THAT(codes_of(std::string(kMaxPasswordLength, 'x')), ElementsAre("weak"));
  const auto problems = check_password(std::string(kMaxPasswordLength + 1, 'x'), {});
  ASSERT_THAT(codes(problems), ElementsAre("too_long"));
  EXPECT_EQ(problems[0].message, "must be at most 128 characters long (this one has 129)");

  std::string accented;
  for (std::size_t i = 0; i < kMaxPasswordLength; ++i) accented += "\u00e9";
  EXPECT_THAT(codes_of(accented), Not(Contains("too_long")));
  EXPECT_THAT(codes_of(accented + "\u00e9"), ElementsAre("too_long"));
}

// --- Strength ----------------------------------------------------------------------------

TEST(PasswordPolicy, ScoresFollowZxcvbnsGuessThresholds) {
  // Passwords either side of 10^3, 10^6, 10^8 and 10^10 guesses, as libzxcvbn estimates them.
  const std::pair<std::string_view, int> expected[] = {
      {"password", 0}, {"football7", 0},      {"iloveyou2", 1}, {"monkeypuzzle1", 1},   {"correcthorse", 2},
      {kScore2, 2},    {"ilovemydog1234", 2}, {kScore3, 3},     {"purple-kitchen7", 3}, {"correcthorsebatt", 4},
      {kStrong, 4}};
  for (const auto& [password, score] : expected) EXPECT_EQ(password_score(password), score) << password;
}

TEST(PasswordPolicy, UserWordsMakeAPasswordEasierToGuess) {
  EXPECT_EQ(password_score("xq7vorlund2024!"), 4);
  const std::vector<std::string> words = {"xq7vorlund"};
  EXPECT_LT(password_score("xq7vorlund2024!", words), kMinPasswordScore);
}

TEST(PasswordPolicy, AnEasilyGuessedPasswordIsWeak) {
  const auto problems = check_password(kScore2, {});
  ASSERT_THAT(codes(problems), ElementsAre("weak"));
  EXPECT_EQ(problems[0].message,
            "is too easy to guess (strength 2 of 4; at least 3 is needed): add more words or characters");
  EXPECT_THAT(codes_of(kScore3), IsEmpty());  // the lowest accepted score
}

TEST(PasswordPolicy, TheUserNameCountsAsAGuessForStrength) {
  EXPECT_THAT(codes_of("xq7vorlund2024!"), IsEmpty());
  EXPECT_THAT(codes_of("xq7vorlund2024!", named("xq7vorlund")), ElementsAre("weak", "contains_name"));
  EXPECT_THAT(codes_of("xq7vorlund2024!", named("kt", "xq7vorlund@example.com")), ElementsAre("weak", "contains_name"));
}

// --- Common passwords --------------------------------------------------------------------

TEST(PasswordPolicy, TheShippedListOfCommonPasswordsIsComparedCaseInsensitively) {
  EXPECT_TRUE(is_common_password("password"));
  EXPECT_TRUE(is_common_password("PassWord"));
  EXPECT_TRUE(is_common_password("password1"));
  EXPECT_TRUE(is_common_password("iloveyou!"));
  EXPECT_TRUE(is_common_password(normalized("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44")));  // full width
  EXPECT_FALSE(is_common_password("Tr0ub4dor&3"));
  EXPECT_FALSE(is_common_password(kStrong));
}

TEST(PasswordPolicy, AListedWordAmongDigitsAndPunctuationIsCommon) {
  EXPECT_TRUE(is_common_password("password123456!"));
  EXPECT_TRUE(is_common_password("!!!qwerty2024"));
  EXPECT_TRUE(is_common_password("2024 Snoopy!"));
  EXPECT_FALSE(is_common_password("passwordless"));  // letters around a listed word make another word
  // "abc" is listed, but a core of three letters among symbols is not looked up.
  EXPECT_TRUE(is_common_password("abc"));
  EXPECT_FALSE(is_common_password("!#7abc9%$"));
}

TEST(PasswordPolicy, ACommonPasswordIsRefusedEvenWhenRatedStrong) {
  constexpr std::string_view kPassword = "%8!3sammy#61&";
  EXPECT_GE(password_score(kPassword), kMinPasswordScore);
  const auto problems = check_password(kPassword, {});
  ASSERT_THAT(codes(problems), ElementsAre("common"));
  EXPECT_EQ(problems[0].message, "is on the list of common or breached passwords");
}

// --- Names -------------------------------------------------------------------------------

TEST(PasswordPolicy, APasswordHoldingTheUserNameIsRefused) {
  const auto problems = check_password("Kazuhiro-violet-staple-91", named("kazuhiro"));
  ASSERT_THAT(codes(problems), ElementsAre("contains_name"));
  EXPECT_EQ(problems[0].message, "must not contain your user name or e-mail name");
  EXPECT_THAT(codes_of("Kazuhiro-violet-staple-91", named("tanaka")), IsEmpty());
}

TEST(PasswordPolicy, APasswordHoldingTheEmailNameIsRefused) {
  EXPECT_THAT(codes_of("violet-k.tanaka-staple-91", named("kazuhiro", "K.Tanaka@example.com")),
              ElementsAre("contains_name"));
  EXPECT_THAT(codes_of("violet-example-staple-91", named("kazuhiro", "K.Tanaka@example.com")),
              IsEmpty());  // the domain is not a name
}

TEST(PasswordPolicy, NamesShorterThanThreeCharactersAreNotLookedFor) {
  EXPECT_THAT(codes_of("always-violet-staple-91", named("al", "al@example.com")), IsEmpty());
  EXPECT_THAT(codes_of("always-violet-staple-91", named("alw")), ElementsAre("contains_name"));
}

// --- History -----------------------------------------------------------------------------

TEST(PasswordPolicy, OneOfTheLastFivePasswordsIsRefusedAsReused) {
  std::vector<std::string> history;
  for (std::string_view old :
       {"first-old-passphrase-1", "second-old-passphrase-2", "third-old-passphrase-3", "fourth-old-passphrase-4"}) {
    history.push_back(hashed(old));
  }
  history.push_back(hashed(kStrong));  // the fifth newest
  const auto problems = check_password(kStrong, remembering(history));
  ASSERT_THAT(codes(problems), ElementsAre("reused"));
  EXPECT_EQ(problems[0].message, "must differ from your last 5 passwords");

  history.insert(history.begin(), hashed("fifth-old-passphrase-5"));  // now the sixth: forgotten
  ASSERT_EQ(history.size(), kPasswordHistory + 1);
  EXPECT_THAT(codes_of(kStrong, remembering(history)), IsEmpty());
}

// --- Acceptance --------------------------------------------------------------------------

TEST(PasswordPolicy, AStrongPasswordHasNoProblems) {
  EXPECT_EQ(password_score(kStrong), 4);
  const std::vector<std::string> history = {hashed("an-older-passphrase-9")};
  EXPECT_THAT(check_password(kStrong, {"kazuhiro", "k.tanaka@example.com", history}), IsEmpty());
}

TEST(PasswordPolicy, EveryProblemThatAppliesIsReported) {
  const std::vector<std::string> history = {hashed("qwerty123")};
  EXPECT_THAT(codes_of("qwerty123", {"qwerty", {}, history}),
              ElementsAre("too_short", "weak", "common", "contains_name", "reused"));
}

TEST(PasswordPolicy, NoMessageContainsThePassword) {
  const std::vector<std::string> history = {hashed("qwerty123")};
  for (const auto& problem : check_password("qwerty123", {"qwerty", {}, history})) {
    EXPECT_THAT(problem.message, Not(HasSubstr("qwerty"))) << problem.code;
  }
}

// --- Hashing -----------------------------------------------------------------------------

TEST(PasswordPolicy, AHashVerifiesItsOwnPasswordOnly) {
  const std::string hash = hashed(kStrong);
  EXPECT_TRUE(hash.starts_with("$argon2id$")) << hash;
  EXPECT_TRUE(verify_password(hash, kStrong));
  EXPECT_FALSE(verify_password(hash, "correct horse battery staple violeT"));
  EXPECT_FALSE(verify_password(hash, ""));
  EXPECT_NE(hashed(kStrong), hash);  // a fresh salt each time
}

TEST(PasswordPolicy, AMalformedHashVerifiesNothing) {
  using namespace std::string_view_literals;
  const std::string hash = hashed(kStrong);
  for (std::string_view bad : {""sv, "garbage"sv, "$argon2id$v=19$m=8,t=1,p=1$"sv, std::string_view(hash).substr(0, 40),
                               "$argon2id\0$v=19"sv}) {
    EXPECT_FALSE(verify_password(bad, kStrong)) << testing::PrintToString(bad);
  }
  EXPECT_FALSE(verify_password(hash + "AAAA", kStrong));
  EXPECT_FALSE(verify_password(std::string(500, 'A'), kStrong));
}

TEST(PasswordPolicy, AHashIsReadOnlyAsFarAsItsView) {
  // The view is not NUL-terminated: the hash is followed by more text in the same buffer.
  const std::string hash = hashed(kStrong);
  const std::string buffer = hash + "trailing text";
  const std::string_view view = std::string_view(buffer).substr(0, hash.size());
  EXPECT_TRUE(verify_password(view, kStrong));
  EXPECT_FALSE(password_needs_rehash(view, minimum_password_hash_cost()));
}

TEST(PasswordPolicy, ARaisedCostAsksForARehash) {
  const PasswordHashCost minimum = minimum_password_hash_cost();
  const std::string hash = hashed(kStrong);
  EXPECT_FALSE(password_needs_rehash(hash, minimum));
  EXPECT_TRUE(password_needs_rehash(hash, {minimum.ops + 1, minimum.memory_bytes}));
  EXPECT_TRUE(password_needs_rehash(hash, {minimum.ops, minimum.memory_bytes * 2}));
  EXPECT_TRUE(password_needs_rehash(hash, PasswordHashCost{}));
  EXPECT_TRUE(password_needs_rehash("garbage", minimum));
}

TEST(PasswordPolicy, ACostLibsodiumRefusesIsACryptoError) {
  auto result = hash_password(kStrong, {0, minimum_password_hash_cost().memory_bytes});
  ASSERT_FALSE(result);
  EXPECT_TRUE(result.error().is(Errc::crypto_error));
}

}  // namespace
}  // namespace torii::identity

#include "notify/channel_book.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::notify {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kHook = R"({"name":"ops hook","type":"webhook","url":"https://hooks.example/torii?k=1"})";
constexpr std::string_view kGivenSecret = "a-secret-given-by-its-receiver-0123456789";

bool contains(const Bytes& haystack, std::string_view needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

class ChannelBookTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    book_ = std::make_unique<ChannelBook>(
        *store_, *keys_, clock_, random_,
        [this](const std::string& org, const std::string& id) { changed_.push_back(org + "/" + id); });
  }

  ChannelOutcome create(std::string_view org, std::string_view id, std::string_view definition,
                        std::string_view min_severity = "") {
    auto outcome = book_->create(org, id, definition, min_severity, "user:u-1");
    EXPECT_TRUE(outcome) << (outcome ? "" : outcome.error().message);
    return outcome ? std::move(*outcome) : ChannelOutcome{};
  }

  std::unique_ptr<ChannelBook> book_;
  std::vector<std::string> changed_;
};

TEST_F(ChannelBookTest, AGeneratedSecretIsShownOnceAndNeverStoredOrShownInClear) {
  const auto outcome = create("org-1", "ops", kHook, "warning");
  ASSERT_TRUE(outcome.stored) << format_problems(outcome.problems);
  ASSERT_TRUE(outcome.secret_shown_once);
  const std::string secret = *outcome.secret_shown_once;
  EXPECT_GE(secret.size(), kMinSecretChars);
  EXPECT_EQ(outcome.stored->channel.secret, secret);
  EXPECT_EQ(changed_, (std::vector<std::string>{"org-1/ops"}));

  auto stored = store_->notification_channels().find("org-1", "ops");
  ASSERT_TRUE(stored && stored->has_value());
  const auto& record = **stored;
  EXPECT_EQ(record.type, "webhook");
  EXPECT_EQ(record.name, "ops hook");
  EXPECT_EQ(record.min_severity, "warning");
  EXPECT_EQ(record.key_id, kChannelKeyId);
  EXPECT_EQ(record.created_by, "user:u-1");
  EXPECT_FALSE(contains(record.definition_sealed, secret));
  EXPECT_FALSE(contains(record.definition_sealed, "hooks.example"));  // the whole definition is sealed

  auto view = book_->to_json(record);
  ASSERT_TRUE(view) << view.error().message;
  EXPECT_EQ(view->dump().find(secret), std::string::npos);
  EXPECT_EQ((*view)["definition"]["secret_set"], true);
  EXPECT_EQ((*view)["id"], "ops");
  EXPECT_EQ((*view)["type"], "webhook");
  EXPECT_EQ((*view)["min_severity"], "warning");
  EXPECT_EQ((*view)["enabled"], true);

  auto opened = book_->open(record);  // what delivery uses has it
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(opened->secret, secret);
  EXPECT_EQ(opened->webhook.target, "/torii?k=1");
}

TEST_F(ChannelBookTest, AGivenSecretIsNotShownBackAndOtherTypesHaveNone) {
  const std::string hook = R"({"name":"ops hook","type":"webhook","url":"https://hooks.example/t","secret":")" +
                           std::string(kGivenSecret) + "\"}";
  const auto given = create("org-1", "ops", hook);
  ASSERT_TRUE(given.stored) << format_problems(given.problems);
  EXPECT_FALSE(given.secret_shown_once);
  EXPECT_EQ(given.stored->record.min_severity, "none");  // the default: only rules that name it
  const auto mail = create("org-1", "mail", R"({"name":"on call","type":"email","to":["oncall@example.org"]})");
  ASSERT_TRUE(mail.stored) << format_problems(mail.problems);
  EXPECT_FALSE(mail.secret_shown_once);
}

TEST_F(ChannelBookTest, EveryProblemIsReportedWithItsPathAndNothingIsStored) {
  auto outcome =
      book_->create("org-1", "bad id!", R"({"name":"x","type":"webhook","url":"http://h/"})", "urgent", "user:u-1");
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_FALSE(outcome->stored);
  EXPECT_FALSE(outcome->secret_shown_once);
  std::vector<std::string> paths;
  for (const auto& p : outcome->problems) paths.push_back(p.path);
  EXPECT_NE(std::find(paths.begin(), paths.end(), "id"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "min_severity"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "url"), paths.end());

  auto not_json = book_->create("org-1", "ok", "{", "", "user:u-1");
  ASSERT_TRUE(not_json);
  EXPECT_EQ(not_json->problems, (std::vector<Problem>{{"", "not valid JSON"}}));

  ASSERT_TRUE(create("org-1", "ops", kHook).stored);
  auto taken = book_->create("org-1", "ops", kHook, "", "user:u-1");
  ASSERT_TRUE(taken);
  EXPECT_FALSE(taken->stored);
  EXPECT_FALSE(taken->secret_shown_once);  // a refused create shows no secret
  EXPECT_EQ(taken->problems, (std::vector<Problem>{{"id", "is already in use"}}));

  auto listed = book_->list("org-1");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 1U);
  EXPECT_EQ(changed_, (std::vector<std::string>{"org-1/ops"}));
}

TEST_F(ChannelBookTest, ReplaceKeepsTheStoredSecretUnlessANewOneIsGiven) {
  const auto created = create("org-1", "ops", kHook);
  ASSERT_TRUE(created.stored && created.secret_shown_once);
  const std::string secret = *created.secret_shown_once;
  clock_.advance(5s);

  auto edited = book_->replace("org-1", "ops", R"({"name":"renamed","type":"webhook","url":"https://other.example/"})",
                               "critical", "user:u-2");
  ASSERT_TRUE(edited) << edited.error().message;
  ASSERT_TRUE(edited->stored) << format_problems(edited->problems);
  EXPECT_FALSE(edited->secret_shown_once);
  EXPECT_EQ(edited->stored->channel.secret, secret);
  EXPECT_EQ(edited->stored->record.name, "renamed");
  EXPECT_EQ(edited->stored->record.min_severity, "critical");
  EXPECT_EQ(edited->stored->record.created_by, "user:u-1");  // the author stays
  EXPECT_EQ(edited->stored->record.updated_at, to_unix_millis(clock_.now()));

  const std::string with_secret = R"({"name":"renamed","type":"webhook","url":"https://other.example/","secret":")" +
                                  std::string(kGivenSecret) + "\"}";
  auto rotated = book_->replace("org-1", "ops", with_secret, "critical", "user:u-2");
  ASSERT_TRUE(rotated && rotated->stored);
  EXPECT_FALSE(rotated->secret_shown_once);
  auto record = book_->find("org-1", "ops");
  ASSERT_TRUE(record && record->has_value());
  auto opened = book_->open(**record);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->secret, kGivenSecret);

  // From another type to a webhook: a fresh secret, shown once.
  ASSERT_TRUE(create("org-1", "bus", R"({"name":"bus","type":"mqtt","devices":["backend-1"]})").stored);
  auto to_hook = book_->replace("org-1", "bus", kHook, "", "user:u-2");
  ASSERT_TRUE(to_hook && to_hook->stored);
  ASSERT_TRUE(to_hook->secret_shown_once);
  EXPECT_NE(*to_hook->secret_shown_once, secret);

  auto missing = book_->replace("org-1", "nope", kHook, "", "user:u-2");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(Errc::not_found));
  EXPECT_EQ(changed_, (std::vector<std::string>{"org-1/ops", "org-1/ops", "org-1/ops", "org-1/bus", "org-1/bus"}));
}

// A stored definition this version no longer accepts (an mqtt channel with the former
// "topic") does not break the list: it shows with its problem, sends nothing, and can be
// replaced or deleted.
TEST_F(ChannelBookTest, AStoredDefinitionThatNoLongerParsesIsListedWithItsProblemAndCanBeReplaced) {
  ASSERT_TRUE(create("org-1", "bus", R"({"name":"bus","type":"mqtt","devices":["backend-1"]})").stored);
  auto record = store_->notification_channels().find("org-1", "bus");
  ASSERT_TRUE(record && record->has_value());
  const std::string former = R"({"name":"bus","type":"mqtt","topic":"alerts/ops"})";
  auto sealed = keys_->seal(kChannelKeyId, as_bytes(former), channel_associated_data("org-1", "bus"));
  ASSERT_TRUE(sealed);
  (*record)->definition_sealed = std::move(*sealed);
  ASSERT_TRUE(store_->notification_channels().replace(**record));

  const auto opened = book_->open(**record);
  ASSERT_FALSE(opened);
  EXPECT_TRUE(opened.error().is(Errc::corrupt));
  const auto shown = book_->to_json(**record);
  ASSERT_TRUE(shown) << shown.error().message;
  EXPECT_TRUE((*shown)["definition"].is_null());
  const auto problem = (*shown)["problem"].get<std::string>();
  EXPECT_NE(problem.find("devices: required"), std::string::npos) << problem;
  EXPECT_NE(problem.find("topic: "), std::string::npos) << problem;

  auto replaced =
      book_->replace("org-1", "bus", R"({"name":"bus","type":"mqtt","devices":["backend-2"]})", "", "user:u-2");
  ASSERT_TRUE(replaced && replaced->stored);
  auto again = store_->notification_channels().find("org-1", "bus");
  ASSERT_TRUE(again && again->has_value());
  EXPECT_FALSE(book_->to_json(**again)->contains("problem"));
}

TEST_F(ChannelBookTest, AnotherOrganisationsChannelIsUnreachableAndASealedDefinitionIsBoundToItsRow) {
  ASSERT_TRUE(create("org-1", "ops", kHook).stored);
  auto elsewhere = book_->find("org-2", "ops");
  ASSERT_TRUE(elsewhere);
  EXPECT_FALSE(elsewhere->has_value());
  auto listed = book_->list("org-2");
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
  auto removed = book_->remove("org-2", "ops");
  ASSERT_TRUE(removed);
  EXPECT_FALSE(*removed);
  EXPECT_FALSE(book_->set_enabled("org-2", "ops", false));
  auto replaced = book_->replace("org-2", "ops", kHook, "", "user:u-9");
  ASSERT_FALSE(replaced);
  EXPECT_TRUE(replaced.error().is(Errc::not_found));

  // Sealed bytes moved to another organisation's row do not open there.
  auto record = book_->find("org-1", "ops");
  ASSERT_TRUE(record && record->has_value());
  auto moved = **record;
  moved.organisation_id = "org-2";
  auto opened = book_->open(moved);
  ASSERT_FALSE(opened);
  EXPECT_TRUE(opened.error().is(Errc::authentication_failed));
}

TEST_F(ChannelBookTest, DisablingAndRemovingAreChanges) {
  ASSERT_TRUE(create("org-1", "ops", kHook).stored);
  ASSERT_TRUE(book_->set_enabled("org-1", "ops", false));
  auto record = book_->find("org-1", "ops");
  ASSERT_TRUE(record && record->has_value());
  EXPECT_FALSE((*record)->enabled);
  auto replaced = book_->replace("org-1", "ops", kHook, "", "user:u-1");
  ASSERT_TRUE(replaced && replaced->stored);
  EXPECT_FALSE(replaced->stored->record.enabled);  // an edit does not enable it again
  auto removed = book_->remove("org-1", "ops");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  auto again = book_->remove("org-1", "ops");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  EXPECT_EQ(changed_, (std::vector<std::string>{"org-1/ops", "org-1/ops", "org-1/ops", "org-1/ops"}));
}

TEST(ChannelSeverity, AnAlertReachesAChannelAtOrAboveItsFloorAndNoneTakesOnlyRules) {
  EXPECT_TRUE(severity_reaches("critical", "info"));
  EXPECT_TRUE(severity_reaches("warning", "warning"));
  EXPECT_FALSE(severity_reaches("info", "warning"));
  EXPECT_FALSE(severity_reaches("critical", "none"));
  EXPECT_FALSE(severity_reaches("unknown", "info"));
  EXPECT_TRUE(valid_channel_id("ops.hook:1_a-b"));
  EXPECT_FALSE(valid_channel_id(""));
  EXPECT_FALSE(valid_channel_id(std::string(65, 'a')));
  EXPECT_FALSE(valid_min_severity("urgent"));
}

}  // namespace
}  // namespace torii::notify

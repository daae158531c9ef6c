#include "decision/rule_book.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "keys/key_ring.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::decision {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::string_view kHot = R"({"name":"hot","selector":{"profiles":["env"]},
  "condition":"temperature > 30","severity":"critical","actions":[{"type":"alert"}]})";

class RuleBookTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(store_->device_profiles().put(
        {"env", "org-1", "Environment", std::string(policy::sample_environment_profile_json()), 1, 0}));
    ASSERT_TRUE(store_->devices().insert(device("fan-1", "org-1", "env")));
    ASSERT_TRUE(store_->devices().insert(device("sensor-1", "org-1", "env")));
    ASSERT_TRUE(store_->devices().insert(device("elsewhere-1", "org-2", "env")));
    book_ = std::make_unique<RuleBook>(*store_, *keys_, clock_, random_,
                                       [this](const std::string& id) { changed_.push_back(id); });
  }

  static store::DeviceRecord device(std::string id, std::string organisation, std::string profile) {
    store::DeviceRecord d;
    d.id = std::move(id);
    d.organisation_id = std::move(organisation);
    d.name = d.id;
    d.profile_id = std::move(profile);
    return d;
  }

  static Author operator_of(std::string organisation) {
    return {"user:op-1", std::move(organisation), identity::builtin_role_permissions(identity::kRoleOperator)};
  }

  store::RuleRecord created(std::string_view definition, bool enabled = true) {
    auto outcome = book_->create(operator_of("org-1"), definition, enabled);
    EXPECT_TRUE(outcome) << (outcome ? "" : outcome.error().message);
    if (!outcome || !outcome->rule) {
      ADD_FAILURE() << "not created";
      return {};
    }
    return *outcome->rule;
  }

  std::unique_ptr<RuleBook> book_;
  std::vector<std::string> changed_;
};

TEST_F(RuleBookTest, ARuleIsStoredInItsNormalFormOwnedByItsAuthorAndTheEngineIsTold) {
  const auto rule = created(kHot);
  EXPECT_EQ(rule.organisation_id, "org-1");
  EXPECT_EQ(rule.name, "hot");
  EXPECT_EQ(rule.version, 1U);
  EXPECT_EQ(rule.created_by, "user:op-1");
  EXPECT_THAT(changed_, ElementsAre(rule.id));
  // What is stored parses to what was written.
  auto parsed = rules::parse_rule(rule.definition);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->condition.text(), "temperature > 30");
  EXPECT_EQ(parsed->severity, rules::Severity::critical);
  const auto shown = RuleBook::describe(rule);
  EXPECT_EQ(shown["definition"]["name"], "hot");
  EXPECT_EQ(shown["author"], "user:op-1");
  EXPECT_TRUE(shown["last_fired_at"].is_null());
}

TEST_F(RuleBookTest, EveryProblemOfADefinitionIsReportedWithItsPathAndNothingIsStored) {
  auto outcome = book_->create(
      operator_of("org-1"),
      R"({"name":"bad","condition":"temperature >","actions":[{"type":"command","command":"set_actuator"}]})", true);
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_FALSE(outcome->rule);
  ASSERT_GE(outcome->problems.size(), 2U);
  for (const auto& p : outcome->problems) EXPECT_THAT(p.path, ::testing::StartsWith("definition")) << p.message;
  auto listed = store_->rules().list("org-1");
  ASSERT_TRUE(listed);
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_THAT(changed_, IsEmpty());
}

// IIIT I7: a rule commands only what its author may command, in its own organisation, and
// only commands the device's profile takes.
TEST_F(RuleBookTest, ACommandActionNeedsAnAuthorWhoMayCommandADeviceOfTheOrganisation) {
  const std::string fan_on = R"({"name":"cool","condition":"temperature > 30","actions":[
      {"type":"command","device":"fan-1","command":"set_actuator","params":{"on":true}}]})";
  auto viewer =
      book_->create({"user:v-1", "org-1", identity::builtin_role_permissions(identity::kRoleViewer)}, fan_on, true);
  ASSERT_TRUE(viewer);
  EXPECT_FALSE(viewer->rule);
  EXPECT_THAT(viewer->problems, ElementsAre(Field(&RuleProblem::message, HasSubstr("devices.command"))));

  auto other_org = book_->create(operator_of("org-2"), fan_on, true);
  ASSERT_TRUE(other_org);
  EXPECT_FALSE(other_org->rule);
  EXPECT_THAT(other_org->problems, ElementsAre(Field(&RuleProblem::path, "definition.actions[0].device")));

  auto unknown_command = book_->create(operator_of("org-1"),
                                       R"({"name":"x","condition":"temperature > 30","actions":[
          {"type":"command","device":"fan-1","command":"reboot"}]})",
                                       true);
  ASSERT_TRUE(unknown_command);
  EXPECT_FALSE(unknown_command->rule);
  EXPECT_FALSE(unknown_command->problems.empty());

  EXPECT_FALSE(created(fan_on).id.empty());
}

TEST_F(RuleBookTest, AChangeIsANewVersionFromTheVersionItWasMadeFromAndRestartsTheState) {
  const auto rule = created(kHot);
  ASSERT_TRUE(store_->rules().save_states({{rule.id, "sensor-1", "device:sensor-1", Bytes{1}, 0}}));
  clock_.advance(1min);
  const std::string hotter = R"({"name":"hotter","condition":"temperature > 35","actions":[{"type":"alert"}]})";
  auto changed = book_->change({"user:admin-2", "org-1", identity::builtin_role_permissions(identity::kRoleOrgAdmin)},
                               rule.id, hotter, false, 1);
  ASSERT_TRUE(changed) << changed.error().message;
  ASSERT_TRUE(changed->rule);
  EXPECT_EQ(changed->rule->version, 2U);
  EXPECT_EQ(changed->rule->name, "hotter");
  EXPECT_FALSE(changed->rule->enabled);
  EXPECT_EQ(changed->rule->updated_by, "user:admin-2");  // answers for its commands now
  EXPECT_EQ(changed->rule->created_by, "user:op-1");
  auto states = store_->rules().states(rule.id);
  ASSERT_TRUE(states);
  EXPECT_THAT(*states, IsEmpty());
  EXPECT_THAT(changed_, ElementsAre(rule.id, rule.id));

  // Made from version 1 while version 2 exists: refused, nothing changes.
  auto stale = book_->change(operator_of("org-1"), rule.id, kHot, true, 1);
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->rule);
  EXPECT_THAT(stale->problems, ElementsAre(Field(&RuleProblem::path, "version")));
  auto versions = store_->rules().versions(rule.id);
  ASSERT_TRUE(versions);
  EXPECT_EQ(versions->size(), 2U);

  // Another organisation's rule does not exist for them.
  auto foreign = book_->change(operator_of("org-2"), rule.id, kHot, true, 2);
  ASSERT_FALSE(foreign);
  EXPECT_TRUE(foreign.error().is(Errc::not_found));
  auto removed_by_other = book_->remove("org-2", rule.id);
  ASSERT_TRUE(removed_by_other);
  EXPECT_FALSE(*removed_by_other);
  auto removed = book_->remove("org-1", rule.id);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
}

// Decision Trigger, dry run: stored telemetry replayed through the definition.
TEST_F(RuleBookTest, ADryRunShowsWhenTheRuleWouldHaveFiredOverStoredTelemetry) {
  const auto key_id = keys::device_key_id("sensor-1");
  ASSERT_TRUE(keys_->ensure_data_key(key_id, "device"));
  const UnixMillis start = to_unix_millis(clock_.now()) - 3'600'000;
  std::vector<store::TelemetryRecord> rows;
  const std::vector<double> values{20, 25, 31, 33, 22, 21};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const UnixMillis at = start + static_cast<UnixMillis>(i) * 60'000;
    const std::string payload = R"({"temperature":)" + std::to_string(values[i]) + "}";
    auto sealed = keys_->seal(key_id, as_bytes(payload),
                              keys::telemetry_associated_data("sensor-1", store::kTelemetryKindTelemetry, at, ""));
    ASSERT_TRUE(sealed);
    rows.push_back({0, "sensor-1", std::string(store::kTelemetryKindTelemetry), "", at, key_id, *sealed});
  }
  ASSERT_TRUE(store_->telemetry().append(rows));

  auto run = book_->dry_run(operator_of("org-1"), kHot, 2h);
  ASSERT_TRUE(run) << run.error().message;
  ASSERT_TRUE(*run);
  const auto& devices = (*run)->devices;
  ASSERT_EQ(devices.size(), 2U);  // fan-1 and sensor-1 are in profile env; elsewhere-1 is not theirs
  const auto sensor =
      std::find_if(devices.begin(), devices.end(), [](const auto& d) { return d.device_id == "sensor-1"; });
  ASSERT_NE(sensor, devices.end());
  EXPECT_EQ(sensor->messages, values.size());
  ASSERT_EQ(sensor->events.size(), 2U);
  EXPECT_EQ(sensor->events[0].transition, rules::Transition::fired);
  EXPECT_EQ(sensor->events[0].at, start + 2 * 60'000);
  EXPECT_EQ(sensor->events[1].transition, rules::Transition::cleared);
  EXPECT_EQ(sensor->events[1].at, start + 4 * 60'000);

  auto too_long = book_->dry_run(operator_of("org-1"), kHot, 100h);
  ASSERT_TRUE(too_long);
  ASSERT_FALSE(*too_long);
  EXPECT_THAT(too_long->error(), ElementsAre(Field(&RuleProblem::path, "hours")));
  auto stored = store_->rules().list("org-1");
  ASSERT_TRUE(stored);
  EXPECT_THAT(*stored, IsEmpty());  // a dry run stores nothing
}

// The rules shipped under examples/ (make demo stores them) are valid.
TEST_F(RuleBookTest, TheExampleRulesAreAccepted) {
  const char* source_dir = std::getenv("TORII_SOURCE_DIR");  // NOLINT(concurrency-mt-unsafe): one thread
  ASSERT_NE(source_dir, nullptr) << "TORII_SOURCE_DIR is set by CTest";
  std::size_t seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(source_dir) / "examples/rules")) {
    std::ifstream in(entry.path());
    const std::string text{std::istreambuf_iterator<char>(in), {}};
    auto outcome = book_->create(operator_of("org-1"), text, true);
    ASSERT_TRUE(outcome) << outcome.error().message;
    EXPECT_TRUE(outcome->rule) << entry.path() << ": " << to_json(outcome->problems).dump();
    ++seen;
  }
  EXPECT_GT(seen, 0U);
}

}  // namespace
}  // namespace torii::decision

// The rule routes of the console API (the Decision Trigger), through the whole request chain,
// with a real store, key ring and rule book: definitions refused with every problem at its
// field, versions, the dry run on the work pool, and organisations kept apart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "console/api.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "decision/rule_book.h"
#include "identity/roles.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::console {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json definition(const std::string& condition) {
  return {{"name", "hot room"},    {"selector", {{"devices", {"sensor-1"}}}}, {"condition", condition}, {"for", "10s"},
          {"severity", "warning"}, {"actions", {{{"type", "alert"}}}}};
}

class RuleApiTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    identity::AccountsOptions options;
    options.hash_cost = identity::minimum_password_hash_cost();
    accounts_ = std::make_unique<identity::Accounts>(*store_, *keys_, clock_, random_, options, nullptr);
    people_ = std::make_unique<identity::People>(*store_, clock_, random_, identity::PeopleOptions{options.hash_cost},
                                                 nullptr);
    tokens_ = std::make_unique<identity::ApiTokens>(*store_, clock_, random_,
                                                    identity::ApiTokenOptions{std::chrono::hours(24) * 90}, nullptr);
    book_ = std::make_unique<decision::RuleBook>(*store_, *keys_, clock_, random_, [](const std::string&) {});
    ApiContext context{config_,
                       *store_,
                       *accounts_,
                       *people_,
                       *tokens_,
                       pool_,
                       clock_,
                       [](const events::SecurityEvent&) {},
                       "https://localhost:8443",
                       nullptr,
                       nullptr,
                       keys_.get(),
                       {}};
    context.rules = book_.get();
    api_ = std::make_unique<Api>(std::move(context));
    ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
    ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
    store::DeviceRecord d;
    d.id = "sensor-1";
    d.organisation_id = "default";
    d.name = d.id;
    ASSERT_TRUE(store_->devices().insert(d));
    admin_ = add_person("admin", identity::kRoleOrgAdmin, "default");
  }

  std::string add_person(const std::string& name, std::string_view role, const std::string& organisation) {
    store::UserRecord u;
    u.id = "u-" + name;
    u.organisation_id = organisation;
    u.username = name;
    u.email = name + "@example.org";
    u.role = std::string(role);
    u.password_hash = std::string(identity::kNoPassword);
    u.created_at = to_unix_millis(clock_.now());
    EXPECT_TRUE(store_->users().insert(u));
    return u.id;
  }

  Response call(const std::string& method, const std::string& target, const std::string& user_id,
                const json& body = nullptr) {
    const std::string session = crypto::random_token(random_);
    const UnixMillis now = to_unix_millis(clock_.now());
    std::array<std::uint8_t, 8> handle{};
    random_.fill(handle);
    EXPECT_TRUE(
        store_->console_sessions().insert({identity::session_id_hash(session), hex_encode(handle), user_id,
                                           std::string(store::kSessionStageFull), now, now, now, "test", "test"}));
    Request r;
    r.method = method;
    r.path = target;
    r.source = "192.0.2.7:4000";
    r.headers = {{"cookie", std::string(kSessionCookie) + "=" + session}, {"x-csrf-token", csrf_token(session)}};
    if (!body.is_null()) {
      r.headers.emplace_back("content-type", "application/json");
      r.body = body.dump();
    }
    Response out;
    boost::asio::io_context io;
    boost::asio::co_spawn(io, api_->handle(std::move(r)), [&](const std::exception_ptr& e, Response response) {
      EXPECT_FALSE(e);
      out = std::move(response);
    });
    io.run();
    return out;
  }

  static json body(const Response& r) { return json::parse(r.body, nullptr, false); }

  config::Config config_;
  WorkPool pool_{1, 4};
  std::unique_ptr<identity::Accounts> accounts_;
  std::unique_ptr<identity::People> people_;
  std::unique_ptr<identity::ApiTokens> tokens_;
  std::unique_ptr<decision::RuleBook> book_;
  std::unique_ptr<Api> api_;
  std::string admin_;
};

TEST_F(RuleApiTest, AMistakeIsRefusedAtItsFieldAndPositionAndAFixedRuleIsStored) {
  const Response refused =
      call("POST", "/api/v1/rules", admin_, {{"definition", definition("avg(temperature, 5m) >")}});
  ASSERT_EQ(refused.status, 422) << refused.body;
  const json problems = body(refused)["errors"];
  ASSERT_EQ(problems.size(), 1u) << refused.body;
  EXPECT_EQ(problems[0]["field"], "definition.condition");
  EXPECT_THAT(problems[0]["message"].get<std::string>(), HasSubstr("22"));

  const Response made = call("POST", "/api/v1/rules", admin_, {{"definition", definition("temperature > 30")}});
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string id = body(made)["id"];
  EXPECT_EQ(body(made)["version"], 1);
  const Response listed = call("GET", "/api/v1/rules", admin_);
  ASSERT_EQ(listed.status, 200) << listed.body;
  const json rules = body(listed)["rules"];
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["id"], id);
  EXPECT_TRUE(rules[0]["last_fired_at"].is_null());

  // A change names the version it replaces; an older one is a conflict.
  const json next = {{"definition", definition("temperature > 31")}, {"version", 1}};
  EXPECT_EQ(call("PUT", "/api/v1/rules/" + id, admin_, next).status, 200);
  EXPECT_EQ(call("PUT", "/api/v1/rules/" + id, admin_, next).status, 409);

  // Another organisation's rule does not exist for its people.
  EXPECT_EQ(call("GET", "/api/v1/rules/" + id, add_person("otto", identity::kRoleOrgAdmin, "acme")).status, 404);
}

// The dry run reads the store on the work pool (a coroutine handing its job over): a valid
// definition gets the window it looked at, a mistake the same refusal as on saving.
TEST_F(RuleApiTest, ADryRunAnswersWhatItLookedAtAndRefusesAMistakeAsSavingDoes) {
  for (int i = 0; i < 3; ++i) {
    const Response run =
        call("POST", "/api/v1/rules/dry-run", admin_, {{"definition", definition("temperature > 30")}, {"hours", 2}});
    ASSERT_EQ(run.status, 200) << run.body;
    const json answer = body(run);
    EXPECT_TRUE(answer.contains("from") && answer.contains("to")) << run.body;
    EXPECT_TRUE(answer["devices"].is_array()) << run.body;
  }
  const Response refused =
      call("POST", "/api/v1/rules/dry-run", admin_, {{"definition", definition("avg(temperature, 5m) >")}});
  ASSERT_EQ(refused.status, 422) << refused.body;
  EXPECT_EQ(body(refused)["errors"][0]["field"], "definition.condition");
}

}  // namespace
}  // namespace torii::console

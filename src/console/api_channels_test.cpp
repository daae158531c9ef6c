// The notification channel routes of the console API, through the whole request chain, with a
// real store and key ring; the server's test hook is a recorder.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "console/api.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "identity/roles.h"
#include "notify/channel_book.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::console {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const json kHook = {{"name", "ops hook"}, {"type", "webhook"}, {"url", "https://hooks.example/torii/p4th?q=1"}};

class ChannelApiTest : public testing::KeyedStoreTest {
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
    book_ = std::make_unique<notify::ChannelBook>(*store_, *keys_, clock_, random_);
    ApiContext context{config_,
                       *store_,
                       *accounts_,
                       *people_,
                       *tokens_,
                       pool_,
                       clock_,
                       [this](const events::SecurityEvent& e) { events_.push_back(e); },
                       "https://localhost:8443",
                       nullptr,
                       nullptr,
                       keys_.get(),
                       {}};
    context.channels = book_.get();
    context.test_channel = [this](const std::string& organisation, const std::string& channel) -> Result<std::string> {
      tested_.push_back(organisation + "/" + channel);
      return std::string("0123456789abcdef0123456789abcdef");
    };
    api_ = std::make_unique<Api>(std::move(context));
    ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
    ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
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

  // A fully signed-in session of the person, authenticated now: its cookie value.
  std::string session_of(const std::string& user_id) {
    std::string id = crypto::random_token(random_);
    const UnixMillis now = to_unix_millis(clock_.now());
    std::array<std::uint8_t, 8> handle{};
    random_.fill(handle);
    EXPECT_TRUE(
        store_->console_sessions().insert({identity::session_id_hash(id), hex_encode(handle), user_id,
                                           std::string(store::kSessionStageFull), now, now, now, "test", "test"}));
    return id;
  }

  Response call_in(const std::string& session, const std::string& method, const std::string& target,
                   const std::string& body = "") {
    Request r;
    r.method = method;
    const auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    r.source = "192.0.2.7:4000";
    r.headers = {{"cookie", std::string(kSessionCookie) + "=" + session}, {"x-csrf-token", csrf_token(session)}};
    if (!body.empty()) {
      r.headers.emplace_back("content-type", "application/json");
      r.body = body;
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

  Response call(const std::string& method, const std::string& target, const std::string& user_id,
                const std::string& body = "") {
    return call_in(session_of(user_id), method, target, body);
  }

  static json body(const Response& r) { return json::parse(r.body, nullptr, false); }

  static std::set<std::string> problem_fields(const Response& r) {
    std::set<std::string> fields;
    const json answer = body(r);
    for (const auto& e : answer["errors"]) fields.insert(e["field"].get<std::string>());
    return fields;
  }

  [[nodiscard]] std::string events_text() const {
    std::string out;
    for (const auto& e : events_) out += e.action + " " + e.object + " " + e.details.dump() + "\n";
    return out;
  }

  config::Config config_;
  WorkPool pool_{1, 4};
  std::unique_ptr<identity::Accounts> accounts_;
  std::unique_ptr<identity::People> people_;
  std::unique_ptr<identity::ApiTokens> tokens_;
  std::unique_ptr<notify::ChannelBook> book_;
  std::unique_ptr<Api> api_;
  std::vector<events::SecurityEvent> events_;
  std::vector<std::string> tested_;
  std::string admin_;
};

TEST_F(ChannelApiTest, AGeneratedSecretIsInTheCreatingAnswerOnlyAndNeverInTheLog) {
  const Response made = call("POST", "/api/v1/channels", admin_,
                             json{{"id", "ops"}, {"definition", kHook}, {"min_severity", "warning"}}.dump());
  ASSERT_EQ(made.status, 201) << made.body;
  const json created = body(made);
  const std::string secret = created.value("secret", "");
  ASSERT_GE(secret.size(), notify::kMinSecretChars);
  EXPECT_EQ(created["id"], "ops");
  EXPECT_EQ(created["min_severity"], "warning");
  EXPECT_EQ(created["definition"]["secret_set"], true);
  EXPECT_EQ(created["definition"].count("secret"), 0U);

  const Response shown = call("GET", "/api/v1/channels/ops", admin_);
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_THAT(shown.body, Not(HasSubstr(secret)));
  EXPECT_EQ(body(shown).count("secret"), 0U);
  const Response listed = call("GET", "/api/v1/channels", admin_);
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_THAT(listed.body, Not(HasSubstr(secret)));
  ASSERT_EQ(body(listed)["channels"].size(), 1U);

  const Response changed = call("PUT", "/api/v1/channels/ops", admin_,
                                json{{"definition", kHook}, {"min_severity", "critical"}, {"enabled", false}}.dump());
  ASSERT_EQ(changed.status, 200) << changed.body;
  EXPECT_THAT(changed.body, Not(HasSubstr(secret)));  // the stored secret is kept, not shown
  EXPECT_EQ(body(changed)["enabled"], false);
  EXPECT_EQ(body(changed)["min_severity"], "critical");

  const std::string log = events_text();
  EXPECT_THAT(log, HasSubstr("channel.created"));
  EXPECT_THAT(log, HasSubstr("channel.changed"));
  EXPECT_THAT(log, HasSubstr("hooks.example"));
  EXPECT_THAT(log, Not(HasSubstr(secret)));
  EXPECT_THAT(log, Not(HasSubstr("p4th")));  // nor the URL's path or query
  EXPECT_THAT(log, Not(HasSubstr("q=1")));

  const Response test = call("POST", "/api/v1/channels/ops/test", admin_, "{}");
  ASSERT_EQ(test.status, 202) << test.body;
  EXPECT_EQ(body(test)["delivery"], "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(tested_, (std::vector<std::string>{"default/ops"}));

  EXPECT_EQ(call("DELETE", "/api/v1/channels/ops", admin_).status, 204);
  EXPECT_EQ(call("GET", "/api/v1/channels/ops", admin_).status, 404);
  EXPECT_THAT(events_text(), HasSubstr("channel.deleted"));
}

TEST_F(ChannelApiTest, BadInputIsRefusedWithEveryProblemUnderItsField) {
  json bad = kHook;
  bad["url"] = "http://hooks.example/";
  const Response r = call("POST", "/api/v1/channels", admin_,
                          json{{"id", "no spaces"}, {"definition", bad}, {"min_severity", "loud"}}.dump());
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(problem_fields(r), (std::set<std::string>{"id", "min_severity", "definition.url"}));
  EXPECT_TRUE(events_.empty());

  ASSERT_EQ(call("POST", "/api/v1/channels", admin_, json{{"id", "ops"}, {"definition", kHook}}.dump()).status, 201);
  const Response taken = call("POST", "/api/v1/channels", admin_, json{{"id", "ops"}, {"definition", kHook}}.dump());
  EXPECT_EQ(taken.status, 422) << taken.body;
  EXPECT_EQ(problem_fields(taken), (std::set<std::string>{"id"}));
  EXPECT_THAT(taken.body, Not(HasSubstr("secret\"")));
}

TEST_F(ChannelApiTest, ChangesNeedAStepUpAndViewersAreRefused) {
  ASSERT_EQ(call("POST", "/api/v1/channels", admin_, json{{"id", "ops"}, {"definition", kHook}}.dump()).status, 201);
  const std::string session = session_of(admin_);
  clock_.advance(std::chrono::minutes(6));
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"POST", "/api/v1/channels"}, {"PUT", "/api/v1/channels/ops"}, {"DELETE", "/api/v1/channels/ops"}}) {
    const Response r = call_in(session, method, target, method == "DELETE" ? "" : "{}");
    EXPECT_EQ(r.status, 403) << method << " " << target;
    EXPECT_THAT(r.body, HasSubstr("step_up_required")) << method << " " << target;
  }
  EXPECT_EQ(call_in(session, "GET", "/api/v1/channels/ops").status, 200);

  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  EXPECT_EQ(call("GET", "/api/v1/channels", viewer).status, 403);
  EXPECT_EQ(call("POST", "/api/v1/channels", viewer, json{{"id", "x"}, {"definition", kHook}}.dump()).status, 403);
  const std::string auditor = add_person("auditor", identity::kRoleAuditor, "default");
  EXPECT_EQ(call("GET", "/api/v1/channels/ops", auditor).status, 200);
  EXPECT_EQ(call("DELETE", "/api/v1/channels/ops", auditor).status, 403);
}

TEST_F(ChannelApiTest, AnotherOrganisationsChannelDoesNotExist) {
  ASSERT_EQ(call("POST", "/api/v1/channels", admin_, json{{"id", "ops"}, {"definition", kHook}}.dump()).status, 201);
  const std::string other = add_person("other", identity::kRoleOrgAdmin, "acme");
  EXPECT_EQ(call("GET", "/api/v1/channels/ops", other).status, 404);
  EXPECT_EQ(call("PUT", "/api/v1/channels/ops", other, json{{"definition", kHook}}.dump()).status, 404);
  EXPECT_EQ(call("DELETE", "/api/v1/channels/ops", other).status, 404);
  EXPECT_EQ(call("POST", "/api/v1/channels/ops/test", other, "{}").status, 404);
  const Response listed = call("GET", "/api/v1/channels", other);
  ASSERT_EQ(listed.status, 200);
  EXPECT_TRUE(body(listed)["channels"].empty());
  EXPECT_EQ(call("GET", "/api/v1/channels?organisation=default", other).status, 403);
  EXPECT_TRUE(tested_.empty());
  // The same id in another organisation is another channel.
  EXPECT_EQ(call("POST", "/api/v1/channels", other, json{{"id", "ops"}, {"definition", kHook}}.dump()).status, 201);
}

}  // namespace
}  // namespace torii::console

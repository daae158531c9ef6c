#include "console/api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "console/http_server.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "identity/roles.h"
#include "identity/setup_token.h"
#include "pki/certificate_authority.h"
#include "policy/profile.h"
#include "testing/fakes.h"
#include "testing/keyed_store.h"
#include "testing/temp_dir.h"

namespace torii::console {
namespace {

std::string read_doc(const std::string& name) {
  const char* source_dir = std::getenv("TORII_SOURCE_DIR");
  EXPECT_NE(source_dir, nullptr);
  std::ifstream in(std::string(source_dir ? source_dir : ".") + "/docs/" + name);
  EXPECT_TRUE(in) << name;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The cells of every table row of the page whose first cell matches `first`.
std::vector<std::vector<std::string>> rows(const std::string& page, const std::regex& first) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("| ")) continue;
    std::vector<std::string> cells;
    std::size_t at = 1;
    while (at < line.size()) {
      const auto end = line.find('|', at);
      if (end == std::string::npos) break;
      std::string cell = line.substr(at, end - at);
      while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
      while (!cell.empty() && cell.back() == ' ') cell.pop_back();
      cells.push_back(cell);
      at = end + 1;
    }
    if (!cells.empty() && std::regex_match(cells[0], first)) out.push_back(cells);
  }
  return out;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '`' && s.back() == '`') return s.substr(1, s.size() - 2);
  return s;
}

TEST(ApiDocs, ThePermissionMatrixInTheDocsIsTheOneInForce) {
  const auto table = rows(read_doc("permissions.md"), std::regex("`[a-z_]+\\.[a-z_]+`"));
  ASSERT_EQ(table.size(), identity::all_permissions().size());
  const std::vector<std::string_view> columns{identity::kRoleSystemAdmin, identity::kRoleOrgAdmin,
                                              identity::kRoleOperator, identity::kRoleViewer, identity::kRoleAuditor};
  for (const auto& row : table) {
    ASSERT_EQ(row.size(), 1 + columns.size()) << row[0];
    const auto permission = identity::parse_permission(unquote(row[0]));
    ASSERT_TRUE(permission) << row[0];
    for (std::size_t i = 0; i < columns.size(); ++i) {
      EXPECT_EQ(row[1 + i] == "yes", identity::role_grants(columns[i], *permission)) << row[0] << " / " << columns[i];
    }
  }
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = testing::open_keyed_store(dir_.path(), random_, clock_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(opened->store);
    keys_ = std::move(opened->keys);
    identity::AccountsOptions options;
    options.hash_cost = identity::minimum_password_hash_cost();
    accounts_ = std::make_unique<identity::Accounts>(*store_, *keys_, clock_, random_, options, nullptr);
    people_ = std::make_unique<identity::People>(*store_, clock_, random_, identity::PeopleOptions{options.hash_cost},
                                                 nullptr);
    ca_ = std::make_unique<pki::CertificateAuthority>(*store_, *keys_, clock_, random_, config::PkiConfig{});
    ASSERT_TRUE(ca_->initialise({"localhost"}));
    devices_ = std::make_unique<identity::DeviceRegistry>(*store_, *keys_, *ca_, clock_);
    api_ = std::make_unique<Api>(ApiContext{config_,
                                            *store_,
                                            *accounts_,
                                            *people_,
                                            pool_,
                                            clock_,
                                            nullptr,
                                            "https://localhost:8443",
                                            nullptr,
                                            devices_.get(),
                                            keys_.get(),
                                            {}});
  }

  // Creates a person directly in the store (no password needed: sessions are made directly).
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

  // A fresh, fully signed-in session of the person: its cookie value.
  std::string session_of(const std::string& user_id) {
    const std::string id = crypto::random_token(random_);
    const UnixMillis now = to_unix_millis(clock_.now());
    std::array<std::uint8_t, 8> handle{};
    random_.fill(handle);
    EXPECT_TRUE(
        store_->console_sessions().insert({identity::session_id_hash(id), hex_encode(handle), user_id,
                                           std::string(store::kSessionStageFull), now, now, now, "test", "test"}));
    return id;
  }

  void add_device(const std::string& id, const std::string& organisation) {
    store::DeviceRecord d;
    d.id = id;
    d.organisation_id = organisation;
    d.name = id;
    d.created_at = to_unix_millis(clock_.now());
    ASSERT_TRUE(store_->devices().insert(d));
  }

  // One request through the whole chain, as a person with a fresh session.
  Response call(const std::string& method, const std::string& target, const std::string& user_id,
                const std::string& body = "") {
    Request r;
    r.method = method;
    const auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    r.source = "192.0.2.7:4000";
    if (!user_id.empty()) {
      const std::string session = session_of(user_id);
      r.headers = {{"cookie", std::string(kSessionCookie) + "=" + session}, {"x-csrf-token", csrf_token(session)}};
    }
    if (!body.empty()) {
      r.headers.emplace_back("content-type", "application/json");
      r.body = body;
    }
    Response out;
    boost::asio::io_context io;
    boost::asio::co_spawn(io, api_->handle(std::move(r)), [&](std::exception_ptr e, Response response) {
      EXPECT_FALSE(e);
      out = std::move(response);
    });
    io.run();
    return out;
  }

  testing::TempDir dir_;
  crypto::SystemRandom random_;
  testing::FakeClock clock_;
  config::Config config_;
  WorkPool pool_{1, 4};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<keys::KeyRing> keys_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<identity::DeviceRegistry> devices_;
  std::unique_ptr<identity::Accounts> accounts_;
  std::unique_ptr<identity::People> people_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiTest, TheEndpointTableInTheDocsIsTheOneInForce) {
  const auto table = rows(read_doc("permissions.md"), std::regex("GET|POST|PUT|PATCH|DELETE"));
  std::set<std::vector<std::string>> documented;
  for (const auto& row : table) {
    ASSERT_EQ(row.size(), 5u) << row[0];
    documented.insert({row[0], unquote(row[1]), row[2], unquote(row[3]), row[4]});
  }
  std::set<std::vector<std::string>> served;
  for (const auto& r : api_->routes()) {
    served.insert({std::string(r.method), std::string(r.pattern), std::string(r.access), std::string(r.permission),
                   r.step_up ? "yes" : ""});
    // Deny unless allowed: everything past sign-in names a permission.
    if (r.access == "signed in") {
      EXPECT_FALSE(r.permission.empty()) << r.method << " " << r.pattern;
    }
  }
  EXPECT_EQ(documented, served);
}

TEST(HttpServer, AResponseNeverCarriesAHeaderThatCouldSplitIt) {
  Response r;
  r.status = 200;
  r.set("X-Good", "fine");
  r.set("X-Bad", "a\r\nSet-Cookie: evil=1");
  r.set("X-Bad-Name\r\nX", "b");
  r.body = "{}";
  const std::string out = serialize_response(r, true);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX-Good: fine\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}");
}

TEST_F(ApiTest, AStateChangeTakesOnlyJsonOfTheRequestsOwnMembers) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  Request form;
  form.method = "POST";
  form.path = "/api/v1/session";
  form.headers = {{"content-type", "application/x-www-form-urlencoded"}};
  form.body = "username=a&password=b";
  Response out;
  boost::asio::io_context io;
  boost::asio::co_spawn(io, api_->handle(form), [&](std::exception_ptr, Response r) { out = std::move(r); });
  io.run();
  EXPECT_EQ(out.status, 415);
  const Response unknown =
      call("POST", "/api/v1/users", admin, R"({"username":"x","email":"x@example.org","admin":true})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_THAT(unknown.body, ::testing::HasSubstr("\"field\":\"admin\""));
  EXPECT_EQ(call("PATCH", "/api/v1/users/" + admin, admin, "[1,2]").status, 400);
}

TEST_F(ApiTest, SensitiveOperationsNeedARecentProofAndStepUpGivesOne) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string bob = add_person("bob", identity::kRoleViewer, "default");
  auto user = *store_->users().find(admin).value();
  user.password_hash =
      identity::hash_password("violet harbour ladder sprinkle 42", identity::minimum_password_hash_cost()).value();
  ASSERT_TRUE(store_->users().update(user));
  // A session signed in six minutes ago: reading is fine, changing people is not.
  const std::string session = session_of(admin);
  clock_.advance(std::chrono::minutes(6));
  const auto as_admin = [&](const std::string& method, const std::string& path, const std::string& body) {
    Request r;
    r.method = method;
    r.path = path;
    r.source = "192.0.2.7:4000";
    r.headers = {{"cookie", std::string(kSessionCookie) + "=" + session}, {"x-csrf-token", csrf_token(session)}};
    if (!body.empty()) r.headers.emplace_back("content-type", "application/json");
    r.body = body;
    Response out;
    boost::asio::io_context io;
    boost::asio::co_spawn(io, api_->handle(std::move(r)), [&](std::exception_ptr, Response x) { out = std::move(x); });
    io.run();
    return out;
  };
  EXPECT_EQ(as_admin("GET", "/api/v1/users", "").status, 200);
  const Response refused = as_admin("PATCH", "/api/v1/users/" + bob, R"({"role":"operator"})");
  EXPECT_EQ(refused.status, 403);
  EXPECT_THAT(refused.body, ::testing::HasSubstr("step_up_required"));
  EXPECT_EQ(as_admin("POST", "/api/v1/session/step-up", R"({"password":"not it at all"})").status, 401);
  EXPECT_EQ(as_admin("POST", "/api/v1/session/step-up", R"({"password":"violet harbour ladder sprinkle 42"})").status,
            204);
  EXPECT_EQ(as_admin("PATCH", "/api/v1/users/" + bob, R"({"role":"operator"})").status, 200);
  clock_.advance(std::chrono::minutes(6));
  EXPECT_EQ(as_admin("DELETE", "/api/v1/users/" + bob, "").status, 403) << "the proof has aged again";
}

// JPCERT I-9, III-5: every endpoint, called as every role, is allowed exactly when
// docs/permissions.md says the role holds the endpoint's permission; and nothing of another
// organisation is reachable.
TEST_F(ApiTest, EveryEndpointAnswersEveryRoleAsThePermissionMatrixSays) {
  const std::string page = read_doc("permissions.md");
  std::map<std::string, std::map<std::string, bool>> grants;  // permission -> role -> granted
  const std::vector<std::string> roles{"system-admin", "org-admin", "operator", "viewer", "auditor"};
  for (const auto& row : rows(page, std::regex("`[a-z_]+\\.[a-z_]+`"))) {
    for (std::size_t i = 0; i < roles.size(); ++i) grants[unquote(row[0])][roles[i]] = row[1 + i] == "yes";
  }
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
  add_device("pump-1", "default");
  add_device("acme-pump", "acme");
  ASSERT_TRUE(store_->device_profiles().put(
      {"env", "default", "Environment", std::string(policy::sample_environment_profile_json()), 1, 0}));
  std::map<std::string, std::string> people;
  for (const auto& role : roles) people[role] = add_person(role, role, "default");

  const auto routes = rows(page, std::regex("GET|POST|PUT|PATCH|DELETE"));
  ASSERT_FALSE(routes.empty());
  int targets = 0;
  for (const auto& route : routes) {
    const std::string& method = route[0];
    std::string path = unquote(route[1]);
    const std::string permission = unquote(route[3]);
    if (route[2] != "signed in") continue;  // the stages before sign-in: Console.* integration tests
    for (const auto& role : roles) {
      // Each call gets its own target, so that a permitted DELETE does not change the next call.
      std::string target = path;
      const std::string victim = add_person("target-" + std::to_string(++targets), identity::kRoleViewer, "default");
      target = std::regex_replace(target, std::regex("/devices/\\{id\\}"), "/devices/pump-1");
      target = std::regex_replace(target, std::regex("/users/\\{id\\}"), "/users/" + victim);
      target = std::regex_replace(target, std::regex("/profiles/\\{id\\}"), "/profiles/env");
      target = std::regex_replace(target, std::regex("\\{handle\\}"), "0000");
      const bool changes = method != "GET";
      const Response r = call(method, target, people[role], changes ? "{}" : "");
      const bool allowed = grants.at(permission).at(role);
      if (allowed) {
        EXPECT_NE(r.status, 403) << role << " " << method << " " << target << ": " << r.body;
        EXPECT_NE(r.status, 401) << role << " " << method << " " << target << ": " << r.body;
      } else {
        EXPECT_EQ(r.status, 403) << role << " " << method << " " << target << ": " << r.body;
        EXPECT_THAT(r.body, ::testing::HasSubstr("\"code\":\"forbidden\"")) << role << " " << target;
      }
    }
  }

  // Another organisation's administrator sees nothing of this one.
  const std::string outsider = add_person("acme-admin", identity::kRoleOrgAdmin, "acme");
  EXPECT_EQ(call("GET", "/api/v1/devices/pump-1", outsider).status, 404);
  EXPECT_EQ(call("GET", "/api/v1/users/" + people["viewer"], outsider).status, 404);
  EXPECT_EQ(call("PATCH", "/api/v1/users/" + people["viewer"], outsider, R"({"role":"operator"})").status, 404);
  EXPECT_EQ(call("DELETE", "/api/v1/users/" + people["viewer"], outsider).status, 404);
  EXPECT_EQ(call("POST", "/api/v1/users/" + people["viewer"] + "/password-link", outsider).status, 404);
  EXPECT_EQ(call("GET", "/api/v1/devices?organisation=default", outsider).status, 403);
  EXPECT_EQ(call("GET", "/api/v1/users?organisation=default", outsider).status, 403);
  const Response own = call("GET", "/api/v1/devices", outsider);
  EXPECT_THAT(own.body, ::testing::HasSubstr("acme-pump"));
  EXPECT_THAT(own.body, ::testing::Not(::testing::HasSubstr("pump-1")));
  EXPECT_EQ(store_->users().find(people["viewer"]).value()->role, identity::kRoleViewer);
  // The system administrator reaches both.
  EXPECT_EQ(call("GET", "/api/v1/devices/acme-pump", people["system-admin"]).status, 200);
  EXPECT_EQ(call("GET", "/api/v1/devices?organisation=acme", people["system-admin"]).status, 200);
}

}  // namespace
}  // namespace torii::console

#include "console/api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "alerts/alert_book.h"
#include "base/version.h"
#include "console/assets.h"
#include "console/http_server.h"
#include "console/live.h"
#include "console/waf.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "events/log_format.h"
#include "events/security_log.h"
#include "identity/api_tokens.h"
#include "identity/roles.h"
#include "identity/setup_token.h"
#include "identity/totp.h"
#include "mail/outbox.h"
#include "pki/certificate_authority.h"
#include "policy/profile.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
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

class ApiTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    identity::AccountsOptions options;
    options.hash_cost = identity::minimum_password_hash_cost();
    accounts_ = std::make_unique<identity::Accounts>(*store_, *keys_, clock_, random_, options, nullptr);
    people_ = std::make_unique<identity::People>(*store_, clock_, random_, identity::PeopleOptions{options.hash_cost},
                                                 nullptr);
    const auto sink = [this](const events::SecurityEvent& e) { events_.push_back(e); };
    tokens_ = std::make_unique<identity::ApiTokens>(*store_, clock_, random_,
                                                    identity::ApiTokenOptions{std::chrono::hours(24) * 90}, sink);
    ca_ = std::make_unique<pki::CertificateAuthority>(*store_, *keys_, clock_, random_, config::PkiConfig{});
    ASSERT_TRUE(ca_->initialise({"localhost"}));
    devices_ = std::make_unique<identity::DeviceRegistry>(*store_, *keys_, *ca_, clock_);
    make_api();
  }

  // The API over the fixture's services, as the server makes it at start: it reads config_
  // and the stored settings now.
  void make_api() {
    const auto sink = [this](const events::SecurityEvent& e) { events_.push_back(e); };
    api_ = std::make_unique<Api>(ApiContext{config_,
                                            *store_,
                                            *accounts_,
                                            *people_,
                                            *tokens_,
                                            pool_,
                                            clock_,
                                            sink,
                                            "https://localhost:8443",
                                            nullptr,
                                            devices_.get(),
                                            keys_.get(),
                                            {},
                                            {},
                                            {},
                                            &live_});
  }

  // Rebuilds the API serving the web console's files (nullptr: none).
  void use_assets(const Assets* assets) {
    const auto sink = [this](const events::SecurityEvent& e) { events_.push_back(e); };
    ApiContext context{
        config_, *store_,        *accounts_,  *people_, *tokens_, pool_, clock_, sink, "https://localhost:8443",
        nullptr, devices_.get(), keys_.get(), {}};
    context.assets = assets;
    api_ = std::make_unique<Api>(std::move(context));
  }

  // Rebuilds the API with mail going to `outbox` (nullptr: no mail).
  void use_mail(mail::Outbox* outbox) {
    const auto sink = [this](const events::SecurityEvent& e) { events_.push_back(e); };
    ApiContext context{
        config_, *store_,        *accounts_,  *people_, *tokens_, pool_, clock_, sink, "https://localhost:8443",
        nullptr, devices_.get(), keys_.get(), {}};
    context.mail = outbox;
    api_ = std::make_unique<Api>(std::move(context));
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
    std::vector<std::pair<std::string, std::string>> headers;
    if (!user_id.empty()) {
      const std::string session = session_of(user_id);
      headers = {{"cookie", std::string(kSessionCookie) + "=" + session}, {"x-csrf-token", csrf_token(session)}};
    }
    return send(method, target, std::move(headers), body);
  }

  // One request through the whole chain with an API token, as a script sends it: no cookie,
  // no CSRF token.
  Response call_with_token(const std::string& method, const std::string& target, const std::string& token,
                           const std::string& body = "") {
    return send(method, target, {{"authorization", "Bearer " + token}}, body);
  }

  Response send(const std::string& method, const std::string& target,
                std::vector<std::pair<std::string, std::string>> headers, const std::string& body) {
    Request r;
    r.method = method;
    const auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    r.source = "192.0.2.7:4000";
    r.headers = std::move(headers);
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

  config::Config config_;
  WorkPool pool_{1, 4};
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<identity::DeviceRegistry> devices_;
  std::unique_ptr<identity::Accounts> accounts_;
  std::unique_ptr<identity::People> people_;
  std::unique_ptr<identity::ApiTokens> tokens_;
  LiveFeed live_;
  std::unique_ptr<Api> api_;
  std::vector<events::SecurityEvent> events_;
};

std::string header_of(const Response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

// The web console's pages come from the same listener as the API: every path outside /api/,
// read only, with the pages' own policy; the API keeps its own, and both keep HSTS.
TEST_F(ApiTest, PathsOutsideTheApiServeTheWebConsoleUnderItsOwnPolicy) {
  using ::testing::HasSubstr;
  using ::testing::Not;
  EXPECT_EQ(send("GET", "/", {}, "").status, 404) << "without the console's files, nothing";

  const auto dir = dir_.path() / "console";
  std::filesystem::create_directories(dir / "assets");
  std::ofstream(dir / "index.html") << "<!doctype html><title>torii</title>";
  std::ofstream(dir / "assets" / "index-Ab12.js") << "console.log(1)";
  auto assets = Assets::load(dir);
  ASSERT_TRUE(assets) << assets.error().message;
  use_assets(&*assets);

  for (const char* path : {"/", "/devices/sensor-1", "/setup"}) {
    const Response page = send("GET", path, {}, "");
    EXPECT_EQ(page.status, 200) << path;
    EXPECT_EQ(page.body, "<!doctype html><title>torii</title>") << path;
    EXPECT_EQ(header_of(page, "Content-Type"), "text/html; charset=utf-8");
    EXPECT_THAT(header_of(page, "Content-Security-Policy"), HasSubstr("script-src 'self'"));
    EXPECT_EQ(header_of(page, "Cache-Control"), "no-cache");
    EXPECT_THAT(header_of(page, "Strict-Transport-Security"), HasSubstr("max-age="));
    EXPECT_EQ(header_of(page, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(header_of(page, "X-Frame-Options"), "DENY");
  }
  const Response script = send("GET", "/assets/index-Ab12.js", {}, "");
  EXPECT_EQ(script.status, 200);
  EXPECT_EQ(header_of(script, "Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(send("GET", "/assets/gone.js", {}, "").status, 404);

  const Response posted = send("POST", "/devices", {{"origin", "https://localhost:8443"}}, "{}");
  EXPECT_EQ(posted.status, 405);
  EXPECT_EQ(header_of(posted, "Allow"), "GET, HEAD");

  // The API is untouched: its own answers, its own policy, nothing cached.
  const Response api = send("GET", "/api/v1/no-such-thing", {}, "");
  EXPECT_EQ(api.status, 404);
  EXPECT_EQ(header_of(api, "Content-Type"), "application/problem+json");
  EXPECT_THAT(header_of(api, "Content-Security-Policy"), HasSubstr("default-src 'none'"));
  EXPECT_THAT(header_of(api, "Content-Security-Policy"), Not(HasSubstr("script-src")));
  EXPECT_EQ(header_of(api, "Cache-Control"), "no-store");
  EXPECT_EQ(send("GET", "/api", {}, "").status, 404) << "/api itself is the API's, not a page";
}

// JPCERT I-10: a token is shown once, works only within its scope and on the routes open to
// tokens, needs no CSRF token, and stops working when revoked.
TEST_F(ApiTest, AnApiTokenIsShownOnceAndWorksOnlyWithinItsScope) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleOrgAdmin, "default");
  const std::string bob = add_person("bob", identity::kRoleViewer, "default");
  add_device("pump-1", "default");
  const std::string expires = format_utc_millis(clock_.now() + std::chrono::hours(24) * 30);
  const Response made = call("POST", "/api/v1/account/tokens", admin,
                             R"({"name":"monitoring","permissions":["devices.read"],"expires_at":")" + expires + "\"}");
  ASSERT_EQ(made.status, 201) << made.body;
  const auto body = nlohmann::json::parse(made.body);
  const std::string token = body.at("token");
  const std::string id = body.at("id");
  EXPECT_TRUE(token.starts_with("torii_" + id + "_"));
  EXPECT_EQ(body.at("permissions"), nlohmann::json::array({"devices.read"}));

  const Response listed = call("GET", "/api/v1/account/tokens", admin);
  EXPECT_EQ(listed.status, 200);
  EXPECT_THAT(listed.body, ::testing::HasSubstr(id));
  EXPECT_THAT(listed.body, ::testing::Not(::testing::HasSubstr(token.substr(23))));

  EXPECT_EQ(call_with_token("GET", "/api/v1/devices", token).status, 200);
  EXPECT_EQ(call_with_token("GET", "/api/v1/devices/pump-1", token).status, 200);
  // The role holds users.read; the token does not.
  const Response outside = call_with_token("GET", "/api/v1/users", token);
  EXPECT_EQ(outside.status, 403);
  EXPECT_THAT(outside.body, ::testing::HasSubstr("\"code\":\"forbidden\""));
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.back().action, "access.denied");
  EXPECT_EQ(events_.back().actor, "user:" + admin);
  EXPECT_EQ(events_.back().details.value("credential", ""), "api_token:" + id);

  // Never on the account's own routes (tokens, password, sessions), on session routes, or
  // where step-up is asked for; no CSRF token is asked for on the way.
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/account/tokens"},
                                                        {"POST", "/api/v1/account/tokens"},
                                                        {"DELETE", "/api/v1/account/tokens/" + id},
                                                        {"POST", "/api/v1/account/password"},
                                                        {"GET", "/api/v1/account/sessions"},
                                                        {"GET", "/api/v1/session"},
                                                        {"DELETE", "/api/v1/session"},
                                                        {"POST", "/api/v1/session/step-up"},
                                                        {"POST", "/api/v1/users/" + bob + "/unlock"},
                                                        {"DELETE", "/api/v1/users/" + bob}}) {
    const Response r = call_with_token(method, target, token, method == "GET" ? "" : "{}");
    EXPECT_EQ(r.status, 403) << method << " " << target << ": " << r.body;
    EXPECT_THAT(r.body, ::testing::HasSubstr("\"code\":\"token_not_allowed\"")) << method << " " << target;
  }
  EXPECT_TRUE(store_->users().find(bob).value().has_value());

  // Revoked: 401, and the list says so.
  EXPECT_EQ(call("DELETE", "/api/v1/account/tokens/" + id, admin).status, 204);
  const Response revoked = call_with_token("GET", "/api/v1/devices", token);
  EXPECT_EQ(revoked.status, 401);
  EXPECT_EQ(header_of(revoked, "WWW-Authenticate"), R"(Bearer error="invalid_token")");
  EXPECT_THAT(call("GET", "/api/v1/account/tokens", admin).body, ::testing::HasSubstr("\"status\":\"revoked\""));
  EXPECT_EQ(call("DELETE", "/api/v1/account/tokens/" + id, admin).status, 404);
}

TEST_F(ApiTest, CreatingATokenNeedsStepUpAndItsScopeWithinTheRole) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  const std::string expires = format_utc_millis(clock_.now() + std::chrono::hours(24) * 30);
  const std::string request = R"({"name":"ci","permissions":["devices.read"],"expires_at":")" + expires + "\"}";
  const std::string session = session_of(viewer);
  clock_.advance(std::chrono::minutes(6));
  const Response late =
      send("POST", "/api/v1/account/tokens",
           {{"cookie", std::string(kSessionCookie) + "=" + session}, {"x-csrf-token", csrf_token(session)}}, request);
  EXPECT_EQ(late.status, 403);
  EXPECT_THAT(late.body, ::testing::HasSubstr("step_up_required"));

  const Response beyond = call("POST", "/api/v1/account/tokens", viewer,
                               R"({"name":"ci","permissions":["devices.write"],"expires_at":")" + expires + "\"}");
  EXPECT_EQ(beyond.status, 422);
  EXPECT_THAT(beyond.body, ::testing::HasSubstr("\"field\":\"permissions\""));
  const Response not_a_list = call("POST", "/api/v1/account/tokens", viewer,
                                   R"({"name":"ci","permissions":"devices.read","expires_at":")" + expires + "\"}");
  EXPECT_EQ(not_a_list.status, 400);
  const std::string too_far = format_utc_millis(clock_.now() + std::chrono::hours(24) * 91);
  const Response late_date = call("POST", "/api/v1/account/tokens", viewer,
                                  R"({"name":"ci","permissions":["devices.read"],"expires_at":")" + too_far + "\"}");
  EXPECT_EQ(late_date.status, 422);
  EXPECT_THAT(late_date.body, ::testing::HasSubstr("\"field\":\"expires_at\""));
  EXPECT_EQ(call("GET", "/api/v1/account/tokens", viewer).body, R"({"tokens":[]})");
}

// JPCERT I-10, III-7: a token changes what its scope allows without a CSRF token (no cookie
// is involved); a session doing the same still needs one.
// The web console shows only what the person may do: the session answer names what their
// role grants. The server still checks every request.
TEST_F(ApiTest, TheSessionNamesThePermissionsOfThePersonsRole) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const auto permissions_of = [&](const std::string& user) {
    const Response r = call("GET", "/api/v1/session", user);
    EXPECT_EQ(r.status, 200) << r.body;
    return nlohmann::json::parse(r.body)["permissions"].get<std::set<std::string>>();
  };
  const auto viewer = permissions_of(add_person("vera", identity::kRoleViewer, "default"));
  EXPECT_TRUE(viewer.contains("devices.read"));
  EXPECT_FALSE(viewer.contains("devices.write"));
  EXPECT_FALSE(viewer.contains("users.write"));
  const auto admin = permissions_of(add_person("olga", identity::kRoleOrgAdmin, "default"));
  EXPECT_TRUE(admin.contains("users.write"));
  EXPECT_TRUE(admin.contains("devices.write"));
}

TEST_F(ApiTest, ATokenActsWithinItsScopeWithoutACsrfTokenWhileASessionStillNeedsOne) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string op = add_person("op", identity::kRoleOperator, "default");
  add_device("pump-1", "default");
  add_device("pump-2", "default");
  const identity::Caller owner{
      {}, *store_->users().find(op).value(), identity::builtin_role_permissions(identity::kRoleOperator), std::nullopt};
  const UnixMillis expires = to_unix_millis(clock_.now() + std::chrono::hours(1));
  auto writer = tokens_->create(owner, {"ops", {"devices.read", "devices.write"}, expires, ""}, {"test", ""});
  auto reader = tokens_->create(owner, {"view", {"devices.read"}, expires, ""}, {"test", ""});
  ASSERT_TRUE(writer && writer->token && reader && reader->token);

  EXPECT_EQ(call_with_token("POST", "/api/v1/devices/pump-1/disable", writer->secret, "{}").status, 200);
  EXPECT_EQ(store_->devices().find("pump-1").value()->status, "disabled");
  const Response out_of_scope = call_with_token("POST", "/api/v1/devices/pump-2/disable", reader->secret, "{}");
  EXPECT_EQ(out_of_scope.status, 403);
  EXPECT_THAT(out_of_scope.body, ::testing::HasSubstr("\"code\":\"forbidden\""));

  const std::string session = session_of(op);
  const Response no_csrf =
      send("POST", "/api/v1/devices/pump-2/disable", {{"cookie", std::string(kSessionCookie) + "=" + session}}, "{}");
  EXPECT_EQ(no_csrf.status, 403);
  EXPECT_THAT(no_csrf.body, ::testing::HasSubstr("\"code\":\"csrf\""));
  EXPECT_EQ(store_->devices().find("pump-2").value()->status, "active");
}

// The fields a browser sends to open a WebSocket from the console's own page (RFC 6455 §4.1).
std::vector<std::pair<std::string, std::string>> websocket_fields(
    const std::string& session, const std::string& origin = "https://localhost:8443") {
  std::vector<std::pair<std::string, std::string>> h = {{"host", "localhost:8443"},
                                                        {"upgrade", "websocket"},
                                                        {"connection", "Upgrade"},
                                                        {"sec-websocket-version", "13"},
                                                        {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  if (!origin.empty()) h.emplace_back("origin", origin);
  if (!session.empty()) h.emplace_back("cookie", std::string(kSessionCookie) + "=" + session);
  return h;
}

TEST_F(ApiTest, ALiveViewCarriesOnlyItsOrganisationsTelemetryOrOneDevices) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  ASSERT_TRUE(store_->organisations().insert({"other", "Other", false, 0}));
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  add_device("pump-1", "default");
  add_device("pump-2", "default");
  add_device("their-pump", "other");

  const Response all = send("GET", "/api/v1/live", websocket_fields(session_of(viewer)), "");
  ASSERT_EQ(all.status, 101) << all.body;
  EXPECT_EQ(header_of(all, "Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(header_of(all, "Upgrade"), "websocket");
  ASSERT_NE(all.websocket, nullptr);
  const Response one = send("GET", "/api/v1/devices/pump-2/live", websocket_fields(session_of(viewer)), "");
  ASSERT_EQ(one.status, 101) << one.body;
  all.websocket->start([] {});
  one.websocket->start([] {});

  live_.publish({"default", "pump-1", "pump-1 says"});
  live_.publish({"other", "their-pump", "their pump says"});
  live_.publish({"default", "pump-2", "pump-2 says"});
  EXPECT_EQ(all.websocket->take(), (std::vector<std::string>{"pump-1 says", "pump-2 says"}));
  EXPECT_EQ(one.websocket->take(), (std::vector<std::string>{"pump-2 says"}));

  // Another organisation's device is not found, as everywhere (JPCERT I-9).
  EXPECT_EQ(send("GET", "/api/v1/devices/their-pump/live", websocket_fields(session_of(viewer)), "").status, 404);
}

// Cross-site WebSocket hijacking: the cookie alone does not open a socket.
TEST_F(ApiTest, ALiveViewOpensOnlyFromTheConsolesOwnPagesAndOnlyAsAWebSocket) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");

  const Response foreign =
      send("GET", "/api/v1/live", websocket_fields(session_of(viewer), "https://evil.example"), "");
  EXPECT_EQ(foreign.status, 403);
  EXPECT_THAT(foreign.body, ::testing::HasSubstr("\"code\":\"cross_origin\""));
  EXPECT_EQ(foreign.websocket, nullptr);
  EXPECT_EQ(send("GET", "/api/v1/live", websocket_fields(session_of(viewer), ""), "").status, 403);
  EXPECT_TRUE(std::any_of(events_.begin(), events_.end(),
                          [](const auto& e) { return e.action == "console.cross_origin_refused"; }));

  const Response plain = call("GET", "/api/v1/live", viewer);
  EXPECT_EQ(plain.status, 400);
  EXPECT_THAT(plain.body, ::testing::HasSubstr("\"code\":\"websocket_required\""));
  auto old_version = websocket_fields(session_of(viewer));
  old_version[3].second = "8";
  const Response refused = send("GET", "/api/v1/live", old_version, "");
  EXPECT_EQ(refused.status, 426);
  EXPECT_EQ(header_of(refused, "Sec-WebSocket-Version"), "13");
  EXPECT_EQ(live_.open(), 0U);

  // Without a session, nothing opens.
  EXPECT_EQ(send("GET", "/api/v1/live", websocket_fields(""), "").status, 401);
}

TEST_F(ApiTest, ALiveViewEndsWhenItsSessionSignsOutOrTimesOutAndATokensWhenRevoked) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  const std::string first = session_of(viewer);
  const std::string second = session_of(viewer);
  const Response a = send("GET", "/api/v1/live", websocket_fields(first), "");
  const Response b = send("GET", "/api/v1/live", websocket_fields(second), "");
  ASSERT_TRUE(a.websocket && b.websocket);
  a.websocket->start([] {});
  b.websocket->start([] {});

  // Signing out ends that session's socket at once, not the other session's.
  const Response out =
      send("DELETE", "/api/v1/session",
           {{"cookie", std::string(kSessionCookie) + "=" + first}, {"x-csrf-token", csrf_token(first)}}, "");
  ASSERT_EQ(out.status, 204);
  ASSERT_TRUE(a.websocket->ended());
  EXPECT_EQ(a.websocket->ended()->first, websocket::CloseCode::policy_violation);
  EXPECT_FALSE(b.websocket->ended());

  // The other is checked at its pings: watching is not activity, so it times out.
  b.websocket->check();
  EXPECT_FALSE(b.websocket->ended());
  clock_.advance(std::chrono::minutes(16));
  b.websocket->check();
  ASSERT_TRUE(b.websocket->ended());

  // A script's socket, opened with a token and no Origin, lasts while the token does.
  const identity::Caller owner{{},
                               *store_->users().find(viewer).value(),
                               identity::builtin_role_permissions(identity::kRoleViewer),
                               std::nullopt};
  auto made = tokens_->create(
      owner, {"watch", {"telemetry.read"}, to_unix_millis(clock_.now() + std::chrono::hours(1)), ""}, {"test", ""});
  ASSERT_TRUE(made && made->token);
  auto fields = websocket_fields("", "");
  fields.emplace_back("authorization", "Bearer " + made->secret);
  const Response scripted = send("GET", "/api/v1/live", fields, "");
  ASSERT_EQ(scripted.status, 101) << scripted.body;
  scripted.websocket->start([] {});
  scripted.websocket->check();
  EXPECT_FALSE(scripted.websocket->ended());
  ASSERT_TRUE(tokens_->revoke(owner, made->token->id, {"test", ""}));
  scripted.websocket->check();
  EXPECT_TRUE(scripted.websocket->ended());
}

// RFC 6750 §5.3: a token in a URL is refused, even a valid one, and never read from there.
TEST_F(ApiTest, ATokenInTheQueryStringIsNotAccepted) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  auto made =
      tokens_->create(identity::Caller{{},
                                       *store_->users().find(viewer).value(),
                                       identity::builtin_role_permissions(identity::kRoleViewer),
                                       std::nullopt},
                      {"ci", {"devices.read"}, to_unix_millis(clock_.now() + std::chrono::hours(1)), ""}, {"test", ""});
  ASSERT_TRUE(made && made->token);
  for (const std::string& target :
       {"/api/v1/devices?access_token=" + made->secret, "/api/v1/devices?token=" + made->secret,
        std::string("/api/v1/devices?access_token=x")}) {
    const Response r = send("GET", target, {}, "");
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_THAT(r.body, ::testing::HasSubstr("token_in_url"));
  }
  EXPECT_EQ(call_with_token("GET", "/api/v1/devices", made->secret).status, 200);
  EXPECT_EQ(send("GET", "/api/v1/devices", {{"authorization", "Basic " + made->secret}}, "").status, 401);
  EXPECT_EQ(send("GET", "/api/v1/devices",
                 {{"authorization", "Bearer " + made->secret}, {"authorization", "Bearer " + made->secret}}, "")
                .status,
            401);
}

// JPCERT item 8: each person has a request budget, their tokens included; refusals are
// recorded once a minute at most.
TEST_F(ApiTest, APersonsRequestsAreLimitedTheirTokensIncluded) {
  config_.console_http.requests_per_minute_per_user = 3;
  make_api();
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  const std::string other = add_person("other", identity::kRoleViewer, "default");
  auto made =
      tokens_->create(identity::Caller{{},
                                       *store_->users().find(viewer).value(),
                                       identity::builtin_role_permissions(identity::kRoleViewer),
                                       std::nullopt},
                      {"ci", {"devices.read"}, to_unix_millis(clock_.now() + std::chrono::hours(1)), ""}, {"test", ""});
  ASSERT_TRUE(made && made->token);
  EXPECT_EQ(call("GET", "/api/v1/devices", viewer).status, 200);
  EXPECT_EQ(call("GET", "/api/v1/devices", viewer).status, 200);
  EXPECT_EQ(call_with_token("GET", "/api/v1/devices", made->secret).status, 200);
  events_.clear();
  for (int i = 0; i < 3; ++i) {
    const Response refused =
        i == 0 ? call_with_token("GET", "/api/v1/devices", made->secret) : call("GET", "/api/v1/devices", viewer);
    EXPECT_EQ(refused.status, 429);
    EXPECT_THAT(refused.body, ::testing::HasSubstr("too_many_requests"));
    const int retry_after = std::stoi(header_of(refused, "Retry-After"));
    EXPECT_GE(retry_after, 1);
    EXPECT_LE(retry_after, 20);
  }
  ASSERT_EQ(events_.size(), 1U);
  EXPECT_EQ(events_.front().action, "console.user_throttled");
  EXPECT_EQ(events_.front().actor, "user:" + viewer);
  EXPECT_EQ(call("GET", "/api/v1/devices", other).status, 200) << "another person has their own budget";
}

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
      const std::string device = "pump-t" + std::to_string(targets);
      add_device(device, "default");
      target = std::regex_replace(target, std::regex("/devices/\\{id\\}"), "/devices/" + device);
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

// The API with a real security log behind it: events the API and the accounts write are
// read back through it.
class SecurityApiTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    events::SecurityLog::Options o;
    o.directory = dir_.path() / "log";
    auto log = events::SecurityLog::open(o, clock_, log_keys_.secret_key);
    ASSERT_TRUE(log) << log.error().message;
    log_ = std::move(*log);
    book_ = std::make_unique<alerts::AlertBook>(*store_, log_.get(), clock_, random_);
    // As the server's: every event is logged, then may open or resolve an alert.
    const auto sink = [this](const events::SecurityEvent& e) {
      ASSERT_TRUE(log_->append(e));
      book_->observe(e);
    };
    identity::AccountsOptions options;
    options.hash_cost = identity::minimum_password_hash_cost();
    accounts_ = std::make_unique<identity::Accounts>(*store_, *keys_, clock_, random_, options, sink);
    people_ =
        std::make_unique<identity::People>(*store_, clock_, random_, identity::PeopleOptions{options.hash_cost}, sink);
    ApiContext context{config_, *store_, *accounts_, *people_, *tokens_, pool_, clock_, sink, "https://localhost:8443"};
    context.security_log_dir = o.directory;
    context.security_log_public_key = log_->public_key();
    context.alerts = book_.get();
    if (with_waf_) {
      auto waf = Waf::load(WafOptions{});
      ASSERT_TRUE(waf) << waf.error().message;
      waf_ = std::move(*waf);
      context.waf = waf_.get();
      if (waf_threads_ != 0) {
        waf_pool_ = std::make_unique<WorkPool>(waf_threads_, waf_waiting_);
        context.waf_work = waf_pool_.get();
      }
    }
    api_ = std::make_unique<Api>(std::move(context));
    ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
    ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
  }

  // The actions of the events (or alerts) a person is shown.
  std::vector<std::string> listed(const std::string& target, const std::string& user_id, const char* member) {
    const Response r = call("GET", target, user_id);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    std::vector<std::string> out;
    const auto body = json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.contains(member)) return out;
    for (const auto& e : body[member])
      out.push_back(e["action"].get<std::string>() + " " + e["actor"].get<std::string>());
    return out;
  }

  // The keys of the alerts a person is shown.
  std::vector<std::string> alert_keys(const std::string& target, const std::string& user_id) {
    const Response r = call("GET", target, user_id);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    std::vector<std::string> out;
    const auto body = json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.contains("alerts")) return out;
    for (const auto& a : body["alerts"]) out.push_back(a["key"].get<std::string>());
    return out;
  }

  // A person who signs in with a password.
  std::string add_person_with_password(const std::string& name, std::string_view role, const std::string& org) {
    std::string id = add_person(name, role, org);
    auto user = *store_->users().find(id).value();
    user.password_hash = identity::hash_password(kPassword, identity::minimum_password_hash_cost()).value();
    EXPECT_TRUE(store_->users().update(user));
    return id;
  }

  using json = nlohmann::json;
  static constexpr std::string_view kPassword = "violet harbour ladder sprinkle 42";
  // Probes are a browser's request with SQL injection in its query, sent without a session.
  Response probe() {
    Request probe;
    probe.method = "GET";
    probe.path = "/api/v1/devices";
    probe.query = "organisation=1'%20OR%20'1'='1";
    probe.source = "203.0.113.5:51234";
    probe.headers = {{"host", "localhost:8443"}, {"user-agent", "Mozilla/5.0"}, {"accept", "application/json"}};
    Response answer;
    boost::asio::io_context io;
    boost::asio::co_spawn(io, api_->handle(probe), [&](const std::exception_ptr&, const Response& r) { answer = r; });
    io.run();
    return answer;
  }

  bool with_waf_ = false;
  // With with_waf_: the inspections' own threads (0: none, on the I/O thread) and how many
  // requests may wait for them.
  std::size_t waf_threads_ = 0;
  std::size_t waf_waiting_ = 0;
  crypto::Ed25519KeyPair log_keys_ = crypto::ed25519_generate();
  std::unique_ptr<events::SecurityLog> log_;
  std::unique_ptr<alerts::AlertBook> book_;
  std::unique_ptr<Waf> waf_;
  std::unique_ptr<WorkPool> waf_pool_;
};

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// JPCERT III-1, I-9: auditors read their organisation's record and nothing of another's;
// the server's own events are the system administrator's.
TEST_F(SecurityApiTest, AnAuditorReadsItsOrganisationsEventsAndNothingElse) {
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string auditor = add_person("auditor", identity::kRoleAuditor, "default");
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  const std::string acme_auditor = add_person("acme-auditor", identity::kRoleAuditor, "acme");
  const std::string acme_viewer = add_person("acme-viewer", identity::kRoleViewer, "acme");
  ASSERT_TRUE(log_->append({"system", "server.start", "", events::Outcome::success, "local", json::object()}));
  // Each viewer is refused something: an event of their organisation.
  EXPECT_EQ(call("GET", "/api/v1/security-log", viewer).status, 403);
  EXPECT_EQ(call("GET", "/api/v1/security-log", acme_viewer).status, 403);

  const auto own = listed("/api/v1/security-log", auditor, "events");
  EXPECT_THAT(own, Contains("access.denied user:" + viewer));
  EXPECT_THAT(own, Not(Contains("access.denied user:" + acme_viewer))) << "another organisation's event";
  EXPECT_THAT(own, Not(Contains("server.start system"))) << "the server's own events are not an organisation's";
  const auto acme = listed("/api/v1/security-log", acme_auditor, "events");
  EXPECT_THAT(acme, Contains("access.denied user:" + acme_viewer));
  EXPECT_THAT(acme, Not(Contains("access.denied user:" + viewer)));
  EXPECT_EQ(call("GET", "/api/v1/security-log?organisation=default", acme_auditor).status, 403);

  const auto all = listed("/api/v1/security-log", admin, "events");
  EXPECT_THAT(all, Contains("server.start system"));
  EXPECT_THAT(all, Contains("access.denied user:" + acme_viewer));
  const auto named = listed("/api/v1/security-log?organisation=acme", admin, "events");
  EXPECT_THAT(named, Contains("access.denied user:" + acme_viewer));
  EXPECT_THAT(named, Not(Contains("server.start system")));

  // Filters and pages.
  EXPECT_THAT(listed("/api/v1/security-log?actor=system&limit=1", admin, "events"),
              ::testing::ElementsAre("server.start system"));
  EXPECT_EQ(call("GET", "/api/v1/security-log?limit=0", admin).status, 400);
  EXPECT_EQ(call("GET", "/api/v1/security-log?from=yesterday&outcome=maybe", admin).status, 400);
  const Response first = call("GET", "/api/v1/security-log?limit=1", admin);
  const auto cursor = json::parse(first.body)["next_before_seq"];
  ASSERT_TRUE(cursor.is_number());
  const Response second = call("GET", "/api/v1/security-log?limit=1&before_seq=" + cursor.dump(), admin);
  EXPECT_LT(json::parse(second.body)["events"][0]["seq"].get<std::uint64_t>(), cursor.get<std::uint64_t>());
}

// JPCERT VIII-2: a lockout and a WAF block are listed as alerts, each to whom it concerns.
class AlertsApiTest : public SecurityApiTest {
 protected:
  void SetUp() override {
    with_waf_ = true;
    SecurityApiTest::SetUp();
  }
};

TEST_F(AlertsApiTest, ALockoutAndAWafBlockAreListedAsAlerts) {
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string auditor = add_person("auditor", identity::kRoleAuditor, "default");
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  const std::string acme_admin = add_person("acme-admin", identity::kRoleOrgAdmin, "acme");
  const std::string bob = add_person_with_password("bob", identity::kRoleViewer, "default");
  const identity::Origin from{"192.0.2.8:4000", "test"};
  for (int i = 0; i < 5; ++i) (void)accounts_->sign_in("bob", "not the password at all", from);
  EXPECT_EQ(accounts_->sign_in("bob", kPassword, from)->status, identity::SignInStatus::locked);
  const Response blocked = probe();
  EXPECT_EQ(blocked.status, 403);
  EXPECT_THAT(blocked.body, HasSubstr("blocked"));

  const std::string locked = "account.locked:" + bob;
  const auto everything = alert_keys("/api/v1/alerts", admin);
  EXPECT_THAT(everything, Contains(locked));
  EXPECT_THAT(everything, Contains("waf.blocked:203.0.113.5")) << "installation-wide";
  const auto own = alert_keys("/api/v1/alerts", auditor);
  EXPECT_THAT(own, Contains(locked)) << "bob is of the auditor's organisation";
  EXPECT_THAT(own, Not(Contains("waf.blocked:203.0.113.5")));
  EXPECT_THAT(alert_keys("/api/v1/alerts", viewer), Contains(locked));
  EXPECT_THAT(alert_keys("/api/v1/alerts", acme_admin), ::testing::IsEmpty());
  EXPECT_THAT(alert_keys("/api/v1/alerts?organisation=default", admin), Not(Contains("waf.blocked:203.0.113.5")));
}

// Unlocking a person resolves their lockout's alert.
TEST_F(SecurityApiTest, UnlockingAPersonResolvesTheirLockoutsAlert) {
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string bob = add_person_with_password("bob", identity::kRoleViewer, "default");
  const identity::Origin from{"192.0.2.8:4000", "test"};
  for (int i = 0; i < 5; ++i) (void)accounts_->sign_in("bob", "not the password at all", from);
  const std::string locked = "account.locked:" + bob;
  EXPECT_THAT(alert_keys("/api/v1/alerts?status=open", admin), Contains(locked));
  const Response unlocked = call("POST", "/api/v1/users/" + bob + "/unlock", admin);
  EXPECT_EQ(unlocked.status, 200) << unlocked.body;
  EXPECT_THAT(alert_keys("/api/v1/alerts?status=open,acknowledged", admin), Not(Contains(locked)));
  EXPECT_THAT(alert_keys("/api/v1/alerts?status=resolved", admin), Contains(locked));
}

// JPCERT VIII-1: a device's alert is acknowledged and resolved by a person of its
// organisation, with who and when; a viewer only reads; another organisation's is 404.
TEST_F(SecurityApiTest, APersonAcknowledgesAndResolvesTheirOrganisationsAlert) {
  const std::string operator_id = add_person("operator", identity::kRoleOperator, "default");
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  const std::string acme_admin = add_person("acme-admin", identity::kRoleOrgAdmin, "acme");
  add_device("pump-1", "default");
  book_->observe({"device:pump-1", "device.tamper", "device:pump-1", events::Outcome::failure, "",
                  json{{"metric", "lid"}, {"alert", true}}});
  const Response listed_open = call("GET", "/api/v1/alerts?status=open&device=pump-1&severity=critical", viewer);
  ASSERT_EQ(listed_open.status, 200) << listed_open.body;
  const auto body = json::parse(listed_open.body);
  ASSERT_EQ(body["alerts"].size(), 1U);
  const auto alert = body["alerts"][0];
  const std::string id = alert["id"];
  EXPECT_EQ(alert["title"], "Tamper detected");
  EXPECT_EQ(alert["device"], "pump-1");
  EXPECT_EQ(alert["status"], "open");
  EXPECT_EQ(call("GET", "/api/v1/alerts/" + id, viewer).status, 200);

  const Response refused = call("POST", "/api/v1/alerts/" + id + "/acknowledge", viewer, "{}");
  EXPECT_EQ(refused.status, 403) << "a viewer reads alerts only";
  EXPECT_EQ(call("GET", "/api/v1/alerts/" + id, acme_admin).status, 404);
  EXPECT_EQ(call("POST", "/api/v1/alerts/" + id + "/resolve", acme_admin, "{}").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/alerts/a-unknown", operator_id).status, 404);

  const Response acked = call("POST", "/api/v1/alerts/" + id + "/acknowledge", operator_id, "{}");
  ASSERT_EQ(acked.status, 200) << acked.body;
  EXPECT_EQ(json::parse(acked.body)["status"], "acknowledged");
  EXPECT_EQ(json::parse(acked.body)["acknowledged_by"], "user:" + operator_id);
  EXPECT_EQ(call("POST", "/api/v1/alerts/" + id + "/acknowledge", operator_id, "{}").status, 409);
  const Response resolved = call("POST", "/api/v1/alerts/" + id + "/resolve", operator_id, "{}");
  ASSERT_EQ(resolved.status, 200) << resolved.body;
  EXPECT_EQ(json::parse(resolved.body)["resolved_by"], "user:" + operator_id);
  EXPECT_FALSE(json::parse(resolved.body)["resolved_at"].is_null());
  EXPECT_EQ(call("POST", "/api/v1/alerts/" + id + "/resolve", operator_id, "{}").status, 409);
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const auto logged = listed("/api/v1/security-log?action=alert.", admin, "events");
  EXPECT_THAT(logged, Contains("alert.acknowledged user:" + operator_id));
  EXPECT_THAT(logged, Contains("alert.resolved user:" + operator_id));
  EXPECT_THAT(alert_keys("/api/v1/alerts", admin), ::testing::ElementsAre("device.tamper:pump-1:lid"))
      << "the book's own events open no alert";

  EXPECT_EQ(call("GET", "/api/v1/alerts?status=closed&limit=501&severity=loud&before=now", viewer).status, 400);
}

// The server runs the firewall on threads of its own (console.waf_threads): the verdicts are
// the same as on the I/O thread, and a request that cannot get an inspection is refused, not
// served uninspected.
template <std::size_t Threads, std::size_t Waiting>
class WafOnThreadsApiTest : public SecurityApiTest {
 protected:
  void SetUp() override {
    with_waf_ = true;
    waf_threads_ = Threads;
    waf_waiting_ = Waiting;
    SecurityApiTest::SetUp();
  }
};
using WafThreadsApiTest = WafOnThreadsApiTest<2, 8>;
// No request may wait: every inspection is refused, as when the threads are all taken.
using WafThreadsFullApiTest = WafOnThreadsApiTest<1, 0>;

TEST_F(WafThreadsApiTest, RequestsAreInspectedOnTheFirewallsThreadsWithTheSameVerdicts) {
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  add_device("pump-1", "default");
  const Response listed_devices = call("GET", "/api/v1/devices", admin);
  EXPECT_EQ(listed_devices.status, 200) << listed_devices.body;
  EXPECT_THAT(listed_devices.body, HasSubstr("pump-1"));
  const Response blocked = probe();
  EXPECT_EQ(blocked.status, 403);
  EXPECT_THAT(blocked.body, HasSubstr("blocked"));
  EXPECT_THAT(alert_keys("/api/v1/alerts", admin), Contains("waf.blocked:203.0.113.5"));
}

TEST_F(WafThreadsFullApiTest, ARequestThatCannotBeInspectedIsAnsweredBusyAndNotServed) {
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  add_device("pump-1", "default");
  const Response r = call("GET", "/api/v1/devices", admin);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_THAT(r.body, HasSubstr("busy"));
  EXPECT_THAT(r.body, Not(HasSubstr("pump-1")));
  const auto retry = std::ranges::find_if(r.headers, [](const auto& h) { return h.first == "Retry-After"; });
  ASSERT_NE(retry, r.headers.end());
  EXPECT_EQ(retry->second, "1");
  EXPECT_EQ(probe().status, 503) << "an attack is not served either";
}

// JPCERT I-4: turning TOTP off is an alert; then enrolling works again. Administrators
// cannot turn theirs off; an administrator resets someone else's.
TEST_F(SecurityApiTest, TurningTotpOffIsAnAlertAndEnrollingWorksAgain) {
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string auditor = add_person("auditor", identity::kRoleAuditor, "default");
  const std::string bob = add_person("bob", identity::kRoleViewer, "default");
  const std::string carol = add_person("carol", identity::kRoleOperator, "default");
  for (const auto& id : {admin, bob, carol}) {
    auto user = *store_->users().find(id).value();
    user.totp_enabled = true;
    user.totp_sealed = Bytes{1, 2, 3};
    ASSERT_TRUE(store_->users().update(user));
  }
  const Response refused = call("DELETE", "/api/v1/account/totp", admin);
  EXPECT_EQ(refused.status, 409);
  EXPECT_THAT(refused.body, HasSubstr("second_factor_required"));

  EXPECT_EQ(call("DELETE", "/api/v1/account/totp", bob).status, 204);
  EXPECT_FALSE(store_->users().find(bob).value()->totp_enabled);
  EXPECT_EQ(call("DELETE", "/api/v1/account/totp", bob).status, 409) << "nothing left to turn off";
  const Response again = call("POST", "/api/v1/account/totp", bob);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_THAT(again.body, HasSubstr("otpauth://"));

  EXPECT_EQ(call("DELETE", "/api/v1/users/" + carol + "/totp", bob).status, 403) << "a viewer resets nobody";
  EXPECT_EQ(call("DELETE", "/api/v1/users/" + carol + "/totp", admin).status, 204);
  EXPECT_FALSE(store_->users().find(carol).value()->totp_enabled);

  const auto alerts = alert_keys("/api/v1/alerts", auditor);
  EXPECT_THAT(alerts, Contains("totp.disabled:user:" + bob));
  EXPECT_THAT(alerts, Contains("second_factor.reset:user:" + carol));
}

// JPCERT VII-2: the log's verification through the API finds an edited line.
TEST_F(SecurityApiTest, VerificationSaysWhetherTheLogWasAltered) {
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string auditor = add_person("auditor", identity::kRoleAuditor, "default");
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(log_->append({"system", "server.start", "", events::Outcome::success, "", json::object()}));
  ASSERT_TRUE(log_->checkpoint());
  EXPECT_EQ(call("GET", "/api/v1/security-log/verify", viewer).status, 403);
  const auto verified = json::parse(call("GET", "/api/v1/security-log/verify", admin).body);
  EXPECT_EQ(verified["ok"], true) << verified.dump();
  EXPECT_TRUE(verified["first_problem"].is_null());
  EXPECT_GE(verified["lines"].get<int>(), 4);
  EXPECT_TRUE(verified["last_checkpoint_seq"].is_number());
  const auto told = json::parse(call("GET", "/api/v1/security-log/verify", auditor).body);
  EXPECT_EQ(told["ok"], true);
  EXPECT_FALSE(told.contains("lines")) << "the size of the installation's log is the system administrator's";

  // Someone edits the second line in place.
  const auto path = dir_.path() / "log" / "security.log";
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  in.close();
  ASSERT_GE(lines.size(), 2u);
  const auto at = lines[1].find("server.start");
  ASSERT_NE(at, std::string::npos);
  lines[1].replace(at, 12, "server.stopp");
  std::ofstream out(path, std::ios::trunc);
  for (const auto& line : lines) out << line << "\n";
  out.close();
  const auto broken = json::parse(call("GET", "/api/v1/security-log/verify", auditor).body);
  EXPECT_EQ(broken["ok"], false);
  EXPECT_EQ(broken["first_problem"]["line"], 2) << broken.dump();
}

}  // namespace
// JPCERT I-8: an organisation's own role, defined through the API, grants exactly what it
// lists, to the people given it.
TEST_F(ApiTest, ACustomRoleMadeThroughTheApiGrantsExactlyItsPermissions) {
  ASSERT_TRUE(store_->organisations().insert({"acme", "Acme", false, 0}));
  const std::string admin = add_person("acme-admin", identity::kRoleOrgAdmin, "acme");
  const std::string tech = add_person("tech", identity::kRoleViewer, "acme");
  add_device("acme-pump", "acme");

  const Response made =
      call("POST", "/api/v1/roles", admin, R"({"name":"field-tech","permissions":["telemetry.read","devices.read"]})");
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_THAT(made.body, ::testing::HasSubstr(R"("permissions":["account.self","devices.read","telemetry.read"])"));
  EXPECT_EQ(call("POST", "/api/v1/roles", admin, R"({"name":"x-role","permissions":"devices.read"})").status, 400);
  const Response refused =
      call("POST", "/api/v1/roles", admin, R"({"name":"snoop","permissions":["security_log.read","settings.write"]})");
  EXPECT_EQ(refused.status, 422);
  EXPECT_THAT(refused.body, ::testing::HasSubstr(R"("code":"forbidden")"));
  EXPECT_THAT(refused.body, ::testing::HasSubstr(R"("code":"not_allowed")"));
  EXPECT_THAT(call("GET", "/api/v1/roles", admin).body, ::testing::HasSubstr(R"("name":"field-tech")"));

  ASSERT_EQ(call("PATCH", "/api/v1/users/" + tech, admin, R"({"role":"field-tech"})").status, 200);
  EXPECT_EQ(call("GET", "/api/v1/devices/acme-pump", tech).status, 200);
  EXPECT_EQ(call("GET", "/api/v1/users", tech).status, 403);
  EXPECT_EQ(call("DELETE", "/api/v1/roles/field-tech", admin).status, 409) << "somebody holds it";

  // Taking devices.read away applies to the next request.
  ASSERT_EQ(call("PATCH", "/api/v1/roles/field-tech", admin, R"({"permissions":["telemetry.read"]})").status, 200);
  EXPECT_EQ(call("GET", "/api/v1/devices/acme-pump", tech).status, 403);
}

// Keeps what the API posts, as the server's SMTP outbox would send it.
class RecordingOutbox final : public mail::Outbox {
 public:
  bool post(mail::MailMessage message) override {
    if (full) return false;
    sent.push_back(std::move(message));
    return true;
  }
  std::vector<mail::MailMessage> sent;
  bool full = false;
};

// The token of the link in a mailed message ("https://host/password#<token>").
std::string token_in(const mail::MailMessage& message) {
  const auto at = message.body.find("/password#");
  if (at == std::string::npos) return "";
  const auto start = at + 10;
  return message.body.substr(start, message.body.find('\n', start) - start);
}

// JPCERT I-1, IIIT DI7: the answer is the same whoever is named (and comes before any
// lookup); only an active person with an address gets a link, at most one per interval;
// the event names the person, never the link.
TEST_F(ApiTest, ForgotPasswordAnswersTheSameWhoeverIsNamedAndMailsOnlyActivePeople) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string bob = add_person("bob", identity::kRoleOperator, "default");
  const std::string carol = add_person("carol", identity::kRoleViewer, "default");
  auto carol_record = store_->users().find(carol).value().value();
  carol_record.status = "disabled";
  ASSERT_TRUE(store_->users().update(carol_record));

  const Response off = send("POST", "/api/v1/password-reset", {}, R"({"name":"bob"})");
  EXPECT_EQ(off.status, 503);
  EXPECT_NE(off.body.find("mail_unavailable"), std::string::npos);

  RecordingOutbox outbox;
  use_mail(&outbox);
  const Response for_bob = send("POST", "/api/v1/password-reset", {}, R"({"name":"bob"})");
  EXPECT_EQ(for_bob.status, 202);
  for (const char* name : {"nobody", "carol", "nobody@example.org", "bob"}) {
    const Response other = send("POST", "/api/v1/password-reset", {}, fmt::format(R"({{"name":"{}"}})", name));
    EXPECT_EQ(other.status, for_bob.status) << name;
    EXPECT_EQ(other.body, for_bob.body) << name;
  }
  ASSERT_EQ(outbox.sent.size(), 1U) << "disabled and unknown people get nothing; bob once per interval";
  const auto& message = outbox.sent.front();
  EXPECT_EQ(message.to, "bob@example.org");
  EXPECT_NE(message.body.find("https://localhost:8443/password#"), std::string::npos);
  const std::string token = token_in(message);
  ASSERT_EQ(token.size(), 43U);
  for (const auto& e : events_) EXPECT_EQ(e.details.dump().find(token), std::string::npos) << e.action;
  EXPECT_EQ(std::ranges::count_if(events_,
                                  [&](const events::SecurityEvent& e) {
                                    return e.action == "password_link.mailed" && e.object == "user:" + bob &&
                                           e.outcome == events::Outcome::success;
                                  }),
            1);

  clock_.advance(std::chrono::minutes(5));
  EXPECT_EQ(send("POST", "/api/v1/password-reset", {}, R"({"name":"BOB@example.org"})").status, 202);
  ASSERT_EQ(outbox.sent.size(), 2U) << "by address, once the interval has passed";
  const std::string newer = token_in(outbox.sent.back());
  const Response old_link = send("POST", "/api/v1/password-link", {},
                                 R"({"token":")" + token + R"(","new_password":"violet harbour ladder sprinkle 42"})");
  EXPECT_EQ(old_link.status, 422) << "the newer link replaced it";
  const Response used = send("POST", "/api/v1/password-link", {},
                             R"({"token":")" + newer + R"(","new_password":"violet harbour ladder sprinkle 42"})");
  EXPECT_EQ(used.status, 204) << used.body;
}

TEST_F(ApiTest, AnAdministratorSendsAPasswordLinkByEMail) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleOrgAdmin, "default");
  const std::string bob = add_person("bob", identity::kRoleViewer, "default");
  const std::string target = "/api/v1/users/" + bob + "/password-link";
  const Response unconfigured = call("POST", target, admin, R"({"send":"email"})");
  EXPECT_EQ(unconfigured.status, 503);
  EXPECT_NE(unconfigured.body.find("mail_unavailable"), std::string::npos);

  RecordingOutbox outbox;
  use_mail(&outbox);
  EXPECT_EQ(call("POST", target, admin, R"({"send":"fax"})").status, 422);
  const Response mailed = call("POST", target, admin, R"({"send":"email"})");
  ASSERT_EQ(mailed.status, 202) << mailed.body;
  const auto body = nlohmann::json::parse(mailed.body);
  EXPECT_EQ(body.at("email"), "bob@example.org");
  EXPECT_FALSE(body.contains("token") || body.contains("password_link")) << "the link goes by mail only";
  ASSERT_EQ(outbox.sent.size(), 1U);
  EXPECT_EQ(outbox.sent[0].to, "bob@example.org");
  EXPECT_EQ(token_in(outbox.sent[0]).size(), 43U);
  EXPECT_EQ(mailed.body.find(token_in(outbox.sent[0])), std::string::npos);

  const Response shown = call("POST", target, admin);
  EXPECT_EQ(shown.status, 200) << "without a body the link is in the answer, as before";
  EXPECT_TRUE(nlohmann::json::parse(shown.body).contains("password_link"));

  outbox.full = true;
  EXPECT_EQ(call("POST", target, admin, R"({"send":"email"})").status, 503);
  outbox.full = false;
  auto record = store_->users().find(bob).value().value();
  record.email = "not an address";
  ASSERT_TRUE(store_->users().update(record));
  const Response nowhere = call("POST", target, admin, R"({"send":"email"})");
  EXPECT_EQ(nowhere.status, 409);
  EXPECT_NE(nowhere.body.find("no_email"), std::string::npos);
  EXPECT_EQ(outbox.sent.size(), 1U);
}

// One operation of docs/openapi.yaml, as far as the server's route table can check it.
struct DocumentedOperation {
  std::string access;
  std::string permission;
  bool step_up = false;
  std::set<std::string> members;   // request body members
  std::set<std::string> required;  // ... of which required

  friend bool operator==(const DocumentedOperation&, const DocumentedOperation&) = default;
};

// Reads the layout docs/openapi.yaml keeps (its header says so): paths at two spaces,
// methods at four, x- fields at six, body members at sixteen.
std::map<std::string, DocumentedOperation> read_openapi(const std::string& text) {
  std::map<std::string, DocumentedOperation> out;
  const std::regex path_line("^  (/api/\\S+):$");
  const std::regex method_line("^    (get|put|post|patch|delete):$");
  const std::regex field_line("^      x-(access|permission|step-up): (.+)$");
  const std::regex required_line("^              required: \\[(.*)\\]$");
  const std::regex member_line("^                ([a-z_]+): \\{.*$");
  std::istringstream lines(text);
  std::string line;
  std::string path;
  DocumentedOperation* op = nullptr;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, path_line)) {
      path = m[1];
      op = nullptr;
    } else if (std::regex_match(line, m, method_line) && !path.empty()) {
      std::string method = m[1];
      std::ranges::transform(method, method.begin(), [](char c) { return static_cast<char>(std::toupper(c)); });
      op = &out[method + " " + path];
    } else if (op != nullptr && std::regex_match(line, m, field_line)) {
      if (m[1] == "access") op->access = m[2];
      if (m[1] == "permission") op->permission = m[2];
      if (m[1] == "step-up") op->step_up = m[2] == "true";
    } else if (op != nullptr && std::regex_match(line, m, required_line)) {
      std::istringstream names(m[1].str());
      for (std::string name; std::getline(names, name, ',');) {
        name.erase(0, name.find_first_not_of(' '));
        op->required.insert(name);
      }
    } else if (op != nullptr && std::regex_match(line, m, member_line)) {
      op->members.insert(m[1]);
    }
  }
  return out;
}

// The OpenAPI document describes exactly the routes in force: every path and method, who
// may call it, its permission, step-up, and the members its body takes.
TEST_F(ApiTest, TheOpenApiDocumentDescribesEveryRouteInForce) {
  const auto documented = read_openapi(read_doc("openapi.yaml"));
  std::map<std::string, DocumentedOperation> served;
  for (const auto& r : api_->routes()) {
    DocumentedOperation op{std::string(r.access), std::string(r.permission), r.step_up, {}, {}};
    for (const auto& f : r.body) {
      op.members.insert(std::string(f.name));
      if (f.required) op.required.insert(std::string(f.name));
    }
    served[fmt::format("{} {}", r.method, r.pattern)] = op;
  }
  ASSERT_FALSE(documented.empty());
  for (const auto& [route, op] : served) {
    auto it = documented.find(route);
    if (it == documented.end()) {
      ADD_FAILURE() << route << " is served but not in docs/openapi.yaml";
      continue;
    }
    EXPECT_EQ(it->second.access, op.access) << route;
    EXPECT_EQ(it->second.permission, op.permission) << route;
    EXPECT_EQ(it->second.step_up, op.step_up) << route;
    EXPECT_EQ(it->second.members, op.members) << route;
    EXPECT_EQ(it->second.required, op.required) << route;
  }
  for (const auto& [route, op] : documented) {
    EXPECT_TRUE(served.contains(route)) << route << " is in docs/openapi.yaml but not served";
  }
}

// The settings in force, for the system administrator: every value is the configuration's,
// under the configuration file's own section and key names (docs/configuration.md).
TEST_F(ApiTest, TheSettingsInForceAreShownUnderTheConfigurationsOwnNames) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const Response r = call("GET", "/api/v1/settings", admin);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = nlohmann::json::parse(r.body);
  const auto& settings = body.at("settings");
  EXPECT_EQ(settings.at("accounts").at("lock_after_failures"), config_.accounts.lock_after_failures);
  EXPECT_EQ(settings.at("console").at("listen"), nlohmann::json::array({"127.0.0.1:8443"}));
  EXPECT_EQ(body.at("version"), std::string(kVersion)) << "for the About page";
  const auto& known = config::known_keys();
  int checked = 0;
  for (const auto& [section, values] : settings.items()) {
    if (section == "password_policy") continue;  // fixed by torii, not configurable
    for (const auto& [key, value] : values.items()) {
      EXPECT_NE(std::ranges::find(known, section + "." + key), known.end()) << section << "." << key;
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
  EXPECT_EQ(call("GET", "/api/v1/settings", add_person("viewer", identity::kRoleViewer, "default")).status, 403);
}

}  // namespace torii::console

namespace torii::console {
namespace {

// PATCH /api/v1/settings: the changes of one request, as a system administrator.
std::string changes(const nlohmann::json& c) { return nlohmann::json{{"changes", c}}.dump(); }

const events::SecurityEvent* last_event(const std::vector<events::SecurityEvent>& events, std::string_view object) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    if (it->object == object) return &*it;
  }
  return nullptr;
}

TEST_F(ApiTest, ChangingSettingsNeedsTheSystemAdministratorAndARecentProof) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string org_admin = add_person("org-admin", identity::kRoleOrgAdmin, "default");
  const std::string body = changes({{"accounts.lock_after_failures", 3}});
  const Response refused = call("PATCH", "/api/v1/settings", org_admin, body);
  EXPECT_EQ(refused.status, 403);
  EXPECT_THAT(refused.body, ::testing::HasSubstr("\"code\":\"forbidden\""));
  const std::string session = session_of(admin);
  clock_.advance(std::chrono::minutes(6));
  const Response stale =
      send("PATCH", "/api/v1/settings",
           {{"cookie", std::string(kSessionCookie) + "=" + session}, {"x-csrf-token", csrf_token(session)}}, body);
  EXPECT_EQ(stale.status, 403);
  EXPECT_THAT(stale.body, ::testing::HasSubstr("step_up_required"));
  EXPECT_TRUE(store_->setting_overrides().list().value().empty());
  EXPECT_EQ(call("PATCH", "/api/v1/settings", admin, body).status, 200);
}

// A lower lockout threshold locks the next account sooner at once; the change is stored, a
// console made afterwards (a restart) starts with it, and null returns the file's value.
TEST_F(ApiTest, ALowerLockoutThresholdLocksSoonerAtOnceAndIsKeptUntilReset) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const std::string bob = add_person("bob", identity::kRoleViewer, "default");
  auto user = *store_->users().find(bob).value();
  const std::string password = "violet harbour ladder sprinkle 42";
  user.password_hash = identity::hash_password(password, identity::minimum_password_hash_cost()).value();
  ASSERT_TRUE(store_->users().update(user));

  const Response changed = call("PATCH", "/api/v1/settings", admin, changes({{"accounts.lock_after_failures", 2}}));
  ASSERT_EQ(changed.status, 200) << changed.body;
  const auto body = nlohmann::json::parse(changed.body);
  EXPECT_EQ(body.at("settings").at("accounts").at("lock_after_failures"), 2);
  EXPECT_EQ(body.at("changed"),
            nlohmann::json::parse(R"([{"key":"accounts.lock_after_failures","value":2,"applies":"now"}])"));
  const auto& source = body.at("keys").at("accounts.lock_after_failures");
  EXPECT_EQ(source.at("source"), "console");
  EXPECT_EQ(source.at("changed_by"), "user:" + admin);
  const auto* event = last_event(events_, "setting:accounts.lock_after_failures");
  ASSERT_NE(event, nullptr);
  EXPECT_EQ(event->action, "settings.changed");
  EXPECT_EQ(event->details.at("old"), 5);
  EXPECT_EQ(event->details.at("new"), 2);
  EXPECT_FALSE(event->details.contains("alert")) << "a stricter lockout is no alert";

  const identity::Origin from{"192.0.2.9:4000", "test"};
  EXPECT_EQ(accounts_->sign_in("bob", "not the password at all", from)->status, identity::SignInStatus::refused);
  EXPECT_EQ(accounts_->sign_in("bob", "not the password at all", from)->status, identity::SignInStatus::locked);
  EXPECT_EQ(accounts_->sign_in("bob", password, from)->status, identity::SignInStatus::locked);

  // A console made over the same store, as at the next start, has the change.
  make_api();
  const auto shown = nlohmann::json::parse(call("GET", "/api/v1/settings", admin).body);
  EXPECT_EQ(shown.at("settings").at("accounts").at("lock_after_failures"), 2);
  EXPECT_EQ(shown.at("keys").at("accounts.lock_after_failures").at("source"), "console");

  // Back to the file's value: a weaker lockout, so an alert.
  events_.clear();
  const Response reset = call("PATCH", "/api/v1/settings", admin, changes({{"accounts.lock_after_failures", nullptr}}));
  ASSERT_EQ(reset.status, 200) << reset.body;
  const auto after = nlohmann::json::parse(reset.body);
  EXPECT_EQ(after.at("settings").at("accounts").at("lock_after_failures"), config_.accounts.lock_after_failures);
  EXPECT_EQ(after.at("keys").at("accounts.lock_after_failures").at("source"), "file");
  EXPECT_TRUE(store_->setting_overrides().list().value().empty());
  event = last_event(events_, "setting:accounts.lock_after_failures");
  ASSERT_NE(event, nullptr);
  EXPECT_EQ(event->details.at("source"), "file");
  EXPECT_EQ(event->details.value("alert", false), true);
  EXPECT_EQ(accounts_->options().lock_after_failures, 5);
}

// All or nothing: every problem is listed with the file's messages, nothing is stored and
// nothing changes.
TEST_F(ApiTest, ARefusedSettingsChangeListsEveryProblemAndChangesNothing) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const Response r = call("PATCH", "/api/v1/settings", admin,
                          changes({{"accounts.session_idle_minutes", 30},
                                   {"accounts.lock_after_failures", 0},
                                   {"accounts.first_lock_seconds", "soon"},
                                   {"firewall.deny", {"203.0.113.0/33"}},
                                   {"tls.min_version", "1.3"},
                                   {"console.listen", nullptr}}));
  ASSERT_EQ(r.status, 422) << r.body;
  const auto refused = nlohmann::json::parse(r.body);
  std::set<std::string> fields;
  for (const auto& e : refused.at("errors")) fields.insert(e.at("field").get<std::string>());
  EXPECT_EQ(fields, (std::set<std::string>{"accounts.lock_after_failures", "accounts.first_lock_seconds",
                                           "firewall.deny[0]", "tls.min_version", "console.listen"}));
  EXPECT_THAT(r.body, ::testing::HasSubstr("must be between 1 and 100 (got 0)"));
  EXPECT_TRUE(store_->setting_overrides().list().value().empty());
  EXPECT_EQ(accounts_->options().session_idle, std::chrono::minutes(15));
  const auto shown = nlohmann::json::parse(call("GET", "/api/v1/settings", admin).body);
  EXPECT_EQ(shown.at("settings").at("accounts").at("session_idle_minutes"), 15);
  EXPECT_EQ(call("PATCH", "/api/v1/settings", admin, R"({"changes":{}})").status, 422);
  EXPECT_EQ(call("PATCH", "/api/v1/settings", admin, R"({"changes":[1]})").status, 400);
}

// The firewall lists reach the server's filter at once (settings_changed), widening them is
// an alert, and a change that would refuse the caller's own address is refused.
TEST_F(ApiTest, FirewallListsChangeAtOnceButNeverShutTheCallerOut) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  std::vector<config::FirewallConfig> applied;
  ApiContext context{config_,
                     *store_,
                     *accounts_,
                     *people_,
                     *tokens_,
                     pool_,
                     clock_,
                     [this](const events::SecurityEvent& e) { events_.push_back(e); },
                     "https://localhost:8443"};
  context.settings_changed = [&](const config::Config& next) { applied.push_back(next.firewall); };
  api_ = std::make_unique<Api>(std::move(context));

  // Requests come from 192.0.2.7.
  for (const auto& shut_out :
       {changes({{"firewall.deny", {"192.0.2.0/24"}}}), changes({{"firewall.allow", {"10.0.0.0/8"}}})}) {
    const Response r = call("PATCH", "/api/v1/settings", admin, shut_out);
    EXPECT_EQ(r.status, 422) << r.body;
    EXPECT_THAT(r.body, ::testing::HasSubstr("locks_you_out"));
    EXPECT_THAT(r.body, ::testing::HasSubstr("192.0.2.7"));
  }
  EXPECT_TRUE(applied.empty());
  EXPECT_TRUE(store_->setting_overrides().list().value().empty());

  const Response denied = call("PATCH", "/api/v1/settings", admin,
                               changes({{"firewall.deny", {"203.0.113.0/24"}}, {"firewall.allow", {"192.0.2.0/24"}}}));
  ASSERT_EQ(denied.status, 200) << denied.body;
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].deny, std::vector<std::string>{"203.0.113.0/24"});
  EXPECT_EQ(applied[0].allow, std::vector<std::string>{"192.0.2.0/24"});
  EXPECT_FALSE(last_event(events_, "setting:firewall.deny")->details.contains("alert"));

  const Response opened = call("PATCH", "/api/v1/settings", admin, changes({{"firewall.deny", nullptr}}));
  ASSERT_EQ(opened.status, 200) << opened.body;
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_TRUE(applied[1].deny.empty());
  const auto* event = last_event(events_, "setting:firewall.deny");
  EXPECT_EQ(event->details.value("alert", false), true);
  EXPECT_EQ(event->details.at("old"), nlohmann::json::array({"203.0.113.0/24"}));
}

// A key read only at start says so, and stays pending until then.
TEST_F(ApiTest, ASettingReadAtStartIsPendingUntilTheNextStart) {
  ASSERT_TRUE(store_->organisations().insert({"default", "Default", false, 0}));
  const std::string admin = add_person("admin", identity::kRoleSystemAdmin, "default");
  const Response r = call("PATCH", "/api/v1/settings", admin, changes({{"log.retention_days", 30}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body.at("changed").at(0).at("applies"), "next start");
  EXPECT_EQ(body.at("keys").at("log.retention_days").at("pending_restart"), true);
  EXPECT_EQ(body.at("keys").at("accounts.lock_after_failures").at("pending_restart"), false);
  make_api();
  const auto restarted = nlohmann::json::parse(call("GET", "/api/v1/settings", admin).body);
  EXPECT_EQ(restarted.at("settings").at("log").at("retention_days"), 30);
  EXPECT_EQ(restarted.at("keys").at("log.retention_days").at("pending_restart"), false);
}

}  // namespace
}  // namespace torii::console

// The device, profile and telemetry routes of the console API, through the whole request
// chain, with a real store, key ring, CA and device registry; the gateway is a recorder.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "console/api.h"
#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "crypto/x509.h"
#include "identity/device_commands.h"
#include "identity/enrolment.h"
#include "identity/roles.h"
#include "pki/certificate_authority.h"
#include "policy/device_command.h"
#include "policy/profile.h"
#include "testing/fakes.h"
#include "testing/keyed_store_fixture.h"
#include "testing/temp_dir.h"

namespace torii::console {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

class DeviceApiTest : public testing::KeyedStoreTest {
 protected:
  void SetUp() override {
    KeyedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    ca_ = std::make_unique<pki::CertificateAuthority>(*store_, *keys_, clock_, random_, config::PkiConfig{});
    ASSERT_TRUE(ca_->initialise({"localhost"}));
    registry_ = std::make_unique<identity::DeviceRegistry>(*store_, *keys_, *ca_, clock_);
    identity::AccountsOptions options;
    options.hash_cost = identity::minimum_password_hash_cost();
    accounts_ = std::make_unique<identity::Accounts>(*store_, *keys_, clock_, random_, options, nullptr);
    people_ = std::make_unique<identity::People>(*store_, clock_, random_, identity::PeopleOptions{options.hash_cost},
                                                 nullptr);
    GatewayHooks hooks;
    hooks.disconnect_device = [this](std::string_view id, std::string_view why) {
      disconnected_.emplace_back(id, why);
    };
    hooks.reload_routes = [this]() -> Status {
      ++route_reloads_;
      return ok();
    };
    hooks.profile_changed = [this](std::string_view id) { changed_profiles_.emplace_back(id); };
    hooks.send_command = [this](const identity::IssuedCommand& c) { sent_commands_.push_back(c); };
    hooks.connected = [this](std::string_view id) { return connected_.contains(std::string(id)); };
    hooks.device_deleted = [this](std::string_view id) { deleted_.emplace_back(id); };
    hooks.device_changed = [this](const store::DeviceRecord& d) {
      changed_devices_.push_back(fmt::format("{}:{}:{}", d.id, d.status, fmt::join(d.tags, ",")));
    };
    tokens_ = std::make_unique<identity::ApiTokens>(*store_, clock_, random_,
                                                    identity::ApiTokenOptions{std::chrono::hours(24) * 90}, nullptr);
    enrolment_ = std::make_unique<identity::Enrolment>(*store_, *registry_, clock_, random_);
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
                       registry_.get(),
                       keys_.get(),
                       std::move(hooks)};
    context.enrolment = enrolment_.get();
    auto commands = identity::DeviceCommands::open(*store_, *keys_, clock_, random_);
    ASSERT_TRUE(commands) << commands.error().message;
    commands_ = std::move(*commands);
    context.commands = commands_.get();
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

  // A request without session, cookie or CSRF token: what a device sends.
  Response call_public(const std::string& method, const std::string& target, const std::string& body,
                       const std::string& source = "192.0.2.9:4000") {
    Request r;
    r.method = method;
    r.path = target;
    r.source = source;
    r.headers = {{"content-type", "application/json"}};
    r.body = body;
    Response out;
    boost::asio::io_context io;
    boost::asio::co_spawn(io, api_->handle(std::move(r)), [&](const std::exception_ptr& e, Response response) {
      EXPECT_FALSE(e);
      out = std::move(response);
    });
    io.run();
    return out;
  }

  // A CSR as a device makes it, with its key.
  std::pair<crypto::SecretBytes, std::string> device_csr() {
    auto key = crypto::generate_p256_key();
    EXPECT_TRUE(key);
    auto csr = crypto::make_csr(*key, "whatever-the-device-says");
    EXPECT_TRUE(csr);
    return {std::move(*key), csr ? *csr : std::string()};
  }

  Response enrol(const std::string& token, const std::string& csr, const std::string& source = "192.0.2.9:4000") {
    return call_public("POST", "/api/v1/enrol", json{{"token", token}, {"csr", csr}}.dump(), source);
  }

  // A device created awaiting enrolment through the API: its token.
  std::string awaiting(const std::string& id) {
    const Response made = call("POST", "/api/v1/devices", admin_, json{{"id", id}, {"enrolment", true}}.dump());
    EXPECT_EQ(made.status, 201) << made.body;
    return body(made).value("enrolment_token", "");
  }

  [[nodiscard]] std::vector<std::string> reasons_refused() const {
    std::vector<std::string> out;
    for (const auto& e : events_) {
      if (e.action == "device.enrolment_refused") out.push_back(e.details.value("reason", ""));
    }
    return out;
  }

  // One request through the whole chain, as the person with a fresh session.
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

  [[nodiscard]] std::vector<std::string> actions_by(const std::string& actor) const {
    std::vector<std::string> out;
    for (const auto& e : events_) {
      if (e.actor == actor) out.push_back(e.action);
    }
    return out;
  }

  void add_device(const std::string& id, const std::string& organisation) {
    identity::NewDevice spec;
    spec.id = id;
    spec.organisation_id = organisation;
    ASSERT_TRUE(registry_->create(spec));
  }

  // A telemetry message as the gateway's store writer stores it: sealed under the device key.
  void store_message(const std::string& device, UnixMillis at, const std::string& payload,
                     std::string_view kind = store::kTelemetryKindTelemetry) {
    const std::string key_id = keys::device_key_id(device);
    auto sealed = keys_->seal(key_id, as_bytes(payload), keys::telemetry_associated_data(device, kind, at, ""));
    ASSERT_TRUE(sealed);
    const store::TelemetryRecord record{0, device, std::string(kind), "", at, key_id, std::move(*sealed)};
    ASSERT_TRUE(store_->telemetry().append(std::span(&record, 1)));
  }

  config::Config config_;
  WorkPool pool_{1, 4};
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<identity::DeviceRegistry> registry_;
  std::unique_ptr<identity::Enrolment> enrolment_;
  std::unique_ptr<identity::DeviceCommands> commands_;
  std::vector<identity::IssuedCommand> sent_commands_;
  std::unique_ptr<identity::Accounts> accounts_;
  std::unique_ptr<identity::People> people_;
  std::unique_ptr<identity::ApiTokens> tokens_;
  std::unique_ptr<Api> api_;
  std::vector<events::SecurityEvent> events_;
  std::vector<std::pair<std::string, std::string>> disconnected_;
  std::vector<std::string> deleted_;
  std::vector<std::string> changed_devices_;  // "id:status:tag,tag"
  int route_reloads_ = 0;
  std::vector<std::string> changed_profiles_;
  std::set<std::string> connected_;  // devices the gateway reports connected
  std::string admin_;
};

TEST_F(DeviceApiTest, ACreatedDevicesKeyIsShownOnceAndNeverAgain) {
  const Response made = call("POST", "/api/v1/devices", admin_, R"({"id":"pump-1","name":"Pump one"})");
  ASSERT_EQ(made.status, 201) << made.body;
  const json j = body(made);
  EXPECT_EQ(j["device"]["id"], "pump-1");
  EXPECT_EQ(j["device"]["organisation"], "default");
  EXPECT_EQ(j["device"]["status"], "active");
  const std::string key = j["private_key_pem"];
  EXPECT_THAT(key, HasSubstr("BEGIN PRIVATE KEY"));
  EXPECT_TRUE(crypto::check_key_matches_certificate(crypto::SecretBytes(as_bytes(key)),
                                                    j["certificate_pem"].get<std::string>()));
  EXPECT_EQ(j["ca_bundle_pem"], *ca_->issuing_certificate_pem() + *ca_->root_certificate_pem());
  EXPECT_EQ(j["certificate"]["revoked"], false);

  // Nothing secret is retrievable afterwards.
  for (const std::string target : {"/api/v1/devices/pump-1", "/api/v1/devices"}) {
    const Response later = call("GET", target, admin_);
    EXPECT_EQ(later.status, 200);
    EXPECT_THAT(later.body, Not(HasSubstr("PRIVATE KEY"))) << target;
    EXPECT_THAT(later.body, HasSubstr("pump-1")) << target;
  }
  EXPECT_EQ(body(call("GET", "/api/v1/devices/pump-1", admin_))["certificates"][0]["serial"],
            j["certificate"]["serial"]);
  EXPECT_THAT(actions_by("user:" + admin_), ElementsAre("device.created", "certificate.issued"));
  for (const auto& e : events_) EXPECT_THAT(e.details.dump(), Not(HasSubstr("PRIVATE"))) << e.action;

  // With a CSR the key stays on the device: no key in the answer.
  auto device_key = crypto::generate_p256_key();
  const json with_csr = {{"id", "valve-1"}, {"csr", *crypto::make_csr(*device_key, "valve-1")}};
  const Response csr = call("POST", "/api/v1/devices", admin_, with_csr.dump());
  ASSERT_EQ(csr.status, 201) << csr.body;
  EXPECT_FALSE(body(csr).contains("private_key_pem"));
  EXPECT_TRUE(crypto::check_key_matches_certificate(*device_key, body(csr)["certificate_pem"].get<std::string>()));
}

TEST_F(DeviceApiTest, BadInputIsRefusedWithEveryProblemAndATakenIdWith409) {
  const Response bad =
      call("POST", "/api/v1/devices", admin_, R"({"id":"Bad Id","name":"tab\there","segment":"a b","profile":"nope"})");
  EXPECT_EQ(bad.status, 422) << bad.body;
  EXPECT_EQ(problem_fields(bad), (std::set<std::string>{"id", "name", "segment", "profile"}));
  // Another organisation's profile is no profile of this one.
  ASSERT_TRUE(store_->device_profiles().put(
      {"acme-env", "acme", "Acme", std::string(policy::sample_environment_profile_json()), 1, 0}));
  EXPECT_EQ(problem_fields(call("POST", "/api/v1/devices", admin_, R"({"id":"a-1","profile":"acme-env"})")),
            (std::set<std::string>{"profile"}));
  const Response csr = call("POST", "/api/v1/devices", admin_, R"({"id":"a-1","csr":"not a request"})");
  EXPECT_EQ(csr.status, 422);
  EXPECT_EQ(problem_fields(csr), (std::set<std::string>{"csr"}));
  EXPECT_FALSE(*store_->devices().find("a-1")) << "nothing is left of a refused device";

  EXPECT_EQ(call("POST", "/api/v1/devices", admin_, R"({"id":"pump-1"})").status, 201);
  const Response taken = call("POST", "/api/v1/devices", admin_, R"({"id":"pump-1"})");
  EXPECT_EQ(taken.status, 409);
  EXPECT_EQ(problem_fields(taken), (std::set<std::string>{"id"}));
  // A body without an id, or with a member the route does not take.
  EXPECT_EQ(call("POST", "/api/v1/devices", admin_, R"({"name":"x","key":"y"})").status, 400);
}

TEST_F(DeviceApiTest, DisablingRevokingAndDeletingCloseTheLiveSessionAndAreRecorded) {
  add_device("pump-1", "default");
  const Response disabled = call("POST", "/api/v1/devices/pump-1/disable", admin_, R"({"reason":"maintenance"})");
  ASSERT_EQ(disabled.status, 200) << disabled.body;
  EXPECT_EQ(body(disabled)["status"], "disabled");
  EXPECT_EQ(body(disabled)["disabled_reason"], "maintenance");
  EXPECT_THAT(disconnected_, ElementsAre(Pair("pump-1", "device disabled")));

  const Response enabled = call("POST", "/api/v1/devices/pump-1/enable", admin_, "{}");
  ASSERT_EQ(enabled.status, 200) << enabled.body;
  EXPECT_EQ(body(enabled)["status"], "active");
  EXPECT_EQ(disconnected_.size(), 1u) << "enabling closes nothing";
  EXPECT_THAT(changed_devices_, ElementsAre("pump-1:active:")) << "the running rules watch it again";

  const Response revoked = call("POST", "/api/v1/devices/pump-1/revoke", admin_, "{}");
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(body(revoked)["revoked"].size(), 1u);
  EXPECT_EQ(disconnected_.back(), (std::pair<std::string, std::string>{"pump-1", "certificate revoked"}));
  const auto certificates = store_->certificates().list_for_device("pump-1");
  ASSERT_TRUE(certificates);
  for (const auto& c : *certificates) EXPECT_TRUE(c.revoked_at);

  EXPECT_EQ(call("DELETE", "/api/v1/devices/pump-1", admin_).status, 204);
  EXPECT_EQ(disconnected_.back(), (std::pair<std::string, std::string>{"pump-1", "device deleted"}));
  EXPECT_THAT(deleted_, ElementsAre("pump-1")) << "the running rules forget it";
  EXPECT_EQ(route_reloads_, 1);
  EXPECT_FALSE(*store_->devices().find("pump-1"));
  EXPECT_FALSE(keys_->seal(keys::device_key_id("pump-1"), as_bytes("x"), "ad")) << "its key is destroyed";
  EXPECT_EQ(call("GET", "/api/v1/devices/pump-1", admin_).status, 404);

  EXPECT_THAT(actions_by("user:" + admin_),
              ElementsAre("device.disabled", "device.enabled", "certificate.revoked", "device.deleted"));
  EXPECT_EQ(events_.front().object, "device:pump-1");
  EXPECT_EQ(events_.front().source, "192.0.2.7:4000");
}

TEST_F(DeviceApiTest, TheListAndADevicesPageSayWhetherItIsConnectedNow) {
  add_device("pump-1", "default");
  add_device("pump-2", "default");
  connected_.insert("pump-2");
  const Response list = call("GET", "/api/v1/devices", admin_);
  ASSERT_EQ(list.status, 200) << list.body;
  std::map<std::string, bool> seen;
  const json listed = body(list);
  for (const auto& d : listed["devices"]) seen[d["id"]] = d["connected"];
  EXPECT_THAT(seen, ElementsAre(Pair("pump-1", false), Pair("pump-2", true))) << list.body;

  const Response one = call("GET", "/api/v1/devices/pump-2", admin_);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(body(one)["connected"], true);
  connected_.clear();
  EXPECT_EQ(body(call("GET", "/api/v1/devices/pump-2", admin_))["connected"], false);
}

// The list narrowed by the server: every filter given must hold (tags: each one named).
TEST_F(DeviceApiTest, TheListIsFilteredByTagsSegmentProfileAndStatus) {
  for (const char* made :
       {R"({"id":"d-1","tags":["cold-room","floor-2"],"segment":"north"})",
        R"({"id":"d-2","tags":["cold-room"],"segment":"south"})", R"({"id":"d-3","segment":"north"})"}) {
    ASSERT_EQ(call("POST", "/api/v1/devices", admin_, made).status, 201) << made;
  }
  ASSERT_TRUE(store_->devices().set_status("d-2", store::kDeviceStatusDisabled, 1, "test"));
  const auto ids = [&](const std::string& query) {
    const Response r = call("GET", "/api/v1/devices" + query, admin_);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    const json listed = body(r);
    std::vector<std::string> out;
    for (const auto& d : listed["devices"]) out.push_back(d["id"]);
    return out;
  };
  EXPECT_THAT(ids(""), ElementsAre("d-1", "d-2", "d-3"));
  EXPECT_THAT(ids("?tag=cold-room"), ElementsAre("d-1", "d-2"));
  EXPECT_THAT(ids("?tag=cold-room,floor-2"), ElementsAre("d-1"));
  EXPECT_THAT(ids("?tag=cold-room%2Cfloor-2"), ElementsAre("d-1"));
  EXPECT_THAT(ids("?segment=north"), ElementsAre("d-1", "d-3"));
  EXPECT_THAT(ids("?segment=north&tag=cold-room"), ElementsAre("d-1"));
  EXPECT_THAT(ids("?status=disabled"), ElementsAre("d-2"));
  EXPECT_THAT(ids("?status=active&tag=cold-room"), ElementsAre("d-1"));
  EXPECT_THAT(ids("?profile=nothing-uses-it"), ElementsAre());
  EXPECT_THAT(ids("?tag=nobody-has-it"), ElementsAre());

  const Response bad = call("GET", "/api/v1/devices?tag=a%20b&status=asleep&segment=&profile=x/y", admin_);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(problem_fields(bad), (std::set<std::string>{"profile", "segment", "status", "tag"}));
}

// JPCERT VII-1: what expires soon, for the overview: the organisation's own device
// certificates only, revoked ones left out, expired ones marked.
TEST_F(DeviceApiTest, CertificatesExpiringSoonAreTheOrganisationsOwnAndNotRevoked) {
  add_device("pump-1", "default");
  add_device("pump-2", "default");
  add_device("far-1", "acme");  // the fixture's other organisation
  const auto listed = [&](const std::string& query) {
    const Response r = call("GET", "/api/v1/certificates/expiring" + query, admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    std::map<std::string, bool> out;  // device -> expired
    const json answer = body(r);
    for (const auto& c : answer["certificates"]) out[c["device"]] = c["expired"];
    return out;
  };
  EXPECT_TRUE(listed("").empty()) << "90-day certificates, 30 days asked";
  clock_.advance(std::chrono::hours(24) * 70);
  EXPECT_THAT(listed(""), ElementsAre(Pair("pump-1", false), Pair("pump-2", false)));
  ASSERT_EQ(call("POST", "/api/v1/devices/pump-2/revoke", admin_, "{}").status, 200);
  EXPECT_THAT(listed("?days=30"), ElementsAre(Pair("pump-1", false)));
  clock_.advance(std::chrono::hours(24) * 30);
  EXPECT_THAT(listed("?days=1"), ElementsAre(Pair("pump-1", true)));
  for (const char* bad : {"?days=0", "?days=366", "?days=x"}) {
    const Response r = call("GET", std::string("/api/v1/certificates/expiring") + bad, admin_);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(problem_fields(r), (std::set<std::string>{"days"})) << bad;
  }
}

TEST_F(DeviceApiTest, AnotherOrganisationsDevicesAndProfilesDoNotExist) {
  add_device("pump-1", "default");
  ASSERT_TRUE(store_->device_profiles().put(
      {"env", "default", "Environment", std::string(policy::sample_environment_profile_json()), 1, 0}));
  const std::string outsider = add_person("acme-admin", identity::kRoleOrgAdmin, "acme");
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"POST", "/api/v1/devices/pump-1/disable"},
           {"POST", "/api/v1/devices/pump-1/enable"},
           {"POST", "/api/v1/devices/pump-1/revoke"},
           {"PUT", "/api/v1/devices/pump-1/tags"},
           {"DELETE", "/api/v1/devices/pump-1"},
           {"GET", "/api/v1/devices/pump-1/telemetry?metric=temperature"},
           {"GET", "/api/v1/devices/pump-1/latest"},
           {"GET", "/api/v1/profiles/env"},
           {"DELETE", "/api/v1/profiles/env"},
       }) {
    const Response r =
        call(method, target, outsider, method == "POST" ? "{}" : (method == "PUT" ? R"({"tags":["x"]})" : ""));
    EXPECT_EQ(r.status, 404) << method << " " << target << ": " << r.body;
  }
  EXPECT_TRUE(disconnected_.empty());
  EXPECT_EQ((*store_->devices().find("pump-1"))->status, store::kDeviceStatusActive);
  EXPECT_TRUE(*store_->device_profiles().find("env"));
  // Creating in another organisation is for the system administrator only.
  EXPECT_EQ(call("POST", "/api/v1/devices?organisation=default", outsider, R"({"id":"x-1"})").status, 403);
  EXPECT_THAT(call("GET", "/api/v1/profiles", outsider).body, Not(HasSubstr("\"env\"")));
  const std::string root = add_person("root", identity::kRoleSystemAdmin, "default");
  const Response for_acme = call("POST", "/api/v1/devices?organisation=acme", root, R"({"id":"acme-1"})");
  ASSERT_EQ(for_acme.status, 201) << for_acme.body;
  EXPECT_EQ(body(for_acme)["device"]["organisation"], "acme");
  EXPECT_EQ(call("GET", "/api/v1/devices/acme-1", outsider).status, 200);
}

// Tags (docs/rules.md): given at creation or replaced later, kept sorted without repeats; the
// running rules are told at once, and a change is recorded with what it was before.
TEST_F(DeviceApiTest, TagsAreGivenAtCreationOrReplacedAndTheRunningRulesAreTold) {
  const Response made =
      call("POST", "/api/v1/devices", admin_, R"({"id":"pump-1","tags":["roof","cold-room","roof"]})");
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(body(made)["device"]["tags"], json({"cold-room", "roof"}));
  EXPECT_THAT(changed_devices_, ElementsAre("pump-1:active:cold-room,roof"));

  const Response put = call("PUT", "/api/v1/devices/pump-1/tags", admin_, R"({"tags":["floor-2"]})");
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(body(put)["tags"], json({"floor-2"}));
  EXPECT_EQ(body(call("GET", "/api/v1/devices", admin_))["devices"][0]["tags"], json({"floor-2"}));
  EXPECT_EQ((*store_->devices().find("pump-1"))->tags, std::vector<std::string>{"floor-2"});
  EXPECT_THAT(changed_devices_, ElementsAre("pump-1:active:cold-room,roof", "pump-1:active:floor-2"));
  // The same tags again change nothing and record nothing.
  EXPECT_EQ(call("PUT", "/api/v1/devices/pump-1/tags", admin_, R"({"tags":["floor-2","floor-2"]})").status, 200);
  EXPECT_EQ(changed_devices_.size(), 2U);
  const auto changes = std::count_if(events_.begin(), events_.end(),
                                     [](const events::SecurityEvent& e) { return e.action == "device.tags_changed"; });
  EXPECT_EQ(changes, 1);
  const auto change = std::find_if(events_.begin(), events_.end(),
                                   [](const events::SecurityEvent& e) { return e.action == "device.tags_changed"; });
  ASSERT_NE(change, events_.end());
  EXPECT_EQ(change->details["before"], json({"cold-room", "roof"}));
  EXPECT_EQ(change->details["after"], json({"floor-2"}));

  const Response bad = call("PUT", "/api/v1/devices/pump-1/tags", admin_, R"({"tags":["ok","Not A Tag"]})");
  EXPECT_EQ(bad.status, 422) << bad.body;
  EXPECT_EQ(problem_fields(bad), (std::set<std::string>{"tags"}));
  EXPECT_EQ(call("PUT", "/api/v1/devices/pump-1/tags", admin_, "{}").status, 400) << "the tags are required";
  json too_many = json::array();
  for (int i = 0; i < 17; ++i) too_many.push_back(fmt::format("t{}", i));
  EXPECT_EQ(call("PUT", "/api/v1/devices/pump-1/tags", admin_, json({{"tags", too_many}}).dump()).status, 400);
  EXPECT_EQ(problem_fields(call("POST", "/api/v1/devices", admin_, R"({"id":"pump-2","tags":["A"]})")),
            (std::set<std::string>{"tags"}));
  EXPECT_EQ((*store_->devices().find("pump-1"))->tags, std::vector<std::string>{"floor-2"})
      << "nothing refused is kept";
  EXPECT_EQ(call("PUT", "/api/v1/devices/nope/tags", admin_, R"({"tags":[]})").status, 404);
  const std::string viewer = add_person("viewer", identity::kRoleViewer, "default");
  EXPECT_EQ(call("PUT", "/api/v1/devices/pump-1/tags", viewer, R"({"tags":[]})").status, 403);

  const Response cleared = call("PUT", "/api/v1/devices/pump-1/tags", admin_, R"({"tags":[]})");
  ASSERT_EQ(cleared.status, 200) << cleared.body;
  EXPECT_EQ(body(cleared)["tags"], json::array());
  EXPECT_EQ(changed_devices_.back(), "pump-1:active:");
}

TEST_F(DeviceApiTest, WhatCannotBeUndoneNeedsAStepUpButDisablingDoesNot) {
  add_device("pump-1", "default");
  const std::string session = session_of(admin_);
  clock_.advance(std::chrono::minutes(6));
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"POST", "/api/v1/devices/pump-1/revoke"},
           {"DELETE", "/api/v1/devices/pump-1"},
           {"POST", "/api/v1/devices/pump-1/enable"},
           {"POST", "/api/v1/devices"},
           {"POST", "/api/v1/devices/pump-1/enrolment-token"},
           {"PUT", "/api/v1/profiles/env"},
           {"DELETE", "/api/v1/profiles/env"},
       }) {
    const Response r = call_in(session, method, target, method == "DELETE" ? "" : "{}");
    EXPECT_EQ(r.status, 403) << method << " " << target;
    EXPECT_THAT(r.body, HasSubstr("step_up_required")) << method << " " << target;
  }
  EXPECT_TRUE(disconnected_.empty());
  EXPECT_EQ(call_in(session, "POST", "/api/v1/devices/pump-1/disable", "{}").status, 200);
  EXPECT_EQ(disconnected_.size(), 1u);
}

TEST_F(DeviceApiTest, ADeviceAwaitingEnrolmentEnrolsOnceWithItsToken) {
  const Response made =
      call("POST", "/api/v1/devices", admin_, R"({"id":"pump-1","enrolment":true,"segment":"plant-floor"})");
  ASSERT_EQ(made.status, 201) << made.body;
  const json j = body(made);
  EXPECT_EQ(j["device"]["id"], "pump-1");
  EXPECT_EQ(j["device"]["segment"], "plant-floor");
  EXPECT_FALSE(j.contains("certificate"));
  EXPECT_FALSE(j.contains("certificate_pem"));
  EXPECT_FALSE(j.contains("private_key_pem"));
  const std::string token = j["enrolment_token"];
  EXPECT_EQ(token.size(), 43U);
  EXPECT_EQ(j["enrolment_expires_at"], format_utc_millis(clock_.now() + std::chrono::hours(24)));
  EXPECT_TRUE(body(call("GET", "/api/v1/devices/pump-1", admin_))["certificates"].empty());

  const auto [key, csr] = device_csr();
  const Response enrolled = enrol(token, csr);
  ASSERT_EQ(enrolled.status, 201) << enrolled.body;
  const json e = body(enrolled);
  EXPECT_EQ(e["device"], "pump-1");
  EXPECT_TRUE(crypto::check_key_matches_certificate(key, e["certificate_pem"].get<std::string>()));
  EXPECT_EQ(e["ca_bundle_pem"], *ca_->issuing_certificate_pem() + *ca_->root_certificate_pem());
  const json detail = body(call("GET", "/api/v1/devices/pump-1", admin_));
  ASSERT_EQ(detail["certificates"].size(), 1U);
  EXPECT_EQ(e["expires_at"], detail["certificates"][0]["not_after"]);

  const Response again = enrol(token, csr);
  EXPECT_EQ(again.status, 401);
  EXPECT_EQ(body(again)["error"], "enrolment_refused");
  EXPECT_EQ(body(call("GET", "/api/v1/devices/pump-1", admin_))["certificates"].size(), 1U);

  EXPECT_THAT(actions_by("user:" + admin_), ElementsAre("device.created", "device.enrolment_token_issued"));
  EXPECT_THAT(actions_by("device:pump-1"), ElementsAre("device.enrolled", "device.enrolment_refused"));
  EXPECT_THAT(reasons_refused(), ElementsAre("used"));
  for (const auto& ev : events_) {
    EXPECT_THAT(ev.details.dump(), Not(HasSubstr(token))) << ev.action;
    EXPECT_THAT(ev.object, Not(HasSubstr(token))) << ev.action;
    if (ev.action == "device.enrolled") {
      EXPECT_EQ(ev.details["serial"], detail["certificates"][0]["serial"]);
      EXPECT_EQ(ev.details["key_generated_by"], "device");
    }
  }
  // Not together with a CSR.
  const Response both =
      call("POST", "/api/v1/devices", admin_, json{{"id", "pump-2"}, {"enrolment", true}, {"csr", csr}}.dump());
  EXPECT_EQ(both.status, 422);
  EXPECT_THAT(problem_fields(both), ElementsAre("csr"));
}

TEST_F(DeviceApiTest, EveryTokenProblemGetsTheSameAnswerAndOnlyTheLogSaysWhich) {
  const std::string used = awaiting("used-1");
  const std::string expired = awaiting("late-1");
  ASSERT_EQ(enrol(used, device_csr().second).status, 201);
  clock_.advance(std::chrono::hours(23));
  const std::string disabled = awaiting("off-1");
  ASSERT_EQ(call("POST", "/api/v1/devices/off-1/disable", admin_, "{}").status, 200);
  const std::string fresh = awaiting("fresh-1");
  clock_.advance(std::chrono::hours(1));
  const std::string csr = device_csr().second;

  std::vector<std::string> answers;
  for (const std::string& token : {crypto::random_token(random_), used, expired, disabled}) {
    const Response r = enrol(token, csr);
    EXPECT_EQ(r.status, 401);
    answers.push_back(r.body);
  }
  EXPECT_THAT(answers, ::testing::Each(answers.front()));
  EXPECT_EQ(json::parse(answers.front())["error"], "enrolment_refused");
  EXPECT_THAT(reasons_refused(), ElementsAre("unknown", "used", "expired", "device_disabled"));
  // A bad CSR with a bad token is still just a bad token.
  EXPECT_EQ(enrol(crypto::random_token(random_), "not a CSR").status, 401);
  EXPECT_EQ(enrol(fresh, csr).status, 201);
}

TEST_F(DeviceApiTest, ABadCsrIs422AndTheSameTokenWorksWithAGoodOne) {
  const std::string token = awaiting("pump-1");
  const Response bad = enrol(token, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n");
  EXPECT_EQ(bad.status, 422);
  EXPECT_THAT(problem_fields(bad), ElementsAre("csr"));
  EXPECT_THAT(reasons_refused(), ElementsAre("bad_csr"));
  EXPECT_EQ(call_public("POST", "/api/v1/enrol", json{{"token", token}}.dump()).status, 400);
  const Response good = enrol(token, device_csr().second);
  EXPECT_EQ(good.status, 201) << good.body;
}

TEST_F(DeviceApiTest, EnrolmentAttemptsCountAgainstTheSourcesSignInLimit) {
  const std::string csr = device_csr().second;
  int refused = 0;
  int throttled = 0;
  for (int i = 0; i < 25; ++i) {
    const Response r = enrol(crypto::random_token(random_), csr);
    if (r.status == 401) ++refused;
    if (r.status == 429) ++throttled;
  }
  EXPECT_EQ(refused, 20);  // console.sign_in_attempts_per_minute
  EXPECT_EQ(throttled, 5);
  // Another source is not held up.
  EXPECT_EQ(enrol(crypto::random_token(random_), csr, "198.51.100.4:5000").status, 401);
}

TEST_F(DeviceApiTest, AnEnrolmentTokenForAnExistingDeviceNeedsDevicesWriteAndAStepUp) {
  add_device("pump-1", "default");
  add_device("acme-1", "acme");
  ASSERT_TRUE(registry_->revoke_certificates("pump-1", "lost"));
  const std::string viewer = add_person("vera", identity::kRoleViewer, "default");
  EXPECT_EQ(call("POST", "/api/v1/devices/pump-1/enrolment-token", viewer, "{}").status, 403);
  EXPECT_EQ(call("POST", "/api/v1/devices/acme-1/enrolment-token", admin_, "{}").status, 404);
  EXPECT_EQ(call("POST", "/api/v1/devices/nope-1/enrolment-token", admin_, "{}").status, 404);
  const std::string session = session_of(admin_);
  clock_.advance(std::chrono::minutes(6));
  const Response stale = call_in(session, "POST", "/api/v1/devices/pump-1/enrolment-token", "{}");
  EXPECT_EQ(stale.status, 403);
  EXPECT_THAT(stale.body, HasSubstr("step_up_required"));
  EXPECT_TRUE(actions_by("user:" + admin_).empty());

  const Response first = call("POST", "/api/v1/devices/pump-1/enrolment-token", admin_, "{}");
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(body(first)["device"]["id"], "pump-1");
  const Response second = call("POST", "/api/v1/devices/pump-1/enrolment-token", admin_, "{}");
  ASSERT_EQ(second.status, 201);
  EXPECT_THAT(actions_by("user:" + admin_),
              ElementsAre("device.enrolment_token_issued", "device.enrolment_token_issued"));
  // The earlier token stopped working; the new one enrols the device again.
  EXPECT_EQ(enrol(body(first)["enrolment_token"].get<std::string>(), device_csr().second).status, 401);
  EXPECT_EQ(enrol(body(second)["enrolment_token"].get<std::string>(), device_csr().second).status, 201);

  ASSERT_EQ(call("POST", "/api/v1/devices/pump-1/disable", admin_, "{}").status, 200);
  EXPECT_EQ(call("POST", "/api/v1/devices/pump-1/enrolment-token", admin_, "{}").status, 409);
}

TEST_F(DeviceApiTest, ProfilesAreValidatedStoredVersionedAndKeptWhileDevicesUseThem) {
  const Response bad = call("PUT", "/api/v1/profiles/env", admin_,
                            R"({"definition":{"metrics":[{"name":"Temp","type":"kelvin"}],"extra":1}})");
  EXPECT_EQ(bad.status, 422) << bad.body;
  const auto fields = problem_fields(bad);
  EXPECT_TRUE(fields.contains("definition.metrics[0].name")) << bad.body;
  EXPECT_TRUE(fields.contains("definition.metrics[0].type")) << bad.body;
  EXPECT_EQ(call("PUT", "/api/v1/profiles/env", admin_, R"({"definition":"{}"})").status, 400)
      << "the definition is an object, not a string";
  EXPECT_EQ(problem_fields(call("PUT", "/api/v1/profiles/Bad_Id", admin_,
                                R"({"definition":{"metrics":[{"name":"t","type":"number"}]}})")),
            (std::set<std::string>{"id"}));

  const std::string definition(policy::sample_environment_profile_json());
  const std::string put = R"({"name":"Environment","definition":)" + definition + "}";
  const Response made = call("PUT", "/api/v1/profiles/env", admin_, put);
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(body(made)["version"], 1);
  EXPECT_EQ(body(made)["definition"], json::parse(definition));
  const Response replaced = call("PUT", "/api/v1/profiles/env", admin_, put);
  EXPECT_EQ(replaced.status, 200);
  EXPECT_EQ(body(replaced)["version"], 2);
  EXPECT_THAT(changed_profiles_, ElementsAre("env", "env"));
  EXPECT_EQ(body(call("GET", "/api/v1/profiles", admin_))["profiles"][0]["id"], "env");
  EXPECT_EQ(body(call("GET", "/api/v1/profiles/env", admin_))["name"], "Environment");

  // Another organisation cannot take the id over.
  const std::string outsider = add_person("acme-admin", identity::kRoleOrgAdmin, "acme");
  EXPECT_EQ(call("PUT", "/api/v1/profiles/env", outsider, put).status, 409);

  ASSERT_EQ(call("POST", "/api/v1/devices", admin_, R"({"id":"pump-1","profile":"env"})").status, 201);
  const Response in_use = call("DELETE", "/api/v1/profiles/env", admin_);
  EXPECT_EQ(in_use.status, 409);
  EXPECT_THAT(in_use.body, HasSubstr("profile_in_use"));
  ASSERT_EQ(call("DELETE", "/api/v1/devices/pump-1", admin_).status, 204);
  EXPECT_EQ(call("DELETE", "/api/v1/profiles/env", admin_).status, 204);
  EXPECT_EQ(call("GET", "/api/v1/profiles/env", admin_).status, 404);
  EXPECT_THAT(actions_by("user:" + admin_), ::testing::Contains("profile.deleted"));
}

TEST_F(DeviceApiTest, TelemetryIsOpenedAndDownsampledIntoBuckets) {
  add_device("pump-1", "default");
  const UnixMillis t0 = to_unix_millis(clock_.now()) - 3'600'000;  // an hour ago
  store_message("pump-1", t0, R"({"temperature":20,"door_open":true})");
  store_message("pump-1", t0 + 1000, R"({"temperature":22})");
  store_message("pump-1", t0 + 1'800'000, R"({"temperature":30.5})");
  store_message("pump-1", t0 + 1'800'001, R"({"humidity":40})");  // another metric
  store_message("pump-1", t0 + 1'800'002, R"({"temperature":99})", store::kTelemetryKindEvents);
  // A rule's derived metric charts like the device's own.
  store_message("pump-1", t0 + 1'800'003, R"({"$rule":"r-1","temperature_f":86.9})", store::kTelemetryKindDerived);

  const std::string from = format_utc_millis(from_unix_millis(t0));
  const std::string to = format_utc_millis(from_unix_millis(t0 + 3'600'000));
  const Response r = call(
      "GET", "/api/v1/devices/pump-1/telemetry?metric=temperature&from=" + from + "&to=" + to + "&points=2", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = body(r);
  EXPECT_EQ(j["metric"], "temperature");
  EXPECT_EQ(j["from"], from);
  EXPECT_EQ(j["truncated"], false);
  EXPECT_EQ(j["messages_read"], 6);
  ASSERT_EQ(j["buckets"].size(), 2u) << r.body;
  EXPECT_EQ(j["buckets"][0], (json{{"from", from},
                                   {"to", format_utc_millis(from_unix_millis(t0 + 1'800'000))},
                                   {"min", 20.0},
                                   {"max", 22.0},
                                   {"avg", 21.0},
                                   {"count", 1 + 1}}));
  EXPECT_EQ(j["buckets"][1]["count"], 1) << "only telemetry, only the metric asked for";
  EXPECT_EQ(j["buckets"][1]["max"], 30.5);
  const Response f = call(
      "GET", "/api/v1/devices/pump-1/telemetry?metric=temperature_f&from=" + from + "&to=" + to + "&points=2", admin_);
  ASSERT_EQ(f.status, 200) << f.body;
  ASSERT_EQ(body(f)["buckets"].size(), 1u) << f.body;  // an empty bucket is left out
  EXPECT_EQ(body(f)["buckets"][0]["max"], 86.9);

  // Booleans chart as 0 and 1; the query's times may come percent-encoded, as browsers send them.
  std::string encoded = from;
  for (std::size_t at = encoded.find(':'); at != std::string::npos; at = encoded.find(':')) {
    encoded.replace(at, 1, "%3A");
  }
  const Response door = call("GET", "/api/v1/devices/pump-1/telemetry?metric=door_open&from=" + encoded, admin_);
  ASSERT_EQ(door.status, 200) << door.body;
  EXPECT_EQ(body(door)["buckets"][0]["max"], 1.0);

  // By default: the last 24 hours, 500 points.
  const Response recent = call("GET", "/api/v1/devices/pump-1/telemetry?metric=temperature", admin_);
  EXPECT_EQ(body(recent)["points"], 500);
  EXPECT_EQ(body(recent)["buckets"].size(), 2u);
}

TEST_F(DeviceApiTest, ATelemetryQueryIsCheckedWhole) {
  add_device("pump-1", "default");
  const Response bad = call("GET", "/api/v1/devices/pump-1/telemetry?from=yesterday&points=2001", admin_);
  EXPECT_EQ(bad.status, 422);
  EXPECT_EQ(problem_fields(bad), (std::set<std::string>{"metric", "from", "points"}));
  EXPECT_EQ(problem_fields(call("GET",
                                "/api/v1/devices/pump-1/telemetry?metric=t&from=2026-01-01T00:00:00Z&to=2026-03-01T00:"
                                "00:00Z",
                                admin_)),
            (std::set<std::string>{"to"}))
      << "at most 31 days";
  EXPECT_EQ(problem_fields(call("GET",
                                "/api/v1/devices/pump-1/telemetry?metric=t&from=2026-01-02T00:00:00Z&to=2026-01-01T00:"
                                "00:00Z",
                                admin_)),
            (std::set<std::string>{"from"}));
  EXPECT_EQ(problem_fields(call("GET", "/api/v1/devices/pump-1/telemetry?metric=t&points=0", admin_)),
            (std::set<std::string>{"points"}));
  EXPECT_EQ(call("GET", "/api/v1/devices/nobody/telemetry?metric=t", admin_).status, 404);
}

TEST_F(DeviceApiTest, AQueryReadsAtMost20000MessagesAndSaysWhereItStopped) {
  add_device("pump-1", "default");
  const UnixMillis t0 = to_unix_millis(clock_.now()) - 3'600'000;
  const std::string key_id = keys::device_key_id("pump-1");
  std::vector<store::TelemetryRecord> records;
  for (int i = 0; i < 20010; ++i) {
    const UnixMillis at = t0 + i;
    auto sealed = keys_->seal(key_id, as_bytes(R"({"t":1})"),
                              keys::telemetry_associated_data("pump-1", store::kTelemetryKindTelemetry, at, ""));
    ASSERT_TRUE(sealed);
    records.push_back({0, "pump-1", std::string(store::kTelemetryKindTelemetry), "", at, key_id, std::move(*sealed)});
  }
  ASSERT_TRUE(store_->telemetry().append(records));
  const Response r = call("GET", "/api/v1/devices/pump-1/telemetry?metric=t&points=1", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = body(r);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_EQ(j["messages_read"], 20000);
  EXPECT_EQ(j["complete_until"], format_utc_millis(from_unix_millis(t0 + 19999)));
  EXPECT_EQ(j["buckets"][0]["count"], 19999) << "the last millisecond read may be incomplete: left out";
}

TEST_F(DeviceApiTest, TheLatestValuesAreOpenedForTheirReaders) {
  add_device("pump-1", "default");
  const std::string key_id = keys::device_key_id("pump-1");
  std::vector<store::LatestValue> values;
  for (const auto& [metric, value] : std::vector<std::pair<std::string, std::string>>{
           {"temperature", "21.5"}, {"door_open", "false"}, {"mode", "\"auto\""}}) {
    auto sealed = keys_->seal(key_id, as_bytes(value), keys::latest_value_associated_data("pump-1", metric));
    ASSERT_TRUE(sealed);
    values.push_back({"pump-1", metric, key_id, std::move(*sealed), 1'790'000'000'000});
  }
  ASSERT_TRUE(store_->latest_values().upsert(values));
  const Response r = call("GET", "/api/v1/devices/pump-1/latest", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  const json latest = body(r)["latest"];
  EXPECT_EQ(latest["temperature"]["value"], 21.5);
  EXPECT_EQ(latest["door_open"]["value"], false);
  EXPECT_EQ(latest["mode"]["value"], "auto");
  EXPECT_EQ(latest["mode"]["at"], format_utc_millis(from_unix_millis(1'790'000'000'000)));
  // Auditors do not read telemetry.
  EXPECT_EQ(call("GET", "/api/v1/devices/pump-1/latest", add_person("aud", identity::kRoleAuditor, "default")).status,
            403);
}

// IIIT I5, I7, J8: a command is checked against the device's profile, signed with the key
// devices are given at enrolment, recorded, sent, and shown with the device's answer.
TEST_F(DeviceApiTest, ACommandIsCheckedSignedSentAndShownWithTheDevicesAnswer) {
  ASSERT_TRUE(store_->device_profiles().put(
      {"env", "default", "Environment", std::string(policy::sample_environment_profile_json()), 1, 0}));
  identity::NewDevice spec;
  spec.id = "pump-1";
  spec.organisation_id = "default";
  spec.profile_id = "env";
  ASSERT_TRUE(registry_->create(spec));
  const std::string operator_ = add_person("op", identity::kRoleOperator, "default");

  const Response refused = call("POST", "/api/v1/devices/pump-1/commands", operator_,
                                R"({"command":"set_interval","params":{"seconds":0},"ttl_seconds":0})");
  EXPECT_EQ(refused.status, 422) << refused.body;
  EXPECT_EQ(problem_fields(refused), (std::set<std::string>{"params.seconds", "ttl_seconds"}));
  const Response unknown = call("POST", "/api/v1/devices/pump-1/commands", operator_, R"({"command":"reboot"})");
  EXPECT_EQ(unknown.status, 422) << unknown.body;
  const Response not_a_number =
      call("POST", "/api/v1/devices/pump-1/commands", operator_, R"({"command":"report_posture","ttl_seconds":"60"})");
  EXPECT_EQ(not_a_number.status, 400) << not_a_number.body;
  const Response too_long =
      call("POST", "/api/v1/devices/pump-1/commands", operator_, R"({"command":"report_posture","ttl_seconds":86401})");
  EXPECT_EQ(too_long.status, 400) << too_long.body;
  EXPECT_TRUE(sent_commands_.empty());

  const Response sent = call("POST", "/api/v1/devices/pump-1/commands", operator_,
                             R"({"command":"set_interval","params":{"seconds":15},"ttl_seconds":60})");
  ASSERT_EQ(sent.status, 202) << sent.body;
  const json answer = body(sent);
  EXPECT_EQ(answer["status"], "sent");
  EXPECT_EQ(answer["params"], json({{"seconds", 15}}));
  ASSERT_EQ(sent_commands_.size(), 1U);
  const auto& command = sent_commands_.front();
  EXPECT_EQ(command.topic, "devices/pump-1/commands");
  EXPECT_EQ(command.record.id, answer["id"]);
  auto split = policy::parse_command_payload(command.payload);
  ASSERT_TRUE(split);
  EXPECT_TRUE(
      crypto::ed25519_verify(commands_->public_key(), policy::command_signing_input(split->body), split->signature));
  EXPECT_THAT(actions_by("user:" + operator_), ::testing::Contains("device.command_sent"));
  for (const auto& e : events_) EXPECT_EQ(e.details.dump().find("seconds"), std::string::npos);  // not logged

  const std::string id = answer["id"];
  ASSERT_TRUE(commands_->record_result("pump-1", R"({"id":"r-1","command":")" + id + R"(","status":"done"})"));
  const Response shown = call("GET", "/api/v1/devices/pump-1/commands/" + id, operator_);
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(body(shown)["status"], "done");
  const Response listed =
      call("GET", "/api/v1/devices/pump-1/commands", add_person("v", identity::kRoleViewer, "default"));
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_EQ(body(listed)["commands"].size(), 1U);
  EXPECT_EQ(call("GET", "/api/v1/devices/pump-1/commands/c-000", operator_).status, 404);

  // Unanswered and past its expiry: expired.
  const Response later =
      call("POST", "/api/v1/devices/pump-1/commands", operator_, R"({"command":"report_posture","ttl_seconds":5})");
  ASSERT_EQ(later.status, 202) << later.body;
  clock_.advance(std::chrono::seconds(5));
  EXPECT_EQ(
      body(call("GET", "/api/v1/devices/pump-1/commands/" + body(later)["id"].get<std::string>(), operator_))["status"],
      "expired");
}

TEST_F(DeviceApiTest, TheEnrolmentAnswerCarriesTheKeyCommandsAreSignedWith) {
  const std::string token = awaiting("pump-9");
  auto [key, csr] = device_csr();
  const Response enrolled = enrol(token, csr);
  ASSERT_EQ(enrolled.status, 201) << enrolled.body;
  const auto key_text = body(enrolled).value("command_key", "");
  EXPECT_EQ(base64url_decode(key_text), std::optional<Bytes>(commands_->public_key()));
}

TEST_F(DeviceApiTest, AnotherOrganisationsDeviceTakesNoCommandFromAnOperator) {
  add_device("acme-1", "acme");
  const std::string operator_ = add_person("op", identity::kRoleOperator, "default");
  EXPECT_EQ(call("POST", "/api/v1/devices/acme-1/commands", operator_, R"({"command":"report_posture"})").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/devices/acme-1/commands", operator_).status, 404);
  EXPECT_TRUE(sent_commands_.empty());
}

}  // namespace
}  // namespace torii::console

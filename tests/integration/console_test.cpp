// The console's REST API as a person's browser or script meets it: curl over HTTPS against
// the real server, TOTP codes from oathtool (what an authenticator app computes).
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "server_fixture.h"
#include "testing/smtp_sink.h"

namespace torii::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr std::string_view kPassword = "violet harbour ladder sprinkle 42";

struct Answer {
  int status = 0;
  std::multimap<std::string, std::string> headers;  // names lower-cased
  std::string body;

  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  [[nodiscard]] json body_json() const { return json::parse(body, nullptr, false); }
  [[nodiscard]] std::string code() const {
    const auto j = body_json();
    return j.is_object() && j.contains("code") ? j["code"].get<std::string>() : "";
  }
  // The session cookie's value from Set-Cookie, and its attributes.
  [[nodiscard]] std::string set_cookie() const { return header("set-cookie"); }
  [[nodiscard]] std::string cookie_value() const {
    static const std::regex re("^__Host-torii-session=([^;]*);");
    std::smatch m;
    const std::string c = set_cookie();
    return std::regex_search(c, m, re) ? m[1].str() : "";
  }
};

Answer parse_answer(const std::string& raw) {
  Answer a;
  std::size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) return a;
  std::istringstream head(raw.substr(0, header_end));
  std::string line;
  std::getline(head, line);
  std::sscanf(line.c_str(), "HTTP/%*s %d", &a.status);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    a.headers.emplace(name, line.substr(line.find_first_not_of(' ', colon + 1)));
  }
  a.body = raw.substr(header_end + 4);
  return a;
}

class Console : public ServerTest {
 protected:
  Console() {
    // Cheap hashes and a small lockout, so that the tests run quickly; the logic is the same.
    config_text += R"(idle_timeout_seconds = 2
max_body_bytes = 2048
[accounts]
password_hash_passes = 1
password_hash_memory_kib = 8192
lock_after_failures = 3
first_lock_seconds = 600
)";
  }

  void start_console() {
    start();
    const auto bundle = torii({"admin", "ca", "export"});
    ASSERT_EQ(bundle.exit_code, 0) << bundle.err;
    std::ofstream(work_dir() / "ca.pem") << bundle.out;
  }

  [[nodiscard]] std::string url(const std::string& path) const {
    return "https://localhost:" + std::to_string(console_port) + path;
  }

  // One request with curl. `session` is a cookie value; `csrf` the CSRF header.
  Answer call(const std::string& method, const std::string& path, const std::optional<json>& body = std::nullopt,
              const std::string& session = "", const std::string& csrf = "",
              const std::vector<std::string>& headers = {}) {
    std::vector<std::string> argv{"curl", "-sS",  "-i",     "--http1.1", "--cacert", (work_dir() / "ca.pem").string(),
                                  "-X",   method, url(path)};
    if (body) {
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body->dump()});
    }
    if (!session.empty()) argv.insert(argv.end(), {"-H", "Cookie: __Host-torii-session=" + session});
    if (!csrf.empty()) argv.insert(argv.end(), {"-H", "X-CSRF-Token: " + csrf});
    for (const auto& h : headers) argv.insert(argv.end(), {"-H", h});
    const auto r = run(argv, std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_answer(r.out);
  }

  [[nodiscard]] std::string setup_token() const { return setup_url.substr(setup_url.find('#') + 1); }

  // The current code of a TOTP secret, `offset` seconds from now, as an authenticator shows it.
  static std::string totp(const std::string& secret, int offset = 0) {
    const auto r = run({"oathtool", "--totp", "-b", secret, "-N", "now + " + std::to_string(offset) + " seconds"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string code = r.out;
    while (!code.empty() && (code.back() == '\n' || code.back() == '\r')) code.pop_back();
    return code;
  }

  struct Signed {
    std::string session;
    std::string csrf;
  };

  // Setup through the one-time link, TOTP enrolment with oathtool; returns the full session.
  Signed set_up_administrator() {
    auto made = call(
        "POST", "/api/v1/setup",
        json{{"token", setup_token()}, {"username", "alice"}, {"email", "alice@example.org"}, {"password", kPassword}});
    EXPECT_EQ(made.status, 201) << made.body;
    const std::string session = made.cookie_value();
    const std::string csrf = made.body_json().value("csrf_token", "");
    auto begun = call("POST", "/api/v1/account/totp", std::nullopt, session, csrf);
    EXPECT_EQ(begun.status, 200) << begun.body;
    secret = begun.body_json().value("secret", "");
    auto confirmed = call("POST", "/api/v1/account/totp/confirm", json{{"code", totp(secret)}}, session, csrf);
    EXPECT_EQ(confirmed.status, 200) << confirmed.body;
    recovery_codes = confirmed.body_json().value("recovery_codes", std::vector<std::string>{});
    return {confirmed.cookie_value(), confirmed.body_json().value("csrf_token", "")};
  }

  // A thermometer made through the API: the "thermo" profile (made first if missing) and
  // the device with a key made by the server. Returns mosquitto_pub/sub's arguments to
  // connect as it; empty on failure (the test has failed then).
  std::vector<std::string> thermometer(const Signed& admin, const std::string& id) {
    if (call("GET", "/api/v1/profiles/thermo", std::nullopt, admin.session).status == 404) {
      // Through the firewall: the definition is a JSON object the WAF inspects member by member.
      const json definition = {
          {"metrics",
           json::array({{{"name", "temperature"}, {"type", "number"}, {"unit", "°C"}, {"min", -40}, {"max", 125}}})}};
      const auto profile =
          call("PUT", "/api/v1/profiles/thermo", json{{"definition", definition}}, admin.session, admin.csrf);
      EXPECT_EQ(profile.status, 201) << profile.body;
    }
    const auto made =
        call("POST", "/api/v1/devices", json{{"id", id}, {"profile", "thermo"}}, admin.session, admin.csrf);
    EXPECT_EQ(made.status, 201) << made.body;
    if (made.status != 201) return {};
    const json bundle = made.body_json();
    const auto dir = work_dir() / id;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "ca.crt") << bundle["ca_bundle_pem"].get<std::string>();
    std::ofstream(dir / (id + ".crt")) << bundle["certificate_pem"].get<std::string>();
    std::ofstream(dir / (id + ".key")) << bundle["private_key_pem"].get<std::string>();
    return {"--cafile", (dir / "ca.crt").string(),
            "--cert",   (dir / (id + ".crt")).string(),
            "--key",    (dir / (id + ".key")).string(),
            "-h",       "127.0.0.1",
            "-p",       std::to_string(gateway_port),
            "-V",       "mqttv5",
            "-i",       id};
  }

  // One QoS 1 telemetry message from the device, with mosquitto_pub.
  static RunResult publish_telemetry(const std::vector<std::string>& device, const std::string& id,
                                     const std::string& payload) {
    std::vector<std::string> argv{"mosquitto_pub"};
    argv.insert(argv.end(), device.begin(), device.end());
    argv.insert(argv.end(), {"-q", "1", "-t", "devices/" + id + "/telemetry", "-m", payload, "-d"});
    return run(argv, std::chrono::seconds(30));
  }

  // The live view's WebSocket client (ws_client.py, on python3-websockets), for at most 60 s.
  std::vector<std::string> live_client(const std::string& path, const std::vector<std::string>& options) const {
    // Debian's interpreter, which has Debian's python3-websockets (scripts/bootstrap).
    std::vector<std::string> argv{"/usr/bin/python3", WS_CLIENT,
                                  "wss://localhost:" + std::to_string(console_port) + path,
                                  (work_dir() / "ca.pem").string(), "60"};
    argv.insert(argv.end(), options.begin(), options.end());
    return argv;
  }

  std::string secret;
  std::vector<std::string> recovery_codes;
};

TEST_F(Console, TheFirstAdministratorIsCreatedThroughTheOneTimeLinkAndMustEnrolTotp) {
  start_console();
  EXPECT_EQ(call("GET", "/api/v1/setup").body_json()["pending"], true);

  // A weak password is refused with every reason, and the link stays usable.
  auto weak = call(
      "POST", "/api/v1/setup",
      json{{"token", setup_token()}, {"username", "alice"}, {"email", "alice@example.org"}, {"password", "alice123"}});
  EXPECT_EQ(weak.status, 422);
  std::set<std::string> codes;
  const json refusal = weak.body_json();
  for (const auto& e : refusal["errors"]) codes.insert(e["code"].get<std::string>());
  EXPECT_TRUE(codes.contains("too_short")) << weak.body;
  EXPECT_TRUE(codes.contains("contains_name")) << weak.body;

  auto made = call(
      "POST", "/api/v1/setup",
      json{{"token", setup_token()}, {"username", "alice"}, {"email", "alice@example.org"}, {"password", kPassword}});
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.body_json()["stage"], "enrol");
  EXPECT_EQ(made.body_json()["user"]["role"], "system-admin");
  // JPCERT III-3: the cookie's attributes.
  EXPECT_THAT(made.set_cookie(), StartsWith("__Host-torii-session="));
  for (const char* attribute : {"; Path=/", "; Secure", "; HttpOnly", "; SameSite=Strict"}) {
    EXPECT_THAT(made.set_cookie(), HasSubstr(attribute));
  }
  EXPECT_THAT(made.set_cookie(), Not(HasSubstr("Domain")));
  const std::string session = made.cookie_value();
  const std::string csrf = made.body_json()["csrf_token"];
  ASSERT_EQ(session.size(), 43u);

  // Nothing but enrolment until TOTP is on.
  EXPECT_EQ(call("GET", "/api/v1/devices", std::nullopt, session).code(), "second_factor_enrolment_required");
  auto begun = call("POST", "/api/v1/account/totp", std::nullopt, session, csrf);
  ASSERT_EQ(begun.status, 200) << begun.body;
  const std::string totp_secret = begun.body_json()["secret"];
  EXPECT_THAT(begun.body_json()["uri"].get<std::string>(), StartsWith("otpauth://totp/torii:alice?secret="));
  EXPECT_THAT(begun.body_json()["qr_svg"].get<std::string>(), StartsWith("<svg"));
  EXPECT_EQ(call("POST", "/api/v1/account/totp/confirm", json{{"code", "000000"}}, session, csrf).status, 422);
  auto confirmed = call("POST", "/api/v1/account/totp/confirm", json{{"code", totp(totp_secret)}}, session, csrf);
  ASSERT_EQ(confirmed.status, 200) << confirmed.body;
  EXPECT_THAT(confirmed.body_json()["recovery_codes"], SizeIs(10));
  EXPECT_EQ(confirmed.body_json()["stage"], "full");
  const std::string full = confirmed.cookie_value();
  EXPECT_NE(full, session) << "a new session id after the second factor";
  EXPECT_EQ(call("GET", "/api/v1/session", std::nullopt, session).status, 401) << "the old id is dead";
  EXPECT_EQ(call("GET", "/api/v1/devices", std::nullopt, full).status, 200);

  // The link is dead, and says so.
  auto again = call("POST", "/api/v1/setup",
                    json{{"token", setup_token()},
                         {"username", "bob"},
                         {"email", "bob@example.org"},
                         {"password", "quiet marble teapot orbit 1987"}});
  EXPECT_EQ(again.status, 422);
  EXPECT_EQ(again.body_json()["errors"][0]["field"], "setup_token");
  EXPECT_EQ(call("GET", "/api/v1/setup").body_json()["pending"], false);
}

TEST_F(Console, SignInNeedsPasswordThenTotpAndSignOutClearsTheSession) {
  start_console();
  set_up_administrator();

  auto password = call("POST", "/api/v1/session", json{{"username", "Alice"}, {"password", kPassword}});
  ASSERT_EQ(password.status, 200) << password.body;
  EXPECT_EQ(password.body_json()["stage"], "second-factor");
  const std::string waiting = password.cookie_value();
  const std::string waiting_csrf = password.body_json()["csrf_token"];
  EXPECT_EQ(call("GET", "/api/v1/devices", std::nullopt, waiting).code(), "second_factor_required");

  // The enrolment used the current step's code: the next step's passes, a replay does not.
  auto replayed = call("POST", "/api/v1/session/second-factor", json{{"code", totp(secret)}}, waiting, waiting_csrf);
  EXPECT_EQ(replayed.status, 401) << replayed.body;
  auto second = call("POST", "/api/v1/session/second-factor", json{{"code", totp(secret, 30)}}, waiting, waiting_csrf);
  ASSERT_EQ(second.status, 200) << second.body;
  const std::string session = second.cookie_value();
  const std::string csrf = second.body_json()["csrf_token"];
  EXPECT_NE(session, waiting);

  auto me = call("GET", "/api/v1/session", std::nullopt, session);
  EXPECT_EQ(me.body_json()["user"]["username"], "alice");
  EXPECT_EQ(me.body_json()["user"]["second_factor"], true);
  // The session id is taken from the cookie only, never from the URL.
  EXPECT_EQ(call("GET", "/api/v1/session?session=" + session).status, 401);

  // Sessions are listed, and another one can be ended from here.
  auto other = call("POST", "/api/v1/session", json{{"username", "alice"}, {"password", kPassword}});
  auto listed = call("GET", "/api/v1/account/sessions", std::nullopt, session);
  ASSERT_EQ(listed.status, 200);
  EXPECT_THAT(listed.body_json()["sessions"], SizeIs(3));  // setup's full one, this one, the new one
  auto ended = call("POST", "/api/v1/account/sessions/end-others", std::nullopt, session, csrf);
  EXPECT_EQ(ended.body_json()["ended"], 2);
  EXPECT_EQ(call("GET", "/api/v1/session", std::nullopt, other.cookie_value()).status, 401);

  auto out = call("DELETE", "/api/v1/session", std::nullopt, session, csrf);
  EXPECT_EQ(out.status, 204);
  EXPECT_THAT(out.set_cookie(), HasSubstr("Max-Age=0"));
  EXPECT_EQ(out.header("clear-site-data"), R"("cache", "cookies", "storage")");
  EXPECT_EQ(call("GET", "/api/v1/session", std::nullopt, session).status, 401);
}

TEST_F(Console, ARecoveryCodeSignsInOnce) {
  start_console();
  set_up_administrator();
  ASSERT_THAT(recovery_codes, SizeIs(10));
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto password = call("POST", "/api/v1/session", json{{"username", "alice"}, {"password", kPassword}});
    auto code = call("POST", "/api/v1/session/second-factor", json{{"code", recovery_codes[0]}},
                     password.cookie_value(), password.body_json()["csrf_token"]);
    EXPECT_EQ(code.status, attempt == 0 ? 200 : 401) << attempt << code.body;
  }
}

TEST_F(Console, RepeatedFailuresLockTheAccountAndUnknownNamesAlike) {
  start_console();
  set_up_administrator();
  std::vector<std::pair<int, int>> answers;  // (known, unknown)
  for (int i = 0; i < 4; ++i) {
    answers.emplace_back(
        call("POST", "/api/v1/session", json{{"username", "alice"}, {"password", "wrong wrong wrong"}}).status,
        call("POST", "/api/v1/session", json{{"username", "nobody-here"}, {"password", "wrong wrong"}}).status);
  }
  EXPECT_EQ(answers, (std::vector<std::pair<int, int>>{{401, 401}, {401, 401}, {429, 429}, {429, 429}}));
  // Locked means locked, even with the right password; the answer says for how long.
  auto locked = call("POST", "/api/v1/session", json{{"username", "alice"}, {"password", kPassword}});
  EXPECT_EQ(locked.status, 429);
  EXPECT_EQ(locked.code(), "account_locked");
  EXPECT_THAT(locked.body_json()["title"].get<std::string>(), HasSubstr("seconds"));
  const int retry = std::stoi(locked.header("retry-after"));
  EXPECT_GT(retry, 500);
  EXPECT_LE(retry, 600);

  // Recorded in the security log.
  std::ifstream log(data_dir() / "log" / "security.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("\"action\":\"account.locked\""));
  EXPECT_THAT(text.str(), HasSubstr("\"action\":\"login.failed\""));
  EXPECT_THAT(text.str(), Not(HasSubstr("wrong wrong")));
}

TEST_F(Console, AnAdministratorAddsAPersonWhoSetsTheirPasswordThroughTheirLinkAndSeesOnlyWhatTheirRoleAllows) {
  start_console();
  const auto admin = set_up_administrator();
  auto made =
      call("POST", "/api/v1/users", json{{"username", "bob"}, {"email", "bob@example.org"}}, admin.session, admin.csrf);
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.body_json()["role"], "viewer") << "new people start as viewers";
  EXPECT_EQ(made.body_json()["has_password"], false);
  const std::string link = made.body_json()["password_link"];
  EXPECT_THAT(link, StartsWith("https://localhost:" + std::to_string(console_port) + "/password#"));
  const std::string token = link.substr(link.find('#') + 1);

  // Bob sets his password through the link (a weak one is refused and the link survives).
  EXPECT_EQ(call("POST", "/api/v1/password-link", json{{"token", token}, {"new_password", "bob"}}).status, 422);
  EXPECT_EQ(call("POST", "/api/v1/password-link", json{{"token", token}, {"new_password", kPassword}}).status, 204);
  EXPECT_EQ(call("POST", "/api/v1/password-link", json{{"token", token}, {"new_password", kPassword}}).status, 422);

  auto bob = call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", kPassword}});
  ASSERT_EQ(bob.status, 200) << bob.body;
  EXPECT_EQ(bob.body_json()["stage"], "full") << "viewers need no second factor unless their organisation says so";
  const std::string session = bob.cookie_value();
  const std::string csrf = bob.body_json()["csrf_token"];
  EXPECT_EQ(call("GET", "/api/v1/devices", std::nullopt, session).status, 200);
  auto denied = call("POST", "/api/v1/users", json{{"username", "eve"}, {"email", "eve@example.org"}}, session, csrf);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.code(), "forbidden");
  EXPECT_EQ(call("GET", "/api/v1/users", std::nullopt, session).status, 403);

  // Promoted to operator: his session ends (a privilege change), and he signs in again.
  const std::string id = made.body_json()["id"];
  auto promoted = call("PATCH", "/api/v1/users/" + id, json{{"role", "operator"}}, admin.session, admin.csrf);
  ASSERT_EQ(promoted.status, 200) << promoted.body;
  EXPECT_EQ(call("GET", "/api/v1/session", std::nullopt, session).status, 401);

  // Locked out, then unlocked by the administrator.
  for (int i = 0; i < 3; ++i)
    (void)call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", "nope nope"}});
  EXPECT_EQ(call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", kPassword}}).status, 429);
  EXPECT_EQ(call("POST", "/api/v1/users/" + id + "/unlock", std::nullopt, admin.session, admin.csrf).status, 200);
  EXPECT_EQ(call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", kPassword}}).status, 200);

  EXPECT_EQ(call("DELETE", "/api/v1/users/" + id, std::nullopt, admin.session, admin.csrf).status, 204);
  EXPECT_EQ(call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", kPassword}}).status, 401);
}

// IIIT DI7, JPCERT I-1: a person who forgot their password asks for a link without saying
// whether they exist; it arrives by e-mail through a real SMTP server (aiosmtpd, STARTTLS on
// a certificate made here, AUTH required), sets the password once and ends the old sessions.
// The link is in no log.
TEST_F(Console, AForgottenPasswordIsResetThroughALinkSentByEMail) {
  // Where the server, running as nobody when started as root, can read them.
  const auto mail_dir = work_dir() / "mail";
  std::filesystem::create_directory(mail_dir);
  ::chmod(mail_dir.c_str(), 0711);
  const auto certificates = make_sink_certificates(mail_dir);
  const std::string smtp_password = std::string("smtp-") + "secret-" + std::to_string(::getpid());
  SmtpSink sink(SinkOptions{certificates, "torii:" + smtp_password});
  ASSERT_NE(sink.port(), 0);
  const auto password_file = work_dir() / "smtp-password";
  std::ofstream(password_file) << smtp_password << "\n";
  ::chmod(password_file.c_str(), 0600);
  if (is_root()) {
    ASSERT_EQ(::chown(password_file.c_str(), 65534, 65534), 0) << "nobody owns what it reads";
  }
  config_text += "[mail]\nhost = \"127.0.0.1\"\nport = " + std::to_string(sink.port()) +
                 "\nfrom = \"torii@example.org\"\nusername = \"torii\"\npassword_file = \"" + password_file.string() +
                 "\"\nca_file = \"" + certificates.ca.string() + "\"\ntimeout_seconds = 10\n";
  start_console();
  const auto admin = set_up_administrator();
  auto made =
      call("POST", "/api/v1/users", json{{"username", "bob"}, {"email", "bob@example.org"}}, admin.session, admin.csrf);
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string first = made.body_json()["password_link"];
  ASSERT_EQ(call("POST", "/api/v1/password-link",
                 json{{"token", first.substr(first.find('#') + 1)}, {"new_password", kPassword}})
                .status,
            204);
  auto signed_in = call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", kPassword}});
  ASSERT_EQ(signed_in.status, 200) << signed_in.body;
  const std::string old_session = signed_in.cookie_value();

  const auto asked = call("POST", "/api/v1/password-reset", json{{"name", "bob"}});
  EXPECT_EQ(asked.status, 202) << asked.body;
  const auto unknown = call("POST", "/api/v1/password-reset", json{{"name", "nobody@example.org"}});
  EXPECT_EQ(unknown.status, asked.status);
  EXPECT_EQ(unknown.body, asked.body) << "the answer does not tell who exists";

  const auto received = sink.message(1, std::chrono::seconds(30));
  ASSERT_TRUE(received.has_value()) << "no mail arrived; server log: " << server->err();
  const json mail = json::parse(*received);
  EXPECT_EQ(mail["rcpt_tos"], json::array({"bob@example.org"}));
  EXPECT_EQ(mail["mail_from"], "torii@example.org");
  EXPECT_TRUE(mail["tls"].get<bool>() && mail["authenticated"].get<bool>());
  const std::string data = mail["data"];
  EXPECT_THAT(data, HasSubstr("\r\nTo: <bob@example.org>\r\n"));
  EXPECT_THAT(data, HasSubstr("\r\nSubject: Set your torii password\r\n"));
  const std::string prefix = "https://localhost:" + std::to_string(console_port) + "/password#";
  const auto at = data.find(prefix);
  ASSERT_NE(at, std::string::npos) << data;
  const std::string token = data.substr(at + prefix.size(), 43);

  const std::string other = "quiet marble teapot orbit 1987";
  EXPECT_EQ(call("POST", "/api/v1/password-link", json{{"token", token}, {"new_password", other}}).status, 204);
  EXPECT_EQ(call("POST", "/api/v1/password-link", json{{"token", token}, {"new_password", kPassword}}).status, 422)
      << "single use";
  EXPECT_EQ(call("GET", "/api/v1/session", std::nullopt, old_session).status, 401) << "a reset ends every session";
  EXPECT_EQ(call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", kPassword}}).status, 401);
  EXPECT_EQ(call("POST", "/api/v1/session", json{{"username", "bob"}, {"password", other}}).status, 200);

  // The administrator's way: the link goes to bob's address, not into the answer.
  const std::string id = made.body_json()["id"];
  const auto mailed =
      call("POST", "/api/v1/users/" + id + "/password-link", json{{"send", "email"}}, admin.session, admin.csrf);
  ASSERT_EQ(mailed.status, 202) << mailed.body;
  EXPECT_THAT(mailed.body, Not(HasSubstr("password#")));
  ASSERT_TRUE(sink.message(2, std::chrono::seconds(30)).has_value());
  EXPECT_FALSE(sink.message(3, std::chrono::seconds(0)).has_value()) << "nothing for nobody@example.org";

  std::ifstream log(data_dir() / "log" / "security.log");
  const std::string events((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(events, HasSubstr("password_link.mailed"));
  EXPECT_THAT(events, Not(HasSubstr(token)));
  EXPECT_THAT(server->err(), Not(HasSubstr(token)));
  EXPECT_THAT(server->err(), Not(HasSubstr(smtp_password)));
}

// JPCERT I-10: a script uses an API token with curl, within its scope, until it is revoked;
// the token is never stored or logged, and what it does is attributed to it.
TEST_F(Console, AnApiTokenLetsAScriptReadWithinItsScopeUntilItIsRevoked) {
  start_console();
  const auto admin = set_up_administrator();
  const std::string expires = format_utc_millis(std::chrono::system_clock::now() + std::chrono::hours(24 * 30));
  auto made = call("POST", "/api/v1/account/tokens",
                   json{{"name", "monitoring"}, {"permissions", {"devices.read"}}, {"expires_at", expires}},
                   admin.session, admin.csrf);
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string token = made.body_json()["token"];
  const std::string id = made.body_json()["id"];
  const std::string bearer = "Authorization: Bearer " + token;

  EXPECT_EQ(call("GET", "/api/v1/devices", std::nullopt, "", "", {bearer}).status, 200);
  const auto outside = call("GET", "/api/v1/users", std::nullopt, "", "", {bearer});
  EXPECT_EQ(outside.status, 403);
  EXPECT_EQ(outside.code(), "forbidden");
  const auto own_account = call("GET", "/api/v1/account/tokens", std::nullopt, "", "", {bearer});
  EXPECT_EQ(own_account.status, 403);
  EXPECT_EQ(own_account.code(), "token_not_allowed");
  EXPECT_EQ(call("GET", "/api/v1/devices?access_token=" + token).code(), "token_in_url");
  const auto listed = call("GET", "/api/v1/account/tokens", std::nullopt, admin.session);
  EXPECT_THAT(listed.body, HasSubstr(id));
  EXPECT_THAT(listed.body, Not(HasSubstr(token)));

  EXPECT_EQ(call("DELETE", "/api/v1/account/tokens/" + id, std::nullopt, admin.session, admin.csrf).status, 204);
  const auto revoked = call("GET", "/api/v1/devices", std::nullopt, "", "", {bearer});
  EXPECT_EQ(revoked.status, 401);
  EXPECT_EQ(revoked.header("www-authenticate"), R"(Bearer error="invalid_token")");

  std::ifstream log(data_dir() / "log" / "security.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr(R"("action":"api_token.created")"));
  EXPECT_THAT(text.str(), HasSubstr(R"("action":"api_token.revoked")"));
  EXPECT_THAT(text.str(), HasSubstr(R"("credential":"api_token:)" + id + "\""));
  EXPECT_THAT(text.str(), Not(HasSubstr(token.substr(23)))) << "the token is never logged";
}

TEST_F(Console, TheWebApplicationFirewallBlocksClassicAttacksAndRecordsThemAsAlerts) {
  start_console();
  const auto admin = set_up_administrator();  // normal use passes the firewall throughout
  const auto sqli = call("GET", "/api/v1/devices?organisation=1'%20OR%20'1'='1", std::nullopt, admin.session);
  EXPECT_EQ(sqli.status, 403) << sqli.body;
  EXPECT_EQ(sqli.code(), "blocked");
  const auto in_body =
      call("POST", "/api/v1/session", json{{"username", "admin' OR 1=1--"}, {"password", "whatever it is"}});
  EXPECT_EQ(in_body.code(), "blocked") << in_body.body;
  const auto xss = call("GET", "/api/v1/setup?next=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E");
  EXPECT_EQ(xss.code(), "blocked") << xss.body;
  EXPECT_EQ(xss.header("content-security-policy").empty(), false) << "a refusal carries the headers too";
  EXPECT_EQ(call("GET", "/api/v1/devices?organisation=default", std::nullopt, admin.session).status, 200);

  std::ifstream log(data_dir() / "log" / "security.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr(R"("action":"waf.blocked")"));
  EXPECT_THAT(text.str(), HasSubstr(R"("alert":true)"));
  EXPECT_THAT(text.str(), Not(HasSubstr("document.cookie"))) << "what was sent stays out of the log";
}

// JPCERT III-1, VII-2, VIII-2: an auditor lists the alerts after a lockout and reads the
// log; the log verifies through the API.
TEST_F(Console, AnAuditorListsALockoutAmongTheAlertsAndTheLogVerifies) {
  start_console();
  const auto admin = set_up_administrator();
  auto made =
      call("POST", "/api/v1/users", json{{"username", "audrey"}, {"email", "audrey@example.org"}, {"role", "auditor"}},
           admin.session, admin.csrf);
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string link = made.body_json()["password_link"];
  ASSERT_EQ(call("POST", "/api/v1/password-link",
                 json{{"token", link.substr(link.find('#') + 1)}, {"new_password", kPassword}})
                .status,
            204);
  auto audrey = call("POST", "/api/v1/session", json{{"username", "audrey"}, {"password", kPassword}});
  ASSERT_EQ(audrey.status, 200) << audrey.body;
  const std::string session = audrey.cookie_value();

  // Someone guesses alice's password until her account locks.
  for (int i = 0; i < 3; ++i)
    (void)call("POST", "/api/v1/session", json{{"username", "alice"}, {"password", "guess guess"}});
  auto alerts = call("GET", "/api/v1/alerts", std::nullopt, session);
  ASSERT_EQ(alerts.status, 200) << alerts.body;
  bool locked = false;
  const json listed = alerts.body_json();
  for (const auto& a : listed["alerts"]) locked = locked || (a["title"] == "Account locked" && a["status"] == "open");
  EXPECT_TRUE(locked) << alerts.body;
  auto failures = call("GET", "/api/v1/security-log?action=login.failed&limit=2", std::nullopt, session);
  ASSERT_EQ(failures.status, 200) << failures.body;
  EXPECT_THAT(failures.body_json()["events"], SizeIs(2));
  EXPECT_THAT(failures.body, Not(HasSubstr("guess guess")));

  auto verified = call("GET", "/api/v1/security-log/verify", std::nullopt, admin.session);
  ASSERT_EQ(verified.status, 200) << verified.body;
  EXPECT_EQ(verified.body_json()["ok"], true) << verified.body;
  EXPECT_GT(verified.body_json()["lines"].get<int>(), 5);

  // An administrator keeps the second factor.
  auto off = call("DELETE", "/api/v1/account/totp", std::nullopt, admin.session, admin.csrf);
  EXPECT_EQ(off.status, 409) << off.body;
  EXPECT_EQ(off.code(), "second_factor_required");
}

TEST_F(Console, EveryAnswerCarriesTheSecurityHeaders) {
  start_console();
  for (const auto& answer :
       {call("GET", "/api/v1/setup"), call("GET", "/api/v1/nothing/here"), call("GET", "/api/v1/devices"),
        call("PUT", "/api/v1/setup"), call("GET", "/missing.png")}) {
    EXPECT_EQ(answer.header("strict-transport-security"), "max-age=63072000; includeSubDomains");
    EXPECT_THAT(answer.header("content-security-policy"), HasSubstr("default-src 'none'"));
    EXPECT_THAT(answer.header("content-security-policy"), HasSubstr("frame-ancestors 'none'"));
    EXPECT_EQ(answer.header("x-content-type-options"), "nosniff");
    EXPECT_EQ(answer.header("referrer-policy"), "no-referrer");
    EXPECT_EQ(answer.header("cache-control"), "no-store");
    EXPECT_EQ(answer.header("access-control-allow-origin"), "") << "no CORS";
  }
  EXPECT_EQ(call("GET", "/api/v1/nothing/here").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/nothing/here").header("content-type"), "application/problem+json");
  EXPECT_EQ(call("GET", "/missing.png").status, 404);
  auto wrong_method = call("PUT", "/api/v1/setup");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.header("allow"), "GET, POST");

  // The web console's page (built beside the binary) for any other path: the same headers but
  // its own policy, which lets it load its own scripts and styles and nothing else, and
  // revalidated rather than never stored.
  auto page = call("GET", "/nothing/here");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.header("strict-transport-security"), "max-age=63072000; includeSubDomains");
  EXPECT_THAT(page.header("content-security-policy"), HasSubstr("default-src 'none'"));
  EXPECT_THAT(page.header("content-security-policy"), HasSubstr("script-src 'self'"));
  EXPECT_THAT(page.header("content-security-policy"), HasSubstr("frame-ancestors 'none'"));
  EXPECT_THAT(page.header("content-security-policy"), Not(HasSubstr("unsafe")));
  EXPECT_EQ(page.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(page.header("cache-control"), "no-cache");
  EXPECT_EQ(call("POST", "/nothing/here").status, 405);
}

TEST_F(Console, RequestsFromOtherOriginsWithoutCsrfTokenOrOfUnknownShapeAreRefused) {
  start_console();
  const auto s = set_up_administrator();
  const json sign_in{{"username", "alice"}, {"password", kPassword}};
  // Cross-origin (login CSRF) and cross-site fetches are refused before anything is checked.
  EXPECT_EQ(call("POST", "/api/v1/session", sign_in, "", "", {"Origin: https://evil.example"}).code(), "cross_origin");
  EXPECT_EQ(call("POST", "/api/v1/session", sign_in, "", "", {"Sec-Fetch-Site: cross-site"}).code(), "cross_origin");
  EXPECT_EQ(call("POST", "/api/v1/session", sign_in, "", "",
                 {"Origin: https://localhost:" + std::to_string(console_port), "Sec-Fetch-Site: same-origin"})
                .status,
            200);

  // A state change with the session but without (or with a wrong) CSRF token.
  EXPECT_EQ(call("POST", "/api/v1/account/sessions/end-others", std::nullopt, s.session).code(), "csrf");
  EXPECT_EQ(call("POST", "/api/v1/account/sessions/end-others", std::nullopt, s.session, "x" + s.csrf).code(), "csrf");
  EXPECT_EQ(call("DELETE", "/api/v1/session", std::nullopt, s.session).code(), "csrf");
  EXPECT_EQ(call("GET", "/api/v1/session", std::nullopt, s.session).status, 200) << "still signed in";

  // Bodies: JSON objects of known string members only; every problem is listed.
  auto unknown = call("POST", "/api/v1/session", json{{"username", "alice"}, {"password", 5}, {"admin", true}});
  EXPECT_EQ(unknown.status, 400);
  std::set<std::string> fields;
  const json refusal = unknown.body_json();
  for (const auto& e : refusal["errors"]) fields.insert(e["field"].get<std::string>());
  EXPECT_EQ(fields, (std::set<std::string>{"password", "admin"}));
  EXPECT_EQ(call("POST", "/api/v1/session", json::array({1, 2})).status, 400);
  const auto form = run({"curl", "-sS", "-i", "--cacert", (work_dir() / "ca.pem").string(), "-d",
                         "username=alice&password=x", url("/api/v1/session")});
  // A form post (what a cross-site form would send) is stopped by the firewall, which lets
  // only JSON through; without it the API itself answers 415 (ApiTest).
  EXPECT_EQ(parse_answer(form.out).code(), "blocked");
  // Larger than console.max_body_bytes (2048 here).
  EXPECT_EQ(call("POST", "/api/v1/session", json{{"username", std::string(4000, 'a')}, {"password", "x"}}).status, 413);
}

// IIIT N1, J9; JPCERT VI-4: a device made through the API connects with what the API handed
// over (Mosquitto's client, mutual TLS), its telemetry is read back through the API, and once
// revoked through the API its live session is closed and it cannot return.
TEST_F(Console, ADeviceCreatedThroughTheApiSendsTelemetryAndIsShutOutOnceRevoked) {
  start_console();
  const auto admin = set_up_administrator();
  const auto device = thermometer(admin, "meter-1");
  ASSERT_FALSE(device.empty());
  EXPECT_THAT(call("GET", "/api/v1/devices/meter-1", std::nullopt, admin.session).body, Not(HasSubstr("PRIVATE KEY")));
  const auto publish = [&](const std::string& payload) { return publish_telemetry(device, "meter-1", payload); };
  for (const std::string value : {"21.5", "23.5"}) {
    const auto sent = publish(R"({"temperature":)" + value + "}");
    ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
    EXPECT_THAT(sent.out, HasSubstr("received PUBACK"));  // sent once the message is stored
  }
  const auto series =
      call("GET", "/api/v1/devices/meter-1/telemetry?metric=temperature&points=1", std::nullopt, admin.session);
  ASSERT_EQ(series.status, 200) << series.body;
  const json buckets = series.body_json()["buckets"];
  ASSERT_EQ(buckets.size(), 1u) << series.body;
  EXPECT_EQ(buckets[0]["count"], 2);
  EXPECT_EQ(buckets[0]["min"], 21.5);
  EXPECT_EQ(buckets[0]["max"], 23.5);
  EXPECT_EQ(buckets[0]["avg"], 22.5);
  const auto latest = call("GET", "/api/v1/devices/meter-1/latest", std::nullopt, admin.session);
  EXPECT_EQ(latest.body_json()["latest"]["temperature"]["value"], 23.5) << latest.body;

  // A device with its own key: the CSR passes the firewall and the body limit (2048 here).
  const auto key = (work_dir() / "valve-1.key").string();
  const auto request = run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-subj", "/CN=valve-1", "-keyout", key, "-out", "-"});
  ASSERT_EQ(request.exit_code, 0) << request.err;
  const auto csr =
      call("POST", "/api/v1/devices", json{{"id", "valve-1"}, {"csr", request.out}}, admin.session, admin.csrf);
  ASSERT_EQ(csr.status, 201) << csr.body;
  EXPECT_FALSE(csr.body_json().contains("private_key_pem"));

  // Revoked while connected: the session is closed at once and the device cannot return.
  std::vector<std::string> watch{"stdbuf", "-oL", "mosquitto_sub"};
  watch.insert(watch.end(), device.begin(), device.end());
  watch.insert(watch.end(), {"-t", "devices/meter-1/commands", "-d"});
  Process live(watch);
  ASSERT_TRUE(live.wait_for_output("Subscribed", std::chrono::seconds(10))) << live.out();
  const auto revoked =
      call("POST", "/api/v1/devices/meter-1/revoke", json{{"reason", "stolen"}}, admin.session, admin.csrf);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(live.wait(std::chrono::seconds(10)), 0);
  EXPECT_THAT(live.out(), HasSubstr("Received DISCONNECT (152)"));  // 0x98 administrative action
  const auto again = publish(R"({"temperature":20})");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("Not authorized"));

  std::ifstream log(data_dir() / "log" / "security.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr(R"("action":"certificate.revoked")"));
  EXPECT_THAT(text.str(), HasSubstr(R"("reason":"stolen")"));
  EXPECT_THAT(text.str(), Not(HasSubstr("PRIVATE KEY")));
}

// IIIT DI1, J9: a device that makes its own key enrols with the one-time token the admin
// command printed, over HTTPS with curl, then publishes with the certificate it got.
TEST_F(Console, ADeviceEnrolsWithItsOneTimeTokenAndPublishesWithTheCertificateItGot) {
  start_console();
  const auto created = torii({"admin", "device", "create", "--id", "sensor-9", "--enrolment-token"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string out = created.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const std::string token = out.substr(out.rfind('\n') + 1);  // the last line, alone
  ASSERT_EQ(token.size(), 43U) << created.out;

  const auto dir = work_dir() / "sensor-9";
  std::filesystem::create_directories(dir);
  const auto key = (dir / "sensor-9.key").string();
  const auto request = run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-subj", "/CN=not-my-name", "-keyout", key, "-out", "-"});
  ASSERT_EQ(request.exit_code, 0) << request.err;
  const auto enrolled = call("POST", "/api/v1/enrol", json{{"token", token}, {"csr", request.out}});
  ASSERT_EQ(enrolled.status, 201) << enrolled.body;
  const json bundle = enrolled.body_json();
  EXPECT_EQ(bundle["device"], "sensor-9");
  std::ofstream(dir / "ca.crt") << bundle["ca_bundle_pem"].get<std::string>();
  std::ofstream(dir / "sensor-9.crt") << bundle["certificate_pem"].get<std::string>();
  const auto subject = run({"openssl", "x509", "-noout", "-subject", "-in", (dir / "sensor-9.crt").string()});
  EXPECT_THAT(subject.out, HasSubstr("sensor-9"));

  const auto sent = run({"mosquitto_pub",
                         "--cafile",
                         (dir / "ca.crt").string(),
                         "--cert",
                         (dir / "sensor-9.crt").string(),
                         "--key",
                         key,
                         "-h",
                         "127.0.0.1",
                         "-p",
                         std::to_string(gateway_port),
                         "-V",
                         "mqttv5",
                         "-i",
                         "sensor-9",
                         "-q",
                         "1",
                         "-t",
                         "devices/sensor-9/telemetry",
                         "-m",
                         R"({"temperature":19.5})",
                         "-d"},
                        std::chrono::seconds(30));
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  EXPECT_THAT(sent.out, HasSubstr("received PUBACK"));

  const auto again = call("POST", "/api/v1/enrol", json{{"token", token}, {"csr", request.out}});
  EXPECT_EQ(again.status, 401);
  EXPECT_EQ(again.code(), "enrolment_refused");

  std::ifstream log(data_dir() / "log" / "security.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr(R"("action":"device.enrolled")"));
  EXPECT_THAT(text.str(), HasSubstr(R"("reason":"used")"));
  EXPECT_THAT(text.str(), Not(HasSubstr(token)));
}

// The live view as a browser opens it: a WebSocket with the session cookie from the console's
// own origin, seeing a device connect and its telemetry arrive, closed when the person signs
// out. The client is an independent implementation (python3-websockets).
TEST_F(Console, TheLiveViewShowsADevicesTelemetryAsItArrivesUntilSignOut) {
  start_console();
  const auto admin = set_up_administrator();
  const auto device = thermometer(admin, "meter-1");
  ASSERT_FALSE(device.empty());
  const std::string origin = "https://localhost:" + std::to_string(console_port);

  // --cookie=VALUE: a session id may start with '-', which argparse would take for an option.
  Process foreign(live_client("/api/v1/live", {"--cookie=" + admin.session, "--origin", "https://evil.example"}));
  EXPECT_EQ(foreign.wait(std::chrono::seconds(30)), 2);
  EXPECT_THAT(foreign.out(), HasSubstr("refused 403"));

  Process watcher(live_client("/api/v1/devices/meter-1/live", {"--cookie=" + admin.session, "--origin", origin}));
  ASSERT_TRUE(watcher.wait_for_output("open", std::chrono::seconds(30))) << watcher.out() << watcher.err();
  const auto sent = publish_telemetry(device, "meter-1", R"({"temperature":21.5})");
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  ASSERT_TRUE(watcher.wait_for_output(R"("metrics":{"temperature":21.5})", std::chrono::seconds(30)))
      << watcher.out() << watcher.err();
  EXPECT_THAT(watcher.out(), HasSubstr(R"({"at":)"));
  EXPECT_THAT(watcher.out(), HasSubstr(R"("device":"meter-1","online":true,"type":"status")"));
  // The connection mosquitto_pub made has ended by now; its end is announced too.
  EXPECT_TRUE(watcher.wait_for_output(R"("online":false)", std::chrono::seconds(30))) << watcher.out();

  const auto out = call("DELETE", "/api/v1/session", std::nullopt, admin.session, admin.csrf);
  ASSERT_EQ(out.status, 204) << out.body;
  EXPECT_EQ(watcher.wait(std::chrono::seconds(30)), 0) << watcher.out() << watcher.err();
  EXPECT_THAT(watcher.out(), HasSubstr("closed 1008 signed out"));

  // The cookie of the ended session opens nothing.
  Process after(live_client("/api/v1/live", {"--cookie=" + admin.session, "--origin", origin}));
  EXPECT_EQ(after.wait(std::chrono::seconds(30)), 2);
  EXPECT_THAT(after.out(), HasSubstr("refused 401"));
}

TEST_F(Console, AnIdleConnectionIsClosedAndAGarbledRequestGets400) {
  start_console();
  const std::string ca = (work_dir() / "ca.pem").string();
  // console.idle_timeout_seconds = 2: a client that sends nothing is closed.
  const auto idle = run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(console_port), "-ign_eof",
                         "-CAfile", ca, "-quiet"},
                        std::chrono::seconds(20));
  EXPECT_NE(idle.exit_code, -1) << "still open after 20 s";
  const auto garbled = run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(console_port), "-ign_eof",
                            "-CAfile", ca, "-quiet"},
                           std::chrono::seconds(20), "GET /api/v1/setup HTTP/1.1\r\nHost localhost\r\n\r\n");
  EXPECT_THAT(garbled.out, StartsWith("HTTP/1.1 400 Bad Request\r\n"));
}

// PATCH /api/v1/settings on a real server: a lower lockout threshold and a firewall deny list
// take effect at once, and both are still in force after a restart. A stored change that no
// longer fits the file stops the next start, naming the key, until the admin CLI resets it.
TEST_F(Console, ASettingChangedThroughTheApiIsKeptAcrossARestart) {
  start_console();
  const auto admin = set_up_administrator();
  // From a second loopback address (all of 127/8 is local), as another host would come.
  const auto from_elsewhere = [&] {
    return run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.2", "--cacert",
                (work_dir() / "ca.pem").string(), url("/api/v1/session")},
               std::chrono::seconds(30));
  };
  ASSERT_EQ(from_elsewhere().out, "401");

  const auto shut_out = call("PATCH", "/api/v1/settings", json{{"changes", {{"firewall.deny", {"127.0.0.0/8"}}}}},
                             admin.session, admin.csrf);
  EXPECT_EQ(shut_out.status, 422) << shut_out.body;
  EXPECT_THAT(shut_out.body, HasSubstr("locks_you_out"));

  const auto changed =
      call("PATCH", "/api/v1/settings",
           json{{"changes", {{"accounts.lock_after_failures", 2}, {"firewall.deny", {"127.0.0.2/32"}}}}}, admin.session,
           admin.csrf);
  ASSERT_EQ(changed.status, 200) << changed.body;
  EXPECT_EQ(changed.body_json()["settings"]["accounts"]["lock_after_failures"], 2);
  // The file says 3: two failures lock now.
  const auto wrong = json{{"username", "nobody-here"}, {"password", "wrong wrong"}};
  EXPECT_EQ(call("POST", "/api/v1/session", wrong).status, 401);
  EXPECT_EQ(call("POST", "/api/v1/session", wrong).status, 429);
  EXPECT_NE(from_elsewhere().out, "401") << "127.0.0.2 is denied now";

  ASSERT_EQ(stop(), 0);
  start();
  const auto shown = call("GET", "/api/v1/settings", std::nullopt, admin.session);
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(shown.body_json()["settings"]["accounts"]["lock_after_failures"], 2);
  EXPECT_EQ(shown.body_json()["keys"]["accounts.lock_after_failures"]["source"], "console");
  EXPECT_EQ(shown.body_json()["settings"]["firewall"]["deny"], json::array({"127.0.0.2/32"}));
  const auto other = json{{"username", "nobody-else"}, {"password", "wrong wrong"}};
  EXPECT_EQ(call("POST", "/api/v1/session", other).status, 401);
  EXPECT_EQ(call("POST", "/api/v1/session", other).status, 429);
  EXPECT_NE(from_elsewhere().out, "401") << "still denied after the restart";

  // The file changes under a stored value: the start is refused with the key, until reset.
  ASSERT_EQ(call("PATCH", "/api/v1/settings", json{{"changes", {{"accounts.first_lock_seconds", 1200}}}}, admin.session,
                 admin.csrf)
                .status,
            200);
  ASSERT_EQ(stop(), 0);
  config_text += "longest_lock_seconds = 900\n";  // in [accounts], the file's last section
  const auto refused = torii({"server"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err + refused.out, HasSubstr("accounts.longest_lock_seconds"));
  const auto reset = torii({"admin", "settings", "reset", "--key", "accounts.first_lock_seconds"});
  EXPECT_EQ(reset.exit_code, 0) << reset.err;
  start();
  const auto after = call("GET", "/api/v1/settings", std::nullopt, admin.session);
  EXPECT_EQ(after.body_json()["settings"]["accounts"]["first_lock_seconds"], 600);
  EXPECT_EQ(after.body_json()["settings"]["accounts"]["longest_lock_seconds"], 900);
  EXPECT_EQ(after.body_json()["settings"]["accounts"]["lock_after_failures"], 2);
}

}  // namespace
}  // namespace torii::testing

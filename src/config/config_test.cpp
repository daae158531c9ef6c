#include "config/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::config {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;

auto problem_at(const std::string& key, const std::string& text) {
  return AllOf(Field(&Problem::key, key), Field(&Problem::message, HasSubstr(text)));
}

TEST(Config, EmptyFileMeansSecureDefaults) {
  const auto r = parse_config("");
  ASSERT_TRUE(r.ok()) << format_problems(r.problems);
  EXPECT_EQ(r.config, Config{});
  EXPECT_EQ(r.config.gateway.listen.at(0).to_string(), "127.0.0.1:8883");
  EXPECT_EQ(r.config.console.listen.at(0).to_string(), "127.0.0.1:8443");
  EXPECT_EQ(r.config.tls.min_version, "1.2");
  EXPECT_NE(r.config.server.user, "root");
}

TEST(Config, PrintedDefaultParsesToTheBuiltInDefaultsAndNamesEveryKey) {
  const std::string text = default_config_text();
  const auto r = parse_config(text);
  ASSERT_TRUE(r.ok()) << format_problems(r.problems);
  EXPECT_EQ(r.config, Config{});
  for (const auto& key : known_keys()) {
    const auto name = key.substr(key.find('.') + 1);
    EXPECT_THAT(text, HasSubstr("\n" + name + " = ")) << key;
  }
}

TEST(Config, EveryKeyIsDocumented) {
  const char* source_dir = std::getenv("TORII_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr);
  std::ifstream in(std::string(source_dir) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md is missing";
  std::ostringstream doc;
  doc << in.rdbuf();
  EXPECT_GE(known_keys().size(), 30u);
  for (const auto& key : known_keys()) EXPECT_THAT(doc.str(), HasSubstr("`" + key + "`")) << key;
}

TEST(Config, ReportsEveryProblemWithItsKeyPath) {
  const auto r = parse_config(R"(
[server]
user = "root"
hostnames = ["ok.example", "bad_name!"]
public_url = "http://plain.example"
[gateway]
listen = ["127.0.0.1:8883", "localhost:1883", "10.0.0.1:65536"]
handshake_timeout_seconds = 0
[console]
listen = ["127.0.0.1:8883"]
[tls]
min_version = "1.0"
ciphers_tls12 = "AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256"
[firewall]
allow = ["10.0.0.1/8", "2001:db8::/32"]
max_connections = "many"
[keys]
kek_source = "tpm"
[pki]
device_certificate_lifetime_days = 400
[log]
level = "verbose"
lisen = 1
[setup]
token_lifetime_minutes = 600
[devices]
max_clock_skew_seconds = 86401
[extra]
x = 1
)");
  ASSERT_FALSE(r.ok());
  const auto& p = r.problems;
  EXPECT_THAT(p, Contains(problem_at("server.user", "must not be root")));
  EXPECT_THAT(p, Contains(problem_at("server.hostnames[1]", "bad_name!")));
  EXPECT_THAT(p, Contains(problem_at("server.public_url", "https://")));
  EXPECT_THAT(p, Contains(problem_at("gateway.listen[1]", "not a numeric IP address")));
  EXPECT_THAT(p, Contains(problem_at("gateway.listen[2]", "port must be 0-65535")));
  EXPECT_THAT(p, Contains(problem_at("gateway.handshake_timeout_seconds", "between 1 and 120")));
  EXPECT_THAT(p, Contains(problem_at("console.listen[0]", "overlaps 127.0.0.1:8883 (gateway.listen[0])")));
  EXPECT_THAT(p, Contains(problem_at("tls.min_version", "\"1.2\" or \"1.3\"")));
  EXPECT_THAT(p, Contains(problem_at("tls.ciphers_tls12", "'AES128-SHA' is not an allowed suite")));
  EXPECT_THAT(p, Contains(problem_at("firewall.allow[0]", "host bits set")));
  EXPECT_THAT(p, Contains(problem_at("firewall.max_connections", "must be an integer")));
  EXPECT_THAT(p, Contains(problem_at("keys.kek_source", "\"file\" or \"passphrase\"")));
  EXPECT_THAT(p, Contains(problem_at("pki.device_certificate_lifetime_days", "between 1 and 397")));
  EXPECT_THAT(p, Contains(problem_at("log.level", "one of trace")));
  EXPECT_THAT(p, Contains(problem_at("log.lisen", "unknown key")));
  EXPECT_THAT(p, Contains(problem_at("setup.token_lifetime_minutes", "between 5 and 60")));
  EXPECT_THAT(p, Contains(problem_at("devices.max_clock_skew_seconds", "between 0 and 86400")));
  EXPECT_THAT(p, Contains(problem_at("extra", "unknown section")));
  EXPECT_EQ(p.size(), 18u) << format_problems(p);
}

TEST(Config, MailIsOffByDefaultAndItsProblemsAreAllReported) {
  EXPECT_TRUE(Config{}.mail.host.empty());
  EXPECT_EQ(Config{}.mail.tls, "starttls");
  const auto r = parse_config(R"(
[mail]
host = "mail.example.org"
port = 0
tls = "none"
from_name = "x\ny"
username = "torii"
timeout_seconds = 0
)");
  const auto& p = r.problems;
  EXPECT_THAT(p, Contains(problem_at("mail.port", "between 1 and 65535")));
  EXPECT_THAT(p, Contains(problem_at("mail.tls", "only to a loopback host")));
  EXPECT_THAT(p, Contains(problem_at("mail.from", "must be set")));
  EXPECT_THAT(p, Contains(problem_at("mail.from_name", "one line")));
  EXPECT_THAT(p, Contains(problem_at("mail.password_file", "go together")));
  EXPECT_THAT(p, Contains(problem_at("mail.username", "only over TLS")));
  EXPECT_THAT(p, Contains(problem_at("mail.timeout_seconds", "between 1 and 300")));
  EXPECT_EQ(p.size(), 7u) << format_problems(p);

  const auto bad = parse_config("[mail]\nhost = \"bad host\"\ntls = \"maybe\"\nfrom = \"not an address\"\n");
  EXPECT_THAT(bad.problems, Contains(problem_at("mail.host", "DNS name")));
  EXPECT_THAT(bad.problems, Contains(problem_at("mail.tls", "\"starttls\", \"tls\" or \"none\"")));
  EXPECT_THAT(bad.problems, Contains(problem_at("mail.from", "e-mail address")));

  const auto local =
      parse_config("[mail]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"torii@example.org\"\n");
  ASSERT_TRUE(local.ok()) << format_problems(local.problems);
  EXPECT_EQ(local.config.mail.port, 2525u);
  const auto secure = parse_config(
      "[mail]\nhost = \"mail.example.org\"\nfrom = \"torii@example.org\"\nusername = \"torii\"\n"
      "password_file = \"/etc/torii/smtp-password\"\nca_file = \"ca.pem\"\n");
  ASSERT_TRUE(secure.ok()) << format_problems(secure.problems);
  EXPECT_EQ(secure.config.mail.password_file, "/etc/torii/smtp-password");
}

TEST(Config, SyntaxErrorNamesLineAndColumn) {
  const auto r = parse_config("[server]\nuser = \"torii\n");
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_THAT(r.problems[0].message, HasSubstr("line 2"));
}

TEST(Config, AcceptsIpv6ListenersAndWildcardsWithoutOverlap) {
  const auto r = parse_config(R"(
[gateway]
listen = ["[::1]:8883", "0.0.0.0:8884"]
[console]
listen = ["[::1]:8443"]
[firewall]
deny = ["2001:db8::/32", "203.0.113.0/24"]
)");
  ASSERT_TRUE(r.ok()) << format_problems(r.problems);
  EXPECT_EQ(r.config.gateway.listen[0].host, "::1");
  EXPECT_EQ(r.config.gateway.listen[0].to_string(), "[::1]:8883");
  EXPECT_EQ(r.config.firewall.deny.size(), 2u);
}

TEST(Config, WildcardOverlapsSpecificAddressOnSamePort) {
  const auto r = parse_config("[gateway]\nlisten = [\"0.0.0.0:9000\"]\n[console]\nlisten = [\"127.0.0.1:9000\"]\n");
  EXPECT_THAT(r.problems, Contains(problem_at("console.listen[0]", "overlaps")));
}

TEST(Config, MissingFileIsAProblemNotACrash) {
  const auto r = load_config_file("/nonexistent/torii.toml");
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_THAT(r.problems[0].message, HasSubstr("cannot read"));
}

}  // namespace
}  // namespace torii::config

namespace torii::config {
namespace {

Config from_file(std::string_view text) {
  auto r = parse_config(text);
  EXPECT_TRUE(r.ok()) << format_problems(r.problems);
  return r.config;
}

TEST(ConfigOverrides, AreAppliedOverTheFileAndLeaveEveryOtherKeyAsTheFileSaysIt) {
  const Config file = from_file("[accounts]\nlock_after_failures = 8\nsession_idle_minutes = 20\n");
  const auto r = apply_overrides(file, {{"accounts.lock_after_failures", "3"},
                                        {"firewall.deny", R"(["203.0.113.0/24", "2001:db8::/32"])"},
                                        {"console.requests_per_minute_per_user", "120"}});
  ASSERT_TRUE(r.ok()) << format_problems(r.problems);
  Config expected = file;
  expected.accounts.lock_after_failures = 3;
  expected.firewall.deny = {"203.0.113.0/24", "2001:db8::/32"};
  expected.console_http.requests_per_minute_per_user = 120;
  EXPECT_EQ(r.config, expected);
  EXPECT_EQ(r.config.accounts.session_idle_minutes, 20u);
}

// The file's checks and messages, every problem at once, the checks across keys included.
TEST(ConfigOverrides, AreCheckedAsTheFileIsWithEveryProblemListed) {
  const auto r = apply_overrides(Config{}, {{"accounts.lock_after_failures", "0"},
                                            {"accounts.session_idle_minutes", "\"ten\""},
                                            {"accounts.first_lock_seconds", "7200"},
                                            {"firewall.allow", R"(["10.0.0.0/8", "not-a-block", 5])"},
                                            {"log.retention_days", "1.5"},
                                            {"console.sign_in_attempts_per_minute", "null"}});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.problems, Contains(problem_at("accounts.lock_after_failures", "must be between 1 and 100 (got 0)")));
  EXPECT_THAT(r.problems, Contains(problem_at("accounts.session_idle_minutes", "must be an integer")));
  EXPECT_THAT(r.problems,
              Contains(problem_at("accounts.longest_lock_seconds", "must be at least accounts.first_lock_seconds")));
  EXPECT_THAT(r.problems, Contains(problem_at("firewall.allow[1]", "not-a-block")));
  EXPECT_THAT(r.problems, Contains(problem_at("firewall.allow[2]", "must be a string")));
  EXPECT_THAT(r.problems, Contains(problem_at("log.retention_days", "must be an integer")));
  EXPECT_THAT(r.problems, Contains(problem_at("console.sign_in_attempts_per_minute", "must be an integer")));
  EXPECT_EQ(r.problems.size(), 7u) << format_problems(r.problems);
}

// Listener addresses, TLS, key sources, the data directory and the PKI stay the file's.
TEST(ConfigOverrides, OnlyTheChangeableKeysAreAccepted) {
  const auto r = apply_overrides(Config{}, {{"console.listen", R"(["0.0.0.0:443"])"},
                                            {"tls.min_version", "\"1.2\""},
                                            {"keys.kek_source", "\"passphrase\""},
                                            {"server.data_dir", "\"/tmp\""},
                                            {"pki.root_ca_lifetime_days", "9000"},
                                            {"accounts.no_such_key", "1"},
                                            {"accounts.api_token_max_days", "{"}});
  EXPECT_THAT(r.problems, Contains(problem_at("console.listen", "cannot be changed through the console")));
  EXPECT_THAT(r.problems, Contains(problem_at("tls.min_version", "cannot be changed through the console")));
  EXPECT_THAT(r.problems, Contains(problem_at("keys.kek_source", "cannot be changed through the console")));
  EXPECT_THAT(r.problems, Contains(problem_at("server.data_dir", "cannot be changed through the console")));
  EXPECT_THAT(r.problems, Contains(problem_at("pki.root_ca_lifetime_days", "cannot be changed through the console")));
  EXPECT_THAT(r.problems, Contains(problem_at("accounts.no_such_key", "unknown key")));
  EXPECT_THAT(r.problems, Contains(problem_at("accounts.api_token_max_days", "is not a JSON value")));
  EXPECT_EQ(r.problems.size(), 7u) << format_problems(r.problems);
  EXPECT_EQ(r.config, Config{});
  for (const auto& k : changeable_keys()) {
    EXPECT_NE(std::find(known_keys().begin(), known_keys().end(), k.key), known_keys().end()) << k.key;
  }
}

}  // namespace
}  // namespace torii::config

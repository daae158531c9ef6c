// The SMTP client against a real server: aiosmtpd on loopback (testing/smtp_sink.h), with
// STARTTLS on a certificate made for the test and AUTH required.
#include "mail/smtp_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "testing/smtp_sink.h"
#include "testing/temp_dir.h"

namespace torii::mail {
namespace {

using testing::SinkOptions;
using testing::SmtpSink;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Built at run time (scripts/secret-scan).
std::string sink_password() { return std::string("sink-") + "pass-" + std::to_string(4242); }

class SmtpClientTest : public ::testing::Test {
 protected:
  SmtpClientTest() : certificates(testing::make_sink_certificates(dir.path())) {}

  SmtpSettings settings_for(const SmtpSink& sink) const {
    SmtpSettings s;
    s.host = "127.0.0.1";
    s.port = sink.port();
    s.from = "torii@example.org";
    s.from_name = "torii";
    s.username = "torii";
    s.password = sink_password();
    s.ca_pem = read_text(certificates.ca);
    s.timeout = std::chrono::seconds(10);
    return s;
  }

  testing::TempDir dir;
  testing::SinkCertificates certificates;
  const MailMessage message{"ann@example.org", "Set your password", "Open this:\n.\nhttps://x.example/p#t\n"};
};

TEST_F(SmtpClientTest, SendsOverVerifiedStartTlsWithAuthAndTheMessageArrivesIntact) {
  SmtpSink sink(SinkOptions{certificates, "torii:" + sink_password()});
  ASSERT_NE(sink.port(), 0);
  auto sent = send_mail(settings_for(sink), message);
  ASSERT_TRUE(sent.has_value()) << sent.error().message;
  auto text = sink.message(1, std::chrono::seconds(10));
  ASSERT_TRUE(text.has_value());
  const auto got = nlohmann::json::parse(*text);
  EXPECT_EQ(got["mail_from"], "torii@example.org");
  EXPECT_EQ(got["rcpt_tos"], nlohmann::json::array({"ann@example.org"}));
  EXPECT_TRUE(got["tls"].get<bool>());
  EXPECT_TRUE(got["authenticated"].get<bool>());
  EXPECT_EQ(got["mail_options"], nlohmann::json::array({"BODY=8BITMIME"}));
  const std::string data = got["data"];
  for (const char* header : {"\r\nMessage-ID: <", "\r\nFrom: \"torii\" <torii@example.org>\r\n",
                             "\r\nTo: <ann@example.org>\r\n", "\r\nSubject: Set your password\r\n",
                             "\r\nMIME-Version: 1.0\r\n", "\r\nContent-Type: text/plain; charset=utf-8\r\n"}) {
    EXPECT_NE(data.find(header), std::string::npos) << header;
  }
  EXPECT_TRUE(data.starts_with("Date: "));
  EXPECT_NE(data.find("\r\n\r\nOpen this:\r\n.\r\nhttps://x.example/p#t\r\n"), std::string::npos)
      << "the server undid the dot-stuffing: " << data;
  EXPECT_EQ(sink.commands(), "EHLO plain\nSTARTTLS plain\nEHLO tls\nAUTH tls\nMAIL tls\n");
}

TEST_F(SmtpClientTest, AWrongPasswordFailsNamingTheReplyAndTheStepButNotThePassword) {
  SmtpSink sink(SinkOptions{certificates, "torii:" + sink_password()});
  ASSERT_NE(sink.port(), 0);
  auto settings = settings_for(sink);
  settings.password = "wrong-" + sink_password();
  auto sent = send_mail(settings, message);
  ASSERT_FALSE(sent.has_value());
  EXPECT_NE(sent.error().message.find("smtp: 535"), std::string::npos) << sent.error().message;
  EXPECT_NE(sent.error().message.find("at AUTH"), std::string::npos) << sent.error().message;
  EXPECT_EQ(sent.error().message.find(settings.password), std::string::npos);
  EXPECT_FALSE(sink.message(1, std::chrono::seconds(0)).has_value());
}

TEST_F(SmtpClientTest, ACertificateFromAnotherCaIsRefusedBeforeAnyCredentials) {
  SmtpSink sink(SinkOptions{certificates, "torii:" + sink_password()});
  ASSERT_NE(sink.port(), 0);
  testing::TempDir other_dir;
  const auto other = testing::make_sink_certificates(other_dir.path());
  auto settings = settings_for(sink);
  settings.ca_pem = read_text(other.ca);
  auto sent = send_mail(settings, message);
  ASSERT_FALSE(sent.has_value());
  EXPECT_NE(sent.error().message.find("not trusted"), std::string::npos) << sent.error().message;
  EXPECT_EQ(sink.commands(), "EHLO plain\nSTARTTLS plain\n");
}

TEST_F(SmtpClientTest, ACertificateForAnotherNameIsRefused) {
  testing::TempDir other_dir;
  const auto elsewhere = testing::make_sink_certificates(other_dir.path(), "DNS:mail.example.org");
  SmtpSink sink(SinkOptions{elsewhere, "torii:" + sink_password()});
  ASSERT_NE(sink.port(), 0);
  auto settings = settings_for(sink);
  settings.ca_pem = read_text(elsewhere.ca);
  auto sent = send_mail(settings, message);
  ASSERT_FALSE(sent.has_value());
  EXPECT_NE(sent.error().message.find("not trusted"), std::string::npos) << sent.error().message;
  EXPECT_EQ(sink.commands().find("AUTH"), std::string::npos);
}

TEST_F(SmtpClientTest, AServerWithoutStartTlsIsRefusedAndNeverSeesTheCredentials) {
  SinkOptions options;
  options.auth = "torii:" + sink_password();
  options.auth_in_clear = true;  // AUTH offered in the clear: the client must not take it
  SmtpSink sink(options);
  ASSERT_NE(sink.port(), 0);
  auto sent = send_mail(settings_for(sink), message);
  ASSERT_FALSE(sent.has_value());
  EXPECT_NE(sent.error().message.find("STARTTLS"), std::string::npos) << sent.error().message;
  EXPECT_EQ(sink.commands(), "EHLO plain\n");
}

TEST_F(SmtpClientTest, PlainSmtpOnlyToLoopbackAndWithoutCredentials) {
  SmtpSink sink(SinkOptions{});
  ASSERT_NE(sink.port(), 0);
  auto settings = settings_for(sink);
  settings.tls = TlsMode::none;
  EXPECT_FALSE(send_mail(settings, message).has_value()) << "credentials without TLS";
  settings.username.clear();
  settings.password.clear();
  auto sent = send_mail(settings, message);
  ASSERT_TRUE(sent.has_value()) << sent.error().message;
  EXPECT_TRUE(sink.message(1, std::chrono::seconds(10)).has_value());

  settings.host = "mail.example.org";
  auto refused = check_settings(settings);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("loopback"), std::string::npos);
  EXPECT_TRUE(is_loopback_host("127.0.0.1") && is_loopback_host("::1") && is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1") || is_loopback_host("localhost.example.org"));
}

TEST_F(SmtpClientTest, WithoutEightBitMimeTextTravelsQuotedPrintable) {
  SinkOptions options;
  options.eight_bit_mime = false;
  SmtpSink sink(options);
  ASSERT_NE(sink.port(), 0);
  auto settings = settings_for(sink);
  settings.tls = TlsMode::none;
  settings.username.clear();
  settings.password.clear();
  ASSERT_TRUE(send_mail(settings, {"ann@example.org", "Grüße", "Grüße\n"}).has_value());
  auto text = sink.message(1, std::chrono::seconds(10));
  ASSERT_TRUE(text.has_value());
  const auto got = nlohmann::json::parse(*text);
  EXPECT_EQ(got["mail_options"], nlohmann::json::array());
  const std::string data = got["data"];
  EXPECT_NE(data.find("Content-Transfer-Encoding: quoted-printable\r\n"), std::string::npos) << data;
  EXPECT_NE(data.find("\r\n\r\nGr=C3=BC=C3=9Fe\r\n"), std::string::npos) << data;
}

TEST_F(SmtpClientTest, AServerThatNeverAnswersMeetsTheDeadline) {
  // A listening socket nobody accepts on: the kernel completes the connection, then silence.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  SmtpSettings settings;
  settings.host = "127.0.0.1";
  settings.port = ntohs(address.sin_port);
  settings.tls = TlsMode::none;
  settings.from = "torii@example.org";
  settings.timeout = std::chrono::seconds(1);
  auto sent = send_mail(settings, message);
  ::close(fd);
  ASSERT_FALSE(sent.has_value());
  EXPECT_NE(sent.error().message.find("no reply at greeting in time"), std::string::npos) << sent.error().message;
}

}  // namespace
}  // namespace torii::mail

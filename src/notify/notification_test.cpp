#include "notify/notification.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace torii::notify {
namespace {

using namespace std::chrono_literals;

AlertNotice sample() {
  AlertNotice a;
  a.event = AlertEvent::opened;
  a.id = "al-1";
  a.organisation_id = "org-1";
  a.severity = "critical";
  a.title = "Certificate revoked but used";
  a.summary = "sensor-7 connected with a revoked certificate";
  a.device_id = "dev-7";
  a.status = "open";
  a.opened_at = 1'790'000'000'123;
  return a;
}

TEST(NotificationTest, ThePayloadHoldsTheAlertAndTheDelivery) {
  const auto text = notification_json(sample(), "d-1", 1'790'000'001'000);
  const auto got = nlohmann::json::parse(text);
  EXPECT_EQ(got["event"], "alert.opened");
  EXPECT_EQ(got["delivery"], "d-1");
  EXPECT_EQ(got["sent_at"], "2026-09-21T14:13:21.000Z");
  EXPECT_EQ(got["alert"]["id"], "al-1");
  EXPECT_EQ(got["alert"]["organisation_id"], "org-1");
  EXPECT_EQ(got["alert"]["device_id"], "dev-7");
  EXPECT_TRUE(got["alert"]["rule_id"].is_null());
  EXPECT_EQ(got["alert"]["opened_at"], "2026-09-21T14:13:20.123Z");
  EXPECT_TRUE(got["alert"]["resolved_at"].is_null());
  EXPECT_TRUE(got["alert"]["source"].is_null());
  EXPECT_EQ(got["alert"]["occurrences"], 1);
  EXPECT_TRUE(text.starts_with(R"({"event":"alert.opened","alert":{"id":"al-1",)")) << text;

  const auto summary = nlohmann::json::parse(notification_json(SuppressedNotice{12}, "d-2", 0));
  EXPECT_EQ(summary["event"], "notifications.suppressed");
  EXPECT_EQ(summary["suppressed"], 12);
}

// Known answers computed with: printf '%s' '1790000000.{"event":"alert.opened"}' |
//   openssl dgst -sha256 -hmac 'whsec-0123456789abcdef0123456789abcdef'
TEST(NotificationTest, TheSignatureMatchesOpenSsl) {
  EXPECT_EQ(sign_webhook("whsec-0123456789abcdef0123456789abcdef", 1'790'000'000, R"({"event":"alert.opened"})"),
            "v1=b3c0ecc6a666fe06ea8aac2306197c836183bf91e39a189c3404bdbf67118ed3");
  // printf '%s' '0.hello' | openssl dgst -sha256 -hmac 'key'
  EXPECT_EQ(sign_webhook("key", 0, "hello"),
            "v1=" + std::string("552b25b10c33de2db9fe7fa273d44ab105d596c023fa954d01444d4642487149"));
}

TEST(NotificationTest, VerificationChecksTheMacAndTheTimestamp) {
  const std::string secret = "whsec-0123456789abcdef0123456789abcdef";
  const std::string body = R"({"event":"alert.opened"})";
  const auto at = std::chrono::system_clock::time_point(1'790'000'000s);
  const auto signature = sign_webhook(secret, 1'790'000'000, body);
  EXPECT_TRUE(verify_signature(secret, "1790000000", body, signature, at));
  EXPECT_TRUE(verify_signature(secret, "1790000000", body, signature, at + 5min));
  EXPECT_FALSE(verify_signature(secret, "1790000000", body, signature, at + 5min + 1s)) << "replayed";
  EXPECT_FALSE(verify_signature(secret, "1790000000", body, signature, at - 6min)) << "from the future";
  EXPECT_FALSE(verify_signature(secret, "1790000001", body, signature, at)) << "another timestamp";
  EXPECT_FALSE(verify_signature(secret, "1790000000", body + " ", signature, at)) << "another body";
  EXPECT_FALSE(verify_signature(secret + "x", "1790000000", body, signature, at)) << "another secret";
  EXPECT_FALSE(verify_signature(secret, "1790000000", body, signature.substr(3), at)) << "no version";
  EXPECT_FALSE(verify_signature(secret, "1790000000", body, signature.substr(0, 20), at)) << "truncated";
  EXPECT_FALSE(verify_signature(secret, "", body, signature, at));
  EXPECT_FALSE(verify_signature(secret, "17900000x0", body, signature, at));
}

TEST(NotificationTest, SyslogMessageFollowsRfc5424) {
  SyslogOrigin origin{"gw-1.example", "torii", 10};
  const auto at = std::chrono::system_clock::time_point(1'790'000'000'123ms);
  EXPECT_EQ(syslog_message(sample(), origin, at),
            "<82>1 2026-09-21T14:13:20.123Z gw-1.example torii - alert [torii@32473 event=\"alert.opened\" "
            "id=\"al-1\" organisation=\"org-1\" severity=\"critical\" device=\"dev-7\" status=\"open\"] "
            "Certificate revoked but used: sensor-7 connected with a revoked certificate");
  // PRI = facility * 8 + severity: warning 4, info 6 on local0 (16).
  auto warning = sample();
  warning.severity = "warning";
  EXPECT_TRUE(syslog_message(warning, {"h", "torii", 16}, at).starts_with("<132>1 "));
  warning.severity = "info";
  EXPECT_TRUE(syslog_message(warning, {"h", "torii", 16}, at).starts_with("<134>1 "));
}

TEST(NotificationTest, SyslogEscapesParamValuesAndUsesNilValues) {
  EXPECT_EQ(escape_param_value(R"(a"b\c]d)"), R"(a\"b\\c\]d)");
  auto alert = sample();
  alert.id = R"(x"]\)";
  alert.device_id.clear();
  const auto message = syslog_message(alert, {"", "", 10}, std::chrono::system_clock::time_point{});
  EXPECT_NE(message.find(R"( - - - alert [)"), std::string::npos) << message;  // HOSTNAME, APP-NAME, PROCID
  EXPECT_NE(message.find(R"(id="x\"\]\\")"), std::string::npos) << message;
  EXPECT_EQ(message.find("device="), std::string::npos);
  EXPECT_EQ(syslog_message(alert, {"has space", "torii", 10}, {}).find("has space"), std::string::npos);
}

TEST(NotificationTest, SyslogMsgHasABomOnlyForNonAsciiUtf8) {
  auto alert = sample();
  const auto ascii = syslog_message(alert, {"h", "torii", 10}, {});
  EXPECT_EQ(ascii.find("\xEF\xBB\xBF"), std::string::npos);
  alert.title = "Grüße\r\nInjected: line";
  const auto utf8 = syslog_message(alert, {"h", "torii", 10}, {});
  EXPECT_NE(utf8.find("] \xEF\xBB\xBFGrüße  Injected: line"), std::string::npos) << utf8;
  EXPECT_EQ(utf8.find('\n'), std::string::npos);
  alert.title = "bad \xC3\x28 utf8";
  EXPECT_EQ(syslog_message(alert, {"h", "torii", 10}, {}).find("\xEF\xBB\xBF"), std::string::npos);
}

TEST(NotificationTest, OctetCountingFramesByByteLength) {
  EXPECT_EQ(octet_counted("<14>1 - - - - - -"), "17 <14>1 - - - - - -");
  EXPECT_EQ(octet_counted("ü"), "2 ü");
}

TEST(NotificationTest, ASummaryIsSentForSuppressedNotices) {
  const auto message = syslog_message(SuppressedNotice{7}, {"h", "torii", 10}, {});
  EXPECT_TRUE(message.starts_with("<84>1 ")) << message;
  EXPECT_NE(message.find(" suppressed [torii@32473 event=\"notifications.suppressed\" count=\"7\"] 7 notifications "
                         "suppressed"),
            std::string::npos)
      << message;
  EXPECT_EQ(email_text(SuppressedNotice{7}).subject, "[torii] 7 notifications suppressed");
  const auto mail = email_text(sample());
  EXPECT_EQ(mail.subject, "[torii] critical: Certificate revoked but used (opened)");
  EXPECT_NE(mail.body.find("Device:       dev-7\n"), std::string::npos);
}

}  // namespace
}  // namespace torii::notify

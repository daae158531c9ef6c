#include "alerts/certificate_expiry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "store/sqlite/sqlite_store.h"
#include "testing/fakes.h"

namespace torii::alerts {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr auto kDay = std::chrono::hours(24);

class CertificateExpiryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::sqlite::open_sqlite_memory_store();
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->organisations().insert({"org-1", "One", false, 1}));
    for (const char* id : {"pump-1", "pump-2", "off-1", "new-1"}) {
      store::DeviceRecord d;
      d.id = id;
      d.organisation_id = "org-1";
      d.name = id;
      d.created_at = 1;
      ASSERT_TRUE(store_->devices().insert(d));
    }
    ASSERT_TRUE(store_->devices().set_status("off-1", store::kDeviceStatusDisabled, 2, "maintenance"));
    book_ = std::make_unique<AlertBook>(*store_, nullptr, clock_, random_);
  }

  // A certificate valid from now for `life`.
  void issue(std::string_view kind, const std::string& serial, std::chrono::hours life,
             std::optional<std::string> device = std::nullopt) {
    store::CertificateRecord c;
    c.serial_hex = serial;
    c.kind = std::string(kind);
    c.subject = device.value_or(std::string(kind));
    c.device_id = std::move(device);
    c.issuer_serial_hex = "ca";
    c.pem = "-";
    c.fingerprint_sha256 = "fp-" + serial;
    c.not_before = to_unix_millis(clock_.now());
    c.not_after = to_unix_millis(clock_.now() + life);
    ASSERT_TRUE(store_->certificates().insert(c));
  }

  ExpiryReport check() {
    auto r = check_certificate_expiry(*store_, *book_, clock_, 14 * kDay);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : ExpiryReport{};
  }

  // Alerts not resolved, by key.
  std::map<std::string, store::AlertRecord> active() {
    store::AlertRepository::Query q;
    q.statuses = {"open", "acknowledged"};
    auto r = book_->list(q, Scope::everything());
    EXPECT_TRUE(r) << r.error().message;
    std::map<std::string, store::AlertRecord> out;
    if (r) {
      for (auto& a : *r) out[a.key] = a;
    }
    return out;
  }

  testing::FakeClock clock_;
  testing::SeededRandom random_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AlertBook> book_;
};

TEST_F(CertificateExpiryTest, ACertificateInUseNearItsEndIsAWarningThenCriticalUntilRenewed) {
  issue(store::kCertKindDevice, "d1", 10 * kDay, "pump-1");
  issue(store::kCertKindDevice, "d2", 60 * kDay, "pump-2");
  issue(store::kCertKindDevice, "d3", 5 * kDay, "off-1");  // a disabled device's: not in use
  issue(store::kCertKindServer, "s1", 80 * kDay);
  issue(store::kCertKindIssuingCa, "i1", 5 * kDay);
  issue(store::kCertKindRootCa, "r1", 3650 * kDay);

  auto report = check();
  EXPECT_EQ(report.expiring, 2U);
  EXPECT_EQ(report.expired, 0U);
  auto open = active();
  ASSERT_EQ(open.size(), 2U);
  const auto& device = open.at("certificate.expiring:device:pump-1");
  EXPECT_EQ(device.organisation_id, "org-1");
  EXPECT_EQ(device.device_id, "pump-1");
  EXPECT_EQ(device.source, "security");
  EXPECT_EQ(device.severity, "warning");
  EXPECT_EQ(device.title, "Certificate expires soon");
  EXPECT_THAT(device.summary, HasSubstr("the certificate of device pump-1 (serial d1) expires"));
  const auto& ca = open.at("certificate.expiring:issuing-ca");
  EXPECT_EQ(ca.organisation_id, "") << "installation-wide";
  EXPECT_THAT(ca.summary, HasSubstr("the issuing CA certificate"));

  // The next day's check raises them again: the same alerts, one more occurrence each.
  clock_.advance(kDay);
  check();
  EXPECT_EQ(active().at("certificate.expiring:device:pump-1").occurrences, 2U);
  EXPECT_EQ(active().size(), 2U);

  // Past its end: critical, and the warning gives way.
  clock_.advance(10 * kDay);
  report = check();
  EXPECT_EQ(report.expired, 2U);
  open = active();
  ASSERT_EQ(open.size(), 2U);
  EXPECT_EQ(open.at("certificate.expired:device:pump-1").severity, "critical");
  EXPECT_EQ(open.at("certificate.expired:device:pump-1").title, "Certificate expired");
  EXPECT_TRUE(open.contains("certificate.expired:issuing-ca"));

  // Renewed (a device enrolled again, a new issuing CA): resolved by the system.
  issue(store::kCertKindDevice, "d1b", 90 * kDay, "pump-1");
  issue(store::kCertKindIssuingCa, "i2", 1000 * kDay);
  report = check();
  EXPECT_EQ(report.resolved, 2U);
  EXPECT_TRUE(active().empty());
  store::AlertRepository::Query q;
  q.statuses = {"resolved"};
  auto resolved = book_->list(q, Scope::everything());
  ASSERT_TRUE(resolved);
  ASSERT_EQ(resolved->size(), 4U);
  for (const auto& a : *resolved) EXPECT_EQ(a.resolved_by, "system");
}

TEST_F(CertificateExpiryTest, AnAlertEndsWhenItsCertificateIsRevokedOrItsDeviceDisabledOrDeleted) {
  issue(store::kCertKindDevice, "d1", 3 * kDay, "pump-1");
  issue(store::kCertKindDevice, "d2", 3 * kDay, "pump-2");
  issue(store::kCertKindDevice, "d4", 3 * kDay, "new-1");
  EXPECT_EQ(check().expiring, 3U);
  ASSERT_TRUE(store_->certificates().revoke("d1", to_unix_millis(clock_.now()), "key compromise"));
  ASSERT_TRUE(store_->devices().set_status("pump-2", store::kDeviceStatusDisabled, 3, "retired"));
  auto removed = store_->devices().remove("new-1");
  ASSERT_TRUE(removed && *removed);
  EXPECT_EQ(check().resolved, 2U) << "the deleted device's alert went with it";
  EXPECT_TRUE(active().empty());
  EXPECT_EQ(check().resolved, 0U) << "nothing left to resolve";
}

}  // namespace
}  // namespace torii::alerts

// The backend-agnostic store contract. Nothing here may know which backend it runs on.
#include "store/contract_test.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>

namespace torii::store::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

Bytes to_bytes(std::string_view s) {
  const ByteView v = as_bytes(s);
  return Bytes(v.begin(), v.end());
}

Bytes all_byte_values() {
  Bytes b;
  for (int i = 0; i < 256; ++i) b.push_back(static_cast<std::uint8_t>(i));
  return b;
}

CertificateRecord make_cert(std::string serial, std::string_view kind, UnixMillis not_before, UnixMillis not_after,
                            std::optional<std::string> device_id = std::nullopt, std::string issuer = "0a") {
  CertificateRecord c;
  c.kind = std::string(kind);
  c.subject = "CN=" + serial;
  c.device_id = std::move(device_id);
  c.issuer_serial_hex = std::move(issuer);
  c.pem = "-----BEGIN CERTIFICATE-----\n" + serial + "\n-----END CERTIFICATE-----\n";
  c.fingerprint_sha256 = "fp-" + serial;
  c.not_before = not_before;
  c.not_after = not_after;
  c.serial_hex = std::move(serial);
  return c;
}

std::vector<std::string> serials(const std::vector<CertificateRecord>& certs) {
  std::vector<std::string> out;
  for (const auto& c : certs) out.push_back(c.serial_hex);
  return out;
}

// ----------------------------------------------------------------------------- meta

TEST_P(StoreContractTest, MetaGetMissingReturnsNothing) {
  auto got = store().meta().get("installation-id");
  ASSERT_TRUE(is_ok(got));
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreContractTest, MetaPutThenGet) {
  ASSERT_TRUE(is_ok(store().meta().put("installation-id", to_bytes("abc"))));
  auto got = store().meta().get("installation-id");
  ASSERT_TRUE(is_ok(got));
  EXPECT_EQ(got->value_or(Bytes{}), to_bytes("abc"));
}

TEST_P(StoreContractTest, MetaPutReplaces) {
  ASSERT_TRUE(is_ok(store().meta().put("kek-salt", to_bytes("first"))));
  ASSERT_TRUE(is_ok(store().meta().put("kek-salt", to_bytes("second"))));
  auto got = store().meta().get("kek-salt");
  ASSERT_TRUE(is_ok(got));
  EXPECT_EQ(got->value_or(Bytes{}), to_bytes("second"));
}

TEST_P(StoreContractTest, MetaRemoveReportsWhetherARowWasDeleted) {
  ASSERT_TRUE(is_ok(store().meta().put("k", to_bytes("v"))));
  auto removed = store().meta().remove("k");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto again = store().meta().remove("k");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto got = store().meta().get("k");
  ASSERT_TRUE(is_ok(got));
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreContractTest, MetaEmptyValueIsStoredNotMissing) {
  ASSERT_TRUE(is_ok(store().meta().put("empty", Bytes{})));
  auto got = store().meta().get("empty");
  ASSERT_TRUE(is_ok(got));
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE((*got)->empty());
}

TEST_P(StoreContractTest, MetaRejectsEmptyKey) {
  EXPECT_TRUE(fails_with(store().meta().put("", to_bytes("v")), Errc::invalid_argument));
}

TEST_P(StoreContractTest, MetaKeysAndValuesWithNulAndQuotesRoundTrip) {
  // "O'Brien" and "O'Brien\0x..." are different keys: a truncation at the NUL would merge them.
  ASSERT_TRUE(is_ok(store().meta().put("O'Brien", to_bytes("short"))));
  ASSERT_TRUE(is_ok(store().meta().put(kTricky, to_bytes(kTricky))));
  ASSERT_TRUE(is_ok(store().meta().put("all-bytes", all_byte_values())));

  auto tricky = store().meta().get(kTricky);
  ASSERT_TRUE(is_ok(tricky));
  EXPECT_EQ(tricky->value_or(Bytes{}), to_bytes(kTricky));
  auto plain = store().meta().get("O'Brien");
  ASSERT_TRUE(is_ok(plain));
  EXPECT_EQ(plain->value_or(Bytes{}), to_bytes("short"));
  auto all = store().meta().get("all-bytes");
  ASSERT_TRUE(is_ok(all));
  EXPECT_EQ(all->value_or(Bytes{}), all_byte_values());
}

// ----------------------------------------------------------------------------- data keys

TEST_P(StoreContractTest, DataKeyInsertAndFind) {
  const WrappedKey key{"dk-1", "secrets", all_byte_values(), kNow};
  ASSERT_TRUE(is_ok(store().data_keys().insert(key)));
  auto found = store().data_keys().find("dk-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, key);
}

TEST_P(StoreContractTest, DataKeyFindUnknownReturnsNothing) {
  auto found = store().data_keys().find("nope");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
}

TEST_P(StoreContractTest, DataKeyDuplicateIdIsAlreadyExistsAndKeepsTheOriginal) {
  const WrappedKey key{"dk-1", "secrets", to_bytes("original"), kNow};
  ASSERT_TRUE(is_ok(store().data_keys().insert(key)));
  EXPECT_TRUE(
      fails_with(store().data_keys().insert({"dk-1", "other", to_bytes("imposter"), kNow + 1}), Errc::already_exists));
  auto found = store().data_keys().find("dk-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, key);
}

TEST_P(StoreContractTest, DataKeyRejectsEmptyId) {
  EXPECT_TRUE(fails_with(store().data_keys().insert({"", "secrets", to_bytes("w"), kNow}), Errc::invalid_argument));
}

TEST_P(StoreContractTest, DataKeyRemoveReportsWhetherARowWasDeleted) {
  ASSERT_TRUE(is_ok(store().data_keys().insert({"dk-1", "secrets", to_bytes("w"), kNow})));
  auto removed = store().data_keys().remove("dk-1");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto found = store().data_keys().find("dk-1");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
  auto again = store().data_keys().remove("dk-1");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto unknown = store().data_keys().remove("never-existed");
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(*unknown);
}

TEST_P(StoreContractTest, DataKeyListIdsFiltersByPurposeOldestFirst) {
  ASSERT_TRUE(is_ok(store().data_keys().insert({"c", "secrets", to_bytes("w"), kNow + 2})));
  ASSERT_TRUE(is_ok(store().data_keys().insert({"b", "secrets", to_bytes("w"), kNow})));
  ASSERT_TRUE(is_ok(store().data_keys().insert({"a", "secrets", to_bytes("w"), kNow})));  // tie: by id
  ASSERT_TRUE(is_ok(store().data_keys().insert({"x", "logs", to_bytes("w"), kNow})));

  auto ids = store().data_keys().list_ids("secrets");
  ASSERT_TRUE(is_ok(ids));
  EXPECT_THAT(*ids, ElementsAre("a", "b", "c"));
  auto logs = store().data_keys().list_ids("logs");
  ASSERT_TRUE(is_ok(logs));
  EXPECT_THAT(*logs, ElementsAre("x"));
  auto none = store().data_keys().list_ids("unknown");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, DataKeyTrickyValuesRoundTrip) {
  const WrappedKey key{kTricky, kTricky, to_bytes(kTricky), -1};
  ASSERT_TRUE(is_ok(store().data_keys().insert(key)));
  ASSERT_TRUE(is_ok(store().data_keys().insert({"O'Brien", kTricky, to_bytes("w"), kNow})));
  auto found = store().data_keys().find(kTricky);
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, key);
  auto ids = store().data_keys().list_ids(kTricky);
  ASSERT_TRUE(is_ok(ids));
  EXPECT_THAT(*ids, ElementsAre(kTricky, "O'Brien"));
}

// ----------------------------------------------------------------------------- secrets

TEST_P(StoreContractTest, SecretPutAndFind) {
  const SealedSecret secret{"ca/root", "dk-1", all_byte_values(), kNow};
  ASSERT_TRUE(is_ok(store().secrets().put(secret)));
  auto found = store().secrets().find("ca/root");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, secret);
}

TEST_P(StoreContractTest, SecretPutReplacesEveryField) {
  ASSERT_TRUE(is_ok(store().secrets().put({"tls/server", "dk-1", to_bytes("old"), kNow})));
  const SealedSecret replacement{"tls/server", "dk-2", to_bytes("new"), kNow + 5};
  ASSERT_TRUE(is_ok(store().secrets().put(replacement)));
  auto found = store().secrets().find("tls/server");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, replacement);
}

TEST_P(StoreContractTest, SecretFindUnknownReturnsNothing) {
  auto found = store().secrets().find("nope");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
}

TEST_P(StoreContractTest, SecretRemoveReportsWhetherARowWasDeleted) {
  ASSERT_TRUE(is_ok(store().secrets().put({"log/signing", "dk-1", to_bytes("s"), kNow})));
  auto removed = store().secrets().remove("log/signing");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto found = store().secrets().find("log/signing");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
  auto again = store().secrets().remove("log/signing");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
}

TEST_P(StoreContractTest, SecretRejectsEmptyName) {
  EXPECT_TRUE(fails_with(store().secrets().put({"", "dk-1", to_bytes("s"), kNow}), Errc::invalid_argument));
}

TEST_P(StoreContractTest, SecretTrickyValuesRoundTrip) {
  const SealedSecret secret{kTricky, kTricky, to_bytes(kTricky), kNow};
  ASSERT_TRUE(is_ok(store().secrets().put(secret)));
  auto found = store().secrets().find(kTricky);
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, secret);
  auto truncated = store().secrets().find("O'Brien");
  ASSERT_TRUE(is_ok(truncated));
  EXPECT_FALSE(truncated->has_value());
}

// ----------------------------------------------------------------------------- certificates

TEST_P(StoreContractTest, CertificateInsertAndFindBySerial) {
  CertificateRecord c = make_cert("01ab", kCertKindDevice, kNow, kNow + 1000, "device-7");
  c.revoked_at = kNow + 10;
  c.revocation_reason = "keyCompromise";
  ASSERT_TRUE(is_ok(store().certificates().insert(c)));
  auto found = store().certificates().find_by_serial("01ab");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, c);
}

TEST_P(StoreContractTest, CertificateOptionalFieldsRoundTrip) {
  const CertificateRecord no_device = make_cert("01", kCertKindServer, kNow, kNow + 1);
  CertificateRecord empty_device = make_cert("02", kCertKindDevice, kNow, kNow + 1, "");
  ASSERT_TRUE(is_ok(store().certificates().insert(no_device)));
  ASSERT_TRUE(is_ok(store().certificates().insert(empty_device)));
  auto a = store().certificates().find_by_serial("01");
  ASSERT_TRUE(is_ok(a));
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ(**a, no_device);
  EXPECT_FALSE((*a)->device_id.has_value());
  EXPECT_FALSE((*a)->revoked_at.has_value());
  auto b = store().certificates().find_by_serial("02");
  ASSERT_TRUE(is_ok(b));
  ASSERT_TRUE(b->has_value());
  EXPECT_EQ((*b)->device_id, std::optional<std::string>(""));
}

TEST_P(StoreContractTest, CertificateFindByFingerprint) {
  const CertificateRecord c = make_cert("01", kCertKindServer, kNow, kNow + 1);
  ASSERT_TRUE(is_ok(store().certificates().insert(c)));
  auto found = store().certificates().find_by_fingerprint("fp-01");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, c);
}

TEST_P(StoreContractTest, CertificateFindUnknownReturnsNothing) {
  auto by_serial = store().certificates().find_by_serial("ff");
  ASSERT_TRUE(is_ok(by_serial));
  EXPECT_FALSE(by_serial->has_value());
  auto by_fingerprint = store().certificates().find_by_fingerprint("fp-ff");
  ASSERT_TRUE(is_ok(by_fingerprint));
  EXPECT_FALSE(by_fingerprint->has_value());
}

TEST_P(StoreContractTest, CertificateDuplicateSerialIsAlreadyExists) {
  const CertificateRecord c = make_cert("01", kCertKindServer, kNow, kNow + 1);
  ASSERT_TRUE(is_ok(store().certificates().insert(c)));
  CertificateRecord dup = make_cert("01", kCertKindDevice, kNow, kNow + 2);
  dup.fingerprint_sha256 = "fp-other";
  EXPECT_TRUE(fails_with(store().certificates().insert(dup), Errc::already_exists));
  auto found = store().certificates().find_by_serial("01");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, c);
}

TEST_P(StoreContractTest, CertificateDuplicateFingerprintIsAlreadyExists) {
  ASSERT_TRUE(is_ok(store().certificates().insert(make_cert("01", kCertKindServer, kNow, kNow + 1))));
  CertificateRecord dup = make_cert("02", kCertKindServer, kNow, kNow + 1);
  dup.fingerprint_sha256 = "fp-01";
  EXPECT_TRUE(fails_with(store().certificates().insert(dup), Errc::already_exists));
}

TEST_P(StoreContractTest, CertificateInvalidRecordsAreInvalidArgument) {
  EXPECT_TRUE(
      fails_with(store().certificates().insert(make_cert("01", "client", kNow, kNow + 1)), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(store().certificates().insert(make_cert("", kCertKindServer, kNow, kNow + 1)),
                         Errc::invalid_argument));
  EXPECT_TRUE(fails_with(store().certificates().insert(make_cert("02", kCertKindServer, kNow, kNow - 1)),
                         Errc::invalid_argument));
  auto found = store().certificates().find_by_serial("01");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
}

TEST_P(StoreContractTest, CertificateRevokeUnknownIsNotFound) {
  EXPECT_TRUE(fails_with(store().certificates().revoke("ff", kNow, "superseded"), Errc::not_found));
}

TEST_P(StoreContractTest, CertificateRevokeTwiceKeepsTheFirstRevocation) {
  ASSERT_TRUE(is_ok(store().certificates().insert(make_cert("01", kCertKindDevice, kNow, kNow + 1000, "d1"))));
  ASSERT_TRUE(is_ok(store().certificates().revoke("01", kNow + 5, "keyCompromise")));
  EXPECT_TRUE(is_ok(store().certificates().revoke("01", kNow + 9, "superseded")));
  auto found = store().certificates().find_by_serial("01");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->revoked_at, std::optional<UnixMillis>(kNow + 5));
  EXPECT_EQ((*found)->revocation_reason, "keyCompromise");
}

TEST_P(StoreContractTest, CertificateListRevokedByIssuerInRevocationOrder) {
  auto& certs = store().certificates();
  ASSERT_TRUE(is_ok(certs.insert(make_cert("01", kCertKindDevice, kNow, kNow + 1000, "d1", "ca1"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("02", kCertKindDevice, kNow, kNow + 1000, "d2", "ca1"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("03", kCertKindDevice, kNow, kNow + 1000, "d3", "ca1"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("04", kCertKindDevice, kNow, kNow + 1000, "d4", "ca2"))));
  ASSERT_TRUE(is_ok(certs.revoke("03", kNow + 1, "keyCompromise")));
  ASSERT_TRUE(is_ok(certs.revoke("01", kNow + 2, "superseded")));
  ASSERT_TRUE(is_ok(certs.revoke("04", kNow + 1, "superseded")));

  auto ca1 = certs.list_revoked("ca1");
  ASSERT_TRUE(is_ok(ca1));
  EXPECT_THAT(serials(*ca1), ElementsAre("03", "01"));
  ASSERT_EQ(ca1->size(), 2u);
  EXPECT_EQ((*ca1)[0].revocation_reason, "keyCompromise");
  auto ca2 = certs.list_revoked("ca2");
  ASSERT_TRUE(is_ok(ca2));
  EXPECT_THAT(serials(*ca2), ElementsAre("04"));
  auto none = certs.list_revoked("ca3");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, CertificateListExpiringOrderedByNotAfter) {
  auto& certs = store().certificates();
  ASSERT_TRUE(is_ok(certs.insert(make_cert("01", kCertKindDevice, kNow, kNow + 300))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("02", kCertKindDevice, kNow, kNow + 100))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("03", kCertKindServer, kNow, kNow + 200))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("04", kCertKindDevice, kNow, kNow + 500))));  // == before: excluded
  ASSERT_TRUE(is_ok(certs.insert(make_cert("05", kCertKindDevice, kNow, kNow + 150))));
  ASSERT_TRUE(is_ok(certs.revoke("05", kNow + 1, "superseded")));

  auto live = certs.list_expiring(kNow + 500);
  ASSERT_TRUE(is_ok(live));
  EXPECT_THAT(serials(*live), ElementsAre("02", "03", "01"));
  auto all = certs.list_expiring(kNow + 500, /*include_revoked=*/true);
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(serials(*all), ElementsAre("02", "05", "03", "01"));
  auto none = certs.list_expiring(kNow + 100);
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, CertificateLatestIsNewestUnrevokedOfItsKind) {
  auto& certs = store().certificates();
  auto empty = certs.latest(kCertKindIssuingCa);
  ASSERT_TRUE(is_ok(empty));
  EXPECT_FALSE(empty->has_value());

  ASSERT_TRUE(is_ok(certs.insert(make_cert("01", kCertKindIssuingCa, kNow, kNow + 1000))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("02", kCertKindIssuingCa, kNow + 20, kNow + 1000))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("03", kCertKindIssuingCa, kNow + 10, kNow + 1000))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("04", kCertKindServer, kNow + 99, kNow + 1000))));

  auto latest = certs.latest(kCertKindIssuingCa);
  ASSERT_TRUE(is_ok(latest));
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->serial_hex, "02");

  ASSERT_TRUE(is_ok(certs.revoke("02", kNow + 30, "superseded")));
  latest = certs.latest(kCertKindIssuingCa);
  ASSERT_TRUE(is_ok(latest));
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->serial_hex, "03");

  // Same not_before: the one inserted last wins.
  ASSERT_TRUE(is_ok(certs.insert(make_cert("00", kCertKindIssuingCa, kNow + 10, kNow + 1000))));
  latest = certs.latest(kCertKindIssuingCa);
  ASSERT_TRUE(is_ok(latest));
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->serial_hex, "00");

  auto roots = certs.latest(kCertKindRootCa);
  ASSERT_TRUE(is_ok(roots));
  EXPECT_FALSE(roots->has_value());
}

TEST_P(StoreContractTest, CertificateListForDeviceIncludesRevoked) {
  auto& certs = store().certificates();
  ASSERT_TRUE(is_ok(certs.insert(make_cert("03", kCertKindDevice, kNow + 20, kNow + 1000, "dev-a"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("01", kCertKindDevice, kNow, kNow + 1000, "dev-a"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("02", kCertKindDevice, kNow + 10, kNow + 1000, "dev-b"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("04", kCertKindServer, kNow, kNow + 1000))));
  ASSERT_TRUE(is_ok(certs.revoke("01", kNow + 15, "superseded")));

  auto a = certs.list_for_device("dev-a");
  ASSERT_TRUE(is_ok(a));
  EXPECT_THAT(serials(*a), ElementsAre("01", "03"));
  auto none = certs.list_for_device("dev-z");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, CertificateLastOfDevicesEndingByLeavesOutRenewedAndRevoked) {
  auto& certs = store().certificates();
  // dev-a: renewed (02 ends after `by`), so its old 01 is not its last.
  ASSERT_TRUE(is_ok(certs.insert(make_cert("01", kCertKindDevice, kNow, kNow + 100, "dev-a"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("02", kCertKindDevice, kNow + 50, kNow + 900, "dev-a"))));
  // dev-b: its last (04) ends by then; 03 ended earlier.
  ASSERT_TRUE(is_ok(certs.insert(make_cert("03", kCertKindDevice, kNow, kNow + 100, "dev-b"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("04", kCertKindDevice, kNow + 50, kNow + 400, "dev-b"))));
  // dev-c: its later certificate is revoked, so the earlier one is its last.
  ASSERT_TRUE(is_ok(certs.insert(make_cert("05", kCertKindDevice, kNow, kNow + 200, "dev-c"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("06", kCertKindDevice, kNow + 50, kNow + 900, "dev-c"))));
  ASSERT_TRUE(is_ok(certs.revoke("06", kNow + 60, "keyCompromise")));
  // dev-d: two ending at the same time: the greater serial. dev-e: exactly at `by`.
  ASSERT_TRUE(is_ok(certs.insert(make_cert("07", kCertKindDevice, kNow, kNow + 300, "dev-d"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("08", kCertKindDevice, kNow + 1, kNow + 300, "dev-d"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("09", kCertKindDevice, kNow, kNow + 500, "dev-e"))));
  // dev-f: only a revoked one. Not a device's: a server certificate.
  ASSERT_TRUE(is_ok(certs.insert(make_cert("0a", kCertKindDevice, kNow, kNow + 100, "dev-f"))));
  ASSERT_TRUE(is_ok(certs.revoke("0a", kNow + 1, "superseded")));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("0b", kCertKindServer, kNow, kNow + 100))));

  auto ending = certs.list_last_of_devices_ending_by(kNow + 500);
  ASSERT_TRUE(is_ok(ending));
  EXPECT_THAT(serials(*ending), ElementsAre("04", "05", "08", "09"));
  auto sooner = certs.list_last_of_devices_ending_by(kNow + 250);
  ASSERT_TRUE(is_ok(sooner));
  EXPECT_THAT(serials(*sooner), ElementsAre("05"));
}

TEST_P(StoreContractTest, CertificateRevokeSupersededRevokesOnlyTheDevicesOlderUnrevokedOnes) {
  auto& certs = store().certificates();
  ASSERT_TRUE(is_ok(certs.insert(make_cert("01", kCertKindDevice, kNow, kNow + 900, "dev-a"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("02", kCertKindDevice, kNow + 10, kNow + 900, "dev-a"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("03", kCertKindDevice, kNow + 20, kNow + 900, "dev-a"))));
  ASSERT_TRUE(is_ok(certs.revoke("02", kNow + 15, "keyCompromise")));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("04", kCertKindDevice, kNow + 30, kNow + 900, "dev-a"))));
  ASSERT_TRUE(is_ok(certs.insert(make_cert("05", kCertKindDevice, kNow, kNow + 900, "dev-b"))));

  // The newest in use: nothing of another device, nothing revoked before, nothing newer.
  auto none = certs.revoke_superseded("dev-a", kNow, kNow + 40);
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
  auto revoked = certs.revoke_superseded("dev-a", kNow + 20, kNow + 40);
  ASSERT_TRUE(is_ok(revoked));
  EXPECT_THAT(*revoked, ElementsAre("01"));
  auto one = certs.find_by_serial("01");
  ASSERT_TRUE(is_ok(one) && one->has_value());
  EXPECT_EQ((*one)->revoked_at, kNow + 40);
  EXPECT_EQ((*one)->revocation_reason, "superseded");
  auto two = certs.find_by_serial("02");
  ASSERT_TRUE(is_ok(two) && two->has_value());
  EXPECT_EQ((*two)->revoked_at, kNow + 15);  // the first revocation stands
  EXPECT_EQ((*two)->revocation_reason, "keyCompromise");
  for (const auto* serial : {"03", "04", "05"}) {
    auto kept = certs.find_by_serial(serial);
    ASSERT_TRUE(is_ok(kept) && kept->has_value());
    EXPECT_FALSE((*kept)->revoked_at.has_value()) << serial;
  }

  auto later = certs.revoke_superseded("dev-a", kNow + 30, kNow + 50);
  ASSERT_TRUE(is_ok(later));
  EXPECT_THAT(*later, ElementsAre("03"));
  auto again = certs.revoke_superseded("dev-a", kNow + 30, kNow + 60);
  ASSERT_TRUE(is_ok(again));
  EXPECT_THAT(*again, IsEmpty());
}

TEST_P(StoreContractTest, CertificateTrickyTextRoundTrips) {
  CertificateRecord c = make_cert(kTricky, kCertKindDevice, kNow, kNow + 1, kTricky, kTricky);
  c.subject = kTricky;
  c.pem = kTricky;
  c.fingerprint_sha256 = kTricky;
  ASSERT_TRUE(is_ok(store().certificates().insert(c)));
  ASSERT_TRUE(is_ok(store().certificates().revoke(kTricky, kNow, kTricky)));
  c.revoked_at = kNow;
  c.revocation_reason = kTricky;
  auto found = store().certificates().find_by_fingerprint(kTricky);
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, c);
  auto for_device = store().certificates().list_for_device(kTricky);
  ASSERT_TRUE(is_ok(for_device));
  EXPECT_THAT(*for_device, ElementsAre(c));
  auto truncated = store().certificates().find_by_serial("O'Brien");
  ASSERT_TRUE(is_ok(truncated));
  EXPECT_FALSE(truncated->has_value());
}

// ----------------------------------------------------------------------------- setup tokens

TEST_P(StoreContractTest, SetupTokenConsumeOutcomes) {
  auto& tokens = store().setup_tokens();
  ASSERT_TRUE(is_ok(tokens.insert({"good", kNow, kNow + 100, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"stale", kNow - 200, kNow - 100, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"edge", kNow, kNow, std::nullopt})));  // expires_at == now: expired

  auto first = tokens.consume("good", kNow);
  ASSERT_TRUE(is_ok(first));
  EXPECT_EQ(*first, ConsumeOutcome::consumed);
  auto second = tokens.consume("good", kNow + 1);
  ASSERT_TRUE(is_ok(second));
  EXPECT_EQ(*second, ConsumeOutcome::already_used);
  auto unknown = tokens.consume("bad", kNow);
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_EQ(*unknown, ConsumeOutcome::unknown);
  auto stale = tokens.consume("stale", kNow);
  ASSERT_TRUE(is_ok(stale));
  EXPECT_EQ(*stale, ConsumeOutcome::expired);
  auto edge = tokens.consume("edge", kNow);
  ASSERT_TRUE(is_ok(edge));
  EXPECT_EQ(*edge, ConsumeOutcome::expired);
  // Used and by now expired: the more telling answer is that it was used.
  auto late = tokens.consume("good", kNow + 1000);
  ASSERT_TRUE(is_ok(late));
  EXPECT_EQ(*late, ConsumeOutcome::already_used);
}

TEST_P(StoreContractTest, SetupTokenInsertedAlreadyUsedCannotBeConsumed) {
  ASSERT_TRUE(is_ok(store().setup_tokens().insert({"t", kNow, kNow + 100, kNow})));
  auto r = store().setup_tokens().consume("t", kNow);
  ASSERT_TRUE(is_ok(r));
  EXPECT_EQ(*r, ConsumeOutcome::already_used);
}

TEST_P(StoreContractTest, SetupTokenDuplicateHashIsAlreadyExists) {
  ASSERT_TRUE(is_ok(store().setup_tokens().insert({"t", kNow, kNow + 100, std::nullopt})));
  EXPECT_TRUE(fails_with(store().setup_tokens().insert({"t", kNow, kNow + 999, std::nullopt}), Errc::already_exists));
  EXPECT_TRUE(fails_with(store().setup_tokens().insert({"", kNow, kNow + 1, std::nullopt}), Errc::invalid_argument));
}

TEST_P(StoreContractTest, SetupTokenCountActiveExcludesUsedAndExpired) {
  auto& tokens = store().setup_tokens();
  auto zero = tokens.count_active(kNow);
  ASSERT_TRUE(is_ok(zero));
  EXPECT_EQ(*zero, 0u);
  ASSERT_TRUE(is_ok(tokens.insert({"a", kNow, kNow + 100, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"b", kNow, kNow + 200, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"c", kNow, kNow + 50, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"d", kNow, kNow + 300, kNow})));
  auto now = tokens.count_active(kNow);
  ASSERT_TRUE(is_ok(now));
  EXPECT_EQ(*now, 3u);
  auto later = tokens.count_active(kNow + 100);
  ASSERT_TRUE(is_ok(later));
  EXPECT_EQ(*later, 1u);
  ASSERT_TRUE(is_ok(tokens.consume("a", kNow)));
  auto after = tokens.count_active(kNow);
  ASSERT_TRUE(is_ok(after));
  EXPECT_EQ(*after, 2u);
}

TEST_P(StoreContractTest, SetupTokenRevokeAllMarksEveryUnusedTokenUsed) {
  auto& tokens = store().setup_tokens();
  ASSERT_TRUE(is_ok(tokens.insert({"a", kNow, kNow + 100, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"b", kNow, kNow + 100, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"old", kNow - 20, kNow - 10, std::nullopt})));
  ASSERT_TRUE(is_ok(tokens.insert({"used", kNow, kNow + 100, kNow})));

  auto revoked = tokens.revoke_all(kNow + 1);
  ASSERT_TRUE(is_ok(revoked));
  EXPECT_EQ(*revoked, 3u);
  auto active = tokens.count_active(kNow + 1);
  ASSERT_TRUE(is_ok(active));
  EXPECT_EQ(*active, 0u);
  for (const char* hash : {"a", "b", "old", "used"}) {
    auto r = tokens.consume(hash, kNow + 2);
    ASSERT_TRUE(is_ok(r));
    EXPECT_EQ(*r, ConsumeOutcome::already_used) << hash;
  }

  // A fresh token issued afterwards works.
  ASSERT_TRUE(is_ok(tokens.insert({"fresh", kNow + 2, kNow + 100, std::nullopt})));
  auto fresh = tokens.consume("fresh", kNow + 3);
  ASSERT_TRUE(is_ok(fresh));
  EXPECT_EQ(*fresh, ConsumeOutcome::consumed);
  auto nothing_left = tokens.revoke_all(kNow + 4);
  ASSERT_TRUE(is_ok(nothing_left));
  EXPECT_EQ(*nothing_left, 0u);
}

TEST_P(StoreContractTest, SetupTokenTrickyHashRoundTrips) {
  ASSERT_TRUE(is_ok(store().setup_tokens().insert({kTricky, kNow, kNow + 100, std::nullopt})));
  auto truncated = store().setup_tokens().consume("O'Brien", kNow);
  ASSERT_TRUE(is_ok(truncated));
  EXPECT_EQ(*truncated, ConsumeOutcome::unknown);
  auto r = store().setup_tokens().consume(kTricky, kNow);
  ASSERT_TRUE(is_ok(r));
  EXPECT_EQ(*r, ConsumeOutcome::consumed);
}

TEST_P(StoreContractTest, SetupTokenConcurrentConsumersExactlyOneWins) {
  ASSERT_TRUE(is_ok(store().setup_tokens().insert({"race", kNow, kNow + 100, std::nullopt})));
  constexpr int kThreads = 8;
  std::atomic<int> consumed{0};
  std::atomic<int> already_used{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto r = store().setup_tokens().consume("race", kNow);
      if (r && *r == ConsumeOutcome::consumed) {
        ++consumed;
      } else if (r && *r == ConsumeOutcome::already_used) {
        ++already_used;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(consumed.load(), 1);
  EXPECT_EQ(already_used.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
}

// ----------------------------------------------------------------------------- counters

TEST_P(StoreContractTest, CounterStartsAtOneAndIncrements) {
  for (std::uint64_t expected = 1; expected <= 3; ++expected) {
    auto v = store().counters().next("crl-number");
    ASSERT_TRUE(is_ok(v));
    EXPECT_EQ(*v, expected);
  }
}

TEST_P(StoreContractTest, CounterNamesAreIndependent) {
  ASSERT_TRUE(is_ok(store().counters().next("a")));
  ASSERT_TRUE(is_ok(store().counters().next("a")));
  auto b = store().counters().next("b");
  ASSERT_TRUE(is_ok(b));
  EXPECT_EQ(*b, 1u);
  auto tricky = store().counters().next(kTricky);
  ASSERT_TRUE(is_ok(tricky));
  EXPECT_EQ(*tricky, 1u);
  auto a = store().counters().next("a");
  ASSERT_TRUE(is_ok(a));
  EXPECT_EQ(*a, 3u);
}

TEST_P(StoreContractTest, CounterRejectsEmptyName) {
  EXPECT_TRUE(fails_with(store().counters().next(""), Errc::invalid_argument));
}

TEST_P(StoreContractTest, CounterConcurrentIncrementsAreUnique) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::vector<std::uint64_t>> seen(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto v = store().counters().next("serial");
        if (v) {
          seen[static_cast<std::size_t>(t)].push_back(*v);
        } else {
          ++errors;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<std::uint64_t> all;
  for (const auto& s : seen) all.insert(s.begin(), s.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), static_cast<std::uint64_t>(kThreads * kPerThread));
}

// ----------------------------------------------------------------------------- devices

DeviceRecord make_device(std::string id, std::string organisation = "org-1", UnixMillis created_at = kNow) {
  DeviceRecord d;
  d.organisation_id = std::move(organisation);
  d.name = "sensor " + id;
  d.profile_id = "";
  d.segment = "plant-floor";
  d.serial_number = "SN-" + id;
  d.firmware_version = "1.0.0";
  d.created_at = created_at;
  d.id = std::move(id);
  return d;
}

std::vector<std::string> device_ids(const std::vector<DeviceRecord>& devices) {
  std::vector<std::string> out;
  for (const auto& d : devices) out.push_back(d.id);
  return out;
}

TEST_P(StoreContractTest, DeviceInsertAndFind) {
  DeviceRecord d = make_device("dev-1");
  d.profile_id = "profile-a";
  d.last_seen_at = kNow + 5;
  d.status = std::string(kDeviceStatusDisabled);
  d.disabled_at = kNow + 6;
  d.disabled_reason = "stolen";
  ASSERT_TRUE(is_ok(store().devices().insert(d)));
  auto found = store().devices().find("dev-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, d);
}

TEST_P(StoreContractTest, DeviceOptionalFieldsRoundTripAsAbsent) {
  const DeviceRecord d = make_device("dev-1");
  ASSERT_TRUE(is_ok(store().devices().insert(d)));
  auto found = store().devices().find("dev-1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, d);
  EXPECT_EQ((*found)->status, kDeviceStatusActive);
  EXPECT_FALSE((*found)->last_seen_at.has_value());
  EXPECT_FALSE((*found)->disabled_at.has_value());
}

TEST_P(StoreContractTest, DeviceFindUnknownReturnsNothing) {
  auto found = store().devices().find("nope");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
}

TEST_P(StoreContractTest, DeviceDuplicateIdIsAlreadyExistsAndKeepsTheOriginal) {
  const DeviceRecord d = make_device(kTricky);
  ASSERT_TRUE(is_ok(store().devices().insert(d)));
  DeviceRecord other = make_device(kTricky, "org-2");
  other.name = "imposter";
  auto dup = store().devices().insert(other);
  ASSERT_TRUE(fails_with(dup, Errc::already_exists));
  EXPECT_TRUE(does_not_quote(dup.error(), "DROP TABLE"));
  auto found = store().devices().find(kTricky);
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, d);
}

TEST_P(StoreContractTest, DeviceInvalidRecordsAreInvalidArgument) {
  auto& devices = store().devices();
  EXPECT_TRUE(fails_with(devices.insert(make_device("")), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(devices.insert(make_device("d", "")), Errc::invalid_argument));
  DeviceRecord bad_status = make_device("d");
  bad_status.status = "retired";
  EXPECT_TRUE(fails_with(devices.insert(bad_status), Errc::invalid_argument));
  DeviceRecord disabled_without_time = make_device("d");
  disabled_without_time.status = std::string(kDeviceStatusDisabled);
  EXPECT_TRUE(fails_with(devices.insert(disabled_without_time), Errc::invalid_argument));
  DeviceRecord active_with_time = make_device("d");
  active_with_time.disabled_at = kNow;
  EXPECT_TRUE(fails_with(devices.insert(active_with_time), Errc::invalid_argument));
  auto all = devices.list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, IsEmpty());
}

TEST_P(StoreContractTest, DeviceListsAreOrderedById) {
  auto& devices = store().devices();
  ASSERT_TRUE(is_ok(devices.insert(make_device("c", "org-1"))));
  ASSERT_TRUE(is_ok(devices.insert(make_device("a", "org-1"))));
  ASSERT_TRUE(is_ok(devices.insert(make_device("b", "org-2"))));
  ASSERT_TRUE(is_ok(devices.insert(make_device("B", "org-1"))));

  auto org1 = devices.list("org-1");
  ASSERT_TRUE(is_ok(org1));
  EXPECT_THAT(device_ids(*org1), ElementsAre("B", "a", "c"));
  auto org2 = devices.list("org-2");
  ASSERT_TRUE(is_ok(org2));
  ASSERT_THAT(device_ids(*org2), ElementsAre("b"));
  EXPECT_EQ(org2->front(), make_device("b", "org-2"));
  auto none = devices.list("org-3");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
  auto all = devices.list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(device_ids(*all), ElementsAre("B", "a", "b", "c"));
}

TEST_P(StoreContractTest, DeviceListAllOnAnEmptyStoreIsEmpty) {
  auto all = store().devices().list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, IsEmpty());
}

TEST_P(StoreContractTest, DeviceDisableKeepsTheFirstTimeAndReasonAndActivateClearsThem) {
  auto& devices = store().devices();
  ASSERT_TRUE(is_ok(devices.insert(make_device("d"))));
  ASSERT_TRUE(is_ok(devices.set_status("d", kDeviceStatusDisabled, kNow + 10, "compromised")));
  auto disabled = devices.find("d");
  ASSERT_TRUE(is_ok(disabled));
  ASSERT_TRUE(disabled->has_value());
  EXPECT_EQ((*disabled)->status, kDeviceStatusDisabled);
  EXPECT_EQ((*disabled)->disabled_at, std::optional<UnixMillis>(kNow + 10));
  EXPECT_EQ((*disabled)->disabled_reason, "compromised");

  ASSERT_TRUE(is_ok(devices.set_status("d", kDeviceStatusDisabled, kNow + 20, "again")));
  auto still = devices.find("d");
  ASSERT_TRUE(is_ok(still));
  ASSERT_TRUE(still->has_value());
  EXPECT_EQ((*still)->disabled_at, std::optional<UnixMillis>(kNow + 10));
  EXPECT_EQ((*still)->disabled_reason, "compromised");

  ASSERT_TRUE(is_ok(devices.set_status("d", kDeviceStatusActive, kNow + 30, "ignored")));
  auto active = devices.find("d");
  ASSERT_TRUE(is_ok(active));
  ASSERT_TRUE(active->has_value());
  EXPECT_EQ(**active, make_device("d"));

  ASSERT_TRUE(is_ok(devices.set_status("d", kDeviceStatusDisabled, kNow + 40, "retired")));
  auto again = devices.find("d");
  ASSERT_TRUE(is_ok(again));
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->disabled_at, std::optional<UnixMillis>(kNow + 40));
  EXPECT_EQ((*again)->disabled_reason, "retired");
}

TEST_P(StoreContractTest, DeviceSetStatusErrors) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("d"))));
  EXPECT_TRUE(fails_with(store().devices().set_status("nope", kDeviceStatusDisabled, kNow, "x"), Errc::not_found));
  EXPECT_TRUE(fails_with(store().devices().set_status("d", "retired", kNow, "x"), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(store().devices().set_status("d", "", kNow, "x"), Errc::invalid_argument));
  auto found = store().devices().find("d");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, make_device("d"));
}

TEST_P(StoreContractTest, DeviceTouchLastSeenKeepsTheLatestTime) {
  auto& devices = store().devices();
  ASSERT_TRUE(is_ok(devices.insert(make_device("d"))));
  ASSERT_TRUE(is_ok(devices.insert(make_device("other"))));
  ASSERT_TRUE(is_ok(devices.touch_last_seen("d", kNow + 100)));
  ASSERT_TRUE(is_ok(devices.touch_last_seen("d", kNow + 50)));  // arrived late: ignored
  auto found = devices.find("d");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->last_seen_at, std::optional<UnixMillis>(kNow + 100));
  ASSERT_TRUE(is_ok(devices.touch_last_seen("d", kNow + 200)));
  found = devices.find("d");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->last_seen_at, std::optional<UnixMillis>(kNow + 200));
  auto other = devices.find("other");
  ASSERT_TRUE(is_ok(other));
  ASSERT_TRUE(other->has_value());
  EXPECT_FALSE((*other)->last_seen_at.has_value());
  EXPECT_TRUE(fails_with(devices.touch_last_seen("nope", kNow), Errc::not_found));
}

TEST_P(StoreContractTest, DeviceUpdateFirmware) {
  auto& devices = store().devices();
  ASSERT_TRUE(is_ok(devices.insert(make_device("d"))));
  ASSERT_TRUE(is_ok(devices.update_firmware("d", "2.1.0")));
  auto found = devices.find("d");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  DeviceRecord expected = make_device("d");
  expected.firmware_version = "2.1.0";
  EXPECT_EQ(**found, expected);
  EXPECT_TRUE(fails_with(devices.update_firmware("nope", "2.1.0"), Errc::not_found));
}

TEST_P(StoreContractTest, DeviceTagsAreStoredReplacedAndChecked) {
  auto& devices = store().devices();
  DeviceRecord tagged = make_device("d");
  tagged.tags = {"cold-room", "floor-2"};
  ASSERT_TRUE(is_ok(devices.insert(tagged)));
  ASSERT_TRUE(is_ok(devices.insert(make_device("other"))));
  auto listed = devices.list_all();
  ASSERT_TRUE(is_ok(listed));
  ASSERT_EQ(listed->size(), 2U);
  EXPECT_EQ((*listed)[0], tagged);
  EXPECT_TRUE((*listed)[1].tags.empty());

  ASSERT_TRUE(is_ok(devices.set_tags("d", {"floor-3"})));
  auto found = devices.find("d");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->tags, std::vector<std::string>{"floor-3"});
  ASSERT_TRUE(is_ok(devices.set_tags("d", {})));
  found = devices.find("d");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_TRUE((*found)->tags.empty());

  EXPECT_TRUE(fails_with(devices.set_tags("nope", {"a"}), Errc::not_found));
  std::vector<std::string> too_many;
  for (std::size_t i = 0; i <= kMaxDeviceTags; ++i) too_many.push_back(fmt::format("t{:02}", i));
  ASSERT_TRUE(is_ok(devices.set_tags("d", std::vector<std::string>(too_many.begin(), too_many.end() - 1))));
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"b", "a"}, {"a", "a"}, {""}, {"a,b"}, too_many}) {
    EXPECT_TRUE(fails_with(devices.set_tags("d", bad), Errc::invalid_argument));
  }
  DeviceRecord unsorted = make_device("e");
  unsorted.tags = {"z", "a"};
  EXPECT_TRUE(fails_with(devices.insert(unsorted), Errc::invalid_argument));
}

TelemetryRecord make_telemetry(std::string device_id, UnixMillis received_at, std::string message_key = "",
                               std::string_view kind = kTelemetryKindTelemetry) {
  TelemetryRecord t;
  t.kind = std::string(kind);
  t.message_key = std::move(message_key);
  t.received_at = received_at;
  t.key_id = "dk-telemetry";
  t.sealed = to_bytes("sealed:" + device_id + ":" + std::to_string(received_at));
  t.device_id = std::move(device_id);
  return t;
}

TEST_P(StoreContractTest, DeviceRemoveTakesItsTelemetryLatestValuesAndCountersAlong) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("doomed"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("kept"))));
  ASSERT_TRUE(is_ok(s.certificates().insert(make_cert("01", kCertKindDevice, kNow, kNow + 10, "doomed"))));
  const std::vector<TelemetryRecord> records = {make_telemetry("doomed", kNow, "m1"),
                                                make_telemetry("kept", kNow, "m1"), make_telemetry("doomed", kNow + 1)};
  ASSERT_TRUE(is_ok(s.telemetry().append(records)));
  const std::vector<LatestValue> values = {{"doomed", "temp", "dk", to_bytes("21"), kNow},
                                           {"kept", "temp", "dk", to_bytes("22"), kNow}};
  ASSERT_TRUE(is_ok(s.latest_values().upsert(values)));
  const std::vector<DeviceCounters> deltas = {{"doomed", 2, 100, 0, 1, kNow}, {"kept", 1, 50, 0, 1, kNow}};
  ASSERT_TRUE(is_ok(s.device_counters().add(deltas)));

  auto removed = s.devices().remove("doomed");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);

  auto gone = s.devices().find("doomed");
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
  auto telemetry = s.telemetry().count("doomed");
  ASSERT_TRUE(is_ok(telemetry));
  EXPECT_EQ(*telemetry, 0u);
  auto latest = s.latest_values().list("doomed");
  ASSERT_TRUE(is_ok(latest));
  EXPECT_THAT(*latest, IsEmpty());
  auto counters = s.device_counters().find("doomed");
  ASSERT_TRUE(is_ok(counters));
  EXPECT_FALSE(counters->has_value());
  // The CA's record of the device's certificate stays, for revocation lists.
  auto cert = s.certificates().find_by_serial("01");
  ASSERT_TRUE(is_ok(cert));
  EXPECT_TRUE(cert->has_value());

  auto kept_telemetry = s.telemetry().count("kept");
  ASSERT_TRUE(is_ok(kept_telemetry));
  EXPECT_EQ(*kept_telemetry, 1u);
  auto kept_latest = s.latest_values().list("kept");
  ASSERT_TRUE(is_ok(kept_latest));
  EXPECT_EQ(kept_latest->size(), 1u);
  auto kept_counters = s.device_counters().find("kept");
  ASSERT_TRUE(is_ok(kept_counters));
  EXPECT_TRUE(kept_counters->has_value());

  auto again = s.devices().remove("doomed");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  // A device registered again under the same id starts clean, message keys included.
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("doomed"))));
  const std::vector<TelemetryRecord> replay = {make_telemetry("doomed", kNow, "m1")};
  auto seqs = s.telemetry().append(replay);
  ASSERT_TRUE(is_ok(seqs));
  ASSERT_EQ(seqs->size(), 1u);
  EXPECT_GT((*seqs)[0], 0);
}

TEST_P(StoreContractTest, DeviceRemoveInsideARolledBackTransactionKeepsEverything) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  const std::vector<TelemetryRecord> records = {make_telemetry("d", kNow)};
  ASSERT_TRUE(is_ok(s.telemetry().append(records)));
  auto t = s.transaction([&]() -> Status {
    auto removed = s.devices().remove("d");
    if (!removed) return tl::unexpected(removed.error());
    return fail(Errc::conflict, "changed my mind");
  });
  ASSERT_TRUE(fails_with(t, Errc::conflict));
  auto found = s.devices().find("d");
  ASSERT_TRUE(is_ok(found));
  EXPECT_TRUE(found->has_value());
  auto count = s.telemetry().count("d");
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 1u);
}

TEST_P(StoreContractTest, DeviceListUnusedSince) {
  auto& devices = store().devices();
  const UnixMillis cutoff = kNow + 1000;
  ASSERT_TRUE(is_ok(devices.insert(make_device("never-seen-old", "org-1", kNow))));
  ASSERT_TRUE(is_ok(devices.insert(make_device("never-seen-new", "org-1", cutoff))));  // == cutoff: not before
  ASSERT_TRUE(is_ok(devices.insert(make_device("seen-long-ago", "org-2", kNow - 500))));
  ASSERT_TRUE(is_ok(devices.touch_last_seen("seen-long-ago", kNow + 500)));
  ASSERT_TRUE(is_ok(devices.insert(make_device("seen-recently", "org-1", kNow - 500))));
  ASSERT_TRUE(is_ok(devices.touch_last_seen("seen-recently", cutoff + 1)));
  ASSERT_TRUE(is_ok(devices.insert(make_device("b-tie", "org-1", kNow))));
  ASSERT_TRUE(is_ok(devices.insert(make_device("disabled-old", "org-1", kNow - 900))));
  ASSERT_TRUE(is_ok(devices.set_status("disabled-old", kDeviceStatusDisabled, kNow, "retired")));

  auto unused = devices.list_unused_since(cutoff);
  ASSERT_TRUE(is_ok(unused));
  EXPECT_THAT(device_ids(*unused), ElementsAre("b-tie", "never-seen-old", "seen-long-ago"));
  auto none = devices.list_unused_since(kNow - 1000);
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, DeviceTrickyValuesRoundTrip) {
  DeviceRecord d = make_device(kTricky, kTricky);
  d.name = kTricky;
  d.profile_id = kTricky;
  d.segment = kTricky;
  d.serial_number = kTricky;
  d.firmware_version = kTricky;
  ASSERT_TRUE(is_ok(store().devices().insert(d)));
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("O'Brien", "O'Brien"))));
  ASSERT_TRUE(is_ok(store().devices().set_status(kTricky, kDeviceStatusDisabled, kNow, kTricky)));
  d.status = std::string(kDeviceStatusDisabled);
  d.disabled_at = kNow;
  d.disabled_reason = kTricky;
  auto found = store().devices().find(kTricky);
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, d);
  auto listed = store().devices().list(kTricky);
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, ElementsAre(d));
}

// ----------------------------------------------------------------------------- enrolment tokens

// A token valid for a day from created_at.
EnrolmentToken make_enrolment_token(std::string token_hash, std::string device_id, UnixMillis created_at = kNow) {
  EnrolmentToken t;
  t.device_id = std::move(device_id);
  t.organisation_id = "org-1";
  t.created_at = created_at;
  t.expires_at = created_at + UnixMillis{24} * 3600 * 1000;
  t.created_by = "user:admin-1";
  t.token_hash = std::move(token_hash);
  return t;
}

TEST_P(StoreContractTest, EnrolmentTokenConsumedOnceReturnsItsDeviceAndFindShowsItUsed) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-2"))));
  auto& tokens = store().enrolment_tokens();
  const auto token = make_enrolment_token(kTricky, "dev-2");
  ASSERT_TRUE(is_ok(tokens.issue(token)));
  auto found = tokens.find(kTricky);
  ASSERT_TRUE(is_ok(found) && found->has_value());
  EXPECT_EQ(**found, token);
  auto truncated = tokens.consume("O'Brien", kNow);  // a value pasted into SQL would end here
  ASSERT_TRUE(is_ok(truncated));
  EXPECT_EQ(truncated->outcome, ConsumeOutcome::unknown);
  auto first = tokens.consume(kTricky, kNow + 1);
  ASSERT_TRUE(is_ok(first));
  EXPECT_EQ(first->outcome, ConsumeOutcome::consumed);
  EXPECT_EQ(first->device_id, "dev-2");
  auto second = tokens.consume(kTricky, kNow + 2);
  ASSERT_TRUE(is_ok(second));
  EXPECT_EQ(second->outcome, ConsumeOutcome::already_used);
  EXPECT_EQ(second->device_id, "");  // a refused token names no device
  auto used = tokens.find_for_device("dev-2");
  ASSERT_TRUE(is_ok(used) && used->has_value());
  EXPECT_EQ((*used)->used_at, kNow + 1);
  auto none = tokens.find_for_device("dev-1");
  ASSERT_TRUE(is_ok(none));
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreContractTest, EnrolmentTokenPastItsExpiryIsExpiredAndStaysUnused) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  auto& tokens = store().enrolment_tokens();
  const auto token = make_enrolment_token("t-1", "dev-1");
  ASSERT_TRUE(is_ok(tokens.issue(token)));
  auto at_expiry = tokens.consume("t-1", token.expires_at);  // valid while now < expires_at
  ASSERT_TRUE(is_ok(at_expiry));
  EXPECT_EQ(at_expiry->outcome, ConsumeOutcome::expired);
  EXPECT_EQ(at_expiry->device_id, "");
  auto stored = tokens.find("t-1");
  ASSERT_TRUE(is_ok(stored) && stored->has_value());
  EXPECT_FALSE((*stored)->used_at.has_value());
  auto in_time = tokens.consume("t-1", token.expires_at - 1);
  ASSERT_TRUE(is_ok(in_time));
  EXPECT_EQ(in_time->outcome, ConsumeOutcome::consumed);
}

TEST_P(StoreContractTest, EnrolmentTokenIssuedAgainReplacesTheDevicesEarlierOne) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  auto& tokens = store().enrolment_tokens();
  ASSERT_TRUE(is_ok(tokens.issue(make_enrolment_token("old", "dev-1"))));
  ASSERT_TRUE(is_ok(tokens.issue(make_enrolment_token("new", "dev-1", kNow + 5))));
  auto old = tokens.consume("old", kNow + 6);
  ASSERT_TRUE(is_ok(old));
  EXPECT_EQ(old->outcome, ConsumeOutcome::unknown);
  auto current = tokens.find_for_device("dev-1");
  ASSERT_TRUE(is_ok(current) && current->has_value());
  EXPECT_EQ((*current)->token_hash, "new");
  auto fresh = tokens.consume("new", kNow + 6);
  ASSERT_TRUE(is_ok(fresh));
  EXPECT_EQ(fresh->outcome, ConsumeOutcome::consumed);
}

TEST_P(StoreContractTest, EnrolmentTokenRefusalsKeepTheEarlierTokenAndGoWithTheirDevice) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-2"))));
  auto& tokens = store().enrolment_tokens();
  ASSERT_TRUE(is_ok(tokens.issue(make_enrolment_token("t-1", "dev-1"))));
  ASSERT_TRUE(is_ok(tokens.issue(make_enrolment_token("t-2", "dev-2"))));
  auto taken = tokens.issue(make_enrolment_token("t-2", "dev-1"));
  ASSERT_FALSE(is_ok(taken));
  EXPECT_TRUE(taken.error().is(Errc::already_exists));
  auto kept = tokens.find_for_device("dev-1");
  ASSERT_TRUE(is_ok(kept) && kept->has_value());
  EXPECT_EQ((*kept)->token_hash, "t-1");
  auto unknown_device = tokens.issue(make_enrolment_token("t-3", "dev-9"));
  ASSERT_FALSE(is_ok(unknown_device));
  EXPECT_TRUE(unknown_device.error().is(Errc::conflict));
  auto empty = tokens.issue(make_enrolment_token("", "dev-1"));
  ASSERT_FALSE(is_ok(empty));
  EXPECT_TRUE(empty.error().is(Errc::invalid_argument));

  ASSERT_TRUE(is_ok(store().devices().remove("dev-1")));
  auto gone = tokens.find("t-1");
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
}

// ----------------------------------------------------------------------------- device commands

DeviceCommandRecord make_command(std::string id, std::string device_id, UnixMillis issued_at = kNow) {
  DeviceCommandRecord c;
  c.id = std::move(id);
  c.device_id = std::move(device_id);
  c.organisation_id = "org-1";
  c.name = "set_interval";
  c.key_id = "device:" + c.device_id;
  c.payload_sealed = Bytes{0x00, 0xFF, 0x27, 0x3B};  // any bytes, NUL and quote included
  c.issued_at = issued_at;
  c.expires_at = issued_at + 300'000;
  c.issued_by = "user:admin-1";
  return c;
}

TEST_P(StoreContractTest, DeviceCommandsAreFoundByIdAndListedNewestFirstPerDevice) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-2"))));
  auto& commands = store().device_commands();
  const auto first = make_command(kTricky, "dev-1", kNow);
  ASSERT_TRUE(is_ok(commands.add(first)));
  ASSERT_TRUE(is_ok(commands.add(make_command("c-2", "dev-1", kNow + 10))));
  ASSERT_TRUE(is_ok(commands.add(make_command("c-3", "dev-2", kNow + 20))));
  auto found = commands.find(kTricky);
  ASSERT_TRUE(is_ok(found) && found->has_value());
  EXPECT_EQ(**found, first);
  auto listed = commands.list_for_device("dev-1", 10);
  ASSERT_TRUE(is_ok(listed));
  ASSERT_EQ(listed->size(), 2U);
  EXPECT_EQ((*listed)[0].id, "c-2");
  EXPECT_EQ((*listed)[1].id, kTricky);
  auto limited = commands.list_for_device("dev-1", 1);
  ASSERT_TRUE(is_ok(limited));
  EXPECT_EQ(limited->size(), 1U);

  auto taken = commands.add(make_command("c-2", "dev-2"));
  ASSERT_FALSE(is_ok(taken));
  EXPECT_TRUE(taken.error().is(Errc::already_exists));
  auto unknown_device = commands.add(make_command("c-9", "dev-9"));
  ASSERT_FALSE(is_ok(unknown_device));
  EXPECT_TRUE(unknown_device.error().is(Errc::conflict));
  auto empty = commands.add(make_command("", "dev-1"));
  ASSERT_FALSE(is_ok(empty));
  EXPECT_TRUE(empty.error().is(Errc::invalid_argument));

  ASSERT_TRUE(is_ok(store().devices().remove("dev-1")));  // its commands go with it
  auto gone = commands.find("c-2");
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
  auto other = commands.find("c-3");
  ASSERT_TRUE(is_ok(other) && other->has_value());
}

TEST_P(StoreContractTest, DeviceCommandIsAnsweredOnceAndOnlyByItsDevice) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-2"))));
  auto& commands = store().device_commands();
  ASSERT_TRUE(is_ok(commands.add(make_command("c-1", "dev-1"))));
  auto by_other = commands.answer("dev-2", "c-1", "done", "", kNow + 1);
  ASSERT_TRUE(is_ok(by_other));
  EXPECT_FALSE(*by_other);
  auto unknown = commands.answer("dev-1", "O'Brien", "done", "", kNow + 1);
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(*unknown);
  auto answered = commands.answer("dev-1", "c-1", "refused", "command expired", kNow + 2);
  ASSERT_TRUE(is_ok(answered));
  EXPECT_TRUE(*answered);
  auto again = commands.answer("dev-1", "c-1", "done", "", kNow + 3);
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);  // the first answer stands
  auto stored = commands.find("c-1");
  ASSERT_TRUE(is_ok(stored) && stored->has_value());
  EXPECT_EQ((*stored)->status, "refused");
  EXPECT_EQ((*stored)->reason, "command expired");
  EXPECT_EQ((*stored)->answered_at, kNow + 2);
}

TEST_P(StoreContractTest, EnrolmentTokenConcurrentConsumersExactlyOneWins) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(store().enrolment_tokens().issue(make_enrolment_token("race", "dev-1"))));
  constexpr int kThreads = 8;
  std::atomic<int> consumed{0};
  std::atomic<int> already_used{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto r = store().enrolment_tokens().consume("race", kNow);
      if (r && r->outcome == ConsumeOutcome::consumed) {
        ++consumed;
      } else if (r && r->outcome == ConsumeOutcome::already_used) {
        ++already_used;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(consumed.load(), 1);
  EXPECT_EQ(already_used.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
}

// ----------------------------------------------------------------------------- rules

RuleRecord make_rule(std::string id, std::string organisation_id = "org-1", std::string name = "hot") {
  RuleRecord r;
  r.id = std::move(id);
  r.organisation_id = std::move(organisation_id);
  r.name = std::move(name);
  r.definition = R"({"condition":"temperature > 30"})";
  r.created_by = "user:admin-1";
  r.created_at = kNow;
  r.updated_by = "user:admin-1";
  r.updated_at = kNow;
  return r;
}

TEST_P(StoreContractTest, RuleIsStoredListedAndEveryVersionKept) {
  auto& rules = store().rules();
  auto tricky = make_rule("r-1", "org-1", kTricky);
  tricky.definition = kTricky;
  ASSERT_TRUE(is_ok(rules.insert(tricky)));
  ASSERT_TRUE(is_ok(rules.insert(make_rule("r-2", "org-1", "A first"))));
  auto other = make_rule("r-3", "org-2");
  other.enabled = false;
  ASSERT_TRUE(is_ok(rules.insert(other)));

  auto found = rules.find("r-1");
  ASSERT_TRUE(is_ok(found) && found->has_value());
  EXPECT_EQ(**found, tricky);
  auto listed = rules.list("org-1");
  ASSERT_TRUE(is_ok(listed));
  ASSERT_EQ(listed->size(), 2U);
  EXPECT_EQ((*listed)[0].id, "r-2");  // by name
  auto enabled = rules.list_enabled();
  ASSERT_TRUE(is_ok(enabled));
  ASSERT_EQ(enabled->size(), 2U);  // r-3 is disabled

  auto changed = make_rule("r-1", "org-1", "hotter");
  changed.definition = R"({"condition":"temperature > 35"})";
  changed.updated_by = "user:op-2";
  changed.updated_at = kNow + 5;
  auto updated = rules.update(changed, 1);
  ASSERT_TRUE(is_ok(updated));
  EXPECT_EQ(updated->version, 2U);
  EXPECT_EQ(updated->name, "hotter");
  EXPECT_EQ(updated->created_by, "user:admin-1");  // the owner stays
  EXPECT_EQ(updated->updated_by, "user:op-2");

  // A change made from version 1 after version 2 exists is someone else's stale view.
  auto stale = rules.update(make_rule("r-1"), 1);
  EXPECT_TRUE(fails_with(stale, Errc::conflict));
  EXPECT_TRUE(fails_with(rules.update(make_rule("r-9"), 1), Errc::not_found));

  auto history = rules.versions("r-1");
  ASSERT_TRUE(is_ok(history));
  ASSERT_EQ(history->size(), 2U);
  EXPECT_EQ((*history)[0].version, 2U);
  EXPECT_EQ((*history)[0].changed_by, "user:op-2");
  EXPECT_EQ((*history)[1].version, 1U);
  EXPECT_EQ((*history)[1].definition, kTricky);

  EXPECT_TRUE(fails_with(rules.insert(make_rule("r-2")), Errc::already_exists));
  EXPECT_TRUE(fails_with(rules.insert(make_rule("")), Errc::invalid_argument));
  auto no_definition = make_rule("r-4");
  no_definition.definition.clear();
  EXPECT_TRUE(fails_with(rules.insert(no_definition), Errc::invalid_argument));
}

TEST_P(StoreContractTest, DeviceRuleStatesAreOneRowPerDeviceReplacedAndGoneWithTheDevice) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-2"))));
  auto& rules = store().rules();
  const Bytes sealed{0x00, 0xFF, 0x27, 0x3B};  // any bytes, NUL and quote included
  ASSERT_TRUE(is_ok(rules.save_device_states({{"dev-2", "device:dev-2", sealed, kNow},
                                              {"dev-1", kTricky, sealed, kNow},
                                              {"dev-9", "device:dev-9", sealed, kNow}})));        // no such device
  ASSERT_TRUE(is_ok(rules.save_device_states({{"dev-2", "device:dev-2", Bytes{1}, kNow + 1}})));  // replaces
  auto rows = rules.device_states();
  ASSERT_TRUE(is_ok(rows));
  ASSERT_EQ(rows->size(), 2U);
  EXPECT_EQ((*rows)[0], (DeviceRuleStatesRecord{"dev-1", kTricky, sealed, kNow}));
  EXPECT_EQ((*rows)[1], (DeviceRuleStatesRecord{"dev-2", "device:dev-2", Bytes{1}, kNow + 1}));

  ASSERT_TRUE(is_ok(store().devices().remove("dev-1")));
  rows = rules.device_states();
  ASSERT_TRUE(is_ok(rows));
  ASSERT_EQ(rows->size(), 1U);
  EXPECT_EQ((*rows)[0].device_id, "dev-2");
}

TEST_P(StoreContractTest, RuleStatesGoWithTheRuleAndTheDevice) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-2"))));
  auto& rules = store().rules();
  ASSERT_TRUE(is_ok(rules.insert(make_rule("r-1"))));
  ASSERT_TRUE(is_ok(rules.insert(make_rule("r-2"))));
  const Bytes sealed{0x00, 0xFF, 0x27, 0x3B};  // any bytes, NUL and quote included
  ASSERT_TRUE(is_ok(rules.save_states({{"r-1", "dev-1", kTricky, sealed, kNow},
                                       {"r-1", "dev-2", "device:dev-2", sealed, kNow},
                                       {"r-2", "dev-1", "device:dev-1", sealed, kNow},
                                       {"r-1", "dev-9", "device:dev-9", sealed, kNow},            // no such device
                                       {"r-9", "dev-1", "device:dev-1", sealed, kNow}})));        // no such rule
  ASSERT_TRUE(is_ok(rules.save_states({{"r-1", "dev-2", "device:dev-2", Bytes{1}, kNow + 1}})));  // replaces
  auto states = rules.states("r-1");
  ASSERT_TRUE(is_ok(states));
  ASSERT_EQ(states->size(), 2U);
  EXPECT_EQ((*states)[0], (RuleStateRecord{"r-1", "dev-1", kTricky, sealed, kNow}));
  EXPECT_EQ((*states)[1].sealed, Bytes{1});
  EXPECT_EQ((*states)[1].updated_at, kNow + 1);

  ASSERT_TRUE(is_ok(store().devices().remove("dev-1")));
  states = rules.states("r-1");
  ASSERT_TRUE(is_ok(states));
  ASSERT_EQ(states->size(), 1U);
  EXPECT_EQ((*states)[0].device_id, "dev-2");

  ASSERT_TRUE(is_ok(rules.clear_states("r-1")));
  states = rules.states("r-1");
  ASSERT_TRUE(is_ok(states));
  EXPECT_TRUE(states->empty());

  ASSERT_TRUE(is_ok(rules.save_states({{"r-2", "dev-2", "device:dev-2", sealed, kNow}})));
  ASSERT_TRUE(is_ok(rules.mark_fired("r-2", kNow + 7)));
  auto fired = rules.find("r-2");
  ASSERT_TRUE(is_ok(fired) && fired->has_value());
  EXPECT_EQ((*fired)->last_fired_at, kNow + 7);
  auto removed = rules.remove("r-2");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto again = rules.remove("r-2");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto history = rules.versions("r-2");  // its history went with it
  ASSERT_TRUE(is_ok(history));
  EXPECT_TRUE(history->empty());
  states = rules.states("r-2");
  ASSERT_TRUE(is_ok(states));
  EXPECT_TRUE(states->empty());
}

// ----------------------------------------------------------------------------- notification channels

NotificationChannelRecord make_channel(std::string organisation_id, std::string id, std::string type = "webhook") {
  NotificationChannelRecord c;
  c.organisation_id = std::move(organisation_id);
  c.id = std::move(id);
  c.name = "ops hook";
  c.type = std::move(type);
  c.min_severity = "warning";
  c.key_id = "notify";
  c.definition_sealed = Bytes{0x00, 0xFF, 0x27, 0x3B};  // any bytes, NUL and quote included
  c.created_by = "user:admin-1";
  c.created_at = kNow;
  c.updated_at = kNow;
  return c;
}

std::vector<std::string> channel_keys(const std::vector<NotificationChannelRecord>& channels) {
  std::vector<std::string> out;
  out.reserve(channels.size());
  for (const auto& c : channels) out.push_back(c.organisation_id + "/" + c.id);
  return out;
}

TEST_P(StoreContractTest, NotificationChannelsAreKeptPerOrganisationAndListedById) {
  auto& channels = store().notification_channels();
  auto tricky = make_channel("org-1", "ops.hook:1", "email");
  tricky.name = kTricky;
  tricky.created_by = kTricky;
  tricky.key_id = kTricky;
  tricky.definition_sealed = all_byte_values();
  tricky.enabled = false;
  tricky.min_severity = "none";
  ASSERT_TRUE(is_ok(channels.insert(tricky)));
  ASSERT_TRUE(is_ok(channels.insert(make_channel("org-1", "a-first", "syslog"))));
  ASSERT_TRUE(is_ok(channels.insert(make_channel("org-2", "ops.hook:1", "mqtt"))));  // same id, other organisation

  auto found = channels.find("org-1", "ops.hook:1");
  ASSERT_TRUE(is_ok(found) && found->has_value());
  EXPECT_EQ(**found, tricky);
  auto elsewhere = channels.find("org-3", "ops.hook:1");
  ASSERT_TRUE(is_ok(elsewhere));
  EXPECT_FALSE(elsewhere->has_value());

  auto listed = channels.list("org-1");
  ASSERT_TRUE(is_ok(listed));
  EXPECT_EQ(channel_keys(*listed), (std::vector<std::string>{"org-1/a-first", "org-1/ops.hook:1"}));
  auto none = channels.list("org-3");
  ASSERT_TRUE(is_ok(none));
  EXPECT_TRUE(none->empty());
  auto all = channels.list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_EQ(channel_keys(*all), (std::vector<std::string>{"org-1/a-first", "org-1/ops.hook:1", "org-2/ops.hook:1"}));

  auto taken = channels.insert(make_channel("org-1", "a-first"));
  EXPECT_TRUE(fails_with(taken, Errc::already_exists));
  EXPECT_TRUE(does_not_quote(taken.error(), "a-first"));
  EXPECT_TRUE(fails_with(channels.insert(make_channel("org-1", "")), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(channels.insert(make_channel("", "x")), Errc::invalid_argument));
  auto unsealed = make_channel("org-1", "x");
  unsealed.definition_sealed.clear();
  EXPECT_TRUE(fails_with(channels.insert(unsealed), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(channels.insert(make_channel("org-1", "x", "pager")), Errc::invalid_argument));
}

TEST_P(StoreContractTest, NotificationChannelReplaceKeepsItsAuthorAndRemoveTakesOnlyThatChannel) {
  auto& channels = store().notification_channels();
  ASSERT_TRUE(is_ok(channels.insert(make_channel("org-1", "hook"))));
  ASSERT_TRUE(is_ok(channels.insert(make_channel("org-2", "hook"))));

  auto changed = make_channel("org-1", "hook", "email");
  changed.name = "on call";
  changed.min_severity = "critical";
  changed.enabled = false;
  changed.key_id = "notify-2";
  changed.definition_sealed = Bytes{1, 2, 3};
  changed.created_by = "user:someone-else";
  changed.created_at = kNow + 99;
  changed.updated_at = kNow + 5;
  ASSERT_TRUE(is_ok(channels.replace(changed)));
  auto found = channels.find("org-1", "hook");
  ASSERT_TRUE(is_ok(found) && found->has_value());
  auto expected = changed;
  expected.created_by = "user:admin-1";  // the author and creation time stay
  expected.created_at = kNow;
  EXPECT_EQ(**found, expected);
  auto other = channels.find("org-2", "hook");
  ASSERT_TRUE(is_ok(other) && other->has_value());
  EXPECT_EQ(**other, make_channel("org-2", "hook"));  // the other organisation's is untouched

  EXPECT_TRUE(fails_with(channels.replace(make_channel("org-3", "hook")), Errc::not_found));
  auto unnamed = make_channel("org-1", "hook");
  unnamed.name.clear();
  EXPECT_TRUE(fails_with(channels.replace(unnamed), Errc::invalid_argument));

  auto removed = channels.remove("org-1", "hook");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto again = channels.remove("org-1", "hook");
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto unknown = channels.remove("org-1", kTricky);
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(*unknown);
  auto left = channels.list_all();
  ASSERT_TRUE(is_ok(left));
  EXPECT_EQ(channel_keys(*left), (std::vector<std::string>{"org-2/hook"}));
}

// ----------------------------------------------------------------------------- device profiles

DeviceProfileRecord make_profile(std::string id, std::string organisation = "org-1", UnixMillis updated_at = kNow) {
  DeviceProfileRecord p;
  p.organisation_id = std::move(organisation);
  p.name = "profile " + id;
  p.definition_json = R"({"metrics":{"temp":"number"}})";
  p.updated_at = updated_at;
  p.id = std::move(id);
  return p;
}

TEST_P(StoreContractTest, ProfilePutStoresVersionOneWhateverTheInputSays) {
  DeviceProfileRecord p = make_profile("p1");
  p.version = 7;
  auto version = store().device_profiles().put(p);
  ASSERT_TRUE(is_ok(version));
  EXPECT_EQ(*version, 1);
  auto found = store().device_profiles().find("p1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  p.version = 1;
  EXPECT_EQ(**found, p);
}

TEST_P(StoreContractTest, ProfilePutReplacesEveryFieldAndIncrementsTheVersion) {
  auto& profiles = store().device_profiles();
  ASSERT_TRUE(is_ok(profiles.put(make_profile("p1"))));
  DeviceProfileRecord replacement = make_profile("p1", "org-1", kNow + 10);
  replacement.name = "renamed";
  replacement.definition_json = R"({"metrics":{}})";
  auto second = profiles.put(replacement);
  ASSERT_TRUE(is_ok(second));
  EXPECT_EQ(*second, 2);
  auto third = profiles.put(replacement);
  ASSERT_TRUE(is_ok(third));
  EXPECT_EQ(*third, 3);
  auto found = profiles.find("p1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  replacement.version = 3;
  EXPECT_EQ(**found, replacement);
}

TEST_P(StoreContractTest, ProfilePutCannotTakeOverAnotherOrganisationsProfile) {
  auto& profiles = store().device_profiles();
  ASSERT_TRUE(is_ok(profiles.put(make_profile("p1", "org-1"))));
  DeviceProfileRecord intruder = make_profile("p1", "org-2", kNow + 5);
  intruder.definition_json = "{}";
  auto r = profiles.put(intruder);
  EXPECT_TRUE(fails_with(r, Errc::conflict));
  auto found = profiles.find("p1");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, make_profile("p1", "org-1"));
  auto org2 = profiles.list("org-2");
  ASSERT_TRUE(is_ok(org2));
  EXPECT_THAT(*org2, IsEmpty());
}

TEST_P(StoreContractTest, ProfilePutRejectsEmptyIdOrOrganisation) {
  EXPECT_TRUE(fails_with(store().device_profiles().put(make_profile("")), Errc::invalid_argument));
  EXPECT_TRUE(fails_with(store().device_profiles().put(make_profile("p", "")), Errc::invalid_argument));
}

TEST_P(StoreContractTest, ProfileFindUnknownReturnsNothing) {
  auto found = store().device_profiles().find("nope");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
}

TEST_P(StoreContractTest, ProfileListIsPerOrganisationById) {
  auto& profiles = store().device_profiles();
  ASSERT_TRUE(is_ok(profiles.put(make_profile("p2", "org-1"))));
  ASSERT_TRUE(is_ok(profiles.put(make_profile("p1", "org-1"))));
  ASSERT_TRUE(is_ok(profiles.put(make_profile("p3", "org-2"))));
  auto org1 = profiles.list("org-1");
  ASSERT_TRUE(is_ok(org1));
  EXPECT_THAT(*org1, ElementsAre(make_profile("p1", "org-1"), make_profile("p2", "org-1")));
  auto none = profiles.list("org-3");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreContractTest, ProfileRemoveIsRefusedWhileADeviceUsesIt) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.device_profiles().put(make_profile(kTricky))));
  DeviceRecord d = make_device("d");
  d.profile_id = kTricky;
  ASSERT_TRUE(is_ok(s.devices().insert(d)));

  auto refused = s.device_profiles().remove(kTricky);
  ASSERT_TRUE(fails_with(refused, Errc::conflict));
  EXPECT_TRUE(does_not_quote(refused.error(), "DROP TABLE"));
  auto still = s.device_profiles().find(kTricky);
  ASSERT_TRUE(is_ok(still));
  EXPECT_TRUE(still->has_value());

  auto device_removed = s.devices().remove("d");
  ASSERT_TRUE(is_ok(device_removed));
  ASSERT_TRUE(*device_removed);
  auto removed = s.device_profiles().remove(kTricky);
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto gone = s.device_profiles().find(kTricky);
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
  auto again = s.device_profiles().remove(kTricky);
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
}

TEST_P(StoreContractTest, ProfileRemovedAndPutAgainStartsAtVersionOne) {
  auto& profiles = store().device_profiles();
  ASSERT_TRUE(is_ok(profiles.put(make_profile("p1"))));
  ASSERT_TRUE(is_ok(profiles.put(make_profile("p1"))));
  auto removed = profiles.remove("p1");
  ASSERT_TRUE(is_ok(removed));
  ASSERT_TRUE(*removed);
  auto version = profiles.put(make_profile("p1", "org-2"));
  ASSERT_TRUE(is_ok(version));
  EXPECT_EQ(*version, 1);
}

// ----------------------------------------------------------------------------- telemetry

std::vector<std::int64_t> seqs_of(const std::vector<TelemetryRecord>& records) {
  std::vector<std::int64_t> out;
  for (const auto& r : records) out.push_back(r.seq);
  return out;
}

Result<std::vector<TelemetryRecord>> all_telemetry(Store& s, std::string_view device_id) {
  return s.telemetry().range(device_id, std::numeric_limits<UnixMillis>::min(), std::numeric_limits<UnixMillis>::max(),
                             std::numeric_limits<std::size_t>::max());
}

TEST_P(StoreContractTest, TelemetryAppendStoresInOrderWithIncreasingSeqs) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("d"))));
  std::vector<TelemetryRecord> records = {make_telemetry("d", kNow, "m1"),
                                          make_telemetry("d", kNow, "", kTelemetryKindEvents),
                                          make_telemetry("d", kNow, "m2", kTelemetryKindState)};
  records[1].seq = 99;  // ignored
  records[2].sealed = all_byte_values();
  auto seqs = store().telemetry().append(records);
  ASSERT_TRUE(is_ok(seqs));
  ASSERT_EQ(seqs->size(), 3u);
  EXPECT_GT((*seqs)[0], 0);
  EXPECT_LT((*seqs)[0], (*seqs)[1]);
  EXPECT_LT((*seqs)[1], (*seqs)[2]);

  auto stored = all_telemetry(store(), "d");
  ASSERT_TRUE(is_ok(stored));
  ASSERT_EQ(stored->size(), 3u);
  for (std::size_t i = 0; i < records.size(); ++i) {
    records[i].seq = (*seqs)[i];
    EXPECT_EQ((*stored)[i], records[i]) << i;
  }
}

TEST_P(StoreContractTest, TelemetryAppendOfNothingIsNothing) {
  auto seqs = store().telemetry().append({});
  ASSERT_TRUE(is_ok(seqs));
  EXPECT_THAT(*seqs, IsEmpty());
}

TEST_P(StoreContractTest, TelemetryAppendDeduplicatesByDeviceAndMessageKey) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("a"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("b"))));
  const std::vector<TelemetryRecord> first = {make_telemetry("a", kNow, "m1"), make_telemetry("a", kNow, "")};
  auto first_seqs = s.telemetry().append(first);
  ASSERT_TRUE(is_ok(first_seqs));
  ASSERT_EQ(first_seqs->size(), 2u);

  TelemetryRecord redelivered = make_telemetry("a", kNow + 5, "m1");
  redelivered.sealed = to_bytes("different payload");
  const std::vector<TelemetryRecord> second = {
      redelivered,                          // stored by the first call: skipped
      make_telemetry("a", kNow + 6, ""),    // no key: never de-duplicated
      make_telemetry("b", kNow + 7, "m1"),  // same key, other device: stored
      make_telemetry("a", kNow + 8, "m2"),
      make_telemetry("a", kNow + 9, "m2"),  // earlier in this call: skipped
  };
  auto seqs = s.telemetry().append(second);
  ASSERT_TRUE(is_ok(seqs));
  ASSERT_EQ(seqs->size(), 5u);
  EXPECT_EQ((*seqs)[0], 0);
  EXPECT_GT((*seqs)[1], (*first_seqs)[1]);
  EXPECT_GT((*seqs)[2], (*seqs)[1]);
  EXPECT_GT((*seqs)[3], (*seqs)[2]);
  EXPECT_EQ((*seqs)[4], 0);

  auto a = all_telemetry(s, "a");
  ASSERT_TRUE(is_ok(a));
  EXPECT_THAT(seqs_of(*a), ElementsAre((*first_seqs)[0], (*first_seqs)[1], (*seqs)[1], (*seqs)[3]));
  EXPECT_EQ(a->front(), (TelemetryRecord{(*first_seqs)[0], "a", std::string(kTelemetryKindTelemetry), "m1", kNow,
                                         "dk-telemetry", first[0].sealed}));
  auto b = s.telemetry().count("b");
  ASSERT_TRUE(is_ok(b));
  EXPECT_EQ(*b, 1u);
}

// Batches of many records (a store may write them several to a statement): the same
// answers, across any boundary it uses.
TEST_P(StoreContractTest, TelemetryAppendOfALargeBatchDeduplicatesAndOrdersLikeASmallOne) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("a"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("b"))));
  const std::vector<TelemetryRecord> earlier = {make_telemetry("a", kNow, "k-7"), make_telemetry("b", kNow, "k-100")};
  ASSERT_TRUE(is_ok(s.telemetry().append(earlier)));

  std::vector<TelemetryRecord> batch;
  std::vector<bool> duplicate;
  for (int i = 0; i < 300; ++i) {
    const std::string device = i % 3 == 0 ? "b" : "a";
    std::string key;
    if (i % 5 == 0) {
      key = "";  // no key: always stored
    } else if (i % 7 == 0 || i % 11 == 0) {
      key = "k-" + std::to_string(i / 2);  // may repeat an earlier record of this batch
    } else {
      key = "k-" + std::to_string(i);
    }
    batch.push_back(make_telemetry(device, kNow + 1 + i, key));
  }
  // Which ones a store must skip: stored before, or earlier in the batch.
  std::set<std::pair<std::string, std::string>> seen = {{"a", "k-7"}, {"b", "k-100"}};
  for (const auto& r : batch)
    duplicate.push_back(!r.message_key.empty() && !seen.insert({r.device_id, r.message_key}).second);
  ASSERT_GT(std::count(duplicate.begin(), duplicate.end(), true), 5);

  auto seqs = s.telemetry().append(batch);
  ASSERT_TRUE(is_ok(seqs));
  ASSERT_EQ(seqs->size(), batch.size());
  std::int64_t last = 0;
  std::size_t stored = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (duplicate[i]) {
      EXPECT_EQ((*seqs)[i], 0) << i;
      continue;
    }
    EXPECT_GT((*seqs)[i], last) << i;
    last = (*seqs)[i];
    ++stored;
  }
  auto a = all_telemetry(s, "a");
  auto b = all_telemetry(s, "b");
  ASSERT_TRUE(is_ok(a) && is_ok(b));
  EXPECT_EQ(a->size() + b->size(), stored + earlier.size());
  // Each stored row is its record's, under the seq the call gave it.
  std::map<std::int64_t, const TelemetryRecord*> by_seq;
  for (const auto* rows : {&*a, &*b}) {
    for (const auto& r : *rows) by_seq[r.seq] = &r;
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (duplicate[i]) continue;
    ASSERT_TRUE(by_seq.contains((*seqs)[i])) << i;
    const TelemetryRecord& row = *by_seq[(*seqs)[i]];
    EXPECT_EQ(row.device_id, batch[i].device_id) << i;
    EXPECT_EQ(row.message_key, batch[i].message_key) << i;
    EXPECT_EQ(row.received_at, batch[i].received_at) << i;
    EXPECT_EQ(row.sealed, batch[i].sealed) << i;
  }

  // An unknown device anywhere in a large batch refuses all of it.
  std::vector<TelemetryRecord> with_ghost;
  for (int i = 0; i < 200; ++i) with_ghost.push_back(make_telemetry(i == 150 ? "ghost" : "a", kNow + 1000 + i, ""));
  EXPECT_TRUE(fails_with(s.telemetry().append(with_ghost), Errc::conflict));
  auto after = s.telemetry().count("a");
  ASSERT_TRUE(is_ok(after));
  EXPECT_EQ(*after, a->size());
}

TEST_P(StoreContractTest, TelemetryAppendInvalidRecordStoresNothing) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("d"))));
  const std::vector<TelemetryRecord> bad_kind = {make_telemetry("d", kNow, "m1"),
                                                 make_telemetry("d", kNow, "m2", "metrics")};
  EXPECT_TRUE(fails_with(store().telemetry().append(bad_kind), Errc::invalid_argument));
  const std::vector<TelemetryRecord> no_device = {make_telemetry("d", kNow, "m1"), make_telemetry("", kNow, "m2")};
  EXPECT_TRUE(fails_with(store().telemetry().append(no_device), Errc::invalid_argument));
  auto count = store().telemetry().count("d");
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 0u);
}

TEST_P(StoreContractTest, TelemetryAppendForAnUnknownDeviceIsConflictAndStoresNothing) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("d"))));
  const std::vector<TelemetryRecord> records = {make_telemetry("d", kNow, "m1"), make_telemetry("ghost", kNow, "m1"),
                                                make_telemetry("d", kNow, "m2")};
  auto r = store().telemetry().append(records);
  ASSERT_TRUE(fails_with(r, Errc::conflict));
  auto count = store().telemetry().count("d");
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 0u);
  // The refused call left no message key behind.
  const std::vector<TelemetryRecord> retry = {make_telemetry("d", kNow, "m1")};
  auto seqs = store().telemetry().append(retry);
  ASSERT_TRUE(is_ok(seqs));
  EXPECT_GT(seqs->at(0), 0);
}

TEST_P(StoreContractTest, TelemetryFailedAppendInsideATransactionUndoesOnlyItself) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  Result<std::vector<std::int64_t>> refused;
  auto t = s.transaction([&]() -> Status {
    const std::vector<TelemetryRecord> good = {make_telemetry("d", kNow, "m1")};
    if (auto r = s.telemetry().append(good); !r) return tl::unexpected(r.error());
    const std::vector<TelemetryRecord> bad = {make_telemetry("d", kNow + 1, "m2"), make_telemetry("ghost", kNow, "")};
    refused = s.telemetry().append(bad);
    return ok();  // the body decides to go on
  });
  ASSERT_TRUE(is_ok(t));
  EXPECT_TRUE(fails_with(refused, Errc::conflict));
  auto stored = all_telemetry(s, "d");
  ASSERT_TRUE(is_ok(stored));
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->front().message_key, "m1");
}

// An unsynced transaction commits and rolls back as any other; sync_committed() then makes
// the commit durable (for a store in memory, there is nothing to sync).
TEST_P(StoreContractTest, TelemetryInAnUnsyncedTransactionCommitsAndRollsBackAsAnyOther) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  ASSERT_TRUE(is_ok(s.transaction_unsynced([&]() -> Status {
    const std::vector<TelemetryRecord> batch = {make_telemetry("d", kNow, "m1")};
    if (auto r = s.telemetry().append(batch); !r) return tl::unexpected(r.error());
    return ok();
  })));
  ASSERT_TRUE(is_ok(s.sync_committed()));
  auto t = s.transaction_unsynced([&]() -> Status {
    const std::vector<TelemetryRecord> batch = {make_telemetry("d", kNow + 1, "m2")};
    if (auto r = s.telemetry().append(batch); !r) return tl::unexpected(r.error());
    return fail(Errc::unavailable, "disk went away");
  });
  ASSERT_TRUE(fails_with(t, Errc::unavailable));
  // Nested in a transaction, it is part of it.
  ASSERT_TRUE(is_ok(s.transaction([&]() -> Status {
    return s.transaction_unsynced([&]() -> Status {
      const std::vector<TelemetryRecord> batch = {make_telemetry("d", kNow + 2, "m3")};
      if (auto r = s.telemetry().append(batch); !r) return tl::unexpected(r.error());
      return ok();
    });
  })));
  ASSERT_TRUE(is_ok(s.sync_committed()));
  auto stored = all_telemetry(s, "d");
  ASSERT_TRUE(is_ok(stored));
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ(stored->front().message_key, "m1");
  EXPECT_EQ(stored->back().message_key, "m3");
}

TEST_P(StoreContractTest, TelemetryRangeBoundsOrderAndLimit) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("other"))));
  const std::vector<TelemetryRecord> records = {
      make_telemetry("d", kNow + 30, "late"),  make_telemetry("d", kNow + 10, "t10-a"),
      make_telemetry("d", kNow + 20, "t20"),   make_telemetry("d", kNow + 10, "t10-b"),
      make_telemetry("d", kNow, "at-from"),    make_telemetry("d", kNow + 40, "at-to"),
      make_telemetry("d", kNow - 1, "before"), make_telemetry("other", kNow + 10, "other"),
  };
  ASSERT_TRUE(is_ok(s.telemetry().append(records)));

  auto keys = [](const std::vector<TelemetryRecord>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs) out.push_back(r.message_key);
    return out;
  };
  auto window = s.telemetry().range("d", kNow, kNow + 40, 100);
  ASSERT_TRUE(is_ok(window));
  EXPECT_THAT(keys(*window), ElementsAre("at-from", "t10-a", "t10-b", "t20", "late"));
  auto limited = s.telemetry().range("d", kNow, kNow + 40, 2);
  ASSERT_TRUE(is_ok(limited));
  EXPECT_THAT(keys(*limited), ElementsAre("at-from", "t10-a"));
  auto zero = s.telemetry().range("d", kNow, kNow + 40, 0);
  ASSERT_TRUE(is_ok(zero));
  EXPECT_THAT(*zero, IsEmpty());
  auto empty_window = s.telemetry().range("d", kNow + 10, kNow + 10, 100);
  ASSERT_TRUE(is_ok(empty_window));
  EXPECT_THAT(*empty_window, IsEmpty());
  auto unknown = s.telemetry().range("nope", kNow, kNow + 40, 100);
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_THAT(*unknown, IsEmpty());
}

TEST_P(StoreContractTest, TelemetryCountAndRemoveDevice) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("a"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("b"))));
  const std::vector<TelemetryRecord> records = {make_telemetry("a", kNow), make_telemetry("a", kNow + 1, "k"),
                                                make_telemetry("b", kNow)};
  ASSERT_TRUE(is_ok(s.telemetry().append(records)));
  auto a = s.telemetry().count("a");
  ASSERT_TRUE(is_ok(a));
  EXPECT_EQ(*a, 2u);
  auto none = s.telemetry().count("nope");
  ASSERT_TRUE(is_ok(none));
  EXPECT_EQ(*none, 0u);

  auto removed = s.telemetry().remove_device("a");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_EQ(*removed, 2u);
  a = s.telemetry().count("a");
  ASSERT_TRUE(is_ok(a));
  EXPECT_EQ(*a, 0u);
  auto b = s.telemetry().count("b");
  ASSERT_TRUE(is_ok(b));
  EXPECT_EQ(*b, 1u);
  auto again = s.telemetry().remove_device("a");
  ASSERT_TRUE(is_ok(again));
  EXPECT_EQ(*again, 0u);
  // The device itself stays.
  auto device = s.devices().find("a");
  ASSERT_TRUE(is_ok(device));
  EXPECT_TRUE(device->has_value());
}

TEST_P(StoreContractTest, TelemetryRemoveOlderThanDeletesStrictlyOlderRecordsAndTheirKeys) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("a"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("b"))));
  const std::vector<TelemetryRecord> records = {make_telemetry("a", kNow - 10, "old"), make_telemetry("b", kNow - 1),
                                                make_telemetry("a", kNow, "edge"), make_telemetry("b", kNow + 10)};
  ASSERT_TRUE(is_ok(s.telemetry().append(records)));
  auto removed = s.telemetry().remove_older_than(kNow);
  ASSERT_TRUE(is_ok(removed));
  EXPECT_EQ(*removed, 2u);
  auto a = all_telemetry(s, "a");
  ASSERT_TRUE(is_ok(a));
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ(a->front().message_key, "edge");
  auto b = s.telemetry().count("b");
  ASSERT_TRUE(is_ok(b));
  EXPECT_EQ(*b, 1u);
  auto nothing = s.telemetry().remove_older_than(kNow);
  ASSERT_TRUE(is_ok(nothing));
  EXPECT_EQ(*nothing, 0u);

  const std::vector<TelemetryRecord> reuse = {make_telemetry("a", kNow + 20, "old"),
                                              make_telemetry("a", kNow + 20, "edge")};
  auto seqs = s.telemetry().append(reuse);
  ASSERT_TRUE(is_ok(seqs));
  ASSERT_EQ(seqs->size(), 2u);
  EXPECT_GT((*seqs)[0], 0) << "a forgotten key is free again";
  EXPECT_EQ((*seqs)[1], 0) << "a retained key still de-duplicates";
}

TEST_P(StoreContractTest, TelemetrySeqsAreNeverReused) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  const std::vector<TelemetryRecord> records = {make_telemetry("d", kNow), make_telemetry("d", kNow + 1)};
  auto first = s.telemetry().append(records);
  ASSERT_TRUE(is_ok(first));
  ASSERT_TRUE(is_ok(s.telemetry().remove_device("d")));
  auto second = s.telemetry().append(records);
  ASSERT_TRUE(is_ok(second));
  ASSERT_EQ(second->size(), 2u);
  EXPECT_GT(second->front(), first->back());
}

TEST_P(StoreContractTest, TelemetryTrickyValuesRoundTrip) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device(kTricky))));
  TelemetryRecord r = make_telemetry(kTricky, kNow, kTricky);
  r.key_id = kTricky;
  r.sealed = to_bytes(kTricky);
  const std::vector<TelemetryRecord> records = {r, make_telemetry(kTricky, kNow, "O'Brien")};
  auto seqs = store().telemetry().append(records);
  ASSERT_TRUE(is_ok(seqs));
  ASSERT_EQ(seqs->size(), 2u);
  EXPECT_GT((*seqs)[1], 0) << "keys that differ after a NUL are different keys";
  r.seq = (*seqs)[0];
  auto stored = all_telemetry(store(), kTricky);
  ASSERT_TRUE(is_ok(stored));
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ(stored->front(), r);
  auto truncated = store().telemetry().count("O'Brien");
  ASSERT_TRUE(is_ok(truncated));
  EXPECT_EQ(*truncated, 0u);
}

TEST_P(StoreContractTest, TelemetryGroupCommitWithLatestValuesAndCounters) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  std::vector<TelemetryRecord> batch;
  for (int i = 0; i < 500; ++i) batch.push_back(make_telemetry("d", kNow + i, "m" + std::to_string(i)));
  const std::vector<LatestValue> values = {{"d", "temp", "dk", to_bytes("21.5"), kNow + 499}};
  const std::vector<DeviceCounters> deltas = {{"d", 500, 5000, 0, 0, kNow + 499}};
  std::vector<std::int64_t> seqs;
  auto t = s.transaction([&]() -> Status {
    auto r = s.telemetry().append(batch);
    if (!r) return tl::unexpected(r.error());
    seqs = std::move(*r);
    if (auto u = s.latest_values().upsert(values); !u) return u;
    if (auto c = s.device_counters().add(deltas); !c) return c;
    return s.devices().touch_last_seen("d", kNow + 499);
  });
  ASSERT_TRUE(is_ok(t));
  ASSERT_EQ(seqs.size(), batch.size());
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_EQ(std::set<std::int64_t>(seqs.begin(), seqs.end()).size(), batch.size());
  EXPECT_GT(seqs.front(), 0);
  auto count = s.telemetry().count("d");
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 500u);
  auto latest = s.latest_values().list("d");
  ASSERT_TRUE(is_ok(latest));
  EXPECT_THAT(*latest, ElementsAre(values[0]));
}

TEST_P(StoreContractTest, TelemetryAppendInARolledBackTransactionLeavesNothing) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  auto t = s.transaction([&]() -> Status {
    const std::vector<TelemetryRecord> batch = {make_telemetry("d", kNow, "m1"), make_telemetry("d", kNow + 1, "m2")};
    if (auto r = s.telemetry().append(batch); !r) return tl::unexpected(r.error());
    const std::vector<LatestValue> values = {{"d", "temp", "dk", to_bytes("1"), kNow}};
    if (auto u = s.latest_values().upsert(values); !u) return u;
    const std::vector<DeviceCounters> deltas = {{"d", 2, 20, 0, 0, kNow}};
    if (auto c = s.device_counters().add(deltas); !c) return c;
    return fail(Errc::unavailable, "disk went away");
  });
  ASSERT_TRUE(fails_with(t, Errc::unavailable));
  auto count = s.telemetry().count("d");
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, 0u);
  auto latest = s.latest_values().list("d");
  ASSERT_TRUE(is_ok(latest));
  EXPECT_THAT(*latest, IsEmpty());
  auto counters = s.device_counters().find("d");
  ASSERT_TRUE(is_ok(counters));
  EXPECT_FALSE(counters->has_value());
  // The rolled-back keys were never stored, so the redelivered messages are.
  const std::vector<TelemetryRecord> redelivered = {make_telemetry("d", kNow, "m1")};
  auto seqs = s.telemetry().append(redelivered);
  ASSERT_TRUE(is_ok(seqs));
  EXPECT_GT(seqs->at(0), 0);
}

TEST_P(StoreContractTest, TelemetryConcurrentAppendsGetDistinctSeqs) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("d"))));
  constexpr int kThreads = 4;
  constexpr int kBatches = 10;
  constexpr int kPerBatch = 20;
  std::vector<std::vector<std::int64_t>> seen(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<TelemetryRecord> batch;
        for (int i = 0; i < kPerBatch; ++i) {
          batch.push_back(
              make_telemetry("d", kNow, std::to_string(t) + "/" + std::to_string(b) + "/" + std::to_string(i)));
        }
        auto r = store().telemetry().append(batch);
        if (!r) {
          ++errors;
          continue;
        }
        auto& mine = seen[static_cast<std::size_t>(t)];
        mine.insert(mine.end(), r->begin(), r->end());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<std::int64_t> all;
  for (const auto& s : seen) {
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    all.insert(s.begin(), s.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kBatches * kPerBatch));
  EXPECT_EQ(all.count(0), 0u);
  auto count = store().telemetry().count("d");
  ASSERT_TRUE(is_ok(count));
  EXPECT_EQ(*count, static_cast<std::size_t>(kThreads * kBatches * kPerBatch));
}

// ----------------------------------------------------------------------------- latest values

TEST_P(StoreContractTest, LatestValueUpsertKeepsTheNewerValuePerMetric) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("other"))));
  const LatestValue temp{"d", "temp", "dk-1", to_bytes("20"), kNow + 10};
  const LatestValue humidity{"d", "humidity", "dk-1", all_byte_values(), kNow};
  const LatestValue other{"other", "temp", "dk-1", to_bytes("5"), kNow};
  const std::vector<LatestValue> first = {temp, humidity, other};
  ASSERT_TRUE(is_ok(s.latest_values().upsert(first)));

  const LatestValue older{"d", "temp", "dk-2", to_bytes("19"), kNow + 5};
  const LatestValue same_time{"d", "humidity", "dk-2", to_bytes("55%"), kNow};
  const std::vector<LatestValue> second = {older, same_time};
  ASSERT_TRUE(is_ok(s.latest_values().upsert(second)));
  auto list = s.latest_values().list("d");
  ASSERT_TRUE(is_ok(list));
  EXPECT_THAT(*list, ElementsAre(same_time, temp));  // by metric

  const LatestValue newer{"d", "temp", "dk-2", to_bytes("23"), kNow + 20};
  const LatestValue newest{"d", "temp", "dk-3", to_bytes("24"), kNow + 30};
  const std::vector<LatestValue> out_of_order = {newest, newer};  // within one call too
  ASSERT_TRUE(is_ok(s.latest_values().upsert(out_of_order)));
  list = s.latest_values().list("d");
  ASSERT_TRUE(is_ok(list));
  EXPECT_THAT(*list, ElementsAre(same_time, newest));
  auto others = s.latest_values().list("other");
  ASSERT_TRUE(is_ok(others));
  EXPECT_THAT(*others, ElementsAre(other));
  auto none = s.latest_values().list("nope");
  ASSERT_TRUE(is_ok(none));
  EXPECT_THAT(*none, IsEmpty());
  EXPECT_TRUE(is_ok(s.latest_values().upsert({})));
}

TEST_P(StoreContractTest, LatestValueInvalidOrUnknownDeviceStoresNothing) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  const LatestValue good{"d", "temp", "dk", to_bytes("1"), kNow};
  const std::vector<LatestValue> empty_metric = {good, {"d", "", "dk", to_bytes("1"), kNow}};
  EXPECT_TRUE(fails_with(s.latest_values().upsert(empty_metric), Errc::invalid_argument));
  const std::vector<LatestValue> empty_device = {good, {"", "temp", "dk", to_bytes("1"), kNow}};
  EXPECT_TRUE(fails_with(s.latest_values().upsert(empty_device), Errc::invalid_argument));
  const std::vector<LatestValue> unknown_device = {good, {"ghost", "temp", "dk", to_bytes("1"), kNow}};
  EXPECT_TRUE(fails_with(s.latest_values().upsert(unknown_device), Errc::conflict));
  auto list = s.latest_values().list("d");
  ASSERT_TRUE(is_ok(list));
  EXPECT_THAT(*list, IsEmpty());
}

TEST_P(StoreContractTest, LatestValueTrickyValuesRoundTrip) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device(kTricky))));
  const LatestValue v{kTricky, kTricky, kTricky, to_bytes(kTricky), kNow};
  const LatestValue plain{kTricky, "O'Brien", "dk", to_bytes("x"), kNow};
  const std::vector<LatestValue> values = {v, plain};
  ASSERT_TRUE(is_ok(store().latest_values().upsert(values)));
  auto list = store().latest_values().list(kTricky);
  ASSERT_TRUE(is_ok(list));
  EXPECT_THAT(*list, ElementsAre(plain, v));
}

// ----------------------------------------------------------------------------- device counters

TEST_P(StoreContractTest, DeviceCountersAddCreatesThenAccumulates) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("d"))));
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("other"))));
  auto none = s.device_counters().find("d");
  ASSERT_TRUE(is_ok(none));
  EXPECT_FALSE(none->has_value());

  const std::vector<DeviceCounters> first = {{"d", 3, 300, 1, 1, kNow}, {"other", 1, 10, 0, 1, kNow}};
  ASSERT_TRUE(is_ok(s.device_counters().add(first)));
  const std::vector<DeviceCounters> second = {{"d", 2, 200, 0, 0, kNow + 10}, {"d", 1, 5, 2, 1, kNow + 5}};
  ASSERT_TRUE(is_ok(s.device_counters().add(second)));

  auto d = s.device_counters().find("d");
  ASSERT_TRUE(is_ok(d));
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ(**d, (DeviceCounters{"d", 6, 505, 3, 2, kNow + 10}));  // updated_at: the latest
  auto other = s.device_counters().find("other");
  ASSERT_TRUE(is_ok(other));
  ASSERT_TRUE(other->has_value());
  EXPECT_EQ(**other, (DeviceCounters{"other", 1, 10, 0, 1, kNow}));
  EXPECT_TRUE(is_ok(s.device_counters().add({})));
}

TEST_P(StoreContractTest, DeviceCountersHoldTheLargestStorableTotal) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("d"))));
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  const std::vector<DeviceCounters> to_max = {{"d", kMax - 1, 0, 0, 0, kNow}, {"d", 1, 0, 0, 0, kNow}};
  ASSERT_TRUE(is_ok(store().device_counters().add(to_max)));
  auto found = store().device_counters().find("d");
  ASSERT_TRUE(is_ok(found));
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->messages, kMax);

  const std::vector<DeviceCounters> overflow = {{"d", 0, 7, 0, 0, kNow + 1}, {"d", 1, 0, 0, 0, kNow + 1}};
  EXPECT_TRUE(fails_with(store().device_counters().add(overflow), Errc::invalid_argument));
  const std::vector<DeviceCounters> too_big = {{"d", 0, kMax + 1, 0, 0, kNow + 1}};
  EXPECT_TRUE(fails_with(store().device_counters().add(too_big), Errc::invalid_argument));
  auto unchanged = store().device_counters().find("d");
  ASSERT_TRUE(is_ok(unchanged));
  ASSERT_TRUE(unchanged->has_value());
  EXPECT_EQ(**unchanged, (DeviceCounters{"d", kMax, 0, 0, 0, kNow}));
}

TEST_P(StoreContractTest, DeviceCountersInvalidOrUnknownDeviceStoresNothing) {
  ASSERT_TRUE(is_ok(store().devices().insert(make_device("d"))));
  const std::vector<DeviceCounters> empty_id = {{"d", 1, 1, 0, 0, kNow}, {"", 1, 1, 0, 0, kNow}};
  EXPECT_TRUE(fails_with(store().device_counters().add(empty_id), Errc::invalid_argument));
  const std::vector<DeviceCounters> unknown = {{"d", 1, 1, 0, 0, kNow}, {"ghost", 1, 1, 0, 0, kNow}};
  EXPECT_TRUE(fails_with(store().device_counters().add(unknown), Errc::conflict));
  auto found = store().device_counters().find("d");
  ASSERT_TRUE(is_ok(found));
  EXPECT_FALSE(found->has_value());
  auto ghost = store().device_counters().find("ghost");
  ASSERT_TRUE(is_ok(ghost));
  EXPECT_FALSE(ghost->has_value());
}

// ----------------------------------------------------------------------------- transactions

RouteRecord make_route(std::string from_kind, std::string from, std::string to_kind, std::string to,
                       std::string organisation = "org-1") {
  return RouteRecord{std::move(organisation), std::move(from_kind), std::move(from),
                     std::move(to_kind),      std::move(to),        kNow,
                     "admin-cli:root"};
}

TEST_P(StoreContractTest, RouteInsertStoresOnceAndListsByOrganisation) {
  auto& routes = store().routes();
  const RouteRecord a = make_route("device", "sensor-a", "device", "display-1");
  const RouteRecord b = make_route("segment", "lab", "segment", "office");
  const RouteRecord other = make_route("segment", "lab", "segment", "office", "org-2");
  auto first = routes.insert(a);
  ASSERT_TRUE(is_ok(first));
  EXPECT_TRUE(*first);
  RouteRecord again = a;
  again.created_by = "someone else";
  again.created_at = kNow + 1;
  auto second = routes.insert(again);
  ASSERT_TRUE(is_ok(second));
  EXPECT_FALSE(*second);  // exists: left as it was
  ASSERT_TRUE(is_ok(routes.insert(b)));
  ASSERT_TRUE(is_ok(routes.insert(other)));

  auto listed = routes.list("org-1");
  ASSERT_TRUE(is_ok(listed));
  EXPECT_THAT(*listed, ElementsAre(a, b));
  auto all = routes.list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, ElementsAre(a, b, other));
}

TEST_P(StoreContractTest, RouteInsertRefusesUnknownKindsAndEmptyEnds) {
  auto& routes = store().routes();
  for (const RouteRecord& bad :
       {make_route("group", "a", "device", "b"), make_route("device", "a", "", "b"),
        make_route("device", "", "device", "b"), make_route("device", "a", "device", "b", "")}) {
    auto r = routes.insert(bad);
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().is(Errc::invalid_argument)) << r.error().message;
  }
  auto all = routes.list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, IsEmpty());
}

TEST_P(StoreContractTest, RouteRemoveMatchesAllFourEndsAndTheOrganisation) {
  auto& routes = store().routes();
  ASSERT_TRUE(is_ok(routes.insert(make_route("device", "a", "device", "b"))));
  for (const RouteRecord& near_miss :
       {make_route("device", "b", "device", "a"), make_route("segment", "a", "device", "b"),
        make_route("device", "a", "device", "b", "org-2")}) {
    auto r = routes.remove(near_miss);
    ASSERT_TRUE(is_ok(r));
    EXPECT_FALSE(*r);
  }
  auto removed = routes.remove(make_route("device", "a", "device", "b"));
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto all = routes.list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, IsEmpty());
}

TEST_P(StoreContractTest, DeviceRemoveTakesTheDeviceRoutesNamingItButNotSegmentRoutes) {
  auto& s = store();
  ASSERT_TRUE(is_ok(s.devices().insert(make_device("doomed"))));
  const RouteRecord from = make_route("device", "doomed", "device", "kept");
  const RouteRecord to = make_route("device", "kept", "device", "doomed");
  const RouteRecord segment = make_route("segment", "doomed", "segment", "kept");  // a segment of the same name
  const RouteRecord unrelated = make_route("device", "kept", "segment", "lab");
  for (const auto& r : {from, to, segment, unrelated}) ASSERT_TRUE(is_ok(s.routes().insert(r)));
  auto removed = s.devices().remove("doomed");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  auto all = s.routes().list_all();
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, UnorderedElementsAre(segment, unrelated));
}

// ----------------------------------------------------------------------------- MQTT state

MqttStateRecord make_retained(std::string device, std::string topic, std::string sealed, UnixMillis expires_at = 0) {
  return MqttStateRecord{
      std::move(device), std::string(kMqttStateRetained), std::move(topic), "dk-1", to_bytes(sealed), expires_at, kNow};
}

TEST_P(StoreContractTest, MqttStatePutReplacesByDeviceKindAndNameAndListsByKind) {
  auto& s = store();
  for (const char* id : {"dev-a", "dev-b"}) ASSERT_TRUE(is_ok(s.devices().insert(make_device(id))));
  auto& state = s.mqtt_state();
  const auto a_state = make_retained("dev-a", "devices/dev-a/state", "v1");
  const auto a_events = make_retained("dev-a", "devices/dev-a/events", "e1", kNow + 1000);
  const auto b_state = make_retained("dev-b", "devices/dev-b/state", "b1");
  for (const auto& r : {a_state, a_events, b_state}) ASSERT_TRUE(is_ok(state.put(r)));
  auto replaced = make_retained("dev-a", "devices/dev-a/state", "v2");
  replaced.updated_at = kNow + 5;
  ASSERT_TRUE(is_ok(state.put(replaced)));

  auto all = state.list(kMqttStateRetained);
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, ElementsAre(a_events, replaced, b_state));
  auto sessions = state.list(kMqttStateSession);
  ASSERT_TRUE(is_ok(sessions));
  EXPECT_THAT(*sessions, IsEmpty());
  const MqttStateRecord session{"dev-b", std::string(kMqttStateSession), "", "dk-1", to_bytes("s"), kNow + 60, kNow};
  ASSERT_TRUE(is_ok(state.put(session)));
  sessions = state.list(kMqttStateSession);
  ASSERT_TRUE(is_ok(sessions));
  EXPECT_THAT(*sessions, ElementsAre(session));
  all = state.list(kMqttStateRetained);
  ASSERT_TRUE(is_ok(all));
  EXPECT_EQ(all->size(), 3U);
}

TEST_P(StoreContractTest, MqttStateRefusesUnknownKindsEmptyDevicesAndUnknownDevices) {
  auto& state = store().mqtt_state();
  auto unknown_kind = make_retained("dev-a", "t", "x");
  unknown_kind.kind = "bogus";
  auto r = state.put(unknown_kind);
  ASSERT_FALSE(is_ok(r));
  EXPECT_TRUE(r.error().is(Errc::invalid_argument));
  r = state.put(make_retained("", "t", "x"));
  ASSERT_FALSE(is_ok(r));
  EXPECT_TRUE(r.error().is(Errc::invalid_argument));
  r = state.put(make_retained("ghost", "t", "x"));
  ASSERT_FALSE(is_ok(r));
  EXPECT_TRUE(r.error().is(Errc::conflict));
}

TEST_P(StoreContractTest, MqttStateRemoveAndRemoveExpiredAndDeviceRemovalTakeTheirRows) {
  auto& s = store();
  for (const char* id : {"dev-a", "dev-b"}) ASSERT_TRUE(is_ok(s.devices().insert(make_device(id))));
  auto& state = s.mqtt_state();
  const auto kept = make_retained("dev-a", "keep", "k");
  const auto expiring = make_retained("dev-a", "soon", "s", kNow + 10);
  const auto later = make_retained("dev-a", "later", "l", kNow + 1000);
  const auto gone = make_retained("dev-a", "gone", "g");
  const auto of_b = make_retained("dev-b", "b", "b");
  for (const auto& r : {kept, expiring, later, gone, of_b}) ASSERT_TRUE(is_ok(state.put(r)));

  auto removed = state.remove("dev-a", kMqttStateRetained, "gone");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_TRUE(*removed);
  removed = state.remove("dev-a", kMqttStateRetained, "gone");
  ASSERT_TRUE(is_ok(removed));
  EXPECT_FALSE(*removed);

  auto expired = state.remove_expired(kNow + 11);
  ASSERT_TRUE(is_ok(expired));
  EXPECT_EQ(*expired, 1U);

  auto device_gone = s.devices().remove("dev-b");
  ASSERT_TRUE(is_ok(device_gone));
  auto all = state.list(kMqttStateRetained);
  ASSERT_TRUE(is_ok(all));
  EXPECT_THAT(*all, ElementsAre(kept, later));
}

TEST_P(StoreContractTest, SchemaVersionIsPositive) { EXPECT_GE(store().schema_version(), 1); }

TEST_P(StoreContractTest, TransactionCommitsWhenBodySucceeds) {
  auto s = store().transaction([&]() -> Status {
    if (auto r = store().meta().put("k", to_bytes("v")); !r) return r;
    return store().data_keys().insert({"dk", "p", to_bytes("w"), kNow});
  });
  ASSERT_TRUE(is_ok(s));
  auto meta = store().meta().get("k");
  ASSERT_TRUE(is_ok(meta));
  EXPECT_TRUE(meta->has_value());
  auto key = store().data_keys().find("dk");
  ASSERT_TRUE(is_ok(key));
  EXPECT_TRUE(key->has_value());
}

TEST_P(StoreContractTest, TransactionSeesItsOwnWrites) {
  auto s = store().transaction([&]() -> Status {
    if (auto r = store().meta().put("k", to_bytes("v")); !r) return r;
    auto got = store().meta().get("k");
    if (!got) return tl::unexpected(got.error());
    if (!got->has_value()) return fail(Errc::not_found, "own write not visible");
    return ok();
  });
  EXPECT_TRUE(is_ok(s));
}

TEST_P(StoreContractTest, TransactionRollsBackEverythingWhenBodyFails) {
  ASSERT_TRUE(is_ok(store().setup_tokens().insert({"tok", kNow, kNow + 100, std::nullopt})));
  ASSERT_TRUE(is_ok(store().certificates().insert(make_cert("01", kCertKindDevice, kNow, kNow + 100, "d"))));
  auto s = store().transaction([&]() -> Status {
    if (auto r = store().meta().put("k", to_bytes("v")); !r) return r;
    if (auto r = store().data_keys().insert({"dk", "p", to_bytes("w"), kNow}); !r) return r;
    if (auto r = store().secrets().put({"s", "dk", to_bytes("x"), kNow}); !r) return r;
    if (auto r = store().certificates().insert(make_cert("02", kCertKindServer, kNow, kNow + 1)); !r) return r;
    if (auto r = store().certificates().revoke("01", kNow, "superseded"); !r) return r;
    if (auto r = store().setup_tokens().consume("tok", kNow); !r || *r != ConsumeOutcome::consumed) {
      return fail(Errc::io_error, "consume inside the transaction failed");
    }
    if (auto r = store().counters().next("c"); !r) return tl::unexpected(r.error());
    return fail(Errc::conflict, "changed my mind");
  });
  ASSERT_TRUE(fails_with(s, Errc::conflict));
  EXPECT_EQ(s.error().message, "changed my mind");

  auto meta = store().meta().get("k");
  ASSERT_TRUE(is_ok(meta));
  EXPECT_FALSE(meta->has_value());
  auto key = store().data_keys().find("dk");
  ASSERT_TRUE(is_ok(key));
  EXPECT_FALSE(key->has_value());
  auto secret = store().secrets().find("s");
  ASSERT_TRUE(is_ok(secret));
  EXPECT_FALSE(secret->has_value());
  auto cert = store().certificates().find_by_serial("02");
  ASSERT_TRUE(is_ok(cert));
  EXPECT_FALSE(cert->has_value());
  auto revoked = store().certificates().find_by_serial("01");
  ASSERT_TRUE(is_ok(revoked));
  ASSERT_TRUE(revoked->has_value());
  EXPECT_FALSE((*revoked)->revoked_at.has_value());
  auto consume = store().setup_tokens().consume("tok", kNow);
  ASSERT_TRUE(is_ok(consume));
  EXPECT_EQ(*consume, ConsumeOutcome::consumed);
  auto counter = store().counters().next("c");
  ASSERT_TRUE(is_ok(counter));
  EXPECT_EQ(*counter, 1u);
}

TEST_P(StoreContractTest, TransactionPropagatesARepositoryErrorAndRollsBack) {
  ASSERT_TRUE(is_ok(store().data_keys().insert({"dk", "p", to_bytes("w"), kNow})));
  auto s = store().transaction([&]() -> Status {
    if (auto r = store().meta().put("k", to_bytes("v")); !r) return r;
    return store().data_keys().insert({"dk", "p", to_bytes("again"), kNow});
  });
  EXPECT_TRUE(fails_with(s, Errc::already_exists));
  auto meta = store().meta().get("k");
  ASSERT_TRUE(is_ok(meta));
  EXPECT_FALSE(meta->has_value());
}

TEST_P(StoreContractTest, NestedTransactionJoinsTheOuterOne) {
  auto s = store().transaction([&]() -> Status {
    auto inner = store().transaction([&]() -> Status { return store().meta().put("inner", to_bytes("1")); });
    if (!inner) return inner;
    return fail(Errc::conflict, "outer fails after inner succeeded");
  });
  EXPECT_TRUE(fails_with(s, Errc::conflict));
  auto got = store().meta().get("inner");
  ASSERT_TRUE(is_ok(got));
  EXPECT_FALSE(got->has_value()) << "the inner transaction committed on its own";
}

TEST_P(StoreContractTest, NestedTransactionFailureUndoesOnlyItsOwnWrites) {
  Status inner_result;
  auto s = store().transaction([&]() -> Status {
    if (auto r = store().meta().put("outer-before", to_bytes("1")); !r) return r;
    inner_result = store().transaction([&]() -> Status {
      if (auto r = store().meta().put("inner", to_bytes("2")); !r) return r;
      return fail(Errc::expired, "inner gives up");
    });
    return store().meta().put("outer-after", to_bytes("3"));
  });
  ASSERT_TRUE(is_ok(s));
  EXPECT_TRUE(fails_with(inner_result, Errc::expired));
  for (const char* key : {"outer-before", "outer-after"}) {
    auto got = store().meta().get(key);
    ASSERT_TRUE(is_ok(got));
    EXPECT_TRUE(got->has_value()) << key;
  }
  auto inner = store().meta().get("inner");
  ASSERT_TRUE(is_ok(inner));
  EXPECT_FALSE(inner->has_value());
}

TEST_P(StoreContractTest, TransactionRollsBackWhenBodyThrows) {
  EXPECT_THROW((void)store().transaction([&]() -> Status {
    (void)store().meta().put("k", to_bytes("v"));
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  auto got = store().meta().get("k");
  ASSERT_TRUE(is_ok(got));
  EXPECT_FALSE(got->has_value());
  // The store is usable afterwards, transactions included.
  EXPECT_TRUE(is_ok(store().transaction([&] { return store().meta().put("k2", to_bytes("v")); })));
  auto k2 = store().meta().get("k2");
  ASSERT_TRUE(is_ok(k2));
  EXPECT_TRUE(k2->has_value());
}

TEST_P(StoreContractTest, TransactionsFromSeveralThreadsDoNotInterleave) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 25;
  std::atomic<int> broken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto s = store().transaction([&]() -> Status {
          auto a = store().counters().next("pair");
          if (!a) return tl::unexpected(a.error());
          std::this_thread::yield();
          auto b = store().counters().next("pair");
          if (!b) return tl::unexpected(b.error());
          if (*b != *a + 1) ++broken;
          return ok();
        });
        if (!s) ++broken;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(broken.load(), 0);
  auto last = store().counters().next("pair");
  ASSERT_TRUE(is_ok(last));
  EXPECT_EQ(*last, static_cast<std::uint64_t>(2 * kThreads * kRounds + 1));
}

// --- Alerts ----------------------------------------------------------------------------

AlertRecord make_alert(std::string id, std::string organisation, std::string key, UnixMillis at = kNow) {
  AlertRecord a;
  a.id = std::move(id);
  a.organisation_id = std::move(organisation);
  a.source = "device";
  a.key = std::move(key);
  a.device_id = "dev-1";
  a.severity = "warning";
  a.title = "Heartbeat missed";
  a.summary = "no heartbeat for 180 s";
  a.opened_at = at;
  return a;
}

TEST_P(StoreContractTest, AlertRaisedTwiceIsOneAlertWithTwoOccurrences) {
  auto& alerts = store().alerts();
  auto first = alerts.raise(make_alert("a-1", "org-1", kTricky));
  ASSERT_TRUE(is_ok(first));
  EXPECT_TRUE(first->second);
  EXPECT_EQ(first->first.status, "open");
  EXPECT_EQ(first->first.occurrences, 1U);
  auto critical = make_alert("a-2", "org-1", kTricky, kNow + 50);
  critical.severity = "critical";
  auto second = alerts.raise(critical);
  ASSERT_TRUE(is_ok(second));
  EXPECT_FALSE(second->second);
  EXPECT_EQ(second->first.id, "a-1");
  EXPECT_EQ(second->first.occurrences, 2U);
  EXPECT_EQ(second->first.opened_at, kNow);
  EXPECT_EQ(second->first.last_raised_at, kNow + 50);
  EXPECT_EQ(second->first.severity, "critical");  // the severity only goes up
  auto info = make_alert("a-3", "org-1", kTricky, kNow + 60);
  info.severity = "info";
  auto third = alerts.raise(info);
  ASSERT_TRUE(is_ok(third));
  EXPECT_EQ(third->first.severity, "critical");
  EXPECT_EQ(third->first.occurrences, 3U);
  auto missing = alerts.find("a-2");
  ASSERT_TRUE(is_ok(missing));
  EXPECT_FALSE(missing->has_value());

  // The same key elsewhere is another alert.
  auto other = alerts.raise(make_alert("a-4", "org-2", kTricky));
  ASSERT_TRUE(is_ok(other));
  EXPECT_TRUE(other->second);
  auto installation = alerts.raise(make_alert("a-5", "", kTricky));
  ASSERT_TRUE(is_ok(installation));
  EXPECT_TRUE(installation->second);
  auto active = alerts.count_active(std::nullopt);
  ASSERT_TRUE(is_ok(active));
  EXPECT_EQ(*active, 3U);
  auto of_org = alerts.count_active("org-1");
  ASSERT_TRUE(is_ok(of_org));
  EXPECT_EQ(*of_org, 1U);
}

TEST_P(StoreContractTest, AlertIsAcknowledgedOnlyWhenOpenAndResolvedOnce) {
  auto& alerts = store().alerts();
  ASSERT_TRUE(is_ok(alerts.raise(make_alert("a-1", "org-1", "k"))));
  auto unknown = alerts.acknowledge("O'Brien", "user:u-1", kNow + 1);
  ASSERT_TRUE(is_ok(unknown));
  EXPECT_FALSE(*unknown);
  auto acked = alerts.acknowledge("a-1", "user:u-1", kNow + 2);
  ASSERT_TRUE(is_ok(acked));
  EXPECT_TRUE(*acked);
  auto again = alerts.acknowledge("a-1", "user:u-2", kNow + 3);
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(*again);
  auto found = alerts.find("a-1");
  ASSERT_TRUE(is_ok(found) && found->has_value());
  EXPECT_EQ((*found)->status, "acknowledged");
  EXPECT_EQ((*found)->acknowledged_by, "user:u-1");
  EXPECT_EQ((*found)->acknowledged_at, kNow + 2);

  // Still active while acknowledged: raised again it counts on the same alert.
  auto raised = alerts.raise(make_alert("a-2", "org-1", "k", kNow + 4));
  ASSERT_TRUE(is_ok(raised));
  EXPECT_FALSE(raised->second);
  EXPECT_EQ(raised->first.status, "acknowledged");

  auto resolved = alerts.resolve("a-1", "admin-cli", kNow + 5);
  ASSERT_TRUE(is_ok(resolved));
  EXPECT_TRUE(*resolved);
  auto twice = alerts.resolve("a-1", "user:u-1", kNow + 6);
  ASSERT_TRUE(is_ok(twice));
  EXPECT_FALSE(*twice);
  auto late_ack = alerts.acknowledge("a-1", "user:u-1", kNow + 7);
  ASSERT_TRUE(is_ok(late_ack));
  EXPECT_FALSE(*late_ack);
  found = alerts.find("a-1");
  ASSERT_TRUE(is_ok(found) && found->has_value());
  EXPECT_EQ((*found)->status, "resolved");
  EXPECT_EQ((*found)->resolved_by, "admin-cli");
  EXPECT_EQ((*found)->resolved_at, kNow + 5);

  // Raised after it was resolved: a new alert.
  auto fresh = alerts.raise(make_alert("a-3", "org-1", "k", kNow + 8));
  ASSERT_TRUE(is_ok(fresh));
  EXPECT_TRUE(fresh->second);
  EXPECT_EQ(fresh->first.id, "a-3");
  EXPECT_EQ(fresh->first.occurrences, 1U);
}

TEST_P(StoreContractTest, AlertIsResolvedByItsKeyWithinItsOrganisation) {
  auto& alerts = store().alerts();
  ASSERT_TRUE(is_ok(alerts.raise(make_alert("a-1", "org-1", "device.tamper:dev-1:lid"))));
  auto elsewhere = alerts.resolve_key("org-2", "device.tamper:dev-1:lid", "system", kNow + 1);
  ASSERT_TRUE(is_ok(elsewhere));
  EXPECT_FALSE(elsewhere->has_value());
  auto resolved = alerts.resolve_key("org-1", "device.tamper:dev-1:lid", "system", kNow + 2);
  ASSERT_TRUE(is_ok(resolved) && resolved->has_value());
  EXPECT_EQ((*resolved)->id, "a-1");
  EXPECT_EQ((*resolved)->status, "resolved");
  EXPECT_EQ((*resolved)->resolved_by, "system");
  auto again = alerts.resolve_key("org-1", "device.tamper:dev-1:lid", "system", kNow + 3);
  ASSERT_TRUE(is_ok(again));
  EXPECT_FALSE(again->has_value());
}

TEST_P(StoreContractTest, AlertsAreListedNewestFirstWithFilters) {
  auto& alerts = store().alerts();
  auto a1 = make_alert("a-1", "org-1", "k1", kNow);
  auto a2 = make_alert("a-2", "org-1", "k2", kNow + 10);
  a2.severity = "critical";
  a2.device_id = "dev-2";
  auto a3 = make_alert("a-3", "org-2", "k3", kNow + 20);
  auto a4 = make_alert("a-4", "", "k4", kNow + 30);
  a4.device_id.clear();
  for (const auto& a : {a1, a2, a3, a4}) ASSERT_TRUE(is_ok(alerts.raise(a)));
  ASSERT_TRUE(is_ok(alerts.acknowledge("a-1", "user:u-1", kNow + 40)));

  const auto ids = [&](const AlertRepository::Query& q) {
    std::vector<std::string> out;
    auto listed = alerts.list(q);
    EXPECT_TRUE(is_ok(listed));
    if (listed) {
      for (const auto& a : *listed) out.push_back(a.id);
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids({}), (V{"a-4", "a-3", "a-2", "a-1"}));
  AlertRepository::Query q;
  q.organisation_id = "org-1";
  EXPECT_EQ(ids(q), (V{"a-2", "a-1"}));
  q.organisation_id = "";
  EXPECT_EQ(ids(q), (V{"a-4"}));
  q = {};
  q.statuses = {"acknowledged"};
  EXPECT_EQ(ids(q), (V{"a-1"}));
  q.statuses = {"open", "resolved"};
  EXPECT_EQ(ids(q), (V{"a-4", "a-3", "a-2"}));
  q = {};
  q.device_id = "dev-2";
  EXPECT_EQ(ids(q), (V{"a-2"}));
  q = {};
  q.severity = "critical";
  EXPECT_EQ(ids(q), (V{"a-2"}));
  q = {};
  q.before = kNow + 20;
  EXPECT_EQ(ids(q), (V{"a-2", "a-1"}));
  q.limit = 1;
  EXPECT_EQ(ids(q), (V{"a-2"}));
  q = {};
  q.statuses = {"O'Brien"};
  EXPECT_TRUE(ids(q).empty());
}

TEST_P(StoreContractTest, AlertInputIsCheckedAndADevicesAlertsGoWithIt) {
  auto& alerts = store().alerts();
  auto bad = make_alert("a-1", "org-1", "");
  EXPECT_TRUE(fails_with(alerts.raise(bad), Errc::invalid_argument));
  bad = make_alert("a-1", "org-1", "k");
  bad.severity = "loud";
  EXPECT_TRUE(fails_with(alerts.raise(bad), Errc::invalid_argument));
  bad = make_alert("a-1", "org-1", "k");
  bad.source = "elsewhere";
  EXPECT_TRUE(fails_with(alerts.raise(bad), Errc::invalid_argument));
  bad = make_alert("", "org-1", "k");
  EXPECT_TRUE(fails_with(alerts.raise(bad), Errc::invalid_argument));

  ASSERT_TRUE(is_ok(store().devices().insert(make_device("dev-1"))));
  ASSERT_TRUE(is_ok(alerts.raise(make_alert("a-1", "org-1", "k1"))));
  auto other = make_alert("a-2", "org-1", "k2");
  other.device_id = "dev-2";
  ASSERT_TRUE(is_ok(alerts.raise(other)));
  EXPECT_TRUE(fails_with(alerts.raise(make_alert("a-2", "org-1", "k3")), Errc::already_exists));
  ASSERT_TRUE(is_ok(store().devices().remove("dev-1")));
  auto gone = alerts.find("a-1");
  ASSERT_TRUE(is_ok(gone));
  EXPECT_FALSE(gone->has_value());
  auto kept = alerts.find("a-2");
  ASSERT_TRUE(is_ok(kept));
  EXPECT_TRUE(kept->has_value());
}

}  // namespace
}  // namespace torii::store::testing

// The backend-agnostic store contract. Nothing here may know which backend it runs on.
#include "store/contract_test.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>

namespace torii::store::testing {
namespace {

using namespace std::string_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Quotes, a NUL in the middle, SQL syntax: survives only if values are bound, not pasted.
const std::string kTricky = "O'Brien\0x\"; DROP TABLE meta; --"s;
constexpr UnixMillis kNow = 1'790'000'000'000;

Bytes to_bytes(std::string_view s) {
  const ByteView v = as_bytes(s);
  return Bytes(v.begin(), v.end());
}

Bytes all_byte_values() {
  Bytes b;
  for (int i = 0; i < 256; ++i) b.push_back(static_cast<std::uint8_t>(i));
  return b;
}

template <class T>
::testing::AssertionResult is_ok(const tl::expected<T, Error>& r) {
  if (r) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "error " << r.error().code.message() << ": " << r.error().message;
}

template <class T>
::testing::AssertionResult fails_with(const tl::expected<T, Error>& r, Errc expected) {
  if (r) return ::testing::AssertionFailure() << "succeeded, expected " << make_error_code(expected).message();
  if (r.error().is(expected)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "failed with " << r.error().code.message() << " (" << r.error().message
                                       << "), expected " << make_error_code(expected).message();
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

// ----------------------------------------------------------------------------- transactions

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

}  // namespace
}  // namespace torii::store::testing

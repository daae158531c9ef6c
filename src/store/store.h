// The embedded store: one repository per aggregate, behind interfaces that name no database.
//
// Every backend (SQLite today, PostgreSQL later) must pass the same contract suite
// (store/contract_test.h). Methods never throw; failures come back as Errc values:
//   invalid_argument  a value the schema cannot hold (empty key, unknown certificate kind)
//   already_exists    insert of a primary key or unique value that is already stored
//   not_found         an operation that needs an existing row did not find one
//   conflict          the write would break a relation between rows: a row naming a device
//                     that is not stored, removing a profile that devices still use,
//                     replacing a profile of another organisation
//   unavailable       the database stayed locked by another process past the busy timeout
//   corrupt           the database file is damaged or not a database
//   io_error          anything else the backend reported
// Messages name tables and columns, never stored values (they may be secrets).
//
// Thread safety: a Store and its repositories may be used from several threads. A
// transaction() body runs with the store held exclusively, so calls from other threads wait
// until it finishes and never observe or join its uncommitted writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/error.h"

namespace torii::store {

// Installation-wide key/value pairs: installation id, KEK salt, KEK check value, public keys.
class MetaRepository {
 public:
  virtual ~MetaRepository() = default;
  [[nodiscard]] virtual Result<std::optional<Bytes>> get(std::string_view key) = 0;
  // Inserts or replaces.
  [[nodiscard]] virtual Status put(std::string_view key, ByteView value) = 0;
  // True when a row was deleted, false when there was none.
  [[nodiscard]] virtual Result<bool> remove(std::string_view key) = 0;
};

// A data-encryption key wrapped (encrypted) under the KEK, for envelope encryption.
struct WrappedKey {
  std::string id;
  std::string purpose;
  Bytes wrapped;
  UnixMillis created_at = 0;

  friend bool operator==(const WrappedKey&, const WrappedKey&) = default;
};

class DataKeyRepository {
 public:
  virtual ~DataKeyRepository() = default;
  // already_exists when the id is taken (the stored key is left unchanged).
  [[nodiscard]] virtual Status insert(const WrappedKey& key) = 0;
  [[nodiscard]] virtual Result<std::optional<WrappedKey>> find(std::string_view id) = 0;
  // True when a row was deleted. The backend must not leave the wrapped bytes readable in its
  // files afterwards (SQLite: secure_delete plus a WAL checkpoint after the commit).
  [[nodiscard]] virtual Result<bool> remove(std::string_view id) = 0;
  // Ids of every key with this purpose, oldest first (ties by id).
  [[nodiscard]] virtual Result<std::vector<std::string>> list_ids(std::string_view purpose) = 0;
};

// A system secret (CA private key, TLS server key, log signing key) sealed under a data key.
struct SealedSecret {
  std::string name;
  std::string key_id;  // the WrappedKey that seals it
  Bytes sealed;
  UnixMillis updated_at = 0;

  friend bool operator==(const SealedSecret&, const SealedSecret&) = default;
};

class SecretRepository {
 public:
  virtual ~SecretRepository() = default;
  // Inserts or replaces; a replaced value is erased like a removed one.
  [[nodiscard]] virtual Status put(const SealedSecret& secret) = 0;
  [[nodiscard]] virtual Result<std::optional<SealedSecret>> find(std::string_view name) = 0;
  // True when a row was deleted; the sealed bytes are erased as for DataKeyRepository::remove.
  [[nodiscard]] virtual Result<bool> remove(std::string_view name) = 0;
};

// The kinds a CertificateRecord may have; anything else is invalid_argument.
inline constexpr std::string_view kCertKindRootCa = "root-ca";
inline constexpr std::string_view kCertKindIssuingCa = "issuing-ca";
inline constexpr std::string_view kCertKindServer = "server";
inline constexpr std::string_view kCertKindDevice = "device";
[[nodiscard]] bool is_certificate_kind(std::string_view kind);

// A certificate the built-in CA issued.
struct CertificateRecord {
  std::string serial_hex;
  std::string kind;  // one of the kCertKind* values
  std::string subject;
  std::optional<std::string> device_id;
  std::string issuer_serial_hex;  // a root CA names itself
  std::string pem;
  std::string fingerprint_sha256;
  UnixMillis not_before = 0;
  UnixMillis not_after = 0;
  std::optional<UnixMillis> revoked_at;
  std::string revocation_reason;

  friend bool operator==(const CertificateRecord&, const CertificateRecord&) = default;
};

// The checks every backend applies before CertificateRepository::insert (invalid_argument).
[[nodiscard]] Status validate_certificate(const CertificateRecord& cert);

class CertificateRepository {
 public:
  virtual ~CertificateRepository() = default;
  // already_exists on a duplicate serial or fingerprint; invalid_argument on an unknown kind,
  // an empty serial or not_after < not_before.
  [[nodiscard]] virtual Status insert(const CertificateRecord& cert) = 0;
  [[nodiscard]] virtual Result<std::optional<CertificateRecord>> find_by_serial(std::string_view serial_hex) = 0;
  [[nodiscard]] virtual Result<std::optional<CertificateRecord>> find_by_fingerprint(
      std::string_view fingerprint_sha256) = 0;
  // not_found for an unknown serial. Revoking an already revoked certificate returns ok and
  // keeps the first time and reason (the CRL must not change a published date).
  [[nodiscard]] virtual Status revoke(std::string_view serial_hex, UnixMillis at, std::string_view reason) = 0;
  // Revoked certificates issued by this CA, by revocation time then serial (CRL input).
  [[nodiscard]] virtual Result<std::vector<CertificateRecord>> list_revoked(std::string_view issuer_serial_hex) = 0;
  // Certificates with not_after < before (already expired ones included), soonest first,
  // ties by serial. Revoked ones only when include_revoked.
  [[nodiscard]] virtual Result<std::vector<CertificateRecord>> list_expiring(UnixMillis before,
                                                                             bool include_revoked = false) = 0;
  // The unrevoked certificate of this kind with the newest not_before (ties: the one inserted
  // last); nullopt when there is none. Expiry is not considered: the caller decides.
  [[nodiscard]] virtual Result<std::optional<CertificateRecord>> latest(std::string_view kind) = 0;
  // Every certificate (revoked included) issued to the device, by not_before then serial.
  [[nodiscard]] virtual Result<std::vector<CertificateRecord>> list_for_device(std::string_view device_id) = 0;
  // Of each device, its unrevoked device certificate that ends last (ties: the greater serial),
  // when that one ends by `by` (not_after <= by); by device id. A device renewed since is
  // left out: its newer certificate ends later. One statement, whatever the fleet's size.
  [[nodiscard]] virtual Result<std::vector<CertificateRecord>> list_last_of_devices_ending_by(UnixMillis by) = 0;
  // Revokes (at `at`, reason "superseded") the device's unrevoked device certificates issued
  // before `not_before` (theirs < it): those a newer certificate of the device in use
  // replaces. Returns their serials, by not_before then serial; nothing is written when there
  // are none, the usual case.
  [[nodiscard]] virtual Result<std::vector<std::string>> revoke_superseded(std::string_view device_id,
                                                                           UnixMillis not_before, UnixMillis at) = 0;
};

// A one-time setup link. Only a hash of the token is stored.
struct SetupToken {
  std::string token_hash;
  UnixMillis created_at = 0;
  UnixMillis expires_at = 0;  // valid while now < expires_at
  std::optional<UnixMillis> used_at;

  friend bool operator==(const SetupToken&, const SetupToken&) = default;
};

enum class ConsumeOutcome { consumed, unknown, expired, already_used };
[[nodiscard]] std::string_view to_string(ConsumeOutcome outcome);

class SetupTokenRepository {
 public:
  virtual ~SetupTokenRepository() = default;
  // already_exists on a duplicate hash.
  [[nodiscard]] virtual Status insert(const SetupToken& token) = 0;
  // Atomically marks the token used at `now` if it is unused and unexpired. Of two
  // concurrent consumers exactly one gets `consumed`. A token both used and expired reports
  // already_used.
  [[nodiscard]] virtual Result<ConsumeOutcome> consume(std::string_view token_hash, UnixMillis now) = 0;
  // Marks every unused token (expired ones too) used at `now`; returns how many.
  [[nodiscard]] virtual Result<std::size_t> revoke_all(UnixMillis now) = 0;
  // Unused tokens with now < expires_at.
  [[nodiscard]] virtual Result<std::size_t> count_active(UnixMillis now) = 0;
};

// Durable monotonic counters (CRL number, ...).
class CounterRepository {
 public:
  virtual ~CounterRepository() = default;
  // Atomically increments and returns the new value; the first call for a name returns 1.
  // Inside a transaction that rolls back, the increment is undone too.
  [[nodiscard]] virtual Result<std::uint64_t> next(std::string_view name) = 0;
};

// The statuses a DeviceRecord may have; anything else is invalid_argument.
inline constexpr std::string_view kDeviceStatusActive = "active";
inline constexpr std::string_view kDeviceStatusDisabled = "disabled";
[[nodiscard]] bool is_device_status(std::string_view status);

// A device registered with the gateway.
struct DeviceRecord {
  std::string id;
  std::string organisation_id;
  std::string name;
  std::string profile_id;  // a DeviceProfileRecord id, or empty; not checked against stored profiles
  std::string segment;
  std::string serial_number;
  std::string firmware_version;
  std::string status = std::string(kDeviceStatusActive);  // one of the kDeviceStatus* values
  UnixMillis created_at = 0;
  std::optional<UnixMillis> last_seen_at;
  std::optional<UnixMillis> disabled_at;  // set exactly when status is disabled
  std::string disabled_reason;
  // Labels rules select devices by (rules::Selector::tags): sorted, distinct, each a
  // policy::valid_tag, at most kMaxDeviceTags.
  std::vector<std::string> tags;

  friend bool operator==(const DeviceRecord&, const DeviceRecord&) = default;
};

inline constexpr std::size_t kMaxDeviceTags = 16;

// The checks every backend applies before DeviceRepository::insert (invalid_argument).
[[nodiscard]] Status validate_device(const DeviceRecord& device);
// ... and before DeviceRepository::set_tags: the store's part of them (the column's form);
// what a tag may be is policy::valid_tag.
[[nodiscard]] Status validate_device_tags(const std::vector<std::string>& tags);

class DeviceRepository {
 public:
  virtual ~DeviceRepository() = default;
  // already_exists on a duplicate id; invalid_argument when validate_device refuses it.
  [[nodiscard]] virtual Status insert(const DeviceRecord& device) = 0;
  [[nodiscard]] virtual Result<std::optional<DeviceRecord>> find(std::string_view id) = 0;
  // The organisation's devices, by id.
  [[nodiscard]] virtual Result<std::vector<DeviceRecord>> list(std::string_view organisation_id) = 0;
  // Every device, by id.
  [[nodiscard]] virtual Result<std::vector<DeviceRecord>> list_all() = 0;
  // not_found for an unknown id, invalid_argument for an unknown status. Disabling records
  // `at` and `reason`; disabling a disabled device returns ok and keeps the first time and
  // reason. Activating clears both (`at` and `reason` are then ignored).
  [[nodiscard]] virtual Status set_status(std::string_view id, std::string_view status, UnixMillis at,
                                          std::string_view reason) = 0;
  // Sets last_seen_at to `at` unless it already holds a later time (messages may be stored
  // out of order). not_found for an unknown id.
  [[nodiscard]] virtual Status touch_last_seen(std::string_view id, UnixMillis at) = 0;
  // not_found for an unknown id.
  [[nodiscard]] virtual Status update_firmware(std::string_view id, std::string_view firmware_version) = 0;
  // Replaces the device's tags (sorted and distinct, as validate_device wants them);
  // not_found for an unknown id, invalid_argument for tags validate_device refuses.
  [[nodiscard]] virtual Status set_tags(std::string_view id, const std::vector<std::string>& tags) = 0;
  // True when a device was deleted. Its telemetry, latest values, counters and the routes
  // naming it go with it, atomically; its certificates stay (the CA's records are kept for revocation lists).
  [[nodiscard]] virtual Result<bool> remove(std::string_view id) = 0;
  // Active devices not seen since before `cutoff`: last_seen_at < cutoff, or, for a device
  // never seen, created_at < cutoff. Least recently active first, ties by id.
  [[nodiscard]] virtual Result<std::vector<DeviceRecord>> list_unused_since(UnixMillis cutoff) = 0;
};

// What a kind of device sends and may do. The definition is JSON the store does not parse.
struct DeviceProfileRecord {
  std::string id;
  std::string organisation_id;
  std::string name;
  std::string definition_json;
  int version = 1;  // assigned by the store: 1 when first stored, +1 on each replacement
  UnixMillis updated_at = 0;

  friend bool operator==(const DeviceProfileRecord&, const DeviceProfileRecord&) = default;
};

class DeviceProfileRepository {
 public:
  virtual ~DeviceProfileRepository() = default;
  // Inserts (version 1) or replaces every field of the stored profile with this id
  // (version + 1); profile.version is ignored. Returns the stored version. invalid_argument
  // for an empty id or organisation id; conflict when the id is stored under another
  // organisation (nothing is changed).
  [[nodiscard]] virtual Result<int> put(const DeviceProfileRecord& profile) = 0;
  [[nodiscard]] virtual Result<std::optional<DeviceProfileRecord>> find(std::string_view id) = 0;
  // The organisation's profiles, by id.
  [[nodiscard]] virtual Result<std::vector<DeviceProfileRecord>> list(std::string_view organisation_id) = 0;
  // True when a profile was deleted, false when there was none. conflict (nothing deleted)
  // while a stored device names the profile.
  [[nodiscard]] virtual Result<bool> remove(std::string_view id) = 0;
};

// The kinds a TelemetryRecord may have (the MQTT topic it arrived on); anything else is
// invalid_argument.
inline constexpr std::string_view kTelemetryKindTelemetry = "telemetry";
inline constexpr std::string_view kTelemetryKindEvents = "events";
inline constexpr std::string_view kTelemetryKindState = "state";
inline constexpr std::string_view kTelemetryKindResults = "results";  // command results
// Values a rule's metric actions computed from a device's telemetry (rules.md), stored under
// the device: not sent by it.
inline constexpr std::string_view kTelemetryKindDerived = "derived";
[[nodiscard]] bool is_telemetry_kind(std::string_view kind);

// One message a device sent, sealed by the caller under a data key.
struct TelemetryRecord {
  // Assigned by the store: positive, increasing in the order records are appended, never
  // reused. Ignored by append.
  std::int64_t seq = 0;
  std::string device_id;
  std::string kind;         // one of the kTelemetryKind* values
  std::string message_key;  // de-duplication key within the device; empty: none
  UnixMillis received_at = 0;
  std::string key_id;  // the WrappedKey that seals it
  Bytes sealed;

  friend bool operator==(const TelemetryRecord&, const TelemetryRecord&) = default;
};

class TelemetryRepository {
 public:
  virtual ~TelemetryRepository() = default;
  // Stores the records in the order given and returns one seq per record, in that order. A
  // record whose message_key is not empty and already stored for its device (by an earlier
  // call or earlier in this one) is not stored again and gets seq 0: the caller still
  // acknowledges it. All or nothing: invalid_argument (empty device id, unknown kind) before
  // anything is written; conflict when a record names a device that is not stored.
  // Built for group commit: call it inside Store::transaction together with
  // LatestValueRepository::upsert, with batches of up to a few thousand records.
  [[nodiscard]] virtual Result<std::vector<std::int64_t>> append(std::span<const TelemetryRecord> records) = 0;
  // The device's records with from <= received_at < to, by received_at then seq, at most
  // `limit` of them (the earliest).
  [[nodiscard]] virtual Result<std::vector<TelemetryRecord>> range(std::string_view device_id, UnixMillis from,
                                                                   UnixMillis to, std::size_t limit) = 0;
  [[nodiscard]] virtual Result<std::size_t> count(std::string_view device_id) = 0;
  // Deletes the device's records; returns how many.
  [[nodiscard]] virtual Result<std::size_t> remove_device(std::string_view device_id) = 0;
  // Retention: deletes every record with received_at < cutoff; returns how many. Their
  // message keys are forgotten with them (a later record may reuse one).
  [[nodiscard]] virtual Result<std::size_t> remove_older_than(UnixMillis cutoff) = 0;
};

// The newest value of one metric of one device, sealed by the caller.
struct LatestValue {
  std::string device_id;
  std::string metric;
  std::string key_id;
  Bytes sealed;
  UnixMillis at = 0;

  friend bool operator==(const LatestValue&, const LatestValue&) = default;
};

class LatestValueRepository {
 public:
  virtual ~LatestValueRepository() = default;
  // For each value in order: stores it unless the stored value for its (device, metric) has
  // a later `at` (an equal `at` replaces). All or nothing: invalid_argument for an empty
  // device id or metric, conflict when a value names a device that is not stored.
  [[nodiscard]] virtual Status upsert(std::span<const LatestValue> values) = 0;
  // The device's values, by metric.
  [[nodiscard]] virtual Result<std::vector<LatestValue>> list(std::string_view device_id) = 0;
};

// Running totals per device, for quotas and the console.
struct DeviceCounters {
  std::string device_id;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t refusals = 0;
  std::uint64_t connects = 0;
  UnixMillis updated_at = 0;

  friend bool operator==(const DeviceCounters&, const DeviceCounters&) = default;
};

class DeviceCounterRepository {
 public:
  virtual ~DeviceCounterRepository() = default;
  // Adds each delta to the device's stored totals (from zero for a device without any);
  // updated_at becomes the later of the stored and the delta's. All or nothing:
  // invalid_argument for an empty device id or a total that would exceed INT64_MAX,
  // conflict when a delta names a device that is not stored.
  [[nodiscard]] virtual Status add(std::span<const DeviceCounters> deltas) = 0;
  // nullopt for a device that has no totals yet.
  [[nodiscard]] virtual Result<std::optional<DeviceCounters>> find(std::string_view device_id) = 0;
};

// Lets the `to` side read the telemetry, events and state of the `from` side (IIIT N3, N9).
// Each side is a device id or a segment name, within one organisation.
inline constexpr std::string_view kRouteEndDevice = "device";
inline constexpr std::string_view kRouteEndSegment = "segment";

struct RouteRecord {
  std::string organisation_id;
  std::string from_kind;  // kRouteEndDevice or kRouteEndSegment
  std::string from_value;
  std::string to_kind;
  std::string to_value;
  UnixMillis created_at = 0;
  std::string created_by;

  friend bool operator==(const RouteRecord&, const RouteRecord&) = default;
};

[[nodiscard]] bool is_route_end_kind(std::string_view kind);
// The checks every backend applies before RouteRepository::insert (invalid_argument).
[[nodiscard]] Status validate_route_record(const RouteRecord& route);

class RouteRepository {
 public:
  virtual ~RouteRepository() = default;
  // True when stored, false when the same route (organisation, from, to) exists already (it
  // is left as it was). invalid_argument for an empty field or an unknown kind.
  [[nodiscard]] virtual Result<bool> insert(const RouteRecord& route) = 0;
  // True when a route with these ends was deleted (created_at and created_by are ignored).
  [[nodiscard]] virtual Result<bool> remove(const RouteRecord& route) = 0;
  // The organisation's routes, ordered by from and to.
  [[nodiscard]] virtual Result<std::vector<RouteRecord>> list(std::string_view organisation_id) = 0;
  // Every route, by organisation, from and to.
  [[nodiscard]] virtual Result<std::vector<RouteRecord>> list_all() = 0;
};

// What the gateway keeps of its MQTT state across restarts, sealed by the caller under the
// device's data key: retained messages (kind "retained", name = the topic) and persistent
// sessions (kind "session", name empty). Rows go with their device.
inline constexpr std::string_view kMqttStateRetained = "retained";
inline constexpr std::string_view kMqttStateSession = "session";

struct MqttStateRecord {
  std::string device_id;
  std::string kind;
  std::string name;
  std::string key_id;
  Bytes sealed;
  UnixMillis expires_at = 0;  // 0: does not expire
  UnixMillis updated_at = 0;

  friend bool operator==(const MqttStateRecord&, const MqttStateRecord&) = default;
};

class MqttStateRepository {
 public:
  virtual ~MqttStateRepository() = default;
  // Stores the record, replacing the one with the same (device, kind, name). invalid_argument
  // for an empty device id or an unknown kind, conflict for a device that is not stored.
  [[nodiscard]] virtual Status put(const MqttStateRecord& record) = 0;
  // True when a record was deleted.
  [[nodiscard]] virtual Result<bool> remove(std::string_view device_id, std::string_view kind,
                                            std::string_view name) = 0;
  // Every record of a kind, by device and name.
  [[nodiscard]] virtual Result<std::vector<MqttStateRecord>> list(std::string_view kind) = 0;
  // Deletes the records that expired before `now`; returns how many.
  [[nodiscard]] virtual Result<std::size_t> remove_expired(UnixMillis now) = 0;
};

// --- People (console) ----------------------------------------------------------------------

// A tenant. Devices, profiles, routes and people each belong to exactly one.
struct OrganisationRecord {
  std::string id;  // lower-case letters, digits and '-'; chosen by the creator
  std::string name;
  bool require_second_factor = false;  // for everyone; administrators always need one
  UnixMillis created_at = 0;

  friend bool operator==(const OrganisationRecord&, const OrganisationRecord&) = default;
};

// The checks every backend applies before OrganisationRepository::insert and update
// (invalid_argument).
[[nodiscard]] Status validate_organisation(const OrganisationRecord& organisation);

class OrganisationRepository {
 public:
  virtual ~OrganisationRepository() = default;
  // already_exists on a duplicate id; invalid_argument for an empty id or name.
  [[nodiscard]] virtual Status insert(const OrganisationRecord& organisation) = 0;
  [[nodiscard]] virtual Result<std::optional<OrganisationRecord>> find(std::string_view id) = 0;
  // By id.
  [[nodiscard]] virtual Result<std::vector<OrganisationRecord>> list() = 0;
  // Replaces name and require_second_factor. not_found for an unknown id.
  [[nodiscard]] virtual Status update(const OrganisationRecord& organisation) = 0;
};

// The statuses a UserRecord may have; anything else is invalid_argument.
inline constexpr std::string_view kUserStatusActive = "active";
inline constexpr std::string_view kUserStatusDisabled = "disabled";
[[nodiscard]] bool is_user_status(std::string_view status);

// A person's account. Secrets are never stored in the clear: the password as an Argon2id
// string, the TOTP secret sealed by the caller under a data key.
struct UserRecord {
  std::string id;
  std::string organisation_id;
  std::string username;  // unique across the installation, compared as stored (the caller folds case)
  std::string email;
  std::string role;
  std::string password_hash;  // libsodium's Argon2id string
  UnixMillis password_changed_at = 0;
  std::string totp_key_id;  // the WrappedKey sealing totp_sealed; empty without a TOTP secret
  Bytes totp_sealed;
  bool totp_enabled = false;        // enrolment confirmed with a valid code
  std::int64_t totp_last_step = 0;  // the last accepted TOTP time step (replays are refused)
  std::string status = std::string(kUserStatusActive);
  std::string disabled_reason;
  int failed_logins = 0;  // consecutive, reset by a successful login
  int lockouts = 0;       // consecutive lockouts: each one lasts longer
  UnixMillis locked_until = 0;
  UnixMillis created_at = 0;
  std::optional<UnixMillis> last_login_at;
  std::optional<UnixMillis> expires_at;  // the account's end date, if any

  friend bool operator==(const UserRecord&, const UserRecord&) = default;
};

// One previous password of a user (JPCERT I-3: the last ones may not be reused).
struct PasswordHistoryEntry {
  std::string password_hash;
  UnixMillis changed_at = 0;

  friend bool operator==(const PasswordHistoryEntry&, const PasswordHistoryEntry&) = default;
};

// The checks every backend applies before UserRepository::insert and update (invalid_argument).
[[nodiscard]] Status validate_user(const UserRecord& user);

class UserRepository {
 public:
  virtual ~UserRepository() = default;
  // already_exists on a duplicate id or username; invalid_argument for an empty id, username,
  // role or password hash or an unknown status; conflict for an organisation not stored.
  [[nodiscard]] virtual Status insert(const UserRecord& user) = 0;
  [[nodiscard]] virtual Result<std::optional<UserRecord>> find(std::string_view id) = 0;
  [[nodiscard]] virtual Result<std::optional<UserRecord>> find_by_username(std::string_view username) = 0;
  // Every user with this e-mail address, compared without regard to ASCII case (addresses
  // are not unique: one person may hold accounts in several organisations). By id.
  [[nodiscard]] virtual Result<std::vector<UserRecord>> find_by_email(std::string_view email) = 0;
  // The organisation's users, by username.
  [[nodiscard]] virtual Result<std::vector<UserRecord>> list(std::string_view organisation_id) = 0;
  [[nodiscard]] virtual Result<std::size_t> count() = 0;
  // How many active users hold this role in the organisation (the last administrator of an
  // organisation may not be demoted, disabled or deleted). Disabled users are not counted.
  [[nodiscard]] virtual Result<std::size_t> count_active_with_role(std::string_view organisation_id,
                                                                   std::string_view role) = 0;
  // Replaces every field but id, organisation_id and created_at. not_found for an unknown id;
  // already_exists when the new username is another user's; invalid_argument as for insert.
  [[nodiscard]] virtual Status update(const UserRecord& user) = 0;
  // True when a user was deleted; their password history, recovery codes, console sessions,
  // password reset tokens and API tokens go with them.
  [[nodiscard]] virtual Result<bool> remove(std::string_view id) = 0;
  // Active users who have not signed in since before `cutoff` (never signed in: created
  // before it). Least recently active first, ties by id.
  [[nodiscard]] virtual Result<std::vector<UserRecord>> list_unused_since(UnixMillis cutoff) = 0;

  // Adds a previous password and keeps only the newest `keep` entries of the user.
  // conflict for a user not stored.
  [[nodiscard]] virtual Status add_password_history(std::string_view user_id, const PasswordHistoryEntry& entry,
                                                    std::size_t keep) = 0;
  // Newest first.
  [[nodiscard]] virtual Result<std::vector<PasswordHistoryEntry>> password_history(std::string_view user_id) = 0;

  // Replaces the user's recovery codes (hashes of them) by these, all unused. conflict for a
  // user not stored.
  [[nodiscard]] virtual Status replace_recovery_codes(std::string_view user_id,
                                                      std::span<const std::string> code_hashes) = 0;
  // Marks the code used at `at` if it is the user's and unused; true exactly then. Of two
  // concurrent callers with the same code, one gets true.
  [[nodiscard]] virtual Result<bool> use_recovery_code(std::string_view user_id, std::string_view code_hash,
                                                       UnixMillis at) = 0;
  [[nodiscard]] virtual Result<std::size_t> count_unused_recovery_codes(std::string_view user_id) = 0;
};

// The stages a console session may be in; anything else is invalid_argument.
inline constexpr std::string_view kSessionStageSecondFactor = "second-factor";  // password given, TOTP due
inline constexpr std::string_view kSessionStageEnrol = "enrol";                 // signed in, must enrol TOTP first
inline constexpr std::string_view kSessionStageFull = "full";
[[nodiscard]] bool is_session_stage(std::string_view stage);

// A signed-in browser or client. Only a hash of the session id (the cookie value) is stored.
struct ConsoleSessionRecord {
  std::string id_hash;
  std::string handle;  // a public name for the session (list, revoke), unrelated to the id
  std::string user_id;
  std::string stage;
  UnixMillis created_at = 0;
  UnixMillis last_seen_at = 0;
  UnixMillis authenticated_at = 0;  // the last password or TOTP proof (step-up)
  std::string source;               // address the session was created from
  std::string user_agent;

  friend bool operator==(const ConsoleSessionRecord&, const ConsoleSessionRecord&) = default;
};

// The checks every backend applies before ConsoleSessionRepository::insert (invalid_argument).
[[nodiscard]] Status validate_console_session(const ConsoleSessionRecord& session);

class ConsoleSessionRepository {
 public:
  virtual ~ConsoleSessionRepository() = default;
  // already_exists on a duplicate id hash or handle; invalid_argument for an empty id hash,
  // handle or user id or an unknown stage; conflict for a user not stored.
  [[nodiscard]] virtual Status insert(const ConsoleSessionRecord& session) = 0;
  [[nodiscard]] virtual Result<std::optional<ConsoleSessionRecord>> find(std::string_view id_hash) = 0;
  // Replaces stage, last_seen_at and authenticated_at. not_found for an unknown id hash.
  [[nodiscard]] virtual Status update(const ConsoleSessionRecord& session) = 0;
  // True when a session was deleted.
  [[nodiscard]] virtual Result<bool> remove(std::string_view id_hash) = 0;
  // The user's session with this handle; true when one was deleted.
  [[nodiscard]] virtual Result<bool> remove_by_handle(std::string_view user_id, std::string_view handle) = 0;
  // Every session of the user except the one with `keep_id_hash` (may be empty); returns how many.
  [[nodiscard]] virtual Result<std::size_t> remove_for_user(std::string_view user_id,
                                                            std::string_view keep_id_hash) = 0;
  // The user's sessions, newest first (ties by handle).
  [[nodiscard]] virtual Result<std::vector<ConsoleSessionRecord>> list_for_user(std::string_view user_id) = 0;
  // Deletes sessions idle since before idle_cutoff or created before absolute_cutoff.
  [[nodiscard]] virtual Result<std::size_t> remove_expired(UnixMillis idle_cutoff, UnixMillis absolute_cutoff) = 0;
};

// A one-time token that lets a person set a new password (a new account's first password,
// or a reset). Only a hash of the token is stored. JPCERT I-2/I-3, IIIT DI7.
struct PasswordResetToken {
  std::string token_hash;
  std::string user_id;
  UnixMillis created_at = 0;
  UnixMillis expires_at = 0;  // valid while now < expires_at
  std::optional<UnixMillis> used_at;
  std::string issued_by;  // "user:<id>" or "admin-cli:<login>"

  friend bool operator==(const PasswordResetToken&, const PasswordResetToken&) = default;
};

// The checks every backend applies before PasswordResetRepository::issue (invalid_argument).
[[nodiscard]] Status validate_password_reset_token(const PasswordResetToken& token);

class PasswordResetRepository {
 public:
  virtual ~PasswordResetRepository() = default;
  // Revokes (marks used at `created_at`) every unused token of the user, then stores this one:
  // a person has at most one valid reset token. All or nothing: already_exists on a duplicate
  // hash; invalid_argument for an empty hash or user id; conflict for a user not stored.
  [[nodiscard]] virtual Status issue(const PasswordResetToken& token) = 0;
  // Atomically marks the token used at `now` if it is unused and unexpired, and returns the
  // user id it was issued for; otherwise the outcome says why and user_id is empty. A token
  // both used and expired reports already_used. Of two concurrent consumers exactly one gets
  // consumed.
  struct Consumed {
    ConsumeOutcome outcome = ConsumeOutcome::unknown;
    std::string user_id;
  };
  [[nodiscard]] virtual Result<Consumed> consume(std::string_view token_hash, UnixMillis now) = 0;
  // The token as stored (used or not), to check it before the work its use needs.
  [[nodiscard]] virtual Result<std::optional<PasswordResetToken>> find(std::string_view token_hash) = 0;
  // Unused tokens of the user with now < expires_at.
  [[nodiscard]] virtual Result<std::size_t> count_active(std::string_view user_id, UnixMillis now) = 0;
};

// A device's one-time enrolment token (IIIT DI1, J9): the device sends it with a CSR made on
// the device and gets its certificate. Only a hash of the token is stored; a device has at
// most one token.
struct EnrolmentToken {
  std::string token_hash;
  std::string device_id;
  std::string organisation_id;
  UnixMillis created_at = 0;
  UnixMillis expires_at = 0;  // valid while now < expires_at
  std::optional<UnixMillis> used_at;
  std::string created_by;  // "user:<id>" or "admin-cli:<login>"

  friend bool operator==(const EnrolmentToken&, const EnrolmentToken&) = default;
};

class EnrolmentTokenRepository {
 public:
  virtual ~EnrolmentTokenRepository() = default;
  // Stores the token in place of the device's earlier one (used or not), which stops
  // working. invalid_argument for an empty hash or device id; already_exists for a hash
  // another device's token has; conflict for a device not stored.
  [[nodiscard]] virtual Status issue(const EnrolmentToken& token) = 0;
  // Atomically marks the token used at `now` if it is unused and unexpired, and returns the
  // device it was issued for; otherwise the outcome says why and device_id is empty. A token
  // both used and expired reports already_used. Of two concurrent consumers exactly one gets
  // consumed.
  struct Consumed {
    ConsumeOutcome outcome = ConsumeOutcome::unknown;
    std::string device_id;
  };
  [[nodiscard]] virtual Result<Consumed> consume(std::string_view token_hash, UnixMillis now) = 0;
  // The token as stored (used or not), to check it before the work its use needs.
  [[nodiscard]] virtual Result<std::optional<EnrolmentToken>> find(std::string_view token_hash) = 0;
  // The device's token, used or not; nullopt when it has none.
  [[nodiscard]] virtual Result<std::optional<EnrolmentToken>> find_for_device(std::string_view device_id) = 0;
};

// A command sent to a device (IIIT J8, I7): who sent what and when, and what the device
// answered. The signed payload (parameters included) is sealed under the device's data key
// (it goes with the device), so that a command not yet answered can be sent again.
struct DeviceCommandRecord {
  std::string id;  // the command's id on the wire ("c-<hex>")
  std::string device_id;
  std::string organisation_id;
  std::string name;
  std::string key_id;    // the data key payload_sealed is sealed under
  Bytes payload_sealed;  // the signed payload as sent
  UnixMillis issued_at = 0;
  UnixMillis expires_at = 0;
  std::string issued_by;        // "user:<id>" or "admin-cli:<login>"
  std::string status = "sent";  // sent, done, refused, failed
  std::string reason;           // the device's, for refused and failed
  std::optional<UnixMillis> answered_at;

  friend bool operator==(const DeviceCommandRecord&, const DeviceCommandRecord&) = default;
};

class DeviceCommandRepository {
 public:
  virtual ~DeviceCommandRepository() = default;
  // invalid_argument for an empty id or device id; already_exists for an id taken; conflict
  // for a device not stored.
  [[nodiscard]] virtual Status add(const DeviceCommandRecord& command) = 0;
  // Records the device's answer to its command still "sent": status (done, refused or
  // failed), reason and time. False when the device has no such command awaiting an answer
  // (unknown, another device's, or answered already: the first answer stands).
  [[nodiscard]] virtual Result<bool> answer(std::string_view device_id, std::string_view command_id,
                                            std::string_view status, std::string_view reason, UnixMillis at) = 0;
  [[nodiscard]] virtual Result<std::optional<DeviceCommandRecord>> find(std::string_view command_id) = 0;
  // The device's commands, newest first, at most `limit`.
  [[nodiscard]] virtual Result<std::vector<DeviceCommandRecord>> list_for_device(std::string_view device_id,
                                                                                 std::size_t limit) = 0;
};

// A rule of the rules engine (the Decision Trigger): the definition as the JSON its author
// wrote (rules/rule.h parses it), versioned: every change makes a new version, and every
// version is kept in the rule's history until the rule is deleted.
struct RuleRecord {
  std::string id;
  std::string organisation_id;
  std::string name;
  std::string definition;  // JSON text accepted by rules::parse_rule
  std::uint32_t version = 1;
  bool enabled = true;
  std::string created_by;  // "user:<id>" or "admin-cli:<login>"
  UnixMillis created_at = 0;
  std::string updated_by;  // who wrote this version: the commands it sends are checked against them
  UnixMillis updated_at = 0;
  std::optional<UnixMillis> last_fired_at;

  friend bool operator==(const RuleRecord&, const RuleRecord&) = default;
};

struct RuleVersionRecord {
  std::string rule_id;
  std::uint32_t version = 0;
  std::string name;
  std::string definition;
  bool enabled = true;
  std::string changed_by;
  UnixMillis changed_at = 0;

  friend bool operator==(const RuleVersionRecord&, const RuleVersionRecord&) = default;
};

// One device's evaluation state for one rule (rules::serialize), kept so that windows,
// "for at least" timers and firing alerts survive a restart. It holds the device's recent
// values, so the caller seals it under the device's data key like its telemetry. A
// device's states go with it.
struct RuleStateRecord {
  std::string rule_id;
  std::string device_id;
  std::string key_id;  // the WrappedKey that seals it
  Bytes sealed;
  UnixMillis updated_at = 0;

  friend bool operator==(const RuleStateRecord&, const RuleStateRecord&) = default;
};

// All of one device's rule states, sealed together under the device's data key: one row and
// one seal per device, not per (rule, device). What it holds is the engine's
// (decision::Trigger); the store keeps it as bytes.
struct DeviceRuleStatesRecord {
  std::string device_id;
  std::string key_id;  // the WrappedKey that seals it
  Bytes sealed;
  UnixMillis updated_at = 0;

  friend bool operator==(const DeviceRuleStatesRecord&, const DeviceRuleStatesRecord&) = default;
};

class RuleRepository {
 public:
  virtual ~RuleRepository() = default;
  // Stores the rule with version 1 and records that version in its history. invalid_argument
  // for an empty id, organisation, name or definition; already_exists for an id taken.
  [[nodiscard]] virtual Status insert(const RuleRecord& rule) = 0;
  // Replaces name, definition, enabled, updated_by and updated_at of the rule with rule.id
  // when its stored version is expected_version; the stored version becomes
  // expected_version + 1 and the history gets it. Returns the rule as stored. not_found for an
  // unknown id; conflict when the stored version is another (someone changed it first).
  [[nodiscard]] virtual Result<RuleRecord> update(const RuleRecord& rule, std::uint32_t expected_version) = 0;
  [[nodiscard]] virtual Result<std::optional<RuleRecord>> find(std::string_view id) = 0;
  // The organisation's rules, by name.
  [[nodiscard]] virtual Result<std::vector<RuleRecord>> list(std::string_view organisation_id) = 0;
  // Every organisation's enabled rules (what the engine loads at start).
  [[nodiscard]] virtual Result<std::vector<RuleRecord>> list_enabled() = 0;
  // The rule's versions, newest first.
  [[nodiscard]] virtual Result<std::vector<RuleVersionRecord>> versions(std::string_view rule_id) = 0;
  // Deletes the rule with its history and states; false for an unknown id.
  [[nodiscard]] virtual Result<bool> remove(std::string_view id) = 0;
  [[nodiscard]] virtual Status mark_fired(std::string_view id, UnixMillis at) = 0;
  // Inserts or replaces each state, all in one transaction. States of a rule or device no
  // longer stored are skipped (the rule or device was deleted meanwhile). The engine now keeps
  // its states per device (save_device_states); these rows are read at start, as a previous
  // version left them.
  [[nodiscard]] virtual Status save_states(const std::vector<RuleStateRecord>& states) = 0;
  // Inserts or replaces each device's row, all in one transaction; a row whose device is no
  // longer stored is skipped. A device's row goes with the device.
  [[nodiscard]] virtual Status save_device_states(const std::vector<DeviceRuleStatesRecord>& rows) = 0;
  // Every device's row, by device id.
  [[nodiscard]] virtual Result<std::vector<DeviceRuleStatesRecord>> device_states() = 0;
  [[nodiscard]] virtual Result<std::vector<RuleStateRecord>> states(std::string_view rule_id) = 0;
  // Forgets the rule's states (its definition changed: windows and timers start afresh).
  [[nodiscard]] virtual Status clear_states(std::string_view rule_id) = 0;
};

// A notification channel of an organisation (JPCERT VIII-2, I-10): where its
// alerts go. The definition (notify/channel.h), webhook secret included, is kept only sealed;
// the columns beside it are what listing and routing need without opening it.
struct NotificationChannelRecord {
  std::string organisation_id;  // with id, the key
  std::string id;               // what people and rules call it: 1..64 of [A-Za-z0-9_.:-]
  std::string name;
  std::string type;          // "webhook", "email", "syslog", "mqtt"
  std::string min_severity;  // "info", "warning", "critical": alerts at or above it; "none": rules only
  bool enabled = true;
  std::string key_id;       // the data key sealing definition_sealed
  Bytes definition_sealed;  // the full definition JSON (secret included), sealed
  std::string created_by;   // "user:<id>" or "admin-cli:<login>"
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;

  friend bool operator==(const NotificationChannelRecord&, const NotificationChannelRecord&) = default;
};

class NotificationChannelRepository {
 public:
  virtual ~NotificationChannelRepository() = default;
  // invalid_argument for an empty organisation, id, name, type or key id, or an empty sealed
  // definition; already_exists for an (organisation_id, id) taken.
  [[nodiscard]] virtual Status insert(const NotificationChannelRecord& channel) = 0;
  // Replaces every field but created_by and created_at of the channel with the record's
  // (organisation_id, id). Same checks as insert; not_found when there is no such channel.
  [[nodiscard]] virtual Status replace(const NotificationChannelRecord& channel) = 0;
  [[nodiscard]] virtual Result<std::optional<NotificationChannelRecord>> find(std::string_view organisation_id,
                                                                              std::string_view id) = 0;
  // The organisation's channels, by id.
  [[nodiscard]] virtual Result<std::vector<NotificationChannelRecord>> list(std::string_view organisation_id) = 0;
  // Every organisation's channels, by organisation then id (what the server loads at start).
  [[nodiscard]] virtual Result<std::vector<NotificationChannelRecord>> list_all() = 0;
  // False when there was no such channel.
  [[nodiscard]] virtual Result<bool> remove(std::string_view organisation_id, std::string_view id) = 0;
};

// A person's API token for an integration (JPCERT I-10): scoped to some of the owner's
// permissions in one organisation, expiring, revocable. Only a hash of the secret is stored.
struct ApiTokenRecord {
  std::string id;  // the public handle (list, revoke, the security log); part of the token
  std::string user_id;
  std::string organisation_id;
  std::string name;                      // what the owner calls it
  std::vector<std::string> permissions;  // permission names, each non-empty without spaces
  std::string secret_hash;
  UnixMillis created_at = 0;
  UnixMillis expires_at = 0;  // valid while now < expires_at
  std::optional<UnixMillis> last_used_at;
  std::optional<UnixMillis> revoked_at;
  std::string revoked_reason;  // "user:<id>", "unused", ...; empty while not revoked

  friend bool operator==(const ApiTokenRecord&, const ApiTokenRecord&) = default;
};

// The checks every backend applies before ApiTokenRepository::insert (invalid_argument).
[[nodiscard]] Status validate_api_token(const ApiTokenRecord& token);

class ApiTokenRepository {
 public:
  virtual ~ApiTokenRepository() = default;
  // already_exists on a duplicate id or secret hash; invalid_argument for an empty id, user
  // id, organisation id or secret hash or a bad permission name; conflict for a user or
  // organisation not stored. A user's tokens go with them (UserRepository::remove).
  [[nodiscard]] virtual Status insert(const ApiTokenRecord& token) = 0;
  [[nodiscard]] virtual Result<std::optional<ApiTokenRecord>> find(std::string_view id) = 0;
  // The user's tokens (revoked ones too), newest first, ties by id.
  [[nodiscard]] virtual Result<std::vector<ApiTokenRecord>> list_for_user(std::string_view user_id) = 0;
  // The tokens of every person of the organisation, newest first, ties by id.
  [[nodiscard]] virtual Result<std::vector<ApiTokenRecord>> list_for_organisation(std::string_view organisation_id) = 0;
  // Marks the token revoked at `at` for `reason` unless it already is; true exactly then.
  [[nodiscard]] virtual Result<bool> revoke(std::string_view id, UnixMillis at, std::string_view reason) = 0;
  // Sets last_used_at. not_found for an unknown id.
  [[nodiscard]] virtual Status touch(std::string_view id, UnixMillis at) = 0;
  // Tokens not revoked and not used since before `cutoff` (never used: created before it),
  // least recently used first, ties by id.
  [[nodiscard]] virtual Result<std::vector<ApiTokenRecord>> list_unused_since(UnixMillis cutoff) = 0;
};

// --- Alerts ----------------------------------------------------------------------------------

// One alert: a rule's finding, a device's health (missed heartbeats, irregular sensors,
// tamper, posture: JPCERT VIII-1) or a security event (JPCERT VIII-2), in one model:
// open -> acknowledged -> resolved (open -> resolved too), each step with who and when.
struct AlertRecord {
  std::string id;               // random ("a-<hex>")
  std::string organisation_id;  // empty: installation-wide (e.g. a burst of failed sign-ins)
  std::string source;           // "rule", "device", "security"
  // De-duplication: at most one alert not resolved per (organisation_id, key).
  std::string key;
  std::string device_id;  // may be empty
  std::string rule_id;    // may be empty
  std::string severity;   // "info", "warning", "critical"
  std::string title;      // short, from a fixed vocabulary or a rule's name (never raw device text)
  std::string summary;    // short, never secrets
  std::string status;     // "open", "acknowledged", "resolved"
  // Raised again while not resolved: +1 and last_raised_at, no second alert.
  std::uint32_t occurrences = 1;
  UnixMillis opened_at = 0;
  UnixMillis last_raised_at = 0;
  std::optional<UnixMillis> acknowledged_at;
  std::string acknowledged_by;  // "user:<id>", "admin-cli"
  std::optional<UnixMillis> resolved_at;
  std::string resolved_by;  // "user:<id>", "admin-cli", "system", "rule:<id>"

  friend bool operator==(const AlertRecord&, const AlertRecord&) = default;
};

inline constexpr std::string_view kAlertOpen = "open";
inline constexpr std::string_view kAlertAcknowledged = "acknowledged";
inline constexpr std::string_view kAlertResolved = "resolved";

// The checks every backend applies before AlertRepository::raise (invalid_argument): an
// id, a key, a title, a known source and severity, and a non-zero opened_at.
[[nodiscard]] Status validate_alert(const AlertRecord& alert);

class AlertRepository {
 public:
  virtual ~AlertRepository() = default;
  // Opens `alert` (status open, occurrences 1, last_raised_at = opened_at; its own status,
  // occurrences and acknowledgement are ignored), or, when the organisation has an alert
  // with the same key that is not resolved, adds an occurrence to that one instead
  // (occurrences + 1, last_raised_at = alert.opened_at; severity raised to the new one's if
  // higher). Returns the stored alert and whether it is new. Atomic: two callers raising the
  // same key get one alert. invalid_argument per validate_alert; already_exists for an id taken.
  [[nodiscard]] virtual Result<std::pair<AlertRecord, bool>> raise(const AlertRecord& alert) = 0;
  // open -> acknowledged, by whom and when. False unless the alert exists and is open.
  [[nodiscard]] virtual Result<bool> acknowledge(std::string_view id, std::string_view by, UnixMillis at) = 0;
  // open or acknowledged -> resolved. False when unknown or already resolved.
  [[nodiscard]] virtual Result<bool> resolve(std::string_view id, std::string_view by, UnixMillis at) = 0;
  // Resolves the organisation's alert with this key that is not resolved; returns it as
  // resolved, or nullopt when there was none.
  [[nodiscard]] virtual Result<std::optional<AlertRecord>> resolve_key(std::string_view organisation_id,
                                                                       std::string_view key, std::string_view by,
                                                                       UnixMillis at) = 0;
  [[nodiscard]] virtual Result<std::optional<AlertRecord>> find(std::string_view id) = 0;

  struct Query {
    std::optional<std::string> organisation_id;  // nullopt: every organisation and installation-wide
    std::vector<std::string> statuses;           // empty: any
    std::string device_id;                       // empty: any
    std::string severity;                        // empty: any
    std::size_t limit = 100;
    std::optional<UnixMillis> before;  // only alerts opened before this
  };
  // Newest (opened_at) first, ties by id descending; at most limit.
  [[nodiscard]] virtual Result<std::vector<AlertRecord>> list(const Query& query) = 0;
  // Alerts not resolved, of one organisation (nullopt: all).
  [[nodiscard]] virtual Result<std::size_t> count_active(std::optional<std::string> organisation_id) = 0;
};

// --- Custom roles (console) -----------------------------------------------------------------

// A role an organisation defines as a set of named permissions (JPCERT I-8). The built-in
// roles are code (identity/roles.h) and never stored; a custom role's name differs from them.
struct CustomRoleRecord {
  std::string organisation_id;
  std::string name;  // unique within its organisation
  std::string description;
  std::vector<std::string> permissions;  // permission names ("devices.read"), sorted, no duplicates
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;

  friend bool operator==(const CustomRoleRecord&, const CustomRoleRecord&) = default;
};

// The checks every backend applies before CustomRoleRepository::insert and update
// (invalid_argument): an organisation and a name, permission names without spaces, sorted
// and without duplicates.
[[nodiscard]] Status validate_custom_role(const CustomRoleRecord& role);

class CustomRoleRepository {
 public:
  virtual ~CustomRoleRepository() = default;
  // already_exists for a name the organisation has; conflict for an organisation not stored.
  [[nodiscard]] virtual Status insert(const CustomRoleRecord& role) = 0;
  [[nodiscard]] virtual Result<std::optional<CustomRoleRecord>> find(std::string_view organisation_id,
                                                                     std::string_view name) = 0;
  // The organisation's roles, by name.
  [[nodiscard]] virtual Result<std::vector<CustomRoleRecord>> list(std::string_view organisation_id) = 0;
  // Replaces description, permissions and updated_at. not_found for an unknown role.
  [[nodiscard]] virtual Status update(const CustomRoleRecord& role) = 0;
  // False when there was no such role.
  [[nodiscard]] virtual Result<bool> remove(std::string_view organisation_id, std::string_view name) = 0;
};

// --- Installation settings (console) ---------------------------------------------------------

// A setting changed through the console, layered over the configuration file at start and
// when changed (config::apply_overrides; docs/configuration.md). None of them is secret.
struct SettingOverrideRecord {
  std::string key;         // a configuration key path: "accounts.lock_after_failures"
  std::string value_json;  // its value as JSON text: 3, ["203.0.113.0/24"]
  std::string changed_by;  // the actor: "user:<id>"
  UnixMillis changed_at = 0;

  friend bool operator==(const SettingOverrideRecord&, const SettingOverrideRecord&) = default;
};

class SettingOverrideRepository {
 public:
  virtual ~SettingOverrideRepository() = default;
  // Sets the key's override, replacing the one it had. invalid_argument for an empty key or
  // value. Whether the key may be changed, and to what, is the caller's to check.
  [[nodiscard]] virtual Status put(const SettingOverrideRecord& setting) = 0;
  // False when the key had no override.
  [[nodiscard]] virtual Result<bool> remove(std::string_view key) = 0;
  // Every override, by key.
  [[nodiscard]] virtual Result<std::vector<SettingOverrideRecord>> list() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // The repositories live as long as the Store.
  [[nodiscard]] virtual MetaRepository& meta() = 0;
  [[nodiscard]] virtual DataKeyRepository& data_keys() = 0;
  [[nodiscard]] virtual SecretRepository& secrets() = 0;
  [[nodiscard]] virtual CertificateRepository& certificates() = 0;
  [[nodiscard]] virtual SetupTokenRepository& setup_tokens() = 0;
  [[nodiscard]] virtual CounterRepository& counters() = 0;
  [[nodiscard]] virtual DeviceRepository& devices() = 0;
  [[nodiscard]] virtual DeviceProfileRepository& device_profiles() = 0;
  [[nodiscard]] virtual TelemetryRepository& telemetry() = 0;
  [[nodiscard]] virtual LatestValueRepository& latest_values() = 0;
  [[nodiscard]] virtual DeviceCounterRepository& device_counters() = 0;
  [[nodiscard]] virtual RouteRepository& routes() = 0;
  [[nodiscard]] virtual MqttStateRepository& mqtt_state() = 0;
  [[nodiscard]] virtual OrganisationRepository& organisations() = 0;
  [[nodiscard]] virtual UserRepository& users() = 0;
  [[nodiscard]] virtual ConsoleSessionRepository& console_sessions() = 0;
  [[nodiscard]] virtual PasswordResetRepository& password_resets() = 0;
  [[nodiscard]] virtual EnrolmentTokenRepository& enrolment_tokens() = 0;
  [[nodiscard]] virtual DeviceCommandRepository& device_commands() = 0;
  [[nodiscard]] virtual RuleRepository& rules() = 0;
  [[nodiscard]] virtual NotificationChannelRepository& notification_channels() = 0;
  [[nodiscard]] virtual ApiTokenRepository& api_tokens() = 0;
  [[nodiscard]] virtual CustomRoleRepository& custom_roles() = 0;
  [[nodiscard]] virtual SettingOverrideRepository& setting_overrides() = 0;
  [[nodiscard]] virtual AlertRepository& alerts() = 0;

  // Runs body in a transaction: commits when it returns ok, rolls back otherwise and returns
  // its error (or the commit's). A nested call joins the enclosing transaction: nothing is
  // committed before the outermost body returns ok; a nested body that fails has only its
  // own writes undone and its error returned to the enclosing body, which decides. If body
  // throws, the transaction is rolled back and the exception propagates.
  [[nodiscard]] virtual Status transaction(const std::function<Status()>& body) = 0;
  // The same, except that the commit need not be on disk when it returns: it is once a
  // sync_committed() called after it has returned ok. The gateway's group commit writes its
  // next batch while the last one goes to disk, and acknowledges a batch only after that.
  [[nodiscard]] virtual Status transaction_unsynced(const std::function<Status()>& body) = 0;
  // Makes every commit that returned before the call durable. From any thread; it does not
  // wait for the transaction under way.
  [[nodiscard]] virtual Status sync_committed() = 0;

  // The schema version of the open database (the newest migration applied).
  [[nodiscard]] virtual int schema_version() = 0;
};

}  // namespace torii::store

#include "store/sqlite/migrations.h"

#include <array>
#include <chrono>

#include <fmt/format.h>

#include "base/clock.h"
#include "store/sqlite/statement.h"

namespace torii::store::sqlite {
namespace {

// Append only: a released migration is never edited, a change is a new migration.
// STRICT tables make SQLite refuse values of the wrong type instead of converting them.
constexpr std::array<Migration, 17> kMigrations = {{
    {1, "initial schema: meta, data keys, secrets, certificates, setup tokens, counters", R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY NOT NULL,
  value BLOB NOT NULL
) STRICT;

CREATE TABLE data_keys (
  id TEXT PRIMARY KEY NOT NULL,
  purpose TEXT NOT NULL,
  wrapped BLOB NOT NULL,
  created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX data_keys_by_purpose ON data_keys (purpose, created_at_ms, id);

CREATE TABLE secrets (
  name TEXT PRIMARY KEY NOT NULL,
  key_id TEXT NOT NULL,
  sealed BLOB NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE certificates (
  serial_hex TEXT PRIMARY KEY NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('root-ca', 'issuing-ca', 'server', 'device')),
  subject TEXT NOT NULL,
  device_id TEXT,
  issuer_serial_hex TEXT NOT NULL,
  pem TEXT NOT NULL,
  fingerprint_sha256 TEXT NOT NULL UNIQUE,
  not_before_ms INTEGER NOT NULL,
  not_after_ms INTEGER NOT NULL CHECK (not_after_ms >= not_before_ms),
  revoked_at_ms INTEGER,
  revocation_reason TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX certificates_by_issuer_revoked ON certificates (issuer_serial_hex, revoked_at_ms);
CREATE INDEX certificates_by_not_after ON certificates (not_after_ms);
CREATE INDEX certificates_by_kind ON certificates (kind, not_before_ms);
CREATE INDEX certificates_by_device ON certificates (device_id, not_before_ms) WHERE device_id IS NOT NULL;

CREATE TABLE setup_tokens (
  token_hash TEXT PRIMARY KEY NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  used_at_ms INTEGER
) STRICT;

CREATE TABLE counters (
  name TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL CHECK (value >= 0)
) STRICT;
)sql"},
    {2, "gateway: devices, device profiles, telemetry, latest values, device counters", R"sql(
CREATE TABLE device_profiles (
  id TEXT PRIMARY KEY NOT NULL,
  organisation_id TEXT NOT NULL,
  name TEXT NOT NULL,
  definition_json TEXT NOT NULL,
  version INTEGER NOT NULL CHECK (version >= 1),
  updated_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX device_profiles_by_organisation ON device_profiles (organisation_id, id);

-- profile_id is deliberately no foreign key: a device may name no profile (''), and
-- DeviceProfileRepository::remove checks for users itself. No index serves
-- list_unused_since: it is a rare scan of a small table, while an index on the last-seen
-- time would be rewritten by every touch_last_seen on the message path.
CREATE TABLE devices (
  id TEXT PRIMARY KEY NOT NULL,
  organisation_id TEXT NOT NULL,
  name TEXT NOT NULL,
  profile_id TEXT NOT NULL,
  segment TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  firmware_version TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
  created_at_ms INTEGER NOT NULL,
  last_seen_at_ms INTEGER,
  disabled_at_ms INTEGER CHECK ((disabled_at_ms IS NOT NULL) = (status = 'disabled')),
  disabled_reason TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX devices_by_organisation ON devices (organisation_id, id);
CREATE INDEX devices_by_profile ON devices (profile_id);

-- AUTOINCREMENT: a seq is never reused, even after the newest rows were deleted, so readers
-- may use it as a cursor. The foreign keys below cascade device removal (foreign_keys is ON).
CREATE TABLE telemetry (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('telemetry', 'events', 'state', 'results')),
  message_key TEXT,
  received_at_ms INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  sealed BLOB NOT NULL
) STRICT;
CREATE INDEX telemetry_by_device_time ON telemetry (device_id, received_at_ms, seq);
CREATE INDEX telemetry_by_time ON telemetry (received_at_ms);
CREATE UNIQUE INDEX telemetry_dedupe ON telemetry (device_id, message_key) WHERE message_key IS NOT NULL;

CREATE TABLE latest_values (
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  metric TEXT NOT NULL,
  key_id TEXT NOT NULL,
  sealed BLOB NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (device_id, metric)
) STRICT, WITHOUT ROWID;

CREATE TABLE device_counters (
  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  messages INTEGER NOT NULL CHECK (messages >= 0),
  bytes INTEGER NOT NULL CHECK (bytes >= 0),
  refusals INTEGER NOT NULL CHECK (refusals >= 0),
  connects INTEGER NOT NULL CHECK (connects >= 0),
  updated_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
)sql"},
    {3, "gateway: routes between devices and segments", R"sql(
-- A route names its ends by value: a device id or a segment name. DeviceRepository::remove
-- deletes the device routes naming a device in the same transaction (no foreign key can
-- reference "a device or a segment").
CREATE TABLE routes (
  organisation_id TEXT NOT NULL,
  from_kind TEXT NOT NULL CHECK (from_kind IN ('device', 'segment')),
  from_value TEXT NOT NULL CHECK (from_value <> ''),
  to_kind TEXT NOT NULL CHECK (to_kind IN ('device', 'segment')),
  to_value TEXT NOT NULL CHECK (to_value <> ''),
  created_at_ms INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (organisation_id, from_kind, from_value, to_kind, to_value)
) STRICT, WITHOUT ROWID;
CREATE INDEX routes_by_source ON routes (from_kind, from_value);
CREATE INDEX routes_by_target ON routes (to_kind, to_value);
)sql"},
    {4, "gateway: retained messages and persistent sessions kept across restarts", R"sql(
CREATE TABLE mqtt_state (
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('retained', 'session')),
  name TEXT NOT NULL,
  key_id TEXT NOT NULL,
  sealed BLOB NOT NULL,
  expires_at_ms INTEGER NOT NULL CHECK (expires_at_ms >= 0),
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (device_id, kind, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX mqtt_state_by_expiry ON mqtt_state (expires_at_ms) WHERE expires_at_ms > 0;
)sql"},
    {5, "console: organisations, users, password history, recovery codes, console sessions", R"sql(
CREATE TABLE organisations (
  id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  name TEXT NOT NULL CHECK (name <> ''),
  require_second_factor INTEGER NOT NULL CHECK (require_second_factor IN (0, 1)),
  created_at_ms INTEGER NOT NULL
) STRICT;

-- No ON DELETE on organisation_id: an organisation is never deleted while people belong to
-- it. The expression index serves list_unused_since, which must spell the same expression.
CREATE TABLE users (
  id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  organisation_id TEXT NOT NULL REFERENCES organisations (id),
  username TEXT NOT NULL UNIQUE CHECK (username <> ''),
  email TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role <> ''),
  password_hash TEXT NOT NULL CHECK (password_hash <> ''),
  password_changed_at_ms INTEGER NOT NULL,
  totp_key_id TEXT NOT NULL,
  totp_sealed BLOB NOT NULL,
  totp_enabled INTEGER NOT NULL CHECK (totp_enabled IN (0, 1)),
  totp_last_step INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
  disabled_reason TEXT NOT NULL,
  failed_logins INTEGER NOT NULL CHECK (failed_logins >= 0),
  lockouts INTEGER NOT NULL CHECK (lockouts >= 0),
  locked_until_ms INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  last_login_at_ms INTEGER,
  expires_at_ms INTEGER
) STRICT;
CREATE INDEX users_by_organisation ON users (organisation_id, username);
CREATE INDEX users_by_activity ON users (COALESCE(last_login_at_ms, created_at_ms), id) WHERE status = 'active';

-- The foreign keys below cascade user removal (foreign_keys is ON).
CREATE TABLE password_history (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  password_hash TEXT NOT NULL,
  changed_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX password_history_by_user ON password_history (user_id, changed_at_ms);

CREATE TABLE recovery_codes (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash TEXT NOT NULL,
  used_at_ms INTEGER,
  PRIMARY KEY (user_id, code_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE console_sessions (
  id_hash TEXT PRIMARY KEY NOT NULL CHECK (id_hash <> ''),
  handle TEXT NOT NULL UNIQUE CHECK (handle <> ''),
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  stage TEXT NOT NULL CHECK (stage IN ('second-factor', 'enrol', 'full')),
  created_at_ms INTEGER NOT NULL,
  last_seen_at_ms INTEGER NOT NULL,
  authenticated_at_ms INTEGER NOT NULL,
  source TEXT NOT NULL,
  user_agent TEXT NOT NULL
) STRICT;
CREATE INDEX console_sessions_by_user ON console_sessions (user_id, created_at_ms DESC, handle);
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at_ms);
CREATE INDEX console_sessions_by_created ON console_sessions (created_at_ms);
)sql"},
    {6, "console: password reset tokens", R"sql(
-- The foreign key cascades user removal (foreign_keys is ON). The index serves the
-- revocation of a user's unused tokens when a new one is issued, and count_active.
CREATE TABLE password_reset_tokens (
  token_hash TEXT PRIMARY KEY NOT NULL CHECK (token_hash <> ''),
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  used_at_ms INTEGER,
  issued_by TEXT NOT NULL
) STRICT;
CREATE INDEX password_reset_tokens_by_user ON password_reset_tokens (user_id, used_at_ms);
)sql"},
    {7, "console: API tokens", R"sql(
-- JPCERT I-10. permissions holds the permission names separated by single spaces. A user's
-- tokens go with them (foreign_keys is ON); the organisation a token is scoped to must
-- exist.
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  organisation_id TEXT NOT NULL REFERENCES organisations (id),
  name TEXT NOT NULL,
  permissions TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE CHECK (secret_hash <> ''),
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  last_used_at_ms INTEGER,
  revoked_at_ms INTEGER,
  revoked_reason TEXT NOT NULL
) STRICT;
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at_ms DESC, id);
CREATE INDEX api_tokens_by_organisation ON api_tokens (organisation_id, created_at_ms DESC, id);
)sql"},
    {8, "console: custom roles", R"sql(
-- Permission names separated by single spaces, sorted. Removing a role that people hold is
-- refused by the caller (identity::CustomRoles), not here: users.role is a plain name.
CREATE TABLE custom_roles (
  organisation_id TEXT NOT NULL REFERENCES organisations (id),
  name TEXT NOT NULL CHECK (name <> ''),
  description TEXT NOT NULL,
  permissions TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (organisation_id, name)
) STRICT, WITHOUT ROWID;
)sql"},
    {9, "console: installation settings changed through the console", R"sql(
-- Layered over the configuration file (config::apply_overrides); the value is JSON text.
CREATE TABLE setting_overrides (
  key TEXT PRIMARY KEY CHECK (key <> ''),
  value_json TEXT NOT NULL CHECK (value_json <> ''),
  changed_by TEXT NOT NULL,
  changed_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
)sql"},
    {10, "devices: one-time enrolment tokens", R"sql(
-- IIIT DI1, J9. One row per device (the primary key): issuing a new token replaces the
-- device's earlier one. The token itself is never stored, only its hash. A device's token
-- goes with it (foreign_keys is ON).
CREATE TABLE enrolment_tokens (
  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  token_hash TEXT NOT NULL UNIQUE CHECK (token_hash <> ''),
  organisation_id TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  used_at_ms INTEGER,
  created_by TEXT NOT NULL
) STRICT;
)sql"},
    {11, "devices: commands sent and their answers", R"sql(
-- IIIT J8, I7. A device's commands go with it (foreign_keys is ON); their signed payloads
-- are sealed under its data key.
CREATE TABLE device_commands (
  id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  organisation_id TEXT NOT NULL,
  name TEXT NOT NULL,
  key_id TEXT NOT NULL,
  payload_sealed BLOB NOT NULL,
  issued_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  issued_by TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('sent', 'done', 'refused', 'failed')),
  reason TEXT NOT NULL,
  answered_at_ms INTEGER
) STRICT;
CREATE INDEX device_commands_by_device ON device_commands (device_id, issued_at_ms);
)sql"},
    {12, "rules: definitions, their versions and per-device state", R"sql(
-- The Decision Trigger. Every version of a rule is kept with it; its per-device evaluation
-- state goes with the rule and with the device (foreign_keys is ON).
CREATE TABLE rules (
  id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  organisation_id TEXT NOT NULL CHECK (organisation_id <> ''),
  name TEXT NOT NULL CHECK (name <> ''),
  definition TEXT NOT NULL CHECK (definition <> ''),
  version INTEGER NOT NULL CHECK (version >= 1),
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  created_by TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  last_fired_at_ms INTEGER
) STRICT;
CREATE INDEX rules_by_organisation ON rules (organisation_id, name);
CREATE TABLE rule_versions (
  rule_id TEXT NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  name TEXT NOT NULL,
  definition TEXT NOT NULL,
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  changed_by TEXT NOT NULL,
  changed_at_ms INTEGER NOT NULL,
  PRIMARY KEY (rule_id, version)
) STRICT, WITHOUT ROWID;
CREATE TABLE rule_states (
  rule_id TEXT NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  key_id TEXT NOT NULL,
  sealed BLOB NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (rule_id, device_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX rule_states_by_device ON rule_states (device_id);
)sql"},
    {13, "alerts: open, acknowledged, resolved", R"sql(
-- JPCERT VIII-1, VIII-2. No foreign key to devices: an alert may name a device the store
-- does not hold (an unknown certificate's claim); a device's alerts go with it
-- (DeviceRepository::remove). The partial unique index is the de-duplication: one alert not
-- resolved per (organisation_id, key).
CREATE TABLE alerts (
  id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  organisation_id TEXT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('rule', 'device', 'security')),
  alert_key TEXT NOT NULL CHECK (alert_key <> ''),
  device_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  title TEXT NOT NULL,
  summary TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
  occurrences INTEGER NOT NULL CHECK (occurrences >= 1),
  opened_at_ms INTEGER NOT NULL,
  last_raised_at_ms INTEGER NOT NULL,
  acknowledged_at_ms INTEGER,
  acknowledged_by TEXT NOT NULL,
  resolved_at_ms INTEGER,
  resolved_by TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX alerts_active_by_key ON alerts (organisation_id, alert_key) WHERE status <> 'resolved';
CREATE INDEX alerts_by_organisation ON alerts (organisation_id, opened_at_ms);
CREATE INDEX alerts_by_device ON alerts (device_id);
)sql"},
    {14, "notification channels of each organisation, their definitions sealed", R"sql(
-- JPCERT VIII-2, I-10. The definition (a webhook's secret included) is kept
-- only sealed under a data key; the other columns are what listing and routing need.
CREATE TABLE notification_channels (
  organisation_id TEXT NOT NULL CHECK (organisation_id <> ''),
  id TEXT NOT NULL CHECK (id <> ''),
  name TEXT NOT NULL CHECK (name <> ''),
  type TEXT NOT NULL CHECK (type IN ('webhook', 'email', 'syslog', 'mqtt')),
  min_severity TEXT NOT NULL CHECK (min_severity IN ('info', 'warning', 'critical', 'none')),
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  key_id TEXT NOT NULL CHECK (key_id <> ''),
  definition_sealed BLOB NOT NULL,
  created_by TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (organisation_id, id)
) STRICT, WITHOUT ROWID;
)sql"},
    {15, "device tags, which rules select devices by", R"sql(
-- A rule's selector may name tags. A device's tags are kept sorted and
-- joined by commas (a tag is an identifier: it holds no comma); '' for none.
ALTER TABLE devices ADD COLUMN tags TEXT NOT NULL DEFAULT '';
)sql"},
    {16, "rule states kept per device, sealed together", R"sql(
-- One row and one seal per device for all its rule states (rule_states held one per
-- rule and device). rule_states stays, read at start, no longer written.
-- A rowid table: a row holds tens of kilobytes, which WITHOUT ROWID tables store poorly.
CREATE TABLE device_rule_states (
  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  key_id TEXT NOT NULL,
  sealed BLOB NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;
)sql"},
    {17, "telemetry: values rules derive are stored too, as kind 'derived'", R"sql(
-- SQLite cannot change a CHECK constraint in place: the table is made again with the new
-- one and its rows copied, seq values included. The sequence goes on from where it was, so a
-- seq is never handed out twice even when the newest rows had been deleted.
CREATE TABLE telemetry_with_derived (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('telemetry', 'events', 'state', 'results', 'derived')),
  message_key TEXT,
  received_at_ms INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  sealed BLOB NOT NULL
) STRICT;
INSERT INTO telemetry_with_derived (seq, device_id, kind, message_key, received_at_ms, key_id, sealed)
  SELECT seq, device_id, kind, message_key, received_at_ms, key_id, sealed FROM telemetry ORDER BY seq;
DELETE FROM sqlite_sequence WHERE name = 'telemetry_with_derived';
INSERT INTO sqlite_sequence (name, seq)
  SELECT 'telemetry_with_derived', last FROM (
    SELECT MAX(seq) AS last FROM (
      SELECT seq FROM sqlite_sequence WHERE name = 'telemetry'
      UNION ALL SELECT MAX(seq) FROM telemetry_with_derived))
  WHERE last IS NOT NULL;
DROP TABLE telemetry;
ALTER TABLE telemetry_with_derived RENAME TO telemetry;
CREATE INDEX telemetry_by_device_time ON telemetry (device_id, received_at_ms, seq);
CREATE INDEX telemetry_by_time ON telemetry (received_at_ms);
CREATE UNIQUE INDEX telemetry_dedupe ON telemetry (device_id, message_key) WHERE message_key IS NOT NULL;
)sql"},
}};

constexpr std::string_view kCreateMigrationsTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  description TEXT,
  applied_at_ms INTEGER
))sql";

Result<int> current_version(sqlite3* db) {
  auto stmt = Statement::prepare(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!stmt) return tl::unexpected(std::move(stmt.error()));
  auto row = stmt->step();
  if (!row) return tl::unexpected(std::move(row.error()));
  if (!*row) return 0;
  const std::int64_t v = stmt->column_int(0);
  if (v < 0 || v > 1'000'000) return fail(Errc::corrupt, fmt::format("store: schema version {} is not valid", v));
  return static_cast<int>(v);
}

Status check_not_newer(int current) {
  if (current > latest_schema_version()) {
    return fail(Errc::conflict, fmt::format("database schema version {} is newer than this torii ({}); upgrade torii",
                                            current, latest_schema_version()));
  }
  return ok();
}

// Applies one migration unless another process already did; the caller holds a write
// transaction.
Status apply(sqlite3* db, const Migration& m) {
  auto current = current_version(db);
  if (!current) return tl::unexpected(std::move(current.error()));
  if (auto newer = check_not_newer(*current); !newer) return newer;
  if (*current >= m.version) return ok();
  if (*current != m.version - 1) {
    return fail(Errc::corrupt, fmt::format("store: schema version {} cannot be migrated to {}", *current, m.version));
  }
  if (auto s = execute_script(db, m.sql, fmt::format("apply migration {}", m.version)); !s) return s;
  auto insert =
      Statement::prepare(db, "INSERT INTO schema_migrations (version, description, applied_at_ms) VALUES (?1, ?2, ?3)");
  if (!insert) return tl::unexpected(std::move(insert.error()));
  insert->bind_int(1, m.version)
      .bind_text(2, m.description)
      .bind_int(3, to_unix_millis(std::chrono::system_clock::now()));
  return insert->run();
}

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

int latest_schema_version() { return kMigrations.back().version; }

Result<int> migrate(sqlite3* db) {
  if (auto s = execute_script(db, kCreateMigrationsTable, "create schema_migrations"); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  auto current = current_version(db);
  if (!current) return current;
  if (auto s = check_not_newer(*current); !s) return tl::unexpected(std::move(s.error()));

  for (const Migration& m : kMigrations) {
    if (m.version <= *current) continue;
    if (auto s = execute_script(db, "BEGIN IMMEDIATE", "begin migration"); !s) {
      return tl::unexpected(std::move(s.error()));
    }
    Status applied = apply(db, m);
    if (applied) applied = execute_script(db, "COMMIT", "commit migration");
    if (!applied) {
      (void)execute_script(db, "ROLLBACK", "roll back migration");
      return tl::unexpected(std::move(applied.error()));
    }
  }
  return current_version(db);
}

}  // namespace torii::store::sqlite

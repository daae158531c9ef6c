#include "store/store.h"

#include <fmt/format.h>

namespace torii::store {

bool is_certificate_kind(std::string_view kind) {
  return kind == kCertKindRootCa || kind == kCertKindIssuingCa || kind == kCertKindServer || kind == kCertKindDevice;
}

Status validate_certificate(const CertificateRecord& cert) {
  if (cert.serial_hex.empty()) return fail(Errc::invalid_argument, "store: certificate serial is empty");
  if (cert.fingerprint_sha256.empty()) return fail(Errc::invalid_argument, "store: certificate fingerprint is empty");
  if (!is_certificate_kind(cert.kind)) {
    // The kind is an internal constant, not a secret, but quoting it could still carry
    // control characters into a log: report its length only.
    return fail(Errc::invalid_argument,
                fmt::format("store: certificate kind ({} bytes) is not one of root-ca, issuing-ca, server, device",
                            cert.kind.size()));
  }
  if (cert.not_after < cert.not_before) {
    return fail(Errc::invalid_argument, "store: certificate not_after is before not_before");
  }
  return ok();
}

bool is_device_status(std::string_view status) {
  return status == kDeviceStatusActive || status == kDeviceStatusDisabled;
}

Status validate_device_tags(const std::vector<std::string>& tags) {
  if (tags.size() > kMaxDeviceTags) {
    return fail(Errc::invalid_argument, fmt::format("store: a device has at most {} tags", kMaxDeviceTags));
  }
  for (std::size_t i = 0; i < tags.size(); ++i) {
    // The column joins them with commas.
    if (tags[i].empty() || tags[i].find(',') != std::string::npos) {
      return fail(Errc::invalid_argument, "store: a device tag is empty or holds a comma");
    }
    if (i > 0 && !(tags[i - 1] < tags[i])) {
      return fail(Errc::invalid_argument, "store: device tags are not sorted and distinct");
    }
  }
  return ok();
}

Status validate_device(const DeviceRecord& device) {
  if (device.id.empty()) return fail(Errc::invalid_argument, "store: device id is empty");
  if (auto s = validate_device_tags(device.tags); !s) return s;
  if (device.organisation_id.empty()) return fail(Errc::invalid_argument, "store: device organisation id is empty");
  if (!is_device_status(device.status)) {
    return fail(Errc::invalid_argument,
                fmt::format("store: device status ({} bytes) is not one of active, disabled", device.status.size()));
  }
  if ((device.status == kDeviceStatusDisabled) != device.disabled_at.has_value()) {
    return fail(Errc::invalid_argument, "store: device disabled_at must be set exactly when the status is disabled");
  }
  return ok();
}

bool is_route_end_kind(std::string_view kind) { return kind == kRouteEndDevice || kind == kRouteEndSegment; }

Status validate_route_record(const RouteRecord& route) {
  if (route.organisation_id.empty()) return fail(Errc::invalid_argument, "store: route organisation id is empty");
  if (!is_route_end_kind(route.from_kind) || !is_route_end_kind(route.to_kind)) {
    return fail(Errc::invalid_argument, "store: a route end is neither a device nor a segment");
  }
  if (route.from_value.empty() || route.to_value.empty()) {
    return fail(Errc::invalid_argument, "store: a route end is empty");
  }
  return ok();
}

Status validate_organisation(const OrganisationRecord& organisation) {
  if (organisation.id.empty()) return fail(Errc::invalid_argument, "store: organisation id is empty");
  if (organisation.name.empty()) return fail(Errc::invalid_argument, "store: organisation name is empty");
  return ok();
}

Status validate_custom_role(const CustomRoleRecord& role) {
  if (role.organisation_id.empty()) return fail(Errc::invalid_argument, "store: custom role organisation is empty");
  if (role.name.empty()) return fail(Errc::invalid_argument, "store: custom role name is empty");
  for (std::size_t i = 0; i < role.permissions.size(); ++i) {
    const auto& p = role.permissions[i];
    if (p.empty() || p.find(' ') != std::string::npos) {
      return fail(Errc::invalid_argument, "store: custom role permission names must be non-empty without spaces");
    }
    if (i > 0 && role.permissions[i - 1] >= p) {
      return fail(Errc::invalid_argument, "store: custom role permissions must be sorted without duplicates");
    }
  }
  return ok();
}

Status validate_alert(const AlertRecord& alert) {
  if (alert.id.empty()) return fail(Errc::invalid_argument, "store: alert id is empty");
  if (alert.key.empty()) return fail(Errc::invalid_argument, "store: alert key is empty");
  if (alert.title.empty()) return fail(Errc::invalid_argument, "store: alert title is empty");
  if (alert.source != "rule" && alert.source != "device" && alert.source != "security") {
    return fail(Errc::invalid_argument, "store: alert source is not one of rule, device, security");
  }
  if (alert.severity != "info" && alert.severity != "warning" && alert.severity != "critical") {
    return fail(Errc::invalid_argument, "store: alert severity is not one of info, warning, critical");
  }
  if (alert.opened_at <= 0) return fail(Errc::invalid_argument, "store: alert opened_at is not set");
  return ok();
}

bool is_user_status(std::string_view status) { return status == kUserStatusActive || status == kUserStatusDisabled; }

Status validate_user(const UserRecord& user) {
  if (user.id.empty()) return fail(Errc::invalid_argument, "store: user id is empty");
  if (user.username.empty()) return fail(Errc::invalid_argument, "store: user username is empty");
  if (user.role.empty()) return fail(Errc::invalid_argument, "store: user role is empty");
  if (user.password_hash.empty()) return fail(Errc::invalid_argument, "store: user password hash is empty");
  if (!is_user_status(user.status)) {
    return fail(Errc::invalid_argument,
                fmt::format("store: user status ({} bytes) is not one of active, disabled", user.status.size()));
  }
  return ok();
}

bool is_session_stage(std::string_view stage) {
  return stage == kSessionStageSecondFactor || stage == kSessionStageEnrol || stage == kSessionStageFull;
}

Status validate_console_session(const ConsoleSessionRecord& session) {
  if (session.id_hash.empty()) return fail(Errc::invalid_argument, "store: console session id hash is empty");
  if (session.handle.empty()) return fail(Errc::invalid_argument, "store: console session handle is empty");
  if (session.user_id.empty()) return fail(Errc::invalid_argument, "store: console session user id is empty");
  if (!is_session_stage(session.stage)) {
    return fail(Errc::invalid_argument,
                fmt::format("store: console session stage ({} bytes) is not one of second-factor, enrol, full",
                            session.stage.size()));
  }
  return ok();
}

Status validate_password_reset_token(const PasswordResetToken& token) {
  if (token.token_hash.empty()) return fail(Errc::invalid_argument, "store: password reset token hash is empty");
  if (token.user_id.empty()) return fail(Errc::invalid_argument, "store: password reset token user id is empty");
  return ok();
}

Status validate_api_token(const ApiTokenRecord& token) {
  if (token.id.empty()) return fail(Errc::invalid_argument, "store: API token id is empty");
  if (token.user_id.empty()) return fail(Errc::invalid_argument, "store: API token user id is empty");
  if (token.organisation_id.empty()) return fail(Errc::invalid_argument, "store: API token organisation id is empty");
  if (token.secret_hash.empty()) return fail(Errc::invalid_argument, "store: API token secret hash is empty");
  for (const auto& p : token.permissions) {
    if (p.empty() || p.find(' ') != std::string::npos) {
      return fail(Errc::invalid_argument, "store: API token permission is empty or contains a space");
    }
  }
  return ok();
}

bool is_telemetry_kind(std::string_view kind) {
  return kind == kTelemetryKindTelemetry || kind == kTelemetryKindEvents || kind == kTelemetryKindState ||
         kind == kTelemetryKindResults || kind == kTelemetryKindDerived;
}

std::string_view to_string(ConsumeOutcome outcome) {
  switch (outcome) {
    case ConsumeOutcome::consumed: return "consumed";
    case ConsumeOutcome::unknown: return "unknown";
    case ConsumeOutcome::expired: return "expired";
    case ConsumeOutcome::already_used: return "already_used";
  }
  return "invalid";
}

}  // namespace torii::store

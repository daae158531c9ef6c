#include "identity/devices.h"

#include <algorithm>

#include <fmt/format.h>

#include "crypto/x509.h"
#include "policy/acl.h"
#include "policy/profile.h"

namespace torii::identity {

namespace {

constexpr std::size_t kMaxDeviceNameBytes = 128;
constexpr std::size_t kMaxFieldBytes = 64;

constexpr std::string_view kIdRule =
    "must be 1-63 characters: lower-case letters, digits and '-', starting with a letter or digit";

// A text field's problem, if any.
std::optional<FieldProblem> check_text(std::string_view field, std::string_view value, std::size_t max) {
  if (value.size() > max)
    return FieldProblem{std::string(field), "too_long", fmt::format("must be at most {} bytes", max)};
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f)
      return FieldProblem{std::string(field), "invalid", "must not contain control characters"};
  }
  return std::nullopt;
}

// Sorted and distinct, as the store keeps them.
std::vector<std::string> normal_tags(std::vector<std::string> tags) {
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

// The problems as one invalid_argument error, for callers that show a message.
Error as_error(const std::vector<FieldProblem>& problems) {
  std::string text;
  for (const auto& p : problems) text += fmt::format("{}{}: {}", text.empty() ? "" : "; ", p.field, p.message);
  return Error{make_error_code(Errc::invalid_argument), text};
}

}  // namespace

DeviceRegistry::DeviceRegistry(store::Store& store, keys::KeyRing& keys, pki::CertificateAuthority& ca,
                               const Clock& clock)
    : store_(store), keys_(keys), ca_(ca), clock_(clock) {}

Result<std::vector<FieldProblem>> DeviceRegistry::check(const NewDevice& spec) {
  std::vector<FieldProblem> problems;
  if (!policy::valid_device_id(spec.id)) problems.push_back({"id", "invalid", std::string(kIdRule)});
  for (auto [field, value, max] :
       {std::tuple{"name", std::string_view(spec.name), kMaxDeviceNameBytes},
        std::tuple{"organisation", std::string_view(spec.organisation_id), kMaxFieldBytes},
        std::tuple{"serial_number", std::string_view(spec.serial_number), kMaxFieldBytes},
        std::tuple{"firmware_version", std::string_view(spec.firmware_version), kMaxFieldBytes}}) {
    if (auto problem = check_text(field, value, max)) problems.push_back(std::move(*problem));
  }
  if (spec.organisation_id.empty()) problems.push_back({"organisation", "missing", "must not be empty"});
  // Segments are named in routes, so they follow the same rule as device ids (IIIT N3).
  if (!policy::valid_segment_name(spec.segment)) problems.push_back({"segment", "invalid", std::string(kIdRule)});
  if (!spec.profile_id.empty()) {
    auto profile = store_.device_profiles().find(spec.profile_id);
    if (!profile) return tl::unexpected(profile.error());
    if (!*profile || (*profile)->organisation_id != spec.organisation_id) {
      problems.push_back({"profile", "unknown", "no such device profile in the organisation"});
    }
  }
  for (auto& problem : check_tags(spec.tags)) problems.push_back(std::move(problem));
  return problems;
}

std::vector<FieldProblem> DeviceRegistry::check_tags(const std::vector<std::string>& tags) {
  std::vector<FieldProblem> problems;
  if (!std::all_of(tags.begin(), tags.end(), policy::valid_tag)) {
    problems.push_back({"tags", "invalid", "each " + std::string(kIdRule)});
  } else if (normal_tags(tags).size() > store::kMaxDeviceTags) {
    problems.push_back({"tags", "too_many", fmt::format("must be at most {} different tags", store::kMaxDeviceTags)});
  }
  return problems;
}

Result<store::DeviceRecord> DeviceRegistry::set_tags(std::string_view device_id, std::vector<std::string> tags) {
  if (auto problems = check_tags(tags); !problems.empty()) return tl::unexpected(as_error(problems));
  tags = normal_tags(std::move(tags));
  Result<store::DeviceRecord> changed = fail(Errc::not_found, "no device with this id");
  auto st = store_.transaction([&]() -> Status {
    if (auto set = store_.devices().set_tags(device_id, tags); !set) return set;
    auto found = store_.devices().find(device_id);
    if (!found) return tl::unexpected(found.error());
    if (!*found) return fail(Errc::not_found, "no device with this id");
    changed = std::move(**found);
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  return changed;
}

Result<DeviceBundle> DeviceRegistry::create(const NewDevice& spec) {
  auto problems = check(spec);
  if (!problems) return tl::unexpected(problems.error());
  if (!problems->empty()) return tl::unexpected(as_error(*problems));

  if (spec.enrolment && spec.csr_pem) {
    return fail(Errc::invalid_argument, "a device awaiting enrolment sends its CSR when it enrols");
  }

  DeviceBundle bundle;
  auto ca_bundle = ca_bundle_pem();
  if (!ca_bundle) return tl::unexpected(ca_bundle.error());
  bundle.ca_bundle_pem = std::move(*ca_bundle);

  std::string csr;
  if (spec.csr_pem) {
    csr = *spec.csr_pem;
  } else if (!spec.enrolment) {
    auto key = crypto::generate_p256_key();
    if (!key) return tl::unexpected(key.error());
    auto made = crypto::make_csr(*key, spec.id);
    if (!made) return tl::unexpected(made.error());
    csr = std::move(*made);
    bundle.private_key_pem = std::move(*key);
  }

  auto st = store_.transaction([&]() -> Status {
    if (!spec.profile_id.empty()) {
      auto profile = store_.device_profiles().find(spec.profile_id);
      if (!profile) return tl::unexpected(profile.error());
      if (!*profile || (*profile)->organisation_id != spec.organisation_id) {
        return fail(Errc::invalid_argument, "no such device profile in the organisation");
      }
    }
    store::DeviceRecord device;
    device.id = spec.id;
    device.organisation_id = spec.organisation_id;
    device.name = spec.name.empty() ? spec.id : spec.name;
    device.profile_id = spec.profile_id;
    device.segment = spec.segment;
    device.serial_number = spec.serial_number;
    device.firmware_version = spec.firmware_version;
    device.tags = normal_tags(spec.tags);
    device.created_at = to_unix_millis(clock_.now());
    if (auto inserted = store_.devices().insert(device); !inserted) {
      if (inserted.error().is(Errc::already_exists)) return fail(Errc::already_exists, "a device with this id exists");
      return inserted;
    }
    if (auto key = keys_.ensure_data_key(keys::device_key_id(spec.id), "device"); !key) return key;
    if (!spec.enrolment) {
      auto cert = ca_.issue_device_certificate(csr, spec.id);
      if (!cert) return tl::unexpected(cert.error());
      bundle.certificate = std::move(*cert);
    }
    bundle.device = std::move(device);
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  return bundle;
}

Result<std::string> DeviceRegistry::ca_bundle_pem() {
  auto root = ca_.root_certificate_pem();
  if (!root) return tl::unexpected(root.error());
  auto issuing = ca_.issuing_certificate_pem();
  if (!issuing) return tl::unexpected(issuing.error());
  return *issuing + *root;
}

Result<store::CertificateRecord> DeviceRegistry::issue_certificate(std::string_view device_id,
                                                                   std::string_view csr_pem) {
  auto device = store_.devices().find(device_id);
  if (!device) return tl::unexpected(device.error());
  if (!*device) return fail(Errc::not_found, "no such device");
  if ((*device)->status != store::kDeviceStatusActive) return fail(Errc::permission_denied, "the device is disabled");
  return ca_.issue_device_certificate(csr_pem, device_id);
}

Status DeviceRegistry::disable(std::string_view device_id, std::string_view reason) {
  auto st = store_.devices().set_status(device_id, store::kDeviceStatusDisabled, to_unix_millis(clock_.now()), reason);
  if (!st && st.error().is(Errc::not_found)) return fail(Errc::not_found, "no such device");
  return st;
}

Status DeviceRegistry::enable(std::string_view device_id) {
  auto st = store_.devices().set_status(device_id, store::kDeviceStatusActive, 0, "");
  if (!st && st.error().is(Errc::not_found)) return fail(Errc::not_found, "no such device");
  return st;
}

Result<std::vector<std::string>> DeviceRegistry::revoke_certificates(std::string_view device_id,
                                                                     std::string_view reason) {
  std::vector<std::string> serials;
  auto st = store_.transaction([&]() -> Status {
    auto device = store_.devices().find(device_id);
    if (!device) return tl::unexpected(device.error());
    auto certs = store_.certificates().list_for_device(device_id);
    if (!certs) return tl::unexpected(certs.error());
    if (!*device && certs->empty()) return fail(Errc::not_found, "no such device");
    for (const auto& c : *certs) {
      if (c.revoked_at) continue;
      if (auto revoked = ca_.revoke(c.serial_hex, reason); !revoked) return revoked;
      serials.push_back(c.serial_hex);
    }
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  return serials;
}

Status DeviceRegistry::remove(std::string_view device_id) {
  auto st = store_.transaction([&]() -> Status {
    auto revoked = revoke_certificates(device_id, "device deleted");
    if (!revoked) return tl::unexpected(revoked.error());
    auto removed = store_.devices().remove(device_id);
    if (!removed) return tl::unexpected(removed.error());
    return ok();
  });
  if (!st) return st;
  // After the commit: the rows are gone; destroying the key makes any copy of them
  // (backups, free pages) unreadable.
  auto destroyed = keys_.destroy_data_key(keys::device_key_id(device_id));
  if (!destroyed) return tl::unexpected(destroyed.error());
  return ok();
}

Result<std::vector<std::string>> DeviceRegistry::disable_unused(std::chrono::hours unused_for) {
  const auto now = clock_.now();
  auto unused = store_.devices().list_unused_since(to_unix_millis(now - unused_for));
  if (!unused) return tl::unexpected(unused.error());
  std::vector<std::string> ids;
  for (const auto& d : *unused) {
    if (auto st =
            store_.devices().set_status(d.id, store::kDeviceStatusDisabled, to_unix_millis(now), "unused for too long");
        !st) {
      return tl::unexpected(st.error());
    }
    ids.push_back(d.id);
  }
  return ids;
}

std::vector<FieldProblem> DeviceRegistry::check_profile(const store::DeviceProfileRecord& profile) {
  std::vector<FieldProblem> problems;
  if (!policy::valid_device_id(profile.id)) problems.push_back({"id", "invalid", std::string(kIdRule)});
  if (auto problem = check_text("name", profile.name, kMaxDeviceNameBytes)) problems.push_back(std::move(*problem));
  if (auto parsed = policy::parse_profile(profile.definition_json); !parsed) {
    for (const auto& p : parsed.error()) {
      problems.push_back({p.path.empty() ? "definition" : "definition." + p.path, "invalid", p.message});
    }
  }
  return problems;
}

Status DeviceRegistry::put_profile(const store::DeviceProfileRecord& profile) {
  if (auto problems = check_profile(profile); !problems.empty()) {
    return tl::unexpected(as_error(problems));
  }
  store::DeviceProfileRecord stored = profile;
  stored.updated_at = to_unix_millis(clock_.now());
  auto version = store_.device_profiles().put(stored);
  if (!version) return tl::unexpected(version.error());
  return ok();
}

}  // namespace torii::identity

#include "identity/enrolment.h"

#include "crypto/sodium.h"

namespace torii::identity {

namespace {

constexpr std::string_view kTokenHashDomain = "torii device enrolment";

std::string token_hash(std::string_view token) { return crypto::token_hash(kTokenHashDomain, token); }

EnrolmentRefusal refusal_of(store::ConsumeOutcome outcome) {
  switch (outcome) {
    case store::ConsumeOutcome::expired: return EnrolmentRefusal::expired;
    case store::ConsumeOutcome::already_used: return EnrolmentRefusal::used;
    case store::ConsumeOutcome::unknown:
    case store::ConsumeOutcome::consumed: break;
  }
  return EnrolmentRefusal::unknown;
}

}  // namespace

std::string_view to_string(EnrolmentRefusal refusal) {
  switch (refusal) {
    case EnrolmentRefusal::unknown: return "unknown";
    case EnrolmentRefusal::used: return "used";
    case EnrolmentRefusal::expired: return "expired";
    case EnrolmentRefusal::device_disabled: return "device_disabled";
    case EnrolmentRefusal::bad_csr: return "bad_csr";
  }
  return "unknown";
}

Enrolment::Enrolment(store::Store& store, DeviceRegistry& devices, const Clock& clock, Random& random)
    : store_(store), devices_(devices), clock_(clock), random_(random) {}

Result<EnrolmentTicket> Enrolment::issue(const store::DeviceRecord& device, std::string_view created_by,
                                         std::chrono::hours lifetime) {
  const auto now = clock_.now();
  EnrolmentTicket ticket{device, crypto::random_token(random_), to_unix_millis(now + lifetime)};
  store::EnrolmentToken row{token_hash(ticket.token), device.id,    device.organisation_id, to_unix_millis(now),
                            ticket.expires_at,        std::nullopt, std::string(created_by)};
  if (auto st = store_.enrolment_tokens().issue(row); !st) return tl::unexpected(st.error());
  return ticket;
}

Result<std::pair<DeviceBundle, EnrolmentTicket>> Enrolment::create_device(NewDevice spec, std::string_view created_by,
                                                                          std::chrono::hours lifetime) {
  spec.enrolment = true;
  std::optional<std::pair<DeviceBundle, EnrolmentTicket>> out;
  auto st = store_.transaction([&]() -> Status {
    auto bundle = devices_.create(spec);
    if (!bundle) return tl::unexpected(bundle.error());
    auto ticket = issue(bundle->device, created_by, lifetime);
    if (!ticket) return tl::unexpected(ticket.error());
    out.emplace(std::move(*bundle), std::move(*ticket));
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  return std::move(*out);
}

Result<EnrolmentTicket> Enrolment::issue_token(std::string_view device_id, std::string_view created_by,
                                               std::chrono::hours lifetime) {
  std::optional<EnrolmentTicket> out;
  auto st = store_.transaction([&]() -> Status {
    auto device = store_.devices().find(device_id);
    if (!device) return tl::unexpected(device.error());
    if (!*device) return fail(Errc::not_found, "no such device");
    if ((*device)->status != store::kDeviceStatusActive) return fail(Errc::permission_denied, "the device is disabled");
    auto ticket = issue(**device, created_by, lifetime);
    if (!ticket) return tl::unexpected(ticket.error());
    out = std::move(*ticket);
    return ok();
  });
  if (!st) return tl::unexpected(st.error());
  return std::move(*out);
}

Result<EnrolOutcome> Enrolment::enrol(std::string_view token, std::string_view csr_pem) {
  const std::string hash = token_hash(token);
  const UnixMillis now = to_unix_millis(clock_.now());
  auto ca_bundle = devices_.ca_bundle_pem();
  if (!ca_bundle) return tl::unexpected(ca_bundle.error());
  EnrolOutcome outcome;
  // One transaction: the consumption decides (atomically: of two requests with one token,
  // one gets it), and the token is used up only together with the certificate it let
  // through, so a CSR that is refused leaves it for the device's next try.
  auto st = store_.transaction([&]() -> Status {
    auto consumed = store_.enrolment_tokens().consume(hash, now);
    if (!consumed) return tl::unexpected(consumed.error());
    if (consumed->outcome != store::ConsumeOutcome::consumed) {
      outcome.refused = refusal_of(consumed->outcome);
      return ok();
    }
    outcome.device_id = consumed->device_id;
    auto device = store_.devices().find(consumed->device_id);
    if (!device) return tl::unexpected(device.error());
    if (!*device) {
      outcome.refused = EnrolmentRefusal::unknown;
      return fail(Errc::not_found, "the token's device is gone");
    }
    outcome.organisation_id = (*device)->organisation_id;
    auto certificate = devices_.issue_certificate(consumed->device_id, csr_pem);
    if (!certificate) {
      if (certificate.error().is(Errc::permission_denied)) {
        outcome.refused = EnrolmentRefusal::device_disabled;
      } else if (certificate.error().is(Errc::invalid_argument) ||
                 certificate.error().is(Errc::authentication_failed)) {
        outcome.refused = EnrolmentRefusal::bad_csr;
      }
      return tl::unexpected(certificate.error());  // undoes the consumption
    }
    outcome.enrolled = Enrolled{std::move(**device), std::move(*certificate), std::move(*ca_bundle)};
    return ok();
  });
  // A refusal rolled back on purpose is an answer, not a failure.
  if (!st && !outcome.refused) return tl::unexpected(st.error());
  if (outcome.refused && outcome.device_id.empty()) {
    // Whose token it was, for the log only (a used or expired one still names its device).
    auto stored = store_.enrolment_tokens().find(hash);
    if (!stored) return tl::unexpected(stored.error());
    if (*stored) {
      outcome.device_id = (*stored)->device_id;
      outcome.organisation_id = (*stored)->organisation_id;
    }
  }
  return outcome;
}

}  // namespace torii::identity

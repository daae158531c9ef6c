#include "agent/renewal.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace torii::agent {

using nlohmann::json;

std::chrono::system_clock::time_point renewal_due(std::chrono::system_clock::time_point not_before,
                                                  std::chrono::system_clock::time_point not_after, double renew_at) {
  const double fraction = std::clamp(renew_at, 0.0, 1.0);
  const auto lifetime = std::chrono::duration_cast<std::chrono::milliseconds>(not_after - not_before);
  const auto passed =
      std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(lifetime.count()) * fraction));
  return not_before + passed;
}

RenewalStep renewal_step(std::chrono::system_clock::time_point not_before,
                         std::chrono::system_clock::time_point not_after, std::chrono::system_clock::time_point now,
                         double renew_at) {
  if (now >= not_after) return RenewalStep::reenrol;
  if (now >= renewal_due(not_before, not_after, renew_at)) return RenewalStep::renew;
  return RenewalStep::wait;
}

std::string renewal_request_payload(std::string_view request_id, std::string_view csr_pem) {
  return json{{"id", request_id}, {"csr", csr_pem}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<RenewalAnswer> parse_renewal_answer(std::string_view text) {
  const auto parsed = json::parse(text, nullptr, false);
  const auto text_field = [&](const char* name) -> std::string {
    const auto it = parsed.find(name);
    return it != parsed.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (!parsed.is_object()) return fail(Errc::invalid_argument, "a renewal answer is a JSON object");
  RenewalAnswer answer;
  answer.id = text_field("id");
  if (answer.id.empty()) return fail(Errc::invalid_argument, "a renewal answer names its request's id");
  answer.error = text_field("error");
  if (!answer.error.empty()) return answer;
  answer.certificate_pem = text_field("certificate_pem");
  answer.ca_bundle_pem = text_field("ca_bundle_pem");
  if (answer.certificate_pem.empty() || answer.ca_bundle_pem.empty()) {
    return fail(Errc::invalid_argument, "a renewal answer holds an error or a certificate and a CA bundle");
  }
  return answer;
}

}  // namespace torii::agent

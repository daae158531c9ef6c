// A device host's posture report judged against its profile's PosturePolicy (JPCERT IV-1…
// IV-4, V-1, V-2). Pure: the report's JSON text in, findings out.
//
// The report is the agent's (docs/agent.md, "Posture of the host"); it is the device's own
// account, so what a finding quotes from it is checked first: ports and protocols as
// numbers and tcp/udp, service, security and console names only when they are short words,
// account names only when they look like account names, an SSID only when it is printable
// ASCII of at most 32 bytes, a debug interface's kind only when it is one the agent reports
// and its detail only when it is printable ASCII of at most 64 bytes. Anything else is left
// out of the finding (it stays in the stored message).
#pragma once

#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "policy/profile.h"

namespace torii::policy {

struct PostureFinding {
  std::string kind;    // port_not_allowed, remote_access, upnp, wifi_security, wps, serial_console,
                       // passwordless_account, debug_interface
  std::string detail;  // "tcp/22 (ssh) on 0.0.0.0", "Wi-Fi 'plant-ap' is open", "ttyS0", "kiosk",
                       // "kgdb: kgdboc=ttyS0,115200"
  friend bool operator==(const PostureFinding&, const PostureFinding&) = default;
  friend bool operator<(const PostureFinding& a, const PostureFinding& b) {
    return std::tie(a.kind, a.detail) < std::tie(b.kind, b.detail);
  }
};

// The rank of a Wi-Fi security mode: open 0, wep 1, wpa-psk 2, wpa2-psk and wpa-eap 3,
// wpa3-sae 4; -1 for anything else.
[[nodiscard]] int wifi_security_rank(std::string_view security);

// Every finding of a report, sorted, each once; none for a report that is not a JSON object
// (the gateway stores such a message like any other state message).
[[nodiscard]] std::vector<PostureFinding> evaluate_posture(const PosturePolicy& policy, std::string_view report);

}  // namespace torii::policy

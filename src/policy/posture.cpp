#include "policy/posture.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace torii::policy {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxFindings = 64;

bool is_word(std::string_view s, std::size_t max) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

bool printable(std::string_view s, std::size_t max) {
  return !s.empty() && s.size() <= max &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f && c != '\''; });
}

bool address_text(std::string_view s) {
  return !s.empty() && s.size() <= 45 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' || c == ':';
  });
}

bool loopback(std::string_view address) {
  return address.starts_with("127.") || address == "::1" || address.starts_with("::ffff:127.");
}

std::string_view text(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get_ref<const std::string&>();
}

std::vector<std::string_view> words(const json& object, const char* key) {
  std::vector<std::string_view> out;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get_ref<const std::string&>());
  }
  return out;
}

}  // namespace

int wifi_security_rank(std::string_view security) {
  if (security == "open") return 0;
  if (security == "wep") return 1;
  if (security == "wpa-psk") return 2;
  if (security == "wpa2-psk" || security == "wpa-eap") return 3;
  if (security == "wpa3-sae") return 4;
  return -1;
}

std::vector<PostureFinding> evaluate_posture(const PosturePolicy& policy, std::string_view report) {
  std::vector<PostureFinding> out;
  const auto root = json::parse(report, nullptr, false);
  if (!root.is_object()) return out;
  const auto add = [&](std::string kind, std::string detail) {
    if (out.size() < kMaxFindings) out.push_back({std::move(kind), std::move(detail)});
  };

  if (const auto it = root.find("listening"); it != root.end() && it->is_array()) {
    for (const auto& s : *it) {
      if (!s.is_object()) continue;
      const auto protocol = text(s, "protocol");
      const auto address = text(s, "address");
      const auto port_it = s.find("port");
      if ((protocol != "tcp" && protocol != "udp") || port_it == s.end() || !port_it->is_number_unsigned()) continue;
      const auto port = port_it->get<std::uint64_t>();
      if (port == 0 || port > 65535 || loopback(address)) continue;
      const std::string rule = fmt::format("{}/{}", protocol, port);
      const std::string where = address_text(address) ? fmt::format(" on {}", address) : std::string();
      const auto service = text(s, "service");
      // Telnet sends passwords in the clear: never allowed, whatever the profile says.
      if (!service.empty() && (!policy.remote_access || service == "telnet")) {
        add("remote_access",
            fmt::format("{}{}{}", rule, is_word(service, 16) ? fmt::format(" ({})", service) : std::string(), where));
      } else if (policy.allowed_ports && std::find(policy.allowed_ports->begin(), policy.allowed_ports->end(), rule) ==
                                             policy.allowed_ports->end()) {
        add("port_not_allowed", rule + where);
      }
    }
  }
  if (const auto it = root.find("upnp"); it != root.end() && it->is_boolean() && it->get<bool>() && !policy.upnp) {
    add("upnp", "a UPnP responder (SSDP, UDP 1900) or miniupnpd");
  }
  if (const auto it = root.find("wifi"); it != root.end() && it->is_array()) {
    const int minimum = wifi_security_rank(policy.min_wifi_security);
    for (const auto& n : *it) {
      if (!n.is_object()) continue;
      const auto ssid = text(n, "ssid");
      const std::string name = printable(ssid, 32) ? fmt::format("Wi-Fi '{}'", ssid) : std::string("a Wi-Fi network");
      const auto security = text(n, "security");
      const int rank = wifi_security_rank(security);
      if (rank < minimum) {
        add("wifi_security", rank >= 0 ? fmt::format("{} is {}, below {}", name, security, policy.min_wifi_security)
                                       : fmt::format("{} has an unknown security mode", name));
      }
      if (const auto wps = n.find("wps"); wps != n.end() && wps->is_boolean() && wps->get<bool>() && !policy.wps) {
        add("wps", fmt::format("{} has WPS on", name));
      }
    }
  }
  if (!policy.serial_consoles) {
    for (const auto tty : words(root, "serial_consoles"))
      add("serial_console", is_word(tty, 16) ? std::string(tty) : "");
  }
  if (!policy.passwordless_accounts) {
    for (const auto account : words(root, "passwordless_accounts")) {
      add("passwordless_account", is_word(account, 32) ? std::string(account) : "");
    }
  }
  if (const auto it = root.find("debug_interfaces"); it != root.end() && it->is_array() && !policy.debug_interfaces) {
    for (const auto& d : *it) {
      if (!d.is_object()) continue;
      const auto kind = text(d, "kind");
      const auto detail = text(d, "detail");
      const bool known = kind == "debugfs" || kind == "adb" || kind == "kgdb" || kind == "sysrq";
      const std::string name = known ? std::string(kind) : "a debug interface";
      add("debug_interface", printable(detail, 64) ? fmt::format("{}: {}", name, detail) : name);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace torii::policy

#include "policy/posture.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::policy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::string_view kReport = R"({"type": "posture", "ts": 1, "id": "a-1",
  "listening": [{"protocol": "tcp", "address": "0.0.0.0", "port": 22, "service": "ssh"},
                {"protocol": "tcp", "address": "127.0.0.1", "port": 23, "service": "telnet"},
                {"protocol": "tcp", "address": "::", "port": 8080},
                {"protocol": "udp", "address": "0.0.0.0", "port": 123},
                {"protocol": "tcp", "address": "::", "port": 2323, "service": "telnet"}],
  "upnp": true,
  "wifi": [{"source": "/etc/hostapd.conf", "ssid": "plant-ap", "security": "wpa2-psk", "wps": true},
           {"source": "/etc/wpa_supplicant.conf", "ssid": "cafe", "security": "open", "wps": false}],
  "serial_consoles": ["ttyS0"], "passwordless_accounts": ["kiosk"],
  "debug_interfaces": [{"kind": "kgdb", "detail": "kgdboc=ttyS0,115200"}, {"kind": "sysrq", "detail": "sysrq=1"}],
  "unreadable": []})";

TEST(PosturePolicy, TheStrictDefaultsFindEverythingButUnlistedPorts) {
  EXPECT_THAT(
      evaluate_posture(PosturePolicy{}, kReport),
      ElementsAre(PostureFinding{"debug_interface", "kgdb: kgdboc=ttyS0,115200"},
                  PostureFinding{"debug_interface", "sysrq: sysrq=1"}, PostureFinding{"passwordless_account", "kiosk"},
                  PostureFinding{"remote_access", "tcp/22 (ssh) on 0.0.0.0"},
                  PostureFinding{"remote_access", "tcp/2323 (telnet) on ::"}, PostureFinding{"serial_console", "ttyS0"},
                  PostureFinding{"upnp", "a UPnP responder (SSDP, UDP 1900) or miniupnpd"},
                  PostureFinding{"wifi_security", "Wi-Fi 'cafe' is open, below wpa2-psk"},
                  PostureFinding{"wps", "Wi-Fi 'plant-ap' has WPS on"}));
}

TEST(PosturePolicy, AProfileMayAllowWhatItsDevicesNeed) {
  PosturePolicy policy;
  policy.allowed_ports = std::vector<std::string>{"udp/123"};
  policy.remote_access = true;
  policy.upnp = true;
  policy.wps = true;
  policy.serial_consoles = true;
  policy.passwordless_accounts = true;
  policy.debug_interfaces = true;
  policy.min_wifi_security = "open";
  // Remote access allowed, the ssh port is judged as any other: not in the list. Telnet is
  // never allowed.
  EXPECT_THAT(evaluate_posture(policy, kReport),
              ElementsAre(PostureFinding{"port_not_allowed", "tcp/22 on 0.0.0.0"},
                          PostureFinding{"port_not_allowed", "tcp/8080 on ::"},
                          PostureFinding{"remote_access", "tcp/2323 (telnet) on ::"}));
  policy.allowed_ports->push_back("tcp/22");
  policy.allowed_ports->push_back("tcp/8080");
  policy.allowed_ports->push_back("tcp/2323");
  EXPECT_THAT(evaluate_posture(policy, kReport),
              ElementsAre(PostureFinding{"remote_access", "tcp/2323 (telnet) on ::"}));
}

TEST(PosturePolicy, WhatTheDeviceWroteIsQuotedOnlyWhenItIsPlain) {
  const auto findings = evaluate_posture(PosturePolicy{}, R"({
    "listening": [{"protocol": "tcp", "address": "<script>", "port": 22, "service": "ssh; rm -rf /"},
                  {"protocol": "sctp", "address": "0.0.0.0", "port": 22, "service": "ssh"},
                  {"protocol": "tcp", "address": "0.0.0.0", "port": 70000, "service": "ssh"}],
    "wifi": [{"ssid": "it's\u0001", "security": "wep"}, {"ssid": "x", "security": "rot13"}],
    "serial_consoles": ["ttyS0 && reboot"], "passwordless_accounts": ["../../etc"],
    "debug_interfaces": [{"kind": "<b>jtag</b>", "detail": "x"}, {"kind": "debugfs", "detail": "/d\nINJECTED"},
                         {"kind": "adb"}, "adb"]})");
  EXPECT_THAT(
      findings,
      ElementsAre(PostureFinding{"debug_interface", "a debug interface: x"}, PostureFinding{"debug_interface", "adb"},
                  PostureFinding{"debug_interface", "debugfs"}, PostureFinding{"passwordless_account", ""},
                  PostureFinding{"remote_access", "tcp/22"}, PostureFinding{"serial_console", ""},
                  PostureFinding{"wifi_security", "Wi-Fi 'x' has an unknown security mode"},
                  PostureFinding{"wifi_security", "a Wi-Fi network is wep, below wpa2-psk"}));
  EXPECT_THAT(evaluate_posture(PosturePolicy{}, "not json"), IsEmpty());
  EXPECT_THAT(evaluate_posture(PosturePolicy{}, "[]"), IsEmpty());
}

TEST(PosturePolicy, TheProfileDefinesItsPolicyAndEveryProblemIsNamed) {
  const auto profile = parse_profile(R"({"metrics": [], "posture": {"allowed_ports": ["tcp/8883", "udp/123"],
                                         "remote_access": true, "min_wifi_security": "wpa3-sae",
                                         "debug_interfaces": true}})");
  ASSERT_TRUE(profile) << format_problems(profile.error());
  ASSERT_TRUE(profile->posture().allowed_ports);
  EXPECT_THAT(*profile->posture().allowed_ports, ElementsAre("tcp/8883", "udp/123"));
  EXPECT_TRUE(profile->posture().remote_access);
  EXPECT_FALSE(profile->posture().upnp);
  EXPECT_TRUE(profile->posture().debug_interfaces);
  EXPECT_EQ(profile->posture().min_wifi_security, "wpa3-sae");
  EXPECT_EQ(parse_profile(R"({"metrics": []})")->posture(), PosturePolicy{});

  const auto bad = parse_profile(R"({"metrics": [], "posture": {"allowed_ports": ["tcp/0", "http/80", "tcp/080"],
                                     "upnp": "no", "debug_interfaces": 0, "min_wifi_security": "wpa-eap", "ports": []}})");
  ASSERT_FALSE(bad);
  std::vector<std::string> paths;
  for (const auto& p : bad.error()) paths.push_back(p.path);
  EXPECT_THAT(paths, ::testing::UnorderedElementsAre(
                         "posture.allowed_ports[0]", "posture.allowed_ports[1]", "posture.allowed_ports[2]",
                         "posture.upnp", "posture.debug_interfaces", "posture.min_wifi_security", "posture.ports"));
}

}  // namespace
}  // namespace torii::policy

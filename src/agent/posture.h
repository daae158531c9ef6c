// The security posture of the agent's host (JPCERT IV-1…IV-4, V-1, V-2), read from its
// files: what listens on the network, remote-access services, a UPnP responder, Wi-Fi
// security and WPS, login consoles on serial ports, accounts without a password, and debug
// interfaces software can see (debugfs, adb, kgdb, magic SysRq; JTAG and SWD pins cannot be
// seen from software and are not reported).
//
// The parsers are pure (text in, values out) so that they are tested on fixture text and
// fuzzed; collect_posture() reads the files under a root directory ("/" on a device, a
// fixture tree in tests) and never fails as a whole: a file it cannot read is named in
// `unreadable` (e.g. /etc/shadow when the agent does not run as root) and the rest is
// still reported.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace torii::agent {

struct ListeningSocket {
  std::string protocol;  // tcp, udp (both families)
  std::string address;   // "0.0.0.0", "127.0.0.1", "::", "::1", ...
  std::uint16_t port = 0;
  friend bool operator==(const ListeningSocket&, const ListeningSocket&) = default;
};

// The sockets of a /proc/net/{tcp,tcp6,udp,udp6} table that wait for peers: TCP in LISTEN
// (state 0A); UDP bound with no remote peer. `protocol` is "tcp" or "udp"; IPv6 tables are
// recognised by their address width. Malformed lines are skipped.
[[nodiscard]] std::vector<ListeningSocket> parse_proc_net(std::string_view table, std::string_view protocol);

// The remote-access service usually behind a port: "ssh" (22), "telnet" (23, 2323), "rdp"
// (3389), "vnc" (5900-5903), "ftp" (21), "rlogin"/"rsh"/"rexec" (513/514/512, TCP), "adb"
// (5555), "winbox" (8291); nullopt otherwise.
[[nodiscard]] std::optional<std::string_view> remote_access_service(const ListeningSocket& socket);

struct WifiNetwork {
  std::string source;    // the file it was found in
  std::string ssid;      // empty when the file does not say
  std::string security;  // open, wep, wpa-psk, wpa2-psk, wpa3-sae, wpa-eap, unknown
  bool wps = false;      // Wi-Fi Protected Setup enabled
  friend bool operator==(const WifiNetwork&, const WifiNetwork&) = default;
};

// network={...} blocks of a wpa_supplicant.conf; a top-level config_methods naming
// push_button, keypad, display or label (WPS) marks every network wps.
[[nodiscard]] std::vector<WifiNetwork> parse_wpa_supplicant(std::string_view text, std::string_view source);
// A hostapd.conf access point: wpa=, wpa_key_mgmt=, wep_key*, wps_state= (1 or 2: on).
[[nodiscard]] std::vector<WifiNetwork> parse_hostapd(std::string_view text, std::string_view source);
// A NetworkManager keyfile (system-connections/*.nmconnection) of type wifi:
// [wifi] ssid=, [wifi-security] key-mgmt=, wep-key0=, wps-method= (flags 2, 4 or 8: WPS).
[[nodiscard]] std::vector<WifiNetwork> parse_networkmanager(std::string_view text, std::string_view source);

// Serial lines (ttyS*, ttyAMA*, ttyUSB*, ttyACM*, ttymxc*, ttySAC*, ttyO*, hvc*, and ttyGS*,
// a USB gadget's serial port) that an /etc/inittab entry runs a getty on.
[[nodiscard]] std::vector<std::string> parse_inittab(std::string_view text);
// The same for systemd: the instance of a serial-getty@TTY.service or getty@TTY.service file
// name (an enabled unit's link in a *.wants directory), when TTY is a serial line.
[[nodiscard]] std::optional<std::string> serial_getty_unit(std::string_view file_name);

// Accounts of an /etc/shadow whose password field is empty: anyone may sign in as them.
// Locked ("!...", "*") and hashed fields are fine.
[[nodiscard]] std::vector<std::string> parse_shadow_without_password(std::string_view text);

// A debug interface the host offers (JPCERT IV-1). `kind` is one of:
//   debugfs  the kernel's debug file system is mounted (detail: the mount point)
//   adb      the Android debug bridge: a socket on TCP 5555 (detail "tcp/5555 on ADDRESS"), an
//            enabled adbd unit or init script, or a USB gadget's ffs.adb function
//   kgdb     the kernel debugger on a serial line: kgdboc set in sysfs or kgdboc=, ekgdboc=
//            or kgdbwait on the kernel command line (detail: that setting)
//   sysrq    magic SysRq keys enabled, from the serial console's break too (detail "sysrq=N")
struct DebugInterface {
  std::string kind;
  std::string detail;
  friend bool operator==(const DebugInterface&, const DebugInterface&) = default;
  friend bool operator<(const DebugInterface& a, const DebugInterface& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.detail < b.detail;
  }
};

// Mount points of debugfs in a /proc/mounts table (fields: device, mount point, type, ...).
[[nodiscard]] std::vector<std::string> parse_debugfs_mounts(std::string_view mounts);
// The kgdb settings of a kernel command line (/proc/cmdline): kgdboc=..., ekgdboc=...,
// kgdbwait, in order.
[[nodiscard]] std::vector<std::string> parse_kgdb_cmdline(std::string_view cmdline);
// /proc/sys/kernel/sysrq: the bitmask of SysRq functions enabled (0: none, 1: all); nullopt
// when the text is not a number.
[[nodiscard]] std::optional<std::uint32_t> parse_sysrq(std::string_view text);
// Whether an enabled unit's file name starts adbd: adbd.service, android-tools-adbd.service.
[[nodiscard]] bool adbd_unit(std::string_view file_name);

struct PostureReport {
  std::vector<ListeningSocket> listening;
  std::vector<ListeningSocket> remote_access;  // those of `listening` that remote_access_service() names
  bool upnp = false;                           // UDP 1900 bound, or a miniupnpd configuration
  std::vector<WifiNetwork> wifi;
  std::vector<std::string> serial_consoles;
  std::vector<std::string> passwordless_accounts;
  std::vector<DebugInterface> debug_interfaces;  // sorted, each once
  std::vector<std::string> unreadable;           // files that exist but could not be read
};

// Reads root/proc/net/{tcp,tcp6,udp,udp6}, root/etc/wpa_supplicant/*.conf and
// root/etc/wpa_supplicant.conf, root/etc/hostapd/*.conf and root/etc/hostapd.conf,
// root/etc/NetworkManager/system-connections/*, root/etc/miniupnpd/miniupnpd.conf,
// root/etc/inittab, root/etc/systemd/system/*.wants/, root/etc/shadow, and for debug
// interfaces root/proc/mounts, root/proc/cmdline, root/proc/sys/kernel/sysrq,
// root/sys/module/kgdboc/parameters/kgdboc, root/etc/init.d/{adbd,android-tools-adbd} and
// root/sys/kernel/config/usb_gadget/*/functions/.
[[nodiscard]] PostureReport collect_posture(const std::filesystem::path& root);

// The message the agent sends on its state topic: {"type": "posture", "ts", "id",
// "listening": [{"protocol", "address", "port", "service"?}], "upnp", "wifi": [{"source",
// "ssid", "security", "wps"}], "serial_consoles", "passwordless_accounts", "debug_interfaces":
// [{"kind", "detail"}], "unreadable"}.
[[nodiscard]] std::string posture_message(const PostureReport& report, std::int64_t ts_ms, std::string_view id);

}  // namespace torii::agent

#include "agent/posture.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace torii::agent {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kTcpListen = "0A";
constexpr std::size_t kMaxFileBytes = std::size_t{4} << 20;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// trim() and line ends: for one-value files such as /proc/sys/kernel/sysrq.
std::string_view trim_value(std::string_view s) {
  s = trim(s);
  while (!s.empty() && s.back() == '\n') s = trim(s.substr(0, s.size() - 1));
  return s;
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto end = text.find('\n');
    out.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const auto start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::optional<std::uint32_t> hex32(std::string_view text) {
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "0100007F" (IPv4) or 32 hex digits (IPv6), each 32-bit word as the kernel printed it in
// host (little-endian) order.
std::optional<std::string> proc_address(std::string_view hex) {
  if (hex.size() != 8 && hex.size() != 32) return std::nullopt;
  std::array<std::uint8_t, 16> bytes{};
  const std::size_t words = hex.size() / 8;
  for (std::size_t w = 0; w < words; ++w) {
    const auto word = hex32(hex.substr(w * 8, 8));
    if (!word) return std::nullopt;
    for (std::size_t b = 0; b < 4; ++b) bytes[w * 4 + b] = static_cast<std::uint8_t>(*word >> (8 * b));
  }
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (::inet_ntop(words == 1 ? AF_INET : AF_INET6, bytes.data(), text.data(), static_cast<socklen_t>(text.size())) ==
      nullptr) {
    return std::nullopt;
  }
  return std::string(text.data());
}

bool serial_line(std::string_view tty) {
  if (tty.starts_with("/dev/")) tty.remove_prefix(5);
  constexpr std::array<std::string_view, 9> kPrefixes{"ttyS",   "ttyAMA", "ttyUSB", "ttyACM", "ttymxc",
                                                      "ttySAC", "ttyO",   "hvc",    "ttyGS"};
  return std::any_of(kPrefixes.begin(), kPrefixes.end(), [&](std::string_view p) {
    return tty.size() > p.size() && tty.starts_with(p) &&
           std::all_of(tty.begin() + static_cast<std::ptrdiff_t>(p.size()), tty.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
  });
}

// key=value (or key value) with surrounding spaces and quotes removed.
std::pair<std::string_view, std::string_view> key_value(std::string_view line) {
  const auto eq = line.find('=');
  if (eq == std::string_view::npos) return {trim(line), {}};
  auto value = trim(line.substr(eq + 1));
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
  return {trim(line.substr(0, eq)), value};
}

std::optional<std::string> read_text(const fs::path& path, std::vector<std::string>& unreadable) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  const auto size = fs::file_size(path, ec);
  if (!in || ec) {
    unreadable.push_back(path.string());
    return std::nullopt;
  }
  std::string text(std::min<std::uintmax_t>(size, kMaxFileBytes), '\0');  // more is not a configuration
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

// /proc files report a size of 0: read them to the end.
std::optional<std::string> read_proc(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<ListeningSocket> parse_proc_net(std::string_view table, std::string_view protocol) {
  std::vector<ListeningSocket> out;
  const bool udp = protocol == "udp";
  for (const auto line : lines_of(table)) {
    const auto f = fields_of(line);
    // sl local_address rem_address st ...
    if (f.size() < 4 || f[0].empty() || f[0].back() != ':') continue;
    const auto local = f[1];
    const auto remote = f[2];
    const auto colon = local.find(':');
    const auto remote_colon = remote.find(':');
    if (colon == std::string_view::npos || remote_colon == std::string_view::npos) continue;
    const auto address = proc_address(local.substr(0, colon));
    const auto port = hex32(local.substr(colon + 1));
    const auto remote_port = hex32(remote.substr(remote_colon + 1));
    if (!address || !port || *port > 0xFFFF || !remote_port) continue;
    const bool waiting = udp ? *remote_port == 0 : f[3] == kTcpListen;
    if (!waiting) continue;
    out.push_back({std::string(protocol), *address, static_cast<std::uint16_t>(*port)});
  }
  return out;
}

std::optional<std::string_view> remote_access_service(const ListeningSocket& socket) {
  const auto p = socket.port;
  if (socket.protocol == "tcp") {
    switch (p) {
      case 21: return "ftp";
      case 22: return "ssh";
      case 23:
      case 2323: return "telnet";
      case 512: return "rexec";
      case 513: return "rlogin";
      case 514: return "rsh";
      case 3389: return "rdp";
      case 5555: return "adb";
      case 8291: return "winbox";
      default: break;
    }
    if (p >= 5900 && p <= 5903) return "vnc";
  }
  if (socket.protocol == "udp" && p == 3389) return "rdp";
  return std::nullopt;
}

std::vector<WifiNetwork> parse_wpa_supplicant(std::string_view text, std::string_view source) {
  std::vector<WifiNetwork> out;
  bool wps = false;
  bool in_network = false;
  WifiNetwork current;
  std::string key_mgmt;
  bool has_psk = false;
  bool has_wep = false;
  const auto finish = [&] {
    if (key_mgmt.empty()) key_mgmt = "WPA-PSK";  // wpa_supplicant's default: WPA-PSK WPA-EAP
    if (key_mgmt.find("SAE") != std::string::npos) {
      current.security = "wpa3-sae";
    } else if (key_mgmt.find("EAP") != std::string::npos && !has_psk) {
      current.security = "wpa-eap";
    } else if (key_mgmt == "NONE") {
      current.security = has_wep ? "wep" : "open";
    } else if (key_mgmt.find("PSK") != std::string::npos) {
      current.security = "wpa2-psk";
    } else {
      current.security = "unknown";
    }
    out.push_back(current);
  };
  for (auto line : lines_of(text)) {
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (!in_network) {
      if (line.starts_with("network=") && line.find('{') != std::string_view::npos) {
        in_network = true;
        current = {std::string(source), {}, {}, false};
        key_mgmt.clear();
        has_psk = has_wep = false;
        continue;
      }
      const auto [k, v] = key_value(line);
      if (k == "config_methods") {
        for (const auto method : {"push_button", "keypad", "display", "label", "virtual_push_button"}) {
          if (v.find(method) != std::string_view::npos) wps = true;
        }
      }
      continue;
    }
    if (line.front() == '}') {
      in_network = false;
      finish();
      continue;
    }
    const auto [k, v] = key_value(line);
    if (k == "ssid") current.ssid = std::string(v);
    if (k == "key_mgmt") key_mgmt = std::string(v);
    if (k == "psk" || k == "sae_password") has_psk = true;
    if (k.starts_with("wep_key")) has_wep = true;
  }
  for (auto& n : out) n.wps = wps;
  return out;
}

std::vector<WifiNetwork> parse_hostapd(std::string_view text, std::string_view source) {
  WifiNetwork ap{std::string(source), {}, "open", false};
  int wpa = 0;
  std::string key_mgmt = "WPA-PSK";
  bool wep = false;
  bool any = false;
  for (auto line : lines_of(text)) {
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    const auto [k, v] = key_value(line);
    any = true;
    if (k == "ssid") ap.ssid = std::string(v);
    if (k == "wpa") (void)std::from_chars(v.data(), v.data() + v.size(), wpa);
    if (k == "wpa_key_mgmt") key_mgmt = std::string(v);
    if (k.starts_with("wep_key") && !v.empty()) wep = true;
    if (k == "wps_state") ap.wps = v == "1" || v == "2";
  }
  if (!any) return {};
  if (wpa == 0) {
    ap.security = wep ? "wep" : "open";
  } else if (key_mgmt.find("SAE") != std::string::npos) {
    ap.security = "wpa3-sae";
  } else if (key_mgmt.find("EAP") != std::string::npos) {
    ap.security = "wpa-eap";
  } else {
    ap.security = (wpa & 2) != 0 ? "wpa2-psk" : "wpa-psk";
  }
  return {ap};
}

std::vector<WifiNetwork> parse_networkmanager(std::string_view text, std::string_view source) {
  std::string section;
  std::string type;
  WifiNetwork n{std::string(source), {}, "open", false};
  bool security_section = false;
  bool wep = false;
  std::string key_mgmt;
  for (auto line : lines_of(text)) {
    line = trim(line);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(line.substr(1, line.size() - 2));
      if (section == "wifi-security") security_section = true;
      continue;
    }
    const auto [k, v] = key_value(line);
    if (section == "connection" && k == "type") type = std::string(v);
    if (section == "wifi" && k == "ssid") n.ssid = std::string(v);
    if (section == "wifi-security") {
      if (k == "key-mgmt") key_mgmt = std::string(v);
      if (k.starts_with("wep-key") && !v.empty()) wep = true;
      if (k == "wps-method") {
        unsigned flags = 0;
        (void)std::from_chars(v.data(), v.data() + v.size(), flags);
        n.wps = (flags & 0xEu) != 0;  // auto, pbc or pin; 0 (default) and 1 (disabled) do not ask for it
      }
    }
  }
  if (type != "wifi" && type != "802-11-wireless") return {};
  if (!security_section || key_mgmt.empty()) {
    n.security = "open";
  } else if (key_mgmt == "none") {
    n.security = wep ? "wep" : "open";
  } else if (key_mgmt == "sae") {
    n.security = "wpa3-sae";
  } else if (key_mgmt == "wpa-eap" || key_mgmt == "wpa-eap-suite-b-192") {
    n.security = "wpa-eap";
  } else if (key_mgmt == "wpa-psk") {
    n.security = "wpa2-psk";
  } else {
    n.security = "unknown";
  }
  return {n};
}

std::vector<std::string> parse_inittab(std::string_view text) {
  std::vector<std::string> out;
  for (auto line : lines_of(text)) {
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    // id:runlevels:action:process
    std::array<std::string_view, 4> parts{};
    std::size_t i = 0;
    for (; i < 3; ++i) {
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) break;
      parts[i] = line.substr(0, colon);
      line.remove_prefix(colon + 1);
    }
    if (i < 3) continue;
    parts[3] = line;
    if (parts[2] == "off" || parts[3].find("getty") == std::string_view::npos) continue;
    for (const auto word : fields_of(parts[3])) {
      if (serial_line(word)) {
        std::string tty(word.starts_with("/dev/") ? word.substr(5) : word);
        if (std::find(out.begin(), out.end(), tty) == out.end()) out.push_back(std::move(tty));
      }
    }
  }
  return out;
}

std::optional<std::string> serial_getty_unit(std::string_view file_name) {
  for (const std::string_view prefix : {"serial-getty@", "getty@"}) {
    if (!file_name.starts_with(prefix) || !file_name.ends_with(".service")) continue;
    const auto tty = file_name.substr(prefix.size(), file_name.size() - prefix.size() - 8);
    if (serial_line(tty)) return std::string(tty);
  }
  return std::nullopt;
}

std::vector<std::string> parse_shadow_without_password(std::string_view text) {
  std::vector<std::string> out;
  for (const auto line : lines_of(text)) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    const auto rest = line.substr(colon + 1);
    const auto field = rest.substr(0, rest.find(':'));
    if (field.empty()) out.emplace_back(line.substr(0, colon));
  }
  return out;
}

std::vector<std::string> parse_debugfs_mounts(std::string_view mounts) {
  std::vector<std::string> out;
  for (const auto line : lines_of(mounts)) {
    const auto f = fields_of(line);
    if (f.size() >= 3 && f[2] == "debugfs") out.emplace_back(f[1]);
  }
  return out;
}

std::vector<std::string> parse_kgdb_cmdline(std::string_view cmdline) {
  std::vector<std::string> out;
  for (auto word : fields_of(cmdline)) {
    word = trim_value(word);
    if (word == "kgdbwait" || word.starts_with("kgdboc=") || word.starts_with("ekgdboc=")) out.emplace_back(word);
  }
  return out;
}

std::optional<std::uint32_t> parse_sysrq(std::string_view text) {
  text = trim_value(text);
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool adbd_unit(std::string_view file_name) {
  return file_name == "adbd.service" || file_name.ends_with("-adbd.service");
}

PostureReport collect_posture(const fs::path& root) {
  PostureReport r;
  for (const auto& [file, protocol] : {std::pair{"tcp", "tcp"}, {"tcp6", "tcp"}, {"udp", "udp"}, {"udp6", "udp"}}) {
    if (const auto table = read_proc(root / "proc" / "net" / file)) {
      for (auto& s : parse_proc_net(*table, protocol)) r.listening.push_back(std::move(s));
    }
  }
  std::sort(r.listening.begin(), r.listening.end(), [](const auto& a, const auto& b) {
    return std::tie(a.protocol, a.port, a.address) < std::tie(b.protocol, b.port, b.address);
  });
  r.listening.erase(std::unique(r.listening.begin(), r.listening.end()), r.listening.end());
  for (const auto& s : r.listening) {
    if (remote_access_service(s)) r.remote_access.push_back(s);
    if (s.protocol == "udp" && s.port == 1900) r.upnp = true;
  }
  std::error_code ec;
  if (fs::exists(root / "etc" / "miniupnpd" / "miniupnpd.conf", ec)) r.upnp = true;

  const auto etc = root / "etc";
  std::vector<fs::path> supplicant = files_in(etc / "wpa_supplicant");
  supplicant.push_back(etc / "wpa_supplicant.conf");
  for (const auto& path : supplicant) {
    if (path.extension() != ".conf") continue;
    if (const auto text = read_text(path, r.unreadable)) {
      for (auto& n : parse_wpa_supplicant(*text, path.string())) r.wifi.push_back(std::move(n));
    }
  }
  std::vector<fs::path> hostapd = files_in(etc / "hostapd");
  hostapd.push_back(etc / "hostapd.conf");
  for (const auto& path : hostapd) {
    if (path.extension() != ".conf") continue;
    if (const auto text = read_text(path, r.unreadable)) {
      for (auto& n : parse_hostapd(*text, path.string())) r.wifi.push_back(std::move(n));
    }
  }
  for (const auto& path : files_in(etc / "NetworkManager" / "system-connections")) {
    if (const auto text = read_text(path, r.unreadable)) {
      for (auto& n : parse_networkmanager(*text, path.string())) r.wifi.push_back(std::move(n));
    }
  }

  std::set<std::string> consoles;
  std::set<DebugInterface> debug;
  if (const auto text = read_text(etc / "inittab", r.unreadable)) {
    for (auto& tty : parse_inittab(*text)) consoles.insert(std::move(tty));
  }
  for (const auto& wants : files_in(etc / "systemd" / "system")) {
    if (wants.extension() != ".wants") continue;
    for (const auto& unit : files_in(wants)) {
      const auto name = unit.filename().string();
      if (auto tty = serial_getty_unit(name)) consoles.insert(std::move(*tty));
      if (adbd_unit(name)) debug.insert({"adb", name});
    }
  }
  r.serial_consoles.assign(consoles.begin(), consoles.end());

  if (const auto text = read_text(etc / "shadow", r.unreadable))
    r.passwordless_accounts = parse_shadow_without_password(*text);

  // JPCERT IV-1: debug interfaces, as far as software can see them.
  const auto proc = root / "proc";
  if (const auto mounts = read_proc(proc / "mounts")) {
    for (auto& at : parse_debugfs_mounts(*mounts)) debug.insert({"debugfs", std::move(at)});
  }
  for (const auto& s : r.listening) {
    if (s.protocol == "tcp" && s.port == 5555) debug.insert({"adb", fmt::format("tcp/5555 on {}", s.address)});
  }
  for (const auto* script : {"adbd", "android-tools-adbd"}) {
    if (fs::exists(etc / "init.d" / script, ec)) debug.insert({"adb", fmt::format("/etc/init.d/{}", script)});
  }
  for (const auto& gadget : files_in(root / "sys" / "kernel" / "config" / "usb_gadget")) {
    for (const auto& function : files_in(gadget / "functions")) {
      const auto name = function.filename().string();
      if (name.starts_with("ffs.adb")) debug.insert({"adb", "USB gadget function " + name});
    }
  }
  if (const auto kgdboc = read_proc(root / "sys" / "module" / "kgdboc" / "parameters" / "kgdboc")) {
    const auto value = trim_value(*kgdboc);
    if (!value.empty()) debug.insert({"kgdb", fmt::format("kgdboc={}", value)});
  }
  if (const auto cmdline = read_proc(proc / "cmdline")) {
    for (auto& setting : parse_kgdb_cmdline(*cmdline)) debug.insert({"kgdb", std::move(setting)});
  }
  if (const auto sysrq = read_proc(proc / "sys" / "kernel" / "sysrq")) {
    if (const auto mask = parse_sysrq(*sysrq); mask && *mask != 0)
      debug.insert({"sysrq", fmt::format("sysrq={}", *mask)});
  }
  r.debug_interfaces.assign(debug.begin(), debug.end());
  return r;
}

std::string posture_message(const PostureReport& report, std::int64_t ts_ms, std::string_view id) {
  using nlohmann::json;
  json listening = json::array();
  for (const auto& s : report.listening) {
    json entry = {{"protocol", s.protocol}, {"address", s.address}, {"port", s.port}};
    if (const auto service = remote_access_service(s)) entry["service"] = *service;
    listening.push_back(std::move(entry));
  }
  json wifi = json::array();
  for (const auto& n : report.wifi) {
    wifi.push_back({{"source", n.source}, {"ssid", n.ssid}, {"security", n.security}, {"wps", n.wps}});
  }
  json debug = json::array();
  for (const auto& d : report.debug_interfaces) debug.push_back({{"kind", d.kind}, {"detail", d.detail}});
  const json out = {{"type", "posture"},
                    {"ts", ts_ms},
                    {"id", id},
                    {"listening", listening},
                    {"upnp", report.upnp},
                    {"wifi", wifi},
                    {"serial_consoles", report.serial_consoles},
                    {"passwordless_accounts", report.passwordless_accounts},
                    {"debug_interfaces", debug},
                    {"unreadable", report.unreadable}};
  // File contents (an SSID) need not be UTF-8: what is not is replaced, not thrown on.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace torii::agent

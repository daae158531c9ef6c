#include "agent/posture.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/temp_dir.h"

namespace torii::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
namespace fs = std::filesystem;

constexpr std::string_view kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 100 0 0 10 0\n"
    "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0 100 0 0 10 0\n"
    "   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1236 1 0 20 4 30 10 "
    "-1\n"
    "   garbage line\n";
constexpr std::string_view kTcp6 =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue\n"
    "   0: 00000000000000000000000000000000:0017 00000000000000000000000000000000:0000 0A 00000000:00000000\n"
    "   1: 00000000000000000000000001000000:0D3D 00000000000000000000000000000000:0000 0A 00000000:00000000\n"
    "   2: 0000000000000000FFFF00000100007F:1388 00000000000000000000000000000000:0000 0A 00000000:00000000\n";
constexpr std::string_view kUdp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer "
    "drops\n"
    "  100: 00000000:076C 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3000 2 0 0\n"
    "  101: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 3001 2 0 0\n"
    "  102: 0F00000A:D431 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 3002 2 0 0\n";

TEST(Posture, ListeningSocketsComeFromTheKernelsTables) {
  EXPECT_THAT(parse_proc_net(kTcp, "tcp"),
              ElementsAre(ListeningSocket{"tcp", "0.0.0.0", 22}, ListeningSocket{"tcp", "127.0.0.1", 8080}));
  EXPECT_THAT(parse_proc_net(kTcp6, "tcp"),
              ElementsAre(ListeningSocket{"tcp", "::", 23}, ListeningSocket{"tcp", "::1", 3389},
                          ListeningSocket{"tcp", "::ffff:127.0.0.1", 5000}));
  EXPECT_THAT(parse_proc_net(kUdp, "udp"),
              ElementsAre(ListeningSocket{"udp", "0.0.0.0", 1900}, ListeningSocket{"udp", "127.0.0.53", 53}));
  EXPECT_THAT(parse_proc_net("", "tcp"), IsEmpty());
}

TEST(Posture, RemoteAccessServicesAreNamedByPort) {
  EXPECT_EQ(remote_access_service({"tcp", "0.0.0.0", 22}), "ssh");
  EXPECT_EQ(remote_access_service({"tcp", "0.0.0.0", 23}), "telnet");
  EXPECT_EQ(remote_access_service({"tcp", "0.0.0.0", 2323}), "telnet");
  EXPECT_EQ(remote_access_service({"tcp", "::", 3389}), "rdp");
  EXPECT_EQ(remote_access_service({"tcp", "::", 5901}), "vnc");
  EXPECT_EQ(remote_access_service({"tcp", "::", 5555}), "adb");
  EXPECT_EQ(remote_access_service({"tcp", "::", 8443}), std::nullopt);
  EXPECT_EQ(remote_access_service({"udp", "0.0.0.0", 22}), std::nullopt);
}

TEST(Posture, WpaSupplicantNetworksAndWps) {
  const auto networks = parse_wpa_supplicant(R"(ctrl_interface=/run/wpa_supplicant
config_methods=push_button
network={
    ssid="office"
    psk="correct horse battery"
}
network={
    ssid="legacy"
    key_mgmt=NONE
    wep_key0="abcde"
}
# network={ ssid="commented" }
network={
    ssid="cafe"
    key_mgmt=NONE
}
network={
  ssid="new"
  key_mgmt=SAE
}
network={
  ssid="corp"
  key_mgmt=WPA-EAP
}
)",
                                             "/etc/wpa_supplicant.conf");
  ASSERT_EQ(networks.size(), 5u);
  EXPECT_EQ(networks[0], (WifiNetwork{"/etc/wpa_supplicant.conf", "office", "wpa2-psk", true}));
  EXPECT_EQ(networks[1].security, "wep");
  EXPECT_EQ(networks[2].security, "open");
  EXPECT_EQ(networks[3].security, "wpa3-sae");
  EXPECT_EQ(networks[4].security, "wpa-eap");
  EXPECT_FALSE(parse_wpa_supplicant("network={\nssid=\"x\"\n}\n", "f")[0].wps);
}

TEST(Posture, HostapdWithWpsOn) {
  const auto ap = parse_hostapd("interface=wlan0\nssid=plant-ap\nwpa=2\nwpa_key_mgmt=WPA-PSK\nwps_state=2\n", "h");
  ASSERT_EQ(ap.size(), 1u);
  EXPECT_EQ(ap[0], (WifiNetwork{"h", "plant-ap", "wpa2-psk", true}));
  EXPECT_EQ(parse_hostapd("ssid=open-ap\n", "h")[0].security, "open");
  EXPECT_FALSE(parse_hostapd("ssid=open-ap\n", "h")[0].wps);
  EXPECT_EQ(parse_hostapd("ssid=old\nwep_key0=abcde\n", "h")[0].security, "wep");
  EXPECT_EQ(parse_hostapd("ssid=x\nwpa=1\n", "h")[0].security, "wpa-psk");
  EXPECT_EQ(parse_hostapd("ssid=x\nwpa=2\nwpa_key_mgmt=SAE\nwps_state=0\n", "h")[0],
            (WifiNetwork{"h", "x", "wpa3-sae", false}));
  EXPECT_THAT(parse_hostapd("# nothing\n", "h"), IsEmpty());
}

TEST(Posture, NetworkManagerWifiConnections) {
  const auto home = parse_networkmanager(
      "[connection]\nid=home\ntype=wifi\n[wifi]\nssid=home\n[wifi-security]\nkey-mgmt=wpa-psk\nwps-method=4\n", "n");
  ASSERT_EQ(home.size(), 1u);
  EXPECT_EQ(home[0], (WifiNetwork{"n", "home", "wpa2-psk", true}));
  EXPECT_EQ(parse_networkmanager("[connection]\ntype=wifi\n[wifi]\nssid=free\n", "n")[0].security, "open");
  EXPECT_FALSE(
      parse_networkmanager("[connection]\ntype=wifi\n[wifi-security]\nkey-mgmt=sae\nwps-method=1\n", "n")[0].wps);
  EXPECT_THAT(parse_networkmanager("[connection]\ntype=ethernet\n", "n"), IsEmpty());
}

TEST(Posture, LoginConsolesOnSerialLines) {
  EXPECT_THAT(parse_inittab("id:3:initdefault:\n"
                            "1:2345:respawn:/sbin/getty 38400 tty1\n"
                            "T0:23:respawn:/sbin/getty -L ttyS0 115200 vt100\n"
                            "T1:23:off:/sbin/getty -L ttyS1 115200 vt100\n"
                            "# T2:23:respawn:/sbin/getty -L ttyS2 115200 vt100\n"
                            "ama:23:respawn:/sbin/agetty /dev/ttyAMA0 115200\n"),
              ElementsAre("ttyS0", "ttyAMA0"));
  EXPECT_EQ(serial_getty_unit("serial-getty@ttyS0.service"), "ttyS0");
  EXPECT_EQ(serial_getty_unit("getty@ttyUSB1.service"), "ttyUSB1");
  EXPECT_EQ(serial_getty_unit("serial-getty@ttyGS0.service"), "ttyGS0");  // a USB gadget's serial port
  EXPECT_EQ(serial_getty_unit("getty@tty1.service"), std::nullopt);
  EXPECT_EQ(serial_getty_unit("serial-getty@ttyS.service"), std::nullopt);
}

TEST(Posture, AccountsWithoutPassword) {
  EXPECT_THAT(parse_shadow_without_password("root:$6$salt$hash:19000:0:99999:7:::\n"
                                            "kiosk::19000:0:99999:7:::\n"
                                            "daemon:*:19000:0:99999:7:::\n"
                                            "locked:!:19000::::::\n"
                                            "broken\n"),
              ElementsAre("kiosk"));
}

TEST(Posture, DebugInterfacesSoftwareCanSee) {
  EXPECT_THAT(parse_debugfs_mounts("sysfs /sys sysfs rw,nosuid 0 0\n"
                                   "debugfs /sys/kernel/debug debugfs rw,relatime 0 0\n"
                                   "none /mnt/debugfs tmpfs rw 0 0\n"
                                   "short line\n"),
              ElementsAre("/sys/kernel/debug"));
  EXPECT_THAT(parse_kgdb_cmdline("console=ttyS0,115200 kgdboc=ttyS0,115200 root=/dev/mmcblk0p2 kgdbwait\n"),
              ElementsAre("kgdboc=ttyS0,115200", "kgdbwait"));
  EXPECT_THAT(parse_kgdb_cmdline("ekgdboc=kbd quiet"), ElementsAre("ekgdboc=kbd"));
  EXPECT_THAT(parse_kgdb_cmdline("console=ttyS0 nokgdbwait kgdboc"), IsEmpty());
  EXPECT_EQ(parse_sysrq("0\n"), 0u);
  EXPECT_EQ(parse_sysrq("176\n"), 176u);
  EXPECT_EQ(parse_sysrq("1"), 1u);
  EXPECT_EQ(parse_sysrq(""), std::nullopt);
  EXPECT_EQ(parse_sysrq("-1"), std::nullopt);
  EXPECT_EQ(parse_sysrq("1 2"), std::nullopt);
  EXPECT_TRUE(adbd_unit("adbd.service"));
  EXPECT_TRUE(adbd_unit("android-tools-adbd.service"));
  EXPECT_FALSE(adbd_unit("sshd.service"));
  EXPECT_FALSE(adbd_unit("adbd.socket"));
}

void write(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(Posture, AFixtureTreeIsReportedWhole) {
  testing::TempDir root;
  write(root / "proc/net/tcp", kTcp);
  write(root / "proc/net/tcp6", kTcp6);
  write(root / "proc/net/udp", kUdp);
  write(root / "etc/hostapd/hostapd.conf", "ssid=plant-ap\nwpa=2\nwps_state=1\n");
  write(root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf", "network={\nssid=\"cafe\"\nkey_mgmt=NONE\n}\n");
  write(root / "etc/NetworkManager/system-connections/home.nmconnection",
        "[connection]\ntype=wifi\n[wifi]\nssid=home\n[wifi-security]\nkey-mgmt=sae\n");
  write(root / "etc/inittab", "T0:23:respawn:/sbin/getty -L ttyS0 115200 vt100\n");
  write(root / "etc/systemd/system/getty.target.wants/serial-getty@ttyAMA0.service", "");
  write(root / "etc/systemd/system/getty.target.wants/getty@tty1.service", "");
  write(root / "etc/shadow", "kiosk::19000:0:99999:7:::\n");
  write(root / "proc/mounts", "proc /proc proc rw 0 0\ndebugfs /sys/kernel/debug debugfs rw,relatime 0 0\n");
  write(root / "proc/cmdline", "console=ttyS0,115200 kgdboc=ttyS0,115200 kgdbwait\n");
  write(root / "proc/sys/kernel/sysrq", "1\n");
  write(root / "sys/module/kgdboc/parameters/kgdboc", "ttyS0,115200\n");
  write(root / "etc/systemd/system/multi-user.target.wants/android-tools-adbd.service", "");
  fs::create_directories(root / "sys/kernel/config/usb_gadget/g1/functions/ffs.adb");
  fs::create_directories(root / "sys/kernel/config/usb_gadget/g1/functions/acm.usb0");

  const auto r = collect_posture(root.path());
  EXPECT_EQ(r.listening.size(), 7u);
  ASSERT_EQ(r.remote_access.size(), 3u);  // ssh, telnet, rdp
  EXPECT_TRUE(r.upnp);
  ASSERT_EQ(r.wifi.size(), 3u);
  EXPECT_THAT(r.wifi,
              Contains(WifiNetwork{(root / "etc/hostapd/hostapd.conf").string(), "plant-ap", "wpa2-psk", true}));
  EXPECT_THAT(r.serial_consoles, ElementsAre("ttyAMA0", "ttyS0"));
  EXPECT_THAT(r.passwordless_accounts, ElementsAre("kiosk"));
  EXPECT_THAT(r.debug_interfaces,
              ElementsAre(DebugInterface{"adb", "USB gadget function ffs.adb"},
                          DebugInterface{"adb", "android-tools-adbd.service"},
                          DebugInterface{"debugfs", "/sys/kernel/debug"}, DebugInterface{"kgdb", "kgdboc=ttyS0,115200"},
                          DebugInterface{"kgdb", "kgdbwait"}, DebugInterface{"sysrq", "sysrq=1"}));
  EXPECT_THAT(r.unreadable, IsEmpty());

  const auto message = nlohmann::json::parse(posture_message(r, 1'790'000'000'000, "ab12cd34-9"));
  EXPECT_EQ(message["type"], "posture");
  EXPECT_EQ(message["id"], "ab12cd34-9");
  EXPECT_EQ(message["listening"][0]["service"], "ssh");
  EXPECT_EQ(message["upnp"], true);
  EXPECT_EQ(message["passwordless_accounts"][0], "kiosk");
  EXPECT_EQ(message["debug_interfaces"][2], (nlohmann::json{{"kind", "debugfs"}, {"detail", "/sys/kernel/debug"}}));
}

TEST(Posture, AdbListeningAndItsInitScriptAreDebugInterfacesAndSysRqOffIsNot) {
  testing::TempDir root;
  write(root / "proc/net/tcp6",
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000000000000:15B3 00000000000000000000000000000000:0000 0A\n");
  write(root / "etc/init.d/adbd", "#!/bin/sh\n");
  write(root / "proc/sys/kernel/sysrq", "0\n");
  write(root / "sys/module/kgdboc/parameters/kgdboc", "\n");  // loaded, not attached to a line
  EXPECT_THAT(collect_posture(root.path()).debug_interfaces,
              ElementsAre(DebugInterface{"adb", "/etc/init.d/adbd"}, DebugInterface{"adb", "tcp/5555 on ::"}));
}

TEST(Posture, AnEmptyTreeIsACleanReport) {
  testing::TempDir root;
  const auto r = collect_posture(root.path());
  EXPECT_THAT(r.listening, IsEmpty());
  EXPECT_FALSE(r.upnp);
  EXPECT_THAT(r.wifi, IsEmpty());
  EXPECT_THAT(r.serial_consoles, IsEmpty());
  EXPECT_THAT(r.passwordless_accounts, IsEmpty());
  EXPECT_THAT(r.debug_interfaces, IsEmpty());
  // An SSID that is not UTF-8 is reported, not thrown on.
  PostureReport odd;
  odd.wifi.push_back({"f", std::string("caf\xe9", 4), "open", false});
  std::string message;
  EXPECT_NO_THROW(message = posture_message(odd, 0, "x-1"));
  EXPECT_FALSE(nlohmann::json::parse(message, nullptr, false).is_discarded());
}

// The live host: a port this test opens is in the report; once closed, it is not.
TEST(Posture, APortOpenedOnThisHostIsSeenListening) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const ListeningSocket mine{"tcp", "127.0.0.1", ntohs(address.sin_port)};
  EXPECT_THAT(collect_posture("/").listening, Contains(mine));
  ::close(fd);
  EXPECT_THAT(collect_posture("/").listening, Not(Contains(mine)));
}

}  // namespace
}  // namespace torii::agent

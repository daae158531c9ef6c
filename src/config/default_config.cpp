// The text printed by `torii server --print-default-config`. config_test checks that it
// parses to exactly Config{} and names every key, so it cannot drift from the code.
#include "config/config.h"

namespace torii::config {

std::string default_config_text() {
  return R"(# torii configuration. Every key is optional; these are the built-in defaults.
# Reference: docs/configuration.md

[server]
# Unprivileged account torii switches to after binding its ports when started as root
# (JPCERT I-5). Must exist on the host; never "root".
user = "torii"
# Where the store, keys and security log live. Created 0700; torii refuses to start when
# it or any key file is readable by others. `--data-dir` overrides it.
data_dir = "/var/lib/torii"
# Names and addresses put into the server certificate issued by the built-in CA.
hostnames = ["localhost", "127.0.0.1"]
# Base URL printed in links (setup link); empty means https://<first hostname>:<console port>.
public_url = ""

[gateway]
# MQTT over mutual TLS for devices. Numeric addresses only; loopback until you name others.
listen = ["127.0.0.1:8883"]
# A client that has not finished its TLS handshake by then is disconnected.
handshake_timeout_seconds = 10

[console]
# HTTPS web console and REST API.
listen = ["127.0.0.1:8443"]
handshake_timeout_seconds = 10
# A request body larger than this is refused (413).
max_body_bytes = 65536
# A request must arrive whole within this many seconds of its first byte.
request_timeout_seconds = 10
# A kept-alive connection waiting longer than this for its next request is closed.
idle_timeout_seconds = 30
# Sign-in, setup and second-factor attempts allowed per source address and minute
# (JPCERT I-1); more are refused with 429 whatever the account.
sign_in_attempts_per_minute = 20
# Requests allowed per signed-in person and minute, API tokens counting against their owner
# (JPCERT item 8); more are refused with 429 and Retry-After.
requests_per_minute_per_user = 600
# The web application firewall in front of every request (JPCERT II-1, III-8): ModSecurity
# with the OWASP Core Rule Set (Debian's modsecurity-crs), blocking. A higher paranoia
# level (1-4) adds rules that catch more and misfire more; a request is blocked when its
# anomaly score reaches the threshold (a critical match such as SQL injection scores 5).
waf = true
waf_paranoia_level = 1
waf_anomaly_threshold = 5
# Threads that inspect requests for the firewall, so that its cost is spread over the cores
# rather than taken from the thread serving every connection; 0: one per core but the one
# that thread needs (at least one).
waf_threads = 0
# The web console's built files; empty: "console" beside the torii executable (a build), or
# ../share/torii/console from it (an installation).
assets = ""

[accounts]
# A console session ends after this long without a request, and this long after sign-in
# whatever happens (JPCERT III-4).
session_idle_minutes = 15
session_absolute_hours = 12
# After this many wrong passwords or codes in a row an account is locked, first for
# first_lock_seconds, then twice as long each further time, up to longest_lock_seconds
# (JPCERT I-1). Unknown user names lock the same way, so answers reveal nothing.
lock_after_failures = 5
first_lock_seconds = 60
longest_lock_seconds = 3600
# Argon2id cost of a password hash (JPCERT I-3): libsodium's "interactive" profile. Raising
# it rehashes each password at its next sign-in; lowering it weakens stored passwords.
password_hash_passes = 2
password_hash_memory_kib = 65536
# Password hashes computed at once (each holds password_hash_memory_kib); sign-ins beyond
# what these keep up with are refused with 503, so logins cannot exhaust the machine.
concurrent_password_hashes = 2
# People who have not signed in for this many days are disabled, checked at start and daily
# (JPCERT I-2); 0 turns it off. The last system administrator is never disabled this way.
disable_unused_after_days = 90
# API tokens (JPCERT I-10) must expire within this many days of their creation; tokens
# unused for disable_unused_after_days are revoked as people are disabled.
api_token_max_days = 90
# More than failure_burst_per_source failed sign-ins or codes from one address, or more than
# failure_burst_total from all addresses together, within failure_burst_window_seconds make
# one "login.failures_burst" alert per window: spraying many accounts stays under each
# account's lock (JPCERT VIII-2). 0 turns a count off.
failure_burst_window_seconds = 300
failure_burst_per_source = 20
failure_burst_total = 100

[tls]
# "1.2" or "1.3". Older versions are never offered.
min_version = "1.2"
# TLS 1.2 suites: AEAD with ECDHE only (OpenSSL names, colon-separated).
ciphers_tls12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
# TLS 1.3 suites (all AEAD).
ciphersuites_tls13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

[firewall]
# Source CIDR blocks (IPv4 or IPv6). An empty allow list admits every source not denied;
# a deny entry always wins (JPCERT II-2).
allow = []
deny = []
# Connections open at once, over all listeners, and from one source address.
max_connections = 10000
max_connections_per_source = 64
# A source that fails authentication or breaks the protocol this many times within the
# window is banned for ban_seconds.
ban_after_failures = 10
failure_window_seconds = 60
ban_seconds = 600

[keys]
# Where the key-encryption key comes from (JPCERT VI-1):
#   "file"       - a random key in kek_file, generated at first start, mode 0600;
#   "passphrase" - derived with Argon2id from an operator passphrase.
kek_source = "file"
kek_file = "kek.key"
# With kek_source = "passphrase": a file (mode 0600) holding the passphrase; empty means
# torii asks for it on the terminal.
passphrase_file = ""

[pki]
root_ca_lifetime_days = 3650
issuing_ca_lifetime_days = 1095
server_certificate_lifetime_days = 90
device_certificate_lifetime_days = 90
crl_next_update_hours = 24
# A certificate in use (each device's, the server's, the CAs') expiring within this many
# days is an alert, raised daily until it is renewed; 0: none.
expiry_alert_days = 14

[log]
# Operational log level on standard error: trace, debug, info, warn, error.
level = "info"
# Security log (hash-chained JSON lines); relative paths are inside the data directory.
security_log_dir = "log"
max_file_mib = 16
# Rotated security log files older than this are deleted; 0 keeps them forever.
retention_days = 365
# A signed checkpoint is written after this many events or this much time, whichever first.
checkpoint_every_events = 100
checkpoint_interval_seconds = 300

[mqtt]
# Every device connects with its own certificate; these limits apply to each connection.
# A TLS-authenticated client that sends no CONNECT within this time is disconnected.
connect_timeout_seconds = 10
# Largest MQTT packet accepted (fixed header included); larger ones close the connection.
max_packet_bytes = 65536
# Longest keep-alive granted; a client asking for more (or for none) is given this one.
# A connection silent for 1.5 x its keep-alive is closed.
max_keep_alive_seconds = 300
# QoS 1/2 messages a device may have unacknowledged towards the gateway.
receive_maximum = 64
# QoS 1/2 messages the gateway has in flight towards a device.
max_inflight_messages = 32
# Messages kept for a device beyond those in flight (also while it is offline with a
# persistent session); the oldest is dropped, and counted, when full.
max_queued_messages = 1000
# Bytes waiting to be written to a device that is not reading (a stalled subscriber):
# QoS 0 messages for it are dropped, and counted, while this much waits.
max_pending_output_bytes = 1048576
# Longest session expiry granted to a persistent session (seconds).
max_session_expiry_seconds = 604800
max_subscriptions = 32
# Per-device quotas: sustained rate and burst, in messages and in bytes.
device_messages_per_second = 50
device_message_burst = 200
device_bytes_per_second = 65536
device_byte_burst = 262144
# A device whose messages are refused this many times within the window (denied topic,
# invalid payload, over quota) is disconnected and refused for device_ban_seconds.
offences_before_ban = 20
offence_window_seconds = 60
device_ban_seconds = 300
# Accepted messages waiting to be stored; when full, QoS 1/2 publishers wait (nothing more
# is read from them until there is room) and QoS 0 messages are dropped.
ingest_queue_messages = 100000
# Devices that have not connected for this many days are disabled (0: never).
disable_unused_devices_after_days = 90

[devices]
# Lifetime of a device's one-time enrolment token (hours, 1-720): the device sends it with
# its CSR to POST /api/v1/enrol.
enrolment_token_hours = 24
# How far the time in a device's heartbeats may be from the server's (seconds, 0-86400; 0: not
# checked). Beyond it, device.clock_skew is an alert until the device's clock is right again.
max_clock_skew_seconds = 60

[notifications]
# Webhooks and syslog are refused to loopback, link-local (cloud metadata), unspecified and
# multicast addresses; true allows them (a host's own receiver, a lab).
allow_local_destinations = false

[setup]
# Lifetime of the one-time setup link printed while no administrator exists.
token_lifetime_minutes = 60

[mail]
# Outgoing e-mail (password links). Off while host is empty.
host = ""
port = 587
# "starttls" (port 587), "tls" (TLS from the first byte, port 465), or "none" - allowed only
# to a loopback host, a local relay. The server's certificate is always verified.
tls = "starttls"
# The sender; required with a host.
from = ""
from_name = "torii"
# AUTH PLAIN over TLS only; the password is read from password_file (mode 0600), never
# written here. Relative paths are inside the data directory.
username = ""
password_file = ""
# PEM file of the CAs trusted for the server's certificate; empty: the system's CAs.
ca_file = ""
# Deadline for connecting and for each reply of the server.
timeout_seconds = 30
)";
}

}  // namespace torii::config

# Helpers shared by the scripts in bench/ (sourced, not run). Every process they start is
# recorded by PID in the work directory and stopped by that PID only.
#
#   TORII      the torii binary (default: build/release/apps/torii/torii)
#   MOSQUITTO  the broker to compare with (default: /usr/sbin/mosquitto)

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
TORII="${TORII:-$REPO_DIR/build/release/apps/torii/torii}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_binaries() {
  [[ -x "$TORII" ]] || die "no torii binary at $TORII (cmake --preset release && cmake --build --preset release, or set TORII=)"
  [[ -x "$MOSQUITTO" ]] || die "no mosquitto at $MOSQUITTO (apt-get install mosquitto, or set MOSQUITTO=)"
  command -v openssl >/dev/null || die "openssl is needed for Mosquitto's server certificate"
  command -v jq >/dev/null || die "jq is needed to read the result lines"
  command -v sqlite3 >/dev/null || die "sqlite3 is needed to count what torii stored"
}

# Percentage of the machine's CPU time that was idle over the next two seconds.
cpu_idle_percent() {
  local u n s i w x y z t1 i1 t2 i2
  read -r _ u n s i w x y z _ </proc/stat
  t1=$((u + n + s + i + w + x + y + z)) i1=$((i + w))
  sleep 2
  read -r _ u n s i w x y z _ </proc/stat
  t2=$((u + n + s + i + w + x + y + z)) i2=$((i + w))
  echo $((100 * (i2 - i1) / (t2 - t1)))
}

# Busy CPU time of the whole machine so far, in clock ticks.
machine_busy_ticks() {
  local u n s i w x y z
  read -r _ u n s i w x y z _ </proc/stat
  echo $((u + n + s + x + y + z))
}

# User + system CPU time of a process so far, in clock ticks (0 when it is gone).
process_ticks() {
  local fields
  fields="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
  fields="${fields##*) }"
  # shellcheck disable=SC2086
  set -- $fields
  echo $(("${12}" + "${13}"))
}

# wait_quiet [MAX_WAIT_S]: waits until nothing else keeps the CPUs busy (other builds on a
# shared machine distort a benchmark): at least 90 % idle over two seconds. Gives up after
# MAX_WAIT_S (default 900) and says so; prints the idle percentage last seen.
wait_quiet() {
  local max="${1:-900}" start idle
  start="$(date +%s)"
  while :; do
    idle="$(cpu_idle_percent)"
    ((idle >= 90)) && break
    if (($(date +%s) - start >= max)); then
      log "warning: the machine is still busy (${idle} % idle); measuring anyway"
      break
    fi
    log "waiting for a quiet machine (${idle} % idle)"
    sleep 5
  done
  echo "$idle"
}

# idle_connection_count WORKDIR: IDLE_CONNECTIONS, or every device bench-0 … the compare.sh work
# directory holds; fails (after saying why) when it holds fewer.
#   connections="$(idle_connection_count DIR)" || exit 1
idle_connection_count() {
  local available=0 n
  while [[ -f "$1/certs/bench-$available.key" ]]; do available=$((available + 1)); done
  n="${IDLE_CONNECTIONS:-$available}"
  ((n <= available)) || die "only $available devices in $1"
  echo "$n"
}

# start_idle_clients PORT CAFILE SERVER_PID N DURATION_S KEEP_ALIVE_S OUT: torii bench holding N
# idle mutual-TLS connections of $WORK's devices, opened 500 a second from four source
# addresses as compare.sh opens them, in the background (its PID in $!), output in OUT.
start_idle_clients() {
  "$TORII" bench --host 127.0.0.1 --port "$1" --cafile "$2" --server-pid "$3" --idle --connect-rate 500 \
    --source-addresses 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4 --duration "$5" --keep-alive "$6" \
    --drain-timeout 0 --cert-dir "$WORK/certs" --connections "$4" >"$7" 2>&1 &
}

# Raises the open-files limit of this shell (and so of the servers and benches it starts).
raise_nofile() {
  local want="${1:-20000}" hard
  hard="$(ulimit -Hn)"
  if [[ "$hard" != unlimited && "$hard" -lt "$want" ]]; then want="$hard"; fi
  ulimit -n "$want"
}

# launch_torii CONFIG DATA_DIR RUN_DIR: `torii server` in the background, its PID in
# RUN_DIR/pid and its output in RUN_DIR/server.out and server.err; returns once it printed
# its ready lines (dies if it exits first).
launch_torii() {
  local config="$1" data="$2" run="$3"
  "$TORII" server --config "$config" --data-dir "$data" >"$run/server.out" 2>"$run/server.err" &
  echo $! >"$run/pid"
  for _ in $(seq 1 600); do
    grep -q "security log public key" "$run/server.out" 2>/dev/null && return 0
    kill -0 "$(cat "$run/pid")" 2>/dev/null || { cat "$run/server.err" >&2; die "torii did not start"; }
    sleep 0.1
  done
  die "torii did not print its ready lines within 60 s"
}

# start_torii WORKDIR PORT: a torii server for benchmarks, its data in WORKDIR/torii. Limits
# are raised so that the bench measures the gateway rather than its protective quotas.
start_torii() {
  local dir="$1" port="$2" config
  mkdir -p "$dir/torii"
  chmod 0711 "$dir" "$dir/torii"  # started as root, the server runs as nobody
  config="$dir/torii/torii.toml"
  cat >"$config" <<TOML
[server]
user = "nobody"
[gateway]
listen = ["127.0.0.1:$port"]
[console]
listen = ["127.0.0.1:0"]
[log]
level = "warn"
[firewall]
max_connections = 100000
max_connections_per_source = 100000
[mqtt]
device_messages_per_second = 1000000
device_message_burst = 10000000
device_bytes_per_second = 1000000000
device_byte_burst = 1000000000
max_keep_alive_seconds = 600
max_subscriptions = 1000
TOML
  chmod 0644 "$config"
  launch_torii "$config" "$dir/torii/data" "$dir/torii"
  grep -q "listening: gateway 127.0.0.1:$port" "$dir/torii/server.out" || die "torii is not listening on $port"
  log "torii $(cat "$dir/torii/pid") listening on 127.0.0.1:$port"
}

torii_admin() {
  local dir="$1"
  shift
  "$TORII" admin "$@" --config "$dir/torii/torii.toml" --data-dir "$dir/torii/data"
}

# create_devices WORKDIR FIRST COUNT [PARALLEL]: devices bench-FIRST … bench-(FIRST+COUNT-1),
# their certificates and keys in WORKDIR/certs (plus ca.crt, torii's CA bundle). Existing
# ones are skipped, so an interrupted run can be resumed.
create_devices() {
  local dir="$1" first="$2" count="$3" parallel="${4:-4}"
  mkdir -p "$dir/certs"
  seq "$first" $((first + count - 1)) | while read -r i; do
    [[ -f "$dir/certs/bench-$i.key" ]] || echo "bench-$i"
  done | xargs -r -P "$parallel" -I{} "$TORII" admin device create --id {} --out "$dir/certs" \
    --config "$dir/torii/torii.toml" --data-dir "$dir/torii/data" >/dev/null
}

# make_mosquitto_certs WORKDIR: a throwaway CA and a server certificate for 127.0.0.1 and
# localhost, for Mosquitto's listener (clients verify it with WORKDIR/mosquitto/ca.crt).
make_mosquitto_certs() {
  local d="$1/mosquitto"
  mkdir -p "$d"
  [[ -f "$d/server.crt" ]] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj "/CN=bench throwaway CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 7 \
    -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
  chmod 0644 "$d/server.key"  # read by the mosquitto account; a throwaway key in a private work dir
}

# start_mosquitto WORKDIR PORT: Mosquitto 2 with mutual TLS (clients: torii's device
# certificates, verified against torii's CA bundle WORKDIR/certs/ca.crt), the certificate's
# CN as user name, no persistence.
start_mosquitto() {
  local dir="$1" port="$2" d="$1/mosquitto"
  make_mosquitto_certs "$dir"
  [[ -f "$dir/certs/ca.crt" ]] || die "no torii CA bundle in $dir/certs (create devices first)"
  cp "$dir/certs/ca.crt" "$d/clients-ca.crt"
  chmod 0755 "$d"
  chmod 0644 "$d"/*.crt
  cat >"$d/mosquitto.conf" <<CONF
per_listener_settings false
persistence false
log_dest stderr
log_type error
log_type warning
connection_messages false
set_tcp_nodelay true
max_connections -1
listener $port 127.0.0.1
cafile $d/clients-ca.crt
certfile $d/server.crt
keyfile $d/server.key
require_certificate true
use_identity_as_username true
ciphers_tls1.3 TLS_AES_128_GCM_SHA256
CONF
  "$MOSQUITTO" -c "$d/mosquitto.conf" >"$d/server.out" 2>"$d/server.err" &
  echo $! >"$d/pid"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$(cat "$d/pid")" 2>/dev/null || { cat "$d/server.err" >&2; die "mosquitto did not start"; }
    sleep 0.1
  done
  log "mosquitto $(cat "$d/pid") listening on 127.0.0.1:$port"
}

# stop_pid FILE: SIGTERM to the PID recorded in FILE, then wait for it (SIGKILL after 30 s).
stop_pid() {
  local file="$1" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$file"
}

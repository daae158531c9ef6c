#!/usr/bin/env bash
# What one more idle connection costs each broker: starts the broker, opens IDLE_CONNECTIONS
# idle mutual-TLS connections with `torii bench --idle` (500 a second from four source
# addresses, as compare.sh does), and samples the server's resident memory and its number
# of established connections every SAMPLE_S seconds while they open. Prints one line per
# sample ("connections rss_kib") and then the growth per connection between the first
# sample at or above FROM connections and the last one, which leaves out what a server
# reuses of memory it freed before the first connection.
#
#   bench/idle-growth.sh torii|mosquitto
#
# Needs a work directory from `KEEP_WORK=1 WORK=DIR bench/compare.sh` with SCENARIOS
# including idle (its devices, certificates and torii's data). Environment: WORK (required),
# TORII, MOSQUITTO, IDLE_CONNECTIONS (default: every device there), FROM (1200), SAMPLE_S
# (2.5), TORII_PORT (18883), MOSQUITTO_PORT (18884). The server is stopped by its PID at the end.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

broker="${1:-}"
[[ "$broker" == torii || "$broker" == mosquitto ]] || die "usage: bench/idle-growth.sh torii|mosquitto"
[[ -n "${WORK:-}" && -f "${WORK:-}/certs/ca.crt" ]] || die "WORK must name a work directory of compare.sh (KEEP_WORK=1)"
FROM="${FROM:-1200}"
SAMPLE_S="${SAMPLE_S:-2.5}"
TORII_PORT="${TORII_PORT:-18883}"
MOSQUITTO_PORT="${MOSQUITTO_PORT:-18884}"

need_binaries
raise_nofile 20000
connections="$(idle_connection_count "$WORK")" || exit 1

cleanup() {
  stop_pid "$WORK/torii/pid"
  stop_pid "$WORK/mosquitto/pid"
  stop_pid "$WORK/idle-growth-bench.pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "$broker" == torii ]]; then
  launch_torii "$WORK/torii/torii.toml" "$WORK/torii/data" "$WORK/torii"
  port="$TORII_PORT" cafile="$WORK/certs/ca.crt" pid="$(cat "$WORK/torii/pid")"
else
  start_mosquitto "$WORK" "$MOSQUITTO_PORT"
  port="$MOSQUITTO_PORT" cafile="$WORK/mosquitto/ca.crt" pid="$(cat "$WORK/mosquitto/pid")"
fi
log "$broker $pid on 127.0.0.1:$port: opening $connections idle connections"

start_idle_clients "$port" "$cafile" "$pid" "$connections" 10 300 "$WORK/idle-growth-bench.out"
echo $! >"$WORK/idle-growth-bench.pid"

samples=()
deadline=$((SECONDS + connections / 500 + 60))
while ((SECONDS < deadline)); do
  open="$(ss -Htn state established "( sport = :$port )" | wc -l)"
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
  echo "$open $rss"
  samples+=("$open $rss")
  ((open >= connections)) && break
  sleep "$SAMPLE_S"
done
printf '%s\n' "${samples[@]}" | awk -v from="$FROM" -v broker="$broker" '
  $1 >= from && !first { c0 = $1; r0 = $2; first = 1 }
  { c1 = $1; r1 = $2 }
  END {
    if (!first || c1 == c0) { print broker ": too few samples above " from " connections" > "/dev/stderr"; exit 1 }
    printf "%s: %.1f KiB per connection from %d to %d connections (%d -> %d KiB)\n", broker, (r1 - r0) / (c1 - c0), c0, c1, r0, r1
  }'

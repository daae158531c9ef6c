#!/usr/bin/env bash
# What one more idle connection keeps allocated in a broker's heap, and whose it is: runs the
# broker under heaptrack twice, once with FROM and once with IDLE_CONNECTIONS idle mutual-TLS
# connections (opened as idle-growth.sh opens them), kills it with SIGKILL once they are all
# open (so that what is still allocated is what they hold), and prints the difference per
# connection between the two runs, split into OpenSSL's (OpenSSL's code anywhere on the
# allocation's stack), SQLite's and the broker's own.
#
#   bench/idle-heap.sh torii|mosquitto
#
# Needs heaptrack (apt-get install heaptrack), a torii built with TORII_ALLOCATOR=system (see
# below), and a work directory from
# `KEEP_WORK=1 WORK=DIR bench/compare.sh` with SCENARIOS including idle. Environment: WORK
# (required), TORII, MOSQUITTO, IDLE_CONNECTIONS (default: every device there), FROM (1250),
# TORII_PORT (18883), MOSQUITTO_PORT (18884). Profiles are kept in $WORK/heap-*.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

broker="${1:-}"
[[ "$broker" == torii || "$broker" == mosquitto ]] || die "usage: bench/idle-heap.sh torii|mosquitto"
[[ -n "${WORK:-}" && -f "${WORK:-}/certs/ca.crt" ]] || die "WORK must name a work directory of compare.sh (KEEP_WORK=1)"
command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null || die "heaptrack is needed (apt-get install heaptrack)"
FROM="${FROM:-1250}"
TORII_PORT="${TORII_PORT:-18883}"
MOSQUITTO_PORT="${MOSQUITTO_PORT:-18884}"

need_binaries
# heaptrack sees malloc and free, not tcmalloc's own operator new: against a torii linked with
# tcmalloc (the default) almost all of torii's own allocations would go uncounted.
if [[ "$broker" == torii ]] && ldd "$TORII" | grep -q tcmalloc; then
  die "$TORII is linked with tcmalloc, whose allocations heaptrack does not see: build one with
  cmake --preset dev -B build/sysalloc -DTORII_ALLOCATOR=system -DBUILD_TESTING=OFF && cmake --build build/sysalloc --target torii
and set TORII=build/sysalloc/apps/torii/torii"
fi
raise_nofile 20000
connections="$(idle_connection_count "$WORK")" || exit 1
((FROM < connections)) || die "FROM ($FROM) must be below IDLE_CONNECTIONS ($connections)"

run_dir="$WORK/heap-$broker"
mkdir -p "$run_dir"
cleanup() {
  stop_pid "$run_dir/bench.pid"
  stop_pid "$run_dir/broker.pid"
  stop_pid "$run_dir/heaptrack.pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# profile N: the broker under heaptrack with N idle connections, then SIGKILL; leaves
# $run_dir/N.leak (heaptrack_print's flame graph of what was still allocated).
profile() {
  local n="$1" port cafile pattern pid="" open
  rm -f "$run_dir/$n".zst "$run_dir/$n".leak "$run_dir/$n".open "$run_dir/broker.pid"
  if [[ "$broker" == torii ]]; then
    port="$TORII_PORT" cafile="$WORK/certs/ca.crt"
    pattern="^$TORII server --config $WORK/torii/torii.toml"
    heaptrack -o "$run_dir/$n" "$TORII" server --config "$WORK/torii/torii.toml" --data-dir "$WORK/torii/data" \
      >"$run_dir/server-$n.out" 2>&1 &
  else
    start_mosquitto "$WORK" "$MOSQUITTO_PORT" # writes the configuration; this instance is replaced below
    stop_pid "$WORK/mosquitto/pid"
    port="$MOSQUITTO_PORT" cafile="$WORK/mosquitto/ca.crt"
    pattern="^$MOSQUITTO -c $WORK/mosquitto/mosquitto.conf"
    heaptrack -o "$run_dir/$n" "$MOSQUITTO" -c "$WORK/mosquitto/mosquitto.conf" >"$run_dir/server-$n.out" 2>&1 &
  fi
  echo $! >"$run_dir/heaptrack.pid"
  for _ in $(seq 1 600); do
    pid="$(pgrep -n -f "$pattern" || true)"
    [[ -n "$pid" ]] && ss -Hltn "( sport = :$port )" | grep -q . && break
    sleep 0.2
  done
  [[ -n "$pid" ]] || die "$broker did not start under heaptrack (see $run_dir/server-$n.out)"
  echo "$pid" >"$run_dir/broker.pid"
  log "$broker $pid under heaptrack: opening $n idle connections"
  start_idle_clients "$port" "$cafile" "$pid" "$n" 600 600 "$run_dir/bench-$n.out"
  echo $! >"$run_dir/bench.pid"
  # Until all are open, or no more open for 15 s (under heaptrack a broker may be too slow for
  # some clients' handshakes: the count is what it holds when killed).
  local last=0 still=0
  for _ in $(seq 1 600); do
    sleep 1
    open="$(ss -Htn state established "( sport = :$port )" | wc -l)"
    ((open >= n)) && break
    if ((open == last && open > 0)); then still=$((still + 1)); else still=0 last="$open"; fi
    ((still >= 15)) && break
  done
  sleep 5
  open="$(ss -Htn state established "( sport = :$port )" | wc -l)"
  ((open * 10 >= n * 9)) || die "only $open of $n connections opened"
  echo "$open" >"$run_dir/$n.open"
  log "$open connections open; $broker killed"
  kill -KILL "$pid"
  rm -f "$run_dir/broker.pid"
  wait "$(cat "$run_dir/heaptrack.pid")" 2>/dev/null || true
  stop_pid "$run_dir/bench.pid"
  heaptrack_print -F "$run_dir/$n.leak" --flamegraph-cost-type leaked "$run_dir/$n.zst" >/dev/null
}

for port in "$TORII_PORT" "$MOSQUITTO_PORT"; do
  if ss -Hltn "( sport = :$port )" | grep -q .; then die "port $port is in use: stop what listens there first"; fi
done
profile "$FROM"
profile "$connections"

/usr/bin/python3 - "$run_dir/$FROM.leak" "$run_dir/$connections.leak" \
  $(($(cat "$run_dir/$connections.open") - $(cat "$run_dir/$FROM.open"))) "$broker" <<'PY'
import re, sys
openssl = re.compile(r"^(SSL_|ssl|tls|EVP_|ASN1_|X509|OPENSSL_|BN_|EC_|BIO_|OSSL_|d2i_|i2d_|o2i_|ossl_|PEM_|CRYPTO_|HMAC|ECDSA)")
def split(path):
    owners = {"OpenSSL": 0, "SQLite": 0, "own": 0}
    for line in open(path):
        stack, _, cost = line.rstrip("\n").rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";") if f]
        if any(openssl.match(f) for f in frames):
            owners["OpenSSL"] += int(cost)
        elif any(f.startswith("sqlite3") for f in frames):
            owners["SQLite"] += int(cost)
        else:
            owners["own"] += int(cost)
    return owners
before, after, n, broker = split(sys.argv[1]), split(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
parts = ", ".join(f"{k} {(after[k] - before[k]) / n:.0f}" for k in before)
total = (sum(after.values()) - sum(before.values())) / n
print(f"{broker}: {total:.0f} B of heap per added connection ({parts}) over {n} connections")
PY

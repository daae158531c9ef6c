#!/usr/bin/env bash
# torii against Mosquitto 2 under the same `torii bench` load, end to end (docs/benchmarks.md):
#
#   qos1     QoS 1 ingest, $CONNECTIONS connections, ~64-byte JSON telemetry, max rate
#   qos0     the same at QoS 0
#   latency  QoS 1 at half of each broker's qos1 rate, and both at half of the lower rate:
#            PUBACK latency and publish -> subscriber latency (torii: bench-sub subscribes to
#            each device's telemetry, readable through a segment route)
#   idle     as many idle mutual-TLS connections as there are devices (up to
#            $IDLE_CONNECTIONS), servers freshly started: server RSS per connection. Each
#            client sends its own certificate only (torii bench sends what the file holds).
#   idle-chain  the same with clients that send torii's issuing and root CA after their
#            certificate (what OpenSSL clients do by default when their CA file holds them)
#
# Both servers run on loopback with TLS 1.3 and client certificates issued by torii's CA
# (Mosquitto: the certificate's CN is the user name, no persistence). They are started by
# this script and stopped by their PIDs when it ends. Results: $OUT/results.jsonl (one line
# per run: scenario, broker, the bench's result), $OUT/commands.txt, $OUT/table.md.
#
# Environment: TORII, MOSQUITTO (binaries), DURATION, WARMUP, CONNECTIONS, INFLIGHT, IDLE_CONNECTIONS,
# DEVICE_BUDGET_S (seconds spent creating devices for the idle run), QUIET_WAIT_S (longest
# wait for an idle machine before each run), SCENARIOS, OUT, WORK (default: a temporary
# directory, removed at the end unless KEEP_WORK is set).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-5}"
CONNECTIONS="${CONNECTIONS:-100}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-19000}"
IDLE_HOLD_S="${IDLE_HOLD_S:-10}"
DEVICE_BUDGET_S="${DEVICE_BUDGET_S:-180}"
TORII_PORT="${TORII_PORT:-18883}"
MOSQUITTO_PORT="${MOSQUITTO_PORT:-18884}"
SCENARIOS="${SCENARIOS:-qos1 qos0 latency idle idle-chain}"
OUT="${OUT:-$REPO_DIR/build/bench-results/$(date +%Y%m%d-%H%M%S)}"
if [[ -z "${WORK:-}" ]]; then
  WORK="$(mktemp -d /tmp/torii-bench.XXXXXX)"
  remove_work=1  # devices, certificates and a database of millions of rows: gone afterwards
fi
SOURCES="127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"

cleanup() {
  stop_pid "$WORK/torii/pid"
  stop_pid "$WORK/mosquitto/pid"
  if [[ -n "${remove_work:-}" && -z "${KEEP_WORK:-}" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_binaries
raise_nofile 20000
# The latency scenario runs at half of the qos1 rates measured before it in the same run:
# refused before anything runs rather than after the scenarios ahead of it.
seen_qos1=""
for scenario in $SCENARIOS; do
  case "$scenario" in
    qos1) seen_qos1=1 ;;
    latency) [[ -n "$seen_qos1" ]] || die "SCENARIOS: latency needs qos1 before it (it runs at half of that rate)" ;;
    qos0 | idle | idle-chain) ;;
    *) die "SCENARIOS: unknown scenario '$scenario' (qos1 qos0 latency idle idle-chain)" ;;
  esac
done
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
log "work directory $WORK, results in $OUT (open files: $(ulimit -n))"

# ~64-byte telemetry: {"id":"q1-bench-42-123456","temperature":21.50,"humidity":40.25}. The
# scenario tag keeps message ids distinct between runs (torii stores a repeated id once).
payload() { printf '{"id":"%s-{device}-{seq}","temperature":21.50,"humidity":40.25}' "$1"; }
payload_ts() { printf '{"id":"%s-{device}-{seq}","sent":{ts},"humidity":40.25}' "$1"; }

# run_bench BROKER SCENARIO ARGS...: one `torii bench` run; its result line is kept.
run_bench() {
  local broker="$1" scenario="$2" port ca
  shift 2
  case "$broker" in
    torii) port="$TORII_PORT" ca="$WORK/certs/ca.crt" ;;
    mosquitto) port="$MOSQUITTO_PORT" ca="$WORK/mosquitto/ca.crt" ;;
  esac
  local pid_file="$WORK/$broker/pid"
  local cmd=("$TORII" bench --host 127.0.0.1 --port "$port" --cafile "$ca" --server-pid "$(cat "$pid_file")" "$@")
  local idle
  idle="$(wait_quiet "${QUIET_WAIT_S:-900}")"
  log "$scenario / $broker (machine ${idle} % idle before)"
  printf '%s/%s (machine %s %% idle before): %s\n' "$scenario" "$broker" "$idle" "${cmd[*]}" >>"$OUT/commands.txt"
  # torii stores what it accepts; count it, so that "read" is never mistaken for "stored".
  local stored_before=0
  [[ "$broker" == torii && "$scenario" != idle* ]] && stored_before="$(torii_stored_total)"
  # What else kept the machine busy meanwhile: all busy time minus the server's and the bench's.
  local server_pid busy0 server0 start_ns line
  server_pid="$(cat "$pid_file")"
  busy0="$(machine_busy_ticks)" server0="$(process_ticks "$server_pid")" start_ns="$(date +%s%N)"
  line="$(/usr/bin/time -f '%U %S' -o "$OUT/$scenario-$broker.time" "${cmd[@]}" 2>"$OUT/$scenario-$broker.log")" || true
  local busy1 server1 elapsed_s bench_s others
  busy1="$(machine_busy_ticks)" server1="$(process_ticks "$server_pid")"
  elapsed_s="$(( ($(date +%s%N) - start_ns) / 1000000 ))"
  bench_s="$(tail -1 "$OUT/$scenario-$broker.time" | awk '{print $1 + $2}')"
  others="$(awk -v b=$((busy1 - busy0)) -v s=$((server1 - server0)) -v bench="$bench_s" -v ms="$elapsed_s" \
    -v hz="$(getconf CLK_TCK)" -v cpus="$(nproc)" \
    'BEGIN { o = ((b - s) / hz - bench) / (ms / 1000) / cpus * 100; if (o < 0) o = 0; printf "%.1f", o }')"
  [[ -n "$line" ]] || line='{"error":"no result line"}'
  printf '%s\n' "$line" >"$OUT/$scenario-$broker.json"
  # The store may still be writing what was accepted (QoS 0): wait until the count settles.
  local stored=null stored_per_s=null
  if [[ "$broker" == torii && "$scenario" != idle* ]]; then
    local previous=-1 now_total settled_ns unchanged=0
    for _ in $(seq 1 600); do
      now_total="$(torii_stored_total)"
      if [[ "$now_total" == "$previous" ]]; then
        unchanged=$((unchanged + 1))
        ((unchanged >= 10)) && break  # 2 s without a new row
      else
        previous="$now_total" settled_ns="$(date +%s%N)" unchanged=0
      fi
      sleep 0.2
    done
    stored=$((now_total - stored_before))
    # From the first message (after the connections were opened) until the last was stored.
    stored_per_s="$(jq -n --argjson n "$stored" --argjson ms "$(( (settled_ns - start_ns) / 1000000 ))" \
      --argjson connect "$(jq '.connect_s // 0' <<<"$line")" '$n / ($ms / 1000 - $connect) | floor')"
    log "torii stored $stored messages ($stored_per_s per second from first message to last stored)"
  fi
  jq -c --arg s "$scenario" --arg b "$broker" --argjson idle "$idle" --argjson others "$others" \
    --argjson stored "$stored" --argjson stored_per_s "$stored_per_s" --argjson bench_cpu "$bench_s" \
    '{scenario: $s, broker: $b, idle_before_percent: $idle, others_cpu_percent: $others,
      bench_process_cpu_s: $bench_cpu, stored: $stored, stored_per_s: $stored_per_s, result: .}' \
    <<<"$line" >>"$RESULTS"
  log "other processes used ${others} % of the machine during this run"
  jq -c '{connected, msgs_per_s, acked, refused, errors, ack_latency_us, latency_us, server, error}' <<<"$line" >&2
}

# Messages torii has stored: a read-only count on its database (SQLite in WAL mode lets a
# reader in beside the running server; only the bench's devices publish here).
torii_stored_total() {
  sqlite3 -readonly "$WORK/torii/data/torii.db" "SELECT count(*) FROM telemetry"
}

rate_of() { jq -r "select(.scenario == \"$1\" and .broker == \"$2\") | .result.msgs_per_s" "$RESULTS" | tail -1; }

# Devices bench-0 … bench-(n-1) that exist, counted from 0.
devices_available() {
  local n=0
  while [[ -f "$WORK/certs/bench-$n.key" ]]; do n=$((n + 1)); done
  echo "$n"
}

start_torii "$WORK" "$TORII_PORT"
log "creating $CONNECTIONS devices and bench-sub"
create_devices "$WORK" 0 "$CONNECTIONS"
[[ -f "$WORK/certs/bench-sub.key" ]] || torii_admin "$WORK" device create --id bench-sub --out "$WORK/certs" >/dev/null
# bench-sub reads every bench device's telemetry through a route (torii isolates devices).
torii_admin "$WORK" route add --from segment:default --to device:bench-sub >/dev/null
start_mosquitto "$WORK" "$MOSQUITTO_PORT"

common=(--cert-dir "$WORK/certs" --connections "$CONNECTIONS" --warmup "$WARMUP" --duration "$DURATION")
# QoS 1 messages each connection keeps unacknowledged (torii bench's default: 16).
if [[ -n "${INFLIGHT:-}" ]]; then common+=(--inflight "$INFLIGHT"); fi

for scenario in $SCENARIOS; do
  case "$scenario" in
    qos1 | qos0)
      qos="${scenario#qos}"
      for broker in torii mosquitto; do
        run_bench "$broker" "$scenario" "${common[@]}" --qos "$qos" --payload "$(payload "$scenario")"
      done
      ;;
    latency)
      # Half of each broker's own qos1 rate, and both at half of the lower one (the same load).
      t_max="$(rate_of qos1 torii)" m_max="$(rate_of qos1 mosquitto)"
      [[ -n "$t_max" && "$t_max" != null && -n "$m_max" && "$m_max" != null ]] ||
        die "latency needs the qos1 scenario first (same run)"
      t_half="$(jq -n "$t_max / 2 | floor")" m_half="$(jq -n "$m_max / 2 | floor")"
      same="$((t_half < m_half ? t_half : m_half))"
      # The subscriber subscribes to each device's topic (devices/<id>/telemetry): torii
      # refuses a wildcard in place of the device id, whatever the routes.
      sub=(--subscribe)
      run_bench torii latency "${common[@]}" --qos 1 --rate "$t_half" --payload "$(payload_ts lt)" "${sub[@]}"
      run_bench mosquitto latency "${common[@]}" --qos 1 --rate "$m_half" --payload "$(payload_ts lm)" "${sub[@]}"
      if ((same != m_half)); then
        run_bench mosquitto latency-same "${common[@]}" --qos 1 --rate "$same" --payload "$(payload_ts lq)" "${sub[@]}"
      fi
      if ((same != t_half)); then
        run_bench torii latency-same "${common[@]}" --qos 1 --rate "$same" --payload "$(payload_ts lr)" "${sub[@]}"
      fi
      ;;
    idle | idle-chain)
      log "creating devices for the idle run: up to $IDLE_CONNECTIONS within $DEVICE_BUDGET_S s"
      started="$(date +%s)"
      next="$(devices_available)"
      while ((next < IDLE_CONNECTIONS && $(date +%s) - started < DEVICE_BUDGET_S)); do
        chunk=$((IDLE_CONNECTIONS - next < 200 ? IDLE_CONNECTIONS - next : 200))
        create_devices "$WORK" "$next" "$chunk" 4
        next="$(devices_available)"
        log "  $next devices"
      done
      idle_n="$(devices_available)"
      log "$idle_n devices in $(($(date +%s) - started)) s"
      echo "$scenario: $idle_n devices created in $(($(date +%s) - started)) s" >>"$OUT/commands.txt"
      cert_dir="$WORK/certs"
      if [[ "$scenario" == idle-chain ]]; then
        # Each device's certificate followed by torii's CA bundle (issuing CA, then root).
        cert_dir="$WORK/certs-chain"
        mkdir -p "$cert_dir"
        for ((i = 0; i < idle_n; i++)); do
          [[ -f "$cert_dir/bench-$i.crt" ]] || cat "$WORK/certs/bench-$i.crt" "$WORK/certs/ca.crt" >"$cert_dir/bench-$i.crt"
          ln -sf "$WORK/certs/bench-$i.key" "$cert_dir/bench-$i.key"
        done
      fi
      idle=(--idle --connect-rate 500 --source-addresses "$SOURCES" --duration "$IDLE_HOLD_S" --keep-alive 300
            --drain-timeout 0 --cert-dir "$cert_dir")
      # Fresh processes, so that memory freed by the earlier runs does not hide the cost.
      stop_pid "$WORK/torii/pid"
      stop_pid "$WORK/mosquitto/pid"
      start_torii "$WORK" "$TORII_PORT"
      run_bench torii "$scenario" "${idle[@]}" --connections "$idle_n"
      stop_pid "$WORK/torii/pid"
      start_mosquitto "$WORK" "$MOSQUITTO_PORT"
      run_bench mosquitto "$scenario" "${idle[@]}" --connections "$idle_n"
      if [[ "$scenario" == idle ]] && ((idle_n < IDLE_CONNECTIONS)); then
        # Mosquitto keys sessions by client id, so it can hold the full count with fewer
        # certificates (--devices: identities reused, client ids distinct).
        stop_pid "$WORK/mosquitto/pid"
        start_mosquitto "$WORK" "$MOSQUITTO_PORT"
        run_bench mosquitto idle-full "${idle[@]}" --connections "$IDLE_CONNECTIONS" --devices "$idle_n"
      fi
      # Later scenarios expect both servers running.
      [[ -f "$WORK/torii/pid" ]] && kill -0 "$(cat "$WORK/torii/pid")" 2>/dev/null || start_torii "$WORK" "$TORII_PORT"
      ;;
    *) die "unknown scenario '$scenario' (qos1 qos0 latency idle idle-chain)" ;;
  esac
done

"$BENCH_DIR/table.sh" "$RESULTS" | tee "$OUT/table.md"
log "done: $OUT"

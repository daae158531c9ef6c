#!/usr/bin/env bash
# torii against Mosquitto 2 under the same `torii bench` load, end to end (docs/benchmarks.md):
#
#   qos1     QoS 1 ingest, $CONNECTIONS connections, ~64-byte JSON telemetry, max rate
#   qos0     the same at QoS 0
#   latency  QoS 1 at half of each broker's qos1 rate: PUBACK latency for both, and
#            publish -> subscriber latency where the broker lets a subscriber read the
#            publishers' topics (Mosquitto; torii refuses it, see docs/benchmarks.md)
#   idle     as many idle mutual-TLS connections as there are devices (up to
#            $IDLE_CONNECTIONS), servers freshly started: server RSS per connection
#
# Both servers run on loopback with TLS 1.3 and client certificates issued by torii's CA
# (Mosquitto: the certificate's CN is the user name, no persistence). They are started by
# this script and stopped by their PIDs when it ends. Results: $OUT/results.jsonl (one line
# per run: scenario, broker, the bench's result), $OUT/commands.txt, $OUT/table.md.
#
# Environment: TORII, MOSQUITTO (binaries), DURATION, WARMUP, CONNECTIONS, IDLE_CONNECTIONS,
# DEVICE_BUDGET_S (seconds spent creating devices for the idle run), QUIET_WAIT_S (longest
# wait for an idle machine before each run), SCENARIOS, OUT, WORK.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-5}"
CONNECTIONS="${CONNECTIONS:-100}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-19000}"
IDLE_HOLD_S="${IDLE_HOLD_S:-10}"
DEVICE_BUDGET_S="${DEVICE_BUDGET_S:-180}"
TORII_PORT="${TORII_PORT:-18883}"
MOSQUITTO_PORT="${MOSQUITTO_PORT:-18884}"
SCENARIOS="${SCENARIOS:-qos1 qos0 latency idle}"
OUT="${OUT:-$REPO_DIR/build/bench-results/$(date +%Y%m%d-%H%M%S)}"
WORK="${WORK:-$(mktemp -d /tmp/torii-bench.XXXXXX)}"
SOURCES="127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"

cleanup() {
  stop_pid "$WORK/torii/pid"
  stop_pid "$WORK/mosquitto/pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_binaries
raise_nofile 20000
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
  jq -c --arg s "$scenario" --arg b "$broker" --argjson idle "$idle" --argjson others "$others" \
    '{scenario: $s, broker: $b, idle_before_percent: $idle, others_cpu_percent: $others, result: .}' \
    <<<"$line" >>"$RESULTS"
  log "other processes used ${others} % of the machine during this run"
  jq -c '{connected, msgs_per_s, acked, refused, errors, ack_latency_us, latency_us, server, error}' <<<"$line" >&2
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
start_mosquitto "$WORK" "$MOSQUITTO_PORT"

common=(--cert-dir "$WORK/certs" --connections "$CONNECTIONS" --warmup "$WARMUP" --duration "$DURATION")

for scenario in $SCENARIOS; do
  case "$scenario" in
    qos1 | qos0)
      qos="${scenario#qos}"
      for broker in torii mosquitto; do
        run_bench "$broker" "$scenario" "${common[@]}" --qos "$qos" --payload "$(payload "$scenario")"
      done
      ;;
    latency)
      for broker in torii mosquitto; do
        max="$(rate_of qos1 "$broker")"
        [[ -n "$max" && "$max" != null ]] || die "latency needs the qos1 scenario first"
        half="$(jq -n "$max / 2 | floor")"
        if [[ "$broker" == torii ]]; then
          # torii isolates devices: a subscriber may read another device's telemetry only
          # through a route, and routes cannot be configured yet. PUBACK latency only.
          run_bench "$broker" latency "${common[@]}" --qos 1 --rate "$half" --payload "$(payload_ts lt)"
        else
          run_bench "$broker" latency "${common[@]}" --qos 1 --rate "$half" --payload "$(payload_ts lm)" \
            --subscribe --sub-topic 'devices/+/telemetry'
        fi
      done
      ;;
    idle)
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
      echo "idle: $idle_n devices created in $(($(date +%s) - started)) s" >>"$OUT/commands.txt"
      idle=(--idle --connect-rate 500 --source-addresses "$SOURCES" --duration "$IDLE_HOLD_S" --keep-alive 300
            --drain-timeout 0 --cert-dir "$WORK/certs")
      # Fresh processes, so that memory freed by the earlier runs does not hide the cost.
      stop_pid "$WORK/torii/pid"
      stop_pid "$WORK/mosquitto/pid"
      start_torii "$WORK" "$TORII_PORT"
      run_bench torii idle "${idle[@]}" --connections "$idle_n"
      stop_pid "$WORK/torii/pid"
      start_mosquitto "$WORK" "$MOSQUITTO_PORT"
      run_bench mosquitto idle "${idle[@]}" --connections "$idle_n"
      if ((idle_n < IDLE_CONNECTIONS)); then
        # Mosquitto keys sessions by client id, so it can hold the full count with fewer
        # certificates (--devices: identities reused, client ids distinct).
        stop_pid "$WORK/mosquitto/pid"
        start_mosquitto "$WORK" "$MOSQUITTO_PORT"
        run_bench mosquitto idle-full "${idle[@]}" --connections "$IDLE_CONNECTIONS" --devices "$idle_n"
      fi
      ;;
    *) die "unknown scenario '$scenario' (qos1 qos0 latency idle)" ;;
  esac
done

"$BENCH_DIR/table.sh" "$RESULTS" | tee "$OUT/table.md"
log "done: $OUT"

#!/usr/bin/env bash
# bench/rules-latency.sh: publish → alert latency through the whole server (gateway, rules
# engine, alert book) while the gateway carries half of its QoS 1 load with RULES rules (and
# the probe's) over DEVICES devices. Nothing here is a pass/fail threshold: the figures go to
# docs/benchmarks.md.
#
# Starts its own torii server (stopped by PID), creates DEVICES devices bench-0 … in 20
# segments s-0 … s-19 and RULES rules (RULES=0: none but the probe's, for comparison): a
# third watching one device each, two thirds one segment each (so that each bench message
# meets about RULES × 2/3 / 20 rules), with the rules bench's four conditions (threshold,
# windowed average, rate of change, absence — of an hour, so that the silent devices raise
# nothing during the run), each held 5 s. Then:
#   1. the maximum: `torii bench` QoS 1 from CONNECTIONS connections as fast as it goes, for
#      MAX_SECONDS (longer than the rules' windows, 1 min, to see them full);
#   2. half of it (or RATE msgs/s when set), with a probe beside it: device probe-1 (its own rule "probe hot",
#      temperature > 30, no hold) publishes 40 and 20 in turn every INTERVAL seconds through
#      one mosquitto_pub connection (connected before the first timed line), noting the time
#      before each line it hands over; each 40 opens an alert (each 20 resolves it). The latency of an opening is the alert's
#      opened_at (the server's clock when the alert book stored it) minus that time.
# Prints the two bench result lines and one RESULT line with p50/p90/p99/max in ms.
#
#   TORII=build/dev/apps/torii/torii bench/rules-latency.sh
#   DEVICES=2000 RULES=200 PROBES=50 TORII=… bench/rules-latency.sh   # a quicker look
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DEVICES="${DEVICES:-10000}"
RULES="${RULES:-999}"  # and the probe's: 1,000, an organisation's most
CONNECTIONS="${CONNECTIONS:-100}"
PROBES="${PROBES:-200}"
INTERVAL="${INTERVAL:-0.25}"
PORT="${PORT:-18883}"
PARALLEL="${PARALLEL:-4}"
MAX_SECONDS="${MAX_SECONDS:-15}"
RATE="${RATE:-}"  # the load beside the probe, msgs/s; empty: half of the maximum
((PROBES <= 250)) || die "PROBES: at most 250 (the alert list shows 500, two per probe)"
((CONNECTIONS <= DEVICES)) || die "CONNECTIONS: at most DEVICES"
[[ -z "$RATE" || "$RATE" =~ ^[1-9][0-9]*$ ]] || die "RATE: a whole number of messages per second, not '$RATE'"
need_binaries
command -v mosquitto_pub >/dev/null || die "mosquitto_pub is needed (scripts/bootstrap installs it)"
raise_nofile 20000
work="$(mktemp -d)"
trap 'stop_pid "$work/load.pid"; stop_pid "$work/torii/pid"; rm -rf "$work"' EXIT
start_torii "$work" "$PORT"
admin() { torii_admin "$work" "$@"; }

log "creating $DEVICES devices in 20 segments (certificates for the first $CONNECTIONS)"
mkdir -p "$work/certs"
export TORII CERTS="$work/certs" CONFIG="$work/torii/torii.toml" DATA="$work/torii/data"
make_devices() {  # stdin: "id segment" pairs; $1: how they get their identity
  xargs -n 2 -P "$PARALLEL" sh -c '"$TORII" admin device create --id "$0" --segment "$1" '"$1"' \
    --config "$CONFIG" --data-dir "$DATA" >/dev/null'
}
for ((i = 0; i < CONNECTIONS; ++i)); do echo "bench-$i s-$((i % 20))"; done | make_devices '--out "$CERTS"'
for ((i = CONNECTIONS; i < DEVICES; ++i)); do echo "bench-$i s-$((i % 20))"; done | make_devices --enrolment-token
created="$(admin device list | grep -c "^bench-")" || true
((created == DEVICES)) || die "created $created devices of $DEVICES"
admin device create --id probe-1 --segment probe --out "$work/certs" >/dev/null

log "creating $RULES rules"
mkdir -p "$work/rules"
conditions=("temperature > 29.5" "avg(temperature, 1m) > 26" "rate(temperature, 30s) > 0.5" "absent(1h)")
for ((i = 0; i < RULES; ++i)); do
  if ((i % 3 == 0)); then
    selector="{\"devices\":[\"bench-$(((i * 7919) % DEVICES))\"]}"
  else
    selector="{\"segments\":[\"s-$((i % 20))\"]}"
  fi
  printf '{"name":"rule %s","selector":%s,"condition":"%s","for":"5s","actions":[{"type":"alert"}]}\n' \
    "$i" "$selector" "${conditions[$((i % 4))]}" >"$work/rules/$i.json"
done
((RULES == 0)) || printf '%s\n' "$work"/rules/*.json | xargs -P "$PARALLEL" -I{} "$TORII" admin rule create --file {} \
  --config "$work/torii/torii.toml" --data-dir "$work/torii/data" >/dev/null
printf '{"name":"probe hot","selector":{"devices":["probe-1"]},"condition":"temperature > 30","severity":"info","actions":[{"type":"alert"}]}\n' \
  >"$work/probe-rule.json"
admin rule create --file "$work/probe-rule.json" >/dev/null
rules_loaded="$(admin rule list | grep -c '"id"')" || true
((rules_loaded == RULES + 1)) || die "created $rules_loaded rules of $((RULES + 1))"

server_pid="$(cat "$work/torii/pid")"
bench=("$TORII" bench --host 127.0.0.1 --port "$PORT" --cafile "$work/certs/ca.crt" --cert-dir "$work/certs"
  --connections "$CONNECTIONS" --qos 1 --quiet --server-pid "$server_pid")
log "the maximum: QoS 1 from $CONNECTIONS connections, as fast as it goes"
max_line="$("${bench[@]}" --warmup 3 --duration "$MAX_SECONDS" --payload '{"id":"max-{device}-{seq}","temperature":21.5}' | tail -n 1)"
echo "max: $max_line"
max_rate="$(sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p' <<<"$max_line")"
[[ -n "$max_rate" ]] || die "no msgs_per_s in: $max_line"
half="${RATE:-$(awk -v r="$max_rate" 'BEGIN {printf "%d", r / 2}')}"

seconds="$(awk -v n="$PROBES" -v i="$INTERVAL" 'BEGIN {printf "%d", 2 * n * i + 12}')"
log "$([[ -n "$RATE" ]] && echo "RATE" || echo "half of it") ($half msgs/s) for ${seconds}s, with $PROBES probe alerts"
"${bench[@]}" --rate "$half" --warmup 2 --duration "$seconds" \
  --payload '{"id":"half-{device}-{seq}","temperature":21.5}' >"$work/half.out" &
echo $! >"$work/load.pid"
sleep 4
{
  # Once connected (the first line waits for the TLS handshake), the timed lines.
  echo '{"id":"probe-start","temperature":20}'
  sleep 2
  # The times are kept in memory and written at the end: an append to a file here could wait
  # for the disk (the server's writes keep it busy) between the time taken and the line sent.
  sent=()
  for ((n = 0; n < 2 * PROBES; ++n)); do
    value=$((n % 2 == 0 ? 40 : 20))
    now_us="${EPOCHREALTIME/[.,]/}"
    sent+=("$((now_us / 1000)) $value")
    printf '{"id":"probe-%s","temperature":%s}\n' "$n" "$value"
    sleep "$INTERVAL"
  done
  printf '%s\n' "${sent[@]}" >"$work/sent.txt"
} | mosquitto_pub --cafile "$work/certs/ca.crt" --cert "$work/certs/probe-1.crt" --key "$work/certs/probe-1.key" \
  -h 127.0.0.1 -p "$PORT" -V mqttv5 -i probe-1 -q 1 -t devices/probe-1/telemetry -l
wait "$(cat "$work/load.pid")" || die "the half-load bench failed: $(cat "$work/half.out")"
echo "half: $(tail -n 1 "$work/half.out")"

# The probe's alerts, oldest first, against the times of the 40s sent.
admin alerts --limit 500 | grep '"title":"probe hot"' |
  sed -n 's/.*"opened_at":"\([^"]*\)".*/\1/p' | sort >"$work/opened.txt"
opened="$(wc -l <"$work/opened.txt")"
((opened == PROBES)) || die "$opened probe alerts for $PROBES probes"
awk '$2 == 40 {print $1}' "$work/sent.txt" >"$work/hot.txt"
paste "$work/hot.txt" "$work/opened.txt" | /usr/bin/python3 -c '
import sys, datetime, json
lat = []
for line in sys.stdin:
    sent, opened = line.split()
    at = datetime.datetime.strptime(opened, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    lat.append(at.timestamp() * 1000 - int(sent))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("RESULT " + json.dumps({"probes": len(lat), "p50_ms": round(q(0.5), 1), "p90_ms": round(q(0.9), 1),
                             "p99_ms": round(q(0.99), 1), "max_ms": round(lat[-1], 1), "min_ms": round(lat[0], 1)}))
'

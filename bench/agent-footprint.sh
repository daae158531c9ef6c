#!/usr/bin/env bash
# bench/agent-footprint.sh: what `torii agent run` costs a device. Starts its own torii
# server (stopped by PID), enrols one device with a one-time token, runs the agent with
# SENSORS simulated sensors read every SENSORS seconds (one message a second in all, the
# goal's load) for DURATION seconds, and prints one RESULT line: the agent's resident memory
# (VmRSS) and peak (VmHWM) at the end, its CPU time, the messages the server stored, and the
# size of the agent's binary stripped. AGENT is that binary: `torii-agent` beside TORII (the
# agent alone), or TORII itself (`torii agent`, the server's libraries linked in too).
#
#   TORII=build/release/apps/torii/torii bench/agent-footprint.sh
#   DURATION=120 SENSORS=5 AGENT=build/dev/apps/torii/torii bench/agent-footprint.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION="${DURATION:-60}"
SENSORS="${SENSORS:-5}"
PORT="${PORT:-18883}"

AGENT="${AGENT:-$(dirname "$TORII")/torii-agent}"
[[ -x "$TORII" ]] || die "no torii binary at $TORII (set TORII=)"
[[ -x "$AGENT" ]] || die "no agent binary at $AGENT (set AGENT=)"
agent_cmd=("$AGENT")
[[ "$AGENT" == "$TORII" ]] && agent_cmd+=(agent)
work="$(mktemp -d)"
chmod 0711 "$work"
trap 'stop_pid "$work/agent.pid"; stop_pid "$work/pid"; rm -rf "$work"' EXIT

cat >"$work/torii.toml" <<TOML
[server]
user = "nobody"
[gateway]
listen = ["127.0.0.1:$PORT"]
[console]
listen = ["127.0.0.1:0"]
[log]
level = "warn"
TOML
chmod 0644 "$work/torii.toml"
launch_torii "$work/torii.toml" "$work/data" "$work"
console="$(sed -n 's/.*listening: console \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/server.out" | head -n 1)"
admin=(--config "$work/torii.toml" --data-dir "$work/data")
"$TORII" admin ca export "${admin[@]}" >"$work/ca.pem"
"$TORII" admin device create "${admin[@]}" --id footprint-1 --enrolment-token | tail -n 1 >"$work/token"
"${agent_cmd[@]}" enroll --server "https://$console" --ca "$work/ca.pem" --token-file "$work/token" \
  --state-dir "$work/agent" --user nobody >/dev/null

{
  printf '[agent]\nuser = "nobody"\nstate_dir = "%s"\ngateway = "127.0.0.1:%s"\nserver = "https://%s"\n' "$work/agent" "$PORT" "$console"
  signals=(temperature humidity power door)
  for i in $(seq 1 "$SENSORS"); do
    signal="${signals[$(((i - 1) % 4))]}"
    printf '\n[[sensor]]\nmetric = "%s_%s"\nsource = "simulated"\nsignal = "%s"\ninterval_seconds = %s\n' \
      "$signal" "$i" "$signal" "$SENSORS"
  done
} >"$work/agent.toml"
"${agent_cmd[@]}" run --config "$work/agent.toml" 2>"$work/agent.err" &
echo $! >"$work/agent.pid"
pid="$(cat "$work/agent.pid")"
log "agent $pid: $SENSORS sensors, one message a second, for ${DURATION}s"
sleep "$DURATION"
[[ -n "${PMAP_OUT:-}" ]] && pmap -x "$pid" >"$PMAP_OUT"
rss_kib="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
hwm_kib="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")"
cpu_ticks="$(process_ticks "$pid")"
stop_pid "$work/agent.pid"
stored="$("$TORII" admin telemetry list "${admin[@]}" --device footprint-1 --limit 10000 | grep -c '"kind":"telemetry"')"
cp "$AGENT" "$work/agent.stripped"
strip "$work/agent.stripped"
size_bytes="$(stat -c %s "$work/agent.stripped")"
printf 'RESULT {"agent":"%s","sensors":%s,"seconds":%s,"rss_kib":%s,"peak_rss_kib":%s,"cpu_seconds":%s,"stored_telemetry":%s,"stripped_binary_bytes":%s}\n' \
  "$(basename "$AGENT")" "$SENSORS" "$DURATION" "$rss_kib" "$hwm_kib" "$(awk -v t="$cpu_ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}')" \
  "$stored" "$size_bytes"

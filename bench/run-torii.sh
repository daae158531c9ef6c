#!/usr/bin/env bash
# bench/run-torii.sh WORKDIR [PORT] [DEVICES]: a torii server set up for benchmarking
# (quotas and connection limits raised, see lib.sh), with devices bench-0 … bench-(DEVICES-1)
# and bench-sub whose certificates land in WORKDIR/certs. Runs until Ctrl-C, then stops the
# server by its PID.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dir="${1:?usage: bench/run-torii.sh WORKDIR [PORT] [DEVICES]}"
port="${2:-18883}"
devices="${3:-100}"
need_binaries
raise_nofile 20000
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
trap 'stop_pid "$dir/torii/pid"' EXIT
trap 'exit 0' INT TERM
start_torii "$dir" "$port"
log "creating $devices devices (existing ones are kept)"
create_devices "$dir" 0 "$devices"
[[ -f "$dir/certs/bench-sub.key" ]] || torii_admin "$dir" device create --id bench-sub --out "$dir/certs" >/dev/null
# bench-sub reads every bench device's telemetry through a route (torii isolates devices).
torii_admin "$dir" route add --from segment:default --to device:bench-sub >/dev/null
cat >&2 <<TEXT

torii (PID $(cat "$dir/torii/pid")) on 127.0.0.1:$port. For example:
  $TORII bench --port $port --cafile $dir/certs/ca.crt --cert-dir $dir/certs \\
      --connections $devices --qos 1 --duration 20 --server-pid $(cat "$dir/torii/pid")
Ctrl-C stops it.
TEXT
wait "$(cat "$dir/torii/pid")"

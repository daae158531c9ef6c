#!/usr/bin/env bash
# bench/run-mosquitto.sh WORKDIR [PORT]: Mosquitto 2 with mutual TLS for comparison runs.
# Clients present torii device certificates (WORKDIR/certs, made by bench/run-torii.sh), which
# Mosquitto verifies against torii's CA bundle; its own server certificate comes from a
# throwaway CA in WORKDIR/mosquitto. No persistence. Runs until Ctrl-C, then stops it by PID.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dir="${1:?usage: bench/run-mosquitto.sh WORKDIR [PORT]}"
port="${2:-18884}"
need_binaries
raise_nofile 20000
dir="$(cd "$dir" && pwd)"
trap 'stop_pid "$dir/mosquitto/pid"' EXIT
trap 'exit 0' INT TERM
start_mosquitto "$dir" "$port"
cat >&2 <<TEXT

mosquitto (PID $(cat "$dir/mosquitto/pid")) on 127.0.0.1:$port. For example:
  $TORII bench --port $port --cafile $dir/mosquitto/ca.crt --cert-dir $dir/certs \\
      --connections 100 --qos 1 --duration 20 --server-pid $(cat "$dir/mosquitto/pid")
Ctrl-C stops it.
TEXT
wait "$(cat "$dir/mosquitto/pid")"

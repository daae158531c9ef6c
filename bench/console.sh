#!/usr/bin/env bash
# bench/console.sh: the console's REST API under wrk (Debian's), on loopback, with a real
# signed-in session. Starts its own torii server (stopped by PID), sets up the first
# administrator through the one-time link (TOTP from oathtool), creates DEVICES devices and
# people to act as, then measures:
#   list-max     GET /api/v1/devices (DEVICES devices), as fast as CONNECTIONS connections go
#   list-paced   the same offered at RATE requests/s on a fixed schedule (wrk/paced.lua): the
#                latency a steady load sees
#   (both with the web application firewall on, then again with it off: `console.waf`)
#   sign-in      POST /api/v1/session with the right password, as fast as it goes, with the
#                default Argon2id cost (2 passes, 64 MiB) and 2 concurrent hashes
#   list-during  the device list at about 100 requests/s while sign-ins are hammered, and
#   list-alone   the same without them: what the password hashing leaves the rest
# Each run prints one RESULT line (wrk/common.lua): requests/s, latency percentiles in µs,
# errors and the count of every status. Per-person and per-source limits are raised so that
# the server's own work is measured, not its quotas; every run uses a person of its own.
#
#   TORII=build/release/apps/torii/torii bench/console.sh
#   DURATION=20 RATE=1000 CONNECTIONS=16 DEVICES=100 OUT=/tmp/console-bench bench/console.sh
# (WAF_THREADS sets console.waf_threads; 0, the default, is one per core less one, at least one.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION="${DURATION:-20}"
RATE="${RATE:-1000}"
CONNECTIONS="${CONNECTIONS:-16}"
DEVICES="${DEVICES:-100}"
PORT="${PORT:-18443}"
OUT="${OUT:-$REPO_DIR/build/bench-results/console}"
export BENCH_WRK_DIR="$BENCH_DIR/wrk"
PASSWORD="violet harbour ladder sprinkle 42"

[[ -x "$TORII" ]] || die "no torii binary at $TORII (set TORII=)"
for tool in wrk curl oathtool jq; do command -v "$tool" >/dev/null || die "$tool is needed"; done
mkdir -p "$OUT"
work="$(mktemp -d)"
chmod 0711 "$work"
trap 'stop_pid "$work/pid"; rm -rf "$work"' EXIT
base="https://localhost:$PORT"

# start WAF: the server with the firewall on (true) or off (false), on the same data.
start() {
  cat >"$work/torii.toml" <<TOML
[server]
user = "nobody"
hostnames = ["localhost"]
[gateway]
listen = ["127.0.0.1:0"]
[console]
listen = ["127.0.0.1:$PORT"]
waf = $1
waf_threads = ${WAF_THREADS:-0}
sign_in_attempts_per_minute = 10000
requests_per_minute_per_user = 10000000
[log]
level = "warn"
TOML
  chmod 0644 "$work/torii.toml"
  launch_torii "$work/torii.toml" "$work/data" "$work"
  grep -q "listening: console" "$work/server.out" || die "the console is not listening"
  "$TORII" admin ca export --config "$work/torii.toml" --data-dir "$work/data" >"$work/ca.pem"
  if [[ "$1" == true ]]; then
    # The firewall really inspects: a request the Core Rule Set blocks at paranoia level 1.
    api GET "/api/v1/devices?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E" >/dev/null
    expect 403 "the firewall's check"
  fi
  log "torii $(cat "$work/pid") (waf = $1) on $base"
}

# api METHOD PATH [JSON] [SESSION] [CSRF]: the answer's body; the status goes to $work/status.
api() {
  local args=(-sS --cacert "$work/ca.pem" -X "$1" "$base$2" -o "$work/body" -w '%{http_code}' -D "$work/headers")
  [[ -n "${3:-}" ]] && args+=(-H "Content-Type: application/json" --data-binary "$3")
  [[ -n "${4:-}" ]] && args+=(-H "Cookie: __Host-torii-session=$4")
  [[ -n "${5:-}" ]] && args+=(-H "X-CSRF-Token: $5")
  curl "${args[@]}" >"$work/status"
  cat "$work/body"
}
cookie() { sed -n 's/^[Ss]et-[Cc]ookie: __Host-torii-session=\([^;]*\);.*/\1/p' "$work/headers" | tail -n 1; }
expect() { [[ "$(cat "$work/status")" == "$1" ]] || die "$2: HTTP $(cat "$work/status") $(cat "$work/body")"; }

set_up() {
  local token secret code
  sleep 1  # the link is printed right after the ready lines
  token="$(grep -o 'https://[^ ]*/setup#[^ ]*' "$work/server.out" | head -n 1 | sed 's/.*#//')"
  [[ -n "$token" ]] || die "no setup link in the server's output"
  api POST /api/v1/setup "{\"token\":\"$token\",\"username\":\"admin\",\"email\":\"admin@example.org\",\"password\":\"$PASSWORD\"}" >/dev/null
  expect 201 "setup"
  ADMIN="$(cookie)"
  CSRF="$(jq -r .csrf_token "$work/body")"
  secret="$(api POST /api/v1/account/totp "" "$ADMIN" "$CSRF" | jq -r .secret)"
  code="$(oathtool --totp -b "$secret")"
  api POST /api/v1/account/totp/confirm "{\"code\":\"$code\"}" "$ADMIN" "$CSRF" >/dev/null
  expect 200 "TOTP enrolment"
  ADMIN="$(cookie)"
  CSRF="$(jq -r .csrf_token "$work/body")"
  log "creating $DEVICES devices"
  seq 1 "$DEVICES" | xargs -P 4 -I{} "$TORII" admin device create --id "meter-{}" --out "$work/certs" \
    --config "$work/torii.toml" --data-dir "$work/data" >/dev/null
}

# person NAME: an operator with a password (set through their link); prints their session.
person() {
  local link
  link="$(api POST /api/v1/users "{\"username\":\"$1\",\"email\":\"$1@example.org\",\"role\":\"operator\"}" "$ADMIN" "$CSRF" | jq -r .password_link)"
  expect 201 "adding $1"
  api POST /api/v1/password-link "{\"token\":\"${link#*#}\",\"new_password\":\"$PASSWORD\"}" >/dev/null
  expect 204 "$1's password"
  api POST /api/v1/session "{\"username\":\"$1\",\"password\":\"$PASSWORD\"}" >/dev/null
  expect 200 "$1's sign-in"
  cookie
}

# measure NAME RATE WRK-ARGS...: one wrk run with 2 threads (RATE 0: as fast as it goes); its
# RESULT line goes to $OUT/console.txt.
measure() {
  local name="$1" rate="$2" line
  shift 2
  log "$name"
  line="$(RATE="$rate" THREADS=2 wrk --timeout 10s -t 2 "$@" | grep '^RESULT')" || die "$name: wrk gave no result"
  printf '%s %s\n' "$name" "${line#RESULT }" | tee -a "$OUT/console.txt"
  printf '%s: RATE=%s THREADS=2 wrk --timeout 10s -t 2 %s\n' "$name" "$rate" "$*" | sed "s/__Host-torii-session=[^ ']*/__Host-torii-session=…/" >>"$OUT/commands.txt"
}

list() {  # list NAME SESSION RATE CONNECTIONS
  measure "$1" "$3" -c "$4" -d "${DURATION}s" -s "$BENCH_WRK_DIR/paced.lua" \
    -H "Cookie: __Host-torii-session=$2" "$base/api/v1/devices"
}

: >"$OUT/console.txt"
: >"$OUT/commands.txt"
log "waiting for a quiet machine"
echo "idle before: $(wait_quiet "${QUIET_WAIT_S:-900}") %" >>"$OUT/console.txt"
for waf in true false; do
  start "$waf"
  [[ -n "${ADMIN:-}" ]] || set_up
  list "list-max waf=$waf" "$(person "max-$waf")" 0 "$CONNECTIONS"
  list "list-paced waf=$waf" "$(person "paced-$waf")" "$RATE" "$CONNECTIONS"
  [[ "$waf" == true ]] && stop_pid "$work/pid"
done

# Sign-ins (the firewall off, as left by the loop, so that the hashing is what is measured;
# the firewall's cost per request is the difference of the list runs above).
person signer >/dev/null
list "list-alone" "$(person alone)" 100 4
LOGIN_NAME=signer LOGIN_PASSWORD="$PASSWORD" measure "sign-in" 0 -c 8 -d "$((DURATION + 4))s" \
  -s "$BENCH_WRK_DIR/sign_in.lua" "$base" &
signing=$!
sleep 2
list "list-during" "$(person during)" 100 4
wait "$signing"
log "results in $OUT/console.txt, commands in $OUT/commands.txt"

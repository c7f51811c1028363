#!/usr/bin/env bash
# hold.sh - the holding benchmark of issue 4, on 127.0.0.1 only.
#
# rampart runs with `backend = "none"` and a webhook push provider pointed at `rampart-load sink`
# (a receiver that accepts every notification and approves nothing). Then:
#
#   1. idle:   code-only TOTP logins (as behind NPS) at concurrency CONC for DURATION s: p50/p99;
#   2. park:   PARKED logins of distinct users typed "push" (one pending push per user), sent at
#              RATE/s, each held until [out_of_band] timeout_secs (HOLD_SECS);
#   3. loaded: once every login is parked (rampart_oob_pending on /metrics), the same TOTP load
#              again, on other users (codes are single use): p50/p99 while PARKED logins wait;
#   4. rampart's RSS (VmRSS, VmHWM) idle and while parked, and the park answers (all must be
#      Rejects at the timeout, none lost).
#
# Prints a markdown table with the p99 ratio loaded/idle, and the exact commands.
# Usage: benches/hold.sh [OUTDIR]
# env:   PARKED (50000)  RATE (5000)  HOLD_SECS (120)  CONC (16)  DURATION (10)  USERS (200000)
#        SKIP_BUILD (0)  RADIUS_PORT (18130)  HTTP_PORT (18131)  SINK_PORT (18132)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PARKED="${PARKED:-50000}"
RATE="${RATE:-5000}"
HOLD_SECS="${HOLD_SECS:-120}"
CONC="${CONC:-16}"
DURATION="${DURATION:-10}"
USERS="${USERS:-200000}"
RADIUS_PORT="${RADIUS_PORT:-18130}"
HTTP_PORT="${HTTP_PORT:-18131}"
SINK_PORT="${SINK_PORT:-18132}"
SECRET="bench-secret"
TOTP_KEY="rampart-hold-seeds"

OUT="${1:-$(mktemp -d "${TMPDIR:-/tmp}/rampart-hold.XXXXXX")}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CMDS="$OUT/commands.txt"
: >"$CMDS"
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
run() { printf '%s\n' "$*" >>"$CMDS"; "$@"; }

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release --bins"
  (cd "$REPO" && cargo build --release --bins --locked -q)
fi
RAMPART="$TARGET/release/rampart"
LOAD="$TARGET/release/rampart-load"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

cat >"$OUT/rampart.toml" <<EOF
[radius]
listen = "127.0.0.1:$RADIUS_PORT"
max_in_flight = 65536

[[clients]]
name = "bench"
address = "127.0.0.1"
secret = "$SECRET"

[primary]
backend = "none"

[store]
path = "$OUT/rampart.db"
key_file = "$OUT/rampart.key"

[http]
listen = "127.0.0.1:$HTTP_PORT"
public_url = "http://127.0.0.1:$HTTP_PORT"

[out_of_band]
timeout_secs = $HOLD_SECS
# One push per user here; the per-user limit is not what is measured.
max_per_window = 1000

[push]
format = "webhook"
url = "http://127.0.0.1:$SINK_PORT/hook"
signing_secret = "bench-signing-secret"

[log]
level = "warn"
EOF

W=6
log "importing TOTP seeds for $USERS users"
run "$LOAD" seeds --totp-key "$TOTP_KEY" --users "$USERS" --user-format "user{:0$W}" >"$OUT/seeds.csv"
run "$RAMPART" --config "$OUT/rampart.toml" enroll import "$OUT/seeds.csv" >/dev/null

timeout 900 "$LOAD" sink --listen "127.0.0.1:$SINK_PORT" 2>"$OUT/sink.log" &
PIDS+=($!)
printf '%s\n' "$LOAD sink --listen 127.0.0.1:$SINK_PORT" >>"$CMDS"
timeout 900 "$RAMPART" --config "$OUT/rampart.toml" serve 2>"$OUT/rampart.log" &
PIDS+=($!)
TPID=$!
printf '%s\n' "$RAMPART --config $OUT/rampart.toml serve" >>"$CMDS"
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
RPID=$(pgrep -P "$TPID" -x rampart)   # the daemon itself, not its `timeout` wrapper

rss() { awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {printf "%.1f %.1f\n", r/1024, h/1024}' "/proc/$RPID/status"; }
pending() { curl -fs "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^rampart_oob_pending / {print int($2)}'; }
totp_load() { # label first
  run "$LOAD" radius --server "127.0.0.1:$RADIUS_PORT" --secret "$SECRET" --password-format "" \
    --totp-key "$TOTP_KEY" --users $((USERS / 2)) --first "$2" --user-format "user{:0$W}" \
    -c "$CONC" -d "$DURATION" --label "$1" --cpu-pid "rampart=$RPID"
}

log "idle: TOTP logins at concurrency $CONC"
totp_load idle 0 >"$OUT/idle.json"
read -r IDLE_RSS IDLE_HWM < <(rss)

log "parking $PARKED logins at $RATE/s (held $HOLD_SECS s)"
run "$LOAD" park --server "127.0.0.1:$RADIUS_PORT" --secret "$SECRET" --count "$PARKED" \
  --rate "$RATE" --hold $((HOLD_SECS + 30)) >"$OUT/park.json" 2>"$OUT/park.log" &
PARK=$!
PIDS+=($PARK)
# Wait until every login is parked, or until the count stops growing for 5 s
# after the last one was sent (deliveries that failed are rejected at once).
SEND_SECS=$(( PARKED / RATE + 1 ))
last=-1; still=0; start=$(date +%s)
while :; do
  n=$(pending || echo 0); n=${n:-0}
  [ "$n" -ge "$PARKED" ] && break
  if [ "$n" -eq "$last" ]; then still=$((still + 1)); else still=0; last=$n; fi
  [ $(( $(date +%s) - start )) -gt "$SEND_SECS" ] && [ "$still" -ge 25 ] && break
  sleep 0.2
done
log "parked: $(pending) logins waiting"
read -r PARK_RSS PARK_HWM < <(rss)
PARKED_NOW=$(pending)
FAILED=$(curl -fs "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^rampart_oob_delivery_failures_total/ {s+=$2} END {print s+0}')

log "loaded: TOTP logins while $PARKED logins wait"
totp_load parked $((USERS / 2)) >"$OUT/parked.json"
STILL=$(pending)
read -r LOADED_RSS LOADED_HWM < <(rss)
log "waiting for the parked logins to time out"
wait "$PARK" || true
SENT_TO_SINK=$(grep -o '[0-9]* notifications' "$OUT/sink.log" | tail -1 | cut -d' ' -f1)

python3 - "$OUT" "$PARKED" "$IDLE_RSS" "$PARK_RSS" "$LOADED_RSS" "$LOADED_HWM" "$STILL" "${SENT_TO_SINK:-0}" "$PARKED_NOW" "$FAILED" <<'PY' | tee "$OUT/summary.md"
import json, sys
out, parked, idle_rss, park_rss, loaded_rss, hwm, still, sink, parked_now, failed = sys.argv[1:]
idle = json.loads(open(f"{out}/idle.json").read().strip().splitlines()[-1])
loaded = json.loads(open(f"{out}/parked.json").read().strip().splitlines()[-1])
park = json.loads(open(f"{out}/park.json").read().strip().splitlines()[-1])
print(f"| run | req/s | p50 ms | p99 ms | errors | rampart RSS MiB |")
print(f"|---|---|---|---|---|---|")
print(f'| idle | {idle["rps"]:.0f} | {idle["p50_ms"]} | {idle["p99_ms"]} | {idle["errors"]} | {idle_rss} |')
print(f'| {parked} parked | {loaded["rps"]:.0f} | {loaded["p50_ms"]} | {loaded["p99_ms"]} | {loaded["errors"]} | {loaded_rss} (peak {hwm}) |')
ratio = loaded["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("nan")
print()
print(f"p99 parked/idle: {ratio:.2f}x; RSS with {parked_now} parked: {park_rss} MiB; still parked at the loaded run's end: {still}; deliveries failed: {failed}")
print(f"park answers: {park}; notifications at the sink: {sink}")
PY
log "commands in $CMDS"

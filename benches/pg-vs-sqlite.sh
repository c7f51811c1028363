#!/usr/bin/env bash
# pg-vs-sqlite.sh - the TOTP login path on the SQLite store and on PostgreSQL, on this
# machine, on 127.0.0.1 only.
#
# Builds rampart in release mode, starts a throwaway PostgreSQL (Debian's postgresql package,
# its own data directory, default durability: fsync and synchronous_commit on; as the postgres
# user when run as root), imports USERS TOTP seeds with `rampart enroll import` into each store,
# and measures `rampart-load radius` against `backend = "none"` (the code alone, as behind NPS)
# at each concurrency in CONCS:
#
#   sqlite-none-totp     [store] path = ... (the default)
#   postgres-none-totp   [store] url = "postgres://..." (pool_size = POOL)
#   postgres-async-none-totp  the same with `?options[synchronous_commit]=off` in the URL: commits
#                        are not waited for on disk (what SQLite's synchronous = NORMAL does)
#
# Each run gets its own slice of users, so no (user, 30 s step) code repeats (see
# ldap-vs-freeradius.sh). Prints a markdown table: req/s, p50, p99, errors, waits, and CPU
# cores of rampart, postgres (all its processes) and the load generator.
#
# Usage: benches/pg-vs-sqlite.sh [OUTDIR]
# env:   USERS (100000)  DURATION (8)  WARMUP (1)  CONCS ("1 16 64")  POOL (8)  SKIP_BUILD (0)
#        ROWS (all three)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT="${1:-$(mktemp -d /tmp/pg-vs-sqlite.XXXXXX)}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
USERS="${USERS:-100000}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-1}"
CONCS="${CONCS:-1 16 64}"
POOL="${POOL:-8}"
ROWS="${ROWS:-sqlite-none-totp postgres-none-totp postgres-async-none-totp}"
SECRET="bench-Secret-1"
TOTP_KEY="rampart-bench-seeds"
TTL=1800
RES="$OUT/results.jsonl"
: >"$RES"

log() { echo "[$(date +%T)] $*" >&2; }

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/postgres" ] || { echo "apt-get install postgresql" >&2; exit 1; }

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release --bins"
  (cd "$REPO" && cargo build --release --bins --locked -q)
fi
RAMPART="$TARGET/release/rampart"
LOAD="$TARGET/release/rampart-load"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- PostgreSQL ---------------------------------------------------------------------------------
PGDIR="$OUT/pg"
mkdir -p "$PGDIR"
AS=()
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$PGDIR"
  AS=(setpriv --reuid=postgres --regid=postgres --clear-groups --)
fi
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log "PostgreSQL on 127.0.0.1:$PGPORT ($PGBIN)"
"${AS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U rampart -E UTF8 --locale=C --auth=trust >"$OUT/initdb.log"
"${AS[@]}" timeout -s INT "$TTL" "$PGBIN/postgres" -D "$PGDIR/data" -p "$PGPORT" -h 127.0.0.1 \
  -k "$PGDIR" </dev/null >"$OUT/postgres.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  grep -q "ready to accept connections" "$OUT/postgres.log" && break
  sleep 0.1
done
"$PGBIN/psql" -h "$PGDIR" -p "$PGPORT" -U rampart -d postgres -X -q -c "CREATE DATABASE rampart"
PG_PID=$(head -1 "$PGDIR/data/postmaster.pid")

# ---- rampart ------------------------------------------------------------------------------------
write_config() {  # write_config NAME STORE_TOML
  mkdir -p "$OUT/$1"
  cat >"$OUT/$1/rampart.toml" <<EOF
[radius]
listen = "127.0.0.1:0"

[[clients]]
name = "bench"
address = "127.0.0.1"
secret = "$SECRET"

[primary]
backend = "none"

[store]
$2
key_file = "$OUT/$1/rampart.key"

[log]
level = "warn,rampart::app=info"
EOF
  echo "$OUT/$1/rampart.toml"
}

RP_PID=""
start_rampart() {  # start_rampart CONFIG -> RP_ADDR, RP_PID
  local logf="${1%.toml}.log"
  setsid timeout -s TERM "$TTL" "$RAMPART" serve --config "$1" </dev/null >"$logf" 2>&1 &
  local tpid=$!
  PIDS+=("$tpid")
  RP_ADDR=""
  for _ in $(seq 1 100); do
    RP_ADDR=$(sed -n 's/.*RADIUS listening on udp\/\([0-9.:]*\).*/\1/p' "$logf" | head -1)
    [ -n "$RP_ADDR" ] && break
    sleep 0.1
  done
  RP_PID=$(ps -o pid= --ppid "$tpid" | tr -d ' ' | head -1)
  [ -n "$RP_ADDR" ] || { tail "$logf" >&2; exit 1; }
}

pg_ticks() {  # CPU ticks (user + system) of the postmaster and its children
  python3 - "$PG_PID" <<'PY'
import os, sys
root = sys.argv[1]
total = 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if pid == root or fields[1] == root:  # fields[1] is the parent pid
        total += int(fields[11]) + int(fields[12])
print(total)
PY
}

slice() {  # slice INDEX -> "FIRST COUNT": 1 share for c=1, 2 for the others
  python3 - "$USERS" "$1" "$CONCS" <<'PY'
import sys
users, index, concs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split()
weights = [1 if c == "1" else 2 for c in concs]
unit = users // sum(weights)
print(unit * sum(weights[:index]), unit * weights[index])
PY
}

run_row() {  # run_row LABEL STORE_TOML
  case " $ROWS " in *" $1 "*) ;; *) return 0 ;; esac
  local config
  config=$(write_config "$1" "$2")
  log "$1: importing $USERS seeds"
  "$LOAD" seeds --users "$USERS" --user-format "totp{:06}" --totp-key "$TOTP_KEY" >"$OUT/$1/seeds.csv"
  "$RAMPART" enroll import "$OUT/$1/seeds.csv" --config "$config" | sed 's/^/    /' >&2
  start_rampart "$config"
  local i=0 first count
  for c in $CONCS; do
    read -r first count < <(slice "$i"); i=$((i + 1))
    log "$1 c=$c"
    local before after started line
    before=$(pg_ticks); started=$(date +%s.%N)
    line=$("$LOAD" radius --server "$RP_ADDR" --secret "$SECRET" --first "$first" --users "$count" \
      --user-format "totp{:06}" --password-format "" --totp-key "$TOTP_KEY" \
      --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" --label "$1" \
      --cpu-pid "rampart=$RP_PID")
    after=$(pg_ticks)
    # PostgreSQL's CPU: the postmaster and its backends (children), over the whole run
    # including warm-up; only meaningful on the postgres row.
    python3 - "$line" "$before" "$after" "$started" "$(date +%s.%N)" "$1" >>"$RES" <<'PY'
import json, os, sys
r = json.loads(sys.argv[1])
if sys.argv[6].startswith("postgres"):
    ticks = int(sys.argv[3]) - int(sys.argv[2])
    wall = float(sys.argv[5]) - float(sys.argv[4])
    r.setdefault("cpu", {})["postgres"] = {"cores": ticks / os.sysconf("SC_CLK_TCK") / wall}
print(json.dumps(r))
PY
  done
  kill -TERM "$RP_PID" 2>/dev/null || true
}

run_row sqlite-none-totp "path = \"$OUT/sqlite-none-totp/rampart.db\""
run_row postgres-none-totp "url = \"postgres://rampart@127.0.0.1:$PGPORT/rampart\"
pool_size = $POOL"
"$PGBIN/psql" -h "$PGDIR" -p "$PGPORT" -U rampart -d postgres -X -q -c "CREATE DATABASE rampart_async"
run_row postgres-async-none-totp "url = \"postgres://rampart@127.0.0.1:$PGPORT/rampart_async?options[synchronous_commit]=off\"
pool_size = $POOL"

python3 - "$RES" <<'PY' | tee "$OUT/summary.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def cores(r, name):
    v = r.get("cpu", {}).get(name)
    return f'{v["cores"]:.2f}' if v else "–"
print("| row | conc | req/s | p50 ms | p99 ms | errors | waits | rampart cores | postgres cores | loadgen cores |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f'| {r["label"]} | {r["concurrency"]} | {r["rps"]:.0f} | {r["p50_ms"]} | {r["p99_ms"]} | '
          f'{r["errors"]} | {r["waits"]} | {cores(r, "rampart")} | {cores(r, "postgres")} | {cores(r, "loadgen")} |')
PY
echo "results: $RES"

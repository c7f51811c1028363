#!/usr/bin/env bash
# ldap-vs-freeradius.sh - rampart against FreeRADIUS and against the raw LDAP path,
# in one run, on this machine, on 127.0.0.1 only.
#
# Starts the peer slapd with LDAP_USERS users (../shared/peer/ldap-up.sh) and FreeRADIUS doing
# PAP by LDAP search-then-bind against it (freeradius-up.sh -b ldap), builds rampart in release
# mode, imports TOTP seeds with `rampart enroll import`, then measures with `rampart-load` at
# each concurrency in CONCS:
#
#   fr-ldap            FreeRADIUS 3.2, PAP via LDAP (search + bind), no second factor
#   rampart-ldap-totp  rampart, [primary] backend = "ldap" + TOTP (password,CODE)
#   rampart-ldap       rampart, backend = "ldap", password only (unenrolled = "allow", empty store)
#   rampart-none-totp  rampart, backend = "none" + TOTP (the code alone, as behind NPS)
#   raw-ldap           no RADIUS at all: ldap3 search as the service account + bind as the user
#   raw-ldap-busyS     raw-ldap while a busy loop takes S of a core (each S in BUSY_SHARES, at the
#                      concurrencies in BUSY_CONCS): the LDAP path's ceiling when the rest of a
#                      RADIUS front end (its RADIUS and TOTP work, the load generator) takes S
#   rampart-local-totp rampart, backend = "local" (argon2id) + TOTP; only when named in ROWS
#
# and prints a markdown table (req/s, p50, p99, errors, CPU cores per process) with the ratios
# rampart/FreeRADIUS and rampart/raw at the same concurrency, then the exact commands it ran.
# Every daemon runs under `timeout PEER_TTL`, and all are stopped on exit (trap), also on ^C.
#
# A (user, 30 s step) TOTP code is single-use in rampart, so each TOTP run gets its own slice of
# users; if a run logs in every user of its slice within one step, requests wait for the next
# step and the `waits` column says so: raise LDAP_USERS / NONE_USERS then.
#
# ROUNDS > 1 repeats every row that many times (fresh daemons and stores each round, slapd kept)
# and the table shows medians: the rates, and the ratios taken within each round (with their
# range), since this 2-core VM's speed drifts by up to a third between minutes.
#
# Usage: benches/ldap-vs-freeradius.sh [OUTDIR]
# env:   DURATION (10)  WARMUP (1)  CONCS ("1 16 64")  ROUNDS (1)  LDAP_USERS (100000)  NONE_USERS (100000)
#        LOCAL_USERS (3000)  ROWS (all but rampart-local-totp)  PEER_TTL (1200)  LOG_LEVEL (info)
#        LDAP_PORT (3890)  LDAP_POOL (32)  FR_PORT (18120)  SKIP_BUILD (0)  PEER (../shared/peer)
#        BUSY_SHARES ("0.25 0.5 0.75 1")  BUSY_CONCS ("64")
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PEER="${PEER:-$REPO/../shared/peer}"
if [ ! -x "$PEER/ldap-up.sh" ] || [ ! -x "$PEER/freeradius-up.sh" ]; then
  echo "this benchmark needs the FreeRADIUS + slapd peer scripts in $PEER (../shared/peer next to" >&2
  echo "the repository); set PEER=/path/to/shared/peer" >&2
  exit 1
fi

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-1}"
CONCS="${CONCS:-1 16 64}"
ROUNDS="${ROUNDS:-1}"
LDAP_USERS="${LDAP_USERS:-100000}"
NONE_USERS="${NONE_USERS:-100000}"
LOCAL_USERS="${LOCAL_USERS:-3000}"
ROWS="${ROWS:-fr-ldap rampart-ldap-totp rampart-ldap rampart-none-totp raw-ldap raw-ldap-busy}"
BUSY_SHARES="${BUSY_SHARES:-0.25 0.5 0.75 1}"
BUSY_CONCS="${BUSY_CONCS:-64}"
export PEER_TTL="${PEER_TTL:-1200}"
LOG_LEVEL="${LOG_LEVEL:-info}"
LDAP_PORT="${LDAP_PORT:-3890}"
# rampart's [primary] pool_size (connections per pool). FreeRADIUS 3.2's rlm_ldap pool grows with
# its thread pool (max_servers = 32), so rampart gets as many: like for like.
LDAP_POOL="${LDAP_POOL:-32}"
FR_PORT="${FR_PORT:-18120}"
SECRET="testing123"                 # the peer FreeRADIUS client secret; rampart uses the same
TOTP_KEY="rampart-bench-seeds"      # per-user seed = HMAC-SHA256(key, user)[..20]

# ---- rampart's LDAP primary: the one place to adjust when the backend's keys change ---------
ldap_primary() {
  cat <<EOF
[primary]
backend = "ldap"
urls = ["ldap://127.0.0.1:$LDAP_PORT"]
base_dn = "ou=people,dc=example,dc=org"
bind_dn = "cn=radius-svc,dc=example,dc=org"
bind_password = "radiussvcpw"
user_filter = "(uid={user})"
pool_size = $LDAP_POOL
EOF
}
# ---------------------------------------------------------------------------------------------

OUT="${1:-$(mktemp -d "${TMPDIR:-/tmp}/rampart-bench.XXXXXX")}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Private TMPDIR: the peer scripts record their state under it, so a peer that someone else
# started on this machine is neither found nor stopped by this run.
export TMPDIR="$OUT/tmp"
mkdir -p "$TMPDIR"
RES="$OUT/results.jsonl"
CMDS="$OUT/commands.txt"
: >"$RES"
: >"$CMDS"
LDAP_DIR=""; FR_DIR=""; RP_TPID=""; RP_PID=""; BUSY_PID=""

log() { echo "[$(date +%T)] $*" >&2; }
record() { printf '%s\n' "$*" >>"$CMDS"; }

stop_rampart() {
  [ -n "$RP_PID" ] && kill -TERM "$RP_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    [ -n "$RP_TPID" ] && kill -0 "$RP_TPID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$RP_TPID" ] && kill -KILL "$RP_TPID" 2>/dev/null || true
  RP_PID=""; RP_TPID=""
}
cleanup() {
  stop_rampart
  [ -n "$BUSY_PID" ] && kill "$BUSY_PID" 2>/dev/null || true
  [ -n "$FR_DIR" ] && "$PEER/freeradius-down.sh" "$FR_DIR" >/dev/null 2>&1 || true
  [ -n "$LDAP_DIR" ] && "$PEER/ldap-down.sh" "$LDAP_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() {  # port_busy tcp|udp PORT: a listening TCP socket / a bound UDP socket on PORT
  awk -v port=":$(printf '%04X' "$2")" -v proto="$1" \
    'NR > 1 && substr($2, length($2) - 4) == port && (proto == "udp" || $4 == "0A") { found = 1 }
     END { exit !found }' "/proc/net/$1" "/proc/net/${1}6" 2>/dev/null
}
if port_busy tcp "$LDAP_PORT"; then echo "tcp/$LDAP_PORT is in use: set LDAP_PORT" >&2; exit 1; fi
if port_busy udp "$FR_PORT"; then echo "udp/$FR_PORT is in use: set FR_PORT" >&2; exit 1; fi
for b in python3 timeout setsid; do
  command -v "$b" >/dev/null || { echo "missing $b" >&2; exit 1; }
done
missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapwhoami >/dev/null || missing+=(ldap-utils)
[ -x /usr/sbin/freeradius ] || missing+=(freeradius)
ls /usr/lib/freeradius/rlm_ldap.so >/dev/null 2>&1 || missing+=(freeradius-ldap)
if ((${#missing[@]})); then
  echo "missing packages: apt-get install ${missing[*]}" >&2
  exit 1
fi

# ---- build ------------------------------------------------------------------------------------
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET/release"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release --bins"
  (cd "$REPO" && cargo build --release --bins --locked -q)
fi
LOAD="$BIN/rampart-load"
RAMPART="$BIN/rampart"
[ -x "$LOAD" ] && [ -x "$RAMPART" ] || { echo "no release binaries in $BIN" >&2; exit 1; }

# User names as ldap-up.sh writes them: userNNNN, 4 digits or more.
W=$(python3 -c "print(max(4, len(str($LDAP_USERS - 1))))")
UFMT="user{:0$W}"
PFMT="pass{:0$W}"

# TOTP runs need disjoint users: slice USERS among the concurrencies, 1 share for c=1 and 2
# for each higher one (they run faster). Prints "FIRST COUNT" for the i-th concurrency.
slice() {  # slice USERS INDEX
  python3 - "$1" "$2" "$CONCS" <<'PY'
import sys
users, index, concs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split()
weights = [1 if c == "1" else 2 for c in concs]
unit = users // sum(weights)
first = unit * sum(weights[:index])
print(first, unit * weights[index])
PY
}

# ---- rampart instances ------------------------------------------------------------------------
# write_config NAME PRIMARY_TOML UNENROLLED -> path of the config
write_config() {
  local dir="$OUT/$1"
  mkdir -p "$dir"
  cat >"$dir/rampart.toml" <<EOF
# generated by ldap-vs-freeradius.sh
[radius]
listen = "127.0.0.1:0"

[[clients]]
name = "bench"
address = "127.0.0.1"
secret = "$SECRET"
require_message_authenticator = true

$2

[policy]
unenrolled = "$3"

[store]
path = "$dir/rampart.db"
key_file = "$dir/rampart.key"

[log]
level = "$LOG_LEVEL"
EOF
  echo "$dir/rampart.toml"
}

# start_rampart CONFIG -> sets RP_PID, RP_ADDR
start_rampart() {
  local config=$1 logf="${1%.toml}.log"
  record "$RAMPART serve --config $config"
  setsid timeout -s TERM -k 5 "$PEER_TTL" "$RAMPART" serve --config "$config" \
    </dev/null >"$logf" 2>&1 &
  RP_TPID=$!
  RP_ADDR=""
  for _ in $(seq 1 100); do
    RP_ADDR=$(sed -n 's/.*RADIUS listening on udp\/\([0-9.:]*\).*/\1/p' "$logf" | head -1)
    [ -n "$RP_ADDR" ] && break
    kill -0 "$RP_TPID" 2>/dev/null || break
    sleep 0.1
  done
  RP_PID=$(ps -o pid= --ppid "$RP_TPID" | tr -d ' ' | head -1)
  if [ -z "$RP_ADDR" ] || [ -z "$RP_PID" ]; then
    echo "rampart did not start ($config):" >&2; tail -20 "$logf" >&2; stop_rampart; return 1
  fi
}

# ---- measuring ----------------------------------------------------------------------------------
# measure ROW CONC COMMAND...: runs rampart-load, appends its JSON line with the row name
measure() {
  local row=$1 c=$2; shift 2
  local cmd=("$@" --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" --label "$row")
  record "${cmd[*]}"
  local line
  if line=$(timeout $((DURATION + WARMUP + 60)) "${cmd[@]}" 2> >(sed 's/^/    /' >&2)); then
    echo "$line" >>"$RES"
  else
    log "$row c=$c failed"
    echo "{\"label\": \"$row\", \"concurrency\": $c, \"failed\": true}" >>"$RES"
  fi
}

cpu_args() {  # --cpu-pid flags for whatever is running
  local args=()
  [ -n "$RP_PID" ] && args+=(--cpu-pid "rampart=$RP_PID")
  [ -n "$FR_DIR" ] && [ -f "$FR_DIR/freeradius.pid" ] && args+=(--cpu-pid "freeradius=$(cat "$FR_DIR/freeradius.pid")")
  [ -n "$LDAP_DIR" ] && [ -f "$LDAP_DIR/slapd.pid" ] && args+=(--cpu-pid "slapd=$(cat "$LDAP_DIR/slapd.pid")")
  [ -n "$BUSY_PID" ] && args+=(--cpu-pid "busy=$BUSY_PID")
  echo "${args[@]}"
}

wants() { case " $ROWS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# import_seeds CONFIG USER_FORMAT COUNT
import_seeds() {
  local csv="${1%.toml}-seeds.csv"
  record "$LOAD seeds --users $3 --user-format '$2' --totp-key $TOTP_KEY > $csv"
  "$LOAD" seeds --users "$3" --user-format "$2" --totp-key "$TOTP_KEY" >"$csv"
  record "$RAMPART enroll import $csv --config $1"
  "$RAMPART" enroll import "$csv" --config "$1" | sed 's/^/    /' >&2
}

# totp_row ROW CONFIG USER_FORMAT USERS PASSWORD_FORMAT: imports seeds for USERS users, starts
# rampart, and measures each concurrency on its own slice of them (codes are single use)
totp_row() {
  local row=$1 conf=$2 ufmt=$3 users=$4 pfmt=$5 i=0 c first count
  import_seeds "$conf" "$ufmt" "$users"
  start_rampart "$conf"
  for c in $CONCS; do
    read -r first count < <(slice "$users" "$i"); i=$((i + 1))
    # shellcheck disable=SC2046
    measure "$row" "$c" "$LOAD" radius --server "$RP_ADDR" --secret "$SECRET" \
      --first "$first" --users "$count" --user-format "$ufmt" --password-format "$pfmt" \
      --totp-key "$TOTP_KEY" $(cpu_args)
  done
  stop_rampart
}

# ldap_backend_ready CONFIG: whether this build knows backend = "ldap"
ldap_backend_ready() {
  if ! "$RAMPART" check-config --config "$1" >"$OUT/ldap-check.txt" 2>&1; then
    log "rampart has no usable LDAP backend yet; skipping rampart-ldap rows: $(head -3 "$OUT/ldap-check.txt" | tr '\n' ' ')"
    return 1
  fi
}

log "versions: $(/usr/sbin/freeradius -v | head -1 | sed 's/,.*//'); $(/usr/sbin/slapd -VV 2>&1 | head -1 | sed 's/.*slapd/slapd/;s/ (.*//'); $("$RAMPART" --version)"
log "host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

NEED_LDAP=0
for r in fr-ldap rampart-ldap-totp rampart-ldap raw-ldap raw-ldap-busy; do wants "$r" && NEED_LDAP=1; done
if [ "$NEED_LDAP" = 1 ]; then
  log "slapd with $LDAP_USERS users"
  record "$PEER/ldap-up.sh -n $LDAP_USERS -p $LDAP_PORT"
  "$PEER/ldap-up.sh" -n "$LDAP_USERS" -p "$LDAP_PORT" >"$OUT/ldap-up.txt"
  LDAP_DIR=$(cat "$TMPDIR/radius-peer-ldap.dir")
fi

# Every row of one round; a round's rampart stores live in their own directories (SUFFIX), so
# each round starts with no TOTP step claimed.
round_suffix() { if [ "$ROUNDS" -gt 1 ]; then echo "-r$1"; fi; }

for ((ROUND = 0; ROUND < ROUNDS; ROUND++)); do
  SUFFIX=$(round_suffix "$ROUND")
  [ "$ROUNDS" -gt 1 ] && log "round $((ROUND + 1)) of $ROUNDS"
  # ---- FreeRADIUS + LDAP --------------------------------------------------------------------------
  if wants fr-ldap; then
    log "FreeRADIUS (PAP via LDAP)"
    record "$PEER/freeradius-up.sh -b ldap -p $FR_PORT -L $LDAP_PORT"
    "$PEER/freeradius-up.sh" -b ldap -p "$FR_PORT" -L "$LDAP_PORT" >"$OUT/freeradius-up.txt"
    FR_DIR=$(cat "$TMPDIR/radius-peer-freeradius.dir")
    for c in $CONCS; do
      # FreeRADIUS 3.2.1 predates BLAST-RADIUS replies: no Message-Authenticator in them.
      # shellcheck disable=SC2046
      measure fr-ldap "$c" "$LOAD" radius --server "127.0.0.1:$FR_PORT" --secret "$SECRET" \
        --users "$LDAP_USERS" --user-format "$UFMT" --password-format "$PFMT" \
        --allow-unsigned-replies $(cpu_args)
    done
    "$PEER/freeradius-down.sh" "$FR_DIR" >/dev/null; FR_DIR=""
  fi

  # ---- rampart + LDAP (+ TOTP) --------------------------------------------------------------------
  if wants rampart-ldap-totp; then
    CONF=$(write_config "rampart-ldap-totp$SUFFIX" "$(ldap_primary)" reject)
    if ldap_backend_ready "$CONF"; then
      log "rampart LDAP + TOTP: importing $LDAP_USERS seeds"
      totp_row rampart-ldap-totp "$CONF" "$UFMT" "$LDAP_USERS" "$PFMT"
    fi
  fi
  if wants rampart-ldap; then
    CONF=$(write_config "rampart-ldap$SUFFIX" "$(ldap_primary)" allow)
    if ldap_backend_ready "$CONF"; then
      log "rampart LDAP only (unenrolled = allow, empty store)"
      start_rampart "$CONF"
      for c in $CONCS; do
        # shellcheck disable=SC2046
        measure rampart-ldap "$c" "$LOAD" radius --server "$RP_ADDR" --secret "$SECRET" \
          --users "$LDAP_USERS" --user-format "$UFMT" --password-format "$PFMT" $(cpu_args)
      done
      stop_rampart
    fi
  fi

  # ---- raw LDAP: search + bind, no RADIUS -----------------------------------------------------------
  if wants raw-ldap; then
    log "raw ldap3 search + bind"
    for c in $CONCS; do
      # shellcheck disable=SC2046
      measure raw-ldap "$c" "$LOAD" ldap --url "ldap://127.0.0.1:$LDAP_PORT" \
        --base-dn "ou=people,dc=example,dc=org" --bind-dn "cn=radius-svc,dc=example,dc=org" \
        --bind-password radiussvcpw --filter "(uid={user})" \
        --users "$LDAP_USERS" --user-format "$UFMT" --password-format "$PFMT" $(cpu_args)
    done
  fi

  # ---- raw LDAP while a busy loop takes a share of a core ---------------------------------------------
  # Any RADIUS front end shares the host with slapd: its RADIUS and TOTP work and the load generator
  # take CPU that the LDAP path (client + slapd) then lacks. A loop busy for SHARE of every 2 ms
  # stands in for that work, so these rows give the most logins/s that the LDAP path can carry
  # next to a front end of that cost; the busy column shows the share it really got.
  if wants raw-ldap-busy; then
    for share in $BUSY_SHARES; do
      log "raw ldap3 search + bind, a loop busy for $share of a core"
      for c in $BUSY_CONCS; do
        python3 -c '
import sys, time
share, end = float(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    start = time.monotonic()
    while time.monotonic() - start < 0.002 * share:
        pass
    if share < 1:
        time.sleep(0.002 * (1 - share))
' "$share" $((DURATION + WARMUP + 5)) &
        BUSY_PID=$!
        # shellcheck disable=SC2046
        measure "raw-ldap-busy$share" "$c" "$LOAD" ldap --url "ldap://127.0.0.1:$LDAP_PORT" \
          --base-dn "ou=people,dc=example,dc=org" --bind-dn "cn=radius-svc,dc=example,dc=org" \
          --bind-password radiussvcpw --filter "(uid={user})" \
          --users "$LDAP_USERS" --user-format "$UFMT" --password-format "$PFMT" $(cpu_args)
        kill "$BUSY_PID" 2>/dev/null || true
        wait "$BUSY_PID" 2>/dev/null || true
        BUSY_PID=""
      done
    done
  fi
done
if [ -n "$LDAP_DIR" ]; then "$PEER/ldap-down.sh" "$LDAP_DIR" >/dev/null; LDAP_DIR=""; fi

for ((ROUND = 0; ROUND < ROUNDS; ROUND++)); do
  SUFFIX=$(round_suffix "$ROUND")
  # ---- rampart, no primary + TOTP ---------------------------------------------------------------------
  if wants rampart-none-totp; then
    CONF=$(write_config "rampart-none-totp$SUFFIX" $'[primary]\nbackend = "none"' reject)
    log "rampart none + TOTP: importing $NONE_USERS seeds"
    totp_row rampart-none-totp "$CONF" "totp{:06}" "$NONE_USERS" ""
  fi
done

# ---- rampart, local users (argon2id) + TOTP -----------------------------------------------------------
if wants rampart-local-totp; then
  CONF=$(write_config rampart-local-totp $'[primary]\nbackend = "local"' reject)
  log "rampart local + TOTP: adding $LOCAL_USERS local users (one argon2id hash each)"
  record "for n in 0..$LOCAL_USERS: echo passNNNN | $RAMPART user add userNNNN --config $CONF"
  python3 -c "
for n in range($LOCAL_USERS): print('pass%0${W}d user%0${W}d $CONF' % (n, n))" |
    xargs -P "$(nproc)" -L 1 sh -c 'echo "$1" | "$0" user add "$2" --config "$3" >/dev/null' "$RAMPART"
  totp_row rampart-local-totp "$CONF" "$UFMT" "$LOCAL_USERS" "$PFMT"
fi

# ---- table ------------------------------------------------------------------------------------------
python3 - "$RES" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# The n-th result of a (row, concurrency) is from round n.
runs, order = {}, []
for r in rows:
    key = (r["label"], r["concurrency"])
    if key not in runs:
        runs[key] = []
        order.append(key)
    runs[key].append(r)
rounds = max(len(v) for v in runs.values())
def ok(r):
    return not r.get("failed") and r.get("rps")
def med(values):
    return statistics.median(values) if values else None
def cores(rs, name):
    v = [r["cpu"][name]["cores"] for r in rs if ok(r) and name in r.get("cpu", {})]
    return f"{med(v):.2f}" if v else "–"
def ratio(key, other):
    pairs = [(a["rps"], b["rps"]) for a, b in zip(runs[key], runs.get((other, key[1]), []))
             if ok(a) and ok(b)]
    if not pairs:
        return "–"
    each = [a / b for a, b in pairs]
    if len(each) == 1:
        return f"{each[0]:.2f}"
    return f"{med(each):.2f} ({min(each):.2f}–{max(each):.2f})"
if rounds > 1:
    print(f"Medians over {rounds} rounds; ratios are the median of each round's ratio (range).")
    print()
print("| row | conc | req/s | p50 ms | p99 ms | errors | waits | server cores | slapd cores | loadgen cores | ×FreeRADIUS | ×raw LDAP |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in order:
    label, conc = key
    good = [r for r in runs[key] if ok(r)]
    if not good:
        print(f"| {label} | {conc} | failed | | | | | | | | | |")
        continue
    rampart = label.startswith("rampart")
    server = (cores(good, "rampart") if rampart else cores(good, "freeradius") if label == "fr-ldap"
              else cores(good, "busy") if label.startswith("raw-ldap-busy") else "–")
    print(f'| {label} | {conc} | {med([r["rps"] for r in good]):.0f} | {round(med([r["p50_ms"] for r in good]), 3)} | '
          f'{round(med([r["p99_ms"] for r in good]), 3)} | {sum(r["errors"] for r in good)} | {sum(r["waits"] for r in good)} | '
          f'{server} | {cores(good, "slapd")} | {cores(good, "loadgen")} | '
          f'{ratio(key, "fr-ldap") if rampart else "–"} | {ratio(key, "raw-ldap") if rampart else "–"} |')
PY
echo
echo "errors = unexpected answers + timeouts + bad replies; cores = CPU seconds / wall seconds over the measured window"
echo "raw-ldap-busyS rows: the server cores column is the busy loop's"
echo "results: $RES   commands: $CMDS"
echo
echo "commands:"
sed 's/^/  /' "$CMDS"

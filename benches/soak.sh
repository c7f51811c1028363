#!/usr/bin/env bash
# soak.sh - load and soak, on 127.0.0.1 only (off by default: `./scripts/test --soak` runs it).
#
# Two rampart daemons, because one has one primary backend:
#   L  backend = "local" (argon2id) + TOTP + webhook push to `rampart-load sink` (approves nothing)
#   D  backend = "ldap" (a throwaway slapd started here, LDAP_USERS users) + TOTP
# and 64 senders for SOAK_SECS:
#   16  L: local password + TOTP code        (accept)
#    8  L: password spray of invented names  (reject; argon2 for every one, lockout rows)
#   32  D: LDAP password + TOTP code         (accept)
#    8  L: push logins held until the push times out, sent by radclient retrying every second
#          (retransmissions of held requests), PUSH_USERS at a time
# while both daemons get SIGHUP every RELOAD_SECS. Every second it samples VmRSS of both
# daemons and their /metrics. At the end it checks, and exits non-zero if one fails:
#   - every request was answered before its deadline (rampart-load timeouts = 0),
#   - peak RSS of each daemon < RSS_LIMIT_MIB (held pushes are few: PUSH_USERS),
#   - the bounded tables stayed within their bounds (password-check queue, held logins),
#   - every reload was taken (rampart_config_reloads_total{outcome="ok"}).
# Writes summary.md and the exact commands to OUTDIR.
#
# Usage: benches/soak.sh [OUTDIR]
# env:   SOAK_SECS (300)  RELOAD_SECS (15)  RSS_LIMIT_MIB (128)  LDAP_USERS (20000)
#        LOCAL_USERS (300)  PUSH_USERS (200)  HOLD_SECS (20)  SKIP_BUILD (0)  PORT_BASE (18140)
# needs: slapd, ldap-utils, radclient (freeradius-utils), curl, python3.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SOAK_SECS="${SOAK_SECS:-300}"
RELOAD_SECS="${RELOAD_SECS:-15}"
RSS_LIMIT_MIB="${RSS_LIMIT_MIB:-128}"
LDAP_USERS="${LDAP_USERS:-20000}"
LOCAL_USERS="${LOCAL_USERS:-300}"
PUSH_USERS="${PUSH_USERS:-200}"
HOLD_SECS="${HOLD_SECS:-20}"
BASE="${PORT_BASE:-18140}"
L_RADIUS=$BASE L_HTTP=$((BASE + 1)) D_RADIUS=$((BASE + 2)) D_HTTP=$((BASE + 3))
SINK=$((BASE + 4)) LDAP_PORT=$((BASE + 5))
SECRET="soak-Sh4red-secret-1"
TOTP_KEY="rampart-soak-seeds"

OUT="${1:-$(mktemp -d "${TMPDIR:-/tmp}/rampart-soak.XXXXXX")}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CMDS="$OUT/commands.txt"
: >"$CMDS"
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
run() { printf '%s\n' "$*" >>"$CMDS"; "$@"; }

for tool in radclient curl python3 ldapwhoami /usr/sbin/slapd /usr/sbin/slapadd; do
  command -v "$tool" >/dev/null || { echo "soak.sh needs $tool" >&2; exit 2; }
done
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release --bins"
  (cd "$REPO" && cargo build --release --bins --locked -q)
fi
RAMPART="$TARGET/release/rampart"
LOAD="$TARGET/release/rampart-load"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

config() {  # NAME RADIUS_PORT HTTP_PORT PRIMARY_TOML EXTRA_TOML
  mkdir -p "$OUT/$1"
  cat >"$OUT/$1/rampart.toml" <<EOF
[radius]
listen = "127.0.0.1:$2"

[[clients]]
name = "soak"
address = "127.0.0.1"
secret = "$SECRET"

$4

[policy]
max_failures = 1000000

[store]
path = "$OUT/$1/rampart.db"
key_file = "$OUT/$1/rampart.key"

[http]
listen = "127.0.0.1:$3"
public_url = "http://127.0.0.1:$3"

[log]
level = "warn"
$5
EOF
  echo "$OUT/$1/rampart.toml"
}

L_CONF=$(config local "$L_RADIUS" "$L_HTTP" '[primary]
backend = "local"' "
[out_of_band]
timeout_secs = $HOLD_SECS
max_per_window = 100000

[push]
format = \"webhook\"
url = \"http://127.0.0.1:$SINK/hook\"
signing_secret = \"soak-signing-secret\"")
D_CONF=$(config ldap "$D_RADIUS" "$D_HTTP" "[primary]
backend = \"ldap\"
urls = [\"ldap://127.0.0.1:$LDAP_PORT\"]
base_dn = \"ou=people,dc=example,dc=org\"
bind_dn = \"cn=radius-svc,dc=example,dc=org\"
bind_password = \"radiussvcpw\"
user_filter = \"(uid={user})\"" "")

# A throwaway slapd: userNNNN / passNNNN under ou=people, a search-only service account.
start_slapd() {
  local dir="$OUT/slapd" schema=/etc/ldap/schema
  mkdir -p "$dir/db"
  cat >"$dir/slapd.conf" <<EOF
include   $schema/core.schema
include   $schema/cosine.schema
include   $schema/inetorgperson.schema
pidfile   $dir/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
loglevel  0
database  mdb
maxsize   1073741824
suffix    "dc=example,dc=org"
rootdn    "cn=admin,dc=example,dc=org"
directory $dir/db
index     objectClass,uid eq
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="cn=radius-svc,dc=example,dc=org" read by * none
EOF
  python3 - "$LDAP_USERS" >"$dir/init.ldif" <<'PY'
import base64, hashlib, os, sys
def ssha(pw):
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(pw.encode() + salt).digest() + salt).decode()
out, base = sys.stdout.write, "dc=example,dc=org"
out(f"dn: {base}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n")
out(f"dn: cn=radius-svc,{base}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
    f"cn: radius-svc\nuserPassword: {ssha('radiussvcpw')}\n\n")
out(f"dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n")
for i in range(int(sys.argv[1])):
    u = f"user{i:04d}"
    out(f"dn: uid={u},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: {u}\ncn: {u}\nsn: {u}\n"
        f"userPassword: {ssha(f'pass{i:04d}')}\n\n")
PY
  /usr/sbin/slapadd -q -f "$dir/slapd.conf" -l "$dir/init.ldif"
  timeout $((SOAK_SECS + 600)) /usr/sbin/slapd -d 0 -f "$dir/slapd.conf" \
    -h "ldap://127.0.0.1:$LDAP_PORT/" </dev/null >"$dir/slapd.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    ldapwhoami -x -H "ldap://127.0.0.1:$LDAP_PORT/" \
      -D "uid=user0000,ou=people,dc=example,dc=org" -w pass0000 >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "slapd did not start:" >&2; cat "$dir/slapd.log" >&2; exit 1
}
log "slapd with $LDAP_USERS users"
start_slapd
echo "/usr/sbin/slapd -f $OUT/slapd/slapd.conf -h ldap://127.0.0.1:$LDAP_PORT/  ($LDAP_USERS users)" >>"$CMDS"

log "$LOCAL_USERS local users (argon2id, one CLI run each) and TOTP seeds"
for i in $(seq 0 $((LOCAL_USERS - 1))); do
  printf 'pass%04d\n' "$i" | "$RAMPART" --config "$L_CONF" user add "$(printf 'user%04d' "$i")" >/dev/null
done
echo "$RAMPART --config $L_CONF user add userNNNN   (x$LOCAL_USERS, password passNNNN)" >>"$CMDS"
run "$LOAD" seeds --totp-key "$TOTP_KEY" --users "$LOCAL_USERS" --user-format 'user{:04}' >"$OUT/local-seeds.csv"
run "$RAMPART" --config "$L_CONF" enroll import "$OUT/local-seeds.csv" >/dev/null
run "$LOAD" seeds --totp-key "$TOTP_KEY" --users "$LDAP_USERS" --user-format 'user{:04}' >"$OUT/ldap-seeds.csv"
run "$RAMPART" --config "$D_CONF" enroll import "$OUT/ldap-seeds.csv" >/dev/null

timeout $((SOAK_SECS + 300)) "$LOAD" sink --listen "127.0.0.1:$SINK" 2>"$OUT/sink.log" &
PIDS+=($!)
wait_http() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done; return 1; }
start() {  # CONF HTTP_PORT -> sets DAEMON to the daemon's pid (not its `timeout` wrapper's)
  timeout $((SOAK_SECS + 300)) "$RAMPART" serve --config "$1" 2>"${1%.toml}.log" &
  local wrapper=$!
  PIDS+=("$wrapper")
  echo "$RAMPART serve --config $1" >>"$CMDS"
  wait_http "$2" || { echo "rampart did not start ($1):" >&2; tail -20 "${1%.toml}.log" >&2; exit 1; }
  DAEMON=$(pgrep -P "$wrapper" -x rampart)
}
start "$L_CONF" "$L_HTTP"; L_PID=$DAEMON
start "$D_CONF" "$D_HTTP"; D_PID=$DAEMON
log "daemons: local $L_PID, ldap $D_PID"

metric() {  # HTTP_PORT SERIES-PREFIX -> sum of matching series
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v p="$2" 'index($0, p) == 1 {s += $NF} END {print s + 0}'
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

log "soak: $SOAK_SECS s, 64 senders, SIGHUP every $RELOAD_SECS s"
LOADS=()
load() {  # NAME ARGS... (rampart-load radius)
  run "$LOAD" radius --secret "$SECRET" -d "$SOAK_SECS" --warmup 0 --timeout-ms 5000 \
    --label "$1" "${@:2}" >"$OUT/$1.json" 2>"$OUT/$1.log" &
  LOADS+=($!)
}
load local-totp --server "127.0.0.1:$L_RADIUS" --users "$LOCAL_USERS" --user-format 'user{:04}' \
  --password-format 'pass{:04}' --totp-key "$TOTP_KEY" -c 16 --cpu-pid "local=$L_PID"
load local-spray --server "127.0.0.1:$L_RADIUS" --users 1000000 --user-format 'spray{:07}' \
  --password-format 'guess{:07}' --expect reject -c 8
load ldap-totp --server "127.0.0.1:$D_RADIUS" --users "$LDAP_USERS" --user-format 'user{:04}' \
  --password-format 'pass{:04}' --totp-key "$TOTP_KEY" -c 32 --cpu-pid "ldap=$D_PID"

# 8 senders of held pushes: radclient resends every second, three times, while the login is
# held (the retransmissions must join the held login, not start another push).
push_senders() {
  local end=$(( $(date +%s) + SOAK_SECS )) n=0
  while [ "$(date +%s)" -lt "$end" ]; do
    for s in $(seq 0 7); do
      user=$(printf 'user%04d' $(( (n * 8 + s) % PUSH_USERS )))
      printf 'User-Name = "%s", User-Password = "pass%s,push", Message-Authenticator = 0x00\n' \
        "$user" "${user#user}" |
        radclient -q -r 3 -t 1 "127.0.0.1:$L_RADIUS" auth "$SECRET" >/dev/null 2>&1 &
    done
    n=$((n + 1))
    sleep 1
  done
  wait
}
echo "radclient -r 3 -t 1 127.0.0.1:$L_RADIUS auth SECRET  (8 push logins a second, users user0000..)" >>"$CMDS"
push_senders &
PUSHER=$!

END=$(( $(date +%s) + SOAK_SECS ))
MAX_QUEUED=0 MAX_PENDING=0 RELOADS=0 NEXT_RELOAD=$(( $(date +%s) + RELOAD_SECS ))
: >"$OUT/samples.tsv"
while [ "$(date +%s)" -lt "$END" ]; do
  q=$(metric "$L_HTTP" rampart_password_checks_queued); p=$(metric "$L_HTTP" rampart_oob_pending)
  q=${q%.*}; p=${p%.*}
  [ "${q:-0}" -gt "$MAX_QUEUED" ] && MAX_QUEUED=$q
  [ "${p:-0}" -gt "$MAX_PENDING" ] && MAX_PENDING=$p
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date +%s)" "$(rss_kib "$L_PID")" "$(rss_kib "$D_PID")" "$q" "$p" >>"$OUT/samples.tsv"
  if [ "$(date +%s)" -ge "$NEXT_RELOAD" ]; then
    kill -HUP "$L_PID" "$D_PID"; RELOADS=$((RELOADS + 1)); NEXT_RELOAD=$(( $(date +%s) + RELOAD_SECS ))
  fi
  sleep 1
done
for p in "${LOADS[@]}"; do wait "$p" || true; done
wait "$PUSHER" || true
sleep "$HOLD_SECS"
echo "kill -HUP (both daemons, every $RELOAD_SECS s: $RELOADS times)" >>"$CMDS"

L_HWM=$(hwm_kib "$L_PID"); D_HWM=$(hwm_kib "$D_PID")
L_OK=$(metric "$L_HTTP" 'rampart_config_reloads_total{outcome="ok"}')
D_OK=$(metric "$D_HTTP" 'rampart_config_reloads_total{outcome="ok"}')
L_DUP=$(metric "$L_HTTP" rampart_radius_duplicates_total)
L_CPU=$(awk '{print ($14 + $15) / 100}' "/proc/$L_PID/stat")
D_CPU=$(awk '{print ($14 + $15) / 100}' "/proc/$D_PID/stat")
curl -fs "http://127.0.0.1:$L_HTTP/metrics" >"$OUT/local-metrics.txt"
curl -fs "http://127.0.0.1:$D_HTTP/metrics" >"$OUT/ldap-metrics.txt"

python3 - "$OUT" "$RSS_LIMIT_MIB" "$L_HWM" "$D_HWM" "$MAX_QUEUED" "$MAX_PENDING" "$RELOADS" \
  "$L_OK" "$D_OK" "$L_DUP" "$L_CPU" "$D_CPU" "$PUSH_USERS" <<'PY' | tee "$OUT/summary.md"
import json, sys
out, limit, l_hwm, d_hwm, max_q, max_p, reloads, l_ok, d_ok, dup, l_cpu, d_cpu, push_users = sys.argv[1:]
rows, failures = [], []
for name in ["local-totp", "local-spray", "ldap-totp"]:
    r = json.loads(open(f"{out}/{name}.json").read().strip().splitlines()[-1])
    rows.append(r)
    if r["timeout"] or r["bad_reply"] or r["unexpected"]:
        failures.append(f"{name}: {r['timeout']} timeouts, {r['bad_reply']} bad, {r['unexpected']} unexpected")
samples = [l.split("\t") for l in open(f"{out}/samples.tsv") if l.strip()]
l_rss = max(int(s[1]) for s in samples) / 1024
d_rss = max(int(s[2]) for s in samples) / 1024
print("| senders | logins | req/s | p50 ms | p99 ms | max ms | timeouts |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f'| {r["label"]} c={r["concurrency"]} | {r["completed"]} | {r["rps"]:.0f} | {r["p50_ms"]} | {r["p99_ms"]} | {r["max_ms"]} | {r["timeout"]} |')
print()
local_logins = rows[0]["completed"] + rows[1]["completed"]
ldap_logins = rows[2]["completed"]
print("| daemon | peak RSS MiB (VmHWM) | max sampled RSS MiB | CPU s | CPU ms per login |")
print("|---|---|---|---|---|")
print(f"| local + TOTP + push | {int(l_hwm)/1024:.1f} | {l_rss:.1f} | {l_cpu} | "
      f"{1000 * float(l_cpu) / max(local_logins, 1):.2f} (argon2id each; pushes not counted) |")
print(f"| LDAP + TOTP | {int(d_hwm)/1024:.1f} | {d_rss:.1f} | {d_cpu} | "
      f"{1000 * float(d_cpu) / max(ldap_logins, 1):.3f} |")
print()
print(f"password checks queued at most: {max_q}; held logins at most: {max_p} (of {push_users} push users); "
      f"retransmissions seen: {dup}; reloads sent {reloads}, taken {l_ok} (local) and {d_ok} (ldap)")
for hwm, name in [(l_hwm, "local"), (d_hwm, "ldap")]:
    if int(hwm) / 1024 >= float(limit):
        failures.append(f"{name} peak RSS {int(hwm)/1024:.1f} MiB >= {limit} MiB")
if int(float(max_p)) > int(push_users):
    failures.append(f"held logins {max_p} > {push_users}")
if float(l_ok) < float(reloads) or float(d_ok) < float(reloads):
    failures.append("a reload was not taken")
print()
print("PASS" if not failures else "FAIL: " + "; ".join(failures))
sys.exit(1 if failures else 0)
PY
log "commands in $CMDS"

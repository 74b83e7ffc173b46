#!/usr/bin/env bash
# Intake benchmark: HL7 v2 over MLLP into durable storage, measured side by side in one run
# with the same load generator (bench/mllp_load.c) on the same machine.
#
#   netwall SQLite      netwall intake, store in a SQLite file on the local disk
#                       (WAL, synchronous=FULL, group commit, ACK after the commit)
#   netwall PostgreSQL  netwall intake on a fresh PostgreSQL cluster (fsync=on,
#                       synchronous_commit=on)
#   delivery            the same two with [deliver] posting every message to the stand-in EMAR
#                       API (tests/integration/helpers/emar.py): time until all are delivered
#   Node.js stack       simple-hl7 MLLP server -> Redis SET NX (duplicates) -> BullMQ job on
#                       Redis (appendonly yes, appendfsync always) -> ACK; a BullMQ worker
#                       writes each job into SQLite (better-sqlite3): time until all are stored
#   parser              bench/parse.sh, when it exists
#
# Every server binds 127.0.0.1 on high ports, each load is bounded in count and time, the whole
# run in time (--budget), and every process started here is stopped by PID on exit (including
# Ctrl-C). The results go to stdout and, newest first, to bench/RESULTS.md below its marker.
#
# Usage: bench/intake.sh [--quick] [options]      (run as root; see --help)

set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
RESULTS_FILE="$SCRIPT_DIR/RESULTS.md"
RESULTS_MARKER='<!-- runs below: newest first -->'
NODE_DIR="$SCRIPT_DIR/node"
EMAR_PY="$REPO/tests/integration/helpers/emar.py"

usage() {
    cat <<EOF
Usage: $0 [options]

Sends the same HL7 v2 load (RDE^O11, about 1 KiB, 5 % retransmissions) to netwall intake on
SQLite and on PostgreSQL, with and without delivery to the stand-in EMAR API, and to a Node.js
stack (simple-hl7 + BullMQ on Redis + better-sqlite3); prints a Markdown table of medians and
adds it to bench/RESULTS.md (newest run first, below the marker).

Options:
  --quick            smoke run: 1 repetition, 1,000 / 4,000 messages (under a minute once
                     the Node.js packages are installed)
  --reps N           repetitions of every measurement (default 3; quick 1)
  --n1 N             messages per run with 1 sender (default 5000; quick 1000)
  --n16 N            messages per run with 16 senders (default 20000; quick 4000)
  --dup P            percent of retransmissions (default 5)
  --parts LIST       comma-separated subset of: sqlite,pg,deliver,node,parse (default all)
  --node-sync MODE   synchronous pragma of the Node worker's SQLite: NORMAL (default) or FULL
  --netwall FILE     netwall binary (default \$NETWALL or $REPO/build/netwall)
  --base-port N      first of the loopback ports used (default 23000; uses N .. N+9)
  --tmp-dir DIR      where the stores go; must be a disk, not tmpfs (default /var/tmp)
  --budget S         stop starting repetitions after S seconds (default 780)
  --no-record        print the table only; do not touch bench/RESULTS.md
  --keep-tmp         keep the temporary directory (configs, stores, logs) for inspection
  -h, --help         this text
EOF
}

# ---------------------------------------------------------------- options

QUICK=0
for a in "$@"; do [[ $a == --quick ]] && QUICK=1; done
if ((QUICK)); then
    REPS=1; N1=1000; N16=4000
else
    REPS=3; N1=5000; N16=20000
fi
DUP=5
PARTS_SEL="sqlite,pg,deliver,node,parse"
NODE_SYNC=NORMAL
NETWALL=${NETWALL:-$REPO/build/netwall}
BASE_PORT=23000
TMP_BASE=/var/tmp
BUDGET=780
RECORD=1
KEEP_TMP=0

need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "intake.sh: $1 needs a value" >&2; exit 2; }; }
while (($#)); do
    case $1 in
        --quick) ;;
        --reps) need_arg "$@"; REPS=$2; shift ;;
        --n1) need_arg "$@"; N1=$2; shift ;;
        --n16) need_arg "$@"; N16=$2; shift ;;
        --dup) need_arg "$@"; DUP=$2; shift ;;
        --parts) need_arg "$@"; PARTS_SEL=$2; shift ;;
        --node-sync) need_arg "$@"; NODE_SYNC=${2^^}; shift ;;
        --netwall) need_arg "$@"; NETWALL=$2; shift ;;
        --base-port) need_arg "$@"; BASE_PORT=$2; shift ;;
        --tmp-dir) need_arg "$@"; TMP_BASE=$2; shift ;;
        --budget) need_arg "$@"; BUDGET=$2; shift ;;
        --no-record) RECORD=0 ;;
        --keep-tmp) KEEP_TMP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "intake.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

for v in REPS N1 N16 BASE_PORT BUDGET; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "intake.sh: $v must be a positive integer" >&2; exit 2; }
done
[[ $DUP =~ ^[0-9]+$ && $DUP -le 50 ]] || { echo "intake.sh: --dup wants 0..50" >&2; exit 2; }
[[ $NODE_SYNC == NORMAL || $NODE_SYNC == FULL ]] || { echo "intake.sh: --node-sync wants NORMAL or FULL" >&2; exit 2; }
((BASE_PORT >= 1024 && BASE_PORT + 10 <= 65535)) || { echo "intake.sh: --base-port out of range" >&2; exit 2; }

ALL_PARTS=(sqlite pg deliver node parse)
PARTS=()
IFS=, read -r -a _sel <<<"$PARTS_SEL"
for s in "${_sel[@]}"; do
    [[ " ${ALL_PARTS[*]} " == *" $s "* ]] || { echo "intake.sh: unknown part '$s' in --parts" >&2; exit 2; }
done
for p in "${ALL_PARTS[@]}"; do
    for s in "${_sel[@]}"; do [[ $s == "$p" ]] && { PARTS+=("$p"); break; }; done
done
((${#PARTS[@]})) || { echo "intake.sh: --parts selects nothing" >&2; exit 2; }
has_part() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
# delivery runs use the stores that are selected (both when neither is)
DELIVER_STORES=()
if has_part deliver; then
    has_part sqlite && DELIVER_STORES+=(sqlite)
    has_part pg && DELIVER_STORES+=(pg)
    ((${#DELIVER_STORES[@]})) || DELIVER_STORES=(sqlite pg)
fi
need_pg() { has_part pg || [[ " ${DELIVER_STORES[*]} " == *" pg "* ]]; }
need_netwall() { has_part sqlite || has_part pg || has_part deliver; }

# ---------------------------------------------------------------- ports

P_INTAKE=$((BASE_PORT + 0)); P_ADMIN=$((BASE_PORT + 1)); P_PG=$((BASE_PORT + 2))
P_REDIS=$((BASE_PORT + 3)); P_NODE=$((BASE_PORT + 4)); P_EMAR=$((BASE_PORT + 5))

# ---------------------------------------------------------------- helpers

log() { printf '[intake %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'intake.sh: error: %s\n' "$*" >&2; exit 1; }

TMP=""
PIDS=()                  # every process started in the background, in start order
declare -A PID_START     # PID -> its start time, to recognise it at cleanup
declare -A RES           # "figure|system" -> space-separated values, one per repetition
NOTES=()

CLEANUP_WAIT=3
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# wait_listen PORT WHAT PID LOGFILE [SECONDS]
wait_listen() {
    local port=$1 what=$2 pid=$3 logf=$4 deadline=$((SECONDS + ${5:-20}))
    until listening "$port"; do
        alive "$pid" || die "$what exited before listening on 127.0.0.1:$port: $(tail -n 15 "$logf" 2>/dev/null)"
        ((SECONDS < deadline)) || die "$what is not listening on 127.0.0.1:$port after ${5:-20} s: $(tail -n 15 "$logf" 2>/dev/null)"
        sleep 0.05
    done
}

# wait_log FILE REGEX WHAT PID [SECONDS]
wait_log() {
    local f=$1 re=$2 what=$3 pid=$4 deadline=$((SECONDS + ${5:-20}))
    until grep -qE "$re" "$f" 2>/dev/null; do
        alive "$pid" || die "$what exited before it was ready: $(tail -n 15 "$f" 2>/dev/null)"
        ((SECONDS < deadline)) || die "$what not ready after ${5:-20} s: $(tail -n 15 "$f" 2>/dev/null)"
        sleep 0.05
    done
}

is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }

add_res() { RES["$1|$2"]="${RES["$1|$2"]:-}${RES["$1|$2"]:+ }$3"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# kv KEY LINE -> the value of KEY=... in a key=value line
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

cpu_ticks() {   # user+system CPU ticks of the given processes
    local p t=0 v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# ---------------------------------------------------------------- preflight

((EUID == 0)) || die "run as root (it installs packages and runs PostgreSQL as the postgres user)"

ensure_packages() {
    local -A need=([cc]=gcc [ss]=iproute2 [timeout]=coreutils [setpriv]=util-linux [ps]=procps
        [/usr/bin/python3]=python3)
    need_netwall && need+=([curl]=curl)
    need_pg && need+=([psql]=postgresql-client)
    has_part node && need+=([redis-server]=redis-server [node]=nodejs [npm]=npm [make]=make [g++]=g++)
    local c pkgs=() added_policy=0
    for c in "${!need[@]}"; do
        command -v "$c" >/dev/null 2>&1 || pkgs+=("${need[$c]}")
    done
    if need_pg && ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        pkgs+=(postgresql)
    fi
    ((${#pkgs[@]})) || return 0
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    log "installing missing packages: ${pkgs[*]}"
    # keep the packages' own services (PostgreSQL on 5432, Redis on 6379) from being started
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
    local rc=$?
    ((added_policy)) && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get install ${pkgs[*]} failed"
}
ensure_packages

PY=/usr/bin/python3
PG_BIN=""
if need_pg; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -x $PG_BIN/postgres && -x $PG_BIN/initdb ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
    id postgres >/dev/null 2>&1 || die "there is no postgres user (the postgresql package creates it)"
fi
if need_netwall; then
    [[ -x $NETWALL ]] || die "netwall binary not found at $NETWALL (build it with make, or pass --netwall FILE)"
fi
has_part deliver && { [[ -f $EMAR_PY ]] || die "the stand-in EMAR API $EMAR_PY is missing"; }

for port in $P_INTAKE $P_ADMIN $P_PG $P_REDIS $P_NODE $P_EMAR; do
    listening "$port" && die "127.0.0.1:$port is already in use (choose another --base-port)"
done

mkdir -p "$TMP_BASE" || die "cannot create $TMP_BASE"
TMP=$(mktemp -d "$TMP_BASE/netwall-intake-bench.XXXXXX") || die "mktemp in $TMP_BASE failed"
chmod 755 "$TMP"
mkdir -p "$TMP/log" "$TMP/bin"
FS_TYPE=$(findmnt -n -o FSTYPE -T "$TMP" 2>/dev/null || stat -f -c %T "$TMP")
case $FS_TYPE in
    tmpfs|ramfs) die "$TMP_BASE is $FS_TYPE: the stores must be on a disk (pass --tmp-dir DIR)" ;;
esac
FS_DEV=$(df -P "$TMP" | awk 'NR == 2 { print $1 }')

# The binary under test, frozen for the whole run (the tree may be rebuilt meanwhile), and what it is.
NETWALL_DESC=""
if need_netwall; then
    cp "$NETWALL" "$TMP/bin/netwall" || die "cannot copy $NETWALL"
    NETWALL_DESC="$("$TMP/bin/netwall" version 2>/dev/null | head -n 1)"
    NETWALL_DESC="${NETWALL_DESC:-netwall} (binary sha256 $(sha256sum "$TMP/bin/netwall" | cut -c1-12)"
    NETWALL_DESC+=", tree at commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    [[ -n $(git -C "$REPO" status --porcelain -- src 2>/dev/null) ]] && NETWALL_DESC+=" + uncommitted changes in src/"
    NETWALL_DESC+=" at start)"
    NETWALL=$TMP/bin/netwall
fi
CLK_TCK=$(getconf CLK_TCK)

log "building the load generator"
cc -O2 -pthread -Wall -o "$TMP/bin/mllp_load" "$SCRIPT_DIR/mllp_load.c" 2>"$TMP/log/cc.log" ||
    die "cc -O2 -pthread bench/mllp_load.c failed: $(cat "$TMP/log/cc.log")"
LOADGEN=$TMP/bin/mllp_load

# The Node.js stack: installed from npm into bench/node/node_modules (package-lock.json pins it).
NODE_OK=0
NODE_RUN=1
NODE_DESC=""
node_check() {
    (cd "$NODE_DIR" && node -e "require('simple-hl7'); require('bullmq'); require('ioredis');
        new (require('better-sqlite3'))(':memory:').close()") >"$TMP/log/node-check.log" 2>&1
}
if has_part node; then
    if ! node_check; then
        log "installing the Node.js stack from npm into bench/node (npm ci; a few minutes: better-sqlite3 compiles)"
        nodedir_env=()
        [[ -f /usr/include/node/node.h ]] && nodedir_env=(npm_config_nodedir=/usr)
        if ! (cd "$NODE_DIR" && env "${nodedir_env[@]}" timeout 900 npm ci --no-audit --no-fund) \
            >"$TMP/log/npm-ci.log" 2>&1; then
            NOTES+=("Node.js stack not measured: \`npm ci\` in bench/node failed: $(grep -iE 'err' "$TMP/log/npm-ci.log" | head -n 3 | tr '\n' ' ' | cut -c1-400)")
        fi
    fi
    if node_check; then
        NODE_OK=1
        NODE_DESC=$(cd "$NODE_DIR" && node -e "
            const v = (p) => require(p + '/package.json').version;
            const D = require('better-sqlite3'); const d = new D(':memory:');
            const s = d.prepare('select sqlite_version() v').get().v; d.close();
            console.log('Node ' + process.version + ', simple-hl7 ' + v('simple-hl7') + ', bullmq ' + v('bullmq') +
                ', ioredis ' + v('ioredis') + ', better-sqlite3 ' + v('better-sqlite3') + ' (SQLite ' + s + ')')")
    else
        NOTES+=("Node.js stack not measured: the packages do not load: $(tail -n 3 "$TMP/log/node-check.log" | tr '\n' ' ' | cut -c1-400)")
    fi
fi

# What one durable commit costs on this disk: 4 KiB pwrite + fdatasync, 200 times.
cat >"$TMP/fsync.py" <<'PYEOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
buf, t = b"x" * 4096, []
for i in range(200):
    a = time.perf_counter()
    os.pwrite(fd, buf, i * 4096)
    os.fdatasync(fd)
    t.append((time.perf_counter() - a) * 1000)
t.sort()
print("%.3f %.3f" % (t[len(t) // 2], t[int(len(t) * 0.99) - 1]))
PYEOF
read -r FSYNC_P50 FSYNC_P99 < <("$PY" "$TMP/fsync.py" "$TMP/fsync.probe" 2>/dev/null || echo "? ?")
rm -f "$TMP/fsync.probe"

# Counts by state of a netwall store: "received delivered failed dead total"
cat >"$TMP/count.py" <<'PYEOF'
import json, sys
d = json.load(sys.stdin)
s = d.get("states", {})
print(s.get("received", 0), s.get("delivered", 0), s.get("failed", 0), s.get("dead", 0), d.get("total", 0))
PYEOF
# The stand-in EMAR API with TCP_NODELAY on its sockets (see the note in the report).
cat >"$TMP/emar_nodelay.py" <<'PYEOF'
import runpy, socketserver, sys
socketserver.StreamRequestHandler.disable_nagle_algorithm = True
path = sys.argv[1]
sys.argv = [path] + sys.argv[2:]
runpy.run_path(path, run_name="__main__")
PYEOF
# Deliveries the stand-in logged: "lines distinct_ids last_ts"
cat >"$TMP/emar_log.py" <<'PYEOF'
import json, sys
n, ids, last = 0, set(), 0.0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            if line.strip():
                e = json.loads(line)
                n += 1
                ids.add(e.get("id"))
                last = max(last, float(e.get("ts") or 0))
except FileNotFoundError:
    pass
print(n, len(ids), "%.3f" % last)
PYEOF
# Rows the Node worker stored: "count max_stored_ms"
cat >"$TMP/node_count.py" <<'PYEOF'
import sqlite3, sys
try:
    c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
    n, last = c.execute("select count(*), coalesce(max(stored_ms), 0) from messages").fetchone()
    print(n, last)
except sqlite3.Error:
    print(0, 0)
PYEOF

# ---------------------------------------------------------------- the load

# load NAME PORT CONNS N : runs mllp_load; sets L_MSGS L_SECS L_RATE L_P50 L_P99 L_ERR L_UNIQUE,
# L_T0 (epoch ms just before it started) and L_OUT / L_ERRTEXT. Returns mllp_load's status.
L_OUT=""; L_ERRTEXT=""
load() {
    local name=$1 port=$2 conns=$3 n=$4 pid rc
    L_T0=$(now_ms)
    timeout 300 "$LOADGEN" -h 127.0.0.1 -p "$port" -c "$conns" -n "$n" -d "$DUP" -t 30 \
        >"$TMP/log/$name.load" 2>"$TMP/log/$name.load.err" &
    pid=$!
    track "$pid"
    wait "$pid"
    rc=$?
    untrack "$pid"
    L_OUT=$(tail -n 1 "$TMP/log/$name.load")
    L_ERRTEXT=$(head -n 20 "$TMP/log/$name.load.err")
    L_MSGS=$(kv msgs "$L_OUT"); L_SECS=$(kv secs "$L_OUT"); L_RATE=$(kv rate "$L_OUT")
    L_P50=$(kv p50_ms "$L_OUT"); L_P99=$(kv p99_ms "$L_OUT"); L_ERR=$(kv errors "$L_OUT")
    L_UNIQUE=$(kv unique "$L_OUT")
    ((rc == 124)) && L_ERRTEXT="mllp_load did not finish within 300 s (killed). $L_ERRTEXT"
    return "$rc"
}

# ---------------------------------------------------------------- PostgreSQL

PG_PID=""
PG_VERSION=""
start_pg() {
    local d=$TMP/pg
    mkdir -p "$d" && chown postgres:postgres "$d"
    log "PostgreSQL: initdb and start on 127.0.0.1:$P_PG (fsync=on, synchronous_commit=on)"
    (cd "$d" && setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/initdb" -D "$d/data" \
        -U postgres -A trust -E UTF8 --locale=C --no-sync) >"$TMP/log/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -n 10 "$TMP/log/initdb.log")"
    cd "$d" || die "cd $d"
    spawn postgres setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" \
        -D "$d/data" -p "$P_PG" -k "$d" -c listen_addresses=127.0.0.1 -c fsync=on \
        -c synchronous_commit=on -c full_page_writes=on -c max_connections=100
    PG_PID=$LAST_PID
    cd "$REPO" || die "cd $REPO"
    local deadline=$((SECONDS + 30))
    until [[ $(psql -h 127.0.0.1 -p "$P_PG" -U postgres -Atc 'select 1' 2>/dev/null) == 1 ]]; do
        alive "$PG_PID" || die "postgres exited: $(tail -n 15 "$TMP/log/postgres.log")"
        ((SECONDS < deadline)) || die "postgres does not answer after 30 s: $(tail -n 15 "$TMP/log/postgres.log")"
        sleep 0.2
    done
    PG_VERSION=$(psql -h 127.0.0.1 -p "$P_PG" -U postgres -Atc 'show server_version' 2>/dev/null)
    PG_SETTINGS=$(psql -h 127.0.0.1 -p "$P_PG" -U postgres -Atc \
        "select string_agg(name || '=' || current_setting(name), ', ' order by name) from pg_settings
         where name in ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', 'shared_buffers', 'commit_delay')" 2>/dev/null)
}

pg_sql() { psql -h 127.0.0.1 -p "$P_PG" -U postgres -Atq -c "$1" >>"$TMP/log/psql.log" 2>&1; }

# ---------------------------------------------------------------- the stand-in EMAR API

EMAR_PID=""
start_emar() {
    EMAR_LOG=$TMP/emar-$1.jsonl
    spawn "emar-$1" "$PY" "$TMP/emar_nodelay.py" "$EMAR_PY" --port "$P_EMAR" --host 127.0.0.1 --log "$EMAR_LOG"
    EMAR_PID=$LAST_PID
    wait_log "$TMP/log/emar-$1.log" '^ready port=' "the stand-in EMAR API" "$EMAR_PID"
}

# ---------------------------------------------------------------- netwall intake

INTAKE_PID=""
INTAKE_LOG=""
start_intake() {   # start_intake NAME STORE DELIVER(0|1)
    local name=$1 store=$2 deliver=$3 ini=$TMP/$1.ini
    {
        echo "[intake]"
        echo "listen = 127.0.0.1:$P_INTAKE"
        echo "store = $store"
        echo "admin = 127.0.0.1:$P_ADMIN"
        echo "log_level = warn"
        if ((deliver)); then
            echo
            echo "[deliver]"
            echo "url = http://127.0.0.1:$P_EMAR/hl7/messages"
        fi
    } >"$ini"
    INTAKE_LOG=$TMP/log/$name.log
    spawn "$name" "$NETWALL" intake -c "$ini"
    INTAKE_PID=$LAST_PID
    wait_listen "$P_INTAKE" "netwall intake ($name)" "$INTAKE_PID" "$INTAKE_LOG"
    wait_listen "$P_ADMIN" "netwall intake admin ($name)" "$INTAKE_PID" "$INTAKE_LOG"
}

metric() { curl -s --max-time 5 "http://127.0.0.1:$P_ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'; }

store_counts() { "$NETWALL" messages --store "$1" count --json 2>>"$TMP/log/messages.log" | "$PY" "$TMP/count.py" 2>/dev/null; }

# misbehaviour NAME TEXT : netwall did not do its job under load; show everything and stop
misbehaviour() {
    local name=$1; shift
    {
        echo "intake.sh: netwall intake misbehaved in run '$name': $*"
        echo "--- load generator: $L_OUT"
        [[ -n ${L_ERRTEXT:-} ]] && echo "$L_ERRTEXT"
        if [[ -n $INTAKE_PID ]]; then
            if alive "$INTAKE_PID"; then echo "--- intake PID $INTAKE_PID is still running"
            else wait "$INTAKE_PID" 2>/dev/null; echo "--- intake PID $INTAKE_PID has exited with status $?"; fi
        fi
        echo "--- intake log ($INTAKE_LOG), last 40 lines:"
        tail -n 40 "$INTAKE_LOG" 2>/dev/null
        echo "--- metrics:"
        curl -s --max-time 3 "http://127.0.0.1:$P_ADMIN/metrics" 2>/dev/null | grep -E '^netwall_intake_' | grep -vE '_bucket'
    } >&2
    KEEP_TMP=1
    exit 1
}

RUN_SEQ=0

# netwall_run STORE_KIND(sqlite|pg) CONNS N DELIVER(0|1)
netwall_run() {
    local kind=$1 conns=$2 n=$3 deliver=$4 store db="" name sys counts st
    RUN_SEQ=$((RUN_SEQ + 1))
    sys="nw_${kind}_$conns"
    name="nw-$kind-$conns$([[ $deliver == 1 ]] && echo -deliver)-$RUN_SEQ"
    if [[ $kind == sqlite ]]; then
        store=$TMP/$name.db
    else
        db="bench$RUN_SEQ"
        pg_sql "CREATE DATABASE $db" || die "CREATE DATABASE $db failed: $(tail -n 3 "$TMP/log/psql.log")"
        store="postgresql://postgres@127.0.0.1:$P_PG/$db"
    fi
    ((deliver)) && start_emar "$name"
    start_intake "$name" "$store" "$deliver"
    local intake_t0 emar_t0 pg_t0=0
    intake_t0=$(cpu_ticks "$INTAKE_PID")
    ((deliver)) && emar_t0=$(cpu_ticks "$EMAR_PID")
    [[ $kind == pg ]] && pg_t0=$(cpu_ticks $(descendants "$PG_PID"))

    if ! load "$name" "$P_INTAKE" "$conns" "$n"; then
        misbehaviour "$name" "the load generator reported errors (exit status not 0)"
    fi
    alive "$INTAKE_PID" || misbehaviour "$name" "the intake process is gone after the load"
    log "  $name: ${L_RATE} msgs/s, p50 ${L_P50} ms, p99 ${L_P99} ms ($L_MSGS msgs in ${L_SECS} s)"

    if ((deliver)); then
        # until every accepted message is delivered (bounded: a stall is a finding)
        local limit=$((SECONDS + 180)) r=0 dl=0 fl=0 dd=0 tot=0 lines ids last e2e
        while :; do
            read -r r dl fl dd tot <<<"$(store_counts "$store")"
            [[ ${r:-x} == 0 && ${fl:-x} == 0 && ${dl:-0} -ge $L_UNIQUE ]] && break
            ((${dd:-0} > 0)) && misbehaviour "$name" "$dd message(s) dead-lettered while delivering to the stand-in"
            alive "$INTAKE_PID" || misbehaviour "$name" "the intake process exited while delivering"
            ((SECONDS < limit)) || misbehaviour "$name" "delivery stalled: after 180 s received=$r delivered=$dl failed=$fl dead=$dd of $L_UNIQUE"
            sleep 0.2
        done
        read -r lines ids last <<<"$("$PY" "$TMP/emar_log.py" "$EMAR_LOG")"
        ((ids == L_UNIQUE)) || misbehaviour "$name" "the stand-in logged $ids distinct messages, $L_UNIQUE were accepted"
        ((lines > ids)) && NOTES+=("$name: the stand-in received $((lines - ids)) message(s) twice (at-least-once delivery)")
        e2e=$(awk -v n="$L_UNIQUE" -v t0="$L_T0" -v t1="$last" 'BEGIN { s = t1 - t0 / 1000; printf "%.0f", (s > 0 ? n / s : 0) }')
        local secs
        secs=$(awk -v t0="$L_T0" -v t1="$last" 'BEGIN { printf "%.2f", t1 - t0 / 1000 }')
        add_res e2e "$sys" "$e2e"
        add_res e2e_ack "$sys" "$L_RATE"
        add_res e2e_secs "$sys" "$secs"
        local ec ic
        ec=$(( $(cpu_ticks "$EMAR_PID") - emar_t0 ))
        ic=$(( $(cpu_ticks "$INTAKE_PID") - intake_t0 ))
        add_res emar_busy "$sys" "$(awk -v c="$ec" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.2f", c / hz / s }')"
        add_res intake_cpu_deliver "$sys" "$(awk -v c="$ic" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.2f", c / hz / s }')"
        if [[ $kind == pg ]]; then
            local pc=$(( $(cpu_ticks $(descendants "$PG_PID")) - pg_t0 ))
            add_res pg_cpu_deliver "$sys" "$(awk -v c="$pc" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.2f", c / hz / s }')"
        fi
        log "  $name: all $L_UNIQUE delivered ${secs} s after the first message: $e2e msgs/s (ACK rate in this run $L_RATE)"
    else
        read -r r dl fl dd tot <<<"$(store_counts "$store")"
        [[ ${tot:-x} == "$L_UNIQUE" ]] ||
            misbehaviour "$name" "the store holds ${tot:-?} messages; $L_UNIQUE distinct ones were acknowledged"
        add_res rate "$sys" "$L_RATE"
        add_res p50 "$sys" "$L_P50"
        add_res p99 "$sys" "$L_P99"
        local tx bmax
        tx=$(metric netwall_intake_store_transactions_total)
        bmax=$(metric netwall_intake_store_batch_max)
        if is_num "${tx:-}" && ((${tx%.*} > 0)); then
            add_res batch "$sys" "$(awk -v n="$L_MSGS" -v t="$tx" 'BEGIN { printf "%.1f", n / t }')"
            add_res batch_max "$sys" "${bmax:-0}"
        fi
    fi

    stop_proc "$INTAKE_PID" TERM 20
    [[ $STOP_RC == 0 ]] || NOTES+=("$name: netwall intake exited with status $STOP_RC on SIGTERM after the load")
    if [[ -s $INTAKE_LOG ]]; then
        NOTES+=("$name: netwall intake (log_level warn) logged $(wc -l <"$INTAKE_LOG") line(s); first: $(head -n 1 "$INTAKE_LOG" | cut -c1-200)")
    fi
    INTAKE_PID=""
    if ((deliver)); then stop_proc "$EMAR_PID" TERM 5; EMAR_PID=""; fi
    if [[ -n $db ]]; then pg_sql "DROP DATABASE $db"; else rm -f "$store" "$store-wal" "$store-shm"; fi
}

# ---------------------------------------------------------------- the Node.js stack

# node_run CONNS N
node_run() {
    local conns=$1 n=$2 sys name d redis_pid server_pid worker_pid
    RUN_SEQ=$((RUN_SEQ + 1))
    sys="node_$conns"
    name="node-$conns-$RUN_SEQ"
    d=$TMP/$name
    mkdir -p "$d/redis"
    spawn "$name-redis" redis-server --bind 127.0.0.1 --port "$P_REDIS" --protected-mode yes \
        --daemonize no --dir "$d/redis" --appendonly yes --appendfsync always --save "" --loglevel warning
    redis_pid=$LAST_PID
    wait_listen "$P_REDIS" "redis-server" "$redis_pid" "$TMP/log/$name-redis.log"
    spawn "$name-server" node "$NODE_DIR/server.js" --port "$P_NODE" --redis-port "$P_REDIS"
    server_pid=$LAST_PID
    spawn "$name-worker" node "$NODE_DIR/worker.js" --redis-port "$P_REDIS" --db "$d/messages.db" \
        --concurrency 16 --sync "$NODE_SYNC"
    worker_pid=$LAST_PID
    wait_log "$TMP/log/$name-server.log" '^ready port=' "node server.js" "$server_pid"
    wait_log "$TMP/log/$name-worker.log" '^ready' "node worker.js" "$worker_pid"
    wait_listen "$P_NODE" "node server.js" "$server_pid" "$TMP/log/$name-server.log"

    local ok=1
    if ! load "$name" "$P_NODE" "$conns" "$n"; then
        NOTES+=("$name: the load generator reported errors against the Node.js stack: $L_OUT $(head -n 2 <<<"$L_ERRTEXT" | tr '\n' ' '); its remaining runs skipped")
        ok=0
        NODE_RUN=0
    fi
    if ((ok)); then
        log "  $name: ${L_RATE} msgs/s, p50 ${L_P50} ms, p99 ${L_P99} ms ($L_MSGS msgs in ${L_SECS} s)"
        add_res rate "$sys" "$L_RATE"
        add_res p50 "$sys" "$L_P50"
        add_res p99 "$sys" "$L_P99"
        add_res e2e_ack "$sys" "$L_RATE"
        # until the worker has stored every accepted message (bounded)
        local wait_s cnt=0 last=0 secs
        wait_s=$(awk -v s="$L_SECS" 'BEGIN { w = 10 * s; if (w < 30) w = 30; if (w > 150) w = 150; printf "%d", w }')
        local limit=$((SECONDS + wait_s))
        while :; do
            read -r cnt last <<<"$("$PY" "$TMP/node_count.py" "$d/messages.db")"
            ((cnt >= L_UNIQUE)) && break
            alive "$worker_pid" || { NOTES+=("$name: worker.js exited: $(tail -n 3 "$TMP/log/$name-worker.log" | tr '\n' ' ')"); break; }
            if ((SECONDS >= limit)); then
                NOTES+=("$name: the worker had stored $cnt of $L_UNIQUE messages after $wait_s s; end-to-end figure left out")
                break
            fi
            sleep 0.2
        done
        if ((cnt >= L_UNIQUE)); then
            secs=$(awk -v t0="$L_T0" -v t1="$last" 'BEGIN { printf "%.2f", (t1 - t0) / 1000 }')
            add_res e2e "$sys" "$(awk -v n="$L_UNIQUE" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')"
            add_res e2e_secs "$sys" "$secs"
            ((cnt > L_UNIQUE)) && NOTES+=("$name: the worker stored $cnt rows for $L_UNIQUE distinct messages")
            log "  $name: all $L_UNIQUE stored by the worker ${secs} s after the first message"
        fi
    fi
    local f
    for f in server worker; do
        grep -qE 'enqueue_failed|job_failed|worker_error' "$TMP/log/$name-$f.log" 2>/dev/null &&
            NOTES+=("$name: $f.js logged errors; first: $(grep -m1 -E 'enqueue_failed|job_failed|worker_error' "$TMP/log/$name-$f.log" | cut -c1-200)")
    done
    stop_proc "$server_pid" TERM 10
    stop_proc "$worker_pid" TERM 10
    stop_proc "$redis_pid" TERM 10
    rm -rf "$d"
}

# ---------------------------------------------------------------- run

RUN_DATE=$(date -u)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temporary directory $TMP ($FS_TYPE on $FS_DEV); parts: ${PARTS[*]}; reps $REPS; $N1 msgs with 1 sender, $N16 with 16; $DUP % retransmissions"

PG_SETTINGS=""
need_pg && start_pg

REPS_DONE=0
T_BEGIN=$SECONDS
for rep in $(seq 1 "$REPS"); do
    if ((rep > 1)); then
        per_rep=$(((SECONDS - T_BEGIN) / (rep - 1)))
        if ((SECONDS + per_rep > BUDGET)); then
            NOTES+=("stopped after $REPS_DONE of $REPS repetitions: another would pass the time budget of $BUDGET s (--budget)")
            break
        fi
    fi
    log "repetition $rep/$REPS"
    if has_part sqlite; then netwall_run sqlite 1 "$N1" 0; netwall_run sqlite 16 "$N16" 0; fi
    if has_part pg; then netwall_run pg 1 "$N1" 0; netwall_run pg 16 "$N16" 0; fi
    if ((NODE_OK && NODE_RUN)); then node_run 1 "$N1"; ((NODE_RUN)) && node_run 16 "$N16"; fi
    for kind in "${DELIVER_STORES[@]}"; do
        netwall_run "$kind" 1 "$N1" 1
        netwall_run "$kind" 16 "$N16" 1
    done
    REPS_DONE=$rep
done

PARSE_LINE=""
if has_part parse; then
    if [[ -x $SCRIPT_DIR/parse.sh || -f $SCRIPT_DIR/parse.sh ]]; then
        log "parser throughput: bench/parse.sh"
        if PARSE_LINE=$(timeout 180 sh "$SCRIPT_DIR/parse.sh" 2>"$TMP/log/parse.err" | tail -n 1) && [[ -n $PARSE_LINE ]]; then
            log "  $PARSE_LINE"
        else
            PARSE_LINE=""
            NOTES+=("bench/parse.sh failed: $(tail -n 3 "$TMP/log/parse.err" | tr '\n' ' ' | cut -c1-300)")
        fi
    else
        NOTES+=("bench/parse.sh does not exist yet: no parser figure")
    fi
fi

if [[ -n $PG_PID ]]; then
    stop_proc "$PG_PID" INT 30
    PG_PID=""
fi

# ---------------------------------------------------------------- report

declare -A MED
for key in "${!RES[@]}"; do
    MED[$key]=$(median ${RES[$key]})
done
val() { echo "${MED["$1|$2"]:-}"; }
fmt() { [[ -n $2 ]] && awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }' || echo "—"; }
ratio() {   # ratio A B -> A / B formatted "1.23x", or "—"
    [[ -n $1 && -n $2 ]] || { echo "—"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "—"; else printf "%.1fx", a / b }'
}
verdict() {   # verdict VALUE WANT -> met / missed / —
    [[ -n $1 ]] || { echo "not measured"; return; }
    awk -v v="$1" -v w="$2" 'BEGIN { print (v >= w ? "met" : "missed") }'
}

SYSTEMS=(nw_sqlite_1 nw_sqlite_16 nw_pg_1 nw_pg_16 node_1 node_16)
declare -A SYS_LABEL=([nw_sqlite_1]="netwall, SQLite" [nw_sqlite_16]="netwall, SQLite"
    [nw_pg_1]="netwall, PostgreSQL" [nw_pg_16]="netwall, PostgreSQL"
    [node_1]="Node.js stack" [node_16]="Node.js stack")

REPORT=$TMP/report.md
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
{
    cores=$(nproc)
    cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    os_name=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
    mode="full run"; ((QUICK)) && mode="quick smoke run (--quick; small loads, not for comparison)"

    echo "## $RUN_DATE — intake benchmark (bench/intake.sh), $mode"
    echo
    echo "- Machine: $cores CPUs ($cpu_model), $mem_total RAM, kernel $(uname -r), $os_name." \
        "Stores on $FS_TYPE ($FS_DEV); a 4 KiB write + fdatasync there takes ${FSYNC_P50} ms (median; p99 ${FSYNC_P99} ms)."
    vers=()
    [[ -n $NETWALL_DESC ]] && vers+=("$NETWALL_DESC")
    command -v sqlite3 >/dev/null 2>&1 && vers+=("SQLite $(sqlite3 --version | cut -d' ' -f1) (system library)")
    [[ -n $PG_VERSION ]] && vers+=("PostgreSQL $PG_VERSION")
    ((NODE_OK)) && vers+=("$NODE_DESC" "Redis $(redis-server --version | grep -o 'v=[^ ]*' | cut -c3-)")
    echo "- Versions: $(printf '%s; ' "${vers[@]}" | sed 's/; $//')."
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END. Other work on the machine during the run skews the figures; compare within a run."
    echo "- Load: bench/mllp_load.c, RDE^O11 orders of about 1 KiB (MSH, PID, PV1, ORC, RXE, RXR, TQ1, NTE)," \
        "$DUP % of them retransmissions of an earlier message of the same connection (same MSH-10, answered with the original ACK);" \
        "one message in flight per connection (MLLP), every ACK checked (MSA-1 AA, MSA-2 = MSH-10)." \
        "$N1 messages per run with 1 sender, $N16 with 16; median of $REPS_DONE run(s); each run on a fresh store."
    if need_netwall; then
        nw="- netwall: SQLite in WAL mode with synchronous=FULL, group commit, ACK after the commit."
        need_pg && nw+=" PostgreSQL: a fresh cluster${PG_SETTINGS:+ ($PG_SETTINGS)}, one database per run."
        if has_part deliver; then
            nw+=" Delivery: [deliver] defaults (8 concurrent POSTs) to the stand-in EMAR API, tests/integration/helpers/emar.py, one Python process,"
            nw+=" run with TCP_NODELAY on its sockets: as it is, every keep-alive answer waits about 40 ms (headers and body go out in two writes:"
            nw+=" Nagle against delayed ACK), which caps delivery near 180 msgs/s."
        fi
        echo "$nw"
    fi
    if ((NODE_OK)); then
        echo "- Node.js stack (bench/node): simple-hl7 MLLP server; per message a Redis SET NX on (MSH-3, MSH-4, MSH-10) for duplicates," \
            "a BullMQ Queue.add of the raw message, then simple-hl7's ACK (AA). Redis: appendonly yes, appendfsync always (fsync before the reply)." \
            "A BullMQ worker (concurrency 16, running during the load) writes each job into SQLite with better-sqlite3 (WAL, synchronous=$NODE_SYNC, one INSERT per job)."
    fi
    echo "- End to end: netwall = every accepted message delivered (HTTP 200) to the stand-in; Node.js = every accepted message stored in SQLite by the worker;" \
        "distinct messages / seconds from the first message sent to the last delivered or stored. The netwall end-to-end runs are separate runs with [deliver] on," \
        "so their ACK rate is shown next to them; the Node worker always runs."
    echo
    echo "| system | senders | ACK msgs/s | p50 ms | p99 ms | end-to-end msgs/s | ACK msgs/s in that run |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for s in "${SYSTEMS[@]}"; do
        [[ -n $(val rate "$s")$(val e2e "$s") ]] || continue
        echo "| ${SYS_LABEL[$s]} | ${s##*_} | $(fmt %.0f "$(val rate "$s")") | $(fmt %.2f "$(val p50 "$s")") | $(fmt %.2f "$(val p99 "$s")") |" \
            "$(fmt %.0f "$(val e2e "$s")") | $(fmt %.0f "$(val e2e_ack "$s")") |"
    done
    echo
    if ((NODE_OK)) && [[ -n $(val rate node_1)$(val rate node_16) ]]; then
        echo "Ratios in this run (netwall / Node.js stack):"
        echo
        echo "| | 1 sender | 16 senders |"
        echo "|---|---:|---:|"
        echo "| ACK msgs/s, SQLite | $(ratio "$(val rate nw_sqlite_1)" "$(val rate node_1)") | $(ratio "$(val rate nw_sqlite_16)" "$(val rate node_16)") |"
        echo "| ACK msgs/s, PostgreSQL | $(ratio "$(val rate nw_pg_1)" "$(val rate node_1)") | $(ratio "$(val rate nw_pg_16)" "$(val rate node_16)") |"
        echo "| p50 ACK latency, Node.js / netwall SQLite | $(ratio "$(val p50 node_1)" "$(val p50 nw_sqlite_1)") | $(ratio "$(val p50 node_16)" "$(val p50 nw_sqlite_16)") |"
        echo "| end to end (delivered vs stored), SQLite | $(ratio "$(val e2e nw_sqlite_1)" "$(val e2e node_1)") | $(ratio "$(val e2e nw_sqlite_16)" "$(val e2e node_16)") |"
        echo "| end to end (delivered vs stored), PostgreSQL | $(ratio "$(val e2e nw_pg_1)" "$(val e2e node_1)") | $(ratio "$(val e2e nw_pg_16)" "$(val e2e node_16)") |"
        echo
    fi
    echo "Against the targets:"
    echo
    echo "| target | wanted | measured | |"
    echo "|---|---|---|---|"
    v=$(val rate nw_sqlite_16); echo "| SQLite, 16 senders | >= 30,000 msgs/s | $(fmt %.0f "$v") msgs/s | $(verdict "$v" 30000) |"
    v=$(val rate nw_sqlite_1); echo "| SQLite, 1 sender | >= 5,000 msgs/s | $(fmt %.0f "$v") msgs/s (p50 $(fmt %.2f "$(val p50 nw_sqlite_1)") ms) | $(verdict "$v" 5000) |"
    v=$(val rate nw_pg_1); [[ -n $v ]] && echo "| PostgreSQL, 1 sender | >= 5,000 msgs/s | $(fmt %.0f "$v") msgs/s (p50 $(fmt %.2f "$(val p50 nw_pg_1)") ms) | $(verdict "$v" 5000) |"
    v=$(val rate nw_pg_16); echo "| PostgreSQL, 16 senders | >= 10,000 msgs/s | $(fmt %.0f "$v") msgs/s | $(verdict "$v" 10000) |"
    for s in nw_sqlite_1 nw_sqlite_16 nw_pg_1 nw_pg_16; do
        e=$(val e2e "$s"); a=$(val e2e_ack "$s")
        [[ -n $e ]] || continue
        pct=$(awk -v e="$e" -v a="$a" 'BEGIN { printf "%.0f", (a > 0 ? 100 * e / a : 0) }')
        busy="stand-in $(fmt %.2f "$(val emar_busy "$s")"), intake $(fmt %.2f "$(val intake_cpu_deliver "$s")")"
        [[ -n $(val pg_cpu_deliver "$s") ]] && busy+=", PostgreSQL $(fmt %.2f "$(val pg_cpu_deliver "$s")")"
        echo "| delivery keeps pace, ${SYS_LABEL[$s]#netwall, }, ${s##*_} sender$([[ ${s##*_} == 1 ]] || echo s) | delivered/s >= 90 % of the ACK rate | $(fmt %.0f "$e") delivered/s against $(fmt %.0f "$a") ACK/s ($pct %); cores busy: $busy | $( ((pct >= 90)) && echo met || echo missed) |"
    done
    if [[ -n $PARSE_LINE ]]; then
        pv=$(grep -oE '[0-9]+([.][0-9]+)? MB/s' <<<"$PARSE_LINE" | head -n 1 | cut -d' ' -f1)
        echo "| parser (bench/parse.sh, first figure) | >= 1 GB/s | $(fmt %.0f "$pv") MB/s | $(verdict "$pv" 1000) |"
    else
        echo "| parser | >= 1 GB/s | not measured | |"
    fi
    echo
    [[ -n $PARSE_LINE ]] && { echo "Parser: \`$PARSE_LINE\`"; echo; }
    bl=""
    for s in nw_sqlite_1 nw_sqlite_16 nw_pg_1 nw_pg_16; do
        [[ -n $(val batch "$s") ]] && bl+="${bl:+; }${SYS_LABEL[$s]#netwall, } ${s##*_}: $(fmt %.1f "$(val batch "$s")") (max $(fmt %.0f "$(val batch_max "$s")"))"
    done
    [[ -n $bl ]] && { echo "netwall group commit, acknowledged messages per store transaction (median): $bl."; echo; }
    if ((REPS_DONE > 1)); then
        echo "<details><summary>Every repetition</summary>"
        echo
        for f in rate p50 p99 e2e e2e_ack e2e_secs emar_busy intake_cpu_deliver pg_cpu_deliver; do
            line=""
            for s in "${SYSTEMS[@]}"; do
                [[ -n ${RES["$f|$s"]:-} ]] && line+="${line:+; }${SYS_LABEL[$s]} ${s##*_}: ${RES["$f|$s"]}"
            done
            [[ -n $line ]] && echo "- $f: $line"
        done
        echo
        echo "</details>"
        echo
    fi
    if ((${#NOTES[@]})); then
        echo "Notes:"
        echo
        printf '%s\n' "${NOTES[@]}" | sed -E 's/-[0-9]+: /: /' | sort | uniq -c |
            awk '{ c = $1; $1 = ""; sub(/^ /, ""); printf "- %s%s\n", $0, (c > 1 ? " (" c " runs)" : "") }'
        echo
    fi
} >"$REPORT"

cat "$REPORT"

if ((RECORD)); then
    new=$TMP/RESULTS.new
    if [[ -f $RESULTS_FILE ]] && grep -qxF "$RESULTS_MARKER" "$RESULTS_FILE"; then
        # everything up to the marker stays; this run goes right below it, older runs after
        awk -v m="$RESULTS_MARKER" '{ print } $0 == m { exit }' "$RESULTS_FILE" >"$new"
        { echo; cat "$REPORT"; } >>"$new"
        awk -v m="$RESULTS_MARKER" 'found { print } $0 == m { found = 1 }' "$RESULTS_FILE" | sed '1{/^$/d}' >>"$new"
    else
        {
            if [[ -f $RESULTS_FILE ]]; then cat "$RESULTS_FILE"; echo; else echo "# netwall benchmark results"; echo; fi
            echo "$RESULTS_MARKER"
            echo
            cat "$REPORT"
        } >"$new"
    fi
    cp "$new" "$RESULTS_FILE"
    log "results added to $RESULTS_FILE"
fi

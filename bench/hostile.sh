#!/usr/bin/env bash
# Hostile-peer benchmark: what a daemon holds when its peers stop reading. One section per
# part of the system; each starts its own daemons on 127.0.0.1 high ports, loads them for a
# bounded time, measures, prints a Markdown table, and stops everything it started by PID.
#
#   wall    N visitors that never read (SO_RCVBUF 4096) behind a target that pushes 16 MiB
#           to each: gateway and agent RSS against memory_budget plus their baseline, the
#           held bytes the daemons report, and a normal visitor's 16 MiB on the same service
#   intake  N MLLP senders that each start a frame of just under 1 MiB and never end it: the
#           intake's RSS against memory_budget plus its baseline, the held bytes it reports,
#           and what an ordinary sender beside them gets (bench/hostile_senders.py)
#
# A section is a function section_NAME that appends to TABLES; add one to SECTIONS below.
# The script only measures; it judges nothing. Copy the figures into bench/RESULTS.md.
#
# Usage: bench/hostile.sh [options]      (run as root; see --help)

set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
    cat <<EOF
Usage: $0 [options]

Options:
  --sections LIST    comma-separated subset of: ${SECTIONS[*]} (default all)
  --visitors N       wall: visitors that never read; intake: senders holding a partial
                     frame (default 1000)
  --push BYTES       wall: what the target pushes to each (default 16777216)
  --budget BYTES     memory_budget of gateway, agent and intake (default 67108864);
                     "none" leaves the key out (for binaries older than the key)
  --netwall FILE     netwall binary (default \$NETWALL or $REPO/build/netwall)
  --base-port N      first of the loopback ports used (default 23000; uses N .. N+9)
  --limit S          seconds a section may take before it is abandoned (default 300)
  --keep-tmp         keep the temporary directory (configs, keys, logs)
  -h, --help         this text
EOF
}

SECTIONS=(wall intake)

SEL=""
VISITORS=1000
PUSH=$((16 << 20))
BUDGET=$((64 << 20))
NETWALL=${NETWALL:-$REPO/build/netwall}
BASE_PORT=23000
LIMIT=300
KEEP_TMP=0

need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "hostile.sh: $1 needs a value" >&2; exit 2; }; }
while (($#)); do
    case $1 in
        --sections) need_arg "$@"; SEL=$2; shift ;;
        --visitors) need_arg "$@"; VISITORS=$2; shift ;;
        --push) need_arg "$@"; PUSH=$2; shift ;;
        --budget) need_arg "$@"; BUDGET=$2; shift ;;
        --netwall) need_arg "$@"; NETWALL=$2; shift ;;
        --base-port) need_arg "$@"; BASE_PORT=$2; shift ;;
        --limit) need_arg "$@"; LIMIT=$2; shift ;;
        --keep-tmp) KEEP_TMP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "hostile.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for v in VISITORS PUSH BASE_PORT LIMIT; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "hostile.sh: $v must be a positive integer" >&2; exit 2; }
done
[[ $BUDGET == none || $BUDGET =~ ^[0-9]+$ ]] || { echo "hostile.sh: --budget wants bytes or none" >&2; exit 2; }
((BASE_PORT >= 1024 && BASE_PORT + 9 <= 65535)) || { echo "hostile.sh: --base-port out of range" >&2; exit 2; }
RUN=()
IFS=, read -r -a _sel <<<"${SEL:-${SECTIONS[*]}}"
for s in ${_sel[@]}; do
    [[ " ${SECTIONS[*]} " == *" $s "* ]] || { echo "hostile.sh: unknown section '$s'" >&2; exit 2; }
    RUN+=("$s")
done

log() { printf '[hostile %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'hostile.sh: error: %s\n' "$*" >&2; exit 1; }

TMP=""
PIDS=()
declare -A PID_START
TABLES=()
CLEANUP_WAIT=3
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

[[ $(id -u) == 0 ]] || die "run as root (the daemons and the descriptor limit)"
[[ -x $NETWALL ]] || die "no netwall binary at $NETWALL (make, or --netwall FILE)"
for c in python3 curl ss; do command -v "$c" >/dev/null || die "needs $c"; done
TMP=$(mktemp -d /tmp/netwall-hostile.XXXXXX) || die "mktemp failed"
mkdir -p "$TMP/log"

# Every visitor holds a descriptor here, in the gateway, in the agent and in the target.
want_nofile=$((VISITORS + 1024))
ulimit -n "$want_nofile" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
(($(ulimit -n) >= want_nofile)) || die "open-file limit $(ulimit -n) too low for $VISITORS visitors"

listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
wait_listen() {   # PORT WHAT PID
    local deadline=$((SECONDS + 15))
    until listening "$1"; do
        alive "$3" || die "$2 exited before listening on 127.0.0.1:$1: $(tail -n 5 "$TMP/log/"*.log)"
        ((SECONDS < deadline)) || die "$2 is not listening on 127.0.0.1:$1"
        sleep 0.1
    done
}
rss_kib() { awk '/^Rss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null; }
metric() {   # ADMIN_PORT NAME -> value (0 if absent)
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" |
        awk -v n="$2" '$1 == n { v = $2 } END { printf "%.0f\n", v + 0 }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---------------------------------------------------------------- wall

section_wall() {
    local d=$TMP/wall tport=$((BASE_PORT)) sport=$((BASE_PORT + 1)) tgport=$((BASE_PORT + 2))
    local gadmin=$((BASE_PORT + 3)) aadmin=$((BASE_PORT + 4)) gw ag tg cl deadline
    local budget_line="" gw0 ag0 gw1 ag1 last now same normal
    mkdir -p "$d"
    for n in gateway agent; do
        "$NETWALL" keygen --out "$d" "$n" >"$d/$n.fp" 2>"$TMP/log/keygen.log" || die "keygen failed"
    done
    [[ $BUDGET == none ]] || budget_line="memory_budget = $BUDGET"
    cat >"$d/gateway.ini" <<EOF
[gateway]
listen = 127.0.0.1:$tport
cert = $d/gateway.crt
key = $d/gateway.key
admin = 127.0.0.1:$gadmin
drain_timeout = 1
$budget_line
[agent site]
fingerprint = $(cat "$d/agent.fp")
[service push]
listen = 127.0.0.1:$sport
agents = site
max_connections = $((VISITORS + 16))
EOF
    cat >"$d/agent.ini" <<EOF
[agent]
gateway = 127.0.0.1:$tport
cert = $d/agent.crt
key = $d/agent.key
gateway_fingerprint = $(cat "$d/gateway.fp")
admin = 127.0.0.1:$aadmin
drain_timeout = 1
$budget_line
[service push]
target = 127.0.0.1:$tgport
EOF
    spawn target python3 "$REPO/tests/integration/helpers/hostile_target.py" 127.0.0.1 "$tgport"
    tg=$LAST_PID
    wait_listen "$tgport" target "$tg"
    spawn gateway "$NETWALL" gateway -c "$d/gateway.ini"
    gw=$LAST_PID
    wait_listen "$sport" gateway "$gw"
    spawn agent "$NETWALL" agent -c "$d/agent.ini"
    ag=$LAST_PID
    deadline=$((SECONDS + 15))
    until [[ $(metric "$gadmin" netwall_tunnels_up) == 2 ]]; do
        ((SECONDS < deadline)) || die "the agent's tunnels did not come up: $(tail -n 5 "$TMP/log/agent.log")"
        sleep 0.2
    done
    gw0=$(rss_kib "$gw"); ag0=$(rss_kib "$ag")
    log "wall: baseline RSS gateway $(mib "$gw0") MiB, agent $(mib "$ag0") MiB; $VISITORS visitors that never read"

    # The visitors: connect, ask for PUSH bytes, read nothing, hold on until told to go.
    cat >"$d/visitors.py" <<'PYEOF'
import socket, sys, time
port, n, push = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"PUSH %d\n" % push)
    socks.append(s)
print("connected", len(socks), flush=True)
while True:            # until the script stops us (or the time limit does)
    time.sleep(3600)
PYEOF
    spawn visitors timeout "$LIMIT" python3 "$d/visitors.py" "$sport" "$VISITORS" "$PUSH"
    cl=$LAST_PID
    deadline=$((SECONDS + LIMIT))
    until grep -q '^connected' "$TMP/log/visitors.log"; do
        alive "$cl" || die "the visitors failed: $(tail -n 5 "$TMP/log/visitors.log")"
        ((SECONDS < deadline)) || die "the visitors did not connect in $LIMIT s"
        sleep 0.2
    done
    # Stalled: nothing more written to the visitors for 3 s in a row.
    last=-1; same=0
    while ((same < 15)); do
        ((SECONDS < deadline)) || die "the visitors' streams did not stall in $LIMIT s"
        now=$(metric "$gadmin" netwall_bytes_out_total)
        if [[ $now == "$last" ]]; then same=$((same + 1)); else same=0; last=$now; fi
        sleep 0.2
    done
    gw1=$(rss_kib "$gw"); ag1=$(rss_kib "$ag")
    log "wall: stalled at $(mib $((last / 1024))) MiB written; RSS gateway $(mib "$gw1") MiB, agent $(mib "$ag1") MiB"

    # A normal visitor on the same service, beside the stuck ones (from 127.0.0.2): PUSH
    # bytes, byte-exact.
    normal=$(cd "$REPO/tests/integration/helpers" && timeout "$LIMIT" python3 - "$sport" "$PUSH" <<'PYEOF'
import hashlib, socket, sys, time
from hostile_target import pattern_sha256
port, n = int(sys.argv[1]), int(sys.argv[2])
t0 = time.monotonic()
# from another source network than the stuck visitors: one network's share of the window is
# bounded, so a visitor behind the same address as 1,000 stuck ones waits for them
s = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
s.sendall(b"PUSH %d\n" % n)
h, got = hashlib.sha256(), 0
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    h.update(b); got += len(b)
ok = got == n and h.hexdigest() == pattern_sha256(n)
print("%s %d %.2f" % ("exact" if ok else "WRONG", got, time.monotonic() - t0))
PYEOF
)
    log "wall: normal visitor: $normal"
    local row gh gp gwt ah ap awt
    gh=$(metric "$gadmin" netwall_memory_held_bytes); gp=$(metric "$gadmin" netwall_memory_held_peak_bytes)
    gwt=$(metric "$gadmin" netwall_memory_waits_total)
    ah=$(metric "$aadmin" netwall_memory_held_bytes); ap=$(metric "$aadmin" netwall_memory_held_peak_bytes)
    awt=$(metric "$aadmin" netwall_memory_waits_total)
    stop_proc "$cl" TERM 5
    TABLES+=("### wall: $VISITORS visitors that never read, $((PUSH >> 20)) MiB pushed to each ($(date -u '+%Y-%m-%d %H:%M UTC'))

memory_budget: $([[ $BUDGET == none ]] && echo "none (key left out)" || echo "$((BUDGET >> 20)) MiB"); binary: $NETWALL; $(nproc) CPUs

| | gateway | agent |
|---|---:|---:|
| RSS before the visitors, MiB | $(mib "$gw0") | $(mib "$ag0") |
| RSS with them stalled, MiB | $(mib "$gw1") | $(mib "$ag1") |
| grown, MiB | $(mib $((gw1 - gw0))) | $(mib $((ag1 - ag0))) |
| held now / peak, MiB (netwall_memory_held) | $(mib $((gh / 1024))) / $(mib $((gp / 1024))) | $(mib $((ah / 1024))) / $(mib $((ap / 1024))) |
| budget waits | $gwt | $awt |

Written to the stuck visitors before they stalled: $(mib $((last / 1024))) MiB in all. A normal
visitor beside them: $normal (result, bytes, seconds).")
}

# ---------------------------------------------------------------- intake

section_intake() {
    local d=$TMP/intake port=$((BASE_PORT + 5)) admin=$((BASE_PORT + 6)) it cl deadline
    local budget_line="" it0 it1 last now same normal held waits
    mkdir -p "$d"
    [[ $BUDGET == none ]] || budget_line="memory_budget = $BUDGET"
    printf '%s\n' "[intake]" "listen = 127.0.0.1:$port" "store = $d/intake.db" \
        "admin = 127.0.0.1:$admin" "allow_root = yes" "drain_timeout = 1" \
        "max_connections = $((VISITORS + 16))" "max_per_source = $((VISITORS + 16))" \
        "$budget_line" >"$d/intake.ini"
    spawn intake "$NETWALL" intake -c "$d/intake.ini"
    it=$LAST_PID
    wait_listen "$port" intake "$it"
    it0=$(rss_kib "$it")
    log "intake: baseline RSS $(mib "$it0") MiB; $VISITORS senders with a partial frame"
    spawn senders timeout "$LIMIT" python3 "$SCRIPT_DIR/hostile_senders.py" partial "$port" "$VISITORS"
    cl=$LAST_PID
    deadline=$((SECONDS + LIMIT))
    until grep -q '^connected' "$TMP/log/senders.log"; do
        alive "$cl" || die "the senders failed: $(tail -n 5 "$TMP/log/senders.log")"
        ((SECONDS < deadline)) || die "the senders did not connect in $LIMIT s"
        sleep 0.2
    done
    # Settled: the bytes the intake holds unchanged for 3 s in a row.
    last=-1; same=0
    while ((same < 15)); do
        ((SECONDS < deadline)) || die "the intake's held bytes did not settle in $LIMIT s"
        now=$(metric "$admin" netwall_intake_memory_held_bytes)
        if [[ $now == "$last" ]]; then same=$((same + 1)); else same=0; last=$now; fi
        sleep 0.2
    done
    it1=$(rss_kib "$it")
    held=$(metric "$admin" netwall_intake_memory_held_bytes)
    waits=$(metric "$admin" netwall_intake_memory_waits_total)
    log "intake: settled; RSS $(mib "$it1") MiB, held $(mib $((held / 1024))) MiB"
    # An ordinary sender beside them: one message; its MSA-1 and the seconds until it came
    # (bounded: the senders hold their frames until frame_timeout, 30 s by default).
    normal=$(timeout 60 python3 "$SCRIPT_DIR/hostile_senders.py" one "$port" || echo "none 60+")
    log "intake: ordinary sender: $normal"
    stop_proc "$cl" TERM 5
    TABLES+=("### intake: $VISITORS senders each holding a partial frame of just under 1 MiB ($(date -u '+%Y-%m-%d %H:%M UTC'))

memory_budget: $([[ $BUDGET == none ]] && echo "none (key left out)" || echo "$((BUDGET >> 20)) MiB"); binary: $NETWALL; $(nproc) CPUs

| | intake |
|---|---:|
| RSS before the senders, MiB | $(mib "$it0") |
| RSS with them settled, MiB | $(mib "$it1") |
| grown, MiB | $(mib $((it1 - it0))) |
| held (netwall_intake_memory_held_bytes), MiB | $(mib $((held / 1024))) |
| budget waits | $waits |

Offered: about $VISITORS MiB in all. An ordinary sender beside them: $normal (its MSA-1,
seconds until it came).")
}

for s in "${RUN[@]}"; do
    "section_$s"
done
printf '\n%s\n' "${TABLES[@]}"

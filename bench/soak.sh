#!/usr/bin/env bash
# Soak: one long run of mixed traffic through the wall into the intake and the chat, with the
# gateway and the agents killed and restarted under it at random, and the daemons' memory and
# open files watched the whole time.
#
#   gateway (public listeners: mllp, chat, web, echo) <- 2 agents (tunnels dialled out)
#     mllp -> intake (PROXY v2, SQLite store) -> stand-in EMAR API (emar.py)
#     chat -> netwall chat serve (TLS end to end)
#     web  -> a small HTTP server      echo -> a TCP echo server
#
# Traffic (all through the gateway): bench/soak_mllp.c sends RDE^O11 orders at a fixed rate
# with unique control IDs and resends every message whose ACK does not come until it gets AA;
# bench/soak_clients.py runs IRC clients exchanging lines in one room (reconnecting after each
# cut) and HTTP and echo loops with every body checked. Every MIN..MAX seconds (seedable RNG)
# the gateway or one of the agents gets SIGKILL or SIGTERM (each daemon's signals alternate)
# and is started again; each restart is logged (restarts.csv and the report). The intake, the chat and the stand-in API are never restarted.
#
# At the end: MLLP sent, acknowledged, stored (the intake's SQLite), delivered (the stand-in's
# log, distinct control IDs) and lost = acknowledged but not stored or not delivered; chat
# lines sent and received while both ends were connected; HTTP/echo operations and failures
# (inside or outside a restart); RSS and open fds of every daemon sampled every 10 s into a
# CSV, with start/end/max per daemon and a "flat" verdict. The rules (bench/soak_report.py):
#   lost          must be 0
#   RSS flat      median RSS of the last quarter of samples <= median of the second quarter
#                 + max(10 %, 2 MiB), for the intake, the chat and the stand-in over the
#                 traffic period, and for the gateway and each agent per process lifetime of at
#                 least 8 samples (shorter lifetimes are shown, not judged)
#   fds flat      the same with the median of open fds minus the connections the daemon holds
#                 open at that moment (streams of the gateway and agents, MLLP connections of
#                 the intake, clients of the chat; from /metrics), + max(10 %, 4)
#   no crash      no daemon exits unless the soak stopped it; SIGTERM exits 0 in time
#   no corruption no HTTP body or echo differs from what was sent
#   chat          no line missing that was expected (see soak_clients.py)
# Exit status 0 when all hold, 1 otherwise, 2 on usage errors.
#
# Usage: bench/soak.sh [DURATION] [options]    (DURATION seconds, default $SOAK_SECONDS or 3600)
# Loopback only, ports BASE..BASE+19 (default 25600); every process started here is stopped by
# PID on exit (Ctrl-C included). The netwall binary is copied first, so rebuilding build/
# during the run changes nothing.

set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
    cat <<EOF
Usage: $0 [DURATION] [options]

Runs mixed traffic through the wall for DURATION seconds (default \$SOAK_SECONDS or 3600)
while restarting the gateway and the agents at random; prints a summary and exits non-zero
if an acknowledged message was lost, a daemon crashed, data was corrupted, a chat line went
missing, or memory or open files grew (rules at the top of this script).

Options:
  --seed N           seed of the restart schedule (default \$SOAK_SEED or from the clock)
  --min S, --max S   seconds between restarts (default 20, 90)
  --rate N           MLLP messages a second (default 200)
  --mllp-conns N     MLLP connections (default 4)
  --chat-clients N   IRC clients (default 4)
  --no-restarts      the same traffic without restarting anything (a baseline)
  --netwall FILE     netwall binary (default \$NETWALL or $REPO/build/netwall); copied
  --base-port N      first of the loopback ports (default 25600; uses N .. N+19)
  --tmp-dir DIR      where the run's directory goes (default /var/tmp)
  --keep-tmp         keep the run's directory (logs, CSV, store); kept anyway on failure
  --record           add the report to bench/RESULTS.md (newest first, below the marker)
  -h, --help         this text
EOF
}

# ---------------------------------------------------------------- options

DURATION=${SOAK_SECONDS:-3600}
SEED=${SOAK_SEED:-}
MIN_GAP=20
MAX_GAP=90
RATE=200
MLLP_CONNS=4
CHAT_CLIENTS=4
RESTARTS=1
NETWALL_SRC=${NETWALL:-$REPO/build/netwall}
BASE_PORT=25600
TMP_BASE=/var/tmp
KEEP_TMP=0
RECORD=0

need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "soak.sh: $1 needs a value" >&2; exit 2; }; }
while (($#)); do
    case $1 in
        --seed) need_arg "$@"; SEED=$2; shift ;;
        --min) need_arg "$@"; MIN_GAP=$2; shift ;;
        --max) need_arg "$@"; MAX_GAP=$2; shift ;;
        --rate) need_arg "$@"; RATE=$2; shift ;;
        --mllp-conns) need_arg "$@"; MLLP_CONNS=$2; shift ;;
        --chat-clients) need_arg "$@"; CHAT_CLIENTS=$2; shift ;;
        --no-restarts) RESTARTS=0 ;;
        --netwall) need_arg "$@"; NETWALL_SRC=$2; shift ;;
        --base-port) need_arg "$@"; BASE_PORT=$2; shift ;;
        --tmp-dir) need_arg "$@"; TMP_BASE=$2; shift ;;
        --keep-tmp) KEEP_TMP=1 ;;
        --record) RECORD=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "soak.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) DURATION=$1 ;;
    esac
    shift
done
[[ -n $SEED ]] || SEED=$(($(date +%s) % 100000))
for v in DURATION SEED MIN_GAP MAX_GAP RATE MLLP_CONNS CHAT_CLIENTS BASE_PORT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "soak.sh: $v must be a whole number" >&2; exit 2; }
done
((DURATION >= 30)) || { echo "soak.sh: DURATION must be at least 30 s" >&2; exit 2; }
((MIN_GAP >= 5 && MAX_GAP >= MIN_GAP)) || { echo "soak.sh: want 5 <= --min <= --max" >&2; exit 2; }
((RATE >= 1 && MLLP_CONNS >= 1 && MLLP_CONNS <= 99 && CHAT_CLIENTS >= 2)) ||
    { echo "soak.sh: --rate >= 1, --mllp-conns 1..99, --chat-clients >= 2" >&2; exit 2; }
((BASE_PORT >= 1024 && BASE_PORT + 20 <= 65535)) || { echo "soak.sh: --base-port out of range" >&2; exit 2; }

# ---------------------------------------------------------------- ports

P_TUNNEL=$BASE_PORT
P_GW_ADMIN=$((BASE_PORT + 1)); P_A1_ADMIN=$((BASE_PORT + 2)); P_A2_ADMIN=$((BASE_PORT + 3))
P_PUB_MLLP=$((BASE_PORT + 4)); P_PUB_CHAT=$((BASE_PORT + 5))
P_PUB_WEB=$((BASE_PORT + 6)); P_PUB_ECHO=$((BASE_PORT + 7))
P_INTAKE=$((BASE_PORT + 8)); P_INTAKE_ADMIN=$((BASE_PORT + 9))
P_CHAT=$((BASE_PORT + 10)); P_CHAT_ADMIN=$((BASE_PORT + 11))
P_EMAR=$((BASE_PORT + 12)); P_WEB=$((BASE_PORT + 13)); P_ECHO=$((BASE_PORT + 14))
ALL_PORTS=$(seq "$BASE_PORT" $((BASE_PORT + 14)))

DRAIN=5                   # drain_timeout of the gateway and the agents
TUNNELS=2                 # tunnels per agent
AGENTS=(agent1 agent2)
WALL=(gateway "${AGENTS[@]}")
FIXED=(emar web echo intake chat)
declare -A ADMIN=([gateway]=$P_GW_ADMIN [agent1]=$P_A1_ADMIN [agent2]=$P_A2_ADMIN
    [intake]=$P_INTAKE_ADMIN [chat]=$P_CHAT_ADMIN)

# ---------------------------------------------------------------- helpers

log() { printf '[soak %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'soak.sh: error: %s\n' "$*" >&2; KEEP_TMP=1; exit 1; }

TMP=""
PIDS=()
declare -A PID_START
CLEANUP_WAIT=$((DRAIN + 5))
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
trap cleanup EXIT
trap 'log "interrupted"; KEEP_TMP=1; exit 130' INT TERM

listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
now() { date +%s.%N | cut -c1-14; }
elapsed() { echo $((SECONDS - T0_SECONDS)); }
metric() {   # metric PORT NAME -> the value of an unlabelled metric, or nothing
    curl -s -m 2 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v m="$2" '$1 == m { print $2; exit }'
}
note() { echo "$*" >>"$TMP/notes.txt"; log "NOTE: $*"; }

# A small LCG of our own, so the schedule depends on the seed only (not on bash's RANDOM).
RNG=$SEED
rand() {   # rand N -> 0..N-1
    RNG=$(((RNG * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff))
    RAND=$(((RNG >> 20) % $1))
}

# ---------------------------------------------------------------- preflight

for c in cc ss curl awk; do command -v "$c" >/dev/null 2>&1 || die "$c is needed"; done
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3) || die "python3 is needed"
[[ -x $NETWALL_SRC ]] || die "netwall binary not found at $NETWALL_SRC (make, or --netwall FILE)"
for p in $ALL_PORTS; do listening "$p" && die "127.0.0.1:$p is in use (choose another --base-port)"; done
ulimit -n 4096 2>/dev/null

mkdir -p "$TMP_BASE" || die "cannot create $TMP_BASE"
TMP=$(mktemp -d "$TMP_BASE/netwall-soak.XXXXXX") || die "mktemp in $TMP_BASE failed"
mkdir -p "$TMP/log" "$TMP/bin" "$TMP/pids" "$TMP/www"
: >"$TMP/notes.txt"
cp "$NETWALL_SRC" "$TMP/bin/netwall" || die "cannot copy $NETWALL_SRC"
NETWALL=$TMP/bin/netwall
cp "$REPO/tests/integration/helpers/emar.py" "$REPO/tests/integration/helpers/echo_server.py" "$SCRIPT_DIR/soak_clients.py" "$SCRIPT_DIR/soak_report.py" "$TMP/bin/" ||
    die "cannot copy the helpers"
cc -O2 -Wall -pthread -o "$TMP/bin/soak_mllp" "$SCRIPT_DIR/soak_mllp.c" 2>"$TMP/log/cc.log" ||
    die "cc bench/soak_mllp.c failed: $(cat "$TMP/log/cc.log")"
NETWALL_DESC="$("$NETWALL" version 2>/dev/null | head -n 1 | sed 's/^netwall //') ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
log "run directory $TMP; $DURATION s; seed $SEED; netwall: $NETWALL_DESC"

# ---------------------------------------------------------------- keys and configs

cd "$TMP" || die "cd $TMP"
for k in gateway agent1 agent2 chat; do
    "$NETWALL" keygen --out "$TMP" "$k" >/dev/null 2>"$TMP/log/keygen.log" || die "keygen $k: $(cat "$TMP/log/keygen.log")"
done
GW_FP=$("$NETWALL" fingerprint gateway.crt)
CHAT_FP=$("$NETWALL" fingerprint chat.crt)

cat >gateway.ini <<EOF
[gateway]
listen = 127.0.0.1:$P_TUNNEL
cert = gateway.crt
key = gateway.key
admin = 127.0.0.1:$P_GW_ADMIN
drain_timeout = $DRAIN
EOF
for a in "${AGENTS[@]}"; do
    printf '\n[agent %s]\nfingerprint = %s\n' "$a" "$("$NETWALL" fingerprint "$a.crt")" >>gateway.ini
done
# service name, public port on the gateway, private target (every service on both agents)
SERVICES=("mllp $P_PUB_MLLP $P_INTAKE" "chat $P_PUB_CHAT $P_CHAT" "web $P_PUB_WEB $P_WEB" "echo $P_PUB_ECHO $P_ECHO")
for a in "${AGENTS[@]}"; do
    cat >"$a.ini" <<EOF
[agent]
gateway = 127.0.0.1:$P_TUNNEL
gateway_fingerprint = $GW_FP
cert = $a.crt
key = $a.key
tunnels = $TUNNELS
admin = 127.0.0.1:${ADMIN[$a]}
drain_timeout = $DRAIN
EOF
done
for svc in "${SERVICES[@]}"; do
    read -r name pub target <<<"$svc"
    printf '\n[service %s]\nlisten = 127.0.0.1:%s\nagents = %s\nmax_per_source = 10000\n' "$name" "$pub" "${AGENTS[*]}" >>gateway.ini
    [[ $name == mllp ]] && echo "proxy_protocol = v2" >>gateway.ini
    for a in "${AGENTS[@]}"; do printf '\n[service %s]\ntarget = 127.0.0.1:%s\n' "$name" "$target" >>"$a.ini"; done
done
cat >intake.ini <<EOF
[intake]
listen = 127.0.0.1:$P_INTAKE
proxy = on
allow = 127.0.0.0/8
store = intake.db
admin = 127.0.0.1:$P_INTAKE_ADMIN

[route]
accept = RDE
default = ignore

[deliver]
url = http://127.0.0.1:$P_EMAR/emar/hl7
max_attempts = 1000
backoff_max = 5
EOF
cat >chat.ini <<EOF
[chat]
listen = 127.0.0.1:$P_CHAT
cert = chat.crt
key = chat.key
open_registration = on
server_name = soak.netwall
flood_rate = 10
flood_burst = 50
max_per_source = 256
backlog = 0
admin = 127.0.0.1:$P_CHAT_ADMIN
EOF
for f in gateway.ini agent1.ini agent2.ini intake.ini chat.ini; do
    out=$("$NETWALL" check "$f" 2>&1) || die "netwall check $f: $out"
done

# ---------------------------------------------------------------- daemons

export NETWALL_ALLOW_ROOT=1
declare -A LIFE CUR_PID
write_pid() { echo "$2 ${LIFE[$1]}" >"$TMP/pids/$1.tmp" && mv "$TMP/pids/$1.tmp" "$TMP/pids/$1"; }

# start NAME: a new lifetime of the daemon NAME; its log is log/NAME-LIFETIME.log
start() {
    local name=$1
    LIFE[$name]=$((${LIFE[$name]:-0} + 1))
    local lname="$name-${LIFE[$name]}"
    case $name in
        gateway) spawn "$lname" "$NETWALL" gateway -c gateway.ini ;;
        agent*) spawn "$lname" "$NETWALL" agent -c "$name.ini" ;;
        intake) spawn "$lname" "$NETWALL" intake -c intake.ini ;;
        chat) spawn "$lname" "$NETWALL" chat serve -c chat.ini ;;
        emar) spawn "$lname" "$PY" bin/emar.py --port "$P_EMAR" --log emar.jsonl ;;
        web) spawn "$lname" "$PY" bin/soak_clients.py http-server --port "$P_WEB" ;;
        echo) spawn "$lname" "$PY" bin/echo_server.py 127.0.0.1 "$P_ECHO" ;;
    esac
    CUR_PID[$name]=$LAST_PID
    write_pid "$name" "$LAST_PID"
}

# ready NAME: listening (and for the wall: every tunnel up), or not yet
ready() {
    case $1 in
        gateway) [[ $(metric "$P_GW_ADMIN" netwall_tunnels_up) == $((TUNNELS * ${#AGENTS[@]})) ]] ;;
        agent*) [[ $(metric "${ADMIN[$1]}" netwall_tunnels_up) == "$TUNNELS" ]] ;;
        intake) listening "$P_INTAKE" && listening "$P_INTAKE_ADMIN" ;;
        chat) listening "$P_CHAT" ;;
        emar) listening "$P_EMAR" ;;
        web) listening "$P_WEB" ;;
        echo) listening "$P_ECHO" ;;
    esac
}

# wait_ready NAME SECONDS: returns 1 if it died or did not get ready in time
wait_ready() {
    local name=$1 deadline=$((SECONDS + $2)) pid=${CUR_PID[$1]}
    until ready "$name"; do
        alive "$pid" || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

lastlog() { tail -n "${2:-8}" "$TMP/log/$1-${LIFE[$1]}.log" 2>/dev/null | cut -c1-300; }

for name in emar web echo intake chat gateway agent1 agent2; do
    start "$name"
done
for name in emar web echo intake chat agent1 agent2 gateway; do
    wait_ready "$name" 30 || die "$name did not start: $(lastlog "$name")"
done
log "all up: gateway, 2 agents x $TUNNELS tunnels, intake, chat, stand-in API, web, echo"

# ---------------------------------------------------------------- sampler

T0_EPOCH=$(now)
T0_SECONDS=$SECONDS
echo "$T0_EPOCH" >"$TMP/t0"
SAMPLED=(gateway agent1 agent2 intake chat emar)
sampler() {
    local name pid life rss fds extra t next=$SECONDS
    echo "epoch,elapsed_s,daemon,lifetime,pid,rss_kib,fds,extra"
    while :; do
        t=$(now)
        for name in "${SAMPLED[@]}"; do
            read -r pid life <"$TMP/pids/$name" 2>/dev/null || continue
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            [[ -n $rss ]] || continue
            fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
            extra=""
            case $name in
                gateway | agent*) extra=$(metric "${ADMIN[$name]}" netwall_streams_open) ;;
                intake) extra=$(metric "${ADMIN[$name]}" netwall_intake_connections_open) ;;
                chat) extra=$(metric "${ADMIN[$name]}" netwall_chat_clients) ;;
            esac
            printf '%s,%s,%s,%s,%s,%s,%s,%s\n' "$t" "$(awk -v a="$t" -v b="$T0_EPOCH" 'BEGIN { printf "%.1f", a - b }')" \
                "$name" "$life" "$pid" "$rss" "$fds" "$extra"
        done
        next=$((next + 10))
        while ((SECONDS < next)); do sleep 0.5; done
    done
}
sampler >"$TMP/samples.csv" 2>"$TMP/log/sampler.log" &
track $!
SAMPLER_PID=$!

# ---------------------------------------------------------------- traffic

RUN_ID=S$(printf '%07d' $((SEED % 10000000)))
spawn mllp "$TMP/bin/soak_mllp" -p "$P_PUB_MLLP" -c "$MLLP_CONNS" -r "$RATE" -d "$DURATION" -g 120 -t 5 \
    -i "$RUN_ID" -o "$TMP/acked.txt" -e "$TMP/mllp_events.log"
MLLP_PID=$LAST_PID
spawn chatclients "$PY" bin/soak_clients.py chat --port "$P_PUB_CHAT" --fingerprint "$CHAT_FP" \
    --clients "$CHAT_CLIENTS" --interval 1 --duration "$DURATION" --grace 5 --out "$TMP/chat.json" \
    --events "$TMP/chat_events.log"
CHATC_PID=$LAST_PID
spawn tcpclients "$PY" bin/soak_clients.py tcp --http-port "$P_PUB_WEB" --echo-port "$P_PUB_ECHO" \
    --interval 0.5 --duration "$DURATION" --out "$TMP/tcp.json" --events "$TMP/tcp_events.log"
TCPC_PID=$LAST_PID
log "traffic started: MLLP $RATE msg/s on $MLLP_CONNS connections, $CHAT_CLIENTS chat clients, HTTP + echo"

# ---------------------------------------------------------------- restarts

echo "epoch_kill,epoch_up,elapsed_s,daemon,signal,old_pid,exit,stop_s,new_pid,up_s" >"$TMP/restarts.csv"
FAILED_EARLY=""

# check_alive: every daemon still running (the ones not being restarted right now)
declare -A REPORTED
check_alive() {
    local name pid rc
    for name in "${FIXED[@]}" "${WALL[@]}"; do
        pid=${CUR_PID[$name]}
        if [[ -z ${REPORTED[$pid]:-} ]] && ! alive "$pid"; then
            REPORTED[$pid]=1
            { wait "$pid"; } 2>/dev/null
            rc=$?
            note "UNEXPECTED EXIT: $name (pid $pid, lifetime ${LIFE[$name]}) exited with status $rc at $(elapsed) s; last log lines: $(lastlog "$name" 5 | tr '\n' '|')"
            FAILED_EARLY="$name exited"
            return 1
        fi
    done
}

restart() {
    local name=$1 sig=$2 old=${CUR_PID[$1]} t_kill t_stopped t_up limit rc down at
    at=$(elapsed)
    t_kill=$(now)
    limit=5; [[ $sig == TERM ]] && limit=$((DRAIN + 10))
    log "restart: $name (pid $old) SIG$sig"
    { stop_proc "$old" "$sig" "$limit"; } 2>/dev/null   # no "Killed" notice from bash
    rc=$STOP_RC
    t_stopped=$(now)
    if [[ $sig == TERM && $rc != 0 ]]; then
        note "$name (pid $old) did not exit cleanly on SIGTERM: status $rc (drain_timeout $DRAIN s; waited up to $limit s); last log lines: $(tail -n 5 "$TMP/log/$name-${LIFE[$name]}.log" | tr '\n' '|' | cut -c1-600)"
    fi
    rand 3; down=$RAND                      # 0-2 s down before the new process
    sleep "$down"
    start "$name"
    if ! wait_ready "$name" 30; then
        note "$name (new pid ${CUR_PID[$name]}) was not back within 30 s of its start (tunnels up: $(metric "${ADMIN[$name]}" netwall_tunnels_up)); last log lines: $(lastlog "$name" 5 | tr '\n' '|')"
        FAILED_EARLY="$name did not come back"
    fi
    t_up=$(now)
    echo "$t_kill,$t_up,$at,$name,$sig,$old,$rc,$(awk -v a="$t_stopped" -v b="$t_kill" 'BEGIN { printf "%.2f", a - b }'),${CUR_PID[$name]},$(awk -v a="$t_up" -v b="$t_kill" 'BEGIN { printf "%.2f", a - b }')" >>"$TMP/restarts.csv"
}

declare -A NEXT_SIG
LAST_RESTART_AT=$((DURATION - 20))       # the last seconds run undisturbed
rand $((MAX_GAP - MIN_GAP + 1)); NEXT=$((MIN_GAP + RAND))
while (($(elapsed) < DURATION)); do
    check_alive || break
    [[ -n $FAILED_EARLY ]] && break
    if ((RESTARTS && $(elapsed) >= NEXT && $(elapsed) < LAST_RESTART_AT)); then
        rand 3; target=${WALL[RAND]}
        # each daemon's signals alternate, from a random first one: all get both
        if [[ -z ${NEXT_SIG[$target]:-} ]]; then rand 2; NEXT_SIG[$target]=KILL; ((RAND)) && NEXT_SIG[$target]=TERM; fi
        sig=${NEXT_SIG[$target]}
        NEXT_SIG[$target]=KILL; [[ $sig == KILL ]] && NEXT_SIG[$target]=TERM
        restart "$target" "$sig"
        rand $((MAX_GAP - MIN_GAP + 1)); NEXT=$(($(elapsed) + MIN_GAP + RAND))
        continue
    fi
    sleep 1
done
if [[ -n $FAILED_EARLY ]]; then
    note "stopped early at $(elapsed) s: $FAILED_EARLY"
    for p in $MLLP_PID $CHATC_PID $TCPC_PID; do kill -INT "$p" 2>/dev/null; done
fi

# ---------------------------------------------------------------- wind down

log "traffic ends; waiting for the clients (the MLLP sender finishes the messages in hand)"
for p in $CHATC_PID $TCPC_PID $MLLP_PID; do
    wait_gone 180 "$p" || { note "client pid $p did not finish in time; stopped"; kill -TERM "$p" 2>/dev/null; }
done
check_alive
wait "$MLLP_PID" 2>/dev/null; untrack "$MLLP_PID"
wait "$CHATC_PID" 2>/dev/null; untrack "$CHATC_PID"
wait "$TCPC_PID" 2>/dev/null; untrack "$TCPC_PID"

log "waiting for the delivery queue to empty"
deadline=$((SECONDS + 180))
while ((SECONDS < deadline)); do
    q=$(metric "$P_INTAKE_ADMIN" netwall_intake_queue_depth)
    [[ $q == 0 ]] && break
    alive "${CUR_PID[intake]}" || break
    sleep 1
done
[[ $q == 0 ]] || note "the delivery queue still held ${q:-?} jobs 180 s after the traffic ended"
sleep 12                                # one more sample at rest
T_END_EPOCH=$(now)
kill -TERM "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; untrack "$SAMPLER_PID"

# stop every daemon with SIGTERM; each must exit 0 in time
for name in "${AGENTS[@]}" gateway chat intake; do
    pid=${CUR_PID[$name]}
    alive "$pid" || continue
    stop_proc "$pid" TERM $((DRAIN + 10))
    echo "$name,$pid,$STOP_RC" >>"$TMP/final_stops.csv"
    [[ $STOP_RC == 0 ]] || note "$name (pid $pid) at the end: SIGTERM gave status $STOP_RC"
done
for name in emar web echo; do stop_proc "${CUR_PID[$name]}" TERM 5; done

# ---------------------------------------------------------------- report

log "report"
T_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
RECORD_ARGS=()
((RECORD)) && RECORD_ARGS=(--record "$SCRIPT_DIR/RESULTS.md")
"$PY" "$TMP/bin/soak_report.py" --dir "$TMP" --duration "$DURATION" --seed "$SEED" --rate "$RATE" \
    --mllp-conns "$MLLP_CONNS" --date "$T_DATE" --netwall "$NETWALL_DESC" --restarts "$RESTARTS" \
    --t-end "$T_END_EPOCH" "${RECORD_ARGS[@]}" \
    --command "bench/soak.sh $DURATION --seed $SEED$( ((RESTARTS)) || echo ' --no-restarts')" \
    >"$TMP/report.md"
RC=$?
cat "$TMP/report.md"
((RC == 0)) || KEEP_TMP=1
((KEEP_TMP)) && log "run directory kept: $TMP"
exit "$RC"

#!/usr/bin/env bash
# Chat benchmark: IRC fan-out in one channel, netwall chat serve against ngircd, side by side
# in one run with the same load generator (bench/chat_load.c, C, one thread, epoll) on the
# same machine.
#
# For N receivers joined to one channel, one more client sends M messages (sequence number and
# send time in each) as fast as the server takes them, at most --window messages ahead of the
# slowest receiver. Measured: deliveries per second (N x M / time from the first message sent
# to the last delivery read) and delivery latency p50/p99 over all receivers (one monotonic
# clock: everything runs in the one load-generator process). With N = 1,000 the server's PSS
# is also read before the first connection and with every receiver joined and idle: memory
# per idle client. Each run starts a fresh server; medians of --reps runs.
#
# Both servers are configured alike: plaintext on 127.0.0.1, no flood limits in the way
# (netwall: flood_rate 10000, flood_burst 100000; ngircd: MaxPenaltyTime 0 and the sender is
# an IRC operator with user mode +F, ngircd's relaxed flood protection), no per-address
# connection limit, no DNS or ident lookups. Ports 24500.. on loopback; every process started
# here is stopped by PID on exit (Ctrl-C included); the whole run is bounded (--budget).
# The results go to stdout and, newest first, to bench/RESULTS.md below its marker.
#
# Usage: bench/chat.sh [--quick] [options]      (see --help)

set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
RESULTS_FILE="$SCRIPT_DIR/RESULTS.md"
RESULTS_MARKER='<!-- runs below: newest first -->'

usage() {
    cat <<EOF
Usage: $0 [options]

IRC fan-out in one channel (N = 10, 100, 1,000 receivers, one sender) on netwall chat serve
and on ngircd, memory per idle client with 1,000 joined; prints a Markdown table of medians
and adds it to bench/RESULTS.md (newest run first, below the marker).

Options:
  --quick            smoke run: 1 repetition, a tenth of the messages
  --reps N           repetitions of every measurement (default 3; quick 1)
  --msgs LIST        messages per run for N = 10,100,1000 (default 100000,20000,5000)
  --window W         messages the sender may be ahead of the slowest receiver (default 64)
  --netwall FILE     netwall binary (default \$NETWALL or $REPO/build/netwall; built with
                     make -j2 when missing)
  --ngircd FILE      ngircd binary (default /usr/sbin/ngircd)
  --base-port N      first of the loopback ports used (default 24500; uses N .. N+1)
  --budget S         stop starting repetitions after S seconds (default 420)
  --no-record        print the table only; do not touch bench/RESULTS.md
  --keep-tmp         keep the temporary directory (configs, logs) for inspection
  -h, --help         this text
EOF
}

# ---------------------------------------------------------------- options

QUICK=0
for a in "$@"; do [[ $a == --quick ]] && QUICK=1; done
if ((QUICK)); then REPS=1; MSGS="10000,2000,500"; else REPS=3; MSGS="100000,20000,5000"; fi
WINDOW=64
NETWALL=${NETWALL:-$REPO/build/netwall}
NGIRCD=/usr/sbin/ngircd
BASE_PORT=24500
BUDGET=420
RECORD=1
KEEP_TMP=0

need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "chat.sh: $1 needs a value" >&2; exit 2; }; }
while (($#)); do
    case $1 in
        --quick) ;;
        --reps) need_arg "$@"; REPS=$2; shift ;;
        --msgs) need_arg "$@"; MSGS=$2; shift ;;
        --window) need_arg "$@"; WINDOW=$2; shift ;;
        --netwall) need_arg "$@"; NETWALL=$2; shift ;;
        --ngircd) need_arg "$@"; NGIRCD=$2; shift ;;
        --base-port) need_arg "$@"; BASE_PORT=$2; shift ;;
        --budget) need_arg "$@"; BUDGET=$2; shift ;;
        --no-record) RECORD=0 ;;
        --keep-tmp) KEEP_TMP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "chat.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

for v in REPS WINDOW BASE_PORT BUDGET; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "chat.sh: $v must be a positive integer" >&2; exit 2; }
done
IFS=, read -r M10 M100 M1000 <<<"$MSGS"
for v in M10 M100 M1000; do
    [[ ${!v:-} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "chat.sh: --msgs wants three positive counts" >&2; exit 2; }
done
((BASE_PORT >= 1024 && BASE_PORT + 2 <= 65535)) || { echo "chat.sh: --base-port out of range" >&2; exit 2; }
declare -A MSGS_FOR=([10]=$M10 [100]=$M100 [1000]=$M1000)
SIZES=(10 100 1000)
SERVERS=(netwall ngircd)
declare -A LABEL=([netwall]="netwall chat" [ngircd]="ngircd")

P_NETWALL=$BASE_PORT
P_NGIRCD=$((BASE_PORT + 1))

# ---------------------------------------------------------------- helpers

log() { printf '[chat %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'chat.sh: error: %s\n' "$*" >&2; exit 1; }

TMP=""
PIDS=()
declare -A PID_START
declare -A RES           # "figure|server|N" -> space-separated values, one per repetition
NOTES=()

CLEANUP_WAIT=3
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

wait_listen() {
    local port=$1 what=$2 pid=$3 logf=$4 deadline=$((SECONDS + ${5:-20}))
    until listening "$port"; do
        alive "$pid" || die "$what exited before listening on 127.0.0.1:$port: $(tail -n 15 "$logf" 2>/dev/null)"
        ((SECONDS < deadline)) || die "$what is not listening on 127.0.0.1:$port after ${5:-20} s: $(tail -n 15 "$logf" 2>/dev/null)"
        sleep 0.05
    done
}

add_res() { RES["$1|$2|$3"]="${RES["$1|$2|$3"]:-}${RES["$1|$2|$3"]:+ }$4"; }
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# ---------------------------------------------------------------- preflight

for c in cc ss make awk; do command -v "$c" >/dev/null 2>&1 || die "$c is needed"; done
if [[ ! -x $NGIRCD && $NGIRCD == /usr/sbin/ngircd && $(id -u) == 0 ]]; then
    apt_install ngircd || die "apt-get install ngircd failed"
fi
[[ -x $NGIRCD ]] || die "ngircd not found at $NGIRCD (apt-get install ngircd, or pass --ngircd FILE)"
if [[ ! -x $NETWALL ]]; then
    [[ $NETWALL == "$REPO/build/netwall" ]] || die "netwall binary not found at $NETWALL"
    log "building netwall (make -j2)"
    make -C "$REPO" -j2 >&2 || die "make -j2 failed"
    [[ -x $NETWALL ]] || die "make -j2 did not produce $NETWALL"
fi
for port in $P_NETWALL $P_NGIRCD; do
    listening "$port" && die "port $port is already in use on this machine (pick another --base-port)"
done

# the load generator holds 1,000+ sockets, and so does each server
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
(($(ulimit -n) >= 2200)) || die "the open-file limit is $(ulimit -n); 2,200 are needed"

TMP=$(mktemp -d /tmp/chat-bench.XXXXXX) || die "mktemp failed"
mkdir -p "$TMP/log" "$TMP/bin" "$TMP/ngircd/run" "$TMP/ngircd/conf.d"
cc -O2 -Wall -o "$TMP/bin/chat_load" "$SCRIPT_DIR/chat_load.c" 2>"$TMP/log/cc.log" ||
    die "cc -O2 bench/chat_load.c failed: $(cat "$TMP/log/cc.log")"
LOADGEN=$TMP/bin/chat_load

cat >"$TMP/netwall.ini" <<EOF
[chat]
plain_listen = 127.0.0.1:$P_NETWALL
open_registration = on
server_name = bench.netwall
flood_rate = 10000
flood_burst = 100000
max_per_source = 5000
max_clients = 5000
sendq = 1048576
admin = off
log_level = warn
EOF

# ngircd: foreground, everything it reads or writes in $TMP (no /etc/ngircd: the MOTD is a
# phrase, the include directory an empty one, the PID file in a directory its user can write)
NG_USER=""
if ((EUID == 0)); then
    NG_USER="ServerUID = 65534
ServerGID = 65534"
    chown 65534:65534 "$TMP/ngircd/run"
    chmod 755 "$TMP"
fi
cat >"$TMP/ngircd/ngircd.conf" <<EOF
[Global]
Name = bench.ngircd
Info = chat benchmark
AdminInfo1 = chat benchmark
AdminInfo2 = loopback
AdminEMail = nobody@localhost
Listen = 127.0.0.1
Ports = $P_NGIRCD
MotdPhrase = chat benchmark
MotdFile = $TMP/ngircd/motd
HelpFile = $TMP/ngircd/help
PidFile = $TMP/ngircd/run/ngircd.pid
$NG_USER
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 300
[Options]
PAM = no
DNS = no
Ident = no
IncludeDir = $TMP/ngircd/conf.d
[Operator]
Name = bench
Password = bench
EOF
: >"$TMP/ngircd/help"

NETWALL_DESC="netwall $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
NGIRCD_DESC=$("$NGIRCD" --version 2>/dev/null | head -n 1 | cut -d- -f1)

# ---------------------------------------------------------------- one run

RUN_SEQ=0
# run SERVER N : a fresh server, the load, the server stopped; results into RES
run() {
    local srv=$1 n=$2 m=${MSGS_FOR[$2]} name pid port out rc extra=()
    RUN_SEQ=$((RUN_SEQ + 1))
    name="$srv-$n-$RUN_SEQ"
    if [[ $srv == netwall ]]; then
        port=$P_NETWALL
        spawn "$name-server" "$NETWALL" chat serve -c "$TMP/netwall.ini"
    else
        port=$P_NGIRCD
        spawn "$name-server" "$NGIRCD" -n -f "$TMP/ngircd/ngircd.conf"
        extra=(-o bench:bench)
    fi
    pid=$LAST_PID
    wait_listen "$port" "$srv" "$pid" "$TMP/log/$name-server.log"
    out=$(timeout 150 "$LOADGEN" -p "$port" -n "$n" -m "$m" -w "$WINDOW" -t 120 -s "$pid" "${extra[@]}" \
        2>"$TMP/log/$name-load.err")
    rc=$?
    if [[ -z $out ]]; then
        NOTES+=("$name: no result (status $rc): $(head -n 3 "$TMP/log/$name-load.err" | tr '\n' ' ' | cut -c1-300)")
    else
        log "  $srv N=$n: $out"
        add_res rate "$srv" "$n" "$(kv rate "$out")"
        add_res p50 "$srv" "$n" "$(kv p50_ms "$out")"
        add_res p99 "$srv" "$n" "$(kv p99_ms "$out")"
        add_res srv_cpu "$srv" "$n" "$(awk -v c="$(kv server_cpu_s "$out")" -v s="$(kv secs "$out")" 'BEGIN { printf "%.2f", (s > 0 ? c / s : 0) }')"
        add_res load_cpu "$srv" "$n" "$(awk -v c="$(kv load_cpu_s "$out")" -v s="$(kv secs "$out")" 'BEGIN { printf "%.2f", (s > 0 ? c / s : 0) }')"
        add_res secs "$srv" "$n" "$(kv secs "$out")"
        if ((n == 1000)); then
            add_res kib "$srv" "$n" "$(kv kib_per_client "$out")"
            add_res setup "$srv" "$n" "$(kv setup_secs "$out")"
        fi
        local d o
        d=$(kv dropped "$out"); o=$(kv order_errors "$out")
        ((d > 0)) && NOTES+=("$name: $d receiver(s) disconnected by the server; first: $(grep -m1 'disconnected' "$TMP/log/$name-load.err" | cut -c1-200)")
        ((o > 0)) && NOTES+=("$name: $o message(s) out of order or unknown")
        [[ $(kv deliveries "$out") == "$(kv expected "$out")" ]] ||
            NOTES+=("$name: $(kv deliveries "$out") of $(kv expected "$out") deliveries")
    fi
    alive "$pid" || NOTES+=("$name: the $srv server exited during the run: $(tail -n 3 "$TMP/log/$name-server.log" | tr '\n' ' ' | cut -c1-300)")
    stop_proc "$pid" TERM 10
    [[ $STOP_RC == killed ]] && NOTES+=("$name: $srv did not stop on SIGTERM within 10 s (killed)")
}

# ---------------------------------------------------------------- run

RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temporary directory $TMP; reps $REPS; messages $M10 / $M100 / $M1000 for N = 10 / 100 / 1000; window $WINDOW"

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
    for n in "${SIZES[@]}"; do
        for srv in "${SERVERS[@]}"; do run "$srv" "$n"; done
    done
    REPS_DONE=$rep
done

# ---------------------------------------------------------------- report

declare -A MED
for key in "${!RES[@]}"; do MED[$key]=$(median ${RES[$key]}); done
val() { echo "${MED["$1|$2|$3"]:-}"; }
fmt() { [[ -n $2 ]] && awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }' || echo "—"; }
fmtk() { [[ -n $1 ]] && awk -v v="$1" 'BEGIN { s = sprintf("%.0f", v); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); print s }' || echo "—"; }
ratio() {
    [[ -n $1 && -n $2 ]] || { echo "—"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "—"; else printf "%.2fx", a / b }'
}

REPORT=$TMP/report.md
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
{
    cores=$(nproc)
    cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    mode="full run"; ((QUICK)) && mode="quick smoke run (--quick; small loads, not for comparison)"

    echo "## $RUN_DATE — chat fan-out benchmark (bench/chat.sh), $mode"
    echo
    echo "- Machine: $cores CPUs ($cpu_model), $mem_total RAM, kernel $(uname -r). Versions: $NETWALL_DESC; $NGIRCD_DESC (Debian package)."
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END."
    echo "- Load: bench/chat_load.c (C, one thread, epoll), on the same machine as the server (the two share the $cores cores)." \
        "N receivers join one channel over plaintext loopback; one more client sends M messages of about 60 bytes" \
        "(sequence number and send time in each), at most $WINDOW ahead of the slowest receiver, as fast as the server takes them." \
        "Deliveries/s = N x M / (last delivery read - first message written); latency = read time - send time over every delivery, one monotonic clock." \
        "M = $M10 / $M100 / $M1000 for N = 10 / 100 / 1,000. A fresh server for every run; medians of $REPS_DONE run(s)."
    echo "- Configured alike: netwall chat serve with plain_listen, open_registration = on, flood_rate 10000, flood_burst 100000," \
        "max_per_source and max_clients 5000, sendq 1 MiB, admin off, log_level warn;" \
        "ngircd in the foreground with its own config (no PAM, DNS or ident; MaxConnectionsIP 0, MaxJoins 0, MaxNickLength 30, MaxPenaltyTime 0)," \
        "the sender an IRC operator with user mode +F (relaxed flood protection; without it ngircd reads a few lines a second from a client)."
    echo "- Memory per idle client: PSS of the server process with 1,000 receivers joined and idle for a second, minus its PSS before the first connection, / 1,000 (from the N = 1,000 runs)."
    echo
    echo "| N receivers | M msgs | netwall deliveries/s | ngircd deliveries/s | netwall / ngircd | netwall p50 / p99 ms | ngircd p50 / p99 ms | server CPU (cores), netwall / ngircd |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in "${SIZES[@]}"; do
        echo "| $(fmtk "$n") | $(fmtk "${MSGS_FOR[$n]}") | $(fmtk "$(val rate netwall "$n")") | $(fmtk "$(val rate ngircd "$n")") |" \
            "$(ratio "$(val rate netwall "$n")" "$(val rate ngircd "$n")") |" \
            "$(fmt %.2f "$(val p50 netwall "$n")") / $(fmt %.2f "$(val p99 netwall "$n")") |" \
            "$(fmt %.2f "$(val p50 ngircd "$n")") / $(fmt %.2f "$(val p99 ngircd "$n")") |" \
            "$(fmt %.2f "$(val srv_cpu netwall "$n")") / $(fmt %.2f "$(val srv_cpu ngircd "$n")") |"
    done
    echo "| memory per idle client (1,000 joined) | | $(fmt '%.2f KiB' "$(val kib netwall 1000)") | $(fmt '%.2f KiB' "$(val kib ngircd 1000)") | | | | |"
    echo
    echo "Against the targets:"
    echo
    echo "| target | wanted | measured | |"
    echo "|---|---|---|---|"
    for n in "${SIZES[@]}"; do
        a=$(val rate netwall "$n"); b=$(val rate ngircd "$n")
        v="not measured"
        [[ -n $a && -n $b ]] && v=$(awk -v a="$a" -v b="$b" 'BEGIN { print (a >= b ? "met" : "missed") }')
        echo "| fan-out rate, N = $(fmtk "$n") | >= ngircd's | $(fmtk "$a") against $(fmtk "$b") deliveries/s | $v |"
    done
    k=$(val kib netwall 1000)
    v="not measured"; [[ -n $k ]] && v=$(awk -v k="$k" 'BEGIN { print (k < 8 ? "met" : "missed") }')
    echo "| memory per idle client | < 8 KiB | $(fmt '%.2f KiB' "$k") (ngircd $(fmt '%.2f KiB' "$(val kib ngircd 1000)")) | $v |"
    echo
    echo "Time to connect, register and join the 1,000 receivers (median): netwall $(fmt '%.2f s' "$(val setup netwall 1000)"), ngircd $(fmt '%.2f s' "$(val setup ngircd 1000)")" \
        "(8 at a time; ngircd listens with a backlog of 10). Load generator CPU during the sends (cores), netwall / ngircd:" \
        "$(for n in "${SIZES[@]}"; do printf 'N = %s: %s / %s; ' "$(fmtk "$n")" "$(fmt %.2f "$(val load_cpu netwall "$n")")" "$(fmt %.2f "$(val load_cpu ngircd "$n")")"; done | sed 's/; $//')."
    echo
    if ((REPS_DONE > 1)); then
        echo "<details><summary>Every repetition</summary>"
        echo
        for f in rate p50 p99 secs srv_cpu load_cpu kib setup; do
            line=""
            for srv in "${SERVERS[@]}"; do
                for n in "${SIZES[@]}"; do
                    [[ -n ${RES["$f|$srv|$n"]:-} ]] && line+="${line:+; }$srv N=$n: ${RES["$f|$srv|$n"]}"
                done
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
        printf -- '- %s\n' "${NOTES[@]}"
        echo
    else
        echo "No receiver was disconnected, every message reached every receiver in order, in every run."
        echo
    fi
} >"$REPORT"

cat "$REPORT"

if ((RECORD)); then
    new=$TMP/RESULTS.new
    if [[ -f $RESULTS_FILE ]] && grep -qxF "$RESULTS_MARKER" "$RESULTS_FILE"; then
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

# Shared by the benchmark scripts (sourced, not run): the processes a script started, found
# again by PID and start time (PIDs get reused), and stopped with their descendants.
# The sourcing script declares PIDS (array), PID_START (assoc), TMP, KEEP_TMP and log(), and
# sets CLEANUP_WAIT (seconds each process gets after SIGTERM) before calling cleanup.

# Benchmarks run as root on loopback; the daemons may stay root here.
export NETWALL_ALLOW_ROOT=1

# descendants PID... -> those PIDs and all their descendants, one per line
descendants() {
    ps -e -o pid=,ppid= | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) want[r[i]] = 1 }
        { pp[$1] = $2; pid[NR] = $1 }
        END {
            do { changed = 0
                 for (i in pid) { p = pid[i]; if (!(p in want) && (pp[p] in want)) { want[p] = 1; changed = 1 } }
            } while (changed)
            for (p in want) print p
        }'
}

starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# roots that are still the very processes started here (PIDs get reused), with their descendants
our_processes() {
    local p roots=()
    for p in "${PIDS[@]}"; do
        [[ -n ${PID_START[$p]:-} && $(starttime "$p") == "${PID_START[$p]}" ]] && roots+=("$p")
    done
    ((${#roots[@]})) && descendants "${roots[@]}"
}

alive() {   # running and not a zombie
    local st
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# wait_gone SECONDS PID... : until none of them is running
wait_gone() {
    local limit=$1 p any _
    shift
    for _ in $(seq 1 $((limit * 10))); do
        any=0
        for p in "$@"; do alive "$p" && { any=1; break; }; done
        ((any)) || return 0
        sleep 0.1
    done
    return 1
}

cleanup() {
    local rc=$? all p i
    trap - EXIT INT TERM
    if ((${#PIDS[@]})); then
        all=$(our_processes)
        [[ -n $all ]] && log "stopping $(wc -w <<<"$all") background processes"
        # newest first: clients and relays go before the servers they use, so server-side
        # sessions end on their own and are reaped by their parents
        for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
            p=${PIDS[i]}
            grep -qx "$p" <<<"$all" || continue
            kill -TERM "$p" 2>/dev/null
            wait_gone "${CLEANUP_WAIT:-3}" "$p"
        done
        # whatever is left of their process trees
        for p in $all; do alive "$p" && kill -TERM "$p" 2>/dev/null; done
        wait_gone 3 $all
        for p in $all; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
        wait 2>/dev/null
    fi
    if [[ -n $TMP && -d $TMP ]]; then
        if ((KEEP_TMP)); then log "kept temporary directory $TMP"; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}

# apt_install PKG... : installs Debian packages (as root) without starting their services
apt_install() {
    local added_policy=0 rc
    log "installing missing packages: $*"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
    rc=$?
    ((added_policy)) && rm -f /usr/sbin/policy-rc.d
    return $rc
}

# The processes a script starts: spawn NAME CMD... runs CMD in the background with its
# output in $TMP/log/NAME.log (PID in LAST_PID) and tracks it for cleanup.
LAST_PID=""
STOP_RC=""
track() { PIDS+=("$1"); PID_START[$1]=$(starttime "$1"); }
untrack() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    unset "PID_START[$1]"
}
spawn() {
    local name=$1; shift
    "$@" >"$TMP/log/$name.log" 2>&1 &
    LAST_PID=$!
    track "$LAST_PID"
}

# stop_proc PID SIGNAL SECONDS : signal it, wait for it, KILL if it outlives SECONDS.
# Sets STOP_RC to its exit status (or "killed").
stop_proc() {
    local pid=$1 sig=$2 limit=$3
    STOP_RC=""
    kill -"$sig" "$pid" 2>/dev/null
    if ! wait_gone "$limit" "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        STOP_RC=killed
    fi
    wait "$pid" 2>/dev/null
    local rc=$?
    [[ -z $STOP_RC ]] && STOP_RC=$rc
    untrack "$pid"
}

# median VALUES... : the median (mean of the middle two for an even count)
median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) exit
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

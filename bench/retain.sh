#!/usr/bin/env bash
# Retention benchmark: netwall intake with retain_days on a store of 1,000,000 messages
# (bench/search.sh's builder: 90 days of delivered, ignored and dead messages), with
# retain_days chosen so that the older half goes. Per backend, in one run:
#
#   1. the ACK rate without pruning: intake on a fresh copy of the store, mllp_load sends
#      --load RDE^O11 orders over --conns connections (received: never pruned)
#   2. the same load at once after an intake with retain_days starts, while its first
#      pass prunes (the line says whether the pass was still running when the load ended)
#   3. the same load again once the pass is over, without pruning
#   and the time the pass took, what it removed, and the store's size before and after
#   (SQLite: the file with its WAL checkpointed away; PostgreSQL: pg_database_size).
#
# Usage: bench/retain.sh [--n N] [--load N] [--conns C] [--backends "sqlite postgresql"]
#                        [--dir DIR] [--no-record]
#   --dir DIR   where search.sh's stores are kept and reused (default /var/tmp/nw-retain)
# As root, loopback only; every process started here is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
NETWALL=${NETWALL:-$REPO/build/netwall}
export NETWALL_ALLOW_ROOT=1
N=1000000
LOAD=20000
CONNS=16
BACKENDS="sqlite"
DIR=/var/tmp/nw-retain
RECORD=1
while [[ $# -gt 0 ]]; do
	case $1 in
	--n) N=$2; shift 2 ;;
	--load) LOAD=$2; shift 2 ;;
	--conns) CONNS=$2; shift 2 ;;
	--backends) BACKENDS=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--no-record) RECORD=0; shift ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "retain.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ -x $NETWALL ]] || { echo "retain.sh: build netwall first (make)" >&2; exit 1; }
log() { printf '%s retain.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
TMP=$(mktemp -d /var/tmp/netwall-retain.XXXXXX)
chmod 755 "$TMP"
PIDS=()
PG_PID=""
P_PG=23150
P_MLLP=23170
P_ADMIN=23171
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	[[ -n $PG_PID ]] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -pthread -Wall -o "$TMP/mllp_load" bench/mllp_load.c
T0=1790000000000 # search.sh's first message; its N messages span 90 days
NOW=$(date +%s%3N)
# the older half: last changed before T0 + 45 days
DAYS=$(awk -v now="$NOW" -v t0="$T0" 'BEGIN { printf "%.4f", (now - t0 - 45 * 86400000) / 86400000 }')
awk -v d="$DAYS" 'BEGIN { exit !(d > 0) }' || { echo "retain.sh: the clock is before the store's middle" >&2; exit 1; }

# intake NAME STORE RETAIN_DAYS: starts an intake, waits for its admin listener; INTAKE_PID
intake() {
	cat >"$TMP/$1.ini" <<EOF
[intake]
listen = 127.0.0.1:$P_MLLP
admin = 127.0.0.1:$P_ADMIN
store = $2
log_level = info
retain_days = $3
EOF
	"$NETWALL" intake -c "$TMP/$1.ini" >"$TMP/$1.log" 2>&1 &
	INTAKE_PID=$!
	PIDS+=("$INTAKE_PID")
	for _ in $(seq 600); do
		curl -fs "http://127.0.0.1:$P_ADMIN/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$INTAKE_PID" 2>/dev/null || { cat "$TMP/$1.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "retain.sh: intake $1 did not start" >&2
	exit 1
}
stop() { kill -TERM "$INTAKE_PID"; wait "$INTAKE_PID" || true; }
# load RUN: one mllp_load run; RATE and P99
load() {
	local out
	out=$(timeout 300 "$TMP/mllp_load" -h 127.0.0.1 -p "$P_MLLP" -c "$CONNS" -n "$LOAD" -d 0 -r "$1")
	RATE=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$out")
	P99=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$out")
	log "$1: $out"
}
field() { sed -n "s/.*event=pruned.* $1=\([0-9.]*\).*/\1/p" "$2" | tail -n 1; }

declare -A R
run() { # $1 backend, $2 store spec, $3 size command
	local b=$1 spec=$2 size
	R[$b,before]=$($3)
	intake "$b-off" "$spec" 0
	load "${b:0:2}off"
	R[$b,rate_off]=$RATE R[$b,p99_off]=$P99
	stop
	intake "$b-on" "$spec" "$DAYS"
	load "${b:0:2}on"
	R[$b,rate_on]=$RATE R[$b,p99_on]=$P99
	if grep -q 'event=pruned' "$TMP/$b-on.log"; then R[$b,during]="no (the pass had ended)"; else R[$b,during]="yes"; fi
	for _ in $(seq 3600); do grep -q 'event=pruned' "$TMP/$b-on.log" && break; sleep 1; done
	R[$b,pruned]=$(field messages "$TMP/$b-on.log")
	R[$b,bytes]=$(field bytes "$TMP/$b-on.log")
	R[$b,secs]=$(field seconds "$TMP/$b-on.log")
	R[$b,mid]=$($3) # the pass ends with a checkpoint; the load while it ran added LOAD
	load "${b:0:2}after"
	R[$b,rate_after]=$RATE R[$b,p99_after]=$P99
	stop
	R[$b,after]=$($3)
	log "$b: pruned ${R[$b,pruned]} messages in ${R[$b,secs]} s; size ${R[$b,before]} -> ${R[$b,after]} MiB"
}

sqlite_size() { echo $(($(stat -c %s "$TMP/work.db") / 1048576)); }
pg_size() { psql -h 127.0.0.1 -p $P_PG -U postgres -Atc "SELECT pg_database_size('retain') / 1048576"; }

for b in $BACKENDS; do
	bench/search.sh --n "$N" --backends "$b" --dir "$DIR" --build-only --no-record
	case $b in
	sqlite)
		log "sqlite: copying the store"
		cp "$DIR/search-$N.db" "$TMP/work.db"
		run sqlite "$TMP/work.db" sqlite_size
		;;
	postgresql)
		PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" \
			-D "$DIR/pg/data" -p $P_PG -k "$DIR/pg" -c listen_addresses=127.0.0.1 \
			-c shared_buffers=256MB >"$TMP/pg.log" 2>&1 &
		PG_PID=$!
		for _ in $(seq 100); do psql -h 127.0.0.1 -p $P_PG -U postgres -Atc 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
		log "postgresql: copying the store"
		psql -h 127.0.0.1 -p $P_PG -U postgres -qc "DROP DATABASE IF EXISTS retain" \
			-c "CREATE DATABASE retain TEMPLATE search$N" >/dev/null
		# search.sh wrote the ids itself: the identity goes on after them
		psql -h 127.0.0.1 -p $P_PG -U postgres -d retain -qc "ANALYZE" -c "SELECT setval(
			pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages))" >/dev/null
		run postgresql "postgresql://postgres@127.0.0.1:$P_PG/retain" pg_size
		psql -h 127.0.0.1 -p $P_PG -U postgres -qc "DROP DATABASE retain" >/dev/null
		;;
	esac
done

{
	printf '| | %s |\n|---|' "${BACKENDS// / | }"
	for b in $BACKENDS; do printf '%s' '---:|'; done
	printf '\n'
	row() { printf '| %s |' "$1"; for b in $BACKENDS; do printf ' %s |' "${R[$b,$2]}"; done; printf '\n'; }
	row "store size before, MiB" before
	row "messages pruned (retain_days = $DAYS)" pruned
	row "bytes pruned (raw messages)" bytes
	row "time of the pass, s" secs
	row "store size once the pass ended, MiB" mid
	row "store size at the end (3 loads added), MiB" after
	row "ACK rate without pruning (before), msgs/s" rate_off
	row "ACK rate while pruning, msgs/s" rate_on
	row "ACK rate without pruning (after), msgs/s" rate_after
	printf '| ACK p99 without / while / after, ms |'
	for b in $BACKENDS; do printf ' %s / %s / %s |' "${R[$b,p99_off]}" "${R[$b,p99_on]}" "${R[$b,p99_after]}"; done
	printf '\n'
	row "the pass still ran when the load ended" during
} >"$TMP/table.md"
cat "$TMP/table.md"

if ((RECORD)); then
	/usr/bin/python3 - "$TMP/table.md" "$N" "$LOAD" "$CONNS" "$(git rev-parse --short HEAD)" <<'PY'
import sys, datetime
table, n, load, conns, rev = sys.argv[1:6]
path = "bench/RESULTS.md"
text = open(path).read()
head, sep, rest = text.partition("\n## ")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
entry = (f"## Retention on {int(n):,} messages ({now}, bench/retain.sh, {rev})\n\n"
         f"`bench/retain.sh`: bench/search.sh's store of {int(n):,} messages (90 days; delivered, "
         "5 % ignored, 0.1 % dead), an intake started with `retain_days` set so that the older "
         f"half goes (batches of 200, each followed by a pause twice as long as it took). ACK rate: bench/mllp_load, {int(load):,} "
         f"RDE^O11 of about 1 KiB over {conns} connections, first without pruning, then at once "
         "after the pruning intake starts, then again once its pass is over. 2-core machine, one "
         "run.\n\n" + open(table).read())
open(path, "w").write(head + "\n" + entry + "\n" + sep.lstrip("\n") + rest if sep else text + "\n" + entry)
PY
	log "recorded in bench/RESULTS.md"
fi

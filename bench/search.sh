#!/usr/bin/env bash
# Search benchmark: how long `netwall messages search` takes on a store of 1,000,000
# messages, on SQLite and on PostgreSQL, for each kind of search and a few combinations.
#
# The store is written directly with SQL (sqlite3, psql), not through MLLP: the schema is
# made by netwall itself (`netwall messages count` on an empty store), then one statement
# fills it with N messages spread over 90 days: 50,000 patients of 20 messages each (one
# PID-3 identifier, MRNn^^^HOSP^MR; 2,000 family names), one order of two numbers per
# message (ORC-2 ORD-n, ORC-3 F-n), 20 sending applications at 3 facilities, types RDE^O11
# (90 %), RAS^O17 (5 %), ORU^R01 (5 %), states delivered, ignored (5 %) and dead (0.1 %).
# The index rows are the ones the intake would write for those messages.
#
# Each search runs --reps times as a whole CLI invocation (process start, store open, the
# query, the audit record, the output as JSON); the median wall time is reported. SQLite is
# not ANALYZEd (a store as the intake leaves it); PostgreSQL is (as autovacuum does).
#
# Usage: bench/search.sh [--n N] [--reps R] [--backends "sqlite postgresql"]
#                        [--dir DIR] [--migrate] [--no-record]
#   --dir DIR   keep the stores in DIR and reuse them on the next run (else a temporary
#               directory, removed at the end)
#   --migrate   also time the migration of the SQLite store from schema 2 (its index and
#               audit trail dropped, then netwall opens it and indexes every message again)
#   --build-only  make the stores (in --dir, to be reused) and stop: bench/retain.sh's builder
# As root (PostgreSQL runs as the postgres user), loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
NETWALL=${NETWALL:-$REPO/build/netwall}
export NETWALL_ALLOW_ROOT=1
N=1000000
REPS=7
BACKENDS="sqlite postgresql"
DIR=""
MIGRATE=0
RECORD=1
BUILD_ONLY=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--n) N=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--backends) BACKENDS=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--migrate) MIGRATE=1; shift ;;
	--no-record) RECORD=0; shift ;;
	--build-only) BUILD_ONLY=1; shift ;;
	-h | --help) sed -n '2,27p' "$0"; exit 0 ;;
	*) echo "search.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ -x $NETWALL ]] || { echo "search.sh: build netwall first (make)" >&2; exit 1; }
for t in sqlite3 psql; do
	command -v $t >/dev/null || { echo "search.sh: $t is missing (Debian package ${t/psql/postgresql-client})" >&2; exit 1; }
done
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

log() { printf '%s search.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
TMP=$(mktemp -d /var/tmp/netwall-search.XXXXXX)
[[ -n $DIR ]] || DIR=$TMP
mkdir -p "$DIR"
chmod 755 "$TMP" "$DIR" # PostgreSQL runs as postgres, below one of them
PG_PID=""
P_PG=23150
cleanup() {
	[[ -n $PG_PID ]] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=1790000000000 # 2026-09-21T...Z: the first message
STEP=$((90 * 86400 * 1000 / N)) # ms between messages: N over 90 days

# The columns of message i, as SQL over i, for both databases (|| and % are the same).
sql_fill() { # $1: sqlite or pg
	local raw digest date ack
	if [[ $1 == sqlite ]]; then
		raw="CAST(printf('MSH|^~\\&|PHARM%d|SITE%d|EMAR|WARD|%s||%s|C%d|P|2.5.1'||char(13)||'PID|1||MRN%d^^^HOSP^MR||FAM%d^PAT%d||19600101|F'||char(13)||'ORC|NW|ORD-%d|F-%d'||char(13)||'RXE|^BID^HL70335|00093-7146^Metoprolol 25 mg tablet^NDC|25||mg'||char(13), i % 20, i % 3, d, t, i, i % 50000, i % 2000, i % 50000, i, i) AS BLOB)"
		digest="randomblob(32)"
		date="strftime('%Y%m%d%H%M%S', ($T0 + i * $STEP) / 1000, 'unixepoch')"
		ack="CAST('MSA|AA' AS BLOB)"
	else
		raw="convert_to(format('MSH|^~\\&|PHARM%s|SITE%s|EMAR|WARD|%s||%s|C%s|P|2.5.1'||chr(13)||'PID|1||MRN%s^^^HOSP^MR||FAM%s^PAT%s||19600101|F'||chr(13)||'ORC|NW|ORD-%s|F-%s'||chr(13)||'RXE|^BID^HL70335|00093-7146^Metoprolol 25 mg tablet^NDC|25||mg'||chr(13), i % 20, i % 3, d, t, i, i % 50000, i % 2000, i % 50000, i, i), 'UTF8')"
		digest="sha256(int8send(i))"
		date="to_char(to_timestamp(($T0 + i * $STEP) / 1000) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS')"
		ack="'MSA|AA'::bytea"
	fi
	cat <<EOF
INSERT INTO messages (id, sending_app, sending_facility, control_id, type, version, peer,
  state, received_ms, updated_ms, size, raw, ack, attempts, http_status, digest,
  reused_control_id, message_date) $([[ $1 == pg ]] && echo OVERRIDING SYSTEM VALUE)
SELECT i, 'PHARM' || (i % 20), 'SITE' || (i % 3), 'C' || i, t, '2.5.1', '127.0.0.1:40000',
  CASE WHEN i % 1000 = 0 THEN 'dead' WHEN i % 20 = 0 THEN 'ignored' ELSE 'delivered' END,
  $T0 + i * $STEP, $T0 + i * $STEP, 400, $raw, $ack, 1, 200, $digest,
  $([[ $1 == pg ]] && echo false || echo 0), d
FROM (SELECT i, $date AS d, CASE WHEN i % 20 = 0 THEN 'ORU^R01' WHEN i % 20 = 10 THEN 'RAS^O17'
  ELSE 'RDE^O11' END AS t FROM $SERIES) AS s;
INSERT INTO message_keys (kind, value, message_id, authority, id_type)
  SELECT 'patient', 'MRN' || (i % 50000), i, 'HOSP', 'MR' FROM $SERIES
  UNION ALL SELECT 'name', 'FAM' || (i % 2000), i, '', '' FROM $SERIES
  UNION ALL SELECT 'order', 'ORD-' || i, i, '', '' FROM $SERIES
  UNION ALL SELECT 'order', 'F-' || i, i, '', '' FROM $SERIES
  UNION ALL SELECT 'control', 'C' || i, i, '', '' FROM $SERIES;
-- the keys of the newest 13,107 messages pending (65,535 keys: as many as the intake's
-- indexer lets wait while commits keep coming), which every search by a key scans
INSERT INTO message_keys_pending (kind, value, message_id, authority, id_type)
  SELECT kind, value, message_id, authority, id_type FROM message_keys
  WHERE message_id > $N - 13107;
DELETE FROM message_keys WHERE message_id > $N - 13107;
EOF
}

make_sqlite() {
	local db=$DIR/search-$N.db
	STORE=$db
	[[ -s $db ]] && { log "sqlite: reusing $db"; return; }
	log "sqlite: writing $N messages into $db"
	"$NETWALL" messages --store "$db" count >/dev/null
	SERIES="(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N) SELECT i FROM n)"
	local t=$(date +%s)
	{ echo "PRAGMA synchronous = OFF; BEGIN;"; sql_fill sqlite; echo "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);"; } |
		sqlite3 "$db" >/dev/null
	log "sqlite: written in $(($(date +%s) - t)) s, $(du -m "$db" | cut -f1) MiB"
}

make_pg() {
	local d=$DIR/pg
	[[ -n $PG_BIN ]] || { echo "search.sh: no PostgreSQL server (Debian package postgresql)" >&2; exit 1; }
	if [[ ! -d $d/data ]]; then
		mkdir -p "$d" && chown postgres:postgres "$d"
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/initdb" -D "$d/data" \
			-U postgres -A trust -E UTF8 --locale=C >"$TMP/initdb.log" 2>&1 ||
			{ cat "$TMP/initdb.log" >&2; exit 1; }
	fi
	setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" -D "$d/data" \
		-p $P_PG -k "$d" -c listen_addresses=127.0.0.1 -c shared_buffers=256MB >"$TMP/pg.log" 2>&1 &
	PG_PID=$!
	for _ in $(seq 100); do psql -h 127.0.0.1 -p $P_PG -U postgres -Atc 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
	STORE="postgresql://postgres@127.0.0.1:$P_PG/search$N"
	if psql -h 127.0.0.1 -p $P_PG -U postgres -Atc "select 1 from pg_database where datname = 'search$N'" | grep -q 1; then
		log "postgresql: reusing database search$N"
		return
	fi
	psql -h 127.0.0.1 -p $P_PG -U postgres -qc "CREATE DATABASE search$N"
	"$NETWALL" messages --store "$STORE" count >/dev/null
	log "postgresql: writing $N messages"
	SERIES="generate_series(1::bigint, $N) AS g(i)"
	local t=$(date +%s)
	{ echo "SET synchronous_commit = off; BEGIN;"; sql_fill pg; echo "COMMIT; VACUUM ANALYZE;"; } |
		psql -h 127.0.0.1 -p $P_PG -U postgres -q -v ON_ERROR_STOP=1 "search$N" >/dev/null
	log "postgresql: written in $(($(date +%s) - t)) s"
}

median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# The searches: a label, then the arguments. Dates follow T0 and STEP.
DAY60=$(date -u -d @$(((T0 + 60 * 86400000) / 1000)) +%F)
DAY61=$(date -u -d @$(((T0 + 61 * 86400000) / 1000)) +%F)
LAST=$(date -u -d @$(((T0 + 89 * 86400000) / 1000)) +%F)
SEARCHES=(
	"patient|--patient MRN12345"
	"family name|--name fam123"
	"order (ORC-2)|--order ORD-777777"
	"order (ORC-3)|--order F-777777"
	"control ID|--control-id C555555"
	"sender|--sender PHARM7"
	"sender/facility|--sender PHARM7/SITE1"
	"type family|--type RAS"
	"type|--type ORU^R01"
	"state|--state dead"
	"message date (a day)|--date $DAY60"
	"received, one day|--since $DAY60 --until $DAY60"
	"received, since a day|--since $LAST"
	"patient + state|--patient MRN12345 --state delivered"
	"patient + since|--patient MRN12345 --since $DAY60"
	"state + type|--state dead --type ORU"
	"sender + type + since|--sender PHARM0 --type ORU --since $DAY61"
)

declare -A RESULT COUNT
run_searches() { # $1 backend
	local s label args i t0 t1 times n
	for s in "${SEARCHES[@]}"; do
		label=${s%%|*}
		args=${s#*|}
		times=()
		for ((i = 0; i < REPS; i++)); do
			t0=$(date +%s%N)
			# shellcheck disable=SC2086
			"$NETWALL" messages --store "$STORE" search $args --json --reason benchmark >"$TMP/out.json"
			t1=$(date +%s%N)
			times+=("$(((t1 - t0) / 1000))")
		done
		n=$(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$TMP/out.json")
		RESULT[$1|$label]=$(awk -v us="$(median "${times[@]}")" 'BEGIN { printf "%.1f", us / 1000 }')
		COUNT[$label]=$n
		log "$1: $label ($args): ${RESULT[$1|$label]} ms, $n found"
	done
}

MIGRATE_S=""
for b in $BACKENDS; do
	case $b in
	sqlite) make_sqlite ;;
	postgresql) make_pg ;;
	*) echo "search.sh: unknown backend $b" >&2; exit 2 ;;
	esac
	((BUILD_ONLY)) && continue
	run_searches "$b"
	if [[ $b == sqlite && $MIGRATE == 1 ]]; then
		cp "$STORE" "$TMP/v2.db"
		sqlite3 "$TMP/v2.db" "DROP TABLE message_keys_pending; DROP TABLE message_keys;
			DROP TABLE audit;
			DROP INDEX messages_type; DROP INDEX messages_sender; DROP INDEX messages_received;
			DROP INDEX messages_date; ALTER TABLE messages DROP COLUMN message_date;
			ALTER TABLE messages DROP COLUMN warnings; PRAGMA user_version = 2; VACUUM;"
		t0=$(date +%s%N)
		"$NETWALL" messages --store "$TMP/v2.db" count >/dev/null
		MIGRATE_S=$(awk -v ns="$(($(date +%s%N) - t0))" 'BEGIN { printf "%.0f", ns / 1e9 }')
		log "sqlite: migrating $N messages from schema 2 took $MIGRATE_S s"
		rm -f "$TMP/v2.db"*
	fi
done

((BUILD_ONLY)) && exit 0

# The table, in Markdown.
{
	printf '| search | found (of %s) |' "$N"
	for b in $BACKENDS; do printf ' %s, ms |' "$b"; done
	printf '\n|---|---:|'
	for b in $BACKENDS; do printf '%s' '---:|'; done
	printf '\n'
	for s in "${SEARCHES[@]}"; do
		label=${s%%|*}
		printf '| %s: `%s` | %s |' "$label" "${s#*|}" "${COUNT[$label]}"
		for b in $BACKENDS; do printf ' %s |' "${RESULT[$b|$label]}"; done
		printf '\n'
	done
} >"$TMP/table.md"
cat "$TMP/table.md"
[[ -n $MIGRATE_S ]] && echo "SQLite migration from schema 2 of $N messages: $MIGRATE_S s"

if ((RECORD)); then
	/usr/bin/python3 - "$TMP/table.md" "$N" "$REPS" "$MIGRATE_S" "$(git rev-parse --short HEAD)" <<'PY'
import sys, datetime
table, n, reps, migrate, rev = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
path = "bench/RESULTS.md"
text = open(path).read()
head, sep, rest = text.partition("\n## ")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
entry = (f"## Search on {int(n):,} messages ({now}, bench/search.sh, {rev})\n\n"
         f"`bench/search.sh`: a store of {int(n):,} messages written directly with SQL (the index "
         "rows the intake would write), then each search as a whole `netwall messages search "
         f"... --json` run (process start, store open, query, audit record, output), median of "
         f"{reps} runs, wall time. 2-core machine.\n\n" + open(table).read())
if migrate:
    entry += f"\n- SQLite store of schema 2 migrated (every message read and indexed): {migrate} s.\n"
open(path, "w").write(head + "\n" + entry + "\n" + sep.lstrip("\n") + rest if sep else text + "\n" + entry)
PY
	log "recorded in bench/RESULTS.md"
fi

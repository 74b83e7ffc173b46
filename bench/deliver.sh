#!/usr/bin/env bash
# Delivery benchmark: does the intake's delivery worker keep pace with intake? 16 senders
# (netwall send -c 16) push N RDE^O11 messages into netwall intake (SQLite, durable ACKs)
# whose [deliver] posts every accepted message to an EMAR API, which is either
#
#   nginx    answering 200 at once (the ceiling of the delivery worker itself), or
#   stand-in tests/integration/helpers/emar.py (one Python process, what make run uses)
#
# and measures the ACK rate, the time until the last message is delivered (from the first
# sent), and how long delivery trails the last ACK. Medians of --reps runs; every run on a
# fresh store; each message must reach the API exactly once (nginx logs the Idempotency-Key).
#
# Usage: bench/deliver.sh [--n N] [--reps R] [--no-record]      (as root, loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
NETWALL=${NETWALL:-$REPO/build/netwall}
export NETWALL_ALLOW_ROOT=1 # a benchmark on loopback, run as root
N=20000
REPS=3
RECORD=1
while [[ $# -gt 0 ]]; do
	case $1 in
	--n) N=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--no-record) RECORD=0; shift ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "deliver.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ -x $NETWALL ]] || { echo "deliver.sh: build netwall first (make)" >&2; exit 1; }

P_INTAKE=23100 P_ADMIN=23101 P_API=23102
TMP=$(mktemp -d /var/tmp/netwall-deliver.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

/usr/bin/python3 - "$N" >"$TMP/m.hl7" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    sys.stdout.write(
        "MSH|^~\\&|PHARMACY|ST-MARY|EMAR|WARD-3|20261122101500||RDE^O11^RDE_O11|D%07d|P|2.5.1\n"
        "PID|1||%07d^^^HOSP^MR||DOE^JANE^Q||19600101|F\n"
        "PV1|1|I|WARD-3^301^1\n"
        "ORC|NW|ORD%07d|||||^^^20261122\n"
        "RXE|^BID^HL70335|00093-7146^Metoprolol tartrate 25 mg tablet^NDC|25||mg|TAB\n"
        "RXR|PO^Oral^HL70162\n" % (i, 100000 + i, i))
PY

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$P_ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'; }
now() { date +%s.%N; }

start_api() { # start_api nginx|stand-in
	mkdir -p "$TMP/api"
	: >"$TMP/api/access.log"
	if [[ $1 == nginx ]]; then
		cat >"$TMP/api/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $TMP/api/error.log;
pid $TMP/api/nginx.pid;
events { worker_connections 1024; }
http {
    log_format key '\$http_idempotency_key';
    access_log $TMP/api/access.log key;
    client_body_temp_path $TMP/api/body;
    server {
        listen 127.0.0.1:$P_API;
        location / { client_body_buffer_size 64k; return 200 '{"ok":true}'; }
    }
}
EOF
		nginx -p "$TMP/api" -c "$TMP/api/nginx.conf" &
	else
		/usr/bin/python3 "$REPO/tests/integration/helpers/emar.py" --port "$P_API" \
			--log "$TMP/api/emar.jsonl" >"$TMP/api/emar.out" 2>&1 &
	fi
	API_PID=$!
	PIDS+=("$API_PID")
	wait_port "$P_API"
}

distinct_deliveries() { # distinct_deliveries nginx|stand-in -> "lines distinct"
	if [[ $1 == nginx ]]; then
		echo "$(wc -l <"$TMP/api/access.log") $(sort -u "$TMP/api/access.log" | wc -l)"
	else
		/usr/bin/python3 -c 'import json,sys
ids=[json.loads(l)["idempotency_key"] for l in open(sys.argv[1]) if l.strip()]
print(len(ids), len(set(ids)))' "$TMP/api/emar.jsonl"
	fi
}

run() { # run nginx|stand-in -> "ack_rate e2e_rate lag"
	local api=$1 t0 t1 t2 d
	rm -f "$TMP"/i.db*
	start_api "$api"
	cat >"$TMP/i.ini" <<EOF
[intake]
listen = 127.0.0.1:$P_INTAKE
store = $TMP/i.db
admin = 127.0.0.1:$P_ADMIN
log_level = warn
[deliver]
url = http://127.0.0.1:$P_API/emar/hl7
EOF
	"$NETWALL" intake -c "$TMP/i.ini" 2>"$TMP/intake.log" &
	local ipid=$!
	PIDS+=("$ipid")
	wait_port "$P_INTAKE"
	t0=$(now)
	"$NETWALL" send -q -c 16 "127.0.0.1:$P_INTAKE" "$TMP/m.hl7" >/dev/null
	t1=$(now)
	for _ in $(seq 6000); do
		d=$(metric netwall_intake_delivered_total)
		[[ ${d%.*} -ge $N ]] 2>/dev/null && break
		sleep 0.02
	done
	t2=$(now)
	read -r lines distinct <<<"$(distinct_deliveries "$api")"
	kill -TERM "$ipid" "$API_PID" 2>/dev/null || true
	wait "$ipid" "$API_PID" 2>/dev/null || true
	if [[ ${d%.*} -lt $N || $distinct -ne $N ]]; then
		echo "deliver.sh: $api: delivered ${d:-?} of $N, the API saw $distinct distinct ($lines in all)" >&2
		exit 1
	fi
	awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" \
		'BEGIN { printf "%.0f %.0f %.2f\n", n / (b - a), n / (c - a), c - b }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A ACK E2E LAG
for api in nginx stand-in; do
	a=() e=() l=()
	for r in $(seq "$REPS"); do
		read -r x y z <<<"$(run "$api")"
		echo "  $api run $r: ACK $x msgs/s, all delivered at $y msgs/s, $z s after the last ACK"
		a+=("$x") e+=("$y") l+=("$z")
	done
	ACK[$api]=$(printf '%s\n' "${a[@]}" | median)
	E2E[$api]=$(printf '%s\n' "${e[@]}" | median)
	LAG[$api]=$(printf '%s\n' "${l[@]}" | median)
done

out=$(
	echo "## $(date -u '+%a %b %d %H:%M:%S UTC %Y') — delivery benchmark (bench/deliver.sh)"
	echo
	echo "- $N RDE^O11 messages from 16 connections (netwall send -c 16) into netwall intake on SQLite (WAL, synchronous=FULL, ACK after the commit), [deliver] defaults (8 concurrent POSTs). Medians of $REPS runs; every message reached the API exactly once (distinct Idempotency-Keys = $N)."
	echo "- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). 2 cores shared by the senders, the intake, the API."
	echo
	echo "| EMAR API | ACK msgs/s | delivered msgs/s (first sent to last delivered) | delivery trails the last ACK by |"
	echo "|---|---:|---:|---:|"
	echo "| nginx, answers 200 at once | ${ACK[nginx]} | ${E2E[nginx]} | ${LAG[nginx]} s |"
	echo "| stand-in (emar.py, one Python process) | ${ACK[stand-in]} | ${E2E[stand-in]} | ${LAG[stand-in]} s |"
	echo
)
echo "$out"
if ((RECORD)); then
	/usr/bin/python3 - "$REPO/bench/RESULTS.md" "$out" <<'PY'
import sys
path, text = sys.argv[1], sys.argv[2]
marker = "<!-- runs below: newest first -->"
doc = open(path).read()
i = doc.index(marker) + len(marker)
open(path, "w").write(doc[:i] + "\n\n" + text.strip() + "\n" + doc[i:])
PY
	echo "deliver.sh: added to bench/RESULTS.md"
fi

#!/usr/bin/env bash
# Where the relay's time goes: perf profiles of the gateway and the agent while they carry
# (1) one iperf3 stream and (2) redis-benchmark GET at -c 50, on loopback high ports.
# Prints, per process and load, the share of samples by library and the top symbols.
# Usage: bench/profile.sh [--seconds N]     (as root; needs linux-perf, iperf3, redis)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
NETWALL=${NETWALL:-$REPO/build/netwall}
SECS=4
[[ ${1:-} == --seconds ]] && SECS=$2
for p in linux-perf iperf3 redis-server redis-tools; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >/dev/null
done
TMP=$(mktemp -d /tmp/netwall-profile.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
B=${BASE_PORT:-22000}
GW_FP=$("$NETWALL" keygen --out "$TMP" gateway 2>/dev/null)
AG_FP=$("$NETWALL" keygen --out "$TMP" agent 2>/dev/null)
cat > "$TMP/gw.ini" <<INI
[gateway]
listen = 127.0.0.1:$B
cert = gateway.crt
key = gateway.key
admin = off
log_level = warn
[agent agent]
fingerprint = $AG_FP
[service iperf]
listen = 127.0.0.1:$((B + 1))
agents = agent
[service redis]
listen = 127.0.0.1:$((B + 2))
agents = agent
INI
cat > "$TMP/ag.ini" <<INI
[agent]
gateway = 127.0.0.1:$B
gateway_fingerprint = $GW_FP
cert = agent.crt
key = agent.key
admin = off
log_level = warn
[service iperf]
target = 127.0.0.1:$((B + 3))
[service redis]
target = 127.0.0.1:$((B + 4))
INI
iperf3 -s -B 127.0.0.1 -p $((B + 3)) >/dev/null 2>&1 & pids+=($!)
redis-server --bind 127.0.0.1 --port $((B + 4)) --save '' --appendonly no >/dev/null 2>&1 & pids+=($!)
"$NETWALL" gateway -c "$TMP/gw.ini" 2>"$TMP/gw.log" & GP=$!; pids+=($GP)
"$NETWALL" agent -c "$TMP/ag.ini" 2>"$TMP/ag.log" & AP=$!; pids+=($AP)
sleep 1.5

report() { # report FILE TITLE
	echo "#### $2"
	echo
	echo '```'
	{ perf report -i "$1" --no-children --stdio --sort dso 2>/dev/null | grep -E '^ +[0-9]' |
		head -8; } || true
	echo '---- top symbols'
	{ perf report -i "$1" --no-children --stdio --sort dso,sym 2>/dev/null |
		grep -E '^ +[0-9]' | head -14; } || true
	echo '```'
	echo
}
profile() { # profile NAME LOADCMD...
	local name=$1; shift
	"$@" >/dev/null 2>&1 & local lp=$!
	sleep 0.7
	perf record -F 1999 -p "$GP" -o "$TMP/$name-gw.data" -- sleep "$SECS" >/dev/null 2>&1 &
	local r1=$!
	perf record -F 1999 -p "$AP" -o "$TMP/$name-ag.data" -- sleep "$SECS" >/dev/null 2>&1 &
	local r2=$!
	wait $r1 $r2 || true
	kill "$lp" 2>/dev/null || true
	wait "$lp" 2>/dev/null || true
	report "$TMP/$name-gw.data" "$name: gateway"
	report "$TMP/$name-ag.data" "$name: agent"
}
echo "### Profiles ($(date -u), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
profile "iperf3 one stream" iperf3 -c 127.0.0.1 -p $((B + 1)) -t $((SECS + 2))
profile "redis GET -c 50" redis-benchmark -p $((B + 2)) -c 50 -n 100000000 -t get -q

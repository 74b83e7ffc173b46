#!/usr/bin/env bash
# make run: the EMAR layout. A gateway publishes a demo web service and MLLP
# (127.0.0.1:2575); an agent carries both through its outbound tunnel, MLLP to the intake,
# which stores into run/intake.db and delivers to a stand-in for the EMAR API. Keys and
# configs are made under run/ (NETWALL_RUN_DIR) the first time and kept. Ctrl-C stops it all.
#
# As root, with network namespaces, the private half (agent, intake, demo service, EMAR
# stand-in) runs in a namespace of its own, joined to the host by a veth pair, whose
# firewall drops every inbound connection and lets out only the tunnel to the gateway;
# the script then shows a direct connection to the intake failing next to a message
# reaching it through the gateway. Otherwise (or with NETWALL_RUN_NETNS=off) everything
# runs on the host's loopback, as it says.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NETWALL=$ROOT/build/netwall
# A demo: started as root (make run installs packages), the daemons may stay root.
# Deployments set user = NAME instead (docs/deploy.md).
export NETWALL_ALLOW_ROOT=1
RUN_DIR=${NETWALL_RUN_DIR:-run}
mkdir -p "$RUN_DIR/www"
cd "$RUN_DIR"

NS=nwrun-priv                       # the private side's namespace
HOST_IP=198.18.77.1 PRIV_IP=198.18.77.2 # a /30 of the benchmarking range, on the veth pair
ns_down() {
	ip netns del "$NS" 2>/dev/null || true # takes its end of the veth pair, and so both
}
# Makes the private namespace and its firewall; prints why not and returns 1 if it cannot.
ns_up() {
	local err
	ns_down
	if ! err=$( {
		ip netns add "$NS" &&
		ip link add nwrun0 type veth peer name nwrun1 netns "$NS" &&
		ip addr add "$HOST_IP/30" dev nwrun0 && ip link set nwrun0 up &&
		ip -n "$NS" link set lo up &&
		ip -n "$NS" addr add "$PRIV_IP/30" dev nwrun1 && ip -n "$NS" link set nwrun1 up &&
		ip netns exec "$NS" nft -f - <<NFT
table inet netwall_run {
	counter inbound_syn_dropped { }
	chain input {
		type filter hook input priority 0; policy drop;
		iif "lo" accept
		ct state established,related accept
		tcp flags & (syn | ack) == syn counter name "inbound_syn_dropped" drop
	}
	chain output {
		type filter hook output priority 0; policy drop;
		oif "lo" accept
		ct state established,related accept
		ip daddr $HOST_IP tcp dport 7443 accept
	}
}
NFT
	} 2>&1); then
		ns_down
		echo "${err:-cannot make a network namespace}" | head -1
		return 1
	fi
}

# What a previous run left, or anything else on make run's ports, is in the way: say so
# rather than take its namespace's name or print that netwall runs when it could not listen.
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null &&
	left=$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ') && [ -n "$left" ]; then
	echo "make run: a previous run still has processes in network namespace $NS (PIDs $left);" >&2
	echo "  stop them (kill $left) and remove it (ip netns del $NS) first" >&2
	exit 1
fi
LAYOUT=loopback
WHY=""
if [ "${NETWALL_RUN_NETNS:-auto}" = off ]; then
	WHY="NETWALL_RUN_NETNS=off"
elif [ "$(id -u)" != 0 ]; then
	WHY="not root"
elif ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
	WHY="ip or nft missing (packages iproute2, nftables)"
elif WHY=$(ns_up); then
	LAYOUT=netns
	trap ns_down EXIT # until the daemons start (stop() below takes over)
fi
ports="8080 2575 7443 9100"                                   # on this host
[ "$LAYOUT" = netns ] || ports="$ports 8000 8088 9101 9102 12575" # ... and the private half
for port in $ports; do
	if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
		echo "make run: port $port is in use (another make run?): stop what listens there first" >&2
		exit 1
	fi
done
if [ "$LAYOUT" = netns ]; then
	TUNNEL_LISTEN=$HOST_IP:7443
	PRIV=(ip netns exec "$NS")
else
	TUNNEL_LISTEN=127.0.0.1:7443
	PRIV=()
fi

[ -f gateway.crt ] || "$NETWALL" keygen --out . gateway >/dev/null
[ -f agent.crt ] || "$NETWALL" keygen --out . agent >/dev/null
GW_FP=$("$NETWALL" fingerprint gateway.crt)
AG_FP=$("$NETWALL" fingerprint agent.crt)

# configs from before the intake existed, or made for the other layout, are rewritten
grep -q '^\[service mllp\]' gateway.ini 2>/dev/null || rm -f gateway.ini agent.ini
grep -q "^listen = $TUNNEL_LISTEN\$" gateway.ini 2>/dev/null || rm -f gateway.ini agent.ini
if [ ! -f gateway.ini ]; then
	cat > gateway.ini <<INI
; The public half: the only listening sockets.
[gateway]
listen = $TUNNEL_LISTEN
cert = gateway.crt
key = gateway.key
admin = 127.0.0.1:9100

[agent demo-agent]
fingerprint = $AG_FP

[service web]
listen = 127.0.0.1:8080
listen = [::1]:8080
agents = demo-agent

; HL7 v2 over MLLP for the pharmacy, on the conventional port; the intake learns the
; pharmacy's real address from the PROXY v2 header the agent writes
[service mllp]
listen = 127.0.0.1:2575
agents = demo-agent
proxy_protocol = v2
idle_timeout = 3600
INI
fi
if [ ! -f agent.ini ]; then
	cat > agent.ini <<INI
; The private half: dials out, never listens (except its loopback admin).
[agent]
gateway = $TUNNEL_LISTEN
gateway_fingerprint = $GW_FP
cert = agent.crt
key = agent.key
admin = 127.0.0.1:9101

[service web]
target = 127.0.0.1:8000

[service mllp]
target = 127.0.0.1:12575
INI
fi
if [ ! -f intake.ini ]; then
	cat > intake.ini <<INI
; The EMAR's HL7 v2 intake, private: only the agent connects to it.
[intake]
listen = 127.0.0.1:12575
proxy = on
allow = 127.0.0.0/8, ::1
store = intake.db
admin = 127.0.0.1:9102

; pharmacy orders, dispenses, administrations and give messages, and patient updates
[route]
accept = RDE, RDS, RAS, RGV, OMP, ADT
default = ignore

[deliver]
url = http://127.0.0.1:8088/emar/hl7
timeout = 10
max_attempts = 10
INI
fi
[ -f www/index.html ] || cat > www/index.html <<'HTML'
<!doctype html><title>netwall demo</title>
<h1>Hello through the wall</h1>
<p>This page is served by a private service on 127.0.0.1:8000. You reached it through the
gateway on 127.0.0.1:8080; the agent carried the connection over its outbound TLS tunnel.</p>
HTML

"$NETWALL" check gateway.ini >/dev/null
"$NETWALL" check agent.ini >/dev/null
"$NETWALL" check intake.ini >/dev/null

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping..."
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "$LAYOUT" = netns ] && ns_down
	echo "stopped."
}
trap stop INT TERM EXIT

# the private half: in the namespace when there is one (ip netns exec execs: $! is the
# program's own PID)
"${PRIV[@]}" python3 -m http.server 8000 --bind 127.0.0.1 --directory www >demo.log 2>&1 &
pids+=($!)
"${PRIV[@]}" python3 "$ROOT/tests/integration/helpers/emar.py" --port 8088 --log emar.jsonl &
pids+=($!)
"${PRIV[@]}" "$NETWALL" intake -c intake.ini 2>intake.log &
pids+=($!)
"${PRIV[@]}" "$NETWALL" agent -c agent.ini 2>agent.log &
pids+=($!)
# the public half
"$NETWALL" gateway -c gateway.ini 2>gateway.log &
pids+=($!)

# ready: the agent's tunnel up at the gateway, the demo service and the EMAR stand-in
# answering on the private side
ready() {
	curl -fs http://127.0.0.1:9100/metrics 2>/dev/null | grep -q '^netwall_tunnels_up [1-9]' &&
		"${PRIV[@]}" curl -fso /dev/null http://127.0.0.1:8000/ &&
		"${PRIV[@]}" curl -so /dev/null http://127.0.0.1:8088/
}
names=(demo-service emar-stand-in intake agent gateway)
up=0
for _ in $(seq 100); do
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			echo "make run: the ${names[$i]} exited at start: see $RUN_DIR/*.log" >&2
			exit 1
		fi
	done
	if ready; then
		up=1
		break
	fi
	sleep 0.1
done
[ "$up" = 1 ] || echo "not ready after 10 s: see $RUN_DIR/agent.log, demo.log"

ORDER=$ROOT/tests/data/rde_o11_v26_lfh_medreq.hl7
[ -f "$ORDER" ] || ORDER=$(ls "$ROOT"/tests/data/rde_o11_*.hl7 | head -1)
if [ "$LAYOUT" = netns ]; then
	cat <<MSG

Layout: the private side (agent, intake, demo service, EMAR stand-in) runs in network
namespace $NS ($PRIV_IP); its firewall drops every inbound connection and lets out only the
agent's tunnel to the gateway ($HOST_IP:7443). The gateway runs on this host.

MSG
	echo "A pharmacy order sent straight to the intake's address ($PRIV_IP:12575):"
	direct=$("$NETWALL" send --timeout 3 "$PRIV_IP:12575" "$ORDER" 2>&1 | head -1 || true)
	echo "  direct:          ${direct:-no answer}"
	via=$("$NETWALL" send --timeout 10 127.0.0.1:2575 "$ORDER" 2>&1 | head -1 || true)
	echo "  through the wall: $via"
	dropped=$(ip netns exec "$NS" nft list counter inet netwall_run inbound_syn_dropped 2>/dev/null |
		sed -n 's/.*packets \([0-9]*\).*/\1/p')
	echo "  inbound SYNs the private side dropped: ${dropped:-?}"
	ADMIN_PRIV="(in the namespace: ip netns exec $NS curl http://127.0.0.1:9101/)"
else
	echo
	echo "Layout: everything on this host's loopback (no private network namespace: $WHY)."
	ADMIN_PRIV="(on this host)"
fi

cat <<MSG

netwall is running (logs in $RUN_DIR/*.log):

  visitors:   curl http://127.0.0.1:8080/        (also http://[::1]:8080/)
              -> gateway (public listener) -> agent's outbound TLS 1.3 tunnel
              -> demo service on 127.0.0.1:8000 of the private side
  pharmacy:   build/netwall send 127.0.0.1:2575 tests/data/rde_o11_*.hl7
              -> gateway :2575 -> agent's tunnel -> intake 127.0.0.1:12575
              -> $RUN_DIR/intake.db (ACK after the commit) -> EMAR stand-in :8088
              (it prints a line per delivered message below)
  messages:   build/netwall messages -c $RUN_DIR/intake.ini [list|count|show ID]
  status:     http://127.0.0.1:9100/ (gateway) in a browser; the agent's :9101/ and the
              intake's :9102/ $ADMIN_PRIV; /metrics, /status and /healthz beside them
  gateway:    tunnel listener $TUNNEL_LISTEN
  configs:    $RUN_DIR/gateway.ini, agent.ini, intake.ini (netwall check FILE)

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true

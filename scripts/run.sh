#!/usr/bin/env bash
# make run: the EMAR layout on loopback. A gateway publishes a demo web service and MLLP
# (127.0.0.1:2575); an agent carries both through its outbound tunnel, MLLP to the intake,
# which stores into run/intake.db and delivers to a stand-in for the EMAR API. Keys and
# configs are made under run/ the first time and kept. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
NETWALL=$PWD/build/netwall
# A demo on loopback: started as root (make run installs packages), the daemons may stay root.
# Deployments set user = NAME instead (docs/deploy.md).
export NETWALL_ALLOW_ROOT=1
mkdir -p run/www
cd run

[ -f gateway.crt ] || "$NETWALL" keygen --out . gateway >/dev/null
[ -f agent.crt ] || "$NETWALL" keygen --out . agent >/dev/null
GW_FP=$("$NETWALL" fingerprint gateway.crt)
AG_FP=$("$NETWALL" fingerprint agent.crt)

# configs from before the intake existed are rewritten
grep -q '^\[service mllp\]' gateway.ini 2>/dev/null || rm -f gateway.ini agent.ini
if [ ! -f gateway.ini ]; then
	cat > gateway.ini <<INI
; The public half: the only listening sockets.
[gateway]
listen = 127.0.0.1:7443
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
gateway = 127.0.0.1:7443
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
	echo "stopped."
}
trap stop INT TERM EXIT

python3 -m http.server 8000 --bind 127.0.0.1 --directory www >demo.log 2>&1 &
pids+=($!)
python3 ../tests/integration/helpers/emar.py --port 8088 --log emar.jsonl &
pids+=($!)
"$NETWALL" intake -c intake.ini 2>intake.log &
pids+=($!)
"$NETWALL" gateway -c gateway.ini 2>gateway.log &
pids+=($!)
"$NETWALL" agent -c agent.ini 2>agent.log &
pids+=($!)

for _ in $(seq 50); do
	curl -fs http://127.0.0.1:9100/metrics 2>/dev/null | grep -q '^netwall_tunnels_up [1-9]' && break
	sleep 0.1
done

cat <<MSG

netwall is running (logs in run/*.log):

  visitors:   curl http://127.0.0.1:8080/        (also http://[::1]:8080/)
              -> gateway (public listener) -> agent's outbound TLS 1.3 tunnel
              -> demo service on 127.0.0.1:8000
  pharmacy:   build/netwall send 127.0.0.1:2575 tests/data/rde_o11_*.hl7
              -> gateway :2575 -> agent's tunnel -> intake 127.0.0.1:12575
              -> run/intake.db (ACK after the commit) -> EMAR stand-in :8088
              (it prints a line per delivered message below)
  messages:   build/netwall messages -c run/intake.ini [list|count|show ID]
  status:     http://127.0.0.1:9100/ (gateway), :9101/ (agent), :9102/ (intake) in a browser;
              /metrics, /status and /healthz beside them
  gateway:    tunnel listener 127.0.0.1:7443
  configs:    run/gateway.ini, run/agent.ini, run/intake.ini (netwall check FILE)

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true

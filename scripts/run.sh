#!/usr/bin/env bash
# make run: a gateway and an agent on loopback publishing a local demo service through the
# wall. Keys and configs are made under run/ the first time and kept. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
NETWALL=$PWD/build/netwall
mkdir -p run/www
cd run

[ -f gateway.crt ] || "$NETWALL" keygen --out . gateway >/dev/null
[ -f agent.crt ] || "$NETWALL" keygen --out . agent >/dev/null
GW_FP=$("$NETWALL" fingerprint gateway.crt)
AG_FP=$("$NETWALL" fingerprint agent.crt)

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
  gateway:    tunnel listener 127.0.0.1:7443, admin http://127.0.0.1:9100/metrics
  agent:      admin http://127.0.0.1:9101/metrics
  configs:    run/gateway.ini, run/agent.ini   (netwall check FILE validates them)

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true

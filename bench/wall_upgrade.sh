# bench/wall.sh --upgrade: visitors refused while a gateway is replaced. Sourced by wall.sh
# (its helpers: spawn, stop_proc, keygen_netwall, wait_listen, log, die; $PY, $TMP, $NETWALL).
#
# A python client opens connections back to back through a gateway to an echo target (each:
# connect, a line out, the line back, close) for UPGRADE_SECONDS; a third of the way in, the
# gateway is replaced, once by a handover (netwall gateway --takeover: the new process takes
# the sockets, the old one drains) and once by a plain stop and start. Prints, for each, the
# visitors answered and the visitors that failed: the figure operators care about.

upgrade_configs() {
    local d=$TMP/upgrade
    keygen_netwall "$d/gateway-keys" gateway
    local gw_cert=$KG_CERT gw_key=$KG_KEY gw_fp=$KG_FP
    keygen_netwall "$d/agent-keys" bench-agent
    local ag_cert=$KG_CERT ag_key=$KG_KEY ag_fp=$KG_FP
    cat >"$d/gateway.ini" <<EOC
[gateway]
listen = 127.0.0.1:$NW_TUN
cert = $gw_cert
key = $gw_key
admin = off
log_level = info
drain_timeout = 10
handover = $d/gateway.sock

[agent bench]
fingerprint = $ag_fp

[service echo]
listen = 127.0.0.1:$NW_HTTP
agents = bench
max_per_source = 10000
EOC
    cat >"$d/agent.ini" <<EOC
[agent]
gateway = 127.0.0.1:$NW_TUN
cert = $ag_cert
key = $ag_key
gateway_fingerprint = $gw_fp
admin = off
log_level = warn

[service echo]
target = 127.0.0.1:$P_IPERF
EOC
}

# upgrade_round WAY: one visitor loop through a replacement done WAY (handover | restart);
# sets UP_OK, UP_FAILED and UP_OUTAGE (seconds), and leaves the new gateway in UP_GW.
upgrade_round() {
    local way=$1 d=$TMP/upgrade out=$TMP/upgrade/loop-$1.txt loop_pid i
    "$PY" "$TMP/helper.py" loop "$NW_HTTP" "$UPGRADE_SECONDS" "$out" &
    loop_pid=$!
    sleep "$(awk -v s="$UPGRADE_SECONDS" 'BEGIN { print s / 3 }')"
    if [[ $way == handover ]]; then
        spawn "netwall-gateway-$way" "$NETWALL" gateway -c "$d/gateway.ini" --takeover
        local new=$LAST_PID
        wait_gone 30 "$UP_GW" || die "the old gateway did not exit after the handover"
        wait "$UP_GW" 2>/dev/null
        untrack "$UP_GW"
        UP_GW=$new
    else
        stop_proc "$UP_GW" TERM 30
        spawn "netwall-gateway-$way" "$NETWALL" gateway -c "$d/gateway.ini"
        UP_GW=$LAST_PID
    fi
    wait "$loop_pid" || die "the visitor loop failed: $(cat "$out" 2>/dev/null)"
    read -r UP_OK UP_FAILED UP_OUTAGE <"$out"
    log "  $way: $UP_OK visitors answered, $UP_FAILED failed, longest outage ${UP_OUTAGE}s"
    for i in $(seq 1 100); do "$PY" "$TMP/helper.py" probe-echo "$NW_HTTP" && break; sleep 0.1; done
}

run_upgrade() {
    mkdir -p "$TMP/upgrade"
    log "upgrade: echo target :$P_IPERF, gateway tunnel :$NW_TUN, service :$NW_HTTP, ${UPGRADE_SECONDS}s loops"
    spawn echo-target "$PY" "$TMP/helper.py" echo "$P_IPERF"
    wait_listen "$P_IPERF" "echo target" "$LAST_PID"
    upgrade_configs
    spawn netwall-gateway "$NETWALL" gateway -c "$TMP/upgrade/gateway.ini"
    UP_GW=$LAST_PID
    wait_listen "$NW_TUN" "netwall gateway" "$UP_GW"
    spawn netwall-agent "$NETWALL" agent -c "$TMP/upgrade/agent.ini"
    local i
    for i in $(seq 1 100); do "$PY" "$TMP/helper.py" probe-echo "$NW_HTTP" && break; sleep 0.1; done
    "$PY" "$TMP/helper.py" probe-echo "$NW_HTTP" || die "no echo through the gateway"
    upgrade_round handover
    local h_ok=$UP_OK h_failed=$UP_FAILED h_outage=$UP_OUTAGE
    upgrade_round restart
    echo
    echo "| gateway replaced by | visitors answered | visitors failed | longest outage (s) |"
    echo "|---|---|---|---|"
    echo "| handover (\`netwall gateway --takeover\`) | $h_ok | $h_failed | $h_outage |"
    echo "| stop, then start | $UP_OK | $UP_FAILED | $UP_OUTAGE |"
    echo
    echo "(${UPGRADE_SECONDS} s of back-to-back visitors each, one loopback client; $NETWALL_DESC)"
}

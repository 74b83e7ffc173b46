#!/usr/bin/env bash
# Relay benchmark: the same loopback targets reached four ways, measured side by side in one run.
#
#   direct   client -> target
#   netwall  client -> netwall gateway (service port) -> netwall agent -> target
#   ssh      client -> sshd (-R listener) -> ssh -N -R client -> target
#   stunnel  client -> stunnel client -> TLS 1.3 -> stunnel server -> target
#
# Targets: iperf3 server, redis-server, nginx (small static file). Everything binds 127.0.0.1 on
# high ports, every load is bounded in count and time, and every server is started here and
# stopped by PID on exit (including Ctrl-C). The script only measures; it judges nothing.
#
# Usage: bench/wall.sh [--quick] [options]      (run as root; see --help)

set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
RESULTS_FILE="$SCRIPT_DIR/RESULTS.md"
RESULTS_MARKER='<!-- runs below: newest first -->'

usage() {
    cat <<EOF
Usage: $0 [options]

Measures direct / netwall / ssh -R / stunnel paths to the same loopback targets and prints a
Markdown table (medians of repeated runs, plus netwall ratios). The table, the date and a machine
description are added to bench/RESULTS.md (newest run first).

Options:
  --quick            smoke run: 1 repetition, 1 s loads, redis -n 5000 (about a minute)
  --reps N           repetitions of each throughput/rate measurement (default 3; quick 1)
  --duration S       seconds per iperf3 / wrk run (default 5; quick 1)
  --redis-n N        requests per redis-benchmark test (default 100000; quick 5000)
  --conns N          idle connections for the memory figure (default 1000)
  --paths LIST       comma-separated subset of: direct,netwall,ssh,stunnel (default all)
  --netwall FILE     netwall binary (default \$NETWALL or $REPO/build/netwall)
  --base-port N      first of the loopback ports used (default 21000; uses N .. N+40)
  --no-record        print the table only; do not touch bench/RESULTS.md
  --keep-tmp         keep the temporary directory (configs, keys, logs) for inspection
  --upgrade          only the upgrade part: visitors failed while the gateway is replaced by
                     a handover (--takeover), and by a stop and start; never recorded
  --upgrade-seconds S  length of each visitor loop of --upgrade (default 10; quick 4)
  -h, --help         this text
EOF
}

# ---------------------------------------------------------------- options

QUICK=0
for a in "$@"; do [[ $a == --quick ]] && QUICK=1; done
if ((QUICK)); then
    REPS=1; DURATION=1; REDIS_N=5000; SETTLE=0.2; IDLE_WAIT=1
else
    REPS=3; DURATION=5; REDIS_N=100000; SETTLE=1; IDLE_WAIT=2
fi
CONNS=1000
PATHS_SEL="direct,netwall,ssh,stunnel"
NETWALL=${NETWALL:-$REPO/build/netwall}
BASE_PORT=21000
RECORD=1
KEEP_TMP=0
UPGRADE_ONLY=0
UPGRADE_SECONDS=10
((QUICK)) && UPGRADE_SECONDS=4

need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "wall.sh: $1 needs a value" >&2; exit 2; }; }
while (($#)); do
    case $1 in
        --quick) ;;
        --reps) need_arg "$@"; REPS=$2; shift ;;
        --duration) need_arg "$@"; DURATION=$2; shift ;;
        --redis-n) need_arg "$@"; REDIS_N=$2; shift ;;
        --conns) need_arg "$@"; CONNS=$2; shift ;;
        --paths) need_arg "$@"; PATHS_SEL=$2; shift ;;
        --netwall) need_arg "$@"; NETWALL=$2; shift ;;
        --base-port) need_arg "$@"; BASE_PORT=$2; shift ;;
        --no-record) RECORD=0 ;;
        --keep-tmp) KEEP_TMP=1 ;;
        --upgrade) UPGRADE_ONLY=1; RECORD=0; PATHS_SEL=netwall ;;
        --upgrade-seconds) need_arg "$@"; UPGRADE_SECONDS=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "wall.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

for v in REPS DURATION REDIS_N CONNS BASE_PORT UPGRADE_SECONDS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "wall.sh: $v must be a positive integer" >&2; exit 2; }
done
((BASE_PORT >= 1024 && BASE_PORT + 40 <= 65535)) || { echo "wall.sh: --base-port out of range" >&2; exit 2; }

ALL_PATHS=(direct netwall ssh stunnel)
PATHS=()
IFS=, read -r -a _sel <<<"$PATHS_SEL"
for p in "${ALL_PATHS[@]}"; do
    for s in "${_sel[@]}"; do [[ $s == "$p" ]] && PATHS+=("$p"); done
done
for s in "${_sel[@]}"; do
    [[ " ${ALL_PATHS[*]} " == *" $s "* ]] || { echo "wall.sh: unknown path '$s' in --paths" >&2; exit 2; }
done
((${#PATHS[@]})) || { echo "wall.sh: --paths selects nothing" >&2; exit 2; }
has_path() { [[ " ${PATHS[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- ports

P_IPERF=$((BASE_PORT + 0)); P_REDIS=$((BASE_PORT + 1)); P_HTTP=$((BASE_PORT + 2))
P_HTTPS=$((BASE_PORT + 3))   # nginx over TLS, for the SNI part
NW_TLS=$((BASE_PORT + 14)); NW_SNI=$((BASE_PORT + 15))   # netwall: TLS on a port of its own, and shared by SNI
NW_TUN=$((BASE_PORT + 10))
NW_IPERF=$((BASE_PORT + 11)); NW_REDIS=$((BASE_PORT + 12)); NW_HTTP=$((BASE_PORT + 13))
SSH_PORT=$((BASE_PORT + 20))
SSH_IPERF=$((BASE_PORT + 21)); SSH_REDIS=$((BASE_PORT + 22)); SSH_HTTP=$((BASE_PORT + 23))
ST_IPERF=$((BASE_PORT + 31)); ST_REDIS=$((BASE_PORT + 32)); ST_HTTP=$((BASE_PORT + 33))
STS_IPERF=$((BASE_PORT + 34)); STS_REDIS=$((BASE_PORT + 35)); STS_HTTP=$((BASE_PORT + 36))

# port_of PATH TARGET -> the port a client uses to reach TARGET (iperf|redis|http) over PATH
port_of() {
    case $1:$2 in
        direct:iperf) echo $P_IPERF ;;   direct:redis) echo $P_REDIS ;;   direct:http) echo $P_HTTP ;;
        netwall:iperf) echo $NW_IPERF ;; netwall:redis) echo $NW_REDIS ;; netwall:http) echo $NW_HTTP ;;
        ssh:iperf) echo $SSH_IPERF ;;    ssh:redis) echo $SSH_REDIS ;;    ssh:http) echo $SSH_HTTP ;;
        stunnel:iperf) echo $ST_IPERF ;; stunnel:redis) echo $ST_REDIS ;; stunnel:http) echo $ST_HTTP ;;
        *) echo "port_of: bad $1:$2" >&2; return 1 ;;
    esac
}

# ---------------------------------------------------------------- helpers

log() { printf '[wall %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'wall.sh: error: %s\n' "$*" >&2; exit 1; }

TMP=""
PIDS=()                  # every process started in the background, in start order
declare -A RELAY_ROOTS   # path -> PIDs of its relay processes (their descendants count too)
declare -A LOGS          # path -> log files worth showing when the path fails
declare -A PID_START     # PID -> its start time, to recognise it at cleanup
declare -A RES           # "figure|path" -> space-separated values, one per repetition
NOTES=()

CLEANUP_WAIT=1
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# run_client SECONDS OUT ERR CMD... : a bounded load-generating client. It runs in the background
# and is waited for, so that Ctrl-C interrupts the wait at once and the exit trap stops it.
run_client() {
    local limit=$1 out=$2 err=$3 pid rc
    shift 3
    timeout "$limit" "$@" >"$out" 2>"$err" &
    pid=$!
    track "$pid"
    wait "$pid"
    rc=$?
    untrack "$pid"
    return "$rc"
}

listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# wait_listen PORT WHAT PID [SECONDS]
wait_listen() {
    local port=$1 what=$2 pid=$3 deadline=$((SECONDS + ${4:-15}))
    until listening "$port"; do
        alive "$pid" || die "$what exited before listening on 127.0.0.1:$port: $(tail -n 5 "$TMP/log/"*.log 2>/dev/null | tail -n 20)"
        ((SECONDS < deadline)) || die "$what is not listening on 127.0.0.1:$port after ${4:-15} s"
        sleep 0.1
    done
}

show_logs() {
    local f
    for f in ${LOGS[$1]:-}; do
        [[ -s $f ]] && { echo "--- $(basename "$f") (last lines)"; tail -n 15 "$f"; }
    done >&2
}

die_path() {
    local path=$1 p; shift
    show_logs "$path"
    for p in ${TARGET_PIDS:-}; do
        alive "$p" || printf 'wall.sh: note: target server PID %s (%s) is no longer running; was it stopped from outside?\n' \
            "$p" "$(tr '\0' ' ' <"$TMP/cmd.$p" 2>/dev/null)" >&2
    done
    die "path '$path' failed: $*"
}

is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }

add_res() { RES["$1|$2"]="${RES["$1|$2"]:-}${RES["$1|$2"]:+ }$3"; log "  $2: $1 = $3"; }

# Sum of user+system CPU ticks of the given processes (whole thread groups).
cpu_ticks() {
    local p t=0 v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# Sum of PSS in KiB of the given processes.
pss_kib() {
    local p
    for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '/^Pss:/ { s += $2 } END { print s + 0 }'
}

relay_pids() { descendants ${RELAY_ROOTS[$1]}; }

# ---------------------------------------------------------------- preflight

((EUID == 0)) || die "run as root (it installs packages, runs sshd, and raises the open-file limit)"

ensure_packages() {
    local -A need=(
        [iperf3]=iperf3 [wrk]=wrk [redis-server]=redis-server [redis-benchmark]=redis-tools
        [nginx]=nginx [stunnel4]=stunnel4 [/usr/sbin/sshd]=openssh-server [ssh]=openssh-client
        [ssh-keygen]=openssh-client [ps]=procps [python3]=python3 [openssl]=openssl [ss]=iproute2
        [timeout]=coreutils
    )
    local c pkgs=()
    for c in "${!need[@]}"; do
        command -v "$c" >/dev/null 2>&1 || pkgs+=("${need[$c]}")
    done
    ((${#pkgs[@]})) || return 0
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    # the packages' own system services (port 80, 6379, 22) are not started
    apt_install "${pkgs[@]}" || die "apt-get install ${pkgs[*]} failed"
}
((UPGRADE_ONLY)) || ensure_packages

PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
STUNNEL=$(command -v stunnel4 || command -v stunnel)
SSHD=/usr/sbin/sshd

if has_path netwall; then
    [[ -x $NETWALL ]] || die "netwall binary not found at $NETWALL (build it, pass --netwall FILE, or leave it out with --paths direct,ssh,stunnel)"
fi

# Up to 2 x CONNS sockets per relay process plus clients: raise the open-file limit.
want_nofile=$((4 * CONNS + 4096))
((want_nofile < 65536)) && want_nofile=65536
ulimit -n "$want_nofile" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
want_nofile=$(ulimit -n)
(($(ulimit -n) >= 2 * CONNS + 512)) || die "open-file limit $(ulimit -n) too low for --conns $CONNS"

for port in $P_IPERF $P_REDIS $P_HTTP $NW_TUN $NW_IPERF $NW_REDIS $NW_HTTP $SSH_PORT $SSH_IPERF $SSH_REDIS \
    $SSH_HTTP $ST_IPERF $ST_REDIS $ST_HTTP $STS_IPERF $STS_REDIS $STS_HTTP; do
    listening "$port" && die "127.0.0.1:$port is already in use (choose another --base-port)"
done

TMP=$(mktemp -d /tmp/netwall-bench.XXXXXX) || die "mktemp failed"
mkdir -p "$TMP/log"

# The binary under test, frozen for the whole run (the tree may be rebuilt meanwhile), and what it is.
NETWALL_DESC=""
if has_path netwall; then
    mkdir -p "$TMP/bin"
    cp "$NETWALL" "$TMP/bin/netwall" || die "cannot copy $NETWALL"
    NETWALL_DESC="$("$TMP/bin/netwall" version 2>/dev/null | head -n 1)"
    NETWALL_DESC="${NETWALL_DESC:-netwall} (binary sha256 $(sha256sum "$TMP/bin/netwall" | cut -c1-12)"
    NETWALL_DESC+=", tree at commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    [[ -n $(git -C "$REPO" status --porcelain -- src 2>/dev/null) ]] && NETWALL_DESC+=" + uncommitted changes in src/"
    NETWALL_DESC+=" at start)"
    NETWALL=$TMP/bin/netwall
fi
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- client helper (python, stdlib only)

cat >"$TMP/helper.py" <<'PYEOF'
import json, os, selectors, socket, sys, time

def connect(port, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def probe_redis(port):
    with connect(port, 3) as s:
        s.sendall(b"PING\r\n")
        buf = b""
        while b"\r\n" not in buf:
            d = s.recv(64)
            if not d:
                break
            buf += d
    return buf.startswith(b"+PONG")

def probe_http(port):
    with connect(port, 3) as s:
        s.sendall(b"GET /small.html HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    length = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    return head.startswith(b"HTTP/1.1 200") and length == [str(len(body)).encode()]

def hold(port, n, ready, release, limit):
    # Open n connections to a redis target, prove each is established end to end with a PING,
    # report readiness, then keep them idle until told to let go (bounded by limit seconds).
    t_end = time.monotonic() + 60
    socks, bufs = [], {}
    sel = selectors.DefaultSelector()
    def report(text):
        with open(ready + ".tmp", "w") as f:
            f.write(text + "\n")
        os.rename(ready + ".tmp", ready)
    try:
        for _ in range(n):
            s = connect(port, 10)
            s.sendall(b"PING\r\n")
            s.setblocking(False)
            socks.append(s)
            bufs[s] = b""
            sel.register(s, selectors.EVENT_READ)
        pending = len(socks)
        while pending and time.monotonic() < t_end:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                d = s.recv(64)
                if not d:
                    raise RuntimeError("a connection was closed before answering")
                bufs[s] += d
                if b"\r\n" in bufs[s]:
                    if not bufs[s].startswith(b"+PONG"):
                        raise RuntimeError("unexpected answer %r" % bufs[s][:40])
                    sel.unregister(s)
                    pending -= 1
        if pending:
            raise RuntimeError("%d of %d connections did not answer within 60 s" % (pending, n))
    except Exception as e:
        report("FAIL %s (opened %d)" % (e, len(socks)))
        return 1
    report("READY %d" % len(socks))
    t_rel = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < t_rel:
        time.sleep(0.05)
    for s in socks:
        s.close()
    return 0

def probe_echo(port):
    with connect(port, 3) as s:
        s.sendall(b"ping\n")
        buf = b""
        while len(buf) < 5:
            d = s.recv(64)
            if not d:
                break
            buf += d
    return buf == b"ping\n"

def echo(port):
    # A threaded echo target for the upgrade part.
    import socketserver
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                d = self.request.recv(65536)
                if not d:
                    return
                self.request.sendall(d)
    class S(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 1024
    with S(("127.0.0.1", port), H) as srv:
        srv.serve_forever()

def loop(port, seconds, out):
    # Visitors back to back for `seconds`: connect, a line out, the same line back, close.
    # Also the longest stretch of time in which every visitor failed.
    ok = failed = 0
    t_end = time.monotonic() + seconds
    i = 0
    down_since = None
    outage = 0.0
    while time.monotonic() < t_end:
        i += 1
        t0 = time.monotonic()
        before = failed
        line = b"visitor %d\n" % i
        try:
            with connect(port, 5) as s:
                s.sendall(line)
                buf = b""
                while len(buf) < len(line):
                    d = s.recv(len(line) - len(buf))
                    if not d:
                        break
                    buf += d
            if buf == line:
                ok += 1
            else:
                failed += 1
        except OSError:
            failed += 1
        if failed > before:
            down_since = t0 if down_since is None else down_since
            outage = max(outage, time.monotonic() - down_since)
        else:
            down_since = None
    with open(out, "w") as f:
        f.write("%d %d %.3f\n" % (ok, failed, outage))
    return 0

def iperf(path):
    with open(path) as f:
        j = json.load(f)
    if "error" in j:
        print("ERROR", j["error"])
        return 1
    r = j["end"]["sum_received"]
    print(r["bits_per_second"], r["bytes"])
    return 0

def main(argv):
    cmd = argv[1]
    try:
        if cmd == "probe-redis":
            return 0 if probe_redis(int(argv[2])) else 1
        if cmd == "probe-http":
            return 0 if probe_http(int(argv[2])) else 1
        if cmd == "probe-echo":
            return 0 if probe_echo(int(argv[2])) else 1
    except OSError:
        return 1
    if cmd == "hold":
        return hold(int(argv[2]), int(argv[3]), argv[4], argv[5], float(argv[6]))
    if cmd == "iperf":
        return iperf(argv[2])
    if cmd == "echo":
        return echo(int(argv[2]))
    if cmd == "loop":
        return loop(int(argv[2]), float(argv[3]), argv[4])
    print("unknown command", cmd, file=sys.stderr)
    return 2

sys.exit(main(sys.argv))
PYEOF

# ---------------------------------------------------------------- targets

start_targets() {
    log "starting targets: iperf3 :$P_IPERF, redis :$P_REDIS, nginx :$P_HTTP"
    spawn iperf3-server iperf3 -s -B 127.0.0.1 -p "$P_IPERF" --idle-timeout 30
    local iperf_pid=$LAST_PID

    mkdir -p "$TMP/redis"
    spawn redis-server redis-server --bind 127.0.0.1 --port "$P_REDIS" --protected-mode no \
        --save "" --appendonly no --daemonize no --dir "$TMP/redis" --maxclients $((2 * CONNS + 1000)) \
        --loglevel warning
    local redis_pid=$LAST_PID

    mkdir -p "$TMP/nginx/www" "$TMP/nginx/tmp"
    # a small static file: 1 KiB of text
    head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/nginx/www/small.html"
    # a certificate for the HTTPS server (wrk does not verify it; SNI is the URL's host)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName = DNS:localhost" \
        -keyout "$TMP/nginx/tls.key" -out "$TMP/nginx/tls.crt" >"$TMP/log/openssl-nginx.log" 2>&1 ||
        die "openssl could not make nginx's certificate: $(tail -n 3 "$TMP/log/openssl-nginx.log")"
    cat >"$TMP/nginx/nginx.conf" <<EOF
user root;
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/log/nginx-error.log warn;
worker_rlimit_nofile $want_nofile;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 60;
    keepalive_requests 100000000;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    types { text/html html; }
    server {
        listen 127.0.0.1:$P_HTTP backlog=4096;
        root $TMP/nginx/www;
    }
    server {
        listen 127.0.0.1:$P_HTTPS ssl backlog=4096;
        ssl_certificate $TMP/nginx/tls.crt;
        ssl_certificate_key $TMP/nginx/tls.key;
        root $TMP/nginx/www;
    }
}
EOF
    spawn nginx nginx -p "$TMP/nginx/" -e "$TMP/log/nginx-error.log" -c "$TMP/nginx/nginx.conf"
    local nginx_pid=$LAST_PID

    TARGET_PIDS="$iperf_pid $redis_pid $nginx_pid"
    local p
    for p in $TARGET_PIDS; do cat "/proc/$p/cmdline" >"$TMP/cmd.$p" 2>/dev/null; done
    wait_listen "$P_IPERF" "iperf3 server" "$iperf_pid"
    wait_listen "$P_REDIS" "redis-server" "$redis_pid"
    wait_listen "$P_HTTP" "nginx" "$nginx_pid"
    LOGS[direct]="$TMP/log/iperf3-server.log $TMP/log/redis-server.log $TMP/log/nginx-error.log $TMP/log/nginx.log"
}

# ---------------------------------------------------------------- netwall

# keygen_netwall DIR NAME -> sets KG_CERT KG_KEY KG_FP
keygen_netwall() {
    local dir=$1 name=$2 out f
    mkdir -p "$dir"
    out=$("$NETWALL" keygen --out "$dir" "$name" 2>"$TMP/log/keygen-$name.log") ||
        die "netwall keygen --out $dir $name failed: $(cat "$TMP/log/keygen-$name.log")"
    KG_CERT=""; KG_KEY=""
    for f in "$dir"/*; do
        [[ -f $f ]] || continue
        if grep -q 'BEGIN CERTIFICATE' "$f"; then KG_CERT=$f
        elif grep -q 'PRIVATE KEY' "$f"; then KG_KEY=$f; fi
    done
    [[ -n $KG_CERT && -n $KG_KEY ]] || die "netwall keygen wrote no certificate/key pair into $dir: $(ls "$dir")"
    KG_FP=$(grep -oiE '([0-9a-f]{2}:){31}[0-9a-f]{2}|[0-9a-f]{64}' <<<"$out" | head -n 1)
    local want
    want=$(openssl x509 -in "$KG_CERT" -outform DER | sha256sum | cut -d' ' -f1)
    if [[ -z $KG_FP ]]; then
        die "netwall keygen printed no fingerprint (output: $out)"
    fi
    [[ $(tr -d ':' <<<"${KG_FP,,}") == "$want" ]] ||
        NOTES+=("netwall keygen printed fingerprint $KG_FP but the certificate's DER SHA-256 is $want")
}

start_netwall() {
    local d=$TMP/netwall
    log "starting netwall: gateway tunnel :$NW_TUN, services :$NW_IPERF :$NW_REDIS :$NW_HTTP"
    keygen_netwall "$d/gateway-keys" gateway
    local gw_cert=$KG_CERT gw_key=$KG_KEY gw_fp=$KG_FP
    keygen_netwall "$d/agent-keys" bench-agent
    local ag_cert=$KG_CERT ag_key=$KG_KEY ag_fp=$KG_FP
    NETWALL_KEYTYPE=$(openssl x509 -in "$gw_cert" -noout -text |
        awk -F': *' '/NIST CURVE/ { c = "EC " $2 } /Public-Key:/ && k == "" { k = $0 } END { print (c != "" ? c : k) }' |
        sed 's/^ *//')

    cat >"$d/gateway.ini" <<EOF
[gateway]
listen = 127.0.0.1:$NW_TUN
cert = $gw_cert
key = $gw_key
admin = off
log_level = warn

[agent bench]
fingerprint = $ag_fp

# every load generator here is one loopback source: max_per_source lets it open them all
[service iperf]
listen = 127.0.0.1:$NW_IPERF
agents = bench
max_per_source = 10000

[service redis]
listen = 127.0.0.1:$NW_REDIS
agents = bench
max_per_source = 10000

[service http]
listen = 127.0.0.1:$NW_HTTP
agents = bench
max_per_source = 10000

# HTTPS to nginx: on a port of its own, and two services sharing one port told apart by SNI
# (wrk names localhost; both loopback families, whichever localhost resolves to first)
[service tls]
listen = 127.0.0.1:$NW_TLS
listen = [::1]:$NW_TLS
agents = bench
max_per_source = 10000

[service sni-a]
listen = 127.0.0.1:$NW_SNI
listen = [::1]:$NW_SNI
agents = bench
max_per_source = 10000
sni = localhost

[service sni-b]
listen = 127.0.0.1:$NW_SNI
listen = [::1]:$NW_SNI
agents = bench
max_per_source = 10000
sni = *.example.test
EOF
    cat >"$d/agent.ini" <<EOF
[agent]
gateway = 127.0.0.1:$NW_TUN
cert = $ag_cert
key = $ag_key
gateway_fingerprint = $gw_fp
tunnels = 2
admin = off
log_level = warn

[service iperf]
target = 127.0.0.1:$P_IPERF

[service redis]
target = 127.0.0.1:$P_REDIS

[service http]
target = 127.0.0.1:$P_HTTP

[service tls]
target = 127.0.0.1:$P_HTTPS

[service sni-a]
target = 127.0.0.1:$P_HTTPS

[service sni-b]
target = 127.0.0.1:$P_HTTPS
EOF
    local f
    for f in gateway agent; do
        "$NETWALL" check "$d/$f.ini" >"$TMP/log/netwall-check-$f.log" 2>&1 ||
            die "netwall check $f.ini failed: $(cat "$TMP/log/netwall-check-$f.log")"
    done
    LOGS[netwall]="$TMP/log/netwall-gateway.log $TMP/log/netwall-agent.log"
    spawn netwall-gateway "$NETWALL" gateway -c "$d/gateway.ini"
    local gw_pid=$LAST_PID
    wait_listen "$NW_TUN" "netwall gateway" "$gw_pid"
    spawn netwall-agent "$NETWALL" agent -c "$d/agent.ini"
    local ag_pid=$LAST_PID
    RELAY_ROOTS[netwall]="$gw_pid $ag_pid"
    wait_listen "$NW_REDIS" "netwall gateway" "$gw_pid"
}

# ---------------------------------------------------------------- ssh -N -R

start_ssh() {
    local d=$TMP/ssh usepam=no
    log "starting sshd :$SSH_PORT and ssh -N -R :$SSH_IPERF :$SSH_REDIS :$SSH_HTTP"
    mkdir -p "$d"
    ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$d/host_ed25519" || die "ssh-keygen (host key) failed"
    ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$d/id_ed25519" || die "ssh-keygen (client key) failed"
    cp "$d/id_ed25519.pub" "$d/authorized_keys"
    chmod 600 "$d/authorized_keys"
    # sshd refuses a locked root account unless PAM handles account checks
    [[ $(getent shadow root | cut -d: -f2) == '!'* ]] && usepam=yes
    # privilege separation directory required by sshd
    [[ -d /run/sshd ]] || { mkdir -p /run/sshd && chmod 0755 /run/sshd; }
    cat >"$d/sshd_config" <<EOF
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $d/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $usepam
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
LogLevel ERROR
EOF
    "$SSHD" -t -f "$d/sshd_config" >"$TMP/log/sshd-check.log" 2>&1 || die "sshd -t failed: $(cat "$TMP/log/sshd-check.log")"
    LOGS[ssh]="$TMP/log/sshd.log $TMP/log/ssh-client.log"
    spawn sshd "$SSHD" -D -e -f "$d/sshd_config"
    local sshd_pid=$LAST_PID
    wait_listen "$SSH_PORT" "sshd" "$sshd_pid"
    SSH_OPTS=(-F /dev/null -i "$d/id_ed25519" -p "$SSH_PORT"
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null
        -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o ControlMaster=no -o ControlPath=none)
    spawn ssh-client ssh -n -N "${SSH_OPTS[@]}" -o ExitOnForwardFailure=yes -o LogLevel=ERROR \
        -R "127.0.0.1:$SSH_IPERF:127.0.0.1:$P_IPERF" \
        -R "127.0.0.1:$SSH_REDIS:127.0.0.1:$P_REDIS" \
        -R "127.0.0.1:$SSH_HTTP:127.0.0.1:$P_HTTP" \
        root@127.0.0.1
    local ssh_pid=$LAST_PID
    RELAY_ROOTS[ssh]="$sshd_pid $ssh_pid"
    local p
    for p in $SSH_IPERF $SSH_REDIS $SSH_HTTP; do
        wait_listen "$p" "ssh -N -R" "$ssh_pid" 20
    done
    # the cipher the default settings negotiate (a separate one-off login)
    SSH_CIPHER=$(timeout 15 ssh "${SSH_OPTS[@]}" -v root@127.0.0.1 true 2>&1 |
        awk '/kex: server->client cipher:/ { print $5; exit }')
}

# ---------------------------------------------------------------- stunnel pair

start_stunnel() {
    local d=$TMP/stunnel
    log "starting stunnel pair: client :$ST_IPERF :$ST_REDIS :$ST_HTTP -> server :$STS_IPERF :$STS_REDIS :$STS_HTTP"
    mkdir -p "$d"
    # one self-signed EC P-256 certificate, pinned on both sides (mutual authentication)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=bench-stunnel -keyout "$d/key.pem" -out "$d/cert.pem" >"$TMP/log/openssl-req.log" 2>&1 ||
        die "openssl req failed: $(cat "$TMP/log/openssl-req.log")"
    chmod 600 "$d/key.pem"
    local common="cert = $d/cert.pem
key = $d/key.pem
CAfile = $d/cert.pem
verifyPeer = yes
sslVersionMin = TLSv1.3"
    {
        printf 'foreground = yes\npid =\ndebug = warning\n'
        printf '\n[iperf]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n%s\n' "$STS_IPERF" "$P_IPERF" "$common"
        printf '\n[redis]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n%s\n' "$STS_REDIS" "$P_REDIS" "$common"
        printf '\n[http]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n%s\n' "$STS_HTTP" "$P_HTTP" "$common"
    } >"$d/server.conf"
    {
        printf 'foreground = yes\npid =\ndebug = warning\n'
        printf '\n[iperf]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n%s\n' "$ST_IPERF" "$STS_IPERF" "$common"
        printf '\n[redis]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n%s\n' "$ST_REDIS" "$STS_REDIS" "$common"
        printf '\n[http]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n%s\n' "$ST_HTTP" "$STS_HTTP" "$common"
    } >"$d/client.conf"
    LOGS[stunnel]="$TMP/log/stunnel-server.log $TMP/log/stunnel-client.log"
    spawn stunnel-server "$STUNNEL" "$d/server.conf"
    local srv_pid=$LAST_PID
    spawn stunnel-client "$STUNNEL" "$d/client.conf"
    local cli_pid=$LAST_PID
    RELAY_ROOTS[stunnel]="$srv_pid $cli_pid"
    local p
    for p in $STS_IPERF $STS_REDIS $STS_HTTP; do wait_listen "$p" "stunnel server" "$srv_pid"; done
    for p in $ST_IPERF $ST_REDIS $ST_HTTP; do wait_listen "$p" "stunnel client" "$cli_pid"; done
    STUNNEL_CIPHER=$(timeout 10 openssl s_client -connect "127.0.0.1:$STS_REDIS" -cert "$d/cert.pem" \
        -key "$d/key.pem" -brief </dev/null 2>&1 | awk -F': *' '/^Ciphersuite/ { print $2; exit }')
}

# ---------------------------------------------------------------- end-to-end readiness

# wait_path PATH: each target answers through the path (redis PING, HTTP 200, a 1 MB iperf3 run)
wait_path() {
    local path=$1 deadline=$((SECONDS + 30)) t port
    for t in redis http; do
        port=$(port_of "$path" "$t")
        until "$PY" "$TMP/helper.py" "probe-$t" "$port"; do
            ((SECONDS < deadline)) || die_path "$path" "no $t answer through 127.0.0.1:$port within 30 s"
            sleep 0.2
        done
    done
    port=$(port_of "$path" iperf)
    run_client 30 "$TMP/log/probe-iperf-$path.log" "$TMP/log/probe-iperf-$path.log" iperf3 -c 127.0.0.1 -p "$port" -n 1M ||
        die_path "$path" "iperf3 -n 1M through 127.0.0.1:$port failed: $(tail -n 3 "$TMP/log/probe-iperf-$path.log")"
    log "path $path is up"
}

# ---------------------------------------------------------------- measurements

# iperf3 PATH STREAMS -> adds Gbit/s (receiver) to iperfN; single stream also adds relay CPU s/GB
measure_iperf() {
    local path=$1 streams=$2 port before=0 after=0 pids="" out bps bytes
    port=$(port_of "$path" iperf)
    if [[ $path != direct && $streams == 1 ]]; then
        pids=$(relay_pids "$path")
        before=$(cpu_ticks $pids)
    fi
    local try
    for try in 1 2 3; do
        run_client $((DURATION + 30)) "$TMP/iperf.json" "$TMP/log/iperf-client.err" \
            iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -P "$streams" -J
        if [[ -n $pids ]]; then after=$(cpu_ticks $pids); fi
        out=$("$PY" "$TMP/helper.py" iperf "$TMP/iperf.json" 2>&1) && break
        # a server still finishing the previous test answers "busy": wait and retry
        [[ $out == *busy* && $try -lt 3 ]] || die_path "$path" "iperf3 -P $streams failed: $out $(head -c 300 "$TMP/iperf.json")"
        sleep 2
        [[ -n $pids ]] && before=$(cpu_ticks $pids)
    done
    read -r bps bytes <<<"$out"
    is_num "$bps" || die_path "$path" "iperf3 gave no throughput: $out"
    add_res "iperf$streams" "$path" "$(awk -v b="$bps" 'BEGIN { printf "%.4f", b / 1e9 }')"
    if [[ -n $pids ]]; then
        add_res cpu "$path" "$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v by="$bytes" \
            'BEGIN { printf "%.4f", (t / hz) / (by / 1e9) }')"
    fi
}

measure_redis() {
    local path=$1 port out t v
    port=$(port_of "$path" redis)
    run_client 600 "$TMP/redis.out" "$TMP/redis.out" \
        redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$REDIS_N" -q -t ping,set,get
    out=$(tr '\r' '\n' <"$TMP/redis.out")
    for t in PING_MBULK SET GET; do
        v=$(awk -F'[: ]+' -v k="$t" '$1 == k && / requests per second/ { print $2; exit }' <<<"$out")
        is_num "$v" || die_path "$path" "redis-benchmark gave no $t figure: $(tail -n 5 <<<"$out")"
        add_res "redis_${t%_MBULK}" "$path" "$v"
    done
}

# wrk_errors TEXT -> "connect N, read N, ..." or "" when clean
wrk_errors() {
    awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); e = $0 }
         /Non-2xx or 3xx responses:/ { n = $NF }
         END { s = ""
               if (e != "" && e != "connect 0, read 0, write 0, timeout 0") s = "socket errors " e
               if (n != "") s = s (s == "" ? "" : "; ") "non-2xx " n
               print s }' <<<"$1"
}

# measure_https NAME PORT: wrk over TLS (SNI localhost) to nginx through netwall, keep-alive
# (requests/s) and Connection: close (new TLS connections/s); results into HTTPS_RES.
declare -A HTTPS_RES
measure_https() {
    local name=$1 port=$2 mode rps
    for mode in keepalive close; do
        local args=(-t2 -c50 -d"${DURATION}s")
        [[ $mode == close ]] && args+=(-H "Connection: close")
        run_client $((DURATION + 60)) "$TMP/wrk.out" "$TMP/wrk.out" wrk "${args[@]}" \
            "https://localhost:$port/small.html"
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")
        is_num "$rps" || die_path netwall "wrk HTTPS ($name, $mode) gave no Requests/sec: $(tail -n 5 "$TMP/wrk.out")"
        local errs
        errs=$(wrk_errors "$(cat "$TMP/wrk.out")")
        [[ -n $errs ]] && NOTES+=("wrk HTTPS $name $mode: $errs")
        local key=${name}_$([[ $mode == keepalive ]] && echo rps || echo conn_rate)
        HTTPS_RES[$key]="${HTTPS_RES[$key]:-}${HTTPS_RES[$key]:+ }$rps"
        log "  netwall HTTPS $key = $rps"
    done
}

measure_wrk() {
    local path=$1 mode=$2 port out rps p99 errs
    port=$(port_of "$path" http)
    local args=(-t2 -c50 -d"${DURATION}s" --latency)
    [[ $mode == close ]] && args+=(-H "Connection: close")
    run_client $((DURATION + 60)) "$TMP/wrk.out" "$TMP/wrk.out" wrk "${args[@]}" "http://127.0.0.1:$port/small.html"
    out=$(cat "$TMP/wrk.out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    is_num "$rps" || die_path "$path" "wrk ($mode) gave no Requests/sec: $(tail -n 5 <<<"$out")"
    errs=$(wrk_errors "$out")
    [[ -n $errs ]] && NOTES+=("wrk $mode via $path: $errs")
    if ! grep -qE '^ +[1-9][0-9]* requests in ' <<<"$out"; then
        NOTES+=("wrk $mode via $path: no request completed in ${DURATION} s (counted as 0 req/s, no latency)")
        add_res "$([[ $mode == keepalive ]] && echo wrk_rps || echo conn_rate)" "$path" 0
        return 0
    fi
    if [[ $mode == keepalive ]]; then
        p99=$(awk '$1 == "99%" { v = $2
                  if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
                  else if (v ~ /ms$/) { sub(/ms$/, "", v) }
                  else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
                  else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
                  printf "%.4f", v; exit }' <<<"$out")
        is_num "$p99" || die_path "$path" "wrk gave no p99 latency"
        add_res wrk_rps "$path" "$rps"
        add_res wrk_p99 "$path" "$p99"
    else
        add_res conn_rate "$path" "$rps"
    fi
}

# CONNS idle connections through PATH to redis; relay PSS growth per connection
measure_memory() {
    local path=$1 port pids base after ready=$TMP/hold.ready release=$TMP/hold.release st
    port=$(port_of "$path" redis)
    rm -f "$ready" "$release"
    pids=$(relay_pids "$path")
    base=$(pss_kib $pids)
    "$PY" "$TMP/helper.py" hold "$port" "$CONNS" "$ready" "$release" 120 >"$TMP/log/hold-$path.log" 2>&1 &
    local hold_pid=$!
    track "$hold_pid"
    local t0=$EPOCHREALTIME
    for _ in $(seq 1 1200); do
        [[ -e $ready ]] && break
        alive "$hold_pid" || break
        sleep 0.1
    done
    st=$(cat "$ready" 2>/dev/null)
    if [[ $st != READY* ]]; then
        touch "$release"
        die_path "$path" "could not hold $CONNS idle connections: ${st:-no report} $(tail -n 3 "$TMP/log/hold-$path.log")"
    fi
    log "  $path: $CONNS connections established in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
    sleep "$IDLE_WAIT"
    pids=$(relay_pids "$path")   # a relay may have started processes or threads for the connections
    after=$(pss_kib $pids)
    touch "$release"
    wait "$hold_pid" 2>/dev/null
    untrack "$hold_pid"
    add_res pss_base "$path" "$(awk -v b="$base" 'BEGIN { printf "%.1f", b / 1024 }')"
    add_res mem "$path" "$(awk -v a="$after" -v b="$base" -v n="$CONNS" 'BEGIN { printf "%.2f", (a - b) / n }')"
    sleep "$SETTLE"
}

if ((UPGRADE_ONLY)); then
    # shellcheck source=bench/wall_upgrade.sh
    . "$SCRIPT_DIR/wall_upgrade.sh"
    run_upgrade
    exit 0
fi

# ---------------------------------------------------------------- run

RUN_DATE=$(date -u)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temporary directory $TMP; paths: ${PATHS[*]}; reps $REPS, ${DURATION}s loads, redis -n $REDIS_N, $CONNS idle conns"

start_targets
has_path netwall && start_netwall
has_path ssh && start_ssh
has_path stunnel && start_stunnel
for path in "${PATHS[@]}"; do wait_path "$path"; done

RELAYS=()
for path in "${PATHS[@]}"; do [[ $path != direct ]] && RELAYS+=("$path"); done

log "memory: $CONNS idle connections per relay"
for path in "${RELAYS[@]}"; do measure_memory "$path"; done

for rep in $(seq 1 "$REPS"); do
    log "iperf3 single stream, repetition $rep/$REPS"
    for path in "${PATHS[@]}"; do measure_iperf "$path" 1; sleep "$SETTLE"; done
done
for rep in $(seq 1 "$REPS"); do
    log "iperf3 -P 4, repetition $rep/$REPS"
    for path in "${PATHS[@]}"; do measure_iperf "$path" 4; sleep "$SETTLE"; done
done
for rep in $(seq 1 "$REPS"); do
    log "redis-benchmark, repetition $rep/$REPS"
    for path in "${PATHS[@]}"; do measure_redis "$path"; sleep "$SETTLE"; done
done
for rep in $(seq 1 "$REPS"); do
    log "wrk keep-alive, repetition $rep/$REPS"
    for path in "${PATHS[@]}"; do measure_wrk "$path" keepalive; sleep "$SETTLE"; done
done
for rep in $(seq 1 "$REPS"); do
    log "wrk Connection: close (new connections), repetition $rep/$REPS"
    for path in "${PATHS[@]}"; do measure_wrk "$path" close; sleep "$SETTLE"; done
done

# HTTPS through netwall: a port of its own against a port shared by two SNI services
if has_path netwall; then
    for rep in $(seq 1 "$REPS"); do
        log "wrk HTTPS through netwall, own port and SNI-shared port, repetition $rep/$REPS"
        measure_https sni "$NW_SNI"; sleep "$SETTLE"
        measure_https tls "$NW_TLS"; sleep "$SETTLE"
    done
    for key in tls_rps sni_rps tls_conn_rate sni_conn_rate; do
        [[ -n ${HTTPS_RES[$key]:-} ]] &&
            NOTES+=("netwall HTTPS $key (req/s, reps: ${HTTPS_RES[$key]}): median $(median ${HTTPS_RES[$key]})")
    done
fi

# anything a relay logged (netwall runs at log_level = warn, so every line is worth a look)
for f in netwall-gateway netwall-agent; do
    [[ -s $TMP/log/$f.log ]] &&
        NOTES+=("$f logged $(wc -l <"$TMP/log/$f.log") line(s); first: $(head -n 1 "$TMP/log/$f.log" | cut -c1-200)")
done

# every relay must still be running after the loads
for path in "${RELAYS[@]}"; do
    for p in ${RELAY_ROOTS[$path]}; do
        alive "$p" || die_path "$path" "relay process $p exited during the run"
    done
done

# ---------------------------------------------------------------- report

FIGS=(iperf1 iperf4 cpu redis_PING redis_SET redis_GET wrk_rps wrk_p99 conn_rate mem pss_base)
declare -A LABEL=(
    [iperf1]="iperf3 1 stream, Gbit/s"
    [iperf4]="iperf3 4 streams (-P 4), Gbit/s"
    [cpu]="relay CPU per GB (1 stream), s/GB"
    [redis_PING]="redis PING, req/s (-c 50)"
    [redis_SET]="redis SET, req/s (-c 50)"
    [redis_GET]="redis GET, req/s (-c 50)"
    [wrk_rps]="HTTP keep-alive, req/s (wrk -c 50)"
    [wrk_p99]="HTTP keep-alive p99 latency, ms"
    [conn_rate]="new connections/s (wrk, Connection: close)"
    [mem]="relay memory per idle conn, KiB PSS"
    [pss_base]="relay PSS before the idle conns, MiB"
)
declare -A BETTER=([iperf1]=higher [iperf4]=higher [cpu]=lower [redis_PING]=higher [redis_SET]=higher
    [redis_GET]=higher [wrk_rps]=higher [wrk_p99]=lower [conn_rate]=higher [mem]=lower [pss_base]=lower)
declare -A FMT=([iperf1]="%.2f" [iperf4]="%.2f" [cpu]="%.2f" [redis_PING]="%.0f" [redis_SET]="%.0f"
    [redis_GET]="%.0f" [wrk_rps]="%.0f" [wrk_p99]="%.2f" [conn_rate]="%.0f" [mem]="%.1f" [pss_base]="%.1f")
declare -A PATH_LABEL=([direct]=direct [netwall]=netwall [ssh]="ssh -R" [stunnel]=stunnel)

fmt() { awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'; }

declare -A MED
for f in "${FIGS[@]}"; do
    for path in "${PATHS[@]}"; do
        [[ -n ${RES["$f|$path"]:-} ]] && MED["$f|$path"]=$(median ${RES["$f|$path"]})
    done
done

ratio() {   # netwall value / other value for figure $1 against path $2
    local a=${MED["$1|netwall"]:-} b=${MED["$1|$2"]:-}
    [[ -n $a && -n $b ]] || { echo "—"; return; }
    awk -v a="$a" -v b="$b" 'BEGIN { if (b == 0) print "—"; else printf "%.2f", a / b }'
}

REPORT=$TMP/report.md
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
{
    cores=$(nproc)
    cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    os_name=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
    mode="full run"; ((QUICK)) && mode="quick smoke run (--quick; short loads, not for comparison)"

    echo "## $RUN_DATE — $mode"
    echo
    echo "- Machine: $cores CPUs ($cpu_model), $mem_total RAM, kernel $(uname -r), $os_name"
    echo "- Versions: $(openssl version | cut -d' ' -f1-2); $(ssh -V 2>&1 | cut -d, -f1);" \
        "$("$STUNNEL" -version 2>&1 | awk '/^stunnel/ { print $1, $2; exit }');" \
        "$(iperf3 --version | head -n 1 | cut -d' ' -f1-2); $(nginx -v 2>&1 | cut -d' ' -f3);" \
        "redis $(redis-server --version | grep -o 'v=[^ ]*' | cut -c3-); wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')${NETWALL_DESC:+;}" \
        "$NETWALL_DESC"
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END. Other work on the machine during the run skews the figures."
    echo "- Settings: median of $REPS run(s) per figure (memory: one run); iperf3 -t $DURATION (receiver side); redis-benchmark -c 50 -n $REDIS_N -q;" \
        "wrk -t2 -c50 -d${DURATION}s --latency on a 1 KiB static file (nginx, worker_processes auto);" \
        "new connections = the same wrk run with \`Connection: close\`; memory = relay PSS (smaps_rollup) growth with $CONNS idle redis connections, divided by $CONNS; GB = 10^9 bytes received."
    relays=()
    has_path netwall && relays+=("netwall gateway + agent (tunnels = 2${NETWALL_KEYTYPE:+, key $NETWALL_KEYTYPE}, mutual, one HTTP/2 stream per visitor connection)")
    has_path ssh && relays+=("sshd (all its processes) + ssh client (default cipher: ${SSH_CIPHER:-unknown})")
    has_path stunnel && relays+=("stunnel client + server (${STUNNEL_CIPHER:-TLS 1.3}, EC P-256, mutual, one TLS session per visitor connection)")
    ((${#relays[@]})) && echo "- Relay processes counted: $(printf '%s; ' "${relays[@]}" | sed 's/; $/./')"
    echo
    printf '| figure | better | '
    for path in "${PATHS[@]}"; do printf '%s |' "${PATH_LABEL[$path]}"; [[ $path == "${PATHS[-1]}" ]] || printf ' '; done
    has_path netwall && has_path ssh && printf ' netwall/ssh |'
    has_path netwall && has_path stunnel && printf ' netwall/stunnel |'
    has_path netwall && has_path direct && printf ' netwall/direct |'
    echo
    printf '|---|---|'
    for path in "${PATHS[@]}"; do printf -- '---:|'; done
    has_path netwall && has_path ssh && printf -- '---:|'
    has_path netwall && has_path stunnel && printf -- '---:|'
    has_path netwall && has_path direct && printf -- '---:|'
    echo
    for f in "${FIGS[@]}"; do
        printf '| %s | %s |' "${LABEL[$f]}" "${BETTER[$f]}"
        row=""
        for path in "${PATHS[@]}"; do
            v=${MED["$f|$path"]:-}
            if [[ -n $v ]]; then row+=" $(fmt "${FMT[$f]}" "$v") |"; else row+=" — |"; fi
        done
        has_path netwall && has_path ssh && row+=" $(ratio "$f" ssh) |"
        has_path netwall && has_path stunnel && row+=" $(ratio "$f" stunnel) |"
        has_path netwall && has_path direct && row+=" $(ratio "$f" direct) |"
        echo "$row"

    done
    echo
    if ((REPS > 1)); then
        echo "<details><summary>Every repetition</summary>"
        echo
        for f in "${FIGS[@]}"; do
            line=""
            for path in "${PATHS[@]}"; do
                [[ -n ${RES["$f|$path"]:-} ]] && line+="${line:+; }${PATH_LABEL[$path]}: ${RES["$f|$path"]}"
            done
            [[ -n $line ]] && echo "- ${LABEL[$f]}: $line"
        done
        echo
        echo "</details>"
        echo
    fi
    if ((${#NOTES[@]})); then
        echo "Notes:"
        echo
        printf '%s\n' "${NOTES[@]}" | sort | uniq -c | awk '{ c = $1; $1 = ""; sub(/^ /, ""); printf "- %s%s\n", $0, (c > 1 ? " (" c " runs)" : "") }'
        echo
    fi
} >"$REPORT"

cat "$REPORT"

if ((RECORD)); then
    new=$TMP/RESULTS.new
    # the file's head (and the hand-written sections above the marker) stay; the run goes
    # right below the marker, above the older runs
    if [[ -f $RESULTS_FILE ]] && grep -qxF "$RESULTS_MARKER" "$RESULTS_FILE"; then
        awk -v m="$RESULTS_MARKER" -v r="$REPORT" '
            { print }
            $0 == m && !done { print ""; while ((getline l < r) > 0) print l; done = 1 }
        ' "$RESULTS_FILE" >"$new"
    else
        {
            echo "# netwall benchmark results"
            echo
            echo "$RESULTS_MARKER"
            echo
            cat "$REPORT"
            [[ -f $RESULTS_FILE ]] && cat "$RESULTS_FILE"
        } >"$new"
    fi
    cp "$new" "$RESULTS_FILE"
    log "results added to $RESULTS_FILE"
fi

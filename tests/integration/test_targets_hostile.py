"""Several targets per agent service under hostile and careless use: targets whose
connects fail at once, a target whose health flaps, streams in flight while their service
is withdrawn, reloads while checks are in flight."""
import http.client
import signal
import socket
import threading

from conftest import (SANITIZED, http_get, require, start_echo, start_health_target,
                      start_nginx, svc, visitor_closed_within, wait_until)

from test_targets import _rss_kib, get_who, http_get_status, make_cert, who_root


def test_every_target_fails_at_once(wall, procs, tmp_path):
    """Two Unix targets whose sockets do not exist: the first connect and its redial both
    fail inside the visit; the visitor is closed, the agent lives on and serves the next
    service, and the redial went to the other target once."""
    good = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    a, b = tmp_path / "a.sock", tmp_path / "b.sock"
    gw = wall.gateway({"svc": svc(), "ok": svc()})
    ag = wall.agent("site-a", gw, {
        "svc": {"target": f"unix:{a}, unix:{b}", "health_check": "off"},
        "ok": good.addr})
    gw.wait_tunnels(2)
    for _ in range(4):
        assert visitor_closed_within(gw.port("svc"), 10, send=b"GET / HTTP/1.0\r\n\r\n") \
            is not None
    assert len(ag.proc.events("target_connect_failed")) == 8  # each stream: both targets
    assert get_who(gw, "ok") == (200, "A")
    assert ag.proc.alive()


def test_stream_in_flight_survives_withdraw(wall, procs, tmp_path):
    """A visitor's keep-alive connection open while the only target fails its http check
    and the service is withdrawn: the connection in flight still works (a withdraw stops new
    streams, it does not cut the open ones)."""
    root = who_root(tmp_path, "A")
    a = start_nginx(procs, tmp_path, root)
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": a.addr, "health_check": "http /health", "health_interval": "0.2",
        "health_timeout": "1", "health_fall": "1", "health_rise": "1"}})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_up", service="svc", target=a.addr)
    conn = http.client.HTTPConnection("127.0.0.1", gw.port("svc"), timeout=10)
    conn.request("GET", "/who.txt")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"A")
    (root / "health").unlink()
    ag.proc.wait_event("target_down", service="svc", target=a.addr)
    ag.proc.wait_event("services_announced", services="")
    conn.request("GET", "/who.txt")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"A")
    conn.close()


def test_flapping_target_is_damped(wall, procs, tmp_path):
    """A target answering 200 and 500 in turn, with health_fall = health_rise = 1 (the
    lowest an operator may set) and a short interval: every check flips its state. The
    gateways must not get a re-hello per check: announcements of the service stay a small
    fraction of the checks."""
    flap = start_health_target(procs, "flap")
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": flap.addr, "health_check": "http /health", "health_interval": "0.05",
        "health_timeout": "1", "health_fall": "1", "health_rise": "1"}})
    gw.wait_tunnels(2)
    ag.admin.wait_metric("netwall_agent_target_checks_total", lambda v: v >= 20,
                         service="svc", target=flap.addr, result="ok")
    checks = sum(ag.metric("netwall_agent_target_checks_total", service="svc",
                           target=flap.addr, result=r) for r in ("ok", "bad_status"))
    announced = len(ag.proc.events("services_announced"))
    asked = len(gw.proc.events("tunnel_up", agent="site-a"))
    assert announced <= checks // 10, \
        f"{announced} announcements, {asked} hellos at the gateway, for {checks} checks"


def test_reload_removes_target_mid_check(wall, procs, tmp_path):
    """SIGHUP that removes targets whose http checks are in flight (held by the target):
    the checks are dropped, nothing freed is touched (a sanitized build aborts otherwise),
    the remaining target serves."""
    good = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    holds = [start_health_target(procs, "hold") for _ in range(3)]
    listed = ", ".join([good.addr] + [h.addr for h in holds])
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": listed, "health_check": "http /health", "health_interval": "0.05",
        "health_timeout": "30"}})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_up", service="svc", target=good.addr)
    def reload(old, new):
        cfg = ag.config_path.read_text()
        ag.config_path.write_text(cfg.replace(f"target = {old}\n", f"target = {new}\n"))
        mark = ag.proc.mark()
        ag.proc.signal(signal.SIGHUP)
        ag.proc.wait_event("reloaded", since=mark)

    for _ in range(3):
        reload(listed, good.addr)
        reload(good.addr, listed)
    reload(listed, good.addr)
    assert [get_who(gw) for _ in range(3)] == [(200, "A")] * 3
    assert http_get(ag.admin.port, "/status")[0] == 200
    assert ag.proc.alive()


def test_new_target_unchecked_takes_no_stream(wall, procs, tmp_path):
    """SIGHUP that adds a target accepting connects but never answering its http check:
    until a check passes it must take no visitor while the service has a target known up.
    (A target not yet checked counts as up: visitors are sent to it and hang.)"""
    good = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    hold = start_health_target(procs, "hold")
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": good.addr,
        "health_check": "http /health", "health_interval": "0.2", "health_timeout": "30"}})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_up", service="svc", target=good.addr)
    cfg = ag.config_path.read_text()
    ag.config_path.write_text(cfg.replace(f"target = {good.addr}\n",
                                          f"target = {good.addr}, {hold.addr}\n"))
    mark = ag.proc.mark()
    ag.proc.signal(signal.SIGHUP)
    ag.proc.wait_event("reloaded", since=mark)
    got = []
    for _ in range(4):
        try:
            got.append(get_who(gw))
        except OSError as e:  # the visitor sent to the held target times out
            got.append(type(e).__name__)
    assert got == [(200, "A")] * 4


def _blackhole():
    """A listener whose accept queue is full: a connect to it stays pending (its SYN is
    dropped) until the dialler gives up. Returns (listener, fillers, addr)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(lst.getsockname())
        fillers.append(c)
    return lst, fillers, f"127.0.0.1:{lst.getsockname()[1]}"


def test_redial_after_timeout_keeps_bytes_and_proxy_header(wall, procs, tmp_path):
    """The first target's connect hangs until connect_timeout while the visitor sends 2 MB:
    the stream dials the echo target once, which gets the PROXY header exactly once and
    then every byte in order; the agent's memory stays bounded by the stream's window."""
    hole, fillers, hole_addr = _blackhole()
    echo = start_echo(procs)
    gw = wall.gateway({"svc": svc(proxy_protocol="v1")})
    ag = wall.agent("site-a", gw, {"svc": {"target": f"{hole_addr}, {echo.addr}",
                                           "health_check": "off"}},
                    extra={"connect_timeout": "1"})
    gw.wait_tunnels(2)
    payload = bytes(range(256)) * 8192  # 2 MB
    rss = _rss_kib(ag.proc.pid)
    s = socket.create_connection(("127.0.0.1", gw.port("svc")), timeout=20)
    sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
    sender.start()
    got = b""
    while b"\r\n" not in got or len(got) < got.index(b"\r\n") + 2 + len(payload):
        chunk = s.recv(65536)
        assert chunk, f"closed after {len(got)} bytes"
        got += chunk
    sender.join(10)
    s.close()
    head, _, body = got.partition(b"\r\n")
    assert head.startswith(b"PROXY TCP4 127.0.0.1 "), head[:80]
    assert body == payload  # no second header, nothing lost or doubled
    assert ag.proc.events("target_connect_failed")[0]["error"] == "timeout"
    assert _rss_kib(ag.proc.pid) - rss < (65536 if SANITIZED else 8192)
    hole.close()
    for c in fillers:
        c.close()


def _lines(holes):
    """16 addresses do not fit one config line: two target lines of 8."""
    return [", ".join(h[2] for h in holes[:8]), ", ".join(h[2] for h in holes[8:])]


def test_own_fd_shortage_is_not_the_targets_fault(wall, procs, tmp_path):
    """The agent short of file descriptors (32 checks held open by targets that never
    accept, under a low RLIMIT_NOFILE): a check of a healthy target that cannot get a
    socket says nothing about the target; it must not be taken down (and its service
    withdrawn) for the agent's own shortage."""
    require("prlimit")
    good = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    holes = [_blackhole() for _ in range(32)]
    slow = {"health_check": "tcp", "health_interval": "0.2", "health_timeout": "30"}
    gw = wall.gateway({"svc": svc(), "many1": svc(), "many2": svc()})
    ag = wall.agent("site-a", gw, {
        "svc": {"target": good.addr, **slow},
        "many1": {"target": _lines(holes[:16]), **slow},
        "many2": {"target": _lines(holes[16:]), **slow}},
        prefix=("prlimit", "--nofile=40:40"))
    gw.wait_tunnels(2)
    # a knock on the admin port makes the agent log accept_paused, each 0.1 s at most,
    # while it is short of descriptors: 20 of them span several of svc's checks (every
    # 0.2 s), all made while short

    def paused_enough():
        try:
            socket.create_connection(("127.0.0.1", ag.admin.port), timeout=1).close()
        except OSError:
            pass
        return len(ag.proc.events("accept_paused")) >= 20
    wait_until(paused_enough, 30, "the agent short of descriptors")
    down = ag.proc.events("target_down", service="svc")
    assert not down, down
    for lst, fillers, _ in holes:
        lst.close()
        for c in fillers:
            c.close()
    # descriptors back (the held checks fail): svc's checks did meet the shortage, and
    # counted it as the agent's own
    ag.admin.wait_metric("netwall_agent_target_checks_total", lambda v: v >= 1,
                         service="svc", target=good.addr, result="local_error")


def test_sigterm_with_checks_in_flight(wall, procs, tmp_path):
    """SIGTERM while http checks on held connections and on pending connects are
    in flight: the agent exits cleanly (under a sanitizer: nothing leaked or touched after
    free)."""
    good = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    hold = start_health_target(procs, "hold")
    hole, fillers, hole_addr = _blackhole()
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": f"{good.addr}, {hold.addr}, {hole_addr}", "health_check": "http /health",
        "health_interval": "0.05", "health_timeout": "30"}})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_up", service="svc", target=good.addr)
    ag.proc.signal(signal.SIGTERM)
    assert ag.proc.wait_exit(15) == 0
    hole.close()
    for c in fillers:
        c.close()


def test_tls_failure_counts_against_the_target(wall, procs, tmp_path):
    """tls = on with the default tcp check: a target that accepts TCP but cannot do TLS
    (here: it speaks plain HTTP and waits for a request, so the handshake stalls) passes
    every check, and each visitor sent to it is reset at connect_timeout. Visitors' failed
    handshakes must count against the target (as their failed connects do) and take it
    out."""
    crt, key = make_cert(tmp_path, "target.internal")
    good = start_health_target(procs, "status:200", tls=(crt, key))
    plain = start_health_target(procs, "status:200")
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": f"{good.addr}, {plain.addr}", "tls": "on", "tls_ca": str(crt),
        "tls_server_name": "target.internal", "health_interval": "0.2"}},
        extra={"connect_timeout": "0.5"})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_up", service="svc", target=plain.addr)
    for _ in range(6):
        http_get_status(gw.port("svc"))
    ag.proc.wait_event("target_down", service="svc", target=plain.addr)
    # the stalled handshakes were logged as such, not as a connect that timed out
    assert ag.proc.events("target_tls_failed", reason="handshake_timeout")
    assert not ag.proc.events("target_connect_failed")


def test_status_code_of_four_digits_is_no_status(wall, procs, tmp_path):
    """An http check answered "HTTP/1.1 2000 X": three digits must be followed by a space
    or CR; a fourth digit makes it no status line at all (bad_answer), not a 200."""
    odd = start_health_target(procs, "status:2000")
    good = start_health_target(procs, "status:200")
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": f"{odd.addr}, {good.addr}", "health_check": "http /health",
        "health_interval": "0.2", "health_fall": "1"}})
    ag.proc.wait_event("target_up", service="svc", target=good.addr)
    ev = ag.proc.wait_event("target_down", service="svc", target=odd.addr)[0]
    assert ev["reason"] == "bad_answer", ev


def _proxy_then_tls(crt, key):
    """A target that reads a PROXY v1 line in the clear, then does TLS and echoes what comes
    until the peer closes. Returns (listener, the header lines it read, its address)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    heads = []

    def serve():
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                return
            with c:
                line = b""
                while not line.endswith(b"\r\n") and len(line) < 108:
                    b = c.recv(1)  # byte by byte: the handshake follows at once
                    if not b:
                        break
                    line += b
                heads.append(line)
                try:
                    with ctx.wrap_socket(c, server_side=True) as t:
                        while (data := t.recv(65536)):
                            t.sendall(data)
                except (OSError, ssl.SSLError):
                    pass
    threading.Thread(target=serve, daemon=True).start()
    return lst, heads, f"127.0.0.1:{lst.getsockname()[1]}"


def test_redial_after_stalled_handshake_writes_proxy_header_once(wall, procs, tmp_path):
    """tls = on with a PROXY header: the first target takes the header and stalls the TLS
    handshake until connect_timeout; the stream dials the second target, which gets the
    header exactly once, in the clear before the handshake (a header missing or sent twice
    breaks the handshake), and then the visitor's bytes."""
    crt, key = make_cert(tmp_path, "target.internal")
    stall = start_health_target(procs, "hold")
    lst, heads, good_addr = _proxy_then_tls(crt, key)
    gw = wall.gateway({"svc": svc(proxy_protocol="v1")})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": f"{stall.addr}, {good_addr}", "health_check": "off", "tls": "on",
        "tls_ca": str(crt), "tls_server_name": "target.internal"}},
        extra={"connect_timeout": "0.5"})
    gw.wait_tunnels(2)
    with socket.create_connection(("127.0.0.1", gw.port("svc")), timeout=10) as s:
        s.sendall(b"hello through a redial\n")
        got = b""
        while len(got) < 23:
            chunk = s.recv(64)
            assert chunk, f"closed after {got!r}"
            got += chunk
    assert got == b"hello through a redial\n"
    assert ag.proc.events("target_tls_failed", reason="handshake_timeout")
    assert len(heads) == 1 and heads[0].startswith(b"PROXY TCP4 127.0.0.1 "), heads
    lst.close()

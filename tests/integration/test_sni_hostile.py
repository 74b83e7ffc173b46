"""A hostile visitor on a port shared by services routed by name (sni =, host =): requests
whose Host a backend may read otherwise than the gateway did, and visitors still naming
their service while the gateway hands its sockets over. Echo servers stand behind the
agents: a routed visitor gets its own bytes back, a refused one the gateway's answer."""

import socket
import struct

from conftest import connect, free_port, svc, wait_until
from test_upgrade import holder

APP = "app.example.test"
CLINIC = "*.clinic.example.test"


def shared(wall, echo, kind, gw_extra=None):
    """Services app and clinic on one gateway port, routed by kind ("sni" or "host"), each
    an echo server behind its own agent."""
    a, b = echo(), echo()
    port = free_port()
    listen = f"127.0.0.1:{port}"
    gw = wall.gateway({"app": svc(["site-a"], listen, **{kind: APP}),
                       "clinic": svc(["site-b"], listen, **{kind: CLINIC})},
                      tunnel_port=free_port(), extra=gw_extra)
    wall.agent("site-a", gw, {"app": a.addr})
    wall.agent("site-b", gw, {"clinic": b.addr})
    gw.wait_tunnels(4)
    return gw, port


def answer(port, data, timeout=10):
    """What comes back for data, until the gateway or the echo server has said all."""
    s = connect(port, timeout=timeout)
    s.sendall(data)
    got = b""
    try:
        while len(got) < len(data) and (chunk := s.recv(65536)):
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return got


def unrouted(gw, reason):
    return gw.metric("netwall_gateway_visitors_unrouted_total", 0, reason=reason)


def client_hello(name):
    """A TLS 1.2-shaped ClientHello record with one server_name."""
    host = name.encode()
    sni = struct.pack("!HBH", len(host) + 3, 0, len(host)) + host
    ext = struct.pack("!HH", 0, len(sni)) + sni
    body = (b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def test_host_repeated_is_refused(wall, echo):
    """RFC 9112 3.2: a request with two Host lines gets 400. Routing by the first Host
    while a backend reads the last sends the visitor to one service's backend with another
    service's name."""
    gw, port = shared(wall, echo, "host")
    head = (b"GET / HTTP/1.1\r\nHost: " + APP.encode()
            + b"\r\nHost: x.clinic.example.test\r\n\r\n")
    got = answer(port, head)
    assert got.startswith(b"HTTP/1.1 400 "), got[:60]
    wait_until(lambda: unrouted(gw, "malformed") == 1, 5, "malformed counted")


def test_host_folded_or_spaced_is_refused(wall, echo):
    """RFC 9112 5.2: obs-fold is refused (or unfolded); 5.1: whitespace before the colon is
    refused; 2.2: a line that begins with whitespace after the request line is refused.
    Read as no Host (the default, or 421), they may carry a Host to a lenient backend."""
    gw, port = shared(wall, echo, "host")
    heads = [
        b"GET / HTTP/1.1\r\nHost:\r\n " + APP.encode() + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : " + APP.encode() + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: x.clinic.example.test\r\nHost: " + APP.encode()
        + b"\r\n\r\n",
    ]
    for i, head in enumerate(heads, 1):
        got = answer(port, head)
        assert got.startswith(b"HTTP/1.1 400 "), (head, got[:60])
        wait_until(lambda: unrouted(gw, "malformed") == i, 5, "malformed counted")


def test_host_with_trailing_dot_is_the_same_name(wall, echo):
    """"app.example.test." is the fully qualified app.example.test (RFC 3986 3.2.2): routed
    to app, not answered 421."""
    gw, port = shared(wall, echo, "host")
    head = b"GET / HTTP/1.1\r\nHost: app.example.test.:80\r\n\r\n"
    assert answer(port, head) == head
    assert unrouted(gw, "unknown_name") == 0


def test_visitor_naming_its_service_during_a_handover_is_served(wall, echo, tmp_path):
    """A visitor that connected to a shared port before a takeover and sends its
    ClientHello after it stays with the old process (gateway.c keeps such visitors while it
    drains): it must be carried to its service, as on a port of its own
    (test_upgrade.py's test_visitor_waiting_for_its_first_byte_is_served_by_the_old_process),
    not refused as "draining"."""
    gw, port = shared(wall, echo, "sni", gw_extra={
        "handover": str(tmp_path / "gateway.sock"), "log_level": "debug",
        "drain_timeout": "30", "route_timeout": "30"})
    hello = client_hello(APP)
    s = connect(port, timeout=10)
    try:
        s.sendall(hello[:3])
        wait_until(lambda: holder(port, s.getsockname()[1]) == gw.proc.pid, 5,
                   "the old process to hold the visitor")
        old, new = gw.takeover()
        new.wait_event("takeover_serving", timeout=15)
        old.wait_event("handover_done", timeout=5)
        # new visitors of the shared port are the new process's: the old one, which keeps
        # its waiting visitor, accepts no more on the sockets it gave away
        fresh = [connect(port, timeout=10) for _ in range(16)]
        for f in fresh:
            f.sendall(hello[:3])
        for f in fresh:
            wait_until(lambda: holder(port, f.getsockname()[1]) is not None, 5, "accepted")
            assert holder(port, f.getsockname()[1]) == new.pid
            f.close()
        s.sendall(hello[3:])
        got = b""
        try:
            while len(got) < len(hello) and (chunk := s.recv(65536)):
                got += chunk
        except ConnectionResetError:
            pass
        assert got == hello, old.tail(20)
    finally:
        s.close()
    assert old.wait_exit(15) == 0


def test_waiting_visitors_hold_no_more_than_they_sent(wall, echo):
    """Visitors that sent a record header and one byte of a ClientHello each hold what
    they sent (counted in netwall_memory_held_bytes) and a first buffer, not a buffer
    grown to the 16 KiB cap for bytes that never came, outside the budget."""
    from conftest import SANITIZED, mem_kib
    gw, port = shared(wall, echo, "sni", gw_extra={"route_timeout": "60"})
    start = b"\x16\x03\x01\x40\x00\x01"
    base = gw.metric("netwall_memory_held_bytes")
    socks = []
    before = mem_kib(gw.proc.pid)["Rss"]
    try:
        for i in range(800):
            s = connect(port, source=f"127.0.0.{2 + i // 200}", timeout=10)
            s.sendall(start)
            socks.append(s)
        gw.admin.wait_metric("netwall_memory_held_bytes",
                             lambda v: v == base + len(start) * len(socks))
        grown = mem_kib(gw.proc.pid)["Rss"] - before
        print(f"{len(socks)} waiting visitors: Rss +{grown} KiB")
        # a route_wait, its two events and its first 2 KiB buffer: under 4 KiB each
        # (sanitizers' redzones and quarantine make growth meaningless there)
        if not SANITIZED:
            assert grown < 4 * len(socks), grown
    finally:
        for s in socks:
            s.close()


def test_reload_moves_a_name_and_drops_the_address_while_visitors_wait(wall, echo):
    """A visitor waiting for its name when a reload gives that name to the other service
    goes to the new owner; one waiting when a reload takes the shared address away is
    closed; their bytes go back to the budget, and the sanitizers see no freed memory
    used."""
    import signal
    from pathlib import Path
    gw, port = shared(wall, echo, "sni", gw_extra={"route_timeout": "60",
                                                   "log_level": "debug"})
    base = gw.metric("netwall_memory_held_bytes")
    hello = client_hello(APP)
    s, t = connect(port, timeout=10), connect(port, timeout=10)
    s.sendall(hello[:3])
    t.sendall(hello[:3])
    gw.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == base + 6)
    conf = Path(gw.config_path)
    text = conf.read_text()
    conf.write_text(text.replace(f"sni = {APP}", "sni = @A@").replace(
        f"sni = {CLINIC}", f"sni = {APP}").replace("sni = @A@", f"sni = {CLINIC}"))
    mark = gw.proc.mark()
    gw.proc.signal(signal.SIGHUP)
    gw.proc.wait_event("reloaded", since=mark)
    s.sendall(hello[3:])
    got = b""
    while len(got) < len(hello) and (chunk := s.recv(65536)):
        got += chunk
    assert got == hello
    gw.proc.wait_event("visitor", service="clinic")
    assert gw.proc.events("visitor", service="app") == []
    # the shared address goes: the waiting visitor is closed, its bytes given back
    other = free_port()
    conf.write_text(conf.read_text().replace(f"127.0.0.1:{port}", f"127.0.0.1:{other}"))
    mark = gw.proc.mark()
    gw.proc.signal(signal.SIGHUP)
    gw.proc.wait_event("reloaded", since=mark)
    t.settimeout(10)
    assert t.recv(16) == b""
    s.close()
    gw.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == base)

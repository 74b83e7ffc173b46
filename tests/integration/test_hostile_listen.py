"""Admission on the gateway: one source cannot take every visitor slot, and silent
connections from the agent's own network cannot lock the agent out."""

import select
import socket

from conftest import closed_within, connect, echo_works, free_port, roundtrip, visitor_closed_within


def test_one_source_cannot_take_every_visitor_slot(wall, echo):
    """max_connections = 20 and the default max_per_source (a quarter of it, at least 8):
    the ninth idle visitor from one address is refused at once; another still gets in."""
    target = echo()
    gw, _ = wall.stack(target.addr, "echo", svc_opts={"max_connections": "20"})
    port = gw.port("echo")
    held = []
    try:
        for _ in range(8):
            s = connect(port, source="127.0.0.1")
            roundtrip(s)
            held.append(s)
        assert visitor_closed_within(port, 5, source="127.0.0.1") is not None, \
            "the ninth visitor from one address stayed"
        gw.proc.wait_event("visitor_rejected", service="echo", reason="max_per_source")
        assert gw.metric("netwall_rejected_total", service="echo", reason="per_source") == 1
        for _ in range(5):
            assert echo_works(port, source="127.0.0.2")
        for s in held:
            roundtrip(s)
    finally:
        for s in held:
            s.close()


def test_max_per_source_key_over_ipv6(wall, echo):
    """max_per_source = 2 on an IPv6 listener: a third visitor from ::1 is refused (the /64 grouping itself is unit-tested in test_listener.c)."""
    target = echo()
    gw, _ = wall.stack(target.addr, "echo",
                       svc_opts={"max_per_source": "2", "listen": [f"[::1]:{free_port()}"]})
    port = gw.port("echo")
    with connect(port, "::1") as a, connect(port, "::1") as b:
        roundtrip(a)
        roundtrip(b)
        assert visitor_closed_within(port, 5, host="::1") is not None, \
            "a third visitor from ::1 stayed"
        gw.proc.wait_event("visitor_rejected", service="echo", reason="max_per_source")


def test_agent_network_cannot_lock_the_agent_out(wall, echo):
    """16 silent connections from the agent's own /24 (the per-network pending cap) and a
    long handshake_timeout: the restarted agent still gets in, by evicting the oldest."""
    target = echo()
    gw, ag = wall.stack(target.addr, "echo", gw_extra={"handshake_timeout": "120"})
    host, port = gw.tunnel_addr.rsplit(":", 1)
    ag.proc.kill()
    gw.wait_tunnels(0, timeout=5)
    held = []
    try:
        for _ in range(16):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect((host, int(port)))
            held.append(s)
        ag.start()
        gw.wait_tunnels(2, timeout=10)
        assert echo_works(gw.port("echo"))
        # two of the silent ones made room
        readable, _, _ = select.select(held, [], [], 2)
        assert sum(1 for s in readable if s.recv(1) == b"") >= 2
    finally:
        for s in held:
            s.close()


def test_silent_visitor_is_closed_after_first_byte_timeout(wall, echo):
    """first_byte_timeout (client-speaks-first services): a visitor that sends nothing is
    closed, and its slot returns; one that speaks at once is served."""
    target = echo()
    gw, _ = wall.stack(target.addr, "echo",
                       svc_opts={"first_byte_timeout": "0.5", "max_per_source": "1"})
    port = gw.port("echo")
    with connect(port) as silent:
        assert visitor_closed_within(port, 5) is not None, "the per-source share held"
        assert closed_within(silent, 10) is not None, "a silent visitor stayed"
    gw.proc.wait_event("visitor_rejected", service="echo", reason="first_byte_timeout")
    assert gw.metric("netwall_rejected_total", service="echo", reason="first_byte") == 1
    assert echo_works(port)

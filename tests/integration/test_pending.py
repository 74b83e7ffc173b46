"""One source cannot fill the gateway's tunnel slots with handshakes that never finish."""

import select
import socket

from conftest import echo_works, wait_until

PER_NET = 16  # GW_MAX_PENDING_PER_NET (per /24 or /64)


def test_silent_handshakes_from_one_address_are_capped(wall, echo):
    target = echo()
    gw, ag = wall.stack(target.addr, "echo")
    host, port = gw.tunnel_addr.rsplit(":", 1)
    mark = gw.proc.mark()
    held = []
    try:
        for _ in range(PER_NET + 4):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect((host, int(port)))
            held.append(s)
        wait_until(lambda: len(gw.proc.events("handshake_failed", since=mark,
                                              reason="evicted")) >= 4,
                   5, "the oldest connections over the cap to be dropped")
        # the refused ones are readable (EOF) now; the others are still waiting for a
        # ClientHello, well inside handshake_timeout
        readable, _, _ = select.select(held, [], [], 0.5)
        refused = sum(1 for s in readable if s.recv(1) == b"")
        assert refused == 4, f"{refused} of {len(held)} silent connections closed at once"
        # the real agent, from another address, is untouched and visitors still pass
        assert gw.metric("netwall_tunnels_up") == 2
        assert echo_works(gw.port("echo"))
    finally:
        for s in held:
            s.close()


def test_flood_from_many_networks_cannot_lock_the_agent_out(wall, echo):
    """300 silent handshakes from 20 networks (15 each, under the per-network cap) exceed the
    256 pending in all: the oldest are dropped, and a restarted agent still gets in."""
    target = echo()
    gw, ag = wall.stack(target.addr, "echo")
    host, port = gw.tunnel_addr.rsplit(":", 1)
    mark = gw.proc.mark()
    failures = gw.metric("netwall_handshake_failures_total")
    held = []
    try:
        for net in range(1, 21):
            for _ in range(15):
                s = socket.socket()
                s.bind((f"127.0.{net}.2", 0))
                s.connect((host, int(port)))
                held.append(s)
        # log lines are rate-limited; the metric counts every one
        wait_until(lambda: gw.metric("netwall_handshake_failures_total") - failures
                   >= 300 - 256, 5, "the oldest pending handshakes to be dropped")
        assert gw.proc.events("handshake_failed", since=mark, reason="evicted")
        ag.proc.kill()
        gw.wait_tunnels(0, timeout=5)
        ag.start()
        gw.wait_tunnels(2, timeout=10)
        assert echo_works(gw.port("echo"))
    finally:
        for s in held:
            s.close()

"""Liveness: a frozen peer is found by PING, a restarted agent replaces its stale
registration at once, and a reload that withdraws an agent closes its tunnels."""

import os
import re
import signal
import time

from conftest import closed_within, connect, echo_works, roundtrip, svc, wait_until


def test_frozen_agent_is_detected_and_heals(wall, echo):
    """SIGSTOP leaves the agent's sockets open, so only PING can tell: the gateway gives up
    within peer_timeout (3 s) and closes the visitor; once thawed, the agent reconnects."""
    target = echo()
    gw, ag = wall.stack(target.addr, "echo")
    s = connect(gw.port("echo"))
    roundtrip(s)
    mark = gw.proc.mark()
    os.kill(ag.proc.pid, signal.SIGSTOP)
    try:
        took = closed_within(s, 6.0)
        assert took is not None, "visitor still open 6 s after its agent froze"
        print(f"visitor closed {took:.2f} s after the agent froze (peer_timeout 3 s)")
        gw.proc.wait_event("peer_timeout", timeout=2, since=mark)
        gw.wait_tunnels(0, timeout=2)
    finally:
        os.kill(ag.proc.pid, signal.SIGCONT)
        s.close()
    gw.wait_tunnels(2, timeout=10)
    assert echo_works(gw.port("echo"))


def test_restarted_agent_replaces_stale_registration(wall, echo):
    """With a long peer_timeout, a new instance of the same agent identity still takes over
    at once: its hello supersedes the old instance's tunnels, and each, silent to the PING
    that follows, is closed within GW_SUPERSEDE_PROBE (reason=replaced), not peer_timeout."""
    target = echo()
    slow = {"ping_interval": "10", "peer_timeout": "60"}
    gw = wall.gateway({"echo": svc()}, extra=slow)
    old = wall.agent("site-a", gw, {"echo": target.addr}, extra=slow)
    gw.wait_tunnels(2)
    os.kill(old.proc.pid, signal.SIGSTOP)       # its tunnels go stale, nothing notices
    try:
        mark = gw.proc.mark()
        t0 = time.monotonic()
        new = wall.agent("site-a", gw, {"echo": target.addr}, name="agent-site-a-new",
                         extra=slow)
        wait_until(lambda: len(gw.proc.events("tunnel_down", since=mark,
                                              reason="replaced")) == 2,
                   5, "both stale tunnels to be replaced")
        took = time.monotonic() - t0
        print(f"stale registration replaced {took:.2f} s after the new instance started")
        gw.wait_tunnels(2, timeout=5)
        new.admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 5)
        assert echo_works(gw.port("echo"))
        assert took < 10, "replacement waited for a timeout instead of the hello"
    finally:
        old.proc.kill()


def test_reload_withdrawing_an_agent_closes_only_its_tunnels(wall, echo):
    target = echo()
    gw = wall.gateway({"echo": svc(agents=["site-a", "site-b"])})
    wall.agent("site-a", gw, {"echo": target.addr})
    wall.agent("site-b", gw, {"echo": target.addr})
    gw.wait_tunnels(4)

    text = gw.config_path.read_text()
    text = re.sub(r"\[agent site-b\]\nfingerprint = [0-9a-f]+\n", "", text)
    text = text.replace("agents = site-a, site-b", "agents = site-a")
    assert "site-b" not in text
    gw.config_path.write_text(text)
    mark = gw.proc.mark()
    gw.proc.signal(signal.SIGHUP)

    gw.proc.wait_event("reloaded", timeout=5, since=mark)
    wait_until(lambda: len(gw.proc.events("tunnel_down", since=mark, agent="site-b")) == 2,
               5, "site-b's tunnels to close")
    downs = gw.proc.events("tunnel_down", since=mark)
    assert {e.get("agent") for e in downs} == {"site-b"}
    assert {e.get("reason") for e in downs} == {"not_allowed"}
    gw.wait_tunnels(2, timeout=5)
    assert echo_works(gw.port("echo"))

"""HTTP/2 stream IDs run out after about a billion streams on one tunnel: the gateway
retires such a tunnel (no new streams, closed once empty) and the agent redials, without a
visitor noticing. The gateway starts its stream IDs just short of the limit (a test hook)."""

from conftest import connect, echo_works, needs_test_hooks, roundtrip, svc, wait_until


@needs_test_hooks
def test_tunnel_retires_before_stream_ids_run_out(wall, echo, monkeypatch):
    # slot 0 retires past 2^30; slot 1 past 2^30 + 2^26, far away
    monkeypatch.setenv("NETWALL_TEST_STREAM_ID", str((1 << 30) - 21))
    target = echo()
    gw = wall.gateway({"echo": svc()})
    monkeypatch.delenv("NETWALL_TEST_STREAM_ID")
    ag = wall.agent("site-a", gw, {"echo": target.addr})
    gw.wait_tunnels(2)

    for i in range(60):
        assert echo_works(gw.port("echo")), f"visitor {i} was not served"

    retired = wait_until(lambda: gw.proc.events("tunnel_retiring", reason="stream_ids_used"),
                         3, "a tunnel to retire after slot 0 passed 2^30")
    assert {e.get("slot") for e in retired} == {"0"}
    gw.wait_tunnels(2, timeout=5)                   # the agent redialled slot 0
    ag.admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 5)
    assert gw.metric("netwall_rejected_total", service="echo", reason="no_agent") == 0


@needs_test_hooks
def test_retiring_tunnel_with_a_long_stream_is_replaced_at_once(wall, echo, monkeypatch):
    """One tunnel, one long-lived visitor: when the tunnel retires, the agent dials its
    replacement at once (GOAWAY), new visitors use it, and the long visitor goes on."""
    monkeypatch.setenv("NETWALL_TEST_STREAM_ID", str((1 << 30) - 5))
    target = echo()
    gw = wall.gateway({"echo": svc()})
    monkeypatch.delenv("NETWALL_TEST_STREAM_ID")
    wall.agent("site-a", gw, {"echo": target.addr}, extra={"tunnels": "1"})
    gw.wait_tunnels(1)

    held = connect(gw.port("echo"))
    roundtrip(held)
    for i in range(10):                              # walks stream IDs past 2^30
        assert echo_works(gw.port("echo")), f"visitor {i} was not served"
    gw.proc.wait_event("tunnel_retiring", timeout=3)
    gw.wait_tunnels(2, timeout=5)                     # the replacement, up beside the old one
    for i in range(10):
        assert echo_works(gw.port("echo")), f"visitor {i} after retirement was not served"
    roundtrip(held)                                   # the long visitor still works
    assert gw.metric("netwall_rejected_total", service="echo", reason="no_agent") == 0
    assert gw.proc.events("tunnel_down", reason="replaced") == []
    old = gw.proc.events("tunnel_retiring")[0]["peer"]
    held.close()
    # the old tunnel goes once empty (closed by whichever side notices first)
    wait_until(lambda: gw.proc.events("tunnel_down", peer=old), 6, "the old tunnel to close")
    gw.wait_tunnels(1, timeout=3)
    assert echo_works(gw.port("echo"))

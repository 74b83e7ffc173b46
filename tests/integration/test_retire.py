"""HTTP/2 stream IDs run out after about a billion streams on one tunnel: the gateway
retires such a tunnel (no new streams, closed once empty) and the agent redials, without a
visitor noticing. The gateway starts its stream IDs just short of the limit (a test hook)."""

from conftest import echo_works, svc, wait_until


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

    retired = wait_until(lambda: gw.proc.events("tunnel_retired", reason="stream_ids_used"),
                         3, "a tunnel to retire after slot 0 passed 2^30")
    assert {e.get("slot") for e in retired} == {"0"}
    gw.wait_tunnels(2, timeout=5)                   # the agent redialled slot 0
    ag.admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 5)
    assert gw.metric("netwall_rejected_total", service="echo", reason="no_agent") == 0

"""Restarts, crashes and missing agents."""

import time

from conftest import (closed_within, connect, curl_sha256, roundtrip, svc,
                      visitor_closed_within)


def test_gateway_restart_heals_within_3s(wall, nginx, www):
    web = nginx()
    gw, ag = wall.stack(web.addr, "web")
    url = f"http://127.0.0.1:{gw.port('web')}/1k.bin"
    assert curl_sha256(url)[1] == www["1k.bin"].sha256

    gw.proc.kill()
    t0 = time.monotonic()
    gw.restart(wait=False)
    gw.proc.wait_event("tunnel_up", timeout=3, agent="site-a")
    rc, sha, _, err = curl_sha256(url, timeout=3)
    took = time.monotonic() - t0
    print(f"restart to first served request: {took:.2f}s")

    assert rc == 0, f"curl after restart failed ({rc}): {err}"
    assert sha == www["1k.bin"].sha256
    assert took < 3, f"first request served {took:.2f}s after the restart"
    gw.wait_tunnels(2)   # the agent heals all of its tunnels


def test_agent_kill_closes_idle_visitor_within_1s(wall, echo):
    target = echo()
    gw, ag = wall.stack(target.addr, "echo")
    with connect(gw.port("echo")) as s:
        roundtrip(s)
        gw.admin.wait_metric("netwall_streams_open", lambda v: v == 1, 5)

        ag.proc.kill()
        took = closed_within(s, 1.0)

    assert took is not None, "visitor still open 1 s after the agent was killed"
    print(f"visitor closed {took * 1000:.0f} ms after the agent died")
    gw.proc.wait_event("tunnel_down", agent="site-a")
    gw.wait_tunnels(0, timeout=5)


def test_no_agent_visitor_closed_promptly(wall):
    gw = wall.gateway({"lonely": svc()})
    before = gw.metric("netwall_rejected_total", default=0.0, service="lonely", reason="no_agent")

    took = visitor_closed_within(gw.port("lonely"), 1.0)
    assert took is not None, "visitor with no agent connected was not closed within 1 s"

    gw.proc.wait_event("visitor_rejected", service="lonely", reason="no_agent")
    after = gw.metric("netwall_rejected_total", service="lonely", reason="no_agent")
    assert after == before + 1


def test_two_agents_share_and_fail_over(wall, nginx, www):
    web = nginx()
    gw = wall.gateway({"web": svc(agents=["site-a", "site-b"])})
    a = wall.agent("site-a", gw, {"web": web.addr})
    b = wall.agent("site-b", gw, {"web": web.addr})
    gw.wait_tunnels(4)
    url = f"http://127.0.0.1:{gw.port('web')}/1k.bin"
    want = www["1k.bin"].sha256

    for i in range(20):
        rc, sha, _, err = curl_sha256(url, timeout=10)
        assert rc == 0 and sha == want, f"request {i}: {err}"
    served = {"site-a": a.metric("netwall_bytes_out_total"),
              "site-b": b.metric("netwall_bytes_out_total")}
    print(f"bytes written to the target by each agent after 20 requests: {served}")
    assert all(v > 0 for v in served.values()), f"streams not spread over both agents: {served}"

    a.proc.kill()
    gw.wait_tunnels(2, timeout=5)
    for i in range(20):
        rc, sha, _, err = curl_sha256(url, timeout=10)
        assert rc == 0 and sha == want, f"request {i} after site-a died: {err}"

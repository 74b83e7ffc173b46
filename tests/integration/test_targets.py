"""Several targets per agent service, with health checks.

One service of the agent lists several targets; new streams go round robin over the
targets not down; a target that fails its checks (TCP connect, or an HTTP GET whose status
must be 2xx/3xx) is dropped, and taken back once it passes again; a service whose targets
are all down is no longer announced, so the gateway sends its visitors to another agent or
refuses them at once. Every check is bounded in time and in bytes.
"""
import json
import signal
import socket
import subprocess

import pytest

from conftest import (SANITIZED, http_get, start_health_target, start_nginx, svc,
                      visitor_closed_within, wait_until)

FAST = {"health_interval": "0.2", "health_timeout": "0.5", "health_fall": "2",
        "health_rise": "2"}


def who_root(tmp_path, name):
    """A document root whose who.txt names it, and a /health page."""
    d = tmp_path / f"root-{name}"
    d.mkdir()
    (d / "who.txt").write_text(name)
    (d / "health").write_text("ok")
    return d


def get_who(gw, service="svc"):
    status, body = http_get(gw.port(service), "/who.txt", timeout=5)
    return status, body


def status_json(admin):
    return json.loads(http_get(admin.port, "/status")[1])


def targets_of(admin, service="svc"):
    return {t["target"]: t for t in status_json(admin)["services"][service]}


def test_spread_fail_over_and_back(wall, procs, tmp_path):
    """Two nginx targets share the streams; one killed is dropped (target_down), every
    request then reaches the other; restarted, it is taken back (target_up)."""
    a = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    b = start_nginx(procs, tmp_path, who_root(tmp_path, "B"))
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {"target": f"{a.addr}, {b.addr}", **FAST}})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_up", service="svc", target=a.addr)
    ag.proc.wait_event("target_up", service="svc", target=b.addr)

    seen = [get_who(gw) for _ in range(20)]
    assert all(s == 200 for s, _ in seen)
    counts = {w: sum(1 for _, x in seen if x == w) for w in "AB"}
    assert counts == {"A": 10, "B": 10}, counts  # round robin, one stream at a time
    assert ag.metric("netwall_agent_target_streams_total", service="svc", target=a.addr) == 10
    assert ag.metric("netwall_agent_target_up", service="svc", target=a.addr) == 1

    mark = ag.proc.mark()
    a.proc.kill()
    ev = ag.proc.wait_event("target_down", since=mark, service="svc", target=a.addr)
    assert ev[0]["reason"] in ("connect_failed", "stream_connect_failed")
    assert [get_who(gw) for _ in range(20)] == [(200, "B")] * 20
    assert ag.metric("netwall_agent_target_up", service="svc", target=a.addr) == 0
    assert ag.metric("netwall_agent_target_checks_total", service="svc", target=a.addr,
                     result="connect_failed") >= 1
    st = targets_of(ag.admin)
    assert st[a.addr]["state"] == "down" and st[b.addr]["state"] == "up"
    page = http_get(ag.admin.port, "/")[1]
    assert f"<td>svc</td><td>{a.addr}</td><td class=\"down\">down</td>" in page
    assert f"<td>svc</td><td>{b.addr}</td><td class=\"up\">up</td>" in page
    # the service has a target up: still announced, no re-hello
    assert "svc" in status_json(ag.admin)["announced"].split(",")

    mark = ag.proc.mark()
    start_nginx(procs, tmp_path, tmp_path / "root-A", port=a.port)
    ag.proc.wait_event("target_up", since=mark, service="svc", target=a.addr)
    again = {get_who(gw)[1] for _ in range(4)}
    assert again == {"A", "B"}


@pytest.mark.parametrize("proxy", [False, True])
def test_connect_refused_dials_the_other_target(wall, procs, tmp_path, proxy):
    """Between checks, a target that refuses a visitor's connect: the stream dials the
    other target once, so no visitor sees the outage (with its PROXY header, when the
    service has one), and the refusals take the target out."""
    a = start_nginx(procs, tmp_path, who_root(tmp_path, "A"), proxy_protocol=proxy)
    b = start_nginx(procs, tmp_path, who_root(tmp_path, "B"), proxy_protocol=proxy)
    gw = wall.gateway({"svc": svc(proxy_protocol="v1" if proxy else "off")})
    ag = wall.agent("site-a", gw, {"svc": {"target": f"{a.addr}, {b.addr}",
                                           "health_interval": "3600"}})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_up", service="svc", target=a.addr)
    ag.proc.wait_event("target_up", service="svc", target=b.addr)
    mark = ag.proc.mark()
    a.proc.kill()
    assert [get_who(gw) for _ in range(20)] == [(200, "B")] * 20
    assert ag.proc.events("target_connect_failed", since=mark)
    ev = ag.proc.wait_event("target_down", since=mark, service="svc", target=a.addr)
    assert ev[0]["reason"] in ("connect_failed", "stream_connect_failed")
    assert ag.metric("netwall_agent_target_checks_total", service="svc", target=a.addr,
                     result="stream_connect_failed") >= 1
    assert ag.metric("netwall_stream_resets_total") == 0
    if proxy:  # every request B logged came with the visitor's address
        log = b.extra["access_log"].read_text().splitlines()
        assert len(log) == 20 and all(" pp=127.0.0.1:" in x for x in log), log


def test_http_check_drops_bad_status(wall, procs, tmp_path):
    """A target that accepts TCP but answers 500 on the health path is dropped by an http
    check; a tcp check of the same two targets keeps both."""
    good = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    bad = start_health_target(procs, "status:500")
    targets = f"{good.addr}, {bad.addr}"
    gw = wall.gateway({"web": svc(), "raw": svc()})
    ag = wall.agent("site-a", gw, {
        "web": {"target": targets, "health_check": "http /health", **FAST},
        "raw": {"target": targets, "health_check": "tcp", **FAST}})
    gw.wait_tunnels(2)
    ev = ag.proc.wait_event("target_down", service="web", target=bad.addr)
    assert ev[0]["reason"] == "bad_status"
    ag.proc.wait_event("target_up", service="web", target=good.addr)
    assert [get_who(gw, "web") for _ in range(6)] == [(200, "A")] * 6
    # tcp: both up after several checks, and the bad one still gets its share
    ag.admin.wait_metric("netwall_agent_target_checks_total", lambda v: v >= 3, service="raw",
                         target=bad.addr, result="ok")
    assert ag.metric("netwall_agent_target_up", service="raw", target=bad.addr) == 1
    assert not ag.proc.events("target_down", service="raw")
    statuses = [http_get_status(gw.port("raw")) for _ in range(4)]
    assert sorted(statuses) == [200, 200, 500, 500]


def http_get_status(port):
    try:
        return http_get(port, "/who.txt", timeout=5)[0]
    except Exception as e:  # urllib raises on 500: its code is the answer
        return getattr(e, "code", None)


def test_all_down_not_announced(wall, procs, tmp_path):
    """Every target of site-a's service down: site-a stops announcing it, visitors go to
    site-b; with site-b gone too, a visitor is refused at once (no_agent). The target back:
    announced again."""
    a = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    b = start_nginx(procs, tmp_path, who_root(tmp_path, "B"))
    gw = wall.gateway({"svc": svc(agents=("site-a", "site-b"))})
    ag_a = wall.agent("site-a", gw, {"svc": {"target": a.addr, "health_check": "tcp", **FAST}})
    ag_b = wall.agent("site-b", gw, {"svc": b.addr})
    gw.wait_tunnels(4)

    mark = gw.proc.mark()
    a.proc.kill()
    ag_a.proc.wait_event("target_down", service="svc", target=a.addr)
    ag_a.proc.wait_event("services_announced", services="")
    # the gateway asked both of site-a's tunnels again and heard no service
    gw.proc.wait_event("tunnel_up", since=mark, count=2, agent="site-a", services="")
    assert [get_who(gw) for _ in range(20)] == [(200, "B")] * 20

    ag_b.proc.signal(signal.SIGTERM)
    ag_b.proc.wait_exit(10)
    gw.wait_tunnels(2)
    took = visitor_closed_within(gw.port("svc"), 10)
    assert took is not None, "the visitor was kept waiting"
    gw.admin.wait_metric("netwall_rejected_total", lambda v: v >= 1, service="svc",
                         reason="no_agent")

    mark = gw.proc.mark()
    start_nginx(procs, tmp_path, tmp_path / "root-A", port=a.port)
    ag_a.proc.wait_event("services_announced", services="svc")
    gw.proc.wait_event("tunnel_up", since=mark, count=2, agent="site-a", services="svc")
    assert [get_who(gw) for _ in range(4)] == [(200, "A")] * 4


def test_check_bounds(wall, procs, tmp_path):
    """A target that never answers fails on health_timeout; one that sends an answer
    without a line end fails once HEALTH_ANSWER_MAX bytes are read; one whose body never
    ends passes: only the status line is read, and each check completes. Reading on would
    end each in a timeout instead."""
    good = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    hold = start_health_target(procs, "hold")
    noline = start_health_target(procs, "noline")
    endless = start_health_target(procs, "endless")
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": f"{good.addr}, {hold.addr}, {noline.addr}, {endless.addr}",
        "health_check": "http /health", "health_interval": "0.1", "health_timeout": "0.3"}})
    gw.wait_tunnels(2)
    ev = ag.proc.wait_event("target_down", service="svc", target=hold.addr)
    assert ev[0]["reason"] == "timeout"
    ev = ag.proc.wait_event("target_down", service="svc", target=noline.addr)
    assert ev[0]["reason"] == "bad_answer"
    ag.admin.wait_metric("netwall_agent_target_checks_total", lambda v: v >= 20, service="svc",
                         target=endless.addr, result="ok")
    assert not ag.proc.events("target_down", target=endless.addr)
    rss = _rss_kib(ag.proc.pid)
    n = ag.metric("netwall_agent_target_checks_total", service="svc", target=noline.addr)
    ag.admin.wait_metric("netwall_agent_target_checks_total", lambda v: v >= n + 20,
                         service="svc", target=noline.addr)
    # twenty more endless answers cost nothing (a sanitizer keeps freed memory a while)
    assert _rss_kib(ag.proc.pid) - rss < (16384 if SANITIZED else 2048)


def _rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_reload_keeps_state(wall, procs, tmp_path):
    """SIGHUP with one more target: the target that was down stays down (no new
    target_up/target_down for it), the new one is checked and taken in."""
    a = start_nginx(procs, tmp_path, who_root(tmp_path, "A"))
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {"target": f"{a.addr}, {dead_addr}", **FAST}})
    gw.wait_tunnels(2)
    ag.proc.wait_event("target_down", service="svc", target=dead_addr)
    b = start_nginx(procs, tmp_path, who_root(tmp_path, "B"))
    cfg = ag.config_path.read_text()
    ag.config_path.write_text(cfg.replace(f"{a.addr}, {dead_addr}",
                                          f"{a.addr}, {dead_addr}, {b.addr}"))
    mark = ag.proc.mark()
    ag.proc.signal(signal.SIGHUP)
    ag.proc.wait_event("reloaded", since=mark)
    ag.proc.wait_event("target_up", since=mark, service="svc", target=b.addr)
    assert ag.metric("netwall_agent_target_up", service="svc", target=dead_addr) == 0
    assert not ag.proc.events("target_up", since=mark, target=a.addr)
    assert not ag.proc.events("target_down", since=mark, target=dead_addr)
    wait_until(lambda: {get_who(gw)[1] for _ in range(4)} == {"A", "B"}, 10, "both serving")
    dead.close()


def make_cert(tmp_path, name):
    crt, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


def test_http_check_over_tls(wall, procs, tmp_path):
    """tls = on: the http check speaks TLS with the service's verification; a target whose
    certificate names another host fails it (tls_failed) while the others pass."""
    good_crt, good_key = make_cert(tmp_path, "target.internal")
    other_crt, other_key = make_cert(tmp_path, "other.internal")
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(good_crt.read_text() + other_crt.read_text())
    good = start_health_target(procs, "status:204", tls=(good_crt, good_key))
    other = start_health_target(procs, "status:204", tls=(other_crt, other_key))
    gw = wall.gateway({"svc": svc()})
    ag = wall.agent("site-a", gw, {"svc": {
        "target": f"{good.addr}, {other.addr}", "tls": "on", "tls_ca": str(bundle),
        "tls_server_name": "target.internal", "health_check": "http /health", **FAST}})
    gw.wait_tunnels(2)
    ev = ag.proc.wait_event("target_down", service="svc", target=other.addr)
    assert ev[0]["reason"] == "tls_failed"
    ag.proc.wait_event("target_up", service="svc", target=good.addr)
    ag.admin.wait_metric("netwall_agent_target_checks_total", lambda v: v >= 3, service="svc",
                         target=good.addr, result="ok")

"""rate_limit and visitor_rate_limit: token buckets at the gateway, each direction, so one
service's visitors cannot take the link from another's. Measured with iperf3 through the
wall: what the limiter lets through is compared with the configured rate (an upper bound
the bucket enforces; the lower bound only says the limiter does not stall)."""

import json
import shutil
import subprocess

import pytest

from conftest import free_port, svc

RATE = 1_000_000   # bytes per second
SECONDS = 3


@pytest.fixture
def iperf3(procs):
    if shutil.which("iperf3") is None:
        pytest.fail("iperf3 is missing (package iperf3; scripts/deps.sh installs it)")

    def start(name):
        port = free_port()
        procs.start(name, ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)])
        from conftest import wait_listen
        wait_listen(port, 10)
        return f"127.0.0.1:{port}"
    return start


def run_iperf(port, *args):
    """Bytes per second the receiver counted, and per stream."""
    r = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(SECONDS),
                        "--json", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    out = json.loads(r.stdout)
    total = out["end"]["sum_received"]["bits_per_second"] / 8
    streams = [s["receiver"]["bits_per_second"] / 8 for s in out["end"]["streams"]]
    return total, streams


def bound(rate):
    """The most a bucket of this rate lets through in SECONDS (its burst on top)."""
    return rate * 1.15 + max(rate / 8, 16384) / SECONDS


@pytest.mark.parametrize("reverse", [False, True], ids=["upload", "download"])
def test_each_visitor_is_held_to_its_rate(wall, iperf3, reverse):
    target = iperf3("iperf3")
    gw, _ = wall.stack(target, svc_opts={"visitor_rate_limit": str(RATE)})
    total, streams = run_iperf(gw.port("svc"), "-P", "2", *(["-R"] if reverse else []))
    assert len(streams) == 2
    for s in streams:
        assert RATE * 0.5 < s < bound(RATE), f"one visitor moved {s:.0f} B/s at {RATE}"
    assert total > RATE * 1.2, f"two visitors together moved only {total:.0f} B/s"


def test_a_service_is_held_to_its_rate_and_does_not_starve_another(wall, iperf3):
    a, b = iperf3("iperf3-a"), iperf3("iperf3-b")
    gw = wall.gateway({"slow": svc(rate_limit=str(RATE)), "fast": svc()})
    wall.agent("site-a", gw, {"slow": a, "fast": b})
    gw.wait_tunnels(2)
    runs = {}

    import threading
    def go(name, port):
        runs[name] = run_iperf(port, "-P", "3")
    threads = [threading.Thread(target=go, args=(n, gw.port(n))) for n in ("slow", "fast")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slow, fast = runs["slow"][0], runs["fast"][0]
    assert RATE * 0.5 < slow < bound(RATE), f"the limited service moved {slow:.0f} B/s at {RATE}"
    assert fast > slow * 3, f"the unlimited service moved {fast:.0f} B/s beside {slow:.0f}"
    assert gw.metric("netwall_service_rate_limited_total", service="slow") > 0
    assert gw.metric("netwall_service_rate_limited_total", 0, service="fast") == 0

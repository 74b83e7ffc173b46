"""HTTP through the wall: curl -> gateway -> agent -> nginx, byte-exact."""

import subprocess

import pytest

from conftest import HAVE_IPV6, curl_sha256, free_port, svc


@pytest.mark.parametrize("name", ["empty.bin", "1k.bin", "64m.bin"])
def test_body_is_byte_exact(wall, nginx, www, name):
    web = nginx()
    gw, ag = wall.stack(web.addr, "web")
    want = www[name]

    rc, sha, size, err = curl_sha256(f"http://127.0.0.1:{gw.port('web')}/{name}")

    assert rc == 0, f"curl failed ({rc}): {err}"
    assert size == want.size
    assert sha == want.sha256
    # The body was counted on both local legs (headers add a little).
    assert gw.metric("netwall_bytes_out_total") >= want.size
    assert ag.metric("netwall_bytes_in_total") >= want.size


def test_admin_endpoints(wall, nginx):
    web = nginx()
    gw, ag = wall.stack(web.addr, "web")
    for admin in (gw.admin, ag.admin):
        status, body = admin.healthz()
        assert (status, body.strip()) == (200, "ok")
        text = admin.metrics_text()
        for name in ("netwall_tunnels_up", "netwall_streams_open", "netwall_bytes_in_total",
                     "netwall_bytes_out_total"):
            assert admin.metric(name) >= 0, name
    assert gw.metric("netwall_handshake_failures_total") == 0
    assert "# TYPE netwall_tunnels_up gauge" in gw.admin.metrics_text()
    assert "# TYPE netwall_bytes_out_total counter" in text


def test_several_requests_on_one_visitor_connection(wall, nginx, www):
    """HTTP keep-alive: curl fetches two URLs over one tunneled connection."""
    web = nginx()
    gw, _ = wall.stack(web.addr, "web")
    base = f"http://127.0.0.1:{gw.port('web')}"
    r = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-o", "/dev/null",
                        "-w", "%{num_connects} %{http_code}\n", f"{base}/1k.bin", f"{base}/1k.bin"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines == ["1", "200", "0", "200"], r.stdout   # second request reused the connection


@pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6 loopback (::1) on this host")
def test_ipv6_visitor_listener(wall, nginx, www):
    web = nginx()
    port6 = free_port()
    gw = wall.gateway({"web": svc(listen=[f"127.0.0.1:{free_port()}", f"[::1]:{port6}"])})
    wall.agent("site-a", gw, {"web": web.addr})
    gw.wait_tunnels(2)

    rc, sha, size, err = curl_sha256(f"http://[::1]:{port6}/1k.bin", "-g")
    assert rc == 0, f"curl over [::1] failed ({rc}): {err}"
    assert (sha, size) == (www["1k.bin"].sha256, 1024)

    rc, sha, size, err = curl_sha256(f"http://127.0.0.1:{gw.port('web', 0)}/1k.bin")
    assert rc == 0, f"curl over 127.0.0.1 failed ({rc}): {err}"
    assert sha == www["1k.bin"].sha256

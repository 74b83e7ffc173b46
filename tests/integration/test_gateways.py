"""Several gateways: each with a key of its own, pinned on its agent's `gateway` line; the
agent keeps its tunnels to every gateway it is given, and a gateway killed takes nothing
from the visitors of the others."""

import re

from conftest import curl_sha256, http_get, svc


def two_gateways(wall, target, pin_b=None):
    a = wall.gateway({"web": svc()}, name="gw-a")
    b = wall.gateway({"web": svc()}, name="gw-b", identity=wall.keys["gateway-b"])
    pin_b = pin_b or b.identity.fingerprint
    ag = wall.agent("site-a", [a, b], {"web": target},
                    gateway_addrs=[f"{a.tunnel_addr} {a.identity.fingerprint}",
                                   f"{b.tunnel_addr} {pin_b}"])
    return a, b, ag


def tunnel_rows(ag):
    """The agent's status page: (gateway, state) of every tunnel it keeps."""
    status, page = http_get(ag.admin.port, "/")
    assert status == 200
    return re.findall(r'<tr><td>([^<]+)</td><td class="n">\d+</td><td class="\w+">(\w+)</td>',
                      page)


def test_each_gateway_pinned_and_one_killed(wall, nginx, www):
    web = nginx()
    a, b, ag = two_gateways(wall, web.addr)
    a.wait_tunnels(2)
    b.wait_tunnels(2)
    want = www["1k.bin"].sha256
    urls = {g: f"http://127.0.0.1:{g.port('web')}/1k.bin" for g in (a, b)}
    for g in (a, b):
        assert curl_sha256(urls[g])[1] == want

    ag.admin.wait_metric("netwall_tunnels_up", lambda v: v == 4, 10)
    assert sorted(tunnel_rows(ag)) == sorted([(a.tunnel_addr, "up")] * 2 +
                                             [(b.tunnel_addr, "up")] * 2)

    # visitors keep using the other gateway while this one is killed
    import threading
    stop, results = threading.Event(), []

    def visitor_loop():
        while not stop.is_set() or len(results) < 5:
            rc, sha, _, err = curl_sha256(urls[b])
            results.append((rc, sha == want, err))
    loop = threading.Thread(target=visitor_loop)
    loop.start()
    try:
        a.proc.kill()                               # kill -9
        ag.proc.wait_event("tunnel_down", gateway=a.tunnel_addr, count=2)
    finally:
        stop.set()
        loop.join(60)
    bad = [r for r in results if r[0] != 0 or not r[1]]
    assert not bad, f"{len(bad)} of {len(results)} visitors of the surviving gateway failed: {bad[:3]}"
    rows = tunnel_rows(ag)                          # the page shows each gateway
    assert sorted(rows) == sorted([(a.tunnel_addr, "connecting")] * 2 +
                                  [(b.tunnel_addr, "up")] * 2), rows
    for i in range(20):                             # the other's visitors see no error
        rc, sha, _, err = curl_sha256(urls[b])
        assert rc == 0 and sha == want, f"request {i} through the surviving gateway: {err}"

    a.restart(wait=False)
    a.wait_tunnels(2)                               # the dead one's visitors come back
    assert curl_sha256(urls[a])[1] == want
    assert curl_sha256(urls[b])[1] == want


def test_a_wrong_pin_refuses_that_gateway_only(wall, nginx, www):
    web = nginx()
    a, b, ag = two_gateways(wall, web.addr, pin_b=wall.keys["stranger"].fingerprint)
    a.wait_tunnels(2)
    ag.proc.wait_event("dial_failed", gateway=b.tunnel_addr)
    ag.admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 10)
    assert ag.admin.metric("netwall_tunnels_up") == 2   # gateway a's two, none of b's
    assert b.proc.events("tunnel_up") == []
    assert curl_sha256(f"http://127.0.0.1:{a.port('web')}/1k.bin")[1] == www["1k.bin"].sha256


def private_hosts(wall, text):
    """A command prefix that runs a program with its own /etc/hosts (a private mount
    namespace: util-linux's unshare, then a bind mount over the file)."""
    import shutil
    import subprocess
    if shutil.which("unshare") is None:
        raise AssertionError("unshare is missing (package util-linux)")
    hosts = wall.dir / "hosts"
    hosts.write_text(text)
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            f"mount --bind {hosts} /etc/hosts && getent ahostsv4 wall.test"],
                           capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        import pytest
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind {hosts} /etc/hosts && exec "$@"', "sh"]


def test_a_name_with_two_addresses_is_two_gateways(wall, nginx, www):
    """DNS round robin: one name, two A records, a gateway behind each; the agent keeps
    tunnels to both, so a visitor sent to either address is served."""
    from conftest import free_port
    web = nginx()
    port = free_port()
    a = wall.gateway({"web": svc()}, name="gw-a", tunnel_host="127.0.0.1", tunnel_port=port)
    b = wall.gateway({"web": svc()}, name="gw-b", tunnel_host="127.0.0.2", tunnel_port=port)
    prefix = private_hosts(wall, "127.0.0.1 localhost\n127.0.0.1 wall.test\n"
                                 "127.0.0.2 wall.test\n")
    ag = wall.agent("site-a", [a, b], {"web": web.addr}, prefix=prefix,
                    gateway_addrs=[f"wall.test:{port}"])
    a.wait_tunnels(2)
    b.wait_tunnels(2)
    ag.proc.wait_event("tunnel_up", gateway=f"127.0.0.1:{port}", count=2)
    ag.proc.wait_event("tunnel_up", gateway=f"127.0.0.2:{port}", count=2)
    want = www["1k.bin"].sha256
    for g in (a, b):
        assert curl_sha256(f"http://127.0.0.1:{g.port('web')}/1k.bin")[1] == want
    b.proc.kill()
    ag.proc.wait_event("tunnel_down", gateway=f"127.0.0.2:{port}", count=2)
    for i in range(10):
        rc, sha, _, err = curl_sha256(f"http://127.0.0.1:{a.port('web')}/1k.bin")
        assert rc == 0 and sha == want, f"request {i} through the other address: {err}"

"""The wall across network namespaces: the private side accepts no inbound
connection at all, and is still reachable through the gateway.

Two namespaces made here, joined by a veth pair with TEST-NET-1 addresses
that exist only inside them:
    pub  (192.0.2.1/24): gateway; the visitor (curl) runs here too
    priv (192.0.2.2/24): agent and target; nftables drops every inbound SYN
"""

import os
import subprocess

import pytest

from conftest import start_nginx, wait_until

PUB_ADDR, PRIV_ADDR = "192.0.2.1", "192.0.2.2"
TUNNEL_PORT, SERVICE_PORT, TARGET_PORT = 17443, 18080, 18081


def sh(*argv, check=True, timeout=20):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({r.returncode}): {r.stderr}")
    return r


def in_ns(ns, *argv, **kw):
    return sh("ip", "netns", "exec", ns, *argv, **kw)


@pytest.fixture
def namespaces():
    tag = f"{os.getpid() % 100000}"
    pub, priv = f"nwpub{tag}", f"nwpriv{tag}"
    veth_pub, veth_priv = f"nwp{tag}", f"nwq{tag}"
    r = sh("ip", "netns", "add", pub, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot create network namespaces (ip netns add: {r.stderr.strip()})")
    made = [pub]
    try:
        sh("ip", "netns", "add", priv)
        made.append(priv)
        sh("ip", "link", "add", veth_pub, "netns", pub, "type", "veth", "peer", "name",
           veth_priv, "netns", priv)
        for ns, dev, addr in ((pub, veth_pub, PUB_ADDR), (priv, veth_priv, PRIV_ADDR)):
            in_ns(ns, "ip", "link", "set", "lo", "up")
            in_ns(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            in_ns(ns, "ip", "link", "set", dev, "up")
        yield pub, priv
    finally:
        for ns in made:
            sh("ip", "netns", "del", ns, check=False)


FIREWALL = """
table inet wall_test {
    chain input {
        type filter hook input priority 0; policy accept;
        iif "lo" accept
        tcp flags & (syn | ack) == syn drop
    }
}
"""


def test_private_side_reached_only_through_the_wall(wall, procs, tmp_path, www, namespaces):
    pub, priv = namespaces
    start_nginx(procs, tmp_path, www.root, host="0.0.0.0", port=TARGET_PORT,
                      prefix=("ip", "netns", "exec", priv))
    wait_until(lambda: in_ns(priv, "curl", "-sf", "-o", "/dev/null",
                             f"http://127.0.0.1:{TARGET_PORT}/1k.bin", check=False).returncode == 0,
               10, "nginx in priv")
    direct = f"http://{PRIV_ADDR}:{TARGET_PORT}/1k.bin"
    # Without the firewall the target is reachable from pub (so the next check means something).
    assert in_ns(pub, "curl", "-sf", "-o", "/dev/null", "--max-time", "5", direct,
                 check=False).returncode == 0

    fw = tmp_path / "fw.nft"
    fw.write_text(FIREWALL)
    in_ns(priv, "nft", "-f", fw)
    blocked = in_ns(pub, "curl", "-sf", "-o", "/dev/null", "--max-time", "2", direct, check=False)
    assert blocked.returncode in (7, 28), f"direct connection to priv was not blocked: {blocked}"

    ns = ("ip", "netns", "exec")
    gw = wall.gateway({"web": {"agents": ["site-a"], "listen": [f"127.0.0.1:{SERVICE_PORT}"]}},
                      tunnel_host=PUB_ADDR, tunnel_port=TUNNEL_PORT, prefix=(*ns, pub))
    ag = wall.agent("site-a", gw, {"web": f"127.0.0.1:{TARGET_PORT}"}, prefix=(*ns, priv))
    gw.proc.wait_event("tunnel_up", agent="site-a", timeout=10)

    got = in_ns(pub, "curl", "-sS", "--fail", "--max-time", "10", "-o", tmp_path / "body",
                f"http://127.0.0.1:{SERVICE_PORT}/1k.bin", check=False)
    assert got.returncode == 0, f"curl through the wall failed: {got.stderr}"
    assert (tmp_path / "body").read_bytes() == www["1k.bin"].path.read_bytes()

    # Still firewalled: the wall works because the agent dialed out.
    assert in_ns(pub, "curl", "-sf", "-o", "/dev/null", "--max-time", "2", direct,
                 check=False).returncode in (7, 28)
    assert ag.proc.alive()

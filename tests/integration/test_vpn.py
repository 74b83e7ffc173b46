"""deploy/vpn/: the pharmacy link's worked examples, run with the real tools.

strongSwan: two charon daemons, each in a network namespace made here, joined by a veth pair
that carries only the examples' documentation addresses (they exist inside these namespaces
alone):
    gw  the netwall gateway host: 203.0.113.10 on the veth, its tunnel address 192.0.2.1
    ph  the pharmacy's VPN gateway, which is its HL7 sender too: 203.0.113.20 on the veth,
        198.51.100.25 as the sender's address
Each charon reads a private strongswan.conf (STRONGSWAN_CONF) and keeps its pid file and vici
socket in the test's directory (bind-mounted on /run inside the namespace only). The configs
are the examples as shipped, with certificates made here as deploy/vpn/README.md says. This
kernel has no ESP, so charon does ESP in userspace (kernel-libipsec, TUN device ipsec0, ESP in
UDP 4500): the SAs are charon's, not the kernel's `ip xfrm state`.

WireGuard: the examples' placeholders filled with keys made here, checked with `wg-quick
strip` and `wg pubkey`; then, as this kernel has no WireGuard module, a real tunnel between two
namespaces with the userspace implementation (wireguard-go) under `wg-quick up`.

Needs: iproute2, nftables, openssl, strongswan-charon, strongswan-swanctl,
libcharon-extra-plugins (kernel-libipsec), wireguard-tools, wireguard-go.
"""

import base64
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NETWALL_BIN, REPO, require, wait_until
from hl7util import intake, msg  # noqa: F401  (intake: the fixture)

VPN = REPO / "deploy" / "vpn"
CHARON = Path("/usr/lib/ipsec/charon")
CHARON_PLUGINS = ("random nonce openssl kdf hmac sha2 aes gcm pem pkcs1 pkcs8 x509 revocation "
                  "constraints pubkey kernel-libipsec kernel-netlink socket-default vici")

GW_PUBLIC, PH_PUBLIC = "203.0.113.10", "203.0.113.20"
MLLP_ADDR, MLLP_PORT = "192.0.2.1", 2575
SENDER = "198.51.100.25"

_seq = itertools.count()


def sh(*argv, check=True, timeout=20, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({r.returncode}): "
                             f"{r.stdout}{r.stderr}")
    return r


def in_ns(ns, *argv, **kw):
    return sh("ip", "netns", "exec", ns, *argv, **kw)


def need(*tools):
    require(*tools)


# charon's plugins come from three packages; a missing one fails at start with a line in
# charon's log that names no package, so check them here by file.
PLUGIN_PACKAGE = {"openssl": "libstrongswan-standard-plugins",
                  "gcm": "libstrongswan-standard-plugins",
                  "kernel-libipsec": "libcharon-extra-plugins"}


def need_plugins(load):
    for name in load.split():
        so = Path(f"/usr/lib/ipsec/plugins/libstrongswan-{name}.so")
        if not so.exists():
            raise AssertionError(f"charon's {name} plugin ({so}) is missing: install the "
                                 f"Debian package {PLUGIN_PACKAGE.get(name, 'libstrongswan')}")


class Namespaces:
    """Two namespaces, gw and ph, joined by a veth pair with the public addresses."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}{next(_seq)}"
        self.gw, self.ph = f"nwvg{tag}", f"nwvp{tag}"
        self.gw_dev, self.ph_dev = f"nwvgv{tag}", f"nwvpv{tag}"
        self.made = []

    def create(self):
        r = sh("ip", "netns", "add", self.gw, check=False)
        if r.returncode != 0:
            pytest.skip(f"cannot create network namespaces (ip netns add: {r.stderr.strip()})")
        self.made.append(self.gw)
        sh("ip", "netns", "add", self.ph)
        self.made.append(self.ph)
        sh("ip", "link", "add", self.gw_dev, "netns", self.gw, "type", "veth", "peer", "name",
           self.ph_dev, "netns", self.ph)
        for ns, dev, addr in ((self.gw, self.gw_dev, GW_PUBLIC), (self.ph, self.ph_dev, PH_PUBLIC)):
            in_ns(ns, "ip", "link", "set", "lo", "up")
            in_ns(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            in_ns(ns, "ip", "link", "set", dev, "up")

    def delete(self):
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def nss():
    n = Namespaces()
    try:
        n.create()
        yield n
    finally:
        n.delete()


# ---------------------------------------------------------------- a TCP service and a client

SERVER_PY = r"""
import socket, sys, threading
def serve(ls):
    while True:
        c, peer = ls.accept()
        c.settimeout(5)
        try:
            data = c.recv(65536)
            c.sendall(f"peer={peer[0]} ".encode() + data)
        except OSError:
            pass
        c.close()
for port in sys.argv[2:]:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[1], int(port)))
    ls.listen(16)
    threading.Thread(target=serve, args=(ls,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT_PY = r"""
import socket, sys
host, port, src, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.socket()
s.settimeout(timeout)
if src:
    s.bind((src, 0))
try:
    s.connect((host, port))
    s.sendall(b"MSH|hello")
    print(s.recv(65536).decode())
except OSError as e:
    print(f"error {e.__class__.__name__}")
    sys.exit(3)
"""


def start_server(procs, ns, tmp_path, host, *ports):
    script = tmp_path / "server.py"
    script.write_text(SERVER_PY)
    p = procs.start(f"server-{ns}", ["ip", "netns", "exec", ns, sys.executable, script, host,
                                     *ports])
    p.wait_log(r"^ready", timeout=10)
    return p


def tcp_try(ns, host, port, source="", timeout=2.0):
    """From namespace ns: connect, send, read the server's answer. None if it failed."""
    r = in_ns(ns, sys.executable, "-c", CLIENT_PY, host, port, source, timeout, check=False,
              timeout=timeout + 10)
    return r.stdout.strip() if r.returncode == 0 else None


# ---------------------------------------------------------------- strongSwan

def strongswan_conf(run):
    return f"""
charon {{
    load_modular = no
    load = {CHARON_PLUGINS}
    plugins {{
        vici {{
            socket = unix://{run}/charon.vici
        }}
    }}
    filelog {{
        stderr {{
            default = 1
            ike = 2
            cfg = 1
            flush_line = yes
        }}
    }}
}}
swanctl {{
    load = pem pkcs1 pkcs8 x509 openssl
}}
"""


def make_cert(swanctl_dir, name, ident):
    """The README's openssl command: an ECDSA P-384 key and a self-signed certificate whose
    subject alternative name is the IKE identity."""
    key = swanctl_dir / "private" / f"{name}.key"
    crt = swanctl_dir / "x509" / f"{name}.crt"
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384",
       "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={ident}",
       "-addext", f"subjectAltName=DNS:{ident}")
    return crt


class Side:
    """One charon in one namespace, with its swanctl directory."""

    def __init__(self, procs, ns, d):
        self.procs, self.ns, self.dir = procs, ns, Path(d)
        self.swanctl = self.dir / "swanctl"
        self.run = self.dir / "run"
        for sub in ("x509", "private"):
            (self.swanctl / sub).mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "strongswan.conf"
        self.conf.write_text(strongswan_conf(self.run))
        self.env = {"STRONGSWAN_CONF": str(self.conf), "SWANCTL_DIR": str(self.swanctl)}
        self.uri = f"unix://{self.run}/charon.vici"
        self.proc = None

    def start(self):
        self.proc = self.procs.start(
            f"charon-{self.ns}",
            ["ip", "netns", "exec", self.ns, "sh", "-c",
             f'mount --bind "{self.run}" /run && exec {CHARON}'],
            env={"STRONGSWAN_CONF": str(self.conf)})
        sock = self.run / "charon.vici"

        def up():
            if not self.proc.alive():
                raise AssertionError(f"charon exited ({self.proc.returncode}):\n{self.proc.tail(40)}")
            return sock.exists()
        wait_until(up, 10, f"charon's vici socket in {self.ns}")

    def swanctl_cmd(self, *args, check=True):
        env = dict(os.environ, **self.env)
        return in_ns(self.ns, "swanctl", *args, "--uri", self.uri, env=env, check=check)

    def load(self):
        return self.swanctl_cmd("--load-all").stdout

    def sas(self):
        return self.swanctl_cmd("--list-sas").stdout

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=10)


class IpsecLink:
    def __init__(self, procs, nss, tmp_path):
        self.nss = nss
        self.gw = Side(procs, nss.gw, tmp_path / "gw")
        self.ph = Side(procs, nss.ph, tmp_path / "ph")

    def configure(self, gw_conf, ph_conf, pharmacy_cert=True):
        """Install both configs; with pharmacy_cert, both sides' certificates too, each
        side's certificate copied to the other (pinned)."""
        (self.gw.swanctl / "swanctl.conf").write_text(gw_conf)
        (self.ph.swanctl / "swanctl.conf").write_text(ph_conf)
        if pharmacy_cert:
            gcrt = make_cert(self.gw.swanctl, "gateway", "gateway.emar.example")
            pcrt = make_cert(self.ph.swanctl, "pharmacy", "vpn.pharmacy.example")
            shutil.copy(gcrt, self.ph.swanctl / "x509" / "gateway.crt")
            shutil.copy(pcrt, self.gw.swanctl / "x509" / "pharmacy.crt")

    def start(self):
        in_ns(self.nss.gw, "ip", "addr", "add", f"{MLLP_ADDR}/32", "dev", "lo")
        in_ns(self.nss.ph, "ip", "addr", "add", f"{SENDER}/32", "dev", "lo")
        self.gw.start()
        self.ph.start()
        out = self.gw.load()
        assert "loaded connection 'pharmacy'" in out, out
        out = self.ph.load()   # start_action = start: the pharmacy initiates at once
        assert "loaded connection 'netwall'" in out, out

    def wait_up(self, timeout=10):
        def both():
            g, p = self.gw.sas(), self.ph.sas()
            ok = all(re.search(r"ESTABLISHED, IKEv2", s) and
                     re.search(r"mllp: #\d+, reqid \d+, INSTALLED", s) for s in (g, p))
            return (g, p) if ok else None
        return wait_until(both, timeout, "the IKE SA and the mllp CHILD SA on both sides",
                          interval=0.2)

    def stop(self):
        self.ph.stop()
        self.gw.stop()


@pytest.fixture
def ipsec(procs, nss, tmp_path):
    need("swanctl", str(CHARON), "openssl", "nft")
    need_plugins(CHARON_PLUGINS)
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun for kernel-libipsec")
    link = IpsecLink(procs, nss, tmp_path)
    try:
        yield link
    finally:
        link.stop()


def examples():
    return ((VPN / "strongswan" / "gateway-host.conf").read_text(),
            (VPN / "strongswan" / "pharmacy-side.conf").read_text())


def sa_packets(sas):
    """(in, out) packet counts of the mllp CHILD SA in `swanctl --list-sas` output."""
    got = dict(re.findall(r"^\s+(in|out)\s+[0-9a-f]{8},\s+\d+ bytes,\s+(\d+) packets", sas, re.M))
    return int(got.get("in", 0)), int(got.get("out", 0))


OBSERVE = """
table inet observe {
    counter clear_mllp {}
    counter esp_udp {}
    chain input {
        type filter hook input priority raw; policy accept;
        iifname "%s" tcp dport 2575 counter name clear_mllp
        iifname "%s" udp dport 4500 counter name esp_udp
    }
}
"""


def nft_counter(ns, name):
    out = in_ns(ns, "nft", "list", "counter", "inet", "observe", name).stdout
    return int(re.search(r"packets (\d+)", out).group(1))


def test_ipsec_tunnel_carries_only_the_mllp_port_and_the_firewall_admits_only_the_tunnel(
        ipsec, procs, nss, tmp_path):
    gw_conf, ph_conf = examples()
    ipsec.configure(gw_conf, ph_conf)
    obs = tmp_path / "observe.nft"
    obs.write_text(OBSERVE % (nss.gw_dev, nss.gw_dev))
    in_ns(nss.gw, "nft", "-f", obs)
    ipsec.start()
    g, p = ipsec.wait_up()
    for sas in (g, p):
        assert "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384" in sas, sas
        assert "ESP:AES_GCM_16-256" in sas, sas
    assert re.search(r"local\s+'gateway.emar.example' @ 203.0.113.10", g), g
    assert re.search(r"remote\s+'vpn.pharmacy.example' @ 203.0.113.20", g), g
    assert re.search(r"local\s+192.0.2.1/32\[tcp/2575\]\s+remote\s+198.51.100.25/32\[tcp\]", g), g

    start_server(procs, nss.gw, tmp_path, MLLP_ADDR, MLLP_PORT, MLLP_PORT + 1)
    # the sender reaches the MLLP port through the tunnel, with its own address
    got = tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, timeout=5)
    assert got == f"peer={SENDER} MSH|hello", got
    sa_in, sa_out = sa_packets(ipsec.gw.sas())
    assert sa_in > 0 and sa_out > 0, ipsec.gw.sas()
    # ... and it crossed the wire as ESP in UDP, never as clear TCP to the port
    assert nft_counter(nss.gw, "esp_udp") >= sa_in
    assert nft_counter(nss.gw, "clear_mllp") == 0
    # the traffic selectors carry that one port only
    assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT + 1, timeout=1.5) is None

    # Clear text to the tunnel address, bypassing the tunnel: from the pharmacy's public
    # address, and with the sender's address forged. Without the firewall both get in.
    in_ns(nss.ph, "ip", "route", "add", f"{MLLP_ADDR}/32", "dev", nss.ph_dev, "table", "100")
    in_ns(nss.ph, "ip", "rule", "add", "from", PH_PUBLIC, "lookup", "100", "pref", "100")
    in_ns(nss.ph, "ip", "rule", "add", "from", SENDER, "lookup", "100", "pref", "101")
    assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, PH_PUBLIC, timeout=3) == \
        f"peer={PH_PUBLIC} MSH|hello"
    assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, SENDER, timeout=3) == f"peer={SENDER} MSH|hello"
    assert nft_counter(nss.gw, "clear_mllp") > 0

    in_ns(nss.gw, "nft", "-f", VPN / "nftables" / "ipsec.nft")
    assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, PH_PUBLIC, timeout=1.5) is None
    assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, SENDER, timeout=1.5) is None
    # through the tunnel it still works, with the firewall loaded (twice: reload-safe)
    in_ns(nss.gw, "nft", "-f", VPN / "nftables" / "ipsec.nft")
    in_ns(nss.ph, "ip", "rule", "del", "pref", "101")
    assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, timeout=5) == f"peer={SENDER} MSH|hello"


def test_ipsec_refuses_a_certificate_that_is_not_the_pinned_one(ipsec, nss, tmp_path):
    gw_conf, ph_conf = examples()
    ipsec.configure(gw_conf, ph_conf)
    # the pharmacy side now presents another key and certificate with the same identity
    make_cert(ipsec.ph.swanctl, "pharmacy", "vpn.pharmacy.example")
    ipsec.start()
    ipsec.ph.proc.wait_log(r"received AUTHENTICATION_FAILED notify error", timeout=10)
    ipsec.gw.proc.wait_log(r"signature validation failed", timeout=5)
    assert "ESTABLISHED" not in ipsec.gw.sas()


def gateway_psk_block():
    """The commented secrets block of gateway-host.conf, uncommented."""
    text = (VPN / "strongswan" / "gateway-host.conf").read_text()
    block = re.search(r"^# secrets \{\n(?:#.*\n)*?# \}\n", text, re.M)
    assert block, "gateway-host.conf has no commented `secrets` block for the PSK fallback"
    return "\n".join(line[2:] for line in block.group(0).splitlines()) + "\n"


def psk_variant(text, secrets):
    """The README's PSK fallback: auth = psk on both ends, no certificates, the secret."""
    text = text.replace("auth = pubkey", "auth = psk")
    text = re.sub(r"^\s*certs = .*\n", "", text, flags=re.M)
    return text + "\n" + secrets


@pytest.mark.parametrize("same", [True, False], ids=["same-secret", "different-secret"])
def test_ipsec_psk_fallback(ipsec, nss, same):
    block = gateway_psk_block()
    assert "secret = 0sREPLACE_WITH_BASE64_SECRET" in block, block
    s1 = base64.b64encode(os.urandom(48)).decode()
    s2 = s1 if same else base64.b64encode(os.urandom(48)).decode()
    gw_conf, ph_conf = examples()
    ipsec.configure(psk_variant(gw_conf, block.replace("REPLACE_WITH_BASE64_SECRET", s1)),
                    psk_variant(ph_conf, block.replace("REPLACE_WITH_BASE64_SECRET", s2)),
                    pharmacy_cert=False)
    ipsec.start()
    if same:
        ipsec.wait_up()
        ipsec.gw.proc.wait_log(r"authentication of 'vpn.pharmacy.example' with pre-shared key "
                               r"successful", timeout=5)
    else:
        ipsec.ph.proc.wait_log(r"received AUTHENTICATION_FAILED notify error", timeout=10)
        assert "ESTABLISHED" not in ipsec.gw.sas()


def test_mllp_through_the_ipsec_link_reaches_the_intake_with_the_senders_address(
        ipsec, nss, wall, intake, tmp_path):
    """The netwall side as docs/deploy.md puts it: the gateway's [service mllp] from
    deploy/vpn/gateway-mllp.ini (listening on the tunnel address, allow, PROXY v2), an agent
    and the intake (proxy = on, allow = the sender) in the gateway's namespace."""
    gw_conf, ph_conf = examples()
    ipsec.configure(gw_conf, ph_conf)
    ipsec.start()
    ipsec.wait_up()

    spec = fragment_service(VPN / "gateway-mllp.ini")
    assert spec["listen"] == [f"{MLLP_ADDR}:{MLLP_PORT}"]
    spec["agents"] = ["site-a"]
    ns = ("ip", "netns", "exec", nss.gw)
    it = intake(intake={"proxy": "on", "allow": SENDER, "listen": "127.0.0.1:12575",
                        "admin": "off"}, start=False)
    it.proc = it.procs.start(it.name, [*ns, NETWALL_BIN, "intake", "-c", it.config],
                             check_exit=True)
    it.proc.wait_event("listening", what="mllp", timeout=10)
    gw = wall.gateway({"mllp": spec}, tunnel_port=17443, prefix=ns)
    wall.agent("site-a", gw, {"mllp": "127.0.0.1:12575"}, prefix=ns)
    gw.proc.wait_event("tunnel_up", agent="site-a", timeout=10)

    data = tmp_path / "order.hl7"
    data.write_bytes(msg("VIA-IPSEC"))
    r = in_ns(nss.ph, NETWALL_BIN, "send", "--timeout", "10", f"{MLLP_ADDR}:{MLLP_PORT}", data,
              check=False, timeout=30)
    assert r.returncode == 0 and "VIA-IPSEC AA" in r.stdout, r.stdout + r.stderr
    rows = it.rows()
    assert [row["control_id"] for row in rows] == ["VIA-IPSEC"]
    assert rows[0]["peer"].startswith(f"{SENDER}:"), rows[0]
    # the public address of the gateway host does not answer MLLP at all
    assert tcp_try(nss.ph, GW_PUBLIC, MLLP_PORT, PH_PUBLIC, timeout=1.5) is None


def fragment_service(path):
    """[service NAME] keys of an INI fragment: {key: value}, listen and allow as lists."""
    spec, section = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            section = line
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        if k in ("listen", "allow"):
            spec.setdefault(k, []).append(v)
        elif k == "agents":
            spec[k] = [a.strip() for a in re.split(r"[,\s]+", v) if a.strip()]
        else:
            spec[k] = v
    assert section == "[service mllp]", section
    return spec


# ---------------------------------------------------------------- WireGuard

WG_GW, WG_PH = VPN / "wireguard" / "wg-pharmacy.conf", VPN / "wireguard" / "wg-netwall.conf"


def wg_keys():
    need("wg")
    keys = {}
    for side in ("GATEWAY", "PHARMACY"):
        priv = sh("wg", "genkey").stdout.strip()
        keys[f"{side}_PRIVATE_KEY"] = priv
        keys[f"{side}_PUBLIC_KEY"] = sh("wg", "pubkey", input=priv + "\n").stdout.strip()
    return keys


def fill(text, keys):
    for k, v in keys.items():
        text = text.replace(f"REPLACE_WITH_{k}", v)
    assert "REPLACE_WITH_" not in re.sub(r"^#.*$", "", text, flags=re.M), text
    return text


def parse_wg(text):
    """[(section, key, value)] of a WireGuard config."""
    out, section = [], None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        out.append((section, k, v))
    return out


def one(items, section, key):
    vals = [v for s, k, v in items if s == section and k == key]
    assert len(vals) == 1, (section, key, vals)
    return vals[0]


def filled_configs(tmp_path, keys):
    d = tmp_path / "wg"
    d.mkdir(exist_ok=True)
    out = []
    for src in (WG_GW, WG_PH):
        dst = d / src.name
        dst.write_text(fill(src.read_text(), keys))
        dst.chmod(0o600)
        out.append(dst)
    return out


def test_wireguard_examples_parse_and_each_side_allows_one_host(tmp_path):
    need("wg", "wg-quick")
    keys = wg_keys()
    gw_file, ph_file = filled_configs(tmp_path, keys)
    full = {f: parse_wg(f.read_text()) for f in (gw_file, ph_file)}
    for f in (gw_file, ph_file):
        # wg-quick's own parser: strip leaves the wg(8) part, which must hold no wg-quick key
        r = sh("wg-quick", "strip", f)
        stripped = parse_wg(r.stdout)
        assert {k for _, k, _ in stripped} <= {"PrivateKey", "ListenPort", "PublicKey",
                                                 "PresharedKey", "Endpoint", "AllowedIPs",
                                                 "PersistentKeepalive", "FwMark"}, r.stdout
        priv = one(stripped, "[Interface]", "PrivateKey")
        assert sh("wg", "pubkey", input=priv + "\n").returncode == 0
        # one peer, and it may send from / receive for a single address
        assert sum(1 for s, k, _ in stripped if k == "PublicKey") == 1
        allowed = one(stripped, "[Peer]", "AllowedIPs")
        net = ipaddress.ip_network(allowed)
        assert net.num_addresses == 1, f"{f.name}: AllowedIPs {allowed} is more than one host"
        host, port = one(stripped, "[Peer]", "Endpoint").rsplit(":", 1)
        ipaddress.ip_address(host)
        assert 0 < int(port) < 65536
    g, p = full[gw_file], full[ph_file]
    # each side's public key is the other's private key's
    assert sh("wg", "pubkey", input=one(g, "[Interface]", "PrivateKey") + "\n").stdout.strip() \
        == one(p, "[Peer]", "PublicKey")
    assert sh("wg", "pubkey", input=one(p, "[Interface]", "PrivateKey") + "\n").stdout.strip() \
        == one(g, "[Peer]", "PublicKey")
    # addresses: each side's AllowedIPs is the other's tunnel address; endpoints cross over
    assert one(g, "[Interface]", "Address") == f"{MLLP_ADDR}/32" == one(p, "[Peer]", "AllowedIPs")
    assert one(p, "[Interface]", "Address") == f"{SENDER}/32" == one(g, "[Peer]", "AllowedIPs")
    assert one(g, "[Peer]", "Endpoint") == f"{PH_PUBLIC}:{one(p, '[Interface]', 'ListenPort')}"
    assert one(p, "[Peer]", "Endpoint") == f"{GW_PUBLIC}:{one(g, '[Interface]', 'ListenPort')}"
    # the check can fail: a placeholder left in is refused by wg itself
    r = sh("wg", "pubkey", input="REPLACE_WITH_GATEWAY_PRIVATE_KEY\n", check=False)
    assert r.returncode != 0


WG_WRAPPER = """#!/bin/sh
# wg-quick's userspace implementation hook: wireguard-go in the foreground, its pid noted
WG_PROCESS_FOREGROUND=1 wireguard-go "$1" >>"{d}/wireguard-go-$1.log" 2>&1 &
echo $! > "{d}/wireguard-go-$1.pid"
i=0
while [ ! -S "/var/run/wireguard/$1.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
[ -S "/var/run/wireguard/$1.sock" ]
"""


def test_wireguard_tunnel_with_the_examples_and_the_firewall(nss, procs, tmp_path):
    need("wg", "wg-quick", "wireguard-go", "nft")
    keys = wg_keys()
    gw_file, ph_file = filled_configs(tmp_path, keys)
    d = tmp_path / "wgrun"
    (d / "wireguard").mkdir(parents=True)
    wrapper = d / "wg-userspace"
    wrapper.write_text(WG_WRAPPER.format(d=d))
    wrapper.chmod(0o755)
    env = dict(os.environ, WG_QUICK_USERSPACE_IMPLEMENTATION=str(wrapper))

    def ns_sh(ns, cmd, check=True):
        # /var/run/wireguard (the UAPI sockets) is the test's own directory in the namespace
        return in_ns(ns, "sh", "-c", f'mkdir -p /var/run/wireguard && '
                     f'mount --bind "{d}/wireguard" /var/run/wireguard && {cmd}',
                     env=env, check=check, timeout=30)

    pids = []
    try:
        for ns, f in ((nss.gw, gw_file), (nss.ph, ph_file)):
            ns_sh(ns, f'wg-quick up "{f}"')
            pids.append(int((d / f"wireguard-go-{f.stem}.pid").read_text()))
        show = ns_sh(nss.gw, "wg show wg-pharmacy allowed-ips").stdout
        assert show.split()[-1] == f"{SENDER}/32", show

        start_server(procs, nss.gw, tmp_path, MLLP_ADDR, MLLP_PORT)
        got = tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, timeout=5)
        assert got == f"peer={SENDER} MSH|hello", got
        hs = ns_sh(nss.gw, "wg show wg-pharmacy latest-handshakes").stdout.split()
        assert int(hs[-1]) > 0, hs

        # clear text to the tunnel address from the pharmacy's public address gets in
        # without the firewall, and not with it; the tunnel still does
        in_ns(nss.ph, "ip", "route", "add", f"{MLLP_ADDR}/32", "dev", nss.ph_dev, "table", "100")
        in_ns(nss.ph, "ip", "rule", "add", "from", PH_PUBLIC, "lookup", "100", "pref", "100")
        assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, PH_PUBLIC, timeout=3) == \
            f"peer={PH_PUBLIC} MSH|hello"
        in_ns(nss.gw, "nft", "-f", VPN / "nftables" / "wireguard.nft")
        assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, PH_PUBLIC, timeout=1.5) is None
        assert tcp_try(nss.ph, MLLP_ADDR, MLLP_PORT, timeout=5) == f"peer={SENDER} MSH|hello"
    finally:
        for ns, f in ((nss.ph, ph_file), (nss.gw, gw_file)):
            ns_sh(ns, f'wg-quick down "{f}"', check=False)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            time.sleep(0.05)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- the files agree

def test_the_examples_agree_on_addresses_and_the_firewall_rules_load(nss):
    need("nft")
    g = (VPN / "strongswan" / "gateway-host.conf").read_text()
    p = (VPN / "strongswan" / "pharmacy-side.conf").read_text()
    ts = f"{MLLP_ADDR}/32[tcp/{MLLP_PORT}]"
    assert re.search(rf"^\s*local_ts = {re.escape(ts)}$", g, re.M)
    assert re.search(rf"^\s*remote_ts = {re.escape(SENDER)}/32\[tcp\]$", g, re.M)
    assert re.search(rf"^\s*remote_ts = {re.escape(ts)}$", p, re.M)
    assert re.search(rf"^\s*local_ts = {re.escape(SENDER)}/32\[tcp\]$", p, re.M)
    for text in (g, p):
        assert re.search(r"^\s*proposals = aes256gcm16-prfsha384-ecp384$", text, re.M)
        assert re.search(r"^\s*esp_proposals = aes256gcm16-ecp384$", text, re.M)
        assert re.search(r"^\s*dpd_delay = ", text, re.M)
        assert re.search(r"^\s*rekey_time = ", text, re.M)
    spec = fragment_service(VPN / "gateway-mllp.ini")
    assert spec["listen"] == [f"{MLLP_ADDR}:{MLLP_PORT}"]
    assert spec["allow"] == [SENDER]
    assert spec["proxy_protocol"] == "v2"
    for f in ("ipsec.nft", "wireguard.nft"):
        text = (VPN / "nftables" / f).read_text()
        defs = dict(re.findall(r"^define (\w+) = (\S+)", text, re.M))
        assert defs["PHARMACY_PEER"] == PH_PUBLIC
        assert defs["PHARMACY_SENDER"] == SENDER
        assert defs["MLLP_ADDR"] == MLLP_ADDR and defs["MLLP_PORT"] == str(MLLP_PORT)
        # the kernel accepts the rules (in a namespace of the test's, checked, not loaded)
        in_ns(nss.gw, "nft", "-c", "-f", VPN / "nftables" / f)
    bad = (VPN / "nftables" / "ipsec.nft").read_text().replace("meta l4proto esp drop",
                                                               "meta l4proto esp dorp")
    r = in_ns(nss.gw, "nft", "-c", "-f", "-", input=bad, check=False)
    assert r.returncode != 0

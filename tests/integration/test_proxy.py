"""PROXY protocol v1/v2 from the agent to the target carries the visitor's
real address."""

import ipaddress
import socket
import struct
import subprocess
import threading

import pytest

from conftest import HAVE_IPV6, connect, free_port, hostport, recv_exact, svc, wait_until

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def read_proxy_header(conn):
    """Parse one PROXY v1 or v2 header from conn (byte by byte for v1, so
    nothing after it is consumed). Returns a dict."""
    first = recv_exact(conn, 5)
    if first == b"PROXY":
        line = first
        while not line.endswith(b"\r\n"):
            line += recv_exact(conn, 1)
            assert len(line) <= 107, f"v1 header too long: {line!r}"
        parts = line[:-2].decode("ascii").split(" ")
        assert parts[0] == "PROXY" and len(parts) == 6, f"bad v1 header {line!r}"
        return {"version": 1, "proto": parts[1], "src": parts[2], "dst": parts[3],
                "sport": int(parts[4]), "dport": int(parts[5])}
    rest = recv_exact(conn, 11)
    sig = first + rest[:7]
    assert sig == V2_SIG, f"neither v1 nor v2 signature: {(first + rest)!r}"
    ver_cmd, fam = rest[7], rest[8]
    (length,) = struct.unpack("!H", rest[9:11])
    body = recv_exact(conn, length) if length else b""
    assert ver_cmd == 0x21, f"v2 version/command byte {ver_cmd:#x}, want 0x21 (v2 PROXY)"
    if fam == 0x11:
        src, dst = body[0:4], body[4:8]
        sport, dport = struct.unpack("!HH", body[8:12])
        proto = "TCP4"
    elif fam == 0x21:
        src, dst = body[0:16], body[16:32]
        sport, dport = struct.unpack("!HH", body[32:36])
        proto = "TCP6"
    else:
        raise AssertionError(f"unexpected v2 family byte {fam:#x}")
    return {"version": 2, "proto": proto, "src": str(ipaddress.ip_address(src)),
            "dst": str(ipaddress.ip_address(dst)), "sport": sport, "dport": dport}


class ProxyTarget:
    """A TCP server that reads a PROXY header, records it, then echoes."""

    def __init__(self):
        self.port = free_port()
        self.headers = []
        self.errors = []
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        with conn:
            try:
                self.headers.append(read_proxy_header(conn))
                conn.settimeout(10)
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))

    def close(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def proxy_target():
    t = ProxyTarget()
    yield t
    t.close()


FAMILIES = [
    pytest.param("127.0.0.1", "127.0.0.2", id="ipv4"),
    pytest.param("::1", "::1", id="ipv6",
                 marks=pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6 loopback")),
]


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("listen_host,visitor_host", FAMILIES)
def test_proxy_header_has_visitor_address(wall, proxy_target, version, listen_host, visitor_host):
    port = free_port()
    gw = wall.gateway({"pp": svc(listen=hostport(listen_host, port), proxy_protocol=version)})
    wall.agent("site-a", gw, {"pp": f"127.0.0.1:{proxy_target.port}"})
    gw.wait_tunnels(2)

    with connect(port, listen_host, source=visitor_host) as s:
        vaddr, vport = s.getsockname()[:2]
        payload = b"after the header\n" * 3
        s.sendall(payload)
        assert recv_exact(s, len(payload)) == payload   # header consumed exactly, data intact

    assert not proxy_target.errors, proxy_target.errors
    wait_until(lambda: proxy_target.headers, 5, "the target to record a header")
    h = proxy_target.headers[0]
    assert h["version"] == int(version[1])
    assert h["proto"] == ("TCP6" if ":" in listen_host else "TCP4")
    assert (h["src"], h["sport"]) == (vaddr, vport)
    assert (h["dst"], h["dport"]) == (listen_host, port)
    assert len(proxy_target.headers) == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_nginx_sees_visitor_address(wall, nginx, version):
    web = nginx(proxy_protocol=True)
    gw, _ = wall.stack(web.addr, "web", svc_opts={"proxy_protocol": version})

    r = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "--interface", "127.0.0.2",
                        "-w", "%{local_ip} %{local_port}",
                        f"http://127.0.0.1:{gw.port('web')}/1k.bin"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    ip, lport = r.stdout.split()
    assert ip == "127.0.0.2"

    log = web.extra["access_log"]
    line = wait_until(lambda: log.exists() and log.read_text().strip(), 5, "nginx access log")
    assert f"pp={ip}:{lport} " in line, line
    assert '"GET /1k.bin HTTP/1.1" 200 1024' in line, line

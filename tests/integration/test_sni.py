"""Services that share one gateway port, told apart by the name the visitor sends: the
server_name of its TLS ClientHello (sni =) or the Host of its HTTP request (host =). TLS runs
end to end between the visitor and nginx behind each agent: curl verifies nginx's
certificate (signed by a CA made here), the gateway never holds a key. Unknown names get a
TLS unrecognized_name alert or HTTP 421, or go to the default; the bytes held before the
name is read are capped and timed out."""

import socket
import ssl
import subprocess
from pathlib import Path

import pytest

import conftest
from conftest import (SANITIZED, connect, curl_sha256, require, start_nginx, svc,
                      wait_until)

APP = "app.example.test"
CLINIC = "*.clinic.example.test"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA and two server certificates it signs: app.example.test and
    *.clinic.example.test."""
    require("openssl")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=netwall test CA", cwd=d)
    out = {"ca": d / "ca.pem"}
    for tag, name in (("app", APP), ("clinic", CLINIC)):
        openssl("req", "-new", *ec, "-keyout", f"{tag}.key", "-out", f"{tag}.csr",
                "-subj", f"/CN={name}", cwd=d)
        (d / f"{tag}.ext").write_text(f"subjectAltName = DNS:{name}\n")
        openssl("x509", "-req", "-in", f"{tag}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{tag}.ext",
                "-out", f"{tag}.crt", cwd=d)
        out[tag] = (d / f"{tag}.crt", d / f"{tag}.key")
    return out


def site_root(base, who):
    """A document root saying who serves it, with a 3 MiB file of its own."""
    root = Path(base) / f"root-{who}"
    root.mkdir()
    (root / "who.txt").write_text(who)
    (root / "data.bin").write_bytes(who.encode() * (3 << 20))
    return root


def two_sites(wall, procs, tmp_path, pki, *, kind="sni", tls=True, app_opts=None,
              clinic_opts=None, gw_extra=None, plain=False):
    """nginx A behind site-a and nginx B behind site-b, reached through one gateway port:
    service app (name app.example.test) and clinic (*.clinic.example.test). plain adds a
    service of its own port to A."""
    require("nginx", "curl")
    a = start_nginx(procs, tmp_path, site_root(tmp_path, "A"), tls=pki["app"] if tls else None)
    b = start_nginx(procs, tmp_path, site_root(tmp_path, "B"),
                    tls=pki["clinic"] if tls else None)
    port = conftest.free_port()
    listen = f"127.0.0.1:{port}"
    services = {
        "app": svc(["site-a"], listen, **{kind: APP}, **(app_opts or {})),
        "clinic": svc(["site-b"], listen, **{kind: CLINIC}, **(clinic_opts or {})),
    }
    if plain:
        services["plain"] = svc(["site-a"])
    gw = wall.gateway(services, extra=gw_extra)
    wall.agent("site-a", gw, {"app": a.addr, "plain": a.addr})
    wall.agent("site-b", gw, {"clinic": b.addr})
    gw.wait_tunnels(4)
    return gw, port


def https(port, name, path, *args):
    return curl_sha256(f"https://{name}:{port}{path}", "--resolve", f"{name}:{port}:127.0.0.1",
                       *args)


def peer_subject(port, name, ca):
    """The verified certificate's subject CN seen through the gateway with server_name."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def sha(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


def unrouted(gw, reason):
    return gw.metric("netwall_gateway_visitors_unrouted_total", 0, reason=reason)


def test_sni_routes_two_services_through_one_port(wall, procs, tmp_path, pki):
    gw, port = two_sites(wall, procs, tmp_path, pki, plain=True)
    ca = str(pki["ca"])

    # byte-exact through one port, TLS verified by curl end to end
    rc, digest, n, err = https(port, APP, "/data.bin", "--cacert", ca)
    assert rc == 0, err
    assert (digest, n) == (sha(b"A" * (3 << 20)), 3 << 20)
    rc, digest, n, err = https(port, "x.clinic.example.test", "/data.bin", "--cacert", ca)
    assert rc == 0, err
    assert (digest, n) == (sha(b"B" * (3 << 20)), 3 << 20)
    # the certificates the visitor saw are nginx's own
    assert peer_subject(port, APP, ca) == APP
    assert peer_subject(port, "X.Clinic.Example.Test", ca) == CLINIC
    # HTTPS through a service of its own port, not routed
    rc, digest, n, err = https(gw.port("plain"), APP, "/data.bin", "--cacert", ca)
    assert rc == 0 and digest == sha(b"A" * (3 << 20)), err

    # two labels under the wildcard: no service, no default -> unrecognized_name alert
    rc, _, _, err = https(port, "y.x.clinic.example.test", "/who.txt", "--cacert", ca)
    assert rc == 35, err
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        peer_subject(port, "clinic.example.test", ca)
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 2,
                         reason="unknown_name")
    gw.proc.wait_event("visitor_unrouted", reason="unknown_name",
                       name="clinic.example.test")
    assert gw.metric("netwall_connections_total", service="app") >= 2
    assert gw.metric("netwall_connections_total", service="clinic") >= 2


def test_default_takes_unknown_and_missing_names(wall, procs, tmp_path, pki):
    gw, port = two_sites(wall, procs, tmp_path, pki, app_opts={"default": "yes"})

    # an unknown name reaches A's nginx (whose certificate then does not match: -k)
    rc, digest, _, err = https(port, "nobody.example.test", "/who.txt", "-k")
    assert rc == 0 and digest == sha(b"A"), err
    # no server_name at all (an address in the URL)
    rc, digest, _, err = curl_sha256(f"https://127.0.0.1:{port}/who.txt", "-k")
    assert rc == 0 and digest == sha(b"A"), err
    # exact names and the wildcard still win
    rc, digest, _, err = https(port, "z.clinic.example.test", "/who.txt", "-k")
    assert rc == 0 and digest == sha(b"B"), err
    # not TLS at all: the default takes the bytes as they are (nginx answers 400)
    s = connect(port)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert b"400" in s.recv(4096).split(b"\r\n")[0]
    s.close()
    assert unrouted(gw, "unknown_name") == 0 and unrouted(gw, "no_name") == 0


def test_host_routes_plain_http(wall, procs, tmp_path, pki):
    gw, port = two_sites(wall, procs, tmp_path, pki, kind="host", tls=False)
    url = f"http://127.0.0.1:{port}/who.txt"

    assert curl_sha256(url, "-H", "Host: APP.example.test:80")[1] == sha(b"A")
    assert curl_sha256(url, "-H", "Host: q.clinic.example.test")[1] == sha(b"B")
    rc, digest, n, err = curl_sha256(f"http://app.example.test:{port}/data.bin", "--resolve",
                                     f"app.example.test:{port}:127.0.0.1")
    assert rc == 0 and n == 3 << 20 and digest == sha(b"A" * (3 << 20)), err
    # an unknown Host: 421, closed
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: other.example.test\r\n\r\n")
    answer = b""
    while chunk := s.recv(4096):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 421 Misdirected Request\r\n")
    assert b"Connection: close" in answer
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 1,
                         reason="unknown_name")
    # no Host at all (HTTP/1.0): 421 as well
    s = connect(port)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 421 ")
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 1,
                         reason="no_name")


def pump_handshake(sock, obj, incoming, outgoing):
    """Drives an SSLObject's handshake over sock until done."""
    while True:
        try:
            obj.do_handshake()
            sock.sendall(outgoing.read())
            return
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            data = sock.recv(65536)
            assert data, "closed during the handshake"
            incoming.write(data)


def test_client_hello_one_byte_per_send(wall, procs, tmp_path, pki):
    gw, port = two_sites(wall, procs, tmp_path, pki)
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="one.clinic.example.test")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 22 and len(hello) > 200

    s = connect(port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(hello)):
        s.send(hello[i:i + 1])
    pump_handshake(s, obj, incoming, outgoing)
    assert dict(x[0] for x in obj.getpeercert()["subject"])["commonName"] == CLINIC
    obj.write(b"GET /who.txt HTTP/1.0\r\nHost: one.clinic.example.test\r\n\r\n")
    s.sendall(outgoing.read())
    answer = b""
    while True:
        try:
            chunk = obj.read(65536)
            if not chunk:
                break
            answer += chunk
        except ssl.SSLWantReadError:
            data = s.recv(65536)
            if not data:
                break
            incoming.write(data)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nB")
    s.close()


def eof_within(s, timeout=10):
    """Reads until the gateway closes; returns what came."""
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def test_tls_caps(wall, procs, tmp_path, pki):
    gw, port = two_sites(wall, procs, tmp_path, pki)
    held0 = gw.metric("netwall_memory_held_bytes")

    # a record one byte over TLS's 16384: refused as soon as its header is in
    s = connect(port)
    s.sendall(b"\x16\x03\x01\x40\x01")
    assert eof_within(s) == b""
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 1,
                         reason="too_big")
    gw.proc.wait_event("visitor_unrouted", reason="too_big")

    # a ClientHello of 16384 bytes cut into records whose headers take it past 16 KiB + 5:
    # refused once the next record would pass the cap, never held past it
    s = connect(port)
    s.sendall(b"\x16\x03\x01\x1f\x40\x01\x00\x3f\xfc" + b"\0" * (8000 - 4))
    s.sendall(b"\x16\x03\x01\x20\x00" + b"\0" * 8192)
    s.sendall(b"\x16\x03\x01\x00\xc0" + b"\0" * 16)
    assert eof_within(s) == b""
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 2,
                         reason="too_big")

    # many visitors, each holding a ClientHello just under the cap: the bytes held are
    # counted in the memory budget, bounded, and given back when they go
    held = []
    for _ in range(40):
        c = connect(port)
        c.sendall(b"\x16\x03\x01\x40\x00\x01\x00\x3f\xfc" + b"\0" * (16384 - 100))
        held.append(c)
    gw.admin.wait_metric("netwall_memory_held_bytes",
                         lambda v: v >= held0 + 40 * (16384 - 96))
    assert gw.metric("netwall_memory_held_bytes") <= held0 + 40 * (16 * 1024 + 5)
    for c in held:
        c.close()
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 40,
                         reason="closed")
    gw.admin.wait_metric("netwall_memory_held_bytes", lambda v: v <= held0)

    # a request line on a TLS port: the bytes are not TLS, no default: closed, counted
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\n")
    assert eof_within(s) == b""
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 1,
                         reason="malformed")
    # the shared port still serves
    rc, digest, _, err = https(port, APP, "/who.txt", "--cacert", str(pki["ca"]))
    assert rc == 0 and digest == sha(b"A"), err


def test_route_timeout(wall, procs, tmp_path, pki):
    gw, port = two_sites(wall, procs, tmp_path, pki, gw_extra={"route_timeout": "1"})

    # silent, and half a ClientHello: both closed at route_timeout
    s = connect(port)
    t = connect(port)
    t.sendall(b"\x16\x03\x01\x01\x00\x01\x00")
    assert eof_within(s) == b"" and eof_within(t) == b""
    gw.proc.wait_event("visitor_unrouted", reason="timeout", count=2)
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 2,
                         reason="timeout")


def test_http_head_cap(wall, procs, tmp_path, pki):
    gw, port = two_sites(wall, procs, tmp_path, pki, kind="host", tls=False)

    # 8 KiB of head without a Host line: 431, closed
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 8192 + b"\r\nHost: app.example.test\r\n\r\n")
    got = eof_within(s)
    assert got.startswith(b"HTTP/1.1 431 "), got[:80]
    gw.admin.wait_metric("netwall_gateway_visitors_unrouted_total", lambda v: v == 1,
                         reason="too_big")
    # just under it, the whole head (read to its end: a second Host is refused) is read
    pad = 8192 - len(b"GET /who.txt HTTP/1.1\r\nX-Pad: \r\nHost: app.example.test\r\n"
                     b"Connection: close\r\n\r\n")
    s = connect(port)
    s.sendall(b"GET /who.txt HTTP/1.1\r\nX-Pad: " + b"a" * pad
              + b"\r\nHost: app.example.test\r\nConnection: close\r\n\r\n")
    got = eof_within(s)
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\nA"), got[:80]
    # not HTTP on a host port: 400
    s = connect(port)
    s.sendall(b"\x16\x03\x01\x02\x00\x01")
    assert eof_within(s).startswith(b"HTTP/1.1 400 ")
    wait_until(lambda: unrouted(gw, "malformed") == 1, 5, "malformed counted")

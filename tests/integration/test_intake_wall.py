"""The EMAR layout: a pharmacy sends through the wall (gateway -> agent -> intake, PROXY v2
so the intake knows the pharmacy's real address); and the intake's own TLS listener with
client certificates, driven by `netwall send`."""

import socket
import subprocess

from conftest import NETWALL_BIN, svc
from hl7util import DATA, ack_code, intake, msg  # noqa: F401


def send(*args, input=None, timeout=120):
    return subprocess.run([NETWALL_BIN, "send", *map(str, args)], capture_output=True,
                          input=input, timeout=timeout)


def test_send_through_the_wall_with_proxy_v2(wall, intake, tmp_path):
    it = intake(intake={"proxy": "on", "allow": "127.0.0.0/8"})
    gw = wall.gateway({"mllp": svc(proxy_protocol="v2")})
    wall.agent("site-a", gw, {"mllp": f"127.0.0.1:{it.port}"})
    gw.wait_tunnels(2)
    port = gw.port("mllp")
    samples = sorted(str(p) for p in DATA.glob("rde_*.hl7")) + \
        sorted(str(p) for p in DATA.glob("rds_*.hl7"))
    r = send("-c", "2", f"127.0.0.1:{port}", *samples)
    out = r.stdout.decode()
    # every one accepted (rde_o01_v25_google_simple has no MSH-11: taken as P)
    codes = {line.split()[0].rsplit(":", 1)[0].rsplit("/", 1)[1]: line.split()[-1]
             for line in out.splitlines()}
    assert codes["rde_o01_v25_google_simple.hl7"] == "AA"
    assert set(codes.values()) == {"AA"}, out
    assert r.returncode == 0, r.stderr
    assert b"sent 6" in r.stderr
    # the intake saw the pharmacy's own address, not the agent's
    src = socket.socket()
    src.bind(("127.0.0.2", 0))
    src_port = src.getsockname()[1]
    src.connect(("127.0.0.1", port))
    src.sendall(b"\x0b" + msg("VIA-WALL") + b"\x1c\r")
    src.settimeout(10)
    assert b"MSA|AA|VIA-WALL" in src.recv(65536)
    src.close()
    peers = {r["control_id"]: r["peer"] for r in it.rows()}
    assert peers["VIA-WALL"] == f"127.0.0.2:{src_port}"


def test_send_many_from_stdin_and_files(intake, tmp_path):
    it = intake()
    many = b"\n".join(msg(f"S-{i}") for i in range(300))
    r = send("-c", "4", "-q", f"127.0.0.1:{it.port}", "-", input=many)
    assert r.returncode == 0, r.stderr
    assert len(it.rows()) == 300
    # a message the intake rejects makes the exit status 1 and is printed even with -q
    bad = msg("S-BAD").replace(b"|P|2.5.1", b"|P|4.0")
    r = send("-q", f"127.0.0.1:{it.port}", "-", input=bad)
    assert r.returncode == 1 and b"S-BAD AR" in r.stdout
    # nothing listening: a clear failure, not a hang
    r = send("--timeout", "2", "127.0.0.1:1", "-", input=msg("S-X"))
    assert r.returncode == 1 and b"noconn" in r.stdout


def test_tls_intake_with_client_certificates(intake, keys):
    server, client, stranger = keys["gateway"], keys["site-a"], keys["stranger"]
    it = intake(intake={"tls": "on", "cert": server.crt, "key": server.key,
                        "client_ca": client.crt, "client_certs": "required"})
    base = ["--tls", "--fingerprint", server.fingerprint]
    r = send(*base, "--cert", client.crt, "--key", client.key, f"127.0.0.1:{it.port}", "-",
             input=msg("TLS-1"))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert b"TLS-1 AA" in r.stdout
    r = send(*base, "--cert", stranger.crt, "--key", stranger.key, "--timeout", "5",
             f"127.0.0.1:{it.port}", "-", input=msg("TLS-2"))
    assert r.returncode == 1
    r = send(*base, "--timeout", "5", f"127.0.0.1:{it.port}", "-", input=msg("TLS-3"))
    assert r.returncode == 1
    assert [x["control_id"] for x in it.rows()] == ["TLS-1"]
    # a wrong pin: the client refuses the server
    r = send("--tls", "--fingerprint", "00" * 32, "--cert", client.crt, "--key", client.key,
             "--timeout", "5", f"127.0.0.1:{it.port}", "-", input=msg("TLS-4"))
    assert r.returncode == 1


def test_send_shows_a_progress_bar_on_a_terminal(intake, tmp_path):
    """On a terminal (a pseudo-terminal from script(1)), sending many shows a progress bar
    that ends full, and only the summary besides; without a terminal, one line each."""
    it = intake()
    f = tmp_path / "many.hl7"
    f.write_bytes(b"\n".join(msg(f"P-{i}") for i in range(300)))
    r = subprocess.run(["script", "-qec", f"{NETWALL_BIN} send -c 4 127.0.0.1:{it.port} {f}",
                        "/dev/null"], capture_output=True, timeout=120)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    assert "[" + "#" * 30 + "] 300/300 100%" in out
    assert "P-17 AA" not in out, "accepted messages are not listed under the bar"
    assert "sent 300, accepted 300" in out
    r = send("-c", "4", f"127.0.0.1:{it.port}", f)
    assert r.returncode == 0 and r.stdout.decode().count(" AA\n") == 300
    assert b"#" not in r.stderr


def test_send_honours_msh15_never_and_error_only(intake):
    """A message whose MSH-15 is NE gets no accept ACK: netwall send does not wait for one.
    ER gets one only on error: an error is reported, silence is success."""
    import time as _time
    it = intake()
    ne = msg("NE-1", extra_msh="|||NE|NE")
    er_ok = msg("ER-1", extra_msh="|||ER|NE")
    er_bad = msg("ER-2", extra_msh="|||ER|NE").replace(b"|P|2.5.1", b"|P|9.9")
    t0 = _time.monotonic()
    r = send("--timeout", "20", f"127.0.0.1:{it.port}", "-", input=ne + b"\n" + er_ok + b"\n" + er_bad)
    took = _time.monotonic() - t0
    out = r.stdout.decode()
    assert "NE-1 sent" in out and "ER-1 sent" in out and "ER-2 CR" in out, out
    assert r.returncode == 1            # ER-2 was rejected
    assert took < 15, "NE and ER messages must not wait for the full ACK timeout"
    assert b"no ACK requested 2" in r.stderr
    assert {x["control_id"] for x in it.rows()} == {"NE-1", "ER-1"}
    # sent as MSH-15 asked counts as success: exit status 0 when nothing else went wrong
    r = send("--timeout", "20", f"127.0.0.1:{it.port}", "-",
             input=msg("NE-2", extra_msh="|||NE|NE") + b"\n" + msg("AL-2"))
    assert "NE-2 sent" in r.stdout.decode() and "AL-2 AA" in r.stdout.decode()
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_tls_end_to_end_through_the_wall_with_proxy_v2(wall, intake, keys):
    """The pharmacy's TLS (with its client certificate) ends at the intake, not at the
    gateway; the agent puts a PROXY v2 header before it, in the clear, so the intake still
    learns the pharmacy's real address and checks it against allow."""
    import ssl
    server, client, stranger = keys["gateway"], keys["site-a"], keys["stranger"]
    it = intake(intake={"tls": "on", "cert": server.crt, "key": server.key,
                        "client_ca": client.crt, "client_certs": "required",
                        "proxy": "on", "allow": "127.0.0.2/32, 127.0.0.1/32"})
    gw = wall.gateway({"mllp": svc(proxy_protocol="v2")})
    wall.agent("site-a", gw, {"mllp": f"127.0.0.1:{it.port}"})
    gw.wait_tunnels(2)
    port = gw.port("mllp")
    r = send("--tls", "--fingerprint", server.fingerprint, "--cert", client.crt, "--key",
             client.key, f"127.0.0.1:{port}", "-", input=msg("E2E-1"))
    assert r.returncode == 0 and b"E2E-1 AA" in r.stdout, (r.stdout, r.stderr)
    # from 127.0.0.2, by hand: the intake records that address
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(client.crt, client.key)
    raw = socket.socket()
    raw.bind(("127.0.0.2", 0))
    src_port = raw.getsockname()[1]
    raw.connect(("127.0.0.1", port))
    s = ctx.wrap_socket(raw)
    s.settimeout(10)
    s.sendall(b"\x0b" + msg("E2E-2") + b"\x1c\r")
    ack = b""
    while b"\x1c\r" not in ack:
        chunk = s.recv(65536)
        assert chunk, "closed before the ACK"
        ack += chunk
    assert b"MSA|AA|E2E-2" in ack
    s.close()
    peers = {x["control_id"]: x["peer"] for x in it.rows()}
    assert peers["E2E-2"] == f"127.0.0.2:{src_port}"
    # a certificate the intake does not know: refused, nothing stored
    r = send("--tls", "--fingerprint", server.fingerprint, "--cert", stranger.crt, "--key",
             stranger.key, "--timeout", "5", f"127.0.0.1:{port}", "-", input=msg("E2E-3"))
    assert r.returncode == 1
    # plain MLLP where TLS is expected: no ACK, nothing stored
    with socket.create_connection(("127.0.0.1", port), timeout=10) as p:
        p.sendall(b"\x0b" + msg("E2E-4") + b"\x1c\r")
        p.settimeout(10)
        try:
            got = p.recv(65536)
        except OSError:
            got = b""
        assert b"MSA" not in got
    assert sorted(x["control_id"] for x in it.rows()) == ["E2E-1", "E2E-2"]

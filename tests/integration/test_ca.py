"""CA mode: agents identified by certificates a CA signed (CN names the [agent] section),
the gateway verified by the agent against the CA and a server name."""

import subprocess

import pytest

from conftest import (NETWALL_BIN, Admin, admin_answers, connect, free_port, ini_text,
                      recv_exact, wait_until)


def openssl(*args, cwd):
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name="ca"):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out",
            f"{name}.crt", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"


def issue(d, ca, name, cn, san=None):
    """A key and a certificate for CN=cn signed by ca (crt, key)."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={cn}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName=DNS:{san or cn}\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1],
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"


@pytest.fixture
def ca_wall(procs, echo, tmp_path):
    ca = make_ca(tmp_path)
    gw_crt, gw_key = issue(tmp_path, ca, "gateway", "gateway.internal")
    target = echo()
    tport, sport, gadmin = free_port(), free_port(), free_port()
    gw_ini = tmp_path / "gateway.ini"
    gw_ini.write_text(ini_text([
        ("gateway", [("listen", f"127.0.0.1:{tport}"), ("cert", gw_crt), ("key", gw_key),
                     ("ca", ca[0]), ("admin", f"127.0.0.1:{gadmin}"), ("drain_timeout", "1")]),
        ("agent clinic-ca", []),
        ("service echo", [("listen", f"127.0.0.1:{sport}"), ("agents", "clinic-ca")]),
    ]))
    gw = procs.start("gateway", [NETWALL_BIN, "gateway", "-c", gw_ini], check_exit=True)
    wait_until(lambda: admin_answers(gadmin), 10, "gateway admin")

    def agent(name, cn, *, ca_for_gateway=ca[0], server_name="gateway.internal", signer=ca):
        crt, key = issue(tmp_path, signer, name, cn)
        admin = free_port()
        ini = tmp_path / f"{name}.ini"
        ini.write_text(ini_text([
            ("agent", [("gateway", f"127.0.0.1:{tport}"), ("cert", crt), ("key", key),
                       ("ca", ca_for_gateway), ("server_name", server_name),
                       ("admin", f"127.0.0.1:{admin}"), ("drain_timeout", "1")]),
            ("service echo", [("target", target.addr)]),
        ]))
        p = procs.start(name, [NETWALL_BIN, "agent", "-c", ini], check_exit=True)
        wait_until(lambda: admin_answers(admin), 10, f"{name} admin")
        return p, Admin(admin)

    return {"gw": gw, "gw_admin": Admin(gadmin), "port": sport, "agent": agent,
            "ca": ca, "dir": tmp_path}


def test_ca_signed_agent_serves(ca_wall):
    _, admin = ca_wall["agent"]("agent-ok", "clinic-ca")
    ca_wall["gw_admin"].wait_metric("netwall_tunnels_up", lambda v: v == 2, 10)
    admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 10)
    s = connect(ca_wall["port"])
    s.sendall(b"via CA")
    assert recv_exact(s, 6) == b"via CA"
    s.close()


def test_ca_signed_but_unknown_name_is_refused(ca_wall):
    gw = ca_wall["gw"]
    mark = gw.mark()
    ca_wall["agent"]("agent-other", "not-in-config")
    gw.wait_event("handshake_failed", timeout=5, since=mark, reason="unknown_certificate")
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0


def test_other_ca_is_refused(ca_wall):
    other = make_ca(ca_wall["dir"], "otherca")
    gw = ca_wall["gw"]
    mark = gw.mark()
    ca_wall["agent"]("agent-forged", "clinic-ca", signer=other)
    gw.wait_event("handshake_failed", timeout=5, since=mark, reason="unknown_certificate")
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0


def test_agent_refuses_gateway_with_wrong_name(ca_wall):
    p, admin = ca_wall["agent"]("agent-strict", "clinic-ca", server_name="elsewhere.internal")
    p.wait_event("dial_failed", timeout=5)
    assert admin.metric("netwall_tunnels_up") == 0
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0

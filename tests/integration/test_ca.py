"""CA mode: agents identified by certificates a CA signed (CN names the [agent] section),
the gateway verified by the agent against the CA and a server name; revocation by CRL.
The agent's pin of the gateway: an impostor gateway is refused."""

import datetime
import re
import signal
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import (HERE, NETWALL_BIN, Admin, admin_answers, agent_config, connect, free_port,
                      gateway_config, ini_text, recv_exact, svc, wait_until)


def openssl(*args, cwd):
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name="ca"):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out",
            f"{name}.crt", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
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


def issue_raw(d, ca, name, cns):
    """A key and a certificate signed by ca whose subject is the CN values cns, as given:
    several, an embedded NUL or more than 64 bytes, which the openssl CLI will not make."""
    ca_crt = x509.load_pem_x509_certificate(ca[0].read_bytes())
    ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)
                         for cn in cns])
    crt = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_crt.subject)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(hours=1))
           .not_valid_after(now + datetime.timedelta(days=2))
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("agent.internal")]),
                          critical=False)
           .sign(ca_key, hashes.SHA256()))
    (d / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (d / f"{name}.crt").write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    return d / f"{name}.crt", d / f"{name}.key"


def serial_of(crt):
    return x509.load_pem_x509_certificate(crt.read_bytes()).serial_number


def write_crl(path, ca, revoked=()):
    """A CRL from ca revoking the serial numbers in revoked, valid for a day."""
    ca_crt = x509.load_pem_x509_certificate(ca[0].read_bytes())
    ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_crt.subject)
         .last_update(now - datetime.timedelta(hours=1))
         .next_update(now + datetime.timedelta(days=1)))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(now - datetime.timedelta(hours=1))
                                      .build())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    tmp.rename(path)
    return path


@pytest.fixture
def ca_wall(procs, echo, tmp_path, request):
    ca = make_ca(tmp_path)
    gw_crt, gw_key = issue(tmp_path, ca, "gateway", "gateway.internal")
    target = echo()
    tport, sport, gadmin = free_port(), free_port(), free_port()
    crl = None
    if getattr(request, "param", None) == "crl":
        crl = write_crl(tmp_path / "agents.crl", ca)
    gw_ini = tmp_path / "gateway.ini"
    gw_ini.write_text(ini_text([
        ("gateway", [("listen", f"127.0.0.1:{tport}"), ("cert", gw_crt), ("key", gw_key),
                     ("ca", ca[0]), ("crl", crl), ("admin", f"127.0.0.1:{gadmin}"),
                     ("drain_timeout", "1")]),
        ("agent clinic-ca", []),
        ("service echo", [("listen", f"127.0.0.1:{sport}"), ("agents", "clinic-ca")]),
    ]))
    gw = procs.start("gateway", [NETWALL_BIN, "gateway", "-c", gw_ini], check_exit=True)
    wait_until(lambda: admin_answers(gadmin), 10, "gateway admin")

    def agent(name, cn, *, ca_for_gateway=ca[0], server_name="gateway.internal", signer=ca,
              cert=None):
        crt, key = cert or issue(tmp_path, signer, name, cn)
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
            "ca": ca, "dir": tmp_path, "crl": crl}


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


def test_agent_refuses_gateway_from_another_ca(ca_wall):
    """The gateway's certificate (right name) chains to a CA the agent does not trust."""
    other = make_ca(ca_wall["dir"], "otherca")
    p, admin = ca_wall["agent"]("agent-wary", "clinic-ca", ca_for_gateway=other[0])
    p.wait_event("handshake_failed", timeout=5, reason="bad_certificate")
    assert "certificate_verify_failed" in p.events("handshake_failed")[0]["detail"]
    assert admin.metric("netwall_tunnels_up") == 0
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0


# ---- the agent's name in CA mode: exactly one CN, no NUL, at most 64 bytes ----

def refused_for_name(ca_wall, name, cns, problem):
    gw = ca_wall["gw"]
    mark = gw.mark()
    crt = issue_raw(ca_wall["dir"], ca_wall["ca"], name, cns)
    ca_wall["agent"](name, None, cert=crt)
    ev = gw.wait_event("agent_name_refused", timeout=5, since=mark, problem=problem)[0]
    gw.wait_event("handshake_failed", timeout=5, since=mark, reason="bad_agent_name")
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0
    return ev


def test_one_cn_from_raw_builder_serves(ca_wall):
    """The raw certificate builder itself makes certificates the gateway takes (so the
    refusals below are for the names, not for how the certificates were made)."""
    crt = issue_raw(ca_wall["dir"], ca_wall["ca"], "agent-raw", ["clinic-ca"])
    ca_wall["agent"]("agent-raw", None, cert=crt)
    ca_wall["gw_admin"].wait_metric("netwall_tunnels_up", lambda v: v == 2, 10)


def test_two_cns_are_refused(ca_wall):
    ev = refused_for_name(ca_wall, "agent-two", ["clinic-ca", "someone-else"], "cn_twice")
    assert ev["cn"] == "clinic-ca"


def test_cn_with_nul_is_refused(ca_wall):
    ev = refused_for_name(ca_wall, "agent-nul", ["clinic-ca\x00.evil"], "cn_nul")
    assert ev["cn"] == "clinic-ca%00.evil"


def test_cn_of_65_bytes_is_refused(ca_wall):
    ev = refused_for_name(ca_wall, "agent-long", ["c" * 65], "cn_too_long")
    assert ev["cn"] == "c" * 65


def test_cn_of_64_bytes_is_a_name(ca_wall):
    """64 bytes is a CN (no [agent] section can have that name: unknown, not malformed)."""
    gw = ca_wall["gw"]
    mark = gw.mark()
    crt = issue_raw(ca_wall["dir"], ca_wall["ca"], "agent-64", ["c" * 64])
    ca_wall["agent"]("agent-64", None, cert=crt)
    gw.wait_event("handshake_failed", timeout=5, since=mark, reason="unknown_certificate")
    assert not gw.events("agent_name_refused", since=mark)


def test_cn_with_log_forging_bytes_is_escaped(ca_wall):
    """A CN that is refused reaches the log escaped: it cannot end its field or the line."""
    ev = refused_for_name(ca_wall, "agent-forge",
                          ["x level=error event=tunnel_up\nagent=clinic-ca", "y"], "cn_twice")
    assert ev["cn"] == "x%20level%3Derror%20event%3Dtunnel_up%0Aagent%3Dclinic-ca"


# ---- revocation ----

@pytest.mark.parametrize("ca_wall", ["crl"], indirect=True)
def test_revoked_agent_is_refused(ca_wall):
    gw = ca_wall["gw"]
    crt = issue(ca_wall["dir"], ca_wall["ca"], "agent-revoked", "clinic-ca")
    write_crl(ca_wall["crl"], ca_wall["ca"], [serial_of(crt[0])])
    mark = gw.mark()
    gw.signal(signal.SIGHUP)
    gw.wait_event("reloaded", timeout=5, since=mark)
    _, admin = ca_wall["agent"]("agent-revoked", None, cert=crt)
    gw.wait_event("handshake_failed", timeout=5, since=mark, reason="revoked")
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0
    assert admin.metric("netwall_tunnels_up") == 0


@pytest.mark.parametrize("ca_wall", ["crl"], indirect=True)
def test_crl_change_follows_sighup(ca_wall):
    """Revoking a connected agent and reloading closes its tunnels and refuses its redials;
    taking the revocation back and reloading lets it in again."""
    gw, gw_admin = ca_wall["gw"], ca_wall["gw_admin"]
    crt = issue(ca_wall["dir"], ca_wall["ca"], "agent-crl", "clinic-ca")
    ca_wall["agent"]("agent-crl", None, cert=crt)
    gw_admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 10)

    write_crl(ca_wall["crl"], ca_wall["ca"], [serial_of(crt[0])])
    mark = gw.mark()
    gw.signal(signal.SIGHUP)
    gw.wait_event("reloaded", timeout=5, since=mark)
    gw_admin.wait_metric("netwall_tunnels_up", lambda v: v == 0, 10)
    gw.wait_event("tunnel_down", timeout=5, since=mark, count=2, reason="revoked")
    gw.wait_event("handshake_failed", timeout=10, since=mark, reason="revoked")

    write_crl(ca_wall["crl"], ca_wall["ca"])
    gw.signal(signal.SIGHUP)
    gw_admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 15)
    s = connect(ca_wall["port"])
    s.sendall(b"back")
    assert recv_exact(s, 4) == b"back"
    s.close()


def tunnel_port(ca_wall):
    text = (ca_wall["dir"] / "gateway.ini").read_text()
    return int(re.search(r"listen = 127\.0\.0\.1:(\d+)", text).group(1))


@pytest.mark.parametrize("ca_wall", ["crl"], indirect=True)
def test_crl_reload_during_a_handshake(ca_wall):
    """An agent revoked while its handshake is still under way is refused: a reload closes
    the tunnels not yet established (their SSL verifies against the old store, CRL
    included), and the agent's redial meets the new CRL. The gateway took such a tunnel
    before."""
    sys.path.insert(0, str(HERE / "helpers"))
    import fake_agent
    gw = ca_wall["gw"]
    crt = issue(ca_wall["dir"], ca_wall["ca"], "agent-rev", "clinic-ca")

    def revoke_and_reload():
        write_crl(ca_wall["crl"], ca_wall["ca"], [serial_of(crt[0])])
        mark = gw.mark()
        gw.signal(signal.SIGHUP)
        gw.wait_event("reloaded", timeout=5, since=mark)

    mark = gw.mark()
    try:
        answered = fake_agent.run(tunnel_port(ca_wall), crt[0], crt[1],
                                  hold=revoke_and_reload, seconds=3, log=lambda *a: None)
    except OSError:
        answered = False   # the gateway closed the connection under the agent's feet
    assert not answered, "the gateway took a tunnel revoked during its handshake"
    assert not gw.events("tunnel_up", since=mark)
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0

def test_services_header_cannot_forge_log_fields(ca_wall):
    """An agent's x-netwall-services list is the agent's word: an item that is not a
    config name (here one with spaces and '=') makes a bad hello, refused, and nothing of
    it forges fields in the gateway's log. It was logged raw in tunnel_up before."""
    sys.path.insert(0, str(HERE / "helpers"))
    import fake_agent
    gw = ca_wall["gw"]
    crt = issue(ca_wall["dir"], ca_wall["ca"], "agent-fake", "clinic-ca")
    mark = gw.mark()
    try:
        fake_agent.run(tunnel_port(ca_wall), crt[0], crt[1], seconds=2, log=lambda *a: None,
                       services=b"echo agent=root peer=10.9.9.9 level=error")
    except OSError:
        pass
    gw.wait_event("bad_hello", timeout=5, since=mark)
    assert not gw.events("tunnel_up", since=mark)
    for line in gw.text(mark).splitlines():
        assert "agent=root" not in line and "level=error" not in line, line
    assert ca_wall["gw_admin"].metric("netwall_tunnels_up") == 0

# ---- the agent's pin of the gateway ----

def test_agent_refuses_impostor_gateway(procs, keys, echo, tmp_path):
    """A gateway with another key (one that would take the agent) is refused by an agent
    pinned to the real gateway's fingerprint."""
    target = echo()
    tport, sport, gadmin, aadmin = free_port(), free_port(), free_port(), free_port()
    gw_ini = tmp_path / "impostor.ini"
    gw_ini.write_text(gateway_config(
        listen=f"127.0.0.1:{tport}", cert=keys["stranger"].crt, key=keys["stranger"].key,
        admin=f"127.0.0.1:{gadmin}", agents={"site-a": keys["site-a"].fingerprint},
        services={"echo": svc(listen=f"127.0.0.1:{sport}")}, extra={"drain_timeout": "1"}))
    procs.start("impostor", [NETWALL_BIN, "gateway", "-c", gw_ini], check_exit=True)
    wait_until(lambda: admin_answers(gadmin), 10, "impostor admin")
    ag_ini = tmp_path / "agent.ini"
    ag_ini.write_text(agent_config(
        gateways=[f"127.0.0.1:{tport}"], cert=keys["site-a"].crt, key=keys["site-a"].key,
        gateway_fingerprint=keys["gateway"].fingerprint, admin=f"127.0.0.1:{aadmin}",
        services={"echo": target.addr}, extra={"drain_timeout": "1"}))
    ag = procs.start("agent", [NETWALL_BIN, "agent", "-c", ag_ini], check_exit=True)
    ev = ag.wait_event("handshake_failed", timeout=5, reason="bad_certificate")[0]
    assert "certificate_verify_failed" in ev["detail"]
    assert Admin(aadmin).metric("netwall_tunnels_up") == 0
    assert Admin(gadmin).metric("netwall_tunnels_up") == 0

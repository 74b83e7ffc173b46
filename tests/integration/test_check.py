"""`netwall check`, `keygen` and `fingerprint`."""

import os
import shutil
import stat

import pytest

from conftest import FP_RE, netwall, openssl_fingerprint, openssl_identity


@pytest.fixture
def confdir(tmp_path, keys):
    """A directory with key files and configs referring to them relatively."""
    for ident in (keys["gateway"], keys["site-a"]):
        shutil.copy(ident.crt, tmp_path / ident.crt.name)
        shutil.copy(ident.key, tmp_path / ident.key.name)
    return tmp_path


def gateway_lines(keys):
    return [
        "; gateway for the check tests",
        "[gateway]",
        "listen = 127.0.0.1:17443",
        "listen = [::1]:17443",
        "cert = gateway.crt",
        "key = gateway.key",
        "admin = 127.0.0.1:19100",
        "drain_timeout = 0.5",
        "",
        "[agent site-a]",
        f"fingerprint = {keys['site-a'].fingerprint}",
        "",
        "[service web]",
        "listen = 127.0.0.1:18080",
        "agents = site-a",
        "allow = 127.0.0.0/8, ::1",
        "allow = 2001:db8::/32",
        "max_connections = 100",
        "proxy_protocol = v2",
        "",
    ]


def agent_lines(keys):
    return [
        "[agent]",
        "gateway = 127.0.0.1:17443",
        "cert = site-a.crt",
        "key = site-a.key",
        f"gateway_fingerprint = {keys['gateway'].fingerprint}",
        "tunnels = 2",
        "admin = off",
        "",
        "[service web]",
        "target = 127.0.0.1:18081",
        "",
        "[service sock]",
        "target = unix:/run/some.sock",
        "",
    ]


def run_check(path):
    return netwall("check", path)


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_valid_gateway_config(confdir, keys):
    r = run_check(write(confdir / "gateway.ini", gateway_lines(keys)))
    assert r.returncode == 0, r.stderr


def test_rate_limits_at_their_bounds_are_valid(confdir, keys):
    lines = gateway_lines(keys)
    insert_after(lines, "agents = site-a", "rate_limit = 1024")
    insert_after(lines, "agents = site-a", "visitor_rate_limit = 1000000000000")
    r = run_check(write(confdir / "gateway.ini", lines))
    assert r.returncode == 0, r.stderr


def test_valid_agent_config(confdir, keys):
    r = run_check(write(confdir / "agent.ini", agent_lines(keys)))
    assert r.returncode == 0, r.stderr


def replace(lines, old, new):
    i = lines.index(old)
    lines[i] = new
    return i + 1


def insert_after(lines, anchor, new):
    i = lines.index(anchor)
    lines.insert(i + 1, new)
    return i + 2


def remove(lines, old, header):
    lines.remove(old)
    return lines.index(header) + 1


def add_service(lines, web, two, report):
    """Adds lines web to [service web] and a [service two] with lines two; returns the line
    of two's entry report (an exact line, or the section header when None)."""
    at = lines.index("proxy_protocol = v2") + 1
    lines[at:at] = web
    lines += ["[service two]", *two, ""]
    return len(lines) - len(two) - 1 if report is None else lines.index(report, at + len(web)) + 1


SHARED = "listen = 127.0.0.1:18080"
# name: (which config, edit(lines) -> expected 1-based line)
BAD = {
    # services sharing a listen address
    "shared_listen_without_names": ("gateway", lambda l: add_service(
        l, [], [SHARED, "agents = site-a"], None)),
    "shared_listen_sni_and_host": ("gateway", lambda l: add_service(
        l, ["sni = a.example"], [SHARED, "agents = site-a", "host = b.example"],
        "host = b.example")),
    "shared_listen_same_name": ("gateway", lambda l: add_service(
        l, ["sni = a.example, *.b.example"], [SHARED, "agents = site-a",
                                              "sni = *.B.example"], "sni = *.B.example")),
    "shared_listen_two_defaults": ("gateway", lambda l: add_service(
        l, ["sni = a.example", "default = yes"],
        [SHARED, "agents = site-a", "sni = c.example", "default = yes"], "default = yes")),
    "sni_bad_name": ("gateway", lambda l: insert_after(l, "proxy_protocol = v2",
                                                       "sni = a..example")),
    "unknown_key": ("gateway", lambda l: insert_after(l, "key = gateway.key", "colour = blue")),
    "unknown_section": ("gateway", lambda l: insert_after(l, "", "[bogus]")),
    "bad_address": ("gateway", lambda l: replace(l, "listen = 127.0.0.1:18080",
                                                 "listen = 127.0.0.1:notaport")),
    "port_out_of_range": ("gateway", lambda l: replace(l, "listen = 127.0.0.1:18080",
                                                       "listen = 127.0.0.1:70000")),
    "address_no_port": ("gateway", lambda l: replace(l, "listen = 127.0.0.1:17443",
                                                     "listen = 127.0.0.1")),
    "bad_cidr_prefix": ("gateway", lambda l: replace(l, "allow = 127.0.0.0/8, ::1",
                                                     "allow = 127.0.0.0/33")),
    "bad_cidr_address": ("gateway", lambda l: replace(l, "allow = 2001:db8::/32",
                                                      "allow = 127.0.0.300/8")),
    "missing_cert": ("gateway", lambda l: remove(l, "cert = gateway.crt", "[gateway]")),
    "missing_service_agents": ("gateway", lambda l: remove(l, "agents = site-a", "[service web]")),
    "bad_fingerprint": ("gateway", lambda l: replace(
        l, next(x for x in l if x.startswith("fingerprint")), "fingerprint = abcdef")),
    # A cross-reference: the agents line or its section header both name it.
    "unknown_agent_in_service": ("gateway", lambda l: (
        replace(l, "agents = site-a", "agents = site-zz"), l.index("[service web]") + 1)),
    "bad_proxy_protocol": ("gateway", lambda l: replace(l, "proxy_protocol = v2",
                                                        "proxy_protocol = v3")),
    "bad_duration": ("gateway", lambda l: replace(l, "drain_timeout = 0.5",
                                                  "drain_timeout = soon")),
    "window_too_small": ("gateway", lambda l: insert_after(l, "drain_timeout = 0.5",
                                                           "stream_window = 1000")),
    # rate limits: 1024 bytes a second at least (or 0), 10^12 at most
    "rate_limit_under_least": ("gateway", lambda l: insert_after(l, "agents = site-a",
                                                                 "rate_limit = 1023")),
    "rate_limit_over_most": ("gateway", lambda l: insert_after(l, "agents = site-a",
                                                               "rate_limit = 1000000000001")),
    "visitor_rate_limit_not_a_number": ("gateway", lambda l: insert_after(
        l, "agents = site-a", "visitor_rate_limit = 10M")),
    "agent_unknown_key": ("agent", lambda l: insert_after(l, "tunnels = 2", "tunels = 3")),
    "agent_tunnels_range": ("agent", lambda l: replace(l, "tunnels = 2", "tunnels = 17")),
    "agent_missing_target": ("agent", lambda l: remove(l, "target = 127.0.0.1:18081",
                                                       "[service web]")),
    "agent_bad_target": ("agent", lambda l: replace(l, "target = 127.0.0.1:18081",
                                                    "target = 127.0.0.1")),
    "agent_missing_gateway": ("agent", lambda l: remove(l, "gateway = 127.0.0.1:17443",
                                                        "[agent]")),
    "agent_bad_gateway_fingerprint": ("agent", lambda l: replace(
        l, next(x for x in l if x.startswith("gateway_fingerprint")),
        "gateway_fingerprint = " + "g" * 64)),
    # a second one used to replace the first silently
    "agent_gateway_fingerprint_twice": ("agent", lambda l: insert_after(
        l, next(x for x in l if x.startswith("gateway_fingerprint")),
        "gateway_fingerprint = " + "a" * 64)),
    "agent_bad_gateway_pin": ("agent", lambda l: replace(
        l, "gateway = 127.0.0.1:17443", "gateway = 127.0.0.1:17443 " + "a" * 63)),
    "agent_gateway_twice": ("agent", lambda l: insert_after(
        l, "gateway = 127.0.0.1:17443", "gateway = 127.0.0.1:17443 " + "a" * 64)),
    "agent_target_twice": ("agent", lambda l: replace(l, "target = 127.0.0.1:18081",
                                                      "target = 127.0.0.1:18081, 127.0.0.1:18081")),
    # 16 addresses are the most: the line with the 17th is named
    "agent_too_many_targets": ("agent", lambda l: [
        insert_after(l, "target = 127.0.0.1:18081", f"target = 127.0.0.2:{18099 - i}")
        for i in range(16)][-1] + 15),
    "agent_bad_health_check": ("agent", lambda l: insert_after(
        l, "target = 127.0.0.1:18081", "health_check = udp")),
    "agent_health_interval_zero": ("agent", lambda l: insert_after(
        l, "target = 127.0.0.1:18081", "health_interval = 0")),
}


@pytest.mark.parametrize("case", list(BAD))
def test_invalid_config_names_file_and_line(confdir, keys, case):
    kind, edit = BAD[case]
    lines = gateway_lines(keys) if kind == "gateway" else agent_lines(keys)
    want = edit(lines)
    want = want if isinstance(want, tuple) else (want,)
    path = write(confdir / f"{case}.ini", lines)

    r = run_check(path)

    assert r.returncode == 1, f"exit {r.returncode}, stderr: {r.stderr!r}"
    assert any(f"{path}:{n}:" in r.stderr for n in want), (
        f"expected '{path}:{want[0]}:' (line: {lines[want[0] - 1]!r}) in stderr:\n{r.stderr}")


def test_shared_listen_with_names_is_valid(confdir, keys):
    lines = gateway_lines(keys)
    add_service(lines, ["sni = a.example", "default = yes"],
                [SHARED, "agents = site-a", "sni = *.a.example"], None)
    r = run_check(write(confdir / "shared.ini", lines))
    assert r.returncode == 0, r.stderr


def test_check_missing_file(tmp_path, netwall_bin):
    r = run_check(tmp_path / "nope.ini")
    assert r.returncode == 1
    assert "nope.ini" in r.stderr


def test_keygen_fingerprint_matches_openssl(tmp_path, netwall_bin):
    r = netwall("keygen", "--out", tmp_path, "node")
    assert r.returncode == 0, r.stderr
    fp = r.stdout.strip()
    assert r.stdout == fp + "\n" and FP_RE.match(fp), repr(r.stdout)
    crt, key = tmp_path / "node.crt", tmp_path / "node.key"
    assert fp == openssl_fingerprint(crt)
    assert stat.S_IMODE(os.stat(key).st_mode) & 0o077 == 0, "private key readable by others"

    again = netwall("fingerprint", crt)
    assert again.returncode == 0 and again.stdout == fp + "\n"

    other = netwall("keygen", "--out", tmp_path, "node2").stdout.strip()
    assert FP_RE.match(other) and other != fp


def test_fingerprint_of_foreign_certificate(tmp_path, netwall_bin):
    ident = openssl_identity(tmp_path, "foreign", keytype="rsa")
    r = netwall("fingerprint", ident.crt)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ident.fingerprint + "\n"


def test_fingerprint_of_non_certificate_fails(tmp_path, netwall_bin):
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    r = netwall("fingerprint", junk)
    assert r.returncode != 0
    assert r.stdout == ""


def test_check_loads_tls_material(confdir, keys):
    """check loads certificates and keys as the daemon would, naming the config line."""
    lines = gateway_lines(keys)
    bad = [l.replace("cert = gateway.crt", "cert = missing.crt") for l in lines]
    r = run_check(write(confdir / "nocert.ini", bad))
    assert r.returncode == 1
    assert r.stderr.startswith(f"{confdir / 'nocert.ini'}:5: cannot load certificate"), r.stderr

    (confdir / "garbage.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    bad = [l.replace("key = gateway.key", "key = garbage.key") for l in lines]
    r = run_check(write(confdir / "badkey.ini", bad))
    assert r.returncode == 1
    assert r.stderr.startswith(f"{confdir / 'badkey.ini'}:6: cannot load private key"), r.stderr

    # a key that is valid but belongs to another certificate
    bad = [l.replace("key = gateway.key", "key = site-a.key") for l in lines]
    r = run_check(write(confdir / "mismatch.ini", bad))
    assert r.returncode == 1 and ":6: " in r.stderr, r.stderr


def test_check_loads_target_ca(confdir, keys):
    lines = agent_lines(keys) + ["[service api]", "target = 127.0.0.1:18443", "tls = on",
                                 "tls_ca = nowhere.pem", ""]
    r = run_check(write(confdir / "agent-ca.ini", lines))
    assert r.returncode == 1
    assert f"{confdir / 'agent-ca.ini'}:17: cannot load CA bundle" in r.stderr, r.stderr

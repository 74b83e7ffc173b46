"""Hostile or unauthorised peers are refused; the legitimate agent and its
visitors are not disturbed."""

import random
import socket
import ssl

import pytest

from conftest import (closed_within, connect, echo_works, openssl_identity, roundtrip,
                      visitor_closed_within, wait_until)


def tls_client_ctx(cert=None, key=None, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def tls_attempt(port, ctx):
    """Try a TLS session to the tunnel port and then use it. Returns how it
    ended: 'handshake_error', 'closed' or 'open' (the refusal failed)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        try:
            tls = ctx.wrap_socket(raw)
        except (ssl.SSLError, ConnectionError, OSError):
            return "handshake_error"
        # TLS 1.3: the client finishes before the server has judged its
        # certificate, so the refusal shows on the next read.
        try:
            tls.sendall(b"\x00" * 64)
        except (ssl.SSLError, ConnectionError, OSError):
            return "closed"
        return "closed" if closed_within(tls, 5) is not None else "open"
    finally:
        raw.close()


def raw_attempt(port, payload):
    """Send payload on plain TCP; returns 'closed' or 'open'."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        if payload:
            try:
                s.sendall(payload)
            except (ConnectionError, OSError):
                return "closed"
        return "closed" if closed_within(s, 10) is not None else "open"


def garbage():
    """Random bytes that do not start like a TLS record or an SSLv2 hello."""
    rnd = random.Random(20240101)
    while True:
        data = bytes(rnd.getrandbits(8) for _ in range(1024))
        if not (0x14 <= data[0] <= 0x18 or data[0] & 0x80):
            return data


CASES = {
    # name: (reason, gateway extra config, attempt(keys, tmp_path, port) -> outcome)
    "unknown_cert_netwall": ("unknown_certificate", {}, lambda k, t, p: tls_attempt(
        p, tls_client_ctx(k["stranger"].crt, k["stranger"].key))),
    "unknown_cert_openssl": ("unknown_certificate", {}, lambda k, t, p: tls_attempt(
        p, tls_client_ctx(*_ossl(t)))),
    "no_cert": ("no_certificate", {}, lambda k, t, p: tls_attempt(p, tls_client_ctx())),
    "tls12_only": ("unsupported_protocol", {}, lambda k, t, p: tls_attempt(
        p, tls_client_ctx(k["site-a"].crt, k["site-a"].key,
                          max_version=ssl.TLSVersion.TLSv1_2))),
    "plain_text": ("not_tls", {}, lambda k, t, p: raw_attempt(p, b"hello gateway\r\n")),
    "http_request": ("not_tls", {}, lambda k, t, p: raw_attempt(
        p, b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")),
    "garbage": ("not_tls", {}, lambda k, t, p: raw_attempt(p, garbage())),
    "silent": ("timeout", {"handshake_timeout": "1"}, lambda k, t, p: raw_attempt(p, b"")),
}


def _ossl(tmp):
    ident = openssl_identity(tmp, "outsider")
    return ident.crt, ident.key


@pytest.mark.parametrize("case", list(CASES))
def test_bad_tunnel_client_refused(wall, echo, keys, tmp_path, case):
    reason, gw_extra, attempt = CASES[case]
    target = echo()
    gw, ag = wall.stack(target.addr, "echo", gw_extra=gw_extra)
    vport = gw.port("echo")
    failures0 = gw.metric("netwall_handshake_failures_total", default=0.0)
    mark = gw.proc.mark()

    with connect(vport) as visitor:
        roundtrip(visitor)
        outcome = attempt(keys, tmp_path, gw.tunnel_port)
        assert outcome in ("handshake_error", "closed"), f"{case}: bad client was not refused"

        ev = gw.proc.wait_event("handshake_failed", since=mark, timeout=8)
        assert [e["reason"] for e in ev] == [reason], [e["_line"] for e in ev]
        gw.admin.wait_metric("netwall_handshake_failures_total",
                             lambda v: v == failures0 + 1, 5)

        # The legitimate agent stayed up and the open visitor still works.
        roundtrip(visitor)
    assert gw.proc.events("tunnel_down", since=mark) == []
    assert gw.metric("netwall_tunnels_up") == 2
    assert echo_works(vport)
    assert gw.proc.alive() and ag.proc.alive()


def test_burst_of_bad_clients(wall, echo, keys):
    """A burst of mixed bad clients: each is refused, the agent stays."""
    target = echo()
    gw, _ = wall.stack(target.addr, "echo")
    failures0 = gw.metric("netwall_handshake_failures_total", default=0.0)
    mark = gw.proc.mark()
    for i in range(10):
        assert raw_attempt(gw.tunnel_port, b"junk %d\r\n" % i) == "closed"
        assert tls_attempt(gw.tunnel_port, tls_client_ctx()) in ("handshake_error", "closed")
    gw.admin.wait_metric("netwall_handshake_failures_total", lambda v: v == failures0 + 20, 10)
    assert gw.proc.events("tunnel_down", since=mark) == []
    assert echo_works(gw.port("echo"))


def test_source_allowlist(wall, echo):
    target = echo()
    gw, _ = wall.stack(target.addr, "echo", svc_opts={"allow": "127.0.0.2/32"})
    port = gw.port("echo")
    before = gw.metric("netwall_rejected_total", default=0.0, service="echo", reason="source")

    took = visitor_closed_within(port, 1.0, source="127.0.0.1", send=b"let me in")
    assert took is not None, "visitor outside the allowlist was not closed at once"
    ev = gw.proc.wait_event("visitor_rejected", service="echo", reason="not_allowed")
    assert len(ev) == 1
    assert gw.metric("netwall_rejected_total", service="echo", reason="source") == before + 1

    assert echo_works(port, source="127.0.0.2")
    assert len(gw.proc.events("visitor_rejected")) == 1


def test_max_connections(wall, echo):
    target = echo()
    gw, _ = wall.stack(target.addr, "echo", svc_opts={"max_connections": "2"})
    port = gw.port("echo")

    with connect(port) as v1, connect(port) as v2:
        roundtrip(v1)
        roundtrip(v2)
        took = visitor_closed_within(port, 1.0)
        assert took is not None, "third visitor over max_connections = 2 was not closed at once"
        gw.proc.wait_event("visitor_rejected", service="echo", reason="max_connections")
        assert gw.metric("netwall_rejected_total", service="echo", reason="limit") == 1
        roundtrip(v1)
        roundtrip(v2)
    # Both slots come back once the visitors leave.
    wait_until(lambda: gw.metric("netwall_streams_open") == 0, 5, "streams to close")
    with connect(port) as v4, connect(port) as v5:
        roundtrip(v4)
        roundtrip(v5)

"""Checks of the test harness itself (no netwall involved): the targets the
other tests tunnel to really start and answer, and the parsers are right."""

import hashlib
import subprocess

from conftest import (closed_within, connect, curl_sha256, echo_works,
                      openssl_identity, parse_log_line, parse_metrics, pss_kib, roundtrip)


def test_targets_answer_directly(nginx, redis, postgres, echo, www):
    web = nginx()
    rc, sha, n, err = curl_sha256(f"http://127.0.0.1:{web.port}/1k.bin")
    assert rc == 0, err
    assert (sha, n) == (www["1k.bin"].sha256, 1024)

    r = redis()
    out = subprocess.run(["redis-cli", "-p", str(r.port), "SET", "k", "v"],
                         capture_output=True, text=True, timeout=10).stdout
    assert out.strip() == "OK"

    pg = postgres()
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                          "-At", "-c", "select 40+2"], capture_output=True, text=True,
                         timeout=20).stdout
    assert out.strip() == "42"

    e = echo()
    assert echo_works(e.port)
    assert pss_kib(e.proc.pid) > 0


def test_closed_within_sees_open_then_eof(echo):
    e = echo()
    with connect(e.port) as s:
        assert closed_within(s, 0.3) is None      # still open: echo keeps it
        roundtrip(s, b"x")
        e.proc.stop()                             # server exit closes the socket
        assert closed_within(s, 2) is not None


def test_parsers():
    m = parse_metrics('# HELP x y\nnetwall_rejected_total{service="web",reason="limit"} 3\n'
                      "netwall_streams_open 7\n")
    assert m == [("netwall_rejected_total", {"service": "web", "reason": "limit"}, 3.0),
                 ("netwall_streams_open", {}, 7.0)]
    kv = parse_log_line('ts=2024 level=info role=gateway event=tunnel_up agent=site-a msg="a b"')
    assert kv["event"] == "tunnel_up" and kv["agent"] == "site-a" and kv["msg"] == "a b"


def test_openssl_identity(tmp_path):
    ident = openssl_identity(tmp_path, "x")
    der = subprocess.run(["openssl", "x509", "-in", ident.crt, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    assert ident.fingerprint == hashlib.sha256(der).hexdigest()

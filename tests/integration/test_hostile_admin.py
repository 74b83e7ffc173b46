"""The admin listener against a hostile client: one deadline for a whole request, however
slowly its bytes come; a cap on connections in all and per source; headers just over the
limit refused."""

import time

from conftest import closed_within, connect, visitor_closed_within, wait_until
from hl7util import intake  # noqa: F401  (a fixture)

DEADLINE = 5        # ADMIN_TIMEOUT: seconds for a whole request, from accept
MAX_PER_SOURCE = 8  # ADMIN_MAX_PER_SOURCE
MAX_CONNS = 32      # ADMIN_MAX_CONNECTIONS
MAX_HEADERS = 8192  # ADMIN_MAX_HEADERS


def healthz(port, source=None):
    with connect(port, source=source) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_trickled_request_is_cut_at_the_deadline(wall, echo):
    gw, _ = wall.stack(echo().addr, "echo")
    start = time.monotonic()
    with connect(gw.admin.port) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        closed = False
        # one header byte a second, for up to four deadlines
        while time.monotonic() - start < 4 * DEADLINE:
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_within(s, 1.0) is not None:
                closed = True
                break
        took = time.monotonic() - start
    assert closed, f"a trickling request held the admin connection for {took:.0f} s"
    assert took < 3 * DEADLINE
    assert b"200 OK" in healthz(gw.admin.port)


def test_connection_cap_per_source_and_in_all(wall, echo):
    gw, _ = wall.stack(echo().addr, "echo")
    port = gw.admin.port
    held = []
    try:
        for _ in range(MAX_PER_SOURCE):
            held.append(connect(port, source="127.0.0.3"))
        # just over the share of one source: refused at once
        assert visitor_closed_within(port, 2, source="127.0.0.3") is not None, \
            "one source held more than its share"
        # other sources fill the rest
        for i in range(MAX_CONNS - MAX_PER_SOURCE):
            held.append(connect(port, source=f"127.0.1.{10 + i // MAX_PER_SOURCE}"))
        # the held ones are still open: each answers a request
        assert all(closed_within(s, 0.01) is None for s in held)
        assert visitor_closed_within(port, 2, source="127.0.2.1") is not None, \
            "connection over the admin cap stayed"
    finally:
        for s in held:
            s.close()
    # the slots come back
    wait_until(lambda: b"200 OK" in healthz(port), 5, "admin to answer again")


def test_headers_just_over_the_limit(wall, echo):
    gw, _ = wall.stack(echo().addr, "echo")
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "
    req += b"a" * (MAX_HEADERS - len(req) - 4 + 1) + b"\r\n\r\n"
    assert len(req) == MAX_HEADERS + 1
    with connect(gw.admin.port) as s:
        s.sendall(req)
        data = b""
        s.settimeout(5)
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    assert data.startswith(b"HTTP/1.1 431"), data[:80]
    # exactly at the limit is served
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "
    req += b"a" * (MAX_HEADERS - len(req) - 4) + b"\r\n\r\n"
    assert len(req) == MAX_HEADERS
    with connect(gw.admin.port) as s:
        s.sendall(req)
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")


def ask(port, raw):
    """Sends raw bytes as one request and returns the answer's status line."""
    with connect(port) as s:
        s.sendall(raw)
        s.settimeout(5)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    return data.split(b"\r\n")[0]


def test_request_line_and_header_edges(intake, tmp_path):
    """The token with trailing whitespace is the token; a request line with anything after
    its version is refused; empty lines before a request are skipped (RFC 9112 2.2)."""
    token = tmp_path / "token"
    token.write_text("s3cret-admin-token-0123456789\n")
    token.chmod(0o600)
    port = intake(intake={"admin_token_file": str(token)}).admin.port
    assert ask(port, b"GET /metrics HTTP/1.1\r\n\r\n") == b"HTTP/1.1 401 Unauthorized"
    assert ask(port, b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer "
                     b"s3cret-admin-token-0123456789 \t\r\n\r\n") == b"HTTP/1.1 200 OK"
    assert ask(port, b"GET /healthz HTTP/1.1 junk\r\n\r\n") == b"HTTP/1.1 400 Bad Request"
    assert ask(port, b"GET /healthz HTTP/2.0\r\n\r\n") == b"HTTP/1.1 400 Bad Request"
    assert ask(port, b"\r\nGET /healthz HTTP/1.0\r\n\r\n") == b"HTTP/1.1 200 OK"

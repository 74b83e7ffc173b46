"""One stalled visitor must not stall another on the same service."""

import hashlib
import socket
import time

from conftest import MiB, SANITIZED, curl_sha256, pss_kib, wait_until


def read_http_response(s, timeout=60):
    """Read a Connection: close HTTP response to EOF; return (head, body sha256, body size)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, f"EOF inside the response head: {buf[:200]!r}"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    h = hashlib.sha256(body)
    n = len(body)
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return head.decode("latin-1"), h.hexdigest(), n


def test_stalled_reader_does_not_block_other_visitor(wall, nginx, www):
    web = nginx()
    gw, ag = wall.stack(web.addr, "web")
    port = gw.port("web")
    big_a, big_b = www["64m.bin"], www["256m.bin"]
    pss0 = {"gateway": pss_kib(gw.proc.pid), "agent": pss_kib(ag.proc.pid)}

    # Visitor A asks for 64 MiB and then reads nothing.
    a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    a.settimeout(10)
    a.connect(("127.0.0.1", port))
    a.sendall(b"GET /64m.bin HTTP/1.1\r\nHost: wall\r\nConnection: close\r\n\r\n")

    # Wait until A's stream stops moving: everything the buffers allow is written.
    samples = []

    def stalled():
        samples.append(gw.metric("netwall_bytes_out_total", default=0.0))
        return len(samples) >= 4 and samples[-1] > 0 and samples[-1] == samples[-4]
    wait_until(stalled, 20, "visitor A's stream to stall", interval=0.25)
    stalled_at = samples[-1]
    assert stalled_at < big_a.size, "the whole body was pushed to a visitor that reads nothing"
    if not SANITIZED:
        # Flow control holds A's body at nginx, it is not buffered in the wall.
        for role, pid in (("gateway", gw.proc.pid), ("agent", ag.proc.pid)):
            grown = (pss_kib(pid) - pss0[role]) / 1024
            assert grown < 40, f"{role} grew {grown:.1f} MiB holding a stalled 64 MiB stream"

    # Visitor B downloads 256 MiB meanwhile; it must finish while A is stalled.
    t0 = time.monotonic()
    rc, sha, size, err = curl_sha256(f"http://127.0.0.1:{port}/256m.bin", timeout=120)
    took = time.monotonic() - t0
    print(f"256 MiB beside a stalled reader: {took:.1f}s ({size / MiB / took:.0f} MiB/s); "
          f"A stalled at {stalled_at / MiB:.1f} MiB written")
    assert rc == 0, f"curl failed ({rc}) after {took:.1f}s: {err}"
    assert size == big_b.size and sha == big_b.sha256
    assert took < 120
    # A really was stalled the whole time (B's bytes are the only new ones).
    assert gw.metric("netwall_bytes_out_total") < stalled_at + big_b.size + 1 * MiB

    # A resumes: its body is complete and exact.
    with a:
        head, sha_a, size_a = read_http_response(a)
    assert head.startswith("HTTP/1.1 200"), head
    assert size_a == big_a.size
    assert sha_a == big_a.sha256

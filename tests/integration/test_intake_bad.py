"""Bad input: each gets the right NAK or a clean close with a logged reason, and other
connections go on unaffected."""

import os
import struct
import socket
import threading
import time

from hl7util import DATA, ack_code, field, frame, intake, load_sample, msg  # noqa: F401


class Steady:
    """A well-behaved sender on its own connection, running alongside a bad one."""

    def __init__(self, it):
        self.it = it
        self.ok = 0
        self.errors = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        i = 0
        try:
            with self.it.client() as c:
                while not self.stop.is_set():
                    ack = c.call(msg(f"STEADY-{os.getpid()}-{i}"))
                    if ack is None or ack_code(ack) != "AA":
                        self.errors.append(ack)
                        return
                    self.ok += 1
                    i += 1
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001
            self.errors.append(e)

    def finish(self):
        n = self.ok
        time.sleep(0.2)
        self.stop.set()
        self.t.join(10)
        assert not self.errors, self.errors
        assert self.ok > n or self.ok > 0


def test_malformed_messages_get_naks(intake):
    it = intake()
    steady = Steady(it)
    cases = [
        (b"PID|1||123\rMSH|^~\\&|A|B|C|D|2026||ADT^A01|X1|P|2.5\r", "100"),   # no MSH first
        (b"MSH|^|A|B|C|D|2026||ADT^A01|X2|P|2.5\r", "102"),       # MSH-2 too short
        (b"MSH|^^\\&|A|B|C|D|2026||ADT^A01|X3|P|2.5\r", "102"),   # a repeated delimiter
        (b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X4|P|2.5|||AL|AL|" + b"|" * 2000 + b"\r", None),
        (b"\x00\x01\x02binary\xff\xfe", "100"),
    ]
    with it.client() as c:
        for m, code in cases:
            ack = c.call(m)
            assert ack is not None
            if code is None:
                assert ack_code(ack) in ("AR", "CR")
                continue
            assert ack_code(ack) == "AR", (m[:20], ack)
            assert code in (field(ack, "ERR", 3) or field(ack, "ERR", 1)), ack
        # the connection is still good after every NAK
        assert ack_code(c.call(msg("AFTER-NAKS"))) == "AA"
    steady.finish()
    assert it.metric("netwall_intake_rejected_total", reason="parse") >= 3
    ev = it.proc.events("rejected", reason="parse")
    assert ev and all("error" in e for e in ev)


def test_lf_line_endings_are_tolerated(intake):
    it = intake()
    raw = (DATA / "malformed_lf_line_endings_adt_a04_simplehl7.hl7").read_bytes()
    assert b"\n" in raw and b"\r" not in raw
    with it.client() as c:
        ack = c.call(raw)
    assert ack_code(ack) == "AA" and field(ack, "MSA", 2) == "1817457"
    (row,) = it.rows()
    assert row["type"] == "ADT^A04"


def test_oversize_frame_is_rejected_and_the_next_one_passes(intake):
    it = intake(intake={"max_message": "4096"})
    steady = Steady(it)
    big = msg("BIG-1", segments=["NTE|1||" + "x" * 5000])
    assert len(big) > 4096
    just = msg("JUST-1", segments=[])
    just = just + b"NTE|1||" + b"y" * (4096 - len(just) - 8) + b"\r"
    assert len(just) <= 4096
    with it.client() as c:
        ack = c.call(big)
        assert ack_code(ack) == "AR" and field(ack, "MSA", 2) == "BIG-1"
        assert ack_code(c.call(just)) == "AA"
        assert ack_code(c.call(msg("AFTER-BIG"))) == "AA"
    steady.finish()
    assert it.metric("netwall_intake_rejected_total", reason="too_big") == 1
    ids = {r["control_id"] for r in it.rows()}
    assert "BIG-1" not in ids and {"JUST-1", "AFTER-BIG"} <= ids


def test_connection_stopping_mid_frame_is_closed(intake):
    it = intake(intake={"frame_timeout": "0.5", "idle_timeout": "30"})
    steady = Steady(it)
    with it.client() as c:
        c.send_raw(b"\x0b" + msg("HALF")[:40])
        t0 = time.monotonic()
        assert c.closed_within(5), "a stalled partial frame must be closed"
        assert time.monotonic() - t0 < 4
    it.proc.wait_event("closed", reason="frame_timeout")
    steady.finish()
    assert all(r["control_id"] != "HALF" for r in it.rows())


def test_idle_connection_is_closed(intake):
    it = intake(intake={"idle_timeout": "0.5"})
    with it.client() as c:
        assert ack_code(c.call(msg("IDLE-1"))) == "AA"
        assert c.closed_within(5)
    it.proc.wait_event("closed", reason="idle_timeout")


def test_junk_between_frames_and_binary_garbage(intake):
    it = intake()
    steady = Steady(it)
    with it.client() as c:
        c.send_raw(b"\x00\x00garbage\r\n\xff" + frame(msg("J-1")) + b"\x00\x00" +
                   frame(msg("J-2")))
        assert field(c.read_frame(), "MSA", 2) == "J-1"
        assert field(c.read_frame(), "MSA", 2) == "J-2"
        c.send_raw(os.urandom(200_000).replace(b"\x0b", b"\x00"))
        assert ack_code(c.call(msg("J-3"))) == "AA"
    steady.finish()
    assert it.metric("netwall_intake_junk_bytes_total") >= 200_000


def test_an_ack_sent_as_input_is_not_acknowledged(intake):
    it = intake()
    ack_in = load_sample("ack_aa_v231_pythonhl7_docs.hl7")
    with it.client() as c:
        c.send(ack_in)
        assert c.closed_within(0.5) is False      # no answer, connection stays
        assert ack_code(c.call(msg("POST-ACK"))) == "AA"
    assert [r["control_id"] for r in it.rows()] == ["POST-ACK"]
    it.proc.wait_event("ignored", reason="ack_input")


def test_allowlist_refuses_other_sources(intake):
    it = intake(intake={"allow": "127.0.0.2/32"})
    s = socket.create_connection(("127.0.0.1", it.port), timeout=5)
    s.settimeout(5)
    assert s.recv(10) == b""
    s.close()
    src = socket.socket()
    src.bind(("127.0.0.2", 0))
    src.connect(("127.0.0.1", it.port))
    src.sendall(frame(msg("ALLOWED")))
    src.settimeout(5)
    data = src.recv(65536)
    src.close()
    assert b"MSA|AA|ALLOWED" in data
    it.proc.wait_event("refused", reason="not_allowed")


def test_max_inflight_reads_ahead_boundedly(intake):
    """A sender that never reads its ACKs: the intake stops reading once its answers pile
    up, instead of buffering without end."""
    it = intake(intake={"max_inflight": "8"})
    s = socket.create_connection(("127.0.0.1", it.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    sent = 0
    data = frame(msg("FLOOD", segments=["NTE|1||" + "z" * 2000]))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            sent += s.send(data)
        except BlockingIOError:
            time.sleep(0.05)
    s.close()
    # the flood was cut off by backpressure long before 5 s of loopback bandwidth
    assert sent < 200 * 1024 * 1024
    with it.client() as c:
        assert ack_code(c.call(msg("AFTER-FLOOD"))) == "AA"


def test_half_close_still_gets_every_ack(intake):
    """A sender that sends its messages and shuts its side down still reads every ACK."""
    it = intake()
    for n in (1, 5, 50):
        s = socket.create_connection(("127.0.0.1", it.port), timeout=10)
        s.sendall(b"".join(frame(msg(f"HC-{n}-{i}")) for i in range(n)))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        assert data.count(b"MSA|AA|") == n, f"{n} messages, {data.count(b'MSA|AA|')} ACKs"


def test_connections_reset_while_their_messages_wait_for_the_store(intake):
    """The store is locked by another process; 20 senders give up (reset) before their
    messages are stored. The intake stores them later and stays healthy."""
    import sqlite3
    it = intake()
    with it.client() as c:
        assert ack_code(c.call(msg("WARM"))) == "AA"
    db = sqlite3.connect(it.store, timeout=10, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    socks = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", it.port), timeout=5)
        s.sendall(frame(msg(f"RST-{i}")))
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.3)
    db.execute("ROLLBACK")
    db.close()
    with it.client() as c:
        assert ack_code(c.call(msg("AFTER-RST"))) == "AA"
    assert it.proc.alive()


def test_nul_or_null_in_the_dedupe_key_is_rejected(intake):
    it = intake()
    with it.client() as c:
        a = c.call(msg("NUL\x00A", pid="111"))
        b = c.call(msg("NUL\x00B", pid="222"))
        n = c.call(msg('""'))
        app = c.call(msg("APP-NUL", app="PH\x00ARM"))
    assert ack_code(a) == "AR" and ack_code(b) == "AR"
    assert ack_code(n) == "AR" and ack_code(app) == "AR"
    assert it.rows() == []


def test_batch_with_too_many_messages_is_rejected_whole(intake):
    it = intake(intake={"max_message": "1048576"})
    body = (b"BHS|^~\\&\r" +
            b"".join(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|B%d|P|2.5\r" % i for i in range(5000)) +
            b"BTS|5000\r")
    assert len(body) < 1048576
    with it.client() as c:
        resp = c.call(body, timeout=30)
        assert resp is not None and b"MSA|AR|" in resp and resp.count(b"MSA|") == 1
        assert ack_code(c.call(msg("AFTER-BATCH"))) == "AA"
    assert [r["control_id"] for r in it.rows()] == ["AFTER-BATCH"]


def test_frame_timeout_is_not_extended_by_trickling_bytes(intake):
    it = intake(intake={"frame_timeout": "1", "idle_timeout": "30"})
    with it.client() as c:
        c.send_raw(b"\x0b" + msg("TRICKLE")[:20])
        t0 = time.monotonic()
        closed = False
        for i in range(12):
            try:
                c.send_raw(b"x")
            except OSError:
                closed = True
                break
            if c.closed_within(0.5):
                closed = True
                break
        assert closed and time.monotonic() - t0 < 4


def test_partial_proxy_header_is_closed_by_the_frame_timeout(intake):
    it = intake(intake={"proxy": "on", "frame_timeout": "0.5", "idle_timeout": "30"})
    with it.client() as c:
        c.send_raw(b"PROXY TCP4 10.1")
        t0 = time.monotonic()
        assert c.closed_within(5)
        assert time.monotonic() - t0 < 3


def test_proxy_header_only_from_trusted_proxies(intake):
    """With proxy = on, only connections from proxy_from may claim another source."""
    it = intake(intake={"proxy": "on", "proxy_from": "127.0.0.2", "allow": "10.0.0.0/8"})
    with it.client() as c:     # from 127.0.0.1: not a trusted proxy, closed at once
        assert c.closed_within(5)
    it.proc.wait_event("refused", reason="untrusted_proxy")
    src = socket.socket()
    src.bind(("127.0.0.2", 0))
    src.connect(("127.0.0.1", it.port))
    src.sendall(b"PROXY TCP4 10.1.2.3 127.0.0.1 5555 2575\r\n" + frame(msg("TRUSTED")))
    src.settimeout(5)
    assert b"MSA|AA|TRUSTED" in src.recv(65536)
    src.close()
    assert {r["control_id"]: r["peer"] for r in it.rows()} == {"TRUSTED": "10.1.2.3:5555"}


def test_log_lines_cannot_be_forged_by_control_ids(intake):
    it = intake()
    with it.client() as c:
        evil = 'X event=forged level=error "'
        ack = c.call(msg(evil))
        assert ack_code(ack) == "AA"
        assert c.call(msg(evil)) == ack       # duplicate: logged
    time.sleep(0.2)
    assert not it.proc.events("forged")
    for line in it.proc.text().splitlines():
        assert "event=forged" not in line

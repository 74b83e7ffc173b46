"""Hostile and careless senders against the intake: control IDs reused for other messages,
peer values that try to forge log fields, and the store's files on disk."""

import os
import sys
import stat

import pytest

from conftest import parse_log_line, wait_until
from hl7util import ack_code, emar, field, intake, msg  # noqa: F401
from test_intake_pg import pg_url


def drug(name, code):
    return [f"ORC|NW|ORD-X|||||^^^20261122",
            f"RXE|^BID^HL70335|{code}^{name}^NDC|25||mg"]


# Two different orders that carry the same MSH-3, MSH-4 and MSH-10: a sender whose counter
# was reset, or a public sample set.
ORDER_A = msg("RX-1", pid="111111", segments=drug("Metoprolol 25 mg tablet", "00093-7146"))
ORDER_B = msg("RX-1", pid="222222", segments=drug("Warfarin 5 mg tablet", "00056-0172"))


def reused_rows(it):
    return sorted((r for r in it.rows() if r["control_id"] == "RX-1"), key=lambda r: r["id"])


def check_reused_is_stored(it, api):
    with it.client() as c:
        ack_a = c.call(ORDER_A)
        ack_b = c.call(ORDER_B)
        assert ack_code(ack_a) == "AA" and ack_code(ack_b) == "AA"
        assert ack_b != ack_a, "B is a message of its own, not answered as A's duplicate"
        # retransmissions of either are duplicates of their own row, answered byte for byte
        assert c.call(ORDER_A) == ack_a
        assert c.call(ORDER_B) == ack_b
    rows = reused_rows(it)
    assert len(rows) == 2, rows
    assert [r["reused_control_id"] for r in rows] == [False, True]
    assert [r["id"] for r in it.messages("list", "--limit", "0", "--reused")] == [rows[1]["id"]]
    # both orders reach the EMAR, under different idempotency keys
    api.wait_deliveries(2)
    got = [d for d in api.deliveries() if d["control_id"] == "RX-1"]
    assert len(got) == 2
    assert len({d["idempotency_key"] for d in got}) == 2
    assert it.metric("netwall_intake_reused_control_id_total") == 1
    assert it.metric("netwall_intake_duplicates_total") == 2
    ev = it.proc.wait_event("reused_control_id")
    assert ev[0]["control_id"] == "RX-1" and ev[0]["sender"] == "PHARM/ST-MARY"
    assert "111111" not in it.proc.text() and "222222" not in it.proc.text()
    assert it.counts()["reused_control_id"] == 1
    assert b'"reused_control_id":1' in it.admin_status()
    from conftest import http_get
    status, page = http_get(it.admin.port, "/")
    assert status == 200 and 'id="reused_control_id"><b>1</b>' in page
    assert '<td class="reason">reused_control_id</td>' in page and "111111" not in page


def test_reused_control_id_is_stored_and_delivered_sqlite(intake, emar):
    api = emar()
    check_reused_is_stored(intake(emar=api), api)


def test_reused_control_id_is_stored_and_delivered_postgresql(intake, emar, postgres):
    api = emar()
    check_reused_is_stored(intake(store=pg_url(postgres()), emar=api), api)


def test_reused_control_id_reject_answers_ar_205(intake, emar):
    api = emar()
    it = intake(emar=api, intake={"on_reused_control_id": "reject"})
    with it.client() as c:
        assert ack_code(c.call(ORDER_A)) == "AA"
        nak = c.call(ORDER_B)
        assert ack_code(nak) == "AR" and field(nak, "MSA", 2) == "RX-1"
        assert field(nak, "ERR", 3).split("^")[0] == "205"
        assert c.call(ORDER_B) == nak, "a retransmission gets the same AR"
    rows = reused_rows(it)
    assert [(r["state"], r["reused_control_id"]) for r in rows] == [("received", False),
                                                                    ("rejected", True)] \
        or [(r["state"], r["reused_control_id"]) for r in rows] == [("delivered", False),
                                                                    ("rejected", True)]
    api.wait_deliveries(1)
    assert [d["control_id"] for d in api.deliveries()] == ["RX-1"]
    assert it.metric("netwall_intake_reused_control_id_total") == 1


def test_two_intakes_race_on_one_reused_key_postgresql(intake, postgres):
    """Two intakes on one PostgreSQL get the same key at once, with different digests and
    with the same digest: every different message is stored once, exactly one of each key's
    rows is unflagged, and each retransmission is a duplicate."""
    import threading
    url = pg_url(postgres())
    a = intake(store=url)
    b = intake(store=url)
    n = 60
    acks = {}

    def send(it, tag):
        with it.client() as c:
            for i in range(n):
                # same key on both intakes; the pid differs by intake for even i
                pid = f"{tag}{i}" if i % 2 == 0 else f"same{i}"
                acks[(tag, i)] = c.call(msg(f"RACE-{i}", pid=pid))
    ts = [threading.Thread(target=send, args=(x, t)) for x, t in ((a, "a"), (b, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert all(ack_code(v) == "AA" for v in acks.values()) and len(acks) == 2 * n
    rows = a.rows()
    for i in range(n):
        mine = [r for r in rows if r["control_id"] == f"RACE-{i}"]
        want = 2 if i % 2 == 0 else 1
        assert len(mine) == want, (i, mine)
        assert sum(not r["reused_control_id"] for r in mine) == 1, (i, mine)
        if i % 2:
            assert acks[("a", i)] == acks[("b", i)], "the loser gets the winner's ACK"
    total = (a.metric("netwall_intake_reused_control_id_total")
             + b.metric("netwall_intake_reused_control_id_total"))
    assert total == n // 2


# ---------------------------------------------------------------- files on disk

def test_sqlite_files_are_private_whatever_the_umask(intake):
    old = os.umask(0o022)
    try:
        it = intake()
        with it.client() as c:
            assert ack_code(c.call(msg("PERM-1"))) == "AA"
    finally:
        os.umask(old)
    for suffix in ("", "-wal", "-shm"):
        path = it.store + suffix
        assert os.path.exists(path), path
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600, f"{path}: {oct(mode)}"


# ---------------------------------------------------------------- log lines

NASTY = 'A B"x=1'
NASTY_LOGGED = "A%20B%22x%3D1"


def test_nasty_control_id_stays_one_value_in_every_log_line(intake, emar):
    api = emar()
    api.control("500", count=1)      # one retry, then dead-lettered by a 400
    it = intake(emar=api, deliver={"max_attempts": "5"})
    m = msg(NASTY)
    with it.client() as c:
        ack = c.call(m)
        assert ack_code(ack) == "AA" and field(ack, "MSA", 2) == NASTY
        assert c.call(m) == ack                   # a duplicate line too
    it.proc.wait_event("delivery_retry")
    api.control("400")
    it.proc.wait_event("delivery_dead")
    lines = [ln for ln in it.proc.text().splitlines() if "control_id=" in ln]
    assert len(lines) >= 3, lines
    for ln in lines:
        kv = parse_log_line(ln)
        assert kv["control_id"] == NASTY_LOGGED, ln
        assert NASTY not in ln, ln


# ---------------------------------------------------------------- the memory budget

BUDGET = 8 << 20
PARTIAL = 160 << 10       # bytes of one frame sent, its end held back
NCONN = 64                # 64 x 160 KiB = 10 MiB: just over the budget


def big_message(ctrl, size):
    m = msg(ctrl)
    return m + b"NTE|1||" + b"x" * (size - len(m) - 8) + b"\r"


def test_partial_frames_over_the_budget_wait_instead_of_growing(intake):
    from conftest import SANITIZED, mem_kib
    from hl7util import MllpClient, VT, FS, CR
    it = intake(intake={"memory_budget": str(BUDGET), "max_per_source": "0",
                        "frame_timeout": "120"})
    with it.client() as c:            # warm up: the store, the first allocations
        assert ack_code(c.call(msg("WARM-1"))) == "AA"
    base = mem_kib(it.proc.pid)["Rss"]
    bodies = [big_message(f"BIG-{i}", PARTIAL + 4096) for i in range(NCONN)]
    conns = []
    for i in range(NCONN):
        c = MllpClient(it.port)
        c.send_raw(VT + bodies[i][:PARTIAL])
        conns.append(c)
    it.admin.wait_metric("netwall_intake_memory_waits_total", lambda v: v >= 1, timeout=20)
    # whatever it has read by now is all it reads: the budget holds, but for the one
    # connection (the oldest partial frame) read past it by at most max_message + 64 KiB
    held = int(it.metric("netwall_intake_memory_held_bytes"))
    assert 0 < held <= BUDGET + (1 << 20) + (64 << 10), held
    assert it.metric("netwall_intake_memory_budget_bytes") == BUDGET
    if not SANITIZED:
        grown = mem_kib(it.proc.pid)["Rss"] - base
        print(f"RSS grown by {grown} KiB for {NCONN} x {PARTIAL >> 10} KiB partial frames, "
              f"budget {BUDGET >> 10} KiB, held {held >> 10} KiB")
        assert grown <= (BUDGET >> 10) + 4096, f"RSS grew {grown} KiB"
    # half the senders go: the others are read again, finish their frames and are answered
    for c in conns[:NCONN // 2]:
        c.close()
    for i, c in enumerate(conns[NCONN // 2:], NCONN // 2):
        c.send_raw(bodies[i][PARTIAL:] + FS + CR)
    for i, c in enumerate(conns[NCONN // 2:], NCONN // 2):
        ack = c.read_frame(timeout=30)
        assert ack is not None and ack_code(ack) == "AA" and field(ack, "MSA", 2) == f"BIG-{i}"
        c.close()
    it.admin.wait_metric("netwall_intake_memory_held_bytes", lambda v: v < BUDGET // 4,
                         timeout=20)
    assert it.proc.alive()


def test_budget_is_checked_against_max_message(tmp_path):
    from conftest import netwall
    cfg = tmp_path / "i.ini"
    cfg.write_text("[intake]\nlisten = 127.0.0.1:1\nstore = x.db\nmax_message = 4194304\n"
                   "memory_budget = 8388608\n")
    r = netwall("check", str(cfg))
    assert r.returncode != 0 and "memory_budget" in (r.stdout + r.stderr)
    cfg.write_text("[intake]\nlisten = 127.0.0.1:1\nstore = x.db\nmemory_budget = 64M\n")
    r = netwall("check", str(cfg))
    assert r.returncode != 0 and "memory_budget" in (r.stdout + r.stderr)
    cfg.write_text("[intake]\nlisten = 127.0.0.1:1\nstore = x.db\nmemory_budget = 67108864\n"
                   "source_prefix_v4 = 24\nsource_prefix_v6 = 56\non_reused_control_id = reject\n"
                   "write_timeout = 2\n")
    r = netwall("check", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    for bad in ("source_prefix_v6 = 129", "source_prefix_v4 = 33", "on_reused_control_id = drop",
                "write_timeout = 0.09", "write_timeout = 3601"):
        cfg.write_text(f"[intake]\nlisten = 127.0.0.1:1\nstore = x.db\n{bad}\n")
        r = netwall("check", str(cfg))
        assert r.returncode != 0 and bad.split()[0] in (r.stdout + r.stderr), bad


# ---------------------------------------------------------------- one source, many addresses

def test_max_per_source_counts_a_prefix_not_an_address(intake):
    """Three loopback addresses in one /24: with source_prefix_v4 = 24 they are one source,
    and the third connection is over max_per_source = 2. (The IPv6 /64 default is tested
    below in a network namespace, and the matching in tests/unit/test_intake_config.c.)"""
    from hl7util import MllpClient
    it = intake(intake={"max_per_source": "2", "source_prefix_v4": "24"})

    def client(src):
        c = MllpClient.__new__(MllpClient)
        import socket
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.settimeout(10)
        c.sock.bind((src, 0))
        c.sock.connect(("127.0.0.1", it.port))
        c.buf = b""
        return c
    a, b = client("127.0.0.1"), client("127.0.0.2")
    assert ack_code(a.call(msg("SRC-1"))) == "AA"
    assert ack_code(b.call(msg("SRC-2"))) == "AA"
    c = client("127.0.0.3")
    assert c.closed_within(5), "a third address of the same /24 is over max_per_source"
    it.proc.wait_event("refused", reason="max_per_source")
    d = client("127.0.1.1")        # another /24
    assert ack_code(d.call(msg("SRC-3"))) == "AA"
    for x in (a, b, c, d):
        x.close()


V6_CLIENT = r"""
import json, socket, sys
port = int(sys.argv[1])
msg = sys.argv[2].encode().replace(b"\n", b"\r")
held, out = [], []
for src in sys.argv[3:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("fd00:1::1", port))
    s.sendall(b"\x0b" + msg + b"\x1c\r")
    try:
        got = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        got = b""
    out.append([src, b"MSA|AA" in got])
    held.append(s)            # kept open: each counts against max_per_source
print(json.dumps(out))
"""


def test_max_per_source_counts_an_ipv6_slash_64(procs, tmp_path):
    """In a network namespace of its own, three addresses of one /64 and one of another on
    loopback: with max_per_source = 2 the third address of the /64 is refused, the other
    /64 is not."""
    import json
    import subprocess
    from conftest import NETWALL_BIN, ini_text
    ns = f"nwv6{os.getpid() % 100000}"
    r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}")
    try:
        def in_ns(*argv):
            r = subprocess.run(["ip", "netns", "exec", ns, *map(str, argv)],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            return r.stdout
        in_ns("ip", "link", "set", "lo", "up")
        for a in ("fd00:1::1", "fd00:1::a", "fd00:1::b", "fd00:1::c", "fd00:2::a"):
            in_ns("ip", "-6", "addr", "add", f"{a}/64", "dev", "lo", "nodad")
        port = 12575
        cfg = tmp_path / "v6.ini"
        cfg.write_text(ini_text([("intake", [
            ("listen", f"[fd00:1::1]:{port}"), ("store", str(tmp_path / "v6.db")),
            ("admin", "off"), ("log_level", "info"), ("allow_root", "yes"),
            ("max_per_source", "2")])]))
        p = procs.start("intake-v6", ["ip", "netns", "exec", ns, NETWALL_BIN, "intake",
                                      "-c", cfg], check_exit=True)
        p.wait_event("listening", timeout=15)
        got = json.loads(in_ns(sys.executable, "-c", V6_CLIENT, port,
                               msg("V6-1").decode().replace("\r", "\n"),
                               "fd00:1::a", "fd00:1::b", "fd00:1::c", "fd00:2::a"))
        assert got == [["fd00:1::a", True], ["fd00:1::b", True], ["fd00:1::c", False],
                       ["fd00:2::a", True]], got
        p.wait_event("refused", reason="max_per_source")
        p.stop()
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# ---------------------------------------------------------------- budget progress

def send_all_at_once(conns, bodies):
    """Each connection sends its bytes from a thread of its own, all at once."""
    import threading
    errs = []

    def send(c, b):
        try:
            c.sock.sendall(b)
        except OSError as e:
            errs.append(e)
    ts = [threading.Thread(target=send, args=(c, b)) for c, b in zip(conns, bodies)]
    for t in ts:
        t.start()
    return ts, errs


@pytest.mark.parametrize("budget_mib,nconn", [(4, 8), (16, 40)])
def test_budget_full_of_partial_frames_still_makes_progress(intake, budget_mib, nconn):
    """Every connection sends a 900,000-byte message (under max_message) at once, more of them
    than the budget holds: each holds a partial frame that no next read fits. One connection
    at a time (the oldest partial frame) is read past the budget until its frame is whole, so
    they are all answered, none by frame_timeout (before: all waited for frame_timeout, most
    were reset unanswered, and their senders would retry into the same wall)."""
    from hl7util import MllpClient, VT, FS, CR
    it = intake(intake={"memory_budget": str(budget_mib << 20), "max_message": str(1 << 20),
                        "max_per_source": "0", "frame_timeout": "120"})
    conns = [MllpClient(it.port, timeout=60) for _ in range(nconn)]
    bodies = [VT + big_message(f"BIG-{i}", 900000) + FS + CR for i in range(nconn)]
    ts, errs = send_all_at_once(conns, bodies)
    for i, c in enumerate(conns):
        ack = c.read_frame(timeout=60)
        assert ack is not None and ack_code(ack) == "AA" and field(ack, "MSA", 2) == f"BIG-{i}"
    for t in ts:
        t.join(10)
    assert not errs, errs
    assert it.metric("netwall_intake_memory_waits_total") >= 1, "the budget was reached"
    assert not it.proc.events("closed", reason="frame_timeout")
    for c in conns:
        c.close()
    # the framers' buffers went with their frames: what is held drains to nothing
    it.admin.wait_metric("netwall_intake_memory_held_bytes", lambda v: v == 0, timeout=30)
    assert len(it.rows()) == nconn


# ---------------------------------------------------------------- peers that never read

def test_peers_that_never_read_their_acks_are_closed_after_write_timeout(intake):
    """Six senders pipeline small messages and never read an ACK (a tiny receive buffer):
    their unread ACKs fill the budget and nobody else is read. A connection whose ACKs are
    not taken for write_timeout is closed as if it had closed (what it sent is stored), so a
    sender that reads is answered (before: everyone waited for idle_timeout, 600 s)."""
    import socket
    import threading
    from hl7util import frame
    it = intake(intake={"memory_budget": str(4 << 20), "max_message": str(1 << 20),
                        "max_per_source": "0", "write_timeout": "2",
                        "frame_timeout": "120"})   # the hogs' partial frames stay
    chunk = b"".join(frame(msg(f"H-{j}")) for j in range(200))
    socks = []

    def hog():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", it.port))
        socks.append(s)
        s.settimeout(3)
        try:
            while True:          # until the intake stops reading it
                s.sendall(chunk)
        except (socket.timeout, OSError):
            pass
    ts = [threading.Thread(target=hog) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    it.admin.wait_metric("netwall_intake_memory_waits_total", lambda v: v >= 1, timeout=30)
    try:
        with it.client() as c:
            # 64 KB: more than what the hogs leave of the budget
            ack = c.call(big_message("LEGIT-1", 64000), timeout=60)
            assert ack is not None and ack_code(ack) == "AA"
        ev = it.proc.wait_event("closed", reason="write_timeout", timeout=30)
        assert ev
    finally:
        for s in socks:
            s.close()
    it.admin.wait_metric("netwall_intake_memory_held_bytes", lambda v: v == 0, timeout=30)


# ---------------------------------------------------------------- enhanced mode duplicates

def test_retransmission_of_a_refused_message_is_answered_under_er(intake):
    """on_reused_control_id = reject and MSH-15 = ER (answer errors only): the message refused
    with CR 205 is answered the same CR when sent again (before: silence, which under ER
    means accepted); an accepted one stays unanswered when sent again."""
    it = intake(intake={"on_reused_control_id": "reject"})
    er = "|||ER|NE"
    d1 = msg("ER-1", pid="111", extra_msh=er)
    d2 = msg("ER-1", pid="222", extra_msh=er)
    with it.client() as c:
        c.send(d1)                    # accepted: no answer under ER
        nak = c.call(d2)
        assert ack_code(nak) == "CR" and field(nak, "ERR", 3).split("^")[0] == "205"
        again = c.call(d2, timeout=30)
        assert again == nak, "the retransmission gets the stored CR, byte for byte"
        c.send(d1)                    # a duplicate of an accepted message: still silent
        ok = c.call(msg("ER-2", extra_msh="|||AL|NE"))
        assert ack_code(ok) == "CA" and field(ok, "MSA", 2) == "ER-2"
    assert it.metric("netwall_intake_duplicates_total") == 2


# ---------------------------------------------------------------- stalled partial frames

def test_stalled_partial_frames_make_room_for_a_sender(intake):
    """Six senders each start a frame of 900,000 bytes and stop (the budget is 4 MiB and
    frame_timeout 120 s): they fill the budget and send nothing more. Frames whose senders
    stopped, found so on two looks a second apart while reading is stopped, are closed
    (nothing of them was acknowledged), so an ordinary sender is answered at once instead of
    waiting for frame_timeout (before: no ACK within 60 s)."""
    import socket
    from hl7util import VT, frame
    it = intake(intake={"memory_budget": str(4 << 20), "max_message": str(1 << 20),
                        "max_per_source": "0", "frame_timeout": "120"})
    held = []
    for i in range(6):
        s = socket.create_connection(("127.0.0.1", it.port))
        s.setblocking(False)
        held.append([s, memoryview(VT + big_message(f"STALL-{i}", 900000)[:-100])])
    # push what the intake takes, until it holds its budget and takes no more
    def pushed():
        for e in held:
            try:
                e[1] = e[1][e[0].send(e[1]):]
            except BlockingIOError:
                pass
        return it.metric("netwall_intake_memory_waits_total") >= 1
    wait_until(pushed, 30, "the stalled senders to fill the budget")
    try:
        s = socket.create_connection(("127.0.0.1", it.port), timeout=60)
        s.sendall(frame(msg("ORDINARY-1")))
        s.settimeout(60)
        got = b""
        while b"\x1c\r" not in got:
            chunk = s.recv(65536)
            assert chunk, "closed without an answer"
            got += chunk
        assert ack_code(got) == "AA"
        assert it.proc.events("closed", reason="stalled_at_budget")
        assert not it.proc.events("closed", reason="frame_timeout")
        s.close()
    finally:
        for e in held:
            e[0].close()

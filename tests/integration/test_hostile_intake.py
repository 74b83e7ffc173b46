"""Hostile and careless senders against the intake: control IDs reused for other messages,
peer values that try to forge log fields, and the store's files on disk."""

import os
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

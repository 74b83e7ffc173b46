"""A sender's message with one enormous field: the JSON body for the EMAR and `netwall
messages show` walk it once (linear), so it neither holds the delivery worker nor stalls the
messages behind it. The field is over HL7JSON_MAX_PARTS (4096) parts, so the EMAR gets it
whole, as {"raw": ...}."""

import os
import resource
import subprocess

from conftest import NETWALL_BIN, wait_until
from hl7util import ack_code, emar, intake, msg  # noqa: F401

# 500,000 components of one character: a 1 MiB frame with its header (max_message is 1 MiB)
WIDE_N = 500000


def wide_msg(ctrl, unit="x^", n=WIDE_N, seg="ZRX"):
    """An ordinary RDE^O11 with a Z segment whose field 1 is unit n times and "x"."""
    body = unit * n + "x"
    return msg(ctrl, segments=["ORC|NW|ORD-1", f"{seg}|{body}|after"]), body


def delivered(api):
    return {d["control_id"]: d for d in api.deliveries()}


def test_wide_message_does_not_stall_the_next(intake, emar):
    """The 1 MiB message of 500,000 components, then an ordinary one on the same connection:
    both are delivered, the wide one with a body linear in its size. Before the walk was
    linear, building that body took the single delivery thread about half an hour, and the
    ordinary message behind it waited as long."""
    api = emar()
    it = intake(emar=api)
    wide, _ = wide_msg("WIDE-1")
    assert len(wide) <= 1 << 20
    with it.client() as c:
        assert ack_code(c.call(wide, timeout=30)) == "AA"
        assert ack_code(c.call(msg("AFTER-1"))) == "AA"
    api.wait_deliveries(2, timeout=120)
    got = delivered(api)
    assert set(got) == {"WIDE-1", "AFTER-1"}
    # the body holds the message twice ("raw" and the field whole), plus a bounded rest
    assert got["WIDE-1"]["size"] < 2 * len(wide) + 8192
    assert got["AFTER-1"]["size"] < 8192
    it.admin.wait_metric("netwall_intake_delivered_total", lambda v: v == 2, 30)


def test_wide_repetitions_and_subcomponents_delivered(intake, emar):
    """200,000 repetitions in PID-3 and in a Z segment, 500,000 subcomponents: each is
    delivered, and so is the ordinary message sent after them."""
    api = emar()
    it = intake(emar=api)
    reps, _ = wide_msg("REPS-1", unit="x~", n=200000)
    subs, _ = wide_msg("SUBS-1", unit="x&")
    pid3 = msg("PID3-1", pid="I~" * 200000 + "I")
    with it.client() as c:
        for m in (reps, subs, pid3):
            assert ack_code(c.call(m, timeout=30)) == "AA"
        assert ack_code(c.call(msg("AFTER-2"))) == "AA"
    api.wait_deliveries(4, timeout=120)
    got = delivered(api)
    assert set(got) == {"REPS-1", "SUBS-1", "PID3-1", "AFTER-2"}
    for ctrl, m in (("REPS-1", reps), ("SUBS-1", subs), ("PID3-1", pid3)):
        assert got[ctrl]["size"] < 2 * len(m) + 8192 + 4096 * 64, ctrl


def show_cpu(it, row_id):
    """`netwall messages show ID` (text): its output and the CPU seconds it took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([NETWALL_BIN, "messages", "--store", it.store, "show", str(row_id)],
                       capture_output=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert r.returncode == 0, r.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r.stdout.decode(), cpu


def row_id(it, ctrl):
    (r,) = [r for r in it.rows() if r["control_id"] == ctrl]
    return r["id"]


def test_show_wide_message(intake):
    """`messages show` on the 1 MiB message lists every component, once, numbered."""
    it = intake()
    wide, _ = wide_msg("SHOW-1")
    with it.client() as c:
        assert ack_code(c.call(wide, timeout=30)) == "AA"
    out, _ = show_cpu(it, row_id(it, "SHOW-1"))
    lines = [ln for ln in out.splitlines() if ln.startswith("  ZRX-1")]
    assert len(lines) == WIDE_N + 1
    assert lines[0] == "  ZRX-1.1 = x"
    assert lines[-1] == f"  ZRX-1.{WIDE_N + 1} = x"
    assert "  ZRX-2 = after" in out
    assert "  PID-5.2 = JANE" in out


def test_show_is_linear(intake):
    """Four times the components take well under the 16 times a rescan from the start of
    the field would (CPU time of the command, the least of three runs)."""
    it = intake()
    n = 50000
    cases = {}
    for ctrl, k in (("LIN-1", n), ("LIN-4", 4 * n)):
        m, _ = wide_msg(ctrl, unit="x^x~", n=k // 2)
        with it.client() as c:
            assert ack_code(c.call(m, timeout=30)) == "AA"
        cases[ctrl] = row_id(it, ctrl)
    t = {ctrl: min(show_cpu(it, rid)[1] for _ in range(3)) for ctrl, rid in cases.items()}
    # below a few ticks of ru_utime (10 ms) the ratio says nothing: count at least 50 ms
    # (the quadratic walk took 2.2 s and 35 s here, so the check keeps its power)
    t1 = max(t["LIN-1"], 0.05)
    assert t["LIN-4"] < 8 * t1, f"4x the separators took {t['LIN-4'] / t1:.1f}x the time: {t}"
    assert os.path.exists(it.store)


def test_request_bodies_in_flight_are_bounded(intake, emar):
    """Eight 600 KB messages to an EMAR that never answers, concurrency 8: the bodies in
    flight stay within a quarter of memory_budget (4 MiB here: 1 MiB), so one transfer
    runs while the others wait in the queue, instead of eight bodies of a few MiB each."""
    api = emar()
    api.control("hang")
    it = intake(emar=api, intake={"memory_budget": "4194304", "log_level": "debug"},
                deliver={"concurrency": "8", "timeout": "60"})
    with it.client() as c:
        for i in range(8):
            wide, _ = wide_msg(f"BIG-{i}", n=300000)
            assert ack_code(c.call(wide, timeout=30)) == "AA"
    # the worker noted the bodies at their budget: from then on it starts and claims nothing
    # until a transfer ends (the EMAR answers none for 60 s)
    it.proc.wait_event("delivery_waiting", reason="body_budget", timeout=30)
    it.admin.wait_metric("netwall_intake_deliveries_in_flight", lambda v: v >= 1, 10)
    assert it.admin.metric("netwall_intake_deliveries_in_flight") == 1
    assert 0 < it.admin.metric("netwall_intake_delivery_body_bytes") <= 2 * 600000 + 8192
    assert api.stats()["received"] <= 1

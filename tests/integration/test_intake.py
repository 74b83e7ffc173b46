"""netwall intake: every sample through a real independent client (mllp_send), ACKs read
field by field, routing, enhanced mode, batches, and netwall messages on the result."""

import subprocess
import time

import pytest

from conftest import NETWALL_BIN
from hl7util import (DATA, ack_code, emar, field, frame, intake, load_sample, msg,  # noqa: F401
                     segments)

SAMPLES = sorted(p.name for p in DATA.glob("*.hl7"))
PHARMACY_AND_ADT = ("RDE", "RDS", "RAS", "RGV", "OMP", "ADT")


def expected(m: bytes):
    """What the intake must answer, from a second reading of the header: None for no
    answer (an ACK), else the MSA-1 code."""
    if field(m, "MSH", 9).split("^")[0] == "ACK":
        return None
    # a missing MSH-11 is taken as P, a missing MSH-12 as an unknown version
    if field(m, "MSH", 10) == "" or \
            field(m, "MSH", 11).split("^")[0] not in ("", "P", "T", "D"):
        return "AR" if not (field(m, "MSH", 15) or field(m, "MSH", 16)) else "CR"
    if field(m, "MSH", 12) and not field(m, "MSH", 12).startswith("2."):
        code = "AR"
    else:
        code = "AA"
    accept, app = field(m, "MSH", 15), field(m, "MSH", 16)
    if not accept and not app:
        return code
    # enhanced mode: accept acknowledgements, sent as MSH-15 asks (empty means always)
    if accept == "NE" or (accept == "ER" and code == "AA") or (accept == "SU" and code != "AA"):
        return None
    return "C" + code[1]


def check_ack_header(ack: bytes, m: bytes, code):
    """The ACK's header as the standard wants it."""
    assert field(ack, "MSH", 1) == field(m, "MSH", 1)
    assert field(ack, "MSH", 2) == field(m, "MSH", 2)
    assert field(ack, "MSH", 3) == field(m, "MSH", 5)
    assert field(ack, "MSH", 4) == field(m, "MSH", 6)
    assert field(ack, "MSH", 5) == field(m, "MSH", 3)
    assert field(ack, "MSH", 6) == field(m, "MSH", 4)
    comp = field(m, "MSH", 2)[0]
    trig = (field(m, "MSH", 9).split(comp) + [""])[1]
    assert field(ack, "MSH", 9) == (f"ACK{comp}{trig}{comp}ACK" if trig else "ACK")
    assert field(ack, "MSH", 10) not in ("", field(m, "MSH", 10))
    assert field(ack, "MSH", 11) == field(m, "MSH", 11)
    assert field(ack, "MSH", 12) == field(m, "MSH", 12)
    assert field(ack, "MSA", 1) == code
    assert field(ack, "MSA", 2) == field(m, "MSH", 10)
    if code[1] != "A":
        assert field(ack, "ERR", 1) is not None, "an error ACK carries an ERR segment"


def plain_messages():
    for name in SAMPLES:
        if name.startswith("batch_"):
            continue
        yield name, load_sample(name)


def test_every_sample_gets_the_right_ack(intake):
    """Public samples reuse (MSH-3, MSH-4, MSH-10) for different messages: each different
    message is stored (the later ones flagged reused_control_id), and only the same bytes
    again are a duplicate answered with the original ACK."""
    it = intake()
    seen, stored, keys = {}, set(), set()
    with it.client() as c:
        for name, m in plain_messages():
            want = expected(m)
            key = (field(m, "MSH", 3), field(m, "MSH", 4), field(m, "MSH", 10))
            if want in ("AA", "CA") or (want is None and field(m, "MSH", 9)[:3] != "ACK"):
                stored.add((key, m))
                keys.add(key)
            c.send(m)
            if want is None:
                assert c.closed_within(0.3) is False, f"{name}: must not be answered"
                continue
            ack = c.read_frame()
            assert ack is not None, f"{name}: no ACK"
            if want in ("AA", "CA") and (key, m) in seen:
                # the same message again: a duplicate gets the original ACK, byte for byte
                assert ack == seen[(key, m)], f"{name}: a duplicate must get the original ACK"
                continue
            check_ack_header(ack, m, want)
            if want in ("AA", "CA"):
                seen[(key, m)] = ack
    rows = it.rows()
    assert len(rows) == len(stored), "one row per distinct message"
    assert sum(r["reused_control_id"] for r in rows) == len(stored) - len(keys)
    for r in rows:
        family = r["type"].split("^")[0]
        assert r["state"] == ("received" if family in PHARMACY_AND_ADT else "ignored"), r
    # nothing of the messages' content in the daemon's log: patient names of the samples
    log = it.proc.text()
    for name_part in ("EVERYWOMAN", "DOE^JOHN", "Smith^John", "MYSTREET"):
        assert name_part not in log


def test_mllp_send_is_answered(intake, tmp_path):
    """mllp_send from Debian's python3-hl7, an independent MLLP client."""
    it = intake()
    f = tmp_path / "two.hl7"
    f.write_bytes(msg("MS-1") + b"\n" + msg("MS-2", typ="ADT^A08"))
    r = subprocess.run(["mllp_send", "--loose", "-f", str(f), "-p", str(it.port), "127.0.0.1"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.replace(b"\n", b"\r")
    acks = [s for s in segments(out) if s.startswith(b"MSA")]
    assert [a.split(b"|")[1:3] for a in acks] == [[b"AA", b"MS-1"], [b"AA", b"MS-2"]]
    assert {r["control_id"] for r in it.rows()} == {"MS-1", "MS-2"}


def test_routing_accept_ignore_reject(intake):
    it = intake(route={"accept": "RDE^O11, RAS", "reject": "ORM", "default": "ignore"})
    with it.client() as c:
        a = c.call(msg("R-1", typ="RDE^O11"))
        b = c.call(msg("R-2", typ="RDE^O25"))     # not RDE^O11: the default, ignore
        d = c.call(msg("R-3", typ="RAS^O17"))
        e = c.call(msg("R-4", typ="ORM^O01"))
    assert [ack_code(x) for x in (a, b, d, e)] == ["AA", "AA", "AA", "AR"]
    assert field(e, "ERR", 3).split("^")[0] == "200" or "200" in field(e, "ERR", 1)
    states = {r["control_id"]: r["state"] for r in it.rows()}
    assert states == {"R-1": "received", "R-2": "ignored", "R-3": "received",
                      "R-4": "rejected"}


def test_header_errors_are_rejected_with_err(intake):
    it = intake()
    cases = {
        "no-msh10": (msg("").replace(b"|P|2.5.1", b"|P|2.5.1"), "101", 10),
        "bad-pid": (msg("H-2").replace(b"|P|2.5.1", b"|X|2.5.1"), "202", 11),
        "no-msh9": (msg("H-3").replace(b"|RDE^O11^RDE_O11|", b"||"), "101", 9),
        "v3": (msg("H-4").replace(b"|P|2.5.1", b"|P|3.0"), "203", 12),
    }
    with it.client() as c:
        for name, (m, code, fld) in cases.items():
            ack = c.call(m)
            assert ack_code(ack) == "AR", name
            err = field(ack, "ERR", 3) or ""
            # v2.5: ERR-2 location MSH^1^field, ERR-3 the table 0357 code
            assert err.split("^")[0] == code, (name, ack)
            assert field(ack, "ERR", 2).split("^")[:3] == ["MSH", "1", str(fld)], (name, ack)
    assert it.rows() == [], "rejected headers are not stored"
    assert it.metric("netwall_intake_rejected_total", reason="header") == 4


def test_enhanced_mode_honours_msh15(intake):
    it = intake()
    with it.client() as c:
        al = c.call(msg("E-1", extra_msh="|||AL|NE"))
        assert ack_code(al) == "CA"
        c.send(msg("E-2", extra_msh="|||NE|NE"))       # never: no ACK at all
        c.send(msg("E-3", extra_msh="|||ER|NE"))       # only on error: none for success
        er = c.call(msg("E-4", extra_msh="|||ER|NE").replace(b"|P|2.5.1", b"|P|9.9"))
        assert ack_code(er) == "CR" and field(er, "MSA", 2) == "E-4"
        su = c.call(msg("E-5", extra_msh="|||SU|NE"))
        assert ack_code(su) == "CA" and field(su, "MSA", 2) == "E-5"
    assert {r["control_id"] for r in it.rows()} == {"E-1", "E-2", "E-3", "E-5"}


def test_batch_is_split_and_acknowledged(intake):
    it = intake()
    batch = load_sample("batch_bhs_two_msgs_pythonhl7.hl7")
    with it.client() as c:
        resp = c.call(batch)
    segs = segments(resp)
    assert segs[0].startswith(b"BHS") and segs[-1].startswith(b"BTS")
    # the batch asks for no accept ACKs (MSH-15 NE): the answer is an empty batch
    assert segs[-1].split(b"|")[1] == b"0"
    assert sorted(r["control_id"] for r in it.rows()) == ["12334456778890", "12334456778891"]


def test_many_messages_on_one_connection_and_coalesced(intake):
    it = intake()
    msgs = [msg(f"C-{i}") for i in range(200)]
    with it.client() as c:
        c.send_raw(b"".join(frame(m) for m in msgs))   # one write, 200 frames
        acks = [c.read_frame() for _ in msgs]
    assert [field(a, "MSA", 2) for a in acks] == [f"C-{i}" for i in range(200)]
    assert all(ack_code(a) == "AA" for a in acks)
    assert it.counts()["states"]["received"] == 200


def test_messages_show_and_count(intake):
    it = intake()
    with it.client() as c:
        ack = c.call(load_sample("rde_o11_v251_nhapi_exactdata.hl7"))
    assert ack_code(ack) == "AA"
    (row,) = it.rows()
    r = subprocess.run([NETWALL_BIN, "messages", "-c", it.config, "show", str(row["id"])],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "type RDE^O11" in r.stdout
    assert "MSH-10 = EF010000000071000000_4" in r.stdout
    assert "ACK sent:" in r.stdout and "MSA|AA|EF010000000071000000_4" in r.stdout
    shown = it.messages("show", str(row["id"]))
    assert shown["raw"].replace("\n", "\r").startswith("MSH|")
    counts = it.counts()
    assert counts["total"] == 1 and counts["types"]["RDE^O11"]["received"] == 1
    r = subprocess.run([NETWALL_BIN, "messages", "--store", it.store, "show", "999"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no message" in r.stderr


def test_metrics_count_what_happened(intake):
    it = intake()
    with it.client() as c:
        for i in range(5):
            assert ack_code(c.call(msg(f"M-{i}"))) == "AA"
        assert ack_code(c.call(msg("M-0"))) == "AA"     # duplicate
    assert it.metric("netwall_intake_messages_received_total") == 6
    assert it.metric("netwall_intake_messages_accepted_total") == 5
    assert it.metric("netwall_intake_duplicates_total") == 1
    assert it.metric("netwall_intake_ack_seconds_count") == 6
    assert it.metric("netwall_intake_queue_depth") in (0, 5)   # no [deliver]: waiting


def test_check_validates_intake_config(intake, tmp_path):
    it = intake()
    r = subprocess.run([NETWALL_BIN, "check", it.config], capture_output=True, text=True)
    assert r.returncode == 0 and "intake" in r.stdout, r.stderr
    bad = tmp_path / "bad.ini"
    bad.write_text("[intake]\nlisten = 127.0.0.1:1\nstore = x.db\nmax_message = 12\n"
                   "[route]\naccept = RDE^O1\n")
    r = subprocess.run([NETWALL_BIN, "check", bad], capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert any(line.startswith(f"{bad}:4:") and "max_message" in line for line in lines)
    assert any(line.startswith(f"{bad}:6:") and "RDE^O1" in line for line in lines)


def test_messages_json_of_latin1_content(intake):
    """MSH-18 8859/1 content: --json output is still valid JSON, with the text converted."""
    it = intake()
    m = msg("L1-1", extra_msh="||||||8859/1").replace(b"DOE^JANE", b"M\xfcLLER^J\xe9R\xd4ME")
    with it.client() as c:
        assert ack_code(c.call(m)) == "AA"
    (row,) = it.rows()
    shown = it.messages("show", str(row["id"]))
    assert "M\u00fcLLER^J\u00e9R\u00d4ME" in shown["raw"]
    r = subprocess.run([NETWALL_BIN, "messages", "--store", it.store, "replay", str(row["id"])],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "only those can be replayed" in r.stderr


def test_admin_scrapes_in_a_row_do_not_stall(intake):
    """Twenty /metrics and /status scrapes back to back. The store figures behind them are
    refreshed by the committer at most once a second; a committer that spun (holding its
    lock) until the next refresh was due made every other scrape wait about a second."""
    import time as _time
    it = intake()
    t0 = _time.monotonic()
    for i in range(10):
        assert it.metric("netwall_intake_queue_depth") is not None
        assert b'"states"' in it.admin_status()
    assert _time.monotonic() - t0 < 8, "scrapes stalled"
    with it.client() as c:
        assert ack_code(c.call(msg("AFTER-SCRAPES"))) == "AA"


def test_sighup_reloads_routing_and_a_broken_config_is_kept_out(intake):
    import signal as _signal
    it = intake(route={"accept": "RDE", "default": "ignore"})
    with it.client() as c:
        assert ack_code(c.call(msg("HUP-1", typ="ORU^R01"))) == "AA"      # ignored
        text = it.config.read_text().replace("default = ignore", "default = reject")
        it.config.write_text(text)
        mark = it.proc.mark()
        it.proc.signal(_signal.SIGHUP)
        it.proc.wait_event("reloaded", since=mark)
        assert ack_code(c.call(msg("HUP-2", typ="ORU^R01"))) == "AR"      # now rejected
        it.config.write_text(text.replace("default = reject", "default = drop"))
        mark = it.proc.mark()
        it.proc.signal(_signal.SIGHUP)
        it.proc.wait_event("reload_failed", since=mark)
        assert ack_code(c.call(msg("HUP-3", typ="ORU^R01"))) == "AR"      # the running config
        assert ack_code(c.call(msg("HUP-4", typ="RDE^O11"))) == "AA"
    states = {r["control_id"]: r["state"] for r in it.rows()}
    assert states == {"HUP-1": "ignored", "HUP-2": "rejected", "HUP-3": "rejected",
                      "HUP-4": "received"}


def test_sigterm_answers_what_was_read_then_exits(intake):
    """SIGTERM with messages in flight: every message read is answered and stored, the
    listener is closed, the process exits 0."""
    import signal as _signal
    import socket as _socket
    it = intake()
    s = _socket.create_connection(("127.0.0.1", it.port), timeout=10)
    s.sendall(frame(msg("TERM-first")))
    data = s.recv(65536)
    assert b"MSA|AA|TERM-first" in data
    s.sendall(b"".join(frame(msg(f"TERM-{i}")) for i in range(50)))
    it.proc.signal(_signal.SIGTERM)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert it.proc.wait_exit(15) == 0
    acked = {seg.split(b"|")[2].decode() for seg in data.split(b"\r") if seg.startswith(b"MSA|AA")}
    stored = {r["control_id"] for r in it.rows()}
    assert "TERM-first" in acked and acked <= stored, "every ACK sent is a stored message"

"""What real senders send: a byte order mark before MSH, no MSH-11 or MSH-12, the v2.7
truncation character in MSH-2, segments ended by LF, CR LF or a mix. Each is accepted,
stored byte for byte as sent, and recorded as a warning (counted by kind, shown on the status
page); `strict = on` refuses them as before. And every refusal names the message it refuses:
MSA-2 the inbound MSH-10, MSH-5/6 the inbound MSH-3/4 and back, MSH-11/12 echoed, read by
splitting the first line at MSH-1 alone whenever that can be done, for every malformed sample
of tests/data and of the fuzz corpora.

The rule is read here a second time, independently of the C code: strip a byte order mark,
skip CR and LF, want "MSH" and a field separator that is printable ASCII and not a letter or
digit, split the line up to the first CR or LF at that separator."""

import re
import sqlite3
import subprocess
import urllib.request

from conftest import REPO, netwall
from hl7util import (DATA, ack_code, emar, field, intake, load_sample, msg,  # noqa: F401
                     segments)

BOM = b"\xef\xbb\xbf"
CORPUS = REPO / "tests" / "fuzz" / "corpus"
NIST_TRUNC = "oml_o21_v251_nist_loi_trunc_char.hl7"
KINDS = ("bom", "msh11_missing", "msh12_missing", "lf_terminators", "crlf_terminators",
         "mixed_terminators")


# ---- the rule, read independently ----

def header(raw: bytes):
    """The inbound header split at MSH-1 alone: {n: MSH-n} for n >= 3, or None when the
    bytes do not start with MSH and a usable field separator."""
    if raw.startswith(BOM):
        raw = raw[3:]
    raw = raw.lstrip(b"\r\n")
    if len(raw) < 4 or raw[:3] != b"MSH":
        return None
    fs = raw[3:4]
    c = fs[0]
    if c < 0x21 or c > 0x7e or chr(c).isalnum():
        return None
    line = re.split(rb"[\r\n]", raw, maxsplit=1)[0]
    parts = line.split(fs)  # parts[0] "MSH", parts[1] MSH-2, parts[n - 1] MSH-n
    return {n: parts[n - 1] for n in range(3, len(parts) + 1)}


def ack_field(ack: bytes, seg: str, n: int) -> bytes:
    """Field n of the ACK's first seg segment, split at the ACK's own MSH-1."""
    fs = ack[3:4]
    for s in segments(ack):
        if s[:3] == seg.encode():
            parts = s.split(fs)
            idx = n - 1 if seg == "MSH" else n
            return parts[idx] if idx < len(parts) else b""
    return None


def check_names_its_message(raw: bytes, ack: bytes, what: str):
    """An AE/AR (CE/CR) for raw, whose MSH-10 reads by the rule, names it."""
    h = header(raw)
    assert h is not None and h.get(10), what
    get = lambda n: h.get(n, b"")  # noqa: E731
    assert ack_field(ack, "MSA", 2) == get(10), (what, ack)
    assert ack_field(ack, "MSH", 3) == get(5), (what, ack)
    assert ack_field(ack, "MSH", 4) == get(6), (what, ack)
    assert ack_field(ack, "MSH", 5) == get(3), (what, ack)
    assert ack_field(ack, "MSH", 6) == get(4), (what, ack)
    assert ack_field(ack, "MSH", 11) == get(11), (what, ack)
    assert ack_field(ack, "MSH", 12) == get(12), (what, ack)
    assert ack_field(ack, "ERR", 1) is not None, (what, "an ERR segment says what was wrong")
    assert ack_field(ack, "MSH", 9).startswith(b"ACK"), (what, ack)


# ---- helpers ----

def stored_raw(it, ctrl: str) -> bytes:
    """The raw bytes the store holds for a control ID (read with SQLite itself)."""
    db = sqlite3.connect(f"file:{it.store}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT raw FROM messages WHERE control_id = ?", (ctrl,)).fetchall()
    finally:
        db.close()
    assert len(rows) == 1, (ctrl, len(rows))
    return bytes(rows[0][0])


def warnings(it):
    return {k: it.metric("netwall_intake_warnings_total", None, kind=k) for k in KINDS}


def page_tile(it, ident):
    with urllib.request.urlopen(f"http://127.0.0.1:{it.admin.port}/", timeout=10) as r:
        dom = r.read().decode()
    m = re.search(rf'id="{ident}"><b>([^<]*)</b>', dom)
    assert m, f"no tile {ident!r} in the page"
    return m.group(1)


def with_ctrl(raw: bytes, ctrl: str) -> bytes:
    """raw with its MSH-10 replaced (the field separator is '|')."""
    lines = re.split(rb"(\r\n|\r|\n)", raw)
    parts = lines[0].split(b"|")
    parts[9] = ctrl.encode()
    lines[0] = b"|".join(parts)
    return b"".join(lines)


def terminated(m: bytes, ends):
    """m (segments ended by CR) with segment k ended by ends[k % len(ends)]."""
    segs = [s for s in m.split(b"\r") if s]
    return b"".join(s + ends[k % len(ends)] for k, s in enumerate(segs))


# ---- leniency ----

def test_bom_is_skipped_and_the_raw_kept_byte_for_byte(intake):
    it = intake()
    raw = BOM + with_ctrl(load_sample("rde_o11_v26_lfh_medreq.hl7"), "BOM-1")
    with it.client() as c:
        ack = c.call(raw)
    assert ack_code(ack) == "AA", ack
    assert field(ack, "MSA", 2) == "BOM-1"
    assert not ack.startswith(BOM), "the ACK is ours: no byte order mark"
    assert stored_raw(it, "BOM-1") == raw, "stored as the sender sent it, mark and all"
    assert warnings(it)["bom"] == 1
    (row,) = it.rows()
    assert row["type"] == "RDE^O11" and row["state"] == "received"
    # kept with the message: `messages list` and `show` name the tolerance
    assert row["warnings"] == ["bom"], row
    assert it.messages("show", str(row["id"]), "--reason", "test")["warnings"] == ["bom"]


def test_missing_msh11_is_p_and_missing_msh12_unknown(intake):
    it = intake()
    rde = load_sample("rde_o01_v25_google_simple.hl7")   # MSH-11 empty
    siu = load_sample("siu_s12_nodehl7_epic_covid_vaccine.hl7")   # no MSH-11, no MSH-12
    assert field(rde, "MSH", 11) == "" and field(siu, "MSH", 12) == ""
    with it.client() as c:
        a = c.call(rde)
        b = c.call(siu)
    assert ack_code(a) == "AA" and field(a, "MSA", 2) == "5339", a
    assert ack_code(b) == "AA" and field(b, "MSA", 2) == "521", b
    # the ACK echoes what was sent: nothing
    assert field(a, "MSH", 11) == "" and field(a, "MSH", 12) == "2.5"
    assert field(b, "MSH", 11) == "" and field(b, "MSH", 12) == ""
    w = warnings(it)
    assert (w["msh11_missing"], w["msh12_missing"]) == (2, 1), w
    rows = {r["control_id"]: r for r in it.rows()}
    assert rows["5339"]["state"] == "received" and rows["5339"]["version"] == "2.5"
    assert rows["521"]["state"] == "ignored" and rows["521"]["version"] == ""
    assert stored_raw(it, "521") == siu


def test_msh11_taken_as_p_is_checked_against_processing_ids(intake):
    it = intake(intake={"processing_ids": "T"})
    with it.client() as c:
        ack = c.call(msg("NO-11").replace(b"|P|2.5.1", b"||2.5.1"))
    assert ack_code(ack) == "AR" and field(ack, "MSA", 2) == "NO-11"
    assert "202" in (field(ack, "ERR", 3) or field(ack, "ERR", 1))


def test_v27_truncation_character_is_accepted(intake):
    it = intake()
    raw = load_sample(NIST_TRUNC)
    assert field(raw, "MSH", 2) == "^~\\&#"
    with it.client() as c:
        ack = c.call(raw)
    # MSH-15/16 AL: enhanced mode
    assert ack_code(ack) == "CA", ack
    assert field(ack, "MSH", 2) == "^~\\&#" and field(ack, "MSA", 2) == "NIST-LOI_5.0_1.1-NG"
    assert warnings(it) == dict.fromkeys(KINDS, 0), "legal since v2.7: no warning"


def test_segment_terminators_cr_lf_crlf_and_mixed(intake):
    it = intake()
    cases = {
        "T-CR": ([b"\r"], None),
        "T-LF": ([b"\n"], "lf_terminators"),
        "T-CRLF": ([b"\r\n"], "crlf_terminators"),
        "T-MIX": ([b"\r", b"\n", b"\r\n"], "mixed_terminators"),
        "T-MIX2": ([b"\n", b"\r"], "mixed_terminators"),
    }
    sent = {}
    with it.client() as c:
        for ctrl, (ends, _) in cases.items():
            raw = terminated(msg(ctrl), ends)
            sent[ctrl] = raw
            ack = c.call(raw)
            assert ack_code(ack) == "AA" and field(ack, "MSA", 2) == ctrl, (ctrl, ack)
            assert b"\n" not in ack, "the ACK's segments end with CR"
    for ctrl, raw in sent.items():
        assert stored_raw(it, ctrl) == raw, ctrl
    w = warnings(it)
    assert (w["lf_terminators"], w["crlf_terminators"], w["mixed_terminators"]) == (1, 1, 2), w
    assert w["bom"] == 0 and w["msh11_missing"] == 0
    # the status page counts the messages read with a warning
    assert page_tile(it, "warnings") == "4"


def test_messages_read_leniently_are_delivered(intake, emar):
    """The delivery worker reads the stored bytes as the intake did: a message behind a
    byte order mark, without MSH-11 or MSH-12, with mixed line endings reaches the EMAR."""
    api = emar()
    it = intake(emar=api)
    sent = {
        "DL-BOM": BOM + msg("DL-BOM"),
        "DL-NOIDS": msg("DL-NOIDS").replace(b"|P|2.5.1", b""),
        "DL-MIX": terminated(msg("DL-MIX"), [b"\r\n", b"\n"]),
    }
    with it.client() as c:
        for ctrl, raw in sent.items():
            assert ack_code(c.call(raw)) == "AA", ctrl
    api.wait_deliveries(3)
    got = {d["control_id"]: d for d in api.deliveries()}
    assert set(got) == set(sent)
    assert all(d["type"].startswith("RDE^O11") for d in got.values()), got
    it.admin.wait_metric("netwall_intake_delivered_total", lambda v: v == 3, 10)


def test_read_leniently_on_postgresql(intake, emar, postgres):
    """The same on PostgreSQL: stored byte for byte (bytea), an unknown version stored
    empty, delivered."""
    from test_intake_pg import pg_url
    pg = postgres()
    api = emar()
    it = intake(store=pg_url(pg), emar=api)
    sent = {
        "PL-BOM": BOM + terminated(msg("PL-BOM"), [b"\r\n"]),
        "PL-NOIDS": msg("PL-NOIDS").replace(b"|P|2.5.1", b""),
    }
    with it.client() as c:
        for ctrl, raw in sent.items():
            assert ack_code(c.call(raw)) == "AA", ctrl
    api.wait_deliveries(2)
    for ctrl, raw in sent.items():
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                            "-d", "netwall", "-At", "-c",
                            f"SELECT encode(raw, 'hex') FROM messages WHERE control_id = '{ctrl}'"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert bytes.fromhex(r.stdout.strip()) == raw, ctrl
    rows = {r["control_id"]: r for r in it.rows()}
    assert rows["PL-NOIDS"]["version"] == "" and rows["PL-BOM"]["version"] == "2.5.1"
    w = warnings(it)
    assert (w["bom"], w["crlf_terminators"], w["msh11_missing"], w["msh12_missing"]) == \
        (1, 1, 1, 1), w


def test_strict_refuses_what_it_refused_before(intake):
    """strict = on: today's answers exactly, AR for each tolerance (the ARs still name
    their messages); what was accepted before still is."""
    it = intake(intake={"strict": "on"})
    bom = BOM + with_ctrl(load_sample("rde_o11_v26_lfh_medreq.hl7"), "S-BOM")
    no11 = msg("S-11").replace(b"|P|2.5.1", b"||2.5.1")
    no12 = msg("S-12").replace(b"|P|2.5.1", b"|P|")
    lf = terminated(msg("S-LF"), [b"\n"])
    trunc = load_sample(NIST_TRUNC)
    with it.client() as c:
        a_bom, a11, a12, a_lf, a_trunc = (c.call(m) for m in (bom, no11, no12, lf, trunc))
    assert ack_code(a_bom) == "AR"
    assert "100" in (ack_field(a_bom, "ERR", 3) or b"").decode()
    assert ack_field(a_bom, "MSA", 3) == b"message does not start with MSH"
    check_names_its_message(bom, a_bom, "strict bom")
    for raw, ack, fld in ((no11, a11, 11), (no12, a12, 12)):
        assert ack_code(ack) == "AR", ack
        assert field(ack, "ERR", 3).split("^")[0] == "101"
        assert field(ack, "ERR", 2).split("^")[:3] == ["MSH", "1", str(fld)]
        check_names_its_message(raw, ack, f"strict MSH-{fld}")
    assert ack_code(a_lf) == "AA" and ack_code(a_trunc) == "CA"
    assert {r["control_id"] for r in it.rows()} == {"S-LF", "NIST-LOI_5.0_1.1-NG"}
    w = warnings(it)
    assert w["bom"] == w["msh11_missing"] == w["msh12_missing"] == 0, w
    assert w["lf_terminators"] == 1, "accepted as before, and recorded"
    assert it.metric("netwall_intake_rejected_total", reason="parse") == 1
    assert it.metric("netwall_intake_rejected_total", reason="header") == 2


def test_strict_follows_sighup(intake):
    """strict is read again on SIGHUP, like the routing: an intake turned strict refuses
    the byte order mark it accepted a moment before, and turned lenient again accepts it."""
    import signal as _signal
    it = intake()
    text = it.config.read_text()
    answers = []
    for k, mode in enumerate(("off", "on", "off")):
        if k:
            it.config.write_text(text.replace("[intake]\n", f"[intake]\nstrict = {mode}\n", 1))
            mark = it.proc.mark()
            it.proc.signal(_signal.SIGHUP)
            it.proc.wait_event("reloaded", since=mark)
        with it.client() as c:
            answers.append(ack_code(c.call(BOM + with_ctrl(
                load_sample("rde_o11_v26_lfh_medreq.hl7"), f"SIGHUP-{k}"))))
    assert answers == ["AA", "AR", "AA"], answers


def test_strict_is_checked_by_netwall_check(tmp_path):
    good = tmp_path / "good.ini"
    good.write_text("[intake]\nlisten = 127.0.0.1:1\nstore = s.db\nstrict = on\n")
    r = netwall("check", good)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.ini"
    bad.write_text("[intake]\nlisten = 127.0.0.1:1\nstore = s.db\nstrict = maybe\n")
    r = netwall("check", bad)
    assert r.returncode != 0
    assert "bad.ini:4: strict: want on or off" in r.stderr


# ---- every answer names its message ----

def test_malformed_msh2_is_refused_and_named(intake):
    it = intake()
    cases = [
        b"MSH|^|SAPP|SFAC|RAPP|RFAC|2026||RDE^O11|M2-1|P|2.5.1\rPID|1\r",
        b"MSH|^^\\&|SAPP|SFAC|RAPP|RFAC|2026||RDE^O11|M2-2|T|2.3\rPID|1\r",
        b"MSH|^~\\&#$|SAPP|SFAC|RAPP|RFAC|2026||RDE^O11|M2-3|P|2.5.1|||AL|AL\rPID|1\r",
        BOM + b"MSH~^^\\&~SAPP~SFAC~RAPP~RFAC~2026~~RDE^O11~M2-4~D~2.4\n",
        b"MSH||SAPP|SFAC|RAPP|RFAC|2026||RDE^O11|M2-5|P|2.5.1\r",
    ]
    with it.client() as c:
        for raw in cases:
            ack = c.call(raw)
            assert ack is not None
            assert ack_code(ack) in ("AR", "CR"), ack
            assert re.search(rb"\b102\b", ack_field(ack, "ERR", 3) or ack_field(ack, "ERR", 1))
            check_names_its_message(raw, ack, raw[:24])
    assert it.rows() == []
    assert it.metric("netwall_intake_rejected_total", reason="parse") == len(cases)
    # the status page's errors name the control IDs (made log-safe), never content
    with urllib.request.urlopen(f"http://127.0.0.1:{it.admin.port}/", timeout=10) as r:
        page = r.read().decode()
    assert "M2-1" in page and "M2-4" in page and "SAPP" not in page
    ev = it.proc.events("rejected", reason="parse")
    assert {e.get("control_id") for e in ev} >= {"M2-1", "M2-2", "M2-5"}


def mllp_frames(data: bytes):
    """The frames (between VT and FS) of an MLLP stream, as a framer reads them."""
    out, i = [], 0
    while True:
        s = data.find(b"\x0b", i)
        if s < 0:
            return out
        nxt = data.find(b"\x0b", s + 1)
        e = data.find(b"\x1c", s + 1)
        if e < 0:
            return out
        if 0 <= nxt < e:  # a new start before the end: the framer starts again there
            i = nxt
            continue
        out.append(data[s + 1:e])
        i = e + 1


def mutations(name: str, raw: bytes):
    """Malformed variants of a good sample: beyond the rules (MSH-2), a bad segment name,
    too many fields, a header field missing or unsupported."""
    first, _, rest = raw.partition(b"\r")
    p = first.split(b"|")
    out = {}
    for tag, msh2 in (("msh2-repeat", b"^^\\&"), ("msh2-six", b"^~\\&#$"), ("msh2-one", b"^")):
        out[tag] = b"|".join([p[0], msh2] + p[2:]) + b"\r" + rest
    out["seg-name"] = raw + b"pid|1\r"
    out["fields"] = raw + b"ZZZ" + b"|" * 1100 + b"\r"
    if len(p) > 8:
        out["no-msh9"] = b"|".join(p[:8] + [b""] + p[9:]) + b"\r" + rest
    if len(p) > 11:
        out["v3"] = b"|".join(p[:11] + [b"3.0"] + p[12:]) + b"\r" + rest
    return {f"{name}/{k}": v for k, v in out.items()}


def corpus():
    """Every input of tests/data and the fuzz corpora, with the mutations of the samples;
    batches are answered per message and left out."""
    items = {}
    for p in sorted(DATA.glob("*.hl7")):
        raw = p.read_bytes()
        items[f"data/{p.name}"] = raw
        if not p.name.startswith(("batch_", "ack_")):
            items.update(mutations(f"data/{p.name}", load_sample(p.name)))
    for p in sorted((CORPUS / "fuzz_hl7").iterdir()):
        items[f"fuzz_hl7/{p.name}"] = p.read_bytes()
    for p in sorted((CORPUS / "fuzz_mllp").iterdir()):
        for k, f in enumerate(mllp_frames(p.read_bytes())):
            items[f"fuzz_mllp/{p.name}#{k}"] = f
    return {k: v for k, v in items.items()
            if not v.lstrip(b"\r\n").startswith((b"BHS", b"FHS")) and len(v) > 0}


def answer(it, raw: bytes, probe: str):
    """The answer to raw, or None: raw is sent on a connection of its own, then a good
    message; the frames before the good one's AA answer raw (at most one)."""
    frames = []
    with it.client() as c:
        c.send(raw)
        c.send(msg(probe))
        while True:
            f = c.read_frame(timeout=10)
            assert f is not None, f"closed before the probe {probe} was answered"
            if field(f, "MSA", 2) == probe and ack_code(f) == "AA":
                break
            frames.append(f)
    assert len(frames) <= 1, frames
    return frames[0] if frames else None


def test_every_refusal_names_its_message(intake):
    it = intake()
    checked, unreadable, refused = [], [], 0
    for k, (what, raw) in enumerate(corpus().items()):
        ack = answer(it, raw, f"PROBE-{k}")
        if ack is None or ack_code(ack)[1] == "A":
            continue
        refused += 1
        h = header(raw)
        if h is None or not h.get(10):
            unreadable.append(what)
            assert ack_field(ack, "MSA", 2) == b"", (what, ack)
            continue
        check_names_its_message(raw, ack, what)
        checked.append(what)
    print(f"{refused} refused; {len(checked)} named by the rule; unreadable: {unreadable}")
    assert len(checked) >= 150, checked
    assert "fuzz_hl7/bad_msh2.hl7" in checked
    assert "data/rde_o01_v25_google_simple.hl7/msh2-repeat" in checked
    assert "fuzz_hl7/no_msh.hl7" in unreadable

"""netwall messages search on a real intake's store, SQLite and PostgreSQL: every message
found by any of its patient identifiers (PID-3), its family names (PID-5), its order
numbers (ORC-2, ORC-3), its control ID, sender, type, state, message date (MSH-7) and the
time it was received, the criteria combined, newest first; and the options checked."""

import datetime
import json
import sqlite3
import subprocess

import pytest

from conftest import NETWALL_BIN, wait_until
from hl7util import ack_code, intake, msg, pg_url  # noqa: F401


def patient_msg(ctrl, pid3, pid5, orc2, orc3="", typ="RDE^O11", app="PHARM", fac="ST-MARY",
                date="20261122101500"):
    t = typ.split("^")
    segs = [f"MSH|^~\\&|{app}|{fac}|EMAR|WARD-3|{date}||{t[0]}^{t[1]}^{t[0]}_{t[1]}|{ctrl}|P|2.5.1",
            f"PID|1||{pid3}||{pid5}||19600101|F",
            f"ORC|NW|{orc2}|{orc3}|||||^^^20261122",
            "RXE|^BID^HL70335|00093-7146^Metoprolol 25 mg tablet^NDC|25||mg"]
    return ("\r".join(segs) + "\r").encode()


def run(it, *args):
    return subprocess.run([NETWALL_BIN, "messages", "--store", it.store, *args],
                          capture_output=True, text=True, timeout=30)


def search(it, *args):
    r = run(it, "search", *args, "--json")
    assert r.returncode == 0, f"search {args}: {r.returncode} {r.stderr}"
    return [row["control_id"] for row in json.loads(r.stdout)]


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request, intake, postgres):
    """An intake (on each backend) that stored five messages of three patients."""
    store = pg_url(postgres()) if request.param == "postgresql" else None
    it = intake(store=store, route={"accept": "RDE", "default": "ignore"})
    sent = [
        patient_msg("S-1", "MRN100^^^HOSP^MR~999-00-1111^^^SSA^SS", "DOE^JANE~Roe^Jane",
                    "ORD-1", "FIL-1"),
        patient_msg("S-2", "MRN200^^^HOSP^MR", "SMITH^ANN", "ORD-2", fac="ST-JUDE"),
        patient_msg("S-3", "MRN100^^^HOSP^MR", "DOE^JANE", "ORD-3", date="20261123080000"),
        patient_msg("S-4", "MRN300^^^CLINIC^PI", "O'HARA^SEAN", "A\\T\\B", typ="ORU^R01"),
        patient_msg("S-5", "MRN100^^^HOSP^MR", "DOE^JANE", "ORD-5", app="OTHER"),
    ]
    with it.client() as c:
        for m in sent:
            assert ack_code(c.call(m)) == "AA"
    return it


def test_search_by_each_key(filled):
    it = filled
    assert search(it, "--patient", "MRN100") == ["S-5", "S-3", "S-1"]
    assert search(it, "--patient", "999-00-1111") == ["S-1"]
    assert search(it, "--patient", "MRN999") == []
    assert search(it, "--name", "doe") == ["S-5", "S-3", "S-1"]
    assert search(it, "--name", "ROE") == ["S-1"]
    assert search(it, "--name", "o'hara") == ["S-4"]
    assert search(it, "--order", "ORD-2") == ["S-2"]
    assert search(it, "--order", "FIL-1") == ["S-1"]
    assert search(it, "--order", "A&B") == ["S-4"]          # as meant, escapes undone
    assert search(it, "--control-id", "S-3") == ["S-3"]
    assert search(it, "--sender", "PHARM") == ["S-4", "S-3", "S-2", "S-1"]
    assert search(it, "--sender", "PHARM/ST-JUDE") == ["S-2"]
    assert search(it, "--type", "ORU") == ["S-4"]
    assert search(it, "--type", "RDE^O11") == ["S-5", "S-3", "S-2", "S-1"]
    assert search(it, "--state", "ignored") == ["S-4"]
    assert search(it, "--date", "2026-11-23") == ["S-3"]
    assert search(it, "--date", "2026112210") == ["S-5", "S-4", "S-2", "S-1"]
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert len(search(it, "--since", today.isoformat())) == 5
    assert search(it, "--until", (today - datetime.timedelta(days=1)).isoformat()) == []
    assert len(search(it, "--until", today.isoformat())) == 5   # a date: to its end


def store_sql(it, sql):
    """Runs sql on the intake's store (SQLite file or PostgreSQL URL); the first column of
    the first row of the last statement, or None."""
    if it.store.startswith("postgresql://"):
        r = subprocess.run(["psql", "-Atq", it.store, "-c", sql], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else None
    db = sqlite3.connect(it.store, timeout=10)
    try:
        db.executescript("BEGIN IMMEDIATE;" + sql.rsplit(";", 1)[0] + ";COMMIT;")
        last = sql.rsplit(";", 1)[-1].strip()
        row = db.execute(last).fetchone() if last else None
        return None if row is None else str(row[0])
    finally:
        db.close()


KEYS_SENT = 23  # 7 + 4 + 4 + 4 + 4: patient identifiers, family names, order numbers, the control ID


def test_pending_keys_are_merged(filled):
    """Each commit leaves its keys pending; the indexer merges them once the committer is
    quiet, and those an earlier run left pending at its start; every search finds the same
    messages either way."""
    it = filled
    wait_until(lambda: it.metric("netwall_intake_keys_merged_total") == KEYS_SENT, 15,
               "the indexer merging the keys")
    assert it.metric("netwall_intake_keys_pending") == 0
    assert store_sql(it, "SELECT 1; SELECT count(*) FROM message_keys_pending") == "0"
    assert search(it, "--patient", "MRN100") == ["S-5", "S-3", "S-1"]
    assert it.proc.stop() is None
    # as an earlier run that stopped before its merge would have left them
    cols = "kind, value, message_id, authority, id_type"
    store_sql(it, f"INSERT INTO message_keys_pending ({cols}) SELECT {cols} FROM message_keys;"
                  "DELETE FROM message_keys; SELECT 1")
    assert search(it, "--order", "A&B") == ["S-4"]  # found while pending
    it.start()
    wait_until(lambda: store_sql(it, "SELECT 1; SELECT count(*) FROM message_keys") ==
               str(KEYS_SENT), 15, "the keys pending at start merged")
    assert store_sql(it, "SELECT 1; SELECT count(*) FROM message_keys_pending") == "0"
    assert search(it, "--patient", "MRN100") == ["S-5", "S-3", "S-1"]
    assert search(it, "--order", "A&B") == ["S-4"]


def test_search_combined_and_limited(filled):
    it = filled
    assert search(it, "--patient", "MRN100", "--sender", "PHARM") == ["S-3", "S-1"]
    assert search(it, "--patient", "MRN100", "--order", "ORD-3") == ["S-3"]
    assert search(it, "--patient", "MRN100", "--state", "ignored") == []
    assert search(it, "--name", "DOE", "--date", "20261122") == ["S-5", "S-1"]
    assert search(it, "--patient", "MRN100", "--limit", "1") == ["S-5"]
    assert search(it, "--type", "RDE", "--state", "received", "--control-id", "S-2") == ["S-2"]


def test_search_output_holds_the_patients(filled):
    it = filled
    r = run(it, "search", "--control-id", "S-1", "--json")
    assert r.returncode == 0, r.stderr
    row, = json.loads(r.stdout)
    assert sorted(row["patient_ids"], key=lambda p: p["id"]) == [
        {"id": "999-00-1111", "authority": "SSA", "type": "SS"},
        {"id": "MRN100", "authority": "HOSP", "type": "MR"}]
    assert sorted(row["family_names"]) == ["DOE", "ROE"]
    assert row["message_date"] == "20261122101500"
    assert row["warnings"] == []
    text = run(it, "search", "--patient", "MRN200")
    assert text.returncode == 0, text.stderr
    line, = [ln for ln in text.stdout.splitlines() if "S-2" in ln]
    assert "MRN200 (HOSP MR)" in line and "SMITH" in line and "PHARM/ST-JUDE" in line
    none = run(it, "search", "--patient", "NOBODY")
    assert none.returncode == 0 and "no message matches" in none.stdout


def test_show_and_list_carry_the_date_and_warnings(filled):
    it = filled
    row = it.messages("search", "--control-id", "S-3")[0]
    shown = it.messages("show", str(row["id"]))
    assert shown["message_date"] == "20261123080000" and shown["warnings"] == []
    listed = {r["control_id"]: r for r in it.rows()}
    assert listed["S-3"]["message_date"] == "20261123080000"


@pytest.mark.parametrize("args", [
    ["search"],                                        # no criterion
    ["search", "--since", "yesterday"],
    ["search", "--since", "2026-13-01"],
    ["search", "--until", "2026-11-22T25:00"],
    ["search", "--date", "22/11/2026"],
    ["search", "--patient"],
    ["list", "--patient", "MRN100"],                   # a search criterion elsewhere
    ["show", "1", "--order", "ORD-1"],
])
def test_search_usage_errors(intake, args):
    it = intake()
    r = run(it, *args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert r.stderr.startswith("netwall messages: ")

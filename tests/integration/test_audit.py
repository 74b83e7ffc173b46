"""The audit trail of netwall messages, on SQLite and PostgreSQL: every look at message
content (show, search) and every replay is recorded in the store before anything is shown
(who, what was asked, which messages, the reason given), listed newest first by
`netwall messages audit`; listing and counting are not; the database refuses to change or
delete a record; and when the record cannot be written, nothing is shown."""

import json
import os
import pwd
import subprocess

import pytest

from conftest import NETWALL_BIN
from hl7util import ack_code, intake, msg, pg_url  # noqa: F401


class Store:
    def __init__(self, it, kind, pg):
        self.it, self.kind, self.pg = it, kind, pg

    def cli(self, *args, env=None):
        return subprocess.run([NETWALL_BIN, "messages", "--store", self.it.store, *args],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, **(env or {})})

    def audit(self):
        r = self.cli("audit", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def sql(self, statement):
        """Runs statement with the database's own client; returns (ok, output)."""
        if self.kind == "sqlite":
            r = subprocess.run(["sqlite3", self.it.store, statement], capture_output=True,
                               text=True, timeout=30)
        else:
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
                                "postgres", "-d", "netwall", "-v", "ON_ERROR_STOP=1", "-Atc",
                                statement], capture_output=True, text=True, timeout=30)
        return r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, intake, postgres):
    pg = postgres() if request.param == "postgresql" else None
    it = intake(store=pg_url(pg) if pg else None)
    with it.client() as c:
        for i in range(3):
            assert ack_code(c.call(msg(f"A-{i}", pid=f"MRN{i}"))) == "AA"
    return Store(it, request.param, pg)


def me():
    return pwd.getpwuid(os.geteuid()).pw_name


def test_every_look_is_recorded_newest_first(store):
    ids = {r["control_id"]: r["id"] for r in store.it.rows()}
    assert store.audit() == []                         # list and count read no content
    store.cli("count")
    r = store.cli("show", str(ids["A-1"]), "--reason", "ticket 4711")
    assert r.returncode == 0, r.stderr
    r = store.cli("show", str(ids["A-2"]), "--raw", "--json")
    assert r.returncode == 0, r.stderr
    r = store.cli("search", "--patient", "MRN0", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1, r.stderr
    r = store.cli("search", "--patient", "NOBODY")
    assert r.returncode == 0, r.stderr
    r = store.cli("replay", str(ids["A-0"]), env={"SUDO_USER": "alice"})
    assert r.returncode == 1                           # not dead yet, but the attempt counts
    trail = store.audit()
    assert [(a["action"], a["message_ids"]) for a in trail] == [
        ("replay", [ids["A-0"]]),
        ("search", []),
        ("search", [ids["A-0"]]),
        ("show", [ids["A-2"]]),
        ("show", [ids["A-1"]]),
    ]
    assert [a["id"] for a in trail] == sorted((a["id"] for a in trail), reverse=True)
    assert all(a["via"] == "cli" for a in trail)
    assert trail[0]["who"] == f"{me()} (sudo by alice)"
    assert all(a["who"] == me() for a in trail[1:])
    assert trail[4]["reason"] == "ticket 4711" and trail[3]["reason"] is None
    assert trail[3]["what"] == f"show {ids['A-2']} --raw --json"
    assert trail[2]["what"] == "search --patient MRN0 --limit 50"
    assert trail[2]["messages"] == 1
    text = store.cli("audit")
    assert text.returncode == 0 and "ticket 4711" in text.stdout and "replay" in text.stdout
    two = store.cli("audit", "--limit", "2", "--json")
    assert two.returncode == 0 and [a["action"] for a in json.loads(two.stdout)] == [
        "replay", "search"]
    older = store.cli("audit", "--before", str(trail[1]["id"]), "--json")
    assert [a["id"] for a in json.loads(older.stdout)] == [a["id"] for a in trail[2:]]


def test_the_database_refuses_to_change_the_trail(store):
    ids = [r["id"] for r in store.it.rows()]
    assert store.cli("show", str(ids[0])).returncode == 0
    for statement in ("UPDATE audit SET who = 'nobody'", "DELETE FROM audit"):
        ok, out = store.sql(statement)
        assert not ok and "audit records cannot be" in out, (statement, out)
    if store.kind == "postgresql":
        ok, out = store.sql("TRUNCATE audit")
        assert not ok and "audit records cannot be" in out, out
    assert [a["who"] for a in store.audit()] == [me()]


def test_nothing_is_shown_when_the_record_cannot_be_written(store):
    ids = [r["id"] for r in store.it.rows()]
    if store.kind == "sqlite":
        ok, out = store.sql("CREATE TRIGGER no_audit BEFORE INSERT ON audit "
                            "BEGIN SELECT RAISE(ABORT, 'no'); END")
    else:
        ok, out = store.sql("CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS "
                            "$$ BEGIN RAISE EXCEPTION 'no'; END $$; CREATE TRIGGER no_audit "
                            "BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION no_audit()")
    assert ok, out
    for args in (["show", str(ids[0])], ["show", str(ids[0]), "--json"],
                 ["search", "--patient", "MRN1"], ["search", "--patient", "MRN1", "--json"]):
        r = store.cli(*args)
        assert r.returncode == 1 and r.stdout == "", (args, r.stdout)
        assert "cannot write the audit record, so nothing is shown" in r.stderr
        assert "MRN1" not in r.stderr
    assert store.audit() == []

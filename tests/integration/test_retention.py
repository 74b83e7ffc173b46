"""Retention and purge, on SQLite and PostgreSQL: retain_days removes the delivered,
ignored and rejected messages last changed longer ago, with their search keys, while dead,
failed and received messages stay; retain_bytes removes the least recently changed first;
every removal is named in the audit trail, which stays whole; a SQLite file gets its space
back; `netwall messages purge` removes by hand, audited, and refuses what is still to be
delivered."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import NETWALL_BIN, netwall, wait_until
from hl7util import ack_code, emar, intake, msg, pg_url  # noqa: F401

DAY_MS = 86400 * 1000


class Store:
    """A store filled by a first intake, then stopped, so rows can be aged by hand."""

    def __init__(self, intake, kind, pg):
        self.intake, self.kind, self.pg = intake, kind, pg
        self.spec = pg_url(pg) if pg else None
        # RDE accepted (stays received: no delivery), ORU ignored, ADT rejected
        self.it = intake(store=self.spec, route={"accept": "RDE", "reject": "ADT"})
        self.spec = self.it.store

    def send(self, *messages):
        with self.it.client() as c:
            for m in messages:
                assert ack_code(c.call(m)) in ("AA", "AR")

    def cli(self, *args):
        return subprocess.run([NETWALL_BIN, "messages", "--store", self.spec, *args],
                              capture_output=True, text=True, timeout=60)

    def json(self, *args):
        r = self.cli(*args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def sql(self, statement):
        if self.kind == "sqlite":
            r = subprocess.run(["sqlite3", self.spec, statement], capture_output=True,
                               text=True, timeout=60)
        else:
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
                                "postgres", "-d", "netwall", "-v", "ON_ERROR_STOP=1", "-Atc",
                                statement], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def set(self, ctrl, state, age_ms):
        """Puts message ctrl in state, last changed age_ms ago (as delivery would)."""
        now = int(time.time() * 1000)
        self.sql(f"UPDATE messages SET state = '{state}', updated_ms = {now - age_ms} "
                 f"WHERE control_id = '{ctrl}'")
        if state not in ("received", "failed"):
            self.sql("DELETE FROM deliveries WHERE message_id IN (SELECT id FROM messages "
                     f"WHERE control_id = '{ctrl}')")

    def ids(self):
        return {r["control_id"]: r["id"] for r in self.json("list", "--limit", "0")}

    def orphan_keys(self):
        """Keys of removed messages, merged or still pending."""
        return sum(int(self.sql(f"SELECT count(*) FROM {t} WHERE message_id NOT IN "
                                "(SELECT id FROM messages)"))
                   for t in ("message_keys", "message_keys_pending"))


class Held:
    """A psql session holding statement's locks in an open transaction until release()."""

    def __init__(self, pg, statement):
        self.p = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                                   "postgres", "-d", "netwall", "-X", "-q", "-At", "-v",
                                   "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.p.stdin.write(f"BEGIN;\n{statement};\nSELECT 'held';\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "held"

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("COMMIT;\n\\q\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)


def fill_delivered(store, n, size, changed_sql):
    """n delivered messages of size bytes straight into a PostgreSQL store, message x (1..n)
    last changed at changed_sql (an SQL expression of x)."""
    store.sql("INSERT INTO messages (sending_app, sending_facility, control_id, type, version, "
              "peer, state, received_ms, updated_ms, size, raw, ack, digest) SELECT 'A', 'F', "
              f"'C' || x, 'RDE^O11', '2.5.1', 'p', 'delivered', {changed_sql}, {changed_sql}, "
              f"{size}, convert_to(repeat('x', {size}), 'UTF8'), '\\x00'::bytea, "
              f"sha256(int8send(x::bigint)) FROM generate_series(1, {n}) AS x")


def waiting_on_audit(store):
    """The intakes' sessions waiting for a lock to append to the audit trail."""
    return int(store.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                         "'netwall' AND wait_event_type = 'Lock' AND query LIKE "
                         "'INSERT INTO audit%'"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, intake, postgres):
    return Store(intake, request.param, postgres() if request.param == "postgresql" else None)


def test_retain_days_removes_old_finished_messages_and_nothing_else(store):
    store.send(msg("OLD-D", pid="P-OLD-D"), msg("OLD-I", typ="ORU^R01", pid="P-OLD-I"),
               msg("OLD-R", typ="ADT^A01", pid="P-OLD-R"), msg("OLD-X", pid="P-OLD-X"),
               msg("OLD-F", pid="P-OLD-F"), msg("OLD-RCV", pid="P-OLD-RCV"),
               msg("NEW-D", pid="P-NEW-D"))
    store.it.proc.stop()
    before = store.ids()
    assert len(before) == 7
    for ctrl, state, age in (("OLD-D", "delivered", 40), ("OLD-I", "ignored", 40),
                             ("OLD-R", "rejected", 40), ("OLD-X", "dead", 40),
                             ("OLD-F", "failed", 40), ("OLD-RCV", "received", 40),
                             ("NEW-D", "delivered", 29)):
        store.set(ctrl, state, age * DAY_MS)
    assert store.cli("show", str(before["OLD-D"]), "--reason", "before").returncode == 0

    # without retain_days nothing goes; SIGHUP with it starts a pass at once
    it = store.intake(store=store.spec)
    assert it.metric("netwall_intake_pruned_total") == 0
    assert it.proc.events("pruned") == []
    mark = it.proc.mark()
    it.config.write_text(it.config.read_text().replace("[intake]\n",
                                                       "[intake]\nretain_days = 30\n", 1))
    it.proc.signal(signal.SIGHUP)
    ev = it.proc.wait_event("pruned", since=mark, timeout=20)[0]
    assert ev["messages"] == "3", ev

    left = store.ids()
    assert set(left) == {"OLD-X", "OLD-F", "OLD-RCV", "NEW-D"}
    assert store.orphan_keys() == 0
    for pid, found in (("P-OLD-D", 0), ("P-OLD-I", 0), ("P-OLD-X", 1), ("P-OLD-RCV", 1)):
        assert len(store.json("search", "--patient", pid)) == found, pid
    trail = store.json("audit")
    prune = [a for a in trail if a["action"] == "prune"]
    assert len(prune) == 1 and prune[0]["who"] == "intake" and prune[0]["via"] == "intake"
    assert sorted(prune[0]["message_ids"]) == sorted(before[c] for c in ("OLD-D", "OLD-I",
                                                                           "OLD-R"))
    assert "retain_days=30" in prune[0]["what"]
    shows = [a for a in trail if a["action"] == "show"]   # older records stay
    assert [s["reason"] for s in shows][-1] == "before"
    assert it.metric("netwall_intake_pruned_total") == 3
    assert it.metric("netwall_intake_pruned_bytes_total") == int(ev["bytes"]) > 0
    assert "P-OLD" not in it.proc.text()                  # counts only, never content


def test_retain_bytes_removes_the_least_recently_changed_first(store):
    # the same length every time: every message has the same stored size
    names = [f"B-{i}" for i in range(6)]
    store.send(*(msg(n, pid=f"P{n}") for n in names), msg("B-X", pid="PB-X"),
               msg("B-R", pid="PB-R"))
    store.it.proc.stop()
    for i, n in enumerate(names):          # B-0 the least recently changed, days ago
        store.set(n, "delivered", (10 - i) * DAY_MS)
    store.set("B-X", "dead", 20 * DAY_MS)  # older than all, but a dead letter stays
    size = int(store.sql("SELECT max(size) FROM messages"))
    assert int(store.sql("SELECT min(size) FROM messages")) == size
    # 8 messages stored; at most 4.5 of them: the 4 least recently changed delivered go
    it = store.intake(store=store.spec, intake={"retain_bytes": str(size * 9 // 2)})
    ev = it.proc.wait_event("pruned", timeout=20)[0]
    assert ev["messages"] == "4" and ev["bytes"] == str(4 * size), ev
    assert set(store.ids()) == {"B-4", "B-5", "B-X", "B-R"}
    assert store.orphan_keys() == 0


def test_purge_by_hand_is_audited_and_refuses_what_is_undelivered(store):
    store.send(*(msg(f"P-{i}", pid=f"PP-{i}") for i in range(4)))
    store.it.proc.stop()
    store.set("P-0", "dead", DAY_MS)
    store.set("P-1", "dead", 2 * DAY_MS)
    store.set("P-2", "failed", DAY_MS)        # P-3 stays received
    ids = store.ids()

    r = store.cli("purge", str(ids["P-0"]))
    assert r.returncode == 2 and "--reason" in r.stderr
    for args, state in (((str(ids["P-3"]),), "received"), ((str(ids["P-2"]),), "failed"),
                        (("--state", "received"), None), (("--state", "failed"), None)):
        r = store.cli("purge", *args, "--reason", "try")
        assert r.returncode == 1 and r.stdout == "", (args, r.stdout)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "still to be delivered" in r.stderr
        if state:
            assert f"is {state}" in r.stderr
    r = store.cli("purge", "999999", "--reason", "try")
    assert r.returncode == 1 and "no message 999999" in r.stderr
    assert set(store.ids()) == {"P-0", "P-1", "P-2", "P-3"}
    assert store.json("audit") == []          # nothing purged, nothing recorded

    r = store.cli("purge", str(ids["P-0"]), "--reason", "ticket 17", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["purged"] == 1, r.stderr
    # --until: only the dead last changed before it (P-1, two days ago)
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
    r = store.cli("purge", "--state", "dead", "--until", day, "--reason", "old letters")
    assert r.returncode == 0 and r.stdout.startswith("purged 1 message "), r.stdout
    assert set(store.ids()) == {"P-2", "P-3"}
    assert store.orphan_keys() == 0
    assert store.json("search", "--patient", "PP-0") == []
    trail = store.json("audit")
    purges = [a for a in trail if a["action"] == "purge"]
    assert [(a["message_ids"], a["reason"], a["via"]) for a in purges] == [
        ([ids["P-1"]], "old letters", "cli"), ([ids["P-0"]], "ticket 17", "cli")]
    assert purges[1]["what"] == f"purge {ids['P-0']}"


def test_purge_while_keys_are_merged_leaves_no_key(intake, postgres):
    """PostgreSQL: a purge that meets the indexer moving the message's pending keys (a
    transaction of the same shape held open here) removes the moved keys too."""
    store = Store(intake, "postgresql", postgres())
    store.send(msg("RACE-1", pid="SECRET-PID-77"))
    store.it.proc.stop()
    store.set("RACE-1", "delivered", DAY_MS)
    mid = store.ids()["RACE-1"]
    cols = "kind, value, authority, id_type, message_id"
    store.sql(f"INSERT INTO message_keys_pending ({cols}) SELECT {cols} FROM message_keys "
              f"WHERE message_id = {mid}; DELETE FROM message_keys WHERE message_id = {mid}")
    merge = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(store.pg.port), "-U",
                              "postgres", "-d", "netwall", "-At"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    merge.stdin.write("BEGIN;\n"
                      f"WITH moved AS (DELETE FROM message_keys_pending WHERE message_id = {mid}"
                      f" RETURNING {cols}) INSERT INTO message_keys ({cols}) "
                      "SELECT * FROM moved;\n")
    merge.stdin.flush()
    assert merge.stdout.readline().strip() == "BEGIN"
    assert merge.stdout.readline().strip().startswith("INSERT 0 ")  # moved, not committed
    purge = subprocess.Popen([NETWALL_BIN, "messages", "--store", store.spec, "purge", str(mid),
                              "--reason", "race"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_until(lambda: store.sql("SELECT count(*) FROM pg_stat_activity WHERE "
                                 "application_name = 'netwall' AND wait_event_type = 'Lock'")
               == "1", 20, "the purge waiting on the move's locks")
    merge.stdin.write("COMMIT;\n\\q\n")
    merge.stdin.flush()
    merge.wait(timeout=20)
    out, err = purge.communicate(timeout=30)
    assert purge.returncode == 0 and out.startswith("purged 1 message"), (out, err)
    assert store.orphan_keys() == 0


def test_sqlite_ids_are_not_given_out_again(intake):
    """SQLite gives a new row the highest id + 1: the newest message is never removed, so
    an id named in the audit trail or sent to the EMAR never comes back for another."""
    store = Store(intake, "sqlite", None)
    store.send(msg("ID-1"), msg("ID-2"))
    store.it.proc.stop()
    store.set("ID-1", "dead", DAY_MS)
    store.set("ID-2", "dead", DAY_MS)
    ids = store.ids()
    r = store.cli("purge", str(ids["ID-2"]), "--reason", "newest")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "newest" in r.stderr
    r = store.cli("purge", "--state", "dead", "--reason", "all dead", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["purged"] == 1, r.stderr
    assert set(store.ids()) == {"ID-2"}
    it2 = intake(store=store.spec, name="intake2", route={"accept": "RDE"})
    with it2.client() as c:
        assert ack_code(c.call(msg("ID-3"))) == "AA"
    assert store.ids()["ID-3"] > ids["ID-2"]


def test_idempotency_key_names_the_message_not_its_control_id(intake, emar):
    """A message purged, then another under its control ID: the EMAR gets a key of its own
    (the key holds the message's digest), though nothing stored says the ID was reused;
    the first message sent again after its purge gets its first key."""
    api = emar()
    it = intake(route={"accept": "RDE"}, emar=api)
    first, other = msg("CTL-1", pid="P-FIRST"), msg("CTL-1", pid="P-OTHER")
    with it.client() as c:
        assert ack_code(c.call(first)) == "AA"
        assert ack_code(c.call(msg("CTL-2"))) == "AA"   # the newest, kept
    api.wait_deliveries(2)
    wait_until(lambda: {r["state"] for r in it.messages("list")} == {"delivered"}, 20,
               "both delivered")
    ids = {r["control_id"]: r["id"] for r in it.messages("list")}
    r = subprocess.run([NETWALL_BIN, "messages", "--store", it.store, "purge",
                        str(ids["CTL-1"]), "--reason", "test"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    with it.client() as c:
        assert ack_code(c.call(other)) == "AA"
        assert ack_code(c.call(first)) == "AA"
    api.wait_deliveries(4)
    keys = [d["idempotency_key"] for d in api.deliveries() if d["control_id"] == "CTL-1"]
    assert len(keys) == 3
    assert keys[1] != keys[0] and keys[2] == keys[0], keys


def test_a_reload_narrows_the_pass_under_way(intake, postgres):
    store = Store(intake, "postgresql", postgres())
    store.it.proc.stop()
    now = int(time.time() * 1000)
    # 1500 last changed 50 days ago, then 1500 40 days ago
    fill_delivered(store, 3000, 100,
                   f"(CASE WHEN x <= 1500 THEN {now - 50 * DAY_MS} ELSE {now - 40 * DAY_MS} "
                   "END + x)")
    # the pass's first batch waits to append its audit record until released
    held = Held(store.pg, "LOCK TABLE audit IN SHARE MODE")
    try:
        it = store.intake(store=store.spec, intake={"retain_days": "30"})
        wait_until(lambda: waiting_on_audit(store) == 1, 20, "the first batch")
        mark = it.proc.mark()
        it.config.write_text(it.config.read_text().replace("retain_days = 30",
                                                           "retain_days = 45"))
        it.proc.signal(signal.SIGHUP)
        it.proc.wait_event("reloaded", since=mark, timeout=20)
    finally:
        held.release()
    # the batch under way ends the pass; the next keeps what 45 days keep
    assert it.proc.wait_event("pruned", timeout=30)[0]["messages"] == "200"
    assert it.proc.wait_event("pruned", timeout=30, count=2)[1]["messages"] == "1300"
    assert int(store.sql("SELECT count(*) FROM messages")) == 1500
    assert int(store.sql("SELECT min(updated_ms) FROM messages")) > now - 45 * DAY_MS
    prune = [a for a in store.json("audit") if a["action"] == "prune"]
    assert "retain_days=45" in prune[0]["what"] and "retain_days=30" in prune[-1]["what"]


def test_two_intakes_on_one_postgresql_store_prune_in_turn(intake, postgres):
    store = Store(intake, "postgresql", postgres())
    store.it.proc.stop()
    now = int(time.time() * 1000)
    fill_delivered(store, 2000, 100, f"{now} - x")
    limit = 2000 * 100 // 2
    held = Held(store.pg, "LOCK TABLE audit IN SHARE MODE")
    try:
        its = [store.intake(store=store.spec, name=n, intake={"retain_bytes": str(limit)})
               for n in ("a", "b")]
        # each has begun its pass: its first batch waits, or it found the other pruning
        wait_until(lambda: waiting_on_audit(store) +
                   sum(len(i.proc.events("prune_skipped")) for i in its) == 2, 20,
                   "both passes")
    finally:
        held.release()
    for i in its:
        if not i.proc.events("prune_skipped"):
            i.proc.wait_event("pruned", timeout=30)
    left = int(store.sql("SELECT coalesce(sum(size), 0) FROM messages"))
    assert left >= limit - 200 * 100, f"{limit - left} bytes under retain_bytes"
    assert sum(len(i.proc.events("prune_skipped")) for i in its) == 1


def test_purge_reason_is_bounded_and_batches_are_bounded_by_bytes(store):
    store.it.proc.stop()
    big = 6 * 1024 * 1024
    if store.kind == "sqlite":  # and a sixth, the newest, which SQLite keeps
        store.sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6) "
                  "INSERT INTO messages (sending_app, sending_facility, control_id, type, "
                  "version, peer, state, received_ms, updated_ms, size, raw, ack, digest) "
                  "SELECT 'A', 'F', 'C' || x, 'RDE^O11', '2.5.1', 'p', 'dead', 1, 1, "
                  f"{big}, randomblob({big}), x'00', randomblob(32) FROM c")
    else:
        fill_delivered(store, 5, big, "1")
        store.sql("UPDATE messages SET state = 'dead'")
    r = store.cli("purge", "--state", "dead", "--reason", "x" * 1025)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.strip() == "netwall messages: --reason: at most 1024 bytes", r.stderr
    assert store.json("audit") == []
    r = store.cli("purge", "--state", "dead", "--reason", "x" * 1024)
    assert r.returncode == 0 and r.stdout.startswith("purged 5 messages "), r.stderr
    # 16 MiB a transaction at most: two of these each, then the last one
    purges = [a for a in store.json("audit") if a["action"] == "purge"]
    assert sorted(a["messages"] for a in purges) == [1, 2, 2]
    assert all(a["reason"] == "x" * 1024 for a in purges)


def test_sqlite_file_shrinks_in_batches_of_200(intake):
    it = intake()
    it.proc.stop()
    old = int(time.time() * 1000) - 40 * DAY_MS
    # 202 delivered messages of 16 KiB each, made old: the newest is kept (its id must not
    # come back), the other 201 are one over a transaction's 200
    subprocess.run(["sqlite3", it.store,
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                    "WHERE x < 202) INSERT INTO messages (sending_app, sending_facility, "
                    "control_id, type, version, peer, state, received_ms, updated_ms, size, "
                    "raw, ack, digest) SELECT 'A', 'F', 'C' || x, 'RDE^O11', '2.5.1', 'p', "
                    f"'delivered', {old}, {old}, 16384, randomblob(16384), x'00', "
                    "randomblob(32) FROM c"], check=True, timeout=60)
    assert subprocess.run(["sqlite3", it.store, "PRAGMA auto_vacuum"], capture_output=True,
                          text=True, check=True).stdout.strip() == "2"   # incremental
    full = os.path.getsize(it.store)
    assert full > 202 * 16384
    it2 = intake(store=it.store, intake={"retain_days": "30"})
    ev = it2.proc.wait_event("pruned", timeout=30)[0]
    assert ev["messages"] == "201" and ev["bytes"] == str(201 * 16384)
    # the file itself shrinks once the log is checkpointed (the pass ends with one)
    wait_until(lambda: os.path.getsize(it.store) < full // 4, 30, "the file shrinks")
    prune = [a for a in it2.messages("audit") if a["action"] == "prune"]
    assert sorted(a["messages"] for a in prune) == [1, 200]


@pytest.mark.parametrize("line, error", [
    ("retain_days = 36501", "retain_days: want days between 0 and 36500"),
    ("retain_days = -1", "retain_days: want days between 0 and 36500"),
    ("retain_days = 30d", "retain_days: want days between 0 and 36500"),
    ("retain_bytes = 1125899906842625", "retain_bytes: want a whole number between 0 and "
                                        "1125899906842624"),
])
def test_retention_keys_are_checked(tmp_path, line, error):
    bad = tmp_path / "bad.ini"
    bad.write_text(f"[intake]\nlisten = 127.0.0.1:1\nstore = s.db\n{line}\n")
    r = netwall("check", bad)
    assert r.returncode != 0 and f"bad.ini:4: {error}" in r.stderr, r.stderr
    good = tmp_path / "good.ini"
    good.write_text("[intake]\nlisten = 127.0.0.1:1\nstore = s.db\nretain_days = 0.5\n"
                    "retain_bytes = 1125899906842624\n")
    r = netwall("check", good)
    assert r.returncode == 0, r.stderr

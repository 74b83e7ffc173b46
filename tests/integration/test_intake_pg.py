"""The intake on a real PostgreSQL: the same pipeline, several intake processes sharing
one queue without delivering a message twice, and a database that goes away."""

import subprocess
import threading

from conftest import wait_until
from hl7util import ack_code, emar, field, intake, msg, pg_url  # noqa: F401


def test_pipeline_on_postgresql(intake, emar, postgres):
    pg = postgres()
    api = emar()
    it = intake(store=pg_url(pg), emar=api)
    with it.client() as c:
        first = c.call(msg("PG-1"))
        assert ack_code(first) == "AA"
        assert c.call(msg("PG-1")) == first               # duplicate: the same ACK
        assert ack_code(c.call(msg("PG-2", typ="ORU^R01"))) == "AA"   # ignored
        nak = c.call(msg("PG-3").replace(b"|P|2.5.1", b"|P|3.1"))
        assert ack_code(nak) == "AR"
    api.wait_deliveries(1)
    rows = {r["control_id"]: r for r in it.rows()}
    assert set(rows) == {"PG-1", "PG-2"}
    wait_until(lambda: {r["control_id"]: r["state"] for r in it.rows()}["PG-1"] == "delivered",
               20, "PG-1 delivered")
    assert rows["PG-2"]["state"] == "ignored"


def test_two_intakes_share_one_queue_without_double_delivery(intake, emar, postgres):
    pg = postgres()
    url = pg_url(pg)
    api = emar()
    api.control("ok", delay=0.01)     # slow enough that both workers have jobs in flight
    a = intake(store=url, emar=api, deliver={"concurrency": "8"})
    b = intake(store=url, emar=api, deliver={"concurrency": "8"})
    n = 600

    def send(it, lo, hi):
        with it.client() as c:
            for i in range(lo, hi):
                assert ack_code(c.call(msg(f"Q-{i}"))) == "AA"
    ts = [threading.Thread(target=send, args=(x, lo, lo + n // 4))
          for x, lo in ((a, 0), (b, n // 4), (a, n // 2), (b, 3 * n // 4))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    api.wait_deliveries(n, timeout=60)
    got = [d["control_id"] for d in api.deliveries()]
    assert len(got) == n and len(set(got)) == n, "every message delivered exactly once"
    assert a.metric("netwall_intake_delivered_total") > 0
    assert b.metric("netwall_intake_delivered_total") > 0


def test_database_down_answers_ae(intake, postgres):
    pg = postgres()
    it = intake(store=pg_url(pg))
    with it.client() as c:
        assert ack_code(c.call(msg("DOWN-0"))) == "AA"
        pg.proc.stop()
        ack = c.call(msg("DOWN-1"))
        assert ack_code(ack) == "AE" and field(ack, "MSA", 2) == "DOWN-1"
        assert field(ack, "ERR", 3).split("^")[0] == "207"
    it.proc.wait_event("store_failed")
    assert it.metric("netwall_intake_store_failures_total") >= 1

"""Duplicates, and delivery to the EMAR's API: delivered, retried, dead-lettered, replayed."""

import time

from conftest import wait_until
from hl7util import ack_code, emar, field, frame, intake, load_sample, msg  # noqa: F401


def state_of(it, ctrl):
    for r in it.rows():
        if r["control_id"] == ctrl:
            return r
    return None


def wait_state(it, ctrl, state, timeout=20):
    return wait_until(lambda: (r := state_of(it, ctrl)) and r["state"] == state and r,
                      timeout, f"message {ctrl} to be {state}")


def test_duplicate_gets_the_same_ack_and_no_second_row(intake):
    it = intake()
    m = msg("DUP-1")
    with it.client() as c:
        first = c.call(m)
        second = c.call(m)
    assert ack_code(first) == "AA"
    assert second == first, "a duplicate is answered with the stored original ACK"
    assert len(it.rows()) == 1
    assert it.metric("netwall_intake_duplicates_total") == 1


def test_retransmission_after_a_lost_ack(intake):
    """The sender's connection dies before it reads the ACK; it reconnects and sends the
    same message again: one row, and the same ACK as the one it lost."""
    it = intake()
    m = msg("LOST-1")
    c = it.client()
    c.send(m)
    wait_until(lambda: state_of(it, "LOST-1"), 10, "the message to be stored")
    c.close()                         # the ACK is lost with the connection
    with it.client() as c2:
        again = c2.call(m)
    (row,) = it.rows()
    stored_ack = it.messages("show", str(row["id"]))["ack"].encode()
    assert again == stored_ack
    assert field(again, "MSA", 2) == "LOST-1" and ack_code(again) == "AA"


def test_duplicates_within_one_commit(intake):
    """Many connections send the same message at once: one row, one ACK for all."""
    import threading
    it = intake()
    m = msg("RACE-1")
    acks = []

    def send():
        with it.client() as c:
            acks.append(c.call(m))
    ts = [threading.Thread(target=send) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert len(acks) == 16 and len(set(acks)) == 1
    assert len(it.rows()) == 1


def test_accepted_messages_are_delivered_as_json(intake, emar):
    api = emar()
    it = intake(emar=api)
    with it.client() as c:
        assert ack_code(c.call(load_sample("rde_o11_v251_nhapi_exactdata.hl7"))) == "AA"
        assert ack_code(c.call(msg("D-2", typ="ADT^A08"))) == "AA"
        assert ack_code(c.call(msg("D-3", typ="ORU^R01"))) == "AA"   # ignored: not sent
    got = api.wait_deliveries(2)
    time.sleep(0.5)
    got = api.deliveries()
    assert sorted(d["control_id"] for d in got) == ["D-2", "EF010000000071000000_4"]
    assert all(d["idempotency_key"] for d in got)
    wait_state(it, "D-2", "delivered")
    wait_state(it, "EF010000000071000000_4", "delivered")
    assert state_of(it, "D-3")["state"] == "ignored"
    it.admin.wait_metric("netwall_intake_delivered_total", lambda v: v == 2, 10)
    assert it.metric("netwall_intake_queue_depth") is not None


def test_5xx_is_retried_then_delivered(intake, emar):
    api = emar()
    api.control("503", count=2)
    it = intake(emar=api)
    with it.client() as c:
        assert ack_code(c.call(msg("R5-1"))) == "AA"
    r = wait_state(it, "R5-1", "delivered")
    assert r["attempts"] == 3
    assert api.stats()["by_status"].get("503") == 2
    assert it.metric("netwall_intake_delivery_failures_total") == 2


def test_4xx_is_dead_lettered_at_once_and_replayed(intake, emar):
    api = emar()
    api.control("422", count=1)
    it = intake(emar=api)
    with it.client() as c:
        assert ack_code(c.call(msg("R4-1"))) == "AA"
    r = wait_state(it, "R4-1", "dead")
    assert r["attempts"] == 1 and r["http_status"] == 422
    assert r["detail"], "the response is recorded"
    it.proc.wait_event("delivery_dead")
    assert it.messages("replay", "--dead") == {"replayed": 1}
    r = wait_state(it, "R4-1", "delivered")
    assert len(api.deliveries()) == 1


def test_hanging_api_times_out_and_runs_out_of_attempts(intake, emar):
    api = emar(mode="hang")
    it = intake(emar=api, deliver={"timeout": "0.3", "max_attempts": "3"})
    with it.client() as c:
        assert ack_code(c.call(msg("H-1"))) == "AA"
    r = wait_state(it, "H-1", "dead", timeout=30)
    assert r["attempts"] == 3 and r["http_status"] == 0
    assert api.deliveries() == []


def test_api_down_then_up(intake, emar, procs, tmp_path):
    """Connection refused is a network error: retried until the API comes up."""
    from conftest import free_port
    port = free_port()
    it = intake(deliver={"url": f"http://127.0.0.1:{port}/x", "max_attempts": "100"})
    with it.client() as c:
        assert ack_code(c.call(msg("UP-1"))) == "AA"
    wait_state(it, "UP-1", "failed")
    api = emar()
    # point a second intake at the live API on the same store: it takes the job over
    it2 = intake(store=it.store, emar=api)
    wait_state(it2, "UP-1", "delivered", timeout=30)
    assert [d["control_id"] for d in api.deliveries()] == ["UP-1"]


NGINX_API = """\
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format key '$http_idempotency_key $status';
    access_log {d}/access.log key;
    client_body_temp_path {d}/body;
    server {{
        listen 127.0.0.1:{port};
        location / {{ client_body_buffer_size 64k; return 200 '{{"ok":true}}'; }}
    }}
}}
"""


def test_burst_to_a_fast_api_is_delivered_once_each(intake, procs, tmp_path):
    """nginx as an EMAR API that answers at once: a burst of 3,000 messages from 16
    connections arrives complete, each message once. (A worker that slept on idle sockets
    with finished transfers unreaped took about a second per 24 messages here.)"""
    import threading
    from conftest import free_port
    port = free_port()
    d = tmp_path / "api"
    d.mkdir()
    (d / "nginx.conf").write_text(NGINX_API.format(d=d, port=port))
    procs.start("nginx-api", ["nginx", "-p", d, "-c", d / "nginx.conf"])
    from conftest import wait_port
    wait_port(port)
    it = intake(deliver={"url": f"http://127.0.0.1:{port}/emar", "poll": "30",
                         "concurrency": "2"})
    n, senders = 3000, 16

    def send(k):
        with it.client() as c:
            for i in range(k, n, senders):
                assert ack_code(c.call(msg(f"F-{i}"))) == "AA"
    ts = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    it.admin.wait_metric("netwall_intake_delivered_total", lambda v: v == n, 60)
    keys = [line.split()[0] for line in (d / "access.log").read_text().splitlines()]
    assert len(keys) == n and len(set(keys)) == n

"""Durability: nothing acknowledged is lost, nothing is stored twice, whatever happens to
the intake (kill -9 under load) or to its disk (full)."""

import os
import random
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import SANITIZED, wait_until
from hl7util import ack_code, field, intake, msg  # noqa: F401

SENDERS = 16
TOTAL = 20_000


class Sender(threading.Thread):
    """Sends its messages in order, one at a time as MLLP requires; on any failure it
    reconnects and sends the same message again until it is acknowledged AA."""

    def __init__(self, port, ids, deadline):
        super().__init__(daemon=True)
        self.port = port
        self.ids = ids
        self.deadline = deadline
        self.acked = []           # control IDs, in the order their AA arrived
        self.lock = threading.Lock()
        self.error = None
        self.retransmits = 0

    def connect(self):
        while time.monotonic() < self.deadline:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                s.settimeout(10)
                return s
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("could not reconnect")

    def run(self):
        try:
            s, buf = self.connect(), b""
            for ctrl in self.ids:
                m = b"\x0b" + msg(ctrl) + b"\x1c\r"
                while True:
                    try:
                        s.sendall(m)
                        while b"\x1c" not in buf:
                            chunk = s.recv(65536)
                            if not chunk:
                                raise ConnectionError("closed")
                            buf += chunk
                        ack, _, buf = buf.partition(b"\x1c")
                        buf = buf.lstrip(b"\r")
                        ack = ack.lstrip(b"\x0b")
                        if ack_code(ack) == "AA" and field(ack, "MSA", 2) == ctrl:
                            with self.lock:
                                self.acked.append(ctrl)
                            break
                        raise ConnectionError(f"answer {ack_code(ack)}")
                    except (OSError, ConnectionError):
                        if time.monotonic() > self.deadline:
                            raise
                        self.retransmits += 1
                        s.close()
                        s, buf = self.connect(), b""
            s.close()
        except Exception as e:  # noqa: BLE001
            self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.acked)


def test_kill_9_under_load_loses_nothing_acknowledged(intake):
    it = intake(intake={"max_connections": "64"})
    ids = [f"K{n:05d}" for n in range(TOTAL)]
    deadline = time.monotonic() + (600 if SANITIZED else 240)
    senders = [Sender(it.port, ids[i::SENDERS], deadline) for i in range(SENDERS)]
    for s in senders:
        s.start()
    # kill at a random moment once the load is well under way
    target = random.randrange(TOTAL // 10, TOTAL // 2)
    wait_until(lambda: sum(len(s.acked) for s in senders) >= target, 120,
               f"{target} acknowledged messages")
    time.sleep(random.random() * 0.2)
    it.proc.kill()
    acked_before = set()
    for s in senders:
        acked_before.update(s.snapshot())
    stored = {r["control_id"] for r in it.rows()}
    missing = acked_before - stored
    assert not missing, f"{len(missing)} acknowledged messages are not in the store"
    it.start()
    for s in senders:
        s.join(max(1, deadline - time.monotonic()))
    errors = [s.error for s in senders if s.error]
    assert not errors, errors
    assert sum(s.retransmits for s in senders) >= 1, "the kill interrupted nobody"
    rows = it.rows()
    ctrl = [r["control_id"] for r in rows]
    assert len(ctrl) == TOTAL, f"{len(ctrl)} rows for {TOTAL} messages"
    assert set(ctrl) == set(ids)
    assert it.counts()["states"]["received"] == TOTAL


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs, unmounted at the end."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_full_disk_answers_ae_and_acknowledges_nothing_unstored(intake, small_fs):
    it = intake(store=str(small_fs / "intake.db"))
    with it.client() as c:
        assert ack_code(c.call(msg("FULL-0"))) == "AA"
        # take all but ~300 KiB of the filesystem
        free = shutil.disk_usage(small_fs).free
        filler = small_fs / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 300 * 1024))
        answers = {}
        for i in range(1, 400):
            ctrl = f"FULL-{i}"
            ack = c.call(msg(ctrl, segments=["NTE|1||" + "n" * 8000]))
            answers[ctrl] = ack_code(ack)
            if answers[ctrl] == "AE":
                assert field(ack, "ERR", 3).split("^")[0] == "207"
                break
        assert "AE" in answers.values(), "the disk never filled"
        it.proc.wait_event("store_failed")
        stored = {r["control_id"] for r in it.rows()}
        accepted = {k for k, v in answers.items() if v == "AA"} | {"FULL-0"}
        assert accepted <= stored, "every AA is in the store"
        assert not ({k for k, v in answers.items() if v == "AE"} & stored)
        # space comes back: the sender's retransmission is accepted
        os.unlink(filler)
        last = max((k for k, v in answers.items() if v == "AE"), key=lambda k: int(k[5:]))
        ack = c.call(msg(last, segments=["NTE|1||" + "n" * 8000]))
        assert ack_code(ack) == "AA"
    assert it.metric("netwall_intake_store_failures_total") >= 1

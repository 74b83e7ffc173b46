"""The message store's unit tests against a real PostgreSQL.

tests/unit/test_store.c runs every store case against SQLite, and against PostgreSQL
too when NETWALL_TEST_PG_URL names a database. This starts a PostgreSQL 15, creates an
empty database and runs that binary (the release build, or the sanitizer build when
NETWALL_SANITIZED=1; NETWALL_TEST_STORE_BIN overrides either)."""

import json
import os
import re
import subprocess

import pytest

from conftest import NETWALL_BIN, REPO, SANITIZED, wait_until
from hl7util import ack_code, intake, msg  # noqa: F401


def store_test_bin():
    default = REPO / "build" / ("asan" if SANITIZED else "") / "tests" / "test_store"
    path = os.environ.get("NETWALL_TEST_STORE_BIN", str(default))
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"store unit test binary not found at {path}: build it with "
                    f"`make {os.path.relpath(path, REPO)}`", pytrace=False)
    return path


def test_store_unit_tests_on_postgresql(postgres):
    binary = store_test_bin()
    pg = postgres()
    made = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                           "-X", "-At", "-c", "CREATE DATABASE netwall_store"],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr

    env = dict(os.environ)
    env["NETWALL_TEST_PG_URL"] = (f"postgresql://postgres@127.0.0.1:{pg.port}/netwall_store"
                                  "?connect_timeout=10")
    res = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=600,
                         stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]

    # Both groups ran, and the PostgreSQL one ran every case it planned.
    planned = [int(n) for n in re.findall(r"^\[==========\] Running (\d+) test", res.stdout, re.M)]
    passed = [int(n) for n in re.findall(r"^\[  PASSED  \] (\d+) test", res.stderr, re.M)]
    assert len(planned) == 2, f"expected the SQLite and the PostgreSQL group:\n{out[-3000:]}"
    assert passed == planned, out[-3000:]
    assert "FAILED" not in out and "ERROR" not in out, out[-3000:]


def test_opening_a_current_store_waits_for_no_writer(intake, postgres):
    """Opening a store at this version only reads its version: no schema statement (which
    locks the tables) waits behind an open write, and the intake's ACKs go on meanwhile."""
    pg = postgres()
    psql = ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-X", "-q", "-At"]
    subprocess.run(psql + ["-c", "CREATE DATABASE netwall"], check=True, capture_output=True)
    url = f"postgresql://postgres@127.0.0.1:{pg.port}/netwall"
    it = intake(store=url, route={"accept": "RDE"})
    with it.client() as c:
        assert ack_code(c.call(msg("W-1"))) == "AA"
    held = subprocess.Popen(psql + ["-d", "netwall"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        held.stdin.write("BEGIN;\nUPDATE messages SET detail = detail WHERE control_id = "
                         "'W-1';\nSELECT 'held';\n")
        held.stdin.flush()
        assert held.stdout.readline().strip() == "held"
        # answered while the write is open; not a wait for a lock (that waits till COMMIT)
        count = subprocess.Popen([NETWALL_BIN, "messages", "--store", url, "count", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def answered_or_waiting():
            if count.poll() is not None:
                return "answered"
            locked = subprocess.run(psql + ["-d", "netwall", "-c", "SELECT left(query, 60) "
                                            "FROM pg_stat_activity WHERE application_name = "
                                            "'netwall' AND wait_event_type = 'Lock'"],
                                    capture_output=True, text=True, timeout=30).stdout.strip()
            return locked and f"waiting: {locked}"
        assert wait_until(answered_or_waiting, 30, "the count") == "answered"
        out, errs = count.communicate(timeout=30)
        assert count.returncode == 0, errs
        assert json.loads(out)["total"] == 1
        with it.client() as c:
            assert ack_code(c.call(msg("W-2"))) == "AA"
        assert held.poll() is None
    finally:
        held.stdin.write("COMMIT;\n\\q\n")
        held.stdin.flush()
        held.wait(timeout=30)

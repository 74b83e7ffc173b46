"""The message store's unit tests against a real PostgreSQL.

tests/unit/test_store.c runs every store case against SQLite, and against PostgreSQL
too when NETWALL_TEST_PG_URL names a database. This starts a PostgreSQL 15, creates an
empty database and runs that binary (the release build, or the sanitizer build when
NETWALL_SANITIZED=1; NETWALL_TEST_STORE_BIN overrides either)."""

import os
import re
import subprocess

import pytest

from conftest import REPO, SANITIZED


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

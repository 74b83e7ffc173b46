"""Redis and PostgreSQL clients through the wall."""

import hashlib
import os
import re
import subprocess

from conftest import MiB


def redis_cli(port, *args, input=None, timeout=30):
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          input=input, capture_output=True, timeout=timeout)


def redis_info_stat(port, key):
    out = redis_cli(port, "INFO", "stats").stdout.decode()
    m = re.search(rf"^{key}:(\d+)", out, re.M)
    assert m, out
    return int(m.group(1))


def test_redis_set_get(wall, redis):
    r = redis()
    gw, _ = wall.stack(r.addr, "redis")
    port = gw.port("redis")
    value = os.urandom(12).hex()

    set_ = redis_cli(port, "SET", "wall:key", value)
    get = redis_cli(port, "GET", "wall:key")

    assert set_.returncode == 0 and set_.stdout.strip() == b"OK", set_
    assert get.returncode == 0 and get.stdout.strip().decode() == value, get
    # It really went to this redis: read it back directly.
    assert redis_cli(r.port, "GET", "wall:key").stdout.strip().decode() == value


def test_redis_large_value_round_trip(wall, redis):
    r = redis()
    gw, _ = wall.stack(r.addr, "redis")
    port = gw.port("redis")
    value = os.urandom(4 * MiB).hex().encode()     # 8 MiB of text

    set_ = redis_cli(port, "-x", "SET", "big", input=value)
    assert set_.stdout.strip() == b"OK", set_
    got = redis_cli(port, "--no-raw", "STRLEN", "big").stdout.strip()
    assert got == f"(integer) {len(value)}".encode()
    got = redis_cli(port, "GET", "big").stdout.rstrip(b"\n")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(value).hexdigest()


def test_redis_benchmark(wall, redis):
    r = redis()
    gw, _ = wall.stack(r.addr, "redis")
    before = redis_info_stat(r.port, "total_commands_processed")

    res = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(gw.port("redis")),
                          "-t", "ping,set,get", "-n", "20000", "-c", "50", "-q"],
                         capture_output=True, text=True, timeout=180)
    out = res.stdout + res.stderr
    summary = [ln.rsplit("\r", 1)[-1] for ln in out.splitlines() if "requests per second" in ln]
    print("\n".join(summary))

    assert res.returncode == 0, out
    assert "error" not in out.lower(), out
    for test in ("PING_INLINE", "PING_MBULK", "SET", "GET"):
        assert re.search(rf"^{test}: [\d.]+ requests per second", out, re.M), f"{test} missing:\n{out}"
    # 4 x 20000 commands reached the real redis (plus the CONFIG GET it sends first).
    assert redis_info_stat(r.port, "total_commands_processed") - before >= 80000


def psql(port, sql, timeout=60):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                           "-X", "-At", "-c", sql], capture_output=True, timeout=timeout)


def test_psql_select_1(wall, postgres):
    pg = postgres()
    gw, _ = wall.stack(pg.addr, "pg")

    r = psql(gw.port("pg"), "select 1")

    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"1\n"


def test_psql_large_result_is_exact(wall, postgres):
    pg = postgres()
    gw, _ = wall.stack(pg.addr, "pg")
    n = 100000

    r = psql(gw.port("pg"), f"select i, md5(i::text) from generate_series(1, {n}) i")

    assert r.returncode == 0, r.stderr.decode()
    want = "".join(f"{i}|{hashlib.md5(str(i).encode()).hexdigest()}\n" for i in range(1, n + 1))
    assert len(r.stdout) == len(want)
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(want.encode()).hexdigest()

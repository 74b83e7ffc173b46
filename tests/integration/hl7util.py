"""HL7 v2 / MLLP helpers for the intake tests: framing, a raw-socket client, message
builders, ACK reading, and the Intake and Emar process wrappers.

Everything here is written independently of netwall's C code, so the tests check the
daemon against a second reading of the standard."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from pathlib import Path

from conftest import (NETWALL_BIN, REPO, Admin, admin_answers, free_port, ini_text,
                      wait_until)

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
DATA = REPO / "tests" / "data"
EMAR_PY = Path(__file__).resolve().parent / "helpers" / "emar.py"


def pg_url(pg, db="netwall"):
    """Creates database db on the test's PostgreSQL pg; its URL for netwall's store."""
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-c",
                        f"CREATE DATABASE {db}"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return f"postgresql://postgres@127.0.0.1:{pg.port}/{db}"


def frame(msg: bytes) -> bytes:
    return VT + msg + FS + CR


def load_sample(name: str) -> bytes:
    """A sample message from tests/data with segments ending in CR."""
    raw = (DATA / name).read_bytes()
    raw = raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return raw


def msg(ctrl, typ="RDE^O11", app="PHARM", fac="ST-MARY", version="2.5.1", pid="123456",
        extra_msh="", segments=None):
    """A small but realistic message; extra_msh is appended after MSH-12 (e.g. "|||AL|NE")."""
    t = typ.split("^")
    msh9 = f"{t[0]}^{t[1]}^{t[0]}_{t[1]}" if len(t) > 1 else t[0]
    segs = [f"MSH|^~\\&|{app}|{fac}|EMAR|WARD-3|20261122101500||{msh9}|{ctrl}|P|{version}"
            + extra_msh,
            f"PID|1||{pid}^^^HOSP^MR||DOE^JANE^Q||19600101|F"]
    if segments is None:
        segments = ["ORC|NW|ORD-" + str(ctrl) + "|||||^^^20261122",
                    "RXE|^BID^HL70335|00093-7146^Metoprolol 25 mg tablet^NDC|25||mg"]
    segs += segments
    return ("\r".join(segs) + "\r").encode()


def segments(data: bytes):
    return [s for s in data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r") if s]


def field(data: bytes, seg: str, n: int):
    """Field n of the first segment named seg (MSH counted as the standard does)."""
    for s in segments(data):
        if s[:3].decode() != seg:
            continue
        fs = s[3:4]
        parts = s.split(fs)
        if seg == "MSH":
            if n == 1:
                return fs.decode()
            idx = n - 1
        else:
            idx = n
        return parts[idx].decode("latin-1") if idx < len(parts) else ""
    return None


def ack_code(ack: bytes):
    return field(ack, "MSA", 1)


class MllpClient:
    """One MLLP connection: send a message, read its ACK frame."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send(self, m: bytes):
        self.sock.sendall(frame(m))

    def read_frame(self, timeout=10):
        """The next frame's content, or None if the peer closed first."""
        self.sock.settimeout(timeout)
        while True:
            start = self.buf.find(VT)
            end = self.buf.find(FS, start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0:
                body = self.buf[start + 1:end]
                self.buf = self.buf[end + 1:]
                if self.buf.startswith(CR):
                    self.buf = self.buf[1:]
                return body
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def call(self, m: bytes, timeout=10):
        self.send(m)
        return self.read_frame(timeout)

    def closed_within(self, seconds):
        """True if the peer closes the connection within `seconds` (no more frames)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


INTAKE_DEFAULTS = {"log_level": "info", "drain_timeout": "2"}


class Intake:
    def __init__(self, procs, workdir, *, store=None, name="intake", intake=None, route=None,
                 deliver=None, emar=None, port=None, start=True):
        self.procs = procs
        self.dir = Path(workdir)
        self.name = name
        self.port = port or free_port()
        self.admin = Admin(free_port())
        self.store = store or str(self.dir / f"{name}.db")
        opts = {"listen": f"127.0.0.1:{self.port}", "store": self.store,
                "admin": f"127.0.0.1:{self.admin.port}", **INTAKE_DEFAULTS}
        opts.update(intake or {})
        sections = [("intake", list(opts.items()))]
        if route is not None:
            sections.append(("route", list(route.items())))
        d = dict(deliver or {})
        if emar is not None:
            d.setdefault("url", emar.url)
        if d:
            d.setdefault("backoff_min", "0.05")
            d.setdefault("backoff_max", "0.2")
            d.setdefault("poll", "0.2")
            sections.append(("deliver", list(d.items())))
        self.config = self.dir / f"{name}.ini"
        self.config.write_text(ini_text(sections))
        self.proc = None
        if start:
            self.start()

    def start(self, wait=True):
        self.proc = self.procs.start(self.name, [NETWALL_BIN, "intake", "-c", self.config],
                                     check_exit=True)
        if wait:
            def ready():
                if not self.proc.alive():
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                         f"{self.proc.tail(40)}")
                return admin_answers(self.admin.port)
            wait_until(ready, 15, f"{self.name} admin listener")
        return self

    def client(self, **kw):
        return MllpClient(self.port, **kw)

    def metric(self, name, default=None, **labels):
        return self.admin.metric(name, default, **labels)

    def admin_status(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin.port}/status",
                                    timeout=10) as r:
            return r.read()

    def messages(self, *args, check=True):
        """netwall messages --store STORE ARGS --json, parsed."""
        r = subprocess.run([NETWALL_BIN, "messages", "--store", self.store, *args, "--json"],
                           capture_output=True, text=True, timeout=30)
        if check:
            assert r.returncode == 0, f"netwall messages {args}: {r.returncode} {r.stderr}"
        return json.loads(r.stdout) if r.stdout.strip() else None

    def rows(self, **filters):
        args = ["list", "--limit", "0"]
        for k, v in filters.items():
            args += [f"--{k}", str(v)]
        return self.messages(*args)

    def counts(self):
        return self.messages("count")


class Emar:
    """The stand-in EMAR API (tests/integration/helpers/emar.py)."""

    def __init__(self, procs, workdir, mode="ok"):
        self.port = free_port()
        self.log = Path(workdir) / f"emar-{self.port}.jsonl"
        self.proc = procs.start("emar", [sys.executable, EMAR_PY, "--port", self.port,
                                         "--log", self.log, "--mode", mode])
        self.proc.wait_log(r"ready port=", timeout=10)
        self.url = f"http://127.0.0.1:{self.port}/hl7/messages"

    def _req(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read() or b"null")

    def control(self, mode, count=None, delay=None):
        body = {"mode": mode}
        if count is not None:
            body["count"] = count
        if delay is not None:
            body["delay"] = delay
        return self._req("/_control", body)

    def stats(self):
        return self._req("/_stats")

    def deliveries(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait_deliveries(self, n, timeout=20):
        return wait_until(lambda: len(self.deliveries()) >= n and self.deliveries(), timeout,
                          f"{n} deliveries at the EMAR stand-in")


@pytest.fixture
def intake(procs, tmp_path):
    """Factory: intake(**opts) -> a running Intake (SQLite in the test's directory)."""
    n = [0]

    def start(**kw):
        n[0] += 1
        kw.setdefault("name", "intake" if n[0] == 1 else f"intake{n[0]}")
        return Intake(procs, tmp_path, **kw)
    return start


@pytest.fixture
def emar(procs, tmp_path):
    """Factory: emar(mode="ok") -> a running stand-in EMAR API."""
    return lambda **kw: Emar(procs, tmp_path, **kw)

"""Integration tests for netwall's gateway and agent.

How to run (from the repository root, as root):

    make
    python3 -m pytest -q tests/integration

The python3 used must have pytest (Debian: /usr/bin/python3 with python3-pytest).

Every test starts its own real processes (netwall gateway, netwall agent and a
target: nginx, redis-server, PostgreSQL or a small Python server) on loopback
high ports (127.0.0.1, 127.0.0.2 or ::1 only), and stops them by PID when it
ends. test_netns.py also builds two private network namespaces joined by a veth
pair with TEST-NET addresses that exist only inside them.

Environment:
    NETWALL_BIN        the binary to test (default: <repo>/build/netwall)
    NETWALL_SANITIZED  1 for an ASan/UBSan build: memory-growth assertions are
                       skipped (the sanitizer keeps freed memory in quarantine)

When a test fails, the last lines of every process log it started (stderr of
gateway and agent, target logs) are added to the report; the full logs stay
under pytest's basetemp directory (printed with each log).

Needs: nginx, redis-server and redis-tools, postgresql 15, curl, openssl,
iproute2 and nftables (netns test only).
"""

import ctypes
import hashlib
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NETWALL_BIN = os.environ.get("NETWALL_BIN", str(REPO / "build" / "netwall"))
SANITIZED = os.environ.get("NETWALL_SANITIZED") == "1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Test hooks (NETWALL_TEST_*) exist only in the test build (build/asan): a release binary
# must not carry them, and the tests that need one run against the test build alone.
HAS_TEST_HOOKS = b"NETWALL_TEST_STREAM_ID" in Path(NETWALL_BIN).read_bytes() \
    if Path(NETWALL_BIN).exists() else False
needs_test_hooks = pytest.mark.skipif(not HAS_TEST_HOOKS,
                                      reason="test hooks exist only in the test build")
FP_RE = re.compile(r"^[0-9a-f]{64}$")
MiB = 1 << 20


# ---------------------------------------------------------------- tools

# The Debian package of each program or file a test starts (scripts/deps.sh installs them
# all), so a missing one fails its test with what to install, never silently skips.
PACKAGE_OF = {
    "nginx": "nginx", "redis-server": "redis-server", "redis-cli": "redis-tools",
    "redis-benchmark": "redis-tools", "psql": "postgresql-client", "curl": "curl",
    "openssl": "openssl", "ip": "iproute2", "nft": "nftables", "mllp_send": "python3-hl7",
    "sqlite3": "sqlite3", "irssi": "irssi", "weechat-headless": "weechat-headless",
    "tmux": "tmux", "chromium": "chromium", "ctags": "universal-ctags", "man": "man-db", "groff": "groff-base",
    "swanctl": "strongswan-swanctl", "/usr/lib/ipsec/charon": "strongswan-charon",
    "wg": "wireguard-tools", "wg-quick": "wireguard-tools", "wireguard-go": "wireguard-go",
    "prometheus": "prometheus", "promtool": "prometheus", "docker-compose": "docker-compose",
    "clang": "clang", "prlimit": "util-linux",
    str(PG_BIN / "postgres"): "postgresql", str(PG_BIN / "initdb"): "postgresql",
}


def require(*tools):
    """Fail (not skip) naming the Debian package when a program or file a test needs is
    missing: a skipped test would hide a missing install step."""
    for t in tools:
        if shutil.which(str(t)) is None and not Path(t).exists():
            pkg = PACKAGE_OF.get(str(t), PACKAGE_OF.get(Path(t).name))
            raise AssertionError(f"{t} is missing: install the Debian package {pkg or '?'} "
                                 "(scripts/deps.sh names it)")


# ---------------------------------------------------------------- generic waits

def wait_until(fn, timeout, what, interval=0.05):
    """Call fn until it returns a truthy value; return it. Fail after timeout
    seconds with a message naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# ---------------------------------------------------------------- ports

def _ephemeral_low():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except OSError:
        return 32768


_port_lock = threading.Lock()
_used_ports = set()
_PORT_LOW = 15000
_PORT_HIGH = max(_PORT_LOW + 2000, min(_ephemeral_low(), 32768))
if os.environ.get("NETWALL_TEST_PORTS"):  # "LOW-HIGH": a range of one's own
    _PORT_LOW, _PORT_HIGH = map(int, os.environ["NETWALL_TEST_PORTS"].split("-"))
_next_port = [random.randrange(_PORT_LOW, _PORT_HIGH)]


def _ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAVE_IPV6 = _ipv6_available()


def _bindable(port):
    addrs = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "127.0.0.2")]
    if HAVE_IPV6:
        addrs.append((socket.AF_INET6, "::1"))
    for fam, host in addrs:
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        except OSError:
            return False
    return True


def free_port():
    """A TCP port free on 127.0.0.1, 127.0.0.2 and ::1, taken below the
    kernel's ephemeral range (so client sockets do not grab it before the
    server binds) and never handed out twice in one run."""
    with _port_lock:
        span = _PORT_HIGH - _PORT_LOW
        for _ in range(span):
            p = _next_port[0]
            _next_port[0] = _PORT_LOW + (p + 1 - _PORT_LOW) % span
            if p in _used_ports:
                continue
            if _bindable(p):
                _used_ports.add(p)
                return p
    raise RuntimeError("no free port")


def wait_port(port, host="127.0.0.1", timeout=10):
    """Wait until a TCP connect to host:port succeeds (for targets only: a
    connect to a netwall listener would count as a visitor or a handshake)."""
    def ok():
        with socket.create_connection((host, port), timeout=1):
            return True
    return wait_until(ok, timeout, f"{host}:{port} to accept")


def listening(port, pid="self"):
    """True if some socket in pid's network namespace listens on TCP port
    `port` (read from /proc, so nothing connects to it)."""
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_listen(port, timeout=10, pid="self"):
    return wait_until(lambda: listening(port, pid), timeout, f"a listener on port {port}")


def hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------- sockets

def connect(port, host="127.0.0.1", source=None, timeout=5):
    """A visitor TCP connection; `source` is the local address to bind."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    if source is not None:
        s.bind((source, 0))
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def recv_exact(s, n, timeout=10):
    s.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def roundtrip(s, payload=None, timeout=10):
    """Send payload through an echo service and check it comes back intact."""
    if payload is None:
        payload = os.urandom(16)
    s.sendall(payload)
    got = recv_exact(s, len(payload), timeout)
    assert got == payload, "echo returned different bytes"
    return True


def closed_within(s, seconds):
    """Return the seconds until the peer closed s (EOF or reset), or None if
    it is still open (or sent data) after `seconds`."""
    start = time.monotonic()
    deadline = start + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return time.monotonic() - start
        except (socket.timeout, TimeoutError):
            return None
        except ssl.SSLError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
        # Bytes arrived (e.g. a TLS alert): keep reading until close.


def visitor_closed_within(port, seconds, host="127.0.0.1", source=None, send=b""):
    """Connect as a visitor (optionally sending bytes) and return the seconds
    until the gateway closed the connection, or None if it stayed open. A
    reset that lands while connect() is still returning counts as closed."""
    start = time.monotonic()
    try:
        s = connect(port, host, source)
    except (ConnectionResetError, ConnectionAbortedError):
        return time.monotonic() - start
    with s:
        if send:
            try:
                s.sendall(send)
            except (ConnectionError, OSError):
                return time.monotonic() - start
        took = closed_within(s, seconds)
    return None if took is None else time.monotonic() - start


def echo_works(port, host="127.0.0.1", source=None, timeout=5):
    with connect(port, host, source, timeout) as s:
        return roundtrip(s, timeout=timeout)


# ---------------------------------------------------------------- memory

def mem_kib(pid):
    """{'Rss': kib, 'Pss': kib, ...} from /proc/PID/smaps_rollup."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def pss_kib(pid):
    return mem_kib(pid)["Pss"]


def raise_nofile(want):
    """Raise RLIMIT_NOFILE of this process (children inherit it); return the
    soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pytest_configure(config):
    raise_nofile(65536)
    # The tests run as root; the daemons refuse that unless told (test_confine.py checks
    # the refusal and the switch to another user).
    os.environ["NETWALL_ALLOW_ROOT"] = "1"


# ---------------------------------------------------------------- logs

_KV_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    """key=value pairs of one log line as a dict (quotes removed)."""
    out = {}
    for k, v in _KV_RE.findall(line):
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[k] = v
    return out


# ---------------------------------------------------------------- processes

class Proc:
    """One child process, its combined stdout/stderr in a log file."""

    def __init__(self, name, argv, log_path, popen, stop_signal, check_exit):
        self.name = name
        self.argv = argv
        self.log_path = Path(log_path)
        self.popen = popen
        self.pid = popen.pid
        self.stop_signal = stop_signal
        self.check_exit = check_exit
        self.killed = False      # SIGKILLed on purpose by the test
        self.stopped_by_test = False

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def mark(self):
        """Current end of the log, to look only at later lines."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def tail(self, n=150):
        lines = self.text().splitlines()
        return "\n".join(lines[-n:])

    def events(self, event=None, since=0, **fields):
        """Parsed log lines with event=`event` and every field in `fields`."""
        out = []
        for line in self.text(since).splitlines():
            kv = parse_log_line(line)
            if event is not None and kv.get("event") != event:
                continue
            if all(kv.get(k) == str(v) for k, v in fields.items()):
                kv["_line"] = line
                out.append(kv)
        return out

    def wait_event(self, event, timeout=5, since=0, count=1, **fields):
        """Wait for `count` log lines with event=`event` and `fields`."""
        desc = " ".join([f"event={event}"] + [f"{k}={v}" for k, v in fields.items()])

        def seen():
            ev = self.events(event, since, **fields)
            if len(ev) >= count:
                return ev
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.returncode}")
            return None
        try:
            return wait_until(seen, timeout, f"{self.name} log: {desc} (x{count})")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- {self.name} log tail ---\n{self.tail(40)}") from None

    def wait_log(self, pattern, timeout=5, since=0):
        """Wait for a log line matching regex `pattern`; return the match."""
        rx = re.compile(pattern, re.M)
        try:
            return wait_until(lambda: rx.search(self.text(since)), timeout,
                              f"{self.name} log to match {pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- {self.name} log tail ---\n{self.tail(40)}") from None

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """SIGKILL on purpose; returns once the process is reaped."""
        self.killed = True
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout=15):
        """Stop with the process's stop signal, SIGKILL after `timeout`.
        Returns a problem description or None."""
        if not self.alive():
            return None
        self.stopped_by_test = True
        try:
            os.kill(self.pid, self.stop_signal)
        except ProcessLookupError:
            return None
        if self.wait_exit(timeout) is None:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)
            return f"{self.name} (pid {self.pid}) did not exit within {timeout}s of signal {self.stop_signal}"
        return None


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: be killed if the test process dies, so an
    interrupted run leaves no servers behind."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# Reports that fail a test when a daemon's log holds them: the sanitizers', and the system
# call filter killing a daemon (a call missing from src/core/filter.c).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: ",
                     "event=forbidden_syscall")


class Procs:
    """Processes started by one test, stopped in reverse order at teardown."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.items = []
        self._names = {}

    def start(self, name, argv, *, env=None, cwd=None, user=None, group=None,
              stop_signal=signal.SIGTERM, check_exit=False):
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        logname = f"{name}.log" if n == 0 else f"{name}.{n}.log"
        log_path = self.dir / logname
        logf = open(log_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        kw = {}
        if user is not None:
            kw["user"] = user
        if group is not None:
            kw["group"] = group
        try:
            popen = subprocess.Popen(
                [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                start_new_session=True, preexec_fn=_die_with_parent, **kw)
        except FileNotFoundError:
            require(argv[0])
            raise
        finally:
            logf.close()
        p = Proc(name, argv, log_path, popen, stop_signal, check_exit)
        self.items.append(p)
        return p

    def stop_all(self):
        problems = []
        for p in reversed(self.items):
            was_alive = p.alive()
            prob = p.stop()
            if prob:
                problems.append(prob)
            if not p.check_exit:
                continue
            text = p.text()
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    problems.append(f"{p.name} (pid {p.pid}) log has a report "
                                    f"({marker.strip()}); log {p.log_path}")
                    break
            if p.killed:
                continue
            rc = p.returncode
            if rc != 0:
                how = "on SIGTERM at teardown" if was_alive else "before teardown"
                problems.append(f"{p.name} (pid {p.pid}) exited with {rc} {how}; log {p.log_path}")
        return problems


# ---------------------------------------------------------------- metrics / admin

_METRIC_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text -> [(name, {label: value}, float)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        if not m:
            continue
        labels = dict(_LABEL_RE.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            continue
    return out


def http_get(port, path, host="127.0.0.1", timeout=3):
    with urllib.request.urlopen(f"http://{hostport(host, port)}{path}", timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def admin_answers(port):
    """True once an HTTP server answers on port, whatever the status."""
    try:
        http_get(port, "/healthz")
    except urllib.error.HTTPError:
        pass
    return True


class Admin:
    """A netwall admin listener."""

    def __init__(self, port):
        self.port = port

    def healthz(self):
        return http_get(self.port, "/healthz")

    def metrics_text(self):
        status, body = http_get(self.port, "/metrics")
        assert status == 200
        return body

    def metric(self, name, default=None, **labels):
        """Sum of the samples called `name` whose labels include `labels`.
        With no such sample: `default`, or a failure if default is None."""
        text = self.metrics_text()
        total, found = 0.0, False
        for n, lab, v in parse_metrics(text):
            if n == name and all(lab.get(k) == str(x) for k, x in labels.items()):
                total += v
                found = True
        if not found:
            if default is None:
                raise AssertionError(f"metric {name}{labels or ''} not exported on :{self.port}:\n{text}")
            return default
        return total

    def wait_metric(self, name, pred, timeout=10, what=None, **labels):
        """Wait until pred(value) holds; return the value."""
        box = {}

        def ok():
            box["v"] = self.metric(name, default=0.0, **labels)
            return pred(box["v"])
        try:
            wait_until(ok, timeout, what or f"{name}{labels or ''} on :{self.port}")
        except AssertionError as e:
            raise AssertionError(f"{e} (value {box.get('v')})") from None
        return box["v"]


# ---------------------------------------------------------------- identities

@dataclass
class Identity:
    name: str
    key: Path
    crt: Path
    fingerprint: str


def netwall(*args, timeout=30, **kw):
    return subprocess.run([NETWALL_BIN, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def keygen(outdir, name):
    """`netwall keygen --out DIR NAME`: the identity it wrote."""
    r = netwall("keygen", "--out", outdir, name)
    assert r.returncode == 0, f"keygen failed ({r.returncode}): {r.stderr}"
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and FP_RE.match(lines[0]), f"keygen stdout is not one fingerprint line: {r.stdout!r}"
    ident = Identity(name, Path(outdir) / f"{name}.key", Path(outdir) / f"{name}.crt", lines[0])
    assert ident.key.exists() and ident.crt.exists()
    return ident


def openssl_fingerprint(crt):
    """SHA-256 of the certificate's DER encoding, computed by the openssl CLI."""
    der = subprocess.run(["openssl", "x509", "-in", str(crt), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def openssl_identity(outdir, name, keytype="ec"):
    """A key and self-signed certificate made with the openssl CLI (no
    netwall involved): for unknown-certificate clients and for checking
    netwall's fingerprints against an independent implementation."""
    key = Path(outdir) / f"{name}.key"
    crt = Path(outdir) / f"{name}.crt"
    if keytype == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    elif keytype == "ed25519":
        newkey = ["-newkey", "ed25519"]
    else:
        newkey = ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "2", "-subj", f"/CN={name}"],
                   capture_output=True, check=True)
    return Identity(name, key, crt, openssl_fingerprint(crt))


# ---------------------------------------------------------------- configs

def ini_text(sections):
    """sections: [(header, [(key, value-or-list), ...]), ...] -> INI text.
    A list value becomes one line per item (repeatable keys)."""
    out = []
    for header, items in sections:
        out.append(f"[{header}]")
        for k, v in items:
            if v is None:
                continue
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                out.append(f"{k} = {one}")
        out.append("")
    return "\n".join(out)


def gateway_config(*, listen, cert, key, admin, agents, services, extra=None):
    """Gateway INI text. agents: {name: fingerprint}; services:
    {name: {"listen": [...], "agents": [...], other keys...}}."""
    g = [("listen", listen), ("cert", cert), ("key", key), ("admin", admin)]
    g += list((extra or {}).items())
    sections = [("gateway", g)]
    for name, fp in agents.items():
        sections.append((f"agent {name}", [("fingerprint", fp)]))
    for name, spec in services.items():
        items = [("listen", spec["listen"]), ("agents", ", ".join(spec["agents"]))]
        items += [(k, v) for k, v in spec.items() if k not in ("listen", "agents")]
        sections.append((f"service {name}", items))
    return ini_text(sections)


def agent_config(*, gateways, cert, key, gateway_fingerprint, admin, services, extra=None):
    """Agent INI text. services: {name: "HOST:PORT"} or {name: {"target": ..., ...}}."""
    a = [("gateway", gateways), ("cert", cert), ("key", key),
         ("gateway_fingerprint", gateway_fingerprint), ("admin", admin)]
    a += list((extra or {}).items())
    sections = [("agent", a)]
    for name, spec in services.items():
        if isinstance(spec, str):
            spec = {"target": spec}
        sections.append((f"service {name}", list(spec.items())))
    return ini_text(sections)


def svc(agents=("site-a",), listen=None, **opts):
    """A gateway service spec; listen defaults to a fresh 127.0.0.1 port."""
    spec = {"agents": list(agents)}
    if listen is not None:
        spec["listen"] = listen if isinstance(listen, list) else [listen]
    spec.update(opts)
    return spec


# Short drain so teardown is quick; tests that exercise draining set their own.
GATEWAY_DEFAULTS = {"drain_timeout": "1", "log_level": "info"}
AGENT_DEFAULTS = {"drain_timeout": "1", "log_level": "info"}


class Gateway:
    def __init__(self, wall, name, config_path, tunnel_port, tunnel_host, admin_port,
                 services, identity, prefix):
        self.wall = wall
        self.name = name
        self.config_path = config_path
        self.tunnel_port = tunnel_port
        self.tunnel_host = tunnel_host
        self.admin = Admin(admin_port)
        self.services = services
        self.identity = identity
        self.prefix = prefix
        self.proc = None

    @property
    def tunnel_addr(self):
        return hostport(self.tunnel_host, self.tunnel_port)

    def port(self, service, i=0):
        return self.listen(service, i)[1]

    def listen(self, service, i=0):
        host, port = self.services[service]["listen"][i].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def metric(self, name, default=None, **labels):
        return self.admin.metric(name, default, **labels)

    def start(self, wait=True):
        self.proc = self.wall.procs.start(
            self.name, [*self.prefix, NETWALL_BIN, "gateway", "-c", self.config_path],
            check_exit=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        pid = self.proc.pid

        def ready():
            if not self.proc.alive():
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.proc.tail(40)}")
            if self.prefix:   # in another netns: only the listeners can be seen
                return listening(self.tunnel_port, pid)
            return admin_answers(self.admin.port) and listening(self.tunnel_port)
        wait_until(ready, timeout, f"{self.name} to be ready")
        if not self.prefix:
            for spec in self.services.values():
                for addr in spec["listen"]:
                    wait_listen(int(addr.rsplit(":", 1)[1]), timeout)

    def restart(self, wait=True):
        """Start a new process with the same config and ports."""
        return self.start(wait)

    def takeover(self, binary=None):
        """Start a new process with --takeover (binary: another build, else the one under
        test): it takes this gateway's sockets over and the old one drains. Returns
        (old Proc, new Proc); self.proc is the new one from then on."""
        old = self.proc
        self.proc = self.wall.procs.start(
            self.name, [*self.prefix, binary or NETWALL_BIN, "gateway", "-c", self.config_path,
                        "--takeover"], check_exit=True)
        return old, self.proc

    def wait_tunnels(self, n, timeout=10):
        """Wait until exactly n agent tunnels are up on this gateway."""
        return self.admin.wait_metric("netwall_tunnels_up", lambda v: v == n, timeout,
                                      f"{self.name} netwall_tunnels_up == {n}")


class Agent:
    def __init__(self, wall, name, config_path, admin_port, identity, prefix):
        self.wall = wall
        self.name = name
        self.config_path = config_path
        self.admin = Admin(admin_port)
        self.identity = identity
        self.prefix = prefix
        self.proc = None

    def metric(self, name, default=None, **labels):
        return self.admin.metric(name, default, **labels)

    def start(self, wait=True):
        self.proc = self.wall.procs.start(
            self.name, [*self.prefix, NETWALL_BIN, "agent", "-c", self.config_path],
            check_exit=True)
        if wait and not self.prefix:
            def ready():
                if not self.proc.alive():
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.proc.tail(40)}")
                return admin_answers(self.admin.port)
            wait_until(ready, 10, f"{self.name} admin listener")
        return self

    def takeover(self, binary=None):
        """Start a new agent process with --takeover: it dials its tunnels, then the old one
        drains. Returns (old Proc, new Proc); self.proc is the new one from then on."""
        old = self.proc
        self.proc = self.wall.procs.start(
            self.name, [*self.prefix, binary or NETWALL_BIN, "agent", "-c", self.config_path,
                        "--takeover"], check_exit=True)
        return old, self.proc


class Wall:
    """Builds gateway and agent configs and processes for one test."""

    def __init__(self, procs, keys, workdir):
        self.procs = procs
        self.keys = keys
        self.dir = Path(workdir)

    def gateway(self, services, *, agents=None, name="gateway", identity=None,
                tunnel_host="127.0.0.1", tunnel_port=None, admin=None, extra=None,
                prefix=(), start=True):
        """Write a gateway config and start it. services: {name: svc(...)}.
        agents: {name: fingerprint}; default: every agent named by a service,
        with the fingerprint of the session identity of that name."""
        identity = identity or self.keys["gateway"]
        services = {k: dict(v) for k, v in services.items()}
        for spec in services.values():
            if "listen" not in spec:
                spec["listen"] = [f"127.0.0.1:{free_port()}"]
        if agents is None:
            agents = {}
            for spec in services.values():
                for a in spec["agents"]:
                    agents[a] = self.keys[a].fingerprint
        tunnel_port = tunnel_port or free_port()
        admin_port = free_port()
        cfg = self.dir / f"{name}.ini"
        opts = dict(GATEWAY_DEFAULTS)
        opts.update(extra or {})
        cfg.write_text(gateway_config(
            listen=hostport(tunnel_host, tunnel_port), cert=identity.crt, key=identity.key,
            admin=admin or f"127.0.0.1:{admin_port}", agents=agents, services=services,
            extra=opts))
        gw = Gateway(self, name, cfg, tunnel_port, tunnel_host, admin_port, services,
                     identity, list(prefix))
        if start:
            gw.start()
        return gw

    def agent(self, ident_name, gateways, services, *, name=None, extra=None, prefix=(),
              start=True, gateway_addrs=None):
        """Write an agent config for identity `ident_name` dialing the
        gateway(s) and start it. services: {name: target or dict}."""
        if isinstance(gateways, Gateway):
            gateways = [gateways]
        identity = self.keys[ident_name]
        name = name or f"agent-{ident_name}"
        admin_port = free_port()
        cfg = self.dir / f"{name}.ini"
        opts = dict(AGENT_DEFAULTS)
        opts.update(extra or {})
        cfg.write_text(agent_config(
            gateways=gateway_addrs or [g.tunnel_addr for g in gateways],
            cert=identity.crt, key=identity.key,
            gateway_fingerprint=gateways[0].identity.fingerprint,
            admin=f"127.0.0.1:{admin_port}", services=services, extra=opts))
        ag = Agent(self, name, cfg, admin_port, identity, list(prefix))
        if start:
            ag.start()
        return ag

    def stack(self, target, service="svc", *, svc_opts=None, gw_extra=None, agent_extra=None,
              target_opts=None):
        """One gateway with one service served by agent site-a (default 2
        tunnels) forwarding to `target`; returns (gateway, agent) once both
        tunnels are up."""
        gw = self.gateway({service: svc(**(svc_opts or {}))}, extra=gw_extra)
        spec = {"target": target, **(target_opts or {})}
        ag = self.agent("site-a", gw, {service: spec}, extra=agent_extra)
        gw.wait_tunnels(2)
        ag.admin.wait_metric("netwall_tunnels_up", lambda v: v == 2, 10)
        return gw, ag


# ---------------------------------------------------------------- targets

@dataclass
class Target:
    proc: Proc
    port: int
    host: str = "127.0.0.1"
    dir: Path = None
    extra: dict = field(default_factory=dict)

    @property
    def addr(self):
        return hostport(self.host, self.port)


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
    log_format wall '$remote_addr $remote_port pp=$proxy_protocol_addr:$proxy_protocol_port "$request" $status $body_bytes_sent';
    access_log {dir}/access.log wall;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    sendfile on;
    keepalive_timeout 65;
    send_timeout 600s;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen {listen}{pp};
        root {root};{tls}
        location / {{ }}
    }}
}}
"""


def start_nginx(procs, workdir, root, *, host="127.0.0.1", port=None, proxy_protocol=False,
                prefix=(), tls=None):
    """nginx serving root; tls=(certificate, key) makes it HTTPS on the same port."""
    port = port or free_port()
    d = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
    conf = d / "nginx.conf"
    tls_conf = "" if tls is None else (
        f"\n        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};")
    conf.write_text(NGINX_CONF.format(dir=d, root=root, listen=hostport(host, port),
                                      pp=(" proxy_protocol" if proxy_protocol else "")
                                      + (" ssl" if tls else ""), tls=tls_conf))
    p = procs.start("nginx", [*prefix, "nginx", "-p", d, "-c", conf], stop_signal=signal.SIGTERM)
    if not prefix:
        wait_port(port, host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    return Target(p, port, host, d, {"access_log": d / "access.log"})


def start_redis(procs, workdir, *, port=None):
    port = port or free_port()
    d = Path(tempfile.mkdtemp(prefix="redis-", dir=workdir))
    p = procs.start("redis", ["redis-server", "--port", port, "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", d,
                              "--daemonize", "no", "--protected-mode", "no",
                              "--maxclients", "10000", "--logfile", ""])
    wait_port(port)

    def pong():
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "PING"],
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip() == "PONG"
    wait_until(pong, 10, "redis PONG")
    return Target(p, port, "127.0.0.1", d)


def start_postgres(procs, *, port=None):
    """initdb into a fresh directory owned by postgres (trust auth), then run
    postgres on 127.0.0.1:port with its unix socket in that directory."""
    port = port or free_port()
    d = Path(tempfile.mkdtemp(prefix="netwall-pg-"))
    shutil.chown(d, "postgres", "postgres")
    data = d / "data"
    r = subprocess.run([PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust",
                        "--no-sync", "-E", "UTF8", "--locale=C"],
                       capture_output=True, text=True, user="postgres", group="postgres",
                       cwd=d, timeout=120)
    assert r.returncode == 0, f"initdb failed: {r.stdout}\n{r.stderr}"
    p = procs.start("postgres", [PG_BIN / "postgres", "-D", data, "-p", port, "-k", d,
                                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                 "-c", "synchronous_commit=off", "-c", "max_connections=100"],
                    user="postgres", group="postgres", cwd=d, stop_signal=signal.SIGINT)

    def ready():
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                            "-At", "-c", "select 1"], capture_output=True, text=True, timeout=5)
        return r.returncode == 0 and r.stdout.strip() == "1"
    wait_until(ready, 30, "postgres to accept queries", interval=0.2)
    return Target(p, port, "127.0.0.1", d)


def start_echo(procs, *, host="127.0.0.1", port=None, prefix=()):
    port = port or free_port()
    p = procs.start("echo", [*prefix, sys.executable, HERE / "helpers" / "echo_server.py",
                             host, port])
    if not prefix:
        wait_port(port, host)
    return Target(p, port, host)


def start_health_target(procs, mode, *, host="127.0.0.1", port=None, tls=None):
    """helpers/health_target.py: an HTTP target answering `mode` (status:NNN, hold,
    endless, noline); tls=(cert, key): over TLS."""
    port = port or free_port()
    p = procs.start("health-target", [sys.executable, HERE / "helpers" / "health_target.py",
                                      host, port, mode, *(tls or ())])
    wait_port(port, host)
    return Target(p, port, host)


class VisitorLoop:
    """A thread opening visitors back to back to an echo service on port: each connects,
    sends a line, reads it back whole and closes. Counts the answered and the failed (with
    the first few failures' reasons)."""

    def __init__(self, port, host="127.0.0.1"):
        self.port, self.host = port, host
        self.ok = 0
        self.failed = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _one(self, i):
        line = f"visitor {i}\n".encode()
        with socket.create_connection((self.host, self.port), timeout=5) as s:
            s.sendall(line)
            got = b""
            while len(got) < len(line):
                chunk = s.recv(len(line) - len(got))
                if not chunk:
                    raise ConnectionError(f"closed after {len(got)} bytes")
                got += chunk
            if got != line:
                raise ValueError(f"answered {got!r}")

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                self._one(i)
                self.ok += 1
            except (OSError, ValueError) as e:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(f"visitor {i}: {e!r}")

    def start(self):
        self._thread.start()
        return self

    def wait_ok(self, n, timeout=10):
        """Wait until n more visitors than now have been answered."""
        want = self.ok + n
        wait_until(lambda: self.ok >= want or self.failed, timeout,
                   f"{n} visitors answered")
        return self.ok

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        return self.ok, self.failed


# ---------------------------------------------------------------- HTTP helpers

def curl_sha256(url, *args, timeout=180):
    """GET url with curl, hashing the body as it streams. Returns
    (curl exit code, sha256 hex, body size, stderr)."""
    p = subprocess.Popen(["curl", "-sS", "--fail", "--max-time", str(timeout), *args, url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    h = hashlib.sha256()
    n = 0
    while True:
        chunk = p.stdout.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    err = p.stderr.read().decode("utf-8", "replace")
    rc = p.wait(timeout + 10)
    return rc, h.hexdigest(), n, err


@dataclass
class WebFile:
    name: str
    path: Path
    size: int
    sha256: str


class WebRoot:
    def __init__(self, root, files):
        self.root = root
        self.files = files

    def __getitem__(self, name):
        return self.files[name]


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def netwall_bin():
    if not (os.path.isfile(NETWALL_BIN) and os.access(NETWALL_BIN, os.X_OK)):
        pytest.fail(f"netwall binary not found at {NETWALL_BIN}: build it with `make` "
                    "or point NETWALL_BIN at it", pytrace=False)
    return NETWALL_BIN


@pytest.fixture(scope="session")
def keys(netwall_bin, tmp_path_factory):
    """Identities made by `netwall keygen`: gateway, gateway-b, site-a, site-b, stranger."""
    d = tmp_path_factory.mktemp("keys")
    return {n: keygen(d, n) for n in ("gateway", "gateway-b", "site-a", "site-b", "stranger")}


@pytest.fixture(scope="session")
def www(tmp_path_factory):
    """A document root with random files of 0 B, 1 KiB, 64 MiB and 256 MiB."""
    d = tmp_path_factory.mktemp("www")
    sizes = {"empty.bin": 0, "1k.bin": 1024, "64m.bin": 64 * MiB, "256m.bin": 256 * MiB}
    files = {}
    rnd = random.Random(os.urandom(16))   # fast, and different in every run
    for name, size in sizes.items():
        h = hashlib.sha256()
        path = d / name
        with open(path, "wb") as f:
            left = size
            while left:
                chunk = rnd.randbytes(min(left, 4 * MiB))
                f.write(chunk)
                h.update(chunk)
                left -= len(chunk)
        files[name] = WebFile(name, path, size, h.hexdigest())
    return WebRoot(d, files)


@pytest.fixture
def procs(request, tmp_path):
    mgr = Procs(tmp_path)
    request.node._netwall_procs = mgr
    yield mgr
    problems = mgr.stop_all()
    if problems:
        pytest.fail("process problems at teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def wall(procs, keys, tmp_path):
    return Wall(procs, keys, tmp_path)


@pytest.fixture
def nginx(procs, tmp_path, www):
    """Factory: nginx(**opts) -> Target serving the www root."""
    return lambda **kw: start_nginx(procs, tmp_path, www.root, **kw)


@pytest.fixture
def redis(procs, tmp_path):
    return lambda **kw: start_redis(procs, tmp_path, **kw)


@pytest.fixture
def postgres(procs):
    made = []

    def start(**kw):
        t = start_postgres(procs, **kw)
        made.append(t)
        return t
    yield start
    for t in made:
        t.proc.stop()
        shutil.rmtree(t.dir, ignore_errors=True)


@pytest.fixture
def echo(procs):
    return lambda **kw: start_echo(procs, **kw)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    mgr = getattr(item, "_netwall_procs", None)
    if mgr is None:
        return
    for p in mgr.items:
        rep.sections.append((f"{rep.when}: log of {p.name} pid {p.pid} ({p.log_path})",
                             p.tail(150) or "(empty)"))

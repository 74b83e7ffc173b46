"""Hostile peers against the wall's memory: visitors that never read, targets that never read.

The gateway and the agent each have one memory budget (memory_budget) for every byte a peer
can make them hold: stream buffers both ways and window granted to the other side. Here
dozens of visitors stop reading (or a target does) while the far side pushes 16 MiB each:
the daemons must stay within budget plus their baseline, the held-bytes gauge must never
pass the budget, and a normal visitor on the same tunnel must still get its bytes intact.
"""

import hashlib
import selectors
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

import pytest

from conftest import (HERE, SANITIZED, MiB, connect, echo_works, mem_kib, recv_exact, svc,
                      wait_port, wait_until, free_port, Target)

sys.path.insert(0, str(HERE / "helpers"))
from hostile_target import BLOCK, pattern_sha256  # noqa: E402

PUSH = 16 * MiB
N_STUCK = 50
OTHER = "127.0.0.2"  # a source other than the stuck visitors' (127.0.0.1)


@pytest.fixture
def hostile_target(procs):
    port = free_port()
    p = procs.start("target", [sys.executable, HERE / "helpers" / "hostile_target.py",
                               "127.0.0.1", port])
    wait_port(port)
    return Target(p, port)


def one_tunnel_wall(wall, target, budget, gw_extra=None, agent_extra=None):
    """Gateway and agent with one tunnel between them (every visitor shares it)."""
    gw = wall.gateway({"svc": svc()}, extra={"memory_budget": str(budget), **(gw_extra or {})})
    ag = wall.agent("site-a", gw, {"svc": target.addr},
                    extra={"tunnels": "1", "memory_budget": str(budget), **(agent_extra or {})})
    gw.wait_tunnels(1)
    ag.admin.wait_metric("netwall_tunnels_up", lambda v: v == 1, 10)
    return gw, ag


def rss_kib(pid):
    return mem_kib(pid)["Rss"]


def stuck_visitor(port, command):
    """A visitor with a 4 KiB receive buffer that sends command and then never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(command)
    return s


def wait_stalled(daemon, metric, what):
    """Wait until daemon's counter stops moving: everything the buffers allow has moved."""
    samples = []

    def stalled():
        samples.append(daemon.metric(metric, default=0.0))
        return len(samples) >= 6 and samples[-1] > 0 and samples[-1] == samples[-6]
    wait_until(stalled, 60, what, interval=0.25)


def pull_pattern(port, n, timeout=120, source=None):
    """A normal visitor: PUSH n, read to EOF; returns (size, sha256)."""
    with connect(port, timeout=timeout, source=source) as s:
        s.sendall(b"PUSH %d\n" % n)
        h = hashlib.sha256()
        size = 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def echo_exact(port, n, timeout=60, source=None):
    """A normal visitor: ECHO, n bytes out, the same n bytes back."""
    payload = (BLOCK * (n // len(BLOCK) + 1))[:n]
    with connect(port, timeout=timeout, source=source) as s:
        s.sendall(b"ECHO\n")
        t = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        t.start()
        back = recv_exact(s, n, timeout=timeout)
        t.join(timeout)
    return back == payload


def check_budget(daemon, budget):
    """held never passed the budget (the gauge's high-water mark), in every build."""
    assert daemon.metric("netwall_memory_budget_bytes") == budget
    peak = daemon.metric("netwall_memory_held_peak_bytes")
    assert peak is not None and 0 < peak <= budget, \
        f"{daemon.name} held {peak} bytes with a budget of {budget}"


def check_rss(procs_rss0, daemons, budget):
    if SANITIZED:
        return   # the sanitizer keeps freed memory in quarantine
    grown = {d.name: rss_kib(d.proc.pid) - procs_rss0[d.name] for d in daemons}
    print(", ".join(f"{k}: RSS grew {v / 1024:.1f} MiB" for k, v in grown.items()),
          f"(budget {budget / MiB:.0f} MiB)")
    for name, kib in grown.items():
        assert kib * 1024 <= budget, \
            f"{name} grew {kib / 1024:.1f} MiB, over its {budget / MiB:.0f} MiB budget"


def test_visitors_that_never_read(wall, hostile_target):
    budget = 16 * MiB
    gw, ag = one_tunnel_wall(wall, hostile_target, budget)
    port = gw.port("svc")
    rss0 = {d.name: rss_kib(d.proc.pid) for d in (gw, ag)}

    stuck = [stuck_visitor(port, b"PUSH %d\n" % PUSH) for _ in range(N_STUCK)]
    try:
        wait_until(lambda: gw.metric("netwall_streams_open") == N_STUCK, 20, "stuck streams")
        wait_stalled(gw, "netwall_bytes_out_total", "the stuck visitors' streams to stall")
        check_rss(rss0, (gw, ag), budget)
        check_budget(gw, budget)
        check_budget(ag, budget)
        # A normal visitor on the same tunnel, from another source (the stuck visitors'
        # source holds its share of the window), gets all of its 16 MiB, byte-exact.
        size, sha = pull_pattern(port, PUSH, source=OTHER)
        assert size == PUSH and sha == pattern_sha256(PUSH)
        check_budget(gw, budget)
        check_budget(ag, budget)
        assert gw.metric("netwall_streams_open") == N_STUCK
    finally:
        for s in stuck:
            s.close()


class Pusher:
    """Writes n bytes to each socket without blocking the test, until stopped."""

    def __init__(self, socks, n):
        self.sel = selectors.DefaultSelector()
        self.left = {}
        self.stop = threading.Event()
        for s in socks:
            s.setblocking(False)
            self.left[s] = n
            self.sel.register(s, selectors.EVENT_WRITE)
        self.view = memoryview(BLOCK)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set() and self.left:
            for key, _ in self.sel.select(0.1):
                s = key.fileobj
                try:
                    n = s.send(self.view[:min(self.left[s], 65536)])
                except BlockingIOError:
                    continue
                except OSError:
                    n = self.left[s]
                self.left[s] -= n
                if self.left[s] == 0:
                    self.sel.unregister(s)
                    del self.left[s]

    def close(self):
        self.stop.set()
        self.thread.join(10)


def test_target_that_never_reads(wall, hostile_target):
    budget = 16 * MiB
    gw, ag = one_tunnel_wall(wall, hostile_target, budget)
    port = gw.port("svc")
    rss0 = {d.name: rss_kib(d.proc.pid) for d in (gw, ag)}

    stuck = [stuck_visitor(port, b"SINK\n") for _ in range(N_STUCK)]
    pusher = Pusher(stuck, PUSH)
    try:
        wait_until(lambda: gw.metric("netwall_streams_open") == N_STUCK, 20, "stuck streams")
        wait_stalled(ag, "netwall_bytes_out_total", "the target's streams to stall")
        check_rss(rss0, (gw, ag), budget)
        check_budget(gw, budget)
        check_budget(ag, budget)
        # A normal visitor on the same tunnel, from another source: 4 MiB out and the same
        # 4 MiB back.
        assert echo_exact(port, 4 * MiB, source=OTHER)
        check_budget(gw, budget)
        check_budget(ag, budget)
    finally:
        pusher.close()
        for s in stuck:
            s.close()


def test_budget_full_waits_and_resumes(wall, hostile_target):
    """With more stuck visitors than the budget holds, the daemons stop reading and stop
    granting window instead of growing; once the stuck visitors go, a visitor that waited
    gets all of its bytes."""
    budget = 1 * MiB
    n = 200     # window for 144 streams fits in half of 1 MiB (16 of 16 KiB, then 2 KiB each)
    gw, ag = one_tunnel_wall(wall, hostile_target, budget)
    port = gw.port("svc")
    stuck = [stuck_visitor(port, b"PUSH %d\n" % PUSH) for _ in range(n)]
    try:
        wait_until(lambda: gw.metric("netwall_streams_open") == n, 20, "stuck streams")
        gw.admin.wait_metric("netwall_memory_waits_total", lambda v: v > 0, 20,
                             "the gateway to wait for its budget")
        ag.admin.wait_metric("netwall_memory_waits_total", lambda v: v > 0, 20,
                             "the agent to wait for its budget")
        result = {}
        normal = threading.Thread(target=lambda: result.update(r=pull_pattern(port, PUSH)),
                                  daemon=True)
        normal.start()
        wait_until(lambda: gw.metric("netwall_streams_open") == n + 1, 20, "the normal visitor")
        check_budget(gw, budget)
        check_budget(ag, budget)
    finally:
        for s in stuck:
            s.close()
    normal.join(20)
    if "r" not in result:
        for d in (gw, ag):
            print(d.name, {k: d.metric(k) for k in ("netwall_memory_held_bytes", "netwall_memory_waits_total", "netwall_streams_open", "netwall_bytes_out_total", "netwall_bytes_in_total")})
    normal.join(100)
    assert result.get("r") == (PUSH, pattern_sha256(PUSH))
    check_budget(gw, budget)
    check_budget(ag, budget)
    gw.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == 0, 10, "held back to 0")
    ag.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == 0, 10, "held back to 0")


def stalled_visitors(port, source, n, push=64 * 1024):
    """n visitors from source that each send push bytes (as much as the socket takes at
    once) and never read."""
    out = []
    for _ in range(n):
        s = connect(port, source=source)
        s.setblocking(False)
        try:
            s.send(b"x" * push)
        except BlockingIOError:
            pass
        out.append(s)
    return out


def test_one_source_cannot_lock_out_the_others(wall, echo):
    """One source's 150 visitors that never read took the whole window half of a 1 MiB
    budget on both sides: every other visitor got no window, and a visitor that closed a
    stream stalled that way was never noticed (its stream and its per-source slot stayed
    until idle_timeout). Now a source holds at most its share of the window (an eighth of
    the half), other sources are served, and a stalled visitor that hangs up is reset."""
    e = echo()
    gw, ag = wall.stack(e.addr, "echo", svc_opts={"max_per_source": "150"},
                        gw_extra={"memory_budget": str(MiB)},
                        agent_extra={"memory_budget": str(MiB)})
    port = gw.port("echo")
    bad = stalled_visitors(port, "127.0.0.2", 150)
    try:
        gw.admin.wait_metric("netwall_connections_open", lambda v: v == 150, 20,
                             "the stalled visitors", service="echo")
        ag.admin.wait_metric("netwall_streams_open", lambda v: v == 150, 20, "their streams")
        wait_stalled(gw, "netwall_bytes_out_total", "the stalled visitors' streams to stall")
        # another source is served
        assert echo_works(port, source="127.0.0.1", timeout=10)
        # a visitor whose streams stall (150 of them: more than its share) gives up
        victim = stalled_visitors(port, "127.0.0.9", 150, push=2)
        gw.admin.wait_metric("netwall_connections_open", lambda v: v == 300, 20,
                             "the victim's visitors", service="echo")
        ag.admin.wait_metric("netwall_streams_open", lambda v: v == 300, 20, "their streams")
        for s in victim:
            s.close()
        # every one of its streams ends, and its per-source slots come back
        gw.admin.wait_metric("netwall_connections_open", lambda v: v == 150, 20,
                             "the victim's closed visitors to be released", service="echo")
        assert echo_works(port, source="127.0.0.9", timeout=10)
        check_budget(gw, MiB)
        check_budget(ag, MiB)
    finally:
        for s in bad:
            s.close()
    gw.admin.wait_metric("netwall_connections_open", lambda v: v == 0, 20,
                         "the stalled visitors to be released", service="echo")
    gw.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == 0, 10, "held back to 0")
    ag.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == 0, 10, "held back to 0")
    assert echo_works(port, source="127.0.0.2")


def reset_all(socks):
    """Closes every socket with a TCP reset (SO_LINGER 0), one after the other."""
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def test_freed_before_its_grant_passes_the_turn(wall, echo):
    """Streams parked on a share are granted one by one, each grant unparking the next; a
    stream unparked for its grant and freed before the grant ran (its visitor reset in the
    same loop turn) ended the chain: with the share's window all given back, nothing woke
    the streams still parked, and a visitor of that source waited until idle_timeout (an
    hour) for bytes that never came. Here the gateway (1 MiB) parks streams the agent
    (4 MiB) grants, so it reads them and sees their resets as events; it is stopped while
    the visitors that hold the share's window and those parked first all reset, so it
    takes every reset (24, within the loop's first batch of events) in one turn, the
    holders' first: the streams they unpark are freed before the grant runs."""
    e = echo()
    gw, ag = wall.stack(e.addr, "echo", svc_opts={"max_per_source": "150"},
                        gw_extra={"memory_budget": str(MiB)},
                        agent_extra={"memory_budget": str(4 * MiB)})
    port = gw.port("echo")
    # another source takes 12 of the 16 first windows that fit under a quarter of the
    # gateway's budget, so that 4 streams fill the share (64 KiB) of 127.0.0.2
    others = [connect(port, source="127.0.0.3") for _ in range(12)]
    ag.admin.wait_metric("netwall_streams_open", lambda v: v == 12, 20, "their streams")
    holders = [connect(port, source="127.0.0.2") for _ in range(4)]
    ag.admin.wait_metric("netwall_streams_open", lambda v: v == 16, 20, "the holders' streams")
    waits = gw.metric("netwall_memory_waits_total")
    # each freed holder unparks at most two: 20 cover all 4 of them
    parked = [connect(port, source="127.0.0.2") for _ in range(20)]
    gw.admin.wait_metric("netwall_memory_waits_total", lambda v: v >= waits + 20, 20,
                         "the gateway to park the next 20")
    waiter = connect(port, source="127.0.0.2", timeout=10)
    waiter.sendall(b"ping")
    gw.admin.wait_metric("netwall_memory_waits_total", lambda v: v >= waits + 21, 20,
                         "the gateway to park the waiter")
    ag.admin.wait_metric("netwall_streams_open", lambda v: v == 37, 20, "their streams")
    assert ag.metric("netwall_memory_waits_total") == 0, "the agent granted them all"
    gw.proc.signal(signal.SIGSTOP)
    try:
        reset_all(holders)
        reset_all(parked)
    finally:
        gw.proc.signal(signal.SIGCONT)
    gw.admin.wait_metric("netwall_connections_open", lambda v: v == 13, 20,
                         "the reset visitors to be released", service="echo")
    assert recv_exact(waiter, 4, timeout=10) == b"ping"
    waiter.close()
    for s in others:
        s.close()
    gw.admin.wait_metric("netwall_connections_open", lambda v: v == 0, 20,
                         "the visitors to be released", service="echo")
    gw.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == 0, 10, "held back to 0")
    ag.admin.wait_metric("netwall_memory_held_bytes", lambda v: v == 0, 10, "held back to 0")


def raise_budget(daemon, old, new):
    """Rewrites memory_budget in daemon's config and reloads it (SIGHUP)."""
    path = Path(daemon.config_path)
    text = path.read_text()
    assert f"memory_budget = {old}" in text
    path.write_text(text.replace(f"memory_budget = {old}", f"memory_budget = {new}"))
    mark = daemon.proc.mark()
    daemon.proc.signal(signal.SIGHUP)
    daemon.proc.wait_event("reloaded", 5, since=mark)


def test_raised_budget_wakes_waiting_streams(wall, echo):
    """A visitor whose stream waits for the budget is served once a reload raises
    memory_budget: the reload used to set the number only, and the waiting streams were
    woken only by bytes given back, which stalled visitors never give."""
    e = echo()
    gw, ag = wall.stack(e.addr, "echo", gw_extra={"memory_budget": str(MiB)},
                        agent_extra={"memory_budget": str(MiB)})
    port = gw.port("echo")
    bad = []
    try:
        # ten sources, each within its share: together they take the whole window half
        for k in range(10):
            bad += stalled_visitors(port, f"127.0.0.{2 + k}", 20)
        gw.admin.wait_metric("netwall_connections_open", lambda v: v == 200, 20,
                             "the stalled visitors", service="echo")
        wait_stalled(gw, "netwall_bytes_out_total", "the stalled visitors' streams to stall")
        waits = gw.metric("netwall_memory_waits_total") + ag.metric("netwall_memory_waits_total")
        waiting = connect(port, source="127.0.0.1", timeout=30)
        waiting.sendall(b"ping")
        wait_until(lambda: gw.metric("netwall_memory_waits_total") +
                   ag.metric("netwall_memory_waits_total") > waits, 20,
                   "the new visitor's stream to wait for the budget")
        raise_budget(gw, MiB, 64 * MiB)
        raise_budget(ag, MiB, 64 * MiB)
        assert recv_exact(waiting, 4, timeout=30) == b"ping"
        waiting.close()
    finally:
        for s in bad:
            s.close()


def test_failed_reload_changes_no_service(wall, echo):
    """A reload that fails (service b's new address is taken) keeps the running
    configuration for every service: service a's new allowlist and max_per_source used to
    be applied before b's bind failed."""
    e = echo()
    gw = wall.gateway({"a": svc(), "b": svc()})
    wall.agent("site-a", gw, {"a": e.addr, "b": e.addr})
    gw.wait_tunnels(2)
    pa, pb = gw.port("a"), gw.port("b")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        path = Path(gw.config_path)
        text = path.read_text()
        new = text.replace("[service a]", "[service a]\nmax_per_source = 1\nallow = 10.0.0.0/8", 1)
        new = new.replace(f":{pb}", f":{busy.getsockname()[1]}")
        assert new.count("allow = 10.0.0.0/8") == 1 and f":{pb}" not in new
        # nor the admin listener's token or the log level (they followed the file even
        # when the rest of it was refused)
        token = path.parent / "admin.token"
        token.write_text("t" * 32 + "\n")
        new = new.replace("[gateway]\n", f"[gateway]\nadmin_token_file = {token}\n", 1)
        new = new.replace("log_level = info", "log_level = debug")
        assert "admin_token_file" in new and "log_level = debug" in new
        path.write_text(new)
        mark = gw.proc.mark()
        gw.proc.signal(signal.SIGHUP)
        gw.proc.wait_event("reload_failed", 5, since=mark)
        assert echo_works(pa, timeout=10)
        with connect(pa) as one, connect(pa) as two:
            assert echo_works(pa, timeout=10)
        assert not gw.proc.events("visitor_rejected", since=mark)
        assert gw.metric("netwall_tunnels_up") == 2  # no token asked
        assert "level=debug" not in gw.proc.text(since=mark)
    finally:
        busy.close()


def test_visitors_resetting_fast_do_not_make_the_agent_close_its_tunnels(wall, echo):
    """Each visitor that resets its connection makes the gateway reset its stream
    (RST_STREAM to the agent). nghttp2 answers a peer that resets more than 1,000 streams in
    a burst (then 33 a second) with GOAWAY, its defence against rapid-reset floods; on the
    agent that would let any visitor close every tunnel, and refuse every other visitor,
    by opening and resetting connections. The agent's peer is its own authenticated
    gateway, which admits visitors by its own limits: the agent sets no such limit."""
    e = echo()
    gw, ag = wall.stack(e.addr, "echo", svc_opts={"max_per_source": "1000"})
    linger = struct.pack("ii", 1, 0)
    refused = 0
    for i in range(2600):                            # 1,300 a tunnel
        try:
            s = connect(gw.port("echo"), source=f"127.0.{1 + i // 250}.{1 + i % 250}")
            s.sendall(b"x")
        except OSError:                              # the gateway had no tunnel for it
            refused += 1
            continue
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()                                    # a reset
    assert refused == 0, f"{refused} visitors refused: the tunnels went"
    gw.admin.wait_metric("netwall_stream_resets_total", lambda v: v >= 2400, 30,
                         "the visitors' resets")
    assert echo_works(gw.port("echo"))
    assert gw.proc.events("tunnel_draining") == [], "the agent sent GOAWAY on its tunnels"
    assert gw.metric("netwall_tunnels_up") == 2

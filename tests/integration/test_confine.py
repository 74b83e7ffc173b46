"""How the daemons run: they refuse root unless told, switch to the configured user once
their sockets are bound and their files open, and run under a system call filter that kills
the process on a forbidden call (the call is named in the log)."""

import os
import pwd
import signal
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import HAS_TEST_HOOKS, NETWALL_BIN, echo_works, needs_test_hooks, svc, wait_until
from hl7util import Intake, intake, msg  # noqa: F401
from test_chat import Chat

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")


def proc_status(pid):
    """/proc/PID/status as {key: value}."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def without_allow_root():
    env = dict(os.environ)
    env.pop("NETWALL_ALLOW_ROOT", None)
    return env


def test_root_is_refused_unless_told(tmp_path, keys):
    cfgs = {
        "intake": f"[intake]\nlisten = 127.0.0.1:1\nstore = {tmp_path}/i.db\n",
        "chat": f"[chat]\nplain_listen = 127.0.0.1:1\naccounts = {tmp_path}/accounts\n",
        "gateway": (f"[gateway]\nlisten = 127.0.0.1:1\ncert = {keys['gateway'].crt}\n"
                    f"key = {keys['gateway'].key}\n[agent site-a]\n"
                    f"fingerprint = {keys['site-a'].fingerprint}\n"),
    }
    for kind, text in cfgs.items():
        cfg = tmp_path / f"{kind}.ini"
        cfg.write_text(text)
        argv = [NETWALL_BIN, *(["chat", "serve"] if kind == "chat" else [kind]), "-c", cfg]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           env=without_allow_root())
        assert r.returncode == 1, (kind, r.stderr)
        assert "refusing to run as root: set user = NAME" in r.stderr, (kind, r.stderr)
        # a user that does not exist is named before anything is bound
        cfg.write_text(text.replace("\n", "\nuser = no-such-user-here\n", 1))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           env=without_allow_root())
        assert r.returncode == 1 and "no such user 'no-such-user-here'" in r.stderr, r.stderr


@pytest.fixture
def open_dir():
    """A directory nobody can read (pytest's own are root's alone): the config is read
    again on SIGHUP, after the switch."""
    d = Path(tempfile.mkdtemp(prefix="netwall-confine-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_intake_switches_to_its_user_and_keeps_working(procs, open_dir):
    nobody = pwd.getpwnam("nobody")
    it = Intake(procs, open_dir, intake={"user": "nobody", "allow_root": "no"}, start=False)
    it.config.chmod(0o644)
    env_before = os.environ.pop("NETWALL_ALLOW_ROOT")
    try:
        it.start()
    finally:
        os.environ["NETWALL_ALLOW_ROOT"] = env_before
    st = proc_status(it.proc.pid)
    assert st["Uid"].split() == [str(nobody.pw_uid)] * 4
    assert st["Gid"].split() == [str(nobody.pw_gid)] * 4
    assert st["Groups"].split() in ([], [str(nobody.pw_gid)])
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
    assert st["CapEff"] == "0000000000000000"
    # every thread (the committer, the delivery worker) is confined too
    for tid in os.listdir(f"/proc/{it.proc.pid}/task"):
        t = proc_status(f"{it.proc.pid}/task/{tid}")
        assert t["Uid"].split()[0] == str(nobody.pw_uid) and t["Seccomp"] == "2", tid
    with it.client() as c:
        for i in range(20):
            assert b"MSA|AA|U-%d" % i in c.call(msg(f"U-{i}"))
    assert len(it.rows()) == 20
    mark = it.proc.mark()
    it.proc.signal(signal.SIGHUP)
    it.proc.wait_event("reloaded", since=mark)
    with it.client() as c:
        assert b"MSA|AA|U-AFTER" in c.call(msg("U-AFTER"))


@needs_test_hooks
def test_a_forbidden_call_kills_the_daemon(intake, procs):
    it = intake(start=False)
    p = procs.start("intake-probe", [NETWALL_BIN, "intake", "-c", it.config],
                    env={"NETWALL_TEST_FORBIDDEN_CALL": "exec"})
    it.proc = p
    wait_until(lambda: p.events("confined"), 15, "the filter installed")
    with it.client() as c:        # the filter lets the real work through
        assert b"MSA|AA|F-1" in c.call(msg("F-1"))
    p.signal(signal.SIGUSR2)      # the daemon now calls execve("/bin/true")
    rc = p.wait_exit(15)
    assert rc == -signal.SIGSYS, (rc, p.tail(10))
    assert "event=forbidden_syscall nr=59 action=kill" in p.text()
    assert "test_probe_returned" not in p.text()
    assert len(it.rows()) == 1    # what was acknowledged is stored


@needs_test_hooks
def test_without_the_filter_the_probe_runs(intake, procs):
    """The control for the test above: with seccomp = no the same call succeeds (the
    process becomes /bin/true and exits 0), so the kill is the filter's doing."""
    it = intake(intake={"seccomp": "no"}, start=False)
    p = procs.start("intake-nofilter", [NETWALL_BIN, "intake", "-c", it.config],
                    env={"NETWALL_TEST_FORBIDDEN_CALL": "exec"})
    wait_until(lambda: p.events("confined", seccomp="off"), 15, "started without filter")
    p.signal(signal.SIGUSR2)
    assert p.wait_exit(15) == 0
    assert "forbidden_syscall" not in p.text()


def test_every_daemon_runs_filtered(wall, echo, procs, tmp_path):
    e = echo()
    gw = wall.gateway({"web": svc()})
    ag = wall.agent("site-a", gw, {"web": f"127.0.0.1:{e.port}"})
    gw.wait_tunnels(2)
    assert echo_works(gw.port("web"))
    ch = Chat(procs, tmp_path).start()
    for p in (gw.proc, ag.proc, ch.proc):
        st = proc_status(p.pid)
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", p.name
        assert p.events("confined", seccomp="on"), p.name


@needs_test_hooks
def test_only_the_intake_and_the_chat_may_open_files_for_writing(wall, echo, intake, procs):
    """The gateway is killed for opening a file for writing (openat, 257); the intake, whose
    store writes, is not."""
    e = echo()
    gw = wall.gateway({"web": svc()}, start=False)
    p = procs.start("gateway-probe", [NETWALL_BIN, "gateway", "-c", gw.config_path],
                    env={"NETWALL_TEST_FORBIDDEN_CALL": "write"})
    wait_until(lambda: p.events("confined"), 15, "the gateway's filter installed")
    p.signal(signal.SIGUSR2)
    assert p.wait_exit(15) == -signal.SIGSYS, p.tail(10)
    assert "event=forbidden_syscall nr=257 action=kill" in p.text()
    it = intake(start=False)
    q = procs.start("intake-probe", [NETWALL_BIN, "intake", "-c", it.config],
                    env={"NETWALL_TEST_FORBIDDEN_CALL": "write"})
    wait_until(lambda: q.events("confined"), 15, "the intake's filter installed")
    mark = q.mark()
    q.signal(signal.SIGUSR2)
    q.wait_event("test_probe_returned", since=mark)
    assert q.alive()


@pytest.mark.skipif(HAS_TEST_HOOKS, reason="this is the test build, which has the hooks")
def test_release_binary_has_no_test_hooks():
    """No environment variable can make a release daemon call what its filter forbids or
    move its stream IDs: the hooks are compiled into the test build only."""
    data = Path(NETWALL_BIN).read_bytes()
    assert b"NETWALL_TEST_" not in data

"""Upgrades and restarts that refuse nobody: `netwall gateway --takeover` (and `netwall
agent --takeover`) takes the running daemon's listening sockets over its handover socket;
the old process gives way only once the new one serves, then drains and exits 0. A new
binary and the same binary (the operator's restart) take the same path."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading

import pytest

from conftest import (NETWALL_BIN, VisitorLoop, curl_sha256, echo_works, free_port, svc,
                      wait_until)

def port():
    """One port from the suite's allocator (conftest.free_port): never one it gave out."""
    return free_port()


def gateway(wall, tmp_path, services, sock=None, start=True, **extra):
    opts = {"handover": sock or str(tmp_path / "gateway.sock"), "log_level": "debug", **extra}
    for spec in services.values():
        spec.setdefault("listen", [f"127.0.0.1:{port()}"])
    return wall.gateway(services, tunnel_port=port(), extra=opts, start=start)


def visitors(proc):
    return len(proc.events("visitor"))


def handed_over(old, new):
    """Waits for a whole handover: the new process serves, the old one drained and
    exited 0."""
    new.wait_event("takeover_serving", timeout=15)
    old.wait_event("handover_done", timeout=5)
    assert old.wait_exit(15) == 0, old.tail(30)


def test_gateway_upgrade_then_restart_refuse_no_visitor(wall, echo, tmp_path):
    """A visitor loop runs through an upgrade (another binary) and then a restart (the same
    binary, the same command): not one visitor fails, and each of the three processes
    answered some."""
    target = echo()
    gw = gateway(wall, tmp_path, {"echo": svc()})
    wall.agent("site-a", gw, {"echo": target.addr})
    gw.wait_tunnels(2)
    upgraded = tmp_path / "netwall-next"
    shutil.copy2(NETWALL_BIN, upgraded)

    loop = VisitorLoop(gw.port("echo")).start()
    try:
        loop.wait_ok(20)
        first, second = gw.takeover(binary=upgraded)
        handed_over(first, second)
        assert second.events("takeover_serving")[0]["ready"] == "yes"
        loop.wait_ok(20)
        _, third = gw.takeover()
        handed_over(second, third)
        loop.wait_ok(20)
    finally:
        ok, failed = loop.stop()
    print(f"visitors answered {ok}, failed {failed}")
    assert failed == 0, loop.errors
    served = [visitors(p) for p in (first, second, third)]
    assert all(n > 0 for n in served), f"visitors per process {served}"
    assert first.events("handover_started")[0]["sockets"] == "4"  # tunnel, echo, admin, handover
    gw.wait_tunnels(2)
    assert echo_works(gw.port("echo"))


def test_handover_applies_the_new_config_listeners(wall, echo, tmp_path):
    """The new process builds from its own config: an address both configs name is taken
    over (its visitors never refused), one only the old had is closed, one only the new
    has is bound fresh."""
    target = echo()
    a, b, c = port(), port(), port()
    gw = gateway(wall, tmp_path, {"echo": svc(listen=[f"127.0.0.1:{a}", f"127.0.0.1:{b}"])})
    wall.agent("site-a", gw, {"echo": target.addr})
    gw.wait_tunnels(2)
    cfg = gw.config_path.read_text()
    gw.config_path.write_text(cfg.replace(f"127.0.0.1:{b}", f"127.0.0.1:{c}"))
    loop = VisitorLoop(a).start()
    try:
        loop.wait_ok(20)
        old, new = gw.takeover()
        handed_over(old, new)
        loop.wait_ok(20)
    finally:
        ok, failed = loop.stop()
    assert failed == 0, loop.errors
    assert new.events("takeover_taken")[0]["unused_closed"] == "1"
    assert echo_works(c)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", b), timeout=5)


def test_long_download_finishes_byte_exact_across_a_handover(wall, nginx, www, tmp_path):
    """A 64 MiB download read slowly, started before the handover, finishes byte-exact
    through the old process after it stopped accepting; the new one serves meanwhile."""
    web = nginx()
    gw = gateway(wall, tmp_path, {"web": svc()}, drain_timeout="60")
    wall.agent("site-a", gw, {"web": web.addr})
    gw.wait_tunnels(2)
    f = www["64m.bin"]
    result = {}
    url = f"http://127.0.0.1:{gw.port('web')}/{f.name}"
    dl = threading.Thread(target=lambda: result.update(
        r=curl_sha256(url, "--limit-rate", "12M", timeout=60)))
    dl.start()
    old = gw.proc
    old.wait_event("visitor", timeout=5)
    _, new = gw.takeover()
    new.wait_event("takeover_serving", timeout=15)
    old.wait_event("handover_done", timeout=5)
    assert old.alive() and dl.is_alive(), "the download ended before the handover"
    rc, digest, size, err = curl_sha256(f"http://127.0.0.1:{gw.port('web')}/1k.bin")
    assert rc == 0 and digest == www["1k.bin"].sha256, err
    assert visitors(new) == 1
    dl.join(90)
    rc, digest, size, err = result["r"]
    assert rc == 0, err
    assert (size, digest) == (f.size, f.sha256)
    assert old.wait_exit(15) == 0


def holder(server_port, client_port):
    """The pid whose socket is the server end of the connection from client_port (ss), or
    None while the connection still waits in the accept queue."""
    if shutil.which("ss") is None:
        pytest.fail("ss is needed (iproute2; scripts/deps.sh installs it)")
    r = subprocess.run(["ss", "-Htnp", "state", "established", "(", "sport", "=",
                        f":{server_port}", "and", "dport", "=", f":{client_port}", ")"],
                       capture_output=True, text=True, timeout=10)
    m = re.search(r"pid=(\d+)", r.stdout)
    return int(m.group(1)) if m else None


def test_visitor_waiting_for_its_first_byte_is_served_by_the_old_process(wall, echo, tmp_path):
    """With first_byte_timeout a visitor waits in the listener until it speaks: one that
    connected before the handover and speaks after it is still carried by the old process
    (which keeps such visitors while it drains), not dropped with its listener."""
    target = echo()
    gw = gateway(wall, tmp_path, {"echo": svc(first_byte_timeout="30")}, drain_timeout="30")
    wall.agent("site-a", gw, {"echo": target.addr})
    gw.wait_tunnels(2)
    quiet = socket.create_connection(("127.0.0.1", gw.port("echo")), timeout=10)
    try:
        wait_until(lambda: holder(gw.port("echo"), quiet.getsockname()[1]) == gw.proc.pid, 5,
                   "the old process to accept the quiet visitor")
        old, new = gw.takeover()
        new.wait_event("takeover_serving", timeout=15)
        old.wait_event("handover_done", timeout=5)
        assert old.alive()
        assert echo_works(gw.port("echo"))             # a new visitor: the new process
        quiet.sendall(b"late\n")
        assert quiet.recv(16) == b"late\n"
    finally:
        quiet.close()
    assert old.wait_exit(15) == 0
    assert visitors(old) == 1 and visitors(new) == 1


def test_agent_handover_refuses_no_visitor(wall, echo, tmp_path):
    """A new agent with --takeover dials its tunnels first; only then does the old one
    drain and exit. The gateway gives new visitors to the new instance and lets the old
    one's streams finish (no reset of another instance's tunnels)."""
    target = echo()
    gw = wall.gateway({"echo": svc()})
    ag = wall.agent("site-a", gw, {"echo": target.addr},
                    extra={"handover": str(tmp_path / "agent.sock")})
    gw.wait_tunnels(2)
    loop = VisitorLoop(gw.port("echo")).start()
    try:
        loop.wait_ok(20)
        before = ag.metric("netwall_streams_total")
        assert before > 0
        old, new = ag.takeover()
        new.wait_event("takeover_serving", timeout=15)
        old.wait_event("handover_done", timeout=5)
        assert old.wait_exit(15) == 0, old.tail(30)
        loop.wait_ok(20)
    finally:
        ok, failed = loop.stop()
    print(f"visitors answered {ok}, failed {failed}")
    assert failed == 0, loop.errors
    assert new.events("takeover_serving")[0]["ready"] == "yes"
    assert ag.metric("netwall_streams_total") > 0     # the new process's own count
    assert gw.proc.events("tunnel_down", reason="replaced") == []
    gw.wait_tunnels(2)


def test_new_agent_killed_mid_handover_old_serves_on(wall, echo, tmp_path):
    """A new agent that cannot be ready (its config names a second gateway that is down) is
    killed while it waits: its tunnels, which announced no service yet, go; the old agent,
    never told to drain, serves on, and no visitor fails."""
    target = echo()
    gw = wall.gateway({"echo": svc()})
    ag = wall.agent("site-a", gw, {"echo": target.addr},
                    extra={"handover": str(tmp_path / "agent.sock")})
    gw.wait_tunnels(2)
    down = port()
    ag.config_path.write_text(ag.config_path.read_text().replace(
        f"gateway = {gw.tunnel_addr}", f"gateway = {gw.tunnel_addr}\ngateway = 127.0.0.1:{down}"))
    loop = VisitorLoop(gw.port("echo")).start()
    try:
        loop.wait_ok(20)
        mark = gw.proc.mark()
        old, new = ag.takeover()
        new.wait_event("takeover_taken", timeout=10)
        gw.proc.wait_event("tunnel_up", since=mark, count=2, timeout=10)  # the new instance
        loop.wait_ok(20)
        new.kill()
        gw.proc.wait_event("tunnel_down", since=mark, count=2, timeout=10)
        loop.wait_ok(50)
    finally:
        ok, failed = loop.stop()
    print(f"visitors answered {ok}, failed {failed}")
    assert failed == 0, loop.errors
    assert old.alive() and old.events("handover_done") == []
    old.wait_event("handover_aborted", timeout=5)
    assert echo_works(gw.port("echo"))
    ag.proc = old


def test_new_gateway_killed_mid_handover_old_serves_on(wall, echo, tmp_path):
    """The new process dies (kill -9) while it waits for an agent that never comes: the
    old one takes tunnels again, its retired tunnels carry visitors meanwhile, and no
    visitor fails; a later takeover still works."""
    target = echo()
    # site-b never connects: the new process waits for it (HANDOVER_WAIT) before serving
    gw = gateway(wall, tmp_path, {"echo": svc(agents=("site-a", "site-b"))})
    wall.agent("site-a", gw, {"echo": target.addr})
    gw.wait_tunnels(2)
    old = gw.proc
    loop = VisitorLoop(gw.port("echo")).start()
    try:
        loop.wait_ok(20)
        _, new = gw.takeover()
        new.wait_event("takeover_taken", timeout=10)
        old.wait_event("handover_started", timeout=5)
        new.wait_event("tunnel_up", count=2, timeout=10)   # the agent moved to the new one
        new.kill()
        old.wait_event("handover_aborted", timeout=5)
        old.wait_event("tunnel_up", count=4, timeout=15)   # ... and came back
        loop.wait_ok(50)
    finally:
        ok, failed = loop.stop()
    print(f"visitors answered {ok}, failed {failed}")
    assert failed == 0, loop.errors
    assert visitors(new) == 0
    gw.proc = old
    # the next takeover, without the agent that never comes, still works
    gw.config_path.write_text(gw.config_path.read_text().replace("site-a, site-b", "site-a"))
    _, again = gw.takeover()
    handed_over(old, again)
    assert again.events("takeover_serving")[0]["ready"] == "yes"
    assert echo_works(gw.port("echo"))


def msg(magic=b"netwall1", kind=1, count=0, role=b"gateway"):
    """A handover message as core/handover.c lays it out (32 bytes)."""
    return magic + struct.pack("=II", kind, count) + role.ljust(16, b"\0")


def test_handover_socket_refuses_other_uid_and_garbage(wall, echo, tmp_path):
    """The handover socket is 0600 and answers only its own uid (SO_PEERCRED); a message of
    the wrong shape, type or role ends only that connection. The daemon serves on
    throughout, and hands over after all that."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv is needed (util-linux; scripts/deps.sh installs it)")
    target = echo()
    # a directory another uid may enter, so that only the socket's own checks stand
    where = tempfile.mkdtemp(prefix="netwall-upgrade-", dir="/tmp")
    os.chmod(where, 0o755)
    path = os.path.join(where, "gateway.sock")
    try:
        gw = gateway(wall, tmp_path, {"echo": svc()}, sock=path)
        wall.agent("site-a", gw, {"echo": target.addr})
        gw.wait_tunnels(2)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"

        os.chmod(path, 0o666)    # past the mode: the uid check must still refuse
        probe = ("import socket,sys\n"
                 "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                 "s.connect(sys.argv[1]); s.settimeout(5)\n"
                 "try:\n"
                 "    s.send(sys.argv[2].encode()); print(repr(s.recv(64)))\n"
                 "except (BrokenPipeError, ConnectionResetError):\n"
                 "    print(repr(b''))\n")
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "/usr/bin/python3", "-c", probe, path, "hello"], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0 and r.stdout.strip() == "b''", (r.stdout, r.stderr)
        gw.proc.wait_event("handover_refused", reason="uid")
        os.chmod(path, 0o600)

        for junk in (b"x", msg() + b"more", os.urandom(32), msg(magic=b"netwall0"),
                     msg(kind=99), msg(role=b"agent")):
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.connect(path)
                s.settimeout(5)
                s.send(junk)
                assert s.recv(64) == b""
        gw.proc.wait_event("handover_refused", reason="garbage", count=5)
        gw.proc.wait_event("handover_refused", reason="role")
        assert gw.proc.events("handover_started") == []
        assert echo_works(gw.port("echo"))
        old, new = gw.takeover()
        handed_over(old, new)
        assert echo_works(gw.port("echo"))
    finally:
        shutil.rmtree(where, ignore_errors=True)


def gone(pid):
    """True once pid has exited (reaped, or a zombie of whoever adopted it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_systemd_reload_detaches_and_names_the_new_main_pid(wall, echo, tmp_path, monkeypatch):
    """deploy/systemd's ExecReload: `--takeover --detach` returns 0 once the new process
    serves, leaving it running, and the new process tells the service manager it is the
    main one (MAINPID=, READY=1 on $NOTIFY_SOCKET) before the old one goes."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(15)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    target = echo()
    gw = gateway(wall, tmp_path, {"echo": svc()})
    assert notify.recv(256).decode() == f"MAINPID={gw.proc.pid}\nREADY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")      # the agent is another service
    wall.agent("site-a", gw, {"echo": target.addr})
    gw.wait_tunnels(2)
    old = gw.proc
    log = tmp_path / "reload.log"
    new_pid = None
    try:
        with open(log, "wb") as out:
            r = subprocess.run([NETWALL_BIN, "gateway", "-c", gw.config_path, "--takeover",
                                "--detach"], stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=30,
                               env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert r.returncode == 0, log.read_text()
        state = notify.recv(256).decode()
        assert state.startswith("MAINPID=") and state.endswith("\nREADY=1"), state
        new_pid = int(state.split("\n")[0].split("=")[1])
        assert new_pid != old.pid and not gone(new_pid)
        assert "event=takeover_serving ready=yes" in log.read_text()
        old.wait_event("handover_done", timeout=5)
        assert old.wait_exit(15) == 0
        assert echo_works(gw.port("echo"))
    finally:
        if new_pid is not None and not gone(new_pid):
            os.kill(new_pid, signal.SIGTERM)
            wait_until(lambda: gone(new_pid), 15, "the detached gateway to exit")
    text = log.read_text()
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: ",
                   "event=forbidden_syscall"):
        assert marker not in text, text[-3000:]
    assert "event=stopped" in text

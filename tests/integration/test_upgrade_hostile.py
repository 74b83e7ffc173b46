"""Hostile review of the handover: a takeover must hand its listening sockets only to a
peer of its own uid (or root), as the old side already requires of the new one."""
import os
import socket
import struct
import shutil
import subprocess
import tempfile
import pytest

from conftest import NETWALL_BIN, svc
from test_upgrade import gateway


def _fake_old_daemon(path, uid):
    """A process of another uid answering on the handover path: reads the hello and
    says END with no socket, as if it were the old daemon."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setgid(uid)
        os.setuid(uid)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.bind(path)
        s.listen(1)
        os.write(w, b"x")
        c, _ = s.accept()
        c.recv(64)
        c.send(b"netwall1" + struct.pack("=II", 3, 0) + b"\0" * 16)
        c.recv(64)
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    return pid


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
def test_takeover_refuses_an_old_daemon_of_another_uid(wall, echo, tmp_path):
    """The directory is the other user's own (mode 0700, so not refused as writable by
    others); root's daemon binds there, stops, and that user puts a socket at the path."""
    shared = tempfile.mkdtemp(prefix="netwall-shared-", dir="/tmp")
    os.chown(shared, 65534, 65534)
    os.chmod(shared, 0o700)
    sock = os.path.join(shared, "gateway.sock")
    gw = gateway(wall, tmp_path, {"echo": svc()}, sock=sock)
    gw.proc.stop()
    if os.path.exists(sock):
        os.unlink(sock)
    pid = _fake_old_daemon(sock, 65534)
    new = subprocess.Popen([NETWALL_BIN, "gateway", "-c", str(gw.config_path), "--takeover"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # refusing exits at once; a takeover that trusts the peer goes on serving
        rc = new.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        if new.poll() is None:
            new.kill()
        err = new.communicate()[1]
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        shutil.rmtree(shared, ignore_errors=True)
    assert rc not in (None, 0), "took over from a process of uid 65534:\n" + err[-2000:]


def test_a_handover_path_in_a_directory_others_may_write_is_refused(wall, echo, tmp_path):
    """In /tmp (mode 1777) anyone may put a socket at the path before the daemon binds it:
    the daemon does not start, and says why."""
    shared = tempfile.mkdtemp(prefix="netwall-shared-", dir="/tmp")
    os.chmod(shared, 0o1777)
    try:
        gw = gateway(wall, tmp_path, {"echo": svc()}, sock=os.path.join(shared, "gw.sock"),
                     start=False)
        r = subprocess.run([NETWALL_BIN, "gateway", "-c", str(gw.config_path)],
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert r.returncode != 0
    assert "is writable by others (mode 1777)" in r.stderr, r.stderr[-2000:]

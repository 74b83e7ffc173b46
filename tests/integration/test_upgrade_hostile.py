"""Hostile review of the handover: a takeover must hand its listening sockets only to a
peer of its own uid (or root), as the old side already requires of the new one."""
import os
import socket
import struct
import subprocess
import pytest

from conftest import NETWALL_BIN
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
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # a careless operator's /tmp
    sock = str(shared / "gateway.sock")
    gw = gateway(wall, tmp_path, {"echo": {"target": echo}}, sock=sock)
    gw.proc.stop() if hasattr(gw.proc, "stop") else gw.proc.kill()
    if os.path.exists(sock):
        os.unlink(sock)
    pid = _fake_old_daemon(sock, 65534)
    try:
        p = subprocess.run([NETWALL_BIN, "gateway", "-c", gw.config_path, "--takeover"],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode != 0, "took over from a process of another uid:\n" + p.stderr
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)

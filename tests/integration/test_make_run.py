"""`make run` proves the wall: as root with network namespaces, the private side (agent,
intake, demo service, EMAR stand-in) runs in a namespace that drops every inbound SYN, and
the script shows a direct connection to the intake failing next to a message reaching it
through the gateway. Without namespaces it runs on loopback and says so."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO, wait_until

# make run's fixed ports on this host (scripts/run.sh)
HOST_PORTS = (8080, 2575, 7443, 9100)
LOOPBACK_PORTS = (8000, 8088, 9101, 9102, 12575)   # the private side, when on loopback
PRIV_IP = "198.18.77.2"


def port_busy(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class MakeRun:
    """`make run` (or argv) in a session of its own, its output in tmp_path/TAG.out."""

    def __init__(self, tmp_path, netns, argv=("make", "--no-print-directory", "run"),
                 tag="make-run", check_ports=True):
        busy = [p for p in HOST_PORTS + LOOPBACK_PORTS if port_busy(p)] if check_ports else []
        assert not busy, f"make run's ports are in use ({busy}): is a make run running?"
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        env["NETWALL_RUN_DIR"] = str(tmp_path / "run")
        env["NETWALL_RUN_NETNS"] = "auto" if netns else "off"
        self.out_path = tmp_path / f"{tag}.out"
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen(list(argv), cwd=REPO, env=env, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def text(self):
        return self.out_path.read_text(errors="replace")

    def wait_running(self):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"make run exited with {self.proc.returncode}:\n{self.text()}")
            return "Press Ctrl-C to stop." in self.text()
        wait_until(ready, 240, "make run to print that it runs")
        return self.text()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.out.close()


@pytest.fixture
def make_run(tmp_path):
    if os.environ.get("NETWALL_SANITIZED"):
        pytest.skip("make run runs the release build: tested in the release pass")
    runs = []

    def start(netns):
        r = MakeRun(tmp_path, netns)
        runs.append(r)
        return r
    yield start
    for r in runs:
        r.stop()


def curl(*args):
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=30)


def test_make_run_puts_the_private_side_behind_a_firewall(make_run):
    if os.geteuid() != 0:
        pytest.skip("make run makes its namespace only as root")
    run = make_run(netns=True)
    out = run.wait_running()
    if "Layout: everything on this host's loopback" in out:
        pytest.skip("no network namespaces here: " + out.split("namespace: ", 1)[-1].split(")")[0])
    assert f"runs in network\nnamespace nwrun-priv ({PRIV_IP})" in out, out
    direct = re.search(r"^  direct: +(.*)$", out, re.M)
    via = re.search(r"^  through the wall: (.*)$", out, re.M)
    dropped = re.search(r"^  inbound SYNs the private side dropped: (\d+)$", out, re.M)
    assert direct and via and dropped, out
    assert "cannot connect" in direct.group(1) and "timed out" in direct.group(1), out
    assert via.group(1).endswith(" AA"), out
    assert int(dropped.group(1)) >= 1, out
    # the EMAR stand-in in the namespace got the message the intake stored
    wait_until(lambda: "delivered id=1 " in run.text(), 30, "the EMAR stand-in's delivery line")

    # checked here as well, not only as the script says: the demo page through the gateway,
    # while a direct connection to the demo service's namespace times out (SYN dropped, not
    # refused) and nothing of the private side listens on this host
    page = curl("--max-time", "10", "http://127.0.0.1:8080/")
    assert page.returncode == 0 and "Hello through the wall" in page.stdout, page.stderr
    direct = curl("--max-time", "2", f"http://{PRIV_IP}:8000/")
    assert direct.returncode == 28, f"direct connection not dropped: {direct.returncode} {direct.stderr}"
    assert not any(port_busy(p) for p in LOOPBACK_PORTS)

    run.stop()
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "nwrun-priv" not in ns, "make run left its namespace behind"
    assert "stopped." in run.text()


def test_make_run_without_namespaces_says_so(make_run):
    run = make_run(netns=False)
    out = run.wait_running()
    assert ("Layout: everything on this host's loopback (no private network namespace: "
            "NETWALL_RUN_NETNS=off).") in out, out
    sent = subprocess.run([str(REPO / "build" / "netwall"), "send", "--timeout", "10",
                           "127.0.0.1:2575", str(REPO / "tests/data/rde_o11_v26_lfh_medreq.hl7")],
                          capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0 and sent.stdout.strip().endswith(" AA"), sent.stdout + sent.stderr
    page = curl("--max-time", "10", "http://127.0.0.1:8080/")
    assert page.returncode == 0 and "Hello through the wall" in page.stdout, page.stderr

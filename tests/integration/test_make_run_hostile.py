"""`make run` used carelessly: a run whose script was killed (SIGKILL: its daemons live on
in the namespace), then run again. The second run should say what is in the way and
leave the first one's namespace alone, not strip its name (stranding it with its veth)
and print that netwall runs while its own gateway could not listen."""

import os
import signal
import subprocess

import pytest

from conftest import REPO, wait_until
from test_make_run import HOST_PORTS, LOOPBACK_PORTS, MakeRun, port_busy


def netns_pids(name="nwrun-priv"):
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


class Run(MakeRun):
    """scripts/run.sh itself (no make, no port check: the test sets the scene)."""

    def __init__(self, tmp_path, tag):
        super().__init__(tmp_path, True, argv=["scripts/run.sh"], tag=f"run-{tag}",
                         check_ports=False)

    def wait_settled(self):
        """Until it prints that it runs, or exits."""
        wait_until(lambda: self.proc.poll() is not None or "Press Ctrl-C" in self.text(), 120,
                   "run.sh to run or exit")


def test_a_run_after_a_killed_run_keeps_its_namespace_and_says_why(tmp_path):
    if os.environ.get("NETWALL_SANITIZED"):
        pytest.skip("make run runs the release build: tested in the release pass")
    if os.geteuid() != 0:
        pytest.skip("make run makes its namespace only as root")
    busy = [p for p in HOST_PORTS + LOOPBACK_PORTS if port_busy(p)]
    assert not busy, f"make run's ports are in use ({busy}): is a make run running?"
    assert not netns_pids(), "a namespace nwrun-priv with processes exists already"
    first = Run(tmp_path, "first")
    orphans = []
    second = None
    try:
        first.wait_settled()
        if "Layout: everything on this host's loopback" in first.text():
            pytest.skip("no network namespaces here")
        # the daemons in the namespace, and the gateway on the host (the script's children)
        orphans = netns_pids()
        kids = subprocess.run(["pgrep", "-P", str(first.proc.pid)], capture_output=True,
                              text=True).stdout.split()
        orphans += [int(p) for p in kids if int(p) not in orphans]
        assert orphans, "no daemons found for the first run"
        os.kill(first.proc.pid, signal.SIGKILL)   # the script only: its daemons live on
        first.proc.wait(10)
        second = Run(tmp_path, "second")
        second.wait_settled()
        out = second.text()
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "nwrun-priv" in names, \
            f"the second run took the name of the first run's namespace, still in use:\n{out}"
        assert "netwall is running" not in out, \
            f"the second run says netwall runs though its daemons could not start:\n{out}"
    finally:
        if second is not None:
            second.stop()
        for p in orphans:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        first.out.close()
        wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in orphans), 30,
                   "the first run's daemons to exit")
        subprocess.run(["ip", "netns", "del", "nwrun-priv"], capture_output=True)


def test_a_run_whose_config_check_fails_leaves_no_namespace(tmp_path):
    """Configs are kept between runs; one edited badly stops the run at `netwall check`,
    after the namespace was made and before the trap that removes it is set."""
    if os.geteuid() != 0:
        pytest.skip("make run makes its namespace only as root")
    assert not netns_pids(), "a namespace nwrun-priv with processes exists already"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "intake.ini").write_text("[intake]\nlisten = nonsense\n")
    env = dict(os.environ, NETWALL_RUN_DIR=str(run_dir), NETWALL_RUN_NETNS="auto")
    r = subprocess.run(["scripts/run.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    try:
        assert r.returncode != 0 and "listen: bad address" in r.stdout + r.stderr, r.stdout
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "nwrun-priv" not in names, "the failed run left its namespace (and veth) behind"
    finally:
        subprocess.run(["ip", "netns", "del", "nwrun-priv"], capture_output=True)

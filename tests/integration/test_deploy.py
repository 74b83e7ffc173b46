"""deploy/: the compose file validated by docker-compose (no Docker engine runs here) and
checked for the EMAR layout; the systemd units checked by systemd-analyze verify; the
Dockerfile's shape."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import NETWALL_BIN, REPO

DEPLOY = REPO / "deploy"


def test_compose_file_is_valid_and_only_the_gateway_is_exposed():
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is needed (scripts/deps.sh installs it)")
    r = subprocess.run(["docker-compose", "-f", DEPLOY / "compose.yaml", "config"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    services = cfg["services"]
    assert set(services) >= {"gateway", "agent", "intake", "chat", "db", "emar"}
    exposed = {name for name, s in services.items() if s.get("ports")}
    assert exposed == {"gateway"}, f"only the gateway publishes ports, not {exposed}"
    assert cfg["networks"]["private"]["internal"] is True
    nets = {name: set(s.get("networks", {})) for name, s in services.items()}
    assert nets["agent"] == {"private", "egress"}
    assert "private" not in nets["gateway"]
    for name in ("intake", "chat", "db", "emar"):
        assert nets[name] == {"private"}, f"{name} must sit on the internal network alone"


def units(tmp_path):
    """The units with ExecStart pointing at the binary under test, for verify."""
    out = []
    for f in sorted((DEPLOY / "systemd").glob("*.service")):
        text = f.read_text().replace("/usr/local/bin/netwall", str(Path(NETWALL_BIN).resolve()))
        dst = tmp_path / f.name
        dst.write_text(text)
        out.append((f.name, text, dst))
    return out


def test_systemd_units_verify_and_are_hardened(tmp_path):
    us = units(tmp_path)
    assert {u[0] for u in us} == {"netwall-gateway.service", "netwall-agent.service",
                                  "netwall-intake.service", "netwall-chat.service"}
    # verify also runs `man` for every Documentation=man: page: point it at the repo's pages
    env = {**os.environ, "MANPATH": str(DEPLOY.parent / "man")}
    r = subprocess.run(["systemd-analyze", "verify", *[str(u[2]) for u in us]],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    for name, text, _ in us:
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                     "DynamicUser=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"):
            assert line in text, f"{name}: {line}"
        caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).strip()
        assert caps == ("CAP_NET_BIND_SERVICE" if "gateway" in name else ""), (name, caps)


def test_systemd_verify_catches_a_mistake(tmp_path):
    """The check above can fail: a misspelt key is reported."""
    name, text, dst = units(tmp_path)[0]
    dst.write_text(text.replace("NoNewPrivileges=yes", "NoNewPrivilegez=yes"))
    r = subprocess.run(["systemd-analyze", "verify", str(dst)], capture_output=True,
                       text=True, timeout=60)
    assert "NoNewPrivilegez" in r.stderr


def test_dockerfile_builds_in_one_stage_and_runs_in_a_slim_one_as_non_root():
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["debian:bookworm", "debian:bookworm-slim"]
    assert re.search(r"^USER netwall$", text, re.M)
    assert "COPY --from=build /src/build/netwall /usr/local/bin/netwall" in text


def documented_keys():
    """Every key docs/config.md documents: the backticked names in its tables' first column."""
    keys = set()
    for line in (REPO / "docs" / "config.md").read_text().splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z][a-z0-9_]*)`", line.split("|")[1]))
    return keys


def test_the_pharmacy_link_section_names_real_keys_metrics_and_files():
    """docs/deploy.md's pharmacy-link section: every config key it names is in docs/config.md,
    every metric in docs/metrics.md, every path exists."""
    text = (REPO / "docs" / "deploy.md").read_text()
    assert "## The pharmacy link: when the wall alone is enough, and when to add a VPN" in text
    section = text.split("## The pharmacy link", 1)[1].split("\n## ", 1)[0]
    spans = re.findall(r"`([^`]+)`", section)
    keys = documented_keys()
    assert {"allow", "proxy_protocol", "proxy", "proxy_from", "client_certs"} <= keys
    named = set()
    for s in spans:
        if s.startswith(("netwall_", "deploy/", "tests/", "docs/")):
            continue
        named.update(re.findall(r"(?:^|\]\s*)([a-z_]+) =\s", s))
        if re.fullmatch(r"[a-z_]+", s):
            named.add(s)
    assert named, "no config keys found in the section"
    assert named <= keys, f"not in docs/config.md: {sorted(named - keys)}"
    metrics = (REPO / "docs" / "metrics.md").read_text()
    for s in spans:
        if s.startswith("netwall_"):
            assert f"`{s.split('{')[0]}`" in metrics, s
        elif s.startswith(("deploy/", "tests/", "docs/")):
            assert (REPO / s).exists(), s


def test_dockerfile_runtime_holds_every_library_the_binary_links():
    """Every shared library build/netwall needs comes from a package the runtime stage
    installs (or from the base image's libc), and the build stage has every -dev package
    scripts/deps.sh installs for the Makefile's libraries."""
    NETWALL_BIN = str(REPO / "build" / "netwall")   # the release build, as the image has
    text = (DEPLOY / "Dockerfile").read_text()
    build, runtime = text.split("\nFROM debian:bookworm-slim", 1)
    base = {"libc6"}     # in the base image; apt brings the rest's own dependencies
    paths = dict(re.findall(r"^\s*(\S+) => (\S+) \(", subprocess.run(
        ["ldd", NETWALL_BIN], capture_output=True, text=True).stdout, re.M))
    needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(
        ["objdump", "-p", NETWALL_BIN], capture_output=True, text=True).stdout)
    libs = [paths[n] for n in needed]
    assert libs, "ldd found no libraries"
    wanted = set()
    for lib in libs:
        r = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        assert r.returncode == 0, f"no package owns {lib}"
        wanted.add(r.stdout.split(":")[0])
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", runtime.split("apt-get install", 1)[1]
                               .split("&&", 1)[0]))
    missing = sorted(wanted - installed - base)
    assert not missing, f"the runtime stage lacks {missing}"
    for dev in ("libevent-dev", "libssl-dev", "libnghttp2-dev", "libinih-dev",
                "libsqlite3-dev", "libpq-dev", "libcurl4-openssl-dev", "libjansson-dev",
                "libseccomp-dev"):
        assert dev in build, f"the build stage lacks {dev}"

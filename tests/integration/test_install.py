"""`make install` and the man pages: what goes where, that every page renders without a
warning, that every command of `netwall --help` and every option of its `--help` is in a
page, that every key of docs/config.md is in netwall.conf(5) under its section, and that
`man netwall` finds the pages in the repository when build/ is in PATH."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import NETWALL_BIN, REPO

MAN = REPO / "man"
CONF_PAGE = MAN / "man5" / "netwall.conf.5"
CONFIG_DOC = REPO / "docs" / "config.md"
# The pages there must be at least, whatever else is added.
REQUIRED = {"man1/netwall.1", "man1/netwall-gateway.1", "man1/netwall-agent.1",
            "man1/netwall-intake.1", "man1/netwall-send.1", "man1/netwall-messages.1",
            "man1/netwall-chat.1", "man1/netwall-check.1", "man1/netwall-keygen.1",
            "man5/netwall.conf.5"}
# Keys of every daemon's main section that netwall.conf(5) documents even before
# docs/config.md has them.
DAEMON_KEYS = {"admin", "admin_token_file", "log_level", "drain_timeout", "user", "allow_root",
               "seccomp"}
NEW_KEYS = {"admin_token_file", "user", "allow_root", "seccomp"}

needs_groff = pytest.mark.skipif(shutil.which("groff") is None,
                                 reason="groff is not installed (Debian: groff-base)")
needs_man = pytest.mark.skipif(shutil.which("man") is None,
                               reason="man is not installed (Debian: man-db)")


def pages():
    return sorted(p.relative_to(MAN).as_posix() for p in MAN.glob("man[15]/*.[15]"))


def clean_env(**extra):
    """The environment without what would change make's or man's behaviour here."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR",
                        "PREFIX", "MANDIR", "MANPATH", "MANOPT", "MANPAGER", "PAGER",
                        "MANWIDTH", "MANSECT")}
    env.update(LC_ALL="C.UTF-8", **extra)
    return env


def make(*args):
    """make in the repository, installing the binary under test and never rebuilding it."""
    binary = Path(NETWALL_BIN).resolve()
    assert binary.name == "netwall" and binary.is_file(), f"NETWALL_BIN={NETWALL_BIN}"
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO),
                           f"B={binary.parent}", "-o", str(binary), *args],
                          capture_output=True, text=True, timeout=60, env=clean_env())


def render(page, *opts):
    """The page as plain text (no bold or underlining), one space between words."""
    r = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", *opts, page], cwd=MAN,
                       capture_output=True, text=True, timeout=30, env=clean_env())
    assert r.returncode == 0, r.stderr
    return " ".join(r.stdout.split())


def installed(root):
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in root.rglob("*") if not p.is_dir()}


def test_make_install_puts_the_binary_and_every_page_in_place(tmp_path):
    assert REQUIRED <= set(pages()), f"missing pages: {REQUIRED - set(pages())}"
    dest = tmp_path / "dest"
    r = make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    assert r.returncode == 0, r.stdout + r.stderr
    want = {"usr/bin/netwall": 0o755}
    want.update({f"usr/share/man/{p}": 0o644 for p in pages()})
    assert installed(dest) == want
    assert (dest / "usr/bin/netwall").read_bytes() == Path(NETWALL_BIN).read_bytes()
    for p in pages():
        assert (dest / "usr/share/man" / p).read_bytes() == (MAN / p).read_bytes(), p

    r = make("uninstall", f"DESTDIR={dest}", "PREFIX=/usr")
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed(dest) == {}, "make uninstall leaves files behind"


def test_make_install_defaults_to_usr_local():
    r = make("-n", "install", "DESTDIR=/nonexistent")
    assert r.returncode == 0, r.stderr
    assert "/nonexistent/usr/local/bin/netwall" in r.stdout, r.stdout
    assert "/nonexistent/usr/local/share/man/man1" in r.stdout, r.stdout
    assert "/nonexistent/usr/local/share/man/man5" in r.stdout, r.stdout


@needs_groff
@needs_man
@pytest.mark.parametrize("page", pages())
def test_page_renders_without_warnings(page):
    # groff with every warning on (an unknown macro, a bad escape, a line it cannot break)
    r = subprocess.run(["groff", "-man", "-ww", "-z", page], cwd=MAN, capture_output=True,
                       text=True, timeout=30, env=clean_env())
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # and as man shows it on an 80-column terminal
    r = subprocess.run(["man", "--warnings", "-l", page], cwd=MAN, capture_output=True,
                       text=True, timeout=30, env=clean_env(MANWIDTH="80"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "NAME" in r.stdout and "netwall" in r.stdout
    # .so pages are resolved from the top of the manual, as man-db does
    for line in (MAN / page).read_text().splitlines():
        if line.startswith(".so "):
            assert (MAN / line[4:].strip()).is_file(), line


def top_commands():
    """The commands `netwall --help` lists, e.g. ["gateway", ..., "chat serve", ...]."""
    r = subprocess.run([NETWALL_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    out, cmds = r.stdout.split("\ncommands:\n", 1)[1], []
    for line in out.splitlines():
        if not line.startswith("  "):
            break
        words = line.split()
        cmds.append(" ".join(words[:2]) if words[0] == "chat" else words[0])
    assert len(cmds) >= 10, out
    return cmds


# The page of each command, and how its --help is asked for.
COMMAND_PAGES = {
    "gateway": "netwall-gateway", "agent": "netwall-agent", "intake": "netwall-intake",
    "send": "netwall-send", "messages": "netwall-messages", "chat serve": "netwall-chat",
    "chat passwd": "netwall-chat", "chat connect": "netwall-chat", "check": "netwall-check",
    "keygen": "netwall-keygen", "fingerprint": "netwall-keygen",
}


def overview_commands():
    """The commands under COMMANDS in netwall(1): the words of each tag before its
    arguments (in capitals) and options."""
    cmds, section = set(), None
    lines = (MAN / "man1" / "netwall.1").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".SH "):
            section = line[4:].strip('"')
        elif line == ".TP" and section == "COMMANDS":
            words = re.split(r"\s+|\[", roff_plain(lines[i + 1]).strip())
            cmds.add(" ".join(w for w in words[:2] if re.fullmatch(r"[a-z]+", w)))
    return cmds


@needs_groff
def test_every_command_has_a_page():
    cmds = top_commands()
    listed = overview_commands()
    missing = []
    for cmd in cmds:
        if cmd not in listed:
            missing.append(f"{cmd}: not under COMMANDS in netwall(1) ({sorted(listed)})")
        if cmd == "version":
            continue  # no page of its own: netwall(1) has it
        name = cmd.split()[0]
        if not (MAN / "man1" / f"netwall-{name}.1").is_file():
            missing.append(f"{cmd}: no man1/netwall-{name}.1")
            continue
        text = render(f"man1/netwall-{name}.1")
        if f"netwall {cmd}" not in text.split("DESCRIPTION", 1)[0]:
            missing.append(f"{cmd}: not in the SYNOPSIS of netwall-{name}(1)")
        if cmd not in COMMAND_PAGES:
            missing.append(f"{cmd}: new command, add it to COMMAND_PAGES")
    assert not missing, "\n".join(missing)


OPTION_RE = re.compile(r"(?<![\w-])--?[a-z][a-z0-9-]*")


def help_text(cmd):
    r = subprocess.run([NETWALL_BIN, *cmd.split(), "--help"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


@needs_groff
@pytest.mark.parametrize("cmd", sorted(COMMAND_PAGES))
def test_every_option_of_a_command_is_in_its_page(cmd):
    text = render(f"man1/{COMMAND_PAGES[cmd]}.1")
    options = set(OPTION_RE.findall(help_text(cmd))) - {"-"}
    missing = sorted(o for o in options
                     if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", text))
    assert not missing, f"netwall {cmd} --help has options its page lacks: {missing}"


def doc_keys():
    """{(daemon, section): keys} from the tables of docs/config.md."""
    keys, daemon, section = {}, None, None
    for line in CONFIG_DOC.read_text().splitlines():
        if m := re.match(r"## (\w+)", line):
            daemon, section = m.group(1).lower(), None
        elif m := re.match(r"### `(\[[^\]]+\])`", line):
            section = m.group(1)
        elif line.startswith("|") and daemon and section:
            found = re.findall(r"`([a-z][a-z0-9_]*)`", line.split("|")[1])
            keys.setdefault((daemon, section), set()).update(found)
    return keys


def roff_plain(line):
    """A macro line as text: no macro name, quotes, font changes or escapes."""
    line = re.sub(r"^\.\w+\s*", "", line)
    line = re.sub(r"\\f[BIRP]", "", line).replace("\\-", "-").replace("\\|", "")
    return line.replace('"', "")


def page_keys():
    """{(daemon, section): keys} from the .TP tags of netwall.conf(5); the keys shared by
    every daemon's main section are under ("common", None)."""
    keys, daemon, section = {}, None, None
    lines = CONF_PAGE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".SH "):
            daemon, section = line[4:].strip('"').split()[0].lower(), None
        elif line.startswith(".SS "):
            section = line[4:].strip().strip('"')
        elif line == ".TP" and daemon:
            for part in roff_plain(lines[i + 1]).split(","):
                key = part.split("=")[0].strip()
                assert re.fullmatch(r"[a-z][a-z0-9_]*", key), f"tag {lines[i + 1]!r}: key {key!r}?"
                keys.setdefault((daemon, section), set()).add(key)
    return keys


def test_every_config_key_is_in_netwall_conf_5():
    docs, page = doc_keys(), page_keys()
    assert sum(map(len, docs.values())) > 80, "docs/config.md did not parse"
    common = page.get(("common", None), set())
    assert DAEMON_KEYS <= common, f"COMMON KEYS lacks {DAEMON_KEYS - common}"
    missing = []
    for (daemon, section), ks in sorted(docs.items()):
        main = section == f"[{daemon}]"
        for k in sorted(ks):
            if k not in page.get((daemon, section), set()) and not (main and k in common):
                missing.append(f"{daemon} {section} {k}")
    assert not missing, "keys of docs/config.md missing from netwall.conf(5):\n" + \
        "\n".join(missing)

    # and nothing in the page that the docs do not have (a renamed or removed key)
    extra = []
    for (daemon, section), ks in sorted(page.items(), key=str):
        if daemon == "common":
            mains = [docs.get((d, f"[{d}]"), set()) for d in ("gateway", "agent", "intake",
                                                               "chat")]
            extra += [f"common {k}" for k in ks if k not in NEW_KEYS
                      and not all(k in m for m in mains)]
        else:
            extra += [f"{daemon} {section} {k}" for k in ks
                      if k not in docs.get((daemon, section), set())]
    assert not extra, "keys in netwall.conf(5) that docs/config.md lacks:\n" + "\n".join(extra)


@needs_man
def test_man_finds_the_pages_of_the_build_tree(tmp_path):
    """man-db adds DIR/../man for each DIR of PATH: with build/ in PATH, the repository's
    man/ comes first, whatever is installed elsewhere."""
    env = clean_env(PATH=f"{REPO / 'build'}:/usr/bin:/bin", HOME=str(tmp_path),
                    MANWIDTH="80")
    for name, page in (("netwall", "man1/netwall.1"), ("netwall-intake", "man1/netwall-intake.1"),
                       ("netwall.conf", "man5/netwall.conf.5")):
        r = subprocess.run(["man", "-w", name], capture_output=True, text=True, timeout=30,
                           env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [str(MAN / page)], r.stdout
    r = subprocess.run(["man", "netwall"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    shown = " ".join(r.stdout.split())
    assert shown.startswith("NETWALL(1)"), shown[:200]
    name_line = " ".join(render("man1/netwall.1").split("NAME", 1)[1].split("SYNOPSIS")[0]
                         .split())
    assert name_line and name_line in shown

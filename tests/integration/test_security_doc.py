"""docs/security.md names the test that tries each attack: every test it names exists, so
the table cannot point at a test that was renamed or removed."""

import re

from conftest import REPO

DOC = REPO / "docs" / "security.md"


def named_tests():
    """(file, name) for every `file.py::name` and `file.c::name` in the document; a bare
    `::name` after a semicolon or comma belongs to the file named before it."""
    out = []
    for line in DOC.read_text().splitlines():
        last = None
        for m in re.finditer(r"`(?:([\w/]+\.(?:py|c)))?::([\w.]+)`", line):
            f = m.group(1) or last
            assert f, f"{line[:80]}: '::{m.group(2)}' without a file"
            last = f
            out.append((f, m.group(2)))
    return out


def test_every_named_test_exists():
    tests = named_tests()
    assert len(tests) >= 30
    missing = []
    for f, name in tests:
        name = name.rstrip(".")
        if name.endswith("..."):
            continue
        path = next((p for d in ("tests/integration", "tests/unit")
                     if (p := REPO / d / f.split("/")[-1]).exists()), None)
        if path is None:
            missing.append(f"{f} (no such file)")
            continue
        text = path.read_text()
        if not re.search(rf"\b(def|void) {re.escape(name)}\(", text):
            missing.append(f"{f}::{name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"


def test_every_hostile_test_is_in_the_table():
    """Each test in a test_hostile_*.py file appears in the document."""
    named = {name for _, name in named_tests()}
    absent = []
    for path in sorted((REPO / "tests" / "integration").glob("test_hostile_*.py")):
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.M):
            if name not in named:
                absent.append(f"{path.name}::{name}")
    assert not absent, f"hostile tests docs/security.md does not list: {absent}"

"""docs/architecture.md opens with the map of src/ and the walks of one visitor byte and one
HL7 message through it: every file the map lists exists in the folder it names, every file
of src/ is on the map, and every function a walk names is defined in the file it is named
with. The document cannot drift from the code unnoticed."""

import re

from conftest import REPO

DOC = REPO / "docs" / "architecture.md"
SRC = REPO / "src"


def section(title):
    text = DOC.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end != -1 else len(text)]


def map_files():
    """{folder: set of file names} from the map's code block."""
    block = section("## The map").split("```")[1]
    out, folder = {}, None
    for line in block.splitlines():
        m = re.match(r"\s*(\w+)/\s", line)
        if m and m.group(1) != "src":
            folder = m.group(1)
        if folder:
            out.setdefault(folder, set()).update(re.findall(r"(?<![/\w])(\w+\.[ch])\b", line))
    return out


def test_every_file_on_the_map_exists_and_every_c_file_is_on_it():
    listed = map_files()
    assert set(listed) >= {"core", "hl7", "wall", "intake", "chat", "cli"}
    missing = [f"{d}/{f}" for d, files in listed.items() for f in files
               if not (SRC / d / f).exists()]
    assert not missing, f"on the map, not in src/: {missing}"
    unlisted = [str(p.relative_to(SRC)) for p in SRC.glob("*/*.c")
                if p.name not in listed.get(p.parent.name, set())]
    assert not unlisted, f"in src/, not on the map: {unlisted}"


def test_every_function_a_walk_names_is_in_its_file():
    walks = section("### One visitor byte") + section("### One HL7 message")
    named = re.findall(r"`((?:\w+)/\w+\.c)` \(([^)]*)\)", walks)
    assert len(named) >= 12
    wrong = []
    for path, fns in named:
        text = (SRC / path).read_text()
        for fn in re.findall(r"`(\w+)`", fns):
            if not re.search(rf"^[a-z][^;\n]*\b{fn}\(", text, re.M):
                wrong.append(f"{path}: {fn}")
    assert not wrong, f"named in a walk, not defined there: {wrong}"

"""scripts/check_house.py, the house rules of src/ that make test checks first: it passes on
src/, and it fails, naming what is wrong, on a tree with a ring of files, a file too long
or a function too long."""

import subprocess
import sys

from conftest import REPO, require

CHECK = REPO / "scripts" / "check_house.py"


def run(src):
    require("ctags")
    return subprocess.run([sys.executable, str(CHECK), str(src)], capture_output=True,
                          text=True, timeout=120)


def write(root, files):
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_src_keeps_the_rules():
    r = run(REPO / "src")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no ring" in r.stdout


def test_a_ring_of_calls_fails(tmp_path):
    """a.c calls b_run() and b.c calls a_run(): a ring of two, each edge named."""
    write(tmp_path, {
        "p/a.h": "void a_run(void);\n",
        "p/a.c": '#include "p/a.h"\nvoid b_run(void);\nvoid a_run(void)\n{\n\tb_run();\n}\n',
        "p/b.c": "void a_run(void);\nvoid b_run(void)\n{\n\ta_run();\n}\n",
        "p/c.c": '#include "p/a.h"\nvoid c_run(void)\n{\n\ta_run();\n}\n',
    })
    r = run(tmp_path)
    assert r.returncode == 1
    assert "ring of 2 files: p/a p/b" in r.stdout
    assert "p/a -> p/b: " in r.stdout and "uses b_run()" in r.stdout
    assert "p/b -> p/a: " in r.stdout and "uses a_run()" in r.stdout
    assert "p/c" not in r.stdout  # c only depends on a: no ring


def test_a_ring_of_includes_fails_but_a_private_header_does_not(tmp_path):
    """x.h includes y.h and y.c includes x.h: a ring. x_int.h, x's private header, is x."""
    write(tmp_path, {
        "q/x.h": '#include "q/y.h"\n',
        "q/y.h": "int y;\n",
        "q/y.c": '#include "q/x.h"\n',
        "r/z.c": '#include "r/z_int.h"\n',
        "r/z_int.h": '#include "r/z.h"\n',
        "r/z.h": "int z;\n",
    })
    r = run(tmp_path)
    assert r.returncode == 1
    assert "ring of 2 files: q/x q/y" in r.stdout
    assert "r/z" not in r.stdout


def test_a_long_file_and_a_long_function_fail(tmp_path):
    """81 lines from a function's name to its brace fail, 80 pass; 901 lines fail."""
    def fn(name, n):  # the name's line, the brace, n statements, return, the brace
        return f"int {name}(int x)\n{{\n" + "\tx++;\n" * n + "\treturn x;\n}\n"
    write(tmp_path, {
        "s/long.c": fn("f", 77) + "\n" * 820,
        "s/ok.c": fn("g", 76),
    })
    r = run(tmp_path)
    assert r.returncode == 1
    assert "s/long.c:1: f() is 81 lines (at most 80)" in r.stdout
    assert "s/long.c: 901 lines (at most 900)" in r.stdout
    assert "g()" not in r.stdout and "s/ok.c" not in r.stdout

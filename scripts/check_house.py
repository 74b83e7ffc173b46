#!/usr/bin/python3
"""The house rules of src/, checked: no file over 900 lines, no function over 80, and no
ring of files that depend on each other.

A unit is a file without its extension (x.c, x.h and x's private header x_int.h are one
unit). Unit A depends on unit B
when A includes B's header, or when code in A names a function that B defines and exports
(a call, or a callback handed over). A ring is a strongly connected set of two or more
units; each is printed with one reason per edge. Function definitions and their extents
come from universal-ctags (Debian package universal-ctags).

usage: check_house.py [SRC_DIR]   (default: src)
"""
import json
import os
import re
import shutil
import subprocess
import sys

MAX_FILE_LINES = 900
MAX_FUNC_LINES = 80

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
IDENT = re.compile(r'[A-Za-z_]\w*')
# comments, then string and character literals, replaced by spaces (lines kept)
STRIP = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def blank(m):
    return re.sub(r'[^\n]', ' ', m.group(0))


def sources(src):
    out = []
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if f.endswith(('.c', '.h')):
                out.append(os.path.join(root, f))
    return sorted(out)


def functions(paths):
    """[(name, path, first line, last line, static)] for every function defined."""
    if shutil.which('ctags') is None:
        sys.exit('check_house: ctags not found (Debian package universal-ctags)')
    cmd = ['ctags', '--output-format=json', '--fields=+neF', '--kinds-C=f', '--languages=C',
           '--langmap=C:.c.h', '-f', '-'] + paths
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = []
    for line in res.stdout.splitlines():
        t = json.loads(line)
        if t.get('_type') == 'tag' and t.get('kind') == 'function' and 'end' in t:
            out.append((t['name'], t['path'], t['line'], t['end'], bool(t.get('file'))))
    return out


def unit_of(path, src):
    """x.c, x.h and x's private header x_int.h are one unit, x."""
    u = os.path.splitext(os.path.relpath(path, src))[0]
    return u[:-4] if u.endswith('_int') else u


def tarjan(nodes, edges):
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in comps if len(c) > 1]


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else 'src'
    paths = sources(src)
    units = {unit_of(p, src) for p in paths}
    problems = []
    text = {}
    for p in paths:
        with open(p, encoding='utf-8', errors='replace') as f:
            text[p] = f.read()
        n = text[p].count('\n')
        if n > MAX_FILE_LINES:
            problems.append(f'{p}: {n} lines (at most {MAX_FILE_LINES})')
    funcs = functions(paths)
    exported = {}
    for name, path, first, last, static in funcs:
        if last - first + 1 > MAX_FUNC_LINES:
            problems.append(f'{path}:{first}: {name}() is {last - first + 1} lines '
                            f'(at most {MAX_FUNC_LINES})')
        if not static and path.endswith('.c'):
            exported[name] = unit_of(path, src)
    edges, why = {}, {}

    def depend(a, b, reason):
        if a != b and b in units:
            edges.setdefault(a, set()).add(b)
            why.setdefault((a, b), reason)

    for p in paths:
        u = unit_of(p, src)
        for inc in INCLUDE.findall(text[p]):
            depend(u, unit_of(os.path.join(src, inc), src), f'{p} includes "{inc}"')
        if p.endswith('.c'):
            code = STRIP.sub(blank, text[p])
            code = re.sub(r'^\s*#.*$', '', code, flags=re.M)
            for lineno, line in enumerate(code.split('\n'), 1):
                for name in IDENT.findall(line):
                    if name in exported:
                        depend(u, exported[name], f'{p}:{lineno} uses {name}()')
    for ring in tarjan(units, edges):
        lines = [f'ring of {len(ring)} files: {" ".join(ring)}']
        for a in ring:
            for b in sorted(edges.get(a, ())):
                if b in ring:
                    lines.append(f'    {a} -> {b}: {why[(a, b)]}')
        problems.append('\n'.join(lines))
    for p in problems:
        print(p)
    if problems:
        print(f'check_house: {len(problems)} problem(s) in {src}/')
        return 1
    print(f'check_house: {len(paths)} files, {len(funcs)} functions, no ring, '
          f'no file over {MAX_FILE_LINES} lines, no function over {MAX_FUNC_LINES}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""The proxy's module graph, from its #include lines.

A module is a name X: proxy/X.c with its header (proxy/X.h, or the public
include/zos/X.h).  X depends on Y when X.c or X.h includes Y.h.  Used by
test_layout.py, and runnable alone: prints the graph's layers, or a cycle.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INCLUDE = re.compile(r'^\s*#\s*include\s+"(?:zos/)?([A-Za-z0-9_]+)\.h"', re.M)


def module_files(root=ROOT):
    """{module: [files]} for proxy/*.c, proxy/*.h and include/zos/*.h."""
    mods = {}
    for d in ("proxy", os.path.join("include", "zos")):
        for f in sorted(os.listdir(os.path.join(root, d))):
            name, ext = os.path.splitext(f)
            if ext in (".c", ".h"):
                mods.setdefault(name, []).append(os.path.join(root, d, f))
    return mods


def graph(root=ROOT):
    """{module: set of modules it includes}, only among the proxy's modules."""
    mods = module_files(root)
    g = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            with open(f, encoding="utf-8") as fh:
                for dep in INCLUDE.findall(fh.read()):
                    if dep != m and dep in mods:
                        g[m].add(dep)
    return g


def find_cycle(g):
    """A list [a, b, ..., a] of modules that include each other in a ring, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {m: WHITE for m in g}
    stack = []

    def visit(m):
        color[m] = GREY
        stack.append(m)
        for d in sorted(g[m]):
            if color[d] == GREY:
                return stack[stack.index(d):] + [d]
            if color[d] == WHITE:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        color[m] = BLACK
        return None

    for m in sorted(g):
        if color[m] == WHITE:
            found = visit(m)
            if found:
                return found
    return None


def layers(g):
    """Modules by depth: layer 0 includes nothing of ours, layer k only lower ones."""
    depth = {}

    def d(m):
        if m not in depth:
            depth[m] = 1 + max((d(x) for x in g[m]), default=-1)
        return depth[m]

    out = {}
    for m in g:
        out.setdefault(d(m), []).append(m)
    return [sorted(out[k]) for k in sorted(out)]


if __name__ == "__main__":
    g = graph()
    cycle = find_cycle(g)
    if cycle:
        print("include cycle: " + " -> ".join(cycle))
        sys.exit(1)
    for i, layer in enumerate(layers(g)):
        print(f"{i}: {' '.join(layer)}")

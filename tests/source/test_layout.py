"""The tree's shape: no include cycle among the proxy's modules, calls that go
down only (server -> client -> verbs/router -> link), public headers that
need nothing private, and README's Layout section true to the tree."""
import os
import re

import pytest

import includes

ROOT = includes.ROOT


def closure(g, m):
    seen, todo = set(), [m]
    while todo:
        for d in g[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_cycle_finder_finds_a_ring():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert includes.find_cycle(g) == ["a", "b", "c", "a"]
    assert includes.find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_reads_the_include_lines():
    g = includes.graph()
    assert "link" in g["router"]  # proxy/router.h: #include "zos/link.h"
    assert "slot" in g["client"]
    assert "main" in g and not any("main" in deps for deps in g.values())


def test_no_include_cycle():
    cycle = includes.find_cycle(includes.graph())
    assert cycle is None, "include cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "upper, lower",
    [("server", "client"), ("client", "verbs"), ("client", "router"), ("verbs", "router"),
     ("router", "link"), ("client", "slot"), ("verbs", "slot"), ("link", "resp")])
def test_calls_go_down(upper, lower):
    """A request's path reads top-down: UPPER reaches LOWER, never the reverse."""
    g = includes.graph()
    assert lower in closure(g, upper), f"{upper} does not reach {lower}"
    assert upper not in closure(g, lower), f"{lower} reaches {upper}"


def test_nothing_below_the_client_reaches_it():
    g = includes.graph()
    below = [m for m in g if m not in ("main", "server", "client")]
    for m in below:
        assert "client" not in closure(g, m) and "server" not in closure(g, m), m


def private_headers():
    return {f[:-2] for f in os.listdir(os.path.join(ROOT, "proxy")) if f.endswith(".h")}


def public_headers():
    d = os.path.join(ROOT, "include", "zos")
    return {f[:-2] for f in os.listdir(d) if f.endswith(".h")}


def includes_of(path):
    with open(path, encoding="utf-8") as fh:
        return re.findall(r'^\s*#\s*include\s+"([^"]+)"', fh.read(), re.M)


def test_public_and_private_headers_are_apart():
    assert not private_headers() & public_headers()
    for h in public_headers():  # what the CLI includes must not need the proxy's own
        for inc in includes_of(os.path.join(ROOT, "include", "zos", h + ".h")):
            assert inc.startswith("zos/"), f"include/zos/{h}.h includes {inc}"
    for f in os.listdir(os.path.join(ROOT, "proxy")):
        if f.endswith(".c") and f[:-2] in public_headers():  # libzos needs no proxy header
            for inc in includes_of(os.path.join(ROOT, "proxy", f)):
                assert inc.startswith("zos/"), f"library module proxy/{f} includes {inc}"


def test_cli_uses_the_library_only():
    for f in os.listdir(os.path.join(ROOT, "cli")):
        for inc in includes_of(os.path.join(ROOT, "cli", f)):
            assert inc.startswith("zos/") or inc == "cli.h", f"cli/{f} includes {inc}"


def test_every_library_module_has_its_unit_test():
    unit = os.path.join(ROOT, "tests", "unit")
    missing = [m for m in sorted(public_headers())
               if os.path.exists(os.path.join(ROOT, "proxy", m + ".c"))
               and not os.path.exists(os.path.join(unit, f"test_{m}.c"))]
    assert not missing, "library modules without tests/unit/test_<module>.c: " + ", ".join(missing)


def layout_section():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r"^## Layout\n(.*?)^## ", text, re.S | re.M)
    assert m, "README.md has no Layout section"
    block = re.search(r"```\n(.*?)```", m.group(1), re.S)
    assert block, "README's Layout has no code block"
    return block.group(1)


def listed(layout, heading):
    """Module names on the lines under HEADING (indented deeper than it)."""
    lines = layout.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(heading):
            indent = len(line) - len(line.lstrip())
            names, column = set(), None
            for below in lines[i + 1:]:
                depth = len(below) - len(below.lstrip())
                if depth <= indent:
                    break
                column = depth if column is None else column
                if depth == column:  # deeper lines continue a description
                    names.add(below.split()[0])
            return names
    pytest.fail(f"README's Layout has no line starting with {heading!r}")


def test_readme_layout_matches_the_tree():
    layout = layout_section()
    top = {line.split()[0].split("/")[0] for line in layout.splitlines()
           if line and not line[0].isspace()}
    tracked = {e for e in os.listdir(ROOT)
               if os.path.isdir(os.path.join(ROOT, e)) and not e.startswith((".", "build"))}
    assert top == tracked, f"Layout lists {sorted(top)}, the tree has {sorted(tracked)}"
    proxy_c = {f[:-2] for f in os.listdir(os.path.join(ROOT, "proxy")) if f.endswith(".c")}
    lib = {m for m in proxy_c if m in public_headers()}
    own = proxy_c - lib
    assert listed(layout, "libzos") == lib
    assert listed(layout, "zos-proxy") == own
    cli = {f[:-2] for f in os.listdir(os.path.join(ROOT, "cli")) if f.endswith(".c")}
    assert listed(layout, "cli/") == cli

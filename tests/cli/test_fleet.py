"""zos --all / --node=a,b,c and zos nodes: one command on many simulated nodes.

The module starts 19 zos-node-sim (n00 and n01 with TLS and a secret, the others plain)
and names a 20th node, "down", on a port nobody listens on; a zos-proxy stands in front of
all 20.  Every assertion is on output, order, counts and exit codes, never on time.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

import zostest
from conftest import NODE_SECRET, node_section
from zostest import free_port, start_sim

PONG = '"PONG Version: master @Revision: 5ca6d8a630d2df93873f9fb64fe9194a5bb4203e"'
LIVE = ["n%02d" % i for i in range(19)]
ALL = LIVE[:10] + ["down"] + LIVE[10:]  # the down node in the middle of the config
TLS = {"n00", "n01"}


class Fleet:
    def __init__(self, procs):
        self.ports = {}
        for name in LIVE:
            tls = name in TLS
            _, self.ports[name] = start_sim(procs, tls=tls, secret=NODE_SECRET if tls else None)
        self.ports["down"] = free_port()
        port = free_port()
        text = "[proxy]\nlisten = 127.0.0.1:%d\n\n" % port + self.sections()
        self.proxy_proc, _ = procs.proxy(text, ready_port=port)
        self.proxy = "127.0.0.1:%d" % port

    def sections(self):
        return "\n".join(node_section(n, self.ports[n], tls=n in TLS,
                                      secret=NODE_SECRET if n in TLS else None) for n in ALL)

    def config(self, default="n03", proxy=None):
        app = "[app]\ndefaultzos = %s\n" % default
        if proxy:
            app += "proxy = %s\n" % proxy
        return app + "\n" + self.sections()


@pytest.fixture(scope="module")
def fleet(procs):
    f = Fleet(procs)
    yield f
    assert f.proxy_proc.poll() is None, "zos-proxy died during the tests"


@pytest.fixture
def z(zos, fleet):
    zos.write_config(fleet.config())
    return zos


def via_args(fleet, via):
    return ["--proxy", fleet.proxy] if via == "proxy" else []


def prefixed(text):
    """[(name, rest)] of every line of TEXT; fails on a line without a 'name: ' prefix."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+): (.*)$", line)
        assert m, "line without a node prefix: %r" % line
        out.append((m.group(1), m.group(2)))
    return out


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_all_ping_every_live_node_answers_and_the_down_one_is_reported(z, fleet, via):
    r = z.run(*via_args(fleet, via), "--all", "ping")
    assert r.rc == 12, r  # the down node's code: the highest of all
    lines = prefixed(r.out)
    assert sorted(n for n, _ in lines) == sorted(LIVE)  # each live node once, none twice
    assert all(rest == PONG for _, rest in lines), r.out
    err = r.err.splitlines()
    down = [l for l in err if l.startswith("down: ")]
    assert len(down) == 1 and "cannot reach node 'down'" in down[0], r.err
    if via == "proxy":
        assert "through zos-proxy %s" % fleet.proxy in down[0]
    # only the down node wrote on stderr, and the summary comes last
    assert [l for l in err if not l.startswith("down: ")] == \
        ["zos: 1 of 20 nodes failed: down (exit 12)"], r.err


def test_proxy_from_the_config_file(zos, fleet):
    # every local address is wrong: only the proxy of [app] proxy can reach the nodes
    zos.write_config("[app]\ndefaultzos = n03\nproxy = %s\n\n" % fleet.proxy +
                     "\n".join(node_section(n, free_port()) for n in ALL))
    r = zos.run("--all", "ping")
    assert r.rc == 12, r
    assert sorted(n for n, _ in prefixed(r.out)) == sorted(LIVE)


def test_all_live_nodes_exit_0_and_print_no_summary(z):
    r = z.run("--node", ",".join(LIVE), "ping")
    assert r.rc == 0, r
    assert r.err == ""
    assert sorted(n for n, _ in prefixed(r.out)) == sorted(LIVE)


def test_exit_code_is_the_highest_and_every_failure_is_listed(z):
    r = z.run("--node=n02,down,n05", "exec", "exit 3")
    assert r.rc == 24, r  # n02 and n05: 24 (job failed), down: 12
    errs = prefixed("\n".join(r.err.splitlines()[:-1]))
    assert sorted(n for n, _ in errs) == ["down", "n02", "n05"]
    for name, rest in errs:
        if name == "down":
            assert rest.startswith("zos: cannot reach node 'down'")
        else:
            assert rest == "zos: exec failed: exit status 3"
    assert r.err.splitlines()[-1] == \
        "zos: 3 of 3 nodes failed: n02 (exit 24), down (exit 12), n05 (exit 24)"


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_node_list_keeps_lines_whole_and_streams_apart(z, fleet, via):
    # 300 long lines per node (150 KB, more than a pipe holds, so they reach zos in pieces;
    # awk writes them in few large chunks: core0 keeps the last 100 chunks of a stream),
    # stderr lines too, and a last line without a newline
    script = ('awk \'BEGIN { s = sprintf("%0500d", 7); '
              'for (i = 0; i < 300; i++) printf "line-%03d-%s\\n", i, s }\'; '
              'for i in 0 50 100 150 200 250; do echo "err-$i" >&2; done; printf "no newline"')
    r = z.run(*via_args(fleet, via), "--node=n02,n00,n07", "exec", script)
    assert r.rc == 0, r
    body = "%0500d" % 7
    want = ["line-%03d-%s" % (i, body) for i in range(300)] + ["no newline"]
    got = prefixed(r.out)
    for name in ("n02", "n00", "n07"):
        assert [rest for n, rest in got if n == name] == want, name
    assert len(got) == 3 * len(want)
    errs = prefixed(r.err)
    for name in ("n02", "n00", "n07"):
        assert [rest for n, rest in errs if n == name] == ["err-%d" % i for i in range(0, 300, 50)]


def test_container_list_on_several_nodes(z):
    r = z.run("--node=n04,n05", "container", "list", "--json")
    assert r.rc == 0, r
    per = {}
    for name, rest in prefixed(r.out):
        per.setdefault(name, []).append(rest)
    assert sorted(per) == ["n04", "n05"]
    for lines in per.values():
        assert json.loads("\n".join(lines)) == []


def test_at_most_parallel_nodes_at_once(z, tmp_path):
    """--parallel 4: four jobs are running at the same time (each waits until four have
    started, else fails), and no job ever sees more than four started and not finished."""
    d = tmp_path / "marks"
    d.mkdir()
    script = (
        'd=%s; s=$(ls $d | grep -c "^s"); e=$(ls $d | grep -c "^e"); '
        'echo $((s - e + 1)) > $(mktemp $d/s.XXXXXX); '
        'i=0; while [ $(ls $d | grep -c "^s") -lt 4 ]; do '
        '  i=$((i+1)); if [ $i -gt 600 ]; then echo "alone" >&2; exit 1; fi; sleep 0.05; done; '
        'mktemp $d/e.XXXXXX >/dev/null' % d)
    names = LIVE[2:14]
    r = z.run("--parallel", "4", "--node", ",".join(names), "exec", script, timeout=120)
    assert r.rc == 0, r
    seen = [int(open(d / f).read()) for f in os.listdir(d) if f.startswith("s.")]
    assert len(seen) == len(names)
    assert max(seen) <= 4, seen


def _children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def test_sigterm_is_passed_to_every_node_process(z, fleet):
    if not os.path.exists("/proc/self/task/%d/children" % os.getpid()):
        pytest.skip("no /proc/PID/task/PID/children on this kernel")
    names = LIVE[2:8]
    p = z.procs.start([zostest.CLI_BIN, "--node", ",".join(names), "exec", "sleep 30"],
                      env=z.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    kids = []
    while time.monotonic() < deadline and len(kids) < len(names):
        kids = _children(p.pid)
        time.sleep(0.05)
    assert len(kids) == len(names), kids
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert zostest.wait_gone(kids, timeout=10) == []
    assert out == b""
    # each node's process died of the signal; the summary names them all
    assert err.decode().count("(exit 143)") == len(names), err


@pytest.mark.parametrize("args,message", [
    (["configure", "--name", "x"], "'configure' does not run across nodes"),
    (["showconfig"], "'showconfig' does not run across nodes"),
    (["setdefault", "n02"], "'setdefault' does not run across nodes"),
    (["init", "--name", "x"], "'init' does not run across nodes"),
    (["container", "shell"], "'container shell' does not run across nodes: it is interactive"),
    (["container", "7", "shell"], "'container shell' does not run across nodes"),
    (["container", "mount", "/root"], "'container mount' does not run across nodes"),
    (["container", "3", "download", "/etc/hosts"], "'container download' does not run across"),
])
@pytest.mark.parametrize("select", [["--all"], ["--node=n02,n03"]])
def test_commands_that_make_no_sense_across_nodes_are_refused(z, args, message, select):
    before = z.read_config()
    r = z.run(*select, *args)
    assert r.rc == 15, r
    assert message in r.err and r.out == ""
    assert z.read_config() == before


@pytest.mark.parametrize("args,rc,message", [
    (["--node=n02,,n03", "ping"], 15, "--node: 'n02,,n03' is not a node name"),
    (["--node=n02,", "ping"], 15, "is not a node name"),
    (["--node=n02,bad name", "ping"], 22, "--node: 'bad name' is not a node name"),
    (["--node=n02,ghost", "ping"], 17, "--node: no node named 'ghost'"),
    (["--node=n02,n02", "ping"], 15, "--node: 'n02' is named twice"),
    (["--all", "--node=n02", "ping"], 15, "--all and --node: give one of them"),
    (["--all", "--parallel=0", "ping"], 15, "--parallel: expected a number of nodes from 1 to 256"),
    (["--all", "--parallel", "many", "ping"], 15, "--parallel: expected a number"),
    (["--all", "--parallel"], 15, "option '--parallel' needs a value"),
])
def test_bad_node_lists(z, args, rc, message):
    r = z.run(*args)
    assert r.rc == rc, r
    assert message in r.err and r.out == ""


def test_all_without_nodes(bare):
    r = bare.run("--all", "ping")
    assert r.rc == 5, r
    assert "no node in" in r.err


def test_one_name_is_the_single_node_form(z):
    r = z.ok("--node=n02", "ping")
    assert r.out == PONG + "\n"  # no prefix, no summary
    r = z.ok("--all", "ping", "--help")
    assert r.out.startswith("usage: zos ping")


def test_a_node_known_only_to_the_proxy(z, fleet):
    z.write_config("[app]\ndebug = false\n")
    r = z.run("--proxy", fleet.proxy, "--node=n02,n04,ghost", "ping")
    assert r.rc == 17, r
    assert sorted(n for n, _ in prefixed(r.out)) == ["n02", "n04"]
    assert "ghost: zos: node 'ghost' through zos-proxy" in r.err


# ---- zos nodes ----

def check_nodes_json(rows, fleet, via, default="n03"):
    assert [row["name"] for row in rows] == ALL  # config order
    for row in rows:
        name = row["name"]
        assert row["default"] is (name == default)
        assert row["address"] == "127.0.0.1" and row["port"] == fleet.ports[name]
        assert row["tls"] is (name in TLS)
        assert row["proxy"] == (fleet.proxy if via == "proxy" else None)
        if name == "down":
            assert row["reachable"] is False and row["exit"] == 12
            assert row["rtt_ms"] is None and row["version"] is None
            assert "cannot reach node 'down'" in row["error"]
        else:
            assert row["reachable"] is True and row["exit"] == 0, row
            assert isinstance(row["rtt_ms"], (int, float)) and row["rtt_ms"] > 0
            assert row["version"] == {"branch": "master",
                                      "revision": "5ca6d8a630d2df93873f9fb64fe9194a5bb4203e",
                                      "dirty": False}
            assert row["error"] is None


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_nodes_json(z, fleet, via):
    r = z.run(*via_args(fleet, via), "nodes", "--json")
    assert r.rc == 12, r  # one node is down
    check_nodes_json(r.json(), fleet, via)
    assert r.err == ""


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_nodes_table(z, fleet, via):
    r = z.run(*via_args(fleet, via), "nodes")
    assert r.rc == 12, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["NODE", "ADDRESS", "TLS", "REACHABLE", "RTT", "VERSION", "ERROR"]
    assert len(lines) == 1 + len(ALL)
    assert all(l == l.rstrip() for l in lines)
    rows = {}
    for line in lines[1:]:
        mark, rest = line[:1], line[3:].split()
        rows[rest[0]] = (mark, rest)
    assert sorted(rows) == sorted(ALL)
    assert [n for n, (mark, _) in rows.items() if mark == "*"] == ["n03"]
    for name, (_, cells) in rows.items():
        assert cells[1] == "127.0.0.1:%d" % fleet.ports[name]
        assert cells[2] == ("yes" if name in TLS else "no")
        if name == "down":
            assert cells[3:6] == ["no", "-", "-"] and "cannot reach node 'down'" in " ".join(cells)
        else:
            assert cells[3] == "yes" and cells[5] == "ms" and float(cells[4]) > 0
            assert cells[6] == "master@5ca6d8a630d2" and len(cells) == 7


def test_nodes_of_a_list_all_reachable_exit_0(z, fleet):
    r = z.run("--node=n01,n05", "nodes")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["NODE", "ADDRESS", "TLS", "REACHABLE", "RTT", "VERSION"]
    assert [l.split()[0] for l in lines[1:]] == ["n01", "n05"]
    r = z.run("--node=n05", "nodes", "--json")
    assert r.rc == 0 and [row["name"] for row in r.json()] == ["n05"]


def test_nodes_reports_a_refused_secret_and_a_hung_node(z, fleet, fnprocs):
    # n00 with a wrong secret; "hung": a port that accepts and never answers
    import socket
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        z.write_config("[app]\ndefaultzos = n02\n\n" +
                       node_section("n00", fleet.ports["n00"], tls=True, secret="wrong") + "\n" +
                       node_section("n02", fleet.ports["n02"]) + "\n" +
                       node_section("hung", hung.getsockname()[1]))
        r = z.run("--timeout", "2", "nodes", "--json", timeout=120)
        rows = {row["name"]: row for row in r.json()}
        assert rows["n02"]["reachable"] is True and rows["n02"]["default"] is True
        assert rows["n00"]["reachable"] is False and rows["n00"]["exit"] == 26
        assert rows["hung"]["reachable"] is False and rows["hung"]["exit"] == 12
        assert rows["hung"]["error"]  # "no reply within ..." or "no answer within 2 s"
        assert r.rc == 26, r
    finally:
        hung.close()


def test_nodes_usage(z):
    r = z.run("nodes", "extra")
    assert r.rc == 15 and "unexpected argument 'extra'" in r.err
    r = z.run("nodes", "--yaml")
    assert r.rc == 15 and "unknown option '--yaml'" in r.err
    r = z.ok("help", "nodes")
    assert r.out.startswith("usage: zos nodes [--json]")


def test_help_mentions_the_fleet_options(z):
    r = z.ok("--help")
    for word in ("--all", "--node=<a>,<b>", "--parallel=<n>", "nodes "):
        assert word in r.out

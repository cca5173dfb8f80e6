"""Live job output: zos exec, zos cmd core.system/bash and zos container zosexec print the job's
stdout and stderr as core0 streams them (stream:<id>, core0-protocol.md §5), directly and through
a zos-proxy, then exit with the job's status as before.

Times are read from the output itself: each line of the job carries the moment it was written
(`date +%s.%N`, the same clock: the simulator runs the job on this host), and the test notes the
moment it read each line from zos's pipe.  Assertions are about order (the first line was read
before the last one was written), never about how long something took; the delays are printed.
"""
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest

import zostest
from zostest import free_port
from conftest import NODE_SECRET, node_section

# 15 lines, one every 200 ms (3 s), each on stdout with its own timestamp and on stderr
SCRIPT = "for i in $(seq 15); do echo line $i $(date +%s.%N); echo err $i >&2; sleep 0.2; done"
GAP_WARNING = "zos: warning: output may be missing here"
CUT_WARNING = "zos: warning: the live output stopped early"


class Live:
    """One zos run whose stdout and stderr are read line by line as they come, each line with
    the time it was read.  Stopped by PID when the test ends, whatever happened."""

    def __init__(self, zos, *args, hold_stdout=None):
        self.p = subprocess.Popen([zostest.CLI_BIN] + [str(a) for a in args], env=zos.env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)
        self.out, self.err = [], []  # (time read, text without the newline)
        self.hold = hold_stdout      # an Event: stdout is not read until it is set
        self.cv = threading.Condition()
        self.threads = [threading.Thread(target=self._read, args=(f, lines), daemon=True)
                        for f, lines in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _read(self, f, lines):
        if lines is self.out and self.hold is not None:
            self.hold.wait(60)
        buf = b""
        while True:
            chunk = f.read(65536)
            now = time.time()
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with self.cv:
                    lines.append((now, line.decode(errors="replace")))
                    self.cv.notify_all()
        if buf:
            with self.cv:
                lines.append((time.time(), buf.decode(errors="replace")))
        with self.cv:
            self.cv.notify_all()

    def wait_line(self, lines, pred, timeout=30):
        """Waits (a no-hang guard only) for a line of LINES matching PRED; returns it."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for t, text in lines:
                    if pred(text):
                        return t, text
                left = deadline - time.monotonic()
                assert left > 0 and self.p.poll() is None, (
                    "no such line; out=%r err=%r" % (self.out[-5:], self.err[-5:]))
                self.cv.wait(left)

    def finish(self, timeout=zostest.CLI_TIMEOUT):
        rc = self.p.wait(timeout)
        for t in self.threads:
            t.join(10)
        err = "\n".join(text for _, text in self.err)
        for marker in zostest.SANITIZER_MARKS:
            assert marker not in err, "sanitizer report from zos:\n" + err
        return rc

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def live():
    runs = []

    def start(zos, *args, **kw):
        r = Live(zos, *args, **kw)
        runs.append(r)
        return r
    yield start
    for r in runs:
        r.close()


@pytest.fixture(scope="module")
def proxy(procs, nodes):
    port = free_port()
    text = ("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port + node_section("plain", nodes.plain) + "\n" +
            node_section("secure", nodes.secure, tls=True, secret=NODE_SECRET))
    p, _ = procs.proxy(text, ready_port=port)
    yield "127.0.0.1:%d" % port
    assert p.poll() is None, "zos-proxy died during the tests"


@pytest.fixture(scope="module")
def container(tmp_path_factory, procs, nodes):
    """A container on each node (made through a throwaway user) and the job's script on disk:
    zosexec splits its command on blanks, so the script is a file (the simulator runs container
    commands on this host)."""
    tmp = tmp_path_factory.mktemp("live")
    z = zostest.CliUser(tmp)
    with open(z.config, "w") as f:
        f.write(nodes.config())
    zostest.keygen(os.path.join(z.home, ".ssh", "id_ed25519"))
    script = os.path.join(str(tmp), "lines.sh")
    with open(script, "w") as f:
        f.write(SCRIPT + "\n")
    ids = {node: int(z.ok("--node", node, "container", "new").out) for node in ("plain", "secure")}
    return ids, script


def live_args(kind, container):
    if kind == "exec":
        return ["exec", SCRIPT]
    if kind == "bash":
        return ["cmd", "bash", "--jsonargs", '{"script": "%s", "stdin": ""}' % SCRIPT]
    if kind == "core.system":
        return ["cmd", "core.system", "--jsonargs",
                '{"name": "sh", "args": ["-c", "%s"]}' % SCRIPT]
    ids, script = container
    return ["container", "ZID", "zosexec", "/bin/sh", script]


@pytest.mark.parametrize("via,node,kind", [
    ("direct", "plain", "exec"),
    ("direct", "plain", "core.system"),
    ("direct", "plain", "bash"),
    ("direct", "plain", "zosexec"),
    ("direct", "secure", "exec"),
    ("proxy", "plain", "exec"),
    ("proxy", "secure", "core.system"),
    ("proxy", "plain", "zosexec"),
])
def test_lines_show_while_the_job_runs(zos, live, proxy, container, via, node, kind):
    args = live_args(kind, container)
    if kind == "zosexec":
        args[1] = container[0][node]
    pre = ["--node", node] + (["--proxy", proxy] if via == "proxy" else [])
    run = live(zos, *(pre + args))
    rc = run.finish()
    out = [text for _, text in run.out]
    err = [text for _, text in run.err]
    assert rc == 0, (out, err)
    # every line once, in order, each on its own stream; nothing printed twice at the end
    assert [re.sub(r" [0-9.]+$", "", t) for t in out] == ["line %d" % i for i in range(1, 16)], out
    assert err == ["err %d" % i for i in range(1, 16)], err
    written = [float(t.split()[2]) for t in out]
    read_out = [t for t, _ in run.out]
    read_err = [t for t, _ in run.err]
    # the first line of each stream was read before the job wrote its last one (2.8 s later)
    assert read_out[0] < written[-1], (read_out[0], written)
    assert read_err[0] < written[-1], (read_err[0], written)
    lag = [r - w for r, w in zip(read_out, written)]
    print("%s %s %s: first line read %.3f s after it was written (issue 13 asks < 0.5 s), "
          "max %.3f s" % (via, node, kind, lag[0], max(lag)))


def test_exit_status_and_failure_after_the_live_lines(zos, live, proxy, container):
    for pre in ([], ["--proxy", proxy]):
        run = live(zos, *(pre + ["exec", "echo first; sleep 0.5; echo bad >&2; echo last; exit 3"]))
        assert run.finish() == 24
        assert [t for _, t in run.out] == ["first", "last"]
        assert [t for _, t in run.err] == ["bad", "zos: exec failed: exit status 3"]
    r = zos.run("exec", "exit 0")
    assert (r.rc, r.out, r.err) == (0, "", "")
    r = zos.run("cmd", "core.system", "--jsonargs",
                '{"name": "sh", "args": ["-c", "echo o; echo e >&2; exit 7"]}')
    assert (r.rc, r.out, r.err) == (24, "o\n", "e\nzos: core.system failed: exit status 7\n")
    cid = container[0]["plain"]
    r = zos.run("container", cid, "zosexec", "/bin/ls", "/no/such/dir")
    assert r.rc == 24, r
    assert r.out == "" and r.err.endswith("No such file or directory\n"
                                          "zos: zosexec failed: exit status 2\n"), r
    # jobs that write no stream at all: a missing program, an unknown container
    r = zos.run("cmd", "core.system", "--jsonargs", '{"name": "/no/such/program"}')
    assert r.rc == 24 and "ERROR code=404" in r.err and r.out == "", r
    r = zos.run("container", 4321, "zosexec", "/bin/ls")
    assert r.rc == 16 and "container 4321 does not exist" in r.err, r


def wait_result(kv, token, timeout=30):
    """Waits (no-hang guard only) until a job result on the node holds TOKEN: the job ended, and
    every stream record it wrote is in the node's list already (records come before results)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key in kv.scan_iter("result:*"):
            if kv.type(key) == "list" and any(token in v for v in kv.lrange(key, 0, -1)):
                return
        time.sleep(0.05)
    raise AssertionError("no result holding %s" % token)


def test_a_slow_reader_of_zos_loses_nothing(zos, live, nodes):
    """zos reads the node while its own output waits: 3000 lines of 200 bytes (far more than a
    pipe holds, three times what core0 keeps) are all there even though nobody read zos's
    stdout until the job had ended.  (100 lines every 50 ms: zos would have to fall half a
    second behind the node to lose any, on a machine busy with other tests.)"""
    token = uuid.uuid4().hex
    hold = threading.Event()
    run = live(zos, "exec", "awk 'BEGIN{for(i=1;i<=3000;i++){printf \"%d %0200d\\n\", i, 0; "
                            "if(i%100==0){fflush(); system(\"sleep 0.05\")}}}'; "
                            "echo " + token, hold_stdout=hold)
    wait_result(nodes.redis(), token)
    hold.set()
    assert run.finish() == 0
    out = [t for _, t in run.out]
    err = [t for _, t in run.err]
    assert len(out) == 3001 and out[-1] == token, (len(out), out[-1:], err)
    assert [int(t.split()[0]) for t in out[:-1]] == list(range(1, 3001))
    assert err == []


def test_records_core0_dropped_are_reported(zos, live, nodes, tmp_path):
    """zos stopped (SIGSTOP) while the job writes 2000 lines: core0 keeps the newest 1000, and
    zos says on stderr that output may be missing there; it still ends with the job's status."""
    token = uuid.uuid4().hex
    go = str(tmp_path / "go")
    run = live(zos, "exec", "echo start; while [ ! -e %s ]; do sleep 0.05; done; seq 2000; "
                            "echo %s" % (go, token))
    run.wait_line(run.out, lambda t: t == "start")
    os.kill(run.p.pid, signal.SIGSTOP)
    try:
        open(go, "w").close()
        wait_result(nodes.redis(), token)
    finally:
        os.kill(run.p.pid, signal.SIGCONT)
    assert run.finish() == 0
    out = [t for _, t in run.out]
    err = [t for _, t in run.err]
    assert out[0] == "start" and out[-1] == token
    nums = [int(t) for t in out[1:-1]]
    assert nums == sorted(set(nums)) and nums[-1] == 2000 and len(nums) < 2000, nums[:5]
    assert len([e for e in err if e.startswith(GAP_WARNING)]) >= 1, err
    assert "the node keeps only its newest 1000 records" in err[0]


def local_ports(pid):
    """The local TCP ports of the sockets process PID holds (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    with open("/proc/%d/net/tcp" % pid) as f:
        for row in f.readlines()[1:]:
            cols = row.split()
            if cols[9] in inodes:
                ports.append(int(cols[1].split(":")[1], 16))
    return ports


def test_a_cut_stream_is_completed_from_the_result(zos, live, nodes):
    """The connection that reads the stream is killed halfway: the lines after it come from
    the job's result (its last 100 lines), without repeating those already shown."""
    kv = nodes.redis()
    run = live(zos, "exec", "for i in $(seq 30); do echo n $i; sleep 0.1; done")
    run.wait_line(run.out, lambda t: t == "n 5")
    mine = ["127.0.0.1:%d" % port for port in local_ports(run.p.pid)]
    readers = [c for c in kv.client_list()
               if c["addr"] in mine and c.get("cmd") in ("blpop", "lpop", "llen")]
    assert len(readers) == 1, (mine, kv.client_list())
    kv.client_kill_filter(_id=readers[0]["id"])
    assert run.finish() == 0
    assert [t for _, t in run.out] == ["n %d" % i for i in range(1, 31)]
    err = [t for _, t in run.err]
    assert len(err) == 1 and err[0].startswith(CUT_WARNING), err


def test_builtins_are_not_streamed(zos, nodes):
    """Only processes stream: a builtin's result is printed as before, and leaves no stream."""
    kv = nodes.redis()
    before = set(kv.scan_iter("stream:*"))
    r = zos.ok("cmd", "info.version")
    assert r.json()["branch"] == "master"
    assert set(kv.scan_iter("stream:*")) == before

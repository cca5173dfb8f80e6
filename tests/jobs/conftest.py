"""Fixtures of the job-verb suite: three simulated Zero-OS nodes behind one zos-proxy.

    n1  zos-node-sim, plain TCP                     version string b1@r1
    n2  zos-node-sim, plain TCP                     version string b2@r2
    n3  zos-node-sim, TLS + secret (requirepass)    version string b3@r3

Each node reports its own version, so a `core.ping` reply tells which node
answered.  The proxy listens on a main port with no default node (clients pick
one with ZOS.USE, AUTH <node> <password>, or ZOS.AT), and on one port per node
(`listen` of the node section) for clients that cannot name a node, such as an
old job-protocol client.

`cluster` lives for the whole session; tests that kill a node start their own
with the function-scoped `make_cluster`.  Every process is started through
zostest.Procs and stopped by PID in teardown, even when a test fails.  A proxy
must survive every test and exit 0 on SIGTERM at teardown (under a SANITIZER
build a non-zero exit is a sanitizer report); if not, the teardown fails and
prints its log.  Simulators
run in a process group of their own so that a test can SIGKILL the simulator
together with its redis-server (Cluster.kill_node).
"""
import json
import os
import signal
import sys
import time

import pytest
import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import zostest  # noqa: E402
from resp_raw import ErrorReply as Err, RawResp  # noqa: E402
from zostest import (ROOT_FLIST, Procs, free_port, isolated_env, job_request,  # noqa: E402,F401
                     wait_port)

NODE_SECRET = "sim-secret-4d21"  # requirepass of n3 == its `secret` in the proxy config
TIMEOUT = 20                     # seconds any single client read may take before we call it a hang
NODES = ("n1", "n2", "n3")
VERSIONS = {"n1": ("b1", "r1"), "n2": ("b2", "r2"), "n3": ("b3", "r3")}


def ping_text(node):
    """The decoded data of core.ping on NODE (a JSON string, quotes included)."""
    b, r = VERSIONS[node]
    return '"PONG Version: %s @Revision: %s"' % (b, r)


def pytest_sessionstart(session):
    zostest.require_binaries((zostest.PROXY_BIN, zostest.SIM_BIN),
                             "make build/zos-proxy build/zos-node-sim")


def children(pid):
    """PIDs of the direct children of PID (every thread's), from /proc."""
    out = set()
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return sorted(out)


class Cluster:
    """Three simulated nodes and one proxy, all started through one Procs."""

    def __init__(self, procs, proxy_extra=""):
        self.procs = procs
        self.sims = {}   # name -> proc
        self.ports = {}  # name -> node port
        self.logs = {}
        self.dirs = {}   # name -> simulator data directory
        for name in NODES:
            self.logs[name] = os.path.join(procs.tmp, "sim-%s.log" % name)
            self.dirs[name] = os.path.join(procs.tmp, "sim-" + name)
            self.sims[name], self.ports[name] = self._start_node(name, free_port(), "w")
        self.port = free_port()
        self.node_ports = {n: free_port() for n in NODES}
        conf = ["[proxy]", "listen = 127.0.0.1:%d" % self.port, proxy_extra, ""]
        for name in NODES:
            tls = name == "n3"
            conf += ["[%s]" % name, "address = 127.0.0.1", "port = %d" % self.ports[name],
                     "tls = %s" % ("yes" if tls else "no"),
                     "listen = 127.0.0.1:%d" % self.node_ports[name]]
            if tls:
                conf.append("secret = %s" % NODE_SECRET)
            conf.append("")
        self.env = isolated_env(procs.tmp)
        self.proxy, self.conf_path = procs.proxy("\n".join(conf) + "\n", env=self.env,
                                                 ready_port=self.port)
        for p in self.node_ports.values():
            wait_port(p, proc=self.proxy)
        self.log_path = self.conf_path[:-len(".toml")] + ".log"

    def _start_node(self, name, port, log_mode):
        """The simulator of NAME on PORT, in a process group of its own (see kill_node),
        its redis files in self.dirs[NAME] (so nothing is left in /tmp when it is
        SIGKILLed), its stderr in self.logs[NAME]; returns (proc, port)."""
        tls = name == "n3"
        with open(self.logs[name], log_mode) as log:
            return zostest.start_sim(self.procs, tls=tls, secret=NODE_SECRET if tls else None,
                                     version="%s@%s" % VERSIONS[name], stderr=log, port=port,
                                     datadir=self.dirs[name], new_session=True)

    # -- clients
    def client(self, node=None, timeout=TIMEOUT, **kw):
        """redis-py client of the main port; NODE picks the node with AUTH <node> x
        (the proxy has no requirepass, so any password passes) on every connection."""
        if node is not None:
            kw.update(username=node, password="x")
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=timeout, **kw)

    def node_client(self, node, timeout=TIMEOUT, **kw):
        """redis-py client of NODE's own proxy port (no node selection needed)."""
        return redis.Redis(host="127.0.0.1", port=self.node_ports[node], decode_responses=True,
                           socket_timeout=timeout, **kw)

    def direct(self, node, timeout=TIMEOUT):
        """redis-py client straight to the node's redis (bypassing the proxy)."""
        kw = {}
        if node == "n3":
            kw = dict(ssl=True, ssl_cert_reqs=None, password=NODE_SECRET)
        return redis.Redis(host="127.0.0.1", port=self.ports[node], decode_responses=True,
                           socket_timeout=timeout, **kw)

    @staticmethod
    def Raw(port):
        return Raw(port)

    def wait_accepted(self, node, id, timeout=10.0):
        """Until the node created result:<id>:flag (it took the job), read directly
        from the node: ZOS.RESULT right after ZOS.SUBMIT races with the node."""
        d = self.direct(node)
        deadline = time.monotonic() + timeout
        while not d.exists("result:%s:flag" % id):
            assert time.monotonic() < deadline, "node %s did not take job %s" % (node, id)
            time.sleep(0.01)

    def proxy_log(self):
        return zostest.read_log(self.log_path, missing="")

    def assert_proxy_alive(self):
        assert self.proxy.poll() is None, "zos-proxy died (%s):\n%s" % (
            self.proxy.returncode, self.proxy_log()[-4000:])
        assert self.client().ping() is True

    # -- failure injection
    def restart_node(self, name):
        """A new simulator for NAME on the same port (after kill_node)."""
        p, port = self._start_node(name, self.ports[name], "a")
        assert port == self.ports[name]
        self.sims[name] = p

    def kill_node(self, name):
        """SIGKILL the simulator of NAME together with its redis-server (and its job
        processes): the whole process group, then any child left over, by PID."""
        p = self.sims[name]
        kids = children(p.pid)
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group the simulator leads (start_new_session)
        except ProcessLookupError:
            pass
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=10)
        deadline = time.monotonic() + 10
        for k in kids:  # reaped by init once the simulator is gone
            while os.path.exists("/proc/%d" % k) and time.monotonic() < deadline:
                with open("/proc/%d/stat" % k) as f:
                    if f.read().split(") ", 1)[1].startswith("Z"):
                        break
                time.sleep(0.02)

    def close(self):
        """Stops everything; returns (how the proxy ended, its log).  How it ended is
        None for a clean exit 0 on SIGTERM, else a text (it died earlier, or exited
        non-zero: under a SANITIZER build that is a sanitizer report)."""
        died = self.proxy.poll()
        rc = self.procs.stop(self.proxy, timeout=10) if died is None else died
        log = self.proxy_log()
        self.procs.close()
        if died is not None:
            return "zos-proxy died during the tests (exit %s)" % died, log
        if rc != 0:
            return "zos-proxy exited %s on SIGTERM" % rc, log
        return None, log


def check_end(how, log):
    if how is not None:
        print("%s; its log:\n%s" % (how, log[-6000:]))
        pytest.fail(how, pytrace=False)


@pytest.fixture(scope="session")
def cluster():
    procs = Procs()
    c = None
    try:
        c = Cluster(procs)
        yield c
    finally:
        if c is not None:
            check_end(*c.close())
        else:
            procs.close()


@pytest.fixture
def make_cluster():
    """A fresh cluster of one's own (for tests that kill nodes)."""
    made = []

    def make(**kw):
        procs = Procs()
        try:
            c = Cluster(procs, **kw)
        except BaseException:
            procs.close()
            raise
        made.append(c)
        return c
    yield make
    ends = [c.close() for c in made]
    for how, log in ends:
        check_end(how, log)


@pytest.fixture(autouse=True)
def _proxy_survives(request):
    """After every test that used the shared cluster, its proxy still answers."""
    yield
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").assert_proxy_alive()


# ---------------------------------------------------------------- raw job protocol

raw_request = job_request  # a request object shaped like the py-client's Client.raw()


def raw_call(r, command, arguments=None, timeout=10, **fields):
    """The §3.3 sequence on redis-py client R: RPUSH core:default, BRPOPLPUSH the flag,
    then BRPOPLPUSH result:<id> in slices while the flag exists.  Returns the decoded
    result object; fails on a missing flag or result."""
    req = raw_request(command, arguments, **fields)
    id = req["id"]
    r.rpush("core:default", json.dumps(req))
    flag = r.brpoplpush("result:%s:flag" % id, "result:%s:flag" % id, timeout)
    assert flag == "", "the node did not accept job %s (flag %r)" % (id, flag)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert r.exists("result:%s:flag" % id) == 1
        text = r.brpoplpush("result:%s" % id, "result:%s" % id,
                            max(1, min(10, int(deadline - time.monotonic() + 0.999))))
        if text is not None:
            return json.loads(text)
    raise AssertionError("no result for job %s in %ss" % (id, timeout))


# ---------------------------------------------------------------- exact replies

class Raw(RawResp):
    """A minimal RESP2 client on a plain socket, for exact reply bytes; error replies
    come back as Err (a str with the full text, "ERR ..." included)."""

    error = Err
    timeout = TIMEOUT


@pytest.fixture
def raw_conn(cluster):
    """raw_conn(node=None): a Raw connection to the main port, AUTHed to NODE when given."""
    made = []

    def make(node=None):
        c = Raw(cluster.port)
        made.append(c)
        if node is not None:
            assert c.call("AUTH", node, "x") == "OK"
        return c
    yield make
    for c in made:
        c.close()

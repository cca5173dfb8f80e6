"""Fixtures of the conformance suite: simulated nodes driven with plain RESP (redis-py).

Every request goes the way the py-client sends it (core0-protocol.md §3.3):
RPUSH core:default, BRPOPLPUSH result:<id>:flag, then BRPOPLPUSH result:<id> in
slices while the flag exists.  Nothing here goes through our proxy.
"""
import json
import os
import sys
import time

import pytest
import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import zostest  # noqa: E402

# JSON key order of base/pm/result.go (Appendix A); streams and critical are omitempty.
RESULT_KEYS = ["id", "command", "data", "streams", "critical", "level", "state", "code",
               "starttime", "time", "tags", "container"]


def result_keys(streams=True, critical=False):
    return [k for k in RESULT_KEYS
            if (k != "streams" or streams) and (k != "critical" or critical)]


class Node:
    """One simulated node seen through redis-py."""

    def __init__(self, port, password=None, ssl=False, proc=None):
        self.port = port
        self.proc = proc
        kw = {"ssl": True, "ssl_cert_reqs": None} if ssl else {}
        self.r = redis.Redis(host="127.0.0.1", port=port, password=password,
                             decode_responses=True, socket_timeout=30, **kw)

    request = staticmethod(zostest.job_request)  # shaped like the py-client's Client.raw()

    def push(self, req):
        """RPUSH core:default; REQ is a dict (JSON-encoded here) or raw text."""
        self.r.rpush("core:default", req if isinstance(req, str) else json.dumps(req))
        return req.get("id") if isinstance(req, dict) else None

    def submit(self, command, arguments=None, **fields):
        return self.push(self.request(command, arguments, **fields))

    def wait_flag(self, id, timeout=10):
        """Step 2 of §3.3: None when the node did not accept the job in time."""
        return self.r.brpoplpush("result:%s:flag" % id, "result:%s:flag" % id, timeout)

    def wait_raw(self, id, timeout=10.0):
        """Step 3 of §3.3: the result JSON text, or None (unknown job or timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.r.exists("result:%s:flag" % id):
                return None
            text = self.r.brpoplpush("result:%s" % id, "result:%s" % id,
                                     max(1, min(int(left + 0.999), 10)))
            if text is not None:
                return text

    def wait(self, id, timeout=10.0):
        assert self.wait_flag(id, timeout) is not None, "node did not accept job %s" % id
        text = self.wait_raw(id, timeout)
        assert text is not None, "no result for job %s" % id
        return json.loads(text)

    def call(self, command, arguments=None, timeout=10.0, **fields):
        return self.wait(self.submit(command, arguments, **fields), timeout)

    def json(self, command, arguments=None, **fields):
        """The decoded data of a SUCCESS builtin (level 20)."""
        res = self.call(command, arguments, **fields)
        assert res["state"] == "SUCCESS", res
        assert res["level"] == 20, res
        return json.loads(res["data"])

    def error(self, command, arguments=None, **fields):
        """(message, code) of a failing builtin: level 20, data a JSON string."""
        res = self.call(command, arguments, **fields)
        assert res["state"] == "ERROR", res
        assert res["level"] == 20, res
        msg = json.loads(res["data"])
        assert isinstance(msg, str)
        return msg, res["code"]

    def dispatch(self, container, inner, **fields):
        """corex.dispatch INNER (a request dict) into CONTAINER; the inner result."""
        outer = self.call("corex.dispatch", {"container": container, "command": inner}, **fields)
        assert outer["state"] == "SUCCESS", outer
        inner_id = json.loads(outer["data"])
        assert isinstance(inner_id, str)
        return self.wait(inner_id)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


def start_node(procs, **kw):
    """zostest.start_sim with stderr kept in a log that teardown checks for
    sanitizer reports (see check_logs)."""
    path = os.path.join(procs.tmp, "sim-%d.log" % len(procs.procs))
    with open(path, "w") as log:
        proc, port = zostest.start_sim(procs, stderr=log, **kw)
    procs.sim_logs = getattr(procs, "sim_logs", []) + [(proc, path)]
    return proc, port


def check_logs(procs, want_rc=None):
    """Stops every node started by start_node; fails on sanitizer reports (and on an
    exit status other than WANT_RC when given)."""
    bad = []
    for proc, path in getattr(procs, "sim_logs", []):
        rc = procs.stop(proc)
        with open(path) as f:
            text = f.read()
        if any(m in text for m in SANITIZER_MARKS):
            bad.append("%s:\n%s" % (path, text[-4000:]))
        elif want_rc is not None and rc != want_rc:
            bad.append("node exited with %s:\n%s" % (rc, text[-2000:]))
    assert not bad, "\n".join(bad)


@pytest.fixture
def procs():
    p = zostest.Procs()
    try:
        yield p
        check_logs(p)
    finally:
        p.close()


@pytest.fixture(scope="module")
def node():
    """A plain (no TLS, no secret) simulated node shared by a module's tests."""
    p = zostest.Procs()
    try:
        proc, port = start_node(p)
        n = Node(port, proc=proc)
        yield n
        n.r.close()
        check_logs(p, want_rc=0)
    finally:
        p.close()

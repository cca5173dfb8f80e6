"""RESP2 and RESP3 clients on the same node at the same time, under load: each gets only
its own protocol's bytes.  The RESP2 clients are socket-level and keep every byte they
receive, so a single RESP3 type byte ('%', '~', '>', '_', ',', ...) anywhere in their
stream fails the test, and so does a RESP2 shape on a RESP3 client."""
import os
import subprocess
import sys
import threading

from conftest import SCRIPTS, TIMEOUT, WHOAMI
from resp3raw import RESP2_TYPES, encode

BATCHES = 60   # x BATCH pipelined commands per client: 3,000 commands each
BATCH = 50


def workload(k, own, i):
    """The I-th command of a client whose own keys start with OWN, and a checker of its
    reply for (proto, frame, counter state)."""
    n = i % 10
    if n == 0:
        return ("HGETALL", k + "h")
    if n == 1:
        return ("ZSCORE", k + "z", "m")
    if n == 2:
        return ("GET", k + "missing")
    if n == 3:
        return ("SMEMBERS", k + "s")
    if n == 4:
        return ("INCR", own + "counter")
    if n == 5:
        return ("SET", own + "last", str(i))
    if n == 6:
        return ("GET", own + "last")
    if n == 7:
        return ("CONFIG", "GET", "maxmemory-policy")
    if n == 8:
        return ("EVAL", "return {double=2.5}", 0)
    return ("GET", WHOAMI)


def expect(proto, node, cmd, f, state):
    """Raises AssertionError unless frame F is CMD's reply in protocol PROTO."""
    name = cmd[0]
    t = f.type
    if proto == 2:
        assert f.types() <= RESP2_TYPES, "RESP3 bytes on a RESP2 client: %r" % f.raw
    if name == "HGETALL":
        assert (t, f.py()) == (("%", {b"a": b"1", b"b": b"2"}) if proto == 3
                               else ("*", [b"a", b"1", b"b", b"2"])), f.raw
    elif name == "ZSCORE":
        assert f.raw == (b",1.5\r\n" if proto == 3 else b"$3\r\n1.5\r\n"), f.raw
    elif name == "GET" and cmd[1].endswith("missing"):
        assert f.raw == (b"_\r\n" if proto == 3 else b"$-1\r\n"), f.raw
    elif name == "SMEMBERS":
        assert t == ("~" if proto == 3 else "*") and sorted(f.py()) == [b"x", b"y"], f.raw
    elif name == "INCR":
        state["counter"] += 1
        assert f.raw == b":%d\r\n" % state["counter"], (f.raw, state)
    elif name == "SET":
        state["last"] = cmd[2]
        assert f.raw == b"+OK\r\n", f.raw
    elif name == "GET" and cmd[1] == WHOAMI:
        assert f.value == node.encode(), f.raw
    elif name == "GET":
        assert f.value == state["last"].encode(), (f.raw, state)
    elif name == "CONFIG":
        assert t == ("%" if proto == 3 else "*"), f.raw
    elif name == "EVAL":
        assert f.raw == (b",2.5\r\n" if proto == 3 else b"$3\r\n2.5\r\n"), f.raw


def client_run(stack, node, proto, k, own, errors):
    try:
        c = stack.raw(node, proto=proto, record=(proto == 2))
        state = {"counter": 0, "last": None}
        with c:
            for b in range(BATCHES):
                cmds = [workload(k, own, b * BATCH + i) for i in range(BATCH)]
                c.send_raw(b"".join(encode(*cmd) for cmd in cmds))
                for cmd in cmds:
                    expect(proto, node, cmd, c.read(), state)
            assert state["counter"] == BATCHES * BATCH // 10
            if proto == 2:  # scan the whole recorded stream once more, without the parser
                assert not _frame_starts_outside_resp2(c.received), \
                    "a RESP3 type byte started a line on a RESP2 client"
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append("RESP%d client %s: %r" % (proto, own, e))


def _frame_starts_outside_resp2(data):
    """True when some line of DATA that is not bulk payload starts with a RESP3 type byte
    (re-scans the recorded stream independently of the parser)."""
    i, n = 0, len(data)
    pending_bulk = None
    while i < n:
        j = data.find(b"\r\n", i)
        if j < 0:
            return False
        if pending_bulk is not None:
            i = i + pending_bulk + 2
            pending_bulk = None
            continue
        line = bytes(data[i:j])
        if chr(line[0]) not in RESP2_TYPES:
            return True
        if line[:1] == b"$" and int(line[1:]) >= 0:
            pending_bulk = int(line[1:])
        i = j + 2
    return False


def subscriber_run(stack, node, proto, ch, count, errors, ready):
    try:
        c = stack.raw(node, proto=proto, record=(proto == 2))
        with c:
            f = c.call("SUBSCRIBE", ch)
            assert f.type == (">" if proto == 3 else "*"), f.raw
            ready.release()
            for i in range(count):
                f = c.read()
                want = b"%s3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                    b">" if proto == 3 else b"*", len(ch), ch.encode(), len(str(i)), str(i).encode())
                assert f.raw == want, (f.raw, want)
            if proto == 2:
                assert not _frame_starts_outside_resp2(c.received)
    except Exception as e:  # noqa: BLE001
        errors.append("RESP%d subscriber: %r" % (proto, e))
        ready.release()


def test_resp2_and_resp3_clients_under_load(stack, node, uniq):
    d = stack.direct(node)
    d.hset(uniq + "h", mapping={"a": "1", "b": "2"})
    d.zadd(uniq + "z", {"m": 1.5})
    d.sadd(uniq + "s", "x", "y")
    errors = []
    ch = uniq + "ch"
    messages = 500
    ready = threading.Semaphore(0)
    subs = [threading.Thread(target=subscriber_run, args=(stack, node, p, ch, messages, errors, ready))
            for p in (2, 3)]
    for t in subs:
        t.start()
    for _ in subs:
        assert ready.acquire(timeout=TIMEOUT)
    workers = [threading.Thread(target=client_run,
                                args=(stack, node, proto, uniq, "%sc%d:" % (uniq, i), errors))
               for i, proto in enumerate((2, 3, 2, 3))]
    for t in workers:
        t.start()
    pub = stack.client(node)
    for i in range(messages):
        assert pub.publish(ch, str(i)) == 2
    for t in workers + subs:
        t.join(120)  # a no-hang guard
    assert not any(t.is_alive() for t in workers + subs), "a client hung; errors: %s" % errors
    assert not errors, "\n".join(errors)
    for i in range(4):
        assert int(d.get("%sc%d:counter" % (uniq, i))) == BATCHES * BATCH // 10


def test_library_processes_side_by_side(stack, node, uniq, node_modules, lab):
    """node-redis (RESP3, its default) and redis-py (RESP2) processes hammer the same node
    at once through their libraries; both see their own protocol's shapes."""
    env = dict(stack.lab.env, NODE_PATH=node_modules)
    procs = []
    for i in range(2):
        procs.append(lab.procs.start(
            ["node", os.path.join(SCRIPTS, "node_redis.js"), "127.0.0.1", str(stack.port), node,
             stack.password(node), "%sn%d:" % (uniq, i), "default", "resp3_types", "pipeline",
             "push_commands", "resp3_types"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        procs.append(lab.procs.start(
            [sys.executable, os.path.join(SCRIPTS, "redispy_client.py"), "127.0.0.1", str(stack.port),
             node, stack.password(node), "%sp%d:" % (uniq, i), "sync", "pipeline", "pubsub",
             "multi_watch", "pipeline"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outs = []
    for p in procs:  # the lab stops them by PID whatever happens
        out, err = p.communicate(timeout=120)
        outs.append((p.args[0], out, err))
    for argv0, out, err in outs:
        lines = out.splitlines()
        assert lines and all(l.startswith("ok ") for l in lines), "%s:\n%s\n%s" % (argv0, out, err[-2000:])

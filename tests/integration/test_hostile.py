"""A node that answers garbage costs only its link; a client before AUTH gets redis's limits.

A scripted node (tests/lib/hostile_node.py) answers each request as its scenario says:
truncated frames, unknown type bytes, negative and huge lengths, nesting deeper than 64,
RESP3 on a RESP2 link, CR without LF, replies nobody asked for, bogus subscribe
confirmations.  The proxy must drop only that link, say why in its log and to every
request in flight on it (`-ERR node 'h' protocol error: ...`, or `unavailable: connection
closed by the node` when the node hung up mid-reply), reconnect with backoff, keep serving
a well-behaved redis-server node to other clients meanwhile, and never crash or hang.
Also issue 9's client-side reproductions: pub/sub confirmations of long channel names,
and redis's request limits before AUTH (compared byte for byte with a real redis-server).
"""
import socket
import threading
import time

import pytest

from conftest import (PROXY_PASS, TIMEOUT, Lab, RawConn, finish_lab, free_port, node_section,
                      recv_until_closed, wait_for)
from hostile_node import HostileNode, encode
from resp_raw import ErrorReply
from zostest import SANITIZER_MARKS

NHOSTILE = 24     # node names [h0]..[h23], all pointing at one hostile node
SESSIONS = 1000


def _deep_value(n):
    v = 1
    for _ in range(n):
        v = [v]
    return v


# What a client gets for each scenario of hostile_node.SCENARIOS.
OK_VALUES = {
    "ok": "ok", "nil": None, "nil-array": None, "int": 42, "status": "fine",
    "error": ErrorReply("ERR the node says no"), "array": ["a", 7, ["x"]],
    "deep-ok": _deep_value(10), "split": ["hello", "world"], "big-ok": "b" * 1000000,
}
PROTO = ["type-question", "type-x", "type-nul", "junk-line", "junk-binary", "int-not-number",
         "bulk-len-not-number", "bulk-bad-terminator", "cr-without-lf",
         "cr-without-lf-bulk-header", "neg-bulk", "neg-array", "huge-bulk", "huge-array",
         "over-max-bulk", "deep-100", "resp3-push", "resp3-map", "resp3-null", "resp3-bool",
         "resp3-double", "resp3-bignum", "resp3-verbatim", "resp3-set", "resp3-attr"]
CLOSED = ["trunc-bulk", "trunc-array", "trunc-line", "trunc-int", "trunc-header",
          "close-silent", "huge-in-limit"]
SUB_PROTO = ["sub-bogus", "sub-status", "sub-message-first"]

# In the log, the reason names the first bytes of the bad reply, escaped.
LOG_FRAGMENTS = {
    "type-nul": "\\x00",
    "type-question": "?what",
    "neg-bulk": "$-5",
    "huge-bulk": "$99999999999",
    "huge-array": "*99999999999",
    "cr-without-lf": "+OK\\rjunk",
    "double": "+PONG",
    "sub-bogus": ":99999999",
}


def closed_error(node):
    return "ERR node '%s' unavailable: connection closed by the node" % node


def is_proto_error(got, node):
    return isinstance(got, ErrorReply) and got.startswith("ERR node '%s' protocol error: " % node)


def is_down_error(got, node):
    return isinstance(got, ErrorReply) and got.startswith("ERR node '%s' unavailable: " % node)


def until(pred, what, interval=0.02):
    """Polls PRED until true (a no-hang guard of TIMEOUT); unlike conftest.wait_for, an
    assertion inside PRED fails at once instead of being retried."""
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        assert time.monotonic() < deadline, "timed out after %ss waiting for %s" % (TIMEOUT, what)
        time.sleep(interval)


def log_lines_with(proxy, *parts):
    return [ln for ln in proxy.log().splitlines() if all(p in ln for p in parts)]


def assert_no_sanitizer_report(proxy):
    log = proxy.log()
    for mark in SANITIZER_MARKS + ("LeakSanitizer", "AddressSanitizer"):
        assert mark not in log, "sanitizer report in the proxy's log:\n" + log[-6000:]


def hostile_conf(port, hport, names, good_port=None, extra_proxy=""):
    conf = "[proxy]\nlisten = 127.0.0.1:%d\n%s" % (port, extra_proxy)
    if good_port is not None:
        conf += "default = good\n"
    conf += "\n"
    if good_port is not None:
        conf += node_section("good", good_port)
    for n in names:
        conf += node_section(n, hport)
    return conf


# ---------------------------------------------------------------- one node, one scenario at a time

@pytest.fixture(scope="module")
def one():
    """A proxy with hostile node 'h' and a real redis-server 'good' (the default)."""
    lab = Lab()
    h = HostileNode()
    _, good_port, _ = lab.redis()
    port = free_port()
    proxy = lab.session_proxy(hostile_conf(port, h.port, ["h"], good_port), port)
    proxy.hostile = h
    proxy.serial = iter(range(10 ** 9))
    yield proxy
    h.stop()
    errors = list(h.errors)
    finish_lab(lab)
    assert not errors, errors


def h_ready(proxy, conn):
    """Waits until node h answers again (its link reconnects after a backoff)."""
    def up():
        got = conn.call("ZOS.AT", "h", "GET", "ok:ready-%d" % next(proxy.serial))
        if got == "ok":
            return True
        assert is_down_error(got, "h"), got  # anything else is wrong, not just 'not yet'
        return False
    until(up, "node h to come back")


@pytest.mark.parametrize("scenario", PROTO)
def test_malformed_reply_fails_every_request_in_flight(one, scenario):
    """Three requests wait on the link when the bad reply comes: all four get the protocol
    error, the log says which node and shows the bytes, and the link comes back."""
    conn = RawConn(one.port)
    h_ready(one, conn)
    n = next(one.serial)
    tokens = ["hold:%d-%d" % (n, i) for i in range(3)] + ["%s:%d" % (scenario, n)]
    conn.s.sendall(b"".join(encode("ZOS.AT", "h", "GET", t) for t in tokens))
    got = [conn.read() for _ in tokens]
    assert one.hostile.saw(tokens[-1])
    for g in got:
        assert is_proto_error(g, "h"), got
    assert log_lines_with(one, "'h'", "protocol error: "), one.log()[-3000:]
    if scenario in LOG_FRAGMENTS:
        assert log_lines_with(one, "'h'", "protocol error: ", LOG_FRAGMENTS[scenario]), \
            one.log()[-3000:]
    h_ready(one, conn)
    assert one.client().set("bystander", scenario) is True  # the default node never noticed
    one.assert_alive()


@pytest.mark.parametrize("scenario", CLOSED)
def test_node_closing_mid_reply_fails_requests_in_flight(one, scenario):
    conn = RawConn(one.port)
    h_ready(one, conn)
    n = next(one.serial)
    tokens = ["hold:%d-%d" % (n, i) for i in range(2)] + ["%s:%d" % (scenario, n)]
    conn.s.sendall(b"".join(encode("ZOS.AT", "h", "GET", t) for t in tokens))
    got = [conn.read() for _ in tokens]
    assert got == [closed_error("h")] * len(tokens)
    h_ready(one, conn)
    one.assert_alive()


@pytest.mark.parametrize("scenario", sorted(OK_VALUES))
def test_well_formed_replies_pass_unchanged(one, scenario):
    conn = RawConn(one.port)
    h_ready(one, conn)
    got = conn.call("ZOS.AT", "h", "GET", "%s:%d" % (scenario, next(one.serial)))
    assert got == OK_VALUES[scenario] and type(got) is type(OK_VALUES[scenario])
    # and the link was kept: a request right after is answered by the node itself
    assert conn.call("ZOS.AT", "h", "GET", "int:%d" % next(one.serial)) == 42


def node_state(nodes_reply, name):
    for entry in nodes_reply:
        kv = dict(zip(entry[::2], entry[1::2]))
        if kv.get("name") == name:
            return kv
    raise AssertionError("no node %s in ZOS.NODES: %r" % (name, nodes_reply))


def test_requests_while_the_link_is_down_get_unavailable(one):
    """After a protocol error the link waits out its backoff; a request meanwhile is refused
    at once as `unavailable: <why>`: it never reached the node, so it met no protocol error.
    ZOS.NODES and the request go in one write, so the proxy handles both in one turn of its
    loop and the state ZOS.NODES shows is the state the request met."""
    conn = RawConn(one.port)
    for attempt in range(20):
        h_ready(one, conn)
        n = next(one.serial)
        got = conn.call("ZOS.AT", "h", "GET", "type-x:%d" % n)
        assert is_proto_error(got, "h"), got
        conn.s.sendall(encode("ZOS.NODES") + encode("ZOS.AT", "h", "GET", "ok:%d-after" % n))
        state, got = node_state(conn.read(), "h"), conn.read()
        if state["state"] != "down":
            continue  # it came back already: try again
        assert not one.hostile.saw("ok:%d-after" % n)
        assert is_down_error(got, "h"), "while down (ZOS.NODES: %r) a request got %r" % (
            state, got)
        return
    pytest.fail("the link of h was never seen down after a protocol error")


def test_extra_reply_is_a_protocol_error_after_the_first_reached_the_client(one):
    conn = RawConn(one.port)
    h_ready(one, conn)
    assert conn.call("ZOS.AT", "h", "PING", "double:%d" % next(one.serial)) == "PONG"
    wait_for(lambda: log_lines_with(one, "'h'", "protocol error: ", "nobody asked for"),
             timeout=TIMEOUT, what="the log line of the extra reply")
    h_ready(one, conn)
    one.assert_alive()


def test_bogus_subscribe_confirmation_is_an_error_not_a_crash(one):
    """Issue 9: ["subscribe", :99999999, :1] as the answer to SUBSCRIBE made the proxy read
    far past the reply (SIGSEGV).  The subscriber gets the protocol error, the proxy lives,
    the connection goes on outside pub/sub mode."""
    n = next(one.serial)
    conn = RawConn(one.port)
    assert conn.call("ZOS.USE", "h") == "OK"
    got = conn.call("SUBSCRIBE", "sub-bogus:%d" % n)
    assert is_proto_error(got, "h"), got
    one.assert_alive()
    assert conn.call("PING") == "PONG"
    assert log_lines_with(one, "'h'", "protocol error: ", ":99999999"), one.log()[-3000:]
    assert one.client().set("after-bogus-subscribe", "1") is True


@pytest.mark.parametrize("scenario", ["sub-status", "sub-message-first"])
def test_other_non_confirmations_of_subscribe(one, scenario):
    conn = RawConn(one.port)
    assert conn.call("ZOS.USE", "h") == "OK"
    got = conn.call("SUBSCRIBE", "%s:%d" % (scenario, next(one.serial)))
    assert is_proto_error(got, "h"), got
    assert conn.call("PING") == "PONG"
    one.assert_alive()


def test_refused_subscribe_is_passed_on(one):
    conn = RawConn(one.port)
    assert conn.call("ZOS.USE", "h") == "OK"
    assert conn.call("SUBSCRIBE", "sub-refused:%d" % next(one.serial)) == \
        "ERR subscriptions are off"
    assert conn.call("PING") == "PONG"


def test_backoff_doubles_while_the_handshake_fails(lab, hostile):
    """A node that hangs up on AUTH, asked for all the time: requests meanwhile are refused
    at once with the reason (they never reach it), and the attempts back off -- jittered in
    [b/2, b] for b = 100, 200, 400 ms, so at least 50, 100, 200 ms apart (lower bounds only:
    timers never fire early; a constant 100 ms retry fails the third)."""
    h = hostile(on_auth="close")
    port = free_port()
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                  + node_section("hb", h.port, secret="not-really-a-secret"), port)
    conn = RawConn(port)
    got = conn.call("ZOS.AT", "hb", "GET", "ok:first")
    assert got == closed_error("hb"), got  # it was in flight when the node hung up
    n = 0

    def asked_five_times():
        nonlocal n
        n += 1
        got = conn.call("ZOS.AT", "hb", "GET", "ok:%d" % n)
        assert is_down_error(got, "hb"), got
        return len(h.accept_times()) >= 5
    until(asked_five_times, "five connect attempts", interval=0.01)
    assert not any(h.saw("ok:%d" % i) for i in range(1, n + 1))
    t = h.accept_times()
    gaps = [b - a for a, b in zip(t, t[1:4])]
    for k, gap in enumerate(gaps):
        assert gap >= 0.045 * 2 ** k, "attempt gaps %s: retry %d came before %d ms" % (
            ["%.3f" % g for g in gaps], k + 1, 50 * 2 ** k)
    p.assert_alive()


@pytest.mark.parametrize("step", ["AUTH", "SELECT"])
def test_garbage_answer_to_the_handshake(lab, hostile, step):
    """The answer to the proxy's own AUTH or SELECT is malformed: the request waiting behind
    the handshake gets the protocol error, the log names the node."""
    h = hostile(**{"on_" + step.lower(): b"?garbage\r\n"})
    port = free_port()
    extra = "db = 3\n" if step == "SELECT" else ""
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                  + node_section("hs", h.port, secret="s3cret" if step == "AUTH" else None,
                                 extra=extra), port)
    got = RawConn(port).call("ZOS.AT", "hs", "GET", "ok:1")
    assert is_proto_error(got, "hs"), got
    assert not h.saw("ok:1")
    assert log_lines_with(p, "'hs'", "protocol error: ", "?garbage"), p.log()
    assert "s3cret" not in p.log()
    p.assert_alive()


def test_garbage_answer_to_the_health_ping(lab, hostile):
    """An idle link's health PING answered with garbage: dropped with a log line, and the
    node is used again on the next request.  (The node has a secret: its handshake is AUTH;
    without one the handshake itself is a PING, and the garbage would refuse the link.)"""
    h = hostile(on_ping=b"\x00\x01junk\r\n")
    port = free_port()
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\nping-interval = 100\n\n" % port
                  + node_section("hp", h.port, secret="hp-secret"), port)
    conn = RawConn(port)
    assert conn.call("ZOS.AT", "hp", "GET", "ok:1") == "ok"
    wait_for(lambda: log_lines_with(p, "'hp'", "protocol error: ", "\\x00\\x01junk"),
             timeout=TIMEOUT, what="the health PING's protocol error in the log")
    n = iter(range(2, 10 ** 6))

    def answered():
        got = conn.call("ZOS.AT", "hp", "GET", "ok:%d" % next(n))
        assert got == "ok" or is_down_error(got, "hp") or is_proto_error(got, "hp"), got
        return got == "ok"
    until(answered, "node hp to answer again")
    p.assert_alive()


# ---------------------------------------------------------------- 1,000 sessions

def good_traffic(proxy, stop, stats, problems):
    """A well-behaved client of node 'good' for as long as the hostile sessions run: every
    reply must be right."""
    r = proxy.client(single_connection_client=True)
    i = 0
    try:
        r.delete("good:counter")
        while not stop.is_set():
            i += 1
            val = "v%d-%s" % (i, "x" * (i % 97))
            assert r.set("good:k%d" % (i % 50), val) is True
            assert r.get("good:k%d" % (i % 50)) == val
            assert r.incr("good:counter") == i
            pipe = r.pipeline(transaction=False)
            for j in range(10):
                pipe.set("good:p%d" % j, "%d-%d" % (i, j))
            for j in range(10):
                pipe.get("good:p%d" % j)
            assert pipe.execute() == [True] * 10 + ["%d-%d" % (i, j) for j in range(10)]
            assert r.execute_command("ZOS.AT", "good", "ECHO", "e%d" % i) == "e%d" % i
    except Exception as e:  # noqa: BLE001 - reported by the test
        problems.append("good-node client, round %d: %r" % (i, e))
    finally:
        stats["rounds"] = i


ROTATION = ([("single", s) for s in sorted(OK_VALUES)] + [("single", s) for s in PROTO]
            + [("single", s) for s in CLOSED] + [("double", "double")] * 3
            + [("inflight", s) for s in ("type-x", "neg-bulk", "huge-array", "resp3-push",
                                         "deep-100", "trunc-bulk", "huge-in-limit")]
            + [("subscribe", s) for s in SUB_PROTO + ["sub-refused", "sub-good"]])


class Sessions:
    def __init__(self, proxy, h):
        self.proxy, self.h = proxy, h
        self.conn = RawConn(proxy.port)
        self.problems = []  # (category, detail)
        self.exercised = {}
        self.downs = 0
        self.node_i = 0

    def problem(self, sid, kind, name, node, what, detail):
        self.problems.append(("%s [%s %s]" % (what, kind, name),
                              "session %d on %s: %s" % (sid, node, detail)))

    def report(self):
        """Problems grouped by category: count and first example of each."""
        groups = {}
        for cat, detail in self.problems:
            groups.setdefault(cat, []).append(detail)
        return "\n".join("%4d x %s\n       e.g. %s" % (len(v), k, v[0])
                         for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1])))

    def run(self, sid, kind, name):
        """Runs one session on the next node whose link is up; False if none was."""
        for attempt in range(20 * NHOSTILE):
            node = "h%d" % (self.node_i % NHOSTILE)
            self.node_i += 1
            if getattr(self, kind)(sid, attempt, name, node):
                self.exercised[name] = self.exercised.get(name, 0) + 1
                return True
            self.downs += 1
            if attempt % NHOSTILE == NHOSTILE - 1:
                time.sleep(0.05)  # every link is in its backoff: let one come back
        self.problem(sid, kind, name, "-", "no node link came back", "")
        return False

    def down(self, sid, kind, name, node, tokens, got):
        """True when the link was down (nothing reached the node, every reply says so)."""
        if any(self.h.saw(t) for t in tokens):
            return False
        if not all(is_down_error(g, node) for g in got):
            self.problem(sid, kind, "-", node, "refused while the link was down, but not as "
                         "'unavailable'", "%r" % (got,))
        return True

    def single(self, sid, attempt, name, node):
        token = "%s:%d.%d" % (name, sid, attempt)
        got = self.conn.call("ZOS.AT", node, "GET", token)
        if self.down(sid, "single", name, node, [token], [got]):
            return False
        if name in OK_VALUES:
            ok = got == OK_VALUES[name] and type(got) is type(OK_VALUES[name])
        elif name in CLOSED:
            ok = got == closed_error(node)
        else:
            ok = is_proto_error(got, node)
        if not ok:
            self.problem(sid, "single", name, node, "wrong reply",
                         "%r" % (got if len(str(got)) < 300 else str(got)[:300] + "..."))
        return True

    def double(self, sid, attempt, name, node):
        token = "%s:%d.%d" % (name, sid, attempt)
        got = self.conn.call("ZOS.AT", node, "PING", token)
        if self.down(sid, "double", name, node, [token], [got]):
            return False
        if got != "PONG":
            self.problem(sid, "double", name, node, "not the first PONG", "%r" % (got,))
        return True

    def inflight(self, sid, attempt, name, node):
        tokens = ["hold:%d.%d.%d" % (sid, attempt, i) for i in range(3)]
        tokens.append("%s:%d.%d" % (name, sid, attempt))
        self.conn.s.sendall(b"".join(encode("ZOS.AT", node, "GET", t) for t in tokens))
        got = [self.conn.read() for _ in tokens]
        if self.down(sid, "inflight", name, node, tokens, got):
            return False
        want = (lambda g: g == closed_error(node)) if name in CLOSED else \
            (lambda g: is_proto_error(g, node))
        if not all(want(g) for g in got):
            self.problem(sid, "inflight", name, node, "wrong replies", "%r" % (got,))
        return True

    def subscribe(self, sid, attempt, name, node):
        token = "%s:%d.%d" % (name, sid, attempt)
        c = RawConn(self.proxy.port)
        try:
            got = c.call("ZOS.USE", node)
            if got != "OK":
                self.problem(sid, "subscribe", name, node, "ZOS.USE failed", "%r" % (got,))
                return True
            got = c.call("SUBSCRIBE", token)
            if name == "sub-good":
                ok = got == ["subscribe", token, 1] and \
                    c.call("UNSUBSCRIBE", token) == ["unsubscribe", token, 0]
            elif name == "sub-refused":
                ok = got == "ERR subscriptions are off"
            else:
                ok = is_proto_error(got, node)
            if not ok:
                self.problem(sid, "subscribe", name, node, "wrong reply", "%r" % (got,))
            pong = c.call("PING")
            if pong != "PONG":
                self.problem(sid, "subscribe", name, node, "PING after it", "%r" % (pong,))
        finally:
            c.close()
        return True


def test_a_thousand_hostile_sessions_cost_only_their_links(lab, hostile):
    h = hostile()
    _, good_port, _ = lab.redis()
    port = free_port()
    names = ["h%d" % i for i in range(NHOSTILE)]
    proxy = lab.proxy(hostile_conf(port, h.port, names, good_port), port)

    stop, stats, good_problems = threading.Event(), {}, []
    good = threading.Thread(target=good_traffic, args=(proxy, stop, stats, good_problems))
    good.start()
    s = Sessions(proxy, h)
    try:
        for sid in range(SESSIONS):
            kind, name = ROTATION[sid % len(ROTATION)]
            try:
                s.run(sid, kind, name)
            except (OSError, ConnectionError, socket.timeout) as e:
                pytest.fail("session %d (%s %s): %r -- proxy %s; log tail:\n%s" % (
                    sid, kind, name, e, "alive" if proxy.alive() else
                    "DEAD (exit %s)" % proxy.proc.returncode, proxy.log()[-4000:]),
                    pytrace=False)
    finally:
        stop.set()
        good.join(TIMEOUT * 2)

    proxy.assert_alive()
    assert not s.problems, "%d problems in %d sessions (%d answers of a link that was down):\n%s" \
        % (len(s.problems), SESSIONS, s.downs, s.report())
    assert not good_problems, good_problems
    assert stats.get("rounds", 0) > 1, "the good-node client did not run"
    assert sum(s.exercised.values()) == SESSIONS
    for _, name in ROTATION:
        assert s.exercised.get(name, 0) > 0, "scenario %s never reached the node" % name
    for name, frag in LOG_FRAGMENTS.items():
        assert log_lines_with(proxy, "protocol error: ", frag), \
            "no log line shows the bytes of %s (%r)" % (name, frag)
    assert log_lines_with(proxy, "protocol error: ", "nobody asked for")
    # every hostile link was dropped at least once, with the node named in the log
    for n in names:
        assert log_lines_with(proxy, "'%s'" % n, "protocol error: "), "no log line for " + n

    proxy.expect_exit = True
    rc = proxy.terminate()
    assert rc == 0, "exit %s on SIGTERM; log tail:\n%s" % (rc, proxy.log()[-6000:])
    assert_no_sanitizer_report(proxy)


# ---------------------------------------------------------------- pub/sub with long channel names

def pubsub_sequence(conn, channel, pattern=False):
    """SUBSCRIBE, UNSUBSCRIBE, PING on one connection: the three replies' exact bytes."""
    sub, unsub = ("PSUBSCRIBE", "PUNSUBSCRIBE") if pattern else ("SUBSCRIBE", "UNSUBSCRIBE")
    out = []
    for args in ((sub, channel), (unsub, channel), ("PING",)):
        try:
            out.append(conn.call_raw(*args)[0])
        except (OSError, ConnectionError) as e:
            short = [r if len(r) < 200 else r[:100] + b"..." + r[-40:] for r in out]
            pytest.fail("no reply to %s (%r) after %r" % (args[0], e, short), pytrace=False)
    return out


@pytest.mark.parametrize("length", [1, 478, 490, 512, 100000])
@pytest.mark.parametrize("pattern", [False, True], ids=["channel", "pattern"])
def test_unsubscribe_of_a_long_channel_leaves_pubsub_mode(open_proxy, nodes, length, pattern):
    """Issue 9: a confirmation of 512 bytes or more was not recognised, so the connection
    stayed in pub/sub mode.  Through the proxy the replies must be redis's own, byte for byte:
    the confirmations, then +PONG (redis answers PING so outside pub/sub mode)."""
    channel = "c" * length
    direct = pubsub_sequence(RawConn(nodes.plain_port), channel, pattern)
    assert direct[2] == b"+PONG\r\n"  # what redis does, for the record
    through = pubsub_sequence(RawConn(open_proxy.port), channel, pattern)
    assert through == direct
    open_proxy.assert_alive()


# ---------------------------------------------------------------- before AUTH: redis's limits

@pytest.fixture(scope="module")
def redis_with_pass():
    """A real redis-server with requirepass, to compare error texts with."""
    lab = Lab()
    _, port, _ = lab.redis(password=PROXY_PASS)
    yield port
    finish_lab(lab)


def exchange(port, data):
    """Sends DATA on a new connection; everything received until the peer closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        s.sendall(data)
        return recv_until_closed(s, timeout=TIMEOUT)
    finally:
        s.close()


@pytest.mark.parametrize("data,text", [
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n",
     b"-ERR Protocol error: unauthenticated bulk length\r\n"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16385\r\n",
     b"-ERR Protocol error: unauthenticated bulk length\r\n"),
    (b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n"),
    (b"*1000000\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n"),
], ids=["bulk-512m", "bulk-16385", "args-11", "args-1m"])
def test_before_auth_big_requests_are_refused_and_closed(locked_proxy, redis_with_pass, data,
                                                         text):
    """Issue 9: before AUTH the proxy waited for (and buffered) 512 MB.  Now, as redis: the
    error at once, then the connection closes."""
    want = exchange(redis_with_pass, data)
    assert want == text  # the reference itself
    assert exchange(locked_proxy.port, data) == want
    locked_proxy.assert_alive()


def noauth_requests():
    return [encode("DEL", *["k%d" % i for i in range(9)]),           # 10 arguments
            encode("SET", "k", "v" * 16384),                          # a bulk of 16384 bytes
            encode("MSET", "a", "x" * 16384, "b", "y" * 16384, "c")]  # 6 args, 2 big bulks


@pytest.mark.parametrize("i", range(3), ids=["args-10", "bulk-16384", "bulks-16384"])
def test_before_auth_requests_at_the_limits_get_noauth(locked_proxy, redis_with_pass, i):
    req = noauth_requests()[i]
    replies = []
    for port in (redis_with_pass, locked_proxy.port):
        c = RawConn(port)
        c.s.sendall(req)
        raw, _ = c.read_raw()
        assert c.call("PING") == "NOAUTH Authentication required."  # still open
        replies.append(raw)
        c.close()
    assert replies[0] == b"-NOAUTH Authentication required.\r\n"
    assert replies[1] == replies[0]


def test_node_port_with_a_password_has_the_same_limits(lab, nodes):
    """README: the pre-AUTH limits also hold on a node's own listen port when that node
    has a password (and no [proxy] requirepass)."""
    port, nport = free_port(), free_port()
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                  + node_section("plain", nodes.plain_port,
                                 extra="password = node-pass\nlisten = 127.0.0.1:%d\n" % nport),
                  port, node_ports={"plain": nport})
    assert exchange(nport, b"*11\r\n") == \
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    assert exchange(nport, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n") == \
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    c = RawConn(nport)
    assert c.call("SET", "k", "v" * 16384) == "NOAUTH Authentication required."
    assert c.call("AUTH", "node-pass") == "OK"
    assert c.call("DEL", *["node-port-%d" % i for i in range(20)]) == 0
    p.assert_alive()


def test_after_auth_big_requests_work(locked_proxy, uniq):
    c = RawConn(locked_proxy.port)
    assert c.call("AUTH", PROXY_PASS) == "OK"
    big = "z" * (1 << 20)
    assert c.call("SET", uniq + "big", big) == "OK"
    assert c.call("GET", uniq + "big") == big
    keys = [uniq + "m%d" % i for i in range(30)]
    assert c.call("DEL", *keys) == 0
    key = uniq.encode() + b"x"
    c.s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$20000\r\n" % (len(key), key)
                + b"q" * 20000 + b"\r\n")
    assert c.read() == "OK"
    c.close()

"""Node links as lanes: output/query limits, hung nodes (node-timeout), lost stateful links,
SELECT without pinning, pins released after use, the control link (SCRIPT KILL), DEBUG SLEEP,
bounded linger after a protocol error, SIGTERM answering what was read, and big replies that
do not stall other clients.

Real redis-server nodes, the real zos-proxy ($ZOS_BUILD), Debian's redis-py with default
options, raw sockets where exact bytes or non-reading clients matter, and ioredis (npm, the
cache tests/clients/conftest.py installs into) for one library-level restart check.

No test asserts a duration: they assert replies, order, overlap and counts.  Timeouts are
"no hang" guards only (GUARD seconds, generous).  Every process is started through the `lab`
fixture and stopped by PID at teardown; a node that a test SIGSTOPs is SIGCONTed in a
`finally`.
"""
import glob
import hashlib
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis

from conftest import (NODE_SECRET, TIMEOUT, free_port, node_section, read_log, wait_for,
                      wait_node_busy)
import zostest  # noqa: E402  (on sys.path through conftest)
from resp_raw import encode_command

HERE = os.path.dirname(os.path.abspath(__file__))
GUARD = 30          # seconds: "nothing hangs" guard for one awaited step
MIB = 1024 * 1024


# ---------------------------------------------------------------- helpers

def start_node(lab, port=None, extra=(), tls_files=None, tls=False, password=None):
    """(proc, port, cert) of a redis-server started through LAB (stopped by PID)."""
    return lab.procs.redis(port=port, extra=extra, tls_files=tls_files, tls=tls, password=password)


def start_proxy(lab, node_port, proxy_conf="", tls=False, secret=None, node_extra=""):
    """A zos-proxy whose only node is "n" at NODE_PORT; PROXY_CONF goes into [proxy].
    A proxy that does not start (e.g. a config key it does not know) fails the test with
    its log, so the reason is visible."""
    port = free_port()
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\n" % port + proxy_conf + "\n"
            + node_section("n", node_port, tls=tls, secret=secret, extra=node_extra))
    try:
        return lab.proxy(conf, port)
    except (RuntimeError, TimeoutError) as e:
        logs = sorted(glob.glob(os.path.join(lab.tmp, "proxy-*.log")), key=os.path.getmtime)
        pytest.fail("zos-proxy did not start (%s); config:\n%s\nlog:\n%s"
                    % (e, conf, read_log(logs[-1]) if logs else "(none)"), pytrace=False)


def direct(port, db=0, tls=False, **kw):
    """redis-py straight to the node (not through the proxy)."""
    kw.setdefault("socket_timeout", TIMEOUT)
    kw.setdefault("decode_responses", True)
    if tls:
        return redis.Redis(host="127.0.0.1", port=port, db=db, password=NODE_SECRET, ssl=True,
                           ssl_cert_reqs=None, **kw)
    return redis.Redis(host="127.0.0.1", port=port, db=db, **kw)


def wait_node_runs(node_port, cmd, tls=False):
    """Waits until the node's CLIENT LIST shows a client whose current command is CMD."""
    d = direct(node_port, tls=tls)
    wait_for(lambda: any(c.get("cmd") == cmd for c in d.client_list()), timeout=GUARD,
             what="a %s running on the node" % cmd)
    d.close()


def restart_node(lab, proc, port, extra=()):
    """SIGKILLs the node PROC and starts a new one on the same PORT; returns its proc."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(TIMEOUT)
    p, _, _ = start_node(lab, port=port, extra=extra)
    return p


class Incomplete(Exception):
    pass


def _parse(buf, i):
    """One RESP2 reply of BUF at I: ((kind, value), next index); kind 'err' or 'val'."""
    j = buf.find(b"\r\n", i)
    if j < 0:
        raise Incomplete()
    t, rest = buf[i:i + 1], buf[i + 1:j]
    i = j + 2
    if t == b"+":
        return ("val", rest.decode("latin-1")), i
    if t == b"-":
        return ("err", rest.decode("latin-1")), i
    if t == b":":
        return ("val", int(rest)), i
    if t == b"$":
        n = int(rest)
        if n < 0:
            return ("val", None), i
        if len(buf) < i + n + 2:
            raise Incomplete()
        return ("val", buf[i:i + n]), i + n + 2
    if t == b"*":
        n = int(rest)
        if n < 0:
            return ("val", None), i
        items = []
        for _ in range(n):
            v, i = _parse(buf, i)
            items.append(v)
        return ("val", items), i
    raise AssertionError("not RESP: %r" % buf[i - 1 - len(rest):i + 40])


def parse_replies(buf):
    """The complete replies in BUF, in order (a trailing partial reply is left out)."""
    out, i = [], 0
    while i < len(buf):
        try:
            v, i = _parse(buf, i)
        except Incomplete:
            break
        out.append(v)
    return out


def read_until_closed(sock, guard=GUARD):
    """(bytes received, closed): reads until EOF or reset; closed False if GUARD passed."""
    sock.settimeout(1)
    buf = b""
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        try:
            b = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return buf, True
        if not b:
            return buf, True
        buf += b
    return buf, False


def read_replies_or_close(sock, want, guard=GUARD):
    """(replies, closed, raw bytes): reads until WANT complete replies arrived or the peer
    closed, whichever first; closed is None when neither happened within GUARD."""
    sock.settimeout(1)
    buf = b""
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        if len(parse_replies(buf)) >= want:
            return parse_replies(buf), False, buf
        try:
            b = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return parse_replies(buf), True, buf
        if not b:
            return parse_replies(buf), True, buf
        buf += b
    return parse_replies(buf), None, buf


def send_or_closed(sock, data):
    """Sends DATA; False when the peer had already closed the connection."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def vm_rss(pid):
    """Resident memory of PID in bytes (VmRSS of /proc/PID/status), 0 if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssWatch(threading.Thread):
    """Samples a process's VmRSS until stop(); .peak is the largest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop_evt = pid, 0, threading.Event()

    def run(self):
        while not self._stop_evt.is_set():
            self.peak = max(self.peak, vm_rss(self.pid))
            time.sleep(0.02)

    def stop(self):
        self._stop_evt.set()
        self.join(5)
        self.peak = max(self.peak, vm_rss(self.pid))


class Outcome(threading.Thread):
    """Runs FN in a thread; .result / .error (the exception) / .done_at once finished."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error, self.done_at = fn, None, None, None

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        self.done_at = time.monotonic()

    def finished(self, guard=GUARD + 10):
        self.join(guard)
        return not self.is_alive()


def is_unavailable(e):
    return isinstance(e, redis.ResponseError) and "unavailable" in str(e)


def raise_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE to WANT (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        pytest.skip("RLIMIT_NOFILE %d < %d and cannot be raised" % (soft, want))


def redis_major():
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    v = out.split("v=", 1)[1].split()[0]
    return int(v.split(".")[0])


# ---------------------------------------------------------------- 1. big pipelines

def test_pipeline_of_2000_big_sets_and_50k_small_commands(lab):
    """redis-py writes a whole pipeline before it reads any reply: the proxy must keep
    reading it while replies wait (no deadlock), and every reply comes back in order."""
    _, node_port, _ = start_node(lab)
    proxy = start_proxy(lab, node_port)
    r = proxy.client(decode_responses=False, socket_timeout=GUARD)

    p = r.pipeline(transaction=False)
    values = []
    for i in range(2000):
        v = (b"%08d" % i) * 1280          # 10 KiB, different per key
        values.append(v)
        p.set("pl:big:%d" % i, v)
        p.get("pl:big:%d" % i)
    res = p.execute()
    assert len(res) == 4000
    bad = [i for i in range(2000) if res[2 * i] is not True or res[2 * i + 1] != values[i]]
    assert not bad, "wrong replies at %s..." % bad[:10]

    p = r.pipeline(transaction=False)
    for i in range(25000):
        p.set("pl:s:%d" % i, i)
        p.get("pl:s:%d" % i)
    res = p.execute()
    assert len(res) == 50000
    bad = [i for i in range(25000) if res[2 * i] is not True or res[2 * i + 1] != b"%d" % i]
    assert not bad, "wrong replies at %s..." % bad[:10]
    assert r.get("pl:big:1999") == values[1999]


# ---------------------------------------------------------------- 2. client-output-limit

def test_client_output_limit_closes_non_reader_others_unaffected(lab):
    """A client that sends 200 x GET of a 1 MiB value and never reads is closed once 64 MB
    of replies wait for it (logged `client-output-limit`); 20 other clients on the same node
    keep getting right answers; the proxy's RSS stays bounded.

    200 MiB is three times the limit with the sockets' buffers: enough to pass it, and little
    enough that a bystander whose request went on the hog's lane in the instant before it
    looked busy is answered well within GUARD on a machine loaded by other work.  The
    connect timeout is only a guard here: a loaded machine may take seconds to open the
    lanes the bystanders move to."""
    limit = 64 * MIB
    _, node_port, _ = start_node(lab)
    proxy = start_proxy(lab, node_port, "client-output-limit = 64mb\nconnect-timeout = 30000\n")
    big = bytes(range(256)) * (MIB // 256)
    direct(node_port, decode_responses=False).set("big", big)

    stop = threading.Event()
    counts, errors = [0] * 20, []

    def bystander(i):
        c = proxy.client(single_connection_client=True, socket_timeout=GUARD)
        try:
            while not stop.is_set():
                k, v = "by:%d" % i, "%d:%d" % (i, counts[i])
                if c.set(k, v) is not True or c.get(k) != v:
                    errors.append("bystander %d: wrong reply" % i)
                    return
                counts[i] += 1
        except Exception as e:  # noqa: BLE001
            errors.append("bystander %d: %r" % (i, e))
        finally:
            c.close()

    rss = RssWatch(proxy.proc.pid)
    rss.start()
    threads = [threading.Thread(target=bystander, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: all(counts) or errors, timeout=GUARD, what="bystanders running")
        hog = proxy.raw(timeout=GUARD)
        n = 200
        hog.sendall(encode_command("GET", "big") * n)
        wait_for(lambda: "client-output-limit" in proxy.log() or errors, timeout=60,
                 what="the proxy logging client-output-limit")
        assert "client-output-limit" in proxy.log(), errors
        got, closed = read_until_closed(hog, guard=60)
        hog.close()
        assert closed, "the non-reading client was not closed (%d bytes read)" % len(got)
        assert len(got) < n * MIB, "every reply was delivered: nothing was limited"
        # the others go on after the close too
        after = list(counts)
        wait_for(lambda: all(c >= a + 5 for c, a in zip(counts, after)) or errors,
                 timeout=GUARD, what="bystanders still served after the close")
    finally:
        stop.set()
        for t in threads:
            t.join(GUARD + 5)
        rss.stop()
    assert not errors, errors
    assert all(counts), counts
    # An AddressSanitizer build keeps up to 256 MiB of freed memory in its quarantine.
    slack = 256 * MIB if zostest.sanitized(zostest.PROXY_BIN) else 0
    assert rss.peak < 4 * limit + 100 * MIB + slack, \
        "zos-proxy VmRSS peaked at %d MiB" % (rss.peak // MIB)
    assert proxy.client(decode_responses=False).get("big") == big


# ---------------------------------------------------------------- 3. hung node

def test_sigstopped_node_fails_shared_pinned_multi_and_subscriber(lab):
    """A SIGSTOPped node (node-timeout 2000): a shared GET gets `-ERR node 'n' unavailable`
    and its connection stays usable (it answers again after SIGCONT); a BLPOP q 0, an EXEC
    of a MULTI in progress and a subscriber each get an error and then their connection
    closed -- none hangs."""
    node_proc, node_port, _ = start_node(lab)
    proxy = start_proxy(lab, node_port,
                        "node-timeout = 2000\nconnect-timeout = 1000\nbackoff-max = 500\n")
    direct(node_port).set("x", "1")

    shared = proxy.raw(timeout=GUARD)
    shared.sendall(encode_command("GET", "x"))
    assert read_replies_or_close(shared, 1)[0] == [("val", b"1")]
    multi = proxy.raw(timeout=GUARD)
    multi.sendall(encode_command("MULTI") + encode_command("SET", "mk", "1"))
    assert [v for _, v in read_replies_or_close(multi, 2)[0]] == ["OK", "QUEUED"]
    sub = proxy.client(socket_timeout=GUARD).pubsub()
    sub.subscribe("ch")
    assert wait_for(lambda: sub.get_message(timeout=1), timeout=GUARD,
                    what="subscribe confirmation")["type"] == "subscribe"
    bl = proxy.raw(timeout=GUARD)
    bl.sendall(encode_command("BLPOP", "q", "0"))
    wait_node_runs(node_port, "blpop")

    def subscriber():
        deadline = time.monotonic() + GUARD
        errs = []
        while time.monotonic() < deadline:
            try:
                m = sub.get_message(timeout=1)
            except redis.ConnectionError as e:
                return ("closed", errs, e)
            except redis.ResponseError as e:
                errs.append(e)
                continue
            if m is not None:
                return ("message", errs, m)
        return ("not closed", errs, None)

    def exec_():
        sent = send_or_closed(multi, encode_command("EXEC"))
        got, closed = read_until_closed(multi)
        return sent, parse_replies(got), closed

    def shared_get():
        shared.sendall(encode_command("GET", "x"))
        return read_replies_or_close(shared, 1)

    node_proc.send_signal(signal.SIGSTOP)
    try:
        get, ex, sb = Outcome(shared_get), Outcome(exec_), Outcome(subscriber)
        blp = Outcome(lambda: read_until_closed(bl))
        for o in (get, ex, sb, blp):
            o.start()
        for o in (get, ex, sb, blp):
            assert o.finished(), "still waiting after the guard"
            assert o.error is None, o.error

        replies, closed, raw = get.result
        assert closed is False and len(replies) == 1 and replies[0][0] == "err" \
            and "unavailable" in replies[0][1], "shared GET: %r closed=%r" % (raw, closed)

        got, closed = blp.result
        replies = parse_replies(got)
        assert closed and replies and all(k == "err" for k, _ in replies), \
            "BLPOP q 0: %r closed=%r" % (got, closed)

        sent, replies, closed = ex.result
        assert sent and closed and replies and all(k == "err" for k, _ in replies), \
            "EXEC on a hung node: replies %r, closed %r" % (replies, closed)

        kind, errs, detail = sb.result
        assert kind == "closed", "subscriber: %s %r %r" % (kind, errs, detail)
    finally:
        node_proc.send_signal(signal.SIGCONT)

    def shared_again():
        replies, closed, raw = shared_get()
        assert closed is False, "the shared client was closed: %r" % raw
        return replies == [("val", b"1")]
    wait_for(shared_again, timeout=GUARD, what="the same shared connection after SIGCONT")
    # (whether the EXEC ran is unknown to the client: its bytes were in the node's socket
    # before the hang was seen, so the node may run them after SIGCONT -- not checked)


# ---------------------------------------------------------------- 4. node restarted

def test_node_restart_db1_client_pubsub_multi_blpop(lab):
    """The node is SIGKILLed and restarted on its port under: a redis-py client in db 1
    (URL .../1) -- its writes after the restart land in db 1, never db 0; a subscriber -- its
    connection is closed and, re-subscribed, it hears a PUBLISH again; a BLPOP in flight -- an
    error, then its connection closed; a MULTI in progress -- closed (errors only, if any),
    never an EXEC run on a fresh link."""
    node_proc, node_port, _ = start_node(lab)
    proxy = start_proxy(lab, node_port, "backoff-max = 500\n")
    d0, d1 = direct(node_port, 0), direct(node_port, 1)

    c1 = redis.Redis.from_url("redis://127.0.0.1:%d/1" % proxy.port, decode_responses=True,
                              socket_timeout=GUARD)
    assert c1.set("pre", "1") is True
    assert d1.get("pre") == "1" and d0.get("pre") is None

    sub = proxy.client(socket_timeout=GUARD).pubsub()
    sub.subscribe("ch")
    assert wait_for(lambda: sub.get_message(timeout=1), timeout=GUARD,
                    what="subscribe confirmation")["type"] == "subscribe"

    multi = proxy.raw(timeout=GUARD)
    multi.sendall(encode_command("MULTI") + encode_command("SET", "mk", "1"))
    assert [v for _, v in read_replies_or_close(multi, 2)[0]] == ["OK", "QUEUED"]

    bl = proxy.raw(timeout=GUARD)
    bl.sendall(encode_command("BLPOP", "q", "0"))
    wait_node_runs(node_port, "blpop")

    node_proc = restart_node(lab, node_proc, node_port)
    d0, d1 = direct(node_port, 0), direct(node_port, 1)

    # the BLPOP in flight: an error, then the connection is closed
    got, closed = read_until_closed(bl)
    replies = parse_replies(got)
    assert closed, "BLPOP client not closed after its link was lost; got %r" % got
    assert replies and all(k == "err" for k, _ in replies), got

    # the MULTI: EXEC must not run on a fresh link (no reply but errors, and closed)
    sent = send_or_closed(multi, encode_command("EXEC"))
    got, closed = read_until_closed(multi)
    replies = parse_replies(got)
    assert closed, "MULTI client not closed after its link was lost (EXEC sent: %s); got %r" % (sent, got)
    assert all(k == "err" and "EXEC without MULTI" not in v for k, v in replies), got

    # the db-1 client: writes land in db 1 (or fail and then succeed), never in db 0
    deadline = time.monotonic() + GUARD
    for i in range(30):
        while True:
            try:
                assert c1.set("post:%d" % i, i) is True
                break
            except redis.ConnectionError:
                pass
            except redis.ResponseError as e:
                assert is_unavailable(e), e
            assert time.monotonic() < deadline, "writes in db 1 never resumed"
            time.sleep(0.05)
    assert d0.dbsize() == 0, "keys written in db 0: %r" % d0.keys("*")[:10]
    assert sorted(d1.keys("post:*")) == sorted("post:%d" % i for i in range(30))
    assert c1.get("post:7") == "7"

    # the subscriber: its connection is closed (maybe after an error) ...
    kind, errs = None, []
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline and kind is None:
        try:
            m = sub.get_message(timeout=1)
            assert m is None, "unexpected message %r" % m
        except redis.ConnectionError:
            kind = "closed"
        except redis.ResponseError as e:
            errs.append(e)
    assert kind == "closed", "subscriber not disconnected (errors %r)" % errs
    # ... and re-subscribed (redis-py does it on reconnect), it hears a PUBLISH
    deadline = time.monotonic() + GUARD
    subscribed = False
    while not subscribed:
        assert time.monotonic() < deadline, "could not subscribe again"
        try:
            m = sub.get_message(timeout=0.5)
            subscribed = bool(m and m["type"] == "subscribe")
        except redis.ConnectionError:
            time.sleep(0.1)
        except redis.ResponseError:
            time.sleep(0.1)
            sub.subscribe("ch")
    wait_for(lambda: d0.publish("ch", "after") >= 1, timeout=GUARD, what="the re-subscribed link")
    m = wait_for(lambda: sub.get_message(timeout=1), timeout=GUARD, what="the message")
    assert m["type"] == "message" and m["data"] == "after", m
    assert d0.get("mk") is None


# ---------------------------------------------------------------- 5. 1000 clients in db 1

def test_1000_connections_in_db1_set_get(lab):
    """1000 redis-py connections of one ConnectionPool with db=1, all open at once, each
    does SET/GET: all succeed (SELECT does not pin, so max-pinned 256 is no limit)."""
    raise_nofile(4096)
    _, node_port, _ = start_node(lab, extra=("--maxclients", "4000"))
    proxy = start_proxy(lab, node_port)
    pool = redis.ConnectionPool(host="127.0.0.1", port=proxy.port, db=1, max_connections=1100,
                                socket_timeout=GUARD, decode_responses=True)
    conns, errors = [], []
    try:
        for i in range(1000):
            try:
                conns.append(pool.get_connection("SET"))   # connects and sends SELECT 1
            except redis.RedisError as e:
                errors.append("connection %d: %r" % (i, e))
                if len(errors) > 20:
                    break
        assert not errors, "%d failed, first: %s" % (len(errors), errors[:3])
        for i, c in enumerate(conns):
            c.send_command("SET", "c:%d" % i, "v%d" % i)
        for i, c in enumerate(conns):
            assert c.read_response() == "OK", i
        for i, c in enumerate(conns):
            c.send_command("GET", "c:%d" % i)
        for i, c in enumerate(conns):
            assert c.read_response() == "v%d" % i, i
    finally:
        for c in conns:
            pool.release(c)
        pool.disconnect()
    d0, d1 = direct(node_port, 0), direct(node_port, 1)
    assert d1.dbsize() == 1000
    assert d0.dbsize() == 0


# ---------------------------------------------------------------- 6. pins released

def test_1000_sequential_blpop_users_kept_open(lab):
    """1000 connections, opened one after the other and all kept open, each runs one
    BLPOP (half find an element, half time out after 10 ms: more than 256 each way) then a
    GET: all succeed with max-pinned 256, so a pin is given back once the BLPOP answered."""
    raise_nofile(4096)
    # hz 500: redis checks blocking timeouts every 2 ms (not every 100 ms): the 10 ms BLPOPs are short
    _, node_port, _ = start_node(lab, extra=("--maxclients", "4000", "--hz", "500"))
    proxy = start_proxy(lab, node_port)
    d = direct(node_port)
    d.set("x", "vx")
    d.rpush("q", *range(500))
    users = []
    try:
        for i in range(1000):
            c = proxy.client(single_connection_client=True, socket_timeout=GUARD)
            users.append(c)
            try:
                got = c.blpop("q" if i % 2 == 0 else "empty", 0.01)
                assert got == (("q", str(i // 2)) if i % 2 == 0 else None), got
                assert c.get("x") == "vx"
            except redis.RedisError as e:
                pytest.fail("user %d: %r" % (i, e))
    finally:
        for c in users:
            c.close()
    assert d.llen("q") == 0


# ---------------------------------------------------------------- 7. busy script, SCRIPT KILL

def test_busy_script_get_is_busy_and_script_kill_goes_through(lab):
    """A client runs EVAL "while true do end" (busy-reply-threshold 1000): another client's
    GET gets BUSY as it would straight from the node, SCRIPT KILL through the proxy answers
    OK (it does not queue behind the script), the EVAL gets its error, GET works again."""
    if redis_major() < 7:
        pytest.skip("needs redis-server >= 7 (busy-reply-threshold)")
    _, node_port, _ = start_node(lab, extra=("--busy-reply-threshold", "1000"))
    proxy = start_proxy(lab, node_port)
    d = direct(node_port)
    d.set("x", "vx")
    ev_client = proxy.client(single_connection_client=True, socket_timeout=60)
    getter = proxy.client(socket_timeout=GUARD)
    killer = proxy.client(socket_timeout=GUARD)
    assert getter.get("x") == "vx" and killer.ping()
    ev = Outcome(lambda: ev_client.eval("while true do end", 0))
    ev.start()
    try:
        wait_node_busy(d, timeout=GUARD)
        with pytest.raises(redis.RedisError) as exc:
            getter.get("x")
        assert "BUSY" in str(exc.value) and not isinstance(exc.value, redis.TimeoutError), exc.value
        assert killer.execute_command("SCRIPT", "KILL") in (True, "OK")
        assert ev.finished(), "EVAL not answered after SCRIPT KILL"
        assert isinstance(ev.error, redis.ResponseError) and "kill" in str(ev.error).lower(), \
            (ev.result, ev.error)
        assert getter.get("x") == "vx"
    finally:
        try:
            direct(node_port, socket_timeout=5).script_kill()
        except redis.RedisError:
            pass


# ---------------------------------------------------------------- 8. DEBUG SLEEP

def test_debug_sleep_longer_than_node_timeout_is_not_a_hang(lab):
    """DEBUG SLEEP 3 with node-timeout 1000 answers OK, and a GET another client sends
    while the node sleeps gets its value afterwards (no `unavailable` error)."""
    if redis_major() < 7:
        pytest.skip("needs redis-server >= 7 (enable-debug-command)")
    _, node_port, _ = start_node(lab, extra=("--enable-debug-command", "yes"))
    proxy = start_proxy(lab, node_port, "node-timeout = 1000\n")
    direct(node_port).set("x", "vx")
    a = proxy.client(socket_timeout=GUARD)
    b = proxy.client(socket_timeout=GUARD)
    assert a.get("x") == "vx" and b.get("x") == "vx"

    sleeper = Outcome(lambda: a.execute_command("DEBUG", "SLEEP", "3"))
    sleeper.start()

    def asleep():
        probe = direct(node_port, socket_timeout=0.3)
        try:
            probe.ping()
            return False
        except redis.TimeoutError:
            return True
        finally:
            probe.connection_pool.disconnect()
    wait_for(lambda: asleep() or sleeper.done_at, timeout=GUARD, what="the node asleep")
    assert sleeper.done_at is None, "DEBUG SLEEP ended before the node was seen asleep: %r" % (
        sleeper.error,)
    sent_at = time.monotonic()
    get = Outcome(lambda: b.get("x"))
    get.start()
    assert sleeper.finished() and get.finished()
    assert sleeper.error is None and sleeper.result in (True, "OK"), sleeper.error
    assert sleeper.done_at > sent_at, "the GET was not sent during the sleep"
    assert get.error is None and get.result == "vx", get.error


# ---------------------------------------------------------------- 9. bounded linger

@pytest.mark.parametrize("garbage", [b"*1\r\n$-5\r\n", b"A" * (70 * 1024)], ids=["bulk", "inline"])
def test_protocol_error_client_closed_although_it_keeps_sending(lab, garbage):
    """After a protocol error the proxy closes the client even though it never stops
    sending (a byte burst every 50 ms): the close is seen within the guard."""
    _, node_port, _ = start_node(lab)
    proxy = start_proxy(lab, node_port)
    s = proxy.raw(timeout=GUARD)
    s.sendall(garbage)
    stop, send_failed = threading.Event(), threading.Event()

    def feed():
        while not stop.is_set():
            if not send_or_closed(s, b"x" * 512):
                send_failed.set()
                return
            time.sleep(0.05)
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        got, closed = read_until_closed(s, guard=10)
        if not closed:
            closed = send_failed.is_set()
    finally:
        stop.set()
        t.join(5)
        s.close()
    assert closed, "still open after 10 s of a client that keeps sending; got %r" % got[:200]
    assert got.startswith(b"-ERR Protocol error"), got[:200]
    assert proxy.client().ping()


# ---------------------------------------------------------------- 10. SIGTERM answers all read

def test_sigterm_answers_blpop_and_pipelined_get(lab):
    """SIGTERM with `BLPOP q 0` in flight and `GET x` pipelined behind it on one raw
    connection: the client gets two replies (values or errors) before the close."""
    _, node_port, _ = start_node(lab)
    proxy = start_proxy(lab, node_port, "shutdown-timeout = 1000\n")
    proxy.expect_exit = True
    direct(node_port).set("x", "vx")
    s = proxy.raw(timeout=GUARD)
    s.sendall(encode_command("BLPOP", "q", "0") + encode_command("GET", "x"))
    # the node runs the BLPOP: the proxy has read that write, hence the GET behind it too
    wait_node_runs(node_port, "blpop")
    proxy.proc.send_signal(signal.SIGTERM)
    got, closed = read_until_closed(s, guard=GUARD)
    rc = proxy.proc.wait(GUARD)
    replies = parse_replies(got)
    assert closed, got
    assert len(replies) == 2, "replies before the close: %r (raw %r)" % (replies, got)
    assert replies[0][0] == "err", replies
    assert replies[1] in (("val", b"vx"),) or replies[1][0] == "err", replies
    assert rc == 0, proxy.log()


# ---------------------------------------------------------------- 11. ioredis, db 1, restart

@pytest.fixture(scope="module")
def node_modules():
    """node_modules with the npm packages the client suite uses, from the same cache
    (installed there when missing)."""
    for exe in ("node", "npm"):
        if shutil.which(exe) is None:
            pytest.skip("%s not installed" % exe)
    path, why = zostest.npm_modules()
    if path is None:
        pytest.skip(why)
    return path


def _read_line(proc, guard):
    """One stdout line of PROC, or '' at EOF / after GUARD seconds."""
    deadline = time.monotonic() + guard
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return line.decode(errors="replace")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            b = os.read(proc.stdout.fileno(), 1)
            if not b:
                break
            line += b
    return line.decode(errors="replace")


def test_ioredis_db1_client_survives_node_restart(lab, node_modules):
    """ioredis with default options on redis://.../1: after the node is restarted it keeps
    working and every key it writes lands in db 1 (none in db 0)."""
    node_proc, node_port, _ = start_node(lab)
    proxy = start_proxy(lab, node_port, "backoff-max = 500\n")
    env = dict(lab.env, NODE_PATH=node_modules)
    p = lab.procs.start(["node", os.path.join(HERE, "lanes_node.js"),
                         "redis://127.0.0.1:%d/1" % proxy.port, "io:", "30"],
                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    first = _read_line(p, GUARD)
    assert first.strip() == "ready", "script: %r" % first
    d1 = direct(node_port, 1)
    assert d1.get("io:pre") == "1" and direct(node_port, 0).get("io:pre") is None
    restart_node(lab, node_proc, node_port)
    p.stdin.write(b"go\n")
    p.stdin.flush()
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail("ioredis script hung; stdout %r stderr %r" % (out[-2000:], err[-2000:]))
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    assert p.returncode == 0 and "done" in out.split(), (p.returncode, out[-2000:], err[-2000:])
    d0, d1 = direct(node_port, 0), direct(node_port, 1)
    assert d0.dbsize() == 0, "keys in db 0: %r" % d0.keys("*")[:10]
    assert sorted(d1.keys("io:post:*")) == sorted("io:post:%d" % i for i in range(30))


# ---------------------------------------------------------------- 12. big replies vs small GETs

@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_small_gets_go_on_while_a_50mb_reply_is_half_read(lab, tls):
    """Client A GETs a 50 MB value three times, each time reading 1 MiB of it and then
    pausing until client B (another connection, same node) has had 20 more small GET/SET
    round trips answered; then A reads the rest and checks it.  Both run at once; B never
    gets a wrong reply or an error.  The TLS variant uses a TLS node with requirepass."""
    if tls:
        _, node_port, _ = start_node(lab, tls=True, password=NODE_SECRET)
        proxy = start_proxy(lab, node_port, tls=True, secret=NODE_SECRET)
    else:
        _, node_port, _ = start_node(lab)
        proxy = start_proxy(lab, node_port)
    size = 50 * MIB
    big = hashlib.sha256(b"seed").digest() * (size // 32)
    direct(node_port, tls=tls, decode_responses=False, socket_timeout=60).set("big", big)
    want = hashlib.sha256(b"$%d\r\n" % size + big + b"\r\n").hexdigest()
    del big

    stop = threading.Event()
    count, errors = [0], []

    def small():
        c = proxy.client(single_connection_client=True, socket_timeout=GUARD)
        try:
            while not stop.is_set():
                v = str(count[0])
                if c.set("small", v) is not True or c.get("small") != v:
                    errors.append("wrong reply")
                    return
                count[0] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    t = threading.Thread(target=small, daemon=True)
    t.start()
    a = proxy.raw(timeout=GUARD)
    try:
        wait_for(lambda: count[0] > 0 or errors, timeout=GUARD, what="B running")
        for rnd in range(3):
            a.sendall(encode_command("GET", "big"))
            h, got = hashlib.sha256(), 0
            total = len(b"$%d\r\n" % size) + size + 2
            while got < MIB:
                b = a.recv(min(65536, MIB - got))
                assert b, "A: connection closed"
                h.update(b)
                got += len(b)
            mark = count[0]
            wait_for(lambda: count[0] >= mark + 20 or errors, timeout=GUARD,
                     what="round %d: 20 small round trips while A's reply is half read" % rnd)
            assert not errors, errors
            while got < total:
                b = a.recv(min(1 << 20, total - got))
                assert b, "A: connection closed"
                h.update(b)
                got += len(b)
            assert h.hexdigest() == want, "round %d: A's 50 MB value differs" % rnd
    finally:
        stop.set()
        t.join(GUARD + 5)
        a.close()
    assert not errors, errors
    assert count[0] >= 60

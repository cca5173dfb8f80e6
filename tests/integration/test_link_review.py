"""Regressions of the node-link review: WATCH kept by EXEC/DISCARD without MULTI, SELECT over
a pin holding state, pins given back after the last UNSUBSCRIBE, ZOS.ALL keeping the client's
order, DEBUG SLEEP via ZOS.ALL or MULTI, a SUBSCRIBE queued in MULTI, a busy script on a node
whose lanes SELECT, and a refused DEBUG SLEEP that must not switch hang detection off.

Real redis-server nodes and the real zos-proxy ($ZOS_BUILD), all started through the `lab`
fixture (stopped by PID at teardown); raw sockets where order or exact replies matter.  Where
redis answers something itself, the same steps are run straight against the node and the
proxy must answer the same.  No assertion is about a duration: replies, order and counts
only.  Timeouts are "no hang" guards (GUARD seconds); a node that a test SIGSTOPs is
SIGCONTed in a `finally`.
"""
import os
import signal
import socket
import time

import pytest
import redis

from conftest import (TIMEOUT, free_port, node_info, node_section, read_log, wait_for,
                      wait_node_busy)
from resp_raw import RawResp, encode_command

GUARD = 30  # seconds: "nothing hangs" guard for one awaited step
BUSY_GUARD = 10  # seconds: a reply redis gives at once (BUSY) that the proxy must not hold


# ---------------------------------------------------------------- helpers

def start_node(lab, extra=()):
    """(proc, port) of a plain redis-server started through LAB."""
    proc, port, _ = lab.procs.redis(extra=extra)
    return proc, port


def start_proxy(lab, node_port, proxy_conf="", node_extra=""):
    """A zos-proxy whose only node is "n" at NODE_PORT; PROXY_CONF goes into [proxy]."""
    port = free_port()
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\n" % port + proxy_conf + "\n"
            + node_section("n", node_port, extra=node_extra))
    try:
        return lab.proxy(conf, port)
    except (RuntimeError, TimeoutError) as e:
        logs = [os.path.join(lab.tmp, f) for f in os.listdir(lab.tmp) if f.endswith(".log")]
        pytest.fail("zos-proxy did not start (%s); config:\n%s\nlog:\n%s"
                    % (e, conf, read_log(max(logs, key=os.path.getmtime)) if logs else "(none)"),
                    pytrace=False)


def direct(port, db=0, **kw):
    """redis-py straight to the node (not through the proxy)."""
    kw.setdefault("socket_timeout", TIMEOUT)
    kw.setdefault("decode_responses", True)
    return redis.Redis(host="127.0.0.1", port=port, db=db, **kw)


class Err(str):
    """An error reply (its full text, e.g. "ERR EXEC without MULTI")."""


class Push(list):
    """A RESP3 push (>)."""


class Raw(RawResp):
    """A raw connection that speaks RESP2 and RESP3: send() bytes or commands, read() one
    reply (errors are returned as Err, never raised; a closed connection raises EOFError)."""

    error = Err
    timeout = GUARD

    def sendall(self, data):
        self.s.sendall(data)

    def _fill(self):
        b = self.s.recv(65536)
        if not b:
            raise EOFError("connection closed; unparsed %r" % self.buf)
        self.buf += b

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:].decode("latin-1")
        if t in (b"+",):
            return rest
        if t in (b"-", b"!"):
            return Err(rest)
        if t == b":":
            return int(rest)
        if t == b"_":
            return None
        if t == b"#":
            return rest == "t"
        if t in (b",", b"("):
            return rest
        if t in (b"$", b"="):
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("latin-1")
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.read() for _ in range(n)]
            return Push(items) if t == b">" else items
        if t == b"%":
            n = int(rest)
            return {self.read(): self.read() for _ in range(n)}
        raise AssertionError("not RESP: %r" % line)

    def read_or_closed(self):
        """The next reply, or the string "<closed>" when the peer closed instead."""
        try:
            return self.read()
        except (EOFError, ConnectionResetError):
            return "<closed>"


def wait_node_client(node_port, cmd, flag=None):
    """Waits until the node's CLIENT LIST shows a client running CMD (with FLAG, if given)."""
    d = direct(node_port)
    wait_for(lambda: any(c.get("cmd") == cmd and (flag is None or flag in c.get("flags", ""))
                         for c in d.client_list()),
             timeout=GUARD, what="a %s%s on the node" % (cmd, " (flags %s)" % flag if flag else ""))
    d.close()


def pinned(proxy, name="n"):
    """The `pinned=` count of INFO's node_NAME line (a fresh connection each time)."""
    c = proxy.client()
    try:
        return int(node_info(c, name)["pinned"])
    finally:
        c.connection_pool.disconnect()


def cpu_seconds(pid):
    """User + system CPU time of PID so far (from /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- r1: EXEC/DISCARD without MULTI

def watch_then_stray(port, node_port, stray):
    """A WATCHes k and sends STRAY (EXEC or DISCARD, no MULTI); B runs a transaction while k
    is modified; k is modified again and A runs MULTI/SET/EXEC.  Returns what each saw."""
    d = direct(node_port)
    d.delete("x", "y")
    d.set("k", "0")
    a, b = Raw(port), Raw(port)
    try:
        out = {"watch": a.call("WATCH", "k"), "stray": a.call(stray)}
        out["b"] = [b.call("MULTI"), b.call("SET", "y", "fromB")]
        d.set("k", "changed")              # B watches nothing: its EXEC must run
        out["b"].append(b.call("EXEC"))
        d.set("k", "changed2")             # under A's WATCH: A's EXEC must abort
        out["a"] = [a.call("MULTI"), a.call("SET", "x", "fromA"), a.call("EXEC")]
        out["x"], out["y"] = d.get("x"), d.get("y")
        return out
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("stray", ["EXEC", "DISCARD"])
def test_exec_or_discard_without_multi_keeps_the_watch(lab, stray):
    """WATCH k; EXEC (or DISCARD) without MULTI is an error and redis keeps the WATCH: A's
    later transaction aborts (nil) after k changed, exactly as straight to redis, and the
    link still watching k is not lent to B, whose own MULTI/EXEC runs."""
    _, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port)
    want = watch_then_stray(node_port, node_port, stray)
    assert want["stray"] == Err("ERR %s without MULTI" % stray), want    # what redis says
    assert want["a"] == ["OK", "QUEUED", None] and want["x"] is None, want
    got = watch_then_stray(proxy.port, node_port, stray)
    assert got == want, "through the proxy %r, straight to redis %r" % (got, want)


# ---------------------------------------------------------------- r2: SELECT over a pin

def select_over_watch(port, node_port):
    """SELECT 1; WATCH w; SELECT -1; SELECT abc; UNWATCH; SET k v: the replies and where k
    landed (db 0, 1)."""
    d0, d1 = direct(node_port, 0), direct(node_port, 1)
    d0.flushall()
    c = Raw(port)
    try:
        replies = [c.call("SELECT", "1"), c.call("WATCH", "w"), c.call("SELECT", "-1"),
                   c.call("SELECT", "abc"), c.call("UNWATCH"), c.call("SET", "k", "v")]
    finally:
        c.close()
    return replies, (d0.get("k"), d1.get("k"))


def test_select_over_watch_pin_is_checked_like_redis(lab):
    """With a WATCH pinning the link, SELECT -1 and SELECT abc get redis's errors and move
    nothing: the SET after UNWATCH lands in db 1, as straight to redis."""
    _, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port)
    want = select_over_watch(node_port, node_port)
    assert want == (["OK", "OK", Err("ERR DB index is out of range"),
                     Err("ERR value is not an integer or out of range"), "OK", "OK"],
                    (None, "v")), want
    got = select_over_watch(proxy.port, node_port)
    assert got == want, "through the proxy %r, straight to redis %r" % (got, want)


def select_while_subscribed(port, node_port):
    """RESP2: SELECT 1; SUBSCRIBE ch; SELECT 2 (refused in subscribed mode); UNSUBSCRIBE ch;
    SET k v: the five replies and where k landed (db 1, db 2)."""
    d = direct(node_port)
    d.flushall()
    c = Raw(port)
    try:
        c.sendall(b"".join(encode_command(*a) for a in (
            ("SELECT", "1"), ("SUBSCRIBE", "ch"), ("SELECT", "2"), ("UNSUBSCRIBE", "ch"),
            ("SET", "k", "v"))))
        replies = [c.read() for _ in range(5)]
    finally:
        c.close()
    return replies, (direct(node_port, 1).get("k"), direct(node_port, 2).get("k"))


def test_select_while_subscribed_refused_and_db_kept(lab):
    """A RESP2 subscriber's SELECT 2 is refused by the node, and the SET after UNSUBSCRIBE
    lands in db 1 (where the client was), not db 2: as straight to redis."""
    _, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port)
    want = select_while_subscribed(node_port, node_port)
    assert isinstance(want[0][2], Err) and "select" in want[0][2], want
    assert want[1] == ("v", None), want
    got = select_while_subscribed(proxy.port, node_port)
    assert got == want, "through the proxy %r, straight to redis %r" % (got, want)


# ---------------------------------------------------------------- r4: pin given back on UNSUBSCRIBE

@pytest.mark.parametrize("resp", [2, 3], ids=["resp2", "resp3"])
def test_last_unsubscribe_gives_the_pin_back(lab, resp):
    """SUBSCRIBE ch pins a link (INFO pinned=1); after the last UNSUBSCRIBE is answered,
    the pin is given back (pinned=0) without the client sending anything else."""
    _, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port)
    c = Raw(proxy.port)
    try:
        if resp == 3:
            hello = c.call("HELLO", "3")
            assert isinstance(hello, dict) and hello.get("proto") == 3, hello
        sub = c.call("SUBSCRIBE", "ch")
        assert list(sub) == ["subscribe", "ch", 1], sub
        assert isinstance(sub, Push) == (resp == 3), sub
        assert pinned(proxy) == 1
        unsub = c.call("UNSUBSCRIBE", "ch")
        assert list(unsub) == ["unsubscribe", "ch", 0], unsub
        try:
            wait_for(lambda: pinned(proxy) == 0, timeout=GUARD,
                     what="pinned=0 after the last UNSUBSCRIBE")
        except AssertionError as e:
            raise AssertionError("%s; INFO node_n: %r" % (e, node_info(proxy.client(), "n")))
        # the connection is a plain one again
        assert c.call("PING") == "PONG"
        assert c.call("SET", "after", "1") == "OK" and direct(node_port).get("after") == "1"
    finally:
        c.close()


# ---------------------------------------------------------------- r5: ZOS.ALL keeps the order

def test_zos_all_after_set_sees_it(lab):
    """SET k new and ZOS.ALL GET k pipelined on one connection: ZOS.ALL sees new (it never
    overtakes the client's own earlier SET), as a plain GET does straight to redis."""
    _, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port, "lane-busy = 1\n")
    d = direct(node_port)
    dc = Raw(node_port)
    c = Raw(proxy.port)
    try:
        for i in range(20):
            d.set("k", "old")
            v = "new%d" % i
            dc.sendall(encode_command("SET", "k", v) + encode_command("GET", "k"))
            assert [dc.read(), dc.read()] == ["OK", v]
            d.set("k", "old")
            c.sendall(encode_command("SET", "k", v) + encode_command("ZOS.ALL", "GET", "k"))
            assert [c.read(), c.read()] == ["OK", ["n", v]], "round %d" % i
    finally:
        c.close()
        dc.close()


def test_zos_all_waits_for_a_paused_set(lab):
    """The node holds writes (CLIENT PAUSE WRITE, sent straight to it): SET k new waits in
    the node; ZOS.ALL GET k sent after it on the same connection must not run before it.
    Straight to redis a GET behind the paused SET waits too and sees new.  lane-busy 1: the
    lane holding the SET takes no new request, so a ZOS.ALL that does not follow the
    client's order would go to another link and read old."""
    _, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port, "lane-busy = 1\n")
    d = direct(node_port)

    def get_calls():
        return d.info("commandstats").get("cmdstat_get", {}).get("calls", 0)

    for port, get in ((node_port, ("GET", "k")),
                      (proxy.port, ("ZOS.ALL", "TIMEOUT", "60000", "GET", "k"))):
        d.set("k", "old")
        c = Raw(port)
        try:
            assert d.execute_command("CLIENT", "PAUSE", str(GUARD * 1000), "WRITE") in (True, "OK")
            c.send("SET", "k", "new")
            wait_node_client(node_port, "set", flag="b")   # the SET is held by the pause
            time.sleep(0.1)                                 # well past lane-busy
            before = get_calls()
            c.send(*get)
            # give a GET that overtakes the SET the chance to reach the node (a read runs
            # during a write pause); whether it did is checked through the reply below
            try:
                wait_for(lambda: get_calls() > before, timeout=1.0, what="")
            except AssertionError:
                pass
        finally:
            d.execute_command("CLIENT", "UNPAUSE")
        try:
            first, second = c.read(), c.read()
        finally:
            c.close()
        assert first == "OK", first
        assert second == ("new" if port == node_port else ["n", "new"]), \
            "%s: %r" % ("direct" if port == node_port else "proxy", second)


# ---------------------------------------------------------------- r6: DEBUG SLEEP via ZOS.ALL, MULTI

@pytest.mark.parametrize("how", ["zos_all", "multi"])
def test_debug_sleep_via_zos_all_or_multi_is_not_a_hang(lab, how):
    """node-timeout 1000: DEBUG SLEEP 3 through ZOS.ALL, or queued in MULTI and run by EXEC
    (sent after more than the sleep's length), is no hang: the sleeper gets OK, and a
    client blocked in BLPOP q 0 on the same node is neither errored nor closed (it gets the
    element pushed afterwards)."""
    _, node_port = start_node(lab, extra=("--enable-debug-command", "yes"))
    proxy = start_proxy(lab, node_port, "node-timeout = 1000\n")
    d = direct(node_port)
    b = Raw(proxy.port)
    c = Raw(proxy.port)
    try:
        b.send("BLPOP", "q", "0")
        wait_node_client(node_port, "blpop")
        if how == "zos_all":
            c.send("ZOS.ALL", "TIMEOUT", "10000", "DEBUG", "SLEEP", "3")
            want = ["n", "OK"]
        else:
            assert c.call("MULTI") == "OK"
            assert c.call("DEBUG", "SLEEP", "3") == "QUEUED"
            # a quiet time announced when the command was queued would be over by now
            time.sleep(4.5)
            c.send("EXEC")
            want = ["OK"]
        got = c.read_or_closed()
        assert got == want, "sleeper: %r; proxy log:\n%s" % (got, proxy.log()[-2000:])
        assert d.rpush("q", "after") == 1
        got = b.read_or_closed()
        assert got == ["q", "after"], "BLPOP client: %r; proxy log:\n%s" % (got, proxy.log()[-2000:])
        assert node_info(proxy.client(), "n").get("hangs") == "0"
    finally:
        b.close()
        c.close()


# ---------------------------------------------------------------- r7: SUBSCRIBE queued in MULTI

@pytest.mark.parametrize("end", ["unsubscribe", "close"])
def test_subscribe_in_multi_link_not_lent(lab, end):
    """MULTI; SUBSCRIBE ch; EXEC leaves the node's connection subscribed; after A's
    UNSUBSCRIBE (or close) that connection is not lent to anyone: B's BLPOP q 1 answers nil
    (not "Can't execute 'blpop'"), and a fresh subscriber hears a PUBLISH."""
    _, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port)
    d = direct(node_port)
    a = Raw(proxy.port)
    try:
        assert a.call("MULTI") == "OK"
        assert a.call("SUBSCRIBE", "ch") == "QUEUED"
        assert a.call("EXEC") == [["subscribe", "ch", 1]]
        if end == "unsubscribe":
            a.send("UNSUBSCRIBE", "ch")
            a.read_or_closed()   # whatever it answers; the connection may also be closed
        else:
            a.close()
        wait_for(lambda: pinned(proxy) == 0, timeout=GUARD, what="A's pin given back")
        for i in range(3):
            b = Raw(proxy.port)
            try:
                got = b.call("BLPOP", "q", "1")
            finally:
                b.close()
            assert got is None, "BLPOP %d: %r" % (i, got)
        s = proxy.client().pubsub()
        try:
            s.subscribe("ch")
            m = wait_for(lambda: s.get_message(timeout=1), timeout=GUARD, what="subscribed")
            assert m["type"] == "subscribe", m
            n = d.publish("ch", "hello")
            m = wait_for(lambda: s.get_message(timeout=1), timeout=GUARD, what="the message")
            assert m["type"] == "message" and m["data"] == "hello", m
            assert n >= 1
        finally:
            s.close()
    finally:
        a.close()


# ---------------------------------------------------------------- r8/r8b: busy script, SELECTing lanes

@pytest.mark.parametrize("where", ["node_db1", "client_select1"])
def test_busy_script_on_selecting_lanes_is_busy_not_unavailable(lab, where):
    """busy-reply-threshold 500, a client runs EVAL "while true do end" 0 in db 1 (the node's
    `db = 1`, or SELECT 1 on a db-0 node): another client's GET gets BUSY (as straight to
    the node), never "unavailable"; SCRIPT KILL through the proxy answers OK, the EVAL gets
    "Script killed", and the GET works again."""
    _, node_port = start_node(lab, extra=("--busy-reply-threshold", "500"))
    if where == "node_db1":
        proxy = start_proxy(lab, node_port, node_extra="db = 1\n")
    else:
        proxy = start_proxy(lab, node_port)
    d, d1 = direct(node_port), direct(node_port, 1)
    d1.set("k", "v1")
    a, b = Raw(proxy.port), Raw(proxy.port, timeout=BUSY_GUARD)
    killed = False
    try:
        if where == "client_select1":
            assert a.call("SELECT", "1") == "OK" and b.call("SELECT", "1") == "OK"
        assert b.call("GET", "k") == "v1"
        a.send("EVAL", "while true do end", "0")

        wait_node_busy(d, timeout=GUARD)
        straight = Raw(node_port)
        try:
            want = [straight.call("SELECT", "1"), straight.call("GET", "k")]
        finally:
            straight.close()
        assert all(isinstance(w, Err) and w.startswith("BUSY") for w in want), want
        for i in range(3):
            b.send("GET", "k")
            try:
                got = b.read_or_closed()
            except socket.timeout:
                # straight to the node a GET is answered BUSY at once: end the script, so
                # the failure shows what the GET answered once the node was free again
                direct(node_port, socket_timeout=5).script_kill()
                killed = True
                got = "<no reply within %d s while the script ran; after SCRIPT KILL: %r>" \
                    % (BUSY_GUARD, b.read_or_closed())
            assert got == want[1], "GET %d through the proxy %r, straight %r" % (i, got, want[1])
        got = b.call("SCRIPT", "KILL")
        assert got == "OK", got
        killed = True
        got = a.read_or_closed()
        assert isinstance(got, Err) and "Script killed" in got, got
        assert b.call("GET", "k") == "v1"
        assert a.call("GET", "k") == "v1"
    finally:
        if not killed:
            try:
                direct(node_port, socket_timeout=5).script_kill()
            except redis.RedisError:
                pass
        a.close()
        b.close()


# ---------------------------------------------------------------- r10/r11: refused DEBUG SLEEP

@pytest.mark.parametrize("seconds", ["1000000", "3000000"])
def test_refused_debug_sleep_keeps_hang_detection(lab, seconds):
    """DEBUG SLEEP refused by the node (enable-debug-command no, redis's default) announces
    no quiet time: with the node SIGSTOPped, a new pinned link (BLPOP) does not make the proxy
    spin, and a GET gets "unavailable" instead of waiting.  "Spin" is a CPU count: an idle
    proxy uses about 0 s of CPU over a 3 s window, one spinning on a timer far more (about
    1.5 s seen on a loaded 2-core machine); the bound is 0.75 s."""
    node_proc, node_port = start_node(lab)
    proxy = start_proxy(lab, node_port, "node-timeout = 1000\nconnect-timeout = 300\n"
                        "ping-interval = 500\n")
    straight = Raw(node_port)
    try:
        want = straight.call("DEBUG", "SLEEP", seconds)
    finally:
        straight.close()
    assert isinstance(want, Err) and "DEBUG command not allowed" in want, want
    c, b = Raw(proxy.port), Raw(proxy.port)
    try:
        assert c.call("DEBUG", "SLEEP", seconds) == want
        assert c.call("GET", "k") is None
        node_proc.send_signal(signal.SIGSTOP)
        try:
            b.send("BLPOP", "q", "0")       # a new pinned link: the kernel accepts, no answer
            before = cpu_seconds(proxy.proc.pid)
            time.sleep(3)
            used = cpu_seconds(proxy.proc.pid) - before
            assert used < 0.75, "zos-proxy used %.2f s of CPU in 3 s (spinning)" % used
            c.send("GET", "k")
            try:
                got = c.read_or_closed()
            except socket.timeout:
                got = "<no reply within the %d s guard>" % GUARD
            assert isinstance(got, Err) and "unavailable" in got, \
                "GET on a stopped node: %r; proxy log:\n%s" % (got, proxy.log()[-2000:])
        finally:
            node_proc.send_signal(signal.SIGCONT)
    finally:
        c.close()
        b.close()

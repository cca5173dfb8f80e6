"""CLIENT LIST / INFO / KILL / SETNAME ..., RESET and errors, byte for byte as redis 7.0
answers them: the same sequence of commands goes to a real redis-server and to zos-proxy
(in front of another redis-server), and the two transcripts must be equal once the
figures that differ by nature are normalised (ids, addresses, ports, fd, ages, idle,
buffer and memory figures) and the proxy's trailing ` node=NAME` is checked and dropped.
redis 7.0 has no CLIENT NO-TOUCH: the proxy's is checked on its own."""
import re
import time

import pytest

from conftest import TIMEOUT
from resp3raw import RawClient
from zostest import free_port, node_section

NUMERIC = ("fd", "age", "idle", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp",
           "obl", "oll", "omem", "tot-mem")


class Target:
    """One side of the comparison: a port, the name of the node behind it (None for the
    reference redis), and the clients opened on it, by label.  SORT_LIST sorts the lines
    of CLIENT LIST replies (their order is checked by a test of its own)."""

    def __init__(self, port, node=None, password=None, sort_list=True):
        self.sort_list = sort_list
        self.port = port
        self.node = node
        self.password = password
        self.clients = {}
        self.ids = {}     # str(id) -> label
        self.addrs = {}   # "ip:port" -> label

    def open(self, label, proto=2, auth=True):
        c = RawClient(self.port, timeout=TIMEOUT)
        if self.password and auth:
            assert c.call("AUTH", self.password).raw == b"+OK\r\n"
        if proto == 3:
            assert c.call("HELLO", "3").type == "%"
        cid = c.call("CLIENT", "ID")
        assert cid.type == ":", cid.raw
        self.ids[str(cid.value)] = label
        self.addrs[c.addr()] = label
        self.clients[label] = c
        return c

    def token(self, arg):
        """ARG of a command as shown in a transcript: ids and addresses by label."""
        arg = str(arg)
        if arg in self.ids:
            return "<id %s>" % self.ids[arg]
        if arg in self.addrs:
            return "<addr %s>" % self.addrs[arg]
        if arg == "127.0.0.1:%d" % self.port:
            return "<laddr>"
        return arg

    def close(self):
        for c in self.clients.values():
            c.close()

    def wait_clients(self, n):
        """Waits until CLIENT LIST shows exactly N clients (earlier probes are gone)."""
        c = next(iter(self.clients.values()))
        deadline = time.monotonic() + TIMEOUT
        while True:
            lines = c.call("CLIENT", "LIST").text().strip().splitlines()
            if len(lines) == n or time.monotonic() > deadline:
                return len(lines)
            time.sleep(0.05)

    def normalise(self, raw):
        """RAW reply bytes with the figures that differ by nature replaced by tokens."""
        text = raw.decode("utf-8", "replace")

        def line(m):
            fields = m.group(0).split(" ")
            out = []
            for i, f in enumerate(fields):
                k, _, v = f.partition("=")
                if k == "node" and i == len(fields) - 1 and self.node is not None:
                    assert v == self.node, "node=%s, want node=%s in %r" % (v, self.node, m.group(0))
                    continue
                if k == "id":
                    v = "<%s>" % self.ids.get(v, "other-id")
                elif k == "addr":
                    v = "<%s>" % self.addrs.get(v, "other-addr")
                elif k == "laddr":
                    v = "<laddr>"
                elif k in NUMERIC:
                    v = "<n>"
                out.append("%s=%s" % (k, v))
            if self.node is not None:
                assert fields[-1].startswith("node="), "no trailing node= in %r" % m.group(0)
            return " ".join(out)

        m = re.match(r"([$=]\d+\r\n(?:txt:)?)(id=.*\n)\r\n$", text, re.S)
        if self.sort_list and m:  # CLIENT LIST: "id=... \n" lines
            lines = sorted(m.group(2).split("\n")[:-1])
            text = m.group(1) + "".join(l + "\n" for l in lines) + "\r\n"
        text = re.sub(r"id=\d+ addr=\S+[^\r\n]*", line, text)
        # bulk lengths change with the figures: recompute them
        return re.sub(r"([$=])\d+\r\n", r"\1<len>\r\n", text)


def transcript(t):
    """Runs the sequence on target T; returns [(label, command, normalised reply)]."""
    out = []

    def call(label, *cmd):
        f = t.clients[label].call(*cmd)
        out.append((label, " ".join(t.token(c) for c in cmd), t.normalise(f.raw)))
        return f

    def closed(label):
        out.append((label, "<closed by the server?>", t.clients[label].closed_by_peer(TIMEOUT)))

    def label_id(label):
        return next(i for i, l in t.ids.items() if l == label)

    def label_addr(label):
        return next(a for a, l in t.addrs.items() if l == label)

    t.open("a")
    t.open("b")
    t.open("c")
    out.append(("a", "clients", t.wait_clients(3)))
    call("a", "CLIENT", "SETNAME", "alpha")
    call("a", "CLIENT", "GETNAME")
    call("b", "CLIENT", "GETNAME")
    call("b", "CLIENT", "SETNAME", "beta")
    call("b", "CLIENT", "SETNAME", "bad name")
    call("c", "CLIENT", "SETNAME", "")
    call("a", "CLIENT", "INFO")
    call("a", "CLIENT", "LIST")
    call("a", "CLIENT", "LIST", "ID", label_id("b"), label_id("c"))
    call("a", "CLIENT", "LIST", "ID", "abc")
    call("a", "CLIENT", "LIST", "TYPE", "normal")
    call("a", "CLIENT", "LIST", "TYPE", "pubsub")
    call("a", "CLIENT", "LIST", "TYPE", "bogus")
    call("a", "CLIENT", "NO-EVICT", "on")
    call("a", "CLIENT", "NO-EVICT", "off")
    call("a", "CLIENT", "NO-EVICT", "maybe")
    call("a", "CLIENT", "NOSUCH")
    call("a", "CLIENT", "nosuch", "x", "y")
    call("a", "CLIENT")
    call("a", "CLIENT", "KILL")
    call("a", "CLIENT", "KILL", "ID", "abc")
    call("a", "CLIENT", "KILL", "ID", "0")
    call("a", "CLIENT", "KILL", "ID", "999999")
    call("a", "CLIENT", "KILL", "FOO", "bar")
    call("a", "CLIENT", "KILL", "ADDR", "1.2.3.4:5")
    call("a", "CLIENT", "KILL", "1.2.3.4:5")
    call("a", "CLIENT", "KILL", "USER", "nosuch")
    call("a", "CLIENT", "KILL", "SKIPME", "maybe")
    call("a", "CLIENT", "KILL", "ID")
    # a subscriber and a client in MULTI show their state in CLIENT LIST
    call("c", "SUBSCRIBE", "chan1", "chan2")
    call("b", "MULTI")
    call("b", "PING")
    call("a", "CLIENT", "LIST")
    call("a", "CLIENT", "LIST", "TYPE", "pubsub")
    call("a", "CLIENT", "LIST", "TYPE", "replica")
    call("b", "DISCARD")
    # KILL by ID, by the old "ip:port" form, by ADDR, LADDR, USER, SKIPME
    call("a", "CLIENT", "KILL", "ID", label_id("b"))
    closed("b")
    call("a", "CLIENT", "KILL", label_addr("c"))
    closed("c")
    call("a", "CLIENT", "KILL", label_addr("c"))
    t.open("d")
    t.open("e")
    call("a", "CLIENT", "KILL", "ADDR", label_addr("d"), "SKIPME", "yes")
    closed("d")
    e = t.clients["e"]
    call("a", "CLIENT", "KILL", "LADDR", e.peer())
    closed("e")
    t.open("f")
    t.open("g")
    call("a", "CLIENT", "KILL", "USER", "default", "ID", label_id("f"))
    closed("f")
    call("a", "CLIENT", "KILL", "USER", "default")
    closed("g")
    call("a", "CLIENT", "LIST")
    # RESET: out of MULTI, name cleared, RESP2 again, out of pub/sub
    t.open("h", proto=3)
    call("h", "CLIENT", "SETNAME", "hname")
    call("h", "CLIENT", "INFO")
    call("h", "MULTI")
    call("h", "SET", "k", "v")
    call("h", "RESET")
    call("h", "EXEC")
    call("h", "CLIENT", "GETNAME")
    call("h", "CLIENT", "INFO")
    call("h", "HELLO", "3")  # normalised below: only its type is compared
    out.pop()
    call("h", "SUBSCRIBE", "chan3")
    call("h", "PING")
    call("h", "RESET")
    call("h", "PING")
    call("h", "CLIENT", "INFO")
    call("h", "SUBSCRIBE", "chan4")
    call("h", "RESET")
    call("h", "GET", "nokey")
    call("h", "WATCH", "k")
    call("h", "RESET")
    call("h", "CLIENT", "INFO")
    # a client killing itself gets its reply, then the connection closes
    call("h", "CLIENT", "KILL", "ID", label_id("h"), "SKIPME", "no")
    closed("h")
    call("a", "CLIENT", "KILL", "ADDR", label_addr("a"), "SKIPME", "no")
    closed("a")
    return out


def compare(ref, via):
    """Fails listing every step where two transcripts differ."""
    diffs = ["step %d: client %s: %s\n  redis 7.0: %r\n  zos-proxy: %r" % (i, r[0], r[1], r[2], v[2])
             for i, (r, v) in enumerate(zip(ref, via)) if r != v]
    if len(ref) != len(via):
        diffs.append("%d steps with redis, %d with the proxy" % (len(ref), len(via)))
    if diffs:
        pytest.fail("%d of %d steps differ:\n%s" % (len(diffs), len(ref), "\n".join(diffs)),
                    pytrace=False)


def start_pair(lab, requirepass=None):
    """(reference redis Target, proxy Target): a redis-server and a zos-proxy in front of
    another one, both with REQUIREPASS when given."""
    ref_port, _ = lab.redis(password=requirepass)
    node_port, _ = lab.redis()
    port = free_port()
    conf = "[proxy]\nlisten = 127.0.0.1:%d\n" % port
    if requirepass:
        conf += "requirepass = %s\n" % requirepass
    lab.proxy(conf + "\n" + node_section("n1", node_port) + "\n", port)
    return Target(ref_port, password=requirepass), Target(port, node="n1", password=requirepass)


def test_client_subcommands_and_reset_as_redis_7_0(lab):
    ref, via = start_pair(lab)
    try:
        a, b = transcript(ref), transcript(via)
    finally:
        ref.close()
        via.close()
    compare(a, b)


def test_client_list_order_is_redis_order(lab):
    """redis lists its clients oldest first."""
    ref, via = start_pair(lab)
    try:
        lists = []
        for t in (ref, via):
            t.sort_list = False
            for label in ("first", "second", "third"):
                t.open(label)
            t.wait_clients(3)
            lists.append(t.normalise(t.clients["second"].call("CLIENT", "LIST").raw))
    finally:
        ref.close()
        via.close()
    order = [[m for m in re.findall(r"id=<(\w+)>", text)] for text in lists]
    assert order[1] == order[0], "CLIENT LIST order: redis %s, zos-proxy %s" % tuple(order)


def requirepass_transcript(t):
    out = []

    def call(label, *cmd):
        f = t.clients[label].call(*cmd)
        out.append((label, " ".join(t.token(c) for c in cmd), t.normalise(f.raw)))

    t.open("a")
    call("a", "CLIENT", "SETNAME", "x")
    call("a", "RESET")
    call("a", "GET", "nokey")
    call("a", "CLIENT", "INFO")
    call("a", "CLIENT", "LIST")
    call("a", "AUTH", "wrong")
    call("a", "AUTH", "default", "wrong")
    call("a", "AUTH", t.password)
    call("a", "GET", "nokey")
    call("a", "HELLO", "3", "AUTH", "default", "wrong")
    call("a", "RESET")
    call("a", "HELLO", "2", "AUTH", "default", t.password)
    out.pop()  # the server map differs by nature; the next command shows its effect
    call("a", "GET", "nokey")
    call("a", "CLIENT", "GETNAME")
    return out


def test_reset_deauthenticates_when_requirepass_is_set(lab):
    ref, via = start_pair(lab, requirepass="reset-pass-1")
    try:
        a, b = requirepass_transcript(ref), requirepass_transcript(via)
    finally:
        ref.close()
        via.close()
    compare(a, b)


def test_client_no_touch_is_accepted(lab):
    _, via = start_pair(lab)
    c = via.open("a")
    try:
        assert c.call("CLIENT", "NO-TOUCH", "on").raw == b"+OK\r\n"
        assert c.call("CLIENT", "NO-TOUCH", "off").raw == b"+OK\r\n"
        f = c.call("CLIENT", "NO-TOUCH", "maybe")
        assert f.is_error(), f.raw
    finally:
        via.close()

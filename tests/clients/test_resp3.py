"""RESP3 through zos-proxy at the byte level (a socket client, no library in between):
HELLO 3 / HELLO 2, the node's own RESP3 bytes for forwarded commands, pub/sub and
CLIENT TRACKING invalidations as push frames, and AUTH <password> choosing the node."""
import time

import pytest

from conftest import PASSWORDS, TIMEOUT, WHOAMI
from resp3raw import RESP2_TYPES, RawClient


def seed(stack, node, k):
    d = stack.direct(node)
    d.hset(k + "h", mapping={"a": "1", "b": "2"})
    d.zadd(k + "z", {"m": 1.5, "n": 2})
    d.sadd(k + "s", "x", "y", "z")
    d.rpush(k + "l", "p", "q")
    d.set(k + "str", "value")
    d.xadd(k + "x", {"f": "v"}, id="1-1")


def forwarded_commands(k):
    """Commands whose RESP3 replies differ from RESP2 ones (and a few that do not)."""
    return [
        ("HGETALL", k + "h"),                       # map
        ("SMEMBERS", k + "s"),                      # set
        ("ZSCORE", k + "z", "m"),                   # double
        ("ZRANGE", k + "z", 0, -1, "WITHSCORES"),   # array of [member, double]
        ("ZPOPMIN", k + "z" + "missing"),           # empty array
        ("GET", k + "missing"),                     # null
        ("LPOP", k + "missing"),                    # null
        ("HMGET", k + "h", "a", "nope"),            # array with a null
        ("GET", k + "str"),
        ("LRANGE", k + "l", 0, -1),
        ("XRANGE", k + "x", "-", "+"),              # nested arrays with a map-like list
        ("XINFO", "STREAM", k + "x"),               # map
        ("CONFIG", "GET", "maxmemory-policy"),      # map
        ("EVAL", "return {double=3.5}", 0),       # double from Lua
        ("EVAL", "return {big_number='12345678901234567890'}", 0),  # big number
        ("EVAL", "redis.setresp(3); return redis.call('HGETALL', KEYS[1])", 1, k + "h"),
        ("INCR", k + "h"),                          # -WRONGTYPE
        ("EXISTS", k + "h", k + "missing"),
        ("TYPE", k + "s"),
        ("OBJECT", "ENCODING", k + "l"),
    ]


def test_hello_3_then_hello_2(stack, node, uniq):
    seed(stack, node, uniq)
    with RawClient(stack.port, timeout=TIMEOUT) as c:
        f = c.call("HELLO", "3", "AUTH", node, PASSWORDS[node], "SETNAME", "resp3-client")
        assert f.type == "%", f.raw
        hello = f.py()
        assert hello.get(b"proto") == 3, hello
        assert {b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"} <= set(hello), hello
        assert c.call("GET", WHOAMI).value == node.encode()
        assert c.call("HGETALL", uniq + "h").type == "%"
        assert c.call("CLIENT", "GETNAME").value == b"resp3-client"
        f = c.call("HELLO", "2")
        assert f.type == "*", "HELLO 2 answers a RESP2 array: %r" % f.raw
        d = dict(zip(f.py()[::2], f.py()[1::2]))
        assert d.get(b"proto") == 2, d
        f = c.call("HGETALL", uniq + "h")
        assert f.type == "*" and f.types() <= RESP2_TYPES, f.raw
        assert c.call("GET", WHOAMI).value == node.encode()
        # HELLO without a version: the current protocol's map, no switch
        f = c.call("HELLO")
        assert f.type == "*", f.raw
        f = c.call("HELLO", "3")
        assert f.type == "%", f.raw
        assert c.call("ZSCORE", uniq + "z", "m").raw == b",1.5\r\n"


def test_hello_unsupported_version(stack):
    with RawClient(stack.port, timeout=TIMEOUT) as c:
        f = c.call("HELLO", "4")
        assert f.raw.startswith(b"-NOPROTO"), f.raw
        f = c.call("PING")
        assert f.raw == b"+PONG\r\n", f.raw


def test_forwarded_replies_are_the_nodes_resp3_bytes(stack, node, uniq):
    seed(stack, node, uniq)
    with stack.raw(node, proto=3) as via, stack.raw_direct(node, proto=3) as direct:
        for cmd in forwarded_commands(uniq):
            got, want = via.call(*cmd), direct.call(*cmd)
            assert got.raw == want.raw, "%s: proxy sent %r, the node sends %r" % (cmd, got.raw, want.raw)
    # and the same commands in RESP2 are the node's RESP2 bytes, never a RESP3 type
    with stack.raw(node, proto=2) as via, stack.raw_direct(node, proto=2) as direct:
        for cmd in forwarded_commands(uniq):
            got, want = via.call(*cmd), direct.call(*cmd)
            assert got.raw == want.raw, "%s (RESP2): proxy sent %r, the node sends %r" % (cmd, got.raw, want.raw)
            assert got.types() <= RESP2_TYPES, got.raw


def test_resp3_transaction_replies(stack, node, uniq):
    seed(stack, node, uniq)
    script = [("WATCH", uniq + "h"), ("MULTI",), ("HGETALL", uniq + "h"), ("ZSCORE", uniq + "z", "m"),
              ("GET", uniq + "missing"), ("EXEC",), ("MULTI",), ("SET", uniq + "t", "1"), ("DISCARD",)]
    with stack.raw(node, proto=3) as via, stack.raw_direct(node, proto=3) as direct:
        for cmd in script:
            got, want = via.call(*cmd), direct.call(*cmd)
            assert got.raw == want.raw, "%s: proxy sent %r, the node sends %r" % (cmd, got.raw, want.raw)


def publish_until_heard(pub, channel, message):
    for _ in range(100):
        if pub.publish(channel, message) >= 1:
            return
        time.sleep(0.1)
    raise AssertionError("PUBLISH %s never reached a subscriber" % channel)


def test_resp3_pubsub_pushes_and_commands_between(stack, node, uniq):
    ch = uniq + "ch"
    pub = stack.client(node)
    with stack.raw(node, proto=3) as c:
        f = c.call("SUBSCRIBE", ch)
        assert f.type == ">", "SUBSCRIBE confirmation is a push: %r" % f.raw
        assert f.py() == [b"subscribe", ch.encode(), 1]
        # the connection keeps serving ordinary commands while subscribed
        assert c.call("GET", WHOAMI).raw == b"$%d\r\n%s\r\n" % (len(node), node.encode())
        assert c.call("PING").raw == b"+PONG\r\n"
        assert c.call("SET", uniq + "k", "v").raw == b"+OK\r\n"
        publish_until_heard(pub, ch, "hello")
        f = c.read()
        assert f.type == ">" and f.py() == [b"message", ch.encode(), b"hello"], f.raw
        assert f.raw == b">3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$5\r\nhello\r\n" % (len(ch), ch.encode())
        # a message published between two commands arrives between their replies, in order
        c.send("INCR", uniq + "n")
        assert pub.publish(ch, "second") == 1
        c.send("INCR", uniq + "n")
        frames = [c.read(), c.read(), c.read()]
        replies = [f for f in frames if f.type != ">"]
        pushes = [f for f in frames if f.type == ">"]
        assert [f.raw for f in replies] == [b":1\r\n", b":2\r\n"], frames
        assert [p.py() for p in pushes] == [[b"message", ch.encode(), b"second"]], frames
        f = c.call("UNSUBSCRIBE", ch)
        assert f.type == ">" and f.py() == [b"unsubscribe", ch.encode(), 0], f.raw
        assert c.call("GET", uniq + "k").raw == b"$1\r\nv\r\n"


def test_resp3_psubscribe_and_resp2_subscriber_side_by_side(stack, node, uniq):
    ch = uniq + "ch"
    pub = stack.client(node)
    with stack.raw(node, proto=3) as r3, stack.raw(node, proto=2, record=True) as r2:
        assert r3.call("PSUBSCRIBE", uniq + "*").py() == [b"psubscribe", (uniq + "*").encode(), 1]
        f = r2.call("SUBSCRIBE", ch)
        assert f.raw == b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(ch), ch.encode()), f.raw
        for _ in range(100):
            if pub.publish(ch, "both") >= 2:
                break
            time.sleep(0.1)
        f3, f2 = r3.read(), r2.read()
        assert f3.type == ">" and f3.py() == [b"pmessage", (uniq + "*").encode(), ch.encode(), b"both"], f3.raw
        assert f2.raw == b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$4\r\nboth\r\n" % (len(ch), ch.encode()), f2.raw
        f = r2.call("UNSUBSCRIBE")
        assert f.type == "*", f.raw
        assert r2.call("PING").raw == b"+PONG\r\n"


def test_client_tracking_invalidation_is_a_push(stack, node, uniq):
    k = uniq + "cached"
    writer = stack.client(node)
    writer.set(k, "v1")
    with stack.raw(node, proto=3) as c:
        assert c.call("CLIENT", "TRACKING", "ON").raw == b"+OK\r\n"
        assert c.call("GET", k).raw == b"$2\r\nv1\r\n"
        writer.set(k, "v2")
        f = c.read()  # nothing else is pending: the next frame is the invalidation
        assert f.raw == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$%d\r\n%s\r\n" % (len(k), k.encode()), f.raw
        # ordinary commands go on, on the same node
        assert c.call("GET", k).raw == b"$2\r\nv2\r\n"
        assert c.call("GET", WHOAMI).value == node.encode()
        writer.set(k, "v3")
        f = c.read()
        assert f.type == ">" and f.py() == [b"invalidate", [k.encode()]], f.raw
        assert c.call("CLIENT", "TRACKING", "OFF").raw == b"+OK\r\n"
        assert c.call("GET", k).raw == b"$2\r\nv3\r\n"
        writer.set(k, "v4")
        assert c.call("PING").raw == b"+PONG\r\n", "no invalidation after TRACKING OFF"


def test_client_tracking_bcast_prefix(stack, node, uniq):
    writer = stack.client(node)
    with stack.raw(node, proto=3) as c:
        assert c.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", uniq).raw == b"+OK\r\n"
        writer.set(uniq + "a", "1")
        f = c.read()
        assert f.type == ">" and f.py() == [b"invalidate", [(uniq + "a").encode()]], f.raw


@pytest.mark.parametrize("how", ["AUTH pw", "AUTH default pw", "HELLO 3 AUTH default pw"])
def test_password_alone_selects_the_node(stack, node, how):
    """AUTH <password> (go-redis v5, redis-py without a username) lands on the node whose
    password it is.  Its ACL spellings with the user `default` mean the same in redis
    (`AUTH default pw` == `AUTH pw`), and they are what node-redis and ioredis send for a
    URL without username (redis://:PASSWORD@...): HELLO 3 AUTH default PASSWORD."""
    with RawClient(stack.port, timeout=TIMEOUT) as c:
        if how == "AUTH pw":
            f = c.call("AUTH", PASSWORDS[node])
            assert f.raw == b"+OK\r\n", f.raw
        elif how == "AUTH default pw":
            f = c.call("AUTH", "default", PASSWORDS[node])
            assert f.raw == b"+OK\r\n", f.raw
        else:
            f = c.call("HELLO", "3", "AUTH", "default", PASSWORDS[node])
            assert f.type == "%", f.raw
        f = c.call("GET", WHOAMI)
        assert f.value == node.encode(), "GET %s after %s (the password of %s): %r" % (
            WHOAMI, how, node, f.raw)


def test_wrong_password_in_hello(stack):
    with RawClient(stack.port, timeout=TIMEOUT) as c:
        f = c.call("HELLO", "3", "AUTH", "secure", "wrong")
        assert f.raw.startswith(b"-WRONGPASS"), f.raw
        # still RESP2 and not authenticated for secure
        f = c.call("HELLO", "3", "AUTH", "secure", PASSWORDS["secure"])
        assert f.type == "%", f.raw

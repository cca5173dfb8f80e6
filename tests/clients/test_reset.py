"""RESET through zos-proxy undoes everything a connection set up, on the proxy and on the
node: back to RESP2 and the default node, no name, out of MULTI (nothing queued reaches
the node), subscriptions and tracking gone (their pinned node connection closed), and
not authenticated when a password is required."""
import time

import pytest

from conftest import PASSWORDS, TIMEOUT, WHOAMI
from resp3raw import RESP2_TYPES, RawClient
from zostest import free_port, node_section


@pytest.fixture
def open_pair(lab):
    """(proxy port, {node: direct redis-py}) of a proxy without passwords in front of two
    plain nodes, "one" (the default) and "two"."""
    import redis
    ports = {n: lab.redis()[0] for n in ("one", "two")}
    direct = {n: redis.Redis(host="127.0.0.1", port=p, socket_timeout=TIMEOUT) for n, p in ports.items()}
    for n, d in direct.items():
        d.set(WHOAMI, n)
    port = free_port()
    conf = "[proxy]\nlisten = 127.0.0.1:%d\ndefault = one\n\n" % port
    conf += "".join(node_section(n, p) + "\n" for n, p in ports.items())
    lab.proxy(conf, port)
    return port, direct


def wait_for(pred, what):
    deadline = time.monotonic() + TIMEOUT  # a no-hang guard
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def test_reset_undoes_resp3_node_name_pubsub_and_tracking(open_pair, uniq):
    port, direct = open_pair
    ch, k = uniq + "ch", uniq + "k"
    with RawClient(port, timeout=TIMEOUT) as c:
        assert c.call("HELLO", "3", "AUTH", "two", "x", "SETNAME", "before-reset").type == "%"
        assert c.call("GET", WHOAMI).value == b"two"
        assert c.call("CLIENT", "TRACKING", "ON").raw == b"+OK\r\n"
        assert c.call("GET", k).type == "_"
        assert c.call("SUBSCRIBE", ch).type == ">"
        assert direct["two"].pubsub_numsub(ch) == [(ch.encode(), 1)]
        assert c.call("RESET").raw == b"+RESET\r\n"
        assert c.call("GET", WHOAMI).raw == b"$3\r\none\r\n", "RESET goes back to the default node"
        assert c.call("CLIENT", "GETNAME").raw == b"$-1\r\n"
        assert c.call("GET", k).raw == b"$-1\r\n", "RESP2 again"
        # the node forgets the subscription and the tracking (the pinned connection is closed)
        wait_for(lambda: direct["two"].pubsub_numsub(ch) == [(ch.encode(), 0)], "the node to drop the subscription")
        direct["two"].set(k, "changed")
        assert direct["two"].publish(ch, "nobody") == 0
        f = c.call("PING")
        assert f.raw == b"+PONG\r\n", "a push after RESET: %r" % f.raw


def test_reset_inside_multi_sends_nothing_queued(open_pair, uniq):
    port, direct = open_pair
    k = uniq + "k"
    with RawClient(port, timeout=TIMEOUT) as c:
        assert c.call("MULTI").raw == b"+OK\r\n"
        assert c.call("SET", k, "queued").raw == b"+QUEUED\r\n"
        assert c.call("RESET").raw == b"+RESET\r\n"
        assert c.call("EXEC").raw == b"-ERR EXEC without MULTI\r\n"
        assert c.call("GET", k).raw == b"$-1\r\n"
    assert direct["one"].get(k) is None


def test_reset_forgets_the_node_password(stack):
    """With node passwords, RESET leaves the connection unauthenticated."""
    with RawClient(stack.port, timeout=TIMEOUT) as c:
        assert c.call("AUTH", "secure", PASSWORDS["secure"]).raw == b"+OK\r\n"
        assert c.call("GET", WHOAMI).value == b"secure"
        assert c.call("RESET").raw == b"+RESET\r\n"
        f = c.call("GET", WHOAMI)
        assert f.raw == b"-NOAUTH Authentication required.\r\n", f.raw
        assert c.call("AUTH", "secure", PASSWORDS["secure"]).raw == b"+OK\r\n"
        assert c.call("GET", WHOAMI).value == b"secure"


def test_hello_2_refused_while_subscribed_in_resp3(stack, node, uniq):
    """HELLO 2 is refused while the connection holds state on a node (README, RESP3)."""
    with stack.raw(node, proto=3) as c:
        assert c.call("SUBSCRIBE", uniq + "ch").type == ">"
        f = c.call("HELLO", "2")
        assert f.is_error(), f.raw
        f = c.call("HGETALL", uniq + "nohash")
        assert f.raw == b"%0\r\n", "still RESP3 after a refused HELLO 2: %r" % f.raw
        assert c.call("UNSUBSCRIBE").type == ">"
        f = c.call("HELLO", "2")
        assert f.type == "*" and f.types() <= RESP2_TYPES, f.raw

"""Stateful and blocking commands: BLPOP, MULTI/EXEC, WATCH, pub/sub, MONITOR, SELECT,
and the per-node cap on pinned links."""
import threading
import time

import pytest
import redis

from conftest import TIMEOUT, free_port, hangup, node_info, node_section, raw_cmd, wait_for


def test_blpop_does_not_delay_others_and_is_woken_by_lpush(open_proxy, uniq):
    key = uniq + "q"
    result = {}

    def blocked():
        r = open_proxy.client(socket_timeout=60)
        result["reply"] = r.blpop(key, 0)

    t = threading.Thread(target=blocked, daemon=True)
    t.start()
    watcher = open_proxy.client()
    wait_for(lambda: int(node_info(watcher, "plain").get("pinned", 0)) >= 1, what="BLPOP pinned")

    # others keep working on both nodes while the BLPOP waits (which it does until the
    # LPUSH below): held behind it, they would never finish, whatever the load
    errors, finished = [], []

    def worker(n):
        r = open_proxy.client(username="secure" if n % 2 else "plain", password="x")
        for i in range(200):
            k = "%sw%d:%d" % (uniq, n, i)
            r.set(k, i)
            if r.get(k) != str(i):
                errors.append((n, i))
        finished.append(n)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    assert sorted(finished) == [0, 1, 2, 3], "hung: workers %s never finished while a BLPOP " \
        "was blocked" % sorted(set(range(4)) - set(finished))
    assert t.is_alive() and "reply" not in result  # still blocked

    assert open_proxy.client().lpush(key, "wake") == 1
    t.join(TIMEOUT)
    assert result.get("reply") == (key, "wake") or result.get("reply") == [key, "wake"]


def test_blpop_with_timeout_returns_nil_and_connection_goes_on(open_proxy, uniq):
    r = open_proxy.client(single_connection_client=True)
    assert r.blpop(uniq + "empty", 1) is None
    r.set(uniq + "after", "x")  # a shared-link command after a pinned one, same connection
    assert r.get(uniq + "after") == "x"
    r.rpush(uniq + "l", "a", "b")
    assert r.brpop(uniq + "l", 1) in ((uniq + "l", "b"), [uniq + "l", "b"])
    assert r.lrange(uniq + "l", 0, -1) == ["a"]


def test_multi_exec_on_both_nodes(open_proxy, nodes, uniq):
    k = uniq + "k"
    for node, direct in (("plain", nodes.plain()), ("secure", nodes.secure())):
        r = open_proxy.client(username=node, password="x")
        p = r.pipeline(transaction=True)
        p.set(k, "1").incr(k).incrby(k, 10).get(k)
        assert p.execute() == [True, 2, 12, "12"]
        assert direct.get(k) == "12"
        # DISCARD
        c = open_proxy.client(username=node, password="x", single_connection_client=True)
        assert raw_cmd(c, "MULTI") == "OK"
        assert raw_cmd(c, "SET", k, "discarded") == "QUEUED"
        assert raw_cmd(c, "DISCARD") == "OK"
        assert c.get(k) == "12"


def test_watch_conflict_aborts_exec(open_proxy, uniq):
    k = uniq + "watched"
    r = open_proxy.client()
    r.set(k, "0")
    other = open_proxy.client()
    with r.pipeline(transaction=True) as p:
        p.watch(k)
        assert p.get(k) == "0"
        other.set(k, "changed-by-other")
        p.multi()
        p.set(k, "mine")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get(k) == "changed-by-other"
    # without a conflict the same transaction goes through
    with r.pipeline(transaction=True) as p:
        p.watch(k)
        p.multi()
        p.set(k, "mine")
        assert p.execute() == [True]
    assert r.get(k) == "mine"


def test_subscribe_and_psubscribe_through_proxy(open_proxy, uniq):
    ch = uniq + "news"
    r = open_proxy.client()
    ps = r.pubsub()
    ps.subscribe(ch)
    ps.psubscribe(uniq + "pat.*")
    confirmations = []
    wait_for(lambda: confirmations.append(ps.get_message(timeout=0.5)) or
             sum(1 for m in confirmations if m) >= 2, what="subscribe confirmations")
    kinds = sorted(m["type"] for m in confirmations if m)
    assert kinds == ["psubscribe", "subscribe"]

    pub = open_proxy.client()
    assert pub.publish(ch, "hello") == 1
    assert pub.publish(uniq + "pat.x", "by-pattern") == 1
    # published on the other node: nobody hears it
    assert pub.execute_command("ZOS.AT", "secure", "PUBLISH", ch, "elsewhere") == 0

    got = []
    wait_for(lambda: got.append(ps.get_message(timeout=0.5)) or
             sum(1 for m in got if m) >= 2, what="published messages")
    msgs = [m for m in got if m]
    assert {"type": "message", "pattern": None, "channel": ch, "data": "hello"} in msgs
    assert {"type": "pmessage", "pattern": uniq + "pat.*", "channel": uniq + "pat.x",
            "data": "by-pattern"} in msgs
    ps.close()


def test_normal_commands_after_unsubscribe(open_proxy, uniq):
    """Leaving pub/sub mode gives an ordinary connection back."""
    ch = uniq + "c"
    r = open_proxy.client(decode_responses=True)
    conn = r.connection_pool.get_connection("_")
    try:
        conn.send_command("SUBSCRIBE", ch)
        assert conn.read_response() == ["subscribe", ch, 1]
        assert open_proxy.client().publish(ch, "m1") == 1
        assert conn.read_response() == ["message", ch, "m1"]
        conn.send_command("UNSUBSCRIBE", ch)
        assert conn.read_response() == ["unsubscribe", ch, 0]
        conn.send_command("SET", uniq + "k", "v")
        assert conn.read_response() == "OK"
        conn.send_command("GET", uniq + "k")
        assert conn.read_response() == "v"
        conn.send_command("ZOS.AT", "secure", "PING")
        assert conn.read_response() == "PONG"
        # and it can subscribe again
        conn.send_command("PSUBSCRIBE", uniq + "*")
        assert conn.read_response() == ["psubscribe", uniq + "*", 1]
        conn.send_command("PUNSUBSCRIBE")
        assert conn.read_response() == ["punsubscribe", uniq + "*", 0]
        conn.send_command("PING")
        assert conn.read_response() == "PONG"
    finally:
        conn.disconnect()


def test_monitor_shows_a_command(open_proxy, uniq):
    r = open_proxy.client()
    conn = r.connection_pool.get_connection("_")
    marker = uniq + "monitored"
    try:
        conn.send_command("MONITOR")
        assert conn.read_response() == "OK"
        open_proxy.client().set(marker, "seen")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = conn.read_response()
            if marker in line:
                assert '"SET"' in line.upper() or "set" in line.lower()
                break
        else:
            raise AssertionError("MONITOR never showed the SET")
    finally:
        conn.disconnect()
    assert open_proxy.client().get(marker) == "seen"


def test_select_isolates_keys_for_that_client_only(open_proxy, nodes, uniq):
    k = uniq + "k"
    a = open_proxy.client(single_connection_client=True)
    b = open_proxy.client(single_connection_client=True)
    assert a.execute_command("SELECT", 1) in (True, "OK")
    a.set(k, "db1")
    assert b.get(k) is None
    b.set(k, "db0")
    assert a.get(k) == "db1"
    assert b.get(k) == "db0"
    assert redis.Redis(port=nodes.plain_port, db=1, decode_responses=True).get(k) == "db1"
    # a client asking for db=1 when it connects
    c = open_proxy.client(db=1)
    assert c.get(k) == "db1"
    # a new connection starts in db 0 again
    hangup(a)
    assert open_proxy.client().get(k) == "db0"


def test_max_pinned_cap_is_a_clear_error(lab, nodes, uniq):
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\nmax-pinned = 2\n\n" % port
                      + node_section("plain", nodes.plain_port), port)
    key = uniq + "cap"
    holders = [proxy.client(single_connection_client=True, socket_timeout=30) for _ in range(2)]
    results = [None, None]

    def hold(i):
        results[i] = holders[i].blpop(key, 20)

    threads = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    watcher = proxy.client()
    wait_for(lambda: node_info(watcher, "plain").get("pinned") == "2", what="two pinned links")
    third = proxy.client(single_connection_client=True)
    with pytest.raises(redis.ResponseError, match="(?i)pinned|too many"):
        third.blpop(key, 1)
    assert third.set(key + ":x", "1") is True  # shared traffic is not capped
    # release them; once a holder disconnects, its pinned link is freed
    proxy.client().rpush(key, "a", "b")
    for t in threads:
        t.join(TIMEOUT)
    assert sorted(r[1] for r in results) == ["a", "b"]
    for h in holders:
        hangup(h)
    wait_for(lambda: node_info(watcher, "plain").get("pinned") == "0", what="pinned links freed")
    assert third.blpop(key, 1) is None


def test_replies_in_request_order_across_nodes_and_links(open_proxy, uniq):
    """A slow pinned request on one node first, fast ones behind it: replies keep request order."""
    k = uniq + "k"
    open_proxy.client().set(k, "plain-v")
    r = open_proxy.client(single_connection_client=True)
    p = r.pipeline(transaction=False)
    p.execute_command("ZOS.AT", "secure", "BLPOP", uniq + "empty", "1")
    p.ping()
    p.get(k)
    p.echo("local")
    p.execute_command("ZOS.AT", "secure", "SET", k, "secure-v")
    p.execute_command("ZOS.AT", "secure", "GET", k)
    assert p.execute() == [None, True, "plain-v", "local", "OK", "secure-v"]


def test_zos_at_blocking_command_on_other_node(open_proxy, nodes, uniq):
    key = uniq + "q"
    r = open_proxy.client(single_connection_client=True)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "r", r.execute_command("ZOS.AT", "secure", "BLPOP", key, "10")), daemon=True)
    t.start()
    watcher = open_proxy.client()
    wait_for(lambda: int(node_info(watcher, "secure").get("pinned", 0)) >= 1, what="pinned on secure")
    nodes.secure().rpush(key, "x")
    t.join(TIMEOUT)
    assert box.get("r") == [key, "x"]
    assert r.get(key) is None  # the connection's own node is still plain


def test_zos_all_refuses_blocking_commands(open_proxy):
    r = open_proxy.client()
    with pytest.raises(redis.ResponseError):
        r.execute_command("ZOS.ALL", "BLPOP", "k", "1")
    with pytest.raises(redis.ResponseError):
        r.execute_command("ZOS.ALL", "SUBSCRIBE", "c")
    assert r.ping() is True


def test_pubsub_on_tls_node(open_proxy, uniq):
    ch = uniq + "tls"
    sub = open_proxy.client(username="secure", password="x").pubsub(ignore_subscribe_messages=True)
    sub.subscribe(ch)
    pub = open_proxy.client(username="secure", password="x")
    wait_for(lambda: pub.publish(ch, "m") == 1, what="subscriber registered")
    msg = wait_for(lambda: sub.get_message(timeout=0.5), what="message over TLS")
    assert msg["channel"] == ch and msg["data"] == "m"
    assert open_proxy.client().publish(ch, "wrong-node") == 0
    sub.close()


def test_client_tracking_redirect_names_a_proxy_client(open_proxy, uniq):
    """RESP2 client-side caching: B subscribes to __redis__:invalidate, A turns
    tracking on with REDIRECT <B's CLIENT ID as the proxy gives it>; a write by
    a third client to a key A read reaches B as an invalidation message."""
    key = uniq + ":tracked"
    b = open_proxy.client()
    bid = b.client_id()
    ps = b.pubsub()
    ps.subscribe("__redis__:invalidate")
    assert ps.get_message(timeout=TIMEOUT)["type"] == "subscribe"
    a = open_proxy.client()
    with pytest.raises(redis.ResponseError) as ei:
        raw_cmd(a, "CLIENT", "TRACKING", "ON", "REDIRECT", "987654321")
    assert str(ei.value) == "The client ID you want redirect to does not exist"
    assert raw_cmd(a, "CLIENT", "TRACKING", "ON", "REDIRECT", str(bid)) == "OK"
    assert a.get(key) is None  # now tracked for A
    open_proxy.client().set(key, "1")
    msg = None
    for _ in range(20):  # the subscribe's own messages aside, wait for the invalidation
        msg = ps.get_message(timeout=TIMEOUT)
        if msg is not None and msg["type"] == "message":
            break
    assert msg is not None and msg["channel"] in ("__redis__:invalidate", b"__redis__:invalidate")
    assert msg["data"] in ([key], [key.encode()]), msg
    ps.close()
    hangup(a)
    hangup(b)

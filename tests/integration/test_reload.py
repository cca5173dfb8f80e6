"""SIGHUP reloads the config without dropping anyone (issue 13, item 2).

Real redis-server nodes, the real zos-proxy, redis-py with default options.  The
config file is rewritten in place and the proxy gets SIGHUP; every check is on what
clients see and on the proxy's log, never on how long anything took.
"""
import signal
import threading
import time

import pytest
import redis

from conftest import TIMEOUT, free_port, node_section, wait_for

GUARD = 30  # seconds: "nothing hangs" guard


def proxy_conf(port, nodes, extra=""):
    """[proxy] on PORT plus one section per (name, redis port, extra lines)."""
    text = "[proxy]\nlisten = 127.0.0.1:%d\n%s\n" % (port, extra)
    for name, node_port, more in nodes:
        text += node_section(name, node_port, extra=more)
    return text


def reload(proxy, text, lab):
    """Rewrites the proxy's config with TEXT, sends SIGHUP, waits for the log line."""
    before = proxy.log().count("SIGHUP: reloading")
    with open(proxy.conf_path, "w") as f:
        f.write(text)
    proxy.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: proxy.log().count("SIGHUP: reloading") > before
             and ("reload: " in proxy.log().split("SIGHUP: reloading")[-1]
                  or "reload failed" in proxy.log().split("SIGHUP: reloading")[-1]),
             timeout=GUARD, what="the reload's log line")
    return proxy.log().split("SIGHUP: reloading")[-1]


def test_reload_adds_removes_and_changes_nodes_without_dropping_clients(lab):
    _, pa, _ = lab.redis()
    _, pb, _ = lab.redis()
    _, pa2, _ = lab.redis()
    _, pc, _ = lab.redis()
    for p, who in ((pa, "a-old"), (pb, "b"), (pa2, "a-new"), (pc, "c")):
        redis.Redis(port=p).set("who", who)
    port = free_port()
    # pool-idle 200: the sweep (every 50 ms) frees the links of the removed and changed
    # node while the test goes on.
    extra = "default = a\npool-idle = 200\n"
    proxy = lab.proxy(proxy_conf(port, [("a", pa, ""), ("b", pb, "")], extra), port)

    on_a = proxy.client(single_connection_client=True)
    on_b = proxy.client(single_connection_client=True)
    assert on_a.get("who") == "a-old"
    assert on_b.execute_command("ZOS.USE", "b") == "OK"
    assert on_b.get("who") == "b"
    subscriber = proxy.client(single_connection_client=True).pubsub()
    subscriber.subscribe("reload:ch")
    assert subscriber.get_message(timeout=TIMEOUT)["type"] == "subscribe"

    # a moves to another redis, b goes, c comes.
    tail = reload(proxy, proxy_conf(port, [("a", pa2, ""), ("c", pc, "")], extra), lab)
    assert "1 added, 1 removed, 1 changed" in tail, tail

    # The same connections are still there and answered.
    assert on_a.get("who") == "a-new"
    with pytest.raises(redis.ResponseError, match="node 'b' was removed"):
        on_b.get("who")
    assert on_b.execute_command("ZOS.USE", "c") == "OK"  # the client itself is kept
    assert on_b.get("who") == "c"
    with pytest.raises(redis.ResponseError, match="unknown node 'b'"):
        on_a.execute_command("ZOS.AT", "b", "GET", "who")
    # The subscriber's pinned link still reaches the old node of 'a' (its state lives
    # there): a message published there arrives.
    redis.Redis(port=pa).publish("reload:ch", "still here")
    msg = subscriber.get_message(timeout=TIMEOUT)
    assert msg is not None and msg["data"] == "still here", msg
    time.sleep(0.5)  # several sweeps over the retired node and the drained links (not a bound)
    fresh = proxy.client()
    assert fresh.get("who") == "a-new"
    assert on_a.get("who") == "a-new"
    assert fresh.execute_command("ZOS.AT", "c", "GET", "who") == "c"
    proxy.assert_alive()


def test_reload_with_a_broken_file_changes_nothing(lab):
    _, pa, _ = lab.redis()
    port = free_port()
    good = proxy_conf(port, [("a", pa, "")])
    proxy = lab.proxy(good, port)
    r = proxy.client()
    assert r.set("k", "v") is True
    tail = reload(proxy, good + "[broken\n", lab)
    assert "reload failed, the running config stays" in tail, tail
    assert "conf.toml:" in tail or ".toml:" in tail, tail  # file:line of the error
    assert r.get("k") == "v"
    # A file that parses but would expose the proxy is refused the same way.
    tail = reload(proxy, good.replace("127.0.0.1:%d" % port, "0.0.0.0:%d" % port), lab)
    assert "reload failed" in tail and "requirepass" in tail, tail
    assert r.get("k") == "v"
    proxy.assert_alive()


def test_reload_of_listen_needs_a_restart_and_keeps_the_socket(lab):
    _, pa, _ = lab.redis()
    port, other = free_port(), free_port()
    proxy = lab.proxy(proxy_conf(port, [("a", pa, "")]), port)
    tail = reload(proxy, proxy_conf(other, [("a", pa, "")]), lab)
    assert "reload failed" not in tail, tail
    assert "listen changed: needs a restart" in tail, tail
    assert proxy.client().ping() is True  # still on the old port


def test_reload_under_load_loses_no_request(lab):
    """50 clients run SET/GET and check every reply while the config is reloaded 20
    times, alternating a change of the node's connection settings (127.0.0.1 and
    localhost: new links, same redis) with an added and removed spare node."""
    _, pa, _ = lab.redis()
    _, spare, _ = lab.redis()
    port = free_port()
    node_a = "[a]\naddress = %s\nport = %d\ntls = no\n\n"
    confs = [
        proxy_conf(port, []) + node_a % ("127.0.0.1", pa),
        proxy_conf(port, [("spare", spare, "")]) + node_a % ("localhost", pa),
    ]
    proxy = lab.proxy(confs[0], port)
    stop = threading.Event()
    problems, counts = [], [0] * 50

    def worker(i):
        r = proxy.client(single_connection_client=True)
        n = 0
        try:
            while not stop.is_set() or n < 20:
                key, val = "load:%d:%d" % (i, n), "v%d" % n
                with r.pipeline(transaction=False) as p:
                    p.set(key, val)
                    p.get(key)
                    got = p.execute()
                if got != [True, val]:
                    problems.append((i, n, got))
                    return
                n += 1
                counts[i] = n
        except redis.RedisError as e:
            problems.append((i, n, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(50)]
    for t in threads:
        t.start()
    wait_for(lambda: min(counts) > 0, timeout=GUARD, what="every client running")
    for k in range(20):
        before = sum(counts)
        tail = reload(proxy, confs[(k + 1) % 2], lab)
        assert "reload: " in tail and "reload failed" not in tail, tail
        wait_for(lambda: sum(counts) > before + 50, timeout=GUARD, what="traffic after reload")
    stop.set()
    for t in threads:
        t.join(GUARD)
    assert not problems, problems[:5]
    assert all(not t.is_alive() for t in threads)
    assert proxy.log().count("reload: ") >= 20
    proxy.assert_alive()

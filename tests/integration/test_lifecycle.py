"""Failures and shutdown: a node SIGKILLed mid-traffic and restarted; SIGTERM draining."""
import signal
import socket
import threading

import pytest
import redis

from conftest import (NODE_SECRET, TIMEOUT, direct_tls, free_port, node_info, node_section,
                      tls_key_of, wait_for)
from resp_raw import encode_command


def test_node_killed_mid_traffic_then_restarted(lab):
    victim_proc, victim_port, cert = lab.redis(password=NODE_SECRET, tls=True)
    _, survivor_port, _ = lab.redis()
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\ndefault = survivor\nbackoff-max = 1000\n"
                      "connect-timeout = 2000\n\n" % port
                      + node_section("victim", victim_port, tls=True, secret=NODE_SECRET)
                      + node_section("survivor", survivor_port), port)

    stop = threading.Event()
    stats = {"victim_ok": 0, "victim_err": [], "survivor_ok": 0, "survivor_bad": []}

    def traffic(node, n):
        r = proxy.client(username=node, password="x", single_connection_client=True,
                         socket_timeout=TIMEOUT)
        i = 0
        while not stop.is_set():
            i += 1
            k, v = "kill:%d:%d" % (n, i), "%s-%d" % (node, i)
            try:
                r.set(k, v)
                got = r.get(k)
                if node == "survivor" and got != v:
                    stats["survivor_bad"].append((k, got))
                stats[node + "_ok"] += 1
            except redis.ResponseError as e:
                (stats["victim_err"] if node == "victim" else stats["survivor_bad"]).append(str(e))
            except Exception as e:  # noqa: BLE001 - a hang (socket timeout) or a dropped client
                stats["survivor_bad" if node == "survivor" else "victim_err"].append(repr(e))

    threads = [threading.Thread(target=traffic, args=(node, n), daemon=True)
               for n, node in enumerate(["victim", "victim", "survivor", "survivor"])]
    for t in threads:
        t.start()

    blocked = {}

    def blpop_on_victim():
        r = proxy.client(username="victim", password="x", single_connection_client=True,
                         socket_timeout=TIMEOUT)
        blocked["client"] = r
        try:
            blocked["reply"] = r.blpop("kill:never", 0)
        except redis.ResponseError as e:  # a hang: the socket timeout, no "error"
            blocked["error"] = str(e)

    bt = threading.Thread(target=blpop_on_victim, daemon=True)
    bt.start()
    watcher = proxy.client()
    wait_for(lambda: stats["victim_ok"] > 50 and stats["survivor_ok"] > 50, what="traffic flowing")
    wait_for(lambda: node_info(watcher, "victim").get("pinned") == "1", what="BLPOP pinned")

    victim_proc.send_signal(signal.SIGKILL)
    victim_proc.wait(TIMEOUT)

    # clients of the dead node get "node 'victim' unavailable" quickly, nobody hangs
    wait_for(lambda: any("node 'victim' unavailable" in e for e in stats["victim_err"]),
             what="unavailable errors")
    bt.join(TIMEOUT)
    assert "error" in blocked, blocked
    assert "node 'victim' unavailable" in blocked["error"]
    survivor_before = stats["survivor_ok"]
    wait_for(lambda: stats["survivor_ok"] > survivor_before + 100, what="survivor still served")
    proxy.assert_alive()
    errors_seen = len(stats["victim_err"])
    assert all("unavailable" in e for e in stats["victim_err"]), stats["victim_err"][:5]

    # the node comes back on the same port: traffic resumes, the proxy was never restarted
    lab.redis_on(victim_port, password=NODE_SECRET, tls_files=(cert, tls_key_of(cert)))
    ok_before = stats["victim_ok"]
    wait_for(lambda: stats["victim_ok"] > ok_before + 50, what="victim traffic resumes")
    stop.set()
    for t in threads:
        t.join(TIMEOUT)
    assert not stats["survivor_bad"], stats["survivor_bad"][:5]
    assert errors_seen > 0
    assert proxy.client(username="victim", password="x").execute_command("PING") in (True, "PONG")

    rows = {d["name"]: d for d in (dict(zip(row[::2], row[1::2]))
                                   for row in watcher.execute_command("ZOS.NODES"))}
    assert rows["victim"]["state"] == "ready"


def test_blocked_client_blocks_again_after_node_restart(lab):
    """A client whose BLPOP failed because its node died is told so, then its connection
    closes, as a restarted redis would close it; once the node is back, the reconnected
    client's BLPOP works like any other client's."""
    node_proc, node_port, _ = lab.redis()
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\nbackoff-max = 500\n\n" % port
                      + node_section("n", node_port), port)
    r = proxy.client(single_connection_client=True, socket_timeout=TIMEOUT)
    watcher = proxy.client()
    box = {}

    def blocked():
        try:
            box["reply"] = r.blpop("rb:q", 0)
        except redis.RedisError as e:
            box["error"] = str(e)

    t = threading.Thread(target=blocked, daemon=True)
    t.start()
    wait_for(lambda: node_info(watcher, "n").get("pinned") == "1", what="BLPOP pinned")
    node_proc.send_signal(signal.SIGKILL)
    node_proc.wait(TIMEOUT)
    t.join(TIMEOUT)
    assert "node 'n' unavailable" in box.get("error", ""), box
    with pytest.raises(redis.ConnectionError):
        r.ping()  # closed by the proxy; redis-py reconnects on the next command
    lab.redis_on(node_port)
    wait_for(lambda: watcher.execute_command("ZOS.AT", "n", "PING"), what="node back")
    assert r.blpop("rb:q", 1) is None
    watcher.rpush("rb:q", "back")
    assert r.blpop("rb:q", 5) in (("rb:q", "back"), ["rb:q", "back"])


def test_hung_node_is_detected_by_health_ping(lab):
    """A node that stops answering (SIGSTOP) while idle is marked down by the health PING;
    requests then fail within seconds instead of hanging; it recovers on SIGCONT."""
    node_proc, node_port, _ = lab.redis(password=NODE_SECRET, tls=True)
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\nping-interval = 300\nconnect-timeout = 1000\n"
                      "node-timeout = 1000\nbackoff-max = 500\n\n" % port
                      + node_section("n", node_port, tls=True, secret=NODE_SECRET), port)
    r = proxy.client(socket_timeout=TIMEOUT)

    def state():
        rows = r.execute_command("ZOS.NODES")
        return dict(zip(rows[0][::2], rows[0][1::2]))

    assert r.execute_command("ZOS.AT", "n", "PING") == "PONG"
    node_proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: state()["state"] != "ready", what="hung node marked down")
        with pytest.raises(redis.ResponseError, match="node 'n' unavailable"):
            r.execute_command("ZOS.AT", "n", "PING")
    finally:
        node_proc.send_signal(signal.SIGCONT)
    wait_for(lambda: r.execute_command("ZOS.AT", "n", "PING") == "PONG",
             what="node back after SIGCONT")


def _send(sock, *args):
    sock.sendall(encode_command(*args))


def _read_all(sock, timeout=20):
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            b = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not b:
            break
        buf += b
    return buf


def test_sigterm_delivers_inflight_replies_and_exits_0(lab):
    _, plain_port, _ = lab.redis()
    tls_proc, tls_port, _ = lab.redis(password=NODE_SECRET, tls=True)
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\ndefault = plain\nshutdown-timeout = 8000\n\n"
                      % port + node_section("plain", plain_port)
                      + node_section("secure", tls_port, tls=True, secret=NODE_SECRET), port)
    proxy.expect_exit = True
    watcher = proxy.client()

    a = proxy.raw(timeout=20)    # BLPOP with a timeout: answers nil after ~2 s
    _send(a, "BLPOP", "term:a", "2")
    b = proxy.raw(timeout=20)    # BLPOP on the TLS node, woken after SIGTERM
    _send(b, "AUTH", "secure", "x")
    _send(b, "BLPOP", "term:b", "6")
    c = proxy.raw(timeout=20)    # a batch of ordinary requests, replies pending
    n = 3000
    batch = b""
    for i in range(n):
        batch += b"*3\r\n$3\r\nSET\r\n$%d\r\nterm:c:%d\r\n$1\r\nv\r\n" % (len("term:c:%d" % i), i)
    wait_for(lambda: node_info(watcher, "plain").get("pinned") == "1"
             and node_info(watcher, "secure").get("pinned") == "1", what="both BLPOPs in flight")
    base = int(watcher.info("stats")["total_commands_processed"])  # counts this INFO
    infos = [0]

    def batch_dispatched():
        infos[0] += 1
        now = int(watcher.info("stats")["total_commands_processed"])
        return now - base - infos[0] >= n

    c.sendall(batch)
    # every request of the batch was read by the proxy before the signal
    wait_for(batch_dispatched, what="the batch dispatched")
    watcher.close()

    proxy.proc.send_signal(signal.SIGTERM)
    # stops accepting
    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True
    wait_for(refused, what="listener closed")
    # the BLPOP on the TLS node gets its element after the signal
    direct_tls(tls_port).rpush("term:b", "late")

    got_a, got_b, got_c = _read_all(a), _read_all(b), _read_all(c)
    rc = proxy.proc.wait(timeout=20)
    assert got_a == b"*-1\r\n", (got_a, got_b, got_c[:50], rc, proxy.log())
    assert got_b == b"+OK\r\n*2\r\n$6\r\nterm:b\r\n$4\r\nlate\r\n", got_b
    assert got_c == b"+OK\r\n" * n, (len(got_c), got_c[:100])
    assert rc == 0, proxy.log()


def test_sigterm_is_bounded_by_shutdown_timeout(lab):
    _, plain_port, _ = lab.redis()
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\nshutdown-timeout = 1000\n\n" % port
                      + node_section("plain", plain_port), port)
    proxy.expect_exit = True
    watcher = proxy.client()
    s = proxy.raw(timeout=30)
    _send(s, "BLPOP", "forever", "0")
    wait_for(lambda: node_info(watcher, "plain").get("pinned") == "1", what="BLPOP in flight")
    idle = proxy.raw(timeout=30)  # an idle client does not hold the exit either
    watcher.close()
    proxy.proc.send_signal(signal.SIGTERM)
    rc = proxy.proc.wait(timeout=20)
    assert rc == 0, proxy.log()
    assert "still waiting for replies after 1000 ms" in proxy.log()  # the bound, not the node
    # The BLPOP that never ends is answered with an error before the close.
    assert _read_all(s, timeout=5) == b"-ERR node 'plain' unavailable: zos-proxy is shutting down\r\n"
    assert _read_all(idle, timeout=5) == b""


def test_sigint_also_exits_0(lab):
    _, plain_port, _ = lab.redis()
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port + node_section("plain", plain_port),
                      port)
    proxy.expect_exit = True
    assert proxy.client().set("sigint", "1") is True
    proxy.proc.send_signal(signal.SIGINT)
    assert proxy.proc.wait(timeout=15) == 0, proxy.log()

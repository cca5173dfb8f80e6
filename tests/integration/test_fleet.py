"""Many nodes on one proxy (issue 12): more node names than descriptors, ZOS.ALL with a
hung node (TIMEOUT), dead/hung/live nodes side by side, a node back after a long outage,
and `zos-proxy -t` on 40,000 names.

No assertion here bounds wall-clock time: timeouts are only there so that a hang fails
the test instead of stalling the suite.  How long the fleet takes is bench/fanout.sh's
business.
"""
import os
import re
import resource
import signal
import threading
import time

import pytest
import redis

from conftest import (NODE_SECRET, TIMEOUT, Proxy, direct_tls, free_port, node_section,
                      tls_key_of, wait_for)
from resp_raw import RawResp, encode_command
from zostest import PROXY_BIN, wait_port


class Conn(RawResp):
    """A raw RESP2 connection: errors come back as their full text ("ERR node ..."),
    unaltered (redis-py would strip "ERR " and apply its callbacks)."""

    timeout = TIMEOUT

    def _fill(self):
        try:
            super()._fill()
        except TimeoutError:
            raise AssertionError("no reply from the proxy within %s s (a hang)"
                                 % self.s.gettimeout()) from None


def limited_proxy(lab, conf_text, port, nofile, name="fleet-limited"):
    """zos-proxy started with RLIMIT_NOFILE = NOFILE (soft and hard, so it cannot raise
    it), registered with LAB like lab.proxy() (alive after the test, exit 0 on SIGTERM)."""
    path = os.path.join(lab.tmp, name + ".toml")
    with open(path, "w") as f:
        f.write(conf_text)
    log = open(os.path.join(lab.tmp, name + ".log"), "w")

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = lab.procs.start([PROXY_BIN, "-c", path], env=lab.env, stderr=log, preexec_fn=limit)
    p = Proxy(lab.procs, proc, path, port)
    lab.proxies.append(p)
    try:
        wait_port(port, proc=proc, timeout=30)
    except (RuntimeError, TimeoutError) as e:
        p.expect_exit = True
        pytest.fail("zos-proxy under ulimit -n %d did not come up: %s; its log:\n%s"
                    % (nofile, e, p.log()), pytrace=False)
    return p


def assert_fanout_shape(reply, names, ok=("PONG",)):
    """REPLY is ZOS.ALL's flat array over NAMES in config order; each reply is one of OK or
    an error naming its node.  Returns {name: reply}."""
    assert isinstance(reply, list), reply
    assert reply[0::2] == list(names), "node names out of order or missing: %r" % reply[0::2][:20]
    got = dict(zip(reply[0::2], reply[1::2]))
    bad = {n: v for n, v in got.items()
           if v not in ok and not (isinstance(v, Conn.error) and v.startswith("ERR node '%s' " % n))}
    assert not bad, "elements neither %s nor an error naming their node: %r" % (ok, dict(list(bad.items())[:10]))
    return got


def until(pred, timeout=TIMEOUT, interval=0.1, what="condition"):
    """Calls PRED until it returns true (a no-hang guard of TIMEOUT s).  Unlike conftest's
    wait_for, an AssertionError inside PRED fails at once: a wrong reply is never retried
    away."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("not seen after %.0f s: %s" % (timeout, what))
        time.sleep(interval)


def fresh_ping(port, timeout=TIMEOUT):
    """A new client connection: its reply to PING (a lock-out shows as a timeout)."""
    try:
        c = Conn(port, timeout=timeout)
    except OSError as e:
        raise AssertionError("a new client cannot connect: %r" % e) from None
    try:
        return c.call("PING")
    except AssertionError as e:
        raise AssertionError("a new client got no reply to PING: %s" % e) from None
    finally:
        c.close()


# ------------------------------------------------------------ descriptors

NOFILE = 256
NAMES = 600
MAX_CLIENTS = 32
MAX_ROUNDS = 60  # a guard against looping for ever; it takes far fewer


def test_more_names_than_descriptors_every_node_answers_and_clients_get_in(lab):
    """600 names over 3 redis-servers, 256 descriptors: every ZOS.ALL PING is answered,
    each element PONG or an error naming its node; over repeated rounds every node answers
    PONG at least once (idle links are closed, least recently used first, to open others);
    a new client can connect and PING while a fan-out is in flight, and max-clients is
    enforced with an error, not with a stalled accept."""
    servers = [lab.redis()[1] for _ in range(3)]
    port = free_port()
    names = ["n%03d" % i for i in range(NAMES)]
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\nmax-clients = %d\nbackoff-max = 1000\n\n"
            % (port, MAX_CLIENTS)
            + "".join(node_section(n, servers[i % 3]) for i, n in enumerate(names)))
    proxy = limited_proxy(lab, conf, port, NOFILE)

    c = Conn(port)
    answered, last_errors, reasons = set(), {}, set()
    for rnd in range(1, MAX_ROUNDS + 1):
        c.send("ZOS.ALL", "PING")
        # while that fan-out opens links, a new client still gets in and is answered
        assert fresh_ping(port) == "PONG", "round %d: a new client got no PONG" % rnd
        got = assert_fanout_shape(c.read(), names)
        answered |= {n for n, v in got.items() if v == "PONG"}
        last_errors = {n: v for n, v in got.items() if v != "PONG"}
        proxy.assert_alive()
        reasons.update(re.sub(r"^ERR node '[^']*' ", "", v) for v in last_errors.values())
        if len(answered) == NAMES:
            break
        time.sleep(0.25)
    assert len(answered) == NAMES, (
        "after %d ZOS.ALL rounds %d of %d nodes never answered PONG (e.g. %s); last round's "
        "errors, a sample: %r" % (rnd, NAMES - len(answered), NAMES,
                                  sorted(set(names) - answered)[:5], list(last_errors.items())[:5]))

    # max-clients: the clients up to it are served, the next one is told and closed
    wait_for(lambda: "connected_clients:1\r\n" in c.call("INFO"),
             what="the fresh clients gone from the proxy's count")
    held = [Conn(port) for _ in range(MAX_CLIENTS - 1)]  # + c = MAX_CLIENTS
    try:
        for h in held:
            assert h.call("PING") == "PONG"
        extra = Conn(port)
        try:
            assert extra.read() == "ERR max number of clients reached"
            with pytest.raises((ConnectionError, OSError)):
                extra.read()
        finally:
            extra.close()
        got = assert_fanout_shape(c.call("ZOS.ALL", "PING"), names)
    finally:
        for h in held:
            h.close()
    # accepting did not stop for good: new clients are served again once others left
    wait_for(lambda: fresh_ping(port) == "PONG", timeout=TIMEOUT, what="a new client served again")
    c.close()
    proxy.assert_alive()
    # the proxy said how it plans to use the descriptors it has
    assert re.search(r"^\S+ \S+ \w descriptors:", proxy.log(), re.M), \
        "no 'descriptors:' line in the log:\n" + proxy.log()[-3000:]
    # and kept to its budget: a node request it cannot serve fails because the budget is
    # spent ("no descriptor left ..."), not because the kernel said EMFILE (which would
    # equally hit accept, TLS or the log)
    odd = sorted(r for r in reasons if not re.match(r"unavailable: .*descriptor", r))
    assert not odd, "errors other than 'unavailable: ...descriptor...': %r" % odd[:5]


# ------------------------------------------------------------ hung, dead and live nodes

def test_hung_node_times_out_alone_and_its_late_replies_are_discarded(lab):
    _, a_port, _ = lab.redis()
    hung_proc, hung_port, _ = lab.redis()
    _, c_port, _ = lab.redis()
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\ndefault = a\n\n" % port
                      + node_section("a", a_port) + node_section("hung", hung_port)
                      + node_section("c", c_port), port)
    conn = Conn(port)
    assert conn.call("ZOS.ALL", "PING") == ["a", "PONG", "hung", "PONG", "c", "PONG"]

    hung_proc.send_signal(signal.SIGSTOP)
    try:
        assert conn.call("ZOS.ALL", "TIMEOUT", "1000", "PING") == [
            "a", "PONG", "hung", "ERR node 'hung' timed out after 1000 ms", "c", "PONG"]
        # pipelined behind a fan-out that waits for the hung node: replies keep their order
        conn.s.sendall(encode_command("ZOS.ALL", "TIMEOUT", "1000", "ECHO", "late-1")
                       + encode_command("PING")
                       + encode_command("ZOS.AT", "c", "ECHO", "at-c")
                       + encode_command("ECHO", "local"))
        assert conn.read() == ["a", "late-1", "hung", "ERR node 'hung' timed out after 1000 ms",
                               "c", "late-1"]
        assert conn.read() == "PONG"
        assert conn.read() == "at-c"
        assert conn.read() == "local"
    finally:
        hung_proc.send_signal(signal.SIGCONT)

    # The node now answers the PING and ECHO late-1 nobody waits for any more: they must
    # never stand in for a later request's reply.
    seen = []

    def hung_answers_fresh():
        tok = "fresh-%d" % len(seen)
        reply = conn.call("ZOS.ALL", "ECHO", tok)
        seen.append(reply)
        got = assert_fanout_shape(reply, ["a", "hung", "c"], ok=(tok,))
        assert got["a"] == tok and got["c"] == tok, reply
        return got["hung"] == tok

    until(hung_answers_fresh, what="the resumed node answering")
    assert conn.call("ZOS.ALL", "PING") == ["a", "PONG", "hung", "PONG", "c", "PONG"]
    assert conn.call("PING") == "PONG"
    assert "protocol error" not in proxy.log(), \
        "the late replies were taken for unsolicited ones:\n" + proxy.log()[-3000:]


def test_dead_hung_and_live_nodes_each_get_their_element(lab):
    _, live_port, _ = lab.redis()
    _, live_tls_port, _ = lab.redis(password=NODE_SECRET, tls=True)
    hung_tls_proc, hung_tls_port, _ = lab.redis(password=NODE_SECRET, tls=True)
    hung_proc, hung_port, _ = lab.redis()
    dead_port = free_port()  # nothing listens there
    port = free_port()
    names = ["live", "dead", "hung-tls", "live-tls", "hung"]
    lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\ndefault = live\n\n" % port
                      + node_section("live", live_port)
                      + node_section("dead", dead_port)
                      + node_section("hung-tls", hung_tls_port, tls=True, secret=NODE_SECRET)
                      + node_section("live-tls", live_tls_port, tls=True, secret=NODE_SECRET)
                      + node_section("hung", hung_port), port)
    conn = Conn(port)
    # hung before any link: the TLS one never finishes its handshake, the plain one is
    # connected by the kernel and never answers
    hung_tls_proc.send_signal(signal.SIGSTOP)
    hung_proc.send_signal(signal.SIGSTOP)
    try:
        reply = conn.call("ZOS.ALL", "TIMEOUT", "1000", "PING")
        got = assert_fanout_shape(reply, names)
        assert got["live"] == "PONG" and got["live-tls"] == "PONG", reply
        assert got["hung-tls"] == "ERR node 'hung-tls' timed out after 1000 ms", reply
        assert got["hung"] == "ERR node 'hung' timed out after 1000 ms", reply
        assert re.fullmatch(r"ERR node 'dead' unavailable: \S.*", got["dead"]), reply
        # again, with the links now in whatever state the first round left them
        got = assert_fanout_shape(conn.call("ZOS.ALL", "TIMEOUT", "1000", "PING"), names)
        assert got["live"] == "PONG" and got["live-tls"] == "PONG", got
        assert got["dead"].startswith("ERR node 'dead' unavailable: "), got
        assert got["hung"].startswith("ERR node 'hung' "), got
        assert conn.call("PING") == "PONG"
    finally:
        hung_tls_proc.send_signal(signal.SIGCONT)
        hung_proc.send_signal(signal.SIGCONT)

    def all_but_dead():
        got = assert_fanout_shape(conn.call("ZOS.ALL", "PING"), names)
        assert got["dead"].startswith("ERR node 'dead' unavailable: "), got
        return all(got[n] == "PONG" for n in names if n != "dead")

    until(all_but_dead, interval=0.2, what="resumed nodes answering")


# ------------------------------------------------------------ a long outage

DOWN_S = 15        # how long the node stays away
PACE_S = 0.05      # one GET every 50 ms
MAX_FAILED_AFTER_READY = 40  # ~2 s of requests at that pace; the target is 1 s


def test_node_back_after_a_long_outage_serves_within_a_few_requests(lab):
    """A node away for 15 s (backoff has reached backoff-max, 10 s by default) while a
    client keeps asking for it: once it is back (answers PING directly), the client's
    requests succeed again within MAX_FAILED_AFTER_READY requests."""
    node_proc, node_port, cert = lab.redis(password=NODE_SECRET, tls=True)
    tls_files = (cert, tls_key_of(cert))
    port = free_port()
    proxy = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                      + node_section("n", node_port, tls=True, secret=NODE_SECRET), port)
    r = proxy.client(username="n", password="x", single_connection_client=True)
    assert r.set("fleet:k", "v") is True

    results = []  # None: answered; else the error text
    stop = threading.Event()

    def keep_asking():
        while not stop.is_set():
            try:
                r.get("fleet:k")
                results.append(None)
            except redis.ResponseError as e:
                results.append(str(e))
            except Exception as e:  # noqa: BLE001 - a hang or a dropped client is a failure
                results.append("client: %r" % e)
            time.sleep(PACE_S)

    t = threading.Thread(target=keep_asking, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(results) >= 5, what="traffic flowing")
        node_proc.send_signal(signal.SIGKILL)
        node_proc.wait(TIMEOUT)
        down_from = len(results)
        time.sleep(DOWN_S)
        lab.redis_on(node_port, password=NODE_SECRET, tls_files=tls_files)

        def node_ready():
            d = direct_tls(node_port)
            try:
                return d.ping()
            finally:
                d.connection_pool.disconnect()

        wait_for(node_ready, timeout=TIMEOUT, interval=0.02, what="the restarted node")
        ready = len(results)
        wait_for(lambda: None in results[ready:] or len(results) - ready > 5 * MAX_FAILED_AFTER_READY,
                 timeout=120, what="a request after the restart answered, or enough tries")
    finally:
        stop.set()
        t.join(TIMEOUT + 5)
    assert not t.is_alive(), "the client thread hangs"

    outage = results[down_from:ready]
    failed = [e for e in outage if e is not None]
    assert failed, "no request failed while the node was down: %r" % outage[:5]
    odd = [e for e in failed if not e.startswith("node 'n' unavailable")]
    assert not odd, "while down: %d error(s), %d not 'unavailable': %r" % (len(failed), len(odd), odd[:3])
    after = results[ready:]
    n_failed = next((i for i, e in enumerate(after) if e is None), len(after))
    assert n_failed <= MAX_FAILED_AFTER_READY, (
        "%d requests failed after the node was back (bound %d; %d sent during the %d s outage, "
        "%d failed); first/last errors after: %r / %r"
        % (n_failed, MAX_FAILED_AFTER_READY, len(outage), DOWN_S, len(failed),
           after[0] if after else None, after[n_failed - 1] if n_failed else None))
    assert r.get("fleet:k") is None  # the restarted node is empty: it really is the new one


# ------------------------------------------------------------ -t on 40,000 names

CHECK_NAMES = 40000


def test_check_config_with_40000_names(lab):
    port = free_port()
    lines = ["[proxy]", "listen = 127.0.0.1:%d" % port, ""]
    for i in range(CHECK_NAMES):
        tls = i % 2 == 1
        lines += ["[node%05d]" % i, "address = 127.0.0.1", "port = %d" % (20000 + i % 40),
                  "tls = %s" % ("yes" if tls else "no")]
        if tls:
            lines.append("secret = %s" % NODE_SECRET)
        lines.append("")
    text = "\n".join(lines)
    path = lab.write_conf(text, "fleet40k.toml")
    p = lab.run_proxy(["-t", "-c", path], timeout=300)
    assert p.returncode == 0, "zos-proxy -t: exit %s\n%s%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:])

    # the whole file was read: a duplicate at the very end is found, with both lines
    first = text.split("\n").index("[node00007]") + 1
    dup_line = len(lines) + 1
    bad = lab.write_conf(text + "\n[node00007]\naddress = 127.0.0.1\n", "fleet40k-dup.toml")
    p = lab.run_proxy(["-t", "-c", bad], timeout=300)
    assert p.returncode != 0
    assert "fleet40k-dup.toml:%d: duplicate section [node00007] (first at line %d)" % (
        dup_line, first) in p.stderr, p.stderr[-2000:]

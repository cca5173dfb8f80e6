"""Failures: a node killed or stopped during jobs, unknown job ids, a result asked for right
after ZOS.SUBMIT.  Each test runs on a cluster of its own (make_cluster): a node is killed,
or the proxy may not survive (see the docstrings)."""
import json
import os
import signal
import threading
import time
import uuid

from conftest import NODES, Err, Raw, children, ping_text


def test_node_killed_during_jobs(make_cluster):
    """SIGKILL of n2's simulator and its redis while 20 ZOS.CMD jobs wait on it (more
    than its 16 job links), a ZOS.SUBMIT job runs there, and the other nodes work:
    every n2 request gets "node unavailable" (not its 25 s timeout), nothing hangs, the
    proxy lives on, n1 and n3 keep answering, ZOS.ALL reports n2 as an error element;
    a new simulator on n2's port is used again without restarting the proxy."""
    cl = make_cluster(proxy_extra="backoff-max = 500")
    results, others, stop = {}, [], threading.Event()

    def long_job(i):
        c = Raw(cl.node_ports["n2"] if i % 2 else cl.port)
        try:
            if not i % 2:
                assert c.call("AUTH", "n2", "x") == "OK"
            results[i] = c.call("ZOS.CMD", "bash", '{"script": "sleep 30"}', "TIMEOUT", "25")
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)
        finally:
            c.close()

    def busy(node):
        r = cl.client(node)
        while not stop.is_set():
            v = r.execute_command("ZOS.CMD", "core.ping")
            others.append(v == ping_text(node))

    threads = [threading.Thread(target=long_job, args=(i,)) for i in range(20)]
    bg = [threading.Thread(target=busy, args=(n,)) for n in ("n1", "n3")]
    for t in threads + bg:
        t.start()
    sub = cl.client("n2").execute_command("ZOS.SUBMIT", "bash", '{"script": "sleep 30"}')
    cl.wait_accepted("n2", sub)
    time.sleep(1)
    cl.kill_node("n2")
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a ZOS.CMD on the killed node hangs"
    stop.set()
    for t in bg:
        t.join(30)
    assert len(results) == 20
    for i, v in results.items():  # the kill's error, not the timeout's
        assert isinstance(v, Err) and v.startswith("ERR node unavailable: "), (i, v)
    assert others and all(others), "n1/n3 answered wrongly while n2 died"

    # afterwards: prompt errors for n2, normal service for the others
    c = Raw(cl.port)
    assert c.call("AUTH", "n2", "x") == "OK"
    for verb in (("ZOS.CMD", "core.ping"), ("ZOS.SUBMIT", "core.ping"), ("ZOS.RESULT", sub),
                 ("ZOS.EXEC", "true"), ("ZOS.JOBS",), ("ZOS.KILL", sub),
                 ("ZOS.CONTAINER.EXEC", "1", "ls"), ("ZOS.FOLLOW", sub, "TIMEOUT", "3")):
        e = c.call(*verb)  # not a timeout's error: the node is known to be down
        assert isinstance(e, Err) and e.startswith("ERR node unavailable: "), (verb, e)
    out = c.call("ZOS.ALL", "ZOS.CMD", "core.ping")
    assert out[0::2] == list(NODES)
    assert out[1] == ping_text("n1") and out[5] == ping_text("n3")
    assert isinstance(out[3], Err) and out[3].startswith("ERR node unavailable: ")
    for n in ("n1", "n3"):
        assert cl.client(n).execute_command("ZOS.CMD", "core.ping") == ping_text(n)
        assert cl.client(n).execute_command("ZOS.EXEC", "echo still") == "still\n"

    # n2 comes back on the same port: the proxy reconnects by itself
    cl.restart_node("n2")
    deadline = time.monotonic() + 60  # a no-hang guard
    while True:
        v = c.call("ZOS.CMD", "core.ping", "TIMEOUT", "5")
        if v == ping_text("n2") or time.monotonic() > deadline:
            break
        assert isinstance(v, Err) and v.startswith("ERR node unavailable: "), v
        time.sleep(0.2)
    assert v == ping_text("n2")
    assert c.call("ZOS.EXEC", "echo back") == "back\n"
    c.close()
    cl.assert_proxy_alive()


def test_result_of_unknown_job_ids(make_cluster):
    """ZOS.RESULT <id nobody submitted>: "job <id> not found ...", every time, and the
    proxy survives.  (Found: use-after-free in job.c exists_cb -- finish() frees the op,
    then `if (op->jobs != NULL) dispatch(op->jobs)` reads it; the proxy crashes.)"""
    cl = make_cluster()
    c = Raw(cl.node_ports["n1"])
    try:
        # pipelined: each answer takes the 2 s grace given to jobs not yet taken by core0
        ids = [str(uuid.uuid4()) for _ in range(50)]
        for id in ids:
            c.send("ZOS.RESULT", id)
        for id in ids:
            assert c.read() == "ERR job %s not found (unknown id, or its result expired)" % id
        assert c.call("ZOS.CMD", "core.ping") == ping_text("n1")
    finally:
        c.close()
    cl.assert_proxy_alive()


def test_result_right_after_submit(make_cluster):
    """ZOS.SUBMIT replies with the id, so ZOS.RESULT <id> sent next must find the job
    (the node may not have popped it from core:default yet: that is still a job the
    proxy itself submitted), and must not kill the proxy."""
    cl = make_cluster()
    c = Raw(cl.node_ports["n1"])
    bad = []
    try:
        for _ in range(100):
            id = c.call("ZOS.SUBMIT", "core.ping")
            v = c.call("ZOS.RESULT", id, "TIMEOUT", "5")
            if isinstance(v, Err):
                bad.append(v)
            else:
                assert json.loads(v)["data"] == ping_text("n1")
    finally:
        c.close()
    assert not bad, "%d of 100 ZOS.RESULT right after ZOS.SUBMIT failed, e.g. %r" % (len(bad), bad[0])
    cl.assert_proxy_alive()


def test_node_stopped_fails_waiting_jobs(make_cluster):
    """SIGSTOP of n2's redis while ZOS.CMD jobs wait on it (on the job links, which see
    nothing wrong by themselves): the node's watch finds it hung and every waiting job
    gets an error; SIGCONT brings the node back for new jobs."""
    cl = make_cluster(proxy_extra="node-timeout = 1000\nconnect-timeout = 1000\n"
                                  "backoff-max = 500")
    redis_pid = [k for k in children(cl.sims["n2"].pid)
                 if open("/proc/%d/comm" % k).read().strip() == "redis-server"]
    assert len(redis_pid) == 1, redis_pid
    results = {}

    def job(i):
        c = Raw(cl.port)
        try:
            assert c.call("AUTH", "n2", "x") == "OK"
            results[i] = c.call("ZOS.CMD", "bash", '{"script": "sleep 60"}', "TIMEOUT", "50")
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)
        finally:
            c.close()

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)  # the jobs are submitted and waiting (a pause, not a bound)
    os.kill(redis_pid[0], signal.SIGSTOP)
    try:
        for t in threads:
            t.join(40)  # no-hang guard, far below the jobs' own 50 s
        assert all(not t.is_alive() for t in threads), results
        assert len(results) == 4, results
        for v in results.values():
            assert isinstance(v, Err) and "unavailable" in v, results
    finally:
        os.kill(redis_pid[0], signal.SIGCONT)
    r = cl.client("n2")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if r.execute_command("ZOS.CMD", "core.ping") == ping_text("n2"):
                break
        except Exception:  # noqa: BLE001 - reconnecting after SIGCONT
            time.sleep(0.2)
    else:
        raise AssertionError("n2 did not answer again after SIGCONT")

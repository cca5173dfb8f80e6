"""ZOS.AT and ZOS.ALL with job verbs, and many concurrent jobs over the three nodes."""
import json
import threading

from conftest import NODES, Err, ping_text
from zostest import run_threads


def test_all_cmd_core_ping_is_a_flat_node_reply_array(cluster, raw_conn):
    want = []
    for n in NODES:
        want += [n, ping_text(n)]
    assert raw_conn().call("ZOS.ALL", "ZOS.CMD", "core.ping") == want
    # a connection with a node selected gets the same, and keeps its node
    c = raw_conn("n2")
    assert c.call("ZOS.ALL", "ZOS.CMD", "core.ping") == want
    assert c.call("ZOS.CMD", "core.ping") == ping_text("n2")


def test_all_with_other_job_verbs(cluster, raw_conn):
    c = raw_conn()
    assert c.call("ZOS.ALL", "ZOS.EXEC", "echo", "x") == ["n1", "x\n", "n2", "x\n", "n3", "x\n"]
    out = c.call("ZOS.ALL", "ZOS.CMD", "corex.terminate", '{"container": 4343}')
    assert out[0::2] == list(NODES)
    assert out[1::2] == [Err("ERR job corex.terminate failed: ERROR code=500: no container "
                             "with id '4343'")] * 3
    out = c.call("ZOS.ALL", "ZOS.CMD", "info.version")
    assert [json.loads(v)["branch"] for v in out[1::2]] == ["b1", "b2", "b3"]
    out = c.call("ZOS.ALL", "ZOS.JOBS")
    assert all(isinstance(json.loads(v), list) for v in out[1::2])
    # argument errors are reported per node too
    out = c.call("ZOS.ALL", "ZOS.CMD", "core.ping", "[]")
    assert out[1::2] == [Err('ERR job arguments must be a JSON object, like {"name": "ls"}')] * 3


def test_at_runs_on_the_named_node(cluster, raw_conn):
    c = raw_conn()  # no node selected
    for n in NODES:
        assert c.call("ZOS.AT", n, "ZOS.CMD", "core.ping") == ping_text(n)
    assert c.call("ZOS.AT", "n2", "ZOS.EXEC", "exit 4") == "ERR command failed with exit status 4"
    assert json.loads(c.call("ZOS.AT", "n3", "ZOS.JOB", "core.ping"))["data"] == ping_text("n3")
    id = c.call("ZOS.AT", "n3", "ZOS.SUBMIT", "bash", '{"script": "echo at"}')
    cluster.wait_accepted("n3", id)
    assert json.loads(c.call("ZOS.AT", "n3", "ZOS.RESULT", id))["streams"] == ["at\n", ""]
    # still no node of its own afterwards
    assert c.call("ZOS.CMD", "core.ping").startswith("ERR no node selected: ")
    c1 = raw_conn("n1")
    assert c1.call("ZOS.AT", "n3", "ZOS.CMD", "core.ping") == ping_text("n3")
    assert c1.call("ZOS.CMD", "core.ping") == ping_text("n1")


def test_at_and_all_errors(cluster, raw_conn):
    c = raw_conn()
    assert c.call("ZOS.AT", "nX", "ZOS.CMD", "core.ping") == "ERR unknown node 'nX'"
    assert c.call("ZOS.AT", "n1") == "ERR wrong number of arguments for 'zos.at' command"
    assert c.call("ZOS.ALL") == "ERR wrong number of arguments for 'zos.all' command"
    out = c.call("ZOS.ALL", "ZOS.CMD")
    assert out[1::2] == [Err("ERR wrong number of arguments for 'zos.cmd' command")] * 3


def test_1000_concurrent_pings_over_3_nodes_from_50_connections(cluster):
    """50 client connections (threads), each pipelining 20 ZOS.CMD core.ping to its
    node (connection i -> node i % 3): 1,000 jobs in flight, all answered by the right
    node."""
    results, errors = {}, []
    start = threading.Barrier(50)

    def worker(i):
        node = NODES[i % 3]
        try:
            r = cluster.client(node, timeout=60)
            r.ping()
            p = r.pipeline(transaction=False)
            for _ in range(20):
                p.execute_command("ZOS.CMD", "core.ping")
            start.wait(30)
            results[i] = (node, p.execute(raise_on_error=False))
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append((i, repr(e)))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    run_threads(threads, 90)
    assert not any(t.is_alive() for t in threads), "hung: a client still waits after 90 s"
    assert not errors, errors[:5]
    assert len(results) == 50
    wrong = [(i, n, v) for i, (n, vs) in results.items() for v in vs if v != ping_text(n)]
    assert not wrong, "%d wrong replies, e.g. %r" % (len(wrong), wrong[:5])
    assert sum(len(vs) for _, vs in results.values()) == 1000
    cluster.assert_proxy_alive()


def test_concurrent_mixed_verbs_on_every_node(cluster):
    """Threads mixing ZOS.CMD, ZOS.EXEC, ZOS.JOB and ZOS.AT on all nodes at once."""
    errors = []

    def worker(i):
        node = NODES[i % 3]
        r = cluster.client(node)
        try:
            for k in range(10):
                assert r.execute_command("ZOS.EXEC", "echo %d-%d" % (i, k)) == "%d-%d\n" % (i, k)
                assert r.execute_command("ZOS.CMD", "core.ping") == ping_text(node)
                other = NODES[(i + k) % 3]
                assert r.execute_command("ZOS.AT", other, "ZOS.CMD", "core.ping") == ping_text(other)
                res = json.loads(r.execute_command("ZOS.JOB", "bash", '{"script": "exit %d"}' % (k % 2)))
                assert res["state"] == ("SUCCESS" if k % 2 == 0 else "ERROR")
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    run_threads(threads, 60)
    assert not errors, errors[:5]


def test_1000_concurrent_pings_on_one_node(cluster):
    """1,000 jobs in flight on one node (far more than its 16 job links): 20 connections
    pipelining 50 ZOS.CMD core.ping each to n3 (TLS + secret)."""
    results, errors = {}, []

    def worker(i):
        try:
            r = cluster.client("n3", timeout=60)
            p = r.pipeline(transaction=False)
            for _ in range(50):
                p.execute_command("ZOS.CMD", "core.ping")
            results[i] = p.execute(raise_on_error=False)
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    run_threads(threads, 90)
    assert not errors, errors[:5]
    replies = [v for vs in results.values() for v in vs]
    assert len(replies) == 1000
    assert replies == [ping_text("n3")] * 1000, [v for v in replies if v != ping_text("n3")][:5]

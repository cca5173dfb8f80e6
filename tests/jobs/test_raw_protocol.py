"""Old clients that speak the core0 job protocol themselves (core0-protocol.md §3.3, as
the 0-core py-client does) work unchanged through the proxy: RPUSH core:default,
BRPOPLPUSH result:<id>:flag, BRPOPLPUSH result:<id> -- including many at once, and
next to ZOS.* verbs on the same node."""
import json
import threading
import time

from conftest import NODE_SECRET, NODES, ping_text, raw_call, raw_request
from zostest import run_threads, sh_barrier


def test_raw_ping_through_a_node_port(cluster):
    """A client that cannot name a node: the node's own proxy port."""
    r = cluster.node_client("n1")
    res = raw_call(r, "core.ping")
    assert (res["state"], res["level"], res["data"]) == ("SUCCESS", 20, ping_text("n1"))
    assert json.loads(res["data"]).startswith("PONG Version: b1")


def test_raw_on_the_tls_node_through_the_main_port(cluster):
    """n3 is TLS + requirepass: the proxy does TLS and AUTH, the client speaks plain RESP."""
    r = cluster.client("n3")
    res = raw_call(r, "info.version")
    assert json.loads(res["data"]) == {"branch": "b3", "revision": "r3", "dirty": False}
    res = raw_call(r, "core.system", {"name": "echo", "args": ["tls"], "dir": "", "stdin": "",
                                      "env": None})
    assert res["streams"] == ["tls\n", ""] and res["code"] == 0
    # the node's secret never reaches the client; AUTH with it is not needed
    assert NODE_SECRET not in json.dumps(res)


def test_raw_py_client_state_checks(cluster):
    """EXISTS / TTL of the flag (§3.2) and non-destructive re-reads go through too."""
    r = cluster.node_client("n2")
    req = raw_request("bash", {"script": "sleep 1; echo done"})
    id = req["id"]
    r.rpush("core:default", json.dumps(req))
    assert r.brpoplpush("result:%s:flag" % id, "result:%s:flag" % id, 10) == ""
    assert r.ttl("result:%s:flag" % id) == -1  # running
    text = r.brpoplpush("result:%s" % id, "result:%s" % id, 10)
    assert json.loads(text)["streams"] == ["done\n", ""]
    assert 0 <= r.ttl("result:%s:flag" % id) <= 300
    assert r.brpoplpush("result:%s" % id, "result:%s" % id, 1) == text  # still there
    assert r.lrange("result:%s" % id, 0, -1) == [text]
    # an unknown job: no flag (py-client JobNotFoundError)
    assert r.exists("result:%s:flag" % "no-such-job-id") == 0
    # the result of the raw job is visible to ZOS.RESULT as well
    assert cluster.client("n2").execute_command("ZOS.RESULT", id) == text


def test_raw_stream_blpop(cluster):
    """A streamed job read with BLPOP stream:<id> (§5.2) through the proxy."""
    r = cluster.node_client("n1")
    req = raw_request("bash", {"script": "echo one; echo two"}, stream=True)
    r.rpush("core:default", json.dumps(req))
    texts = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        item = r.blpop("stream:%s" % req["id"], 2)
        if item is None:
            continue
        rec = json.loads(item[1])
        meta = rec["message"]["meta"]
        texts.append(rec["message"]["message"])
        if meta & 0x6:
            break
    assert "".join(texts) == "one\ntwo\n"


def test_raw_unknown_command_and_container_dispatch(cluster):
    r = cluster.client("n1")
    res = raw_call(r, "no.such.command")
    assert res["state"] == "UNKNOWN_CMD"
    cid = json.loads(raw_call(r, "corex.create", {"root": "https://hub.grid.tf/x.flist",
                                                   "nics": [{"type": "default"}]})["data"])
    try:
        inner = raw_request("core.system", {"name": "echo", "args": ["in", "box"]})
        outer = raw_call(r, "corex.dispatch", {"container": cid, "command": inner})
        assert json.loads(outer["data"]) == inner["id"]
        # second wait: the inner job
        id = inner["id"]
        assert r.brpoplpush("result:%s:flag" % id, "result:%s:flag" % id, 10) == ""
        res = json.loads(r.brpoplpush("result:%s" % id, "result:%s" % id, 10))
        assert res["streams"][0] == "in box\n" and res["container"] == cid
    finally:
        raw_call(r, "corex.terminate", {"container": cid})


def test_20_raw_clients_at_once(cluster):
    """20 old clients, each blocking in BRPOPLPUSH on its own long-ish job, on all three
    nodes at once, plus ZOS.CMD clients on the same nodes meanwhile.  Each job waits
    until all 20 have started (sh_barrier): they ran side by side, whatever the load."""
    results, errors = {}, []
    marks = cluster.procs.mkdtemp("barrier-")
    go = threading.Barrier(20 + 3)

    def old_client(i):
        node = NODES[i % 3]
        try:
            r = cluster.node_client(node) if i % 2 else cluster.client(node)
            go.wait(30)
            res = raw_call(r, "bash", {"script": sh_barrier(marks, 20, "client-%d" % i)},
                           timeout=60)
            pong = raw_call(r, "core.ping")
            results[i] = (res, pong, node)
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    def verb_client(node):
        try:
            r = cluster.client(node)
            go.wait(30)
            for _ in range(20):
                assert r.execute_command("ZOS.CMD", "core.ping") == ping_text(node)
        except Exception as e:  # noqa: BLE001
            errors.append((node, repr(e)))
    threads = [threading.Thread(target=old_client, args=(i,)) for i in range(20)]
    threads += [threading.Thread(target=verb_client, args=(n,)) for n in NODES]
    run_threads(threads, 90)
    assert not any(t.is_alive() for t in threads), "hung: a client still waits after 90 s"
    assert not errors, errors[:5]
    assert len(results) == 20
    for i, (res, pong, node) in results.items():  # each saw all 20 started
        assert res["state"] == "SUCCESS" and res["streams"] == ["20 client-%d\n" % i, ""], res
        assert pong["data"] == ping_text(node)

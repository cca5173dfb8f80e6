"""Long jobs through the proxy: timeouts, MAXTIME, ZOS.SUBMIT + ZOS.RESULT + ZOS.KILL,
ZOS.SUBMIT ... STREAM + ZOS.FOLLOW.  No assertion is about how long anything took: a
timeout shows in its error, a wait in what it returns; deadlines are no-hang guards only."""
import json
import os
import threading
import time
import uuid

from conftest import Err, ping_text


def test_exec_timeout_and_the_proxy_keeps_serving(cluster, raw_conn):
    c = raw_conn("n1")
    other = {}

    def pings():  # another client meanwhile, on the same node
        r = cluster.client("n1")
        other["replies"] = [r.execute_command("ZOS.CMD", "core.ping") for _ in range(20)]
    t = threading.Thread(target=pings)
    c.send("ZOS.EXEC", "sleep", "5", "TIMEOUT", "1")
    t.start()
    e = c.read()  # the timeout's error, not the job's success 5 s later
    t.join(20)
    assert isinstance(e, Err) and e.startswith("ERR timeout after 1 s waiting for job "), e
    assert not t.is_alive(), "hung: the other client's pings"
    assert other["replies"] == [ping_text("n1")] * 20
    # the same connection goes on working
    assert c.call("ZOS.CMD", "core.ping") == ping_text("n1")
    assert c.call("PING") == "PONG"


def test_timeout_keeps_replies_in_order(cluster, raw_conn):
    """A pipelined request behind a job that times out is answered after it, in order."""
    c = raw_conn("n2")
    c.send("ZOS.CMD", "bash", '{"script": "sleep 4"}', "TIMEOUT", "1")
    c.send("ZOS.CMD", "core.ping")
    c.send("ECHO", "last")
    first = c.read()
    assert isinstance(first, Err) and first.startswith("ERR timeout after 1 s waiting for job ")
    assert c.read() == ping_text("n2")
    assert c.read() == "last"


def test_maxtime_kills_the_process(cluster, raw_conn):
    c = raw_conn("n3")
    e = c.call("ZOS.CMD", "bash", '{"script": "sleep 8"}', "MAXTIME", "1", "TIMEOUT", "10")
    assert isinstance(e, Err) and e.startswith("ERR job bash failed: TIMEOUT code="), e
    res = json.loads(c.call("ZOS.JOB", "bash", '{"script": "sleep 8"}', "MAXTIME", "1"))
    assert res["state"] == "TIMEOUT"


def test_submit_result_kill_of_a_long_job(cluster, raw_conn):
    c = raw_conn("n1")
    id = c.call("ZOS.SUBMIT", "bash", '{"script": "echo started; sleep 30"}')
    assert isinstance(id, str) and len(id) == 36, id
    cluster.wait_accepted("n1", id)
    # still running: a short wait times out, the job goes on
    e = c.call("ZOS.RESULT", id, "TIMEOUT", "1")
    assert e == "ERR timeout after 1 s waiting for job %s" % id
    assert cluster.direct("n1").ttl("result:%s:flag" % id) == -1  # running (§3.2)
    assert id in [j["cmd"]["id"] for j in json.loads(c.call("ZOS.JOBS"))]
    # kill it: 1, and its result comes soon, as an error of a signalled process
    assert c.call("ZOS.KILL", id) == 1
    res = json.loads(c.call("ZOS.RESULT", id, "TIMEOUT", "10"))  # not its 30 s end
    assert res["id"] == id and res["state"] == "ERROR" and res["code"] == 999, res
    assert res["streams"][0] == "started\n"
    deadline = time.monotonic() + 30  # the job leaves job.list around its result
    while id in [j["cmd"]["id"] for j in json.loads(c.call("ZOS.JOBS"))]:
        assert time.monotonic() < deadline, "hung: job %s still listed after 30 s" % id
        time.sleep(0.05)
    assert c.call("ZOS.KILL", id) == 0  # no such job any more


def test_kill_with_signal_and_result_via_another_connection(cluster, raw_conn):
    id = raw_conn("n3").call("ZOS.SUBMIT", "core.system", '{"name": "sleep", "args": ["30"]}')
    cluster.wait_accepted("n3", id)
    waiter = raw_conn("n3")
    waiter.send("ZOS.RESULT", id, "TIMEOUT", "20")  # blocks until the kill
    time.sleep(0.3)  # most likely waiting by now; sent after the kill, it gets the result too
    assert raw_conn("n3").call("ZOS.KILL", id, "9") == 1
    res = json.loads(waiter.read())
    assert res["id"] == id and res["state"] == "ERROR"


def test_long_jobs_do_not_starve_short_ones(cluster):
    """More long waits than job links (16 per node): short jobs still finish while the
    long ones run.  The long jobs end only once the test opens their gate, after the
    short ones answered: short jobs queued behind them would hang, whatever the load."""
    gate = os.path.join(cluster.procs.mkdtemp("gate-"), "open")
    script = ("i=0; while [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
              "test -e %s" % (gate, gate))  # fails after 30 s without the gate
    ids = [cluster.client("n2").execute_command("ZOS.SUBMIT", "bash",
                                                json.dumps({"script": script}))
           for _ in range(24)]
    waiters = []
    for id in ids:
        cluster.wait_accepted("n2", id)
        w = cluster.Raw(cluster.node_ports["n2"])
        w.send("ZOS.RESULT", id, "TIMEOUT", "20")
        waiters.append(w)
    try:
        r = cluster.client("n2")
        for _ in range(5):
            assert r.execute_command("ZOS.CMD", "core.ping") == ping_text("n2")
        open(gate, "w").close()
        for w, id in zip(waiters, ids):
            assert json.loads(w.read())["state"] == "SUCCESS"
    finally:
        for w in waiters:
            w.close()


def test_submit_stream_and_follow(cluster, raw_conn):
    c = raw_conn("n1")
    id = c.call("ZOS.SUBMIT", "bash",
                '{"script": "echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c"}', "STREAM")
    out = c.call("ZOS.FOLLOW", id)
    assert isinstance(out, list) and len(out) % 2 == 0, out
    pairs = list(zip(out[0::2], out[1::2]))
    assert pairs[-1][0] == "result"
    res = json.loads(pairs[-1][1])
    assert res["id"] == id and res["state"] == "SUCCESS"
    assert res["streams"] == ["a\nc\n", "b\n"]
    records = pairs[:-1]
    assert "".join(t for k, t in records if k == "stdout") == "a\nc\n"
    assert "".join(t for k, t in records if k == "stderr") == "b\n"
    assert {k for k, _ in records} == {"stdout", "stderr"}
    # the stream was consumed; following again gives the result alone
    again = c.call("ZOS.FOLLOW", id, "TIMEOUT", "5")
    assert again[0] == "result" and json.loads(again[1]) == res


def test_follow_while_the_job_runs(cluster, raw_conn):
    c = raw_conn("n3")
    id = c.call("ZOS.SUBMIT", "bash", '{"script": "for i in 1 2 3; do echo line$i; sleep 0.4; done; exit 2"}',
                "STREAM")
    out = c.call("ZOS.FOLLOW", id, "TIMEOUT", "20")  # ends with the job's result: it waited
    assert "".join(t for k, t in zip(out[0::2], out[1::2]) if k == "stdout") == "line1\nline2\nline3\n"
    assert out[-2] == "result"
    res = json.loads(out[-1])
    assert (res["state"], res["code"]) == ("ERROR", 1002)


def test_follow_a_builtin_and_a_job_without_stream(cluster, raw_conn):
    c = raw_conn("n2")
    id = c.call("ZOS.SUBMIT", "core.ping", "STREAM")
    out = c.call("ZOS.FOLLOW", id)
    assert out[:2] == ["level20", ping_text("n2")]
    assert out[2] == "result" and json.loads(out[3])["data"] == ping_text("n2")
    id = c.call("ZOS.SUBMIT", "bash", '{"script": "echo quiet"}')  # no STREAM: the result only
    out = c.call("ZOS.FOLLOW", id, "TIMEOUT", "10")
    assert out[0] == "result" and json.loads(out[1])["streams"] == ["quiet\n", ""]


def test_follow_errors(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.FOLLOW", "bad id") == "ERR invalid job id 'bad id'"
    assert c.call("ZOS.FOLLOW", str(uuid.uuid4()), "TIMEOUT", "x") == \
        "ERR TIMEOUT needs a number of seconds from 1 to 86400"
    # an id nobody submitted: an error once TIMEOUT is over, never a hang
    id = str(uuid.uuid4())
    e = c.call("ZOS.FOLLOW", id, "TIMEOUT", "2")  # a hang: the connection's 20 s read timeout
    assert isinstance(e, Err) and id in e, e

"""The job engine against core0-protocol.md §2-§5 and Appendix A."""
import json
import threading
import time
import uuid

from conftest import Node, result_keys
from zostest import sh_gate


def test_ping_result_bytes_and_key_order(node):
    id = node.submit("core.ping")
    res = node.wait(id)
    raw = node.r.lindex("result:%s" % id, 0)
    assert list(json.loads(raw).keys()) == result_keys(streams=True)
    assert res["id"] == id and res["command"] == "core.ping"
    assert res["streams"] == ["", ""]
    assert res["level"] == 20 and res["state"] == "SUCCESS" and res["code"] == 0
    assert res["tags"] is None and res["container"] == 0
    assert isinstance(res["starttime"], int) and isinstance(res["time"], int)
    assert abs(res["starttime"] - time.time() * 1000) < 60000  # milliseconds since the epoch
    # data is JSON text inside a string: decoded twice (§10.1)
    assert res["data"].startswith('"PONG Version: ') and res["data"].endswith('"')
    assert json.loads(res["data"]).startswith("PONG Version: ")
    # exact compact encoding, as Go marshals it
    assert raw.startswith('{"id":"%s","command":"core.ping","data":"\\"PONG Version: ' % id)
    assert raw.endswith('"tags":null,"container":0}')


def test_flag_and_result_keys_and_ttls(node):
    id = node.submit("bash", {"script": "sleep 1"})
    assert node.wait_flag(id) == ""
    assert node.r.type("result:%s:flag" % id) == "list"
    assert node.r.lrange("result:%s:flag" % id, 0, -1) == [""]
    assert node.r.ttl("result:%s:flag" % id) == -1  # running: no TTL (§3.2)
    assert not node.r.exists("result:%s" % id)
    res = node.wait(id)
    assert res["state"] == "SUCCESS"
    assert node.r.type("result:%s" % id) == "list"
    assert node.r.llen("result:%s" % id) == 1
    assert 295 <= node.r.ttl("result:%s" % id) <= 300
    assert 295 <= node.r.ttl("result:%s:flag" % id) <= 300
    # non-destructive reads: the same value again
    assert json.loads(node.wait_raw(id)) == res
    assert node.r.llen("result:%s:flag" % id) == 1


def test_system_success_and_streams(node):
    res = node.call("core.system", {"name": "echo", "args": ["hi"]})
    assert list(res.keys()) == result_keys()
    assert res["streams"] == ["hi\n", ""]
    assert (res["data"], res["level"], res["state"], res["code"]) == ("", 0, "SUCCESS", 0)


def test_process_failure_code(node):
    res = node.call("bash", {"script": "echo hi; echo err >&2; exit 3"})
    assert res["streams"] == ["hi\n", "err\n"]
    assert (res["state"], res["code"], res["level"], res["data"]) == ("ERROR", 1003, 0, "")


def test_missing_binary_is_404_raw_without_streams(node):
    res = node.call("core.system", {"name": "zos-no-such-binary", "args": []})
    assert list(res.keys()) == result_keys(streams=False)
    assert res["data"] == 'exec: "zos-no-such-binary": executable file not found in $PATH'
    assert (res["state"], res["code"], res["level"]) == ("ERROR", 404, 0)
    res = node.call("core.system", {"name": "/nonexistent/bin"})
    assert res["data"] == ('exec: "/nonexistent/bin": stat /nonexistent/bin: '
                           'no such file or directory')
    assert res["code"] == 404 and "streams" not in res


def test_signal_is_999(node):
    res = node.call("bash", {"script": "kill -9 $$"})
    assert (res["state"], res["code"]) == ("ERROR", 999)


def test_stdin_env_dir(node, tmp_path):
    res = node.call("core.system", {"name": "cat", "args": [], "stdin": "from-stdin\n"})
    assert res["streams"] == ["from-stdin\n", ""]
    res = node.call("core.system", {"name": "sh", "args": ["-c", "echo $FOO; pwd"],
                                    "dir": str(tmp_path), "env": {"FOO": "bar"}})
    assert res["streams"] == ["bar\n%s\n" % tmp_path, ""]
    # env is appended to the node's own environment
    res = node.call("core.system", {"name": "sh", "args": ["-c", "test -n \"$PATH\" && echo ok"],
                                    "env": {"X": "1"}})
    assert res["streams"][0] == "ok\n"


def test_bash_is_sh_c(node):
    # argv[0] is the path exec.LookPath found for "sh"
    res = node.call("bash", {"script": "echo $0"})
    assert res["streams"][0].endswith("/sh\n")


def test_tags_are_echoed(node):
    res = node.call("core.ping", tags=["a", "b"])
    assert res["tags"] == ["a", "b"]


def test_unknown_command(node):
    id = node.submit("no.such.cmd", tags=["t"])
    assert node.wait_flag(id) == ""
    raw = node.wait_raw(id)
    assert raw == ('{"id":"%s","command":"no.such.cmd","data":"","level":0,'
                   '"state":"UNKNOWN_CMD","code":0,"starttime":0,"time":0,'
                   '"tags":["t"],"container":0}' % id)
    assert 295 <= node.r.ttl("result:%s:flag" % id) <= 300


def test_duplicate_id_is_dropped(node):
    id = node.submit("core.system", {"name": "echo", "args": ["first"]})
    first = node.wait(id)
    node.push(Node.request("core.system", {"name": "echo", "args": ["second"]}, id=id))
    # a marker job submitted after the duplicate: once it is done, the duplicate was seen
    node.call("core.ping")
    assert node.r.llen("result:%s" % id) == 1
    assert json.loads(node.r.lindex("result:%s" % id, 0)) == first
    assert first["streams"][0] == "first\n"


def test_missing_empty_and_bad_ids_are_dropped(node):
    node.push(json.dumps({"command": "core.ping", "arguments": {}}))
    node.push(Node.request("core.ping", id=""))
    node.push(json.dumps({"id": 42, "command": "core.ping", "arguments": {}}))
    node.push("{not json")
    before = set(node.r.keys("result:*"))
    node.call("core.ping")  # processed after all four (FIFO)
    new = set(node.r.keys("result:*")) - before
    assert len(new) == 2  # only the marker's flag and result
    assert not node.r.exists("result::flag") and not node.r.exists("result:42:flag")
    assert node.r.llen("core:default") == 0


def test_fifo_order_within_a_queue(node, tmp_path):
    """RPUSH + BLPOP is FIFO; a queue keeps that order while running."""
    out = tmp_path / "order"
    q = "fifo-%s" % uuid.uuid4()
    ids = [node.submit("bash", {"script": "echo %d >> %s" % (i, out)}, queue=q)
           for i in range(5)]
    for i in ids:
        assert node.wait(i)["state"] == "SUCCESS"
    assert out.read_text() == "0\n1\n2\n3\n4\n"


def test_max_time_timeout(node):
    res = node.call("core.system", {"name": "sleep", "args": ["5"]}, max_time=1)
    assert (res["state"], res["code"]) == ("TIMEOUT", 999)
    assert res["streams"] == ["", ""]
    assert 900 <= res["time"] < 3000


def test_max_time_does_not_stop_builtins(node):
    res = node.call("core.ping", max_time=1)
    assert res["state"] == "SUCCESS"


def test_long_job_does_not_block_short_one(node, tmp_path):
    gate = tmp_path / "gate"  # the slow job ends once the fast one is done, not before
    slow = node.submit("bash", {"script": sh_gate(gate, "true")})
    fast = node.submit("core.ping")
    res = node.wait(fast)
    assert res["state"] == "SUCCESS"
    assert node.r.ttl("result:%s:flag" % slow) == -1  # still running
    assert not node.r.exists("result:%s" % slow)
    gate.touch()
    assert node.wait(slow)["state"] == "SUCCESS"


def test_queue_serialises(node):
    q = "q-%s" % uuid.uuid4()
    a = node.submit("bash", {"script": "sleep 0.5; echo a"}, queue=q)
    b = node.submit("bash", {"script": "echo b"}, queue=q)
    c = node.submit("bash", {"script": "echo c"})  # no queue: runs at once
    rc = node.wait(c)
    ra, rb = node.wait(a), node.wait(b)
    assert rb["starttime"] >= ra["starttime"] + ra["time"]
    assert rc["starttime"] < ra["starttime"] + ra["time"]


def test_many_jobs_at_once(node):
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    pipe = node.r.pipeline(transaction=False)
    for i in ids:
        pipe.rpush("core:default", json.dumps(Node.request("core.ping", id=i)))
    pipe.execute()
    for i in ids:
        assert node.wait(i)["state"] == "SUCCESS"


def test_tagged_output_sets_level_and_data(node):
    res = node.call("bash", {"script": "echo plain; echo '20::\"single\"'; echo 9::boom"})
    assert res["streams"] == ["plain\n", ""]
    assert (res["level"], res["data"], res["critical"]) == (20, '"single"', "boom")
    assert list(res.keys()) == result_keys(critical=True)
    res = node.call("bash", {"script": "echo 20:::; echo '{\"a\": 1}'; echo :::"})
    assert res["level"] == 20
    assert res["data"] == '\n{"a": 1}'  # leading newline, stripped by clients
    assert json.loads(res["data"].strip()) == {"a": 1}
    res = node.call("bash", {"script": "echo 123::gone; echo kept"})
    assert res["streams"][0] == "kept\n"


def test_nil_arguments(node):
    # core.system (and extensions) panic: Appendix A n1
    nid = str(uuid.uuid4())
    node.push(json.dumps({"id": nid, "command": "core.system", "arguments": None}))
    res = node.wait(nid)
    assert list(res.keys()) == result_keys(streams=False, critical=True)
    assert res["critical"] == ("PANIC(runtime error: invalid memory address or nil "
                               "pointer dereference)")
    assert (res["state"], res["code"], res["level"], res["data"]) == ("ERROR", 0, 0, "")
    # builtins that read their arguments: a nil pointer error, code 500
    nid = str(uuid.uuid4())
    node.push(json.dumps({"id": nid, "command": "job.list"}))
    res = node.wait(nid)
    assert (res["state"], res["code"], res["level"]) == ("ERROR", 500, 20)
    assert "invalid memory address" in json.loads(res["data"])
    # commands that never read them are fine (§10.6)
    for cmd in ("core.ping", "info.version", "corex.list"):
        nid = str(uuid.uuid4())
        node.push(json.dumps({"id": nid, "command": cmd, "arguments": None}))
        assert node.wait(nid)["state"] == "SUCCESS"


def test_wrong_argument_type(node):
    msg, code = node.error("job.list", "notanobject")
    assert msg == "json: cannot unmarshal string into Go value of type builtin.jobArguments"
    assert code == 500


def test_stream_records_process(node):
    # Appendix A's script: "b" and "c" are written microseconds apart, to two pipes, and
    # still come in that order (Corrections 8)
    id = node.submit("bash", {"script": "echo a; sleep 0.2; echo b >&2; echo c"}, stream=True)
    res = node.wait(id)
    assert res["streams"] == ["a\nc\n", "b\n"]
    recs = [json.loads(x) for x in node.r.lrange("stream:%s" % id, 0, -1)]
    assert 55 <= node.r.ttl("stream:%s" % id) <= 60
    assert [(r["message"]["message"], r["message"]["meta"]) for r in recs] == [
        ("a\n", 65537), ("b\n", 131073), ("c\n", 65537), ("", 65539)]
    for r in recs:
        assert list(r.keys()) == ["core", "command", "message"]
        assert list(r["message"].keys()) == ["message", "epoch", "meta"]
        assert r["core"] == 0 and r["command"] == id
        assert abs(r["message"]["epoch"] / 1e9 - time.time()) < 60  # nanoseconds
    epochs = [r["message"]["epoch"] for r in recs]
    assert epochs == sorted(epochs)
    raw = node.r.lindex("stream:%s" % id, 0)
    assert raw.startswith('{"core":0,"command":"%s","message":{"message":"a\\n","epoch":' % id)


def interleaved(first_err, n):
    """A script that writes N lines to stdout and stderr by turns (stderr first when
    FIRST_ERR), each 1 ms or more after the one before; and the records it must give."""
    steps, want = [], []
    for i in range(n):
        err = (i + first_err) % 2
        steps.append("echo %s%d%s" % ("oe"[err], i, " >&2" if err else ""))
        want.append(("%s%d\n" % ("oe"[err], i), 131073 if err else 65537))
    return "; sleep 0.001; ".join(steps), want


def test_stream_keeps_write_order_across_stdout_and_stderr(node):
    """Corrections 8: stream records keep the order in which the process wrote them, across
    its two pipes, each with its own stream (meta) and text.  200 jobs, 8 at a time: a job
    whose records come out in another order fails, however rarely it happens."""
    runs, batch, bad = 200, 8, []
    for start in range(0, runs, batch):
        jobs = []
        for i in range(start, start + batch):
            code = 2 * (i % 2)  # stdout first and exit 0, or stderr first and exit 2
            script, want = interleaved(i % 2, 5)
            want.append(("", 65539 if code == 0 else 131077))
            jobs.append((node.submit("bash", {"script": script + "; exit %d" % code},
                                     stream=True), want, code))
        for id, want, code in jobs:
            res = node.wait(id, timeout=60)  # a no-hang guard only
            assert (res["state"], res["code"]) == (("SUCCESS", 0) if code == 0 else
                                                   ("ERROR", 1000 + code)), res
            recs = [json.loads(x)["message"] for x in node.r.lrange("stream:%s" % id, 0, -1)]
            got = [(m["message"], m["meta"]) for m in recs]
            if got != want:
                bad.append(got)
            # whatever the order, each stream of the result keeps its own lines
            assert res["streams"] == ["".join(t for t, m in want if m == 65537),
                                      "".join(t for t, m in want if m == 131073)]
            node.r.delete("stream:%s" % id)
    assert not bad, "%d of %d jobs gave their records out of order, e.g. %r" % (
        len(bad), runs, bad[:3])


def test_stream_end_marker_failure(node):
    id = node.submit("bash", {"script": "exit 2"}, stream=True)
    res = node.wait(id)
    assert (res["state"], res["code"]) == ("ERROR", 1002)
    last = json.loads(node.r.lindex("stream:%s" % id, -1))
    assert last["message"] == {"message": "", "epoch": last["message"]["epoch"], "meta": 131077}


def test_stream_end_marker_builtin(node):
    id = node.submit("core.ping", stream=True)
    res = node.wait(id)
    recs = [json.loads(x) for x in node.r.lrange("stream:%s" % id, 0, -1)]
    assert len(recs) == 1
    assert recs[0]["message"]["meta"] == 1310723
    assert recs[0]["message"]["message"] == res["data"]
    id = node.submit("job.list", "bad", stream=True)
    res = node.wait(id)
    rec = json.loads(node.r.lindex("stream:%s" % id, -1))
    assert rec["message"]["meta"] == 1310725 and rec["message"]["message"] == res["data"]


def test_stream_consumer_like_py_client(node):
    """BLPOP until meta & 0x6 (§5.2)."""
    id = node.submit("bash", {"script": "for i in 1 2 3; do echo $i; done"}, stream=True)
    out = []
    while True:
        item = node.r.blpop("stream:%s" % id, 10)
        assert item is not None
        msg = json.loads(item[1])["message"]
        if msg["meta"] & 0x6:
            break
        out.append(msg["message"])
    assert "".join(out) == "1\n2\n3\n"
    node.wait(id)


def test_stream_is_capped(node):
    id = node.submit("bash", {"script": "i=0; while [ $i -lt 1100 ]; do echo $i; "
                                        "i=$((i+1)); sleep 0.0005; done"}, stream=True)
    node.wait(id, timeout=30)
    assert node.r.llen("stream:%s" % id) <= 1000


def test_streams_keep_last_100_chunks(node):
    res = node.call("bash", {"script": "i=0; while [ $i -lt 150 ]; do echo $i; i=$((i+1)); "
                                       "sleep 0.002; done"})
    out = res["streams"][0]
    assert out.endswith("149\n")
    assert not out.startswith("0\n")  # the first chunks were dropped


def test_records_are_cut_per_line(node):
    """Corrections 1: a record per line, whatever the writes: three lines in one write are
    three records; a line written in two pieces is one record once its newline came; the
    text after the last newline is one record when the pipe ends."""
    script = "printf 'a\\nb\\nc\\n'; printf 'half'; sleep 0.2; printf ' line\\ntail'"
    id = node.submit("bash", {"script": script}, stream=True)
    res = node.wait(id)
    recs = [json.loads(x)["message"] for x in node.r.lrange("stream:%s" % id, 0, -1)]
    assert [(m["message"], m["meta"]) for m in recs] == [
        ("a\n", 65537), ("b\n", 65537), ("c\n", 65537), ("half line\n", 65537),
        ("tail", 65537), ("", 65539)]
    assert res["streams"] == ["a\nb\nc\nhalf line\ntail", ""]


def test_streams_keep_last_100_lines_of_one_write(node):
    """streams keeps the last 100 chunks, and a chunk is a line (Corrections 1): seq writes
    its 150 lines at once, and only the last 100 are kept."""
    res = node.call("core.system", {"name": "seq", "args": ["150"]})
    assert res["streams"][0] == "".join("%d\n" % i for i in range(51, 151))


def test_job_list_and_kill(node):
    long_id = node.submit("core.system", {"name": "sleep", "args": ["30"]}, tags=["tagA"])
    node.wait_flag(long_id)
    time.sleep(0.2)
    jobs = node.json("job.list", {"id": long_id})
    assert len(jobs) == 1
    j = jobs[0]
    assert list(j.keys()) == ["cpu", "rss", "vms", "swap", "starttime", "cmd", "pid"]
    assert j["cmd"] == {"id": long_id, "command": "core.system",
                        "arguments": {"name": "sleep", "args": ["30"]}, "queue": "",
                        "stream": False, "tags": ["tagA"]}
    assert list(j["cmd"].keys()) == ["id", "command", "arguments", "queue", "stream", "tags"]
    assert j["pid"] > 0 and j["rss"] > 0
    all_id = node.submit("job.list", {})
    all_jobs = json.loads(node.wait(all_id)["data"])
    by_id = {x["cmd"]["id"]: x for x in all_jobs}
    assert long_id in by_id and all_id in by_id  # includes itself
    assert by_id[all_id]["pid"] == 0
    msg, code = node.error("job.list", {"id": "nope"})
    assert (msg, code) == ("Process with id 'nope' doesn't exist", 500)

    assert node.json("job.kill", {"id": long_id, "signal": 15}) is True
    res = node.wait(long_id)
    assert (res["state"], res["code"], res["tags"]) == ("ERROR", 999, ["tagA"])
    assert res["streams"] == ["", ""]
    assert node.json("job.kill", {"id": "no-such-job", "signal": 0}) is False


def test_job_kill_default_signal_and_group(node):
    id = node.submit("bash", {"script": "sleep 30 & sleep 30; echo never"})
    node.wait_flag(id)
    time.sleep(0.2)
    assert node.json("job.kill", {"id": id}) is True  # signal 0 means SIGTERM
    res = node.wait(id, timeout=5)
    assert res["code"] == 999 and res["streams"][0] == ""


def test_max_restart(node):
    res = node.call("bash", {"script": "echo x"}, max_restart=3)
    assert res["state"] == "SUCCESS"
    t0 = time.monotonic()
    res = node.call("bash", {"script": "exit 1"}, max_restart=2)
    assert res["code"] == 1001
    assert time.monotonic() - t0 >= 0.9  # restarted once, 1 s apart


def test_recurring_until_unscheduled(node):
    id = node.submit("bash", {"script": "echo tick"}, recurring_period=1)
    node.wait_flag(id)
    time.sleep(0.3)
    assert node.r.ttl("result:%s:flag" % id) == -1
    assert not node.r.exists("result:%s" % id)
    assert node.json("job.unschedule", {"id": id}) is True
    res = node.wait(id, timeout=5)
    assert res["state"] == "SUCCESS"


def test_concurrent_readers_see_same_result(node):
    id = node.submit("bash", {"script": "sleep 0.3; echo x"})
    got = []

    def reader():
        r = Node(node.port)
        got.append(r.wait(id))
        r.r.close()

    ts = [threading.Thread(target=reader) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(got) == 4 and all(g == got[0] for g in got)

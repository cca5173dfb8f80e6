"""SUBSCRIBE zos:job:[<node>:]<id>: a job's output live, through any Redis client's
ordinary pub/sub API (issue 13, item 1, the proxy half).

The simulated nodes run real processes; the job prints a line with its own timestamp every
200 ms.  Assertions are on order and content: the first line reaches the subscriber before
the job wrote its last one (a property load cannot break), never on durations.
"""
import json
import subprocess
import time

import redis

from conftest import TIMEOUT

SCRIPT = ("for i in $(seq 1 15); do echo line $i $(date +%s.%N); sleep 0.2; done; "
          "echo oops >&2; exit 3")


def submit(cluster, node, script=SCRIPT):
    r = cluster.client(node)
    channel = r.execute_command("ZOS.EXEC", script, "STREAM")
    assert channel.startswith("zos:job:%s:" % node), channel
    return channel


def test_redis_py_subscriber_gets_records_live_then_the_result(cluster):
    channel = submit(cluster, "n1")
    p = cluster.client("n1").pubsub()
    p.subscribe(channel)
    first = p.get_message(timeout=TIMEOUT)
    assert first["type"] == "subscribe" and first["channel"] == channel and first["data"] == 1
    records, arrived, result = [], [], None
    deadline = time.monotonic() + 60  # no-hang guard only
    while time.monotonic() < deadline:
        m = p.get_message(timeout=TIMEOUT)
        if m is None:
            continue
        if m["type"] == "unsubscribe":
            assert m["channel"] == channel and m["data"] == 0
            break
        assert m["type"] == "message" and m["channel"] == channel, m
        body = json.loads(m["data"])
        if body["kind"] == "result":
            result = body["result"]
        else:
            records.append(body)
            arrived.append(time.time())
    assert result is not None, records
    assert (result["state"], result["code"]) == ("ERROR", 1003)
    out = [r["text"] for r in records if r["kind"] == "stdout"]
    err = [r["text"] for r in records if r["kind"] == "stderr"]
    assert "".join(err) == "oops\n"
    lines = "".join(out).splitlines()
    assert [l.split()[1] for l in lines] == [str(i) for i in range(1, 16)]
    # Live: the first line was in the subscriber's hands before the job wrote its last.
    last_written = float(lines[-1].split()[2])
    assert arrived[0] < last_written, (arrived[0], last_written)
    lag = arrived[0] - float(lines[0].split()[2])
    print("first line arrived %.3f s after it was written" % lag)
    # After the end the connection is an ordinary one again.
    p.close()


def test_redis_cli_subscribe_in_resp2(cluster):
    """redis-cli's own SUBSCRIBE mode prints the messages as they come."""
    channel = submit(cluster, "n2", "echo one; sleep 0.3; echo two")
    cmd = ["redis-cli", "-p", str(cluster.port), "--user", "n2", "--pass", "x", "--no-auth-warning",
           "SUBSCRIBE", channel]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=cluster.env)
    seen = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip("\n"))
            if line.startswith("unsubscribe"):
                break
    finally:
        cluster.procs.stop(proc)
    bodies = [json.loads(s) for s in seen if s.startswith("{")]
    assert [b["text"] for b in bodies if b["kind"] == "stdout"] == ["one\n", "two\n"], seen
    assert bodies[-1]["kind"] == "result" and bodies[-1]["result"]["state"] == "SUCCESS"
    assert seen[:3] == ["subscribe", channel, "1"], seen


def test_only_pubsub_commands_while_following_and_unsubscribe_stops_it(cluster, raw_conn):
    c = raw_conn("n1")
    channel = c.call("ZOS.EXEC", "sleep 30", "STREAM")
    c.send("SUBSCRIBE", channel)
    assert c.read() == ["subscribe", channel, 1]
    c.send("GET", "x")
    err = c.read()
    assert isinstance(err, str) and "only (P|S)SUBSCRIBE" in err, err
    c.send("PING")
    assert c.read() == ["pong", ""]
    c.send("UNSUBSCRIBE")
    assert c.read() == ["unsubscribe", channel, 0]
    assert c.call("PING") == "PONG"  # out of the mode
    assert c.call("ZOS.KILL", channel.rsplit(":", 1)[1]) in (0, 1)


def test_bad_job_channels_and_mixing_are_refused(cluster, raw_conn):
    c = raw_conn("n1")
    got = c.call("SUBSCRIBE", "zos:job:")
    assert isinstance(got, str) and "invalid job channel" in got, got
    got = c.call("SUBSCRIBE", "zos:job:abc", "news")
    assert isinstance(got, str) and "cannot be mixed" in got, got
    assert c.call("PING") == "PONG"  # never entered the mode
    # A job the node does not know: said so on the channel, which then ends.
    c.send("SUBSCRIBE", "zos:job:n2:no-such-job")
    assert c.read() == ["subscribe", "zos:job:n2:no-such-job", 1]
    kind, ch, body = c.read()
    assert (kind, ch) == ("message", "zos:job:n2:no-such-job")
    assert json.loads(body)["kind"] == "error" and "not found" in json.loads(body)["error"]
    assert c.read() == ["unsubscribe", "zos:job:n2:no-such-job", 0]

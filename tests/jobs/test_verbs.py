"""Success and failure paths of every ZOS.* job verb through zos-proxy, with the
exact reply forms of proxy/verbs_job.c, against simulated nodes (conftest.py)."""
import json
import re
import time
import uuid

import pytest

from conftest import Err, NODES, ping_text  # noqa: F401  (conftest of this directory)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# ---------------------------------------------------------------- ZOS.CMD

@pytest.mark.parametrize("node", NODES)
def test_cmd_core_ping_is_the_json_string_with_quotes(cluster, node):
    """Level-20 data decoded once more: core.ping returns the JSON string as the
    original tool printed it, quotes included; n3 is the TLS + secret node."""
    assert cluster.client(node).execute_command("ZOS.CMD", "core.ping") == ping_text(node)


def test_cmd_info_version_is_the_decoded_json_text(cluster, raw_conn):
    c = raw_conn("n1")
    text = c.call("ZOS.CMD", "info.version")
    assert text == '{"branch":"b1","revision":"r1","dirty":false}'
    assert json.loads(text) == {"branch": "b1", "revision": "r1", "dirty": False}
    # with an explicit empty argument object and a TIMEOUT the same
    assert c.call("ZOS.CMD", "info.version", "{}", "TIMEOUT", "5") == text
    assert c.call("zos.cmd", "info.version", "timeout", "5") == text  # case-insensitive


def test_cmd_other_level20_values(cluster):
    r = cluster.client("n2")
    state = json.loads(r.execute_command("ZOS.CMD", "core.state"))
    assert set(state) >= {"cpu", "rss", "vms", "swap"}
    assert isinstance(json.loads(r.execute_command("ZOS.CMD", "info.cpu")), list)
    # a builtin returning null: the JSON text "null"
    assert r.execute_command("ZOS.CMD", "corex.find", '{"tags": ["no-such-tag-xyz"]}') == "{}"


def test_cmd_process_output_and_tagged_level20(cluster):
    r = cluster.client("n1")
    assert r.execute_command("ZOS.CMD", "core.system", '{"name": "echo", "args": ["hi", "there"]}') \
        == "hi there\n"
    # a process that prints a level-20 tagged line: its data is decoded JSON text
    out = r.execute_command("ZOS.CMD", "core.system",
                            json.dumps({"name": "printf", "args": ["20::{\"a\": [1, 2]}\\n"]}))
    assert json.loads(out) == {"a": [1, 2]}
    # stdin reaches the process
    assert r.execute_command("ZOS.CMD", "core.system",
                             '{"name": "cat", "stdin": "from stdin"}') == "from stdin"


def test_cmd_with_stream_and_maxtime_options(cluster):
    """STREAM and MAXTIME are accepted by ZOS.CMD; the reply is the same output."""
    r = cluster.client("n2")
    assert r.execute_command("ZOS.CMD", "bash", '{"script": "echo s"}', "STREAM") == "s\n"
    assert r.execute_command("ZOS.CMD", "bash", '{"script": "echo m"}', "MAXTIME", "10",
                             "TIMEOUT", "10", "STREAM") == "m\n"
    assert r.execute_command("ZOS.CMD", "core.ping", "stream") == ping_text("n2")


def test_cmd_process_failure_error_form(cluster, raw_conn):
    c = raw_conn("n1")
    e = c.call("ZOS.CMD", "core.system", '{"name": "ls", "args": ["/nonexistent-zos-x"]}')
    assert isinstance(e, Err)
    assert e.startswith("ERR job core.system failed: ERROR code=1002: "), e
    assert "cannot access" in e and "/nonexistent-zos-x" in e and not e.endswith("\n")
    e = c.call("ZOS.CMD", "bash", '{"script": "echo out; echo bad thing >&2; exit 3"}')
    assert e == "ERR job bash failed: ERROR code=1003: bad thing"


def test_cmd_missing_binary_404(cluster, raw_conn):
    e = raw_conn("n2").call("ZOS.CMD", "core.system", '{"name": "nope-binary-zos"}')
    assert e == 'ERR job core.system failed: ERROR code=404: exec: "nope-binary-zos": ' \
                'executable file not found in $PATH'


def test_cmd_builtin_error_is_the_decoded_string(cluster, raw_conn):
    c = raw_conn("n3")
    assert c.call("ZOS.CMD", "corex.terminate", '{"container": 4242}') == \
        "ERR job corex.terminate failed: ERROR code=500: no container with id '4242'"
    assert c.call("ZOS.CMD", "job.list", '{"id": "nope"}') == \
        "ERR job job.list failed: ERROR code=500: Process with id 'nope' doesn't exist"


def test_cmd_unknown_command(cluster, raw_conn):
    assert raw_conn("n1").call("ZOS.CMD", "no.such.command") == \
        "ERR job no.such.command failed: UNKNOWN_CMD code=0"


@pytest.mark.parametrize("args, err", [
    ("{bad", "ERR invalid JSON arguments at byte "),
    ("", "ERR invalid JSON arguments at byte 0"),
    ("{} {}", "ERR invalid JSON arguments at byte "),
    ("BOGUS", "ERR invalid JSON arguments at byte 0: BOGUS"),
])
def test_cmd_invalid_json(cluster, raw_conn, args, err):
    e = raw_conn("n1").call("ZOS.CMD", "core.ping", args)
    assert isinstance(e, Err) and e.startswith(err), e


@pytest.mark.parametrize("args", ["[1, 2]", "null", '"text"', "42", "true"])
def test_cmd_args_must_be_an_object(cluster, raw_conn, args):
    assert raw_conn("n1").call("ZOS.CMD", "core.system", args) == \
        'ERR job arguments must be a JSON object, like {"name": "ls"}'


def test_cmd_unknown_option(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.CMD", "core.ping", "{}", "BOGUS") == \
        "ERR unknown option 'BOGUS' (expected TIMEOUT <s>, MAXTIME <s>, STREAM)"
    assert c.call("ZOS.CMD", "core.ping", "{}", "TIMEOUT", "5", "extra") == \
        "ERR unknown option 'extra' (expected TIMEOUT <s>, MAXTIME <s>, STREAM)"


@pytest.mark.parametrize("opt", ["TIMEOUT", "MAXTIME"])
@pytest.mark.parametrize("value", [None, "x", "0", "-3", "1.5", "86401", "99999999999999999999"])
def test_cmd_bad_timeout_value(cluster, raw_conn, opt, value):
    args = ["ZOS.CMD", "core.ping", opt] + ([value] if value is not None else [])
    assert raw_conn("n1").call(*args) == "ERR %s needs a number of seconds from 1 to 86400" % opt


def test_cmd_wrong_arity(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.CMD") == "ERR wrong number of arguments for 'zos.cmd' command"
    assert c.call("ZOS.JOB") == "ERR wrong number of arguments for 'zos.job' command"
    assert c.call("ZOS.SUBMIT") == "ERR wrong number of arguments for 'zos.submit' command"
    assert c.call("ZOS.RESULT") == "ERR wrong number of arguments for 'zos.result' command"
    assert c.call("ZOS.RESULT", "a", "TIMEOUT", "1", "x") == \
        "ERR wrong number of arguments for 'zos.result' command"
    assert c.call("ZOS.KILL") == "ERR wrong number of arguments for 'zos.kill' command"
    assert c.call("ZOS.KILL", "a", "9", "x") == "ERR wrong number of arguments for 'zos.kill' command"
    assert c.call("ZOS.JOBS", "x") == "ERR wrong number of arguments for 'zos.jobs' command"
    assert c.call("ZOS.EXEC") == "ERR wrong number of arguments for 'zos.exec' command"
    assert c.call("ZOS.EXEC", "TIMEOUT", "3") == "ERR wrong number of arguments for 'zos.exec' command"
    assert c.call("ZOS.CONTAINER.EXEC", "1") == \
        "ERR wrong number of arguments for 'zos.container.exec' command"
    assert c.call("ZOS.FOLLOW") == "ERR wrong number of arguments for 'zos.follow' command"
    # the connection is still fine
    assert c.call("ZOS.CMD", "core.ping") == ping_text("n1")


@pytest.mark.parametrize("verb", [
    ("ZOS.CMD", "core.ping"), ("ZOS.JOB", "core.ping"), ("ZOS.SUBMIT", "core.ping"),
    ("ZOS.RESULT", "8c43fc44-6740-4e3d-bbf2-b2652fad3829"),
    ("ZOS.KILL", "8c43fc44-6740-4e3d-bbf2-b2652fad3829"), ("ZOS.JOBS",), ("ZOS.EXEC", "true"),
    ("ZOS.CONTAINER.EXEC", "1", "ls"), ("ZOS.FOLLOW", "8c43fc44-6740-4e3d-bbf2-b2652fad3829"),
])
def test_no_node_selected(cluster, raw_conn, verb):
    """The main port has no default node: a connection that named none gets an error."""
    c = raw_conn()
    assert c.call(*verb).startswith("ERR no node selected: ")
    assert c.call("ZOS.USE", "n2") == "OK"  # and can pick one
    if verb[0] == "ZOS.CMD":
        assert c.call(*verb) == ping_text("n2")


def test_node_ports_and_zos_use(cluster):
    """A node's own listen port and ZOS.USE select the node the verbs act on."""
    for n in NODES:
        assert cluster.node_client(n).execute_command("ZOS.CMD", "core.ping") == ping_text(n)
    r = cluster.client(single_connection_client=True)
    for n in ("n3", "n1", "n2"):
        assert r.execute_command("ZOS.USE", n) == "OK"
        assert r.execute_command("ZOS.CMD", "core.ping") == ping_text(n)


# ---------------------------------------------------------------- ZOS.JOB

def test_job_returns_the_whole_result_object(cluster):
    text = cluster.client("n2").execute_command("ZOS.JOB", "core.ping")
    res = json.loads(text)
    assert UUID_RE.match(res["id"]), res["id"]
    assert res["command"] == "core.ping"
    assert res["data"] == ping_text("n2")          # still encoded: ZOS.JOB does not decode
    assert (res["level"], res["state"], res["code"], res["container"]) == (20, "SUCCESS", 0, 0)
    assert res["streams"] == ["", ""]
    assert text.startswith('{"id":"%s","command":"core.ping","data":"\\"PONG' % res["id"])


def test_job_of_a_failing_command_is_not_an_error(cluster):
    res = json.loads(cluster.client("n1").execute_command(
        "ZOS.JOB", "bash", '{"script": "echo o; echo e >&2; exit 3"}'))
    assert (res["state"], res["code"], res["level"]) == ("ERROR", 1003, 0)
    assert res["streams"] == ["o\n", "e\n"]
    res = json.loads(cluster.client("n1").execute_command("ZOS.JOB", "no.such.command"))
    assert res["state"] == "UNKNOWN_CMD" and "streams" not in res


def test_job_option_errors(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.JOB", "core.ping", "[]") == \
        'ERR job arguments must be a JSON object, like {"name": "ls"}'
    assert c.call("ZOS.JOB", "core.ping", "TIMEOUT", "nope") == \
        "ERR TIMEOUT needs a number of seconds from 1 to 86400"


# ---------------------------------------------------------------- ZOS.EXEC

def test_exec_joins_words_and_returns_stdout(cluster):
    r = cluster.client("n1")
    assert r.execute_command("ZOS.EXEC", "echo", "hello", "world") == "hello world\n"
    assert r.execute_command("ZOS.EXEC", "echo hello; echo world") == "hello\nworld\n"
    assert r.execute_command("ZOS.EXEC", "true") == ""
    assert r.execute_command("ZOS.EXEC", "echo", "x", "TIMEOUT", "5") == "x\n"
    assert cluster.client("n3").execute_command("ZOS.EXEC", "echo over tls") == "over tls\n"


def test_exec_failure_error_form(cluster, raw_conn):
    c = raw_conn("n2")
    assert c.call("ZOS.EXEC", "echo out; echo err >&2; exit 3") == \
        "ERR command failed with exit status 3: err"
    assert c.call("ZOS.EXEC", "exit 4") == "ERR command failed with exit status 4"
    e = c.call("ZOS.EXEC", "ls", "/nonexistent-zos-y")
    assert e.startswith("ERR command failed with exit status 2: ") and "/nonexistent-zos-y" in e
    assert c.call("ZOS.EXEC", "true", "TIMEOUT", "0") == \
        "ERR TIMEOUT needs a number of seconds from 1 to 86400"


# ---------------------------------------------------------------- ZOS.JOBS / ZOS.KILL / ZOS.RESULT

def test_jobs_lists_running_jobs(cluster):
    r = cluster.client("n1")
    id = r.execute_command("ZOS.SUBMIT", "bash", '{"script": "sleep 20"}')
    try:
        cluster.wait_accepted("n1", id)
        # the flag comes before the job is registered and its process spawned: poll
        deadline = time.monotonic() + 10
        while True:
            jobs = json.loads(r.execute_command("ZOS.JOBS"))
            assert isinstance(jobs, list)
            mine = [j for j in jobs if j["cmd"]["id"] == id]
            if (mine and mine[0]["pid"] > 0) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(mine) == 1 and mine[0]["cmd"]["command"] == "bash"
        assert mine[0]["pid"] > 0
        # ZOS.JOBS lists its own job.list builtin too
        assert any(j["cmd"]["command"] == "job.list" for j in jobs)
    finally:
        assert r.execute_command("ZOS.KILL", id, "9") == 1


def test_kill_errors(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.KILL", str(uuid.uuid4())) == 0  # no such job
    assert c.call("ZOS.KILL", str(uuid.uuid4()), "9") == 0
    for bad in ("0", "65", "x", "-1", "9x"):
        assert c.call("ZOS.KILL", str(uuid.uuid4()), bad) == "ERR signal must be a number from 1 to 64"
    assert c.call("ZOS.KILL", "bad id") == "ERR invalid job id 'bad id'"
    assert c.call("ZOS.KILL", "") == "ERR invalid job id ''"
    assert c.call("ZOS.KILL", "x" * 37) == "ERR invalid job id '%s'" % ("x" * 37)[:40]


def test_result_errors(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.RESULT", "bad id") == "ERR invalid job id 'bad id'"
    assert c.call("ZOS.RESULT", "a\tb") == "ERR invalid job id 'a\tb'"
    assert c.call("ZOS.RESULT", str(uuid.uuid4()), "TIMEOUT", "0") == \
        "ERR TIMEOUT needs a number of seconds from 1 to 86400"
    assert c.call("ZOS.RESULT", str(uuid.uuid4()), "BOGUS") == \
        "ERR unknown option 'BOGUS' (expected TIMEOUT <s>, MAXTIME <s>, STREAM)"


def test_result_fetched_again_later(cluster):
    """A finished job's result can be read again (it stays 300 s on the node)."""
    r = cluster.client("n3")
    id = r.execute_command("ZOS.SUBMIT", "bash", '{"script": "echo again"}')
    cluster.wait_accepted("n3", id)
    first = r.execute_command("ZOS.RESULT", id)
    assert json.loads(first)["streams"] == ["again\n", ""]
    assert r.execute_command("ZOS.RESULT", id) == first
    assert cluster.client("n3").execute_command("ZOS.RESULT", id, "TIMEOUT", "3") == first
    # the node still holds the result: the reads were not destructive
    assert cluster.direct("n3").llen("result:%s" % id) == 1


def test_submit_errors(cluster, raw_conn):
    c = raw_conn("n2")
    assert c.call("ZOS.SUBMIT", "bash", "{bad").startswith("ERR invalid JSON arguments at byte ")
    assert c.call("ZOS.SUBMIT", "bash", "[]") == \
        'ERR job arguments must be a JSON object, like {"name": "ls"}'
    assert c.call("ZOS.SUBMIT", "bash", "{}", "NOPE") == \
        "ERR unknown option 'NOPE' (expected TIMEOUT <s>, MAXTIME <s>, STREAM)"
    id = c.call("ZOS.SUBMIT", "core.ping")
    assert UUID_RE.match(id), id


def test_exec_with_a_timeout_command_word(cluster, raw_conn):
    """Only a trailing TIMEOUT <s> is the option: the `timeout` tool may be used as a word."""
    c = raw_conn("n2")
    assert c.call("ZOS.EXEC", "timeout", "1", "sleep", "5") == \
        "ERR command failed with exit status 124"
    assert c.call("ZOS.EXEC", "timeout 1 sleep 5") == "ERR command failed with exit status 124"
    assert c.call("ZOS.EXEC", "echo", "TIMEOUT", "x") == \
        "ERR TIMEOUT needs a number of seconds from 1 to 86400"
    assert c.call("ZOS.EXEC", "echo", "timeout", "TIMEOUT", "5") == "timeout\n"
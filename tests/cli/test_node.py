"""zos ping / cmd / exec against simulated nodes: output formats, exit codes, auth, the spinner."""
import json
import os
import pty
import select
import subprocess
import time

import pytest

import zostest
from conftest import NODE_SECRET, node_section

PONG = '"PONG Version: master @Revision: 5ca6d8a630d2df93873f9fb64fe9194a5bb4203e"\n'


def pretty(value):
    """What the original printed (Nim's json.pretty == Python's indent=2)."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def test_ping_plain_and_tls_with_secret(zos):
    assert zos.ok("ping").out == PONG
    r = zos.ok("--node", "secure", "ping")
    assert r.out == PONG and r.err == ""


def test_cmd_prints_pretty_json_with_two_spaces(zos):
    r = zos.ok("cmd", "info.version")
    assert r.out == pretty(r.json())
    assert r.out.startswith('{\n  "branch": "master",\n')
    # arrays of objects, nested arrays, empty containers: one element per line
    r = zos.ok("cmd", "info.nic")
    nics = r.json()
    assert isinstance(nics, list) and nics
    assert r.out == pretty(nics)
    assert r.out.startswith("[\n  {\n    \"mtu\": ")
    r = zos.ok("cmd", "core.ping")
    assert r.out == PONG


def test_cmd_sends_an_object_by_default(zos):
    """The original's --jsonargs default was the JSON *string* "{}" (§10.7)."""
    r = zos.ok("cmd", "job.list")  # decodes its arguments: fails on a string
    jobs = r.json()
    me = [j for j in jobs if j["cmd"]["command"] == "job.list"]
    assert me and me[0]["cmd"]["arguments"] == {}


def test_cmd_with_jsonargs(zos):
    r = zos.ok("cmd", "core.system", "--jsonargs", '{"name": "echo", "args": ["hello", "world"]}')
    assert r.out == "hello world\n"
    r = zos.ok("cmd", "core.system", '--jsonargs={"name": "sh", "args": ["-c", "echo oops >&2"]}')
    assert r.out == "" and r.err == "oops\n"


@pytest.mark.parametrize("text,message", [
    ('{"name": ', "--jsonargs: invalid JSON: unexpected end at byte 9"),
    ('{"name" "x"}', "--jsonargs: invalid JSON at byte 8: '\"x\"}'"),
    ("[1, 2]", "--jsonargs: expected a JSON object"),
    ('"{}"', "--jsonargs: expected a JSON object"),
    ("{} trailing", "--jsonargs: invalid JSON at byte 3"),
    ("", "--jsonargs: invalid JSON"),
])
def test_cmd_rejects_bad_json(zos, text, message):
    r = zos.run("cmd", "core.system", "--jsonargs=" + text)
    assert r.rc == 15, r
    assert message in r.err, r
    assert r.out == ""


def test_cmd_usage_errors(zos):
    r = zos.run("cmd")
    assert r.rc == 15 and "which core0 command" in r.err and "usage: zos cmd" in r.err
    r = zos.run("cmd", "a", "b")
    assert r.rc == 15 and "unexpected argument 'b'" in r.err
    r = zos.run("cmd", "core.ping", "--jsonargs")
    assert r.rc == 15 and "needs a value" in r.err


def test_cmd_failures_exit_24(zos):
    r = zos.run("cmd", "no.such.command")
    assert r.rc == 24
    assert "the node does not know the command 'no.such.command'" in r.err
    r = zos.run("cmd", "corex.terminate", "--jsonargs", '{"container": 4242}')
    assert r.rc == 24
    assert "corex.terminate failed: ERROR code=500: no container with id '4242'" in r.err
    r = zos.run("cmd", "core.system", "--jsonargs", '{"name": "sh", "args": ["-c", "echo o; echo e >&2; exit 7"]}')
    assert r.rc == 24
    assert r.out == "o\n"
    assert r.err == "e\nzos: core.system failed: exit status 7\n"


def test_exec_runs_sh_on_the_node(zos):
    r = zos.ok("exec", "echo one; echo two")
    assert r.out == "one\ntwo\n" and r.err == ""
    # words are joined as a command line, options after the first word are the command's
    r = zos.ok("exec", "echo", "a", "b")
    assert r.out == "a b\n"
    r = zos.ok("exec", "ls", "-d", "/")
    assert r.out == "/\n"
    r = zos.run("exec", "echo partial; echo bad >&2; exit 3")
    assert r.rc == 24
    assert r.out == "partial\n"
    assert r.err == "bad\nzos: exec failed: exit status 3\n"
    r = zos.run("exec")
    assert r.rc == 15 and "which command" in r.err


def test_timeout_waiting_for_a_job(zos):
    r = zos.run("--timeout", "1", "exec", "sleep 5")  # the timeout, not the job's end
    assert r.rc == 24, r
    assert "timeout after 1 s waiting for job" in r.err


def test_unreachable_node_exits_12(zos):
    port = zostest.free_port()
    zos.write_config("[app]\ndefaultzos = gone\n\n" + node_section("gone", port))
    r = zos.run("ping")
    assert r.rc == 12, r
    assert r.err == "zos: cannot reach node 'gone' at 127.0.0.1:%d: connection refused\n" % port
    r = zos.run("container", "list")
    assert r.rc == 12


def test_unresolvable_address_exits_12(zos):
    zos.write_config("[app]\ndefaultzos = nx\n\n[nx]\naddress = no-such-host.invalid\nport = 6379\n")
    r = zos.run("ping")
    assert r.rc == 12, r
    assert "cannot reach node 'nx' at no-such-host.invalid:6379: cannot resolve" in r.err


def test_unreachable_tls_node_exits_12(zos):
    zos.write_config("[app]\ndefaultzos = gone\n\n" + node_section("gone", zostest.free_port(), tls=True))
    r = zos.run("ping")
    assert r.rc == 12, r
    assert r.err.startswith("zos: cannot reach node 'gone' at 127.0.0.1:")


def test_a_redis_without_core0_exits_12(zos, fnprocs):
    """PONG, but nobody takes the job from core:default (takes the 10 s core0 is given)."""
    _, port, _ = fnprocs.redis()
    zos.write_config("[app]\ndefaultzos = r\n\n" + node_section("r", port))
    r = zos.run("ping")
    assert r.rc == 12, r
    assert "is core0 running?" in r.err


def test_secret_refused_or_missing_exits_26(zos, nodes):
    zos.write_config("[app]\ndefaultzos = s\n\n" +
                     node_section("s", nodes.secure, tls=True, secret="wrong-jwt"))
    r = zos.run("ping")
    assert r.rc == 26, r
    assert "AUTH failed: WRONGPASS" in r.err and "wrong-jwt" not in r.err
    # ZOS_JWT overrides the configured secret
    r = zos.run("ping", env={"ZOS_JWT": NODE_SECRET})
    assert r.rc == 0 and r.out == PONG
    assert NODE_SECRET not in r.err
    # no secret at all: the node answers NOAUTH to PING
    zos.write_config("[app]\ndefaultzos = s\n\n" + node_section("s", nodes.secure, tls=True))
    r = zos.run("ping")
    assert r.rc == 26 and "NOAUTH" in r.err
    assert zos.ok("ping", env={"ZOS_JWT": NODE_SECRET}).out == PONG


def test_no_pong_exits_27(zos, fnprocs):
    """A redis that answers PING with something else than PONG."""
    _, port, _ = fnprocs.redis(extra=["--rename-command", "PING", "NOTPING"])
    zos.write_config("[app]\ndefaultzos = r\n\n" + node_section("r", port))
    r = zos.run("ping")
    assert r.rc == 27, r
    assert "did not answer PONG" in r.err


def test_node_option_and_unknown_node(zos):
    assert zos.ok("--node", "secure", "exec", "echo hi").out == "hi\n"
    assert zos.ok("--node=secure", "ping").out == PONG
    r = zos.run("--node", "ghost", "ping")
    assert r.rc == 17
    assert "no node named 'ghost'" in r.err


def test_no_default_node_among_several(zos, nodes):
    zos.write_config(node_section("a", nodes.plain) + node_section("b", nodes.plain))
    r = zos.run("ping")
    assert r.rc == 5 and "zos setdefault" in r.err
    # the only node is the default one
    zos.write_config(node_section("only", nodes.plain))
    assert zos.ok("ping").out == PONG


def _run_on_pty(argv, env, timeout=20):
    """Runs ARGV with stdout and stderr on a pty; returns (rc, everything written)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif p.poll() is not None:
            break
    rc = p.wait(timeout=timeout)
    os.close(master)
    return rc, data.decode(errors="replace")


def test_spinner_on_a_terminal_only(zos):
    argv = [zostest.CLI_BIN, "exec", "sleep 1; echo done"]
    rc, text = _run_on_pty(argv, zos.env)
    assert rc == 0, text
    assert "waiting for bash" in text
    assert "\r\x1b[K" in text          # the spinner line is cleared
    assert text.rstrip().endswith("done")
    r = zos.ok("exec", "sleep 1; echo done")  # pipes: nothing but the output
    assert r.out == "done\n" and r.err == ""

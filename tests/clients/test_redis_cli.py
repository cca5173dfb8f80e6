"""redis-cli -3 (RESP3 from the command line) through zos-proxy: `--user NODE --pass PW`
names the node; what redis-cli prints through the proxy is what it prints talking to the
node directly (maps as `1# "a" => "1"`, sets as `1~`, doubles as `(double)`)."""
import os
import select
import subprocess
import time

import pytest

from conftest import NODE_SECRET, TIMEOUT, need_exe

pytestmark = pytest.mark.usefixtures("_redis_cli")


@pytest.fixture(scope="module")
def _redis_cli():
    need_exe("redis-cli", "redis-tools")


def proxy_args(stack, node):
    return ["-p", str(stack.port), "--user", node, "--pass", stack.password(node), "--no-auth-warning"]


def direct_args(stack, node):
    if node == "plain":
        return ["-p", str(stack.plain_port)]
    return ["--tls", "--insecure", "-p", str(stack.tls_port), "-a", NODE_SECRET, "--no-auth-warning"]


def cli(stack, args, *cmd):
    r = subprocess.run(["redis-cli", "-h", "127.0.0.1"] + args + [str(c) for c in cmd],
                       capture_output=True, text=True, timeout=60, env=stack.lab.env)
    assert r.returncode == 0, "redis-cli %s: exit %s\n%s%s" % (cmd, r.returncode, r.stdout, r.stderr)
    return r.stdout


def seed(stack, node, k):
    d = stack.direct(node)
    d.hset(k + "h", mapping={"a": "1", "b": "2"})
    d.zadd(k + "z", {"m": 1.5, "n": 2})
    d.sadd(k + "s", "x", "y", "z")
    d.set(k + "str", "plain value")


def resp3_commands(k):
    return [
        ("HGETALL", k + "h"),
        ("ZSCORE", k + "z", "m"),
        ("ZRANGE", k + "z", 0, -1, "WITHSCORES"),
        ("SMEMBERS", k + "s"),
        ("GET", k + "missing"),
        ("GET", k + "str"),
        ("TYPE", k + "h"),
        ("CONFIG", "GET", "maxmemory-policy"),
        ("EVAL", "return {double=3.5}", 0),
        ("EVAL", "redis.setresp(3); return redis.call('HGETALL', KEYS[1])", 1, k + "h"),
        ("HMGET", k + "h", "a", "nope"),
    ]


def test_redis_cli_3_prints_what_the_node_prints(stack, node, uniq):
    seed(stack, node, uniq)
    for cmd in resp3_commands(uniq):
        via = cli(stack, ["-3", "--no-raw"] + proxy_args(stack, node), *cmd)
        direct = cli(stack, ["-3", "--no-raw"] + direct_args(stack, node), *cmd)
        assert via == direct, "redis-cli -3 %s through the proxy:\n%s\ndirect:\n%s" % (cmd, via, direct)
    # and it really is RESP3 output
    out = cli(stack, ["-3", "--no-raw"] + proxy_args(stack, node), "HGETALL", uniq + "h")
    assert out.splitlines() == ['1# "a" => "1"', '2# "b" => "2"'], out
    assert cli(stack, ["-3", "--no-raw"] + proxy_args(stack, node), "ZSCORE", uniq + "z", "m") == "(double) 1.5\n"
    assert cli(stack, ["-3", "--no-raw"] + proxy_args(stack, node), "GET", "clients:whoami") == '"%s"\n' % node


def test_redis_cli_without_3_stays_resp2(stack, node, uniq):
    seed(stack, node, uniq)
    out = cli(stack, ["--no-raw"] + proxy_args(stack, node), "HGETALL", uniq + "h")
    assert out.splitlines() == ['1) "a"', '2) "1"', '3) "b"', '4) "2"'], out
    assert cli(stack, ["--no-raw"] + proxy_args(stack, node), "ZSCORE", uniq + "z", "m") == '"1.5"\n'


def test_redis_cli_3_hello_is_a_resp3_map(stack, node):
    out = cli(stack, ["-3", "--no-raw"] + proxy_args(stack, node), "HELLO", 3)
    lines = out.splitlines()
    assert lines and all("# " in l and " => " in l for l in lines), out
    assert '"proto" => (integer) 3' in out, out


def _read_until(proc, needle, timeout=TIMEOUT):
    """stdout of PROC up to and including the line NEEDLE (a no-hang guard of TIMEOUT)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("redis-cli printed no %r; got %r" % (needle, buf))
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError("redis-cli exited (%s) before %r; got %r"
                                     % (proc.wait(), needle, buf))
            buf += chunk
    return buf.decode()


def test_redis_cli_3_subscribe_gets_pushes(stack, node, uniq):
    ch = uniq + "ch"
    argv = ["redis-cli", "-h", "127.0.0.1", "-3", "--no-raw"] + proxy_args(stack, node) + ["SUBSCRIBE", ch]
    proc = stack.lab.procs.start(argv, stdout=subprocess.PIPE, env=stack.lab.env)
    try:
        first = _read_until(proc, "(integer) 1")
        pub = stack.client(node)
        for _ in range(100):
            if pub.publish(ch, "hello") >= 1:
                break
            time.sleep(0.1)
        out = first + _read_until(proc, '"hello"')
    finally:
        stack.lab.procs.stop(proc)
    lines = [l for l in out.splitlines() if l and not l.startswith("Reading messages")]
    assert lines == ['1) "subscribe"', '2) "%s"' % ch, '3) (integer) 1',
                     '1) "message"', '2) "%s"' % ch, '3) "hello"'], out

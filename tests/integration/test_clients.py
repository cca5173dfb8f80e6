"""redis-cli (as a subprocess) and redis-py through the proxy, reaching both nodes."""
import os

import redis

from conftest import PROXY_PASS, SECURE_PASS


def cli_lines(res):
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_redis_cli_reaches_both_nodes_by_name(lab, open_proxy, nodes, uniq):
    p = str(open_proxy.port)
    k = uniq + "k"
    assert cli_lines(lab.redis_cli(["-p", p, "ping"])) == ["PONG"]
    assert cli_lines(lab.redis_cli(["-p", p, "set", k, "v-plain"])) == ["OK"]
    # --user/--pass is AUTH <node> <password>: the username names the node
    assert cli_lines(lab.redis_cli(["--no-auth-warning", "-p", p, "--user", "secure",
                                    "--pass", "x", "set", k, "v-secure"])) == ["OK"]
    assert nodes.plain().get(k) == "v-plain"
    assert nodes.secure().get(k) == "v-secure"
    assert cli_lines(lab.redis_cli(["-p", p, "get", k])) == ["v-plain"]
    assert cli_lines(lab.redis_cli(["-p", p, "zos.at", "secure", "get", k])) == ["v-secure"]
    assert cli_lines(lab.redis_cli(["-p", p, "zos.all", "get", k])) == [
        "plain", "v-plain", "secure", "v-secure"]


def test_redis_cli_reads_commands_from_stdin(lab, open_proxy, nodes, uniq):
    k = uniq + "k"
    script = "SET %s 41\nINCR %s\nZOS.USE secure\nSET %s s\nGET %s\nZOS.AT plain GET %s\n" % (
        k, k, k, k, k)
    out = cli_lines(lab.redis_cli(["-p", str(open_proxy.port)], input=script))
    assert out == ["OK", "42", "OK", "OK", "s", "42"]
    assert nodes.secure().get(k) == "s"


def test_redis_cli_pipe_mass_insert(lab, open_proxy, nodes, uniq):
    """redis-cli --pipe: 10k SETs in RESP and its closing ECHO, all answered."""
    n = 10000
    parts = []
    for i in range(n):
        key, val = "%spipe:%d" % (uniq, i), "v%d" % i
        parts.append("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(val), val))
    res = lab.redis_cli(["-p", str(open_proxy.port), "--pipe"], input="".join(parts), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "errors: 0, replies: %d" % n in res.stdout, res.stdout
    assert nodes.plain().get(uniq + "pipe:%d" % (n - 1)) == "v%d" % (n - 1)


def test_redis_cli_unix_socket_and_url(lab, open_proxy, locked_proxy, nodes, uniq):
    k = uniq + "k"
    nodes.secure().set(k, "on-secure")
    assert cli_lines(lab.redis_cli(["-s", open_proxy.unixsocket, "zos.at", "secure", "get", k])) == [
        "on-secure"]
    url = "redis://secure:%s@127.0.0.1:%d" % (SECURE_PASS, locked_proxy.port)
    assert cli_lines(lab.redis_cli(["--no-auth-warning", "-u", url, "get", k])) == ["on-secure"]
    out = cli_lines(lab.redis_cli(["-p", str(locked_proxy.port), "get", k]))
    assert out and out[0].startswith("NOAUTH"), out
    out = cli_lines(lab.redis_cli(["--no-auth-warning", "-p", str(locked_proxy.port), "-a",
                                   PROXY_PASS, "zos.at", "secure", "get", k]))
    assert out == ["on-secure"]


def test_redis_cli_info_has_proxy_section(lab, open_proxy):
    out = lab.redis_cli(["-p", str(open_proxy.port), "info"]).stdout
    assert "# Proxy" in out
    assert "node_plain:" in out and "node_secure:" in out


def test_redis_py_data_types_on_both_nodes(open_proxy, nodes, uniq):
    for node, direct in (("plain", nodes.plain()), ("secure", nodes.secure())):
        r = open_proxy.client(username=node, password="any")
        k = uniq + node
        r.hset(k + ":h", mapping={"a": "1", "b": "2"})
        assert r.hgetall(k + ":h") == {"a": "1", "b": "2"}
        r.rpush(k + ":l", "x", "y", "z")
        assert r.lrange(k + ":l", 0, -1) == ["x", "y", "z"]
        assert r.incrby(k + ":n", 5) == 5
        r.set(k + ":e", "v", ex=100)
        assert 0 < r.ttl(k + ":e") <= 100
        assert r.exists(k + ":h", k + ":missing") == 1
        assert r.get(k + ":missing") is None
        # what the proxy wrote landed on that node and only there
        assert direct.lrange(k + ":l", 0, -1) == ["x", "y", "z"]
        r.close()
    assert nodes.plain().exists(uniq + "secure:h") == 0
    assert nodes.secure().exists(uniq + "plain:h") == 0


def test_redis_py_binary_values(open_proxy, uniq):
    blob = bytes(range(256)) * 16 + b"\r\n*1\r\n$3\r\n\x00"
    for node in ("plain", "secure"):
        r = open_proxy.client(username=node, password="x", decode_responses=False)
        r.set(uniq + "blob", blob)
        assert r.get(uniq + "blob") == blob
        r.close()


def test_redis_py_values_over_256k(open_proxy, uniq):
    """Values well under max-bulk (512m by default) of 256 KiB and more."""
    for node in ("plain", "secure"):
        r = open_proxy.client(username=node, password="x", decode_responses=False,
                              socket_timeout=10)
        for size in (200 * 1024, 256 * 1024, 3 * 1024 * 1024):
            big = os.urandom(size)
            r.set(uniq + "big", big)
            assert r.get(uniq + "big") == big, (node, size)
            assert r.strlen(uniq + "big") == size
        r.close()


def test_redis_py_errors_from_node_pass_through(open_proxy, uniq):
    r = open_proxy.client()
    r.rpush(uniq + "list", "a")
    try:
        r.get(uniq + "list")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE")
    else:
        raise AssertionError("GET on a list did not fail")
    try:
        r.execute_command("NOSUCHCOMMAND", "x")
    except redis.ResponseError as e:
        assert "unknown command" in str(e).lower()
    else:
        raise AssertionError("an unknown command did not fail")
    assert r.ping() is True  # the connection is still usable

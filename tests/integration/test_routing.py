"""Routing to named nodes and who may use them: AUTH node pass, URLs, ZOS.USE/AT/ALL,
requirepass, per-node passwords, per-node listen ports, the unix socket."""
import pytest
import redis

from conftest import PROXY_PASS, SECURE_PASS


def test_auth_username_names_the_node(open_proxy, nodes, uniq):
    k = uniq + "k"
    r = open_proxy.client(username="secure", password="whatever")
    assert r.set(k, "via-auth") is True
    assert nodes.secure().get(k) == "via-auth"
    assert nodes.plain().get(k) is None
    d = open_proxy.client()  # no AUTH: the default node
    assert d.get(k) is None
    d.set(k, "default")
    assert nodes.plain().get(k) == "default"


def test_url_with_node_and_password(locked_proxy, nodes, uniq):
    k = uniq + "k"
    nodes.secure().set(k, "s")
    nodes.plain().set(k, "p")
    r = redis.Redis.from_url("redis://secure:%s@127.0.0.1:%d" % (SECURE_PASS, locked_proxy.port),
                             decode_responses=True, socket_timeout=15)
    assert r.get(k) == "s"
    r = redis.Redis.from_url("redis://plain:%s@127.0.0.1:%d" % (PROXY_PASS, locked_proxy.port),
                             decode_responses=True, socket_timeout=15)
    assert r.get(k) == "p"
    r = redis.Redis.from_url("redis://:%s@127.0.0.1:%d" % (PROXY_PASS, locked_proxy.port),
                             decode_responses=True, socket_timeout=15)
    assert r.get(k) == "p"  # AUTH <password>: the default node


def test_zos_use_switches_the_connection(open_proxy, nodes, uniq):
    k = uniq + "k"
    r = open_proxy.client(single_connection_client=True)
    r.set(k, "1")
    assert r.execute_command("ZOS.USE", "secure") in (True, "OK")
    r.set(k, "2")
    assert r.get(k) == "2"
    assert r.execute_command("ZOS.USE", "plain") in (True, "OK")
    assert r.get(k) == "1"
    assert nodes.plain().get(k) == "1" and nodes.secure().get(k) == "2"
    other = open_proxy.client()
    assert other.get(k) == "1"  # ZOS.USE is per connection


def test_zos_at_runs_one_command_elsewhere(open_proxy, nodes, uniq):
    k = uniq + "k"
    r = open_proxy.client(single_connection_client=True)
    assert r.execute_command("ZOS.AT", "secure", "SET", k, "there") in (True, "OK")
    assert r.get(k) is None  # the connection's node did not change
    assert r.execute_command("ZOS.AT", "secure", "GET", k) == "there"
    assert r.execute_command("ZOS.AT", "secure", "ECHO", "e") == "e"
    assert nodes.secure().get(k) == "there"


def test_zos_all_flat_array_with_error_elements(open_proxy, nodes, uniq):
    k = uniq + "k"
    nodes.plain().set(k, "p")
    nodes.secure().rpush(k, "a-list")
    r = open_proxy.client()
    reply = r.execute_command("ZOS.ALL", "GET", k)
    assert len(reply) == 4
    assert reply[0] == "plain" and reply[1] == "p"
    assert reply[2] == "secure"
    assert isinstance(reply[3], redis.ResponseError) and str(reply[3]).startswith("WRONGTYPE")
    assert r.execute_command("ZOS.ALL", "PING") == ["plain", "PONG", "secure", "PONG"]
    assert r.execute_command("ZOS.ALL", "SET", k + ":x", "all") == ["plain", "OK", "secure", "OK"]
    assert nodes.plain().get(k + ":x") == "all" and nodes.secure().get(k + ":x") == "all"
    assert r.ping() is True


def test_unknown_node_is_a_clear_error(open_proxy):
    r = open_proxy.client(single_connection_client=True)
    with pytest.raises(redis.ResponseError, match="unknown node 'nosuch'"):
        r.execute_command("ZOS.USE", "nosuch")
    with pytest.raises(redis.ResponseError, match="unknown node 'nosuch'"):
        r.execute_command("ZOS.AT", "nosuch", "GET", "k")
    with pytest.raises(redis.exceptions.RedisError, match="(?i)unknown node"):
        open_proxy.client(username="nosuch", password="x").ping()
    assert r.ping() is True  # still usable, still on the default node
    assert r.execute_command("ZOS.AT", "plain", "PING") == "PONG"


def test_requirepass_noauth_before_auth(locked_proxy):
    s = locked_proxy.raw()
    s.sendall(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$9\r\nZOS.NODES\r\n"
              b"*3\r\n$6\r\nZOS.AT\r\n$6\r\nsecure\r\n$4\r\nPING\r\n")
    noauth = b"-NOAUTH Authentication required.\r\n"
    buf = b""
    while buf.count(b"\r\n") < 4:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    assert buf == noauth * 4
    s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n"
              % (len(PROXY_PASS), PROXY_PASS.encode()))
    buf = b""
    while buf.count(b"\r\n") < 2:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    assert buf == b"+OK\r\n+PONG\r\n"
    s.close()


def test_wrong_passwords_are_refused(locked_proxy, uniq):
    wrong = "(?i)WRONGPASS|invalid"  # redis-py 4.3 raises AuthenticationError or ResponseError
    with pytest.raises(redis.exceptions.RedisError, match=wrong):
        locked_proxy.client(password="wrong").ping()
    # the node's own client password, not requirepass, opens "secure"
    with pytest.raises(redis.exceptions.RedisError, match=wrong):
        locked_proxy.client(username="secure", password=PROXY_PASS).ping()
    with pytest.raises(redis.exceptions.RedisError, match=wrong):
        locked_proxy.client(username="secure", password="wrong").ping()
    # a node without a password of its own takes requirepass
    with pytest.raises(redis.exceptions.RedisError, match=wrong):
        locked_proxy.client(username="plain", password=SECURE_PASS).ping()
    assert locked_proxy.client(username="plain", password=PROXY_PASS).ping() is True
    assert locked_proxy.client(username="secure", password=SECURE_PASS).ping() is True
    # a failed AUTH leaves the connection unauthenticated
    s = locked_proxy.raw()
    s.sendall(b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n*1\r\n$4\r\nPING\r\n")
    buf = b""
    while buf.count(b"\r\n") < 2:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    first, second = buf.split(b"\r\n")[:2]
    assert first.startswith(b"-WRONGPASS"), buf
    assert second.startswith(b"-NOAUTH"), buf
    s.close()


def test_hello_auth_on_locked_proxy(locked_proxy, nodes, uniq):
    k = uniq + "k"
    nodes.secure().set(k, "h")
    r = locked_proxy.client(single_connection_client=True)
    with pytest.raises(redis.exceptions.RedisError, match="(?i)NOAUTH|authenticat"):
        r.execute_command("HELLO", "2")
    with pytest.raises(redis.exceptions.RedisError):
        r.execute_command("HELLO", "2", "AUTH", "secure", "bad")
    reply = r.execute_command("HELLO", "2", "AUTH", "secure", SECURE_PASS)
    assert dict(zip(reply[::2], reply[1::2]))["proto"] == 2
    assert r.get(k) == "h"


def test_node_listen_port_serves_that_node(open_proxy, nodes, uniq):
    k = uniq + "k"
    port = open_proxy.node_ports["secure"]
    r = open_proxy.client(port=port, single_connection_client=True)
    assert r.set(k, "by-port") is True
    assert nodes.secure().get(k) == "by-port"
    assert nodes.plain().get(k) is None
    with pytest.raises(redis.ResponseError):
        r.execute_command("ZOS.USE", "plain")
    assert r.get(k) == "by-port"


def test_node_listen_port_does_not_reach_other_nodes(open_proxy, nodes, uniq):
    """'everything on that port goes to that node': ZOS.AT/ZOS.ALL must not escape it."""
    k = uniq + "k"
    nodes.plain().set(k, "plain-only")
    r = open_proxy.client(port=open_proxy.node_ports["secure"], single_connection_client=True)
    with pytest.raises(redis.ResponseError):
        r.execute_command("ZOS.AT", "plain", "GET", k)
    assert r.ping() is True


def test_node_listen_port_takes_the_nodes_password(locked_proxy, nodes, uniq):
    """For clients that cannot send a username: AUTH <password> on the node's own port
    is checked against that node's password, and the port stays on that node."""
    k = uniq + "k"
    nodes.secure().set(k, "s")
    r = locked_proxy.client(port=locked_proxy.node_ports["secure"], password=SECURE_PASS)
    assert r.get(k) == "s"


def test_node_listen_port_with_username(locked_proxy, nodes, uniq):
    k = uniq + "k"
    nodes.secure().set(k, "s")
    r = locked_proxy.client(port=locked_proxy.node_ports["secure"], username="secure",
                            password=SECURE_PASS)
    assert r.get(k) == "s"
    with pytest.raises(redis.exceptions.RedisError):
        locked_proxy.client(port=locked_proxy.node_ports["secure"], username="plain",
                            password=PROXY_PASS).ping()


def test_unix_socket_listener(open_proxy, nodes, uniq):
    k = uniq + "k"
    r = redis.Redis(unix_socket_path=open_proxy.unixsocket, decode_responses=True,
                    socket_timeout=15)
    assert r.ping() is True
    assert r.set(k, "unix") is True
    assert nodes.plain().get(k) == "unix"
    assert r.execute_command("ZOS.AT", "secure", "PING") == "PONG"


def test_node_password_does_not_open_other_nodes(locked_proxy, nodes, uniq):
    """A client that authenticated with only secure's own client password must not reach
    'plain' (which takes requirepass) through ZOS.USE, ZOS.AT or ZOS.ALL."""
    k = uniq + "k"
    nodes.plain().set(k, "plain-secret-data")
    r = locked_proxy.client(username="secure", password=SECURE_PASS, single_connection_client=True)
    assert r.ping() is True
    leaked = []
    for cmd in (("ZOS.AT", "plain", "GET", k), ("ZOS.USE", "plain")):
        try:
            reply = r.execute_command(*cmd)
            leaked.append((cmd, reply))
        except redis.ResponseError:
            pass
    try:
        reply = r.execute_command("ZOS.ALL", "GET", k)
        if "plain-secret-data" in [x for x in reply if isinstance(x, str)]:
            leaked.append(("ZOS.ALL", reply))
    except redis.ResponseError:
        pass
    assert not leaked, leaked

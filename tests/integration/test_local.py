"""Commands the proxy answers itself: PING/ECHO, HELLO, CLIENT, COMMAND, INFO, ZOS.NODES, QUIT."""
import pytest
import redis

from conftest import info_text, raw_cmd, raw_connect, recv_exactly_lines, recv_until_closed


def test_ping_and_echo(open_proxy):
    r = open_proxy.client()
    assert r.ping() is True
    assert raw_cmd(r, "PING", "hi") == "hi"
    assert r.echo("hello world") == "hello world"


def test_hello_2_and_3_switch_protocols_and_other_versions_answer_noproto(open_proxy):
    r = open_proxy.client()
    reply = r.execute_command("HELLO", "2")
    fields = dict(zip(reply[::2], reply[1::2]))
    assert fields["proto"] == 2
    with pytest.raises(redis.ResponseError) as ei:
        r.execute_command("HELLO", "4")
    assert str(ei.value).startswith("NOPROTO")
    assert r.set("hello-still-works", "1") is True  # the connection goes on in RESP2

    # HELLO 3 answers a RESP3 map, and replies stay RESP3 until HELLO 2.
    s = raw_connect(open_proxy.port)
    try:
        s.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
                  b"*2\r\n$3\r\nGET\r\n$13\r\nno-such-key-3\r\n"
                  b"*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n")
        got = recv_exactly_lines(s, 26 + 1 + 26)  # each HELLO reply is 26 lines
        resp3_hello, rest = got.split(b"$7\r\nmodules\r\n*0\r\n", 1)
        assert resp3_hello.startswith(b"%7\r\n") and b":3\r\n" in resp3_hello
        assert rest.startswith(b"_\r\n*14\r\n")  # RESP3 null, then the RESP2 HELLO array
    finally:
        s.close()


def test_client_setname_getname_id(open_proxy):
    a, b = open_proxy.client(), open_proxy.client()
    assert a.client_getname() is None
    assert a.client_setname("worker-a") is True
    assert a.client_getname() == "worker-a"
    assert b.client_getname() is None  # names belong to a connection
    ida, idb = a.client_id(), b.client_id()
    assert isinstance(ida, int) and isinstance(idb, int) and ida != idb
    assert a.client_id() == ida
    with pytest.raises(redis.ResponseError):
        a.client_setname("has space")
    assert a.client_getname() == "worker-a"
    # a name given when connecting (redis-py sends CLIENT SETNAME)
    c = open_proxy.client(client_name="from-connect")
    assert c.client_getname() == "from-connect"


def test_command_and_command_docs_are_answered(open_proxy):
    r = open_proxy.client()
    docs = r.execute_command("COMMAND", "DOCS")
    assert isinstance(docs, (list, dict))
    cmds = r.execute_command("COMMAND")
    assert isinstance(cmds, (list, dict))
    assert r.ping() is True


def test_info_has_proxy_section_with_each_node(open_proxy):
    r = open_proxy.client()
    r.set("info-touch", "1")
    text = info_text(r)
    sections = [line for line in text.splitlines() if line.startswith("# ")]
    assert "# Proxy" in sections, sections
    proxy = text.split("# Proxy", 1)[1]
    assert "node_plain:" in proxy and "node_secure:" in proxy
    assert "redis_version:" in text  # clients that parse the version keep working
    assert isinstance(r.info(), dict)


def test_zos_nodes_lists_every_node(open_proxy, nodes):
    r = open_proxy.client()
    r.execute_command("ZOS.AT", "secure", "PING")  # so the TLS link is up
    rows = r.execute_command("ZOS.NODES")
    assert len(rows) == 2
    by_name = {}
    for row in rows:
        d = dict(zip(row[::2], row[1::2]))
        by_name[d["name"]] = d
    assert set(by_name) == {"plain", "secure"}
    assert by_name["plain"]["address"] == "127.0.0.1:%d" % nodes.plain_port
    assert by_name["secure"]["address"] == "127.0.0.1:%d" % nodes.tls_port
    assert by_name["plain"]["tls"] == "no" and by_name["secure"]["tls"] == "yes"
    for d in by_name.values():
        for field in ("state", "last_error", "inflight"):
            assert field in d, d
    assert by_name["secure"]["state"] == "ready"


def test_quit_closes_after_ok(open_proxy):
    s = open_proxy.raw()
    s.sendall(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n")
    assert recv_until_closed(s) == b"+PONG\r\n+OK\r\n"
    s.close()


def test_inline_commands(open_proxy, uniq):
    s = open_proxy.raw()
    k = (uniq + "inline").encode()
    s.sendall(b"PING\r\nSET " + k + b" val\r\nGET " + k + b"\nZOS.AT secure PING\r\nQUIT\r\n")
    assert recv_until_closed(s) == b"+PONG\r\n+OK\r\n$3\r\nval\r\n+PONG\r\n+OK\r\n"
    s.close()


def test_request_split_across_many_reads(open_proxy, uniq):
    """One byte per send: the proxy reassembles the requests."""
    s = open_proxy.raw()
    k = (uniq + "split").encode()
    req = (b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$5\r\nhello\r\n" % (len(k), k)
           + b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k) + b"*1\r\n$4\r\nQUIT\r\n")
    for i in range(len(req)):
        s.sendall(req[i:i + 1])
    assert recv_until_closed(s) == b"+OK\r\n$5\r\nhello\r\n+OK\r\n"
    s.close()

"""The config file as the operator meets it: -t, FILE:LINE messages, exposure rules, ZOS_CONFIG."""
import os
import re
import stat

import pytest
import redis

from conftest import PROXY_PASS, free_port, node_section, wait_for


GOOD = """; a comment
[app]
defaultzos = a

[proxy]
listen = 127.0.0.1:6390
max-bulk = 64m

[a]
address = 127.0.0.1
port = 7000
tls = no

[b]
address = "127.0.0.1"
port = 7001
secret = abc.def.ghi
tls-verify = sha256:%s
""" % ("0f" * 32)


def test_check_good_file_exits_0(lab):
    path = lab.write_conf(GOOD)
    res = lab.run_proxy(["-t", "-c", path])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("line,text", [
    (3, "port = 99999"),                # out of range
    (3, "nosuchkey = 1"),               # unknown key
    (3, "tls = maybe"),                 # not a boolean
    (3, "tls-verify = sha256:1234"),    # short fingerprint
    (3, "tls-verify = whatever"),       # unknown mode
], ids=["port-out-of-range", "unknown-key", "tls-not-bool", "short-pin", "unknown-verify-mode"])
def test_check_bad_node_key_names_file_and_line(lab, line, text):
    path = lab.write_conf("[a]\naddress = 127.0.0.1\n%s\n" % text)
    res = lab.run_proxy(["-t", "-c", path])
    assert res.returncode != 0
    assert "%s:%d:" % (path, line) in res.stderr, res.stderr


@pytest.mark.parametrize("body,line", [
    ("[proxy]\nlisten = nowhere\n", 2),
    ("[proxy]\nmax-bulk = lots\n", 2),
    ("[proxy]\ndefault = ghost\n[a]\nport = 1\n", 2),
    ("[a]\nport = 1\nport = 2\n", 3),
    ("[a]\nport = 1\nthis is not ini\n", 3),
], ids=["listen-not-host-port", "max-bulk-not-a-size", "default-names-no-node", "duplicate-key",
        "syntax-error"])
def test_check_bad_proxy_section_names_file_and_line(lab, body, line):
    path = lab.write_conf(body)
    res = lab.run_proxy(["-t", "-c", path])
    assert res.returncode != 0
    assert "%s:%d:" % (path, line) in res.stderr, res.stderr


def test_check_missing_file_fails(lab):
    res = lab.run_proxy(["-t", "-c", lab.tmp + "/nope.toml"])
    assert res.returncode != 0
    assert "nope.toml" in res.stderr


def test_secret_never_echoed_in_errors(lab):
    path = lab.write_conf("[a]\nsecret = \"unterminated-s3cr3t\n")
    res = lab.run_proxy(["-t", "-c", path])
    assert res.returncode != 0
    assert "s3cr3t" not in res.stderr + res.stdout


def test_zos_config_env_is_the_default_path(lab):
    with open(lab.env["ZOS_CONFIG"], "w") as f:
        f.write(GOOD)
    res = lab.run_proxy(["-t"])
    assert res.returncode == 0, res.stderr
    with open(lab.env["ZOS_CONFIG"], "w") as f:
        f.write("[a]\nport = 0\n")
    res = lab.run_proxy(["-t"])
    assert res.returncode != 0 and re.search(r"zos\.toml:2:", res.stderr), res.stderr


def expect_refused_for_requirepass(lab, conf, port):
    """A proxy with CONF exits non-zero on its own, saying why: requirepass."""
    p = lab.proxy(conf, port, wait=False)
    p.expect_exit = True
    rc = p.proc.wait(timeout=15)
    assert rc != 0
    assert "requirepass" in p.log(), p.log()


def test_refuses_0_0_0_0_without_requirepass(lab, nodes):
    port = free_port()
    expect_refused_for_requirepass(
        lab, "[proxy]\nlisten = 0.0.0.0:%d\n\n" % port + node_section("plain", nodes.plain_port),
        port)


def test_refuses_non_loopback_node_listen_without_requirepass(lab, nodes):
    port, nport = free_port(), free_port()
    expect_refused_for_requirepass(
        lab, "[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
        + node_section("plain", nodes.plain_port, extra="listen = 0.0.0.0:%d\n" % nport),
        port)


def test_0_0_0_0_with_requirepass_is_served(lab, nodes):
    port = free_port()
    p = lab.proxy("[proxy]\nlisten = 0.0.0.0:%d\nrequirepass = %s\n\n" % (port, PROXY_PASS)
                  + node_section("plain", nodes.plain_port), port)
    r = p.client(password=PROXY_PASS)
    assert r.ping() is True
    assert r.execute_command("ZOS.AT", "plain", "PING") == "PONG"


def test_only_node_is_the_default(lab, nodes):
    port = free_port()
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                  + node_section("solo", nodes.tls_port, tls=True, secret="n0de-secret-7f3a"), port)
    r = p.client()
    r.set("only-node-default", "solo")
    assert nodes.secure().get("only-node-default") == "solo"


def test_defaultzos_is_the_default_without_proxy_default(lab, nodes):
    port = free_port()
    p = lab.proxy("[app]\ndefaultzos = two\n\n[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                  + node_section("one", nodes.plain_port)
                  + node_section("two", nodes.tls_port, tls=True, secret="n0de-secret-7f3a"), port)
    p.client().set("defaultzos-key", "two")
    assert nodes.secure().get("defaultzos-key") == "two"
    assert nodes.plain().get("defaultzos-key") is None


def test_no_default_node_is_a_clear_error(lab, nodes):
    port = free_port()
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                  + node_section("one", nodes.plain_port)
                  + node_section("two", nodes.plain_port), port)
    r = p.client(single_connection_client=True)
    with pytest.raises(redis.ResponseError, match="(?i)node"):
        r.get("k")
    assert r.ping() is True
    assert r.execute_command("ZOS.USE", "two") in (True, "OK")
    r.set("no-default", "1")
    assert nodes.plain().get("no-default") == "1"


def test_unix_socket_permissions(lab, nodes):
    port = free_port()
    sock = os.path.join(lab.tmp, "perm.sock")
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\nunixsocket = %s\nunixsocketperm = 0700\n\n"
                  % (port, sock) + node_section("plain", nodes.plain_port), port, unixsocket=sock)
    wait_for(lambda: os.path.exists(sock), what="unix socket")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o700
    p.terminate()
    p.checked = True
    assert p.proc.returncode == 0, p.log()
    assert not os.path.exists(sock)  # removed at exit

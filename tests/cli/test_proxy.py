"""zos --proxy HOST:PORT (or [app] proxy): the same commands through a running zos-proxy."""
import os
import re

import pytest

import zostest
from zostest import free_port, wait_port
from conftest import NODE_SECRET, node_section

PROXY_PASS = "pr0xy-pass-4d1"


@pytest.fixture(scope="module")
def proxy(procs, nodes):
    """A zos-proxy in front of both simulated nodes plus one that is down."""
    port = free_port()
    text = ("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port + node_section("plain", nodes.plain) + "\n" +
            node_section("secure", nodes.secure, tls=True, secret=NODE_SECRET) + "\n" +
            node_section("down", free_port()))
    p, _ = procs.proxy(text, ready_port=port)
    yield "127.0.0.1:%d" % port
    assert p.poll() is None, "zos-proxy died during the tests"


@pytest.fixture(scope="module")
def locked_proxy(procs, nodes):
    """A zos-proxy with requirepass: zos gives it $ZOS_PROXY_PASSWORD."""
    port = free_port()
    text = ("[proxy]\nlisten = 127.0.0.1:%d\nrequirepass = %s\n\n" % (port, PROXY_PASS) +
            node_section("plain", nodes.plain))
    procs.proxy(text, ready_port=port)
    return "127.0.0.1:%d" % port


def both(zos, proxy, *args, **kw):
    """Runs ARGS directly and through the proxy; returns both results."""
    direct = zos.run(*args, **kw)
    via = zos.run("--proxy", proxy, *args, **kw)
    return direct, via


@pytest.mark.parametrize("args", [
    ["ping"],
    ["cmd", "info.version"],
    ["cmd", "core.system", "--jsonargs", '{"name": "echo", "args": ["through", "the", "proxy"]}'],
    ["exec", "echo out; echo err >&2"],
    ["exec", "exit 5"],
    ["cmd", "no.such.command"],
    ["--node", "secure", "ping"],
    ["--node", "secure", "cmd", "info.version"],
    ["container", "4321", "info"],
    ["container", "4321", "zosexec", "/bin/ls"],
])
def test_same_output_direct_and_through_the_proxy(zos, proxy, args):
    direct, via = both(zos, proxy, *args)
    assert (via.rc, via.out, via.err) == (direct.rc, direct.out, direct.err)


def test_containers_through_the_proxy(zos, proxy, nodes):
    r = zos.ok("--proxy", proxy, "container", "new", "--name", "proxied", "--ports", "6100:61")
    cid = int(r.out)
    kv = nodes.redis()
    assert kv.get("zos:lastcontainerid") == str(cid)
    assert kv.get("container:%d:sshport" % cid)
    # the address stored for the container is the node's, from the local config
    assert kv.get("container:%d:ip" % cid) == "127.0.0.1"
    for args in (["container", "list"], ["container", "list", "--json"], ["container", "inspect"],
                 ["container", cid, "info"], ["container", cid, "inspect"],
                 ["container", "zerotierlist"], ["container", "zosexec", "/bin/pwd"]):
        direct, via = both(zos, proxy, *args)
        assert direct.rc == 0, direct
        # cpu/rss of the simulator move between two calls: compare without them
        norm = lambda t: re.sub(r'"(cpu|rss|vms)": [0-9.e+-]+', '"x": 0', t)
        assert norm(via.out) == norm(direct.out), args
        assert via.err == direct.err == ""
    zos.ok("--proxy", proxy, "container", cid, "delete")
    assert zos.run("container", cid, "info").rc == 16


def test_proxy_from_the_config_file(zos, proxy, nodes):
    # the local address of "plain" is wrong: only the proxy can reach it
    zos.write_config("[app]\ndefaultzos = plain\nproxy = %s\n\n" % proxy +
                     node_section("plain", free_port()))
    r = zos.ok("ping")
    assert r.out.startswith('"PONG')
    # --proxy= talks to the node directly
    r = zos.run("--proxy=", "ping")
    assert r.rc == 12


def test_node_known_only_to_the_proxy(zos, proxy):
    zos.write_config("[app]\ndebug = false\n")
    r = zos.ok("--proxy", proxy, "--node", "secure", "ping")
    assert r.out.startswith('"PONG')
    r = zos.run("--proxy", proxy, "--node", "ghost", "ping")
    assert r.rc == 17, r
    assert "the proxy has no such node" in r.err


def test_proxy_errors(zos, proxy):
    r = zos.run("--proxy", proxy, "--node", "down", "ping")
    assert r.rc == 12, r
    assert "node 'down'" in r.err and "unavailable" in r.err
    r = zos.run("--proxy", "127.0.0.1:%d" % free_port(), "ping")
    assert r.rc == 12 and "connection refused" in r.err
    r = zos.run("--proxy", "nonsense", "ping")
    assert r.rc == 15 and "--proxy: expected HOST:PORT, got 'nonsense'" in r.err


def test_proxy_password(zos, locked_proxy):
    r = zos.run("--proxy", locked_proxy, "ping")
    assert r.rc == 26, r
    assert "WRONGPASS" in r.err
    r = zos.run("--proxy", locked_proxy, "ping", env={"ZOS_PROXY_PASSWORD": PROXY_PASS})
    assert r.rc == 0 and r.out.startswith('"PONG')
    assert PROXY_PASS not in r.err + r.out

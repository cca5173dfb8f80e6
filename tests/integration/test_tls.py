"""TLS to a node: verification modes (none, sha256 pin, CA file), the node secret, and
nodes that cannot be reached."""
import os

import pytest
import redis

from conftest import (Lab, NODE_SECRET, finish_lab, free_port, node_section)
from zostest import cert_sha256, make_cert


@pytest.fixture(scope="module")
def tlsproxy(nodes):
    """One proxy, many node sections in front of the same TLS redis (plus one dead port)."""
    lab = Lab()
    fp = cert_sha256(nodes.cert)
    colon_fp = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
    other_dir = os.path.join(lab.tmp, "other-ca")
    os.makedirs(other_dir)
    other_cert, _, _ = make_cert(other_dir)
    dead = free_port()
    port = free_port()
    t = nodes.tls_port
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\ndefault = pin_ok\nconnect-timeout = 3000\n\n" % port
            + node_section("pin_ok", t, tls=True, secret=NODE_SECRET, extra="tls-verify = sha256:%s\n" % fp)
            + node_section("pin_colons", t, tls=True, secret=NODE_SECRET,
                           extra="tls-verify = sha256:%s\n" % colon_fp)
            + node_section("pin_bad", t, tls=True, secret=NODE_SECRET,
                           extra="tls-verify = sha256:%s\n" % ("ab" * 32))
            + node_section("ca_ok", t, tls=True, secret=NODE_SECRET, extra="tls-verify = ca:%s\n" % nodes.cert)
            + node_section("ca_other", t, tls=True, secret=NODE_SECRET,
                           extra="tls-verify = ca:%s\n" % other_cert)
            + node_section("verify_none", t, tls=True, secret=NODE_SECRET, extra="tls-verify = none\n")
            + node_section("bad_secret", t, tls=True, secret="not-the-secret")
            + node_section("plain_to_tls", t, tls=False, secret=NODE_SECRET)
            + node_section("dead", dead, tls=False))
    yield lab.session_proxy(conf, port)
    finish_lab(lab)


def at(proxy, node, *cmd):
    return proxy.client().execute_command("ZOS.AT", node, *cmd)


def error_of(proxy, node, *cmd):
    """The error reply (a hang: the client's socket timeout, not a ResponseError)."""
    with pytest.raises(redis.ResponseError) as ei:
        at(proxy, node, *(cmd or ("PING",)))
    return str(ei.value)


@pytest.mark.parametrize("node", ["pin_ok", "pin_colons", "ca_ok", "verify_none"])
def test_verified_tls_node_works(tlsproxy, nodes, node):
    k = "tls-verify:" + node
    assert at(tlsproxy, node, "SET", k, node) in ("OK", True)
    assert nodes.secure().get(k) == node
    assert at(tlsproxy, node, "GET", k) == node


def test_wrong_pin_is_refused_and_named(tlsproxy):
    msg = error_of(tlsproxy, "pin_bad")
    assert "node 'pin_bad' unavailable" in msg, msg
    assert "sha256" in msg.lower() or "fingerprint" in msg.lower() or "pin" in msg.lower(), msg


def test_untrusted_ca_is_refused(tlsproxy):
    msg = error_of(tlsproxy, "ca_other")
    assert "node 'ca_other' unavailable" in msg, msg
    assert "tls" in msg.lower() or "certificate" in msg.lower(), msg


def test_wrong_node_secret_says_auth_failed(tlsproxy):
    msg = error_of(tlsproxy, "bad_secret")
    assert "node 'bad_secret' unavailable" in msg, msg
    assert "AUTH failed" in msg, msg
    assert "not-the-secret" not in msg and NODE_SECRET not in msg
    assert "not-the-secret" not in tlsproxy.log()
    assert NODE_SECRET not in tlsproxy.log()


def test_node_down_fails_fast(tlsproxy):
    for _ in range(3):
        msg = error_of(tlsproxy, "dead", "GET", "k")
        assert msg.startswith("node 'dead' unavailable: "), msg
        assert "refused" in msg.lower(), msg


def test_plain_client_to_tls_node_fails_without_hanging(tlsproxy):
    msg = error_of(tlsproxy, "plain_to_tls")
    assert "node 'plain_to_tls' unavailable" in msg, msg


def test_zos_all_reports_each_node(tlsproxy):
    reply = tlsproxy.client().execute_command("ZOS.ALL", "PING")
    names = reply[::2]
    assert names == ["pin_ok", "pin_colons", "pin_bad", "ca_ok", "ca_other", "verify_none",
                     "bad_secret", "plain_to_tls", "dead"]
    got = dict(zip(names, reply[1::2]))
    for ok in ("pin_ok", "pin_colons", "ca_ok", "verify_none"):
        assert got[ok] == "PONG", (ok, got[ok])
    for bad in ("pin_bad", "ca_other", "bad_secret", "plain_to_tls", "dead"):
        assert isinstance(got[bad], redis.ResponseError), (bad, got[bad])
        assert "node '%s' unavailable" % bad in str(got[bad])


def test_zos_nodes_shows_last_error(tlsproxy):
    r = tlsproxy.client()
    for n in ("dead", "bad_secret", "pin_ok"):
        try:
            r.execute_command("ZOS.AT", n, "PING")
        except redis.ResponseError:
            pass
    rows = {d["name"]: d for d in (dict(zip(row[::2], row[1::2]))
                                   for row in r.execute_command("ZOS.NODES"))}
    assert rows["pin_ok"]["state"] == "ready"
    assert rows["dead"]["state"] != "ready" and rows["dead"]["last_error"]
    assert "AUTH failed" in rows["bad_secret"]["last_error"]

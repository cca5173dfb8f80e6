"""Containers through the proxy: corex.create via ZOS.CMD, then ZOS.CONTAINER.EXEC
(corex.dispatch + the inner job's result, core0-protocol.md §6.4)."""
import json

import pytest

from conftest import ROOT_FLIST, ping_text  # noqa: F401


def create(r, **extra):
    args = {"root": ROOT_FLIST, "nics": [{"type": "default"}]}
    args.update(extra)
    out = r.execute_command("ZOS.CMD", "corex.create", json.dumps(args))
    cid = json.loads(out)  # data is the new id as a JSON number
    assert isinstance(cid, int) and 1 <= cid <= 65534, out
    return cid


@pytest.mark.parametrize("node", ["n1", "n3"])
def test_container_exec_runs_inside_the_container(cluster, node):
    r = cluster.client(node)
    cid = create(r, env={"ZOS_TEST_VAR": "inside-%s" % node})
    try:
        listed = json.loads(r.execute_command("ZOS.CMD", "corex.list"))
        assert str(cid) in listed
        assert listed[str(cid)]["container"]["arguments"]["root"] == ROOT_FLIST
        # one argument: split on blanks; several: taken as they are
        assert r.execute_command("ZOS.CONTAINER.EXEC", cid, "echo hi there") == "hi there\n"
        assert r.execute_command("ZOS.CONTAINER.EXEC", cid, "echo", "a  b") == "a  b\n"
        # it runs in the container (its root directory and environment), not on the host
        assert r.execute_command("ZOS.CONTAINER.EXEC", cid, "pwd").rstrip("\n").endswith(
            "/containers/%d/root" % cid)
        assert r.execute_command("ZOS.CONTAINER.EXEC", cid, "printenv", "ZOS_TEST_VAR") == \
            "inside-%s\n" % node
        assert r.execute_command("ZOS.CONTAINER.EXEC", cid, "echo", "t", "TIMEOUT", "5") == "t\n"
    finally:
        assert r.execute_command("ZOS.CMD", "corex.terminate", json.dumps({"container": cid})) \
            == "null"
    assert str(cid) not in json.loads(r.execute_command("ZOS.CMD", "corex.list"))


def test_container_exec_failures(cluster, raw_conn):
    r = cluster.client("n2")
    cid = create(r)
    c = raw_conn("n2")
    try:
        e = c.call("ZOS.CONTAINER.EXEC", cid, "ls /nonexistent-in-container")
        assert e.startswith("ERR command failed with exit status 2: ") and "cannot access" in e, e
        assert c.call("ZOS.CONTAINER.EXEC", cid, "sh", "-c", "echo no >&2; exit 7") == \
            "ERR command failed with exit status 7: no"
        assert c.call("ZOS.CONTAINER.EXEC", cid, "nope-binary-zos") == \
            'ERR job core.system failed: ERROR code=404: exec: "nope-binary-zos": ' \
            'executable file not found in $PATH'
        assert c.call("ZOS.CONTAINER.EXEC", cid, "true", "TIMEOUT", "x") == \
            "ERR TIMEOUT needs a number of seconds from 1 to 86400"
    finally:
        r.execute_command("ZOS.CMD", "corex.terminate", json.dumps({"container": cid}))
    # terminated: now an unknown container
    assert c.call("ZOS.CONTAINER.EXEC", cid, "true") == \
        "ERR job corex.dispatch failed: ERROR code=500: container does not exist"


def test_container_exec_unknown_container_and_bad_ids(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.CONTAINER.EXEC", "65000", "ls") == \
        "ERR job corex.dispatch failed: ERROR code=500: container does not exist"
    for bad in ("0", "65535", "abc", "-1", "", "1x"):
        assert c.call("ZOS.CONTAINER.EXEC", bad, "ls") == \
            "ERR container id must be a number from 1 to 65534, got '%s'" % bad
    assert c.call("ZOS.CMD", "core.ping") == ping_text("n1")


def test_container_create_errors(cluster, raw_conn):
    c = raw_conn("n1")
    assert c.call("ZOS.CMD", "corex.create", '{"nics": [{"type": "default"}]}') == \
        "ERR job corex.create failed: ERROR code=500: root plist is required"
    assert c.call("ZOS.CMD", "corex.create",
                  json.dumps({"root": ROOT_FLIST, "nics": [{"type": "default"}, {"type": "default"}]})) \
        == "ERR job corex.create failed: ERROR code=500: only one default network is allowed"


def test_container_exec_via_zos_at(cluster):
    r = cluster.client("n3")
    cid = create(r)
    try:
        # from a connection that selected no node
        assert cluster.client().execute_command("ZOS.AT", "n3", "ZOS.CONTAINER.EXEC", cid,
                                                "echo via at") == "via at\n"
    finally:
        r.execute_command("ZOS.CMD", "corex.terminate", json.dumps({"container": cid}))

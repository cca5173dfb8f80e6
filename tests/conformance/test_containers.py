"""Containers, port forwards, socat and nft (core0-protocol.md §6)."""
import json
import os
import socket
import stat
import uuid

import pytest

from conftest import Node, result_keys
from zostest import ROOT_FLIST as ROOT

ARG_KEYS = ["root", "mount", "host_network", "identity", "nics", "port", "privileged",
            "hostname", "storage", "name", "tags", "env", "cgroups", "config"]


def create(node, tags=None, args_tags=None, **args):
    a = {"root": ROOT}
    a.update(args)
    if args_tags is not None:
        a["tags"] = args_tags
    res = node.call("corex.create", a, tags=tags, timeout=30)
    assert res["state"] == "SUCCESS", res
    assert res["level"] == 20
    cid = json.loads(res["data"])
    assert isinstance(cid, int) and 1 <= cid <= 65534
    assert res["data"] == str(cid)  # a JSON number, e.g. "7"
    return cid


@pytest.fixture
def web(node):
    cid = create(node, tags=["web"], name="web-%s" % uuid.uuid4().hex[:6], hostname="web1",
                 privileged=False, host_network=False, mount=None, storage="", identity="",
                 nics=[{"type": "default"}, {"type": "zerotier", "id": "9bee8941b5717835"}],
                 port={"2222": 22}, env={"LANG": "C.UTF-8", "ZZ": "1"}, cgroups=None,
                 config={"/root/.ssh/authorized_keys": "ssh-ed25519 AAAA me@laptop\n"})
    yield cid
    node.call("corex.terminate", {"container": cid})


def test_create_list_shape(node, web):
    listing = node.json("corex.list")
    assert str(web) in listing
    entry = listing[str(web)]
    assert list(entry.keys()) == ["cpu", "rss", "vms", "swap", "container"]
    assert isinstance(entry["cpu"], (int, float))
    c = entry["container"]
    assert list(c.keys()) == ["arguments", "root", "pid"]
    assert c["root"] == "/mnt/containers/%d" % web
    assert isinstance(c["pid"], int) and c["pid"] > 0
    a = c["arguments"]
    assert list(a.keys()) == ARG_KEYS
    assert a["root"] == ROOT and a["hostname"] == "web1"
    assert a["tags"] == ["web"]
    assert a["port"] == {"2222": 22}
    assert a["env"] == {"LANG": "C.UTF-8", "ZZ": "1"}
    assert a["nics"][0] == {"type": "default", "id": "", "hwaddr": "",
                            "config": {"dhcp": False, "cidr": "", "gateway": "", "dns": None},
                            "monitor": False, "state": "configured"}
    assert list(a["nics"][0].keys()) == ["type", "id", "hwaddr", "config", "monitor", "state"]
    assert a["nics"][1]["id"] == "9bee8941b5717835"
    assert ["devices", "corex"] in a["cgroups"]
    assert a["config"] == {"/root/.ssh/authorized_keys": "ssh-ed25519 AAAA me@laptop\n"}


def test_keys_are_strings_sorted_as_go_does(node):
    ids = [create(node) for _ in range(2)]
    try:
        raw = node.call("corex.list")["data"]
        keys = list(json.loads(raw).keys())
        assert keys == sorted(keys)  # Go sorts map keys as strings
        assert all(isinstance(k, str) for k in keys)
    finally:
        for cid in ids:
            node.call("corex.terminate", {"container": cid})


def test_ids_increase(node):
    a = create(node)
    b = create(node)
    node.call("corex.terminate", {"container": a})
    node.call("corex.terminate", {"container": b})
    c = create(node)
    node.call("corex.terminate", {"container": c})
    assert a < b < c  # not reused before wrap-around


def test_request_tags_override_argument_tags(node):
    cid = create(node, tags=["req"], args_tags=["arg"])
    try:
        a = node.json("corex.list")[str(cid)]["container"]["arguments"]
        assert a["tags"] == ["req"]
    finally:
        node.call("corex.terminate", {"container": cid})
    cid = create(node, tags=None, args_tags=["arg"])
    try:
        assert node.json("corex.list")[str(cid)]["container"]["arguments"]["tags"] is None
    finally:
        node.call("corex.terminate", {"container": cid})


def test_no_nics_no_ports(node):
    cid = create(node, port={"2223": 22})
    try:
        a = node.json("corex.list")[str(cid)]["container"]["arguments"]
        assert a["nics"] is None
        assert a["port"] is None  # forwards need a default nic; silently ignored
        msg, _ = node.error("corex.portforward-add",
                            {"container": cid, "host_port": "2224", "container_port": 22})
        assert msg == "Container doesn't have a default nic"
    finally:
        node.call("corex.terminate", {"container": cid})


def test_create_errors(node):
    msg, code = node.error("corex.create", {"root": ""})
    assert (msg, code) == ("root plist is required", 500)
    msg, _ = node.error("corex.create", {"root": ROOT, "nics": [{"type": "default"},
                                                                {"type": "default"}]})
    assert msg == "only one default network is allowed"
    msg, _ = node.error("corex.create", {"root": ROOT, "nics": [{"type": "bogus"}]})
    assert msg == "unsupported network type 'bogus'"
    msg, code = node.error("corex.create", "x")
    assert msg == ("json: cannot unmarshal string into Go value of type "
                   "containers.ContainerCreateArguments")
    assert code == 400


def test_find_and_get(node, web):
    name = node.json("corex.list")[str(web)]["container"]["arguments"]["name"]
    other = create(node, tags=["db"])
    try:
        found = node.json("corex.find", {"tags": ["web"]})
        assert str(web) in found and str(other) not in found
        assert found[str(web)] == node.json("corex.list")[str(web)] | \
            {"rss": found[str(web)]["rss"], "vms": found[str(web)]["vms"]}
        assert set(node.json("corex.find", {"tags": []})) >= {str(web), str(other)}
        assert node.json("corex.find", {"tags": ["web", "db"]}) == {}
        got = node.json("corex.get", {"query": web})
        assert list(got.keys()) == ["container", "id"] and got["id"] == web
        assert got["container"]["root"] == "/mnt/containers/%d" % web
        assert node.json("corex.get", {"query": name.upper()})["id"] == web
        assert node.json("corex.get", {"query": 65000}) is None
    finally:
        node.call("corex.terminate", {"container": other})


def test_config_files_written(node, web):
    out = node.dispatch(web, Node.request(
        "core.system", {"name": "sh", "args": ["-c", "cat root/.ssh/authorized_keys; "
                                                     "stat -c %a root/.ssh root/.ssh/authorized_keys"]}))
    assert out["streams"][0] == "ssh-ed25519 AAAA me@laptop\n700\n600\n"


def test_dispatch_runs_in_container(node, web):
    inner_id = str(uuid.uuid4())
    outer = node.call("corex.dispatch", {"container": web, "command": Node.request(
        "core.system", {"name": "sh", "args": ["-c", "pwd; echo $LANG $HOME; echo $PATH"]},
        id=inner_id)})
    assert outer["state"] == "SUCCESS"
    assert outer["data"] == json.dumps(inner_id)  # the inner id as a JSON string
    res = node.wait(inner_id)
    assert list(res.keys()) == result_keys()
    assert res["container"] == web and res["id"] == inner_id
    lines = res["streams"][0].splitlines()
    assert lines[0].endswith("/containers/%d/root" % web)
    assert lines[1] == "C.UTF-8 /"
    assert lines[2] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert 295 <= node.r.ttl("result:%s:flag" % inner_id) <= 300


def test_dispatch_generates_inner_id(node, web):
    req = Node.request("core.ping")
    req["id"] = None
    res = node.dispatch(web, req)
    assert res["state"] == "SUCCESS" and res["container"] == web
    assert len(res["id"]) == 36


def test_dispatch_bash_and_unknown_and_stream(node, web):
    res = node.dispatch(web, Node.request("bash", {"script": "echo in; exit 4"}))
    assert (res["code"], res["streams"][0], res["container"]) == (1004, "in\n", web)
    res = node.dispatch(web, Node.request("corex.list"))  # not a coreX command
    assert res["state"] == "UNKNOWN_CMD" and res["container"] == web
    req = Node.request("bash", {"script": "echo s"}, stream=True)
    res = node.dispatch(web, req)
    recs = [json.loads(x) for x in node.r.lrange("stream:%s" % req["id"], 0, -1)]
    assert [r["core"] for r in recs] == [web, web]
    assert recs[0]["message"]["message"] == "s\n" and recs[-1]["message"]["meta"] == 65539


def test_dispatch_job_list_is_per_container(node, web):
    jobs = json.loads(node.dispatch(web, Node.request("job.list", {}))["data"])
    assert [j["cmd"]["command"] for j in jobs] == ["job.list"]


def test_dispatch_errors(node):
    msg, _ = node.error("corex.dispatch", {"container": 0, "command": Node.request("core.ping")})
    assert msg == "invalid container id"
    msg, _ = node.error("corex.dispatch", {"container": 65000,
                                           "command": Node.request("core.ping")})
    assert msg == "container does not exist"


def test_portforward_round_trip(node, web):
    args = {"container": web, "host_port": "2299", "container_port": 80}
    assert node.json("corex.portforward-add", args) is None
    a = node.json("corex.list")[str(web)]["container"]["arguments"]
    assert a["port"] == {"2222": 22, "2299": 80}
    msg, _ = node.error("corex.portforward-add", args)
    assert msg == "port 2299 already in use"
    msg, _ = node.error("corex.portforward-add", {"container": web, "host_port": "2222",
                                                  "container_port": 23})
    assert msg == "port 2222 already in use"
    assert node.json("corex.portforward-remove", args) is None
    assert node.json("corex.list")[str(web)]["container"]["arguments"]["port"] == {"2222": 22}
    msg, code = node.error("corex.portforward-add", {"container": 65000, "host_port": "1",
                                                     "container_port": 1})
    assert (msg, code) == ("container does not exist", 404)


def test_flist_layer_and_zerotier(node, web):
    assert node.json("corex.flist-layer", {"container": web,
                                           "flist": "https://hub.grid.tf/tf-bootable/ubuntu:16.04.flist"}) is None
    nets = node.json("corex.zerotier.list", {"container": web})
    assert len(nets) == 1
    assert nets[0]["nwid"] == "9bee8941b5717835"
    assert nets[0]["assignedAddresses"][0].split("/")[1] == "24"
    info = node.json("corex.zerotier.info", {"container": web})
    for k in ("address", "online", "version", "secretIdentity"):
        assert k in info


def test_terminate(node):
    cid = create(node)
    long_id = str(uuid.uuid4())
    node.call("corex.dispatch", {"container": cid, "command": Node.request(
        "core.system", {"name": "sleep", "args": ["30"]}, id=long_id)})
    assert node.wait_flag(long_id) == ""
    assert node.json("corex.terminate", {"container": cid}) is None
    assert str(cid) not in node.json("corex.list")
    msg, code = node.error("corex.terminate", {"container": cid})
    assert (msg, code) == ("no container with id '%d'" % cid, 500)
    # like a dead coreX: the inner job's result never comes
    assert node.r.ttl("result:%s:flag" % long_id) == -1


def test_socat_reserve(node, web):
    msg, _ = node.error("socat.reserve", {"number": 0})
    assert msg == "reseve number cannot be zero"
    ports = node.json("socat.reserve", {"number": 3})
    assert len(ports) == 3 and len(set(ports)) == 3
    assert all(p >= 1024 for p in ports) and 2222 not in ports
    for p in ports:
        with socket.socket() as s:  # nobody listens there
            assert s.connect_ex(("127.0.0.1", p)) != 0
    again = node.json("socat.reserve", {"number": 3})
    assert not set(again) & set(ports)  # held for 2 minutes


def test_nft(node):
    port = 40000 + os.getpid() % 1000
    assert node.json("nft.open_port", {"port": port, "interface": "zt*"}) is None
    assert 'iifname "zt*" tcp dport %d accept' % port in node.json("nft.list")
    msg, _ = node.error("nft.open_port", {"port": port, "subnet": "10.0.0.0/8"})
    assert msg == "rule already exists for port: %d" % port
    assert node.json("nft.rule_exists", {"port": port}) is True
    assert node.json("nft.drop_port", {"port": port}) is None
    assert node.json("nft.rule_exists", {"port": port}) is False


def test_container_dir_mode(node, web):
    res = node.dispatch(web, Node.request("core.system", {"name": "pwd"}))
    root = res["streams"][0].strip()
    assert stat.S_ISDIR(os.stat(root).st_mode)

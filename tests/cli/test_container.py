"""zos container: new, list, info, inspect, delete, zosexec, invoke, zerotier*, stored keys."""
import json
import os
import re
import subprocess
import time

import pytest

from zostest import ROOT_FLIST as DEFAULT_ROOT, start_sim
from conftest import node_section


def new(zos, *args, **kw):
    r = zos.ok("container", "new", *args, **kw)
    assert re.fullmatch(r"\d+\n", r.out), r
    return int(r.out)


def inspect(zos, cid):
    return zos.ok("container", cid, "inspect").json()


def test_new_creates_with_the_original_arguments(zos, nodes):
    cid = new(zos, "--name", "web1", "--ports", "8080:80, 7000:7000", "--env", "LANG:C.UTF-8,URL:http://x:1")
    info = inspect(zos, cid)
    a = info["container"]["arguments"]
    assert a["name"] == "web1" and a["hostname"] == "web1"
    assert a["root"] == DEFAULT_ROOT
    assert a["privileged"] is False
    assert [(n["type"], n["id"]) for n in a["nics"]] == [("default", ""), ("zerotier", "9bee8941b5717835")]
    assert a["env"] == {"LANG": "C.UTF-8", "URL": "http://x:1"}
    assert a["config"] == {"/root/.ssh/authorized_keys": zos.pubkey + "\n"}
    # the ssh port reserved by socat.reserve is forwarded to 22, and remembered
    kv = nodes.redis()
    sshport = kv.get("container:%d:sshport" % cid)
    assert a["port"] == {"8080": 80, "7000": 7000, sshport: 22}
    assert kv.get("zos:lastcontainerid") == str(cid)
    assert kv.get("container:%d:sshkey" % cid) == os.path.join(zos.home, ".ssh", "id_ed25519")
    assert kv.get("container:%d:layeredssh" % cid) == "false"
    assert kv.get("container:%d:sshenabled" % cid) == "false"
    assert kv.get("container:%d:ip" % cid) == "127.0.0.1"
    # the authorized_keys file really is in the container
    r = zos.ok("container", cid, "zosexec", "/bin/cat", "root/.ssh/authorized_keys")
    assert r.out == zos.pubkey + "\n"


def test_new_options(zos):
    cid = new(zos, "--name=db", "--hostname=dbhost", "--root=https://hub.grid.tf/x/redis.flist",
              "--privileged", "--zerotier=0123456789abcdef")
    a = inspect(zos, cid)["container"]["arguments"]
    assert (a["name"], a["hostname"], a["root"], a["privileged"]) == (
        "db", "dbhost", "https://hub.grid.tf/x/redis.flist", True)
    assert a["nics"][1]["id"] == "0123456789abcdef"
    cid = new(zos, "--zerotier", "none")
    a = inspect(zos, cid)["container"]["arguments"]
    assert [n["type"] for n in a["nics"]] == ["default"]


def test_zerotier_id_from_the_environment(zos):
    cid = new(zos, env={"GRID_ZEROTIER_ID": "aaaaaaaaaaaaaaaa"})
    assert inspect(zos, cid)["container"]["arguments"]["nics"][1]["id"] == "aaaaaaaaaaaaaaaa"
    cid = new(zos, env={"GRID_ZEROTIER_ID": "aaaaaaaaaaaaaaaa",
                        "GRID_ZEROTIER_ID_TESTING": "bbbbbbbbbbbbbbbb"})
    assert inspect(zos, cid)["container"]["arguments"]["nics"][1]["id"] == "bbbbbbbbbbbbbbbb"
    r = zos.run("container", "new", env={"GRID_ZEROTIER_ID": "nothex"})
    assert r.rc == 15 and "GRID_ZEROTIER_ID: a ZeroTier network id is 16 hexadecimal digits" in r.err


def test_generated_names_are_adjective_surname(zos):
    names = set()
    for _ in range(3):
        cid = new(zos)
        a = inspect(zos, cid)["container"]["arguments"]
        assert re.fullmatch(r"[a-z]+_[a-z]+", a["name"]), a["name"]
        assert a["hostname"] == a["name"]
        names.add(a["name"])
    assert len(names) >= 2


def test_extraconfig_is_merged_over_the_arguments(zos, tmp_path):
    mnt = str(tmp_path)
    extra = {"mount": {mnt: "/data"}, "env": {"EXTRA": "1"}, "config": {"/etc/motd": "hi\n"},
             "storage": "zdb://hub.grid.tf:9900", "tags": ["ignored-by-core0"]}
    cid = new(zos, "--env", "A:b", "--extraconfig", json.dumps(extra))
    a = inspect(zos, cid)["container"]["arguments"]
    assert a["mount"] == {mnt: "/data"}
    assert a["env"] == {"A": "b", "EXTRA": "1"}
    assert a["config"] == {"/etc/motd": "hi\n", "/root/.ssh/authorized_keys": zos.pubkey + "\n"}
    assert a["storage"] == "zdb://hub.grid.tf:9900"
    # nics are replaced: without a default nic, no ssh port forward is made
    cid = new(zos, "--extraconfig", '{"nics": [{"type": "zerotier", "id": "1111111111111111"}]}')
    a = inspect(zos, cid)["container"]["arguments"]
    assert [n["type"] for n in a["nics"]] == ["zerotier"] and a["port"] is None


@pytest.mark.parametrize("args,message", [
    (["--ports", "70000:22"], "--ports: '70000:22': the host port must be a number from 1 to 65535"),
    (["--ports", "2222:0"], "--ports: '2222:0': the container port must be a number from 1 to 65535"),
    (["--ports", "2222"], "--ports: '2222' is not HOST:CONTAINER (e.g. 2222:22)"),
    (["--ports", "a:22"], "--ports: 'a:22': the host port must be a number"),
    (["--ports", "2222:22,,80:80"], "--ports: empty entry in '2222:22,,80:80'"),
    (["--ports", "2222:22,2222:23"], "--ports: host port 2222 is given twice"),
    (["--ports", ""], "--ports: empty entry"),
    (["--env", "FOO"], "--env: 'FOO' is not KEY:VALUE (e.g. LANG:C.UTF-8)"),
    (["--env", ":x"], "--env: ':x' has no variable name"),
    (["--env", "A B:x"], "--env: 'A B' is not a variable name"),
    (["--env", "A:1,A:2"], "--env: A is given twice"),
    (["--extraconfig", '{"mount": '], "--extraconfig: invalid JSON: unexpected end at byte 10"),
    (["--extraconfig", '{"mount" {}}'], "--extraconfig: invalid JSON at byte 9"),
    (["--extraconfig", "[]"], "--extraconfig: expected a JSON object"),
    (["--extraconfig", '{"colour": 1}'], "--extraconfig: unknown key 'colour'"),
    (["--zerotier", "xyz"], "--zerotier: a ZeroTier network id is 16 hexadecimal digits, got 'xyz'"),
    (["--name="], "--name: must not be empty"),
    (["--root", ""], "--root: must not be empty"),
    (["--bogus"], "unknown option '--bogus'"),
    (["extra"], "unexpected argument 'extra'"),
])
def test_new_rejects_malformed_arguments(zos, nodes, args, message):
    before = nodes.redis().get("zos:lastcontainerid")
    r = zos.run("container", "new", *args)
    assert r.rc == 15, r
    assert message in r.err, r
    assert r.out == ""
    assert nodes.redis().get("zos:lastcontainerid") == before  # nothing was created


def test_ssh_keys_from_sshkey_option(zos):
    other = zos.keygen("work_key", comment="work@zos")
    for opt in ("work_key", "~/.ssh/work_key", os.path.join(zos.home, ".ssh", "work_key.pub")):
        cid = new(zos, "--sshkey", opt)
        a = inspect(zos, cid)["container"]["arguments"]
        assert a["config"]["/root/.ssh/authorized_keys"] == other + "\n", opt
    r = zos.run("container", "new", "--sshkey", "missing_key")
    assert r.rc == 2, r
    assert "--sshkey: no public key in %s/.ssh/missing_key.pub" % zos.home in r.err


def test_ssh_key_of_the_node(zos):
    other = zos.keygen("node_key", comment="node@zos")
    zos.ok("configure", "--name", "plain", "--sshkey", "~/.ssh/node_key")
    cid = new(zos)
    a = inspect(zos, cid)["container"]["arguments"]
    assert a["config"]["/root/.ssh/authorized_keys"] == other + "\n"


def test_ssh_keys_fallbacks(zos):
    os.remove(os.path.join(zos.home, ".ssh", "id_ed25519.pub"))
    r = zos.run("container", "new")
    assert r.rc == 9, r
    assert "no ssh public key found" in r.err
    rsa = zos.keygen("id_rsa", comment="rsa@zos")  # an ed25519 key under the rsa name will do
    cid = new(zos)
    assert inspect(zos, cid)["container"]["arguments"]["config"]["/root/.ssh/authorized_keys"] == rsa + "\n"


def test_ssh_keys_from_the_agent(zos, fnprocs):
    sock = os.path.join(zos.tmp, "agent.sock")
    agent = fnprocs.start(["ssh-agent", "-D", "-a", sock])
    for _ in range(250):
        if os.path.exists(sock) or agent.poll() is not None:
            break
        time.sleep(0.02)
    key = zos.keygen("agent_key", comment="agent@zos")
    subprocess.run(["ssh-add", "-q", os.path.join(zos.home, ".ssh", "agent_key")], check=True,
                   env=dict(zos.env, SSH_AUTH_SOCK=sock), capture_output=True)
    cid = new(zos, env={"SSH_AUTH_SOCK": sock})
    keys = inspect(zos, cid)["container"]["arguments"]["config"]["/root/.ssh/authorized_keys"]
    assert keys == key + "\n"  # the agent's key, not ~/.ssh/id_ed25519.pub


def test_list_and_info(zos, nodes):
    a = new(zos, "--name", "lista", "--ports", "9001:90")
    b = new(zos, "--name", "listb")
    kv = nodes.redis()
    r = zos.ok("container", "list")
    lines = r.out.splitlines()
    assert re.fullmatch(r"ID +Name +Ports +Root", lines[0])
    rows = {l.split()[0]: l.split() for l in lines[1:]}
    pa = kv.get("container:%d:sshport" % a)
    assert rows[str(a)][1:] == ["lista", ",".join(sorted(["9001:90", pa + ":22"])), DEFAULT_ROOT]
    assert rows[str(b)][1] == "listb"
    ids = [int(l.split()[0]) for l in lines[1:]]
    assert ids == sorted(ids)
    # columns line up
    starts = {l.index(DEFAULT_ROOT) for l in lines[1:] if DEFAULT_ROOT in l}
    assert len(starts) == 1 and lines[0].index("Root") in starts
    assert zos.ok("container", "info").out == r.out
    # JSON: the original's fields, plus name and ports
    j = zos.ok("container", "list", "--json")
    assert j.out == json.dumps(j.json(), indent=2) + "\n"
    entry = [e for e in j.json() if e["id"] == str(a)][0]
    assert entry["name"] == "lista" and entry["root"] == DEFAULT_ROOT and entry["hostname"] == "lista"
    assert entry["ports"] == {"9001": 90, pa: 22}
    assert set(entry) == {"id", "cpu", "root", "hostname", "pid", "name", "ports"}
    one = zos.ok("container", a, "info", "--json").json()
    assert one == entry
    r = zos.ok("container", b, "info")
    assert r.out.splitlines()[1].split()[:2] == [str(b), "listb"]
    assert len(r.out.splitlines()) == 2
    # without an id, info is about every container (as the original)
    assert zos.ok("container", "info", "--json").out == j.out


def test_inspect(zos):
    cid = new(zos, "--name", "insp")
    r = zos.ok("container", cid, "inspect")
    v = r.json()
    assert r.out == json.dumps(v, indent=2) + "\n"
    assert set(v) == {"cpu", "rss", "vms", "swap", "container"}
    assert v["container"]["root"] == "/mnt/containers/%d" % cid
    allc = zos.ok("container", "inspect").json()
    assert allc[str(cid)]["container"] == v["container"]  # rss/vms are the simulator's, they move


def test_commands_without_id_act_on_the_last_container(zos):
    cid = new(zos, "--name", "lastone")
    r = zos.ok("container", "zosexec", "/bin/pwd")
    assert r.out.rstrip().endswith("/containers/%d/root" % cid)
    r = zos.ok("container", "zerotierinfo")
    assert r.json()["address"]
    r = zos.ok("container", "delete")
    assert zos.run("container", cid, "info").rc == 16


def test_no_container_created_yet_exits_20(zos, fnprocs):
    _, port = start_sim(fnprocs)
    zos.write_config("[app]\ndefaultzos = fresh\n\n" + node_section("fresh", port))
    for sub in (["delete"], ["zosexec", "/bin/ls"], ["zerotierlist"], ["sshinfo"], ["invoke", "/bin/ls"]):
        r = zos.run("container", *sub)
        assert r.rc == 20, (sub, r)
        assert "no container created by zos on node 'fresh' yet" in r.err
    assert zos.ok("container", "list").out.splitlines() == ["ID  Name  Ports  Root"]
    assert zos.ok("container", "list", "--json").out == "[]\n"
    assert zos.ok("container", "inspect").out == "{}\n"


def test_unknown_container_exits_16(zos):
    for sub in (["info"], ["inspect"], ["delete"], ["zosexec", "/bin/ls"], ["zerotierinfo"],
                ["zerotierlist"], ["invoke", "/bin/ls"], ["info", "--json"]):
        r = zos.run("container", "4321", *sub)
        assert r.rc == 16, (sub, r)
        assert r.err == "zos: container 4321 does not exist on node 'plain'\n", sub


@pytest.mark.parametrize("args,code,message", [
    (["abc", "info"], 15, "a container id is a number from 1 to 65534, got 'abc'"),
    (["0", "info"], 15, "got '0'"),
    (["65535", "info"], 15, "got '65535'"),
    (["7", "new"], 15, "'container new' takes no container id"),
    (["7", "list"], 15, "'container list' takes no container id"),
    (["frob"], 6, "unknown container sub-command 'frob'"),
    (["7", "frob"], 6, "unknown container sub-command 'frob'"),
    ([], 15, "which sub-command"),
    (["7"], 15, "which sub-command"),
    (["list", "--yaml"], 15, "unknown option '--yaml'"),
    (["zosexec"], 15, "which command"),
    (["inspect", "x"], 15, "unexpected argument 'x'"),
])
def test_container_usage_errors(zos, args, code, message):
    r = zos.run("container", *args)
    assert r.rc == code, r
    assert message in r.err, r


def test_delete_terminates_and_forgets_the_keys(zos, nodes):
    cid = new(zos, "--name", "todelete")
    kv = nodes.redis()
    assert kv.exists("container:%d:sshport" % cid)
    r = zos.ok("container", cid, "delete")
    assert r.out == "" and r.err == ""
    assert zos.run("container", cid, "inspect").rc == 16
    assert not [k for k in kv.keys("container:%d:*" % cid)]
    r = zos.run("container", cid, "delete")
    assert r.rc == 16


def test_zosexec(zos):
    cid = new(zos, "--env", "GREETING:hello")
    r = zos.ok("container", cid, "zosexec", "/usr/bin/env")
    assert "GREETING=hello" in r.out.splitlines()
    r = zos.ok("container", cid, "zosexec", "/bin/ls", "-a")  # options belong to the command
    assert ".\n" in r.out
    r = zos.run("container", cid, "zosexec", "/bin/ls /no/such/dir")
    assert r.rc == 24
    assert "No such file" in r.err and "zos: zosexec failed: exit status 2" in r.err


def test_invoke_returns_the_inner_job_id(zos, nodes):
    cid = new(zos)
    r = zos.ok("container", cid, "invoke", "/bin/touch", "invoked.txt")
    job = r.out.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", job)
    kv = nodes.redis()
    res = kv.brpoplpush("result:" + job, "result:" + job, 10)
    assert json.loads(res)["state"] == "SUCCESS"
    assert zos.ok("container", cid, "zosexec", "/bin/ls").out.split() == ["invoked.txt", "root"]


def test_zerotier(zos):
    cid = new(zos, "--zerotier", "abcdefabcdefabcd")
    r = zos.ok("container", cid, "zerotierlist")
    nets = r.json()
    assert r.out == json.dumps(nets, indent=2) + "\n"
    assert nets[0]["nwid"] == "abcdefabcdefabcd"
    info = zos.ok("container", cid, "zerotierinfo").json()
    assert info["online"] is True and "secretIdentity" in info


def test_same_output_on_the_tls_node(zos):
    r = zos.ok("--node", "secure", "container", "new", "--name", "onsecure")
    cid = int(r.out)
    r = zos.ok("--node", "secure", "container", cid, "info", "--json")
    assert r.json()["name"] == "onsecure"
    zos.ok("--node", "secure", "container", cid, "delete")

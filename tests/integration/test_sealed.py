"""A node's secrets stay with the proxy (issue 9).

Clients never read a node's secret back: CONFIG GET answers the secret parameters empty
whatever the pattern and whatever the route (the connection's node, ZOS.AT, ZOS.ALL,
MULTI/EXEC), CONFIG SET of them and the ACL sub-commands on users answer NOPERM unless the
node's section says `admin = yes`.  In the process, secrets live in MADV_DONTDUMP memory and
the proxy is not dumpable unless `[proxy] core-dump = yes`.  `zos-proxy -t` refuses what the
start refuses, with the same message.
"""
import os
import re
import shutil
import subprocess

import pytest
import redis

from conftest import (PROXY_PASS, TIMEOUT, Lab, Proxy, RawConn, finish_lab, free_port,
                      node_section)
from resp_raw import ErrorReply
from zostest import PROXY_BIN, pid_alive, wait_port

SECRET_A = "sealed-secret-a-4d1f9"       # requirepass of node a == its `secret`
MASTER_A = "sealed-masterauth-a-77e0"    # its masterauth
TLSPASS_A = "sealed-tlspass-a-2b6c"      # its tls-key-file-pass
TLSCLI_A = "sealed-tlsclipass-a-91aa"    # its tls-client-key-file-pass
SECRET_B = "sealed-secret-b-c03e5"       # requirepass of node b == its `secret`
SECRETS = [s.encode() for s in (SECRET_A, MASTER_A, TLSPASS_A, TLSCLI_A, SECRET_B)]
SECRET_PARAMS = {"requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass"}
NOBODY = 65534


def no_secret_in(raw):
    for s in SECRETS:
        assert s not in raw, "secret %r in the reply: %r" % (s, raw[:2000])


def pairs(flat):
    return dict(zip(flat[::2], flat[1::2]))


class Sealed:
    def __init__(self, lab):
        _, self.a_port, _ = lab.procs.redis(password=SECRET_A, extra=(
            "--masterauth", MASTER_A, "--tls-key-file-pass", TLSPASS_A,
            "--tls-client-key-file-pass", TLSCLI_A))
        _, self.b_port, _ = lab.procs.redis(password=SECRET_B)
        self.port = free_port()
        conf = ("[proxy]\nlisten = 127.0.0.1:%d\ndefault = a\n\n" % self.port
                + node_section("a", self.a_port, secret=SECRET_A)
                + node_section("b", self.b_port, secret=SECRET_B))
        self.proxy = lab.session_proxy(conf, self.port)

    def direct_a(self):
        return redis.Redis(port=self.a_port, password=SECRET_A, decode_responses=True,
                           socket_timeout=TIMEOUT)

    def direct_b(self):
        return redis.Redis(port=self.b_port, password=SECRET_B, decode_responses=True,
                           socket_timeout=TIMEOUT)

    def conn(self):
        return RawConn(self.port)

    def assert_nodes_unchanged(self):
        a = self.direct_a()
        got = a.config_get("*")
        assert got["requirepass"] == SECRET_A
        assert got["masterauth"] == MASTER_A
        assert got["tls-key-file-pass"] == TLSPASS_A
        assert got["maxmemory-policy"] == "noeviction"
        assert a.execute_command("ACL", "USERS") == ["default"]
        b = self.direct_b()
        assert b.config_get("requirepass")["requirepass"] == SECRET_B
        assert b.execute_command("ACL", "USERS") == ["default"]


@pytest.fixture(scope="module")
def sealed():
    lab = Lab()
    yield Sealed(lab)
    finish_lab(lab)


# ---------------------------------------------------------------- CONFIG GET

EMPTY_REQUIREPASS = b"*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n"


def test_config_get_requirepass_answers_empty(sealed):
    c = sealed.conn()
    assert c.call_raw("ZOS.AT", "a", "CONFIG", "GET", "requirepass")[0] == EMPTY_REQUIREPASS
    assert c.call_raw("CONFIG", "GET", "requirepass")[0] == EMPTY_REQUIREPASS  # node a: default
    assert c.call_raw("ZOS.AT", "b", "CONFIG", "GET", "requirepass")[0] == EMPTY_REQUIREPASS
    assert c.call("ZOS.USE", "b") == "OK"
    assert c.call_raw("CONFIG", "GET", "requirepass")[0] == EMPTY_REQUIREPASS
    # a client naming its node with AUTH <node> <password>, as redis-py does from a URL
    r = sealed.proxy.client(username="a", password="anything")
    assert r.config_get("requirepass") == {"requirepass": ""}


@pytest.mark.parametrize("args", [
    ["*"], ["*pass*"], ["masterauth", "requirepass", "maxmemory"], ["REQUIREPASS"],
    ["require?ass"], ["*PASS*"], ["*auth*"], ["tls-*"], ["maxmemory", "*"],
    ["requirepass", "requirepass"],
], ids=lambda a: " ".join(a))
@pytest.mark.parametrize("route", ["connection", "zos.at"])
def test_config_get_never_shows_a_secret(sealed, args, route):
    c = sealed.conn()
    prefix = ["ZOS.AT", "a"] if route == "zos.at" else []
    raw, got = c.call_raw(*(prefix + ["CONFIG", "GET"] + args))
    no_secret_in(raw)
    assert isinstance(got, list), got
    want = sealed.direct_a().execute_command("CONFIG", "GET", *args)
    want = pairs(want) if isinstance(want, list) else want
    got = pairs(got)
    assert set(got) == set(want)
    for k, v in want.items():
        if k.lower() in SECRET_PARAMS:  # redis echoes a name as it was asked
            assert got[k] == "", (k, got[k])
        else:
            assert got[k] == v, (k, got[k], v)  # every other parameter as the node says


def test_config_get_in_multi_exec_never_shows_a_secret(sealed):
    c = sealed.conn()
    assert c.call("MULTI") == "OK"
    for args in (["requirepass"], ["*"], ["masterauth", "requirepass", "maxmemory"]):
        assert c.call("CONFIG", "GET", *args) == "QUEUED"
    assert c.call("SET", "sealed:multi", "1") == "QUEUED"
    raw, got = c.call_raw("EXEC")
    no_secret_in(raw)
    assert got[0] == ["requirepass", ""]
    assert pairs(got[1])["requirepass"] == "" and pairs(got[1])["masterauth"] == ""
    assert pairs(got[1])["maxmemory-policy"] == "noeviction"
    assert pairs(got[2]) == {"masterauth": "", "requirepass": "", "maxmemory": "0"}
    assert got[3] == "OK"


@pytest.mark.parametrize("args", [["requirepass"], ["*"], ["*pass*"]], ids=" ".join)
def test_config_get_through_zos_all_never_shows_a_secret(sealed, args):
    c = sealed.conn()
    raw, got = c.call_raw("ZOS.ALL", "CONFIG", "GET", *args)
    no_secret_in(raw)
    per_node = pairs(got)
    assert set(per_node) == {"a", "b"}
    for node, reply in per_node.items():
        assert isinstance(reply, list), (node, reply)
        assert pairs(reply)["requirepass"] == "", (node, reply)


# ---------------------------------------------------------------- CONFIG SET, ACL

REFUSED = [
    ["CONFIG", "SET", "requirepass", "x"],
    ["CONFIG", "SET", "masterauth", "x"],
    ["config", "set", "REQUIREPASS", "x"],
    ["CONFIG", "SET", "tls-key-file-pass", "x"],
    ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru", "requirepass", "x"],
    ["ACL", "LIST"],
    ["acl", "list"],
    ["ACL", "GETUSER", "default"],
    ["ACL", "SETUSER", "bob", "on"],
    ["ACL", "SETUSER", "default", ">x"],
    ["ACL", "DELUSER", "bob"],
    ["ACL", "USERS"],
    ["ACL", "LOAD"],
    ["ACL", "SAVE"],
    ["ACL", "DRYRUN", "default", "get", "k"],
    ["ACL", "LOG"],
]


@pytest.mark.parametrize("args", REFUSED, ids=" ".join)
def test_secret_changing_commands_are_refused(sealed, args):
    c = sealed.conn()
    for route in ([], ["ZOS.AT", "a"], ["ZOS.AT", "b"]):
        raw, got = c.call_raw(*(route + args))
        assert isinstance(got, ErrorReply) and got.startswith("NOPERM"), (route, got)
        no_secret_in(raw)
    # inside MULTI: refused there too, and EXEC runs nothing of it
    assert c.call("MULTI") == "OK"
    got = c.call(*args)
    assert isinstance(got, ErrorReply) and got.startswith("NOPERM"), ("in MULTI", got)
    no_secret_in(c.call_raw("EXEC")[0])
    # through ZOS.ALL: refused as a whole, or each node's answer is the refusal
    raw, got = c.call_raw(*(["ZOS.ALL"] + args))
    no_secret_in(raw)
    if isinstance(got, ErrorReply):
        assert got.startswith("NOPERM"), ("ZOS.ALL", got)
    else:
        assert isinstance(got, list) and len(got) == 4, ("ZOS.ALL", got)
        for node, reply in pairs(got).items():
            assert isinstance(reply, ErrorReply) and reply.startswith("NOPERM"), (node, reply)
    sealed.assert_nodes_unchanged()


def test_harmless_acl_and_config_set_go_through(sealed):
    c = sealed.conn()
    assert c.call("ACL", "WHOAMI") == "default"
    cats = c.call("ACL", "CAT")
    assert "keyspace" in cats and "dangerous" in cats
    assert c.call("ZOS.AT", "b", "ACL", "WHOAMI") == "default"
    try:
        assert c.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru") == "OK"
        assert sealed.direct_a().config_get("maxmemory-policy") == {
            "maxmemory-policy": "allkeys-lru"}
    finally:
        assert c.call("CONFIG", "SET", "maxmemory-policy", "noeviction") == "OK"
    sealed.assert_nodes_unchanged()


def test_admin_yes_lets_secrets_and_users_be_changed(lab):
    _, port_r, _ = lab.procs.redis(password=SECRET_A)
    port = free_port()
    p = lab.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                  + node_section("adm", port_r, secret=SECRET_A, extra="admin = yes\n")
                  + node_section("plain", port_r, secret=SECRET_A), port)
    c = RawConn(port)
    got = c.call("ZOS.AT", "plain", "ACL", "LIST")
    assert isinstance(got, ErrorReply) and got.startswith("NOPERM"), got
    users = c.call("ZOS.AT", "adm", "ACL", "LIST")
    assert isinstance(users, list) and users[0].startswith("user default on"), users
    assert c.call("ZOS.AT", "adm", "ACL", "SETUSER", "bob", "on") == "OK"
    assert c.call("ZOS.AT", "adm", "ACL", "USERS") == ["bob", "default"]
    assert c.call("ZOS.AT", "adm", "ACL", "DELUSER", "bob") == 1
    new = "rotated-" + SECRET_A
    assert c.call("ZOS.AT", "adm", "CONFIG", "SET", "requirepass", new) == "OK"
    try:
        direct = redis.Redis(port=port_r, password=new, decode_responses=True,
                             socket_timeout=TIMEOUT)
        assert direct.config_get("requirepass") == {"requirepass": new}
        # CONFIG GET still answers it empty, admin or not
        raw, got = c.call_raw("ZOS.AT", "adm", "CONFIG", "GET", "requirepass")
        assert raw == EMPTY_REQUIREPASS and new.encode() not in raw
    finally:
        assert c.call("ZOS.AT", "adm", "CONFIG", "SET", "requirepass", SECRET_A) == "OK"
    direct = redis.Redis(port=port_r, password=SECRET_A, decode_responses=True,
                         socket_timeout=TIMEOUT)
    assert direct.config_get("requirepass") == {"requirepass": SECRET_A}
    assert direct.execute_command("ACL", "USERS") == ["default"]
    p.assert_alive()


# ---------------------------------------------------------------- core dumps

def smaps(pid):
    """The mappings of PID: dicts lo, hi, perms, name, rss (kB), flags (set)."""
    maps, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = {"lo": int(m.group(1), 16), "hi": int(m.group(2), 16),
                       "perms": m.group(3), "name": m.group(4), "rss": 0, "flags": set()}
                maps.append(cur)
            elif line.startswith("Rss:"):
                cur["rss"] = int(line.split()[1])
            elif line.startswith("VmFlags:"):
                cur["flags"] = set(line.split()[1:])
    return maps


def special(m):
    """Kernel mappings ([vvar] is always 'dd') and reserved address space (ASan's shadow)."""
    return (m["name"].startswith("[v") or m["flags"] & {"io", "pf", "nr"}
            or m["hi"] - m["lo"] > (1 << 30))


def where_in_memory(pid, needle, maps):
    """The mappings of MAPS (readable, resident, not special) that hold NEEDLE."""
    hits = []
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for m in maps:
            if "r" not in m["perms"] or m["rss"] == 0 or special(m):
                continue
            try:
                mem.seek(m["lo"])
                data = mem.read(m["hi"] - m["lo"])
            except OSError:
                continue
            if needle in data:
                hits.append(m)
    return hits


def test_secrets_live_in_memory_core_dumps_leave_out(lab, capsys):
    """Once a config with secrets is loaded, they are in MADV_DONTDUMP mappings ('dd' in
    smaps' VmFlags).  ASan marks its own shadow 'dd' too: it is told not to here
    (use_madv_dontdump=0), and only mappings holding the secret count."""
    _, port_r, _ = lab.procs.redis(password=SECRET_A)
    port = free_port()
    env = dict(lab.env)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":use_madv_dontdump=0").lstrip(":")
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\nrequirepass = %s\n\n" % (port, PROXY_PASS)
            + node_section("a", port_r, secret=SECRET_A))
    proc, path = lab.procs.proxy(conf, env=env, ready_port=port)
    p = Proxy(lab.procs, proc, path, port)
    lab.proxies.append(p)
    r = p.client(password=PROXY_PASS)
    assert r.set("sealed:dd", "1") is True  # the link to a is up: AUTH was sent
    maps = smaps(proc.pid)
    dd = [m for m in maps if "dd" in m["flags"] and not special(m)]
    assert dd, "no MADV_DONTDUMP mapping in the proxy"
    for name, secret in (("node secret", SECRET_A), ("requirepass", PROXY_PASS)):
        hits = where_in_memory(proc.pid, secret.encode(), maps)
        assert any("dd" in m["flags"] for m in hits), (
            "the %s is nowhere in MADV_DONTDUMP memory (found in %s)"
            % (name, [(hex(m["lo"]), m["name"]) for m in hits]))
        with capsys.disabled():  # for the record: copies a core dump would still hold
            outside = [(hex(m["lo"]), m["name"] or "anon") for m in hits if "dd" not in m["flags"]]
            if outside:
                print("\n[info] %s also found outside MADV_DONTDUMP memory: %s" % (name, outside))
    p.assert_alive()


def start_as_nobody(lab, conf_text, port):
    """zos-proxy running as uid/gid 65534 (through lab.procs, stopped by PID at teardown)."""
    os.chmod(lab.tmp, 0o711)
    d = os.path.join(lab.tmp, "nobody")
    os.makedirs(d, exist_ok=True)
    os.chown(d, NOBODY, NOBODY)
    path = os.path.join(d, "proxy-nobody.toml")
    with open(path, "w") as f:
        f.write(conf_text)
    os.chmod(path, 0o600)
    os.chown(path, NOBODY, NOBODY)
    log = open(os.path.join(d, "proxy-nobody.log"), "w")
    exe = os.path.join(lab.tmp, "zos-proxy")  # the build may sit in a directory nobody cannot enter
    shutil.copy2(PROXY_BIN, exe)
    os.chmod(exe, 0o755)
    proc = lab.procs.start([exe, "-c", path], env=lab.env, stderr=log, user=NOBODY,
                           group=NOBODY, extra_groups=[])
    wait_port(port, proc=proc)
    p = Proxy(lab.procs, proc, path, port)
    lab.proxies.append(p)
    return p


def dumpable(pid):
    """proc(5): the files of a process that is not dumpable belong to root.  Meaningful for
    a process that runs as another user."""
    return os.stat("/proc/%d/status" % pid).st_uid != 0


@pytest.fixture
def dumpable_observable(lab):
    """Checks the observation itself on two known processes, else skips."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process as another user")
    plain = lab.procs.start(["sleep", "60"], user=NOBODY, group=NOBODY, extra_groups=[])
    sealed_off = lab.procs.start(
        ["/usr/bin/python3", "-c", "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0);"
         " print('x', flush=True); time.sleep(60)"],
        user=NOBODY, group=NOBODY, extra_groups=[], stdout=subprocess.PIPE)
    sealed_off.stdout.readline()  # prctl done
    ok = dumpable(plain.pid) and not dumpable(sealed_off.pid)
    lab.procs.stop(plain)
    lab.procs.stop(sealed_off)
    if not ok:
        pytest.skip("PR_SET_DUMPABLE is not observable through /proc ownership here")


def test_proxy_is_not_dumpable(lab, nodes, dumpable_observable):
    port = free_port()
    p = start_as_nobody(lab, "[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                        + node_section("a", nodes.tls_port, tls=True, secret=SECRET_A), port)
    assert pid_alive(p.proc.pid)
    assert not dumpable(p.proc.pid), "zos-proxy is dumpable: a core file would hold secrets"


def test_core_dump_yes_leaves_it_dumpable(lab, nodes, dumpable_observable):
    port = free_port()
    p = start_as_nobody(lab, "[proxy]\nlisten = 127.0.0.1:%d\ncore-dump = yes\n\n" % port
                        + node_section("a", nodes.tls_port, tls=True, secret=SECRET_A), port)
    assert pid_alive(p.proc.pid)
    assert dumpable(p.proc.pid), "core-dump = yes, yet zos-proxy is not dumpable"


# ---------------------------------------------------------------- -t refuses what the start refuses

LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [EWID] ")


def messages(text):
    """The messages of stderr/log TEXT without 'zos-proxy: ' or the log's time and level."""
    out = []
    for line in text.splitlines():
        line = LOG_PREFIX.sub("", line)
        if line.startswith("zos-proxy: "):
            line = line[len("zos-proxy: "):]
        if line.strip():
            out.append(line.strip())
    return out


@pytest.mark.parametrize("where", ["proxy-listen", "node-listen"])
def test_check_refuses_what_the_start_refuses(lab, nodes, where):
    port, nport = free_port(), free_port()
    if where == "proxy-listen":
        conf = "[proxy]\nlisten = 0.0.0.0:%d\n\n" % port + node_section("plain", nodes.plain_port)
    else:
        conf = ("[proxy]\nlisten = 127.0.0.1:%d\n\n" % port
                + node_section("plain", nodes.plain_port, extra="listen = 0.0.0.0:%d\n" % nport))
    path = lab.write_conf(conf)
    check = lab.run_proxy(["-t", "-c", path])
    p = lab.proxy(conf, port, wait=False)
    p.expect_exit = True
    rc = p.proc.wait(timeout=TIMEOUT)
    assert rc != 0, "the start did not refuse; log:\n" + p.log()
    refusal = [m for m in messages(p.log()) if "requirepass" in m]
    assert refusal, p.log()
    assert check.returncode != 0, "zos-proxy -t passed a file the start refuses: %r" % (
        check.stdout + check.stderr)
    said = messages(check.stderr)
    assert said and all(m in messages(p.log()) for m in said), (
        "-t said %r; the start said %r" % (said, messages(p.log())))
    assert any(m in said for m in refusal)

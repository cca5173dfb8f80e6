"""Fixtures of the end-to-end suite of issue 6: `zos init` against the stand-in VBoxManage
and qemu, and the proxy verbs ZOS.SSH, ZOS.SSH.INFO and ZOS.VBOX.

Every process a test starts goes through zostest.Procs and is stopped by PID in
teardown, even when the test fails (a qemu daemonized by `zos init --hypervisor
qemu` is not our child: its test stops it by the PID in its pidfile).  HOME and
ZOS_CONFIG always point into temp dirs; ports are picked free at run time.

A zos-proxy must still run after its tests and exit 0 on SIGTERM at teardown
(under a SANITIZER build, ZOS_BUILD=$PWD/build-asan, a non-zero exit is a
sanitizer report); its log is printed when not.  Every `zos` run is checked for
sanitizer reports on stderr.
"""
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import zostest  # noqa: E402
from zostest import Procs, free_port, isolated_env, wait_port  # noqa: E402

FIXTURES = os.path.join(zostest.ROOT, "tests", "fixtures")
STUB = os.path.join(FIXTURES, "VBoxManage")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "Sanitizer")
RUN_TIMEOUT = 60
ROOT_FLIST = "https://hub.grid.tf/tf-bootable/ubuntu:18.04.flist"


def pytest_sessionstart(session):
    for b in (zostest.CLI_BIN, zostest.PROXY_BIN, zostest.SIM_BIN):
        if not os.access(b, os.X_OK):
            raise pytest.UsageError("%s is missing: run `make` (or set ZOS_BUILD)" % b)


# ---------------------------------------------------------------- the CLI

class Result:
    def __init__(self, p, elapsed):
        self.rc = p.returncode
        self.out = p.stdout
        self.err = p.stderr
        self.elapsed = elapsed

    def __repr__(self):
        return "Result(rc=%r, out=%r, err=%r, %.2fs)" % (self.rc, self.out[-2000:],
                                                         self.err[-2000:], self.elapsed)


def clean_env(tmpdir, **extra):
    """isolated_env without anything that changes zos' or the stub's behaviour."""
    env = isolated_env(tmpdir)
    for k in ("ZOS_DEBUG", "ZOS_PROXY_PASSWORD", "GRID_ZEROTIER_ID", "GRID_ZEROTIER_ID_TESTING",
              "DISPLAY", "VBOX_STUB_FAIL", "VBOX_STUB_FAIL_MSG", "VBOX_STUB_LOCKED",
              "VBOX_STUB_LOG", "VBOX_STUB_STATE"):
        env.pop(k, None)
    env.update(extra)
    return env


class Cli:
    """One isolated user of `zos`: HOME, ZOS_CONFIG and environment in TMPDIR."""

    def __init__(self, tmpdir, **extra):
        self.tmp = str(tmpdir)
        self.env = clean_env(self.tmp, **extra)
        self.home = self.env["HOME"]
        self.config = self.env["ZOS_CONFIG"]

    def run(self, *args, env=None, timeout=RUN_TIMEOUT, cwd=None, input=None):
        e = dict(self.env)
        e.update(env or {})
        t0 = time.monotonic()
        p = subprocess.run([zostest.CLI_BIN] + [str(a) for a in args], env=e, cwd=cwd,
                           input=input, capture_output=True, text=True, timeout=timeout)
        r = Result(p, time.monotonic() - t0)
        for marker in SANITIZER_MARKS:
            assert marker not in r.err, "sanitizer report from zos %s:\n%s" % (args, r.err)
        return r

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.rc == 0, r
        return r

    def read_config(self):
        try:
            with open(self.config) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def sections(self):
        return parse_ini(self.read_config())


def parse_ini(text):
    """{section: {key: value}} of a zos.toml as zos writes it."""
    out, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = out.setdefault(line.strip("[]"), {})
        elif "=" in line and cur is not None:
            k, v = line.split("=", 1)
            cur[k.strip()] = v.strip()
    return out


# ---------------------------------------------------------------- the stand-in VBoxManage

class VBoxStub:
    """Where the stand-in VBoxManage of one test logs and keeps its state."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.log_path = os.path.join(directory, "vbox.log")
        self.state_path = os.path.join(directory, "vbox-state.json")

    def env(self):
        return {"VBOX_STUB_LOG": self.log_path, "VBOX_STUB_STATE": self.state_path}

    def log(self):
        """The recorded argv lists (without argv[0]), in order."""
        try:
            with open(self.log_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def clear_log(self):
        open(self.log_path, "w").close()

    def state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"vms": [], "hostonlyifs": [], "media": []}

    def vm(self, name):
        for vm in self.state()["vms"]:
            if vm["name"] == name:
                return vm
        return None

    def uuid(self, name):
        vm = self.vm(name)
        assert vm is not None, "no VM %r in the stub's state: %r" % (name, self.state())
        return vm["uuid"]

    def run(self, *args, home):
        """The stub itself (to prepare state a test needs)."""
        env = dict(os.environ, HOME=home, **self.env())
        env.pop("VBOX_STUB_FAIL", None)
        env.pop("VBOX_STUB_LOG")  # not recorded: only what zos runs is
        p = subprocess.run([STUB] + list(args), env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout


def create_sequence(home, name, memory_mb, disk_mb, port, iso, others=(), new_hostonly=True):
    """The VBoxManage commands of a creation (core0-protocol.md §9.7, vbox.h): the port
    scan (list vms, showvminfo of every other VM), the host-only interface, createvm,
    modifyvm, list vms, the disk, the ISO."""
    base = os.path.join(home, "VirtualBox VMs")
    vdi = os.path.join(base, name, "main%s.vdi" % name)
    seq = [["list", "vms"]] + [["showvminfo", u] for u in others]
    seq += [["list", "hostonlyifs"]]
    if new_hostonly:
        seq += [["hostonlyif", "create"]]
    seq += [
        ["createvm", "--name", name, "--ostype", "Linux_64", "--register", "--basefolder", base],
        ["modifyvm", name, "--memory", str(memory_mb), "--ioapic", "on", "--boot1", "dvd",
         "--boot2", "disk", "--nic1", "nat", "--nic2", "hostonly", "--hostonlyadapter2", "vboxnet0",
         "--vrde", "on", "--natpf1", "redis,tcp,,%d,,6379" % port],
        ["list", "vms"],
    ]
    if disk_mb > 0:
        seq += [
            ["createmedium", "disk", "--filename", vdi, "--size", str(disk_mb), "--format", "VDI"],
            ["storagectl", name, "--name", "SATA Controller", "--add", "sata", "--controller",
             "IntelAHCI"],
            ["storageattach", name, "--storagectl", "SATA Controller", "--port", "0", "--device",
             "0", "--type", "hdd", "--medium", vdi],
        ]
    seq += [
        ["storagectl", name, "--name", "IDE Controller", "--add", "ide"],
        ["storageattach", name, "--storagectl", "IDE Controller", "--port", "0", "--device", "0",
         "--type", "dvddrive", "--medium", iso],
    ]
    return seq


def start_sequence(uuid_):
    return [["list", "vms"], ["showvminfo", uuid_], ["startvm", uuid_, "--type", "headless"]]


# ---------------------------------------------------------------- simulated nodes

def start_sim(procs, tls=False, port=None, log=None):
    """A zos-node-sim with its data under PROCS.tmp; (proc, port) once ready."""
    datadir = tempfile.mkdtemp(dir=procs.tmp, prefix="sim-")
    argv = [zostest.SIM_BIN, "--tls" if tls else "--no-tls", "--dir", datadir]
    if port:
        argv += ["--port", str(port)]
    p = procs.start(argv, stdout=subprocess.PIPE, stderr=log)
    deadline = time.monotonic() + 15
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("zos-node-sim printed no ready line")
        ready, _, _ = select.select([p.stdout], [], [], left)
        if ready:
            b = os.read(p.stdout.fileno(), 1)
            if not b:
                raise RuntimeError("zos-node-sim exited with %s before it was ready" % p.wait())
            line += b
    words = line.decode().split()
    assert words[:2] == ["zos-node-sim", "ready"], line
    p.datadir = datadir
    return p, int(words[2].rsplit(":", 1)[1])


class Node:
    """Raw core0 jobs on a plain simulated node (core0-protocol.md §3.3), with redis-py."""

    def __init__(self, port, datadir=None):
        import redis
        self.port = port
        self.datadir = datadir
        self.r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=30)

    @staticmethod
    def request(command, arguments=None):
        return {"id": str(uuid.uuid4()), "command": command,
                "arguments": {} if arguments is None else arguments, "queue": None,
                "max_time": None, "stream": False, "tags": None, "recurring_period": None}

    def wait(self, id, timeout=20):
        flag = "result:%s:flag" % id
        assert self.r.brpoplpush(flag, flag, timeout) is not None, "job %s not taken" % id
        text = self.r.brpoplpush("result:%s" % id, "result:%s" % id, timeout)
        assert text is not None, "no result for job %s" % id
        return json.loads(text)

    def call(self, command, arguments=None, timeout=20):
        req = self.request(command, arguments)
        self.r.rpush("core:default", json.dumps(req))
        return self.wait(req["id"], timeout)

    def dispatch(self, container, inner):
        outer = self.call("corex.dispatch", {"container": container, "command": inner})
        assert outer["state"] == "SUCCESS", outer
        return self.wait(json.loads(outer["data"]))

    def system(self, container, *argv):
        return self.dispatch(container, self.request(
            "core.system", {"name": argv[0], "args": list(argv[1:]), "dir": "", "stdin": "",
                            "env": None}))

    def create_ssh_container(self, port, authorized_key, key_path):
        """A container with PORT forwarded to 22, ssh enabled as zos sshenable does it
        (§9.3), and the keys `zos container new` leaves (container:<id>:sshport, ip,
        sshkey, sshenabled).  Returns its id."""
        res = self.call("corex.create", {
            "root": ROOT_FLIST, "nics": [{"type": "default"}], "port": {str(port): 22},
            "config": {"/root/.ssh/authorized_keys": authorized_key + "\n"}}, timeout=30)
        assert res["state"] == "SUCCESS", res
        cid = json.loads(res["data"])
        for argv in (("/bin/mkdir", "-p", "/root/.ssh"), ("/bin/mkdir", "-p", "/etc/ssh"),
                     ("/bin/chmod", "700", "-R", "/etc/ssh"),
                     ("/usr/sbin/service", "ssh", "start")):
            res = self.system(cid, *argv)
            assert (res["state"], res["code"]) == ("SUCCESS", 0), res
        for k, v in (("sshport", str(port)), ("ip", "127.0.0.1"), ("sshkey", key_path),
                     ("layeredssh", "false"), ("sshenabled", "true")):
            self.r.set("container:%d:%s" % (cid, k), v)
        return cid

    def terminate(self, cid):
        res = self.call("corex.terminate", {"container": cid})
        assert res["state"] == "SUCCESS", res

    def host_pub(self, cid):
        """The container sshd's public host key line (the simulator keeps it per container)."""
        with open(os.path.join(self.datadir, "containers", str(cid), "ssh",
                               "host_ed25519_key.pub")) as f:
            return f.read().strip()


def keygen(path, comment="tester@zos"):
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                       check=True, stdout=subprocess.DEVNULL)
    with open(path + ".pub") as f:
        return f.read().strip()


# ---------------------------------------------------------------- the proxy

class RespError(Exception):
    """An error reply; str() is the whole line, "ERR ..." included."""


class Resp:
    """A minimal RESP2 client on a raw socket: replies exactly as sent."""

    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.settimeout(timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the proxy")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the proxy")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """The next reply: str, int, None, list, or a RespError (returned, not raised)."""
        line = self._line()
        t, rest = line[:1], line[1:].decode()
        if t == b"+":
            return rest
        if t == b"-":
            return RespError(rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise AssertionError("bad reply line %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def ok(self, *args):
        r = self.call(*args)
        if isinstance(r, RespError):
            raise r
        return r

    def err(self, *args):
        r = self.call(*args)
        assert isinstance(r, RespError), "expected an error from %r, got %r" % (args, r)
        return str(r)


class Proxy:
    """A zos-proxy in a directory of its own (its config, log and zos-known_hosts)."""

    def __init__(self, procs, node_port, env, extra_conf=""):
        self.procs = procs
        self.dir = tempfile.mkdtemp(dir=procs.tmp, prefix="proxy-")
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "zos.toml")
        self.known_hosts = os.path.join(self.dir, "zos-known_hosts")
        self.log_path = os.path.join(self.dir, "proxy.log")
        with open(self.conf_path, "w") as f:
            f.write("[proxy]\nlisten = 127.0.0.1:%d\n%s\n[sim]\naddress = 127.0.0.1\nport = %d\n"
                    "tls = no\n" % (self.port, extra_conf, node_port))
        self.env = env
        with open(self.log_path, "w") as log:
            self.proc = procs.start([zostest.PROXY_BIN, "-c", self.conf_path], env=env, stderr=log)
        wait_port(self.port, proc=self.proc)

    def client(self, timeout=30):
        return Resp(self.port, timeout=timeout)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no log)"

    def check_and_stop(self):
        """The proxy still runs, exits 0 on SIGTERM, and logged no sanitizer report."""
        alive = self.proc.poll() is None
        rc = self.procs.stop(self.proc, timeout=15)
        text = self.log()
        problems = []
        if not alive:
            problems.append("the proxy died during the tests (exit %s)" % rc)
        elif rc != 0:
            problems.append("the proxy exited %s on SIGTERM" % rc)
        if any(m in text for m in SANITIZER_MARKS):
            problems.append("sanitizer report in the proxy's log")
        assert not problems, "%s\n--- proxy log:\n%s" % ("; ".join(problems), text[-6000:])


def run_parallel_gets(port, key, value, clients=5, each=100, timeout=30):
    """CLIENTS threads doing EACH GETs of KEY through the proxy; returns the time each
    client finished (monotonic) and asserts every reply."""
    import threading
    done, errors = [None] * clients, []

    def worker(i):
        try:
            c = Resp(port, timeout=timeout)
            for _ in range(each):
                got = c.call("GET", key)
                if got != value:
                    errors.append("client %d got %r" % (i, got))
                    break
            c.close()
            done[i] = time.monotonic()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("client %d: %r" % (i, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not errors, errors
    assert all(d is not None for d in done), "a GET client hung"
    return done


@pytest.fixture
def fnprocs():
    p = Procs()
    try:
        yield p
    finally:
        p.close()


def have_root_sshd():
    return (os.access("/usr/sbin/sshd", os.X_OK) and shutil.which("ssh-keygen") is not None
            and os.geteuid() == 0)

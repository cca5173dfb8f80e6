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
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import zostest  # noqa: E402
from resp_raw import RawResp  # noqa: E402
from zostest import (ROOT_FLIST, SANITIZER_MARKS, Procs, fnprocs, free_port,  # noqa: E402,F401
                     job_request, node_section, read_log, wait_port)

FIXTURES = os.path.join(zostest.ROOT, "tests", "fixtures")
STUB = os.path.join(FIXTURES, "VBoxManage")
ENV_DROP = zostest.CLI_ENV_DROP + ("DISPLAY", "VBOX_STUB_FAIL", "VBOX_STUB_FAIL_MSG",
                                   "VBOX_STUB_LOCKED", "VBOX_STUB_LOG", "VBOX_STUB_STATE")


def pytest_sessionstart(session):
    zostest.require_binaries((zostest.CLI_BIN, zostest.PROXY_BIN, zostest.SIM_BIN))


# ---------------------------------------------------------------- the CLI

def clean_env(tmpdir, **extra):
    """isolated_env without anything that changes zos' or the stub's behaviour."""
    return zostest.clean_env(tmpdir, ENV_DROP, **extra)


class Cli(zostest.CliUser):
    """One isolated user of `zos`: HOME, ZOS_CONFIG and environment in TMPDIR."""

    env_drop = ENV_DROP

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
    """A zos-node-sim with its data under PROCS.tmp (proc.datadir); (proc, port) once ready."""
    return zostest.start_sim(procs, tls=tls, port=port, stderr=log, timeout=15,
                             datadir=procs.mkdtemp("sim-"))


class Node:
    """Raw core0 jobs on a plain simulated node (core0-protocol.md §3.3), with redis-py."""

    def __init__(self, port, datadir=None):
        import redis
        self.port = port
        self.datadir = datadir
        self.r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=30)

    request = staticmethod(job_request)

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
    return zostest.keygen(path, comment, dir_mode=0o700)


# ---------------------------------------------------------------- the proxy

class RespError(Exception):
    """An error reply; str() is the whole line, "ERR ..." included."""


class Resp(RawResp):
    """A minimal RESP2 client on a raw socket: replies exactly as sent; an error reply
    is a RespError (returned by read/call, raised by ok)."""

    error = RespError
    timeout = 30

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
        self.dir = procs.mkdtemp("proxy-")
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "zos.toml")
        self.known_hosts = os.path.join(self.dir, "zos-known_hosts")
        self.log_path = os.path.join(self.dir, "proxy.log")
        with open(self.conf_path, "w") as f:
            f.write("[proxy]\nlisten = 127.0.0.1:%d\n%s\n" % (self.port, extra_conf)
                    + node_section("sim", node_port))
        self.env = env
        with open(self.log_path, "w") as log:
            self.proc = procs.start([zostest.PROXY_BIN, "-c", self.conf_path], env=env, stderr=log)
        wait_port(self.port, proc=self.proc)

    def client(self, timeout=30):
        return Resp(self.port, timeout=timeout)

    def log(self):
        return read_log(self.log_path)

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

    zostest.run_threads([threading.Thread(target=worker, args=(i,)) for i in range(clients)],
                        timeout)
    assert not errors, errors
    assert all(d is not None for d in done), "a GET client hung"
    return done


def module_lab(make):
    """A module-scoped `lab` fixture of MAKE() (an object with .procs and .proxy): the
    proxy must still run and exit cleanly at teardown; every process is stopped."""
    @pytest.fixture(scope="module")
    def lab():
        lab = make()
        try:
            yield lab
            lab.proxy.check_and_stop()
        finally:
            lab.procs.close()
    return lab


def have_root_sshd():
    return (os.access("/usr/sbin/sshd", os.X_OK) and shutil.which("ssh-keygen") is not None
            and os.geteuid() == 0)


@pytest.fixture(scope="module")
def node():
    """A TLS simulated node without secret; every zos init of the module forwards its port."""
    procs = Procs()
    try:
        _, port = start_sim(procs, tls=True, port=free_port())
        yield port
    finally:
        procs.close()

"""A container's port 22 is a real sshd (issue 6, part 4; README "SSH in containers").

The simulator runs /usr/sbin/sshd on 127.0.0.1 at the host port forwarded to 22
once `service ssh start` runs in the container.  These tests drive it the way zos
enables ssh (core0-protocol.md §9.3) and then use the real `ssh` and `sftp`
clients, with keys made by ssh-keygen under a temporary HOME.
"""
import getpass
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import uuid

import pytest

import zostest
from conftest import Node, check_logs, start_node
from zostest import wait_gone

ROOT = zostest.ROOT_FLIST
SSHD = "/usr/sbin/sshd"

pytestmark = pytest.mark.skipif(
    not (os.access(SSHD, os.X_OK) and shutil.which("ssh") and shutil.which("sftp")
         and shutil.which("ssh-keygen")),
    reason="needs openssh-server (%s) and the ssh, sftp and ssh-keygen clients" % SSHD)

# sshd runs as the simulator's user: root logs in as root, anyone else as himself.
USER = "root" if os.geteuid() == 0 else getpass.getuser()


class Keys:
    """Two ed25519 keys (one authorized, one not) in a temporary HOME."""

    def __init__(self, tmp):
        self.env = zostest.isolated_env(tmp)
        self.dir = os.path.join(self.env["HOME"], ".ssh")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.good = self._make("id_ed25519")
        self.bad = self._make("wrong_ed25519")
        with open(self.good + ".pub") as f:
            self.authorized = f.read()

    def _make(self, name):
        path = os.path.join(self.dir, name)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path],
                       check=True, env=self.env, stdout=subprocess.DEVNULL)
        return path

    def opts(self, key=None, known=None):
        known = known or os.path.join(self.dir, "known_hosts-%s" % uuid.uuid4().hex[:8])
        return ["-F", "/dev/null", "-i", key or self.good, "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=" + known,
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]

    def ssh(self, port, command, key=None, timeout=15):
        argv = ["ssh"] + self.opts(key) + ["-p", str(port), "%s@127.0.0.1" % USER, command]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def sftp(self, port, batch, timeout=15):
        argv = ["sftp"] + self.opts() + ["-P", str(port), "-b", "-", "%s@127.0.0.1" % USER]
        return subprocess.run(argv, env=self.env, input=batch, capture_output=True, text=True,
                              timeout=timeout)

    def host_key(self, port):
        """The host key sshd presents on PORT, as the known_hosts line's key part."""
        known = os.path.join(self.dir, "known-%s" % uuid.uuid4().hex[:8])
        r = subprocess.run(["ssh"] + self.opts(known=known) + ["-p", str(port),
                           "%s@127.0.0.1" % USER, "true"], env=self.env, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=15)
        assert r.returncode == 0, r
        with open(known) as f:
            return f.read().split(None, 1)[1].strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return Keys(str(tmp_path_factory.mktemp("ssh")))


@pytest.fixture(scope="module", autouse=True)
def simulates_sshd(node, keys):
    """Refuses a simulator built without sshd.c: it would run these commands on the
    host (starting the host's sshd, chmod-ing its /etc/ssh).  The probe is harmless
    either way: `service ssh status` only reads."""
    cid = create(node, keys)
    try:
        res = node.dispatch(cid, system("service", "ssh", "status"))
    finally:
        node.call("corex.terminate", {"container": cid})
    if (res["code"], res.get("streams")) != (1003, [" * sshd is not running\n", ""]):
        pytest.fail("%s does not simulate a container's sshd (a stale build?): %r"
                    % (zostest.SIM_BIN, res))


def system(name, *args):
    return Node.request("core.system", {"name": name, "args": list(args), "dir": "", "stdin": "",
                                        "env": None})


def create(node, keys, port=None, **extra):
    a = {"root": ROOT, "nics": [{"type": "default"}],
         "config": {"/root/.ssh/authorized_keys": keys.authorized}}
    if port:
        a["port"] = {str(port): 22}
    a.update(extra)
    res = node.call("corex.create", a, timeout=30)
    assert res["state"] == "SUCCESS", res
    return json.loads(res["data"])


def enable_ssh(node, cid):
    """What zos sshenable sends (core0-protocol.md §9.3); the results of the last two."""
    for cmd in (("/bin/mkdir", "-p", "/root/.ssh"), ("/bin/mkdir", "-p", "/etc/ssh"),
                ("/bin/chmod", "700", "-R", "/etc/ssh")):
        res = node.dispatch(cid, system(*cmd))
        assert (res["state"], res["code"]) == ("SUCCESS", 0), res
    start = node.dispatch(cid, system("/usr/sbin/service", "ssh", "start"))
    status = node.dispatch(cid, system("service", "ssh", "status"))
    return start, status


def container_dir(node, cid):
    res = node.dispatch(cid, system("pwd"))
    return res["streams"][0].strip()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def listener(port):
    """PID of the process listening on 127.0.0.1:PORT (from /proc), or None."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            w = line.split()
            if w[3] == "0A" and int(w[1].split(":")[1], 16) == port:
                inodes.add("socket:[%s]" % w[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def descendants(pid):
    """PID and every process below it."""
    parent = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % p) as f:
                parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
    out, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def test_sshenable_sequence_then_exec_env_and_exit_codes(node, keys):
    port = zostest.free_port()
    cid = create(node, keys, port, env={"FOO": "bar baz"})
    try:
        host_etc_ssh = os.stat("/etc/ssh").st_mode if os.path.exists("/etc/ssh") else None
        start, status = enable_ssh(node, cid)
        assert (start["state"], start["code"], start["level"]) == ("SUCCESS", 0, 0), start
        assert start["streams"][0] == (" * Starting OpenBSD Secure Shell server sshd\n"
                                       "   ...done.\n")
        assert start["container"] == cid
        assert (status["code"], status["streams"][0]) == (0, " * sshd is running\n"), status
        root = container_dir(node, cid)
        # mkdir/chmod of absolute paths changed the container, not the host
        assert stat.S_IMODE(os.stat(os.path.join(root, "etc/ssh")).st_mode) == 0o700
        if host_etc_ssh is not None:
            assert os.stat("/etc/ssh").st_mode == host_etc_ssh

        r = keys.ssh(port, "pwd; echo \"$FOO\"; echo err >&2")
        assert r.returncode == 0, r
        assert r.stdout == "%s\nbar baz\n" % root
        assert r.stderr == "err\n"
        assert keys.ssh(port, "exit 3").returncode == 3
        r = keys.ssh(port, "echo $HOME; cat root/.ssh/authorized_keys")
        assert r.stdout == root + "\n" + keys.authorized, r
    finally:
        node.call("corex.terminate", {"container": cid})
    assert refused(port)


def test_wrong_key_is_refused(node, keys):
    port = zostest.free_port()
    cid = create(node, keys, port)
    try:
        enable_ssh(node, cid)
        r = keys.ssh(port, "true", key=keys.bad)
        assert r.returncode == 255, r
        assert "Permission denied" in r.stderr
        assert keys.ssh(port, "true").returncode == 0
    finally:
        node.call("corex.terminate", {"container": cid})


def test_sftp_put_and_get_in_the_container_dir(node, keys, tmp_path):
    port = zostest.free_port()
    cid = create(node, keys, port)
    try:
        enable_ssh(node, cid)
        root = container_dir(node, cid)
        src = tmp_path / "up.bin"
        src.write_bytes(os.urandom(200000))
        with open(os.path.join(root, "there.txt"), "w") as f:
            f.write("from the container\n")
        back = tmp_path / "back.txt"
        r = keys.sftp(port, "pwd\nput %s\nget there.txt %s\n" % (src, back))
        assert r.returncode == 0, r
        assert "Remote working directory: %s" % root in r.stdout
        with open(os.path.join(root, "up.bin"), "rb") as f:
            assert f.read() == src.read_bytes()
        assert back.read_text() == "from the container\n"
    finally:
        node.call("corex.terminate", {"container": cid})


def test_terminate_stops_sshd_and_a_new_container_has_a_new_host_key(node, keys):
    port = zostest.free_port()
    cid = create(node, keys, port)
    enable_ssh(node, cid)
    first = keys.host_key(port)
    assert first.startswith("ssh-ed25519 ")
    pid = listener(port)
    assert pid is not None and pid != node.proc.pid
    assert keys.host_key(port) == first  # the same key for the container's life
    node.call("corex.terminate", {"container": cid})
    assert wait_gone([pid]) == []
    assert refused(port)

    again = create(node, keys, port)
    try:
        enable_ssh(node, again)
        assert keys.host_key(port) != first
    finally:
        node.call("corex.terminate", {"container": again})
    assert refused(port)


def test_forwards_and_service_actions(node, keys):
    cid = create(node, keys)  # a default nic, no forward yet
    port = zostest.free_port()
    try:
        res = node.dispatch(cid, system("service", "ssh", "status"))
        assert (res["state"], res["code"], res["streams"][0]) == (
            "ERROR", 1003, " * sshd is not running\n")
        start, status = enable_ssh(node, cid)
        assert start["code"] == 0 and status["code"] == 0  # running, reachable from nowhere
        assert refused(port)
        add = {"container": cid, "host_port": str(port), "container_port": 22}
        assert node.json("corex.portforward-add", add) is None
        assert keys.ssh(port, "echo reached").stdout == "reached\n"
        assert node.json("corex.portforward-remove", add) is None
        assert refused(port)
        # sshd still runs inside the container; a forward makes it reachable again
        assert node.dispatch(cid, system("/etc/init.d/ssh", "status"))["code"] == 0
        assert node.json("corex.portforward-add", add) is None
        assert keys.ssh(port, "true").returncode == 0
        pid = listener(port)
        res = node.dispatch(cid, Node.request("bash", {"script": "service ssh restart\n"}))
        assert res["streams"][0] == (" * Restarting OpenBSD Secure Shell server sshd\n"
                                     "   ...done.\n"), res
        assert wait_gone([pid]) == [] and listener(port) not in (None, pid)
        res = node.dispatch(cid, system("service", "ssh", "stop"))
        assert (res["code"], res["streams"][0]) == (
            0, " * Stopping OpenBSD Secure Shell server sshd\n   ...done.\n")
        assert refused(port)
        assert node.dispatch(cid, system("service", "ssh", "status"))["code"] == 1003
        # sshd run directly starts it too; twice fails as a real one would
        res = node.dispatch(cid, system("/usr/sbin/sshd"))
        assert (res["state"], res["code"], res["streams"]) == ("SUCCESS", 0, ["", ""])
        assert keys.ssh(port, "true").returncode == 0
        res = node.dispatch(cid, system("/usr/sbin/sshd"))
        assert res["code"] == 1255 and "Address already in use" in res["streams"][1]
    finally:
        node.call("corex.terminate", {"container": cid})
    assert refused(port)


def test_other_services_and_bad_actions(node, keys):
    cid = create(node, keys)
    try:
        res = node.dispatch(cid, system("service", "nginx", "start"))
        assert (res["state"], res["code"], res["streams"]) == (
            "ERROR", 1001, ["", " nginx: unrecognized service\n"])
        res = node.dispatch(cid, system("service", "ssh", "bounce"))
        assert res["code"] == 1001 and res["streams"][1].startswith("Usage: /etc/init.d/ssh {")
        # a script that is more than one simple command runs as before (on the host)
        res = node.dispatch(cid, Node.request("bash", {"script": "echo one; echo two"}))
        assert res["streams"][0] == "one\ntwo\n"
    finally:
        node.call("corex.terminate", {"container": cid})


def test_missing_sshd_fails_with_1001(procs, keys):
    env = dict(os.environ, ZOS_SIM_SSHD="/nonexistent/sbin/sshd")
    proc, nport = start_node(procs, env=env)
    n = Node(nport, proc=proc)
    cid = create(n, keys, zostest.free_port())
    res = n.dispatch(cid, system("service", "ssh", "start"))
    assert (res["state"], res["code"]) == ("ERROR", 1001), res
    assert res["streams"][0] == " * Starting OpenBSD Secure Shell server sshd\n   ...fail!\n"
    assert "/nonexistent/sbin/sshd is not installed" in res["streams"][1]
    assert n.dispatch(cid, system("service", "ssh", "status"))["code"] == 1003
    n.r.close()


def test_sigterm_leaves_no_sshd(procs, keys):
    proc, nport = start_node(procs)
    n = Node(nport, proc=proc)
    ports = [zostest.free_port(), zostest.free_port()]
    for port in ports:
        enable_ssh(n, create(n, keys, port))
    # a session in progress: its processes must go too
    argv = ["ssh"] + keys.opts() + ["-p", str(ports[0]), "%s@127.0.0.1" % USER,
                                    "echo started; exec sleep 60"]
    client = procs.start(argv, env=keys.env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert client.stdout.readline() == b"started\n"
    pids = []
    for port in ports:
        pid = listener(port)
        assert pid is not None
        pids += descendants(pid)
    assert len(pids) > 3  # two listeners, a connection's sshd processes and its sleep
    n.r.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert wait_gone(pids) == []
    assert all(refused(p) for p in ports)
    assert client.wait(timeout=10) == 255  # the connection was cut
    check_logs(procs, want_rc=0)


def test_sshd_dies_with_a_killed_simulator(procs, keys):
    """PR_SET_PDEATHSIG: even a SIGKILLed simulator leaves no listening sshd."""
    data = os.path.join(procs.tmp, "node")  # kept by a SIGKILL: inside procs.tmp
    proc, nport = start_node(procs, extra=("--dir", data))
    n = Node(nport, proc=proc)
    port = zostest.free_port()
    enable_ssh(n, create(n, keys, port))
    pid = listener(port)
    assert pid is not None
    n.r.close()
    proc.kill()
    proc.wait(timeout=10)
    assert wait_gone([pid]) == []
    assert refused(port)


def test_a_host_port_in_use_makes_start_fail(node, keys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cid = create(node, keys, port)
        try:
            res = node.dispatch(cid, system("service", "ssh", "start"))
            assert (res["state"], res["code"]) == ("ERROR", 1001), res
            assert res["streams"][0].endswith("   ...fail!\n")
            assert "sshd exited at start" in res["streams"][1]
            assert "Address already in use" in res["streams"][1]
            assert node.dispatch(cid, system("service", "ssh", "status"))["code"] == 1003
        finally:
            node.call("corex.terminate", {"container": cid})

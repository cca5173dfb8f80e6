"""ZOS.SSH and ZOS.SSH.INFO through a real zos-proxy, against the simulator's container sshd.

Containers are made with raw core0 jobs (corex.create with a port forward to 22,
then the §9.3 commands that start ssh in them, through corex.dispatch), and the
keys `zos container new` stores are set on the node (container:<id>:sshport, ip,
sshkey, sshenabled): the proxy reads them with one MGET, checks them as the CLI
does (zos_container_ssh_check) and connects with libssh from a worker thread.
Host keys are pinned in zos-known_hosts beside the proxy's config file.
"""
import base64
import hashlib
import os

import pytest

from conftest import (Cli, Node, Procs, Proxy, clean_env, free_port, have_root_sshd,
                      keygen, module_lab, run_parallel_gets, start_sim)
from zostest import sh_barrier, sh_gate, wait_file

pytestmark = pytest.mark.skipif(
    not have_root_sshd(),
    reason="needs /usr/sbin/sshd, ssh-keygen and root (the proxy logs in as root)")


class Lab:
    def __init__(self):
        self.procs = Procs()
        self.keydir = os.path.join(self.procs.tmp, "keys")
        self.good = os.path.join(self.keydir, "id_ed25519")
        self.bad = os.path.join(self.keydir, "wrong_ed25519")
        self.authorized = keygen(self.good)
        keygen(self.bad, "wrong@zos")
        proc, self.node_port = start_sim(self.procs)
        self.node = Node(self.node_port, proc.datadir)
        env = clean_env(os.path.join(self.procs.tmp, "proxyhome"))
        self.proxy = Proxy(self.procs, self.node_port, env)
        self.cids = []

    def container(self, port=None):
        port = port or free_port()
        cid = self.node.create_ssh_container(port, self.authorized, self.good)
        self.cids.append(cid)
        return cid, port


lab = module_lab(Lab)


@pytest.fixture(scope="module")
def box(lab):
    """One container with ssh, shared by the tests that do not change it."""
    return lab.container()


def pins(lab):
    try:
        with open(lab.proxy.known_hosts) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def sha256_hex(pub_line):
    return hashlib.sha256(base64.b64decode(pub_line.split()[1])).hexdigest()


def sha256_openssh(pub_line):
    digest = hashlib.sha256(base64.b64decode(pub_line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def test_stdout_of_a_command(lab, box):
    cid, _ = box
    c = lab.proxy.client()
    assert c.ok("ZOS.SSH", cid, "echo", "hello") == "hello\n"
    # the words are joined with blanks into one shell command line
    assert c.ok("ZOS.SSH", cid, "echo out; echo err >&2") == "out\n"  # stderr dropped on 0
    assert c.ok("ZOS.SSH", cid, "printf", "'%s|'", "a", "b") == "a|b|"
    root = os.path.join(lab.node.datadir, "containers", str(cid), "root")
    assert c.ok("ZOS.SSH", cid, "pwd") == root + "\n"  # the container's directory
    assert c.ok("ZOS.SSH", cid, "true") == ""
    big = c.ok("ZOS.SSH", cid, "head -c 300000 /dev/zero | tr '\\0' x")
    assert big == "x" * 300000
    assert c.ok("ZOS.SSH", cid, "sleep 0.2; echo late", "TIMEOUT", "5") == "late\n"
    c.close()


def test_exit_status_errors_carry_stderr(lab, box):
    cid, port = box
    c = lab.proxy.client()
    assert c.err("ZOS.SSH", cid, "echo partial; echo oops >&2; exit 3") == \
        "ERR command failed with exit status 3: oops"
    assert c.err("ZOS.SSH", cid, "exit 4") == "ERR command failed with exit status 4"
    # an error reply is one line: the line breaks inside stderr become blanks
    assert c.err("ZOS.SSH", cid, "printf 'a\\nb\\n' >&2; exit 1") == \
        "ERR command failed with exit status 1: a b"
    # the error names the timeout: a proxy that waited for the command would answer
    # its (empty) output 30 s later instead
    assert c.err("ZOS.SSH", cid, "sleep 30", "TIMEOUT", "1") == \
        "ERR ssh to container %d: ssh 127.0.0.1:%d: command timed out" % (cid, port)
    assert c.ok("ZOS.SSH", cid, "echo", "still-fine") == "still-fine\n"
    c.close()


def test_unknown_container_and_bad_arguments(lab):
    c = lab.proxy.client()
    no_port = "ERR container 999 has no ssh port forward (zos did not create it)"
    assert c.err("ZOS.SSH", 999, "true") == no_port
    assert c.err("ZOS.SSH.INFO", 999) == no_port
    assert c.err("ZOS.SSH", "abc", "true") == \
        "ERR container id must be a number from 1 to 65534, got 'abc'"
    assert c.err("ZOS.SSH", "0", "true") == \
        "ERR container id must be a number from 1 to 65534, got '0'"
    assert c.err("ZOS.SSH", "1", "true", "TIMEOUT", "0") == \
        "ERR TIMEOUT needs a number of seconds from 1 to 86400"
    assert "wrong number of arguments" in c.err("ZOS.SSH", "1")
    assert "wrong number of arguments" in c.err("ZOS.SSH.INFO", "1", "2")
    # a port key of "false" (what zos leaves before a port is reserved) is no port
    lab.node.r.set("container:998:sshport", "false")
    assert c.err("ZOS.SSH", 998, "true") == no_port.replace("999", "998")
    c.close()


def test_nothing_listening_on_the_ssh_port(lab):
    cid = 997
    port = free_port()
    for k, v in (("sshport", str(port)), ("ip", "127.0.0.1"), ("sshkey", lab.good),
                 ("sshenabled", "true")):
        lab.node.r.set("container:%d:%s" % (cid, k), v)
    c = lab.proxy.client()
    e = c.err("ZOS.SSH", cid, "true")
    assert e.startswith("ERR ssh to container 997: ssh 127.0.0.1:%d: " % port), e
    c.close()


def test_wrong_key_is_refused(lab):
    cid, port = lab.container()
    c = lab.proxy.client()
    lab.node.r.set("container:%d:sshkey" % cid, lab.bad)
    e = c.err("ZOS.SSH", cid, "true")
    assert e.startswith("ERR ssh to container %d: ssh 127.0.0.1:%d: permission denied (publickey)"
                        % (cid, port)), e
    assert lab.bad in e
    # a key file that does not exist
    lab.node.r.set("container:%d:sshkey" % cid, lab.bad + ".nope")
    e = c.err("ZOS.SSH", cid, "true")
    assert "No such file or directory" in e, e
    lab.node.r.set("container:%d:sshkey" % cid, lab.good)
    assert c.ok("ZOS.SSH", cid, "echo", "in") == "in\n"
    c.close()


def test_ssh_info_matches_the_cli(lab, box, tmp_path):
    cid, port = box
    c = lab.proxy.client()
    line = "root@127.0.0.1 -p %d -i %s" % (port, lab.good)
    assert c.ok("ZOS.SSH.INFO", cid) == line
    # the CLI prints the same line from the same keys
    user = Cli(tmp_path)
    user.ok("configure", "--name", "sim", "--port", lab.node_port, "--no-tls")
    assert user.ok("container", cid, "sshinfo").out == line + "\n"
    c.close()


def test_ssh_info_without_a_key_and_with_another_ip(lab):
    cid = 996
    lab.node.r.set("container:%d:sshport" % cid, "2222")
    lab.node.r.set("container:%d:ip" % cid, "192.168.56.101")
    lab.node.r.set("container:%d:sshenabled" % cid, "true")
    c = lab.proxy.client()
    assert c.ok("ZOS.SSH.INFO", cid) == "root@192.168.56.101 -p 2222"
    lab.node.r.set("container:%d:sshkey" % cid, "false")
    assert c.ok("ZOS.SSH.INFO", cid) == "root@192.168.56.101 -p 2222"
    c.close()


def test_no_ip_stored_is_no_ssh_forward(lab):
    """Without container:<id>:ip (missing or "false") the proxy no longer guesses the
    node's address: it refuses as the CLI does (test_container_facts.py)."""
    cid, port = lab.container()
    lab.node.r.delete("container:%d:ip" % cid)
    c = lab.proxy.client()
    want = "ERR container %d has no ssh port forward (zos did not create it)" % cid
    assert c.err("ZOS.SSH.INFO", cid) == want
    assert c.err("ZOS.SSH", cid, "echo", "via-node-address") == want
    lab.node.r.set("container:%d:ip" % cid, "false")
    assert c.err("ZOS.SSH.INFO", cid) == want
    lab.node.r.set("container:%d:ip" % cid, "127.0.0.1")
    assert c.ok("ZOS.SSH.INFO", cid) == "root@127.0.0.1 -p %d -i %s" % (port, lab.good)
    c.close()


def test_a_slow_command_does_not_block_other_clients(lab, box):
    cid, _ = box
    lab.node.r.set("e2e:key", "v" * 100)
    d = lab.procs.mkdtemp("slow-")
    started, gate = os.path.join(d, "started"), os.path.join(d, "gate")
    slow = lab.proxy.client()
    # The command cannot end before the gate opens, and the gate opens only once every
    # GET client is done: GETs held behind the ssh command would hang, whatever the load.
    slow.send("ZOS.SSH", cid, "touch %s; " % started + sh_gate(gate, "echo slept"))
    wait_file(started, "the ssh command never started")
    run_parallel_gets(lab.proxy.port, "e2e:key", "v" * 100, clients=5, each=100)
    open(gate, "w").close()
    assert slow.read() == "slept\n"
    slow.close()


def test_concurrent_ssh_commands_run_in_parallel(lab, box):
    cid, _ = box
    marks = lab.procs.mkdtemp("parallel-")
    clients = [lab.proxy.client() for _ in range(4)]
    # Each command waits until all four have started: four at once all see 4, whatever
    # the load; run one after another (or fewer at a time), the first never does.
    for i, c in enumerate(clients):
        c.send("ZOS.SSH", cid, sh_barrier(marks, 4, i))
    replies = [c.read() for c in clients]
    for c in clients:
        c.close()
    assert replies == ["4 %d\n" % i for i in range(4)], replies


def test_host_key_pinned_then_a_changed_key_refused(lab):
    port = free_port()
    cid, _ = lab.container(port)
    c = lab.proxy.client()
    assert c.ok("ZOS.SSH", cid, "echo", "first") == "first\n"
    where = "127.0.0.1:%d" % port
    first_pub = lab.node.host_pub(cid)
    mine = [p for p in pins(lab) if p[0] == where]
    assert mine == [[where, sha256_hex(first_pub)]], pins(lab)
    assert os.stat(lab.proxy.known_hosts).st_mode & 0o777 == 0o600
    assert c.ok("ZOS.SSH", cid, "echo", "again") == "again\n"  # the pin matches
    assert len([p for p in pins(lab) if p[0] == where]) == 1   # not appended twice

    # the container is re-created on the same port: a new sshd host key
    lab.node.terminate(cid)
    again, _ = lab.container(port)
    second_pub = lab.node.host_pub(again)
    assert sha256_hex(second_pub) != sha256_hex(first_pub)
    e = c.err("ZOS.SSH", again, "echo", "second")
    assert e == ("ERR ssh to container %d: host key for %s changed (was %s, now %s): if the "
                 "container was re-created, remove its line from %s"
                 % (again, where, sha256_openssh(first_pub), sha256_openssh(second_pub),
                    lab.proxy.known_hosts)), e
    assert [p for p in pins(lab) if p[0] == where] == [[where, sha256_hex(first_pub)]]

    # as the message says: without the line, the new key is pinned on first use
    with open(lab.proxy.known_hosts) as f:
        lines = [line for line in f if not line.startswith(where + " ")]
    with open(lab.proxy.known_hosts, "w") as f:
        f.writelines(lines)
    assert c.ok("ZOS.SSH", again, "echo", "second") == "second\n"
    assert [p for p in pins(lab) if p[0] == where] == [[where, sha256_hex(second_pub)]]
    c.close()


def test_a_client_that_leaves_during_a_command(lab, box):
    """The reply has nowhere to go: the proxy drops it and keeps serving."""
    cid, _ = box
    d = lab.procs.mkdtemp("leave-")
    started, gate, ended = (os.path.join(d, n) for n in ("started", "gate", "ended"))
    c = lab.proxy.client()
    c.send("ZOS.SSH", cid, "touch %s; " % started + sh_gate(gate, "touch %s" % ended))
    wait_file(started, "the ssh command never started")
    c.close()  # while the command runs
    open(gate, "w").close()
    wait_file(ended, "the ssh command never ended")
    c = lab.proxy.client()
    assert c.ok("ZOS.SSH", cid, "echo", "alive") == "alive\n"
    assert c.ok("PING") == "PONG"
    c.close()

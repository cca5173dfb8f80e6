"""The CLI and the proxy read a container's ssh facts the same way, and pin host keys in one file.

The facts are the keys `zos container new` stores on the node (container:<id>:ip, sshport,
sshkey, sshenabled, layeredssh).  Anyone with the node's secret can write them, so both
`zos container <id> sshinfo|exec` and the proxy's ZOS.SSH.INFO|ZOS.SSH check them with one
function (container.c): here both are fed the same hostile values and must refuse them with
the same reason, and accept a plausible set alike.  No sshd is needed for that: every
refusal comes before a connection, and a plausible set is shown by sshinfo and fails only
at the connection to a port nothing listens on.

Host keys: the CLI pins them in zos-known_hosts beside its config file, the proxy's file;
the pins of the CLI's old <config dir>/known_hosts move there once.
"""
import os

import pytest

from conftest import (Cli, Node, Procs, Proxy, clean_env, free_port, have_root_sshd, keygen,
                      module_lab, start_sim)

CID = 4242
HEX_A = "a" * 64
HEX_B = "b" * 64


class Lab:
    def __init__(self):
        self.procs = Procs()
        proc, self.node_port = start_sim(self.procs)
        self.node = Node(self.node_port, proc.datadir)
        self.proxy = Proxy(self.procs, self.node_port,
                           clean_env(os.path.join(self.procs.tmp, "proxyhome")))
        self.closed_port = free_port()  # nothing listens there

    def facts(self, **changes):
        """Stores the facts of container CID: a plausible set with CHANGES (None: no key)."""
        values = {"ip": "127.0.0.1", "sshport": str(self.closed_port),
                  "sshkey": "/root/.ssh/id_ed25519", "sshenabled": "true", "layeredssh": "true"}
        values.update(changes)
        for k, v in values.items():
            key = "container:%d:%s" % (CID, k)
            if v is None:
                self.node.r.delete(key)
            else:
                self.node.r.set(key, v)


lab = module_lab(Lab)


@pytest.fixture
def user(lab, tmp_path):
    cli = Cli(tmp_path)
    cli.ok("configure", "--name", "sim", "--port", lab.node_port, "--no-tls")
    return cli


def implausible(field):
    return ("container %d: container:%d:%s stored on the node is not plausible: refusing it"
            % (CID, CID, field), 14)


NO_SSH = ("container %d has no ssh port forward (zos did not create it)" % CID, 10)
SSH_OFF = ("ssh is not enabled in container %d: run 'zos container %d sshenable'" % (CID, CID), 10)

HOSTILE = [
    ({"sshport": ""}, implausible("sshport")),
    ({"sshport": "0"}, implausible("sshport")),
    ({"sshport": "65536"}, implausible("sshport")),
    ({"sshport": "-22"}, implausible("sshport")),
    ({"sshport": "22\n-oProxyCommand=sh"}, implausible("sshport")),
    ({"sshport": "twenty-two"}, implausible("sshport")),
    ({"sshport": "9" * 100000}, implausible("sshport")),
    ({"ip": ""}, implausible("ip")),
    ({"ip": "-oProxyCommand=touch /tmp/zos-pwned"}, implausible("ip")),
    ({"ip": "127.0.0.1\nHost evil"}, implausible("ip")),
    ({"ip": "a" * 254}, implausible("ip")),
    ({"ip": "127.0.0.1,evil"}, implausible("ip")),
    ({"sshkey": ""}, implausible("sshkey")),
    ({"sshkey": "../../etc/shadow"}, implausible("sshkey")),
    ({"sshkey": "/root/.ssh/../../etc/shadow"}, implausible("sshkey")),
    ({"sshkey": "/root/.ssh/id\nIdentityFile /etc/shadow"}, implausible("sshkey")),
    ({"sshkey": "/k,IdentityFile=/etc/shadow"}, implausible("sshkey")),
    ({"sshkey": "-oProxyCommand=sh"}, implausible("sshkey")),
    ({"sshkey": "/" + "k" * 5000}, implausible("sshkey")),
    ({"sshkey": "/k\x1b]0;owned\x07"}, implausible("sshkey")),
    ({"sshport": None}, NO_SSH),
    ({"sshport": "false"}, NO_SSH),
    ({"ip": None}, NO_SSH),
    ({"ip": "false"}, NO_SSH),
    ({"sshport": None, "sshkey": "../x"}, NO_SSH),  # no forward comes first
    ({"sshenabled": None}, SSH_OFF),
    ({"sshenabled": "false"}, SSH_OFF),
    ({"sshenabled": "TRUE"}, SSH_OFF),
    ({"sshenabled": "true\n"}, SSH_OFF),
    ({"sshenabled": "false", "sshport": "0"}, implausible("sshport")),  # refused before "off"
]


@pytest.mark.parametrize("changes,expected", HOSTILE,
                         ids=["%s=%.20r" % next(iter(c.items())) for c, _ in HOSTILE])
def test_cli_and_proxy_refuse_the_same_facts_alike(lab, user, changes, expected):
    reason, code = expected
    lab.facts(**changes)
    c = lab.proxy.client()
    try:
        answers = {"ZOS.SSH.INFO": c.err("ZOS.SSH.INFO", CID),
                   "ZOS.SSH": c.err("ZOS.SSH", CID, "touch", "/tmp/zos-pwned")}
    finally:
        c.close()
    for sub in (["sshinfo"], ["exec", "touch", "/tmp/zos-pwned"]):
        r = user.run("container", CID, *sub)
        answers[" ".join(sub)] = (r.rc, r.err)
    assert answers == {
        "ZOS.SSH.INFO": "ERR " + reason,
        "ZOS.SSH": "ERR " + reason,
        "sshinfo": (code, "zos: " + reason + "\n"),
        "exec touch /tmp/zos-pwned": (code, "zos: " + reason + "\n"),
    }


PLAUSIBLE = [
    ({}, "root@127.0.0.1 -p {port} -i /root/.ssh/id_ed25519"),
    ({"sshkey": "false"}, "root@127.0.0.1 -p {port}"),
    ({"sshkey": None}, "root@127.0.0.1 -p {port}"),
    ({"sshkey": "~/.ssh/id_rsa"}, "root@127.0.0.1 -p {port} -i ~/.ssh/id_rsa"),
    ({"layeredssh": None}, "root@127.0.0.1 -p {port} -i /root/.ssh/id_ed25519"),
    ({"ip": "localhost"}, "root@localhost -p {port} -i /root/.ssh/id_ed25519"),
]


@pytest.mark.parametrize("changes,line", PLAUSIBLE, ids=[repr(c) for c, _ in PLAUSIBLE])
def test_cli_and_proxy_accept_a_plausible_set_alike(lab, user, changes, line):
    lab.facts(**changes)
    want = line.format(port=lab.closed_port)
    c = lab.proxy.client()
    try:
        info = c.ok("ZOS.SSH.INFO", CID)
        run = c.err("ZOS.SSH", CID, "true")
    finally:
        c.close()
    assert info == want
    assert user.ok("container", CID, "sshinfo").out == want + "\n"
    # accepted: both go as far as connecting, where nothing listens
    host = want.split("@")[1].split()[0]
    assert run.startswith("ERR ssh to container %d: ssh %s:%d: " % (CID, host, lab.closed_port)), run
    r = user.run("--timeout", "5", "container", CID, "exec", "true")
    assert (r.rc, r.err.startswith("zos: ssh %s:%d: " % (host, lab.closed_port))) == (12, True), r


# ---------------------------------------------------------------- one host-key file

def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def test_the_cli_moves_its_old_known_hosts_once(lab, user):
    conf_dir = os.path.dirname(user.config)
    old = os.path.join(conf_dir, "known_hosts")
    new = os.path.join(conf_dir, "zos-known_hosts")
    # the new file already pins 10.0.0.1:22: that pin wins over the old file's
    write(new, "10.0.0.1:22 %s\n" % HEX_B)
    write(old, "# pinned by an older zos\n10.0.0.1:22 %s\n10.0.0.2:2222 %s\n" % (HEX_A, HEX_A))
    sshfs = "[10.0.0.2]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOWQ4m\n"  # mount's, OpenSSH's
    write(old + ".sshfs", sshfs)
    lab.facts()
    r = user.run("--timeout", "5", "container", CID, "exec", "true")
    assert r.rc == 12, r  # the pins moved before the connection was tried
    want = "10.0.0.1:22 %s\n10.0.0.2:2222 %s\n" % (HEX_B, HEX_A)
    assert read(new) == want
    assert not os.path.exists(old)
    assert read(old + ".migrated").startswith("# pinned by an older zos\n")
    assert read(new + ".sshfs") == sshfs and not os.path.exists(old + ".sshfs")
    # once: later runs add nothing; an old sshfs file never replaces the new one
    write(old + ".sshfs", "[10.0.0.9]:22 ssh-ed25519 AAAA\n")
    r = user.run("--timeout", "5", "container", CID, "exec", "true")
    assert r.rc == 12, r
    assert read(new) == want
    assert read(new + ".sshfs") == sshfs
    assert sorted(os.listdir(conf_dir)) == ["home", "known_hosts.migrated", "known_hosts.sshfs",
                                            "zos-known_hosts", "zos-known_hosts.sshfs",
                                            "zos.toml"]


def test_a_config_in_dot_ssh_leaves_openssh_known_hosts_alone(lab, tmp_path):
    """With ZOS_CONFIG in ~/.ssh, <config dir>/known_hosts is OpenSSH's own file."""
    home = os.path.join(str(tmp_path), "home")
    dot_ssh = os.path.join(home, ".ssh")
    os.makedirs(dot_ssh)
    user = Cli(tmp_path, ZOS_CONFIG=os.path.join(dot_ssh, "zos.toml"))
    user.ok("configure", "--name", "sim", "--port", lab.node_port, "--no-tls")
    openssh = "127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOWQ4m\n"
    write(os.path.join(dot_ssh, "known_hosts"), openssh)
    lab.facts()
    r = user.run("--timeout", "5", "container", CID, "exec", "true")
    assert r.rc == 12, r
    assert read(os.path.join(dot_ssh, "known_hosts")) == openssh
    assert not os.path.exists(os.path.join(dot_ssh, "known_hosts.migrated"))


@pytest.mark.skipif(not have_root_sshd(),
                    reason="needs /usr/sbin/sshd, ssh-keygen and root (ssh logs in as root)")
def test_a_key_pinned_by_the_cli_is_known_to_the_proxy(lab, tmp_path):
    """The CLI uses the proxy's config file: its pin is the proxy's pin, and back."""
    key = os.path.join(str(tmp_path), "keys", "id_ed25519")
    authorized = keygen(key)
    port = free_port()
    cid = lab.node.create_ssh_container(port, authorized, key)
    user = Cli(tmp_path, ZOS_CONFIG=lab.proxy.conf_path)  # node "sim" is its only node
    where = "127.0.0.1:%d" % port

    r = user.run("container", cid, "exec", "echo", "from-cli")
    assert (r.rc, r.out) == (0, "from-cli\n"), r
    pins = [line for line in read(lab.proxy.known_hosts).splitlines() if line.startswith(where)]
    assert len(pins) == 1, read(lab.proxy.known_hosts)

    # the container is re-created on the same port: the proxy knows the CLI's pin
    lab.node.terminate(cid)
    again = lab.node.create_ssh_container(port, authorized, key)
    c = lab.proxy.client()
    try:
        e = c.err("ZOS.SSH", again, "true")
        assert e.startswith("ERR ssh to container %d: host key for %s changed" % (again, where)), e
        assert e.endswith("remove its line from %s" % lab.proxy.known_hosts), e
        # and back: the proxy pins the new key, the CLI accepts it without a new line
        write(lab.proxy.known_hosts, "".join(
            line + "\n" for line in read(lab.proxy.known_hosts).splitlines()
            if not line.startswith(where + " ")))
        assert c.ok("ZOS.SSH", again, "echo", "from-proxy") == "from-proxy\n"
    finally:
        c.close()
    pinned = read(lab.proxy.known_hosts)
    r = user.run("container", again, "exec", "echo", "cli-again")
    assert (r.rc, r.out) == (0, "cli-again\n"), r
    assert read(lab.proxy.known_hosts) == pinned
    lab.node.terminate(again)

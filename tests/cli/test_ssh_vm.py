"""The entry points of the ssh and VirtualBox work: argument checks and exit codes.

The ssh sessions themselves (a real sshd in a container) and the VBoxManage
sequence of `zos init` are tested by their own suites; here: what zos checks
before it connects, and what it says when it cannot.
"""
import os
import shutil
import subprocess

import pytest

import zostest


def new(zos, *args):
    r = zos.ok("container", "new", *args)
    return int(r.out)


@pytest.mark.parametrize("args,code,message", [
    (["exec"], 15, "which command"),
    (["upload"], 15, "which file"),
    (["download"], 15, "which file"),
    (["mount"], 15, "which file"),
    (["upload", "/no/such/file"], 11, "upload: /no/such/file: No such file or directory"),
    (["upload", "a", "b", "c"], 15, "unexpected argument 'c'"),
    (["sshinfo", "x"], 15, "unexpected argument 'x'"),
    (["shell", "--tty"], 15, "unknown option '--tty'"),
])
def test_ssh_sub_commands_check_their_arguments_first(zos, args, code, message):
    r = zos.run("container", "7", *args)
    assert r.rc == code, r
    assert message in r.err, r


@pytest.mark.skipif(shutil.which("sshfs") is not None, reason="sshfs is installed here")
def test_mount_needs_sshfs(zos):
    r = zos.run("container", "7", "mount", "/root")
    assert r.rc == 7
    assert "sshfs is not installed" in r.err


def test_ssh_not_enabled_exits_10(zos, nodes):
    cid = new(zos)
    for sub in (["sshinfo"], ["shell"], ["exec", "ls"], ["download", "/etc/hostname"]):
        r = zos.run("container", cid, *sub)
        assert r.rc == 10, (sub, r)
        assert "ssh is not enabled in container %d: run 'zos container %d sshenable'" % (cid, cid) in r.err
    # a container zos did not make has no ssh port at all
    r = zos.run("cmd", "corex.create", "--jsonargs", '{"root": "x", "nics": [{"type": "default"}]}')
    other = int(r.out)
    r = zos.run("container", other, "sshinfo")
    assert r.rc == 10 and "has no ssh port forward" in r.err


def test_sshinfo_and_an_unreachable_sshd(zos, nodes):
    cid = new(zos)
    kv = nodes.redis()
    kv.set("container:%d:sshenabled" % cid, "true")
    port = kv.get("container:%d:sshport" % cid)
    key = os.path.join(zos.home, ".ssh", "id_ed25519")
    r = zos.ok("container", cid, "sshinfo")
    assert r.out == "root@127.0.0.1 -p %s -i %s\n" % (port, key)
    # nothing listens on the forwarded port in the simulator: a clear error, exit 12
    kv.set("container:%d:sshport" % cid, str(zostest.free_port()))
    r = zos.run("--timeout", "3", "container", cid, "exec", "true")
    assert r.rc == 12, r
    assert "ssh 127.0.0.1:" in r.err


@pytest.mark.parametrize("args,code,message", [
    ([], 15, "--name is required"),
    (["--name", "vm", "--redisport", "70000"], 15, "--redisport: expected a number from 1 to 65535, got '70000'"),
    (["--name", "vm", "--memory", "0"], 15, "--memory: expected a number from 1 to 1024, got '0'"),
    (["--name", "vm", "--disksize", "-1"], 15, "--disksize: expected a number from 0 to 4096"),
    (["--name", "vm", "--hypervisor", "xen"], 15, "--hypervisor: 'virtualbox' or 'qemu', got 'xen'"),
    (["--name", "bad name"], 22, "is not a valid machine name"),
    (["--name", "app"], 22, "is not a valid machine name"),
    (["--name", "vm", "--iso", "/no/such.iso"], 11, "--iso: /no/such.iso: No such file or directory"),
    (["--name", "vm"], 4, "VirtualBox is not installed"),  # checked before any ISO download
    (["--name", "vm", "--reset=1"], 15, "takes no value"),
])
def test_init_checks_its_arguments(bare, args, code, message):
    r = bare.run("init", *args)
    assert r.rc == code, r
    assert message in r.err, r


def test_init_without_virtualbox_exits_4(bare):
    iso = os.path.join(bare.tmp, "zos.iso")
    open(iso, "wb").close()
    r = bare.run("init", "--name", "vm", "--iso", iso, env={"PATH": "/usr/bin:/bin"})
    assert r.rc == 4, r
    assert "VirtualBox is not installed" in r.err
    assert "[vm]" not in bare.read_config()


def test_init_refuses_a_node_it_did_not_make(zos):
    iso = os.path.join(zos.tmp, "zos.iso")
    open(iso, "wb").close()
    r = zos.run("init", "--name", "plain", "--iso", iso)
    assert r.rc == 22 and "zos init did not make" in r.err


def start_sshd(procs, tmp, authorized_key):
    """A real sshd on loopback standing in for a container's port 22."""
    d = os.path.join(tmp, "sshd")
    os.makedirs(d, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "hostkey")],
                   check=True)
    with open(os.path.join(d, "authorized"), "w") as f:
        f.write(authorized_key + "\n")
    port = zostest.free_port()
    conf = os.path.join(d, "sshd_config")
    with open(conf, "w") as f:
        f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s/hostkey\nAuthorizedKeysFile %s/authorized\n"
                "PermitRootLogin yes\nPasswordAuthentication no\nUsePAM no\nStrictModes no\n"
                "PidFile %s/pid\nSubsystem sftp internal-sftp\n" % (port, d, d, d))
    p = procs.start(["/usr/sbin/sshd", "-D", "-f", conf, "-E", os.path.join(d, "log")])
    zostest.wait_port(port, proc=p)
    return port


@pytest.mark.skipif(not os.access("/usr/sbin/sshd", os.X_OK) or os.getuid() != 0,
                    reason="needs /usr/sbin/sshd and root")
def test_ssh_sub_commands_reach_the_container_sshd(zos, nodes, fnprocs):
    cid = new(zos)
    port = start_sshd(fnprocs, zos.tmp, zos.pubkey)
    kv = nodes.redis()
    kv.set("container:%d:sshport" % cid, str(port))
    kv.set("container:%d:sshenabled" % cid, "true")  # what sshenable leaves behind
    r = zos.run("container", cid, "exec", "echo hi; echo err >&2; exit 3")
    assert (r.rc, r.out, r.err) == (3, "hi\n", "err\n")
    # the host key was pinned beside the config file, in the proxy's file
    pins = open(os.path.join(zos.tmp, "zos-known_hosts")).read()
    assert pins.startswith("127.0.0.1:%d " % port)
    src = os.path.join(zos.tmp, "tree")
    os.makedirs(os.path.join(src, "sub"))
    with open(os.path.join(src, "sub", "f.bin"), "wb") as f:
        f.write(os.urandom(200000))
    remote = os.path.join(zos.tmp, "remote")
    zos.ok("container", cid, "upload", src, remote)
    back = os.path.join(zos.tmp, "back")
    zos.ok("container", "download", remote, back)  # without id: the last container
    assert open(os.path.join(back, "sub", "f.bin"), "rb").read() == \
        open(os.path.join(src, "sub", "f.bin"), "rb").read()
    r = zos.run("container", cid, "shell", input="echo from-shell; exit 4\n")
    assert r.rc == 4 and "from-shell" in r.out


def test_new_with_ssh_then_exec_through_the_simulated_sshd(zos, nodes):
    """sshenable as the original: the simulator runs a real sshd for "service ssh start"."""
    r = zos.ok("container", "new", "--ssh", "--root", "https://hub.grid.tf/x/redis.flist")
    lines = r.out.splitlines()
    cid = int(lines[0])
    kv = nodes.redis()
    port = kv.get("container:%d:sshport" % cid)
    key = os.path.join(zos.home, ".ssh", "id_ed25519")
    assert lines[1:] == ["root@127.0.0.1 -p %s -i %s" % (port, key)]
    assert kv.get("container:%d:sshenabled" % cid) == "true"
    assert kv.get("container:%d:layeredssh" % cid) == "true"  # redis.flist has no sshd
    assert zos.ok("container", "sshinfo").out == lines[1] + "\n"
    r = zos.run("container", cid, "exec", "echo inside; exit 5")
    assert (r.rc, r.out) == (5, "inside\n"), r
    # enabling again is harmless
    assert zos.ok("container", cid, "sshenable").out == lines[1] + "\n"
    zos.ok("container", cid, "delete")

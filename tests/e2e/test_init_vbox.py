"""`zos init`, `remove` and `forgetvm` with the stand-in VBoxManage first on PATH.

The stub (tests/fixtures/VBoxManage) records every argv in $VBOX_STUB_LOG and keeps
the VMs in $VBOX_STUB_STATE; `startvm` boots nothing, so a simulated node
(zos-node-sim --tls, no secret: a Zero-OS development ISO) listens on the
forwarded port and answers the PING init waits for.  The ISO is always given
with --iso (or put at ~/.zos/zos.iso): nothing is downloaded.
"""
import os
import shutil

import pytest

from conftest import (FIXTURES, Cli, VBoxStub, create_sequence, free_port, start_sequence)

SYS_PATH = "/usr/bin:/bin"


class VmUser(Cli):
    """A zos user whose PATH starts with the stand-in VBoxManage."""

    def __init__(self, tmp):
        self.stub = VBoxStub(os.path.join(str(tmp), "stub"))
        super().__init__(tmp, PATH=FIXTURES + ":" + SYS_PATH, **self.stub.env())
        self.iso = os.path.join(self.tmp, "zos.iso")
        with open(self.iso, "wb") as f:
            f.write(b"\0" * 4096)

    def init(self, name, port, *extra, timeout_s=None, **kw):
        pre = ["--timeout", str(timeout_s)] if timeout_s else []
        return self.run(*pre, "init", "--name", name, "--iso", self.iso, "--memory", "2",
                        "--disksize", "1", "--redisport", port, *extra, **kw)


@pytest.fixture
def user(tmp_path):
    return VmUser(tmp_path)


def made(user, name, port):
    """init NAME on PORT with the default test options; returns the VM's uuid."""
    r = user.init(name, port)
    assert r.rc == 0, r
    return user.stub.uuid(name)


def test_init_sequence_pong_wait_and_config(user, node):
    r = user.init("vm1", node)
    assert r.rc == 0, r
    assert r.out == ""
    u = user.stub.uuid("vm1")
    # info (list vms: not registered), the creation, the start
    want = [["list", "vms"]] + \
        create_sequence(user.home, "vm1", 2048, 1024, node, user.iso) + start_sequence(u)
    assert user.stub.log() == want
    vm = user.stub.vm("vm1")
    assert vm["state"] == "running"
    assert vm["memory"] == 2048
    assert vm["natpf"] == {"1": [["redis", "tcp", "", str(node), "", "6379"]]}
    assert vm["nics"] == {"1": "nat", "2": "hostonly"}
    assert user.stub.state()["hostonlyifs"] == ["vboxnet0"]
    vdi = os.path.join(user.home, "VirtualBox VMs", "vm1", "mainvm1.vdi")
    assert os.path.isfile(vdi)
    # the node is configured as the default: 127.0.0.1, the forwarded port, TLS, isvbox
    conf = user.sections()
    assert conf["app"]["defaultzos"] == "vm1"
    assert conf["vm1"] == {"address": "127.0.0.1", "port": str(node), "isvbox": "true"}, conf
    assert conf["vm1"].get("tls", "yes") == "yes"  # TLS, the default, is not written
    assert user.ok("showactive").out == "vm1\n"
    assert user.ok("showactiveconfig").out == (
        "[vm1]\naddress = 127.0.0.1\nport = %d\ntls = yes\nisvbox = true\n" % node)
    assert "PONG" in user.ok("ping").out
    # nothing downloaded
    assert not os.path.exists(os.path.join(user.home, ".zos", "zos.iso"))

    # init again: the VM exists and runs, so only looks (info, port check, start check)
    user.stub.clear_log()
    r = user.init("vm1", node)
    assert r.rc == 0, r
    assert user.stub.log() == [["list", "vms"], ["showvminfo", u], ["list", "vms"],
                               ["list", "vms"], ["showvminfo", u]]


def test_init_iso_relative_and_default_path(user, node):
    """--iso relative to the working directory is attached by its absolute path; without
    --iso, ~/.zos/zos.iso is used when it is there (no download)."""
    os.makedirs(os.path.join(user.tmp, "isos"))
    shutil.copy(user.iso, os.path.join(user.tmp, "isos", "rel.iso"))
    r = user.run("init", "--name", "rel", "--iso", "isos/rel.iso", "--redisport", node,
                 "--disksize", "0", cwd=user.tmp)
    assert r.rc == 0, r
    log = user.stub.log()
    assert log[-4] == ["storageattach", "rel", "--storagectl", "IDE Controller", "--port", "0",
                       "--device", "0", "--type", "dvddrive", "--medium",
                       os.path.join(user.tmp, "isos", "rel.iso")]
    assert not any(a[0] == "createmedium" for a in log)  # --disksize 0: no disk
    assert ["modifyvm", "rel", "--memory", "4096"] == log[5][:4]  # the default 4 GB

    os.makedirs(os.path.join(user.home, ".zos"))
    default_iso = os.path.join(user.home, ".zos", "zos.iso")
    shutil.copy(user.iso, default_iso)
    user.ok("forgetvm", "--name", "rel")
    user.stub.clear_log()
    port = free_port()
    r = user.run("--timeout", "1", "init", "--name", "dflt", "--redisport", port)
    assert r.rc == 12, r  # nothing listens on PORT: the PONG wait times out
    attach = [a for a in user.stub.log() if a[:2] == ["storageattach", "dflt"]]
    assert attach[-1][-1] == default_iso


def test_init_reset_deletes_then_recreates(user, node):
    u1 = made(user, "vm1", node)
    user.stub.clear_log()
    r = user.run("init", "--name", "vm1", "--iso", user.iso, "--memory", "1", "--disksize", "3",
                 "--redisport", node, "--reset")
    assert r.rc == 0, r
    u2 = user.stub.uuid("vm1")
    assert u2 != u1
    want = [["list", "vms"],                                   # port scan (no other VM)
            ["showvminfo", u1], ["controlvm", u1, "poweroff"],  # vmDelete of the running VM
            ["unregistervm", u1, "--delete"]]
    # the creation from the host-only interface on (vboxnet0 exists: not created again)
    want += create_sequence(user.home, "vm1", 1024, 3072, node, user.iso,
                            new_hostonly=False)[1:]
    want += start_sequence(u2)
    assert user.stub.log() == want
    vm = user.stub.vm("vm1")
    assert (vm["state"], vm["memory"]) == ("running", 1024)
    assert len(user.stub.state()["vms"]) == 1
    assert user.sections()["vm1"]["port"] == str(node)


def test_init_reset_of_a_vm_that_does_not_exist_creates_it(user, node):
    r = user.init("fresh", node, "--reset")
    assert r.rc == 0, r
    u = user.stub.uuid("fresh")
    want = [["list", "vms"]] + create_sequence(user.home, "fresh", 2048, 1024, node,
                                               user.iso)[1:] + start_sequence(u)
    assert user.stub.log() == want


def test_remove_powers_off_unregisters_deletes_and_forgets(user, node):
    u = made(user, "vm1", node)
    vmdir = os.path.join(user.home, "VirtualBox VMs", "vm1")
    assert os.path.isdir(vmdir)
    user.stub.clear_log()
    r = user.run("remove", "--name", "vm1")
    assert r.rc == 0, r
    assert user.stub.log() == [["list", "vms"], ["showvminfo", u], ["controlvm", u, "poweroff"],
                               ["unregistervm", u, "--delete"]]
    assert user.stub.state()["vms"] == []
    assert not os.path.exists(vmdir)
    conf = user.sections()
    assert "vm1" not in conf
    assert "defaultzos" not in conf.get("app", {}), conf


def test_remove_of_a_stopped_vm_does_not_power_it_off(user, node):
    u = made(user, "vm1", node)
    user.stub.run("controlvm", u, "poweroff", home=user.home)
    user.stub.clear_log()
    user.ok("remove", "--name", "vm1")
    assert user.stub.log() == [["list", "vms"], ["showvminfo", u], ["unregistervm", u, "--delete"]]
    assert user.stub.state()["vms"] == []


def test_remove_when_the_vm_is_already_gone_only_forgets(user, node):
    u = made(user, "vm1", node)
    user.stub.run("controlvm", u, "poweroff", home=user.home)
    user.stub.run("unregistervm", u, "--delete", home=user.home)
    user.stub.clear_log()
    user.ok("remove", "--name", "vm1")
    assert user.stub.log() == [["list", "vms"]]
    assert "vm1" not in user.sections()


def test_forgetvm_only_edits_the_config(user, node):
    made(user, "vm1", node)
    user.stub.clear_log()
    r = user.run("forgetvm", "--name", "vm1")
    assert r.rc == 0, r
    assert user.stub.log() == []  # VBoxManage not run at all
    assert user.stub.vm("vm1")["state"] == "running"
    assert os.path.isdir(os.path.join(user.home, "VirtualBox VMs", "vm1"))
    assert "vm1" not in user.sections()
    r = user.run("remove", "--name", "vm1")
    assert r.rc == 17, r  # not configured any more


def test_port_conflict_exits_8_and_touches_nothing(user, node):
    u1 = made(user, "vm1", node)
    user.stub.clear_log()
    r = user.init("vm2", node)
    assert r.rc == 8, r
    assert r.err == "zos: port %d already taken by VM 'vm1'\n" % node
    # info (not registered), then the scan finds the forward before anything is created
    assert user.stub.log() == [["list", "vms"], ["list", "vms"], ["showvminfo", u1]]
    assert [vm["name"] for vm in user.stub.state()["vms"]] == ["vm1"]
    assert "vm2" not in user.sections()


def test_port_conflict_of_an_existing_vm_and_of_reset(user, node):
    """A port forwarded by another VM: init of an existing VM and --reset both stop at
    the check, and --reset deletes nothing."""
    made(user, "vm1", node)
    q = free_port()
    user.stub.run("createvm", "--name", "other", "--register", home=user.home)
    user.stub.run("modifyvm", "other", "--natpf1", "redis,tcp,,%d,,6379" % q, home=user.home)
    u1, uo = user.stub.uuid("vm1"), user.stub.uuid("other")
    user.stub.clear_log()
    r = user.init("vm1", q)
    assert r.rc == 8, r
    assert "port %d already taken by VM 'other'" % q in r.err
    user.stub.clear_log()
    r = user.init("vm1", q, "--reset")
    assert r.rc == 8, r
    assert "port %d already taken by VM 'other'" % q in r.err
    assert user.stub.log() == [["list", "vms"], ["showvminfo", uo]]
    assert user.stub.vm("vm1")["uuid"] == u1 and user.stub.vm("vm1")["state"] == "running"
    assert user.sections()["vm1"]["port"] == str(node)


def test_a_failing_vboxmanage_step_rolls_back_and_exits_14(user, node):
    r = user.init("vm1", node, env={"VBOX_STUB_FAIL": "storagectl"})
    assert r.rc == 14, r
    assert r.err.startswith("zos: VBoxManage storagectl failed (exit 1): VBoxManage: error: "
                            "injected failure of storagectl [VBoxManage storagectl vm1 --name "
                            "'SATA Controller' --add sata --controller IntelAHCI]"), r
    log = user.stub.log()
    assert log[-1] == ["unregistervm", "vm1", "--delete"]  # the half-made VM undone
    assert user.stub.state()["vms"] == []
    assert not os.path.exists(os.path.join(user.home, "VirtualBox VMs", "vm1"))
    assert "vm1" not in user.sections()


@pytest.mark.skipif(shutil.which("VBoxManage", path=SYS_PATH) is not None or
                    shutil.which("vboxmanage", path=SYS_PATH) is not None,
                    reason="a real VBoxManage is installed in " + SYS_PATH)
def test_vboxmanage_missing_exits_4(user, node):
    r = user.init("vm1", node, env={"PATH": SYS_PATH})
    assert r.rc == 4, r
    assert r.err == "zos: VirtualBox is not installed: VBoxManage not found on PATH\n"
    assert "vm1" not in user.sections()
    # remove of a node init made needs VBoxManage too, and says how to only forget it
    made(user, "vm1", node)
    r = user.run("remove", "--name", "vm1", env={"PATH": SYS_PATH})
    assert r.rc == 4, r
    assert "('zos forgetvm --name vm1' removes the node from the config only)" in r.err
    assert "vm1" in user.sections()  # kept: nothing was deleted
    assert user.stub.vm("vm1")["state"] == "running"


def test_pong_timeout_when_nothing_listens(user):
    port = free_port()
    r = user.init("vm1", port, timeout_s=1)
    assert r.rc == 12, r
    assert r.err == "zos: node 'vm1' at 127.0.0.1:%d did not answer PING within 1 s\n" % port
    # the machine was made and started, but is not configured
    assert user.stub.vm("vm1")["state"] == "running"
    assert "vm1" not in user.sections()

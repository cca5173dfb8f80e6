"""ZOS.VBOX through a real zos-proxy, with the stand-in VBoxManage on the proxy's PATH.

The proxy's PATH starts with a directory of our own whose VBoxManage is a small
wrapper around tests/fixtures/VBoxManage: while the file `hold` next to it exists,
each run waits (and shows as a file `held.<pid>`), and it exports VBOX_STUB_FAIL
from the file `fail`.
Renaming it away makes VBoxManage missing.  The proxy's environment is fixed
when it starts; these files let one proxy see every case.
"""
import os
import shutil

import pytest

from conftest import (STUB, Cli, Procs, Proxy, VBoxStub, clean_env, create_sequence,
                      free_port, module_lab, run_parallel_gets, start_sequence, start_sim)
from zostest import wait_until

SYS_PATH = "/usr/bin:/bin"
WRAPPER = """#!/bin/sh
ctl='%s'
if [ -f "$ctl/hold" ]; then  # held (at most 30 s) until the test removes the file
    touch "$ctl/held.$$"; i=0
    while [ -f "$ctl/hold" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
    rm -f "$ctl/held.$$"
fi
if [ -f "$ctl/fail" ]; then VBOX_STUB_FAIL=$(cat "$ctl/fail"); export VBOX_STUB_FAIL; fi
exec '%s' "$@"
"""


class Lab:
    def __init__(self):
        self.procs = Procs()
        self.bindir = os.path.join(self.procs.tmp, "bin")
        os.makedirs(self.bindir)
        self.vboxmanage = os.path.join(self.bindir, "VBoxManage")
        with open(self.vboxmanage, "w") as f:
            f.write(WRAPPER % (self.bindir, STUB))
        os.chmod(self.vboxmanage, 0o755)
        self.stub = VBoxStub(os.path.join(self.procs.tmp, "stub"))
        env = clean_env(os.path.join(self.procs.tmp, "proxyhome"),
                        PATH=self.bindir + ":" + SYS_PATH, **self.stub.env())
        self.home = env["HOME"]
        self.iso = os.path.join(self.procs.tmp, "zos.iso")
        with open(self.iso, "wb") as f:
            f.write(b"\0" * 4096)
        _, self.node_port = start_sim(self.procs)
        self.proxy = Proxy(self.procs, self.node_port, env)

    def control(self, name, text=None):
        path = os.path.join(self.bindir, name)
        if text is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            with open(path, "w") as f:
                f.write(text)

    def held(self):
        """How many VBoxManage runs wait on the "hold" control now."""
        return len([n for n in os.listdir(self.bindir) if n.startswith("held.")])

    def reset(self):
        """No VMs, an empty log, no run held, no failures."""
        self.control("hold")
        self.control("fail")
        c = self.proxy.client()
        for name in c.ok("ZOS.VBOX", "LIST"):
            c.ok("ZOS.VBOX", "DELETE", name)
        c.close()
        self.stub.clear_log()


lab = module_lab(Lab)


@pytest.fixture
def vb(lab):
    lab.reset()
    c = lab.proxy.client()
    yield c
    c.close()
    lab.control("hold")
    lab.control("fail")


def create(lab, c, name, port, memory=2048, disk=1024):
    return c.call("ZOS.VBOX", "CREATE", name, "MEMORY", memory, "DISK", disk, "PORT", port,
                  "ISO", lab.iso)


def test_lifecycle_list_create_start_info_stop_delete(lab, vb):
    assert vb.ok("ZOS.VBOX", "LIST") == []
    assert lab.stub.log() == [["list", "vms"]]
    port = free_port()
    lab.stub.clear_log()
    assert create(lab, vb, "vm1", port) == "OK"
    assert lab.stub.log() == create_sequence(lab.home, "vm1", 2048, 1024, port, lab.iso)
    u = lab.stub.uuid("vm1")
    assert vb.ok("ZOS.VBOX", "LIST") == ["vm1"]
    fwd = "redis tcp %d -> 6379" % port
    assert vb.ok("ZOS.VBOX", "INFO", "vm1") == ["state", "powered off", "forward", fwd]

    lab.stub.clear_log()
    assert vb.ok("ZOS.VBOX", "START", "vm1") == "OK"
    assert lab.stub.log() == start_sequence(u)
    assert vb.ok("ZOS.VBOX", "INFO", "vm1") == ["state", "running", "forward", fwd]
    lab.stub.clear_log()
    assert vb.ok("ZOS.VBOX", "start", "vm1") == "OK"  # running already: no startvm
    assert lab.stub.log() == [["list", "vms"], ["showvminfo", u]]

    lab.stub.clear_log()
    assert vb.ok("ZOS.VBOX", "STOP", "vm1") == "OK"
    assert lab.stub.log() == [["list", "vms"], ["showvminfo", u], ["controlvm", u, "poweroff"]]
    assert vb.ok("ZOS.VBOX", "INFO", "vm1")[:2] == ["state", "powered off"]
    lab.stub.clear_log()
    assert vb.ok("ZOS.VBOX", "STOP", "vm1") == "OK"  # not running: nothing to do
    assert lab.stub.log() == [["list", "vms"], ["showvminfo", u]]

    assert vb.ok("ZOS.VBOX", "START", "vm1") == "OK"
    lab.stub.clear_log()
    assert vb.ok("ZOS.VBOX", "DELETE", "vm1") == "OK"
    assert lab.stub.log() == [["list", "vms"], ["showvminfo", u], ["controlvm", u, "poweroff"],
                              ["unregistervm", u, "--delete"]]
    assert vb.ok("ZOS.VBOX", "LIST") == []
    assert not os.path.exists(os.path.join(lab.home, "VirtualBox VMs", "vm1"))


def test_create_sequence_equals_the_clis(lab, vb, tmp_path):
    """ZOS.VBOX CREATE and `zos init` run the same VBoxManage commands (homes aside)."""
    stub = VBoxStub(str(tmp_path / "clistub"))
    user = Cli(tmp_path, PATH=os.path.dirname(STUB) + ":" + SYS_PATH, **stub.env())
    for s, home in ((lab.stub, lab.home), (stub, user.home)):  # the same start: vboxnet0 there
        if not s.state()["hostonlyifs"]:
            s.run("hostonlyif", "create", home=home)
    port = free_port()
    assert create(lab, vb, "same", port, memory=3072, disk=2048) == "OK"
    proxy_seq = lab.stub.log()
    r = user.run("--timeout", "1", "init", "--name", "same", "--iso", lab.iso, "--memory", "3",
                 "--disksize", "2", "--redisport", port)
    assert r.rc == 12, r  # nothing answers PING on PORT; the VM was made and started
    cli_seq = stub.log()
    assert cli_seq[0] == ["list", "vms"]                        # init's look for the VM
    assert cli_seq[-3:] == start_sequence(stub.uuid("same"))    # and its start

    def norm(seq, home):
        return [[a.replace(home, "~") for a in argv] for argv in seq]

    assert norm(proxy_seq, lab.home) == norm(cli_seq[1:-3], user.home)
    assert len(proxy_seq) == 10


def test_reset_deletes_and_recreates(lab, vb):
    port = free_port()
    assert create(lab, vb, "vm1", port) == "OK"
    assert vb.ok("ZOS.VBOX", "START", "vm1") == "OK"
    u1 = lab.stub.uuid("vm1")
    lab.stub.clear_log()
    assert vb.call("ZOS.VBOX", "RESET", "vm1", "MEMORY", 1024, "DISK", 0, "PORT", port,
                   "ISO", lab.iso) == "OK"
    u2 = lab.stub.uuid("vm1")
    assert u2 != u1
    want = [["list", "vms"], ["showvminfo", u1], ["controlvm", u1, "poweroff"],
            ["unregistervm", u1, "--delete"]]
    want += create_sequence(lab.home, "vm1", 1024, 0, port, lab.iso, new_hostonly=False)[1:]
    assert lab.stub.log() == want
    assert lab.stub.vm("vm1")["state"] == "powered off"  # RESET does not start it


def test_create_defaults_use_home_zos_iso(lab, vb):
    iso = os.path.join(lab.home, ".zos", "zos.iso")
    e = vb.err("ZOS.VBOX", "CREATE", "vm1")
    assert e == "ERR ISO '%s': No such file or directory" % iso
    assert lab.stub.log() == []  # refused before VBoxManage runs
    os.makedirs(os.path.dirname(iso), exist_ok=True)
    shutil.copy(lab.iso, iso)
    try:
        assert vb.call("ZOS.VBOX", "CREATE", "vm1") == "OK"
    finally:
        os.unlink(iso)
    # the original's defaults: 4 GB memory, 20 GB disk, port 4444
    log = lab.stub.log()
    modify = [a for a in log if a[0] == "modifyvm"][0]
    assert modify[2:4] == ["--memory", "4096"] and modify[-1] == "redis,tcp,,4444,,6379"
    medium = [a for a in log if a[0] == "createmedium"][0]
    assert medium[medium.index("--size") + 1] == "20480"
    assert log[-1][-1] == iso


def test_errors(lab, vb):
    port = free_port()
    assert vb.err("ZOS.VBOX", "FLY", "vm1") == \
        "ERR unknown ZOS.VBOX operation 'FLY' (LIST, INFO, CREATE, START, STOP, DELETE, RESET)"
    assert vb.err("ZOS.VBOX", "LIST", "x") == "ERR wrong number of arguments for 'zos.vbox LIST'"
    assert vb.err("ZOS.VBOX", "START") == "ERR wrong number of arguments for 'zos.vbox START'"
    assert vb.err("ZOS.VBOX", "STOP", "a", "b") == \
        "ERR wrong number of arguments for 'zos.vbox STOP'"
    assert "wrong number of arguments" in vb.err("ZOS.VBOX")
    assert vb.err("ZOS.VBOX", "CREATE", "vm1", "COLOR", "red") == \
        "ERR bad option 'COLOR red' (MEMORY <mb>, DISK <mb>, PORT <1-65535>, ISO <path>)"
    assert vb.err("ZOS.VBOX", "CREATE", "vm1", "PORT", "70000").startswith("ERR bad option 'PORT")
    assert vb.err("ZOS.VBOX", "CREATE", "vm1", "MEMORY") == "ERR MEMORY needs a value"
    assert vb.err("ZOS.VBOX", "INFO", "-x") == "ERR invalid VM name '-x': it starts with '-'"
    assert vb.err("ZOS.VBOX", "START", "a/b") == "ERR invalid VM name 'a/b': it contains '/'"
    assert lab.stub.log() == []  # none of these ran VBoxManage
    for op in ("INFO", "START", "STOP", "DELETE"):
        assert vb.err("ZOS.VBOX", op, "nosuch") == "ERR no VirtualBox VM named 'nosuch'"
    assert create(lab, vb, "vm1", port) == "OK"
    assert vb.err("ZOS.VBOX", "CREATE", "vm1", "PORT", free_port(), "ISO", lab.iso) == \
        "ERR VirtualBox VM 'vm1' already exists"
    assert vb.err("ZOS.VBOX", "CREATE", "vm2", "PORT", port, "ISO", lab.iso) == \
        "ERR port %d already taken by VM 'vm1'" % port
    assert vb.ok("ZOS.VBOX", "LIST") == ["vm1"]


def test_a_failing_step_is_reported_and_rolled_back(lab, vb):
    lab.control("fail", "storageattach")
    e = vb.err("ZOS.VBOX", "CREATE", "vm1", "PORT", free_port(), "DISK", 0, "ISO", lab.iso)
    assert e == ("ERR VBoxManage storageattach failed (exit 1): VBoxManage: error: injected "
                 "failure of storageattach [VBoxManage storageattach vm1 --storagectl 'IDE "
                 "Controller' --port 0 --device 0 --type dvddrive --medium %s]" % lab.iso), e
    assert lab.stub.log()[-1] == ["unregistervm", "vm1", "--delete"]
    lab.control("fail")
    assert vb.ok("ZOS.VBOX", "LIST") == []
    assert not os.path.exists(os.path.join(lab.home, "VirtualBox VMs", "vm1"))


def test_vboxmanage_missing(lab, vb):
    off = lab.vboxmanage + ".off"
    os.rename(lab.vboxmanage, off)
    try:
        for args in (("LIST",), ("INFO", "vm1"), ("CREATE", "vm1", "ISO", lab.iso)):
            assert vb.err("ZOS.VBOX", *args) == \
                "ERR VirtualBox is not installed: VBoxManage not found on PATH"
    finally:
        os.rename(off, lab.vboxmanage)
    assert vb.ok("ZOS.VBOX", "LIST") == []


def test_a_slow_vboxmanage_does_not_block_other_clients(lab, vb):
    kv = lab.proxy.client()
    kv.ok("SET", "e2e:vbox", "x" * 64)
    # Every VBoxManage waits until the test lets it go: the two LISTs must be held at
    # the same time (one after the other, the second would never start), and the GETs
    # must all be answered meanwhile (held behind them, they would hang), whatever the load.
    lab.control("hold", "")
    slow = [lab.proxy.client(), lab.proxy.client()]
    for c in slow:
        c.send("ZOS.VBOX", "LIST")
    wait_until(lambda: lab.held() == 2, "two LISTs never ran at once")
    run_parallel_gets(lab.proxy.port, "e2e:vbox", "x" * 64, clients=5, each=100)
    lab.control("hold")
    assert [c.read() for c in slow] == [[], []]
    # and a client that leaves while its VBoxManage runs does not disturb the proxy
    wait_until(lambda: lab.held() == 0, "the released LISTs never ended")
    lab.control("hold", "")
    gone = lab.proxy.client()
    gone.send("ZOS.VBOX", "LIST")
    wait_until(lambda: lab.held() == 1, "the LIST never started")
    gone.close()
    lab.control("hold")
    wait_until(lambda: lab.held() == 0, "the released LIST never ended")
    assert kv.ok("ZOS.VBOX", "LIST") == []
    assert kv.ok("PING") == "PONG"
    for c in slow:
        c.close()
    kv.close()

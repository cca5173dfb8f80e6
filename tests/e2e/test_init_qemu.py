"""`zos init --hypervisor qemu`: the qemu command line and the forward port.

There is no Zero-OS inside (a tiny ISO9660 image made here boots nothing), so
init's PONG wait times out (kept short with --timeout); what is checked is the
command line of the running qemu (/proc/<pid>/cmdline, its pid from the pidfile
init asked for), that 127.0.0.1:<redisport> accepts connections while qemu runs
(qemu's user-net hostfwd), and that `zos remove` stops it.  qemu daemonizes, so
it is not a child Procs could stop: the test kills it by the pidfile's PID in
any case.
"""
import os
import shutil
import signal
import socket
import struct
import time

import pytest

from conftest import Cli, free_port
from zostest import pid_alive as alive

QEMU = "qemu-system-x86_64"


def both16(n):
    return struct.pack("<H", n) + struct.pack(">H", n)


def both32(n):
    return struct.pack("<I", n) + struct.pack(">I", n)


def dir_record(extent, size, name, flags):
    rec = struct.pack("<BB", 0, 0) + both32(extent) + both32(size)
    rec += bytes([124, 1, 1, 0, 0, 0, 0]) + bytes([flags, 0, 0]) + both16(1)
    rec += bytes([len(name)]) + name
    if len(rec) % 2:
        rec += b"\0"
    return bytes([len(rec)]) + rec[1:]


def tiny_iso(path, text=b"zos e2e test\n"):
    """A minimal ISO9660 image: a primary volume descriptor, a terminator, path tables,
    a root directory holding README.TXT;1.  About 44 KiB."""
    sector = 2048
    root, readme = 20, 21
    rootdir = dir_record(root, sector, b"\0", 2) + dir_record(root, sector, b"\1", 2) + \
        dir_record(readme, len(text), b"README.TXT;1", 0)
    rootdir = rootdir.ljust(sector, b"\0")
    lpath = bytes([1, 0]) + struct.pack("<I", root) + struct.pack("<H", 1) + b"\0\0"
    mpath = bytes([1, 0]) + struct.pack(">I", root) + struct.pack(">H", 1) + b"\0\0"
    pvd = bytes([1]) + b"CD001" + bytes([1, 0]) + b"LINUX".ljust(32) + b"ZOS_E2E".ljust(32)
    pvd += b"\0" * 8 + both32(22) + b"\0" * 32 + both16(1) + both16(1) + both16(sector)
    pvd += both32(len(lpath) - 2) + struct.pack("<I", 18) + b"\0" * 4
    pvd += struct.pack(">I", 19) + b"\0" * 4 + dir_record(root, sector, b"\0", 2)
    pvd += b" " * (128 * 4 + 37 * 3) + (b"0" * 16 + b"\0") * 4 + bytes([1, 0])
    term = bytes([255]) + b"CD001" + bytes([1])
    image = b"\0" * (16 * sector)
    for s in (pvd, term, lpath, mpath, rootdir, text):
        image += s.ljust(sector, b"\0")
    with open(path, "wb") as f:
        f.write(image)


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def kill_pid(pid):
    if pid and alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def user(tmp_path):
    return Cli(tmp_path)


def test_qemu_missing_exits_7(user, tmp_path):
    iso = str(tmp_path / "zos.iso")
    tiny_iso(iso)
    empty = tmp_path / "bin"
    empty.mkdir()
    r = user.run("init", "--name", "q0", "--hypervisor", "qemu", "--iso", iso, "--disksize", "0",
                 env={"PATH": str(empty)})
    assert r.rc == 7, r
    assert r.err == "zos: qemu is not installed: %s not found on PATH\n" % QEMU
    assert "q0" not in user.sections()


@pytest.mark.skipif(shutil.which(QEMU) is None,
                    reason="%s is not installed (apt-get install qemu-system-x86): the qemu "
                           "command line and forward are not tested" % QEMU)
def test_qemu_command_line_forward_and_remove(user, tmp_path):
    iso = str(tmp_path / "zos.iso")
    tiny_iso(iso)
    port = free_port()
    state = os.path.join(user.home, ".zos", "qemu", "q1")
    pidfile = os.path.join(state, "qemu.pid")
    pid = 0
    try:
        r = user.run("--timeout", "2", "init", "--name", "q1", "--hypervisor", "qemu", "--iso", iso,
                     "--memory", "1", "--disksize", "1", "--redisport", port)
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                pid = int(f.read().strip() or 0)
        # nothing in the guest answers: init started qemu and then waited in vain
        assert r.rc == 12, r
        assert r.err == "zos: node 'q1' at 127.0.0.1:%d did not answer PING within 2 s\n" % port
        assert "q1" not in user.sections()
        assert pid > 0 and alive(pid), "no running qemu after init (pidfile %s)" % pidfile

        accel = ["-accel", "kvm", "-accel", "tcg"] if kvm_usable() else ["-accel", "tcg"]
        disk = os.path.join(state, "disk.img")
        assert cmdline(pid) == [
            QEMU, "-name", "guest=q1", *accel, "-m", "1024", "-boot", "order=dc",
            "-cdrom", iso, "-drive", "file=%s,format=raw,if=virtio" % disk,
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:6379" % port,
            "-device", "virtio-net-pci,netdev=n0", "-display", "none",
            "-serial", "file:%s/serial.log" % state, "-monitor", "none", "-pidfile", pidfile,
            "-daemonize"]
        st = os.stat(disk)
        assert st.st_size == 1 << 30  # --disksize 1: a 1 GiB raw disk, sparse
        assert st.st_blocks * 512 < 1 << 20
        assert os.stat(state).st_mode & 0o777 == 0o700

        # qemu's user-net forward listens on the redis port while it runs
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass

        # init again: qemu runs already, so nothing is started a second time
        r = user.run("--timeout", "1", "init", "--name", "q1", "--hypervisor", "qemu", "--iso",
                     iso, "--memory", "1", "--disksize", "1", "--redisport", port)
        assert r.rc == 12, r
        with open(pidfile) as f:
            assert int(f.read()) == pid

        # a node named like the machine (not isvbox): remove stops its qemu
        user.ok("configure", "--name", "q1", "--port", port)
        assert user.sections()["q1"].get("isvbox", "false") == "false"
        r = user.run("remove", "--name", "q1")
        assert r.rc == 0, r
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "qemu %d still runs after zos remove" % pid
        assert not os.path.exists(pidfile)
        assert "q1" not in user.sections()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        kill_pid(pid)

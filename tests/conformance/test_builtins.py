"""Builtins of core0-protocol.md §7: ping, info.*, disk.list, filesystem.*."""
import base64
import json
import os
import re
import socket

import pytest


def test_ping_matches_info_version(node):
    pong = node.json("core.ping")
    v = node.json("info.version")
    assert list(v.keys()) == ["branch", "revision", "dirty"]
    assert v["dirty"] is False
    assert pong == "PONG Version: %s @Revision: %s" % (v["branch"], v["revision"])
    assert re.fullmatch(r"PONG Version: \S+ @Revision: [0-9a-f]{40}", pong)


def test_version_string_option(procs):
    from conftest import Node, start_node
    _, port = start_node(procs, extra=["--version-string", "development@abc123"])
    n = Node(port)
    assert n.json("core.ping") == "PONG Version: development @Revision: abc123"
    assert n.json("info.version")["branch"] == "development"


def test_core_state(node):
    s = node.json("core.state")
    assert list(s.keys()) == ["cpu", "rss", "vms", "swap"]
    assert s["rss"] > 0


def test_info_cpu(node):
    cpus = node.json("info.cpu")
    assert len(cpus) == os.cpu_count()
    keys = ["cpu", "vendorId", "family", "model", "stepping", "physicalId", "coreId", "cores",
            "modelName", "mhz", "cacheSize", "flags", "microcode"]
    for i, c in enumerate(cpus):
        assert list(c.keys()) == keys
        assert c["cpu"] == i
        assert isinstance(c["family"], str) and isinstance(c["model"], str)
        assert isinstance(c["stepping"], int) and isinstance(c["cores"], int)
        assert isinstance(c["mhz"], (int, float)) and isinstance(c["flags"], list)


def test_info_mem(node):
    m = node.json("info.mem")
    assert list(m.keys()) == ["total", "available", "used", "usedPercent", "free", "active",
                              "inactive", "wired", "buffers", "cached", "writeback", "dirty",
                              "writebacktmp", "shared", "slab", "pagetables", "swapcached"]
    assert m["total"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") or \
        abs(m["total"] - os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) < 1 << 20
    assert 0 <= m["usedPercent"] <= 100


def test_info_os(node):
    o = node.json("info.os")
    assert list(o.keys()) == ["hostname", "uptime", "bootTime", "procs", "os", "platform",
                              "platformFamily", "platformVersion", "kernelVersion",
                              "virtualizationSystem", "virtualizationRole", "hostid"]
    assert o["hostname"] == socket.gethostname()
    assert o["os"] == "linux" and o["kernelVersion"] == os.uname().release
    assert o["procs"] > 1 and o["uptime"] > 0


def test_info_nic(node):
    nics = node.json("info.nic")
    names = [n["name"] for n in nics]
    assert "lo" in names
    for n in nics:
        assert list(n.keys()) == ["mtu", "name", "hardwareaddr", "flags", "addrs", "speed",
                                  "carrier", "operstate"]
        assert isinstance(n["carrier"], bool) and isinstance(n["operstate"], bool)
    lo = nics[names.index("lo")]
    assert "loopback" in lo["flags"] and "up" in lo["flags"]
    assert {"addr": "127.0.0.1/8"} in lo["addrs"]


def test_info_disk(node):
    disks = node.json("info.disk")
    assert isinstance(disks, list)
    for d in disks:
        assert list(d.keys()) == ["device", "mountpoint", "fstype", "opts"]
        assert isinstance(d["opts"], str)


def test_disk_list_shape(node):
    disks = node.json("disk.list")
    assert isinstance(disks, list)
    for d in disks:
        keys = list(d.keys())
        assert keys[-6:] == ["start", "end", "size", "blocksize", "table", "free"]
        for k in ("name", "kname", "maj:min", "type"):
            assert k in d
        assert d["type"] == "disk"
        assert isinstance(d["size"], int) and d["end"] == max(d["size"] - 1, 0)
        assert isinstance(d["free"], list) and isinstance(d["table"], str)
        for c in d.get("children") or []:
            assert isinstance(c["size"], str)  # partitions keep lsblk's string size (§10.21)


def test_filesystem_round_trip(node, tmp_path):
    path = str(tmp_path / "x.txt")
    payload = os.urandom(700 * 1024)  # more than one 512 KiB block
    fd = node.json("filesystem.open", {"file": path, "mode": "w", "perm": 0o644})
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", fd)
    for off in range(0, len(payload), 512 * 1024):
        block = base64.encodebytes(payload[off:off + 512 * 1024]).decode()  # with newlines
        assert node.json("filesystem.write", {"fd": fd, "block": block}) is None
    assert node.json("filesystem.close", {"fd": fd}) is None
    assert os.stat(path).st_mode & 0o777 == 0o644 & ~_umask()

    fd = node.json("filesystem.open", {"file": path, "mode": "r", "perm": 0})
    got = b""
    sizes = []
    while True:
        block = node.json("filesystem.read", {"fd": fd})
        if block == "":
            break
        sizes.append(len(base64.b64decode(block)))
        got += base64.b64decode(block)
    assert got == payload
    assert sizes[0] == 512 * 1024
    node.json("filesystem.close", {"fd": fd})

    assert node.json("filesystem.exists", {"path": path}) is True
    assert node.json("filesystem.exists", {"path": path + ".nope"}) is False
    entries = node.json("filesystem.list", {"path": str(tmp_path)})
    assert entries == [{"name": "x.txt", "size": len(payload), "mode": 0o644 & ~_umask(),
                        "is_dir": False}]
    sub = str(tmp_path / "a" / "b")
    assert node.json("filesystem.mkdir", {"path": sub}) is None
    assert os.path.isdir(sub)
    assert node.json("filesystem.remove", {"path": str(tmp_path / "a")}) is None
    assert not os.path.exists(str(tmp_path / "a"))


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_filesystem_errors(node, tmp_path):
    missing = str(tmp_path / "nope.txt")
    msg, code = node.error("filesystem.open", {"file": missing, "mode": "r", "perm": 0})
    assert (msg, code) == ("open %s: no such file or directory" % missing, 500)
    msg, _ = node.error("filesystem.read", {"fd": "bogus"})
    assert msg == "unknown file description 'bogus'"
    msg, _ = node.error("filesystem.write", {"fd": "bogus", "block": ""})
    assert msg == "unknown file description 'bogus'"
    msg, _ = node.error("filesystem.open", {"file": missing, "mode": "rw", "perm": 0})
    assert msg == "rwax modes has to be used once and only once"
    msg, _ = node.error("filesystem.open", {"file": missing, "mode": "q", "perm": 0})
    assert msg == "unknown mode 'q'"


@pytest.mark.parametrize("mode,flags", [("a", "append"), ("x", "exclusive")])
def test_filesystem_modes(node, tmp_path, mode, flags):
    path = tmp_path / "m.txt"
    path.write_text("old")
    if mode == "x":
        msg, _ = node.error("filesystem.open", {"file": str(path), "mode": "x", "perm": 420})
        assert msg == "open %s: file exists" % path
        return
    fd = node.json("filesystem.open", {"file": str(path), "mode": mode, "perm": 420})
    node.json("filesystem.write", {"fd": fd, "block": base64.b64encode(b"+new").decode()})
    node.json("filesystem.close", {"fd": fd})
    assert path.read_text() == "old+new"


def test_job_arguments_type_errors(node):
    msg, code = node.error("filesystem.exists", [1])
    assert msg == "json: cannot unmarshal array into Go value of type builtin.FSPathArgs"
    msg, _ = node.error("job.list", {"id": 5})
    assert msg.startswith("json: cannot unmarshal number")
    assert json.dumps(msg)

"""`zos init` without --iso: the Zero-OS ISO downloaded once to ~/.zos/zos.iso.

ZOS_ISO_URL points at tests/fixtures/http_server.py on a free loopback port (plain
http: zos verifies https servers against the system's CAs, which know no test
certificate; https itself is covered by tests/unit/test_fetch.c).  The server logs
every request, so a test can tell whether zos downloaded anything.  As in
test_init_vbox.py, the stand-in VBoxManage is first on PATH and a simulated node
listens on the forwarded port to answer the PING init waits for.
"""
import os
import select
import stat
import subprocess
import time
import urllib.parse

import pytest

from conftest import (FIXTURES, Cli, Procs, VBoxStub, create_sequence, free_port, start_sequence)

SYS_PATH = "/usr/bin:/bin"
ISO_PATH = "iso/master/0/development debug"  # the original's URL, %20 and all
ISO_SIZE = 3 * 1024 * 1024 + 17


class IsoServer:
    """http_server.py serving a random ISO; every request is logged."""

    def __init__(self, procs):
        www = os.path.join(procs.tmp, "www")
        os.makedirs(os.path.join(www, os.path.dirname(ISO_PATH)))
        self.data = os.urandom(ISO_SIZE)
        for name in (ISO_PATH, "zos.iso"):  # the second for /truncate/zos.iso
            with open(os.path.join(www, name), "wb") as f:
                f.write(self.data)
        self.log_path = os.path.join(procs.tmp, "requests.log")
        p = procs.start(["/usr/bin/python3", os.path.join(FIXTURES, "http_server.py"), www],
                        stdout=subprocess.PIPE)
        line, deadline = b"", time.monotonic() + 15
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.monotonic()))
            b = os.read(p.stdout.fileno(), 1) if ready else b""
            if not b:
                raise RuntimeError("http_server.py printed no ready line (exit %s)" % p.poll())
            line += b
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d/%s" % (self.port, ISO_PATH.replace(" ", "%20"))

    def requests(self):
        try:
            with open(self.log_path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


@pytest.fixture(scope="module")
def server():
    procs = Procs()
    try:
        yield IsoServer(procs)
    finally:
        procs.close()


class DlUser(Cli):
    """A zos user with the stand-in VBoxManage first on PATH and no ISO anywhere."""

    def __init__(self, tmp, url):
        self.stub = VBoxStub(os.path.join(str(tmp), "stub"))
        super().__init__(tmp, PATH=FIXTURES + ":" + SYS_PATH, ZOS_ISO_URL=url, **self.stub.env())
        self.iso = os.path.join(self.home, ".zos", "zos.iso")

    def init(self, name, port, *extra, **kw):
        return self.run("init", "--name", name, "--memory", "2", "--disksize", "1",
                        "--redisport", port, *extra, **kw)

    def leftovers(self):
        d = os.path.join(self.home, ".zos")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_init_downloads_the_iso_once(tmp_path, node, server):
    user = DlUser(tmp_path, server.url)
    before = len(server.requests())
    r = user.init("dl", node)
    assert r.rc == 0, r
    assert r.out == ""
    assert "zos: downloading the Zero-OS ISO from %s to %s" % (server.url, user.iso) in r.err
    assert "\r" not in r.err  # no progress bar: stderr is not a terminal
    with open(user.iso, "rb") as f:
        assert f.read() == server.data
    assert user.leftovers() == ["zos.iso"]  # no zos.iso.part
    assert stat.S_IMODE(os.stat(os.path.dirname(user.iso)).st_mode) == 0o700
    assert server.requests()[before:] == ["GET /" + ISO_PATH.replace(" ", "%20")]
    # then the VBoxManage sequence with the downloaded ISO, and the node configured
    u = user.stub.uuid("dl")
    assert user.stub.log() == [["list", "vms"]] + create_sequence(
        user.home, "dl", 2048, 1024, node, user.iso) + start_sequence(u)
    assert user.sections()["app"]["defaultzos"] == "dl"

    # init again (the VM runs), and a new VM after removing it: the ISO is there,
    # nothing is fetched, the new VM boots the same file
    r = user.init("dl", node)
    assert r.rc == 0, r
    user.ok("remove", "--name", "dl")
    user.stub.clear_log()
    r2 = user.init("dl2", node)
    assert r2.rc == 0, r2
    for res in (r, r2):
        assert "downloading" not in res.err, res
    assert server.requests()[before:] == ["GET /" + ISO_PATH.replace(" ", "%20")]
    attach = [a for a in user.stub.log() if a[:2] == ["storageattach", "dl2"]]
    assert attach[-1][-1] == user.iso
    with open(user.iso, "rb") as f:
        assert f.read() == server.data


def test_init_follows_a_redirect(tmp_path, node, server):
    to = urllib.parse.quote("/" + ISO_PATH.replace(" ", "%20"), safe="")
    url = "http://127.0.0.1:%d/redirect?code=302&to=%s" % (server.port, to)
    user = DlUser(tmp_path, url)
    r = user.init("redir", node)
    assert r.rc == 0, r
    with open(user.iso, "rb") as f:
        assert f.read() == server.data


@pytest.mark.parametrize("what", ["404", "refused", "truncated"])
def test_a_failed_download_exits_14_and_leaves_no_iso(tmp_path, node, server, what):
    url = {
        "404": "http://127.0.0.1:%d/iso/missing.iso" % server.port,
        "refused": "http://127.0.0.1:%d/zos.iso" % free_port(),
        "truncated": "http://127.0.0.1:%d/truncate/zos.iso" % server.port,
    }[what]
    says = {"404": "HTTP 404", "refused": "Connection refused",
            "truncated": "connection closed after %d of %d bytes" % (ISO_SIZE // 2, ISO_SIZE)}[what]
    user = DlUser(tmp_path, url)
    r = user.init("failed", node)
    assert r.rc == 14, r
    assert "zos: cannot download the Zero-OS ISO: %s: " % url in r.err, r
    assert says in r.err, r
    assert "give --iso=<file>, or set ZOS_ISO_URL" in r.err
    assert user.leftovers() == []  # neither zos.iso nor zos.iso.part
    assert not any(a[0] == "createvm" for a in user.stub.log())
    assert "failed" not in user.sections()


def test_iso_option_never_downloads(tmp_path, node, server):
    user = DlUser(tmp_path, server.url)
    before = len(server.requests())
    iso = os.path.join(user.tmp, "given.iso")
    with open(iso, "wb") as f:
        f.write(b"\0" * 4096)
    r = user.init("given", node, "--iso", iso)
    assert r.rc == 0, r
    r = user.init("missing", node, "--iso", os.path.join(user.tmp, "nope.iso"))
    assert r.rc == 11, r
    assert "--iso: %s: No such file or directory" % os.path.join(user.tmp, "nope.iso") in r.err
    assert server.requests()[before:] == []
    assert user.leftovers() == []


def test_no_download_without_virtualbox(tmp_path, server):
    """A missing VBoxManage is said before the ISO is fetched (exit 4), not after."""
    user = DlUser(tmp_path, server.url)
    before = len(server.requests())
    r = user.init("novbox", free_port(), env={"PATH": SYS_PATH})
    assert r.rc == 4, r
    assert "VirtualBox is not installed" in r.err
    assert server.requests()[before:] == []
    assert user.leftovers() == []

"""Fixtures of the CLI suite: the real build/zos against simulated nodes.

Nodes live for the whole module (starting one takes ~200 ms):
  * "plain":  zos-node-sim on plain TCP, no secret;
  * "secure": zos-node-sim with TLS and the secret NODE_SECRET (AUTH).
Each test gets its own HOME and ZOS_CONFIG in a temp dir (the `zos` fixture),
with an ed25519 key in ~/.ssh and a config naming both nodes ("plain" the
default), unless it asks for an empty one.  Every process is started through
zostest.Procs and stopped by PID in teardown, even when a test fails.

Under a SANITIZER build (ZOS_BUILD=$PWD/build-asan) a sanitizer report makes
the run fail: Zos.run checks stderr for one on every call.
"""
import json
import os
import subprocess
import sys

import pytest
import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import zostest  # noqa: E402
from zostest import Procs, free_port, isolated_env, start_sim, wait_port  # noqa: E402

NODE_SECRET = "n0de-jwt-2b7e91"
RUN_TIMEOUT = 60


def pytest_sessionstart(session):
    for b in (zostest.CLI_BIN, zostest.SIM_BIN):
        if not os.access(b, os.X_OK):
            raise pytest.UsageError("%s is missing: run `make` (or set ZOS_BUILD)" % b)


class Result:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout
        self.err = p.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "Result(rc=%r, out=%r, err=%r)" % (self.rc, self.out[-2000:], self.err[-2000:])


class Zos:
    """One isolated user of zos: HOME, ZOS_CONFIG, environment."""

    def __init__(self, tmpdir, procs):
        self.tmp = str(tmpdir)
        self.procs = procs
        self.env = isolated_env(self.tmp)
        self.env.pop("ZOS_DEBUG", None)
        self.env.pop("ZOS_PROXY_PASSWORD", None)
        for k in ("GRID_ZEROTIER_ID", "GRID_ZEROTIER_ID_TESTING"):
            self.env.pop(k, None)
        self.home = self.env["HOME"]
        self.config = self.env["ZOS_CONFIG"]

    def run(self, *args, env=None, input=None, timeout=RUN_TIMEOUT):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run([zostest.CLI_BIN] + [str(a) for a in args], env=e, input=input,
                           capture_output=True, text=True, timeout=timeout)
        r = Result(p)
        for marker in ("Sanitizer", "runtime error:", "LeakSanitizer"):
            assert marker not in r.err, "sanitizer report from zos %s:\n%s" % (args, r.err)
        return r

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.rc == 0, r
        return r

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    def read_config(self):
        with open(self.config) as f:
            return f.read()

    def keygen(self, name="id_ed25519", comment="tester@zos"):
        d = os.path.join(self.home, ".ssh")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        if not os.path.exists(path):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                           check=True)
        with open(path + ".pub") as f:
            return f.read().strip()


def node_section(name, port, tls=False, secret=None):
    s = "[%s]\naddress = 127.0.0.1\nport = %d\ntls = %s\n" % (name, port, "yes" if tls else "no")
    if secret:
        s += "secret = %s\n" % secret
    return s


class Nodes:
    def __init__(self, procs):
        self.procs = procs
        _, self.plain = start_sim(procs)
        _, self.secure = start_sim(procs, tls=True, secret=NODE_SECRET)

    def config(self, default="plain"):
        return ("[app]\ndefaultzos = %s\n\n" % default + node_section("plain", self.plain) + "\n" +
                node_section("secure", self.secure, tls=True, secret=NODE_SECRET))

    def redis(self):
        """A redis-py client on the plain node (to look at the keys zos wrote)."""
        return redis.Redis(port=self.plain, decode_responses=True, socket_timeout=10)


@pytest.fixture(scope="module")
def procs():
    p = Procs()
    yield p
    p.close()


@pytest.fixture(scope="module")
def nodes(procs):
    return Nodes(procs)


@pytest.fixture
def zos(tmp_path, procs, nodes):
    """A zos user configured with both nodes and an ssh key."""
    z = Zos(tmp_path, procs)
    z.write_config(nodes.config())
    z.pubkey = z.keygen()
    return z


@pytest.fixture
def bare(tmp_path, procs):
    """A zos user with no config file and no ssh key."""
    return Zos(tmp_path, procs)


@pytest.fixture
def fnprocs():
    p = Procs()
    yield p
    p.close()

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
import os
import sys

import pytest
import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import zostest  # noqa: E402
from zostest import Procs, fnprocs, node_section, start_sim  # noqa: E402,F401

NODE_SECRET = "n0de-jwt-2b7e91"


def pytest_sessionstart(session):
    zostest.require_binaries((zostest.CLI_BIN, zostest.SIM_BIN))


class Zos(zostest.CliUser):
    """One isolated user of zos: HOME, ZOS_CONFIG, environment."""

    def __init__(self, tmpdir, procs):
        super().__init__(tmpdir)
        self.procs = procs

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    def read_config(self):
        with open(self.config) as f:
            return f.read()

    def keygen(self, name="id_ed25519", comment="tester@zos"):
        return zostest.keygen(os.path.join(self.home, ".ssh", name), comment)


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

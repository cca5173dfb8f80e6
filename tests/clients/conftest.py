"""Fixtures of the client-library suite: real redis-server nodes, the real zos-proxy, and
the client libraries (node-redis, ioredis, redis-py, hiredis, redis-cli, Ruby, PHP, Perl,
Lua, Go) that talk to it.

One stack lives for the whole session (`stack`):
  * "plain":  redis-server on plain TCP, no password;
  * "secure": redis-server with TLS only and requirepass NODE_SECRET (only the proxy
    knows it and sends it as AUTH);
  * zos-proxy in front of both, no [proxy] requirepass, default node "plain"; each node has
    a client `password` of its own, so `redis://NODE:PASSWORD@127.0.0.1:PORT` selects the
    node and `AUTH PASSWORD` alone does too.
On each node the key `clients:whoami` holds the node's name: a client checks with one GET
that it landed where its URL said.

Tests that need their own redis or proxy use the function-scoped `lab` fixture.  Every
process goes through zostest.Procs and is stopped by PID at teardown, even on failure;
HOME and ZOS_CONFIG point into a temp dir.  The session proxy must be alive after every
test and exit 0 on SIGTERM at the end.

Client libraries that are missing are skipped with the reason (pytest.skip), never
silently: npm packages are installed by the set-up into a cache outside the repo
($XDG_CACHE_HOME or ~/.cache, zos-tests/npm/<versions>), Debian packages come from
`make deps` (DEB_TEST_PKGS).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import pytest
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.path.insert(0, HERE)
import zostest  # noqa: E402
from zostest import Procs, free_port, isolated_env, read_log, wait_port  # noqa: E402
from resp3raw import RawClient  # noqa: E402

NODE_SECRET = "tls-node-secret-4d1"          # requirepass of the TLS node == its `secret`
PASSWORDS = {"plain": "plain-client-pw-81", "secure": "secure-client-pw-a7"}
NODES = ("plain", "secure")
WHOAMI = "clients:whoami"

TIMEOUT = 10          # seconds one client read may take before we call it a hang (loopback)
SCRIPTS = os.path.join(HERE, "scripts")

NPM_PACKAGES = zostest.NPM_PACKAGES  # node-redis latest 6.x, ioredis latest (`npm view`)


def pytest_sessionstart(session):
    zostest.require_binaries((zostest.PROXY_BIN,), "make build/zos-proxy")


# ---------------------------------------------------------------- processes

class Lab:
    """Procs plus an isolated environment; proxies started through it must be alive at
    the end and exit 0 on SIGTERM."""

    def __init__(self):
        self.procs = Procs()
        self.tmp = self.procs.tmp
        self.env = isolated_env(self.tmp)
        self.proxies = []  # (proc, log path)

    def redis(self, password=None, tls=False, extra=()):
        """(port, cert) of a fresh redis-server."""
        _, port, cert = self.procs.redis(password=password, tls=tls, extra=extra)
        return port, cert

    def proxy(self, conf_text, port):
        proc, path = self.procs.proxy(conf_text, env=self.env, ready_port=port)
        self.proxies.append((proc, path[: -len(".toml")] + ".log"))
        return proc

    def problems(self):
        out = []
        for proc, log in self.proxies:
            if proc.poll() is not None:
                out.append("zos-proxy died during the test (exit %s); log:\n%s"
                           % (proc.returncode, read_log(log)))
                continue
            rc = self.procs.stop(proc, sig=signal.SIGTERM, timeout=15)
            if rc != 0:
                out.append("zos-proxy exited %s on SIGTERM (sanitizer report?); log:\n%s"
                           % (rc, read_log(log)))
        return out

    def close(self):
        try:
            return self.problems()
        finally:
            self.procs.close()


def proxy_conf(port, plain_port, tls_port, requirepass=None, passwords=PASSWORDS):
    """The config of a proxy on PORT in front of the plain and the TLS node."""
    head = "[proxy]\nlisten = 127.0.0.1:%d\ndefault = plain\n" % port
    if requirepass:
        head += "requirepass = %s\n" % requirepass
    plain_extra = "password = %s\n" % passwords["plain"] if passwords else ""
    secure_extra = "password = %s\n" % passwords["secure"] if passwords else ""
    return (head + "\n"
            + zostest.node_section("plain", plain_port, extra=plain_extra) + "\n"
            + zostest.node_section("secure", tls_port, tls=True, secret=NODE_SECRET,
                                   extra=secure_extra) + "\n")


class Stack:
    """The session's nodes and proxy."""

    def __init__(self, lab):
        self.lab = lab
        self.plain_port, _ = lab.redis()
        self.tls_port, self.cert = lab.redis(password=NODE_SECRET, tls=True)
        self.port = free_port()
        self.proc = lab.proxy(proxy_conf(self.port, self.plain_port, self.tls_port), self.port)
        self.log_path = lab.proxies[-1][1]
        for node in NODES:
            self.direct(node).set(WHOAMI, node)

    def log(self):
        return read_log(self.log_path)

    def password(self, node):
        return PASSWORDS[node]

    def url(self, node):
        return "redis://%s:%s@127.0.0.1:%d" % (node, PASSWORDS[node], self.port)

    def client(self, node, **kw):
        """redis-py (RESP2) through the proxy, on NODE."""
        kw.setdefault("socket_timeout", TIMEOUT)
        return redis.Redis(host="127.0.0.1", port=self.port, username=node,
                           password=PASSWORDS[node], **kw)

    def direct(self, node, **kw):
        """redis-py straight to NODE's redis-server (TLS and its secret for "secure")."""
        kw.setdefault("socket_timeout", TIMEOUT)
        if node == "plain":
            return redis.Redis(host="127.0.0.1", port=self.plain_port, **kw)
        return redis.Redis(host="127.0.0.1", port=self.tls_port, password=NODE_SECRET,
                           ssl=True, ssl_cert_reqs=None, **kw)

    def raw(self, node, proto=2, **kw):
        """A socket-level client of the proxy on NODE: AUTH NODE PASSWORD (PROTO 2) or
        HELLO 3 AUTH NODE PASSWORD (PROTO 3)."""
        kw.setdefault("timeout", TIMEOUT)
        c = RawClient(self.port, **kw)
        if proto == 3:
            f = c.call("HELLO", "3", "AUTH", node, PASSWORDS[node])
            assert f.type == "%", "HELLO 3 AUTH %s ...: %r" % (node, f.raw)
        else:
            f = c.call("AUTH", node, PASSWORDS[node])
            assert f.raw == b"+OK\r\n", "AUTH %s ...: %r" % (node, f.raw)
        return c

    def raw_direct(self, node, proto=2, **kw):
        """A socket-level client straight to NODE's redis-server (TLS for "secure")."""
        kw.setdefault("timeout", TIMEOUT)
        secure = node == "secure"
        c = RawClient(self.tls_port if secure else self.plain_port, tls=secure, **kw)
        if proto == 3:
            f = c.call("HELLO", "3", *(("AUTH", "default", NODE_SECRET) if secure else ()))
            assert f.type == "%", f.raw
        elif secure:
            assert c.call("AUTH", NODE_SECRET).raw == b"+OK\r\n"
        return c

    def alive(self):
        return self.proc.poll() is None


@pytest.fixture(scope="session")
def session_lab():
    lab = Lab()
    yield lab
    problems = lab.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def stack(session_lab):
    return Stack(session_lab)


@pytest.fixture(autouse=True)
def _session_proxy_stays_up(request):
    """After every test that used the session proxy, it must still be running."""
    yield
    if "stack" in request.fixturenames:
        st = request.getfixturevalue("stack")
        if not st.alive():
            pytest.fail("zos-proxy died (exit %s); its log:\n%s" % (st.proc.returncode, st.log()),
                        pytrace=False)


@pytest.fixture
def lab():
    """A private Lab for one test, checked and stopped at teardown."""
    lab = Lab()
    yield lab
    problems = lab.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def uniq(request):
    """A key prefix unique to this test and run (the session nodes are shared); no glob
    characters, so it also works as a PSUBSCRIBE / BCAST prefix."""
    name = "".join(ch if ch.isalnum() else "_" for ch in request.node.name)
    return "cl:%s:%s:" % (name, uuid.uuid4().hex[:8])


@pytest.fixture(params=NODES)
def node(request):
    """Each test using it runs once against the plain node and once against the TLS node."""
    return request.param


# ---------------------------------------------------------------- client libraries

def cache_root():
    return zostest.npm_cache_root()


def need_exe(name, package):
    """The path of executable NAME, or skip naming the Debian package that brings it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s not installed (Debian package %s; `make deps` installs it)" % (name, package))
    return path


def need_debian(package, why):
    """Skips unless Debian package PACKAGE is installed."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    if "install ok installed" not in r.stdout:
        pytest.skip("%s not installed (Debian package %s; `make deps` installs it): %s"
                    % (package, package, why))


@pytest.fixture(scope="session")
def node_modules():
    """node_modules with NPM_PACKAGES, installed once into the cache (never the repo)."""
    need_exe("node", "nodejs")
    need_exe("npm", "npm")
    path, why = zostest.npm_modules(NPM_PACKAGES)
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def build_dir():
    d = tempfile.mkdtemp(prefix="zos-clients-build-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def hiredis_bin(build_dir):
    """tests/clients/scripts/hiredis_client.c compiled against the system's libhiredis."""
    cc = need_exe("cc", "build-essential")
    if not os.path.exists("/usr/include/hiredis/hiredis.h"):
        pytest.skip("hiredis headers missing (Debian package libhiredis-dev)")
    out = os.path.join(build_dir, "hiredis_client")
    r = subprocess.run([cc, "-std=c11", "-O1", "-Wall", "-Werror", "-D_DEFAULT_SOURCE", "-o", out,
                        os.path.join(SCRIPTS, "hiredis_client.c"), "-lhiredis"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "hiredis_client.c does not compile:\n" + r.stderr
    return out


@pytest.fixture(scope="session")
def redigo_bin(build_dir):
    """tests/clients/scripts/redigo_client.go built in GOPATH mode against Debian's redigo."""
    go = need_exe("go", "golang-go")
    need_debian("golang-github-gomodule-redigo-dev", "the Go redigo client")
    out = os.path.join(build_dir, "redigo_client")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOFLAGS="",
               GOCACHE=os.path.join(cache_root(), "go-build"), CGO_ENABLED="0")
    r = subprocess.run([go, "build", "-o", out, os.path.join(SCRIPTS, "redigo_client.go")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, "redigo_client.go does not build:\n" + r.stderr
    return out


def run_script(argv, checks, env=None, timeout=150):
    """Runs a client script that prints `ok CHECK` or `fail CHECK DETAIL` per check;
    returns {check: (ok, detail)} with every check of CHECKS (unreported ones failed,
    with the script's exit status and the tail of its output)."""
    try:
        r = subprocess.run(argv + list(checks), capture_output=True, text=True, env=env,
                           timeout=timeout, errors="replace")
        out, err, how = r.stdout, r.stderr, "exit %s" % r.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr or b"").decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        how = "killed after %d s (hung)" % timeout
    results = {}
    for line in out.splitlines():
        words = line.split(" ", 2)
        if len(words) >= 2 and words[0] in ("ok", "fail") and words[1] in checks:
            results[words[1]] = (words[0] == "ok", words[2] if len(words) > 2 else "")
    for c in checks:
        if c not in results:
            results[c] = (False, "not reported (%s); stdout tail: %r; stderr tail: %r"
                          % (how, out[-600:], err[-1200:]))
    return results

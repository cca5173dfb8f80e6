"""Fixtures of the integration suite: real redis-server nodes, the real zos-proxy.

Two nodes live for the whole session:
  * "plain":  redis-server on plain TCP, no password;
  * "secure": redis-server with TLS only and requirepass NODE_SECRET (the proxy
    holds the secret and sends it as AUTH; clients never see it).
Two proxies in front of them live for the session too:
  * open_proxy:   no requirepass, default node "plain", a unix socket, and a
                  listen port of its own for "secure";
  * locked_proxy: requirepass PROXY_PASS, "secure" has its own client password
                  SECURE_PASS and a listen port of its own.
Tests that need their own config, or that kill processes, start them through
the function-scoped `lab` fixture.  Every process is started through
zostest.Procs and stopped by PID in teardown, even when the test fails.  Every
proxy must still be running after each test and must exit 0 on SIGTERM at
teardown (under a SANITIZER build a non-zero exit is a sanitizer report): its
stderr log is printed when not.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import zostest  # noqa: E402
from zostest import Procs, free_port, isolated_env, read_log, wait_port  # noqa: E402

NODE_SECRET = "n0de-secret-7f3a"   # requirepass of the TLS node == its `secret` in the config
PROXY_PASS = "proxy-pass-19c2"     # [proxy] requirepass of locked_proxy
SECURE_PASS = "secure-client-5e81" # [secure] password of locked_proxy

TIMEOUT = 15  # seconds any single client read may take before we call it a hang


def pytest_sessionstart(session):
    zostest.require_binaries((zostest.PROXY_BIN,), "make build/zos-proxy")


# ---------------------------------------------------------------- helpers

def tls_key_of(cert):
    """zostest.make_cert writes server.key beside server.crt."""
    return os.path.join(os.path.dirname(cert), "server.key")


def direct_plain(port):
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=TIMEOUT)


def direct_tls(port, password=NODE_SECRET):
    return redis.Redis(host="127.0.0.1", port=port, password=password, ssl=True,
                       ssl_cert_reqs=None, decode_responses=True, socket_timeout=TIMEOUT)


def raw_connect(port, host="127.0.0.1", timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_until_closed(sock, timeout=10):
    """Everything the peer sends until it closes; raises TimeoutError if it never does."""
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("connection not closed after %ss; got %r" % (timeout, b"".join(chunks)))
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def recv_exactly_lines(sock, n, timeout=10):
    """Reads until N CRLF-terminated lines arrived (simple replies only)."""
    sock.settimeout(timeout)
    buf = b""
    while buf.count(b"\r\n") < n:
        b = sock.recv(65536)
        if not b:
            break
        buf += b
    return buf


def wait_for(pred, timeout=30.0, interval=0.05, what="condition"):
    """Polls PRED until it returns a truthy value; returns it, or fails after TIMEOUT
    (a no-hang guard, generous: a loaded machine is slow, not wrong)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last one
            last_exc = e
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last error: %r)"
                         % (timeout, what, last_exc))


def wait_node_busy(direct, timeout=30.0):
    """Waits until the node behind DIRECT (a redis-py client straight to it) answers -BUSY:
    a script it runs has passed its busy time."""
    def busy():
        try:
            direct.ping()
            return False
        except redis.ResponseError as e:
            return "BUSY" in str(e)
    wait_for(busy, timeout=timeout, what="the node busy with the script")


def raw_cmd(client, *args):
    """ARGS on one of CLIENT's connections; the reply as parsed by RESP only (no redis-py
    response callbacks: PING x stays a string, QUEUED stays QUEUED)."""
    conn = client.connection_pool.get_connection(args[0])
    try:
        conn.send_command(*args)
        reply = conn.read_response()
    finally:
        client.connection_pool.release(conn)
    if isinstance(reply, redis.ResponseError):
        raise reply
    return reply


def hangup(client):
    """Really closes CLIENT's sockets (redis-py 4.3 close() only returns them to the pool)."""
    if getattr(client, "connection", None) is not None:
        client.connection.disconnect()
    client.connection_pool.disconnect()


def info_text(client):
    """INFO as the raw text (redis-py's info() drops the section headers)."""
    conn = client.connection_pool.get_connection("INFO")
    try:
        conn.send_command("INFO")
        text = conn.read_response()
    finally:
        client.connection_pool.release(conn)
    return text.decode() if isinstance(text, bytes) else text


def node_info(client, name):
    """The node_NAME line of INFO's # Proxy section as a dict, or {}."""
    for line in info_text(client).splitlines():
        if line.startswith("node_%s:" % name):
            return dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split(",") if "=" in kv)
    return {}


class Proxy:
    """A running zos-proxy: its process, ports, log, and clients connected to it."""

    def __init__(self, procs, proc, conf_path, port, unixsocket=None, node_ports=None):
        self.procs = procs
        self.proc = proc
        self.conf_path = conf_path
        self.log_path = conf_path[: -len(".toml")] + ".log"
        self.port = port
        self.unixsocket = unixsocket
        self.node_ports = node_ports or {}
        self.expect_exit = False  # set by tests that stop it themselves
        self.checked = False

    def log(self):
        return read_log(self.log_path)

    def client(self, port=None, **kw):
        kw.setdefault("socket_timeout", TIMEOUT)
        kw.setdefault("decode_responses", True)
        return redis.Redis(host="127.0.0.1", port=port or self.port, **kw)

    def raw(self, port=None, timeout=10):
        return raw_connect(port or self.port, timeout=timeout)

    def alive(self):
        return self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), ("zos-proxy died (exit %s); its log:\n%s"
                              % (self.proc.returncode, self.log()))

    def terminate(self, timeout=15):
        """SIGTERM by PID; returns the exit code (SIGKILL after TIMEOUT gives -9)."""
        return self.procs.stop(self.proc, sig=signal.SIGTERM, timeout=timeout)

    def check_clean_exit(self):
        """'' when the proxy was alive and exits 0 on SIGTERM, else what went wrong."""
        if self.expect_exit or self.checked:
            return ""
        self.checked = True
        if not self.alive():
            return "zos-proxy %s died during the test (exit %s); log:\n%s" % (
                self.conf_path, self.proc.returncode, self.log())
        rc = self.terminate()
        if rc != 0:
            return "zos-proxy %s exited %s on SIGTERM (sanitizer report?); log:\n%s" % (
                self.conf_path, rc, self.log())
        return ""


class Lab:
    """Procs plus the proxies started through it; finish() checks and stops all."""

    def __init__(self):
        self.procs = Procs()
        self.tmp = self.procs.tmp
        self.env = isolated_env(self.tmp)
        self.proxies = []

    def redis(self, password=None, tls=False):
        """(proc, port, cert) of a fresh redis-server, as zostest.Procs.redis."""
        return self.procs.redis(password=password, tls=tls)

    def redis_on(self, port=None, password=None, tls_files=None):
        """(proc, port) of a redis-server on PORT (a free one when None); TLS_FILES (cert,
        key) makes it TLS-only.  For nodes that must come back on the same port after a kill."""
        p, port, _ = self.procs.redis(port=port, password=password, tls_files=tls_files)
        return p, port

    def write_conf(self, text, name="conf.toml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def proxy(self, conf_text, port, unixsocket=None, node_ports=None, wait=True):
        proc, path = self.procs.proxy(conf_text, env=self.env, ready_port=port if wait else None)
        p = Proxy(self.procs, proc, path, port, unixsocket, node_ports)
        self.proxies.append(p)
        if wait:
            for q in (node_ports or {}).values():
                wait_port(q, proc=proc)
        return p

    def session_proxy(self, conf_text, port, **kw):
        """A proxy that must stay up for the whole session (checked after every test)."""
        p = self.proxy(conf_text, port, **kw)
        _session_proxies.append(p)
        return p

    def run_proxy(self, args, timeout=20):
        """Runs zos-proxy to completion (e.g. -t); returns CompletedProcess."""
        return subprocess.run([zostest.PROXY_BIN] + list(args), env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def redis_cli(self, args, input=None, timeout=30):
        return subprocess.run(["redis-cli"] + list(args), env=self.env, input=input,
                              capture_output=True, text=True, timeout=timeout)

    def finish(self):
        problems = []
        for p in reversed(self.proxies):
            try:
                msg = p.check_clean_exit()
            except Exception as e:  # noqa: BLE001
                msg = "could not stop zos-proxy: %r\n%s" % (e, p.log())
            if msg:
                problems.append(msg)
        self.procs.close()
        return problems


def node_section(name, port, tls=False, secret=None, extra=""):
    """A node section and the blank line after it."""
    return zostest.node_section(name, port, tls=tls, secret=secret, extra=extra) + "\n"


def finish_lab(lab):
    """Lab.finish; fails the test (no traceback) with every problem found."""
    problems = lab.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


class Nodes:
    def __init__(self, lab):
        _, self.plain_port, _ = lab.redis()
        _, self.tls_port, self.cert = lab.redis(password=NODE_SECRET, tls=True)

    def plain(self):
        return direct_plain(self.plain_port)

    def secure(self):
        return direct_tls(self.tls_port)


# ---------------------------------------------------------------- fixtures

_session_proxies = []


@pytest.fixture(scope="session")
def session_lab():
    lab = Lab()
    yield lab
    finish_lab(lab)


@pytest.fixture(scope="session")
def nodes(session_lab):
    return Nodes(session_lab)


@pytest.fixture(scope="session")
def open_proxy(session_lab, nodes):
    port, secure_port = free_port(), free_port()
    sock = os.path.join(session_lab.tmp, "zos.sock")
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\nunixsocket = %s\ndefault = plain\n\n" % (port, sock)
            + node_section("plain", nodes.plain_port)
            + node_section("secure", nodes.tls_port, tls=True, secret=NODE_SECRET,
                           extra="listen = 127.0.0.1:%d\n" % secure_port))
    return session_lab.session_proxy(conf, port, unixsocket=sock, node_ports={"secure": secure_port})


@pytest.fixture(scope="session")
def locked_proxy(session_lab, nodes):
    port, secure_port = free_port(), free_port()
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\nrequirepass = %s\ndefault = plain\n\n"
            % (port, PROXY_PASS)
            + node_section("plain", nodes.plain_port)
            + node_section("secure", nodes.tls_port, tls=True, secret=NODE_SECRET,
                           extra="password = %s\nlisten = 127.0.0.1:%d\n"
                           % (SECURE_PASS, secure_port)))
    return session_lab.session_proxy(conf, port, node_ports={"secure": secure_port})


@pytest.fixture(autouse=True)
def _session_proxies_stay_up():
    """After every test, each session proxy must still be running."""
    yield
    for p in _session_proxies:
        if not p.expect_exit and not p.checked and not p.alive():
            p.expect_exit = True  # reported once, here
            pytest.fail("zos-proxy %s died (exit %s); its log:\n%s"
                        % (p.conf_path, p.proc.returncode, p.log()), pytrace=False)


@pytest.fixture
def lab():
    """A private Procs for one test: its processes are stopped by PID at teardown and
    each proxy it started must still be alive and exit 0 on SIGTERM."""
    lab = Lab()
    yield lab
    finish_lab(lab)


@pytest.fixture
def uniq(request):
    """A key prefix unique to the test (the session nodes are shared)."""
    return "t:%s:%d:" % (request.node.name, os.getpid())


# ---------------------------------------------------------------- hostile nodes, raw replies

from resp_raw import RawResp  # noqa: E402


class RawConn(RawResp):
    """A raw RESP2 connection (resp_raw.RawResp: errors are returned, not raised) that can
    also hand back the exact bytes of a reply: read_raw() -> (bytes, parsed)."""

    timeout = TIMEOUT
    _rec = None

    def _line(self):
        line = super()._line()
        if self._rec is not None:
            self._rec.append(line + b"\r\n")
        return line

    def _exact(self, n):
        data = super()._exact(n)
        if self._rec is not None:
            self._rec.append(data + b"\r\n")
        return data

    def read_raw(self):
        self._rec = []
        try:
            parsed = self.read()
            return b"".join(self._rec), parsed
        finally:
            self._rec = None

    def call_raw(self, *args):
        self.send(*args)
        return self.read_raw()


@pytest.fixture
def hostile():
    """A factory of scripted nodes (tests/lib/hostile_node.HostileNode, keyword arguments
    passed on), every one stopped at teardown."""
    from hostile_node import HostileNode
    made = []

    def make(**kw):
        h = HostileNode(**kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
    errors = [e for h in made for e in h.errors]
    assert not errors, "hostile node helper failed: %s" % errors

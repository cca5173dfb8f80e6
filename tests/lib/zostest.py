"""zostest -- process helpers shared by the Python suites (conformance, integration,
jobs, cli, e2e).

Every process a test starts goes through Procs, which stops it by PID (SIGTERM,
then SIGKILL) even when the test fails.  Ports are picked free at run time on
127.0.0.1.  Nothing here reads the user's config or keys: see isolated_env().
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ZOS_BUILD", os.path.join(ROOT, "build"))
PROXY_BIN = os.path.join(BUILD, "zos-proxy")
CLI_BIN = os.path.join(BUILD, "zos")
SIM_BIN = os.path.join(BUILD, "zos-node-sim")

ROOT_FLIST = "https://hub.grid.tf/tf-bootable/ubuntu:18.04.flist"  # the default container root
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "Sanitizer")
CLI_TIMEOUT = 60  # seconds one `zos` run may take


def require_binaries(bins, make_hint="make"):
    """For pytest_sessionstart: a UsageError naming the first of BINS that is missing."""
    for b in bins:
        if not os.access(b, os.X_OK):
            raise pytest.UsageError("%s is missing: run `%s` (or set ZOS_BUILD)" % (b, make_hint))


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, host="127.0.0.1", proc=None):
    """Polls until PORT accepts a connection; raises on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("nothing listens on %s:%d after %.1fs" % (host, port, timeout))


def pid_alive(pid):
    """True while PID exists and is not a zombie (from /proc/PID/stat)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids, timeout=5.0):
    """Waits until no PID of PIDS is alive; returns those still alive after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.02)
    return [p for p in pids if pid_alive(p)]


def run_threads(threads, timeout):
    """Starts every thread of THREADS, then joins each with TIMEOUT."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def wait_until(pred, what, timeout=30.0):
    """Polls until PRED() is true; the timeout is a no-hang guard: the failure says WHAT hung."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "hung: %s (after %ss)" % (what, timeout)
        time.sleep(0.02)


def wait_file(path, what, timeout=30.0):
    """Polls until PATH exists (a marker a command wrote)."""
    wait_until(lambda: os.path.exists(path), "%s (no %s)" % (what, path), timeout)


# Shell snippets for tests of concurrency that no load can break: a command waits for a
# condition the test (or the other commands) create, never for a time.  Each polls at
# most POLLS times, 50 ms apart, so a broken proxy fails the test instead of hanging it.

def sh_gate(gate, command, polls=400):
    """Runs COMMAND once the file GATE exists; prints "no gate" if it never does."""
    return ("i=0; while [ ! -e %s ] && [ $i -lt %d ]; do sleep 0.05; i=$((i+1)); done; "
            "if [ -e %s ]; then %s; else echo no gate; fi" % (gate, polls, gate, command))


def sh_barrier(marks, n, me, polls=400):
    """Creates MARKS/ME, waits until N files are in the directory MARKS, then prints how
    many it saw and ME: "N ME" from every one of N commands proves they all ran at once,
    since none ended before the last had started."""
    return ("touch %s/%s; i=0; while [ $(ls %s | wc -l) -lt %d ] && [ $i -lt %d ]; do "
            "sleep 0.05; i=$((i+1)); done; echo $(ls %s | wc -l) %s"
            % (marks, me, marks, n, polls, marks, me))


def read_log(path, missing="(no log)"):
    """The text of the log file PATH (undecodable bytes replaced), or MISSING."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return missing


def job_request(command, arguments=None, id=None, **fields):
    """A core0 job request shaped like the py-client's Client.raw() (core0-protocol.md §2)."""
    req = {"id": id if id is not None else str(uuid.uuid4()), "command": command,
           "arguments": {} if arguments is None else arguments,
           "queue": None, "max_time": None, "stream": False, "tags": None,
           "recurring_period": None}
    req.update(fields)
    return req


def node_section(name, port, tls=False, secret=None, extra=""):
    """A node section of a zos.toml / zos-proxy config (no blank line after it)."""
    s = "[%s]\naddress = 127.0.0.1\nport = %d\ntls = %s\n" % (name, port, "yes" if tls else "no")
    if secret:
        s += "secret = %s\n" % secret
    return s + extra


def keygen(path, comment="tester@zos", dir_mode=0o777):
    """An ed25519 key pair at PATH (made once, with ssh-keygen); returns the public line."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), mode=dir_mode, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                       check=True, stdout=subprocess.DEVNULL)
    with open(path + ".pub") as f:
        return f.read().strip()


def isolated_env(tmpdir, **extra):
    """An environment whose HOME and ZOS_CONFIG point into TMPDIR."""
    env = dict(os.environ)
    env["HOME"] = os.path.join(tmpdir, "home")
    os.makedirs(env["HOME"], exist_ok=True)
    env["ZOS_CONFIG"] = os.path.join(tmpdir, "zos.toml")
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("ZOS_JWT", None)
    env.pop("SSH_AUTH_SOCK", None)
    env.update(extra)
    return env


CLI_ENV_DROP = ("ZOS_DEBUG", "ZOS_PROXY_PASSWORD", "GRID_ZEROTIER_ID", "GRID_ZEROTIER_ID_TESTING")


def clean_env(tmpdir, drop=CLI_ENV_DROP, **extra):
    """isolated_env without the variables DROP (those that change zos' behaviour), plus EXTRA."""
    env = isolated_env(tmpdir)
    for k in drop:
        env.pop(k, None)
    env.update(extra)
    return env


class CliResult:
    """How one `zos` run ended: rc, out, err (text), elapsed (seconds)."""

    def __init__(self, p, elapsed):
        self.rc = p.returncode
        self.out = p.stdout
        self.err = p.stderr
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "Result(rc=%r, out=%r, err=%r, %.2fs)" % (self.rc, self.out[-2000:],
                                                         self.err[-2000:], self.elapsed)


class CliUser:
    """One isolated user of `zos`: HOME, ZOS_CONFIG and environment in TMPDIR.  Every run
    fails on a sanitizer report on stderr."""

    env_drop = CLI_ENV_DROP

    def __init__(self, tmpdir, **extra):
        self.tmp = str(tmpdir)
        self.env = clean_env(self.tmp, self.env_drop, **extra)
        self.home = self.env["HOME"]
        self.config = self.env["ZOS_CONFIG"]

    def run(self, *args, env=None, timeout=CLI_TIMEOUT, cwd=None, input=None):
        e = dict(self.env)
        e.update(env or {})
        t0 = time.monotonic()
        p = subprocess.run([CLI_BIN] + [str(a) for a in args], env=e, cwd=cwd,
                           input=input, capture_output=True, text=True, timeout=timeout)
        r = CliResult(p, time.monotonic() - t0)
        for marker in SANITIZER_MARKS:
            assert marker not in r.err, "sanitizer report from zos %s:\n%s" % (args, r.err)
        return r

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.rc == 0, r
        return r


def make_cert(directory, cn="localhost"):
    """A self-signed CA + server cert made with openssl; returns (cert, key, ca)."""
    key = os.path.join(directory, "server.key")
    cert = os.path.join(directory, "server.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/O=GIG/CN=" + cn, "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key, cert


def cert_sha256(cert):
    """SHA-256 fingerprint of a PEM certificate's DER form, hex without colons."""
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


class Procs:
    """Starts processes and stops every one of them, by PID, on close()."""

    def __init__(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="zostest-")

    def mkdtemp(self, prefix):
        """A new directory under self.tmp (removed by close)."""
        return tempfile.mkdtemp(dir=self.tmp, prefix=prefix)

    def start(self, argv, env=None, stdout=None, stderr=None, **kw):
        p = subprocess.Popen(argv, env=env, stdout=stdout if stdout is not None else subprocess.DEVNULL,
                             stderr=stderr if stderr is not None else subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=5.0):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def close(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def redis(self, password=None, tls=False, extra=(), port=None, tls_files=None):
        """A redis-server on PORT (a free one when None): returns (proc, port, cert or None).
        TLS makes it TLS-only with a new self-signed cert; TLS_FILES (cert, key) does so
        with that pair (for a node that must come back on the same port after a kill)."""
        port = port or free_port()
        d = self.mkdtemp("redis-")
        argv = ["redis-server", "--save", "", "--appendonly", "no", "--dir", d, "--bind", "127.0.0.1"]
        cert = None
        if tls or tls_files:
            if tls_files:
                cert, key = tls_files
                ca = cert
            else:
                cert, key, ca = make_cert(d)
            argv += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", cert,
                     "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(port)]
        if password:
            argv += ["--requirepass", password]
        argv += list(extra)
        p = self.start(argv)
        wait_port(port, proc=p)
        return p, port, cert

    def proxy(self, conf_text, args=(), env=None, ready_port=None):
        """zos-proxy with CONF_TEXT as its config; returns (proc, conf path)."""
        path = os.path.join(self.tmp, "proxy-%d.toml" % len(self.procs))
        with open(path, "w") as f:
            f.write(conf_text)
        log = open(os.path.join(self.tmp, "proxy-%d.log" % len(self.procs)), "w")
        p = self.start([PROXY_BIN, "-c", path] + list(args), env=env, stderr=log)
        if ready_port:
            wait_port(ready_port, proc=p)
        return p, path


def start_sim(procs, tls=False, secret=None, port=None, extra=(), env=None, timeout=10.0,
              stderr=None, datadir=None, version=None, new_session=False):
    """A zos-node-sim started through PROCS; returns (proc, port) once it printed its
    ready line ("zos-node-sim ready 127.0.0.1:PORT tls=yes|no").  DATADIR (--dir) holds
    its redis files, VERSION is its --version-string, NEW_SESSION runs it in a process
    group of its own.  proc.datadir is DATADIR."""
    argv = [SIM_BIN, "--tls" if tls else "--no-tls"]
    if datadir is not None:
        argv += ["--dir", datadir]
    if port:
        argv += ["--port", str(port)]
    if secret:
        argv += ["--secret", secret]
    if version:
        argv += ["--version-string", version]
    argv += list(extra)
    p = procs.start(argv, env=env, stdout=subprocess.PIPE, stderr=stderr,
                    start_new_session=new_session)
    p.datadir = datadir
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("zos-node-sim printed no ready line in %.1fs" % timeout)
        ready, _, _ = select.select([p.stdout], [], [], left)
        if ready:
            b = os.read(p.stdout.fileno(), 1)
            if not b:
                raise RuntimeError("zos-node-sim exited with %s before it was ready" % p.wait())
            line += b
    words = line.decode().split()
    if words[:2] != ["zos-node-sim", "ready"] or words[3:4] != ["tls=%s" % ("yes" if tls else "no")]:
        raise RuntimeError("unexpected ready line %r" % line)
    return p, int(words[2].rsplit(":", 1)[1])


@pytest.fixture
def fnprocs():
    """A Procs of one test's own (import it into a conftest to use it)."""
    p = Procs()
    try:
        yield p
    finally:
        p.close()


def sanitized(path):
    """True for a binary built with AddressSanitizer (SANITIZER=address)."""
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


# ---------------------------------------------------------------- npm packages

# The npm client libraries the suites test with (node-redis latest 6.x, ioredis latest).
NPM_PACKAGES = {"redis": "6.4.0", "ioredis": "6.1.0"}


def npm_cache_root():
    """Where test tools are cached: $XDG_CACHE_HOME or ~/.cache, zos-tests/ (never the repo)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "zos-tests")


def _npm_installed(d, packages):
    for name, version in packages.items():
        try:
            with open(os.path.join(d, "node_modules", name, "package.json")) as f:
                if json.load(f).get("version") != version:
                    return False
        except (OSError, ValueError):
            return False
    return True


def npm_modules(packages=None):
    """(node_modules path, None) with PACKAGES ({name: version}) installed once into the
    cache, or (None, why) when npm could not install them."""
    packages = packages or NPM_PACKAGES
    key = "+".join("%s-%s" % kv for kv in sorted(packages.items()))
    final = os.path.join(npm_cache_root(), "npm", key)
    if not _npm_installed(final, packages):
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.dirname(final), prefix=".install-")
        specs = ["%s@%s" % kv for kv in sorted(packages.items())]
        env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
                   npm_config_audit="false")
        try:
            r = subprocess.run(["npm", "install", "--no-save", "--no-package-lock", "--prefix", tmp]
                               + specs, capture_output=True, text=True, timeout=300, env=env,
                               cwd=tmp)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            return None, "npm install %s did not finish in 300 s" % " ".join(specs)
        if r.returncode != 0 or not _npm_installed(tmp, packages):
            shutil.rmtree(tmp, ignore_errors=True)
            return None, "npm install %s failed (exit %s): %s" % (
                " ".join(specs), r.returncode, (r.stderr or r.stdout)[-800:])
        shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(final, "node_modules"), None

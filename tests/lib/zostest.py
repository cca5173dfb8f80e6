"""zostest -- process helpers shared by the Python suites (conformance, integration).

Every process a test starts goes through Procs, which stops it by PID (SIGTERM,
then SIGKILL) even when the test fails.  Ports are picked free at run time on
127.0.0.1.  Nothing here reads the user's config or keys: see isolated_env().
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ZOS_BUILD", os.path.join(ROOT, "build"))
PROXY_BIN = os.path.join(BUILD, "zos-proxy")
CLI_BIN = os.path.join(BUILD, "zos")
SIM_BIN = os.path.join(BUILD, "zos-node-sim")


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

    def redis(self, password=None, tls=False, extra=()):
        """A redis-server on a free port: returns (proc, port, cert or None)."""
        port = free_port()
        d = tempfile.mkdtemp(dir=self.tmp, prefix="redis-")
        argv = ["redis-server", "--save", "", "--appendonly", "no", "--dir", d, "--bind", "127.0.0.1"]
        cert = None
        if tls:
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
              stderr=None):
    """A zos-node-sim started through PROCS; returns (proc, port) once it printed its
    ready line ("zos-node-sim ready 127.0.0.1:PORT tls=yes|no")."""
    import select
    argv = [SIM_BIN, "--tls" if tls else "--no-tls"]
    if port:
        argv += ["--port", str(port)]
    if secret:
        argv += ["--secret", secret]
    argv += list(extra)
    p = procs.start(argv, env=env, stdout=subprocess.PIPE, stderr=stderr)
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
    if words[:2] != ["zos-node-sim", "ready"]:
        raise RuntimeError("unexpected ready line %r" % line)
    return p, int(words[2].rsplit(":", 1)[1])

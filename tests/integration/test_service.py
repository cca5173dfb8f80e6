"""zos-proxy as a systemd service (issue 13, item 5): the unit file, readiness through
NOTIFY_SOCKET, what `make install` puts where, and the bash completion of zos.

There is no systemd running here (nor in CI): the unit is checked offline by
`systemd-analyze verify`, the notify protocol against a datagram socket the test binds
itself, and the hardening of the unit against what the proxy really does (strace).
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import redis

from conftest import NODE_SECRET, TIMEOUT, free_port, wait_for
import zostest
from zostest import Procs, isolated_env, read_log, start_sim

ROOT = zostest.ROOT
UNIT = os.path.join(ROOT, "conf", "zos-proxy.service")
COMPLETION = os.path.join(ROOT, "conf", "zos.bash-completion")
NOTIFY_WAIT = 20  # seconds: a "no hang" guard for a datagram, never an assertion


@pytest.fixture
def procs():
    p = Procs()
    try:
        yield p
    finally:
        p.close()


def tool(name):
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/bin"]:
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def need(name, why):
    path = tool(name)
    if path is None:
        pytest.skip("%s is not installed (`make deps` installs it): %s" % (name, why))
    return path


def make_install(prefix, destdir=""):
    """`make install` of the binaries already built in ZOS_BUILD (-o all: never rebuilt here)."""
    r = subprocess.run(["make", "-s", "--no-print-directory", "-o", "all", "install",
                        "BUILD=" + zostest.BUILD, "PREFIX=" + prefix, "DESTDIR=" + destdir],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "make install failed:\n%s%s" % (r.stdout, r.stderr)


def unit_settings(text):
    """[(section, key, value)] of a unit file, in order."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            k, v = line.split("=", 1)
            out.append((section, k.strip(), v.strip()))
    return out


def service_values(key):
    with open(UNIT) as f:
        return [v for s, k, v in unit_settings(f.read()) if s == "Service" and k == key]


# ---------------------------------------------------------------- the unit and make install

def test_make_install_puts_binaries_unit_user_and_completion_under_destdir(tmp_path):
    dest = str(tmp_path / "dest")
    make_install("/usr", dest)
    usr = os.path.join(dest, "usr")
    for path, mode in (("bin/zos-proxy", 0o755), ("bin/zos", 0o755),
                       ("lib/systemd/system/zos-proxy.service", 0o644),
                       ("lib/sysusers.d/zos-proxy.conf", 0o644),
                       ("share/bash-completion/completions/zos", 0o644)):
        st = os.stat(os.path.join(usr, path))
        assert st.st_mode & 0o777 == mode, (path, oct(st.st_mode))
    link = os.path.join(usr, "share/bash-completion/completions/zos-proxy")
    assert os.readlink(link) == "zos"
    with open(os.path.join(usr, "lib/systemd/system/zos-proxy.service")) as f:
        installed = unit_settings(f.read())
    # The binaries are named where PREFIX put them, not where the DESTDIR staging is.
    assert ("Service", "ExecStart", "/usr/bin/zos-proxy") in installed
    assert ("Service", "ExecReload", "/usr/bin/zos-proxy -t") in installed
    assert ("Service", "ExecReload", "/bin/kill -HUP $MAINPID") in installed
    with open(UNIT) as f:
        source = unit_settings(f.read())
    assert [s for s in installed if not s[2].startswith("/usr/bin/")] == \
        [s for s in source if not s[2].startswith("/usr/local/bin/")]


def test_sysusers_file_creates_the_service_user(tmp_path):
    sysusers = need("systemd-sysusers", "it creates the unit's user")
    dest = str(tmp_path / "dest")
    make_install("/usr/local", dest)
    os.makedirs(os.path.join(dest, "etc"))
    r = subprocess.run([sysusers, "--root=" + dest], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(dest, "etc", "passwd")) as f:
        users = {line.split(":")[0]: line.strip().split(":") for line in f if line.strip()}
    assert "zos-proxy" in users, users
    user = users["zos-proxy"]
    assert service_values("User") == ["zos-proxy"] and service_values("Group") == ["zos-proxy"]
    assert user[5] == "/var/lib/zos-proxy"          # its home is the unit's StateDirectory
    assert service_values("StateDirectory") == ["zos-proxy"]
    assert user[6] in ("/usr/sbin/nologin", "/sbin/nologin")
    assert int(user[2]) < 1000                      # a system user


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = need("systemd-analyze", "the unit file cannot be verified without it")
    prefix = str(tmp_path / "prefix")
    make_install(prefix)
    unit = os.path.join(prefix, "lib", "systemd", "system", "zos-proxy.service")
    with open(unit) as f:
        text = f.read()
    assert "ExecStart=%s/bin/zos-proxy\n" % prefix in text
    # verify works offline on a unit file: it parses every line and checks that the
    # commands exist; it warns (exit 0) about unknown keys and bad values, so the
    # test wants no output at all.
    r = subprocess.run([analyze, "verify", unit], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")

    # ... and it does catch mistakes of the kind the assertion above rules out.
    broken = str(tmp_path / "zos-proxy.service")
    with open(broken, "w") as f:
        f.write(text.replace("ProtectSystem=strict", "ProtectSystem=strikt"))
    r = subprocess.run([analyze, "verify", broken], capture_output=True, text=True, timeout=120)
    assert "strikt" in r.stdout + r.stderr


def test_unit_is_a_notify_service_with_reload_and_hardening():
    s = {k: service_values(k) for k in ("Type", "ExecReload", "NoNewPrivileges", "ProtectSystem",
                                         "PrivateTmp", "ProtectHome", "Environment")}
    assert s["Type"] == ["notify"]
    assert s["ExecReload"][-1] == "/bin/kill -HUP $MAINPID"
    assert s["NoNewPrivileges"] == ["yes"] and s["PrivateTmp"] == ["yes"]
    assert s["ProtectSystem"] == ["strict"] and s["ProtectHome"] == ["yes"]
    assert s["Environment"] == ["ZOS_CONFIG=/etc/zos/zos.toml"]
    # The config's directory is writable (zos-known_hosts lives beside the config).
    assert "-/etc/zos" in service_values("ReadWritePaths")


# ---------------------------------------------------------------- NOTIFY_SOCKET

class Notify:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket in a temp dir, or
    in the abstract namespace (NOTIFY_SOCKET=@name)."""

    def __init__(self, tmp, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "zos-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = os.path.join(tmp, "notify.sock")
            self.sock.bind(path)
            self.env = path

    def next(self, proc=None, timeout=NOTIFY_WAIT):
        """The next message as a list of its lines; fails when PROC exits first."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(0.1)
            try:
                return self.sock.recv(65536).decode().split("\n")
            except socket.timeout:
                pass
            if proc is not None and proc.poll() is not None:
                # A last datagram may have been sent just before the exit.
                self.sock.settimeout(0)
                try:
                    return self.sock.recv(65536).decode().split("\n")
                except BlockingIOError:
                    raise AssertionError("zos-proxy exited %s before notifying" % proc.returncode)
            assert time.monotonic() < deadline, "no notification after %ss" % timeout

    def pending(self):
        """Messages already queued, without waiting."""
        out = []
        self.sock.settimeout(0)
        while True:
            try:
                out.append(self.sock.recv(65536).decode().split("\n"))
            except BlockingIOError:
                return out

    def close(self):
        self.sock.close()


def proxy_conf(port, plain_port, extra=""):
    return ("[proxy]\nlisten = 127.0.0.1:%d\n%s\n[plain]\naddress = 127.0.0.1\nport = %d\n"
            "tls = no\n" % (port, extra, plain_port))


def start_notified(procs, conf_text, notify_env, extra_env=None):
    env = isolated_env(procs.tmp, NOTIFY_SOCKET=notify_env, **(extra_env or {}))
    proc, path = procs.proxy(conf_text, env=env)
    proc.log_path = path[: -len(".toml")] + ".log"
    return proc, path


def stop_clean(procs, proc, notify):
    """SIGTERM: STOPPING=1 comes, the proxy exits 0."""
    proc.send_signal(signal.SIGTERM)
    msg = notify.next(proc)
    assert "STOPPING=1" in msg, msg
    # Not procs.stop(): a second SIGTERM while it exits would be a kill.
    assert proc.wait(timeout=NOTIFY_WAIT) == 0, read_log(proc.log_path)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_once_listening_then_stopping(procs, abstract):
    _, plain_port, _ = procs.redis()
    port = free_port()
    notify = Notify(procs.tmp, abstract)
    try:
        proc, _ = start_notified(procs, proxy_conf(port, plain_port), notify.env)
        msg = notify.next(proc)
        assert "READY=1" in msg, msg
        assert any(line.startswith("STATUS=listening on 127.0.0.1:%d" % port) for line in msg)
        # READY=1 came: the port takes connections now, on the first try (no polling).
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=TIMEOUT,
                        decode_responses=True)
        assert r.ping() is True
        r.set("svc:k", "v")
        assert r.get("svc:k") == "v"
        r.close()
        assert notify.pending() == []  # READY=1 was said once
        stop_clean(procs, proc, notify)
    finally:
        notify.close()


def test_no_ready_when_the_port_cannot_be_bound(procs):
    """A proxy that cannot listen never says READY=1: systemd reports the start failed."""
    _, plain_port, _ = procs.redis()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    notify = Notify(procs.tmp)
    try:
        proc, _ = start_notified(procs, proxy_conf(taken.getsockname()[1], plain_port),
                                 notify.env)
        assert proc.wait(timeout=NOTIFY_WAIT) == 1
        assert notify.pending() == []
        assert "listen" in read_log(proc.log_path)
    finally:
        notify.close()
        taken.close()


@pytest.mark.parametrize("value", ["relative/notify.sock", "/nonexistent-dir/notify.sock"])
def test_a_notify_socket_that_cannot_be_reached_is_logged_not_fatal(procs, value):
    _, plain_port, _ = procs.redis()
    port = free_port()
    proc, _ = start_notified(procs, proxy_conf(port, plain_port), value)
    wait_for(lambda: "cannot send READY=1" in read_log(proc.log_path), timeout=NOTIFY_WAIT,
             what="the NOTIFY_SOCKET warning")
    assert proc.poll() is None
    zostest.wait_port(port, proc=proc)
    assert redis.Redis(host="127.0.0.1", port=port, socket_timeout=TIMEOUT).ping() is True
    assert procs.stop(proc, timeout=15) == 0, read_log(proc.log_path)


def catches_sighup(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)))
    return False


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def reload_lines(proc):
    return len(re.findall(r"reload", read_log(proc.log_path), re.I))


def reload_and_read(proc, notify):
    """SIGHUP; returns (RELOADING message, READY message, CLOCK_MONOTONIC before and after)."""
    logged = reload_lines(proc)
    before = monotonic_usec()
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: reload_lines(proc) > logged or proc.poll() is not None,
             timeout=NOTIFY_WAIT, what="a reload line in the log")
    assert proc.poll() is None, "zos-proxy exited %s on SIGHUP" % proc.returncode
    first = notify.next(proc)
    second = notify.next(proc)
    return first, second, before, monotonic_usec()


def test_reloading_then_ready_around_sighup(procs):
    _, plain_port, _ = procs.redis()
    _, other_port, _ = procs.redis()
    port = free_port()
    notify = Notify(procs.tmp)
    try:
        proc, path = start_notified(procs, proxy_conf(port, plain_port), notify.env)
        assert "READY=1" in notify.next(proc)
        assert catches_sighup(proc.pid), "zos-proxy does not catch SIGHUP"

        # A node added: RELOADING=1 with the time it started, then READY=1 once applied.
        with open(path, "a") as f:
            f.write("\n[other]\naddress = 127.0.0.1\nport = %d\ntls = no\n" % other_port)
        first, second, before, after = reload_and_read(proc, notify)
        assert first[0] == "RELOADING=1", first
        usec = [int(v.split("=", 1)[1]) for v in first if v.startswith("MONOTONIC_USEC=")]
        assert len(usec) == 1 and before <= usec[0] <= after, (first, before, after)
        assert "READY=1" in second, second
        r = redis.Redis(host="127.0.0.1", port=port, username="other", password="x",
                        socket_timeout=TIMEOUT, decode_responses=True)
        r.set("svc:reload", "added")
        assert redis.Redis(port=other_port, decode_responses=True).get("svc:reload") == "added"
        r.close()

        # A broken file changes nothing, and the reload still ends with READY=1.
        with open(path, "a") as f:
            f.write("\n[broken\n")
        first, second, _, _ = reload_and_read(proc, notify)
        assert first[0] == "RELOADING=1" and "READY=1" in second, (first, second)
        assert redis.Redis(host="127.0.0.1", port=port, socket_timeout=TIMEOUT).ping() is True
        stop_clean(procs, proc, notify)
    finally:
        notify.close()


# ---------------------------------------------------------------- the hardening vs what it does

def syscall_groups(analyze):
    """{"@group": [names and @groups]} from `systemd-analyze syscall-filter`."""
    out = subprocess.run([analyze, "syscall-filter"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#") and cur is not None:
            cur.append(line.strip())
        elif not line.strip():
            cur = None
    return groups


def expand(names, groups):
    out = set()
    for n in names:
        out |= expand(groups[n], groups) if n.startswith("@") else {n}
    return out


def allowed_syscalls(analyze):
    """What the unit's SystemCallFilter= lines let through (an allow list, then '~' lists)."""
    groups = syscall_groups(analyze)
    allowed = set()
    for value in service_values("SystemCallFilter"):
        names = expand(value.lstrip("~").split(), groups)
        allowed = allowed - names if value.startswith("~") else allowed | names
    assert allowed, "the unit has no SystemCallFilter allow list"
    return allowed


TRACE_LINE = re.compile(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")


def test_hardening_allows_everything_the_proxy_does(procs):
    """Under strace, a proxy serving plain and TLS nodes, a simulated Zero-OS node's jobs,
    blocking and pub/sub clients and a unix socket, logging to a file, makes only system
    calls the unit's SystemCallFilter allows, opens only sockets of RestrictAddressFamilies,
    and never maps memory writable and executable nor makes it executable
    (MemoryDenyWriteExecute)."""
    strace = need("strace", "the hardening cannot be checked against real system calls")
    analyze = need("systemd-analyze", "it expands the unit's system call groups")
    _, plain_port, _ = procs.redis()
    _, tls_port, _ = procs.redis(password=NODE_SECRET, tls=True)
    _, sim_port = start_sim(procs)
    port = free_port()
    unixsock = os.path.join(procs.tmp, "proxy.sock")
    logfile = os.path.join(procs.tmp, "proxy-file.log")
    conf = os.path.join(procs.tmp, "traced.toml")
    with open(conf, "w") as f:
        f.write(proxy_conf(port, plain_port, "unixsocket = %s\nlog-file = %s\ndefault = plain\n"
                           % (unixsock, logfile))
                + "\n[secure]\naddress = 127.0.0.1\nport = %d\nsecret = %s\n" % (tls_port,
                                                                                NODE_SECRET)
                + "\n[sim]\naddress = 127.0.0.1\nport = %d\ntls = no\n" % sim_port)
    trace = os.path.join(procs.tmp, "strace.out")
    env = isolated_env(procs.tmp, ASAN_OPTIONS="detect_leaks=0")  # LSan's ptrace vs strace's
    tracer = procs.start([strace, "-f", "-qq", "-s", "0", "-o", trace, zostest.PROXY_BIN,
                          "-c", conf], env=env)
    zostest.wait_port(port, proc=tracer, timeout=60)

    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=TIMEOUT, decode_responses=True)
    r.set("svc:trace", "1")
    assert r.get("svc:trace") == "1"
    tls = redis.Redis(host="127.0.0.1", port=port, username="secure", password="x",
                      socket_timeout=TIMEOUT, decode_responses=True)
    tls.set("svc:trace", "2")
    assert tls.get("svc:trace") == "2"
    assert "PONG" in r.execute_command("ZOS.AT", "sim", "ZOS.CMD", "core.ping")
    assert r.blpop("svc:empty", 1) is None
    p = r.pubsub()
    p.subscribe("svc:chan")
    r.publish("svc:chan", "hello")
    wait_for(lambda: (p.get_message(timeout=0.1) or {}).get("data") == "hello",
             timeout=TIMEOUT, what="the pub/sub message")
    p.close()
    assert len(r.execute_command("ZOS.ALL", "PING")) == 6
    assert "node_sim" in r.execute_command("INFO", "proxy")
    u = redis.Redis(unix_socket_path=unixsock, socket_timeout=TIMEOUT)
    assert u.ping() is True
    u.close()
    r.close()
    tls.close()

    proxy_pid = int(re.search(r"started \(pid (\d+)", read_log(logfile)).group(1))
    os.kill(proxy_pid, signal.SIGTERM)
    assert tracer.wait(timeout=60) == 0, read_log(logfile)

    used, families, wx = set(), set(), []
    with open(trace) as f:
        for line in f:
            m = TRACE_LINE.match(line)
            if not m:
                continue
            name = m.group(1) or m.group(2)
            used.add(name)
            if name in ("socket", "socketpair") and m.group(2):
                families.add(line.split("(", 1)[1].split(",", 1)[0])
            if (name == "mmap" and "PROT_WRITE" in line and "PROT_EXEC" in line) or \
                    (name in ("mprotect", "pkey_mprotect") and "PROT_EXEC" in line):
                wx.append(line.strip())
    assert "accept4" in used or "accept" in used  # the trace really covers the serving
    assert used - allowed_syscalls(analyze) == set()
    restricted = set(service_values("RestrictAddressFamilies")[0].split())
    assert families and families - restricted == set(), families
    assert service_values("MemoryDenyWriteExecute") == ["yes"] and wx == []


# ---------------------------------------------------------------- bash completion

NODES = ["alpha", "beta.2", "gam-ma"]
NO_EQUAL_BREAK = "$' \\t\\n\"\\'><;|&(:'"  # bash's default COMP_WORDBREAKS but '='
CONFIG = """[app]
defaultzos = alpha
debug = false

[proxy]
listen = 127.0.0.1:6380

[alpha]
address = 10.0.0.1
  [beta.2]   ; indented, with a comment
address = 10.0.0.2

[APP]
[gam-ma]
secret = "[not-a-section]"
"""


class Completer:
    """Runs the completion function in a plain `bash` (no bash-completion package), with
    HOME and the config in a temp dir and build/ first on PATH."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.env = {"PATH": "%s:%s" % (zostest.BUILD, os.environ.get("PATH", "/usr/bin:/bin")),
                    "HOME": os.path.join(self.tmp, "home"), "LC_ALL": "C"}
        os.makedirs(self.env["HOME"], exist_ok=True)

    def __call__(self, *words, env=None, breaks=None, func="_zos"):
        """COMPREPLY for the command line WORDS (the last one is being completed), split
        as bash splits it: "--node=al" is ("--node", "=", "al")."""
        script = ('source "$1"; shift; %sCOMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); %s; '
                  'printf "%%s\\n" "${COMPREPLY[@]}"'
                  % ("COMP_WORDBREAKS=%s; " % breaks if breaks is not None else "", func))
        e = dict(self.env)
        e.update(env or {})
        r = subprocess.run(["bash", "-c", script, "bash", COMPLETION] + list(words), env=e,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", r
        return [w for w in r.stdout.split("\n") if w]


@pytest.fixture
def comp(tmp_path):
    c = Completer(tmp_path)
    c.config = os.path.join(c.tmp, "zos.toml")
    with open(c.config, "w") as f:
        f.write(CONFIG)
    c.env["ZOS_CONFIG"] = c.config
    return c


def help_commands():
    out = subprocess.run([zostest.CLI_BIN, "--help"], capture_output=True, text=True,
                         check=True).stdout
    block = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines()]


def test_completion_of_commands_and_global_options(comp):
    cmds = help_commands()
    assert {"configure", "container", "ping", "setdefault", "exec"} <= set(cmds)
    assert comp("zos", "") == cmds
    assert comp("zos", "co") == ["configure", "container"]
    assert comp("zos", "--node", "alpha", "p") == ["ping"]
    assert {"--node=", "--proxy=", "--timeout=", "--help", "--version"} <= set(comp("zos", "--"))
    assert comp("zos", "help", "sh") == ["showconfig", "showactive", "showactiveconfig"]


def test_completion_of_node_names_from_the_config(comp):
    assert comp("zos", "--node", "") == NODES
    assert comp("zos", "--node", "=") == NODES               # "zos --node=" as bash splits it
    assert comp("zos", "--node", "=", "b") == ["beta.2"]     # "zos --node=b"
    # Where '=' breaks no words, the reply is the whole word.
    assert comp("zos", "--node=b", breaks=NO_EQUAL_BREAK) == ["--node=beta.2"]
    assert comp("zos", "init", "--hypervisor=", breaks=NO_EQUAL_BREAK) == \
        ["--hypervisor=virtualbox", "--hypervisor=qemu"]
    assert comp("zos", "setdefault", "") == NODES
    assert comp("zos", "setdefault", "g") == ["gam-ma"]
    assert comp("zos", "remove", "--name", "=", "") == NODES
    assert comp("zos", "forgetvm", "--name", "a") == ["alpha"]
    assert comp("zos", "configure", "--name", "=", "al") == ["alpha"]
    # --name of a container is not a node.
    assert comp("zos", "container", "new", "--name", "=", "") == []


def test_completion_reads_the_config_zos_reads(comp):
    os.remove(comp.config)
    xdg = os.path.join(comp.tmp, "xdg")
    os.makedirs(xdg)
    with open(os.path.join(xdg, "zos.toml"), "w") as f:
        f.write("[from-xdg]\n")
    home_conf = os.path.join(comp.env["HOME"], ".config")
    os.makedirs(home_conf)
    with open(os.path.join(home_conf, "zos.toml"), "w") as f:
        f.write("[from-home]\n[proxy]\n")
    with open(comp.config, "w") as f:
        f.write("[from-zos-config]\n")
    assert comp("zos", "--node", "") == ["from-zos-config"]
    assert comp("zos", "--node", "", env={"ZOS_CONFIG": "", "XDG_CONFIG_HOME": xdg}) == \
        ["from-xdg"]
    assert comp("zos", "--node", "", env={"ZOS_CONFIG": ""}) == ["from-home"]
    # No config file: no names, no error, and no file created by completing.
    missing = os.path.join(comp.tmp, "nope", "zos.toml")
    assert comp("zos", "--node", "", env={"ZOS_CONFIG": missing}) == []
    assert comp("zos", "ping", "", env={"ZOS_CONFIG": missing}) == []
    assert not os.path.exists(os.path.dirname(missing))


def test_completion_of_container_sub_commands_and_options(comp):
    subs = comp("zos", "container", "")
    assert {"new", "list", "info", "zosexec", "sshenable", "upload"} <= set(subs)
    with_id = comp("zos", "container", "3", "")
    assert "new" not in with_id and "list" not in with_id  # they take no <id>
    assert set(with_id) == set(subs) - {"new", "list"}
    assert comp("zos", "container", "3", "ins") == ["inspect"]
    assert comp("zos", "container", "3", "info", "--") == ["--help", "--json"]
    assert {"--name=", "--ports=", "--privileged", "--ssh", "--extraconfig="} <= \
        set(comp("zos", "container", "new", "--"))


def test_completion_of_command_options_and_their_values(comp):
    assert {"--name=", "--address=", "--port=", "--secret=", "--sshkey=", "--setdefault",
            "--tls", "--no-tls", "--help"} == set(comp("zos", "configure", "--"))
    assert comp("zos", "cmd", "--j") == ["--jsonargs="]
    assert comp("zos", "init", "--hypervisor", "=", "") == ["virtualbox", "qemu"]
    assert comp("zos", "init", "--hypervisor", "q") == ["qemu"]
    iso = os.path.join(comp.tmp, "zos-test.iso")
    open(iso, "w").close()
    assert comp("zos", "init", "--iso", "=", iso[:-4]) == [iso]


def test_completion_of_zos_proxy(comp):
    assert comp("zos-proxy", "--", func="_zos_proxy") == \
        ["--config", "--test", "--log-level", "--help", "--version"]
    assert comp("zos-proxy", "--log-level", "", func="_zos_proxy") == \
        ["error", "warn", "info", "debug"]
    assert comp("zos-proxy", "-c", comp.config[:-3], func="_zos_proxy") == [comp.config]

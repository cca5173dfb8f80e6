#!/usr/bin/env python3
"""fanout_client.py -- the client side of bench/fanout.sh (standard library only).

    fanout_client.py conf --out F --nodes-out F --n N --kind plain|tls|mix
                          --plain-ports P,P,.. --tls-ports P,P,.. --secret S
                          --listen HOST:PORT [--set key=value ...]
        Writes a zos-proxy config with N node names spread round-robin over the
        servers (kind mix: plain and TLS names alternate), and the list of names
        with their server ("name host port tls") for the naive client.
    fanout_client.py waitlisten --pairs PID:PORT,... [--timeout S]
        Waits until each PID listens on 127.0.0.1:PORT (checked in /proc, so a
        stranger's server on the port never counts).
    fanout_client.py waitping --port P --ready-file F [--timeout S]
        Creates F once it polls, then connects and sends PING every millisecond
        until +PONG; prints ready_at=<epoch seconds> (CLOCK_REALTIME, like bash's
        EPOCHREALTIME, so the caller can take its launch time as the start).
    fanout_client.py checkt --bin B --conf F [--repeat R]
        Runs `B -t -c F` R times; prints check_s=<fastest> check_rc=<last exit>.
    fanout_client.py probe --port P
        Whether the proxy knows `ZOS.ALL TIMEOUT <ms> ...`: timeout_verb=yes|no.
    fanout_client.py fanout --port P --pid PID --n N [--timeout S]
                            [--all-timeout MS] [--warm R]
        Idle RSS of PID, then a first ZOS.ALL PING (cold: no link open yet; with
        TIMEOUT MS when given) timed with the proxy's CPU time, then R warm ones,
        then RSS with every link open.  key=value lines.
    fanout_client.py naive --nodes F --cap K [--secret S] [--timeout S]
        The same fan-out done by hand: for the first K names of F in turn,
        connect (TLS when the node is TLS), AUTH when it has a secret, PING; then
        a second pass PING on each open connection.  key=value lines; the caller
        extrapolates to all the names.

Exit status 0 when the measurement was taken (whatever the figures), 1 when it
could not be (the reason on stderr).
"""

import argparse
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from resp_raw import encode_command as encode  # noqa: E402  (the tests' RESP encoder)

PING = b"*1\r\n$4\r\nPING\r\n"


def die(msg):
    print("fanout_client: %s" % msg, file=sys.stderr)
    sys.exit(1)


class ErrorReply(str):
    pass


class Reader:
    """RESP2 replies from a socket: status/bulk as str, errors as ErrorReply, arrays as
    lists.  Reads in large chunks (a 10,000-node ZOS.ALL reply is 20,000 elements)."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.pos = 0

    def _fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = self.buf[self.pos:self.pos + n]
        self.pos += n + 2
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:].decode(errors="replace")
        if t == b"+":
            return rest
        if t == b"-":
            return ErrorReply(rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("bad reply line %r" % line[:80])


def connect(port, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s, Reader(s)


def proc_stat_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


# ---------------------------------------------------------------- conf

def cmd_conf(a):
    plain = [int(p) for p in a.plain_ports.split(",") if p]
    tls = [int(p) for p in a.tls_ports.split(",") if p]
    head = ["# zos-proxy config written by bench/fanout.sh: %d %s names" % (a.n, a.kind),
            "[proxy]", "listen = %s" % a.listen]
    head += [kv.replace("=", " = ", 1) for kv in a.set or []]
    out, nodes = ["\n".join(head) + "\n"], []
    for i in range(a.n):
        if a.kind == "plain" or (a.kind == "mix" and i % 2 == 0):
            name, port, is_tls = "p%05d" % i, plain[(i // (2 if a.kind == "mix" else 1)) % len(plain)], False
        else:
            name, port, is_tls = "t%05d" % i, tls[(i // (2 if a.kind == "mix" else 1)) % len(tls)], True
        sec = "[%s]\naddress = 127.0.0.1\nport = %d\n" % (name, port)
        sec += "tls = yes\nsecret = %s\n" % a.secret if is_tls else "tls = no\n"
        out.append(sec)
        nodes.append("%s 127.0.0.1 %d %s" % (name, port, "tls" if is_tls else "plain"))
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    if a.nodes_out:
        with open(a.nodes_out, "w") as f:
            f.write("\n".join(nodes) + "\n")


# ---------------------------------------------------------------- readiness

def listening_inodes(port):
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            p = line.split()
            if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(p[9])
    return inodes


def pid_listens(pid, port):
    inodes = listening_inodes(port)
    if not inodes:
        return False
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:[") and t[8:-1] in inodes:
                return True
    except OSError:
        pass
    return False


def cmd_waitlisten(a):
    pending = [tuple(int(x) for x in pair.split(":")) for pair in a.pairs.split(",") if pair]
    deadline = time.monotonic() + a.timeout
    while pending:
        for pid, port in list(pending):
            if not os.path.exists("/proc/%d" % pid):
                die("pid %d exited before listening on port %d" % (pid, port))
            if pid_listens(pid, port):
                pending.remove((pid, port))
        if pending and time.monotonic() > deadline:
            die("not listening after %ss: %s" % (a.timeout, " ".join("%d:%d" % p for p in pending)))
        if pending:
            time.sleep(0.02)


def cmd_waitping(a):
    open(a.ready_file, "w").close()
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout)
        except OSError:
            time.sleep(0.001)
            continue
        try:
            s.settimeout(max(deadline - time.monotonic(), 0.1))
            s.sendall(PING)
            if Reader(s).read() == "PONG":
                print("ready_at=%.6f" % time.time())
                return
        except (OSError, ValueError):
            pass
        finally:
            s.close()
        time.sleep(0.001)
    die("port %d did not answer PING within %ss" % (a.port, a.timeout))


def cmd_checkt(a):
    best, rc, out = None, None, ""
    for _ in range(a.repeat):
        t0 = time.monotonic()
        p = subprocess.run([a.bin, "-t", "-c", a.conf], capture_output=True, text=True,
                           timeout=a.timeout)
        dt = time.monotonic() - t0
        rc, out = p.returncode, (p.stdout + p.stderr).strip()
        best = dt if best is None else min(best, dt)
    print("check_s=%.4f" % best)
    print("check_rc=%d" % rc)
    if rc != 0:
        print("check_out=%s" % " ".join(out.splitlines()[-2:]))


def cmd_probe(a):
    s, r = connect(a.port, 10)
    s.sendall(encode("ZOS.ALL", "TIMEOUT", "2000", "PING"))
    reply = r.read()
    ok = isinstance(reply, list) and len(reply) >= 2 and all(x == "PONG" for x in reply[1::2])
    print("timeout_verb=%s" % ("yes" if ok else "no"))


# ---------------------------------------------------------------- fan-out through the proxy

def summarize(reply, n):
    """(PONG count, 'error kind xcount; ...') of a ZOS.ALL reply for N nodes."""
    if not isinstance(reply, list):
        return 0, "not an array: %r" % (reply,)[:200]
    if len(reply) != 2 * n:
        kinds = {"wrong length %d (want %d)" % (len(reply), 2 * n): 1}
    else:
        kinds = {}
    pong = 0
    for name, v in zip(reply[0::2], reply[1::2]):
        if v == "PONG":
            pong += 1
            continue
        k = str(v).replace("'%s'" % name, "'X'")
        kinds[k] = kinds.get(k, 0) + 1
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:3]
    return pong, "; ".join("%s x%d" % (k[:120], c) for k, c in top)


def cmd_fanout(a):
    hz = os.sysconf("SC_CLK_TCK")
    s, r = connect(a.port, a.timeout)
    rss_idle = rss_kib(a.pid)
    cmd = ["ZOS.ALL"] + (["TIMEOUT", str(a.all_timeout)] if a.all_timeout else []) + ["PING"]
    c0 = proc_stat_ticks(a.pid)
    t0 = time.monotonic()
    s.sendall(encode(*cmd))
    reply = r.read()
    cold = time.monotonic() - t0
    c1 = proc_stat_ticks(a.pid)
    pong, errs = summarize(reply, a.n)
    print("rss_idle_kib=%d" % rss_idle)
    print("cold_s=%.4f" % cold)
    print("cold_cpu_s=%.2f" % ((c1 - c0) / hz))
    print("cold_pong=%d" % pong)
    print("cold_errors=%s" % errs)
    warm, wcpu, wpong, werrs = [], [], a.n, ""
    for _ in range(a.warm):
        c0 = proc_stat_ticks(a.pid)
        t0 = time.monotonic()
        s.sendall(encode("ZOS.ALL", "PING"))
        reply = r.read()
        warm.append(time.monotonic() - t0)
        wcpu.append((proc_stat_ticks(a.pid) - c0) / hz)
        p, e = summarize(reply, a.n)
        if p < wpong:
            wpong, werrs = p, e
    if warm:
        print("warm_s=%.4f" % statistics.median(warm))
        print("warm_all=%s" % ",".join("%.3f" % w for w in warm))
        print("warm_cpu_s=%.2f" % statistics.median(wcpu))
        print("warm_pong=%d" % wpong)
        print("warm_errors=%s" % werrs)
    time.sleep(0.2)
    print("rss_links_kib=%d" % rss_kib(a.pid))
    print("nfds=%d" % len(os.listdir("/proc/%d/fd" % a.pid)))
    s.close()


# ---------------------------------------------------------------- the naive client

def cmd_naive(a):
    nodes = []
    with open(a.nodes) as f:
        for line in f:
            name, host, port, kind = line.split()
            nodes.append((name, host, int(port), kind == "tls"))
    nodes = nodes[:a.cap]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    auth = encode("AUTH", a.secret) if a.secret else b""
    conns, pong = [], 0
    t0 = time.monotonic()
    for name, host, port, tls in nodes:
        try:
            s = socket.create_connection((host, port), timeout=a.timeout)
            s.settimeout(a.timeout)
            if tls:
                s = ctx.wrap_socket(s)
            r = Reader(s)
            if tls and auth:
                s.sendall(auth + PING)
                ok = r.read() == "OK" and r.read() == "PONG"
            else:
                s.sendall(PING)
                ok = r.read() == "PONG"
            pong += ok
            conns.append((s, r))
        except (OSError, ValueError) as e:
            print("fanout_client: naive %s: %s" % (name, e), file=sys.stderr)
    cold = time.monotonic() - t0
    wpong = 0
    t0 = time.monotonic()
    for s, r in conns:
        try:
            s.sendall(PING)
            wpong += r.read() == "PONG"
        except (OSError, ValueError):
            pass
    warm = time.monotonic() - t0
    for s, _ in conns:
        s.close()
    print("naive_measured=%d" % len(nodes))
    print("naive_cold_s=%.4f" % cold)
    print("naive_cold_pong=%d" % pong)
    print("naive_warm_s=%.4f" % warm)
    print("naive_warm_pong=%d" % wpong)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("conf")
    p.add_argument("--out", required=True)
    p.add_argument("--nodes-out")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--kind", choices=("plain", "tls", "mix"), required=True)
    p.add_argument("--plain-ports", default="")
    p.add_argument("--tls-ports", default="")
    p.add_argument("--secret", default="")
    p.add_argument("--listen", required=True)
    p.add_argument("--set", action="append")
    p = sub.add_parser("waitlisten")
    p.add_argument("--pairs", required=True)
    p.add_argument("--timeout", type=float, default=20)
    p = sub.add_parser("waitping")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p = sub.add_parser("checkt")
    p.add_argument("--bin", required=True)
    p.add_argument("--conf", required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300)
    p = sub.add_parser("probe")
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("fanout")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--all-timeout", type=int, default=0)
    p.add_argument("--warm", type=int, default=3)
    p = sub.add_parser("naive")
    p.add_argument("--nodes", required=True)
    p.add_argument("--cap", type=int, default=500)
    p.add_argument("--secret", default="")
    p.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    try:
        globals()["cmd_" + a.cmd](a)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        die("%s: %s" % (a.cmd, e))


if __name__ == "__main__":
    main()

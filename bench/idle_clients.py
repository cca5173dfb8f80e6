#!/usr/bin/env python3
"""idle_clients.py -- memory per idle client connection of a running server.

    idle_clients.py --port P --pid PID [--host 127.0.0.1] [--count 10000]

Reads VmRSS of PID (/proc/PID/status), opens COUNT TCP connections to
HOST:PORT and holds them, waits until PID has accepted every one (its open
file descriptors grow by COUNT), reads VmRSS again, then sends one PING on
each connection, reads every +PONG, and reads VmRSS a third time.  Then it
closes them all.  Output is "key=value" lines for bench/passthrough.sh:

    clients=10000
    rss_before_kib=...          before any connection
    rss_connected_kib=...       COUNT accepted connections, nothing sent
    rss_pinged_kib=...          after one PING/PONG on each (buffers touched)
    rss_closed_kib=...          after closing them all (informative)
    kib_per_client_connected=...
    kib_per_client_pinged=...

Exit status 0 when every connection was accepted and answered, 1 otherwise
(the reason on stderr).  Standard library only (Debian's python3 is enough).
"""

import argparse
import os
import resource
import selectors
import socket
import sys
import time

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle_rss(pid, wait=0.5):
    """VmRSS once the process has gone quiet (sampled twice, last value)."""
    time.sleep(wait)
    a = rss_kib(pid)
    time.sleep(wait)
    b = rss_kib(pid)
    return b if b >= a else a


def die(msg):
    print(f"idle_clients: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            die(f"RLIMIT_NOFILE hard limit {hard} < {want}; raise ulimit -n")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    if not os.path.exists(f"/proc/{a.pid}"):
        die(f"no process {a.pid}")
    fds0 = nfds(a.pid)
    before = settle_rss(a.pid)
    deadline = time.monotonic() + a.timeout

    socks = []
    try:
        # Connect in batches and let the server accept each batch before the
        # next, so that the listen backlog never overflows (an overflow costs
        # a 1 s SYN retransmit per dropped connection, not an error).
        batch = 500
        while len(socks) < a.count:
            for _ in range(min(batch, a.count - len(socks))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(max(1.0, deadline - time.monotonic()))
                try:
                    s.connect((a.host, a.port))
                except OSError as e:
                    s.close()
                    die(f"connect #{len(socks) + 1} failed: {e}")
                socks.append(s)
            while nfds(a.pid) < fds0 + len(socks):
                if time.monotonic() > deadline:
                    die(f"server accepted {nfds(a.pid) - fds0} of {len(socks)} connections "
                        f"within {a.timeout:.0f} s")
                if not os.path.exists(f"/proc/{a.pid}"):
                    die(f"server {a.pid} exited after {len(socks)} connections")
                time.sleep(0.01)

        # A server that closes connections past a limit would still show the
        # fds for a moment: make sure none of them was closed on us.
        time.sleep(0.3)
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        early = sel.select(timeout=0)
        if early:
            die(f"{len(early)} connections were readable (closed or answered) before any request")
        connected = settle_rss(a.pid)

        # One PING each, then every +PONG.
        for s in socks:
            s.setblocking(True)
            s.settimeout(max(1.0, deadline - time.monotonic()))
            s.sendall(PING)
        for s in socks:
            s.setblocking(False)
        pending = {s.fileno(): b"" for s in socks}
        while pending:
            if time.monotonic() > deadline:
                die(f"{len(pending)} of {len(socks)} connections did not answer PING")
            for key, _ in sel.select(timeout=1.0):
                fd = key.fd
                if fd not in pending:
                    continue
                try:
                    data = key.fileobj.recv(64)
                except BlockingIOError:
                    continue
                if not data:
                    die(f"connection closed by server instead of answering PING")
                pending[fd] += data
                if len(pending[fd]) >= len(PONG):
                    if pending[fd] != PONG:
                        die(f"unexpected reply to PING: {pending[fd]!r}")
                    del pending[fd]
                    sel.unregister(key.fileobj)
        sel.close()
        pinged = settle_rss(a.pid)
    finally:
        for s in socks:
            s.close()

    t = time.monotonic() + 10
    while nfds(a.pid) > fds0 and time.monotonic() < t:
        time.sleep(0.05)
    closed = settle_rss(a.pid, 0.3)

    n = a.count
    print(f"clients={n}")
    print(f"rss_before_kib={before}")
    print(f"rss_connected_kib={connected}")
    print(f"rss_pinged_kib={pinged}")
    print(f"rss_closed_kib={closed}")
    print(f"kib_per_client_connected={(connected - before) / n:.2f}")
    print(f"kib_per_client_pinged={(pinged - before) / n:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

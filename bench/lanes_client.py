#!/usr/bin/env python3
"""lanes_client.py -- the client side of bench/lanes.sh (standard library only).

    lanes_client.py big --port P --key K --size BYTES --times-file F --ready-file F
        One connection; GET K in a loop, each reply read in full (header, BYTES bytes,
        CRLF) into a reused buffer and checked for length.  After each complete read
        it appends "t_sent t_done" (CLOCK_MONOTONIC seconds) to --times-file, and
        creates --ready-file after the first one.  SIGTERM stops it after the read in
        progress (the reply is never cut off in the middle); SIGKILL is the caller's
        fallback.  Exit 1 on a wrong reply or a closed connection.

    lanes_client.py small --port P --clients N --interval-ms MS --duration S
                          --key K --value V [--big-times F] [--watch name=PID,...]
        N connections in one thread (epoll).  Each sends GET K every MS milliseconds
        (open pacing: the N clients are spread evenly over the interval; a client
        whose reply is late sends its next GET as soon as the reply is in, and the
        send counts as "late"; there is no catch-up burst).  Latency of each GET:
        from just before send() to the moment the whole reply has been recv()'d.
        After a warm-up GET per connection, it measures for S seconds (the GETs still
        out at the end are waited for, up to 60 s, and counted) and prints key=value
        lines: count, p50/p90/p99/p99.9/max and mean in microseconds, how many took
        over 10 ms and over 100 ms, late sends, errors, the CPU share (percent of one
        core) of itself, of every watched PID and of every other process (cpu_other:
        all CPUs' busy time from /proc/stat less the former) over the window, and, with
        --big-times, how many big reads finished inside the window and their mean and
        longest duration.

    lanes_client.py slowlog --port P --key K (--reset | --report)
        Redis's own time per GET of K, from its slow log.  --reset: slowlog threshold
        1 ms, 1024 entries, SLOWLOG RESET.  --report: SLOWLOG GET; prints redis_big_n,
        redis_big_mean_ms, redis_big_max_ms (GET K entries: the time redis spent in the
        command, which for a big value is building the reply) and redis_other_slow
        (any other command over 1 ms).

Exit status 0 when the measurement was taken, 1 when it could not be (the reason on
stderr).
"""

import argparse
import heapq
import os
import selectors
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from resp_raw import encode_command as encode  # noqa: E402  (the tests' RESP encoder)


def die(msg):
    print("lanes_client: %s" % msg, file=sys.stderr)
    sys.exit(1)


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


# --- the big reader ------------------------------------------------------------------
def cmd_big(a):
    stop = [False]

    def on_term(_sig, _frm):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_term)
    header = b"$%d\r\n" % a.size
    total = len(header) + a.size + 2
    req = encode("GET", a.key)
    s = connect(a.port, timeout=120.0)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    times = open(a.times_file, "a", buffering=1)
    n = 0
    while not stop[0]:
        t0 = time.monotonic()
        s.sendall(req)
        got = 0
        first = b""
        while got < total:
            k = s.recv_into(view, min(len(buf), total - got))
            if k == 0:
                die("big reader: connection closed after %d of %d bytes (read %d)" % (got, total, n + 1))
            if got < len(header):
                first += bytes(view[:min(k, len(header) - got)])
            got += k
        t1 = time.monotonic()
        if first != header:
            die("big reader: reply starts %r, want %r" % (first[:40], header))
        times.write("%.6f %.6f\n" % (t0, t1))
        n += 1
        if n == 1 and a.ready_file:
            open(a.ready_file, "w").close()
    times.close()
    s.close()


# --- the small clients ---------------------------------------------------------------
def proc_cpu(pid):
    """utime+stime of PID in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy():
    """CPU seconds all CPUs spent busy since boot (from /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def self_cpu():
    t = os.times()
    return t.user + t.system


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(q * len(sorted_vals) + 0.5) - 1))
    return sorted_vals[i]


class Client:
    __slots__ = ("sock", "idx", "due", "sent_at", "busy", "got")

    def __init__(self, sock, idx):
        self.sock = sock
        self.idx = idx
        self.due = 0.0
        self.sent_at = 0
        self.busy = False
        self.got = b""


def cmd_small(a):
    value = a.value.encode()
    req = encode("GET", a.key)
    want = b"$%d\r\n%s\r\n" % (len(value), value)
    wlen = len(want)
    interval = a.interval_ms / 1000.0

    clients = []
    for _ in range(a.clients):
        s = connect(a.port)
        s.sendall(req)  # warm-up: the connection works and the proxy has its node link
        r = b""
        while len(r) < wlen:
            c = s.recv(4096)
            if not c:
                die("small client: connection closed during the warm-up GET")
            r += c
        if r != want:
            die("small client: warm-up GET %s gave %r" % (a.key, r[:80]))
        s.setblocking(False)
        clients.append(Client(s, len(clients)))

    watch = []
    for item in filter(None, (a.watch or "").split(",")):
        name, pid = item.split("=")
        watch.append((name, int(pid)))

    sel = selectors.EpollSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)

    lat = []  # nanoseconds
    late = 0
    errors = 0
    errmsg = ""
    clock = time.perf_counter_ns  # CLOCK_MONOTONIC
    mono = time.monotonic
    cpu0 = self_cpu()
    wcpu0 = {n: proc_cpu(p) for n, p in watch}
    busy0 = machine_busy()
    start = mono()
    end = start + a.duration
    for i, c in enumerate(clients):
        c.due = start + interval * i / len(clients)

    heap = [(c.due, i) for i, c in enumerate(clients)]  # idle clients by due time
    heapq.heapify(heap)

    def send(c, now):
        c.busy = True
        c.got = b""
        c.due = max(c.due + interval, now)
        c.sent_at = clock()
        try:
            n = c.sock.send(req)  # 20-odd bytes into an empty socket buffer: all of it goes
        except OSError as e:
            die("small client: send: %s (%d GETs done)" % (e, len(lat)))
        if n != len(req):
            die("small client: short send (%d of %d bytes)" % (n, len(req)))

    def on_readable(c, sending):
        """Reads what C has; True when its reply is complete (then recorded)."""
        nonlocal errors, errmsg, late
        try:
            chunk = c.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as e:
            die("small client: recv: %s (%d GETs done)" % (e, len(lat)))
        if not chunk:
            die("small client: connection closed by the server (%d GETs done)" % len(lat))
        c.got += chunk
        if len(c.got) < wlen:
            return
        t = clock()
        if c.got != want:
            errors += 1
            errmsg = "GET %s gave %r" % (a.key, c.got[:80])
            if len(c.got) > wlen or not c.got.startswith(b"$"):
                die("small client: " + errmsg)
        lat.append(t - c.sent_at)
        c.busy = False
        if not sending:
            return
        now = mono()
        if c.due <= now:  # its reply came after its next slot
            if now < end:
                late += 1
                send(c, now)
        else:
            heapq.heappush(heap, (c.due, c.idx))

    while True:
        now = mono()
        if now >= end:
            break
        while heap and heap[0][0] <= now:
            send(clients[heapq.heappop(heap)[1]], now)
        nxt = heap[0][0] if heap and heap[0][0] < end else end
        for key, _ev in sel.select(max(0.0, nxt - mono())):
            on_readable(key.data, True)
    # the GETs still out when the window closed are waited for (up to 60 s): a reply
    # stalled behind a big one must count, not vanish at the end of the window
    unfinished = 0
    drain_end = mono() + 60
    while any(c.busy for c in clients):
        left = drain_end - mono()
        if left <= 0:
            unfinished = sum(1 for c in clients if c.busy)
            break
        for key, _ev in sel.select(left):
            on_readable(key.data, False)
    cpu1 = self_cpu()
    wcpu1 = {n: proc_cpu(p) for n, p in watch}
    busy1 = machine_busy()
    wall = mono() - start

    lat.sort()
    out = {
        "count": len(lat),
        "rate": "%.0f" % (len(lat) / wall),
        "p50_us": "%.0f" % (pct(lat, 0.50) / 1e3),
        "p90_us": "%.0f" % (pct(lat, 0.90) / 1e3),
        "p99_us": "%.0f" % (pct(lat, 0.99) / 1e3),
        "p999_us": "%.0f" % (pct(lat, 0.999) / 1e3),
        "max_us": "%.0f" % (lat[-1] / 1e3 if lat else float("nan")),
        "mean_us": "%.0f" % (sum(lat) / len(lat) / 1e3 if lat else float("nan")),
        "over10ms": sum(1 for v in lat if v > 10_000_000),
        "over100ms": sum(1 for v in lat if v > 100_000_000),
        "late": late,
        "unfinished": unfinished,
        "errors": errors,
        "wall_s": "%.3f" % wall,
        "cpu_client": "%.0f" % (100 * (cpu1 - cpu0) / wall),
    }
    for n, _p in watch:
        if wcpu0[n] is None or wcpu1[n] is None:
            out["cpu_" + n] = "n/a"
        else:
            out["cpu_" + n] = "%.0f" % (100 * (wcpu1[n] - wcpu0[n]) / wall)
    ours = cpu1 - cpu0
    for n, _p in watch:
        if wcpu0[n] is not None and wcpu1[n] is not None:
            ours += wcpu1[n] - wcpu0[n]
    if busy0 is not None and busy1 is not None:
        out["cpu_other"] = "%.0f" % max(0.0, 100 * (busy1 - busy0 - ours) / wall)
    if a.big_times:
        durs = []
        try:
            with open(a.big_times) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 2 and start <= float(p[1]) <= start + wall:
                        durs.append(float(p[1]) - float(p[0]))
        except OSError:
            pass
        out["big_reads"] = len(durs)
        out["big_mean_ms"] = "%.0f" % (1e3 * sum(durs) / len(durs)) if durs else "n/a"
        out["big_max_ms"] = "%.0f" % (1e3 * max(durs)) if durs else "n/a"
    if errmsg:
        out["error_msg"] = errmsg.replace("\n", " ")
    for k, v in out.items():
        print("%s=%s" % (k, v))
    for c in clients:
        c.sock.close()


# --- redis's slow log -------------------------------------------------------------------
def read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ValueError("connection closed or bad reply %r" % line[:40])
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b":"):
        return rest
    if t == b"-":
        raise ValueError("error reply: %s" % rest.decode(errors="replace"))
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise ValueError("unexpected reply type %r" % line[:40])


def cmd_slowlog(a):
    s = connect(a.port)
    f = s.makefile("rb")

    def call(*args):
        s.sendall(encode(*args))
        return read_reply(f)

    if a.reset:
        call("CONFIG", "SET", "slowlog-log-slower-than", "1000")
        call("CONFIG", "SET", "slowlog-max-len", "1024")
        call("SLOWLOG", "RESET")
        return
    big = []
    other = 0
    for e in call("SLOWLOG", "GET", "1024"):
        usec = int(e[2])
        args = e[3]
        if len(args) >= 2 and args[0].upper() == b"GET" and args[1] == a.key.encode():
            big.append(usec)
        else:
            other += 1
    print("redis_big_n=%d" % len(big))
    print("redis_big_mean_ms=%s" % ("%.0f" % (sum(big) / len(big) / 1e3) if big else "n/a"))
    print("redis_big_max_ms=%s" % ("%.0f" % (max(big) / 1e3) if big else "n/a"))
    print("redis_other_slow=%d" % other)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("big")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--key", required=True)
    b.add_argument("--size", type=int, required=True)
    b.add_argument("--times-file", required=True)
    b.add_argument("--ready-file")
    s = sub.add_parser("small")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--clients", type=int, default=50)
    s.add_argument("--interval-ms", type=float, default=10.0)
    s.add_argument("--duration", type=float, default=10.0)
    s.add_argument("--key", required=True)
    s.add_argument("--value", required=True)
    s.add_argument("--big-times")
    s.add_argument("--watch")
    g = sub.add_parser("slowlog")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--key", required=True)
    m = g.add_mutually_exclusive_group(required=True)
    m.add_argument("--reset", action="store_true")
    m.add_argument("--report", action="store_true")
    a = ap.parse_args()
    try:
        if a.cmd == "big":
            cmd_big(a)
        elif a.cmd == "small":
            cmd_small(a)
        else:
            cmd_slowlog(a)
    except (OSError, ValueError) as e:
        die("%s: %s" % (a.cmd, e))


if __name__ == "__main__":
    main()

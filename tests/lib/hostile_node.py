"""hostile_node -- a scripted node that answers RESP requests with whatever a scenario says.

zos-proxy connects to it as a plain node (`tls = no`).  It answers the handshake and
health checks like redis (AUTH and SELECT: +OK, PING: +PONG, QUIT: +OK and close), and
every request whose first argument after the command names a scenario gets that
scenario's bytes:

    GET <scenario>[:<anything>]          e.g. GET neg-bulk:17
    PING <scenario>[:<anything>]         (a bare PING is a health check: +PONG)
    SUBSCRIBE <scenario>[:<anything>]    (the channel names the scenario)

The token (the whole argument) is recorded in `seen` before anything is answered, so a
test knows whether a request reached the node at all.  A scenario is bytes to send and
what to do next: keep reading ("keep"), close the connection ("close"), or send nothing
("hold": the request stays in flight).  Unknown scenario names answer "$-1".

Every connection is served by a thread of its own; stop() closes the listening socket
and every connection and joins the threads.
"""
import socket
import threading
import time


class Scenario:
    def __init__(self, reply, then="keep", chunks=1):
        self.reply = reply    # bytes sent in answer
        self.then = then      # "keep", "close" or "hold"
        self.chunks = chunks  # the reply is written in this many pieces


def _deep(n, leaf=b":1\r\n"):
    return b"*1\r\n" * n + leaf


SCENARIOS = {
    # well-formed replies
    "ok": Scenario(b"$2\r\nok\r\n"),
    "nil": Scenario(b"$-1\r\n"),
    "nil-array": Scenario(b"*-1\r\n"),
    "int": Scenario(b":42\r\n"),
    "status": Scenario(b"+fine\r\n"),
    "error": Scenario(b"-ERR the node says no\r\n"),
    "array": Scenario(b"*3\r\n$1\r\na\r\n:7\r\n*1\r\n+x\r\n"),
    "deep-ok": Scenario(_deep(10)),
    "split": Scenario(b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n", chunks=5),
    "big-ok": Scenario(b"$1000000\r\n" + b"b" * 1000000 + b"\r\n", chunks=3),
    # truncated frames, then the node closes the connection
    "trunc-bulk": Scenario(b"$10\r\nabc", then="close"),
    "trunc-array": Scenario(b"*3\r\n$1\r\na\r\n", then="close"),
    "trunc-line": Scenario(b"+OK", then="close"),
    "trunc-int": Scenario(b":12", then="close"),
    "trunc-header": Scenario(b"$1", then="close"),
    "close-silent": Scenario(b"", then="close"),
    "huge-in-limit": Scenario(b"$500000000\r\n" + b"z" * 65536, then="close"),
    # wrong or unknown type bytes
    "type-question": Scenario(b"?what\r\n"),
    "type-x": Scenario(b"xyz\r\n"),
    "type-nul": Scenario(b"\x00\r\n"),
    "junk-line": Scenario(b"hello world\r\n"),
    "junk-binary": Scenario(b"\xff\xfe\xfd\r\n\x01\x02"),
    "int-not-number": Scenario(b":abc\r\n"),
    "bulk-len-not-number": Scenario(b"$abc\r\nxyz\r\n"),
    "bulk-bad-terminator": Scenario(b"$3\r\nabcXY"),
    "cr-without-lf": Scenario(b"+OK\rjunk\r\n"),
    "cr-without-lf-bulk-header": Scenario(b"$3\rabc\r\n"),
    # negative and huge lengths
    "neg-bulk": Scenario(b"$-5\r\n"),
    "neg-array": Scenario(b"*-7\r\n"),
    "huge-bulk": Scenario(b"$99999999999\r\n"),
    "huge-array": Scenario(b"*99999999999\r\n"),
    "over-max-bulk": Scenario(b"$536870913\r\n"),
    # nesting deeper than 64
    "deep-100": Scenario(_deep(100)),
    # RESP3 types on a RESP2 link
    "resp3-push": Scenario(b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"),
    "resp3-map": Scenario(b"%1\r\n+a\r\n+b\r\n"),
    "resp3-null": Scenario(b"_\r\n"),
    "resp3-bool": Scenario(b"#t\r\n"),
    "resp3-double": Scenario(b",1.5\r\n"),
    "resp3-bignum": Scenario(b"(12345678901234567890\r\n"),
    "resp3-verbatim": Scenario(b"=7\r\ntxt:abc\r\n"),
    "resp3-set": Scenario(b"~1\r\n+a\r\n"),
    "resp3-attr": Scenario(b"|1\r\n+a\r\n+b\r\n+ok\r\n"),
    # more replies than requests: the second one is a reply nobody asked for
    "double": Scenario(b"+PONG\r\n+PONG\r\n"),
    # nothing now: stays in flight until something else happens on the link
    "hold": Scenario(b"", then="hold"),
    # SUBSCRIBE answers (the channel names the scenario)
    "sub-bogus": Scenario(b"*3\r\n$9\r\nsubscribe\r\n:99999999\r\n:1\r\n"),
    "sub-status": Scenario(b"+OK\r\n"),
    "sub-message-first": Scenario(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"),
    "sub-refused": Scenario(b"-ERR subscriptions are off\r\n"),
}


def encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class _Request:
    """Incremental parser of RESP arrays of bulk strings (what the proxy sends)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data

    def next(self):
        """The next complete request as a list of bytes, or None."""
        b = self.buf
        if not b:
            return None
        if b[:1] != b"*":
            raise ValueError("not a RESP array request: %r" % b[:40])
        eol = b.find(b"\r\n")
        if eol < 0:
            return None
        n, pos, args = int(b[1:eol]), eol + 2, []
        for _ in range(n):
            eol = b.find(b"\r\n", pos)
            if eol < 0:
                return None
            ln = int(b[pos + 1:eol])
            if len(b) < eol + 2 + ln + 2:
                return None
            args.append(b[eol + 2:eol + 2 + ln])
            pos = eol + 2 + ln + 2
        self.buf = b[pos:]
        return args


class HostileNode:
    """A threaded TCP server on 127.0.0.1:<free port> answering per SCENARIOS.

    on_auth, on_select, on_ping (a bare PING: the health check): None answers as redis
    does (+OK, +OK, +PONG); "close" closes the connection instead (on AUTH: a handshake that
    never completes, to watch the proxy's reconnect backoff); bytes are sent instead.
    """

    def __init__(self, on_auth=None, on_select=None, on_ping=None, scenarios=None):
        self.overrides = {b"AUTH": on_auth, b"SELECT": on_select, b"PING": on_ping}
        self.scenarios = dict(SCENARIOS, **(scenarios or {}))
        self.lock = threading.Lock()
        self.seen = set()       # tokens of scenario requests received
        self.accepts = []       # time.monotonic() of each accepted connection
        self.commands = []      # (command, first argument) of every request, in order
        self.errors = []        # exceptions of connection threads (a broken helper)
        self._conns = set()
        self._threads = []
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    # ---------------------------------------------------------------- queries

    def saw(self, token):
        with self.lock:
            return token in self.seen

    def accept_times(self):
        with self.lock:
            return list(self.accepts)

    # ---------------------------------------------------------------- server

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepts.append(time.monotonic())
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()  # before stop() can see it: a thread not started cannot be joined
            with self.lock:
                self._threads.append(t)

    def _send(self, conn, data, chunks=1):
        if chunks <= 1 or len(data) < chunks:
            conn.sendall(data)
            return
        step = -(-len(data) // chunks)
        for i in range(0, len(data), step):
            conn.sendall(data[i:i + step])
            time.sleep(0.002)

    def _answer(self, conn, args):
        """Answers one request; False when the connection must close."""
        cmd = args[0].upper() if args else b""
        first = args[1] if len(args) > 1 else None
        with self.lock:
            self.commands.append((cmd, first))
        if cmd in (b"AUTH", b"SELECT") or (cmd == b"PING" and first is None):
            how = self.overrides[cmd]
            if how == "close":
                return False
            if how is None:
                how = b"+PONG\r\n" if cmd == b"PING" else b"+OK\r\n"
            conn.sendall(how)
            return True
        if cmd == b"QUIT":
            conn.sendall(b"+OK\r\n")
            return False
        if cmd in (b"UNSUBSCRIBE", b"PUNSUBSCRIBE"):
            ch = first if first is not None else b"x"
            kind = cmd.lower()
            conn.sendall(b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n:0\r\n" % (len(kind), kind, len(ch), ch))
            return True
        if cmd in (b"GET", b"PING", b"SUBSCRIBE") and first is not None:
            token = first.decode(errors="replace")
            with self.lock:
                self.seen.add(token)
            sc = self.scenarios.get(token.split(":", 1)[0])
            if sc is None:
                if cmd == b"SUBSCRIBE":  # a proper confirmation
                    conn.sendall(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n"
                                 % (len(first), first))
                else:
                    conn.sendall(b"$-1\r\n")
                return True
            if sc.then == "hold":
                return True
            self._send(conn, sc.reply, sc.chunks)
            return sc.then != "close"
        conn.sendall(b"-ERR unknown command '%s'\r\n" % cmd[:40])
        return True

    def _linger(self, conn):
        """Closes gracefully: FIN after what was sent, then reads until the proxy closes
        (closing with unread bytes would send a reset instead of a plain close)."""
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def _serve(self, conn):
        req = _Request()
        try:
            conn.settimeout(60)  # a no-hang guard: the proxy closes links it gives up on
            while not self._stop.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                req.feed(data)
                while True:
                    args = req.next()
                    if args is None:
                        break
                    if not self._answer(conn, args):
                        self._linger(conn)
                        return
        except (OSError, socket.timeout):
            return
        except Exception as e:  # noqa: BLE001 - reported by the test through .errors
            with self.lock:
                self.errors.append(repr(e))
        finally:
            conn.close()
            with self.lock:
                self._conns.discard(conn)

    def stop(self):
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(5)
        self._acceptor.join(5)

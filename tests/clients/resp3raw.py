"""resp3raw -- a socket-level RESP2/RESP3 client that keeps the exact bytes of every reply.

The client suite needs to see what the proxy really sends: which type byte starts each
reply (a RESP2 connection must never get '%', '~', '>', '_', ',', '#', '(', '=', '|'),
and whether a forwarded reply is byte for byte the node's own.  Replies are parsed into
Frame(type, value, raw): TYPE is the RESP type byte as a one-character str, RAW the bytes
of the whole frame (nested frames included).
"""
import socket
import ssl

from resp_raw import encode_command as encode  # tests/lib, on the path by conftest

RESP2_TYPES = frozenset("+-:$*")
RESP3_ONLY_TYPES = frozenset("%~>_,#(=|!")


class Frame:
    """One RESP frame: type (str of one char), value, raw (bytes)."""

    __slots__ = ("type", "value", "raw")

    def __init__(self, type_, value, raw):
        self.type = type_
        self.value = value
        self.raw = raw

    def __repr__(self):
        return "Frame(%r, %r)" % (self.type, self.raw[:200])

    def is_error(self):
        return self.type in "-!"

    def text(self):
        """The value of a simple/bulk/verbatim string or error, as str."""
        v = self.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    def py(self):
        """A plain Python value: lists for arrays/sets/pushes, dicts for maps, bytes for
        strings, int/float/None/bool, and ('error', text) for errors."""
        t, v = self.type, self.value
        if t in "*~>":
            return [f.py() for f in v]
        if t == "%":
            return {k.py() if k.type not in "*~%" else repr(k.py()): x.py() for k, x in v}
        if t in "-!":
            return ("error", self.text())
        return v

    def types(self):
        """Every type byte in the frame, nested ones included (a set of str)."""
        out = {self.type}
        if self.type in "*~>":
            for f in self.value:
                out |= f.types()
        elif self.type in "%|":
            for k, x in self.value:
                out |= k.types() | x.types()
        return out


class RawClient:
    """A RESP connection to 127.0.0.1:PORT.  call() sends one command and returns its
    Frame; send()/read() split the two; every byte received is also kept in self.received
    (when record=True) so a test can scan a whole session's bytes."""

    def __init__(self, port, timeout=20, host="127.0.0.1", record=False, tls=False):
        self.s = socket.create_connection((host, port), timeout=timeout)
        if tls:  # a test node's self-signed certificate
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.s = ctx.wrap_socket(self.s)
        self.s.settimeout(timeout)
        self.buf = b""
        self.record = record
        self.received = bytearray()

    def addr(self):
        """This end's address as the server sees it: "ip:port"."""
        return "%s:%d" % self.s.getsockname()[:2]

    def peer(self):
        return "%s:%d" % self.s.getpeername()[:2]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, *args):
        self.s.sendall(encode(*args))

    def send_raw(self, data):
        self.s.sendall(data)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by the peer (buffered: %r)" % self.buf[:200])
        if self.record:
            self.received += chunk
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """The next frame (a push frame is returned like any other)."""
        line = self._line()
        t, rest = chr(line[0]) if line else "?", line[1:]
        head = line + b"\r\n"
        if t in "+-":
            return Frame(t, rest, head)
        if t == ":":
            return Frame(t, int(rest), head)
        if t == "(":
            return Frame(t, int(rest), head)
        if t == ",":
            return Frame(t, float(rest.replace(b"inf", b"Infinity")) if rest not in (b"nan",) else rest, head)
        if t == "#":
            return Frame(t, rest == b"t", head)
        if t == "_":
            return Frame(t, None, head)
        if t in "$=!":
            n = int(rest)
            if n < 0:
                return Frame(t, None, head)
            data = self._exact(n)
            return Frame(t, data, head + data + b"\r\n")
        if t in "*~>":
            n = int(rest)
            if n < 0:
                return Frame(t, None, head)
            items = [self.read() for _ in range(n)]
            return Frame(t, items, head + b"".join(f.raw for f in items))
        if t in "%|":
            n = int(rest)
            pairs = [(self.read(), self.read()) for _ in range(n)]
            return Frame(t, pairs, head + b"".join(k.raw + v.raw for k, v in pairs))
        raise AssertionError("not a RESP type byte: line %r" % line)

    def read_skipping_pushes(self, pushes):
        """The next frame that is not a push; pushes met on the way go to the list PUSHES."""
        while True:
            f = self.read()
            if f.type != ">":
                return f
            pushes.append(f)

    def closed_by_peer(self, timeout=10):
        """True when the peer closes the connection within TIMEOUT (pending bytes ignored)."""
        self.s.settimeout(timeout)
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return True
        except socket.timeout:
            return False
        except OSError:  # reset, or a TLS session cut short
            return True

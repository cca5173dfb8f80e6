"""resp_raw -- a minimal RESP2 client on a plain socket, for exact reply bytes.

Shared by the Python suites that check replies byte for byte (jobs, e2e), where
redis-py would strip or convert them (it drops the "ERR " prefix of errors and
applies per-command response callbacks).
"""
import socket


def encode_command(*args):
    """ARGS as one RESP2 request (an array of bulk strings); str() of non-bytes."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class ErrorReply(str):
    """An error reply, with its full text ("ERR ..."): redis-py strips the "ERR " prefix."""


class RawResp:
    """A RESP2 connection to 127.0.0.1:PORT.  read() returns a status as str, an integer
    as int, a bulk string as str, a null as None, an array as a list, and an error
    reply as self.error(full text) (returned, not raised).  Subclasses pick `error`
    and the default `timeout`."""

    error = ErrorReply
    timeout = 30

    def __init__(self, port, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.settimeout(timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, *args):
        self.s.sendall(encode_command(*args))

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the proxy")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """The next reply (see the class docstring)."""
        line = self._line()
        t, rest = line[:1], line[1:].decode()
        if t == b"+":
            return rest
        if t == b"-":
            return self.error(rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise AssertionError("bad reply line %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.read()

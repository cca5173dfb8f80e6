"""redispy_client.py -- redis-py (Debian's 4.3, RESP2) through zos-proxy, sync or asyncio,
with default options and the URL naming the node.

usage: /usr/bin/python3 redispy_client.py HOST PORT NODE PASSWORD PREFIX sync|asyncio CHECK...
Prints `ok CHECK` or `fail CHECK DETAIL` per check.
"""
import asyncio
import sys
import threading
import time
import traceback

import redis
import redis.asyncio as aredis

HOST, PORT, NODE, PASSWORD, PREFIX, MODE = sys.argv[1:7]
CHECKS = sys.argv[7:]
URL = "redis://%s:%s@%s:%s" % (NODE, PASSWORD, HOST, PORT)
GUARD = 20  # seconds: socket timeout, a no-hang guard
ALL_BYTES = bytes(range(256))


def big_value():
    unit = bytes((i * 131) & 0xFF for i in range(4096))
    return unit * (10 * 1024 * 1024 // len(unit))


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want) if what else
                             "got %r, want %r" % (got, want))


EVAL_SCRIPT = "return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}"


# ---------------------------------------------------------------- sync

class Sync:
    def __init__(self):
        self.clients = []

    def connect(self, url=URL):
        c = redis.Redis.from_url(url, socket_timeout=GUARD)
        self.clients.append(c)
        return c

    def close(self):
        for c in self.clients:
            c.connection_pool.disconnect()
        self.clients = []

    def set_get(self, k):
        c = self.connect()
        eq(c.get("clients:whoami"), NODE.encode(), "GET clients:whoami: wrong node")
        eq(c.set(k, "v1"), True)
        eq(c.get(k), b"v1")
        eq(c.get(k + "missing"), None)
        eq(c.incrby(k + "n", 41), 41)
        eq(c.incr(k + "n"), 42)

    def pipeline(self, k):
        c = self.connect()
        n = 200
        p = c.pipeline(transaction=False)
        for i in range(n):
            p.set("%s%d" % (k, i), "v%d" % i)
        for i in range(n):
            p.get("%s%d" % (k, i))
        eq(p.execute(), [True] * n + [b"v%d" % i for i in range(n)])

    def multi_watch(self, k):
        c, other = self.connect(), self.connect()
        c.set(k, "old")
        with c.pipeline() as p:
            p.watch(k)
            eq(p.get(k), b"old")
            p.multi()
            p.set(k, "new")
            p.get(k)
            eq(p.execute(), [True, b"new"])
        with c.pipeline() as p:
            p.watch(k)
            other.set(k, "other")
            p.multi()
            p.set(k, "mine")
            try:
                p.execute()
                raise AssertionError("EXEC after a watched key changed did not abort")
            except redis.WatchError:
                pass
        eq(c.get(k), b"other")

    def blpop(self, k):
        c, pusher = self.connect(), self.connect()

        def push():
            time.sleep(0.2)  # let BLPOP block first (the result is the same either way)
            pusher.lpush(k, "pushed")

        t = threading.Thread(target=push)
        t.start()
        try:
            eq(c.blpop([k], 0), (k.encode(), b"pushed"))
        finally:
            t.join(GUARD)
        eq(c.ping(), True)

    def pubsub(self, k):
        sub, pub = self.connect(), self.connect()
        ps = sub.pubsub()
        ps.subscribe(k)
        eq(ps.get_message(timeout=GUARD)["type"], "subscribe")
        for _ in range(100):
            if pub.publish(k, "hello") >= 1:
                break
            time.sleep(0.1)
        m = ps.get_message(timeout=GUARD)
        eq(m and (m["type"], m["channel"], m["data"]), ("message", k.encode(), b"hello"))
        ps.unsubscribe(k)
        eq(ps.get_message(timeout=GUARD)["type"], "unsubscribe")
        ps.close()
        eq(sub.get("clients:whoami"), NODE.encode())

    def eval(self, k):
        c = self.connect()
        eq(c.eval(EVAL_SCRIPT, 1, k, "5"), [k.encode(), b"5", 5])
        eq(c.eval('return redis.call("GET", KEYS[1])', 1, "clients:whoami"), NODE.encode())

    def binary(self, k):
        c = self.connect()
        c.set(k, ALL_BYTES)
        eq(c.get(k), ALL_BYTES)

    def big(self, k):
        c = self.connect()
        v = big_value()
        c.set(k, v)
        eq(c.strlen(k), len(v))
        got = c.get(k)
        if got != v:
            raise AssertionError("10 MB value differs (got %d bytes)" % len(got or b""))
        c.delete(k)

    def auth_password(self, k):
        """A client that cannot send a username: AUTH <password> alone picks the node."""
        c = self.connect("redis://:%s@%s:%s" % (PASSWORD, HOST, PORT))
        eq(c.get("clients:whoami"), NODE.encode(), "AUTH <password>: wrong node")
        c.set(k, "x")
        eq(c.get(k), b"x")


# ---------------------------------------------------------------- asyncio

class Async:
    def __init__(self):
        self.clients = []

    def connect(self, url=URL):
        c = aredis.Redis.from_url(url, socket_timeout=GUARD)
        self.clients.append(c)
        return c

    async def close(self):
        for c in self.clients:
            await c.connection_pool.disconnect()
        self.clients = []

    async def set_get(self, k):
        c = self.connect()
        eq(await c.get("clients:whoami"), NODE.encode(), "GET clients:whoami: wrong node")
        eq(await c.set(k, "v1"), True)
        eq(await c.get(k), b"v1")
        eq(await c.get(k + "missing"), None)
        eq(await c.incrby(k + "n", 41), 41)
        eq(await c.incr(k + "n"), 42)

    async def pipeline(self, k):
        c = self.connect()
        n = 200
        p = c.pipeline(transaction=False)
        for i in range(n):
            p.set("%s%d" % (k, i), "v%d" % i)
        for i in range(n):
            p.get("%s%d" % (k, i))
        eq(await p.execute(), [True] * n + [b"v%d" % i for i in range(n)])
        # many coroutines at once share the pool
        got = await asyncio.gather(*(c.get("%s%d" % (k, i)) for i in range(n)))
        eq(got, [b"v%d" % i for i in range(n)])

    async def multi_watch(self, k):
        c, other = self.connect(), self.connect()
        await c.set(k, "old")
        async with c.pipeline() as p:
            await p.watch(k)
            eq(await p.get(k), b"old")
            p.multi()
            p.set(k, "new")
            p.get(k)
            eq(await p.execute(), [True, b"new"])
        async with c.pipeline() as p:
            await p.watch(k)
            await other.set(k, "other")
            p.multi()
            p.set(k, "mine")
            try:
                await p.execute()
                raise AssertionError("EXEC after a watched key changed did not abort")
            except redis.WatchError:
                pass
        eq(await c.get(k), b"other")

    async def blpop(self, k):
        c, pusher = self.connect(), self.connect()
        popped = asyncio.ensure_future(c.blpop([k], 0))
        await asyncio.sleep(0.2)  # let BLPOP block first (the result is the same either way)
        eq(await pusher.lpush(k, "pushed"), 1)
        eq(tuple(await asyncio.wait_for(popped, GUARD)), (k.encode(), b"pushed"))
        eq(await c.ping(), True)

    async def pubsub(self, k):
        sub, pub = self.connect(), self.connect()
        ps = sub.pubsub()
        await ps.subscribe(k)
        eq((await ps.get_message(timeout=GUARD))["type"], "subscribe")
        for _ in range(100):
            if await pub.publish(k, "hello") >= 1:
                break
            await asyncio.sleep(0.1)
        m = await ps.get_message(timeout=GUARD)
        eq(m and (m["type"], m["channel"], m["data"]), ("message", k.encode(), b"hello"))
        await ps.unsubscribe(k)
        eq((await ps.get_message(timeout=GUARD))["type"], "unsubscribe")
        await ps.close()
        eq(await sub.get("clients:whoami"), NODE.encode())

    async def eval(self, k):
        c = self.connect()
        eq(await c.eval(EVAL_SCRIPT, 1, k, "5"), [k.encode(), b"5", 5])

    async def binary(self, k):
        c = self.connect()
        await c.set(k, ALL_BYTES)
        eq(await c.get(k), ALL_BYTES)

    async def big(self, k):
        c = self.connect()
        v = big_value()
        await c.set(k, v)
        eq(await c.strlen(k), len(v))
        got = await c.get(k)
        if got != v:
            raise AssertionError("10 MB value differs (got %d bytes)" % len(got or b""))
        await c.delete(k)

    async def auth_password(self, k):
        c = self.connect("redis://:%s@%s:%s" % (PASSWORD, HOST, PORT))
        eq(await c.get("clients:whoami"), NODE.encode(), "AUTH <password>: wrong node")


def report(name, exc):
    if exc is None:
        print("ok %s" % name, flush=True)
    else:
        detail = "%s: %s @ %s" % (type(exc).__name__, exc,
                                  " | ".join(traceback.format_tb(exc.__traceback__)[-2:]))
        print("fail %s %s" % (name, " ".join(detail.split())[:900]), flush=True)


def main():
    if MODE == "sync":
        s = Sync()
        for name in CHECKS:
            exc = None
            try:
                getattr(s, name)(PREFIX + name + ":")
            except Exception as e:  # noqa: BLE001 - reported
                exc = e
            finally:
                s.close()
            report(name, exc)
    else:
        async def run():
            s = Async()
            for name in CHECKS:
                exc = None
                try:
                    await asyncio.wait_for(getattr(s, name)(PREFIX + name + ":"), 60)
                except Exception as e:  # noqa: BLE001 - reported
                    exc = e
                finally:
                    try:
                        await s.close()
                    except Exception:  # noqa: BLE001
                        pass
                report(name, exc)
        asyncio.run(run())


main()

"""Real client libraries through zos-proxy, each with its default options and the URL (or
its credential options) naming the node, against the plain node and the TLS node.

Every library runs the same checks, written in its own language under scripts/:
  set_get      SET/GET/INCR, a missing key, and `GET clients:whoami` is the node it named
  pipeline     hundreds of pipelined SETs then GETs, replies in order
  multi_watch  WATCH + MULTI/EXEC commits; EXEC after another client changed the key aborts
  blpop        BLPOP 0 on one connection, LPUSH on another wakes it
  pubsub       SUBSCRIBE, a message PUBLISHed by another connection, UNSUBSCRIBE, then
               ordinary commands again on the same connection
  eval         EVAL returning KEYS, ARGV and a redis.call result
  binary       a value of all 256 byte values round-trips
  big          a 10 MB value round-trips
and where the library has them:
  auth_password  no username: AUTH <password> alone lands on the node of that password
  resp3_types    the default connection speaks RESP3: HGETALL is a map, ZSCORE a double
  resp2_types    RESP: 2 forced: HGETALL is a flat array, ZSCORE a bulk string
  push_commands  RESP3 pub/sub: messages are pushes and the subscribed connection keeps
                 serving GET/SET/INCR between them
  csc            node-redis client-side caching: a cached GET is served locally, and another
                 client's SET invalidates it (CLIENT TRACKING through the proxy)

Each (library, node) pair runs its script once with all its checks; each check is its own
test, so a report names exactly what broke.  A library that is not installed is skipped
with the reason.
"""
import os
import sys
import uuid

import pytest

from conftest import SCRIPTS, need_debian, need_exe, run_script

COMMON = ["set_get", "pipeline", "multi_watch", "blpop", "pubsub", "eval", "binary", "big"]


class Lib:
    def __init__(self, name, mode, checks, prepare):
        self.name = name
        self.mode = mode
        self.checks = checks
        self.prepare = prepare  # request -> (argv, extra env); may pytest.skip

    @property
    def id(self):
        return self.name if self.mode == "default" else "%s-%s" % (self.name, self.mode)


def _node_js(script):
    def prepare(request):
        modules = request.getfixturevalue("node_modules")
        return ["node", os.path.join(SCRIPTS, script)], {"NODE_PATH": modules}
    return prepare


def _redis_py(request):
    return [sys.executable, os.path.join(SCRIPTS, "redispy_client.py")], {}


def _hiredis(request):
    return [request.getfixturevalue("hiredis_bin")], {}


def _ruby(request):
    ruby = need_exe("ruby", "ruby")
    need_debian("ruby-redis", "redis-rb")
    return [ruby, os.path.join(SCRIPTS, "ruby_client.rb")], {}


def _php(request):
    php = need_exe("php", "php-cli")
    need_debian("php-redis", "phpredis")
    return [php, os.path.join(SCRIPTS, "php_client.php")], {}


def _perl(request):
    perl = need_exe("perl", "perl")
    need_debian("libredis-perl", "Redis.pm")
    return [perl, os.path.join(SCRIPTS, "perl_client.pl")], {}


def _lua(request):
    lua = need_exe("lua5.1", "lua5.1")
    need_debian("lua-redis", "redis-lua")
    return [lua, os.path.join(SCRIPTS, "lua_client.lua")], {}


def _redigo(request):
    return [request.getfixturevalue("redigo_bin")], {}


LIBS = [
    # node-redis 6 defaults to RESP3 (HELLO 3 AUTH node password); RESP: 2 is checked too.
    Lib("node-redis", "default", COMMON + ["resp3_types", "push_commands", "csc", "auth_password"],
        _node_js("node_redis.js")),
    Lib("node-redis", "resp2", COMMON + ["resp2_types", "auth_password"], _node_js("node_redis.js")),
    # ioredis 6 defaults to RESP3 too (and would fall back to RESP2 if refused).
    Lib("ioredis", "default", COMMON + ["resp3_types", "push_commands", "auth_password"],
        _node_js("ioredis_client.js")),
    Lib("redis-py", "sync", COMMON + ["auth_password"], _redis_py),
    Lib("redis-py", "asyncio", COMMON + ["auth_password"], _redis_py),
    Lib("hiredis", "default", COMMON, _hiredis),
    Lib("ruby-redis", "default", COMMON, _ruby),
    Lib("phpredis", "default", COMMON, _php),
    Lib("perl-redis", "default", COMMON + ["auth_password"], _perl),
    Lib("lua-redis", "default", COMMON + ["auth_password"], _lua),
    Lib("redigo", "default", COMMON + ["auth_password"], _redigo),
]

_results = {}  # (lib id, node) -> {check: (ok, detail)}


def _run(request, stack, lib, node):
    key = (lib.id, node)
    if key not in _results:
        argv, env_extra = lib.prepare(request)
        env = dict(stack.lab.env, **env_extra)
        prefix = "cl:%s:%s:%s:" % (lib.id, node, uuid.uuid4().hex[:8])
        _results[key] = run_script(argv + ["127.0.0.1", str(stack.port), node,
                                           stack.password(node), prefix, lib.mode],
                                   lib.checks, env=env)
    return _results[key]


@pytest.mark.parametrize("lib,check", [(lib, c) for lib in LIBS for c in lib.checks],
                         ids=["%s-%s" % (lib.id, c) for lib in LIBS for c in lib.checks])
def test_library(request, stack, node, lib, check):
    ok, detail = _run(request, stack, lib, node)[check]
    assert ok, "%s (%s) on node %r, check %s: %s" % (lib.name, lib.mode, node, check, detail)

"""One test per category of library error (enum zos_errcat, zos.h): each provokes the failure
for real and checks the exit code README's table gives it (cli/exitcode.c maps them).

The category is set where the failure arises (link.c, job.c, err.c for error replies), so
these also check that the right place sets it: a failure of another kind would exit with
another code, or say something else.
"""
import os
import signal

from hostile_node import HostileNode

import zostest
from conftest import NODE_SECRET, node_section
from zostest import free_port, start_sim

UNREACHABLE, AUTH, JOB_FAILED, NOT_CONFIGURED, CONTAINER_DOESNT_EXIST, CANT_PING = 12, 26, 24, 17, 16, 27


def use(zos, section, name):
    zos.write_config("[app]\ndefaultzos = %s\n\n" % name + section)


def test_unreachable_exits_12(zos, fnprocs):
    """Nothing listens: refused.  Through a proxy: the proxy's report on a node it cannot reach."""
    port = free_port()
    use(zos, node_section("gone", port), "gone")
    r = zos.run("exec", "true")
    assert r.rc == UNREACHABLE, r
    assert r.err == "zos: cannot reach node 'gone' at 127.0.0.1:%d: connection refused\n" % port
    listen = free_port()
    fnprocs.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % listen + node_section("gone", port),
                  ready_port=listen)
    r = zos.run("--proxy", "127.0.0.1:%d" % listen, "--node", "gone", "ping")
    assert r.rc == UNREACHABLE, r
    assert "cannot reach node 'gone' through zos-proxy" in r.err and "unavailable: " in r.err


def test_auth_refused_exits_26(zos, fnprocs):
    """A redis with requirepass: a wrong secret (refused AUTH), and none at all (NOAUTH)."""
    _, port, _ = fnprocs.redis(password="right-secret")
    use(zos, node_section("r", port, secret="wrong-secret"), "r")
    r = zos.run("ping")
    assert r.rc == AUTH, r
    assert "refused the connection: AUTH failed: WRONGPASS" in r.err and "wrong-secret" not in r.err
    use(zos, node_section("r", port), "r")
    r = zos.run("ping")
    assert r.rc == AUTH, r
    assert "NOAUTH" in r.err
    # Through a zos-proxy whose own secret for the node is wrong: the node's refusal, reported
    # by the proxy ("node 'r' unavailable: AUTH failed: WRONGPASS ..."), is still an AUTH one.
    listen = free_port()
    fnprocs.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % listen
                  + node_section("r", port, secret="wrong-secret"), ready_port=listen)
    for cmd in (["ping"], ["exec", "true"]):
        r = zos.run("--proxy", "127.0.0.1:%d" % listen, "--node", "r", *cmd)
        assert r.rc == AUTH, r
        assert "AUTH failed: WRONGPASS" in r.err and "wrong-secret" not in r.err


def test_tls_failures_exit_12(zos, nodes, fnprocs):
    """A TLS node whose certificate another CA signed, or that is not the pinned one."""
    other_ca, _, _ = zostest.make_cert(fnprocs.mkdtemp("ca-"))
    ca = "tls-verify = ca:%s\n" % other_ca
    use(zos, node_section("t", nodes.secure, tls=True, secret=NODE_SECRET, extra=ca), "t")
    r = zos.run("ping")
    assert r.rc == UNREACHABLE, r
    assert "cannot reach node 't'" in r.err and "TLS error: " in r.err
    pin = "tls-verify = sha256:%s\n" % ("ab" * 32)
    use(zos, node_section("t", nodes.secure, tls=True, secret=NODE_SECRET, extra=pin), "t")
    r = zos.run("ping")
    assert r.rc == UNREACHABLE, r
    assert "TLS certificate does not match the pinned sha256 fingerprint" in r.err


def test_timeout_of_a_stopped_node_exits_24(zos, fnprocs):
    """The node stops (SIGSTOP) while the job runs: --timeout ends the wait."""
    sim, port = start_sim(fnprocs)
    use(zos, node_section("n", port), "n")
    try:
        r = zos.run("--timeout", "2", "exec", "kill -STOP %d; sleep 1" % sim.pid)
        assert r.rc == JOB_FAILED, r
        assert "node 'n' at 127.0.0.1:%d: timeout after 2 s waiting for job" % port in r.err
    finally:
        os.kill(sim.pid, signal.SIGCONT)


def test_protocol_garbage_exits_12(zos):
    """What answers the PING speaks no RESP: the link drops it for a protocol error."""
    peer = HostileNode(on_ping=b"hello world\r\n")
    try:
        use(zos, node_section("g", peer.port), "g")
        r = zos.run("ping")
        assert r.rc == UNREACHABLE, r
        assert "cannot reach node 'g'" in r.err and ": protocol error: " in r.err
    finally:
        peer.stop()


def test_node_error_reply_exits_12_and_27_to_ping(zos, fnprocs):
    """A Redis that answers PONG but refuses RPUSH: the job cannot start.  An error reply to
    PING itself is the node's no to PONG: 27."""
    peer = HostileNode()  # PING: +PONG; any other command: -ERR unknown command
    try:
        use(zos, node_section("h", peer.port), "h")
        r = zos.run("exec", "true")
        assert r.rc == UNREACHABLE, r
        assert "node 'h'" in r.err and "ERR unknown command 'RPUSH'" in r.err
    finally:
        peer.stop()
    _, port, _ = fnprocs.redis(extra=["--rename-command", "PING", "NOTPING"])
    use(zos, node_section("r", port), "r")
    r = zos.run("ping")
    assert r.rc == CANT_PING, r
    assert "did not answer PONG: ERR unknown command 'PING'" in r.err


def test_job_failed_exits_24(zos):
    r = zos.run("exec", "echo out; exit 3")
    assert (r.rc, r.out) == (JOB_FAILED, "out\n"), r
    assert r.err.endswith("zos: exec failed: exit status 3\n")


def test_job_result_gone_exits_24(zos, fnprocs):
    """The job's flag vanishes from the node while zos waits (as when its result expired):
    the job is not found any more.  The job deletes its flag only once zos looked at it (a
    TTL counted by the node after the job started), so however late zos looks, it has seen
    the job running; it then finds the flag gone well before the job would end."""
    sim, port = start_sim(fnprocs)
    use(zos, node_section("n", port), "n")
    cli = "redis-cli -p %d" % port
    ttls = "$(%s info commandstats | sed -n 's/^cmdstat_ttl:calls=\\([0-9]*\\).*/\\1/p')" % cli
    r = zos.run("exec", "c0=%s; i=0; while [ \"${c:=${c0:-0}}\" -le \"${c0:-0}\" ] && "
                "[ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); c=%s; c=${c:-0}; done; "
                "for k in $(%s keys 'result:*:flag'); do %s del $k >/dev/null; done; sleep 60"
                % (ttls, ttls, cli, cli))
    assert r.rc == JOB_FAILED, r
    assert "not found: its result expired" in r.err


def test_node_unknown_to_the_proxy_exits_17(zos, fnprocs, nodes):
    listen = free_port()
    fnprocs.proxy("[proxy]\nlisten = 127.0.0.1:%d\n\n" % listen + node_section("plain", nodes.plain),
                  ready_port=listen)
    r = zos.run("--proxy", "127.0.0.1:%d" % listen, "--node", "ghost", "exec", "true")
    assert r.rc == NOT_CONFIGURED, r
    assert "the proxy has no such node (AUTH failed: WRONGPASS unknown node 'ghost')" in r.err


def test_container_core0_does_not_have_exits_16(zos):
    """core0's two words for it: "no container with id" (terminate), "container does not
    exist" (dispatch)."""
    for args in (["delete"], ["zosexec", "/bin/true"], ["invoke", "/bin/true"]):
        r = zos.run("container", "4242", *args)
        assert r.rc == CONTAINER_DOESNT_EXIST, (args, r)
        assert "container 4242 does not exist on node 'plain'" in r.err, (args, r)


"""Volume: 100k pipelined commands over two nodes from one client; 50 clients at once."""
import threading

from conftest import TIMEOUT
from zostest import run_threads


def test_100k_pipelined_commands_over_two_nodes_in_order(open_proxy, nodes, uniq):
    """SET/GET alternating between the nodes, distinct values: every reply is checked."""
    r = open_proxy.client(socket_timeout=120)
    n = 25000  # x 4 commands = 100k
    p = r.pipeline(transaction=False)
    for i in range(n):
        k = "%sp:%d" % (uniq, i)
        p.set(k, "P%d" % i)                                    # plain, the default node
        p.execute_command("ZOS.AT", "secure", "SET", k, "S%d" % i)
        p.get(k)
        p.execute_command("ZOS.AT", "secure", "GET", k)
    replies = p.execute()
    assert len(replies) == 4 * n
    bad = []
    for i in range(n):
        got = replies[4 * i:4 * i + 4]
        want = [True, "OK", "P%d" % i, "S%d" % i]
        if got != want:
            bad.append((i, got, want))
    assert not bad, "%d wrong replies, first: %r" % (len(bad), bad[:3])
    # and the nodes really hold what was written
    assert nodes.plain().get("%sp:%d" % (uniq, n - 1)) == "P%d" % (n - 1)
    assert nodes.secure().get("%sp:%d" % (uniq, n - 1)) == "S%d" % (n - 1)


def test_50_concurrent_clients(open_proxy, nodes, uniq):
    counter = uniq + "counter"
    errors = []
    done = []
    start = threading.Barrier(50)

    def client(n):
        try:
            home = "secure" if n % 2 else "plain"
            other = "plain" if n % 2 else "secure"
            r = open_proxy.client(username=home, password="x", single_connection_client=True,
                                  socket_timeout=60)
            start.wait(TIMEOUT)
            for i in range(60):
                k = "%sc%d:%d" % (uniq, n, i)
                v = "%d-%d-%s" % (n, i, home)
                r.set(k, v)
                r.execute_command("ZOS.AT", other, "SET", k, v + "-other")
                got = [r.get(k), r.execute_command("ZOS.AT", other, "GET", k)]
                if got != [v, v + "-other"]:
                    errors.append((n, i, got))
                r.execute_command("ZOS.AT", "plain", "INCR", counter)
                if i % 20 == 0:
                    pl = r.pipeline(transaction=False)
                    for j in range(50):
                        pl.echo("%d:%d:%d" % (n, i, j))
                    if pl.execute() != ["%d:%d:%d" % (n, i, j) for j in range(50)]:
                        errors.append((n, i, "pipeline"))
            done.append(n)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(50)]
    run_threads(threads, 120)
    assert not errors, errors[:5]
    assert sorted(done) == list(range(50))
    assert nodes.plain().get(counter) == str(50 * 60)
    assert nodes.secure().get("%sc1:59" % uniq) == "1-59-secure"
    assert nodes.plain().get("%sc1:59" % uniq) == "1-59-secure-other"

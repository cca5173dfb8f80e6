"""The node's front door (core0-protocol.md §1): TLS, the secret, lifecycle, many nodes."""
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest
import redis

import zostest
from conftest import Node, start_node
from zostest import pid_alive as alive


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def wait_gone(pid, timeout=5.0):
    """True once PID is gone (or a zombie), False if it still runs after TIMEOUT."""
    return not zostest.wait_gone([pid], timeout)


def test_tls_and_secret(procs):
    proc, port = start_node(procs, tls=True, secret="s3cret-jwt.value")
    good = Node(port, password="s3cret-jwt.value", ssl=True)
    assert good.r.ping() is True
    res = good.call("core.ping")
    assert res["state"] == "SUCCESS"

    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError),
                       match="WRONGPASS|invalid"):
        Node(port, password="wrong", ssl=True).r.ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        Node(port, ssl=True).r.get("x")  # NOAUTH without AUTH
    with pytest.raises(redis.exceptions.ConnectionError):
        Node(port, password="s3cret-jwt.value").r.ping()  # plain RESP on a TLS port


def test_certificate_like_redis_proxy(procs):
    _, port = start_node(procs, tls=True)
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, text=True,
                          capture_output=True, check=True).stdout
    assert "O = GIG" in text or "O=GIG" in text
    assert "DNS:zero-os.gig.tech" in text
    assert "CA:TRUE" in text
    assert "Public-Key: (2048 bit)" in text
    assert "TLS Web Server Authentication" in text
    # a new certificate per start, like the real proxy
    _, port2 = start_node(procs, tls=True)
    assert ssl.get_server_certificate(("127.0.0.1", port2)) != pem


def test_plain_node_has_no_auth(procs):
    _, port = start_node(procs, port=zostest.free_port())
    n = Node(port)
    assert n.r.ping() is True


def test_ready_line_and_port(procs):
    port = zostest.free_port()
    p = procs.start([zostest.SIM_BIN, "--no-tls", "--port", str(port)],
                    stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    assert line == "zos-node-sim ready 127.0.0.1:%d tls=no\n" % port
    p2 = procs.start([zostest.SIM_BIN, "--port", str(zostest.free_port())],
                     stdout=subprocess.PIPE)
    assert p2.stdout.readline().decode().endswith(" tls=yes\n")


def test_sigterm_stops_everything(procs, tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc, port = start_node(procs, env=env)
    datadirs = [d for d in os.listdir(str(tmp_path)) if d.startswith("zos-node-sim-")]
    assert len(datadirs) == 1
    redis_pids = children(proc.pid)
    assert len(redis_pids) == 1
    n = Node(port)
    id = n.submit("core.system", {"name": "sleep", "args": ["30"]})
    n.wait_flag(id)
    time.sleep(0.2)
    job_pid = n.json("job.list", {"id": id})[0]["pid"]
    assert alive(job_pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0  # a hang guard: a simulator that waited for its job would take 30 s
    assert wait_gone(redis_pids[0]) and wait_gone(job_pid)
    assert os.listdir(str(tmp_path)) == []  # its temp dir is removed


def test_dir_option_keeps_data(procs, tmp_path):
    d = tmp_path / "node"
    proc, port = start_node(procs, extra=["--dir", str(d)])
    n = Node(port)
    cid = json.loads(n.call("corex.create", {"root": "x",
                                             "config": {"/etc/motd": "hi\n"}})["data"])
    assert (d / "containers" / str(cid) / "root" / "etc" / "motd").read_text() == "hi\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert d.is_dir()


def test_redis_death_is_fatal(procs):
    proc, port = start_node(procs)
    (rpid,) = children(proc.pid)
    os.kill(rpid, signal.SIGKILL)
    assert proc.wait(timeout=10) != 0


def test_attach_to_existing_redis(procs):
    _, rport, _ = procs.redis()
    p = procs.start([zostest.SIM_BIN, "--attach", "127.0.0.1:%d" % rport],
                    stdout=subprocess.PIPE)
    assert p.stdout.readline().decode() == "zos-node-sim ready 127.0.0.1:%d tls=no\n" % rport
    n = Node(rport)
    assert n.call("core.ping")["state"] == "SUCCESS"


def test_help_and_bad_option():
    out = subprocess.run([zostest.SIM_BIN, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--no-tls" in out.stdout and "--secret" in out.stdout
    out = subprocess.run([zostest.SIM_BIN, "--bogus"], capture_output=True, text=True)
    assert out.returncode == 2


def test_ten_nodes_at_once(procs):
    starts = []
    procs.sim_logs = []
    for i in range(10):
        path = os.path.join(procs.tmp, "ten-%d.log" % i)
        with open(path, "w") as log:
            p = procs.start([zostest.SIM_BIN, "--no-tls"], stdout=subprocess.PIPE, stderr=log)
        starts.append(p)
        procs.sim_logs.append((p, path))
    ports = []
    for p in starts:
        line = p.stdout.readline().decode()
        assert line.startswith("zos-node-sim ready 127.0.0.1:")
        ports.append(int(line.split(":")[1].split()[0]))
    nodes = [Node(port) for port in ports]
    ids = [n.submit("core.ping") for n in nodes]
    for n, i in zip(nodes, ids):
        assert n.wait(i)["state"] == "SUCCESS"
    # each node is its own: a container on one is not on another
    cid = json.loads(nodes[0].call("corex.create", {"root": "x"})["data"])
    assert str(cid) in nodes[0].json("corex.list")
    assert nodes[1].json("corex.list") == {}
    for n in nodes:
        n.r.close()


def test_socket_of_plain_node_is_loopback_only(procs):
    _, port = start_node(procs)
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass

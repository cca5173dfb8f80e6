"""Per-node health: the Prometheus endpoint of [proxy] metrics-listen, INFO's node lines and
ZOS.NODES, against simulated nodes.  The endpoint's text is parsed with a strict parser of
the exposition format (below), and each figure is checked to move with the traffic that
should move it: requests, latency, bytes, the job verbs' counters, a node killed and back."""
import base64
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import redis

from conftest import NODES, Raw, ping_text
import zostest
from zostest import fnprocs, free_port  # noqa: F401 (a fixture)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "clients"))
from resp3raw import RawClient  # noqa: E402

HTTP_TIMEOUT = 20  # seconds: a "no hang" guard only

# ---------------------------------------------------------------- a strict parser

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$" % (NAME, LABEL, LABEL))
FLOAT = re.compile(r"^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$")
TYPES = ("counter", "gauge", "summary", "histogram", "untyped")


def parse_labels(text):
    out = {}
    for m in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"', text or ""):
        assert m.group(1) not in out, "label %s twice in {%s}" % (m.group(1), text)
        out[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    return out


def parse_prometheus(text):
    """TEXT (the exposition format 0.0.4) as {family: {"type", "help", "samples": [(name,
    labels dict, float)]}}; fails on anything out of place: a line that is neither a
    comment nor a sample, HELP or TYPE after the family's samples or twice, a family
    whose samples are not together, a value that is not a float, a series twice, a
    counter below 0, a summary sample without a quantile in [0, 1]."""
    assert text.endswith("\n"), "the text does not end with a newline"
    fams, seen_series, closed, current = {}, set(), set(), None

    def family_of(name):
        for suffix in ("_sum", "_count", "_bucket"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and fams.get(base, {}).get("type") in ("summary", "histogram"):
                return base
        return name

    for no, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (no, line)
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            assert len(parts) == 4 and re.match("^%s$" % NAME, parts[2]), where
            kind, name, rest = parts[1], parts[2], parts[3]
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            assert not f["samples"], "%s after the samples of %s" % (kind, name) + " " + where
            key = "help" if kind == "HELP" else "type"
            assert f[key] is None, "%s of %s twice: %s" % (kind, name, where)
            if kind == "TYPE":
                assert rest in TYPES, where
            f[key] = rest
            continue
        assert not line.startswith("#") and line.strip() == line and line, where
        m = SAMPLE.match(line)
        assert m, "not a sample line: " + where
        name, labels, value = m.group(1), parse_labels(m.group(2)), m.group(3)
        assert FLOAT.match(value), "not a float: " + where
        fam = family_of(name)
        assert fam in fams and fams[fam]["type"] and fams[fam]["help"], \
            "sample before its HELP and TYPE: " + where
        if fam != current:
            assert fam not in closed, "samples of %s are not together: %s" % (fam, where)
            if current is not None:
                closed.add(current)
            current = fam
        series = (name, tuple(sorted(labels.items())))
        assert series not in seen_series, "series twice: " + where
        seen_series.add(series)
        v = float(value)
        if fams[fam]["type"] == "counter":
            assert name.endswith("_total") and v >= 0, where
        if fams[fam]["type"] == "summary" and name == fam:
            q = float(labels.get("quantile", "nan"))
            assert 0 <= q <= 1, "summary sample without a quantile: " + where
        fams[fam]["samples"].append((name, labels, v))
    return fams


def value(fams, name, **labels):
    """The one sample NAME{LABELS...} (other labels of the series allowed only when given)."""
    fam = name
    for suffix in ("_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in fams:
            fam = name[:-len(suffix)]
    got = [v for n, lab, v in fams[fam]["samples"] if n == name and lab == labels]
    assert len(got) == 1, "%s%r: %d samples" % (name, labels, len(got))
    return got[0]


def test_parser_refuses_what_is_not_prometheus_text():
    """The parser can fail: each of these is rejected."""
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total{node=\"x\"} 1\n"
    parse_prometheus(good)
    bad = [
        good[:-1],                                              # no final newline
        "a_total 1\n# HELP a_total A.\n# TYPE a_total counter\n",  # sample first
        good + "# HELP a_total again.\n",                       # HELP after samples
        good.replace(" 1\n", " one\n"),                         # not a float
        good.replace('{node="x"}', '{node=x}'),                 # label not quoted
        good + 'a_total{node="x"} 2\n',                         # series twice
        good.replace(" 1\n", " -1\n"),                          # counter below 0
        good + "# HELP b B.\n# TYPE b gauge\nb 1\na_total{node=\"y\"} 1\n",  # not together
        "# HELP s S.\n# TYPE s summary\ns{node=\"x\"} 1\n",     # summary without quantile
        good + "\n",                                            # an empty line
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_prometheus(text)


# ---------------------------------------------------------------- helpers

def http_get(port, path="/metrics", auth=None):
    """(status, headers, body text) of GET http://127.0.0.1:PORT/PATH."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def scrape(port, auth=None):
    status, headers, body = http_get(port, auth=auth)
    assert status == 200, (status, body)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    return parse_prometheus(body)


def wait_until(what, fn, timeout=20.0):
    """Polls FN until it returns true (a "no hang" guard, never a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "gave up waiting for " + what
        time.sleep(0.05)


NODE_FAMILIES = {
    "zos_proxy_node_requests_total": "counter", "zos_proxy_node_errors_total": "counter",
    "zos_proxy_node_error_replies_total": "counter",
    "zos_proxy_node_reconnects_total": "counter", "zos_proxy_node_hangs_total": "counter",
    "zos_proxy_node_inflight": "gauge", "zos_proxy_node_received_bytes_total": "counter",
    "zos_proxy_node_sent_bytes_total": "counter", "zos_proxy_node_links_open": "gauge",
    "zos_proxy_node_job_links_open": "gauge", "zos_proxy_node_jobs_total": "counter",
    "zos_proxy_node_jobs_failed_total": "counter",
    "zos_proxy_node_jobs_timed_out_total": "counter", "zos_proxy_node_up": "gauge",
    "zos_proxy_node_state_age_seconds": "gauge", "zos_proxy_node_pinned": "gauge",
    "zos_proxy_node_latency_seconds": "summary", "zos_proxy_node_latency_max_seconds": "gauge",
}


@pytest.fixture
def mcluster(make_cluster):
    """A cluster of its own whose proxy serves metrics on a free loopback port."""
    port = free_port()
    cl = make_cluster(proxy_extra="metrics-listen = 127.0.0.1:%d\nbackoff-max = 300" % port)
    cl.metrics_port = port
    zostest.wait_port(port, proc=cl.proxy)
    return cl


# ---------------------------------------------------------------- the endpoint

def test_metrics_move_with_traffic_and_jobs(mcluster):
    """Scraped before and after: 50 SET/GET on n1, a pinned BLPOP, ZOS jobs that succeed,
    fail and time out on n1.  n1's requests, latency count, bytes and job counters grow
    by at least what was sent; the latency quantiles are numbers (not NaN) and ordered
    p50 <= p99 <= max; n2, which ran no job, counts none."""
    cl = mcluster
    before = scrape(cl.metrics_port)
    for fam, typ in NODE_FAMILIES.items():
        assert before[fam]["type"] == typ, fam
        for n in NODES:
            if typ == "summary":
                value(before, fam + "_count", node=n)
            else:
                value(before, fam, node=n)
    for n in NODES:
        assert value(before, "zos_proxy_node_jobs_total", node=n) == 0

    r = cl.client("n1")
    for i in range(50):
        r.set("metrics:%d" % i, "v" * 100)
        assert r.get("metrics:%d" % i) == "v" * 100
    assert r.blpop("metrics:nothing", 0.1) is None
    with pytest.raises(redis.ResponseError):
        r.execute_command("INCR", "metrics:0")  # an error reply of the node
    assert r.execute_command("ZOS.CMD", "core.ping") == ping_text("n1")
    assert r.execute_command("ZOS.EXEC", "echo", "hi") == "hi\n"
    c = Raw(cl.port)
    assert c.call("AUTH", "n1", "x") == "OK"
    assert c.call("ZOS.EXEC", "exit 3").startswith("ERR command failed with exit status 3")
    timed = c.call("ZOS.CMD", "bash", '{"script": "sleep 5", "stdin": ""}', "TIMEOUT", "1",
                   "MAXTIME", "3")
    assert timed.startswith("ERR timeout after 1 s"), timed
    c.close()

    after = scrape(cl.metrics_port)
    grew = lambda name, **lab: value(after, name, **lab) - value(before, name, **lab)  # noqa: E731
    assert grew("zos_proxy_node_requests_total", node="n1") >= 100 + 1 + 1
    assert grew("zos_proxy_node_latency_seconds_count", node="n1") >= 100
    assert grew("zos_proxy_node_latency_seconds_sum", node="n1") > 0
    assert grew("zos_proxy_node_sent_bytes_total", node="n1") >= 50 * 100
    assert grew("zos_proxy_node_received_bytes_total", node="n1") >= 50 * 100
    assert grew("zos_proxy_node_error_replies_total", node="n1") >= 1
    assert grew("zos_proxy_node_errors_total", node="n1") == 0
    p50 = value(after, "zos_proxy_node_latency_seconds", node="n1", quantile="0.5")
    p99 = value(after, "zos_proxy_node_latency_seconds", node="n1", quantile="0.99")
    mx = value(after, "zos_proxy_node_latency_max_seconds", node="n1")
    assert not math.isnan(p50) and 0 < p50 <= p99 <= mx, (p50, p99, mx)
    assert grew("zos_proxy_node_jobs_total", node="n1") == 4
    assert grew("zos_proxy_node_jobs_failed_total", node="n1") == 1
    assert grew("zos_proxy_node_jobs_timed_out_total", node="n1") == 1
    assert value(after, "zos_proxy_node_job_links_open", node="n1") >= 1
    assert value(after, "zos_proxy_node_links_open", node="n1") >= 1
    assert value(after, "zos_proxy_node_up", node="n1") == 1
    assert value(after, "zos_proxy_node_state", node="n1", state="ready") == 1
    assert value(after, "zos_proxy_node_state", node="n1", state="down") == 0
    assert value(after, "zos_proxy_node_jobs_total", node="n2") == 0
    assert value(after, "zos_proxy_node_job_links_open", node="n2") == 0
    assert value(after, "zos_proxy_connections_received_total") > \
        value(before, "zos_proxy_connections_received_total")


def test_tls_node_counts_too(mcluster):
    """n3 speaks TLS with a secret: its figures move the same way."""
    cl = mcluster
    before = scrape(cl.metrics_port)
    r = cl.client("n3")
    for i in range(20):
        r.set("k%d" % i, "x")
    assert r.execute_command("ZOS.CMD", "core.ping") == ping_text("n3")
    after = scrape(cl.metrics_port)
    assert value(after, "zos_proxy_node_requests_total", node="n3") - \
        value(before, "zos_proxy_node_requests_total", node="n3") >= 20
    assert value(after, "zos_proxy_node_jobs_total", node="n3") == 1
    assert value(after, "zos_proxy_node_info", node="n3", address="127.0.0.1",
                 port=str(cl.ports["n3"]), tls="yes") == 1


def test_node_killed_and_back(mcluster):
    """n2 killed: its requests fail, it is down, its errors grow; back on the same port:
    up again, a reconnect counted, and its state is younger than n1's (n1 never changed
    since it first connected)."""
    cl = mcluster
    r1, r2 = cl.client("n1"), cl.client("n2")
    assert r1.set("a", "1") and r2.set("a", "1")
    before = scrape(cl.metrics_port)
    cl.kill_node("n2")
    wait_until("a request to the killed n2 to fail", lambda: _fails(r2))
    down = scrape(cl.metrics_port)
    assert value(down, "zos_proxy_node_up", node="n2") == 0
    assert value(down, "zos_proxy_node_state", node="n2", state="ready") == 0
    assert value(down, "zos_proxy_node_errors_total", node="n2") > \
        value(before, "zos_proxy_node_errors_total", node="n2")
    info = cl.client().info("proxy")
    assert info["node_n2"]["state"] in ("down", "idle", "connecting"), info["node_n2"]
    assert info["node_n2"]["errors"] >= 1

    cl.restart_node("n2")
    wait_until("n2 to answer again", lambda: not _fails(r2))
    r1.set("a", "2")  # n1 is used, its state does not change
    back = scrape(cl.metrics_port)
    assert value(back, "zos_proxy_node_up", node="n2") == 1
    assert value(back, "zos_proxy_node_reconnects_total", node="n2") >= 1
    assert value(back, "zos_proxy_node_reconnects_total", node="n1") == 0
    assert value(back, "zos_proxy_node_state_age_seconds", node="n2") < \
        value(back, "zos_proxy_node_state_age_seconds", node="n1")


def _fails(r):
    try:
        r.get("a")
        return False
    except redis.RedisError:
        return True


def test_not_found_elsewhere(mcluster):
    for path in ("/", "/metrics/", "/metricsx", "/favicon.ico"):
        status, _, body = http_get(mcluster.metrics_port, path)
        assert status == 404, (path, status, body)
    status, _, _ = http_get(mcluster.metrics_port, "/metrics?x=1")
    assert status == 200


# ---------------------------------------------------------------- INFO and ZOS.NODES

INFO_INTS = ("state_age_s", "inflight", "pinned", "requests", "errors", "error_replies",
             "reconnects", "latency_p50_us", "latency_p99_us", "latency_max_us", "bytes_in",
             "bytes_out", "links_open", "pool", "hangs", "jobs", "jobs_failed",
             "jobs_timed_out", "job_links")


def test_info_node_lines_parse_with_redis_py(cluster):
    """redis-py splits INFO's node_<name> lines on ',' then '=': every field comes back, the
    figures as integers, and they follow a job on n1."""
    r = cluster.client("n1")
    assert r.execute_command("ZOS.CMD", "core.ping") == ping_text("n1")
    for i in range(10):
        r.set("info:%d" % i, "x")
    info = cluster.client().info("proxy")
    for n in NODES:
        line = info["node_" + n]
        assert isinstance(line, dict), line
        for k in INFO_INTS:
            assert isinstance(line[k], int), (n, k, line)
        assert line["state"] in ("idle", "connecting", "ready", "down")
        assert line["address"].startswith("127.0.0.1:")
    n1 = info["node_n1"]
    assert n1["jobs"] >= 1 and n1["requests"] >= 10 and n1["job_links"] >= 1
    assert 0 < n1["latency_p50_us"] <= n1["latency_p99_us"] <= n1["latency_max_us"]
    assert n1["bytes_in"] > 0 and n1["bytes_out"] > 0
    # the node's own INFO with the proxy section after it parses the same way
    full = r.info()
    assert "redis_version" in full and isinstance(full["node_n1"], dict)


def test_zos_nodes_resp2_and_resp3(cluster):
    """ZOS.NODES: per node a flat [field, value, ...] array in RESP2, a map in RESP3, with
    the same fields; the figures are integers."""
    cluster.client("n2").set("nodes:x", "1")
    rows = cluster.client().execute_command("ZOS.NODES")
    assert len(rows) == len(NODES)
    by_name = {}
    for row in rows:
        assert len(row) % 2 == 0
        d = dict(zip(row[::2], row[1::2]))
        by_name[d["name"]] = d
    assert sorted(by_name) == sorted(NODES)
    for k in INFO_INTS:
        if k in ("pinned", "pool"):
            continue
        assert isinstance(by_name["n2"][k], int), (k, by_name["n2"])
    assert by_name["n2"]["requests"] >= 1
    with RawClient(cluster.port) as c:
        assert c.call("HELLO", "3").type == "%"
        f = c.call("ZOS.NODES")
        assert f.type == "*" and len(f.value) == len(NODES)
        for m in f.value:
            assert m.type == "%", m
            d = m.py()
            name = d[b"name"].decode()
            assert set(k.decode() for k in d) == set(by_name[name]), name
            assert isinstance(d[b"requests"], int) and isinstance(d[b"latency_p99_us"], int)


# ---------------------------------------------------------------- config and exposure

def write_conf(tmp, text):
    path = os.path.join(tmp, "zos.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def check_conf(tmp, text):
    p = subprocess.run([zostest.PROXY_BIN, "-t", "-c", write_conf(tmp, text)],
                       capture_output=True, text=True, timeout=30,
                       env=zostest.isolated_env(tmp))
    return p.returncode, p.stdout + p.stderr


def test_metrics_listen_beyond_loopback_needs_requirepass(tmp_path):
    tmp = str(tmp_path)
    node = "[n]\naddress = 127.0.0.1\nport = 6379\ntls = no\n"
    rc, out = check_conf(tmp, "[proxy]\nmetrics-listen = 0.0.0.0:9101\n" + node)
    assert rc == 1, out
    assert "metrics-listen '0.0.0.0:9101' is not a loopback address: set [proxy] requirepass" \
        in out, out
    rc, out = check_conf(tmp, "[proxy]\nmetrics-listen = 0.0.0.0:9101\nrequirepass = s3\n" + node)
    assert rc == 0, out
    for ok in ("127.0.0.1:9101", "[::1]:9101", "localhost:9101"):
        rc, out = check_conf(tmp, "[proxy]\nmetrics-listen = %s\n" % ok + node)
        assert rc == 0, (ok, out)


@pytest.mark.parametrize("text, message", [
    ("[proxy]\nlisten = 127.0.0.1:7001\nmetrics-listen = 127.0.0.1:7001\n",
     "zos.toml:3: metrics-listen: 127.0.0.1:7001 is also the [proxy] listen address"),
    ("[proxy]\nmetrics-listen = 127.0.0.1:7002\n[n]\nport = 1\nlisten = 127.0.0.1:7002\n",
     "zos.toml:2: metrics-listen: 127.0.0.1:7002 is already used by [n]"),
    ("[proxy]\nmetrics-listen = 9100\n", "zos.toml:2: metrics-listen:"),
    ("[proxy]\nmetrics-listen = 127.0.0.1:0\n", "zos.toml:2: metrics-listen:"),
])
def test_metrics_listen_bad_values(tmp_path, text, message):
    rc, out = check_conf(str(tmp_path), text)
    assert rc == 1 and message in out, out


def test_requirepass_guards_the_endpoint(fnprocs):
    """With requirepass, a scrape gives it as HTTP Basic auth (any user name): none or a
    wrong one is 401 with a Basic challenge, the right one 200; so does a node's port
    for the redis protocol."""
    _, rport, _ = fnprocs.redis()
    mport, lport = free_port(), free_port()
    conf = ("[proxy]\nlisten = 127.0.0.1:%d\nrequirepass = s3cr3t\nmetrics-listen = "
            "127.0.0.1:%d\n" % (lport, mport) + zostest.node_section("r", rport))
    proxy, path = fnprocs.proxy(conf, env=zostest.isolated_env(fnprocs.tmp), ready_port=lport)
    zostest.wait_port(mport, proc=proxy)
    status, headers, _ = http_get(mport)
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), headers
    assert http_get(mport, auth="prom:wrong")[0] == 401
    assert http_get(mport, auth="prom:s3cr3t-and-more")[0] == 401
    assert http_get(mport, auth="s3cr3t")[0] == 401  # no user:password form
    assert http_get(mport, path="/other", auth="any:s3cr3t")[0] == 404
    fams = scrape(mport, auth="prom:s3cr3t")
    assert value(fams, "zos_proxy_node_up", node="r") in (0, 1)
    assert value(scrape(mport, auth=":s3cr3t"), "zos_proxy_node_jobs_total", node="r") == 0
    stopped_cleanly(fnprocs, proxy, path)


def test_off_by_default(fnprocs):
    """Without metrics-listen nothing else listens: the proxy's log names no metrics port."""
    _, rport, _ = fnprocs.redis()
    lport = free_port()
    conf = "[proxy]\nlisten = 127.0.0.1:%d\n" % lport + zostest.node_section("r", rport)
    proxy, path = fnprocs.proxy(conf, env=zostest.isolated_env(fnprocs.tmp), ready_port=lport)
    assert redis.Redis(port=lport, socket_timeout=HTTP_TIMEOUT).ping()
    log = zostest.read_log(path[:-len(".toml")] + ".log")
    assert "listening on 127.0.0.1:%d" % lport in log
    assert "metrics" not in log, log
    stopped_cleanly(fnprocs, proxy, path)


def test_reload_keeps_figures_and_follows_the_nodes(fnprocs):
    """SIGHUP adding a node and removing another: the new one is scraped at once, the
    removed one is gone, and a node kept keeps its counters (they never go back)."""
    _, p1, _ = fnprocs.redis()
    _, p2, _ = fnprocs.redis()
    _, p3, _ = fnprocs.redis()
    mport, lport = free_port(), free_port()
    head = "[proxy]\nlisten = 127.0.0.1:%d\nmetrics-listen = 127.0.0.1:%d\n" % (lport, mport)
    proxy, path = fnprocs.proxy(head + zostest.node_section("r1", p1) +
                                zostest.node_section("r2", p2),
                                env=zostest.isolated_env(fnprocs.tmp), ready_port=lport)
    zostest.wait_port(mport, proc=proxy)
    r1 = redis.Redis(port=lport, username="r1", password="x", socket_timeout=HTTP_TIMEOUT)
    for i in range(30):
        r1.set("k%d" % i, "v")
    before = value(scrape(mport), "zos_proxy_node_requests_total", node="r1")
    assert before >= 30
    with open(path, "w") as f:
        f.write(head + zostest.node_section("r1", p1) + zostest.node_section("r3", p3))
    proxy.send_signal(signal.SIGHUP)
    fams = wait_until("the reload to show in the metrics", lambda: _scrape_with(mport, "r3"))
    assert not any(lab.get("node") == "r2" for _, lab, _ in fams["zos_proxy_node_up"]["samples"])
    assert value(fams, "zos_proxy_node_requests_total", node="r1") >= before
    assert value(fams, "zos_proxy_node_requests_total", node="r3") == 0
    r3 = redis.Redis(port=lport, username="r3", password="x", socket_timeout=HTTP_TIMEOUT)
    assert r3.set("x", "1")
    assert value(scrape(mport), "zos_proxy_node_requests_total", node="r3") >= 1
    stopped_cleanly(fnprocs, proxy, path)


def stopped_cleanly(procs, proxy, path):
    """The proxy is alive and exits 0 on SIGTERM (under a SANITIZER build, a report of a
    leak or a bad access makes that non-zero)."""
    log = lambda: zostest.read_log(path[:-len(".toml")] + ".log")  # noqa: E731
    assert proxy.poll() is None, "zos-proxy died:\n" + log()[-4000:]
    assert procs.stop(proxy, timeout=10) == 0, log()[-6000:]


def _scrape_with(port, node):
    fams = scrape(port)
    return fams if any(lab.get("node") == node
                       for _, lab, _ in fams["zos_proxy_node_up"]["samples"]) else None

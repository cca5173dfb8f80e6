"""INFO through zos-proxy is the node's own INFO (every field name a direct INFO to the
node has) followed by the proxy's `# Proxy` section; `INFO proxy` is that section alone;
section arguments are the node's.  Monitoring tools read these field names."""
import re

from resp3raw import RESP2_TYPES

# Fields that come and go between two INFO calls (a db with keys, an error seen, ...)
VOLATILE = re.compile(r"^(db\d+|errorstat_.*|cmdstat_.*|latency_percentiles_usec_.*)$")


def parse(text):
    """(section names in order, {field: value}) of an INFO text."""
    sections, fields = [], {}
    for line in text.splitlines():
        if line.startswith("# "):
            sections.append(line[2:].strip())
        elif ":" in line:
            k, v = line.split(":", 1)
            fields[k] = v
    return sections, fields


def info(client, *args):
    f = client.call("INFO", *args)
    assert f.type in "$=" and not f.is_error(), f.raw
    return f.text()


def test_info_has_every_field_of_the_nodes_info(stack, node):
    with stack.raw(node) as via, stack.raw_direct(node) as direct:
        d_sections, d_fields = parse(info(direct))
        v_sections, v_fields = parse(info(via))
    missing = sorted(k for k in d_fields if not VOLATILE.match(k) and k not in v_fields)
    assert not missing, "INFO through the proxy lacks the node's fields %s" % missing
    assert v_sections[:len(d_sections)] == d_sections, (v_sections, d_sections)
    assert v_sections[len(d_sections):] == ["Proxy"], v_sections
    # the node's own figures, not a stand-in
    for k in ("redis_version", "run_id", "role", "tcp_port", "redis_mode", "executable"):
        assert v_fields.get(k) == d_fields.get(k), (k, v_fields.get(k), d_fields.get(k))
    assert "used_memory" in v_fields and v_fields["role"] == "master"
    assert any(k.startswith("node_") for k in v_fields), "no node line in # Proxy"


def test_info_sections_as_arguments(stack, node):
    with stack.raw(node) as via, stack.raw_direct(node) as direct:
        for args in (("server",), ("memory", "keyspace"), ("replication",), ("default",)):
            d_sections, d_fields = parse(info(direct, *args))
            v_sections, v_fields = parse(info(via, *args))
            assert v_sections == d_sections + ["Proxy"], (args, v_sections, d_sections)
            missing = sorted(k for k in d_fields if not VOLATILE.match(k) and k not in v_fields)
            assert not missing, (args, missing)
        sections, fields = parse(info(via, "proxy"))
        assert sections == ["Proxy"], sections
        assert "redis_version" not in fields and "used_memory" not in fields, fields
        sections, _ = parse(info(via, "PROXY"))
        assert sections == ["Proxy"], sections


def test_info_keyspace_sees_the_nodes_keys(stack, node, uniq):
    stack.direct(node).set(uniq + "k", "v")
    with stack.raw(node) as via:
        _, fields = parse(info(via, "keyspace"))
    assert fields.get("db0", "").startswith("keys="), fields


def test_info_in_resp3_is_a_verbatim_string_like_the_nodes(stack, node):
    with stack.raw(node, proto=3) as via, stack.raw_direct(node, proto=3) as direct:
        f, g = via.call("INFO", "server"), direct.call("INFO", "server")
    assert f.type == g.type == "=", (f.raw[:40], g.raw[:40])
    assert f.value.startswith(b"txt:"), f.raw[:40]
    with stack.raw(node, proto=2) as via:
        f = via.call("INFO")
    assert f.type == "$" and f.types() <= RESP2_TYPES, f.raw[:40]

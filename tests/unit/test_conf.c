/* test_conf.c -- unit tests of conf: loading, every error message, set/save round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "zos/conf.h"

#include "testutil.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];
static char path[256];
static char err[1024];

#define SHA_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static int setup(void **state)
{
    return tu_mkdtemp(tmpdir, sizeof(tmpdir), "conf") != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    return tu_rm_tree(tmpdir);
}

/* Writes LEN bytes of TEXT to tmpdir/NAME and leaves its path in `path`. */
static const char *write_bytes(const char *name, const char *text, size_t len)
{
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    assert_int_equal(tu_write_file(path, text, len, 0644), 0);
    return path;
}

static const char *write_file(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

static struct zos_conf *load_text(const char *text)
{
    err[0] = '\0';
    return zos_conf_load(write_file("zos.toml", text), err, sizeof(err));
}

static char *read_all(const char *p)
{
    static char buf[8192];
    FILE *f = fopen(p, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- loading ---- */

static void test_defaults_of_one_node(void **state)
{
    struct zos_conf *c = load_text("[n]\n");
    struct zos_node_conf *n;

    assert_non_null(c);
    assert_string_equal(c->path, path);
    assert_int_equal(c->nnodes, 1);
    n = &c->nodes[0];
    assert_string_equal(n->name, "n");
    assert_int_equal(n->line, 1);
    assert_string_equal(n->address, "127.0.0.1");
    assert_int_equal(n->port, 6379);
    assert_true(n->tls);
    assert_int_equal(n->verify, ZOS_TLS_VERIFY_NONE);
    assert_null(n->verify_ca);
    assert_null(n->secret);
    assert_int_equal(n->db, 0);
    assert_null(n->password);
    assert_null(n->listen);
    assert_false(n->isvbox);
    assert_null(n->sshkey);

    assert_null(c->app.defaultzos);
    assert_false(c->app.debug);
    assert_null(c->app.proxy);

    assert_string_equal(c->proxy.listen, "127.0.0.1:6380");
    assert_null(c->proxy.unixsocket);
    assert_int_equal(c->proxy.unixsocketperm, 0700);
    assert_null(c->proxy.requirepass);
    assert_null(c->proxy.default_node);
    assert_int_equal(c->proxy.max_bulk, 512 * 1024 * 1024);
    assert_int_equal(c->proxy.max_args, 1048576);
    assert_int_equal(c->proxy.max_inline, 64 * 1024);
    assert_int_equal(c->proxy.max_clients, 10000);
    assert_int_equal(c->proxy.max_pinned, 256);
    assert_int_equal(c->proxy.job_links, 16);
    assert_int_equal(c->proxy.connect_timeout_ms, 5000);
    assert_int_equal(c->proxy.ping_interval_ms, 15000);
    assert_int_equal(c->proxy.node_timeout_ms, 10000);
    assert_int_equal(c->proxy.max_lanes, 4);
    assert_int_equal(c->proxy.lane_busy_ms, 50);
    assert_int_equal(c->proxy.pool_size, 8);
    assert_int_equal(c->proxy.pool_idle_ms, 30000);
    assert_true(c->proxy.client_output_limit == 256u << 20);
    assert_true(c->proxy.client_query_limit == 256u << 20);
    assert_true(c->proxy.pubsub_output_limit == 32u << 20);
    assert_int_equal(c->proxy.backoff_max_ms, 10000);
    assert_int_equal(c->proxy.shutdown_timeout_ms, 5000);
    assert_string_equal(c->proxy.log_level, "info");
    assert_null(c->proxy.log_file);

    assert_ptr_equal(zos_conf_default_node(c), n);
    assert_ptr_equal(zos_conf_node(c, "n"), n);
    assert_null(zos_conf_node(c, "N"));
    zos_conf_free(c);
}

static void test_new_has_defaults_and_no_node(void **state)
{
    struct zos_conf *c = zos_conf_new();

    assert_non_null(c);
    assert_int_equal(c->nnodes, 0);
    assert_null(c->path);
    assert_string_equal(c->proxy.listen, "127.0.0.1:6380");
    assert_string_equal(c->proxy.log_level, "info");
    assert_null(zos_conf_default_node(c));
    zos_conf_free(c);
    zos_conf_free(NULL);
}

/* What the Nim zos (parsecfg) writes: key=value, quoted values, \xHH escapes. */
static void test_original_tool_file(void **state)
{
    struct zos_conf *c =
        load_text("[app]\ndebug=false\ndefaultzos=local\n\n[local]\naddress=\"127.0.0.1\"\n"
                  "port=4444\nisvbox=true\n\n[other]\naddress=\"10.0.0.2\"\nport=6379\n"
                  "sshkey=\"/home/j\\xC3\\xBCrgen/.ssh/id_\\\"x\\\"\"\n");
    struct zos_node_conf *n;

    assert_non_null(c);
    assert_false(c->app.debug);
    assert_string_equal(c->app.defaultzos, "local");
    assert_int_equal(c->nnodes, 2);
    n = zos_conf_node(c, "local");
    assert_non_null(n);
    assert_string_equal(n->address, "127.0.0.1");
    assert_int_equal(n->port, 4444);
    assert_true(n->isvbox);
    assert_true(n->tls);
    assert_int_equal(n->line, 5);
    assert_string_equal(zos_conf_node(c, "other")->sshkey, "/home/j\xC3\xBCrgen/.ssh/id_\"x\"");
    assert_ptr_equal(zos_conf_default_node(c), n);
    zos_conf_free(c);
}

/* Every key with a value other than its default, written in every accepted way. */
static void test_every_key(void **state)
{
    char secret[301], name[65], *text;
    const unsigned char sha[32] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                   0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                                   0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    struct zos_conf *c;
    struct zos_node_conf *a, *b;

    memset(secret, 'j', 300);
    secret[300] = '\0';
    memset(name, 'x', 64);
    name[64] = '\0';
    assert_true(asprintf(&text,
                         "\xEF\xBB\xBF; a comment\n# another\n[app]\ndebug=TRUE\ndefaultzos = b\n"
                         "proxy = [::1]:6380\n\n"
                         "[ proxy ]   ; header comment\n"
                         "  listen = 0.0.0.0:7000     ; indented, then a comment\n"
                         "\tunixsocket = /tmp/zos.sock\n"
                         "unixsocketperm = 770\nrequirepass = \"pass ; word\"  ; comment\n"
                         "default = a\nmax-bulk = 1g\nmax-args = 1000\nmax-inline = 16kb\n"
                         "max-clients = 10\nmax-pinned = 8\njob-links: 4\nconnect-timeout = 100\n"
                         "ping-interval = 1000\nbackoff-max = 2000\nshutdown-timeout = 0\n"
                         "log-level = DEBUG\nlog-file = /var/log/zos#1.log\n\n"
                         "[a]\naddress = 10.0.0.1\nport = 4444\ntls = off\n"
                         "tls-verify = sha256:" SHA_HEX "\n"
                         "secret = %s\ndb = 3\npassword = \"with \\\"quote\\\" and \\\\ back\"\n"
                         "listen = 127.0.0.1:4445\nisvbox = on\nSSHKEY = /root/.ssh/id_ed25519\n"
                         "[b]\r\ntls-verify = ca:/etc/ca.pem\r\nport = 1\r\n"
                         "[%s]\nsecret=;not a comment\n",
                         secret, name) > 0);
    c = load_text(text);
    free(text);
    assert_non_null(c);
    if (c == NULL)
        return;
    assert_true(c->app.debug);
    assert_string_equal(c->app.defaultzos, "b");
    assert_string_equal(c->app.proxy, "[::1]:6380");

    assert_string_equal(c->proxy.listen, "0.0.0.0:7000");
    assert_string_equal(c->proxy.unixsocket, "/tmp/zos.sock");
    assert_int_equal(c->proxy.unixsocketperm, 0770);
    assert_string_equal(c->proxy.requirepass, "pass ; word");
    assert_string_equal(c->proxy.default_node, "a");
    assert_int_equal(c->proxy.max_bulk, 1 << 30);
    assert_int_equal(c->proxy.max_args, 1000);
    assert_int_equal(c->proxy.max_inline, 16384);
    assert_int_equal(c->proxy.max_clients, 10);
    assert_int_equal(c->proxy.max_pinned, 8);
    assert_int_equal(c->proxy.job_links, 4);
    assert_int_equal(c->proxy.connect_timeout_ms, 100);
    assert_int_equal(c->proxy.ping_interval_ms, 1000);
    assert_int_equal(c->proxy.backoff_max_ms, 2000);
    assert_int_equal(c->proxy.shutdown_timeout_ms, 0);
    assert_string_equal(c->proxy.log_level, "debug");
    assert_string_equal(c->proxy.log_file, "/var/log/zos#1.log");

    assert_int_equal(c->nnodes, 3);
    a = zos_conf_node(c, "a");
    assert_string_equal(a->address, "10.0.0.1");
    assert_int_equal(a->port, 4444);
    assert_false(a->tls);
    assert_int_equal(a->verify, ZOS_TLS_VERIFY_SHA256);
    assert_memory_equal(a->verify_sha256, sha, 32);
    assert_string_equal(a->secret, secret);
    assert_int_equal(a->db, 3);
    assert_string_equal(a->password, "with \"quote\" and \\ back");
    assert_string_equal(a->listen, "127.0.0.1:4445");
    assert_true(a->isvbox);
    assert_string_equal(a->sshkey, "/root/.ssh/id_ed25519");

    b = zos_conf_node(c, "b");
    assert_int_equal(b->verify, ZOS_TLS_VERIFY_CA);
    assert_string_equal(b->verify_ca, "/etc/ca.pem");
    assert_int_equal(b->port, 1);
    assert_string_equal(zos_conf_node(c, name)->secret, ";not a comment");
    assert_int_equal(zos_conf_node(c, name)->line, 41);
    /* [proxy] default wins over [app] defaultzos */
    assert_ptr_equal(zos_conf_default_node(c), a);
    zos_conf_free(c);
}

static void test_sha256_with_colons(void **state)
{
    struct zos_conf *c = load_text("[n]\ntls-verify = SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:"
                                   "CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff\n");

    assert_non_null(c);
    assert_int_equal(c->nodes[0].verify, ZOS_TLS_VERIFY_SHA256);
    assert_int_equal(c->nodes[0].verify_sha256[10], 0xaa);
    assert_int_equal(c->nodes[0].verify_sha256[31], 0xff);
    zos_conf_free(c);
}

static void test_bools(void **state)
{
    static const char *const yes[] = {"yes", "TRUE", "On", "1"}, *const no[] = {"no", "False",
                                                                                "OFF", "0"};
    char text[64];
    struct zos_conf *c;

    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof(text), "[n]\nisvbox = %s\ntls = %s\n", yes[i], no[i]);
        c = load_text(text);
        assert_non_null(c);
        assert_true(c->nodes[0].isvbox);
        assert_false(c->nodes[0].tls);
        zos_conf_free(c);
    }
}

/* ---- every error message ---- */

struct bad_case {
    const char *text;
    int line;
    const char *msg;
};

#define RANGE_MSG(key, range, got) key ": must be " range " (got '" got "')"
#define BOOL_MSG(key, got)         key ": must be yes/no, true/false, on/off or 1/0 (got '" got "')"
#define HOSTPORT_MSG(key, got)     key ": must be host:port with a port in 1..65535 (got '" got "')"
#define SIZE_MSG(key, range, got)                                                                  \
    key ": must be a size in " range ", with an optional k, m or g (got '" got "')"
#define SYNTAX_MSG "syntax error: expected [section], key = value or a comment"

static const struct bad_case bad_cases[] = {
    /* [app] */
    {"[app]\ndebug = maybe\n", 2, BOOL_MSG("debug", "maybe")},
    {"[app]\ndefaultzos = a b\n", 2, "defaultzos: must be a node name (got 'a b')"},
    {"[app]\nproxy = localhost\n", 2, HOSTPORT_MSG("proxy", "localhost")},
    /* [proxy] */
    {"[proxy]\nlisten = 127.0.0.1:0\n", 2, HOSTPORT_MSG("listen", "127.0.0.1:0")},
    {"[proxy]\nlisten =\n", 2, HOSTPORT_MSG("listen", "")},
    {"[proxy]\nunixsocketperm = 0800\n", 2,
     "unixsocketperm: must be an octal mode in 0000..0777 (got '0800')"},
    {"[proxy]\nunixsocketperm = 1777\n", 2,
     "unixsocketperm: must be an octal mode in 0000..0777 (got '1777')"},
    {"[proxy]\nrequirepass = \"topsecret\\x01\"\n", 2,
     "requirepass: must not contain control characters"},
    {"[proxy]\ndefault = -bad name\n", 2, "default: must be a node name (got '-bad name')"},
    {"[proxy]\ndefault = proxy\n", 2, "default: must be a node name (got 'proxy')"},
    {"[proxy]\nmax-bulk = 5g\n", 2, SIZE_MSG("max-bulk", "1..4g", "5g")},
    {"[proxy]\nmax-bulk = 12x\n", 2, SIZE_MSG("max-bulk", "1..4g", "12x")},
    {"[proxy]\nmax-bulk = 0\n", 2, SIZE_MSG("max-bulk", "1..4g", "0")},
    {"[proxy]\nmax-args = 1k\n", 2, RANGE_MSG("max-args", "1..1073741824", "1k")},
    {"[proxy]\nmax-inline = 2g\n", 2, SIZE_MSG("max-inline", "1..1g", "2g")},
    {"[proxy]\nmax-clients = 0\n", 2, RANGE_MSG("max-clients", "1..1000000", "0")},
    {"[proxy]\nmax-pinned = 100001\n", 2, RANGE_MSG("max-pinned", "1..100000", "100001")},
    {"[proxy]\njob-links = 2000\n", 2, RANGE_MSG("job-links", "1..1024", "2000")},
    {"[proxy]\nconnect-timeout = 0\n", 2, RANGE_MSG("connect-timeout", "1..600000", "0")},
    {"[proxy]\nping-interval = 50\n", 2, RANGE_MSG("ping-interval", "100..3600000", "50")},
    {"[proxy]\nbackoff-max = 1.5\n", 2, RANGE_MSG("backoff-max", "1..3600000", "1.5")},
    {"[proxy]\nshutdown-timeout = -1\n", 2, RANGE_MSG("shutdown-timeout", "0..3600000", "-1")},
    {"[proxy]\nnode-timeout = 50\n", 2, RANGE_MSG("node-timeout", "100..3600000", "50")},
    {"[proxy]\nmax-lanes = 0\n", 2, RANGE_MSG("max-lanes", "1..64", "0")},
    {"[proxy]\nlane-busy = 0\n", 2, RANGE_MSG("lane-busy", "1..3600000", "0")},
    {"[proxy]\npool-size = -1\n", 2, RANGE_MSG("pool-size", "0..100000", "-1")},
    {"[proxy]\npool-idle = 10\n", 2, RANGE_MSG("pool-idle", "100..3600000", "10")},
    {"[proxy]\nclient-output-limit = 65g\n", 2, SIZE_MSG("client-output-limit", "0..64g", "65g")},
    {"[proxy]\nclient-query-limit = lots\n", 2, SIZE_MSG("client-query-limit", "0..64g", "lots")},
    {"[proxy]\nlog-level = verbose\n", 2,
     "log-level: must be one of error, warn, info, debug (got 'verbose')"},
    {"[proxy]\nlog-file = \"a\\x02b\"\n", 2,
     "log-file: must not contain control characters (got 'a?b')"},
    /* nodes */
    {"[n]\naddress =\n", 2, "address: must be a host name or an IP address (got '')"},
    {"[n]\naddress = \"a b\"\n", 2, "address: must be a host name or an IP address (got 'a b')"},
    {"[n]\nport = 0\n", 2, RANGE_MSG("port", "1..65535", "0")},
    {"[n]\nport = 65536\n", 2, RANGE_MSG("port", "1..65535", "65536")},
    {"[n]\nport = abc\n", 2, RANGE_MSG("port", "1..65535", "abc")},
    {"[n]\nport = 99999999999999999999999\n", 2,
     RANGE_MSG("port", "1..65535", "99999999999999999999999")},
    {"[n]\nport =\n", 2, RANGE_MSG("port", "1..65535", "")},
    {"[n]\ntls = maybe\n", 2, BOOL_MSG("tls", "maybe")},
    {"[n]\ntls-verify = sha1:00\n", 2,
     "tls-verify: must be none, ca:FILE or sha256:HEX (got 'sha1:00')"},
    {"[n]\ntls-verify = sha256:abcd\n", 2,
     "tls-verify: sha256: needs 64 hex digits (':' allowed) (got 'sha256:abcd')"},
    {"[n]\ntls-verify = sha256:" SHA_HEX "00\n", 2,
     "tls-verify: sha256: needs 64 hex digits (':' allowed) (got "
     "'sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccdde...')"},
    {"[n]\ntls-verify = ca:\n", 2, "tls-verify: ca: needs a file name (got 'ca:')"},
    {"[n]\nsecret = \"topsecret\\x01\"\n", 2, "secret: must not contain control characters"},
    {"[n]\ndb = 1001\n", 2, RANGE_MSG("db", "0..1000", "1001")},
    {"[n]\ndb = -1\n", 2, RANGE_MSG("db", "0..1000", "-1")},
    {"[n]\npassword = \"topsecret\\x7f\"\n", 2, "password: must not contain control characters"},
    {"[n]\nlisten = 127.0.0.1\n", 2, HOSTPORT_MSG("listen", "127.0.0.1")},
    {"[n]\nlisten = ::1:80\n", 2, HOSTPORT_MSG("listen", "::1:80")},
    {"[n]\nisvbox = 2\n", 2, BOOL_MSG("isvbox", "2")},
    {"[n]\nsshkey = \"k\\x1b\"\n", 2, "sshkey: must not contain control characters (got 'k?')"},
    /* keys in the wrong place */
    {"[proxy]\nfoo = 1\n", 2, "foo: unknown key in [proxy]"},
    {"[app]\nport = 1\n", 2, "port: unknown key in [app]"},
    {"[app]\nsecret = topsecret\n", 2, "secret: unknown key in [app]"},
    {"[n]\nmax-bulk = 1m\n", 2, "max-bulk: unknown key in [n]"},
    {"[n]\nsecert = topsecret\n", 2, "secert: unknown key in [n]"},
    {"debug = true\n[app]\n", 1, "debug: key outside of any [section]"},
    {"[n]\nport = 1\nport = 2\n", 3, "port: duplicate key (first at line 2)"},
    {"[n]\nsecret = topsecret\nSecret = topsecret\n", 3, "secret: duplicate key (first at line 2)"},
    /* sections */
    {"[a]\n[b]\n[a]\n", 3, "duplicate section [a] (first at line 1)"},
    {"[app]\n[app]\n", 2, "duplicate section [app] (first at line 1)"},
    {"[proxy]\n\n[proxy]\n", 3, "duplicate section [proxy] (first at line 1)"},
    {"[a b]\n", 1, "bad section name [a b]: use 1..64 letters, digits, '-', '_' or '.'"},
    {"[]\n", 1, "bad section name []: use 1..64 letters, digits, '-', '_' or '.'"},
    {"[n/1]\n", 1, "bad section name [n/1]: use 1..64 letters, digits, '-', '_' or '.'"},
    {"[App]\n", 1, "bad section name [App]: app and proxy are reserved"},
    {"[PROXY]\n", 1, "bad section name [PROXY]: app and proxy are reserved"},
    {"[n\nport = 1\n", 1, "missing ']' in section header"},
    {"[n] x\n", 1, "unexpected text after ']'"},
    /* syntax, and which error comes first */
    {"[n]\nport = 1\ngarbage\n", 3, SYNTAX_MSG},
    {"[n]\nsecret topsecret\n", 2, SYNTAX_MSG},
    {"[n]\n\n\n; c\n# c\n  bogus line\nport = 70000\n", 6, SYNTAX_MSG},
    {"[n]\nbogus\n[n]\n", 2, SYNTAX_MSG},
    {"[n]\nport = 70000\nbogus\n", 2, RANGE_MSG("port", "1..65535", "70000")},
    {"[n]\nfoo ; = 1\n", 2, SYNTAX_MSG},
    {"[n]\n= 5\n", 2, "missing key name before '='"},
    {"[n]\naddress = \"127.0.0.1\n", 2, "address: unterminated quoted value"},
    {"[n]\nsecret = \"topsecret\n", 2, "secret: unterminated quoted value"},
    {"[n]\naddress = \"127.0.0.1\" x\n", 2, "address: unexpected text after the closing quote"},
    /* across keys */
    {"[app]\ndefaultzos = nope\n[n]\n", 2, "defaultzos: no node named 'nope'"},
    {"[n]\n[proxy]\n\ndefault = nope\n", 4, "default: no node named 'nope'"},
    {"[a]\nlisten = 127.0.0.1:4445\n[b]\nport = 1\nlisten = 127.0.0.1:4445\n", 5,
     "listen: 127.0.0.1:4445 in [b] is already used by [a]"},
    {"[a]\nlisten = LOCALHOST:4445\n[b]\nlisten = localhost:4445\n", 4,
     "listen: localhost:4445 in [b] is already used by [a]"},
    {"[a]\nlisten = 127.0.0.1:6380\n", 2,
     "listen: 127.0.0.1:6380 in [a] is also the [proxy] listen address"},
    {"[a]\nlisten = 127.0.0.1:7000\n[proxy]\nlisten = 127.0.0.1:7000\n", 2,
     "listen: 127.0.0.1:7000 in [a] is also the [proxy] listen address"},
};

static void test_error_messages(void **state)
{
    char expect[2048];

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct zos_conf *c = load_text(bc->text);
        if (c != NULL)
            print_error("case %zu loaded: %s", i, bc->text);
        assert_null(c);
        snprintf(expect, sizeof(expect), "%s:%d: %s", path, bc->line, bc->msg);
        assert_string_equal(err, expect);
        assert_null(strstr(err, "topsecret"));
    }
}

/* Long values are cut in messages; a 65-character section name is refused. */
static void test_long_values_in_messages(void **state)
{
    char text[512], expect[2048], name[66];
    struct zos_conf *c;

    memset(name, 'y', 65);
    name[65] = '\0';
    snprintf(text, sizeof(text), "[proxy]\nunixsocket = /%0120d\n", 0);
    assert_null(load_text(text));
    snprintf(expect, sizeof(expect),
             "%s:2: unixsocket: path too long for a unix socket (got '/%067d...')", path, 0);
    assert_string_equal(err, expect);

    snprintf(text, sizeof(text), "[%s]\n", name);
    assert_null(load_text(text));
    snprintf(expect, sizeof(expect),
             "%s:1: bad section name [%s]: use 1..64 letters, digits, '-', '_' or '.'", path, name);
    assert_string_equal(err, expect);

    name[64] = '\0';
    snprintf(text, sizeof(text), "[%s]\n", name);
    c = load_text(text);
    assert_non_null(c);
    assert_string_equal(c->nodes[0].name, name);
    zos_conf_free(c);
}

static void test_nul_byte(void **state)
{
    char expect[2048];

    write_bytes("nul.toml", "[n]\nport = 1\0 2\n", 15);
    assert_null(zos_conf_load(path, err, sizeof(err)));
    snprintf(expect, sizeof(expect), "%s:2: NUL byte in line", path);
    assert_string_equal(err, expect);
}

static void test_unreadable_file(void **state)
{
    char p[256], expect[1024];

    snprintf(p, sizeof(p), "%s/missing.toml", tmpdir);
    assert_null(zos_conf_load(p, err, sizeof(err)));
    snprintf(expect, sizeof(expect), "%s: No such file or directory", p);
    assert_string_equal(err, expect);

    assert_null(zos_conf_load(tmpdir, err, sizeof(err)));
    snprintf(expect, sizeof(expect), "%s: Is a directory", tmpdir);
    assert_string_equal(err, expect);

    if (geteuid() != 0) { /* root reads anything */
        write_file("noperm.toml", "[n]\n");
        assert_int_equal(chmod(path, 0), 0);
        assert_null(zos_conf_load(path, err, sizeof(err)));
        snprintf(expect, sizeof(expect), "%s: Permission denied", path);
        assert_string_equal(err, expect);
    }
    assert_null(zos_conf_load(p, NULL, 0)); /* no room for a message is fine */
}

/* Lines past inih's 200-byte buffer keep their line numbers and their text. */
static void test_long_lines(void **state)
{
    char text[2048], expect[2048];
    struct zos_conf *c;

    snprintf(text, sizeof(text), "# %0500d\n[n]\n; %0300d = x\nport = 2 ; %0400d\n", 0, 0, 0);
    c = load_text(text);
    assert_non_null(c);
    assert_int_equal(c->nodes[0].port, 2);
    assert_int_equal(c->nodes[0].line, 2);
    zos_conf_free(c);

    snprintf(text, sizeof(text), "[n]\n%0300d\nport = 1\n", 0);
    assert_null(load_text(text));
    snprintf(expect, sizeof(expect), "%s:2: %s", path, SYNTAX_MSG);
    assert_string_equal(err, expect);

    snprintf(text, sizeof(text), "[n]\nsshkey = /%0400d\nport = 0\n", 0);
    assert_null(load_text(text));
    snprintf(expect, sizeof(expect), "%s:3: port: must be 1..65535 (got '0')", path);
    assert_string_equal(err, expect);
}

/* conf/zos.toml loads, and so does it with every commented-out ";key = value" enabled. */
static void test_example_config(void **state)
{
    static const char example[] = "conf/zos.toml";
    char line[1024], *text = NULL;
    size_t len = 0;
    FILE *in = fopen(example, "r"), *out;
    struct zos_conf *c;
    int enabled = 0;

    if (in == NULL)
        skip(); /* not run from the top of the source tree */
    c = zos_conf_load(example, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    zos_conf_free(c);
    out = open_memstream(&text, &len);
    assert_non_null(out);
    while (fgets(line, sizeof(line), in) != NULL) {
        bool setting = line[0] == ';' && line[1] >= 'a' && line[1] <= 'z';
        enabled += setting;
        fputs(line + setting, out);
    }
    fclose(in);
    fclose(out);
    assert_true(enabled >= 10);
    c = load_text(text);
    free(text);
    if (c == NULL)
        fail_msg("%s", err);
    assert_non_null(c->proxy.unixsocket);
    zos_conf_free(c);
}

/* ---- set, remove, save ---- */

static void test_set_errors(void **state)
{
    struct zos_conf *c = zos_conf_new();

    assert_int_equal(zos_conf_set(c, "n", "port", "4444", err, sizeof(err)), 0);
    assert_int_equal(c->nnodes, 1);

    assert_int_equal(zos_conf_set(c, "proxy", "foo", "1", err, sizeof(err)), -1);
    assert_string_equal(err, "foo: unknown key in [proxy]");
    assert_int_equal(zos_conf_set(c, "n", "port", "0", err, sizeof(err)), -1);
    assert_string_equal(err, "port: must be 1..65535 (got '0')");
    assert_int_equal(c->nodes[0].port, 4444);

    /* a node is not created by a set that fails */
    assert_int_equal(zos_conf_set(c, "new", "port", "x", err, sizeof(err)), -1);
    assert_string_equal(err, "port: must be 1..65535 (got 'x')");
    assert_int_equal(zos_conf_set(c, "new", "bogus", "1", err, sizeof(err)), -1);
    assert_string_equal(err, "bogus: unknown key in [new]");
    assert_null(zos_conf_node(c, "new"));
    assert_int_equal(zos_conf_set(c, "a b", "port", "1", err, sizeof(err)), -1);
    assert_string_equal(err, "bad section name [a b]: use 1..64 letters, digits, '-', '_' or '.'");
    assert_int_equal(zos_conf_set(c, "App", "port", "1", err, sizeof(err)), -1);
    assert_string_equal(err, "bad section name [App]: app and proxy are reserved");
    assert_int_equal(c->nnodes, 1);

    assert_int_equal(zos_conf_set(c, "n", "secret", "topsecret\n", err, sizeof(err)), -1);
    assert_string_equal(err, "secret: must not contain control characters");
    assert_null(c->nodes[0].secret);

    /* checks across keys undo the change */
    assert_int_equal(zos_conf_set(c, "app", "defaultzos", "nope", err, sizeof(err)), -1);
    assert_string_equal(err, "defaultzos: no node named 'nope'");
    assert_null(c->app.defaultzos);
    assert_int_equal(zos_conf_set(c, "n", "listen", "127.0.0.1:4445", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_set(c, "m", "listen", "127.0.0.1:4445", err, sizeof(err)), -1);
    assert_string_equal(err, "listen: 127.0.0.1:4445 in [m] is already used by [n]");
    assert_null(zos_conf_node(c, "m"));
    assert_int_equal(zos_conf_set(c, "n", "listen", "127.0.0.1:6380", err, sizeof(err)), -1);
    assert_string_equal(err, "listen: 127.0.0.1:6380 in [n] is also the [proxy] listen address");
    assert_string_equal(c->nodes[0].listen, "127.0.0.1:4445");
    assert_int_equal(zos_conf_set(c, "proxy", "listen", "127.0.0.1:4445", err, sizeof(err)), -1);
    assert_string_equal(c->proxy.listen, "127.0.0.1:6380");
    zos_conf_free(c);
}

static void test_set_defaults_and_remove(void **state)
{
    struct zos_conf *c = zos_conf_new();
    struct zos_node_conf *n;

    assert_int_equal(zos_conf_set(c, "a", "address", "h", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_set(c, "b", "port", "1", err, sizeof(err)), 0);
    assert_null(zos_conf_default_node(c)); /* two nodes, no default */
    assert_int_equal(zos_conf_set(c, "app", "defaultzos", "b", err, sizeof(err)), 0);
    assert_string_equal(zos_conf_default_node(c)->name, "b");
    assert_int_equal(zos_conf_set(c, "proxy", "default", "a", err, sizeof(err)), 0);
    assert_string_equal(zos_conf_default_node(c)->name, "a");

    n = zos_conf_node(c, "b");
    assert_int_equal(zos_conf_set(c, "b", "secret", "s", err, sizeof(err)), 0);
    assert_string_equal(n->secret, "s");
    assert_int_equal(zos_conf_set(c, "b", "secret", "", err, sizeof(err)), 0);
    assert_null(n->secret);
    assert_int_equal(zos_conf_set(c, "b", "secret", "s", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_set(c, "b", "secret", NULL, err, sizeof(err)), 0);
    assert_null(n->secret);
    assert_int_equal(zos_conf_set(c, "b", "port", NULL, err, sizeof(err)), 0);
    assert_int_equal(n->port, 6379);
    assert_int_equal(zos_conf_set(c, "b", "tls-verify", "ca:/x", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_set(c, "b", "tls-verify", NULL, err, sizeof(err)), 0);
    assert_int_equal(n->verify, ZOS_TLS_VERIFY_NONE);
    assert_null(n->verify_ca);
    assert_int_equal(zos_conf_set(c, "proxy", "max-bulk", "1m", err, sizeof(err)), 0);
    assert_int_equal(c->proxy.max_bulk, 1 << 20);
    assert_int_equal(zos_conf_set(c, "proxy", "max-bulk", NULL, err, sizeof(err)), 0);
    assert_int_equal(c->proxy.max_bulk, 512 << 20);

    /* removing a node that is a default clears that default */
    assert_int_equal(zos_conf_remove_node(c, "a"), 0);
    assert_null(c->proxy.default_node);
    assert_string_equal(zos_conf_default_node(c)->name, "b"); /* the only node */
    assert_int_equal(zos_conf_remove_node(c, "b"), 0);
    assert_null(c->app.defaultzos);
    assert_int_equal(c->nnodes, 0);
    assert_int_equal(zos_conf_remove_node(c, "b"), -1);
    assert_null(zos_conf_default_node(c));
    zos_conf_free(c);
}

static void test_save_format(void **state)
{
    struct zos_conf *c = zos_conf_new();
    char p[256];

    snprintf(p, sizeof(p), "%s/format.toml", tmpdir);
    assert_int_equal(zos_conf_set(c, "n", "port", "4444", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_save(c, p, err, sizeof(err)), 0);
    assert_string_equal(read_all(p), "[app]\ndebug = false\n\n[n]\naddress = 127.0.0.1\n"
                                     "port = 4444\n");
    zos_conf_free(c);

    /* the original tool's file comes back the same, minus its quotes */
    c = load_text("[app]\ndebug=false\ndefaultzos=local\n\n[local]\naddress=\"127.0.0.1\"\n"
                  "port=4444\nisvbox=true\n");
    assert_non_null(c);
    assert_int_equal(zos_conf_save(c, NULL, err, sizeof(err)), 0);
    assert_string_equal(read_all(path), "[app]\ndebug = false\ndefaultzos = local\n\n[local]\n"
                                        "address = 127.0.0.1\nport = 4444\nisvbox = true\n");
    zos_conf_free(c);

    c = zos_conf_new();
    assert_int_equal(zos_conf_set(c, "proxy", "max-inline", "1024", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_set(c, "proxy", "unixsocketperm", "750", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_set(c, "app", "debug", "yes", err, sizeof(err)), 0);
    assert_int_equal(zos_conf_save(c, p, err, sizeof(err)), 0);
    assert_string_equal(read_all(p), "[app]\ndebug = true\n\n[proxy]\nunixsocketperm = 0750\n"
                                     "max-inline = 1k\n");
    zos_conf_free(c);
}

static void set_ok(struct zos_conf *c, const char *section, const char *key, const char *value)
{
    if (zos_conf_set(c, section, key, value, err, sizeof(err)) != 0)
        fail_msg("set [%s] %s: %s", section, key, err);
}

static void assert_same_node(const struct zos_node_conf *a, const struct zos_node_conf *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->address, b->address);
    assert_int_equal(a->port, b->port);
    assert_int_equal(a->tls, b->tls);
    assert_int_equal(a->verify, b->verify);
    if (a->verify == ZOS_TLS_VERIFY_SHA256)
        assert_memory_equal(a->verify_sha256, b->verify_sha256, 32);
    if (a->verify == ZOS_TLS_VERIFY_CA)
        assert_string_equal(a->verify_ca, b->verify_ca);
    assert_string_equal(a->secret ? a->secret : "(null)", b->secret ? b->secret : "(null)");
    assert_int_equal(a->db, b->db);
    assert_string_equal(a->password ? a->password : "(null)", b->password ? b->password : "(null)");
    assert_string_equal(a->listen ? a->listen : "(null)", b->listen ? b->listen : "(null)");
    assert_int_equal(a->isvbox, b->isvbox);
    assert_string_equal(a->sshkey ? a->sshkey : "(null)", b->sshkey ? b->sshkey : "(null)");
}

/* Values needing quotes, a long secret and every type survive save + load;
 * the file is 0600 and its new parent directories 0700 whatever the umask. */
static void test_save_load_round_trip(void **state)
{
    static const char *const tricky[] = {
        "  lead and trail\t", "semi;colon",           "a ;comment", "hash#tag",
        "say \"hi\"",         "back\\slash \\\" mix", "\"quoted\"", "tab\there",
        "ünïcode ;x",         "a \\x41 \\'",          "c:\\x41",    "trail\\",
    };
    struct zos_conf *c = zos_conf_new(), *d;
    char p[512], q[256], dir[256], secret[401], first[8192], name[16];
    struct stat st;
    mode_t old_umask;

    memset(secret, 'J', 400);
    secret[400] = '\0';
    set_ok(c, "local", "address", "10.1.2.3");
    set_ok(c, "local", "port", "4444");
    set_ok(c, "local", "secret", secret);
    set_ok(c, "local", "password", "p w ; #");
    set_ok(c, "local", "tls", "no");
    set_ok(c, "local", "tls-verify", "sha256:" SHA_HEX);
    set_ok(c, "local", "listen", "[::1]:4445");
    set_ok(c, "local", "sshkey", "/home/u/my keys/id");
    set_ok(c, "local", "db", "2");
    set_ok(c, "local", "isvbox", "yes");
    set_ok(c, "other", "tls-verify", "ca:/etc/my ca.pem");
    for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
        snprintf(name, sizeof(name), "t%zu", i);
        set_ok(c, name, "password", tricky[i]);
    }
    set_ok(c, "app", "defaultzos", "local");
    set_ok(c, "app", "debug", "on");
    set_ok(c, "app", "proxy", "127.0.0.1:6380");
    set_ok(c, "proxy", "requirepass", "#not a comment");
    set_ok(c, "proxy", "max-bulk", "1g");
    set_ok(c, "proxy", "max-args", "100");
    set_ok(c, "proxy", "log-level", "WARN");
    set_ok(c, "proxy", "unixsocket", "/run/zos proxy.sock");

    snprintf(dir, sizeof(dir), "%s/new/sub", tmpdir);
    snprintf(p, sizeof(p), "%s/zos.toml", dir);
    old_umask = umask(0);
    assert_int_equal(zos_conf_save(c, p, err, sizeof(err)), 0);
    umask(old_umask);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(q, sizeof(q), "%s/new", tmpdir);
    assert_int_equal(stat(q, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_null(strstr(read_all(p), "tls-verify = none")); /* defaults are not written */

    d = zos_conf_load(p, err, sizeof(err));
    if (d == NULL)
        fail_msg("load: %s", err);
    assert_int_equal(d->nnodes, c->nnodes);
    for (size_t i = 0; i < c->nnodes; i++)
        assert_same_node(&c->nodes[i], &d->nodes[i]);
    assert_string_equal(zos_conf_node(d, "t0")->password, tricky[0]);
    assert_string_equal(d->app.defaultzos, "local");
    assert_true(d->app.debug);
    assert_string_equal(d->app.proxy, "127.0.0.1:6380");
    assert_string_equal(d->proxy.requirepass, "#not a comment");
    assert_int_equal(d->proxy.max_bulk, 1 << 30);
    assert_int_equal(d->proxy.max_args, 100);
    assert_string_equal(d->proxy.log_level, "warn");
    assert_string_equal(d->proxy.unixsocket, "/run/zos proxy.sock");

    /* saving what was loaded writes the same bytes; an existing file is replaced */
    strcpy(first, read_all(p));
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(zos_conf_save(d, NULL, err, sizeof(err)), 0);
    assert_string_equal(read_all(p), first);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    zos_conf_free(c);
    zos_conf_free(d);
}

static void test_save_errors(void **state)
{
    struct zos_conf *c = zos_conf_new();
    char p[256], expect[1024];

    assert_int_equal(zos_conf_save(c, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "no file to save the config to");

    write_file("plain", "x");
    snprintf(p, sizeof(p), "%s/plain/sub/zos.toml", tmpdir);
    assert_int_equal(zos_conf_save(c, p, err, sizeof(err)), -1);
    snprintf(expect, sizeof(expect), "%s: cannot create directory %s/plain/sub: Not a directory", p,
             tmpdir);
    assert_string_equal(err, expect);

    snprintf(p, sizeof(p), "%s/adir", tmpdir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(zos_conf_save(c, p, err, sizeof(err)), -1);
    snprintf(expect, sizeof(expect), "%s: cannot write: Is a directory", p);
    assert_string_equal(err, expect);
    zos_conf_free(c);
}

/* ---- zos_conf_path ---- */

struct saved_env {
    const char *name;
    char *value;
};

static void test_path_precedence(void **state)
{
    struct saved_env env[] = {{"ZOS_CONFIG", NULL}, {"XDG_CONFIG_HOME", NULL}, {"HOME", NULL}};
    char buf[PATH_MAX], tiny[8];

    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(env[i].name);
        env[i].value = v != NULL ? strdup(v) : NULL;
    }
    unsetenv("ZOS_CONFIG");
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", "/home/u", 1);
    assert_string_equal(zos_conf_path(NULL, buf, sizeof(buf)), "/home/u/.config/zos.toml");
    setenv("XDG_CONFIG_HOME", "", 1);
    assert_string_equal(zos_conf_path(NULL, buf, sizeof(buf)), "/home/u/.config/zos.toml");
    setenv("XDG_CONFIG_HOME", "/xdg", 1);
    assert_string_equal(zos_conf_path(NULL, buf, sizeof(buf)), "/xdg/zos.toml");
    setenv("ZOS_CONFIG", "", 1);
    assert_string_equal(zos_conf_path(NULL, buf, sizeof(buf)), "/xdg/zos.toml");
    setenv("ZOS_CONFIG", "/etc/zos.toml", 1);
    assert_string_equal(zos_conf_path(NULL, buf, sizeof(buf)), "/etc/zos.toml");
    assert_string_equal(zos_conf_path("./my.toml", buf, sizeof(buf)), "./my.toml");
    assert_ptr_equal(zos_conf_path(NULL, buf, sizeof(buf)), buf);
    assert_null(zos_conf_path(NULL, tiny, sizeof(tiny)));

    for (size_t i = 0; i < 3; i++) {
        if (env[i].value != NULL)
            setenv(env[i].name, env[i].value, 1);
        else
            unsetenv(env[i].name);
        free(env[i].value);
    }
}

/* ---- host:port ---- */

static void test_split_hostport(void **state)
{
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:", ":6380", "h:0",  "h:65536", "h:12a", "h:-1", "h:+1",
        "::1:80",    "[::1]6380",  "[::1]", "[]:1", "h :1",    "",      "h:1 ", "[a]b]:1",
    };
    char host[64], tiny[4];
    int port = 0;

    assert_int_equal(zos_conf_split_hostport("127.0.0.1:6380", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(zos_conf_split_hostport("localhost:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 1);
    assert_int_equal(zos_conf_split_hostport("[::1]:6380", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 6380);
    assert_int_equal(zos_conf_split_hostport("node.example.com:65535", host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "node.example.com");
    assert_int_equal(port, 65535);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        port = -7;
        if (zos_conf_split_hostport(bad[i], host, sizeof(host), &port) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(port, -7);
    }
    assert_int_equal(zos_conf_split_hostport(NULL, host, sizeof(host), &port), -1);
    assert_int_equal(zos_conf_split_hostport("abcd:1", tiny, sizeof(tiny), &port), -1);
    assert_int_equal(zos_conf_split_hostport("abc:1", tiny, sizeof(tiny), &port), 0);
    assert_string_equal(tiny, "abc");
}

static void test_is_loopback(void **state)
{
    static const char *const yes[] = {"127.0.0.1", "127.255.0.3",     "::1", "[::1]", "localhost",
                                      "LocalHost", "::ffff:127.0.0.1"};
    static const char *const no[] = {"128.0.0.1",   "0.0.0.0", "10.0.0.1",
                                     "::",          "",        "example.com",
                                     "localhost.x", "::2",     "::ffff:10.0.0.1"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!zos_conf_is_loopback(yes[i]))
            fail_msg("'%s' is loopback", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (zos_conf_is_loopback(no[i]))
            fail_msg("'%s' is not loopback", no[i]);
    assert_false(zos_conf_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_of_one_node),
        cmocka_unit_test(test_new_has_defaults_and_no_node),
        cmocka_unit_test(test_original_tool_file),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_sha256_with_colons),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_long_values_in_messages),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_set_defaults_and_remove),
        cmocka_unit_test(test_save_format),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_path_precedence),
        cmocka_unit_test(test_split_hostport),
        cmocka_unit_test(test_is_loopback),
        cmocka_unit_test(test_example_config),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

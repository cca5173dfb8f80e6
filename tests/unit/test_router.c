/* test_router.c -- unit tests of router: the class of every command (each
 * route class, refusals included), the table zos_router_route searches
 * (sorted, no duplicate), node lookup, and the choice of a lane and of a
 * pinned link, over links attached to bufferevent pairs (no network).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "router.h"
#include "zos/conf.h"
#include "zos/link.h"
#include "zos/zos.h"

#include "testutil.h"

/* ---- command classes ---- */

struct route_case {
    const char *name;
    enum zos_route route;
};

/* At least one command of every class the table gives, and commands it
 * must leave to the shared link (plain, keyless, multi-key, node and proxy
 * commands alike: the router does not tell those apart). */
static const struct route_case cases[] = {
    {"GET", ZOS_ROUTE_SHARED},
    {"set", ZOS_ROUTE_SHARED},
    {"MGET", ZOS_ROUTE_SHARED},
    {"mset", ZOS_ROUTE_SHARED},
    {"PING", ZOS_ROUTE_SHARED},
    {"DBSIZE", ZOS_ROUTE_SHARED},
    {"CLIENT", ZOS_ROUTE_SHARED}, /* TRACKING is decided on its arguments, not here */
    {"ZOS.NODES", ZOS_ROUTE_SHARED},
    {"EVAL", ZOS_ROUTE_SHARED},
    {"BLPOP", ZOS_ROUTE_BLOCKING},
    {"brpop", ZOS_ROUTE_BLOCKING},
    {"BRPOPLPUSH", ZOS_ROUTE_BLOCKING},
    {"BLMOVE", ZOS_ROUTE_BLOCKING},
    {"blmpop", ZOS_ROUTE_BLOCKING},
    {"BZPOPMIN", ZOS_ROUTE_BLOCKING},
    {"bzpopmax", ZOS_ROUTE_BLOCKING},
    {"BZMPOP", ZOS_ROUTE_BLOCKING},
    {"WAIT", ZOS_ROUTE_BLOCKING},
    {"WaitAof", ZOS_ROUTE_BLOCKING},
    {"MULTI", ZOS_ROUTE_MULTI},
    {"EXEC", ZOS_ROUTE_ENDMULTI},
    {"discard", ZOS_ROUTE_ENDMULTI},
    {"WATCH", ZOS_ROUTE_WATCH},
    {"UNWATCH", ZOS_ROUTE_UNWATCH},
    {"SELECT", ZOS_ROUTE_SELECT},
    {"SUBSCRIBE", ZOS_ROUTE_PUBSUB},
    {"psubscribe", ZOS_ROUTE_PUBSUB},
    {"SSUBSCRIBE", ZOS_ROUTE_PUBSUB},
    {"UNSUBSCRIBE", ZOS_ROUTE_UNSUB},
    {"PUNSUBSCRIBE", ZOS_ROUTE_UNSUB},
    {"sunsubscribe", ZOS_ROUTE_UNSUB},
    {"MONITOR", ZOS_ROUTE_MONITOR},
    {"XREAD", ZOS_ROUTE_XREAD},
    {"xreadgroup", ZOS_ROUTE_XREAD},
    {"SYNC", ZOS_ROUTE_REFUSED},
    {"PSYNC", ZOS_ROUTE_REFUSED},
    {"replconf", ZOS_ROUTE_REFUSED},
    /* near misses and the length bounds */
    {"BLPO", ZOS_ROUTE_SHARED},
    {"BLPOPX", ZOS_ROUTE_SHARED},
    {"SUBSCRIBEX", ZOS_ROUTE_SHARED},
    {"PUBLISH", ZOS_ROUTE_SHARED},
    {"", ZOS_ROUTE_SHARED},
    {"EXE", ZOS_ROUTE_SHARED},
    {"BRPOPLPUSHBRPOPLPUSH", ZOS_ROUTE_SHARED},
};

static void test_route_every_class(void **state)
{
    bool classes[ZOS_ROUTE_TRACKING + 1] = {false};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum zos_route got = zos_router_route(cases[i].name, strlen(cases[i].name));
        if (got != cases[i].route)
            fail_msg("%s: class %d, want %d", cases[i].name, got, cases[i].route);
        classes[got] = true;
    }
    /* Every class but TRACKING (never from the table) has a case above. */
    for (int c = ZOS_ROUTE_SHARED; c < ZOS_ROUTE_TRACKING; c++)
        if (!classes[c])
            fail_msg("class %d has no case", c);
}

/* NAME is LEN bytes, not a C string: what follows does not count. */
static void test_route_reads_len_bytes_only(void **state)
{
    assert_int_equal(zos_router_route("BLPOPPED", 5), ZOS_ROUTE_BLOCKING);
    assert_int_equal(zos_router_route("EXECUTE", 4), ZOS_ROUTE_ENDMULTI);
    assert_int_equal(zos_router_route("SELECT", 5), ZOS_ROUTE_SHARED); /* "SELEC" */
}

/* The table is sorted (bsearch needs it, case-blind as the lookup), has no
 * duplicate, holds lower-case names of 4 to 15 letters (what
 * zos_router_route's length check assumes), and each entry is found. */
static void test_route_table_sorted_unique(void **state)
{
    const char *name, *prev = NULL;
    enum zos_route route;
    size_t n = 0;
    for (; zos_router_route_entry(n, &name, &route); n++) {
        size_t len = strlen(name);
        assert_true(len >= 4 && len <= 15);
        for (size_t k = 0; k < len; k++)
            assert_true(name[k] >= 'a' && name[k] <= 'z');
        if (prev != NULL && strcasecmp(prev, name) >= 0)
            fail_msg("'%s' is not after '%s'", name, prev);
        assert_int_equal(zos_router_route(name, len), route);
        assert_int_not_equal(route, ZOS_ROUTE_SHARED); /* absent means shared */
        char upper[16];
        for (size_t k = 0; k <= len; k++)
            upper[k] = (char)(name[k] >= 'a' ? name[k] - 32 : name[k]);
        assert_int_equal(zos_router_route(upper, len), route);
        prev = name;
    }
    assert_true(n >= 28);
    assert_false(zos_router_route_entry(n, &name, &route));
}

/* ---- the node table ---- */

struct fx {
    struct event_base *base;
    struct zos_conf *conf;
    struct zos_router *r;
    struct tu_peer *peers[16];
    size_t npeers;
};

static struct fx F;

static void set(const char *section, const char *key, const char *value)
{
    char err[200];
    if (zos_conf_set(F.conf, section, key, value, err, sizeof(err)) != 0)
        fail_msg("%s.%s=%s: %s", section, key, value, err);
}

static void fx_setup(void)
{
    char err[200], port[16];
    memset(&F, 0, sizeof(F));
    F.base = event_base_new();
    F.conf = zos_conf_new();
    assert_true(F.base != NULL && F.conf != NULL);
    tu_sfmt(port, sizeof(port), "%d", tu_free_port()); /* nothing listens: never connected */
    const char *names[] = {"alpha", "beta", "gamma"};
    for (int i = 0; i < 3; i++) {
        set(names[i], "address", "127.0.0.1");
        set(names[i], "port", port);
        set(names[i], "tls", "no");
    }
    set("gamma", "db", "2");
    set("proxy", "default", "beta");
    set("proxy", "max-lanes", "2");
    set("proxy", "lane-busy", "3600000"); /* busy only for a big backlog, never for age */
    set("proxy", "max-pinned", "2");
    set("proxy", "pool-size", "1");
    F.r = zos_router_new(F.base, NULL, F.conf, err, sizeof(err));
    if (F.r == NULL)
        fail_msg("%s", err);
}

static void fx_teardown(void)
{
    zos_router_free(F.r);
    for (size_t i = 0; i < F.npeers; i++)
        tu_peer_free(F.peers[i]);
    zos_conf_free(F.conf);
    tu_loop_settle(F.base); /* callbacks still deferred hold their bufferevents */
    event_base_free(F.base);
}

static struct zos_node *node(const char *name)
{
    struct zos_node *n = zos_router_node(F.r, name, strlen(name));
    assert_non_null(n);
    return n;
}

/* L (IDLE) connected to a scripted node that answers its handshake: READY. */
static struct tu_peer *connect_link(struct zos_link *l)
{
    struct bufferevent *end;
    struct tu_peer *p = tu_peer_pair(F.base, &end, NULL, NULL);
    assert_true(p != NULL && F.npeers < 16);
    F.peers[F.npeers++] = p;
    assert_int_equal(zos_link_attach(l, end), ZOS_OK);
    tu_loop_settle(F.base);
    for (size_t i = 0; i < tu_peer_count(p); i++)
        tu_peer_say(p, strcmp(tu_peer_cmd(p, i), "PING") == 0 ? "+PONG\r\n" : "+OK\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_state(l), ZOS_LINK_READY);
    return p;
}

static void ignore_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
}

static void send_get(struct zos_link *l)
{
    const char *argv[] = {"GET", "k"};
    size_t lens[] = {3, 1};
    assert_int_equal(zos_link_send_argv(l, 2, argv, lens, ignore_cb, NULL), ZOS_OK);
}

/* More than a MiB the node does not read: the link is busy. */
static void make_busy(struct tu_peer *p, struct zos_link *l)
{
    static char big[1100 * 1024];
    const char *argv[] = {"SET", "k", big};
    size_t lens[] = {3, 1, sizeof(big)};
    bufferevent_disable(tu_peer_bev(p), EV_READ);
    assert_int_equal(zos_link_send_argv(l, 3, argv, lens, ignore_cb, NULL), ZOS_OK);
    assert_true(zos_link_busy(l, 3600000));
}

static void lanes_are(struct zos_node *n, const char *want)
{
    char buf[200];
    zos_router_lanes_text(n, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_node_lookup(void **state)
{
    fx_setup();
    assert_int_equal(F.r->nnodes, 3);
    for (size_t i = 0; i < 3; i++) {
        struct zos_node *n = F.r->nodes[i];
        assert_ptr_equal(node(n->conf->name), n); /* in the config's order */
        assert_ptr_equal(n->router, F.r);
        assert_ptr_equal(n->shared, n->lanes->link);
        assert_int_equal(zos_link_state(n->shared), ZOS_LINK_IDLE); /* nothing connects early */
    }
    assert_string_equal(node("beta")->conf->name, "beta");
    assert_ptr_equal(zos_router_node(F.r, "betamax", 4), node("beta")); /* LEN bytes */
    assert_null(zos_router_node(F.r, "bet", 3));
    assert_null(zos_router_node(F.r, "delta", 5));
    assert_null(zos_router_node(F.r, "", 0));
    assert_ptr_equal(F.r->default_node, node("beta"));
    assert_int_equal(zos_router_db(node("alpha"), -1), 0);
    assert_int_equal(zos_router_db(node("gamma"), -1), 2);
    assert_int_equal(zos_router_db(node("gamma"), 5), 5);
    fx_teardown();
}

/* Lanes are keyed by (db, protocol): clients of different dbs or protocols
 * never share one; the same key gets the same lane while it is free. */
static void test_lane_per_db_and_protocol(void **state)
{
    fx_setup();
    struct zos_node *n = node("alpha");
    assert_ptr_equal(zos_router_lane(F.r, n, -1, false, false), n->shared);
    assert_ptr_equal(zos_router_lane(F.r, n, 0, false, false), n->shared); /* its own db */
    struct zos_link *db3 = zos_router_lane(F.r, n, 3, false, false);
    assert_true(db3 != NULL && db3 != n->shared);
    assert_ptr_equal(zos_router_lane(F.r, n, 3, false, false), db3);
    struct zos_link *r3 = zos_router_lane(F.r, n, -1, true, false);
    assert_true(r3 != NULL && r3 != n->shared && r3 != db3);
    assert_ptr_equal(zos_router_lane(F.r, n, 0, true, false), r3);
    lanes_are(n, "lanes_db0=1,lanes_db3=1,lanes_db0_resp3=1");
    struct zos_node *g = node("gamma"); /* its own db is 2 */
    assert_ptr_equal(zos_router_lane(F.r, g, 2, false, false), g->shared);
    lanes_are(g, "lanes_db2=1");
    fx_teardown();
}

/* A heavy request gets an idle lane, or a new one, up to max-lanes; other
 * requests keep off a lane a big reply is coming on; past max-lanes the
 * least loaded lane. */
static void test_lane_heavy_busy_and_bound(void **state)
{
    fx_setup();
    struct zos_node *n = node("alpha");
    struct tu_peer *p1 = connect_link(n->shared);
    send_get(n->shared); /* never answered: a request in flight */
    tu_loop_settle(F.base);

    /* Heavy: the first lane has a request in flight, so a second lane. */
    struct zos_link *l2 = zos_router_lane(F.r, n, -1, false, true);
    assert_true(l2 != NULL && l2 != n->shared);
    lanes_are(n, "lanes_db0=2");
    struct tu_peer *p2 = connect_link(l2);
    send_get(l2);
    tu_loop_settle(F.base);
    /* Plain: the first lane is not busy, the heavy one is kept off. */
    assert_ptr_equal(zos_router_lane(F.r, n, -1, false, false), n->shared);

    /* Both busy, max-lanes 2: no third lane, the least loaded one. */
    make_busy(p1, n->shared); /* two in flight there */
    assert_ptr_equal(zos_router_lane(F.r, n, -1, false, true), l2);
    lanes_are(n, "lanes_db0=2");
    make_busy(p2, l2);
    send_get(l2); /* three on l2, two on the first */
    assert_ptr_equal(zos_router_lane(F.r, n, -1, false, false), n->shared);
    assert_ptr_equal(zos_router_lane(F.r, n, -1, false, true), n->shared);
    lanes_are(n, "lanes_db0=2");
    assert_int_equal(zos_router_inflight(n), 5);
    fx_teardown();
}

/* L fails now, without running the loop (whose backoff timer would bring
 * it back to IDLE). */
static void fail_link(struct zos_link *l)
{
    struct evbuffer *none = evbuffer_new();
    zos_link_drop(l, "test", none, 0);
    evbuffer_free(none);
    assert_int_equal(zos_link_state(l), ZOS_LINK_DOWN);
}

/* A lane that went down: no new lane for the key (the node is down), a
 * lane that is up beats it; alone, it is returned (it refuses at once). */
static void test_lane_down(void **state)
{
    fx_setup();
    struct zos_node *n = node("alpha");
    connect_link(n->shared);
    send_get(n->shared);
    struct zos_link *l2 = zos_router_lane(F.r, n, -1, false, true);
    connect_link(l2);
    fail_link(n->shared);
    assert_ptr_equal(zos_router_lane(F.r, n, -1, false, false), l2);
    assert_ptr_equal(zos_router_lane(F.r, n, -1, false, true), l2);
    lanes_are(n, "lanes_db0=2");

    struct zos_node *b = node("beta");
    connect_link(b->shared);
    send_get(b->shared);
    fail_link(b->shared);
    assert_ptr_equal(zos_router_lane(F.r, b, -1, false, true), b->shared);
    lanes_are(b, "lanes_db0=1");
    fx_teardown();
}

/* Pinned links: at most max-pinned in use; a clean one given back is lent
 * again, up to pool-size kept; a dirty one is closed. */
static void test_pinned_links(void **state)
{
    char err[200];
    fx_setup();
    struct zos_node *n = node("alpha");
    struct zos_link *a = zos_router_pin_take(F.r, n, -1, false, err, sizeof(err));
    struct zos_link *b = zos_router_pin_take(F.r, n, -1, false, err, sizeof(err));
    assert_true(a != NULL && b != NULL && a != b && a != n->shared);
    assert_null(zos_router_pin_take(F.r, n, -1, false, err, sizeof(err)));
    tu_assert_contains(err, "too many pinned connections in use");
    tu_assert_contains(err, "max-pinned 2");
    assert_int_equal(n->pinned, 2);
    connect_link(a);
    connect_link(b);
    zos_router_pin_give(F.r, n, a, -1, false, true);
    zos_router_pin_give(F.r, n, b, -1, false, true); /* pool-size 1: closed */
    assert_int_equal(n->pinned, 0);
    assert_int_equal(n->npool, 1);
    /* Another key does not get it; the same key does. */
    struct zos_link *c = zos_router_pin_take(F.r, n, 4, false, err, sizeof(err));
    assert_true(c != NULL && c != a);
    assert_ptr_equal(zos_router_pin_take(F.r, n, 0, false, err, sizeof(err)), a);
    zos_router_pin_give(F.r, n, a, 0, false, false); /* dirty: closed, not pooled */
    zos_router_pin_give(F.r, n, c, 4, false, true);  /* not ready: closed */
    assert_int_equal(n->npool, 0);
    assert_int_equal(n->pinned, 0);
    fx_teardown();
}

static void test_control_link(void **state)
{
    fx_setup();
    struct zos_node *n = node("gamma");
    struct zos_link *c = zos_router_control(F.r, n);
    assert_true(c != NULL && c != n->shared);
    assert_ptr_equal(zos_router_control(F.r, n), c);
    /* db 0: no SELECT on it, which a node running a script would refuse. */
    struct tu_peer *p = connect_link(c);
    assert_string_equal(tu_peer_cmd(p, 0), "PING");
    assert_int_equal(tu_peer_count(p), 1);
    fx_teardown();
}

int main(void)
{
    zos_log_level = ZOS_LOG_ERROR; /* the nodes' ups and downs are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_every_class),
        cmocka_unit_test(test_route_reads_len_bytes_only),
        cmocka_unit_test(test_route_table_sorted_unique),
        cmocka_unit_test(test_node_lookup),
        cmocka_unit_test(test_lane_per_db_and_protocol),
        cmocka_unit_test(test_lane_heavy_busy_and_bound),
        cmocka_unit_test(test_lane_down),
        cmocka_unit_test(test_pinned_links),
        cmocka_unit_test(test_control_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

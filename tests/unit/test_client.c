/* test_client.c -- unit tests of client: replies leave in request order
 * whichever node answered first.
 *
 *   test --socketpair--> client --lane--> fake node a (keeps its GET replies until released)
 *                          |   \--lane--> fake node b (answers at once)
 *                          \-- PING, ECHO: answered by the proxy itself
 *
 * One event loop runs the proxy's client, its router and links, the two fake
 * nodes and the test's reader.  Node a keeps its replies back until the
 * test releases them, which it does only once b's reply reached the proxy:
 * the later request is answered first, and the client must put the replies
 * back in request order.  The nodes log the order they answered in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "client.h"
#include "router.h"
#include "state.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>

#include "testutil.h"
#include "zos/conf.h"
#include "zos/resp.h"
#include "zos/zos.h"

#define MAX_LOG     16
#define MAX_REPLIES 8
#define GUARD_S     20 /* "no hang" guard: never a bound of any assertion */

/* ---- fake nodes: just enough RESP for the link's handshake and GET ---- */

struct fake_node;

struct fake_conn {
    struct fake_conn *next;
    struct fake_node *node;
    struct bufferevent *bev;
    struct zos_resp_parser parser;
    struct evbuffer *held; /* replies kept back while the node holds, in order */
    char keys[4][16];      /* the GETs they answer, for the log */
    size_t nkeys;
    bool drop;        /* got the GET of drop_key: closes (when released) instead */
    char dropped[24]; /* "drop:<key>", for the log */
};

struct fake_node {
    const char *name;
    struct evconnlistener *lev;
    int port;
    bool hold;            /* GET replies wait for fake_release */
    const char *drop_key; /* a GET of this key closes the connection instead */
    size_t ngets;         /* GETs received */
    struct fake_conn *conns;
    struct zos_resp_limits lim;
};

/* Everything of one test: set up and torn down around each. */
static struct fixture {
    char dir[64];
    struct fake_node a, b;
    struct zos_server *srv;
    struct zos_node *na, *nb;
    struct zos_client *client;
    int peer;              /* the test's end of the client's socket (-1: closed) */
    struct event *reader;  /* reads PEER into GOT */
    struct event *guard;   /* sets HUNG */
    struct evbuffer *got;  /* what the client was sent */
    char log[MAX_LOG][24]; /* "b:k2", "a:k1", "a:drop:k1": the order nodes answered in */
    size_t nlog;
    bool hung;
} fx;

/* Counted even past MAX_LOG: assert_log then fails on the count. */
static void note(const char *node, const char *what)
{
    if (fx.nlog < MAX_LOG)
        tu_sfmt(fx.log[fx.nlog], sizeof(fx.log[0]), "%s:%s", node, what);
    fx.nlog++;
}

static void fake_conn_free(struct fake_conn *fc)
{
    for (struct fake_conn **pp = &fc->node->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == fc) {
            *pp = fc->next;
            break;
        }
    }
    bufferevent_free(fc->bev);
    evbuffer_free(fc->held);
    free(fc);
}

/* A reply for FC: a GET's kept back while the node holds, and any reply
 * behind the ones kept (a connection answers in order); else sent now.
 * PING (the link's handshake) is not held by itself. */
static void fake_reply(struct fake_conn *fc, const char *key, const char *status, const char *bulk)
{
    bool keep = (key != NULL && fc->node->hold) || evbuffer_get_length(fc->held) > 0;
    struct evbuffer *out = keep ? fc->held : bufferevent_get_output(fc->bev);
    if (status != NULL)
        zos_resp_add_status(out, status);
    else
        zos_resp_add_cstr(out, bulk);
    if (key == NULL)
        return;
    if (!keep) {
        note(fc->node->name, key);
        return;
    }
    assert_true(fc->nkeys < 4);
    tu_sfmt(fc->keys[fc->nkeys++], sizeof(fc->keys[0]), "%s", key);
}

/* One command: PING, or GET k (answered "v-k"). */
static void fake_command(struct fake_conn *fc, const struct zos_resp_argv *av)
{
    char value[32];
    if (av->argc == 1 && strcasecmp(av->argv[0], "ping") == 0) {
        fake_reply(fc, NULL, "PONG", NULL);
    } else if (av->argc == 2 && strcasecmp(av->argv[0], "get") == 0) {
        fc->node->ngets++;
        if (fc->node->drop_key != NULL && strcmp(av->argv[1], fc->node->drop_key) == 0) {
            fc->drop = true;
            tu_sfmt(fc->dropped, sizeof(fc->dropped), "drop:%s", av->argv[1]);
            return;
        }
        tu_sfmt(value, sizeof(value), "v-%s", av->argv[1]);
        fake_reply(fc, av->argv[1], NULL, value);
    } else { /* in the log, where the test sees it (no failing inside the loop) */
        zos_resp_add_error(bufferevent_get_output(fc->bev), "ERR unknown command");
        note(fc->node->name, av->argv[0]);
    }
}

static void fake_drop(struct fake_conn *fc)
{
    note(fc->node->name, fc->dropped);
    fake_conn_free(fc);
}

static void fake_read_cb(struct bufferevent *bev, void *arg)
{
    struct fake_conn *fc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct zos_resp_req req;
    char err[128];

    while (!fc->drop && zos_resp_parse(&fc->parser, in, &req, err, sizeof(err)) == ZOS_OK) {
        struct zos_resp_argv av = {0};
        assert_int_equal(zos_resp_argv(in, &req, &av), 0);
        evbuffer_drain(in, req.len);
        if (av.argc > 0)
            fake_command(fc, &av);
        zos_resp_argv_free(&av);
    }
    if (fc->drop && !fc->node->hold)
        fake_drop(fc);
}

static void fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fake_conn_free(arg);
}

static void fake_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                           int socklen, void *arg)
{
    struct fake_node *n = arg;
    struct fake_conn *fc = calloc(1, sizeof(*fc));
    assert_non_null(fc);
    fc->node = n;
    fc->held = evbuffer_new();
    fc->bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(fc->held);
    assert_non_null(fc->bev);
    zos_resp_parser_init(&fc->parser, &n->lim);
    bufferevent_setcb(fc->bev, fake_read_cb, NULL, fake_event_cb, fc);
    bufferevent_enable(fc->bev, EV_READ);
    fc->next = n->conns;
    n->conns = fc;
}

static int fake_start(struct fake_node *n, const char *name, struct event_base *base)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    n->name = name;
    zos_resp_limits_default(&n->lim);
    n->lev = evconnlistener_new_bind(base, fake_accept_cb, n,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                     (struct sockaddr *)&sin, sizeof(sin));
    if (n->lev == NULL ||
        getsockname(evconnlistener_get_fd(n->lev), (struct sockaddr *)&sin, &len) != 0)
        return -1;
    n->port = ntohs(sin.sin_port);
    return 0;
}

/* N answers what it kept back (or closes the connection it was to drop)
 * and holds no more. */
static void fake_release(struct fake_node *n)
{
    n->hold = false;
    struct fake_conn *fc = n->conns;
    while (fc != NULL) {
        struct fake_conn *next = fc->next;
        if (fc->drop) {
            fake_drop(fc);
        } else {
            for (size_t i = 0; i < fc->nkeys; i++)
                note(n->name, fc->keys[i]);
            fc->nkeys = 0;
            bufferevent_write_buffer(fc->bev, fc->held);
        }
        fc = next;
    }
}

static void fake_stop(struct fake_node *n)
{
    while (n->conns != NULL)
        fake_conn_free(n->conns);
    if (n->lev != NULL)
        evconnlistener_free(n->lev);
}

/* ---- the proxy, as zos_server_new builds it (without listeners) ---- */

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    zos_client_flush_all(arg);
}

static void client_idle(struct zos_server *srv)
{
}

/* On BASE (borrowed), with the config file at PATH. */
static struct zos_server *server_new(struct event_base *base, const char *path)
{
    char err[512];
    struct zos_server *srv = calloc(1, sizeof(*srv));
    assert_non_null(srv);
    srv->base = base;
    srv->conf = zos_conf_load(path, err, sizeof(err));
    if (srv->conf == NULL)
        fail_msg("%s", err);
    srv->started = time(NULL);
    srv->client_ops = &zos_client_ops;
    srv->client_idle = client_idle;
    srv->limits = (struct zos_resp_limits){srv->conf->proxy.max_bulk, srv->conf->proxy.max_args,
                                           srv->conf->proxy.max_inline, false};
    srv->max_clients = srv->conf->proxy.max_clients;
    srv->dns = evdns_base_new(srv->base, 0); /* numeric addresses only */
    srv->router = zos_router_new(srv->base, srv->dns, srv->conf, err, sizeof(err));
    if (srv->router == NULL)
        fail_msg("%s", err);
    srv->flush = event_new(srv->base, -1, 0, flush_cb, srv);
    assert_non_null(srv->dns);
    assert_non_null(srv->flush);
    return srv;
}

static void server_free(struct zos_server *srv)
{
    while (srv->clients != NULL)
        zos_client_free(srv->clients);
    zos_router_free(srv->router);
    if (srv->flush != NULL)
        event_free(srv->flush);
    if (srv->dns != NULL)
        evdns_base_free(srv->dns, 0);
    zos_conf_free(srv->conf);
    free(srv);
}

/* ---- the test's side of the client's socket ---- */

static void reader_cb(evutil_socket_t fd, short what, void *arg)
{
    if (evbuffer_read(fx.got, fd, 4096) <= 0)
        event_del(fx.reader); /* EOF or error: the replies counted so far are all */
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
    fx.hung = true;
}

/* Runs the loop until DONE() holds; fails the test if the guard fires first. */
static void run_until(bool (*done)(void), const char *what)
{
    while (!done()) {
        if (fx.hung)
            fail_msg("hung waiting for %s", what);
        event_base_loop(fx.srv->base, EVLOOP_ONCE);
    }
}

static int setup(void **state)
{
    char path[128], text[256];
    struct event_base *base;
    memset(&fx, 0, sizeof(fx));
    fx.peer = -1;
    if (tu_mkdtemp(fx.dir, sizeof(fx.dir), "client") == NULL || (base = event_base_new()) == NULL)
        return -1;
    /* The fake nodes listen first: the config names their ports. */
    if (fake_start(&fx.a, "a", base) != 0 || fake_start(&fx.b, "b", base) != 0)
        return -1;
    tu_sfmt(text, sizeof(text),
            "[a]\naddress = 127.0.0.1\nport = %d\ntls = false\n\n"
            "[b]\naddress = 127.0.0.1\nport = %d\ntls = false\n",
            fx.a.port, fx.b.port);
    tu_sfmt(path, sizeof(path), "%s/zos.toml", fx.dir);
    if (tu_write_file(path, text, strlen(text), 0600) != 0)
        return -1;
    fx.srv = server_new(base, path);
    fx.na = zos_router_node(fx.srv->router, "a", 1);
    fx.nb = zos_router_node(fx.srv->router, "b", 1);
    struct timeval guard = {GUARD_S, 0};
    fx.guard = evtimer_new(base, guard_cb, NULL);
    fx.got = evbuffer_new();
    if (fx.na == NULL || fx.nb == NULL || fx.guard == NULL || fx.got == NULL ||
        evtimer_add(fx.guard, &guard) != 0)
        return -1;

    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
        return -1;
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    fx.peer = fds[1];
    fx.client = zos_client_new(fx.srv, fds[0], NULL);
    fx.reader = event_new(base, fx.peer, EV_READ | EV_PERSIST, reader_cb, NULL);
    if (fx.client == NULL || fx.reader == NULL || event_add(fx.reader, NULL) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    struct event_base *base = fx.srv != NULL ? fx.srv->base : NULL;
    if (fx.reader != NULL)
        event_free(fx.reader);
    if (fx.peer >= 0)
        close(fx.peer);
    if (fx.srv != NULL)
        server_free(fx.srv);
    fake_stop(&fx.a);
    fake_stop(&fx.b);
    if (fx.guard != NULL)
        event_free(fx.guard);
    if (fx.got != NULL)
        evbuffer_free(fx.got);
    if (base != NULL)
        event_base_free(base);
    return tu_rm_tree(fx.dir);
}

/* ---- the client's requests and replies ---- */

/* Writes the commands (NULL-terminated argument lists, the list ended by a
 * NULL) to the client in one go: a pipeline. */
static void send_pipeline(const char *const *const cmds[])
{
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    for (size_t i = 0; cmds[i] != NULL; i++) {
        size_t argc = 0, lens[8];
        for (; cmds[i][argc] != NULL; argc++)
            lens[argc] = strlen(cmds[i][argc]);
        zos_resp_add_command(out, argc, cmds[i], lens);
    }
    while (evbuffer_get_length(out) > 0)
        assert_true(evbuffer_write(out, fx.peer) > 0);
    evbuffer_free(out);
}

/* The complete replies in GOT, each as its type byte and text ("+PONG",
 * "-ERR ...", "$v-k1"): how many, at most MAX_REPLIES. */
static size_t replies(char out[MAX_REPLIES][128])
{
    size_t len = evbuffer_get_length(fx.got), n = 0;
    const char *p = (const char *)evbuffer_pullup(fx.got, -1), *end = p + len;

    while (p < end && n < MAX_REPLIES) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL)
            break;
        if (*p == '+' || *p == '-') {
            tu_sfmt(out[n++], 128, "%.*s", (int)(eol - p), p);
            p = eol + 2;
            continue;
        }
        if (*p != '$')
            fail_msg("unexpected reply type '%c'", *p);
        long blen = strtol(p + 1, NULL, 10);
        assert_true(blen >= 0 && blen < 100);
        if (end - (eol + 2) < blen + 2)
            break;
        tu_sfmt(out[n++], 128, "$%.*s", (int)blen, eol + 2);
        p = eol + 2 + blen + 2;
    }
    return n;
}

static bool five_replies(void)
{
    char r[MAX_REPLIES][128];
    return replies(r) >= 5;
}

/* b answered, that reply reached the proxy, and a holds back a GET:
 * the later request is answered first. */
static bool b_first(void)
{
    return fx.a.ngets >= 1 && fx.b.ngets >= 1 && zos_router_inflight(fx.nb) == 0;
}

static bool client_gone(void)
{
    return fx.srv->nclients == 0;
}

static bool a_answered_twice(void)
{
    return fx.a.ngets >= 2 && zos_router_inflight(fx.na) == 0;
}

/* The nodes answered WANT[0..N-1], in that order. */
static void assert_log(const char *const want[], size_t n)
{
    char all[MAX_LOG * 26] = "";
    size_t len = 0;
    bool same = fx.nlog == n;
    for (size_t i = 0; i < fx.nlog && i < MAX_LOG; i++) {
        len += (size_t)snprintf(all + len, sizeof(all) - len, " %s", fx.log[i]);
        same = same && strcmp(fx.log[i], want[i]) == 0;
    }
    if (!same)
        fail_msg("nodes answered in the order%s (%zu), expected %s ... (%zu)", all, fx.nlog,
                 want[0], n);
}

static const char *const get_k1[] = {"ZOS.AT", "a", "GET", "k1", NULL};
static const char *const get_k2[] = {"ZOS.AT", "b", "GET", "k2", NULL};
static const char *const ping[] = {"PING", NULL};
static const char *const get_a_k3[] = {"ZOS.AT", "a", "GET", "k3", NULL};
static const char *const get_b_k3[] = {"ZOS.AT", "b", "GET", "k3", NULL};
static const char *const echo_x[] = {"ECHO", "x", NULL};

/* Node a answers k1 and k3 only after b answered k2: the client still
 * answers k1, k2, PING, k3, ECHO in that order. */
static void test_replies_in_request_order(void **state)
{
    static const char *const *const cmds[] = {get_k1, get_k2, ping, get_a_k3, echo_x, NULL};
    static const char *const want_log[] = {"b:k2", "a:k1", "a:k3"};
    char r[MAX_REPLIES][128];

    fx.a.hold = true;
    send_pipeline(cmds);
    run_until(b_first, "node b's reply");
    /* k2's reply, PONG and ECHO's are in, behind k1's: nothing written yet. */
    assert_int_equal(zos_client_pending(fx.client), 5);
    assert_int_equal(evbuffer_get_length(fx.got), 0);

    fake_release(&fx.a);
    run_until(five_replies, "five replies");
    assert_int_equal(replies(r), 5);
    assert_string_equal(r[0], "$v-k1");
    assert_string_equal(r[1], "$v-k2");
    assert_string_equal(r[2], "+PONG");
    assert_string_equal(r[3], "$v-k3");
    assert_string_equal(r[4], "$x");
    assert_log(want_log, 3);
    assert_int_equal(zos_client_pending(fx.client), 0);
}

/* Node a drops its connection with GET k1 on it (after b answered): k1 is
 * answered with an error in its place, the rest in order, and the client
 * stays connected. */
static void test_node_lost_error_in_place(void **state)
{
    static const char *const *const cmds[] = {get_k1, get_k2, ping, get_b_k3, echo_x, NULL};
    static const char *const want_log[] = {"b:k2", "b:k3", "a:drop:k1"};
    static const char err[] = "-ERR node 'a' unavailable: ";
    char r[MAX_REPLIES][128];

    fx.a.hold = true;
    fx.a.drop_key = "k1";
    send_pipeline(cmds);
    run_until(b_first, "node b's reply");
    assert_int_equal(zos_client_pending(fx.client), 5);

    fake_release(&fx.a);
    run_until(five_replies, "five replies");
    assert_int_equal(replies(r), 5);
    if (strncmp(r[0], err, sizeof(err) - 1) != 0)
        fail_msg("k1 answered '%s', expected '%s...'", r[0], err);
    assert_string_equal(r[1], "$v-k2");
    assert_string_equal(r[2], "+PONG");
    assert_string_equal(r[3], "$v-k3");
    assert_string_equal(r[4], "$x");
    assert_log(want_log, 3);
    assert_int_equal(fx.srv->nclients, 1);
    assert_ptr_equal(fx.srv->clients, fx.client);
}

/* The client leaves while k1 and k3 are still due from node a: it is gone
 * at once, and the replies that come after are dropped (ASan: no
 * use-after-free of its slots, no leak). */
static void test_client_leaves_with_replies_due(void **state)
{
    static const char *const *const cmds[] = {get_k1, get_k2, ping, get_a_k3, echo_x, NULL};
    static const char *const want_log[] = {"b:k2", "a:k1", "a:k3"};

    fx.a.hold = true;
    send_pipeline(cmds);
    run_until(b_first, "node b's reply");
    assert_int_equal(zos_client_pending(fx.client), 5);

    event_del(fx.reader);
    close(fx.peer);
    fx.peer = -1;
    run_until(client_gone, "the client to be freed");
    assert_null(fx.srv->clients);
    fx.client = NULL;

    fake_release(&fx.a);
    run_until(a_answered_twice, "node a's replies to reach the proxy");
    assert_log(want_log, 3);
    assert_int_equal(fx.srv->nclients, 0);
    assert_int_equal(evbuffer_get_length(fx.got), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replies_in_request_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_lost_error_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_leaves_with_replies_due, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN); /* writes to a socket whose peer left fail with EPIPE */
    return cmocka_run_group_tests(tests, NULL, NULL);
}

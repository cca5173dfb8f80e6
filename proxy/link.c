/* link.c -- one connection to a node: TLS, AUTH, SELECT, FIFO of replies.
 *
 *   send() --IDLE--> connect() + AUTH/SELECT written first, their entries at the FIFO head
 *          --CONNECTING--> bytes wait in outq (never reach the node before AUTH is answered)
 *          --READY--> bytes go straight to the bufferevent
 *          --DOWN--> refused at once (fail fast); shared links retry after a backoff
 *
 *   read_cb: scan one reply -> pop the FIFO head -> fn(arg, input, len)
 */
#include "zos/link.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "zos/err.h"
#include "zos/resp.h"
#include "zos/util.h"
#include "zos/zos.h"

#define BACKOFF_MIN_MS  100
#define DEMAND_RETRY_MS 500 /* retry delay of a node clients ask for while it is down */
#define PROTO_ERR       "protocol error: "
#define BIG_REPLY       (1024 * 1024) /* a reply this large on its way makes the link busy */

struct pending {
    zos_link_reply_fn fn;
    void *arg;
    long long at_ms; /* when it was queued (coarse clock): how long it has waited */
    uint64_t at_us;  /* the same on the fine clock, for the latency figures (0: not timed) */
};

struct zos_link {
    struct event_base *base;
    struct evdns_base *dns;
    const struct zos_node_conf *node;
    SSL_CTX *ssl;
    struct zos_link_opts opts;
    enum zos_link_state state;
    struct bufferevent *bev;
    struct evbuffer *outq; /* client bytes held until the handshake is answered */
    struct pending *fifo;  /* ring of cap entries, count used from head */
    size_t head, count, cap;
    size_t handshake_left;  /* AUTH/SELECT replies still expected */
    const char *hs_name[2]; /* what each handshake reply answers, in order */
    size_t hs_done;
    unsigned epoch; /* bumped on every failure: callbacks check it */
    struct zos_resp_scanner scan;
    struct event *timer; /* connect timeout, backoff */
    int backoff_ms;
    long long used_ms;              /* last request sent or reply read (coarse clock) */
    struct zos_link *hprev, *hnext; /* the watch's links */
    unsigned hung_mark;             /* failed in this round of the watch's */
    bool demand;                    /* asked for while down: retry soon */
    bool over_budget;               /* the failure is the descriptor budget's, not the node's */
    bool failing;                   /* link_fail is failing the queue: no new request */
    bool timed;                     /* records reply latencies in opts.stats */
    bool had_failure;               /* the next connect is a reconnect */
    bool freeing;                   /* requests failed by zos_link_free are no errors */
    long long retry_at_ms;          /* when the backoff timer fires */
    bool slot;                      /* holds one of the gate's connect slots */
    bool waiting;                   /* in the gate's queue for a slot */
    bool listed;                    /* in the gate's list of open links */
    struct zos_link *wprev, *wnext; /* the gate's queue */
    struct zos_link *oprev, *onext; /* the gate's open links, least recently used first */
    zos_link_reply_fn push_fn;
    void *push_arg;
    void (*closed_fn)(void *arg, const char *err);
    void *closed_arg;
    void (*state_fn)(void *arg, enum zos_link_state s, const char *why);
    void *state_arg;
    struct zos_err err; /* why it is or was down, and what kind of failure */
};

static void link_fail(struct zos_link *l, enum zos_errcat cat, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int start_connect(struct zos_link *l);
static void handshake_cb(void *arg, struct evbuffer *reply, size_t len, const char *err);
static void watch_heard(struct zos_link_watch *w, long long now);
static void watch_kick(struct zos_link_watch *w);
static void watch_add(struct zos_link *l);
static void watch_remove(struct zos_link *l);
static void watch_wake(struct zos_link_watch *w);

static void scanner_init(struct zos_link *l)
{
    struct zos_resp_reply_limits lim;
    zos_resp_reply_limits_default(&lim);
    if (l->opts.reply_limits != NULL)
        lim = *l->opts.reply_limits;
    lim.resp2_only = !l->opts.resp3;
    zos_resp_scanner_init(&l->scan, &lim);
}

static int fifo_push(struct zos_link *l, zos_link_reply_fn fn, void *arg)
{
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        struct pending *n = malloc(ncap * sizeof(*n));
        if (n == NULL)
            return -1;
        for (size_t i = 0; i < l->count; i++)
            n[i] = l->fifo[(l->head + i) % l->cap];
        free(l->fifo);
        l->fifo = n;
        l->head = 0;
        l->cap = ncap;
    }
    l->fifo[(l->head + l->count) % l->cap] =
        (struct pending){fn, arg, zos_stats_now_ms(), l->timed ? zos_stats_now_us() : 0};
    if (++l->count == 1 && l->opts.watch != NULL)
        watch_wake(l->opts.watch);
    return 0;
}

static int fifo_unshift(struct zos_link *l, zos_link_reply_fn fn, void *arg)
{
    if (fifo_push(l, fn, arg) != 0) /* grows the ring when full */
        return -1;
    l->count--;
    l->head = (l->head + l->cap - 1) % l->cap;
    l->fifo[l->head] = (struct pending){fn, arg, zos_stats_now_ms(), 0};
    l->count++;
    return 0;
}

static struct pending fifo_pop(struct zos_link *l)
{
    struct pending p = l->fifo[l->head];
    l->head = (l->head + 1) % l->cap;
    l->count--;
    return p;
}

static void timer_arm(struct zos_link *l, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
}

/* A delay in [MS/2, MS]: links that failed together do not retry together. */
static int jitter(int ms)
{
    return ms / 2 + (int)(random() % (ms / 2 + 1));
}

static void retry_in(struct zos_link *l, int ms)
{
    l->retry_at_ms = zos_now_ms() + ms;
    timer_arm(l, ms);
}

/* ---- the gate: connects in progress and descriptors open, for all links ---- */

struct zos_link_gate {
    int max_connecting, connecting;
    size_t budget, open;            /* node connections: allowed (0: no bound) and open */
    size_t closing;                 /* freed, but libevent closes their sockets later in the loop */
    struct event *reap;             /* next loop turn: those are closed by then */
    struct zos_link *whead, *wtail; /* waiting for a connect slot, in order */
    struct zos_link *ohead, *otail; /* open, least recently used first */
    struct event *pump;
};

enum { ENTER_OK, ENTER_WAIT, ENTER_FAIL };
static int really_connect(struct zos_link *l);

#define LIST_UNLINK(g, l, prev, next, head, tail)                                                  \
    do {                                                                                           \
        if ((l)->prev != NULL)                                                                     \
            (l)->prev->next = (l)->next;                                                           \
        else                                                                                       \
            (g)->head = (l)->next;                                                                 \
        if ((l)->next != NULL)                                                                     \
            (l)->next->prev = (l)->prev;                                                           \
        else                                                                                       \
            (g)->tail = (l)->prev;                                                                 \
        (l)->prev = (l)->next = NULL;                                                              \
    } while (0)

#define LIST_PREPEND(g, l, prev, next, head, tail)                                                 \
    do {                                                                                           \
        (l)->next = (g)->head;                                                                     \
        (l)->prev = NULL;                                                                          \
        if ((g)->head != NULL)                                                                     \
            (g)->head->prev = (l);                                                                 \
        else                                                                                       \
            (g)->tail = (l);                                                                       \
        (g)->head = (l);                                                                           \
    } while (0)

#define LIST_APPEND(g, l, prev, next, head, tail)                                                  \
    do {                                                                                           \
        (l)->prev = (g)->tail;                                                                     \
        (l)->next = NULL;                                                                          \
        if ((g)->tail != NULL)                                                                     \
            (g)->tail->next = (l);                                                                 \
        else                                                                                       \
            (g)->head = (l);                                                                       \
        (g)->tail = (l);                                                                           \
    } while (0)

static void gate_pump_soon(struct zos_link_gate *g)
{
    if (g->whead != NULL && g->connecting < g->max_connecting)
        event_active(g->pump, EV_TIMEOUT, 0);
}

/* Starts waiting links while slots are free (an event of its own: a connect
 * that fails at once runs callbacks, which must not happen inside another
 * link's). */
static void gate_pump_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_link_gate *g = arg;
    while (g->whead != NULL && g->connecting < g->max_connecting) {
        struct zos_link *l = g->whead;
        LIST_UNLINK(g, l, wprev, wnext, whead, wtail);
        l->waiting = false;
        if (really_connect(l) == ENTER_WAIT)
            break; /* back at the head: descriptors are being closed */
    }
}

static void gate_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_link_gate *g = arg;
    g->closing = 0;
    gate_pump_soon(g);
}

struct zos_link_gate *zos_link_gate_new(struct event_base *base, int max_connecting, size_t budget)
{
    struct zos_link_gate *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->pump = event_new(base, -1, 0, gate_pump_cb, g)) == NULL ||
        (g->reap = evtimer_new(base, gate_reap_cb, g)) == NULL) {
        if (g != NULL && g->pump != NULL)
            event_free(g->pump);
        free(g);
        return NULL;
    }
    g->max_connecting = max_connecting > 0 ? max_connecting : 1;
    g->budget = budget;
    return g;
}

void zos_link_gate_free(struct zos_link_gate *g)
{
    if (g == NULL)
        return;
    event_free(g->pump);
    event_free(g->reap);
    free(g);
}

void zos_link_gate_set_max_connecting(struct zos_link_gate *g, int max_connecting)
{
    g->max_connecting = max_connecting > 0 ? max_connecting : 1;
    gate_pump_soon(g);
}

void zos_link_gate_set_budget(struct zos_link_gate *g, size_t budget)
{
    g->budget = budget;
}

size_t zos_link_gate_open(const struct zos_link_gate *g)
{
    return g->open;
}

/* L no longer waits, connects or holds a descriptor (its bev is gone). */
static void gate_leave(struct zos_link *l)
{
    struct zos_link_gate *g = l->opts.gate;
    if (g == NULL)
        return;
    if (l->waiting) {
        LIST_UNLINK(g, l, wprev, wnext, whead, wtail);
        l->waiting = false;
    }
    if (l->slot) {
        l->slot = false;
        g->connecting--;
    }
    if (l->listed && l->bev == NULL) {
        static const struct timeval next_turn = {0, 0};
        LIST_UNLINK(g, l, oprev, onext, ohead, otail);
        l->listed = false;
        g->open--;
        g->closing++; /* its socket is closed by libevent later in this turn */
        evtimer_add(g->reap, &next_turn);
    }
    gate_pump_soon(g);
}

/* Marks L used now: the last to be closed for the budget. */
static void gate_touch(struct zos_link *l)
{
    struct zos_link_gate *g = l->opts.gate;
    if (g != NULL && l->listed && g->otail != l) {
        LIST_UNLINK(g, l, oprev, onext, ohead, otail);
        LIST_APPEND(g, l, oprev, onext, ohead, otail);
    }
}

static void close_idle(struct zos_link *l);

/* Whether a shared link is open with requests in flight: it will be idle,
 * so closable, once they are answered. */
static bool gate_busy_shared(const struct zos_link_gate *g)
{
    for (const struct zos_link *c = g->ohead; c != NULL; c = c->onext)
        if (!c->opts.pinned && (c->state == ZOS_LINK_READY || c->state == ZOS_LINK_CONNECTING))
            return true;
    return false;
}

/* The budget is full: closes the least recently used idle shared link.
 * False when every open link is busy (or one's own). */
static bool gate_evict(struct zos_link_gate *g, const struct zos_link *self)
{
    for (struct zos_link *c = g->ohead; c != NULL; c = c->onext) {
        if (c != self && !c->opts.pinned && c->state == ZOS_LINK_READY && c->count == 0 &&
            evbuffer_get_length(c->outq) == 0) {
            close_idle(c);
            return true;
        }
    }
    return false;
}

/* The connection (if any) goes; the link is left without one. */
static void drop_connection(struct zos_link *l)
{
    l->epoch++;
    if (l->bev != NULL) {
        bufferevent_free(l->bev);
        l->bev = NULL;
        if (l->opts.stats != NULL)
            l->opts.stats->open--;
    }
    gate_leave(l);
    evtimer_del(l->timer);
    l->handshake_left = 0;
    l->hs_done = 0;
    scanner_init(l);
}

/* An idle shared link closed for the descriptor budget: it reconnects on next use. */
static void close_idle(struct zos_link *l)
{
    drop_connection(l);
    l->state = ZOS_LINK_IDLE;
}

/* Drops the connection and fails every pending request with the reason,
 * of category CAT. */
static void link_fail(struct zos_link *l, enum zos_errcat cat, const char *fmt, ...)
{
    va_list ap;
    l->err.cat = cat;
    va_start(ap, fmt);
    vsnprintf(l->err.text, sizeof(l->err.text), fmt, ap);
    va_end(ap);

    drop_connection(l);
    evbuffer_drain(l->outq, evbuffer_get_length(l->outq));
    if (l->over_budget) { /* not the node's fault: idle, and the next request tries again */
        l->over_budget = false;
        l->state = ZOS_LINK_IDLE;
    } else {
        if (l->state_fn != NULL && l->state != ZOS_LINK_DOWN)
            l->state_fn(l->state_arg, ZOS_LINK_DOWN, l->err.text);
        l->state = ZOS_LINK_DOWN;
        l->had_failure = true;
        if (!l->opts.pinned) {
            /* Jittered; shortened when clients ask for the node meanwhile (prepare_send). */
            l->demand = false;
            retry_in(l, jitter(l->backoff_ms));
            l->backoff_ms = l->backoff_ms * 2 > l->opts.backoff_max_ms ? l->opts.backoff_max_ms
                                                                       : l->backoff_ms * 2;
        }
    }
    /* Copy the reason: a callback may not touch err, but keep it stable. */
    char why[sizeof(l->err.text)];
    memcpy(why, l->err.text, sizeof(why));
    l->failing = true; /* a callback's send on L is refused, as while DOWN */
    while (l->count > 0) {
        struct pending p = fifo_pop(l);
        if (l->opts.stats != NULL && !l->freeing && p.fn != handshake_cb)
            l->opts.stats->errors++;
        if (p.fn != NULL)
            p.fn(p.arg, NULL, 0, why);
    }
    l->failing = false;
    evbuffer_drain(l->outq, evbuffer_get_length(l->outq));
    if (l->opts.pinned && l->closed_fn != NULL) {
        void (*fn)(void *, const char *) = l->closed_fn;
        l->closed_fn = NULL;
        fn(l->closed_arg, why);
    }
}

static void set_ready(struct zos_link *l)
{
    if (l->state_fn != NULL)
        l->state_fn(l->state_arg, ZOS_LINK_READY, "");
    l->state = ZOS_LINK_READY;
    l->backoff_ms = BACKOFF_MIN_MS;
    gate_leave(l); /* the connect slot; the descriptor stays listed */
    l->err = (struct zos_err){0};
    evtimer_del(l->timer);
    if (l->opts.watch != NULL)
        watch_kick(l->opts.watch);
    if (evbuffer_get_length(l->outq) > 0)
        bufferevent_write_buffer(l->bev, l->outq);
}

/* The handshake's PING answered: the node is there.  Any answer will do
 * (-BUSY while a script runs, -LOADING, an error for a renamed PING): what it
 * answers a client's command is its own business -- but -NOAUTH says the
 * link cannot be used. */
static bool ping_answered(struct evbuffer *reply, size_t len)
{
    char text[16];
    if (!zos_resp_reply_error(reply, len, text, sizeof(text)))
        return zos_resp_reply_type(reply, len) == '+';
    return strncmp(text, "NOAUTH", 6) != 0;
}

/* What a refused handshake command WHAT means, and its reply (an error's
 * text, else the reply escaped) in TEXT: any error to AUTH refuses the
 * secret; else the error reply says (NOAUTH to PING, WRONGPASS to HELLO);
 * an answer that is no error and not the expected one is not the protocol. */
static enum zos_errcat handshake_errcat(const char *what, struct evbuffer *reply, size_t len,
                                        char *text, size_t textlen)
{
    if (!zos_resp_reply_error(reply, len, text, textlen)) {
        zos_resp_escape(reply, len, text, textlen);
        return ZOS_ERRCAT_PROTOCOL;
    }
    enum zos_errcat cat = zos_errcat_of_reply(text);
    return cat == ZOS_ERRCAT_NODE && strcmp(what, "AUTH") == 0 ? ZOS_ERRCAT_AUTH : cat;
}

/* The reply to AUTH, SELECT or HELLO (anything but +OK or a map ends the
 * attempt), or to the PING of a link with nothing else to say. */
static void handshake_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_link *l = arg;
    char text[128];
    if (reply == NULL)
        return;
    const char *what = l->hs_name[l->hs_done++ & 1];
    char type = zos_resp_reply_type(reply, len);
    bool ok = strcmp(what, "HELLO") == 0  ? type == '%'
              : strcmp(what, "PING") == 0 ? ping_answered(reply, len)
                                          : zos_resp_reply_is_ok(reply, len);
    if (ok) {
        if (--l->handshake_left == 0)
            set_ready(l);
        return;
    }
    link_fail(l, handshake_errcat(what, reply, len, text, sizeof(text)), "%s failed: %s", what,
              text);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_link *l = arg;
    switch (l->state) {
    case ZOS_LINK_CONNECTING:
        if (l->waiting) {
            l->over_budget = true; /* not the node's fault */
            link_fail(l, ZOS_ERRCAT_OTHER,
                      "no descriptor left for another node connection within %d ms",
                      l->opts.connect_timeout_ms);
        } else if (zos_link_watch_quiet_left(l->opts.watch) > 0) {
            /* The node is busy with a known long command (DEBUG SLEEP): it
             * answers the handshake after it. */
            timer_arm(l,
                      (int)zos_link_watch_quiet_left(l->opts.watch) + l->opts.connect_timeout_ms);
        } else {
            link_fail(l, ZOS_ERRCAT_UNREACHABLE, "connect timeout after %d ms",
                      l->opts.connect_timeout_ms);
        }
        break;
    case ZOS_LINK_DOWN: /* backoff over: try again if anyone asked, else on next use */
        if (l->demand)
            start_connect(l);
        else
            l->state = ZOS_LINK_IDLE;
        break;
    case ZOS_LINK_READY:
    case ZOS_LINK_IDLE:
        break;
    }
}

/* A reply the link cannot take: the connection goes, with a reason naming
 * what was wrong and the first bytes of it (escaped), and every request in
 * flight on it gets that reason. */
static void protocol_error(struct zos_link *l, struct evbuffer *in, const char *what)
{
    zos_link_drop(l, what, in, evbuffer_get_length(in));
}

void zos_link_drop(struct zos_link *l, const char *what, struct evbuffer *reply, size_t len)
{
    char bytes[72], why[sizeof(l->err.text) + 32];
    zos_resp_escape(reply, len, bytes, sizeof(bytes));
    link_fail(l, ZOS_ERRCAT_PROTOCOL, "%s%s (\"%s\")", PROTO_ERR, what, bytes);
    /* Requests in flight got the protocol error; requests refused while the
     * link is down are told why it is down. */
    snprintf(why, sizeof(why), "dropped for a %s", l->err.text);
    snprintf(l->err.text, sizeof(l->err.text), "%.*s", (int)sizeof(l->err.text) - 1, why);
}

bool zos_link_consume_head(struct zos_link *l, zos_link_reply_fn fn, void *arg)
{
    if (l->count <= l->handshake_left)
        return false;
    struct pending *h = &l->fifo[l->head];
    if (h->fn != fn || h->arg != arg)
        return false;
    fifo_pop(l);
    return true;
}

bool zos_link_is_protocol_error(const char *err)
{
    return err != NULL && strncmp(err, PROTO_ERR, sizeof(PROTO_ERR) - 1) == 0;
}

/* A reply to P (LEN bytes at the front of IN), read at NOW_US, in the figures. */
static void count_reply(struct zos_link *l, const struct pending *p, struct evbuffer *in,
                        size_t len, uint64_t now_us)
{
    struct zos_link_stats *st = l->opts.stats;
    if (p->fn == handshake_cb)
        return;
    char t = zos_resp_reply_type(in, len);
    if (t == '-' || t == '!')
        st->error_replies++;
    if (p->at_us != 0)
        zos_link_stats_latency(st, now_us > p->at_us ? now_us - p->at_us : 0, l->used_ms);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct zos_link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned epoch = l->epoch;
    uint64_t now_us = l->timed ? zos_stats_now_us() : 0; /* when these replies were read */

    l->used_ms = zos_stats_now_ms();
    if (l->opts.watch != NULL)
        watch_heard(l->opts.watch, l->used_ms);
    for (;;) {
        size_t len;
        int rc = zos_resp_scan(&l->scan, in, &len);
        if (rc == ZOS_AGAIN)
            return;
        if (rc != ZOS_OK) {
            protocol_error(l, in, l->scan.why != NULL ? l->scan.why : "malformed reply");
            return;
        }
        size_t before = evbuffer_get_length(in);
        bool push = l->opts.resp3 && zos_resp_reply_type(in, len) == '>';
        if (l->opts.stats != NULL)
            l->opts.stats->bytes_in += len;
        if (push && l->push_fn == NULL) {
            protocol_error(l, in, "a push frame nobody asked for");
            return;
        } else if (!push && l->count > 0) {
            struct pending p = fifo_pop(l);
            if (l->opts.stats != NULL)
                count_reply(l, &p, in, len, now_us);
            if (l->count == 0 && l->opts.gate != NULL && !l->opts.pinned)
                gate_pump_soon(l->opts.gate); /* idle now: closable for a link that waits */
            if (p.fn != NULL)
                p.fn(p.arg, in, len, NULL);
        } else if (l->push_fn != NULL) {
            l->push_fn(l->push_arg, in, len, NULL);
        } else {
            protocol_error(l, in, "a reply nobody asked for");
            return;
        }
        if (epoch != l->epoch)
            return; /* the callback ended this connection */
        size_t taken = before - evbuffer_get_length(in);
        if (taken < len)
            evbuffer_drain(in, len - taken);
    }
}

static void describe_error(struct zos_link *l, struct bufferevent *bev, short what)
{
    unsigned long ssl_err = l->ssl != NULL ? bufferevent_get_openssl_error(bev) : 0;
    int dns_err = bufferevent_socket_get_dns_error(bev);
    int sock_err = EVUTIL_SOCKET_ERROR();

    if (dns_err != 0) {
        link_fail(l, ZOS_ERRCAT_UNREACHABLE, "cannot resolve '%s': %s", l->node->address,
                  evutil_gai_strerror(dns_err));
    } else if (ssl_err != 0 && (ERR_GET_LIB(ssl_err) != 0 || sock_err == 0)) {
        char buf[120];
        ERR_error_string_n(ssl_err, buf, sizeof(buf));
        link_fail(l, ZOS_ERRCAT_TLS, "TLS error: %s", buf);
    } else if (what & BEV_EVENT_EOF) {
        link_fail(l, ZOS_ERRCAT_UNREACHABLE, "connection closed by the node");
    } else if (sock_err != 0) {
        char buf[80];
        snprintf(buf, sizeof(buf), "%s", evutil_socket_error_to_string(sock_err));
        buf[0] = (char)(buf[0] >= 'A' && buf[0] <= 'Z' ? buf[0] + 32 : buf[0]);
        link_fail(l, ZOS_ERRCAT_UNREACHABLE, "%s", buf);
    } else if (l->ssl != NULL) {
        link_fail(l, ZOS_ERRCAT_TLS, "TLS handshake failed");
    } else {
        link_fail(l, ZOS_ERRCAT_UNREACHABLE, "connection failed");
    }
}

/* Compares the peer certificate's SHA-256 with the pinned one. */
static int check_pin(struct zos_link *l)
{
    SSL *ssl = bufferevent_openssl_get_ssl(l->bev);
    X509 *cert = ssl != NULL ? SSL_get1_peer_certificate(ssl) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int rc = -1;

    if (cert != NULL && X509_digest(cert, EVP_sha256(), md, &mdlen) == 1 && mdlen == 32 &&
        CRYPTO_memcmp(md, l->node->verify_sha256, 32) == 0)
        rc = 0;
    X509_free(cert);
    return rc;
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct zos_link *l = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (l->ssl != NULL && l->node->verify == ZOS_TLS_VERIFY_SHA256 && check_pin(l) != 0) {
            link_fail(l, ZOS_ERRCAT_TLS,
                      "TLS certificate does not match the pinned sha256 fingerprint");
            return;
        }
        if (l->handshake_left == 0)
            set_ready(l);
        return;
    }
    describe_error(l, bev, what);
}

static int write_handshake(struct zos_link *l)
{
    char db[16];
    const char *secret = l->node->secret != NULL ? l->node->secret : "";
    if (l->opts.resp3) {
        const char *user = l->opts.auth_user != NULL ? l->opts.auth_user : "default";
        const char *argv[] = {"HELLO", "3", "AUTH", user, secret};
        size_t lens[] = {5, 1, 4, strlen(user), strlen(secret)};
        bool auth = secret[0] != '\0' || l->opts.auth_user != NULL;
        zos_resp_add_command(bufferevent_get_output(l->bev), auth ? 5 : 2, argv, lens);
        l->hs_name[l->handshake_left++] = "HELLO";
    } else if (secret[0] != '\0' || l->opts.auth_user != NULL) {
        const char *argv[] = {"AUTH", l->opts.auth_user, secret};
        size_t lens[] = {4, l->opts.auth_user ? strlen(l->opts.auth_user) : 0, strlen(secret)};
        if (l->opts.auth_user == NULL) {
            argv[1] = secret;
            lens[1] = lens[2];
        }
        zos_resp_add_command(bufferevent_get_output(l->bev), l->opts.auth_user ? 3 : 2, argv, lens);
        l->hs_name[l->handshake_left++] = "AUTH";
    }
    int dbn = l->opts.select_db ? l->opts.db : l->node->db;
    if (dbn > 0) {
        snprintf(db, sizeof(db), "%d", dbn);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        zos_resp_add_command(bufferevent_get_output(l->bev), 2, argv, lens);
        l->hs_name[l->handshake_left++] = "SELECT";
    }
    if (l->handshake_left == 0) {
        /* Nothing to say first: ask anyway, so that the link is ready only
         * once the node has answered (the kernel accepts for a stopped one). */
        static const char ping[] = "*1\r\n$4\r\nPING\r\n";
        bufferevent_write(l->bev, ping, sizeof(ping) - 1);
        l->hs_name[l->handshake_left++] = "PING";
    }
    /* Their replies come first, before those of requests that waited for
     * the connect: at the head of the FIFO. */
    for (size_t i = 0; i < l->handshake_left; i++)
        if (fifo_unshift(l, handshake_cb, l) != 0)
            return -1;
    return 0;
}

/* Connects now, or queues for a slot of the gate (state CONNECTING either
 * way: requests wait in outq).  -1 when it failed at once. */
static int start_connect(struct zos_link *l)
{
    struct zos_link_gate *g = l->opts.gate;
    l->state = ZOS_LINK_CONNECTING;
    if (g != NULL && (g->connecting >= g->max_connecting || g->whead != NULL)) {
        LIST_APPEND(g, l, wprev, wnext, whead, wtail);
        l->waiting = true;
        return 0;
    }
    return really_connect(l) == ENTER_FAIL ? -1 : 0;
}

static void new_session_slot(struct zos_link *l, SSL *ssl);

/* Takes a descriptor of the budget and a connect slot.  Past the budget an
 * idle link is closed to make room, and the connect waits (ENTER_WAIT, back
 * at the head of the queue) until libevent has really closed the sockets
 * freed; ENTER_FAIL, with the link failed, when every open link is busy. */
static int gate_enter(struct zos_link *l)
{
    struct zos_link_gate *g = l->opts.gate;
    if (g == NULL)
        return ENTER_OK;
    if (g->budget > 0 && g->open + g->closing >= g->budget) {
        /* One eviction at a time: the next waiter sees it counted in
         * closing until libevent has closed it, and does not evict again. */
        if (g->closing == 0 && !gate_evict(g, l) && !gate_busy_shared(g)) {
            l->over_budget = true;
            link_fail(l, ZOS_ERRCAT_OTHER,
                      "no descriptor left for another node connection (%zu open, the budget)",
                      g->open);
            return ENTER_FAIL;
        }
        /* A descriptor is being freed, or will be when a shared link's
         * replies are in: wait for it, at most connect-timeout. */
        LIST_PREPEND(g, l, wprev, wnext, whead, wtail);
        l->waiting = true;
        if (!evtimer_pending(l->timer, NULL))
            timer_arm(l, l->opts.connect_timeout_ms);
        return ENTER_WAIT;
    }
    evtimer_del(l->timer); /* a wait for a descriptor is over */
    g->connecting++;
    l->slot = true;
    g->open++;
    l->listed = true;
    LIST_APPEND(g, l, oprev, onext, ohead, otail);
    return ENTER_OK;
}

/* ENTER_OK: connecting (or failed after it started: the link says so);
 * ENTER_WAIT: queued for descriptors; ENTER_FAIL: failed at once. */
static int really_connect(struct zos_link *l)
{
    int opts = BEV_OPT_CLOSE_ON_FREE;
    int enter = gate_enter(l);
    if (enter != ENTER_OK)
        return enter;
    if (l->node->tls && l->ssl == NULL) {
        link_fail(l, ZOS_ERRCAT_TLS, "no TLS context for a TLS node");
        return ENTER_FAIL;
    }
    if (l->ssl != NULL) {
        SSL *ssl = SSL_new(l->ssl);
        if (ssl == NULL) {
            link_fail(l, ZOS_ERRCAT_TLS, "cannot create a TLS session");
            return ENTER_FAIL;
        }
        SSL_set_tlsext_host_name(ssl, l->node->address);
        new_session_slot(l, ssl);
        if (l->node->verify == ZOS_TLS_VERIFY_CA) {
            X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
            if (X509_VERIFY_PARAM_set1_ip_asc(param, l->node->address) != 1)
                SSL_set1_host(ssl, l->node->address);
        }
        l->bev = bufferevent_openssl_socket_new(l->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
        if (l->bev == NULL)
            SSL_free(ssl);
    } else {
        l->bev = bufferevent_socket_new(l->base, -1, opts);
    }
    if (l->bev == NULL) {
        link_fail(l, ZOS_ERRCAT_OTHER, "out of memory");
        return ENTER_FAIL;
    }
    if (l->opts.stats != NULL) {
        l->opts.stats->open++;
        l->opts.stats->reconnects += l->had_failure;
    }
    l->had_failure = false;
    bufferevent_setcb(l->bev, read_cb, NULL, event_cb, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    if (write_handshake(l) != 0) {
        link_fail(l, ZOS_ERRCAT_OTHER, "out of memory");
        return ENTER_FAIL;
    }
    timer_arm(l, l->opts.connect_timeout_ms);
    unsigned epoch = l->epoch;
    int rc = bufferevent_socket_connect_hostname(l->bev, l->dns, AF_UNSPEC, l->node->address,
                                                 l->node->port);
    if (epoch != l->epoch)
        return ENTER_FAIL; /* failed inside the call (a name resolved without evdns) */
    if (rc != 0) {
        describe_error(l, l->bev, BEV_EVENT_ERROR);
        return ENTER_FAIL;
    }
    return ENTER_OK;
}

int zos_link_attach(struct zos_link *l, struct bufferevent *bev)
{
    if (l->state != ZOS_LINK_IDLE || bev == NULL) {
        bufferevent_free(bev);
        return ZOS_ERR;
    }
    l->bev = bev;
    l->state = ZOS_LINK_CONNECTING;
    if (l->opts.stats != NULL)
        l->opts.stats->open++;
    bufferevent_setcb(l->bev, read_cb, NULL, event_cb, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    if (write_handshake(l) != 0) {
        link_fail(l, ZOS_ERRCAT_OTHER, "out of memory");
        return ZOS_ERR;
    }
    if (l->handshake_left == 0)
        set_ready(l);
    else
        timer_arm(l, l->opts.connect_timeout_ms);
    return ZOS_OK;
}

struct zos_link *zos_link_new(struct event_base *base, struct evdns_base *dns,
                              const struct zos_node_conf *node, SSL_CTX *ssl,
                              const struct zos_link_opts *opts)
{
    struct zos_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->base = base;
    l->dns = dns;
    l->node = node;
    l->ssl = node->tls ? ssl : NULL;
    l->opts = *opts;
    if (l->opts.connect_timeout_ms <= 0)
        l->opts.connect_timeout_ms = 5000;
    if (l->opts.backoff_max_ms < BACKOFF_MIN_MS)
        l->opts.backoff_max_ms = BACKOFF_MIN_MS;
    l->backoff_ms = BACKOFF_MIN_MS;
    l->state = ZOS_LINK_IDLE;
    l->used_ms = zos_stats_now_ms();
    l->timed = opts->stats != NULL && opts->stats->timed && !opts->pinned;
    scanner_init(l);
    l->outq = evbuffer_new();
    l->timer = evtimer_new(base, timer_cb, l);
    if (l->outq == NULL || l->timer == NULL) {
        zos_link_free(l);
        return NULL;
    }
    if (node->tls && ssl == NULL)
        zos_err_set(&l->err, ZOS_ERRCAT_TLS, "no TLS context");
    if (l->opts.watch != NULL)
        watch_add(l);
    return l;
}

void zos_link_free(struct zos_link *l)
{
    if (l == NULL)
        return;
    l->closed_fn = NULL;
    l->state_fn = NULL;    /* closing is not the node going down */
    l->opts.pinned = true; /* no backoff timer from the failure below */
    l->freeing = true;     /* its owner drops what is in flight: not the node's error */
    if (l->timer != NULL)
        link_fail(l, ZOS_ERRCAT_OTHER, "link closed");
    gate_leave(l); /* a link that was waiting for a slot */
    if (l->opts.watch != NULL)
        watch_remove(l);
    if (l->timer != NULL)
        event_free(l->timer);
    if (l->outq != NULL)
        evbuffer_free(l->outq);
    free(l->fifo);
    free(l);
}

static int admit_send(struct zos_link *l, zos_link_reply_fn fn, void *arg)
{
    if (l->failing)
        return -1;
    if (l->state == ZOS_LINK_DOWN) {
        /* Refused at once; but someone wants the node: retry within
         * DEMAND_RETRY_MS, so traffic resumes soon after it is back. */
        if (!l->opts.pinned && !l->demand && l->retry_at_ms - zos_now_ms() > DEMAND_RETRY_MS) {
            retry_in(l, jitter(DEMAND_RETRY_MS));
        }
        l->demand = true;
        return -1;
    }
    if (l->state == ZOS_LINK_IDLE && start_connect(l) != 0)
        return -1;
    gate_touch(l);
    l->used_ms = zos_stats_now_ms();
    if (fn != NULL && fifo_push(l, fn, arg) != 0)
        return -1;
    return 0;
}

/* Admits one request; a refused one is a request that failed. */
static int prepare_send(struct zos_link *l, zos_link_reply_fn fn, void *arg)
{
    int rc = admit_send(l, fn, arg);
    if (l->opts.stats != NULL) {
        l->opts.stats->requests++;
        l->opts.stats->errors += rc != 0;
    }
    return rc;
}

static struct evbuffer *send_target(struct zos_link *l)
{
    return l->state == ZOS_LINK_READY ? bufferevent_get_output(l->bev) : l->outq;
}

/* Plain links take the request's chains as they are.  TLS links get a copy
 * packed into few large chains: bufferevent_openssl makes one TLS record and
 * one write(2) per chain, and fifty clients' requests moved chain by chain
 * would cost fifty of each per loop turn. */
static void append(struct zos_link *l, struct evbuffer *dst, struct evbuffer *src, size_t len)
{
    char tmp[16384];
    if (l->ssl == NULL) {
        evbuffer_remove_buffer(src, dst, len);
        return;
    }
    while (len > 0) {
        size_t n = len < sizeof(tmp) ? len : sizeof(tmp);
        evbuffer_remove(src, tmp, n);
        evbuffer_add(dst, tmp, n);
        len -= n;
    }
}

int zos_link_send(struct zos_link *l, struct evbuffer *req, size_t len, zos_link_reply_fn fn,
                  void *arg)
{
    if (prepare_send(l, fn, arg) != 0)
        return ZOS_ERR;
    if (l->opts.stats != NULL)
        l->opts.stats->bytes_out += len;
    append(l, send_target(l), req, len);
    return ZOS_OK;
}

int zos_link_send_argv(struct zos_link *l, size_t argc, const char *const *argv,
                       const size_t *argvlen, zos_link_reply_fn fn, void *arg)
{
    if (prepare_send(l, fn, arg) != 0)
        return ZOS_ERR;
    struct evbuffer *out = send_target(l);
    size_t before = evbuffer_get_length(out);
    zos_resp_add_command(out, argc, argv, argvlen);
    if (l->opts.stats != NULL)
        l->opts.stats->bytes_out += evbuffer_get_length(out) - before;
    return ZOS_OK;
}

void zos_link_set_push(struct zos_link *l, zos_link_reply_fn fn, void *arg)
{
    l->push_fn = fn;
    l->push_arg = arg;
}

void zos_link_set_state_cb(struct zos_link *l,
                           void (*fn)(void *arg, enum zos_link_state s, const char *why), void *arg)
{
    l->state_fn = fn;
    l->state_arg = arg;
}

void zos_link_set_closed(struct zos_link *l, void (*fn)(void *arg, const char *err), void *arg)
{
    l->closed_fn = fn;
    l->closed_arg = arg;
}

enum zos_link_state zos_link_state(const struct zos_link *l)
{
    return l->state;
}

const char *zos_link_state_name(enum zos_link_state s)
{
    static const char *names[] = {"idle", "connecting", "ready", "down"};
    return names[s];
}

const char *zos_link_errstr(const struct zos_link *l)
{
    return l->err.text;
}

const struct zos_err *zos_link_err(const struct zos_link *l)
{
    return &l->err;
}

size_t zos_link_inflight(const struct zos_link *l)
{
    return l->count - l->handshake_left;
}

const struct zos_node_conf *zos_link_node(const struct zos_link *l)
{
    return l->node;
}

/* ---- the watch: is the node alive? ----
 *
 * One per node, over every link to it that has a connection.  A quiet link
 * proves nothing (a BLPOP, a long script, a big reply on its way): the node
 * is asked instead, with a PING on a link that is not busy -- an idle shared
 * link, else the control link -- whenever requests wait and nothing was read
 * for a tick, and every idle-ping interval anyway.  No answer within the
 * timeout (past a quiet time announced for a known long command) and the
 * node is hung: every link of it fails, so everything waiting gets an error. */

struct zos_link_watch {
    struct event_base *base;
    struct event *timer;
    int timeout_ms, idle_ms;
    struct zos_link *head; /* links of the node */
    struct zos_link *(*control)(void *arg);
    void *control_arg;
    long long heard_ms;         /* something was read from the node */
    long long quiet_ms;         /* a command keeps the node silent until then */
    unsigned sleepers;          /* such commands not answered yet */
    long long ping_ms;          /* when the PING in flight was sent */
    struct zos_link *ping_link; /* where it was sent */
    bool ping_out;
    bool fast;    /* armed for the short tick (requests wait) */
    bool failing; /* failing its links: their PING callbacks do nothing */
    unsigned round;
    unsigned long long hangs;
};

static void watch_cb(evutil_socket_t fd, short what, void *arg);

struct zos_link_watch *zos_link_watch_new(struct event_base *base, int timeout_ms, int idle_ping_ms)
{
    struct zos_link_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->timer = evtimer_new(base, watch_cb, w);
    if (w->timer == NULL) {
        free(w);
        return NULL;
    }
    w->base = base;
    w->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    w->idle_ms = idle_ping_ms > 0 ? idle_ping_ms : 15000;
    return w;
}

void zos_link_watch_set_control(struct zos_link_watch *w, struct zos_link *(*fn)(void *arg),
                                void *arg)
{
    w->control = fn;
    w->control_arg = arg;
}

void zos_link_watch_set_times(struct zos_link_watch *w, int timeout_ms, int idle_ping_ms)
{
    w->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    w->idle_ms = idle_ping_ms > 0 ? idle_ping_ms : 15000;
}

void zos_link_watch_quiet(struct zos_link_watch *w, long long ms)
{
    long long until = zos_stats_now_ms() + ms;
    if (until > w->quiet_ms)
        w->quiet_ms = until;
    w->sleepers++;
}

void zos_link_watch_quiet_done(struct zos_link_watch *w)
{
    if (w->sleepers > 0 && --w->sleepers == 0)
        w->quiet_ms = zos_stats_now_ms(); /* answered (or refused): it talks again from now on */
}

long long zos_link_watch_quiet_left(const struct zos_link_watch *w)
{
    long long left = w != NULL ? w->quiet_ms - zos_stats_now_ms() : 0;
    return left > 0 ? left : 0;
}

unsigned long long zos_link_watch_hangs(const struct zos_link_watch *w)
{
    return w->hangs;
}

static void watch_heard(struct zos_link_watch *w, long long now)
{
    w->heard_ms = now;
}

/* The tick: half the timeout while requests wait, else the idle interval. */
static int watch_tick_ms(const struct zos_link_watch *w)
{
    int t = w->timeout_ms / 2;
    return t < 50 ? 50 : t > w->idle_ms ? w->idle_ms : t;
}

static void watch_arm(struct zos_link_watch *w, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->timer, &tv);
}

/* A link got a connection: the watch runs (again) if it was idle. */
static void watch_kick(struct zos_link_watch *w)
{
    if (!evtimer_pending(w->timer, NULL))
        watch_arm(w, watch_tick_ms(w));
}

/* A link got a request to wait for: the watch looks at the short tick (it
 * may sleep for the idle interval when nothing waits). */
static void watch_wake(struct zos_link_watch *w)
{
    if (!w->fast) {
        w->fast = true;
        watch_arm(w, watch_tick_ms(w));
    }
}

static bool link_open(const struct zos_link *l)
{
    return l->bev != NULL && (l->state == ZOS_LINK_READY || l->state == ZOS_LINK_CONNECTING);
}

/* Every link of W that has a connection fails with WHY.  A failure's
 * callbacks may free other links of W: start over after each. */
static void watch_fail(struct zos_link_watch *w, enum zos_errcat cat, const char *why)
{
    unsigned round = ++w->round;
    w->failing = true;
    w->ping_out = false;
    w->ping_link = NULL;
    for (;;) {
        struct zos_link *l = w->head;
        while (l != NULL && (l->hung_mark == round || !link_open(l)))
            l = l->hnext;
        if (l == NULL)
            break;
        l->hung_mark = round;
        link_fail(l, cat, "%s", why);
    }
    w->failing = false;
}

static void watch_ping_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_link_watch *w = arg;
    char why[200];
    if (w->failing || !w->ping_out)
        return;
    w->ping_out = false;
    w->ping_link = NULL;
    /* Any answer will do: -BUSY from a node running a script is one.  No
     * descriptor to ask with is the proxy's trouble, not the node's. */
    if (reply != NULL || strcmp(err, "link closed") == 0 ||
        strncmp(err, "no descriptor left", 18) == 0)
        return;
    snprintf(why, sizeof(why), "the node does not answer: %s", err);
    w->hangs++;
    watch_fail(w, ZOS_ERRCAT_UNREACHABLE, why);
}

static bool watch_busy(const struct zos_link_watch *w, bool *open)
{
    bool busy = false;
    *open = false;
    for (const struct zos_link *l = w->head; l != NULL; l = l->hnext) {
        if (!link_open(l))
            continue;
        *open = true;
        busy = busy || l->count > 0;
    }
    return busy;
}

/* An idle shared link of W, ready: asking on it costs no connection. */
static struct zos_link *watch_idle_link(const struct zos_link_watch *w)
{
    for (struct zos_link *l = w->head; l != NULL; l = l->hnext)
        if (!l->opts.pinned && l->state == ZOS_LINK_READY && l->count == 0 &&
            evbuffer_get_length(l->outq) == 0)
            return l;
    return NULL;
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    static const char *const ping[] = {"PING"};
    static const size_t pinglen[] = {4};
    struct zos_link_watch *w = arg;
    long long now = zos_stats_now_ms();
    int tick = watch_tick_ms(w);
    bool open;
    bool busy = watch_busy(w, &open);

    w->fast = false;
    if (w->ping_out && w->ping_link->bev == NULL) {
        /* Its link waits for a connect slot or a descriptor (the proxy's
         * queue, not the node): the time starts once it connects. */
        w->ping_ms = now;
        w->fast = true;
        watch_arm(w, tick);
        return;
    }
    if (w->ping_out) {
        long long since = w->ping_ms > w->quiet_ms ? w->ping_ms : w->quiet_ms;
        if (now - since >= w->timeout_ms) {
            char why[120];
            snprintf(why, sizeof(why), "no answer to PING within %d ms (node hung?)",
                     w->timeout_ms);
            w->hangs++;
            watch_fail(w, ZOS_ERRCAT_UNREACHABLE, why);
            return; /* no link is open now: the next connect kicks the watch */
        }
        watch_arm(w, tick);
        return;
    }
    if (!open)
        return; /* nothing to watch until a link connects */
    long long silent = now - w->heard_ms;
    if ((busy && silent >= tick) || silent >= w->idle_ms) {
        struct zos_link *l = watch_idle_link(w);
        if (l == NULL && w->control != NULL)
            l = w->control(w->control_arg);
        /* A link that refuses (down, in its backoff) asks again next tick:
         * a node that is really gone fails its links by itself. */
        if (l != NULL && zos_link_send_argv(l, 1, ping, pinglen, watch_ping_cb, w) == ZOS_OK) {
            w->ping_out = true;
            w->ping_ms = now;
            w->ping_link = l;
        }
    }
    w->fast = busy || w->ping_out;
    watch_arm(w, w->fast ? tick : w->idle_ms);
}

void zos_link_watch_fail(struct zos_link_watch *w, const char *why)
{
    if (w != NULL)
        watch_fail(w, ZOS_ERRCAT_OTHER, why);
}

void zos_link_watch_free(struct zos_link_watch *w)
{
    if (w == NULL)
        return;
    for (struct zos_link *l = w->head; l != NULL; l = l->hnext)
        l->opts.watch = NULL; /* links outliving it are no longer watched */
    event_free(w->timer);
    free(w);
}

static void watch_add(struct zos_link *l)
{
    struct zos_link_watch *w = l->opts.watch;
    l->hnext = w->head;
    if (w->head != NULL)
        w->head->hprev = l;
    w->head = l;
}

static void watch_remove(struct zos_link *l)
{
    struct zos_link_watch *w = l->opts.watch;
    if (w->ping_link == l) {
        w->ping_link = NULL;
        w->ping_out = false;
    }
    if (l->hprev != NULL)
        l->hprev->hnext = l->hnext;
    else
        w->head = l->hnext;
    if (l->hnext != NULL)
        l->hnext->hprev = l->hprev;
    l->hprev = l->hnext = NULL;
}

size_t zos_link_backlog(const struct zos_link *l)
{
    return evbuffer_get_length(l->outq) +
           (l->bev != NULL ? evbuffer_get_length(bufferevent_get_output(l->bev)) : 0);
}

bool zos_link_busy(const struct zos_link *l, int busy_ms)
{
    if (l->state != ZOS_LINK_READY || l->count <= l->handshake_left)
        return false;
    if (zos_link_backlog(l) > BIG_REPLY)
        return true; /* the node reads slowly: what is sent now waits behind that */
    if (evbuffer_get_length(bufferevent_get_input(l->bev)) > BIG_REPLY)
        return true; /* a big reply is on its way: everything behind it waits for it */
    return zos_stats_now_ms() - l->fifo[l->head].at_ms > busy_ms;
}

long long zos_link_idle_ms(const struct zos_link *l)
{
    if (l->count > 0 || evbuffer_get_length(l->outq) > 0)
        return 0;
    return zos_stats_now_ms() - l->used_ms;
}

/* ---- TLS session resumption ----
 *
 * Contexts keep no sessions of their own; each new session is handed to the
 * slot of the link's node (opts.session), and the next connect to that node
 * offers it: a reconnect to a node seen before skips the full handshake. */

static int session_index = -1;

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = session_index >= 0 ? SSL_get_ex_data(ssl, session_index) : NULL;
    if (slot == NULL)
        return 0; /* OpenSSL frees it */
    SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;
}

static void new_session_slot(struct zos_link *l, SSL *ssl)
{
    if (l->opts.session == NULL || session_index < 0)
        return;
    SSL_set_ex_data(ssl, session_index, l->opts.session);
    if (*l->opts.session != NULL)
        SSL_set_session(ssl, *l->opts.session);
}

SSL_CTX *zos_link_ssl_ctx(const struct zos_node_conf *node, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (session_index < 0)
        session_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    if (node->verify == ZOS_TLS_VERIFY_CA) {
        if (SSL_CTX_load_verify_locations(ctx, node->verify_ca, NULL) != 1) {
            snprintf(err, errlen, "node '%s': cannot load CA file '%s'", node->name,
                     node->verify_ca);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        /* none, and sha256: the pin is checked after the handshake */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

/* ---- shared TLS contexts ---- */

struct tls_entry {
    char *ca; /* NULL: the context without a CA (none, sha256) */
    SSL_CTX *ctx;
};

struct zos_tls_set {
    struct tls_entry *e;
    size_t n;
};

struct zos_tls_set *zos_tls_set_new(void)
{
    return calloc(1, sizeof(struct zos_tls_set));
}

SSL_CTX *zos_tls_set_get(struct zos_tls_set *t, const struct zos_node_conf *node, char *err,
                         size_t errlen)
{
    const char *ca = node->verify == ZOS_TLS_VERIFY_CA ? node->verify_ca : NULL;
    for (size_t i = 0; i < t->n; i++) /* a handful of distinct settings at most */
        if ((ca == NULL) == (t->e[i].ca == NULL) && (ca == NULL || strcmp(ca, t->e[i].ca) == 0))
            return t->e[i].ctx;
    struct tls_entry *e = realloc(t->e, (t->n + 1) * sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->e = e;
    SSL_CTX *ctx = zos_link_ssl_ctx(node, err, errlen);
    char *copy = ca != NULL ? strdup(ca) : NULL;
    if (ctx == NULL || (ca != NULL && copy == NULL)) {
        if (ctx != NULL)
            snprintf(err, errlen, "out of memory");
        SSL_CTX_free(ctx);
        free(copy);
        return NULL;
    }
    t->e[t->n++] = (struct tls_entry){copy, ctx};
    return ctx;
}

void zos_tls_set_free(struct zos_tls_set *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        SSL_CTX_free(t->e[i].ctx);
        free(t->e[i].ca);
    }
    free(t->e);
    free(t);
}

/* router.c -- node table, links with the proxy's settings, command classes. */
#include "zos/router.h"
#include "zos/log.h"
#include "zos/util.h"
#include "zos/zos.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct route_entry {
    const char *name;
    enum zos_route route;
};

/* Sorted by name for bsearch; everything absent is ZOS_ROUTE_SHARED. */
static const struct route_entry routes[] = {
    {"blmove", ZOS_ROUTE_BLOCKING},     {"blmpop", ZOS_ROUTE_BLOCKING},
    {"blpop", ZOS_ROUTE_BLOCKING},      {"brpop", ZOS_ROUTE_BLOCKING},
    {"brpoplpush", ZOS_ROUTE_BLOCKING}, {"bzmpop", ZOS_ROUTE_BLOCKING},
    {"bzpopmax", ZOS_ROUTE_BLOCKING},   {"bzpopmin", ZOS_ROUTE_BLOCKING},
    {"discard", ZOS_ROUTE_ENDMULTI},    {"exec", ZOS_ROUTE_ENDMULTI},
    {"monitor", ZOS_ROUTE_MONITOR},     {"multi", ZOS_ROUTE_MULTI},
    {"psubscribe", ZOS_ROUTE_PUBSUB},   {"psync", ZOS_ROUTE_REFUSED},
    {"punsubscribe", ZOS_ROUTE_UNSUB},  {"replconf", ZOS_ROUTE_REFUSED},
    {"select", ZOS_ROUTE_SELECT},       {"ssubscribe", ZOS_ROUTE_PUBSUB},
    {"subscribe", ZOS_ROUTE_PUBSUB},    {"sunsubscribe", ZOS_ROUTE_UNSUB},
    {"sync", ZOS_ROUTE_REFUSED},        {"unsubscribe", ZOS_ROUTE_UNSUB},
    {"unwatch", ZOS_ROUTE_UNWATCH},     {"wait", ZOS_ROUTE_BLOCKING},
    {"waitaof", ZOS_ROUTE_BLOCKING},    {"watch", ZOS_ROUTE_WATCH},
    {"xread", ZOS_ROUTE_XREAD},         {"xreadgroup", ZOS_ROUTE_XREAD},
};

static int route_cmp(const void *key, const void *elem)
{
    return strcasecmp(key, ((const struct route_entry *)elem)->name);
}

enum zos_route zos_router_route(const char *name, size_t len)
{
    char key[16];
    if (len < 4 || len >= sizeof(key))
        return ZOS_ROUTE_SHARED; /* every command of the table has 4 to 15 letters */
    memcpy(key, name, len);
    key[len] = '\0';
    const struct route_entry *e =
        bsearch(key, routes, ZOS_ARRAY_LEN(routes), sizeof(routes[0]), route_cmp);
    return e != NULL ? e->route : ZOS_ROUTE_SHARED;
}

struct zos_link *zos_router_link_new(const struct zos_router *r, struct zos_node *node, bool pinned,
                                     bool resp3, int db)
{
    const struct zos_proxy_conf *pc = &r->conf->proxy;
    struct zos_link_opts opts = {
        .pinned = pinned,
        .connect_timeout_ms = pc->connect_timeout_ms,
        .backoff_max_ms = pc->backoff_max_ms,
        .reply_limits = &r->reply_limits,
        .gate = r->gate,
        .session = &node->session,
        .resp3 = resp3,
        .select_db = db >= 0,
        .db = db,
        .watch = node->watch,
        .stats = &node->stats->links,
    };
    return zos_link_new(r->base, r->dns, node->conf, node->ssl, &opts);
}

int zos_router_db(const struct zos_node *n, int db)
{
    return db < 0 ? n->conf->db : db;
}

static void shared_state(void *arg, enum zos_link_state s, const char *why);

static struct zos_lane *lane_new(struct zos_router *r, struct zos_node *n, int db, bool resp3)
{
    struct zos_lane *ln = calloc(1, sizeof(*ln));
    if (ln == NULL)
        return NULL;
    ln->db = db;
    ln->resp3 = resp3;
    ln->link = zos_router_link_new(r, n, false, resp3, db);
    if (ln->link == NULL) {
        free(ln);
        return NULL;
    }
    zos_link_set_state_cb(ln->link, shared_state, n);
    return ln;
}

struct zos_link *zos_router_lane(struct zos_router *r, struct zos_node *n, int db, bool resp3)
{
    int busy_ms = r->conf->proxy.lane_busy_ms, count = 0;
    struct zos_lane *best = NULL, *down = NULL, **tail = &n->lanes;
    size_t best_load = SIZE_MAX;

    db = zos_router_db(n, db);
    for (struct zos_lane *ln = n->lanes; ln != NULL; tail = &ln->next, ln = ln->next) {
        if (ln->db != db || ln->resp3 != resp3)
            continue;
        count++;
        if (zos_link_state(ln->link) == ZOS_LINK_DOWN) {
            down = down != NULL ? down : ln;
            continue;
        }
        if (!zos_link_busy(ln->link, busy_ms))
            return ln->link;
        size_t load = zos_link_inflight(ln->link);
        if (load < best_load)
            best = ln, best_load = load;
    }
    if (down != NULL)
        return down->link; /* refuses at once, and its backoff says when to try again */
    /* A node asleep on a known long command (DEBUG SLEEP) answers no lane:
     * a new one would only time out its handshake. */
    if (count < r->conf->proxy.max_lanes &&
        (count == 0 || zos_link_watch_quiet_left(n->watch) == 0)) {
        struct zos_lane *ln = lane_new(r, n, db, resp3);
        if (ln != NULL) {
            *tail = ln;
            return ln->link;
        }
    }
    return best != NULL ? best->link : NULL;
}

size_t zos_router_inflight(const struct zos_node *n)
{
    size_t k = n->control != NULL ? zos_link_inflight(n->control) : 0;
    for (const struct zos_lane *ln = n->lanes; ln != NULL; ln = ln->next)
        k += zos_link_inflight(ln->link);
    return k;
}

void zos_router_lanes_text(const struct zos_node *n, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (const struct zos_lane *ln = n->lanes; ln != NULL; ln = ln->next) {
        bool seen = false;
        int k = 0;
        for (const struct zos_lane *m = n->lanes; m != ln; m = m->next)
            seen = seen || (m->db == ln->db && m->resp3 == ln->resp3);
        if (seen)
            continue;
        for (const struct zos_lane *m = ln; m != NULL; m = m->next)
            k += m->db == ln->db && m->resp3 == ln->resp3;
        int w = snprintf(buf + off, len - off, "%slanes_db%d%s=%d", off > 0 ? "," : "", ln->db,
                         ln->resp3 ? "_resp3" : "", k);
        if (w < 0 || (size_t)w >= len - off)
            return;
        off += (size_t)w;
    }
}

struct zos_link *zos_router_pin_take(struct zos_router *r, struct zos_node *n, int db, bool resp3,
                                     char *err, size_t errlen)
{
    db = zos_router_db(n, db);
    if (n->pinned >= r->conf->proxy.max_pinned) {
        snprintf(err, errlen,
                 "ERR node '%s': too many pinned connections in use for blocking or stateful "
                 "commands (max-pinned %d)",
                 n->conf->name, r->conf->proxy.max_pinned);
        return NULL;
    }
    struct zos_link *l = NULL;
    for (struct zos_pooled **pp = &n->pool; *pp != NULL;) {
        struct zos_pooled *e = *pp;
        if (zos_link_state(e->link) != ZOS_LINK_READY) { /* lost while idle */
            *pp = e->next;
            n->npool--;
            zos_link_free(e->link);
            free(e);
            continue;
        }
        if (l == NULL && e->db == db && e->resp3 == resp3) {
            *pp = e->next;
            n->npool--;
            l = e->link;
            free(e);
            continue;
        }
        pp = &e->next;
    }
    if (l == NULL)
        l = zos_router_link_new(r, n, true, resp3, db);
    if (l == NULL) {
        snprintf(err, errlen, "ERR out of memory");
        return NULL;
    }
    n->pinned++;
    return l;
}

void zos_router_pin_give(struct zos_router *r, struct zos_node *n, struct zos_link *l, int db,
                         bool resp3, bool clean)
{
    n->pinned--;
    zos_link_set_closed(l, NULL, NULL);
    zos_link_set_push(l, NULL, NULL);
    struct zos_pooled *e = NULL;
    if (clean && zos_link_state(l) == ZOS_LINK_READY && zos_link_inflight(l) == 0 &&
        n->npool < (size_t)r->conf->proxy.pool_size && (e = calloc(1, sizeof(*e))) != NULL) {
        *e = (struct zos_pooled){n->pool, l, zos_router_db(n, db), resp3};
        n->pool = e;
        n->npool++;
        return;
    }
    zos_link_free(l);
}

struct zos_link *zos_router_control(struct zos_router *r, struct zos_node *n)
{
    if (n->control == NULL)
        n->control = zos_router_link_new(r, n, false, false, -1);
    return n->control;
}

static struct zos_link *watch_control(void *arg)
{
    struct zos_node *n = arg;
    return zos_router_control(n->router, n);
}

/* Extra lanes, pooled links and the control link that sat idle for
 * pool-idle are closed (the first lane stays: the node's health). */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_router *r = arg;
    long long idle = r->conf->proxy.pool_idle_ms;
    for (size_t i = 0; i < r->nnodes; i++) {
        struct zos_node *n = &r->nodes[i];
        for (struct zos_lane **pp = &n->lanes[0].next; *pp != NULL;) {
            struct zos_lane *ln = *pp;
            if (zos_link_idle_ms(ln->link) >= idle) {
                *pp = ln->next;
                zos_link_free(ln->link);
                free(ln);
            } else {
                pp = &ln->next;
            }
        }
        for (struct zos_pooled **pp = &n->pool; *pp != NULL;) {
            struct zos_pooled *e = *pp;
            if (zos_link_idle_ms(e->link) >= idle || zos_link_state(e->link) != ZOS_LINK_READY) {
                *pp = e->next;
                n->npool--;
                zos_link_free(e->link);
                free(e);
            } else {
                pp = &e->next;
            }
        }
        if (n->control != NULL && zos_link_idle_ms(n->control) >= idle) {
            zos_link_free(n->control);
            n->control = NULL;
        }
    }
    int every = r->conf->proxy.pool_idle_ms / 4;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    evtimer_add(r->sweep, &tv);
}

/* Shared links log their ups and downs; a node that stays down logs once. */
static void shared_state(void *arg, enum zos_link_state s, const char *why)
{
    struct zos_node *n = arg;
    if (s == ZOS_LINK_READY) {
        log_info("node '%s': connected", n->conf->name);
        n->down_logged = false;
    } else if (!n->down_logged) {
        log_warn("node '%s': unavailable: %s", n->conf->name, why);
        n->down_logged = true;
    }
}

/* The first lane is the node's state (INFO, ZOS.NODES): when it last changed. */
static void first_lane_state(void *arg, enum zos_link_state s, const char *why)
{
    struct zos_node *n = arg;
    n->stats->changed_ms = zos_stats_now_ms();
    shared_state(arg, s, why);
}

struct zos_router *zos_router_new(struct event_base *base, struct evdns_base *dns,
                                  const struct zos_conf *conf, char *err, size_t errlen)
{
    struct zos_router *r = calloc(1, sizeof(*r));
    if (r == NULL ||
        (conf->nnodes > 0 && (r->nodes = calloc(conf->nnodes, sizeof(*r->nodes))) == NULL)) {
        snprintf(err, errlen, "out of memory");
        free(r);
        return NULL;
    }
    r->base = base;
    r->dns = dns;
    if ((r->tls = zos_tls_set_new()) == NULL ||
        (r->gate = zos_link_gate_new(base, conf->proxy.max_connecting, 0)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    r->conf = conf;
    r->nnodes = conf->nnodes;
    r->reply_limits = (struct zos_resp_reply_limits){
        .max_bulk = conf->proxy.reply_max_bulk,
        .max_elements = conf->proxy.reply_max_elements,
        .max_depth = conf->proxy.reply_max_depth,
        .resp2_only = true,
    };
    for (size_t i = 0; i < conf->nnodes; i++) {
        struct zos_node *n = &r->nodes[i];
        n->conf = &conf->nodes[i];
        n->index = i;
        if (n->conf->tls && (n->ssl = zos_tls_set_get(r->tls, n->conf, err, errlen)) == NULL)
            goto fail;
        n->router = r;
        n->watch =
            zos_link_watch_new(base, conf->proxy.node_timeout_ms, conf->proxy.ping_interval_ms);
        n->stats = zos_node_stats_new();
        if (n->watch == NULL || n->stats == NULL ||
            (n->lanes = lane_new(r, n, n->conf->db, false)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        n->shared = n->lanes->link;
        zos_link_set_state_cb(n->shared, first_lane_state, n);
        zos_link_watch_set_control(n->watch, watch_control, n);
    }
    if ((r->sweep = evtimer_new(base, sweep_cb, r)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sweep_cb(-1, 0, r); /* arms it */
    struct zos_node_conf *def = zos_conf_default_node(conf);
    r->default_node = def != NULL ? zos_router_node(r, def->name, strlen(def->name)) : NULL;
    return r;
fail:
    zos_router_free(r);
    return NULL;
}

void zos_router_free(struct zos_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nnodes; i++) {
        struct zos_node *n = &r->nodes[i];
        while (n->lanes != NULL) {
            struct zos_lane *ln = n->lanes;
            n->lanes = ln->next;
            zos_link_free(ln->link);
            free(ln);
        }
        while (n->pool != NULL) {
            struct zos_pooled *e = n->pool;
            n->pool = e->next;
            zos_link_free(e->link);
            free(e);
        }
        zos_link_free(n->control);
        zos_link_watch_free(n->watch);
    }
    if (r->sweep != NULL)
        event_free(r->sweep);
    for (size_t i = 0; i < r->nnodes; i++) {
        SSL_SESSION_free(r->nodes[i].session);
        zos_node_stats_free(r->nodes[i].stats); /* after every link that counts in it */
    }
    zos_tls_set_free(r->tls); /* after the links that borrow its contexts */
    zos_link_gate_free(r->gate);
    free(r->nodes);
    free(r);
}

struct zos_node *zos_router_node(const struct zos_router *r, const char *name, size_t len)
{
    size_t i; /* the router's nodes are the config's, in the same order */
    if (!zos_index_get(r->conf->index, name, len, &i) || i >= r->nnodes)
        return NULL;
    return &r->nodes[i];
}

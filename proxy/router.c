/* router.c -- node table, links with the proxy's settings, command classes. */
#include "router.h"
#include "zos/job.h"
#include "log.h"
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

bool zos_router_route_entry(size_t i, const char **name, enum zos_route *route)
{
    if (i >= ZOS_ARRAY_LEN(routes))
        return false;
    *name = routes[i].name;
    *route = routes[i].route;
    return true;
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
static void lanes_sweep(struct zos_lane **pp, long long idle);

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

#define LANES_PER_NODE 64 /* past this, idle lanes of other dbs close first */

/* Closes idle lanes of N other than the first (a client looping over
 * SELECT n must not leave a lane per db behind it). */
static void lanes_trim(struct zos_node *n)
{
    size_t count = 0;
    for (struct zos_lane *ln = n->lanes; ln != NULL; ln = ln->next)
        count++;
    if (count >= LANES_PER_NODE)
        lanes_sweep(&n->lanes->next, 1);
}

struct zos_link *zos_router_lane(struct zos_router *r, struct zos_node *n, int db, bool resp3,
                                 bool heavy)
{
    int busy_ms = r->conf->proxy.lane_busy_ms, count = 0;
    struct zos_lane *best = NULL, *down = NULL, **tail;
    size_t best_load = SIZE_MAX;

    db = zos_router_db(n, db);
    for (struct zos_lane *ln = n->lanes; ln != NULL; ln = ln->next) {
        if (ln->db != db || ln->resp3 != resp3)
            continue;
        count++;
        size_t load = zos_link_inflight(ln->link);
        ln->heavy = ln->heavy && load > 0; /* its big reply came */
        if (zos_link_state(ln->link) == ZOS_LINK_DOWN) {
            down = down != NULL ? down : ln;
            continue;
        }
        /* A big reply on its way holds up everything behind it: a heavy
         * request wants a lane of its own, the others keep off its lane. */
        bool free = heavy ? load == 0 : !ln->heavy && !zos_link_busy(ln->link, busy_ms);
        if (free) {
            ln->heavy = heavy;
            return ln->link;
        }
        if (load < best_load && (heavy || !ln->heavy))
            best = ln, best_load = load;
    }
    /* Every lane of the key is busy: another one, unless the node is down
     * (a lane of it failed) or asleep on a known long command (DEBUG SLEEP:
     * a new one would only time out its handshake). */
    if (count < r->conf->proxy.max_lanes && down == NULL &&
        (count == 0 || zos_link_watch_quiet_left(n->watch) == 0)) {
        if (count == 0)
            lanes_trim(n);
        struct zos_lane *ln = lane_new(r, n, db, resp3);
        if (ln != NULL) {
            for (tail = &n->lanes; *tail != NULL; tail = &(*tail)->next)
                ;
            *tail = ln;
            ln->heavy = heavy;
            return ln->link;
        }
    }
    /* A lane the node refused for being busy (a script runs: SELECT answered
     * -BUSY) answers at once with that, as the node answers its clients;
     * otherwise a busy lane that is there beats one that is down. */
    if (down != NULL && (best == NULL || strstr(zos_link_errstr(down->link), "failed: BUSY") ||
                         strstr(zos_link_errstr(down->link), "failed: LOADING")))
        return down->link; /* refuses at once; its backoff says when again */
    if (best == NULL)      /* every lane carries a big reply: the least loaded of all */
        for (struct zos_lane *ln = n->lanes; ln != NULL; ln = ln->next)
            if (ln->db == db && ln->resp3 == resp3 && zos_link_state(ln->link) != ZOS_LINK_DOWN &&
                (best == NULL || zos_link_inflight(ln->link) < best_load))
                best = ln, best_load = zos_link_inflight(ln->link);
    if (best != NULL)
        best->heavy = best->heavy || heavy;
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
    if (clean && zos_link_node(l) == n->conf && !n->removed &&
        zos_link_state(l) == ZOS_LINK_READY && zos_link_inflight(l) == 0 &&
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
    if (n->control == NULL) /* db 0: no SELECT, which a node running a script answers -BUSY */
        n->control = zos_router_link_new(r, n, false, false, 0);
    return n->control;
}

static struct zos_link *watch_control(void *arg)
{
    struct zos_node *n = arg;
    return zos_router_control(n->router, n);
}

static void lanes_free(struct zos_lane **head)
{
    while (*head != NULL) {
        struct zos_lane *ln = *head;
        *head = ln->next;
        zos_link_free(ln->link);
        free(ln);
    }
}

/* Frees the lanes of *PP that sat idle IDLE ms (0: idle at all). */
static void lanes_sweep(struct zos_lane **pp, long long idle)
{
    while (*pp != NULL) {
        struct zos_lane *ln = *pp;
        if (zos_link_idle_ms(ln->link) >= (idle > 0 ? idle : 1)) {
            *pp = ln->next;
            zos_link_free(ln->link);
            free(ln);
        } else {
            pp = &ln->next;
        }
    }
}

static void pool_sweep(struct zos_node *n, long long idle)
{
    for (struct zos_pooled **pp = &n->pool; *pp != NULL;) {
        struct zos_pooled *e = *pp;
        if (idle == 0 || zos_link_idle_ms(e->link) >= idle ||
            zos_link_state(e->link) != ZOS_LINK_READY) {
            *pp = e->next;
            n->npool--;
            zos_link_free(e->link);
            free(e);
        } else {
            pp = &e->next;
        }
    }
}

/* Jobs of replaced settings are freed once nothing waits on them; then the
 * links they used may go with the other draining ones. */
static bool old_jobs_sweep(struct zos_node *n)
{
    size_t k = 0;
    for (size_t i = 0; i < n->nold_jobs; i++) {
        if (zos_jobs_pending(n->old_jobs[i]) == 0)
            zos_jobs_free(n->old_jobs[i]);
        else
            n->old_jobs[k++] = n->old_jobs[i];
    }
    n->nold_jobs = k;
    return k == 0;
}

/* Extra lanes, pooled links and the control link that sat idle for
 * pool-idle are closed (the first lane stays: the node's health); links of
 * settings a reload replaced, and of removed nodes, once idle at all. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_router *r = arg;
    long long idle = r->conf->proxy.pool_idle_ms;
    for (size_t i = 0; i < r->nnodes; i++) {
        struct zos_node *n = r->nodes[i];
        lanes_sweep(&n->lanes->next, idle);
        pool_sweep(n, idle);
        if (n->control != NULL && zos_link_idle_ms(n->control) >= idle) {
            zos_link_free(n->control);
            n->control = NULL;
        }
        if (old_jobs_sweep(n))
            lanes_sweep(&n->draining, 0);
    }
    for (struct zos_node *n = r->retired; n != NULL; n = n->next_retired) {
        if (n->jobs != NULL && zos_jobs_pending(n->jobs) == 0) {
            zos_jobs_free(n->jobs);
            n->jobs = NULL;
        }
        pool_sweep(n, 0);
        if (n->control != NULL && zos_link_inflight(n->control) == 0) {
            zos_link_free(n->control);
            n->control = NULL;
        }
        if (old_jobs_sweep(n) && n->jobs == NULL) {
            lanes_sweep(&n->draining, 0);
            lanes_sweep(&n->lanes, 0);
            n->shared = NULL; /* its first lane may be gone: nothing uses it any more */
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

static void node_free(struct zos_node *n)
{
    zos_jobs_free(n->jobs); /* before the links it borrows */
    for (size_t i = 0; i < n->nold_jobs; i++)
        zos_jobs_free(n->old_jobs[i]);
    free(n->old_jobs);
    lanes_free(&n->lanes);
    lanes_free(&n->draining);
    pool_sweep(n, 0);
    zos_link_free(n->control);
    zos_link_watch_free(n->watch);
    SSL_SESSION_free(n->session);
    zos_node_stats_free(n->stats); /* after every link that counts in it */
    free(n);
}

/* A node for NC, with its watch and first lane (r->conf already the config
 * NC belongs to).  NULL with ERR. */
static struct zos_node *node_new(struct zos_router *r, struct zos_node_conf *nc, char *err,
                                 size_t errlen)
{
    struct zos_node *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->conf = nc;
    n->router = r;
    if (nc->tls && (n->ssl = zos_tls_set_get(r->tls, nc, err, errlen)) == NULL) {
        free(n);
        return NULL;
    }
    n->watch = zos_link_watch_new(r->base, r->conf->proxy.node_timeout_ms,
                                  r->conf->proxy.ping_interval_ms);
    n->stats = zos_node_stats_new();
    if (n->watch == NULL || n->stats == NULL ||
        (n->lanes = lane_new(r, n, nc->db, false)) == NULL) {
        snprintf(err, errlen, "out of memory");
        node_free(n);
        return NULL;
    }
    n->shared = n->lanes->link;
    zos_link_set_state_cb(n->shared, first_lane_state, n);
    zos_link_watch_set_control(n->watch, watch_control, n);
    return n;
}

static void set_default(struct zos_router *r)
{
    struct zos_node_conf *def = zos_conf_default_node(r->conf);
    r->default_node = def != NULL ? zos_router_node(r, def->name, strlen(def->name)) : NULL;
}

struct zos_router *zos_router_new(struct event_base *base, struct evdns_base *dns,
                                  const struct zos_conf *conf, char *err, size_t errlen)
{
    struct zos_router *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->nodes = calloc(conf->nnodes + 1, sizeof(*r->nodes))) == NULL) {
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
    r->reply_limits = (struct zos_resp_reply_limits){
        .max_bulk = conf->proxy.reply_max_bulk,
        .max_elements = conf->proxy.reply_max_elements,
        .max_depth = conf->proxy.reply_max_depth,
        .resp2_only = true,
    };
    for (size_t i = 0; i < conf->nnodes; i++) {
        if ((r->nodes[i] = node_new(r, &conf->nodes[i], err, errlen)) == NULL)
            goto fail;
        r->nnodes++;
    }
    if ((r->sweep = evtimer_new(base, sweep_cb, r)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sweep_cb(-1, 0, r); /* arms it */
    set_default(r);
    return r;
fail:
    zos_router_free(r);
    return NULL;
}

void zos_router_free(struct zos_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nnodes; i++)
        node_free(r->nodes[i]);
    while (r->retired != NULL) {
        struct zos_node *n = r->retired;
        r->retired = n->next_retired;
        node_free(n);
    }
    if (r->sweep != NULL)
        event_free(r->sweep);
    zos_tls_set_free(r->tls); /* after the links that borrow its contexts */
    zos_link_gate_free(r->gate);
    free(r->nodes);
    free(r);
}

/* Whether links made for A would reach another place or say other things
 * than links made for B. */
static bool links_differ(const struct zos_node_conf *a, const struct zos_node_conf *b)
{
    return strcmp(a->address, b->address) != 0 || a->port != b->port || a->tls != b->tls ||
           a->verify != b->verify || a->db != b->db ||
           (a->verify == ZOS_TLS_VERIFY_CA && strcmp(a->verify_ca, b->verify_ca) != 0) ||
           (a->verify == ZOS_TLS_VERIFY_SHA256 &&
            memcmp(a->verify_sha256, b->verify_sha256, sizeof(a->verify_sha256)) != 0) ||
           (a->secret == NULL) != (b->secret == NULL) ||
           (a->secret != NULL && strcmp(a->secret, b->secret) != 0);
}

static void lanes_append(struct zos_lane **to, struct zos_lane *list)
{
    while (*to != NULL)
        to = &(*to)->next;
    *to = list;
}

/* N's connection settings changed to NC: what is in flight finishes on the
 * old links, which then close; new requests get new links. */
static int node_retune(struct zos_router *r, struct zos_node *n, struct zos_node_conf *nc,
                       SSL_CTX *ssl)
{
    struct zos_lane *fresh = NULL;
    const struct zos_node_conf *old = n->conf;
    n->conf = nc;
    n->ssl = ssl;
    if ((fresh = lane_new(r, n, nc->db, false)) == NULL) {
        n->conf = (struct zos_node_conf *)old;
        return -1;
    }
    if (n->jobs != NULL) {
        struct zos_jobs **oj = realloc(n->old_jobs, (n->nold_jobs + 1) * sizeof(*oj));
        if (oj == NULL) {
            zos_link_free(fresh->link);
            free(fresh);
            n->conf = (struct zos_node_conf *)old;
            return -1;
        }
        n->old_jobs = oj;
        n->old_jobs[n->nold_jobs++] = n->jobs;
        n->jobs = NULL;
    }
    lanes_append(&n->draining, n->lanes);
    if (n->control != NULL) {
        struct zos_lane *cl = calloc(1, sizeof(*cl));
        if (cl != NULL) {
            cl->link = n->control;
            lanes_append(&n->draining, cl);
        } else {
            zos_link_free(n->control);
        }
        n->control = NULL;
    }
    pool_sweep(n, 0);
    zos_link_set_state_cb(n->shared, shared_state, n); /* no longer the node's state */
    n->lanes = fresh;
    n->shared = fresh->link;
    zos_link_set_state_cb(n->shared, first_lane_state, n);
    n->stats->changed_ms = zos_stats_now_ms();
    n->down_logged = false;
    if (strcmp(old->address, nc->address) != 0 || old->port != nc->port) {
        SSL_SESSION_free(n->session); /* another server */
        n->session = NULL;
    }
    return 0;
}

int zos_router_reload(struct zos_router *r, const struct zos_conf *conf, char *summary, size_t slen,
                      char *err, size_t errlen)
{
    const struct zos_conf *old = r->conf;
    struct zos_node **nodes = calloc(conf->nnodes + 1, sizeof(*nodes));
    SSL_CTX **ssl = calloc(conf->nnodes + 1, sizeof(*ssl));
    bool *kept = calloc(r->nnodes + 1, sizeof(*kept));
    size_t added = 0, removed = 0, changed = 0, i, j;
    int rc = -1;

    if (nodes == NULL || ssl == NULL || kept == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* First what can fail: TLS contexts and the new nodes; nothing of the
     * running table changes until all of it is there. */
    r->conf = conf;
    for (i = 0; i < conf->nnodes; i++) {
        struct zos_node_conf *nc = &conf->nodes[i];
        if (nc->tls && (ssl[i] = zos_tls_set_get(r->tls, nc, err, errlen)) == NULL)
            goto undo;
        if (zos_index_get(old->index, nc->name, strlen(nc->name), &j) && j < r->nnodes)
            continue;
        if ((nodes[i] = node_new(r, nc, err, errlen)) == NULL)
            goto undo;
        added++;
    }
    for (i = 0; i < conf->nnodes; i++) {
        struct zos_node_conf *nc = &conf->nodes[i];
        if (nodes[i] != NULL)
            continue;
        zos_index_get(old->index, nc->name, strlen(nc->name), &j);
        struct zos_node *n = r->nodes[j];
        kept[j] = true;
        nodes[i] = n;
        if (!links_differ(n->conf, nc)) {
            n->conf = nc; /* passwords, admin, sshkey, ...: the links stay */
        } else if (node_retune(r, n, nc, ssl[i]) == 0) {
            changed++;
        } else {
            log_warn("reload: node '%s': out of memory, its old settings stay", nc->name);
            n->conf = nc;
        }
    }
    for (j = 0; j < r->nnodes; j++) {
        if (kept[j])
            continue;
        struct zos_node *n = r->nodes[j];
        n->removed = true;
        n->next_retired = r->retired;
        r->retired = n;
        removed++;
    }
    free(r->nodes);
    r->nodes = nodes;
    r->nnodes = conf->nnodes;
    nodes = NULL;
    r->reply_limits.max_bulk = conf->proxy.reply_max_bulk;
    r->reply_limits.max_elements = conf->proxy.reply_max_elements;
    r->reply_limits.max_depth = conf->proxy.reply_max_depth;
    zos_link_gate_set_max_connecting(r->gate, conf->proxy.max_connecting);
    for (i = 0; i < r->nnodes; i++)
        zos_link_watch_set_times(r->nodes[i]->watch, conf->proxy.node_timeout_ms,
                                 conf->proxy.ping_interval_ms);
    set_default(r);
    snprintf(summary, slen, "%zu nodes: %zu added, %zu removed, %zu changed", r->nnodes, added,
             removed, changed);
    rc = 0;
    goto done;
undo:
    for (i = 0; i < conf->nnodes; i++)
        if (nodes[i] != NULL)
            node_free(nodes[i]);
    r->conf = old;
done:
    free(nodes);
    free(ssl);
    free(kept);
    return rc;
}

struct zos_node *zos_router_node(const struct zos_router *r, const char *name, size_t len)
{
    size_t i; /* the router's nodes are the config's, in the same order */
    if (!zos_index_get(r->conf->index, name, len, &i) || i >= r->nnodes)
        return NULL;
    return r->nodes[i];
}

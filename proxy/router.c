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
                                     bool resp3)
{
    const struct zos_proxy_conf *pc = &r->conf->proxy;
    struct zos_link_opts opts = {
        .pinned = pinned,
        .connect_timeout_ms = pc->connect_timeout_ms,
        .ping_interval_ms = pinned ? 0 : pc->ping_interval_ms,
        .backoff_max_ms = pc->backoff_max_ms,
        .reply_limits = &r->reply_limits,
        .gate = r->gate,
        .session = &node->session,
        .resp3 = resp3,
    };
    return zos_link_new(r->base, r->dns, node->conf, node->ssl, &opts);
}

static void shared_state(void *arg, enum zos_link_state s, const char *why);

struct zos_link *zos_router_shared(const struct zos_router *r, struct zos_node *n, bool resp3)
{
    if (!resp3)
        return n->shared;
    if (n->shared3 == NULL && (n->shared3 = zos_router_link_new(r, n, false, true)) != NULL)
        zos_link_set_state_cb(n->shared3, shared_state, n);
    return n->shared3;
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
        if ((n->shared = zos_router_link_new(r, n, false, false)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        zos_link_set_state_cb(n->shared, shared_state, n);
    }
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
        zos_link_free(r->nodes[i].shared);
        zos_link_free(r->nodes[i].shared3);
    }
    for (size_t i = 0; i < r->nnodes; i++)
        SSL_SESSION_free(r->nodes[i].session);
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

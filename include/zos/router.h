/* router.h -- the proxy's node table and the routing class of each command.
 *
 * Each node has one shared link, opened on first use and kept, that carries
 * the pipelined requests of every client.  Blocking and stateful commands get
 * a link pinned to one client instead (see client.c); the router counts them
 * against the node's max-pinned cap.
 */
#ifndef ZOS_ROUTER_H
#define ZOS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "zos/conf.h"
#include "zos/resp.h"
#include "zos/link.h"

struct evdns_base;

struct zos_node {
    struct zos_node_conf *conf; /* borrowed from the router's conf */
    struct zos_link *shared;    /* RESP2 clients */
    struct zos_link *shared3;   /* RESP3 clients; NULL until one comes */
    SSL_CTX *ssl;               /* NULL for a plain node; borrowed from the router's set */
    SSL_SESSION *session;       /* the last TLS session with the node, offered on reconnect */
    int pinned;                 /* pinned links open now */
    unsigned long long requests;
    unsigned long long errors;
    size_t index;
    bool down_logged; /* "unavailable" logged since the last "connected" */
};

struct zos_router {
    struct event_base *base;
    struct evdns_base *dns;
    const struct zos_conf *conf; /* borrowed */
    struct zos_node *nodes;
    size_t nnodes;
    struct zos_node *default_node;             /* NULL when none can be chosen */
    struct zos_resp_reply_limits reply_limits; /* of every link */
    struct zos_tls_set *tls;                   /* the nodes' SSL_CTXs, one per setting */
    struct zos_link_gate *gate;                /* connects in progress, descriptors open */
};

/* The node table for CONF (borrowed, must outlive the router).  NULL with ERR. */
struct zos_router *zos_router_new(struct event_base *base, struct evdns_base *dns,
                                  const struct zos_conf *conf, char *err, size_t errlen);
void zos_router_free(struct zos_router *r);

/* Node by name (LEN bytes, not NUL-terminated), or NULL. */
struct zos_node *zos_router_node(const struct zos_router *r, const char *name, size_t len);

/* A new link to NODE with the proxy's settings; PINNED for one client;
 * RESP3: the link speaks RESP3 (HELLO 3). */
struct zos_link *zos_router_link_new(const struct zos_router *r, struct zos_node *node, bool pinned,
                                     bool resp3);

/* NODE's shared link for clients of that protocol: RESP2 clients share one,
 * RESP3 clients another (made on first need), so neither ever sees the
 * other's bytes.  NULL only when out of memory. */
struct zos_link *zos_router_shared(const struct zos_router *r, struct zos_node *n, bool resp3);

/* Routing classes of commands. */
enum zos_route {
    ZOS_ROUTE_SHARED,   /* plain command: the node's shared link */
    ZOS_ROUTE_BLOCKING, /* pinned link for this request (BLPOP, WAIT, XREAD BLOCK, ...) */
    ZOS_ROUTE_MULTI,    /* MULTI: pinned until EXEC/DISCARD */
    ZOS_ROUTE_ENDMULTI, /* EXEC, DISCARD */
    ZOS_ROUTE_WATCH,    /* WATCH: pinned until EXEC/DISCARD/UNWATCH */
    ZOS_ROUTE_UNWATCH,
    ZOS_ROUTE_SELECT,   /* pinned for good: the DB lives on that connection */
    ZOS_ROUTE_PUBSUB,   /* SUBSCRIBE, PSUBSCRIBE: the pinned link becomes a tunnel */
    ZOS_ROUTE_UNSUB,    /* UNSUBSCRIBE, PUNSUBSCRIBE */
    ZOS_ROUTE_MONITOR,  /* tunnel until the client closes */
    ZOS_ROUTE_XREAD,    /* XREAD/XREADGROUP: blocking only with BLOCK */
    ZOS_ROUTE_REFUSED,  /* would break a connection: SYNC, PSYNC, REPLCONF */
    ZOS_ROUTE_TRACKING, /* CLIENT TRACKING: pinned while on (never from the table) */
};

/* The class of command NAME (LEN bytes, any case). */
enum zos_route zos_router_route(const char *name, size_t len);

#endif

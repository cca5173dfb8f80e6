/* router.h -- the proxy's node table and the routing class of each command.
 *
 * Each node has shared links ("lanes") keyed by (db, protocol) that carry
 * the pipelined requests of every client in that db: the first one of the
 * node's own db in RESP2 is opened on first use and kept; a lane that is busy
 * (an old request, a big reply) takes no new requests, and another of the
 * same key opens, up to max-lanes, closed again once idle for pool-idle.
 * Blocking and stateful commands borrow a pinned link for as long as their
 * state lasts (see client.c): taken from the node's idle pool or opened,
 * counted against max-pinned while in use, given back after.  A control link
 * carries what must never wait behind data (SCRIPT KILL, the watch's PING).
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
#include "zos/stats.h"

struct evdns_base;
struct zos_jobs;

/* A shared link of a node and its key. */
struct zos_lane {
    struct zos_lane *next;
    struct zos_link *link;
    int db;
    bool resp3;
    bool heavy; /* carries a request likely to bring a big reply: others keep off */
};

/* An idle pinned link, lent again to the next client of its key. */
struct zos_pooled {
    struct zos_pooled *next;
    struct zos_link *link;
    int db;
    bool resp3;
};

struct zos_node {
    struct zos_node_conf *conf; /* borrowed from the router's conf */
    struct zos_router *router;
    struct zos_link *shared;  /* the first lane: the node's db, RESP2; kept open */
    struct zos_lane *lanes;   /* every lane, that one first */
    struct zos_link *control; /* NULL until needed */
    struct zos_link_watch *watch;
    struct zos_pooled *pool; /* idle pinned links, most recently returned first */
    size_t npool;
    SSL_CTX *ssl;                 /* NULL for a plain node; borrowed from the router's set */
    SSL_SESSION *session;         /* the last TLS session with the node, offered on reconnect */
    int pinned;                   /* pinned links in use now */
    bool down_logged;             /* "unavailable" logged since the last "connected" */
    struct zos_node_stats *stats; /* what its links and job verbs count (stats.h); owned */
    struct zos_jobs *jobs;        /* the job verbs' state (verbs_job.c), NULL until used */
    struct zos_jobs **old_jobs;   /* of settings a reload replaced, until their jobs are done */
    size_t nold_jobs;
    struct zos_lane *draining; /* links of replaced settings: closed once idle */
    bool removed;              /* a reload removed it: new requests are refused */
    struct zos_node *next_retired;
};

struct zos_router {
    struct event_base *base;
    struct evdns_base *dns;
    const struct zos_conf *conf; /* borrowed: the config in force */
    struct zos_node **nodes;     /* in the config's order; a node's address never changes */
    size_t nnodes;
    struct zos_node *retired;      /* removed by reloads, kept for whatever still points at them */
    struct zos_node *default_node; /* NULL when none can be chosen */
    struct zos_resp_reply_limits reply_limits; /* of every link */
    struct zos_tls_set *tls;                   /* the nodes' SSL_CTXs, one per setting */
    struct zos_link_gate *gate;                /* connects in progress, descriptors open */
    struct event *sweep;                       /* closes idle lanes and pooled links */
};

/* The node table for CONF (borrowed, must outlive the router).  NULL with ERR. */
struct zos_router *zos_router_new(struct event_base *base, struct evdns_base *dns,
                                  const struct zos_conf *conf, char *err, size_t errlen);
void zos_router_free(struct zos_router *r);

/* SIGHUP: applies CONF (borrowed; it and the configs before it must outlive
 * the router).  Nodes added are usable at once; nodes removed refuse new
 * requests (in flight ones finish); nodes whose connection settings changed
 * (address, port, tls, tls-verify, secret, db) get new links, the old ones
 * drain and close; other node settings and the [proxy] ones that can change
 * live take effect.  Nothing changes on failure (-1 with ERR).  SUMMARY says
 * what changed. */
int zos_router_reload(struct zos_router *r, const struct zos_conf *conf, char *summary, size_t slen,
                      char *err, size_t errlen);

/* Node by name (LEN bytes, not NUL-terminated), or NULL. */
struct zos_node *zos_router_node(const struct zos_router *r, const char *name, size_t len);

/* A new link to NODE with the proxy's settings; PINNED for one client;
 * RESP3: the link speaks RESP3 (HELLO 3); DB: selects that db (-1: the
 * node's own). */
struct zos_link *zos_router_link_new(const struct zos_router *r, struct zos_node *node, bool pinned,
                                     bool resp3, int db);

/* The lane of N for a client in DB (-1: the node's own) speaking RESP3 or
 * not: RESP2 and RESP3 clients, and clients of different dbs, never share a
 * link.  The first lane of the key that is not busy; when all are, a new one
 * (up to max-lanes), else the least loaded.  HEAVY: the request is likely to
 * bring a big reply (its client's last ones were): it gets an idle lane, or a
 * new one, and other requests keep off that lane while it is on it.  NULL
 * only when out of memory. */
struct zos_link *zos_router_lane(struct zos_router *r, struct zos_node *n, int db, bool resp3,
                                 bool heavy);

/* The db a client in DB (-1: the node's own) uses on N. */
int zos_router_db(const struct zos_node *n, int db);

/* A pinned link of N for DB/RESP3, from the idle pool or new, counted in
 * use.  NULL with ERR past max-pinned or out of memory. */
struct zos_link *zos_router_pin_take(struct zos_router *r, struct zos_node *n, int db, bool resp3,
                                     char *err, size_t errlen);
/* Gives back a link zos_router_pin_take lent: CLEAN (no state of its client
 * left on it, ready) goes to the idle pool while there is room, else closed. */
void zos_router_pin_give(struct zos_router *r, struct zos_node *n, struct zos_link *l, int db,
                         bool resp3, bool clean);

/* N's control link (made on first need): never carries data. */
struct zos_link *zos_router_control(struct zos_router *r, struct zos_node *n);

/* Requests waiting for a reply on N's lanes and control link. */
size_t zos_router_inflight(const struct zos_node *n);

/* Lanes of N per db, "lanes_db0=2,lanes_db1=1,lanes_db0_resp3=1", for INFO. */
void zos_router_lanes_text(const struct zos_node *n, char *buf, size_t len);

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
/* Entry I of the table zos_router_route searches (sorted by name, for
 * bsearch): its name and class.  False past the end.  For tests. */
bool zos_router_route_entry(size_t i, const char **name, enum zos_route *route);

#endif

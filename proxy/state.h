/* state.h -- what every layer of the proxy reads: the server's state and
 * each client's, as data, and the checks made on it (may a client use a
 * node).  The modules that act on them sit above (server.c, client.c);
 * the verbs reach a client's connection through srv->client_ops.
 *
 *   server -> client -> verbs / router -> link      (calls go down only)
 *                 \-> slot, state, resp             (beneath them all)
 */
#ifndef ZOS_STATE_H
#define ZOS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "router.h"
#include "slot.h"
#include "zos/conf.h"
#include "zos/resp.h"

struct zos_listener;
struct zos_metrics;
struct zos_ssh_workers;
struct zos_client_ops;

/* This client's pinned link to one node. */
struct zos_pin {
    struct zos_pin *next;
    struct zos_client *client;
    struct zos_node *node;
    struct zos_link *link;
    size_t inflight;         /* requests on the link awaiting replies */
    struct zos_slot *tunnel; /* pub/sub or MONITOR: replies stream into it */
    int db;                  /* the db the link was opened in */
    bool multi, watch, monitor, broken;
    bool dirty;                 /* holds what the proxy did not follow (a SELECT, a SUBSCRIBE
                                   queued in MULTI): closed, not pooled, when given back */
    bool lost_request;          /* a request (a blocked one, EXEC, ...) failed with the link */
    bool confirmed;             /* the tunnel's SUBSCRIBE/MONITOR was accepted */
    size_t unsub_due;           /* UNSUBSCRIBE replies still to come: other requests wait */
    size_t sub_due;             /* RESP2 (P|S)SUBSCRIBE confirmations still to come */
    size_t nchan, npat, nshard; /* subscriptions, from the node's confirmations */
    bool resp3;                 /* the link speaks RESP3 (the client's protocol when opened) */
    bool tracking;              /* CLIENT TRACKING ON: invalidations come on this link */
    long long node_id;          /* the link's CLIENT ID on the node (0: not asked), for REDIRECT */
    struct zos_slot *confirm;   /* RESP3: (un)subscribe slots waiting for their pushes */
    struct zos_slot *confirm_tail;
    size_t nqueued;            /* commands queued since MULTI */
    long long queued_quiet_ms; /* DEBUG SLEEPs queued since MULTI: the node's silence at EXEC */
    bool *queued_config;       /* [i]: queued command i is a CONFIG GET (NULL: none is) */
    bool queued_oom;           /* queued_config could not grow: EXEC answers an error */
    char errstr[128];
};

/* The shared link ("lane") C has requests on at one node: its next requests
 * to that node follow them there while any is unanswered. */
struct zos_lane_use {
    struct zos_node *node;
    struct zos_link *link;
    size_t inflight;
    int db;
    bool resp3;
};

struct zos_client {
    struct zos_server *srv;
    struct zos_client *prev, *next;
    struct bufferevent *bev;
    struct zos_resp_parser parser;
    struct zos_slots slots;    /* its replies, in request order */
    size_t shared_inflight;    /* requests on shared links awaiting replies */
    struct zos_lane_use *uses; /* per node, while requests are on its lane */
    size_t nuses;
    size_t all_parts;         /* ZOS.ALL parts on their way: node requests wait for them */
    long long heavy_until_ms; /* read a big reply lately: its requests get lanes of their own */
    struct zos_node *node;    /* where node commands go (NULL: none) */
    struct zos_node *fixed;   /* node of a per-node listener, or NULL */
    struct zos_pin *pins;
    struct zos_follow *follows; /* SUBSCRIBE zos:job:...: jobs followed (verbs_job.c) */
    size_t nfollows;
    struct zos_slot *follow_slot; /* where their messages go, while any is followed */
    char *name;                   /* CLIENT SETNAME */
    unsigned long long id;
    bool resp3; /* HELLO 3: replies in RESP3 */
    /* For CLIENT LIST / INFO / KILL: */
    int fd;
    char addr[64], laddr[64];      /* "ip:port" ("[v6]:port" as redis writes them), "path:0" */
    long long created_ms, last_ms; /* when it connected, and sent its last command */
    char cmd[40];                  /* the last command, lower case ("client|list") */
    int db;                        /* from its last SELECT; -1: each node's own db */
    bool auth_all;                 /* AUTH matched requirepass: every node */
    struct zos_node *auth_node;    /* AUTH matched this node's own password: that node only */
    bool closing;                  /* stop reading; close once the output drained */
    bool held;                     /* a request waits for replies on another link */
    bool release;                  /* pinned links may be given back: the flush event does */
    bool dirty;                    /* in the server's list for the flush event */
    bool resume;                   /* held, and its replies came: read on from the flush event */
    bool kill;                     /* over an output limit: freed by the flush event */
    struct event *linger;          /* closing: reads the client's last bytes, then frees */
    struct event *backlog;         /* held because a node reads slowly: looks again soon */
    bool writing;                  /* the socket was full: the bufferevent writes the rest */
    struct zos_client *next_dirty;
};

struct zos_server {
    struct event_base *base;
    struct evdns_base *dns;
    struct zos_conf *conf;       /* owned: the config in force */
    struct zos_conf **old_confs; /* replaced by reloads; links and nodes still borrow from them */
    size_t nold_confs;
    struct zos_router *router;
    struct zos_listener *listeners; /* server.c */
    size_t nlisteners;
    int max_clients;    /* max-clients, or fewer when descriptors are short */
    size_t link_budget; /* node connections open at once (the router gate's budget) */
    struct zos_client *clients;
    size_t nclients;
    struct zos_resp_limits limits;
    unsigned long long next_client_id;
    unsigned long long total_connections;
    unsigned long long total_commands;
    unsigned long long rejected_connections;
    time_t started;
    struct event *signals[4];
    unsigned long long reloads;
    struct event *shutdown_timer;
    struct event *flush;      /* activated when a client has output (client.c) */
    struct zos_client *dirty; /* clients with output to write this turn */
    bool shutting_down;
    struct zos_ssh_workers *ssh; /* ZOS.SSH worker threads (verbs_ssh.c), NULL until used */
    struct zos_metrics *metrics; /* the HTTP endpoint of metrics-listen (metrics.c), or NULL */
    /* What the verbs ask of a client's connection (client.c fills it in), and
     * how the server hears that a client has nothing in flight any more
     * (shutdown bookkeeping; server.c): the layers below call up through these. */
    const struct zos_client_ops *client_ops;
    void (*client_idle)(struct zos_server *srv);
};

/* A client's connection, as the verbs change it (HELLO, RESET, QUIT,
 * CLIENT KILL); client.c implements them (zos_client_ops). */
struct zos_client_ops {
    /* HELLO 2/3: the protocol of C's replies and of the node links it uses.
     * -1 while a pinned link holds state for C (it would have to change under
     * a transaction or subscriptions). */
    int (*switch_protocol)(struct zos_client *c, bool resp3);
    bool (*can_switch_protocol)(const struct zos_client *c);
    /* RESET, as redis does: back to RESP2, the default node, no name, not
     * authenticated, out of MULTI, pub/sub and MONITOR (its pinned links
     * released).  Answers +RESET in S. */
    void (*reset)(struct zos_client *c, struct zos_slot *s);
    /* Stop reading, flush what is complete, then close. */
    void (*close_after_flush)(struct zos_client *c);
    /* Closes at once, orphaning slots whose replies are still on their way. */
    void (*kill)(struct zos_client *c);
};

/* True once any AUTH succeeded. */
bool zos_client_authed(const struct zos_client *c);
/* May C send commands to node N?  False with the error reply in ERR:
 * NOAUTH before any AUTH, NOPERM when authenticated for another node only,
 * or the node of a per-node port. */
bool zos_client_may_use(const struct zos_client *c, const struct zos_node *n, char *err,
                        size_t errlen);

#endif

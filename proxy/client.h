/* client.h -- one client connection of the proxy and its reply slots.
 *
 *   bytes -> parser -> request --local verb----------------------> slot (reply written now or
 * later)
 *                           \--node command--> shared or pinned link --> slot
 *   slots: head ... tail, in request order; the head's reply is written to the
 *   socket as soon as it is complete, so replies leave in request order
 *   whichever node answered first.
 *
 * A slot may outlive its client (the reply is still on its way): the client
 * then orphans it and whoever completes it frees it.
 */
#ifndef ZOS_CLIENT_H
#define ZOS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "zos/resp.h"
#include "router.h"

struct zos_server;
struct zos_slot;

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
    struct zos_slot *head, *tail;
    size_t nslots;
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
    size_t slot_bytes;             /* reply bytes waiting in slots behind the head */
    struct event *linger;          /* closing: reads the client's last bytes, then frees */
    struct event *backlog;         /* held because a node reads slowly: looks again soon */
    bool writing;                  /* the socket was full: the bufferevent writes the rest */
    struct zos_client *next_dirty;
};

/* Takes FD (an accepted socket); NODE is the fixed node of a per-node
 * listener or NULL.  The client is linked into SRV's list.  NULL on failure
 * (FD closed). */
struct zos_client *zos_client_new(struct zos_server *srv, int fd, struct zos_node *fixed);
/* Milliseconds of a monotonic clock (ages and idle times of clients). */
long long zos_client_now_ms(void);

/* HELLO 2/3: the protocol of C's replies and of the node links it uses.
 * -1 while a pinned link holds state for C (it would have to change under
 * a transaction or subscriptions). */
int zos_client_switch_protocol(struct zos_client *c, bool resp3);
bool zos_client_can_switch_protocol(const struct zos_client *c);

/* RESET for C, as redis does: back to RESP2, the default node, no name, not
 * authenticated, out of MULTI, pub/sub and MONITOR (its pinned links
 * released).  Answers +RESET in S. */
void zos_client_reset(struct zos_client *c, struct zos_slot *s);

/* Closes at once, orphaning slots whose replies are still on their way. */
void zos_client_free(struct zos_client *c);
/* SIGTERM: requests read and not yet sent are answered with an error, then
 * as zos_client_close_after_flush (replies in flight still come). */
void zos_client_shutdown(struct zos_client *c);
/* Stop reading, flush what is complete, then close. */
void zos_client_close_after_flush(struct zos_client *c);
/* Writes the output of every client that got some during this loop turn:
 * one write per client per turn, straight to the socket (the server's flush
 * event runs it after the turn's other callbacks). */
void zos_client_flush_all(struct zos_server *srv);
/* Number of slots whose reply is not written yet. */
size_t zos_client_pending(const struct zos_client *c);

/* True once any AUTH succeeded. */
bool zos_client_authed(const struct zos_client *c);
/* May C send commands to node N?  False with the error reply in ERR:
 * NOAUTH before any AUTH, NOPERM when authenticated for another node only,
 * or the node of a per-node port. */
bool zos_client_may_use(const struct zos_client *c, const struct zos_node *n, char *err,
                        size_t errlen);

/* Slots, for verbs that answer later (jobs, ssh, fan-out). */
struct zos_slot *zos_slot_new(struct zos_client *c);
/* Where to write the reply (the socket when the slot is first in line). */
struct evbuffer *zos_slot_buf(struct zos_slot *s);
/* A slot that stays open for messages (a stream), written as they come
 * once it is first in line; zos_slot_done ends it. */
struct zos_slot *zos_slot_new_stream(struct zos_client *c);
/* Bytes were added to stream S: out they go if S is first in line (a
 * client over pubsub-output-limit is closed). */
void zos_slot_stream_flush(struct zos_slot *s);
/* The reply is complete: written in order, or dropped if the client left. */
void zos_slot_done(struct zos_slot *s);
/* Shorthands: write then done. */
void zos_slot_error(struct zos_slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zos_slot_status(struct zos_slot *s, const char *status);
/* FN(ARG) runs if the client leaves before S is done (to stop the work
 * behind it); it must end with zos_slot_done(S), which then frees S. */
void zos_slot_on_orphan(struct zos_slot *s, void (*fn)(void *arg), void *arg);
/* True when the client went away: the reply will be dropped. */
bool zos_slot_orphaned(const struct zos_slot *s);
struct zos_client *zos_slot_client(const struct zos_slot *s);

/* A slot that collects N parts (one per node, in node order) and replies
 * with the flat array [node, reply, ...] once all are done.  NULL when N is 0
 * or memory ran out (the reply is then already written). */
struct zos_slot *zos_slot_group(struct zos_client *c, size_t n);
/* A detached slot for part I of GROUP: write into it and mark it done like
 * any slot.  NULL on allocation failure (the part is then answered empty). */
struct zos_slot *zos_slot_part(struct zos_slot *group, size_t i);

/* Sends a command (ARGV) to NODE for client C as if C had sent it, with the
 * same routing (shared or pinned) and ordering rules.  Used by ZOS.AT. */
int zos_client_forward_argv(struct zos_client *c, struct zos_node *node,
                            const struct zos_resp_argv *av, size_t first);

#endif

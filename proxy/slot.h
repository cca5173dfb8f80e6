/* slot.h -- one connection's replies, in request order.
 *
 *   slots (request order):  head -> ... -> tail
 *   a slot is complete when its reply is (zos_slot_done); the head's bytes go
 *   to the connection's output as they come, and while the head is complete
 *   it leaves and the next one is the head: replies leave in request order
 *   whichever node (or verb) answered first.
 *
 * A slot may outlive its connection (the reply is still on its way): the
 * queue then orphans it (zos_slots_orphan_all) and whoever completes it
 * frees it.  A group slot (ZOS.ALL) collects one part per node and answers
 * [node, reply, ...] once every part is in, or at its deadline.
 *
 * This module knows nothing of clients or links: the queue's owner is told
 * through its hooks, and the fields under "routing" are the client's.
 */
#ifndef ZOS_SLOT_H
#define ZOS_SLOT_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>

struct zos_client;
struct zos_node;
struct zos_pin;

enum zos_slot_kind { ZOS_SLOT_SIMPLE, ZOS_SLOT_STREAM, ZOS_SLOT_GROUP };

/* What the queue's owner (the client) hears of. */
struct zos_slots_hooks {
    /* Bytes were added to a stream: true when the owner is over its output
     * limit (then they are not written; the owner closes). */
    bool (*stream_full)(struct zos_client *owner);
    /* PARTS parts of a counted group no longer hold the owner's order (they
     * came, or the group answered without them). */
    void (*parts_left)(struct zos_client *owner, size_t parts);
    /* A group answered: the owner may read on. */
    void (*group_done)(struct zos_client *owner);
};

struct zos_slots {
    struct zos_slot *head, *tail;
    size_t n;             /* slots whose reply is not written yet */
    size_t bytes;         /* reply bytes waiting in slots behind the head */
    struct evbuffer *out; /* the connection's output */
    struct zos_client *owner;
    const struct zos_slots_hooks *hooks;
};

struct zos_slot {
    struct zos_slot *next;
    struct zos_slots *q;  /* NULL once orphaned */
    struct zos_client *c; /* the queue's owner; NULL once orphaned */
    struct evbuffer *buf; /* reply bytes waiting for their turn */
    unsigned char kind;   /* enum zos_slot_kind */
    bool done;
    struct zos_slot_group *group; /* ZOS_SLOT_GROUP: its parts, until the reply left */
    struct zos_slot_part *part;   /* a detached slot for one part of a group */
    void (*orphan_fn)(void *arg);
    void *orphan_arg;
    /* Routing (client.c): where the reply comes from and what it answers. */
    struct zos_pin *pin;           /* pinned link the reply comes from, NULL for shared */
    struct zos_node *node;         /* for error messages */
    unsigned waiting;              /* replies still due */
    bool counted;                  /* counted in the client's in-flight figures */
    unsigned pushes_due;           /* RESP3 (un)subscribe: confirmations still to come */
    struct zos_slot *next_confirm; /* the pin's queue of those */
    bool info;                     /* the reply answers INFO: the proxy's section is added */
    bool seal;                     /* the reply answers CONFIG GET, or EXEC with one in it */
    bool *seal_which;              /* EXEC: which elements answer a CONFIG GET (owned) */
    size_t seal_n;
    bool select; /* the reply answers SELECT: undone if it failed */
    bool quiet;  /* DEBUG SLEEP (or EXEC with one): the node's quiet time ends with it */
    int db_before, db_after;
};

/* One node's share of a group. */
struct zos_slot_part {
    struct zos_slot_group *g;
    struct zos_node *node;
    struct evbuffer *buf; /* its reply, once it came */
};

/* A group's parts live as long as any is still on its way, which may be
 * after the reply left (a deadline passed): a late part is dropped here,
 * never written. */
struct zos_slot_group {
    struct zos_slot *slot;  /* where the reply goes; NULL once it left */
    bool resp3;             /* a map node -> reply, else a flat array */
    struct event *deadline; /* set by the caller: zos_slot_group_deadline */
    int timeout_ms;
    bool quiet; /* DEBUG SLEEP on every node: each one's quiet time ends with its part */
    size_t nparts;
    size_t waiting; /* parts without a reply, while the slot waits */
    size_t refs;    /* parts whose reply (or failure) is still to come */
    struct zos_slot_part parts[];
};

/* Q answers into OUT for OWNER (hooks may be NULL). */
void zos_slots_init(struct zos_slots *q, struct evbuffer *out, struct zos_client *owner,
                    const struct zos_slots_hooks *hooks);
/* Writes every complete slot at the head to the output. */
void zos_slots_flush(struct zos_slots *q);
/* The owner leaves: slots whose reply is written or that nobody else owns
 * are freed, the others orphaned (their orphan function runs, or whoever
 * completes them frees them). */
void zos_slots_orphan_all(struct zos_slots *q);

/* A new slot at the tail of Q, NULL when out of memory. */
struct zos_slot *zos_slot_new(struct zos_slots *q);
/* A slot that stays open for messages (a stream), written as they come
 * while it is the head; freed with its queue, not by a reply. */
struct zos_slot *zos_slot_new_stream(struct zos_slots *q);
/* Bytes were added to stream S: out they go if S is first in line. */
void zos_slot_stream_flush(struct zos_slot *s);
/* Where to write the reply (the output itself when the slot is first in line). */
struct evbuffer *zos_slot_buf(struct zos_slot *s);
/* The reply is complete: written in order, or dropped if the client left. */
void zos_slot_done(struct zos_slot *s);
/* Shorthands: write then done. */
void zos_slot_error(struct zos_slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zos_slot_status(struct zos_slot *s, const char *status);
/* FN(ARG) runs if the client leaves before S is done (to stop the work
 * behind it; it must free S, with zos_slot_done). */
void zos_slot_on_orphan(struct zos_slot *s, void (*fn)(void *arg), void *arg);
/* True when the client went away: the reply will be dropped. */
bool zos_slot_orphaned(const struct zos_slot *s);
/* The client the reply goes to, NULL once it left. */
struct zos_client *zos_slot_client(const struct zos_slot *s);
/* Frees S (a reply that will never be written). */
void zos_slot_free(struct zos_slot *s);

/* A slot in Q that collects N parts, one per node of NODES, and answers
 * [node, reply, ...] (a map in RESP3) once every part is in.  N == 0: the
 * empty answer at once, and NULL. */
struct zos_slot *zos_slot_group(struct zos_slots *q, struct zos_node *const *nodes, size_t n,
                                bool resp3);
/* Answers GROUP at TIMEOUT_MS from now with what came, and an error for each
 * part still missing.  0, or -1 when out of memory (then no deadline). */
int zos_slot_group_deadline(struct zos_slot *group, struct event_base *base, int timeout_ms);
/* A detached slot for part I of GROUP: write into it and mark it done like
 * any slot.  NULL when out of memory (the part is then answered empty). */
struct zos_slot *zos_slot_part(struct zos_slot *group, size_t i);
/* Part P is complete with BUF (taken), or came too late for the reply. */
void zos_slot_part_done(struct zos_slot_part *p, struct evbuffer *buf);

#endif

/* client.c -- one client of the proxy: parse, route, and answer in order.
 *
 *   socket in --> parser --> [verb?] --yes--> verb handler --> slot
 *                               \--no--> route: shared link of the node
 *                                               or this client's pinned link --> slot
 *   slots (request order):  head -> ... -> tail
 *   slot.c: while the head slot is complete, its bytes go to the socket.
 *
 * Ordering across links: a request for a pinned link waits until no reply is
 * due on a shared link, and a request for a shared link waits until no reply
 * is due on the node's pinned link (the client is then "held" and reads no
 * further until the replies arrive), so a node sees one client's commands in
 * the order they were sent.
 */
#include "client.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <sys/un.h>
#include <time.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <netinet/tcp.h>

#include "log.h"
#include "seal.h"
#include "verbs.h"
#include "slot.h"
#include "zos/util.h"
#include "verbs_job.h"

#define SLOT_COST    192               /* what a reply slot costs beyond its bytes (output limit) */
#define LINK_BACKLOG (8 * 1024 * 1024) /* requests not yet written to a node: send no more */
#define BACKLOG_MS   5                 /* how often a client held by that looks again */
#define HEAVY_REPLY  (1024 * 1024)     /* a reply this big makes its client "heavy"... */
#define HEAVY_MS     10000             /* ...this long: its requests keep to lanes of their own */
#define LINGER_MS    500 /* a closed client's last bytes are read this long, at most */

static void process_input(struct zos_client *c);
static bool is_word(const char *s, size_t len, const char *w);
static void schedule(struct zos_client *c);
static bool over_output_limit(struct zos_client *c, bool pubsub);

/* DEBUG SLEEP <s> (NAME, SUB, ARG2: the command's first words): how long the
 * node will say nothing, with a second of margin; 0 for anything else. */
static long long debug_sleep_ms(const char *name, size_t len, const char *sub, const char *arg2)
{
    if (!is_word(name, len, "debug") || strcasecmp(sub, "sleep") != 0)
        return 0;
    double d = strtod(arg2, NULL);
    return d <= 0 ? 0 : d < 86400 ? (long long)(d * 1000) + 1000 : 86400 * 1000LL;
}

/* Replies arrived for a client that waits for them: read on, but from the
 * flush event, never from inside a link's callback (that link may be freed
 * by what the client does next). */
static void resume_soon(struct zos_client *c)
{
    if (c->held && !c->closing) {
        c->resume = true;
        schedule(c);
    }
}

size_t zos_client_pending(const struct zos_client *c)
{
    return c->slots.n;
}

/* ---- who may use which node ---- */

/* Whether C may do nothing before AUTH (redis's authRequired()): then it
 * also gets redis's limits on what it may send. */
static bool must_auth(const struct zos_client *c)
{
    if (zos_client_authed(c))
        return false;
    return c->srv->conf->proxy.requirepass != NULL ||
           (c->fixed != NULL && c->fixed->conf->password != NULL);
}

static bool refuse_node(struct zos_client *c, const struct zos_node *n)
{
    char err[160];
    if (n->removed) /* by a reload: what was in flight finished */
        snprintf(err, sizeof(err), "ERR node '%s' was removed", n->conf->name);
    else if (zos_client_may_use(c, n, err, sizeof(err)))
        return false;
    struct zos_slot *s = zos_slot_new(&c->slots);
    if (s != NULL)
        zos_slot_error(s, "%s", err);
    return true;
}

/* ZOS.ALL reaches every node: refused unless this client may use them all. */
static bool refuse_all(struct zos_client *c)
{
    struct zos_router *r = c->srv->router;
    for (size_t i = 0; i < r->nnodes; i++)
        if (refuse_node(c, r->nodes[i]))
            return true;
    return false;
}

/* ---- replies from links ---- */

/* C's use of a lane at N (NULL: none yet). */
static struct zos_lane_use *lane_use(struct zos_client *c, const struct zos_node *n)
{
    for (size_t i = 0; i < c->nuses; i++)
        if (c->uses[i].node == n)
            return &c->uses[i];
    return NULL;
}

static void uncount(struct zos_slot *s)
{
    if (!s->counted || s->c == NULL)
        return;
    s->counted = false;
    if (s->pin != NULL) {
        s->pin->inflight--;
        if (s->pin->inflight == 0)
            s->c->release = true; /* the flush event gives it back if nothing is left on it */
    } else {
        struct zos_lane_use *u = lane_use(s->c, s->node);
        s->c->shared_inflight--;
        if (u != NULL && u->inflight > 0)
            u->inflight--;
    }
}

/* The shared link for C's next request to N: the lane its unanswered
 * requests to N are on (one client's requests reach a node in order), else
 * the router's pick.  NULL with *AGAIN when those are on a lane of another
 * db or protocol (wait for them), or out of memory. */
static struct zos_link *client_lane(struct zos_client *c, struct zos_node *n, bool *again)
{
    int db = zos_router_db(n, c->db);
    struct zos_lane_use *u = lane_use(c, n);
    *again = false;
    if (u != NULL && u->inflight > 0) {
        if (u->db == db && u->resp3 == c->resp3)
            return u->link;
        *again = true;
        return NULL;
    }
    if (u == NULL) {
        struct zos_lane_use *nu = realloc(c->uses, (c->nuses + 1) * sizeof(*nu));
        if (nu == NULL)
            return NULL;
        c->uses = nu;
        u = &c->uses[c->nuses++];
        *u = (struct zos_lane_use){.node = n};
    }
    u->link = zos_router_lane(c->srv->router, n, c->db, c->resp3, c->heavy_until_ms > zos_now_ms());
    u->db = db;
    u->resp3 = c->resp3;
    return u->link;
}

static void node_down_error(struct evbuffer *out, const struct zos_node *n, const char *err)
{
    const char *said = strstr(err, " failed: ");
    if (said != NULL && (strncmp(said + 9, "BUSY", 4) == 0 || strncmp(said + 9, "LOADING", 7) == 0))
        zos_resp_add_error(out, "%s", said + 9); /* a handshake the node was too busy for:
                                                    its own answer, as a client would get */
    else if (zos_link_is_protocol_error(err))    /* the node is up but said something wrong */
        zos_resp_add_error(out, "ERR node '%s' %s", n->conf->name, err);
    else
        zos_resp_add_error(out, "ERR node '%s' unavailable: %s", n->conf->name, err);
}

/* INFO: the node's text, then the proxy's section, in the client's protocol.
 * A reply that is no text (an error, QUEUED) goes as it is. */
static void info_merge(struct zos_client *c, struct evbuffer *reply, size_t len,
                       struct evbuffer *dst)
{
    char *text;
    size_t tlen;
    struct evbuffer *all = evbuffer_new();

    if (all == NULL || zos_resp_reply_type(reply, len) == '+' ||
        !zos_resp_reply_string(reply, len, false, &text, &tlen)) {
        evbuffer_remove_buffer(reply, dst, len);
        if (all != NULL)
            evbuffer_free(all);
        return;
    }
    evbuffer_drain(reply, len);
    evbuffer_add(all, text, tlen);
    free(text);
    evbuffer_add(all, "\r\n", 2);
    zos_verbs_info_proxy(c, all);
    zos_resp_add_verbatim_buffer(dst, all, c->resp3);
    evbuffer_free(all);
}

/* The reply (or failure) of a request sent on a link for slot ARG. */
static void slot_reply_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_slot *s = arg;
    struct zos_client *c = s->c;

    if (s->quiet)
        zos_link_watch_quiet_done(s->node->watch);
    if (reply == NULL && s->pin != NULL)
        s->pin->lost_request = true; /* pin_closed, right after, closes the client */
    uncount(s);
    if (c == NULL) {
        zos_slot_free(s);
        return;
    }
    if (reply != NULL) {
        struct evbuffer *dst = zos_slot_buf(s);
        size_t before = evbuffer_get_length(dst);
        if (s->select && zos_resp_reply_type(reply, len) == '-' && c->db == s->db_after)
            c->db = s->db_before; /* refused: the db stays what it was, as on redis */
        if (s->info) {
            info_merge(c, reply, len, dst);
        } else if (s->seal && s->seal_n == SIZE_MAX) {
            evbuffer_drain(reply, len);
            zos_resp_add_error(dst, "ERR out of memory");
        } else if (s->seal) {
            zos_seal_filter(reply, len, dst, s->seal_which, s->seal_n);
        } else {
            evbuffer_remove_buffer(reply, dst, len);
        }
        if (dst == s->buf) /* waits behind an earlier reply; filters change the length */
            c->slots.bytes += evbuffer_get_length(dst) - before;
        if (len >= HEAVY_REPLY && s->pin == NULL) /* its next ones get a lane of their own */
            c->heavy_until_ms = zos_now_ms() + HEAVY_MS;
    } else if (s->select && strncmp(err, "SELECT failed: ", 15) == 0) {
        /* The lane of that db could not select it: the node's own answer. */
        if (c->db == s->db_after)
            c->db = s->db_before;
        zos_resp_add_error(zos_slot_buf(s), "%s", err + 15);
    } else {
        if (s->select && c->db == s->db_after)
            c->db = s->db_before;
        node_down_error(zos_slot_buf(s), s->node, err);
    }
    zos_slot_done(s);
    over_output_limit(c, false);
    resume_soon(c);
}

/* ---- ZOS.ALL ---- */

static void all_part_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_slot_part *p = arg;
    struct zos_slot_group *g = p->g;
    struct evbuffer *buf = evbuffer_new();

    if (g->quiet)
        zos_link_watch_quiet_done(p->node->watch);
    if (g->slot != NULL && reply != NULL && g->slot->seal)
        zos_seal_filter(reply, len, buf, NULL, 0);
    else if (g->slot != NULL && reply != NULL)
        evbuffer_remove_buffer(reply, buf, len);
    else if (g->slot != NULL)
        node_down_error(buf, p->node, err);
    zos_slot_part_done(p, buf);
}

/* Whether every node says admin = yes (ZOS.ALL may then change secrets). */
static bool all_admin(const struct zos_router *r)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (!r->nodes[i]->conf->admin)
            return false;
    return true;
}

/* ZOS.ALL [TIMEOUT ms] <command ...>: the command on every node's shared
 * link; a node that has not answered after TIMEOUT_MS is an error element. */
static void forward_all(struct zos_client *c, const struct zos_resp_argv *av, size_t first,
                        int timeout_ms)
{
    struct zos_router *r = c->srv->router;
    size_t argc = av->argc - first;
    struct zos_slot *s;

    if (zos_router_route(av->argv[first], av->argvlen[first]) != ZOS_ROUTE_SHARED) {
        if ((s = zos_slot_new(&c->slots)) != NULL)
            zos_slot_error(s, "ERR ZOS.ALL cannot run blocking or stateful commands");
        return;
    }
    char err[200];
    enum zos_seal seal = zos_seal_candidate(av->argv[first], av->argvlen[first])
                             ? zos_seal_check(av, first, all_admin(r), err, sizeof(err))
                             : ZOS_SEAL_PASS;
    if (seal == ZOS_SEAL_REFUSE) {
        if ((s = zos_slot_new(&c->slots)) != NULL)
            zos_slot_error(s, "%s", err);
        return;
    }
    if ((s = zos_slot_group(&c->slots, r->nodes, r->nnodes, c->resp3)) == NULL)
        return;
    struct zos_slot_group *g = s->group;
    long long quiet =
        debug_sleep_ms(av->argv[first], av->argvlen[first], argc > 1 ? av->argv[first + 1] : "",
                       argc > 2 ? av->argv[first + 2] : "");
    g->quiet = quiet > 0;
    s->counted = true;
    s->seal = seal == ZOS_SEAL_FILTER;
    zos_slot_group_deadline(s, c->srv->base, timeout_ms); /* none when out of memory */
    for (size_t i = 0; i < r->nnodes; i++) {              /* the last part may free G and S */
        struct zos_node *n = g->parts[i].node;
        struct zos_link *shared = zos_router_lane(r, n, c->db, c->resp3, false);
        c->shared_inflight++;
        c->all_parts++;
        if (g->quiet)
            zos_link_watch_quiet(n->watch, quiet);
        if (shared == NULL) {
            all_part_cb(&g->parts[i], NULL, 0, "out of memory");
        } else if (zos_link_send_argv(shared, argc, (const char *const *)av->argv + first,
                                      av->argvlen + first, all_part_cb, &g->parts[i]) != ZOS_OK) {
            all_part_cb(&g->parts[i], NULL, 0, zos_link_errstr(shared));
        }
    }
}

/* Replies waiting for C (written or not) past its limit -- client-output-limit,
 * or pubsub-output-limit for a subscriber or MONITOR -- close it, as redis's
 * client-output-buffer-limit does: never a stall of its node, never
 * gigabytes.  True when C is being closed (freed by the flush event). */
static bool over_output_limit(struct zos_client *c, bool pubsub)
{
    const struct zos_proxy_conf *pc = &c->srv->conf->proxy;
    size_t limit = pubsub ? pc->pubsub_output_limit : pc->client_output_limit;
    size_t used = evbuffer_get_length(bufferevent_get_output(c->bev)) + c->slots.bytes +
                  c->slots.n * SLOT_COST;
    if (c->kill)
        return true;
    if (limit == 0 || used <= limit)
        return false;
    log_warn("client %llu (%s%s%s) closed: %zu bytes of replies waiting, over %s %zu", c->id,
             c->addr, c->name != NULL ? " " : "", c->name != NULL ? c->name : "", used,
             pubsub ? "pubsub-output-limit" : "client-output-limit", limit);
    c->kill = true; /* freed by the flush event */
    schedule(c);
    return true;
}

/* ---- pinned links ---- */

static struct zos_pin *pin_find(struct zos_client *c, struct zos_node *n)
{
    for (struct zos_pin *p = c->pins; p != NULL; p = p->next)
        if (p->node == n)
            return p;
    return NULL;
}

static void confirm_fail(struct zos_pin *p, const char *err);

static void pin_closed(void *arg, const char *err)
{
    struct zos_pin *p = arg;
    /* What the node held for the client; a SUBSCRIBE or MONITOR it never
     * confirmed held nothing yet. */
    bool had_state = p->multi || p->watch || p->tracking || p->lost_request ||
                     p->nchan + p->npat + p->nshard > 0 || (p->monitor && p->confirmed);
    if (zos_link_is_protocol_error(err))
        log_warn("node '%s': pinned link of client %llu dropped: %s", p->node->conf->name,
                 p->client->id, err);
    p->broken = true;
    p->lost_request = false;
    snprintf(p->errstr, sizeof(p->errstr), "%s", err);
    confirm_fail(p, err);
    p->nchan = p->npat = p->nshard = p->sub_due = 0;
    p->tracking = false;
    if (p->tunnel != NULL) {
        struct zos_slot *s = p->tunnel;
        p->tunnel = NULL;
        node_down_error(zos_slot_buf(s), p->node, err);
        zos_slot_done(s);
    }
    /* What it held -- a transaction, WATCH, subscriptions, MONITOR, tracking,
     * a blocked command -- is gone.  Like a redis that restarted, the
     * connection closes once the errors are out, and the client's library
     * reconnects and restores it. */
    if (had_state)
        zos_client_close_after_flush(p->client);
    p->client->release = true; /* the broken link goes at the flush event */
    schedule(p->client);
}

/* The reply's count is the connection's channels + patterns (shard channels
 * apart): keep each kind's number, for how many replies an argument-less
 * UNSUBSCRIBE will bring. */
static void count_subscriptions(struct zos_pin *p, const char *kind, long long count)
{
    size_t n = count < 0 ? 0 : (size_t)count;
    if (strcmp(kind, "ssubscribe") == 0 || strcmp(kind, "sunsubscribe") == 0)
        p->nshard = n;
    else if (kind[0] == 'p')
        p->npat = n > p->nchan ? n - p->nchan : 0;
    else
        p->nchan = n > p->npat ? n - p->npat : 0;
}

/* Closes the tunnel: replies go back to ordinary slots. */
static void tunnel_end(struct zos_pin *p)
{
    struct zos_slot *s = p->tunnel;
    p->tunnel = NULL;
    p->unsub_due = p->sub_due = 0;
    p->confirmed = false;
    zos_slot_done(s);
    resume_soon(p->client);
}

/* Replies of a tunnelled link (pub/sub messages, MONITOR lines). */
static void tunnel_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_pin *p = arg;
    struct zos_slot *s = p->tunnel;
    struct zos_client *c = p->client;
    char kind[32], first = 0;
    long long count = -1;
    if (s == NULL || reply == NULL)
        return;
    first = zos_resp_reply_type(reply, len);
    bool confirm = !p->monitor && first == '*' &&
                   zos_resp_reply_pubsub(reply, len, kind, sizeof(kind), &count);
    if (!p->confirmed && !confirm && first != '-' && !(p->monitor && first == '+')) {
        /* The first reply of a tunnel confirms it or refuses it: anything
         * else means the node does not speak the protocol we think it does. */
        zos_link_drop(p->link, "unexpected first reply to SUBSCRIBE or MONITOR", reply, len);
        return;
    }
    struct evbuffer *dst = zos_slot_buf(s);
    evbuffer_remove_buffer(reply, dst, len);
    if (dst == s->buf)
        c->slots.bytes += len;
    if (over_output_limit(c, true))
        return;
    if (!p->confirmed && first == '-' && !p->monitor) {
        tunnel_end(p); /* the SUBSCRIBE itself failed */
        return;
    }
    p->confirmed = p->confirmed || confirm || (p->monitor && first == '+');
    if (confirm)
        count_subscriptions(p, kind, count);
    if (confirm && strstr(kind, "unsubscribe") == NULL && p->sub_due > 0 && --p->sub_due == 0)
        resume_soon(c); /* an UNSUBSCRIBE that waited for the counts may go */
    if (confirm && strstr(kind, "unsubscribe") != NULL && p->unsub_due > 0 && --p->unsub_due == 0) {
        if (p->nchan + p->npat + p->nshard == 0) {
            tunnel_end(p); /* nothing left: back to ordinary replies */
            return;
        }
        resume_soon(c);
    }
    if (c->slots.head == s)
        zos_slots_flush(&c->slots);
}

/* RESP3: the (un)subscribe slot S waits for N confirmations on P. */
static void confirm_wait(struct zos_pin *p, struct zos_slot *s, size_t n)
{
    s->pushes_due = (unsigned)n;
    s->pin = p;
    s->next_confirm = NULL;
    if (p->confirm_tail != NULL)
        p->confirm_tail->next_confirm = s;
    else
        p->confirm = s;
    p->confirm_tail = s;
    p->inflight++; /* the client's other links wait for these, as for any reply */
}

static struct zos_slot *confirm_pop(struct zos_pin *p)
{
    struct zos_slot *s = p->confirm;
    p->confirm = s->next_confirm;
    if (p->confirm == NULL)
        p->confirm_tail = NULL;
    s->next_confirm = NULL;
    p->inflight--;
    return s;
}

/* The link failed or the pin goes: every confirmation still due gets ERR
 * (NULL: nothing, the client is gone). */
static void confirm_fail(struct zos_pin *p, const char *err)
{
    while (p->confirm != NULL) {
        struct zos_slot *s = confirm_pop(p);
        if (err != NULL && !zos_slot_orphaned(s))
            node_down_error(zos_slot_buf(s), p->node, err);
        zos_slot_done(s);
    }
}

static void confirm_reply_cb(void *arg, struct evbuffer *reply, size_t len, const char *err);

/* Pushes of a RESP3 pinned link: confirmations go to the slot of the
 * request that asked for them, in order; messages and invalidations go to
 * the client as they come (RESP3 clients take pushes between replies). */
static void push3_cb(struct zos_pin *p, struct evbuffer *reply, size_t len)
{
    struct zos_client *c = p->client;
    char kind[32];
    long long count;

    if (zos_resp_reply_pubsub(reply, len, kind, sizeof(kind), &count)) {
        count_subscriptions(p, kind, count);
        if (p->confirm != NULL) {
            struct zos_slot *s = p->confirm;
            struct evbuffer *dst = zos_slot_buf(s);
            evbuffer_remove_buffer(reply, dst, len);
            if (dst == s->buf)
                c->slots.bytes += len;
            if (--s->pushes_due == 0) {
                /* Its FIFO entry (for a non-push answer) is at the head: done with. */
                zos_link_consume_head(p->link, confirm_reply_cb, s);
                zos_slot_done(confirm_pop(p));
                resume_soon(c);
            }
            return;
        }
    }
    /* Out of band, but never ahead of replies still waiting for their turn
     * (an invalidation must not overtake the stale value it invalidates). */
    struct zos_slot *ps = c->slots.head != NULL ? zos_slot_new(&c->slots) : NULL;
    struct evbuffer *dst = ps != NULL ? zos_slot_buf(ps) : bufferevent_get_output(c->bev);
    evbuffer_remove_buffer(reply, dst, len);
    if (ps != NULL) {
        c->slots.bytes += len;
        zos_slot_done(ps);
    }
    if (!over_output_limit(c, true))
        schedule(c);
}

/* The FIFO entry of a RESP3 (un)subscribe: it only ever gets a reply that is
 * no push (an error, +QUEUED) or the link's failure; either answers it. */
static void confirm_reply_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_slot *s = arg;
    struct zos_pin *p = s->pin;

    if (p == NULL || p->confirm != s) /* the client left: S is answered by confirm_fail */
        return;
    bool orphan = zos_slot_orphaned(s); /* the client is being freed */
    confirm_pop(p);
    if (reply != NULL)
        evbuffer_remove_buffer(reply, zos_slot_buf(s), len);
    else
        node_down_error(zos_slot_buf(s), p->node, err);
    zos_slot_done(s);
    if (!orphan)
        resume_soon(p->client);
}

static void pin_push_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_pin *p = arg;
    if (p->resp3 && p->tunnel == NULL && reply != NULL)
        push3_cb(p, reply, len);
    else
        tunnel_cb(arg, reply, len, err);
}

/* True when P's link holds nothing of its client's: it can serve another. */
static bool pin_idle(const struct zos_pin *p)
{
    return p->link != NULL && !p->broken && p->inflight == 0 && p->tunnel == NULL &&
           p->confirm == NULL && !p->multi && !p->watch && !p->monitor && !p->tracking &&
           p->nchan + p->npat + p->nshard == 0 && p->sub_due == 0 && p->unsub_due == 0;
}

/* P's link goes back to its node: to the idle pool when it holds nothing
 * (and its db is still the one it was opened in), else closed. */
static void pin_give_back(struct zos_pin *p)
{
    if (p->link == NULL)
        return;
    zos_router_pin_give(p->client->srv->router, p->node, p->link, p->db, p->resp3,
                        pin_idle(p) && !p->dirty);
    p->link = NULL;
    p->node_id = 0;
    p->dirty = false;
}

/* From the flush event (never inside a link's callback): pinned links whose
 * state ended -- a blocking command answered, EXEC, the last unsubscribe --
 * and broken ones are given back. */
static void release_pins(struct zos_client *c)
{
    c->release = false;
    for (struct zos_pin *p = c->pins; p != NULL; p = p->next)
        if (p->link != NULL && (p->broken || pin_idle(p)))
            pin_give_back(p);
}

static void pin_free(struct zos_pin *p)
{
    if (p->link != NULL)
        pin_give_back(p); /* confirmations still due are answered "link closed" */
    confirm_fail(p, NULL);
    free(p->queued_config);
    free(p);
}

/* The pinned link of C to N, lent on first need; NULL with an error reply in S. */
static struct zos_pin *pin_get(struct zos_client *c, struct zos_node *n, struct zos_slot *s)
{
    struct zos_pin *p = pin_find(c, n);
    char err[200];
    if (p != NULL && p->broken) {
        /* The loss was answered to the requests in flight, and a client whose
         * state went with it is being closed: start afresh. */
        pin_give_back(p);
        p->broken = p->multi = p->watch = p->monitor = p->tracking = false;
        p->nchan = p->npat = p->nshard = p->sub_due = p->unsub_due = 0;
    }
    if (p != NULL && p->link != NULL)
        return p;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            zos_slot_error(s, "ERR out of memory");
            return NULL;
        }
        p->client = c;
        p->node = n;
        p->next = c->pins;
        c->pins = p;
    }
    p->resp3 = c->resp3;
    p->db = zos_router_db(n, c->db);
    p->link = zos_router_pin_take(c->srv->router, n, c->db, p->resp3, err, sizeof(err));
    if (p->link == NULL) {
        zos_slot_error(s, "%s", err);
        return NULL;
    }
    zos_link_set_closed(p->link, pin_closed, p);
    zos_link_set_push(p->link, pin_push_cb, p);
    return p;
}

/* ---- routing ---- */

/* True when an XREAD/XREADGROUP request carries BLOCK. */
static bool has_block_arg(const struct zos_resp_argv *av)
{
    for (size_t i = 1; i < av->argc; i++)
        if (av->argvlen[i] == 5 && strcasecmp(av->argv[i], "block") == 0)
            return true;
    return false;
}

static bool pin_holds_state(const struct zos_pin *p)
{
    return p != NULL && p->link != NULL &&
           (p->multi || p->watch || p->tunnel != NULL || p->tracking || p->confirm != NULL ||
            p->nchan + p->npat + p->nshard > 0);
}

static void pin_update(struct zos_pin *p, enum zos_route route)
{
    switch (route) {
    case ZOS_ROUTE_MULTI:
        p->multi = true;
        break;
    case ZOS_ROUTE_ENDMULTI:
        if (p->multi) /* without MULTI redis answers an error and keeps the WATCH */
            p->multi = p->watch = false;
        break;
    case ZOS_ROUTE_WATCH:
        p->watch = true;
        break;
    case ZOS_ROUTE_UNWATCH:
        if (!p->multi)
            p->watch = false;
        break;
    case ZOS_ROUTE_SELECT:
        p->dirty = true; /* not the db it was opened in any more */
        break;
    case ZOS_ROUTE_MONITOR:
        p->monitor = true;
        break;
    default:
        break;
    }
}

enum conn_cmd {
    CONN_NONE,
    CONN_TRACKING_ON,  /* CLIENT TRACKING ON ...: pinned, invalidations on that link */
    CONN_TRACKING_OFF, /* CLIENT TRACKING OFF */
    CONN_ABOUT,        /* CLIENT CACHING/TRACKINGINFO/GETREDIR: the pin if any, else shared */
    CONN_NODE,         /* CLIENT PAUSE/UNPAUSE: the node's business, on the shared link */
};

/* A request: either LEN raw bytes at the front of IN, or arguments AV from index FIRST. */
struct request {
    struct evbuffer *in;
    size_t len;
    const struct zos_resp_req *req; /* of the raw bytes in IN, when AV is NULL */
    size_t argc;                    /* the command's, name included */
    const struct zos_resp_argv *av;
    size_t first;
    const char *name;
    size_t namelen;
    bool block;         /* XREAD with BLOCK */
    enum conn_cmd conn; /* CLIENT sub-commands about the node connection itself */
    bool info;          /* INFO: the proxy's section goes after the node's */
    bool control;       /* SCRIPT/FUNCTION KILL, CLIENT PAUSE/UNPAUSE, SHUTDOWN */
    long long quiet_ms; /* DEBUG SLEEP: the node says nothing for this long */
    char arg1[24];      /* the first argument, cut short (SELECT's db) */
};

/* S answers a command that keeps node N silent for MS (DEBUG SLEEP): no
 * hang until its reply comes (or MS passed). */
static void slot_quiet(struct zos_slot *s, struct zos_node *n, long long ms)
{
    if (ms <= 0)
        return;
    s->quiet = true;
    zos_link_watch_quiet(n->watch, ms);
}

/* S answers RQ (of class ROUTE) at node N, sent while the db goes from
 * OLDDB to NEWDB: what its reply needs filtered or undone; counted in
 * flight; N is silent for QUIET ms. */
static void slot_answers(struct zos_slot *s, const struct request *rq, enum zos_route route,
                         enum zos_seal seal, int olddb, int newdb, long long quiet)
{
    s->counted = true;
    s->seal = seal == ZOS_SEAL_FILTER;
    s->info = rq->info;
    s->select = route == ZOS_ROUTE_SELECT;
    s->db_before = olddb;
    s->db_after = newdb;
    slot_quiet(s, s->node, quiet);
}

static int send_request(struct zos_link *l, struct request *rq, zos_link_reply_fn fn, void *arg)
{
    if (rq->av != NULL)
        return zos_link_send_argv(l, rq->av->argc - rq->first,
                                  (const char *const *)rq->av->argv + rq->first,
                                  rq->av->argvlen + rq->first, fn, arg);
    return zos_link_send(l, rq->in, rq->len, fn, arg);
}

/* Routes one node command.  ZOS_AGAIN: it must wait for replies on another
 * link (nothing consumed); otherwise it was sent or answered with an error. */
/* (P|S)UNSUBSCRIBE outside pub/sub mode: what redis answers, one
 * [kind, channel, 0] per argument ([kind, nil, 0] without one), given here
 * because one request with several replies would break a shared link's FIFO. */
static void local_unsubscribe(struct zos_client *c, const struct request *rq)
{
    struct zos_resp_argv own = {0};
    const struct zos_resp_argv *av = rq->av;
    size_t first = rq->first;
    struct zos_slot *s = zos_slot_new(&c->slots);
    char kind[16];

    if (s == NULL || (av == NULL && zos_resp_argv(rq->in, rq->req, &own) != 0)) {
        if (s != NULL)
            zos_slot_error(s, "ERR out of memory");
        return;
    }
    if (av == NULL)
        av = &own, first = 0;
    size_t i, n = av->argc - first;
    for (i = 0; i < rq->namelen && i < sizeof(kind) - 1; i++)
        kind[i] = (char)tolower((unsigned char)rq->name[i]);
    kind[i] = '\0';
    struct evbuffer *out = zos_slot_buf(s);
    for (i = 1; i < (n > 1 ? n : 2); i++) {
        zos_resp_add_push(out, 3, c->resp3);
        zos_resp_add_cstr(out, kind);
        if (n > 1)
            zos_resp_add_bulk(out, av->argv[first + i], av->argvlen[first + i]);
        else
            zos_resp_add_null(out, c->resp3);
        zos_resp_add_int(out, 0);
    }
    zos_slot_done(s);
    zos_resp_argv_free(&own);
}

/* Replies an UNSUBSCRIBE sent into the tunnel brings: one per argument, or
 * one per subscription of its kind (at least one). */
static size_t unsubscribe_replies(const struct zos_pin *p, const struct request *rq)
{
    size_t subs = tolower((unsigned char)rq->name[0]) == 'p'   ? p->npat
                  : tolower((unsigned char)rq->name[0]) == 's' ? p->nshard
                                                               : p->nchan;
    if (rq->argc > 1)
        return rq->argc - 1;
    return subs > 0 ? subs : 1;
}

/* CONFIG and ACL: what the node's secrets allow (seal.h); REFUSE is answered here. */
static enum zos_seal seal_request(struct zos_client *c, const struct zos_node *n,
                                  const struct request *rq)
{
    struct zos_resp_argv own = {0};
    const struct zos_resp_argv *av = rq->av;
    enum zos_seal seal = ZOS_SEAL_REFUSE;
    char err[200] = "ERR out of memory";

    if (!zos_seal_candidate(rq->name, rq->namelen))
        return ZOS_SEAL_PASS;
    if (av != NULL || zos_resp_argv(rq->in, rq->req, &own) == 0)
        seal = zos_seal_check(av != NULL ? av : &own, av != NULL ? rq->first : 0, n->conf->admin,
                              err, sizeof(err));
    zos_resp_argv_free(&own);
    if (seal == ZOS_SEAL_REFUSE) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "%s", err);
    }
    return seal;
}

/* Inside MULTI: remembers which queued commands are CONFIG GETs, for EXEC's
 * reply.  Out of memory, EXEC's reply becomes an error (nothing leaks). */
static void note_queued(struct zos_pin *p, bool config_get)
{
    size_t n = p->nqueued++;
    if (p->queued_config == NULL && !config_get)
        return;
    bool *q = realloc(p->queued_config, p->nqueued * sizeof(bool));
    if (q == NULL) {
        p->queued_oom = true;
        return;
    }
    if (p->queued_config == NULL)
        memset(q, 0, n * sizeof(bool));
    q[n] = config_get;
    p->queued_config = q;
}

static void pin_id_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_pin *p = arg;
    long long id;
    if (reply != NULL && zos_resp_reply_int(reply, len, &id) && id > 0)
        p->node_id = id;
}

/* Before P's first subscription: its id on the node, which CLIENT TRACKING
 * ... REDIRECT of another client will name (redis refuses CLIENT ID once a
 * RESP2 connection is subscribed). */
static void learn_node_id(struct zos_pin *p)
{
    static const char *const argv[] = {"CLIENT", "ID"};
    static const size_t lens[] = {6, 2};
    if (p->node_id == 0)
        zos_link_send_argv(p->link, 2, argv, lens, pin_id_cb, p);
}

/* CLIENT TRACKING ON ... REDIRECT <id>: <id> is a client of the proxy; the
 * node knows its own connections, so it becomes the id of that client's
 * pinned link to N (subscribed to __redis__:invalidate).  Fills TR (arrays
 * to free) and IDBUF and points RQ at them; ZOS_ERR with the error answered. */
static int tracking_redirect(struct zos_client *c, struct zos_node *n, struct request *rq,
                             struct zos_resp_argv *own, struct zos_resp_argv *tr, char *idbuf,
                             size_t idlen)
{
    const struct zos_resp_argv *av = rq->av;
    size_t first = rq->first, i;
    char *end;

    if (av == NULL) {
        if (zos_resp_argv(rq->in, rq->req, own) != 0)
            return ZOS_OK; /* forwarded as it is */
        av = own, first = 0;
    }
    for (i = first + 3; i + 1 < av->argc; i++)
        if (strcasecmp(av->argv[i], "redirect") == 0)
            break;
    if (i + 1 >= av->argc)
        return ZOS_OK;
    unsigned long long id = strtoull(av->argv[i + 1], &end, 10);
    if (*av->argv[i + 1] == '\0' || *end != '\0')
        return ZOS_OK; /* the node says what is wrong with it */
    struct zos_client *t = c->srv->clients;
    while (t != NULL && t->id != id)
        t = t->next;
    struct zos_pin *tp = t != NULL ? pin_find(t, n) : NULL;
    if (tp == NULL || tp->node_id <= 0 || tp->link == NULL) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR The client ID you want redirect to does not exist");
        return ZOS_ERR;
    }
    size_t argc = av->argc - first;
    tr->argc = argc;
    tr->argv = malloc(argc * sizeof(char *));
    tr->argvlen = malloc(argc * sizeof(size_t));
    if (tr->argv == NULL || tr->argvlen == NULL)
        return ZOS_OK; /* unchanged: the node will refuse the id */
    memcpy(tr->argv, av->argv + first, argc * sizeof(char *));
    memcpy(tr->argvlen, av->argvlen + first, argc * sizeof(size_t));
    snprintf(idbuf, idlen, "%lld", tp->node_id);
    tr->argv[i + 1 - first] = idbuf;
    tr->argvlen[i + 1 - first] = strlen(idbuf);
    rq->av = tr;
    rq->first = 0;
    return ZOS_OK;
}

/* RESP3 (P|S)SUBSCRIBE and their unsubscribes: no tunnel, the confirmations
 * are pushes that come to the request's slot; the link keeps serving. */
static int route_subscribe3(struct zos_client *c, struct zos_pin *p, struct request *rq,
                            enum zos_route route, struct zos_slot *s)
{
    if (route == ZOS_ROUTE_PUBSUB)
        learn_node_id(p);
    confirm_wait(p, s, route == ZOS_ROUTE_UNSUB ? unsubscribe_replies(p, rq) : rq->argc - 1);
    if (send_request(p->link, rq, confirm_reply_cb, s) != ZOS_OK)
        confirm_reply_cb(s, NULL, 0, zos_link_errstr(p->link));
    return ZOS_OK;
}

static void backlog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_client *c = arg;
    if (c->held && !c->closing) {
        c->resume = true;
        schedule(c);
    }
}

/* The link C's next request goes to has more than LINK_BACKLOG not written
 * yet: C waits (its bytes stay in its input, bounded by client-query-limit)
 * and looks again in BACKLOG_MS.  Always ZOS_AGAIN. */
static int backlogged(struct zos_client *c)
{
    struct timeval tv = {0, BACKLOG_MS * 1000};
    if (c->backlog == NULL)
        c->backlog = evtimer_new(c->srv->base, backlog_cb, c);
    if (c->backlog != NULL)
        evtimer_add(c->backlog, &tv);
    return ZOS_AGAIN;
}

static int route_request(struct zos_client *c, struct zos_node *n, struct request *rq)
{
    enum zos_route route = zos_router_route(rq->name, rq->namelen);
    struct zos_pin *p = pin_find(c, n);
    bool pinned = pin_holds_state(p);

    if (rq->conn == CONN_TRACKING_ON || rq->conn == CONN_TRACKING_OFF)
        route = ZOS_ROUTE_TRACKING;
    else if (rq->conn != CONN_NONE)
        route = ZOS_ROUTE_SHARED; /* with a pin holding state, it still goes there */

    if (refuse_node(c, n))
        return ZOS_ERR;
    enum zos_seal seal = seal_request(c, n, rq);
    if (seal == ZOS_SEAL_REFUSE)
        return ZOS_ERR;
    if (p != NULL && p->tunnel != NULL && p->unsub_due > 0)
        return ZOS_AGAIN; /* whether the tunnel stays open comes with the UNSUBSCRIBE's replies */
    if (p != NULL && p->link != NULL && p->multi &&
        (route == ZOS_ROUTE_PUBSUB || route == ZOS_ROUTE_UNSUB || route == ZOS_ROUTE_MONITOR ||
         route == ZOS_ROUTE_TRACKING)) {
        route = ZOS_ROUTE_BLOCKING; /* queued like any command: its reply is +QUEUED */
        p->dirty = true;            /* after EXEC the link may hold what the proxy did not see */
    }
    if (route == ZOS_ROUTE_UNSUB && p != NULL && (p->confirm != NULL || p->sub_due > 0))
        return ZOS_AGAIN; /* how many replies it brings depends on subscribes still due */
    if (seal == ZOS_SEAL_FILTER && p != NULL && p->tunnel != NULL) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR Can't execute 'config|get': zos-proxy cannot filter it on a "
                              "subscribed or MONITOR connection");
        return ZOS_ERR;
    }
    bool subscribed3 = p != NULL && p->resp3 && p->nchan + p->npat + p->nshard > 0;
    if (route == ZOS_ROUTE_UNSUB && (p == NULL || p->tunnel == NULL) && !subscribed3) {
        local_unsubscribe(c, rq);
        return ZOS_ERR;
    }
    if (route == ZOS_ROUTE_PUBSUB && rq->argc < 2) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR wrong number of arguments for '%.*s' command", (int)rq->namelen,
                           rq->name);
        return ZOS_ERR;
    }
    if (route == ZOS_ROUTE_REFUSED) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR '%.*s' is not supported through zos-proxy", (int)rq->namelen,
                           rq->name);
        return ZOS_ERR;
    }
    if (route == ZOS_ROUTE_SELECT && p != NULL && p->multi) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR SELECT inside MULTI is not supported through zos-proxy: "
                              "SELECT before MULTI");
        return ZOS_ERR;
    }
    int newdb = c->db;
    if (route == ZOS_ROUTE_SELECT) {
        /* Checked as redis does.  Not pinned by itself: the db is part of a
         * lane's identity; over a pin that holds state it goes there, and
         * the lanes follow once the node agreed (undone if it refused). */
        char *end;
        long long v = strtoll(rq->arg1, &end, 10);
        const char *bad = rq->argc != 2 ? "ERR wrong number of arguments for 'select' command"
                          : rq->arg1[0] == '\0' || *end != '\0' || strlen(rq->arg1) > 20
                              ? "ERR value is not an integer or out of range"
                          : v < 0 || v > INT32_MAX ? "ERR DB index is out of range"
                                                   : NULL;
        if (bad != NULL) {
            struct zos_slot *s = zos_slot_new(&c->slots);
            if (s != NULL)
                zos_slot_error(s, "%s", bad);
            return ZOS_ERR;
        }
        /* A RESP2 subscriber's SELECT is refused by the node: nothing changes. */
        newdb = pinned && p->tunnel != NULL ? c->db : (int)v;
    }
    if (!pinned)
        pinned = route != ZOS_ROUTE_SHARED && route != ZOS_ROUTE_ENDMULTI &&
                 route != ZOS_ROUTE_UNWATCH && route != ZOS_ROUTE_UNSUB &&
                 route != ZOS_ROUTE_SELECT && (route != ZOS_ROUTE_XREAD || rq->block);
    if (pinned ? c->shared_inflight > 0 : (p != NULL && p->inflight > 0))
        return ZOS_AGAIN;
    if (c->all_parts > 0)
        return ZOS_AGAIN; /* after the parts of a ZOS.ALL still on their way */
    long long quiet = rq->quiet_ms;
    if (p != NULL && p->link != NULL && p->multi && pinned) {
        /* Queued: the sleep happens at EXEC. */
        if (route == ZOS_ROUTE_ENDMULTI)
            quiet = is_word(rq->name, rq->namelen, "exec") ? p->queued_quiet_ms : 0;
        else
            p->queued_quiet_ms += quiet, quiet = 0;
    }

    if (!pinned && rq->control) {
        /* Never behind data: SCRIPT KILL must pass the script it kills. */
        struct zos_link *ctl = zos_router_control(c->srv->router, n);
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s == NULL)
            return ZOS_ERR;
        s->node = n;
        slot_quiet(s, n, quiet);
        if (ctl == NULL)
            zos_slot_error(s, "ERR out of memory");
        else if (send_request(ctl, rq, slot_reply_cb, s) != ZOS_OK)
            slot_reply_cb(s, NULL, 0, zos_link_errstr(ctl));
        return ZOS_OK;
    }
    if (!pinned) {
        int olddb = c->db;
        bool again;
        c->db = newdb; /* requests pipelined after SELECT go to its db at once */
        struct zos_link *shared = client_lane(c, n, &again);
        if (again) {
            c->db = olddb;
            return ZOS_AGAIN; /* after the replies due on the other db's lane */
        }
        if (shared != NULL && zos_link_backlog(shared) > LINK_BACKLOG) {
            c->db = olddb;
            return backlogged(c); /* the node reads slowly: hold the client, not its bytes */
        }
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s == NULL) {
            c->db = olddb;
            return ZOS_ERR;
        }
        s->node = n;
        if (shared == NULL) {
            c->db = olddb;
            zos_slot_error(s, "ERR out of memory");
            return ZOS_ERR;
        }
        slot_answers(s, rq, route, seal, olddb, newdb, quiet);
        c->shared_inflight++;
        lane_use(c, n)->inflight++;
        if (send_request(shared, rq, slot_reply_cb, s) != ZOS_OK)
            slot_reply_cb(s, NULL, 0, zos_link_errstr(shared));
        return ZOS_OK;
    }
    int olddb = c->db;
    if (route == ZOS_ROUTE_SELECT)
        c->db = newdb;

    if (p != NULL && p->link != NULL && zos_link_backlog(p->link) > LINK_BACKLOG) {
        c->db = olddb;
        return backlogged(c);
    }
    struct zos_slot *s = NULL;
    if (p == NULL || p->tunnel == NULL) {
        if ((s = zos_slot_new(&c->slots)) == NULL)
            return ZOS_ERR;
        s->node = n;
    }
    if ((p = pin_get(c, n, s)) == NULL)
        return ZOS_ERR;
    bool was_multi = p->multi, was_tracking = p->tracking;
    pin_update(p, route);
    if (route == ZOS_ROUTE_TRACKING) {
        p->tracking = rq->conn == CONN_TRACKING_ON;
        p->dirty = true; /* whether the node agreed is in its reply: never pooled */
    }
    if (p->resp3 && p->tunnel == NULL && (route == ZOS_ROUTE_PUBSUB || route == ZOS_ROUTE_UNSUB))
        return route_subscribe3(c, p, rq, route, s);
    if (p->tunnel != NULL) { /* already streaming: the reply arrives through the tunnel */
        if (route == ZOS_ROUTE_UNSUB)
            p->unsub_due += unsubscribe_replies(p, rq);
        else if (route == ZOS_ROUTE_PUBSUB)
            p->sub_due += rq->argc - 1;
        if (send_request(p->link, rq, NULL, NULL) != ZOS_OK)
            pin_closed(p, zos_link_errstr(p->link));
        return ZOS_OK;
    }
    if (route == ZOS_ROUTE_PUBSUB || route == ZOS_ROUTE_MONITOR) {
        if (route == ZOS_ROUTE_PUBSUB)
            learn_node_id(p); /* its reply comes before the tunnel opens */
        s->kind = ZOS_SLOT_STREAM;
        p->tunnel = s;
        p->sub_due = route == ZOS_ROUTE_PUBSUB ? rq->argc - 1 : 0;
        if (send_request(p->link, rq, NULL, NULL) != ZOS_OK)
            pin_closed(p, zos_link_errstr(p->link));
        return ZOS_OK;
    }
    struct zos_resp_argv own = {0}, tr = {0};
    char idbuf[24];
    if (route == ZOS_ROUTE_TRACKING && rq->conn == CONN_TRACKING_ON &&
        tracking_redirect(c, n, rq, &own, &tr, idbuf, sizeof(idbuf)) != ZOS_OK) {
        zos_slot_done(s); /* answered by the error slot after it: nothing of its own */
        zos_resp_argv_free(&own);
        p->tracking = was_tracking;
        return ZOS_ERR;
    }
    s->pin = p;
    slot_answers(s, rq, route, seal, olddb, newdb, quiet);
    if (route == ZOS_ROUTE_ENDMULTI && was_multi)
        p->queued_quiet_ms = 0;
    if (route == ZOS_ROUTE_MULTI && !was_multi) {
        p->nqueued = 0;
        p->queued_oom = false;
    } else if (route == ZOS_ROUTE_ENDMULTI && was_multi) {
        s->seal = p->queued_config != NULL || p->queued_oom; /* EXEC: filter CONFIG GETs */
        s->seal_which = p->queued_config;
        s->seal_n = p->queued_oom ? SIZE_MAX : p->nqueued;
        p->queued_config = NULL;
    } else if (was_multi) {
        note_queued(p, seal == ZOS_SEAL_FILTER);
        s->seal = false; /* its reply is QUEUED; EXEC's carries the values */
    }
    p->inflight++;
    if (send_request(p->link, rq, slot_reply_cb, s) != ZOS_OK)
        slot_reply_cb(s, NULL, 0, zos_link_errstr(p->link));
    free(tr.argv);
    free(tr.argvlen);
    zos_resp_argv_free(&own);
    return ZOS_OK;
}

/* What route_request needs to know of RQ beyond its name: the control
 * commands, and DEBUG SLEEP's length (SUB: the first argument, ARG2 the
 * second, both cut short). */
static void classify(struct request *rq, const char *sub, const char *arg2)
{
    rq->control =
        ((is_word(rq->name, rq->namelen, "script") || is_word(rq->name, rq->namelen, "function")) &&
         strcasecmp(sub, "kill") == 0) ||
        is_word(rq->name, rq->namelen, "shutdown") || rq->conn == CONN_NODE;
    rq->quiet_ms = debug_sleep_ms(rq->name, rq->namelen, sub, arg2);
}

int zos_client_forward_argv(struct zos_client *c, struct zos_node *node,
                            const struct zos_resp_argv *av, size_t first)
{
    struct request rq = {
        .av = av,
        .argc = av->argc - first,
        .first = first,
        .name = av->argv[first],
        .namelen = av->argvlen[first],
        .block = has_block_arg(av),
    };
    if (is_word(rq.name, rq.namelen, "select")) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR SELECT is not supported with ZOS.AT: the db is the "
                              "connection's, for every node (ZOS.USE the node, then SELECT)");
        return ZOS_ERR;
    }
    if (rq.argc >= 2) {
        snprintf(rq.arg1, sizeof(rq.arg1), "%s", av->argv[first + 1]);
        if (av->argvlen[first + 1] >= sizeof(rq.arg1))
            rq.arg1[sizeof(rq.arg1) - 1] = 'x'; /* too long to be a db: "not an integer" */
    }
    classify(&rq, rq.arg1, rq.argc >= 3 ? av->argv[first + 2] : "");
    return route_request(c, node, &rq);
}

static struct zos_node *no_node_error(struct zos_client *c)
{
    struct zos_slot *s = zos_slot_new(&c->slots);
    if (s != NULL)
        zos_slot_error(s, ZOS_NO_NODE_ERR);
    return NULL;
}

/* ---- protocol and RESET ---- */

static bool can_switch_protocol(const struct zos_client *c)
{
    for (const struct zos_pin *p = c->pins; p != NULL; p = p->next)
        if (pin_holds_state(p) || p->inflight > 0)
            return false;
    return true;
}

static int switch_protocol(struct zos_client *c, bool resp3)
{
    if (!can_switch_protocol(c))
        return -1;
    while (c->pins != NULL) { /* links of the old protocol, holding nothing */
        struct zos_pin *p = c->pins;
        c->pins = p->next;
        pin_free(p);
    }
    c->resp3 = resp3;
    return 0;
}

static void reset_client(struct zos_client *c, struct zos_slot *s)
{
    zos_follow_end_all(c);
    while (c->pins != NULL) { /* transactions, subscriptions, MONITOR: gone with the links */
        struct zos_pin *p = c->pins;
        c->pins = p->next;
        if (p->tunnel != NULL) {
            struct zos_slot *t = p->tunnel;
            p->tunnel = NULL;
            zos_slot_done(t);
        }
        pin_free(p);
    }
    c->resp3 = false;
    free(c->name);
    c->name = NULL;
    c->node = c->fixed != NULL ? c->fixed : c->srv->router->default_node;
    c->db = -1;
    c->auth_all = false;
    c->auth_node = NULL;
    zos_slot_status(s, "RESET");
}

/* ---- requests ---- */

static bool verb_forwarded(struct zos_client *c, const struct zos_verb *v)
{
    return (v->flags & ZOS_VERB_NODE) && c->node != NULL && pin_holds_state(pin_find(c, c->node));
}

static bool any_pinned_inflight(const struct zos_client *c)
{
    for (const struct zos_pin *p = c->pins; p != NULL; p = p->next)
        if (p->inflight > 0)
            return true;
    return false;
}

/* ZOS.AT <node> <command ...> and ZOS.ALL <command ...>. */
/* ZOS.ALL's optional "TIMEOUT <ms>": *FIRST moves past it.  False with
 * the error answered when it is malformed. */
static bool all_timeout(struct zos_client *c, const struct zos_resp_argv *av, size_t *first,
                        int *ms)
{
    char *end;
    *ms = c->srv->conf->proxy.all_timeout_ms;
    if (av->argc < 2 || strcasecmp(av->argv[1], "timeout") != 0)
        return true;
    long v = av->argc > 2 ? strtol(av->argv[2], &end, 10) : 0;
    if (av->argc <= 3 || *av->argv[2] == '\0' || *end != '\0' || v < 1 || v > 3600000) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR ZOS.ALL TIMEOUT takes milliseconds (1 to 3600000), then a "
                              "command");
        return false;
    }
    *ms = (int)v;
    *first = 3;
    return true;
}

static int route_verb(struct zos_client *c, const struct zos_verb *v, struct zos_resp_argv *av)
{
    bool at = strcasecmp(v->name, "zos.at") == 0;
    size_t first = at ? 2 : 1;
    struct zos_node *n = NULL;
    int timeout_ms = 0;

    if (!at && !all_timeout(c, av, &first, &timeout_ms))
        return ZOS_OK;

    if (av->argc <= first) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR wrong number of arguments for '%s' command", v->name);
        return ZOS_OK;
    }
    if (at && (n = zos_router_node(c->srv->router, av->argv[1], av->argvlen[1])) == NULL) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR unknown node '%s'", av->argv[1]);
        return ZOS_OK;
    }
    if (at ? refuse_node(c, n) : refuse_all(c))
        return ZOS_OK;
    const struct zos_verb *inner = zos_verbs_find(av->argv[first], av->argvlen[first]);
    if (inner != NULL && !(inner->flags & (ZOS_VERB_NODE | ZOS_VERB_ONNODE))) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR '%s' cannot be used with %s", inner->name, v->name);
        return ZOS_OK;
    }
    if (inner != NULL && (inner->flags & ZOS_VERB_ONNODE)) {
        if (!at)
            return zos_verbs_run_all(inner, c, av, first);
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s == NULL)
            return ZOS_ERR;
        struct zos_node *saved = c->node;
        struct zos_resp_argv sub = {av->argc - 2, av->argv + 2, av->argvlen + 2};
        c->node = n;
        zos_verbs_run(inner, c, s, &sub);
        c->node = saved;
        return ZOS_OK;
    }
    if (at)
        return zos_client_forward_argv(c, n, av, first);
    if (any_pinned_inflight(c) || c->shared_inflight > 0)
        return ZOS_AGAIN; /* after the client's earlier requests: none is overtaken */
    forward_all(c, av, first, timeout_ms);
    return ZOS_OK;
}

/* One parsed request at the front of IN.  ZOS_AGAIN: held, nothing consumed. */
static bool is_word(const char *s, size_t len, const char *w)
{
    return len == strlen(w) && strncasecmp(s, w, len) == 0;
}

/* What CLIENT LIST shows as cmd: "get", "client|list". */
static void note_command(struct zos_client *c, const char *name, size_t len, const char *sub)
{
    size_t i, n = len < sizeof(c->cmd) - 1 ? len : sizeof(c->cmd) - 1;
    for (i = 0; i < n; i++)
        c->cmd[i] = (char)tolower((unsigned char)name[i]);
    c->cmd[i] = '\0';
    if ((is_word(name, len, "client") || is_word(name, len, "config")) && sub[0] != '\0') {
        size_t at = strlen(c->cmd);
        snprintf(c->cmd + at, sizeof(c->cmd) - at, "|%s", sub);
        for (i = at; c->cmd[i] != '\0'; i++)
            c->cmd[i] = (char)tolower((unsigned char)c->cmd[i]);
    }
}

/* CLIENT sub-commands that concern the node connection (SUB, and for
 * TRACKING its ON/OFF argument). */
static enum conn_cmd conn_command(struct evbuffer *in, const struct zos_resp_req *req,
                                  const struct zos_resp_argv *av, const char *sub)
{
    char arg[8] = "";
    if (strcasecmp(sub, "tracking") == 0) {
        if (req->argc >= 3) {
            if (av->argc >= 3)
                snprintf(arg, sizeof(arg), "%s", av->argv[2]);
            else
                zos_resp_arg_copy(in, req, 2, arg, sizeof(arg));
        }
        return strcasecmp(arg, "on") == 0 ? CONN_TRACKING_ON : CONN_TRACKING_OFF;
    }
    if (strcasecmp(sub, "caching") == 0 || strcasecmp(sub, "trackinginfo") == 0 ||
        strcasecmp(sub, "getredir") == 0)
        return CONN_ABOUT;
    if (strcasecmp(sub, "pause") == 0 || strcasecmp(sub, "unpause") == 0)
        return CONN_NODE;
    return CONN_NONE;
}

/* While C follows jobs (SUBSCRIBE zos:job:...), what redis allows a
 * subscribed connection; and SUBSCRIBE of job channels.  False when RQ is
 * none of that business (a SUBSCRIBE of node channels, RESET, QUIT). */
static bool follow_command(struct zos_client *c, struct evbuffer *in,
                           const struct zos_resp_req *req, struct request *rq,
                           struct zos_resp_argv *av)
{
    bool sub = is_word(rq->name, rq->namelen, "subscribe");
    if (!sub && c->nfollows > 0 &&
        (is_word(rq->name, rq->namelen, "reset") || is_word(rq->name, rq->namelen, "quit")))
        return false;
    if (rq->av == NULL && zos_resp_argv(in, req, av) != 0)
        return false;
    size_t jobs = 0;
    for (size_t i = 1; sub && i < av->argc; i++)
        jobs += zos_follow_channel(av->argv[i], av->argvlen[i]);
    if (sub && jobs == 0 && c->nfollows == 0)
        return false; /* node channels */
    const char *err = NULL;
    struct zos_pin *p;
    for (p = c->pins; p != NULL && p->tunnel == NULL && p->nchan + p->npat + p->nshard == 0;)
        p = p->next;
    if (sub && (jobs != av->argc - 1 || p != NULL))
        err = "ERR zos:job: channels cannot be mixed with node channels on one connection";
    if (err == NULL && sub) {
        zos_follow_subscribe(c, av, 0);
        return true;
    }
    if (err == NULL && is_word(rq->name, rq->namelen, "unsubscribe")) {
        zos_follow_unsubscribe(c, av, 0);
        return true;
    }
    struct evbuffer *out = c->follow_slot != NULL ? zos_slot_buf(c->follow_slot) : NULL;
    struct zos_slot *s = out == NULL ? zos_slot_new(&c->slots) : NULL;
    if (out == NULL && s == NULL)
        return true;
    if (out == NULL)
        out = zos_slot_buf(s);
    if (err == NULL && is_word(rq->name, rq->namelen, "ping") && !c->resp3) {
        zos_resp_add_array(out, 2); /* as redis answers a subscribed RESP2 client */
        zos_resp_add_cstr(out, "pong");
        zos_resp_add_bulk(out, av->argc > 1 ? av->argv[1] : "", av->argc > 1 ? av->argvlen[1] : 0);
    } else if (err == NULL && is_word(rq->name, rq->namelen, "ping")) {
        if (av->argc > 1)
            zos_resp_add_bulk(out, av->argv[1], av->argvlen[1]);
        else
            zos_resp_add_status(out, "PONG");
    } else if (err != NULL) {
        zos_resp_add_error(out, "%s", err);
    } else {
        zos_resp_add_error(out,
                           "ERR Can't execute '%.*s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                           "PING / QUIT / RESET are allowed in this context",
                           (int)rq->namelen, rq->name);
    }
    if (s != NULL)
        zos_slot_done(s);
    else
        zos_slot_stream_flush(c->follow_slot);
    return true;
}

static int dispatch(struct zos_client *c, struct evbuffer *in, const struct zos_resp_req *req)
{
    char name[32];
    struct zos_resp_argv av = {0};
    struct request rq = {.in = in, .len = req->len, .req = req, .argc = req->argc, .name = name};
    int rc = ZOS_OK;

    if (req->is_inline) {
        if (zos_resp_argv(in, req, &av) != 0)
            return ZOS_ERR;
        rq.av = &av;
        rq.name = av.argv[0];
        rq.namelen = av.argvlen[0];
    } else {
        rq.namelen = zos_resp_arg_copy(in, req, 0, name, sizeof(name));
        if (rq.namelen >= sizeof(name))
            rq.namelen = sizeof(name) - 1;
    }
    c->srv->total_commands++;
    c->last_ms = zos_now_ms();

    const struct zos_verb *v = zos_verbs_find(rq.name, rq.namelen);
    char sub[16] = "";
    if (req->argc >= 2 && rq.av != NULL)
        snprintf(sub, sizeof(sub), "%s", av.argv[1]);
    else if (req->argc >= 2)
        zos_resp_arg_copy(in, req, 1, sub, sizeof(sub));
    note_command(c, rq.name, rq.namelen, sub);
    if (is_word(rq.name, rq.namelen, "client") && (rq.conn = conn_command(in, req, &av, sub)))
        v = NULL; /* about the node connection: forwarded */
    char arg2[24] = "";
    size_t arg1len = 0;
    if (req->argc >= 2 && rq.av != NULL) {
        arg1len = av.argvlen[1];
        snprintf(rq.arg1, sizeof(rq.arg1), "%s", av.argv[1]);
    } else if (req->argc >= 2) {
        arg1len = zos_resp_arg_copy(in, req, 1, rq.arg1, sizeof(rq.arg1));
    }
    if (arg1len >= sizeof(rq.arg1))
        rq.arg1[sizeof(rq.arg1) - 1] = 'x'; /* too long to be a db: "not an integer" */
    if (req->argc >= 3 && rq.av != NULL)
        snprintf(arg2, sizeof(arg2), "%s", av.argv[2]);
    else if (req->argc >= 3)
        zos_resp_arg_copy(in, req, 2, arg2, sizeof(arg2));
    classify(&rq, sub, arg2);
    if (v != NULL && is_word(rq.name, rq.namelen, "info") && c->node != NULL &&
        !(req->argc == 2 && strcasecmp(sub, "proxy") == 0)) {
        v = NULL; /* the node's INFO, with the proxy's section added (slot_reply_cb) */
        rq.info = true;
    }
    if (v != NULL && is_word(rq.name, rq.namelen, "reset") && any_pinned_inflight(c))
        return ZOS_AGAIN; /* after the replies due on pinned links, as redis would */
    bool to_r3 = is_word(rq.name, rq.namelen, "hello") && strcmp(sub, "3") == 0;
    bool to_r2 = (is_word(rq.name, rq.namelen, "hello") && strcmp(sub, "2") == 0) ||
                 is_word(rq.name, rq.namelen, "reset");
    if (((to_r3 && !c->resp3) || (to_r2 && c->resp3)) &&
        (c->shared_inflight > 0 || any_pinned_inflight(c)))
        return ZOS_AGAIN; /* the other protocol's link must not overtake them */
    if (c->srv->conf->proxy.requirepass != NULL && !zos_client_authed(c) &&
        (v == NULL || !(v->flags & ZOS_VERB_NOAUTH))) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "NOAUTH Authentication required.");
    } else if ((c->nfollows > 0 || is_word(rq.name, rq.namelen, "subscribe")) &&
               follow_command(c, in, req, &rq, &av)) {
        /* a job channel's business */
    } else if (v != NULL && (v->flags & ZOS_VERB_ROUTE)) {
        if (rq.av != NULL || zos_resp_argv(in, req, &av) == 0)
            rc = route_verb(c, v, &av);
    } else if (v != NULL && (v->flags & ZOS_VERB_ONNODE) && c->node != NULL &&
               refuse_node(c, c->node)) {
        /* answered */
    } else if (v != NULL && !verb_forwarded(c, v)) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL && (rq.av != NULL || zos_resp_argv(in, req, &av) == 0))
            zos_verbs_run(v, c, s, &av);
        else if (s != NULL)
            zos_slot_error(s, "ERR out of memory");
    } else if (c->node == NULL) {
        no_node_error(c);
    } else {
        if (rq.namelen >= 5 && strncasecmp(rq.name, "xread", 5) == 0 &&
            (rq.av != NULL || zos_resp_argv(in, req, &av) == 0))
            rq.block = has_block_arg(&av);
        rc = route_request(c, c->node, &rq);
    }
    if (is_word(rq.name, rq.namelen, "auth") || is_word(rq.name, rq.namelen, "hello"))
        for (size_t i = 0; i < av.argc; i++) /* passwords do not linger in freed memory */
            explicit_bzero(av.argv[i], av.argvlen[i]);
    zos_resp_argv_free(&av);
    return rc;
}

/* Requests read while C waits for replies (not forwarded yet) past
 * client-query-limit close it, as redis's client-query-buffer-limit does. */
static bool over_query_limit(struct zos_client *c)
{
    size_t limit = c->srv->conf->proxy.client_query_limit;
    size_t used = evbuffer_get_length(bufferevent_get_input(c->bev));
    if (limit == 0 || used <= limit)
        return false;
    log_warn("client %llu (%s%s%s) closed: %zu bytes of requests waiting, over client-query-limit "
             "%zu",
             c->id, c->addr, c->name != NULL ? " " : "", c->name != NULL ? c->name : "", used,
             limit);
    c->kill = true;
    schedule(c);
    return true;
}

/* Parses and dispatches every complete request, in order, until one must
 * wait.  The client is read all the while, as redis reads its clients: one
 * that writes a whole pipeline before it reads never deadlocks, and its
 * bounds are client-output-limit and client-query-limit. */
static void process_input(struct zos_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct zos_resp_req req;
    char err[128];

    c->held = false;
    while (!c->closing && !c->kill) {
        c->parser.lim.unauth = must_auth(c);
        if (over_output_limit(c, false))
            return;
        int rc = zos_resp_parse(&c->parser, in, &req, err, sizeof(err));
        if (rc == ZOS_AGAIN)
            break;
        if (rc != ZOS_OK) {
            struct zos_slot *s = zos_slot_new(&c->slots);
            log_debug("client %llu: %s", c->id, err);
            if (s != NULL)
                zos_slot_error(s, "ERR %s", err);
            zos_client_close_after_flush(c);
            return;
        }
        size_t before = evbuffer_get_length(in);
        if (req.argc > 0 && dispatch(c, in, &req) == ZOS_AGAIN) {
            /* Parse nothing more until the replies it waits for came; the
             * bytes that follow wait in the input (client-query-limit). */
            c->held = true;
            over_query_limit(c);
            return;
        }
        size_t used = before - evbuffer_get_length(in);
        if (used < req.len)
            evbuffer_drain(in, req.len - used);
    }
}

/* ---- socket callbacks ----
 *
 * Output is written by hand, once per loop turn (zos_client_flush_all); the
 * bufferevent's write side is enabled only while the socket is full.  This
 * saves the two epoll_ctl calls per reply batch that enabling and disabling
 * the write event costs.
 */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct zos_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->closing) /* reading on only to notice the client leave (linger bounds it) */
        evbuffer_drain(in, evbuffer_get_length(in));
    else if (c->held)
        over_query_limit(c);
    else
        process_input(c);
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    zos_client_free(arg);
}

/* The last reply is written: close the sending side, but go on reading
 * (and dropping) until the client closes too, for LINGER_MS at most.  Closing
 * at once, with request bytes still arriving (an oversized value after its
 * protocol error), would reset the connection before the client read the
 * error; reading for ever would let a client that never stops keep it. */
static void linger(struct zos_client *c)
{
    struct timeval tv = {0, LINGER_MS * 1000};
    if (c->linger != NULL)
        return;
    c->linger = evtimer_new(c->srv->base, linger_cb, c);
    if (c->linger == NULL) {
        zos_client_free(c);
        return;
    }
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evtimer_add(c->linger, &tv);
}

/* Everything written: close if asked to, or read again after backpressure. */
static void output_drained(struct zos_client *c)
{
    if (c->closing) {
        /* A tunnel ends with its client: let what follows it (QUIT's +OK) out. */
        for (struct zos_pin *p = c->pins; p != NULL; p = p->next)
            if (p->tunnel != NULL && p->tunnel == c->slots.head)
                tunnel_end(p);
        if (c->slots.head == NULL && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            linger(c);
        return;
    }
}

/* The bufferevent wrote what a full socket had left. */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct zos_client *c = arg;
    c->writing = false;
    bufferevent_disable(bev, EV_WRITE);
    output_drained(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct zos_client *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        zos_client_free(c);
}

/* Bytes were added to the output: write them at the end of this turn. */
static void output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct zos_client *c = arg;
    if (info->n_added > 0 && !c->writing)
        schedule(c);
}

/* Runs the flush event for C at the end of this loop turn. */
static void schedule(struct zos_client *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = c->srv->dirty;
    c->srv->dirty = c;
    event_active(c->srv->flush, EV_WRITE, 0);
}

static void write_now(struct zos_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (c->writing) /* the bufferevent is on it */
        return;
    /* The bufferevent keeps the start of its output frozen and thaws it for
     * its own writes: so do we, or evbuffer_write refuses every time. */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 || evbuffer_get_length(out) > 0) {
        /* full (or failed: the bufferevent then reports the error) */
        c->writing = true;
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    output_drained(c);
}

void zos_client_flush_all(struct zos_server *srv)
{
    while (srv->dirty != NULL) {
        struct zos_client *c = srv->dirty;
        srv->dirty = c->next_dirty;
        c->next_dirty = NULL;
        c->dirty = false;
        if (c->kill) {
            zos_client_free(c);
            continue;
        }
        if (c->release || c->pins != NULL) /* a state ended: its pinned link goes back */
            release_pins(c);
        if (c->resume) {
            c->resume = false;
            process_input(c);
        }
        write_now(c);
    }
}

static void undirty(struct zos_client *c)
{
    for (struct zos_client **pp = &c->srv->dirty; *pp != NULL; pp = &(*pp)->next_dirty) {
        if (*pp == c) {
            *pp = c->next_dirty;
            break;
        }
    }
    c->dirty = false;
}

/* Never frees C here (its caller may be using it): the flush event closes
 * it once the output is written.  Reading goes on, only to notice EOF. */
void zos_client_close_after_flush(struct zos_client *c)
{
    c->closing = true;
    schedule(c);
}

void zos_client_shutdown(struct zos_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct zos_resp_req req;
    char err[128];
    /* Requests read but not sent (they waited for replies on another link):
     * each is answered, in order, after the replies in flight. */
    while (!c->closing && !c->kill &&
           zos_resp_parse(&c->parser, in, &req, err, sizeof(err)) == ZOS_OK) {
        struct zos_slot *s = zos_slot_new(&c->slots);
        if (s != NULL)
            zos_slot_error(s, "ERR zos-proxy is shutting down");
        evbuffer_drain(in, req.len);
    }
    zos_client_close_after_flush(c);
}

/* The peer's (or with LOCAL our own) address as redis writes it in CLIENT LIST. */
static void sock_name(int fd, bool local, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    snprintf(buf, len, "?:0");
    if ((local ? getsockname(fd, (struct sockaddr *)&ss, &sl)
               : getpeername(fd, (struct sockaddr *)&ss, &sl)) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        snprintf(buf, len, "%.*s:0", (int)(len > 3 ? len - 3 : 0),
                 local || sl > sizeof(sa_family_t) ? un->sun_path : "");
        return;
    }
    snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
}

static bool stream_full(struct zos_client *c)
{
    return over_output_limit(c, true);
}

static void parts_left(struct zos_client *c, size_t parts)
{
    c->shared_inflight -= parts;
    c->all_parts -= parts;
}

static const struct zos_slots_hooks slot_hooks = {stream_full, parts_left, resume_soon};

struct zos_client *zos_client_new(struct zos_server *srv, int fd, struct zos_node *fixed)
{
    struct zos_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = srv;
    c->id = ++srv->next_client_id;
    c->fixed = fixed;
    c->node = fixed != NULL ? fixed : srv->router->default_node;
    c->db = -1;
    c->fd = fd;
    c->created_ms = c->last_ms = zos_now_ms();
    sock_name(fd, false, c->addr, sizeof(c->addr));
    sock_name(fd, true, c->laddr, sizeof(c->laddr));
    zos_resp_parser_init(&c->parser, &srv->limits);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ);
    evbuffer_add_cb(bufferevent_get_output(c->bev), output_cb, c);
    zos_slots_init(&c->slots, bufferevent_get_output(c->bev), c, &slot_hooks);
    c->next = srv->clients;
    if (srv->clients != NULL)
        srv->clients->prev = c;
    srv->clients = c;
    srv->nclients++;
    return c;
}

void zos_client_free(struct zos_client *c)
{
    if (c == NULL)
        return;
    struct zos_server *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nclients--;
    if (c->dirty)
        undirty(c);
    zos_follow_end_all(c);

    zos_slots_orphan_all(&c->slots); /* those waiting for a reply: freed by whoever answers */
    while (c->pins != NULL) {
        struct zos_pin *p = c->pins;
        c->pins = p->next;
        p->tunnel = NULL;
        pin_free(p);
    }
    bufferevent_free(c->bev);
    if (c->linger != NULL)
        event_free(c->linger);
    if (c->backlog != NULL)
        event_free(c->backlog);
    free(c->uses);
    free(c->name);
    free(c);
    if (srv->shutting_down && srv->client_idle != NULL)
        srv->client_idle(srv);
}

const struct zos_client_ops zos_client_ops = {
    .switch_protocol = switch_protocol,
    .can_switch_protocol = can_switch_protocol,
    .reset = reset_client,
    .close_after_flush = zos_client_close_after_flush,
    .kill = zos_client_free,
};

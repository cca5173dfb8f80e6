/* link.h -- one connection to a node: TCP or TLS, AUTH/SELECT on connect,
 * a FIFO of pending replies, health PING, reconnect with backoff.
 *
 *   zos_link_send(bytes, fn, arg)                       node
 *        |                                               ^ |
 *        v                                               | v
 *   [outq: held until AUTH/SELECT answered] --> [bufferevent out/in] --> scan reply
 *   [pending FIFO: fn,arg per request] <----------------------------------- pop, fn()
 *
 * A shared link (many clients) reconnects by itself with exponential backoff
 * and, while down, refuses new requests at once.  A pinned link (one client,
 * blocking and stateful commands) never reconnects: once lost it stays failed.
 * A link is READY only once the node answered its first command (AUTH,
 * HELLO, SELECT, or a PING when there is nothing else to say).
 */
#ifndef ZOS_LINK_H
#define ZOS_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "zos/conf.h"
#include "zos/resp.h"
#include "zos/stats.h"
#include "zos/zos.h"

struct zos_link;
struct evdns_base;

/* Called once per request.  On success REPLY holds the reply in its first LEN
 * bytes: the callee either moves/removes exactly those LEN bytes or leaves
 * them (the link drops them afterwards).  On failure REPLY is NULL and ERR
 * says why ("connection refused", "link closed", ...): the link's error,
 * whose category zos_link_err() gives meanwhile.  The callee must not
 * free the link from inside the callback (schedule it instead). */
typedef void (*zos_link_reply_fn)(void *arg, struct evbuffer *reply, size_t len, const char *err);

enum zos_link_state {
    ZOS_LINK_IDLE,       /* not connected; the next request connects */
    ZOS_LINK_CONNECTING, /* TCP/TLS handshake or AUTH/SELECT under way */
    ZOS_LINK_READY,
    ZOS_LINK_DOWN, /* failed; shared links retry after a backoff, pinned stay down */
};

struct zos_link_opts {
    bool pinned;            /* no reconnect, no health PING: one client's connection */
    int connect_timeout_ms; /* TCP + TLS + AUTH, default 5000 */
    int backoff_max_ms;     /* ceiling of the reconnect delay (starts at 100 ms) */
    const struct zos_resp_reply_limits *reply_limits; /* borrowed; NULL: the defaults */
    struct zos_link_gate *gate; /* borrowed; NULL: connect at once, no descriptor budget */
    bool resp3;                 /* speak RESP3: "HELLO 3 [AUTH user secret]" instead of AUTH; push
                                   frames (">") go to the push callback whatever is in flight */
    SSL_SESSION **session;      /* borrowed: the node's last TLS session, for resumption */
    const char *auth_user;      /* send "AUTH <auth_user> <secret>" (a zos-proxy: the user
                                   names the node); NULL: "AUTH <secret>" when a secret is set */
    bool select_db;             /* SELECT db (below) instead of the node's own db */
    int db;
    struct zos_link_watch *watch; /* borrowed: the node's watch (below); NULL: unwatched */
    struct zos_link_stats *stats; /* borrowed, outlives the link: what it adds to (requests,
                                     errors, bytes, reconnects, connections open, and the
                                     latency of replies when stats->timed and not pinned);
                                     NULL: not counted */
};

/* Whether a node is alive, for every link to it (see link.c): when requests
 * wait and nothing was read for a while, and every IDLE_PING_MS anyway, the
 * node gets a PING on a link that is not busy (an idle shared link, else the
 * control link FN(ARG) gives); no answer within TIMEOUT_MS and every link of
 * the node fails ("no answer to PING within ... (node hung?)").  Free it
 * after its links (or they are no longer watched).  NULL when out of memory. */
struct zos_link_watch;
struct zos_link_watch *zos_link_watch_new(struct event_base *base, int timeout_ms,
                                          int idle_ping_ms);
void zos_link_watch_free(struct zos_link_watch *w); /* accepts NULL */
void zos_link_watch_set_control(struct zos_link_watch *w, struct zos_link *(*fn)(void *arg),
                                void *arg);
/* New TIMEOUT_MS and IDLE_PING_MS (a reload), from the next tick on. */
void zos_link_watch_set_times(struct zos_link_watch *w, int timeout_ms, int idle_ping_ms);
/* A command just sent keeps the node silent for up to MS (DEBUG SLEEP):
 * no answer meanwhile is no hang. */
void zos_link_watch_quiet(struct zos_link_watch *w, long long ms);
/* Fails every open link of W with WHY (shutting down).  W may be NULL. */
void zos_link_watch_fail(struct zos_link_watch *w, const char *why);
/* One such command was answered (or refused): when none is left, the quiet
 * time ends. */
void zos_link_watch_quiet_done(struct zos_link_watch *w);
/* Milliseconds left of such a quiet time (0: none; W may be NULL). */
long long zos_link_watch_quiet_left(const struct zos_link_watch *w);
/* Times the node was found hung. */
unsigned long long zos_link_watch_hangs(const struct zos_link_watch *w);

/* True when L should take no new request that can go elsewhere: its oldest
 * request has waited more than BUSY_MS, or a big reply is on its way. */
bool zos_link_busy(const struct zos_link *l, int busy_ms);
/* Request bytes on L not yet written to the node. */
size_t zos_link_backlog(const struct zos_link *l);
/* Milliseconds since L was last used, 0 while it has requests. */
long long zos_link_idle_ms(const struct zos_link *l);

/* Connect admission shared by the links of one loop: at most MAX_CONNECTING
 * connects (TCP, TLS, AUTH/SELECT) in progress at once, the rest wait in
 * order, and each connect's timeout starts when it really starts.  BUDGET > 0
 * bounds the node connections open at once: past it the least recently used
 * idle shared link is closed (it reopens on demand); when every one is busy
 * the new connect fails ("no descriptor left ...") and the link stays IDLE.
 * The gate must outlive its links.  NULL when out of memory. */
struct zos_link_gate;
struct zos_link_gate *zos_link_gate_new(struct event_base *base, int max_connecting, size_t budget);
void zos_link_gate_free(struct zos_link_gate *g); /* accepts NULL */
void zos_link_gate_set_budget(struct zos_link_gate *g, size_t budget);
void zos_link_gate_set_max_connecting(struct zos_link_gate *g, int max_connecting);
/* Node connections open now. */
size_t zos_link_gate_open(const struct zos_link_gate *g);

/* A new link to NODE (borrowed; must outlive the link).  SSL_CTX is borrowed
 * too (NULL for a plain node).  DNS may be NULL: names then resolve with a
 * blocking getaddrinfo.
 * Nothing is connected until the first request.  NULL on allocation failure. */
struct zos_link *zos_link_new(struct event_base *base, struct evdns_base *dns,
                              const struct zos_node_conf *node, SSL_CTX *ssl,
                              const struct zos_link_opts *opts);

/* For tests and fuzzers: use BEV (taken, freed with the link; an end of a
 * bufferevent_pair, say) as the connection to the node, already connected,
 * instead of connecting.  The link must be IDLE.  ZOS_ERR: BEV was freed. */
int zos_link_attach(struct zos_link *l, struct bufferevent *bev);

/* Closes the connection; every pending request's callback runs with ERR
 * "link closed".  Accepts NULL. */
void zos_link_free(struct zos_link *l);

/* Queues one complete request: moves LEN bytes from the front of REQ.  FN
 * runs when its reply arrives; FN NULL means no reply is expected in the FIFO
 * (pub/sub and MONITOR: see zos_link_set_push).  ZOS_ERR when the link is down:
 * nothing is moved, FN never runs, zos_link_errstr() tells why. */
int zos_link_send(struct zos_link *l, struct evbuffer *req, size_t len, zos_link_reply_fn fn,
                  void *arg);

/* Same, for a command given as arguments (encoded as a RESP array). */
int zos_link_send_argv(struct zos_link *l, size_t argc, const char *const *argv,
                       const size_t *argvlen, zos_link_reply_fn fn, void *arg);

/* Drops the FIFO's head entry without running it, when it is FN(ARG): a
 * request whose answer came another way (RESP3 (un)subscribe confirmations
 * are pushes).  False when the head is another entry. */
bool zos_link_consume_head(struct zos_link *l, zos_link_reply_fn fn, void *arg);

/* The owner found a reply it cannot use (REPLY: its first LEN bytes, shown
 * escaped in the reason): the connection is dropped as for a malformed reply,
 * every request in flight fails with "protocol error: WHAT (...)".  May be
 * called from a reply callback of L. */
void zos_link_drop(struct zos_link *l, const char *what, struct evbuffer *reply, size_t len);
/* True for the reason of a link dropped for a protocol error. */
bool zos_link_is_protocol_error(const char *err);

/* Replies that arrive with no pending request (RESP2 pub/sub, MONITOR), and
 * on a RESP3 link every push frame, go to FN.  Without FN they are protocol
 * errors of the link. */
void zos_link_set_push(struct zos_link *l, zos_link_reply_fn fn, void *arg);

/* Pinned links: FN(ARG) runs once when the link fails or closes by itself. */
void zos_link_set_closed(struct zos_link *l, void (*fn)(void *arg, const char *err), void *arg);

/* FN(ARG, state, why) runs when the link becomes ready or goes down (for logs). */
void zos_link_set_state_cb(struct zos_link *l,
                           void (*fn)(void *arg, enum zos_link_state s, const char *why),
                           void *arg);

enum zos_link_state zos_link_state(const struct zos_link *l);
const char *zos_link_state_name(enum zos_link_state s);
/* Why the link is or was down ("" when it never failed). */
const char *zos_link_errstr(const struct zos_link *l);
/* The same with its category (ZOS_ERRCAT_NONE when it never failed): set
 * where the link failed (UNREACHABLE, AUTH, TLS, PROTOCOL, NODE, ...). */
const struct zos_err *zos_link_err(const struct zos_link *l);
/* Requests sent and not yet answered. */
size_t zos_link_inflight(const struct zos_link *l);
const struct zos_node_conf *zos_link_node(const struct zos_link *l);

/* One SSL_CTX per distinct verification setting, shared by every node that
 * has it: "none" and "sha256:" (the pin is checked per connection) share
 * one; each CA file has its own.  10,000 TLS nodes then cost one context,
 * not 10,000. */
struct zos_tls_set;
struct zos_tls_set *zos_tls_set_new(void); /* NULL when out of memory */
/* The context for NODE (borrowed: it lives as long as the set), made on
 * first need; NULL with ERR (a CA file that cannot be read). */
SSL_CTX *zos_tls_set_get(struct zos_tls_set *t, const struct zos_node_conf *node, char *err,
                         size_t errlen);
void zos_tls_set_free(struct zos_tls_set *t); /* accepts NULL */

/* An SSL_CTX for NODE's verification mode (none, CA file, or SHA-256 pin,
 * checked after the handshake).  NULL with ERR on failure.  Caller frees it
 * with SSL_CTX_free. */
SSL_CTX *zos_link_ssl_ctx(const struct zos_node_conf *node, char *err, size_t errlen);

#endif

/* fuzz_link.c -- libFuzzer target of a link to a node, over a bufferevent pair.
 *
 *   fuzzer --requests--> zos_link --pair--> node end: parsed, checked
 *   fuzzer --node bytes (pieces)--> node end --pair--> zos_link --> callbacks: checked
 *
 * Input: byte 0 picks the link (AUTH secret, SELECT db, pinned, RESP3, an
 * AUTH user, deferred pair callbacks, small reply limits, a gate), byte 1 how
 * callbacks behave at first; the rest is a program of operations: send a
 * request (with a reply callback, or without one as the pub/sub tunnel does),
 * write node bytes (fuzzed, or canned replies) in pieces, run the loop, set
 * or clear the push callback, change how callbacks behave, close the node
 * end.  A fresh event_base per input; no timer is ever due (timeouts of an
 * hour, no health PING, and the loop is left as soon as a shared link goes
 * down and not run again: its reconnect would be a real connect).
 * Checked:
 *   - each request accepted gets exactly one callback, reply or error, in the
 *     order sent, by the time the link is freed; a refused one gets none;
 *   - a reply callback gets one whole reply (LEN within the buffer, framed
 *     alike by a fresh scanner), only once the link is ready, and the replies
 *     delivered are the node's replies in order, past the handshake's;
 *   - the node sees the handshake (AUTH/HELLO with the secret, SELECT db, or
 *     a PING when there is nothing else to say)
 *     first, and the requests in order, none before the link was ready;
 *   - a pinned link's closed callback runs once when it fails, a shared
 *     link's never; zos_link_inflight() counts what is unanswered.
 * Callbacks decode replies with the resp helpers (as client.c and job.c do),
 * and leave, drain or move them, send more requests, or drop the link.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "zos/conf.h"
#include "zos/link.h"
#include "zos/resp.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQS  256
#define MAX_ARGS  4
#define HOUR_MS   3600000
#define LOG_LIMIT (1u << 20)

/* ---- requests, as the proxy's modules send them ---- */

enum kind { K_GET, K_TTL, K_BLPOP, K_BRPOPLPUSH, K_MGET, K_SUBSCRIBE, K_UNSUB, K_PING, K_SET, K_N };

struct req {
    enum kind kind;
    size_t argc;
    char argv[MAX_ARGS][24];
    size_t lens[MAX_ARGS];
    bool has_fn;
    bool accepted;
    int calls;
};

/* Everything about one input. */
struct fz {
    const uint8_t *in;
    size_t n, pos;

    struct event_base *base;
    struct zos_link *l;
    struct bufferevent *node; /* the node's end of the pair */
    bool node_closed;
    struct zos_node_conf conf;
    struct zos_link_opts opts;
    struct zos_resp_reply_limits lim; /* the link's, as it reads */
    struct zos_link_gate *gate;
    struct evbuffer *sink; /* where callbacks move replies */
    int mode;              /* how callbacks behave (bits, see reply_cb) */
    uint32_t rnd;

    struct req reqs[MAX_REQS];
    size_t nreq;
    size_t fifo_next;   /* first request that may get the next callback */
    size_t outstanding; /* accepted with a callback, not called back yet */
    int in_cb;

    /* What the node wrote, framed as the link must frame it. */
    struct log wrote;
    struct evbuffer *wrote_buf;
    struct zos_resp_scanner wrote_scan;
    bool wrote_failed;
    size_t *frame_off, *frame_len;
    size_t nframes, frames_cap;
    size_t hs_frames; /* handshake replies among the frames (non-push ones first) */
    size_t delivered; /* frames delivered to the fuzzer's callbacks */
    size_t next_frame;

    /* What the node received. */
    struct zos_resp_parser np;
    bool np_failed;
    size_t hs_expected, hs_seen, node_next;
    bool hs_ping; /* nothing else to say: the handshake is a PING */

    bool ever_ready;
    int downs, readies, closed_calls;
    bool failed_before_free;
};

static struct fz F;

static uint8_t take(void)
{
    return F.pos < F.n ? F.in[F.pos++] : 0;
}

static uint32_t rnd(void)
{
    F.rnd ^= F.rnd << 13;
    F.rnd ^= F.rnd >> 17;
    F.rnd ^= F.rnd << 5;
    return F.rnd;
}

/* ---- what the node wrote: the frames the link should deliver ---- */

static void wrote_add(const char *p, size_t n)
{
    size_t len;

    if (F.wrote.n + n > LOG_LIMIT)
        return; /* past this no more frames are compared */
    log_add(&F.wrote, p, n);
    evbuffer_add(F.wrote_buf, p, n);
    while (!F.wrote_failed) {
        int rc = zos_resp_scan(&F.wrote_scan, F.wrote_buf, &len);
        if (rc == ZOS_AGAIN)
            return;
        if (rc == ZOS_ERR) {
            F.wrote_failed = true;
            return;
        }
        if (F.nframes == F.frames_cap) {
            F.frames_cap = F.frames_cap ? 2 * F.frames_cap : 32;
            F.frame_off = realloc(F.frame_off, F.frames_cap * sizeof(size_t));
            F.frame_len = realloc(F.frame_len, F.frames_cap * sizeof(size_t));
            CHECK(F.frame_off != NULL && F.frame_len != NULL);
        }
        size_t end = F.wrote.n - evbuffer_get_length(F.wrote_buf) + len;
        F.frame_off[F.nframes] = end - len;
        F.frame_len[F.nframes++] = len;
        evbuffer_drain(F.wrote_buf, len);
    }
}

static bool frame_is_push(size_t i)
{
    return F.opts.resp3 && F.wrote.s[F.frame_off[i]] == '>';
}

/* REPLY's first LEN bytes are the next frame the fuzzer's callbacks should
 * get: the node's frames in order, less the handshake's replies (the first
 * non-push ones). */
static void check_delivery(struct evbuffer *reply, size_t len)
{
    char tmp[256];

    CHECK(len > 0 && len <= evbuffer_get_length(reply));
    struct zos_resp_scanner s;
    size_t got;
    zos_resp_scanner_init(&s, &F.lim);
    CHECK(zos_resp_scan(&s, reply, &got) == ZOS_OK && got == len);

    while (F.next_frame < F.nframes && !frame_is_push(F.next_frame) &&
           F.hs_frames < F.hs_expected) {
        F.hs_frames++; /* consumed by the handshake */
        F.next_frame++;
    }
    if (F.next_frame >= F.nframes)
        return; /* past what is logged */
    size_t i = F.next_frame++;
    CHECK(F.frame_len[i] == len);
    struct evbuffer_ptr p;
    evbuffer_ptr_set(reply, &p, 0, EVBUFFER_PTR_SET);
    for (size_t at = 0; at < len; at += sizeof(tmp)) {
        size_t k = len - at < sizeof(tmp) ? len - at : sizeof(tmp);
        CHECK(evbuffer_copyout_from(reply, &p, tmp, k) == (ev_ssize_t)k);
        CHECK(memcmp(tmp, F.wrote.s + F.frame_off[i] + at, k) == 0);
        evbuffer_ptr_set(reply, &p, k, EVBUFFER_PTR_ADD);
    }
    F.delivered++;
}

/* ---- callbacks ---- */

static int send_one(bool with_fn, bool argv_form, enum kind kind);

/* Decodes REPLY as the module that sent KIND would. */
static void decode(enum kind kind, struct evbuffer *reply, size_t len)
{
    char buf[200], kindbuf[32], *s = NULL, *v[3];
    size_t slen;
    long long n;

    zos_resp_escape(reply, len, buf, 72);
    switch (kind) {
    case K_TTL:
        if (!zos_resp_reply_error(reply, len, buf, sizeof(buf)))
            zos_resp_reply_int(reply, len, &n);
        break;
    case K_GET:
    case K_BLPOP:
    case K_BRPOPLPUSH:
        if (!zos_resp_reply_string(reply, len, false, &s, &slen))
            zos_resp_reply_string(reply, len, true, &s, &slen);
        if (s != NULL)
            CHECK(s[slen] == '\0');
        else
            zos_resp_reply_error(reply, len, buf, sizeof(buf));
        free(s);
        break;
    case K_MGET:
        if (zos_resp_reply_strings(reply, len, 3, v))
            for (int i = 0; i < 3; i++)
                free(v[i]);
        break;
    case K_SUBSCRIBE:
    case K_UNSUB:
        if (zos_resp_reply_type(reply, len) == '*' || zos_resp_reply_type(reply, len) == '>')
            zos_resp_reply_pubsub(reply, len, kindbuf, sizeof(kindbuf), &n);
        break;
    default:
        if (!zos_resp_reply_is_ok(reply, len))
            zos_resp_reply_error(reply, len, buf, sizeof(buf));
        break;
    }
}

/* What a callback does with the reply it got: MODE bits 0-1 leave / drain /
 * move it; bit 2 sends another request; bit 3 drops the link for an error
 * reply (or, in the push callback, for anything but an array); bit 6 sends
 * another request from an error callback (refused: the link is down). */
static void dispose(struct evbuffer *reply, size_t len, bool push)
{
    char type = zos_resp_reply_type(reply, len);
    size_t before = evbuffer_get_length(reply);

    if (F.mode & 4)
        send_one(rnd() & 1, rnd() & 2, (enum kind)(rnd() % K_N));
    if ((F.mode & 8) && (push ? type != '*' && type != '>' : type == '-')) {
        zos_link_drop(F.l, "fuzz: a reply it cannot use", reply, len);
        CHECK(zos_link_state(F.l) == ZOS_LINK_DOWN);
        CHECK(strstr(zos_link_errstr(F.l), "protocol error: fuzz") != NULL);
        return;
    }
    switch (F.mode & 3) {
    case 1:
        evbuffer_drain(reply, len);
        break;
    case 2:
        evbuffer_remove_buffer(reply, F.sink, len);
        evbuffer_drain(F.sink, evbuffer_get_length(F.sink));
        break;
    default:
        break;
    }
    CHECK(evbuffer_get_length(reply) == before || evbuffer_get_length(reply) == before - len);
}

static void reply_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct req *r = arg;

    F.in_cb++;
    CHECK(r >= F.reqs && r < F.reqs + F.nreq && r->has_fn && r->accepted && r->calls == 0);
    while (F.fifo_next < F.nreq && !(F.reqs[F.fifo_next].has_fn && F.reqs[F.fifo_next].accepted))
        F.fifo_next++;
    CHECK(r == &F.reqs[F.fifo_next]); /* in the order sent */
    F.fifo_next++;
    r->calls++;
    F.outstanding--;
    if (reply == NULL) {
        CHECK(err != NULL && err[0] != '\0' && len == 0);
        if (F.mode & 64) /* refused: the link is down (or being freed) */
            CHECK(send_one(true, rnd() & 1, (enum kind)(rnd() % K_N)) == ZOS_ERR);
    } else {
        CHECK(err == NULL);
        CHECK(zos_link_state(F.l) == ZOS_LINK_READY);
        check_delivery(reply, len);
        CHECK(!(F.opts.resp3 && zos_resp_reply_type(reply, len) == '>'));
        decode(r->kind, reply, len);
        dispose(reply, len, false);
    }
    F.in_cb--;
}

static void push_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    F.in_cb++;
    CHECK(arg == &F && reply != NULL && err == NULL);
    check_delivery(reply, len);
    /* A push frame on a RESP3 link, else a reply with nothing in flight. */
    CHECK((F.opts.resp3 && zos_resp_reply_type(reply, len) == '>') || F.outstanding == 0);
    decode(K_SUBSCRIBE, reply, len);
    dispose(reply, len, true);
    F.in_cb--;
}

static void closed_cb(void *arg, const char *err)
{
    CHECK(arg == &F && err != NULL && err[0] != '\0');
    CHECK(F.opts.pinned && F.closed_calls == 0);
    F.closed_calls++;
    CHECK(F.outstanding == 0); /* every request was told first */
}

/* Whether handshake reply K (0: the first) is one the link must accept:
 * HELLO's map, or AUTH's and SELECT's +OK. */
static bool hs_reply_ok(size_t k)
{
    size_t i = 0, seen = 0;
    for (; i < F.nframes; i++)
        if (!frame_is_push(i) && seen++ == k)
            break;
    CHECK(i < F.nframes); /* the link read it */
    const char *p = F.wrote.s + F.frame_off[i];
    if (F.opts.resp3 && k == 0)
        return p[0] == '%';
    struct evbuffer *b = evbuffer_new();
    char text[16];
    CHECK(b != NULL);
    evbuffer_add(b, p, F.frame_len[i]);
    bool err = zos_resp_reply_error(b, F.frame_len[i], text, sizeof(text));
    bool ok = F.hs_ping ? (err ? strncmp(text, "NOAUTH", 6) != 0 : p[0] == '+')
                        : zos_resp_reply_is_ok(b, F.frame_len[i]);
    evbuffer_free(b);
    return ok;
}

static void state_cb(void *arg, enum zos_link_state s, const char *why)
{
    /* Ready once every handshake reply was right; a handshake that failed
     * says which reply, and that reply was wrong. */
    if (s == ZOS_LINK_READY)
        for (size_t k = 0; k < F.hs_expected; k++)
            CHECK(hs_reply_ok(k));
    if (s == ZOS_LINK_DOWN && strstr(why, " failed: ") != NULL &&
        (strncmp(why, "AUTH", 4) == 0 || strncmp(why, "SELECT", 6) == 0 ||
         strncmp(why, "HELLO", 5) == 0 || strncmp(why, "PING", 4) == 0)) {
        size_t k = 0;
        while (k < F.hs_expected && hs_reply_ok(k))
            k++;
        CHECK(k < F.hs_expected && !F.ever_ready);
    }
    CHECK(arg == &F && why != NULL);
    if (s == ZOS_LINK_READY) {
        CHECK(F.readies == 0); /* no reconnect on a pair */
        F.readies++;
        F.ever_ready = true;
    } else {
        CHECK(s == ZOS_LINK_DOWN && why[0] != '\0' && F.downs == 0);
        F.downs++;
        /* A shared link now has a reconnect timer: leave the loop at once,
         * before a long turn lets it fire (a real connect). */
        if (!F.opts.pinned)
            event_base_loopbreak(F.base);
    }
}

/* ---- requests ---- */

static void fill_req(struct req *r, enum kind kind)
{
    static const char *const names[K_N] = {
        "GET", "TTL", "BLPOP", "BRPOPLPUSH", "MGET", "SUBSCRIBE", "UNSUBSCRIBE", "PING", "SET"};
    static const size_t argcs[K_N] = {2, 2, 3, 4, 4, 2, 1, 1, 3};

    r->kind = kind;
    r->argc = argcs[kind];
    for (size_t i = 0; i < r->argc; i++) {
        if (i == 0)
            snprintf(r->argv[0], sizeof(r->argv[0]), "%s", names[kind]);
        else if (kind == K_SET && i == 2)
            snprintf(r->argv[i], sizeof(r->argv[i]), "v\r\n%u", (unsigned)(rnd() % 1000));
        else if ((kind == K_BLPOP && i == 2) || (kind == K_BRPOPLPUSH && i == 3))
            snprintf(r->argv[i], sizeof(r->argv[i]), "1");
        else
            snprintf(r->argv[i], sizeof(r->argv[i]), "result:%u", (unsigned)(rnd() % 100));
        r->lens[i] = strlen(r->argv[i]);
    }
}

/* Sends one request; ZOS_OK if the link took it. */
static int send_one(bool with_fn, bool argv_form, enum kind kind)
{
    const char *argv[MAX_ARGS];
    int rc;

    if (F.nreq == MAX_REQS)
        return ZOS_ERR;
    struct req *r = &F.reqs[F.nreq++];
    memset(r, 0, sizeof(*r));
    fill_req(r, kind);
    for (size_t i = 0; i < r->argc; i++)
        argv[i] = r->argv[i];
    r->has_fn = with_fn;
    r->accepted = true; /* no callback can run inside the send */
    if (with_fn)
        F.outstanding++;
    zos_link_reply_fn fn = with_fn ? reply_cb : NULL;
    if (argv_form) {
        rc = zos_link_send_argv(F.l, r->argc, argv, r->lens, fn, r);
    } else {
        /* From a buffer holding more than the request: only LEN bytes move. */
        struct evbuffer *b = evbuffer_new();
        CHECK(b != NULL);
        zos_resp_add_command(b, r->argc, argv, r->lens);
        size_t len = evbuffer_get_length(b);
        evbuffer_add(b, "*1\r\n$4\r\nnext\r\n", 14);
        rc = zos_link_send(F.l, b, len, fn, r);
        CHECK(evbuffer_get_length(b) == (rc == ZOS_OK ? 14 : len + 14));
        evbuffer_free(b);
    }
    if (rc != ZOS_OK) {
        CHECK(rc == ZOS_ERR && r->calls == 0 && zos_link_errstr(F.l)[0] != '\0');
        CHECK(zos_link_state(F.l) == ZOS_LINK_DOWN);
        r->accepted = false;
        if (with_fn)
            F.outstanding--;
    }
    return rc;
}

/* ---- the node's end ---- */

static bool is_hs_command(const struct zos_resp_argv *av)
{
    return av->argc > 0 &&
           (strcmp(av->argv[0], "AUTH") == 0 || strcmp(av->argv[0], "SELECT") == 0 ||
            strcmp(av->argv[0], "HELLO") == 0 ||
            (F.hs_ping && F.hs_seen == 0 && strcmp(av->argv[0], "PING") == 0));
}

/* One handshake command as link.c must write it. */
static void check_hs_command(const struct zos_resp_argv *av)
{
    const char *secret = F.conf.secret != NULL ? F.conf.secret : "";
    const char *user = F.opts.auth_user;
    char db[16];

    CHECK(F.node_next == 0 && F.hs_seen < F.hs_expected);
    if (strcmp(av->argv[0], "HELLO") == 0) {
        CHECK(F.opts.resp3 && F.hs_seen == 0 && strcmp(av->argv[1], "3") == 0);
        if (av->argc == 5)
            CHECK(strcmp(av->argv[2], "AUTH") == 0 &&
                  strcmp(av->argv[3], user != NULL ? user : "default") == 0 &&
                  strcmp(av->argv[4], secret) == 0);
        else
            CHECK(av->argc == 2 && secret[0] == '\0' && user == NULL);
    } else if (strcmp(av->argv[0], "AUTH") == 0) {
        CHECK(!F.opts.resp3 && F.hs_seen == 0);
        if (user != NULL)
            CHECK(av->argc == 3 && strcmp(av->argv[1], user) == 0 &&
                  strcmp(av->argv[2], secret) == 0);
        else
            CHECK(av->argc == 2 && strcmp(av->argv[1], secret) == 0);
    } else if (strcmp(av->argv[0], "PING") == 0) {
        CHECK(F.hs_ping && av->argc == 1);
    } else {
        snprintf(db, sizeof(db), "%d", F.conf.db);
        CHECK(F.conf.db > 0 && av->argc == 2 && strcmp(av->argv[1], db) == 0);
        CHECK(F.hs_seen + 1 == F.hs_expected);
    }
    F.hs_seen++;
}

/* Reads what reached the node: the handshake first, then the requests in
 * order, and those only once the link was ready. */
static void node_read(void)
{
    struct evbuffer *in = bufferevent_get_input(F.node);
    struct zos_resp_req q;
    struct zos_resp_argv av;
    char err[128];

    while (!F.np_failed) {
        int rc = zos_resp_parse(&F.np, in, &q, err, sizeof(err));
        if (rc == ZOS_AGAIN)
            return;
        CHECK(rc == ZOS_OK && !q.is_inline && q.argc > 0);
        CHECK(zos_resp_argv(in, &q, &av) == ZOS_OK);
        if (is_hs_command(&av)) {
            check_hs_command(&av);
        } else {
            CHECK(F.ever_ready && F.hs_seen == F.hs_expected);
            while (F.node_next < F.nreq && !F.reqs[F.node_next].accepted)
                F.node_next++;
            CHECK(F.node_next < F.nreq);
            const struct req *r = &F.reqs[F.node_next++];
            CHECK(av.argc == r->argc);
            for (size_t i = 0; i < av.argc; i++)
                CHECK(av.argvlen[i] == r->lens[i] &&
                      memcmp(av.argv[i], r->argv[i], r->lens[i]) == 0);
        }
        zos_resp_argv_free(&av);
        evbuffer_drain(in, q.len);
    }
}

/* The node writes P[0..N) in up to three exactly sized chains. */
static void node_write(const char *p, size_t n)
{
    if (F.node_closed || n == 0)
        return;
    size_t a = rnd() % (n + 1), z = rnd() % (n + 1), cut[4];
    cut[0] = 0;
    cut[1] = a < z ? a : z;
    cut[2] = a < z ? z : a;
    cut[3] = n;
    wrote_add(p, n);
    struct evbuffer *out = bufferevent_get_output(F.node);
    for (int i = 0; i < 3; i++) {
        size_t k = cut[i + 1] - cut[i];
        if (k == 0)
            continue;
        add_piece(out, p + cut[i], k);
    }
}

static bool loop_allowed(void)
{
    /* A shared link that is down retries with a real connect once its
     * backoff is over: its timers must never be due. */
    return F.opts.pinned || zos_link_state(F.l) != ZOS_LINK_DOWN;
}

static void run_loop(int turns)
{
    for (int i = 0; i < turns && loop_allowed(); i++)
        CHECK(event_base_loop(F.base, EVLOOP_NONBLOCK) >= 0);
    node_read();
}

static void check_counts(void)
{
    CHECK(F.in_cb == 0);
    CHECK(zos_link_inflight(F.l) == F.outstanding);
    if (zos_link_state(F.l) == ZOS_LINK_DOWN)
        CHECK(F.outstanding == 0);
    CHECK(F.closed_calls == (F.opts.pinned && zos_link_state(F.l) == ZOS_LINK_DOWN));
}

static const char *const canned[] = {
    "+OK\r\n",
    "-ERR fuzz\r\n",
    ":1\r\n",
    ":-2\r\n",
    "$-1\r\n",
    "*-1\r\n",
    "$5\r\nhello\r\n",
    "*2\r\n$8\r\nresult:1\r\n$13\r\n{\"state\":\"1\"}\r\n",
    "*3\r\n$4\r\n2222\r\n$-1\r\n$8\r\n10.0.0.1\r\n",
    "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n",
    "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    ">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n",
    "%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n",
    "-WRONGPASS invalid username-password pair\r\n",
    "-NOAUTH Authentication required.\r\n",
    "+PONG\r\n",
    "|1\r\n+ttl\r\n:3\r\n+OK\r\n",
    "_\r\n",
    "#t\r\n",
    ",1.5\r\n",
    "*2\r\n",
    "$10\r\n0123",
    "456789\r\n",
    "\r\n",
    "garbage\r\n",
    "+OK\r\n+OK\r\n+OK\r\n",
};

/* ---- one input ---- */

static void setup(const uint8_t *data, size_t size)
{
    struct bufferevent *pair[2];
    static char secret[] = "eyJhbGciOiJFUzM4NCJ9.jwt";

    memset(&F, 0, sizeof(F));
    F.in = data;
    F.n = size;
    uint8_t flags = take();
    F.mode = take();
    F.rnd = 0x9e3779b9u ^ (uint32_t)size * 2654435761u ^ flags;

    F.conf.name = "fuzz";
    F.conf.address = "127.0.0.1";
    F.conf.port = 1; /* never connected: the link runs over the pair */
    F.conf.tls = false;
    F.conf.secret = (flags & 1) ? secret : NULL;
    F.conf.db = (flags & 2) ? 1 + (F.mode >> 5) : 0;
    F.opts.pinned = flags & 4;
    F.opts.resp3 = flags & 8;
    F.opts.auth_user = (flags & 16) ? "fuzznode" : NULL;
    F.opts.connect_timeout_ms = HOUR_MS;
    F.opts.backoff_max_ms = HOUR_MS;
    zos_resp_reply_limits_default(&F.lim);
    if (flags & 64) {
        F.lim.max_bulk = 16;
        F.lim.max_elements = 4;
        F.lim.max_depth = 3;
        F.opts.reply_limits = &F.lim;
    }
    F.lim.resp2_only = !F.opts.resp3;
    F.hs_expected =
        (F.opts.resp3 || F.conf.secret != NULL || F.opts.auth_user != NULL) + (F.conf.db > 0);
    F.hs_ping = F.hs_expected == 0;
    F.hs_expected += F.hs_ping;

    F.base = event_base_new();
    CHECK(F.base != NULL);
    if (flags & 128) {
        F.gate = zos_link_gate_new(F.base, 1, 0);
        F.opts.gate = F.gate;
    }
    F.sink = evbuffer_new();
    F.wrote_buf = evbuffer_new();
    CHECK(F.sink != NULL && F.wrote_buf != NULL);
    zos_resp_scanner_init(&F.wrote_scan, &F.lim);
    zos_resp_parser_init(&F.np, NULL);

    F.l = zos_link_new(F.base, NULL, &F.conf, NULL, &F.opts);
    CHECK(F.l != NULL && zos_link_state(F.l) == ZOS_LINK_IDLE);
    zos_link_set_state_cb(F.l, state_cb, &F);
    zos_link_set_closed(F.l, closed_cb, &F);
    int bevopts = BEV_OPT_CLOSE_ON_FREE | ((flags & 32) ? BEV_OPT_DEFER_CALLBACKS : 0);
    CHECK(bufferevent_pair_new(F.base, bevopts, pair) == 0);
    F.node = pair[1];
    bufferevent_enable(F.node, EV_READ | EV_WRITE);
    CHECK(zos_link_attach(F.l, pair[0]) == ZOS_OK);
    /* A second connection is refused, and freed (LSan sees a leak otherwise). */
    struct bufferevent *extra[2];
    CHECK(bufferevent_pair_new(F.base, BEV_OPT_CLOSE_ON_FREE, extra) == 0);
    CHECK(zos_link_attach(F.l, extra[0]) == ZOS_ERR);
    bufferevent_free(extra[1]);
    CHECK(zos_link_state(F.l) == ZOS_LINK_CONNECTING); /* until the node answers */
    CHECK(!F.ever_ready);
    node_read();
}

static void teardown(void)
{
    bool pinned_down = F.opts.pinned && zos_link_state(F.l) == ZOS_LINK_DOWN;

    zos_link_free(F.l);
    F.l = NULL;
    /* Every request accepted was answered or failed, once; none other. */
    for (size_t i = 0; i < F.nreq; i++)
        CHECK(F.reqs[i].calls == (F.reqs[i].accepted && F.reqs[i].has_fn));
    CHECK(F.outstanding == 0);
    CHECK(F.closed_calls == pinned_down); /* freeing is not closing by itself */
    CHECK(F.downs <= 1 && F.readies <= 1);
    bufferevent_free(F.node);
    zos_link_gate_free(F.gate);
    evbuffer_free(F.sink);
    evbuffer_free(F.wrote_buf);
    event_base_free(F.base);
    free(F.wrote.s);
    free(F.frame_off);
    free(F.frame_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    setup(data, size);
    for (int ops = 0; F.pos < F.n && ops < 512; ops++) {
        uint8_t op = take(), arg = take();
        switch (op % 10) {
        case 0:
        case 1:
            send_one(true, op & 16, (enum kind)(arg % K_N));
            break;
        case 2: /* the tunnel: no reply expected in the FIFO */
            send_one(false, op & 16, (enum kind)(arg % K_N));
            break;
        case 3: { /* fuzzed node bytes */
            size_t k = arg < F.n - F.pos ? arg : F.n - F.pos;
            node_write((const char *)F.in + F.pos, k);
            F.pos += k;
            break;
        }
        case 4:
        case 5: {
            const char *c = canned[arg % (sizeof(canned) / sizeof(canned[0]))];
            node_write(c, strlen(c));
            break;
        }
        case 6:
            run_loop(1 + (arg & 3));
            break;
        case 7:
            zos_link_set_push(F.l, (arg & 1) ? push_cb : NULL, &F);
            break;
        case 8:
            F.mode = arg;
            break;
        case 9:
            if ((arg & 7) == 0 && !F.node_closed) { /* the node hangs up */
                F.node_closed = true;
                bufferevent_flush(F.node, EV_WRITE, BEV_FINISHED);
            }
            break;
        }
        node_read();
        check_counts();
    }
    run_loop(4);
    check_counts();
    teardown();
    return 0;
}

/* test_link.c -- unit tests of link: one connection to a node, over a
 * bufferevent_pair whose far end is a scripted node (testutil's peer).
 *
 *   test --zos_link_send--> link --pair--> peer: records each request
 *   test --tu_peer_write--> peer --pair--> link --> reply callbacks: recorded
 *
 * What is checked: the handshake (AUTH/HELLO, SELECT, or a PING when there
 * is nothing else to say) comes first and holds every request back until it
 * is answered; replies go to requests in the order sent, however the bytes
 * are cut; a lost connection fails every request in flight, in order; the
 * backlog, busy and idle figures; the watch that finds a hung node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "zos/link.h"
#include "zos/resp.h"
#include "zos/zos.h"

#include "testutil.h"

#define HOUR_MS  3600000
#define MAX_SEEN 512

/* What the reply callbacks saw, in the order they ran. */
struct seen {
    size_t n;
    int tag[MAX_SEEN];
    char *reply[MAX_SEEN]; /* the reply's bytes, NULL on error */
    char *err[MAX_SEEN];   /* the error, NULL on a reply */
};

/* Everything about one test. */
struct fx {
    struct event_base *base;
    struct zos_node_conf node;
    struct zos_link_opts opts;
    struct zos_link *l;
    struct tu_peer *peer;
    struct seen seen;
    int tags[MAX_SEEN];
    int closed_calls;
    char closed_err[256];
};

static struct fx F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof(F));
    for (int i = 0; i < MAX_SEEN; i++)
        F.tags[i] = i;
    F.base = event_base_new();
    assert_non_null(F.base);
    F.node.name = "n1";
    F.node.address = "127.0.0.1";
    F.node.port = 1; /* never connected: the link runs over the pair */
    F.opts.connect_timeout_ms = HOUR_MS;
    F.opts.backoff_max_ms = HOUR_MS;
}

/* L failed: DOWN, or IDLE when its backoff (50 ms and more) already ran out
 * because a loaded machine stalled the loop that long -- never READY or
 * CONNECTING (no request asked for it again). */
#define assert_failed(l)                                                                           \
    do {                                                                                           \
        enum zos_link_state st_ = zos_link_state(l);                                               \
        if (st_ != ZOS_LINK_DOWN && st_ != ZOS_LINK_IDLE)                                          \
            fail_msg("link state %s, not down", zos_link_state_name(st_));                         \
    } while (0)

/* The link, attached to a fresh pair: CONNECTING, its handshake written. */
static void fx_attach(void)
{
    struct bufferevent *end;
    F.l = zos_link_new(F.base, NULL, &F.node, NULL, &F.opts);
    assert_non_null(F.l);
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_IDLE);
    F.peer = tu_peer_pair(F.base, &end, NULL, NULL);
    assert_non_null(F.peer);
    assert_int_equal(zos_link_attach(F.l, end), ZOS_OK);
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_CONNECTING);
    tu_loop_settle(F.base);
}

static void answer_handshake(void);

/* A fresh link, attached, its handshake answered: READY. */
static void fx_ready(void)
{
    fx_setup();
    fx_attach();
    answer_handshake();
}

static void seen_clear(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->reply[i]);
        free(s->err[i]);
    }
    s->n = 0;
}

static void fx_teardown(void)
{
    zos_link_free(F.l);
    tu_peer_free(F.peer);
    seen_clear(&F.seen);
    tu_loop_settle(F.base); /* callbacks still deferred hold their bufferevents */
    event_base_free(F.base);
}

/* A reply callback: records its tag and what it got, and leaves the bytes. */
static void record_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct seen *s = &F.seen;
    assert_true(s->n < MAX_SEEN);
    s->tag[s->n] = *(int *)arg;
    s->reply[s->n] = NULL;
    s->err[s->n] = err != NULL ? strdup(err) : NULL;
    if (reply != NULL) {
        assert_true(len <= evbuffer_get_length(reply));
        s->reply[s->n] = calloc(1, len + 1);
        evbuffer_copyout(reply, s->reply[s->n], len);
    }
    s->n++;
}

/* Requests FROM..TO-1 got ERR (and no reply), in the order sent. */
static void errors_in_order(int from, int to, const char *err)
{
    for (int i = from; i < to; i++) {
        assert_int_equal(F.seen.tag[i], i);
        assert_null(F.seen.reply[i]);
        assert_string_equal(F.seen.err[i], err);
    }
}

/* The same, but it takes the reply's bytes away (as client.c moves them). */
static void take_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    record_cb(arg, reply, len, err);
    if (reply != NULL)
        evbuffer_drain(reply, len);
}

static int send_cmd(const char *a0, const char *a1, zos_link_reply_fn fn, int tag)
{
    const char *argv[] = {a0, a1};
    size_t lens[] = {strlen(a0), a1 != NULL ? strlen(a1) : 0};
    return zos_link_send_argv(F.l, a1 != NULL ? 2 : 1, argv, lens, fn, &F.tags[tag]);
}

static void send_get(int tag)
{
    char key[16];
    snprintf(key, sizeof(key), "k%d", tag);
    assert_int_equal(send_cmd("GET", key, record_cb, tag), ZOS_OK);
}

/* Answers the handshake's commands the peer got so far, +OK (a map for HELLO, +PONG for PING). */
static void answer_handshake(void)
{
    for (size_t i = 0; i < tu_peer_count(F.peer); i++) {
        const char *c = tu_peer_cmd(F.peer, i);
        tu_peer_say(F.peer, strncmp(c, "HELLO", 5) == 0  ? "%1\r\n+proto\r\n:3\r\n"
                            : strncmp(c, "PING", 4) == 0 ? "+PONG\r\n"
                                                         : "+OK\r\n");
    }
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_READY);
}

/* ---- the handshake ---- */

/* The node gets EXPECT (commands joined by "|") first, then the request sent
 * meanwhile, only once every handshake reply is in. */
static void check_handshake(const char *expect)
{
    char got[512] = "";
    size_t nhs = 1;
    for (const char *c = expect; *c != '\0'; c++)
        nhs += *c == '|';

    fx_attach();
    send_get(0); /* while CONNECTING: held in the link */
    tu_loop_settle(F.base);
    assert_int_equal(tu_peer_count(F.peer), nhs);
    for (size_t i = 0; i < nhs; i++)
        tu_sfmt(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "|" : "",
                tu_peer_cmd(F.peer, i));
    assert_string_equal(got, expect);
    assert_int_equal(zos_link_inflight(F.l), 1); /* the handshake's entries not counted */
    assert_true(zos_link_backlog(F.l) > 0);      /* the GET waits in the link */

    /* Every handshake reply but the last: still held back. */
    for (size_t i = 0; i + 1 < nhs; i++) {
        const char *c = tu_peer_cmd(F.peer, i);
        tu_peer_say(F.peer, strncmp(c, "HELLO", 5) == 0 ? "%1\r\n+proto\r\n:3\r\n" : "+OK\r\n");
        tu_loop_settle(F.base);
        assert_int_equal(zos_link_state(F.l), ZOS_LINK_CONNECTING);
        assert_int_equal(tu_peer_count(F.peer), nhs);
    }
    const char *last = tu_peer_cmd(F.peer, nhs - 1);
    tu_peer_say(F.peer, strncmp(last, "HELLO", 5) == 0  ? "%1\r\n+proto\r\n:3\r\n"
                        : strncmp(last, "PING", 4) == 0 ? "+PONG\r\n"
                                                        : "+OK\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_READY);
    assert_int_equal(tu_peer_count(F.peer), nhs + 1);
    assert_string_equal(tu_peer_cmd(F.peer, nhs), "GET k0");
    assert_int_equal(F.seen.n, 0); /* handshake replies reach no request */
    assert_int_equal(zos_link_backlog(F.l), 0);

    tu_peer_say(F.peer, "$1\r\nv\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 1);
    assert_string_equal(F.seen.reply[0], "$1\r\nv\r\n");
    assert_int_equal(zos_link_inflight(F.l), 0);
}

static void test_handshake_auth_then_select(void **state)
{
    fx_setup();
    F.node.secret = "s3cret";
    F.node.db = 3;
    check_handshake("AUTH s3cret|SELECT 3");
    fx_teardown();
}

static void test_handshake_auth_user(void **state)
{
    fx_setup();
    F.node.secret = "jwt";
    F.opts.auth_user = "node7";
    check_handshake("AUTH node7 jwt");
    fx_teardown();
}

static void test_handshake_select_only(void **state)
{
    fx_setup();
    F.node.db = 5;
    F.opts.select_db = true; /* a client's own db wins over the node's */
    F.opts.db = 2;
    check_handshake("SELECT 2");
    fx_teardown();
}

static void test_handshake_ping_when_nothing_to_say(void **state)
{
    fx_setup();
    check_handshake("PING");
    fx_teardown();
}

static void test_handshake_hello(void **state)
{
    fx_setup();
    F.opts.resp3 = true;
    check_handshake("HELLO 3");
    fx_teardown();
    fx_setup();
    F.opts.resp3 = true;
    F.node.secret = "s3cret";
    F.node.db = 4;
    check_handshake("HELLO 3 AUTH default s3cret|SELECT 4");
    fx_teardown();
}

/* A refused handshake fails the link and every request that waited for it. */
static void check_refused(const char *answer, const char *why)
{
    fx_attach();
    send_get(0);
    send_get(1);
    tu_peer_say(F.peer, answer);
    tu_loop_settle(F.base);
    assert_failed(F.l);
    assert_string_equal(zos_link_errstr(F.l), why);
    assert_int_equal(F.seen.n, 2);
    errors_in_order(0, 2, why);
    /* Nothing of the requests reached the node. */
    for (size_t i = 0; i < tu_peer_count(F.peer); i++)
        assert_null(strstr(tu_peer_cmd(F.peer, i), "GET"));
}

static void test_handshake_refused(void **state)
{
    fx_setup();
    F.node.secret = "wrong";
    F.opts.pinned = true;
    check_refused("-ERR invalid password\r\n", "AUTH failed: ERR invalid password");
    fx_teardown();

    fx_setup();
    F.opts.pinned = true;
    check_refused("-NOAUTH Authentication required.\r\n",
                  "PING failed: NOAUTH Authentication required.");
    fx_teardown();

    fx_setup();
    F.node.db = 9;
    F.opts.pinned = true;
    check_refused("-ERR DB index is out of range\r\n",
                  "SELECT failed: ERR DB index is out of range");
    fx_teardown();
}

/* A PING answered by an error that is not NOAUTH still shows the node is there. */
static void test_handshake_ping_busy_is_an_answer(void **state)
{
    fx_setup();
    fx_attach();
    tu_peer_say(F.peer, "-BUSY Redis is busy running a script.\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_READY);
    fx_teardown();
}

static void test_attach_refused_unless_idle(void **state)
{
    struct bufferevent *pair[2];
    fx_setup();
    fx_attach();
    assert_int_equal(bufferevent_pair_new(F.base, BEV_OPT_CLOSE_ON_FREE, pair), 0);
    assert_int_equal(zos_link_attach(F.l, pair[0]), ZOS_ERR); /* pair[0] freed by it */
    bufferevent_free(pair[1]);
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_CONNECTING);
    fx_teardown();
}

/* ---- replies to requests, in order ---- */

/* Replies of every RESP2 type; REPLIES concatenated is what the node sends. */
static const char *const replies[] = {
    "+OK\r\n",
    "-ERR wrong type\r\n",
    ":42\r\n",
    ":-7\r\n",
    "$5\r\nhello\r\n",
    "$0\r\n\r\n",
    "$-1\r\n",
    "$6\r\na\r\nb\r\n\r\n", /* CRLF inside a bulk is data */
    "*0\r\n",
    "*-1\r\n",
    "*3\r\n$1\r\na\r\n:1\r\n*2\r\n+x\r\n$-1\r\n",
    "*2\r\n*1\r\n*1\r\n:5\r\n-ERR inner\r\n",
};
#define NREPLIES (sizeof(replies) / sizeof(replies[0]))

static void test_fifo_matches_replies_in_order(void **state)
{
    fx_ready();
    size_t sent = tu_peer_count(F.peer);
    for (int i = 0; i < (int)NREPLIES; i++)
        assert_int_equal(send_cmd("ECHO", replies[i], i % 2 ? take_cb : record_cb, i), ZOS_OK);
    tu_loop_settle(F.base);
    assert_int_equal(tu_peer_count(F.peer), sent + NREPLIES);
    assert_int_equal(zos_link_inflight(F.l), NREPLIES);
    for (size_t i = 0; i < NREPLIES; i++) {
        char want[64];
        tu_sfmt(want, sizeof(want), "ECHO %s", replies[i]);
        assert_string_equal(tu_peer_cmd(F.peer, sent + i), want); /* sent in order */
        tu_peer_say(F.peer, replies[i]);
    }
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, NREPLIES);
    for (size_t i = 0; i < NREPLIES; i++) {
        assert_int_equal(F.seen.tag[i], (int)i);
        assert_null(F.seen.err[i]);
        assert_string_equal(F.seen.reply[i], replies[i]);
    }
    assert_int_equal(zos_link_inflight(F.l), 0);
    fx_teardown();
}

/* Sends one request per reply and the node's bytes cut at CUT (a cut past the
 * end: no second part). */
static void run_split(const char *all, size_t len, size_t cut)
{
    fx_ready();
    for (int i = 0; i < (int)NREPLIES; i++)
        assert_int_equal(send_cmd("GET", "k", i % 2 ? take_cb : record_cb, i), ZOS_OK);
    tu_loop_settle(F.base);
    tu_peer_write(F.peer, all, cut);
    tu_loop_settle(F.base);
    tu_peer_write(F.peer, all + cut, len - cut);
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, NREPLIES);
    for (size_t i = 0; i < NREPLIES; i++) {
        assert_int_equal(F.seen.tag[i], (int)i);
        assert_string_equal(F.seen.reply[i], replies[i]);
    }
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_READY);
    fx_teardown();
}

static void concat_replies(char *all, size_t cap, size_t *len, size_t *ends)
{
    *len = 0;
    for (size_t i = 0; i < NREPLIES; i++) {
        size_t n = strlen(replies[i]);
        assert_true(*len + n < cap);
        memcpy(all + *len, replies[i], n);
        *len += n;
        ends[i] = *len;
    }
}

/* The node's replies cut in two at every position. */
static void test_reply_split_at_every_position(void **state)
{
    char all[512];
    size_t len, ends[NREPLIES];
    concat_replies(all, sizeof(all), &len, ends);
    for (size_t cut = 0; cut <= len; cut++)
        run_split(all, len, cut);
}

/* The node's replies one byte at a time: each callback runs exactly when
 * the last byte of its reply is in, never before. */
static void test_reply_one_byte_at_a_time(void **state)
{
    char all[512];
    size_t len, ends[NREPLIES], done = 0;
    concat_replies(all, sizeof(all), &len, ends);
    fx_ready();
    for (int i = 0; i < (int)NREPLIES; i++)
        assert_int_equal(send_cmd("GET", "k", i % 2 ? take_cb : record_cb, i), ZOS_OK);
    tu_loop_settle(F.base);
    for (size_t b = 0; b < len; b++) {
        tu_peer_write(F.peer, all + b, 1);
        tu_loop_settle(F.base);
        while (done < NREPLIES && ends[done] <= b + 1)
            done++;
        assert_int_equal(F.seen.n, done);
    }
    for (size_t i = 0; i < NREPLIES; i++)
        assert_string_equal(F.seen.reply[i], replies[i]);
    fx_teardown();
}

/* ---- failures ---- */

/* The node hangs up with requests in flight: answered ones keep their
 * replies, every other one gets the error, in the order sent. */
static void check_loss(bool pinned)
{
    fx_setup();
    F.opts.pinned = pinned;
    fx_attach();
    answer_handshake();
    for (int i = 0; i < 6; i++)
        send_get(i);
    tu_loop_settle(F.base);
    tu_peer_say(F.peer, ":0\r\n:1\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 2);
    tu_peer_close(F.peer);
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(F.seen.tag[i], i);
    assert_string_equal(F.seen.reply[1], ":1\r\n");
    for (int i = 2; i < 6; i++) {
        assert_null(F.seen.reply[i]);
        assert_string_equal(F.seen.err[i], "connection closed by the node");
    }
    assert_failed(F.l);
    assert_int_equal(zos_link_inflight(F.l), 0);
    /* Down: the next request is refused at once, and its callback never runs. */
    assert_int_equal(send_cmd("GET", "x", record_cb, 7), ZOS_ERR);
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 6);
    assert_string_equal(zos_link_errstr(F.l), "connection closed by the node");
}

static void closed_cb(void *arg, const char *err)
{
    F.closed_calls++;
    tu_sfmt(F.closed_err, sizeof(F.closed_err), "%s", err);
}

static void test_loss_fails_requests_in_flight_in_order(void **state)
{
    check_loss(false);
    assert_int_equal(F.closed_calls, 0);
    fx_teardown();
}

static void test_loss_of_a_pinned_link(void **state)
{
    fx_setup();
    F.opts.pinned = true;
    fx_attach();
    zos_link_set_closed(F.l, closed_cb, NULL);
    answer_handshake();
    send_get(0);
    tu_peer_close(F.peer);
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 1);
    assert_string_equal(F.seen.err[0], "connection closed by the node");
    assert_int_equal(F.closed_calls, 1); /* once, with the reason */
    assert_string_equal(F.closed_err, "connection closed by the node");
    fx_teardown();
    assert_int_equal(F.closed_calls, 1); /* freeing is not closing again */

    check_loss(true);
    fx_teardown();
}

/* Requests still held behind the handshake fail too when the node goes. */
static void test_loss_during_handshake(void **state)
{
    fx_setup();
    fx_attach();
    for (int i = 0; i < 3; i++)
        send_get(i);
    tu_peer_close(F.peer);
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 3);
    errors_in_order(0, 3, "connection closed by the node");
    assert_int_equal(zos_link_backlog(F.l), 0);
    fx_teardown();
}

/* Freeing the link fails what is in flight with "link closed", in order. */
static void test_free_fails_pending(void **state)
{
    fx_ready();
    for (int i = 0; i < 4; i++)
        send_get(i);
    tu_loop_settle(F.base);
    zos_link_free(F.l);
    F.l = NULL;
    assert_int_equal(F.seen.n, 4);
    errors_in_order(0, 4, "link closed");
    fx_teardown();
}

/* A malformed reply drops the connection: every request in flight gets a
 * protocol error naming the bytes. */
static void test_malformed_reply_is_a_protocol_error(void **state)
{
    fx_ready();
    send_get(0);
    send_get(1);
    tu_loop_settle(F.base);
    tu_peer_say(F.peer, "?what\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(zos_link_is_protocol_error(F.seen.err[i]));
        tu_assert_contains(F.seen.err[i], "?what");
    }
    assert_failed(F.l);
    tu_assert_contains(zos_link_errstr(F.l), "dropped for a protocol error");
    assert_false(zos_link_is_protocol_error("connection closed by the node"));
    assert_false(zos_link_is_protocol_error(NULL));
    fx_teardown();
}

static void test_reply_nobody_asked_for(void **state)
{
    fx_ready();
    tu_peer_say(F.peer, "+surprise\r\n");
    tu_loop_settle(F.base);
    assert_failed(F.l);
    tu_assert_contains(zos_link_errstr(F.l), "a reply nobody asked for");
    fx_teardown();
}

/* The owner drops the link from a reply callback: the requests behind get
 * "protocol error: WHAT (...)". */
static void drop_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    record_cb(arg, reply, len, err);
    if (reply != NULL)
        zos_link_drop(F.l, "not what I asked", reply, len);
}

static void test_drop_from_a_callback(void **state)
{
    fx_ready();
    assert_int_equal(send_cmd("GET", "a", drop_cb, 0), ZOS_OK);
    send_get(1);
    send_get(2);
    tu_loop_settle(F.base);
    tu_peer_say(F.peer, ":1\r\n:2\r\n:3\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 3);
    assert_string_equal(F.seen.reply[0], ":1\r\n");
    errors_in_order(1, 3, "protocol error: not what I asked (\":1\\r\\n\")");
    fx_teardown();
}

/* ---- pushes and the FIFO's head ---- */

static void test_push_gets_replies_without_a_request(void **state)
{
    fx_ready();
    zos_link_set_push(F.l, record_cb, &F.tags[9]);
    assert_int_equal(send_cmd("SUBSCRIBE", "ch", NULL, 0), ZOS_OK); /* no FIFO entry */
    assert_int_equal(zos_link_inflight(F.l), 0);
    tu_peer_say(F.peer, "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
                        "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 2);
    assert_int_equal(F.seen.tag[0], 9);
    tu_assert_contains(F.seen.reply[1], "$2\r\nhi\r\n");
    assert_int_equal(zos_link_state(F.l), ZOS_LINK_READY);
    fx_teardown();
}

static void test_consume_head(void **state)
{
    fx_setup();
    fx_attach();
    /* The handshake's entries are no request's head. */
    send_get(0);
    assert_false(zos_link_consume_head(F.l, record_cb, &F.tags[0]));
    answer_handshake();
    send_get(1);
    assert_false(zos_link_consume_head(F.l, record_cb, &F.tags[1])); /* not the head */
    assert_false(zos_link_consume_head(F.l, take_cb, &F.tags[0]));   /* another fn */
    assert_true(zos_link_consume_head(F.l, record_cb, &F.tags[0]));
    assert_int_equal(zos_link_inflight(F.l), 1);
    tu_peer_say(F.peer, ":1\r\n");
    tu_loop_settle(F.base);
    assert_int_equal(F.seen.n, 1); /* the reply went to the next one */
    assert_int_equal(F.seen.tag[0], 1);
    fx_teardown();
}

/* ---- backlog, busy, idle ---- */

static void test_backlog_counts_bytes_not_yet_written(void **state)
{
    fx_ready();
    assert_int_equal(zos_link_backlog(F.l), 0);
    bufferevent_disable(tu_peer_bev(F.peer), EV_READ); /* the node reads nothing */
    send_get(0);                                       /* "*2\r\n$3\r\nGET\r\n$2\r\nk0\r\n" */
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_backlog(F.l), 21);
    send_get(1);
    assert_int_equal(zos_link_backlog(F.l), 42);
    bufferevent_enable(tu_peer_bev(F.peer), EV_READ);
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_backlog(F.l), 0);
    assert_int_equal(zos_link_inflight(F.l), 2);
    fx_teardown();
}

static void test_busy(void **state)
{
    static char big[1200 * 1024];
    fx_setup();
    fx_attach();
    assert_false(zos_link_busy(F.l, -1)); /* not ready */
    answer_handshake();
    assert_false(zos_link_busy(F.l, -1)); /* nothing in flight */
    send_get(0);
    tu_loop_settle(F.base);
    /* The oldest request's age against the bound; no clock needed at the ends. */
    assert_true(zos_link_busy(F.l, -1));
    assert_false(zos_link_busy(F.l, INT_MAX));
    /* More than 1 MiB the node has not read: busy whatever the age. */
    bufferevent_disable(tu_peer_bev(F.peer), EV_READ);
    memset(big, 'x', sizeof(big));
    struct evbuffer *req = evbuffer_new();
    evbuffer_add_printf(req, "*2\r\n$3\r\nSET\r\n$%zu\r\n", sizeof(big));
    evbuffer_add(req, big, sizeof(big));
    evbuffer_add(req, "\r\n", 2);
    size_t n = evbuffer_get_length(req);
    assert_int_equal(zos_link_send(F.l, req, n, record_cb, &F.tags[1]), ZOS_OK);
    assert_int_equal(evbuffer_get_length(req), 0); /* moved */
    assert_true(zos_link_busy(F.l, INT_MAX));
    bufferevent_enable(tu_peer_bev(F.peer), EV_READ);
    tu_loop_settle(F.base);
    assert_false(zos_link_busy(F.l, INT_MAX));
    /* A big reply on its way, still incomplete: busy too. */
    tu_peer_say(F.peer, ":0\r\n+OK\r\n");
    send_get(2);
    tu_loop_settle(F.base);
    snprintf(big, 32, "$%d\r\n", 2 * 1024 * 1024);
    tu_peer_write(F.peer, big, sizeof(big));
    tu_loop_settle(F.base);
    assert_true(zos_link_busy(F.l, INT_MAX));
    evbuffer_free(req);
    fx_teardown();
}

static void test_idle_is_zero_while_requests_wait(void **state)
{
    fx_ready();
    send_get(0);
    assert_int_equal(zos_link_idle_ms(F.l), 0);
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_idle_ms(F.l), 0);
    assert_int_equal(send_cmd("SUBSCRIBE", "ch", NULL, 0), ZOS_OK); /* no reply expected */
    assert_int_equal(zos_link_idle_ms(F.l), 0);
    fx_teardown();
}

/* ---- the watch ---- */

struct watch_fx {
    struct zos_link *control;
    struct tu_peer *cpeer;
    bool answer; /* the control peer answers PINGs */
    size_t pings;
};

static struct watch_fx W;

static void control_peer_cb(void *arg, struct tu_peer *p, size_t argc, char **argv,
                            const size_t *lens)
{
    if (strcmp(argv[0], "PING") == 0) {
        W.pings++;
        if (W.answer || W.pings == 1) /* the first is the handshake's */
            tu_peer_say(p, "+PONG\r\n");
    }
}

static struct zos_link *watch_control(void *arg)
{
    return W.control;
}

static bool seen_any(void *arg)
{
    return F.seen.n > 0;
}

static bool pinged_thrice(void *arg)
{
    return W.pings >= 4;
}

/* A node with a request waiting and no answer to the watch's PING is hung:
 * every link of it fails with the reason. */
static void run_watch(bool answer)
{
    struct bufferevent *end;
    fx_setup();
    memset(&W, 0, sizeof(W));
    W.answer = answer;
    struct zos_link_watch *w = zos_link_watch_new(F.base, 100, 100);
    assert_non_null(w);
    F.opts.watch = w;
    zos_link_watch_set_control(w, watch_control, NULL);
    fx_attach();
    answer_handshake();
    W.control = zos_link_new(F.base, NULL, &F.node, NULL, &F.opts);
    W.cpeer = tu_peer_pair(F.base, &end, control_peer_cb, NULL);
    assert_int_equal(zos_link_attach(W.control, end), ZOS_OK);
    tu_loop_settle(F.base);
    assert_int_equal(zos_link_state(W.control), ZOS_LINK_READY);
    send_get(0); /* never answered: the data link is busy, the PING goes to the control link */
    if (answer) {
        assert_true(tu_loop_until(F.base, pinged_thrice, NULL));
        assert_int_equal(F.seen.n, 0); /* answered PINGs: no hang */
        assert_int_equal(zos_link_watch_hangs(w), 0);
        assert_int_equal(zos_link_state(F.l), ZOS_LINK_READY);
    } else {
        assert_true(tu_loop_until(F.base, seen_any, NULL));
        assert_int_equal(F.seen.n, 1);
        assert_string_equal(F.seen.err[0], "no answer to PING within 100 ms (node hung?)");
        assert_int_equal(zos_link_watch_hangs(w), 1);
        assert_failed(F.l);
        assert_failed(W.control);
    }
    /* The data link never saw a PING past its handshake's. */
    for (size_t i = 1; i < tu_peer_count(F.peer); i++)
        assert_string_not_equal(tu_peer_cmd(F.peer, i), "PING");
    zos_link_free(W.control);
    tu_peer_free(W.cpeer);
    fx_teardown();
    zos_link_watch_free(w);
}

static void test_watch_finds_a_hung_node(void **state)
{
    run_watch(false);
}

static void test_watch_pings_a_live_node(void **state)
{
    run_watch(true);
}

static void test_watch_fail_and_quiet(void **state)
{
    fx_setup();
    struct zos_link_watch *w = zos_link_watch_new(F.base, HOUR_MS, HOUR_MS);
    F.opts.watch = w;
    fx_attach();
    answer_handshake();
    send_get(0);
    send_get(1);
    assert_int_equal(zos_link_watch_quiet_left(w), 0);
    assert_int_equal(zos_link_watch_quiet_left(NULL), 0);
    zos_link_watch_quiet(w, HOUR_MS);
    assert_true(zos_link_watch_quiet_left(w) > 0);
    zos_link_watch_quiet_done(w);
    assert_int_equal(zos_link_watch_quiet_left(w), 0);
    zos_link_watch_fail(w, "shutting down");
    assert_int_equal(F.seen.n, 2);
    errors_in_order(0, 2, "shutting down");
    assert_int_equal(zos_link_watch_hangs(w), 0); /* told, not found */
    zos_link_watch_fail(NULL, "nothing");
    fx_teardown();
    zos_link_watch_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_auth_then_select),
        cmocka_unit_test(test_handshake_auth_user),
        cmocka_unit_test(test_handshake_select_only),
        cmocka_unit_test(test_handshake_ping_when_nothing_to_say),
        cmocka_unit_test(test_handshake_hello),
        cmocka_unit_test(test_handshake_refused),
        cmocka_unit_test(test_handshake_ping_busy_is_an_answer),
        cmocka_unit_test(test_attach_refused_unless_idle),
        cmocka_unit_test(test_fifo_matches_replies_in_order),
        cmocka_unit_test(test_reply_split_at_every_position),
        cmocka_unit_test(test_reply_one_byte_at_a_time),
        cmocka_unit_test(test_loss_fails_requests_in_flight_in_order),
        cmocka_unit_test(test_loss_of_a_pinned_link),
        cmocka_unit_test(test_loss_during_handshake),
        cmocka_unit_test(test_free_fails_pending),
        cmocka_unit_test(test_malformed_reply_is_a_protocol_error),
        cmocka_unit_test(test_reply_nobody_asked_for),
        cmocka_unit_test(test_drop_from_a_callback),
        cmocka_unit_test(test_push_gets_replies_without_a_request),
        cmocka_unit_test(test_consume_head),
        cmocka_unit_test(test_backlog_counts_bytes_not_yet_written),
        cmocka_unit_test(test_busy),
        cmocka_unit_test(test_idle_is_zero_while_requests_wait),
        cmocka_unit_test(test_watch_finds_a_hung_node),
        cmocka_unit_test(test_watch_pings_a_live_node),
        cmocka_unit_test(test_watch_fail_and_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

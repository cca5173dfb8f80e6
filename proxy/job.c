/* job.c -- core0 jobs: request JSON, submit, bounded waiting links, decode.
 *
 *   op --RPUSH core:default--> shared link
 *    \--> queue --> waiter[i] (at most max_waiters links, each one blocking call at a time)
 *                     BRPOPLPUSH result:<id> result:<id> 1   (or BLPOP stream:<id> 1)
 *                     nil: job still running -> back to the end of the queue
 *                     bulk: decode -> fn(result)
 *
 * An op whose callback already ran but whose link request is still out keeps
 * existing (refs > 0) until that reply arrives, then is freed.
 */
#include "zos/job.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "zos/container.h"
#include "zos/err.h"
#include "zos/resp.h"
#include "zos/util.h"
#include "zos/zos.h"

#define SLICE_S         1     /* seconds of one blocking wait */
#define ACCEPT_MS       10000 /* a job not taken by core0 within this is an error (§3.3) */
#define GRACE_MS        2000  /* an id given to ZOS.RESULT may not be taken by core0 yet */
#define POLL_MS         200   /* how often a job still running is looked at */
#define DEFAULT_WAITERS 16

enum op_kind { OP_RUN, OP_SUBMIT, OP_WAIT, OP_RUN_IN, OP_FOLLOW };

struct waiter {
    struct zos_jobs *jobs;
    struct zos_link *link;
    struct zos_job *op; /* being waited for now */
    bool dead;          /* link failed: replaced on next use */
};

struct zos_job {
    struct zos_jobs *jobs;
    struct zos_job *next_q;              /* queue for a waiter */
    struct zos_job *prev_all, *next_all; /* every live op */
    enum op_kind kind;
    char id[ZOS_JOB_ID_LEN + 1];
    char outer_id[ZOS_JOB_ID_LEN + 1]; /* corex.dispatch job of OP_RUN_IN */
    unsigned long cid;
    long long started_ms, deadline_ms;
    int timeout_ms;
    struct event *timer;
    struct event *poll; /* re-checks a running job's flag without holding a waiter */
    bool sliced;        /* had one blocking wait already */
    zos_job_fn fn;
    zos_job_record_fn rec_fn;
    void *arg;
    int refs;  /* link callbacks still to come */
    bool done; /* fn ran (or was cancelled) */
    bool queued;
    bool accepted; /* the flag key was seen */
    bool stream_end;
    struct zos_err err; /* failure found while starting, reported on the next turn */
};

struct zos_jobs {
    struct event_base *base;
    struct evdns_base *dns;
    const struct zos_node_conf *node;
    SSL_CTX *ssl;
    struct zos_link *shared;
    struct zos_jobs_opts opts;
    struct waiter *waiters;
    int nwaiters;
    struct zos_job *qhead, *qtail;
    struct zos_job *all;
    size_t pending;
    bool closing;
    struct event *reaper; /* frees failed waiter links outside their callbacks */
};

static void dispatch(struct zos_jobs *j);
static void enqueue(struct zos_job *op);

/* ---- ids and request objects ---- */

void zos_job_uuid(char *id)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)(rand() & 0xff);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(id, ZOS_JOB_ID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

cJSON *zos_job_request_object(const struct zos_job_req *req, const char *id)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON *args = req->args != NULL ? cJSON_Duplicate(req->args, 1) : cJSON_CreateObject();
    cJSON *tags = req->tags != NULL ? cJSON_Duplicate(req->tags, 1) : cJSON_CreateNull();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "command", req->command);
    if (args == NULL || !cJSON_AddItemToObject(o, "arguments", args))
        cJSON_Delete(args);
    if (req->queue != NULL)
        cJSON_AddStringToObject(o, "queue", req->queue);
    else
        cJSON_AddNullToObject(o, "queue");
    if (req->max_time > 0)
        cJSON_AddNumberToObject(o, "max_time", req->max_time);
    else
        cJSON_AddNullToObject(o, "max_time");
    cJSON_AddBoolToObject(o, "stream", req->stream);
    if (tags == NULL || !cJSON_AddItemToObject(o, "tags", tags))
        cJSON_Delete(tags);
    return o;
}

char *zos_job_request_json(const struct zos_job_req *req, const char *id)
{
    cJSON *o = zos_job_request_object(req, id);
    char *text = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* ---- results ---- */

static char *dup_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return strdup(cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : "");
}

static double num_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

bool zos_job_ok(const struct zos_job_result *r)
{
    return strcmp(r->state, "SUCCESS") == 0;
}

/* zos_job_result_parse, with the error's category in ERR. */
static struct zos_job_result *parse_result(const char *text, size_t len, struct zos_err *err)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(o) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "state"))) {
        zos_err_set(err, ZOS_ERRCAT_PROTOCOL,
                    "the node returned a result that is not a core0 result object");
        cJSON_Delete(o);
        return NULL;
    }
    struct zos_job_result *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        zos_err_set(err, ZOS_ERRCAT_OTHER, "out of memory");
        cJSON_Delete(o);
        return NULL;
    }
    r->json = o;
    r->raw = strndup(text, len);
    r->id = dup_field(o, "id");
    r->command = dup_field(o, "command");
    r->state = dup_field(o, "state");
    r->data = dup_field(o, "data");
    r->critical = dup_field(o, "critical");
    r->level = (int)num_field(o, "level");
    r->code = (unsigned long)num_field(o, "code");
    r->starttime = (long long)num_field(o, "starttime");
    r->time = (long long)num_field(o, "time");
    r->container = (unsigned long)num_field(o, "container");
    const cJSON *streams = cJSON_GetObjectItemCaseSensitive(o, "streams");
    const cJSON *s0 = cJSON_GetArrayItem(streams, 0), *s1 = cJSON_GetArrayItem(streams, 1);
    r->has_streams = cJSON_IsArray(streams);
    r->out = strdup(cJSON_IsString(s0) ? s0->valuestring : "");
    r->err = strdup(cJSON_IsString(s1) ? s1->valuestring : "");
    if (r->level == 20)
        r->value = cJSON_Parse(r->data); /* cJSON skips the blanks zerotier.list leaves */
    return r;
}

struct zos_job_result *zos_job_result_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct zos_err e;
    struct zos_job_result *r = parse_result(text, len, &e);
    if (r == NULL)
        snprintf(err, errlen, "%s", e.text);
    return r;
}

/* core0's words for a container id it does not have (core0-protocol.md
 * §6.3, §6.4): "container does not exist" (dispatch, 404s), "no container
 * with id '<n>'" (terminate). */
enum zos_errcat zos_job_result_errcat(const struct zos_job_result *r)
{
    if (zos_job_ok(r))
        return ZOS_ERRCAT_NONE;
    const char *text = cJSON_IsString(r->value) ? r->value->valuestring : r->data;
    if (strncmp(text, "container does not exist", 24) == 0 ||
        strncmp(text, "no container with id", 20) == 0)
        return ZOS_ERRCAT_NO_CONTAINER;
    return ZOS_ERRCAT_JOB_FAILED;
}

void zos_job_result_free(struct zos_job_result *r)
{
    if (r == NULL)
        return;
    free(r->id);
    free(r->command);
    free(r->state);
    free(r->data);
    free(r->critical);
    free(r->out);
    free(r->err);
    free(r->raw);
    cJSON_Delete(r->value);
    cJSON_Delete(r->json);
    free(r);
}

char *zos_job_result_output(const struct zos_job_result *r, bool pretty)
{
    if (r->level == 20 && r->value != NULL)
        return pretty ? zos_json_pretty(r->value) : cJSON_PrintUnformatted(r->value);
    if (r->level == 20)
        return strdup(r->data);
    return strdup(r->out[0] != '\0' ? r->out : r->err);
}

/* The most telling text of a failure: stderr, else data, else critical. */
void zos_job_result_describe(const struct zos_job_result *r, char *buf, size_t len)
{
    const char *why = r->err;
    char *decoded = NULL;
    if (*why == '\0' && r->level == 20 && cJSON_IsString(r->value))
        why = r->value->valuestring;
    else if (*why == '\0')
        why = r->data;
    if (*why == '\0')
        why = r->critical;
    if (*why == '\0' && r->out[0] != '\0')
        why = r->out;
    size_t n = strlen(why);
    while (n > 0 && isspace((unsigned char)why[n - 1]))
        n--;
    if (n > 0)
        snprintf(buf, len, "%s code=%lu: %.*s", r->state, r->code, (int)n, why);
    else
        snprintf(buf, len, "%s code=%lu", r->state, r->code);
    free(decoded);
}

/* ---- ops ---- */

static void op_free(struct zos_job *op)
{
    struct zos_jobs *j = op->jobs;
    if (op->prev_all != NULL)
        op->prev_all->next_all = op->next_all;
    else if (j != NULL && j->all == op)
        j->all = op->next_all;
    if (op->next_all != NULL)
        op->next_all->prev_all = op->prev_all;
    if (op->timer != NULL)
        event_free(op->timer);
    if (op->poll != NULL)
        event_free(op->poll);
    free(op);
}

static void op_unqueue(struct zos_job *op)
{
    struct zos_jobs *j = op->jobs;
    if (!op->queued)
        return;
    struct zos_job **pp = &j->qhead, *prev = NULL;
    while (*pp != NULL && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next_q;
    }
    if (*pp == op) {
        *pp = op->next_q;
        if (j->qtail == op)
            j->qtail = prev;
    }
    op->next_q = NULL;
    op->queued = false;
}

/* Runs the callback once, then frees the op when no reply is still due. */
static void finish(struct zos_job *op, struct zos_job_result *res, const struct zos_err *err)
{
    if (op->done) {
        zos_job_result_free(res);
        return;
    }
    op->done = true;
    if (op->jobs != NULL) {
        op_unqueue(op);
        op->jobs->pending--;
    }
    if (op->timer != NULL)
        evtimer_del(op->timer);
    if (op->poll != NULL)
        evtimer_del(op->poll);
    if (op->fn != NULL)
        op->fn(op->arg, res, err);
    else
        zos_job_result_free(res);
    if (op->refs == 0)
        op_free(op);
}

/* A link callback for OP came back: false when the op is over (and maybe freed). */
static bool op_back(struct zos_job *op)
{
    op->refs--;
    if (!op->done)
        return true;
    if (op->refs == 0)
        op_free(op);
    return false;
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_job *op = arg;
    struct zos_err err;
    if (op->err.cat != ZOS_ERRCAT_NONE) {
        finish(op, NULL, &op->err);
        return;
    }
    zos_err_set(&err, ZOS_ERRCAT_TIMEOUT, "timeout after %d s waiting for job %s",
                op->timeout_ms / 1000, op->id);
    finish(op, NULL, &err);
}

static struct zos_job *op_new(struct zos_jobs *j, enum op_kind kind, int timeout_ms, zos_job_fn fn,
                              void *arg)
{
    struct zos_job *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->jobs = j;
    op->kind = kind;
    op->fn = fn;
    op->arg = arg;
    op->started_ms = zos_now_ms();
    op->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    op->deadline_ms = op->started_ms + op->timeout_ms;
    op->timer = evtimer_new(j->base, timeout_cb, op);
    if (op->timer == NULL) {
        free(op);
        return NULL;
    }
    struct timeval tv = {op->timeout_ms / 1000, (op->timeout_ms % 1000) * 1000};
    evtimer_add(op->timer, &tv);
    op->next_all = j->all;
    if (j->all != NULL)
        j->all->prev_all = op;
    j->all = op;
    j->pending++;
    return op;
}

/* Reports an error from inside the starting call on the next loop turn,
 * so callbacks never run before the start function returned. */
static void fail_soon(struct zos_job *op, const struct zos_err *why)
{
    struct timeval tv = {0, 0};
    op->err = *why;
    evtimer_add(op->timer, &tv);
}

/* "node unavailable: WHY" (NULL: why LINK is down), of the category of
 * LINK's failure, into E. */
static struct zos_err *unavailable(struct zos_err *e, const struct zos_link *link, const char *why)
{
    const struct zos_err *down = zos_link_err(link);
    return zos_err_set(e, down->cat != ZOS_ERRCAT_NONE ? down->cat : ZOS_ERRCAT_UNREACHABLE,
                       "node unavailable: %s", why != NULL ? why : down->text);
}

/* ---- replies ---- */

/* ---- waiters ---- */

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_jobs *j = arg;
    for (int i = 0; i < j->nwaiters; i++) {
        struct waiter *w = &j->waiters[i];
        if (w->dead && w->op == NULL) {
            zos_link_free(w->link);
            w->link = NULL;
            w->dead = false;
        }
    }
    dispatch(j);
}

static void waiter_lost(struct waiter *w, const char *err)
{
    w->dead = true;
    if (!w->jobs->closing)
        event_active(w->jobs->reaper, EV_TIMEOUT, 0);
}

static void state_cb(void *arg, struct evbuffer *reply, size_t len, const char *err);

/* OP's request on LINK failed with ERR: the op fails. */
static void fail_unavailable(struct zos_job *op, const struct zos_link *link, const char *err)
{
    struct zos_err e;
    finish(op, NULL, unavailable(&e, link, err));
}

/* The node answered OP with an error reply (TEXT): the op fails. */
static void fail_reply(struct zos_job *op, const char *text)
{
    struct zos_err e;
    finish(op, NULL, zos_err_set(&e, zos_errcat_of_reply(text), "%s", text));
}

/* The common start of a callback for a short reply (TTL, RPUSH) on the
 * shared link: false when the op is over, the link failed, or the node
 * answered an error (handled); else *N is the integer reply (-2 when the
 * reply is no integer). */
static bool short_reply(struct zos_job *op, struct evbuffer *reply, size_t len, const char *err,
                        long long *n)
{
    char buf[200];
    if (!op_back(op))
        return false;
    if (reply == NULL) {
        fail_unavailable(op, op->jobs->shared, err);
        return false;
    }
    if (zos_resp_reply_error(reply, len, buf, sizeof(buf))) {
        fail_reply(op, buf);
        return false;
    }
    if (!zos_resp_reply_int(reply, len, n))
        *n = -2;
    return true;
}

/* After an empty slice (and before waiting for an earlier job): where is the
 * job?  TTL result:<id>:flag answers in one step: -2 unknown or not taken
 * yet, -1 running, >= 0 finished (§3.2). */
static void check_state(struct zos_job *op)
{
    char key[64];
    snprintf(key, sizeof(key), "result:%s:flag", op->id);
    const char *argv[] = {"TTL", key};
    size_t lens[] = {3, strlen(key)};
    op->refs++;
    if (zos_link_send_argv(op->jobs->shared, 2, argv, lens, state_cb, op) != ZOS_OK) {
        struct zos_err why;
        op->refs--;
        /* maybe inside zos_job_wait(): report on the next turn */
        fail_soon(op, unavailable(&why, op->jobs->shared, NULL));
    }
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    check_state(arg);
}

/* A job that outlived one blocking wait is looked at every POLL_MS with a
 * TTL on the shared link, and gets a waiting link again only once it ended:
 * any number of long jobs leave the waiting links free for short ones. */
static void poll_later(struct zos_job *op)
{
    struct timeval tv = {0, POLL_MS * 1000};
    if (op->poll == NULL && (op->poll = evtimer_new(op->jobs->base, poll_cb, op)) == NULL) {
        enqueue(op);
        return;
    }
    evtimer_add(op->poll, &tv);
}

/* The flag is missing: not taken yet, unknown, or expired. */
static void flag_missing(struct zos_job *op)
{
    struct zos_err e;
    long long waited = zos_now_ms() - op->started_ms;
    bool run = op->kind == OP_RUN || op->kind == OP_RUN_IN;

    if (op->accepted) {
        zos_err_set(&e, ZOS_ERRCAT_NOT_FOUND, "job %s not found: its result expired", op->id);
    } else if (run && waited >= ACCEPT_MS) {
        zos_err_set(&e, ZOS_ERRCAT_UNREACHABLE,
                    "the node did not take job %s within %d s: is core0 running?", op->id,
                    ACCEPT_MS / 1000);
    } else if (!run && waited >= GRACE_MS) {
        zos_err_set(&e, ZOS_ERRCAT_NOT_FOUND,
                    "job %s not found (unknown id, or its result expired)", op->id);
    } else {
        enqueue(op);
        return;
    }
    finish(op, NULL, &e);
}

static void state_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_job *op = arg;
    struct zos_jobs *j = op->jobs;
    long long ttl;

    if (!short_reply(op, reply, len, err, &ttl))
        return;
    if (ttl == -2) {
        flag_missing(op);
    } else {
        op->accepted = true;
        if (ttl >= 0 && op->kind == OP_FOLLOW)
            op->kind = OP_WAIT; /* ended with no end marker in sight: fetch the result */
        if (ttl == -1 && op->sliced && op->kind != OP_FOLLOW)
            poll_later(op); /* still running: leave the waiting links to others */
        else
            enqueue(op);
    }
    if (j != NULL)
        dispatch(j); /* OP may be gone: J is still there */
}

static void deliver_result(struct zos_job *op, char *text, size_t len);

static void record(struct zos_job *op, const char *text, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(m, "message");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "meta");
    if (cJSON_IsNumber(meta)) {
        unsigned long v = (unsigned long)meta->valuedouble;
        const char *s = cJSON_IsString(msg) ? msg->valuestring : "";
        if (op->rec_fn != NULL)
            op->rec_fn(op->arg, (int)(v >> 16), s, strlen(s), (int)(v & 0xff));
        if (v & 0x6)
            op->stream_end = true;
    }
    cJSON_Delete(o);
}

static void waiter_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct waiter *w = arg;
    struct zos_job *op = w->op;
    struct zos_jobs *j = w->jobs;
    char buf[200];

    w->op = NULL;
    if (reply == NULL)
        waiter_lost(w, err);
    if (op == NULL)
        return;
    if (op_back(op)) {
        size_t blen = 0;
        char *payload = NULL;
        if (reply != NULL && !zos_resp_reply_string(reply, len, false, &payload, &blen))
            zos_resp_reply_string(reply, len, true, &payload, &blen); /* BLPOP's [key, value] */
        if (reply == NULL) {
            fail_unavailable(op, w->link, err);
        } else if (payload == NULL && zos_resp_reply_error(reply, len, buf, sizeof(buf))) {
            fail_reply(op, buf);
        } else if (payload == NULL) { /* slice over, nothing yet */
            op->sliced = true;
            if (op->kind == OP_FOLLOW && op->stream_end)
                op->kind = OP_WAIT;
            check_state(op);
        } else if (op->kind == OP_FOLLOW) {
            record(op, payload, blen);
            if (op->stream_end)
                op->kind = OP_WAIT;
            enqueue(op);
        } else {
            deliver_result(op, payload, blen);
        }
        free(payload);
    }
    dispatch(j);
}

static struct waiter *free_waiter(struct zos_jobs *j)
{
    for (int i = 0; i < j->nwaiters; i++) {
        struct waiter *w = &j->waiters[i];
        if (w->op != NULL || w->dead)
            continue;
        if (w->link != NULL && zos_link_state(w->link) == ZOS_LINK_DOWN) {
            zos_link_free(w->link); /* closed while idle (a node restart): a new one */
            w->link = NULL;
        }
        if (w->link == NULL) {
            struct zos_link_opts lo = j->opts.link;
            lo.pinned = true;
            w->link = zos_link_new(j->base, j->dns, j->node, j->ssl, &lo);
            if (w->link == NULL)
                continue;
        }
        return w;
    }
    return NULL;
}

static void send_wait(struct waiter *w, struct zos_job *op)
{
    char key[64], slice[16];
    const char *argv[4];
    size_t lens[4], argc;
    long long left_s = (op->deadline_ms - zos_now_ms() + 999) / 1000;

    snprintf(slice, sizeof(slice), "%lld", left_s < SLICE_S ? (left_s < 1 ? 1 : left_s) : SLICE_S);
    if (op->kind == OP_FOLLOW) {
        snprintf(key, sizeof(key), "stream:%s", op->id);
        argv[0] = "BLPOP", argv[1] = key, argv[2] = slice;
        argc = 3;
    } else {
        snprintf(key, sizeof(key), "result:%s", op->id);
        argv[0] = "BRPOPLPUSH", argv[1] = key, argv[2] = key, argv[3] = slice;
        argc = 4;
    }
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (zos_link_send_argv(w->link, argc, argv, lens, waiter_cb, w) != ZOS_OK) {
        struct zos_err why;
        unavailable(&why, w->link, NULL);
        waiter_lost(w, why.text);
        fail_soon(op, &why); /* maybe inside zos_job_run(): report on the next turn */
        return;
    }
    w->op = op;
    op->refs++;
}

/* Hands queued ops to free waiters. */
static void dispatch(struct zos_jobs *j)
{
    while (j->qhead != NULL && !j->closing) {
        struct waiter *w = free_waiter(j);
        if (w == NULL)
            return;
        struct zos_job *op = j->qhead;
        op_unqueue(op);
        send_wait(w, op);
    }
}

static void enqueue(struct zos_job *op)
{
    struct zos_jobs *j = op->jobs;
    if (op->done || op->queued || j == NULL)
        return;
    op->queued = true;
    op->next_q = NULL;
    if (j->qtail != NULL)
        j->qtail->next_q = op;
    else
        j->qhead = op;
    j->qtail = op;
}

/* ---- submitting ---- */

static void submit_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_job *op = arg;
    long long n;
    if (short_reply(op, reply, len, err, &n) && op->kind == OP_SUBMIT)
        finish(op, NULL, NULL);
}

static int submit(struct zos_job *op, const struct zos_job_req *req)
{
    char *json = zos_job_request_json(req, op->id);
    if (json == NULL)
        return -1;
    const char *argv[] = {"RPUSH", "core:default", json};
    size_t lens[] = {5, 12, strlen(json)};
    op->refs++;
    int rc = zos_link_send_argv(op->jobs->shared, 3, argv, lens, submit_cb, op);
    free(json);
    if (rc != ZOS_OK) {
        op->refs--;
        return -1;
    }
    return 0;
}

static void set_id(struct zos_job *op, const struct zos_job_req *req, char *out)
{
    if (req->id != NULL)
        snprintf(op->id, sizeof(op->id), "%s", req->id);
    else
        zos_job_uuid(op->id);
    if (out != NULL)
        strcpy(out, op->id);
}

static struct zos_job *start(struct zos_jobs *j, enum op_kind kind, const struct zos_job_req *req,
                             int timeout_ms, char *id, zos_job_fn fn, void *arg)
{
    struct zos_job *op = op_new(j, kind, timeout_ms, fn, arg);
    if (op == NULL)
        return NULL;
    set_id(op, req, id);
    if (submit(op, req) != 0) {
        struct zos_err why;
        fail_soon(op, unavailable(&why, j->shared, NULL));
        return op;
    }
    if (kind != OP_SUBMIT)
        enqueue(op); /* the wait starts at once: BRPOPLPUSH blocks until the result */
    dispatch(j);
    return op;
}

struct zos_job *zos_job_run(struct zos_jobs *j, const struct zos_job_req *req, int timeout_ms,
                            char *id, zos_job_fn fn, void *arg)
{
    return start(j, OP_RUN, req, timeout_ms, id, fn, arg);
}

struct zos_job *zos_job_submit(struct zos_jobs *j, const struct zos_job_req *req, char *id,
                               zos_job_fn fn, void *arg)
{
    return start(j, OP_SUBMIT, req, 10000, id, fn, arg);
}

struct zos_job *zos_job_wait(struct zos_jobs *j, const char *id, int timeout_ms, zos_job_fn fn,
                             void *arg)
{
    struct zos_job *op = op_new(j, OP_WAIT, timeout_ms, fn, arg);
    if (op == NULL)
        return NULL;
    snprintf(op->id, sizeof(op->id), "%s", id);
    check_state(op);
    return op;
}

struct zos_job *zos_job_follow(struct zos_jobs *j, const char *id, int timeout_ms,
                               zos_job_record_fn rec_fn, zos_job_fn done, void *arg)
{
    struct zos_job *op = op_new(j, OP_FOLLOW, timeout_ms, done, arg);
    if (op == NULL)
        return NULL;
    snprintf(op->id, sizeof(op->id), "%s", id);
    op->rec_fn = rec_fn;
    enqueue(op);
    dispatch(j);
    return op;
}

struct zos_job *zos_job_run_in(struct zos_jobs *j, unsigned long cid, const struct zos_job_req *req,
                               int timeout_ms, zos_job_fn fn, void *arg)
{
    char inner_id[ZOS_JOB_ID_LEN + 1];
    struct zos_job_req inner = *req;
    if (inner.id == NULL) {
        zos_job_uuid(inner_id);
        inner.id = inner_id;
    }
    cJSON *args = zos_container_dispatch_args(cid, zos_job_request_object(&inner, inner.id));
    if (args == NULL)
        return NULL;
    struct zos_job_req outer = {.command = ZOS_CONTAINER_DISPATCH, .args = args};
    struct zos_job *op = start(j, OP_RUN_IN, &outer, timeout_ms, NULL, fn, arg);
    cJSON_Delete(args);
    if (op != NULL) {
        op->cid = cid;
        strcpy(op->outer_id, op->id);
    }
    return op;
}

/* A result arrived for OP: for OP_RUN_IN the first one is corex.dispatch's. */
static void deliver_result(struct zos_job *op, char *text, size_t len)
{
    struct zos_err err;
    struct zos_job_result *res = parse_result(text, len, &err);
    if (res == NULL) {
        finish(op, NULL, &err);
        return;
    }
    if (op->kind == OP_RUN_IN && strcmp(op->id, op->outer_id) == 0) {
        if (!zos_job_ok(res) || !cJSON_IsString(res->value)) {
            finish(op, res, NULL); /* e.g. "container does not exist" */
            return;
        }
        snprintf(op->id, sizeof(op->id), "%s", res->value->valuestring);
        zos_job_result_free(res);
        op->accepted = op->sliced = false; /* a new job: its own flag, its own 10 s */
        op->started_ms = zos_now_ms();
        enqueue(op);
        return;
    }
    finish(op, res, NULL);
}

void zos_job_cancel(struct zos_job *job)
{
    if (job == NULL || job->done)
        return;
    job->fn = NULL;
    job->rec_fn = NULL;
    finish(job, NULL, NULL);
}

/* ---- the per-node machinery ---- */

struct zos_jobs *zos_jobs_new(struct event_base *base, struct evdns_base *dns,
                              const struct zos_node_conf *node, SSL_CTX *ssl,
                              struct zos_link *shared, const struct zos_jobs_opts *opts)
{
    struct zos_jobs *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->base = base;
    j->dns = dns;
    j->node = node;
    j->ssl = ssl;
    j->shared = shared;
    if (opts != NULL)
        j->opts = *opts;
    j->nwaiters = j->opts.max_waiters > 0 ? j->opts.max_waiters : DEFAULT_WAITERS;
    j->waiters = calloc((size_t)j->nwaiters, sizeof(*j->waiters));
    j->reaper = event_new(base, -1, 0, reap_cb, j);
    if (j->waiters == NULL || j->reaper == NULL) {
        zos_jobs_free(j);
        return NULL;
    }
    for (int i = 0; i < j->nwaiters; i++)
        j->waiters[i].jobs = j;
    return j;
}

size_t zos_jobs_pending(const struct zos_jobs *j)
{
    return j->pending;
}

void zos_jobs_free(struct zos_jobs *j)
{
    if (j == NULL)
        return;
    j->closing = true;
    for (struct zos_job *op = j->all; op != NULL; op = op->next_all) {
        evtimer_del(op->timer);
        if (op->poll != NULL)
            evtimer_del(op->poll);
        if (!op->done) {
            struct zos_err closed;
            op->done = true;
            op->queued = false;
            if (op->fn != NULL)
                op->fn(op->arg, NULL, zos_err_set(&closed, ZOS_ERRCAT_OTHER, "closed"));
        }
    }
    /* Waiting links: their callbacks drop the ops' references. */
    for (int i = 0; j->waiters != NULL && i < j->nwaiters; i++) {
        zos_link_free(j->waiters[i].link);
        j->waiters[i].link = NULL;
    }
    /* Ops with a request still out on the shared link live on, detached,
     * until its callback frees them. */
    struct zos_job *op = j->all;
    while (op != NULL) {
        struct zos_job *next = op->next_all;
        op->prev_all = op->next_all = NULL;
        op->jobs = NULL;
        if (op->refs == 0)
            op_free(op);
        op = next;
    }
    j->all = NULL;
    free(j->waiters);
    if (j->reaper != NULL)
        event_free(j->reaper);
    free(j);
}

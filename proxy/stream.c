/* stream.c -- a core0 job's live output: stream:<id> records, and a reader
 * that drains the list in pipelined batches (see stream.h for the diagram).
 *
 * One BLPOP per record would cost a round trip per line: a job that writes
 * faster than that outruns the reader, and core0 drops what is past 1000
 * records.  So after a BLPOP brings a record, the reader takes what else is
 * waiting in pipelined batches of LPOPs (atomic: LRANGE + LTRIM would race
 * with core0's own LTRIM), from 64 per round trip, doubled up to 1024 while
 * each batch comes back full, and goes back to blocking once one brings a
 * nil (the list is empty).  The LLEN in front of each batch tells when core0 may have
 * dropped records.
 */
#include "zos/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zos/resp.h"
#include "zos/zos.h"

#define BATCH_MIN 64   /* LPOPs per round trip ... */
#define BATCH_MAX 1024 /* ... doubled while each batch comes back full */
#define SLICE_S   "1"  /* seconds of one BLPOP: how soon "the job ended" is noticed */

/* ---- records ---- */

void zos_stream_record_clear(struct zos_stream_record *rec)
{
    cJSON_Delete(rec->json);
    memset(rec, 0, sizeof(*rec));
    rec->job = rec->text = "";
}

static bool whole(const cJSON *v, double max)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= max &&
           v->valuedouble == (double)(long long)v->valuedouble;
}

int zos_stream_record_parse(const char *text, size_t len, struct zos_stream_record *rec, char *err,
                            size_t errlen)
{
    memset(rec, 0, sizeof(*rec));
    zos_stream_record_clear(rec);
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(o, "core");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(o, "command");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(m, "message");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "meta");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(m, "epoch");
    const char *why = NULL;

    if (!cJSON_IsObject(o))
        why = "not a JSON object";
    else if (!cJSON_IsObject(m))
        why = "no \"message\" object";
    else if (!whole(meta, 4294967295.0))
        why = "no message.meta (a whole number of 32 bits)";
    else if (msg != NULL && !cJSON_IsString(msg))
        why = "message.message is not a string";
    if (why != NULL) {
        snprintf(err, errlen, "not a core0 stream record: %s", why);
        cJSON_Delete(o);
        return ZOS_ERR;
    }
    unsigned long v = (unsigned long)meta->valuedouble;
    rec->json = o;
    rec->level = (unsigned)(v >> 16);
    rec->flags = (unsigned)(v & 0xffff);
    rec->core = whole(core, 65535) ? (unsigned long)core->valuedouble : 0;
    rec->job = cJSON_IsString(job) ? job->valuestring : "";
    rec->text = msg != NULL ? msg->valuestring : "";
    rec->len = strlen(rec->text);
    rec->epoch_ns = cJSON_IsNumber(epoch) ? (long long)epoch->valuedouble : 0;
    return ZOS_OK;
}

bool zos_stream_record_is_end(const struct zos_stream_record *rec)
{
    return (rec->flags & (ZOS_STREAM_FLAG_END_OK | ZOS_STREAM_FLAG_END_ERR)) != 0;
}

bool zos_stream_record_end_ok(const struct zos_stream_record *rec)
{
    return (rec->flags & ZOS_STREAM_FLAG_END_OK) != 0;
}

const char *zos_stream_level_name(unsigned level, char *buf, size_t len)
{
    if (level == ZOS_STREAM_LEVEL_STDOUT)
        snprintf(buf, len, "stdout");
    else if (level == ZOS_STREAM_LEVEL_STDERR)
        snprintf(buf, len, "stderr");
    else
        snprintf(buf, len, "level%u", level);
    return buf;
}

/* ---- the reader ---- */

struct zos_stream_reader {
    struct zos_link *link;
    struct zos_stream_reader_cbs cbs;
    void *arg;
    char *key;                    /* stream:<id> */
    struct event *later;          /* end_fn, and destruction, outside link callbacks */
    int inflight;                 /* replies still due */
    int batch;                    /* LPOPs of the next batch */
    int depth;                    /* inside a link callback of ours */
    unsigned long long blpops;    /* BLPOPs sent */
    unsigned long long end_after; /* the last BLPOP sent before job_ended */
    unsigned long long records;
    bool more;   /* the last read brought records: a batch next */
    bool popped; /* ... a BLPOP's: the list held one more than the batch's LLEN says */
    bool nil;    /* a nil in the current batch: the list is empty */
    bool paused;
    bool ended; /* the job ended */
    bool done;  /* end_fn is due (or ran) */
    bool freed; /* no callback any more; destroyed as soon as possible */
    enum zos_stream_end how;
    char err[200];
};

static void send_next(struct zos_stream_reader *r);

static void destroy(struct zos_stream_reader *r)
{
    r->freed = true;
    zos_link_free(r->link); /* pending replies come back "link closed": ignored */
    if (r->later != NULL)
        event_free(r->later);
    free(r->key);
    free(r);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_stream_reader *r = arg;
    char err[sizeof(r->err)];
    if (r->freed) {
        destroy(r);
        return;
    }
    if (r->done && r->cbs.end_fn != NULL) {
        snprintf(err, sizeof(err), "%s", r->err);
        void (*fn)(void *, enum zos_stream_end, const char *) = r->cbs.end_fn;
        r->cbs.end_fn = NULL;
        fn(r->arg, r->how, r->how == ZOS_STREAM_END_ERROR ? err : NULL); /* may free R */
    }
}

static void finish(struct zos_stream_reader *r, enum zos_stream_end how, const char *err)
{
    if (r->done || r->freed)
        return;
    r->done = true;
    r->how = how;
    snprintf(r->err, sizeof(r->err), "%s", err != NULL ? err : "");
    event_active(r->later, EV_TIMEOUT, 0);
}

/* A reply of ours is back: false when it is to be ignored (R is going away
 * or has ended); else REPLY is NULL (link failed: handled) or one reply. */
static bool reply_back(struct zos_stream_reader *r, struct evbuffer *reply, size_t len,
                       const char *err)
{
    char buf[200];
    r->inflight--;
    if (r->freed || r->done)
        return false;
    if (reply == NULL) {
        finish(r, ZOS_STREAM_END_ERROR, err != NULL ? err : "link closed");
        return false;
    }
    if (zos_resp_reply_error(reply, len, buf, sizeof(buf))) {
        finish(r, ZOS_STREAM_END_ERROR, buf);
        return false;
    }
    return true;
}

/* One value popped from the list. */
static void got(struct zos_stream_reader *r, const char *text, size_t len)
{
    struct zos_stream_record rec;
    char err[200];
    if (zos_stream_record_parse(text, len, &rec, err, sizeof(err)) != ZOS_OK) {
        if (r->cbs.bad_fn != NULL)
            r->cbs.bad_fn(r->arg, err);
        return;
    }
    r->records++;
    if (r->cbs.rec_fn != NULL)
        r->cbs.rec_fn(r->arg, &rec);
    if (zos_stream_record_is_end(&rec))
        finish(r, ZOS_STREAM_END_MARKER, NULL);
    zos_stream_record_clear(&rec);
}

/* The value of a BLPOP ([key, value]) or LPOP (value) reply; false for nil. */
static bool take(struct zos_stream_reader *r, struct evbuffer *reply, size_t len, bool pair)
{
    char *v = NULL;
    size_t vlen = 0;
    if (!zos_resp_reply_string(reply, len, pair, &v, &vlen))
        return false;
    got(r, v, vlen);
    free(v);
    return true;
}

static void blpop_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_stream_reader *r = arg;
    r->depth++;
    if (reply_back(r, reply, len, err)) {
        r->more = r->popped = take(r, reply, len, true);
        if (!r->more && r->ended && r->blpops > r->end_after)
            finish(r, ZOS_STREAM_END_QUIET, NULL);
    }
    r->depth--;
    send_next(r);
}

static void batch_done(struct zos_stream_reader *r)
{
    if (r->inflight == 0 && !r->done && !r->freed) {
        r->more = !r->nil;
        r->batch = r->nil ? BATCH_MIN : r->batch * 2 > BATCH_MAX ? BATCH_MAX : r->batch * 2;
        send_next(r);
    }
}

static void llen_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_stream_reader *r = arg;
    long long n;
    r->depth++;
    if (reply_back(r, reply, len, err) && zos_resp_reply_int(reply, len, &n) &&
        n + r->popped >= ZOS_STREAM_MAX_RECORDS && r->cbs.gap_fn != NULL)
        r->cbs.gap_fn(r->arg); /* the list was full: core0 trims it at its next push */
    r->popped = false;
    r->depth--;
    batch_done(r);
}

static void lpop_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct zos_stream_reader *r = arg;
    r->depth++;
    if (reply_back(r, reply, len, err) && !take(r, reply, len, false))
        r->nil = true;
    r->depth--;
    batch_done(r);
}

static bool send_cmd(struct zos_stream_reader *r, size_t argc, const char *const *argv,
                     zos_link_reply_fn fn)
{
    size_t lens[3];
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (zos_link_send_argv(r->link, argc, argv, lens, fn, r) != ZOS_OK) {
        finish(r, ZOS_STREAM_END_ERROR, zos_link_errstr(r->link));
        return false;
    }
    r->inflight++;
    return true;
}

static void send_next(struct zos_stream_reader *r)
{
    if (r->freed || r->done || r->paused || r->inflight > 0 || r->depth > 0)
        return;
    if (!r->more) {
        const char *argv[] = {"BLPOP", r->key, SLICE_S};
        r->blpops++;
        send_cmd(r, 3, argv, blpop_cb);
        return;
    }
    const char *llen[] = {"LLEN", r->key}, *lpop[] = {"LPOP", r->key};
    r->nil = false;
    if (!send_cmd(r, 2, llen, llen_cb))
        return;
    for (int i = 0; i < r->batch; i++)
        if (!send_cmd(r, 2, lpop, lpop_cb))
            return;
}

struct zos_stream_reader *zos_stream_reader_new(struct event_base *base, struct zos_link *link,
                                                const char *id,
                                                const struct zos_stream_reader_cbs *cbs, void *arg)
{
    struct zos_stream_reader *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        zos_link_free(link);
        return NULL;
    }
    r->link = link;
    if ((r->later = event_new(base, -1, 0, later_cb, r)) == NULL ||
        asprintf(&r->key, "stream:%s", id) < 0) {
        r->key = NULL;
        destroy(r);
        return NULL;
    }
    r->cbs = *cbs;
    r->arg = arg;
    r->more = true; /* records may be waiting already: LLEN tells whether some were dropped */
    r->batch = BATCH_MIN;
    send_next(r);
    return r;
}

void zos_stream_reader_job_ended(struct zos_stream_reader *r)
{
    if (r->ended)
        return;
    r->ended = true;
    r->end_after = r->blpops;
}

void zos_stream_reader_pause(struct zos_stream_reader *r, bool paused)
{
    if (r->paused == paused)
        return;
    r->paused = paused;
    if (!paused) {
        r->more = true; /* look at LLEN first: records may have piled up */
        send_next(r);
    }
}

unsigned long long zos_stream_reader_records(const struct zos_stream_reader *r)
{
    return r->records;
}

void zos_stream_reader_free(struct zos_stream_reader *r)
{
    if (r == NULL)
        return;
    r->freed = true;
    if (r->depth > 0)
        event_active(r->later, EV_TIMEOUT, 0); /* not from inside the link's callback */
    else
        destroy(r);
}

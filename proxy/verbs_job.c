/* verbs_job.c -- the ZOS.* job verbs: ZOS.CMD, ZOS.JOB, ZOS.EXEC, ZOS.SUBMIT, ...
 *
 * Each verb turns its arguments into a core0 request, hands it to the node's
 * zos_jobs (job.c: submit on the shared link, bounded waiting links) and
 * answers its slot when the result arrives; other requests of the same
 * client keep flowing meanwhile, and replies still leave in order.
 */
#include "verbs_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "zos/job.h"
#include "state.h"
#include "zos/zos.h"

#define DEFAULT_TIMEOUT_S 60
#define RESULT_TIMEOUT_S  10

#define FOLLOW_PREFIX "zos:job:" /* SUBSCRIBE zos:job:[<node>:]<id> (below) */

enum mode { MODE_CMD, MODE_JOB, MODE_EXEC, MODE_SUBMIT, MODE_BOOL, MODE_FOLLOW };

struct ctx {
    struct zos_slot *slot;
    enum mode mode;
    char command[64];
    char id[ZOS_JOB_ID_LEN + 1]; /* ZOS.SUBMIT */
    const char *channel_node;    /* ZOS.EXEC ... STREAM: answer zos:job:<node>:<id> */
    struct evbuffer *records;    /* ZOS.FOLLOW: [kind, text] pairs so far */
    size_t nrecords;
    struct zos_job *job;          /* cancelled if the client leaves first */
    struct zos_node_stats *stats; /* of its node: the job verbs' figures */
};

/* Options after the positional arguments. */
struct opts {
    int timeout_s;
    int max_time;
    bool stream;
};

/* N's job state, made on first use (the router frees it with the node). */
static struct zos_jobs *node_jobs(struct zos_client *c, struct zos_node *n)
{
    struct zos_server *srv = c->srv;
    if (n->jobs == NULL) {
        const struct zos_proxy_conf *pc = &srv->conf->proxy;
        struct zos_jobs_opts o = {
            .max_waiters = pc->job_links,
            .link = {.pinned = true,
                     .connect_timeout_ms = pc->connect_timeout_ms,
                     .reply_limits = &srv->router->reply_limits,
                     .gate = srv->router->gate,
                     .session = &n->session,
                     .watch = n->watch,
                     .stats = &n->stats->job_links},
        };
        n->jobs = zos_jobs_new(srv->base, srv->dns, n->conf, n->ssl, n->shared, &o);
    }
    return n->jobs;
}

/* Parses "TIMEOUT s", "MAXTIME s", "STREAM" from AV[FROM..]; 0 or -1 with an error in S. */
static int parse_opts(const struct zos_resp_argv *av, size_t from, struct opts *o,
                      struct zos_slot *s)
{
    for (size_t i = from; i < av->argc; i++) {
        const char *k = av->argv[i];
        bool num = strcasecmp(k, "timeout") == 0 || strcasecmp(k, "maxtime") == 0;
        if (strcasecmp(k, "stream") == 0) {
            o->stream = true;
            continue;
        }
        if (!num) {
            zos_slot_error(s, "ERR unknown option '%s' (expected TIMEOUT <s>, MAXTIME <s>, STREAM)",
                           k);
            return -1;
        }
        char *end;
        errno = 0;
        long v = i + 1 < av->argc ? strtol(av->argv[i + 1], &end, 10) : -1;
        if (i + 1 >= av->argc || errno != 0 || *end != '\0' || v <= 0 || v > 86400) {
            zos_slot_error(s, "ERR %s needs a number of seconds from 1 to 86400", k);
            return -1;
        }
        if (strcasecmp(k, "timeout") == 0)
            o->timeout_s = (int)v;
        else
            o->max_time = (int)v;
        i++;
    }
    return 0;
}

static bool is_option(const char *a)
{
    return strcasecmp(a, "timeout") == 0 || strcasecmp(a, "maxtime") == 0 ||
           strcasecmp(a, "stream") == 0;
}

/* <command> [<json-args>] [options]: the request; ARGS gets the parsed JSON. */
static int parse_request(const struct zos_resp_argv *av, size_t first, struct zos_job_req *req,
                         cJSON **args, struct opts *o, struct zos_slot *s)
{
    size_t i = first + 1;
    *args = NULL;
    req->command = av->argv[first];
    if (i < av->argc && !is_option(av->argv[i])) {
        const char *end = NULL;
        *args = cJSON_ParseWithLengthOpts(av->argv[i], av->argvlen[i] + 1, &end, true);
        if (*args == NULL) {
            zos_slot_error(s, "ERR invalid JSON arguments at byte %ld: %.40s",
                           end ? (long)(end - av->argv[i]) : 0L, end ? end : "");
            return -1;
        }
        if (!cJSON_IsObject(*args)) {
            zos_slot_error(s, "ERR job arguments must be a JSON object, like {\"name\": \"ls\"}");
            cJSON_Delete(*args);
            *args = NULL;
            return -1;
        }
        i++;
    }
    if (parse_opts(av, i, o, s) != 0) {
        cJSON_Delete(*args);
        *args = NULL;
        return -1;
    }
    req->args = *args;
    req->max_time = o->max_time;
    req->stream = o->stream;
    return 0;
}

static struct ctx *ctx_new(struct zos_client *c, struct zos_slot *s, enum mode mode,
                           const char *command)
{
    struct ctx *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        zos_slot_error(s, "ERR out of memory");
        return NULL;
    }
    x->slot = s;
    x->mode = mode;
    x->stats = c->node->stats;
    snprintf(x->command, sizeof(x->command), "%s", command);
    return x;
}

static void ctx_free(struct ctx *x)
{
    if (x->records != NULL)
        evbuffer_free(x->records);
    free(x);
}

/* The client left: nobody wants the result, stop waiting for it. */
static void ctx_orphaned(void *arg)
{
    struct ctx *x = arg;
    zos_job_cancel(x->job);
    zos_slot_done(x->slot);
    ctx_free(x);
}

/* JOB was started for X (NULL: it could not be). */
static void ctx_started(struct ctx *x, struct zos_job *job)
{
    if (job == NULL) {
        zos_slot_error(x->slot, "ERR out of memory");
        ctx_free(x);
        return;
    }
    x->job = job;
    zos_slot_on_orphan(x->slot, ctx_orphaned, x);
}

static void reply_output(struct zos_slot *s, const struct zos_job_result *r, enum mode mode)
{
    struct evbuffer *out = zos_slot_buf(s);
    if (mode == MODE_JOB) {
        zos_resp_add_cstr(out, r->raw);
    } else if (mode == MODE_BOOL) {
        zos_resp_add_int(out, cJSON_IsTrue(r->value) ? 1 : 0);
    } else {
        char *text = zos_job_result_output(r, false);
        zos_resp_add_cstr(out, text != NULL ? text : "");
        free(text);
    }
}

static void reply_failure(struct ctx *x, const struct zos_job_result *r)
{
    char why[400];
    if (x->mode == MODE_EXEC && r->code >= 1000) {
        size_t n = strlen(r->err);
        while (n > 0 && (r->err[n - 1] == '\n' || r->err[n - 1] == '\r'))
            n--;
        zos_slot_error(x->slot, "ERR command failed with exit status %lu%s%.*s", r->code - 1000,
                       n > 0 ? ": " : "", (int)n, r->err);
        return;
    }
    zos_job_result_describe(r, why, sizeof(why));
    zos_slot_error(x->slot, "ERR job %s failed: %s", r->command[0] ? r->command : x->command, why);
}

static void follow_reply(struct ctx *x, const struct zos_job_result *r)
{
    struct evbuffer *out = zos_slot_buf(x->slot);
    zos_resp_add_array(out, (long long)(x->nrecords + 1) * 2);
    if (x->records != NULL)
        evbuffer_add_buffer(out, x->records);
    zos_resp_add_cstr(out, "result");
    zos_resp_add_cstr(out, r->raw);
}

/* A job verb of X ended with R or ERR (both NULL: ZOS.SUBMIT's job was taken). */
static void count_job(struct ctx *x, const struct zos_job_result *r, const struct zos_err *err)
{
    x->stats->jobs++;
    if (r == NULL && err != NULL && err->cat == ZOS_ERRCAT_TIMEOUT)
        x->stats->jobs_timed_out++;
    else if ((r == NULL && err != NULL) || (r != NULL && !zos_job_ok(r)))
        x->stats->jobs_failed++;
}

static void job_done(void *arg, struct zos_job_result *r, const struct zos_err *err)
{
    struct ctx *x = arg;
    struct zos_slot *s = x->slot;

    count_job(x, r, err);
    if (zos_slot_orphaned(s)) {
        zos_slot_done(s);
    } else if (r == NULL && err == NULL && x->channel_node != NULL) { /* ZOS.EXEC STREAM */
        char channel[sizeof(FOLLOW_PREFIX) + 64 + ZOS_JOB_ID_LEN + 2];
        snprintf(channel, sizeof(channel), FOLLOW_PREFIX "%s:%s", x->channel_node, x->id);
        zos_resp_add_cstr(zos_slot_buf(s), channel);
        zos_slot_done(s);
    } else if (r == NULL && err == NULL) { /* ZOS.SUBMIT: the node took it */
        zos_resp_add_cstr(zos_slot_buf(s), x->id);
        zos_slot_done(s);
    } else if (r == NULL) {
        zos_slot_error(s, "ERR %s", err->text);
    } else if (x->mode == MODE_JOB) {
        reply_output(s, r, x->mode);
        zos_slot_done(s);
    } else if (x->mode == MODE_FOLLOW) {
        follow_reply(x, r);
        zos_slot_done(s);
    } else if (!zos_job_ok(r)) {
        reply_failure(x, r);
    } else {
        reply_output(s, r, x->mode);
        zos_slot_done(s);
    }
    zos_job_result_free(r);
    ctx_free(x);
}

static void follow_record(void *arg, int level, const char *text, size_t len, int flags)
{
    struct ctx *x = arg;
    static const char *names[] = {"", "stdout", "stderr"};
    if ((flags & 0x6) && len == 0)
        return; /* the empty end marker of a process */
    if (x->records == NULL && (x->records = evbuffer_new()) == NULL)
        return;
    char other[16];
    snprintf(other, sizeof(other), "level%d", level);
    zos_resp_add_cstr(x->records, level >= 1 && level <= 2 ? names[level] : other);
    zos_resp_add_bulk(x->records, text, len);
    x->nrecords++;
}

static int timeout_ms(const struct opts *o, int def_s)
{
    return (o->timeout_s > 0 ? o->timeout_s : def_s) * 1000;
}

/* Starts REQ on the client's node in MODE. */
static void run(struct zos_client *c, struct zos_slot *s, enum mode mode,
                const struct zos_job_req *req, const struct opts *o)
{
    struct zos_jobs *j = c->node != NULL ? node_jobs(c, c->node) : NULL;
    if (j == NULL) {
        zos_slot_error(s, c->node == NULL ? ZOS_NO_NODE_ERR : "ERR out of memory");
        return;
    }
    bool to_follow = mode == MODE_EXEC && o->stream;
    if (to_follow)
        mode = MODE_SUBMIT; /* answered at once with the channel to SUBSCRIBE to */
    struct ctx *x = ctx_new(c, s, mode, req->command);
    if (x == NULL)
        return;
    if (to_follow)
        x->channel_node = c->node->conf->name;
    if (mode == MODE_SUBMIT)
        ctx_started(x, zos_job_submit(j, req, x->id, job_done, x));
    else
        ctx_started(x, zos_job_run(j, req, timeout_ms(o, DEFAULT_TIMEOUT_S), NULL, job_done, x));
}

static void verb_request(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av,
                         enum mode mode)
{
    struct zos_job_req req = {0};
    struct opts o = {0};
    cJSON *args;
    if (parse_request(av, 1, &req, &args, &o, s) != 0)
        return;
    run(c, s, mode, &req, &o);
    cJSON_Delete(args);
}

static void verb_cmd(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    verb_request(c, s, av, MODE_CMD);
}

static void verb_job(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    verb_request(c, s, av, MODE_JOB);
}

static void verb_submit(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    verb_request(c, s, av, MODE_SUBMIT);
}

/* Where the command words end: before trailing "TIMEOUT <s>" and "STREAM"
 * options (checked by parse_opts), so a command may itself contain the word
 * "timeout" ("ZOS.EXEC timeout 1 sleep 3"). */
static size_t words_end(const struct zos_resp_argv *av, size_t first)
{
    size_t n = av->argc;
    for (int k = 0; k < 2; k++) {
        if (n >= first + 2 && strcasecmp(av->argv[n - 1], "stream") == 0)
            n--;
        else if (n >= first + 2 && strcasecmp(av->argv[n - 2], "timeout") == 0)
            n -= 2;
    }
    return n;
}

/* ZOS.EXEC <shell command ...> [TIMEOUT s] [STREAM]: the bash builtin (sh -c)
 * on the node; with STREAM, at once the channel that follows it. */
static void verb_exec(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct opts o = {0};
    size_t end = words_end(av, 1);
    if (end == 1) {
        zos_slot_error(s, "ERR wrong number of arguments for 'zos.exec' command");
        return;
    }
    if (parse_opts(av, end, &o, s) != 0)
        return;
    char *script = zos_verbs_join(av, 1, end);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "script", script != NULL ? script : "");
    cJSON_AddStringToObject(args, "stdin", "");
    struct zos_job_req req = {
        .command = "bash", .args = args, .stream = o.stream, .max_time = o.max_time};
    run(c, s, MODE_EXEC, &req, &o);
    cJSON_Delete(args);
    free(script);
}

/* Splits one command line on blanks, as the original zos did for containers. */
static cJSON *split_words(const struct zos_resp_argv *av, size_t first, size_t end)
{
    cJSON *words = cJSON_CreateArray();
    for (size_t i = first; i < end && words != NULL; i++) {
        if (end - first > 1) {
            cJSON_AddItemToArray(words, cJSON_CreateString(av->argv[i]));
            continue;
        }
        char *copy = strdup(av->argv[i]), *save = NULL;
        for (char *w = strtok_r(copy, " \t\n", &save); w != NULL;
             w = strtok_r(NULL, " \t\n", &save))
            cJSON_AddItemToArray(words, cJSON_CreateString(w));
        free(copy);
    }
    return words;
}

static int parse_container_id(const char *text, unsigned long *cid)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || text[0] == '\0' || text[0] == '-' || v < 1 || v > 65534)
        return -1;
    *cid = v;
    return 0;
}

/* ZOS.CONTAINER.EXEC <id> <command ...> [TIMEOUT s]: core.system inside a container. */
static void verb_container_exec(struct zos_client *c, struct zos_slot *s,
                                const struct zos_resp_argv *av)
{
    struct opts o = {0};
    unsigned long cid;
    size_t end = words_end(av, 2);
    if (parse_container_id(av->argv[1], &cid) != 0) {
        zos_slot_error(s, "ERR container id must be a number from 1 to 65534, got '%s'",
                       av->argv[1]);
        return;
    }
    if (end == 2 || parse_opts(av, end, &o, s) != 0) {
        if (end == 2)
            zos_slot_error(s, "ERR wrong number of arguments for 'zos.container.exec' command");
        return;
    }
    struct zos_jobs *j = c->node != NULL ? node_jobs(c, c->node) : NULL;
    cJSON *words = split_words(av, 2, end);
    cJSON *args = cJSON_CreateObject();
    cJSON *name = cJSON_DetachItemFromArray(words, 0);
    cJSON_AddItemToObject(args, "name", name != NULL ? name : cJSON_CreateString(""));
    cJSON_AddItemToObject(args, "args", words);
    cJSON_AddStringToObject(args, "dir", "");
    cJSON_AddStringToObject(args, "stdin", "");
    cJSON_AddNullToObject(args, "env");
    struct zos_job_req req = {.command = "core.system", .args = args};
    struct ctx *x = j != NULL ? ctx_new(c, s, MODE_EXEC, "core.system") : NULL;
    if (j == NULL && c->node == NULL)
        zos_slot_error(s, ZOS_NO_NODE_ERR);
    else if (x != NULL)
        ctx_started(x,
                    zos_job_run_in(j, cid, &req, timeout_ms(&o, DEFAULT_TIMEOUT_S), job_done, x));
    cJSON_Delete(args);
}

static bool valid_id(const char *id, size_t len)
{
    if (len == 0 || len > ZOS_JOB_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (id[i] <= ' ' || id[i] == 0x7f)
            return false;
    return true;
}

static struct zos_jobs *checked_jobs(struct zos_client *c, struct zos_slot *s,
                                     const struct zos_resp_argv *av)
{
    if (!valid_id(av->argv[1], av->argvlen[1])) {
        zos_slot_error(s, "ERR invalid job id '%.40s'", av->argv[1]);
        return NULL;
    }
    struct zos_jobs *j = c->node != NULL ? node_jobs(c, c->node) : NULL;
    if (j == NULL)
        zos_slot_error(s, c->node == NULL ? ZOS_NO_NODE_ERR : "ERR out of memory");
    return j;
}

/* ZOS.RESULT <id> [TIMEOUT s]: the whole result object of an earlier job. */
static void verb_result(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct opts o = {0};
    struct zos_jobs *j = checked_jobs(c, s, av);
    struct ctx *x;
    if (j == NULL || parse_opts(av, 2, &o, s) != 0 || (x = ctx_new(c, s, MODE_JOB, "")) == NULL)
        return;
    ctx_started(x, zos_job_wait(j, av->argv[1], timeout_ms(&o, RESULT_TIMEOUT_S), job_done, x));
}

/* ZOS.FOLLOW <id> [TIMEOUT s]: the stream records of a job submitted with
 * STREAM, once it ended: [kind, text, ..., "result", <result JSON>]. */
static void verb_follow(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct opts o = {0};
    struct zos_jobs *j = checked_jobs(c, s, av);
    struct ctx *x;
    if (j == NULL || parse_opts(av, 2, &o, s) != 0 || (x = ctx_new(c, s, MODE_FOLLOW, "")) == NULL)
        return;
    ctx_started(x, zos_job_follow(j, av->argv[1], timeout_ms(&o, DEFAULT_TIMEOUT_S), follow_record,
                                  job_done, x));
}

/* ZOS.KILL <id> [signal]: job.kill; 1 when signalled, 0 when no such job. */
static void verb_kill(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    long sig = 15;
    if (checked_jobs(c, s, av) == NULL)
        return;
    if (av->argc == 3) {
        char *end;
        sig = strtol(av->argv[2], &end, 10);
        if (*end != '\0' || sig < 1 || sig > 64) {
            zos_slot_error(s, "ERR signal must be a number from 1 to 64");
            return;
        }
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "id", av->argv[1]);
    cJSON_AddNumberToObject(args, "signal", (double)sig);
    struct zos_job_req req = {.command = "job.kill", .args = args};
    struct opts o = {0};
    run(c, s, MODE_BOOL, &req, &o);
    cJSON_Delete(args);
}

/* ZOS.JOBS: job.list, as JSON. */
static void verb_jobs(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct zos_job_req req = {.command = "job.list"};
    struct opts o = {0};
    run(c, s, MODE_CMD, &req, &o);
}

const struct zos_verb zos_verbs_job[] = {
    {"zos.cmd", 2, -1, ZOS_VERB_ONNODE, verb_cmd},
    {"zos.container.exec", 3, -1, ZOS_VERB_ONNODE, verb_container_exec},
    {"zos.exec", 2, -1, ZOS_VERB_ONNODE, verb_exec},
    {"zos.follow", 2, 4, ZOS_VERB_ONNODE, verb_follow},
    {"zos.job", 2, -1, ZOS_VERB_ONNODE, verb_job},
    {"zos.jobs", 1, 1, ZOS_VERB_ONNODE, verb_jobs},
    {"zos.kill", 2, 3, ZOS_VERB_ONNODE, verb_kill},
    {"zos.result", 2, 4, ZOS_VERB_ONNODE, verb_result},
    {"zos.submit", 2, -1, ZOS_VERB_ONNODE, verb_submit},
};
const size_t zos_verbs_job_count = ZOS_ARRAY_LEN(zos_verbs_job);

/* ---- SUBSCRIBE zos:job:[<node>:]<id>: a job's output as pub/sub messages ----
 *
 * Answered by the proxy, never sent to a node.  Each channel follows one job
 * (zos_job_follow): every stream record is a message {"kind":"stdout"|
 * "stderr"|"levelN","text":...}, then {"kind":"result","result":<result>}
 * (or {"kind":"error","error":...}), then the channel's unsubscribe.  The
 * messages go into one open slot of the client, its stream, in order. */

#define FOLLOW_TIMEOUT_MS (24 * 3600 * 1000) /* a job may run for hours */

struct zos_follow {
    struct zos_follow *next;
    struct zos_client *c;
    struct zos_job *op;
    char *channel;
};

bool zos_follow_channel(const char *ch, size_t len)
{
    return len >= sizeof(FOLLOW_PREFIX) - 1 &&
           memcmp(ch, FOLLOW_PREFIX, sizeof(FOLLOW_PREFIX) - 1) == 0;
}

/* [kind, channel, count] or [kind, channel, payload], as a push in RESP3. */
static void follow_push(struct zos_client *c, const char *kind, const char *channel,
                        const char *payload, size_t plen, long long count)
{
    struct evbuffer *out = zos_slot_buf(c->follow_slot);
    zos_resp_add_push(out, 3, c->resp3);
    zos_resp_add_cstr(out, kind);
    zos_resp_add_cstr(out, channel);
    if (payload != NULL)
        zos_resp_add_bulk(out, payload, plen);
    else
        zos_resp_add_int(out, count);
    zos_slot_stream_flush(c->follow_slot);
}

static void follow_message(struct zos_follow *f, cJSON *msg)
{
    char *text = msg != NULL ? cJSON_PrintUnformatted(msg) : NULL;
    if (text != NULL)
        follow_push(f->c, "message", f->channel, text, strlen(text), 0);
    free(text);
    cJSON_Delete(msg);
}

static void follow_free(struct zos_follow *f)
{
    free(f->channel);
    free(f);
}

/* F leaves its client's list; the stream closes with the last one. */
static void follow_unlink(struct zos_follow *f, bool tell)
{
    struct zos_client *c = f->c;
    for (struct zos_follow **pp = &c->follows; *pp != NULL; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    c->nfollows--;
    if (tell)
        follow_push(c, "unsubscribe", f->channel, NULL, 0, (long long)c->nfollows);
    if (c->nfollows == 0 && c->follow_slot != NULL) {
        struct zos_slot *s = c->follow_slot;
        c->follow_slot = NULL;
        zos_slot_done(s);
    }
    follow_free(f);
}

static void follow_record_cb(void *arg, int level, const char *text, size_t len, int flags)
{
    struct zos_follow *f = arg;
    char kind[16];
    if ((flags & 0x6) && len == 0)
        return; /* the empty end marker of a process */
    snprintf(kind, sizeof(kind), level == 1 ? "stdout" : level == 2 ? "stderr" : "level%d", level);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "kind", kind);
    char *copy = strndup(text, len);
    cJSON_AddStringToObject(m, "text", copy != NULL ? copy : "");
    free(copy);
    follow_message(f, m);
}

static void follow_done_cb(void *arg, struct zos_job_result *res, const struct zos_err *err)
{
    struct zos_follow *f = arg;
    cJSON *m = cJSON_CreateObject();
    f->op = NULL;
    if (res != NULL && res->json != NULL) {
        cJSON_AddStringToObject(m, "kind", "result");
        cJSON_AddItemToObject(m, "result", cJSON_Duplicate(res->json, true));
    } else {
        cJSON_AddStringToObject(m, "kind", "error");
        cJSON_AddStringToObject(m, "error", err != NULL ? err->text : "no result");
    }
    zos_job_result_free(res);
    follow_message(f, m);
    follow_unlink(f, true);
}

/* The node and job id of CHANNEL: "zos:job:<node>:<id>" when <node> names a
 * node, else "zos:job:<id>" on the client's node.  NULL with ERR. */
static struct zos_node *follow_target(struct zos_client *c, const char *channel, const char **id,
                                      char *err, size_t errlen)
{
    const char *rest = channel + sizeof(FOLLOW_PREFIX) - 1, *colon = strchr(rest, ':');
    struct zos_node *n = c->node;
    *id = rest;
    if (colon != NULL) {
        struct zos_node *named = zos_router_node(c->srv->router, rest, (size_t)(colon - rest));
        if (named != NULL) {
            n = named;
            *id = colon + 1;
        }
    }
    if (!valid_id(*id, strlen(*id))) {
        snprintf(err, errlen, "ERR invalid job channel '%.60s': zos:job:[<node>:]<job id>",
                 channel);
        return NULL;
    }
    if (n == NULL) {
        snprintf(err, errlen, "%s", ZOS_NO_NODE_ERR);
        return NULL;
    }
    if (n->removed) {
        snprintf(err, errlen, "ERR node '%s' was removed", n->conf->name);
        return NULL;
    }
    return zos_client_may_use(c, n, err, errlen) ? n : NULL;
}

void zos_follow_subscribe(struct zos_client *c, const struct zos_resp_argv *av, size_t first)
{
    if (c->follow_slot == NULL && (c->follow_slot = zos_slot_new_stream(&c->slots)) == NULL)
        return;
    for (size_t i = first + 1; i < av->argc; i++) {
        char err[200];
        const char *id;
        struct zos_node *n = follow_target(c, av->argv[i], &id, err, sizeof(err));
        struct zos_jobs *j = n != NULL ? node_jobs(c, n) : NULL;
        struct zos_follow *f = j != NULL ? calloc(1, sizeof(*f)) : NULL;
        if (f == NULL || (f->channel = strdup(av->argv[i])) == NULL) {
            if (n != NULL)
                snprintf(err, sizeof(err), "ERR out of memory");
            zos_resp_add_error(zos_slot_buf(c->follow_slot), "%s", err);
            zos_slot_stream_flush(c->follow_slot);
            free(f);
            continue;
        }
        f->c = c;
        f->next = c->follows;
        c->follows = f;
        c->nfollows++;
        follow_push(c, "subscribe", f->channel, NULL, 0, (long long)c->nfollows);
        f->op = zos_job_follow(j, id, FOLLOW_TIMEOUT_MS, follow_record_cb, follow_done_cb, f);
        if (f->op == NULL)
            follow_done_cb(f, NULL, &(struct zos_err){ZOS_ERRCAT_OTHER, "out of memory"});
    }
    if (c->nfollows == 0 && c->follow_slot != NULL) { /* nothing followed: out of the mode */
        struct zos_slot *s = c->follow_slot;
        c->follow_slot = NULL;
        zos_slot_done(s);
    }
}

void zos_follow_unsubscribe(struct zos_client *c, const struct zos_resp_argv *av, size_t first)
{
    bool all = av->argc - first < 2;
    for (size_t i = first + 1; i < av->argc || all; i++) {
        struct zos_follow *f = c->follows;
        while (f != NULL && !all && strcmp(f->channel, av->argv[i]) != 0)
            f = f->next;
        if (f == NULL) {
            if (all)
                break;
            follow_push(c, "unsubscribe", av->argv[i], NULL, 0, (long long)c->nfollows);
            continue;
        }
        if (f->op != NULL)
            zos_job_cancel(f->op);
        follow_unlink(f, true);
        if (all && c->follows == NULL)
            break;
    }
}

void zos_follow_end_all(struct zos_client *c)
{
    while (c->follows != NULL) {
        struct zos_follow *f = c->follows;
        c->follows = f->next;
        if (f->op != NULL)
            zos_job_cancel(f->op);
        follow_free(f);
    }
    c->nfollows = 0;
    if (c->follow_slot != NULL) {
        struct zos_slot *s = c->follow_slot;
        c->follow_slot = NULL;
        zos_slot_done(s);
    }
}

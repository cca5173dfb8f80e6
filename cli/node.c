/* node.c -- one session with the active node, run synchronously.
 *
 *   zos_cli_node_open: pick the node --> link (TLS, AUTH) --> PING --> PONG?
 *                                        \--> or plain TCP to a zos-proxy,
 *                                             "AUTH <node> <password>", ZOS.AT <node> PING
 *   zos_cli_node_job:  zos_job_run / zos_job_run_in on the same link ----+
 *   zos_cli_node_job_live: the same with stream: true, and a stream reader |
 *                      on a link of its own --> live.c's writer thread ----+
 *   zos_cli_node_get/set: raw GET/SET through zos_link_send_argv ---------+--> event loop
 *                                                  runs until the callback set "done"
 *
 * The library is asynchronous (libevent); the CLI does one thing at a time,
 * so each helper starts an operation and turns the loop until it is over,
 * with a spinner on stderr meanwhile when both stdout and stderr are
 * terminals.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "zos/container.h"
#include "zos/err.h"
#include "zos/link.h"
#include "zos/resp.h"
#include "zos/stream.h"

#define PING_TIMEOUT_MS    5000
#define CONNECT_TIMEOUT_MS 5000
#define REDIS_TIMEOUT_MS   10000
#define SPIN_DELAY_MS      300
#define SPIN_STEP_MS       100
#define LIVE_MAX_BACKLOG   (64u << 20) /* bytes waiting for the terminal: stop reading the node */
#define LIVE_LOW_BACKLOG   (16u << 20) /* ... and read again below this */
#define LIVE_CHECK_MS      20

struct zos_cli_node {
    struct zos_cli *cli;
    const struct zos_node_conf *conf; /* in the config file; NULL when unknown (proxy) */
    char name[128];
    struct zos_node_conf conn; /* where the link goes: the node or the proxy */
    char proxy_host[256];
    struct event_base *base;
    SSL_CTX *ssl;
    struct zos_link *link;
    struct zos_jobs *jobs;
    /* spinner */
    struct event *spin;
    const char *label;
    int frame;
    bool shown;
};

/* What the CLI keeps of a node's reply (decoded by resp). */
struct reply {
    char type; /* the RESP type byte; 'n' for nil */
    char *str; /* '+' '-' '$': the text, NUL-terminated (malloc'd) */
    size_t len;
};

/* One raw command in flight.  Heap-allocated: when the wait gives up
 * first, the late reply (or the link's "link closed") frees it. */
struct call {
    bool done;
    bool abandoned;
    const struct zos_link *link; /* its link: outlives the call unless abandoned */
    struct reply *reply;
    struct zos_err err;
};

/* One job. */
struct wait {
    bool done;
    struct zos_job_result *res;
    struct zos_err err;
};

static struct zos_link_opts link_opts(const struct zos_cli_node *n);

/* ---- spinner ---- */

static void spin_cb(evutil_socket_t fd, short what, void *arg)
{
    static const char frames[] = "|/-\\";
    struct zos_cli_node *n = arg;
    n->shown = true;
    fprintf(stderr, "\r%c %s", frames[n->frame++ % 4], n->label);
    fflush(stderr);
    struct timeval tv = {0, SPIN_STEP_MS * 1000};
    evtimer_add(n->spin, &tv);
}

static void spin_start(struct zos_cli_node *n, const char *label)
{
    if (label == NULL || n->spin == NULL || !isatty(STDOUT_FILENO) || !isatty(STDERR_FILENO))
        return;
    n->label = label;
    n->shown = false;
    struct timeval tv = {0, SPIN_DELAY_MS * 1000};
    evtimer_add(n->spin, &tv);
}

static void spin_stop(struct zos_cli_node *n)
{
    if (n->spin != NULL)
        evtimer_del(n->spin);
    if (n->shown)
        fprintf(stderr, "\r\033[K");
    n->shown = false;
}

/* Turns the loop until *DONE; false when nothing is left to wait for. */
static bool run_until(struct zos_cli_node *n, const bool *done, const char *label)
{
    spin_start(n, label);
    while (!*done) {
        if (event_base_loop(n->base, EVLOOP_ONCE) != 0)
            break;
    }
    spin_stop(n);
    return *done;
}

/* ---- errors ---- */

static const char *where(const struct zos_cli_node *n, char *buf, size_t len)
{
    if (n->cli->proxy != NULL)
        snprintf(buf, len, "node '%s' through zos-proxy %s", n->name, n->cli->proxy);
    else
        snprintf(buf, len, "node '%s' at %s:%d", n->name, n->conn.address, n->conn.port);
    return buf;
}

/* Prints the library error ERR about N; returns its exit code (exitcode.c). */
static int transport_error(const struct zos_cli_node *n, const struct zos_err *err)
{
    char w[400];
    int code = zos_cli_exit_code(err->cat);
    where(n, w, sizeof(w));
    if (code == ZOS_EXIT_NOT_CONFIGURED)
        return zos_cli_fail(code, "%s: the proxy has no such node (%s)", w, err->text);
    if (code == ZOS_EXIT_INVALID_JWT)
        return zos_cli_fail(code, "%s refused the connection: %s (check its secret, or ZOS_JWT)", w,
                            err->text);
    if (code == ZOS_EXIT_UNREACHABLE)
        return zos_cli_fail(code, "cannot reach %s: %s", w, err->text);
    return zos_cli_fail(code, "%s: %s", w, err->text);
}

/* A failure the CLI finds itself: the node's link or jobs are gone. */
static int gone(const struct zos_cli_node *n, const char *why)
{
    struct zos_err e;
    return transport_error(n, zos_err_set(&e, ZOS_ERRCAT_UNREACHABLE, "%s", why));
}

/* The node's error reply TEXT to a command that should have worked. */
static int reply_error(const struct zos_cli_node *n, const char *text)
{
    struct zos_err e;
    return transport_error(n, zos_err_set(&e, zos_errcat_of_reply(text), "%s", text));
}

/* ---- raw commands ---- */

static void reply_free(struct reply *r)
{
    if (r != NULL)
        free(r->str);
    free(r);
}

/* The reply of LEN bytes at the front of BUF; NULL when out of memory or not
 * one reply. */
static struct reply *decode(struct evbuffer *buf, size_t len)
{
    struct zos_resp_reader rd;
    struct zos_resp_val v;
    struct reply *r = calloc(1, sizeof(*r));

    if (r == NULL || zos_resp_reply_open(buf, len, &rd, &v) != ZOS_OK) {
        free(r);
        return NULL;
    }
    r->type = v.nil ? 'n' : v.type == '!' ? '-' : v.type;
    if (v.str != NULL && !v.nil) {
        if ((r->str = malloc(v.len + 1)) == NULL) {
            free(r);
            return NULL;
        }
        memcpy(r->str, v.str, v.len);
        r->str[v.len] = '\0';
        r->len = v.len;
    }
    return r;
}

static void call_cb(void *arg, struct evbuffer *reply, size_t len, const char *err)
{
    struct call *c = arg;
    if (c->abandoned) {
        free(c);
        return;
    }
    c->done = true;
    if (reply == NULL) {
        zos_err_set(&c->err, zos_link_err(c->link)->cat, "%s", err != NULL ? err : "link closed");
        return;
    }
    c->reply = decode(reply, len);
    if (c->reply == NULL)
        zos_err_set(&c->err, ZOS_ERRCAT_PROTOCOL, "cannot read the node's reply");
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    bool *timed_out = arg;
    *timed_out = true;
}

/* Why N's link is down, into ERR. */
static void link_down(const struct zos_cli_node *n, struct zos_err *err)
{
    if (n->link == NULL || zos_link_err(n->link)->cat == ZOS_ERRCAT_NONE)
        zos_err_set(err, ZOS_ERRCAT_UNREACHABLE, "link closed");
    else
        *err = *zos_link_err(n->link);
}

/* Sends ARGV and waits up to TIMEOUT_MS: the reply (which may be an error
 * reply; reply_free), or NULL with ERR set (transport). */
static struct reply *call(struct zos_cli_node *n, size_t argc, const char *const *argv,
                          int timeout_ms, struct zos_err *err)
{
    size_t lens[8];
    bool timed_out = false;
    struct call *c = calloc(1, sizeof(*c));
    struct reply *reply = NULL;

    if (c == NULL || argc > 8) {
        zos_err_set(err, ZOS_ERRCAT_OTHER, "out of memory");
        free(c);
        return NULL;
    }
    c->link = n->link;
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (n->link == NULL || zos_link_send_argv(n->link, argc, argv, lens, call_cb, c) != 0) {
        link_down(n, err);
        free(c);
        return NULL;
    }
    if (zos_link_state(n->link) == ZOS_LINK_DOWN) {
        /* link.c: a connect that fails inside the send (a name that does not
         * resolve) leaves the request queued on a dead link: fail now */
        c->abandoned = true;
        link_down(n, err);
        return NULL;
    }
    struct event *t = evtimer_new(n->base, call_timeout_cb, &timed_out);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (t != NULL)
        evtimer_add(t, &tv);
    while (!c->done && !timed_out && event_base_loop(n->base, EVLOOP_ONCE) == 0)
        ;
    if (t != NULL)
        event_free(t);
    if (!c->done) {
        c->abandoned = true; /* call_cb frees it when the reply or the close comes */
        /* a node that does not answer a Redis command cannot be used: unreachable */
        zos_err_set(err, ZOS_ERRCAT_UNREACHABLE, "no reply within %d s", timeout_ms / 1000);
        return NULL;
    }
    reply = c->reply;
    if (reply == NULL)
        *err = c->err;
    free(c);
    return reply;
}

int zos_cli_node_get(struct zos_cli_node *n, const char *key, char **value)
{
    const char *argv[] = {"GET", key};
    struct zos_err err;
    struct reply *r = call(n, 2, argv, REDIS_TIMEOUT_MS, &err);
    int rc = 0;
    *value = NULL;
    if (r == NULL)
        return transport_error(n, &err);
    if (r->type == '$')
        *value = strndup(r->str, r->len);
    else if (r->type == '-')
        rc = reply_error(n, r->str);
    reply_free(r);
    return rc;
}

int zos_cli_node_set(struct zos_cli_node *n, const char *key, const char *value)
{
    const char *argv[] = {value != NULL ? "SET" : "DEL", key, value};
    struct zos_err err;
    struct reply *r = call(n, value != NULL ? 3 : 2, argv, REDIS_TIMEOUT_MS, &err);
    int rc = 0;
    if (r == NULL)
        return transport_error(n, &err);
    if (r->type == '-')
        rc = reply_error(n, r->str);
    reply_free(r);
    return rc;
}

/* ---- jobs ---- */

static void job_cb(void *arg, struct zos_job_result *res, const struct zos_err *err)
{
    struct wait *w = arg;
    w->done = true;
    w->res = res;
    if (err != NULL)
        w->err = *err;
}

static int finish_job(struct zos_cli_node *n, struct wait *w, int fail_code,
                      struct zos_job_result **res)
{
    *res = NULL;
    if (w->res == NULL)
        return w->err.cat != ZOS_ERRCAT_NONE ? transport_error(n, &w->err)
                                             : gone(n, "the job was lost");
    *res = w->res;
    zos_cli_debug(n->cli, "job %s: state %s code %lu", w->res->id, w->res->state, w->res->code);
    return zos_job_ok(w->res) ? 0 : fail_code;
}

int zos_cli_node_job(struct zos_cli_node *n, unsigned long cid, const char *command,
                     const cJSON *args, int timeout_ms, const char *label, int fail_code,
                     struct zos_job_result **res)
{
    struct zos_job_req req = {.command = command, .args = args};
    struct wait w = {0};
    struct zos_job *job;
    *res = NULL;
    if (n->jobs == NULL)
        return gone(n, "link closed");
    zos_cli_debug(n->cli, "job %s%s", command, cid > 0 ? " in a container" : "");
    if (cid > 0)
        job = zos_job_run_in(n->jobs, cid, &req, timeout_ms, job_cb, &w);
    else
        job = zos_job_run(n->jobs, &req, timeout_ms, NULL, job_cb, &w);
    if (job == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    if (!run_until(n, &w.done, label)) {
        zos_job_cancel(job);
        return gone(n, "nothing left to wait for");
    }
    return finish_job(n, &w, fail_code, res);
}

/* ---- live jobs ----
 *
 *   zos_job_run(stream: true) ------------------------------> result --+
 *   stream reader on its own link: records --> live.c queue            |
 *      (paused while the terminal is LIVE_MAX_BACKLOG behind)          v
 *   over once the end marker came, or once the result says no more can come
 *   (no streams: the job never ran; another job's result: the dispatch failed)
 */

struct live {
    struct zos_cli_node *n;
    struct wait w;
    const char *id;
    struct zos_cli_live *out;
    struct zos_stream_reader *reader;
    struct event *check; /* while paused: read again once the terminal caught up */
    bool paused;
    bool spinning;
    bool over;   /* nothing more to read */
    bool marker; /* the end marker came: the output printed is whole */
    char why[256];
};

static void live_show(struct live *lv)
{
    if (lv->spinning)
        spin_stop(lv->n);
    lv->spinning = false;
}

static void live_check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct live *lv = arg;
    struct timeval tv = {0, LIVE_CHECK_MS * 1000};
    if (zos_cli_live_backlog(lv->out) > LIVE_LOW_BACKLOG) {
        evtimer_add(lv->check, &tv);
        return;
    }
    lv->paused = false;
    if (lv->reader != NULL)
        zos_stream_reader_pause(lv->reader, false);
}

static void live_rec(void *arg, const struct zos_stream_record *rec)
{
    struct live *lv = arg;
    struct timeval tv = {0, LIVE_CHECK_MS * 1000};
    if (rec->len == 0 ||
        (rec->level != ZOS_STREAM_LEVEL_STDOUT && rec->level != ZOS_STREAM_LEVEL_STDERR))
        return; /* end markers, a builtin's result, log levels: not output */
    live_show(lv);
    zos_cli_live_output(lv->out, (int)rec->level, rec->text, rec->len);
    if (!lv->paused && zos_cli_live_backlog(lv->out) > LIVE_MAX_BACKLOG) {
        lv->paused = true;
        zos_stream_reader_pause(lv->reader, true);
        evtimer_add(lv->check, &tv);
    }
}

static void live_gap(void *arg)
{
    struct live *lv = arg;
    live_show(lv);
    zos_cli_live_note(lv->out,
                      "zos: warning: output may be missing here: the job wrote faster than zos "
                      "could read it, and the node keeps only its newest %d records",
                      ZOS_STREAM_MAX_RECORDS);
}

static void live_bad(void *arg, const char *err)
{
    struct live *lv = arg;
    zos_cli_debug(lv->n->cli, "stream:%s: skipped: %s", lv->id, err);
}

static void live_end(void *arg, enum zos_stream_end how, const char *err)
{
    struct live *lv = arg;
    lv->over = true;
    lv->marker = how == ZOS_STREAM_END_MARKER;
    if (how == ZOS_STREAM_END_ERROR)
        snprintf(lv->why, sizeof(lv->why), "%s", err);
    else if (how == ZOS_STREAM_END_QUIET)
        snprintf(lv->why, sizeof(lv->why), "the node sent no end of stream");
}

static void live_job_cb(void *arg, struct zos_job_result *res, const struct zos_err *err)
{
    struct live *lv = arg;
    job_cb(&lv->w, res, err);
    if (lv->over)
        return;
    if (res != NULL && res->has_streams && strcmp(res->id, lv->id) == 0) {
        zos_stream_reader_job_ended(lv->reader); /* read what is still to come, then end */
    } else {
        lv->over = true;
        snprintf(lv->why, sizeof(lv->why), "%s",
                 res != NULL   ? "the job wrote no stream"
                 : err != NULL ? err->text
                               : "");
    }
}

static bool live_start(struct zos_cli_node *n, struct live *lv)
{
    static const struct zos_stream_reader_cbs cbs = {live_rec, live_gap, live_end, live_bad};
    struct zos_link_opts lo = link_opts(n);
    struct zos_link *link;
    if ((lv->out = zos_cli_live_new()) == NULL ||
        (lv->check = evtimer_new(n->base, live_check_cb, lv)) == NULL ||
        (link = zos_link_new(n->base, NULL, &n->conn, n->ssl, &lo)) == NULL)
        return false;
    lv->reader = zos_stream_reader_new(n->base, link, lv->id, &cbs, lv);
    return lv->reader != NULL;
}

/* What the caller prints of the result after the records: nothing of its
 * streams when the stream came whole; else what they add to it. */
static void live_leftovers(struct live *lv, struct zos_job_result *r)
{
    if (lv->marker) {
        r->out[0] = r->err[0] = '\0';
        return;
    }
    char *out = zos_cli_live_unprinted(lv->out, 1, r->out);
    char *err = zos_cli_live_unprinted(lv->out, 2, r->err);
    if (out == NULL || err == NULL) {
        free(out);
        free(err);
        return;
    }
    if (zos_cli_live_printed(lv->out) && (out[0] != '\0' || err[0] != '\0'))
        fprintf(stderr,
                "zos: warning: the live output stopped early (%s); what follows is the end of "
                "the job's output as its result keeps it (the last 100 lines of each stream): "
                "lines before it may be missing\n",
                lv->why);
    else if (lv->why[0] != '\0')
        zos_cli_debug(lv->n->cli, "stream:%s: %s", lv->id, lv->why);
    free(r->out);
    free(r->err);
    r->out = out;
    r->err = err;
}

static void live_stop(struct live *lv)
{
    zos_stream_reader_free(lv->reader);
    lv->reader = NULL;
    if (lv->check != NULL)
        event_free(lv->check);
    zos_cli_live_free(lv->out); /* writes what is queued */
}

int zos_cli_node_job_live(struct zos_cli_node *n, unsigned long cid, const char *command,
                          const cJSON *args, int timeout_ms, const char *label, int fail_code,
                          struct zos_job_result **res)
{
    char id[ZOS_JOB_ID_LEN + 1];
    struct zos_job_req req = {.command = command, .args = args, .id = id, .stream = true};
    struct live lv = {.n = n, .id = id};
    struct zos_job *job;
    bool lost = false;

    *res = NULL;
    if (n->jobs == NULL)
        return gone(n, "link closed");
    zos_job_uuid(id);
    if (!live_start(n, &lv)) {
        live_stop(&lv);
        return zos_cli_node_job(n, cid, command, args, timeout_ms, label, fail_code, res);
    }
    zos_cli_debug(n->cli, "job %s%s, output live from stream:%s", command,
                  cid > 0 ? " in a container" : "", id);
    if (cid > 0)
        job = zos_job_run_in(n->jobs, cid, &req, timeout_ms, live_job_cb, &lv);
    else
        job = zos_job_run(n->jobs, &req, timeout_ms, NULL, live_job_cb, &lv);
    if (job == NULL) {
        live_stop(&lv);
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    }
    spin_start(n, label);
    lv.spinning = true;
    while (!lv.w.done || !lv.over) {
        if (event_base_loop(n->base, EVLOOP_ONCE) != 0) {
            lost = true;
            break;
        }
    }
    live_show(&lv);
    zos_stream_reader_free(lv.reader);
    lv.reader = NULL;
    zos_cli_live_flush(lv.out);
    if (lv.w.res != NULL)
        live_leftovers(&lv, lv.w.res);
    live_stop(&lv);
    if (lost && !lv.w.done) {
        zos_job_cancel(job);
        return gone(n, "nothing left to wait for");
    }
    return finish_job(n, &lv.w, fail_code, res);
}

int zos_cli_node_invoke(struct zos_cli_node *n, unsigned long cid, const char *command,
                        const cJSON *args, char *inner_id, struct zos_job_result **res)
{
    struct zos_job_req inner = {.command = command, .args = args, .id = inner_id};

    zos_job_uuid(inner_id);
    cJSON *outer = zos_container_dispatch_args(cid, zos_job_request_object(&inner, inner_id));
    if (outer == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    int rc = zos_cli_node_job(n, 0, ZOS_CONTAINER_DISPATCH, outer, zos_cli_node_timeout_ms(n, 30),
                              NULL, ZOS_EXIT_CMD_FAILED, res);
    cJSON_Delete(outer);
    return rc;
}

int zos_cli_node_timeout_ms(const struct zos_cli_node *n, int def_s)
{
    return (n->cli->timeout_s > 0 ? n->cli->timeout_s : def_s) * 1000;
}

/* ---- opening ---- */

/* Which node: --node, else [app] defaultzos, else the only node; through
 * a proxy an unknown name is fine (the proxy knows it), and no name at all
 * means the proxy's default node. */
static int pick_node(struct zos_cli *cli, struct zos_cli_node *n)
{
    const struct zos_conf *c = cli->conf;
    const char *name = cli->node;

    if (name == NULL && c->app.defaultzos != NULL)
        name = c->app.defaultzos;
    if (name == NULL && c->nnodes == 1)
        name = c->nodes[0].name;
    if (name == NULL && cli->proxy != NULL)
        name = "default";
    if (name == NULL && c->nnodes == 0)
        return zos_cli_first_time();
    if (name == NULL)
        return zos_cli_fail(ZOS_EXIT_UNCONFIGURED,
                            "no default node: choose one with 'zos setdefault <name>'");
    n->conf = zos_conf_node(c, name);
    if (n->conf == NULL && cli->proxy == NULL)
        return zos_cli_fail(ZOS_EXIT_NOT_CONFIGURED,
                            "no node named '%s' in %s ('zos showconfig' lists them)", name,
                            cli->conf_path);
    snprintf(n->name, sizeof(n->name), "%s", name);
    return 0;
}

/* Fills n->conn: the node itself, or the proxy in front of it. */
static int set_target(struct zos_cli *cli, struct zos_cli_node *n)
{
    if (cli->proxy == NULL) {
        const char *jwt = getenv("ZOS_JWT");
        n->conn = *n->conf;
        if (jwt != NULL && jwt[0] != '\0')
            n->conn.secret = (char *)jwt;
        return 0;
    }
    int port;
    if (zos_conf_split_hostport(cli->proxy, n->proxy_host, sizeof(n->proxy_host), &port) != 0)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--proxy: expected HOST:PORT, got '%s'",
                            cli->proxy);
    const char *pass = getenv("ZOS_PROXY_PASSWORD");
    memset(&n->conn, 0, sizeof(n->conn));
    n->conn.name = n->name;
    n->conn.address = n->proxy_host;
    n->conn.port = port;
    n->conn.tls = false;
    n->conn.secret = (char *)(pass != NULL ? pass : "");
    return 0;
}

/* How the CLI's links connect: to the node, or to the proxy as "AUTH <node> <password>". */
static struct zos_link_opts link_opts(const struct zos_cli_node *n)
{
    struct zos_link_opts lo = {
        .pinned = true,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .auth_user = n->cli->proxy != NULL ? n->name : NULL,
    };
    return lo;
}

static int connect_links(struct zos_cli_node *n)
{
    char err[256];
    struct zos_link_opts lo = link_opts(n);
    struct zos_jobs_opts jo = {.max_waiters = 4, .link = lo};

    n->base = event_base_new();
    if (n->base == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "cannot create an event loop");
    n->spin = evtimer_new(n->base, spin_cb, n);
    if (n->conn.tls && (n->ssl = zos_link_ssl_ctx(&n->conn, err, sizeof(err))) == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "%s", err);
    n->link = zos_link_new(n->base, NULL, &n->conn, n->ssl, &lo);
    if (n->link != NULL)
        n->jobs = zos_jobs_new(n->base, NULL, &n->conn, n->ssl, n->link, &jo);
    if (n->link == NULL || n->jobs == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    return 0;
}

/* The original's check before node commands: PING, expect PONG.  Through a
 * proxy the PING must reach the node: ZOS.AT <node> PING. */
static int ping_check(struct zos_cli_node *n)
{
    const char *direct[] = {"PING"}, *via[] = {"ZOS.AT", n->name, "PING"};
    char w[400];
    struct zos_err err;
    bool proxy = n->cli->proxy != NULL;
    int rc = 0;
    struct reply *r = call(n, proxy ? 3 : 1, proxy ? via : direct, PING_TIMEOUT_MS, &err);

    if (r == NULL)
        return transport_error(n, &err);
    if (r->type == '-') {
        /* the node's own error to PING is no PONG; the credentials refused,
         * or a proxy's report on its node, is the connection's error */
        if (zos_errcat_of_reply(r->str) != ZOS_ERRCAT_NODE)
            rc = reply_error(n, r->str);
        else
            rc = zos_cli_fail(ZOS_EXIT_CANT_PING, "%s did not answer PONG: %s",
                              where(n, w, sizeof(w)), r->str);
    } else if (r->type != '+' || strcmp(r->str, "PONG") != 0) {
        rc = zos_cli_fail(ZOS_EXIT_CANT_PING, "%s did not answer PONG to PING",
                          where(n, w, sizeof(w)));
    }
    reply_free(r);
    return rc;
}

int zos_cli_node_rtt(struct zos_cli_node *n, int count, double *best_ms)
{
    *best_ms = -1;
    for (int i = 0; i < count; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = ping_check(n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc != 0)
            return rc;
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (*best_ms < 0 || ms < *best_ms)
            *best_ms = ms;
    }
    return 0;
}

int zos_cli_node_open(struct zos_cli *cli, struct zos_cli_node **out)
{
    struct zos_cli_node *n = calloc(1, sizeof(*n));
    int rc;
    *out = NULL;
    if (n == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    n->cli = cli;
    if ((rc = pick_node(cli, n)) != 0 || (rc = set_target(cli, n)) != 0 ||
        (rc = connect_links(n)) != 0) {
        zos_cli_node_close(n);
        return rc;
    }
    zos_cli_debug(cli, "node '%s': %s:%d%s%s", n->name, n->conn.address, n->conn.port,
                  n->conn.tls ? " tls" : "", cli->proxy != NULL ? " (zos-proxy)" : "");
    if ((rc = ping_check(n)) != 0) {
        zos_cli_node_close(n);
        return rc;
    }
    *out = n;
    return 0;
}

void zos_cli_node_close(struct zos_cli_node *n)
{
    if (n == NULL)
        return;
    zos_jobs_free(n->jobs);
    zos_link_free(n->link);
    if (n->spin != NULL)
        event_free(n->spin);
    if (n->ssl != NULL)
        SSL_CTX_free(n->ssl);
    if (n->base != NULL)
        event_base_free(n->base);
    free(n);
}

/* ---- waiting for a booting node ---- */

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Turns N's loop for MS milliseconds (the spinner keeps turning). */
static void pause_ms(struct zos_cli_node *n, int ms)
{
    bool woke = false;
    struct event *t = evtimer_new(n->base, wake_cb, &woke);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (t == NULL)
        return;
    evtimer_add(t, &tv);
    while (!woke && event_base_loop(n->base, EVLOOP_ONCE) == 0)
        ;
    event_free(t);
}

/* One attempt: a fresh link, PING, PONG within 2 s? */
static bool pong_once(struct zos_cli_node *n)
{
    struct zos_link_opts lo = {.pinned = true, .connect_timeout_ms = 2000};
    const char *argv[] = {"PING"};
    struct zos_err err;
    n->link = zos_link_new(n->base, NULL, &n->conn, n->ssl, &lo);
    struct reply *r = n->link != NULL ? call(n, 1, argv, 2000, &err) : NULL;
    bool ok = r != NULL && r->type == '+' && strcmp(r->str, "PONG") == 0;
    if (r != NULL)
        reply_free(r);
    zos_link_free(n->link);
    n->link = NULL;
    return ok;
}

int zos_cli_node_wait_pong(struct zos_cli *cli, const struct zos_node_conf *conf, int timeout_s,
                           const char *label)
{
    struct zos_cli_node *n = calloc(1, sizeof(*n));
    char err[256];
    int rc = ZOS_EXIT_UNREACHABLE;
    if (n == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    n->cli = cli;
    n->conn = *conf;
    snprintf(n->name, sizeof(n->name), "%s", conf->name);
    if ((n->base = event_base_new()) == NULL ||
        (conf->tls && (n->ssl = zos_link_ssl_ctx(conf, err, sizeof(err))) == NULL)) {
        zos_cli_node_close(n);
        return zos_cli_fail(ZOS_EXIT_GENERAL, "cannot prepare the connection");
    }
    n->spin = evtimer_new(n->base, spin_cb, n);
    spin_start(n, label);
    time_t deadline = time(NULL) + timeout_s;
    while (rc != 0 && time(NULL) < deadline) {
        if (pong_once(n))
            rc = 0;
        else
            pause_ms(n, 1000);
    }
    spin_stop(n);
    if (rc != 0)
        zos_cli_fail(rc, "node '%s' at %s:%d did not answer PING within %d s", n->name,
                     conf->address, conf->port, timeout_s);
    zos_cli_node_close(n);
    return rc;
}

const char *zos_cli_node_name(const struct zos_cli_node *n)
{
    return n->name;
}

const struct zos_node_conf *zos_cli_node_conf(const struct zos_cli_node *n)
{
    return n->conf;
}

const char *zos_cli_node_address(const struct zos_cli_node *n)
{
    if (n->conf != NULL)
        return n->conf->address;
    return n->conn.address;
}

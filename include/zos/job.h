/* job.h -- core0 jobs over a link: build, submit, wait, decode, follow.
 *
 *   zos_job_run():  RPUSH core:default <request>          (the node's shared link)
 *                   queue --> one of N waiting links:      (bounded per node)
 *                   BRPOPLPUSH result:<id> result:<id> 1   (non-destructive, one 1 s slice)
 *                   still running: TTL result:<id>:flag every 200 ms on the shared link,
 *                   and a waiting link again once the job ended, so any number of long
 *                   jobs leave the waiting links to short ones
 *                   decode (data decoded twice when level is 20) --> fn(result)
 *
 * Everything runs on the caller's libevent loop; callbacks never run inside
 * the call that started the operation.  The protocol is core0-protocol.md.
 */
#ifndef ZOS_JOB_H
#define ZOS_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "zos/link.h"

#define ZOS_JOB_ID_LEN 36 /* a uuid v4, without the NUL */

/* What to run: the fields of the request object (§2). */
struct zos_job_req {
    const char *command; /* "core.ping", "core.system", ... */
    const cJSON *args;   /* borrowed; NULL sends {} */
    const char *id;      /* NULL: a fresh uuid v4 */
    const char *queue;   /* NULL: none */
    int max_time;        /* seconds, 0: none */
    bool stream;         /* also write stream:<id> */
    const cJSON *tags;   /* borrowed array, NULL: null */
};

/* A decoded result object (§4).  Strings are never NULL ("" when absent). */
struct zos_job_result {
    char *id, *command, *state, *data, *critical;
    char *out, *err; /* streams[0], streams[1] */
    bool has_streams;
    int level;
    unsigned long code;
    long long starttime, time;
    unsigned long container;
    cJSON *value; /* data decoded when level is 20 (NULL if not JSON) */
    cJSON *json;  /* the whole object as received */
    char *raw;    /* the JSON text as received */
};

/* A result of a successful job? (state SUCCESS) */
bool zos_job_ok(const struct zos_job_result *r);
/* Parses TEXT (LEN bytes).  NULL with ERR when it is not a result object. */
struct zos_job_result *zos_job_result_parse(const char *text, size_t len, char *err, size_t errlen);
/* What R says of the job: ZOS_ERRCAT_NONE when it succeeded,
 * ZOS_ERRCAT_NO_CONTAINER when core0 refused it for a container id it does
 * not have, else ZOS_ERRCAT_JOB_FAILED. */
enum zos_errcat zos_job_result_errcat(const struct zos_job_result *r);
void zos_job_result_free(struct zos_job_result *r);

/* The output a user wants from a result: for level 20 the decoded value as
 * JSON text (pretty when PRETTY), else stdout, else stderr.  Caller frees. */
char *zos_job_result_output(const struct zos_job_result *r, bool pretty);
/* One line describing a failed job: "ERROR code=1001: <stderr or data>". */
void zos_job_result_describe(const struct zos_job_result *r, char *buf, size_t len);

/* The request object for REQ with id ID.  Caller owns it (cJSON_Delete);
 * NULL when out of memory. */
cJSON *zos_job_request_object(const struct zos_job_req *req, const char *id);
/* The same as JSON text.  Caller frees (free()). */
char *zos_job_request_json(const struct zos_job_req *req, const char *id);
/* Writes a fresh uuid v4 into ID (ZOS_JOB_ID_LEN + 1 bytes). */
void zos_job_uuid(char *id);

/* Per-node job machinery: the shared link for submits and short commands,
 * and up to MAX_WAITERS links that block in BRPOPLPUSH/BLPOP. */
struct zos_jobs;

struct zos_jobs_opts {
    int max_waiters;           /* default 16 */
    struct zos_link_opts link; /* for the waiting links (pinned is forced) */
};

/* SHARED is borrowed (it must outlive the result) and is used for RPUSH,
 * EXISTS and the like; waiting links are opened to NODE with SSL as needed. */
struct zos_jobs *zos_jobs_new(struct event_base *base, struct evdns_base *dns,
                              const struct zos_node_conf *node, SSL_CTX *ssl,
                              struct zos_link *shared, const struct zos_jobs_opts *opts);
/* Every pending operation's callback runs with ERR "closed". Accepts NULL. */
void zos_jobs_free(struct zos_jobs *j);
/* Operations queued or waiting now. */
size_t zos_jobs_pending(const struct zos_jobs *j);

/* A pending operation; valid until its callback has run or it is cancelled. */
struct zos_job;

/* RES is owned by the callback's callee (free it with zos_job_result_free);
 * on failure RES is NULL and ERR (borrowed for the call) says why, with its
 * category: "timeout after 10 s waiting for job <id>" (TIMEOUT), "node
 * unavailable: <the link's error>" (the link's category), an error reply of
 * the node (zos_errcat_of_reply), "job <id> not found ..." (NOT_FOUND). */
typedef void (*zos_job_fn)(void *arg, struct zos_job_result *res, const struct zos_err *err);

/* Submits REQ and waits up to TIMEOUT_MS for its result.  ID, when not NULL,
 * receives the job id at once.  NULL on allocation failure. */
struct zos_job *zos_job_run(struct zos_jobs *j, const struct zos_job_req *req, int timeout_ms,
                            char *id, zos_job_fn fn, void *arg);
/* Submits REQ without waiting: FN gets RES NULL and ERR NULL once the node's
 * Redis took the request (or an error). */
struct zos_job *zos_job_submit(struct zos_jobs *j, const struct zos_job_req *req, char *id,
                               zos_job_fn fn, void *arg);
/* Waits for the result of job ID, submitted earlier (results stay 300 s). */
struct zos_job *zos_job_wait(struct zos_jobs *j, const char *id, int timeout_ms, zos_job_fn fn,
                             void *arg);
/* Runs REQ inside container CID via corex.dispatch and waits for the inner
 * job's result (two waits, §6.4). */
struct zos_job *zos_job_run_in(struct zos_jobs *j, unsigned long cid, const struct zos_job_req *req,
                               int timeout_ms, zos_job_fn fn, void *arg);

/* Stream records of job ID (§5): REC_FN gets each record's level (meta >> 16),
 * text and flags; at the end marker, or when the job ended and no record came
 * for 1 s, DONE gets the job's result (or an error). */
typedef void (*zos_job_record_fn)(void *arg, int level, const char *text, size_t len, int flags);
struct zos_job *zos_job_follow(struct zos_jobs *j, const char *id, int timeout_ms,
                               zos_job_record_fn rec_fn, zos_job_fn done, void *arg);

/* Forgets the operation: its callback will not run. */
void zos_job_cancel(struct zos_job *job);

#endif

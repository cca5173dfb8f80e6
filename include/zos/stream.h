/* stream.h -- a core0 job's live output (core0-protocol.md §5): the records of
 * stream:<id> decoded, and a reader that drains the list as fast as its link
 * carries it.
 *
 *   core0: RPUSH stream:<id> <record>; LTRIM -1000 -1; EXPIRE 60   (per record)
 *
 *   reader (its own link: BLPOP blocks it)
 *     start, or resumed --> LLEN + N x LPOP, pipelined --all N came--> again, N x 2 (<= 1024)
 *                             ^   |    \--LLEN >= 1000: core0 may have dropped older
 *                       record|   |        records: gap_fn
 *                             |   |a nil among them (N back to 64)
 *                             |   v
 *     BLPOP stream:<id> 1 <--------+   --nil--> again (once told the job ended: end_fn)
 *
 *     every record --> rec_fn; the end marker --> end_fn
 *
 * The reader never waits on its caller: a caller that cannot take records as
 * fast (a slow terminal) keeps them itself, or pauses the reader and lets
 * core0's list (1000 records, 60 s) hold them meanwhile.
 */
#ifndef ZOS_STREAM_H
#define ZOS_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "zos/link.h"

#define ZOS_STREAM_MAX_RECORDS 1000 /* core0 keeps the newest 1000 records of a stream */
#define ZOS_STREAM_TTL_S       60   /* ... for 60 s after the last one */

/* message.meta = level << 16 | flags */
#define ZOS_STREAM_FLAG_STREAMED 0x1
#define ZOS_STREAM_FLAG_END_OK   0x2 /* the end marker: the job succeeded */
#define ZOS_STREAM_FLAG_END_ERR  0x4 /* the end marker: the job failed */

#define ZOS_STREAM_LEVEL_STDOUT 1
#define ZOS_STREAM_LEVEL_STDERR 2
#define ZOS_STREAM_LEVEL_RESULT 20 /* a builtin's end marker carries its JSON result */

/* One record: {"core": 0, "command": "<job id>", "message": {"message": "...",
 * "epoch": <ns>, "meta": <level << 16 | flags>}}.  JOB and TEXT point into
 * JSON, which the record owns (zos_stream_record_clear). */
struct zos_stream_record {
    unsigned long core; /* 0 on the host, else the container id */
    const char *job;    /* "" when absent */
    const char *text;   /* the output chunk: one line, or the last text without a newline */
    size_t len;
    long long epoch_ns; /* nanoseconds since the epoch (to within ~0.3 us: JSON doubles) */
    unsigned level;     /* meta >> 16: 1 stdout, 2 stderr, 20 result, ... (§4.3) */
    unsigned flags;     /* meta & 0xffff: ZOS_STREAM_FLAG_* */
    cJSON *json;
};

/* Decodes the record of LEN bytes at TEXT into *REC (cleared first).  0, or
 * -1 with ERR ("not JSON", "no message.meta", ...) and *REC empty. */
int zos_stream_record_parse(const char *text, size_t len, struct zos_stream_record *rec, char *err,
                            size_t errlen);
/* Frees what a parsed record holds; a cleared or zeroed record is fine. */
void zos_stream_record_clear(struct zos_stream_record *rec);
/* The end marker (flags 0x2 or 0x4): nothing follows it. */
bool zos_stream_record_is_end(const struct zos_stream_record *rec);
/* The end marker of a job that succeeded (0x2). */
bool zos_stream_record_end_ok(const struct zos_stream_record *rec);
/* "stdout", "stderr" or "level<N>" (the kinds ZOS.FOLLOW answers) in BUF; BUF. */
const char *zos_stream_level_name(unsigned level, char *buf, size_t len);

/* ---- the reader ---- */

struct zos_stream_reader;

enum zos_stream_end {
    ZOS_STREAM_END_MARKER, /* the end marker came (and went to rec_fn) */
    ZOS_STREAM_END_QUIET,  /* told the job ended, then the list stayed empty for a slice */
    ZOS_STREAM_END_ERROR,  /* the link failed or the node answered an error: ERR says */
};

struct zos_stream_reader_cbs {
    /* Each record, in order.  REC is valid during the call only. */
    void (*rec_fn)(void *arg, const struct zos_stream_record *rec);
    /* ZOS_STREAM_MAX_RECORDS were waiting: core0 may have dropped records
     * before the next one rec_fn gets (NULL: not wanted). */
    void (*gap_fn)(void *arg);
    /* Once, on a later loop turn than the cause; nothing runs after it. */
    void (*end_fn)(void *arg, enum zos_stream_end how, const char *err);
    /* A value that is not a record (not JSON, no meta) was skipped (NULL: not wanted). */
    void (*bad_fn)(void *arg, const char *err);
};

/* Reads stream:<ID> over LINK (taken: freed with the reader, also when this
 * fails; it should be pinned and used by nobody else).  CBS is copied; ARG is
 * passed to each.  NULL when out of memory. */
struct zos_stream_reader *zos_stream_reader_new(struct event_base *base, struct zos_link *link,
                                                const char *id,
                                                const struct zos_stream_reader_cbs *cbs, void *arg);
/* The job ended (its result arrived): no end marker may ever come (a job
 * that never ran, §3.5), so once the list has been empty for one whole
 * blocking slice started after this call, end_fn gets ZOS_STREAM_END_QUIET.
 * The end marker may still land after the result (Corrections 8): that slice
 * waits for it. */
void zos_stream_reader_job_ended(struct zos_stream_reader *r);
/* While PAUSED no new read is sent (the one in flight completes); records
 * then wait in core0's list.  Resuming reads at once. */
void zos_stream_reader_pause(struct zos_stream_reader *r, bool paused);
/* Records delivered to rec_fn so far. */
unsigned long long zos_stream_reader_records(const struct zos_stream_reader *r);
/* Stops reading; no callback runs after this.  Safe from inside any of the
 * reader's callbacks.  Accepts NULL. */
void zos_stream_reader_free(struct zos_stream_reader *r);

#endif

/* resp.h -- RESP framing: strict request parser, reply scanner, reply writers.
 *
 * Requests (client -> proxy) are parsed here, strictly and with limits, never
 * with hiredis (its reader is lax and refuses inline commands).  The parser
 * works in place on a libevent evbuffer: it never copies payloads, it only
 * records where the request ends and where its first arguments lie, so the
 * proxy can move the raw bytes to a node untouched.
 *
 * Replies (node -> proxy) are only framed: zos_resp_scan() finds where one
 * complete reply ends, at any nesting depth, without copying it.
 */
#ifndef ZOS_RESP_H
#define ZOS_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "zos/zos.h"

/* Offsets are recorded for this many leading arguments of an array request. */
#define ZOS_RESP_KEEP 8

#define ZOS_RESP_DEFAULT_MAX_BULK   (512u * 1024 * 1024) /* as redis proto-max-bulk-len */
#define ZOS_RESP_DEFAULT_MAX_ARGS   (1024u * 1024)
#define ZOS_RESP_DEFAULT_MAX_INLINE (64u * 1024) /* as redis PROTO_INLINE_MAX_SIZE */

struct zos_resp_limits {
    size_t max_bulk;   /* largest bulk string argument, bytes */
    size_t max_args;   /* most arguments in one request */
    size_t max_inline; /* longest inline command line, bytes (EOL excluded) */
};

/* One complete request at the front of an evbuffer (nothing is removed). */
struct zos_resp_req {
    size_t len;                    /* bytes of the whole request, framing included */
    size_t argc;                   /* 0 for an empty inline line or "*0"; caller skips it */
    bool is_inline;                /* inline command: use zos_resp_argv(), offsets unset */
    size_t arg_off[ZOS_RESP_KEEP]; /* array requests: offset of argument i's payload */
    size_t arg_len[ZOS_RESP_KEEP]; /* from the request start, and its length */
};

/* Incremental state: a request split over many reads is scanned once. */
struct zos_resp_parser {
    struct zos_resp_limits lim;
    int state;
    size_t pos;       /* bytes of the current request scanned so far */
    size_t args_left; /* array elements still to come */
    size_t bulk_left; /* bytes of the current bulk payload (+CRLF) still to come */
    size_t line;      /* start of the "*N" / "$N" line being read */
    struct zos_resp_req req;
};

/* Fills LIM with the defaults above. */
void zos_resp_limits_default(struct zos_resp_limits *lim);

/* Prepares P; LIM is copied (NULL means the defaults). */
void zos_resp_parser_init(struct zos_resp_parser *p, const struct zos_resp_limits *lim);

/* Looks for one complete request at the front of IN.
 * ZOS_OK: *REQ describes it; the caller removes req->len bytes from IN before
 *         the next call (the parser is then ready for the next request).
 * ZOS_AGAIN: not complete yet; call again when more bytes arrived (IN unchanged).
 * ZOS_ERR: malformed or over a limit; ERR gets "Protocol error: ..." (the text
 *         redis uses where one exists).  The connection must then be closed. */
int zos_resp_parse(struct zos_resp_parser *p, struct evbuffer *in, struct zos_resp_req *req,
                   char *err, size_t errlen);

/* A request's arguments copied out into one allocation.  argv[i] is
 * NUL-terminated (payloads may also contain NULs: use argvlen). */
struct zos_resp_argv {
    size_t argc;
    char **argv;
    size_t *argvlen;
};

/* Copies the arguments of REQ (at the front of IN, not removed) into OUT;
 * works for array and inline requests.  Free with zos_resp_argv_free(). */
int zos_resp_argv(struct evbuffer *in, const struct zos_resp_req *req, struct zos_resp_argv *out);
void zos_resp_argv_free(struct zos_resp_argv *av);

/* Copies argument I (< ZOS_RESP_KEEP, < argc) of an array request into BUF
 * (NUL-terminated, truncated to buflen-1); returns the argument's full length
 * (0, BUF "", when I is out of range).  Inline requests work too, any I < argc
 * (the line is split each time: use zos_resp_argv() for several arguments). */
size_t zos_resp_arg_copy(struct evbuffer *in, const struct zos_resp_req *req, size_t i, char *buf,
                         size_t buflen);

/* Reply scanner: incremental framing of replies read from a node. */
struct zos_resp_scanner {
    int depth;        /* open aggregates */
    int64_t left[64]; /* elements still expected at each depth */
    size_t pos;       /* bytes of the current reply scanned so far */
    int state;
    size_t bulk_left;
    size_t line; /* start of the line being read */
};

void zos_resp_scanner_init(struct zos_resp_scanner *s);
/* ZOS_OK: the first *LEN bytes of IN are one complete reply (the caller
 * removes them, then calls again); ZOS_AGAIN: incomplete; ZOS_ERR: not RESP
 * (or nested deeper than 64). Accepts RESP2 and RESP3 types. */
int zos_resp_scan(struct zos_resp_scanner *s, struct evbuffer *in, size_t *len);

/* Reply writers.  Error text: a leading "-" is added; CR and LF become spaces. */
void zos_resp_add_status(struct evbuffer *out, const char *s);
void zos_resp_add_error(struct evbuffer *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void zos_resp_add_int(struct evbuffer *out, long long v);
void zos_resp_add_bulk(struct evbuffer *out, const char *s, size_t len);
void zos_resp_add_cstr(struct evbuffer *out, const char *s); /* bulk of strlen(s); NULL: $-1 */
void zos_resp_add_nil(struct evbuffer *out);                 /* $-1 */
void zos_resp_add_array(struct evbuffer *out, long long n);  /* header of n elements */
/* A command as a RESP array of bulk strings (what a node expects). */
void zos_resp_add_command(struct evbuffer *out, size_t argc, const char *const *argv,
                          const size_t *argvlen);

#endif

/* resp.h -- RESP framing: strict request parser, reply scanner, reply writers.
 *
 * Requests (client -> proxy) are parsed here, strictly and with limits, never
 * with hiredis (its reader is lax and refuses inline commands).  The parser
 * works in place on a libevent evbuffer: it never copies payloads, it only
 * records where the request ends and where its first arguments lie, so the
 * proxy can move the raw bytes to a node untouched.
 *
 * Replies (node -> proxy) go through one strict reader with limits, with two
 * front ends: a scanner that frames them for forwarding, and a decoder for
 * every place that looks inside a reply.
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
    bool unauth;       /* the client has not authenticated: redis's "unauthenticated ..." errors */
};

/* Redis's limits for a client that must authenticate and has not yet. */
#define ZOS_RESP_UNAUTH_MAX_BULK 16384
#define ZOS_RESP_UNAUTH_MAX_ARGS 10

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

/* ---- replies (node -> proxy) ----
 *
 * One state machine reads replies, RESP2 and RESP3 (+ - : $ * and _ , # ( = ! % ~ > |):
 * a token reader (one header line, validated, within the limits) and the
 * bookkeeping of open aggregates.  Two front ends share it, so they agree on
 * every input by construction (the fuzzer checks that they do):
 *   - the scanner frames whole replies in an evbuffer in place, skipping
 *     payloads by arithmetic (forwarding: any size, any number of reads);
 *   - the decoder walks one reply in contiguous memory value by value and
 *     gives a typed view of each (no copy: pointers into the memory). */

#define ZOS_RESP_MAX_DEPTH 64 /* hard ceiling of nesting (the default too) */

struct zos_resp_reply_limits {
    size_t max_bulk;     /* longest bulk/verbatim/blob payload and simple line, bytes */
    size_t max_elements; /* most elements of one aggregate (a map's entries count twice) */
    int max_depth;       /* deepest nesting, 1..ZOS_RESP_MAX_DEPTH */
    bool resp2_only;     /* RESP3 types are errors (a link that did not ask for RESP3) */
};

#define ZOS_RESP_DEFAULT_REPLY_BULK     (512u * 1024 * 1024) /* redis proto-max-bulk-len */
#define ZOS_RESP_DEFAULT_REPLY_ELEMENTS 2147483647u          /* redis's multibulk ceiling */

/* Fills LIM with the defaults above and depth ZOS_RESP_MAX_DEPTH. */
void zos_resp_reply_limits_default(struct zos_resp_reply_limits *lim);

/* The state both front ends share.  Treat as opaque. */
struct zos_resp_scanner {
    struct zos_resp_reply_limits lim;
    int depth;                        /* open aggregates */
    int64_t left[ZOS_RESP_MAX_DEPTH]; /* elements still expected at each depth */
    size_t pos;                       /* bytes of the current reply read so far */
    int state;
    size_t bulk_left;
    size_t bulk_start; /* where the current payload starts */
    int bulk_type;
    size_t line;     /* start of the line being read */
    const char *why; /* after ZOS_ERR: what was wrong (a static string) */
};

/* LIM is copied; NULL means the defaults. */
void zos_resp_scanner_init(struct zos_resp_scanner *s, const struct zos_resp_reply_limits *lim);
/* ZOS_OK: the first *LEN bytes of IN are one complete reply (the caller
 * removes them, then calls again); ZOS_AGAIN: incomplete; ZOS_ERR: not RESP,
 * or over a limit (the scanner is then unusable: re-init it). */
int zos_resp_scan(struct zos_resp_scanner *s, struct evbuffer *in, size_t *len);

/* One value of a reply, as the decoder sees it.  Strings point into the
 * decoder's memory (not NUL-terminated); valid while that memory is. */
struct zos_resp_val {
    char type;         /* the RESP type byte: '+' '-' ':' '$' '*' '_' ',' '#' '(' '=' '!' '%' ... */
    bool nil;          /* "$-1", "*-1", "_" */
    long long integer; /* ':' its value, '#' 1 or 0 */
    const char *str;   /* + - , ( $ = ! : the text or payload ("=": with its "txt:") */
    size_t len;
    size_t count; /* aggregates: values that follow as its children ('%' 2 per entry;
                     '|' 2 per entry plus the reply it annotates, its last child) */
    int depth;    /* 0 for the reply itself */
};

/* A cursor over replies in contiguous memory. */
struct zos_resp_reader {
    struct zos_resp_scanner s;
    const char *buf;
    size_t len;
    size_t off; /* where the reply being read starts in BUF */
};

/* Reads BUF[0..LEN) (borrowed); LIM as for the scanner. */
void zos_resp_reader_init(struct zos_resp_reader *r, const char *buf, size_t len,
                          const struct zos_resp_reply_limits *lim);
/* The next value, in pre-order (an aggregate, then its children).
 * ZOS_OK: *V filled; ZOS_AGAIN: the value is not all in BUF yet (nothing
 * consumed: grow r->len over the same memory and call again); ZOS_ERR: not
 * RESP or over a limit. */
int zos_resp_next(struct zos_resp_reader *r, struct zos_resp_val *v);
/* Reads past the rest of the value V (just returned by zos_resp_next): its
 * children, if any.  Same returns as zos_resp_next. */
int zos_resp_skip(struct zos_resp_reader *r, const struct zos_resp_val *v);
/* Where the next value starts in the reader's memory. */
const char *zos_resp_reader_at(const struct zos_resp_reader *r);
/* True when the reply being read is complete (the cursor is between replies). */
bool zos_resp_reader_between(const struct zos_resp_reader *r);

/* The first LEN bytes of REPLY (one whole reply, framed by the scanner) as
 * contiguous memory (evbuffer_pullup: in place when it is one chunk),
 * decoded: *V is the reply
 * itself with any attribute before it skipped; R stays positioned after V's
 * header for reading its children.  ZOS_ERR for anything not one valid
 * reply, or out of memory. */
int zos_resp_reply_open(struct evbuffer *reply, size_t len, struct zos_resp_reader *r,
                        struct zos_resp_val *v);

/* Small questions about one whole reply of LEN bytes at the front of REPLY
 * (nothing is removed). */
/* Its RESP type byte ('+', '-', '*', ...), or 0 when LEN is 0. */
char zos_resp_reply_type(struct evbuffer *reply, size_t len);
/* "+OK". */
bool zos_resp_reply_is_ok(struct evbuffer *reply, size_t len);
/* An error ('-' or '!'): its text (without the '-') into BUF, truncated, NUL-terminated. */
bool zos_resp_reply_error(struct evbuffer *reply, size_t len, char *buf, size_t buflen);
/* An integer reply (':'). */
bool zos_resp_reply_int(struct evbuffer *reply, size_t len, long long *out);
/* A string reply ('$' '+' '=', the latter without its "txt:" format
 * prefix): a malloc'd NUL-terminated copy of it in
 * *OUT (*OUTLEN its length); with PAIR, the second element of a 2-element
 * array is taken ([key, value] of BLPOP).  False for nil, other types, or
 * no memory. */
bool zos_resp_reply_string(struct evbuffer *reply, size_t len, bool pair, char **out,
                           size_t *outlen);
/* An array (or set, or push) of N strings or nils (MGET): malloc'd copies in
 * OUT[0..N), NULL for nil and for anything that is not a string.  False when
 * the reply is not such an aggregate of exactly N values. */
bool zos_resp_reply_strings(struct evbuffer *reply, size_t len, size_t n, char **out);
/* A pub/sub confirmation: an array or push [kind, channel-or-nil, count]
 * whose kind ends in "subscribe" (subscribe, punsubscribe, ssubscribe, ...):
 * KIND gets it in lower case (false if it does not fit), *COUNT the count.
 * Channels may be of any length.  False for a message, a PONG, an error. */
bool zos_resp_reply_pubsub(struct evbuffer *reply, size_t len, char *kind, size_t kindlen,
                           long long *count);

/* Up to OUTLEN-1 bytes of the front of IN in escaped form for logs: printable
 * ASCII as is, \r \n \" \\ and \xHH otherwise; "..." when cut short. */
void zos_resp_escape(struct evbuffer *in, size_t n, char *out, size_t outlen);

/* Reply writers.  Error text: a leading "-" is added; CR and LF become spaces. */
void zos_resp_add_status(struct evbuffer *out, const char *s);
void zos_resp_add_error(struct evbuffer *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void zos_resp_add_int(struct evbuffer *out, long long v);
void zos_resp_add_bulk(struct evbuffer *out, const char *s, size_t len);
void zos_resp_add_cstr(struct evbuffer *out, const char *s); /* bulk of strlen(s); NULL: $-1 */
void zos_resp_add_nil(struct evbuffer *out);                 /* $-1 */
void zos_resp_add_array(struct evbuffer *out, long long n);  /* header of n elements */
/* Writers that follow the client's protocol (RESP3 when R3, else RESP2). */
void zos_resp_add_null(struct evbuffer *out, bool r3);             /* "_" or "$-1" */
void zos_resp_add_map(struct evbuffer *out, long long n, bool r3); /* n pairs: "%n" or "*2n" */
/* Text (INFO, CLIENT LIST): a verbatim string "=len\r\ntxt:..." or a bulk. */
void zos_resp_add_verbatim(struct evbuffer *out, const char *s, size_t len, bool r3);
/* The same for the bytes of TEXT (moved: TEXT is left empty). */
void zos_resp_add_verbatim_buffer(struct evbuffer *out, struct evbuffer *text, bool r3);
/* A push frame header of n elements (RESP3 ">n"; RESP2 has only arrays: "*n"). */
void zos_resp_add_push(struct evbuffer *out, long long n, bool r3);

/* A command as a RESP array of bulk strings (what a node expects). */
void zos_resp_add_command(struct evbuffer *out, size_t argc, const char *const *argv,
                          const size_t *argvlen);

#endif

/* resp.c -- RESP framing: strict request parser, reply scanner, reply writers.
 *
 * Everything reads the evbuffer in place through a small reader (struct rd):
 * the first contiguous chunk of the buffer is searched with memchr and read
 * directly; only what lies beyond it goes through evbuffer_peek() and
 * evbuffer_copyout_from().  Payloads are never copied: a bulk is skipped by
 * arithmetic and only its trailing CRLF is looked at, so a 100 MB argument
 * arriving in 16 KB reads costs O(1) per read.
 *
 * Every decision depends only on the bytes seen, never on where the reads
 * happened to end: a request fed in pieces gives exactly the result (and the
 * error text) it gives when fed at once.  That is why the 64 KB line limits
 * apply even when the end of line is already there.
 */
#include "zos/resp.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HDR_MAX (64u * 1024) /* longest "*N" / "$N" line, as redis PROTO_INLINE_MAX_SIZE */
#define NUM_MAX 20           /* "-9223372036854775808" */

enum { P_START, P_INLINE, P_MBULK, P_BULKHDR, P_BULK, P_FAILED };
enum { STEP = 2, ELEM = 3 }; /* internal step results beside ZOS_OK/ERR/AGAIN */

/* ---- reading an evbuffer in place ---- */

struct rd {
    struct evbuffer *buf;
    const char *mem; /* the first contiguous chunk */
    size_t memlen;
    size_t total;
    struct evbuffer_ptr at; /* slow-path cursor, moved forward relatively */
    bool have_at;
};

static void rd_init(struct rd *r, struct evbuffer *buf)
{
    struct evbuffer_iovec v;

    r->buf = buf;
    r->total = evbuffer_get_length(buf);
    r->mem = "";
    r->memlen = 0;
    r->have_at = false;
    if (r->total > 0 && evbuffer_peek(buf, -1, NULL, &v, 1) > 0) {
        r->mem = v.iov_base;
        r->memlen = v.iov_len < r->total ? v.iov_len : r->total;
    }
}

/* Points the cursor at OFF (< total); forward moves walk only the chains passed. */
static bool rd_seek(struct rd *r, size_t off)
{
    int rc;

    if (r->have_at && (size_t)r->at.pos <= off)
        rc = evbuffer_ptr_set(r->buf, &r->at, off - (size_t)r->at.pos, EVBUFFER_PTR_ADD);
    else
        rc = evbuffer_ptr_set(r->buf, &r->at, off, EVBUFFER_PTR_SET);
    r->have_at = rc == 0;
    return rc == 0;
}

/* Copies N bytes at OFF into DST; false if they are not all there. */
static bool rd_copy(struct rd *r, size_t off, void *dst, size_t n)
{
    if (n == 0)
        return off <= r->total;
    if (off > r->total || r->total - off < n)
        return false;
    if (off + n <= r->memlen) {
        memcpy(dst, r->mem + off, n);
        return true;
    }
    return rd_seek(r, off) && evbuffer_copyout_from(r->buf, &r->at, dst, n) == (ev_ssize_t)n;
}

/* N bytes at OFF, in place when they lie in the first chunk, else copied to TMP. */
static const char *rd_view(struct rd *r, size_t off, size_t n, char *tmp)
{
    if (off + n <= r->memlen)
        return r->mem + off;
    return rd_copy(r, off, tmp, n) ? tmp : NULL;
}

static int rd_byte(struct rd *r, size_t off)
{
    char c;
    const char *p = rd_view(r, off, 1, &c);
    return p != NULL ? (unsigned char)*p : -1;
}

/* Finds the first C in [FROM, TO) (TO is clamped to the data present). */
static bool rd_find(struct rd *r, size_t from, size_t to, char c, size_t *at)
{
    if (to > r->total)
        to = r->total;
    if (from >= to)
        return false;
    if (from < r->memlen) {
        size_t end = to < r->memlen ? to : r->memlen;
        const char *hit = memchr(r->mem + from, c, end - from);
        if (hit != NULL) {
            *at = (size_t)(hit - r->mem);
            return true;
        }
        if (end == to)
            return false;
        from = end;
    }
    if (!rd_seek(r, from))
        return false;

    struct evbuffer_ptr p = r->at;
    struct evbuffer_iovec v[8];
    size_t left = to - from;
    while (left > 0) {
        int n = evbuffer_peek(r->buf, (ev_ssize_t)left, &p, v, 8);
        size_t got = 0;
        if (n <= 0)
            return false;
        for (int i = 0; i < n && i < 8 && got < left; i++) {
            size_t len = v[i].iov_len < left - got ? v[i].iov_len : left - got;
            const char *hit = len > 0 ? memchr(v[i].iov_base, c, len) : NULL;
            if (hit != NULL) {
                *at = from + got + (size_t)(hit - (const char *)v[i].iov_base);
                return true;
            }
            got += len;
        }
        from += got;
        left -= got;
        /* Adding 0 still moves past empty chains, so this always progresses. */
        if (left > 0 && evbuffer_ptr_set(r->buf, &p, got, EVBUFFER_PTR_ADD) != 0)
            return false;
    }
    return false;
}

static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* ---- numbers and inline splitting, as redis's string2ll and sdssplitargs ---- */

/* Decimal digits with an optional '-', no '+', no spaces, no leading zeros, no "-0". */
static bool parse_ll(const char *s, size_t n, long long *out)
{
    unsigned long long v = 0;
    size_t i = 0;
    bool neg = false;

    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (n > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i >= n || s[i] < '1' || s[i] > '9')
        return false;
    for (; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (s[i] < '0' || s[i] > '9' || v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg && v == (unsigned long long)LLONG_MAX + 1)
        *out = LLONG_MIN;
    else if (v > (unsigned long long)LLONG_MAX)
        return false;
    else
        *out = neg ? -(long long)v : (long long)v;
    return true;
}

/* The number in the N bytes at OFF. */
static bool rd_number(struct rd *r, size_t off, size_t n, long long *out)
{
    char tmp[NUM_MAX];
    const char *s;

    if (n == 0 || n > NUM_MAX || (s = rd_view(r, off, n, tmp)) == NULL)
        return false;
    return parse_ll(s, n, out);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The character "\C" stands for inside double quotes. */
static char unescape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'b':
        return '\b';
    case 'a':
        return '\a';
    default:
        return c;
    }
}

/* Writes one character of the current token, when there is somewhere to write. */
#define EMIT(ch)                                                                                   \
    do {                                                                                           \
        if (dst != NULL)                                                                           \
            *dst++ = (ch);                                                                         \
        tlen++;                                                                                    \
    } while (0)

/* Splits the line [S, END) like redis's sdssplitargs(): blanks separate
 * arguments, "double quotes" know \n \r \t \b \a \xHH and \<any>, 'single
 * quotes' know \', and a closing quote must be followed by a blank or the
 * end.  One difference: the line is binary-safe, a NUL byte is an ordinary
 * character (sdssplitargs would stop at it).  With DST NULL it only counts;
 * otherwise it writes the NUL-terminated arguments to DST (which may be S
 * itself: output never overtakes input; it needs END-S+1 bytes) and fills
 * ARGV/ARGVLEN.  Returns argc, or -1 for unbalanced quotes.  Longer than 20
 * lines because it mirrors sdssplitargs() case for case. */
static long split_args(const char *s, const char *end, char *dst, char **argv, size_t *argvlen)
{
    long argc = 0;

    for (;;) {
        while (s < end && is_space(*s))
            s++;
        if (s == end)
            return argc;

        bool inq = false, insq = false, done = false;
        char *start = dst;
        size_t tlen = 0;
        while (!done) {
            if (inq) {
                if (s == end)
                    return -1;
                if (*s == '\\' && end - s >= 4 && s[1] == 'x' && hex_val(s[2]) >= 0 &&
                    hex_val(s[3]) >= 0) {
                    EMIT((char)(hex_val(s[2]) * 16 + hex_val(s[3])));
                    s += 3;
                } else if (*s == '\\' && end - s >= 2) {
                    s++;
                    EMIT(unescape(*s));
                } else if (*s == '"') {
                    if (end - s >= 2 && !is_space(s[1]))
                        return -1;
                    done = true;
                } else {
                    EMIT(*s);
                }
            } else if (insq) {
                if (s == end)
                    return -1;
                if (*s == '\\' && end - s >= 2 && s[1] == '\'') {
                    s++;
                    EMIT('\'');
                } else if (*s == '\'') {
                    if (end - s >= 2 && !is_space(s[1]))
                        return -1;
                    done = true;
                } else {
                    EMIT(*s);
                }
            } else if (s == end) {
                done = true;
            } else {
                switch (*s) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                    done = true;
                    break;
                case '"':
                    inq = true;
                    break;
                case '\'':
                    insq = true;
                    break;
                default:
                    EMIT(*s);
                    break;
                }
            }
            if (s < end)
                s++;
        }
        if (dst != NULL) {
            *dst++ = '\0';
            argv[argc] = start;
            argvlen[argc] = tlen;
        }
        argc++;
    }
}

#undef EMIT

/* ---- request parser ---- */

void zos_resp_limits_default(struct zos_resp_limits *lim)
{
    lim->max_bulk = ZOS_RESP_DEFAULT_MAX_BULK;
    lim->max_args = ZOS_RESP_DEFAULT_MAX_ARGS;
    lim->max_inline = ZOS_RESP_DEFAULT_MAX_INLINE;
    lim->unauth = false;
}

void zos_resp_parser_init(struct zos_resp_parser *p, const struct zos_resp_limits *lim)
{
    memset(p, 0, sizeof(*p));
    if (lim != NULL)
        p->lim = *lim;
    else
        zos_resp_limits_default(&p->lim);
    p->state = P_START;
}

static int fail(struct zos_resp_parser *p, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct zos_resp_parser *p, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    p->state = P_FAILED;
    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ZOS_ERR;
}

/* The inline line [0, LEN) as contiguous memory: in place, in TMP, or malloc'd (*HEAP). */
static const char *line_view(struct rd *r, size_t len, char *tmp, size_t tmplen, char **heap)
{
    *heap = NULL;
    if (len == 0)
        return "";
    if (len <= r->memlen)
        return r->mem;
    if (len > tmplen && (tmp = *heap = malloc(len)) == NULL)
        return NULL;
    return rd_copy(r, 0, tmp, len) ? tmp : NULL;
}

/* An inline command: one line ending at "\n" (a "\r" before it is not part of it). */
static int step_inline(struct zos_resp_parser *p, struct rd *r, char *err, size_t errlen)
{
    size_t max = p->lim.max_inline, nl, len;
    char tmp[512], *heap;

    if (!rd_find(r, p->pos, add_sat(max, 2), '\n', &nl)) {
        /* The line is at least this long whatever comes next. */
        size_t least = r->total - (rd_byte(r, r->total - 1) == '\r');
        if (least > max)
            return fail(p, err, errlen, "Protocol error: too big inline request");
        p->pos = r->total;
        return ZOS_AGAIN;
    }
    len = nl > 0 && rd_byte(r, nl - 1) == '\r' ? nl - 1 : nl;
    if (len > max)
        return fail(p, err, errlen, "Protocol error: too big inline request");

    const char *line = line_view(r, len, tmp, sizeof(tmp), &heap);
    long argc = line != NULL ? split_args(line, line + len, NULL, NULL, NULL) : -2;
    free(heap);
    if (argc == -2)
        return fail(p, err, errlen, "Protocol error: out of memory");
    if (argc < 0)
        return fail(p, err, errlen, "Protocol error: unbalanced quotes in request");
    if ((size_t)argc > p->lim.max_args)
        return fail(p, err, errlen, "Protocol error: invalid multibulk length");
    p->req.is_inline = true;
    p->req.argc = (size_t)argc;
    p->req.len = nl + 1;
    return ZOS_OK;
}

/* The "*N" or "$N" line starting at p->line: STEP with *VAL once it is all there. */
static int read_header(struct zos_resp_parser *p, struct rd *r, long long *val, char *err,
                       size_t errlen)
{
    bool mbulk = p->state == P_MBULK;
    size_t cr;
    int c;

    if (!rd_find(r, p->pos, add_sat(p->line, HDR_MAX + 1), '\r', &cr)) {
        if (r->total - p->line > HDR_MAX)
            return fail(p, err, errlen, "Protocol error: too big %s count string",
                        mbulk ? "mbulk" : "bulk");
        p->pos = r->total;
        return ZOS_AGAIN;
    }
    p->pos = cr;
    if (cr + 1 >= r->total)
        return ZOS_AGAIN;
    if (!mbulk && (c = rd_byte(r, p->line)) != '$')
        return fail(p, err, errlen, "Protocol error: expected '$', got '%c'", c);
    if (rd_byte(r, cr + 1) != '\n' || !rd_number(r, p->line + 1, cr - p->line - 1, val))
        return fail(p, err, errlen, "Protocol error: invalid %s length",
                    mbulk ? "multibulk" : "bulk");
    p->pos = cr + 2;
    return STEP;
}

static int step_mbulk(struct zos_resp_parser *p, struct rd *r, char *err, size_t errlen)
{
    long long n;
    int rc = read_header(p, r, &n, err, errlen);

    if (rc != STEP)
        return rc;
    if (n <= 0) { /* "*0", "*-1": redis skips them; so does the caller */
        p->req.len = p->pos;
        return ZOS_OK;
    }
    if ((unsigned long long)n > p->lim.max_args)
        return fail(p, err, errlen, "Protocol error: invalid multibulk length");
    if (p->lim.unauth && n > ZOS_RESP_UNAUTH_MAX_ARGS)
        return fail(p, err, errlen, "Protocol error: unauthenticated multibulk length");
    p->req.argc = p->args_left = (size_t)n;
    p->line = p->pos;
    p->state = P_BULKHDR;
    return STEP;
}

static int step_bulkhdr(struct zos_resp_parser *p, struct rd *r, char *err, size_t errlen)
{
    long long n;
    int rc = read_header(p, r, &n, err, errlen);

    if (rc != STEP)
        return rc;
    if (n < 0 || (unsigned long long)n > p->lim.max_bulk || (unsigned long long)n > SIZE_MAX - 2)
        return fail(p, err, errlen, "Protocol error: invalid bulk length");
    if (p->lim.unauth && n > ZOS_RESP_UNAUTH_MAX_BULK)
        return fail(p, err, errlen, "Protocol error: unauthenticated bulk length");
    size_t i = p->req.argc - p->args_left;
    if (i < ZOS_RESP_KEEP) {
        p->req.arg_off[i] = p->pos;
        p->req.arg_len[i] = (size_t)n;
    }
    p->bulk_left = (size_t)n + 2;
    p->state = P_BULK;
    return STEP;
}

/* Skips a payload by arithmetic; only its CRLF is read. */
static int step_bulk(struct zos_resp_parser *p, struct rd *r, char *err, size_t errlen)
{
    size_t avail = r->total - p->pos;
    char tmp[2];
    const char *crlf;

    if (avail < p->bulk_left) {
        size_t skip = avail < p->bulk_left - 2 ? avail : p->bulk_left - 2;
        p->pos += skip;
        p->bulk_left -= skip;
        return ZOS_AGAIN;
    }
    p->pos += p->bulk_left;
    p->bulk_left = 0;
    crlf = rd_view(r, p->pos - 2, 2, tmp);
    if (crlf == NULL || crlf[0] != '\r' || crlf[1] != '\n')
        return fail(p, err, errlen, "Protocol error: expected CRLF after bulk");
    if (--p->args_left == 0) {
        p->req.len = p->pos;
        return ZOS_OK;
    }
    p->line = p->pos;
    p->state = P_BULKHDR;
    return STEP;
}

/* "N\r\n" at *PP, N being "0" or up to 18 digits without a leading zero (no overflow). */
static inline bool fast_num(const char **pp, const char *end, size_t *out)
{
    const char *p = *pp, *start = p;
    size_t v;

    if (end - p < 3 || *p < '0' || *p > '9' || (*p == '0' && p[1] != '\r'))
        return false;
    v = (size_t)(*p++ - '0');
    while (p < end && *p >= '0' && *p <= '9' && p - start < 18)
        v = v * 10 + (size_t)(*p++ - '0');
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return false;
    *pp = p + 2;
    *out = v;
    return true;
}

/* The common case: a whole, well-formed array request in the first chunk, read
 * straight from memory.  Anything else (incomplete, malformed, over a limit,
 * unusual numbers) returns false and the general path decides, from the start. */
static bool parse_fast(const struct zos_resp_limits *lim, const char *m, size_t n,
                       struct zos_resp_req *req)
{
    const char *p = m + 1, *end = m + n;
    size_t argc, len, i;

    if (!fast_num(&p, end, &argc) || argc == 0 || argc > lim->max_args ||
        (lim->unauth && argc > ZOS_RESP_UNAUTH_MAX_ARGS))
        return false;
    for (i = 0; i < argc; i++) {
        if (p == end || *p++ != '$' || !fast_num(&p, end, &len) || len > lim->max_bulk ||
            (lim->unauth && len > ZOS_RESP_UNAUTH_MAX_BULK) || (size_t)(end - p) < len + 2 ||
            p[len] != '\r' || p[len + 1] != '\n')
            return false;
        if (i < ZOS_RESP_KEEP) {
            req->arg_off[i] = (size_t)(p - m);
            req->arg_len[i] = len;
        }
        p += len + 2;
    }
    for (; i < ZOS_RESP_KEEP; i++)
        req->arg_off[i] = req->arg_len[i] = 0;
    req->len = (size_t)(p - m);
    req->argc = argc;
    req->is_inline = false;
    return true;
}

int zos_resp_parse(struct zos_resp_parser *p, struct evbuffer *in, struct zos_resp_req *req,
                   char *err, size_t errlen)
{
    struct rd r;
    int rc = STEP;

    rd_init(&r, in);
    if (p->state == P_START && r.memlen > 0 && r.mem[0] == '*' &&
        parse_fast(&p->lim, r.mem, r.memlen, req))
        return ZOS_OK;
    while (rc == STEP) {
        switch (p->state) {
        case P_START:
            if (r.total == 0)
                return ZOS_AGAIN;
            memset(&p->req, 0, sizeof(p->req));
            p->pos = p->line = p->args_left = p->bulk_left = 0;
            p->state = rd_byte(&r, 0) == '*' ? P_MBULK : P_INLINE;
            break;
        case P_INLINE:
            rc = step_inline(p, &r, err, errlen);
            break;
        case P_MBULK:
            rc = step_mbulk(p, &r, err, errlen);
            break;
        case P_BULKHDR:
            rc = step_bulkhdr(p, &r, err, errlen);
            break;
        case P_BULK:
            rc = step_bulk(p, &r, err, errlen);
            break;
        default:
            return fail(p, err, errlen, "Protocol error: parser used after an error");
        }
    }
    if (rc == ZOS_OK) {
        *req = p->req;
        p->state = P_START;
    }
    return rc;
}

/* ---- arguments ---- */

/* One block: argv[argc], argvlen[argc], then DATA bytes. */
static int argv_alloc(struct zos_resp_argv *out, size_t argc, size_t data, char **dstp)
{
    size_t meta = sizeof(char *) + sizeof(size_t);

    if (argc > (SIZE_MAX - data) / meta)
        return ZOS_ERR;
    char *block = malloc(argc * meta + data);
    if (block == NULL)
        return ZOS_ERR;
    out->argc = argc;
    out->argv = (char **)(void *)block;
    out->argvlen = (size_t *)(void *)(block + argc * sizeof(char *));
    *dstp = block + argc * meta;
    return ZOS_OK;
}

static int argv_inline(struct rd *r, const struct zos_resp_req *req, struct zos_resp_argv *out)
{
    size_t nl = req->len - 1, len;
    char *dst;

    if (req->len == 0 || req->len > r->total || rd_byte(r, nl) != '\n')
        return ZOS_ERR;
    len = nl > 0 && rd_byte(r, nl - 1) == '\r' ? nl - 1 : nl;
    if (argv_alloc(out, req->argc, len + 1, &dst) != ZOS_OK)
        return ZOS_ERR;
    /* Split in place: the copied line becomes the arguments. */
    if (!rd_copy(r, 0, dst, len) ||
        split_args(dst, dst + len, dst, out->argv, out->argvlen) != (long)req->argc) {
        zos_resp_argv_free(out);
        return ZOS_ERR;
    }
    return ZOS_OK;
}

/* Offsets come from REQ for the first arguments; past them, the "$N" lines are re-read. */
static int argv_array(struct rd *r, const struct zos_resp_req *req, struct zos_resp_argv *out)
{
    size_t next = 0, a, n, cr;
    char *dst;
    long long v;

    if (req->len > r->total || argv_alloc(out, req->argc, req->len, &dst) != ZOS_OK)
        return ZOS_ERR;
    for (size_t i = 0; i < req->argc; i++) {
        if (i < ZOS_RESP_KEEP) {
            a = req->arg_off[i];
            n = req->arg_len[i];
        } else {
            if (rd_byte(r, next) != '$' || !rd_find(r, next + 1, next + 2 + NUM_MAX, '\r', &cr) ||
                !rd_number(r, next + 1, cr - next - 1, &v) || v < 0)
                goto fail;
            a = cr + 2;
            n = (size_t)v;
        }
        if (a < next || a > req->len || req->len - a < n + 2 || !rd_copy(r, a, dst, n))
            goto fail;
        dst[n] = '\0';
        out->argv[i] = dst;
        out->argvlen[i] = n;
        dst += n + 1;
        next = a + n + 2;
    }
    return ZOS_OK;
fail:
    zos_resp_argv_free(out);
    return ZOS_ERR;
}

int zos_resp_argv(struct evbuffer *in, const struct zos_resp_req *req, struct zos_resp_argv *out)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    if (req->argc == 0)
        return ZOS_OK;
    rd_init(&r, in);
    return req->is_inline ? argv_inline(&r, req, out) : argv_array(&r, req, out);
}

void zos_resp_argv_free(struct zos_resp_argv *av)
{
    if (av == NULL)
        return;
    free(av->argv); /* the one block */
    memset(av, 0, sizeof(*av));
}

size_t zos_resp_arg_copy(struct evbuffer *in, const struct zos_resp_req *req, size_t i, char *buf,
                         size_t buflen)
{
    size_t n = 0, c;
    struct rd r;

    if (buflen > 0)
        buf[0] = '\0';
    if (req->is_inline) { /* rare: split the line */
        struct zos_resp_argv av;
        if (i < req->argc && zos_resp_argv(in, req, &av) == ZOS_OK) {
            n = av.argvlen[i];
            if (buflen > 0) {
                c = n < buflen - 1 ? n : buflen - 1;
                memcpy(buf, av.argv[i], c);
                buf[c] = '\0';
            }
            zos_resp_argv_free(&av);
        }
        return n;
    }
    if (i >= ZOS_RESP_KEEP || i >= req->argc)
        return 0;
    n = req->arg_len[i];
    if (buflen > 0) {
        c = n < buflen - 1 ? n : buflen - 1;
        rd_init(&r, in);
        if (!rd_copy(&r, req->arg_off[i], buf, c))
            return 0;
        buf[c] = '\0';
    }
    return n;
}

/* ---- replies: one token reader, two front ends ----
 *
 * A reply is a tree of values written in pre-order.  tok_read() reads the
 * header line of one value at s->line (incrementally: s->pos remembers how far
 * it looked) and checks it against the type's grammar and the limits.
 * open_or_close() then keeps the stack of aggregates still open.  The scanner
 * skips payloads by arithmetic; the decoder needs them present.  Every
 * decision depends only on the bytes, never on where reads ended.
 */

enum { S_LINE, S_BULK, S_FAILED };

struct tok {
    int type;
    long long num; /* ':' value; payload or element count; -1 nil */
    size_t a, n;   /* the line's content (after the type byte) */
};

void zos_resp_reply_limits_default(struct zos_resp_reply_limits *lim)
{
    lim->max_bulk = ZOS_RESP_DEFAULT_REPLY_BULK;
    lim->max_elements = ZOS_RESP_DEFAULT_REPLY_ELEMENTS;
    lim->max_depth = ZOS_RESP_MAX_DEPTH;
    lim->resp2_only = false;
}

void zos_resp_scanner_init(struct zos_resp_scanner *s, const struct zos_resp_reply_limits *lim)
{
    memset(s, 0, sizeof(*s));
    if (lim != NULL)
        s->lim = *lim;
    else
        zos_resp_reply_limits_default(&s->lim);
    if (s->lim.max_depth < 1 || s->lim.max_depth > ZOS_RESP_MAX_DEPTH)
        s->lim.max_depth = ZOS_RESP_MAX_DEPTH;
    s->state = S_LINE;
}

/* Ready for the next reply (left[] needs no clearing). */
static void scanner_reset(struct zos_resp_scanner *s)
{
    s->depth = 0;
    s->pos = s->line = s->bulk_left = 0;
    s->state = S_LINE;
}

static bool is_num_type(int t)
{
    return t == ':' || t == '$' || t == '!' || t == '=' || t == '*' || t == '%' || t == '~' ||
           t == '>' || t == '|';
}

static bool is_bulk_type(int t)
{
    return t == '$' || t == '!' || t == '=';
}

static bool is_line_type(int t)
{
    return t == '+' || t == '-' || t == ',' || t == '(' || t == '#' || t == '_';
}

/* Whether the bytes [OFF, END) (at most NUM_MAX) could start a number. */
static bool digits_so_far(struct rd *r, size_t off, size_t end)
{
    char tmp[NUM_MAX];
    size_t n = end - off;
    const char *d = n <= NUM_MAX ? rd_view(r, off, n, tmp) : NULL;

    if (d == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((d[i] < '0' || d[i] > '9') && (d[i] != '-' || i > 0))
            return false;
    return true;
}

/* A RESP3 double: "inf", "-inf", "nan", or digits with an optional sign,
 * point and exponent; a big number: digits with an optional '-'. */
static bool number_text(struct rd *r, size_t a, size_t n, bool dbl)
{
    char tmp[64];
    const char *d;
    size_t digits = 0;

    if (n == 0 || n > sizeof(tmp) || (d = rd_view(r, a, n, tmp)) == NULL)
        return false;
    if (dbl && ((n == 3 && (!memcmp(d, "inf", 3) || !memcmp(d, "nan", 3))) ||
                (n == 4 && !memcmp(d, "-inf", 4))))
        return true;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (!(i == 0 && c == '-') &&
                 !(dbl && (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')))
            return false;
    }
    return digits > 0;
}

/* A big number longer than 64 bytes: digits after an optional '-'. */
static bool long_bignum(struct rd *r, size_t a, size_t n)
{
    char tmp[256];
    for (size_t i = 0; i < n; i += sizeof(tmp)) {
        size_t k = n - i < sizeof(tmp) ? n - i : sizeof(tmp);
        if (!rd_copy(r, a + i, tmp, k))
            return false;
        for (size_t j = 0; j < k; j++)
            if ((tmp[j] < '0' || tmp[j] > '9') && !(i + j == 0 && tmp[j] == '-'))
                return false;
    }
    return true;
}

/* The content of a complete line of type T: valid, and within the limits? */
static bool tok_check(const struct zos_resp_scanner *s, struct rd *r, struct tok *t)
{
    size_t at;

    switch (t->type) {
    case '+':
    case '-':
        return !rd_find(r, t->a, t->a + t->n, '\n', &at);
    case ',':
        return number_text(r, t->a, t->n, true);
    case '(':
        return t->n <= 64 ? number_text(r, t->a, t->n, false) : long_bignum(r, t->a, t->n);
    case '#':
        t->num = rd_byte(r, t->a) == 't';
        return t->n == 1 && (t->num || rd_byte(r, t->a) == 'f');
    case '_':
        t->num = -1;
        return t->n == 0;
    }
    if (!rd_number(r, t->a, t->n, &t->num))
        return false;
    if (t->type == ':')
        return true;
    if (t->num < 0) /* nil: RESP2 "$-1" and "*-1" only */
        return t->num == -1 && (t->type == '$' || t->type == '*');
    if (is_bulk_type(t->type))
        return (unsigned long long)t->num <= s->lim.max_bulk &&
               (unsigned long long)t->num <= SIZE_MAX - 2 && (t->type != '=' || t->num >= 4);
    /* Aggregates: a map entry is two elements; an attribute is its entries
     * plus the reply it annotates, so it frames with that reply as one. */
    unsigned long long count = (unsigned long long)t->num;
    if (t->type == '%' || t->type == '|')
        count = count > (SIZE_MAX - 1) / 2 ? SIZE_MAX : 2 * count + (t->type == '|');
    if (count > s->lim.max_elements || (t->type == '|' && count - 1 > s->lim.max_elements))
        return false;
    t->num = (long long)count;
    return true;
}

static int scan_fail(struct zos_resp_scanner *s, const char *why)
{
    s->why = why;
    return ZOS_ERR;
}

static bool is_resp2_type(int t)
{
    return t == '+' || t == '-' || t == ':' || t == '$' || t == '*';
}

/* The header line at s->line, read from s->pos on: ZOS_OK with *T, ZOS_AGAIN
 * (s->pos moved on), or ZOS_ERR. */
static int tok_read(struct zos_resp_scanner *s, struct rd *r, struct tok *t)
{
    int type = rd_byte(r, s->line);
    bool num = is_num_type(type);
    size_t cr, to = num ? s->line + 2 + NUM_MAX : add_sat(s->line, s->lim.max_bulk + 2);

    if (type == -1)
        return ZOS_AGAIN;
    if (!num && !is_line_type(type))
        return scan_fail(s, "not a RESP type byte");
    if (s->lim.resp2_only && !is_resp2_type(type))
        return scan_fail(s, "a RESP3 type on a RESP2 connection");
    /* A line fails as soon as it cannot be valid, whatever comes next, so
     * that the answer does not depend on where the reads ended. */
    bool found = rd_find(r, s->pos, to, '\r', &cr);
    if (!found && r->total >= to)
        return scan_fail(s, num ? "malformed length" : "line longer than the limit");
    if (num && !digits_so_far(r, s->line + 1, found ? cr : r->total))
        return scan_fail(s, "malformed length");
    if (!found) {
        s->pos = r->total;
        return ZOS_AGAIN;
    }
    s->pos = cr;
    if (cr + 1 >= r->total)
        return ZOS_AGAIN;
    if (rd_byte(r, cr + 1) != '\n')
        return scan_fail(s, "CR without LF");
    t->type = type;
    t->a = s->line + 1;
    t->n = cr - s->line - 1;
    t->num = 0;
    if (!tok_check(s, r, t))
        return scan_fail(s, is_num_type(type) && type != ':' ? "bad or over-limit length"
                                                             : "malformed value");
    s->pos = cr + 2;
    return ZOS_OK;
}

/* After token T: opens an aggregate (STEP), or completes a value (ELEM);
 * ZOS_ERR past the depth limit.  Bulk payloads are not handled here. */
static int open_agg(struct zos_resp_scanner *s, const struct tok *t)
{
    if (is_bulk_type(t->type) && t->num >= 0)
        return STEP;
    if (!is_num_type(t->type) || t->type == ':' || t->num <= 0)
        return ELEM;
    if (s->depth >= s->lim.max_depth)
        return scan_fail(s, "nested deeper than the limit");
    s->left[s->depth++] = t->num;
    return STEP;
}

/* A value is complete: closes every aggregate it completes.  True when the
 * whole reply is. */
static bool close_elem(struct zos_resp_scanner *s)
{
    while (s->depth > 0 && --s->left[s->depth - 1] == 0)
        s->depth--;
    return s->depth == 0;
}

/* The payload's CRLF, and a verbatim string's "xxx:" prefix. */
static bool payload_ok(struct zos_resp_scanner *s, struct rd *r)
{
    char tmp[2];
    const char *crlf = rd_view(r, s->pos - 2, 2, tmp);

    if (crlf == NULL || crlf[0] != '\r' || crlf[1] != '\n')
        return false;
    return s->bulk_type != '=' || rd_byte(r, s->bulk_start + 3) == ':';
}

static int scan_bulk(struct zos_resp_scanner *s, struct rd *r)
{
    size_t avail = r->total - s->pos;

    if (avail < s->bulk_left) {
        size_t skip = avail < s->bulk_left - 2 ? avail : s->bulk_left - 2;
        s->pos += skip;
        s->bulk_left -= skip;
        return ZOS_AGAIN;
    }
    s->pos += s->bulk_left;
    s->bulk_left = 0;
    return payload_ok(s, r) ? ELEM : scan_fail(s, "bad end of a payload");
}

static void start_payload(struct zos_resp_scanner *s, const struct tok *t)
{
    s->bulk_type = t->type;
    s->bulk_start = s->pos;
    s->bulk_left = (size_t)t->num + 2;
    s->state = S_BULK;
}

int zos_resp_scan(struct zos_resp_scanner *s, struct evbuffer *in, size_t *len)
{
    struct rd r;
    struct tok t;

    rd_init(&r, in);
    for (;;) {
        int rc;
        if (s->state == S_LINE) {
            rc = tok_read(s, &r, &t);
            if (rc == ZOS_OK && (rc = open_agg(s, &t)) == STEP && is_bulk_type(t.type))
                start_payload(s, &t);
        } else {
            rc = s->state == S_BULK ? scan_bulk(s, &r) : scan_fail(s, "used after an error");
        }
        if (rc == ZOS_AGAIN)
            return rc;
        if (rc == ZOS_ERR) {
            s->state = S_FAILED;
            return rc;
        }
        if (rc == ELEM) {
            if (close_elem(s)) {
                *len = s->pos;
                scanner_reset(s);
                return ZOS_OK;
            }
            s->state = S_LINE;
        }
        if (s->state == S_LINE) /* a STEP into a payload keeps S_BULK */
            s->line = s->pos;
    }
}

/* ---- the decoder ---- */

static void rd_mem(struct rd *r, const char *buf, size_t len)
{
    r->buf = NULL;
    r->mem = len > 0 ? buf : "";
    r->memlen = r->total = len;
    r->have_at = false;
}

void zos_resp_reader_init(struct zos_resp_reader *r, const char *buf, size_t len,
                          const struct zos_resp_reply_limits *lim)
{
    zos_resp_scanner_init(&r->s, lim);
    r->buf = buf;
    r->len = len;
    r->off = 0;
}

const char *zos_resp_reader_at(const struct zos_resp_reader *r)
{
    return r->buf + r->off + r->s.pos;
}

bool zos_resp_reader_between(const struct zos_resp_reader *r)
{
    return r->s.state == S_LINE && r->s.depth == 0 && r->s.pos == 0;
}

int zos_resp_next(struct zos_resp_reader *r, struct zos_resp_val *v)
{
    struct zos_resp_scanner *s = &r->s, saved = *s;
    struct rd rd;
    struct tok t;
    int rc;

    if (s->state != S_LINE)
        return ZOS_ERR;
    /* Positions are relative to the reply's start, as the scanner's are. */
    rd_mem(&rd, r->buf + r->off, r->len - r->off);
    memset(v, 0, sizeof(*v));
    v->depth = s->depth;
    if ((rc = tok_read(s, &rd, &t)) != ZOS_OK)
        goto out;
    v->type = (char)t.type;
    if ((rc = open_agg(s, &t)) == ZOS_ERR)
        goto out;
    if (is_bulk_type(t.type) && t.num >= 0) {
        start_payload(s, &t);
        if (rd.total - s->pos < s->bulk_left) {
            rc = ZOS_AGAIN;
            goto out;
        }
        if ((rc = scan_bulk(s, &rd)) != ELEM)
            goto out;
        v->str = r->buf + r->off + s->bulk_start;
        v->len = (size_t)t.num;
    } else if (is_line_type(t.type)) {
        v->str = r->buf + r->off + t.a;
        v->len = t.n;
        v->integer = t.num;
        v->nil = t.type == '_';
    } else if (t.type == ':') {
        v->integer = t.num;
    } else {
        v->nil = t.num < 0;
        v->count = t.num > 0 ? (size_t)t.num : 0;
    }
    s->state = S_LINE;
    if (rc == ELEM && close_elem(s)) {
        r->off += s->pos;
        scanner_reset(s);
    } else {
        s->line = s->pos;
    }
    return ZOS_OK;
out:
    if (rc == ZOS_AGAIN)
        *s = saved; /* nothing consumed: the same value is read again */
    else
        s->state = S_FAILED;
    return rc;
}

int zos_resp_skip(struct zos_resp_reader *r, const struct zos_resp_val *v)
{
    struct zos_resp_val c;
    for (size_t i = 0; i < v->count; i++) {
        int rc = zos_resp_next(r, &c);
        if (rc == ZOS_OK)
            rc = zos_resp_skip(r, &c);
        if (rc != ZOS_OK)
            return rc;
    }
    return ZOS_OK;
}

/* *V is the value an attribute annotates: its entries are skipped. */
static int past_attributes(struct zos_resp_reader *r, struct zos_resp_val *v)
{
    while (v->type == '|') {
        struct zos_resp_val e;
        for (size_t i = 0; i + 1 < v->count; i++)
            if (zos_resp_next(r, &e) != ZOS_OK || zos_resp_skip(r, &e) != ZOS_OK)
                return ZOS_ERR;
        if (zos_resp_next(r, v) != ZOS_OK)
            return ZOS_ERR;
    }
    return ZOS_OK;
}

int zos_resp_reply_open(struct evbuffer *reply, size_t len, struct zos_resp_reader *r,
                        struct zos_resp_val *v)
{
    const char *mem = len > 0 ? (const char *)evbuffer_pullup(reply, (ev_ssize_t)len) : NULL;

    if (mem == NULL || len > evbuffer_get_length(reply))
        return ZOS_ERR;
    zos_resp_reader_init(r, mem, len, NULL);
    if (zos_resp_next(r, v) != ZOS_OK || past_attributes(r, v) != ZOS_OK)
        return ZOS_ERR;
    return ZOS_OK;
}

char zos_resp_reply_type(struct evbuffer *reply, size_t len)
{
    char t = 0;
    if (len > 0 && evbuffer_copyout(reply, &t, 1) != 1)
        t = 0;
    return t;
}

bool zos_resp_reply_is_ok(struct evbuffer *reply, size_t len)
{
    struct zos_resp_reader r;
    struct zos_resp_val v;
    return zos_resp_reply_open(reply, len, &r, &v) == ZOS_OK && v.type == '+' && v.len == 2 &&
           memcmp(v.str, "OK", 2) == 0;
}

bool zos_resp_reply_error(struct evbuffer *reply, size_t len, char *buf, size_t buflen)
{
    struct zos_resp_reader r;
    struct zos_resp_val v;
    if (zos_resp_reply_open(reply, len, &r, &v) != ZOS_OK || (v.type != '-' && v.type != '!'))
        return false;
    if (buflen > 0) {
        size_t n = v.len < buflen - 1 ? v.len : buflen - 1;
        for (size_t i = 0; i < n; i++) /* a blob error may hold line breaks */
            buf[i] = v.str[i] == '\r' || v.str[i] == '\n' ? ' ' : v.str[i];
        buf[n] = '\0';
    }
    return true;
}

bool zos_resp_reply_int(struct evbuffer *reply, size_t len, long long *out)
{
    struct zos_resp_reader r;
    struct zos_resp_val v;
    if (zos_resp_reply_open(reply, len, &r, &v) != ZOS_OK || v.type != ':')
        return false;
    *out = v.integer;
    return true;
}

static bool is_string(const struct zos_resp_val *v)
{
    return !v->nil && (v->type == '$' || v->type == '+' || v->type == '=');
}

/* A copy of a string value; a verbatim string without its "txt:" prefix. */
static char *dup_string(const struct zos_resp_val *v, size_t *len)
{
    size_t skip = v->type == '=' ? 4 : 0, n = v->len - skip;
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, v->str + skip, n);
        s[n] = '\0';
    }
    if (len != NULL)
        *len = n;
    return s;
}

static bool is_array(const struct zos_resp_val *v)
{
    return !v->nil && (v->type == '*' || v->type == '~' || v->type == '>');
}

bool zos_resp_reply_string(struct evbuffer *reply, size_t len, bool pair, char **out,
                           size_t *outlen)
{
    struct zos_resp_reader r;
    struct zos_resp_val v;

    *out = NULL;
    if (zos_resp_reply_open(reply, len, &r, &v) != ZOS_OK)
        return false;
    if (pair) {
        if (!is_array(&v) || v.count != 2 || zos_resp_next(&r, &v) != ZOS_OK ||
            zos_resp_skip(&r, &v) != ZOS_OK || zos_resp_next(&r, &v) != ZOS_OK)
            return false;
    }
    return is_string(&v) && (*out = dup_string(&v, outlen)) != NULL;
}

bool zos_resp_reply_strings(struct evbuffer *reply, size_t len, size_t n, char **out)
{
    struct zos_resp_reader r;
    struct zos_resp_val v, e;
    size_t i;

    for (i = 0; i < n; i++)
        out[i] = NULL;
    if (zos_resp_reply_open(reply, len, &r, &v) != ZOS_OK || !is_array(&v) || v.count != n)
        return false;
    for (i = 0; i < n; i++) {
        if (zos_resp_next(&r, &e) != ZOS_OK || zos_resp_skip(&r, &e) != ZOS_OK)
            break;
        if (is_string(&e) && (out[i] = dup_string(&e, NULL)) == NULL)
            break;
    }
    if (i == n)
        return true;
    for (i = 0; i < n; i++) {
        free(out[i]);
        out[i] = NULL;
    }
    return false;
}

bool zos_resp_reply_pubsub(struct evbuffer *reply, size_t len, char *kind, size_t kindlen,
                           long long *count)
{
    static const char suffix[] = "subscribe";
    struct zos_resp_reader r;
    struct zos_resp_val v, k, ch, n;
    size_t sl = sizeof(suffix) - 1;

    char head[64];
    size_t hn = len < sizeof(head) ? len : sizeof(head);

    /* The kind from the first bytes: a message (any size) is never pulled up. */
    if (evbuffer_copyout(reply, head, hn) != (ev_ssize_t)hn)
        return false;
    zos_resp_reader_init(&r, head, hn, NULL);
    if (zos_resp_next(&r, &v) != ZOS_OK || !is_array(&v) || v.count != 3 ||
        zos_resp_next(&r, &k) != ZOS_OK || !is_string(&k) || k.len < sl ||
        strncasecmp(k.str + k.len - sl, suffix, sl) != 0)
        return false;
    if (zos_resp_reply_open(reply, len, &r, &v) != ZOS_OK || !is_array(&v) || v.count != 3 ||
        zos_resp_next(&r, &k) != ZOS_OK || !is_string(&k) || k.len >= kindlen)
        return false;
    if (zos_resp_next(&r, &ch) != ZOS_OK || zos_resp_skip(&r, &ch) != ZOS_OK ||
        (!is_string(&ch) && !ch.nil) || zos_resp_next(&r, &n) != ZOS_OK || n.type != ':')
        return false;
    for (size_t i = 0; i < k.len; i++)
        kind[i] = (char)tolower((unsigned char)k.str[i]);
    kind[k.len] = '\0';
    *count = n.integer;
    return true;
}

void zos_resp_escape(struct evbuffer *in, size_t n, char *out, size_t outlen)
{
    char chunk[64];
    size_t o = 0, i = 0, take = n < sizeof(chunk) ? n : sizeof(chunk);
    ev_ssize_t got = take > 0 ? evbuffer_copyout(in, chunk, take) : 0;

    if (outlen == 0)
        return;
    for (; got > 0 && i < (size_t)got; i++) {
        unsigned char c = (unsigned char)chunk[i];
        char e[8];
        if (c == '\r' || c == '\n' || c == '"' || c == '\\')
            snprintf(e, sizeof(e), "\\%c", c == '\r' ? 'r' : c == '\n' ? 'n' : (char)c);
        else if (c < 0x20 || c >= 0x7f)
            snprintf(e, sizeof(e), "\\x%02x", c);
        else
            snprintf(e, sizeof(e), "%c", c);
        size_t el = strlen(e);
        if (o + el + 4 > outlen) /* keep room for "..." */
            break;
        memcpy(out + o, e, el);
        o += el;
    }
    if (i < n && o + 4 <= outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* ---- reply writers ---- */

/* TYPE, S with CR and LF made spaces, CRLF: one copy into one reserved extent. */
static void add_line(struct evbuffer *out, char type, const char *s, size_t n)
{
    struct evbuffer_iovec v;

    if (n > SIZE_MAX - 3 || evbuffer_reserve_space(out, (ev_ssize_t)(n + 3), &v, 1) < 1)
        return;
    char *d = v.iov_base;
    d[0] = type;
    for (size_t i = 0; i < n; i++)
        d[i + 1] = s[i] == '\r' || s[i] == '\n' ? ' ' : s[i];
    d[n + 1] = '\r';
    d[n + 2] = '\n';
    v.iov_len = n + 3;
    evbuffer_commit_space(out, &v, 1);
}

/* TYPE, V in decimal, CRLF into BUF (at least 24 bytes); returns the length. */
static size_t fmt_num(char *buf, char type, long long v)
{
    char digits[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    buf[len++] = type;
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = digits[--n];
    buf[len++] = '\r';
    buf[len++] = '\n';
    return len;
}

void zos_resp_add_status(struct evbuffer *out, const char *s)
{
    add_line(out, '+', s, strlen(s));
}

void zos_resp_add_error(struct evbuffer *out, const char *fmt, ...)
{
    char buf[512], *heap = NULL;
    va_list ap, ap2;
    int n;

    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n >= (int)sizeof(buf) && (heap = malloc((size_t)n + 1)) != NULL)
        vsnprintf(heap, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (heap != NULL)
        add_line(out, '-', heap, (size_t)n);
    else
        add_line(out, '-', buf, strlen(buf)); /* truncated if malloc failed */
    free(heap);
}

void zos_resp_add_int(struct evbuffer *out, long long v)
{
    char buf[32];
    evbuffer_add(out, buf, fmt_num(buf, ':', v));
}

void zos_resp_add_bulk(struct evbuffer *out, const char *s, size_t len)
{
    char hdr[32];
    size_t h = fmt_num(hdr, '$', (long long)len);
    struct evbuffer_iovec v;

    if (len <= 4096 && evbuffer_reserve_space(out, (ev_ssize_t)(h + len + 2), &v, 1) == 1) {
        char *d = v.iov_base;
        memcpy(d, hdr, h);
        if (len > 0)
            memcpy(d + h, s, len);
        memcpy(d + h + len, "\r\n", 2);
        v.iov_len = h + len + 2;
        evbuffer_commit_space(out, &v, 1);
        return;
    }
    evbuffer_add(out, hdr, h);
    evbuffer_add(out, s, len);
    evbuffer_add(out, "\r\n", 2);
}

void zos_resp_add_cstr(struct evbuffer *out, const char *s)
{
    if (s == NULL)
        zos_resp_add_nil(out);
    else
        zos_resp_add_bulk(out, s, strlen(s));
}

void zos_resp_add_nil(struct evbuffer *out)
{
    evbuffer_add(out, "$-1\r\n", 5);
}

void zos_resp_add_array(struct evbuffer *out, long long n)
{
    char buf[32];
    evbuffer_add(out, buf, fmt_num(buf, '*', n));
}

void zos_resp_add_command(struct evbuffer *out, size_t argc, const char *const *argv,
                          const size_t *argvlen)
{
    zos_resp_add_array(out, (long long)argc);
    for (size_t i = 0; i < argc; i++)
        zos_resp_add_bulk(out, argv[i], argvlen != NULL ? argvlen[i] : strlen(argv[i]));
}

void zos_resp_add_null(struct evbuffer *out, bool r3)
{
    if (r3)
        evbuffer_add(out, "_\r\n", 3);
    else
        zos_resp_add_nil(out);
}

void zos_resp_add_map(struct evbuffer *out, long long n, bool r3)
{
    char buf[32];
    evbuffer_add(out, buf, fmt_num(buf, r3 ? '%' : '*', r3 ? n : 2 * n));
}

static void verbatim_header(struct evbuffer *out, size_t len, bool r3)
{
    char hdr[32];
    evbuffer_add(out, hdr, fmt_num(hdr, r3 ? '=' : '$', (long long)len + (r3 ? 4 : 0)));
    if (r3)
        evbuffer_add(out, "txt:", 4);
}

void zos_resp_add_verbatim(struct evbuffer *out, const char *s, size_t len, bool r3)
{
    verbatim_header(out, len, r3);
    evbuffer_add(out, s, len);
    evbuffer_add(out, "\r\n", 2);
}

void zos_resp_add_verbatim_buffer(struct evbuffer *out, struct evbuffer *text, bool r3)
{
    verbatim_header(out, evbuffer_get_length(text), r3);
    evbuffer_add_buffer(out, text);
    evbuffer_add(out, "\r\n", 2);
}

void zos_resp_add_push(struct evbuffer *out, long long n, bool r3)
{
    char buf[32];
    evbuffer_add(out, buf, fmt_num(buf, r3 ? '>' : '*', n));
}

/* fuzz_resp.c -- libFuzzer target of the request parser and the reply scanner.
 *
 * Input: byte 0 picks the limits, the piece sizes and whether the stream is
 * built (see build_stream), byte 1 seeds the cuts, the rest is the stream.
 * Checked for each of parser and scanner:
 *   - fed at once (one chain) and fed in pieces (one chain per piece, each an
 *     exactly sized allocation so ASan sees reads past a chain), the results
 *     are the same: request lengths, argv, error text, what is left over;
 *   - they agree with a plain reference written here over contiguous memory
 *     (the inline splitter against a port of redis's sdssplitargs());
 *   - each request's offsets agree with zos_resp_argv() and zos_resp_arg_copy(),
 *     and re-encoding an array request with zos_resp_add_command() gives back
 *     its exact bytes (the parser accepts canonical RESP only), which the reply
 *     scanner then frames as one reply.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "zos/resp.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_MAX (64u * 1024)

/* ---- the byte log (fuzz_util.h): numbers ---- */

static void log_num(struct log *l, size_t v)
{
    log_add(l, &v, sizeof(v));
}

/* ---- feeding ---- */

struct cuts {
    uint32_t rnd;
    size_t max; /* largest piece */
};

/* The next piece's size; *RUN: whether to parse after it (several pieces may
 * arrive between two calls: the chains then searched are not all new). */
static size_t next_piece(struct cuts *c, bool *run)
{
    c->rnd ^= c->rnd << 13;
    c->rnd ^= c->rnd >> 17;
    c->rnd ^= c->rnd << 5;
    *run = (c->rnd >> 28) != 0;
    return 1 + c->rnd % c->max;
}

/* ---- reference request parser: contiguous memory, no state ---- */

/* "0" or -?[1-9][0-9]* within long long, checked another way than resp.c does. */
static bool ref_number(const char *s, size_t n, long long *v)
{
    char buf[32], *end;
    size_t i = n > 0 && s[0] == '-';

    if (n == 0 || n >= sizeof(buf) || (n == 1 && s[0] == '0' ? false : i >= n || s[i] == '0'))
        return false;
    for (size_t k = i; k < n; k++)
        if (s[k] < '0' || s[k] > '9')
            return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *v = strtoll(buf, &end, 10);
    return errno == 0 && end == buf + n;
}

static bool ref_isspace(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool ref_ishex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int ref_hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* redis's sdssplitargs() over a C string, logging each argument; -1 on bad quotes. */
static long ref_splitargs(const char *line, struct log *out)
{
    const char *p = line;
    long argc = 0;
    struct log cur = {0};

    while (1) {
        while (*p && ref_isspace(*p))
            p++;
        if (!*p)
            break;
        int inq = 0, insq = 0, done = 0;
        cur.n = 0;
        while (!done) {
            if (inq) {
                if (*p == '\\' && *(p + 1) == 'x' && ref_ishex(*(p + 2)) && ref_ishex(*(p + 3))) {
                    char byte = (char)(ref_hexval(*(p + 2)) * 16 + ref_hexval(*(p + 3)));
                    log_add(&cur, &byte, 1);
                    p += 3;
                } else if (*p == '\\' && *(p + 1)) {
                    char c;
                    p++;
                    switch (*p) {
                    case 'n':
                        c = '\n';
                        break;
                    case 'r':
                        c = '\r';
                        break;
                    case 't':
                        c = '\t';
                        break;
                    case 'b':
                        c = '\b';
                        break;
                    case 'a':
                        c = '\a';
                        break;
                    default:
                        c = *p;
                        break;
                    }
                    log_add(&cur, &c, 1);
                } else if (*p == '"') {
                    if (*(p + 1) && !ref_isspace(*(p + 1)))
                        goto err;
                    done = 1;
                } else if (!*p) {
                    goto err;
                } else {
                    log_add(&cur, p, 1);
                }
            } else if (insq) {
                if (*p == '\\' && *(p + 1) == '\'') {
                    p++;
                    log_add(&cur, "'", 1);
                } else if (*p == '\'') {
                    if (*(p + 1) && !ref_isspace(*(p + 1)))
                        goto err;
                    done = 1;
                } else if (!*p) {
                    goto err;
                } else {
                    log_add(&cur, p, 1);
                }
            } else {
                switch (*p) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                case '\0':
                    done = 1;
                    break;
                case '"':
                    inq = 1;
                    break;
                case '\'':
                    insq = 1;
                    break;
                default:
                    log_add(&cur, p, 1);
                    break;
                }
            }
            if (*p)
                p++;
        }
        log_num(out, cur.n);
        log_add(out, cur.s, cur.n);
        argc++;
    }
    free(cur.s);
    return argc;
err:
    free(cur.s);
    return -1;
}

enum { REF_OK, REF_AGAIN, REF_ERR, REF_UNSURE };

struct ref_req {
    size_t len, argc;
    struct log args; /* inline: length-prefixed arguments from ref_splitargs */
    const char *err;
    char errbuf[64];
};

/* A "*N"/"$N" line at D[0..N): REF_OK with *V and *END (after the CRLF), or not. */
static int ref_header(const char *d, size_t n, bool mbulk, long long *v, size_t *end,
                      struct ref_req *r)
{
    const char *cr = memchr(d, '\r', n < HDR_MAX + 1 ? n : HDR_MAX + 1);

    if (cr == NULL) {
        if (n > HDR_MAX) {
            r->err = mbulk ? "Protocol error: too big mbulk count string"
                           : "Protocol error: too big bulk count string";
            return REF_ERR;
        }
        return REF_AGAIN;
    }
    size_t at = (size_t)(cr - d);
    if (at + 1 >= n)
        return REF_AGAIN;
    if (!mbulk && d[0] != '$') {
        snprintf(r->errbuf, sizeof(r->errbuf), "Protocol error: expected '$', got '%c'", d[0]);
        r->err = r->errbuf;
        return REF_ERR;
    }
    if (d[at + 1] != '\n' || !ref_number(d + 1, at - 1, v)) {
        r->err = mbulk ? "Protocol error: invalid multibulk length"
                       : "Protocol error: invalid bulk length";
        return REF_ERR;
    }
    *end = at + 2;
    return REF_OK;
}

static int ref_inline(const char *d, size_t n, const struct zos_resp_limits *lim, struct ref_req *r)
{
    size_t nl;

    for (nl = 0; nl < n && d[nl] != '\n'; nl++)
        ;
    size_t len = nl > 0 && d[nl - 1] == '\r' ? nl - 1 : nl;
    if (len > lim->max_inline) {
        r->err = "Protocol error: too big inline request";
        return REF_ERR;
    }
    if (nl == n)
        return REF_AGAIN;
    if (memchr(d, '\0', len) != NULL)
        return REF_UNSURE; /* sdssplitargs stops at NUL; resp.c does not, on purpose */
    char *line = strndup(d, len);
    long argc = ref_splitargs(line, &r->args);
    free(line);
    if (argc < 0) {
        r->err = "Protocol error: unbalanced quotes in request";
        return REF_ERR;
    }
    if ((size_t)argc > lim->max_args) {
        r->err = "Protocol error: invalid multibulk length";
        return REF_ERR;
    }
    r->len = nl + 1;
    r->argc = (size_t)argc;
    return REF_OK;
}

static int ref_parse(const char *d, size_t n, const struct zos_resp_limits *lim, struct ref_req *r)
{
    long long v;
    size_t at = 0, end;
    int rc;

    if (n == 0)
        return REF_AGAIN;
    if (d[0] != '*')
        return ref_inline(d, n, lim, r);
    if ((rc = ref_header(d, n, true, &v, &end, r)) != REF_OK)
        return rc;
    at = end;
    if (v <= 0) {
        r->len = at;
        r->argc = 0;
        return REF_OK;
    }
    if ((unsigned long long)v > lim->max_args) {
        r->err = "Protocol error: invalid multibulk length";
        return REF_ERR;
    }
    r->argc = (size_t)v;
    for (size_t i = 0; i < r->argc; i++) {
        if ((rc = ref_header(d + at, n - at, false, &v, &end, r)) != REF_OK)
            return rc;
        if (v < 0 || (unsigned long long)v > lim->max_bulk) {
            r->err = "Protocol error: invalid bulk length";
            return REF_ERR;
        }
        at += end;
        if (n - at < (size_t)v + 2)
            return REF_AGAIN;
        if (d[at + (size_t)v] != '\r' || d[at + (size_t)v + 1] != '\n') {
            r->err = "Protocol error: expected CRLF after bulk";
            return REF_ERR;
        }
        at += (size_t)v + 2;
    }
    r->len = at;
    return REF_OK;
}

/* ---- reference reply scanner: recursive, at the default reply limits ---- */

#define REF_MAX_BULK     (512u * 1024 * 1024)
#define REF_MAX_ELEMENTS 2147483647

/* A RESP3 double: inf, -inf, nan, or up to 64 of [0-9.eE+-] with a digit;
 * a big number: digits after an optional '-'. */
static bool ref_numtext(const char *s, size_t len, bool dbl)
{
    size_t digits = 0;

    if (dbl && ((len == 3 && (memcmp(s, "inf", 3) == 0 || memcmp(s, "nan", 3) == 0)) ||
                (len == 4 && memcmp(s, "-inf", 4) == 0)))
        return true;
    if (dbl && len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (!(i == 0 && s[i] == '-') && !(dbl && strchr(".eE+-", s[i]) != NULL && s[i]))
            return false;
    }
    return digits > 0;
}

static bool num_type(char t)
{
    return strchr(":$!=*%~>|", t) != NULL && t != '\0';
}

static int ref_reply(const char *d, size_t n, size_t *pos, int depth)
{
    size_t p = *pos;
    long long v;

    if (p >= n)
        return REF_AGAIN;
    char t = d[p];
    if (t == '\0' || strchr("+-:$*_,#(!=%~>|", t) == NULL)
        return REF_ERR;
    size_t c = p + 1;
    if (num_type(t)) {
        for (; c < n && d[c] != '\r'; c++)
            if (c - p > 20 || !((d[c] >= '0' && d[c] <= '9') || (d[c] == '-' && c == p + 1)))
                return REF_ERR;
    } else {
        while (c < n && d[c] != '\r')
            c++;
    }
    if (c + 1 >= n)
        return REF_AGAIN;
    if (d[c + 1] != '\n')
        return REF_ERR;
    const char *s = d + p + 1;
    size_t len = c - p - 1;
    *pos = c + 2;
    switch (t) {
    case '+':
    case '-':
        return memchr(s, '\n', len) ? REF_ERR : REF_OK;
    case ',':
    case '(':
        return ref_numtext(s, len, t == ',') ? REF_OK : REF_ERR;
    case '#':
        return len == 1 && (s[0] == 't' || s[0] == 'f') ? REF_OK : REF_ERR;
    case '_':
        return len == 0 ? REF_OK : REF_ERR;
    }
    if (!ref_number(s, len, &v))
        return REF_ERR;
    if (t == ':' || (v == -1 && (t == '$' || t == '*')))
        return REF_OK;
    if (v < 0)
        return REF_ERR;
    if (t == '$' || t == '!' || t == '=') {
        if (v > REF_MAX_BULK || (t == '=' && v < 4))
            return REF_ERR;
        if (n - *pos < (size_t)v + 2)
            return REF_AGAIN;
        const char *payload = d + *pos;
        *pos += (size_t)v + 2;
        if (d[*pos - 2] != '\r' || d[*pos - 1] != '\n' || (t == '=' && payload[3] != ':'))
            return REF_ERR;
        return REF_OK;
    }
    if (v > (INT64_MAX - 1) / 2)
        return REF_ERR;
    long long count = t == '%' ? 2 * v : t == '|' ? 2 * v + 1 : v;
    if (count > REF_MAX_ELEMENTS)
        return REF_ERR;
    if (count > 0 && depth >= 64)
        return REF_ERR;
    for (long long i = 0; i < count; i++) {
        int rc = ref_reply(d, n, pos, depth + 1);
        if (rc != REF_OK)
            return rc;
    }
    return REF_OK;
}

/* ---- the parser under test ---- */

/* Checks one parsed request against its bytes; logs it. */
static void check_req(struct evbuffer *b, const struct zos_resp_req *req,
                      const struct zos_resp_limits *lim, struct log *out)
{
    struct zos_resp_argv av;
    char small[5];
    size_t prev_end = 0;

    CHECK(req->len > 0 && req->len <= evbuffer_get_length(b));
    CHECK(zos_resp_argv(b, req, &av) == ZOS_OK);
    CHECK(av.argc == req->argc && req->argc <= lim->max_args);
    log_num(out, req->len);
    log_num(out, req->argc);
    log_num(out, req->is_inline);
    for (size_t i = 0; i < av.argc; i++) {
        CHECK(av.argv[i][av.argvlen[i]] == '\0');
        log_num(out, av.argvlen[i]);
        log_add(out, av.argv[i], av.argvlen[i]);
        if (i < ZOS_RESP_KEEP) {
            CHECK(zos_resp_arg_copy(b, req, i, small, sizeof(small)) == av.argvlen[i]);
            size_t c = av.argvlen[i] < 4 ? av.argvlen[i] : 4;
            CHECK(memcmp(small, av.argv[i], c) == 0 && small[c] == '\0');
        }
        if (req->is_inline || i >= ZOS_RESP_KEEP)
            continue;
        CHECK(req->arg_len[i] == av.argvlen[i] && req->arg_len[i] <= lim->max_bulk);
        CHECK(req->arg_off[i] > prev_end && req->arg_off[i] + req->arg_len[i] + 2 <= req->len);
        prev_end = req->arg_off[i] + req->arg_len[i];
        struct evbuffer_ptr p;
        char *copy = malloc(req->arg_len[i] + 1);
        CHECK(evbuffer_ptr_set(b, &p, req->arg_off[i], EVBUFFER_PTR_SET) == 0);
        CHECK(evbuffer_copyout_from(b, &p, copy, req->arg_len[i]) == (ev_ssize_t)req->arg_len[i]);
        CHECK(memcmp(copy, av.argv[i], req->arg_len[i]) == 0);
        free(copy);
    }

    /* Re-encoded, an array request is its own bytes, and one reply to the scanner;
     * an inline one parses back to the same arguments. */
    struct evbuffer *enc = evbuffer_new();
    zos_resp_add_command(enc, av.argc, (const char *const *)av.argv, av.argvlen);
    if (!req->is_inline && req->argc > 0) {
        char *raw = malloc(req->len);
        CHECK(evbuffer_copyout(b, raw, req->len) == (ev_ssize_t)req->len);
        CHECK(evbuffer_get_length(enc) == req->len);
        CHECK(memcmp(evbuffer_pullup(enc, -1), raw, req->len) == 0);
        free(raw);
        struct zos_resp_scanner s;
        size_t len;
        zos_resp_scanner_init(&s, NULL);
        CHECK(zos_resp_scan(&s, enc, &len) == ZOS_OK && len == req->len);
    } else if (req->argc > 0) {
        struct zos_resp_parser p;
        struct zos_resp_req back;
        struct zos_resp_argv av2;
        char err[128];
        size_t n = evbuffer_get_length(enc);
        zos_resp_parser_init(&p, NULL);
        CHECK(zos_resp_parse(&p, enc, &back, err, sizeof(err)) == ZOS_OK && back.len == n);
        CHECK(back.argc == av.argc && zos_resp_argv(enc, &back, &av2) == ZOS_OK);
        for (size_t i = 0; i < av.argc; i++)
            CHECK(av2.argvlen[i] == av.argvlen[i] &&
                  memcmp(av2.argv[i], av.argv[i], av.argvlen[i]) == 0);
        zos_resp_argv_free(&av2);
    }
    evbuffer_free(enc);
    zos_resp_argv_free(&av);
}

/* Parses what B holds; with REF set, compares each step with the reference. */
static bool run_parser(struct zos_resp_parser *p, struct evbuffer *b,
                       const struct zos_resp_limits *lim, struct log *out, const char *ref,
                       size_t *refpos, size_t refn)
{
    struct zos_resp_req req;
    char err[128];

    for (;;) {
        int rc = zos_resp_parse(p, b, &req, err, sizeof(err));
        struct ref_req rr = {0};
        int want = ref != NULL ? ref_parse(ref + *refpos, refn - *refpos, lim, &rr) : REF_UNSURE;
        if (want == REF_UNSURE)
            ref = NULL;
        if (rc == ZOS_AGAIN) {
            CHECK(ref == NULL || want == REF_AGAIN);
            free(rr.args.s);
            return true;
        }
        if (rc == ZOS_ERR) {
            CHECK(strncmp(err, "Protocol error: ", 16) == 0);
            CHECK(ref == NULL || (want == REF_ERR && strcmp(err, rr.err) == 0));
            log_add(out, "ERR", 3);
            log_add(out, err, strlen(err));
            free(rr.args.s);
            return false;
        }
        CHECK(rc == ZOS_OK);
        if (ref != NULL) {
            CHECK(want == REF_OK && rr.len == req.len && rr.argc == req.argc);
            CHECK(req.is_inline == (ref[*refpos] != '*'));
            size_t mark = out->n;
            check_req(b, &req, lim, out);
            if (req.is_inline) { /* the same arguments as sdssplitargs */
                size_t skip = 3 * sizeof(size_t);
                CHECK(out->n - mark - skip == rr.args.n);
                CHECK(rr.args.n == 0 || memcmp(out->s + mark + skip, rr.args.s, rr.args.n) == 0);
            }
            *refpos += req.len;
        } else {
            check_req(b, &req, lim, out);
        }
        free(rr.args.s);
        CHECK(evbuffer_drain(b, req.len) == 0);
    }
}

static void fuzz_parser(const char *d, size_t n, const struct zos_resp_limits *lim,
                        struct cuts cuts)
{
    struct zos_resp_parser p;
    struct log whole = {0}, split = {0};
    struct evbuffer *b = evbuffer_new();
    size_t refpos = 0;

    zos_resp_parser_init(&p, lim);
    evbuffer_add(b, d, n);
    if (run_parser(&p, b, lim, &whole, d, &refpos, n))
        log_num(&whole, evbuffer_get_length(b));
    evbuffer_free(b);

    b = evbuffer_new();
    zos_resp_parser_init(&p, lim);
    bool going = true;
    for (size_t at = 0; at < n && going;) {
        bool run;
        size_t k = next_piece(&cuts, &run);
        k = k < n - at ? k : n - at;
        add_piece(b, d + at, k);
        at += k;
        if (run || at == n)
            going = run_parser(&p, b, lim, &split, NULL, NULL, 0);
    }
    if (going)
        log_num(&split, evbuffer_get_length(b));
    evbuffer_free(b);

    CHECK(whole.n == split.n && (whole.n == 0 || memcmp(whole.s, split.s, whole.n) == 0));
    free(whole.s);
    free(split.s);
}

/* ---- the scanner under test ---- */

static bool run_scanner(struct zos_resp_scanner *s, struct evbuffer *b, struct log *out,
                        const char *ref, size_t *refpos, size_t refn)
{
    size_t len;

    for (;;) {
        int rc = zos_resp_scan(s, b, &len);
        size_t end = ref != NULL ? *refpos : 0;
        int want = ref != NULL ? ref_reply(ref, refn, &end, 0) : REF_UNSURE;
        if (rc == ZOS_AGAIN) {
            CHECK(ref == NULL || want == REF_AGAIN);
            return true;
        }
        if (rc == ZOS_ERR) {
            CHECK(ref == NULL || want == REF_ERR);
            log_add(out, "ERR", 3);
            return false;
        }
        CHECK(rc == ZOS_OK && len > 0 && len <= evbuffer_get_length(b));
        CHECK(ref == NULL || (want == REF_OK && end - *refpos == len));
        if (ref != NULL)
            *refpos = end;
        log_num(out, len);
        CHECK(evbuffer_drain(b, len) == 0);
    }
}

static void fuzz_scanner(const char *d, size_t n, struct cuts cuts)
{
    struct zos_resp_scanner s;
    struct log whole = {0}, split = {0};
    struct evbuffer *b = evbuffer_new();
    size_t refpos = 0;

    zos_resp_scanner_init(&s, NULL);
    evbuffer_add(b, d, n);
    if (run_scanner(&s, b, &whole, d, &refpos, n))
        log_num(&whole, evbuffer_get_length(b));
    evbuffer_free(b);

    b = evbuffer_new();
    zos_resp_scanner_init(&s, NULL);
    bool going = true;
    for (size_t at = 0; at < n && going;) {
        bool run;
        size_t k = next_piece(&cuts, &run);
        k = k < n - at ? k : n - at;
        add_piece(b, d + at, k);
        at += k;
        if (run || at == n)
            going = run_scanner(&s, b, &split, NULL, NULL, 0);
    }
    if (going)
        log_num(&split, evbuffer_get_length(b));
    evbuffer_free(b);

    CHECK(whole.n == split.n && (whole.n == 0 || memcmp(whole.s, split.s, whole.n) == 0));
    free(whole.s);
    free(split.s);
}

/* Each line of D becomes an array request of its space-separated words, except
 * lines starting with '!', kept as they are: valid requests of any shape, at and
 * over the limits, are then common, mixed with inline commands and garbage. */
static char *build_stream(const char *d, size_t n, size_t *outn)
{
    struct evbuffer *b = evbuffer_new();
    const char *argv[64];
    size_t argvlen[64];

    while (n > 0) {
        const char *nl = memchr(d, '\n', n);
        size_t len = nl != NULL ? (size_t)(nl - d) : n, argc = 0;
        if (len > 0 && d[0] == '!') {
            evbuffer_add(b, d + 1, len - 1 + (nl != NULL));
        } else {
            for (size_t i = 0; i < len && argc < 64;) {
                size_t j = i;
                while (j < len && d[j] != ' ')
                    j++;
                argv[argc] = d + i;
                argvlen[argc++] = j - i;
                i = j + 1;
            }
            zos_resp_add_command(b, argc, argv, argvlen);
        }
        d += len + (nl != NULL);
        n -= len + (nl != NULL);
    }
    *outn = evbuffer_get_length(b);
    char *out = malloc(*outn + 1);
    CHECK(out != NULL && evbuffer_remove(b, out, *outn) == (int)*outn);
    evbuffer_free(b);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t piece_max[] = {1, 2, 3, 5, 8, 16, 64, 1024};
    struct zos_resp_limits lim;
    struct cuts cuts;

    if (size < 2)
        return 0;
    zos_resp_limits_default(&lim);
    if (data[0] & 1) { /* small limits, so that fuzzing reaches them */
        lim.max_bulk = 16;
        lim.max_args = 4;
        lim.max_inline = 24;
    }
    cuts.max = piece_max[(data[0] >> 1) & 7];
    cuts.rnd = 0x9e3779b9u ^ (uint32_t)data[1] * 2654435761u ^ (uint32_t)size;
    const char *d = (const char *)data + 2;
    size_t n = size - 2;
    char *built = NULL;
    if (data[0] & 0x10)
        d = built = build_stream(d, n, &n);
    fuzz_parser(d, n, &lim, cuts);
    fuzz_scanner(d, n, cuts);
    free(built);
    return 0;
}

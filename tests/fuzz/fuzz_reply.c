/* fuzz_reply.c -- libFuzzer target of the reply reader: scanner, decoder, reply helpers.
 *
 * Input: byte 0 picks the limits (RESP2 only, small bulk, elements, depth),
 * the piece sizes and whether LFs become CRLFs; byte 1 the small limits'
 * values; byte 2 the depth and the seed of the cuts; the rest is a stream of
 * replies.  The scanner and the decoder share one state machine; this checks
 * that each front end uses it the same way whatever the input and the reads:
 *   - the scanner fed at once and fed in pieces (one exactly sized chain per
 *     piece, so ASan sees a read past a chain) frames the same replies and
 *     stops at the same one, for the same reason;
 *   - the decoder, over exactly sized contiguous memory, walking every value
 *     with zos_resp_next() and walking with zos_resp_skip() over some
 *     aggregates, finds those replies and that stop too;
 *   - the decoder fed from nothing, one piece more at each ZOS_AGAIN (the
 *     bytes past its length poisoned), consumes nothing on ZOS_AGAIN and
 *     gives the same values;
 *   - every value is well formed: its depth is the nesting the walk counts,
 *     its text lies in the reply, its sizes are within the limits;
 *   - for each complete reply, every helper answers what its values say, a
 *     reply cut by one byte makes every helper say no, and zos_resp_escape()
 *     writes a NUL-terminated escaped prefix.
 * Any disagreement aborts.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "zos/resp.h"

#include "fuzz_util.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n)   ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- what a front end made of the stream ---- */

enum { END_AGAIN, END_ERR };

struct frames {
    size_t *len; /* each complete reply's length */
    size_t n, cap;
    int end;         /* END_AGAIN or END_ERR */
    size_t left;     /* END_AGAIN: bytes of the unfinished reply */
    const char *why; /* END_ERR: the reason */
};

static void frames_add(struct frames *f, size_t len)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->len = realloc(f->len, f->cap * sizeof(*f->len));
        CHECK(f->len != NULL);
    }
    f->len[f->n++] = len;
}

static void frames_same(const struct frames *a, const struct frames *b)
{
    CHECK(a->n == b->n);
    CHECK(a->n == 0 || memcmp(a->len, b->len, a->n * sizeof(*a->len)) == 0);
    CHECK(a->end == b->end);
    if (a->end == END_AGAIN)
        CHECK(a->left == b->left);
    else
        CHECK(a->why != NULL && b->why != NULL && strcmp(a->why, b->why) == 0);
}

/* One decoded value, with its text as an offset into the stream. */
struct val {
    char type;
    bool nil;
    long long integer;
    bool has_str;
    size_t off, len;
    size_t count;
    int depth;
};

struct vals {
    struct val *v;
    size_t n, cap;
    size_t *end; /* index past each complete reply's last value */
    size_t nend, endcap;
};

static void vals_add(struct vals *vs, const struct val *v)
{
    if (vs->n == vs->cap) {
        vs->cap = vs->cap ? 2 * vs->cap : 64;
        vs->v = realloc(vs->v, vs->cap * sizeof(*vs->v));
        CHECK(vs->v != NULL);
    }
    vs->v[vs->n++] = *v;
}

/* ---- feeding ---- */

struct cuts {
    uint32_t rnd;
    size_t max; /* largest piece */
};

static uint32_t next_rnd(struct cuts *c)
{
    c->rnd ^= c->rnd << 13;
    c->rnd ^= c->rnd >> 17;
    c->rnd ^= c->rnd << 5;
    return c->rnd;
}

/* The next piece's size, at least MIN; *RUN: whether to scan after it.  (A
 * search past the first chain walks the chains from the first one: pieces of
 * at least 1/128 of the input keep each run linear.) */
static size_t next_piece(struct cuts *c, bool *run, size_t min)
{
    uint32_t r = next_rnd(c);
    size_t k = 1 + r % c->max;
    if (run != NULL)
        *run = (r >> 28) != 0;
    return k > min ? k : min;
}

/* ---- the scanner ---- */

static void scan_all(struct zos_resp_scanner *s, struct evbuffer *b, struct frames *f, bool *done)
{
    size_t len;

    while (!*done) {
        int rc = zos_resp_scan(s, b, &len);
        if (rc == ZOS_AGAIN)
            return;
        if (rc == ZOS_ERR) {
            f->end = END_ERR;
            f->why = s->why;
            *done = true;
            return;
        }
        CHECK(rc == ZOS_OK && len > 0 && len <= evbuffer_get_length(b));
        frames_add(f, len);
        CHECK(evbuffer_drain(b, len) == 0);
    }
}

static void scan_stream(const struct zos_resp_reply_limits *lim, const char *d, size_t n,
                        struct cuts *cuts, struct frames *f)
{
    struct zos_resp_scanner s;
    struct evbuffer *b = evbuffer_new();
    bool done = false;

    CHECK(b != NULL);
    zos_resp_scanner_init(&s, lim);
    if (cuts == NULL) {
        add_piece(b, d, n);
        scan_all(&s, b, f, &done);
    }
    for (size_t at = 0; cuts != NULL && at < n && !done;) {
        bool run;
        size_t k = next_piece(cuts, &run, n / 128);
        k = k < n - at ? k : n - at;
        add_piece(b, d + at, k);
        at += k;
        if (run || at == n)
            scan_all(&s, b, f, &done);
    }
    if (!done) {
        f->end = END_AGAIN;
        f->left = evbuffer_get_length(b);
    }
    evbuffer_free(b);
}

/* ---- the decoder ---- */

static bool is_agg_type(char t)
{
    return t == '*' || t == '%' || t == '~' || t == '>' || t == '|';
}

static bool is_text_type(char t)
{
    return t == '+' || t == '-' || t == ',' || t == '(' || t == '$' || t == '=' || t == '!';
}

static bool is_bulk_type(char t)
{
    return t == '$' || t == '=' || t == '!';
}

static int effective_depth(const struct zos_resp_reply_limits *lim)
{
    return lim->max_depth < 1 || lim->max_depth > ZOS_RESP_MAX_DEPTH ? ZOS_RESP_MAX_DEPTH
                                                                     : lim->max_depth;
}

/* The nesting the walk counts: elements still expected at each level. */
struct nest {
    size_t left[ZOS_RESP_MAX_DEPTH + 1];
    int depth;
};

/* V (just read at nesting N) is well formed; N moves past it. */
static void check_val(const struct zos_resp_reply_limits *lim, const char *mem, size_t memlen,
                      size_t reply_start, const struct zos_resp_val *v, struct nest *nest)
{
    CHECK(v->depth == nest->depth);
    CHECK(v->type != 0 && strchr("+-:$*_,#(=!%~>|", v->type) != NULL);
    if (lim->resp2_only)
        CHECK(strchr("+-:$*", v->type) != NULL);
    if (v->nil)
        CHECK(v->type == '$' || v->type == '*' || v->type == '_');
    if (v->type == '#')
        CHECK(v->integer == 0 || v->integer == 1);
    if (is_text_type(v->type) && !v->nil) {
        CHECK(v->str != NULL && v->str >= mem + reply_start && v->str <= mem + memlen);
        CHECK(v->len <= (size_t)(mem + memlen - v->str) && v->len <= lim->max_bulk);
        if (v->type == '=')
            CHECK(v->len >= 4 && v->str[3] == ':');
        if (!is_bulk_type(v->type))
            CHECK(memchr(v->str, '\r', v->len) == NULL && memchr(v->str, '\n', v->len) == NULL);
    }
    if (is_agg_type(v->type)) {
        CHECK(v->type != '%' || v->count % 2 == 0);
        CHECK(v->type != '|' || v->count % 2 == 1);
        CHECK(v->count - (v->type == '|') <= lim->max_elements);
    } else {
        CHECK(v->count == 0);
    }
    if (v->count > 0) {
        CHECK(nest->depth < effective_depth(lim));
        nest->left[nest->depth++] = v->count;
    } else {
        while (nest->depth > 0 && --nest->left[nest->depth - 1] == 0)
            nest->depth--;
    }
}

/* The reader's state, field by field (it has padding). */
static bool same_reader(const struct zos_resp_reader *a, const struct zos_resp_reader *b)
{
    if (a->buf != b->buf || a->len != b->len || a->off != b->off || a->s.state != b->s.state ||
        a->s.pos != b->s.pos || a->s.line != b->s.line || a->s.depth != b->s.depth ||
        a->s.bulk_left != b->s.bulk_left || a->s.bulk_start != b->s.bulk_start ||
        a->s.bulk_type != b->s.bulk_type)
        return false;
    for (int i = 0; i < a->s.depth && i < ZOS_RESP_MAX_DEPTH; i++)
        if (a->s.left[i] != b->s.left[i])
            return false;
    return true;
}

/* Every value in pre-order with zos_resp_next().  With GROW, the reader starts
 * with nothing and gets one piece more of MEM (N bytes, the rest poisoned) at
 * each ZOS_AGAIN.  Values into VS (NULL: compared with WANT instead). */
static void decode_stream(const struct zos_resp_reply_limits *lim, char *mem, size_t n,
                          struct cuts *grow, struct frames *f, struct vals *vs,
                          const struct vals *want)
{
    struct zos_resp_reader r;
    struct zos_resp_val v;
    struct nest nest = {.depth = 0};
    size_t start = 0, count = 0;

    zos_resp_reader_init(&r, mem, grow != NULL ? 0 : n, lim);
    if (grow != NULL)
        ASAN_POISON_MEMORY_REGION(mem, n);
    for (;;) {
        struct zos_resp_reader before = r;
        const char *at = zos_resp_reader_at(&r);
        int rc = zos_resp_next(&r, &v);
        if (rc == ZOS_AGAIN) {
            CHECK(same_reader(&r, &before));
            if (grow != NULL && r.len < n) {
                size_t k = next_piece(grow, NULL, 1);
                k = k < n - r.len ? k : n - r.len;
                ASAN_UNPOISON_MEMORY_REGION(mem + r.len, k);
                r.len += k;
                continue;
            }
            f->end = END_AGAIN;
            f->left = r.len - r.off;
            break;
        }
        if (rc == ZOS_ERR) {
            f->end = END_ERR;
            f->why = r.s.why;
            CHECK(!zos_resp_reader_between(&r) && zos_resp_next(&r, &v) == ZOS_ERR);
            break;
        }
        CHECK(rc == ZOS_OK && *at == v.type);
        check_val(lim, mem, r.len, start, &v, &nest);
        struct val rec = {v.type, v.nil, v.integer, v.str != NULL && is_text_type(v.type),
                          0,      v.len, v.count,   v.depth};
        if (rec.has_str)
            rec.off = (size_t)(v.str - mem);
        if (vs != NULL) {
            vals_add(vs, &rec);
        } else {
            CHECK(count < want->n);
            const struct val *w = &want->v[count];
            CHECK(w->type == rec.type && w->nil == rec.nil && w->integer == rec.integer);
            CHECK(w->has_str == rec.has_str && w->off == rec.off && w->len == rec.len);
            CHECK(w->count == rec.count && w->depth == rec.depth);
        }
        count++;
        CHECK(zos_resp_reader_between(&r) == (nest.depth == 0));
        if (nest.depth == 0) {
            CHECK(r.off > start && r.s.pos == 0);
            frames_add(f, r.off - start);
            if (vs != NULL) {
                if (vs->nend == vs->endcap) {
                    vs->endcap = vs->endcap ? 2 * vs->endcap : 16;
                    vs->end = realloc(vs->end, vs->endcap * sizeof(*vs->end));
                    CHECK(vs->end != NULL);
                }
                vs->end[vs->nend++] = count;
            }
            start = r.off;
        }
    }
    if (grow != NULL)
        ASAN_UNPOISON_MEMORY_REGION(mem, n);
    CHECK(want == NULL || count == want->n);
}

/* Walks again, skipping the children of some aggregates with zos_resp_skip(). */
static void skim_stream(const struct zos_resp_reply_limits *lim, const char *mem, size_t n,
                        struct cuts *cuts, struct frames *f)
{
    struct zos_resp_reader r;
    struct zos_resp_val v;
    size_t start = 0;

    zos_resp_reader_init(&r, mem, n, lim);
    for (;;) {
        int rc = zos_resp_next(&r, &v);
        if (rc == ZOS_OK && v.count > 0 && (next_rnd(cuts) & 1))
            rc = zos_resp_skip(&r, &v);
        if (rc == ZOS_AGAIN) {
            f->end = END_AGAIN;
            f->left = n - r.off;
            return;
        }
        if (rc == ZOS_ERR) {
            f->end = END_ERR;
            f->why = r.s.why;
            return;
        }
        if (zos_resp_reader_between(&r)) {
            frames_add(f, r.off - start);
            start = r.off;
        }
    }
}

/* ---- the helpers, against the values ---- */

/* Index past the value at I and all its descendants. */
static size_t subtree_end(const struct val *v, size_t i)
{
    size_t j = i + 1;
    for (size_t c = 0; c < v[i].count; c++)
        j = subtree_end(v, j);
    return j;
}

static bool val_is_string(const struct val *v)
{
    return !v->nil && (v->type == '$' || v->type == '+' || v->type == '=');
}

static bool val_is_array(const struct val *v)
{
    return !v->nil && (v->type == '*' || v->type == '~' || v->type == '>');
}

static bool same_text(const char *mem, const struct val *v, const char *s, size_t len)
{
    return v->len == len && (len == 0 || memcmp(mem + v->off, s, len) == 0);
}

/* What the string helpers copy: a verbatim string without its "txt:". */
static bool same_string(const char *mem, const struct val *v, const char *s, size_t len)
{
    size_t skip = v->type == '=' ? 4 : 0;
    return v->len - skip == len && (len == 0 || memcmp(mem + v->off + skip, s, len) == 0) &&
           s[len] == '\0';
}

/* The reply's first LEN bytes, then some of what followed it, in up to
 * three pieces cut where CUTS says. */
static struct evbuffer *reply_buf(const char *p, size_t len, size_t after, struct cuts *cuts)
{
    struct evbuffer *b = evbuffer_new();
    size_t n = len + after, a = next_rnd(cuts) % (n + 1), z = next_rnd(cuts) % (n + 1);

    CHECK(b != NULL);
    if (a > z) {
        size_t t = a;
        a = z;
        z = t;
    }
    add_piece(b, p, a);
    add_piece(b, p + a, z - a);
    add_piece(b, p + z, n - z);
    return b;
}

/* Reverses zos_resp_escape(): true if OUT is the escaped form of a prefix of P. */
static bool unescapes_to_prefix(const char *out, size_t outn, const char *p, size_t n)
{
    size_t i = 0;
    for (size_t o = 0; o < outn; i++) {
        unsigned char c;
        if (out[o] != '\\') {
            c = (unsigned char)out[o++];
            if (c < 0x20 || c >= 0x7f || c == '"')
                return false;
        } else if (o + 1 < outn && strchr("rn\"\\", out[o + 1]) != NULL) {
            char e = out[o + 1];
            c = e == 'r' ? '\r' : e == 'n' ? '\n' : (unsigned char)e;
            o += 2;
        } else if (o + 3 < outn && out[o + 1] == 'x' && isxdigit((unsigned char)out[o + 2]) &&
                   isxdigit((unsigned char)out[o + 3])) {
            char hex[3] = {out[o + 2], out[o + 3], 0};
            c = (unsigned char)strtoul(hex, NULL, 16);
            o += 4;
        } else {
            return false;
        }
        if (i >= n || (unsigned char)p[i] != c)
            return false;
    }
    return true;
}

/* Into a buffer of 72 bytes (as link.c) and of a size picked by CUTS. */
static void check_escape(struct evbuffer *b, const char *p, size_t len, struct cuts *cuts)
{
    static const size_t outlens[] = {0, 1, 4, 5, 9, 16, 100, 300};
    char out[301];

    for (size_t k = 0; k < 2; k++) {
        size_t ol = k == 0 ? 72 : outlens[next_rnd(cuts) % 8];
        memset(out, '#', sizeof(out));
        zos_resp_escape(b, len, out, ol);
        CHECK(out[ol] == '#'); /* nothing written past OUTLEN */
        if (ol == 0)
            continue;
        size_t on = strnlen(out, ol);
        CHECK(on < ol);
        if (unescapes_to_prefix(out, on, p, len))
            continue;
        CHECK(on >= 3 && memcmp(out + on - 3, "...", 3) == 0);
        CHECK(unescapes_to_prefix(out, on - 3, p, len));
    }
}

/* Every helper on the reply P[0..LEN) whose values are V[0..NV). */
static void check_helpers(const char *mem, const char *p, size_t len, size_t after,
                          const struct val *v, size_t nv, struct cuts *cuts)
{
    struct evbuffer *b = reply_buf(p, len, after, cuts);
    char buf[64], kind[32], *s, *strs[5];
    size_t slen, m = 0;
    long long n;

    CHECK(zos_resp_reply_type(b, len) == p[0] && zos_resp_reply_type(b, 0) == 0);
    while (v[m].type == '|') { /* the reply an attribute annotates is its last child */
        size_t i = m + 1;
        for (size_t c = 0; c + 1 < v[m].count; c++)
            i = subtree_end(v, i);
        m = i;
    }
    CHECK(m < nv);
    const struct val *top = &v[m];

    bool ok = top->type == '+' && same_text(mem, top, "OK", 2);
    CHECK(zos_resp_reply_is_ok(b, len) == ok);

    memset(buf, '#', sizeof(buf));
    bool err = zos_resp_reply_error(b, len, buf, sizeof(buf));
    CHECK(err == (top->type == '-' || top->type == '!'));
    if (err) {
        size_t k = top->len < sizeof(buf) - 1 ? top->len : sizeof(buf) - 1;
        for (size_t i = 0; i < k; i++) {
            char c = mem[top->off + i];
            CHECK(buf[i] == (c == '\r' || c == '\n' ? ' ' : c));
        }
        CHECK(buf[k] == '\0');
    }

    CHECK(zos_resp_reply_int(b, len, &n) == (top->type == ':'));
    CHECK(top->type != ':' || n == top->integer);

    bool str = zos_resp_reply_string(b, len, false, &s, &slen);
    CHECK(str == val_is_string(top));
    CHECK(str ? same_string(mem, top, s, slen) : s == NULL);
    free(s);

    const struct val *second = NULL;
    if (val_is_array(top) && top->count == 2)
        second = &v[subtree_end(v, m + 1)];
    str = zos_resp_reply_string(b, len, true, &s, &slen);
    CHECK(str == (second != NULL && val_is_string(second)));
    CHECK(str ? same_string(mem, second, s, slen) : s == NULL);
    free(s);

    for (size_t want = 0; want <= 4; want++) {
        strs[want] = (char *)b; /* past N: must stay untouched */
        bool all = zos_resp_reply_strings(b, len, want, strs);
        CHECK(all == (val_is_array(top) && top->count == want));
        CHECK(strs[want] == (char *)b);
        for (size_t i = 0, at = m + 1; i < want; i++) {
            if (!all) {
                CHECK(strs[i] == NULL);
                continue;
            }
            CHECK((strs[i] != NULL) == val_is_string(&v[at]));
            CHECK(strs[i] == NULL ||
                  same_string(mem, &v[at], strs[i], v[at].len - 4 * (v[at].type == '=')));
            free(strs[i]);
            at = subtree_end(v, at);
        }
    }

    /* A confirmation [kind ending in "subscribe", channel or nil, count].  With
     * an attribute before it, only called (links speak RESP2). */
    bool conf = false;
    if (v[0].type == '|') {
        zos_resp_reply_pubsub(b, len, kind, sizeof(kind), &n);
    } else if (val_is_array(&v[0]) && v[0].count == 3 && val_is_string(&v[1])) {
        const struct val *k = &v[1], *ch = &v[2], *cnt = &v[subtree_end(v, 2)];
        conf = k->len >= 9 && k->len < sizeof(kind) &&
               strncasecmp(mem + k->off + k->len - 9, "subscribe", 9) == 0 &&
               (val_is_string(ch) || ch->nil) && cnt->type == ':';
        n = -12345;
        CHECK(zos_resp_reply_pubsub(b, len, kind, sizeof(kind), &n) == conf);
        if (conf) {
            CHECK(n == cnt->integer && kind[k->len] == '\0');
            for (size_t i = 0; i < k->len; i++)
                CHECK((unsigned char)kind[i] == tolower((unsigned char)mem[k->off + i]));
        } else {
            CHECK(n == -12345);
        }
    } else {
        CHECK(!zos_resp_reply_pubsub(b, len, kind, sizeof(kind), &n));
    }

    check_escape(b, p, len, cuts);
    CHECK(evbuffer_get_length(b) == len + after); /* helpers remove nothing */

    /* One byte short is not one whole reply: every helper says no. */
    if (len > 1) {
        CHECK(!zos_resp_reply_is_ok(b, len - 1));
        CHECK(!zos_resp_reply_error(b, len - 1, buf, sizeof(buf)));
        CHECK(!zos_resp_reply_int(b, len - 1, &n));
        CHECK(!zos_resp_reply_string(b, len - 1, false, &s, &slen) && s == NULL);
        CHECK(!zos_resp_reply_string(b, len - 1, true, &s, &slen) && s == NULL);
        CHECK(!zos_resp_reply_pubsub(b, len - 1, kind, sizeof(kind), &n));
        if (val_is_array(top))
            CHECK(!zos_resp_reply_strings(b, len - 1, top->count > 4 ? 4 : top->count, strs));
    }
    CHECK(!zos_resp_reply_is_ok(b, 0) && !zos_resp_reply_int(b, 0, &n));
    evbuffer_free(b);
}

/* ---- the input ---- */

static void pick_limits(const uint8_t *d, struct zos_resp_reply_limits *lim)
{
    static const int depths[] = {1, 2, 3, 4, 5, 0, 65, -1};

    zos_resp_reply_limits_default(lim);
    lim->resp2_only = d[0] & 1;
    if (d[0] & 2)
        lim->max_bulk = d[1] & 15;
    if (d[0] & 4)
        lim->max_elements = (d[1] >> 4) & 7;
    if (d[0] & 8)
        lim->max_depth = depths[d[2] & 7];
}

/* LFs not after a CR become CRLFs: lines are then cheap to write. */
static char *crlf(const char *d, size_t n, size_t *outn)
{
    char *out = malloc(2 * n + 1);
    size_t o = 0;

    CHECK(out != NULL);
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
            out[o++] = '\r';
        out[o++] = d[i];
    }
    *outn = o;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t piece_max[] = {1, 2, 3, 5, 8, 16, 64, 1024};
    struct zos_resp_reply_limits lim;
    struct frames whole = {0}, split = {0}, dec = {0}, grown = {0}, skim = {0};
    struct vals vs = {0};
    struct cuts cuts;

    if (size < 3)
        return 0;
    pick_limits(data, &lim);
    cuts.max = piece_max[(data[0] >> 4) & 7];
    cuts.rnd = 0x9e3779b9u ^ (uint32_t)(data[2] >> 3) * 2654435761u ^ (uint32_t)size;
    size_t n = size - 3;
    char *mem;
    if (data[0] & 0x80) {
        mem = crlf((const char *)data + 3, n, &n);
    } else {
        mem = malloc(n > 0 ? n : 1);
        CHECK(mem != NULL);
        memcpy(mem, data + 3, n);
    }

    scan_stream(&lim, mem, n, NULL, &whole);
    struct cuts c = cuts;
    scan_stream(&lim, mem, n, &c, &split);
    frames_same(&whole, &split);

    decode_stream(&lim, mem, n, NULL, &dec, &vs, NULL);
    frames_same(&whole, &dec);
    c = cuts;
    decode_stream(&lim, mem, n, &c, &grown, NULL, &vs);
    frames_same(&whole, &grown);
    c = cuts;
    skim_stream(&lim, mem, n, &c, &skim);
    frames_same(&whole, &skim);

    /* The helpers on the first replies (a stream of many short ones would
     * spend its time there; the rest are like them). */
    size_t at = 0, first = 0;
    c = cuts;
    CHECK(vs.nend == dec.n);
    for (size_t i = 0; i < dec.n && i < 64; i++) {
        size_t after = n - at - dec.len[i];
        check_helpers(mem, mem + at, dec.len[i], after < 8 ? after : 8, vs.v + first,
                      vs.end[i] - first, &c);
        at += dec.len[i];
        first = vs.end[i];
    }

    free(whole.len);
    free(split.len);
    free(dec.len);
    free(grown.len);
    free(skim.len);
    free(vs.v);
    free(vs.end);
    free(mem);
    return 0;
}

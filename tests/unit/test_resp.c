/* test_resp.c -- unit tests of resp.c: request parser, argument copies, reply scanner and
 * decoder, reply helpers, writers.
 *
 * Inputs are fed to evbuffers in pieces, each piece its own chain (an
 * evbuffer_add_reference of an exactly sized allocation, so ASan sees any
 * read past a chain), and every result is compared with the one-piece feed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <event2/buffer.h>

#include "zos/resp.h"

/* Under ASan, memory past what the decoder was given is made unreadable. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n)   ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

#define S(lit) lit, sizeof(lit) - 1 /* a literal and its length (NULs included) */

/* ---- feeding ---- */

static void free_piece(const void *data, size_t len, void *arg)
{
    free((void *)data);
}

/* Appends DATA as a chain of its own. */
static void add_piece(struct evbuffer *b, const char *data, size_t n)
{
    if (n == 0)
        return;
    char *m = malloc(n);
    assert_non_null(m);
    memcpy(m, data, n);
    assert_int_equal(evbuffer_add_reference(b, m, n, free_piece, NULL), 0);
}

/* ---- transcripts: what a parser or scanner made of an input ---- */

struct tr {
    char s[16384];
    size_t n;
    bool stop; /* an error was reported */
};

static void tr_add(struct tr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tr_add(struct tr *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->n, sizeof(t->s) - t->n, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(t->s) - t->n);
    t->n += (size_t)n;
}

static void tr_arg(struct tr *t, const char *s, size_t n)
{
    tr_add(t, "[");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '[' && c != ']')
            tr_add(t, "%c", c);
        else
            tr_add(t, "\\x%02x", c);
    }
    tr_add(t, "]");
}

/* Cross-checks REQ's offsets, zos_resp_argv() and zos_resp_arg_copy(), and logs the args. */
static void check_req(struct evbuffer *b, const struct zos_resp_req *req, struct tr *t)
{
    struct zos_resp_argv av;
    char small[4];

    assert_true(req->len > 0 && req->len <= evbuffer_get_length(b));
    assert_int_equal(zos_resp_argv(b, req, &av), ZOS_OK);
    assert_int_equal(av.argc, req->argc);
    for (size_t i = 0; i < av.argc; i++) {
        assert_int_equal(av.argv[i][av.argvlen[i]], '\0');
        tr_arg(t, av.argv[i], av.argvlen[i]);
        if (i >= ZOS_RESP_KEEP)
            continue;
        assert_int_equal(zos_resp_arg_copy(b, req, i, small, sizeof(small)), av.argvlen[i]);
        size_t c = av.argvlen[i] < 3 ? av.argvlen[i] : 3;
        assert_memory_equal(small, av.argv[i], c);
        assert_int_equal(small[c], '\0');
        if (req->is_inline)
            continue;
        struct evbuffer_ptr p;
        char *copy = malloc(req->arg_len[i] + 1);
        assert_int_equal(req->arg_len[i], av.argvlen[i]);
        assert_int_equal(evbuffer_ptr_set(b, &p, req->arg_off[i], EVBUFFER_PTR_SET), 0);
        assert_int_equal(evbuffer_copyout_from(b, &p, copy, req->arg_len[i]),
                         (ev_ssize_t)req->arg_len[i]);
        assert_memory_equal(copy, av.argv[i], req->arg_len[i]);
        free(copy);
    }
    zos_resp_argv_free(&av);
    assert_null(av.argv);
}

/* Parses every complete request in B, logging and removing each. */
static void run_parser(struct zos_resp_parser *p, struct evbuffer *b, struct tr *t)
{
    struct zos_resp_req req;
    char err[128];

    while (!t->stop) {
        int rc = zos_resp_parse(p, b, &req, err, sizeof(err));
        if (rc == ZOS_AGAIN)
            return;
        if (rc == ZOS_ERR) {
            tr_add(t, "ERR %s\n", err);
            t->stop = true;
            return;
        }
        assert_int_equal(rc, ZOS_OK);
        tr_add(t, "%zu %s %zu ", req.len, req.is_inline ? "I" : "A", req.argc);
        check_req(b, &req, t);
        tr_add(t, "\n");
        assert_int_equal(evbuffer_drain(b, req.len), 0);
    }
}

/* Feeds DATA cut at CUTS (ascending), parsing after each piece, or only after the last
 * (LAZY: a search then crosses chains that all arrived at once). */
static void parse_cut(const struct zos_resp_limits *lim, const char *data, size_t n,
                      const size_t *cuts, size_t ncuts, bool lazy, struct tr *t)
{
    struct zos_resp_parser p;
    struct evbuffer *b = evbuffer_new();
    size_t from = 0;

    zos_resp_parser_init(&p, lim);
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        add_piece(b, data + from, to - from);
        if (!lazy || i == ncuts)
            run_parser(&p, b, t);
        from = to;
    }
    if (!t->stop)
        tr_add(t, "AGAIN %zu\n", evbuffer_get_length(b));
    evbuffer_free(b);
}

/* Feeds DATA in pieces of PIECE bytes (0: at once). */
static void parse_pieces(const struct zos_resp_limits *lim, const char *data, size_t n,
                         size_t piece, bool lazy, struct tr *t)
{
    size_t ncuts = piece == 0 || n == 0 ? 0 : (n - 1) / piece;
    size_t *cuts = calloc(ncuts + 1, sizeof(*cuts));
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = (i + 1) * piece;
    parse_cut(lim, data, n, cuts, ncuts, lazy, t);
    free(cuts);
}

/* DATA gives transcript WANT at once, byte by byte (or in odd pieces when large) parsing
 * after each byte or only at the end, and in one coalesced chain. */
static void expect_parse(const struct zos_resp_limits *lim, const char *data, size_t n,
                         const char *want)
{
    struct tr t;

    parse_pieces(lim, data, n, 0, false, &t);
    assert_string_equal(t.s, want);
    parse_pieces(lim, data, n, n <= 2048 ? 1 : 997, false, &t);
    assert_string_equal(t.s, want);
    parse_pieces(lim, data, n, n <= 2048 ? 1 : 997, true, &t);
    assert_string_equal(t.s, want);

    struct zos_resp_parser p;
    struct evbuffer *b = evbuffer_new();
    zos_resp_parser_init(&p, lim);
    memset(&t, 0, sizeof(t));
    evbuffer_add(b, data, n);
    run_parser(&p, b, &t);
    if (!t.stop)
        tr_add(&t, "AGAIN %zu\n", evbuffer_get_length(b));
    assert_string_equal(t.s, want);
    evbuffer_free(b);
}

/* ---- request parser ---- */

static const char pipeline[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"
                               "PING\r\n"
                               "*0\r\n"
                               "get \"a b\" 'c'\n"
                               "\r\n"
                               "*1\r\n$0\r\n\r\n"
                               "*10\r\n$1\r\n0\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n"
                               "$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n$2\r\n8\n\r\n$3\r\n9\r\n\r\n"
                               "*-1\r\n"
                               "  set x \"\\x41\\n\"  \r\n"
                               "*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\n"
                               "*1\r\n$3\r\nGET";

static const char pipeline_want[] = "31 A 3 [SET][k][hello]\n"
                                    "6 I 1 [PING]\n"
                                    "4 A 0 \n"
                                    "14 I 3 [get][a b][c]\n"
                                    "2 I 0 \n"
                                    "10 A 1 []\n"
                                    "78 A 10 [0][1][2][3][4][5][6][7][8\\x0a][9\\x0d\\x0a]\n"
                                    "5 A 0 \n"
                                    "20 I 3 [set][x][A\\x0a]\n"
                                    "23 A 2 [ECHO][a\\x00b]\n"
                                    "AGAIN 11\n";

static void test_pipeline_at_once(void **state)
{
    expect_parse(NULL, S(pipeline), pipeline_want);
}

/* Every way of cutting the pipeline in two and in three pieces gives the same requests. */
static void test_pipeline_every_split(void **state)
{
    size_t n = sizeof(pipeline) - 1, cuts[2];
    struct tr t;

    for (cuts[0] = 0; cuts[0] <= n; cuts[0]++) {
        parse_cut(NULL, pipeline, n, cuts, 1, false, &t);
        assert_string_equal(t.s, pipeline_want);
        for (cuts[1] = cuts[0]; cuts[1] <= n; cuts[1]++) {
            parse_cut(NULL, pipeline, n, cuts, 2, false, &t);
            assert_string_equal(t.s, pipeline_want);
            parse_cut(NULL, pipeline, n, cuts, 2, true, &t);
            assert_string_equal(t.s, pipeline_want);
        }
    }
}

/* The parser keeps its place: a request is not rescanned from its start on each read. */
static void test_incremental_state(void **state)
{
    struct zos_resp_parser p;
    struct zos_resp_req req;
    struct evbuffer *b = evbuffer_new();
    char err[128];

    zos_resp_parser_init(&p, NULL);
    add_piece(b, S("*2\r\n$3\r\nGET\r\n$10\r\n0123"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_AGAIN);
    assert_int_equal(p.args_left, 1);
    assert_int_equal(p.pos, 22);      /* 4 payload bytes skipped ... */
    assert_int_equal(p.bulk_left, 8); /* ... 6 more and the CRLF to come */
    add_piece(b, S("456789\r"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_AGAIN);
    add_piece(b, S("\n*1"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_OK);
    assert_int_equal(req.len, 30);
    assert_int_equal(req.argc, 2);
    assert_int_equal(req.arg_off[1], 18);
    assert_int_equal(req.arg_len[1], 10);
    evbuffer_drain(b, req.len);
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_AGAIN);
    assert_int_equal(p.pos, 2);
    evbuffer_free(b);
}

/* A 100 MB bulk in 16 KB reads: O(1) per read, so the whole thing is quick. */
static void test_big_bulk_linear(void **state)
{
    static char piece[16384];
    const size_t total = 100u * 1024 * 1024;
    struct zos_resp_parser p;
    struct zos_resp_req req;
    struct evbuffer *b = evbuffer_new();
    char err[128];
    clock_t t0 = clock();

    zos_resp_parser_init(&p, NULL);
    add_piece(b, S("*2\r\n$3\r\nSET\r\n$104857600\r\n"));
    for (size_t sent = 0; sent < total; sent += sizeof(piece)) {
        evbuffer_add_reference(b, piece, sizeof(piece), NULL, NULL);
        assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_AGAIN);
    }
    add_piece(b, S("\r"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_AGAIN);
    add_piece(b, S("\n"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_OK);
    assert_int_equal(req.len, 25 + total + 2);
    assert_int_equal(req.arg_off[1], 25);
    assert_int_equal(req.arg_len[1], total);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_true(secs < 1.0); /* a rescan per read would take minutes */
    evbuffer_free(b);
}

static void test_empty_requests(void **state)
{
    expect_parse(NULL, S("*0\r\n*-1\r\n*-5\r\n\r\n\n \t \r\n\"\"\r\nPING\n"),
                 "4 A 0 \n5 A 0 \n5 A 0 \n2 I 0 \n1 I 0 \n5 I 0 \n4 I 1 []\n5 I 1 [PING]\n"
                 "AGAIN 0\n");
}

struct bad {
    const char *in;
    size_t len;
    const char *err;
};

#define BAD(lit, e)                                                                                \
    {                                                                                              \
        lit, sizeof(lit) - 1, "ERR Protocol error: " e "\n"                                        \
    }

static const struct bad bad_requests[] = {
    BAD("*abc\r\n", "invalid multibulk length"),
    BAD("*\r\n", "invalid multibulk length"),
    BAD("*+1\r\n", "invalid multibulk length"),
    BAD("* 1\r\n", "invalid multibulk length"),
    BAD("*1 \r\n", "invalid multibulk length"),
    BAD("*01\r\n", "invalid multibulk length"),
    BAD("*-0\r\n", "invalid multibulk length"),
    BAD("*-\r\n", "invalid multibulk length"),
    BAD("*1\n$1\r\na\r\n", "invalid multibulk length"), /* a lone LF ends no line */
    BAD("*1\rx", "invalid multibulk length"),
    BAD("*9223372036854775808\r\n", "invalid multibulk length"),
    BAD("*99999999999999999999999\r\n", "invalid multibulk length"),
    BAD("*1\r\n$-1\r\n", "invalid bulk length"),
    BAD("*1\r\n$abc\r\n", "invalid bulk length"),
    BAD("*1\r\n$+1\r\na\r\n", "invalid bulk length"),
    BAD("*1\r\n$01\r\na\r\n", "invalid bulk length"),
    BAD("*1\r\n$\r\n", "invalid bulk length"),
    BAD("*1\r\n$1 \r\na\r\n", "invalid bulk length"),
    BAD("*1\r\n$1\na\r\n", "invalid bulk length"),
    BAD("*1\r\n$1\ra\r\n", "invalid bulk length"),
    BAD("*1\r\nfoo\r\n", "expected '$', got 'f'"),
    BAD("*2\r\n$1\r\na\r\n:1\r\n", "expected '$', got ':'"),
    BAD("*1\r\n\r\n", "expected '$', got '\r'"),
    BAD("*1\r\n$1\r\nab\r\n", "expected CRLF after bulk"),
    BAD("*1\r\n$1\r\na\n\r", "expected CRLF after bulk"),
    BAD("*1\r\n$1\r\na\r\r", "expected CRLF after bulk"),
    BAD("*1\r\n$0\r\nxx", "expected CRLF after bulk"),
    BAD("get \"a\n", "unbalanced quotes in request"),
    BAD("get \"a\"b\r\n", "unbalanced quotes in request"),
    BAD("get 'a\r\n", "unbalanced quotes in request"),
    BAD("get 'a'b\n", "unbalanced quotes in request"),
    BAD("get \"a\\\"\n", "unbalanced quotes in request"),
    BAD("get \"a\\\n", "unbalanced quotes in request"),
};

static void test_malformed(void **state)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(bad_requests); i++) {
        expect_parse(NULL, bad_requests[i].in, bad_requests[i].len, bad_requests[i].err);
    }
}

/* After an error the parser keeps refusing. */
static void test_error_is_final(void **state)
{
    struct zos_resp_parser p;
    struct zos_resp_req req;
    struct evbuffer *b = evbuffer_new();
    char err[128];

    zos_resp_parser_init(&p, NULL);
    evbuffer_add(b, S("*x\r\n"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_ERR);
    evbuffer_drain(b, 4);
    evbuffer_add(b, S("PING\r\n"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_ERR);
    assert_non_null(strstr(err, "Protocol error"));
    assert_int_equal(zos_resp_parse(&p, b, &req, NULL, 0), ZOS_ERR); /* ERR may be NULL */
    evbuffer_free(b);
}

struct inl {
    const char *line;
    size_t len;
    const char *args; /* transcript of the arguments, NULL: unbalanced quotes */
};

#define INL(lit, a)                                                                                \
    {                                                                                              \
        lit, sizeof(lit) - 1, a                                                                    \
    }

static const struct inl inline_cases[] = {
    INL("set a b", "[set][a][b]"),
    INL("  set \t a\t\tb   ", "[set][a][b]"),
    INL("a\rb", "[a][b]"),
    INL("a\vb\fc", "[a\\x0bb\\x0cc]"), /* \v \f only separate when leading */
    INL("\v\fa", "[a]"),
    INL("\"a b\" c", "[a b][c]"),
    INL("\"\\n\\r\\t\\b\\a\\\\\\\"\\z\"", "[\\x0a\\x0d\\x09\\x08\\x07\\x5c\"z]"),
    INL("\"\\x41\\x4a\\x4G\\x\"", "[AJx4Gx]"),
    INL("\"\\xff\\x00\"", "[\\xff\\x00]"),
    INL("\"\\xAb\\xC0\"", "[\\xab\\xc0]"),
    INL("'it\\'s'", "[it's]"),
    INL("'a\\nb\\\\x'", "[a\\x5cnb\\x5c\\x5cx]"),
    INL("'a\\\\'", NULL), /* the last \' is an escaped quote: unterminated */
    INL("'a\"b'", "[a\"b]"),
    INL("\"a'b\"", "[a'b]"),
    INL("\"\"", "[]"),
    INL("'' ''", "[][]"),
    INL("foo\"bar baz\"", "[foobar baz]"),
    INL("a'b c'", "[ab c]"),
    INL("\"a\"\tb", "[a][b]"),
    INL("\"a\"\vb", "[a][b]"),
    INL("\"a\"\rb", "[a][b]"),
    INL("a\0b", "[a\\x00b]"), /* binary-safe: NUL is a character */
    INL("\"a\\\0\"", "[a\\x00]"),
    INL("\"a\"b", NULL),
    INL("'a'b", NULL),
    INL("\"a", NULL),
    INL("'a", NULL),
    INL("\"a\\\"", NULL),
    INL("'a\\'", NULL),
    INL("\"", NULL),
    INL("x \"a\\x4", NULL),
};

static void test_inline_quoting(void **state)
{
    char in[256], want[512];

    for (size_t i = 0; i < ZOS_ARRAY_LEN(inline_cases); i++) {
        const struct inl *c = &inline_cases[i];
        size_t argc = 0;
        for (const char *a = c->args; a != NULL && (a = strstr(a, "][")) != NULL; a++)
            argc++;
        if (c->args != NULL)
            argc++;
        for (int crlf = 0; crlf < 2; crlf++) {
            memcpy(in, c->line, c->len);
            memcpy(in + c->len, crlf ? "\r\n" : "\n", 2);
            size_t n = c->len + 1 + (size_t)crlf;
            if (c->args != NULL)
                snprintf(want, sizeof(want), "%zu I %zu %s\nAGAIN 0\n", n, argc, c->args);
            else
                snprintf(want, sizeof(want), "ERR Protocol error: unbalanced quotes in request\n");
            expect_parse(NULL, in, n, want);
        }
    }
}

/* ---- limits: exactly at each one is fine, one over is not ---- */

static char *repeat(char c, size_t n, const char *head, const char *tail)
{
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    memcpy(s, head, h);
    memset(s + h, c, n);
    memcpy(s + h + n, tail, t + 1);
    return s;
}

static void test_limit_args(void **state)
{
    struct zos_resp_limits lim = {.max_bulk = 100, .max_args = 3, .max_inline = 100};

    expect_parse(&lim, S("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), "25 A 3 [a][b][c]\nAGAIN 0\n");
    expect_parse(&lim, S("*4\r\n"), "ERR Protocol error: invalid multibulk length\n");
    expect_parse(&lim, S("*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n"),
                 "ERR Protocol error: invalid multibulk length\n");
    expect_parse(&lim, S("a b c\r\n"), "7 I 3 [a][b][c]\nAGAIN 0\n");
    expect_parse(&lim, S("a b c d\r\n"), "ERR Protocol error: invalid multibulk length\n");
}

static void test_limit_bulk(void **state)
{
    struct zos_resp_limits lim = {.max_bulk = 5, .max_args = 10, .max_inline = 100};

    expect_parse(&lim, S("*1\r\n$5\r\nhello\r\n"), "15 A 1 [hello]\nAGAIN 0\n");
    expect_parse(&lim, S("*1\r\n$6\r\n"), "ERR Protocol error: invalid bulk length\n");
    expect_parse(&lim, S("*1\r\n$6\r\nhello!\r\n"), "ERR Protocol error: invalid bulk length\n");
}

static void test_limit_inline(void **state)
{
    struct zos_resp_limits lim = {.max_bulk = 100, .max_args = 10, .max_inline = 10};
    const char *big = "ERR Protocol error: too big inline request\n";

    expect_parse(&lim, S("0123456789\r\n"), "12 I 1 [0123456789]\nAGAIN 0\n");
    expect_parse(&lim, S("0123456789\n"), "11 I 1 [0123456789]\nAGAIN 0\n");
    expect_parse(&lim, S("0123456789"), "AGAIN 10\n");
    expect_parse(&lim, S("0123456789\r"), "AGAIN 11\n"); /* the LF may still come */
    expect_parse(&lim, S("0123456789\rx"), big);
    expect_parse(&lim, S("0123456789a"), big);
    expect_parse(&lim, S("0123456789a\n"), big);
    expect_parse(&lim, S("0123456789a\r\n"), big);
    expect_parse(&lim, S("0123456789\r\r\n"), big);

    /* The default: redis's 64 KB. */
    char *s = repeat('x', 64 * 1024, "", "\r\n");
    for (size_t piece = 0; piece <= 4096; piece += 4096) {
        struct zos_resp_parser p;
        struct zos_resp_req req;
        struct evbuffer *b = evbuffer_new();
        char err[128];
        int rc = ZOS_AGAIN;
        zos_resp_parser_init(&p, NULL);
        for (size_t off = 0; off < strlen(s) && rc == ZOS_AGAIN; off += piece ? piece : strlen(s)) {
            size_t n = piece && strlen(s) - off > piece ? piece : strlen(s) - off;
            add_piece(b, s + off, n);
            rc = zos_resp_parse(&p, b, &req, err, sizeof(err));
        }
        assert_int_equal(rc, ZOS_OK);
        assert_int_equal(req.len, 64 * 1024 + 2);
        assert_int_equal(req.argc, 1);
        evbuffer_free(b);
    }
    free(s);
    s = repeat('x', 64 * 1024 + 1, "", "");
    expect_parse(NULL, s, strlen(s), big);
    free(s);
}

/* "*N" and "$N" lines: at most 64 KB without a CR, as redis. */
static void test_limit_header_line(void **state)
{
    const size_t max = 64 * 1024;
    char *s;

    s = repeat('1', max - 1, "*", "");
    expect_parse(NULL, s, strlen(s), "AGAIN 65536\n");
    free(s);
    s = repeat('1', max, "*", "");
    expect_parse(NULL, s, strlen(s), "ERR Protocol error: too big mbulk count string\n");
    free(s);
    s = repeat('1', max - 1, "*", "\r\n");
    expect_parse(NULL, s, strlen(s), "ERR Protocol error: invalid multibulk length\n");
    free(s);
    s = repeat('1', max, "*", "\r\n");
    expect_parse(NULL, s, strlen(s), "ERR Protocol error: too big mbulk count string\n");
    free(s);

    s = repeat('1', max - 1, "*1\r\n$", "");
    expect_parse(NULL, s, strlen(s), "AGAIN 65540\n");
    free(s);
    s = repeat('1', max, "*1\r\n$", "");
    expect_parse(NULL, s, strlen(s), "ERR Protocol error: too big bulk count string\n");
    free(s);
    s = repeat('1', max - 1, "*1\r\n$", "\r\n");
    expect_parse(NULL, s, strlen(s), "ERR Protocol error: invalid bulk length\n");
    free(s);
    s = repeat('x', max, "*1\r\n", "");
    expect_parse(NULL, s, strlen(s), "AGAIN 65540\n");
    free(s);
    s = repeat('x', max + 1, "*1\r\n", "");
    expect_parse(NULL, s, strlen(s), "ERR Protocol error: too big bulk count string\n");
    free(s);
}

static void test_limits_default(void **state)
{
    struct zos_resp_limits lim;
    struct zos_resp_parser p;

    zos_resp_limits_default(&lim);
    assert_int_equal(lim.max_bulk, 512u * 1024 * 1024);
    assert_int_equal(lim.max_args, 1024u * 1024);
    assert_int_equal(lim.max_inline, 64u * 1024);
    assert_false(lim.unauth);
    zos_resp_parser_init(&p, NULL);
    /* Field by field: the struct has padding after unauth. */
    assert_int_equal(p.lim.max_bulk, lim.max_bulk);
    assert_int_equal(p.lim.max_args, lim.max_args);
    assert_int_equal(p.lim.max_inline, lim.max_inline);
    assert_false(p.lim.unauth);

    expect_parse(NULL, S("*1048577\r\n"), "ERR Protocol error: invalid multibulk length\n");
    expect_parse(NULL, S("*1048576\r\n"), "AGAIN 10\n");
    expect_parse(NULL, S("*1\r\n$536870913\r\n"), "ERR Protocol error: invalid bulk length\n");
    expect_parse(NULL, S("*1\r\n$536870912\r\n"), "AGAIN 16\n");
}

/* A client that has not authenticated gets redis's smaller limits: 10
 * arguments, 16 KB bulks; the general limits are checked first.  Every feed
 * of expect_parse() agrees: the one-chain fast path and the piece-wise path. */
static void test_limit_unauth(void **state)
{
    struct zos_resp_limits lim;
    char *s, err[128];

    zos_resp_limits_default(&lim);
    lim.unauth = true;
    expect_parse(&lim, S("*11\r\n"), "ERR Protocol error: unauthenticated multibulk length\n");
    expect_parse(&lim, S("*11\r\n$1\r\na\r\n"),
                 "ERR Protocol error: unauthenticated multibulk length\n");
    expect_parse(&lim,
                 S("*10\r\n$1\r\n0\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n"
                   "$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n$1\r\n8\r\n$1\r\n9\r\n"),
                 "75 A 10 [0][1][2][3][4][5][6][7][8][9]\nAGAIN 0\n");
    expect_parse(&lim, S("*1\r\n$16385\r\n"), "ERR Protocol error: unauthenticated bulk length\n");
    expect_parse(&lim, S("*2\r\n$4\r\nAUTH\r\n$16385\r\nxx"),
                 "ERR Protocol error: unauthenticated bulk length\n");

    s = repeat('p', 16385, "*2\r\n$4\r\nAUTH\r\n$16385\r\n", "\r\n");
    expect_parse(&lim, s, strlen(s), "ERR Protocol error: unauthenticated bulk length\n");
    free(s);
    /* 16384 is fine (the transcript would not hold it: parsed directly). */
    s = repeat('p', 16384, "*2\r\n$4\r\nAUTH\r\n$16384\r\n", "\r\n");
    for (size_t piece = 0; piece <= 1000; piece += 500) {
        struct zos_resp_parser p;
        struct zos_resp_req req;
        struct evbuffer *b = evbuffer_new();
        size_t n = strlen(s);
        int rc = ZOS_AGAIN;
        zos_resp_parser_init(&p, &lim);
        for (size_t off = 0; off < n && rc == ZOS_AGAIN; off += piece ? piece : n) {
            add_piece(b, s + off, piece && n - off > piece ? piece : n - off);
            rc = zos_resp_parse(&p, b, &req, err, sizeof(err));
        }
        assert_int_equal(rc, ZOS_OK);
        assert_int_equal(req.len, n);
        assert_int_equal(req.argc, 2);
        assert_int_equal(req.arg_len[1], 16384);
        evbuffer_free(b);
    }
    free(s);

    /* The general limits come first. */
    lim.max_args = 5;
    lim.max_bulk = 100;
    expect_parse(&lim, S("*11\r\n"), "ERR Protocol error: invalid multibulk length\n");
    expect_parse(&lim, S("*1\r\n$16385\r\n"), "ERR Protocol error: invalid bulk length\n");

    /* Authenticated: the same requests pass. */
    zos_resp_limits_default(&lim);
    assert_false(lim.unauth);
    expect_parse(&lim, S("*11\r\n"), "AGAIN 5\n");
    expect_parse(&lim, S("*1\r\n$16385\r\n"), "AGAIN 12\n");
}

/* ---- arguments ---- */

static void test_argv(void **state)
{
    struct evbuffer *b = evbuffer_new();
    struct zos_resp_parser p;
    struct zos_resp_req req;
    struct zos_resp_argv av = {0};
    char err[128], buf[8];

    zos_resp_argv_free(&av); /* a zeroed struct */
    zos_resp_argv_free(NULL);

    zos_resp_parser_init(&p, NULL);
    add_piece(b, S("*12\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n"));
    add_piece(b, S("$1\r\ng\r\n$1\r\nh\r\n$0\r\n\r\n$2\r\n"));
    add_piece(b, S("jk\r\n$11\r\nhello"));
    add_piece(b, S(" world\r\n$3\r\n\0\r\n\r\n"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_OK);
    assert_int_equal(zos_resp_argv(b, &req, &av), ZOS_OK);
    assert_int_equal(av.argc, 12);
    assert_string_equal(av.argv[0], "a");
    assert_string_equal(av.argv[7], "h");
    assert_string_equal(av.argv[8], "");
    assert_string_equal(av.argv[9], "jk");
    assert_string_equal(av.argv[10], "hello world");
    assert_int_equal(av.argvlen[10], 11);
    assert_int_equal(av.argvlen[11], 3);
    assert_memory_equal(av.argv[11], "\0\r\n", 4);
    zos_resp_argv_free(&av);
    assert_int_equal(av.argc, 0);

    /* arg_copy: truncation, full length returned, out-of-range indexes. */
    assert_int_equal(zos_resp_arg_copy(b, &req, 3, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "d");
    assert_int_equal(zos_resp_arg_copy(b, &req, 8, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(zos_resp_arg_copy(b, &req, 3, buf, 0), 1);
    evbuffer_drain(b, req.len);

    add_piece(b, S("*2\r\n$3\r\nGET\r\n$12\r\nabcdefghijkl\r\n"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_OK);
    assert_int_equal(zos_resp_arg_copy(b, &req, 1, buf, sizeof(buf)), 12);
    assert_string_equal(buf, "abcdefg");
    assert_int_equal(zos_resp_arg_copy(b, &req, 1, buf, 1), 12);
    assert_string_equal(buf, "");
    assert_int_equal(zos_resp_arg_copy(b, &req, 2, buf, sizeof(buf)), 0);
    evbuffer_drain(b, req.len);

    add_piece(b, S("set \"a\\x00b\" "));
    add_piece(b, S("'xyz'\r\n"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_OK);
    assert_true(req.is_inline);
    assert_int_equal(zos_resp_argv(b, &req, &av), ZOS_OK);
    assert_int_equal(av.argc, 3);
    assert_memory_equal(av.argv[1], "a\0b", 4);
    assert_int_equal(av.argvlen[1], 3);
    assert_string_equal(av.argv[2], "xyz");
    zos_resp_argv_free(&av);
    assert_int_equal(zos_resp_arg_copy(b, &req, 2, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "xyz");
    assert_int_equal(zos_resp_arg_copy(b, &req, 3, buf, sizeof(buf)), 0);
    evbuffer_drain(b, req.len);

    /* argc 0: nothing allocated. */
    add_piece(b, S("*0\r\n"));
    assert_int_equal(zos_resp_parse(&p, b, &req, err, sizeof(err)), ZOS_OK);
    assert_int_equal(zos_resp_argv(b, &req, &av), ZOS_OK);
    assert_int_equal(av.argc, 0);
    assert_null(av.argv);
    zos_resp_argv_free(&av);
    evbuffer_free(b);
}

/* ---- reply scanner ---- */

static void run_scanner(struct zos_resp_scanner *s, struct evbuffer *b, struct tr *t)
{
    size_t len;

    while (!t->stop) {
        int rc = zos_resp_scan(s, b, &len);
        if (rc == ZOS_AGAIN)
            return;
        if (rc == ZOS_ERR) {
            tr_add(t, "ERR\n");
            t->stop = true;
            return;
        }
        assert_int_equal(rc, ZOS_OK);
        assert_true(len > 0 && len <= evbuffer_get_length(b));
        tr_add(t, "%zu\n", len);
        evbuffer_drain(b, len);
    }
}

static void scan_cut(const struct zos_resp_reply_limits *lim, const char *data, size_t n,
                     const size_t *cuts, size_t ncuts, bool lazy, struct tr *t)
{
    struct zos_resp_scanner s;
    struct evbuffer *b = evbuffer_new();
    size_t from = 0;

    zos_resp_scanner_init(&s, lim);
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        add_piece(b, data + from, to - from);
        if (!lazy || i == ncuts)
            run_scanner(&s, b, t);
        from = to;
    }
    if (!t->stop)
        tr_add(t, "AGAIN %zu\n", evbuffer_get_length(b));
    evbuffer_free(b);
}

/* At once, byte by byte (scanning after each byte or at the end), and cut at every
 * point: the same frames. */
static void expect_scan_lim(const struct zos_resp_reply_limits *lim, const char *data, size_t n,
                            const char *want)
{
    size_t cut, *cuts = malloc((n + 1) * sizeof(*cuts));
    struct tr t;

    scan_cut(lim, data, n, NULL, 0, false, &t);
    assert_string_equal(t.s, want);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    scan_cut(lim, data, n, cuts, n > 0 ? n - 1 : 0, false, &t);
    assert_string_equal(t.s, want);
    scan_cut(lim, data, n, cuts, n > 0 ? n - 1 : 0, true, &t);
    assert_string_equal(t.s, want);
    for (cut = 0; cut <= n; cut++) {
        scan_cut(lim, data, n, &cut, 1, false, &t);
        assert_string_equal(t.s, want);
    }
    free(cuts);
}

static void expect_scan(const char *data, size_t n, const char *want)
{
    expect_scan_lim(NULL, data, n, want);
}

static const char *const replies[] = {
    "+OK\r\n",
    "+\r\n",
    "-ERR wrong type\r\n",
    ":0\r\n",
    ":-9223372036854775808\r\n",
    "$5\r\nhello\r\n",
    "$0\r\n\r\n",
    "$4\r\na\r\nb\r\n",
    "$-1\r\n",
    "*-1\r\n",
    "*0\r\n",
    "*2\r\n$1\r\na\r\n:1\r\n",
    "*3\r\n*1\r\n+x\r\n*0\r\n*2\r\n$-1\r\n*-1\r\n",
    "_\r\n",
    ",3.14\r\n",
    ",-inf\r\n",
    "#t\r\n",
    "#f\r\n",
    "(123456789012345678901234567890\r\n",
    "!21\r\nSYNTAX invalid syntax\r\n",
    "=15\r\ntxt:Some string\r\n",
    "%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n",
    "%0\r\n",
    "~3\r\n+a\r\n+b\r\n~0\r\n",
    ">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n",
    "|1\r\n+ttl\r\n:3\r\n$5\r\nvalue\r\n",        /* attribute + the reply it annotates */
    "*2\r\n|1\r\n+k\r\n+v\r\n:5\r\n|0\r\n#t\r\n", /* attributes inside an array */
};

static void test_scan_every_type(void **state)
{
    char all[2048] = "", want[512] = "", one[64];

    for (size_t i = 0; i < ZOS_ARRAY_LEN(replies); i++) {
        snprintf(one, sizeof(one), "%zu\nAGAIN 0\n", strlen(replies[i]));
        expect_scan(replies[i], strlen(replies[i]), one);
        strcat(all, replies[i]);
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%zu\n", strlen(replies[i]));
    }
    /* All of them back to back, with the start of another at the end. */
    strcat(all, "*2\r\n$3\r\nab");
    strcat(want, "AGAIN 10\n");
    expect_scan(all, strlen(all), want);
}

static const char *const bad_replies[] = {
    "?x\r\n",
    "x\r\n",
    "\r\n",
    ":abc\r\n",
    ":\r\n",
    ":+1\r\n",
    ":01\r\n",
    ":1\n",
    ":1\rx",
    ":12345678901234567890123",
    "$-2\r\n",
    "$abc\r\n",
    "$3\r\nabcd\r\n",
    "$3\r\nabc\n\n",
    "*-2\r\n",
    "*1\r\n?\r\n",
    "%-1\r\n",
    "~-1\r\n",
    "!-1\r\n",
    "#x\r\n",
    "#\r\n",
    "#tt\r\n",
    "_x\r\n",
    ",\r\n",
    "(\r\n",
    "+a\nb\r\n",
    "-a\nb\r\n",
    "*1\r\n:x\r\n",
    "%4611686018427387904\r\n",
    "$?\r\n",
    "*?\r\n",
};

static void test_scan_malformed(void **state)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(bad_replies); i++) {
        expect_scan(bad_replies[i], strlen(bad_replies[i]), "ERR\n");
    }
    expect_scan(S("\0"), "ERR\n");
    expect_scan(S(":1\r\n+ok\r\n:\0\r\n"), "4\n5\nERR\n");
}

static void test_scan_depth(void **state)
{
    char buf[512] = "", want[32];

    for (int i = 0; i < 64; i++)
        strcat(buf, "*1\r\n");
    strcat(buf, ":1\r\n");
    snprintf(want, sizeof(want), "%zu\nAGAIN 0\n", strlen(buf));
    expect_scan(buf, strlen(buf), want);

    buf[0] = '\0';
    for (int i = 0; i < 65; i++)
        strcat(buf, i % 2 ? "*1\r\n" : "%1\r\n+k\r\n");
    expect_scan(buf, strlen(buf), "ERR\n");
}

static void test_scan_big_bulk_linear(void **state)
{
    static char piece[16384];
    const size_t total = 100u * 1024 * 1024;
    struct zos_resp_scanner s;
    struct evbuffer *b = evbuffer_new();
    size_t len = 0;
    clock_t t0 = clock();

    zos_resp_scanner_init(&s, NULL);
    add_piece(b, S("*2\r\n:1\r\n$104857600\r\n"));
    for (size_t sent = 0; sent < total; sent += sizeof(piece)) {
        evbuffer_add_reference(b, piece, sizeof(piece), NULL, NULL);
        assert_int_equal(zos_resp_scan(&s, b, &len), ZOS_AGAIN);
    }
    add_piece(b, S("\r\n+next\r\n"));
    assert_int_equal(zos_resp_scan(&s, b, &len), ZOS_OK);
    assert_int_equal(len, 20 + total + 2);
    evbuffer_drain(b, len);
    assert_int_equal(zos_resp_scan(&s, b, &len), ZOS_OK);
    assert_int_equal(len, 7);
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);
    evbuffer_free(b);
}

/* ---- reply decoder ----
 *
 * The decoder reads contiguous memory: each input is copied to an exactly
 * sized allocation and, under ASan, the bytes past the reader's length are
 * poisoned, so a read beyond what it was given stops the test. */

/* MEM[0..N) with only its first LEN bytes readable. */
static void mem_limit(const char *mem, size_t len, size_t n)
{
    ASAN_UNPOISON_MEMORY_REGION(mem, n);
    ASAN_POISON_MEMORY_REGION(mem + len, n - len);
}

static char *mem_copy(const char *data, size_t n)
{
    char *m = malloc(n > 0 ? n : 1);
    assert_non_null(m);
    memcpy(m, data, n);
    return m;
}

static void mem_free(char *m, size_t n)
{
    mem_limit(m, n, n);
    free(m);
}

static bool has_text(char type)
{
    return type != '\0' && strchr("+-,($=!", type) != NULL;
}

static bool is_aggregate(char type)
{
    return type != '\0' && strchr("*%~>|", type) != NULL;
}

/* One value: its depth and type, "nil", then the fields its type documents:
 * "i<integer>" (':' '#'), "[text]" (strings), "c<count>" (aggregates). */
static void tr_val(struct tr *t, const struct zos_resp_val *v, const char *mem, size_t n)
{
    tr_add(t, "%d%c", v->depth, v->type);
    if (v->nil)
        tr_add(t, "nil");
    if (v->type == ':' || v->type == '#')
        tr_add(t, "i%lld", v->integer);
    if (has_text(v->type) && !v->nil) {
        assert_non_null(v->str);
        assert_true(v->str >= mem && v->len <= n && (size_t)(v->str - mem) <= n - v->len);
        tr_arg(t, v->str, v->len);
    }
    if (is_aggregate(v->type))
        tr_add(t, "c%zu", v->count);
    else
        assert_int_equal(v->count, 0);
    tr_add(t, " ");
}

/* Decodes what R holds from where it stands, value by value: the values and
 * "=<reply length>" after each reply into VALS; each reply's length into
 * FRAMES as the scanner transcripts have them; both end with "ERR" or "AGAIN
 * <bytes of the unfinished reply>".  With GROW, an AGAIN is answered with one
 * more byte of MEM (FULL bytes), after checking that it consumed nothing. */
static void decode_walk(struct zos_resp_reader *r, char *mem, size_t full, bool grow,
                        struct tr *vals, struct tr *frames)
{
    struct zos_resp_val v;
    size_t start = r->off;

    for (;;) {
        struct zos_resp_reader before = *r;
        int rc = zos_resp_next(r, &v);
        if (rc == ZOS_AGAIN) {
            assert_true(r->buf == before.buf && r->len == before.len);
            assert_int_equal(r->off, before.off);
            assert_int_equal(r->s.state, before.s.state);
            assert_int_equal(r->s.pos, before.s.pos);
            assert_int_equal(r->s.line, before.s.line);
            assert_int_equal(r->s.depth, before.s.depth);
            if (grow && r->len < full) {
                mem_limit(mem, ++r->len, full);
                continue;
            }
            tr_add(vals, "AGAIN %zu\n", r->len - r->off);
            tr_add(frames, "AGAIN %zu\n", r->len - r->off);
            return;
        }
        if (rc == ZOS_ERR) {
            tr_add(vals, "ERR\n");
            tr_add(frames, "ERR\n");
            assert_false(zos_resp_reader_between(r));
            assert_int_equal(zos_resp_next(r, &v), ZOS_ERR); /* for good */
            return;
        }
        assert_int_equal(rc, ZOS_OK);
        tr_val(vals, &v, mem, r->len);
        if (zos_resp_reader_between(r)) {
            assert_true(r->off > start);
            tr_add(vals, "=%zu\n", r->off - start);
            tr_add(frames, "%zu\n", r->off - start);
            start = r->off;
        }
    }
}

/* Drops the final "AGAIN n" of a transcript. */
static void tr_cut_again(struct tr *t)
{
    char *at = NULL;
    for (char *p = strstr(t->s, "AGAIN "); p != NULL; p = strstr(p + 1, "AGAIN "))
        at = p;
    assert_non_null(at);
    t->n = (size_t)(at - t->s);
    *at = '\0';
}

/* DATA decoded gives values WANT (NULL: not checked) and frames FRAMES (NULL:
 * not checked): at once, and from nothing growing a byte at each AGAIN; the
 * scanner frames it the same, whole and in pieces.  The values transcript is
 * left in *OUT when not NULL. */
static void expect_both(const struct zos_resp_reply_limits *lim, const char *data, size_t n,
                        const char *want, const char *frames, struct tr *out)
{
    static struct tr vals, fr, vals2, fr2;
    struct zos_resp_reader r;
    char *mem = mem_copy(data, n);

    memset(&vals, 0, sizeof(vals));
    memset(&fr, 0, sizeof(fr));
    memset(&vals2, 0, sizeof(vals2));
    memset(&fr2, 0, sizeof(fr2));
    zos_resp_reader_init(&r, mem, n, lim);
    assert_true(zos_resp_reader_between(&r));
    decode_walk(&r, mem, n, false, &vals, &fr);
    if (want != NULL)
        assert_string_equal(vals.s, want);
    if (frames != NULL)
        assert_string_equal(fr.s, frames);

    mem_limit(mem, 0, n);
    zos_resp_reader_init(&r, mem, 0, lim);
    decode_walk(&r, mem, n, true, &vals2, &fr2);
    assert_string_equal(vals2.s, vals.s);
    assert_string_equal(fr2.s, fr.s);
    mem_free(mem, n);

    expect_scan_lim(lim, data, n, fr.s);
    if (out != NULL)
        *out = vals;
}

struct dec {
    const char *in;
    size_t len;
    const char *want;
};

#define DEC(lit, w)                                                                                \
    {                                                                                              \
        lit, sizeof(lit) - 1, w                                                                    \
    }

static const struct dec decoded[] = {
    DEC("+OK\r\n", "0+[OK] =5\nAGAIN 0\n"),
    DEC("+\r\n", "0+[] =3\nAGAIN 0\n"),
    DEC("-ERR wrong type\r\n", "0-[ERR wrong type] =17\nAGAIN 0\n"),
    DEC(":0\r\n", "0:i0 =4\nAGAIN 0\n"),
    DEC(":-42\r\n", "0:i-42 =6\nAGAIN 0\n"),
    DEC(":-9223372036854775808\r\n", "0:i-9223372036854775808 =23\nAGAIN 0\n"),
    DEC(":9223372036854775807\r\n", "0:i9223372036854775807 =22\nAGAIN 0\n"),
    DEC("$5\r\nhello\r\n", "0$[hello] =11\nAGAIN 0\n"),
    DEC("$0\r\n\r\n", "0$[] =6\nAGAIN 0\n"),
    DEC("$4\r\na\r\nb\r\n", "0$[a\\x0d\\x0ab] =10\nAGAIN 0\n"),
    DEC("$3\r\n\0\xff\x01\r\n", "0$[\\x00\\xff\\x01] =9\nAGAIN 0\n"),
    DEC("$-1\r\n", "0$nil =5\nAGAIN 0\n"),
    DEC("*-1\r\n", "0*nilc0 =5\nAGAIN 0\n"),
    DEC("*0\r\n", "0*c0 =4\nAGAIN 0\n"),
    DEC("*2\r\n$1\r\na\r\n:1\r\n", "0*c2 1$[a] 1:i1 =15\nAGAIN 0\n"),
    DEC("*3\r\n*1\r\n+x\r\n*0\r\n*2\r\n$-1\r\n*-1\r\n",
        "0*c3 1*c1 2+[x] 1*c0 1*c2 2$nil 2*nilc0 =30\nAGAIN 0\n"),
    DEC("_\r\n", "0_nil =3\nAGAIN 0\n"),
    DEC(",3.14\r\n", "0,[3.14] =7\nAGAIN 0\n"),
    DEC(",-inf\r\n", "0,[-inf] =7\nAGAIN 0\n"),
    DEC(",1.5e+300\r\n", "0,[1.5e+300] =11\nAGAIN 0\n"),
    DEC("#t\r\n", "0#i1 =4\nAGAIN 0\n"),
    DEC("#f\r\n", "0#i0 =4\nAGAIN 0\n"),
    DEC("(-123456789012345678901234567890\r\n",
        "0([-123456789012345678901234567890] =34\nAGAIN 0\n"),
    DEC("!21\r\nSYNTAX invalid syntax\r\n", "0![SYNTAX invalid syntax] =28\nAGAIN 0\n"),
    DEC("=15\r\ntxt:Some string\r\n", "0=[txt:Some string] =22\nAGAIN 0\n"),
    DEC("%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n", "0%c4 1+[a] 1:i1 1+[b] 1*c1 2:i2 =24\nAGAIN 0\n"),
    DEC("%0\r\n", "0%c0 =4\nAGAIN 0\n"),
    DEC("~3\r\n+a\r\n+b\r\n~0\r\n", "0~c3 1+[a] 1+[b] 1~c0 =16\nAGAIN 0\n"),
    DEC(">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n",
        "0>c3 1+[message] 1+[chan] 1$[hi] =29\nAGAIN 0\n"),
    /* An attribute: its entries, then the reply it annotates, as its last child. */
    DEC("|1\r\n+ttl\r\n:3\r\n$5\r\nvalue\r\n", "0|c3 1+[ttl] 1:i3 1$[value] =25\nAGAIN 0\n"),
    DEC("*2\r\n|1\r\n+k\r\n+v\r\n:5\r\n|0\r\n#t\r\n",
        "0*c2 1|c3 2+[k] 2+[v] 2:i5 1|c1 2#i1 =28\nAGAIN 0\n"),
    /* Several replies, and the start of another. */
    DEC("+a\r\n:1\r\n*1\r\n$1\r\nx\r\n*2\r\n:1",
        "0+[a] =4\n0:i1 =4\n0*c1 1$[x] =11\n0*c2 AGAIN 6\n"),
    DEC("+a\r\n:x\r\n", "0+[a] =4\nERR\n"),
    DEC("*2\r\n:1\r\n?\r\n", "0*c2 1:i1 ERR\n"),
};

static void test_decode_every_type(void **state)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(decoded); i++)
        expect_both(NULL, decoded[i].in, decoded[i].len, decoded[i].want, NULL, NULL);
    for (size_t i = 0; i < ZOS_ARRAY_LEN(bad_replies); i++)
        expect_both(NULL, bad_replies[i], strlen(bad_replies[i]), NULL, "ERR\n", NULL);
}

/* A verbatim string has at least 4 bytes, the 4th a ':' ("txt:", "mkd:"). */
static void test_decode_verbatim(void **state)
{
    expect_both(NULL, S("=4\r\ntxt:\r\n"), "0=[txt:] =10\nAGAIN 0\n", NULL, NULL);
    expect_both(NULL, S("=6\r\nmkd:**\r\n"), "0=[mkd:**] =12\nAGAIN 0\n", NULL, NULL);
    expect_both(NULL, S("*1\r\n=5\r\ntxt:x\r\n"), "0*c1 1=[txt:x] =15\nAGAIN 0\n", NULL, NULL);
    expect_both(NULL, S("=3\r\ntxt\r\n"), "ERR\n", NULL, NULL);
    expect_both(NULL, S("=0\r\n\r\n"), "ERR\n", NULL, NULL);
    expect_both(NULL, S("=-1\r\n"), "ERR\n", NULL, NULL);
    expect_both(NULL, S("=5\r\ntxtxx\r\n"), "ERR\n", NULL, NULL);
    expect_both(NULL, S("=5\r\n:txtx\r\n"), "ERR\n", NULL, NULL);
    expect_both(NULL, S("=5\r\nab:cd\r\n"), "ERR\n", NULL, NULL);
    expect_both(NULL, S("*2\r\n:1\r\n=4\r\nabcd\r\n"), "0*c2 1:i1 ERR\n", NULL, NULL);
}

struct framed {
    const char *in;
    size_t len;
    const char *frames;
};

#define FRM(lit, f)                                                                                \
    {                                                                                              \
        lit, sizeof(lit) - 1, f                                                                    \
    }

static void expect_frames(const struct zos_resp_reply_limits *lim, const struct framed *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_both(lim, c[i].in, c[i].len, NULL, c[i].frames, NULL);
}

static const struct framed bulk5[] = {
    FRM("$5\r\nhello\r\n", "11\nAGAIN 0\n"),
    FRM("$6\r\nhello!\r\n", "ERR\n"),
    FRM("$6\r\n", "ERR\n"), /* refused before the payload */
    FRM("*2\r\n:1\r\n$6\r\n", "ERR\n"),
    FRM("$0\r\n\r\n$-1\r\n", "6\n5\nAGAIN 0\n"),
    FRM("!5\r\nERR x\r\n", "11\nAGAIN 0\n"),
    FRM("!6\r\nERR xy\r\n", "ERR\n"),
    FRM("=5\r\ntxt:a\r\n", "11\nAGAIN 0\n"),
    FRM("=6\r\ntxt:ab\r\n", "ERR\n"),
    /* Simple lines too: 5 bytes of text, known too long at the 6th. */
    FRM("+hello\r\n", "8\nAGAIN 0\n"),
    FRM("+hello", "AGAIN 6\n"),
    FRM("+hello\r", "AGAIN 7\n"),
    FRM("+hello!", "ERR\n"),
    FRM("-ERR x\r\n", "8\nAGAIN 0\n"),
    FRM("-ERR xy\r\n", "ERR\n"),
    FRM("(12345\r\n", "8\nAGAIN 0\n"),
    FRM("(123456\r\n", "ERR\n"),
    FRM(",1.234\r\n", "8\nAGAIN 0\n"),
    FRM(",1.2345\r\n", "ERR\n"),
    FRM(":123456789012\r\n", "15\nAGAIN 0\n"), /* numbers are no payload */
    FRM("*1234567\r\n", "AGAIN 10\n"),
};

static const struct framed elements4[] = {
    FRM("*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", "20\nAGAIN 0\n"),
    FRM("*5\r\n", "ERR\n"),
    FRM("*1\r\n*5\r\n", "ERR\n"),
    FRM("*-1\r\n*0\r\n", "5\n4\nAGAIN 0\n"),
    FRM("~4\r\n", "AGAIN 4\n"),
    FRM("~5\r\n", "ERR\n"),
    FRM(">4\r\n", "AGAIN 4\n"),
    FRM(">5\r\n", "ERR\n"),
    FRM("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", "20\nAGAIN 0\n"), /* an entry counts twice */
    FRM("%3\r\n", "ERR\n"),
    FRM("|1\r\n+a\r\n+b\r\n:1\r\n", "16\nAGAIN 0\n"),
    FRM("|3\r\n", "ERR\n"),
};

static const struct framed elements0[] = {
    FRM("*0\r\n%0\r\n~0\r\n>0\r\n*-1\r\n", "4\n4\n4\n4\n5\nAGAIN 0\n"),
    FRM("*1\r\n", "ERR\n"),
    FRM("%1\r\n", "ERR\n"),
};

static const struct framed depth2[] = {
    FRM("*1\r\n*1\r\n:1\r\n", "12\nAGAIN 0\n"),
    FRM("*1\r\n*1\r\n*1\r\n", "ERR\n"),
    FRM("*1\r\n*1\r\n*0\r\n*1\r\n*1\r\n*-1\r\n", "12\n13\nAGAIN 0\n"), /* empty: nothing opens */
    FRM("%1\r\n*1\r\n:1\r\n*1\r\n*1\r\n", "ERR\n"),
    FRM("*2\r\n*1\r\n:1\r\n*1\r\n:2\r\n", "20\nAGAIN 0\n"),
    FRM("|1\r\n+k\r\n*1\r\n:1\r\n*1\r\n+v\r\n", "24\nAGAIN 0\n"),
    FRM("|1\r\n+k\r\n*1\r\n*1\r\n", "ERR\n"),
};

static const struct framed depth1[] = {
    FRM("*2\r\n:1\r\n:2\r\n", "12\nAGAIN 0\n"),
    FRM("*1\r\n~1\r\n", "ERR\n"),
    FRM("*1\r\n*0\r\n", "8\nAGAIN 0\n"),
};

static const struct framed resp2[] = {
    FRM("+OK\r\n-ERR\r\n:1\r\n$1\r\nx\r\n*1\r\n$-1\r\n*-1\r\n", "5\n6\n4\n7\n9\n5\nAGAIN 0\n"),
    FRM("_\r\n", "ERR\n"),
    FRM("_", "ERR\n"), /* known at the type byte */
    FRM(",1.5\r\n", "ERR\n"),
    FRM("#t\r\n", "ERR\n"),
    FRM("(1\r\n", "ERR\n"),
    FRM("=4\r\ntxt:\r\n", "ERR\n"),
    FRM("!1\r\nx\r\n", "ERR\n"),
    FRM("%0\r\n", "ERR\n"),
    FRM("~0\r\n", "ERR\n"),
    FRM(">1\r\n+x\r\n", "ERR\n"),
    FRM("|0\r\n:1\r\n", "ERR\n"),
    FRM("+a\r\n*2\r\n:1\r\n%", "4\nERR\n"),
};

static void test_decode_limits(void **state)
{
    struct zos_resp_reply_limits def, lim;

    zos_resp_reply_limits_default(&def);
    assert_int_equal(def.max_bulk, 512u * 1024 * 1024);
    assert_int_equal(def.max_elements, 2147483647u);
    assert_int_equal(def.max_depth, ZOS_RESP_MAX_DEPTH);
    assert_false(def.resp2_only);

    lim = def;
    lim.max_bulk = 5;
    expect_frames(&lim, bulk5, ZOS_ARRAY_LEN(bulk5));
    lim = def;
    lim.max_elements = 4;
    expect_frames(&lim, elements4, ZOS_ARRAY_LEN(elements4));
    lim.max_elements = 0;
    expect_frames(&lim, elements0, ZOS_ARRAY_LEN(elements0));
    lim = def;
    lim.max_depth = 2;
    expect_frames(&lim, depth2, ZOS_ARRAY_LEN(depth2));
    lim.max_depth = 1;
    expect_frames(&lim, depth1, ZOS_ARRAY_LEN(depth1));
    lim = def;
    lim.resp2_only = true;
    expect_frames(&lim, resp2, ZOS_ARRAY_LEN(resp2));

    /* The defaults: redis's proto-max-bulk-len and multibulk ceiling. */
    static const struct framed defaults[] = {
        FRM("$536870912\r\n", "AGAIN 12\n"),  FRM("$536870913\r\n", "ERR\n"),
        FRM("*2147483647\r\n", "AGAIN 13\n"), FRM("*2147483648\r\n", "ERR\n"),
        FRM("%1073741823\r\n", "AGAIN 13\n"), FRM("%1073741824\r\n", "ERR\n"),
    };
    expect_frames(NULL, defaults, ZOS_ARRAY_LEN(defaults));
    expect_frames(&def, defaults, ZOS_ARRAY_LEN(defaults));
}

/* 64 levels is the ceiling, whatever the limits say. */
static void test_decode_depth_ceiling(void **state)
{
    static const int asked[] = {0, -1, 64, 65, 1000};
    char deep[512] = "", deeper[512] = "", want[32];
    struct zos_resp_reply_limits lim;

    for (int i = 0; i < 64; i++)
        strcat(deep, i % 2 ? "*1\r\n" : "~1\r\n");
    strcat(deep, ":1\r\n");
    strcat(deeper, "*1\r\n");
    strcat(deeper, deep);
    snprintf(want, sizeof(want), "%zu\nAGAIN 0\n", strlen(deep));
    for (size_t i = 0; i < ZOS_ARRAY_LEN(asked); i++) {
        zos_resp_reply_limits_default(&lim);
        lim.max_depth = asked[i];
        expect_both(&lim, deep, strlen(deep), NULL, want, NULL);
        expect_both(&lim, deeper, strlen(deeper), NULL, "ERR\n", NULL);
    }
}

/* Every prefix of a reply is "not yet", never an error, and consumes
 * nothing: given the rest, the reader goes on to the same values. */
static void test_decode_prefixes(void **state)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(decoded); i++) {
        const struct dec *d = &decoded[i];
        if (strstr(d->want, "ERR") != NULL || strstr(d->want, "AGAIN 0\n") == NULL)
            continue;
        char *mem = mem_copy(d->in, d->len);
        for (size_t k = 0; k < d->len; k++) {
            struct zos_resp_reader r;
            struct tr vals = {0}, fr = {0}, rest = {0}, fr2 = {0};
            mem_limit(mem, k, d->len);
            zos_resp_reader_init(&r, mem, k, NULL);
            decode_walk(&r, mem, d->len, false, &vals, &fr);
            /* Complete replies before the cut are framed; the cut one is pending. */
            assert_non_null(strstr(fr.s, "AGAIN "));
            assert_null(strstr(fr.s, "ERR"));
            tr_cut_again(&vals);
            mem_limit(mem, d->len, d->len);
            r.len = d->len;
            decode_walk(&r, mem, d->len, false, &rest, &fr2);
            tr_add(&vals, "%s", rest.s);
            assert_string_equal(vals.s, d->want);
        }
        mem_free(mem, d->len);
    }
}

static void test_decode_skip(void **state)
{
    static const char in[] = "*3\r\n*1\r\n+x\r\n*0\r\n*2\r\n$-1\r\n*-1\r\n"
                             "|1\r\n+k\r\n*1\r\n:1\r\n:7\r\n%1\r\n+a\r\n*2\r\n:1\r\n:2\r\n"
                             "+next\r\n*2\r\n*1\r\n";
    struct zos_resp_reader r;
    struct zos_resp_val v, c;
    char *mem = mem_copy(in, sizeof(in) - 1);

    zos_resp_reader_init(&r, mem, sizeof(in) - 1, NULL);
    assert_ptr_equal(zos_resp_reader_at(&r), mem);
    /* A whole reply at once; the cursor is where the next value starts. */
    assert_int_equal(zos_resp_next(&r, &v), ZOS_OK);
    assert_int_equal(v.count, 3);
    assert_ptr_equal(zos_resp_reader_at(&r), mem + 4);
    assert_false(zos_resp_reader_between(&r));
    assert_int_equal(zos_resp_skip(&r, &v), ZOS_OK);
    assert_true(zos_resp_reader_between(&r));
    assert_int_equal(r.off, 30);
    assert_ptr_equal(zos_resp_reader_at(&r), mem + 30);
    /* An attribute: its entries and the reply annotated. */
    assert_int_equal(zos_resp_next(&r, &v), ZOS_OK);
    assert_int_equal(v.type, '|');
    assert_int_equal(v.count, 3);
    assert_int_equal(zos_resp_skip(&r, &v), ZOS_OK);
    assert_true(zos_resp_reader_between(&r));
    assert_int_equal(r.off, 30 + 20);
    /* A child skipped in the middle: the walk goes on with its sibling. */
    assert_int_equal(zos_resp_next(&r, &v), ZOS_OK);
    assert_int_equal(v.type, '%');
    assert_int_equal(zos_resp_next(&r, &c), ZOS_OK);
    assert_int_equal(c.type, '+');
    assert_int_equal(zos_resp_skip(&r, &c), ZOS_OK); /* a scalar: nothing to skip */
    assert_int_equal(zos_resp_next(&r, &c), ZOS_OK);
    assert_int_equal(c.type, '*');
    assert_int_equal(c.depth, 1);
    assert_int_equal(zos_resp_skip(&r, &c), ZOS_OK);
    assert_true(zos_resp_reader_between(&r));
    assert_int_equal(zos_resp_next(&r, &v), ZOS_OK);
    assert_int_equal(v.type, '+');
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.str, "next", 4);
    assert_int_equal(v.depth, 0);
    /* An incomplete reply: not yet. */
    assert_int_equal(zos_resp_next(&r, &v), ZOS_OK);
    assert_int_equal(zos_resp_skip(&r, &v), ZOS_AGAIN);
    assert_ptr_equal(zos_resp_reader_at(&r), mem + sizeof(in) - 1); /* at the missing value */
    mem_free(mem, sizeof(in) - 1);

    /* An error inside: skip says so, and the reader stays failed. */
    zos_resp_reader_init(&r, "*2\r\n*1\r\n:x\r\n", 12, NULL);
    assert_int_equal(zos_resp_next(&r, &v), ZOS_OK);
    assert_int_equal(zos_resp_skip(&r, &v), ZOS_ERR);
    assert_int_equal(zos_resp_next(&r, &v), ZOS_ERR);
    assert_int_equal(zos_resp_skip(&r, &v), ZOS_ERR);
}

/* Replies back to back in one reader: each decodes as it does alone. */
static void test_decode_back_to_back(void **state)
{
    static char all[4096];
    static struct tr want, one;
    size_t n = 0;

    memset(&want, 0, sizeof(want));
    for (size_t i = 0; i < ZOS_ARRAY_LEN(replies); i++) {
        size_t len = strlen(replies[i]);
        expect_both(NULL, replies[i], len, NULL, NULL, &one);
        tr_cut_again(&one);
        tr_add(&want, "%s", one.s);
        memcpy(all + n, replies[i], len);
        n += len;
    }
    tr_add(&want, "AGAIN 0\n");
    expect_both(NULL, all, n, want.s, NULL, NULL);

    /* Then an error: the replies before it are still whole. */
    memcpy(all + n, S(":1\r\n+x\ny\r\n+z\r\n"));
    tr_cut_again(&want);
    tr_add(&want, "0:i1 =4\nERR\n");
    expect_both(NULL, all, n + 14, want.s, NULL, NULL);
}

/* ---- questions about one whole reply ---- */

/* REPLY in 3-byte chains with another reply after it: a helper must look at
 * the first LEN bytes only, whatever the chains. */
static struct evbuffer *reply_buf(const char *reply, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    for (size_t i = 0; i < n; i += 3)
        add_piece(b, reply + i, n - i < 3 ? n - i : 3);
    add_piece(b, S("+OK\r\n"));
    return b;
}

static bool is_ok(const char *reply, size_t n)
{
    struct evbuffer *b = reply_buf(reply, n);
    bool ok = zos_resp_reply_is_ok(b, n);
    assert_int_equal(evbuffer_get_length(b), n + 5); /* nothing removed */
    evbuffer_free(b);
    return ok;
}

static void test_reply_is_ok(void **state)
{
    assert_true(is_ok(S("+OK\r\n")));
    assert_true(is_ok(S("|1\r\n+ttl\r\n:3\r\n+OK\r\n"))); /* an attribute is skipped */
    assert_false(is_ok(S("+ok\r\n")));
    assert_false(is_ok(S("+OKAY\r\n")));
    assert_false(is_ok(S("+O\r\n")));
    assert_false(is_ok(S("$2\r\nOK\r\n")));
    assert_false(is_ok(S("-OK\r\n")));
    assert_false(is_ok(S("*1\r\n+OK\r\n")));
    assert_false(is_ok(S(":1\r\n")));
    assert_false(is_ok(S("+OK\r"))); /* not one whole reply */
    assert_false(is_ok(S("+OK")));
    assert_false(is_ok(S("")));
    assert_false(is_ok(S("?OK\r\n")));

    /* LEN beyond the buffer: no. */
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, S("+OK\r\n"));
    assert_false(zos_resp_reply_is_ok(b, 6));
    assert_true(zos_resp_reply_is_ok(b, 5));
    evbuffer_free(b);
}

/* The error text of REPLY into a buffer of BUFLEN, or "-" when it is none. */
static const char *error_of(const char *reply, size_t n, size_t buflen)
{
    static char buf[256];
    struct evbuffer *b = reply_buf(reply, n);
    assert_true(buflen <= sizeof(buf));
    memset(buf, '#', sizeof(buf));
    bool err = zos_resp_reply_error(b, n, buf, buflen);
    evbuffer_free(b);
    if (!err)
        return "-";
    if (buflen > 0)
        assert_true(memchr(buf, '\0', buflen) != NULL);
    return buf;
}

static void test_reply_error(void **state)
{
    assert_string_equal(error_of(S("-ERR wrong type\r\n"), 64), "ERR wrong type");
    assert_string_equal(error_of(S("-ERR wrong type\r\n"), 4), "ERR");
    assert_string_equal(error_of(S("-ERR wrong type\r\n"), 1), "");
    assert_string_equal(error_of(S("-\r\n"), 64), "");
    /* A blob error: its line breaks become spaces. */
    assert_string_equal(error_of(S("!12\r\nERR a\r\nb\0c d\r\n"), 64), "ERR a  b");
    assert_string_equal(error_of(S("|1\r\n+k\r\n+v\r\n-NOAUTH x\r\n"), 64), "NOAUTH x");
    assert_string_equal(error_of(S("+ERR\r\n"), 64), "-");
    assert_string_equal(error_of(S("$3\r\nERR\r\n"), 64), "-");
    assert_string_equal(error_of(S("*1\r\n-ERR\r\n"), 64), "-");
    assert_string_equal(error_of(S("-ERR"), 64), "-");

    /* BUFLEN 0: true, nothing written. */
    char one = 'x';
    struct evbuffer *b = reply_buf(S("-ERR\r\n"));
    assert_true(zos_resp_reply_error(b, 6, &one, 0));
    assert_int_equal(one, 'x');
    evbuffer_free(b);
}

static bool int_of(const char *reply, size_t n, long long *v)
{
    struct evbuffer *b = reply_buf(reply, n);
    *v = 12345;
    bool ok = zos_resp_reply_int(b, n, v);
    evbuffer_free(b);
    return ok;
}

static void test_reply_int(void **state)
{
    long long v;

    assert_true(int_of(S(":42\r\n"), &v));
    assert_int_equal(v, 42);
    assert_true(int_of(S(":-2\r\n"), &v)); /* TTL of a missing key */
    assert_int_equal(v, -2);
    assert_true(int_of(S(":-9223372036854775808\r\n"), &v));
    assert_true(v == LLONG_MIN);
    assert_true(int_of(S("|1\r\n+k\r\n+v\r\n:7\r\n"), &v));
    assert_int_equal(v, 7);
    assert_false(int_of(S("+42\r\n"), &v));
    assert_false(int_of(S("$2\r\n42\r\n"), &v));
    assert_false(int_of(S(",42\r\n"), &v));
    assert_false(int_of(S("(42\r\n"), &v));
    assert_false(int_of(S("#t\r\n"), &v));
    assert_false(int_of(S("*1\r\n:1\r\n"), &v));
    assert_false(int_of(S("-ERR\r\n"), &v));
    assert_false(int_of(S(":42\r"), &v));
    assert_int_equal(v, 12345); /* untouched */
}

/* The string REPLY holds ("-" for none) as a transcript, its length checked. */
static const char *string_of(const char *reply, size_t n, bool pair)
{
    static struct tr t;
    struct evbuffer *b = reply_buf(reply, n);
    char *s = (char *)&t; /* not NULL: it must be set */
    size_t len = 99;

    memset(&t, 0, sizeof(t));
    if (zos_resp_reply_string(b, n, pair, &s, &len)) {
        assert_non_null(s);
        assert_int_equal(s[len], '\0');
        tr_arg(&t, s, len);
        free(s);
    } else {
        assert_null(s);
        tr_add(&t, "-");
    }
    assert_int_equal(evbuffer_get_length(b), n + 5);
    evbuffer_free(b);
    return t.s;
}

static void test_reply_string(void **state)
{
    assert_string_equal(string_of(S("$5\r\nhello\r\n"), false), "[hello]");
    assert_string_equal(string_of(S("$0\r\n\r\n"), false), "[]");
    assert_string_equal(string_of(S("$3\r\na\0b\r\n"), false), "[a\\x00b]");
    assert_string_equal(string_of(S("+OK\r\n"), false), "[OK]");
    /* A verbatim string without its format prefix. */
    assert_string_equal(string_of(S("=8\r\ntxt:abcd\r\n"), false), "[abcd]");
    assert_string_equal(string_of(S("=4\r\nmkd:\r\n"), false), "[]");
    assert_string_equal(string_of(S("*2\r\n+k\r\n=5\r\ntxt:v\r\n"), true), "[v]");
    assert_string_equal(string_of(S("|1\r\n+k\r\n+v\r\n$1\r\nx\r\n"), false), "[x]");
    assert_string_equal(string_of(S("$-1\r\n"), false), "-");
    assert_string_equal(string_of(S("_\r\n"), false), "-");
    assert_string_equal(string_of(S(":1\r\n"), false), "-");
    assert_string_equal(string_of(S("-ERR\r\n"), false), "-");
    assert_string_equal(string_of(S("!3\r\nERR\r\n"), false), "-");
    assert_string_equal(string_of(S(",1.5\r\n"), false), "-");
    assert_string_equal(string_of(S("*1\r\n$1\r\nx\r\n"), false), "-");
    assert_string_equal(string_of(S("$5\r\nhell"), false), "-");

    /* BRPOPLPUSH gives the job's result as a bulk; BLPOP as [key, value]. */
    static const char result[] = "{\"id\":\"job-1\",\"state\":\"SUCCESS\",\"data\":\"a\\r\\nb\"}";
    char reply[256];
    int n = snprintf(reply, sizeof(reply), "$%zu\r\n%s\r\n", strlen(result), result);
    const char *got = string_of(reply, (size_t)n, false);
    assert_memory_equal(got + 1, result, 20);
    assert_string_equal(string_of(reply, (size_t)n, true), "-");
    n = snprintf(reply, sizeof(reply), "*2\r\n$12\r\nresult:job-1\r\n$%zu\r\n%s\r\n",
                 strlen(result), result);
    assert_string_equal(string_of(reply, (size_t)n, false), "-");
    got = string_of(reply, (size_t)n, true);
    assert_memory_equal(got + 1, result, 20);
    assert_int_equal(strlen(got), strlen(result) + 2 + 6); /* [ ] and \x0d\x0a for "\r\n" */

    assert_string_equal(string_of(S("*2\r\n$1\r\nk\r\n$1\r\nv\r\n"), true), "[v]");
    assert_string_equal(string_of(S("*2\r\n*1\r\n:1\r\n+v\r\n"), true), "[v]");
    assert_string_equal(string_of(S("~2\r\n+k\r\n+v\r\n"), true), "[v]");
    assert_string_equal(string_of(S(">2\r\n+k\r\n+v\r\n"), true), "[v]");
    assert_string_equal(string_of(S("*-1\r\n"), true), "-"); /* BLPOP timed out */
    assert_string_equal(string_of(S("*2\r\n$1\r\nk\r\n$-1\r\n"), true), "-");
    assert_string_equal(string_of(S("*2\r\n$1\r\nk\r\n:1\r\n"), true), "-");
    assert_string_equal(string_of(S("*3\r\n+a\r\n+b\r\n+c\r\n"), true), "-");
    assert_string_equal(string_of(S("*1\r\n+a\r\n"), true), "-");
    assert_string_equal(string_of(S("%1\r\n+k\r\n+v\r\n"), true), "-");
    assert_string_equal(string_of(S("*2\r\n+k\r\n+v"), true), "-");
}

/* MGET's answer as a transcript: "[s]" per string, "nil" per NULL; "-" when false. */
static const char *strings_of(const char *reply, size_t n, size_t want)
{
    static struct tr t;
    char *out[8];
    struct evbuffer *b = reply_buf(reply, n);

    memset(&t, 0, sizeof(t));
    for (size_t i = 0; i < ZOS_ARRAY_LEN(out); i++)
        out[i] = (char *)&t;
    if (zos_resp_reply_strings(b, n, want, out)) {
        for (size_t i = 0; i < want; i++) {
            if (out[i] == NULL)
                tr_add(&t, "nil");
            else
                tr_arg(&t, out[i], strlen(out[i]));
            free(out[i]);
        }
    } else {
        for (size_t i = 0; i < want; i++)
            assert_null(out[i]);
        tr_add(&t, "-");
    }
    assert_ptr_equal(out[want], &t); /* nothing past N */
    evbuffer_free(b);
    return t.s;
}

static void test_reply_strings(void **state)
{
    static const char mget[] = "*3\r\n$4\r\n2222\r\n$-1\r\n$8\r\n10.0.0.1\r\n";

    assert_string_equal(strings_of(S(mget), 3), "[2222]nil[10.0.0.1]");
    assert_string_equal(strings_of(S(mget), 2), "-");
    assert_string_equal(strings_of(S(mget), 4), "-");
    assert_string_equal(strings_of(S("*0\r\n"), 0), "");
    assert_string_equal(strings_of(S("*-1\r\n"), 0), "-");
    assert_string_equal(strings_of(S("$3\r\nabc\r\n"), 1), "-");
    assert_string_equal(strings_of(S("-ERR\r\n"), 1), "-");
    assert_string_equal(strings_of(S("%1\r\n+k\r\n+v\r\n"), 2), "-");
    /* Anything not a string is a NULL, aggregates included (skipped whole). */
    assert_string_equal(strings_of(S("*4\r\n:1\r\n*2\r\n+x\r\n+y\r\n+s\r\n_\r\n"), 4),
                        "nilnil[s]nil");
    assert_string_equal(strings_of(S("~2\r\n+a\r\n=5\r\ntxt:b\r\n"), 2), "[a][b]");
    assert_string_equal(strings_of(S(">1\r\n$0\r\n\r\n"), 1), "[]");
    assert_string_equal(strings_of(S("|1\r\n+k\r\n+v\r\n*1\r\n+a\r\n"), 1), "[a]");
    assert_string_equal(strings_of(S("*2\r\n+a\r\n"), 2), "-"); /* not whole */
}

/* "kind count" of a pub/sub confirmation, "-" when REPLY is none. */
static const char *pubsub_of(const char *reply, size_t n, size_t kindlen)
{
    static char out[64];
    char kind[32];
    long long count = -7;
    struct evbuffer *b = reply_buf(reply, n);

    assert_true(kindlen <= sizeof(kind));
    if (zos_resp_reply_pubsub(b, n, kind, kindlen, &count))
        snprintf(out, sizeof(out), "%s %lld", kind, count);
    else
        snprintf(out, sizeof(out), "-");
    assert_int_equal(evbuffer_get_length(b), n + 5);
    evbuffer_free(b);
    return out;
}

static void test_reply_pubsub(void **state)
{
    assert_string_equal(pubsub_of(S("*3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:1\r\n"), 32),
                        "subscribe 1");
    assert_string_equal(pubsub_of(S("*3\r\n$12\r\nPUNSUBSCRIBE\r\n$-1\r\n:0\r\n"), 32),
                        "punsubscribe 0");
    assert_string_equal(pubsub_of(S(">3\r\n$10\r\nssubscribe\r\n$1\r\nx\r\n:2\r\n"), 32),
                        "ssubscribe 2");
    assert_string_equal(pubsub_of(S("*3\r\n+unsubscribe\r\n_\r\n:0\r\n"), 32), "unsubscribe 0");
    /* The kind must fit with its NUL. */
    assert_string_equal(pubsub_of(S("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"), 10),
                        "subscribe 1");
    assert_string_equal(pubsub_of(S("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"), 9), "-");
    /* Not confirmations: messages, a PONG, errors, odd shapes. */
    assert_string_equal(pubsub_of(S("*3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$2\r\nhi\r\n"), 32), "-");
    assert_string_equal(
        pubsub_of(S("*4\r\n$8\r\npmessage\r\n$2\r\nf*\r\n$3\r\nfoo\r\n$2\r\nhi\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("*2\r\n$4\r\npong\r\n$0\r\n\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("+PONG\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("-ERR only (P|S)SUBSCRIBE allowed\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("*3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n$1\r\n1\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("*3\r\n$9\r\nsubscribe\r\n*1\r\n+x\r\n:1\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("*3\r\n:9\r\n$3\r\nfoo\r\n:1\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("*3\r\n$8\r\nsubscrib\r\n$3\r\nfoo\r\n:1\r\n"), 32), "-");
    assert_string_equal(pubsub_of(S("*3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:1"), 32), "-");
    assert_string_equal(pubsub_of(S("%3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:1\r\n"), 32), "-");
    /* A channel that is an integer makes no confirmation. */
    assert_string_equal(pubsub_of(S("*3\r\n$9\r\nsubscribe\r\n:99999999\r\n:1\r\n"), 32), "-");

    /* Channels of any length. */
    const size_t big = 100 * 1024;
    char *s = repeat('c', big, "*3\r\n$9\r\nsubscribe\r\n$102400\r\n", "\r\n:5\r\n");
    assert_string_equal(pubsub_of(s, strlen(s), 32), "subscribe 5");
    s[strlen(s) - 3] = 'x'; /* ":x" */
    assert_string_equal(pubsub_of(s, strlen(s), 32), "-");
    free(s);
    s = repeat('m', big, "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$102400\r\n", "\r\n");
    assert_string_equal(pubsub_of(s, strlen(s), 32), "-");
    free(s);
}

/* Escaped: the first N bytes of DATA into OUTLEN bytes. */
static const char *escaped(const char *data, size_t len, size_t n, size_t outlen)
{
    static char out[512];
    struct evbuffer *b = reply_buf(data, len);

    assert_true(outlen <= sizeof(out) - 1);
    memset(out, '#', sizeof(out));
    zos_resp_escape(b, n, out, outlen);
    assert_int_equal(out[outlen], '#'); /* nothing written past OUTLEN */
    if (outlen > 0)
        assert_true(strlen(out) < outlen);
    evbuffer_free(b);
    return out;
}

static void test_resp_escape(void **state)
{
    char *s;

    assert_string_equal(escaped(S("+OK\r\n"), 5, 64), "+OK\\r\\n");
    assert_string_equal(escaped(S("+OK\r\n"), 3, 64), "+OK");
    assert_string_equal(escaped(S("+OK\r\n"), 0, 64), "");
    assert_string_equal(escaped(S("\"a\\b\"\t\0\x7f\x80\xff~ "), 12, 64),
                        "\\\"a\\\\b\\\"\\x09\\x00\\x7f\\x80\\xff~ ");
    /* Cut short: "..." and never half an escape. */
    assert_string_equal(escaped(S("abcdefghij"), 10, 8), "abcd...");
    assert_string_equal(escaped(S("abcdefghij"), 10, 15), "abcdefghij");
    assert_string_equal(escaped(S("\r\r\r\r"), 4, 9), "\\r\\r...");
    assert_string_equal(escaped(S("\r\r\r\r"), 4, 10), "\\r\\r\\r...");
    assert_string_equal(escaped(S("\xff\xff"), 2, 8), "\\xff...");
    assert_string_equal(escaped(S("\xff\xff"), 2, 11), "\\xff...");
    assert_string_equal(escaped(S("\xff\xff"), 2, 13), "\\xff\\xff");
    assert_string_equal(escaped(S("abc"), 3, 4), "...");
    assert_string_equal(escaped(S("abc"), 3, 1), "");
    escaped(S("abc"), 3, 0);
    /* A long reply: its first bytes, then "...". */
    s = repeat('z', 1000, "$1000\r\n", "\r\n");
    for (size_t outlen = 16; outlen <= 500; outlen += 484) {
        const char *e = escaped(s, strlen(s), strlen(s), outlen);
        size_t len = strlen(e);
        assert_true(len >= 12 && len < outlen);
        assert_memory_equal(e, "$1000\\r\\nzzz", 12);
        assert_string_equal(e + len - 4, "z...");
        for (size_t i = 9; i < len - 3; i++)
            assert_int_equal(e[i], 'z');
    }
    free(s);
}

/* ---- writers ---- */

static void expect_out(struct evbuffer *b, const char *want, size_t n)
{
    assert_int_equal(evbuffer_get_length(b), n);
    assert_memory_equal(evbuffer_pullup(b, -1), want, n);
    evbuffer_drain(b, n);
}

static void test_writers(void **state)
{
    struct evbuffer *b = evbuffer_new();
    const char *argv[] = {"SET", "k", "v\0x"};
    const size_t lens[] = {3, 1, 3};

    zos_resp_add_status(b, "OK");
    expect_out(b, S("+OK\r\n"));
    zos_resp_add_status(b, "a\r\nb");
    expect_out(b, S("+a  b\r\n"));
    zos_resp_add_error(b, "ERR unknown command '%s', with %d args", "x\r\ny", 2);
    expect_out(b, S("-ERR unknown command 'x  y', with 2 args\r\n"));
    zos_resp_add_error(b, "%s", "");
    expect_out(b, S("-\r\n"));
    zos_resp_add_int(b, 0);
    zos_resp_add_int(b, -42);
    zos_resp_add_int(b, LLONG_MIN);
    zos_resp_add_int(b, LLONG_MAX);
    expect_out(b, S(":0\r\n:-42\r\n:-9223372036854775808\r\n:9223372036854775807\r\n"));
    zos_resp_add_bulk(b, "a\0b", 3);
    zos_resp_add_bulk(b, NULL, 0);
    zos_resp_add_cstr(b, "hello");
    zos_resp_add_nil(b);
    zos_resp_add_cstr(b, NULL);
    expect_out(b, S("$3\r\na\0b\r\n$0\r\n\r\n$5\r\nhello\r\n$-1\r\n$-1\r\n"));
    zos_resp_add_array(b, 2);
    zos_resp_add_array(b, -1);
    zos_resp_add_array(b, 0);
    expect_out(b, S("*2\r\n*-1\r\n*0\r\n"));
    zos_resp_add_command(b, 3, argv, lens);
    expect_out(b, S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\0x\r\n"));
    zos_resp_add_command(b, 2, argv, NULL);
    expect_out(b, S("*2\r\n$3\r\nSET\r\n$1\r\nk\r\n"));

    /* Long texts: an error past the stack buffer, a bulk past the one-copy path. */
    char *big = repeat('e', 3000, "", "");
    big[1000] = '\n';
    zos_resp_add_error(b, "ERR %s", big);
    assert_int_equal(evbuffer_get_length(b), 3000 + 7);
    char *got = (char *)evbuffer_pullup(b, -1);
    assert_memory_equal(got, "-ERR eee", 8);
    assert_int_equal(got[5 + 1000], ' ');
    assert_memory_equal(got + 3005, "\r\n", 2);
    evbuffer_drain(b, 3007);
    zos_resp_add_bulk(b, big, 3000);
    assert_int_equal(evbuffer_get_length(b), 3000 + 9);
    free(big);
    big = repeat('z', 100000, "", "");
    evbuffer_drain(b, 3009);
    zos_resp_add_bulk(b, big, 100000);
    got = (char *)evbuffer_pullup(b, -1);
    assert_int_equal(evbuffer_get_length(b), 100000 + 11);
    assert_memory_equal(got, "$100000\r\nzz", 11);
    assert_memory_equal(got + 100009, "\r\n", 2);
    free(big);

    /* Whatever the writers produce, the scanner frames. */
    evbuffer_drain(b, evbuffer_get_length(b));
    zos_resp_add_array(b, 3);
    zos_resp_add_int(b, 1);
    zos_resp_add_error(b, "ERR\r\nx");
    zos_resp_add_cstr(b, "\r\n");
    zos_resp_add_status(b, "OK");
    struct zos_resp_scanner s;
    size_t len;
    zos_resp_scanner_init(&s, NULL);
    assert_int_equal(zos_resp_scan(&s, b, &len), ZOS_OK);
    assert_int_equal(len, 4 + 4 + 9 + 8);
    evbuffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_at_once),
        cmocka_unit_test(test_pipeline_every_split),
        cmocka_unit_test(test_incremental_state),
        cmocka_unit_test(test_big_bulk_linear),
        cmocka_unit_test(test_empty_requests),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_is_final),
        cmocka_unit_test(test_inline_quoting),
        cmocka_unit_test(test_limit_args),
        cmocka_unit_test(test_limit_bulk),
        cmocka_unit_test(test_limit_inline),
        cmocka_unit_test(test_limit_header_line),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_argv),
        cmocka_unit_test(test_scan_every_type),
        cmocka_unit_test(test_scan_malformed),
        cmocka_unit_test(test_scan_depth),
        cmocka_unit_test(test_scan_big_bulk_linear),
        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_limit_unauth),
        cmocka_unit_test(test_decode_every_type),
        cmocka_unit_test(test_decode_verbatim),
        cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_decode_depth_ceiling),
        cmocka_unit_test(test_decode_prefixes),
        cmocka_unit_test(test_decode_skip),
        cmocka_unit_test(test_decode_back_to_back),
        cmocka_unit_test(test_reply_is_ok),
        cmocka_unit_test(test_reply_error),
        cmocka_unit_test(test_reply_int),
        cmocka_unit_test(test_reply_string),
        cmocka_unit_test(test_reply_strings),
        cmocka_unit_test(test_reply_pubsub),
        cmocka_unit_test(test_resp_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

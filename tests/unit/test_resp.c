/* test_resp.c -- unit tests of resp.c: request parser, argument copies, reply scanner, writers.
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
    zos_resp_parser_init(&p, NULL);
    assert_memory_equal(&p.lim, &lim, sizeof(lim));

    expect_parse(NULL, S("*1048577\r\n"), "ERR Protocol error: invalid multibulk length\n");
    expect_parse(NULL, S("*1048576\r\n"), "AGAIN 10\n");
    expect_parse(NULL, S("*1\r\n$536870913\r\n"), "ERR Protocol error: invalid bulk length\n");
    expect_parse(NULL, S("*1\r\n$536870912\r\n"), "AGAIN 16\n");
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

static void scan_cut(const char *data, size_t n, const size_t *cuts, size_t ncuts, bool lazy,
                     struct tr *t)
{
    struct zos_resp_scanner s;
    struct evbuffer *b = evbuffer_new();
    size_t from = 0;

    zos_resp_scanner_init(&s, NULL);
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
static void expect_scan(const char *data, size_t n, const char *want)
{
    size_t cut, *cuts = malloc((n + 1) * sizeof(*cuts));
    struct tr t;

    scan_cut(data, n, NULL, 0, false, &t);
    assert_string_equal(t.s, want);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    scan_cut(data, n, cuts, n > 0 ? n - 1 : 0, false, &t);
    assert_string_equal(t.s, want);
    scan_cut(data, n, cuts, n > 0 ? n - 1 : 0, true, &t);
    assert_string_equal(t.s, want);
    for (cut = 0; cut <= n; cut++) {
        scan_cut(data, n, &cut, 1, false, &t);
        assert_string_equal(t.s, want);
    }
    free(cuts);
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
        cmocka_unit_test(test_pipeline_at_once),  cmocka_unit_test(test_pipeline_every_split),
        cmocka_unit_test(test_incremental_state), cmocka_unit_test(test_big_bulk_linear),
        cmocka_unit_test(test_empty_requests),    cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_is_final),    cmocka_unit_test(test_inline_quoting),
        cmocka_unit_test(test_limit_args),        cmocka_unit_test(test_limit_bulk),
        cmocka_unit_test(test_limit_inline),      cmocka_unit_test(test_limit_header_line),
        cmocka_unit_test(test_limits_default),    cmocka_unit_test(test_argv),
        cmocka_unit_test(test_scan_every_type),   cmocka_unit_test(test_scan_malformed),
        cmocka_unit_test(test_scan_depth),        cmocka_unit_test(test_scan_big_bulk_linear),
        cmocka_unit_test(test_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_stream.c -- stream.c: records decoded as core0 writes them (Appendix A),
 * and the reader against a real redis-server.
 *
 * The group setup starts `redis-server` on a free loopback port (it dies with
 * the test: PR_SET_PDEATHSIG; the teardown stops it by PID).  Records are
 * pushed the way core0 pushes them (RPUSH, LTRIM -1000 -1, EXPIRE 60) through
 * a plain hiredis connection, while the reader runs on a libevent loop over a
 * zos_link of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "zos/stream.h"
#include "zos/zos.h"

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#define S(lit) lit, sizeof(lit) - 1

/* ---- records ---- */

static void test_parse_appendix_a(void **state)
{
    static const struct {
        const char *json;
        const char *text;
        unsigned level, flags;
        bool end, ok;
    } cases[] = {
        {"{\"core\":0,\"command\":\"s1\",\"message\":{\"message\":\"a\\n\",\"epoch\":"
         "1795889966242332452,\"meta\":65537}}",
         "a\n", 1, 1, false, false},
        {"{\"core\":0,\"command\":\"s1\",\"message\":{\"message\":\"b\\n\",\"epoch\":"
         "1795889966455500901,\"meta\":131073}}",
         "b\n", 2, 1, false, false},
        {"{\"core\":0,\"command\":\"s1\",\"message\":{\"message\":\"\",\"epoch\":"
         "1795889966458820536,\"meta\":65539}}",
         "", 1, 3, true, true},
        {"{\"core\":0,\"command\":\"s2\",\"message\":{\"message\":\"\",\"epoch\":"
         "1795889972830946651,\"meta\":131077}}",
         "", 2, 5, true, false},
        {"{\"core\":0,\"command\":\"p\",\"message\":{\"message\":\"\\\"PONG\\\"\",\"epoch\":1,"
         "\"meta\":1310723}}",
         "\"PONG\"", 20, 3, true, true},
    };
    for (size_t i = 0; i < ZOS_ARRAY_LEN(cases); i++) {
        struct zos_stream_record rec;
        char err[200] = "";
        assert_int_equal(
            zos_stream_record_parse(cases[i].json, strlen(cases[i].json), &rec, err, sizeof(err)),
            ZOS_OK);
        assert_string_equal(rec.text, cases[i].text);
        assert_int_equal(rec.len, strlen(cases[i].text));
        assert_int_equal(rec.level, cases[i].level);
        assert_int_equal(rec.flags, cases[i].flags);
        assert_int_equal(zos_stream_record_is_end(&rec), cases[i].end);
        assert_int_equal(zos_stream_record_end_ok(&rec), cases[i].ok);
        assert_int_equal(rec.core, 0);
        assert_true(rec.job[0] == 's' || rec.job[0] == 'p');
        zos_stream_record_clear(&rec);
        assert_null(rec.json);
        zos_stream_record_clear(&rec); /* twice is fine */
    }
}

static void test_parse_container_epoch_and_escapes(void **state)
{
    const char json[] = "{\"core\":7,\"command\":\"in-1\",\"message\":{\"message\":"
                        "\"caf\\u00e9\\t\\\"q\\\"\\n\",\"epoch\":1795889966242332452,"
                        "\"meta\":131073}}";
    struct zos_stream_record rec;
    char err[200];
    assert_int_equal(zos_stream_record_parse(S(json), &rec, err, sizeof(err)), ZOS_OK);
    assert_int_equal(rec.core, 7);
    assert_string_equal(rec.job, "in-1");
    assert_string_equal(rec.text, "caf\xc3\xa9\t\"q\"\n");
    assert_true(rec.epoch_ns > 1795889966242332452LL - 1000 &&
                rec.epoch_ns < 1795889966242332452LL + 1000);
    zos_stream_record_clear(&rec);
    /* no text, no core, no command: an empty chunk of the host */
    const char bare[] = "{\"message\":{\"meta\":65537}}";
    assert_int_equal(zos_stream_record_parse(S(bare), &rec, err, sizeof(err)), ZOS_OK);
    assert_string_equal(rec.text, "");
    assert_string_equal(rec.job, "");
    assert_int_equal(rec.core, 0);
    zos_stream_record_clear(&rec);
}

static void test_parse_rejects(void **state)
{
    static const struct {
        const char *json, *why;
    } cases[] = {
        {"", "not a JSON object"},
        {"{\"message\":", "not a JSON object"},
        {"[1]", "not a JSON object"},
        {"\"text\"", "not a JSON object"},
        {"{}", "no \"message\" object"},
        {"{\"message\":\"a\\n\"}", "no \"message\" object"},
        {"{\"message\":{\"message\":\"a\"}}", "no message.meta"},
        {"{\"message\":{\"meta\":\"65537\"}}", "no message.meta"},
        {"{\"message\":{\"meta\":-1}}", "no message.meta"},
        {"{\"message\":{\"meta\":1.5}}", "no message.meta"},
        {"{\"message\":{\"meta\":4294967296}}", "no message.meta"},
        {"{\"message\":{\"meta\":65537,\"message\":5}}", "message.message is not a string"},
        {"{\"message\":{\"meta\":65537,\"message\":null}}", "message.message is not a string"},
    };
    for (size_t i = 0; i < ZOS_ARRAY_LEN(cases); i++) {
        struct zos_stream_record rec;
        char err[200] = "";
        assert_int_equal(
            zos_stream_record_parse(cases[i].json, strlen(cases[i].json), &rec, err, sizeof(err)),
            ZOS_ERR);
        tu_assert_contains(err, "not a core0 stream record: ");
        tu_assert_contains(err, cases[i].why);
        assert_null(rec.json);
        assert_string_equal(rec.text, "");
        zos_stream_record_clear(&rec);
    }
}

static void test_level_names(void **state)
{
    char buf[16];
    assert_string_equal(zos_stream_level_name(1, buf, sizeof(buf)), "stdout");
    assert_string_equal(zos_stream_level_name(2, buf, sizeof(buf)), "stderr");
    assert_string_equal(zos_stream_level_name(20, buf, sizeof(buf)), "level20");
    assert_string_equal(zos_stream_level_name(9, buf, sizeof(buf)), "level9");
}

/* ---- the reader, against redis-server ---- */

static struct {
    char dir[64];
    pid_t pid;
    int port;
    redisContext *kv; /* the "core0" side */
} fx;

static int group_setup(void **state)
{
    char port[16], log[128];
    if (tu_mkdtemp(fx.dir, sizeof(fx.dir), "stream") == NULL || (fx.port = tu_free_port()) < 0)
        return -1;
    tu_sfmt(port, sizeof(port), "%d", fx.port);
    tu_sfmt(log, sizeof(log), "%s/redis.log", fx.dir);
    const char *argv[] = {"redis-server", "--port", port,    "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no",     "--dir", fx.dir,   NULL};
    if ((fx.pid = tu_spawn(argv, NULL, log)) < 0)
        return -1;
    for (int64_t end = tu_now_ms() + 10000; tu_now_ms() < end; tu_nap_ms(20))
        if (tu_port_open(fx.port))
            break;
    fx.kv = redisConnect("127.0.0.1", fx.port);
    return fx.kv != NULL && fx.kv->err == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    if (fx.kv != NULL)
        redisFree(fx.kv);
    tu_stop(&fx.pid);
    return tu_rm_tree(fx.dir);
}

static void kv(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx.kv, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static long long kv_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx.kv, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* The calls of COMMAND redis counted since the last CONFIG RESETSTAT. */
static long long calls_of(const char *command)
{
    char want[64];
    long long n = 0;
    redisReply *r = redisCommand(fx.kv, "INFO commandstats");
    assert_non_null(r);
    tu_sfmt(want, sizeof(want), "cmdstat_%s:calls=", command);
    const char *p = strstr(r->str, want);
    if (p != NULL)
        n = atoll(p + strlen(want));
    freeReplyObject(r);
    return n;
}

/* What core0 does for one message (§5.1), pipelined N times. */
static void push_records(const char *id, int from, int n, unsigned meta)
{
    for (int i = from; i < from + n; i++) {
        char text[32], rec[160];
        tu_sfmt(text, sizeof(text), "line %d\\n", i);
        tu_sfmt(rec, sizeof(rec),
                "{\"core\":0,\"command\":\"%s\",\"message\":{\"message\":\"%s\",\"epoch\":%d,"
                "\"meta\":%u}}",
                id, text, i, meta);
        redisAppendCommand(fx.kv, "RPUSH stream:%s %s", id, rec);
        redisAppendCommand(fx.kv, "LTRIM stream:%s -1000 -1", id);
        redisAppendCommand(fx.kv, "EXPIRE stream:%s 60", id);
    }
    for (int i = 0; i < 3 * n; i++) {
        redisReply *r;
        assert_int_equal(redisGetReply(fx.kv, (void **)&r), REDIS_OK);
        assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
        freeReplyObject(r);
    }
}

static void push_end(const char *id, bool ok)
{
    char rec[160];
    tu_sfmt(rec, sizeof(rec),
            "{\"core\":0,\"command\":\"%s\",\"message\":{\"message\":\"\",\"epoch\":0,"
            "\"meta\":%u}}",
            id, ok ? 65539u : 131077u);
    kv("RPUSH stream:%s %s", id, rec);
    kv("LTRIM stream:%s -1000 -1", id);
}

/* One run of a reader and what it saw. */
struct run {
    struct event_base *base;
    struct zos_link *link;
    struct zos_stream_reader *r;
    struct zos_node_conf node;
    const char *id;
    int nrec, ngap, nbad;
    int first_at_gap; /* records seen when the (first) gap was reported */
    int texts[4096];  /* the number in each "line N" */
    bool ended;
    enum zos_stream_end how;
    char err[200];
    /* hooks */
    int free_at;    /* free the reader at this record (1-based), 0: never */
    int pause_at;   /* pause at this record */
    int end_job_at; /* call job_ended at this record and push the marker */
    bool end_after_free;
};

static void on_rec(void *arg, const struct zos_stream_record *rec)
{
    struct run *x = arg;
    int n = -1;
    sscanf(rec->text, "line %d", &n);
    if (x->nrec < (int)ZOS_ARRAY_LEN(x->texts))
        x->texts[x->nrec] = zos_stream_record_is_end(rec) ? -2 : n;
    x->nrec++;
    if (x->nrec == x->free_at) {
        zos_stream_reader_free(x->r);
        x->r = NULL;
        event_base_loopexit(x->base, NULL);
        return;
    }
    if (x->nrec == x->pause_at) {
        zos_stream_reader_pause(x->r, true);
        event_base_loopexit(x->base, NULL);
    }
    if (x->nrec == x->end_job_at) {
        zos_stream_reader_job_ended(x->r); /* the result is out ... */
        push_end(x->id, true);             /* ... and the marker lands after it */
    }
}

static void on_gap(void *arg)
{
    struct run *x = arg;
    if (x->ngap++ == 0)
        x->first_at_gap = x->nrec;
}

static void on_bad(void *arg, const char *err)
{
    struct run *x = arg;
    x->nbad++;
    tu_assert_contains(err, "not a core0 stream record");
}

static void on_end(void *arg, enum zos_stream_end how, const char *err)
{
    struct run *x = arg;
    x->ended = true;
    x->how = how;
    tu_sfmt(x->err, sizeof(x->err), "%s", err != NULL ? err : "");
    event_base_loopexit(x->base, NULL);
}

static void run_start(struct run *x, const char *id, int port)
{
    static const struct zos_stream_reader_cbs cbs = {on_rec, on_gap, on_end, on_bad};
    struct zos_link_opts lo = {.pinned = true, .connect_timeout_ms = 5000};
    x->base = event_base_new();
    assert_non_null(x->base);
    x->id = id;
    x->node = (struct zos_node_conf){.name = "kv", .address = "127.0.0.1", .port = port};
    x->link = zos_link_new(x->base, NULL, &x->node, NULL, &lo);
    assert_non_null(x->link);
    x->r = zos_stream_reader_new(x->base, x->link, id, &cbs, x);
    assert_non_null(x->r);
}

/* Turns the loop until end_fn (or an exit asked by a hook); 20 s at most: no hang. */
static void run_loop(struct run *x)
{
    struct timeval guard = {20, 0};
    event_base_loopexit(x->base, &guard);
    event_base_dispatch(x->base);
}

static void run_free(struct run *x)
{
    zos_stream_reader_free(x->r);
    event_base_free(x->base);
}

static void test_reader_in_order_until_the_marker(void **state)
{
    struct run x = {0};
    kv("DEL stream:j1");
    push_records("j1", 0, 3, 65537);
    run_start(&x, "j1", fx.port);
    push_records("j1", 3, 2, 131073);
    push_end("j1", false);
    push_records("j1", 5, 1, 65537); /* nothing follows the marker: never read */
    run_loop(&x);
    assert_true(x.ended);
    assert_int_equal(x.how, ZOS_STREAM_END_MARKER);
    assert_int_equal(x.nrec, 6);
    for (int i = 0; i < 5; i++)
        assert_int_equal(x.texts[i], i);
    assert_int_equal(x.texts[5], -2);
    assert_int_equal(x.ngap + x.nbad, 0);
    assert_int_equal(zos_stream_reader_records(x.r), 6);
    run_free(&x);
}

static void test_reader_waits_for_records_still_to_come(void **state)
{
    /* The marker lands after the job ended (Corrections 8): still read. */
    struct run x = {.end_job_at = 2};
    kv("DEL stream:j2");
    run_start(&x, "j2", fx.port);
    push_records("j2", 0, 2, 65537);
    run_loop(&x);
    assert_int_equal(x.how, ZOS_STREAM_END_MARKER);
    assert_int_equal(x.nrec, 3);
    run_free(&x);
}

static void test_reader_quiet_end_without_a_marker(void **state)
{
    /* A job that never ran (UNKNOWN_CMD) writes no record at all. */
    struct run x = {0};
    kv("DEL stream:j3");
    run_start(&x, "j3", fx.port);
    zos_stream_reader_job_ended(x.r);
    run_loop(&x);
    assert_true(x.ended);
    assert_int_equal(x.how, ZOS_STREAM_END_QUIET);
    assert_int_equal(x.nrec, 0);
    run_free(&x);
}

static void test_reader_batches_and_reports_a_gap(void **state)
{
    /* 2500 records before anyone reads: core0's list keeps the newest 1000. */
    struct run x = {0};
    kv("DEL stream:j4");
    push_records("j4", 0, 2500, 65537);
    assert_int_equal(kv_int("LLEN stream:j4"), 1000);
    push_end("j4", true);
    kv("CONFIG RESETSTAT");
    run_start(&x, "j4", fx.port);
    run_loop(&x);
    assert_int_equal(x.how, ZOS_STREAM_END_MARKER);
    assert_int_equal(x.nrec, 1000); /* 1501..2499 and the marker */
    assert_int_equal(x.ngap, 1);
    assert_int_equal(x.first_at_gap, 0); /* reported before the first record after it */
    for (int i = 0; i < 999; i++)
        assert_int_equal(x.texts[i], 1501 + i);
    assert_int_equal(x.texts[999], -2);
    /* a round trip brings many records, not one */
    assert_true(calls_of("blpop") <= 2);
    assert_true(calls_of("llen") <= 1000 / 64 + 2);
    run_free(&x);
}

/* Clients blocked in redis now (INFO clients). */
static long long blocked_clients(void)
{
    redisReply *r = redisCommand(fx.kv, "INFO clients");
    assert_non_null(r);
    const char *p = strstr(r->str, "blocked_clients:");
    long long n = p != NULL ? atoll(p + strlen("blocked_clients:")) : -1;
    freeReplyObject(r);
    return n;
}

static void test_reader_gap_after_an_empty_slice(void **state)
{
    /* The reader stopped (a suspended zos) while its BLPOP slice ran out: the
     * records that came meanwhile fill the list, and the BLPOP that comes
     * next takes one before the batch's LLEN looks. */
    struct run x = {0};
    kv("DEL stream:j9");
    run_start(&x, "j9", fx.port);
    for (int64_t end = tu_now_ms() + 10000; blocked_clients() < 1 && tu_now_ms() < end;)
        event_base_loop(x.base, EVLOOP_NONBLOCK);
    assert_int_equal(blocked_clients(), 1); /* in BLPOP */
    for (int64_t end = tu_now_ms() + 10000; blocked_clients() > 0 && tu_now_ms() < end;)
        tu_nap_ms(20); /* the slice runs out, and nobody reads its nil */
    assert_int_equal(blocked_clients(), 0);
    push_records("j9", 0, 1500, 65537);
    push_end("j9", true);
    run_loop(&x);
    assert_int_equal(x.how, ZOS_STREAM_END_MARKER);
    assert_int_equal(x.ngap, 1);
    assert_int_equal(x.first_at_gap, 1); /* after the record of the BLPOP */
    assert_int_equal(x.nrec, 1000);
    assert_int_equal(x.texts[0], 501);
    run_free(&x);
}

static void test_reader_pause(void **state)
{
    struct run x = {.pause_at = 1};
    kv("DEL stream:j5");
    push_records("j5", 0, 1, 65537);
    run_start(&x, "j5", fx.port);
    run_loop(&x); /* until the pause */
    assert_int_equal(x.nrec, 1);
    struct timeval t = {0, 300 * 1000};
    push_records("j5", 1, 1200, 65537); /* while paused: the list fills up */
    push_end("j5", true);
    event_base_loopexit(x.base, &t);
    event_base_dispatch(x.base);
    assert_int_equal(x.nrec, 1); /* nothing read while paused */
    assert_false(x.ended);
    zos_stream_reader_pause(x.r, false);
    run_loop(&x);
    assert_int_equal(x.how, ZOS_STREAM_END_MARKER);
    assert_int_equal(x.nrec, 1 + 1000);
    assert_int_equal(x.ngap, 1);
    assert_int_equal(x.first_at_gap, 1);
    assert_int_equal(x.texts[1], 202);
    run_free(&x);
}

static void test_reader_skips_what_is_no_record(void **state)
{
    struct run x = {0};
    kv("DEL stream:j6");
    kv("RPUSH stream:j6 %s", "not json");
    push_records("j6", 0, 1, 65537);
    kv("RPUSH stream:j6 %s", "{\"message\":{}}");
    push_end("j6", true);
    run_start(&x, "j6", fx.port);
    run_loop(&x);
    assert_int_equal(x.how, ZOS_STREAM_END_MARKER);
    assert_int_equal(x.nbad, 2);
    assert_int_equal(x.nrec, 2);
    run_free(&x);
}

static void test_reader_errors(void **state)
{
    struct run x = {0};
    kv("SET stream:j7 text");
    run_start(&x, "j7", fx.port);
    run_loop(&x);
    assert_int_equal(x.how, ZOS_STREAM_END_ERROR);
    tu_assert_contains(x.err, "WRONGTYPE");
    run_free(&x);
    kv("DEL stream:j7");

    struct run y = {0};
    int port = tu_free_port();
    run_start(&y, "j7", port);
    run_loop(&y);
    assert_int_equal(y.how, ZOS_STREAM_END_ERROR);
    tu_assert_contains(y.err, "refused");
    run_free(&y);
}

static void test_reader_freed_inside_a_callback(void **state)
{
    /* Freed from rec_fn, with a batch still in flight: no callback after, no
     * use after free (ASan / valgrind builds tell). */
    struct run x = {.free_at = 2};
    kv("DEL stream:j8");
    push_records("j8", 0, 100, 65537);
    run_start(&x, "j8", fx.port);
    run_loop(&x);
    for (int i = 0; i < 3; i++)
        event_base_loop(x.base, EVLOOP_NONBLOCK); /* the deferred part of the free */
    assert_int_equal(x.nrec, 2);
    assert_false(x.ended); /* (leaks and uses after free: the sanitizer build tells) */
    run_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_appendix_a),
        cmocka_unit_test(test_parse_container_epoch_and_escapes),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_level_names),
        cmocka_unit_test(test_reader_in_order_until_the_marker),
        cmocka_unit_test(test_reader_waits_for_records_still_to_come),
        cmocka_unit_test(test_reader_quiet_end_without_a_marker),
        cmocka_unit_test(test_reader_batches_and_reports_a_gap),
        cmocka_unit_test(test_reader_gap_after_an_empty_slice),
        cmocka_unit_test(test_reader_pause),
        cmocka_unit_test(test_reader_skips_what_is_no_record),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_reader_freed_inside_a_callback),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

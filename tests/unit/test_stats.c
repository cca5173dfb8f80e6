/* test_stats.c -- unit tests of stats: the latency histogram's buckets,
 * quantiles of known inputs, the rotation of its windows, fixed memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "zos/stats.h"

#include <stdlib.h>
#include <string.h>

#define MIN_MS (ZOS_HIST_WINDOWS * ZOS_HIST_WINDOW_MS) /* what a summary covers */

/* Every value lands in a bucket that holds it; buckets go up with the
 * values, without gaps, and none is wider than a quarter of its low edge. */
static void test_buckets_cover_every_value(void **state)
{
    unsigned prev = 0;
    uint32_t prev_hi = 0;
    for (uint64_t v = 0; v < 200000; v++) {
        uint32_t lo, hi;
        unsigned b = zos_hist_bucket(v, &lo, &hi);
        assert_true(lo <= v && v <= hi);
        assert_true(b < ZOS_HIST_BUCKETS);
        if (b != prev) {
            assert_int_equal(b, prev + 1);
            assert_int_equal(lo, prev_hi + 1);
        }
        if (lo >= 4)
            assert_true((uint64_t)(hi - lo + 1) * 4 <= lo);
        prev = b;
        prev_hi = hi;
    }
    uint32_t lo, hi;
    assert_int_equal(zos_hist_bucket(UINT32_MAX, &lo, &hi), ZOS_HIST_BUCKETS - 1);
    assert_int_equal(hi, UINT32_MAX);
    assert_int_equal(zos_hist_bucket((uint64_t)1 << 40, NULL, NULL), ZOS_HIST_BUCKETS - 1);
    assert_int_equal(zos_hist_bucket(1u << 31, &lo, &hi), ZOS_HIST_BUCKETS - 4);
    assert_int_equal(lo, 1u << 31);
}

static void test_one_value_repeated_is_exact(void **state)
{
    struct zos_hist h;
    struct zos_hist_summary s;
    zos_hist_init(&h);
    for (int i = 0; i < 1000; i++)
        zos_hist_record(&h, 100, 5000);
    zos_hist_summary(&h, 5000, &s);
    assert_int_equal(s.count, 1000);
    assert_int_equal(s.p50_us, 100);
    assert_int_equal(s.p99_us, 100);
    assert_int_equal(s.max_us, 100);
}

/* 1..1000 us once each: the median is 500 (reported as its bucket's upper
 * edge, 511, within 25%), p99 990 (its bucket reaches past 1000: the max). */
static void test_uniform_quantiles(void **state)
{
    struct zos_hist h;
    struct zos_hist_summary s;
    zos_hist_init(&h);
    for (uint64_t v = 1; v <= 1000; v++)
        zos_hist_record(&h, v, 1234);
    zos_hist_summary(&h, 1234, &s);
    assert_int_equal(s.count, 1000);
    assert_int_equal(s.max_us, 1000);
    assert_true(s.p50_us >= 500 && s.p50_us <= 625);
    assert_int_equal(s.p50_us, 511);
    assert_true(s.p99_us >= 990 && s.p99_us <= 1000);
    assert_int_equal(zos_hist_quantile(&h, 1234, 0.001), 1);
    assert_int_equal(zos_hist_quantile(&h, 1234, 1.0), 1000);
}

/* 990 fast replies and 10 slow ones: p99 is still fast, p99.5 is slow.  A
 * quantile is its bucket's upper edge (within 25% above), at most the max. */
static void test_tail_quantiles(void **state)
{
    struct zos_hist h;
    struct zos_hist_summary s;
    zos_hist_init(&h);
    for (int i = 0; i < 990; i++)
        zos_hist_record(&h, 100, 0);
    for (int i = 0; i < 10; i++)
        zos_hist_record(&h, 100000, 0);
    zos_hist_summary(&h, 0, &s);
    assert_int_equal(s.p50_us, 111); /* the upper edge of 100's bucket, [96, 111] */
    assert_int_equal(s.p99_us, 111);
    assert_int_equal(s.max_us, 100000);
    assert_int_equal(zos_hist_quantile(&h, 0, 0.995), 100000);
}

static void test_empty_is_zero(void **state)
{
    struct zos_hist h;
    struct zos_hist_summary s;
    zos_hist_init(&h);
    zos_hist_summary(&h, 777, &s);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.p50_us, 0);
    assert_int_equal(s.p99_us, 0);
    assert_int_equal(s.max_us, 0);
    assert_int_equal(zos_hist_quantile(&h, 777, 0.5), 0);
}

/* A minute later the slow values are gone; the fast ones stay until they
 * are a minute old themselves. */
static void test_windows_rotate(void **state)
{
    struct zos_hist h;
    struct zos_hist_summary s;
    long long t0 = 1000000; /* any monotonic origin */
    zos_hist_init(&h);
    for (int i = 0; i < 1000; i++)
        zos_hist_record(&h, 5000, t0);
    for (int i = 0; i < 10; i++)
        zos_hist_record(&h, 10, t0 + 30000);

    zos_hist_summary(&h, t0 + 55000, &s);
    assert_int_equal(s.count, 1010);
    assert_int_equal(s.max_us, 5000);
    assert_int_equal(s.p50_us, 5000);

    zos_hist_summary(&h, t0 + MIN_MS + ZOS_HIST_WINDOW_MS, &s); /* t0's window is out */
    assert_int_equal(s.count, 10);
    assert_int_equal(s.max_us, 10);
    assert_int_equal(s.p50_us, 10);
    assert_int_equal(s.p99_us, 10);

    zos_hist_summary(&h, t0 + 30000 + MIN_MS + ZOS_HIST_WINDOW_MS, &s);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.max_us, 0);
}

/* A window's slot comes back a minute later: what it held is dropped, not
 * added to, and a summary read before it is reused never counts it twice. */
static void test_slot_reused(void **state)
{
    struct zos_hist h;
    struct zos_hist_summary s;
    zos_hist_init(&h);
    zos_hist_record(&h, 7000, 0);
    zos_hist_record(&h, 7000, 0);
    zos_hist_record(&h, 3, MIN_MS); /* same slot, six windows on */
    zos_hist_summary(&h, MIN_MS, &s);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.max_us, 3);
    zos_hist_summary(&h, MIN_MS * 100, &s); /* the clock jumped far ahead */
    assert_int_equal(s.count, 0);
}

/* Fixed memory: the histogram is a plain value (no pointer inside), a few
 * KB, and a long run through it keeps only the last minute. */
static void test_fixed_memory(void **state)
{
    static struct zos_hist h; /* static: the same bytes all along */
    struct zos_hist_summary s;
    assert_true(sizeof(h) <= 4096);
    zos_hist_init(&h);
    long long now = 0;
    for (long long i = 0; i < 1000000; i++) { /* one per ms for 1000 s, 1 us to 1 s */
        now = i;
        zos_hist_record(&h, (uint64_t)(i % 1000000) + 1, now);
    }
    zos_hist_summary(&h, now, &s);
    /* now = 999,999 ms: windows of 940,000..999,999 ms, 60,000 values */
    assert_int_equal(s.count, 60000);
    assert_int_equal(s.max_us, 1000000);
    assert_true(s.p50_us >= 970000 && s.p50_us <= 1000000);
}

/* The link figures: the histogram comes with the first latency, counts and
 * sums are kept since the start. */
static void test_link_stats(void **state)
{
    struct zos_node_stats *ns = zos_node_stats_new();
    struct zos_hist_summary s;
    assert_non_null(ns);
    assert_true(ns->links.timed);
    assert_false(ns->job_links.timed);
    assert_null(ns->links.hist);
    zos_link_stats_summary(&ns->links, 0, &s);
    assert_int_equal(s.count, 0);
    zos_link_stats_latency(&ns->links, 250, 10);
    zos_link_stats_latency(&ns->links, 750, 20);
    assert_non_null(ns->links.hist);
    assert_int_equal(ns->links.latency_count, 2);
    assert_int_equal(ns->links.latency_sum_us, 1000);
    zos_link_stats_summary(&ns->links, 30, &s);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.max_us, 750);
    zos_link_stats_summary(&ns->links, 10 + 2 * MIN_MS, &s);
    assert_int_equal(s.count, 0);
    assert_int_equal(ns->links.latency_count, 2); /* the totals stay */
    zos_node_stats_free(ns);
    zos_node_stats_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_cover_every_value),
        cmocka_unit_test(test_one_value_repeated_is_exact),
        cmocka_unit_test(test_uniform_quantiles),
        cmocka_unit_test(test_tail_quantiles),
        cmocka_unit_test(test_empty_is_zero),
        cmocka_unit_test(test_windows_rotate),
        cmocka_unit_test(test_slot_reused),
        cmocka_unit_test(test_fixed_memory),
        cmocka_unit_test(test_link_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

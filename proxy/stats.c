/* stats.c -- per-node counters and the last minute's latency histogram. */
#include "zos/stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void zos_hist_init(struct zos_hist *h)
{
    memset(h, 0, sizeof(*h));
    for (size_t i = 0; i < ZOS_HIST_WINDOWS; i++)
        h->epoch[i] = -1;
}

/* The values of bucket B: [*LO, *HI]. */
static void bucket_range(unsigned b, uint32_t *lo, uint32_t *hi)
{
    if (b < 4) {
        *lo = *hi = b;
        return;
    }
    unsigned e = b / 4 + 1, sub = b % 4;
    *lo = (uint32_t)((uint64_t)(4 + sub) << (e - 2));
    *hi = (uint32_t)(((uint64_t)(5 + sub) << (e - 2)) - 1);
}

/* Values 0..3 have a bucket each; above, each power of two [2^e, 2^(e+1))
 * is cut in 4 equal buckets: b = 4 (e - 1) + the two bits after the top one. */
unsigned zos_hist_bucket(uint64_t us, uint32_t *lo, uint32_t *hi)
{
    if (us > ZOS_HIST_MAX_US)
        us = ZOS_HIST_MAX_US;
    unsigned b;
    if (us < 4) {
        b = (unsigned)us;
    } else {
        unsigned e = 63 - (unsigned)__builtin_clzll(us);
        b = (e - 1) * 4 + (unsigned)((us >> (e - 2)) & 3);
    }
    if (lo != NULL && hi != NULL)
        bucket_range(b, lo, hi);
    return b;
}

void zos_hist_record(struct zos_hist *h, uint64_t us, long long now_ms)
{
    long long epoch = now_ms / ZOS_HIST_WINDOW_MS;
    size_t w = (size_t)(epoch % ZOS_HIST_WINDOWS);
    if (h->epoch[w] != epoch) { /* a window of a minute ago: reused */
        memset(h->count[w], 0, sizeof(h->count[w]));
        h->max_us[w] = 0;
        h->epoch[w] = epoch;
    }
    uint32_t v = us > ZOS_HIST_MAX_US ? ZOS_HIST_MAX_US : (uint32_t)us;
    h->count[w][zos_hist_bucket(v, NULL, NULL)]++;
    if (v > h->max_us[w])
        h->max_us[w] = v;
}

static bool window_live(const struct zos_hist *h, size_t w, long long now_ms)
{
    long long epoch = now_ms / ZOS_HIST_WINDOW_MS;
    return h->epoch[w] >= 0 && h->epoch[w] <= epoch && h->epoch[w] > epoch - ZOS_HIST_WINDOWS;
}

/* The live windows summed per bucket; returns the count, *MAX the largest value. */
static unsigned long long merge(const struct zos_hist *h, long long now_ms,
                                unsigned long long sum[ZOS_HIST_BUCKETS], uint32_t *max)
{
    unsigned long long n = 0;
    memset(sum, 0, ZOS_HIST_BUCKETS * sizeof(sum[0]));
    *max = 0;
    for (size_t w = 0; w < ZOS_HIST_WINDOWS; w++) {
        if (!window_live(h, w, now_ms))
            continue;
        for (size_t b = 0; b < ZOS_HIST_BUCKETS; b++) {
            sum[b] += h->count[w][b];
            n += h->count[w][b];
        }
        if (h->max_us[w] > *max)
            *max = h->max_us[w];
    }
    return n;
}

/* The upper edge of the bucket holding the value of rank ceil(Q * N), at most MAX. */
static uint32_t quantile(const unsigned long long sum[ZOS_HIST_BUCKETS], unsigned long long n,
                         uint32_t max, double q)
{
    if (n == 0)
        return 0;
    double r = q * (double)n;
    unsigned long long rank = (unsigned long long)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    unsigned long long seen = 0;
    for (unsigned b = 0; b < ZOS_HIST_BUCKETS; b++) {
        seen += sum[b];
        if (seen >= rank) {
            uint32_t lo, hi;
            bucket_range(b, &lo, &hi);
            return hi < max ? hi : max;
        }
    }
    return max;
}

void zos_hist_summary(const struct zos_hist *h, long long now_ms, struct zos_hist_summary *out)
{
    unsigned long long sum[ZOS_HIST_BUCKETS];
    uint32_t max;
    out->count = merge(h, now_ms, sum, &max);
    out->max_us = max;
    out->p50_us = quantile(sum, out->count, max, 0.5);
    out->p99_us = quantile(sum, out->count, max, 0.99);
}

uint32_t zos_hist_quantile(const struct zos_hist *h, long long now_ms, double q)
{
    unsigned long long sum[ZOS_HIST_BUCKETS];
    uint32_t max;
    unsigned long long n = merge(h, now_ms, sum, &max);
    return quantile(sum, n, max, q);
}

struct zos_node_stats *zos_node_stats_new(void)
{
    struct zos_node_stats *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->links.timed = true;
    s->changed_ms = zos_stats_now_ms();
    return s;
}

void zos_node_stats_free(struct zos_node_stats *s)
{
    if (s == NULL)
        return;
    free(s->links.hist);
    free(s->job_links.hist);
    free(s);
}

void zos_link_stats_latency(struct zos_link_stats *s, uint64_t us, long long now_ms)
{
    s->latency_count++;
    s->latency_sum_us += us;
    if (s->hist == NULL) { /* once per node: most configured nodes are never used */
        if ((s->hist = malloc(sizeof(*s->hist))) == NULL)
            return;
        zos_hist_init(s->hist);
    }
    zos_hist_record(s->hist, us, now_ms);
}

void zos_link_stats_summary(const struct zos_link_stats *s, long long now_ms,
                            struct zos_hist_summary *out)
{
    if (s->hist == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    zos_hist_summary(s->hist, now_ms, out);
}

long long zos_stats_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t zos_stats_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

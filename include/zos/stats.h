/* stats.h -- per-node figures: counters the links add to, and the latency
 * of the last minute in a small fixed-memory histogram.
 *
 *   link.c: send --> requests, bytes_out      reply --> bytes_in, latency (shared links)
 *           failed request --> errors         connect after a failure --> reconnects
 *   verbs_job.c: a job verb ends --> jobs, jobs_failed, jobs_timed_out
 *   verbs.c (INFO, ZOS.NODES), metrics.c (Prometheus): read them
 *
 * The histogram: 124 log-scale buckets (4 per power of two, 1 us to 71 min,
 * at most 25% wide) per 10 s window, 6 windows in a ring.  Recording is an
 * index computation and an increment; nothing is allocated per request.  A
 * quantile is the upper edge of the bucket it falls in, never above the
 * largest value seen: for one value repeated, exactly that value.
 */
#ifndef ZOS_STATS_H
#define ZOS_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZOS_HIST_BUCKETS   124
#define ZOS_HIST_WINDOWS   6
#define ZOS_HIST_WINDOW_MS 10000
#define ZOS_HIST_MAX_US    UINT32_MAX /* larger values count as this */

struct zos_hist {
    long long epoch[ZOS_HIST_WINDOWS]; /* now_ms / window of the counts held, -1: none */
    uint32_t max_us[ZOS_HIST_WINDOWS];
    uint32_t count[ZOS_HIST_WINDOWS][ZOS_HIST_BUCKETS];
};

/* What the windows of the last minute hold. */
struct zos_hist_summary {
    unsigned long long count;
    uint32_t p50_us, p99_us, max_us; /* 0 when count is 0 */
};

void zos_hist_init(struct zos_hist *h);
/* One value, at NOW_MS (a monotonic clock in ms; never going back). */
void zos_hist_record(struct zos_hist *h, uint64_t us, long long now_ms);
/* The values recorded in the window of NOW_MS and the five before it. */
void zos_hist_summary(const struct zos_hist *h, long long now_ms, struct zos_hist_summary *out);
/* The quantile Q (0 < Q <= 1) of those values; 0 when there is none. */
uint32_t zos_hist_quantile(const struct zos_hist *h, long long now_ms, double q);
/* The bucket of US and its value range [*LO, *HI] (for tests). */
unsigned zos_hist_bucket(uint64_t us, uint32_t *lo, uint32_t *hi);

/* What every link of one kind to a node adds up. */
struct zos_link_stats {
    unsigned long long requests;      /* sent, or refused because the node is down */
    unsigned long long errors;        /* requests that got no reply: refused, link lost, hung */
    unsigned long long error_replies; /* replies that are errors (-ERR, -BUSY, ...) */
    unsigned long long reconnects;    /* connects started after a failure */
    unsigned long long bytes_in, bytes_out; /* RESP bytes of replies and requests (before TLS) */
    unsigned long long latency_count, latency_sum_us; /* every reply timed, since the start */
    size_t open;                                      /* connections open or opening now */
    bool timed;            /* record latencies (shared links; not blocking or job waits) */
    struct zos_hist *hist; /* the last minute's; allocated at the first reply timed */
};

/* Everything the proxy counts for one node. */
struct zos_node_stats {
    struct zos_link_stats links;       /* lanes, pinned links, the control link */
    struct zos_link_stats job_links;   /* links waiting for core0 job results */
    unsigned long long jobs;           /* job verbs that ended: succeeded, failed or timed out */
    unsigned long long jobs_failed;    /* ... with an error: the job's, or the node's */
    unsigned long long jobs_timed_out; /* ... with the proxy's TIMEOUT */
    long long changed_ms;              /* the node's first lane last became ready or went down */
};

/* A node's figures, CHANGED_MS now (zos_stats_now_ms).  Caller frees with
 * zos_node_stats_free; NULL when out of memory. */
struct zos_node_stats *zos_node_stats_new(void);
void zos_node_stats_free(struct zos_node_stats *s); /* accepts NULL */

/* A reply to a request queued US microseconds before, read at NOW_MS. */
void zos_link_stats_latency(struct zos_link_stats *s, uint64_t us, long long now_ms);
/* The last minute's latencies of S (all 0 when none). */
void zos_link_stats_summary(const struct zos_link_stats *s, long long now_ms,
                            struct zos_hist_summary *out);

/* The clock of the figures: monotonic milliseconds, a few ms coarse. */
long long zos_stats_now_ms(void);
/* A fine monotonic clock for latencies, in microseconds. */
uint64_t zos_stats_now_us(void);

#endif

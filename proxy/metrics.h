/* metrics.h -- the proxy's per-node figures: read once for INFO, ZOS.NODES
 * and the Prometheus endpoint of [proxy] metrics-listen (HTTP, GET /metrics).
 */
#ifndef ZOS_METRICS_H
#define ZOS_METRICS_H

#include <stdint.h>

#include <event2/buffer.h>

#include "zos/link.h"
#include "zos/stats.h"

struct zos_server;
struct zos_node;

/* One node's figures at one moment. */
struct zos_node_figures {
    enum zos_link_state state; /* of its first lane */
    long long state_age_ms;    /* since the first lane last became ready or went down */
    size_t inflight;           /* requests waiting for a reply on its lanes and control link */
    int pinned;                /* pinned links in use */
    unsigned long long requests, errors, error_replies, reconnects, hangs;
    struct zos_hist_summary latency;                  /* the last minute's */
    unsigned long long latency_count, latency_sum_us; /* since the start */
    unsigned long long bytes_in, bytes_out;           /* every link, job links too */
    size_t links_open, job_links_open;
    unsigned long long jobs, jobs_failed, jobs_timed_out;
};

void zos_metrics_node(const struct zos_node *n, struct zos_node_figures *f);

/* Everything SRV counts, in the Prometheus text exposition format 0.0.4,
 * appended to OUT. */
void zos_metrics_text(const struct zos_server *srv, struct evbuffer *out);

/* Starts serving GET /metrics on [proxy] metrics-listen, when set (nothing
 * to do otherwise); with requirepass set, a scrape must give it as HTTP
 * Basic auth.  -1 with ERR when it cannot listen. */
int zos_metrics_start(struct zos_server *srv, char *err, size_t errlen);
/* Stops it and frees what it holds; accepts a server without one. */
void zos_metrics_stop(struct zos_server *srv);

#endif

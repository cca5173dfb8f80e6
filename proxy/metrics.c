/* metrics.c -- per-node figures for INFO and ZOS.NODES, and the Prometheus
 * endpoint of [proxy] metrics-listen.
 *
 *   scraper --GET /metrics--> evhttp (same loop) --> zos_metrics_text --> 200 text/plain
 *                             anything else: 404 (or 401 without requirepass's Basic auth)
 *
 * Families come one after another, each with its HELP and TYPE lines and a
 * sample per node (label node="<name>"; node names are letters, digits, '-',
 * '_' and '.', so they need no escaping).  The latency is a summary: the
 * quantiles 0.5 and 0.99 over the last minute, _sum and _count since the start.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"
#include "router.h"
#include "state.h"
#include "zos/zos.h"

struct zos_metrics {
    struct evhttp *http;
};

void zos_metrics_node(const struct zos_node *n, struct zos_node_figures *f)
{
    const struct zos_node_stats *st = n->stats;
    long long now = zos_stats_now_ms();
    memset(f, 0, sizeof(*f));
    f->state = zos_link_state(n->shared);
    f->state_age_ms = now - st->changed_ms;
    f->inflight = zos_router_inflight(n);
    f->pinned = n->pinned;
    f->requests = st->links.requests;
    f->errors = st->links.errors;
    f->error_replies = st->links.error_replies;
    f->reconnects = st->links.reconnects;
    f->hangs = zos_link_watch_hangs(n->watch);
    zos_link_stats_summary(&st->links, now, &f->latency);
    f->latency_count = st->links.latency_count;
    f->latency_sum_us = st->links.latency_sum_us;
    f->bytes_in = st->links.bytes_in + st->job_links.bytes_in;
    f->bytes_out = st->links.bytes_out + st->job_links.bytes_out;
    f->links_open = st->links.open;
    f->job_links_open = st->job_links.open;
    f->jobs = st->jobs;
    f->jobs_failed = st->jobs_failed;
    f->jobs_timed_out = st->jobs_timed_out;
}

/* ---- the text format ---- */

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u(struct evbuffer *out, const char *name, const char *node, unsigned long long v)
{
    evbuffer_add_printf(out, "%s{node=\"%s\"} %llu\n", name, node, v);
}

/* Seconds from microseconds; NaN when there was no value (COUNT 0). */
static void sample_s(struct evbuffer *out, const char *name, const char *labels, uint64_t us,
                     unsigned long long count)
{
    if (count == 0)
        evbuffer_add_printf(out, "%s{%s} NaN\n", name, labels);
    else
        evbuffer_add_printf(out, "%s{%s} %.6f\n", name, labels, (double)us / 1e6);
}

/* "\", '"' and newlines escaped, for a label value. */
static void escape_label(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (; *in != '\0' && o + 3 < len; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n') {
            out[o++] = '\\';
            out[o++] = *in == '\n' ? 'n' : *in;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static void proxy_families(const struct zos_server *srv, struct evbuffer *out)
{
    family(out, "zos_proxy_uptime_seconds", "gauge", "Seconds since zos-proxy started.");
    evbuffer_add_printf(out, "zos_proxy_uptime_seconds %lld\n",
                        (long long)(time(NULL) - srv->started));
    family(out, "zos_proxy_connected_clients", "gauge", "Client connections open.");
    evbuffer_add_printf(out, "zos_proxy_connected_clients %zu\n", srv->nclients);
    family(out, "zos_proxy_connections_received_total", "counter", "Client connections accepted.");
    evbuffer_add_printf(out, "zos_proxy_connections_received_total %llu\n", srv->total_connections);
    family(out, "zos_proxy_rejected_connections_total", "counter",
           "Client connections refused past max-clients.");
    evbuffer_add_printf(out, "zos_proxy_rejected_connections_total %llu\n",
                        srv->rejected_connections);
    family(out, "zos_proxy_commands_processed_total", "counter", "Commands read from clients.");
    evbuffer_add_printf(out, "zos_proxy_commands_processed_total %llu\n", srv->total_commands);
    family(out, "zos_proxy_links_open", "gauge",
           "Node connections open, every node (the descriptor budget counts these).");
    evbuffer_add_printf(out, "zos_proxy_links_open %zu\n", zos_link_gate_open(srv->router->gate));
    family(out, "zos_proxy_links_budget", "gauge",
           "Node connections allowed open at once (descriptors).");
    evbuffer_add_printf(out, "zos_proxy_links_budget %zu\n", srv->link_budget);
}

/* The counters and gauges that are one number per node. */
struct per_node {
    const char *name, *type, *help;
    size_t offset; /* of an unsigned long long or size_t field in zos_node_figures */
    bool is_size;
};

#define FIG(f) offsetof(struct zos_node_figures, f)

static const struct per_node per_node[] = {
    {"zos_proxy_node_requests_total", "counter",
     "Requests sent to the node (health PINGs included), or refused while it was down.",
     FIG(requests), false},
    {"zos_proxy_node_errors_total", "counter",
     "Requests that got no reply from the node: refused while down, connection lost, node hung.",
     FIG(errors), false},
    {"zos_proxy_node_error_replies_total", "counter",
     "Replies of the node that are errors (-ERR, -BUSY, ...).", FIG(error_replies), false},
    {"zos_proxy_node_reconnects_total", "counter",
     "Connects to the node started after a connection to it failed.", FIG(reconnects), false},
    {"zos_proxy_node_hangs_total", "counter", "Times the node answered no PING (node-timeout).",
     FIG(hangs), false},
    {"zos_proxy_node_inflight", "gauge",
     "Requests waiting for a reply on the node's shared connections.", FIG(inflight), true},
    {"zos_proxy_node_received_bytes_total", "counter",
     "RESP bytes read from the node (before TLS), job connections included.", FIG(bytes_in), false},
    {"zos_proxy_node_sent_bytes_total", "counter",
     "RESP bytes written to the node (before TLS), job connections included.", FIG(bytes_out),
     false},
    {"zos_proxy_node_links_open", "gauge",
     "Connections to the node open or opening: lanes, pinned, control.", FIG(links_open), true},
    {"zos_proxy_node_job_links_open", "gauge",
     "Connections to the node waiting for core0 job results (at most job-links).",
     FIG(job_links_open), true},
    {"zos_proxy_node_jobs_total", "counter",
     "ZOS.* job verbs that ended (succeeded, failed or timed out).", FIG(jobs), false},
    {"zos_proxy_node_jobs_failed_total", "counter",
     "ZOS.* job verbs that ended with an error: the job's or the node's.", FIG(jobs_failed), false},
    {"zos_proxy_node_jobs_timed_out_total", "counter",
     "ZOS.* job verbs whose result did not come within their TIMEOUT.", FIG(jobs_timed_out), false},
};

static unsigned long long figure(const struct zos_node_figures *f, const struct per_node *p)
{
    const char *base = (const char *)f + p->offset;
    if (p->is_size)
        return *(const size_t *)(const void *)base;
    return *(const unsigned long long *)(const void *)base;
}

static void state_families(const struct zos_router *r, const struct zos_node_figures *fig,
                           struct evbuffer *out)
{
    static const enum zos_link_state states[] = {ZOS_LINK_IDLE, ZOS_LINK_CONNECTING, ZOS_LINK_READY,
                                                 ZOS_LINK_DOWN};
    char addr[600];
    family(out, "zos_proxy_node_info", "gauge", "A configured node: its address and TLS.");
    for (size_t i = 0; i < r->nnodes; i++) {
        const struct zos_node_conf *c = r->nodes[i]->conf;
        escape_label(c->address, addr, sizeof(addr));
        evbuffer_add_printf(out,
                            "zos_proxy_node_info{node=\"%s\",address=\"%s\",port=\"%d\","
                            "tls=\"%s\"} 1\n",
                            c->name, addr, c->port, c->tls ? "yes" : "no");
    }
    family(out, "zos_proxy_node_up", "gauge", "1 when the node's first connection is ready.");
    for (size_t i = 0; i < r->nnodes; i++)
        sample_u(out, "zos_proxy_node_up", r->nodes[i]->conf->name, fig[i].state == ZOS_LINK_READY);
    family(out, "zos_proxy_node_state", "gauge",
           "The state of the node's first connection: 1 for the current one.");
    for (size_t i = 0; i < r->nnodes; i++)
        for (size_t s = 0; s < ZOS_ARRAY_LEN(states); s++)
            evbuffer_add_printf(out, "zos_proxy_node_state{node=\"%s\",state=\"%s\"} %d\n",
                                r->nodes[i]->conf->name, zos_link_state_name(states[s]),
                                fig[i].state == states[s]);
    family(out, "zos_proxy_node_state_age_seconds", "gauge",
           "Seconds since the node's first connection last became ready or went down "
           "(or since the start).");
    for (size_t i = 0; i < r->nnodes; i++)
        evbuffer_add_printf(out, "zos_proxy_node_state_age_seconds{node=\"%s\"} %.3f\n",
                            r->nodes[i]->conf->name, (double)fig[i].state_age_ms / 1000.0);
}

static void latency_families(const struct zos_router *r, const struct zos_node_figures *fig,
                             struct evbuffer *out)
{
    char labels[160];
    family(out, "zos_proxy_node_latency_seconds", "summary",
           "Time from a request queued to its reply read, on the node's shared connections; "
           "quantiles over the last minute.");
    for (size_t i = 0; i < r->nnodes; i++) {
        const struct zos_node_figures *f = &fig[i];
        const char *name = r->nodes[i]->conf->name;
        snprintf(labels, sizeof(labels), "node=\"%s\",quantile=\"0.5\"", name);
        sample_s(out, "zos_proxy_node_latency_seconds", labels, f->latency.p50_us,
                 f->latency.count);
        snprintf(labels, sizeof(labels), "node=\"%s\",quantile=\"0.99\"", name);
        sample_s(out, "zos_proxy_node_latency_seconds", labels, f->latency.p99_us,
                 f->latency.count);
        evbuffer_add_printf(out, "zos_proxy_node_latency_seconds_sum{node=\"%s\"} %.6f\n", name,
                            (double)f->latency_sum_us / 1e6);
        sample_u(out, "zos_proxy_node_latency_seconds_count", name, f->latency_count);
    }
    family(out, "zos_proxy_node_latency_max_seconds", "gauge",
           "The longest of those over the last minute (NaN: no reply in the last minute).");
    for (size_t i = 0; i < r->nnodes; i++) {
        snprintf(labels, sizeof(labels), "node=\"%s\"", r->nodes[i]->conf->name);
        sample_s(out, "zos_proxy_node_latency_max_seconds", labels, fig[i].latency.max_us,
                 fig[i].latency.count);
    }
}

void zos_metrics_text(const struct zos_server *srv, struct evbuffer *out)
{
    const struct zos_router *r = srv->router;
    struct zos_node_figures *fig = calloc(r->nnodes ? r->nnodes : 1, sizeof(*fig));
    proxy_families(srv, out);
    if (fig == NULL)
        return; /* out of memory: the proxy's own figures only */
    for (size_t i = 0; i < r->nnodes; i++)
        zos_metrics_node(r->nodes[i], &fig[i]);
    state_families(r, fig, out);
    for (size_t k = 0; k < ZOS_ARRAY_LEN(per_node); k++) {
        const struct per_node *p = &per_node[k];
        family(out, p->name, p->type, p->help);
        for (size_t i = 0; i < r->nnodes; i++)
            sample_u(out, p->name, r->nodes[i]->conf->name, figure(&fig[i], p));
    }
    family(out, "zos_proxy_node_pinned", "gauge",
           "Pinned connections in use (blocking and stateful commands).");
    for (size_t i = 0; i < r->nnodes; i++)
        sample_u(out, "zos_proxy_node_pinned", r->nodes[i]->conf->name,
                 (unsigned long long)fig[i].pinned);
    latency_families(r, fig, out);
    free(fig);
}

/* ---- the HTTP endpoint ---- */

/* "Basic base64(user:password)" whose password is requirepass (any user). */
static bool authorized(const struct zos_server *srv, struct evhttp_request *req)
{
    const char *want = srv->conf->proxy.requirepass;
    if (want == NULL)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncasecmp(h, "Basic ", 6) != 0)
        return false;
    h += 6;
    size_t len = strlen(h);
    if (len == 0 || len % 4 != 0 || len > 4096)
        return false;
    size_t cap = len / 4 * 3 + 1;
    unsigned char *dec = malloc(cap);
    int n = dec != NULL ? EVP_DecodeBlock(dec, (const unsigned char *)h, (int)len) : -1;
    bool ok = false;
    if (n > 0) {
        n -= (h[len - 1] == '=') + (h[len - 2] == '='); /* DecodeBlock counts the padding */
        const unsigned char *colon = memchr(dec, ':', (size_t)n);
        size_t plen = colon != NULL ? (size_t)n - (size_t)(colon + 1 - dec) : 0;
        ok = colon != NULL && plen == strlen(want) && CRYPTO_memcmp(colon + 1, want, plen) == 0;
    }
    if (dec != NULL)
        OPENSSL_cleanse(dec, cap);
    free(dec);
    return ok;
}

static void http_cb(struct evhttp_request *req, void *arg)
{
    struct zos_server *srv = arg;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *body = evbuffer_new();

    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(headers, "Cache-Control", "no-store");
    if (!authorized(srv, req)) {
        evhttp_add_header(headers, "WWW-Authenticate", "Basic realm=\"zos-proxy\"");
        evbuffer_add_printf(body, "401 Unauthorized: give [proxy] requirepass as the password "
                                  "(HTTP Basic auth, any user name)\n");
        evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
        evhttp_send_reply(req, 401, "Unauthorized", body);
    } else if (path == NULL || strcmp(path, "/metrics") != 0) {
        evbuffer_add_printf(body, "404 Not Found: the metrics are at /metrics\n");
        evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
        evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", body);
    } else {
        zos_metrics_text(srv, body);
        evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, HTTP_OK, "OK", body);
    }
    evbuffer_free(body);
}

int zos_metrics_start(struct zos_server *srv, char *err, size_t errlen)
{
    const char *addr = srv->conf->proxy.metrics_listen;
    char host[256];
    int port;
    if (addr == NULL)
        return 0;
    if (zos_conf_split_hostport(addr, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "metrics-listen '%s': expected host:port", addr);
        return -1;
    }
    struct zos_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->http = evhttp_new(srv->base)) == NULL) {
        free(m);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->metrics = m;
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(m->http, 16384);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_timeout(m->http, 10);
    evhttp_set_gencb(m->http, http_cb, srv);
    errno = 0;
    if (evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port) == NULL) {
        snprintf(err, errlen, "metrics-listen '%s': %s", addr,
                 errno != 0 ? strerror(errno) : "cannot listen");
        return -1;
    }
    log_info("metrics on http://%s/metrics", addr);
    return 0;
}

void zos_metrics_stop(struct zos_server *srv)
{
    struct zos_metrics *m = srv->metrics;
    if (m == NULL)
        return;
    evhttp_free(m->http);
    free(m);
    srv->metrics = NULL;
}

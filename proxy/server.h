/* server.h -- the proxy: listeners, clients, nodes, signals, shutdown. */
#ifndef ZOS_SERVER_H
#define ZOS_SERVER_H

#include <stdbool.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "client.h"
#include "zos/conf.h"
#include "zos/resp.h"
#include "router.h"

struct zos_listener {
    struct zos_server *srv;
    struct evconnlistener *lev;
    struct zos_node *node; /* per-node listener, or NULL */
    char *addr;            /* "host:port" or unix path, for messages */
    struct event *resume;  /* re-enables accepting after running out of fds */
};

struct zos_server {
    struct event_base *base;
    struct evdns_base *dns;
    struct zos_conf *conf;       /* owned: the config in force */
    struct zos_conf **old_confs; /* replaced by reloads; links and nodes still borrow from them */
    size_t nold_confs;
    struct zos_router *router;
    struct zos_listener *listeners;
    size_t nlisteners;
    int max_clients;    /* max-clients, or fewer when descriptors are short */
    size_t link_budget; /* node connections open at once (the router gate's budget) */
    struct zos_client *clients;
    size_t nclients;
    struct zos_resp_limits limits;
    unsigned long long next_client_id;
    unsigned long long total_connections;
    unsigned long long total_commands;
    unsigned long long rejected_connections;
    time_t started;
    struct event *signals[4];
    unsigned long long reloads;
    struct event *shutdown_timer;
    struct event *flush;      /* activated when a client has output (client.c) */
    struct zos_client *dirty; /* clients with output to write this turn */
    bool shutting_down;
    struct zos_ssh_workers *ssh; /* ZOS.SSH worker threads (verbs_ssh.c), NULL until used */
    struct zos_metrics *metrics; /* the HTTP endpoint of metrics-listen (metrics.c), or NULL */
};

/* Every check zos_server_new makes of CONF before it binds anything (a
 * listener beyond loopback without requirepass, CA files that cannot be
 * read): what `zos-proxy -t` runs too.  -1 with ERR. */
int zos_server_check(const struct zos_conf *conf, char *err, size_t errlen);

/* Takes CONF.  Binds every listener (TCP, unix socket, per-node ports).
 * NULL with ERR (CONF freed). */
struct zos_server *zos_server_new(struct zos_conf *conf, char *err, size_t errlen);
/* SIGHUP: reads the config file again and applies it without dropping
 * anyone (see zos_router_reload); a file with errors changes nothing (the
 * error is logged with file:line).  0, or -1 with ERR. */
int zos_server_reload(struct zos_server *srv, char *err, size_t errlen);

/* Runs the loop until SIGTERM/SIGINT and the bounded drain that follows. */
int zos_server_run(struct zos_server *srv);
void zos_server_free(struct zos_server *srv);

/* Called by a client once it has nothing in flight (shutdown bookkeeping). */
void zos_server_client_idle(struct zos_server *srv);

#endif

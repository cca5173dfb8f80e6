/* server.h -- the proxy: listeners, clients, nodes, signals, shutdown. */
#ifndef ZOS_SERVER_H
#define ZOS_SERVER_H

#include <stdbool.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "state.h"
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

#endif

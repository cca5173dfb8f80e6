/* server.c -- listeners, accept, signals and the bounded drain at shutdown. */
#include "server.h"

#include <sys/resource.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/dns.h>
#include <netinet/in.h>

#include "client.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "zos/util.h"
#include "verbs_job.h"
#include "verbs_ssh.h"

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct zos_listener *li = arg;
    struct zos_server *srv = li->srv;

    if (srv->shutting_down) {
        evutil_closesocket(fd);
        return;
    }
    if ((int)srv->nclients >= srv->max_clients) {
        static const char msg[] = "-ERR max number of clients reached\r\n";
        srv->rejected_connections++;
        if (write(fd, msg, sizeof(msg) - 1) < 0) {
            /* the client is dropped either way */
        }
        evutil_closesocket(fd);
        return;
    }
    evutil_make_socket_nonblocking(fd);
    if (zos_client_new(srv, fd, li->node) != NULL)
        srv->total_connections++;
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_listener *li = arg;
    if (li->lev != NULL)
        evconnlistener_enable(li->lev);
}

/* Out of file descriptors, accept fails at once on every loop turn: pause
 * this listener for a moment instead of spinning (and logging) in a loop. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct zos_listener *li = arg;
    struct timeval pause = {0, 200 * 1000};
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("accept on %s: %s (pausing 200 ms)", li->addr, evutil_socket_error_to_string(err));
    evconnlistener_disable(lev);
    if (li->resume == NULL)
        li->resume = evtimer_new(li->srv->base, accept_resume_cb, li);
    if (li->resume != NULL)
        evtimer_add(li->resume, &pause);
}

static struct evconnlistener *bind_tcp(struct zos_server *srv, const char *hostport, void *arg,
                                       char *err, size_t errlen)
{
    char host[256];
    int port;
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    char portstr[16];

    if (zos_conf_split_hostport(hostport, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "listen '%s': expected host:port", hostport);
        return NULL;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = evutil_getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "listen '%s': %s", hostport, evutil_gai_strerror(rc));
        return NULL;
    }
    struct evconnlistener *lev =
        evconnlistener_new_bind(srv->base, accept_cb, arg,
                                LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                1024, ai->ai_addr, (int)ai->ai_addrlen);
    if (lev == NULL)
        snprintf(err, errlen, "listen '%s': %s", hostport, strerror(errno));
    evutil_freeaddrinfo(ai);
    return lev;
}

static struct evconnlistener *bind_unix(struct zos_server *srv, const char *path, int perm,
                                        void *arg, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "unixsocket '%s': path too long", path);
        return NULL;
    }
    strcpy(sun.sun_path, path);
    unlink(path);
    /* Created with PERM already (the umask masks what bind() creates): a
     * client never finds it open wider, even for a moment. */
    mode_t old = umask((mode_t)(~perm & 0777));
    struct evconnlistener *lev = evconnlistener_new_bind(
        srv->base, accept_cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (lev == NULL) {
        snprintf(err, errlen, "unixsocket '%s': %s", path, strerror(errno));
        return NULL;
    }
    chmod(path, (mode_t)perm);
    return lev;
}

static int add_listener(struct zos_server *srv, const char *addr, bool unix_socket,
                        struct zos_node *node, char *err, size_t errlen)
{
    struct zos_listener *li = &srv->listeners[srv->nlisteners];
    li->srv = srv;
    li->node = node;
    li->addr = strdup(addr);
    if (li->addr == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->nlisteners++;
    li->lev = unix_socket ? bind_unix(srv, addr, srv->conf->proxy.unixsocketperm, li, err, errlen)
                          : bind_tcp(srv, addr, li, err, errlen);
    if (li->lev == NULL)
        return -1;
    evconnlistener_set_error_cb(li->lev, accept_error_cb);
    log_info("listening on %s%s%s", addr, node ? " for node " : "", node ? node->conf->name : "");
    return 0;
}

/* Refuses a listener beyond loopback when no password protects it. */
static int check_exposure(const struct zos_conf *conf, const char *hostport, const char *what,
                          char *err, size_t errlen)
{
    char host[256];
    int port;
    if (zos_conf_split_hostport(hostport, host, sizeof(host), &port) != 0)
        return 0; /* reported when binding */
    if (zos_conf_is_loopback(host) || conf->proxy.requirepass != NULL)
        return 0;
    snprintf(err, errlen,
             "%s '%s' is not a loopback address: set [proxy] requirepass to listen there", what,
             hostport);
    return -1;
}

/* AUTH <password> chooses the node whose password it is: one that is also
 * requirepass could not be told apart. */
static int check_passwords(const struct zos_conf *conf, char *err, size_t errlen)
{
    const char *rp = conf->proxy.requirepass;
    char names[256] = "";
    size_t len = 0;
    for (size_t i = 0; rp != NULL && i < conf->nnodes; i++) {
        const char *pw = conf->nodes[i].password;
        if (pw == NULL || strcmp(pw, rp) != 0)
            continue;
        int n = snprintf(names + len, sizeof(names) - len, "%s[%s]", len ? ", " : "",
                         conf->nodes[i].name);
        len = n > 0 && (size_t)n < sizeof(names) - len ? len + (size_t)n : sizeof(names) - 1;
    }
    if (len == 0)
        return 0;
    snprintf(err, errlen,
             "password of %s is also [proxy] requirepass: AUTH <password> could not tell "
             "them apart; give each node a password of its own",
             names);
    return -1;
}

/* Every client and node link is a descriptor.  Takes the hard limit, then
 * splits it: listeners and a reserve (logs, DNS, ssh pipes, children), the
 * clients (max-clients, reduced as redis does when it cannot fit), and the
 * rest for node links: the gate's budget, past which idle links are closed
 * rather than accept() failing for everyone. */
static void plan_descriptors(struct zos_server *srv)
{
    const int reserve = 32;
    struct rlimit rl;
    long long limit = 1 << 20;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            limit = (long long)rl.rlim_cur;
    }
    long long avail = limit - (long long)srv->nlisteners - reserve, links;
    srv->max_clients = srv->conf->proxy.max_clients;
    if (avail - srv->max_clients >= 64) {
        links = avail - srv->max_clients;
    } else {
        links = avail / 4 > 16 ? avail / 4 : (avail > 32 ? 16 : avail / 2);
        srv->max_clients = (int)(avail - links > 1 ? avail - links : 1);
        log_warn("descriptors: limit %lld is too small for max-clients %d: clients reduced to %d, "
                 "as redis does",
                 limit, srv->conf->proxy.max_clients, srv->max_clients);
    }
    srv->link_budget = links > 1 ? (size_t)links : 1;
    zos_link_gate_set_budget(srv->router->gate, srv->link_budget);
    log_info("descriptors: limit %lld: %d clients, %zu node links (%zu nodes), %zu listeners, "
             "%d reserved",
             limit, srv->max_clients, srv->link_budget, srv->router->nnodes, srv->nlisteners,
             reserve);
}

int zos_server_check(const struct zos_conf *conf, char *err, size_t errlen)
{
    struct zos_tls_set *tls = zos_tls_set_new();
    int rc = -1;

    if (tls == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (check_exposure(conf, conf->proxy.listen, "listen", err, errlen) != 0 ||
        (conf->proxy.metrics_listen != NULL &&
         check_exposure(conf, conf->proxy.metrics_listen, "metrics-listen", err, errlen) != 0) ||
        check_passwords(conf, err, errlen) != 0)
        goto done;
    for (size_t i = 0; i < conf->nnodes; i++) {
        const struct zos_node_conf *n = &conf->nodes[i];
        if (n->listen != NULL && check_exposure(conf, n->listen, "listen", err, errlen) != 0)
            goto done;
        if (n->tls && zos_tls_set_get(tls, n, err, errlen) == NULL)
            goto done; /* a CA file that cannot be read */
    }
    rc = 0;
done:
    zos_tls_set_free(tls);
    return rc;
}

static int open_listeners(struct zos_server *srv, char *err, size_t errlen)
{
    struct zos_conf *conf = srv->conf;
    srv->listeners = calloc(conf->nnodes + 2, sizeof(*srv->listeners));
    if (srv->listeners == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (add_listener(srv, conf->proxy.listen, false, NULL, err, errlen) != 0)
        return -1;
    if (conf->proxy.unixsocket != NULL &&
        add_listener(srv, conf->proxy.unixsocket, true, NULL, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < srv->router->nnodes; i++) {
        struct zos_node *n = srv->router->nodes[i];
        if (n->conf->listen == NULL)
            continue;
        if (add_listener(srv, n->conf->listen, false, n, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static void close_listeners(struct zos_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        struct zos_listener *li = &srv->listeners[i];
        if (li->resume != NULL) {
            event_free(li->resume);
            li->resume = NULL;
        }
        if (li->lev != NULL) {
            evconnlistener_free(li->lev);
            li->lev = NULL;
            if (li->addr[0] == '/' && li->node == NULL && srv->conf->proxy.unixsocket != NULL &&
                strcmp(li->addr, srv->conf->proxy.unixsocket) == 0)
                unlink(li->addr);
        }
    }
}

static void shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_server *srv = arg;
    log_warn("shutdown: %zu client(s) still waiting for replies after %d ms, closing them",
             srv->nclients, srv->conf->proxy.shutdown_timeout_ms);
    /* Whatever still waits (a BLPOP 0, a stuck node) is answered with an
     * error before the connections close: nothing read goes unanswered. */
    for (size_t i = 0; i < srv->router->nnodes; i++)
        zos_link_watch_fail(srv->router->nodes[i]->watch, "zos-proxy is shutting down");
    zos_client_flush_all(srv);
    event_base_loopexit(srv->base, NULL);
}

/* Shutting down, every client closes once its last reply is written: the
 * loop ends when the last one is gone (or at shutdown-timeout). */
static void client_idle(struct zos_server *srv)
{
    if (srv->shutting_down && srv->nclients == 0)
        event_base_loopexit(srv->base, NULL);
}

/* SIGTERM/SIGINT: stop accepting, let in-flight replies out (bounded), exit. */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct zos_server *srv = arg;
    if (srv->shutting_down) {
        log_warn("second signal: exiting now");
        event_base_loopexit(srv->base, NULL);
        return;
    }
    log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    zos_notify("STOPPING=1");
    srv->shutting_down = true;
    close_listeners(srv);
    struct zos_client *c = srv->clients;
    while (c != NULL) {
        struct zos_client *next = c->next;
        zos_client_shutdown(c);
        c = next;
    }
    struct timeval tv = {srv->conf->proxy.shutdown_timeout_ms / 1000,
                         (srv->conf->proxy.shutdown_timeout_ms % 1000) * 1000};
    evtimer_add(srv->shutdown_timer, &tv);
    client_idle(srv);
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* What a reload cannot change: the sockets bound at start. */
static void note_restart_needed(const struct zos_conf *old, const struct zos_conf *conf)
{
    if (!same_str(old->proxy.listen, conf->proxy.listen))
        log_warn("reload: [proxy] listen changed: needs a restart (still %s)", old->proxy.listen);
    if (!same_str(old->proxy.unixsocket, conf->proxy.unixsocket) ||
        old->proxy.unixsocketperm != conf->proxy.unixsocketperm)
        log_warn("reload: [proxy] unixsocket changed: needs a restart");
    if (!same_str(old->proxy.metrics_listen, conf->proxy.metrics_listen))
        log_warn("reload: [proxy] metrics-listen changed: needs a restart");
    for (size_t i = 0; i < conf->nnodes; i++) {
        const struct zos_node_conf *n = &conf->nodes[i];
        size_t j;
        bool known = zos_index_get(old->index, n->name, strlen(n->name), &j);
        if (!same_str(known ? old->nodes[j].listen : NULL, n->listen))
            log_warn("reload: node '%s': listen changed: needs a restart", n->name);
    }
}

int zos_server_reload(struct zos_server *srv, char *err, size_t errlen)
{
    char summary[160];
    struct zos_conf *old = srv->conf;
    struct zos_conf **keep = realloc(srv->old_confs, (srv->nold_confs + 1) * sizeof(*keep));
    if (keep == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->old_confs = keep;
    struct zos_conf *conf = zos_conf_load(old->path, err, errlen);
    if (conf == NULL)
        return -1;
    if (zos_server_check(conf, err, errlen) != 0 ||
        zos_router_reload(srv->router, conf, summary, sizeof(summary), err, errlen) != 0) {
        zos_conf_free(conf);
        return -1;
    }
    srv->old_confs[srv->nold_confs++] = old; /* nodes and links still borrow from it */
    srv->conf = conf;
    srv->reloads++;
    note_restart_needed(old, conf);
    srv->limits = (struct zos_resp_limits){conf->proxy.max_bulk, conf->proxy.max_args,
                                           conf->proxy.max_inline, false};
    if (!same_str(old->proxy.log_level, conf->proxy.log_level) && conf->proxy.log_level != NULL)
        zos_log_level_parse(conf->proxy.log_level, &zos_log_level);
    if (conf->proxy.log_file != NULL && zos_log_open(conf->proxy.log_file) != 0)
        log_error("reload: log-file '%s': cannot open: logging to stderr", conf->proxy.log_file);
    else if (conf->proxy.log_file == NULL && old->proxy.log_file != NULL)
        zos_log_close();
    prctl(PR_SET_DUMPABLE, conf->proxy.core_dump ? 1 : 0, 0, 0, 0);
    if (old->proxy.max_clients != conf->proxy.max_clients)
        plan_descriptors(srv);
    log_info("reload: %s: %s", conf->path, summary);
    return 0;
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
    struct zos_server *srv = arg;
    char err[512];
    if (srv->shutting_down)
        return;
    log_info("SIGHUP: reloading %s", srv->conf->path);
    if (zos_notify_reloading() != 0)
        log_warn("NOTIFY_SOCKET: cannot tell systemd of the reload");
    if (zos_server_reload(srv, err, sizeof(err)) != 0)
        log_error("reload failed, the running config stays: %s", err);
    zos_notify("READY=1");
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    zos_client_flush_all(arg);
}

struct zos_server *zos_server_new(struct zos_conf *conf, char *err, size_t errlen)
{
    struct zos_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        zos_conf_free(conf);
        return NULL;
    }
    srv->conf = conf;
    srv->started = time(NULL);
    srv->client_ops = &zos_client_ops;
    srv->client_idle = client_idle;
    if (zos_server_check(conf, err, errlen) != 0) {
        free(srv);
        zos_conf_free(conf);
        return NULL;
    }
    srv->limits = (struct zos_resp_limits){conf->proxy.max_bulk, conf->proxy.max_args,
                                           conf->proxy.max_inline, false};
    srv->base = event_base_new();
    if (srv->base == NULL) {
        snprintf(err, errlen, "cannot create the event loop");
        goto fail;
    }
    srv->dns = evdns_base_new(srv->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (srv->dns == NULL)
        srv->dns = evdns_base_new(srv->base, 0); /* no resolv.conf: numeric addresses only */
    srv->router = zos_router_new(srv->base, srv->dns, conf, err, errlen);
    if (srv->router == NULL || open_listeners(srv, err, errlen) != 0 ||
        zos_metrics_start(srv, err, errlen) != 0)
        goto fail;
    plan_descriptors(srv);
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < ZOS_ARRAY_LEN(sigs); i++) {
        srv->signals[i] =
            evsignal_new(srv->base, sigs[i], sigs[i] == SIGHUP ? hup_cb : signal_cb, srv);
        if (srv->signals[i] == NULL || evsignal_add(srv->signals[i], NULL) != 0) {
            snprintf(err, errlen, "cannot watch signals");
            goto fail;
        }
    }
    srv->shutdown_timer = evtimer_new(srv->base, shutdown_timeout_cb, srv);
    srv->flush = event_new(srv->base, -1, 0, flush_cb, srv);
    if (srv->shutdown_timer == NULL || srv->flush == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    signal(SIGPIPE, SIG_IGN);
    return srv;
fail:
    zos_server_free(srv);
    return NULL;
}

int zos_server_run(struct zos_server *srv)
{
    return event_base_dispatch(srv->base) < 0 ? -1 : 0;
}

void zos_server_free(struct zos_server *srv)
{
    if (srv == NULL)
        return;
    close_listeners(srv);
    zos_metrics_stop(srv);
    while (srv->clients != NULL)
        zos_client_free(srv->clients);
    for (size_t i = 0; i < srv->nlisteners; i++)
        free(srv->listeners[i].addr);
    free(srv->listeners);
    zos_verbs_ssh_free(srv);
    zos_router_free(srv->router);
    for (size_t i = 0; i < ZOS_ARRAY_LEN(srv->signals); i++)
        if (srv->signals[i] != NULL)
            event_free(srv->signals[i]);
    if (srv->shutdown_timer != NULL)
        event_free(srv->shutdown_timer);
    if (srv->flush != NULL)
        event_free(srv->flush);
    if (srv->dns != NULL)
        evdns_base_free(srv->dns, 0);
    if (srv->base != NULL)
        event_base_free(srv->base);
    zos_conf_free(srv->conf);
    for (size_t i = 0; i < srv->nold_confs; i++)
        zos_conf_free(srv->old_confs[i]);
    free(srv->old_confs);
    free(srv);
}

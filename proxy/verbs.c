/* verbs.c -- commands zos-proxy answers itself: AUTH, HELLO, PING, INFO, ZOS.NODES, ... */
#include "verbs.h"
#include "zos/zos.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "metrics.h"
#include "state.h"
#include "verbs_job.h"
#include "verbs_ssh.h"
#include "zos/util.h"

/* Equal strings, in time that depends only on the lengths. */
static bool secret_equal(const char *given, size_t len, const char *want)
{
    size_t wlen = strlen(want);
    if (len != wlen)
        return false;
    return CRYPTO_memcmp(given, want, len) == 0;
}

static const char *requirepass(const struct zos_client *c)
{
    return c->srv->conf->proxy.requirepass;
}

static bool any_node_password(const struct zos_client *c)
{
    const struct zos_router *r = c->srv->router;
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->conf->password != NULL)
            return true;
    return false;
}

static const char wrongpass[] = "WRONGPASS invalid username-password pair or user is disabled.";

/* The node whose own password PASS is, when exactly one's is: every node's
 * password is compared, in time that does not depend on which matched. */
static struct zos_node *node_of_password(const struct zos_client *c, const char *pass, size_t len)
{
    struct zos_router *r = c->srv->router;
    struct zos_node *found = NULL;
    size_t matches = 0;
    for (size_t i = 0; i < r->nnodes; i++) {
        const char *own = r->nodes[i]->conf->password;
        if (own != NULL && secret_equal(pass, len, own)) {
            found = r->nodes[i];
            matches++;
        }
    }
    return matches == 1 ? found : NULL;
}

/* AUTH <password> (and AUTH default <password>): requirepass opens every
 * node; a node's own password opens that node and makes it the
 * connection's (clients that cannot send a username); on a node's own port,
 * only that node's password.  0, or -1 with the error reply in ERR. */
static int check_password(struct zos_client *c, const char *pass, size_t len, char *err,
                          size_t errlen)
{
    const char *own = c->fixed != NULL ? c->fixed->conf->password : NULL;
    struct zos_node *n = c->fixed == NULL ? node_of_password(c, pass, len) : NULL;
    if (own != NULL && secret_equal(pass, len, own))
        n = c->fixed;
    if (n != NULL) {
        c->auth_node = n;
        c->node = n;
        return 0;
    }
    if (requirepass(c) == NULL && own == NULL && !any_node_password(c)) {
        snprintf(err, errlen,
                 "ERR AUTH <password> called without any password configured for the default "
                 "user. Are you sure your configuration is correct?");
        return -1;
    }
    if (requirepass(c) == NULL || !secret_equal(pass, len, requirepass(c))) {
        snprintf(err, errlen, "%s", wrongpass);
        return -1;
    }
    c->auth_all = true;
    return 0;
}

/* AUTH <user> <password>: the username names a node ("default": the
 * requirepass user).  A node with a password of its own takes only that one,
 * and it opens that node only; other nodes take requirepass, which opens
 * every node.  0, or -1 with the error reply in ERR. */
static int check_user(struct zos_client *c, const char *user, size_t ulen, const char *pass,
                      size_t plen, char *err, size_t errlen)
{
    struct zos_node *n = zos_router_node(c->srv->router, user, ulen);
    const char *own = n != NULL ? n->conf->password : NULL;

    if (n == NULL && strcmp(user, "default") == 0 &&
        (requirepass(c) != NULL || c->fixed != NULL || any_node_password(c)))
        return check_password(c, pass, plen, err, errlen); /* as AUTH <password> */
    if (n == NULL && strcmp(user, "default") != 0) {
        snprintf(err, errlen, "WRONGPASS unknown node '%s'", user);
        return -1;
    }
    if (n != NULL && c->fixed != NULL && c->fixed != n) {
        snprintf(err, errlen, "ERR this port serves node '%s' only", c->fixed->conf->name);
        return -1;
    }
    const char *want = own != NULL ? own : requirepass(c);
    if (want != NULL && !secret_equal(pass, plen, want)) {
        snprintf(err, errlen, "%s", wrongpass);
        return -1;
    }
    if (own != NULL)
        c->auth_node = n;
    else if (want != NULL)
        c->auth_all = true;
    if (n != NULL)
        c->node = n;
    return 0;
}

static void verb_auth(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    char err[200];
    int rc = av->argc == 2 ? check_password(c, av->argv[1], av->argvlen[1], err, sizeof(err))
                           : check_user(c, av->argv[1], av->argvlen[1], av->argv[2], av->argvlen[2],
                                        err, sizeof(err));
    if (rc != 0)
        zos_slot_error(s, "%s", err);
    else
        zos_slot_status(s, "OK");
}

static void add_kv(struct evbuffer *out, const char *key, const char *value)
{
    zos_resp_add_cstr(out, key);
    zos_resp_add_cstr(out, value);
}

/* CLIENT SETNAME / HELLO SETNAME: false with the error in S. */
static bool set_name(struct zos_client *c, struct zos_slot *s, const char *name, size_t len)
{
    if (strpbrk(name, " \n\r") != NULL || strlen(name) != len) {
        zos_slot_error(s, "ERR Client names cannot contain spaces, newlines or special "
                          "characters.");
        return false;
    }
    free(c->name);
    c->name = len > 0 ? strdup(name) : NULL;
    return true;
}

/* HELLO [2|3 [AUTH user pass] [SETNAME name]]. */
static void verb_hello(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    size_t i = 1;
    bool r3 = c->resp3;
    if (av->argc > 1) {
        if (strcmp(av->argv[1], "2") != 0 && strcmp(av->argv[1], "3") != 0) {
            zos_slot_error(s, "NOPROTO unsupported protocol version");
            return;
        }
        r3 = av->argv[1][0] == '3';
        i = 2;
    }
    if (r3 != c->resp3 && !c->srv->client_ops->can_switch_protocol(c)) {
        zos_slot_error(s, "ERR zos-proxy cannot change the protocol while this connection holds "
                          "state on a node (MULTI, WATCH, SELECT, subscriptions, tracking, or a "
                          "blocked command): RESET first");
        return;
    }
    for (; i < av->argc; i++) {
        if (strcasecmp(av->argv[i], "auth") == 0 && i + 2 < av->argc) {
            char err[200];
            if (check_user(c, av->argv[i + 1], av->argvlen[i + 1], av->argv[i + 2],
                           av->argvlen[i + 2], err, sizeof(err)) != 0) {
                zos_slot_error(s, "%s", err);
                return;
            }
            i += 2;
        } else if (strcasecmp(av->argv[i], "setname") == 0 && i + 1 < av->argc) {
            if (!set_name(c, s, av->argv[i + 1], av->argvlen[i + 1]))
                return;
            i++;
        } else {
            zos_slot_error(s, "ERR Syntax error in HELLO option '%s'", av->argv[i]);
            return;
        }
    }
    if (requirepass(c) != NULL && !zos_client_authed(c)) {
        zos_slot_error(s, "NOAUTH HELLO must be called with the client already authenticated, "
                          "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                          "authenticate the client and select the RESP protocol version at the "
                          "same time");
        return;
    }
    if (r3 != c->resp3)
        c->srv->client_ops->switch_protocol(c, r3); /* checked above */
    struct evbuffer *out = zos_slot_buf(s);
    zos_resp_add_map(out, 7, c->resp3);
    add_kv(out, "server", "redis");
    add_kv(out, "version", "7.0.0");
    zos_resp_add_cstr(out, "proto");
    zos_resp_add_int(out, c->resp3 ? 3 : 2);
    zos_resp_add_cstr(out, "id");
    zos_resp_add_int(out, (long long)c->id);
    add_kv(out, "mode", "standalone");
    add_kv(out, "role", "master");
    zos_resp_add_cstr(out, "modules");
    zos_resp_add_array(out, 0);
    zos_slot_done(s);
}

static void verb_quit(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    zos_slot_status(s, "OK");
    c->srv->client_ops->close_after_flush(c);
}

static void verb_ping(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    if (av->argc == 1) {
        zos_slot_status(s, "PONG");
        return;
    }
    zos_resp_add_bulk(zos_slot_buf(s), av->argv[1], av->argvlen[1]);
    zos_slot_done(s);
}

static void verb_echo(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    zos_resp_add_bulk(zos_slot_buf(s), av->argv[1], av->argvlen[1]);
    zos_slot_done(s);
}

/* One CLIENT LIST line of C, in redis 7.0's format, then node=<name>. */
static void client_line(struct evbuffer *out, const struct zos_client *c)
{
    long long now = zos_now_ms();
    size_t sub = 0, psub = 0, ssub = 0;
    long long multi = -1;
    for (const struct zos_pin *p = c->pins; p != NULL; p = p->next) {
        sub += p->nchan;
        psub += p->npat;
        ssub += p->nshard;
        if (p->multi)
            multi = (long long)p->nqueued;
    }
    const char *flags = multi >= 0 ? "x" : sub + psub + ssub > 0 ? "P" : "N";
    evbuffer_add_printf(out,
                        "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=%d "
                        "sub=%zu psub=%zu ssub=%zu multi=%lld qbuf=0 qbuf-free=0 argv-mem=0 "
                        "multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s "
                        "user=%s redir=-1 resp=%d node=%s\n",
                        c->id, c->addr, c->laddr, c->fd, c->name != NULL ? c->name : "",
                        (now - c->created_ms) / 1000, (now - c->last_ms) / 1000, flags,
                        c->node != NULL ? zos_router_db(c->node, c->db)
                        : c->db < 0     ? 0
                                        : c->db,
                        sub, psub, ssub, multi, c->cmd[0] ? c->cmd : "NULL",
                        c->auth_node != NULL ? c->auth_node->conf->name : "default",
                        c->resp3 ? 3 : 2, c->node != NULL ? c->node->conf->name : "");
}

/* TEXT (taken; NULL when it could not be made) as C's protocol writes text. */
static void text_reply(struct zos_client *c, struct zos_slot *s, struct evbuffer *text)
{
    if (text == NULL) {
        zos_slot_error(s, "ERR out of memory");
        return;
    }
    zos_resp_add_verbatim_buffer(zos_slot_buf(s), text, c->resp3);
    evbuffer_free(text);
    zos_slot_done(s);
}

static bool is_pubsub(const struct zos_client *o)
{
    for (const struct zos_pin *p = o->pins; p != NULL; p = p->next)
        if (p->nchan + p->npat + p->nshard > 0)
            return true;
    return false;
}

/* A TYPE filter as redis knows them: 0 normal, 1 pubsub, 2 master/replica
 * (none among the proxy's clients); -1 with redis's error in S. */
static int client_type(struct zos_slot *s, const char *t)
{
    if (strcasecmp(t, "normal") == 0)
        return 0;
    if (strcasecmp(t, "pubsub") == 0)
        return 1;
    if (strcasecmp(t, "master") == 0 || strcasecmp(t, "replica") == 0 ||
        strcasecmp(t, "slave") == 0)
        return 2;
    zos_slot_error(s, "ERR Unknown client type '%s'", t);
    return -1;
}

static bool type_matches(int type, const struct zos_client *o)
{
    return type < 0 || (type < 2 && is_pubsub(o) == (type == 1));
}

/* A client id as redis reads one: digits, above 0. */
static bool parse_id(const char *v, unsigned long long *id)
{
    char *end;
    errno = 0;
    *id = strtoull(v, &end, 10);
    return *v >= '0' && *v <= '9' && *end == '\0' && errno == 0 && *id > 0;
}

/* CLIENT LIST [TYPE normal|pubsub|master|replica] | [ID id ...]. */
static void client_list(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    int type = -1;
    unsigned long long id;

    if (av->argc == 4 && strcasecmp(av->argv[2], "type") == 0) {
        if ((type = client_type(s, av->argv[3])) < 0)
            return;
    } else if (av->argc >= 4 && strcasecmp(av->argv[2], "id") == 0) {
        for (size_t i = 3; i < av->argc; i++) {
            if (!parse_id(av->argv[i], &id)) {
                zos_slot_error(s, "ERR Invalid client ID");
                return;
            }
        }
    } else if (av->argc != 2) {
        zos_slot_error(s, "ERR syntax error");
        return;
    }
    struct evbuffer *text = evbuffer_new();
    struct zos_client *o = c->srv->clients;
    while (o != NULL && o->next != NULL)
        o = o->next; /* the oldest: redis lists clients in the order they came */
    for (; o != NULL && text != NULL; o = o->prev) {
        bool match = type_matches(type, o);
        if (av->argc >= 4 && strcasecmp(av->argv[2], "id") == 0) {
            match = false;
            for (size_t i = 3; i < av->argc; i++)
                match = match || (parse_id(av->argv[i], &id) && id == o->id);
        }
        if (match)
            client_line(text, o);
    }
    text_reply(c, s, text);
}

/* The filters of CLIENT KILL's new form; false with the error in S. */
struct kill_filter {
    unsigned long long id;
    const char *addr, *laddr, *user;
    int type; /* as client_type(); -1: any */
    bool skipme;
};

/* Users as the proxy knows them: "default" and every node's name. */
static bool known_user(const struct zos_client *c, const char *user)
{
    return strcmp(user, "default") == 0 ||
           zos_router_node(c->srv->router, user, strlen(user)) != NULL;
}

static bool kill_filter_parse(const struct zos_client *c, struct zos_slot *s,
                              const struct zos_resp_argv *av, struct kill_filter *f)
{
    f->skipme = true;
    f->type = -1;
    for (size_t i = 2; i < av->argc; i += 2) {
        const char *k = av->argv[i], *v = i + 1 < av->argc ? av->argv[i + 1] : NULL;
        char *end;
        if (v == NULL) {
            zos_slot_error(s, "ERR syntax error");
            return false;
        }
        if (strcasecmp(k, "id") == 0) {
            f->id = strtoull(v, &end, 10);
            if (*v == '\0' || *end != '\0' || f->id == 0) {
                zos_slot_error(s, "ERR client-id should be greater than 0");
                return false;
            }
        } else if (strcasecmp(k, "type") == 0) {
            if ((f->type = client_type(s, v)) < 0)
                return false;
        } else if (strcasecmp(k, "user") == 0 && !known_user(c, v)) {
            zos_slot_error(s, "ERR No such user '%s'", v);
            return false;
        } else if (strcasecmp(k, "addr") == 0) {
            f->addr = v;
        } else if (strcasecmp(k, "laddr") == 0) {
            f->laddr = v;
        } else if (strcasecmp(k, "user") == 0) {
            f->user = v;
        } else if (strcasecmp(k, "skipme") == 0 &&
                   (strcasecmp(v, "yes") == 0 || strcasecmp(v, "no") == 0)) {
            f->skipme = strcasecmp(v, "yes") == 0;
        } else {
            zos_slot_error(s, "ERR syntax error");
            return false;
        }
    }
    return true;
}

static bool kill_matches(const struct kill_filter *f, const struct zos_client *o)
{
    const char *user = o->auth_node != NULL ? o->auth_node->conf->name : "default";
    return (f->id == 0 || f->id == o->id) && type_matches(f->type, o) &&
           (f->addr == NULL || strcmp(f->addr, o->addr) == 0) &&
           (f->laddr == NULL || strcmp(f->laddr, o->laddr) == 0) &&
           (f->user == NULL || strcmp(f->user, user) == 0);
}

/* CLIENT KILL addr:port (old form: +OK or an error) or CLIENT KILL <filter
 * value> ... (new form: how many).  Others close at once; the caller after
 * its reply. */
static void client_kill(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct kill_filter f = {0};
    bool old = av->argc == 3;
    long long killed = 0;

    if (old) {
        f.addr = av->argv[2];
        f.skipme = false;
        f.type = -1;
    } else if (!kill_filter_parse(c, s, av, &f)) {
        return;
    }
    struct zos_client *o = c->srv->clients, *next;
    bool self = false;
    for (; o != NULL; o = next) {
        next = o->next;
        if (!kill_matches(&f, o) || (o == c && f.skipme))
            continue;
        killed++;
        if (o == c)
            self = true;
        else
            c->srv->client_ops->kill(o);
    }
    if (old && killed == 0)
        zos_slot_error(s, "ERR No such client");
    else if (old)
        zos_slot_status(s, "OK");
    else {
        zos_resp_add_int(zos_slot_buf(s), killed);
        zos_slot_done(s);
    }
    if (self)
        c->srv->client_ops->close_after_flush(c);
}

static void verb_client(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    const char *sub = av->argv[1];
    size_t argc = av->argc;
    if (strcasecmp(sub, "setname") == 0 && argc == 3) {
        if (set_name(c, s, av->argv[2], av->argvlen[2]))
            zos_slot_status(s, "OK");
    } else if (strcasecmp(sub, "getname") == 0 && argc == 2) {
        if (c->name != NULL)
            zos_resp_add_cstr(zos_slot_buf(s), c->name);
        else
            zos_resp_add_null(zos_slot_buf(s), c->resp3);
        zos_slot_done(s);
    } else if (strcasecmp(sub, "id") == 0 && argc == 2) {
        zos_resp_add_int(zos_slot_buf(s), (long long)c->id);
        zos_slot_done(s);
    } else if (strcasecmp(sub, "setinfo") == 0 && argc == 4) {
        zos_slot_status(s, "OK");
    } else if (strcasecmp(sub, "info") == 0 && argc == 2) {
        struct evbuffer *text = evbuffer_new();
        if (text != NULL)
            client_line(text, c);
        text_reply(c, s, text);
    } else if (strcasecmp(sub, "list") == 0) {
        client_list(c, s, av);
    } else if (strcasecmp(sub, "kill") == 0 && argc >= 3) {
        client_kill(c, s, av);
    } else if ((strcasecmp(sub, "no-evict") == 0 || strcasecmp(sub, "no-touch") == 0) &&
               argc == 3) {
        if (strcasecmp(av->argv[2], "on") == 0 || strcasecmp(av->argv[2], "off") == 0)
            zos_slot_status(s, "OK");
        else
            zos_slot_error(s, "ERR syntax error");
    } else if (strcasecmp(sub, "setname") == 0 || strcasecmp(sub, "getname") == 0 ||
               strcasecmp(sub, "id") == 0 || strcasecmp(sub, "setinfo") == 0 ||
               strcasecmp(sub, "info") == 0 || strcasecmp(sub, "kill") == 0 ||
               strcasecmp(sub, "no-evict") == 0 || strcasecmp(sub, "no-touch") == 0) {
        char lower[32];
        size_t i;
        for (i = 0; sub[i] != '\0' && i < sizeof(lower) - 1; i++)
            lower[i] = (char)tolower((unsigned char)sub[i]);
        lower[i] = '\0';
        zos_slot_error(s, "ERR wrong number of arguments for 'client|%s' command", lower);
    } else {
        zos_slot_error(s, "ERR unknown subcommand '%.128s'. Try CLIENT HELP.", sub);
    }
}

static void verb_reset(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    c->srv->client_ops->reset(c, s);
}

/* COMMAND [DOCS|COUNT|INFO ...]: an empty answer that keeps redis-cli happy. */
static void verb_command(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    if (av->argc >= 2 && strcasecmp(av->argv[1], "count") == 0)
        zos_resp_add_int(zos_slot_buf(s), 0);
    else
        zos_resp_add_array(zos_slot_buf(s), 0);
    zos_slot_done(s);
}

static void node_addr(const struct zos_node *n, char *buf, size_t len)
{
    snprintf(buf, len, strchr(n->conf->address, ':') ? "[%s]:%d" : "%s:%d", n->conf->address,
             n->conf->port);
}

void zos_verbs_info_proxy(struct zos_client *c, struct evbuffer *text)
{
    struct zos_server *srv = c->srv;
    long uptime = (long)(time(NULL) - srv->started);

    evbuffer_add_printf(text,
                        "# Proxy\r\nzos_version:%s\r\nprocess_id:%ld\r\nuptime_in_seconds:%ld\r\n"
                        "connected_clients:%zu\r\ntotal_connections_received:%llu\r\n"
                        "total_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
                        "node_links_open:%zu\r\nnode_links_budget:%zu\r\n"
                        "nodes:%zu\r\ndefault_node:%s\r\n",
                        ZOS_VERSION, (long)getpid(), uptime, srv->nclients, srv->total_connections,
                        srv->total_commands, srv->rejected_connections,
                        zos_link_gate_open(srv->router->gate), srv->link_budget,
                        srv->router->nnodes,
                        srv->router->default_node ? srv->router->default_node->conf->name : "");
    for (size_t i = 0; i < srv->router->nnodes; i++) {
        struct zos_node *n = srv->router->nodes[i];
        struct zos_node_figures f;
        char addr[300], lanes[200];
        node_addr(n, addr, sizeof(addr));
        zos_router_lanes_text(n, lanes, sizeof(lanes));
        zos_metrics_node(n, &f);
        /* No value holds a comma: clients split the line on ',' then '='. */
        evbuffer_add_printf(
            text,
            "node_%s:address=%s,tls=%s,state=%s,state_age_s=%lld,inflight=%zu,pinned=%d,"
            "requests=%llu,errors=%llu,error_replies=%llu,reconnects=%llu,"
            "latency_p50_us=%" PRIu32 ",latency_p99_us=%" PRIu32 ",latency_max_us=%" PRIu32 ","
            "bytes_in=%llu,bytes_out=%llu,links_open=%zu,%s,pool=%zu,control=%s,hangs=%llu,"
            "jobs=%llu,jobs_failed=%llu,jobs_timed_out=%llu,job_links=%zu\r\n",
            n->conf->name, addr, n->conf->tls ? "yes" : "no", zos_link_state_name(f.state),
            f.state_age_ms / 1000, f.inflight, f.pinned, f.requests, f.errors, f.error_replies,
            f.reconnects, f.latency.p50_us, f.latency.p99_us, f.latency.max_us, f.bytes_in,
            f.bytes_out, f.links_open, lanes, n->npool,
            n->control != NULL ? zos_link_state_name(zos_link_state(n->control)) : "none", f.hangs,
            f.jobs, f.jobs_failed, f.jobs_timed_out, f.job_links_open);
    }
}

/* INFO proxy, or INFO with no node to ask: the proxy's section alone. */
static void verb_info(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct evbuffer *text = evbuffer_new();
    if (text != NULL)
        zos_verbs_info_proxy(c, text);
    text_reply(c, s, text);
}

static void add_kint(struct evbuffer *out, const char *key, unsigned long long value)
{
    zos_resp_add_cstr(out, key);
    zos_resp_add_int(out, value > LLONG_MAX ? LLONG_MAX : (long long)value);
}

/* The figures of N (stats.h), as ZOS.NODES fields. */
static void add_figures(struct evbuffer *out, const struct zos_node *n)
{
    struct zos_node_figures f;
    zos_metrics_node(n, &f);
    add_kint(out, "inflight", f.inflight);
    add_kint(out, "state_age_s", (unsigned long long)(f.state_age_ms / 1000));
    add_kint(out, "requests", f.requests);
    add_kint(out, "errors", f.errors);
    add_kint(out, "error_replies", f.error_replies);
    add_kint(out, "reconnects", f.reconnects);
    add_kint(out, "hangs", f.hangs);
    add_kint(out, "latency_p50_us", f.latency.p50_us);
    add_kint(out, "latency_p99_us", f.latency.p99_us);
    add_kint(out, "latency_max_us", f.latency.max_us);
    add_kint(out, "bytes_in", f.bytes_in);
    add_kint(out, "bytes_out", f.bytes_out);
    add_kint(out, "links_open", f.links_open);
    add_kint(out, "jobs", f.jobs);
    add_kint(out, "jobs_failed", f.jobs_failed);
    add_kint(out, "jobs_timed_out", f.jobs_timed_out);
    add_kint(out, "job_links", f.job_links_open);
}

#define NODE_FIELDS 27 /* pairs each node has in ZOS.NODES: 10 below, 17 in add_figures */

/* ZOS.NODES: per node a map (RESP3) or a flat [field, value, ...] array (RESP2). */
static void verb_nodes(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct zos_router *r = c->srv->router;
    struct evbuffer *out = zos_slot_buf(s);
    zos_resp_add_array(out, (long long)r->nnodes);
    for (size_t i = 0; i < r->nnodes; i++) {
        struct zos_node *n = r->nodes[i];
        char addr[300];
        node_addr(n, addr, sizeof(addr));
        char lanes[200];
        zos_router_lanes_text(n, lanes, sizeof(lanes));
        zos_resp_add_map(out, NODE_FIELDS, c->resp3);
        add_kv(out, "name", n->conf->name);
        add_kv(out, "address", addr);
        add_kv(out, "state", zos_link_state_name(zos_link_state(n->shared)));
        add_kv(out, "tls", n->conf->tls ? "yes" : "no");
        add_kv(out, "last_error", zos_link_errstr(n->shared));
        add_kv(out, "default", n == r->default_node ? "yes" : "no");
        add_kv(out, "lanes", lanes);
        zos_resp_add_cstr(out, "pinned");
        zos_resp_add_int(out, n->pinned);
        zos_resp_add_cstr(out, "pool");
        zos_resp_add_int(out, (long long)n->npool);
        add_kv(out, "control",
               n->control != NULL ? zos_link_state_name(zos_link_state(n->control)) : "none");
        add_figures(out, n);
    }
    zos_slot_done(s);
}

static void verb_use(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct zos_node *n = zos_router_node(c->srv->router, av->argv[1], av->argvlen[1]);
    if (n == NULL) {
        zos_slot_error(s, "ERR unknown node '%s'", av->argv[1]);
        return;
    }
    char err[160];
    if (!zos_client_may_use(c, n, err, sizeof(err))) {
        zos_slot_error(s, "%s", err);
        return;
    }
    if (c->node != n)
        c->db = -1; /* another server: its own db, as after a reconnect */
    c->node = n;
    zos_slot_status(s, "OK");
}

/* Sorted by name (case-insensitive) for bsearch. */
const struct zos_verb zos_verbs_core[] = {
    {"auth", 2, 3, ZOS_VERB_NOAUTH, verb_auth},
    {"client", 2, -1, 0, verb_client},
    {"command", 1, -1, 0, verb_command},
    {"echo", 2, 2, ZOS_VERB_NODE, verb_echo},
    {"hello", 1, -1, ZOS_VERB_NOAUTH, verb_hello},
    {"info", 1, -1, ZOS_VERB_NODE, verb_info},
    {"ping", 1, 2, ZOS_VERB_NODE, verb_ping},
    {"quit", 1, -1, ZOS_VERB_NOAUTH, verb_quit},
    {"reset", 1, 1, ZOS_VERB_NOAUTH, verb_reset},
    {"zos.all", 2, -1, ZOS_VERB_ROUTE, NULL},
    {"zos.at", 3, -1, ZOS_VERB_ROUTE, NULL},
    {"zos.nodes", 1, 1, 0, verb_nodes},
    {"zos.use", 2, 2, 0, verb_use},
};

const size_t zos_verbs_core_count = ZOS_ARRAY_LEN(zos_verbs_core);

static int verb_cmp(const void *key, const void *elem)
{
    return strcasecmp(key, ((const struct zos_verb *)elem)->name);
}

const struct zos_verb *zos_verbs_find(const char *name, size_t len)
{
    char key[32];
    if (len < 4 || len >= sizeof(key))
        return NULL;
    memcpy(key, name, len);
    key[len] = '\0';
    const struct zos_verb *v =
        bsearch(key, zos_verbs_core, zos_verbs_core_count, sizeof(*v), verb_cmp);
    if (v == NULL && len > 4 && strncasecmp(key, "zos.", 4) == 0)
        v = bsearch(key, zos_verbs_job, zos_verbs_job_count, sizeof(*v), verb_cmp);
    if (v == NULL && len > 4 && strncasecmp(key, "zos.", 4) == 0)
        v = bsearch(key, zos_verbs_ssh, zos_verbs_ssh_count, sizeof(*v), verb_cmp);
    return v;
}

int zos_verbs_run_all(const struct zos_verb *v, struct zos_client *c,
                      const struct zos_resp_argv *av, size_t first)
{
    struct zos_router *r = c->srv->router;
    struct zos_slot *group = zos_slot_group(&c->slots, r->nodes, r->nnodes, c->resp3);
    struct zos_resp_argv sub = {av->argc - first, av->argv + first, av->argvlen + first};
    struct zos_node *saved = c->node;

    for (size_t i = 0; group != NULL && i < r->nnodes; i++) {
        struct zos_slot *part = zos_slot_part(group, i);
        if (part == NULL)
            continue;
        c->node = r->nodes[i];
        zos_verbs_run(v, c, part, &sub);
    }
    c->node = saved;
    return ZOS_OK;
}

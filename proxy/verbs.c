/* verbs.c -- commands zos-proxy answers itself: AUTH, HELLO, PING, INFO, ZOS.NODES, ... */
#include "zos/verbs.h"
#include "zos/zos.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "zos/log.h"
#include "zos/server.h"
#include "zos/verbs_job.h"
#include "zos/verbs_ssh.h"

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

static const char wrongpass[] = "WRONGPASS invalid username-password pair or user is disabled.";

/* AUTH <password>: requirepass; on a node's own port, that node's password. */
static void auth_password(struct zos_client *c, struct zos_slot *s, const char *pass, size_t len)
{
    const char *own = c->fixed != NULL ? c->fixed->conf->password : NULL;
    if (own != NULL && secret_equal(pass, len, own)) {
        c->auth_node = c->fixed;
        zos_slot_status(s, "OK");
        return;
    }
    if (requirepass(c) == NULL && own == NULL) {
        zos_slot_error(s, "ERR AUTH <password> called without any password configured for the "
                          "default user. Are you sure your configuration is correct?");
        return;
    }
    if (requirepass(c) == NULL || !secret_equal(pass, len, requirepass(c))) {
        zos_slot_error(s, "%s", wrongpass);
        return;
    }
    c->auth_all = true;
    zos_slot_status(s, "OK");
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
    if (av->argc == 2)
        auth_password(c, s, av->argv[1], av->argvlen[1]);
    else if (check_user(c, av->argv[1], av->argvlen[1], av->argv[2], av->argvlen[2], err,
                        sizeof(err)) != 0)
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

/* HELLO [2 [AUTH user pass] [SETNAME name]]: RESP2 only. */
static void verb_hello(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    size_t i = 1;
    if (av->argc > 1) {
        if (strcmp(av->argv[1], "2") != 0) {
            zos_slot_error(s, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
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
    struct evbuffer *out = zos_slot_buf(s);
    zos_resp_add_array(out, 14);
    add_kv(out, "server", "redis");
    add_kv(out, "version", "7.0.0");
    zos_resp_add_cstr(out, "proto");
    zos_resp_add_int(out, 2);
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
    zos_client_close_after_flush(c);
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

static void verb_client(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    const char *sub = av->argv[1];
    if (strcasecmp(sub, "setname") == 0 && av->argc == 3) {
        if (set_name(c, s, av->argv[2], av->argvlen[2]))
            zos_slot_status(s, "OK");
    } else if (strcasecmp(sub, "getname") == 0 && av->argc == 2) {
        if (c->name != NULL)
            zos_resp_add_cstr(zos_slot_buf(s), c->name);
        else
            zos_resp_add_nil(zos_slot_buf(s));
        zos_slot_done(s);
    } else if (strcasecmp(sub, "id") == 0 && av->argc == 2) {
        zos_resp_add_int(zos_slot_buf(s), (long long)c->id);
        zos_slot_done(s);
    } else if (strcasecmp(sub, "setinfo") == 0 && av->argc == 4) {
        zos_slot_status(s, "OK");
    } else {
        zos_slot_error(s,
                       "ERR CLIENT %s is not supported by zos-proxy (SETNAME, GETNAME, ID and "
                       "SETINFO are)",
                       sub);
    }
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

static void verb_info(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct zos_server *srv = c->srv;
    struct evbuffer *text = evbuffer_new();
    long uptime = (long)(time(NULL) - srv->started);

    evbuffer_add_printf(text,
                        "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n"
                        "zos_version:%s\r\nprocess_id:%ld\r\nuptime_in_seconds:%ld\r\n\r\n"
                        "# Clients\r\nconnected_clients:%zu\r\n\r\n"
                        "# Stats\r\ntotal_connections_received:%llu\r\n"
                        "total_commands_processed:%llu\r\nrejected_connections:%llu\r\n\r\n"
                        "# Proxy\r\nnodes:%zu\r\ndefault_node:%s\r\n",
                        ZOS_VERSION, (long)getpid(), uptime, srv->nclients, srv->total_connections,
                        srv->total_commands, srv->rejected_connections, srv->router->nnodes,
                        srv->router->default_node ? srv->router->default_node->conf->name : "");
    for (size_t i = 0; i < srv->router->nnodes; i++) {
        struct zos_node *n = &srv->router->nodes[i];
        char addr[300];
        node_addr(n, addr, sizeof(addr));
        evbuffer_add_printf(text,
                            "node_%s:address=%s,tls=%s,state=%s,inflight=%zu,pinned=%d,"
                            "requests=%llu,errors=%llu\r\n",
                            n->conf->name, addr, n->conf->tls ? "yes" : "no",
                            zos_link_state_name(zos_link_state(n->shared)),
                            zos_link_inflight(n->shared), n->pinned, n->requests, n->errors);
    }
    struct evbuffer *out = zos_slot_buf(s);
    evbuffer_add_printf(out, "$%zu\r\n", evbuffer_get_length(text));
    evbuffer_add_buffer(out, text);
    evbuffer_add(out, "\r\n", 2);
    evbuffer_free(text);
    zos_slot_done(s);
}

/* ZOS.NODES: one [field, value, ...] array per node. */
static void verb_nodes(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    struct zos_router *r = c->srv->router;
    struct evbuffer *out = zos_slot_buf(s);
    zos_resp_add_array(out, (long long)r->nnodes);
    for (size_t i = 0; i < r->nnodes; i++) {
        struct zos_node *n = &r->nodes[i];
        char addr[300];
        node_addr(n, addr, sizeof(addr));
        zos_resp_add_array(out, 14);
        add_kv(out, "name", n->conf->name);
        add_kv(out, "address", addr);
        add_kv(out, "state", zos_link_state_name(zos_link_state(n->shared)));
        add_kv(out, "tls", n->conf->tls ? "yes" : "no");
        add_kv(out, "last_error", zos_link_errstr(n->shared));
        zos_resp_add_cstr(out, "inflight");
        zos_resp_add_int(out, (long long)zos_link_inflight(n->shared));
        add_kv(out, "default", n == r->default_node ? "yes" : "no");
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
    c->node = n;
    zos_slot_status(s, "OK");
}

/* Sorted by name (case-insensitive) for bsearch. */
static const struct zos_verb verbs[] = {
    {"auth", 2, 3, ZOS_VERB_NOAUTH, verb_auth},
    {"client", 2, -1, 0, verb_client},
    {"command", 1, -1, 0, verb_command},
    {"echo", 2, 2, ZOS_VERB_NODE, verb_echo},
    {"hello", 1, -1, ZOS_VERB_NOAUTH, verb_hello},
    {"info", 1, -1, ZOS_VERB_NODE, verb_info},
    {"ping", 1, 2, ZOS_VERB_NODE, verb_ping},
    {"quit", 1, -1, ZOS_VERB_NOAUTH, verb_quit},
    {"zos.all", 2, -1, ZOS_VERB_ROUTE, NULL},
    {"zos.at", 3, -1, ZOS_VERB_ROUTE, NULL},
    {"zos.nodes", 1, 1, 0, verb_nodes},
    {"zos.use", 2, 2, 0, verb_use},
};

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
        bsearch(key, verbs, ZOS_ARRAY_LEN(verbs), sizeof(verbs[0]), verb_cmp);
    if (v == NULL && len > 4 && strncasecmp(key, "zos.", 4) == 0)
        v = bsearch(key, zos_verbs_job, zos_verbs_job_count, sizeof(verbs[0]), verb_cmp);
    if (v == NULL && len > 4 && strncasecmp(key, "zos.", 4) == 0)
        v = bsearch(key, zos_verbs_ssh, zos_verbs_ssh_count, sizeof(verbs[0]), verb_cmp);
    return v;
}

void zos_verbs_run(const struct zos_verb *v, struct zos_client *c, struct zos_slot *s,
                   const struct zos_resp_argv *av)
{
    if ((int)av->argc < v->min_argc || (v->max_argc >= 0 && (int)av->argc > v->max_argc)) {
        zos_slot_error(s, "ERR wrong number of arguments for '%s' command", v->name);
        return;
    }
    v->fn(c, s, av);
}

char *zos_verbs_join(const struct zos_resp_argv *av, size_t first, size_t last)
{
    size_t len = 1;
    for (size_t i = first; i < last; i++)
        len += av->argvlen[i] + 1;
    char *out = malloc(len), *p = out;
    if (out == NULL)
        return NULL;
    for (size_t i = first; i < last; i++) {
        if (i > first)
            *p++ = ' ';
        memcpy(p, av->argv[i], av->argvlen[i]);
        p += av->argvlen[i];
    }
    *p = '\0';
    return out;
}

int zos_verbs_run_all(const struct zos_verb *v, struct zos_client *c,
                      const struct zos_resp_argv *av, size_t first)
{
    struct zos_router *r = c->srv->router;
    struct zos_slot *group = zos_slot_group(c, r->nnodes);
    struct zos_resp_argv sub = {av->argc - first, av->argv + first, av->argvlen + first};
    struct zos_node *saved = c->node;

    for (size_t i = 0; group != NULL && i < r->nnodes; i++) {
        struct zos_slot *part = zos_slot_part(group, i);
        if (part == NULL)
            continue;
        c->node = &r->nodes[i];
        zos_verbs_run(v, c, part, &sub);
    }
    c->node = saved;
    return ZOS_OK;
}

/* verbs_ssh.c -- ZOS.SSH, ZOS.SSH.INFO and ZOS.VBOX: slow work off the event loop.
 *
 *   ZOS.SSH <cid> <cmd>:  MGET container:<cid>:{ip,sshport,sshkey,sshenabled,layeredssh}
 *                         (shared link) --> zos_container_ssh_check (as the CLI)
 *                         --> worker thread: libssh connect + exec (blocking)
 *                         --> pipe (the op's pointer) --> loop: answer the slot
 *   ZOS.VBOX ...:         VBoxManage children watched by libevent (vbox.c)
 *
 * libssh blocks, so each command runs in a thread of its own (at most
 * MAX_THREADS at once) and hands its result back through a pipe: the loop
 * never waits for the network, and other clients keep being served.
 */
#include "verbs_ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "state.h"
#include "zos/container.h"
#include "zos/ssh.h"
#include "zos/util.h"
#include "zos/vbox.h"
#include "zos/zos.h"

#define MAX_THREADS    32
#define SSH_TIMEOUT_S  60
#define SSH_CONNECT_MS 10000

struct remote_op {
    struct remote_op *next; /* every op with a thread, for joining at exit */
    struct zos_ssh_workers *st;
    struct zos_slot *slot;
    pthread_t thread;
    unsigned long cid;
    char *command;  /* NULL: ZOS.SSH.INFO */
    char *node_key; /* the node's sshkey, for a container that stores none; or NULL */
    struct zos_container_ssh facts;
    char known_hosts[PATH_MAX];
    int timeout_ms;
    /* results, written by the thread */
    int rc;
    struct zos_ssh_result res;
    char err[512];
};

/* A ZOS.VBOX in flight, cancelled if the proxy stops first. */
struct vbox_req {
    struct vbox_req *next;
    struct zos_ssh_workers *st;
    struct zos_vbox_op *op;
    struct zos_slot *slot;
};

/* The server's slow work (srv->ssh): ssh worker threads and VBoxManage runs. */
struct zos_ssh_workers {
    int pipe[2];
    struct event *ev;
    struct remote_op *ops;
    int running;
    struct vbox_req *vbox;
};

/* ---- the loop side ---- */

static void op_free(struct remote_op *op)
{
    zos_ssh_result_clear(&op->res);
    free(op->command);
    free(op->node_key);
    free(op);
}

static void reply(struct remote_op *op)
{
    struct zos_slot *s = op->slot;
    if (op->rc != ZOS_OK) {
        zos_slot_error(s, "ERR ssh to container %lu: %s", op->cid, op->err);
        return;
    }
    if (op->res.status != 0) {
        size_t n = op->res.err_len;
        while (n > 0 && (op->res.err[n - 1] == '\n' || op->res.err[n - 1] == '\r'))
            n--;
        zos_slot_error(s, "ERR command failed with exit status %d%s%.*s", op->res.status,
                       n > 0 ? ": " : "", (int)n, op->res.err);
        return;
    }
    zos_resp_add_bulk(zos_slot_buf(s), op->res.out, op->res.out_len);
    zos_slot_done(s);
}

static void unlink_op(struct zos_ssh_workers *st, struct remote_op *op)
{
    for (struct remote_op **pp = &st->ops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            return;
        }
    }
}

/* A worker finished: its op pointer came through the pipe. */
static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zos_ssh_workers *st = arg;
    struct remote_op *op;
    while (read(fd, &op, sizeof(op)) == (ssize_t)sizeof(op)) {
        pthread_join(op->thread, NULL);
        unlink_op(st, op);
        st->running--;
        reply(op);
        op_free(op);
    }
}

static struct zos_ssh_workers *state(struct zos_server *srv)
{
    struct zos_ssh_workers *st = srv->ssh;
    if (st != NULL)
        return st;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    if (pipe2(st->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(st);
        return NULL;
    }
    st->ev = event_new(srv->base, st->pipe[0], EV_READ | EV_PERSIST, pipe_cb, st);
    event_add(st->ev, NULL);
    zos_ssh_init();
    srv->ssh = st;
    return st;
}

void zos_verbs_ssh_free(struct zos_server *srv)
{
    struct zos_ssh_workers *st = srv->ssh;
    if (st == NULL)
        return;
    while (st->vbox != NULL) { /* kill VBoxManage children; nobody waits for them */
        struct vbox_req *v = st->vbox;
        st->vbox = v->next;
        zos_vbox_op_cancel(v->op);
        zos_slot_done(v->slot); /* orphaned with its client: this frees it */
        free(v);
    }
    event_free(st->ev);
    srv->ssh = NULL;
    if (st->ops != NULL) {
        /* Workers still in a remote command: shutdown does not wait for them
         * (they end with the process).  They still hold ST and its pipe. */
        for (struct remote_op *op = st->ops; op != NULL; op = op->next)
            pthread_detach(op->thread);
        return;
    }
    close(st->pipe[0]);
    close(st->pipe[1]);
    free(st);
}

/* ---- the worker ---- */

static void *worker(void *arg)
{
    struct remote_op *op = arg;
    struct zos_ssh_opts o = {
        .host = op->facts.ip,
        .port = op->facts.port,
        .key_path = op->facts.key[0] ? op->facts.key : NULL,
        .known_hosts = op->known_hosts,
        .timeout_ms = SSH_CONNECT_MS,
    };
    struct zos_ssh *s = zos_ssh_connect(&o, op->err, sizeof(op->err));
    op->rc = ZOS_ERR;
    if (s != NULL) {
        struct zos_ssh_exec_io io = {.timeout_ms = op->timeout_ms};
        op->rc = zos_ssh_exec(s, op->command, &io, &op->res, op->err, sizeof(op->err));
        zos_ssh_free(s);
    }
    ssize_t n = write(op->st->pipe[1], &op, sizeof(op));
    (void)n; /* a pipe write of one pointer is atomic; the pipe never fills up here */
    return NULL;
}

/* ---- container facts from the node ---- */

static void info_reply(struct remote_op *op)
{
    char line[ZOS_CONTAINER_IP_MAX + ZOS_CONTAINER_KEY_MAX + 32];
    zos_container_ssh_line(&op->facts, line, sizeof(line));
    zos_resp_add_cstr(zos_slot_buf(op->slot), line);
    zos_slot_done(op->slot);
    op_free(op);
}

static void start_worker(struct remote_op *op)
{
    struct zos_ssh_workers *st = op->st;
    if (st->running >= MAX_THREADS) {
        zos_slot_error(op->slot, "ERR too many ZOS.SSH commands in flight (%d)", MAX_THREADS);
        op_free(op);
        return;
    }
    if (pthread_create(&op->thread, NULL, worker, op) != 0) {
        zos_slot_error(op->slot, "ERR cannot start a thread: %s", strerror(errno));
        op_free(op);
        return;
    }
    op->next = st->ops;
    st->ops = op;
    st->running++;
}

/* The MGET reply: the ssh facts, in zos_container_field order. */
static void facts_cb(void *arg, struct evbuffer *buf, size_t len, const char *err)
{
    struct remote_op *op = arg;
    struct zos_client *c = zos_slot_client(op->slot);
    char *v[ZOS_CONTAINER_NSSH] = {NULL}, why[256];
    bool ok = false;

    if (buf == NULL)
        zos_slot_error(op->slot, "ERR node unavailable: %s", err);
    else if (!zos_resp_reply_strings(buf, len, ZOS_CONTAINER_NSSH, v))
        zos_slot_error(op->slot, "ERR unexpected reply from the node");
    else if (zos_container_ssh_check(op->cid, v, true, &op->facts, why, sizeof(why)) !=
             ZOS_CONTAINER_OK)
        zos_slot_error(op->slot, "ERR %s", why);
    else
        ok = true;
    for (int i = 0; i < ZOS_CONTAINER_NSSH; i++)
        free(v[i]);
    if (ok && op->facts.key[0] == '\0' && op->node_key != NULL)
        snprintf(op->facts.key, sizeof(op->facts.key), "%s", op->node_key);
    if (!ok) {
        op_free(op);
    } else if (op->command == NULL) {
        info_reply(op);
    } else if (c != NULL) {
        start_worker(op);
    } else { /* the client left: nobody waits for the command */
        zos_slot_done(op->slot);
        op_free(op);
    }
}

static int parse_cid(const char *text, unsigned long *cid)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || text[0] < '0' || text[0] > '9' || v < 1 || v > 65534)
        return -1;
    *cid = v;
    return 0;
}

static void remote_verb(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av,
                        bool info)
{
    unsigned long cid;
    size_t end = av->argc;
    int timeout_s = SSH_TIMEOUT_S;

    if (parse_cid(av->argv[1], &cid) != 0) {
        zos_slot_error(s, "ERR container id must be a number from 1 to 65534, got '%s'",
                       av->argv[1]);
        return;
    }
    if (!info && end >= 5 && strcasecmp(av->argv[end - 2], "timeout") == 0) {
        timeout_s = atoi(av->argv[end - 1]);
        if (timeout_s <= 0 || timeout_s > 86400) {
            zos_slot_error(s, "ERR TIMEOUT needs a number of seconds from 1 to 86400");
            return;
        }
        end -= 2;
    }
    if (c->node == NULL) {
        zos_slot_error(s, ZOS_NO_NODE_ERR);
        return;
    }
    struct remote_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->st = state(c->srv)) == NULL) {
        free(op);
        zos_slot_error(s, "ERR out of memory");
        return;
    }
    op->slot = s;
    op->cid = cid;
    op->timeout_ms = timeout_s * 1000;
    if (c->node->conf->sshkey != NULL && (op->node_key = strdup(c->node->conf->sshkey)) == NULL) {
        op_free(op);
        zos_slot_error(s, "ERR out of memory");
        return;
    }
    zos_known_hosts_path(c->srv->conf->path, op->known_hosts, sizeof(op->known_hosts));
    if (!info) {
        struct zos_resp_argv words = {end - 2, av->argv + 2, av->argvlen + 2};
        op->command = zos_verbs_join(&words, 0, words.argc);
    }
    char keys[ZOS_CONTAINER_NSSH][ZOS_CONTAINER_KEY_LEN];
    const char *argv[1 + ZOS_CONTAINER_NSSH] = {"MGET"};
    size_t lens[1 + ZOS_CONTAINER_NSSH] = {4};
    for (int f = 0; f < ZOS_CONTAINER_NSSH; f++) {
        zos_container_key(cid, (enum zos_container_field)f, keys[f]);
        argv[1 + f] = keys[f];
        lens[1 + f] = strlen(keys[f]);
    }
    if (zos_link_send_argv(c->node->shared, 1 + ZOS_CONTAINER_NSSH, argv, lens, facts_cb, op) !=
        ZOS_OK)
        facts_cb(op, NULL, 0, zos_link_errstr(c->node->shared));
}

/* ZOS.SSH <container-id> <command ...> [TIMEOUT s] */
static void verb_ssh(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    remote_verb(c, s, av, false);
}

/* ZOS.SSH.INFO <container-id>: "root@<ip> -p <port> [-i <key>]" */
static void verb_ssh_info(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    remote_verb(c, s, av, true);
}

/* ---- ZOS.VBOX ---- */

static void vbox_forget(struct vbox_req *v)
{
    for (struct vbox_req **pp = &v->st->vbox; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    }
    free(v);
}

static void vbox_done(void *arg, const struct zos_vbox_reply *r)
{
    struct vbox_req *v = arg;
    struct zos_slot *s = v->slot;
    struct evbuffer *out;
    vbox_forget(v);
    if (zos_slot_orphaned(s)) {
        zos_slot_done(s);
    } else if (r->rc != ZOS_OK) {
        zos_slot_error(s, "ERR %s", r->err);
    } else if (r->list != NULL) {
        out = zos_slot_buf(s);
        zos_resp_add_array(out, (long long)r->list->n);
        for (size_t i = 0; i < r->list->n; i++)
            zos_resp_add_cstr(out, r->list->vms[i].name);
        zos_slot_done(s);
    } else if (r->info != NULL) {
        out = zos_slot_buf(s);
        zos_resp_add_array(out, 2 + 2 * (long long)r->info->nfwd);
        zos_resp_add_cstr(out, "state");
        zos_resp_add_cstr(out, r->info->state);
        for (size_t i = 0; i < r->info->nfwd; i++) {
            const struct zos_vboxmanage_fwd *f = &r->info->fwd[i];
            char rule[256];
            snprintf(rule, sizeof(rule), "%s %s %d -> %d", f->name, f->proto, f->host_port,
                     f->guest_port);
            zos_resp_add_cstr(out, "forward");
            zos_resp_add_cstr(out, rule);
        }
        zos_slot_done(s);
    } else {
        zos_slot_status(s, "OK");
    }
}

/* Options of CREATE/RESET: MEMORY mb, DISK mb, PORT p, ISO path. */
static int vbox_spec(const struct zos_resp_argv *av, struct zos_vbox_spec *spec, char *iso,
                     size_t isolen, struct zos_slot *s)
{
    for (size_t i = 3; i < av->argc; i += 2) {
        const char *k = av->argv[i];
        if (i + 1 >= av->argc) {
            zos_slot_error(s, "ERR %s needs a value", k);
            return -1;
        }
        const char *v = av->argv[i + 1];
        char *end;
        long n = strtol(v, &end, 10);
        bool num_ok = *end == '\0' && n > 0;
        if (strcasecmp(k, "iso") == 0) {
            snprintf(iso, isolen, "%s", v);
        } else if (strcasecmp(k, "memory") == 0 && num_ok && n <= 1048576) {
            spec->memory_mb = (int)n;
        } else if (strcasecmp(k, "disk") == 0 && *end == '\0' && n >= 0 && n <= 16777216) {
            spec->disk_mb = (int)n;
        } else if (strcasecmp(k, "port") == 0 && num_ok && n <= 65535) {
            spec->port = (int)n;
        } else {
            zos_slot_error(s,
                           "ERR bad option '%s %s' (MEMORY <mb>, DISK <mb>, PORT <1-65535>, ISO "
                           "<path>)",
                           k, v);
            return -1;
        }
    }
    return 0;
}

/* ZOS.VBOX LIST | INFO|START|STOP|DELETE <vm> | CREATE|RESET <vm> [options] */
static void verb_vbox(struct zos_client *c, struct zos_slot *s, const struct zos_resp_argv *av)
{
    enum zos_vbox_verb verb;
    struct zos_vbox vb;
    struct zos_vbox_spec spec;
    char err[512], iso[PATH_MAX];
    const char *home = getenv("HOME");

    /* VMs live on the proxy's host: not for a client limited to one node. */
    if (c->fixed != NULL || c->auth_node != NULL ||
        (c->srv->conf->proxy.requirepass != NULL && !c->auth_all)) {
        zos_slot_error(s, "NOPERM ZOS.VBOX needs the proxy's requirepass (or no password at all)");
        return;
    }
    if (zos_vbox_verb_parse(av->argv[1], &verb) != ZOS_OK) {
        zos_slot_error(s,
                       "ERR unknown ZOS.VBOX operation '%s' (LIST, INFO, CREATE, START, STOP, "
                       "DELETE, RESET)",
                       av->argv[1]);
        return;
    }
    if ((verb == ZOS_VBOX_LIST) != (av->argc == 2)) {
        zos_slot_error(s, "ERR wrong number of arguments for 'zos.vbox %s'",
                       zos_vbox_verb_name(verb));
        return;
    }
    if (verb != ZOS_VBOX_CREATE && verb != ZOS_VBOX_RESET && av->argc > 3) {
        zos_slot_error(s, "ERR wrong number of arguments for 'zos.vbox %s'",
                       zos_vbox_verb_name(verb));
        return;
    }
    snprintf(iso, sizeof(iso), "%s/.zos/zos.iso", home != NULL ? home : ".");
    zos_vbox_spec_defaults(&spec, verb == ZOS_VBOX_LIST ? "" : av->argv[2], iso);
    if ((verb == ZOS_VBOX_CREATE || verb == ZOS_VBOX_RESET) &&
        vbox_spec(av, &spec, iso, sizeof(iso), s) != 0)
        return;
    spec.iso = iso;
    if (zos_vbox_init(&vb, NULL, err, sizeof(err)) != ZOS_OK) {
        zos_slot_error(s, "ERR %s", err);
        return;
    }
    struct zos_ssh_workers *st = state(c->srv);
    struct vbox_req *v = st != NULL ? calloc(1, sizeof(*v)) : NULL;
    if (v == NULL) {
        zos_slot_error(s, "ERR out of memory");
        return;
    }
    v->st = st;
    v->slot = s;
    v->op = zos_vbox_submit(&vb, c->srv->base, verb, &spec, vbox_done, v);
    if (v->op == NULL) {
        free(v);
        zos_slot_error(s, "ERR out of memory");
        return;
    }
    v->next = st->vbox;
    st->vbox = v;
}

const struct zos_verb zos_verbs_ssh[] = {
    {"zos.ssh", 3, -1, ZOS_VERB_ONNODE, verb_ssh},
    {"zos.ssh.info", 2, 2, ZOS_VERB_ONNODE, verb_ssh_info},
    {"zos.vbox", 2, -1, 0, verb_vbox},
};
const size_t zos_verbs_ssh_count = ZOS_ARRAY_LEN(zos_verbs_ssh);

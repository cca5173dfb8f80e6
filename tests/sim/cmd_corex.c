/* cmd_corex.c -- simulated containers (apps/core0/subsys/containers), port
 * forwards and reservations (helper/socat) and firewall rules (builtin/nft.go).
 *
 * A container is a record: the arguments it was created with, a working
 * directory <dir>/containers/<id>/root and an environment.  Nothing is
 * mounted, no namespace is made and no traffic is forwarded; commands sent
 * with corex.dispatch run on the host in that directory with that env.
 */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONTAINERS_HARD_LIMIT 1000
#define RESERVE_MS            (2 * 60 * 1000)
#define DEFAULT_PATH          "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct container {
    unsigned id;
    cJSON *args;  /* normalised ContainerCreateArguments, "port" left out */
    cJSON *ports; /* {"<host>": <int>} in insertion order */
    char *root;   /* working directory standing in for /mnt/containers/<id> */
    char **env;
    char *layer; /* corex.flist-layer */
    bool default_nic;
    struct container *next;
};

static pthread_mutex_t c_mu = PTHREAD_MUTEX_INITIALIZER;
static struct container *containers;
static unsigned sequence;

struct reservation {
    int port;
    int64_t until_ms;
};
static struct reservation reserved[1024];
static size_t nreserved;

static pthread_mutex_t nft_mu = PTHREAD_MUTEX_INITIALIZER;
static char *rules[1024];
static size_t nrules;

static void strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

static void container_free(struct container *c)
{
    if (c == NULL)
        return;
    cJSON_Delete(c->args);
    cJSON_Delete(c->ports);
    free(c->root);
    free(c->layer);
    strv_free(c->env);
    free(c);
}

void sim_corex_free_all(void)
{
    pthread_mutex_lock(&c_mu);
    while (containers) {
        struct container *c = containers;
        containers = c->next;
        container_free(c);
    }
    pthread_mutex_unlock(&c_mu);
    pthread_mutex_lock(&nft_mu);
    while (nrules)
        free(rules[--nrules]);
    pthread_mutex_unlock(&nft_mu);
}

/* Caller holds c_mu. */
static struct container *find_locked(unsigned id)
{
    for (struct container *c = containers; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

/* Locks c_mu and returns container ID; NULL, with a 404 in E, when there is
 * none.  c_mu is held either way: the caller unlocks it. */
static struct container *lock_find(unsigned id, struct sim_err *e)
{
    pthread_mutex_lock(&c_mu);
    struct container *c = find_locked(id);
    if (c == NULL)
        sim_fail(e, 404, "container does not exist");
    return c;
}

static size_t count_locked(void)
{
    size_t n = 0;
    for (struct container *c = containers; c; c = c->next)
        n++;
    return n;
}

/* ---- port syntax of helper/socat: "[src:]port[|tcp|udp|tcp+udp]" ---- */

/* The port number of a host spec, or -1 when the spec is invalid. */
static int host_port_number(const char *spec)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    char *bar = strchr(buf, '|');
    if (bar) {
        *bar++ = '\0';
        if (strcmp(bar, "tcp") && strcmp(bar, "udp") && strcmp(bar, "tcp+udp"))
            return -1;
    }
    char *colon = strrchr(buf, ':');
    const char *num = colon ? colon + 1 : buf;
    if (*num == '\0' || strlen(num) > 5)
        return -1;
    for (const char *p = num; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    int port = atoi(num);
    return port >= 1 && port <= 65535 ? port : -1;
}

/* The container port of a forward (kept as a raw JSON integer). */
static int guest_port(const cJSON *p)
{
    return cJSON_IsRaw(p) ? atoi(p->valuestring) : p->valueint;
}

/* Caller holds c_mu. */
static bool port_forwarded_locked(int port)
{
    for (struct container *c = containers; c; c = c->next) {
        const cJSON *it;
        cJSON_ArrayForEach(it, c->ports)
        {
            if (host_port_number(it->string) == port)
                return true;
        }
    }
    return false;
}

/* Caller holds c_mu. */
static void release_reservation_locked(int port)
{
    for (size_t i = 0; i < nreserved; i++) {
        if (reserved[i].port == port) {
            reserved[i] = reserved[--nreserved];
            return;
        }
    }
}

/* ---- creation ---- */

static const struct sim_field create_fields[] = {
    {"root", GT_STRING},     {"mount", GT_STRMAP},    {"host_network", GT_BOOL},
    {"identity", GT_STRING}, {"nics", GT_OBJLIST},    {"port", GT_INTMAP},
    {"privileged", GT_BOOL}, {"hostname", GT_STRING}, {"storage", GT_STRING},
    {"name", GT_STRING},     {"tags", GT_STRLIST},    {"env", GT_STRMAP},
    {"cgroups", GT_ANY},     {"config", GT_STRMAP},   {NULL, GT_ANY},
};

static const struct sim_field nic_fields[] = {
    {"type", GT_STRING},   {"id", GT_STRING},    {"hwaddr", GT_STRING}, {"name", GT_STRING},
    {"config", GT_OBJECT}, {"monitor", GT_BOOL}, {NULL, GT_ANY},
};

static const struct sim_field netconf_fields[] = {
    {"dhcp", GT_BOOL},   {"cidr", GT_STRING}, {"gateway", GT_STRING},
    {"dns", GT_STRLIST}, {NULL, GT_ANY},
};

static cJSON *nic_normal(const cJSON *n)
{
    if (!cJSON_IsObject(n))
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", sim_arg_str(n, "type"));
    cJSON_AddStringToObject(o, "id", sim_arg_str(n, "id"));
    cJSON_AddStringToObject(o, "hwaddr", sim_arg_str(n, "hwaddr"));
    if (sim_arg_str(n, "name")[0])
        cJSON_AddStringToObject(o, "name", sim_arg_str(n, "name"));
    const cJSON *cf = cJSON_GetObjectItem(n, "config");
    cJSON *conf = cJSON_CreateObject();
    cJSON_AddBoolToObject(conf, "dhcp", sim_arg_bool(cf, "dhcp"));
    cJSON_AddStringToObject(conf, "cidr", sim_arg_str(cf, "cidr"));
    cJSON_AddStringToObject(conf, "gateway", sim_arg_str(cf, "gateway"));
    const cJSON *dns = cJSON_IsObject(cf) ? cJSON_GetObjectItem(cf, "dns") : NULL;
    cJSON_AddItemToObject(conf, "dns",
                          cJSON_IsArray(dns) ? cJSON_Duplicate(dns, true) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "config", conf);
    cJSON_AddBoolToObject(o, "monitor", sim_arg_bool(n, "monitor"));
    cJSON_AddStringToObject(o, "state", "configured");
    return o;
}

static cJSON *dup_or_null(const cJSON *args, const char *key, bool sorted)
{
    const cJSON *v = cJSON_GetObjectItem(args, key);
    if (v == NULL || cJSON_IsNull(v))
        return cJSON_CreateNull();
    return sorted ? sim_json_sorted(v) : cJSON_Duplicate(v, true);
}

/* The arguments as Go re-marshals them (field order, maps sorted); "port" is
 * added at query time. */
static cJSON *args_normal(const cJSON *a, const cJSON *tags)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "root", sim_arg_str(a, "root"));
    cJSON_AddItemToObject(o, "mount", dup_or_null(a, "mount", true));
    cJSON_AddBoolToObject(o, "host_network", sim_arg_bool(a, "host_network"));
    cJSON_AddStringToObject(o, "identity", sim_arg_str(a, "identity"));
    const cJSON *nics = cJSON_GetObjectItem(a, "nics"), *n;
    if (cJSON_IsArray(nics)) {
        cJSON *arr = cJSON_CreateArray();
        cJSON_ArrayForEach(n, nics)
        {
            cJSON_AddItemToArray(arr, nic_normal(n));
        }
        cJSON_AddItemToObject(o, "nics", arr);
    } else {
        cJSON_AddNullToObject(o, "nics");
    }
    cJSON_AddBoolToObject(o, "privileged", sim_arg_bool(a, "privileged"));
    cJSON_AddStringToObject(o, "hostname", sim_arg_str(a, "hostname"));
    cJSON_AddStringToObject(o, "storage", sim_arg_str(a, "storage"));
    cJSON_AddStringToObject(o, "name", sim_arg_str(a, "name"));
    cJSON_AddItemToObject(o, "tags", tags ? cJSON_Duplicate(tags, true) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "env", dup_or_null(a, "env", true));
    cJSON *cg = dup_or_null(a, "cgroups", false);
    if (!sim_arg_bool(a, "privileged")) {
        /* Unprivileged containers join the devices/corex cgroup. */
        if (!cJSON_IsArray(cg)) {
            cJSON_Delete(cg);
            cg = cJSON_CreateArray();
        }
        const char *pair[] = {"devices", "corex"};
        cJSON_AddItemToArray(cg, cJSON_CreateStringArray(pair, 2));
    }
    cJSON_AddItemToObject(o, "cgroups", cg);
    cJSON_AddItemToObject(o, "config", dup_or_null(a, "config", true));
    return o;
}

static bool validate_mounts(const cJSON *mount, struct sim_err *e)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, mount)
    {
        const char *host = m->string, *guest = cJSON_IsString(m) ? m->valuestring : "";
        if (strstr(host, "://"))
            continue; /* an flist */
        struct stat st;
        if (host[0] != '/')
            return sim_fail(e, 500, "host path '%s' must be absolute", host), false;
        if (guest[0] != '/')
            return sim_fail(e, 500, "guest path '%s' must be absolute", guest), false;
        if (stat(host, &st) < 0 && errno == ENOENT)
            return sim_fail(e, 500, "host path '%s' does not exist", host), false;
    }
    return true;
}

static bool validate_nics(const cJSON *nics, struct sim_err *e)
{
    const cJSON *n, *m;
    int defaults = 0;
    cJSON_ArrayForEach(n, nics)
    {
        const char *type = sim_arg_str(n, "type"), *id = sim_arg_str(n, "id");
        if (!strcmp(type, "default")) {
            if (++defaults > 1)
                return sim_fail(e, 500, "only one default network is allowed"), false;
        } else if (!strcmp(type, "bridge") || !strcmp(type, "macvlan")) {
            if (!strcmp(type, "bridge") && !strcmp(id, "core0"))
                return sim_fail(e, 500,
                                "cannot use bridge core0 with nic type 'bridge', please use type "
                                "default instead"),
                       false;
            cJSON_ArrayForEach(m, nics)
            {
                if (m == n)
                    break;
                if (!strcmp(sim_arg_str(m, "type"), type) && !strcmp(sim_arg_str(m, "id"), id))
                    return sim_fail(e, 500,
                                    "connecting to %s '%s' more than one time is not allowed",
                                    strcmp(type, "bridge") ? "link" : "bridge", id),
                           false;
            }
        } else if (strcmp(type, "vlan") && strcmp(type, "vxlan") && strcmp(type, "zerotier") &&
                   strcmp(type, "passthrough")) {
            return sim_fail(e, 500, "unsupported network type '%s'", type), false;
        }
        const char *name = sim_arg_str(n, "name");
        if (name[0] == '\0')
            continue;
        cJSON_ArrayForEach(m, nics)
        {
            if (m == n)
                break;
            if (!strcmp(sim_arg_str(m, "name"), name))
                return sim_fail(e, 500, "name '%s' is passed twice in the container", name), false;
        }
        if (strlen(name) > 15)
            return sim_fail(e, 500, "invalid name '%s' too long", name), false;
        if (!strcmp(name, "default"))
            return sim_fail(e, 500, "invalid name `%s`", name), false;
        if (!strncmp(name, "eth", 3) || !strncmp(name, "zt", 2))
            return sim_fail(e, 500, "name '%s' cannot be used as it is started with eth or zt",
                            name),
                   false;
    }
    return true;
}

static bool validate(const cJSON *a, struct sim_err *e)
{
    if (sim_arg_str(a, "root")[0] == '\0')
        return sim_fail(e, 500, "root plist is required"), false;
    if (!validate_mounts(cJSON_GetObjectItem(a, "mount"), e))
        return false;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(a, "port"))
    {
        if (host_port_number(p->string) < 0)
            return sim_fail(e, 500, "invalid host port '%s'", p->string), false;
        if (p->valuedouble < 0 || p->valuedouble > 65535)
            return sim_fail(e, 500, "invalid guest port '%d'", p->valueint), false;
    }
    return validate_nics(cJSON_GetObjectItem(a, "nics"), e);
}

static bool has_default_nic(const cJSON *a)
{
    const cJSON *n;
    if (sim_arg_bool(a, "host_network"))
        return false;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(a, "nics"))
    {
        if (!strcmp(sim_arg_str(n, "type"), "default"))
            return true;
    }
    return false;
}

/* Writes the `config` files into ROOT: mode 0600, parent dirs 0700. */
static bool write_config(const char *root, const cJSON *config, struct sim_err *e)
{
    const cJSON *f;
    char eb[128];
    cJSON_ArrayForEach(f, config)
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, f->string[0] == '/' ? f->string + 1 : f->string);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        int rc = sim_mkdirs(path, 0700);
        *slash = '/';
        int fd = rc < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return sim_fail(e, 500, "open %s: %s", f->string, sim_goerr(errno, eb, sizeof eb)),
                   false;
        const char *text = cJSON_IsString(f) ? f->valuestring : "";
        bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
        fchmod(fd, 0600);
        close(fd);
        if (!ok)
            return sim_fail(e, 500, "write %s: short write", f->string), false;
    }
    return true;
}

static char **container_env(const cJSON *env)
{
    size_t n = 2 + (size_t)(cJSON_IsObject(env) ? cJSON_GetArraySize(env) : 0), k = 0;
    char **out = calloc(n + 1, sizeof *out);
    const cJSON *it;
    bool path = false, home = false;
    cJSON_ArrayForEach(it, env)
    {
        path |= !strcmp(it->string, "PATH");
        home |= !strcmp(it->string, "HOME");
    }
    if (!path)
        out[k++] = strdup("PATH=" DEFAULT_PATH);
    if (!home)
        out[k++] = strdup("HOME=/");
    cJSON_ArrayForEach(it, env)
    {
        const char *v = cJSON_IsString(it) ? it->valuestring : "";
        size_t len = strlen(it->string) + strlen(v) + 2;
        out[k] = malloc(len);
        snprintf(out[k++], len, "%s=%s", it->string, v);
    }
    return out;
}

/* Caller holds c_mu.  0 when unused ids are exhausted. */
static unsigned next_id_locked(void)
{
    for (unsigned tries = 0; tries < 65536; tries++) {
        sequence = (sequence + 1) & 0xffff;
        if (sequence != 0 && sequence < 65535 && find_locked(sequence) == NULL)
            return sequence;
    }
    return 0;
}

/* Port forwards of the creation: sets C->ports, or fails on a used port. */
static bool initial_ports_locked(struct container *c, const cJSON *a, struct sim_err *e)
{
    c->ports = cJSON_CreateObject();
    if (!c->default_nic)
        return true; /* silently ignored without a default nic */
    cJSON *sorted = sim_json_sorted(cJSON_GetObjectItem(a, "port"));
    const cJSON *p;
    cJSON_ArrayForEach(p, sorted)
    {
        int port = host_port_number(p->string);
        if (port_forwarded_locked(port) || cJSON_GetObjectItem(c->ports, p->string)) {
            cJSON_Delete(sorted);
            return sim_fail(e, 500, "port %d already in use", port), false;
        }
        release_reservation_locked(port);
        cJSON_AddItemToObject(c->ports, p->string, sim_json_int(p->valueint));
    }
    cJSON_Delete(sorted);
    return true;
}

cJSON *sim_cmd_corex_create(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.ContainerCreateArguments", create_fields, 400, e))
        return NULL;
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(args, "nics"))
    {
        if (!sim_args_check(n, "containers.Nic", nic_fields, 400, e) ||
            !sim_args_check(cJSON_GetObjectItem(n, "config"), "containers.NetworkConfig",
                            netconf_fields, 400, e))
            return NULL;
    }
    if (!validate(args, e))
        return NULL;

    struct container *c = calloc(1, sizeof *c);
    c->args = args_normal(args, j->tags);
    c->default_nic = has_default_nic(args);
    c->env = container_env(cJSON_GetObjectItem(args, "env"));

    pthread_mutex_lock(&c_mu);
    size_t count = count_locked();
    if (count >= CONTAINERS_HARD_LIMIT) {
        pthread_mutex_unlock(&c_mu);
        container_free(c);
        return sim_fail(e, 503, "reached the hard limit of %zu containers", count);
    }
    c->id = next_id_locked();
    bool ok = c->id != 0 && initial_ports_locked(c, args, e);
    if (ok) {
        char path[4096];
        snprintf(path, sizeof path, "%s/containers/%u/root", sim.dir, c->id);
        c->root = strdup(path);
        sim_rmtree(path); /* left over from an earlier container with this id */
        snprintf(path, sizeof path, "%s/containers/%u/ssh", sim.dir, c->id);
        sim_rmtree(path); /* its sshd's host key, too: a new container gets a new one */
        snprintf(path, sizeof path, "%s/containers/%u/root", sim.dir, c->id);
        ok = sim_mkdirs(path, 0755) == 0 || (sim_fail(e, 500, "mkdir %s failed", path), false);
        ok = ok && write_config(c->root, cJSON_GetObjectItem(args, "config"), e);
    } else if (c->id == 0) {
        sim_fail(e, 503, "no free container id");
    }
    unsigned id = c->id;
    if (ok) {
        c->next = containers;
        containers = c;
    }
    pthread_mutex_unlock(&c_mu);
    if (!ok) {
        container_free(c);
        return NULL;
    }
    return cJSON_CreateNumber(id);
}

/* ---- queries ---- */

/* {"arguments":..,"root":..,"pid":..}.  Caller holds c_mu. */
static cJSON *container_object(const struct container *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_Duplicate(c->args, true);
    cJSON *ports = cJSON_GetArraySize(c->ports) ? sim_json_sorted(c->ports) : cJSON_CreateNull();
    /* "port" sits between "nics" and "privileged" in Go's field order. */
    cJSON *priv = cJSON_GetObjectItemCaseSensitive(a, "privileged");
    cJSON *rest = cJSON_DetachItemViaPointer(a, priv);
    cJSON_AddItemToObject(a, "port", ports);
    cJSON_AddItemToObject(a, "privileged", rest);
    /* Move the fields after "privileged" back behind it. */
    const char *after[] = {"hostname", "storage", "name", "tags", "env", "cgroups", "config"};
    for (size_t i = 0; i < sizeof after / sizeof after[0]; i++) {
        cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(a, after[i]);
        cJSON_AddItemToObject(a, after[i], it);
    }
    cJSON_AddItemToObject(o, "arguments", a);
    char root[64];
    snprintf(root, sizeof root, "/mnt/containers/%u", c->id);
    cJSON_AddStringToObject(o, "root", root);
    sim_json_add_int(o, "pid", getpid());
    return o;
}

static cJSON *info_object(const struct container *c)
{
    int64_t rss, vms;
    sim_proc_stats(getpid(), &rss, &vms);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "cpu", sim_json_int(0));
    sim_json_add_int(o, "rss", rss);
    sim_json_add_int(o, "vms", vms);
    sim_json_add_int(o, "swap", 0);
    cJSON_AddItemToObject(o, "container", container_object(c));
    return o;
}

static bool has_tags(const struct container *c, const cJSON *want)
{
    const cJSON *have = cJSON_GetObjectItemCaseSensitive(c->args, "tags"), *w, *h;
    cJSON_ArrayForEach(w, want)
    {
        bool found = false;
        cJSON_ArrayForEach(h, have)
        {
            if (cJSON_IsString(w) && cJSON_IsString(h) && !strcmp(w->valuestring, h->valuestring))
                found = true;
        }
        if (!found)
            return false;
    }
    return true;
}

/* {"<id>": info} for containers with all of TAGS (NULL: all); keys sorted
 * as strings, as Go sorts map keys. */
static cJSON *listing(const cJSON *tags)
{
    cJSON *tmp = cJSON_CreateObject();
    pthread_mutex_lock(&c_mu);
    for (struct container *c = containers; c; c = c->next) {
        if (tags && !has_tags(c, tags))
            continue;
        char key[16];
        snprintf(key, sizeof key, "%u", c->id);
        cJSON_AddItemToObject(tmp, key, info_object(c));
    }
    pthread_mutex_unlock(&c_mu);
    cJSON *out = sim_json_sorted(tmp);
    cJSON_Delete(tmp);
    return out;
}

cJSON *sim_cmd_corex_list(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    return listing(NULL);
}

static const struct sim_field find_fields[] = {{"tags", GT_STRLIST}, {NULL, GT_ANY}};

cJSON *sim_cmd_corex_find(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.ContainerFindArguments", find_fields, 500, e))
        return NULL;
    const cJSON *tags = cJSON_IsObject(args) ? cJSON_GetObjectItem(args, "tags") : NULL;
    return listing(cJSON_IsArray(tags) ? tags : NULL);
}

cJSON *sim_cmd_corex_get(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    const cJSON *q = cJSON_IsObject(args) ? cJSON_GetObjectItem(args, "query") : NULL;
    cJSON *out = NULL;
    pthread_mutex_lock(&c_mu);
    for (struct container *c = containers; c && !out; c = c->next) {
        bool match =
            cJSON_IsNumber(q)
                ? q->valuedouble == c->id
                : (cJSON_IsString(q) && !strcasecmp(q->valuestring, sim_arg_str(c->args, "name")));
        if (match) {
            out = cJSON_CreateObject();
            cJSON_AddItemToObject(out, "container", container_object(c));
            sim_json_add_int(out, "id", c->id);
        }
    }
    pthread_mutex_unlock(&c_mu);
    return out ? out : cJSON_CreateNull();
}

static const struct sim_field cid_fields[] = {{"container", GT_UINT16}, {NULL, GT_ANY}};

cJSON *sim_cmd_corex_terminate(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.ContainerArguments", cid_fields, 500, e))
        return NULL;
    unsigned id = (unsigned)sim_arg_int(args, "container");
    struct container *c = NULL;
    pthread_mutex_lock(&c_mu);
    for (struct container **p = &containers; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            c = *p;
            *p = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&c_mu);
    if (c == NULL)
        return sim_fail(e, 500, "no container with id '%u'", id);
    sim_jobs_drop_container(id);
    sim_sshd_forget(id);
    char path[4096];
    snprintf(path, sizeof path, "%s/containers/%u", sim.dir, id);
    sim_rmtree(path);
    container_free(c);
    return cJSON_CreateNull();
}

/* ---- dispatch ---- */

static const struct sim_field dispatch_fields[] = {
    {"container", GT_UINT16}, {"command", GT_OBJECT}, {NULL, GT_ANY}};

static char **strv_dup(char **v)
{
    size_t n = 0;
    while (v[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = strdup(v[i]);
    return out;
}

cJSON *sim_cmd_corex_dispatch(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.ContainerDispatchArguments", dispatch_fields, 500, e))
        return NULL;
    unsigned id = (unsigned)sim_arg_int(args, "container");
    if (id == 0)
        return sim_fail(e, 500, "invalid container id");
    const cJSON *cmd = cJSON_GetObjectItem(args, "command");
    struct sim_job *inner = sim_job_from_object(cmd ? cmd : args, e);
    if (inner == NULL)
        return NULL;
    if (cmd == NULL) {
        /* A missing command decodes as an empty one. */
        sim_job_free(inner);
        cJSON *empty = cJSON_CreateObject();
        inner = sim_job_from_object(empty, e);
        cJSON_Delete(empty);
    }
    pthread_mutex_lock(&c_mu);
    struct container *c = find_locked(id);
    if (c) {
        inner->container = id;
        inner->cdir = strdup(c->root);
        inner->cenv = strv_dup(c->env);
    }
    pthread_mutex_unlock(&c_mu);
    if (c == NULL) {
        sim_job_free(inner);
        return sim_fail(e, 500, "container does not exist");
    }
    if (inner->id[0] == '\0') {
        char uuid[37];
        sim_uuid(uuid);
        free(inner->id);
        inner->id = strdup(uuid);
    }
    cJSON *out = cJSON_CreateString(inner->id);
    /* No duplicate check here, unlike the core0 sink. */
    sim_flag(inner->id);
    sim_job_start(inner);
    return out;
}

/* ---- port forwards ---- */

static const struct sim_field pf_fields[] = {
    {"container", GT_UINT16}, {"container_port", GT_INT}, {"host_port", GT_STRING}, {NULL, GT_ANY}};

cJSON *sim_cmd_corex_pf_add(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.containerPortForward", pf_fields, 400, e))
        return NULL;
    unsigned id = (unsigned)sim_arg_int(args, "container");
    const char *host = sim_arg_str(args, "host_port");
    long long cport = sim_arg_int(args, "container_port");
    int port = host_port_number(host);
    cJSON *out = NULL;
    pthread_mutex_lock(&c_mu);
    struct container *c = find_locked(id);
    if (c == NULL)
        sim_fail(e, 404, "container does not exist");
    else if (!c->default_nic)
        sim_fail(e, 500, "Container doesn't have a default nic");
    else if (port < 0)
        sim_fail(e, 500, "invalid host port '%s'", host);
    else if (port_forwarded_locked(port))
        sim_fail(e, 500, "port %d already in use", port);
    else {
        release_reservation_locked(port);
        cJSON_AddItemToObject(c->ports, host, sim_json_int(cport));
        out = cJSON_CreateNull();
    }
    pthread_mutex_unlock(&c_mu);
    if (out && cport == 22)
        sim_sshd_sync(id); /* a running sshd becomes reachable there */
    return out;
}

cJSON *sim_cmd_corex_pf_remove(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.containerPortForward", pf_fields, 400, e))
        return NULL;
    unsigned id = (unsigned)sim_arg_int(args, "container");
    const char *host = sim_arg_str(args, "host_port");
    cJSON *out = NULL;
    struct container *c = lock_find(id, e);
    if (c != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(c->ports, host);
        out = cJSON_CreateNull();
    }
    pthread_mutex_unlock(&c_mu);
    if (out)
        sim_sshd_sync(id); /* an sshd on that port stops */
    return out;
}

/* ---- what the container's sshd needs (sshd.c) ---- */

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

bool sim_corex_ssh_view(unsigned cid, struct sim_ssh_view *v)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&c_mu);
    struct container *c = find_locked(cid);
    if (c) {
        char path[4096];
        v->cid = cid;
        v->root = strdup(c->root);
        snprintf(path, sizeof path, "%s/containers/%u", sim.dir, cid);
        v->state = strdup(path);
        v->env = strv_dup(c->env);
        const char *h = sim_arg_str(c->args, "hostname");
        snprintf(v->hostname, sizeof v->hostname, "%s", h[0] ? h : "corex");
        const cJSON *p;
        cJSON_ArrayForEach(p, c->ports)
        {
            int port = host_port_number(p->string);
            const char *bar = strchr(p->string, '|');
            bool dup = false;
            if (guest_port(p) != 22 || port < 0 || (bar && !strcmp(bar, "|udp")))
                continue;
            for (size_t i = 0; i < v->nports; i++)
                dup |= v->ports[i] == port;
            if (!dup && v->nports < SIM_SSH_MAX_PORTS)
                v->ports[v->nports++] = port;
        }
        qsort(v->ports, v->nports, sizeof v->ports[0], cmp_int);
    }
    pthread_mutex_unlock(&c_mu);
    return c != NULL;
}

void sim_ssh_view_free(struct sim_ssh_view *v)
{
    free(v->root);
    free(v->state);
    strv_free(v->env);
    memset(v, 0, sizeof *v);
}

static const struct sim_field layer_fields[] = {
    {"container", GT_UINT16}, {"flist", GT_STRING}, {NULL, GT_ANY}};

cJSON *sim_cmd_corex_flist_layer(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.ContainerFlistLayerArguments", layer_fields, 400, e))
        return NULL;
    unsigned id = (unsigned)sim_arg_int(args, "container");
    cJSON *out = NULL;
    struct container *c = lock_find(id, e);
    if (c != NULL) {
        free(c->layer);
        c->layer = strdup(sim_arg_str(args, "flist"));
        out = cJSON_CreateNull();
    }
    pthread_mutex_unlock(&c_mu);
    return out;
}

/* ---- zerotier (plausible fakes; no zerotier-one here) ---- */

static void zt_address(unsigned id, char *buf, size_t len)
{
    snprintf(buf, len, "10.147.%u.%u/24", 17 + (id - 1) / 254, (id - 1) % 254 + 1);
}

cJSON *sim_cmd_corex_zt_list(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.ContainerArguments", cid_fields, 500, e))
        return NULL;
    unsigned id = (unsigned)sim_arg_int(args, "container");
    cJSON *out = NULL;
    struct container *c = lock_find(id, e);
    if (c != NULL) {
        out = cJSON_CreateArray();
        const cJSON *n;
        int k = 0;
        cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(c->args, "nics"))
        {
            if (strcmp(sim_arg_str(n, "type"), "zerotier") != 0)
                continue;
            char addr[32], mac[32], dev[16];
            zt_address(id, addr, sizeof addr);
            snprintf(mac, sizeof mac, "02:5a:%02x:%02x:%02x:%02x", (id >> 8) & 0xff, id & 0xff, k,
                     0x11);
            snprintf(dev, sizeof dev, "zt%d", k++);
            cJSON *o = cJSON_CreateObject();
            const char *addrs[] = {addr};
            cJSON_AddItemToObject(o, "allowDefault", cJSON_CreateFalse());
            cJSON_AddItemToObject(o, "allowGlobal", cJSON_CreateFalse());
            cJSON_AddItemToObject(o, "allowManaged", cJSON_CreateTrue());
            cJSON_AddItemToObject(o, "assignedAddresses", cJSON_CreateStringArray(addrs, 1));
            cJSON_AddItemToObject(o, "bridge", cJSON_CreateFalse());
            cJSON_AddItemToObject(o, "broadcastEnabled", cJSON_CreateTrue());
            cJSON_AddItemToObject(o, "dhcp", cJSON_CreateFalse());
            cJSON_AddStringToObject(o, "id", sim_arg_str(n, "id"));
            cJSON_AddStringToObject(o, "mac", mac);
            sim_json_add_int(o, "mtu", 2800);
            cJSON_AddStringToObject(o, "name", "sim-network");
            sim_json_add_int(o, "netconfRevision", 1);
            cJSON_AddStringToObject(o, "nwid", sim_arg_str(n, "id"));
            cJSON_AddStringToObject(o, "portDeviceName", dev);
            sim_json_add_int(o, "portError", 0);
            cJSON_AddItemToObject(o, "routes", cJSON_CreateArray());
            cJSON_AddStringToObject(o, "status", "OK");
            cJSON_AddStringToObject(o, "type", "PRIVATE");
            cJSON_AddItemToArray(out, o);
        }
    }
    pthread_mutex_unlock(&c_mu);
    return out;
}

cJSON *sim_cmd_corex_zt_info(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "containers.ContainerArguments", cid_fields, 500, e))
        return NULL;
    unsigned id = (unsigned)sim_arg_int(args, "container");
    cJSON *out = NULL;
    struct container *c = lock_find(id, e);
    if (c != NULL) {
        char addr[16], pub[128], secret[256];
        snprintf(addr, sizeof addr, "5a%08x", 0x51000000u | id);
        snprintf(pub, sizeof pub, "%s:0:%048x", addr, id);
        const char *identity = sim_arg_str(c->args, "identity");
        if (identity[0])
            snprintf(secret, sizeof secret, "%s", identity);
        else
            snprintf(secret, sizeof secret, "%s:%048x", pub, id * 7919u);
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "address", addr);
        sim_json_add_int(out, "clock", sim_now_ms());
        cJSON_AddItemToObject(out, "config", cJSON_CreateObject());
        cJSON_AddItemToObject(out, "online", cJSON_CreateTrue());
        cJSON_AddStringToObject(out, "planetWorldId", "149604618");
        cJSON_AddStringToObject(out, "publicIdentity", pub);
        cJSON_AddItemToObject(out, "tcpFallbackActive", cJSON_CreateFalse());
        cJSON_AddStringToObject(out, "version", "1.4.6");
        sim_json_add_int(out, "versionBuild", 0);
        sim_json_add_int(out, "versionMajor", 1);
        sim_json_add_int(out, "versionMinor", 4);
        sim_json_add_int(out, "versionRev", 6);
        cJSON_AddStringToObject(out, "secretIdentity", secret);
    }
    pthread_mutex_unlock(&c_mu);
    return out;
}

/* ---- socat ---- */

/* Ports somebody listens on (TCP, v4 and v6), as a 65536-entry map. */
static void listening_ports(unsigned char *map)
{
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t f = 0; f < 2; f++) {
        char *t = sim_read_file(files[f], NULL);
        char *save = NULL;
        for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
            char local[128], remote[128], state[8];
            if (sscanf(l, "%*s %127s %127s %7s", local, remote, state) != 3)
                continue;
            char *colon = strrchr(local, ':');
            if (colon && !strcmp(state, "0A"))
                map[strtoul(colon + 1, NULL, 16) & 0xffff] = 1;
        }
        free(t);
    }
}

static const struct sim_field reserve_fields[] = {{"number", GT_INT}, {NULL, GT_ANY}};

cJSON *sim_cmd_socat_reserve(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "socat.reserveArgs", reserve_fields, 500, e))
        return NULL;
    long long want = sim_arg_int(args, "number");
    if (want == 0)
        return sim_fail(e, 500, "reseve number cannot be zero");
    unsigned char *busy = calloc(65536, 1);
    listening_ports(busy);
    cJSON *out = cJSON_CreateArray();
    int64_t now = sim_now_ms();
    pthread_mutex_lock(&c_mu);
    for (size_t i = 0; i < nreserved;) {
        if (reserved[i].until_ms <= now)
            reserved[i] = reserved[--nreserved];
        else
            busy[reserved[i++].port] = 1;
    }
    long long got = 0;
    for (int p = 1024; p < 65536 && got < want && nreserved < 1024; p++) {
        if (busy[p] || port_forwarded_locked(p))
            continue;
        reserved[nreserved++] = (struct reservation){p, now + RESERVE_MS};
        cJSON_AddItemToArray(out, sim_json_int(p));
        got++;
    }
    pthread_mutex_unlock(&c_mu);
    free(busy);
    return out;
}

cJSON *sim_cmd_socat_list(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    cJSON *out = cJSON_CreateArray();
    pthread_mutex_lock(&c_mu);
    for (struct container *c = containers; c; c = c->next) {
        const cJSON *p;
        cJSON_ArrayForEach(p, c->ports)
        {
            char rule[512];
            unsigned ip = c->id + 1;
            snprintf(rule, sizeof rule, "tcp dport %d mark set 0x%08x dnat to 172.18.%u.%u:%d",
                     host_port_number(p->string), 0x01000000u | c->id, ip >> 8, ip & 0xff,
                     guest_port(p));
            cJSON_AddItemToArray(out, cJSON_CreateString(rule));
        }
    }
    pthread_mutex_unlock(&c_mu);
    return out;
}

/* ---- nft ---- */

static const struct sim_field nft_fields[] = {
    {"port", GT_INT}, {"interface", GT_STRING}, {"subnet", GT_STRING}, {NULL, GT_ANY}};

/* Caller holds nft_mu. */
static bool rule_for_port_locked(int port, size_t *at)
{
    char needle[32];
    snprintf(needle, sizeof needle, "dport %d ", port);
    for (size_t i = 0; i < nrules; i++) {
        if (strstr(rules[i], needle)) {
            if (at)
                *at = i;
            return true;
        }
    }
    return false;
}

cJSON *sim_cmd_nft_open_port(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.Port", nft_fields, 500, e))
        return NULL;
    int port = (int)sim_arg_int(args, "port");
    const char *ifc = sim_arg_str(args, "interface"), *subnet = sim_arg_str(args, "subnet");
    char rule[512] = "", part[256];
    if (ifc[0]) {
        snprintf(part, sizeof part, "iifname \"%s\" ", ifc);
        strcat(rule, part);
    }
    if (subnet[0]) {
        snprintf(part, sizeof part, "ip saddr %s ", subnet);
        strcat(rule, part);
    }
    snprintf(part, sizeof part, "tcp dport %d accept", port);
    strcat(rule, part);
    cJSON *out = NULL;
    pthread_mutex_lock(&nft_mu);
    if (rule_for_port_locked(port, NULL))
        sim_fail(e, 500, "rule already exists for port: %d", port);
    else if (nrules >= sizeof rules / sizeof rules[0])
        sim_fail(e, 500, "too many rules");
    else {
        rules[nrules++] = strdup(rule);
        out = cJSON_CreateNull();
    }
    pthread_mutex_unlock(&nft_mu);
    return out;
}

cJSON *sim_cmd_nft_drop_port(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.Port", nft_fields, 500, e))
        return NULL;
    int port = (int)sim_arg_int(args, "port");
    size_t at;
    pthread_mutex_lock(&nft_mu);
    while (rule_for_port_locked(port, &at)) {
        free(rules[at]);
        memmove(rules + at, rules + at + 1, (nrules - at - 1) * sizeof rules[0]);
        nrules--;
    }
    pthread_mutex_unlock(&nft_mu);
    return cJSON_CreateNull();
}

cJSON *sim_cmd_nft_list(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    cJSON *out = cJSON_CreateArray();
    pthread_mutex_lock(&nft_mu);
    for (size_t i = 0; i < nrules; i++)
        cJSON_AddItemToArray(out, cJSON_CreateString(rules[i]));
    pthread_mutex_unlock(&nft_mu);
    return out;
}

cJSON *sim_cmd_nft_rule_exists(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.Port", nft_fields, 500, e))
        return NULL;
    pthread_mutex_lock(&nft_mu);
    bool found = rule_for_port_locked((int)sim_arg_int(args, "port"), NULL);
    pthread_mutex_unlock(&nft_mu);
    return cJSON_CreateBool(found);
}
